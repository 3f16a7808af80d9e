"""Leases of the money runs (payment and billing) in ``money_runs``.

A run holds a lease so that two workers never run it side by side. The holder renews it
in every transaction of the run and, from a heartbeat thread, every :data:`HEARTBEAT`
seconds, each renewal pushing its end :data:`LEASE` ahead. The next worker takes over a
lease as soon as its holder is known dead: a process of this host that no longer exists
(or whose pid is the taker's own: a restarted container), or a heartbeat older than
:data:`LEASE` (a holder on another host). A live holder's lease is refused with
``run.locked``, naming the host, the process, the command and the lease's end.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import ClassVar

import structlog
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from tierspayant.app.platform import Platform
from tierspayant.domain.codes import PaymentCode
from tierspayant.services.errors import Conflict
from tierspayant.store import runs

log = structlog.get_logger(__name__)

LEASE = timedelta(seconds=60)  # a heartbeat older than this: the holder is taken for dead
HEARTBEAT = 10.0  # seconds between two renewals by the holder's heartbeat thread

_HOST_CHARS = 50
_COMMAND_CHARS = 50


def _command() -> str:
    """The command line of this process, shortened: ``tierspayant pay --date 2026-12-07``."""
    words = [os.path.basename(sys.argv[0]) if sys.argv else "python", *sys.argv[1:]]
    return " ".join(words).replace("\n", " ")[:_COMMAND_CHARS]


def lease_owner() -> str:
    """Who holds a lease: host, process, a random part (a pid can be reused) and the
    command, ``host:pid:random:command`` (at most 120 characters, the column's size)."""
    host = socket.gethostname()[:_HOST_CHARS].replace(":", "_")
    return f"{host}:{os.getpid()}:{uuid.uuid4().hex[:8]}:{_command()}"


@dataclass(frozen=True, slots=True)
class LeaseHolder:
    host: str
    pid: int | None
    command: str


def lease_holder(owner: str) -> LeaseHolder:
    """The parts of a lease owner (an owner written before the command was kept has none)."""
    host, _, rest = owner.partition(":")
    pid_text, _, rest = rest.partition(":")
    _, _, command = rest.partition(":")
    return LeaseHolder(host, int(pid_text) if pid_text.isdigit() else None, command)


def aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _holder_gone(owner: str) -> bool:
    """Whether the lease holder was a process of this host that no longer exists.

    The taker's own pid in a lease this process does not hold is a previous process with
    the same pid (a container started again): that one is gone too.
    """
    holder = lease_holder(owner)
    if holder.host != socket.gethostname()[:_HOST_CHARS].replace(":", "_") or holder.pid is None:
        return False
    if holder.pid == os.getpid():
        return not _Heartbeat.held_here(owner)
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _locked(run_key: str, run: runs.Run | None) -> Conflict:
    """``run.locked``, in French, naming who holds the run and until when."""
    if run is None or run.lock_owner is None:
        return Conflict(
            PaymentCode.RUN_LOCKED,
            f"l'exécution {run_key} est en cours sur un autre poste (verrou pris à l'instant)",
        )
    holder = lease_holder(run.lock_owner)
    until = (
        aware(run.lock_expires_at).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        if run.lock_expires_at is not None
        else "?"
    )
    command = f", commande « {holder.command} »" if holder.command else ""
    return Conflict(
        PaymentCode.RUN_LOCKED,
        f"l'exécution {run_key} est en cours : verrou tenu par l'hôte {holder.host}, "
        f"processus {holder.pid if holder.pid is not None else '?'}{command}, "
        f"jusqu'au {until} (prolongé tant que ce processus vit ; repris dès qu'il est arrêté)",
    )


def acquire_run(
    platform: Platform,
    *,
    run_key: str,
    kind: str,
    run_date: date,
    period: str | None,
    on_create: Callable[[Connection], None] | None = None,
    max_transfer_cents: int | None = None,
) -> tuple[runs.Run, str]:
    """Create the run or take over its lease; Conflict ``run.locked`` if a live worker has it.

    ``on_create`` runs in the transaction that creates the run (an override's audit
    event: recorded if and only if the run starts). ``max_transfer_cents`` is recorded
    with a new payment run (None: the EPC maximum); a run already started keeps its own.

    On PostgreSQL the run row is read ``FOR UPDATE SKIP LOCKED``: a worker that finds it
    locked by another one backs off at once instead of waiting for it. The lease is then
    renewed by a heartbeat thread until :func:`release_run`.
    """
    owner = lease_owner()
    now = platform.now()
    try:
        with platform.engine.begin() as conn:
            run = runs.find_run(conn, run_key, skip_locked=True)
            if run is None:
                if runs.run_exists(conn, run_key):
                    raise _locked(run_key, _peek(platform, run_key))
                run = runs.create_run(
                    conn,
                    run_key=run_key,
                    kind=kind,
                    run_date=run_date,
                    period=period,
                    owner=owner,
                    now=now,
                    ttl=LEASE,
                    max_transfer_cents=max_transfer_cents,
                )
                if on_create is not None:
                    on_create(conn)
            else:
                if run.lock_owner is not None and not _lease_lost(run, now):
                    raise _locked(run_key, run)
                runs.take_lease(conn, run_key, owner, now, LEASE)
    except IntegrityError:
        raise _locked(run_key, _peek(platform, run_key)) from None
    _Heartbeat(platform, run_key, owner).start()
    return run, owner


def _peek(platform: Platform, run_key: str) -> runs.Run | None:
    """The run as last committed, read without waiting for its row lock."""
    with platform.engine.connect() as conn:
        return runs.read_run(conn, run_key)


def _lease_lost(run: runs.Run, now: datetime) -> bool:
    expired = run.lock_expires_at is None or aware(run.lock_expires_at) <= now
    return expired or (run.lock_owner is not None and _holder_gone(run.lock_owner))


def renew(platform: Platform, conn: Connection, run_key: str, owner: str) -> None:
    """Extend the lease inside a unit of work; refuse the unit if another worker took it."""
    if not runs.renew_lease(conn, run_key, owner, platform.now(), LEASE):
        raise Conflict(PaymentCode.RUN_LEASE_LOST, f"another worker took over the run {run_key}")


class _Heartbeat(threading.Thread):
    """Renews a lease every :data:`HEARTBEAT` seconds until stopped or lost: a holder that
    lives keeps its run however long one unit of work takes, one that dies stops renewing."""

    _live: ClassVar[dict[tuple[str, str], _Heartbeat]] = {}
    _guard: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, platform: Platform, run_key: str, owner: str) -> None:
        super().__init__(name=f"lease {run_key}", daemon=True)
        self._platform, self._run_key, self._owner = platform, run_key, owner
        self._stop_event = threading.Event()

    def start(self) -> None:
        with self._guard:
            self._live[(self._run_key, self._owner)] = self
        super().start()

    def run(self) -> None:
        while not self._stop_event.wait(HEARTBEAT):
            try:
                with self._platform.engine.begin() as conn:
                    held = runs.renew_lease(
                        conn, self._run_key, self._owner, self._platform.now(), LEASE
                    )
            except Exception:  # noqa: BLE001 - the database is away: the run's own unit fails
                log.warning("lease.heartbeat_failed", run=self._run_key)
                continue
            if not held:
                return

    @classmethod
    def held_here(cls, owner: str) -> bool:
        """Whether this process holds (and renews) the lease of ``owner``."""
        with cls._guard:
            return any(held == owner for _, held in cls._live)

    @classmethod
    def stop(cls, run_key: str, owner: str) -> None:
        with cls._guard:
            beat = cls._live.pop((run_key, owner), None)
        if beat is not None:
            beat._stop_event.set()
            beat.join(timeout=2 * HEARTBEAT)


def release_run(platform: Platform, run_key: str, owner: str, *, done: bool) -> None:
    _Heartbeat.stop(run_key, owner)
    with platform.engine.begin() as conn:
        runs.release_lease(conn, run_key, owner, done_at=platform.now() if done else None)
