"""A month of realistic claims for the demo, sent through the claims service, then judged.

Mostly pharmacy invoices (the largest flow: drugs at 65, 30 and 100 %), then GP
consultations and lab tests, and a few optical and dental invoices that first ask for a
prior authorisation and then bill what it guaranteed. The beneficiaries are those of a
file made by :func:`tierspayant.demo.synthetic.write_beneficiaries_csv`. Invoices are
numbered from the seed, so running the demo twice sends the same invoices, which the
service recognises.
"""

from __future__ import annotations

import calendar
import csv
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from tierspayant.app.platform import Platform
from tierspayant.domain.care import CareDomain, Exemption
from tierspayant.domain.claims import ClaimContent, ClaimLine
from tierspayant.domain.errors import DomainError
from tierspayant.domain.money import apply_rate
from tierspayant.domain.pricing import PricingLine
from tierspayant.domain.providers import ProviderCategory
from tierspayant.formats.beneficiaries import DELIMITER
from tierspayant.security.principal import Principal
from tierspayant.services.adjudication import adjudicate_pending
from tierspayant.services.claims import ClaimSubmission, file_principal, submit_claim
from tierspayant.services.identification import CardData
from tierspayant.services.prior_auth import PriorAuthRequest, request_prior_auth
from tierspayant.services.providers import Provider, provider_by_id

DRUG_FAMILIES = (("drug_65", 60), ("drug_30", 15), ("drug_100", 15), ("medical_device", 10))
# Which kind of invoice each category of provider sends, and how often.
KINDS: dict[ProviderCategory, tuple[str, int]] = {
    ProviderCategory.PHARMACY: ("pharmacy", 70),
    ProviderCategory.GP: ("consultation", 15),
    ProviderCategory.LABORATORY: ("lab", 10),
    ProviderCategory.OPTICIAN: ("optics", 3),
    ProviderCategory.DENTIST: ("dental", 2),
}
PARTICIPATION = 200  # cents the AMO keeps per consultation or lab invoice
FRANCHISE = 100  # cents the AMO keeps per drug box


@dataclass(frozen=True, slots=True)
class _Person:
    card: CardData
    coverage_start: date
    coverage_end: date | None


def _people(path: Path, amc: str) -> list[_Person]:
    people = []
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter=DELIMITER):
            try:
                card = CardData(
                    amc_number=amc,
                    birth_date=date.fromisoformat(row["birth_date"]),
                    nir=row["nir"],
                    birth_rank=int(row["birth_rank"]),
                )
                start = date.fromisoformat(row["coverage_start"])
                end = date.fromisoformat(row["coverage_end"]) if row["coverage_end"] else None
            except (KeyError, ValueError):
                continue  # a deliberately spoiled line of the synthetic file
            people.append(_Person(card, start, end))
    return people


def build_demo_claims(
    platform: Platform,
    *,
    beneficiaries_csv: Path,
    insurer_amc: str,
    provider_ids: Sequence[int],
    month: date,
    count: int,
    seed: int,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Send ``count`` invoices with care in ``month`` and adjudicate them; ``progress(n)``
    every 50 invoices sent, and at the end.

    Returns how many invoices were received (a second run returns 0: same invoices).
    """
    rng = random.Random(seed)
    with platform.engine.connect() as conn:
        providers = [provider_by_id(conn, provider_id) for provider_id in provider_ids]
    first = month.replace(day=1)
    last = min(month.replace(day=calendar.monthrange(month.year, month.month)[1]), platform.today())
    people = [
        p
        for p in _people(beneficiaries_csv, insurer_amc)
        if p.coverage_start <= first and (p.coverage_end is None or last <= p.coverage_end)
    ]
    if not people or not providers or last < first:
        return 0
    choices = _kinds(providers)
    received = 0
    for n in range(count):
        kind, provider = rng.choices(choices, weights=[w for _, _, w in choices])[0][:2]
        person = rng.choice(people)
        day = first + timedelta(days=rng.randrange((last - first).days + 1))
        invoice = f"DEMO{first:%Y%m}-{seed}-{n:06d}"
        maker = _MAKERS[kind]
        try:
            received += maker(platform, file_principal(provider), rng, person.card, day, invoice)
        except DomainError:
            continue  # refused by the guard or the rules: the demo goes on
        finally:
            if progress is not None and (n + 1) % 50 == 0:
                progress(n + 1)
    if progress is not None:
        progress(count)
    adjudicate_pending(platform, insurer_amc=insurer_amc)
    return received


def _kinds(providers: Sequence[Provider]) -> list[tuple[str, Provider, int]]:
    found = [
        (KINDS[p.category][0], p, KINDS[p.category][1]) for p in providers if p.category in KINDS
    ]
    # Providers of no listed category still send pharmacy-like invoices for the demo.
    return found or [("pharmacy", p, 1) for p in providers]


def _rate(platform: Platform, family: str, day: date) -> int:
    return platform.reference.on(day).family_rates_bp[family]


def _send(
    platform: Platform,
    principal: Principal,
    card: CardData,
    invoice: str,
    day: date,
    lines: Sequence[ClaimLine],
    agreement: str | None = None,
) -> int:
    content = ClaimContent(invoice, day, tuple(lines), agreement)
    receipt = submit_claim(platform, principal, ClaimSubmission(card, content), source="file")
    return int(receipt.created)


def _pharmacy(
    platform: Platform,
    principal: Principal,
    rng: random.Random,
    card: CardData,
    day: date,
    invoice: str,
) -> int:
    lines = []
    for index in range(rng.choice((1, 1, 2, 2, 3, 4))):
        family = rng.choices([f for f, _ in DRUG_FAMILIES], [w for _, w in DRUG_FAMILIES])[0]
        quantity = rng.choice((1, 1, 1, 2, 3))
        br = rng.randint(150, 3500) * quantity
        rate = _rate(platform, family, day)
        amo = max(
            0, apply_rate(br, rate) - (FRANCHISE * quantity if family != "medical_device" else 0)
        )
        exemption = Exemption.ALD if family == "drug_100" else Exemption.NONE
        # The ticket modérateur; now and then the franchise too, which is reduced.
        asked = br - apply_rate(br, rate) if index or rng.random() > 0.03 else br - amo
        lines.append(
            ClaimLine(
                act_code=f"34009{rng.randint(10**7, 10**8 - 1)}",
                domain=CareDomain.PHAR,
                family=family,
                quantity=quantity,
                care_date=day,
                br_cents=br,
                billed_cents=br,
                amo_rate_bp=rate,
                amo_paid_cents=amo,
                amc_requested_cents=asked,
                exemption=exemption,
            )
        )
    return _send(platform, principal, card, invoice, day, lines)


def _consultation(
    platform: Platform,
    principal: Principal,
    rng: random.Random,
    card: CardData,
    day: date,
    invoice: str,
) -> int:
    rate = _rate(platform, "consultation", day)
    billed = 3000 if rng.random() < 0.9 else 3500
    amo = apply_rate(3000, rate) - PARTICIPATION
    line = ClaimLine(
        "G",
        CareDomain.MED,
        "consultation",
        1,
        day,
        3000,
        billed,
        rate,
        amo,
        3000 - apply_rate(3000, rate),
    )
    return _send(platform, principal, card, invoice, day, [line])


def _lab(
    platform: Platform,
    principal: Principal,
    rng: random.Random,
    card: CardData,
    day: date,
    invoice: str,
) -> int:
    rate = _rate(platform, "lab_test", day)
    br = rng.randint(800, 6000)
    amo = apply_rate(br, rate) - PARTICIPATION
    line = ClaimLine(
        "B0010",
        CareDomain.LABO,
        "lab_test",
        1,
        day,
        br,
        br,
        rate,
        max(0, amo),
        br - apply_rate(br, rate),
    )
    return _send(platform, principal, card, invoice, day, [line])


def _with_agreement(
    platform: Platform,
    principal: Principal,
    card: CardData,
    day: date,
    invoice: str,
    quote: Sequence[PricingLine],
) -> int:
    """Ask for the prior authorisation, then bill what it guaranteed."""
    answer, _ = request_prior_auth(
        platform, principal, PriorAuthRequest(card, day, f"quote-{invoice}", tuple(quote))
    )
    if answer.status != "granted":
        return 0
    lines = []
    for pricing, guaranteed in zip(quote, answer.lines, strict=True):
        rate = _rate(platform, pricing.family, day)
        lines.append(
            ClaimLine(
                act_code=pricing.act_code,
                domain=pricing.domain,
                family=pricing.family,
                quantity=pricing.quantity,
                care_date=day,
                br_cents=pricing.br_cents,
                billed_cents=pricing.billed_cents,
                amo_rate_bp=rate,
                amo_paid_cents=apply_rate(pricing.br_cents, rate),
                amc_requested_cents=guaranteed.guaranteed_cents,
            )
        )
    return _send(platform, principal, card, invoice, day, lines, answer.agreement_number)


def _optics(
    platform: Platform,
    principal: Principal,
    rng: random.Random,
    card: CardData,
    day: date,
    invoice: str,
) -> int:
    frame = PricingLine("FRAMEB", CareDomain.OPTI, "optics_frame", 1, rng.randint(80, 200) * 100, 5)
    lenses = PricingLine(
        "LENSB", CareDomain.OPTI, "optics_lens_simple", 2, rng.randint(100, 300) * 200, 10
    )
    return _with_agreement(platform, principal, card, day, invoice, [frame, lenses])


def _dental(
    platform: Platform,
    principal: Principal,
    rng: random.Random,
    card: CardData,
    day: date,
    invoice: str,
) -> int:
    crown = PricingLine(
        "HBLD036", CareDomain.DENT, "dental_prosthesis", 1, rng.randint(450, 700) * 100, 12000
    )
    return _with_agreement(platform, principal, card, day, invoice, [crown])


_Maker = Callable[[Platform, Principal, random.Random, CardData, date, str], int]
_MAKERS: dict[str, _Maker] = {
    "pharmacy": _pharmacy,
    "consultation": _consultation,
    "lab": _lab,
    "optics": _optics,
    "dental": _dental,
}


@dataclass(frozen=True, slots=True)
class Showcase:
    """How many showcase invoices the demo pharmacy sent, by what they are for."""

    member: int  # for the demo member (first person of the file): paid, on their statement
    others: int  # for other people of the file: paid
    rejected: int  # meant to be rejected by adjudication, each with its reason


def build_showcase_claims(
    platform: Platform,
    *,
    beneficiaries_csv: Path,
    insurer_amc: str,
    pharmacy_id: int,
    month: date,
    seed: int,
) -> Showcase:
    """Invoices of the demo pharmacy, so its pharmacist sees paid and rejected invoices
    and the demo member sees paid lines: a few for the file's first person (the demo
    member), some for others, and four that adjudication rejects — two whose card data
    match nobody (``rights.none``) and two asking an AMO share above base × rate
    (``amounts.amo_above_rate``). Numbered from the seed (a second run sends nothing new).
    """
    rng = random.Random(f"showcase-{seed}")
    with platform.engine.connect() as conn:
        principal = file_principal(provider_by_id(conn, pharmacy_id))
    first = month.replace(day=1)
    last = min(month.replace(day=calendar.monthrange(month.year, month.month)[1]), platform.today())
    people = [
        p
        for p in _people(beneficiaries_csv, insurer_amc)
        if p.coverage_start <= first and (p.coverage_end is None or last <= p.coverage_end)
    ]
    if not people or last < first:
        return Showcase(0, 0, 0)
    days = (last - first).days + 1
    counts = {"member": 0, "others": 0, "rejected": 0}

    def send(kind: str, card: CardData, n: int, spoil: bool = False) -> None:
        day = first + timedelta(days=rng.randrange(days))
        invoice = f"DEMOPH{first:%Y%m}-{seed}-{n:03d}"
        try:
            if spoil:
                sent = _spoiled_pharmacy(platform, principal, rng, card, day, invoice)
            else:
                sent = _pharmacy(platform, principal, rng, card, day, invoice)
        except DomainError:
            return  # refused at intake: the demo goes on
        counts[kind] += sent

    member = people[0].card
    for n in range(4):
        send("member", member, n)
    for n in range(4, 20):
        send("others", rng.choice(people[1:] or people).card, n)
    # Card data that match nobody: the birth date a day off.
    nobody = CardData(
        amc_number=member.amc_number,
        birth_date=member.birth_date + timedelta(days=1),
        nir=member.nir,
        birth_rank=member.birth_rank,
    )
    send("rejected", nobody, 20)
    send("rejected", nobody, 21)
    send("rejected", rng.choice(people).card, 22, spoil=True)
    send("rejected", rng.choice(people).card, 23, spoil=True)
    adjudicate_pending(platform, insurer_amc=insurer_amc)
    return Showcase(counts["member"], counts["others"], counts["rejected"])


def _spoiled_pharmacy(
    platform: Platform,
    principal: Principal,
    rng: random.Random,
    card: CardData,
    day: date,
    invoice: str,
) -> int:
    """One drug line whose AMO share is above base × rate: rejected at adjudication."""
    br = rng.randint(500, 2500)
    rate = _rate(platform, "drug_65", day)
    line = ClaimLine(
        act_code=f"34009{rng.randint(10**7, 10**8 - 1)}",
        domain=CareDomain.PHAR,
        family="drug_65",
        quantity=1,
        care_date=day,
        br_cents=br,
        billed_cents=br,
        amo_rate_bp=rate,
        amo_paid_cents=apply_rate(br, rate) + 150,
        amc_requested_cents=br - apply_rate(br, rate) - 150,
    )
    return _send(platform, principal, card, invoice, day, [line])
