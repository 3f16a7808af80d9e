"""Incident response and operations commands: incident, revoke, keys, purge, breakglass,
and the audit checkpoints (added to the ``audit`` group)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from tierspayant.cli.common import (
    CLI_ACTOR,
    console,
    err_console,
    fail,
    platform_ctx,
    progress_bar,
)
from tierspayant.domain.codes import IncidentCode
from tierspayant.services import breakglass, checkpoints, incident, key_rotation, retention
from tierspayant.services.errors import ServiceError
from tierspayant.services.incident.subjects import index_subjects

incident_app = typer.Typer(
    no_args_is_help=True, help="Mesurer une fuite de données et préparer ses notifications."
)
keys_app = typer.Typer(
    no_args_is_help=True, help="Renouveler les clés de chiffrement de clés et les clés de données."
)
breakglass_app = typer.Typer(
    no_args_is_help=True, help="Accès d'urgence de l'opérateur aux données personnelles."
)

OperatorOption = Annotated[
    str, typer.Option("--as", help="Opérateur qui agit, operator:NOM (journalisé)")
]


def register(app: typer.Typer, import_app: typer.Typer) -> None:
    """Add this module's commands to the ``tierspayant`` application."""
    app.add_typer(incident_app, name="incident")
    app.add_typer(keys_app, name="keys")
    app.add_typer(breakglass_app, name="breakglass")
    app.command("revoke")(revoke)
    app.command("purge")(purge)
    audit_app = next((g.typer_instance for g in app.registered_groups if g.name == "audit"), None)
    target = audit_app if audit_app is not None else app
    target.command("checkpoint")(audit_checkpoint)
    target.command("verify-checkpoints")(audit_verify_checkpoints)
    target.command("public-key")(audit_public_key)


def _moment(text: str, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise fail(
            ServiceError(
                IncidentCode.WINDOW, f"{option} doit être une date ou un horodatage ISO 8601"
            )
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --- incident ----------------------------------------------------------------------------


@incident_app.command("scope")
def incident_scope(
    start: Annotated[str, typer.Option("--from", help="Début, ISO 8601 (UTC sans décalage)")],
    end: Annotated[str, typer.Option("--to", help="Fin (exclue), ISO 8601")],
    principal: Annotated[str | None, typer.Option(help="Identifiant du principal (compte)")] = None,
    structure: Annotated[
        str | None, typer.Option(help="FINESS, SIRET ou numéro AM d'une structure")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Écrire le résultat ici (.json ou .csv)")] = None,
    reveal: Annotated[
        bool, typer.Option(help="Déchiffrer les noms (exige un accès bulk/export approuvé)")
    ] = False,
    grant: Annotated[
        int | None, typer.Option(help="Numéro de l'accès d'urgence pour --reveal")
    ] = None,
    show_nir: Annotated[bool, typer.Option(help="Avec --reveal : NIR en clair")] = False,
    actor: Annotated[
        str, typer.Option("--as", help="Responsable de la réponse, operator:NOM")
    ] = CLI_ACTOR,
) -> None:
    """Lister exactement, par organisme, les bénéficiaires consultés, d'après le journal d'audit."""
    if reveal and grant is None:
        raise fail(
            ServiceError(
                IncidentCode.BREAKGLASS_NO_GRANT, "--reveal exige --grant (un accès approuvé)"
            )
        )
    with platform_ctx() as platform, progress_bar(console, counted=False) as bar:
        criteria = incident.ScopeCriteria(
            _moment(start, "--from"), _moment(end, "--to"), principal, structure
        )
        opened = incident.Reveal(grant, show_nir) if reveal and grant is not None else None
        task = bar.add_task("Événements du journal examinés", total=None)
        result = incident.scope_incident(
            platform,
            criteria,
            actor,
            opened,
            progress=lambda n: bar.update(task, completed=n),
        )
    table = Table("organisme", "personnes", "lectures", "plus détenues")
    for scope in result.insurers:
        table.add_row(scope.amc_number, str(scope.people), str(scope.reads), str(scope.unresolved))
    console.print(table)
    console.print(
        f"{result.people} personnes exposées, {result.events_scanned} événements examinés "
        f"en {result.seconds:.2f} s"
    )
    if out is not None:
        incident.write_scope(result, out)
        console.print(f"écrit dans {out} (mode 0600)", markup=False)


@incident_app.command("indexer")
def incident_index() -> None:
    """Indexer les pseudonymes des bénéficiaires ajoutés depuis la dernière fois (la tâche de
    nuit le fait aussi) : le périmètre d'un incident n'a plus à le faire après un gros import."""
    with platform_ctx() as platform:
        done = index_subjects(platform)
    console.print(
        f"{sum(done.values())} bénéficiaire(s) indexé(s) pour {len(done)} organisme(s)",
        markup=False,
    )


@incident_app.command("notices")
def incident_notices(
    scope: Annotated[
        Path, typer.Option(exists=True, dir_okay=False, help="Fichier .json du périmètre")
    ],
    out: Annotated[Path, typer.Option(help="Dossier des brouillons")],
    dpo: Annotated[str | None, typer.Option(help="Nom et coordonnées du DPO")] = None,
) -> None:
    """Rédiger le brouillon de notification à la CNIL (art. 33) et une lettre par personne (art.
    34)."""
    with platform_ctx():
        document = incident.load_scope_document(scope)
        context = incident.NoticeContext(dpo_contact=dpo) if dpo else incident.NoticeContext()
        files = incident.draft_notices(document, out, context)
    console.print(
        f"{len(files.cnil)} brouillon(s) de notification à la CNIL, {len(files.letters)} lettres"
    )


def revoke(
    principal: Annotated[str, typer.Option(help="Identifiant du principal à couper")],
    reason: Annotated[str, typer.Option(help="Motif (gardé avec la suspension)")] = (
        "réponse à incident"
    ),
) -> None:
    """Suspendre un principal, révoquer tous ses jetons et fermer toutes ses sessions d'un coup."""
    with platform_ctx() as platform:
        done = incident.revoke(platform, principal, CLI_ACTOR, reason)
    console.print(
        f"{done.principal} suspendu : {done.tokens} jeton(s) révoqué(s), "
        f"{done.sessions} session(s) fermée(s)"
    )


# --- keys --------------------------------------------------------------------------------


@keys_app.command("rotate-kek")
def keys_rotate_kek() -> None:
    """Nouvelle clé de chiffrement de clés (KEK) ; toutes les clés de données rechiffrées ; les
    anciennes KEK gardées jusqu'à leur retrait."""
    with platform_ctx() as platform:
        done = key_rotation.rotate_kek(platform, CLI_ACTOR)
    console.print(f"KEK active {done.new_kek} ; {done.rewrapped} clé(s) de données rechiffrée(s)")


@keys_app.command("retire-kek")
def keys_retire_kek() -> None:
    """Retirer les KEK qu'aucune clé de données n'utilise plus."""
    with platform_ctx() as platform:
        retired = key_rotation.retire_unused_keks(platform, CLI_ACTOR)
    console.print(f"retirées : {', '.join(retired) if retired else 'aucune'}")


@keys_app.command("rotate-data")
def keys_rotate_data(
    insurer: Annotated[str, typer.Option("--insurer", help="Numéro AMC de l'organisme")],
    batch: Annotated[int, typer.Option(min=10, max=50_000, help="Lignes par transaction")] = (
        key_rotation.BATCH_ROWS
    ),
) -> None:
    """Nouvelle version de la clé de données d'un organisme ; lignes rechiffrées par lots sans
    interrompre le service."""
    with platform_ctx() as platform, progress_bar(console, counted=False) as bar:
        task = bar.add_task("Lignes rechiffrées", total=None)
        done = key_rotation.rotate_data(
            platform, insurer, CLI_ACTOR, batch=batch, progress=lambda n: bar.advance(task, n)
        )
    console.print(
        f"{done.insurer} : version {done.new_version}, {done.reencrypted} lignes rechiffrées "
        f"en {done.seconds:.1f} s, {done.remaining} restantes"
    )


# --- retention ---------------------------------------------------------------------------


def purge(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Compter seulement")] = False,
    retention_days: Annotated[
        int,
        typer.Option(
            envvar="TIERSPAYANT_RETENTION_DAYS",
            help="Jours de conservation après la fin de couverture",
        ),
    ] = retention.DEFAULT_RETENTION_DAYS,
) -> None:
    """Supprimer les anciens bénéficiaires au-delà de la durée de conservation (gardés tant qu'une
    facture est en cours), et les réponses gardées sous une clé d'idempotence depuis plus de
    24 h."""
    with platform_ctx() as platform:
        report = retention.purge(
            platform, CLI_ACTOR, retention_days=retention_days, dry_run=dry_run
        )
    table = Table(
        "organisme", "au-delà de la conservation", "retenus par des factures", "supprimés"
    )
    for row in report.insurers:
        table.add_row(row.amc_number, str(row.expired), str(row.held), str(row.purged))
    console.print(table)
    verb = "seraient supprimés" if dry_run else "supprimés"
    console.print(f"couverture finie avant le {report.cutoff:%d/%m/%Y} : {report.purged} {verb}")
    gone = "seraient supprimées" if dry_run else "supprimées"
    console.print(
        f"réponses gardées sous une clé d'idempotence depuis plus de 24 h : "
        f"{report.idempotency_keys} {gone}"
    )


# --- break-glass -------------------------------------------------------------------------


@breakglass_app.command("request")
def breakglass_request(
    actor: OperatorOption,
    reason: Annotated[str, typer.Option(help="Ticket, dossier ou demande qui le justifie")],
    scope: Annotated[
        breakglass.GrantScope, typer.Option(help="portée : beneficiary | bulk | export")
    ],
    hours: Annotated[int, typer.Option(help="Durée maximale en heures")] = 4,
    insurer: Annotated[str | None, typer.Option(help="Numéro AMC de l'organisme")] = None,
    beneficiary: Annotated[
        int | None, typer.Option(help="Identifiant interne du bénéficiaire")
    ] = None,
) -> None:
    """Demander un accès ; bulk et export attendent l'approbation d'un second opérateur."""
    with platform_ctx() as platform:
        grant = breakglass.request_grant(
            platform,
            actor,
            reason,
            scope,
            hours,
            insurer_amc=insurer,
            beneficiary_id=beneficiary,
        )
    console.print(
        f"accès {grant.id} : {grant.status}, jusqu'au {grant.expires_at:%d/%m/%Y %H:%M} UTC"
    )
    console.print(f"avis au DPO : {grant.dpo_notice}", markup=False)


@breakglass_app.command("approve")
def breakglass_approve(
    grant_id: Annotated[int, typer.Argument(help="Numéro de l'accès")],
    actor: OperatorOption,
) -> None:
    """Approuver un accès bulk ou export (par un autre opérateur que le demandeur)."""
    with platform_ctx() as platform:
        grant = breakglass.approve_grant(platform, grant_id, actor)
    console.print(f"accès {grant.id} actif jusqu'au {grant.expires_at:%d/%m/%Y %H:%M} UTC")


@breakglass_app.command("close")
def breakglass_close(
    grant_id: Annotated[int, typer.Argument(help="Numéro de l'accès")],
    actor: OperatorOption,
) -> None:
    """Clore un accès avant son échéance."""
    with platform_ctx() as platform:
        grant = breakglass.close_grant(platform, grant_id, actor)
    console.print(f"accès {grant.id} : {grant.status}")


@breakglass_app.command("reveal")
def breakglass_reveal(
    grant_id: Annotated[int, typer.Argument(help="Numéro de l'accès (portée : un bénéficiaire)")],
    actor: OperatorOption,
) -> None:
    """Ouvrir l'identité du bénéficiaire qu'un accès d'urgence désigne (NIR masqué ;
    lecture tracée au journal d'audit)."""
    with platform_ctx() as platform:
        identity = breakglass.reveal_beneficiary(platform, grant_id, actor)
    console.print(f"{identity.last_name} {identity.first_name} — NIR {identity.nir}")


@breakglass_app.command("list")
def breakglass_list(
    usable: Annotated[
        bool, typer.Option(help="Seulement les accès utilisables maintenant")
    ] = False,
) -> None:
    """Lister les accès d'urgence, du plus récent au plus ancien."""
    with platform_ctx() as platform:
        grants = breakglass.list_grants(platform, usable_only=usable)
    table = Table("n°", "demandeur", "portée", "état", "échéance", "approbateur", "motif")
    for g in grants:
        table.add_row(
            str(g.id),
            g.requester,
            g.scope.value,
            g.status,
            f"{g.expires_at:%d/%m/%Y %H:%M}",
            g.approver or "",
            g.reason[:60],
        )
    console.print(table)


# --- audit checkpoints -------------------------------------------------------------------


def audit_checkpoint(
    out: Annotated[Path, typer.Option(help="Dossier en ajout seul des points de contrôle")],
) -> None:
    """Vérifier le journal, signer sa racine de Merkle, écrire le point de contrôle hors de la
    base."""
    with platform_ctx() as platform:
        written = checkpoints.write_checkpoint(platform, out)
    if written is None:
        console.print("aucun nouvel événement depuis le dernier point de contrôle")
        return
    console.print(
        f"point de contrôle jusqu'à l'événement {written.checkpoint.up_to_seq} : {written.path}",
        markup=False,
    )


def audit_verify_checkpoints(
    directory: Annotated[
        Path, typer.Option("--checkpoints", help="Dossier des points de contrôle")
    ],
    public_key: Annotated[
        Path | None,
        typer.Option(help="Clé de vérification publiée (par défaut : celle de cette installation)"),
    ] = None,
) -> None:
    """Vérifier la chaîne contre chaque point de contrôle signé ; nommer ce qui a été altéré."""
    with platform_ctx() as platform:
        report = checkpoints.verify(platform, directory, public_key)
    if report.ok:
        console.print(
            f"journal d'audit intact : {report.checked} événements, conforme à "
            f"{report.checkpoints} point(s) de contrôle (le dernier jusqu'à "
            f"{report.latest_checkpoint_seq})"
        )
        return
    where = f"la position {report.first_broken_seq}"
    if report.window is not None:
        where = f"les événements {report.window[0]}..{report.window[1]} (réécrits)"
    err_console.print(
        f"[red]journal d'audit altéré[/red] : {escape(report.reason or '')} à {where}"
    )
    for name in report.bad_files:
        err_console.print(f"  signature invalide : {name}", markup=False)
    raise typer.Exit(1)


def audit_public_key(
    out: Annotated[Path, typer.Option(help="Où écrire la clé de vérification (hexadécimal)")],
) -> None:
    """Exporter la clé de vérification des points de contrôle pour les auditeurs."""
    with platform_ctx() as platform:
        fingerprint = checkpoints.export_public_key(platform, out)
    console.print(f"clé de vérification {fingerprint} écrite dans {out}", markup=False)
