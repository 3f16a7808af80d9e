"""Insurer back office, the claims officer's money desk: the undue amounts (indus) of
the insurer, how payment runs recovered them, and the form that declares a paid line
undue from its invoice number.

The insurer is the session's, never the form's: an invoice of another insurer is
answered like an invoice that does not exist.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from tierspayant.domain import labels
from tierspayant.domain.codes import ClaimCode, PaymentCode, RequestCode
from tierspayant.domain.errors import DomainError
from tierspayant.services import insurer_money
from tierspayant.web import forms
from tierspayant.web.policy import policy
from tierspayant.web.render import french_message, refusal_status, render
from tierspayant.web.session import Form, Portal, PortalSession, csrf_protect, platform_of, requires

PORTAL = Portal.INSURER
RULE = policy(PORTAL.rule)
Staff = Annotated[PortalSession, Depends(requires(PORTAL))]
FIELDS = ("invoice_number", "line_no", "reason_code", "provider")

# The French refusal of each (code, field) the flag form can meet, shown by the field.
FIELD_MESSAGES: dict[tuple[str, str | None], str] = {
    (RequestCode.PORTAL_FORM, "invoice_number"): (
        "Indiquez le numéro de la facture (40 caractères au plus)."
    ),
    (RequestCode.PORTAL_FORM, "line_no"): "Indiquez le numéro de ligne : un nombre de 1 à 99.",
    (RequestCode.PORTAL_FORM, "provider"): (
        "L'identifiant du professionnel compte 9 à 11 caractères."
    ),
    (PaymentCode.OVERPAYMENT_REASON, "reason_code"): "Choisissez un motif dans la liste.",
    (ClaimCode.UNKNOWN, "invoice_number"): "Aucune facture de votre organisme ne porte ce numéro.",
    (ClaimCode.UNKNOWN, "line_no"): "Cette facture n'a pas de ligne portant ce numéro.",
    (PaymentCode.OVERPAYMENT_NOT_PAID, "line_no"): (
        "Cette ligne n'a pas été payée : rien n'est à recouvrer. Corrigez ou annulez la "
        "facture à la place."
    ),
    (PaymentCode.OVERPAYMENT_INVOICE_AMBIGUOUS, "provider"): (
        "Plusieurs professionnels ont envoyé une facture sous ce numéro : indiquez le numéro "
        "AM, FINESS ou RPPS du professionnel."
    ),
}


def field_error(exc: DomainError) -> tuple[str | None, str]:
    """The field a refusal points at (None: the whole form) and its French message."""
    field = exc.field if exc.field in FIELDS else None
    message = FIELD_MESSAGES.get((exc.code, field))
    return (field, message) if message is not None else (None, french_message(exc))


def router() -> APIRouter:
    routes = APIRouter(prefix=PORTAL.root, dependencies=[Depends(csrf_protect)])

    def page(
        request: Request, session: Staff, status_code: int = 200, **context: object
    ) -> Response:
        insurer_id = session.info.principal.insurer_id
        assert insurer_id is not None  # insurer staff accounts always carry their insurer
        book = insurer_money.undue_book(platform_of(request), insurer_id)
        context.setdefault("values", {})
        return render(
            request,
            "insurer/undue.html",
            portal=PORTAL,
            status_code=status_code,
            book=book,
            reasons=[(c, labels.UNDUE_REASONS[c]) for c in insurer_money.SELECTABLE_REASONS],
            **context,
        )

    @routes.get("/indus", **RULE)
    def undue(request: Request, session: Staff) -> Response:
        # A claim's page links here with its invoice and line to fill the form in:
        # ``/indus?facture=F123&ligne=2`` (shown back, nothing flagged before the POST).
        query = request.query_params
        values = {
            "invoice_number": query.get("facture", "")[:40],
            "line_no": query.get("ligne", "")[:2],
        }
        return page(request, session, values=values)

    @routes.post("/indus", **RULE)
    def flag(request: Request, session: Staff, form: Form) -> Response:
        values = {name: str(form.get(name) or "")[:60] for name in FIELDS}
        try:
            invoice = forms.text(form, "invoice_number", max_length=40)
            line_no = forms.integer(form, "line_no", low=1, high=99)
            reason = forms.text(form, "reason_code", max_length=60, required=False)
            provider = forms.optional_text(form, "provider", max_length=11)
            done = insurer_money.flag_undue_by_invoice(
                platform_of(request), session.info.principal, invoice, line_no, reason, provider
            )
        except DomainError as exc:
            field, message = field_error(exc)
            return page(
                request,
                session,
                status_code=refusal_status(request, exc),
                error=message,
                code=exc.code,
                field_error=field,
                values=values,
            )
        undue = done.undue
        if undue.created:
            notice = (
                f"Ligne {undue.line_no} de la facture {done.invoice_number} "
                f"({done.provider_name}) déclarée indue : elle sera déduite des prochains "
                "paiements de ce professionnel."
            )
        else:
            notice = (
                f"La ligne {undue.line_no} de la facture {done.invoice_number} était déjà "
                "déclarée indue : rien de plus n'a été fait."
            )
        return page(request, session, notice=notice, flagged=undue)

    return routes


__all__ = ["FIELD_MESSAGES", "field_error", "router"]
