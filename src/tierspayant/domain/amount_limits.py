"""Amount limits: what an invoice may bill per care domain, and what one transfer may carry.

Two kinds of limits, both refusing a number no health invoice or bank would accept:

- **Ceilings by care domain** (plafonds de saisie): the most one invoice line, and the
  lines of one domain on one invoice, may bill. They catch typing errors and forged
  amounts at intake (``claim.line_ceiling``, ``claim.invoice_ceiling``), before anything
  is stored, priced or paid. The defaults below are set well above real prices (the
  dearest drugs sold in pharmacies, a progressive-lens optical device, a long stay in
  intensive care) and can be changed per domain (``TIERSPAYANT_AMOUNT_CEILINGS``).
- **The EPC per-transfer maximum**: a SEPA credit transfer carries at most
  999,999,999.99 € (EPC rulebook). A payment above it is written as several transfers
  (:func:`split_cents`), each under the maximum, whose sum is the payment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from tierspayant.domain.care import CareDomain

EPC_MAX_TRANSFER_CENTS = 99_999_999_999  # 999,999,999.99 EUR (EPC SCT rulebook)
# No configured ceiling goes above these: a line of 1,000,000 EUR is also the most the API
# and FHIR requests accept in one amount field, an invoice of 10,000,000 EUR is no care.
MAX_LINE_CEILING_CENTS = 100_000_000
MAX_INVOICE_CEILING_CENTS = 1_000_000_000
AMOUNT_FIELDS = ("br_cents", "billed_cents", "amo_paid_cents", "amc_requested_cents", "plv_cents")


@dataclass(frozen=True, slots=True)
class AmountCeiling:
    """The most one line, and all the lines of its domain on one invoice, may bill."""

    line_cents: int
    invoice_cents: int

    def __post_init__(self) -> None:
        line, invoice = self.line_cents, self.invoice_cents
        within = 1 <= line <= MAX_LINE_CEILING_CENTS and line <= invoice
        if not (within and invoice <= MAX_INVOICE_CEILING_CENTS):
            raise ValueError(
                f"a ceiling needs 1 <= line <= {MAX_LINE_CEILING_CENTS} and line <= invoice <= "
                f"{MAX_INVOICE_CEILING_CENTS} cents, got {line}/{invoice}"
            )


def _euros(line: int, invoice: int) -> AmountCeiling:
    return AmountCeiling(line * 100, invoice * 100)


DEFAULT_CEILINGS: Mapping[CareDomain, AmountCeiling] = MappingProxyType(
    {
        # A line: a box of the dearest drugs dispensed in town pharmacies (≈ 10-20 k€).
        CareDomain.PHAR: _euros(30_000, 100_000),
        CareDomain.MED: _euros(3_000, 10_000),
        CareDomain.LABO: _euros(5_000, 10_000),  # genetic panels ≈ 2-3 k€
        CareDomain.RADIO: _euros(5_000, 10_000),  # a PET scan ≈ 1 k€
        CareDomain.AUXM: _euros(3_000, 10_000),
        CareDomain.DENT: _euros(5_000, 30_000),  # an implant line; a full-mouth plan
        # An optical device: frame and two progressive lenses, each line well under 2 k€.
        CareDomain.OPTI: _euros(3_000, 6_000),
        CareDomain.AUDI: _euros(4_000, 8_000),  # one hearing aid per line, two ears
        # A hospital stay: months in intensive care reach a few hundred thousand euros.
        CareDomain.HOSP: _euros(500_000, 1_000_000),
        CareDomain.SAGE: _euros(3_000, 10_000),
        CareDomain.TRAN: _euros(20_000, 40_000),  # medical air transport
        CareDomain.CSTE: _euros(5_000, 30_000),
        CareDomain.EXTE: _euros(100_000, 200_000),  # hospital outpatient drugs
    }
)


@dataclass(frozen=True, slots=True)
class CeilingBreach:
    """Which amount broke which ceiling: the field, the rule and the numbers."""

    field: str
    rule: str  # "line" | "invoice"
    domain: CareDomain
    cents: int
    ceiling_cents: int


def euros_text(cents: int) -> str:
    """``123456`` → ``1234.56 EUR`` (messages: the amount as a person reads it)."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole}.{part:02d} EUR"


def line_breach(
    index: int,
    domain: CareDomain,
    amounts: Mapping[str, int | None],
    ceilings: Mapping[CareDomain, AmountCeiling],
) -> CeilingBreach | None:
    """The first amount of line ``index`` above its domain's line ceiling, if any."""
    ceiling = ceilings.get(domain, DEFAULT_CEILINGS[domain])
    for name in AMOUNT_FIELDS:
        value = amounts.get(name)
        if value is not None and value > ceiling.line_cents:
            field = f"lines[{index}].{name}"
            return CeilingBreach(field, "line", domain, value, ceiling.line_cents)
    return None


def invoice_breach(
    billed_by_line: list[tuple[CareDomain, int]], ceilings: Mapping[CareDomain, AmountCeiling]
) -> CeilingBreach | None:
    """The first domain whose lines together bill more than its invoice ceiling, if any.

    The whole invoice is also held to the largest invoice ceiling of its domains, so that
    mixing domains never adds their ceilings up.
    """
    totals: dict[CareDomain, int] = {}
    for domain, billed in billed_by_line:
        totals[domain] = totals.get(domain, 0) + billed
    for domain, total in totals.items():
        ceiling = ceilings.get(domain, DEFAULT_CEILINGS[domain]).invoice_cents
        if total > ceiling:
            return CeilingBreach("lines", "invoice", domain, total, ceiling)
    if not totals:
        return None
    widest = max(totals, key=lambda d: ceilings.get(d, DEFAULT_CEILINGS[d]).invoice_cents)
    ceiling = ceilings.get(widest, DEFAULT_CEILINGS[widest]).invoice_cents
    whole = sum(totals.values())
    if whole > ceiling:
        return CeilingBreach("lines", "invoice", widest, whole, ceiling)
    return None


def check_max_transfer(maximum: int) -> None:
    """Refuse a maximum of one transfer no bank takes: 1 cent to the EPC maximum.

    A payment run may cut its transfers lower than the EPC (tests do, to split small
    payments); never higher, and never at zero, which would cut nothing.
    """
    if not 1 <= maximum <= EPC_MAX_TRANSFER_CENTS:
        raise ValueError(
            f"the maximum of one transfer is 1 to {EPC_MAX_TRANSFER_CENTS} cents "
            f"(the EPC maximum), got {maximum}"
        )


def split_cents(cents: int, maximum: int = EPC_MAX_TRANSFER_CENTS) -> list[int]:
    """Cut a payment into the fewest transfers of at most ``maximum``, as even as possible.

    ``split_cents(250, 100) == [84, 83, 83]``: the parts sum to ``cents`` exactly, none is
    zero, and a payment within the maximum stays one transfer.
    """
    if cents < 0 or maximum < 1:
        raise ValueError("a payment to split is not negative and the maximum is positive")
    if cents <= maximum:
        return [cents]
    parts = -(-cents // maximum)
    base, extra = divmod(cents, parts)
    return [base + 1] * extra + [base] * (parts - extra)
