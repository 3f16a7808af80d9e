"""The table of the providers' disputes of a decided invoice line (« contestations »)."""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    text,
)

from tierspayant.store.tables import BigId, metadata

DISPUTE_STATES = ("open", "accepted", "refused")
# Written as a literal, as in the index of the claims queue: SQLite uses a partial index
# only for a query whose WHERE states the same condition.
OPEN_CONDITION = "state = 'open'"

claim_disputes = Table(
    "claim_disputes",
    metadata,
    # Keyed (insurer_id, id) as partitioning by insurer requires (migration 0018); SQLite
    # keeps ``id`` alone as its key.
    Column("id", Integer, nullable=False, autoincrement=True),
    Column("insurer_id", Integer, ForeignKey("insurers.id"), nullable=False),
    Column("claim_id", BigId, nullable=False),
    Column("line_no", SmallInteger, nullable=False),
    Column("provider_id", Integer, ForeignKey("providers.id"), nullable=False),
    # The invoice number as the provider knows it (the claim id stays internal).
    Column("invoice_number", String(40), nullable=False),
    Column("reason_text", String(1000), nullable=False),
    Column("state", String(10), nullable=False),
    Column("answer", String(1000), nullable=True),
    Column("opened_by", String(120), nullable=False),
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("answered_by", String(120), nullable=True),
    Column("answered_at", DateTime(timezone=True), nullable=True),
    CheckConstraint("state IN ('open', 'accepted', 'refused')", name="state"),
    CheckConstraint("state = 'open' OR answer IS NOT NULL", name="answered"),
    # One open dispute per line: opening it again answers the same dispute.
    Index(
        "uq_claim_disputes_open",
        "insurer_id",
        "claim_id",
        "line_no",
        unique=True,
        sqlite_where=text(OPEN_CONDITION),
        postgresql_where=text(OPEN_CONDITION),
    ),
    PrimaryKeyConstraint("insurer_id", "id"),
    Index("ix_claim_disputes_id", "id"),
    Index("ix_claim_disputes_provider", "provider_id", "opened_at"),
    Index("ix_claim_disputes_insurer", "insurer_id", "state", "opened_at"),
)

__all__ = ["DISPUTE_STATES", "claim_disputes"]
