"""Insurer back office: catalogue upload with its validation report, beneficiary imports
with a downloadable error report, the insurer's own alerts, and charts.

Every query and every file is scoped by the staff member's insurer, taken from the
session's principal, never from the form.
"""

from __future__ import annotations

import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import FileResponse, Response

from tierspayant.app.platform import Platform
from tierspayant.domain import labels
from tierspayant.domain.errors import CatalogueError, DomainError
from tierspayant.domain.responsable import validate_responsable
from tierspayant.formats import catalogue_errors
from tierspayant.formats.beneficiaries import BeneficiaryFileError, explain, explain_file
from tierspayant.formats.catalogue import load_text, parse_catalogue
from tierspayant.services import enrolment, insurer_money, insurers, portal_views, prior_auth
from tierspayant.web import charts, forms
from tierspayant.web.member import contract_domains, family_name, rule_terms
from tierspayant.web.policy import policy
from tierspayant.web.render import french_message, render
from tierspayant.web.session import Form, Portal, PortalSession, csrf_protect, platform_of, requires

PORTAL = Portal.INSURER
RULE = policy(PORTAL.rule)
Staff = Annotated[PortalSession, Depends(requires(PORTAL))]
MAX_CATALOGUE_BYTES = 200_000


# The contrat responsable rules (code de la sécurité sociale, L871-1 and R871-1/2), in
# the words an insurer's staff uses; the service's English message stays in the report.
RULES_FR = {
    "covers_participation": "ne doit pas rembourser la participation forfaitaire",
    "covers_franchises": "ne doit pas rembourser les franchises médicales",
    "covers_hors_parcours": "ne doit pas couvrir la majoration hors parcours de soins",
    "rss_not_full": "doit couvrir intégralement le panier 100 % Santé",
    "tm_not_covered": "doit couvrir le ticket modérateur",
    "hospital_daily_charge": "doit couvrir le forfait journalier hospitalier sans limite",
    "non_optam_above_100": (
        "ne doit pas couvrir les dépassements non OPTAM au-delà de 100 % de la BR"
    ),
    "optam_gap": "doit mieux couvrir les dépassements OPTAM que les non OPTAM",
    "renewal_period": "doit respecter les périodes de renouvellement des équipements",
    "frame_cap": "doit respecter le plafond des montures",
    "optics_ceiling": "doit respecter les plafonds de l'optique",
    "optics_floor": "doit respecter les planchers de l'optique",
    "hearing_ceiling": "doit respecter le plafond des aides auditives",
}


def _terminations_in_french(exc: enrolment.TerminationsNotConfirmed) -> str:
    count = exc.terminations
    people = f"{count} bénéficiaire{'s' if count > 1 else ''}"
    if exc.confirmed is None:
        found = (
            f"Ce fichier complet mettrait fin à la couverture de {people} sur "
            f"{exc.covered} couverts, au-delà du seuil de {exc.threshold_bp / 100:g} %."
        )
    else:
        found = f"Ce fichier mettrait fin à la couverture de {people}, et non de {exc.confirmed}."
    return (
        f"{found} Rien n'a été appliqué. Vérifiez le fichier ; si ces radiations sont "
        "voulues, déposez-le à nouveau en les confirmant ci-dessous."
    )


def rule_in_french(code: str) -> str | None:
    """The French statement of a contrat responsable rule code, if it is one."""
    return RULES_FR.get(code.rsplit(".", 1)[-1]) if ".responsable." in code else None


@dataclass(frozen=True, slots=True)
class Finding:
    """One line of a catalogue's validation report; ``explanation``: where (line of the
    file, JSON path) and what, in French."""

    contract: str
    code: str
    field: str | None
    message: str
    explanation: str = ""

    @property
    def rule(self) -> str | None:
        return rule_in_french(self.code)

    @classmethod
    def of(cls, contract: str, exc: CatalogueError) -> Finding:
        return cls(contract, exc.code, exc.field, exc.message, catalogue_errors.explain(exc))


def validation_report(platform: Platform, document: Any, text: str | None = None) -> list[Finding]:
    """Every problem of a catalogue: the format's first, else one per contract that
    breaks a contrat responsable rule (codes ``catalogue.*``). With the file's ``text``,
    each names its line."""
    try:
        catalogue = parse_catalogue(document)
    except CatalogueError as exc:
        return [Finding.of("—", catalogue_errors.locate(exc, document, text))]
    findings = []
    for index, contract in enumerate(catalogue.contracts):
        if not contract.responsable:
            continue
        try:
            validate_responsable(contract, platform.reference, platform.today())
        except CatalogueError as exc:
            located = catalogue_errors.locate(
                CatalogueError(exc.code, exc.message, field=f"contracts[{index}]"),
                document,
                text,
            )
            findings.append(
                Finding(
                    contract.code,
                    exc.code,
                    exc.field,
                    exc.message,
                    catalogue_errors.explain(located),
                )
            )
    return findings


def _staff_insurer(request: Request, session: PortalSession) -> tuple[int, str, str]:
    insurer_id = session.info.principal.insurer_id
    assert insurer_id is not None  # insurer staff accounts always carry their insurer
    amc, name = portal_views.insurer_amc(platform_of(request), insurer_id)
    return insurer_id, amc, name


def _reports_dir(platform: Platform, insurer_id: int) -> Path:
    folder = platform.settings.data_dir / "portal-reports" / str(insurer_id)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def router() -> APIRouter:
    routes = APIRouter(prefix=PORTAL.root, dependencies=[Depends(csrf_protect)])

    @routes.get("/", **RULE)
    def home(request: Request, session: Staff) -> Response:
        platform = platform_of(request)
        insurer_id, amc, name = _staff_insurer(request, session)
        stats = portal_views.insurer_lookup_stats(platform, amc)
        history = portal_views.import_history(platform, insurer_id)
        imports = [(run.started_at.strftime("%d/%m"), run.lines) for run in reversed(history[:14])]
        return render(
            request,
            "insurer/home.html",
            portal=PORTAL,
            insurer_name=name,
            stats=stats,
            per_day=charts.column_chart("jour", "Vérifications de droits par jour", stats.per_day),
            per_domain=charts.bar_chart(
                "domaine",
                "Vérifications de droits par domaine de soins",
                [charts.Bar(labels.label(labels.Kind.DOMAIN, d), n) for d, n in stats.per_domain],
            ),
            imports=charts.column_chart("imports", "Lignes importées par import", imports),
            history=history,
        )

    def catalogue_page(
        request: Request, session: Staff, status_code: int = 200, **context: Any
    ) -> Response:
        """The upload form, the catalogue in force (after any upload) and its editions."""
        insurer_id, _, _ = _staff_insurer(request, session)
        return render(
            request,
            "insurer/catalogue.html",
            portal=PORTAL,
            status_code=status_code,
            in_force=insurer_money.catalogue_in_force(platform_of(request), insurer_id),
            contract_domains=contract_domains,
            family_name=family_name,
            rule_terms=rule_terms,
            **context,
        )

    @routes.get("/catalogue", **RULE)
    def catalogue_form(request: Request, session: Staff) -> Response:
        return catalogue_page(request, session)

    @routes.post("/catalogue", **RULE)
    def catalogue_upload(request: Request, session: Staff, form: Form) -> Response:
        platform = platform_of(request)
        _, amc, _ = _staff_insurer(request, session)
        try:
            upload = forms.upload(form, "file")
            raw = upload.file.read(MAX_CATALOGUE_BYTES + 1)
            if len(raw) > MAX_CATALOGUE_BYTES:
                findings = [Finding("—", "portal.file_too_large", None, "file above 200 kB")]
            else:
                text = raw.decode("utf-8")
                document = load_text(text)
                findings = validation_report(platform, document, text)
        except UnicodeDecodeError as exc:
            findings = [
                Finding(
                    "—",
                    "catalogue.syntax",
                    None,
                    "not UTF-8 text",
                    f"octet {exc.start + 1} : le fichier n'est pas du texte UTF-8",
                )
            ]
        except CatalogueError as exc:
            findings = [Finding.of("—", exc)]
        except DomainError as exc:
            return catalogue_page(request, session, error=french_message(exc))
        stored = None
        if not findings:
            try:
                actor = session.info.principal.id
                stored = insurers.upload_catalogue(platform, amc, document, actor)
            except CatalogueError as exc:
                findings = [Finding.of("—", catalogue_errors.locate(exc, document, text))]
            except DomainError as exc:
                findings = [Finding("—", exc.code, exc.field, exc.message, french_message(exc))]
        status = 422 if findings else 200
        return catalogue_page(
            request,
            session,
            status_code=status,
            findings=findings,
            stored=stored,
            checked=True,
        )

    @routes.get("/import", **RULE)
    def import_form(request: Request, session: Staff) -> Response:
        today = platform_of(request).today()
        return render(request, "insurer/import.html", portal=PORTAL, today=today)

    @routes.post("/import", **RULE)
    def import_upload(request: Request, session: Staff, form: Form) -> Response:
        platform = platform_of(request)
        insurer_id, amc, _ = _staff_insurer(request, session)
        report = _reports_dir(platform, insurer_id) / f"pending-{secrets.token_hex(8)}.csv"
        mode, file_date = "incremental", platform.today()
        try:
            upload = forms.upload(form, "file")
            mode = forms.text(form, "mode", max_length=12)
            file_date = forms.day(form, "file_date", default=platform.today())
            confirmed = forms.optional_integer(
                form, "confirm_terminations", low=0, high=999_999_999
            )
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "beneficiaires.csv"
                path.write_bytes(upload.file.read())
                summary = enrolment.import_beneficiaries(
                    platform,
                    amc,
                    path,
                    mode=mode,
                    file_date=file_date,
                    actor=session.info.principal.id,
                    error_report=report,
                    confirm_terminations=confirmed,
                )
        except enrolment.TerminationsNotConfirmed as exc:
            # Nothing was applied. The file is not kept (it holds identities in clear): the
            # confirmation step asks for it again, with the count the run announced.
            report.unlink(missing_ok=True)
            return render(
                request,
                "insurer/import.html",
                portal=PORTAL,
                status_code=409,
                error=_terminations_in_french(exc),
                code=exc.code,
                pending=exc,
                mode=mode,
                file_date=file_date,
                today=platform.today(),
            )
        except DomainError as exc:
            report.unlink(missing_ok=True)
            message = (
                explain_file(exc) if isinstance(exc, BeneficiaryFileError) else french_message(exc)
            )
            return render(
                request,
                "insurer/import.html",
                portal=PORTAL,
                status_code=422,
                error=message,
                code=exc.code,
                today=platform.today(),
            )
        report.rename(report.with_name(f"{summary.run_id}.csv"))
        return render(
            request,
            "insurer/import.html",
            portal=PORTAL,
            summary=summary,
            explain=explain,
            today=platform.today(),
        )

    @routes.get("/import/{run_id}/erreurs.csv", **RULE)
    def error_report(request: Request, session: Staff, run_id: int) -> Response:
        insurer_id, _, _ = _staff_insurer(request, session)
        path = _reports_dir(platform_of(request), insurer_id) / f"{run_id}.csv"
        if not path.is_file():
            return render(
                request,
                "error.html",
                portal=PORTAL,
                status_code=404,
                message="Ce rapport n'existe pas.",
            )
        return FileResponse(
            path, media_type="text/csv; charset=utf-8", filename=f"rejets-import-{run_id}.csv"
        )

    @routes.get("/accords", **RULE)
    def agreements(request: Request, session: Staff) -> Response:
        insurer_id, _, _ = _staff_insurer(request, session)
        rows = portal_views.pending_agreements(platform_of(request), insurer_id)
        return render(request, "insurer/agreements.html", portal=PORTAL, rows=rows)

    @routes.post("/accords/{number}", **RULE)
    def decide(request: Request, session: Staff, form: Form, number: str) -> Response:
        platform = platform_of(request)
        insurer_id, _, _ = _staff_insurer(request, session)
        accept = forms.text(form, "decision", max_length=8) == "accepter"
        try:
            decided = prior_auth.decide_prior_auth(
                platform,
                number[:24],
                accept=accept,
                reason=forms.text(form, "reason", max_length=500, required=False),
                actor=session.info.principal.id,
                insurer_id=insurer_id,
            )
            notice = f"Accord {decided.agreement_number} : {'accordé' if accept else 'refusé'}."
            error = None
        except DomainError as exc:
            notice, error = None, french_message(exc)
        rows = portal_views.pending_agreements(platform, insurer_id)
        return render(
            request, "insurer/agreements.html", portal=PORTAL, rows=rows, notice=notice, error=error
        )

    @routes.get("/alertes", **RULE)
    def own_alerts(request: Request, session: Staff) -> Response:
        _, amc, _ = _staff_insurer(request, session)
        rows = portal_views.alerts(platform_of(request), insurer=amc)
        return render(request, "insurer/alerts.html", portal=PORTAL, rows=rows)

    return routes


__all__ = ["Finding", "router", "validation_report"]
