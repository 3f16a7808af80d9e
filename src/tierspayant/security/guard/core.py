"""The guard itself: admission before a lookup, observation after it (see the package)."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, NamedTuple
from zoneinfo import ZoneInfo

import structlog

from tierspayant import metrics
from tierspayant.domain.codes import GuardCode
from tierspayant.security.guard.counters import (
    AdmitReading,
    CounterStore,
    LookupKeys,
    StoreLimits,
    UnbilledPlan,
)
from tierspayant.security.guard.judging import (
    _ALLOWED,
    _CALLER_MESSAGES,
    _GATED,
    _HIT,
    _INVOICED,
    _MISREAD,
    _MISS,
    _OBSERVED,
    _PACE,
    _PENDING,
    _RATES,
    _RESERVATIONS,
    _STEP_UP_MESSAGE,
    _STEP_UPS,
    _STEP_UPS_WINDOW,
    _UNBILLED_P,
    _UNBILLED_S,
    _limit_of,
    _scope_of,
    _value,
    _volume,
    median_interval_ms,
)
from tierspayant.security.guard.policy import (
    GuardPolicy,
    HistoryProvider,
    InvoicedHistory,
    calibrate,
)
from tierspayant.security.guard.thresholds import (
    Action,
    Grade,
    Resolved,
    Threshold,
    enough,
    grade,
    graded,
    resolve,
    signal_figures,
)
from tierspayant.security.guard.values import (
    DAY_SECONDS,
    UNAVAILABLE,
    ActorKind,
    Admission,
    Caps,
    CounterStoreUnavailable,
    DailyFigures,
    GuardUnavailable,
    Level,
    LookupContext,
    LookupOutcome,
    OutcomeKind,
    ProofFault,
    Signal,
    Verdict,
)

if TYPE_CHECKING:
    from prometheus_client import Counter as MetricCounter

log = structlog.get_logger("tierspayant.guard")

_RATE_WINDOW_MS = 60_000


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


_ONCE_TTL_SECONDS = 2 * DAY_SECONDS


def _once_key(code: str, scope: str, bucket: str) -> str:
    """The flag that lets a signal through once per (code, scope, bucket)."""
    return f"once:{code}:{scope}:{bucket}"


class _Day(NamedTuple):
    """One local day: its bounds in ms since the epoch (end excluded), the date, its ISO
    form, and the ISO form of the day whose invoices it judges."""

    start_ms: int
    end_ms: int
    day: date
    iso: str
    judged: str


class Guard:
    """Admission and observation of rights-check lookups (see the module docstring)."""

    def __init__(
        self,
        counters: CounterStore,
        policy: GuardPolicy | None = None,
        history: HistoryProvider | None = None,
    ) -> None:
        self.counters = counters
        self.policy = policy or GuardPolicy()
        self.history = history
        self._zone = ZoneInfo(self.policy.timezone)
        self._caps: dict[tuple[str, str, date], Caps] = {}
        self._caps_lock = threading.Lock()
        # The limits the counter store applies itself, resolved once.
        self._rate_limits = tuple(_limit_of(r, self.policy) for r in _RATES)
        self._step_up_limit = _limit_of(_STEP_UPS, self.policy)
        self._invoice_min_looked = _limit_of(_INVOICED, self.policy)
        p = self.policy
        self._limits = StoreLimits(
            window_limits=self._rate_limits,
            window_ms=_RATE_WINDOW_MS,
            pace_keep=p.human_speed_lookups,
            pace_ttl=3600,
            grace_ms=p.invoice_grace_days * DAY_SECONDS * 1000,
            unbilled_window_ms=p.unbilled_window_days * DAY_SECONDS * 1000,
            slack_ms=DAY_SECONDS * 1000,
            overdue_limit=p.unbilled_hard,
            hold_ms=p.no_proof_hold_seconds * 1000,
            unbilled_ttl=self._unbilled_ttl,
            day_ttl=p.day_set_ttl_seconds,
            outcomes_keep=p.miss_window,
            outcomes_ttl=DAY_SECONDS,
            dates_free=p.care_dates_free,
            dates_ttl=2 * DAY_SECONDS,
            check_ttl=2 * DAY_SECONDS,
            min_looked=self._invoice_min_looked,
        )
        # The current local day (replaced whole when a lookup falls outside it), the
        # keys of each (principal, structure, category, day), and the decision counters'
        # children: nothing of it is formatted again per request.
        self._day: _Day = _Day(0, 0, date.min, "", "")
        self._keys: dict[tuple[str, str, str, str], LookupKeys] = {}
        self._decisions: dict[tuple[str, str], MetricCounter] = {}
        # Each row's thresholds as numbers, per structure's caps (see ``_grade``).
        self._resolved: dict[tuple[int, Caps | None], Resolved] = {}

    # -- helpers ----------------------------------------------------------------------

    def day_of(self, at: datetime) -> date:
        """The local (French) calendar day of an instant: daily quotas reset at midnight."""
        return at.astimezone(self._zone).date()

    def _today(self, at: datetime, now_ms: int) -> _Day:
        """The local day of ``at`` (``now_ms``), from the cached bounds when it is today."""
        current = self._day
        if current.start_ms <= now_ms < current.end_ms:
            return current
        day = self.day_of(at)
        start = _ms(datetime.combine(day, time.min, self._zone))
        end = _ms(datetime.combine(day + timedelta(days=1), time.min, self._zone))
        judged = (day - timedelta(days=self.policy.invoice_lag_days)).isoformat()
        current = _Day(start, end, day, day.isoformat(), judged)
        self._day = current
        return current

    def _lookup_keys(self, ctx: LookupContext, today: _Day) -> LookupKeys:
        """The keys of the principal's lookups for its structure today (built once)."""
        cache_key = (ctx.principal_id, ctx.structure, ctx.category, today.iso)
        keys = self._keys.get(cache_key)
        if keys is not None:
            return keys
        principal, structure, day = ctx.principal_id, ctx.structure, today.iso
        scopes = self._unbilled_scopes(ctx)
        once: list[tuple[str, ...]] = []
        for rows in _OBSERVED:
            names: list[str] = []
            for row in rows:
                scope = _scope_of(row.scope, ctx)
                if row.soft_code:
                    names.append(_once_key(row.soft_code, scope, day))
                if row.watch_code:
                    names.append(_once_key(row.watch_code, scope, day))
            once.append(tuple(names))
        keys = LookupKeys.named(
            principal, structure, day, today.judged, scopes, ctx.category, tuple(once)
        )
        if len(self._keys) > 100_000:
            self._keys.clear()
        self._keys[cache_key] = keys
        return keys

    def _grade(self, row: Threshold, value: int, volume: int, caps: Caps | None = None) -> Grade:
        """:func:`grade` under this guard's policy, the row resolved once per caps."""
        key = (id(row), caps)
        resolved = self._resolved.get(key)
        if resolved is None:
            if len(self._resolved) > 50_000:
                self._resolved.clear()
            resolved = self._resolved[key] = resolve(row, self.policy, caps)
        return graded(resolved, value, volume)

    def _count_decision(self, admission: Admission) -> None:
        label = (admission.verdict.value, admission.code)
        child = self._decisions.get(label)
        if child is None:
            child = self._decisions[label] = metrics.GUARD_DECISIONS.labels(*label)
        child.inc()

    def caps(self, structure: str, category: str, day: date) -> Caps:
        """The structure's cap for ``day``, calibrated on history; cached per day."""
        key = (structure, category, day)
        with self._caps_lock:
            cached = self._caps.get(key)
        if cached is not None:
            return cached
        history: Sequence[int] = ()
        invoiced: Sequence[int] = ()
        if self.history is not None:
            days = self.policy.calibration_days
            try:
                history = self.history.daily_distinct(structure, day, days)
                if isinstance(self.history, InvoicedHistory):
                    invoiced = self.history.daily_invoiced(structure, day, days)
            except Exception as exc:  # noqa: BLE001 - any history failure: profession default
                # The default is never above a calibrated cap, so failing here fails safe.
                log.warning("guard.history_unavailable", error=type(exc).__name__)
                return calibrate(self.policy, category, ())
        caps = calibrate(self.policy, category, history, invoiced)
        with self._caps_lock:
            if len(self._caps) > 50_000:
                self._caps.clear()
            self._caps[key] = caps
        return caps

    def _signal(
        self, ctx: LookupContext, level: Level, code: str, message: str, **figures: int | str
    ) -> Signal:
        return Signal(level, code, message, ctx.at, ctx.principal_id, ctx.structure, figures)

    def _once(self, signal: Signal, scope: str, bucket: str) -> list[Signal]:
        """The signal the first time for (code, scope, bucket), else nothing."""
        if self.counters.set_once(_once_key(signal.code, scope, bucket), _ONCE_TTL_SECONDS):
            return [signal]
        return []

    def _deny(self, code: str, *signals: Signal, retry_after: int = 0) -> Admission:
        return Admission(Verdict.DENY, code, _CALLER_MESSAGES[code], retry_after, signals)

    # -- suspension -------------------------------------------------------------------

    def suspended(self, principal_id: str) -> bool:
        """Whether the principal is marked suspended in the counters (fast path).

        Raises :class:`GuardUnavailable` if the store cannot say: treat it as suspended.
        """
        try:
            return self.counters.has_flag(f"susp:{principal_id}")
        except CounterStoreUnavailable as exc:
            raise GuardUnavailable() from exc

    def mark_suspended(self, principal_id: str) -> None:
        """Refuse every further lookup of the principal until :meth:`clear_suspension`."""
        try:
            self.counters.set_flag(f"susp:{principal_id}", None)
        except CounterStoreUnavailable as exc:
            raise GuardUnavailable() from exc

    def clear_suspension(self, principal_id: str) -> None:
        """Lift the mark and forget the principal's recent pace and misses (reinstatement)."""
        keys = (
            f"susp:{principal_id}",
            f"speed:{principal_id}",
            f"out:{principal_id}",
            f"stepupw:{principal_id}",
            f"ubp:p:{principal_id}",
            f"ubo:p:{principal_id}",
        )
        try:
            self.counters.delete(*keys)
        except CounterStoreUnavailable as exc:
            raise GuardUnavailable() from exc

    # -- before the lookup ------------------------------------------------------------

    def admit(self, ctx: LookupContext) -> Admission:
        """Decide whether this lookup may run: ALLOW, STEP_UP (soft limit) or DENY.

        An ALLOW without card proof holds one slot of the structure's no-proof quota until
        :meth:`observe` (or :meth:`abandon`) is called with the same context.
        """
        try:
            admission = self._admit(ctx)
        except CounterStoreUnavailable as exc:
            log.error("guard.store_unavailable", during="admit", error=exc.message)
            admission = self._deny(UNAVAILABLE, retry_after=30)
        self._count_decision(admission)
        return admission

    def _admit(self, ctx: LookupContext) -> Admission:
        # One bundled store operation reads and counts what every admission needs and,
        # without card proof, brings the never-invoiced windows up to date and holds the
        # lookup's slots (one round trip to Redis). The slots are held whatever the
        # decision: one that does not allow the lookup gives them back (one more), as
        # does a decision that needs a write (a signal to deduplicate, a suspension, a
        # step-up refusal).
        now_ms = _ms(ctx.at)
        today = self._today(ctx.at, now_ms)
        keys = self._lookup_keys(ctx, today)
        no_proof = not ctx.with_proof
        caps = self.caps(ctx.structure, ctx.category, today.day) if no_proof else None
        reading = self.counters.admit_lookup(
            keys,
            self._limits,
            now_ms,
            ctx.lookup_id,
            ctx.kind is ActorKind.HUMAN,
            no_proof,
            caps.pending if caps is not None else 0,
            caps.no_proof_hard if caps is not None else 0,
        )
        admission = self._judge(ctx, reading, today, caps)
        if reading.held and admission.verdict is not Verdict.ALLOW:
            self.counters.release_lookup(keys, ctx.lookup_id)
        return admission

    def _judge(
        self, ctx: LookupContext, counts: AdmitReading, today: _Day, caps: Caps | None
    ) -> Admission:
        """The admission's decision on what the store read (see :meth:`_admit`)."""
        p = self.policy
        if counts.suspended:
            return self._deny(GuardCode.SUSPENDED)
        if counts.full >= 0:
            # The store judged the rate rows, in the table's order, against their limits.
            rate = _RATES[counts.full]
            scope = _scope_of(rate.scope, ctx)
            signal = self._raise(ctx, rate, Grade.HARD, 0, 0, None, scope=scope)
            hour = ctx.at.strftime("%Y%m%d%H")
            return self._deny(rate.code, *self._once(signal, scope, hour), retry_after=60)

        # Only portal users' lookups are paced: software's pace list is empty, below any
        # minimum volume.
        stamps = counts.pace
        if enough(_PACE, len(stamps), p):
            median = median_interval_ms([int(s) for s in stamps])
            if grade(_PACE, median, len(stamps), p) is Grade.HARD:
                signal = self._raise(ctx, _PACE, Grade.HARD, median, len(stamps), None)
                self.counters.set_flag(f"susp:{ctx.principal_id}", None)
                return self._deny(_PACE.code, signal)

        # Rows judged at observation: their hard level refuses, their soft level asks for
        # step-up (the first in the table's order), unless the caller stepped up.
        soft: Threshold | None = None
        soft_value = soft_volume = 0
        for row in _GATED:
            if row.no_proof_only and ctx.with_proof:
                continue
            if row.uses_caps and caps is None:
                caps = self.caps(ctx.structure, ctx.category, today.day)
            value, volume = _value(row.counter, counts), _volume(row.counter, counts)
            level = self._grade(row, value, volume, caps)
            if level is Grade.HARD:
                return self._deny(row.code)
            if level is Grade.SOFT and soft is None:
                soft, soft_value, soft_volume = row, value, volume
        if not ctx.with_proof:
            # Scrapers never bill: sliding windows, judged before every lookup without
            # proof; their hard levels are never waived by a step-up.
            assert caps is not None
            readings = (
                (_UNBILLED_P, counts.overdue[0]),
                (_UNBILLED_S, counts.overdue[1]),
                (_PENDING, max(counts.pending)),
            )
            for row, value in readings:
                level = self._grade(row, value, 0, caps)
                if level is Grade.HARD:
                    signal = self._raise(ctx, row, Grade.HARD, value, 0, caps)
                    if row.action is Action.SUSPEND:
                        self.counters.set_flag(f"susp:{ctx.principal_id}", None)
                        return self._deny(row.code, signal)
                    once = self._once(signal, _scope_of(row.scope, ctx), today.iso)
                    return self._deny(row.code, *once, retry_after=3600)
                if level is Grade.SOFT and soft is None:
                    soft, soft_value, soft_volume = row, value, 0
        # Soft limits are waived by the caller's strong session or a recorded step-up.
        if soft is not None and not (ctx.stepped_up or _ms(ctx.at) < counts.step_up_until):
            signal = self._raise(ctx, soft, Grade.SOFT, soft_value, soft_volume, caps)
            return self._step_up(ctx, signal, _scope_of(soft.scope, ctx), today.day)
        if not ctx.with_proof and not counts.held:
            # The remaining slots of the daily quota are held by lookups still running.
            return self._deny(GuardCode.NO_PROOF_QUOTA, retry_after=p.no_proof_hold_seconds)
        return _ALLOWED

    # -- people answered without proof and never invoiced ----------------------------

    def _unbilled_scopes(self, ctx: LookupContext) -> tuple[str, str]:
        return (f"p:{ctx.principal_id}", f"s:{ctx.structure}")

    @property
    def _unbilled_ttl(self) -> int:
        p = self.policy
        return (p.unbilled_window_days + p.invoice_grace_days + 1) * DAY_SECONDS

    def _unbilled_plan(self, ctx: LookupContext, caps: Caps) -> UnbilledPlan:
        p = self.policy
        return UnbilledPlan(
            scopes=self._unbilled_scopes(ctx),
            bill_key=f"ubb:{ctx.structure}",
            now_ms=_ms(ctx.at),
            grace_ms=p.invoice_grace_days * DAY_SECONDS * 1000,
            window_ms=p.unbilled_window_days * DAY_SECONDS * 1000,
            slack_ms=DAY_SECONDS * 1000,
            overdue_limit=p.unbilled_hard,
            pending_limit=caps.pending,
            token=ctx.lookup_id,
            hold_ms=p.no_proof_hold_seconds * 1000,
            ttl_seconds=self._unbilled_ttl,
        )

    def unbilled(self, ctx: LookupContext) -> tuple[int, int, int]:
        """(people awaiting an invoice, overdue for the principal, overdue for the
        structure) as the next lookup without proof would see them; holds nothing."""
        try:
            caps = self.caps(ctx.structure, ctx.category, self.day_of(ctx.at))
            plan = self._unbilled_plan(ctx, caps)
            counts = self.counters.unbilled(dataclasses.replace(plan, reserve=False))
        except CounterStoreUnavailable as exc:
            raise GuardUnavailable() from exc
        return max(counts.pending), counts.overdue[0], counts.overdue[1]

    # -- step-up ----------------------------------------------------------------------

    def record_step_up(self, principal_id: str, at: datetime) -> datetime | None:
        """A fresh strong authentication of the principal (TOTP re-entered, e-CPS/CPS)
        after the guard asked for one: soft limits are waived until the returned instant;
        hard limits never are. None when no step-up was asked (in the last day): a login
        is then only a login."""
        until = at + timedelta(seconds=self.policy.step_up_valid_seconds)
        try:
            # The step-ups asked and not yet satisfied (newest first): one in the last day
            # is what this login answers; satisfied, they were not ignored.
            asked = self.counters.recent(f"stepupw:{principal_id}")
            if not asked or int(asked[0]) <= _ms(at) - DAY_SECONDS * 1000:
                return None
            self.counters.delete(f"stepupw:{principal_id}")
            self.counters.hash_set(
                f"stepok:{principal_id}",
                "until",
                str(_ms(until)),
                self.policy.step_up_valid_seconds + 60,
            )
        except CounterStoreUnavailable as exc:
            raise GuardUnavailable() from exc
        return until

    def step_up_active(self, principal_id: str, at: datetime) -> bool:
        """Whether a step-up recorded by :meth:`record_step_up` still holds at ``at``."""
        until = self.counters.hash_all(f"stepok:{principal_id}").get("until")
        return until is not None and _ms(at) < int(until)

    def _step_up(self, ctx: LookupContext, soft: Signal, scope: str, day: date) -> Admission:
        """Ask for step-up; a caller who keeps ignoring it is a bot and gets suspended."""
        p = self.policy
        # Counted per local day: a caller who stops at the first step-up of each hour
        # must not be tolerated nine times an hour. At the limit the store marks the
        # principal suspended; below it, it deduplicates the soft signal: both in the same
        # operation as the count.
        refusals, first = self.counters.step_up(
            f"stepup:{ctx.principal_id}:{day}",
            2 * DAY_SECONDS,
            self._step_up_limit,
            f"susp:{ctx.principal_id}",
            _once_key(soft.code, scope, day.isoformat()),
            _ONCE_TTL_SECONDS,
        )
        # The same refusals over a sliding window: no day boundary resets them. Every
        # ignored step-up is in it, the one that trips the daily limit too (so that the
        # window rebuilt from the audit log after a restart is the live one).
        now_ms = _ms(ctx.at)
        window_ms = p.step_up_refusals_window_days * DAY_SECONDS * 1000
        stamps = self.counters.push_recent(
            f"stepupw:{ctx.principal_id}",
            str(now_ms),
            p.step_up_refusals_window_hard,
            p.step_up_refusals_window_days * DAY_SECONDS,
        )
        if self._grade(_STEP_UPS, refusals, 0) is Grade.HARD:
            hard = self._raise(ctx, _STEP_UPS, Grade.HARD, refusals, 0, None, after_soft=soft.code)
            return self._deny(_STEP_UPS.code, hard)
        recent = sum(1 for s in stamps if int(s) > now_ms - window_ms)
        if self._grade(_STEP_UPS_WINDOW, recent, 0) is Grade.HARD:
            hard = self._raise(
                ctx, _STEP_UPS_WINDOW, Grade.HARD, recent, 0, None, after_soft=soft.code
            )
            self.counters.set_flag(f"susp:{ctx.principal_id}", None)
            return self._deny(_STEP_UPS_WINDOW.code, hard)
        signals = (soft,) if first else ()
        return Admission(Verdict.STEP_UP, soft.code, _STEP_UP_MESSAGE, 0, signals)

    # -- engagements on amounts -------------------------------------------------------

    def day_start(self, at: datetime) -> datetime:
        """Midnight (local, French) of the day of ``at``: when daily counts start."""
        return datetime.combine(self.day_of(at), datetime.min.time(), self._zone)

    def judge_reservation(self, ctx: LookupContext, created: int) -> Admission:
        """A calculation would create an engagement on amounts; the structure created
        ``created`` since :meth:`day_start`. Hard: suspend at once and refuse; soft: ask
        for step-up (unless the caller stepped up), as at admission."""
        try:
            level = grade(_RESERVATIONS, created, 0, self.policy)
            if level is Grade.HARD:
                signal = self._raise(ctx, _RESERVATIONS, Grade.HARD, created, 0, None)
                self.counters.set_flag(f"susp:{ctx.principal_id}", None)
                return self._deny(_RESERVATIONS.code, signal)
            if level is Grade.SOFT and not ctx.stepped_up:
                signal = self._raise(ctx, _RESERVATIONS, Grade.SOFT, created, 0, None)
                scope = _scope_of(_RESERVATIONS.scope, ctx)
                return self._step_up(ctx, signal, scope, self.day_of(ctx.at))
        except CounterStoreUnavailable as exc:
            log.error("guard.store_unavailable", during="reservation", error=exc.message)
            return self._deny(UNAVAILABLE, retry_after=30)
        return Admission(Verdict.ALLOW, "guard.ok", "")

    def abandon(self, ctx: LookupContext) -> None:
        """The admitted lookup failed before an outcome: free its no-proof slots."""
        if ctx.with_proof:
            return
        try:
            self._release(ctx)
        except CounterStoreUnavailable:
            log.warning("guard.store_unavailable", during="abandon")  # the hold lapses

    def _release(self, ctx: LookupContext) -> None:
        """Give back the daily no-proof slot and the never-invoiced slots of ``ctx``."""
        now_ms = _ms(ctx.at)
        keys = self._lookup_keys(ctx, self._today(ctx.at, now_ms))
        self.counters.release_lookup(keys, ctx.lookup_id)

    # -- after the lookup -------------------------------------------------------------

    def observe(self, ctx: LookupContext, outcome: LookupOutcome) -> list[Signal]:
        """Count the outcome of an admitted lookup; return the signals it raises.

        A HARD signal also marks the principal suspended in the counters at once. Raises
        :class:`GuardUnavailable` if the counters fail (do not return the answer then),
        except for a canary, whose signal is returned whatever the store does.
        """
        if outcome.kind is OutcomeKind.CANARY:
            return [self._canary(ctx)]
        try:
            # A HARD signal marks the principal suspended inside ``_observe``.
            return self._observe(ctx, outcome)
        except CounterStoreUnavailable as exc:
            log.error("guard.store_unavailable", during="observe", error=exc.message)
            raise GuardUnavailable() from exc

    def _canary(self, ctx: LookupContext) -> Signal:
        metrics.CANARY_TOUCHES.labels("lookup").inc()
        signal = self._signal(
            ctx, Level.HARD, "guard.canary", "a canary beneficiary was looked up", canary=1
        )
        try:
            self.counters.set_flag(f"susp:{ctx.principal_id}", None)
            if not ctx.with_proof:
                self._release(ctx)
        except CounterStoreUnavailable:
            # The service still suspends the principal in the database from this signal.
            log.error("guard.store_unavailable", during="canary")
        return signal

    def _observe(self, ctx: LookupContext, outcome: LookupOutcome) -> list[Signal]:
        # One bundled store operation counts the outcome (the care date, the day's sets,
        # the never-invoiced windows, the holds given back) and reads what the decisions
        # need (one round trip to Redis); a new signal to deduplicate or a suspension to
        # mark costs one more.
        now_ms = _ms(ctx.at)
        today = self._today(ctx.at, now_ms)
        keys = self._lookup_keys(ctx, today)
        no_proof = not ctx.with_proof
        hit = outcome.kind is OutcomeKind.HIT
        # The rows this outcome may move, and the once-keys their soft and watch signals
        # may need: the store tells which are already set, so only a signal not yet raised
        # costs a write.
        index = 2 * hit + no_proof
        rows = _OBSERVED[index]
        once_keys = keys.once[index]
        # Beyond the first dates asked for one person in a day, each date is a further
        # person (the store counts ``subject@date``): re-asking with many dates would map
        # the end of coverage for free. Only once the answer is counted may its slots go:
        # releasing them first would let a concurrent admission see neither the hold nor
        # the answer.
        counts = self.counters.observe_lookup(
            keys,
            self._limits,
            now_ms,
            ctx.lookup_id,
            no_proof,
            _HIT if hit else _MISS,
            outcome.subject if hit else None,
            ctx.care_date.isoformat() if ctx.care_date is not None else None,
            once_keys,
        )
        # In order: a signal, or a soft one raised only if its once-key is claimed now.
        raised: list[Signal | tuple[Signal, str]] = []
        caps: Caps | None = None
        for row in rows:
            if row.uses_caps and caps is None:
                caps = self.caps(ctx.structure, ctx.category, today.day)
            value, volume = _value(row.counter, counts), _volume(row.counter, counts)
            level = self._grade(row, value, volume, caps)
            if level is Grade.NONE:
                continue
            if level is Grade.HARD:
                raised.append(self._raise(ctx, row, level, value, volume, caps))
                continue
            key = _once_key(row.signal_code(level), _scope_of(row.scope, ctx), today.iso)
            if not counts.once_set[once_keys.index(key)]:
                raised.append((self._raise(ctx, row, level, value, volume, caps), key))
        if counts.checked:
            # Once a day per structure (the store's check key): no once-key needed.
            level = self._grade(_INVOICED, counts.invoiced, counts.looked)
            if level is not Grade.NONE:
                raised.append(
                    self._raise(
                        ctx,
                        _INVOICED,
                        level,
                        counts.invoiced,
                        counts.looked,
                        None,
                        day=today.judged,
                    )
                )
        if not raised:
            return []
        # Claim the once-keys, and mark the principal suspended on a HARD signal, at once.
        claims = [item[1] for item in raised if isinstance(item, tuple)]
        hard = any(isinstance(item, Signal) and item.hard for item in raised)
        flag_key = f"susp:{ctx.principal_id}" if hard else None
        first = self.counters.claim(claims, _ONCE_TTL_SECONDS, flag_key)
        claimed = dict(zip(claims, first, strict=True))
        signals: list[Signal] = []
        for item in raised:
            if isinstance(item, Signal):
                signals.append(item)
            elif claimed[item[1]]:
                signals.append(item[0])
        return signals

    def _raise(
        self,
        ctx: LookupContext,
        row: Threshold,
        level: Grade,
        value: int,
        volume: int,
        caps: Caps | None,
        **extra: int | str,
    ) -> Signal:
        """The signal of ``row`` at ``level``, with its figures (counts and thresholds)."""
        figures = signal_figures(row, level, value, volume, self.policy, caps)
        figures.update(extra)
        return Signal(
            row.level(level),
            row.signal_code(level),
            row.signal_message(level),
            ctx.at,
            ctx.principal_id,
            ctx.structure,
            figures,
        )

    def reject_proof(self, ctx: LookupContext, fault: ProofFault) -> list[Signal]:
        """A forged or revoked card proof was presented: refuse it and raise the signal.

        The caller refuses the lookup (403) and handles the signal like any other. The
        signal is returned even if the counter store is down.

        A misread (a scan that does not parse) raises nothing and suspends nobody: it is
        counted in the principal's outcome list, where the ``guard.misread_ratio`` row
        reads it with the misses at the next lookups without card proof.
        """
        if fault is ProofFault.MISREAD:
            try:
                self.counters.push_recent(
                    f"out:{ctx.principal_id}", _MISREAD, self.policy.miss_window, DAY_SECONDS
                )
            except CounterStoreUnavailable:
                log.error("guard.store_unavailable", during="misread")
            return []
        level = Level.HARD if fault is ProofFault.FORGED else self.policy.revoked_proof_level
        signal = self._signal(
            ctx, level, f"guard.proof_{fault.value}", f"card proof {fault.value}", proof=fault.value
        )
        if signal.hard:
            try:
                self.counters.set_flag(f"susp:{ctx.principal_id}", None)
            except CounterStoreUnavailable:
                log.error("guard.store_unavailable", during="reject_proof")
        return [signal]

    # -- invoices and history ---------------------------------------------------------

    def record_invoice(self, structure: str, subject: str, day: date) -> None:
        """An invoice for ``subject`` with care on ``day`` came from ``structure``."""
        care_ms = _ms(datetime.combine(day, datetime.min.time(), self._zone))
        try:
            self.counters.add_distinct(
                f"inv:{structure}:{day}", subject, self.policy.day_set_ttl_seconds
            )
            self.counters.unbilled_invoice(
                f"s:{structure}",
                f"ubb:{structure}",
                f"uby:{structure}",
                subject,
                care_ms,
                DAY_SECONDS * 1000,
                self._unbilled_ttl,
            )
        except CounterStoreUnavailable as exc:
            raise GuardUnavailable() from exc

    def day_summary(self, day: date) -> list[DailyFigures]:
        """Figures of every structure active on ``day`` (for the nightly ``guard_daily`` job)."""
        try:
            active = self.counters.hash_all(f"active:{day}")
            figures = []
            for structure, category in sorted(active.items()):
                seen_key, inv_key = f"seen:{structure}:{day}", f"inv:{structure}:{day}"
                figures.append(
                    DailyFigures(
                        structure,
                        category,
                        day,
                        self.counters.count_distinct(seen_key),
                        self.counters.count_common(seen_key, inv_key),
                    )
                )
            return figures
        except CounterStoreUnavailable as exc:
            raise GuardUnavailable() from exc
