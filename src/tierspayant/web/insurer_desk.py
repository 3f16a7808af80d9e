"""The claims officer's desk of the insurer portal: a prior authorisation in detail (quote
lines, the member's contract and remaining ceilings, the decision form), the search of
the insurer's invoices and an invoice in detail, and a provider's page.

The insurer is the session's, never the request's: another insurer's agreement, invoice
or provider answers the same French 404 as a number that does not exist. There is no
search by person: invoice number, provider, care dates, status, domain and reason only.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from tierspayant.domain import labels
from tierspayant.domain.codes import PriorAuthCode
from tierspayant.domain.errors import DomainError
from tierspayant.services import insurer_desk, prior_auth
from tierspayant.services.errors import ServiceError
from tierspayant.services.insurer_desk import ClaimFilters
from tierspayant.web import forms
from tierspayant.web.policy import policy
from tierspayant.web.render import french_message, render
from tierspayant.web.session import Form, Portal, PortalSession, csrf_protect, platform_of, requires

PORTAL = Portal.INSURER
RULE = policy(PORTAL.rule)
Staff = Annotated[PortalSession, Depends(requires(PORTAL))]
SEARCH = f"{PORTAL.root}/factures/recherche"
INVOICE_NUMBER_MAX = 40
PROVIDER_TEXT_MAX = 60
# A reason code as lines carry it (the list offers the labelled ones; a chart may link to
# any code its lines have).
REASON_CODE = re.compile(r"[a-z][a-z0-9_.]{0,59}")

# The query string of the search: (parameter, French label of the field).
FIELDS = {
    "facture": "N° de facture",
    "prestataire": "Professionnel ou établissement (n° AM, n° FINESS ou nom)",
    "du": "Soins du",
    "au": "Soins au",
    "statut": "État de la facture",
    "domaine": "Domaine de soins",
    "motif": "Motif de rejet ou de réduction",
}


def search_link(**params: str | date | None) -> str:
    """The search page pre-filtered with ``params`` (those given), for charts and links."""
    given = {k: v.isoformat() if isinstance(v, date) else v for k, v in params.items() if v}
    return f"{SEARCH}?{urlencode(given)}" if given else SEARCH


def week_span(week: str) -> tuple[date, date]:
    """An ISO week ``2026-W07`` as its Monday and Sunday."""
    year, _, number = week.partition("-W")
    monday = date.fromisocalendar(int(year), int(number), 1)
    return monday, monday + timedelta(days=6)


def provider_link(provider_id: int) -> str:
    return f"{PORTAL.root}/prestataires/{provider_id}"


class SearchErrors(Exception):
    """The search form's refusals, by field (French)."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(", ".join(errors))
        self.errors = errors


def _choice(query: FormData, name: str, allowed: Any, errors: dict[str, str]) -> str | None:
    value = forms.optional_text(query, name, max_length=60)
    if value is not None and value not in allowed:
        errors[name] = "Choisissez une valeur de la liste."
        return None
    return value


def parse_filters(query: FormData) -> tuple[ClaimFilters, int]:
    """The search's filters and page from the query string; :class:`SearchErrors` names
    each field refused."""
    errors: dict[str, str] = {}
    invoice = provider = None
    try:
        invoice = forms.optional_text(query, "facture", max_length=INVOICE_NUMBER_MAX)
    except ServiceError:
        errors["facture"] = f"{INVOICE_NUMBER_MAX} caractères au plus."
    try:
        provider = forms.optional_text(query, "prestataire", max_length=PROVIDER_TEXT_MAX)
        if provider is not None and len(provider) < 3:
            errors["prestataire"] = "Au moins 3 caractères, ou un n° AM ou FINESS."
    except ServiceError:
        errors["prestataire"] = f"{PROVIDER_TEXT_MAX} caractères au plus."
    days: dict[str, date | None] = {}
    for name in ("du", "au"):
        try:
            given = forms.text(query, name, max_length=10, required=False)
            days[name] = forms.day(query, name) if given else None
        except ServiceError:
            errors[name] = "Date invalide : JJ/MM/AAAA."
            days[name] = None
    start, end = days["du"], days["au"]
    if start and end and start > end:
        errors["au"] = "La fin de la période précède son début."
    status = _choice(query, "statut", labels.CLAIM_STATUSES, errors)
    domain = _choice(query, "domaine", labels.DOMAINS, errors)
    reason = None
    try:
        reason = forms.optional_text(query, "motif", max_length=60)
        if reason is not None and not REASON_CODE.fullmatch(reason):
            errors["motif"] = "Choisissez une valeur de la liste."
            reason = None
    except ServiceError:
        errors["motif"] = "Choisissez une valeur de la liste."
    try:
        page = forms.integer(query, "page", low=1, high=40, default=1)
    except ServiceError:
        page = 1
    if errors:
        raise SearchErrors(errors)
    filters = ClaimFilters(
        invoice=invoice,
        provider=provider,
        care_from=start,
        care_to=end,
        status=status,
        domain=domain,
        reason=reason,
    )
    return filters, page


def _not_found(request: Request, message: str) -> Response:
    return render(request, "error.html", portal=PORTAL, status_code=404, message=message)


def router() -> APIRouter:
    routes = APIRouter(prefix=PORTAL.root, dependencies=[Depends(csrf_protect)])

    def agreement_page(
        request: Request, session: PortalSession, number: str, status: int = 200, **context: Any
    ) -> Response:
        view = insurer_desk.agreement(platform_of(request), session.info.principal, number)
        if view is None:
            return _not_found(request, "Aucun accord de votre organisme ne porte ce numéro.")
        return render(
            request,
            "insurer/agreement.html",
            portal=PORTAL,
            status_code=status,
            view=view,
            provider_link=provider_link,
            **context,
        )

    @routes.get("/accords/{number}", **RULE)
    def agreement(request: Request, session: Staff, number: str) -> Response:
        return agreement_page(request, session, number)

    @routes.post("/accords/{number}/decision", **RULE)
    def decide(request: Request, session: Staff, form: Form, number: str) -> Response:
        principal = session.info.principal
        assert principal.insurer_id is not None  # insurer staff accounts carry their insurer
        accept = forms.text(form, "decision", max_length=8, required=False) == "accepter"
        reason = forms.text(form, "reason", max_length=500, required=False)
        try:
            decided = prior_auth.decide_prior_auth(
                platform_of(request),
                number[:24],
                accept=accept,
                reason=reason,
                actor=principal.id,
                insurer_id=principal.insurer_id,
            )
        except DomainError as exc:
            if exc.code == PriorAuthCode.UNKNOWN:
                return _not_found(request, "Aucun accord de votre organisme ne porte ce numéro.")
            field = "reason" if exc.code == PriorAuthCode.REASON_REQUIRED else None
            return agreement_page(
                request,
                session,
                number,
                status=422 if field else 409,
                error=french_message(exc),
                code=exc.code,
                field_error=field,
                reason=reason,
            )
        notice = f"Accord {decided.agreement_number} : {'accordé' if accept else 'refusé'}."
        return agreement_page(request, session, number, notice=notice)

    @routes.get("/factures/recherche", **RULE)
    def search(request: Request, session: Staff) -> Response:
        query = FormData(request.query_params)
        values = {name: str(query.get(name) or "")[:80] for name in FIELDS}
        context: dict[str, Any] = {
            "values": values,
            "fields": FIELDS,
            "statuses": labels.CLAIM_STATUSES,
            "domains": labels.DOMAINS,
            "reasons": labels.table(labels.Kind.REASON),
            "provider_link": provider_link,
        }
        try:
            filters, page = parse_filters(query)
        except SearchErrors as exc:
            return render(
                request,
                "insurer/claim_search.html",
                portal=PORTAL,
                status_code=422,
                errors=exc.errors,
                found=None,
                **context,
            )
        found = None
        if filters.any():
            found = insurer_desk.search(platform_of(request), session.info.principal, filters, page)
        kept = {name: value for name, value in values.items() if value}
        return render(
            request,
            "insurer/claim_search.html",
            portal=PORTAL,
            errors={},
            found=found,
            previous=search_link(**kept, page=str(page - 1)) if page > 1 else None,
            following=(
                search_link(**kept, page=str(page + 1)) if found and found.has_more else None
            ),
            **context,
        )

    @routes.get("/factures/{claim_id:int}", **RULE)
    def claim(request: Request, session: Staff, claim_id: int) -> Response:
        found = insurer_desk.claim(platform_of(request), session.info.principal, claim_id)
        if found is None:
            return _not_found(request, "Aucune facture de votre organisme ne porte ce numéro.")
        return render(
            request,
            "insurer/claim.html",
            portal=PORTAL,
            claim=found,
            provider_link=provider_link,
        )

    @routes.get("/prestataires/{provider_id:int}", **RULE)
    def provider(request: Request, session: Staff, provider_id: int) -> Response:
        platform = platform_of(request)
        figures = insurer_desk.provider(platform, session.info.principal, provider_id)
        if figures is None:
            return _not_found(request, "Ce professionnel n'a ni facture ni convention avec vous.")
        first = figures.weeks[0].monday
        return render(
            request,
            "insurer/provider.html",
            portal=PORTAL,
            figures=figures,
            today=platform.today(),
            claims_link=search_link(prestataire=figures.provider.am_number, du=first),
            week_link=lambda week: search_link(
                prestataire=figures.provider.am_number,
                du=week.monday,
                au=week.monday + timedelta(days=6),
            ),
            reason_link=lambda code: search_link(
                prestataire=figures.provider.am_number, du=first, motif=code
            ),
        )

    return routes


__all__ = ["parse_filters", "router", "search_link", "week_span"]
