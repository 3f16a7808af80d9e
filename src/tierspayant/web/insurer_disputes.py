"""Insurer portal: the providers' disputes of decided lines (« contestations »), answered
by the insurer's claims staff.

Only the staff member's own insurer's disputes are read and answered (the principal's
insurer id, never a form's). Accepting records the decision; it does not change the
line's amount, which a corrected invoice and its new adjudication do: the page says so.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import RedirectResponse, Response

from tierspayant.domain.errors import DomainError
from tierspayant.services import disputes
from tierspayant.web import forms
from tierspayant.web.policy import policy
from tierspayant.web.render import french_message, render
from tierspayant.web.session import Form, Portal, PortalSession, csrf_protect, platform_of, requires

PORTAL = Portal.INSURER
RULE = policy(PORTAL.rule)
Staff = Annotated[PortalSession, Depends(requires(PORTAL))]
# The notice after an answer (shown by the page the browser is redirected to).
ANSWERED = {
    "accepted": (
        "Contestation acceptée : réponse envoyée au professionnel. Le montant sera corrigé "
        "par le traitement de la facture corrigée qu'il renverra."
    ),
    "refused": "Contestation refusée : réponse envoyée au professionnel.",
}


def router() -> APIRouter:
    routes = APIRouter(prefix=PORTAL.root, dependencies=[Depends(csrf_protect)])

    def page(request: Request, session: Staff, **context: Any) -> Response:
        platform, principal = platform_of(request), session.info.principal
        return render(
            request,
            "insurer/disputes.html",
            portal=PORTAL,
            open_rows=disputes.insurer_disputes(platform, principal),
            answered_rows=disputes.insurer_disputes(platform, principal, answered=True),
            accepted_note=disputes.ACCEPTED_NOTE,
            **context,
        )

    @routes.get("/contestations", **RULE)
    def disputes_list(request: Request, session: Staff, reponse: str = "") -> Response:
        return page(request, session, notice=ANSWERED.get(reponse))

    @routes.post("/contestations/repondre", **RULE)
    def answer(request: Request, session: Staff, form: Form) -> Response:
        decision = str(form.get("decision") or "")[:10]
        try:
            disputes.answer_dispute(
                platform_of(request),
                session.info.principal,
                forms.integer(form, "dispute", low=1, high=2**31 - 1),
                decision,
                str(form.get("answer") or "")[:2000],
            )
        except DomainError as exc:
            return page(request, session, error=french_message(exc), code=exc.code, status_code=422)
        # Post/redirect/get: reloading the page then reads it, it does not post again.
        return RedirectResponse(f"{PORTAL.root}/contestations?reponse={decision}", status_code=303)

    return routes
