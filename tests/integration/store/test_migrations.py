"""The Alembic migrations build exactly the schema the code declares, on both engines."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from tierspayant.app.platform import Platform
from tierspayant.store.db import migrate
from tierspayant.store.schema import metadata


def test_given_a_migrated_database_then_it_matches_the_declared_tables(
    platform: Platform,
) -> None:
    with platform.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
    assert differences == []


def test_given_a_migrated_database_then_migrating_again_changes_nothing(
    platform: Platform,
) -> None:
    before = sorted(inspect(platform.engine).get_table_names())
    migrate(platform.engine)
    assert sorted(inspect(platform.engine).get_table_names()) == before
    assert "beneficiaries" in before
    assert "audit_events" in before


def test_the_migrations_have_a_single_head() -> None:
    from alembic.script import ScriptDirectory

    from tierspayant.store.db import alembic_config

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert script.get_heads() == ["0019"]
