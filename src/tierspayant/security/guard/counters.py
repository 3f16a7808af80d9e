"""The guard's counters: what its bundled operations take and read, the store protocol,
and the in-process store (one machine). The Redis store, in ``redis_store``, agrees with
both.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol


@dataclass(frozen=True, slots=True)
class CounterSnapshot:
    """Counters rebuilt from the audit log, written at once by :meth:`CounterStore.restore`.

    Each mapping goes from a logical key to its value and its time to live (seconds;
    ``None``: no expiry). Sets and hashes are merged into what the key holds, windows get
    their members added, lists and counters replace it (nothing writes them while the
    store has no epoch: every admission stops there). ``epoch`` is written last, as the
    flag ``epoch_key``: the mark that the counters are whole.
    """

    epoch_key: str
    epoch: str
    sets: Mapping[str, tuple[frozenset[str], int]] = field(default_factory=dict)
    windows: Mapping[str, tuple[Mapping[str, int], int]] = field(default_factory=dict)
    lists: Mapping[str, tuple[tuple[str, ...], int]] = field(default_factory=dict)
    hashes: Mapping[str, tuple[Mapping[str, str], int]] = field(default_factory=dict)
    counters: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    flags: Mapping[str, int | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UnbilledPlan:
    """The sliding-window bookkeeping of people answered without card proof and not
    invoiced, done by :meth:`CounterStore.unbilled` before a lookup without proof.

    For each scope in ``scopes`` (``p:<principal>``, ``s:<structure>``), atomically: drop
    lapsed holds of ``ubh:<scope>``; take the people of ``ubp:<scope>`` (pending: answered
    at the score, in ms) answered at or before ``now_ms - grace_ms``: drop those that
    ``bill_key`` shows invoiced for care on or after their answer minus ``slack_ms``,
    move the others to ``ubo:<scope>`` (overdue, same score); drop overdue people answered
    at or before ``now_ms - window_ms``. Then, if ``reserve`` and in every scope the
    overdue count is below ``overdue_limit`` and pending people plus holds below
    ``pending_limit``, hold ``token`` in every scope until ``now_ms + hold_ms``. Every
    key written gets ``ttl_seconds``.
    """

    scopes: tuple[str, ...]
    bill_key: str
    now_ms: int
    grace_ms: int
    window_ms: int
    slack_ms: int
    overdue_limit: int
    pending_limit: int
    token: str
    hold_ms: int
    ttl_seconds: int
    reserve: bool = True


@dataclass(frozen=True, slots=True)
class UnbilledCounts:
    """Per scope of the plan, before the hold: pending people plus live holds, overdue
    people; and whether the hold was taken."""

    pending: tuple[int, ...]
    overdue: tuple[int, ...]
    reserved: bool


class LookupKeys(NamedTuple):
    """The logical keys one principal's lookups for one structure touch on one day.

    Built once per (principal, structure, category, day) by the guard and reused by every
    lookup of that day (no key formatted per request). ``unbilled`` holds the
    (holds, pending, overdue) keys of each never-invoiced scope, principal first;
    ``scopes`` their names; ``dates`` the prefix of a person's care-date set (the
    person's pseudonym follows it); ``once`` the once-keys an observation may claim,
    indexed by ``2 * hit + without proof``.
    """

    flag: str
    windows: tuple[str, ...]
    pace: str
    seen: str
    outcomes: str
    answered: str
    holds: str
    step_up: str
    bill: str
    scopes: tuple[str, ...]
    unbilled: tuple[str, ...]
    by: str
    active: str
    check: str
    judged_seen: str
    judged_invoiced: str
    dates: str
    structure: str
    category: str
    once: tuple[tuple[str, ...], ...]

    @classmethod
    def named(
        cls,
        principal: str,
        structure: str,
        day: str,
        judged: str,
        scopes: tuple[str, ...],
        category: str,
        once: tuple[tuple[str, ...], ...] = (),
    ) -> LookupKeys:
        """The keys as the guard names them: ``day`` the local day, ``judged`` the day
        whose invoicing is judged today, ``scopes`` the never-invoiced scopes."""
        return cls(
            flag=f"susp:{principal}",
            windows=("rate:g", f"rate:p:{principal}", f"rate:s:{structure}"),
            pace=f"speed:{principal}",
            seen=f"seen:{structure}:{day}",
            outcomes=f"out:{principal}",
            answered=f"np:{structure}:{day}",
            holds=f"nphold:{structure}:{day}",
            step_up=f"stepok:{principal}",
            bill=f"ubb:{structure}",
            scopes=scopes,
            unbilled=tuple(f"{kind}:{scope}" for scope in scopes for kind in ("ubh", "ubp", "ubo")),
            by=f"uby:{structure}",
            active=f"active:{day}",
            check=f"invchk:{structure}:{day}",
            judged_seen=f"seen:{structure}:{judged}",
            judged_invoiced=f"inv:{structure}:{judged}",
            dates=f"cd:{structure}:{day}:",
            structure=structure,
            category=category,
            once=once,
        )


class StoreLimits(NamedTuple):
    """The figures of a policy the bundled lookup operations apply (built once per guard).

    Times in ms unless named ``_ttl`` (seconds). ``window_limits`` go with
    :attr:`LookupKeys.windows`.
    """

    window_limits: tuple[int, ...]
    window_ms: int
    pace_keep: int
    pace_ttl: int
    grace_ms: int
    unbilled_window_ms: int
    slack_ms: int
    overdue_limit: int
    hold_ms: int
    unbilled_ttl: int
    day_ttl: int
    outcomes_keep: int
    outcomes_ttl: int
    dates_free: int
    dates_ttl: int
    check_ttl: int
    min_looked: int


class AdmitReading(NamedTuple):
    """What :meth:`CounterStore.admit_lookup` did and read.

    ``empty``: it stopped at the missing epoch (nothing was done or read). ``suspended``:
    it stopped at the flag (nothing else was done or read). ``full``: the index of the
    first full window (nothing after it was done or read), or -1 when the lookup was
    counted. The rest is read only when it got that far. ``step_up_until``: the end (ms)
    of a recorded step-up, 0 if none. Without card proof: ``pending`` and ``overdue`` per
    never-invoiced scope, before the hold; ``held``: this lookup holds its never-invoiced
    slots and its daily no-proof slot (both or neither); ``quota_full``: the
    never-invoiced slots were free but the daily no-proof quota was not (so nothing is
    held).
    """

    empty: bool = False
    suspended: bool = False
    full: int = -1
    pace: tuple[str, ...] = ()
    seen: int = 0
    outcomes: tuple[str, ...] = ()
    answered: int = 0
    step_up_until: int = 0
    pending: tuple[int, ...] = ()
    overdue: tuple[int, ...] = ()
    held: bool = False
    quota_full: bool = False


class ObserveReading(NamedTuple):
    """What :meth:`CounterStore.observe_lookup` found (zeros for the steps it skipped).

    ``checked`` is True for the first check of the day (``check`` was set now);
    ``invoiced`` is counted only when ``looked`` reaches ``min_looked``; ``once_set`` has
    one entry per once key asked about. ``empty``: it stopped at the missing epoch.
    """

    outcomes: tuple[str, ...] = ()
    seen: int = 0
    answered: int = 0
    checked: bool = False
    looked: int = 0
    invoiced: int = 0
    once_set: tuple[bool, ...] = ()
    empty: bool = False


class CounterStore(Protocol):
    """Atomic counters the guard needs; Redis and in-process implementations agree.

    Keys are logical (``seen:<structure>:<day>``); the store adds its prefix. Every write
    refreshes the key's time to live, which only collects garbage: no decision depends on
    a key expiring, decisions read the timestamps stored in the data.

    :meth:`admit_lookup`, :meth:`observe_lookup`, :meth:`release_lookup`,
    :meth:`step_up` and :meth:`claim` bundle the simple operations a guard phase needs into
    one atomic operation (one round trip to Redis) with the same effects as the simple
    operations made one after the other (two steps of the lookups have no simple
    operation of their own: the daily no-proof hold and the person added to the
    never-invoiced people).
    """

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
        """The whole counter work of one admission, atomically (one round trip).

        In this order: stop if ``epoch_key`` is given and absent (the store came back
        empty and its counters are not rebuilt yet); stop if the flag ``keys.flag`` is set
        (the principal is suspended); count ``token`` at ``now_ms`` in the windows
        ``keys.windows`` as :meth:`hit_windows` does and stop if one is full; if ``pace``,
        push ``now_ms`` onto ``keys.pace`` as :meth:`push_recent` does; read the size of
        ``keys.seen`` and the recorded step-up's end (field ``until`` of hash
        ``keys.step_up``). Without card proof, then: read the list ``keys.outcomes`` and
        the size of ``keys.answered``; do what :meth:`unbilled` does on ``keys.scopes``
        (bill ``keys.bill``, limits ``overdue_limit`` and ``pending_limit``, holding
        ``token``); if those slots were held, drop the lapsed holds of ``keys.holds`` and,
        if the size of ``keys.answered`` plus the live holds is below ``quota_limit``,
        hold ``token`` there until ``now_ms + hold_ms`` (a slot of the daily no-proof
        quota), else give the never-invoiced slots back. The holds are taken whatever the
        guard decides from the readings: it gives them back with :meth:`release_lookup`
        when it does not allow the lookup.
        """
        ...

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
        """The whole counter work of one observed lookup, atomically (one round trip).

        In this order: stop if ``epoch_key`` is given and absent (nothing done); if
        ``subject`` and ``care_date``, add the date to the person's set (``keys.dates`` +
        subject): past ``dates_free`` dates the person counted is ``subject@date``; set
        field ``keys.structure`` of hash ``keys.active`` to ``keys.category``; without card
        proof, push ``outcome`` onto ``keys.outcomes`` (kept to ``outcomes_keep`` items);
        if ``subject`` is set (a hit), add it to ``keys.seen`` and, without proof, to
        ``keys.answered``; without proof, release the hold ``token`` of ``keys.holds``;
        set the once-flag ``keys.check`` and, the first time only, count
        ``keys.judged_seen`` and, if it holds at least ``min_looked`` members, its common
        members with ``keys.judged_invoiced``; tell which of ``once_keys`` are set. Last,
        without proof: release ``token``'s never-invoiced holds and, on a hit, add the
        person to the pending people of every scope where it is neither pending nor
        overdue (score ``now_ms``), and note in hash ``keys.by`` that the first scope
        answered it. The day's sets and the activity hash get ``day_ttl``, the
        never-invoiced people ``unbilled_ttl``.
        """
        ...

    def release_lookup(self, keys: LookupKeys, token: str) -> None:
        """Give back every hold of an admitted lookup (the daily no-proof slot and the
        never-invoiced slots), in one operation."""
        ...

    def restore(self, snapshot: CounterSnapshot) -> None:
        """Write a rebuilt snapshot and its epoch in one atomic operation (see
        :class:`CounterSnapshot`): a reader sees the counters without the epoch, or all
        of them with it."""
        ...

    def step_up(
        self,
        counter_key: str,
        counter_ttl_seconds: int,
        limit: int,
        flag_key: str,
        once_key: str,
        once_ttl_seconds: int,
    ) -> tuple[int, bool]:
        """Increment the counter; at ``limit`` or more set the flag (no expiry), below it
        set ``once_key`` unless present. Return the count and whether ``once_key`` was set
        by this call (always False at the limit)."""
        ...

    def claim(self, once_keys: Sequence[str], ttl_seconds: int, flag_key: str | None) -> list[bool]:
        """:meth:`set_once` on each key, then :meth:`set_flag` on ``flag_key`` (no expiry)
        if given; return the :meth:`set_once` results."""
        ...

    def unbilled(self, plan: UnbilledPlan) -> UnbilledCounts:
        """Bring the pending and overdue people of each scope up to date, count them, and
        hold a slot if allowed (see :class:`UnbilledPlan`)."""
        ...

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
        """Record an invoice (keep the latest care time per subject in ``bill_key``) and
        remove ``subject`` from the pending and overdue people of the structure's scope
        and of the scope ``by_key`` names, where answered no later than ``care_ms +
        slack_ms``."""
        ...

    def hit_windows(
        self, keys: Sequence[str], limits: Sequence[int], now_ms: int, window_ms: int, member: str
    ) -> int:
        """Count ``member`` in every sliding window if none is full, else count nothing.

        Return the index of the first full window, or -1 when the event was counted.
        """
        ...

    def push_recent(self, key: str, value: str, keep: int, ttl_seconds: int) -> list[str]:
        """Prepend ``value`` to a list capped at ``keep`` items; return it, newest first."""
        ...

    def recent(self, key: str) -> list[str]:
        """The list at ``key``, newest first (empty if absent)."""
        ...

    def add_distinct(self, key: str, member: str, ttl_seconds: int) -> int:
        """Add ``member`` to the set at ``key``; return the set's size."""
        ...

    def count_distinct(self, key: str) -> int:
        """Size of the set at ``key``."""
        ...

    def count_common(self, key_a: str, key_b: str) -> int:
        """Size of the intersection of two sets."""
        ...

    def release(self, holds_key: str, token: str) -> None:
        """Drop a hold (the lookup finished, either way)."""
        ...

    def set_flag(self, key: str, ttl_seconds: int | None) -> None:
        """Set a flag; ``None`` keeps it until deleted."""
        ...

    def has_flag(self, key: str) -> bool:
        """Whether the flag (or any key) exists."""
        ...

    def set_once(self, key: str, ttl_seconds: int) -> bool:
        """Set a flag unless present; True the first time only (deduplication)."""
        ...

    def incr(self, key: str, ttl_seconds: int) -> int:
        """Increment a counter and return its new value."""
        ...

    def hash_set(self, key: str, name: str, value: str, ttl_seconds: int) -> None:
        """Set one field of a hash."""
        ...

    def hash_all(self, key: str) -> dict[str, str]:
        """Every field of a hash."""
        ...

    def delete(self, *keys: str) -> None:
        """Remove keys (absent keys are ignored)."""
        ...


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
        self._deadlines: dict[str, float] = {}
        # The clock read once per operation, under the lock (times to live need no more).
        self._now = clock()

    # Every helper below runs with the lock held.
    def _drop(self, key: str) -> None:
        for table in (self._zsets, self._lists, self._sets, self._hashes, self._ints, self._heaps):
            table.pop(key, None)
        self._flags.discard(key)
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
            self._hash_set(by_key, subject, scopes[0], ttl_seconds)

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
            scopes = {structure_scope, self._hashes.get(by_key, {}).get(subject, structure_scope)}
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
