"""The guard's counters: what its bundled operations take and read, and the store protocol.
The in-process store (one machine), in ``memory_store``, and the Redis store, in
``redis_store``, implement it and agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

# The ``uby:<structure>`` hash: per person, the principal scopes of the structure that
# answered them without card proof (oldest first, each once, the latest
# ``ANSWERED_BY_KEEP``), joined by ``ANSWERED_BY_SEP``. An invoice of the structure clears
# the person from every one of them: with only the last one kept, a colleague who had
# answered the same person (a counter's rights check, then the invoice sent by the
# pharmacy's software account) kept them as never invoiced, on the way to a suspension.
ANSWERED_BY_SEP = "\n"
ANSWERED_BY_KEEP = 16


def answered_by(value: str | None) -> list[str]:
    """The principal scopes of a ``uby:`` value, oldest first."""
    return value.split(ANSWERED_BY_SEP) if value else []


def answered_by_add(value: str | None, scope: str) -> str:
    """The ``uby:`` value with ``scope`` as the latest to answer (once; the oldest
    dropped past ``ANSWERED_BY_KEEP``)."""
    scopes = [s for s in answered_by(value) if s != scope]
    scopes.append(scope)
    return ANSWERED_BY_SEP.join(scopes[-ANSWERED_BY_KEEP:])


@dataclass(frozen=True, slots=True)
class CounterSnapshot:
    """Counters rebuilt from the audit log, written at once by :meth:`CounterStore.restore`.

    Each mapping goes from a logical key to its value and its time to live (seconds;
    ``None``: no expiry). Sets and hashes are merged into what the key holds, windows and
    scored sets (the never-invoiced people and the invoices: member to time in ms, read
    oldest first) get their members added, lists and counters replace it (nothing writes
    them while the store has no epoch: every admission stops there). ``epoch`` is written
    last, as the flag ``epoch_key``: the mark that the counters are whole.
    """

    epoch_key: str
    epoch: str
    sets: Mapping[str, tuple[frozenset[str], int]] = field(default_factory=dict)
    windows: Mapping[str, tuple[Mapping[str, int], int]] = field(default_factory=dict)
    lists: Mapping[str, tuple[tuple[str, ...], int]] = field(default_factory=dict)
    hashes: Mapping[str, tuple[Mapping[str, str], int]] = field(default_factory=dict)
    counters: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    flags: Mapping[str, int | None] = field(default_factory=dict)
    scored: Mapping[str, tuple[Mapping[str, int], int]] = field(default_factory=dict)


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
    key written gets ``ttl_seconds``. With ``epoch_key``, stop first (nothing done,
    :attr:`UnbilledCounts.empty`) if that key is absent: the store came back empty.
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
    epoch_key: str | None = None


@dataclass(frozen=True, slots=True)
class UnbilledCounts:
    """Per scope of the plan, before the hold: pending people plus live holds, overdue
    people; and whether the hold was taken. ``empty``: it stopped at the missing epoch
    (nothing counted, nothing read)."""

    pending: tuple[int, ...]
    overdue: tuple[int, ...]
    reserved: bool
    empty: bool = False


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
        and of every principal scope ``by_key`` names for it (:func:`answered_by`), where
        answered no later than ``care_ms + slack_ms``."""
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

    def take_lock(self, key: str, owner: str, ttl_seconds: int) -> bool:
        """Set ``key`` to ``owner`` for ``ttl_seconds`` unless present; True if taken.

        A lock another process may hold: only its owner renews it (:meth:`renew_lock`) or
        drops it (:meth:`drop_lock`); :meth:`has_flag` sees it.
        """
        ...

    def renew_lock(self, key: str, owner: str, ttl_seconds: int) -> bool:
        """If ``key`` still holds ``owner``, give it ``ttl_seconds`` more from now; True
        if it did (atomically: never another owner's lock)."""
        ...

    def drop_lock(self, key: str, owner: str) -> bool:
        """Delete ``key`` if it still holds ``owner``; True if it did (atomically)."""
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
