"""How a beneficiary's identity is indexed and sealed: one definition for import and lookup.

Blind-index inputs are normalised here and only here, so that a value indexed at import
matches the same value typed at the counter.
"""

from __future__ import annotations

from binascii import hexlify
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from tierspayant.security.crypto import (
    INDEX_BYTES,
    BlindIndexer,
    DataKeys,
    FieldCipher,
    KindIndexer,
    row_aad,
)

BENEFICIARIES = "beneficiaries"
SEALED_COLUMNS = ("nir", "member_number", "birth_date", "last_name", "first_name")


NIR_KIND = "nir_rank"
MEMBER_KIND = "member_birth"
FAMILY_KIND = "family"


def nir_index(indexer: BlindIndexer, nir: str, birth_rank: int) -> bytes:
    """Index of a NIR (15 characters, normalised) with its birth rank."""
    return indexer.index(NIR_KIND, f"{nir}|{birth_rank}")


def member_index(indexer: BlindIndexer, member_number: str, birth_date: date) -> bytes:
    """Index of an insurer member number with a birth date (card without NIR)."""
    return indexer.index(MEMBER_KIND, f"{member_number.strip().upper()}|{birth_date}")


def family_index(indexer: BlindIndexer, member_number: str) -> bytes:
    """Index of a member number alone: groups a family for its card."""
    return indexer.index(FAMILY_KIND, member_number.strip().upper())


def column_aad(insurer_id: int, nir_idx: bytes, column: str) -> bytes:
    """Associated data of one sealed column: the row's identity, so blobs cannot move."""
    return row_aad(insurer_id, BENEFICIARIES, nir_idx.hex(), column)


# Length-prefixed column names, as ``row_aad`` appends them.
_COLUMN_SUFFIX = {c: len(c).to_bytes(2, "big") + c.encode("ascii") for c in SEALED_COLUMNS}
_SEALED_KEYS = tuple(f"{c}_ct" for c in SEALED_COLUMNS)


@dataclass(frozen=True, slots=True)
class BeneficiaryIdentity:
    """Identity fields in clear: exists only in memory, only when a use case needs it."""

    nir: str
    member_number: str
    birth_date: date
    last_name: str
    first_name: str


def seal_identity(
    cipher: FieldCipher, insurer_id: int, nir_idx: bytes, identity: BeneficiaryIdentity
) -> dict[str, bytes]:
    """Encrypt every identity field: returns ``{"nir_ct": …, "birth_date_ct": …, …}``."""
    # The five associated data share the row's prefix: build it once (same bytes as
    # ``column_aad``, which the lookup side uses; a test keeps the two equal).
    prefix = row_aad(insurer_id, BENEFICIARIES, nir_idx.hex(), "")[:-2]
    sealed = cipher.encrypt_many(
        (
            (identity.nir, prefix + _COLUMN_SUFFIX["nir"]),
            (identity.member_number, prefix + _COLUMN_SUFFIX["member_number"]),
            (identity.birth_date.isoformat(), prefix + _COLUMN_SUFFIX["birth_date"]),
            (identity.last_name, prefix + _COLUMN_SUFFIX["last_name"]),
            (identity.first_name, prefix + _COLUMN_SUFFIX["first_name"]),
        )
    )
    return dict(zip(_SEALED_KEYS, sealed, strict=True))


def open_column(
    cipher: FieldCipher, insurer_id: int, nir_idx: bytes, column: str, blob: bytes
) -> str:
    """Decrypt one sealed column of one row."""
    return cipher.decrypt(blob, column_aad(insurer_id, nir_idx, column))


# What BulkSealer.seal_many gives per person: idx_nir, idx_member, idx_family, then the
# five ciphertexts in SEALED_COLUMNS order.
SealedPerson = tuple[bytes, bytes, bytes, bytes, bytes, bytes, bytes, bytes]


class BulkSealer:
    """Indexes and seals many beneficiaries of one insurer: the fast path of imports.

    Gives what :func:`nir_index`, :func:`member_index`, :func:`family_index` and
    :func:`seal_identity` give (tests compare them): same index inputs, same associated
    data, same ciphertext layout. It only saves work: the per-kind HMAC states and the
    insurer's part of the associated data are prepared once, and the nonces of a whole
    batch are drawn in one system call.
    """

    __slots__ = ("_aad_head", "_cipher", "_family", "_member", "_nir")

    def __init__(self, keys: DataKeys, insurer_id: int) -> None:
        self._cipher = FieldCipher(keys)
        self._nir = KindIndexer(keys, NIR_KIND)
        self._member = KindIndexer(keys, MEMBER_KIND)
        self._family = KindIndexer(keys, FAMILY_KIND)
        # row_aad with an empty row key and column ends with their two zero lengths; the
        # row key is always the hex of a 16-byte index: 32 characters.
        empty = row_aad(insurer_id, BENEFICIARIES, "", "")
        self._aad_head = empty[:-4] + (2 * INDEX_BYTES).to_bytes(2, "big")

    def seal_many(
        self, people: Sequence[tuple[str, int, str, date, str, str]]
    ) -> list[SealedPerson]:
        """For each ``(nir, birth_rank, member_number, birth_date, last_name, first_name)``:
        its three indexes and five sealed columns (see :data:`SealedPerson`)."""
        nir_ix, member_ix, family_ix = self._nir.index, self._member.index, self._family.index
        head = self._aad_head
        s_nir, s_member, s_birth, s_last, s_first = (_COLUMN_SUFFIX[c] for c in SEALED_COLUMNS)
        indexes: list[tuple[bytes, bytes, bytes]] = []
        items: list[tuple[str, bytes]] = []
        add = items.extend
        for nir, rank, member_number, birth_date, last_name, first_name in people:
            idx = nir_ix(f"{nir}|{rank}")
            member_key = member_number.strip().upper()
            birth = birth_date.isoformat()  # what str(birth_date) gives member_index
            indexes.append((idx, member_ix(f"{member_key}|{birth}"), family_ix(member_key)))
            row = head + hexlify(idx)  # the ASCII of idx.hex(), as column_aad writes it
            add(
                (
                    (nir, row + s_nir),
                    (member_number, row + s_member),
                    (birth, row + s_birth),
                    (last_name, row + s_last),
                    (first_name, row + s_first),
                )
            )
        sealed = self._cipher.encrypt_many(items)
        return [
            (a, b, c, sealed[k], sealed[k + 1], sealed[k + 2], sealed[k + 3], sealed[k + 4])
            for k, (a, b, c) in zip(range(0, len(sealed), 5), indexes, strict=True)
        ]
