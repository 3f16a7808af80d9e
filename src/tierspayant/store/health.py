"""Probes of the database for readiness and ``tierspayant doctor``: reachable, at head.

Read-only: nothing here migrates or writes.
"""

from __future__ import annotations

import redis
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from tierspayant.store.db import alembic_config


def ping(engine: Engine) -> None:
    """Run ``SELECT 1``; raises the driver's error when the database cannot answer."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def head_revisions() -> frozenset[str]:
    """The newest revisions of the packaged migrations."""
    return frozenset(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


def current_revisions(engine: Engine) -> frozenset[str]:
    """The revisions the database is at (empty when it was never migrated)."""
    with engine.connect() as conn:
        return frozenset(MigrationContext.configure(conn).get_current_heads())


def at_head(engine: Engine) -> bool:
    """Whether the database's schema is at the newest revision of the migrations."""
    return current_revisions(engine) == head_revisions()


def ping_redis(url: str, *, timeout_seconds: float = 1.0) -> None:
    """``PING`` the Redis server at ``url``; raises redis' error when it does not answer."""
    client = redis.Redis.from_url(
        url, socket_connect_timeout=timeout_seconds, socket_timeout=timeout_seconds
    )
    try:
        client.ping()
    finally:
        client.close()
