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
    values = {
        "nir": identity.nir,
        "member_number": identity.member_number,
        "birth_date": identity.birth_date.isoformat(),
        "last_name": identity.last_name,
        "first_name": identity.first_name,
    }
    return {
        f"{column}_ct": cipher.encrypt(value, column_aad(insurer_id, nir_idx, column))
        for column, value in values.items()
    }


def open_column(
    cipher: FieldCipher, insurer_id: int, nir_idx: bytes, column: str, blob: bytes
) -> str:
    """Decrypt one sealed column of one row."""
    return cipher.decrypt(blob, column_aad(insurer_id, nir_idx, column))
