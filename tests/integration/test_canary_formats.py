"""Canaries cannot be told from real members by the format of any field.

Given insurers whose real member numbers follow different patterns (a letter prefix and
seven digits; ten digits with a Luhn check digit; a year, a slash and five digits), when
canaries are planted, then compared with the real members (quality "member": canaries
head families of their own), for every format feature of a row (member number format and
prefix and check digit, NIR sex digit, département, consistency with the birth date,
birth decade, name formats, sex, rank, quality, contract, coverage, CSS) no canary shows
a value that no real member shows, and a classifier trained on half of the rows to pick
canaries by any one feature does no better than chance on the other half.
"""

from __future__ import annotations

import csv
import json
import random
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from tests.integration.test_cards import ACTOR, CATALOGUE, unique_amc
from tierspayant.app.platform import Platform
from tierspayant.demo.synthetic import write_beneficiaries_csv
from tierspayant.formats.beneficiaries import ImportMode
from tierspayant.security.crypto import FieldCipher, row_aad
from tierspayant.security.identity import open_column
from tierspayant.services import canaries
from tierspayant.services.enrolment import import_beneficiaries
from tierspayant.services.insurers import add_insurer, upload_catalogue
from tierspayant.store import cards as card_store
from tierspayant.store.beneficiaries import record_from_row
from tierspayant.store.keys import insurer_scope
from tierspayant.store.tables import audit_events, beneficiaries

POPULATION = 160
CANARIES = 40


def _luhn_complete(body: str) -> str:
    for digit in "0123456789":
        if canaries._luhn_valid(body + digit):
            return body + digit
    raise AssertionError("no Luhn digit")


PATTERNS: dict[str, Callable[[random.Random], str]] = {
    "prefix": lambda rng: f"MGN{rng.randint(0, 10**7 - 1):07d}",
    "luhn": lambda rng: _luhn_complete(f"{rng.randint(10**8, 10**9 - 1)}"),
    "year_slash": lambda rng: f"{rng.randint(2012, 2025)}/{rng.randint(0, 99_999):05d}",
}


def _insurer(platform: Platform, tmp_path: Path, pattern: str) -> tuple[str, int]:
    """An insurer whose beneficiary file numbers its families after ``pattern``."""
    amc = unique_amc()
    insurer = add_insurer(platform, amc, "Mutuelle des Tilleuls", "mutuelle", ACTOR)
    document = yaml.safe_load(CATALOGUE.read_text(encoding="utf-8"))
    document["insurer"] = amc
    upload_catalogue(platform, amc, document, ACTOR)
    path = tmp_path / f"benef-{amc}.csv"
    codes = [c["code"] for c in document["contracts"]]
    write_beneficiaries_csv(path, POPULATION, seed=31, contracts=codes, start=platform.today())
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter=";")
        fields = list(reader.fieldnames or ())
        rows = list(reader)
    rng = random.Random(pattern)
    renumbered: dict[str, str] = {}
    for row in rows:
        old = row["member_number"]
        while old not in renumbered:
            new = PATTERNS[pattern](rng)
            if new not in renumbered.values():
                renumbered[old] = new
        row["member_number"] = renumbered[old]
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fields, delimiter=";")
        writer.writeheader()
        writer.writerows(rows)
    import_beneficiaries(
        platform, amc, path, mode=ImportMode.FULL, file_date=platform.today(), actor=ACTOR
    )
    return amc, insurer.id


Features = dict[str, object]


def _shape(value: str) -> str:
    return re.sub(r"A+", "A", re.sub(r"[^\W\d_]", "A", value))


def _features(
    platform: Platform, amc: str, insurer_id: int
) -> tuple[list[Features], list[Features]]:
    """(real members' features, canaries' features): decrypted as only a key holder can."""
    with platform.engine.connect() as conn:
        operator = FieldCipher(platform.operator_keys())
        canary_ids = {
            int(operator.decrypt(ref, row_aad(insurer_id, "canary_marks", mark.hex(), "ref")))
            for mark, ref, _ in card_store.marks_of(conn, insurer_id)
        }
        cipher = FieldCipher(platform.keys.active(conn, insurer_scope(amc)))
        rows = conn.execute(select(beneficiaries).where(beneficiaries.c.insurer_id == insurer_id))
        records = [record_from_row(r) for r in rows]
    real: list[Features] = []
    planted: list[Features] = []
    for record in records:

        def clear(column: str, blob: bytes, idx: bytes = record.idx_nir) -> str:
            return open_column(cipher, insurer_id, idx, column, blob)

        member = clear("member_number", record.member_number_ct)
        nir = clear("nir", record.nir_ct)
        birth = clear("birth_date", record.birth_date_ct)
        last, first = (
            clear("last_name", record.last_name_ct),
            clear("first_name", record.first_name_ct),
        )
        digits = "".join(c for c in member if c.isdigit())
        features: Features = {
            "member_format": "".join(
                "9" if c.isdigit() else "A" if c.isalpha() else c for c in member
            ),
            "member_prefix": member.rstrip("0123456789"),
            "member_luhn": canaries._luhn_valid(digits) if digits else None,
            "nir_sex_digit": nir[0],
            "nir_departement": nir[5:7],
            "nir_matches_birth": nir[1:5] == birth[2:4] + birth[5:7],
            "birth_decade": birth[:3],
            "last_name_format": _shape(last),
            "last_name_case": last.isupper(),
            "first_name_format": _shape(first),
            "sex": record.sex,
            "birth_rank": record.birth_rank,
            "quality": record.quality,
            "contract": record.contract_code,
            "coverage_end": record.coverage_end is None,
            "coverage_start_day": record.coverage_start.day,
            "css": record.css,
        }
        (planted if record.id in canary_ids else real).append(features)
    return real, planted


def _rule_accuracy(feature: str, real: list[Features], planted: list[Features]) -> float:
    """Balanced accuracy on the second half of a rule learnt on the first half: a row is
    called a canary when its value is more frequent among training canaries than among
    training members."""
    real_train, real_test = real[::2], real[1::2]
    canary_train, canary_test = planted[::2], planted[1::2]
    real_share = Counter(r[feature] for r in real_train)
    canary_share = Counter(c[feature] for c in canary_train)
    flagged = {
        value
        for value, count in canary_share.items()
        if count / len(canary_train) > real_share.get(value, 0) / len(real_train)
    }
    caught = sum(c[feature] in flagged for c in canary_test) / len(canary_test)
    spared = sum(r[feature] not in flagged for r in real_test) / len(real_test)
    return (caught + spared) / 2


@pytest.mark.parametrize("pattern", sorted(PATTERNS))
def test_no_format_rule_tells_canaries_from_members(
    platform: Platform, tmp_path: Path, pattern: str
) -> None:
    # Given an insurer whose members are numbered after the pattern, and planted canaries
    amc, insurer_id = _insurer(platform, tmp_path, pattern)
    canaries.plant(platform, amc, CANARIES, ACTOR)
    population, planted = _features(platform, amc, insurer_id)
    assert len(planted) == CANARIES
    assert len(population) == POPULATION
    # A canary impersonates a member (the assuré principal, quality "member") heading a
    # family of one, as single members do: it is compared with the real members.
    assert {c["quality"] for c in planted} == {"member"}
    real = [r for r in population if r["quality"] == "member"]
    assert len(real) >= 40
    for feature in real[0]:
        # Then no canary has a value of the feature that no member has
        seen = {r[feature] for r in real}
        unseen = [c[feature] for c in planted if c[feature] not in seen]
        assert unseen == [], (pattern, feature, unseen)
        # And a rule on the feature picks canaries no better than chance
        assert _rule_accuracy(feature, real, planted) < 0.8, (pattern, feature)


def test_planting_audits_how_many_real_rows_it_read(platform: Platform, tmp_path: Path) -> None:
    # Given an insurer of 160 people, when canaries are planted
    amc, _ = _insurer(platform, tmp_path, "prefix")
    canaries.plant(platform, amc, 5, ACTOR)
    # Then the plant's audit event says how many real rows were decrypted to shape them
    with platform.engine.connect() as conn:
        detail = conn.execute(
            select(audit_events.c.detail).where(
                audit_events.c.action == "canary.plant", audit_events.c.insurer == amc
            )
        ).scalar_one()
    parsed = json.loads(detail) if isinstance(detail, str) else detail
    assert parsed == {"removed": 0, "planted": 5, "sampled": POPULATION}
