"""The pieces every test world is built from, written once.

A world is a platform on a real database with an insurer and its catalogue, beneficiaries
enrolled from a synthetic file through the enrolment service (the test reads the people
back from that file: the card data a provider would read), providers under the insurer's
convention, principals or tokens to act as them, and a clock the test moves by hand.
The worlds of each kind of test (``tests/api/world.py``, ``tests/web/world.py``,
``tests/integration/claims_world.py``, ``tests/integration/operations_support.py``,
``tests/money_support.py``) assemble these pieces; what they add is their own.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyotp
import yaml
from sqlalchemy import Connection

from tests.factories import (
    make_am_number,
    make_bic,
    make_finess,
    make_french_iban,
    make_rpps,
    make_siret,
)
from tierspayant.app.platform import Platform, initialise
from tierspayant.config import load_settings
from tierspayant.demo.builder import AM_CATEGORY_DIGIT
from tierspayant.demo.synthetic import HEADER, write_beneficiaries_csv
from tierspayant.domain.care import CareDomain
from tierspayant.domain.providers import ProviderCategory
from tierspayant.formats.beneficiaries import DELIMITER
from tierspayant.security.principal import AuthStrength, Principal, PrincipalKind
from tierspayant.services import accounts, enrolment, insurers, providers
from tierspayant.services.enrolment import ImportSummary
from tierspayant.services.errors import Conflict
from tierspayant.services.identification import CardData, identify
from tierspayant.services.providers import Provider

ACTOR = "test"
CATALOGUES = Path(__file__).resolve().parents[2] / "src" / "tierspayant" / "reference" / "demo"

# --------------------------------------------------------------------------- clocks


class Clock:
    """The platform's clock, moved by hand."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


class WallClock:
    """The wall clock plus an offset moved by hand (a new TOTP step without waiting)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


def open_platform(
    data_dir: Path,
    *,
    url: str | None = None,
    env: Mapping[str, str] | None = None,
    clock: Callable[[], datetime] | None = None,
) -> Platform:
    """An initialised platform: SQLite under ``data_dir`` unless ``url`` names a database."""
    settings = {"TIERSPAYANT_DATA_DIR": str(data_dir), **(env or {})}
    if url is not None:
        settings["TIERSPAYANT_DATABASE_URL"] = url
    platform = initialise(load_settings(settings))
    if clock is not None:
        platform.clock = clock
    return platform


# --------------------------------------------------------------------------- people


@dataclass(frozen=True, slots=True)
class Person:
    """One beneficiary as the beneficiary file has it (identity the card shows, and more)."""

    amc_number: str
    member_number: str
    nir: str
    birth_rank: int
    birth_date: date
    last_name: str
    first_name: str
    contract: str
    coverage_start: date
    coverage_end: date | None
    css: bool
    line: int = 0  # position in the file, from 0

    def covered_on(self, day: date) -> bool:
        return self.coverage_start <= day and (
            self.coverage_end is None or day <= self.coverage_end
        )

    def card(self, **changes: object) -> dict[str, object]:
        """The card block of an API request, by NIR and rank, with ``changes`` applied."""
        card: dict[str, object] = {
            "amc_number": self.amc_number,
            "birth_date": self.birth_date.isoformat(),
            "nir": self.nir,
            "birth_rank": self.birth_rank,
        }
        card.update(changes)
        return card

    def card_data(self) -> CardData:
        """What a provider reads from the card, as the services take it (NIR and rank)."""
        return CardData(self.amc_number, self.birth_date, self.nir, self.birth_rank)

    def card_fields(self) -> dict[str, str]:
        """The card as a portal form has it: every value a string, member number too."""
        return {
            "amc_number": self.amc_number,
            "nir": self.nir,
            "birth_rank": str(self.birth_rank),
            "birth_date": self.birth_date.isoformat(),
            "member_number": self.member_number,
        }

    def identity_strings(self) -> tuple[str, ...]:
        """What must never appear in an answer about this person."""
        return (
            self.nir,
            self.nir[:13],
            self.birth_date.isoformat(),
            self.birth_date.strftime("%d/%m/%Y"),
            self.last_name,
            self.first_name,
        )


def read_rows(path: Path) -> list[dict[str, str]]:
    """The lines of a beneficiary file, each by column name."""
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter=DELIMITER))


def write_rows(path: Path, rows: Iterable[Mapping[str, str]]) -> Path:
    """A beneficiary file of ``rows`` (columns by name, in the format's order)."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=HEADER, delimiter=DELIMITER, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def read_people(path: Path, amc: str) -> tuple[Person, ...]:
    """The people of a beneficiary file of insurer ``amc``."""
    return tuple(
        Person(
            amc_number=amc,
            member_number=row["member_number"],
            nir=row["nir"],
            birth_rank=int(row["birth_rank"]),
            birth_date=date.fromisoformat(row["birth_date"]),
            last_name=row["last_name"],
            first_name=row["first_name"],
            contract=row["contract"],
            coverage_start=date.fromisoformat(row["coverage_start"]),
            coverage_end=date.fromisoformat(row["coverage_end"]) if row["coverage_end"] else None,
            css=row["css"] == "1",
            line=index,
        )
        for index, row in enumerate(read_rows(path))
    )


# --------------------------------------------------------------------------- insurers


@dataclass(frozen=True, slots=True)
class Insurer:
    id: int
    amc_number: str
    name: str
    contracts: tuple[str, ...]


def load_catalogue(catalogue: Path | Mapping[str, Any], amc: str | None = None) -> dict[str, Any]:
    """A catalogue document from a YAML file or a mapping, for insurer ``amc`` if given."""
    if isinstance(catalogue, Path):
        document = yaml.safe_load(catalogue.read_text(encoding="utf-8"))
        assert isinstance(document, dict)
    else:
        document = dict(catalogue)
    if amc is not None:
        document["insurer"] = amc
    return document


def add_insurer(
    platform: Platform,
    catalogue: Path | Mapping[str, Any],
    *,
    amc: str | None = None,
    name: str | None = None,
    kind: str = "mutuelle",
    actor: str = ACTOR,
) -> Insurer:
    """Register an insurer (data keys included) and upload its catalogue, both through the
    services. The AMC number and name are the catalogue's unless given."""
    document = load_catalogue(catalogue, amc)
    amc_number = str(document["insurer"])
    chosen = name or str(document["name"])
    made = insurers.add_insurer(platform, amc_number, chosen, kind, actor)
    upload = insurers.upload_catalogue(platform, amc_number, document, actor)
    return Insurer(made.id, amc_number, chosen, upload.contracts)


# --------------------------------------------------------------------------- enrolment


def import_file(
    platform: Platform,
    amc: str,
    path: Path,
    *,
    file_date: date,
    mode: str = "full",
    actor: str = ACTOR,
    workers: int | None = 0,
) -> ImportSummary:
    """Import a beneficiary file through the enrolment service; no line may be rejected."""
    summary = enrolment.import_beneficiaries(
        platform, amc, path, mode=mode, file_date=file_date, actor=actor, workers=workers
    )
    assert summary.rejected == 0, summary
    return summary


def enrol(
    platform: Platform,
    amc: str,
    count: int,
    seed: int,
    contracts: Sequence[str],
    start: date,
    *,
    path: Path,
    file_date: date | None = None,
    mode: str = "full",
    adjust: Callable[[int, dict[str, str]], None] | None = None,
    actor: str = ACTOR,
    workers: int | None = 0,
) -> tuple[Person, ...]:
    """Write a synthetic file of ``count`` people to ``path``, import it, read them back.

    ``start`` is the file's date (births and coverage starts on or before it), and the
    import's unless ``file_date`` says otherwise. ``adjust(line, row)`` may change a line
    of the file (its columns by name) before the import.
    """
    write_beneficiaries_csv(path, count, seed=seed, contracts=contracts, start=start)
    if adjust is not None:
        rows = read_rows(path)
        for index, row in enumerate(rows):
            adjust(index, row)
        write_rows(path, rows)
    import_file(
        platform, amc, path, file_date=file_date or start, mode=mode, actor=actor, workers=workers
    )
    return read_people(path, amc)


def beneficiary_id(
    platform: Platform, card: Person | CardData, conn: Connection | None = None
) -> int:
    """The id of the beneficiary a card designates (found as a rights check finds it)."""
    data = card.card_data() if isinstance(card, Person) else card
    if conn is None:
        with platform.engine.connect() as own:
            _, found = identify(platform, own, data.normalised())
    else:
        _, found = identify(platform, conn, data.normalised())
    assert found is not None, data
    return int(found.record.id)


# --------------------------------------------------------------------------- providers


def add_provider(
    platform: Platform,
    rng: random.Random,
    category: str = "pharmacy",
    *,
    name: str | None = None,
    amcs: Sequence[str] = (),
    domains: Sequence[CareDomain] | None = None,
    since: date = date(2025, 1, 1),
    department: str | None = None,
    rpps: bool | str = False,
    finess: bool | str = False,
    siret: bool | str = False,
    optam: bool = False,
    iban: bool = False,
    actor: str = ACTOR,
) -> Provider:
    """A provider drawn from ``rng`` (AM number with its category's digit, then the
    identifiers asked for: ``True`` draws one, a string is taken as is), under the
    convention of each insurer of ``amcs`` since ``since`` (for ``domains``, or all).

    PostgreSQL tests share a database per module: an AM number already taken draws another.
    """
    digit = AM_CATEGORY_DIGIT[ProviderCategory(category)]
    for _ in range(20):
        new = providers.NewProvider(
            am_number=make_am_number(rng, digit, department=department),
            category=category,
            name=name or f"Test {category}",
            rpps=_given(rpps, lambda: make_rpps(rng)),
            finess=_given(finess, lambda: make_finess(rng, department=department)),
            siret=_given(siret, lambda: make_siret(rng)),
            optam=optam,
            iban=make_french_iban(rng) if iban else None,
            bic=make_bic(rng) if iban else None,
        )
        try:
            provider = providers.add_provider(platform, new, actor)
        except Conflict:
            continue
        for amc in amcs:
            providers.add_conventions(platform, provider.am_number, amc, domains, since, actor)
        return provider
    raise AssertionError("no free AM number")


def _given(value: bool | str, draw: Callable[[], str]) -> str | None:
    if isinstance(value, str):
        return value
    return draw() if value else None


def provider_principal(provider: Provider, client: str = "test") -> Principal:
    """The provider as an authenticated API client (``client`` names its software)."""
    return Principal(
        id=providers.client_principal_id(provider.am_number, client),
        kind=PrincipalKind.PROVIDER_CLIENT,
        strength=AuthStrength.AAL2,
        provider_id=provider.id,
        provider_am_number=provider.am_number,
        structure=provider.structure,
    )


# --------------------------------------------------------------------------- accounts


def add_account(
    platform: Platform,
    kind: str,
    login: str,
    password: str,
    *,
    actor: str = ACTOR,
    insurer_id: int | None = None,
    beneficiary_id: int | None = None,
    session: bool = False,
) -> str:
    """A password account with a TOTP second factor enrolled. Returns the TOTP secret; with
    ``session``, the token of the first login's session (the one that enrolled the TOTP),
    left open: usable as a bearer token."""
    accounts.create_account(
        platform, kind, login, password, actor=actor,
        insurer_id=insurer_id, beneficiary_id=beneficiary_id,
    )  # fmt: skip
    if not session:
        return accounts.enrol_totp_now(platform, login, password).secret
    challenge = accounts.begin_login(platform, login, password)
    enrolled = accounts.enrol_totp(platform, challenge.challenge_id)
    code = pyotp.TOTP(enrolled.secret).at(platform.now())
    return accounts.confirm_totp(platform, challenge.challenge_id, str(code)).session.token
