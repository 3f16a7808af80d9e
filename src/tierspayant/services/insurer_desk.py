"""The claims officer's desk of the insurer portal: one prior authorisation with its quote
lines, the member's contract and remaining ceilings; the search of the insurer's invoices
and one invoice with its lines, decisions and payments; one provider's figures.

Authorisation: insurer staff only, and everything is read within the staff member's own
insurer (``principal.insurer_id``): another insurer's agreement, claim or provider reads
as unknown (None), the same as a number that does not exist. Nothing here searches or
lists people; a person appears only behind a document the officer named (an agreement, an
invoice), by contract and ceilings, never by name or NIR.

Audit: reading an agreement (``insurer.prior_auth_read``) or an invoice
(``insurer.claim_read``) is a read of a member's health data: each is appended in the
same transaction as the read, under the person's pseudonym, purpose ``claims_management``.
A search (``insurer.claim_search``) is audited with the filters used (not their values,
which name providers and invoices) and the number of rows shown.

A connection the database dropped under a page (a restart, a failover) is replaced and the
page's work run once more (``store.reconnect``), unless its COMMIT had been sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import Connection

from tierspayant.app.platform import Platform
from tierspayant.domain.codes import AuthCode
from tierspayant.domain.facts import held_by
from tierspayant.domain.prior_auth import GuaranteedLine
from tierspayant.security.audit import subject_pseudonym
from tierspayant.security.principal import Principal, PrincipalKind
from tierspayant.services.errors import Forbidden
from tierspayant.services.member_portal import CeilingStatus, ceiling_statuses
from tierspayant.services.prior_auth import stored_lines
from tierspayant.store import audit, reconnect, reservations
from tierspayant.store.adjudication import counter_history
from tierspayant.store.beneficiaries import record_by_id
from tierspayant.store.read_models import desk, directory
from tierspayant.store.read_models.backoffice import WEEKS
from tierspayant.store.read_models.desk import (
    AgreementRecord,
    ClaimFilters,
    ClaimPage,
    ClaimRecord,
    ProviderFigures,
)

PURPOSE = "claims_management"

__all__ = [
    "AgreementView",
    "ClaimFilters",
    "ClaimPage",
    "ClaimRecord",
    "MemberContract",
    "ProviderFigures",
    "QuoteLine",
    "agreement",
    "claim",
    "figure_mondays",
    "provider",
    "search",
]


@dataclass(frozen=True, slots=True)
class _Staff:
    actor: str
    insurer_id: int
    amc: str


def _staff(platform: Platform, principal: Principal) -> _Staff:
    if principal.kind is not PrincipalKind.INSURER_STAFF or principal.insurer_id is None:
        raise Forbidden(AuthCode.WRONG_PRINCIPAL, "the claims desk is open to insurer staff")
    insurer_id = principal.insurer_id
    amc, _ = reconnect.read(platform.engine, lambda conn: directory.insurer_amc(conn, insurer_id))
    return _Staff(principal.id, insurer_id, amc)


def _pseudonym(platform: Platform, staff: _Staff, beneficiary_id: int) -> str:
    key = platform.operator_keys().derive("audit.subject")
    return subject_pseudonym(key, staff.amc, str(beneficiary_id))


@dataclass(frozen=True, slots=True)
class QuoteLine:
    """One line of a quote: the provider's amounts, the AMO share, what the agreement
    guarantees. ``br_cents``/``amo_cents`` are None on agreements stored without them."""

    act_code: str
    family: str
    quantity: int
    billed_cents: int
    br_cents: int | None
    amo_cents: int | None
    guaranteed_cents: int

    @property
    def requested_cents(self) -> int | None:
        """What is left for the complementary insurer to cover: billed less the AMO."""
        return None if self.amo_cents is None else self.billed_cents - self.amo_cents


def _quote(line: GuaranteedLine) -> QuoteLine:
    return QuoteLine(
        line.act_code,
        line.family,
        line.quantity,
        line.billed_cents,
        line.br_cents,
        line.amo_cents,
        line.guaranteed_cents,
    )


@dataclass(frozen=True, slots=True)
class MemberContract:
    """The member behind an agreement, as the officer may see them: a contract and its
    ceilings, no identity. ``label`` is empty when the catalogue no longer has the code."""

    code: str
    label: str
    coverage_start: date
    coverage_end: date | None
    covered: bool  # on the agreement's care date
    ceilings: tuple[CeilingStatus, ...]  # those drawn on by the agreement's domain


@dataclass(frozen=True, slots=True)
class AgreementView:
    record: AgreementRecord
    lines: tuple[QuoteLine, ...]
    member: MemberContract | None  # None: the request matched nobody
    today: date

    @property
    def billed_cents(self) -> int:
        return sum(line.billed_cents for line in self.lines)

    @property
    def br_cents(self) -> int | None:
        known = [line.br_cents for line in self.lines]
        return None if None in known else sum(v for v in known if v is not None)

    @property
    def amo_cents(self) -> int | None:
        known = [line.amo_cents for line in self.lines]
        return None if None in known else sum(v for v in known if v is not None)

    @property
    def requested_cents(self) -> int | None:
        amo = self.amo_cents
        return None if amo is None else self.billed_cents - amo


def _member_contract(
    platform: Platform, conn: Connection, staff: _Staff, record: AgreementRecord
) -> MemberContract | None:
    person = record_by_id(conn, staff.insurer_id, record.beneficiary_id)
    if person is None:
        return None
    today = platform.today()
    contract = platform.catalogues.contract(conn, staff.insurer_id, person.contract_code)
    ceilings: tuple[CeilingStatus, ...] = ()
    if contract is not None and person.covered_on(today):
        history = counter_history(conn, staff.insurer_id, [person.id])
        held = reservations.open_reservations(conn, staff.insurer_id, [person.id], today)
        reserved = held_by(((r.id, r.uses) for r in held.get(person.id, [])), None)
        ceilings = tuple(
            c
            for c in ceiling_statuses(contract, today, history.get(person.id, []), reserved)
            if any(domain == record.domain for domain, _ in c.rules)
        )
    return MemberContract(
        person.contract_code,
        "" if contract is None else contract.label,
        person.coverage_start,
        person.coverage_end,
        person.covered_on(record.care_date),
        ceilings,
    )


def _audit(
    platform: Platform,
    conn: Connection,
    staff: _Staff,
    action: str,
    detail: dict[str, str | int | bool | None],
    subject: str | None = None,
) -> None:
    """One allowed read of the claims desk, in the reader's transaction."""
    audit.append(
        conn,
        at=platform.now(),
        actor=staff.actor,
        action=action,
        purpose=PURPOSE,
        subject=subject,
        insurer=staff.amc,
        decision="allow",
        detail=detail,
    )


def agreement(platform: Platform, principal: Principal, number: str) -> AgreementView | None:
    """The insurer's agreement ``number`` with its quote lines, the member's contract and
    what remains of the ceilings its domain draws on today; None if the insurer has no
    such agreement. Audited (``insurer.prior_auth_read``)."""
    staff = _staff(platform, principal)

    def read(conn: Connection) -> tuple[AgreementRecord, MemberContract | None] | None:
        record = desk.agreement(conn, staff.insurer_id, number[:24])
        if record is None:
            return None
        known = record.beneficiary_id > 0
        member = _member_contract(platform, conn, staff, record) if known else None
        _audit(
            platform,
            conn,
            staff,
            "insurer.prior_auth_read",
            {"agreement": record.number, "ceilings": len(member.ceilings) if member else 0},
            subject=_pseudonym(platform, staff, record.beneficiary_id) if known else None,
        )
        return record, member

    found = reconnect.write_transaction(platform.engine, read)
    if found is None:
        return None
    record, member = found
    lines = tuple(_quote(line) for line in stored_lines(record.lines))
    return AgreementView(record, lines, member, platform.today())


def search(
    platform: Platform, principal: Principal, filters: ClaimFilters, page: int = 1
) -> ClaimPage:
    """One page of the insurer's invoices matching ``filters`` (audited as
    ``insurer.claim_search``: which filters, not their values)."""
    staff = _staff(platform, principal)
    used = ",".join(
        name for name, value in zip(_FILTER_NAMES, _filter_values(filters), strict=True) if value
    )

    def read(conn: Connection) -> ClaimPage:
        found = desk.search_claims(conn, staff.insurer_id, filters, page)
        _audit(
            platform,
            conn,
            staff,
            "insurer.claim_search",
            {"filters": used, "page": found.page, "rows": len(found.rows)},
        )
        return found

    return reconnect.write_transaction(platform.engine, read)


_FILTER_NAMES = ("invoice", "provider", "from", "to", "status", "domain", "reason")


def _filter_values(filters: ClaimFilters) -> tuple[object, ...]:
    return (
        filters.invoice,
        filters.provider,
        filters.care_from,
        filters.care_to,
        filters.status,
        filters.domain,
        filters.reason,
    )


def claim(platform: Platform, principal: Principal, claim_id: int) -> ClaimRecord | None:
    """One of the insurer's invoices with its lines, decisions and payments; None if the
    insurer has none of that id. Audited (``insurer.claim_read``)."""
    staff = _staff(platform, principal)

    def read(conn: Connection) -> ClaimRecord | None:
        found = desk.claim(conn, staff.insurer_id, claim_id)
        if found is None:
            return None
        known = found.beneficiary_id > 0
        _audit(
            platform,
            conn,
            staff,
            "insurer.claim_read",
            {"claim": found.id, "lines": len(found.lines)},
            subject=_pseudonym(platform, staff, found.beneficiary_id) if known else None,
        )
        return found

    return reconnect.write_transaction(platform.engine, read)


def figure_mondays(today: date, weeks: int = WEEKS) -> list[date]:
    """The Mondays of the last ``weeks`` ISO weeks up to ``today``, oldest first: the
    window of the invoice figures and of a provider's page."""
    monday = today - timedelta(days=today.weekday())
    return [monday - timedelta(weeks=n) for n in range(weeks - 1, -1, -1)]


def provider(platform: Platform, principal: Principal, provider_id: int) -> ProviderFigures | None:
    """A provider as the insurer sees it over the recent weeks; None when it has neither
    a claim nor a convention with the insurer. A provider is not a member: not audited."""
    staff = _staff(platform, principal)
    mondays = figure_mondays(platform.today())
    return reconnect.read(
        platform.engine,
        lambda conn: desk.provider_figures(conn, staff.insurer_id, provider_id, mondays),
    )
