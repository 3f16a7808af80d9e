"""Cost per request of the request metrics middleware, in-process.

Runs the same ASGI request through a minimal app that selects a route as the router
does (``scope["route"]``), once bare and once wrapped in :class:`RequestMetricsMiddleware`
(one counter and one histogram, labelled by method, route template and status class), in
interleaved rounds, and prints the median per-request time of each, their difference and
the load average before and after. Run it once as is (in-memory values) and once with
``PROMETHEUS_MULTIPROC_DIR`` set to an empty directory (values in shared files, as with
several workers): the variable is read when prometheus-client is imported.

    PYTHONPATH=src python -m bench.bench_request_metrics [--rounds 41] [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from tierspayant import metrics
from tierspayant.api.metrics import RequestMetricsMiddleware


@dataclass(frozen=True)
class _Route:
    path: str


_ROUTE = _Route("/v1/claims/{claim_id}")


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    scope["route"] = _ROUTE
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(_message: Any) -> None:
    return None


def _scope() -> dict[str, Any]:
    headers = [(b"host", b"testserver"), (b"content-type", b"application/json")]
    return {"type": "http", "method": "GET", "path": "/v1/claims/12", "headers": headers,
            "root_path": ""}  # fmt: skip


async def _per_request(app: ASGIApp, requests: int) -> float:
    started = time.perf_counter()
    for _ in range(requests):
        await app(_scope(), _receive, _send)
    return (time.perf_counter() - started) / requests


async def _measure(rounds: int, requests: int) -> dict[str, float]:
    wrapped = RequestMetricsMiddleware(_app)
    times: dict[str, list[float]] = {"bare": [], "metrics": []}
    for _ in range(rounds):
        times["bare"].append(await _per_request(_app, requests))
        times["metrics"].append(await _per_request(wrapped, requests))
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=41)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    mode = "multiprocess files" if metrics.multiprocess_dir() else "in-memory values"
    load_before = os.getloadavg()
    medians = asyncio.run(_measure(args.rounds, args.requests))
    load_after = os.getloadavg()
    bare = medians["bare"]
    print(f"mode: {mode}; {args.rounds} rounds of {args.requests} requests")
    for name, value in medians.items():
        extra = "" if name == "bare" else f"  (+{(value - bare) * 1e6:.1f} µs)"
        print(f"{name:>8}: {value * 1e6:8.1f} µs per request{extra}")
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*load_before))
    print("load average after:  {:.2f} {:.2f} {:.2f}".format(*load_after))


if __name__ == "__main__":
    main()
