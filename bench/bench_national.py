"""The national runs (issue 16): import the national data set into PostgreSQL, then
measure the rights check on it against a bare Starlette POST route, with wrk.

Usage:
    python bench/bench_national.py --data DIR [--people N] [--database NAME]
        [--stages generate,import,check] [--import-processes 1] [--workers 2]
        [--seconds 10] [--rounds 5] [--keep]

Stages (each can run on its own, in a later session too: the database is named and kept
with ``--keep``, the files stay in ``DIR``):

- **generate**: ``bench/national.py generate`` into ``DIR`` unless its manifest already has
  ``--people`` people;
- **import**: a fresh PostgreSQL database ``NAME``, the platform's schema and keyring
  (kept in ``DIR/platform``), the 84 insurers with their catalogues, then every insurer's
  file through ``services.enrolment.import_beneficiaries`` (full mode), largest first,
  ``--import-processes`` insurers at a time (each import also has its own preparation
  workers). Prints the wall time, people per second, peak memory (this process, and the
  largest of the import processes) and the database's size per million people;
- **check**: the providers' registry, one pharmacy with conventions with every insurer
  and a software client, then the rights check served by ``--workers`` processes over
  PostgreSQL + Redis, loaded by wrk with the day's cards (hits and misses as drawn)
  in interleaved rounds against the bare POST route (``bench/bench_eligibility_http.py``
  has the method). The same stage on a data set of 100,000 people gives the comparison
  of issue 16, point 4.

Every line is JSON, with the load average.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import create_engine, text

from bench.bench_eligibility_http import (
    REDIS_URL,
    check_content,
    environment,
    free_port,
    serve,
)
from bench.wrk import WrkResult, WrkScript
from tierspayant.app.platform import Platform, initialise
from tierspayant.config import load_settings
from tierspayant.domain.errors import DomainError
from tierspayant.services import enrolment, insurers, providers

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_SERVER = os.environ.get(
    "TIERSPAYANT_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/"
)
ACTOR = "operator:bench"
GENERATOR = [sys.executable, str(ROOT / "bench" / "national.py"), "generate"]
SAMPLE = 20_000  # cards loaded into wrk's script


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def emit(record: dict[str, Any]) -> None:
    print(json.dumps({"bench": "national", **record, "load": loadavg()}), flush=True)


def database_url(name: str) -> str:
    return POSTGRES_SERVER.rstrip("/") + f"/{name}"


def admin(sql: str) -> None:
    engine = create_engine(database_url("postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


def settings_env(data: Path, name: str) -> dict[str, str]:
    return {
        "TIERSPAYANT_DATA_DIR": str(data / "platform"),
        "TIERSPAYANT_DATABASE_URL": database_url(name),
        "TIERSPAYANT_REDIS_URL": REDIS_URL,
    }


def stage_generate(data: Path, people: int) -> None:
    manifest = data / "manifest.json"
    if manifest.exists() and json.loads(manifest.read_text("utf-8"))["people"] == people:
        emit({"stage": "generate", "skipped": "already generated", "people": people})
        return
    subprocess.run(
        [*GENERATOR, "--out", str(data), "--people", str(people)],
        check=True,
        env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'src'}"},
    )


def _plans(data: Path) -> list[dict[str, Any]]:
    plans: list[dict[str, Any]] = json.loads((data / "manifest.json").read_text("utf-8"))["plan"]
    return plans


def _import_one(data: Path, name: str, plan: dict[str, Any]) -> dict[str, Any]:
    """Import one insurer's file (full mode), in a process of the import pool."""
    platform = _pool_platform(data, name)
    t0 = time.perf_counter()
    result = enrolment.import_beneficiaries(
        platform,
        plan["amc_number"],
        data / f"beneficiaries_{plan['amc_number']}.csv",
        mode="full",
        file_date=platform.today(),
        actor=ACTOR,
    )
    seconds = time.perf_counter() - t0
    return {
        "stage": "import_insurer",
        "amc_number": plan["amc_number"],
        "people": result.inserted,
        "rejected": result.rejected,
        "seconds": round(seconds, 1),
        "people_per_s": round(result.inserted / seconds) if seconds else None,
        "pid": os.getpid(),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


_PLATFORM: dict[tuple[Path, str], Platform] = {}


def _pool_platform(data: Path, name: str) -> Platform:
    """One platform per process of the import pool, opened on its first insurer."""
    if (data, name) not in _PLATFORM:
        _PLATFORM[data, name] = initialise(load_settings(settings_env(data, name)))
    return _PLATFORM[data, name]


def stage_import(data: Path, name: str, processes: int) -> None:
    """Every insurer's file, largest first, by ``processes`` import processes at once
    (each import is one insurer's transaction; two insurers never wait on each other)."""
    admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin(f'CREATE DATABASE "{name}"')
    platform = initialise(load_settings(settings_env(data, name)))
    try:
        plans = sorted(_plans(data), key=lambda p: -int(p["people"]))
        for plan in plans:
            insurers.add_insurer(platform, plan["amc_number"], plan["name"], plan["kind"], ACTOR)
            document = yaml.safe_load(
                (data / f"catalogue_{plan['amc_number']}.yaml").read_text("utf-8")
            )
            insurers.upload_catalogue(platform, plan["amc_number"], document, ACTOR)
        started = time.perf_counter()
        done = rejected = 0
        pool_rss = 0
        context = multiprocessing.get_context("spawn")  # no inherited connections
        with ProcessPoolExecutor(max(processes, 1), mp_context=context) as pool:
            futures = [pool.submit(_import_one, data, name, plan) for plan in plans]
            for future in as_completed(futures):
                record = future.result()
                done += record["people"]
                rejected += record["rejected"]
                pool_rss = max(pool_rss, record["peak_rss_mb"])
                emit(record)
        wall = time.perf_counter() - started
        with platform.engine.connect() as conn:
            size = int(
                conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
            )
        emit(
            {
                "stage": "import",
                "summary": True,
                "people": done,
                "rejected": rejected,
                "wall_seconds": round(wall, 1),
                "people_per_s": round(done / wall),
                "target_wall_seconds": 15 * 60,
                "database_bytes": size,
                "bytes_per_million_people": round(size / max(1, done) * 1_000_000),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                "import_process_peak_rss_mb": pool_rss,
                "import_processes": processes,
            }
        )
    finally:
        platform.close()


def _client(platform: Platform, data: Path) -> tuple[str, str]:
    """The providers' registry, one pharmacy with conventions everywhere, its client."""
    with (data / "providers.csv").open(encoding="utf-8") as handle:
        next(handle)
        pharmacy = next(line.split(";")[0] for line in handle if ";pharmacy;" in line)
    try:
        providers.get_provider(platform, pharmacy)
    except DomainError:  # first check stage on this database: the registry, the conventions
        providers.import_providers(platform, data / "providers.csv", ACTOR)
        for plan in _plans(data):
            providers.add_conventions(
                platform, pharmacy, plan["amc_number"], None, date(2024, 1, 1), ACTOR
            )
    creds = providers.issue_client(platform, pharmacy, "national bench", ACTOR)
    return creds.client_id, creds.client_secret


def stage_check(data: Path, name: str, args: argparse.Namespace) -> None:
    env_settings = settings_env(data, name)
    platform = initialise(load_settings(env_settings))
    try:
        client_id, secret = _client(platform, data)
        token = providers.grant_client_token(platform, client_id, secret).access_token
    finally:
        platform.close()
    rng = random.Random(11)
    lines: list[str] = []
    with (data / "rights_checks.jsonl").open(encoding="utf-8") as handle:
        for seen, line in enumerate(handle):  # a uniform (reservoir) sample of the day
            if seen < SAMPLE:
                lines.append(line)
            elif (index := rng.randrange(seen + 1)) < SAMPLE:
                lines[index] = line
    records = [json.loads(x) for x in lines]
    hits = [r["body"] for r in records if not r["miss"]]
    misses = [r["body"] for r in records if r["miss"]]
    bodies = [json.dumps(r["body"]).encode() for r in records]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    env = environment(data / "platform", env_settings)
    script = WrkScript("/v1/eligibility", bodies, headers, needle='"rights"')
    ports = {"bare_starlette": free_port(), "rights_check": free_port()}
    kinds = {"bare_starlette": "bare", "rights_check": "platform"}
    servers: dict[str, subprocess.Popen[bytes]] = {}
    results: dict[str, list[WrkResult]] = {k: [] for k in ports}
    ratios, wrong = [], 0
    try:  # servers started inside: one that fails to start leaves none behind
        for label, port in ports.items():
            servers[label] = serve(kinds[label], port, env, args.workers)
        for port in ports.values():
            script.run(port, seconds=2)
        order = list(ports)
        for index in range(args.rounds):
            rng.shuffle(order)
            for label in order:
                result = script.run(ports[label], args.seconds)
                results[label].append(result)
                emit({"stage": "check", "target": label, "round": index, **result.summary()})
            wrong += check_content(ports["rights_check"], headers, hits, misses)["wrong"]
            ratios.append(results["rights_check"][-1].rps / results["bare_starlette"][-1].rps)
    finally:
        for process in servers.values():
            process.terminate()
            process.wait(timeout=10)
        script.close()
    people = json.loads((data / "manifest.json").read_text("utf-8"))["people"]
    target = results["rights_check"]
    emit(
        {
            "stage": "check",
            "summary": True,
            "people": people,
            "workers": args.workers,
            "ratio": round(statistics.median(ratios), 3),
            "ratios": [round(r, 3) for r in ratios],
            "rps": round(statistics.median(r.rps for r in target), 1),
            "p50_ms": round(statistics.median(r.p50_ms for r in target), 2),
            "p99_ms": round(statistics.median(r.p99_ms for r in target), 2),
            "miss_share": round(len(misses) / max(1, len(records)), 3),
            "valid": wrong == 0 and all(r.valid for rs in results.values() for r in rs),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--people", type=int, default=20_000_000)
    parser.add_argument("--database", default=None, help="default: bench_national_<people>")
    parser.add_argument("--stages", default="generate,import,check")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--import-processes", type=int, default=1, help="insurers imported at once (import stage)"
    )
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    name = args.database or f"bench_national_{args.people}"
    stages = args.stages.split(",")
    args.data.mkdir(parents=True, exist_ok=True)
    try:
        if "generate" in stages:
            stage_generate(args.data, args.people)
        if "import" in stages:
            stage_import(args.data, name, args.import_processes)
        if "check" in stages:
            stage_check(args.data, name, args)
    finally:
        if not args.keep:
            admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
