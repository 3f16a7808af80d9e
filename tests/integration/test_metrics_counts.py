"""The use cases count what operations watch, on SQLite and PostgreSQL: adjudication
backlog and lines, payment run duration and invoice delays, imported and rejected lines,
canary touches and the hard alerts they raise."""

from __future__ import annotations

import random
import warnings
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import select

from tests.conftest import SeededInsurer
from tests.integration.claims_world import World, build_world
from tests.integration.test_adjudication import consultation, send
from tests.integration.test_canaries import RNG, planted_world, rights_body
from tests.integration.test_cards import provider_token
from tests.integration.test_enrolment import person, write
from tests.integration.test_enrolment import run as import_file
from tests.money_support import adjudicated_claim, make_provider
from tierspayant import metrics
from tierspayant.api.app import create_app
from tierspayant.app.platform import Platform
from tierspayant.services import canaries, payments
from tierspayant.services.adjudication import adjudicate_pending
from tierspayant.store.tables import beneficiaries

with warnings.catch_warnings():
    # Starlette warns that it prefers httpx2 to httpx; the client works the same.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def value(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def test_adjudication_sets_the_backlog_and_counts_the_lines(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path
) -> None:
    world: World = build_world(platform, seed_insurer, tmp_path)
    send(world, "F-M-1", consultation(), consultation(billed=3500, amc=1400))
    send(world, "F-M-2", consultation(), person=1)
    lines = value("tierspayant_adjudicated_lines_total")
    adjudicate_pending(platform)
    assert value("tierspayant_adjudication_backlog_claims") == 2  # what the run found
    assert value("tierspayant_adjudicated_lines_total") == lines + 3
    adjudicate_pending(platform)
    assert value("tierspayant_adjudication_backlog_claims") == 0
    assert value("tierspayant_adjudicated_lines_total") == lines + 3


def test_a_payment_run_is_timed_and_observes_each_paid_invoice_delay_once(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path
) -> None:
    day = date(2026, 11, 26)  # a day no other test pays on (PostgreSQL keeps runs)
    platform.clock = lambda: datetime(2026, 11, 26, 8, tzinfo=UTC)
    insurer = seed_insurer(platform)
    provider = make_provider(platform, random.Random(5))
    adjudicated_claim(
        platform, insurer_id=insurer.id, amc_number=insurer.amc_number, provider_id=provider.id
    )
    runs = value("tierspayant_payment_run_seconds_count")
    seconds = value("tierspayant_payment_run_seconds_sum")
    paid = value("tierspayant_invoice_to_transfer_business_days_count")
    summary = payments.run_payments(platform, day, out_dir=tmp_path)
    assert summary.providers == 1
    assert value("tierspayant_payment_run_seconds_count") == runs + 1
    assert value("tierspayant_payment_run_seconds_sum") > seconds
    # The one invoice's delay is observed once: a rerun of the same run pays nothing.
    assert value("tierspayant_invoice_to_transfer_business_days_count") == paid + 1
    payments.run_payments(platform, day, out_dir=tmp_path)
    assert value("tierspayant_payment_run_seconds_count") == runs + 2
    assert value("tierspayant_invoice_to_transfer_business_days_count") == paid + 1


def test_an_import_counts_its_lines_and_rejects(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path
) -> None:
    insurer = seed_insurer(platform)
    bad_key = person(2)[:23] + "XX" + person(2)[25:]  # NIR key replaced
    path = write(tmp_path, "in.csv", person(1), bad_key, person(3, contract="PLATINE"))
    rows, rejects = (
        value("tierspayant_import_rows_total"),
        value("tierspayant_import_rejects_total"),
    )
    summary = import_file(platform, insurer, path, report=tmp_path / "errors.csv")
    assert (summary.lines, summary.rejected) == (3, 2)
    assert value("tierspayant_import_rows_total") == rows + 3
    assert value("tierspayant_import_rejects_total") == rejects + 2


def test_canary_touches_are_counted_by_path(platform: Platform, tmp_path: Path) -> None:
    world, planted = planted_world(platform, tmp_path, count=2)
    token, principal = provider_token(platform, RNG)
    lookups, rows = (value("tierspayant_canary_touches_total", path=p) for p in ("lookup", "rows"))
    client = TestClient(create_app(platform))
    body = rights_body(planted[0], world.amc, platform)
    answer = client.post("/v1/eligibility", json=body, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    assert value("tierspayant_canary_touches_total", path="lookup") == lookups + 1
    with platform.engine.begin() as conn:
        ids = list(
            conn.execute(
                select(beneficiaries.c.id).where(beneficiaries.c.insurer_id == world.insurer_id)
            ).scalars()
        )
        found = canaries.canary_touched(platform, conn, world.insurer_id, ids, principal, "x")
    assert found
    assert value("tierspayant_canary_touches_total", path="rows") == rows + 1
    assert value("tierspayant_alerts_raised_total", code="guard.canary", level="hard") >= 1
    assert value("tierspayant_alerts_raised_total", code="canary.touched", level="hard") >= 1
