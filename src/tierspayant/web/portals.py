"""The French portals (providers, insurers, members, security team), server-rendered."""

from __future__ import annotations

from fastapi import FastAPI

from tierspayant.services.platform import Platform


def mount_portals(app: FastAPI, platform: Platform) -> None:
    """Add the portal routes and static files to ``app``."""
