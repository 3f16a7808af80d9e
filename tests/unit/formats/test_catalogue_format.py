"""The catalogue file format: strict parsing with located errors, and a lossless round trip."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from tierspayant.domain.care import CareDomain
from tierspayant.domain.errors import CatalogueError
from tierspayant.domain.guarantees import (
    Catalogue,
    Ceiling,
    Contract,
    DomainTerms,
    Frequency,
    Guarantee,
    InsurerContact,
    Period,
)
from tierspayant.formats.catalogue import (
    dump_catalogue,
    dump_catalogue_yaml,
    parse_catalogue,
    read_catalogue,
)

EXAMPLES = sorted(
    (Path(__file__).resolve().parents[3] / "src" / "tierspayant" / "reference" / "demo").glob(
        "*.yaml"
    )
)
D = CareDomain


def minimal() -> dict[str, Any]:
    return {
        "insurer": "75012345",
        "version": "1",
        "contracts": [
            {
                "code": "A",
                "label": "A",
                "responsable": False,
                "domains": {"MED": {"tiers_payant": True, "coverage_code": "100"}},
                "guarantees": [{"domain": "MED", "family": "*", "rate": 100}],
            },
            {
                "code": "B",
                "label": "B",
                "responsable": False,
                "domains": {
                    "MED": {"tiers_payant": True, "coverage_code": "150"},
                    "DENT": {"tiers_payant": False, "coverage_code": "200"},
                },
                "guarantees": [
                    {"domain": "MED", "family": "*", "rate": "150", "rate_non_optam": "130"},
                    {"domain": "DENT", "family": "*", "rate": 100},
                    {"domain": "DENT", "family": "dental_implant", "flat": "150.00"},
                    {
                        "domain": "DENT",
                        "family": "dental_prosthesis",
                        "rate": 200,
                        "ceilings": [
                            {"counter": "dental", "period": "calendar_year", "amount": "1000"}
                        ],
                    },
                ],
            },
        ],
    }


def test_minimal_document_parses_to_the_model() -> None:
    catalogue = parse_catalogue(minimal())
    assert catalogue.insurer == "75012345"
    second = catalogue.contract("B")
    assert second.domains[D.DENT] == DomainTerms(False, "200")
    assert second.guarantees[0] == Guarantee(D.MED, "*", rate_bp=15000, rate_non_optam_bp=13000)
    assert second.guarantees[2].flat_cents == 15000
    assert second.guarantees[3].ceilings == (
        Ceiling("dental", Period.CALENDAR_YEAR, amount_cents=100000),
    )
    assert second.hundred_percent_sante is True  # the default


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_examples_round_trip(path: Path) -> None:
    catalogue = read_catalogue(path)
    # Given the canonical mapping, when parsed again, then nothing is lost
    assert parse_catalogue(dump_catalogue(catalogue)) == catalogue
    # …and through JSON text and YAML text
    assert parse_catalogue(json.dumps(dump_catalogue(catalogue))) == catalogue
    assert parse_catalogue(dump_catalogue_yaml(catalogue)) == catalogue


def test_there_are_three_example_insurers() -> None:
    insurers = {read_catalogue(p).insurer for p in EXAMPLES}
    assert len(insurers) == 3


@pytest.mark.parametrize(
    ("value", "cents"),
    [("12.50", 1250), (12.5, 1250), (12, 1200), ("0.05", 5), ("1000", 100000), (0.1, 10)],
    ids=repr,
)
def test_amounts_as_text_or_numbers(value: Any, cents: int) -> None:
    document = minimal()
    document["contracts"][1]["guarantees"][2]["flat"] = value
    assert parse_catalogue(document).contract("B").guarantees[2].flat_cents == cents


def test_rates_as_text_or_numbers_with_decimals() -> None:
    document = minimal()
    document["contracts"][1]["guarantees"][0]["rate"] = "137.5"
    document["contracts"][1]["guarantees"][0]["rate_non_optam"] = 117.25
    parsed = parse_catalogue(document).contract("B").guarantees[0]
    assert (parsed.rate_bp, parsed.rate_non_optam_bp) == (13750, 11725)


def _set(document: dict[str, Any], path: list[Any], value: Any) -> dict[str, Any]:
    target: Any = document
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return document


_DELETE = object()
G3 = ["contracts", 1, "guarantees", 3]

MALFORMED = [
    pytest.param(
        [*G3, "rat"],
        200,
        "catalogue.unknown_key",
        "contracts[1].guarantees[3].rat",
        id="unknown-key-in-guarantee",
    ),
    pytest.param(
        ["contracts", 0, "covers_particiption"],
        True,
        "catalogue.unknown_key",
        "contracts[0].covers_particiption",
        id="misspelt-flag",
    ),
    pytest.param(["owner"], "x", "catalogue.unknown_key", "owner", id="unknown-root-key"),
    pytest.param(
        [*G3, "rate"],
        "two hundred",
        "catalogue.wrong_type",
        "contracts[1].guarantees[3].rate",
        id="rate-not-a-number",
    ),
    pytest.param(
        [*G3, "rate"],
        True,
        "catalogue.wrong_type",
        "contracts[1].guarantees[3].rate",
        id="rate-boolean",
    ),
    pytest.param(
        [*G3, "rate"],
        "-10",
        "catalogue.negative_amount",
        "contracts[1].guarantees[3].rate",
        id="negative-rate",
    ),
    pytest.param(
        [*G3, "rate"],
        "100.125",
        "catalogue.too_many_decimals",
        "contracts[1].guarantees[3].rate",
        id="rate-three-decimals",
    ),
    pytest.param(
        [*G3, "rate"],
        1200,
        "catalogue.bad_rate",
        "contracts[1].guarantees[3].rate",
        id="rate-above-1000",
    ),
    pytest.param(
        [*G3, "ceilings", 0, "amount"],
        "-5.00",
        "catalogue.negative_amount",
        "contracts[1].guarantees[3].ceilings[0].amount",
        id="negative-ceiling",
    ),
    pytest.param(
        [*G3, "ceilings", 0, "amount"],
        "12.345",
        "catalogue.too_many_decimals",
        "contracts[1].guarantees[3].ceilings[0].amount",
        id="amount-three-decimals",
    ),
    pytest.param(
        [*G3, "ceilings", 0, "amount"],
        0.001,
        "catalogue.too_many_decimals",
        "contracts[1].guarantees[3].ceilings[0].amount",
        id="float-three-decimals",
    ),
    pytest.param(
        [*G3, "ceilings", 0, "amount"],
        "NaN",
        "catalogue.wrong_type",
        "contracts[1].guarantees[3].ceilings[0].amount",
        id="amount-nan",
    ),
    pytest.param(
        [*G3, "ceilings", 0, "amount"],
        "20000000",
        "catalogue.amount_too_large",
        "contracts[1].guarantees[3].ceilings[0].amount",
        id="amount-too-large",
    ),
    pytest.param(
        [*G3, "ceilings", 0, "period"],
        "yearly",
        "catalogue.bad_period",
        "contracts[1].guarantees[3].ceilings[0].period",
        id="unknown-period",
    ),
    pytest.param(
        [*G3, "ceilings", 0, "counter"],
        "amo.franchise.year",
        "catalogue.bad_counter",
        "contracts[1].guarantees[3].ceilings[0].counter",
        id="reserved-counter",
    ),
    pytest.param(
        [*G3, "ceilings", 0, "amount"],
        _DELETE,
        "catalogue.empty_ceiling",
        "contracts[1].guarantees[3].ceilings[0]",
        id="ceiling-without-limit",
    ),
    pytest.param(
        [*G3, "ceilings"],
        {"counter": "x"},
        "catalogue.wrong_type",
        "contracts[1].guarantees[3].ceilings",
        id="ceilings-not-a-list",
    ),
    pytest.param(
        [*G3, "domain"],
        "MEDECINE",
        "catalogue.unknown_domain",
        "contracts[1].guarantees[3].domain",
        id="unknown-domain-in-guarantee",
    ),
    pytest.param(
        ["contracts", 1, "domains", "OPTIQUE"],
        {"tiers_payant": True, "coverage_code": "1"},
        "catalogue.unknown_domain",
        "contracts[1].domains.OPTIQUE",
        id="unknown-domain-in-terms",
    ),
    pytest.param(
        ["contracts", 1, "domains", "MED", "tiers_payant"],
        "yes",
        "catalogue.wrong_type",
        "contracts[1].domains.MED.tiers_payant",
        id="boolean-as-text",
    ),
    pytest.param(
        [*G3, "family"],
        "Dental Prosthesis",
        "catalogue.bad_family",
        "contracts[1].guarantees[3].family",
        id="bad-family-name",
    ),
    pytest.param(
        [*G3, "min_age"],
        12.5,
        "catalogue.wrong_type",
        "contracts[1].guarantees[3].min_age",
        id="age-not-whole",
    ),
    pytest.param(
        [*G3, "waiting_days"],
        -3,
        "catalogue.negative_number",
        "contracts[1].guarantees[3].waiting_days",
        id="negative-waiting",
    ),
    pytest.param(
        [*G3, "frequency"],
        {"key": "glasses", "month": 24},
        "catalogue.unknown_key",
        "contracts[1].guarantees[3].frequency.month",
        id="misspelt-frequency-key",
    ),
    pytest.param(
        [*G3, "actual_costs"],
        True,
        "catalogue.conflicting_formula",
        "contracts[1].guarantees[3].actual_costs",
        id="actual-costs-with-rate",
    ),
    pytest.param(
        [*G3, "rate"],
        _DELETE,
        "catalogue.empty_guarantee",
        "contracts[1].guarantees[3]",
        id="guarantee-without-formula",
    ),
    pytest.param(
        ["contracts", 1, "guarantees", 1, "domain"],
        "OPTI",
        "catalogue.guarantee_domain_not_covered",
        "contracts[1].guarantees[1].domain",
        id="guarantee-domain-not-listed",
    ),
    pytest.param(
        ["contracts", 1, "code"],
        "A",
        "catalogue.duplicate_contract",
        "contracts[1].code",
        id="duplicate-contract-code",
    ),
    pytest.param(
        ["contracts", 1, "label"],
        _DELETE,
        "catalogue.missing_key",
        "contracts[1].label",
        id="missing-label",
    ),
    pytest.param(
        ["contracts", 1, "responsable"],
        None,
        "catalogue.missing_key",
        "contracts[1].responsable",
        id="null-responsable",
    ),
    pytest.param(["insurer"], 75012345, "catalogue.wrong_type", "insurer", id="insurer-unquoted"),
    pytest.param(["insurer"], "AMC-1", "catalogue.bad_insurer", "insurer", id="insurer-not-digits"),
    pytest.param(
        ["format"],
        "tierspayant-catalogue/2",
        "catalogue.unsupported_format",
        "format",
        id="future-format",
    ),
    pytest.param(["contracts"], [], "catalogue.no_contracts", None, id="no-contracts"),
    pytest.param(
        ["contracts", 0], "A", "catalogue.wrong_type", "contracts[0]", id="contract-not-an-object"
    ),
]


@pytest.mark.parametrize(("path", "value", "code", "where"), MALFORMED)
def test_malformed_documents_name_the_place(
    path: list[Any], value: Any, code: str, where: str | None
) -> None:
    # Given a valid document with one thing wrong
    document = _set(copy.deepcopy(minimal()), path, value)
    # When parsed, then the error says what and where
    with pytest.raises(CatalogueError) as caught:
        parse_catalogue(document)
    assert (caught.value.code, caught.value.field) == (code, where)


def test_text_that_is_not_yaml() -> None:
    with pytest.raises(CatalogueError) as caught:
        parse_catalogue("contracts: [unclosed")
    assert caught.value.code == "catalogue.malformed"


def test_yaml_tags_are_not_executed() -> None:
    # safe_load refuses arbitrary Python objects
    with pytest.raises(CatalogueError) as caught:
        parse_catalogue("insurer: !!python/object/apply:os.system ['true']")
    assert caught.value.code == "catalogue.malformed"


def test_a_yaml_document_that_is_a_list_is_refused() -> None:
    with pytest.raises(CatalogueError) as caught:
        parse_catalogue("- a\n- b\n")
    assert caught.value.code == "catalogue.wrong_type"


def test_dump_leaves_defaults_out_and_writes_amounts_as_text() -> None:
    dumped = dump_catalogue(parse_catalogue(minimal()))
    guarantees = dumped["contracts"][1]["guarantees"]
    assert guarantees[0] == {"domain": "MED", "family": "*", "rate": "150", "rate_non_optam": "130"}
    assert guarantees[2] == {"domain": "DENT", "family": "dental_implant", "flat": "150.00"}
    assert "covers_participation" not in dumped["contracts"][0]
    assert yaml.safe_load(dump_catalogue_yaml(parse_catalogue(minimal()))) == dumped


# --- round trip of any catalogue --------------------------------------------------------

_NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)


@st.composite
def guarantees(draw: st.DrawFn, domains: list[CareDomain]) -> Guarantee:
    actual = draw(st.booleans())
    rate = None if actual else draw(st.one_of(st.none(), st.integers(0, 100_000)))
    amount = draw(st.one_of(st.none(), st.integers(0, 10**9)))
    ceilings = tuple(
        Ceiling(
            draw(_NAMES),
            draw(st.sampled_from(list(Period))),
            amount_cents=amount,
            count=draw(st.integers(1, 99)) if amount is None else None,
            includes_tm=draw(st.booleans()),
        )
        for _ in range(draw(st.integers(0, 2)))
    )
    flat = None if actual else draw(st.one_of(st.none(), st.integers(0, 10**6)))
    if not actual and rate is None and flat is None:
        flat = 0
    min_age = draw(st.one_of(st.none(), st.integers(0, 60)))
    return Guarantee(
        draw(st.sampled_from(domains)),
        draw(st.one_of(st.just("*"), _NAMES)),
        rate_bp=rate,
        rate_non_optam_bp=draw(st.one_of(st.none(), st.integers(0, 100_000)))
        if rate is not None
        else None,
        flat_cents=flat,
        actual_costs=actual,
        ceilings=ceilings,
        waiting_days=draw(st.integers(0, 400)),
        min_age=min_age,
        max_age=draw(st.one_of(st.none(), st.integers(min_age or 0, 120))),
        frequency=draw(
            st.one_of(
                st.none(),
                st.builds(
                    Frequency,
                    _NAMES,
                    st.integers(1, 60),
                    st.one_of(st.none(), st.integers(1, 60)),
                    st.integers(1, 30),
                ),
            )
        ),
        label=draw(st.sampled_from(["", "per eye", "forfait annuel"])),
    )


@st.composite
def catalogues(draw: st.DrawFn) -> Catalogue:
    contracts = []
    for index in range(draw(st.integers(1, 3))):
        domains = draw(st.lists(st.sampled_from(list(CareDomain)), min_size=1, unique=True))
        contracts.append(
            Contract(
                f"C{index}",
                draw(st.sampled_from(["Essentiel", "Confort — 200 % BR"])),
                draw(st.booleans()),
                {
                    d: DomainTerms(
                        draw(st.booleans()), draw(st.sampled_from(["100", "PH7", "OPT 2"]))
                    )
                    for d in domains
                },
                tuple(draw(st.lists(guarantees(domains), max_size=6))),
                hundred_percent_sante=draw(st.booleans()),
                covers_participation=draw(st.booleans()),
                covers_franchises=draw(st.booleans()),
                covers_hors_parcours=draw(st.booleans()),
            )
        )
    contact = draw(
        st.one_of(
            st.none(),
            st.tuples(
                st.sampled_from(["", "Service adhérents", "Relation « santé »"]),
                st.sampled_from(["", "01 99 00 12 34", "+33 (0)1 99.00.12.34"]),
                st.sampled_from(["", "a@b.example"]),
                st.sampled_from(["", "1 rue de la Paix, 75002 Paris"]),
            )
            .filter(any)
            .map(lambda fields: InsurerContact(*fields)),
        )
    )
    return Catalogue(
        draw(st.from_regex(r"[0-9]{8,9}", fullmatch=True)),
        "v1",
        tuple(contracts),
        name="X",
        contact=contact,
    )


@settings(max_examples=150, deadline=None)
@given(catalogue=catalogues())
def test_any_catalogue_round_trips(catalogue: Catalogue) -> None:
    assert parse_catalogue(dump_catalogue(catalogue)) == catalogue
    assert parse_catalogue(dump_catalogue_yaml(catalogue)) == catalogue


def test_a_card_block_gives_the_routing_fields_and_round_trips() -> None:
    document = minimal()
    document["card"] = {"convention_type": "TM1", "routing_criterion": "0042"}
    catalogue = parse_catalogue(document)
    assert catalogue.card is not None
    assert (catalogue.card.convention_type, catalogue.card.routing_criterion) == ("TM1", "0042")
    assert dump_catalogue(catalogue)["card"] == document["card"]
    assert parse_catalogue(dump_catalogue(catalogue)) == catalogue
    document["card"] = {"routing_criterion": "7"}
    only_csr = parse_catalogue(document).card
    assert only_csr is not None
    assert only_csr.convention_type == ""
    assert parse_catalogue(minimal()).card is None
    assert "card" not in dump_catalogue(parse_catalogue(minimal()))


@pytest.mark.parametrize(
    ("card", "code", "field"),
    [
        ({"convention_type": "tm1"}, "catalogue.bad_card_routing", "card.convention_type"),
        ({"convention_type": "ABCDE"}, "catalogue.bad_card_routing", "card.convention_type"),
        ({"routing_criterion": "12A"}, "catalogue.bad_card_routing", "card.routing_criterion"),
        ({"routing_criterion": "1" * 11}, "catalogue.bad_card_routing", "card.routing_criterion"),
        ({"routing_criterion": 42}, "catalogue.wrong_type", "card.routing_criterion"),
        ({}, "catalogue.bad_card_routing", "card"),
        ({"csr": "1"}, "catalogue.unknown_key", "card.csr"),
        ("TM1", "catalogue.wrong_type", "card"),
    ],
)
def test_a_malformed_card_block_is_refused_where_it_is(card: Any, code: str, field: str) -> None:
    document = minimal()
    document["card"] = card
    with pytest.raises(CatalogueError) as caught:
        parse_catalogue(document)
    assert (caught.value.code, caught.value.field) == (code, field)


def test_a_contact_block_gives_the_insurers_contact_and_round_trips() -> None:
    document = minimal()
    document["contact"] = {
        "name": "Service adhérents",
        "phone": "+33 1 99 00 12 34",
        "email": "adherents@mutuelle.example",
        "address": "12 rue des Tilleuls, 75012 Paris",
    }
    catalogue = parse_catalogue(document)
    assert catalogue.contact is not None
    assert catalogue.contact.phone == "+33 1 99 00 12 34"
    assert catalogue.contact.address == "12 rue des Tilleuls, 75012 Paris"
    assert dump_catalogue(catalogue)["contact"] == document["contact"]

    document["contact"] = {"phone": "01 99 00 12 34"}  # any one field is enough
    only_phone = parse_catalogue(document).contact
    assert only_phone is not None
    assert (only_phone.name, only_phone.phone) == ("", "01 99 00 12 34")
    assert dump_catalogue(parse_catalogue(document))["contact"] == {"phone": "01 99 00 12 34"}
    assert parse_catalogue(minimal()).contact is None
    assert "contact" not in dump_catalogue(parse_catalogue(minimal()))


@pytest.mark.parametrize(
    ("contact", "code", "field"),
    [
        ({"email": "adherents.mutuelle.example"}, "catalogue.wrong_type", "contact.email"),
        ({"phone": "appelez-nous"}, "catalogue.wrong_type", "contact.phone"),
        ({"phone": 199001234}, "catalogue.wrong_type", "contact.phone"),
        ({"name": "  "}, "catalogue.wrong_type", "contact.name"),
        ({}, "catalogue.missing_key", "contact"),
        ({"fax": "01 99 00 12 35"}, "catalogue.unknown_key", "contact.fax"),
        ("01 99 00 12 34", "catalogue.wrong_type", "contact"),
    ],
)
def test_a_malformed_contact_block_is_refused_where_it_is(
    contact: Any, code: str, field: str
) -> None:
    document = minimal()
    document["contact"] = contact
    with pytest.raises(CatalogueError) as caught:
        parse_catalogue(document)
    assert (caught.value.code, caught.value.field) == (code, field)
