"""The Alembic migrations build exactly the schema the code declares, on both engines."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect, text

from tierspayant.app.platform import Platform
from tierspayant.store.db import migrate
from tierspayant.store.schema import metadata

# The one difference between the engines (migration 0018): on PostgreSQL the unique keys
# of the tables partitioned by insurer include insurer_id, as a partitioned table requires;
# SQLite keeps its plain tables with the narrower keys of migration 0004, which enforce
# more, not less. Alembic sees each as one removed and one added constraint.
SQLITE_NARROWER_KEYS = {
    "uq_claims_provider_invoice_version",
    "uq_prior_authorisations_agreement_number",
    "uq_prior_authorisations_request",
}


def _partitions(conn: Connection) -> set[str]:
    if conn.dialect.name != "postgresql":
        return set()
    query = "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
    return {str(name) for name in conn.execute(text(query)).scalars()}


def _constraint_name(difference: tuple[Any, ...]) -> str | None:
    kind, item = difference[0], difference[1]
    if kind in ("add_constraint", "remove_constraint"):
        return str(item.name) if item.name else "-".join(c.name for c in item.columns)
    return None


def test_given_a_migrated_database_then_it_matches_the_declared_tables(
    platform: Platform,
) -> None:
    with platform.engine.connect() as conn:
        # A partition is an implementation of its parent table, not a declared table.
        partitions = _partitions(conn)
        context = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "include_name": lambda name, kind, _parent: (
                    not (kind == "table" and name in partitions)
                ),
            },
        )
        differences = compare_metadata(context, metadata)
    if platform.engine.dialect.name == "sqlite":
        allowed = [d for d in differences if _constraint_name(d) in SQLITE_NARROWER_KEYS]
        assert len(allowed) == 2 * len(SQLITE_NARROWER_KEYS), allowed
        differences = [d for d in differences if d not in allowed]
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
    assert script.get_heads() == ["0021"]
