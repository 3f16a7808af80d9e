"""Where the rights check and the calculation run, and how they wait for their audit.

A check is a couple of short reads and some Python, then its audit event's group commit
(:mod:`tierspayant.store.audit_writer`); the answer leaves only after that commit. Two
costs dominated once the SQL was trimmed, both measured with a sampling profiler under
``bench/bench_eligibility_http.py``: threads fighting for the GIL, and handing work from
one thread to another (each hand-off wakes a thread: in the default 40-thread pool a
third of the server's time went to it).

So the lookup (:meth:`LookupLane.run`):

- runs **on the event loop** when every part is in-process (SQLite on a local file and
  in-process guard counters): each read takes tens of microseconds, less than a hand-off;
- runs in a **lane** of eight threads otherwise (PostgreSQL, Redis), so that a network
  round trip never stalls the loop;

and then **awaits** its event's commit instead of blocking a thread on it, so many checks
wait for the same batch while the loop serves the next requests. A request cancelled
while it waits (server shutdown, say) does not cancel the lookup: its alerts are still
raised once its event is committed.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

import anyio.to_thread
import structlog
from anyio import CapacityLimiter

from tierspayant.app.platform import Platform
from tierspayant.services.lookup import Deferred

T = TypeVar("T")
log = structlog.get_logger(__name__)
LANE_SIZE = 8


def runs_inline(platform: Platform) -> bool:
    """Whether a lookup can run on the event loop: nothing it touches is remote."""
    return platform.settings.is_sqlite and platform.settings.redis_url is None


class LookupLane:
    """Runs one application's lookups (see the module's docstring)."""

    def __init__(self, platform: Platform, size: int = LANE_SIZE) -> None:
        self.platform = platform
        self.inline = runs_inline(platform)
        self._limiter = CapacityLimiter(size)
        self._wakeups: _Wakeups | None = None

    async def run(self, start: Callable[[], Deferred[T]]) -> T:
        """Start a lookup (inline or in the lane), await its audit commit, settle it."""
        if self.inline:
            deferred = start()
        else:
            deferred = await anyio.to_thread.run_sync(start, limiter=self._limiter)
        event = deferred.event
        if event is not None and not event.done():
            loop = asyncio.get_running_loop()
            wakeups = self._wakeups
            if wakeups is None or wakeups.loop is not loop:  # a test client's new loop
                wakeups = self._wakeups = _Wakeups(loop)
            try:
                # A waiter of our own: cancelling it leaves the event's future alone, whose
                # commit still decides what happens after the lookup.
                await wakeups.watch(event)
            except asyncio.CancelledError:
                # The request is gone, not the lookup: once its event is committed, its
                # alerts are raised (or the guard's hold freed) as if it had been answered.
                event.add_done_callback(lambda _done: _settle_in_background(deferred))
                raise
        return deferred.settle()


class _Wakeups:
    """Wakes the event loop once per batch of committed audit events, not once per event.

    The writer thread settles a batch's futures one after the other; the first settled
    one schedules a single call on the loop, which then releases every waiter settled by
    then (``asyncio.wrap_future`` would schedule one call, and wake the loop, per event).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._lock = threading.Lock()
        self._ready: list[asyncio.Future[None]] = []

    def watch(self, event: Future[Any]) -> asyncio.Future[None]:
        """A loop future done once ``event`` is (its outcome is read from ``event``)."""
        waiter: asyncio.Future[None] = self.loop.create_future()
        event.add_done_callback(lambda _done: self._done(waiter))
        return waiter

    def _done(self, waiter: asyncio.Future[None]) -> None:
        with self._lock:
            self._ready.append(waiter)
            first = len(self._ready) == 1
        if first:
            self.loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        with self._lock:
            ready, self._ready = self._ready, []
        for waiter in ready:
            if not waiter.done():  # a cancelled request's waiter is done already
                waiter.set_result(None)


def _settle_in_background(deferred: Deferred[T]) -> None:
    def settle() -> None:
        try:
            deferred.settle()
        except Exception as exc:  # noqa: BLE001 - nobody is left to answer; say it
            log.warning("lookup.settle_failed", error=type(exc).__name__)

    threading.Thread(target=settle, name="lookup-settle", daemon=True).start()
