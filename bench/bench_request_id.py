"""Cost per request of the request id middleware, in-process.

Runs the same ASGI request through a minimal app, once bare and once wrapped in
:class:`RequestIdMiddleware` (which reads the header, binds the log context, adds the
response header and writes its JSON log line, here to ``/dev/null``), in interleaved
rounds, and prints the median per-request time of each and their difference.

    PYTHONPATH=src python -m bench.bench_request_id [--rounds 41] [--requests 2000] [--quiet]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import time
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from tierspayant.api.request_id import RequestIdMiddleware
from tierspayant.app.observability import configure_logging


async def _bare(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(_message: Any) -> None:
    return None


def _scope(request_id: bytes | None) -> dict[str, Any]:
    headers = [(b"host", b"testserver"), (b"content-type", b"application/json")]
    if request_id is not None:
        headers.append((b"x-request-id", request_id))
    return {"type": "http", "method": "POST", "path": "/v1/eligibility", "headers": headers}


async def _per_request(app: ASGIApp, scope: dict[str, Any], requests: int) -> float:
    started = time.perf_counter()
    for _ in range(requests):
        await app(scope, _receive, _send)
    return (time.perf_counter() - started) / requests


async def _measure(rounds: int, requests: int) -> dict[str, float]:
    wrapped = RequestIdMiddleware(_bare)
    given = _scope(b"0f3c9a61-7e1b-4c55-9a8e-2d4b6a1c0e77")
    made = _scope(None)
    times: dict[str, list[float]] = {"bare": [], "given id": [], "new id": []}
    for _ in range(rounds):
        times["bare"].append(await _per_request(_bare, given, requests))
        times["given id"].append(await _per_request(wrapped, given, requests))
        times["new id"].append(await _per_request(wrapped, made, requests))
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=41)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument(
        "--quiet", action="store_true", help="drop info lines (the id without its log line)"
    )
    args = parser.parse_args()
    with open("/dev/null", "w", encoding="utf-8") as sink:
        configure_logging(sink, logging.WARNING if args.quiet else logging.INFO)
        medians = asyncio.run(_measure(args.rounds, args.requests))
    bare = medians["bare"]
    for name, value in medians.items():
        extra = "" if name == "bare" else f"  (+{(value - bare) * 1e6:.1f} µs)"
        print(f"{name:>9}: {value * 1e6:8.1f} µs per request{extra}")


if __name__ == "__main__":
    main()
