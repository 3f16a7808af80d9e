"""Provider portal, the invoices after sending: « Mes factures » (searchable, paginated),
the follow-up page of one invoice found by its number, « Mes rejets » with the reasons and
what to do, the correction of a rejected invoice (the invoice form pre-filled from it,
never the NIR) and the disputes (« contester ») with the insurer's answers.

Only the provider's own invoices are read (the principal's provider id, never a form's);
nothing here shows who the patient is.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import RedirectResponse, Response

from tierspayant.domain import labels
from tierspayant.domain.care import CareDomain
from tierspayant.domain.errors import DomainError
from tierspayant.services import claims, disputes, portal_views, prior_auth
from tierspayant.services.portal_views import InvoiceQuery
from tierspayant.web import forms
from tierspayant.web.policy import policy
from tierspayant.web.render import french_message, render
from tierspayant.web.session import Form, Portal, PortalSession, csrf_protect, platform_of, requires

PORTAL = Portal.PROVIDER
RULE = policy(PORTAL.rule)
Provider = Annotated[PortalSession, Depends(requires(PORTAL))]
PAGE_SIZE = 25
# The statuses « Mes factures » filters on (superseded versions are shown on request).
STATUSES = labels.CLAIM_STATUSES
DECIDED = "adjudicated"
# The notice after a dispute is sent (shown by the page the browser is redirected to).
SENT = {
    "nouvelle": "Contestation envoyée à l'organisme complémentaire.",
    "deja": "Cette ligne est déjà contestée : sa contestation attend la réponse.",
}


def _day(raw: str) -> date | None:
    try:
        return date.fromisoformat(raw) if raw else None
    except ValueError:
        return None


def euros_input(cents: int) -> str:
    """Cents as the invoice form's inputs take them (``12,50``)."""
    return f"{cents // 100},{cents % 100:02d}"


def rate_input(basis_points: int) -> str:
    """Basis points as the form's percentage input (``70`` or ``70,5``)."""
    whole, part = divmod(basis_points, 100)
    return str(whole) if part == 0 else f"{whole},{part:02d}".rstrip("0")


def correction_values(claim: claims.ClaimView) -> dict[str, str]:
    """The invoice form's fields from the version in force: number, dates, lines. Never
    the card's data (the claim holds none): the card is scanned again."""
    values = {
        "invoice_number": claim.invoice_number,
        "correction": "1",
        "care_date": claim.care_date.isoformat(),
        "agreement_number": claim.agreement_number or "",
    }
    for row, line in enumerate(claim.lines, start=1):
        values |= {
            f"act_code_{row}": line.act_code,
            f"domain_{row}": line.domain,
            f"family_{row}": line.family,
            f"quantity_{row}": str(line.quantity),
            f"br_{row}": euros_input(line.br_cents),
            f"billed_{row}": euros_input(line.billed_cents),
            f"amo_rate_{row}": rate_input(line.amo_rate_bp),
            f"amo_paid_{row}": euros_input(line.amo_paid_cents),
            f"amc_requested_{row}": euros_input(line.amc_requested_cents),
        }
    return values


def router() -> APIRouter:
    routes = APIRouter(prefix=PORTAL.root, dependencies=[Depends(csrf_protect)])

    @routes.get("/factures/mes-factures", **RULE)
    def my_invoices(
        request: Request,
        session: Provider,
        numero: str = "",
        du: str = "",
        au: str = "",
        etat: str = "",
        page: str = "1",
    ) -> Response:
        provider_id = session.info.principal.provider_id
        query = InvoiceQuery(
            number=numero.strip()[:40] or None,
            care_from=_day(du),
            care_to=_day(au),
            status=etat if etat in STATUSES else None,
            page=int(page) if page.isdigit() and len(page) < 7 else 1,
            page_size=PAGE_SIZE,
        )
        found = (
            portal_views.InvoicePage([], 0, 1, 1)
            if provider_id is None
            else portal_views.provider_invoices(platform_of(request), provider_id, query)
        )
        search = {"numero": numero[:40], "du": du[:10], "au": au[:10], "etat": etat[:20]}
        return render(
            request,
            "provider/my_invoices.html",
            portal=PORTAL,
            found=found,
            search=search,
            statuses=STATUSES,
            decided=DECIDED,
        )

    @routes.get("/suivi", **RULE)
    def follow_up(
        request: Request, session: Provider, accord: str = "", facture: str = ""
    ) -> Response:
        platform, principal = platform_of(request), session.info.principal
        context: dict[str, Any] = {}
        try:
            if accord:
                context["agreement"] = prior_auth.get_prior_auth(platform, principal, accord[:40])
            elif facture.strip():
                number = facture.strip()[:40]
                claim = claims.get_claim_by_number(platform, principal, number)
                context["claim"] = claim
                context["disputes"] = [
                    d
                    for d in disputes.provider_disputes(platform, principal)
                    if d.invoice_number == claim.invoice_number
                ]
        except DomainError as exc:
            context["error"] = french_message(exc)
        return render(
            request,
            "provider/follow_up.html",
            portal=PORTAL,
            decided=DECIDED,
            disputable=disputes.DISPUTABLE,
            accepted_note=disputes.ACCEPTED_NOTE,
            **context,
        )

    def rejects_page(request: Request, session: Provider, **context: Any) -> Response:
        platform, principal = platform_of(request), session.info.principal
        provider_id = principal.provider_id
        lines = (
            []
            if provider_id is None
            else portal_views.provider_refused_lines(platform, provider_id)
        )
        return render(
            request,
            "provider/rejects.html",
            portal=PORTAL,
            lines=lines,
            disputes=disputes.provider_disputes(platform, principal),
            advice=labels.advice,
            accepted_note=disputes.ACCEPTED_NOTE,
            **context,
        )

    @routes.get("/factures/rejets", **RULE)
    def my_rejects(request: Request, session: Provider, envoi: str = "") -> Response:
        return rejects_page(request, session, notice=SENT.get(envoi))

    @routes.post("/factures/contester", **RULE)
    def dispute(request: Request, session: Provider, form: Form) -> Response:
        try:
            opened = disputes.open_dispute(
                platform_of(request),
                session.info.principal,
                forms.text(form, "invoice_number", max_length=40),
                forms.integer(form, "line", low=1, high=99),
                str(form.get("reason") or "")[:2000],
            )
        except DomainError as exc:
            return rejects_page(
                request, session, error=french_message(exc), code=exc.code, status_code=422
            )
        # Post/redirect/get: reloading the page then reads it, it does not post again.
        sent = "nouvelle" if opened.created else "deja"
        return RedirectResponse(f"{PORTAL.root}/factures/rejets?envoi={sent}", status_code=303)

    @routes.get("/factures/corriger", **RULE)
    def correct(request: Request, session: Provider, facture: str = "") -> Response:
        """The invoice form pre-filled from the version in force of ``facture``."""
        platform, principal = platform_of(request), session.info.principal
        try:
            claim = claims.get_claim_by_number(platform, principal, facture.strip()[:40])
        except DomainError as exc:
            return rejects_page(request, session, error=french_message(exc), code=exc.code)
        rows = max(1, len(claim.lines))
        return render(
            request,
            "provider/invoice.html",
            portal=PORTAL,
            domains=tuple(d.value for d in CareDomain),
            today=platform.today(),
            rows=range(1, rows + 1),
            row_count=rows,
            max_rows=rows,
            statuses=STATUSES,
            values=correction_values(claim),
        )

    return routes
