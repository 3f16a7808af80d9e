"""Where the rights check and the calculation run: off the event loop, in a few threads.

Each check is a couple of short SQL reads around some Python, then a wait for its audit
event's group commit (:mod:`tierspayant.store.audit_writer`). In the default thread pool
(40 threads), concurrent checks made as many threads that each released the GIL for
every statement and waited to get it back, and throughput fell under that contention
(``bench/bench_eligibility_http.py``). A *lane* is a capacity limiter: enough threads for
the writer to batch the events of concurrent checks, few enough not to fight over the
GIL. Eight measured best on SQLite (two to eight tried) and is kept for PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

import anyio.to_thread
from anyio import CapacityLimiter

from tierspayant.services.platform import Platform

P = ParamSpec("P")
T = TypeVar("T")

_LANES: dict[int, CapacityLimiter] = {}


LANE_SIZE = 8


async def in_lane(platform: Platform, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``fn`` in this platform's lookup lane and return its result."""
    limiter = _LANES.get(id(platform))
    if limiter is None:
        limiter = _LANES.setdefault(id(platform), CapacityLimiter(LANE_SIZE))
    return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs), limiter=limiter)
