"""Synthetic, realistic beneficiary files for demos, tests and benchmarks.

Families share a member number: a member, often a spouse, children (twins now and then,
the second with birth rank 2). Every NIR is valid (its key checks) and agrees with the
person's sex, birth year and month, and a real département (or overseas, or born abroad
with a country code). Names come from Faker ``fr_FR``, drawn once into pools: calling
Faker for every field of every row would be the slowest part of the generator.

Deterministic for a given seed; streams to the file, so memory does not grow with
``count``. The identities are fake but shaped like real ones: treat the files like real
data all the same (they exercise the same masking and encryption paths).
"""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Final

from faker import Faker

from tierspayant.formats.beneficiaries import DELIMITER

HEADER: Final = (
    "member_number",
    "nir",
    "birth_rank",
    "birth_date",
    "last_name",
    "first_name",
    "sex",
    "quality",
    "contract",
    "coverage_start",
    "coverage_end",
    "css",
)
BAD_LINE_KINDS: Final = (
    "nir_key",
    "date",
    "contract",
    "columns",
    "sex",
    "coverage_order",
    "duplicate",
)

# Metropolitan départements (20 became 2A/2B in 1976), overseas ones, and INSEE codes of
# a few countries of birth (département 99).
_METRO: Final = tuple(f"{n:02d}" for n in range(1, 96) if n != 20)
_OVERSEAS: Final = ("971", "972", "973", "974", "976")
_COUNTRIES: Final = ("109", "127", "134", "139", "350", "351", "352", "406")
_PLACE_COMBOS: Final = 999 * 999  # (commune, order number) pairs in one département
_SPREAD: Final = 7919  # coprime with 999**2: spreads a counter over the communes


@dataclass(frozen=True, slots=True)
class SyntheticFile:
    """What was written."""

    path: Path
    lines: int
    bad_lines: int
    families: int


def nir_key(first13: str) -> str:
    """The two-digit key of a NIR's 13 first characters (Corsica: 2A→19, 2B→18)."""
    number = int(first13.replace("2A", "19").replace("2B", "18"))
    return f"{97 - number % 97:02d}"


class _NirMaker:
    """Valid NIRs, all distinct: each place hands out (commune, order) pairs in turn."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.counters: dict[str, int] = {}
        self.offsets: dict[str, int] = {}

    def _next(self, place: str, capacity: int) -> int | None:
        """The next free slot of ``place``: consecutive from a seeded offset, so that files
        made with different seeds do not share NIRs."""
        used = self.counters.get(place)
        if used is None:
            used = 0
            self.offsets[place] = self.rng.randrange(capacity)
        if used >= capacity:
            return None
        self.counters[place] = used + 1
        return (used + self.offsets[place]) % capacity

    def make(self, sex: str, birth: date) -> str:
        rng = self.rng
        prefix = f"{'1' if sex == 'M' else '2'}{birth.year % 100:02d}{birth.month:02d}"
        roll = rng.random()
        if roll < 0.03:  # born abroad: 99 + country, order number per country and year
            country = rng.choice(_COUNTRIES)
            used = self._next(f"99{country}{birth.year}", 999)
            if used is not None:
                body = f"{prefix}99{country}{used + 1:03d}"
                return body + nir_key(body)
        elif roll < 0.05:  # overseas: 3-digit département, 2-digit commune
            dept = rng.choice(_OVERSEAS)
            used = self._next(dept, 34 * 999)
            if used is not None:
                commune, order = divmod(used * _SPREAD % (34 * 999), 999)
                body = f"{prefix}{dept}{commune + 1:02d}{order + 1:03d}"
                return body + nir_key(body)
        dept = rng.choice(_METRO)
        if dept in ("19", "21") and birth.year >= 1976 and rng.random() < 0.3:
            dept = "2A" if dept == "19" else "2B"
        used = self._next(dept, _PLACE_COMBOS)
        if used is None:
            raise ValueError("too many synthetic NIRs for one département")
        commune, order = divmod(used * _SPREAD % _PLACE_COMBOS, 999)
        body = f"{prefix}{dept}{commune + 1:03d}{order + 1:03d}"
        return body + nir_key(body)


def synthetic_nirs(seed: int, people: Sequence[tuple[str, date]]) -> list[str]:
    """Distinct valid NIRs for ``people`` (sex ``M``/``F``, birth date), the same for the
    same seed: made by the generator of the files, so they name nobody real."""
    maker = _NirMaker(random.Random(seed))
    return [maker.make(sex, birth) for sex, birth in people]


def _pools(seed: int) -> tuple[list[str], list[str], list[str]]:
    fake = Faker("fr_FR")
    fake.seed_instance(seed)
    last = [fake.last_name() for _ in range(3000)]
    male = [fake.first_name_male() for _ in range(800)]
    female = [fake.first_name_female() for _ in range(800)]
    # A few compound first names, as French civil status has many.
    male += [f"{a}-{b}" for a, b in zip(male[:60], male[60:120], strict=True)]
    female += [f"{a}-{b}" for a, b in zip(female[:60], female[60:120], strict=True)]
    return last, male, female


def _random_day(rng: random.Random, first: date, last: date) -> date:
    span = (last - first).days
    return first + timedelta(days=rng.randint(0, max(span, 0)))


def write_beneficiaries_csv(
    path: Path,
    count: int,
    *,
    seed: int,
    contracts: Sequence[str],
    bad_line_ratio: float = 0.0,
    start: date = date(2025, 1, 1),
) -> SyntheticFile:
    """Write ``count`` beneficiary lines (plus the header) to ``path``.

    ``start`` is the file date: births and coverage starts are on or before it.
    ``bad_line_ratio`` of the lines are deliberately wrong (bad NIR key, bad date, unknown
    contract, missing column, bad sex, coverage ending before it starts, or a repeated
    line); the result says how many.
    """
    if not contracts:
        raise ValueError("at least one contract code is needed")
    if not 0.0 <= bad_line_ratio <= 1.0:
        raise ValueError("bad_line_ratio must be between 0 and 1")
    rng = random.Random(seed)
    last_names, male_names, female_names = _pools(seed)
    nirs = _NirMaker(rng)
    written = bad = families = 0
    previous: list[str] | None = None

    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, delimiter=DELIMITER, lineterminator="\n")
        writer.writerow(HEADER)
        while written < count:
            families += 1
            family = _family(rng, families, start, contracts, last_names, male_names, female_names)
            for person in family:
                if written >= count:
                    break
                (
                    sex,
                    birth,
                    rank,
                    last,
                    first,
                    quality,
                    contract,
                    cov_start,
                    cov_end,
                    css,
                    member,
                ) = person
                row = [
                    member,
                    nirs.make(sex, birth),
                    str(rank),
                    birth.isoformat(),
                    last,
                    first,
                    sex,
                    quality,
                    contract,
                    cov_start.isoformat(),
                    "" if cov_end is None else cov_end.isoformat(),
                    css,
                ]
                if bad_line_ratio and rng.random() < bad_line_ratio:
                    row = _spoil(rng, row, previous)
                    bad += 1
                else:
                    previous = row
                writer.writerow(row)
                written += 1
    return SyntheticFile(path=path, lines=written, bad_lines=bad, families=families)


_Person = tuple[str, date, int, str, str, str, str, date, date | None, str, str]


def _family(
    rng: random.Random,
    number: int,
    start: date,
    contracts: Sequence[str],
    last_names: list[str],
    male_names: list[str],
    female_names: list[str],
) -> list[_Person]:
    """One family: member first, then spouse, then children by birth date."""
    member_number = f"A{number:08d}"
    contract = rng.choice(contracts)
    css = "1" if rng.random() < 0.06 else "0"
    family_start = _random_day(rng, start - timedelta(days=3650), start).replace(day=1)
    family_end: date | None = None
    roll = rng.random()
    if roll < 0.02:  # already left
        family_end = _random_day(rng, family_start, start - timedelta(days=1))
    elif roll < 0.05:  # leaves at the end of a coming month
        family_end = _random_day(rng, start, start + timedelta(days=330)).replace(day=28)
    surname = rng.choice(last_names)

    def first_name(sex: str) -> str:
        return rng.choice(male_names if sex == "M" else female_names)

    def person(sex: str, birth: date, rank: int, last: str, quality: str) -> _Person:
        cov_start = max(family_start, birth)
        cov_end = family_end if family_end is None or family_end >= cov_start else None
        return (sex, birth, rank, last, first_name(sex), quality, contract, cov_start,
                cov_end, css, member_number)  # fmt: skip

    member_age = int(rng.triangular(19, 88, 45))
    member_sex = rng.choice("MF")
    member_birth = start - timedelta(days=member_age * 365 + rng.randint(0, 364))
    people = [person(member_sex, member_birth, 1, surname, "member")]
    if member_age >= 22 and rng.random() < 0.55:
        spouse_sex = ("F" if member_sex == "M" else "M") if rng.random() < 0.95 else member_sex
        spouse_birth = member_birth + timedelta(days=rng.randint(-6 * 365, 6 * 365))
        spouse_birth = min(spouse_birth, start - timedelta(days=18 * 365))
        spouse_last = surname if rng.random() < 0.7 else rng.choice(last_names)
        people.append(person(spouse_sex, spouse_birth, 1, spouse_last, "spouse"))
    if 21 <= member_age <= 66:
        wanted = rng.choices((0, 1, 2, 3, 4), weights=(30, 25, 28, 12, 5))[0]
        births: list[tuple[date, int]] = []
        for _ in range(wanted):
            birth = member_birth + timedelta(days=rng.randint(20 * 365, 42 * 365))
            if birth > start or (start - birth).days > 25 * 365:
                continue
            births.append((birth, 1))
            if rng.random() < 0.03:  # twins: same day, the second has rank 2
                births.append((birth, 2))
        for birth, rank in sorted(births):
            people.append(person(rng.choice("MF"), birth, rank, surname, "child"))
    return people


def _spoil(rng: random.Random, row: list[str], previous: list[str] | None) -> list[str]:
    """Make one line wrong in one of the documented ways."""
    kind = rng.choice(BAD_LINE_KINDS)
    row = list(row)
    if kind == "duplicate" and previous is not None:
        return list(previous)
    if kind == "nir_key" or kind == "duplicate":
        key = (int(row[1][13:]) % 97) + 1
        row[1] = row[1][:13] + f"{key:02d}"
    elif kind == "date":
        year, month, day = row[3].split("-")
        row[3] = f"{day}/{month}/{year}"
    elif kind == "contract":
        row[8] = "NO-SUCH-CONTRACT"
    elif kind == "columns":
        row = row[:-1]
    elif kind == "sex":
        row[6] = "X"
    elif kind == "coverage_order":
        begin = date.fromisoformat(row[9])
        row[10] = (begin - timedelta(days=1)).isoformat()
    return row
