"""The containment switches (``docs/incident-response.md``): operator records, no insurer
data, so no ``insurer_id`` leads the key. Every change of state is also an audit event."""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Column, DateTime, Index, Integer, String, Table

from tierspayant.store.tables import metadata

containment_switches = Table(
    "containment_switches",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("scope_kind", String(12), nullable=False),  # platform | insurer | structure | …
    Column("scope_value", String(40), nullable=False),  # "" for the platform
    Column("mode", String(16), nullable=False),  # card_proof_only | off
    Column("state", String(16), nullable=False),  # proposed | active | lift_proposed | lifted
    Column("reason", String(500), nullable=False),
    Column("proposer", String(120), nullable=False),
    Column("proposed_at", DateTime(timezone=True), nullable=False),
    Column("approver", String(120), nullable=True),
    Column("approved_at", DateTime(timezone=True), nullable=True),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("lift_proposer", String(120), nullable=True),
    Column("lift_reason", String(500), nullable=True),
    Column("lift_proposed_at", DateTime(timezone=True), nullable=True),
    Column("lifter", String(120), nullable=True),
    Column("lifted_at", DateTime(timezone=True), nullable=True),
    CheckConstraint(
        "scope_kind IN ('platform', 'insurer', 'structure', 'category', 'route')",
        name="scope_kind",
    ),
    CheckConstraint("mode IN ('card_proof_only', 'off')", name="mode"),
    CheckConstraint("state IN ('proposed', 'active', 'lift_proposed', 'lifted')", name="state"),
    # Two people: whoever approves a step is not whoever proposed it.
    CheckConstraint("approver IS NULL OR approver <> proposer", name="two_operators"),
    CheckConstraint("lifter IS NULL OR lifter <> lift_proposer", name="two_operators_lift"),
    # Every process reads the switches in force about once a second.
    Index("ix_containment_switches_state", "state"),
)

__all__ = ["containment_switches"]
