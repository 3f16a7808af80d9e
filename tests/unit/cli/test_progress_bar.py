"""The command line's progress display counts things with a French description, and stays
silent when the output is not a terminal (logs, CI, tests)."""

from __future__ import annotations

import io

from rich.console import Console

from tierspayant.cli.common import progress_bar


def _console(terminal: bool) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=terminal, width=120), out


def test_on_a_terminal_it_counts_people_with_its_french_description() -> None:
    console, out = _console(terminal=True)
    with progress_bar(console) as bar:
        task = bar.add_task("Bénéficiaires importés", total=2_500)
        bar.update(task, completed=1_000)
        bar.update(task, completed=2_500)
    shown = out.getvalue()
    assert "Bénéficiaires importés" in shown
    assert "2500/2500" in shown
    assert "bytes" not in shown.lower()


def test_without_a_total_it_shows_the_count() -> None:
    console, out = _console(terminal=True)
    with progress_bar(console, counted=False) as bar:
        task = bar.add_task("Professionnels payés", total=None)
        bar.update(task, completed=42)
    assert "Professionnels payés" in out.getvalue()
    assert "42" in out.getvalue()


def test_off_when_not_a_terminal() -> None:
    console, out = _console(terminal=False)
    with progress_bar(console) as bar:
        task = bar.add_task("Factures", total=10)
        bar.update(task, completed=10)
    assert out.getvalue() == ""
