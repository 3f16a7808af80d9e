"""The sandbox for provider software makers: a small, fixed, documented data set.

One test insurer, one test pharmacy and a handful of people whose card data never change
(same NIRs, member numbers and birth dates on every run, every machine), each chosen for
an answer software must handle: covered, covered by member number, a domain not covered
and one without tiers payant, ended coverage, an unknown card, a wrong birth date, a
mistyped NIR. ``docs/sandbox.md`` lists them with the expected answers; the sandbox
tests check that the API gives exactly those answers.

Everything is invented: the names say "test", the NIRs come from the synthetic generator
(``demo/synthetic.py``), and no canary is planted (a software maker's tests must never
set off a canary alert). Creating it twice changes nothing: the second run only issues
fresh API credentials. The signed 2D codes of the cards are not part of the fixed data:
their serials, secrets and keys are random by design (``docs/cards.md``).
"""

from __future__ import annotations

import copy
import csv
import json
import tempfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from tierspayant.app.platform import Platform
from tierspayant.demo.builder import demo_catalogue
from tierspayant.demo.synthetic import HEADER, nir_key, synthetic_nirs
from tierspayant.formats.beneficiaries import DELIMITER
from tierspayant.services import enrolment, insurers, providers

SANDBOX_ACTOR = "operator:sandbox"
SANDBOX_FORMAT = "tierspayant-sandbox/1"
SANDBOX_AMC = "99100001"
SANDBOX_INSURER = "Mutuelle Bac à Sable (test)"
SANDBOX_PHARMACY_AM = "992000018"  # 99 + 2 (pharmacy) + 00001 + Luhn key
SANDBOX_PHARMACY_FINESS = "990000010"  # 99 + 000001 + Luhn key
SANDBOX_PHARMACY = "Pharmacie du Bac à Sable (test)"
SANDBOX_IBAN = "FR7630001007941234567890185"  # the IBAN of the public format examples
NIR_SEED = 20_260_101  # the synthetic generator's seed: the NIRs never change
COVERAGE_START = date(2020, 1, 1)
ENDED_ON = date(2024, 12, 31)
CONVENTIONS_FROM = date(2020, 1, 1)
PARTIAL_CONTRACT = "SABLE-PARTIEL"  # no optics; dental without tiers payant


@dataclass(frozen=True, slots=True)
class SandboxPerson:
    """One enrolled person (synthetic)."""

    member_number: str
    sex: str
    birth_date: date
    birth_rank: int
    last_name: str
    first_name: str
    quality: str
    contract: str
    coverage_end: date | None = None


PEOPLE: tuple[SandboxPerson, ...] = (
    SandboxPerson("SBX0000001", "F", date(1980, 5, 12), 1, "TESTEUR", "Camille", "member",
                  "ESSENTIEL"),
    SandboxPerson("SBX0000001", "M", date(2012, 9, 3), 1, "TESTEUR", "Jules", "child",
                  "ESSENTIEL"),
    SandboxPerson("SBX0000002", "M", date(1975, 2, 20), 1, "ESSAI", "Dominique", "member",
                  PARTIAL_CONTRACT),
    SandboxPerson("SBX0000003", "F", date(1990, 11, 30), 1, "EXEMPLE", "Claude", "member",
                  "ESSENTIEL", ENDED_ON),
)  # fmt: skip
# A person nobody enrolled: the "unknown card" (valid NIR, same generator).
UNKNOWN = ("M", date(1985, 7, 14))


def _nirs() -> list[str]:
    people = [(p.sex, p.birth_date) for p in PEOPLE] + [UNKNOWN]
    return synthetic_nirs(NIR_SEED, people)


@dataclass(frozen=True, slots=True)
class SandboxCase:
    """A request a software maker sends, and the answer the platform gives to it.

    ``expected``: either ``{"rights": [[domain, covered, tiers_payant, coverage_code]…],
    "engagement": bool}`` (200), or ``{"status": 422, "code": …}``.
    """

    key: str
    title: str  # French, as the documentation shows it
    card: dict[str, Any]
    domains: tuple[str, ...]
    expected: dict[str, Any] = field(default_factory=dict)


def _right(domain: str, covered: bool, tiers_payant: bool, code: str | None) -> list[Any]:
    return [domain, covered, tiers_payant, code]


def _card(nir: str, rank: int, birth: date) -> dict[str, Any]:
    return {"amc_number": SANDBOX_AMC, "nir": nir, "birth_rank": rank,
            "birth_date": birth.isoformat()}  # fmt: skip


def sandbox_cases() -> list[SandboxCase]:
    """The documented cases, in the order of ``docs/sandbox.md``."""
    nirs = _nirs()
    camille, jules, dominique, claude = (
        _card(nir, p.birth_rank, p.birth_date) for nir, p in zip(nirs, PEOPLE, strict=False)
    )
    unknown = _card(nirs[-1], 1, UNKNOWN[1])
    by_member = {
        "amc_number": SANDBOX_AMC,
        "member_number": PEOPLE[1].member_number,
        "birth_date": jules["birth_date"],
    }
    wrong_birth = {**camille, "birth_date": "1980-05-13"}
    bad_key = {**camille, "nir": nirs[0][:13] + _other_key(nirs[0])}
    not_covered = [_right("PHAR", False, False, None), _right("MED", False, False, None)]
    return [
        SandboxCase(
            "covered",
            "Couverte, tiers payant (par NIR)",
            camille,
            ("PHAR", "MED"),
            {
                "rights": [_right("PHAR", True, True, "PH100"), _right("MED", True, True, "100")],
                "engagement": True,
            },
        ),
        SandboxCase(
            "covered_by_member_number",
            "Couvert, enfant (par numéro d'adhérent et date de naissance)",
            by_member,
            ("PHAR",),
            {"rights": [_right("PHAR", True, True, "PH100")], "engagement": True},
        ),
        SandboxCase(
            "domain_not_covered",
            "Optique non couverte, dentaire sans tiers payant, pharmacie couverte",
            dominique,
            ("PHAR", "DENT", "OPTI"),
            {
                "rights": [
                    _right("PHAR", True, True, "PH100"),
                    _right("DENT", True, False, "100"),
                    _right("OPTI", False, False, None),
                ],
                "engagement": True,
            },
        ),
        SandboxCase(
            "ended_coverage",
            f"Droits fermés le {ENDED_ON:%d/%m/%Y}",
            claude,
            ("PHAR", "MED"),
            {"rights": not_covered, "engagement": False},
        ),
        SandboxCase(
            "unknown_card",
            "Carte inconnue (personne non affiliée)",
            unknown,
            ("PHAR", "MED"),
            {"rights": not_covered, "engagement": False},
        ),
        SandboxCase(
            "wrong_birth_date",
            "Date de naissance erronée (même réponse qu'une carte inconnue)",
            wrong_birth,
            ("PHAR", "MED"),
            {"rights": not_covered, "engagement": False},
        ),
        SandboxCase(
            "nir_key",
            "NIR mal saisi (clé fausse) : refus 422",
            bad_key,
            ("PHAR",),
            {"status": 422, "code": "nir.key"},
        ),
    ]


def _other_key(nir: str) -> str:
    """A key that does not check: the right one plus one (mod 97, as two digits)."""
    good = int(nir_key(nir[:13]))
    return f"{good % 97 + 1:02d}"


def sandbox_catalogue() -> dict[str, Any]:
    """The test insurer's catalogue: the example mutuelle's, plus a partial contract."""
    document = demo_catalogue("mutuelle-des-tilleuls.yaml")
    document["insurer"] = SANDBOX_AMC
    document["name"] = SANDBOX_INSURER
    document["version"] = "sandbox-1"
    contracts = document["contracts"]
    assert isinstance(contracts, list)
    partial = copy.deepcopy(next(c for c in contracts if c["code"] == "ESSENTIEL"))
    partial["code"] = PARTIAL_CONTRACT
    partial["label"] = "Sans optique, dentaire remboursé à l'adhérent (test)"
    partial["responsable"] = False
    del partial["domains"]["OPTI"]
    partial["domains"]["DENT"]["tiers_payant"] = False
    partial["guarantees"] = [g for g in partial["guarantees"] if g["domain"] != "OPTI"]
    contracts.append(partial)
    return document


def sandbox_data() -> dict[str, Any]:
    """The fixed data set, as exported and documented (no credentials)."""
    nirs = _nirs()
    card = sandbox_catalogue()["card"]
    return {
        "format": SANDBOX_FORMAT,
        "insurer": {
            "amc_number": SANDBOX_AMC,
            "name": SANDBOX_INSURER,
            "convention_type": card["convention_type"],
            "routing_criterion": card["routing_criterion"],
        },
        "provider": {
            "am_number": SANDBOX_PHARMACY_AM,
            "finess": SANDBOX_PHARMACY_FINESS,
            "name": SANDBOX_PHARMACY,
        },
        "people": [
            {
                "member_number": p.member_number,
                "nir": nir,
                "birth_rank": p.birth_rank,
                "birth_date": p.birth_date.isoformat(),
                "last_name": p.last_name,
                "first_name": p.first_name,
                "contract": p.contract,
                "coverage_start": COVERAGE_START.isoformat(),
                "coverage_end": None if p.coverage_end is None else p.coverage_end.isoformat(),
            }
            for nir, p in zip(nirs, PEOPLE, strict=False)
        ],
        "cases": [
            {
                "key": c.key,
                "title": c.title,
                "request": {"card": c.card, "domains": list(c.domains)},
                "expected": c.expected,
            }
            for c in sandbox_cases()
        ],
    }


def export_sandbox(path: Path) -> None:
    """Write the data set as JSON (sorted keys: the same bytes on every run)."""
    text = json.dumps(sandbox_data(), ensure_ascii=False, indent=2, sort_keys=True)
    path.write_text(text + "\n", encoding="utf-8")


@dataclass(frozen=True, slots=True)
class SandboxSummary:
    created: bool
    client_id: str
    client_secret: str


def _write_people(path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, delimiter=DELIMITER, lineterminator="\n")
        writer.writerow(HEADER)
        for nir, p in zip(_nirs(), PEOPLE, strict=False):
            end = "" if p.coverage_end is None else p.coverage_end.isoformat()
            writer.writerow(
                [p.member_number, nir, str(p.birth_rank), p.birth_date.isoformat(), p.last_name,
                 p.first_name, p.sex, p.quality, p.contract, COVERAGE_START.isoformat(), end,
                 "0"]
            )  # fmt: skip


def build_sandbox(platform: Platform) -> SandboxSummary:
    """Create the sandbox once (insurer, catalogue, people, pharmacy and its conventions);
    on every run issue fresh credentials for the test pharmacy's software."""
    known = {i.amc_number for i in insurers.list_insurers(platform)}
    created = SANDBOX_AMC not in known
    if created:
        insurers.add_insurer(platform, SANDBOX_AMC, SANDBOX_INSURER, "mutuelle", SANDBOX_ACTOR)
        insurers.upload_catalogue(platform, SANDBOX_AMC, sandbox_catalogue(), SANDBOX_ACTOR)
        with tempfile.TemporaryDirectory(prefix="tp-sandbox-") as workdir:
            path = Path(workdir) / "beneficiaires.csv"
            _write_people(path)
            enrolment.import_beneficiaries(
                platform,
                SANDBOX_AMC,
                path,
                mode="full",
                file_date=platform.today(),
                actor=SANDBOX_ACTOR,
            )
        providers.add_provider(
            platform,
            providers.NewProvider(
                am_number=SANDBOX_PHARMACY_AM,
                category="pharmacy",
                name=SANDBOX_PHARMACY,
                finess=SANDBOX_PHARMACY_FINESS,
                iban=SANDBOX_IBAN,
            ),
            SANDBOX_ACTOR,
        )
        providers.add_conventions(
            platform, SANDBOX_PHARMACY_AM, SANDBOX_AMC, None, CONVENTIONS_FROM, SANDBOX_ACTOR
        )
    creds = providers.issue_client(
        platform, SANDBOX_PHARMACY_AM, "logiciel de test (bac à sable)", SANDBOX_ACTOR
    )
    return SandboxSummary(created, creds.client_id, creds.client_secret)
