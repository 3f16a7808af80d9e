"""How the guard judges what its store read against the threshold table.

The table's views the :class:`~core.Guard` walks (the rate rows in the order of the
admission's windows, the rows an admission gates on, the rows an observation judges),
the value and volume of a row's counter in a store reading, a row's scope and limit, and
what a refused caller reads. Pure: no state, no store.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence

from tierspayant.domain.codes import GuardCode
from tierspayant.security.guard.counters import AdmitReading, ObserveReading
from tierspayant.security.guard.policy import GuardPolicy
from tierspayant.security.guard.thresholds import (
    THRESHOLDS,
    Counter,
    Judged,
    Scope,
    Threshold,
    limit,
    row_of,
)
from tierspayant.security.guard.values import (
    UNAVAILABLE,
    Admission,
    LookupContext,
    Verdict,
)

# The principal's outcome list: a hit, a miss, or a scanned code that did not parse.
_HIT, _MISS, _MISREAD = "h", "m", "r"


def median_interval_ms(stamps_ms: Sequence[int]) -> int:
    """Median gap between consecutive events (the lower middle for an even count)."""
    ordered = sorted(stamps_ms)
    gaps = [b - a for a, b in itertools.pairwise(ordered)]
    if not gaps:
        raise ValueError("need at least two events")
    return int(statistics.median_low(gaps))


_CALLER_MESSAGES: dict[str, str] = {
    GuardCode.SUSPENDED: "this account is suspended; contact the operator's support",
    GuardCode.RATE: "too many lookups from this account; slow down",
    GuardCode.STRUCTURE_RATE: "too many lookups from this structure; slow down",
    GuardCode.GLOBAL_RATE: "the service is saturated; try again shortly",
    GuardCode.HUMAN_SPEED: "lookups faster than a person can type; account suspended",
    GuardCode.DAILY_CAP: "daily lookup limit of this structure reached",
    GuardCode.MISS_RATIO: "too many unmatched lookups; account suspended",
    GuardCode.NO_PROOF_QUOTA: "scan the patient's card: lookups without card proof are used up",
    GuardCode.STEP_UP_IGNORED: "authentication was not renewed; account suspended",
    GuardCode.RESERVATIONS: "too many engagements on amounts today; account suspended",
    GuardCode.UNBILLED: "people looked up without card proof were never invoiced; account"
    " suspended",
    GuardCode.UNBILLED_PENDING: "scan the patient's card: too many people looked up without"
    " card proof await an invoice",
    UNAVAILABLE: "the rights check is temporarily unavailable",
}
_STEP_UP_MESSAGE = "renew your authentication (CPS card or e-CPS) to continue"

# Views of the threshold table, computed once. The rates in the order of the admission's
# windows (global, principal, structure); the rows the admission gates on, in the table's
# order; the rows an observation judges, per (hit, without proof), those judged on every
# outcome first.
_RATES = tuple(
    row_of(c) for c in (Counter.RATE_GLOBAL, Counter.RATE_PRINCIPAL, Counter.RATE_STRUCTURE)
)
_PACE = row_of(Counter.PACE)
_STEP_UPS = row_of(Counter.STEP_UPS)
_STEP_UPS_WINDOW = row_of(Counter.STEP_UPS_WINDOW)
_INVOICED = row_of(Counter.INVOICED)
_RESERVATIONS = row_of(Counter.RESERVATIONS)
_UNBILLED_P = row_of(Counter.UNBILLED_PRINCIPAL)
_UNBILLED_S = row_of(Counter.UNBILLED_STRUCTURE)
_PENDING = row_of(Counter.PENDING)
_GATED = tuple(r for r in THRESHOLDS if r.judged in (Judged.OUTCOME, Judged.HIT))


def _observed(hit: bool, no_proof: bool) -> tuple[Threshold, ...]:
    rows = [
        r
        for r in _GATED
        if (no_proof or not r.no_proof_only) and (hit or r.judged is Judged.OUTCOME)
    ]
    return tuple(sorted(rows, key=lambda r: r.judged is Judged.HIT))


# Indexed by 2 * hit + without proof.
_OBSERVED = tuple(_observed(hit, no_proof) for hit in (False, True) for no_proof in (False, True))


_Counts = AdmitReading | ObserveReading
_ALLOWED = Admission(Verdict.ALLOW, "guard.ok", "")


def _value(counter: Counter, counts: _Counts) -> int:
    """The reading of a counter that both bundles read (see :class:`Counter`)."""
    if counter is Counter.DISTINCT:
        return counts.seen
    if counter is Counter.NO_PROOF:
        return counts.answered
    if counter is Counter.MISSES:
        return counts.outcomes.count(_MISS)
    if counter is Counter.MISREADS:
        misreads = counts.outcomes.count(_MISREAD)
        return misreads + counts.outcomes.count(_MISS) if misreads else 0
    raise ValueError(f"no reading of {counter}")


def _volume(counter: Counter, counts: _Counts) -> int:
    """The volume a share is taken of: misreads are not lookups, and do not dilute misses."""
    if counter is Counter.MISSES:
        return len(counts.outcomes) - counts.outcomes.count(_MISREAD)
    return len(counts.outcomes) if counter is Counter.MISREADS else 0


def _scope_of(scope: Scope, ctx: LookupContext) -> str:
    if scope is Scope.PRINCIPAL:
        return ctx.principal_id
    return ctx.structure if scope is Scope.STRUCTURE else "global"


def _limit_of(threshold: Threshold, policy: GuardPolicy) -> int:
    ref = threshold.hard if threshold.min_volume is None else threshold.min_volume
    assert ref is not None
    return limit(ref, policy)
