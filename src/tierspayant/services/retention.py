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

The same run deletes the answers kept under idempotency keys for more than their 24 hours
(:func:`tierspayant.services.idempotency.purge_expired`): each holds a calculation's
amounts and engagement number, and nothing needs them once no retry may come.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

import structlog

from tierspayant.app.platform import Platform
from tierspayant.domain.codes import PlatformCode
from tierspayant.services import idempotency
from tierspayant.services.errors import ServiceError
from tierspayant.store import audit
from tierspayant.store import retention as store
from tierspayant.store.insurers import insurer_numbers

log = structlog.get_logger("tierspayant.retention")

DEFAULT_RETENTION_DAYS = 730
MIN_RETENTION_DAYS = 90  # below this, late invoices for recent care would find nobody


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
    idempotency_keys: int = 0  # answers kept under idempotency keys, past their 24 hours

    @property
    def purged(self) -> int:
        return sum(i.purged for i in self.insurers)

    @property
    def held(self) -> int:
        return sum(i.held for i in self.insurers)


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
            PlatformCode.RETENTION_TOO_SHORT,
            f"retention must be at least {MIN_RETENTION_DAYS} days",
            field="retention_days",
        )
    cutoff = datetime.combine(platform.today() - timedelta(days=retention_days), time(), UTC)
    with platform.engine.connect() as conn:
        listed = insurer_numbers(conn)
    results = tuple(
        _purge_insurer(platform, actor, insurer_id, amc, cutoff, retention_days, dry_run)
        for insurer_id, amc in listed
    )
    keys = idempotency.purge_expired(platform, dry_run=dry_run)
    report = PurgeReport(cutoff, dry_run, tuple(r for r in results if r.expired), keys)
    log.info(
        "retention.purge",
        dry_run=dry_run,
        purged=report.purged,
        held=report.held,
        idempotency_keys=keys,
    )
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
        expired = store.count_expired(conn, insurer_id, cutoff)
        held = store.count_held(conn, insurer_id, cutoff)
        if dry_run or expired == held:
            return InsurerPurge(amc, expired, held, 0)
        purged = store.delete_expired(conn, insurer_id, cutoff)
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
