"""The calculation over HTTP: the worked examples of DOMAIN.md in cents, the same figures as
the engine computes for the beneficiary's contract, and one refusal for every "no"."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from tests.api.world import CATALOGUES, TODAY, Person, ProviderAccount, World, error_code
from tierspayant.domain.care import CareDomain
from tierspayant.domain.pricing import PricingLine, PricingRequest, price
from tierspayant.formats.catalogue import read_catalogue
from tierspayant.formats.reference import load_default_reference

TILLEULS = "75012345"
AZUR = "33998877"
REFERENCE = load_default_reference()


def line(domain: str, family: str, billed: int, br: int, quantity: int = 1) -> dict[str, object]:
    return {
        "act_code": family.replace("_", "")[:8].upper(),
        "domain": domain,
        "family": family,
        "quantity": quantity,
        "billed_cents": billed,
        "br_cents": br,
    }


def calculate(
    world: World, provider: ProviderAccount, card: dict[str, object], *lines: dict[str, object]
) -> Any:
    body = {"card": card, "care_date": TODAY.isoformat(), "lines": list(lines)}
    return world.client.post("/v1/calculations", json=body, headers=provider.headers)


def adult(world: World, amc: str, contract: str) -> Person:
    """A covered adult (participation and franchises apply), not under CSS."""
    return next(
        p
        for p in world.people[amc]
        if p.contract == contract
        and p.covered_on(TODAY)
        and not p.css
        and 18 <= (TODAY - p.birth_date).days // 366 <= 70
        and (TODAY - p.coverage_start).days > 365
    )


def engine_figures(person: Person, optam: bool, *lines: dict[str, object]) -> dict[str, Any]:
    """What the engine says for the same person, contract and lines (the oracle)."""
    catalogue = next(
        read_catalogue(path)
        for path in CATALOGUES.glob("*.yaml")
        if read_catalogue(path).insurer == person.amc_number
    )
    contract = next(c for c in catalogue.contracts if c.code == person.contract)
    years = (
        TODAY.year
        - person.birth_date.year
        - ((TODAY.month, TODAY.day) < (person.birth_date.month, person.birth_date.day))
    )
    request = PricingRequest(
        care_date=TODAY,
        age=years,
        coverage_start=person.coverage_start,
        lines=tuple(
            PricingLine(
                act_code=str(raw["act_code"]),
                domain=CareDomain(str(raw["domain"])),
                family=str(raw["family"]),
                quantity=int(str(raw["quantity"])),
                billed_cents=int(str(raw["billed_cents"])),
                br_cents=int(str(raw["br_cents"])),
            )
            for raw in lines
        ),
        optam=optam,
        css=person.css,
    )
    return price(contract, request, REFERENCE).as_dict()


SHARES = ("amo_paid_cents", "amc_cents", "patient_cents")


@pytest.mark.parametrize(
    ("amc", "contract", "provider", "lines", "expected"),
    [
        pytest.param(
            TILLEULS, "ESSENTIEL", "gp", [line("MED", "consultation", 3000, 3000)],
            [(1900, 900, 200)], id="gp-consultation-100-br",
        ),
        pytest.param(
            TILLEULS, "ESSENTIEL", "pharmacy", [line("PHAR", "drug_65", 2000, 2000, 2)],
            [(1100, 700, 200)], id="pharmacy-two-boxes-drug-65",
        ),
        pytest.param(
            AZUR, "PREMIUM", "gp", [line("MED", "specialist", 7000, 3000)],
            [(1900, 4900, 200)], id="specialist-300-br-optam",
        ),
        pytest.param(
            AZUR, "PREMIUM", "specialist", [line("MED", "specialist", 7000, 3000)],
            [(1900, 3900, 1200)], id="specialist-200-br-non-optam",
        ),
        pytest.param(
            TILLEULS, "ESSENTIEL", "pharmacy",
            [line("PHAR", "drug_65", 1000, 1000), line("PHAR", "drug_30", 800, 800)],
            [(550, 350, 100), (140, 560, 100)], id="pharmacy-two-lines",
        ),
    ],
)  # fmt: skip
def test_given_worked_cases_then_exact_cents_equal_to_the_engine(
    world: World,
    amc: str,
    contract: str,
    provider: str,
    lines: list[dict[str, object]],
    expected: list[tuple[int, int, int]],
) -> None:
    person = adult(world, amc, contract)
    account = {"gp": world.gp, "pharmacy": world.pharmacy}.get(provider) or world.account(provider)
    response = calculate(world, account, person.card(), *lines)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [tuple(row[k] for k in SHARES) for row in body["lines"]] == expected
    assert body["contract_code"] == contract
    assert body["care_date"] == TODAY.isoformat()
    totals = body["totals"]
    for key in SHARES:
        assert totals[key] == sum(row[key] for row in body["lines"])
    assert totals["amo_paid_cents"] + totals["amc_cents"] + totals["patient_cents"] == sum(
        int(str(raw["billed_cents"])) for raw in lines
    )
    # The engine's figures, and the engagement on amounts the answer carries
    assert body.pop("engagement_number").startswith("ENG1-C-")
    assert body.pop("engagement_valid_until") >= TODAY.isoformat()
    body |= {"engagement_number": None, "engagement_valid_until": None}
    assert body == engine_figures(person, account.optam, *(
        {**raw, "quantity": raw.get("quantity", 1)} for raw in lines
    ))  # fmt: skip


def test_given_a_calculation_then_no_identity_in_the_answer(world: World) -> None:
    person = adult(world, TILLEULS, "EQUILIBRE")
    response = calculate(world, world.gp, person.card(), line("MED", "consultation", 3000, 3000))
    assert response.status_code == 200
    for value in (*person.identity_strings(), person.member_number):
        assert value not in response.text


def test_given_unknown_mismatched_or_not_covered_then_one_byte_equal_refusal(
    world: World,
) -> None:
    person = adult(world, TILLEULS, "ESSENTIEL")
    former = world.not_covered()
    consultation = line("MED", "consultation", 3000, 3000)
    cards: dict[str, dict[str, object]] = {
        "wrong birth date": person.card(birth_date=date(1902, 2, 2).isoformat()),
        "wrong birth rank": person.card(birth_rank=person.birth_rank + 1),
        "coverage ended": former.card(),
        "insured elsewhere": adult(world, AZUR, "PREMIUM").card(amc_number=TILLEULS),
        "unknown member": {
            "amc_number": TILLEULS,
            "birth_date": person.birth_date.isoformat(),
            "member_number": "Z00000000",
        },
    }
    answers = {why: calculate(world, world.gp, card, consultation) for why, card in cards.items()}
    reference = answers["wrong birth date"]
    assert reference.status_code == 422
    assert error_code(reference) == "calculation.no_rights"
    for why, answer in answers.items():
        assert (answer.status_code, answer.content) == (422, reference.content), why


def test_given_bad_lines_then_refused_before_anyone_is_looked_up(world: World) -> None:
    person = adult(world, TILLEULS, "ESSENTIEL")
    response = calculate(world, world.gp, person.card(), line("MED", "no_such_family", 3000, 3000))
    assert response.status_code == 422
    assert error_code(response).startswith("pricing.")
