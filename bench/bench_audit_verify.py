"""Time to verify the audit chain, per million events, on an existing PostgreSQL log.

Run: ``bench/bench_audit_verify.py --database-url URL [--events 1000000] [--rounds 3]``
(a log kept by ``bench_incident.py --national --keep``, or any tierspayant database).

Interleaved rounds over the first ``--events`` events of the log: the floor (read the
rows through a server-side cursor and SHA-256 them, nothing else), ``verify_chain`` over
the portable reading (SQLAlchemy pages, one row mapping per event: the reading before
this change) and over ``store.audit.iter_events`` (raw-driver pages on PostgreSQL). One
JSON line per variant: median seconds per million events, median of the per-round ratios
to the floor and to the portable reading, peak memory, load average.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import time
from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any

from sqlalchemy import Connection, create_engine

from tierspayant.security.audit import AuditEvent, VerifyReport, verify_chain
from tierspayant.store import audit


def _floor(conn: Connection, events: int) -> int:
    """Read the hashed columns of ``events`` events in order and hash them; how many."""
    raw: Any = conn.connection.driver_connection
    count = 0
    sha = hashlib.sha256
    with raw.cursor(name="verify_floor") as cursor:
        cursor.itersize = 20_000
        cursor.execute(
            "SELECT seq, at, actor, structure, action, purpose, subject, insurer, decision,"
            " detail, prev_hash, hash FROM audit_events WHERE seq <= %s ORDER BY seq",
            (events,),
        )
        for row in cursor:
            sha(row[10] + row[9].encode() + row[2].encode()).digest()
            count += 1
    return count


def _verify(
    conn: Connection, events: int, reading: Callable[[Connection], Iterator[AuditEvent]]
) -> int:
    report: VerifyReport = verify_chain(islice(reading(conn), events))
    if not report.ok:
        raise SystemExit(f"the chain does not verify: {report}")
    return report.checked


def _portable(conn: Connection) -> Iterator[AuditEvent]:
    return audit._iter_events_core(conn, 0, 5000)


def _chosen(conn: Connection) -> Iterator[AuditEvent]:
    return audit.iter_events(conn)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    engine = create_engine(args.database_url)
    variants: dict[str, Callable[[Connection], int]] = {
        "floor_read_and_hash": lambda c: _floor(c, args.events),
        "verify_portable_reading": lambda c: _verify(c, args.events, _portable),
        "verify_iter_events": lambda c: _verify(c, args.events, _chosen),
    }
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    counted: dict[str, int] = {}
    loads = []
    for _ in range(args.rounds):
        for name, run in variants.items():
            with engine.connect() as conn:
                started = time.perf_counter()
                counted[name] = run(conn)
                seconds[name].append(time.perf_counter() - started)
            loads.append(os.getloadavg()[0])
    engine.dispose()
    for name, values in seconds.items():
        per_million = [s / counted[name] * 1e6 for s in values]
        line = {
            "bench": "audit_verify_reading",
            "variant": name,
            "events": counted[name],
            "seconds_per_million_median": round(statistics.median(per_million), 1),
            "seconds_rounds": [round(s, 1) for s in values],
            "ratio_to_floor_median": round(
                statistics.median(
                    v / f for v, f in zip(values, seconds["floor_read_and_hash"], strict=True)
                ),
                2,
            ),
            "ratio_to_portable_median": round(
                statistics.median(
                    v / p for v, p in zip(values, seconds["verify_portable_reading"], strict=True)
                ),
                2,
            ),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "load_1min_during_rounds": [round(x, 1) for x in loads],
            "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        }
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
