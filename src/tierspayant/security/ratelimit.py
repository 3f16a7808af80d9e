"""Named rate limiters over the ``limits`` library: in-process by default, Redis if set.

Each limiter is named after the action and the entity it counts (``eligibility.principal``,
``auth.client``), as data. When the shared store fails, a limiter on a lookup path fails
*closed* (the lookup is refused): an outage of Redis must not open the door to a scrape.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import structlog
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

log = structlog.get_logger("tierspayant.ratelimit")

DEFAULT_RULES: Mapping[str, str] = {
    # Token requests per client id: software asks for a token every few minutes, a
    # password-spraying bot thousands of times. (Lookups are limited by the guard.)
    "auth.client": "30/minute",
    # Portal logins per login name, before the account lockout counts failures.
    "auth.login": "20/minute",
}


class RateLimitStoreDown(Exception):
    """The shared counter store could not be reached; the limiter failed closed."""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: int


class RateLimits:
    """A set of named moving-window limiters sharing one storage."""

    def __init__(self, storage_uri: str | None, rules: Mapping[str, str] | None = None) -> None:
        storage = MemoryStorage() if not storage_uri else storage_from_string(storage_uri)
        if not isinstance(storage, Storage):  # an async storage URI was given
            raise ValueError(f"not a synchronous rate limit storage: {storage_uri}")
        self.storage: Storage = storage
        self.limiter = MovingWindowRateLimiter(self.storage)
        merged = dict(DEFAULT_RULES)
        merged.update(rules or {})
        self.items: dict[str, RateLimitItem] = {name: parse(rule) for name, rule in merged.items()}

    def hit(self, name: str, key: str) -> Decision:
        """Count one event for ``key`` under limiter ``name``; say whether it is allowed."""
        item = self.items[name]
        try:
            allowed = self.limiter.hit(item, name, key)
        except Exception as exc:  # any store failure fails closed
            log.error("ratelimit.store_error", limiter=name, error=type(exc).__name__)
            raise RateLimitStoreDown(name) from exc
        return Decision(allowed, 0 if allowed else item.get_expiry())

    def reset(self) -> None:
        """Forget every counter (tests, and the operator's reinstate action)."""
        self.storage.reset()
