"""The exfiltration guard: volume limits that block a scraper holding a valid login.

The rights-check service asks :meth:`Guard.admit` before every lookup and reports the
outcome to :meth:`Guard.observe` after it. The guard counts per principal, per structure
(FINESS/SIRET) and globally, in a :class:`CounterStore` shared by every worker (Redis) or
kept in the process (one machine). It decides; it does not suspend accounts, write alerts
or answer HTTP: the service does that with the :class:`Signal` values it returns.

What it enforces (thresholds in :class:`GuardPolicy`, explained in ``docs/guard.md``):

- rate limits per principal, per structure and for the whole platform (circuit breaker);
- a daily cap of distinct beneficiaries per structure, calibrated on its profession and
  its own history; soft at 80 % (step-up), hard at the cap (suspension);
- lookups without card proof: a small daily quota of distinct beneficiaries *answered*,
  reserved at admission so that concurrent requests cannot overshoot it;
- the share of misses among lookups without proof (enumeration of guessed identifiers);
- the share of looked-up beneficiaries later invoiced (scrapers never bill);
- the pace of portal users (a person cannot type cards faster than every 2 s);
- canaries and forged or revoked card proofs: suspension at once.

When the counter store fails, the guard fails *closed*: :meth:`Guard.admit` denies with
``guard.unavailable`` and :meth:`Guard.observe` raises :class:`GuardUnavailable`, so an
outage of Redis never opens the door to an uncounted scrape; when it comes back empty,
:class:`RestoringCounterStore` rebuilds the counters from the audit log before any
lookup is counted again.

The package's modules import one another in one direction: ``values`` (what the guard
and its callers exchange) <- ``policy`` (thresholds' values, calibration) <- ``thresholds``
(the table of signals and :func:`~thresholds.grade`) and ``counters`` (store protocol,
bundled operations' keys and readings) <- ``redis_scripts`` (the Redis store's Lua) <-
``memory_store`` (the in-process store), ``redis_store``, ``judging`` (the table's views
and readings the guard judges, the callers' messages) and ``restore`` (counters rebuilt
from the audit log when their store comes back empty, once across processes) <- ``core``
(the :class:`Guard`) and ``restoring_store`` (the store that requires the rebuilt
counters). Import from the package: every public name is here.
"""

from tierspayant.security.guard.core import Guard
from tierspayant.security.guard.counters import (
    AdmitReading,
    CounterSnapshot,
    CounterStore,
    LookupKeys,
    ObserveReading,
    StoreLimits,
    UnbilledCounts,
    UnbilledPlan,
)
from tierspayant.security.guard.judging import median_interval_ms
from tierspayant.security.guard.memory_store import MemoryCounterStore
from tierspayant.security.guard.policy import (
    DEFAULT_DAILY_CAPS,
    GuardPolicy,
    HistoryProvider,
    calibrate,
    percentile_nearest_rank,
)
from tierspayant.security.guard.redis_store import RedisCounterStore
from tierspayant.security.guard.restore import (
    EPOCH_KEY,
    LookupHistory,
    PastEvent,
    PastKind,
    Restorer,
    RestoreReport,
    history_start,
    snapshot_of,
    unbilled_start,
)
from tierspayant.security.guard.restoring_store import RestoringCounterStore
from tierspayant.security.guard.values import (
    DAY_SECONDS,
    THROTTLE_CODES,
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
    context_for,
)

__all__ = [
    "DAY_SECONDS",
    "DEFAULT_DAILY_CAPS",
    "EPOCH_KEY",
    "THROTTLE_CODES",
    "UNAVAILABLE",
    "ActorKind",
    "Admission",
    "AdmitReading",
    "Caps",
    "CounterSnapshot",
    "CounterStore",
    "CounterStoreUnavailable",
    "DailyFigures",
    "Guard",
    "GuardPolicy",
    "GuardUnavailable",
    "HistoryProvider",
    "Level",
    "LookupContext",
    "LookupHistory",
    "LookupKeys",
    "LookupOutcome",
    "MemoryCounterStore",
    "ObserveReading",
    "OutcomeKind",
    "PastEvent",
    "PastKind",
    "ProofFault",
    "RedisCounterStore",
    "RestoreReport",
    "Restorer",
    "RestoringCounterStore",
    "Signal",
    "StoreLimits",
    "UnbilledCounts",
    "UnbilledPlan",
    "Verdict",
    "calibrate",
    "context_for",
    "history_start",
    "median_interval_ms",
    "percentile_nearest_rank",
    "snapshot_of",
    "unbilled_start",
]
