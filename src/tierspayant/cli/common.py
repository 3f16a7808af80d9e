"""What every command module shares: the consoles, the platform context, and the one place
that turns a failure into a coded line and an exit status (:class:`FailureGroup`)."""

from __future__ import annotations

import os
import traceback
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from typer._click.exceptions import UsageError
from typer.core import TyperGroup

from tierspayant.app.platform import Platform, open_platform
from tierspayant.cli.french_usage import french_usage_error, install
from tierspayant.config import load_settings
from tierspayant.domain.errors import DomainError
from tierspayant.domain.messages import french_sentence
from tierspayant.services.errors import (
    Conflict,
    Forbidden,
    NotFound,
    NotInitialised,
    ServiceError,
    TooManyRequests,
    Unauthenticated,
    Unavailable,
    Unprocessable,
)
from tierspayant.services.run_failures import DatabaseUnavailable, RedisUnavailable, as_refusal

console = Console()
err_console = Console(stderr=True)
CLI_ACTOR = "operator:cli"


def progress_bar(target: Console | None = None, *, counted: bool = True) -> Progress:
    """A progress display that counts things (people, invoices, providers), with a French
    description per task (« Bénéficiaires importés », « Factures »…): a bar with ``done/total``
    when the total is known (``counted``), else a spinner and the count. Off when the
    console is not a terminal (logs, tests): only the summaries are printed there."""
    shown = target or console
    columns = (
        (TextColumn("{task.description:<34}"), BarColumn(), MofNCompleteColumn(),
         TimeElapsedColumn(), TimeRemainingColumn())
        if counted
        else (SpinnerColumn(), TextColumn("{task.description:<34}"),
              TextColumn("{task.completed}"), TimeElapsedColumn())
    )  # fmt: skip
    return Progress(*columns, console=shown, transient=False, disable=not shown.is_terminal)


EXIT_CODES: dict[type[DomainError], int] = {
    DomainError: 2,  # a value refused by a rule of the domain
    ServiceError: 2,  # refused as given: fix the options or the file
    Unprocessable: 2,
    Unauthenticated: 2,
    Forbidden: 2,
    NotFound: 3,
    Conflict: 4,
    Unavailable: 5,  # try again later
    TooManyRequests: 5,
    NotInitialised: 6,  # run ``tierspayant init`` first
    DatabaseUnavailable: 7,  # the database is down or dropped the connection: rerun later
    RedisUnavailable: 8,  # Redis is down: rerun later
}
"""The exit status of each kind of refusal (documented in docs/operations.md). A class not
listed exits with the status of its nearest listed ancestor; 1 is left to the checks that
report what they found (``ledger check``, ``audit verify``…)."""


def exit_code(error: DomainError) -> int:
    """The exit status of ``error`` (see :data:`EXIT_CODES`)."""
    return next(EXIT_CODES[kind] for kind in type(error).__mro__ if kind in EXIT_CODES)


def said_in_french(error: DomainError) -> str:
    """A service's refusal for the command line: its code's French sentence, then what its
    own message says of this case (the value, the period…), which services write for logs
    and the API; the message alone for a code without a French sentence."""
    sentence = french_sentence(error.code)
    if sentence is None or error.message.strip() in ("", sentence):
        return error.message
    return f"{sentence} ({error.message})"


def fail(error: DomainError, message: str | None = None) -> typer.Exit:
    """Print the coded refusal (``message`` in place of the error's own, if given) and
    return the exit to raise, with the status of the error's class."""
    text = error.message if message is None else message
    where = f" (champ {error.field})" if error.field else ""
    line = escape(f"[{error.code}] {text}{where}")
    err_console.print(f"[red]erreur[/red] {line}", soft_wrap=True)
    return typer.Exit(exit_code(error))


DEBUG_ENV = "TIERSPAYANT_DEBUG"
LOG_NAME = "cli-errors.log"


def debugging() -> bool:
    """Whether failures show their traceback (``tierspayant --debug …`` sets it)."""
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def _log_traceback(exc: BaseException) -> Path | None:
    """Append the traceback to ``<data_dir>/logs/cli-errors.log``; the file, or None."""
    try:
        path = load_settings().data_dir / "logs" / LOG_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as log:
            log.write(f"--- {datetime.now(UTC).isoformat()} pid {os.getpid()}\n")
            log.write("".join(traceback.format_exception(exc)))
    except Exception:  # noqa: BLE001 - the log is a help; the coded line is the answer
        return None
    return path


def failure_exit(exc: BaseException) -> typer.Exit | None:
    """The exit for a command's failure, its coded line printed; None for a bug.

    A refusal prints ``erreur [code] message``; a lost database, a lost Redis or a run
    held by another worker reads as its coded refusal (:func:`as_refusal`), the traceback
    going to the log file, not to the screen.
    """
    error = as_refusal(exc)
    if error is None:
        return None
    if error is not exc:
        logged = _log_traceback(exc)
        message = error.message + (f" (détail : {logged})" if logged else "")
        return fail(error, message)
    return fail(error, said_in_french(error))  # a service's refusal: English for logs


install()  # the usage line and the help option in French


class FailureGroup(TyperGroup):
    """The root command: every subcommand runs inside :meth:`invoke`, so a failure of any of
    them ends here as one coded line and its exit status (a traceback with ``--debug``)."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().make_context(*args, **kwargs)
        except UsageError as error:  # the root's own options
            raise french_usage_error(error) from None

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except UsageError as error:  # a subcommand's options and arguments
            raise french_usage_error(error) from None
        except Exception as exc:  # noqa: BLE001 - sorted by _exit_or_reraise: bugs go on
            raise _exit_or_reraise(exc) from None


@contextmanager
def platform_ctx() -> Iterator[Platform]:
    """Open the configured platform; turn every refusal, and a lost database or Redis, into
    its coded line and exit status (:func:`failure_exit`)."""
    try:
        platform = open_platform(load_settings())
    except Exception as exc:  # noqa: BLE001 - sorted by _exit_or_reraise: bugs go on
        raise _exit_or_reraise(exc) from None
    try:
        yield platform
    except Exception as exc:  # noqa: BLE001 - sorted by _exit_or_reraise: bugs go on
        raise _exit_or_reraise(exc) from None
    finally:
        with suppress(Exception):  # closing a lost connection: the failure is told above
            platform.close()


def _exit_or_reraise(exc: Exception) -> typer.Exit:
    """The coded exit for ``exc``; ``exc`` itself raised again for an exit, a usage error,
    a bug, or anything under ``--debug`` but a refusal."""
    if isinstance(exc, typer.Exit | typer.Abort) or (
        debugging() and not isinstance(exc, DomainError)
    ):
        raise exc
    exit_ = failure_exit(exc)
    if exit_ is None:
        raise exc
    return exit_
