"""prometheus-client's multiprocess mode: with ``PROMETHEUS_MULTIPROC_DIR`` set, two
processes count, and the exposition of a third sums them (as the workers of one server)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

WRITER = """
import asyncio, os, sys
from tierspayant import metrics
from tierspayant.api.metrics import RequestMetricsMiddleware

n = int(sys.argv[1])

async def app(scope, receive, send):
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})

async def one():
    async def receive():
        return {"type": "http.request", "body": b""}
    async def send(message):
        pass
    scope = {"type": "http", "method": "GET", "path": "/x/1", "root_path": ""}
    await RequestMetricsMiddleware(app)(scope, receive, send)

for _ in range(n):
    asyncio.run(one())
metrics.GUARD_DECISIONS.labels("allow", "guard.ok").inc(n)
metrics.AUDIT_BATCH_SIZE.observe(n)
metrics.AUDIT_PENDING.inc(n)
metrics.ADJUDICATION_BACKLOG.set(n)
print(os.getpid())
"""

READER = (
    "import sys; from tierspayant import metrics; sys.stdout.write(metrics.exposition().decode())"
)


def _run(code: str, *args: str, multiproc: Path | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env["PYTHONPATH"] = str(SRC)
    if multiproc is not None:
        env["PROMETHEUS_MULTIPROC_DIR"] = str(multiproc)
    done = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _value(text: str, line_start: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{line_start} not in the exposition:\n{text}")


def test_two_writers_and_one_exposition_summing_them(tmp_path: Path) -> None:
    first = int(_run(WRITER, "3", multiproc=tmp_path))
    _run(WRITER, "4", multiproc=tmp_path)
    assert len(list(tmp_path.glob("*.db"))) >= 2  # one file per process and kind
    text = _run(READER, multiproc=tmp_path)
    requests = 'tierspayant_http_requests_total{method="GET",route="unmatched",status="2xx"}'
    assert _value(text, requests) == 7
    latency = 'tierspayant_http_request_duration_seconds_count{method="GET",route="unmatched",status="2xx"}'  # noqa: E501
    assert _value(text, latency) == 7
    guard = 'tierspayant_guard_decisions_total{code="guard.ok",verdict="allow"}'
    assert _value(text, guard) == 7
    assert _value(text, "tierspayant_audit_writer_batch_events_sum") == 7
    assert _value(text, "tierspayant_audit_writer_batch_events_count") == 2
    # The backlog is the value of whichever process set it last.
    assert _value(text, "tierspayant_adjudication_backlog_claims") == 4
    # The pending audit events are summed over live processes: a worker marked dead
    # (the server's child-exit hook calls metrics.mark_process_dead) drops out.
    assert _value(text, "tierspayant_audit_writer_pending_events") == 7
    mark = f"from tierspayant import metrics; metrics.mark_process_dead({first})"
    _run(mark, multiproc=tmp_path)
    text = _run(READER, multiproc=tmp_path)
    assert _value(text, "tierspayant_audit_writer_pending_events") == 4
    assert _value(text, requests) == 7  # counters keep what dead workers counted


def test_without_the_directory_each_process_counts_alone(tmp_path: Path) -> None:
    _run(WRITER, "3", multiproc=None)
    text = _run(READER, multiproc=None)
    # A fresh process has counted nothing: nothing was shared through files.
    assert "tierspayant_http_requests_total{" not in text
    assert list(tmp_path.iterdir()) == []
