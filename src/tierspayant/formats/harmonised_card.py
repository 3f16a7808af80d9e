"""The text of the harmonised card's DataMatrix (layout v1): fields ⇄ text.

The inter-insurer harmonised card (attestation de tiers payant harmonisée) prints a
standard box (AMC number, type de convention, critère secondaire de routage, member
number, validity) and a DataMatrix that provider software reads without typing. The
inter-insurer byte specification is not public: this is our own layout, versioned by its
prefix (``TPH1``) and documented in ``docs/cards.md``, to be aligned once obtained.

One line of printable ASCII, fields separated by ``|``::

    TPH1|AMC|CONVENTION|CSR|MEMBER|FROM|UNTIL|R or N|BENEFICIARIES[|TP1:…|SIGNATURE]

The last two fields are optional together: the card's signed proof (the ``TP1:`` text of
``security/cardsig.py``, unchanged) and the base45 Ed25519 signature of every character
before it (signed with the same card key). Both are opaque here: this module checks their
shape only; verifying them needs the published keys (``services/cards.py``).

Any text this module would not have produced is a :class:`Misread`: a barcode reader on
the wrong keyboard layout, a truncated scan, a typing slip. A misread is not an attack
signal (nothing was signed); a well-formed text whose signature fails is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from tierspayant.domain.care import CareDomain
from tierspayant.domain.codes import CardCode
from tierspayant.domain.errors import DomainError

PREFIX = "TPH1"
SEPARATOR = "|"
PROOF_PREFIX = "TP1:"
MAX_TEXT = 2000  # the longest text made or accepted (one DataMatrix holds it; see docs)
MAX_BENEFICIARIES = 12  # a large family on one card; birth ranks stay 1 to 9
SIGNATURE_CHARS = 96  # base45 of a 64-byte Ed25519 signature
TIERS_PAYANT = "="  # DOMAIN=CODE: tiers payant applies, with this coverage code
NO_TIERS_PAYANT = "#"  # DOMAIN#CODE: covered, paid back to the member (no tiers payant)
SAME_RIGHTS = "*"  # a row's rights when they are the previous row's (one contract per family)

_B45_TEXT = r"[0-9A-Z $%*+\-./:]"
_AMC = re.compile(r"[0-9]{8,10}")
_CONVENTION = re.compile(r"[0-9A-Z]{0,4}")
_CSR = re.compile(r"[0-9A-Z]{0,10}")
_MEMBER = re.compile(r"[0-9A-Za-z-]{1,20}")
_DAY = re.compile(r"[0-9]{8}")
_COVERAGE = re.compile(r"[A-Za-z0-9 %+\-_.]{1,16}")  # as in the catalogue (formats/catalogue.py)
_RIGHT = re.compile(r"([A-Z]{3,5})([=#])(.{1,16})")
_BENEFICIARY = re.compile(r"([1-9])\.([0-9]{8}):(.*)")
_PROOF = re.compile(rf"TP1:{_B45_TEXT}{{5,400}}")
_SIGNATURE = re.compile(rf"{_B45_TEXT}{{{SIGNATURE_CHARS}}}")


class Misread(DomainError):
    """The scanned text is not a card code this layout produces (nothing to verify)."""

    def __init__(self, message: str) -> None:
        super().__init__(CardCode.MISREAD, message)


@dataclass(frozen=True, slots=True)
class Right:
    """One care domain on a beneficiary's row: tiers payant or not, and the coverage code."""

    domain: CareDomain
    tiers_payant: bool
    coverage_code: str

    def __post_init__(self) -> None:
        if not _COVERAGE.fullmatch(self.coverage_code):
            raise ValueError("a coverage code is 1 to 16 letters, digits or ' %+-_.'")


@dataclass(frozen=True, slots=True)
class BeneficiaryRights:
    """A beneficiary's row: birth rank, birth date (the lookup needs it) and rights.

    No name and no NIR: the card prints the first names for the person at the counter;
    software needs only the member number and the birth date to ask for rights.
    """

    rank: int
    birth_date: date = field(repr=False)
    rights: tuple[Right, ...]

    def __post_init__(self) -> None:
        if not 1 <= self.rank <= 9:
            raise ValueError("a birth rank is 1 to 9")
        domains = [r.domain for r in self.rights]
        if len(set(domains)) != len(domains):
            raise ValueError("a care domain appears twice on a beneficiary's row")


@dataclass(frozen=True, slots=True)
class HarmonisedCard:
    """The standard box and rights of one card, as the DataMatrix carries them."""

    amc_number: str
    convention_type: str
    routing_criterion: str  # critère secondaire de routage (CSR)
    member_number: str = field(repr=False)
    valid_from: date
    valid_until: date
    responsable: bool
    beneficiaries: tuple[BeneficiaryRights, ...] = field(repr=False)

    def __post_init__(self) -> None:
        checks = (
            (_AMC, self.amc_number, "an AMC number is 8 to 10 digits"),
            (_CONVENTION, self.convention_type, "a type de convention is 0 to 4 A-Z or digits"),
            (_CSR, self.routing_criterion, "a CSR is 0 to 10 A-Z or digits"),
            (_MEMBER, self.member_number, "a member number is 1 to 20 letters, digits or '-'"),
        )
        for pattern, value, message in checks:
            if not pattern.fullmatch(value):
                raise ValueError(message)
        if not date(2000, 1, 1) <= self.valid_from <= self.valid_until:
            raise ValueError("the validity must start after 2000 and end after it starts")
        if not 1 <= len(self.beneficiaries) <= MAX_BENEFICIARIES:
            raise ValueError(f"a card has 1 to {MAX_BENEFICIARIES} beneficiaries")


@dataclass(frozen=True, slots=True)
class ScannedCard:
    """A decoded DataMatrix: the fields, and the proof with its signature if printed.

    ``signed_text`` is what ``signature`` signs: every character before it.
    """

    card: HarmonisedCard
    proof: str | None = field(default=None, repr=False)
    signature: str | None = field(default=None, repr=False)
    signed_text: str = field(default="", repr=False)


def _day(value: date) -> str:
    return value.strftime("%Y%m%d")


def _rights_text(person: BeneficiaryRights, previous: BeneficiaryRights | None) -> str:
    if previous is not None and person.rights == previous.rights:
        rights = SAME_RIGHTS
    else:
        rights = ",".join(
            f"{r.domain.value}{TIERS_PAYANT if r.tiers_payant else NO_TIERS_PAYANT}"
            f"{r.coverage_code}"
            for r in person.rights
        )
    return f"{person.rank}.{_day(person.birth_date)}:{rights}"


def fields_text(card: HarmonisedCard) -> str:
    """The DataMatrix text without the proof: the fields a card of any issuer could carry."""
    return SEPARATOR.join(
        (
            PREFIX,
            card.amc_number,
            card.convention_type,
            card.routing_criterion,
            card.member_number,
            _day(card.valid_from),
            _day(card.valid_until),
            "R" if card.responsable else "N",
            ";".join(
                _rights_text(p, card.beneficiaries[i - 1] if i else None)
                for i, p in enumerate(card.beneficiaries)
            ),
        )
    )


def signed_part(card: HarmonisedCard, proof: str) -> str:
    """What the card key signs: the fields, the proof, and the separator after it."""
    if not _PROOF.fullmatch(proof):
        raise ValueError("the proof must be the TP1: text of security/cardsig.py")
    text = f"{fields_text(card)}{SEPARATOR}{proof}{SEPARATOR}"
    if len(text) + SIGNATURE_CHARS > MAX_TEXT:
        raise ValueError(f"a card code holds at most {MAX_TEXT} characters")
    return text


def encode(card: HarmonisedCard, proof: str | None = None, signature: str | None = None) -> str:
    """The DataMatrix text: the fields, then the proof and its signature when given."""
    if proof is None and signature is None:
        text = fields_text(card)
    elif proof is None or signature is None or not _SIGNATURE.fullmatch(signature):
        raise ValueError("a proof goes with the base45 signature of the text before it")
    else:
        text = signed_part(card, proof) + signature
    if len(text) > MAX_TEXT:
        raise ValueError(f"a card code holds at most {MAX_TEXT} characters")
    return text


def _parse_day(text: str, name: str) -> date:
    if not _DAY.fullmatch(text):
        raise Misread(f"{name}: a date is 8 digits (YYYYMMDD)")
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        raise Misread(f"{name}: not a calendar date") from None


def _parse_right(text: str) -> Right:
    match = _RIGHT.fullmatch(text)
    if match is None:
        raise Misread("a right is DOMAIN=CODE or DOMAIN#CODE")
    try:
        return Right(CareDomain(match[1]), match[2] == TIERS_PAYANT, match[3])
    except ValueError:
        raise Misread("unknown care domain or bad coverage code") from None


def _parse_beneficiary(text: str, previous: BeneficiaryRights | None) -> BeneficiaryRights:
    match = _BENEFICIARY.fullmatch(text)
    if match is None:
        raise Misread("a beneficiary is RANK.YYYYMMDD:RIGHTS")
    if match[3] == SAME_RIGHTS:
        if previous is None:
            raise Misread("the first beneficiary's rights cannot be the previous row's")
        rights = previous.rights
    else:
        rights = tuple(_parse_right(r) for r in match[3].split(",")) if match[3] else ()
    try:
        return BeneficiaryRights(int(match[1]), _parse_day(match[2], "birth date"), rights)
    except ValueError:
        raise Misread("a care domain appears twice on a beneficiary's row") from None


def decode(text: str) -> ScannedCard:
    """Parse a DataMatrix text; :class:`Misread` for anything :func:`encode` would not make.

    Checks the shape of the proof and signature, not their validity.
    """
    if len(text) > MAX_TEXT or not text.startswith(PREFIX + SEPARATOR):
        raise Misread("not a harmonised card code (TPH1|…)")
    parts = text.split(SEPARATOR)
    if len(parts) not in (9, 11):
        raise Misread("a harmonised card code has 9 fields, or 11 with its proof")
    rows: list[BeneficiaryRights] = []
    for row in parts[8].split(";"):
        rows.append(_parse_beneficiary(row, rows[-1] if rows else None))
    beneficiaries = tuple(rows)
    try:
        card = HarmonisedCard(
            amc_number=parts[1],
            convention_type=parts[2],
            routing_criterion=parts[3],
            member_number=parts[4],
            valid_from=_parse_day(parts[5], "valid from"),
            valid_until=_parse_day(parts[6], "valid until"),
            responsable={"R": True, "N": False}[parts[7]],
            beneficiaries=beneficiaries,
        )
    except KeyError:
        raise Misread("the contrat responsable mark is R or N") from None
    except ValueError as exc:
        raise Misread(str(exc)) from None
    if len(parts) == 9:
        return ScannedCard(card)
    proof, signature = parts[9], parts[10]
    if not _PROOF.fullmatch(proof) or not _SIGNATURE.fullmatch(signature):
        raise Misread("the proof or its signature is cut or mistyped")
    return ScannedCard(card, proof, signature, text[: len(text) - len(signature)])
