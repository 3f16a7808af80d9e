"""The short-lived caches of the rights check: expiry, bounds, invalidation."""

from __future__ import annotations

from tierspayant.app.caching import TtlCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_given_an_entry_when_read_before_and_after_its_time_then_kept_then_gone() -> None:
    clock = Clock()
    cache: TtlCache[str, int] = TtlCache(2, clock=clock)
    cache.put("a", 1)
    clock.now += 1.99
    assert cache.get("a") == 1
    clock.now += 0.01
    assert cache.get("a") is None
    assert len(cache) == 0  # an expired entry is dropped when read


def test_given_zero_seconds_then_nothing_is_kept() -> None:
    cache: TtlCache[str, int] = TtlCache(0)
    cache.put("a", 1)
    assert cache.get("a") is None
    assert len(cache) == 0


def test_given_a_full_cache_when_adding_then_the_oldest_quarter_goes() -> None:
    cache: TtlCache[int, int] = TtlCache(60, max_entries=8)
    for key in range(8):
        cache.put(key, key)
    cache.put(8, 8)
    assert len(cache) == 7
    assert cache.get(0) is None
    assert cache.get(1) is None
    assert cache.get(2) == 2
    assert cache.get(8) == 8


def test_given_entries_when_discarded_or_cleared_then_gone_at_once() -> None:
    cache: TtlCache[str, int] = TtlCache(60)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.discard("a")
    cache.discard("missing")
    assert cache.get("a") is None
    assert cache.get("b") == 2
    cache.clear()
    assert cache.get("b") is None
