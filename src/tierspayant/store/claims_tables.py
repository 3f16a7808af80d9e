"""Prior authorisations, invoices (claims) and their lines, with adjudication decisions.

Insurer-owned: every primary key leads with ``insurer_id``. A claim is identified for
its provider by ``(provider_id, invoice_number)``; a correction is a new version of the
same claim (``version`` + 1), the earlier version is marked ``superseded``.

Line ``status``: ``received`` → ``accepted`` | ``reduced`` | ``rejected`` (adjudication)
→ later ``cancelled`` or ``undue`` (after payment; reversal and recovery in the ledger).
Amounts are integer cents. Money actually paid to providers is tracked by the payment
run's own tables (``ledger_tables``), never by updating these rows' amounts.

``beneficiary_id`` 0 on a claim means "the card data matched nobody": the claim is kept
(so the provider gets the same kind of answer as for a person not covered) and rejected
by adjudication with ``rights.none``. ``benefit_counters`` holds what each adjudicated
claim consumed of the contract's ceilings and renewal periods, one row per (claim,
counter, care date), so that a rolling window is a sum and a withdrawn claim gives back
exactly what it took.
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
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)

from tierspayant.domain.claims import ClaimStatus
from tierspayant.store.tables import BigId, metadata

prior_authorisations = Table(
    "prior_authorisations",
    metadata,
    Column("insurer_id", Integer, ForeignKey("insurers.id"), primary_key=True),
    Column("id", BigId, primary_key=True, autoincrement=False),
    Column("agreement_number", String(24), nullable=False),
    Column("provider_id", Integer, ForeignKey("providers.id"), nullable=False),
    Column("beneficiary_id", BigInteger, nullable=False),
    Column("request_key", String(80), nullable=False),  # the provider's idempotency key
    Column("domain", String(5), nullable=False),
    Column("care_date", Date, nullable=False),
    Column("status", String(12), nullable=False),  # granted | refused | pending | expired
    Column("reason_code", String(60), nullable=True),
    Column("reason", Text, nullable=True),
    Column("valid_until", Date, nullable=True),
    Column("guaranteed_cents", BigInteger, nullable=False, default=0),
    Column("lines", Text, nullable=False),  # JSON: quote lines with guaranteed amounts
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Column("decided_by", String(120), nullable=True),
    Column("request_digest", LargeBinary(32), nullable=True),  # same key, same body?
    # Partitioned by insurer on PostgreSQL (migration 0018): the unique keys include
    # insurer_id there (agreement numbers are unique anyway: they carry the global id),
    # and plain indexes serve the lookups by number and by the provider's request key.
    # SQLite keeps the narrower unique keys of migration 0004 (the agreement test knows).
    UniqueConstraint(
        "insurer_id", "agreement_number", name="uq_prior_authorisations_agreement_number"
    ),
    UniqueConstraint(
        "insurer_id", "provider_id", "request_key", name="uq_prior_authorisations_request"
    ),
    Index("ix_prior_authorisations_number", "agreement_number"),
    Index("ix_prior_authorisations_request", "provider_id", "request_key"),
    CheckConstraint("status IN ('granted', 'refused', 'pending', 'expired')", name="status"),
)

# Written as a literal, in the index and in the queries it serves: SQLite uses a partial
# index only for a query whose WHERE states the same condition, not a bound parameter.
QUEUE_CONDITION = f"status = '{ClaimStatus.RECEIVED.value}'"

claims = Table(
    "claims",
    metadata,
    Column("insurer_id", Integer, ForeignKey("insurers.id"), primary_key=True),
    Column("id", BigId, primary_key=True, autoincrement=False),
    Column("provider_id", Integer, ForeignKey("providers.id"), nullable=False),
    Column("invoice_number", String(40), nullable=False),
    Column("version", SmallInteger, nullable=False, default=1),
    Column("beneficiary_id", BigInteger, nullable=False),
    Column("care_date", Date, nullable=False),
    Column("agreement_number", String(24), nullable=True),
    Column("request_digest", LargeBinary(32), nullable=False),  # idempotency: same body?
    Column("status", String(12), nullable=False),  # received|adjudicated|superseded|cancelled
    Column("source", String(12), nullable=False),  # api | file
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("adjudicated_at", DateTime(timezone=True), nullable=True),
    Column("billed_cents", BigInteger, nullable=False),
    Column("amc_requested_cents", BigInteger, nullable=False),
    Column("amc_accepted_cents", BigInteger, nullable=False, default=0),
    # Age in whole years on the care date, from the birth date the card data matched.
    Column("beneficiary_age", SmallInteger, nullable=True),
    Column("maternity", Boolean, nullable=False, default=False, server_default=false()),
    Column("submitted_by", String(120), nullable=True),  # principal id, or file import
    Column("reason_code", String(60), nullable=True),  # why superseded or cancelled
    # The engagement number of the rights check the invoice carries (sealed, opened
    # again by adjudication; checked at intake).
    Column("engagement_number", String(160), nullable=True),
    # With insurer_id, as partitioning by insurer requires (migration 0018; SQLite keeps
    # the narrower key). The intake looks an invoice up by provider and number under the
    # allocation lock, through ix_claims_provider_invoice, before inserting a version.
    UniqueConstraint(
        "insurer_id",
        "provider_id",
        "invoice_number",
        "version",
        name="uq_claims_provider_invoice_version",
    ),
    Index("ix_claims_provider_invoice", "provider_id", "invoice_number", "version"),
    # The adjudication queue: the received claims only, in (insurer, id) order. Partial,
    # so that a batch does not step over the claims already judged (with the former
    # (insurer, status) index SQLite walked the primary key and filtered), and so that no
    # query of adjudicated claims is ever planned through it (a full (status, insurer,
    # id) index drew SQLite's per-provider payment query away from the provider index).
    Index(
        "ix_claims_queue",
        "insurer_id",
        "id",
        sqlite_where=text(QUEUE_CONDITION),
        postgresql_where=text(QUEUE_CONDITION),
    ),
    Index("ix_claims_beneficiary", "insurer_id", "beneficiary_id", "care_date"),
    Index("ix_claims_agreement", "agreement_number"),
    # The claims desk's search and provider page (migration 0016).
    Index("ix_claims_insurer_care", "insurer_id", "care_date", "id"),
    Index("ix_claims_insurer_provider", "insurer_id", "provider_id", "care_date"),
    Index("ix_claims_insurer_invoice", "insurer_id", "invoice_number"),
)

claim_lines = Table(
    "claim_lines",
    metadata,
    Column("insurer_id", Integer, primary_key=True),
    Column("claim_id", BigInteger, primary_key=True),
    Column("line_no", SmallInteger, primary_key=True),
    Column("act_code", String(13), nullable=False),
    Column("domain", String(5), nullable=False),
    Column("family", String(40), nullable=True),
    Column("quantity", SmallInteger, nullable=False),
    Column("care_date", Date, nullable=False),
    Column("billed_cents", BigInteger, nullable=False),
    Column("br_cents", BigInteger, nullable=False),
    Column("amo_rate_bp", Integer, nullable=False),
    Column("amo_paid_cents", BigInteger, nullable=False),
    Column("amc_requested_cents", BigInteger, nullable=False),
    Column("detail", Text, nullable=True),  # JSON: exemption, pathway, 100 % Santé class…
    Column("status", String(12), nullable=False, default="received"),
    Column("amc_accepted_cents", BigInteger, nullable=False, default=0),
    Column("reason_code", String(60), nullable=True),
    Column("rules", Text, nullable=True),  # JSON: rules applied, in plain words
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Column("duplicate_key", LargeBinary(16), nullable=True),  # keyed digest for duplicates
    Column("is_counted", Boolean, nullable=False, default=False),  # ceilings consumed
    # Same beneficiary, act and date at any provider: finds near-duplicates.
    Column("near_key", LargeBinary(16), nullable=True),
    Column("amc_computed_cents", BigInteger, nullable=True),  # what the guarantee pays
    CheckConstraint(
        "status IN ('received', 'accepted', 'reduced', 'rejected', 'cancelled', 'undue')",
        name="status",
    ),
    Index("ix_claim_lines_status", "insurer_id", "status"),
    Index("ix_claim_lines_duplicate", "insurer_id", "duplicate_key"),
    Index("ix_claim_lines_near", "insurer_id", "near_key"),
)

# Lines paid on an engagement after the person's rights were ended retroactively (or the
# contract changed): what the insurer bears by the operator's word. One row per honoured
# line, written with the adjudication decision; kept when the claim is withdrawn
# (``withdrawn`` then says so, and the ledger has the mirror posting).
engaged_lines = Table(
    "engaged_lines",
    metadata,
    Column("insurer_id", Integer, primary_key=True),
    Column("claim_id", BigInteger, primary_key=True),
    Column("line_no", SmallInteger, primary_key=True),
    Column("provider_id", Integer, nullable=False),
    Column("care_date", Date, nullable=False),
    Column("domain", String(5), nullable=False),
    Column("contract_code", String(40), nullable=False),  # the contract engaged
    Column("cents", BigInteger, nullable=False),  # the AMC amount honoured
    Column("decided_at", DateTime(timezone=True), nullable=False),
    Column("withdrawn", Boolean, nullable=False, default=False, server_default=false()),
    Index("ix_engaged_lines_date", "insurer_id", "decided_at"),
)

# Engagements on amounts (kind ``C``): what a calculation promised, reserved against the
# person's ceilings until it is consumed by the invoice, cancelled, or past its validity
# (an expired row simply no longer counts: no job). ``uses`` is the JSON list of the
# counters the calculation would consume, ``[[key, cents, units], ...]``, ``lines`` the
# engaged AMC amount per line, ``[[act code, domain, cents], ...]``. ``id`` is random
# (the number seals it), ``digest`` the hash of the calculation's request, so that a
# retried calculation answers the same engagement.
amount_reservations = Table(
    "amount_reservations",
    metadata,
    Column("insurer_id", Integer, primary_key=True),
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("provider_id", Integer, nullable=False),
    Column("structure", String(64), nullable=False),
    Column("beneficiary_id", BigInteger, nullable=False),
    Column("domains", String(64), nullable=False),  # comma-separated care domains
    Column("care_date", Date, nullable=False),
    Column("valid_until", Date, nullable=False),
    Column("contract_code", String(40), nullable=False),
    Column("coverage_start", Date, nullable=False),
    Column("amc_cents", BigInteger, nullable=False),
    Column("uses", Text, nullable=False),
    Column("lines", Text, nullable=False),
    Column("digest", LargeBinary(32), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("cancelled_at", DateTime(timezone=True), nullable=True),
    Column("consumed_claim_id", BigInteger, nullable=True),
    Index("ix_amount_reservations_person", "insurer_id", "beneficiary_id", "valid_until"),
    Index("ix_amount_reservations_structure", "structure", "created_at"),
)

benefit_counters = Table(
    "benefit_counters",
    metadata,
    Column("insurer_id", Integer, primary_key=True),
    Column("beneficiary_id", BigInteger, primary_key=True),
    Column("counter_key", String(70), primary_key=True),  # a ceiling, or renewal.<key>
    Column("care_date", Date, primary_key=True),
    Column("claim_id", BigInteger, primary_key=True),
    Column("used_cents", BigInteger, nullable=False),
    Column("used_units", Integer, nullable=False),
    Index("ix_benefit_counters_claim", "insurer_id", "claim_id"),
)
