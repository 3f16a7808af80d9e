"""The rights check over HTTP: exact answers from the catalogues, no identity in them, and
the same answer for every kind of "no"."""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from datetime import date
from typing import Any

import yaml
from sqlalchemy import func, select

from tests.api.world import CATALOGUES, INSURER_FILES, TODAY, Person, World, error_code
from tests.factories import make_nir
from tierspayant.domain.care import CareDomain
from tierspayant.store import audit
from tierspayant.store.tables import audit_events

ALL_DOMAINS = [d.value for d in CareDomain]
IDENTITY_FIELDS = frozenset(
    {"nir", "name", "last_name", "first_name", "birth_date", "birth_rank", "address", "iban"}
)


def catalogue_terms() -> dict[tuple[str, str], Mapping[str, Any]]:
    """(AMC number, contract code) → the ``domains`` block of the example catalogue."""
    terms: dict[tuple[str, str], Mapping[str, Any]] = {}
    for name in INSURER_FILES:
        document = yaml.safe_load((CATALOGUES / name).read_text(encoding="utf-8"))
        for contract in document["contracts"]:
            terms[(str(document["insurer"]), contract["code"])] = contract["domains"]
    return terms


def check(world: World, card: Mapping[str, object], domains: list[str] | None = None) -> Any:
    body = {"card": card, "care_date": TODAY.isoformat(), "domains": domains or ["PHAR", "MED"]}
    return world.client.post("/v1/eligibility", json=body, headers=world.pharmacy.headers)


def expected_rights(person: Person, domains: list[str]) -> list[dict[str, object]]:
    terms = catalogue_terms()[(person.amc_number, person.contract)]
    end = person.coverage_end.isoformat() if person.coverage_end else None
    rights: list[dict[str, object]] = []
    for domain in domains:
        term = terms.get(domain)
        rights.append(
            {
                "domain": domain,
                "covered": term is not None,
                "tiers_payant": bool(term and term["tiers_payant"]),
                "coverage_code": str(term["coverage_code"]) if term else None,
                "valid_until": end if term else None,
            }
        )
    return rights


def audit_count(world: World) -> int:
    with world.platform.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(audit_events)).scalar_one())


def test_given_covered_beneficiaries_of_each_insurer_then_every_domain_as_in_the_catalogue(
    world: World,
) -> None:
    seen_contracts: set[tuple[str, str]] = set()
    for amc in world.amc_numbers:
        for contract in {p.contract for p in world.people[amc]}:
            person = world.covered(amc, contract)
            response = check(world, person.card(), ALL_DOMAINS)
            assert response.status_code == 200, response.text
            body = response.json()
            # A covered answer binds: it carries an engagement number (rights kind).
            assert body.pop("engagement_number").startswith("ENG1-R-")
            assert body == {
                "care_date": TODAY.isoformat(),
                "rights": expected_rights(person, ALL_DOMAINS),
            }
            seen_contracts.add((amc, contract))
    assert len(seen_contracts) == 4  # two insurers, two contracts each


def test_given_a_beneficiary_leaving_later_then_valid_until_is_the_end_of_coverage(
    world: World,
) -> None:
    leaving = next(
        p
        for p in world.everyone()
        if p.coverage_end is not None and p.coverage_end > TODAY and p.covered_on(TODAY)
    )
    response = check(world, leaving.card(), ["PHAR"])
    assert response.status_code == 200
    assert response.json()["rights"] == expected_rights(leaving, ["PHAR"])
    assert response.json()["rights"][0]["valid_until"] == leaving.coverage_end.isoformat()  # type: ignore[union-attr]


def test_given_member_number_and_birth_date_then_same_answer_as_by_nir(world: World) -> None:
    person = next(
        p
        for p in world.people[world.amc_numbers[1]]
        if p.covered_on(TODAY)
        and sum(
            1
            for q in world.people[p.amc_number]
            if (q.member_number, q.birth_date) == (p.member_number, p.birth_date)
        )
        == 1
    )
    by_member = {
        "amc_number": person.amc_number,
        "birth_date": person.birth_date.isoformat(),
        "member_number": person.member_number,
    }
    assert check(world, by_member).json() == check(world, person.card()).json()


def test_given_a_covered_answer_then_it_carries_no_identity_data(world: World) -> None:
    person = world.covered()
    response = check(world, person.card(), ALL_DOMAINS)
    assert response.status_code == 200
    text = response.text + "".join(f"{k}:{v}" for k, v in response.headers.items())
    for value in person.identity_strings():
        assert value not in text
    assert person.member_number not in text
    assert not IDENTITY_FIELDS & set(_keys(response.json()))


def _keys(value: object) -> Iterator[str]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield str(key)
            yield from _keys(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _keys(inner)


def test_given_unknown_mismatched_or_not_covered_then_the_answers_are_byte_equal(
    world: World,
) -> None:
    person = world.covered()
    other_insurer = world.covered(world.amc_numbers[1])
    former = world.not_covered()
    unknown_nir = _unknown_nir(world)
    cards: dict[str, dict[str, object]] = {
        "unknown NIR": person.card(nir=unknown_nir),
        "wrong birth date": person.card(birth_date=date(1901, 1, 1).isoformat()),
        "wrong birth rank": person.card(birth_rank=person.birth_rank + 1),
        "coverage ended": former.card(),
        "insured elsewhere": other_insurer.card(amc_number=person.amc_number),
        "unknown member number": {
            "amc_number": person.amc_number,
            "birth_date": person.birth_date.isoformat(),
            "member_number": "Z99999999",
        },
    }
    answers = {why: check(world, card) for why, card in cards.items()}
    reference = answers["unknown NIR"]
    assert reference.status_code == 200
    assert reference.json()["rights"] == [
        {"domain": d, "covered": False, "tiers_payant": False, "coverage_code": None,
         "valid_until": None}
        for d in ("PHAR", "MED")
    ]  # fmt: skip
    # The very bytes the "no rights" answer had before engagement numbers existed: no
    # engagement field at all, not even null.
    assert reference.content == (
        b'{"care_date":"' + TODAY.isoformat().encode() + b'","rights":['
        b'{"domain":"PHAR","covered":false,"tiers_payant":false,"coverage_code":null,'
        b'"valid_until":null},'
        b'{"domain":"MED","covered":false,"tiers_payant":false,"coverage_code":null,'
        b'"valid_until":null}]}'
    )
    for why, answer in answers.items():
        assert (answer.status_code, answer.content) == (200, reference.content), why
        assert answer.headers["content-length"] == reference.headers["content-length"], why


def _unknown_nir(world: World) -> str:
    known = {p.nir for p in world.everyone()}
    rng = random.Random(7)
    while True:
        candidate = make_nir(rng)
        if candidate not in known and "A" not in candidate and "B" not in candidate:
            return candidate


def test_given_a_check_then_one_audit_event_names_the_pseudonym_and_never_the_nir(
    world: World,
) -> None:
    person = world.covered()
    before = audit_count(world)
    assert check(world, person.card()).status_code == 200
    assert audit_count(world) == before + 1
    with world.platform.engine.connect() as conn:
        event = audit.last_event(conn)
    assert event is not None
    assert (event.action, event.decision) == ("eligibility.check", "hit")
    assert event.actor == world.pharmacy.principal_id
    assert event.structure == world.pharmacy.structure
    assert event.subject is not None
    assert len(event.subject) == 32
    flat = repr(event)
    for value in person.identity_strings():
        assert value not in flat


def test_given_a_miss_then_it_is_audited_without_subject(world: World) -> None:
    person = world.covered()
    assert check(world, person.card(nir=_unknown_nir(world))).status_code == 200
    with world.platform.engine.connect() as conn:
        event = audit.last_event(conn)
    assert event is not None
    assert (event.action, event.decision, event.subject) == ("eligibility.check", "miss", None)


def test_given_an_unknown_insurer_then_404_insurer_unknown(world: World) -> None:
    response = check(world, world.covered().card(amc_number="99999999"))
    assert response.status_code == 404
    assert error_code(response) == "insurer.unknown"


def test_given_care_date_too_far_then_specific_codes(world: World) -> None:
    card = world.covered().card()
    for care_date, code in (("2026-05-01", "eligibility.care_date_future"),
                            ("2020-01-01", "eligibility.care_date_past")):  # fmt: skip
        body = {"card": card, "care_date": care_date, "domains": ["PHAR"]}
        response = world.client.post("/v1/eligibility", json=body, headers=world.gp.headers)
        assert response.status_code == 422
        assert error_code(response) == code


def test_given_nir_without_rank_or_no_identifier_then_specific_codes(world: World) -> None:
    person = world.covered()
    card = person.card()
    del card["birth_rank"]
    assert error_code(check(world, card)) == "eligibility.birth_rank_missing"
    bare = {"amc_number": person.amc_number, "birth_date": person.birth_date.isoformat()}
    assert error_code(check(world, bare)) == "eligibility.identifiers_missing"


def test_openapi_has_no_search_list_or_identity_answer_for_providers(world: World) -> None:
    document = world.client.app.openapi()  # type: ignore[attr-defined]
    paths: dict[str, dict[str, Any]] = document["paths"]
    assert {"/v1/eligibility", "/v1/calculations", "/v1/oauth/token"} <= set(paths)
    for path, operations in paths.items():
        lowered = path.lower()
        assert not any(word in lowered for word in ("search", "list", "browse", "find")), path
        for method, operation in operations.items():
            names = {p["name"].lower() for p in operation.get("parameters", [])}
            assert not names & {"nir", "q", "query", "name", "last_name", "birth_date"}, (
                method,
                path,
            )
            if operation.get("x-policy") != "provider":
                continue
            # A provider's answers never describe a person.
            assert method != "get" or "beneficiar" not in lowered, path
            for response in operation.get("responses", {}).values():
                for media in response.get("content", {}).values():
                    fields = set(_schema_fields(document, media.get("schema", {})))
                    assert not fields & IDENTITY_FIELDS, (method, path, fields & IDENTITY_FIELDS)


def _schema_fields(
    document: Mapping[str, Any], schema: Mapping[str, Any], seen: frozenset[str] = frozenset()
) -> Iterator[str]:
    """Every property name reachable from ``schema`` (following $ref once each)."""
    ref = schema.get("$ref")
    if isinstance(ref, str):
        if ref in seen:
            return
        target: Any = document
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        yield from _schema_fields(document, target, seen | {ref})
        return
    for name, inner in schema.get("properties", {}).items():
        yield name
        yield from _schema_fields(document, inner, seen)
    for key in ("items", "additionalProperties"):
        inner = schema.get(key)
        if isinstance(inner, dict):
            yield from _schema_fields(document, inner, seen)
    for key in ("anyOf", "oneOf", "allOf"):
        for inner in schema.get(key, []):
            yield from _schema_fields(document, inner, seen)
