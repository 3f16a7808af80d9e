"""``tierspayant import takeover FILE --insurer AMC``: the counters and open agreements of
an insurer taken over mid-year (docs/formats/takeover.md).

Exit status: 0 the file was applied (or changed nothing: the same file again); 2 the file
was refused and nothing was applied (refused lines listed, and written to ``--errors``;
empty file, bad header, missing file); 3 unknown insurer; 7 the database was lost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from tierspayant.cli.common import CLI_ACTOR, console, err_console, fail, platform_ctx
from tierspayant.domain.codes import EnrolmentCode
from tierspayant.formats import french_csv
from tierspayant.formats.takeover import TakeoverLineError
from tierspayant.services.errors import ServiceError
from tierspayant.services.takeover import TakeoverRefused, import_takeover

SHOWN_ERRORS = 20
ERROR_REPORT_HEADER = ("ligne", "code", "colonne", "valeur", "message")


def _write_report(path: Path, errors: list[TakeoverLineError]) -> None:
    rows = ((e.line_no, e.code, e.column or "", e.value, e.message) for e in errors)
    with path.open("w", encoding="utf-8", newline="") as out:
        french_csv.write(out, ERROR_REPORT_HEADER, rows)


def import_takeover_command(
    file: Annotated[
        Path,
        typer.Argument(help="fichier de reprise, CSV séparé par ';' (docs/formats/takeover.md)"),
    ],
    insurer: Annotated[str, typer.Option("--insurer", help="numéro AMC de l'assureur repris")],
    errors: Annotated[
        Path | None,
        typer.Option("--errors", help="où écrire le rapport des lignes refusées (CSV)"),
    ] = None,
) -> None:
    """Importer les compteurs consommés, les dernières dates d'équipement et les accords
    ouverts d'un assureur repris en cours d'année : tout le fichier ou rien."""
    if not file.is_file():
        raise fail(ServiceError(EnrolmentCode.FILE_MISSING, f"fichier introuvable : {file}"))
    with platform_ctx() as platform:
        try:
            summary = import_takeover(platform, insurer, file, CLI_ACTOR)
        except TakeoverRefused as refused:
            for e in refused.errors[:SHOWN_ERRORS]:
                where = f" (colonne {e.column})" if e.column else ""
                err_console.print(
                    f"ligne {e.line_no} : {escape(f'[{e.code}] {e.message}{where}')}",
                    soft_wrap=True,
                )
            if len(refused.errors) > SHOWN_ERRORS:
                err_console.print(
                    f"… et {len(refused.errors) - SHOWN_ERRORS} autres lignes refusées"
                )
            if errors is not None:
                _write_report(errors, refused.errors)
            raise fail(refused) from None
    table = Table(title="reprise d'assureur")
    for column in ("lignes", "bénéficiaires", "modifiés", "accords"):
        table.add_column(column, justify="right")
    table.add_row(
        str(summary.lines),
        str(summary.beneficiaries),
        str(summary.changed),
        str(summary.agreements),
    )
    console.print(table)
    if summary.changed == 0 and summary.agreements == 0:
        console.print("rien de nouveau : ce fichier était déjà importé")


def register(app: typer.Typer, import_app: typer.Typer) -> None:
    """Add this module's commands to the ``tierspayant`` application."""
    import_app.command("takeover")(import_takeover_command)
