"""``tierspayant cards …`` and ``tierspayant canaries …``, registered by ``cli.main``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.table import Table

from tierspayant.app.platform import Platform
from tierspayant.cli.common import CLI_ACTOR, console, fail, platform_ctx
from tierspayant.domain.codes import CardCode
from tierspayant.services import canaries, card_scans, cards, guard_figures
from tierspayant.services.errors import ServiceError

cards_app = typer.Typer(help="Cartes de tiers payant : émission, révocation, clés de signature.")
canaries_app = typer.Typer(help="Bénéficiaires leurres (canaris) : plantation, état.")
guard_app = typer.Typer(
    no_args_is_help=True, help="Garde-fou des consultations : chiffres quotidiens par structure."
)

Insurer = Annotated[str, typer.Option("--insurer", help="numéro AMC de l'organisme")]


@cards_app.command("issue")
def issue(
    insurer: Insurer,
    year: Annotated[int, typer.Option("--year", help="année de validité des cartes")],
    out: Annotated[Path, typer.Option("--out", help="dossier des PDF")] = Path("cartes"),
    member_number: Annotated[
        str | None,
        typer.Option("--member-number", help="une seule famille (carte perdue, par exemple)"),
    ] = None,
) -> None:
    """Émettre une carte par famille (les cartes précédentes sont remplacées)."""
    with platform_ctx() as platform:
        if member_number is not None:
            serial = cards.issue_family_card(platform, insurer, member_number, year, out, CLI_ACTOR)
            console.print(f"carte émise : {serial} (dans {out})")
            return
        summary = _issue_all(platform, insurer, year, out)
    console.print(
        f"{summary.cards} cartes émises pour {summary.year} dans {summary.directory} ; "
        f"{summary.superseded} remplacées, {summary.families_without_rights} familles "
        f"sans droits cette année"
    )


def _issue_all(platform: Platform, insurer: str, year: int, out: Path) -> cards.IssueSummary:
    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    task = progress.add_task("émission des cartes", total=None)
    with progress:
        return cards.issue_cards(
            platform,
            insurer,
            year,
            out,
            CLI_ACTOR,
            on_total=lambda total: progress.update(task, total=total),
            on_family=lambda: progress.advance(task),
        )


@cards_app.command("revoke")
def revoke(
    insurer: Insurer,
    serial: Annotated[str, typer.Option("--serial", help="numéro de la carte")],
    reason: Annotated[str, typer.Option("--reason", help="motif (perte, vol, départ…)")],
) -> None:
    """Révoquer une carte : toute consultation avec son code sera refusée."""
    with platform_ctx() as platform:
        cards.revoke_card(platform, insurer, serial, reason, CLI_ACTOR)
    console.print("carte révoquée")


@cards_app.command("rotate-key")
def rotate_key(insurer: Insurer) -> None:
    """Nouvelle clé de signature des cartes (les cartes déjà émises restent valables)."""
    with platform_ctx() as platform:
        key_id = cards.rotate_signing_key(platform, insurer, CLI_ACTOR)
    console.print(f"nouvelle clé de signature : {key_id}")


_PROOF_LABELS = {
    card_scans.ProofStatus.VALID: "valide (signature de l'organisme vérifiée avec sa clé publiée)",
    card_scans.ProofStatus.INVALID: "INVALIDE : signature fausse ou clé inconnue, carte à refuser",
    card_scans.ProofStatus.ABSENT: "absente (code sans preuve signée)",
}


@cards_app.command("decode")
def decode(
    payload: Annotated[str, typer.Argument(help="texte lu dans le DataMatrix ou le QR code")],
) -> None:
    """Décoder le code d'une carte (DataMatrix TPH1 ou QR TP1) et vérifier sa signature.

    Ne consulte ni l'état de la carte ni son titulaire : seulement ce que le code porte.
    """
    with platform_ctx() as platform:
        try:
            decoded = card_scans.decode_scan(platform, payload, CLI_ACTOR)
        except ServiceError as exc:
            if exc.code != CardCode.MISREAD:
                raise
            raise fail(
                exc,
                "code mal lu : texte tronqué, ou lecteur réglé sur une autre disposition de "
                "clavier (AZERTY/QWERTY). Scannez la carte à nouveau.",
            ) from None
    table = Table("champ", "valeur", show_header=False)
    fields = decoded.fields
    if fields is not None:
        responsable = "oui (R)" if fields.responsable else "non"
        rows = [
            ("Numéro AMC", fields.amc_number),
            ("Type de convention", fields.convention_type or "(non renseigné)"),
            ("Critère secondaire de routage", fields.routing_criterion or "(non renseigné)"),
            ("Numéro d'adhérent", fields.member_number),
            (
                "Période de validité",
                f"du {fields.valid_from:%d/%m/%Y} au {fields.valid_until:%d/%m/%Y}",
            ),
            ("Contrat responsable", responsable),
        ]
        for person in fields.beneficiaries:
            rights = ", ".join(
                f"{r.domain.value} {r.coverage_code}" + ("" if r.tiers_payant else " (sans TP)")
                for r in person.rights
            )
            rows.append(
                (
                    f"Bénéficiaire rang {person.rank}",
                    f"né(e) le {person.birth_date:%d/%m/%Y} : {rights or 'aucun droit'}",
                )
            )
        for label, value in rows:
            table.add_row(label, escape(value))
    if decoded.serial is not None:
        table.add_row("Numéro de carte", decoded.serial)
    table.add_row("Preuve signée", _PROOF_LABELS[decoded.proof])
    console.print(table)
    if decoded.proof is card_scans.ProofStatus.INVALID:
        raise typer.Exit(1)


@canaries_app.command("plant")
def plant(
    insurer: Insurer,
    count: Annotated[
        int | None, typer.Option("--count", help="nombre de canaris (défaut : inchangé, ou 10)")
    ] = None,
) -> None:
    """Remplacer les canaris de l'organisme par de nouveaux."""
    with platform_ctx() as platform:
        summary = canaries.plant(platform, insurer, count, CLI_ACTOR)
    console.print(f"{summary.planted} canaris plantés, {summary.removed} retirés")


@canaries_app.command("status")
def status() -> None:
    """Nombre de canaris par organisme et date de plantation."""
    with platform_ctx() as platform:
        rows = canaries.status(platform)
    table = Table("AMC", "canaris", "plantés le")
    for row in rows:
        planted = row.planted_at.strftime("%Y-%m-%d %H:%M") if row.planted_at else "-"
        table.add_row(row.insurer, str(row.count), planted)
    console.print(table)


@guard_app.command("daily-figures")
def daily_figures(
    day: Annotated[
        datetime | None,
        typer.Option("--day", formats=["%Y-%m-%d"], help="jour à enregistrer (par défaut : hier)"),
    ] = None,
) -> None:
    """Enregistrer les chiffres d'un jour (personnes consultées, personnes facturées) de
    chaque structure, que la calibration des plafonds et la console de sécurité lisent.
    Le service le fait chaque nuit ; sans effet de bord si le jour est déjà enregistré."""
    with platform_ctx() as platform:
        wanted = day.date() if day is not None else guard_figures.last_complete_day(platform)
        done = guard_figures.record_daily_figures(platform, wanted)
    console.print(
        f"{done.day.isoformat()} : {done.structures} structures enregistrées, "
        f"{done.distinct_lookups} personnes consultées au total"
    )


def register(app: typer.Typer, import_app: typer.Typer) -> None:
    """Add this module's commands to the ``tierspayant`` application."""
    del import_app  # nothing to import here
    app.add_typer(cards_app, name="cards")
    app.add_typer(canaries_app, name="canaries")
    app.add_typer(guard_app, name="guard")
