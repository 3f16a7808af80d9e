"""Tables of operations: exported audit checkpoints, break-glass grants, incident runs.

These are operator records, not insurer data: no ``insurer_id`` leads their keys. None of
them is trusted as evidence on its own — the signed checkpoint *files* are the anchor;
``audit_checkpoints`` only remembers what was exported, for the console and the jobs.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
)

from tierspayant.store.tables import BigId, metadata

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("up_to_seq", BigInteger, nullable=False),
    Column("last_hash", LargeBinary(32), nullable=False),
    Column("merkle_root", LargeBinary(32), nullable=False),
    Column("signed_at", DateTime(timezone=True), nullable=False),
    Column("key_id", String(32), nullable=False),  # fingerprint of the verification key
    Column("file_name", String(200), nullable=False),
    Index("ix_audit_checkpoints_seq", "up_to_seq"),
)

# Operator access to personal data: requested with a reason, limited in time and scope;
# bulk and export need a second operator's approval before they become usable.
breakglass_grants = Table(
    "breakglass_grants",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("requester", String(120), nullable=False),
    Column("reason", String(500), nullable=False),
    Column("scope", String(12), nullable=False),  # beneficiary | bulk | export
    Column("insurer_id", Integer, ForeignKey("insurers.id"), nullable=True),
    Column("beneficiary_id", BigId, nullable=True),
    Column("status", String(12), nullable=False),  # pending | active | closed
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("approver", String(120), nullable=True),
    Column("approved_at", DateTime(timezone=True), nullable=True),
    Column("dpo_notice", String(300), nullable=True),  # where the DPO notice was written
    CheckConstraint("scope IN ('beneficiary', 'bulk', 'export')", name="scope"),
    CheckConstraint("status IN ('pending', 'active', 'closed')", name="status"),
    CheckConstraint(
        "scope <> 'beneficiary' OR (insurer_id IS NOT NULL AND beneficiary_id IS NOT NULL)",
        name="one_beneficiary",
    ),
    Index("ix_breakglass_grants_status", "status", "expires_at"),
)

# Each incident command run: who scoped what, how much it found, what it wrote.
incident_runs = Table(
    "incident_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(20), nullable=False),  # scope | notices | revoke
    Column("actor", String(120), nullable=False),
    Column("criteria", Text, nullable=False),  # JSON: principal/structure and window
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=False),
    Column("events_scanned", BigInteger, nullable=False),
    Column("subjects", BigInteger, nullable=False),
    Column("revealed", BigInteger, nullable=False),
)

__all__ = [
    "audit_archives",
    "audit_checkpoints",
    "breakglass_grants",
    "incident_runs",
    "metadata",
    "scheduled_jobs",
]

# Months of the audit log archived to a file and detached (migration 0018, PostgreSQL):
# where verification now starts (the last event's hash and the Merkle frontier of events
# 1..last_seq), vouched for by the signed checkpoint that covered the month.
audit_archives = Table(
    "audit_archives",
    metadata,
    Column("month", String(7), primary_key=True),  # YYYY-MM
    Column("first_seq", BigInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("events", BigInteger, nullable=False),
    Column("first_prev_hash", LargeBinary(32), nullable=False),
    Column("last_hash", LargeBinary(32), nullable=False),
    Column("frontier", Text, nullable=False),  # JSON [[size, hex], ...]
    Column("file_name", String(200), nullable=False),
    Column("file_digest", String(64), nullable=False),  # SHA-256 of the archive file
    Column("checkpoint_seq", BigInteger, nullable=False),  # the covering checkpoint
    Column("checkpoint_file", String(200), nullable=False),
    Column("archived_at", DateTime(timezone=True), nullable=False),
    Index("ix_audit_archives_last_seq", "last_seq"),
)

# The scheduler's jobs (``jobs/scheduler.py``): one row per job and day (or period), held
# by a lease while it runs, ``done`` once it finished, so that several ``serve`` processes
# never run the same job twice. The money runs keep their own leases in ``money_runs``.
scheduled_jobs = Table(
    "scheduled_jobs",
    metadata,
    Column("job_key", String(60), primary_key=True),  # payment:2026-12-07 | billing:2026-11
    Column("job", String(20), nullable=False),
    Column("status", String(8), nullable=False),
    Column("lock_owner", String(120), nullable=True),
    Column("lock_expires_at", DateTime(timezone=True), nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("outcome", String(200), nullable=True),
    CheckConstraint("status IN ('running', 'done')", name="status"),
)
