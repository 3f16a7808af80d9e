"""Subject index: incident scoping maps audit pseudonyms back to beneficiaries through
an index (``subject_index``, insurer-owned) instead of recomputing the pseudonym of every
beneficiary; ``subject_index_marks`` records up to which id each insurer is indexed.
The index is filled on the first scope of an insurer (or ``index_subjects``), then kept
up to date incrementally. ``ix_audit_events_status``: a partial index over the few
events that suspend, revoke or reinstate an account, which an incident's measures read
from the window's start on (without it, every event since the window is read).

Revision ID: 0019
Revises: 0017
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tierspayant.store.partitions import name_partition_indexes
from tierspayant.store.tenancy import rls_statements

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

# Written out (not imported): a migration keeps the predicate it created.
STATUS = sa.text(
    "action IN ('incident.revoke', 'principal.reinstate', 'principal.revoke', 'principal.suspend')"
)


def _partitioned_subject_index() -> None:
    """PostgreSQL: the index grows with people, so it is hash-partitioned by insurer like
    the tables of 0018 (16 partitions, named ``subject_index_pNN``)."""
    op.execute(
        "CREATE TABLE subject_index ("
        " insurer_id integer NOT NULL,"
        " lookup bytea NOT NULL,"
        " beneficiary_id bigint NOT NULL,"
        " CONSTRAINT pk_subject_index PRIMARY KEY (insurer_id, lookup),"
        " CONSTRAINT fk_subject_index_insurer_id_insurers FOREIGN KEY (insurer_id)"
        " REFERENCES insurers (id)"
        ") PARTITION BY HASH (insurer_id)"
    )
    for remainder in range(16):
        op.execute(
            f"CREATE TABLE subject_index_p{remainder:02d} PARTITION OF subject_index"
            f" FOR VALUES WITH (MODULUS 16, REMAINDER {remainder})"
        )
    name_partition_indexes(op.get_bind(), "subject_index")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _partitioned_subject_index()
    else:
        _plain_subject_index()
    _rest()


def _plain_subject_index() -> None:
    op.create_table(
        "subject_index",
        sa.Column("insurer_id", sa.Integer(), nullable=False),
        sa.Column("lookup", sa.LargeBinary(length=16), nullable=False),
        sa.Column(
            "beneficiary_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["insurer_id"], ["insurers.id"], name=op.f("fk_subject_index_insurer_id_insurers")
        ),
        sa.PrimaryKeyConstraint("insurer_id", "lookup", name=op.f("pk_subject_index")),
    )


def _rest() -> None:
    op.create_table(
        "subject_index_marks",
        sa.Column("insurer_id", sa.Integer(), nullable=False),
        sa.Column("up_to_id", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["insurer_id"],
            ["insurers.id"],
            name=op.f("fk_subject_index_marks_insurer_id_insurers"),
        ),
        sa.PrimaryKeyConstraint("insurer_id", name=op.f("pk_subject_index_marks")),
    )
    op.create_index(
        "ix_audit_events_status",
        "audit_events",
        ["seq"],
        postgresql_where=STATUS,
        sqlite_where=STATUS,
    )
    # Insurer-owned: under the tenant role's row-level security on PostgreSQL.
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for statement in rls_statements(sa.inspect(bind).get_table_names()):
            op.execute(statement)


def downgrade() -> None:
    op.drop_index("ix_audit_events_status", table_name="audit_events")
    # Dropping the tables drops their policies with them.
    op.drop_table("subject_index_marks")
    op.drop_table("subject_index")
