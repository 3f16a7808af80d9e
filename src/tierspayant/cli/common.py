"""What every command module shares: the consoles and the platform context."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.markup import escape

from tierspayant.app.platform import Platform, open_platform
from tierspayant.config import load_settings
from tierspayant.domain.errors import DomainError
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

console = Console()
err_console = Console(stderr=True)
CLI_ACTOR = "operator:cli"


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
}
"""The exit status of each kind of refusal (documented in docs/operations.md). A class not
listed exits with the status of its nearest listed ancestor; 1 is left to the checks that
report what they found (``ledger check``, ``audit verify``…)."""


def exit_code(error: DomainError) -> int:
    """The exit status of ``error`` (see :data:`EXIT_CODES`)."""
    return next(EXIT_CODES[kind] for kind in type(error).__mro__ if kind in EXIT_CODES)


def fail(error: DomainError, message: str | None = None) -> typer.Exit:
    """Print the coded refusal (``message`` in place of the error's own, if given) and
    return the exit to raise, with the status of the error's class."""
    text = error.message if message is None else message
    where = f" (field {error.field})" if error.field else ""
    err_console.print(f"[red]error[/red] {escape(f'[{error.code}] {text}{where}')}")
    return typer.Exit(exit_code(error))


@contextmanager
def platform_ctx() -> Iterator[Platform]:
    """Open the configured platform; turn every refusal into a message and its exit status."""
    try:
        platform = open_platform(load_settings())
    except DomainError as exc:
        raise fail(exc) from None
    try:
        yield platform
    except DomainError as exc:
        raise fail(exc) from None
    finally:
        platform.close()
