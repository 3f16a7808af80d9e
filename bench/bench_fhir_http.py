"""FHIR rights check vs the /v1 rights check, same server, same cards, interleaved rounds.

One platform server (auth, guard and audit on, as in ``bench_eligibility_http.py``); each
round measures ``POST /v1/eligibility`` then ``POST /fhir/CoverageEligibilityRequest``
with the same cards, so load on the machine weighs on both alike. The figure is the
median of the per-round ratios FHIR/v1 (target ≥ 0.8) and each p99 against the same
bound as /v1 (50 ms).

Usage: python bench/bench_fhir_http.py [--beneficiaries N] [--requests N] [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench.bench_eligibility_http import (
    ROOT,
    database,
    environment,
    free_port,
    prepare,
    serve,
)
from bench.loadgen import build_request, run_load
from tierspayant.formats.fhir import systems

TARGET_RATIO = 0.8
TARGET_P99_MS = 50


def fhir_body(body: dict[str, Any]) -> dict[str, Any]:
    card = body["card"]
    return {
        "resourceType": "CoverageEligibilityRequest",
        "status": "active",
        "purpose": ["benefits"],
        "contained": [
            {
                "resourceType": "Patient",
                "id": "p",
                "identifier": [
                    {
                        "system": systems.NIR_CARD,
                        "value": card["nir"],
                        "extension": [
                            {"url": systems.BIRTH_RANK, "valuePositiveInt": card["birth_rank"]}
                        ],
                    }
                ],
                "birthDate": card["birth_date"],
            }
        ],
        "patient": {"reference": "#p"},
        "created": body["care_date"],
        "servicedDate": body["care_date"],
        "insurer": {"identifier": {"system": systems.AMC_NUMBER, "value": card["amc_number"]}},
        "item": [
            {"category": {"coding": [{"system": systems.CARE_DOMAIN, "code": d}]}}
            for d in body["domains"]
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--beneficiaries", type=int, default=30_000)
    parser.add_argument("--requests", type=int, default=3_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--engine", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, database(args.engine) as extra:
        data_dir = Path(tmp)
        token, bodies = prepare(data_dir, args.beneficiaries, extra)
        env = environment(data_dir, extra)
        # The server runs this tree's source, whatever package the virtualenv installed.
        env["PYTHONPATH"] = os.pathsep.join((str(ROOT / "src"), str(ROOT)))
        port = free_port()
        server = serve("platform", port, env)
        auth = {"Authorization": f"Bearer {token}"}
        v1 = [
            build_request(
                "POST", "/v1/eligibility", json.dumps(b).encode(),
                {**auth, "Content-Type": "application/json"},
            )
            for b in bodies
        ]  # fmt: skip
        fhir = [
            build_request(
                "POST", "/fhir/CoverageEligibilityRequest", json.dumps(fhir_body(b)).encode(),
                {**auth, "Content-Type": "application/fhir+json"},
            )
            for b in bodies
        ]  # fmt: skip
        ratios: list[float] = []
        rows: list[dict[str, Any]] = []
        try:
            run_load(port, lambda i: v1[i % len(v1)], requests=500, seconds=10)  # warm-up
            run_load(port, lambda i: fhir[i % len(fhir)], requests=500, seconds=10)
            for index in range(args.rounds):
                a = run_load(port, lambda i: v1[i % len(v1)], connections=8,
                             requests=args.requests, seconds=30)  # fmt: skip
                b = run_load(port, lambda i: fhir[i % len(fhir)], connections=8,
                             requests=args.requests, seconds=30)  # fmt: skip
                ratio = b.rps / a.rps if a.rps else 0.0
                ratios.append(ratio)
                row = {
                    "bench": "fhir_http",
                    "round": index,
                    "v1_rps": round(a.rps, 1),
                    "fhir_rps": round(b.rps, 1),
                    "ratio": round(ratio, 3),
                    "v1_p99_ms": round(a.percentile(99), 2),
                    "fhir_p99_ms": round(b.percentile(99), 2),
                    "statuses": {"v1": a.statuses, "fhir": b.statuses},
                }
                rows.append(row)
                print(json.dumps(row))
        finally:
            server.terminate()
            server.wait(timeout=10)
        print(
            json.dumps(
                {
                    "bench": "fhir_http",
                    "summary": True,
                    "engine": args.engine,
                    "median_ratio": round(statistics.median(ratios), 3),
                    "v1_rps_median": statistics.median(r["v1_rps"] for r in rows),
                    "fhir_rps_median": statistics.median(r["fhir_rps"] for r in rows),
                    "v1_p99_ms_max": max(r["v1_p99_ms"] for r in rows),
                    "fhir_p99_ms_max": max(r["fhir_p99_ms"] for r in rows),
                    "valid": all(
                        set(r["statuses"]["v1"]) == {200} and set(r["statuses"]["fhir"]) == {200}
                        for r in rows
                    ),
                    "load_average": [round(x, 2) for x in os.getloadavg()],
                    "target_ratio": TARGET_RATIO,
                    "target_p99_ms": TARGET_P99_MS,
                }
            )
        )


if __name__ == "__main__":
    main()
