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
    Integer,
    LargeBinary,
    Table,
)

from tierspayant.store.tables import BigId, metadata

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

__all__ = ["metadata", "subject_index", "subject_index_marks"]
