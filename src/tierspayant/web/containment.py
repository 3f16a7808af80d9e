"""Containment page of the security console: the switches, and the forms to propose,
approve and lift them (two different operators each time, ``services.containment``).

The page lists every recent switch with who proposed and who approved it; an operator
cannot approve what they proposed (the service refuses it, the page says so in French).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from tierspayant.domain.containment import ContainmentMode, Route, ScopeKind
from tierspayant.domain.errors import DomainError
from tierspayant.domain.providers import ProviderCategory
from tierspayant.services import containment, security_views
from tierspayant.web import security_forms
from tierspayant.web.policy import policy
from tierspayant.web.render import french_message, refusal_status, render
from tierspayant.web.security_forms import FormState
from tierspayant.web.session import Form, Portal, PortalSession, csrf_protect, platform_of, requires

PORTAL = Portal.SECURITY
RULE = policy(PORTAL.rule)
Operator = Annotated[PortalSession, Depends(requires(PORTAL))]
PAGE = f"{PORTAL.root}/confinement"

STATES_FR = {
    "proposed": "proposée, en attente d'un second opérateur",
    "active": "en vigueur",
    "lift_proposed": "en vigueur, levée proposée",
    "lifted": "levée",
}


def router() -> APIRouter:
    routes = APIRouter(prefix=PAGE, dependencies=[Depends(csrf_protect)])

    def page(
        request: Request,
        *,
        notice: str | None = None,
        error: DomainError | None = None,
        proposal: FormState | None = None,
        lift: tuple[int, FormState] | None = None,
    ) -> Response:
        views, names = security_views.containment_view(platform_of(request))
        general = error is not None and proposal is None and lift is None
        return render(
            request,
            "security/containment.html",
            portal=PORTAL,
            status_code=200 if error is None else refusal_status(request, error),
            views=views,
            names=names,
            states=STATES_FR,
            scope_kinds=list(ScopeKind),
            modes=list(ContainmentMode),
            categories=list(ProviderCategory),
            routes=list(Route),
            refresh=containment.REFRESH_SECONDS,
            notice=notice,
            error=french_message(error) if general and error is not None else None,
            code=error.code if general and error is not None else None,
            proposal=proposal or FormState(),
            lift_id=lift[0] if lift else None,
            lift=lift[1] if lift else FormState(),
        )

    @routes.get("", **RULE)
    def show(request: Request, session: Operator) -> Response:
        return page(request)

    @routes.post("/proposer", **RULE)
    def propose(request: Request, session: Operator, form: Form) -> Response:
        asked, problems = security_forms.proposal(form)
        values = security_forms.typed(form, security_forms.PROPOSAL_FIELDS)
        if asked is None:
            return page(request, error=problems.error(), proposal=FormState(values, problems))
        try:
            switch = containment.propose(
                platform_of(request),
                session.info.principal.id,
                asked.scope,
                asked.mode,
                asked.reason,
                hours=asked.hours,
            )
        except DomainError as exc:
            if exc.field is None:
                return page(request, error=exc)
            state = FormState(values, security_forms.from_error(exc, exc.field))
            return page(request, error=exc, proposal=state)
        return page(
            request,
            notice=f"Bascule n° {switch.id} proposée : un second opérateur doit l'approuver.",
        )

    @routes.post("/{switch_id}/approuver", **RULE)
    def approve(request: Request, session: Operator, switch_id: int) -> Response:
        try:
            switch = containment.approve(platform_of(request), session.info.principal.id, switch_id)
        except DomainError as exc:
            return page(request, error=exc)
        done = "en vigueur" if switch.state.in_force else "levée"
        return page(request, notice=f"Bascule n° {switch.id} {done}.")

    @routes.post("/{switch_id}/lever", **RULE)
    def lift(request: Request, session: Operator, switch_id: int, form: Form) -> Response:
        reason, problems = security_forms.lift_reason(form)
        values = security_forms.typed(form, ("reason",))
        if reason is None:
            state = FormState(values, problems)
            return page(request, error=problems.error(), lift=(switch_id, state))
        try:
            switch = containment.propose_lift(
                platform_of(request), session.info.principal.id, switch_id, reason
            )
        except DomainError as exc:
            return page(request, error=exc)
        return page(
            request,
            notice=f"Levée de la bascule n° {switch.id} proposée : un second opérateur doit "
            "l'approuver.",
        )

    return routes
