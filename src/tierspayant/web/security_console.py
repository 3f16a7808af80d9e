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
)
from tierspayant.services.errors import ServiceError
from tierspayant.web import charts, forms
from tierspayant.web.policy import policy
from tierspayant.web.render import PARIS, french_message, refusal_status, render
from tierspayant.web.session import Form, Portal, PortalSession, csrf_protect, platform_of, requires

PORTAL = Portal.SECURITY
RULE = policy(PORTAL.rule)
Operator = Annotated[PortalSession, Depends(requires(PORTAL))]
POLL_SECONDS = 5
INCIDENT_FIELDS = ("start", "end", "principal", "structure")


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


def _criteria(form: FormData) -> incident.ScopeCriteria:
    return incident.ScopeCriteria(
        start=_moment(forms.day(form, "start")),
        end=_moment(forms.day(form, "end")) + timedelta(days=1),
        principal=forms.optional_text(form, "principal", max_length=120),
        structure=forms.optional_text(form, "structure", max_length=20),
    )


def _asked(form: FormData) -> dict[str, str]:
    """The criteria as typed, for the download forms under the result."""
    return {name: str(form.get(name) or "")[:120] for name in INCIDENT_FIELDS}


def _scope(request: Request, session: PortalSession, form: FormData) -> incident.IncidentScope:
    """Scope without reveal: ids and pseudonyms, never names or NIR (audited by the service)."""
    return incident.scope_incident(platform_of(request), _criteria(form), session.info.principal.id)


def _why(exc: ServiceError | ValueError) -> str:
    return french_message(exc) if isinstance(exc, ServiceError) else str(exc)


def _refused(request: Request, exc: ServiceError | ValueError) -> Response:
    return render(request, "error.html", portal=PORTAL, status_code=422, message=_why(exc))


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


def router() -> APIRouter:
    routes = APIRouter(prefix=PORTAL.root, dependencies=[Depends(csrf_protect)])

    def console(
        request: Request,
        *,
        notice: str | None = None,
        error: str | None = None,
        status_code: int = 200,
    ) -> Response:
        platform = platform_of(request)
        figures = portal_views.structure_figures(platform)
        chart = charts.bar_chart(
            "plafonds",
            "Bénéficiaires distincts consultés aujourd'hui par structure, et leur plafond",
            [charts.Bar(f.structure, f.distinct, f.cap or None, f.soft or None) for f in figures],
        )
        return render(
            request,
            "security/home.html",
            portal=PORTAL,
            status_code=status_code,
            alerts=portal_views.alerts(platform),
            suspended=portal_views.suspended_principals(platform),
            figures=figures,
            chart=chart,
            poll=POLL_SECONDS,
            notice=notice,
            error=error,
        )

    @routes.get("/", **RULE)
    def home(request: Request, session: Operator) -> Response:
        return console(request)

    @routes.get("/alertes", **RULE)
    def live_alerts(request: Request, session: Operator) -> Response:
        rows = portal_views.alerts(platform_of(request))
        return render(
            request, "security/_alerts.html", portal=PORTAL, alerts=rows, poll=POLL_SECONDS
        )

    @routes.post("/alertes/{alert_id}/acquitter", **RULE)
    def acknowledge(request: Request, session: Operator, alert_id: int) -> Response:
        alerts.acknowledge_alert(platform_of(request), alert_id, session.info.principal)
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
        return render(
            request,
            "security/canaries.html",
            portal=PORTAL,
            rows=canary_rows(canaries.status(platform), counts),
            unattached=counts.get(None, 0),
        )

    @routes.post("/incident", **RULE)
    def incident_scope(request: Request, session: Operator, form: Form) -> Response:
        try:
            scope = _scope(request, session, form)
        except (ServiceError, ValueError) as exc:
            return render(request, "security/_incident.html", portal=PORTAL, error=_why(exc))
        return render(
            request,
            "security/_incident.html",
            portal=PORTAL,
            scope=scope,
            asked=_asked(form),
        )

    @routes.post("/incident/perimetre.csv", **RULE)
    def incident_csv(request: Request, session: Operator, form: Form) -> Response:
        try:
            scope = _scope(request, session, form)
        except (ServiceError, ValueError) as exc:
            return _refused(request, exc)
        _audit_download(request, session, "scope_csv", scope.people)
        return _attachment(scope_csv(scope), "text/csv; charset=utf-8", "perimetre-incident.csv")

    @routes.post("/incident/notifications.zip", **RULE)
    def incident_notices(request: Request, session: Operator, form: Form) -> Response:
        try:
            scope = _scope(request, session, form)
        except (ServiceError, ValueError) as exc:
            return _refused(request, exc)
        _audit_download(request, session, "notices_zip", scope.people)
        return _attachment(notice_zip(scope), "application/zip", "notifications-incident.zip")

    @routes.post("/principaux/revoquer", **RULE)
    def revoke_principal(request: Request, session: Operator, form: Form) -> Response:
        principal_id = forms.text(form, "principal", max_length=120)
        portal_actions.revoke(platform_of(request), principal_id, session.info.principal)
        return console(request, notice="Accès révoqués : sessions et jetons fermés.")

    @routes.post("/principaux/retablir", **RULE)
    def reinstate(request: Request, session: Operator, form: Form) -> Response:
        principal_id = forms.text(form, "principal", max_length=120)
        try:
            notice = reinstate_step(platform_of(request), principal_id, session.info.principal)
        except ServiceError as exc:
            return console(
                request, error=french_message(exc), status_code=refusal_status(request, exc)
            )
        return console(request, notice=notice)

    return routes
