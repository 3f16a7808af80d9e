"""Small in-process caches for what every rights check would otherwise read again.

A rights check reads the same few rows for every request of a provider: its token, the
insurer behind an AMC number, the newest catalogue version. Each is a database round trip
and, on this path, SQL overhead costs more than the rest of the check. These caches keep
an entry for a short time (``TIERSPAYANT_CACHE_SECONDS``, 2 s by default):

- a write made by this process clears what it changes (a revoked token, a suspended
  principal, an uploaded catalogue) at once;
- a write made by another process (a CLI, another API worker) is seen within that time.

Nothing here is a security boundary: a revoked or suspended principal is also refused by
the guard, which learns of a suspension at once through its shared counters.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """A bounded mapping whose entries expire ``seconds`` after they were stored."""

    def __init__(
        self,
        seconds: float,
        *,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seconds = seconds
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[K, tuple[float, V]] = {}
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        stored_at, value = entry
        if self._clock() - stored_at >= self.seconds:
            with self._lock:
                if self._entries.get(key) is entry:
                    del self._entries[key]
            return None
        return value

    def put(self, key: K, value: V) -> None:
        if self.seconds <= 0:
            return
        with self._lock:
            if len(self._entries) >= self.max_entries:
                # Oldest entries first: dicts keep insertion order.
                for old in list(self._entries)[: self.max_entries // 4 or 1]:
                    del self._entries[old]
            self._entries[key] = (self._clock(), value)

    def discard(self, key: K) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
