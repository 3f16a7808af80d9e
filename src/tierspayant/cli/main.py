"""``tierspayant``: administer the platform, import files, serve the API."""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.markup import escape
from rich.table import Table

from tierspayant.app.observability import configure_logging
from tierspayant.app.platform import initialise
from tierspayant.cli.common import DEBUG_ENV, FailureGroup
from tierspayant.config import load_settings
from tierspayant.domain.care import CareDomain
from tierspayant.domain.codes import EnrolmentCode, RequestCode
from tierspayant.domain.errors import DomainError
from tierspayant.services import audit_log, insurers, providers

app = typer.Typer(
    cls=FailureGroup, no_args_is_help=True, help="tierspayant: tiers payant operator platform."
)
insurers_app = typer.Typer(no_args_is_help=True, help="Insurers (AMC) and their catalogues.")
providers_app = typer.Typer(no_args_is_help=True, help="Providers, conventions.")
tokens_app = typer.Typer(no_args_is_help=True, help="API credentials of provider software.")
import_app = typer.Typer(no_args_is_help=True, help="Import files.")
audit_app = typer.Typer(no_args_is_help=True, help="The tamper-evident audit log.")
app.add_typer(insurers_app, name="insurers")
app.add_typer(providers_app, name="providers")
app.add_typer(tokens_app, name="tokens")
app.add_typer(import_app, name="import")
app.add_typer(audit_app, name="audit")

from tierspayant.cli import (  # noqa: E402  (after the sub-applications exist)
    claims_cmds,
    containment_cmds,
    doctor_cmds,
    incident_cmds,
    money_cmds,
    portal_cmds,
    report_cmds,
    security_cmds,
    takeover_cmds,
    work_cmds,
)
from tierspayant.cli.common import CLI_ACTOR, console, err_console, platform_ctx  # noqa: E402

for _module in (
    claims_cmds,
    money_cmds,
    security_cmds,
    incident_cmds,
    portal_cmds,
    containment_cmds,
    doctor_cmds,
    report_cmds,
    takeover_cmds,
    work_cmds,
):
    _module.register(app, import_app)


@app.callback()
def main(
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            help="Show the traceback of a failure (otherwise one coded line, the traceback "
            "in <data_dir>/logs/cli-errors.log)",
        ),
    ] = False,
) -> None:
    """tierspayant: tiers payant operator platform."""
    if debug:
        os.environ[DEBUG_ENV] = "1"


@app.command()
def init() -> None:
    """Create the keyring (if absent) and the database schema. Safe to run again."""
    settings = load_settings()
    platform = initialise(settings)
    platform.close()
    console.print(f"database: {settings.database_url.split('@')[-1]}")
    console.print(f"keyring:  {settings.keyring_path} (keep it outside the database backups)")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on")] = None,
) -> None:
    """Serve the API (and the portals) on the configured database."""
    import uvicorn

    from tierspayant.api.app import create_app
    from tierspayant.jobs.background import background_workers

    configure_logging()  # one JSON object a line on standard error, with the request id
    settings = load_settings()
    with platform_ctx() as platform:
        # Background work of a serving platform (jobs/background.py): audit checkpoints
        # every few minutes, and the scheduler (adjudication, the payment run of each
        # business day, monthly billing, the nightly jobs) unless TIERSPAYANT_SCHEDULER=0.
        # ``tierspayant work`` runs the same work without serving HTTP.
        workers = background_workers(platform)
        for worker in workers:
            worker.start()
        try:
            uvicorn.run(
                create_app(platform),
                host=host or settings.host,
                port=port or settings.port,
                log_level="warning",
                access_log=False,  # access logs would hold nothing useful and cost time
            )
        finally:
            for worker in workers:
                worker.stop()


@app.command()
def demo(
    beneficiaries: Annotated[int, typer.Option(help="How many beneficiaries")] = 100_000,
    providers_count: Annotated[int, typer.Option("--providers", help="How many providers")] = 1_000,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic data")] = 2024,
    claims: Annotated[int, typer.Option(help="How many invoices of last month")] = 3_000,
    no_serve: Annotated[
        bool, typer.Option("--no-serve", help="Create the data, do not serve")
    ] = False,
) -> None:
    """Create demo data (3 insurers, beneficiaries, providers, a token) and serve."""
    from tierspayant.cli.demo import run_demo
    from tierspayant.demo.builder import demo_providers
    from tierspayant.demo.issuer import start_demo_issuer

    settings = load_settings()
    run_demo(settings, beneficiaries, providers_count, seed, console, claims)
    if no_serve:
        return
    # Pro Santé Connect cannot be reached from a demo: a local issuer of the same protocol
    # lets the demo professionals log in to the provider portal.
    professionals = [(s.name, s.rpps) for s in demo_providers(providers_count, seed) if s.rpps]
    issuer = start_demo_issuer("127.0.0.1", settings.port + 1, professionals[:5])
    portal = f"http://127.0.0.1:{settings.port}/portail/prestataire/oidc/retour"
    os.environ.update(issuer.environment(portal))
    console.print(f"Demo Pro Santé Connect: {issuer.url} (for the provider portal)\n")
    try:
        serve(None, None)
    finally:
        issuer.stop()


@app.command()
def sandbox(
    export: Annotated[
        Path | None,
        typer.Option(help="Write the data set (JSON) to this file, outside the data directory"),
    ] = None,
    no_serve: Annotated[
        bool, typer.Option("--no-serve", help="Create the data, do not serve")
    ] = False,
) -> None:
    """Create the fixed sandbox for provider software makers (docs/sandbox.md) and serve."""
    from tierspayant.cli.sandbox import ExportInsideDataDir, run_sandbox

    settings = load_settings()
    try:
        run_sandbox(settings, console, export)
    except ExportInsideDataDir as exc:
        err_console.print(f"error [sandbox.export] {escape(str(exc))}")
        raise typer.Exit(2) from None
    if not no_serve:
        serve(None, None)


# --- insurers ---------------------------------------------------------------------------


@insurers_app.command("add")
def insurers_add(
    amc: Annotated[str, typer.Option("--amc", help="AMC number printed on the cards")],
    name: Annotated[str, typer.Option(help="Name of the insurer")],
    kind: Annotated[str, typer.Option(help="mutuelle | prevoyance | assureur")] = "mutuelle",
) -> None:
    """Register an insurer and create its data keys."""
    with platform_ctx() as platform:
        insurer = insurers.add_insurer(platform, amc, name, kind, CLI_ACTOR)
    console.print(f"insurer {insurer.amc_number} added ({insurer.name})")


@insurers_app.command("list")
def insurers_list() -> None:
    """List the insurers."""
    with platform_ctx() as platform:
        table = Table("AMC", "name", "kind")
        for insurer in insurers.list_insurers(platform):
            table.add_row(insurer.amc_number, insurer.name, insurer.kind)
    console.print(table)


@insurers_app.command("catalogue")
def insurers_catalogue(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="YAML or JSON")],
    insurer: Annotated[str, typer.Option("--insurer", help="AMC number")],
) -> None:
    """Upload a guarantee catalogue; refused with the rule it breaks if it is not valid."""
    with platform_ctx() as platform:
        document = load_document(file)
        result = insurers.upload_catalogue(platform, insurer, document, CLI_ACTOR)
    state = "unchanged" if result.unchanged else "stored"
    console.print(
        f"catalogue version {result.version} {state}: contracts {', '.join(result.contracts)}"
    )


def load_document(file: Path) -> dict[str, object]:
    """Read a YAML or JSON document whose top level is a mapping."""
    text = file.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise DomainError(
            EnrolmentCode.FILE_SYNTAX, f"{file.name} is not valid YAML/JSON: {exc}"
        ) from None
    if not isinstance(data, dict):
        raise DomainError(
            EnrolmentCode.FILE_STRUCTURE, f"{file.name} must hold a mapping at its top level"
        )
    return data


@import_app.command("beneficiaries")
def import_beneficiaries(
    file: Annotated[Path, typer.Argument(help="Beneficiary file, CSV ';'-separated")],
    insurer: Annotated[str, typer.Option("--insurer", help="AMC number")],
    mode: Annotated[str, typer.Option(help="full | incremental")] = "incremental",
    file_date: Annotated[
        str | None, typer.Option(help="Date of the file, YYYY-MM-DD (default: today)")
    ] = None,
    errors: Annotated[
        Path | None, typer.Option("--errors", help="Where to write the error report (CSV)")
    ] = None,
    confirm_terminations: Annotated[
        int | None,
        typer.Option(
            "--confirm-terminations",
            min=0,
            help="Full mode: the number of terminations announced by a refused run, to "
            "confirm them (refused if the file gives another number)",
        ),
    ] = None,
) -> None:
    """Import an insurer's beneficiary file: bad lines reported, good lines applied."""
    from tierspayant.cli.import_beneficiaries import import_beneficiaries_command

    try:
        day = date.fromisoformat(file_date) if file_date else None
    except ValueError:
        err_console.print("[red]error[/red] [file_date.format] --file-date must be YYYY-MM-DD")
        raise typer.Exit(2) from None
    with platform_ctx() as platform:
        status = import_beneficiaries_command(
            platform, file, insurer, mode, day, errors, console, confirm_terminations
        )
    raise typer.Exit(status)


@import_app.command("runs")
def import_runs(
    insurer: Annotated[str, typer.Option("--insurer", help="AMC number")],
) -> None:
    """The insurer's latest beneficiary imports and their status; a run whose process died
    is marked interrupted."""
    from tierspayant.services import enrolment

    labels = {
        "running": "en cours",
        "done": "terminé",
        "failed": "échoué",
        "interrupted": "interrompu",
    }
    with platform_ctx() as platform:
        rows = enrolment.import_runs(platform, insurer, CLI_ACTOR)
    table = Table("import", "démarré", "mode", "état", "lignes", "ajoutés", "modifiés", "fins")
    for row in rows:
        table.add_row(
            str(row.id),
            row.started_at.strftime("%Y-%m-%d %H:%M UTC"),
            row.mode,
            labels.get(row.status, row.status),
            str(row.lines),
            str(row.inserted),
            str(row.updated),
            str(row.terminated),
        )
    console.print(table)


# --- providers --------------------------------------------------------------------------


@providers_app.command("add")
def providers_add(
    am_number: Annotated[str, typer.Option("--am", help="Billing number (numéro AM), 9 digits")],
    category: Annotated[str, typer.Option(help="pharmacy, gp, specialist, dentist, …")],
    name: Annotated[str, typer.Option(help="Name of the practice or establishment")],
    rpps: Annotated[str | None, typer.Option(help="RPPS of the professional")] = None,
    finess: Annotated[str | None, typer.Option(help="FINESS of the establishment")] = None,
    siret: Annotated[str | None, typer.Option(help="SIRET of the company")] = None,
    optam: Annotated[bool, typer.Option(help="Member of the OPTAM tariff options")] = False,
    iban: Annotated[str | None, typer.Option(help="IBAN for payments (stored encrypted)")] = None,
    bic: Annotated[str | None, typer.Option(help="BIC of the bank")] = None,
) -> None:
    """Register a provider."""
    with platform_ctx() as platform:
        provider = providers.add_provider(
            platform,
            providers.NewProvider(am_number, category, name, rpps, finess, siret, optam, iban, bic),
            CLI_ACTOR,
        )
    console.print(f"provider {provider.am_number} added ({provider.category.value})")


@providers_app.command("import")
def providers_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV, ';'-separated")],
) -> None:
    """Import a provider registry file (see docs/formats/providers.md)."""
    with platform_ctx() as platform:
        summary = providers.import_providers(platform, file, CLI_ACTOR)
    console.print(
        f"{summary.lines} lines: {summary.inserted} added, {summary.unchanged} already known, "
        f"{len(summary.rejected)} rejected"
    )
    for line, code, message in summary.rejected[:50]:
        err_console.print(escape(f"  line {line}: [{code}] {message}"))
    if summary.rejected:
        raise typer.Exit(1)


@providers_app.command("convention")
def providers_convention(
    am_number: Annotated[str, typer.Option("--am", help="Billing number of the provider")],
    insurer: Annotated[str, typer.Option("--insurer", help="AMC number")],
    domain: Annotated[
        list[CareDomain] | None, typer.Option(help="Care domains (default: the category's)")
    ] = None,
    valid_from: Annotated[str | None, typer.Option(help="YYYY-MM-DD (default: today)")] = None,
) -> None:
    """Record a provider's convention with an insurer for some care domains."""
    with platform_ctx() as platform:
        start = _parse_day(valid_from, "valid_from") if valid_from else platform.today()
        chosen = providers.add_conventions(platform, am_number, insurer, domain, start, CLI_ACTOR)
    console.print(f"convention with {insurer}: {', '.join(d.value for d in chosen)}")


@tokens_app.command("issue")
def tokens_issue(
    provider: Annotated[str, typer.Option("--provider", help="Billing number (numéro AM)")],
    label: Annotated[str, typer.Option(help="What software uses it")] = "provider software",
) -> None:
    """Create client credentials bound to a provider (the secret is shown once)."""
    with platform_ctx() as platform:
        creds = providers.issue_client(platform, provider, label, CLI_ACTOR)
    console.print(f"client_id:     {creds.client_id}")
    console.print(f"client_secret: {creds.client_secret}")
    console.print("Exchange them at POST /v1/oauth/token (grant_type=client_credentials).")


# --- audit ------------------------------------------------------------------------------


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the whole hash chain; name the first broken position."""
    with platform_ctx() as platform:
        report = audit_log.verify(platform)
    if report.ok:
        console.print(f"audit chain intact: {report.checked} events")
        return
    err_console.print(
        f"[red]audit chain broken[/red] at position {report.first_broken_seq}: {report.reason} "
        f"({report.checked} events checked)"
    )
    raise typer.Exit(1)


def _parse_day(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise DomainError(
            RequestCode(f"{option}.format"),
            f"--{option.replace('_', '-')} must be a date YYYY-MM-DD",
        ) from None


def run() -> None:
    """Entry point of the ``tierspayant`` script."""
    app()
