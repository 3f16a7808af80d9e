"""The national data set generator (bench/national.py), at a small size: the plan's sizes,
files the real import takes without a reject, and misses that name nobody."""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path

import pytest
import yaml
from bench.national import generate, plan_insurers

from tierspayant.app.platform import initialise
from tierspayant.config import load_settings
from tierspayant.demo.builder import DEMO_ACTOR
from tierspayant.domain.identifiers import parse_nir_value
from tierspayant.services import enrolment, insurers


def test_sizes_follow_the_plan_a_few_large_and_a_long_tail() -> None:
    plans = plan_insurers(20_000_000, 84, seed=16)
    sizes = [p.people for p in plans]
    assert sum(sizes) == 20_000_000
    assert sizes == sorted(sizes, reverse=True)
    assert 3_000_000 < sizes[0] < 6_000_000  # a national group of several million
    assert sum(sizes[:3]) > 6_000_000
    assert sizes[-1] < 60_000  # the long tail of small mutuelles
    assert len({p.amc_number for p in plans}) == 84
    assert {p.kind for p in plans} == {"mutuelle", "prevoyance", "assureur"}


@pytest.fixture(scope="module")
def national(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("national")
    args = argparse.Namespace(
        out=out,
        people=3_000,
        insurers=4,
        providers=40,
        checks=600,
        miss_percent=20,
        workers=1,
        seed=7,
        file_date=date.today().isoformat(),
    )
    generate(args)
    return out


def test_every_file_is_imported_without_a_reject(national: Path, tmp_path: Path) -> None:
    manifest = json.loads((national / "manifest.json").read_text("utf-8"))
    assert manifest["people"] == 3_000
    platform = initialise(load_settings({"TIERSPAYANT_DATA_DIR": str(tmp_path / "data")}))
    try:
        total = 0
        for plan in manifest["plan"]:
            insurers.add_insurer(
                platform, plan["amc_number"], plan["name"], plan["kind"], DEMO_ACTOR
            )
            catalogue = national / f"catalogue_{plan['amc_number']}.yaml"
            insurers.upload_catalogue(
                platform,
                plan["amc_number"],
                yaml.safe_load(catalogue.read_text("utf-8")),
                DEMO_ACTOR,
            )
            result = enrolment.import_beneficiaries(
                platform,
                plan["amc_number"],
                national / f"beneficiaries_{plan['amc_number']}.csv",
                mode="full",
                file_date=platform.today(),
                actor=DEMO_ACTOR,
            )
            assert result.rejected == 0
            assert result.inserted == plan["people"]
            total += result.inserted
        assert total == 3_000
    finally:
        platform.close()


def test_the_day_of_checks_mixes_misses_that_name_nobody(national: Path) -> None:
    known: dict[str, set[str]] = {}
    for path in national.glob("beneficiaries_*.csv"):
        amc = path.stem.split("_", 1)[1]
        with path.open(encoding="utf-8") as handle:
            next(handle)
            known[amc] = {line.split(";")[1] for line in handle}
    lines = [
        json.loads(x) for x in (national / "rights_checks.jsonl").read_text("utf-8").splitlines()
    ]
    misses = [x for x in lines if x["miss"]]
    assert 0.15 < len(misses) / len(lines) < 0.25
    for line in lines:
        card = line["body"]["card"]
        assert parse_nir_value(card["nir"]) == card["nir"]  # a valid NIR, key included
        assert (card["nir"] in known[card["amc_number"]]) is not line["miss"]
