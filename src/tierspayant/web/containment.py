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
from tierspayant.services import containment
from tierspayant.web import forms
from tierspayant.web.policy import policy
from tierspayant.web.render import french_message, refusal_status, render
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
SCOPE_KINDS_FR = {
    ScopeKind.PLATFORM: "Toute la plateforme",
    ScopeKind.INSURER: "Un organisme (numéro AMC)",
    ScopeKind.STRUCTURE: "Une structure (FINESS, SIRET ou numéro AM)",
    ScopeKind.CATEGORY: "Une catégorie de professionnels",
    ScopeKind.ROUTE: "Une route",
}


def _scope_text(kind: str, value: str | None) -> str:
    return kind if kind == ScopeKind.PLATFORM.value else f"{kind}:{value or ''}"


def router() -> APIRouter:
    routes = APIRouter(prefix=PAGE, dependencies=[Depends(csrf_protect)])

    def page(
        request: Request,
        *,
        notice: str | None = None,
        error: DomainError | None = None,
    ) -> Response:
        return render(
            request,
            "security/containment.html",
            portal=PORTAL,
            status_code=200 if error is None else refusal_status(request, error),
            views=containment.status(platform_of(request)),
            states=STATES_FR,
            scope_kinds=SCOPE_KINDS_FR,
            modes=list(ContainmentMode),
            categories=list(ProviderCategory),
            routes=list(Route),
            refresh=containment.REFRESH_SECONDS,
            notice=notice,
            error=None if error is None else french_message(error),
        )

    @routes.get("", **RULE)
    def show(request: Request, session: Operator) -> Response:
        return page(request)

    @routes.post("/proposer", **RULE)
    def propose(request: Request, session: Operator, form: Form) -> Response:
        try:
            kind = forms.text(form, "scope_kind", max_length=12)
            value = forms.optional_text(form, "scope_value", max_length=40)
            switch = containment.propose(
                platform_of(request),
                session.info.principal.id,
                _scope_text(kind, value),
                forms.text(form, "mode", max_length=16),
                forms.text(form, "reason", max_length=500),
                hours=forms.optional_integer(form, "hours", low=1, high=168),
            )
        except DomainError as exc:
            return page(request, error=exc)
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
        try:
            switch = containment.propose_lift(
                platform_of(request),
                session.info.principal.id,
                switch_id,
                forms.text(form, "reason", max_length=500),
            )
        except DomainError as exc:
            return page(request, error=exc)
        return page(
            request,
            notice=f"Levée de la bascule n° {switch.id} proposée : un second opérateur doit "
            "l'approuver.",
        )

    return routes
