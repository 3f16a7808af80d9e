"""The member's own data, for the member portal: who consulted my rights and when, my
identity and coverage (for a data-protection request), my family's card, my contract's
guarantees and what my family consumed of its ceilings, my family's paid care lines, and
how to reach my insurer.

Authorisation: the principal must be a member, and everything is found from the
principal alone (its insurer and beneficiary): no parameter names a beneficiary, a
subject or a family, so a member can read nothing of another family. Identity fields are
decrypted here, for the member only, and the NIR leaves masked. Each read is audited in
the same transaction as it is made (``member.consultations``, ``member.data_export``,
``member.cards``, ``member.guarantees``, ``member.statement``, purpose
``data_subject_access``); issuing a card is audited by ``services.cards.issue_family_card``
(``card.issue``). The insurer's contact is the insurer's public information: not audited.

The family is the beneficiaries sharing the member's member number (the ``idx_family``
blind index of the member's own row): the only family a member page ever reads. The
ceilings are read through the facts pricing reads (``domain.facts.counters_on`` over the
stored counter history and the open engagements), on today's date, so what the page says
remains is what the next calculation would find.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

from sqlalchemy import Connection

from tierspayant.app.platform import Platform
from tierspayant.domain.codes import AuthCode
from tierspayant.domain.facts import CounterUse, counters_on, held_by
from tierspayant.domain.guarantees import Contract, Period, counter_window
from tierspayant.domain.identifiers import parse_nir
from tierspayant.security.audit import subject_pseudonym
from tierspayant.security.crypto import FieldCipher
from tierspayant.security.identity import open_column
from tierspayant.security.principal import Principal, PrincipalKind
from tierspayant.services import cards
from tierspayant.services.errors import Forbidden
from tierspayant.store import audit, reservations
from tierspayant.store.adjudication import counter_history
from tierspayant.store.beneficiaries import BeneficiaryRecord, family_members, find_by_nir_index
from tierspayant.store.keys import insurer_scope
from tierspayant.store.read_models import directory, member
from tierspayant.store.read_models.member import Consultation, FamilyCard
from tierspayant.store.transactions import write_transaction

PURPOSE = "data_subject_access"
CONSULTATIONS = "member.consultations"
DATA_EXPORT = "member.data_export"
CARDS = "member.cards"
COVERAGE = "member.coverage"
GUARANTEES = "member.guarantees"
STATEMENT = "member.statement"
STATEMENT_LINES = 500
# Statuses of a paid line as the member reads them: accepted or reduced, it was paid.
_PAID = ("accepted", "reduced")

__all__ = [
    "CARDS",
    "CONSULTATIONS",
    "COVERAGE",
    "DATA_EXPORT",
    "GUARANTEES",
    "STATEMENT",
    "CeilingStatus",
    "Consultation",
    "FamilyCard",
    "FamilyCeilings",
    "FamilyStatementLine",
    "InsurerContact",
    "MemberExport",
    "MemberGuarantees",
    "MemberRecord",
    "NewCard",
    "OwnCoverage",
    "consultations",
    "data_export",
    "family_statement",
    "guarantees",
    "insurer_contact",
    "new_card_pdf",
    "own_cards",
    "own_coverage",
]


@dataclass(frozen=True, slots=True)
class MemberRecord:
    """The member's own identity and coverage, decrypted for them (NIR masked)."""

    insurer: str  # AMC number
    nir_masked: str
    birth_rank: int
    member_number: str
    last_name: str
    first_name: str
    birth_date: str
    contract: str
    coverage_start: date
    coverage_end: date | None
    css: bool


@dataclass(frozen=True, slots=True)
class OwnCoverage:
    """The member's own contract coverage: no identity at all."""

    insurer: str  # AMC number
    contract: str
    coverage_start: date
    coverage_end: date | None


@dataclass(frozen=True, slots=True)
class MemberExport:
    """What a data-protection request returns: the history and the member's record."""

    history: list[Consultation]
    record: MemberRecord


@dataclass(frozen=True, slots=True)
class NewCard:
    year: int
    pdf: bytes


@dataclass(frozen=True, slots=True)
class InsurerContact:
    """How the member reaches their insurer: the catalogue's ``contact`` block, the name
    of the insurer's record when the catalogue gives none (empty fields are not shown)."""

    name: str
    phone: str = ""
    email: str = ""
    address: str = ""


@dataclass(frozen=True, slots=True)
class CeilingStatus:
    """One ceiling of a contract and what one beneficiary consumed of it in the window
    that contains today (the whole calendar year, or the rolling period ending today)."""

    counter: str
    period: Period
    window: tuple[date, date]
    amount_cents: int | None
    count: int | None
    includes_tm: bool
    used_cents: int
    used_units: int
    rules: tuple[tuple[str, str], ...]  # (domain, family) of the rules drawing on it

    @property
    def remaining_cents(self) -> int | None:
        if self.amount_cents is None:
            return None
        return max(0, self.amount_cents - self.used_cents)

    @property
    def remaining_units(self) -> int | None:
        if self.count is None:
            return None
        return max(0, self.count - self.used_units)


@dataclass(frozen=True, slots=True)
class FamilyCeilings:
    """A beneficiary of the family (first name only) and their ceilings."""

    first_name: str
    own: bool  # the member themself
    contract_code: str
    ceilings: tuple[CeilingStatus, ...]


@dataclass(frozen=True, slots=True)
class MemberGuarantees:
    """The member's contract as the catalogue in force gives it, and the family's
    ceilings on ``on``. ``contract`` is None when the catalogue no longer has the code."""

    on: date
    contract_code: str
    contract: Contract | None
    catalogue_version: str
    coverage_start: date
    coverage_end: date | None
    family: tuple[FamilyCeilings, ...]
    contact: InsurerContact


@dataclass(frozen=True, slots=True)
class FamilyStatementLine:
    """A paid care line of the family: for whom (first name), by whom (the structure's
    name in the directory), and the shares."""

    first_name: str
    own: bool
    care_date: date
    payment_date: date
    domain: str
    act_code: str
    family: str | None
    provider_name: str
    provider_category: str
    billed_cents: int
    amo_cents: int
    amc_cents: int
    remainder_cents: int
    status: str  # paid | undue | cancelled…


@dataclass(frozen=True, slots=True)
class _Subject:
    """The member as the audit log and the beneficiaries table name them."""

    actor: str
    insurer_id: int
    beneficiary_id: int
    amc: str
    pseudonym: str
    insurer_name: str = ""


@dataclass(frozen=True, slots=True)
class _OwnRow:
    """The member's beneficiary row and the cipher that opens its columns."""

    record: BeneficiaryRecord
    cipher: FieldCipher

    def clear(self, column: str) -> str:
        blob = getattr(self.record, f"{column}_ct")
        return open_column(self.cipher, self.record.insurer_id, self.record.idx_nir, column, blob)


def _subject(platform: Platform, principal: Principal) -> _Subject:
    """Authorise: members only, and only their own beneficiary."""
    if (
        principal.kind is not PrincipalKind.MEMBER
        or principal.insurer_id is None
        or principal.beneficiary_id is None
    ):
        raise Forbidden(AuthCode.WRONG_PRINCIPAL, "the member portal is open to members only")
    with platform.engine.connect() as conn:
        amc, name = directory.insurer_amc(conn, principal.insurer_id)
    # The audit subject of a beneficiary, as ``services.identification`` computes it.
    key = platform.operator_keys().derive("audit.subject")
    pseudonym = subject_pseudonym(key, amc, str(principal.beneficiary_id))
    return _Subject(
        principal.id, principal.insurer_id, principal.beneficiary_id, amc, pseudonym, name
    )


def _own_row(platform: Platform, subject: _Subject) -> _OwnRow:
    """The session's own beneficiary: the only row a member page ever opens."""
    with platform.engine.connect() as conn:
        idx = member.nir_index(conn, subject.insurer_id, subject.beneficiary_id)
        record = find_by_nir_index(conn, subject.insurer_id, idx)
        assert record is not None
        cipher = FieldCipher(
            platform.keys.version(conn, insurer_scope(subject.amc), record.key_version)
        )
    return _OwnRow(record, cipher)


def _history(platform: Platform, subject: _Subject, action: str) -> list[Consultation]:
    """The member's history, read and audited in one transaction."""
    with write_transaction(platform.engine) as conn:
        rows = member.consultations(conn, subject.pseudonym)
        _audit_read(conn, platform, subject, action)
    return rows


def consultations(platform: Platform, principal: Principal) -> list[Consultation]:
    """Every audited access to the member's own beneficiary, newest first (audited as
    ``member.consultations``)."""
    return _history(platform, _subject(platform, principal), CONSULTATIONS)


def data_export(platform: Platform, principal: Principal) -> MemberExport:
    """The member's history (audited as ``member.data_export``) and own record."""
    subject = _subject(platform, principal)
    history = _history(platform, subject, DATA_EXPORT)
    own = _own_row(platform, subject)
    record = own.record
    return MemberExport(
        history,
        MemberRecord(
            insurer=subject.amc,
            nir_masked=parse_nir(own.clear("nir")).masked(),
            birth_rank=record.birth_rank,
            member_number=own.clear("member_number"),
            last_name=own.clear("last_name"),
            first_name=own.clear("first_name"),
            birth_date=own.clear("birth_date"),
            contract=record.contract_code,
            coverage_start=record.coverage_start,
            coverage_end=record.coverage_end,
            css=record.css,
        ),
    )


def own_coverage(platform: Platform, principal: Principal) -> OwnCoverage:
    """The member's own contract and its period (audited as ``member.coverage``)."""
    subject = _subject(platform, principal)
    record = _own_row(platform, subject).record
    with write_transaction(platform.engine) as conn:
        _audit_read(conn, platform, subject, COVERAGE)
    return OwnCoverage(
        subject.amc, record.contract_code, record.coverage_start, record.coverage_end
    )


def own_cards(platform: Platform, principal: Principal) -> list[FamilyCard]:
    """The cards of the member's family this year, read and audited (``member.cards``) in
    one transaction."""
    subject = _subject(platform, principal)
    own = _own_row(platform, subject)
    with write_transaction(platform.engine) as conn:
        keys = platform.keys.active(conn, insurer_scope(subject.amc))
        binding = cards.family_binding(keys, own.record.idx_family)
        rows = member.family_cards(conn, own.record.insurer_id, binding, platform.today().year)
        _audit_read(conn, platform, subject, CARDS)
    return rows


def new_card_pdf(platform: Platform, principal: Principal) -> NewCard:
    """Issue the member's family card for this year (replacing the earlier one) and
    return its PDF; ``services.cards`` audits the issue."""
    subject = _subject(platform, principal)
    own = _own_row(platform, subject)
    year = platform.today().year
    with tempfile.TemporaryDirectory(prefix="tp-card-") as folder:
        directory_path = Path(folder)
        cards.issue_family_card(
            platform, subject.amc, own.clear("member_number"), year, directory_path, subject.actor
        )
        (pdf,) = directory_path.glob("*.pdf")
        return NewCard(year, pdf.read_bytes())


def _audit_read(
    conn: Connection, platform: Platform, subject: _Subject, action: str, **detail: int
) -> None:
    audit.append(
        conn,
        at=platform.now(),
        actor=subject.actor,
        action=action,
        purpose=PURPOSE,
        subject=subject.pseudonym,
        insurer=subject.amc,
        decision="allow",
        detail=detail or None,
    )


def _contact(platform: Platform, conn: Connection, subject: _Subject) -> InsurerContact:
    catalogue = platform.catalogues.latest(conn, subject.insurer_id)
    given = None if catalogue is None else catalogue.contact
    if given is None:
        return InsurerContact(subject.insurer_name)
    return InsurerContact(
        given.name or subject.insurer_name, given.phone, given.email, given.address
    )


def insurer_contact(platform: Platform, principal: Principal) -> InsurerContact:
    """The member's insurer's contact, for every page that tells them to contact it."""
    subject = _subject(platform, principal)
    with platform.engine.connect() as conn:
        return _contact(platform, conn, subject)


def _family(
    platform: Platform, conn: Connection, subject: _Subject, own: _OwnRow
) -> list[tuple[BeneficiaryRecord, str]]:
    """The member's family (own row first, then by birth year), each with its first
    name decrypted; decoy rows are never part of a family."""
    rows = [
        r
        for r in family_members(conn, subject.insurer_id, own.record.idx_family)
        if not r.is_canary
    ]
    if not any(r.id == own.record.id for r in rows):
        rows.append(own.record)
    rows.sort(key=lambda r: (r.id != own.record.id, r.birth_year, r.birth_rank, r.id))
    ciphers: dict[int, FieldCipher] = {own.record.key_version: own.cipher}
    named: list[tuple[BeneficiaryRecord, str]] = []
    for record in rows:
        cipher = ciphers.get(record.key_version)
        if cipher is None:
            cipher = FieldCipher(
                platform.keys.version(conn, insurer_scope(subject.amc), record.key_version)
            )
            ciphers[record.key_version] = cipher
        first = open_column(
            cipher, record.insurer_id, record.idx_nir, "first_name", record.first_name_ct
        )
        named.append((record, first))
    return named


def ceiling_statuses(
    contract: Contract, today: date, history: Sequence[CounterUse], held: Sequence[CounterUse]
) -> tuple[CeilingStatus, ...]:
    """The contract's ceilings with what ``history`` and ``held`` consume of them on
    ``today``, exactly as a pricing on that date would count them."""
    used, _ = counters_on(contract, today, history, held)
    found: dict[str, CeilingStatus] = {}
    for guarantee in contract.guarantees:
        for ceiling in guarantee.ceilings:
            rule = (guarantee.domain.value, guarantee.family)
            known = found.get(ceiling.counter)
            if known is not None:
                if rule not in known.rules:
                    found[ceiling.counter] = replace(known, rules=(*known.rules, rule))
                continue
            cents, units = used.get(ceiling.counter, (0, 0))
            found[ceiling.counter] = CeilingStatus(
                counter=ceiling.counter,
                period=ceiling.period,
                window=counter_window(ceiling.period, today),
                amount_cents=ceiling.amount_cents,
                count=ceiling.count,
                includes_tm=ceiling.includes_tm,
                used_cents=cents,
                used_units=units,
                rules=(rule,),
            )
    return tuple(found.values())


def guarantees(platform: Platform, principal: Principal) -> MemberGuarantees:
    """The member's contract from the catalogue in force, and for each beneficiary of the
    family what they consumed of its ceilings and what remains today (audited as
    ``member.guarantees``)."""
    subject = _subject(platform, principal)
    own = _own_row(platform, subject)
    today = platform.today()
    with write_transaction(platform.engine) as conn:
        catalogue = platform.catalogues.latest(conn, subject.insurer_id)
        contracts = {} if catalogue is None else {c.code: c for c in catalogue.contracts}
        family = _family(platform, conn, subject, own)
        ids = [record.id for record, _ in family]
        history = counter_history(conn, subject.insurer_id, ids)
        held = reservations.open_reservations(conn, subject.insurer_id, ids, today)
        members = []
        for record, first_name in family:
            contract = contracts.get(record.contract_code)
            ceilings: tuple[CeilingStatus, ...] = ()
            if contract is not None and record.covered_on(today):
                reserved = held_by(((r.id, r.uses) for r in held.get(record.id, [])), None)
                ceilings = ceiling_statuses(contract, today, history.get(record.id, []), reserved)
            members.append(
                FamilyCeilings(
                    first_name, record.id == own.record.id, record.contract_code, ceilings
                )
            )
        contact = _contact(platform, conn, subject)
        _audit_read(conn, platform, subject, GUARANTEES, beneficiaries=len(members))
    return MemberGuarantees(
        on=today,
        contract_code=own.record.contract_code,
        contract=contracts.get(own.record.contract_code),
        catalogue_version="" if catalogue is None else catalogue.version,
        coverage_start=own.record.coverage_start,
        coverage_end=own.record.coverage_end,
        family=tuple(members),
        contact=contact,
    )


def family_statement(
    platform: Platform, principal: Principal, *, limit: int = STATEMENT_LINES
) -> list[FamilyStatementLine]:
    """The care lines paid for the member's family, newest care first, each with the
    beneficiary's first name and the structure's name (audited as ``member.statement``)."""
    subject = _subject(platform, principal)
    own = _own_row(platform, subject)
    with write_transaction(platform.engine) as conn:
        family = _family(platform, conn, subject, own)
        names = {record.id: first for record, first in family}
        paid = member.family_paid_lines(
            conn, subject.insurer_id, list(names), min(max(limit, 1), STATEMENT_LINES)
        )
        _audit_read(conn, platform, subject, STATEMENT, lines=len(paid))
    return [
        FamilyStatementLine(
            first_name=names[line.beneficiary_id],
            own=line.beneficiary_id == own.record.id,
            care_date=line.care_date,
            payment_date=line.run_date,
            domain=line.domain,
            act_code=line.act_code,
            family=line.family,
            provider_name=line.provider_name,
            provider_category=line.provider_category,
            billed_cents=line.billed_cents,
            amo_cents=line.amo_paid_cents,
            amc_cents=line.paid_cents,
            remainder_cents=line.billed_cents - line.amo_paid_cents - line.paid_cents,
            status="paid" if line.status in _PAID else line.status,
        )
        for line in paid
    ]
