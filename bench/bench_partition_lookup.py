"""The rights check's read on PostgreSQL: a beneficiary found by (insurer_id, blind index)
in a table hash-partitioned by insurer (migration 0018) against the same rows in a plain
table, in the same database.

Both tables get the same rows (insurers of very different sizes), the same key and the
same unique index; each round times the same random lookups (hits and misses) on each
table, in alternating order, through the raw driver with a prepared statement. Prints one
JSON line per round and a summary: the median of the per-round ratios partitioned/plain
(1.0 = no cost), with the load average.

    PYTHONPATH=src python -m bench.bench_partition_lookup --rows 400000 --rounds 7
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import time
import uuid

import psycopg

SERVER = os.environ.get("TIERSPAYANT_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/")
PARTITIONS = 16


def _sizes(rows: int, insurers: int) -> list[int]:
    """A few big insurers and a long tail (weights 1/rank)."""
    weights = [1 / (rank + 1) for rank in range(insurers)]
    total = sum(weights)
    return [max(1, int(rows * w / total)) for w in weights]


def _nir(insurer: int, n: int) -> bytes:
    return hashlib.blake2b(f"{insurer}:{n}".encode(), digest_size=16).digest()


def _load(conn: psycopg.Connection, sizes: list[int]) -> None:
    columns = "insurer_id int NOT NULL, id bigint NOT NULL, idx_nir bytea NOT NULL, body bytea"
    conn.execute(
        f"CREATE TABLE b_plain ({columns}, PRIMARY KEY (insurer_id, id),"
        " UNIQUE (insurer_id, idx_nir))"
    )
    conn.execute(
        f"CREATE TABLE b_part ({columns}, PRIMARY KEY (insurer_id, id),"
        " UNIQUE (insurer_id, idx_nir)) PARTITION BY HASH (insurer_id)"
    )
    for r in range(PARTITIONS):
        conn.execute(
            f"CREATE TABLE b_part_p{r:02d} PARTITION OF b_part"
            f" FOR VALUES WITH (MODULUS {PARTITIONS}, REMAINDER {r})"
        )
    body = os.urandom(300)
    for table in ("b_plain", "b_part"):
        with conn.cursor() as cur, cur.copy(f"COPY {table} FROM STDIN") as copy:
            for insurer, size in enumerate(sizes, start=1):
                for n in range(size):
                    copy.write_row((insurer, n, _nir(insurer, n), body))
    conn.execute("ANALYZE b_plain")
    conn.execute("ANALYZE b_part")


def _time(
    conn: psycopg.Connection, table: str, probes: list[tuple[int, bytes]], expected: int
) -> float:
    query = f"SELECT id, body FROM {table} WHERE insurer_id = %s AND idx_nir = %s"
    found = 0
    with conn.cursor() as cur:
        start = time.perf_counter()
        for probe in probes:
            cur.execute(query, probe, prepare=True)
            found += cur.fetchone() is not None
        elapsed = time.perf_counter() - start
    if found != expected:
        raise SystemExit(f"{table}: found {found} of {expected} hits")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--insurers", type=int, default=84)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--lookups", type=int, default=5000)
    args = parser.parse_args()
    name = f"tp_part_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(SERVER + "postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        with psycopg.connect(SERVER + name, autocommit=True) as conn:
            sizes = _sizes(args.rows, args.insurers)
            _load(conn, sizes)
            rng = random.Random(16)
            ratios = []
            for round_no in range(args.rounds):
                probes = []
                hits = 0
                for _ in range(args.lookups):
                    insurer = rng.randrange(1, args.insurers + 1)
                    if rng.random() < 0.1:  # a share of misses: a blind index nobody has
                        probes.append((insurer, os.urandom(16)))
                    else:
                        hits += 1
                        probes.append((insurer, _nir(insurer, rng.randrange(sizes[insurer - 1]))))
                order = ("b_plain", "b_part") if round_no % 2 == 0 else ("b_part", "b_plain")
                timings = {table: _time(conn, table, probes, hits) for table in order}
                ratio = timings["b_part"] / timings["b_plain"]
                ratios.append(ratio)
                print(
                    json.dumps(
                        {
                            "round": round_no,
                            "plain_us_per_lookup": round(timings["b_plain"] / len(probes) * 1e6, 1),
                            "partitioned_us_per_lookup": round(
                                timings["b_part"] / len(probes) * 1e6, 1
                            ),
                            "ratio_partitioned_to_plain": round(ratio, 3),
                            "loadavg": os.getloadavg(),
                        }
                    ),
                    flush=True,
                )
            print(
                json.dumps(
                    {
                        "summary": "rights-check lookup, partitioned / plain",
                        "rows": sum(sizes),
                        "insurers": args.insurers,
                        "median_ratio": round(statistics.median(ratios), 3),
                        "loadavg": os.getloadavg(),
                    }
                )
            )
    finally:
        with psycopg.connect(SERVER + "postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
