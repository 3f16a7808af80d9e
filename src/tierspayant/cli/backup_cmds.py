"""``tierspayant backup …`` and ``tierspayant keys export|import``, registered by ``cli.main``.

The passphrase of a key export is never an argument (it would show in the process list
and the shell history): it is read from ``TIERSPAYANT_BACKUP_PASSPHRASE``, from the file
``--passphrase-file`` names, or typed at a prompt.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from tierspayant.cli.common import CLI_ACTOR, console, fail, platform_ctx
from tierspayant.config import load_settings
from tierspayant.domain.codes import PlatformCode
from tierspayant.services import backup_drill, backup_restore, key_backup
from tierspayant.services.backup_restore import DEFAULT_PG_BIN, BackupRepository
from tierspayant.services.errors import NotInitialised, ServiceError

PASSPHRASE_ENV = "TIERSPAYANT_BACKUP_PASSPHRASE"  # noqa: S105 - a variable name
CHECKS_FAILED = 1  # like ``ledger check`` and ``audit verify``: the drill found something

backup_app = typer.Typer(
    no_args_is_help=True,
    help="Sauvegardes : exercice de restauration, copie de la base SQLite embarquée.",
)

PassphraseFile = Annotated[
    Path | None,
    typer.Option(
        "--passphrase-file",
        help=f"fichier contenant la phrase secrète (sinon {PASSPHRASE_ENV}, sinon saisie)",
    ),
]


def register(app: typer.Typer, import_app: typer.Typer) -> None:
    """Add this module's commands to the ``tierspayant`` application."""
    del import_app  # nothing to import here
    app.add_typer(backup_app, name="backup")
    keys_app = next((g.typer_instance for g in app.registered_groups if g.name == "keys"), None)
    target = keys_app if keys_app is not None else app
    target.command("export")(keys_export)
    target.command("import")(keys_import)


def _passphrase(file: Path | None, *, confirm: bool) -> str:
    if file is not None:
        try:
            return file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise fail(
                ServiceError(
                    PlatformCode.KEY_EXPORT_PASSPHRASE,
                    f"fichier de phrase secrète illisible : {exc.strerror}",
                )
            ) from None
    from_env = os.environ.get(PASSPHRASE_ENV)
    if from_env:
        return from_env
    typed: str = typer.prompt("Phrase secrète", hide_input=True, confirmation_prompt=confirm)
    return typed


_FRENCH = {
    PlatformCode.KEY_EXPORT_REFUSED: "l'export ne s'ouvre pas : phrase secrète incorrecte, "
    "ou fichier modifié",
    PlatformCode.KEY_EXPORT_MALFORMED: "ce fichier n'est pas un export de clés tierspayant",
    PlatformCode.KEY_EXPORT_PASSPHRASE: "la phrase secrète doit compter au moins 12 caractères",
    PlatformCode.KEYRING_EXISTS: "un trousseau existe déjà à cet emplacement : il n'est "
    "remplacé qu'avec --force (l'ancien est alors conservé à côté)",
    PlatformCode.BACKUP_EXISTS: "le fichier de sortie existe déjà : choisissez-en un autre",
}


def _refused(exc: ServiceError) -> typer.Exit:
    french = _FRENCH.get(PlatformCode(exc.code)) if exc.code in set(PlatformCode) else None
    return fail(exc, None if french is None else f"{french} ({exc.message})")


def keys_export(
    out: Annotated[Path, typer.Option("--out", help="fichier à créer (jamais écrasé)")],
    passphrase_file: PassphraseFile = None,
) -> None:
    """Exporter le trousseau et la clé des points de contrôle, chiffrés par une phrase
    secrète (à conserver à part des sauvegardes de la base). Les clés d'un HSM ne sont
    pas exportées."""
    passphrase = _passphrase(passphrase_file, confirm=True)
    with platform_ctx() as platform:
        try:
            done = key_backup.export_keys(platform, out, passphrase, CLI_ACTOR)
        except ServiceError as exc:
            raise _refused(exc) from None
    key = "avec" if done.checkpoint_key else "sans"
    console.print(
        f"{len(done.kek_ids)} clé(s) maîtresse(s) exportée(s) {key} clé des points de "
        f"contrôle dans {done.path}"
    )


def keys_import(
    file: Annotated[Path, typer.Argument(help="export créé par `tierspayant keys export`")],
    passphrase_file: PassphraseFile = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="remplacer un trousseau existant (l'ancien est conservé)"),
    ] = False,
) -> None:
    """Restaurer le trousseau (et la clé des points de contrôle) d'un export chiffré."""
    passphrase = _passphrase(passphrase_file, confirm=False)
    keyring_path = load_settings().keyring_path
    try:
        done = key_backup.import_keys(file, passphrase, keyring_path, force=force)
    except ServiceError as exc:
        raise _refused(exc) from None
    console.print(f"trousseau restauré : {done.keyring_path} ({len(done.kek_ids)} clé(s))")
    if done.checkpoint_key_path is not None:
        console.print(f"clé des points de contrôle restaurée : {done.checkpoint_key_path}")
    for kept in done.replaced:
        console.print(f"ancien fichier conservé : {kept}")


def _when(text: str, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise fail(
            ServiceError(PlatformCode.BACKUP_TARGET, f"{option} : date et heure ISO 8601 attendues")
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@backup_app.command("drill")
def drill(
    pgbackrest_config: Annotated[
        Path, typer.Option("--pgbackrest-config", help="pgbackrest.conf du dépôt")
    ],
    stanza: Annotated[str, typer.Option(help="stanza pgBackRest de la base")],
    scratch: Annotated[
        Path, typer.Option("--scratch", help="dossier vide où restaurer (supprimé à la fin)")
    ],
    port: Annotated[int, typer.Option(help="port du cluster restauré (libre)")],
    keys: Annotated[Path, typer.Option("--keys", help="export de clés (`keys export`)")],
    database: Annotated[str, typer.Option(help="base de la plateforme")] = "tierspayant",
    target: Annotated[
        str | None,
        typer.Option(help="instant visé, ISO 8601 (défaut : fin des journaux archivés)"),
    ] = None,
    incident_at: Annotated[
        str | None,
        typer.Option(help="sans --target : instant de l'incident (défaut : maintenant)"),
    ] = None,
    checkpoints: Annotated[
        Path | None, typer.Option(help="dossier des points de contrôle signés de l'audit")
    ] = None,
    samples: Annotated[
        Path | None, typer.Option(help="contrôles de droits témoins (JSON), à garder secret")
    ] = None,
    run_as: Annotated[
        str | None, typer.Option("--run-as", help="utilisateur de PostgreSQL (si root)")
    ] = None,
    pg_bin: Annotated[Path, typer.Option(help="binaires PostgreSQL")] = DEFAULT_PG_BIN,
    user: Annotated[str, typer.Option(help="rôle PostgreSQL de connexion")] = "postgres",
    keep: Annotated[bool, typer.Option(help="laisser le cluster restauré démarré")] = False,
    passphrase_file: PassphraseFile = None,
) -> None:
    """Exercice de restauration : restaure la sauvegarde pgBackRest dans un cluster
    temporaire avec les clés exportées, vérifie l'audit, les points de contrôle, le grand
    livre et des contrôles de droits témoins ; mesure la durée et la fenêtre de perte."""
    passphrase = _passphrase(passphrase_file, confirm=False)
    try:
        plan = backup_drill.DrillPlan(
            repository=BackupRepository(pgbackrest_config, stanza, run_as, pg_bin),
            scratch_dir=scratch,
            port=port,
            database=database,
            key_export=keys,
            passphrase=passphrase,
            target=_when(target, "--target") if target else None,
            incident_at=_when(incident_at, "--incident-at") if incident_at else None,
            checkpoints_dir=checkpoints,
            samples=(
                backup_drill.parse_samples(samples.read_text(encoding="utf-8")) if samples else ()
            ),
            user=user,
            keep=keep,
        )
        report = backup_drill.run_drill(plan)
    except ServiceError as exc:
        raise _refused(exc) from None
    for line in report_lines(report):
        console.print_json(json.dumps(line), indent=None)
    for sentence in french_summary(report):
        console.print(escape(sentence), soft_wrap=True)
    if not report.ok:
        raise typer.Exit(CHECKS_FAILED)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def report_lines(report: backup_drill.DrillReport) -> list[dict[str, Any]]:
    """The drill's report as JSON objects, one a line: each check, then the figures."""
    lines: list[dict[str, Any]] = [
        {"event": "check", "check": check.name, "ok": check.ok, **check.detail}
        for check in report.checks
    ]
    lines.append(
        {
            "event": "drill",
            "ok": report.ok,
            "target": _iso(report.target),
            "reference": _iso(report.reference),
            "restore_seconds": round(report.restore_seconds, 3),
            "recovery_seconds": round(report.recovery_seconds, 3),
            "total_seconds": round(report.total_seconds, 3),
            "last_replayed_at": _iso(report.last_replayed_at),
            "data_loss_seconds": (
                None if report.data_loss_seconds is None else round(report.data_loss_seconds, 3)
            ),
            "database_bytes": report.database_bytes,
            "backup_label": report.backup.label,
            "backup_bytes": report.backup.backup_bytes,
            "repository_bytes": report.backup.repository_bytes,
            "last_archived_wal": report.backup.last_archived_wal,
        }
    )
    return lines


_CHECK_NAMES = {
    "audit_chain": "chaîne d'audit",
    "checkpoints": "points de contrôle signés",
    "ledger": "grand livre",
    "rights_samples": "contrôles de droits témoins",
}


def _seconds(value: float) -> str:
    return f"{value:.1f}".replace(".", ",") + " s"


def french_summary(report: backup_drill.DrillReport) -> list[str]:
    """What the drill proved, in French, one sentence a line."""
    aim = (
        f"au {report.target.astimezone(UTC):%d/%m/%Y %H:%M:%S} UTC"
        if report.target
        else "à la fin des journaux archivés"
    )
    loss = report.data_loss_seconds
    lines = [
        f"Restauration {aim} : {_seconds(report.total_seconds)} "
        f"(copie {_seconds(report.restore_seconds)}, rejeu des journaux et promotion "
        f"{_seconds(report.recovery_seconds)}).",
        "Fenêtre de perte de données : "
        + ("aucune transaction rejouée" if loss is None else _seconds(loss))
        + f" (base restaurée : {report.database_bytes / 1_000_000:.1f} Mo)".replace(".", ","),
    ]
    for check in report.checks:
        state = "correct" if check.ok else "ÉCHEC"
        lines.append(f"{_CHECK_NAMES.get(check.name, check.name)} : {state}")
    lines.append(
        "Exercice réussi : données et clés restaurées ensemble."
        if report.ok
        else "Exercice en échec : voir les contrôles ci-dessus."
    )
    return lines


@backup_app.command("sqlite")
def sqlite_backup(
    out: Annotated[Path, typer.Option("--out", help="copie à créer (jamais écrasée)")],
) -> None:
    """Copie cohérente de la base SQLite embarquée, pendant le service (API de sauvegarde
    en ligne de SQLite). Le trousseau n'y est pas : exportez-le avec `keys export`."""
    settings = load_settings()
    if not settings.is_sqlite:
        raise fail(
            ServiceError(
                PlatformCode.BACKUP_COMMAND_FAILED,
                "la base n'est pas SQLite : sauvegardez PostgreSQL avec pgBackRest",
            )
        )
    source = Path(settings.database_url.split("///", 1)[-1])
    if not source.exists():
        raise fail(NotInitialised(PlatformCode.NO_SCHEMA, f"aucune base SQLite à {source}"))
    copied = backup_restore.backup_sqlite(source, out)
    console.print(f"copie de {source} écrite dans {out} ({copied / 1_000_000:.1f} Mo)")
