"""How a beneficiary's identity is indexed and sealed: one definition for import and lookup.

Blind-index inputs are normalised here and only here, so that a value indexed at import
matches the same value typed at the counter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from tierspayant.security.crypto import BlindIndexer, FieldCipher, row_aad

BENEFICIARIES = "beneficiaries"
SEALED_COLUMNS = ("nir", "member_number", "birth_date", "last_name", "first_name")


def nir_index(indexer: BlindIndexer, nir: str, birth_rank: int) -> bytes:
    """Index of a NIR (15 characters, normalised) with its birth rank."""
    return indexer.index("nir_rank", f"{nir}|{birth_rank}")


def member_index(indexer: BlindIndexer, member_number: str, birth_date: date) -> bytes:
    """Index of an insurer member number with a birth date (card without NIR)."""
    return indexer.index("member_birth", f"{member_number.strip().upper()}|{birth_date}")


def family_index(indexer: BlindIndexer, member_number: str) -> bytes:
    """Index of a member number alone: groups a family for its card."""
    return indexer.index("family", member_number.strip().upper())


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
