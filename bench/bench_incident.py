"""Time to scope an incident: who was read by one principal, in a log of N events.

Run: ``.venv/bin/python bench/bench_incident.py [--events 100000] [--beneficiaries 200000]
[--attacker-share 0.2] [--engine sqlite|postgres|both]``.

National mode (PostgreSQL): ``bench/bench_incident.py --national --sizes 2000000,5000000
--events 5000000 --day-lookups 50000`` (20 M: ``--sizes 2000000,20000000``). See
:func:`run_national`: bulk-loaded beneficiaries and a real hash-chained log (``incident_load``),
the scope of a scraper's day by structure and by principal at each base size against
the raw read of the same window's events (interleaved rounds, median of per-round
ratios), the plan of every query the scope ran (no sequential scan of ``beneficiaries``,
``audit_events`` or ``subject_index``), and ``audit verify`` of the whole log against a
read-and-hash floor.

Builds a fresh database per engine: one insurer with ``--beneficiaries`` rows (random
bytes in place of ciphertexts: scoping never decrypts), then an audit log of ``--events``
rights checks, a share of them by one attacking principal (hits and misses), the rest by
honest pharmacies. The events are real chained events (same hashes, same pseudonyms as the
rights check); they are bulk-inserted to save time, which does not change what scoping
reads. Measured: :func:`tierspayant.services.incident.scope_incident` for the attacker,
then for its structure, end to end (query, pseudonym resolution, audit, commit).

Also measured: signing a checkpoint of the whole log (which verifies the chain first) and
verifying the log against it. Prints one JSON line per (engine, measure).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text

from bench import incident_load
from tierspayant.app.platform import Platform, initialise
from tierspayant.config import load_settings
from tierspayant.security.audit import AuditEvent, next_event, subject_pseudonym
from tierspayant.services import audit_log, checkpoints, incident
from tierspayant.services.incident import subjects
from tierspayant.store import audit
from tierspayant.store.keys import insurer_scope
from tierspayant.store.tables import audit_events, beneficiaries, insurers

POSTGRES_SERVER = os.environ.get(
    "TIERSPAYANT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/"
)
AMC = "77665544"
ATTACKER = "provider:751234567/client:phished"
ATTACKER_STRUCTURE = "750000001"
T0 = datetime(2025, 2, 1, 8, 0, tzinfo=UTC)
CHUNK = 5000
INCREMENT = 1000


def fresh_database(engine_name: str, workdir: Path) -> tuple[str, Path]:
    data_dir = workdir / f"data-{uuid.uuid4().hex[:8]}"
    data_dir.mkdir()
    if engine_name == "sqlite":
        return f"sqlite:///{data_dir / 'tierspayant.sqlite3'}", data_dir
    name = f"bench_incident_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_SERVER.rstrip("/") + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return POSTGRES_SERVER.rstrip("/") + f"/{name}", data_dir


def drop_database(url: str) -> None:
    if not url.startswith("postgresql"):
        return
    name = url.rsplit("/", 1)[1]
    admin = create_engine(POSTGRES_SERVER.rstrip("/") + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def seed_beneficiaries(platform: Platform, count: int, rng: random.Random) -> int:
    now = platform.now()
    with platform.engine.begin() as conn:
        insurer_id = int(
            conn.execute(
                insurers.insert()
                .values(amc_number=AMC, name="Mutuelle du banc", kind="mutuelle", created_at=now)
                .returning(insurers.c.id)
            ).scalar_one()
        )
        platform.keys.create(conn, insurer_scope(AMC), now)
        for start in range(1, count + 1, CHUNK):
            conn.execute(
                beneficiaries.insert(),
                [
                    _row(insurer_id, i, rng, now)
                    for i in range(start, min(start + CHUNK, count + 1))
                ],
            )
    return insurer_id


def _row(insurer_id: int, beneficiary_id: int, rng: random.Random, now: datetime) -> dict[str, Any]:
    blob = rng.randbytes(48)
    return {
        "insurer_id": insurer_id,
        "id": beneficiary_id,
        "idx_nir": rng.randbytes(16),
        "idx_member": rng.randbytes(16),
        "idx_family": rng.randbytes(16),
        "key_version": 1,
        "nir_ct": blob,
        "member_number_ct": blob,
        "birth_date_ct": blob,
        "last_name_ct": blob,
        "first_name_ct": blob,
        "birth_rank": 1,
        "sex": "F",
        "quality": "member",
        "birth_year": 1970,
        "contract_code": "ESSENTIEL",
        "coverage_start": date(2024, 1, 1),
        "coverage_end": None,
        "css": False,
        "is_canary": False,
        "row_digest": bytes(16),
        "updated_at": now,
    }


def _values(event: AuditEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "at": event.at,
        "actor": event.actor,
        "structure": event.structure,
        "action": event.action,
        "purpose": event.purpose,
        "subject": event.subject,
        "insurer": event.insurer,
        "decision": event.decision,
        "detail": json.dumps(dict(event.detail), sort_keys=True, separators=(",", ":")),
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


def seed_log(
    platform: Platform, events: int, people: int, share: float, rng: random.Random
) -> set[int]:
    """Append ``events`` rights checks; return the ids the attacker was answered about."""
    key = platform.operator_keys().derive(incident.PSEUDONYM_PURPOSE)
    disclosed: set[int] = set()
    with platform.engine.begin() as conn:
        previous: AuditEvent | None = None
        batch: list[dict[str, Any]] = []
        for n in range(events):
            attacker = rng.random() < share
            beneficiary = rng.randint(1, people)
            hit = rng.random() < (0.7 if attacker else 0.98)
            previous = next_event(
                previous,
                at=T0 + timedelta(milliseconds=300 * n),
                actor=ATTACKER if attacker else f"provider:{rng.randint(1, 500)}/client:x",
                structure=ATTACKER_STRUCTURE if attacker else f"69{rng.randint(1, 500):07d}",
                action="eligibility.check",
                purpose="rights_check",
                subject=subject_pseudonym(key, AMC, str(beneficiary)) if hit else None,
                insurer=AMC,
                decision="hit" if hit else "miss",
                detail={"care_date": "2025-02-01", "domains": "PHAR", "by": "nir", "proof": False},
            )
            if attacker and hit:
                disclosed.add(beneficiary)
            batch.append(_values(previous))
            if len(batch) == CHUNK:
                conn.execute(audit_events.insert(), batch)
                batch = []
        if batch:
            conn.execute(audit_events.insert(), batch)
    return disclosed


def _checkpoint_figures(
    platform: Platform, engine_name: str, events: int, data_dir: Path
) -> dict[str, Any]:
    """Time to sign a first checkpoint (whole log checked), a second one after a few more
    events (incremental), then to verify the whole log against them."""
    out = data_dir / "checkpoints"
    started = time.perf_counter()
    written = checkpoints.write_checkpoint(platform, out)
    signed = time.perf_counter() - started
    with platform.engine.begin() as conn:
        for _ in range(INCREMENT):
            audit.append(conn, at=T0, actor="bench", action="bench.event", decision="allow")
    started = time.perf_counter()
    checkpoints.write_checkpoint(platform, out)
    incremental = time.perf_counter() - started
    started = time.perf_counter()
    report = checkpoints.verify(platform, out)
    verified = time.perf_counter() - started
    return {
        "bench": "audit_checkpoint",
        "engine": engine_name,
        "log_events": events,
        "up_to_seq": written.checkpoint.up_to_seq if written else None,
        "ok": report.ok,
        "sign_seconds": round(signed, 3),
        f"sign_after_{INCREMENT}_more_seconds": round(incremental, 3),
        "verify_seconds": round(verified, 3),
    }


def run(engine_name: str, args: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    url, data_dir = fresh_database(engine_name, workdir)
    settings = load_settings(
        {"TIERSPAYANT_DATA_DIR": str(data_dir), "TIERSPAYANT_DATABASE_URL": url}
    )
    platform = initialise(settings)
    try:
        rng = random.Random(2024)
        seed_beneficiaries(platform, args.beneficiaries, rng)
        disclosed = seed_log(platform, args.events, args.beneficiaries, args.attacker_share, rng)
        window = (T0, T0 + timedelta(days=30))
        results = []
        for label, criteria in (
            ("principal", incident.ScopeCriteria(*window, principal=ATTACKER)),
            ("structure", incident.ScopeCriteria(*window, structure=ATTACKER_STRUCTURE)),
        ):
            started = time.perf_counter()
            result = incident.scope_incident(platform, criteria, "operator:bench")
            seconds = time.perf_counter() - started
            found = {r.beneficiary_id for s in result.insurers for r in s.records}
            results.append(
                {
                    "bench": "incident_scope",
                    "engine": engine_name,
                    "by": label,
                    "log_events": args.events,
                    "beneficiaries": args.beneficiaries,
                    "events_examined": result.events_scanned,
                    "people": result.people,
                    "exact": found == disclosed,
                    "seconds": round(seconds, 3),
                }
            )
        results.append(_checkpoint_figures(platform, engine_name, args.events, data_dir))
        return results
    finally:
        platform.close()
        drop_database(url)
        shutil.rmtree(data_dir, ignore_errors=True)


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _emit(line: dict[str, Any]) -> None:
    """One JSON line; ``load`` (1, 5, 15 min) as ``run_all``'s table reads it."""
    print(json.dumps({**line, "load": _load()}), flush=True)


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


# Tables that grow with the people or the log: reading one whole is the pass to avoid.
_WHOLE_SCANS = tuple(
    f"Seq Scan on {table}" for table in ("beneficiaries", "audit_events", "subject_index")
)


class StatementLog:
    """The statements a block runs through SQLAlchemy (to EXPLAIN them afterwards)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.seen: dict[str, Any] = {}
        self.active = False
        event.listen(engine, "before_cursor_execute", self._record)

    def _record(
        self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        if self.active and not many and statement.lstrip().upper().startswith("SELECT"):
            self.seen.setdefault(statement, params)

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._record)

    def plans(self, raw: Any) -> list[dict[str, Any]]:
        """Each distinct SELECT's plan, and whether it scans a large table whole."""
        found = []
        for statement, params in self.seen.items():
            with raw.cursor() as cursor:
                cursor.execute("EXPLAIN " + statement, params)
                plan = [str(r[0]) for r in cursor.fetchall()]
            raw.rollback()
            scans = [line.strip() for line in plan if any(t in line for t in _WHOLE_SCANS)]
            found.append(
                {"sql": " ".join(statement.split())[:160], "plan": plan[0].strip(), "scans": scans}
            )
        return found


def _window_floor(raw: Any, criteria: incident.ScopeCriteria) -> float:
    """The raw read of the window's events through the (structure, at) or (actor, at)
    index: the floor of any scope."""
    column, value = (
        ("actor", criteria.principal)
        if criteria.principal is not None
        else ("structure", criteria.structure)
    )
    started = time.perf_counter()
    with raw.cursor() as cursor:
        cursor.execute(
            "SELECT insurer, subject, at, action, decision, detail FROM audit_events"
            f" WHERE {column} = %s AND at >= %s AND at < %s",
            (value, criteria.start, criteria.end),
        )
        cursor.fetchall()
    raw.commit()
    return time.perf_counter() - started


def _rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run_national(args: argparse.Namespace, workdir: Path) -> None:
    """The national incident benchmark on PostgreSQL (see the module's docstring)."""
    sizes = sorted(int(s) for s in args.sizes.split(","))
    url, data_dir = fresh_database("postgres", workdir)
    settings = load_settings(
        {"TIERSPAYANT_DATA_DIR": str(data_dir), "TIERSPAYANT_DATABASE_URL": url}
    )
    platform = initialise(settings)
    pool_raw = platform.engine.raw_connection()
    raw: Any = pool_raw.driver_connection
    try:
        now = platform.now()
        with platform.engine.begin() as conn:
            insurer_id = _add_insurer(platform, conn, now)
        key = platform.operator_keys().derive(incident.PSEUDONYM_PURPOSE)
        plan = incident_load.LogPlan(
            events=args.events, people=sizes[0], amc=AMC, day_lookups=args.day_lookups
        )
        started = time.perf_counter()
        disclosed, _ = incident_load.load_events(raw, plan, key)
        seconds = time.perf_counter() - started
        _emit(
            {
                "bench": "incident_load_events",
                "events": args.events,
                "seconds": round(seconds, 1),
                "events_per_second": round(args.events / seconds),
                "rss_mb": _rss_mb(),
            }
        )
        loaded = 0
        for size in sizes:
            started = time.perf_counter()
            incident_load.load_beneficiaries(raw, insurer_id, loaded + 1, size)
            with raw.cursor() as cursor:
                cursor.execute("ANALYZE beneficiaries")
                cursor.execute("ANALYZE audit_events")
            raw.commit()
            load_seconds = time.perf_counter() - started
            loaded = size
            started = time.perf_counter()
            indexed = subjects.index_subjects(platform)[AMC]
            index_seconds = time.perf_counter() - started
            with raw.cursor() as cursor:
                cursor.execute("ANALYZE subject_index")
            raw.commit()
            _emit(
                {
                    "bench": "incident_load_base",
                    "beneficiaries": size,
                    "load_seconds": round(load_seconds, 1),
                    "subjects_indexed": indexed,
                    "index_seconds": round(index_seconds, 1),
                    "index_us_per_id": round(index_seconds / max(indexed, 1) * 1e6, 2),
                }
            )
            _scope_rounds(platform, raw, args, size, disclosed, plan)
        _verify_rounds(platform, raw, args)
    finally:
        pool_raw.close()
        platform.close()
        if args.keep:
            _emit({"bench": "incident_kept", "database_url": url})
        else:
            drop_database(url)
        shutil.rmtree(data_dir, ignore_errors=True)


def _add_insurer(platform: Platform, conn: Connection, now: datetime) -> int:
    insurer_id = int(
        conn.execute(
            insurers.insert()
            .values(amc_number=AMC, name="Mutuelle du banc", kind="mutuelle", created_at=now)
            .returning(insurers.c.id)
        ).scalar_one()
    )
    platform.keys.create(conn, insurer_scope(AMC), now)
    return insurer_id


def _scope_rounds(
    platform: Platform,
    raw: Any,
    args: argparse.Namespace,
    size: int,
    disclosed: set[int],
    plan: incident_load.LogPlan,
) -> None:
    start, end = plan.window()
    statements = StatementLog(platform.engine)
    report_dir = platform.settings.data_dir / "reports"
    report_dir.mkdir(exist_ok=True)
    for label, criteria in (
        (
            "structure",
            incident.ScopeCriteria(start, end, structure=incident_load.ATTACKER_STRUCTURE),
        ),
        ("principal", incident.ScopeCriteria(start, end, principal=incident_load.ATTACKER)),
    ):
        ratios, scopes, floors = [], [], []
        exact = True
        result = None
        for round_no in range(args.rounds):
            floor = _window_floor(raw, criteria)
            statements.active = round_no == 0
            started = time.perf_counter()
            result = incident.scope_incident(platform, criteria, "operator:bench")
            # The report, as ``incident scope`` writes it: JSON and the French CSV.
            incident.write_scope(result, report_dir / f"scope-{label}.json")
            incident.write_scope(result, report_dir / f"scope-{label}.csv")
            seconds = time.perf_counter() - started
            statements.active = False
            found = {r.beneficiary_id for s in result.insurers for r in s.records}
            exact = exact and found == disclosed
            scopes.append(seconds)
            floors.append(floor)
            ratios.append(seconds / floor)
        assert result is not None
        plans = statements.plans(raw)
        statements.seen.clear()
        if label == "principal":
            statements.close()
        _emit(
            {
                "bench": "incident_scope_national",
                "by": label,
                "beneficiaries": size,
                "log_events": args.events,
                "events_examined": result.events_scanned,
                "people": result.people,
                "exact": exact,
                "seconds_median": round(_median(scopes), 3),
                "seconds_rounds": [round(x, 3) for x in scopes],
                "floor_window_read_seconds_median": round(_median(floors), 3),
                "ratio_to_floor_median": round(_median(ratios), 2),
                # For run_all's table, the same way round as the others: the floor's
                # time over the scope's (1.0: as fast as reading the window raw).
                "engine": "postgres",
                "target": f"scope by {label}, {size} people",
                "ratio": round(_median([1 / r for r in ratios]), 3),
                "statements": len(plans),
                "whole_table_scans": [p for p in plans if p["scans"]],
                "plans": [f"{p['plan']} <- {p['sql']}" for p in plans],
            }
        )


def _verify_rounds(platform: Platform, raw: Any, args: argparse.Namespace) -> None:
    ratios, verifies, floors = [], [], []
    rss_before = _rss_mb()
    report = None
    for _ in range(args.verify_rounds):
        _, floor = incident_load.digest_floor(raw)
        started = time.perf_counter()
        report = audit_log.verify(platform)
        seconds = time.perf_counter() - started
        verifies.append(seconds)
        floors.append(floor)
        ratios.append(seconds / floor)
    assert report is not None
    events = report.checked
    _emit(
        {
            "bench": "audit_verify",
            "events": events,
            "ok": report.ok,
            "seconds_median": round(_median(verifies), 1),
            "seconds_per_million": round(_median(verifies) / events * 1e6, 1),
            "floor_read_and_hash_seconds_median": round(_median(floors), 1),
            "ratio_to_floor_median": round(_median(ratios), 2),
            "engine": "postgres",
            "target": "audit verify",
            "ratio": round(_median([1 / r for r in ratios]), 3),
            "rss_mb_before": rss_before,
            "rss_mb_peak_after": _rss_mb(),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--beneficiaries", type=int, default=200_000)
    parser.add_argument("--attacker-share", type=float, default=0.2)
    parser.add_argument("--engine", choices=("sqlite", "postgres", "both"), default="sqlite")
    parser.add_argument("--national", action="store_true", help="PostgreSQL bulk mode")
    parser.add_argument("--sizes", default="2000000,5000000", help="base sizes, growing")
    parser.add_argument("--day-lookups", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--verify-rounds", type=int, default=2)
    parser.add_argument(
        "--keep", action="store_true", help="keep the national database (bench_audit_verify)"
    )
    args = parser.parse_args()
    if args.national:
        with tempfile.TemporaryDirectory(prefix="bench-incident-") as tmp:
            run_national(args, Path(tmp))
        return
    engines = ("sqlite", "postgres") if args.engine == "both" else (args.engine,)
    with tempfile.TemporaryDirectory(prefix="bench-incident-") as tmp:
        for engine_name in engines:
            for line in run(engine_name, args, Path(tmp)):
                print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
