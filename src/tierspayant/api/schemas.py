"""Request and response bodies. Unknown fields are refused; answers carry no identity data."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from tierspayant.domain.care import CareDomain, Exemption
from tierspayant.domain.pricing import PricingLine, RssClass
from tierspayant.services.identification import CardData
from tierspayant.services.lookup import NO_PROOF, CardProof


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


AmcNumber = Annotated[str, Field(min_length=8, max_length=10, pattern=r"^[0-9]+$")]
Nir = Annotated[str, Field(min_length=15, max_length=21)]
BirthRank = Annotated[int, Field(strict=True, ge=1, le=9)]
MemberNumber = Annotated[str, Field(min_length=1, max_length=20, pattern=r"^[0-9A-Za-z-]+$")]
# The text of the card's 2D code, as scanned: ``TP1:`` then base45 (which may end with a
# space, hence no stripping). Format in docs/cards.md. Its grammar is checked by the
# lookup, so that a misread gets its own code (``422 card.misread``) and is counted as
# one, rather than a schema error.
CardProofText = Annotated[
    str, StringConstraints(strip_whitespace=False, min_length=1, max_length=2000)
]


class CardIn(Strict):
    """What the card shows: the insurer's number and the beneficiary's identifiers."""

    amc_number: AmcNumber
    birth_date: date
    nir: Nir | None = None
    birth_rank: BirthRank | None = None
    member_number: MemberNumber | None = None


class EligibilityIn(Strict):
    card: CardIn
    care_date: date
    domains: Annotated[list[CareDomain], Field(min_length=1, max_length=13)]
    card_proof: CardProofText | None = Field(
        default=None, description="the scanned 2D code of the card: normal quotas when valid"
    )


class DomainRightOut(BaseModel):
    domain: CareDomain
    covered: bool
    tiers_payant: bool
    coverage_code: str | None
    valid_until: date | None


class EligibilityOut(BaseModel):
    care_date: date
    rights: list[DomainRightOut]
    engagement_number: str | None = Field(
        default=None,
        description="the engagement number (ENG1-R-…) when a domain is answered covered: "
        "the invoice carries it; absent from every other answer",
    )


class TokenOut(BaseModel):
    access_token: str
    token_type: str
    expires_in: int


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorOut(BaseModel):
    error: ErrorDetail


# Numbers and flags are strict: "3000" or 1 for true is a client bug to report, not to guess.
Cents = Annotated[int, Field(strict=True, ge=0, le=100_000_000)]
Flag = Annotated[bool, Field(strict=True)]


class LineIn(Strict):
    """One line of a prospective invoice. Amounts are integer cents."""

    act_code: Annotated[str, Field(min_length=1, max_length=16, pattern=r"^[A-Z0-9.+-]+$")]
    domain: CareDomain
    family: Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[a-z0-9_]+$")]
    quantity: Annotated[int, Field(strict=True, ge=1, le=999)] = 1
    billed_cents: Cents
    br_cents: Cents
    amo_rate_bp: Annotated[int, Field(strict=True, ge=0, le=10_000)] | None = None
    exemption: Exemption = Exemption.NONE
    in_care_pathway: Flag = True
    rss_class: RssClass | None = None
    plv_cents: Cents | None = None
    psychiatry: Flag = False


class CalculationIn(Strict):
    card: CardIn
    care_date: date
    lines: Annotated[list[LineIn], Field(min_length=1, max_length=99)]
    maternity: Flag = False
    card_proof: CardProofText | None = Field(
        default=None, description="the scanned 2D code of the card: normal quotas when valid"
    )


class LineOut(BaseModel):
    act_code: str
    domain: CareDomain
    family: str
    quantity: int
    billed_cents: int
    br_cents: int
    amo_rate_bp: int
    amo_base_cents: int
    participation_cents: int
    franchise_cents: int
    amo_paid_cents: int
    tm_cents: int
    depassement_cents: int
    amc_cents: int
    patient_cents: int
    rules: list[str]


class TotalsOut(BaseModel):
    billed_cents: int
    br_cents: int
    amo_base_cents: int
    participation_cents: int
    franchise_cents: int
    amo_paid_cents: int
    tm_cents: int
    depassement_cents: int
    amc_cents: int
    patient_cents: int


class CounterOut(BaseModel):
    amount_cents: int
    count: int


class CalculationOut(BaseModel):
    contract_code: str
    care_date: date
    lines: list[LineOut]
    totals: TotalsOut
    counter_consumption: dict[str, CounterOut]
    renewals: dict[str, date]
    # The engagement on amounts (ENG1-C-…): the AMC amount reserved for the invoice that
    # carries this number, until ``engagement_valid_until``.
    engagement_number: str | None = None
    engagement_valid_until: date | None = None


class CardKeyOut(BaseModel):
    """A card-signing public key: provider software verifies 2D codes offline with it."""

    amc_number: str
    key_id: str
    algorithm: str
    public_key: str  # base64url of the 32-byte raw Ed25519 public key, no padding
    active: bool
    created_at: datetime


class CardKeysOut(BaseModel):
    keys: list[CardKeyOut]


class CardDecodeIn(Strict):
    """The text a reader typed from a card's DataMatrix (``TPH1|…``) or QR code (``TP1:…``).

    Not stripped: base45 may end with a space. Its grammar is checked by the service, so
    that a misread gets its own code (``card.misread``) rather than a schema error.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)
    payload: Annotated[str, Field(min_length=1, max_length=2000)]


class RightOut(BaseModel):
    domain: CareDomain
    tiers_payant: bool
    coverage_code: str


class BeneficiaryRightsOut(BaseModel):
    """One beneficiary's rights as printed, in the card's order. The birth date printed
    beside them is not restated: a provider's answers never describe a person, even one
    whose card the caller holds (software that needs it reads the code itself)."""

    rank: int
    rights: list[RightOut]


class HarmonisedCardOut(BaseModel):
    """The standard box and rights as printed on the card (layout ``TPH1``)."""

    layout: str
    amc_number: str
    convention_type: str
    routing_criterion: str
    member_number: str
    valid_from: date
    valid_until: date
    responsable: bool
    beneficiaries: list[BeneficiaryRightsOut]


class CardDecodeOut(BaseModel):
    """``proof``: ``valid``, ``invalid`` or ``absent``; ``card`` is null for a QR code."""

    proof: str
    serial: str | None
    key_id: str | None
    card: HarmonisedCardOut | None


def card_data(card: CardIn) -> CardData:
    """The services' view of a card in a request body."""
    return CardData(
        amc_number=card.amc_number,
        birth_date=card.birth_date,
        nir=card.nir,
        birth_rank=card.birth_rank,
        member_number=card.member_number,
    )


def card_proof(text: str | None) -> CardProof:
    """The scanned 2D code, or the absence of one."""
    return NO_PROOF if text is None else CardProof(text)


def pricing_line(line: LineIn) -> PricingLine:
    """The domain's view of a line in a request body."""
    return PricingLine(
        act_code=line.act_code,
        domain=line.domain,
        family=line.family,
        quantity=line.quantity,
        billed_cents=line.billed_cents,
        br_cents=line.br_cents,
        amo_rate_bp=line.amo_rate_bp,
        exemption=line.exemption,
        in_care_pathway=line.in_care_pathway,
        rss_class=line.rss_class,
        plv_cents=line.plv_cents,
        psychiatry=line.psychiatry,
    )
