"""Helpers shared by the operations tests: enrol real beneficiaries, make real lookups."""

from __future__ import annotations

import csv
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import yaml

from tests.conftest import SeededInsurer
from tests.factories import make_am_number, make_finess
from tierspayant.app.platform import Platform
from tierspayant.demo.synthetic import write_beneficiaries_csv
from tierspayant.domain.care import CareDomain
from tierspayant.security.principal import AuthStrength, Principal, PrincipalKind
from tierspayant.services import insurers, providers
from tierspayant.services.eligibility import RightsCheck, check_rights
from tierspayant.services.enrolment import import_beneficiaries
from tierspayant.services.identification import CardData

EXAMPLE = (
    Path(__file__).resolve().parents[2]
    / "src/tierspayant/reference/demo/azur-assurances-sante.yaml"
)
CONTRACT = "PREMIUM"
FILE_DATE = date(2025, 1, 1)
NOW = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)
ACTOR = "test:operations"

SeedInsurer = Callable[..., SeededInsurer]


@dataclass(frozen=True, slots=True)
class Person:
    """One enrolled beneficiary as the test knows it (from the file it wrote)."""

    line: int
    nir: str
    rank: int
    birth: date
    member: str
    last_name: str
    first_name: str

    def card(self, amc: str) -> CardData:
        return CardData(amc, self.birth, self.nir, self.rank)


def enrol(
    platform: Platform,
    seed_insurer: SeedInsurer,
    tmp_path: Path,
    count: int,
    *,
    seed: int = 7,
    adjust: Callable[[int, dict[str, str]], None] | None = None,
) -> tuple[SeededInsurer, list[Person]]:
    """An insurer with the example catalogue and ``count`` beneficiaries imported for real.

    ``adjust(line, row)`` may change a line of the file (its columns by header name).
    """
    insurer = seed_insurer(platform, (CONTRACT,))
    document = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    document["insurer"] = insurer.amc_number
    insurers.upload_catalogue(platform, insurer.amc_number, document, ACTOR)
    source = tmp_path / f"benef-{insurer.amc_number}.csv"
    write_beneficiaries_csv(source, count, seed=seed, contracts=(CONTRACT,), start=FILE_DATE)
    with source.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter=";"))
    if adjust is not None:
        for index, row in enumerate(rows):
            adjust(index, row)
    final = tmp_path / f"final-{insurer.amc_number}.csv"
    with final.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter=";")
        writer.writeheader()
        writer.writerows(rows)
    summary = import_beneficiaries(
        platform,
        insurer.amc_number,
        final,
        mode="incremental",
        file_date=FILE_DATE,
        actor=ACTOR,
        workers=0,
    )
    assert summary.rejected == 0, summary
    people = [
        Person(
            line=index,
            nir=row["nir"],
            rank=int(row["birth_rank"]),
            birth=date.fromisoformat(row["birth_date"]),
            member=row["member_number"],
            last_name=row["last_name"],
            first_name=row["first_name"],
        )
        for index, row in enumerate(rows)
    ]
    return insurer, people


def provider_principal(platform: Platform, amc: str, seed: int) -> Principal:
    """A pharmacy with a convention with ``amc``, as an authenticated API client."""
    rng = random.Random(f"{amc}-{seed}")
    am_number = make_am_number(rng, 2)
    finess = make_finess(rng, department="69")
    created = providers.add_provider(
        platform,
        providers.NewProvider(am_number, "pharmacy", f"Pharmacie {seed}", finess=finess),
        ACTOR,
    )
    providers.add_conventions(platform, am_number, amc, [CareDomain.PHAR], FILE_DATE, ACTOR)
    return Principal(
        id=f"provider:{created.am_number}/client:test{seed}",
        kind=PrincipalKind.PROVIDER_CLIENT,
        strength=AuthStrength.AAL2,
        provider_id=created.id,
        provider_am_number=created.am_number,
        structure=finess,
    )


def rights_check(platform: Platform, principal: Principal, card: CardData) -> bool:
    """One real rights check (guard, identification, audit); True when covered."""
    answer = check_rights(
        platform, principal, RightsCheck(card, date(2025, 3, 10), (CareDomain.PHAR,))
    )
    return any(right.covered for right in answer.rights)
