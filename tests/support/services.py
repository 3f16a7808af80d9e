"""Reaching the local servers the tests use: skipped when absent, failed under CI."""

from __future__ import annotations

import os

import pytest
import redis


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
