"""Invoices (claims) as the provider sends them: lines, states, digests.

A claim is identified for its provider by ``(provider, invoice_number)``. Sending the same
body again must find the first answer, so a claim carries a digest of its content
(:func:`submission_digest`); a different body under the same number is either a mistake
(refused) or an explicit correction (a new version that replaces the old one).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from functools import lru_cache
from typing import Any

from tierspayant.domain.amount_limits import (
    AMOUNT_FIELDS,
    DEFAULT_CEILINGS,
    AmountCeiling,
    euros_text,
    invoice_breach,
    line_breach,
)
from tierspayant.domain.care import CareDomain, Exemption
from tierspayant.domain.codes import ClaimCode
from tierspayant.domain.errors import DomainError
from tierspayant.domain.pricing import PricingLine, RssClass

INVOICE_NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,39}$")
ACT_CODE = re.compile(r"^[A-Z0-9][A-Z0-9.+-]{0,12}$")
MAX_LINES = 99
MAX_QUANTITY = 999
UNKNOWN_BENEFICIARY = 0  # the card data matched nobody (see claims_tables)


class ClaimError(DomainError):
    """An invoice is not well formed."""


class ClaimStatus(StrEnum):
    RECEIVED = "received"
    ADJUDICATED = "adjudicated"
    SUPERSEDED = "superseded"
    CANCELLED = "cancelled"


class LineStatus(StrEnum):
    RECEIVED = "received"
    ACCEPTED = "accepted"
    REDUCED = "reduced"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    UNDUE = "undue"


PAYABLE_LINE_STATES = frozenset({LineStatus.ACCEPTED, LineStatus.REDUCED})


@dataclass(frozen=True, slots=True)
class ClaimLine:
    """One invoiced act or product. Amounts are integer cents, the AMO rate in basis points."""

    act_code: str
    domain: CareDomain
    family: str
    quantity: int
    care_date: date
    br_cents: int
    billed_cents: int
    amo_rate_bp: int
    amo_paid_cents: int
    amc_requested_cents: int
    exemption: Exemption = Exemption.NONE
    in_care_pathway: bool = True
    rss_class: RssClass | None = None
    plv_cents: int | None = None
    psychiatry: bool = False

    def detail(self) -> dict[str, Any]:
        """The pricing facts kept beside the amounts (stored as JSON)."""
        return {
            "exemption": self.exemption.value,
            "in_care_pathway": self.in_care_pathway,
            "rss_class": None if self.rss_class is None else self.rss_class.value,
            "plv_cents": self.plv_cents,
            "psychiatry": self.psychiatry,
        }

    def pricing_line(self) -> PricingLine:
        """The line as the calculation engine reads it (with the rate the AMO applied)."""
        return PricingLine(
            act_code=self.act_code,
            domain=self.domain,
            family=self.family,
            quantity=self.quantity,
            billed_cents=self.billed_cents,
            br_cents=self.br_cents,
            amo_rate_bp=self.amo_rate_bp,
            exemption=self.exemption,
            in_care_pathway=self.in_care_pathway,
            rss_class=self.rss_class,
            plv_cents=self.plv_cents,
            psychiatry=self.psychiatry,
        )


def line_from_detail(
    *,
    act_code: str,
    domain: str,
    family: str,
    quantity: int,
    care_date: date,
    br_cents: int,
    billed_cents: int,
    amo_rate_bp: int,
    amo_paid_cents: int,
    amc_requested_cents: int,
    detail: str | None,
) -> ClaimLine:
    """Rebuild a stored line (the inverse of :meth:`ClaimLine.detail`)."""
    # Positional, in the field order of ClaimLine: this runs once per stored line read.
    return ClaimLine(
        act_code,
        _DOMAINS.get(domain) or CareDomain(domain),
        family,
        quantity,
        care_date,
        br_cents,
        billed_cents,
        amo_rate_bp,
        amo_paid_cents,
        amc_requested_cents,
        *_parse_detail(detail),
    )


_DOMAINS = {d.value: d for d in CareDomain}


@lru_cache(maxsize=4096)
def _parse_detail(
    detail: str | None,
) -> tuple[Exemption, bool, RssClass | None, int | None, bool]:
    """Most lines share a handful of details: each text is parsed once."""
    extra: dict[str, Any] = json.loads(detail) if detail else {}
    rss = extra.get("rss_class")
    plv = extra.get("plv_cents")
    return (
        Exemption(extra.get("exemption", Exemption.NONE.value)),
        bool(extra.get("in_care_pathway", True)),
        RssClass(rss) if rss else None,
        None if plv is None else int(plv),
        bool(extra.get("psychiatry", False)),
    )


@dataclass(frozen=True, slots=True)
class ClaimContent:
    """What an invoice says, apart from who it is about (the card data)."""

    invoice_number: str
    care_date: date
    lines: tuple[ClaimLine, ...]
    agreement_number: str | None = None
    maternity: bool = False
    engagement_number: str | None = None  # from a rights check (domain/engagements.py)

    @property
    def billed_cents(self) -> int:
        return sum(line.billed_cents for line in self.lines)

    @property
    def amc_requested_cents(self) -> int:
        return sum(line.amc_requested_cents for line in self.lines)


def check_content(
    content: ClaimContent, ceilings: Mapping[CareDomain, AmountCeiling] = DEFAULT_CEILINGS
) -> None:
    """Refuse an invoice that cannot be stored as one: numbering, size, signs, codes, ceilings.

    Each refusal names the field and the rule it broke. An AMC share asked above what the
    AMO left (billed − AMO paid) is refused here, at once: no contract can pay it. So is an
    amount above its care domain's ceiling (``ceilings``, :mod:`domain.amount_limits`), per
    line and per invoice. Whether the other amounts are *consistent* (AMO paid within the
    rate, the engine's checks) is for adjudication to judge, line by line, with a reason
    code (adjudication checks the cost again, as a second line of defence).
    """
    if not INVOICE_NUMBER.match(content.invoice_number):
        raise ClaimError(
            ClaimCode.INVOICE_NUMBER,
            "invoice_number: 1 to 40 letters, digits, '.', '_', '/', '-', starting with a "
            "letter or digit",
            field="invoice_number",
        )
    if not 1 <= len(content.lines) <= MAX_LINES:
        raise ClaimError(
            ClaimCode.LINES, f"lines: an invoice has 1 to {MAX_LINES} lines", field="lines"
        )
    for index, line in enumerate(content.lines):
        _check_line(index, line, ceilings)
    breach = invoice_breach([(line.domain, line.billed_cents) for line in content.lines], ceilings)
    if breach is not None:
        raise ClaimError(
            ClaimCode.INVOICE_CEILING,
            f"lines: the {breach.domain.value} lines of this invoice bill "
            f"{euros_text(breach.cents)}, above the invoice ceiling of "
            f"{euros_text(breach.ceiling_cents)} for {breach.domain.value}",
            field=breach.field,
        )


def _check_line(index: int, line: ClaimLine, ceilings: Mapping[CareDomain, AmountCeiling]) -> None:
    where = f"lines[{index}]"
    if not ACT_CODE.match(line.act_code):
        raise ClaimError(
            ClaimCode.ACT_CODE,
            f"{where}.act_code: 1 to 13 capital letters, digits, '.', '+', '-'",
            field=f"{where}.act_code",
        )
    if not 1 <= line.quantity <= MAX_QUANTITY:
        raise ClaimError(
            ClaimCode.QUANTITY,
            f"{where}.quantity: from 1 to {MAX_QUANTITY}",
            field=f"{where}.quantity",
        )
    amounts = {name: getattr(line, name) for name in AMOUNT_FIELDS}
    for name, value in amounts.items():
        if value is not None and value < 0:
            raise ClaimError(
                ClaimCode.NEGATIVE,
                f"{where}.{name}: an amount in cents may not be negative",
                field=f"{where}.{name}",
            )
    if not 0 <= line.amo_rate_bp <= 10_000:
        raise ClaimError(
            ClaimCode.AMO_RATE,
            f"{where}.amo_rate_bp: the AMO rate is 0 to 10000 basis points (0 to 100 %)",
            field=f"{where}.amo_rate_bp",
        )
    breach = line_breach(index, line.domain, amounts, ceilings)
    if breach is not None:
        raise ClaimError(
            ClaimCode.LINE_CEILING,
            f"{breach.field}: {euros_text(breach.cents)} is above the ceiling of a "
            f"{line.domain.value} line, {euros_text(breach.ceiling_cents)}",
            field=breach.field,
        )
    cost_left = line.billed_cents - line.amo_paid_cents
    if line.amc_requested_cents > cost_left:
        raise ClaimError(
            ClaimCode.AMC_ABOVE_COST,
            f"{where}.amc_requested_cents: AMC asked {line.amc_requested_cents} cents > "
            f"billed − AMO paid {cost_left} cents",
            field=f"{where}.amc_requested_cents",
        )


def submission_digest(card: dict[str, Any], content: ClaimContent) -> bytes:
    """SHA-256 of the canonical JSON of an invoice: equal bodies, equal digests."""
    document = {
        "card": card,
        "invoice_number": content.invoice_number,
        "care_date": content.care_date.isoformat(),
        "agreement_number": content.agreement_number,
        "maternity": content.maternity,
        "lines": [
            {
                "act_code": line.act_code,
                "domain": line.domain.value,
                "family": line.family,
                "quantity": line.quantity,
                "care_date": line.care_date.isoformat(),
                "br_cents": line.br_cents,
                "billed_cents": line.billed_cents,
                "amo_rate_bp": line.amo_rate_bp,
                "amo_paid_cents": line.amo_paid_cents,
                "amc_requested_cents": line.amc_requested_cents,
                **line.detail(),
            }
            for line in content.lines
        ],
    }
    if content.engagement_number is not None:
        # Only when present: digests of invoices without one are unchanged.
        document["engagement_number"] = content.engagement_number
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).digest()


def duplicate_key(beneficiary_id: int, act_code: str, care_date: date, provider_id: int) -> bytes:
    """Digest of what makes two lines the same care from the same provider."""
    text = f"{beneficiary_id}|{act_code}|{care_date.isoformat()}|{provider_id}"
    return hashlib.blake2b(text.encode(), digest_size=16, person=b"tp.dup").digest()


def near_key(beneficiary_id: int, act_code: str, care_date: date) -> bytes:
    """Digest of the same care for the same person on the same day, at any provider."""
    text = f"{beneficiary_id}|{act_code}|{care_date.isoformat()}"
    return hashlib.blake2b(text.encode(), digest_size=16, person=b"tp.near").digest()
