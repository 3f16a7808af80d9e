"""The I/O floor of the rights check benchmark (bench/io_floor.py) does the I/O it claims:
one chained audit row committed per answer, the guard's counters in Redis when the
settings name one, on both engines. A floor that skipped its commit would flatter every
ratio printed beside it."""

from __future__ import annotations

import hashlib
import warnings
from typing import Any

import pytest
from bench.io_floor import ANSWER, io_floor_app
from sqlalchemy import text

from tests.support.services import RedisDatabase
from tierspayant.app.platform import Platform

with warnings.catch_warnings():  # the test client's own deprecation notice
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def _card(i: int) -> dict[str, object]:
    return {
        "card": {
            "amc_number": "75012345",
            "nir": f"1850775{i:06d}",
            "birth_rank": 1,
            "birth_date": "1985-07-01",
        },
        "care_date": "2026-01-01",
        "domains": ["PHAR"],
    }


def _serve(
    platform: Platform, monkeypatch: pytest.MonkeyPatch, redis_url: str | None, calls: int
) -> list[tuple[int, bytes]]:
    with platform.engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS bench_floor_audit"))
    monkeypatch.setenv("TIERSPAYANT_DATA_DIR", str(platform.settings.data_dir))
    monkeypatch.setenv("TIERSPAYANT_DATABASE_URL", platform.settings.database_url)
    if redis_url is None:
        monkeypatch.delenv("TIERSPAYANT_REDIS_URL", raising=False)
    else:
        monkeypatch.setenv("TIERSPAYANT_REDIS_URL", redis_url)
    with TestClient(io_floor_app()) as client:
        answers = [client.post("/v1/eligibility", json=_card(i)) for i in range(calls)]
    return [(a.status_code, a.content) for a in answers]


def _rows(platform: Platform) -> list[tuple[str, str, bytes, str, bytes]]:
    with platform.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT at, principal, subject, detail, hash FROM bench_floor_audit ORDER BY seq")
        ).all()
    return [(r[0], r[1], bytes(r[2]), r[3], bytes(r[4])) for r in rows]


def _chained(rows: list[tuple[str, str, bytes, str, bytes]]) -> bool:
    last = bytes(32)
    for at, principal, subject, detail, digest in rows:
        expected = hashlib.sha256(
            last + at.encode() + principal.encode() + subject + detail.encode()
        ).digest()
        if digest != expected:
            return False
        last = digest
    return True


def test_every_answer_leaves_a_committed_chained_row(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = _serve(platform, monkeypatch, None, 7)
    assert answers == [(200, ANSWER)] * 7
    rows = _rows(platform)
    assert len(rows) == 7  # read from another connection: committed
    assert len({r[2] for r in rows}) == 7  # one index per card
    assert _chained(rows)
    rows[3] = (*rows[3][:4], bytes(32))
    assert not _chained(rows)


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.parametrize("engine_name", ["postgres"], indirect=False)
def test_the_guard_counters_go_to_redis(
    platform: Platform, monkeypatch: pytest.MonkeyPatch, redis_db: RedisDatabase
) -> None:
    client: Any = redis_db.client()  # redis-py types its replies as maybe-awaitable
    client.flushdb()
    answers = _serve(platform, monkeypatch, redis_db.url, 5)
    assert answers == [(200, ANSWER)] * 5
    # Two script calls per answer (before and after the read), two counters each.
    assert int(client.get("floor:admit:m") or 0) == 5
    assert int(client.get("floor:observe:d") or 0) == 5
    assert 0 < int(client.ttl("floor:admit:m")) <= 60
    rows = _rows(platform)
    assert len(rows) == 5
    assert _chained(rows)
    client.close()
