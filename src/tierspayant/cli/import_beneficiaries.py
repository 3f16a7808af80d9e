"""``tierspayant import beneficiaries FILE --insurer AMC``: progress bar, summary, exit code.

Exit status: 0 every line applied, 1 some lines rejected (listed in the error report),
2 the import was refused (unknown insurer, no catalogue, unreadable header, terminations
to confirm…) and nothing was applied.
"""

from __future__ import annotations

from datetime import UTC, date
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import TaskID
from rich.table import Table

from tierspayant.app.platform import Platform
from tierspayant.cli.common import progress_bar
from tierspayant.domain.errors import DomainError
from tierspayant.formats.beneficiaries import BeneficiaryFileError, explain, explain_file
from tierspayant.services.enrolment import (
    ImportMode,
    ImportSummary,
    InterruptedRun,
    TerminationsNotConfirmed,
    import_beneficiaries,
)

EXIT_OK = 0
EXIT_REJECTED_LINES = 1
EXIT_REFUSED = 2
CLI_ACTOR = "operator:cli"


def import_beneficiaries_command(
    platform: Platform,
    file: Path,
    insurer: str,
    mode: str,
    file_date: date | None,
    error_report: Path | None,
    console: Console,
    confirm_terminations: int | None = None,
) -> int:
    """Run one import with a progress bar, print its summary, return the exit status."""
    try:
        import_mode = ImportMode(mode)
    except ValueError:
        console.print(
            f"[red]refusé[/red] {escape('[enrolment.mode]')} le mode est l'un de : {_modes()}"
        )
        return EXIT_REFUSED
    if not file.is_file():
        console.print(f"[red]refusé[/red] {escape(f'[file.missing] fichier introuvable : {file}')}")
        return EXIT_REFUSED
    progress = progress_bar(console)
    task: list[TaskID] = []  # created on the first call: a refusal shows no bar at all

    def advance(done: int, total: int) -> None:
        if not task:
            progress.start()
            task.append(progress.add_task("Bénéficiaires importés", total=max(total, 1)))
        progress.update(task[0], completed=done, total=max(total, 1))

    try:
        summary = import_beneficiaries(
            platform,
            insurer,
            file,
            mode=import_mode,
            file_date=file_date,
            actor=CLI_ACTOR,
            progress=advance,
            error_report=error_report,
            confirm_terminations=confirm_terminations,
        )
    except TerminationsNotConfirmed as exc:
        console.print(
            f"[red]refusé[/red] {escape(f'[{exc.code}] {terminations_in_french(exc)}')}",
            soft_wrap=True,  # the option to copy stays on one line
        )
        return EXIT_REFUSED
    except BeneficiaryFileError as exc:
        console.print(f"[red]refusé[/red] {escape(f'[{exc.code}] {explain_file(exc)}')}")
        return EXIT_REFUSED
    except DomainError as exc:
        where = f" (champ {exc.field})" if exc.field else ""
        console.print(f"[red]refusé[/red] {escape(f'[{exc.code}] {exc.message}{where}')}")
        console.print("rien n'a été appliqué")
        return EXIT_REFUSED
    except OSError as exc:
        console.print(f"[red]échec[/red] {escape(f'[file.io] lecture de {file} : {exc.strerror}')}")
        console.print("rien n'a été appliqué")
        return EXIT_REFUSED
    finally:
        progress.stop()
    for run in summary.interrupted_before:
        console.print(escape(interrupted_in_french(run)), soft_wrap=True)
    _print_summary(console, summary)
    return EXIT_REJECTED_LINES if summary.rejected else EXIT_OK


def interrupted_in_french(run: InterruptedRun) -> str:
    """The line naming an earlier import found interrupted (its process died)."""
    started = run.started_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"l'import n° {run.id} ({run.mode}, démarré le {started}) a été interrompu avant sa "
        "fin: rien n'en a été appliqué"
    )


def terminations_in_french(exc: TerminationsNotConfirmed) -> str:
    """What the operator reads when a full import's terminations need their confirmation."""
    if exc.confirmed is None:
        share = exc.terminations / exc.covered if exc.covered else 1.0
        found = (
            "ce fichier complet mettrait fin à la couverture de "
            f"{_beneficiaries(exc.terminations)} sur {_number(exc.covered)} "
            f"({_percent(share)}), au-delà du seuil de {_percent(exc.threshold_bp / 10_000)}"
        )
    else:
        found = (
            "ce fichier mettrait fin à la couverture de "
            f"{_beneficiaries(exc.terminations)}, et non de {_number(exc.confirmed)}"
        )
    return (
        f"{found}. Rien n'a été appliqué. Vérifiez le fichier ; si ces radiations sont "
        f"voulues, relancez avec --confirm-terminations {exc.terminations}"
    )


def _beneficiaries(count: int) -> str:
    return f"{_number(count)} bénéficiaire{'s' if count > 1 else ''}"


def _number(value: int) -> str:
    return f"{value:,}".replace(",", "\u202f")


def _percent(share: float) -> str:
    return f"{share * 100:.2f}".rstrip("0").rstrip(".").replace(".", ",") + "\u00a0%"


def _modes() -> str:
    return ", ".join(m.value for m in ImportMode)


def _print_summary(console: Console, summary: ImportSummary) -> None:
    table = Table(title=f"Import n° {summary.run_id} : organisme {summary.insurer}")
    table.add_column("", style="bold")
    table.add_column("nombre", justify="right")
    rate = summary.lines / summary.duration if summary.duration > 0 else 0.0
    for label, value in (
        ("lignes lues", summary.lines),
        ("ajoutés", summary.inserted),
        ("modifiés", summary.updated),
        ("inchangés", summary.unchanged),
        ("radiés", summary.terminated),
        ("refusées", summary.rejected),
    ):
        style = "red" if label == "refusées" and value else ""
        shown = _number(value)
        table.add_row(label, f"[{style}]{shown}[/{style}]" if style else shown)
    console.print(table)
    console.print(
        f"mode {summary.mode.value}, fichier du {summary.file_date:%d/%m/%Y}, "
        f"{summary.duration:.1f} s ({_number(round(rate))} lignes/s)"
    )
    if not summary.rejected:
        return
    errors = Table(title="Premières lignes refusées (données personnelles masquées)")
    errors.add_column("code")
    errors.add_column("explication")
    for error in summary.first_errors:
        errors.add_row(escape(error.code), escape(explain(error)))
    console.print(errors)
    if summary.error_report is not None:
        console.print(
            f"toutes les lignes refusées ({_number(summary.rejected)}) : "
            f"{escape(str(summary.error_report))}"
        )
    else:
        console.print("ajoutez --errors FICHIER pour obtenir toutes les lignes refusées en CSV")
