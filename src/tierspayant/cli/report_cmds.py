"""``tierspayant report …``: what the scheduled runs achieved, in French.

``report delays`` shows the delay from invoice received to transfer executed, in TARGET2
business days (docs/money.md), overall, per insurer and per provider. Exit 0; a lost
database exits with the status of ``cli.common.EXIT_CODES`` like every command.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import date
from typing import Annotated

import typer
from rich.table import Table

from tierspayant.cli.common import console, platform_ctx
from tierspayant.domain.delays import DelaySummary
from tierspayant.services.delays import delay_report

report_app = typer.Typer(no_args_is_help=True, help="Rapports d'exploitation.")


def register(app: typer.Typer, import_app: typer.Typer) -> None:
    """Add ``report`` to the ``tierspayant`` application."""
    app.add_typer(report_app, name="report")


def _share(bp: int) -> str:
    return f"{bp // 100},{bp % 100:02d} %"


def _row(table: Table, name: str, s: DelaySummary) -> None:
    table.add_row(
        name, str(s.invoices), str(s.median), str(s.p95), str(s.worst), _share(s.next_day_share_bp)
    )


@report_app.command("delays")
def delays(
    since: Annotated[
        str | None,
        typer.Option("--depuis", help="factures payées à partir de cette date (AAAA-MM-JJ)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="une ligne JSON par groupe")] = False,
) -> None:
    """Délai entre la réception de la facture et l'exécution du virement, en jours ouvrés
    TARGET2 : ensemble, par assureur (AMC) et par professionnel (n° AM)."""
    start: date | None = None
    if since is not None:
        try:
            start = date.fromisoformat(since)
        except ValueError:
            console.print(f"[red]erreur[/red] --depuis : date AAAA-MM-JJ attendue, reçu {since!r}")
            raise typer.Exit(2) from None
    with platform_ctx() as platform:
        report = delay_report(platform, since=start)
    if as_json:
        if report.overall is not None:
            typer.echo(json.dumps({"groupe": "ensemble", **asdict(report.overall)}))
        for amc, s in report.by_insurer.items():
            typer.echo(json.dumps({"groupe": "assureur", "amc": amc, **asdict(s)}))
        for am, s in report.by_provider.items():
            typer.echo(json.dumps({"groupe": "professionnel", "am": am, **asdict(s)}))
        return
    if report.overall is None:
        console.print("Aucune facture payée sur la période.")
        return
    table = Table(title="Délai de paiement (jours ouvrés, réception → virement exécuté)")
    for column in ("groupe", "factures", "médiane", "95e centile", "max", "≤ 1 jour ouvré"):
        table.add_column(column)
    _row(table, "ensemble", report.overall)
    for amc, s in report.by_insurer.items():
        _row(table, f"assureur {amc}", s)
    for am, s in report.by_provider.items():
        _row(table, f"professionnel {am}", s)
    console.print(table)
