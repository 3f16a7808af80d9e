"""The member portal's family reads on SQLite and PostgreSQL, through the real app over
the API world (``tests/api/world.py``): the statement names the professional and the
family member and never shows another family's lines; the ceilings count what the
stored counters hold for each family member, this year only."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from html import unescape

import pytest

from tests.api.world import (
    ENGINE_PARAMS,
    TODAY,
    Person,
    World,
    _beneficiary_id,
    build_world,
    close_world,
    staff_session,
)
from tests.money_support import ACCEPTED, REDUCED, adjudicated_claim, make_provider
from tierspayant.services import insurers, payments
from tierspayant.store.claims_tables import benefit_counters


@dataclass(frozen=True, slots=True)
class Paid:
    world: World
    member: Person
    relative: Person
    providers: tuple[str, str, str]  # names: the member's, the relative's, a stranger's


def _family(world: World) -> tuple[Person, Person, Person]:
    """A covered member on a contract with ceilings, a relative, and someone else."""
    people = world.people[world.amc_numbers[0]]
    for person in people:
        if person.contract != "EQUILIBRE" or not person.covered_on(TODAY) or person.css:
            continue
        relatives = [
            p
            for p in people
            if p.member_number == person.member_number and p.nir != person.nir
            and p.covered_on(TODAY)
        ]  # fmt: skip
        if relatives:
            stranger = next(p for p in people if p.member_number != person.member_number)
            return person, relatives[0], stranger
    raise AssertionError("no family in the world")


@pytest.fixture(scope="module", params=ENGINE_PARAMS)
def paid(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Paid]:
    world = build_world(str(request.param), request, tmp_path_factory, count=40)
    platform = world.platform
    try:
        member, relative, stranger = _family(world)
        with platform.engine.connect() as conn:
            insurer_id = insurers.get_insurer(conn, member.amc_number).id
            ids = [_beneficiary_id(platform, conn, p) for p in (member, relative, stranger)]
        rng = random.Random(515)
        made = [make_provider(platform, rng) for _ in range(3)]
        for provider, person_id, lines in zip(
            made, ids, ((ACCEPTED,), (REDUCED,), (ACCEPTED, REDUCED)), strict=True
        ):
            adjudicated_claim(
                platform, insurer_id=insurer_id, amc_number=member.amc_number,
                provider_id=provider.id, beneficiary_id=person_id, lines=lines,
                care_date=date(2026, 3, 9),
            )  # fmt: skip
        payments.run_payments(platform, TODAY, out_dir=tmp_path_factory.mktemp("pay"))
        with platform.engine.begin() as conn:
            for person_id, day, cents in (
                (ids[1], date(2026, 2, 3), 31_000),  # the relative, this year
                (ids[1], date(2025, 11, 3), 50_000),  # last year: outside the window
                (ids[2], date(2026, 1, 5), 45_000),  # another family
            ):
                conn.execute(
                    benefit_counters.insert().values(
                        insurer_id=insurer_id, beneficiary_id=person_id, counter_key="dental",
                        care_date=day, claim_id=rng.randrange(10**9), used_cents=cents,
                        used_units=1,
                    )
                )  # fmt: skip
        yield Paid(world, member, relative, (made[0].name, made[1].name, made[2].name))
    finally:
        close_world(world)


def _page(paid: Paid, path: str) -> str:
    token = staff_session(paid.world, "member", beneficiary=paid.member)
    response = paid.world.client.get(path, headers={"cookie": f"tp_session={token}"})
    assert response.status_code == 200, response.text
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", response.text))).replace(
        "\xa0", " "
    )


def test_the_statement_names_who_was_treated_and_by_whom(paid: Paid) -> None:
    text = _page(paid, "/portail/adherent/remboursements")
    own, relatives, strangers = paid.providers
    assert f"{paid.member.first_name} (vous) {own}" in text
    assert f"{paid.relative.first_name} {relatives}" in text
    assert strangers not in text
    assert paid.member.last_name not in text
    assert paid.member.nir not in text


def test_the_ceilings_count_this_years_use_of_each_family_member(paid: Paid) -> None:
    text = _page(paid, "/portail/adherent/garanties")
    ceilings = text[text.index("Mes plafonds au") :]
    mine = ceilings[ceilings.index(f"{paid.member.first_name} (vous)") :]
    theirs = ceilings[ceilings.index(f"{paid.relative.first_name} Plafond") :]
    assert "Prothèse dentaire, Implant dentaire du 01/01/2026 au 31/12/2026" in theirs
    assert "1 000,00 € 310,00 € 690,00 €" in theirs
    assert "1 000,00 € 0,00 € 1 000,00 €" in mine
    assert "450,00 €" not in ceilings
    assert "550,00 €" not in ceilings
