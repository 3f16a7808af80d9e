"""Time to rebuild the guard's counters from the audit log (a store back empty).

Run: ``.venv/bin/python bench/bench_guard_rebuild.py [--events 100000] [--older 100000]
[--engine sqlite|postgres|both] [--store memory|redis|both]``.

Builds a fresh database per engine whose audit log holds ``--older`` lookups a week old
(outside the window a rebuild reads: the bisection skips them) then ``--events`` lookups
of one day, 07:00 to 21:00 Paris time, by 3,000 principals of 2,000 structures about
60,000 people (95 % hits, 60 % without card proof, a few refusals and step-ups). The
events are real chained events, bulk-inserted. Then, at 21:00, one
:meth:`~tierspayant.security.guard.Restorer.rebuild` into an empty store (in-process, or
Redis at ``TIERSPAYANT_REDIS_URL`` under a throw-away prefix): read and computed, then
written. Prints one JSON line per (engine, store).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis

from bench.bench_incident import _values, drop_database, fresh_database
from tierspayant.app.platform import Platform, initialise
from tierspayant.config import load_settings
from tierspayant.security.audit import AuditEvent, next_event
from tierspayant.security.guard import (
    CounterStore,
    GuardPolicy,
    MemoryCounterStore,
    RedisCounterStore,
    Restorer,
)
from tierspayant.store.lookup_history import AuditLookupHistory
from tierspayant.store.tables import audit_events

DAY_START = datetime(2025, 3, 10, 6, 0, tzinfo=UTC)  # 07:00 in Paris
DAY_SECONDS_OPEN = 14 * 3600
CHUNK = 5000


def seed(platform: Platform, events: int, older: int, rng: random.Random) -> None:
    with platform.engine.begin() as conn:
        previous: AuditEvent | None = None
        batch: list[dict[str, Any]] = []
        for n in range(older + events):
            if n < older:
                at = DAY_START - timedelta(days=7) + timedelta(seconds=n * 0.3)
            else:
                at = DAY_START + timedelta(seconds=(n - older) * DAY_SECONDS_OPEN / events)
            structure = f"69{rng.randint(1, 2000):07d}"
            actor = f"provider:{structure}/client:{rng.randint(1, 3)}"
            roll = rng.random()
            if roll < 0.01:
                action, decision, subject = "lookup.refused", "step_up", None
                detail: dict[str, str | bool] = {"code": "guard.daily_cap_soft"}
            else:
                hit = roll < 0.96
                action, decision = "eligibility.check", "hit" if hit else "miss"
                subject = f"{rng.randint(1, 60_000):032x}" if hit else None
                detail = {"proof": rng.random() < 0.4, "disclosed": hit}
            previous = next_event(
                previous,
                at=at,
                actor=actor,
                structure=structure,
                action=action,
                purpose="rights_check",
                subject=subject,
                insurer="77665544",
                decision=decision,
                detail=detail,
            )
            batch.append(_values(previous))
            if len(batch) == CHUNK:
                conn.execute(audit_events.insert(), batch)
                batch = []
        if batch:
            conn.execute(audit_events.insert(), batch)


def measure(platform: Platform, store_name: str, events: int) -> dict[str, Any]:
    client: redis.Redis | None = None
    prefix = f"tp:bench-rebuild:{uuid.uuid4().hex[:8]}:"
    store: CounterStore
    if store_name == "redis":
        url = os.environ.get("TIERSPAYANT_REDIS_URL", "redis://127.0.0.1:6379/0")
        client = redis.Redis.from_url(url)
        store = RedisCounterStore(client, prefix=prefix)
    else:
        store = MemoryCounterStore()
    now = DAY_START + timedelta(seconds=DAY_SECONDS_OPEN)
    restorer = Restorer(store, AuditLookupHistory(platform.engine), GuardPolicy(), lambda: now)
    try:
        started = time.perf_counter()
        report = restorer.rebuild()
        total = time.perf_counter() - started
    finally:
        if client is not None:
            names = list(client.scan_iter(match=prefix + "*", count=10_000))
            for start in range(0, len(names), 10_000):
                client.delete(*names[start : start + 10_000])
            client.close()
    return {
        "bench": "guard_rebuild",
        "store": store_name,
        "day_events": events,
        "events_read": report.events,
        "keys_written": report.keys,
        "read_and_compute_s": round(report.read_seconds, 3),
        "write_s": round(report.write_seconds, 3),
        "total_s": round(total, 3),
        "load_average": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--older", type=int, default=100_000)
    parser.add_argument("--engine", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--store", choices=["memory", "redis", "both"], default="both")
    args = parser.parse_args()
    engines = ["sqlite", "postgres"] if args.engine == "both" else [args.engine]
    stores = ["memory", "redis"] if args.store == "both" else [args.store]
    workdir = Path(tempfile.mkdtemp(prefix="bench-rebuild-"))
    try:
        for engine_name in engines:
            url, data_dir = fresh_database(engine_name, workdir)
            try:
                settings = load_settings(
                    {"TIERSPAYANT_DATA_DIR": str(data_dir), "TIERSPAYANT_DATABASE_URL": url}
                )
                platform = initialise(settings)
                try:
                    started = time.perf_counter()
                    seed(platform, args.events, args.older, random.Random(7))
                    seeded = round(time.perf_counter() - started, 1)
                    for store_name in stores:
                        figures = measure(platform, store_name, args.events)
                        figures.update(engine=engine_name, seed_s=seeded, older=args.older)
                        print(json.dumps(figures), flush=True)
                finally:
                    platform.close()
            finally:
                drop_database(url)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
