"""Counters that survive their store: rebuilt from the audit log when it comes back empty.

Redis without persistence (CI, many deployments) restarts empty, and an in-process store
starts empty with its process; either way the day's quotas would start again from zero.
So the counters carry an *epoch*: a key written, last, by the rebuild. Every admission,
every observation and every count of the never-invoiced people checks it inside its own
atomic operation (the Lua script on Redis); without it they stop before counting anything,
and ``restoring_store.RestoringCounterStore`` has the counters rebuilt from what the audit
log recorded (:class:`LookupHistory`), then runs them again. One process rebuilds (a lock
key in the store holding its token, renewed while it reads); the others wait for the
epoch, or fail closed (``guard.unavailable``): no lookup ever runs uncounted.

What is rebuilt, from which events, is :func:`snapshot_of` (``docs/guard.md``, "Fail
closed"). The keys it writes are the guard's (``core``): a test replays random lookups
through the guard and checks that the rebuilt counters equal the live ones.
"""

from __future__ import annotations

import heapq
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Protocol
from zoneinfo import ZoneInfo

import structlog

from tierspayant.domain.codes import GuardCode
from tierspayant.security.guard.counters import (
    CounterSnapshot,
    CounterStore,
    answered_by,
    answered_by_add,
)
from tierspayant.security.guard.policy import GuardPolicy
from tierspayant.security.guard.thresholds import THRESHOLDS, Action, Scope
from tierspayant.security.guard.values import DAY_SECONDS, UNAVAILABLE, CounterStoreUnavailable

log = structlog.get_logger("tierspayant.guard")

EPOCH_KEY = "epoch"
LOCK_KEY = "restore:lock"

# Mirrors of the guard's own constants (``core``, ``judging``): the equivalence test keeps
# them equal.
_RATE_WINDOW_MS = 60_000
_RATE_TTL_SECONDS = _RATE_WINDOW_MS // 1000 + 60
_PACE_TTL_SECONDS = 3600
_CHECK_TTL_SECONDS = 2 * DAY_SECONDS
_HIT, _MISS, _MISREAD = "h", "m", "r"
# Refusals that stop an admission before it is counted in the rate windows and the pace.
_BEFORE_COUNTING = frozenset(
    {
        GuardCode.SUSPENDED,
        GuardCode.RATE,
        GuardCode.STRUCTURE_RATE,
        GuardCode.GLOBAL_RATE,
        UNAVAILABLE,
    }
)


# Signals deduplicated by a once-key (``core._once_key``): code -> (scope, per hour?).
# A refusal's hard signal goes out once a day (``Guard._judge``), unless a suspending row
# shares its code (``guard.unbilled``): its alert cannot tell which row raised it.
_SUSPENDING = frozenset(row.code for row in THRESHOLDS if row.action is Action.SUSPEND)
_ONCE_SIGNALS: dict[str, tuple[Scope, bool]] = {}
for _row in THRESHOLDS:
    for _code in (_row.soft_code, _row.watch_code):
        if _code:
            _ONCE_SIGNALS[_code] = (_row.scope, False)
    if _row.action is Action.THROTTLE:
        _ONCE_SIGNALS[_row.code] = (_row.scope, True)
    elif _row.action is Action.REFUSE and _row.code not in _SUSPENDING:
        _ONCE_SIGNALS[_row.code] = (_row.scope, False)
_ONCE_TTL_SECONDS = 2 * DAY_SECONDS


class PastKind(StrEnum):
    """What an audit event tells the guard."""

    HIT = "hit"  # an answered lookup that found its person
    MISS = "miss"  # an answered lookup that found nobody
    REFUSED = "refused"  # the guard refused an admission (``code`` says why)
    STEP_UP = "step_up"  # the guard asked for step-up instead of admitting
    MISREAD = "misread"  # a scanned code that did not parse
    REINSTATED = "reinstated"  # the principal was reinstated: its pace and misses forgotten
    ALERT = "alert"  # a signal was raised (``code``): soft and rate signals go out once
    INVOICE = "invoice"  # the structure invoiced ``subject`` for care on ``care``


@dataclass(frozen=True, slots=True)
class PastEvent:
    """One audit event as the guard counted it. ``structure`` as the guard names it
    (None when the log has none: structure-wide counters then skip the event)."""

    at: datetime
    kind: PastKind
    principal_id: str
    structure: str | None = None
    subject: str | None = None
    with_proof: bool = False
    human: bool = False
    code: str = ""
    # A refusal or step-up after the lookup was answered (a calculation's engagements
    # on amounts): its admission is the answer's own, already counted.
    after_answer: bool = False
    # The day of care an invoice (``INVOICE``) was for.
    care: date | None = None


class LookupHistory(Protocol):
    """What the audit log recorded, in the order it recorded it (the store implements it)."""

    def past_events(self, since: datetime) -> Iterable[PastEvent]:
        """The events from ``since`` on, in log order."""
        ...

    def suspended_principals(self) -> Iterable[str]:
        """Principals suspended in the database (they stay suspended in the counters)."""
        ...

    def past_alerts(self, since: datetime) -> Iterable[PastEvent]:
        """The signals recorded from ``since`` on (kind ``ALERT``)."""
        ...

    def unbilled_events(self, since: datetime) -> Iterable[PastEvent]:
        """From ``since`` on, in log order: the answers (``HIT``, ``MISS``), the refusals
        and step-ups, the reinstatements, and after the answer of each invoice received,
        its ``INVOICE`` (the structure, the subject, the day of care), streamed."""
        ...


@dataclass(frozen=True, slots=True)
class RestoreReport:
    """What a rebuild read and wrote, and how long it took."""

    events: int
    keys: int
    suspended: int
    read_seconds: float
    write_seconds: float


def history_start(policy: GuardPolicy, now: datetime) -> datetime:
    """The first instant a rebuild reads: local midnight ``invoice_lag_days`` back (the
    day the invoice ratio judges), or the last hour and day if earlier."""
    zone = ZoneInfo(policy.timezone)
    first_day = now.astimezone(zone).date() - timedelta(days=policy.invoice_lag_days)
    midnight = datetime.combine(first_day, datetime.min.time(), zone)
    return min(midnight, now - timedelta(seconds=DAY_SECONDS))


def unbilled_start(policy: GuardPolicy, now: datetime) -> datetime:
    """The first instant the never-invoiced people are rebuilt from:
    ``unbilled_window_days`` back (an answer older than that counts for nothing), and one
    day more for the invoices that clear the window's first answers (care on or after the
    day before the answer)."""
    return now - timedelta(days=policy.unbilled_window_days + 1)


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _chained(stamps: Sequence[datetime], now: datetime, ttl_seconds: int) -> int:
    """How many of the newest items of a list whose every push refreshed a ``ttl_seconds``
    expiry are still there at ``now`` (``stamps`` newest first): the list lapsed at the
    first gap longer than its time to live."""
    last = now
    for index, at in enumerate(stamps):
        if (last - at).total_seconds() >= ttl_seconds:
            return index
        last = at
    return len(stamps)


def _once_key(event: PastEvent, zone: ZoneInfo) -> str | None:
    """The once-key a recorded signal claimed, if its code has one."""
    found = _ONCE_SIGNALS.get(event.code)
    if found is None:
        return None
    scope, hourly = found
    if scope is Scope.GLOBAL:
        who: str | None = "global"
    else:
        who = event.principal_id if scope is Scope.PRINCIPAL else event.structure
    if not who:
        return None
    if hourly:
        bucket = event.at.astimezone(UTC).strftime("%Y%m%d%H")
    else:
        bucket = event.at.astimezone(zone).date().isoformat()
    return f"once:{event.code}:{who}:{bucket}"


# Counters an empty restart does not rebuild (docs/guard.md, "After a restart"): the
# per-person care dates asked today (``cd:``, the audit events keep no care date for
# every route), the holds of the never-invoiced people (``ubh:``, they lapse), a satisfied
# step-up (``stepok:``: the person logs in strongly again). The tests compare every
# other key.
NOT_REBUILT = ("cd:", "ubh:", "stepok:")


class _Unbilled:
    """The never-invoiced people of every scope, replayed from the log as the store keeps
    them (``CounterStore.unbilled``, ``observe_lookup``, ``unbilled_invoice``, and
    ``Guard.clear_suspension``): per scope the pending and overdue people with the time
    of their answer, per structure the latest care invoiced per person and the principal
    scope that answered each person last. A scope is swept (pending people past the
    grace made overdue unless invoiced, overdue ones past the window dropped) where the
    live store sweeps it: at each admission without card proof that got past the rate
    windows; so each set holds what the store holds, its sweeps included.
    """

    def __init__(self, policy: GuardPolicy) -> None:
        self.grace_ms = policy.invoice_grace_days * DAY_SECONDS * 1000
        self.window_ms = policy.unbilled_window_days * DAY_SECONDS * 1000
        self.slack_ms = DAY_SECONDS * 1000
        self.zone = ZoneInfo(policy.timezone)
        self.pend: dict[str, dict[str, int]] = defaultdict(dict)
        self.over: dict[str, dict[str, int]] = defaultdict(dict)
        # Oldest first, beside each scope's pending and overdue people (stale entries,
        # whose person was since invoiced or moved, are skipped): a sweep costs the
        # people that change state, as in the in-process store.
        self.pend_heap: dict[str, list[tuple[int, str]]] = defaultdict(list)
        self.over_heap: dict[str, list[tuple[int, str]]] = defaultdict(list)
        self.bill: dict[str, dict[str, int]] = defaultdict(dict)
        self.by: dict[str, dict[str, str]] = defaultdict(dict)

    @staticmethod
    def scopes(event: PastEvent) -> tuple[str, ...]:
        p = f"p:{event.principal_id}"
        return (p,) if event.structure is None else (p, f"s:{event.structure}")

    def sweep(self, scopes: tuple[str, ...], structure: str | None, now_ms: int) -> None:
        bill = self.bill.get(structure, {}) if structure is not None else {}
        due, gone = now_ms - self.grace_ms, now_ms - self.window_ms
        for scope in scopes:
            pend, over = self.pend[scope], self.over[scope]
            pend_heap, over_heap = self.pend_heap[scope], self.over_heap[scope]
            while pend_heap and pend_heap[0][0] <= due:
                answered, subject = heapq.heappop(pend_heap)
                if pend.get(subject) != answered:
                    continue
                del pend[subject]
                if bill.get(subject, -1) < answered - self.slack_ms:
                    over[subject] = answered
                    heapq.heappush(over_heap, (answered, subject))
            while over_heap and over_heap[0][0] <= gone:
                answered, subject = heapq.heappop(over_heap)
                if over.get(subject) == answered:
                    del over[subject]

    def answer(self, event: PastEvent, at_ms: int) -> None:
        scopes = self.scopes(event)
        subject = event.subject
        assert subject is not None
        for scope in scopes:
            if subject not in self.pend[scope] and subject not in self.over[scope]:
                self.pend[scope][subject] = at_ms
                heapq.heappush(self.pend_heap[scope], (at_ms, subject))
        if event.structure is not None:
            by = self.by[event.structure]
            by[subject] = answered_by_add(by.get(subject), scopes[0])

    def invoice(self, structure: str, subject: str, care: date) -> None:
        care_ms = _ms(datetime.combine(care, datetime.min.time(), self.zone))
        bill = self.bill[structure]
        bill[subject] = max(bill.get(subject, care_ms), care_ms)
        own = f"s:{structure}"
        for scope in {own, *answered_by(self.by.get(structure, {}).get(subject))}:
            for people in (self.pend.get(scope), self.over.get(scope)):
                if people is None:
                    continue
                answered = people.get(subject)
                if answered is not None and answered <= care_ms + self.slack_ms:
                    del people[subject]

    def reinstate(self, principal: str) -> None:
        scope = f"p:{principal}"
        for table in (self.pend, self.over, self.pend_heap, self.over_heap):
            table.pop(scope, None)

    def replay(self, events: Iterable[PastEvent], now: datetime) -> int:
        """Replay ``events`` (log order) up to ``now``; return how many were read."""
        count = 0
        for event in events:
            count += 1
            if event.at > now:
                continue
            kind = event.kind
            if kind is PastKind.INVOICE:
                if event.structure is not None and event.subject and event.care is not None:
                    self.invoice(event.structure, event.subject, event.care)
                continue
            if kind is PastKind.REINSTATED:
                self.reinstate(event.principal_id)
                continue
            swept = kind in (PastKind.HIT, PastKind.MISS) or (
                kind in (PastKind.REFUSED, PastKind.STEP_UP)
                and event.code not in _BEFORE_COUNTING
                and not event.after_answer
            )
            if not swept or event.with_proof:
                continue
            at_ms = _ms(event.at)
            self.sweep(self.scopes(event), event.structure, at_ms)
            if kind is PastKind.HIT and event.subject is not None:
                self.answer(event, at_ms)
        return count

    def keys(
        self, ttl: int
    ) -> tuple[dict[str, tuple[dict[str, int], int]], dict[str, tuple[dict[str, str], int]]]:
        """The sorted sets (``ubp:``, ``ubo:``, ``ubb:``) and the hashes (``uby:``) to
        write, each with ``ttl``; empty ones left out, as the store has none."""
        scored: dict[str, tuple[dict[str, int], int]] = {}
        for prefix, table in (("ubp", self.pend), ("ubo", self.over), ("ubb", self.bill)):
            for name, people in table.items():
                if people:
                    scored[f"{prefix}:{name}"] = (dict(people), ttl)
        hashes = {f"uby:{s}": (dict(by), ttl) for s, by in self.by.items() if by}
        return scored, hashes


def snapshot_of(
    events: Iterable[PastEvent],
    suspended: Iterable[str],
    policy: GuardPolicy,
    now: datetime,
    epoch: str,
    unbilled: Iterable[PastEvent] = (),
) -> CounterSnapshot:
    """The counters the guard would hold at ``now`` after ``events`` (read from
    :func:`history_start` on), with every principal of ``suspended`` flagged, and the
    never-invoiced people after ``unbilled`` (read from :func:`unbilled_start` on).

    Rebuilt: per structure and day, the distinct people answered and those answered
    without card proof, the active structures and their daily invoice check; per
    principal, its last no-proof outcomes and misreads, its portal pace, its step-up
    requests of the local day and of the sliding window (pace, outcomes and window
    forgotten at a reinstatement, as the live path does); the rate windows of the last
    minute; the suspensions; the once-keys of the soft, watch, rate and refusal signals
    already raised (``ALERT`` events), so none goes out twice; per principal and per
    structure, the people answered without card proof awaiting an invoice or never
    invoiced, with the structure's invoices that clear them (``INVOICE`` events).
    """
    zone = ZoneInfo(policy.timezone)
    today = now.astimezone(zone).date()
    first_day = today - timedelta(days=policy.invoice_lag_days)
    day_ttl = policy.day_set_ttl_seconds
    minute_ago = now - timedelta(milliseconds=_RATE_WINDOW_MS)

    midnights = [
        (datetime.combine(first_day + timedelta(days=n), datetime.min.time(), zone), d)
        for n in range((today - first_day).days + 1)
        for d in (first_day + timedelta(days=n),)
    ]
    seen: dict[str, set[str]] = defaultdict(set)
    answered: dict[str, set[str]] = defaultdict(set)
    active: dict[date, dict[str, str]] = defaultdict(dict)
    outcomes: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    pace: dict[str, list[datetime]] = defaultdict(list)
    step_ups: dict[str, int] = defaultdict(int)
    step_up_stamps: dict[str, list[datetime]] = defaultdict(list)
    windows: dict[str, dict[str, int]] = defaultdict(dict)
    once: dict[str, int | None] = {}
    count = 0
    for event in events:
        count += 1
        if event.at > now:
            continue
        p = event.principal_id
        if event.kind is PastKind.ALERT:
            key = _once_key(event, zone)
            if key is not None:
                once[key] = _ONCE_TTL_SECONDS
            continue
        if event.kind is PastKind.REINSTATED:
            # As ``Guard.clear_suspension``: the step-ups ignored before it no longer
            # count in the sliding window (the day's count stays, as it does live).
            outcomes.pop(p, None)
            pace.pop(p, None)
            step_up_stamps.pop(p, None)
            continue
        if event.kind is PastKind.MISREAD:
            outcomes[p].append((event.at, _MISREAD))
            continue
        counted = event.kind in (PastKind.HIT, PastKind.MISS) or (
            event.kind in (PastKind.REFUSED, PastKind.STEP_UP)
            and event.code not in _BEFORE_COUNTING
            and not event.after_answer
        )
        if counted:
            if event.human:
                pace[p].append(event.at)
            if event.at > minute_ago:
                member, stamp = f"rebuilt:{count}", _ms(event.at)
                windows["rate:g"][member] = stamp
                windows[f"rate:p:{p}"][member] = stamp
                if event.structure is not None:
                    windows[f"rate:s:{event.structure}"][member] = stamp
        if event.kind is PastKind.STEP_UP or (
            event.kind is PastKind.REFUSED and event.code == GuardCode.STEP_UP_IGNORED
        ):
            # Counted per local day (core._step_up), and in the sliding window's list.
            if event.at.astimezone(zone).date() == today:
                step_ups[p] += 1
            step_up_stamps[p].append(event.at)
            continue
        if event.kind not in (PastKind.HIT, PastKind.MISS):
            continue
        if not event.with_proof:
            outcomes[p].append((event.at, _HIT if event.kind is PastKind.HIT else _MISS))
        if event.structure is None or event.at < midnights[0][0]:
            continue
        # The local day, from the midnights of the window (no time zone maths per event).
        day = next(d for start, d in reversed(midnights) if event.at >= start)
        active[day].setdefault(event.structure, "unknown")
        if event.kind is PastKind.HIT and event.subject is not None:
            seen[f"seen:{event.structure}:{day}"].add(event.subject)
            if not event.with_proof:
                answered[f"np:{event.structure}:{day}"].add(event.subject)

    sets = {key: (frozenset(members), day_ttl) for key, members in seen.items()}
    sets.update({key: (frozenset(members), day_ttl) for key, members in answered.items()})
    lists: dict[str, tuple[tuple[str, ...], int]] = {}
    for p, items in outcomes.items():
        newest = items[::-1][: policy.miss_window]
        kept = _chained([at for at, _ in newest], now, DAY_SECONDS)
        if kept:
            lists[f"out:{p}"] = (tuple(value for _, value in newest[:kept]), DAY_SECONDS)
    for p, stamps in pace.items():
        newest_stamps = stamps[::-1][: policy.human_speed_lookups]
        kept = _chained(newest_stamps, now, _PACE_TTL_SECONDS)
        if kept:
            values = tuple(str(_ms(at)) for at in newest_stamps[:kept])
            lists[f"speed:{p}"] = (values, _PACE_TTL_SECONDS)
    window_s = policy.step_up_refusals_window_days * DAY_SECONDS
    for p, stamps in step_up_stamps.items():
        recent = [at for at in stamps[::-1] if at > now - timedelta(seconds=window_s)]
        if recent:
            values = tuple(str(_ms(at)) for at in recent[: policy.step_up_refusals_window_hard])
            lists[f"stepupw:{p}"] = (values, window_s)
    flags: dict[str, int | None] = dict(once)
    flags.update({f"susp:{p}": None for p in suspended})
    for day, structures in active.items():
        for structure in structures:
            flags[f"invchk:{structure}:{day}"] = _CHECK_TTL_SECONDS
    people = _Unbilled(policy)
    people.replay(unbilled, now)
    ttl = (policy.unbilled_window_days + policy.invoice_grace_days + 1) * DAY_SECONDS
    scored, by = people.keys(ttl)
    hashes: dict[str, tuple[Mapping[str, str], int]] = dict(by)
    hashes.update({f"active:{day}": (fields, day_ttl) for day, fields in active.items()})
    return CounterSnapshot(
        epoch_key=EPOCH_KEY,
        epoch=epoch,
        sets=sets,
        windows={key: (scored, _RATE_TTL_SECONDS) for key, scored in windows.items()},
        lists=lists,
        hashes=hashes,
        scored=scored,
        counters={f"stepup:{p}:{today}": (n, 2 * DAY_SECONDS) for p, n in step_ups.items()},
        flags=flags,
    )


class _Counted:
    """An iterable of events that counts what was read from it."""

    def __init__(self, events: Iterable[PastEvent]) -> None:
        self.events = events
        self.count = 0

    def __iter__(self) -> Iterator[PastEvent]:
        for event in self.events:
            self.count += 1
            yield event


class _LockKeeper:
    """Keeps the rebuild's lock while the rebuild runs, however long (30 days of events
    at national scale take minutes, far past ``lock_seconds``): a thread gives it
    ``lock_seconds`` more every third of that, only while it holds this ``owner``
    (taken again if it lapsed and nobody took it meanwhile). Once another owner holds
    it, :attr:`lost` is set and the keeper stops: that process rebuilds, this one must
    not write. A process that dies stops renewing: its lock lapses within
    ``lock_seconds`` and another process rebuilds.
    """

    def __init__(self, store: CounterStore, owner: str, lock_seconds: int) -> None:
        self.store = store
        self.owner = owner
        self.lock_seconds = lock_seconds
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._keep, name="guard-restore-lock", daemon=True)

    def _keep(self) -> None:
        while not self._stop.wait(self.lock_seconds / 3):
            if not self.confirm():
                return

    def confirm(self) -> bool:
        """Renew the lock now; False once another owner holds it (then for good)."""
        if self.lost:
            return False
        try:
            kept = self.store.renew_lock(LOCK_KEY, self.owner, self.lock_seconds)
            kept = kept or self.store.take_lock(LOCK_KEY, self.owner, self.lock_seconds)
        except CounterStoreUnavailable:
            log.warning("guard.restore_lock_unrenewed")  # tried again at the next beat
            return True
        if not kept:
            self.lost = True
            log.warning("guard.restore_lock_lost")
        return kept

    def __enter__(self) -> _LockKeeper:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


class Restorer:
    """Rebuilds a store's counters from the audit log, once across every process.

    :meth:`ensure` returns when the store has its epoch: rebuilt here if this process
    takes the store's lock key, else by whoever holds it, waited for up to
    ``wait_seconds``; past that it raises :class:`CounterStoreUnavailable` (503). The
    lock holds this process's own token: it is renewed while the rebuild runs and
    deleted after it only if it still holds that token (:class:`_LockKeeper`).
    """

    def __init__(
        self,
        store: CounterStore,
        history: LookupHistory,
        policy: GuardPolicy,
        clock: Callable[[], datetime],
        *,
        wait_seconds: float = 10.0,
        lock_seconds: int = 120,
    ) -> None:
        self.store = store
        self.history = history
        self.policy = policy
        self.clock = clock
        self.wait_seconds = wait_seconds
        self.lock_seconds = lock_seconds
        self.last: RestoreReport | None = None
        self._local = threading.Lock()

    def ensure(self) -> None:
        """Make sure the counters are whole (see the class)."""
        deadline = time.monotonic() + self.wait_seconds
        # Threads of one process queue here, within the same deadline: one asks the
        # store, the others find it done (or give up when the first is still waiting).
        if not self._local.acquire(timeout=self.wait_seconds):
            raise CounterStoreUnavailable("counters being rebuilt")
        try:
            if self.store.has_flag(EPOCH_KEY):
                return
            owner = uuid.uuid4().hex
            if self.store.take_lock(LOCK_KEY, owner, self.lock_seconds):
                try:
                    if not self.store.has_flag(EPOCH_KEY):
                        self._rebuild_holding(owner)
                finally:
                    self.store.drop_lock(LOCK_KEY, owner)
                return
            while time.monotonic() < deadline:
                time.sleep(0.05)
                if self.store.has_flag(EPOCH_KEY):
                    return
        finally:
            self._local.release()
        raise CounterStoreUnavailable("counters being rebuilt")

    def _rebuild_holding(self, owner: str) -> None:
        """Rebuild under the lock ``owner`` took, kept while it runs; written only if
        still this process's to write: its lock, and nobody's epoch (a lapsed lock taken,
        used and dropped by another process meanwhile)."""
        with _LockKeeper(self.store, owner, self.lock_seconds) as keeper:
            try:
                self.rebuild(lambda: keeper.confirm() and not self.store.has_flag(EPOCH_KEY))
            except CounterStoreUnavailable:
                if not self.store.has_flag(EPOCH_KEY):
                    raise  # still being rebuilt elsewhere, or the store failed: closed

    def rebuild(self, still_ours: Callable[[], bool] = lambda: True) -> RestoreReport:
        """Read the audit log and write the counters it implies, with a new epoch; unless
        ``still_ours``, asked once all is read, says another process took the rebuild
        over (then :class:`CounterStoreUnavailable`: that process writes them)."""
        started = time.perf_counter()
        now = self.clock()
        since = history_start(self.policy, now)
        events = list(self.history.past_events(since))
        events += self.history.past_alerts(since)
        suspended = list(self.history.suspended_principals())
        epoch = f"{now.isoformat()}/{uuid.uuid4().hex[:8]}"
        # The 30 days of the never-invoiced people are streamed, never held in a list.
        unbilled = _Counted(self.history.unbilled_events(unbilled_start(self.policy, now)))
        snapshot = snapshot_of(events, suspended, self.policy, now, epoch, unbilled)
        read = time.perf_counter()
        if not still_ours():
            # Two writers of the same keys, and twice the load: the other one writes.
            log.warning("guard.counters_rebuilt_elsewhere", read_ms=round((read - started) * 1000))
            raise CounterStoreUnavailable("counters rebuilt by another process")
        self.store.restore(snapshot)
        written = time.perf_counter()
        keys = sum(
            len(part)
            for part in (
                snapshot.sets,
                snapshot.windows,
                snapshot.lists,
                snapshot.hashes,
                snapshot.counters,
                snapshot.flags,
                snapshot.scored,
            )
        )
        report = RestoreReport(
            len(events) + unbilled.count, keys, len(suspended), read - started, written - read
        )
        self.last = report
        log.warning(
            "guard.counters_rebuilt",
            events=report.events,
            keys=report.keys,
            suspended=report.suspended,
            read_ms=round(report.read_seconds * 1000),
            write_ms=round(report.write_seconds * 1000),
        )
        return report
