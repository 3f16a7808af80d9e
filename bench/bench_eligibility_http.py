"""Rights check over HTTP (auth + audit on) against a bare Starlette route, same run.

Four servers under the same uvicorn settings, measured one after the other by the same
client: the bare Starlette hello route (the baseline of the ratio), a FastAPI route with
the rights check's models and a bearer check but no work (the framework's floor), the
platform, and the platform with its guard off (the guard's overhead).

Usage: python bench/bench_eligibility_http.py [--beneficiaries N] [--requests N] [--rounds N]
Prints one JSON line per measured round and a summary line with the ratio.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

from sqlalchemy import create_engine, text

from bench.loadgen import LoadResult, build_request, run_load, wait_for_port
from tierspayant.app.platform import initialise
from tierspayant.config import load_settings
from tierspayant.demo.builder import DEMO_INSURERS, build_demo
from tierspayant.services import providers

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_SERVER = os.environ.get(
    "TIERSPAYANT_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/"
)
REDIS_URL = os.environ.get("TIERSPAYANT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
BIG = 10**9
# The guard stays on (its cost is what we measure) with thresholds no run can reach:
# a benchmark is one client making thousands of distinct lookups without card proof.
GUARD_OFF_LIMITS = json.dumps(
    {
        "daily_caps": {"pharmacy": BIG},
        "default_daily_cap": BIG,
        "no_proof_soft": BIG,
        "no_proof_hard": BIG,
        "unbilled_pending": BIG,
        "unbilled_soft": BIG,
        "unbilled_hard": BIG,
        "principal_per_minute": BIG,
        "structure_per_minute": BIG,
        "global_per_minute": BIG,
    }
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def environment(data_dir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "TIERSPAYANT_DATA_DIR": str(data_dir),
            "TIERSPAYANT_ACCESS_TOKEN_TTL": "36000",
            "TIERSPAYANT_GUARD_POLICY": GUARD_OFF_LIMITS,
            "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'src'}",
        }
    )
    env.update(extra or {})
    return env


@contextmanager
def database(engine: str) -> Iterator[dict[str, str]]:
    """Settings of the engine under test: SQLite in the data directory, or a fresh
    PostgreSQL database (dropped afterwards) with the guard's counters in Redis."""
    if engine == "sqlite":
        yield {}
        return
    name = f"bench_http_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_SERVER.rstrip("/") + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield {
            "TIERSPAYANT_DATABASE_URL": POSTGRES_SERVER.rstrip("/") + f"/{name}",
            "TIERSPAYANT_REDIS_URL": REDIS_URL,
        }
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def prepare(
    data_dir: Path, beneficiaries: int, extra: dict[str, str] | None = None
) -> tuple[str, list[dict[str, object]]]:
    """Create the data set and a token; return the token and a list of card bodies."""
    env = environment(data_dir, extra)
    settings = load_settings(env)
    platform = initialise(settings)
    summary = build_demo(
        platform,
        beneficiaries=beneficiaries,
        providers_count=20,
        seed=11,
        files_dir=data_dir / "demo",
    )
    token = providers.grant_client_token(
        platform, summary.client_id, summary.client_secret
    ).access_token
    platform.close()
    amc = DEMO_INSURERS[0][0]
    bodies: list[dict[str, object]] = []
    with (data_dir / "demo" / f"beneficiaries_{amc}.csv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter=";"):
            bodies.append(
                {
                    "card": {
                        "amc_number": amc,
                        "nir": row["nir"],
                        "birth_rank": int(row["birth_rank"]),
                        "birth_date": row["birth_date"],
                    },
                    "care_date": date.today().isoformat(),
                    "domains": ["PHAR", "MED"],
                }
            )
            if len(bodies) >= 5000:
                break
    return token, bodies


def serve(kind: str, port: int, env: dict[str, str], workers: int = 1) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "serve.py"), kind, str(port), str(workers)],
        env=env,
    )
    wait_for_port(port)
    return process


def measure(
    label: str, port: int, make: Callable[[int], bytes], requests: int, rounds: int
) -> list[LoadResult]:
    run_load(port, make, requests=min(500, requests), seconds=10)  # warm-up
    results = []
    for index in range(rounds):
        result = run_load(port, make, connections=8, requests=requests, seconds=30)
        print(
            json.dumps(
                {"bench": "eligibility_http", "target": label, "round": index, **result.summary()}
            )
        )
        results.append(result)
    return results


def best(results: list[LoadResult]) -> LoadResult:
    return max(results, key=lambda r: r.rps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--beneficiaries", type=int, default=30_000)
    parser.add_argument("--requests", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--engine",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="postgres: a fresh database on the local server, guard counters in Redis",
    )
    parser.add_argument("--workers", type=int, default=1, help="uvicorn processes per server")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, database(args.engine) as extra:
        data_dir = Path(tmp)
        token, bodies = prepare(data_dir, args.beneficiaries, extra)
        env = environment(data_dir, extra)
        bare_port, app_port, unguarded_port = free_port(), free_port(), free_port()
        floor_port = free_port()
        bare = serve("bare", bare_port, env, args.workers)
        floor = serve("floor", floor_port, env, args.workers)
        app = serve("platform", app_port, env, args.workers)
        # The guard can be switched off only in the embedded mode (SQLite).
        with_unguarded = args.engine == "sqlite"
        unguarded = (
            serve("platform", unguarded_port, {**env, "TIERSPAYANT_GUARD": "off"}, args.workers)
            if with_unguarded
            else None
        )
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        payloads = [
            build_request("POST", "/v1/eligibility", json.dumps(b).encode(), headers)
            for b in bodies
        ]
        hello = build_request("GET", "/hello", b"", {})
        try:
            bare_results = measure(
                "bare_starlette", bare_port, lambda _i: hello, args.requests, args.rounds
            )
            floor_results = measure(
                "fastapi_floor",
                floor_port,
                lambda i: payloads[i % len(payloads)],
                args.requests,
                args.rounds,
            )
            app_results = measure(
                "rights_check",
                app_port,
                lambda i: payloads[i % len(payloads)],
                args.requests,
                args.rounds,
            )
            unguarded_results = (
                measure(
                    "rights_check_guard_off",
                    unguarded_port,
                    lambda i: payloads[i % len(payloads)],
                    args.requests,
                    args.rounds,
                )
                if with_unguarded
                else []
            )
        finally:
            for process in (bare, floor, app, unguarded):
                if process is not None:
                    process.terminate()
                    process.wait(timeout=10)
        base, target = best(bare_results), best(app_results)
        unguarded_rps = best(unguarded_results).rps if unguarded_results else None
        floor_best = best(floor_results)
        statuses = target.statuses
        print(
            json.dumps(
                {
                    "bench": "eligibility_http",
                    "summary": True,
                    "engine": args.engine,
                    "workers": args.workers,
                    "bare_rps": round(base.rps, 1),
                    "rights_check_rps": round(target.rps, 1),
                    "ratio": round(target.rps / base.rps, 3) if base.rps else None,
                    "rights_check_p50_ms": round(target.percentile(50), 2),
                    "rights_check_p99_ms": round(target.percentile(99), 2),
                    "bare_p99_ms": round(base.percentile(99), 2),
                    # The same models and a bearer check, no work: the framework's share.
                    "fastapi_floor_rps": round(floor_best.rps, 1),
                    "fastapi_floor_ratio": round(floor_best.rps / base.rps, 3)
                    if base.rps
                    else None,
                    "statuses": statuses,
                    # Every measured answer must be a 200, else the figures mean nothing.
                    "valid": all(
                        set(r.statuses) == {200}
                        for r in (*floor_results, *app_results, *unguarded_results)
                    ),
                    "guard_off_rps": round(unguarded_rps, 1) if unguarded_rps else None,
                    "guard_overhead": round(1 - target.rps / unguarded_rps, 3)
                    if unguarded_rps
                    else None,
                    "target_ratio": 0.5,
                    "target_p99_ms": 50,
                }
            )
        )


if __name__ == "__main__":
    main()
