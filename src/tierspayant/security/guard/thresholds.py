"""The guard's thresholds as a table of data: one row per signal, judged by :func:`grade`.

A row names the counter it reads, how a reading is compared with a threshold, the
thresholds themselves (names of :class:`GuardPolicy` fields, or the structure's calibrated
daily cap), the least volume before the comparison means anything, when the guard judges
it, and the codes and messages of its signals. Levels, highest first:

- **hard** (``code``): suspend the principal (or, for a rate, refuse with 429);
- **soft** (``soft_code``): the admission asks for step-up; the observation alerts once;
- **watch** (``watch_code``): alert only, nothing is refused.

A new signal is one row here plus the counter it reads (in the admission or observation
bundle of the counter store). The table is documented in ``docs/guard.md``; a test keeps
the two in step.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import IntEnum, StrEnum

from tierspayant.domain.codes import GuardCode
from tierspayant.security.guard.policy import GuardPolicy
from tierspayant.security.guard.values import Caps, Level

# The structure's calibrated daily cap (:class:`Caps`), in place of a policy field.
CAP_SOFT = "cap.soft"
CAP_HARD = "cap.hard"
# Its calibrated allowances without card proof: the daily quota, and the people who may
# await an invoice at once.
CAP_NO_PROOF_SOFT = "cap.no_proof_soft"
CAP_NO_PROOF_HARD = "cap.no_proof_hard"
CAP_PENDING = "cap.pending"
CAP_NO_PROOF_WATCH = "cap.no_proof_watch"
_CAPS = (
    CAP_SOFT,
    CAP_HARD,
    CAP_NO_PROOF_WATCH,
    CAP_NO_PROOF_SOFT,
    CAP_NO_PROOF_HARD,
    CAP_PENDING,
)
# The field of :class:`Caps` each ``cap.*`` name reads.
_CAP_FIELDS = {ref: ref.removeprefix("cap.") for ref in _CAPS}


class Counter(StrEnum):
    """The figure a row reads; its volume (if any) in brackets."""

    RATE_GLOBAL = "lookups per minute, platform"
    RATE_PRINCIPAL = "lookups per minute, principal"
    RATE_STRUCTURE = "lookups per minute, structure"
    PACE = "median interval (ms) of a portal user's last lookups [lookups]"
    STEP_UPS = "step-up requests ignored today, principal"
    STEP_UPS_WINDOW = "step-up requests ignored in the last 30 days, principal"
    DISTINCT = "distinct beneficiaries answered today, structure"
    MISSES = "misses among the principal's last no-proof lookups [lookups]"
    MISREADS = (
        "misses and misreads among the principal's last no-proof lookups and misreads,"
        " if one is a misread [lookups and misreads]"
    )
    NO_PROOF = "distinct beneficiaries answered without card proof today, structure"
    UNBILLED_PRINCIPAL = (
        "people answered without card proof in the last 30 days and not invoiced by the"
        " structure within 7 days, principal"
    )
    UNBILLED_STRUCTURE = (
        "people answered without card proof in the last 30 days and not invoiced by the"
        " structure within 7 days, structure"
    )
    PENDING = (
        "people answered without card proof in the last 7 days, not invoiced yet, plus"
        " lookups in flight, principal or structure"
    )
    INVOICED = "invoiced among the beneficiaries looked up on the judged day [looked up]"
    RESERVATIONS = "engagements on amounts created today, structure"


class Comparison(StrEnum):
    """How a reading (value, volume) is compared with a threshold."""

    AT_LEAST = "value >= threshold"
    BELOW = "value < threshold"
    SHARE_ABOVE = "value / volume > threshold %"
    SHARE_BELOW = "value / volume < threshold %"


class Judged(StrEnum):
    """When the guard judges a row."""

    ADMISSION = "admit"  # before the lookup: the hard level refuses it
    STEP_UP = "admit, at a step-up"
    OUTCOME = "observe, every no-proof outcome"  # then admit refuses (hard) or steps up (soft)
    HIT = "observe, every hit"  # then admit refuses (hard) or steps up (soft)
    DAILY = "observe, once a day per structure"
    # Before a lookup without card proof, on sliding windows (no calendar reset).
    UNBILLED = "admit, without card proof"
    # Before the person is priced, so the answer tells nothing about them.
    RESERVATION = "at every calculation (each may reserve)"


class Action(StrEnum):
    """What the hard level does."""

    SUSPEND = "suspend"
    THROTTLE = "429, soft alert once an hour"
    REFUSE = "403 until invoices come or answers age, no suspension"


class Scope(StrEnum):
    """Whose figure it is: soft signals are deduplicated per scope and day (rates: hour)."""

    GLOBAL = "global"
    PRINCIPAL = "principal"
    STRUCTURE = "structure"


class Grade(IntEnum):
    """The highest threshold a reading crosses."""

    NONE = 0
    WATCH = 1
    SOFT = 2
    HARD = 3


@dataclass(frozen=True, slots=True)
class Threshold:
    """One row of the table. Threshold names are :class:`GuardPolicy` fields or ``CAP_*``.

    ``figures``: the names under which a signal reports the value, the volume, and each
    level's threshold; ``hard_in_every_signal`` adds the hard threshold to soft and watch
    signals too.
    """

    code: str
    counter: Counter
    comparison: Comparison
    judged: Judged
    scope: Scope
    hard: str | None
    message: str
    action: Action = Action.SUSPEND
    soft: str | None = None
    soft_code: str = ""
    soft_message: str = ""
    watch: str | None = None
    watch_code: str = ""
    watch_message: str = ""
    min_volume: str | None = None
    no_proof_only: bool = False
    value_figure: str = ""
    volume_figure: str = ""
    hard_figure: str = ""
    soft_figure: str = ""
    watch_figure: str = ""
    hard_in_every_signal: bool = False
    # Precomputed: the levels to try, highest first, and whether a calibrated cap is read.
    levels: tuple[tuple[Grade, str], ...] = field(init=False, repr=False, compare=False)
    uses_caps: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        named = ((Grade.HARD, self.hard), (Grade.SOFT, self.soft), (Grade.WATCH, self.watch))
        levels = tuple((g, ref) for g, ref in named if ref is not None)
        refs = [ref for _, ref in levels] + [r for r in (self.min_volume,) if r is not None]
        object.__setattr__(self, "levels", levels)
        object.__setattr__(self, "uses_caps", any(r in _CAPS for r in refs))
        if not levels:
            raise ValueError(f"{self.code}: a row needs at least one threshold")
        unknown = [r for r in refs if r not in _POLICY_INTS and r not in _CAPS]
        if unknown:
            raise ValueError(f"{self.code}: unknown thresholds {unknown}")
        if self.soft is not None and not (self.soft_code and self.soft_message):
            raise ValueError(f"{self.code}: a soft threshold needs its code and message")
        if self.watch is not None and not (self.watch_code and self.watch_message):
            raise ValueError(f"{self.code}: a watch threshold needs its code and message")

    def level(self, grade: Grade) -> Level:
        """The signal's level: only a hard grade that suspends is a hard signal."""
        if grade is Grade.HARD and self.action is Action.SUSPEND:
            return Level.HARD
        return Level.SOFT

    def signal_code(self, grade: Grade) -> str:
        if grade is Grade.HARD:
            return self.code
        return self.soft_code if grade is Grade.SOFT else self.watch_code

    def signal_message(self, grade: Grade) -> str:
        if grade is Grade.HARD:
            return self.message
        return self.soft_message if grade is Grade.SOFT else self.watch_message


_POLICY_INTS = frozenset(
    f.name
    for f in fields(GuardPolicy)
    if f.name not in ("daily_caps", "revoked_proof_level", "timezone")
)

# In the order the guard judges them: at admission, the first hard row refuses and the
# first soft row asks for step-up; the rates' order is the order of the store's windows.
THRESHOLDS: tuple[Threshold, ...] = (
    Threshold(
        GuardCode.GLOBAL_RATE,
        Counter.RATE_GLOBAL,
        Comparison.AT_LEAST,
        Judged.ADMISSION,
        Scope.GLOBAL,
        hard="global_per_minute",
        message="rate limit reached",
        action=Action.THROTTLE,
        hard_figure="per_minute",
    ),
    Threshold(
        GuardCode.RATE,
        Counter.RATE_PRINCIPAL,
        Comparison.AT_LEAST,
        Judged.ADMISSION,
        Scope.PRINCIPAL,
        hard="principal_per_minute",
        message="rate limit reached",
        action=Action.THROTTLE,
        hard_figure="per_minute",
    ),
    Threshold(
        GuardCode.STRUCTURE_RATE,
        Counter.RATE_STRUCTURE,
        Comparison.AT_LEAST,
        Judged.ADMISSION,
        Scope.STRUCTURE,
        hard="structure_per_minute",
        message="rate limit reached",
        action=Action.THROTTLE,
        hard_figure="per_minute",
    ),
    Threshold(
        GuardCode.HUMAN_SPEED,
        Counter.PACE,
        Comparison.BELOW,
        Judged.ADMISSION,
        Scope.PRINCIPAL,
        hard="human_speed_median_ms",
        message="portal lookups faster than a person can type",
        min_volume="human_speed_lookups",
        value_figure="median_interval_ms",
        volume_figure="lookups",
        hard_figure="threshold_ms",
    ),
    Threshold(
        GuardCode.DAILY_CAP,
        Counter.DISTINCT,
        Comparison.AT_LEAST,
        Judged.HIT,
        Scope.STRUCTURE,
        hard=CAP_HARD,
        message="structure reached its daily cap of distinct beneficiaries",
        soft=CAP_SOFT,
        soft_code="guard.daily_cap_soft",
        soft_message="structure near its daily cap of distinct beneficiaries",
        value_figure="distinct",
        hard_figure="cap",
        soft_figure="soft",
        hard_in_every_signal=True,
    ),
    Threshold(
        GuardCode.MISS_RATIO,
        Counter.MISSES,
        Comparison.SHARE_ABOVE,
        Judged.OUTCOME,
        Scope.PRINCIPAL,
        hard="miss_hard_percent",
        message="most lookups without card proof match nobody (enumeration)",
        soft="miss_soft_percent",
        soft_code="guard.miss_ratio_soft",
        soft_message="many unmatched lookups without card proof",
        min_volume="miss_min_lookups",
        no_proof_only=True,
        value_figure="misses",
        volume_figure="lookups",
        hard_figure="hard_percent",
        soft_figure="soft_percent",
    ),
    Threshold(
        # A scanned code that does not parse joins the principal's outcome list as a
        # misread: never a suspension (no hard level), but a window of misses and
        # misreads past the soft share asks for step-up, which a scraper cannot give.
        "guard.misread_ratio",
        Counter.MISREADS,
        Comparison.SHARE_ABOVE,
        Judged.OUTCOME,
        Scope.PRINCIPAL,
        hard=None,
        message="",
        soft="miss_soft_percent",
        soft_code="guard.misread_ratio_soft",
        soft_message="many misreads and unmatched lookups without card proof",
        min_volume="miss_min_lookups",
        no_proof_only=True,
        value_figure="misses_and_misreads",
        volume_figure="lookups_and_misreads",
        soft_figure="soft_percent",
    ),
    Threshold(
        GuardCode.NO_PROOF_QUOTA,
        Counter.NO_PROOF,
        Comparison.AT_LEAST,
        Judged.HIT,
        Scope.STRUCTURE,
        hard=CAP_NO_PROOF_HARD,
        message="quota of beneficiaries answered without card proof used up",
        soft=CAP_NO_PROOF_SOFT,
        soft_code="guard.no_proof_soft",
        soft_message="structure near its quota of lookups without card proof",
        # Nothing is refused yet: the security team hears of a structure that answers
        # people without their card while a scraper at human pace has read only a couple.
        watch=CAP_NO_PROOF_WATCH,
        watch_code="guard.no_proof_watch",
        watch_message="beneficiaries answered without card proof today",
        no_proof_only=True,
        value_figure="answered",
        hard_figure="hard",
        soft_figure="soft",
        watch_figure="watch",
        hard_in_every_signal=True,
    ),
    Threshold(
        # Invoices arrive late, so the day judged is ``invoice_lag_days`` back; quotes and
        # pre-admissions are legitimately not billed, so this one only informs.
        "guard.invoice_ratio",
        Counter.INVOICED,
        Comparison.SHARE_BELOW,
        Judged.DAILY,
        Scope.STRUCTURE,
        hard=None,
        message="",
        watch="invoice_min_percent",
        watch_code="guard.invoice_ratio",
        watch_message="few of the beneficiaries looked up were invoiced",
        min_volume="invoice_min_lookups",
        value_figure="invoiced",
        volume_figure="looked_up",
        watch_figure="min_percent",
    ),
    Threshold(
        # Scrapers never bill: the people a principal obtained without card proof and its
        # structure never invoiced, over a sliding window, whatever the pace.
        GuardCode.UNBILLED,
        Counter.UNBILLED_PRINCIPAL,
        Comparison.AT_LEAST,
        Judged.UNBILLED,
        Scope.PRINCIPAL,
        hard="unbilled_hard",
        message="people answered without card proof were never invoiced",
        soft="unbilled_soft",
        soft_code="guard.unbilled_soft",
        soft_message="people answered without card proof are not invoiced",
        no_proof_only=True,
        value_figure="unbilled",
        hard_figure="hard",
        soft_figure="soft",
        hard_in_every_signal=True,
    ),
    Threshold(
        # The structure's own figure refuses (its principals may be reinstated, the
        # structure's history stays): scraping through many accounts is bounded too.
        GuardCode.UNBILLED,
        Counter.UNBILLED_STRUCTURE,
        Comparison.AT_LEAST,
        Judged.UNBILLED,
        Scope.STRUCTURE,
        hard="unbilled_hard",
        action=Action.REFUSE,
        message="people answered without card proof were never invoiced",
        soft="unbilled_soft",
        soft_code="guard.unbilled_soft",
        soft_message="people answered without card proof are not invoiced",
        no_proof_only=True,
        value_figure="unbilled",
        hard_figure="hard",
        soft_figure="soft",
        hard_in_every_signal=True,
    ),
    Threshold(
        # The invoice grace is no free window: the people still awaiting an invoice are
        # bounded too, and a step-up never lifts it.
        GuardCode.UNBILLED_PENDING,
        Counter.PENDING,
        Comparison.AT_LEAST,
        Judged.UNBILLED,
        Scope.STRUCTURE,
        hard=CAP_PENDING,
        message="too many people answered without card proof await an invoice",
        action=Action.REFUSE,
        no_proof_only=True,
        value_figure="pending",
        hard_figure="limit",
    ),
    Threshold(
        GuardCode.STEP_UP_IGNORED,
        Counter.STEP_UPS,
        Comparison.AT_LEAST,
        Judged.STEP_UP,
        Scope.PRINCIPAL,
        hard="step_up_refusals_hard",
        message="step-up requests ignored; lookups kept coming",
        value_figure="refusals",
    ),
    Threshold(
        GuardCode.STEP_UP_IGNORED,
        Counter.STEP_UPS_WINDOW,
        Comparison.AT_LEAST,
        Judged.STEP_UP,
        Scope.PRINCIPAL,
        hard="step_up_refusals_window_hard",
        message="step-up requests ignored day after day; lookups kept coming",
        value_figure="refusals",
    ),
    Threshold(
        # Each open engagement on amounts holds part of a person's ceilings: a phished
        # account calculating for many people would lock what they may be paid elsewhere.
        GuardCode.RESERVATIONS,
        Counter.RESERVATIONS,
        Comparison.AT_LEAST,
        Judged.RESERVATION,
        Scope.STRUCTURE,
        hard="reservations_hard",
        message="structure created too many engagements on amounts today",
        soft="reservations_soft",
        soft_code="guard.reservations_soft",
        soft_message="structure creating many engagements on amounts today",
        value_figure="created",
        hard_figure="hard",
        soft_figure="soft",
        hard_in_every_signal=True,
    ),
)


def row_of(counter: Counter) -> Threshold:
    """The row that reads ``counter`` (one per counter)."""
    for candidate in THRESHOLDS:
        if candidate.counter is counter:
            return candidate
    raise KeyError(counter)


def limit(ref: str, policy: GuardPolicy, caps: Caps | None = None) -> int:
    """The value of a threshold name under ``policy`` (and the structure's ``caps``)."""
    field_ = _CAP_FIELDS.get(ref)
    if field_ is not None:
        if caps is None:
            raise ValueError(f"{ref} needs the structure's caps")
        capped: int = getattr(caps, field_)
        return capped
    value: int = getattr(policy, ref)
    return value


def enough(threshold: Threshold, volume: int, policy: GuardPolicy) -> bool:
    """Whether the volume reaches the row's minimum (always, without one)."""
    return threshold.min_volume is None or volume >= limit(threshold.min_volume, policy)


def crosses(comparison: Comparison, value: int, volume: int, threshold: int) -> bool:
    """Whether a reading crosses a threshold (integer maths, no float)."""
    if comparison is Comparison.AT_LEAST:
        return value >= threshold
    if comparison is Comparison.BELOW:
        return value < threshold
    if comparison is Comparison.SHARE_ABOVE:
        return value * 100 > threshold * volume
    return value * 100 < threshold * volume


# A row's thresholds as numbers under one policy and one structure's caps: the least
# volume (None without one), the comparison, and the levels to try, highest first.
Resolved = tuple[int | None, Comparison, tuple[tuple[Grade, int], ...]]


def resolve(threshold: Threshold, policy: GuardPolicy, caps: Caps | None = None) -> Resolved:
    """The row's threshold names turned into their values (see :func:`graded`)."""
    least = None if threshold.min_volume is None else limit(threshold.min_volume, policy, caps)
    levels = tuple((level, limit(ref, policy, caps)) for level, ref in threshold.levels)
    return least, threshold.comparison, levels


def graded(resolved: Resolved, value: int, volume: int) -> Grade:
    """:func:`grade` on a row already resolved (the guard keeps them per caps)."""
    least, comparison, levels = resolved
    if least is not None and volume < least:
        return Grade.NONE
    for level, threshold in levels:
        if crosses(comparison, value, volume, threshold):
            return level
    return Grade.NONE


def grade(
    threshold: Threshold,
    value: int,
    volume: int,
    policy: GuardPolicy,
    caps: Caps | None = None,
) -> Grade:
    """The highest level of ``threshold`` that the reading (value, volume) crosses."""
    return graded(resolve(threshold, policy, caps), value, volume)


def signal_figures(
    threshold: Threshold,
    level: Grade,
    value: int,
    volume: int,
    policy: GuardPolicy,
    caps: Caps | None = None,
) -> dict[str, int | str]:
    """What a signal of ``threshold`` at ``level`` reports: counts and thresholds only."""
    out: dict[str, int | str] = {}
    if threshold.value_figure:
        out[threshold.value_figure] = value
    if threshold.volume_figure:
        out[threshold.volume_figure] = volume
    for name, ref, at in (
        (threshold.watch_figure, threshold.watch, Grade.WATCH),
        (threshold.soft_figure, threshold.soft, Grade.SOFT),
        (threshold.hard_figure, threshold.hard, Grade.HARD),
    ):
        wanted = at is level or (at is Grade.HARD and threshold.hard_in_every_signal)
        if name and ref is not None and wanted:
            out[name] = limit(ref, policy, caps)
    return out
