"""``tierspayant work`` as systemd runs it: a process of its own that starts the
background work, and stops on SIGTERM after a last audit checkpoint (SQLite and
PostgreSQL). And the API's ASGI factory the multi-worker unit serves."""

from __future__ import annotations

import ctypes
import json
import os
import platform as machine
import signal
import subprocess
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tierspayant.api import asgi
from tierspayant.app.platform import Platform
from tierspayant.services import checkpoints
from tierspayant.store import audit

with warnings.catch_warnings():
    # Starlette warns that it prefers httpx2 to httpx; the client works the same.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

TIERSPAYANT = Path(sys.executable).with_name("tierspayant")


def _append(platform: Platform, count: int) -> int:
    with platform.engine.begin() as conn:
        for n in range(count):
            audit.append(
                conn,
                at=datetime(2030, 5, 6, 7, 8, n, tzinfo=UTC),
                actor="job:test-work",
                action="scheduler.job",
                decision="allow",
                detail={"n": n},
            )
        return audit.count_events(conn)


def _env(platform: Platform, out: Path, scheduler: str) -> dict[str, str]:
    env = {
        **os.environ,
        "TIERSPAYANT_DATA_DIR": str(platform.settings.data_dir),
        "TIERSPAYANT_DATABASE_URL": platform.settings.database_url,
        "TIERSPAYANT_AUDIT_CHECKPOINT_DIR": str(out),
        "TIERSPAYANT_CHECKPOINT_INTERVAL_SECONDS": "3600",
        "TIERSPAYANT_SCHEDULER": scheduler,
        "TIERSPAYANT_SCHEDULER_TICK_SECONDS": "0.2",
        "TIERSPAYANT_ADJUDICATION_INTERVAL_SECONDS": "0.2",
        "PYTHONFAULTHANDLER": "1",
    }
    env.pop("TIERSPAYANT_REDIS_URL", None)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


def _started_work(
    platform: Platform, out: Path, scheduler: str
) -> tuple[Any, dict[str, object] | None]:
    """A ``tierspayant work`` child, and its ``work.started`` event (None if it did not
    say it within a minute)."""
    child = subprocess.Popen(
        [str(TIERSPAYANT), "work"],
        env=_env(platform, out, scheduler),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stderr is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = child.stderr.readline()
        if not line:
            break
        if line.startswith("{") and json.loads(line)["event"] == "work.started":
            return child, json.loads(line)
    return child, None


def _events(stderr: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


@pytest.mark.parametrize(
    ("scheduler", "workers"),
    [
        ("1", ["Scheduler", "CheckpointWorker"]),
        ("0", ["AdjudicationWorker", "CheckpointWorker", "GuardFiguresWorker"]),
    ],
)
def test_work_runs_until_sigterm_then_stops_after_a_last_checkpoint(
    platform: Platform, tmp_path: Path, scheduler: str, workers: list[str]
) -> None:
    total = _append(platform, 4)
    out = tmp_path / "checkpoints"
    child, started = _started_work(platform, out, scheduler)
    try:
        assert started is not None, child.poll()
        assert started["workers"] == workers
        child.send_signal(signal.SIGTERM)
        child.send_signal(signal.SIGTERM)  # a second one while it stops changes nothing
        try:
            _, rest = child.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGABRT)  # faulthandler prints every thread's stack
            _, rest = child.communicate()
            pytest.fail(f"work did not stop on SIGTERM:\n{rest}")
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 0, rest
    names = [event["event"] for event in _events(rest)]
    assert "work.stopping" in names
    assert names[-1] == "work.stopped"
    # The checkpoint worker's last round on stop signed everything appended before.
    files = checkpoints.read_checkpoints(out)
    assert files
    assert files[-1].checkpoint.up_to_seq >= total


# tgkill(2): a signal to one thread of another process (os.kill picks any thread).
_TGKILL = {"x86_64": 234, "aarch64": 131}


@pytest.mark.skipif(machine.machine() not in _TGKILL, reason="tgkill's number is known here")
def test_work_stops_when_the_signal_lands_on_a_worker_thread(
    platform: Platform, tmp_path: Path
) -> None:
    """The kernel hands a process's SIGTERM to any of its threads; Python runs the
    handler in the main thread only. ``work`` must stop even when a worker thread got the
    signal (it waited on its event for good, and systemd would have killed it)."""
    child, started = _started_work(platform, tmp_path / "checkpoints", "0")
    try:
        assert started is not None, child.poll()
        threads = [int(t) for t in os.listdir(f"/proc/{child.pid}/task") if int(t) != child.pid]
        assert threads  # the workers' threads
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.syscall(_TGKILL[machine.machine()], child.pid, threads[0], signal.SIGTERM) == 0
        try:
            _, rest = child.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail("work did not stop on a SIGTERM delivered to a worker thread")
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 0, rest
    names = [event["event"] for event in _events(rest)]
    assert "work.stopping" in names
    assert names[-1] == "work.stopped"


def test_the_asgi_factory_serves_the_platform_of_the_environment(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIERSPAYANT_DATA_DIR", str(platform.settings.data_dir))
    monkeypatch.setenv("TIERSPAYANT_DATABASE_URL", platform.settings.database_url)
    monkeypatch.delenv("TIERSPAYANT_REDIS_URL", raising=False)
    built = asgi.app()
    with TestClient(built) as client:
        answer = client.get("/readyz")
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "ready"
