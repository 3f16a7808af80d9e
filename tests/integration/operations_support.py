"""Helpers shared by the operations tests: enrol real beneficiaries, make real lookups."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from tests.conftest import SeededInsurer
from tests.support import world as core
from tierspayant.app.platform import Platform
from tierspayant.domain.care import CareDomain
from tierspayant.security.principal import Principal
from tierspayant.services import insurers
from tierspayant.services.eligibility import RightsCheck, check_rights
from tierspayant.services.identification import CardData

EXAMPLE = core.CATALOGUES / "azur-assurances-sante.yaml"
CONTRACT = "PREMIUM"
FILE_DATE = date(2025, 1, 1)
NOW = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)
ACTOR = "test:operations"

SeedInsurer = Callable[..., SeededInsurer]


@dataclass(frozen=True, slots=True)
class Person(core.Person):
    """One enrolled beneficiary as the operations tests name it: ``line`` in the file (from
    0), ``rank``, ``birth``, ``member``, and ``card(amc)`` as the services take it."""

    @property
    def rank(self) -> int:
        return self.birth_rank

    @property
    def birth(self) -> date:
        return self.birth_date

    @property
    def member(self) -> str:
        return self.member_number

    def card(self, amc: str) -> CardData:  # type: ignore[override]  # the services' card
        return CardData(amc, self.birth_date, self.nir, self.birth_rank)


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
    amc = insurer.amc_number
    insurers.upload_catalogue(platform, amc, core.load_catalogue(EXAMPLE, amc), ACTOR)
    people = core.enrol(
        platform, amc, count, seed, (CONTRACT,), FILE_DATE, path=tmp_path / f"benef-{amc}.csv",
        mode="incremental", adjust=adjust, actor=ACTOR,
    )  # fmt: skip
    return insurer, [Person(**asdict(person)) for person in people]


def provider_principal(platform: Platform, amc: str, seed: int) -> Principal:
    """A pharmacy with a convention with ``amc``, as an authenticated API client."""
    provider = core.add_provider(
        platform, random.Random(f"{amc}-{seed}"), "pharmacy", name=f"Pharmacie {seed}",
        amcs=(amc,), domains=(CareDomain.PHAR,), since=FILE_DATE, department="69",
        finess=True, actor=ACTOR,
    )  # fmt: skip
    return core.provider_principal(provider, f"test{seed}")


def rights_check(platform: Platform, principal: Principal, card: CardData) -> bool:
    """One real rights check (guard, identification, audit); True when covered."""
    answer = check_rights(
        platform, principal, RightsCheck(card, date(2025, 3, 10), (CareDomain.PHAR,))
    )
    return any(right.covered for right in answer.rights)
