"""``tierspayant``: administer the platform, import files, serve the API."""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
import typer.rich_utils
import yaml
from rich.markup import escape
from rich.table import Table

from tierspayant.app.observability import configure_logging
from tierspayant.app.platform import initialise
from tierspayant.cli.common import DEBUG_ENV, FailureGroup
from tierspayant.config import load_settings
from tierspayant.domain.care import CareDomain
from tierspayant.domain.codes import EnrolmentCode, RequestCode
from tierspayant.domain.errors import CatalogueError, DomainError
from tierspayant.formats import catalogue_errors
from tierspayant.services import audit_archive, audit_log, insurers, providers

# The help pages' own words in French (Typer reads these when it draws a help page). Its
# built-in options (--help, --install-completion, --show-completion) keep Typer's texts.
typer.rich_utils.COMMANDS_PANEL_TITLE = "Commandes"
typer.rich_utils.ARGUMENTS_PANEL_TITLE = "Arguments"
typer.rich_utils.OPTIONS_PANEL_TITLE = "Options"
typer.rich_utils.DEFAULT_STRING = "[par défaut : {}]"
typer.rich_utils.REQUIRED_LONG_STRING = "[obligatoire]"
typer.rich_utils.ENVVAR_STRING = "[variable d'environnement : {}]"
typer.rich_utils.DEPRECATED_STRING = "(obsolète) "
typer.rich_utils.ERRORS_PANEL_TITLE = "Erreur"
typer.rich_utils.ABORTED_TEXT = "Abandon."
typer.rich_utils.RICH_HELP = "Aide : [blue]'{command_path} {help_option}'[/]"

app = typer.Typer(
    cls=FailureGroup,
    no_args_is_help=True,
    help="tierspayant : plateforme d'opérateur de tiers payant.",
)
insurers_app = typer.Typer(
    no_args_is_help=True, help="Organismes complémentaires (AMC) et leurs catalogues de garanties."
)
providers_app = typer.Typer(no_args_is_help=True, help="Professionnels de santé et conventions.")
tokens_app = typer.Typer(
    no_args_is_help=True, help="Identifiants API des logiciels des professionnels."
)
import_app = typer.Typer(no_args_is_help=True, help="Importer des fichiers.")
audit_app = typer.Typer(
    no_args_is_help=True, help="Journal d'audit infalsifiable (chaîne de hachage)."
)
app.add_typer(insurers_app, name="insurers")
app.add_typer(providers_app, name="providers")
app.add_typer(tokens_app, name="tokens")
app.add_typer(import_app, name="import")
app.add_typer(audit_app, name="audit")

from tierspayant.cli import (  # noqa: E402  (after the sub-applications exist)
    backup_cmds,
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
from tierspayant.cli.common import (  # noqa: E402
    CLI_ACTOR,
    console,
    err_console,
    fail,
    platform_ctx,
)

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
    backup_cmds,  # after incident_cmds: it adds ``keys export|import`` to its group
):
    _module.register(app, import_app)


@app.callback()
def main(
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            help="Afficher la trace d'un échec (sinon une ligne codée, la trace allant dans "
            "<data_dir>/logs/cli-errors.log)",
        ),
    ] = False,
) -> None:
    """tierspayant : plateforme d'opérateur de tiers payant."""
    if debug:
        os.environ[DEBUG_ENV] = "1"


@app.command()
def init() -> None:
    """Créer le trousseau de clés (s'il manque) et le schéma de la base. Peut être relancé sans
    risque."""
    settings = load_settings()
    platform = initialise(settings)
    platform.close()
    console.print(f"base de données : {settings.database_url.split('@')[-1]}", markup=False)
    console.print(
        f"trousseau :       {settings.keyring_path} (à garder hors des sauvegardes de la base)",
        markup=False,
    )


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Adresse d'écoute")] = None,
    port: Annotated[int | None, typer.Option(help="Port d'écoute")] = None,
) -> None:
    """Servir l'API (et les portails) sur la base configurée."""
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
    beneficiaries: Annotated[int, typer.Option(help="Nombre de bénéficiaires")] = 100_000,
    providers_count: Annotated[
        int, typer.Option("--providers", help="Nombre de professionnels de santé")
    ] = 1_000,
    seed: Annotated[int, typer.Option(help="Graine des données synthétiques")] = 2024,
    claims: Annotated[int, typer.Option(help="Nombre de factures du mois dernier")] = 3_000,
    no_serve: Annotated[
        bool, typer.Option("--no-serve", help="Créer les données sans lancer le serveur")
    ] = False,
) -> None:
    """Créer les données de démonstration (3 organismes, bénéficiaires, professionnels,
    factures payées) et servir l'API, les portails et la documentation. Relancée, renouvelle
    les identifiants des comptes de démonstration et les affiche."""
    from tierspayant.cli.demo import run_demo
    from tierspayant.demo.builder import demo_providers
    from tierspayant.demo.issuer import start_demo_issuer

    # The demo serves the OpenAPI document and its page (/docs) unless told otherwise.
    os.environ.setdefault("TIERSPAYANT_API_DOCS", "1")
    settings = load_settings()
    summary = run_demo(settings, beneficiaries, providers_count, seed, console, claims)
    if no_serve:
        return
    # Pro Santé Connect cannot be reached from a demo: a local issuer of the same protocol
    # lets the demo professionals (the pharmacist first) log in to the provider portal.
    pharmacist = (
        f"{summary.pharmacist_name} – {summary.pharmacy_name}",
        summary.pharmacist_rpps,
    )
    others = [(s.name, s.rpps) for s in demo_providers(providers_count, seed) if s.rpps]
    issuer = start_demo_issuer("127.0.0.1", settings.port + 1, [pharmacist, *others[:4]])
    portal = f"http://127.0.0.1:{settings.port}/portail/prestataire/oidc/retour"
    os.environ.update(issuer.environment(portal))
    console.print(
        f"Pro Santé Connect de démonstration : {issuer.url} (pour l'espace des professionnels)\n"
    )
    try:
        serve(None, None)
    finally:
        issuer.stop()


@app.command()
def sandbox(
    export: Annotated[
        Path | None,
        typer.Option(
            help="Écrire le jeu de données (JSON) dans ce fichier, hors du répertoire de données"
        ),
    ] = None,
    no_serve: Annotated[
        bool, typer.Option("--no-serve", help="Créer les données sans lancer le serveur")
    ] = False,
) -> None:
    """Créer le bac à sable fixe des éditeurs de logiciels (docs/sandbox.md) et servir l'API."""
    from tierspayant.cli.sandbox import ExportInsideDataDir, run_sandbox

    settings = load_settings()
    try:
        run_sandbox(settings, console, export)
    except ExportInsideDataDir as exc:
        err_console.print(f"[red]erreur[/red] {escape(f'[sandbox.export] {exc}')}")
        raise typer.Exit(2) from None
    if not no_serve:
        serve(None, None)


# --- insurers ---------------------------------------------------------------------------


@insurers_app.command("add")
def insurers_add(
    amc: Annotated[str, typer.Option("--amc", help="Numéro AMC imprimé sur les cartes")],
    name: Annotated[str, typer.Option(help="Nom de l'organisme")],
    kind: Annotated[str, typer.Option(help="type : mutuelle | prevoyance | assureur")] = "mutuelle",
) -> None:
    """Enregistrer un organisme complémentaire et créer ses clés de données."""
    with platform_ctx() as platform:
        insurer = insurers.add_insurer(platform, amc, name, kind, CLI_ACTOR)
    console.print(f"organisme {insurer.amc_number} ajouté ({insurer.name})", markup=False)


@insurers_app.command("list")
def insurers_list() -> None:
    """Lister les organismes complémentaires."""
    with platform_ctx() as platform:
        table = Table("AMC", "nom", "type")
        for insurer in insurers.list_insurers(platform):
            table.add_row(insurer.amc_number, insurer.name, insurer.kind)
    console.print(table)


@insurers_app.command("catalogue")
def insurers_catalogue(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="YAML ou JSON")],
    insurer: Annotated[str, typer.Option("--insurer", help="Numéro AMC de l'organisme")],
) -> None:
    """Déposer un catalogue de garanties ; refusé, avec la règle enfreinte, s'il n'est pas
    valide (en français, avec la ligne du fichier, le chemin JSON et la valeur fautive)."""
    with platform_ctx() as platform:
        document = load_document(file)
        try:
            result = insurers.upload_catalogue(platform, insurer, document, CLI_ACTOR)
        except CatalogueError as exc:
            text = file.read_text(encoding="utf-8")
            located = catalogue_errors.locate(exc, document, text)
            raise fail(located, catalogue_errors.explain(located)) from None
    state = "inchangé" if result.unchanged else "enregistré"
    console.print(
        f"catalogue version {result.version} {state} : contrats {', '.join(result.contracts)}",
        markup=False,
    )


def load_document(file: Path) -> dict[str, object]:
    """Read a YAML or JSON document whose top level is a mapping."""
    text = file.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise DomainError(
            EnrolmentCode.FILE_SYNTAX, f"{file.name} n'est pas un YAML/JSON valide : {exc}"
        ) from None
    if not isinstance(data, dict):
        raise DomainError(
            EnrolmentCode.FILE_STRUCTURE,
            f"{file.name} doit contenir un dictionnaire à son premier niveau",
        )
    return data


@import_app.command("beneficiaries")
def import_beneficiaries(
    file: Annotated[Path, typer.Argument(help="Fichier des bénéficiaires, CSV séparé par ';'")],
    insurer: Annotated[str, typer.Option("--insurer", help="Numéro AMC de l'organisme")],
    mode: Annotated[
        str, typer.Option(help="full (complet) | incremental (mouvements)")
    ] = "incremental",
    file_date: Annotated[
        str | None, typer.Option(help="Date du fichier, AAAA-MM-JJ (par défaut : aujourd'hui)")
    ] = None,
    errors: Annotated[
        Path | None, typer.Option("--errors", help="Où écrire le rapport des lignes refusées (CSV)")
    ] = None,
    confirm_terminations: Annotated[
        int | None,
        typer.Option(
            "--confirm-terminations",
            min=0,
            help="Mode complet : le nombre de radiations annoncé par un import refusé, pour "
            "les confirmer (refusé si le fichier en donne un autre)",
        ),
    ] = None,
) -> None:
    """Importer le fichier des bénéficiaires d'un organisme : lignes fausses signalées, lignes
    correctes appliquées."""
    from tierspayant.cli.import_beneficiaries import import_beneficiaries_command

    try:
        day = date.fromisoformat(file_date) if file_date else None
    except ValueError:
        err_console.print(
            "[red]erreur[/red] "
            + escape("[file_date.format] --file-date doit être une date AAAA-MM-JJ")
        )
        raise typer.Exit(2) from None
    with platform_ctx() as platform:
        status = import_beneficiaries_command(
            platform, file, insurer, mode, day, errors, console, confirm_terminations
        )
    raise typer.Exit(status)


@import_app.command("runs")
def import_runs(
    insurer: Annotated[str, typer.Option("--insurer", help="Numéro AMC de l'organisme")],
) -> None:
    """Les derniers imports de bénéficiaires de l'organisme et leur état ; un import dont le
    processus s'est arrêté est marqué interrompu."""
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
    am_number: Annotated[
        str, typer.Option("--am", help="Numéro de facturation (numéro AM), 9 chiffres")
    ],
    category: Annotated[str, typer.Option(help="catégorie : pharmacy, gp, specialist, dentist…")],
    name: Annotated[str, typer.Option(help="Nom du cabinet ou de l'établissement")],
    rpps: Annotated[str | None, typer.Option(help="RPPS du professionnel")] = None,
    finess: Annotated[str | None, typer.Option(help="FINESS de l'établissement")] = None,
    siret: Annotated[str | None, typer.Option(help="SIRET de l'entreprise")] = None,
    optam: Annotated[bool, typer.Option(help="Adhérent aux options tarifaires OPTAM")] = False,
    iban: Annotated[str | None, typer.Option(help="IBAN des paiements (conservé chiffré)")] = None,
    bic: Annotated[str | None, typer.Option(help="BIC de la banque")] = None,
) -> None:
    """Enregistrer un professionnel de santé."""
    with platform_ctx() as platform:
        provider = providers.add_provider(
            platform,
            providers.NewProvider(am_number, category, name, rpps, finess, siret, optam, iban, bic),
            CLI_ACTOR,
        )
    console.print(f"professionnel {provider.am_number} ajouté ({provider.category.value})")


@providers_app.command("import")
def providers_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV séparé par ';'")],
) -> None:
    """Importer un fichier du répertoire des professionnels (voir docs/formats/providers.md)."""
    with platform_ctx() as platform:
        summary = providers.import_providers(platform, file, CLI_ACTOR)
    console.print(
        f"{summary.lines} lignes : {summary.inserted} ajoutés, {summary.unchanged} déjà connus, "
        f"{len(summary.rejected)} refusées"
    )
    for line, code, message in summary.rejected[:50]:
        err_console.print(escape(f"  ligne {line} : [{code}] {message}"))
    if summary.rejected:
        raise typer.Exit(1)


@providers_app.command("convention")
def providers_convention(
    am_number: Annotated[
        str, typer.Option("--am", help="Numéro de facturation (AM) du professionnel")
    ],
    insurer: Annotated[str, typer.Option("--insurer", help="Numéro AMC de l'organisme")],
    domain: Annotated[
        list[CareDomain] | None,
        typer.Option(help="Domaines de soins (par défaut : ceux de la catégorie)"),
    ] = None,
    valid_from: Annotated[
        str | None, typer.Option(help="AAAA-MM-JJ (par défaut : aujourd'hui)")
    ] = None,
) -> None:
    """Enregistrer la convention d'un professionnel avec un organisme pour des domaines de soins."""
    with platform_ctx() as platform:
        start = _parse_day(valid_from, "valid_from") if valid_from else platform.today()
        chosen = providers.add_conventions(platform, am_number, insurer, domain, start, CLI_ACTOR)
    console.print(f"convention avec {insurer} : {', '.join(d.value for d in chosen)}")


@tokens_app.command("issue")
def tokens_issue(
    provider: Annotated[str, typer.Option("--provider", help="Numéro de facturation (numéro AM)")],
    label: Annotated[
        str, typer.Option(help="Le logiciel qui s'en sert")
    ] = "logiciel du professionnel",
) -> None:
    """Créer des identifiants client liés à un professionnel (le secret n'est affiché qu'une
    fois)."""
    with platform_ctx() as platform:
        creds = providers.issue_client(platform, provider, label, CLI_ACTOR)
    console.print(f"client_id:     {creds.client_id}")
    console.print(f"client_secret: {creds.client_secret}")
    console.print(
        "À échanger contre un jeton : POST /v1/oauth/token (grant_type=client_credentials)."
    )


# --- audit ------------------------------------------------------------------------------


@audit_app.command("verify")
def audit_verify() -> None:
    """Vérifier toute la chaîne de hachage ; nommer la première position rompue."""
    with platform_ctx() as platform:
        report = audit_log.verify(platform)
    if report.ok:
        console.print(f"chaîne d'audit intacte : {report.checked} événements")
        return
    err_console.print(
        f"[red]chaîne d'audit rompue[/red] à la position {report.first_broken_seq} : "
        f"{escape(report.reason or '')} ({report.checked} événements vérifiés)"
    )
    raise typer.Exit(1)


@audit_app.command("archiver")
def audit_archive_month(
    mois: Annotated[str, typer.Option("--mois", help="Mois à archiver, AAAA-MM (le plus ancien)")],
    dossier: Annotated[
        Path, typer.Option("--dossier", help="Dossier où écrire l'archive et son manifeste")
    ],
    points_de_controle: Annotated[
        Path | None,
        typer.Option(
            "--points-de-controle",
            help="Dossier des points de contrôle signés (par défaut : celui de l'installation)",
        ),
    ] = None,
) -> None:
    """Archiver un mois du journal d'audit dans un fichier, puis détacher et supprimer sa
    partition (PostgreSQL). Refusé si le mois n'est pas entièrement couvert par un point
    de contrôle signé et vérifié."""
    with platform_ctx() as platform:
        month = audit_archive.parse_month(mois)
        result = audit_archive.archive_month(platform, month, dossier, points_de_controle)
    console.print(
        f"mois {result.month} archivé : {result.events} événements "
        f"({result.first_seq}..{result.last_seq}), couvert par le point de contrôle "
        f"jusqu'à {result.checkpoint_seq}",
        markup=False,
    )
    console.print(f"archive : {result.file} (sha256 {result.digest})", markup=False)
    console.print(f"manifeste : {result.manifest}", markup=False)


def _parse_day(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise DomainError(
            RequestCode(f"{option}.format"),
            f"--{option.replace('_', '-')} doit être une date AAAA-MM-JJ",
        ) from None


def run() -> None:
    """Entry point of the ``tierspayant`` script."""
    app()
