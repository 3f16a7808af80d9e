"""Member portal: who consulted my rights and when, my guarantees and what remains of my
family's ceilings, my family's paid care (who treated whom), my card, my data-protection
request, and on every page that sends the member to their insurer, the insurer's contact.

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
from tierspayant.domain.care import CareDomain
from tierspayant.domain.errors import DomainError
from tierspayant.domain.guarantees import ANY_FAMILY, Contract, Guarantee
from tierspayant.services import member_portal
from tierspayant.web.policy import policy
from tierspayant.web.render import euros, french_message, render
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
    "member.guarantees": "Consultation de vos garanties",
    "member.statement": "Consultation de vos remboursements",
}
CARD_STATUSES = labels.CARD_STATUSES


def percent(bp: int) -> str:
    """Basis points as a French percentage: ``13750`` → ``137,5 %``."""
    whole, part = divmod(bp, 100)
    text = str(whole) if part == 0 else f"{whole},{part:02d}".rstrip("0")
    return f"{text}\u00a0%"


def family_name(family: str) -> str:
    """The French name of a rule's act family (``"*"``: every act without a rule)."""
    if family == ANY_FAMILY:
        return "Tous les actes"
    return labels.label(labels.Kind.FAMILY, family)


def rule_terms(guarantee: Guarantee) -> list[str]:
    """What one guarantee pays and on which conditions, in French, with the catalogue's
    own figures (rates of the BR including the AMO share, flat amounts, ceilings)."""
    terms: list[str] = []
    if guarantee.actual_costs:
        terms.append("Frais réels : tout ce que l'Assurance maladie laisse à votre charge")
    if guarantee.rate_bp is not None:
        text = (
            f"{percent(guarantee.rate_bp)} de la base de remboursement"
            " (part de l'Assurance maladie comprise)"
        )
        other = guarantee.rate_non_optam_bp
        if other is not None and other != guarantee.rate_bp:
            text += f" ; {percent(other)} chez un médecin non adhérent à l'OPTAM ou à l'OPTAM-CO"
        terms.append(text)
    if guarantee.flat_cents is not None:
        flat = f"forfait de {euros(guarantee.flat_cents)} par acte ou par article"
        terms.append(f"plus {flat}" if guarantee.rate_bp is not None else flat.capitalize())
    for ceiling in guarantee.ceilings:
        period = labels.label(labels.Kind.CEILING_PERIOD, ceiling.period)
        parts = []
        if ceiling.amount_cents is not None:
            parts.append(euros(ceiling.amount_cents))
        if ceiling.count is not None:
            parts.append(f"{ceiling.count} acte{'s' if ceiling.count > 1 else ''}")
        scope = (
            "ticket modérateur compris"
            if ceiling.includes_tm
            else "au-delà du ticket modérateur, toujours remboursé"
        )
        terms.append(f"Plafond : {' et '.join(parts)} {period} ({scope})")
    if guarantee.min_age is not None and guarantee.max_age is not None:
        terms.append(f"De {guarantee.min_age} à {guarantee.max_age} ans")
    elif guarantee.max_age is not None:
        terms.append(f"Jusqu'à {guarantee.max_age} ans")
    elif guarantee.min_age is not None:
        terms.append(f"À partir de {guarantee.min_age} ans")
    if guarantee.waiting_days:
        terms.append(f"Délai de carence : {guarantee.waiting_days} jours après le début du contrat")
    if guarantee.frequency is not None:
        frequency = guarantee.frequency
        text = f"Un équipement tous les {frequency.months} mois"
        if frequency.months_young is not None:
            text += f" ({frequency.months_young} mois avant {frequency.young_age} ans)"
        terms.append(text)
    return terms


def contract_domains(contract: Contract) -> list[tuple[CareDomain, bool, list[Guarantee]]]:
    """Each care domain the contract lists (in the order of the domains' table), whether
    tiers payant applies there, and its rules in the order the calculation tries them."""
    rows = []
    for domain in CareDomain:
        terms = contract.domains.get(domain)
        if terms is None:
            continue
        rules = [g for g in contract.guarantees if g.domain is domain]
        rules.sort(key=lambda g: g.family == ANY_FAMILY)
        rows.append((domain, terms.tiers_payant, rules))
    return rows


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
        platform = platform_of(request)
        rows = member_portal.consultations(platform, session.info.principal)
        contact = member_portal.insurer_contact(platform, session.info.principal)
        return render(
            request, "member/home.html", portal=PORTAL, rows=rows, actions=ACTIONS, contact=contact
        )

    @routes.get("/garanties", **RULE)
    def guarantees(request: Request, session: Member) -> Response:
        answer = member_portal.guarantees(platform_of(request), session.info.principal)
        return render(
            request,
            "member/guarantees.html",
            portal=PORTAL,
            answer=answer,
            contact=answer.contact,
            domains=contract_domains(answer.contract) if answer.contract else [],
            rule_terms=rule_terms,
            family_name=family_name,
        )

    @routes.get("/remboursements", **RULE)
    def statement(request: Request, session: Member) -> Response:
        platform = platform_of(request)
        lines = member_portal.family_statement(platform, session.info.principal)
        contact = member_portal.insurer_contact(platform, session.info.principal)
        return render(request, "member/statement.html", portal=PORTAL, lines=lines, contact=contact)

    def card_page(request: Request, session: Member, **context: Any) -> Response:
        rows = member_portal.own_cards(platform_of(request), session.info.principal)
        return render(
            request,
            "member/card.html",
            portal=PORTAL,
            rows=rows,
            statuses=CARD_STATUSES,
            year=platform_of(request).today().year,
            contact=member_portal.insurer_contact(platform_of(request), session.info.principal),
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
