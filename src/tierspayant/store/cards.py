"""Queries on cards, card-signing keys, canary marks and the rows canaries are planted in.

No cryptography here.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import Connection, bindparam, func, select, update

from tierspayant.store.beneficiaries import BeneficiaryRecord, record_from_row
from tierspayant.store.cards_tables import canary_marks, card_signing_keys, cards
from tierspayant.store.tables import beneficiaries, insurers


@dataclass(frozen=True, slots=True)
class SigningKeyRow:
    insurer_id: int
    key_id: str
    public_key: bytes
    wrapped_private: bytes = field(repr=False)
    active: bool
    created_at: datetime
    retired_at: datetime | None


@dataclass(frozen=True, slots=True)
class PublishedKey:
    amc_number: str
    key_id: str
    public_key: bytes
    active: bool
    created_at: datetime
    retired_at: datetime | None


@dataclass(frozen=True, slots=True)
class CardRow:
    insurer_id: int
    serial: str
    key_id: str
    family_binding: bytes = field(repr=False)
    secret_digest: bytes = field(repr=False)
    year: int
    valid_from: date
    valid_until: date
    status: str


def _key(row: object) -> SigningKeyRow:
    m = row._mapping  # type: ignore[attr-defined]
    return SigningKeyRow(
        int(m["insurer_id"]),
        str(m["key_id"]),
        bytes(m["public_key"]),
        bytes(m["wrapped_private"]),
        bool(m["active"]),
        m["created_at"],
        m["retired_at"],
    )


def active_signing_key(conn: Connection, insurer_id: int) -> SigningKeyRow | None:
    row = conn.execute(
        select(card_signing_keys).where(
            card_signing_keys.c.insurer_id == insurer_id, card_signing_keys.c.active.is_(True)
        )
    ).first()
    return None if row is None else _key(row)


def signing_key(conn: Connection, insurer_id: int, key_id: str) -> SigningKeyRow | None:
    row = conn.execute(
        select(card_signing_keys).where(
            card_signing_keys.c.insurer_id == insurer_id, card_signing_keys.c.key_id == key_id
        )
    ).first()
    return None if row is None else _key(row)


def insert_signing_key(
    conn: Connection,
    *,
    insurer_id: int,
    key_id: str,
    public_key: bytes,
    wrapped_private: bytes,
    kek_id: str,
    now: datetime,
) -> None:
    """Store a new active key; the previous active key stays valid for verification."""
    conn.execute(
        update(card_signing_keys)
        .where(card_signing_keys.c.insurer_id == insurer_id, card_signing_keys.c.active.is_(True))
        .values(active=False)
    )
    conn.execute(
        card_signing_keys.insert().values(
            insurer_id=insurer_id,
            key_id=key_id,
            public_key=public_key,
            wrapped_private=wrapped_private,
            kek_id=kek_id,
            active=True,
            created_at=now,
        )
    )


def published_keys(conn: Connection) -> list[PublishedKey]:
    """Every card-signing public key not retired, with its insurer's AMC number."""
    rows = conn.execute(
        select(
            insurers.c.amc_number,
            card_signing_keys.c.key_id,
            card_signing_keys.c.public_key,
            card_signing_keys.c.active,
            card_signing_keys.c.created_at,
            card_signing_keys.c.retired_at,
        )
        .join(insurers, insurers.c.id == card_signing_keys.c.insurer_id)
        .where(card_signing_keys.c.retired_at.is_(None))
        .order_by(insurers.c.amc_number, card_signing_keys.c.created_at)
    ).all()
    return [
        PublishedKey(
            r.amc_number, r.key_id, bytes(r.public_key), bool(r.active), r.created_at, r.retired_at
        )
        for r in rows
    ]


# --- cards -------------------------------------------------------------------------------


def _card(row: object) -> CardRow:
    m = row._mapping  # type: ignore[attr-defined]
    return CardRow(
        int(m["insurer_id"]),
        str(m["serial"]),
        str(m["key_id"]),
        bytes(m["family_binding"]),
        bytes(m["secret_digest"]),
        int(m["year"]),
        m["valid_from"],
        m["valid_until"],
        str(m["status"]),
    )


def card_by_serial(conn: Connection, insurer_id: int, serial: str) -> CardRow | None:
    row = conn.execute(
        select(cards).where(cards.c.insurer_id == insurer_id, cards.c.serial == serial)
    ).first()
    return None if row is None else _card(row)


def insert_card(conn: Connection, card: CardRow, *, now: datetime) -> int:
    """Store an active card and supersede the family's earlier active cards.

    Returns how many cards were superseded.
    """
    superseded = conn.execute(
        update(cards)
        .where(
            cards.c.insurer_id == card.insurer_id,
            cards.c.family_binding == card.family_binding,
            cards.c.status == "active",
        )
        .values(
            status="superseded",
            status_changed_at=now,
            status_reason="a new card was issued",
            superseded_by=card.serial,
        )
    ).rowcount
    conn.execute(
        cards.insert().values(
            insurer_id=card.insurer_id,
            serial=card.serial,
            key_id=card.key_id,
            family_binding=card.family_binding,
            secret_digest=card.secret_digest,
            year=card.year,
            valid_from=card.valid_from,
            valid_until=card.valid_until,
            status="active",
            issued_at=now,
        )
    )
    return int(superseded)


def revoke_card(conn: Connection, insurer_id: int, serial: str, reason: str, now: datetime) -> bool:
    """Mark an active card revoked; False if it is not active (or does not exist)."""
    changed = conn.execute(
        update(cards)
        .where(
            cards.c.insurer_id == insurer_id, cards.c.serial == serial, cards.c.status == "active"
        )
        .values(status="revoked", status_changed_at=now, status_reason=reason[:200])
    ).rowcount
    return bool(changed)


def count_cards(conn: Connection, insurer_id: int, status: str | None = None) -> int:
    query = select(func.count()).select_from(cards).where(cards.c.insurer_id == insurer_id)
    if status is not None:
        query = query.where(cards.c.status == status)
    return int(conn.execute(query).scalar_one())


def families(conn: Connection, insurer_id: int) -> Generator[list[BeneficiaryRecord]]:
    """Every family of an insurer (rows sharing ``idx_family``), one list at a time.

    One streamed query ordered by family: memory holds one family, whatever the size.
    Close the generator (``contextlib.closing``) if you stop before the end.
    """
    rows = conn.execution_options(yield_per=1000).execute(
        select(beneficiaries)
        .where(beneficiaries.c.insurer_id == insurer_id)
        .order_by(beneficiaries.c.idx_family, beneficiaries.c.id)
    )
    current: list[BeneficiaryRecord] = []
    try:
        for row in rows:
            record = record_from_row(row)
            if current and current[0].idx_family != record.idx_family:
                yield current
                current = []
            current.append(record)
        if current:
            yield current
    finally:
        rows.close()  # a server-side cursor on PostgreSQL: close it even when abandoned


def count_families(conn: Connection, insurer_id: int) -> int:
    """How many distinct families an insurer has (for the progress bar)."""
    inner = (
        select(beneficiaries.c.idx_family)
        .where(beneficiaries.c.insurer_id == insurer_id)
        .distinct()
        .subquery()
    )
    return int(conn.execute(select(func.count()).select_from(inner)).scalar_one())


# --- canary marks ------------------------------------------------------------------------


def insert_mark(
    conn: Connection, insurer_id: int, mark: bytes, ref_ct: bytes, now: datetime
) -> None:
    conn.execute(
        canary_marks.insert().values(
            insurer_id=insurer_id, mark=mark, ref_ct=ref_ct, planted_at=now
        )
    )


def marks_of(conn: Connection, insurer_id: int) -> list[tuple[bytes, bytes, datetime]]:
    """Every (mark, encrypted reference, planted at) of an insurer."""
    rows = conn.execute(
        select(canary_marks.c.mark, canary_marks.c.ref_ct, canary_marks.c.planted_at).where(
            canary_marks.c.insurer_id == insurer_id
        )
    ).all()
    return [(bytes(r.mark), bytes(r.ref_ct), r.planted_at) for r in rows]


_MARKS_OF = select(canary_marks.c.mark).where(canary_marks.c.insurer_id == bindparam("insurer_id"))


def marks_set(conn: Connection, insurer_id: int) -> set[bytes]:
    """Every canary mark of the insurer (tens of 16-byte digests)."""
    return {bytes(m) for m in conn.execute(_MARKS_OF, {"insurer_id": insurer_id}).scalars()}


def marked(conn: Connection, insurer_id: int, marks: Iterable[bytes]) -> set[bytes]:
    """Which of ``marks`` are canary marks of the insurer."""
    wanted = list(marks)
    if not wanted:
        return set()
    rows = conn.execute(
        select(canary_marks.c.mark).where(
            canary_marks.c.insurer_id == insurer_id, canary_marks.c.mark.in_(wanted)
        )
    ).scalars()
    return {bytes(m) for m in rows}


def delete_marks(conn: Connection, insurer_id: int, marks: Iterable[bytes]) -> None:
    wanted = list(marks)
    if wanted:
        conn.execute(
            canary_marks.delete().where(
                canary_marks.c.insurer_id == insurer_id, canary_marks.c.mark.in_(wanted)
            )
        )


def canary_counts(conn: Connection) -> list[tuple[str, int, datetime | None]]:
    """Per insurer: AMC number, canaries planted, when the newest was planted."""
    rows = conn.execute(
        select(
            insurers.c.amc_number,
            func.count(canary_marks.c.mark),
            func.max(canary_marks.c.planted_at),
        )
        .select_from(insurers.outerjoin(canary_marks, canary_marks.c.insurer_id == insurers.c.id))
        .group_by(insurers.c.amc_number)
        .order_by(insurers.c.amc_number)
    ).all()
    return [(str(r[0]), int(r[1]), r[2]) for r in rows]


def rows_by_id(conn: Connection, insurer_id: int, ids: Iterable[int]) -> list[BeneficiaryRecord]:
    wanted = list(ids)
    if not wanted:
        return []
    rows = conn.execute(
        select(beneficiaries).where(
            beneficiaries.c.insurer_id == insurer_id, beneficiaries.c.id.in_(wanted)
        )
    ).all()
    return [record_from_row(r) for r in rows]


def delete_rows(conn: Connection, insurer_id: int, ids: Iterable[int]) -> int:
    wanted = list(ids)
    if not wanted:
        return 0
    return int(
        conn.execute(
            beneficiaries.delete().where(
                beneficiaries.c.insurer_id == insurer_id, beneficiaries.c.id.in_(wanted)
            )
        ).rowcount
    )


# --- the population canaries are shaped after --------------------------------------------


def contract_mix(conn: Connection, insurer_id: int) -> list[tuple[str, int]]:
    """(contract code, beneficiaries) of every contract the insurer's rows hold."""
    rows = conn.execute(
        select(beneficiaries.c.contract_code, func.count())
        .where(beneficiaries.c.insurer_id == insurer_id)
        .group_by(beneficiaries.c.contract_code)
    ).all()
    return [(str(r[0]), int(r[1])) for r in rows]


def max_beneficiary_id(conn: Connection, insurer_id: int) -> int:
    """The highest beneficiary id of the insurer, 0 if it has none."""
    return int(
        conn.execute(
            select(func.coalesce(func.max(beneficiaries.c.id), 0)).where(
                beneficiaries.c.insurer_id == insurer_id
            )
        ).scalar_one()
    )


def latest_update(conn: Connection, insurer_id: int) -> datetime | None:
    """When the insurer's rows were last written (the newest ``updated_at``), or None."""
    value = conn.execute(
        select(func.max(beneficiaries.c.updated_at)).where(beneficiaries.c.insurer_id == insurer_id)
    ).scalar()
    return value if isinstance(value, datetime) else None


def index_taken(conn: Connection, insurer_id: int, column: str, value: bytes) -> bool:
    """Whether a row of the insurer has ``value`` in the blind-index ``column``."""
    return (
        conn.execute(
            select(beneficiaries.c.id).where(
                beneficiaries.c.insurer_id == insurer_id,
                beneficiaries.c[column] == value,
            )
        ).first()
        is not None
    )


def insert_beneficiary(conn: Connection, values: Mapping[str, object]) -> None:
    """Insert one beneficiary row (``values``: every column, already sealed and indexed)."""
    conn.execute(beneficiaries.insert().values(**values))
