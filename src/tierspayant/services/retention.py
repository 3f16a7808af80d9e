"""Retention: former beneficiaries are deleted once nothing legitimate needs them.

Default period: **2 years after the end of coverage** (:data:`DEFAULT_RETENTION_DAYS`).
Why two years: a provider may bill care given while the person was covered up to two
years later (actions arising from a complementary health contract are time-barred after
two years: art. L.221-11 of the Code de la mutualité for mutuelles, L.114-1 of the Code
des assurances for insurance companies, L.932-13 of the Code de la sécurité sociale for
institutions de prévoyance), and each of those late invoices needs the rights check and
the adjudication to find the record.
After that the platform, which acts as the insurer's processor, has no use for it; the
insurer keeps its own archives. Every extra year kept would add former members to the
people exposed by a breach (the 2024 lesson). The period is configurable
(``--retention-days`` or ``TIERSPAYANT_RETENTION_DAYS``).

A beneficiary is kept, whatever its coverage end, while a claim about it is not final:
received and not yet adjudicated, or adjudicated within the retention period (payment,
reversal or recovery of an undue amount may still follow). Canary records are never
purged. Deleting the row deletes its ciphertexts and its blind indexes (they are columns
of the row). Each insurer's purge is one transaction and one audit event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

import structlog
from sqlalchemy import ColumnElement, Connection, and_, delete, exists, func, or_, select

from tierspayant.services.errors import ServiceError
from tierspayant.services.platform import Platform
from tierspayant.store import audit
from tierspayant.store.claims_tables import claims
from tierspayant.store.tables import beneficiaries, insurers

log = structlog.get_logger("tierspayant.retention")

DEFAULT_RETENTION_DAYS = 730
MIN_RETENTION_DAYS = 90  # below this, late invoices for recent care would find nobody
_DELETE_BATCH = 500


@dataclass(frozen=True, slots=True)
class InsurerPurge:
    amc_number: str
    expired: int  # coverage ended before the cutoff
    held: int  # of those, kept for an unfinished claim
    purged: int


@dataclass(frozen=True, slots=True)
class PurgeReport:
    cutoff: datetime
    dry_run: bool
    insurers: tuple[InsurerPurge, ...]

    @property
    def purged(self) -> int:
        return sum(i.purged for i in self.insurers)

    @property
    def held(self) -> int:
        return sum(i.held for i in self.insurers)


def _open_claim(cutoff: datetime) -> ColumnElement[bool]:
    """A claim about the beneficiary that may still lead to a payment or a recovery."""
    return exists().where(
        claims.c.insurer_id == beneficiaries.c.insurer_id,
        claims.c.beneficiary_id == beneficiaries.c.id,
        or_(
            claims.c.status == "received",
            and_(claims.c.status == "adjudicated", claims.c.adjudicated_at >= cutoff),
        ),
    )


def _expired(insurer_id: int, cutoff: datetime) -> ColumnElement[bool]:
    return and_(
        beneficiaries.c.insurer_id == insurer_id,
        beneficiaries.c.is_canary.is_(False),
        beneficiaries.c.coverage_end.is_not(None),
        beneficiaries.c.coverage_end < cutoff.date(),
    )


def purge(
    platform: Platform,
    actor: str,
    *,
    retention_days: int = DEFAULT_RETENTION_DAYS,
    dry_run: bool = False,
) -> PurgeReport:
    """Delete (or with ``dry_run`` only count) beneficiaries past retention."""
    if retention_days < MIN_RETENTION_DAYS:
        raise ServiceError(
            "retention.too_short",
            f"retention must be at least {MIN_RETENTION_DAYS} days",
            field="retention_days",
        )
    cutoff = datetime.combine(platform.today() - timedelta(days=retention_days), time(), UTC)
    with platform.engine.connect() as conn:
        owners = conn.execute(select(insurers.c.id, insurers.c.amc_number).order_by(insurers.c.id))
        listed = [(int(i), str(a)) for i, a in owners]
    results = tuple(
        _purge_insurer(platform, actor, insurer_id, amc, cutoff, retention_days, dry_run)
        for insurer_id, amc in listed
    )
    report = PurgeReport(cutoff, dry_run, tuple(r for r in results if r.expired))
    log.info("retention.purge", dry_run=dry_run, purged=report.purged, held=report.held)
    return report


def _purge_insurer(
    platform: Platform,
    actor: str,
    insurer_id: int,
    amc: str,
    cutoff: datetime,
    retention_days: int,
    dry_run: bool,
) -> InsurerPurge:
    with platform.engine.begin() as conn:
        expired = _count(conn, _expired(insurer_id, cutoff))
        held = _count(conn, and_(_expired(insurer_id, cutoff), _open_claim(cutoff)))
        if dry_run or expired == held:
            return InsurerPurge(amc, expired, held, 0)
        purged = _delete(conn, insurer_id, cutoff)
        audit.append(
            conn,
            at=platform.now(),
            actor=actor,
            action="retention.purge",
            purpose="retention",
            decision="allow",
            insurer=amc,
            detail={
                "purged": purged,
                "held": held,
                "retention_days": retention_days,
                "cutoff": cutoff.date().isoformat(),
            },
        )
        return InsurerPurge(amc, expired, held, purged)


def _count(conn: Connection, condition: ColumnElement[bool]) -> int:
    return int(
        conn.execute(select(func.count()).select_from(beneficiaries).where(condition)).scalar_one()
    )


def _delete(conn: Connection, insurer_id: int, cutoff: datetime) -> int:
    purged = 0
    while True:
        ids = list(
            conn.execute(
                select(beneficiaries.c.id)
                .where(_expired(insurer_id, cutoff), ~_open_claim(cutoff))
                .limit(_DELETE_BATCH)
            ).scalars()
        )
        if not ids:
            return purged
        purged += conn.execute(
            delete(beneficiaries).where(
                beneficiaries.c.insurer_id == insurer_id, beneficiaries.c.id.in_(ids)
            )
        ).rowcount
