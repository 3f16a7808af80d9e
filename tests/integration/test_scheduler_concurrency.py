"""Two schedulers ticking at the same instant, in threads (its own module: PostgreSQL keeps
a module's money runs, and billing goes month after month)."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from tests.conftest import SeededInsurer
from tests.money_support import adjudicated_claim, make_provider
from tierspayant.app.platform import Platform
from tierspayant.jobs.scheduler import Scheduler
from tierspayant.services.delays import invoice_delays
from tierspayant.services.scheduling import JOB_LEASE, claim_job
from tierspayant.store.tables import audit_events


def test_two_schedulers_ticking_at_once_run_the_day_once(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path
) -> None:
    """Two processes' schedulers at the same instant, in threads: one of them runs each
    job, the other finds it claimed (a failure, if any, is given back and retried)."""
    now = datetime(2026, 11, 9, 15, 30, tzinfo=UTC)  # Monday 9 November, 16:30 in Paris
    platform.clock = lambda: now
    insurer = seed_insurer(platform)
    provider = make_provider(platform, random.Random(9))
    for _ in range(3):
        adjudicated_claim(
            platform, insurer_id=insurer.id, amc_number=insurer.amc_number,
            provider_id=provider.id, adjudicated_at=now - timedelta(hours=2),
        )  # fmt: skip
    schedulers = [Scheduler(platform, checkpoint_dir=tmp_path / "cp") for _ in range(2)]
    ran: list[str] = []
    for _ in range(3):  # a second and third round retry whatever a busy database refused
        barrier = threading.Barrier(2)
        results: list[list[str]] = [[], []]

        def tick(
            n: int, barrier: threading.Barrier = barrier, results: list[list[str]] = results
        ) -> None:
            barrier.wait()
            results[n] = schedulers[n].tick().ran

        threads = [threading.Thread(target=tick, args=(n,)) for n in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        ran.extend(results[0] + results[1])
    day = [k for k in ran if k.endswith("2026-11-09")]
    assert sorted(day) == [
        "checkpoint:2026-11-09",
        "guard_figures:2026-11-09",
        "payment:2026-11-09",
        "subject_index:2026-11-09",
    ]
    assert "billing:2026-10" in ran
    assert len(ran) == len(set(ran))
    with platform.engine.connect() as conn:
        audited = conn.execute(
            select(audit_events.c.detail).where(audit_events.c.action == "payments.run")
        ).all()
    assert len(audited) == 1
    delays = invoice_delays(platform)
    assert [d.business_days for d in delays] == [0, 0, 0]
    assert {d.executed_on for d in delays} == {date(2026, 11, 9)}


def test_a_failed_job_is_given_back_and_retried_at_the_next_tick(
    platform: Platform, tmp_path: Path
) -> None:
    now = [datetime(2026, 11, 14, 3, 0, tzinfo=UTC)]  # Saturday 04:00 in Paris
    platform.clock = lambda: now[0]
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the checkpoint directory should be")
    scheduler = Scheduler(platform, checkpoint_dir=blocked)
    first = scheduler.tick()
    assert first.failed == ["checkpoint:2026-11-14"]
    # The other jobs are not held back.
    assert first.ran == ["guard_figures:2026-11-14", "subject_index:2026-11-14"]
    blocked.unlink()
    now[0] += timedelta(seconds=5)
    second = Scheduler(platform, checkpoint_dir=blocked).tick()  # another process retries
    assert second.ran == ["checkpoint:2026-11-14"]
    assert list(blocked.glob("checkpoint-*.json"))
    assert scheduler.tick().ran == []  # done: never again


def test_the_lease_of_a_dead_scheduler_is_taken_over_after_it_expires(
    platform: Platform, tmp_path: Path
) -> None:
    now = [datetime(2026, 11, 21, 3, 0, tzinfo=UTC)]  # Saturday 04:00 in Paris
    platform.clock = lambda: now[0]
    # A scheduler that claimed the night's checkpoint, then died before finishing it.
    assert claim_job(platform, "checkpoint:2026-11-21", "checkpoint", "host:1:dead")
    live = Scheduler(platform, checkpoint_dir=tmp_path / "cp")
    # The checkpoint is held; the other jobs run.
    assert live.tick().ran == ["guard_figures:2026-11-21", "subject_index:2026-11-21"]
    now[0] += JOB_LEASE - timedelta(seconds=1)
    assert live.tick().ran == []
    now[0] += timedelta(seconds=1)
    assert live.tick().ran == ["checkpoint:2026-11-21"]
