"""Partitions on PostgreSQL: the insurer-owned tables that grow with people by hash of
insurer_id, the audit log by month (docs/decisions/0010-partitioning.md).

Every primary key and unique constraint of a partitioned table includes its partition key
(PostgreSQL refuses it otherwise, and so would a Citus cluster distributed by insurer).
Each table is converted the same way: the table is renamed, a partitioned table LIKE it
(columns, defaults, checks) takes its name with its partitions, the rows are moved with
INSERT … SELECT, the old table is dropped, then its keys, foreign keys, indexes, triggers
(the append-only ones of the audit log), sequence and row-level security are made again
on the partitioned table. The downgrade runs the same steps back to plain tables.

The audit log's key becomes (seq, at), which still serves every read by seq on each
partition. After a month was archived (``audit archiver``), a downgrade drops the record
of the archives: ``audit verify`` then stops at the first archived position (the archive
files keep those events).

SQLite keeps plain tables and gets only the lookup indexes; the key changes below are
PostgreSQL's alone (SQLite's tables keep their narrower unique constraints, which enforce
more, not less).

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from tierspayant.store.partitions import (
    AUDIT_DEFAULT,
    AUDIT_TABLE,
    HASH_PARTITIONS,
    INSURER_PARTITIONED,
    MONTHS_AHEAD,
    first_of_month,
    hash_partition_name,
    month_partition_ddl,
    name_partition_indexes,
    next_month,
)
from tierspayant.store.tenancy import TENANT_ROLE, rls_statements

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

# Keys that change: (partitioned definition, plain definition), by constraint name.
KEYS: dict[str, dict[str, tuple[str, str]]] = {
    "claims": {
        "uq_claims_provider_invoice_version": (
            "UNIQUE (insurer_id, provider_id, invoice_number, version)",
            "UNIQUE (provider_id, invoice_number, version)",
        ),
    },
    "prior_authorisations": {
        "uq_prior_authorisations_agreement_number": (
            "UNIQUE (insurer_id, agreement_number)",
            "UNIQUE (agreement_number)",
        ),
        "uq_prior_authorisations_request": (
            "UNIQUE (insurer_id, provider_id, request_key)",
            "UNIQUE (provider_id, request_key)",
        ),
    },
    "claim_disputes": {
        "pk_claim_disputes": ("PRIMARY KEY (insurer_id, id)", "PRIMARY KEY (id)"),
    },
    "import_runs": {
        "pk_import_runs": ("PRIMARY KEY (insurer_id, id)", "PRIMARY KEY (id)"),
    },
    AUDIT_TABLE: {
        "pk_audit_events": ("PRIMARY KEY (seq, at)", "PRIMARY KEY (seq)"),
    },
}

# Lookups that the narrower unique constraints served, kept fast once they lead with
# insurer_id (the caller does not always know the insurer): (name, table, columns).
LOOKUPS = (
    ("ix_claims_provider_invoice", "claims", "provider_id, invoice_number, version"),
    ("ix_prior_authorisations_number", "prior_authorisations", "agreement_number"),
    ("ix_prior_authorisations_request", "prior_authorisations", "provider_id, request_key"),
    ("ix_claim_disputes_id", "claim_disputes", "id"),
    ("ix_import_runs_id", "import_runs", "id"),
)


def _rows(sql: str, **params: object) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in op.get_bind().execute(sa.text(sql), params).all()]


def _convert(table: str, partitioned: bool, parts: list[str]) -> None:
    """Rebuild ``table`` as partitioned (``parts``: the partition DDL tails, the table
    clause first) or plain, keeping its rows, keys, indexes, triggers and sequences."""
    constraints = _rows(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = to_regclass(:t) AND contype IN ('p', 'u', 'f')"
        " ORDER BY contype DESC, conname",
        t=table,
    )
    indexes = _rows(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
        " AND tablename = :t AND indexname NOT IN"
        " (SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(:t))",
        t=table,
    )
    triggers = _rows(
        "SELECT pg_get_triggerdef(oid) FROM pg_trigger"
        " WHERE tgrelid = to_regclass(:t) AND NOT tgisinternal AND tgparentid = 0",
        t=table,
    )
    sequences = _rows(
        "SELECT s.relname, a.attname FROM pg_depend d"
        " JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'"
        " JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid"
        " WHERE d.refobjid = to_regclass(:t) AND d.deptype = 'a'",
        t=table,
    )
    changed = KEYS.get(table, {})
    lookups = {name for name, on, _ in LOOKUPS if on == table}
    old = f"{table}__unpartitioned" if partitioned else f"{table}__partitioned"
    op.execute(f"ALTER TABLE {table} RENAME TO {old}")
    clause = parts[0] if partitioned else ""
    op.execute(
        f"CREATE TABLE {table} (LIKE {old} INCLUDING DEFAULTS INCLUDING CONSTRAINTS"
        f" INCLUDING STORAGE) {clause}"
    )
    for tail in parts[1:] if partitioned else []:
        op.execute(tail)
    op.execute(f"INSERT INTO {table} SELECT * FROM {old}")  # noqa: S608
    for sequence, _column in sequences:
        op.execute(f"ALTER SEQUENCE {sequence} OWNED BY NONE")
    op.execute(f"DROP TABLE {old}")
    for sequence, column in sequences:
        op.execute(f"ALTER SEQUENCE {sequence} OWNED BY {table}.{column}")
    for name, definition in constraints:
        new, plain = changed.get(str(name), (definition, definition))
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} {new if partitioned else plain}")
    for name, definition in indexes:
        if partitioned or str(name) not in lookups:
            op.execute(str(definition))
    if partitioned:
        for name, on, columns in LOOKUPS:
            if on == table:
                op.execute(f"CREATE INDEX {name} ON {table} ({columns})")
    for (definition,) in triggers:
        op.execute(str(definition))
    if partitioned:
        name_partition_indexes(op.get_bind(), table)


def _hash_parts(table: str) -> list[str]:
    return [
        "PARTITION BY HASH (insurer_id)",
        *(
            f"CREATE TABLE {hash_partition_name(table, r)} PARTITION OF {table}"
            f" FOR VALUES WITH (MODULUS {HASH_PARTITIONS}, REMAINDER {r})"
            for r in range(HASH_PARTITIONS)
        ),
    ]


def _audit_parts() -> list[str]:
    """A partition per month from the oldest event's to MONTHS_AHEAD after this one, and
    the DEFAULT partition."""
    oldest = op.get_bind().execute(sa.text(f"SELECT min(at) FROM {AUDIT_TABLE}")).scalar()  # noqa: S608
    today = datetime.now(UTC).date()
    month = first_of_month(today if oldest is None else min(oldest.astimezone(UTC).date(), today))
    last = first_of_month(today)
    for _ in range(MONTHS_AHEAD):
        last = next_month(last)
    parts = ["PARTITION BY RANGE (at)"]
    while month <= last:
        parts.append(month_partition_ddl(month))
        month = next_month(month)
    parts.append(f"CREATE TABLE {AUDIT_DEFAULT} PARTITION OF {AUDIT_TABLE} DEFAULT")
    return parts


def _tenancy() -> None:
    """Row-level security again on the new tables; the tenant role gets no right on a
    partition (a query naming one would not pass through the parent's policies)."""
    bind = op.get_bind()
    for statement in rls_statements(sa.inspect(bind).get_table_names()):
        op.execute(statement)
    partitions = _rows(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = ANY(:t)",
        t=list(INSURER_PARTITIONED),
    )
    for (name,) in partitions:
        op.execute(f"REVOKE ALL ON {name} FROM {TENANT_ROLE}")


def _archives_table() -> None:
    op.create_table(
        "audit_archives",
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("first_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("first_prev_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("last_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("frontier", sa.Text(), nullable=False),
        sa.Column("file_name", sa.String(length=200), nullable=False),
        sa.Column("file_digest", sa.String(length=64), nullable=False),
        sa.Column("checkpoint_seq", sa.BigInteger(), nullable=False),
        sa.Column("checkpoint_file", sa.String(length=200), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("month", name=op.f("pk_audit_archives")),
    )
    op.create_index("ix_audit_archives_last_seq", "audit_archives", ["last_seq"])


def upgrade() -> None:
    _archives_table()
    if op.get_bind().dialect.name != "postgresql":
        # Plain tables: only the lookup indexes, so that both engines declare the same.
        for name, table, columns in LOOKUPS:
            op.execute(f"CREATE INDEX {name} ON {table} ({columns})")
        return
    for table in INSURER_PARTITIONED:
        _convert(table, True, _hash_parts(table))
    _convert(AUDIT_TABLE, True, _audit_parts())
    _tenancy()


def downgrade() -> None:
    op.drop_table("audit_archives")
    if op.get_bind().dialect.name != "postgresql":
        for name, _table, _columns in LOOKUPS:
            op.execute(f"DROP INDEX {name}")
        return
    for table in (*INSURER_PARTITIONED, AUDIT_TABLE):
        _convert(table, False, [])
    _tenancy()
