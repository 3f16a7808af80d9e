"""A small insurer, provider and population for the claims, prior-authorisation and
adjudication tests (real services, real database)."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from tests.conftest import SeededInsurer
from tests.factories import make_nir
from tests.support import world as core
from tierspayant.app.platform import Platform
from tierspayant.demo.synthetic import HEADER as COLUMNS
from tierspayant.domain.care import CareDomain, Sex
from tierspayant.domain.claims import ClaimContent, ClaimLine
from tierspayant.security.principal import Principal
from tierspayant.services.claims import ClaimSubmission
from tierspayant.services.identification import CardData
from tierspayant.services.insurers import upload_catalogue
from tierspayant.services.providers import Provider

ACTOR = "test:claims"
NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)  # the platform's clock in these tests
CARE_DAY = date(2026, 11, 2)  # a Monday four weeks before
COVERAGE_START = date(2024, 1, 1)
LATE_START = date(2026, 6, 1)  # coverage start of the fourth person
NAMES = ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand")
HEADER = ";".join(COLUMNS)


def catalogue(amc: str) -> dict[str, Any]:
    """BASE: 100 % BR in common domains, devices 50 € flat within 200 € a year, optics and
    dental prostheses forfaits; no hearing aids (AUDI not covered)."""
    terms = {"tiers_payant": True, "coverage_code": "100"}
    return {
        "format": "tierspayant-catalogue/1",
        "insurer": amc,
        "name": "Mutuelle de test",
        "version": "1",
        "contracts": [
            {
                "code": "BASE",
                "label": "Base",
                "responsable": False,
                "domains": dict.fromkeys(("PHAR", "MED", "LABO", "DENT", "OPTI", "HOSP"), terms),
                "guarantees": [
                    {"domain": "PHAR", "family": "*", "rate": 100},
                    {
                        "domain": "PHAR",
                        "family": "medical_device",
                        "rate": 100,
                        "flat": "50.00",
                        "ceilings": [
                            {"counter": "devices", "period": "calendar_year", "amount": "200.00"}
                        ],
                    },
                    {"domain": "MED", "family": "*", "rate": 100},
                    {"domain": "LABO", "family": "*", "rate": 100},
                    {"domain": "DENT", "family": "*", "rate": 100},
                    {"domain": "DENT", "family": "dental_prosthesis", "rate": 300},
                    {"domain": "HOSP", "family": "*", "rate": 100},
                    {"domain": "OPTI", "family": "optics_frame", "rate": 100, "flat": "60.00"},
                    {
                        "domain": "OPTI",
                        "family": "optics_lens_simple",
                        "rate": 100,
                        "flat": "50.00",
                    },
                ],
            }
        ],
    }


@dataclass(frozen=True, slots=True)
class Person:
    card: CardData
    birth: date


@dataclass
class World:
    platform: Platform
    insurer: SeededInsurer
    provider: Provider
    principal: Principal
    people: list[Person]
    others: dict[str, tuple[Provider, Principal]] = field(default_factory=dict)

    def provider_principal(self, provider: Provider) -> Principal:
        return principal_of(provider)

    def add_provider(self, name: str, category: str = "pharmacy") -> tuple[Provider, Principal]:
        made = _provider(self.platform, self.insurer.amc_number, category, len(self.others) + 7)
        self.others[name] = made
        return made


def principal_of(provider: Provider) -> Principal:
    return core.provider_principal(provider)


def _provider(
    platform: Platform, amc: str, category: str, seed: int, domains: Sequence[CareDomain] = ()
) -> tuple[Provider, Principal]:
    provider = core.add_provider(
        platform, random.Random(seed * 7919 + int(amc)), category, name=f"PS {seed}",
        amcs=(amc,), domains=tuple(domains) or tuple(CareDomain), since=date(2020, 1, 1),
        iban=True, actor=ACTOR,
    )  # fmt: skip
    return provider, principal_of(provider)


def fixed_clock() -> datetime:
    """The tests' clock: dates of care stay within the two years a claim may go back."""
    return NOW


def build_world(
    platform: Platform,
    seed_insurer: Callable[..., SeededInsurer],
    tmp_path: Path,
    *,
    people: int = 4,
    provider_domains: Sequence[CareDomain] = (),
    catalogue_of: Callable[[str], dict[str, Any]] = catalogue,
) -> World:
    platform.clock = fixed_clock
    insurer = seed_insurer(platform, ("BASE",), with_catalogue=False)
    upload_catalogue(platform, insurer.amc_number, catalogue_of(insurer.amc_number), ACTOR)
    rng = random.Random(insurer.id)
    rows = []
    for n in range(people):
        birth = date(1960 + 5 * n, 3, 10 + n)
        sex = Sex.MALE if n % 2 else Sex.FEMALE
        nir = make_nir(rng, sex=sex, year=birth.year, month=birth.month, department="75")
        values = (
            f"M{n:07d}", nir, "1", birth.isoformat(), NAMES[n % len(NAMES)], "Camille",
            "M" if n % 2 else "F", "member", "BASE",
            (LATE_START if n == 3 else COVERAGE_START).isoformat(), "", "0",
        )  # fmt: skip
        rows.append(dict(zip(COLUMNS, values, strict=True)))
    path = core.write_rows(tmp_path / f"people-{insurer.amc_number}.csv", rows)
    core.import_file(
        platform, insurer.amc_number, path, file_date=date(2025, 1, 1), actor=ACTOR, workers=None
    )
    persons = [
        Person(p.card_data(), p.birth_date) for p in core.read_people(path, insurer.amc_number)
    ]
    provider, principal = _provider(platform, insurer.amc_number, "pharmacy", 1, provider_domains)
    return World(platform, insurer, provider, principal, persons)


def drug(
    *,
    act: str = "3400930000001",
    br: int = 1000,
    quantity: int = 1,
    day: date = CARE_DAY,
    amc: int | None = None,
    amo_paid: int | None = None,
) -> ClaimLine:
    """A drug at 65 % (franchise 1 € a box deducted by the AMO)."""
    amo = amo_paid if amo_paid is not None else br * 65 // 100 - 100 * quantity
    return ClaimLine(
        act_code=act,
        domain=CareDomain.PHAR,
        family="drug_65",
        quantity=quantity,
        care_date=day,
        br_cents=br,
        billed_cents=br,
        amo_rate_bp=6500,
        amo_paid_cents=amo,
        amc_requested_cents=amc if amc is not None else br - br * 65 // 100,
    )


def submission(
    person: Person,
    invoice: str,
    *lines: ClaimLine,
    agreement: str | None = None,
    correction: bool = False,
) -> ClaimSubmission:
    chosen = lines or (drug(),)
    return ClaimSubmission(
        card=person.card,
        content=ClaimContent(
            invoice_number=invoice,
            care_date=min(line.care_date for line in chosen),
            lines=tuple(chosen),
            agreement_number=agreement,
        ),
        correction=correction,
    )
