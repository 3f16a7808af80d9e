"""The demo's month of claims: realistic mix, judged, mostly accepted, rerun-safe."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date
from pathlib import Path

import yaml
from sqlalchemy import func, select

from tests.conftest import SeededInsurer
from tests.factories import make_am_number
from tests.integration.claims_world import fixed_clock
from tierspayant.app.platform import Platform
from tierspayant.demo.claims import build_demo_claims
from tierspayant.demo.synthetic import write_beneficiaries_csv
from tierspayant.services.enrolment import import_beneficiaries
from tierspayant.services.insurers import upload_catalogue
from tierspayant.services.providers import NewProvider, add_conventions, add_provider
from tierspayant.store.claims_tables import claim_lines, claims
from tierspayant.store.ledger import check

CATALOGUE = (
    Path(__file__).resolve().parents[2]
    / "src/tierspayant/reference/demo/mutuelle-des-tilleuls.yaml"
)
CATEGORIES = ("pharmacy", "pharmacy", "gp", "laboratory", "optician", "dentist")


def test_a_month_of_demo_claims(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path
) -> None:
    platform.clock = fixed_clock
    insurer = seed_insurer(platform, with_catalogue=False)
    document = yaml.safe_load(CATALOGUE.read_text(encoding="utf-8"))
    document["insurer"] = insurer.amc_number
    upload = upload_catalogue(platform, insurer.amc_number, document, "test")
    people = tmp_path / "people.csv"
    write_beneficiaries_csv(people, 80, seed=3, contracts=upload.contracts, start=date(2025, 1, 1))
    import_beneficiaries(
        platform, insurer.amc_number, people, mode="full", file_date=date(2025, 1, 1), actor="t"
    )
    rng = random.Random(insurer.id)
    provider_ids = []
    for n, category in enumerate(CATEGORIES):
        am = make_am_number(rng)
        provider = add_provider(platform, NewProvider(am, category, f"PS {n}"), "t")
        add_conventions(platform, am, insurer.amc_number, None, date(2020, 1, 1), "t")
        provider_ids.append(provider.id)

    def demo() -> int:
        return build_demo_claims(
            platform,
            beneficiaries_csv=people,
            insurer_amc=insurer.amc_number,
            provider_ids=provider_ids,
            month=date(2026, 10, 1),
            count=120,
            seed=5,
        )

    received = demo()
    assert received >= 110  # a few optical or dental quotes may be refused
    with platform.engine.connect() as conn:
        states: dict[str, int] = dict(
            conn.execute(
                select(claim_lines.c.status, func.count())
                .where(claim_lines.c.insurer_id == insurer.id)
                .group_by(claim_lines.c.status)
            ).all()
        )
        with_agreement = conn.execute(
            select(func.count()).where(
                claims.c.insurer_id == insurer.id, claims.c.agreement_number.is_not(None)
            )
        ).scalar_one()
        pending = conn.execute(
            select(func.count()).where(
                claims.c.insurer_id == insurer.id, claims.c.status == "received"
            )
        ).scalar_one()
        assert check(conn).ok
    assert pending == 0
    assert states.get("accepted", 0) > 0.8 * sum(states.values())
    assert with_agreement >= 1
    assert demo() == 0  # the same invoices again: recognised, nothing new
