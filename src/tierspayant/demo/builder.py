"""Synthetic demo data: insurers with catalogues, beneficiaries, providers, a token.

Everything here is invented (Faker fr_FR names, NIRs with valid keys but no real person).
"""

from __future__ import annotations

import contextlib
import csv
import random
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from importlib import resources
from pathlib import Path

import yaml
from stdnum import iban as stdnum_iban

from tierspayant.app.platform import Platform
from tierspayant.demo.accounts import (
    DemoAccount,
    DemoPharmacist,
    create_demo_accounts,
    reset_demo_accounts,
)
from tierspayant.demo.claims import Showcase, build_demo_claims, build_showcase_claims
from tierspayant.demo.synthetic import write_beneficiaries_csv
from tierspayant.domain.banking_calendar import previous_business_day
from tierspayant.domain.identifiers import luhn_check_digit
from tierspayant.domain.providers import ProviderCategory
from tierspayant.services import billing, canaries, enrolment, insurers, payments, providers
from tierspayant.services.errors import Forbidden

DEMO_ACTOR = "operator:demo"

# Three fictional insurers, one of each kind, with the catalogue packaged for each.
DEMO_INSURERS: tuple[tuple[str, str, str, str], ...] = (
    ("75012345", "Mutuelle des Tilleuls", "mutuelle", "mutuelle-des-tilleuls.yaml"),
    ("40456789", "Institution de Prévoyance BTP Solidaire", "prevoyance",
     "prevoyance-btp-solidaire.yaml"),
    ("33998877", "Azur Assurances Santé", "assureur", "azur-assurances-sante.yaml"),
)  # fmt: skip

# Share of each category among the demo providers: pharmacies are the largest flow.
CATEGORY_MIX: tuple[tuple[ProviderCategory, int], ...] = (
    (ProviderCategory.PHARMACY, 35),
    (ProviderCategory.GP, 20),
    (ProviderCategory.SPECIALIST, 10),
    (ProviderCategory.NURSE, 7),
    (ProviderCategory.PHYSIOTHERAPIST, 5),
    (ProviderCategory.DENTIST, 5),
    (ProviderCategory.LABORATORY, 4),
    (ProviderCategory.OPTICIAN, 4),
    (ProviderCategory.RADIOLOGY, 2),
    (ProviderCategory.AUDIOLOGIST, 2),
    (ProviderCategory.MIDWIFE, 2),
    (ProviderCategory.AMBULANCE, 2),
    (ProviderCategory.HEALTH_CENTRE, 1),
    (ProviderCategory.HOSPITAL, 1),
)
# AM number profession digit by category (third digit of the billing number).
AM_CATEGORY_DIGIT: dict[ProviderCategory, str] = {
    ProviderCategory.GP: "1",
    ProviderCategory.SPECIALIST: "1",
    ProviderCategory.DENTIST: "1",
    ProviderCategory.MIDWIFE: "1",
    ProviderCategory.PHARMACY: "2",
    ProviderCategory.LABORATORY: "2",
    ProviderCategory.RADIOLOGY: "1",
    ProviderCategory.NURSE: "6",
    ProviderCategory.PHYSIOTHERAPIST: "6",
    ProviderCategory.OPTICIAN: "4",
    ProviderCategory.AUDIOLOGIST: "4",
    ProviderCategory.AMBULANCE: "3",
    ProviderCategory.HEALTH_CENTRE: "9",
    ProviderCategory.HOSPITAL: "0",
}
ESTABLISHMENTS = frozenset(
    {
        ProviderCategory.PHARMACY,
        ProviderCategory.LABORATORY,
        ProviderCategory.HOSPITAL,
        ProviderCategory.HEALTH_CENTRE,
        ProviderCategory.RADIOLOGY,
    }
)
DEPARTMENTS = ("75", "69", "13", "33", "31", "59", "44", "67", "35", "06", "2A", "34", "76")


def demo_catalogue(filename: str) -> dict[str, object]:
    """One of the packaged demo catalogues, as a mapping."""
    text = resources.files("tierspayant.reference").joinpath(f"demo/{filename}").read_text("utf-8")
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


def _digits(rng: random.Random, count: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(count))


def _luhn_number(body: str) -> str:
    return body + luhn_check_digit(body)


def _department_digits(department: str) -> str:
    # Corsican départements are written 2A/2B; billing and FINESS numbers use 20.
    return "20" if department in {"2A", "2B"} else department


def _rib_key(bank: str, branch: str, account: str) -> str:
    letters = {c: str((i % 9) + 1) for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZ")}
    numeric = "".join(letters.get(c, c) for c in account)
    return f"{97 - ((89 * int(bank) + 15 * int(branch) + 3 * int(numeric)) % 97):02d}"


def demo_iban(rng: random.Random) -> str:
    """A French IBAN with valid RIB key and IBAN check digits (no real account)."""
    bank, branch, account = _digits(rng, 5), _digits(rng, 5), _digits(rng, 11)
    bban = bank + branch + account + _rib_key(bank, branch, account)
    return "FR" + stdnum_iban.calc_check_digits("FR00" + bban) + bban


@dataclass
class ProviderSpec:
    am_number: str
    category: ProviderCategory
    name: str
    rpps: str | None
    finess: str | None
    optam: bool
    iban: str


def demo_providers(count: int, seed: int) -> list[ProviderSpec]:
    """``count`` invented providers with valid identifiers, in a realistic mix."""
    return list(iter_demo_providers(count, seed))


def iter_demo_providers(count: int, seed: int) -> Iterator[ProviderSpec]:
    """The providers of :func:`demo_providers`, one at a time (the national data set
    streams a quarter of a million of them)."""
    from faker import Faker

    rng = random.Random(seed)
    fake = Faker("fr_FR")
    fake.seed_instance(seed)
    categories = [c for c, weight in CATEGORY_MIX for _ in range(weight)]
    seen: set[str] = set()
    made = 0
    while made < count:
        category = rng.choice(categories)
        department = rng.choice(DEPARTMENTS)
        dept = _department_digits(department)
        am = _luhn_number(dept + AM_CATEGORY_DIGIT[category] + _digits(rng, 5))
        if am in seen:
            continue
        seen.add(am)
        city = fake.city()
        if category in ESTABLISHMENTS:
            label = {
                ProviderCategory.PHARMACY: "Pharmacie",
                ProviderCategory.LABORATORY: "Laboratoire",
                ProviderCategory.HOSPITAL: "Centre hospitalier",
                ProviderCategory.HEALTH_CENTRE: "Centre de santé",
                ProviderCategory.RADIOLOGY: "Cabinet de radiologie",
            }[category]
            name = f"{label} {fake.last_name()} – {city}"
            finess = _luhn_number(dept + _digits(rng, 6))
            rpps = None
        else:
            name = f"Dr {fake.first_name()} {fake.last_name()} – {city}"
            finess = None
            rpps = _luhn_number("1" + _digits(rng, 9))
        optam = (
            category in {ProviderCategory.SPECIALIST, ProviderCategory.GP} and rng.random() < 0.6
        )
        made += 1
        yield ProviderSpec(am, category, name, rpps, finess, optam, demo_iban(rng))


def demo_pharmacist(seed: int) -> tuple[str, str]:
    """Name and RPPS of the demo pharmacy's pharmacist (the same for the same seed)."""
    from faker import Faker

    rng = random.Random(f"pharmacist-{seed}")
    fake = Faker("fr_FR")
    fake.seed_instance(seed + 7919)
    return f"{fake.first_name()} {fake.last_name()}", _luhn_number("1" + _digits(rng, 9))


def demo_pharmacy(specs: list[ProviderSpec]) -> ProviderSpec:
    """The demo pharmacy: the first pharmacy of the list."""
    return next(s for s in specs if s.category is ProviderCategory.PHARMACY)


def write_providers_csv(path: Path, specs: Iterable[ProviderSpec]) -> None:
    """Write providers in the documented registry format (docs/formats/providers.md)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerow(providers.PROVIDER_CSV_COLUMNS)
        for s in specs:
            writer.writerow(
                [
                    s.am_number,
                    s.category.value,
                    s.name,
                    s.rpps or "",
                    s.finess or "",
                    "",
                    "1" if s.optam else "0",
                    s.iban,
                    "",
                ]
            )


@dataclass
class DemoSummary:
    insurers: list[str] = field(default_factory=list)
    beneficiaries: int = 0
    providers: int = 0
    client_id: str = ""
    client_secret: str = ""
    provider_am_number: str = ""
    sample_card: dict[str, str] = field(default_factory=dict)
    claims: int = 0
    claims_month: date | None = None
    canaries: int = 0
    paid_cents: int = 0
    billed_cents: int = 0
    accounts: list[DemoAccount] = field(default_factory=list)
    already_there: bool = False
    # On a rerun: False when the accounts could not be reset (not the demo database).
    accounts_reset: bool = False
    pharmacy_name: str = ""
    pharmacist_name: str = ""
    pharmacist_rpps: str = ""
    showcase: Showcase = field(default_factory=lambda: Showcase(0, 0, 0))


def build_demo(
    platform: Platform,
    *,
    beneficiaries: int,
    providers_count: int,
    seed: int,
    files_dir: Path | None = None,
    claims: int = 3_000,
    progress: Callable[[str, int, int], None] | None = None,
) -> DemoSummary:
    """Create the demo data set once; on a second run only issue a fresh client.

    The generated import files (synthetic identities in clear, as an insurer would send
    them) go to ``files_dir`` when a caller needs them afterwards (benchmarks); by default
    to a temporary directory deleted once they are imported, so the data directory holds
    no identity in clear."""
    with contextlib.ExitStack() as stack:
        if files_dir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tp-demo-")))
        else:
            workdir = files_dir
            workdir.mkdir(parents=True, exist_ok=True)
        return _build_demo(
            platform, beneficiaries, providers_count, seed, workdir, claims, progress
        )


def _build_demo(
    platform: Platform,
    beneficiaries: int,
    providers_count: int,
    seed: int,
    workdir: Path,
    claims: int,
    progress: Callable[[str, int, int], None] | None,
) -> DemoSummary:
    summary = DemoSummary()
    # Its own insurers only: the sandbox (demo/sandbox.py) may share the database.
    existing = {i.amc_number for i in insurers.list_insurers(platform)} & {
        amc for amc, *_ in DEMO_INSURERS
    }
    specs = demo_providers(providers_count, seed)
    pharmacy = demo_pharmacy(specs)
    summary.pharmacy_name = pharmacy.name
    summary.pharmacist_name, pharmacist_rpps = demo_pharmacist(seed)
    summary.pharmacist_rpps = pharmacist_rpps
    if existing:
        summary.already_there = True
        with platform.engine.connect() as conn:
            pharmacy_id = providers.provider_by_am(conn, pharmacy.am_number).id
        pharmacist = DemoPharmacist(summary.pharmacist_name, pharmacist_rpps, pharmacy_id)
        try:
            summary.accounts = reset_demo_accounts(
                platform, insurer_amc=DEMO_INSURERS[0][0], pharmacist=pharmacist
            )
            summary.accounts_reset = True
        except Forbidden:
            summary.accounts = []  # not the embedded demo database: nothing is reset
    else:
        per_insurer = max(1, beneficiaries // len(DEMO_INSURERS))
        for index, (amc, name, kind, catalogue_file) in enumerate(DEMO_INSURERS):
            insurers.add_insurer(platform, amc, name, kind, DEMO_ACTOR)
            catalogue = demo_catalogue(catalogue_file)
            upload = insurers.upload_catalogue(platform, amc, catalogue, DEMO_ACTOR)
            csv_path = workdir / f"beneficiaries_{amc}.csv"
            write_beneficiaries_csv(
                csv_path,
                per_insurer,
                seed=seed + index,
                contracts=list(upload.contracts),
                start=date(platform.today().year, 1, 1),
            )

            def step(done: int, total: int, amc: str = amc) -> None:
                if progress is not None:
                    progress(f"Bénéficiaires importés ({amc})", done, total)

            result = enrolment.import_beneficiaries(
                platform,
                amc,
                csv_path,
                mode="full",
                file_date=platform.today(),
                actor=DEMO_ACTOR,
                progress=step,
            )
            summary.beneficiaries += result.inserted
        providers_path = workdir / "providers.csv"
        write_providers_csv(providers_path, specs)

        def registered(done: int) -> None:
            if progress is not None:
                progress("Professionnels de santé", done, len(specs))

        imported = providers.import_providers(
            platform, providers_path, DEMO_ACTOR, progress=registered
        )
        summary.providers = imported.inserted
        for done, spec in enumerate(specs, start=1):
            for amc, *_ in DEMO_INSURERS:
                providers.add_conventions(
                    platform, spec.am_number, amc, None, date(2024, 1, 1), DEMO_ACTOR
                )
            if progress is not None and (done % 50 == 0 or done == len(specs)):
                progress("Conventions des professionnels", done, len(specs))
        pharmacy_id = _demo_money(platform, summary, specs, claims, seed, workdir, progress)
        for amc, *_ in DEMO_INSURERS:
            summary.canaries += canaries.plant(platform, amc, None, DEMO_ACTOR).planted
        pharmacist = DemoPharmacist(summary.pharmacist_name, pharmacist_rpps, pharmacy_id)
        summary.accounts = create_demo_accounts(
            platform, insurer_amc=DEMO_INSURERS[0][0], pharmacist=pharmacist
        )
    summary.insurers = [amc for amc, *_ in DEMO_INSURERS]
    creds = providers.issue_client(
        platform, pharmacy.am_number, "demo pharmacy software", DEMO_ACTOR
    )
    summary.client_id, summary.client_secret = creds.client_id, creds.client_secret
    summary.provider_am_number = pharmacy.am_number
    summary.sample_card = _sample_card(platform, seed, workdir)
    return summary


def _demo_money(
    platform: Platform,
    summary: DemoSummary,
    specs: list[ProviderSpec],
    claims: int,
    seed: int,
    workdir: Path,
    progress: Callable[[str, int, int], None] | None,
) -> int:
    """Last month's invoices from the demo providers, adjudicated (pharmacy heavy), and
    the demo pharmacy's showcase (paid, rejected, the demo member's), then paid and billed.
    Returns the demo pharmacy's provider id."""
    month = (platform.today().replace(day=1) - timedelta(days=1)).replace(day=1)
    summary.claims_month = month
    with platform.engine.connect() as conn:
        provider_ids = [providers.provider_by_am(conn, s.am_number).id for s in specs]
        pharmacy_id = providers.provider_by_am(conn, demo_pharmacy(specs).am_number).id
    per_insurer = claims // len(DEMO_INSURERS)
    for index, (amc, *_) in enumerate(DEMO_INSURERS):
        sent_before = index * per_insurer

        def sent(done: int, before: int = sent_before) -> None:
            if progress is not None:
                progress("Factures", before + done, per_insurer * len(DEMO_INSURERS))

        summary.claims += build_demo_claims(
            platform,
            beneficiaries_csv=workdir / f"beneficiaries_{amc}.csv",
            insurer_amc=amc,
            provider_ids=provider_ids,
            month=month,
            count=per_insurer,
            seed=seed + index,
            progress=sent,
        )
    amc = DEMO_INSURERS[0][0]
    summary.showcase = build_showcase_claims(
        platform,
        beneficiaries_csv=workdir / f"beneficiaries_{amc}.csv",
        insurer_amc=amc,
        pharmacy_id=pharmacy_id,
        month=month,
        seed=seed,
    )
    summary.claims += summary.showcase.member + summary.showcase.others
    summary.claims += summary.showcase.rejected
    # Providers paid at the end of that month, then each insurer billed for it.
    rng = random.Random(seed)
    for amc, *_ in DEMO_INSURERS:
        billing.set_mandate(
            platform,
            amc,
            iban=demo_iban(rng),
            bic="AGRIFRPPXXX",
            mandate_id=f"TP-DEMO-{amc}",
            signed_on=date(month.year, 1, 1),
            actor=DEMO_ACTOR,
        )
    # The month's last TARGET2 business day: past by now, hence the audited reason.
    pay_day = previous_business_day((month + timedelta(days=31)).replace(day=1))
    paid = payments.run_payments(
        platform,
        pay_day,
        actor=DEMO_ACTOR,
        backdate_reason="demo data set: last month paid on its last business day",
    )
    summary.paid_cents = paid.net_cents
    billed = billing.run_billing(platform, f"{month:%Y-%m}", actor=DEMO_ACTOR)
    summary.billed_cents = billed.due_cents
    return pharmacy_id


def _sample_card(platform: Platform, seed: int, workdir: Path) -> dict[str, str]:
    """Card data of the first beneficiary of the first demo insurer (synthetic). The
    generator is sequential, so its first line for the same seed, contracts and start is
    the first line of the imported file: it is made again rather than kept on disk."""
    amc, _, _, catalogue_file = DEMO_INSURERS[0]
    listed = demo_catalogue(catalogue_file)["contracts"]
    assert isinstance(listed, list)
    contracts = [str(contract["code"]) for contract in listed]
    path = workdir / "sample-card.csv"
    write_beneficiaries_csv(
        path, 1, seed=seed, contracts=contracts, start=date(platform.today().year, 1, 1)
    )
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            row = next(csv.DictReader(handle, delimiter=";"))
    finally:
        path.unlink()
    return {
        "amc_number": amc,
        "nir": row["nir"],
        "birth_rank": row["birth_rank"],
        "birth_date": row["birth_date"],
    }
