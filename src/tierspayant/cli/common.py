"""What every command module shares: the consoles and the platform context."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.markup import escape

from tierspayant.config import load_settings
from tierspayant.domain.errors import DomainError
from tierspayant.services.platform import Platform, open_platform

console = Console()
err_console = Console(stderr=True)
CLI_ACTOR = "operator:cli"


def fail(code: str, message: str, status: int = 2) -> typer.Exit:
    """Print a coded error and return the exit to raise."""
    err_console.print(f"[red]error[/red] {escape(f'[{code}] {message}')}")
    return typer.Exit(status)


@contextmanager
def platform_ctx() -> Iterator[Platform]:
    """Open the configured platform; turn every refusal into a message and exit 2."""
    try:
        platform = open_platform(load_settings())
    except DomainError as exc:
        raise fail(exc.code, exc.message) from None
    try:
        yield platform
    except DomainError as exc:
        where = f" (field {exc.field})" if exc.field else ""
        raise fail(exc.code, f"{exc.message}{where}") from None
    finally:
        platform.close()
