"""The member's own data, for the member portal: who consulted my rights and when, my
identity and coverage (for a data-protection request), my family's card.

Authorisation: the principal must be a member, and everything is found from the
principal alone (its insurer and beneficiary): no parameter names a beneficiary, a
subject or a family, so a member can read nothing of another family. Identity fields are
decrypted here, for the member only, and the NIR leaves masked. Each read is audited in
the same transaction as it is made (``member.consultations``, ``member.data_export``,
``member.cards``, purpose ``data_subject_access``); issuing a card is audited by
``services.cards.issue_family_card`` (``card.issue``).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from tierspayant.app.platform import Platform
from tierspayant.domain.codes import AuthCode
from tierspayant.domain.identifiers import parse_nir
from tierspayant.security.audit import subject_pseudonym
from tierspayant.security.crypto import FieldCipher
from tierspayant.security.identity import open_column
from tierspayant.security.principal import Principal, PrincipalKind
from tierspayant.services import cards
from tierspayant.services.errors import Forbidden
from tierspayant.store import audit
from tierspayant.store.beneficiaries import BeneficiaryRecord, find_by_nir_index
from tierspayant.store.keys import insurer_scope
from tierspayant.store.read_models import directory, member
from tierspayant.store.read_models.member import Consultation, FamilyCard
from tierspayant.store.transactions import write_transaction

PURPOSE = "data_subject_access"
CONSULTATIONS = "member.consultations"
DATA_EXPORT = "member.data_export"
CARDS = "member.cards"
COVERAGE = "member.coverage"

__all__ = [
    "CARDS",
    "CONSULTATIONS",
    "COVERAGE",
    "DATA_EXPORT",
    "Consultation",
    "FamilyCard",
    "MemberExport",
    "MemberRecord",
    "NewCard",
    "OwnCoverage",
    "consultations",
    "data_export",
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
class _Subject:
    """The member as the audit log and the beneficiaries table name them."""

    actor: str
    insurer_id: int
    beneficiary_id: int
    amc: str
    pseudonym: str


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
        amc, _ = directory.insurer_amc(conn, principal.insurer_id)
    # The audit subject of a beneficiary, as ``services.identification`` computes it.
    key = platform.operator_keys().derive("audit.subject")
    pseudonym = subject_pseudonym(key, amc, str(principal.beneficiary_id))
    return _Subject(principal.id, principal.insurer_id, principal.beneficiary_id, amc, pseudonym)


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
        audit.append(
            conn,
            at=platform.now(),
            actor=subject.actor,
            action=action,
            purpose=PURPOSE,
            subject=subject.pseudonym,
            insurer=subject.amc,
            decision="allow",
        )
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
        audit.append(
            conn,
            at=platform.now(),
            actor=subject.actor,
            action=COVERAGE,
            purpose=PURPOSE,
            subject=subject.pseudonym,
            insurer=subject.amc,
            decision="allow",
        )
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
        audit.append(
            conn,
            at=platform.now(),
            actor=subject.actor,
            action=CARDS,
            purpose=PURPOSE,
            subject=subject.pseudonym,
            insurer=subject.amc,
            decision="allow",
        )
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
