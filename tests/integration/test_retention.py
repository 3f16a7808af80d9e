"""Retention purge: past the period → rows and blind indexes gone, unless a claim is open;
answers kept under idempotency keys go after their 24 hours."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from tests.integration.operations_support import (
    NOW,
    Person,
    SeedInsurer,
    enrol,
    provider_principal,
)
from tierspayant.app.platform import Platform
from tierspayant.services import idempotency, retention
from tierspayant.services.errors import ServiceError
from tierspayant.services.idempotency import IdempotencyKey, KeyTaken, StoredAnswer
from tierspayant.services.identification import identify
from tierspayant.store import audit
from tierspayant.store.claims_tables import claims
from tierspayant.store.tables import beneficiaries, idempotency_keys

ACTOR = "operator:cli"
LONG_AGO = "2022-06-30"  # more than 2 years before NOW (2025-03-10)
RECENT = "2024-12-31"
EXPIRED = 10  # lines 0-9 ended LONG_AGO, 10-13 RECENT, the rest are still covered
# Claims about expired people: (line, status, adjudicated_at)
CLAIMS = (
    (0, "received", None),  # not adjudicated yet: held
    (1, "adjudicated", datetime(2024, 11, 2, tzinfo=UTC)),  # settles within retention: held
    (2, "adjudicated", datetime(2022, 9, 1, tzinfo=UTC)),  # long settled: purged
    (3, "cancelled", None),  # final: purged
)
HELD = {0, 1}


def _adjust(line: int, row: dict[str, str]) -> None:
    if line < EXPIRED + 4:
        row["coverage_start"] = "2019-01-01"
        row["coverage_end"] = LONG_AGO if line < EXPIRED else RECENT
        row["birth_date"] = row["birth_date"] if row["birth_date"] < "2019" else "2018-12-01"


@pytest.fixture
def world(
    platform: Platform, seed_insurer: SeedInsurer, tmp_path: Path
) -> tuple[Platform, int, str, list[Person]]:
    platform.clock = lambda: NOW
    insurer, people = enrol(platform, seed_insurer, tmp_path, 20, seed=5, adjust=_adjust)
    provider = provider_principal(platform, insurer.amc_number, seed=9)
    with platform.engine.begin() as conn:
        for n, (line, status, adjudicated) in enumerate(CLAIMS, start=1):
            conn.execute(
                claims.insert().values(
                    insurer_id=insurer.id,
                    id=n,
                    provider_id=provider.provider_id,
                    invoice_number=f"F{insurer.amc_number}-{n}",
                    version=1,
                    beneficiary_id=line + 1,
                    care_date=date(2022, 6, 1),
                    request_digest=bytes(32),
                    status=status,
                    source="api",
                    received_at=datetime(2022, 6, 2, tzinfo=UTC),
                    adjudicated_at=adjudicated,
                    billed_cents=2_500,
                    amc_requested_cents=750,
                    amc_accepted_cents=0,
                )
            )
    return platform, insurer.id, insurer.amc_number, people


def _ids(platform: Platform, insurer_id: int) -> set[int]:
    with platform.engine.connect() as conn:
        return set(
            conn.execute(
                select(beneficiaries.c.id).where(beneficiaries.c.insurer_id == insurer_id)
            ).scalars()
        )


def _mine(report: retention.PurgeReport, amc: str) -> retention.InsurerPurge:
    return next(i for i in report.insurers if i.amc_number == amc)


def test_given_a_dry_run_then_counts_and_nothing_deleted(
    world: tuple[Platform, int, str, list[Person]],
) -> None:
    platform, insurer_id, amc, _ = world
    report = retention.purge(platform, ACTOR, dry_run=True)
    assert _mine(report, amc) == retention.InsurerPurge(amc, EXPIRED, len(HELD), 0)
    assert len(_ids(platform, insurer_id)) == 20


def test_given_a_purge_then_expired_rows_go_unless_a_claim_is_open(
    world: tuple[Platform, int, str, list[Person]],
) -> None:
    platform, insurer_id, amc, people = world
    report = retention.purge(platform, ACTOR)
    assert _mine(report, amc) == retention.InsurerPurge(amc, EXPIRED, 2, EXPIRED - 2)
    kept = _ids(platform, insurer_id)
    assert kept == {line + 1 for line in HELD} | set(range(EXPIRED + 1, 21))
    with platform.engine.connect() as conn:
        for person in people:
            _, found = identify(platform, conn, person.card(amc))
            assert (found is not None) == (person.line + 1 in kept)  # index gone with row
        event = audit.last_event(conn)
    assert event is not None
    assert (event.action, event.insurer) == ("retention.purge", amc)
    assert event.detail["purged"] == EXPIRED - 2
    assert event.detail["held"] == 2
    again = retention.purge(platform, ACTOR)
    assert _mine(again, amc).purged == 0


def test_given_a_canary_past_retention_then_never_purged(
    world: tuple[Platform, int, str, list[Person]],
) -> None:
    platform, insurer_id, _, _ = world
    with platform.engine.begin() as conn:
        conn.execute(
            update(beneficiaries)
            .where(beneficiaries.c.insurer_id == insurer_id, beneficiaries.c.id == 5)
            .values(is_canary=True)
        )
    retention.purge(platform, ACTOR)
    assert 5 in _ids(platform, insurer_id)


def test_given_a_longer_period_then_fewer_purged(
    world: tuple[Platform, int, str, list[Person]],
) -> None:
    platform, insurer_id, amc, _ = world
    report = retention.purge(platform, ACTOR, retention_days=365 * 4)
    assert amc not in {i.amc_number for i in report.insurers}
    with platform.engine.connect() as conn:
        count = conn.execute(
            select(func.count())
            .select_from(beneficiaries)
            .where(beneficiaries.c.insurer_id == insurer_id)
        ).scalar_one()
    assert count == 20


def test_given_a_too_short_period_then_refused(platform: Platform) -> None:
    with pytest.raises(ServiceError) as refused:
        retention.purge(platform, ACTOR, retention_days=30)
    assert refused.value.code == "retention.too_short"


def _kept(platform: Platform, key: IdempotencyKey, answer: StoredAnswer, at: datetime) -> None:
    platform.clock = lambda: at
    with platform.engine.begin() as conn:
        idempotency.keep(platform, conn, key, answer)


def test_given_answers_kept_under_idempotency_keys_then_gone_after_24_hours(
    platform: Platform,
) -> None:
    def key(name: str, digest: bytes = bytes(32)) -> IdempotencyKey:
        return IdempotencyKey("POST /v1/calculations provider:test", name, digest)

    answer = StoredAnswer(200, (("content-type", "application/json"),), b'{"amc_cents":900}')
    # Given an answer kept 25 hours ago and one kept an hour ago
    _kept(platform, key("old"), answer, NOW - timedelta(hours=25))
    _kept(platform, key("recent"), answer, NOW - timedelta(hours=1))
    platform.clock = lambda: NOW
    # Then the old one answers no more, the recent one still does
    assert idempotency.stored_answer(platform, key("old")) is None
    assert idempotency.stored_answer(platform, key("recent")) == answer
    # When the retention purge runs: counted by a dry run, deleted by the run
    assert retention.purge(platform, ACTOR, dry_run=True).idempotency_keys == 1
    assert retention.purge(platform, ACTOR).idempotency_keys == 1
    assert retention.purge(platform, ACTOR).idempotency_keys == 0
    with platform.engine.connect() as conn:
        left = conn.execute(select(idempotency_keys.c.key)).scalars().all()
    assert left == ["recent"]
    # and a key within its 24 hours is held; past them, a new request takes it at once
    with pytest.raises(KeyTaken), platform.engine.begin() as conn:
        idempotency.keep(platform, conn, key("recent", bytes([1]) * 32), answer)
    _kept(platform, key("late"), answer, NOW - timedelta(hours=24, seconds=1))
    other = StoredAnswer(200, (), b"{}")
    _kept(platform, key("late", bytes([2]) * 32), other, NOW)
    assert idempotency.stored_answer(platform, key("late", bytes([2]) * 32)) == other
