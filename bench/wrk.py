"""HTTP load from wrk (Debian package), driven from Python.

One Lua script per target: it cycles through pre-formatted requests (each thread starts at
its own offset, so the two threads never send the same body at the same moment), checks
every answer's status and that its body holds an expected piece of text, and prints one
JSON line at the end with the request count, latency percentiles and the count of answers
that failed the check. Both a target and its baseline are loaded by this same client, so
the client's own cost weighs on both alike.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

WRK = "wrk"

_SCRIPT = """
local method = {method}
local path = {path}
local headers = {{ {headers} }}
local bodies = {{
{bodies}
}}
local needle = {needle}
local reqs = {{}}
local counter = 0
local threads = {{}}
local thread_count = 0
bad = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("id", thread_count)
  table.insert(threads, thread)
end

function init(args)
  for i, body in ipairs(bodies) do
    reqs[i] = wrk.format(method, path, headers, body)
  end
  local n = id or 1
  counter = math.floor((n - 1) * #reqs / 2)
end

function request()
  counter = counter % #reqs + 1
  return reqs[counter]
end

function response(status, hdrs, body)
  if status ~= 200 or not string.find(body, needle, 1, true) then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local wrong = 0
  for _, thread in ipairs(threads) do
    wrong = wrong + thread:get("bad")
  end
  local e = summary.errors
  io.write(string.format(
    '{{"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,'
      .. '"max_us":%d,"bad":%d,"status_errors":%d,"socket_errors":%d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, wrong, e.status,
    e.connect + e.read + e.write + e.timeout))
end
"""


def _lua_string(value: str) -> str:
    """A Lua long string that cannot be closed by the value itself."""
    level = 0
    while f"]{'=' * level}]" in value:
        level += 1
    eq = "=" * level
    return f"[{eq}[{value}]{eq}]"


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    bad: int  # answers with another status or without the expected text
    socket_errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def valid(self) -> bool:
        return self.requests > 0 and self.bad == 0 and self.socket_errors == 0

    def summary(self) -> dict[str, float | int | bool]:
        return {
            "requests": self.requests,
            "rps": round(self.rps, 1),
            "p50_ms": round(self.p50_ms, 2),
            "p90_ms": round(self.p90_ms, 2),
            "p99_ms": round(self.p99_ms, 2),
            "max_ms": round(self.max_ms, 2),
            "bad": self.bad,
            "socket_errors": self.socket_errors,
        }


class WrkScript:
    """A Lua script for one kind of request, written once and reused by every round."""

    def __init__(
        self,
        path: str,
        bodies: Sequence[bytes],
        headers: Mapping[str, str],
        needle: str,
        method: str = "POST",
    ) -> None:
        if shutil.which(WRK) is None:
            raise SystemExit("wrk is not installed: apt-get install -y wrk")
        self._dir = tempfile.TemporaryDirectory(prefix="bench-wrk-")
        self.file = Path(self._dir.name) / "requests.lua"
        self.file.write_text(
            _SCRIPT.format(
                method=_lua_string(method),
                path=_lua_string(path),
                headers=", ".join(
                    f"[ {_lua_string(k)} ] = {_lua_string(v)}" for k, v in headers.items()
                ),
                bodies=",\n".join(_lua_string(b.decode()) for b in bodies),
                needle=_lua_string(needle),
            ),
            encoding="utf-8",
        )

    def run(self, port: int, seconds: int, connections: int = 8, threads: int = 2) -> WrkResult:
        completed = subprocess.run(
            [
                WRK,
                f"-t{threads}",
                f"-c{connections}",
                f"-d{seconds}s",
                "--timeout",
                "10s",
                "-s",
                str(self.file),
                f"http://127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        line = next(
            (text for text in completed.stdout.splitlines() if text.startswith('{"requests"')),
            None,
        )
        if line is None:
            raise RuntimeError(f"wrk printed no summary: {completed.stdout}\n{completed.stderr}")
        data = json.loads(line)
        return WrkResult(
            requests=int(data["requests"]),
            seconds=data["duration_us"] / 1e6,
            p50_ms=data["p50_us"] / 1000,
            p90_ms=data["p90_us"] / 1000,
            p99_ms=data["p99_us"] / 1000,
            max_ms=data["max_us"] / 1000,
            bad=int(data["bad"]),
            socket_errors=int(data["socket_errors"]),
        )

    def close(self) -> None:
        self._dir.cleanup()
