"""Alembic environment: runs on the connection handed in by ``store.db.migrate``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text

from tierspayant.store.schema import metadata

config = context.config
target_metadata = metadata


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things in place
        compare_type=True,
    )
    dialect = connection.dialect.name  # type: ignore[attr-defined]
    if dialect == "postgresql":
        # Never wait forever on a lock held by a live application, and let only one
        # migrator run at a time.
        connection.execute(text("SET lock_timeout = '10s'"))  # type: ignore[attr-defined]
        connection.execute(text("SELECT pg_advisory_xact_lock(727274)"))  # type: ignore[attr-defined]
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as conn:
        _run(conn)
