"""Member portal: who consulted my rights and when, my card, my data-protection request.

A member sees only events whose subject is their own beneficiary (the audit pseudonym,
computed as ``services.identification`` does), with the structure's name, the date, the
purpose and the decision, and nobody else's data. Each of these reads is itself audited.

The card page lists the cards of the member's own family, found from the session's
beneficiary alone (no parameter names a family). A card's secret is never stored, so a
PDF cannot be printed again: downloading issues a fresh card for the family through
``services.cards.issue_family_card`` (audited there as ``card.issue``), which replaces
the earlier one, exactly as the printed card says.

The reads, their authorisation, decryption and audit events are
``services.member_portal``'s; this module parses, calls and renders.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from tierspayant.domain import labels
from tierspayant.domain.errors import DomainError
from tierspayant.services import member_portal, statements
from tierspayant.web.policy import policy
from tierspayant.web.render import french_message, render
from tierspayant.web.session import Portal, PortalSession, csrf_protect, platform_of, requires

PORTAL = Portal.MEMBER
RULE = policy(PORTAL.rule)
Member = Annotated[PortalSession, Depends(requires(PORTAL))]
ACTIONS = {
    **labels.OPERATIONS,
    # How the member reads what a professional did about them.
    "calculation": "Simulation de prise en charge",
    "member.coverage": "Consultation de votre contrat (FHIR)",
    "card.issue": "Émission de votre carte de tiers payant",
}
CARD_STATUSES = labels.CARD_STATUSES


def _export_document(generated_at: str, export: member_portal.MemberExport) -> dict[str, Any]:
    """The JSON document of a data-protection request (French keys, NIR masked)."""
    record = export.record
    return {
        "genere_le": generated_at,
        "mes_droits": {
            "organisme": record.insurer,
            "nir": record.nir_masked,
            "rang_de_naissance": record.birth_rank,
            "numero_adherent": record.member_number,
            "nom": record.last_name,
            "prenom": record.first_name,
            "date_de_naissance": record.birth_date,
            "contrat": record.contract,
            "debut_de_couverture": record.coverage_start.isoformat(),
            "fin_de_couverture": record.coverage_end.isoformat() if record.coverage_end else None,
            "complementaire_sante_solidaire": record.css,
        },
        "consultations": [
            {
                "date": row.at.isoformat(),
                "par": row.who,
                "structure": row.structure,
                "action": ACTIONS.get(row.action, row.action),
                "finalite": row.purpose,
                "decision": row.decision,
            }
            for row in export.history
        ],
    }


def router() -> APIRouter:
    routes = APIRouter(prefix=PORTAL.root, dependencies=[Depends(csrf_protect)])

    @routes.get("/", **RULE)
    def home(request: Request, session: Member) -> Response:
        rows = member_portal.consultations(platform_of(request), session.info.principal)
        return render(request, "member/home.html", portal=PORTAL, rows=rows, actions=ACTIONS)

    @routes.get("/remboursements", **RULE)
    def statement(request: Request, session: Member) -> Response:
        lines = statements.member_statement(platform_of(request), session.info.principal)
        return render(request, "member/statement.html", portal=PORTAL, lines=lines)

    def card_page(request: Request, session: Member, **context: Any) -> Response:
        rows = member_portal.own_cards(platform_of(request), session.info.principal)
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
            card = member_portal.new_card_pdf(platform_of(request), session.info.principal)
        except DomainError as exc:
            return card_page(request, session, error=french_message(exc), code=exc.code)
        return Response(
            card.pdf,
            media_type="application/pdf",
            headers={
                "content-disposition": (
                    f'attachment; filename="carte-tiers-payant-{card.year}.pdf"'
                ),
                "cache-control": "no-store",
            },
        )

    @routes.get("/mes-donnees", **RULE)
    def export_page(request: Request, session: Member) -> Response:
        return render(request, "member/export.html", portal=PORTAL)

    @routes.post("/mes-donnees", **RULE)
    def export(request: Request, session: Member) -> Response:
        platform = platform_of(request)
        generated_at = platform.now().isoformat()
        answer = member_portal.data_export(platform, session.info.principal)
        document = _export_document(generated_at, answer)
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
