"""``tierspayant work``: the platform's background work without an HTTP server.

For deployments where the API runs as several uvicorn workers (``tierspayant.api.asgi``)
and the scheduled work in processes of its own (deploy/systemd/). On PostgreSQL several
``work`` processes may run side by side: adjudication batches are claimed ``FOR UPDATE
SKIP LOCKED`` and each scheduled job once by key. On SQLite run one.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

import typer

from tierspayant.app.observability import configure_logging
from tierspayant.cli.common import platform_ctx

_WAKE_SECONDS = 1.0


def register(app: typer.Typer, _import_app: typer.Typer) -> None:
    app.command()(work)


def work() -> None:
    """Exécute le travail de fond sans servir HTTP (adjudication, virements, facturation,
    points de contrôle de l'audit, chiffres du garde) jusqu'à l'arrêt (SIGTERM, Ctrl-C)."""
    import structlog

    from tierspayant.jobs.background import background_workers

    configure_logging()
    log = structlog.get_logger("tierspayant.cli.work")
    stop = threading.Event()
    received: list[str] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        # Only record and wake the main thread: a handler that logged could run while the
        # main thread holds the log's lock, and wait for it forever.
        received.append(signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with platform_ctx() as platform:
            workers = background_workers(platform)
            for worker in workers:
                worker.start()
            log.info("work.started", workers=[type(w).__name__ for w in workers])
            try:
                # Woken every second: the kernel gives a process's signal to any of its
                # threads, and Python runs the handler only in the main thread, when it
                # runs bytecode; a main thread blocked for good on the event would not
                # (a SIGTERM that landed on a worker thread left `work` running forever).
                while not stop.wait(_WAKE_SECONDS):
                    pass
                log.info("work.stopping", signal=received[0] if received else None)
            finally:
                for worker in workers:  # each finishes its round (a last checkpoint)
                    worker.stop()
            log.info("work.stopped")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
