"""Claims on the command line: import a claim file, adjudicate, decide prior authorisations.

- ``tierspayant import claims FILE --provider AM_NUMBER [--error-report F]``
- ``tierspayant adjudicate [--insurer AMC]``
- ``tierspayant prior-auth decide AGREEMENT --accept|--refuse --reason TEXT``
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from tierspayant.cli.common import CLI_ACTOR, console, fail, platform_ctx, progress_bar
from tierspayant.domain.codes import EnrolmentCode, PriorAuthCode
from tierspayant.domain.money import format_euros
from tierspayant.services.adjudication import BatchResult, adjudicate_pending, pending_claims
from tierspayant.services.claims import import_claims_file
from tierspayant.services.errors import ServiceError
from tierspayant.services.prior_auth import decide_prior_auth

prior_auth_app = typer.Typer(
    no_args_is_help=True, help="Demandes de prise en charge (accords préalables)."
)


def _progress() -> Progress:
    return progress_bar(console)


def _count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for raw in handle if raw.strip())


def import_claims(
    file: Annotated[
        Path, typer.Argument(help="fichier de factures, JSON Lines (docs/formats/claims.md)")
    ],
    provider: Annotated[str, typer.Option("--provider", help="numéro AM de l'émetteur")],
    error_report: Annotated[
        Path | None, typer.Option("--error-report", help="où écrire les lignes refusées (CSV)")
    ] = None,
) -> None:
    """Recevoir les factures du fichier d'un professionnel ; les lignes fausses sont signalées, pas
    appliquées."""
    if not file.is_file():
        raise fail(ServiceError(EnrolmentCode.FILE_MISSING, f"fichier introuvable : {file}"))
    with platform_ctx() as platform, _progress() as progress:
        task = progress.add_task("Factures", total=max(_count_lines(file), 1))
        summary = import_claims_file(
            platform,
            file,
            provider,
            error_report=error_report,
            progress=lambda done: progress.update(task, completed=done),
        )
    table = Table(title="fichier de factures")
    for column in ("lignes", "reçues", "déjà reçues", "refusées"):
        table.add_column(column, justify="right")
    table.add_row(
        str(summary.lines),
        str(summary.received),
        str(summary.replayed),
        str(len(summary.rejected)),
    )
    console.print(table)
    for line_no, code, message in summary.rejected[:20]:
        console.print(f"ligne {line_no} : {escape(f'[{code}] {message}')}")
    if len(summary.rejected) > 20:
        console.print(f"… et {len(summary.rejected) - 20} autres lignes refusées")
    if summary.rejected:
        raise typer.Exit(1)


def adjudicate(
    insurer: Annotated[
        str | None,
        typer.Option("--insurer", help="seulement les factures de cet organisme (numéro AMC)"),
    ] = None,
) -> None:
    """Liquider chaque facture reçue : ligne acceptée, réduite ou rejetée, passée au grand livre."""
    with platform_ctx() as platform, _progress() as progress:
        total = pending_claims(platform, insurer)
        task = progress.add_task("Factures liquidées", total=max(total, 1))
        statuses: dict[str, int] = {}

        def advance(batch: BatchResult) -> None:
            progress.advance(task, batch.claims)
            for status, count in batch.by_status.items():
                statuses[status] = statuses.get(status, 0) + count

        run = adjudicate_pending(platform, insurer_amc=insurer, progress=advance)
    console.print(
        f"{run.claims} factures, {run.lines} lignes liquidées ; "
        f"part AMC acceptée {format_euros(run.accepted_cents)}"
    )
    for status, count in sorted(statuses.items()):
        console.print(f"  {status} : {count} lignes")


@prior_auth_app.command("decide")
def decide(
    agreement: Annotated[str, typer.Argument(help="numéro de l'accord")],
    accept: Annotated[
        bool | None, typer.Option("--accept/--refuse", help="accorder ou refuser la demande")
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="motif (obligatoire pour refuser)")] = "",
) -> None:
    """Décider d'une demande de prise en charge en attente d'examen."""
    if accept is None:
        raise fail(ServiceError(PriorAuthCode.DECISION_REQUIRED, "indiquez --accept ou --refuse"))
    with platform_ctx() as platform:
        answer = decide_prior_auth(
            platform, agreement.strip().upper(), accept=accept, reason=reason, actor=CLI_ACTOR
        )
    until = answer.valid_until.isoformat() if answer.valid_until else "-"
    console.print(
        f"accord {answer.agreement_number} : {answer.status}, "
        f"garanti {format_euros(answer.guaranteed_cents)}, valable jusqu'au {until}"
    )


def register(app: typer.Typer, import_app: typer.Typer) -> None:
    """Add this module's commands to the ``tierspayant`` application."""
    import_app.command("claims")(import_claims)
    app.command("adjudicate")(adjudicate)
    app.add_typer(prior_auth_app, name="prior-auth")
