"""The guard's policy: every threshold with its default, and the calibration of daily caps."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tierspayant.domain.providers import ProviderCategory
from tierspayant.security.guard.values import DAY_SECONDS, Caps, Level

# Distinct beneficiaries answered per structure per day before suspension, for a
# structure without history. Sized on a busy site of each profession, so a normal day stays
# below the soft limit (80 %). Reasons in docs/guard.md.
DEFAULT_DAILY_CAPS: Mapping[str, int] = MappingProxyType(
    {
        ProviderCategory.PHARMACY.value: 800,
        ProviderCategory.HOSPITAL.value: 3000,
        ProviderCategory.HEALTH_CENTRE.value: 600,
        ProviderCategory.LABORATORY.value: 600,
        ProviderCategory.RADIOLOGY.value: 400,
        ProviderCategory.GP.value: 100,
        ProviderCategory.SPECIALIST.value: 100,
        ProviderCategory.DENTIST.value: 60,
        ProviderCategory.NURSE.value: 80,
        ProviderCategory.PHYSIOTHERAPIST.value: 60,
        ProviderCategory.MIDWIFE.value: 40,
        ProviderCategory.AMBULANCE.value: 120,
        ProviderCategory.OPTICIAN.value: 40,
        ProviderCategory.AUDIOLOGIST.value: 25,
    }
)


def _default_caps() -> dict[str, int]:
    return dict(DEFAULT_DAILY_CAPS)


@dataclass(frozen=True)
class GuardPolicy:
    """Every threshold of the guard, with its documented default (``docs/guard.md``).

    Percentages are whole percents; durations are named with their unit.
    """

    daily_caps: Mapping[str, int] = field(default_factory=_default_caps)
    default_daily_cap: int = 50  # a category missing from ``daily_caps``
    soft_percent: int = 80
    calibration_days: int = 28
    calibration_min_days: int = 7
    calibration_percentile: int = 95
    calibration_factor_percent: int = 150
    no_proof_watch: int = 2  # early warning to the security team, once a day per structure
    no_proof_soft: int = 10
    no_proof_hard: int = 20
    no_proof_hold_seconds: int = 30
    miss_window: int = 30
    miss_min_lookups: int = 10
    miss_soft_percent: int = 30
    miss_hard_percent: int = 50
    invoice_min_lookups: int = 50
    invoice_min_percent: int = 10
    invoice_lag_days: int = 2
    human_speed_lookups: int = 10
    human_speed_median_ms: int = 2000
    principal_per_minute: int = 60
    structure_per_minute: int = 300
    global_per_minute: int = 30_000
    step_up_refusals_hard: int = 10  # per local day
    # And over a sliding window: a caller who stops at the first step-up of each day.
    step_up_refusals_window_hard: int = 20
    step_up_refusals_window_days: int = 30
    # Scrapers never bill: people answered without card proof and not invoiced by the
    # structure within ``invoice_grace_days``, over a sliding ``unbilled_window_days``, per
    # principal and per structure. Soft asks for step-up; hard (more than 50) suspends.
    unbilled_window_days: int = 30
    invoice_grace_days: int = 7
    unbilled_soft: int = 40
    unbilled_hard: int = 51
    # People answered without card proof still inside their grace and not yet invoiced:
    # at this many further lookups without proof are refused (no suspension; a hard limit,
    # never waived by a step-up). Calibrated per structure (see ``calibrate``).
    unbilled_pending: int = 30
    calibration_no_proof_percent: int = 50
    # A satisfied step-up (fresh strong login) waives soft limits this long.
    step_up_valid_seconds: int = 900
    # Care dates asked for one person in one day before each further one counts as a person.
    care_dates_free: int = 2
    # Engagements on amounts a structure creates per day (calculations that reserve).
    reservations_soft: int = 250
    reservations_hard: int = 1000
    revoked_proof_level: Level = Level.HARD
    timezone: str = "Europe/Paris"

    def __post_init__(self) -> None:
        caps = dict(self.daily_caps)
        unknown = sorted(set(caps) - {c.value for c in ProviderCategory})
        if unknown:
            raise ValueError(f"daily_caps: unknown provider categories {unknown}")
        if any(not _is_int(v) or v < 1 for v in caps.values()):
            raise ValueError("daily_caps: every cap must be a positive integer")
        object.__setattr__(self, "daily_caps", MappingProxyType(caps))
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("daily_caps", "revoked_proof_level", "timezone"):
                continue
            if not _is_int(value) or value < 0:
                raise ValueError(f"{f.name} must be a non-negative integer, got {value!r}")
        for name in ("soft_percent", "miss_soft_percent", "miss_hard_percent"):
            if not 1 <= getattr(self, name) <= 100:
                raise ValueError(f"{name} must be between 1 and 100")
        if not 1 <= self.no_proof_soft <= self.no_proof_hard:
            raise ValueError("need 1 <= no_proof_soft <= no_proof_hard")
        if self.no_proof_watch < 1:  # at or above no_proof_soft it never fires
            raise ValueError("no_proof_watch must be at least 1")
        if not 1 <= self.reservations_soft <= self.reservations_hard:
            raise ValueError("need 1 <= reservations_soft <= reservations_hard")
        if not 1 <= self.unbilled_soft <= self.unbilled_hard:
            raise ValueError("need 1 <= unbilled_soft <= unbilled_hard")
        if self.unbilled_window_days <= self.invoice_grace_days:
            raise ValueError("unbilled_window_days must exceed invoice_grace_days")
        if self.miss_soft_percent > self.miss_hard_percent:
            raise ValueError("miss_soft_percent must not exceed miss_hard_percent")
        if self.miss_min_lookups > self.miss_window or self.miss_min_lookups < 1:
            raise ValueError("need 1 <= miss_min_lookups <= miss_window")
        if self.human_speed_lookups < 3:
            raise ValueError("human_speed_lookups needs at least 3 lookups")
        positive = (
            "default_daily_cap",
            "principal_per_minute",
            "structure_per_minute",
            "global_per_minute",
            "step_up_refusals_hard",
            "no_proof_hold_seconds",
            "calibration_days",
            "unbilled_pending",
            "invoice_grace_days",
            "step_up_valid_seconds",
            "step_up_refusals_window_hard",
            "step_up_refusals_window_days",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        object.__setattr__(self, "revoked_proof_level", Level(self.revoked_proof_level))
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {self.timezone!r}") from exc

    @classmethod
    def from_mapping(cls, data: Mapping[str, object]) -> GuardPolicy:
        """Defaults overridden by ``data`` (parsed JSON or env); unknown keys are refused.

        ``daily_caps`` overrides only the categories it names. Integers may be given as
        decimal strings (environment variables).
        """
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown guard settings {unknown}")
        values: dict[str, Any] = {}
        for name, raw in data.items():
            if name == "daily_caps":
                if not isinstance(raw, Mapping):
                    raise ValueError("daily_caps must be a mapping of category to cap")
                caps = _default_caps()
                caps.update({str(k): _as_int(f"daily_caps.{k}", v) for k, v in raw.items()})
                values[name] = caps
            elif name == "revoked_proof_level":
                values[name] = Level(str(raw))
            elif name == "timezone":
                values[name] = str(raw)
            else:
                values[name] = _as_int(name, raw)
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> GuardPolicy:
        """Parse a JSON object of overrides (see :meth:`from_mapping`)."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("the guard policy must be a JSON object")
        return cls.from_mapping(data)

    def default_cap(self, category: str) -> int:
        """The profession's cap for a structure without enough history."""
        return self.daily_caps.get(category, self.default_daily_cap)

    def soft_of(self, cap: int) -> int:
        """The soft limit for a hard cap (``soft_percent`` of it, rounded up, at least 1)."""
        return max(1, -(-cap * self.soft_percent // 100))

    @property
    def day_set_ttl_seconds(self) -> int:
        # Day-keyed sets must outlive the invoice lag (the ratio is read that many days later).
        return (max(2, self.invoice_lag_days + 2)) * DAY_SECONDS


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _as_int(name: str, raw: object) -> int:
    if _is_int(raw):
        assert isinstance(raw, int)
        return raw
    if isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
        return int(raw.strip())
    raise ValueError(f"{name} must be an integer, got {raw!r}")


def percentile_nearest_rank(values: Sequence[int], percent: int) -> int:
    """The nearest-rank percentile of ``values`` (no interpolation, integers stay integers)."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, -(-percent * len(ordered) // 100))
    return ordered[rank - 1]


def calibrate(
    policy: GuardPolicy,
    category: str,
    history: Sequence[int],
    invoiced: Sequence[int] = (),
) -> Caps:
    """Cap = max(profession default, factor × p95 of the structure's own daily counts).

    History counts only once it covers ``calibration_min_days`` days: a few busy days must
    not let a new account raise its own ceiling. ``invoiced`` (the same days' counts of
    people looked up and then invoiced) sets the structure's allowance without card proof:
    ``calibration_no_proof_percent`` of factor × their p95, never below the defaults
    (``no_proof_hard`` a day, ``unbilled_pending`` awaiting an invoice).
    """
    cap = policy.default_cap(category)
    recent = list(history)[-policy.calibration_days :]
    calibrated = len(recent) >= max(1, policy.calibration_min_days)
    if calibrated:
        p = percentile_nearest_rank(recent, policy.calibration_percentile)
        cap = max(cap, -(-p * policy.calibration_factor_percent // 100))
    no_proof, pending = policy.no_proof_hard, policy.unbilled_pending
    billed = list(invoiced)[-policy.calibration_days :]
    if len(billed) >= max(1, policy.calibration_min_days):
        p = percentile_nearest_rank(billed, policy.calibration_percentile)
        allowance = -(
            -p * policy.calibration_factor_percent * policy.calibration_no_proof_percent // 10_000
        )
        no_proof, pending = max(no_proof, allowance), max(pending, allowance)
    soft = policy.no_proof_soft if no_proof == policy.no_proof_hard else policy.soft_of(no_proof)
    return Caps(
        soft=policy.soft_of(cap),
        hard=cap,
        calibrated=calibrated,
        no_proof_soft=min(soft, no_proof),
        no_proof_hard=no_proof,
        pending=pending,
        # A structure whose invoices earned a larger allowance answers people without our
        # card every day: the early warning is for the others (at the soft level, never).
        no_proof_watch=policy.no_proof_watch if no_proof == policy.no_proof_hard else no_proof,
    )


class HistoryProvider(Protocol):
    """Past daily counts of distinct beneficiaries of a structure (oldest first)."""

    def daily_distinct(self, structure: str, before: date, days: int) -> Sequence[int]:
        """Counts of the ``days`` days before ``before`` that have a record."""
        ...


@runtime_checkable
class InvoicedHistory(Protocol):
    """A :class:`HistoryProvider` that also knows the people each day invoiced (optional:
    without it, the allowances without card proof keep their defaults)."""

    def daily_invoiced(self, structure: str, before: date, days: int) -> Sequence[int]:
        """The same days' counts of people looked up and then invoiced by the structure."""
        ...
