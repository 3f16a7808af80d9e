"""Security console of the operator's staff: live alerts, suspended principals, audit chain,
and each structure's lookups against its daily cap.

Reinstating a suspended principal takes two different operators: the first one's request
is an audit event (``principal.reinstate_request``), valid one hour and only since the
suspension; a second operator confirms it and ``services.alerts.reinstate_principal``
checks both again. Nothing here shows a beneficiary: an incident's scope is counted on
screen, and its downloads (CSV, notice drafts) carry internal ids and pseudonyms, never a
name or a NIR (the named list stays a break-glass CLI step).
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from tierspayant.app.platform import Platform
from tierspayant.domain.errors import DomainError
from tierspayant.formats import french_csv
from tierspayant.security.principal import Principal
from tierspayant.services import (
    alerts,
    audit_log,
    canaries,
    checkpoints,
    incident,
    portal_actions,
    portal_views,
    security_views,
)
from tierspayant.services.errors import ServiceError
from tierspayant.web import charts_bars, security_forms
from tierspayant.web.policy import policy
from tierspayant.web.render import PARIS, french_message, is_htmx, refusal_status, render
from tierspayant.web.security_forms import FormState
from tierspayant.web.session import Form, Portal, PortalSession, csrf_protect, platform_of, requires

PORTAL = Portal.SECURITY
RULE = policy(PORTAL.rule)
Operator = Annotated[PortalSession, Depends(requires(PORTAL))]
POLL_SECONDS = 5


def checkpoint_dir(platform: Platform) -> Path:
    """Where the checkpoint job exports signed checkpoints (``audit_checkpoint_dir``)."""
    return platform.settings.jobs.checkpoint_dir(platform.settings.data_dir)


def _moment(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=PARIS)


REINSTATE_NOTICES = {
    portal_actions.ReinstateStep.REQUESTED: (
        "Demande enregistrée : un second opérateur doit la confirmer."
    ),
    portal_actions.ReinstateStep.REINSTATED: "Accès rétabli (deux opérateurs ont approuvé).",
}


def reinstate_step(platform: Platform, principal_id: str, operator: Principal) -> str:
    """Record a first approval, or complete a second one; returns what happened, in French."""
    return REINSTATE_NOTICES[portal_actions.reinstate_step(platform, principal_id, operator)]


SCOPE_CSV_COLUMNS = (
    "N° AMC",
    "Organisme",
    "Id bénéficiaire",
    "Pseudonyme",
    "Consultations",
    "Première consultation",
    "Dernière consultation",
)


def scope_csv(scope: incident.IncidentScope) -> bytes:
    """The people read, per insurer, as internal ids and pseudonyms only.

    Written here rather than with ``incident.write_scope``: its columns include the
    identity a break-glass reveal adds, which the portal never asks for.
    """
    rows = (
        (
            insurer.amc_number,
            insurer.name,
            record.beneficiary_id,
            record.pseudonym,
            record.reads,
            record.first_read,
            record.last_read,
        )
        for insurer in scope.insurers
        for record in insurer.records
    )
    # For the security team's spreadsheet: a French CSV (times in Paris).
    return french_csv.encoded(SCOPE_CSV_COLUMNS, rows)


def notice_zip(scope: incident.IncidentScope) -> bytes:
    """The CNIL notification drafts and member letters of a scope, zipped.

    The drafts are written by ``incident.draft_notices`` into a private temporary
    folder that is gone when the archive is built; with no reveal, letters carry no name.
    """
    archive = io.BytesIO()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        written = incident.draft_notices(incident.scope_document(scope), root)
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
            for path in (*written.cnil, *written.letters):
                bundle.write(path, path.relative_to(root).as_posix())
    return archive.getvalue()


def _criteria(ask: security_forms.IncidentAsk) -> incident.ScopeCriteria:
    return incident.ScopeCriteria(
        start=_moment(ask.start),
        end=_moment(ask.end) + timedelta(days=1),
        principal=ask.principal,
        structure=ask.structure,
    )


def _audit_download(request: Request, session: PortalSession, kind: str, people: int) -> None:
    portal_actions.record_incident_download(
        platform_of(request), session.info.principal.id, kind, people
    )


def _attachment(body: bytes, media_type: str, filename: str) -> Response:
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return Response(body, media_type=media_type, headers=headers)


@dataclass(frozen=True, slots=True)
class CanaryRow:
    """One insurer's canaries as the console shows them: how many, when, alerts raised."""

    amc_number: str
    planted: int
    planted_at: datetime | None
    alerts: int


def canary_rows(
    planted: list[canaries.CanaryStatus], alert_counts: dict[str | None, int]
) -> list[CanaryRow]:
    """Join the planting status and the alert counts per AMC number (never which rows)."""
    return [
        CanaryRow(
            s.insurer,
            s.count,
            portal_views.aware(s.planted_at) if s.planted_at is not None else None,
            alert_counts.get(s.insurer, 0),
        )
        for s in planted
    ]


def _form_state(
    values: dict[str, str] | None = None, problems: security_forms.Problems | None = None
) -> FormState:
    return FormState(values or {}, problems or security_forms.Problems())


def router() -> APIRouter:
    routes = APIRouter(prefix=PORTAL.root, dependencies=[Depends(csrf_protect)])

    def console(
        request: Request,
        *,
        notice: str | None = None,
        incident_form: FormState | None = None,
        scope: incident.IncidentScope | None = None,
        principal_form: FormState | None = None,
        refusal: DomainError | None = None,
    ) -> Response:
        platform = platform_of(request)
        view = security_views.console_view(platform)
        chart = charts_bars.cap_chart(
            "plafonds",
            "Bénéficiaires distincts consultés aujourd'hui par structure, en part de leur "
            "plafond quotidien",
            [
                charts_bars.CapBar(
                    f.structure.name or f.structure.reference,
                    f.distinct,
                    f.cap,
                    f.soft,
                    title=f.structure.text,
                )
                for f in view.figures
            ],
        )
        return render(
            request,
            "security/home.html",
            portal=PORTAL,
            status_code=200 if refusal is None else refusal_status(request, refusal),
            view=view,
            names=view.names,
            alerts=view.alerts,
            chart=chart,
            top=security_views.TOP_STRUCTURES,
            poll=POLL_SECONDS,
            notice=notice,
            incident_form=incident_form or _form_state(),
            scope=scope,
            principal_form=principal_form or _form_state(),
        )

    def incident_section(
        request: Request,
        form: FormState,
        scope: incident.IncidentScope | None = None,
        refusal: DomainError | None = None,
    ) -> Response:
        """The incident section alone (htmx), or the whole console around it."""
        if not is_htmx(request):
            return console(request, incident_form=form, scope=scope, refusal=refusal)
        return render(
            request,
            "security/_incident.html",
            portal=PORTAL,
            status_code=200 if refusal is None else refusal_status(request, refusal),
            incident_form=form,
            scope=scope,
        )

    def scoped(
        request: Request, session: Operator, form: FormData
    ) -> tuple[incident.IncidentScope | None, Response | None]:
        """The scope the form asks for, or the page showing what is wrong with it."""
        ask, problems = security_forms.incident_ask(form)
        values = security_forms.typed(form, security_forms.INCIDENT_FIELDS, 120)
        if ask is None:
            state = _form_state(values, problems)
            return None, incident_section(request, state, refusal=problems.error())
        try:
            scope = incident.scope_incident(
                platform_of(request), _criteria(ask), session.info.principal.id
            )
        except ServiceError as exc:
            problems = security_forms.from_error(exc, "principal")
            return None, incident_section(request, _form_state(values, problems), refusal=exc)
        return scope, None

    @routes.get("/", **RULE)
    def home(request: Request, session: Operator) -> Response:
        return console(request)

    @routes.get("/alertes", **RULE)
    def live_alerts(request: Request, session: Operator) -> Response:
        rows, names = security_views.alerts_view(platform_of(request))
        return render(
            request,
            "security/_alerts.html",
            portal=PORTAL,
            alerts=rows,
            names=names,
            poll=POLL_SECONDS,
        )

    @routes.post("/alertes/{alert_id}/acquitter", **RULE)
    def acknowledge(request: Request, session: Operator, alert_id: int) -> Response:
        try:
            alerts.acknowledge_alert(platform_of(request), alert_id, session.info.principal)
        except ServiceError as exc:
            rows, names = security_views.alerts_view(platform_of(request))
            return render(
                request,
                "security/_alerts.html",
                portal=PORTAL,
                status_code=refusal_status(request, exc),
                alerts=rows,
                names=names,
                poll=POLL_SECONDS,
                error=french_message(exc),
                code=exc.code,
            )
        return live_alerts(request, session)

    @routes.get("/audit", **RULE)
    def audit_status(request: Request, session: Operator) -> Response:
        platform = platform_of(request)
        report = audit_log.verify(platform)
        exported = checkpoints.read_checkpoints(checkpoint_dir(platform))
        last = exported[-1].checkpoint if exported else None
        return render(
            request, "security/_audit.html", portal=PORTAL, report=report, checkpoint=last
        )

    @routes.get("/canaris", **RULE)
    def canary_status(request: Request, session: Operator) -> Response:
        platform = platform_of(request)
        counts = portal_views.canary_alert_counts(platform)
        rows = canary_rows(canaries.status(platform), counts)
        names = security_views.names(platform, insurers=[r.amc_number for r in rows])
        return render(
            request,
            "security/canaries.html",
            portal=PORTAL,
            rows=rows,
            names=names,
            unattached=counts.get(None, 0),
        )

    @routes.post("/incident", **RULE)
    def incident_scope(request: Request, session: Operator, form: Form) -> Response:
        scope, refused = scoped(request, session, form)
        if refused is not None:
            return refused
        values = security_forms.typed(form, security_forms.INCIDENT_FIELDS, 120)
        return incident_section(request, _form_state(values), scope)

    @routes.post("/incident/perimetre.csv", **RULE)
    def incident_csv(request: Request, session: Operator, form: Form) -> Response:
        scope, refused = scoped(request, session, form)
        if refused is not None:
            return refused
        assert scope is not None
        _audit_download(request, session, "scope_csv", scope.people)
        return _attachment(scope_csv(scope), "text/csv; charset=utf-8", "perimetre-incident.csv")

    @routes.post("/incident/notifications.zip", **RULE)
    def incident_notices(request: Request, session: Operator, form: Form) -> Response:
        scope, refused = scoped(request, session, form)
        if refused is not None:
            return refused
        assert scope is not None
        _audit_download(request, session, "notices_zip", scope.people)
        return _attachment(notice_zip(scope), "application/zip", "notifications-incident.zip")

    def principal_refused(
        request: Request, form: FormData, problems: security_forms.Problems, exc: DomainError
    ) -> Response:
        values = security_forms.typed(form, ("principal",), 120)
        return console(request, principal_form=_form_state(values, problems), refusal=exc)

    @routes.post("/principaux/revoquer", **RULE)
    def revoke_principal(request: Request, session: Operator, form: Form) -> Response:
        principal_id, problems = security_forms.principal_field(form)
        if principal_id is None:
            return principal_refused(request, form, problems, problems.error())
        portal_actions.revoke(platform_of(request), principal_id, session.info.principal)
        return console(request, notice="Accès révoqués : sessions et jetons fermés.")

    @routes.post("/principaux/retablir", **RULE)
    def reinstate(request: Request, session: Operator, form: Form) -> Response:
        principal_id, problems = security_forms.principal_field(form)
        if principal_id is None:
            return principal_refused(request, form, problems, problems.error())
        try:
            notice = reinstate_step(platform_of(request), principal_id, session.info.principal)
        except ServiceError as exc:
            problems = security_forms.from_error(exc, "principal")
            return principal_refused(request, form, problems, exc)
        return console(request, notice=notice)

    return routes
