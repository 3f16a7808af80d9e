"""The dated reference data: figures in force on a date, and a strict document format."""

from __future__ import annotations

import copy
import json
from datetime import date
from importlib import resources
from typing import Any

import pytest

from tierspayant.domain.reference import ReferenceDataError, parse_reference
from tierspayant.formats.reference import load_default_reference

REFERENCE = load_default_reference()


def packaged() -> dict[str, Any]:
    text = resources.files("tierspayant").joinpath("reference", "rules.json").read_text("utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


@pytest.mark.parametrize(
    ("day", "attribute", "expected"),
    [
        (date(2024, 5, 14), "participation_cents", 100),
        (date(2024, 5, 15), "participation_cents", 200),
        (date(2024, 5, 14), "participation_daily_cap_cents", 400),
        (date(2024, 5, 15), "participation_daily_cap_cents", 800),
        (date(2026, 1, 1), "participation_annual_cap_cents", 5000),
        (date(2026, 1, 1), "franchise_annual_cap_cents", 5000),
        (date(2026, 1, 1), "hospital_daily_charge_cents", 2000),
        (date(2026, 1, 1), "hospital_daily_charge_psychiatry_cents", 1500),
        (date(2026, 1, 1), "hors_parcours_rate_bp", 3000),
        (date(2026, 1, 1), "optics_frame_cap_cents", 10000),
        (date(2026, 1, 1), "hearing_class_ii_cap_cents", 170000),
        (date(2026, 1, 1), "hearing_class_i_plv_cents", 95000),
        (date(2026, 1, 1), "non_optam_max_excess_bp", 10000),
        (date(2026, 1, 1), "optam_min_gap_bp", 2000),
        (date(2026, 1, 1), "glasses_renewal_months", 24),
        (date(2026, 1, 1), "glasses_renewal_months_young", 12),
        (date(2026, 1, 1), "hearing_renewal_months", 48),
    ],
    ids=lambda v: str(v),
)
def test_figures_in_force_on_a_date(day: date, attribute: str, expected: int) -> None:
    assert getattr(REFERENCE.on(day), attribute) == expected


@pytest.mark.parametrize(
    ("day", "drug", "paramedical", "transport"),
    [(date(2024, 3, 30), 50, 50, 200), (date(2024, 3, 31), 100, 100, 400)],
    ids=str,
)
def test_franchises_doubled_on_2024_03_31(
    day: date, drug: int, paramedical: int, transport: int
) -> None:
    assert dict(REFERENCE.on(day).franchise_cents) == {
        "drug": drug,
        "paramedical": paramedical,
        "transport": transport,
    }


def test_amo_rates_by_family() -> None:
    rates = REFERENCE.on(date(2026, 1, 1)).family_rates_bp
    assert rates["consultation"] == rates["specialist"] == rates["midwife"] == 7000
    assert rates["nursing"] == rates["lab_test"] == rates["dental_care"] == 6000
    assert rates["optics_frame"] == rates["hearing_aid"] == 6000
    assert (rates["drug_100"], rates["drug_65"], rates["drug_30"], rates["drug_15"]) == (
        10000,
        6500,
        3000,
        1500,
    )
    assert rates["hospital_stay"] == 8000
    assert rates["transport"] == 5500


@pytest.mark.parametrize(
    ("day", "rate_bp"),
    [(date(2023, 10, 1), 7000), (date(2023, 10, 14), 7000), (date(2023, 10, 15), 6000)],
)
def test_dental_rates_fell_to_60_percent_on_15_october_2023(day: date, rate_bp: int) -> None:
    # The arrêté published on 14 October 2023 raised the ticket modérateur of the acts
    # mostly performed by dentists, care and prostheses alike, from 30 % to 40 %.
    rates = REFERENCE.on(day).family_rates_bp
    assert (rates["dental_care"], rates["dental_prosthesis"]) == (rate_bp, rate_bp)


def test_doctors_acts_kept_70_percent_over_the_dental_change() -> None:
    # Acts mostly performed by doctors (stomatology, oral surgery, imaging) are priced
    # under the doctors' families, untouched by the dental change.
    for day in (date(2023, 10, 14), date(2023, 10, 15)):
        rates = REFERENCE.on(day).family_rates_bp
        assert (rates["technical_act"], rates["imaging"]) == (7000, 7000)


def test_optics_caps_by_lens_complexity() -> None:
    rules = REFERENCE.on(date(2026, 1, 1))
    assert rules.optics_cap("simple", "simple").floor_cents == 5000
    assert rules.optics_cap("simple", "simple").ceiling_cents == 42000
    assert rules.optics_cap("complex", "simple") == rules.optics_cap("simple", "complex")
    assert rules.optics_cap("very_complex", "very_complex").ceiling_cents == 80000


def test_every_figure_names_its_source() -> None:
    rules = REFERENCE.on(date(2026, 1, 1))
    assert "participation_forfaitaire" in rules.sources
    assert all(source.strip() for source in rules.sources.values())


def test_no_figures_before_the_table_starts() -> None:
    assert REFERENCE.first_day == date(2021, 1, 1)
    with pytest.raises(ReferenceDataError) as caught:
        REFERENCE.on(date(2020, 12, 31))
    assert caught.value.code == "reference.not_in_force"


def test_a_gap_in_a_series_means_not_in_force_during_the_gap() -> None:
    document = packaged()
    periods = document["parameters"]["participation_forfaitaire"]
    periods[0]["valid_to"] = "2024-05-01"  # nothing from 2024-05-02 to 2024-05-14
    table = parse_reference(document)
    assert table.on(date(2024, 5, 1)).participation_cents == 100
    with pytest.raises(ReferenceDataError):
        table.on(date(2024, 5, 2))
    assert table.on(date(2024, 5, 15)).participation_cents == 200


def _broken(change: str) -> dict[str, Any]:
    document = copy.deepcopy(packaged())
    if change == "no-source":
        del document["parameters"]["exemption_age"][0]["source"]
    elif change == "overlap":
        document["parameters"]["participation_forfaitaire"][0]["valid_to"] = "2024-06-01"
    elif change == "unknown-parameter":
        document["parameters"]["participation_forfait"] = document["parameters"]["exemption_age"]
    elif change == "missing-parameter":
        del document["parameters"]["franchise_annual_cap"]
    elif change == "bad-format":
        document["format"] = "tierspayant-reference/0"
    elif change == "unknown-key":
        document["parameters"]["exemption_age"][0]["comment"] = "x"
    elif change == "bad-amount":
        document["parameters"]["franchise_annual_cap"][0]["value"] = "50.001"
    elif change == "rate-above-100":
        document["amo_rates"]["doctor"][0]["value"] = "170"
    elif change == "family-unknown-rate":
        document["families"]["consultation"]["amo_rate"] = "doctors"
    elif change == "caps-incomplete":
        del document["parameters"]["responsable.optics_equipment"][0]["value"]["simple/simple"]
    elif change == "bad-date":
        document["parameters"]["exemption_age"][0]["valid_from"] = "2021-13-01"
    return document


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ("no-source", "parameters.exemption_age[0].source"),
        ("overlap", "parameters.participation_forfaitaire"),
        ("unknown-parameter", "parameters.participation_forfait"),
        ("missing-parameter", "parameters.franchise_annual_cap"),
        ("bad-format", "format"),
        ("unknown-key", "parameters.exemption_age[0].comment"),
        ("bad-amount", "parameters.franchise_annual_cap[0].value"),
        ("rate-above-100", "amo_rates.doctor[0].value"),
        ("family-unknown-rate", "families.consultation.amo_rate"),
        ("caps-incomplete", "parameters.responsable.optics_equipment[0].value"),
        ("bad-date", "parameters.exemption_age[0].valid_from"),
    ],
)
def test_malformed_reference_documents_are_refused(change: str, where: str) -> None:
    with pytest.raises(ReferenceDataError) as caught:
        parse_reference(_broken(change))
    assert (caught.value.code, caught.value.field) == ("reference.malformed", where)


def test_reference_text_must_be_json() -> None:
    with pytest.raises(ReferenceDataError) as caught:
        parse_reference("{not json")
    assert caught.value.code == "reference.malformed"
