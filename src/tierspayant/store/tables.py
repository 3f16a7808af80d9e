"""The schema, as SQLAlchemy Core tables.

Insurer-owned tables lead their primary key with ``insurer_id`` so the same schema runs on
one SQLite file, one PostgreSQL, hash partitions or a cluster distributed by insurer.
Identity fields exist only as ciphertext (``*_ct``) and keyed blind indexes (``idx_*``).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

# BIGINT on PostgreSQL, INTEGER on SQLite (where only INTEGER PRIMARY KEY is a rowid alias).
BigId = BigInteger().with_variant(Integer(), "sqlite")

insurers = Table(
    "insurers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("amc_number", String(10), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("kind", String(20), nullable=False),  # mutuelle | prevoyance | assureur
    Column("created_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("kind IN ('mutuelle', 'prevoyance', 'assureur')", name="kind"),
)

# Wrapped data keys, one set per scope ("insurer:<amc>" or "operator") and version.
# The key-encryption key that unwraps them is never in this database.
data_keys = Table(
    "data_keys",
    metadata,
    Column("scope", String(40), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("kek_id", String(64), nullable=False),
    Column("wrapped", LargeBinary, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

catalogues = Table(
    "catalogues",
    metadata,
    Column("insurer_id", Integer, ForeignKey("insurers.id"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("document", Text, nullable=False),  # canonical JSON of the validated catalogue
    Column("digest", String(64), nullable=False),
    Column("uploaded_at", DateTime(timezone=True), nullable=False),
    Column("uploaded_by", String(200), nullable=False),
)

beneficiaries = Table(
    "beneficiaries",
    metadata,
    Column("insurer_id", Integer, ForeignKey("insurers.id"), primary_key=True),
    Column("id", BigId, primary_key=True, autoincrement=False),
    # Keyed blind indexes (HMAC under the insurer's index key): exact match only.
    Column("idx_nir", LargeBinary(16), nullable=False),  # NIR + birth rank
    Column("idx_member", LargeBinary(16), nullable=False),  # member number + birth date
    Column("idx_family", LargeBinary(16), nullable=False),  # member number alone
    Column("key_version", Integer, nullable=False),
    Column("nir_ct", LargeBinary, nullable=False),
    Column("member_number_ct", LargeBinary, nullable=False),
    Column("birth_date_ct", LargeBinary, nullable=False),
    Column("last_name_ct", LargeBinary, nullable=False),
    Column("first_name_ct", LargeBinary, nullable=False),
    Column("birth_rank", SmallInteger, nullable=False),
    Column("sex", String(1), nullable=False),
    Column("quality", String(10), nullable=False),
    Column("birth_year", SmallInteger, nullable=False),  # for age rules; not identifying alone
    Column("contract_code", String(40), nullable=False),
    Column("coverage_start", Date, nullable=False),
    Column("coverage_end", Date, nullable=True),
    Column("css", Boolean, nullable=False, default=False),
    Column("is_canary", Boolean, nullable=False, default=False),
    Column("row_digest", LargeBinary(16), nullable=False),  # keyed digest of the source line
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("insurer_id", "idx_nir", name="uq_beneficiaries_nir"),
    Index("ix_beneficiaries_member", "insurer_id", "idx_member"),
    Index("ix_beneficiaries_family", "insurer_id", "idx_family"),
)

providers = Table(
    "providers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("am_number", String(9), nullable=False, unique=True),
    Column("rpps", String(11), nullable=True),
    Column("finess", String(9), nullable=True),
    Column("siret", String(14), nullable=True),
    Column("category", String(20), nullable=False),
    Column("name", String(200), nullable=False),
    Column("optam", Boolean, nullable=False, default=False),
    Column("iban_ct", LargeBinary, nullable=True),
    Column("bic", String(11), nullable=True),
    Column("key_version", Integer, nullable=True),
    Column("status", String(12), nullable=False, default="active"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_providers_finess", "finess"),
)

conventions = Table(
    "conventions",
    metadata,
    Column("insurer_id", Integer, ForeignKey("insurers.id"), primary_key=True),
    Column("provider_id", Integer, ForeignKey("providers.id"), primary_key=True),
    Column("domain", String(5), primary_key=True),
    Column("valid_from", Date, nullable=False),
    Column("valid_to", Date, nullable=True),
)

# API clients of provider software (OAuth2 client credentials), bound to one provider.
api_clients = Table(
    "api_clients",
    metadata,
    Column("client_id", String(64), primary_key=True),
    Column("provider_id", Integer, ForeignKey("providers.id"), nullable=False),
    Column("secret_digest", LargeBinary(32), nullable=False),
    Column("label", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Index("ix_api_clients_provider", "provider_id"),
)

access_tokens = Table(
    "access_tokens",
    metadata,
    Column("token_digest", LargeBinary(32), primary_key=True),
    Column("principal", String(120), nullable=False),
    Column("client_id", String(64), ForeignKey("api_clients.client_id"), nullable=True),
    Column("provider_id", Integer, ForeignKey("providers.id"), nullable=True),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Index("ix_access_tokens_principal", "principal"),
)

# Principals that can be suspended (providers' clients, portal accounts, staff).
principals = Table(
    "principals",
    metadata,
    Column("id", String(120), primary_key=True),
    Column("kind", String(20), nullable=False),
    Column("status", String(12), nullable=False),  # active | suspended
    Column("status_reason", String(200), nullable=True),
    Column("status_changed_at", DateTime(timezone=True), nullable=True),
)

# Append-only, hash-chained; the database refuses UPDATE and DELETE (see migrations).
# On PostgreSQL partitioned by month of ``at`` (migration 0018), which the primary key
# must then include; ``seq`` stays unique by the append path's lock and the hash chain
# (SQLite keeps its key on ``seq`` alone: the agreement test does not compare keys).
audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", BigId, primary_key=True, autoincrement=False),
    Column("at", DateTime(timezone=True), primary_key=True, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("structure", String(20), nullable=True),
    Column("action", String(60), nullable=False),
    Column("purpose", String(60), nullable=True),
    Column("subject", String(64), nullable=True),
    Column("insurer", String(10), nullable=True),
    Column("decision", String(20), nullable=False),
    Column("detail", Text, nullable=False),
    Column("prev_hash", LargeBinary(32), nullable=False),
    Column("hash", LargeBinary(32), nullable=False),
    Index("ix_audit_events_actor_at", "actor", "at"),
    Index("ix_audit_events_structure_at", "structure", "at"),
    Index("ix_audit_events_subject", "subject"),
)

# Idempotency of retried writes: the first answer is kept and replayed.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("scope", String(120), primary_key=True),
    Column("key", String(120), primary_key=True),
    Column("request_digest", LargeBinary(32), nullable=False),
    Column("response", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Hash-partitioned by insurer on PostgreSQL (migration 0018): the key leads with
# insurer_id there; SQLite keeps ``id`` alone as its key (a rowid that numbers the runs).
import_runs = Table(
    "import_runs",
    metadata,
    Column("id", Integer, nullable=False, autoincrement=True),
    Column("insurer_id", Integer, ForeignKey("insurers.id"), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("mode", String(12), nullable=False),
    Column("file_digest", String(64), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("lines", Integer, nullable=False, default=0),
    Column("inserted", Integer, nullable=False, default=0),
    Column("updated", Integer, nullable=False, default=0),
    Column("unchanged", Integer, nullable=False, default=0),
    Column("terminated", Integer, nullable=False, default=0),
    Column("rejected", Integer, nullable=False, default=0),
    Column("status", String(12), nullable=False),
    PrimaryKeyConstraint("insurer_id", "id"),
    Index("ix_import_runs_id", "id"),
)

__all__ = [
    "access_tokens",
    "api_clients",
    "audit_events",
    "beneficiaries",
    "catalogues",
    "conventions",
    "data_keys",
    "idempotency_keys",
    "import_runs",
    "insurers",
    "metadata",
    "principals",
    "providers",
]
