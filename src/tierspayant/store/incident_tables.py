"""The subject index: from an audit pseudonym back to a beneficiary, without a pass.

Events name a beneficiary by ``subject_pseudonym(key, insurer, id)``, a keyed HMAC that
cannot be inverted. Scoping an incident needs the internal ids of the people read; this
table keeps, for every id an insurer has issued, a *lookup* of its pseudonym (a second
keyed HMAC of it, so the table alone does not link the log to rows) and the id.

``subject_index_marks`` says up to which id an insurer's ids are indexed: ids are issued
as ``max(id) + 1`` (imports, enrolment), so everything at or below the mark is present
(purged ids included: the pseudonym of an id never changes).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Table,
    text,
)

from tierspayant.store.tables import BigId, audit_events, metadata

subject_index = Table(
    "subject_index",
    metadata,
    Column("insurer_id", Integer, ForeignKey("insurers.id"), primary_key=True),
    Column("lookup", LargeBinary(16), primary_key=True),
    Column("beneficiary_id", BigId, nullable=False),
)

subject_index_marks = Table(
    "subject_index_marks",
    metadata,
    Column("insurer_id", Integer, ForeignKey("insurers.id"), primary_key=True),
    Column("up_to_id", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# The audit actions that change what an account may do (suspensions, revocations,
# reinstatements): an incident's measures read them from the window's start on. A partial
# index over them keeps that read to those few events, however many rights checks the
# log holds after the window. A query naming other actions too cannot use it (it stays
# correct, reading the chain from the window's start).
STATUS_ACTIONS = ("incident.revoke", "principal.reinstate", "principal.revoke", "principal.suspend")
STATUS_PREDICATE = "action IN ({})".format(", ".join(f"'{a}'" for a in STATUS_ACTIONS))
ix_audit_events_status = Index(
    "ix_audit_events_status",
    audit_events.c.seq,
    postgresql_where=text(STATUS_PREDICATE),
    sqlite_where=text(STATUS_PREDICATE),
)

__all__ = [
    "STATUS_ACTIONS",
    "ix_audit_events_status",
    "metadata",
    "subject_index",
    "subject_index_marks",
]
