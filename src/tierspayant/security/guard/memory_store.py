"""The guard's counters in the process (one machine): :class:`MemoryCounterStore`.

It implements the protocol of ``counters`` and agrees with the Redis store, in
``redis_store`` (``tests/unit/security/test_guard_stores_agree.py``).
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable, Sequence

from tierspayant.security.guard.counters import (
    AdmitReading,
    CounterSnapshot,
    LookupKeys,
    ObserveReading,
    StoreLimits,
    UnbilledCounts,
    UnbilledPlan,
    answered_by,
    answered_by_add,
)


class MemoryCounterStore:
    """In-process counters for one machine; thread-safe, one lock for every operation.

    Times to live run on the monotonic clock, like Redis's run on its own clock. Each
    public method takes the lock once and runs the unlocked helpers (``_op``); the
    bundled operations run the same helpers in the same order, under one lock.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._zsets: dict[str, dict[str, int]] = {}
        # Time-ordered heaps of the unbilled people sets (ubp:, ubo:), beside their dicts.
        self._heaps: dict[str, list[tuple[int, str]]] = {}
        self._lists: dict[str, list[str]] = {}
        self._sets: dict[str, set[str]] = {}
        self._hashes: dict[str, dict[str, str]] = {}
        self._ints: dict[str, int] = {}
        self._flags: set[str] = set()
        # The owner written in each lock key (a lock is also a flag: ``has_flag`` sees it).
        self._owners: dict[str, str] = {}
        self._deadlines: dict[str, float] = {}
        # The clock read once per operation, under the lock (times to live need no more).
        self._now = clock()

    # Every helper below runs with the lock held.
    def _drop(self, key: str) -> None:
        for table in (self._zsets, self._lists, self._sets, self._hashes, self._ints, self._heaps):
            table.pop(key, None)
        self._flags.discard(key)
        self._owners.pop(key, None)
        self._deadlines.pop(key, None)

    def _fresh(self, key: str) -> None:
        deadline = self._deadlines.get(key)
        if deadline is not None and self._now >= deadline:
            self._drop(key)

    def _touch(self, key: str, ttl_seconds: int | None) -> None:
        if ttl_seconds is None:
            self._deadlines.pop(key, None)
        else:
            self._deadlines[key] = self._now + ttl_seconds

    def _hit_windows(
        self, keys: Sequence[str], limits: Sequence[int], now_ms: int, window_ms: int, member: str
    ) -> int:
        for index, (key, limit) in enumerate(zip(keys, limits, strict=True)):
            self._fresh(key)
            events = self._zsets.setdefault(key, {})
            # Members are inserted in time order (dicts keep insertion order): drop
            # expired ones from the front only, so a call costs what expired, not the
            # window's size (a global window holds every lookup of the last minute).
            # A member stamped slightly out of order by a concurrent thread leaves a
            # little later, which errs on the strict side.
            cutoff = now_ms - window_ms
            while events:
                oldest = next(iter(events))
                if events[oldest] > cutoff:
                    break
                del events[oldest]
            if len(events) >= limit:
                return index
        for key in keys:
            self._zsets[key][member] = now_ms
            self._touch(key, window_ms // 1000 + 60)
        return -1

    def _push_recent(self, key: str, value: str, keep: int, ttl_seconds: int) -> list[str]:
        self._fresh(key)
        items = self._lists.setdefault(key, [])
        items.insert(0, value)
        del items[keep:]
        self._touch(key, ttl_seconds)
        return list(items)

    def _recent(self, key: str) -> list[str]:
        self._fresh(key)
        return list(self._lists.get(key, []))

    def _add_distinct(self, key: str, member: str, ttl_seconds: int) -> int:
        self._fresh(key)
        members = self._sets.setdefault(key, set())
        members.add(member)
        self._touch(key, ttl_seconds)
        return len(members)

    def _count_distinct(self, key: str) -> int:
        self._fresh(key)
        return len(self._sets.get(key, ()))

    def _count_common(self, key_a: str, key_b: str) -> int:
        self._fresh(key_a)
        self._fresh(key_b)
        return len(self._sets.get(key_a, set()) & self._sets.get(key_b, set()))

    def _release(self, holds_key: str, token: str) -> None:
        self._fresh(holds_key)
        self._zsets.get(holds_key, {}).pop(token, None)

    def _set_flag(self, key: str, ttl_seconds: int | None) -> None:
        self._fresh(key)
        self._flags.add(key)
        self._touch(key, ttl_seconds)

    def _has_flag(self, key: str) -> bool:
        self._fresh(key)
        return key in self._flags

    def _set_once(self, key: str, ttl_seconds: int) -> bool:
        self._fresh(key)
        if key in self._flags:
            return False
        self._flags.add(key)
        self._touch(key, ttl_seconds)
        return True

    def _incr(self, key: str, ttl_seconds: int) -> int:
        self._fresh(key)
        value = self._ints.get(key, 0) + 1
        self._ints[key] = value
        self._touch(key, ttl_seconds)
        return value

    def _hash_set(self, key: str, name: str, value: str, ttl_seconds: int) -> None:
        self._fresh(key)
        self._hashes.setdefault(key, {})[name] = value
        self._touch(key, ttl_seconds)

    def _unbilled(
        self,
        bill_key: str,
        keys: tuple[str, ...],
        now_ms: int,
        grace_ms: int,
        window_ms: int,
        slack_ms: int,
        overdue_limit: int,
        pending_limit: int,
        token: str | None,
        hold_ms: int,
        ttl: int,
    ) -> tuple[tuple[int, ...], tuple[int, ...], bool]:
        """:meth:`unbilled` on the (holds, pending, overdue) keys of each scope; holds
        ``token`` if given and allowed."""
        self._fresh(bill_key)
        bill = self._zsets.get(bill_key, {})
        pending: list[int] = []
        overdue: list[int] = []
        zsets, heaps = self._zsets, self._heaps
        due = now_ms - grace_ms
        gone = now_ms - window_ms
        for i in range(0, len(keys), 3):
            holds_key, pend_key, over_key = keys[i], keys[i + 1], keys[i + 2]
            self._fresh(holds_key)
            self._fresh(pend_key)
            self._fresh(over_key)
            holds = zsets.setdefault(holds_key, {})
            if holds:
                for old in [t for t, until in holds.items() if until <= now_ms]:
                    del holds[old]
            pend = zsets.setdefault(pend_key, {})
            over = zsets.setdefault(over_key, {})
            # Oldest first through each set's heap (entries whose person was since
            # invoiced or moved are stale and skipped): the cost is the people who
            # change state, not the size of the sets.
            pend_heap = heaps.setdefault(pend_key, [])
            over_heap = heaps.setdefault(over_key, [])
            while pend_heap and pend_heap[0][0] <= due:
                answered, subject = heapq.heappop(pend_heap)
                if pend.get(subject) != answered:
                    continue
                del pend[subject]
                if bill.get(subject, -1) < answered - slack_ms:
                    over[subject] = answered
                    heapq.heappush(over_heap, (answered, subject))
            while over_heap and over_heap[0][0] <= gone:
                answered, subject = heapq.heappop(over_heap)
                if over.get(subject) == answered:
                    del over[subject]
            pending.append(len(pend) + len(holds))
            overdue.append(len(over))
        reserved = (
            token is not None
            and all(o < overdue_limit for o in overdue)
            and all(n < pending_limit for n in pending)
        )
        for i in range(0, len(keys), 3):
            if reserved:
                assert token is not None
                zsets[keys[i]][token] = now_ms + hold_ms
                self._touch(keys[i], ttl)
            self._touch(keys[i + 1], ttl)
            self._touch(keys[i + 2], ttl)
        return tuple(pending), tuple(overdue), reserved

    def _reserve(
        self,
        quota_key: str,
        holds_key: str,
        token: str,
        limit: int,
        now_ms: int,
        hold_ms: int,
        ttl_seconds: int,
    ) -> bool:
        self._fresh(quota_key)
        self._fresh(holds_key)
        holds = self._zsets.setdefault(holds_key, {})
        if holds:
            for old in [t for t, until in holds.items() if until <= now_ms]:
                del holds[old]
        if len(self._sets.get(quota_key, ())) + len(holds) >= limit:
            return False
        holds[token] = now_ms + hold_ms
        self._touch(holds_key, ttl_seconds)
        return True

    def _unbilled_answer(
        self,
        keys: tuple[str, ...],
        scopes: Sequence[str],
        token: str,
        subject: str | None,
        by_key: str,
        now_ms: int,
        ttl_seconds: int,
    ) -> None:
        zsets = self._zsets
        for i in range(0, len(keys), 3):
            self._release(keys[i], token)
            if subject is None:
                continue
            pend_key, over_key = keys[i + 1], keys[i + 2]
            self._fresh(pend_key)
            self._fresh(over_key)
            pend = zsets.setdefault(pend_key, {})
            if subject not in pend and subject not in zsets.get(over_key, {}):
                pend[subject] = now_ms
                heapq.heappush(self._heaps.setdefault(pend_key, []), (now_ms, subject))
            self._touch(pend_key, ttl_seconds)
        if subject is not None and scopes:
            self._fresh(by_key)
            before = self._hashes.get(by_key, {}).get(subject)
            self._hash_set(by_key, subject, answered_by_add(before, scopes[0]), ttl_seconds)

    # The operations of the protocol.
    def admit_lookup(
        self,
        keys: LookupKeys,
        limits: StoreLimits,
        now_ms: int,
        token: str,
        pace: bool,
        no_proof: bool,
        pending_limit: int,
        quota_limit: int,
        epoch_key: str | None = None,
    ) -> AdmitReading:
        """See :meth:`CounterStore.admit_lookup`."""
        with self._lock:
            self._now = self._clock()
            if epoch_key is not None and not self._has_flag(epoch_key):
                return AdmitReading(empty=True)
            if self._has_flag(keys.flag):
                return AdmitReading(suspended=True)
            full = self._hit_windows(
                keys.windows, limits.window_limits, now_ms, limits.window_ms, token
            )
            if full >= 0:
                return AdmitReading(full=full)
            stamps: tuple[str, ...] = ()
            if pace:
                stamps = tuple(
                    self._push_recent(keys.pace, str(now_ms), limits.pace_keep, limits.pace_ttl)
                )
            seen = self._count_distinct(keys.seen)
            self._fresh(keys.step_up)
            until = int(self._hashes.get(keys.step_up, {}).get("until", 0))
            if not no_proof:
                return AdmitReading(False, False, -1, stamps, seen, (), 0, until)
            outcomes = tuple(self._recent(keys.outcomes))
            answered = self._count_distinct(keys.answered)
            pending, overdue, held = self._unbilled(
                keys.bill,
                keys.unbilled,
                now_ms,
                limits.grace_ms,
                limits.unbilled_window_ms,
                limits.slack_ms,
                limits.overdue_limit,
                pending_limit,
                token,
                limits.hold_ms,
                limits.unbilled_ttl,
            )
            quota_full = False
            if held and not self._reserve(
                keys.answered,
                keys.holds,
                token,
                quota_limit,
                now_ms,
                limits.hold_ms,
                limits.day_ttl,
            ):
                quota_full, held = True, False
                for i in range(0, len(keys.unbilled), 3):
                    self._release(keys.unbilled[i], token)
            return AdmitReading(
                False,
                False,
                -1,
                stamps,
                seen,
                outcomes,
                answered,
                until,
                pending,
                overdue,
                held,
                quota_full,
            )

    def observe_lookup(
        self,
        keys: LookupKeys,
        limits: StoreLimits,
        now_ms: int,
        token: str,
        no_proof: bool,
        outcome: str,
        subject: str | None,
        care_date: str | None,
        once_keys: tuple[str, ...],
        epoch_key: str | None = None,
    ) -> ObserveReading:
        """See :meth:`CounterStore.observe_lookup`."""
        ttl = limits.day_ttl
        with self._lock:
            self._now = self._clock()
            if epoch_key is not None and not self._has_flag(epoch_key):
                return ObserveReading(empty=True)
            if subject is not None and care_date is not None:
                dates = self._add_distinct(keys.dates + subject, care_date, limits.dates_ttl)
                if dates > limits.dates_free:
                    subject = f"{subject}@{care_date}"
            self._hash_set(keys.active, keys.structure, keys.category, ttl)
            outcomes: tuple[str, ...] = ()
            if no_proof:
                outcomes = tuple(
                    self._push_recent(
                        keys.outcomes, outcome, limits.outcomes_keep, limits.outcomes_ttl
                    )
                )
            seen = answered = 0
            if subject is not None:
                seen = self._add_distinct(keys.seen, subject, ttl)
                if no_proof:
                    answered = self._add_distinct(keys.answered, subject, ttl)
            if no_proof:
                self._release(keys.holds, token)
            checked = self._set_once(keys.check, limits.check_ttl)
            looked = invoiced = 0
            if checked:
                looked = self._count_distinct(keys.judged_seen)
                if looked >= limits.min_looked:
                    invoiced = self._count_common(keys.judged_seen, keys.judged_invoiced)
            once_set = tuple(self._has_flag(k) for k in once_keys)
            if no_proof:
                self._unbilled_answer(
                    keys.unbilled, keys.scopes, token, subject, keys.by, now_ms, limits.unbilled_ttl
                )
            return ObserveReading(outcomes, seen, answered, checked, looked, invoiced, once_set)

    def release_lookup(self, keys: LookupKeys, token: str) -> None:
        """See :meth:`CounterStore.release_lookup`."""
        with self._lock:
            self._now = self._clock()
            self._release(keys.holds, token)
            for i in range(0, len(keys.unbilled), 3):
                self._release(keys.unbilled[i], token)

    def restore(self, snapshot: CounterSnapshot) -> None:
        """See :meth:`CounterStore.restore`."""
        with self._lock:
            self._now = self._clock()
            for key, (members, ttl) in snapshot.sets.items():
                self._fresh(key)
                self._sets.setdefault(key, set()).update(members)
                self._touch(key, ttl)
            for key, (scored, ttl) in snapshot.windows.items():
                self._fresh(key)
                events = self._zsets.setdefault(key, {})
                # Keep the window in time order: the trimming reads it from the front.
                merged = sorted({**events, **scored}.items(), key=lambda item: item[1])
                events.clear()
                events.update(merged)
                self._touch(key, ttl)
            for key, (scored, ttl) in snapshot.scored.items():
                self._fresh(key)
                self._zsets.setdefault(key, {}).update(scored)
                # The sweeps read the people oldest first, through the key's heap.
                heap = self._heaps.setdefault(key, [])
                for member, score in scored.items():
                    heapq.heappush(heap, (score, member))
                self._touch(key, ttl)
            for key, (items, ttl) in snapshot.lists.items():
                self._lists[key] = list(items)
                self._touch(key, ttl)
            for key, (fields_, ttl) in snapshot.hashes.items():
                self._fresh(key)
                self._hashes.setdefault(key, {}).update(fields_)
                self._touch(key, ttl)
            for key, (value, ttl) in snapshot.counters.items():
                self._ints[key] = value
                self._touch(key, ttl)
            for key, flag_ttl in snapshot.flags.items():
                self._set_flag(key, flag_ttl)
            self._set_flag(snapshot.epoch_key, None)

    def step_up(
        self,
        counter_key: str,
        counter_ttl_seconds: int,
        limit: int,
        flag_key: str,
        once_key: str,
        once_ttl_seconds: int,
    ) -> tuple[int, bool]:
        """See :meth:`CounterStore.step_up`."""
        with self._lock:
            self._now = self._clock()
            count = self._incr(counter_key, counter_ttl_seconds)
            if count >= limit:
                self._set_flag(flag_key, None)
                return count, False
            return count, self._set_once(once_key, once_ttl_seconds)

    def unbilled(self, plan: UnbilledPlan) -> UnbilledCounts:
        """See :meth:`CounterStore.unbilled`."""
        keys = tuple(f"{kind}:{scope}" for scope in plan.scopes for kind in ("ubh", "ubp", "ubo"))
        with self._lock:
            self._now = self._clock()
            if plan.epoch_key is not None and not self._has_flag(plan.epoch_key):
                return UnbilledCounts((), (), False, empty=True)
            pending, overdue, reserved = self._unbilled(
                plan.bill_key,
                keys,
                plan.now_ms,
                plan.grace_ms,
                plan.window_ms,
                plan.slack_ms,
                plan.overdue_limit,
                plan.pending_limit,
                plan.token if plan.reserve else None,
                plan.hold_ms,
                plan.ttl_seconds,
            )
            return UnbilledCounts(pending, overdue, reserved)

    def unbilled_invoice(
        self,
        structure_scope: str,
        bill_key: str,
        by_key: str,
        subject: str,
        care_ms: int,
        slack_ms: int,
        ttl_seconds: int,
    ) -> None:
        """See :meth:`CounterStore.unbilled_invoice`."""
        with self._lock:
            self._now = self._clock()
            self._fresh(bill_key)
            bill = self._zsets.setdefault(bill_key, {})
            bill[subject] = max(bill.get(subject, care_ms), care_ms)
            self._touch(bill_key, ttl_seconds)
            self._fresh(by_key)
            scopes = {structure_scope, *answered_by(self._hashes.get(by_key, {}).get(subject))}
            for scope in scopes:
                for key in (f"ubp:{scope}", f"ubo:{scope}"):
                    self._fresh(key)
                    members = self._zsets.get(key, {})
                    answered = members.get(subject)
                    if answered is not None and answered <= care_ms + slack_ms:
                        del members[subject]

    def claim(self, once_keys: Sequence[str], ttl_seconds: int, flag_key: str | None) -> list[bool]:
        """See :meth:`CounterStore.claim`."""
        with self._lock:
            self._now = self._clock()
            first = [self._set_once(k, ttl_seconds) for k in once_keys]
            if flag_key is not None:
                self._set_flag(flag_key, None)
            return first

    def hit_windows(
        self, keys: Sequence[str], limits: Sequence[int], now_ms: int, window_ms: int, member: str
    ) -> int:
        """See :meth:`CounterStore.hit_windows`."""
        with self._lock:
            self._now = self._clock()
            return self._hit_windows(keys, limits, now_ms, window_ms, member)

    def push_recent(self, key: str, value: str, keep: int, ttl_seconds: int) -> list[str]:
        """See :meth:`CounterStore.push_recent`."""
        with self._lock:
            self._now = self._clock()
            return self._push_recent(key, value, keep, ttl_seconds)

    def recent(self, key: str) -> list[str]:
        """See :meth:`CounterStore.recent`."""
        with self._lock:
            self._now = self._clock()
            return self._recent(key)

    def add_distinct(self, key: str, member: str, ttl_seconds: int) -> int:
        """See :meth:`CounterStore.add_distinct`."""
        with self._lock:
            self._now = self._clock()
            return self._add_distinct(key, member, ttl_seconds)

    def count_distinct(self, key: str) -> int:
        """See :meth:`CounterStore.count_distinct`."""
        with self._lock:
            self._now = self._clock()
            return self._count_distinct(key)

    def count_common(self, key_a: str, key_b: str) -> int:
        """See :meth:`CounterStore.count_common`."""
        with self._lock:
            self._now = self._clock()
            return self._count_common(key_a, key_b)

    def release(self, holds_key: str, token: str) -> None:
        """See :meth:`CounterStore.release`."""
        with self._lock:
            self._now = self._clock()
            self._release(holds_key, token)

    def set_flag(self, key: str, ttl_seconds: int | None) -> None:
        """See :meth:`CounterStore.set_flag`."""
        with self._lock:
            self._now = self._clock()
            self._set_flag(key, ttl_seconds)

    def has_flag(self, key: str) -> bool:
        """See :meth:`CounterStore.has_flag`."""
        with self._lock:
            self._now = self._clock()
            return self._has_flag(key)

    def set_once(self, key: str, ttl_seconds: int) -> bool:
        """See :meth:`CounterStore.set_once`."""
        with self._lock:
            self._now = self._clock()
            return self._set_once(key, ttl_seconds)

    def take_lock(self, key: str, owner: str, ttl_seconds: int) -> bool:
        """See :meth:`CounterStore.take_lock`."""
        with self._lock:
            self._now = self._clock()
            if not self._set_once(key, ttl_seconds):
                return False
            self._owners[key] = owner
            return True

    def renew_lock(self, key: str, owner: str, ttl_seconds: int) -> bool:
        """See :meth:`CounterStore.renew_lock`."""
        with self._lock:
            self._now = self._clock()
            self._fresh(key)
            if self._owners.get(key) != owner:
                return False
            self._touch(key, ttl_seconds)
            return True

    def drop_lock(self, key: str, owner: str) -> bool:
        """See :meth:`CounterStore.drop_lock`."""
        with self._lock:
            self._now = self._clock()
            self._fresh(key)
            if self._owners.get(key) != owner:
                return False
            self._drop(key)
            return True

    def incr(self, key: str, ttl_seconds: int) -> int:
        """See :meth:`CounterStore.incr`."""
        with self._lock:
            self._now = self._clock()
            return self._incr(key, ttl_seconds)

    def hash_set(self, key: str, name: str, value: str, ttl_seconds: int) -> None:
        """See :meth:`CounterStore.hash_set`."""
        with self._lock:
            self._now = self._clock()
            self._hash_set(key, name, value, ttl_seconds)

    def hash_all(self, key: str) -> dict[str, str]:
        """See :meth:`CounterStore.hash_all`."""
        with self._lock:
            self._now = self._clock()
            self._fresh(key)
            return dict(self._hashes.get(key, {}))

    def delete(self, *keys: str) -> None:
        """See :meth:`CounterStore.delete`."""
        with self._lock:
            self._now = self._clock()
            for key in keys:
                self._drop(key)
