"""The claims officer's desk in the insurer portal: the undue amounts (indus) of the
insurer and their recovery, the flagging of a paid line by its invoice number, and the
catalogue in force with its editions.

Every read is scoped by the insurer id the portal takes from the staff member's session.
Flagging goes through :func:`services.overpayments.flag_undue` (reversal, ledger, audit):
this module only finds the claim an invoice number names.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from tierspayant.app.platform import Platform
from tierspayant.domain import labels
from tierspayant.domain.codes import ClaimCode, PaymentCode
from tierspayant.domain.guarantees import Catalogue
from tierspayant.security.principal import Principal
from tierspayant.services import overpayments
from tierspayant.services.errors import Conflict, NotFound, ServiceError
from tierspayant.store import insurers as insurer_store
from tierspayant.store import overpayments as store
from tierspayant.store.insurers import CatalogueEdition

UNDUE_ROWS = 500  # the page lists the newest; the totals count them all
# The reasons a claims officer picks from (``claim.corrected`` is written by corrections).
SELECTABLE_REASONS = tuple(code for code in labels.UNDUE_REASONS if code != "claim.corrected")


class UndueState(StrEnum):
    """Where the recovery of one undue amount stands (labels: ``undue_state``)."""

    TO_RECOVER = "to_recover"
    PARTIAL = "partial"
    RECOVERED = "recovered"


@dataclass(frozen=True, slots=True)
class Recovery:
    """What one payment run deducted from the provider's payment for an undue amount."""

    run_key: str
    run_date: date
    cents: int


@dataclass(frozen=True, slots=True)
class UndueAmount:
    claim_id: int
    line_no: int
    invoice_number: str
    provider_name: str
    provider_am_number: str
    cents: int
    recovered_cents: int
    reason_code: str
    flagged_at: datetime
    recoveries: tuple[Recovery, ...]

    @property
    def remaining_cents(self) -> int:
        return self.cents - self.recovered_cents

    @property
    def state(self) -> UndueState:
        if self.recovered_cents <= 0:
            return UndueState.TO_RECOVER
        if self.recovered_cents < self.cents:
            return UndueState.PARTIAL
        return UndueState.RECOVERED


@dataclass(frozen=True, slots=True)
class UndueBook:
    """The insurer's undue amounts (the newest :data:`UNDUE_ROWS`) and totals over all."""

    rows: tuple[UndueAmount, ...]
    count: int
    flagged_cents: int
    recovered_cents: int

    @property
    def remaining_cents(self) -> int:
        return self.flagged_cents - self.recovered_cents

    @property
    def truncated(self) -> bool:
        return self.count > len(self.rows)


def undue_book(platform: Platform, insurer_id: int, limit: int = UNDUE_ROWS) -> UndueBook:
    """Every undue amount of the insurer with the payment runs that recovered it."""
    with platform.engine.connect() as conn:
        rows = store.undue_rows(conn, insurer_id, limit)
        count, flagged, recovered = store.undue_totals(conn, insurer_id)
        taken = store.recoveries_of(conn, insurer_id, sorted({r.claim_id for r in rows}))
    by_line: dict[tuple[int, int], list[Recovery]] = defaultdict(list)
    for item in taken:
        by_line[(item.claim_id, item.line_no)].append(
            Recovery(item.run_key, item.run_date, item.cents)
        )
    amounts = tuple(
        UndueAmount(
            row.claim_id,
            row.line_no,
            row.invoice_number,
            row.provider_name,
            row.provider_am_number,
            row.cents,
            row.recovered_cents,
            row.reason_code,
            row.flagged_at,
            tuple(by_line.get((row.claim_id, row.line_no), ())),
        )
        for row in rows
    )
    return UndueBook(amounts, count, flagged, recovered)


@dataclass(frozen=True, slots=True)
class FlaggedInvoice:
    invoice_number: str
    provider_name: str
    undue: overpayments.UndueLine


def flag_undue_by_invoice(
    platform: Platform,
    principal: Principal,
    invoice_number: str,
    line_no: int,
    reason_code: str,
    provider: str | None = None,
) -> FlaggedInvoice:
    """Declare a paid line undue, the invoice named by its number as printed on it.

    Two providers may number an invoice the same: then ``provider`` (its AM number,
    FINESS or RPPS) says which. Idempotent like :func:`overpayments.flag_undue`.
    """
    if reason_code not in SELECTABLE_REASONS:
        raise ServiceError(
            PaymentCode.OVERPAYMENT_REASON, "choose a reason from the list", field="reason_code"
        )
    insurer_id = principal.insurer_id
    matches = []
    if insurer_id is not None:
        with platform.engine.connect() as conn:
            matches = store.invoices_numbered(conn, insurer_id, invoice_number)
    if provider:
        matches = [
            m
            for m in matches
            if provider in (m.provider_am_number, m.provider_finess, m.provider_rpps)
        ]
    if not matches:
        # Another insurer's invoice gets the same answer as an invoice that does not exist.
        raise NotFound(ClaimCode.UNKNOWN, "no such invoice", field="invoice_number")
    if len(matches) > 1:
        raise Conflict(
            PaymentCode.OVERPAYMENT_INVOICE_AMBIGUOUS,
            "several providers sent an invoice with this number: name the provider",
            field="provider",
        )
    match = matches[0]
    flagged = overpayments.flag_undue(platform, principal, match.claim_id, line_no, reason_code)
    return FlaggedInvoice(invoice_number, match.provider_name, flagged)


@dataclass(frozen=True, slots=True)
class CatalogueInForce:
    """The insurer's newest catalogue (None before the first upload) and its editions."""

    catalogue: Catalogue | None
    editions: tuple[CatalogueEdition, ...]

    @property
    def current(self) -> CatalogueEdition | None:
        return self.editions[0] if self.editions else None


def catalogue_in_force(platform: Platform, insurer_id: int) -> CatalogueInForce:
    """The catalogue the calculation uses today for the insurer, and its history."""
    with platform.engine.connect() as conn:
        editions = insurer_store.catalogue_editions(conn, insurer_id)
        catalogue = platform.catalogues.latest(conn, insurer_id)
    return CatalogueInForce(catalogue, tuple(editions))
