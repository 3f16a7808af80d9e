"""Scheduled export of signed audit checkpoints (wired into ``serve`` by the lead).

A daemon thread signs a checkpoint every ``interval`` seconds when the log has grown.
A failure (broken chain, full disk) is logged as an error and retried at the next tick:
the API keeps serving, and the broken chain is what the security team must look at.
"""

from __future__ import annotations

import threading
from pathlib import Path

import structlog

from tierspayant.app.platform import Platform
from tierspayant.domain.errors import DomainError
from tierspayant.services.checkpoints import CheckpointFile, write_checkpoint

log = structlog.get_logger("tierspayant.jobs.checkpoints")


class CheckpointWorker:
    """Exports a checkpoint of the audit log into ``out_dir`` every ``interval`` seconds."""

    def __init__(self, platform: Platform, out_dir: Path, interval: float = 300.0) -> None:
        if interval <= 0:
            raise ValueError("checkpoint interval must be positive")
        self.platform = platform
        self.out_dir = out_dir
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> CheckpointFile | None:
        """Export one checkpoint now (None when nothing was appended since the last)."""
        try:
            written = write_checkpoint(self.platform, self.out_dir)
        except (DomainError, OSError) as exc:
            code = getattr(exc, "code", type(exc).__name__)
            log.error("audit.checkpoint_failed", code=code, error=str(exc))
            return None
        if written is not None:
            log.info(
                "audit.checkpoint_written",
                up_to_seq=written.checkpoint.up_to_seq,
                file=written.path.name,
            )
        return written

    def start(self) -> None:
        """Start the background thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="audit-checkpoints", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the thread to finish, write a last checkpoint, and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.run_once()
        self.run_once()
