"""Tables of the exfiltration guard, on the shared metadata.

``security_alerts`` is what the security console lists and acknowledges (its queries:
``store/alerts.py``); ``guard_daily`` keeps each structure's daily figures so the guard
can calibrate its cap on the structure's own history (its queries:
``store/guard_figures.py``). Neither holds identity data: no NIR, no name, no subject
pseudonym.
"""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from tierspayant.store.tables import BigId, metadata

security_alerts = Table(
    "security_alerts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("level", String(8), nullable=False),  # soft | hard
    Column("code", String(60), nullable=False),  # guard.canary, guard.no_proof_quota…
    Column("principal", String(120), nullable=True),  # None for platform-wide signals
    Column("structure", String(20), nullable=True),
    Column("insurer", String(10), nullable=True),
    Column("message", String(300), nullable=False),
    Column("figures", Text, nullable=False),  # JSON object of counts and thresholds
    Column("acknowledged_at", DateTime(timezone=True), nullable=True),
    Column("acknowledged_by", String(120), nullable=True),
    CheckConstraint("level IN ('soft', 'hard')", name="level"),
    Index("ix_security_alerts_at", "at"),
    Index("ix_security_alerts_principal_at", "principal", "at"),
)

# One row per structure and day, written by the nightly roll-up from the guard counters.
guard_daily = Table(
    "guard_daily",
    metadata,
    Column("structure", String(20), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("distinct_lookups", Integer, nullable=False),
    Column("distinct_invoiced", Integer, nullable=False),
    Column("category", String(20), nullable=False),
)


__all__ = ["guard_daily", "security_alerts"]
