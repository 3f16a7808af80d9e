"""Provider bank details changes: requested, verified by a second person, applied.

The IBAN arrives encrypted by the service (operator key, the ``providers`` row's
associated data) and is copied to ``providers.iban_ct`` unchanged when a verified change
is applied: the payment run keeps reading the provider's row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Connection, exists, func, select, text, update

from tierspayant.store.bank_tables import provider_bank_changes, provider_transfer_returns
from tierspayant.store.tables import conventions, providers


@dataclass(frozen=True, slots=True)
class BankChange:
    id: int
    provider_id: int
    iban_tail: str
    bic: str | None
    status: str  # pending | verified | applied | refused
    requested_by: str
    requested_at: datetime
    verified_by: str | None
    verified_at: datetime | None
    method: str | None
    effective_on: date | None


def _change(row: object) -> BankChange:
    return BankChange(
        id=int(row.id),  # type: ignore[attr-defined]
        provider_id=int(row.provider_id),  # type: ignore[attr-defined]
        iban_tail=row.iban_tail,  # type: ignore[attr-defined]
        bic=row.bic,  # type: ignore[attr-defined]
        status=row.status,  # type: ignore[attr-defined]
        requested_by=row.requested_by,  # type: ignore[attr-defined]
        requested_at=row.requested_at,  # type: ignore[attr-defined]
        verified_by=row.verified_by,  # type: ignore[attr-defined]
        verified_at=row.verified_at,  # type: ignore[attr-defined]
        method=row.method,  # type: ignore[attr-defined]
        effective_on=row.effective_on,  # type: ignore[attr-defined]
    )


def insert_change(
    conn: Connection,
    *,
    provider_id: int,
    iban_ct: bytes,
    key_version: int,
    bic: str | None,
    iban_tail: str,
    requested_by: str,
    at: datetime,
) -> int:
    """Record a pending change; its id."""
    return int(
        conn.execute(
            provider_bank_changes.insert()
            .values(
                provider_id=provider_id,
                iban_ct=iban_ct,
                key_version=key_version,
                bic=bic,
                iban_tail=iban_tail,
                status="pending",
                requested_by=requested_by,
                requested_at=at,
            )
            .returning(provider_bank_changes.c.id)
        ).scalar_one()
    )


def change(conn: Connection, change_id: int, *, lock: bool = False) -> BankChange | None:
    query = select(provider_bank_changes).where(provider_bank_changes.c.id == change_id)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).first()
    return None if row is None else _change(row)


def open_changes(conn: Connection, provider_id: int) -> list[BankChange]:
    """The provider's pending and verified (not yet applied) changes, oldest first."""
    rows = conn.execute(
        select(provider_bank_changes)
        .where(
            provider_bank_changes.c.provider_id == provider_id,
            provider_bank_changes.c.status.in_(("pending", "verified")),
        )
        .order_by(provider_bank_changes.c.id)
    )
    return [_change(r) for r in rows]


def changes_of(conn: Connection, provider_id: int, limit: int = 20) -> list[BankChange]:
    """The provider's changes, newest first."""
    rows = conn.execute(
        select(provider_bank_changes)
        .where(provider_bank_changes.c.provider_id == provider_id)
        .order_by(provider_bank_changes.c.id.desc())
        .limit(limit)
    )
    return [_change(r) for r in rows]


def pending_changes(
    conn: Connection, *, insurer_id: int | None = None, limit: int = 200
) -> list[BankChange]:
    """Changes waiting for a verification, oldest first: of every provider, or of the
    providers under a convention with ``insurer_id``."""
    query = select(provider_bank_changes).where(provider_bank_changes.c.status == "pending")
    if insurer_id is not None:
        query = query.where(
            exists().where(
                conventions.c.insurer_id == insurer_id,
                conventions.c.provider_id == provider_bank_changes.c.provider_id,
            )
        )
    rows = conn.execute(query.order_by(provider_bank_changes.c.id).limit(limit))
    return [_change(r) for r in rows]


def mark_verified(
    conn: Connection, change_id: int, *, by: str, at: datetime, method: str, effective_on: date
) -> bool:
    """Pending → verified; False if it was no longer pending."""
    result = conn.execute(
        update(provider_bank_changes)
        .where(provider_bank_changes.c.id == change_id, provider_bank_changes.c.status == "pending")
        .values(
            status="verified",
            verified_by=by,
            verified_at=at,
            method=method,
            effective_on=effective_on,
        )
    )
    return result.rowcount == 1


def mark_refused(conn: Connection, change_id: int, *, by: str, at: datetime) -> bool:
    """Pending or verified → refused; False if it was neither."""
    result = conn.execute(
        update(provider_bank_changes)
        .where(
            provider_bank_changes.c.id == change_id,
            provider_bank_changes.c.status.in_(("pending", "verified")),
        )
        .values(
            status="refused",
            verified_by=func.coalesce(provider_bank_changes.c.verified_by, by),
            closed_at=at,
        )
    )
    return result.rowcount == 1


def apply_due(conn: Connection, provider_id: int, on: date, at: datetime) -> int | None:
    """Apply the provider's latest verified change whose cooling-off ended by ``on``.

    Its IBAN and BIC are copied to the provider's row and it becomes ``applied`` (older
    verified ones too, superseded). Returns the applied change's id, or None.
    """
    due = conn.execute(
        select(provider_bank_changes)
        .where(
            provider_bank_changes.c.provider_id == provider_id,
            provider_bank_changes.c.status == "verified",
            provider_bank_changes.c.effective_on <= on,
        )
        .order_by(provider_bank_changes.c.id.desc())
    ).all()
    if not due:
        return None
    latest = due[0]
    conn.execute(
        update(providers)
        .where(providers.c.id == provider_id)
        .values(iban_ct=latest.iban_ct, key_version=latest.key_version, bic=latest.bic)
    )
    conn.execute(
        update(provider_bank_changes)
        .where(provider_bank_changes.c.id.in_([int(r.id) for r in due]))
        .values(status="applied", closed_at=at)
    )
    return int(latest.id)


def account_version(conn: Connection, provider_id: int, as_of: datetime | None = None) -> int:
    """Which account the provider's row holds (held at ``as_of``): the last applied
    change, 0 the account it was registered with."""
    query = select(func.max(provider_bank_changes.c.id)).where(
        provider_bank_changes.c.provider_id == provider_id,
        provider_bank_changes.c.status == "applied",
    )
    if as_of is not None:
        query = query.where(provider_bank_changes.c.closed_at <= as_of)
    value = conn.execute(query).scalar_one()
    return 0 if value is None else int(value)


def cooling_off(conn: Connection, provider_id: int, on: date) -> BankChange | None:
    """A verified change of the provider still in its cooling-off period on ``on``."""
    row = conn.execute(
        select(provider_bank_changes)
        .where(
            provider_bank_changes.c.provider_id == provider_id,
            provider_bank_changes.c.status == "verified",
            provider_bank_changes.c.effective_on > on,
        )
        .order_by(provider_bank_changes.c.id.desc())
        .limit(1)
    ).first()
    return None if row is None else _change(row)


_BANK_CHANGE_LOCK = 7_272_051  # advisory lock class: one provider's bank details changes


def lock_provider_changes(conn: Connection, provider_id: int) -> None:
    """Serialise requests for one provider (two at once would both find none pending)."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            text("SELECT pg_advisory_xact_lock(:k, :p)"),
            {"k": _BANK_CHANGE_LOCK, "p": provider_id},
        )


def payment_flags(conn: Connection, provider_id: int) -> tuple[bool, bool]:
    """(a verified change not yet applied, a returned transfer not yet paid again) for
    the provider, in one query: the payment run looks further only when one is set."""
    row = conn.execute(
        select(
            exists().where(
                provider_bank_changes.c.provider_id == provider_id,
                provider_bank_changes.c.status == "verified",
            ),
            exists().where(
                provider_transfer_returns.c.provider_id == provider_id,
                provider_transfer_returns.c.reissue_run_key.is_(None),
            ),
        )
    ).one()
    return bool(row[0]), bool(row[1])
