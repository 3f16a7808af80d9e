"""Insurer back office, invoices and money: adjudicated invoice figures, and the monthly
billing statements with the files the billing run wrote.

The insurer is the session's, never the request's: a downloaded file's path is built from
the staff member's own AMC number and a period checked against ``YYYY-MM``, so no name
typed in a URL can reach another insurer's file or leave the billing folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import FileResponse, Response

from tierspayant.domain.adjudication import REASONS, Reason
from tierspayant.domain.errors import DomainError
from tierspayant.services import (
    bank_details,
    billing,
    delays,
    payment_returns,
    portal_actions,
    portal_views,
)
from tierspayant.web import charts
from tierspayant.web.insurer_desk import provider_link, search_link, week_span
from tierspayant.web.policy import policy
from tierspayant.web.render import MESSAGES, french_message, render
from tierspayant.web.session import Form, Portal, PortalSession, csrf_protect, platform_of, requires

PORTAL = Portal.INSURER
RULE = policy(PORTAL.rule)
Staff = Annotated[PortalSession, Depends(requires(PORTAL))]
PERIOD = re.compile(r"\d{4}-(0[1-9]|1[0-2])")

# What staff may download, by the name in the URL: (key of billing.statement_files,
# media type, name given to the browser).
DOCUMENTS = {
    "releve.json": ("statement_json", "application/json", "releve-{amc}-{period}.json"),
    "releve.csv": ("statement_csv", "text/csv; charset=utf-8", "releve-{amc}-{period}.csv"),
    "detail.csv": ("detail", "text/csv; charset=utf-8", "detail-{amc}-{period}.csv"),
    "pain008.xml": ("fund_call", "application/xml", "pain008-{amc}-{period}.xml"),
}


def short_week(week: str) -> str:
    """``2026-W07`` as a chart's column label: ``sem. 7``."""
    return f"sem. {week.partition('-W')[2].lstrip('0')}"


def reason_label(code: str) -> str:
    """The French wording of a line's reason (what the provider reads too), else its code."""
    try:
        return REASONS[Reason(code)]
    except ValueError:
        return MESSAGES.get(code, code)


@dataclass(frozen=True, slots=True)
class FigureLinks:
    """Where each figure of *Factures et rejets* leads: the claim search filtered on the
    lines it counts (adjudicated claims, care dates from ``since``), or a provider page."""

    since: date

    def week(self, week: str, domain: str | None = None) -> str:
        monday, sunday = week_span(week)
        return search_link(du=monday, au=sunday, domaine=domain, statut="adjudicated")

    def reason(self, code: str) -> str:
        return search_link(du=self.since, motif=code, statut="adjudicated")

    def provider_claims(self, am_number: str) -> str:
        return search_link(prestataire=am_number, du=self.since, statut="adjudicated")

    def provider(self, provider_id: int) -> str:
        return provider_link(provider_id)


def _staff_insurer(request: Request, session: PortalSession) -> tuple[int, str]:
    insurer_id = session.info.principal.insurer_id
    assert insurer_id is not None  # insurer staff accounts always carry their insurer
    amc, _ = portal_views.insurer_amc(platform_of(request), insurer_id)
    return insurer_id, amc


def _not_found(request: Request) -> Response:
    return render(
        request, "error.html", portal=PORTAL, status_code=404, message="Ce fichier n'existe pas."
    )


def router() -> APIRouter:
    routes = APIRouter(prefix=PORTAL.root, dependencies=[Depends(csrf_protect)])

    @routes.get("/factures", **RULE)
    def invoices(request: Request, session: Staff) -> Response:
        insurer_id, _ = _staff_insurer(request, session)
        figures = portal_views.invoice_figures(platform_of(request), insurer_id)
        links = FigureLinks(week_span(figures.weeks[0])[0])
        reasons = [
            charts.Bar(reason_label(r.code), r.lines, href=links.reason(r.code))
            for r in figures.reasons
        ]
        per_week = figures.lines_per_week()
        return render(
            request,
            "insurer/invoices.html",
            portal=PORTAL,
            figures=figures,
            reason_label=reason_label,
            links=links,
            per_week=charts.column_chart(
                "semaines",
                "Lignes de factures traitées par semaine",
                [(short_week(week), n) for week, n in per_week],
                [links.week(week) if n else None for week, n in per_week],
            ),
            per_reason=charts.bar_chart("motifs", "Lignes rejetées ou réduites par motif", reasons),
        )

    @routes.get("/engagements", **RULE)
    def engagements(request: Request, session: Staff) -> Response:
        insurer_id, _ = _staff_insurer(request, session)
        rows = portal_views.honoured_engagements(platform_of(request), insurer_id)
        return render(request, "insurer/engagements.html", portal=PORTAL, rows=rows)

    @routes.get("/releves", **RULE)
    def statements(request: Request, session: Staff) -> Response:
        insurer_id, _ = _staff_insurer(request, session)
        rows = portal_views.statements(platform_of(request), insurer_id)
        returned = billing.returned_fund_calls(platform_of(request), insurer_id)
        transfers = payment_returns.insurer_returns(platform_of(request), insurer_id)
        return render(
            request,
            "insurer/statements.html",
            portal=PORTAL,
            rows=rows,
            documents=DOCUMENTS,
            returned=returned,
            transfers=transfers,
            delays=delays.insurer_delays(platform_of(request), insurer_id),
        )

    def bank_page(request: Request, session: Staff, **context: Any) -> Response:
        changes = bank_details.pending_changes(platform_of(request), session.info.principal)
        return render(
            request, "insurer/bank_details.html", portal=PORTAL, changes=changes, **context
        )

    @routes.get("/coordonnees-bancaires", **RULE)
    def bank_changes(request: Request, session: Staff) -> Response:
        return bank_page(request, session)

    @routes.post("/coordonnees-bancaires/{change_id}", **RULE)
    def bank_decide(request: Request, session: Staff, form: Form, change_id: int) -> Response:
        platform, principal = platform_of(request), session.info.principal
        visible = {c.id for c in bank_details.pending_changes(platform, principal)}
        if change_id not in visible:
            return _not_found(request)
        try:
            if form.get("decision") == "refuse":
                bank_details.refuse_change(platform, principal, change_id)
                notice = f"Changement {change_id} refusé : rien ne sera versé sur ce compte."
            else:
                method = str(form.get("method") or "")[:20]
                done = bank_details.verify_change(platform, principal, change_id, method)
                notice = (
                    f"Changement {change_id} vérifié : premiers virements à partir du "
                    f"{done.effective_on:%d/%m/%Y}."
                )
        except DomainError as exc:
            return bank_page(request, session, error=french_message(exc), code=exc.code)
        return bank_page(request, session, notice=notice)

    @routes.get("/releves/{period}/{document}", **RULE)
    def download(request: Request, session: Staff, period: str, document: str) -> Response:
        platform = platform_of(request)
        _, amc = _staff_insurer(request, session)
        if not PERIOD.fullmatch(period) or document not in DOCUMENTS:
            return _not_found(request)
        key, media_type, filename = DOCUMENTS[document]
        folder = billing.default_out_dir(platform, period)
        path = billing.statement_files(folder, amc, period)[key]
        if not path.is_file():
            return _not_found(request)
        portal_actions.record_billing_download(
            platform, session.info.principal.id, amc, period, document
        )
        return FileResponse(
            path, media_type=media_type, filename=filename.format(amc=amc, period=period)
        )

    return routes


__all__ = ["DOCUMENTS", "reason_label", "router"]
