"""Member portal: who consulted my rights and when, my card, my data-protection request.

A member sees only events whose subject is their own beneficiary (the audit pseudonym,
computed as ``services.identification`` does), with the structure's name, the date, the
purpose and the decision, and nobody else's data. Each of these reads is itself audited.

The card page lists the cards of the member's own family, found from the session's
beneficiary alone (no parameter names a family). A card's secret is never stored, so a
PDF cannot be printed again: downloading issues a fresh card for the family through
``services.cards.issue_family_card`` (audited there as ``card.issue``), which replaces
the earlier one, exactly as the printed card says.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select
from starlette.responses import Response

from tierspayant.domain.errors import DomainError
from tierspayant.domain.identifiers import parse_nir
from tierspayant.security.crypto import FieldCipher
from tierspayant.security.identity import open_column
from tierspayant.services import cards, statements
from tierspayant.services.platform import Platform
from tierspayant.store import audit
from tierspayant.store.beneficiaries import BeneficiaryRecord, find_by_nir_index
from tierspayant.store.keys import insurer_scope
from tierspayant.store.tables import beneficiaries
from tierspayant.web import queries
from tierspayant.web.policy import policy
from tierspayant.web.render import french_message, render
from tierspayant.web.session import Portal, PortalSession, csrf_protect, platform_of, requires

PORTAL = Portal.MEMBER
RULE = policy(PORTAL.rule)
Member = Annotated[PortalSession, Depends(requires(PORTAL))]
ACTIONS = {
    "eligibility.check": "Vérification de droits",
    "calculation": "Simulation de prise en charge",
    "member.consultations": "Consultation de cet historique",
    "member.data_export": "Export de vos données",
    "member.cards": "Consultation de votre carte",
    "card.issue": "Émission de votre carte de tiers payant",
}
CARD_STATUSES = {"active": "valide", "revoked": "révoquée", "superseded": "remplacée"}


@dataclass(frozen=True, slots=True)
class OwnRecord:
    """The member's beneficiary row and the cipher that opens its columns."""

    amc: str
    record: BeneficiaryRecord
    cipher: FieldCipher

    def clear(self, column: str) -> str:
        blob = getattr(self.record, f"{column}_ct")
        return open_column(self.cipher, self.record.insurer_id, self.record.idx_nir, column, blob)


def _subject(platform: Platform, session: PortalSession) -> tuple[str, int, str]:
    principal = session.info.principal
    assert principal.insurer_id is not None
    assert principal.beneficiary_id is not None
    amc, _ = queries.insurer_amc(platform, principal.insurer_id)
    pseudonym = queries.member_pseudonym(platform, amc, principal.beneficiary_id)
    return amc, principal.beneficiary_id, pseudonym


def _own_history(
    platform: Platform, session: PortalSession, action: str
) -> list[queries.Consultation]:
    """The member's history, read and audited in one transaction."""
    amc, _, subject = _subject(platform, session)
    with queries.write_transaction(platform) as conn:
        rows = queries.consultations(conn, subject)
        audit.append(
            conn,
            at=platform.now(),
            actor=session.info.principal.id,
            action=action,
            purpose="data_subject_access",
            subject=subject,
            insurer=amc,
            decision="allow",
        )
    return rows


def _own_row(platform: Platform, session: PortalSession) -> OwnRecord:
    """The session's own beneficiary: the only row a member page ever opens."""
    amc, beneficiary_id, _ = _subject(platform, session)
    insurer_id = session.info.principal.insurer_id
    assert insurer_id is not None
    with platform.engine.connect() as conn:
        idx = conn.execute(
            select(beneficiaries.c.idx_nir).where(
                beneficiaries.c.insurer_id == insurer_id, beneficiaries.c.id == beneficiary_id
            )
        ).scalar_one()
        record = find_by_nir_index(conn, insurer_id, bytes(idx))
        assert record is not None
        cipher = FieldCipher(platform.keys.version(conn, insurer_scope(amc), record.key_version))
    return OwnRecord(amc, record, cipher)


def _own_record(platform: Platform, session: PortalSession) -> dict[str, Any]:
    """The member's own identity and coverage, decrypted for them only (NIR masked)."""
    own = _own_row(platform, session)
    record = own.record
    return {
        "organisme": own.amc,
        "nir": parse_nir(own.clear("nir")).masked(),
        "rang_de_naissance": record.birth_rank,
        "numero_adherent": own.clear("member_number"),
        "nom": own.clear("last_name"),
        "prenom": own.clear("first_name"),
        "date_de_naissance": own.clear("birth_date"),
        "contrat": record.contract_code,
        "debut_de_couverture": record.coverage_start.isoformat(),
        "fin_de_couverture": record.coverage_end.isoformat() if record.coverage_end else None,
        "complementaire_sante_solidaire": record.css,
    }


def _own_cards(platform: Platform, session: PortalSession) -> list[queries.FamilyCard]:
    """The cards of the member's family this year, read and audited in one transaction."""
    own = _own_row(platform, session)
    _, _, subject = _subject(platform, session)
    with queries.write_transaction(platform) as conn:
        keys = platform.keys.active(conn, insurer_scope(own.amc))
        binding = cards.family_binding(keys, own.record.idx_family)
        rows = queries.family_cards(conn, own.record.insurer_id, binding, platform.today().year)
        audit.append(
            conn,
            at=platform.now(),
            actor=session.info.principal.id,
            action="member.cards",
            purpose="data_subject_access",
            subject=subject,
            insurer=own.amc,
            decision="allow",
        )
    return rows


def _new_card_pdf(platform: Platform, session: PortalSession) -> tuple[int, bytes]:
    """Issue the member's family card for this year and return (year, PDF bytes)."""
    own = _own_row(platform, session)
    year = platform.today().year
    with tempfile.TemporaryDirectory(prefix="tp-card-") as folder:
        directory = Path(folder)
        cards.issue_family_card(
            platform,
            own.amc,
            own.clear("member_number"),
            year,
            directory,
            session.info.principal.id,
        )
        (pdf,) = directory.glob("*.pdf")
        return year, pdf.read_bytes()


def router() -> APIRouter:
    routes = APIRouter(prefix=PORTAL.root, dependencies=[Depends(csrf_protect)])

    @routes.get("/", **RULE)
    def home(request: Request, session: Member) -> Response:
        rows = _own_history(platform_of(request), session, "member.consultations")
        return render(request, "member/home.html", portal=PORTAL, rows=rows, actions=ACTIONS)

    @routes.get("/remboursements", **RULE)
    def statement(request: Request, session: Member) -> Response:
        lines = statements.member_statement(platform_of(request), session.info.principal)
        return render(request, "member/statement.html", portal=PORTAL, lines=lines)

    def card_page(request: Request, session: Member, **context: Any) -> Response:
        rows = _own_cards(platform_of(request), session)
        return render(
            request,
            "member/card.html",
            portal=PORTAL,
            rows=rows,
            statuses=CARD_STATUSES,
            year=platform_of(request).today().year,
            **context,
        )

    @routes.get("/carte", **RULE)
    def card(request: Request, session: Member) -> Response:
        return card_page(request, session)

    @routes.post("/carte", **RULE)
    def card_download(request: Request, session: Member) -> Response:
        try:
            year, pdf = _new_card_pdf(platform_of(request), session)
        except DomainError as exc:
            return card_page(request, session, error=french_message(exc), code=exc.code)
        return Response(
            pdf,
            media_type="application/pdf",
            headers={
                "content-disposition": (f'attachment; filename="carte-tiers-payant-{year}.pdf"'),
                "cache-control": "no-store",
            },
        )

    @routes.get("/mes-donnees", **RULE)
    def export_page(request: Request, session: Member) -> Response:
        return render(request, "member/export.html", portal=PORTAL)

    @routes.post("/mes-donnees", **RULE)
    def export(request: Request, session: Member) -> Response:
        platform = platform_of(request)
        history = _own_history(platform, session, "member.data_export")
        document = {
            "genere_le": platform.now().isoformat(),
            "mes_droits": _own_record(platform, session),
            "consultations": [
                {
                    "date": row.at.isoformat(),
                    "par": row.who,
                    "structure": row.structure,
                    "action": ACTIONS.get(row.action, row.action),
                    "finalite": row.purpose,
                    "decision": row.decision,
                }
                for row in history
            ],
        }
        body = json.dumps(document, ensure_ascii=False, indent=2)
        return Response(
            body,
            media_type="application/json",
            headers={
                "content-disposition": 'attachment; filename="mes-donnees-tierspayant.json"',
                "cache-control": "no-store",
            },
        )

    return routes
