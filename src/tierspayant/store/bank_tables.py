"""Provider bank details changes and returned credit transfers (migration 0014).

``provider_bank_changes`` holds every request to change a provider's bank account, from
the request to its verification by a second person and the end of its cooling-off
period; the account a payment run pays stays ``providers.iban_ct`` until a verified
change is applied there. ``provider_transfer_returns`` records each credit transfer to a
provider that its bank returned (pain.002 reject or camt.054 return), once per
end-to-end id, and the payment run that paid it again.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
)

from tierspayant.store.tables import metadata

provider_bank_changes = Table(
    "provider_bank_changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("provider_id", Integer, nullable=False),
    # Encrypted with the operator key and the providers row's associated data, so an
    # applied change is copied to ``providers.iban_ct`` as it is.
    Column("iban_ct", LargeBinary, nullable=False),
    Column("key_version", Integer, nullable=False),
    Column("bic", String(11), nullable=True),
    Column("iban_tail", String(4), nullable=False),  # shown to people: the last 4 characters
    Column("status", String(12), nullable=False),
    Column("requested_by", String(120), nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("verified_by", String(120), nullable=True),
    Column("verified_at", DateTime(timezone=True), nullable=True),
    Column("method", String(20), nullable=True),  # second_person | provider_contact
    Column("effective_on", Date, nullable=True),  # first payment date to the new account
    Column("closed_at", DateTime(timezone=True), nullable=True),  # applied or refused
    CheckConstraint("status IN ('pending', 'verified', 'applied', 'refused')", name="status"),
    CheckConstraint(
        "status = 'pending' OR status = 'refused' OR "
        "(verified_by IS NOT NULL AND effective_on IS NOT NULL AND verified_by <> requested_by)",
        name="verified",
    ),
    Index("ix_provider_bank_changes_provider", "provider_id", "status"),
)

provider_transfer_returns = Table(
    "provider_transfer_returns",
    metadata,
    Column("end_to_end_id", String(35), primary_key=True),  # TP<date>-<provider>
    Column("provider_id", Integer, nullable=False),
    Column("run_key", String(60), nullable=False),  # the payment run that sent it
    Column("cents", BigInteger, nullable=False),  # the transfer, returned whole
    Column("reason_code", String(35), nullable=False),  # AC04 closed account, AC01…
    Column("report_id", String(35), nullable=False),  # MsgId of the bank's file
    Column("value_date", Date, nullable=False),
    # The account the transfer went to: 0 the registered one, else the bank change
    # applied. Paid again only once the provider's account is another one.
    Column("account_version", Integer, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("recorded_by", String(120), nullable=False),
    Column("reissue_run_key", String(60), nullable=True),
    CheckConstraint("cents > 0", name="cents"),
    Index("ix_provider_transfer_returns_provider", "provider_id", "reissue_run_key"),
)
