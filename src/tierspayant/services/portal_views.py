"""The portals' screens that only read: each function runs a read model of
``store.read_models`` scoped by the caller's own tenant, once more on a new connection if
the database dropped the first (``store.reconnect.read``: a restart, a failover), and
returns its frozen dataclasses. Nothing here returns identity; the member's own data,
which is identity and is audited, goes through ``services.member_portal``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from tierspayant.app.platform import Platform
from tierspayant.services import enrolment
from tierspayant.store import reconnect
from tierspayant.store.read_models import aware, backoffice, directory, insurer, provider, security
from tierspayant.store.read_models.backoffice import InvoiceFigures, StatementRow
from tierspayant.store.read_models.insurer import (
    HonouredEngagement,
    ImportRow,
    LookupStats,
    PendingAgreement,
)
from tierspayant.store.read_models.provider import (
    ConventionRow,
    InvoicePage,
    InvoiceQuery,
    InvoiceRow,
    RefusedLine,
)
from tierspayant.store.read_models.security import AlertRow, StructureDay, SuspendedRow

LOOKUP_DAYS = 14
TOP_STRUCTURES = 20

__all__ = [
    "AlertRow",
    "ConventionRow",
    "HonouredEngagement",
    "ImportRow",
    "InvoiceFigures",
    "InvoicePage",
    "InvoiceQuery",
    "InvoiceRow",
    "LookupStats",
    "PendingAgreement",
    "RefusedLine",
    "StatementRow",
    "StructureDay",
    "SuspendedRow",
    "Who",
    "alerts",
    "aware",
    "canary_alert_counts",
    "honoured_engagements",
    "import_history",
    "insurer_amc",
    "insurer_lookup_stats",
    "invoice_figures",
    "pending_agreements",
    "provider_conventions",
    "provider_invoices",
    "provider_refused_lines",
    "statements",
    "structure_figures",
    "suspended_principals",
    "who",
]


def provider_conventions(platform: Platform, provider_id: int) -> list[ConventionRow]:
    """The tiers payant agreements of one provider (its own only)."""
    return reconnect.read(
        platform.engine, lambda conn: provider.provider_conventions(conn, provider_id)
    )


@dataclass(frozen=True, slots=True)
class Who:
    """Who is logged in, as the portals' header says it: the person and the structure
    (« Pharmacie des Lilas — FINESS 750000001 »), in French."""

    person: str
    structure: str | None


def who(platform: Platform, account_id: int) -> Who | None:
    """The header's names of the logged-in account (its own: no one else's)."""
    row = reconnect.read(platform.engine, lambda conn: directory.account_header(conn, account_id))
    if row is None:
        return None
    structure: str | None = None
    if row.provider_name is not None:
        number = (
            f"FINESS {row.finess}"
            if row.finess
            else f"SIRET {row.siret}"
            if row.siret
            else f"n° AM {row.am_number}"
        )
        structure = f"{row.provider_name} — {number}"
    elif row.insurer_name is not None:
        structure = f"{row.insurer_name} — AMC {row.amc_number}"
    elif row.kind == "operator_staff":
        structure = "Opérateur tierspayant"
    person = row.display_name or row.login or (f"RPPS {row.rpps}" if row.rpps else "—")
    return Who(person, structure)


def provider_invoices(platform: Platform, provider_id: int, query: InvoiceQuery) -> InvoicePage:
    """The provider's own invoices (« Mes factures »): numbers, dates and amounts, no
    identity."""
    return reconnect.read(
        platform.engine, lambda conn: provider.provider_invoices(conn, provider_id, query)
    )


def provider_refused_lines(platform: Platform, provider_id: int) -> list[RefusedLine]:
    """The rejected or reduced lines of the provider's invoices in force (« Mes rejets »)."""
    return reconnect.read(platform.engine, lambda conn: provider.refused_lines(conn, provider_id))


def insurer_amc(platform: Platform, insurer_id: int) -> tuple[str, str]:
    """AMC number and name of an insurer."""
    return reconnect.read(platform.engine, lambda conn: directory.insurer_amc(conn, insurer_id))


def insurer_lookup_stats(platform: Platform, amc: str, days: int = LOOKUP_DAYS) -> LookupStats:
    """Rights checks on the insurer's members per day and per care domain (audit log)."""
    since = platform.now() - timedelta(days=days)
    return reconnect.read(
        platform.engine, lambda conn: insurer.lookup_stats(conn, amc, platform.today(), since, days)
    )


def import_history(platform: Platform, insurer_id: int) -> list[ImportRow]:
    """The insurer's latest beneficiary imports, newest first; a run whose process died is
    marked ``interrupted`` first, so the page never shows a dead run as running."""
    enrolment.interrupted_runs(platform, enrolment.WATCH_ACTOR, insurer_id)
    return reconnect.read(platform.engine, lambda conn: insurer.import_history(conn, insurer_id))


def pending_agreements(platform: Platform, insurer_id: int) -> list[PendingAgreement]:
    """Prior authorisations of one insurer waiting for a person, oldest first."""
    return reconnect.read(
        platform.engine, lambda conn: insurer.pending_agreements(conn, insurer_id)
    )


def honoured_engagements(platform: Platform, insurer_id: int) -> list[HonouredEngagement]:
    """Lines of the insurer paid on the operator's engagement after it ended the rights."""
    return reconnect.read(
        platform.engine, lambda conn: insurer.honoured_engagements(conn, insurer_id)
    )


def invoice_figures(platform: Platform, insurer_id: int) -> InvoiceFigures:
    """The insurer's adjudicated lines per week and domain, refusal reasons, top
    providers, over the last weeks of care dates."""
    return reconnect.read(
        platform.engine, lambda conn: backoffice.invoice_figures(conn, insurer_id, platform.today())
    )


def statements(platform: Platform, insurer_id: int) -> list[StatementRow]:
    """The insurer's monthly billing statements, newest first (at most three years)."""
    return reconnect.read(platform.engine, lambda conn: backoffice.statements(conn, insurer_id))


def alerts(platform: Platform, *, insurer: str | None = None) -> list[AlertRow]:
    """Latest security alerts; an insurer sees only those naming it."""
    return reconnect.read(platform.engine, lambda conn: security.alerts(conn, insurer=insurer))


def canary_alert_counts(platform: Platform) -> dict[str | None, int]:
    """Canary alerts per insurer's AMC number (None: alerts that name no insurer)."""
    return reconnect.read(platform.engine, security.canary_alert_counts)


def suspended_principals(platform: Platform) -> list[SuspendedRow]:
    """Suspended principals, with any pending reinstatement request."""
    return reconnect.read(
        platform.engine, lambda conn: security.suspended_principals(conn, platform.now())
    )


def structure_figures(platform: Platform) -> list[StructureDay]:
    """Today's distinct beneficiaries per structure against its cap (live guard counters),
    or the last recorded day when the guard is off."""
    guard = platform.guard
    if guard is not None:
        day = guard.day_of(platform.now())
        figures = []
        for item in guard.day_summary(day):
            caps = guard.caps(item.structure, item.category, day)
            figures.append(
                StructureDay(
                    item.structure, item.category, item.distinct_lookups, caps.soft, caps.hard
                )
            )
        return sorted(figures, key=lambda f: -f.distinct / max(f.cap, 1))[:TOP_STRUCTURES]
    return reconnect.read(platform.engine, security.last_recorded_day)
