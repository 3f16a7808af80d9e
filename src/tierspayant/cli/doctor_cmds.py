"""``tierspayant doctor``: check a configuration before serving it."""

from __future__ import annotations

import typer
from rich.markup import escape

from tierspayant.cli.common import console, err_console
from tierspayant.services.readiness import diagnose

PROBLEMS_FOUND = 1  # like ``ledger check`` and ``audit verify``: the check found something


def register(app: typer.Typer, _import_app: typer.Typer) -> None:
    app.command()(doctor)


def doctor() -> None:
    """Vérifie la configuration (réglages, répertoire de données, trousseau, base,
    migrations, Redis, TLS) : une ligne par problème, avec ce qu'il faut corriger."""
    problems = diagnose()
    for problem in problems:
        err_console.print(f"[red]problème[/red] {escape(problem.message)}", soft_wrap=True)
    if problems:
        err_console.print(f"{len(problems)} problème(s) à corriger.")
        raise typer.Exit(PROBLEMS_FOUND)
    console.print("Configuration correcte : aucun problème trouvé.")
