"""The I/O floor of a rights check: the least any correct implementation must do per
answer, on the same server stack, with nothing of the platform's own code on the path.

``python bench/serve.py io_floor PORT`` serves ``POST /v1/eligibility`` doing, for every
request, only the I/O and the arithmetic the check cannot skip:

- read the body in full and parse it as JSON;
- the card's index: one HMAC-SHA256 of the NIR and rank;
- the guard: a counter taken before the read and one after it, in Redis when the
  platform's settings name a Redis (one script call each: two keys incremented with
  their expiry), else in a dictionary of the process;
- the read: the platform's own padded index statement on ``beneficiaries`` (hit and miss
  read one row alike), through the bare driver;
- the record: one audit row chained by SHA-256 to the previous one (one chain per
  process: no lock across processes), committed before the answer leaves, each in its
  own transaction on the request's connection. Committing rows in groups, as the
  platform's audit writer does, measured slower here at 8 connections (half the
  answers per second on PostgreSQL: a request waits for the batch before its own), so
  the floor commits one by one: it is the cheaper of the two;
- a fixed JSON answer.

Drivers run the way that costs the least here: asynchronous (psycopg, redis) on the
event loop for PostgreSQL, the SQLite driver on the loop itself (as the platform's inline
lane does for its reads). No decryption, no policy,
no alert rules, no logging, no metrics: what the platform adds on top of this floor is
its controls and its code. ``bench_eligibility_http`` reports both ratios to the bare
POST, so a target under the floor shows as such.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import secrets
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tierspayant.config import load_settings

ANSWER = b'{"care_date":"2026-01-01","rights":[]}'
_TABLE = "bench_floor_audit"
_CREATE = (
    f"CREATE TABLE IF NOT EXISTS {_TABLE} (seq {{serial}} PRIMARY KEY, at TEXT NOT NULL, "
    "principal TEXT NOT NULL, subject {blob} NOT NULL, detail TEXT NOT NULL, "
    "hash {blob} NOT NULL)"
)
# Two counters per call, each with its expiry: a window and a day, as the guard keeps.
_COUNT = (
    "local a = redis.call('INCR', KEYS[1]) redis.call('EXPIRE', KEYS[1], 60) "
    "local b = redis.call('INCR', KEYS[2]) redis.call('EXPIRE', KEYS[2], 86400) "
    "return {a, b}"
)


def _padded_sql(dialect_name: str) -> tuple[str, tuple[str, ...], dict[str, Any]]:
    """The platform's padded index read, compiled for the bare driver: its text, its
    parameters' order (SQLite) and its constant parameters."""
    from sqlalchemy.dialects import postgresql, sqlite

    from tierspayant.store.beneficiaries import _BY_NIR_INDEX_PADDED

    dialect: Any = (
        postgresql.psycopg.dialect()  # type: ignore[no-untyped-call]
        if dialect_name == "postgresql"
        else sqlite.dialect()
    )
    compiled = _BY_NIR_INDEX_PADDED.compile(dialect=dialect)
    return str(compiled), tuple(compiled.positiontup or ()), dict(compiled.params)


class _Chain:
    """The audit rows waiting for their group commit, chained by SHA-256."""

    def __init__(self) -> None:
        self.last = bytes(32)

    def row(self, principal: str, subject: bytes, detail: str) -> tuple[Any, ...]:
        at = "2026-01-01T00:00:00+00:00"
        digest = hashlib.sha256(
            self.last + at.encode() + principal.encode() + subject + detail.encode()
        ).digest()
        self.last = digest
        return (at, principal, subject, detail, digest)


_COLUMNS = "(at, principal, subject, detail, hash)"
_INSERT_PG = f"INSERT INTO {_TABLE} {_COLUMNS} VALUES (%s, %s, %s, %s, %s)"
_INSERT_SQLITE = f"INSERT INTO {_TABLE} {_COLUMNS} VALUES (?, ?, ?, ?, ?)"


class _PostgresFloor:
    def __init__(self, url: str, redis_url: str | None) -> None:
        self.url = url.replace("postgresql+psycopg://", "postgresql://")
        self.redis_url = redis_url
        self.sql, self.positions, self.constants = _padded_sql("postgresql")
        self.counts: dict[str, int] = {}
        self.chain = _Chain()

    async def start(self) -> None:
        import psycopg
        import redis.asyncio as aredis

        self.pool: asyncio.Queue[Any] = asyncio.Queue()
        for _ in range(8):
            self.pool.put_nowait(await psycopg.AsyncConnection.connect(self.url, autocommit=True))
        conn = self.pool.get_nowait()
        # Each worker process creates the table if missing: one at a time (two concurrent
        # CREATE TABLE IF NOT EXISTS can both try to create its type).
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(7231)")
            await conn.execute(_CREATE.format(serial="BIGSERIAL", blob="BYTEA"))
        row = await (await conn.execute("SELECT min(id) FROM insurers")).fetchone()
        self.insurer_id = row[0] if row and row[0] is not None else 1
        self.pool.put_nowait(conn)
        self.redis: Any = None
        if self.redis_url is not None:
            self.redis = aredis.Redis.from_url(self.redis_url, max_connections=16)
            self.sha = await self.redis.script_load(_COUNT)

    async def stop(self) -> None:
        while not self.pool.empty():
            await self.pool.get_nowait().close()
        if self.redis is not None:
            await self.redis.aclose()

    async def _count(self, who: str) -> None:
        if self.redis is None:
            self.counts[who] = self.counts.get(who, 0) + 1
            return
        await self.redis.evalsha(self.sha, 2, f"floor:{who}:m", f"floor:{who}:d")

    async def check(self, idx: bytes) -> None:
        await self._count("admit")
        conn = await self.pool.get()
        try:
            values = {**self.constants, "insurer_id": self.insurer_id, "idx": idx}
            cursor = await conn.execute(self.sql, values, prepare=True)
            await cursor.fetchone()
            await self._count("observe")
            row = self.chain.row("floor", idx, '{"disclosed":false}')
            await conn.execute(_INSERT_PG, row, prepare=True)  # autocommit: committed
        finally:
            self.pool.put_nowait(conn)


class _SqliteFloor:
    def __init__(self, url: str) -> None:
        self.path = url.split("///", 1)[1]
        self.sql, self.positions, self.constants = _padded_sql("sqlite")
        self.counts: dict[str, int] = {}
        self.chain = _Chain()

    async def start(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute(_CREATE.format(serial="INTEGER", blob="BLOB"))
        row = conn.execute("SELECT min(id) FROM insurers").fetchone()
        self.insurer_id = row[0] if row and row[0] is not None else 1
        self.conn = conn

    async def stop(self) -> None:
        self.conn.close()

    async def check(self, idx: bytes) -> None:
        self.counts["admit"] = self.counts.get("admit", 0) + 1
        values = {**self.constants, "insurer_id": self.insurer_id, "idx": idx}
        self.conn.execute(self.sql, [values[p] for p in self.positions]).fetchone()
        self.counts["observe"] = self.counts.get("observe", 0) + 1
        row = self.chain.row("floor", idx, '{"disclosed":false}')
        self.conn.execute(_INSERT_SQLITE, row)  # autocommit: committed


def io_floor_app() -> Starlette:
    settings = load_settings()
    floor: _PostgresFloor | _SqliteFloor
    if settings.is_sqlite:
        floor = _SqliteFloor(settings.database_url)
    else:
        floor = _PostgresFloor(settings.database_url, settings.redis_url)
    key = secrets.token_bytes(32)

    async def post(request: Request) -> Response:
        card = json.loads(await request.body())["card"]
        idx = hmac.new(key, f"{card['nir']}{card['birth_rank']}".encode(), "sha256").digest()
        await floor.check(idx)
        return Response(ANSWER, media_type="application/json")

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await floor.start()
        yield
        await floor.stop()

    return Starlette(routes=[Route("/v1/eligibility", post, methods=["POST"])], lifespan=lifespan)


if __name__ == "__main__":  # pragma: no cover - served through bench/serve.py
    raise SystemExit("serve it with: python bench/serve.py io_floor PORT [WORKERS]")
