"""Group commit for the audit log: many requests' events, one transaction.

Every rights check and calculation appends one event to the hash chain. Appended one
transaction per request, the chain serialises the whole API on its lock (the SQLite
writer, or PostgreSQL's advisory lock) and every request pays a lock, a head read, an
insert and a commit. The writer instead takes whatever events are waiting, appends them
in one transaction, and only then hands each caller its event: nobody gets an answer
whose audit event is not durable, and a failed write fails every request of the batch.

The lookup itself then reads in a read-only transaction, so lookups no longer queue for
the writer at all. One writer thread per process; batches of up to ``max_batch`` events,
appended on the thread's own driver connection (:class:`~tierspayant.store.audit.DriverAppend`:
the same rows as the SQLAlchemy append, without its per-row overhead). "Committed" means
what the database's commit means: on PostgreSQL, durable; on SQLite (WAL,
``synchronous=NORMAL``, ``store/db.py``), durable across a crash of the process, while a
power loss of the machine may lose the last transactions before a checkpoint (the chain
then ends earlier; it never breaks).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import threading
import time
from concurrent.futures import Future, InvalidStateError
from typing import Any

import structlog
from sqlalchemy import Engine
from sqlalchemy.pool import PoolProxiedConnection

from tierspayant import metrics
from tierspayant.security.audit import AuditEvent
from tierspayant.store.audit import DriverAppend, Entry
from tierspayant.store.db import write_gate
from tierspayant.store.reconnect import (
    Attempt,
    Disconnected,
    driver_lost,
    once_more_if_disconnected,
)

log = structlog.get_logger(__name__)

_STOP = object()


class AuditWriterClosed(RuntimeError):
    """The writer was closed: the event was not appended."""


class AuditWriter:
    """Appends queued :class:`Entry` objects in batches from one background thread."""

    def __init__(self, engine: Engine, *, max_batch: int = 500) -> None:
        self.engine = engine
        self.max_batch = max_batch
        # Items: one (entry, future), a list of them (a loop iteration's), or _STOP.
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._pending: list[tuple[Entry, Future[AuditEvent]]] = []
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._closed = False
        # The writer thread's own connection to the database, and the append on it.
        self._raw: PoolProxiedConnection | None = None
        self._driver_append: DriverAppend | None = None
        self.batches = 0  # statistics, read by tests and benchmarks
        self.events = 0

    def submit(self, entry: Entry) -> Future[AuditEvent]:
        """Queue one event; the future resolves once its batch is committed."""
        entry.check()
        future: Future[AuditEvent] = Future()
        with self._lock:
            if self._closed:
                raise AuditWriterClosed("the audit writer is closed")
            self._started().put((entry, future))
        metrics.AUDIT_PENDING.inc()
        return future

    def submit_from_loop(self, entry: Entry) -> Future[AuditEvent]:
        """:meth:`submit` for a caller that awaits its event on an event loop.

        On the loop's own thread, the events submitted during one iteration of the loop
        reach the writer together when it ends: one wake-up of the writer thread, one
        batch, where each request woke the thread (a context switch while the loop held
        the interpreter) for a batch of its own. Anyone who waits for such an event
        without the loop running must call :meth:`flush` first
        (:meth:`tierspayant.services.lookup.Deferred.settle` does). Elsewhere (a worker
        thread) it is :meth:`submit`.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return self.submit(entry)
        entry.check()
        future: Future[AuditEvent] = Future()
        with self._lock:
            if self._closed:
                raise AuditWriterClosed("the audit writer is closed")
            self._pending.append((entry, future))
            first = len(self._pending) == 1
        metrics.AUDIT_PENDING.inc()
        if first:
            loop.call_soon(self.flush)
        return future

    def flush(self) -> None:
        """Hand the events :meth:`submit_from_loop` holds to the writer thread."""
        with self._lock:
            pending, self._pending = self._pending, []
            if pending:
                self._started().put(pending)

    def _started(self) -> queue.SimpleQueue[Any]:
        """The queue of a running writer thread (the caller holds ``_lock``)."""
        if self._thread is None or self._pid != os.getpid():
            # Started on first use, and again in a forked child (threads do not
            # survive a fork; the parent's queue may hold the parent's events).
            self._queue = queue.SimpleQueue()
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
            self._thread.start()
        return self._queue

    def append(self, entry: Entry, *, timeout: float = 30.0) -> AuditEvent:
        """Queue one event and wait until it is committed; re-raises the batch's error."""
        return self.submit(entry).result(timeout)

    def alive(self) -> bool:
        """Whether the writer can take events: not closed, and its thread (once started
        in this process) still running. Read by the readiness check."""
        with self._lock:
            if self._closed:
                return False
            thread = self._thread
            if thread is None or self._pid != os.getpid():
                return True  # started on the next event
            return thread.is_alive()

    def close(self, timeout: float = 10.0) -> None:
        """Append what is queued, then stop the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._pending:  # held for a loop that did not run again: append them too
                pending, self._pending = self._pending, []
                self._started().put(pending)
            thread = self._thread
            self._queue.put(_STOP)
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self._release()

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch: list[tuple[Entry, Future[AuditEvent]]] = []
            _add(batch, first)
            stop = False
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                _add(batch, item)
            self._write(batch)
            if stop:
                return

    def _write(self, batch: list[tuple[Entry, Future[AuditEvent]]]) -> None:
        # A waiter may have given up (an async request cancelled while it awaited its
        # event): its event is written all the same (the lookup did happen), and its
        # future, already cancelled, is left alone. Nothing here may stop the thread.
        started = time.perf_counter()
        metrics.AUDIT_PENDING.dec(len(batch))
        try:
            events = self._append([entry for entry, _ in batch])
        except BaseException as exc:  # noqa: BLE001 - every waiter learns of the failure
            log.error("audit.batch_failed", events=len(batch), error=type(exc).__name__)
            metrics.AUDIT_FAILED.inc(len(batch))
            for _, future in batch:
                _settle(future, error=exc)
            return
        metrics.AUDIT_BATCH_SECONDS.observe(time.perf_counter() - started)
        metrics.AUDIT_BATCH_SIZE.observe(len(events))
        self.batches += 1
        self.events += len(events)
        for (_, future), event in zip(batch, events, strict=True):
            _settle(future, event=event)

    def _append(self, entries: list[Entry]) -> list[AuditEvent]:
        """One transaction on the writer's own driver connection (kept between batches;
        dropped after a failure, so the next batch starts on a fresh one). A connection
        the database dropped meanwhile (a restart) fails the batch before its COMMIT is
        sent: the batch is then written again on a new one."""
        return once_more_if_disconnected(self.engine, lambda step: self._append_once(entries, step))

    def _append_once(self, entries: list[Entry], step: Attempt) -> list[AuditEvent]:
        if self._raw is None:
            self._raw = self.engine.raw_connection()
            self._driver_append = DriverAppend(self.engine.dialect)
        raw = self._raw
        assert self._driver_append is not None
        driver: Any = raw.driver_connection
        try:
            with write_gate(self.engine):
                try:
                    events = self._driver_append(driver, entries)
                    step.committing()
                    driver.commit()
                except BaseException:
                    if not driver_lost(driver):
                        driver.rollback()
                    raise
        except BaseException as exc:
            self._raw = None
            with contextlib.suppress(Exception):  # a broken connection: dropping it is all
                raw.invalidate()
            if isinstance(exc, Exception) and driver_lost(driver):
                raise Disconnected(str(exc)) from exc
            raise
        return events

    def _release(self) -> None:
        raw, self._raw = self._raw, None
        if raw is not None:
            raw.close()


def _add(batch: list[tuple[Entry, Future[AuditEvent]]], item: Any) -> None:
    if isinstance(item, list):
        batch.extend(item)
    else:
        batch.append(item)


def _settle(
    future: Future[AuditEvent],
    *,
    event: AuditEvent | None = None,
    error: BaseException | None = None,
) -> None:
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(event)  # type: ignore[arg-type]
    except InvalidStateError:  # cancelled by its waiter meanwhile
        pass
