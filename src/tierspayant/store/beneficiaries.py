"""Beneficiaries in the database: the lookups of the rights check, the reads of the portals
and cards, and data-key rotation.

The bulk import path (staging, merging) is in ``store/beneficiary_import.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, literal, select, union_all, update
from sqlalchemy.engine import Row

from tierspayant.store.tables import beneficiaries


@dataclass(frozen=True, slots=True)
class BeneficiaryRecord:
    """One row of ``beneficiaries``, as stored: identity fields are still ciphertext."""

    insurer_id: int
    id: int
    idx_nir: bytes = field(repr=False)
    idx_member: bytes = field(repr=False)
    idx_family: bytes = field(repr=False)
    key_version: int
    nir_ct: bytes = field(repr=False)
    member_number_ct: bytes = field(repr=False)
    birth_date_ct: bytes = field(repr=False)
    last_name_ct: bytes = field(repr=False)
    first_name_ct: bytes = field(repr=False)
    birth_rank: int
    sex: str
    quality: str
    birth_year: int
    contract_code: str
    coverage_start: date
    coverage_end: date | None
    css: bool
    is_canary: bool
    row_digest: bytes = field(repr=False)
    updated_at: datetime

    def covered_on(self, day: date) -> bool:
        """Whether the coverage period includes ``day``."""
        return self.coverage_start <= day and (
            self.coverage_end is None or day <= self.coverage_end
        )


def record_from_row(row: Row[Any]) -> BeneficiaryRecord:
    """The record of a row selected with every column of ``beneficiaries``."""
    m = row._mapping
    updated_at = m["updated_at"]
    if updated_at.tzinfo is None:  # SQLite hands back naive datetimes; we store UTC only
        updated_at = updated_at.replace(tzinfo=UTC)
    return BeneficiaryRecord(
        insurer_id=int(m["insurer_id"]),
        id=int(m["id"]),
        idx_nir=bytes(m["idx_nir"]),
        idx_member=bytes(m["idx_member"]),
        idx_family=bytes(m["idx_family"]),
        key_version=int(m["key_version"]),
        nir_ct=bytes(m["nir_ct"]),
        member_number_ct=bytes(m["member_number_ct"]),
        birth_date_ct=bytes(m["birth_date_ct"]),
        last_name_ct=bytes(m["last_name_ct"]),
        first_name_ct=bytes(m["first_name_ct"]),
        birth_rank=int(m["birth_rank"]),
        sex=str(m["sex"]),
        quality=str(m["quality"]),
        birth_year=int(m["birth_year"]),
        contract_code=str(m["contract_code"]),
        coverage_start=m["coverage_start"],
        coverage_end=m["coverage_end"],
        css=bool(m["css"]),
        is_canary=bool(m["is_canary"]),
        row_digest=bytes(m["row_digest"]),
        updated_at=updated_at,
    )


# Built once: the rights check runs it on every request.
_BY_NIR_INDEX = select(beneficiaries).where(
    beneficiaries.c.insurer_id == bindparam("insurer_id"),
    beneficiaries.c.idx_nir == bindparam("idx"),
)


def find_by_nir_index(
    conn: Connection, insurer_id: int, idx_nir: bytes
) -> BeneficiaryRecord | None:
    """The beneficiary of an insurer with this NIR + rank index, or None."""
    row = conn.execute(_BY_NIR_INDEX, {"insurer_id": insurer_id, "idx": idx_nir}).first()
    return None if row is None else record_from_row(row)


# The rights check's lookup: the row with this index, else the insurer's first row (a
# "pad"), in one statement that always runs both branches (ORDER BY over the union), so a
# miss reads and decodes a row like a hit does (services/identification.py).
_MATCH = literal(0).label("branch")
_PAD = literal(1).label("branch")
_BY_NIR_INDEX_PADDED = (
    union_all(
        select(beneficiaries, _MATCH).where(
            beneficiaries.c.insurer_id == bindparam("insurer_id"),
            beneficiaries.c.idx_nir == bindparam("idx"),
        ),
        select(beneficiaries, _PAD).where(
            beneficiaries.c.insurer_id == bindparam("insurer_id"),
            beneficiaries.c.id
            == select(func.min(beneficiaries.c.id))
            .where(beneficiaries.c.insurer_id == bindparam("insurer_id"))
            .scalar_subquery(),
        ),
    )
    .order_by("branch")
    .limit(1)
)


def find_by_nir_index_padded(
    conn: Connection, insurer_id: int, idx_nir: bytes
) -> tuple[BeneficiaryRecord | None, bool]:
    """(the row with this NIR + rank index, True), or on a miss (the insurer's first row,
    False), or (None, False) for an insurer without rows. Hit and miss run the same
    statement and decode one row each: the pad is never an answer, only equal work."""
    row = conn.execute(_BY_NIR_INDEX_PADDED, {"insurer_id": insurer_id, "idx": idx_nir}).first()
    if row is None:
        return None, False
    return record_from_row(row), row._mapping["branch"] == 0


def find_by_member_index(
    conn: Connection, insurer_id: int, idx_member: bytes
) -> list[BeneficiaryRecord]:
    """Beneficiaries of an insurer with this member number + birth date index (twins: two)."""
    rows = conn.execute(
        select(beneficiaries)
        .where(beneficiaries.c.insurer_id == insurer_id, beneficiaries.c.idx_member == idx_member)
        .order_by(beneficiaries.c.birth_rank, beneficiaries.c.id)
    ).all()
    return [record_from_row(r) for r in rows]


def family_members(conn: Connection, insurer_id: int, idx_family: bytes) -> list[BeneficiaryRecord]:
    """Every beneficiary sharing a member number (one family, one card), member first."""
    rows = conn.execute(
        select(beneficiaries)
        .where(beneficiaries.c.insurer_id == insurer_id, beneficiaries.c.idx_family == idx_family)
        .order_by(beneficiaries.c.id)
    ).all()
    return [record_from_row(r) for r in rows]


def count_beneficiaries(conn: Connection, insurer_id: int) -> int:
    """How many rows an insurer has (covered or not)."""
    return int(
        conn.execute(
            select(func.count())
            .select_from(beneficiaries)
            .where(beneficiaries.c.insurer_id == insurer_id)
        ).scalar_one()
    )


def record_by_id(
    conn: Connection, insurer_id: int, beneficiary_id: int
) -> BeneficiaryRecord | None:
    """One beneficiary row of an insurer, still sealed, or None."""
    row = conn.execute(
        select(beneficiaries).where(
            beneficiaries.c.insurer_id == insurer_id, beneficiaries.c.id == beneficiary_id
        )
    ).first()
    return None if row is None else record_from_row(row)


def beneficiary_exists(conn: Connection, insurer_id: int, beneficiary_id: int) -> bool:
    """Whether the insurer has a beneficiary with this internal id."""
    found = conn.execute(
        select(beneficiaries.c.id).where(
            beneficiaries.c.insurer_id == insurer_id, beneficiaries.c.id == beneficiary_id
        )
    ).first()
    return found is not None


def ids_after(conn: Connection, insurer_id: int, after: int, limit: int) -> list[int]:
    """Up to ``limit`` ids of the insurer's beneficiaries above ``after``, in order."""
    batch = conn.execute(
        select(beneficiaries.c.id)
        .where(beneficiaries.c.insurer_id == insurer_id, beneficiaries.c.id > after)
        .order_by(beneficiaries.c.id)
        .limit(limit)
    ).scalars()
    return [int(i) for i in batch]


def first_member_id(conn: Connection, insurer_id: int) -> int | None:
    """The lowest id among the insurer's beneficiaries that are not canaries, or None."""
    value = conn.execute(
        select(beneficiaries.c.id)
        .where(beneficiaries.c.insurer_id == insurer_id, beneficiaries.c.is_canary.is_(False))
        .order_by(beneficiaries.c.id)
        .limit(1)
    ).scalar()
    return None if value is None else int(value)


# --- data-key rotation -------------------------------------------------------------------


def records_behind(
    conn: Connection, insurer_id: int, version: int, after: int, limit: int
) -> list[BeneficiaryRecord]:
    """Up to ``limit`` rows with id > ``after`` not sealed under data-key ``version``."""
    rows = conn.execute(
        select(beneficiaries)
        .where(
            beneficiaries.c.insurer_id == insurer_id,
            beneficiaries.c.id > after,
            beneficiaries.c.key_version != version,
        )
        .order_by(beneficiaries.c.id)
        .limit(limit)
    ).all()
    return [record_from_row(r) for r in rows]


def reseal(
    conn: Connection,
    insurer_id: int,
    beneficiary_id: int,
    from_version: int,
    to_version: int,
    sealed: Mapping[str, bytes],
) -> int:
    """Replace a row's ciphertexts if it is still at ``from_version``; rows changed (0/1)."""
    return int(
        conn.execute(
            update(beneficiaries)
            .where(
                beneficiaries.c.insurer_id == insurer_id,
                beneficiaries.c.id == beneficiary_id,
                beneficiaries.c.key_version == from_version,
            )
            .values(key_version=to_version, **sealed)
        ).rowcount
    )


def count_behind(conn: Connection, insurer_id: int, version: int) -> int:
    """Rows of the insurer not sealed under data-key ``version``."""
    return int(
        conn.execute(
            select(func.count())
            .select_from(beneficiaries)
            .where(
                beneficiaries.c.insurer_id == insurer_id,
                beneficiaries.c.key_version != version,
            )
        ).scalar_one()
    )
