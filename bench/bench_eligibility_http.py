"""Rights check over HTTP (auth, guard, card checks, encryption, audit on) against a bare
Starlette POST route, same run, load from wrk.

Four servers under the same uvicorn settings (and the same number of worker processes):
the bare Starlette route (the baseline: ``POST /v1/eligibility`` with the same bodies and
the same ``Authorization`` header, read in full and answered with a fixed document), a
FastAPI route with the rights check's models and a bearer check but no work (the
framework's floor), the I/O floor (``bench/io_floor.py``: only the index read, the
guard's counters and a chained audit row committed per answer, on the same database and
Redis; the ratio no implementation of the check on this stack can pass), and the
platform. Each round loads the four in a shuffled order
(interleaved rounds: load on the machine weighs on all alike); the figure is the median
of the per-round ratios platform / bare. A share of the cards (``--miss-percent``) names
nobody: their answers must be the same "nothing covered" as for anyone unknown. Every
answer's status and text are checked by wrk's script, and a sample of hits and misses is
checked for content from Python after each round (hits covered, misses not).

Usage: python bench/bench_eligibility_http.py [--beneficiaries N] [--seconds S] [--rounds N]
       [--engine sqlite|postgres] [--workers N] [--miss-percent P]
Prints one JSON line per measured round and a summary line with the ratio and the load.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

from sqlalchemy import create_engine, text

from bench.loadgen import wait_for_port
from bench.wrk import WrkResult, WrkScript
from tierspayant.app.platform import initialise
from tierspayant.config import load_settings
from tierspayant.demo.builder import DEMO_INSURERS, build_demo
from tierspayant.demo.synthetic import synthetic_nirs
from tierspayant.services import providers

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_SERVER = os.environ.get(
    "TIERSPAYANT_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/"
)
REDIS_URL = os.environ.get("TIERSPAYANT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
BIG = 10**9
# The guard stays on (its cost is what we measure) with thresholds no run can reach:
# a benchmark is one client making thousands of distinct lookups without card proof,
# a fifth of them misses (a window of 30 lookups drawn at random can hold more than the
# soft share of misses, so the miss rule's shares are set at their maximum).
GUARD_OFF_LIMITS = json.dumps(
    {
        "miss_soft_percent": 100,
        "miss_hard_percent": 100,
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
            end = row["coverage_end"]
            if end and date.fromisoformat(end) < date.today():
                continue  # coverage ended: not a hit
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
    # The server's logs are written as in production, to a file, apart from the figures.
    log = Path(env.get("TIERSPAYANT_DATA_DIR", tempfile.gettempdir())) / f"serve-{kind}-{port}.log"
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "serve.py"), kind, str(port), str(workers)],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    wait_for_port(port, timeout=300)  # two workers on a loaded machine start slowly (97 s seen)
    return process


def misses(
    hits: list[dict[str, object]], share_percent: int, seed: int = 97
) -> list[dict[str, object]]:
    """Cards of nobody: valid NIRs of the hits' birth dates and sexes, drawn with another
    seed (so not in the base), with the same AMC number, rank and birth date."""
    count = len(hits) * share_percent // max(1, 100 - share_percent)
    known = {str(h["card"]["nir"]) for h in hits}  # type: ignore[index]
    people = []
    for hit in hits[:count]:
        card = hit["card"]
        nir = str(card["nir"])  # type: ignore[index]
        people.append(("M" if nir[0] == "1" else "F", date.fromisoformat(str(card["birth_date"]))))  # type: ignore[index]
    out = []
    for hit, nir in zip(hits[:count], synthetic_nirs(seed, people), strict=True):
        if nir in known:
            continue
        out.append({**hit, "card": {**hit["card"], "nir": nir}})  # type: ignore[dict-item]
    return out


def _post(port: int, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, body=body, headers=headers)
        answer = conn.getresponse()
        return answer.status, answer.read()
    finally:
        conn.close()


def check_content(
    port: int,
    headers: dict[str, str],
    hits: list[dict[str, object]],
    missing: list[dict[str, object]],
    sample: int = 20,
) -> dict[str, int]:
    """Hits must come back with a covered domain, misses with none (and the same keys)."""
    wrong = {"hits_checked": 0, "misses_checked": 0, "wrong": 0}
    rng = random.Random(port)
    for kind, bodies in (("hits", hits), ("misses", missing)):
        for body in rng.sample(bodies, min(sample, len(bodies))):
            status, raw = _post(port, "/v1/eligibility", json.dumps(body).encode(), headers)
            wrong[f"{kind}_checked"] += 1
            if status != 200:
                wrong["wrong"] += 1
                continue
            rights = json.loads(raw)["rights"]
            covered = any(r["covered"] for r in rights)
            if covered != (kind == "hits") or len(rights) != len(body["domains"]):  # type: ignore[arg-type]
                wrong["wrong"] += 1
                print(f"wrong answer for a {kind[:-1]}: {raw[:300]!r}", file=sys.stderr)
    return wrong


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--beneficiaries", type=int, default=30_000)
    parser.add_argument("--seconds", type=int, default=10, help="per target and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--miss-percent", type=int, default=20)
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
        token, hits = prepare(data_dir, args.beneficiaries, extra)
        missing = misses(hits, args.miss_percent)
        bodies = hits + missing
        random.Random(5).shuffle(bodies)
        env = environment(data_dir, extra)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        encoded = [json.dumps(b).encode() for b in bodies]
        script = WrkScript("/v1/eligibility", encoded, headers, needle='"rights"')
        ports = {
            "bare_starlette": free_port(),
            "fastapi_floor": free_port(),
            "io_floor": free_port(),
            "rights_check": free_port(),
        }
        kinds = {
            "bare_starlette": "bare",
            "fastapi_floor": "floor",
            "io_floor": "io_floor",
            "rights_check": "platform",
        }
        servers: dict[str, subprocess.Popen[bytes]] = {}
        results: dict[str, list[WrkResult]] = {label: [] for label in ports}
        checks: list[dict[str, int]] = []
        ratios: list[float] = []
        floor_ratios: list[float] = []
        io_ratios: list[float] = []
        try:  # servers started inside: one that fails to start leaves none behind
            for label, port in ports.items():
                servers[label] = serve(kinds[label], port, env, args.workers)
            for port in ports.values():  # warm-up, not counted
                script.run(port, seconds=2, connections=args.connections)
            order = list(ports)
            rng = random.Random(3)
            for index in range(args.rounds):
                rng.shuffle(order)
                for label in order:
                    result = script.run(ports[label], args.seconds, connections=args.connections)
                    results[label].append(result)
                    print(
                        json.dumps(
                            {
                                "bench": "eligibility_http",
                                "engine": args.engine,
                                "target": label,
                                "round": index,
                                **result.summary(),
                                "load": loadavg(),
                            }
                        ),
                        flush=True,
                    )
                checks.append(check_content(ports["rights_check"], headers, hits, missing))
                bare = results["bare_starlette"][-1].rps
                ratios.append(results["rights_check"][-1].rps / bare)
                floor_ratios.append(results["fastapi_floor"][-1].rps / bare)
                io_ratios.append(results["io_floor"][-1].rps / bare)
        finally:
            for process in servers.values():
                process.terminate()
                process.wait(timeout=10)
            script.close()

        def med(label: str, attr: str) -> float:
            return round(float(statistics.median(getattr(r, attr) for r in results[label])), 2)

        print(
            json.dumps(
                {
                    "bench": "eligibility_http",
                    "summary": True,
                    "engine": args.engine,
                    "workers": args.workers,
                    "connections": args.connections,
                    "rounds": args.rounds,
                    "miss_share": round(len(missing) / len(bodies), 3),
                    "ratio": round(statistics.median(ratios), 3),
                    "ratios": [round(r, 3) for r in ratios],
                    "fastapi_floor_ratio": round(statistics.median(floor_ratios), 3),
                    # The I/O floor: the index read, the guard's counters and a chained
                    # audit row committed per answer, nothing else.
                    "io_floor_ratio": round(statistics.median(io_ratios), 3),
                    "io_floor_ratios": [round(r, 3) for r in io_ratios],
                    # How much of that floor the platform reaches (same rounds).
                    "share_of_io_floor": round(
                        statistics.median(r / f for r, f in zip(ratios, io_ratios, strict=True)),
                        3,
                    ),
                    "bare_rps": med("bare_starlette", "rps"),
                    "fastapi_floor_rps": med("fastapi_floor", "rps"),
                    "io_floor_rps": med("io_floor", "rps"),
                    "io_floor_p99_ms": med("io_floor", "p99_ms"),
                    "rights_check_rps": med("rights_check", "rps"),
                    "rights_check_p50_ms": med("rights_check", "p50_ms"),
                    "rights_check_p99_ms": med("rights_check", "p99_ms"),
                    "bare_p99_ms": med("bare_starlette", "p99_ms"),
                    # Every answer checked by wrk's script and a sample checked for content.
                    "valid": all(r.valid for rs in results.values() for r in rs)
                    and all(c["wrong"] == 0 for c in checks),
                    "content_checked": sum(c["hits_checked"] + c["misses_checked"] for c in checks),
                    "content_wrong": sum(c["wrong"] for c in checks),
                    "target_ratio": 0.25 if args.engine == "sqlite" else 0.15,
                    "target_p99_ms": 20,
                    "load": loadavg(),
                }
            )
        )


if __name__ == "__main__":
    main()
