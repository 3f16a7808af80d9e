"""What the request checks at the edge of the app cost on the hot path.

Two measurements, in-process, interleaved (the order alternates each round), median of the
rounds, with the load average:

- the rights check's JSON body parsed by ``json.loads`` and by the strict parser that
  refuses duplicate keys (``formats/strict_json.py``), per body;
- one request through ``RequestLimitsMiddleware`` (header sizes, body size, security
  headers, HSTS) in front of a bare ASGI app, against the bare app alone, per request,
  with the headers a provider's software sends.

Usage: PYTHONPATH=src python bench/bench_request_checks.py [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from tierspayant.api.middleware import RequestLimitsMiddleware
from tierspayant.formats import strict_json

BODY = json.dumps(
    {
        "card": {
            "amc_number": "12345678",
            "nir": "185057512345678",
            "birth_rank": 1,
            "birth_date": "1985-05-12",
            "member_number": "MGN1234567",
        },
        "care_date": "2026-03-16",
        "domains": ["PHAR", "MED"],
        "card_proof": None,
    }
).encode()
HEADERS = [
    (b"host", b"127.0.0.1:8000"),
    (b"user-agent", b"logiciel-officine/4.2"),
    (b"accept", b"application/json"),
    (b"accept-encoding", b"gzip"),
    (b"connection", b"keep-alive"),
    (b"authorization", b"Bearer tpat_" + b"x" * 43),
    (b"content-type", b"application/json"),
    (b"content-length", str(len(BODY)).encode()),
]


async def _bare(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def _per_call(run: Callable[[int], None], calls: int) -> float:
    start = time.perf_counter()
    run(calls)
    return (time.perf_counter() - start) / calls * 1e6


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=41)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    scope = {"type": "http", "scheme": "https", "path": "/v1/eligibility", "headers": HEADERS}
    limited = RequestLimitsMiddleware(
        _bare, max_body_bytes=256 * 1024, max_header_bytes=8 * 1024, max_headers_bytes=16 * 1024
    )
    loop = asyncio.new_event_loop()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(_message: Any) -> None:
        return None

    def requests(app: Any) -> Callable[[int], None]:
        async def many(n: int) -> None:
            for _ in range(n):
                await app(scope, receive, send)

        return lambda n: loop.run_until_complete(many(n))

    def parses(parse: Callable[[bytes], Any]) -> Callable[[int], None]:
        def many(n: int) -> None:
            for _ in range(n):
                parse(BODY)

        return many

    cases = {
        "json_loads": parses(json.loads),
        "strict_json_loads": parses(strict_json.loads),
        "bare_app": requests(_bare),
        "with_request_limits": requests(limited),
    }
    load_before = os.getloadavg()
    times: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for round_no in range(args.rounds):
        order = names if round_no % 2 == 0 else names[::-1]
        for name in order:
            times[name].append(_per_call(cases[name], args.calls))
    load_after = os.getloadavg()
    medians = {name: statistics.median(values) for name, values in times.items()}
    strict_extra = medians["strict_json_loads"] - medians["json_loads"]
    for name, value in medians.items():
        print(
            json.dumps({"benchmark": "request_checks", "case": name, "median_us": round(value, 2)})
        )
    print(
        json.dumps(
            {
                "benchmark": "request_checks",
                "strict_parse_extra_us": round(strict_extra, 2),
                "middleware_us": round(medians["with_request_limits"] - medians["bare_app"], 2),
                "loadavg_before": [round(x, 2) for x in load_before],
                "loadavg_after": [round(x, 2) for x in load_after],
            }
        )
    )
    loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
