"""Tables of tiers payant cards and of canaries (registered on the shared metadata).

``card_signing_keys`` holds each insurer's Ed25519 card-signing keys: the public key in
clear (it is published), the private key only wrapped by the key-encryption key, which
never sits in the database. ``cards`` holds one row per card issued, with the digest of
its secret (never the secret) and the keyed family binding (never a member number).

``canary_marks`` says which beneficiaries are canaries without saying it in
``beneficiaries``: each mark is a keyed digest of a row's identity under an operator key,
and the row id is stored only encrypted. A database reader sees canaries stored exactly
like members and a table of random-looking values (``docs/canaries.md``).
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Table,
)

from tierspayant.store.tables import metadata

CARD_STATUSES = ("active", "revoked", "superseded")

card_signing_keys = Table(
    "card_signing_keys",
    metadata,
    Column("insurer_id", Integer, ForeignKey("insurers.id"), primary_key=True),
    Column("key_id", String(16), primary_key=True),  # hex of SHA-256(public key)[:8]
    Column("public_key", LargeBinary(32), nullable=False),
    Column("wrapped_private", LargeBinary, nullable=False),
    Column("kek_id", String(64), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("retired_at", DateTime(timezone=True), nullable=True),
)

cards = Table(
    "cards",
    metadata,
    Column("insurer_id", Integer, ForeignKey("insurers.id"), primary_key=True),
    Column("serial", String(16), primary_key=True),  # base32 of 10 random bytes
    Column("key_id", String(16), nullable=False),
    Column("family_binding", LargeBinary(16), nullable=False),
    Column("secret_digest", LargeBinary(32), nullable=False),
    Column("year", SmallInteger, nullable=False),
    Column("valid_from", Date, nullable=False),
    Column("valid_until", Date, nullable=False),
    Column("status", String(12), nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("status_changed_at", DateTime(timezone=True), nullable=True),
    Column("status_reason", String(200), nullable=True),
    Column("superseded_by", String(16), nullable=True),
    CheckConstraint("status IN ('active', 'revoked', 'superseded')", name="status"),
    Index("ix_cards_family", "insurer_id", "family_binding", "status"),
)

canary_marks = Table(
    "canary_marks",
    metadata,
    Column("insurer_id", Integer, ForeignKey("insurers.id"), primary_key=True),
    Column("mark", LargeBinary(16), primary_key=True),
    Column("ref_ct", LargeBinary, nullable=False),  # the beneficiary id, encrypted
    Column("planted_at", DateTime(timezone=True), nullable=False),
)

__all__ = ["CARD_STATUSES", "canary_marks", "card_signing_keys", "cards", "metadata"]
