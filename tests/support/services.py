"""Reaching the local servers the tests use: skipped when absent, failed under CI."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest
import redis

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


def reachable_redis(client: redis.Redis, where: str) -> redis.Redis:
    """``client`` once it answers a ping; otherwise skip the test, or fail it when
    ``TIERSPAYANT_REQUIRE_SERVICES=1`` (CI: a missing server must not pass unnoticed)."""
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        message = f"Redis is not reachable at {where}: {exc}"
        if os.environ.get("TIERSPAYANT_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return client


@dataclass(frozen=True, slots=True)
class RedisDatabase:
    """One database of the local Redis, this test run's alone (the ``redis_db``
    fixture of ``tests/conftest.py`` takes it)."""

    index: int

    @property
    def url(self) -> str:
        return f"redis://{REDIS_HOST}:{REDIS_PORT}/{self.index}"

    def client(self) -> redis.Redis:
        return redis.Redis(
            host=REDIS_HOST,
            port=REDIS_PORT,
            db=self.index,
            socket_timeout=2,
            socket_connect_timeout=2,
        )
