"""Commands of this part of the platform, registered by ``cli.main``."""

from __future__ import annotations

import typer


def register(app: typer.Typer, import_app: typer.Typer) -> None:
    """Add this module's commands to the ``tierspayant`` application."""
