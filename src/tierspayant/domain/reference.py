"""Dated regulatory reference data: AMO rates, participation, franchises, legal caps.

Every figure here changes by decree, so none is written in code: they are read from a
document (the packaged ``reference/rules.json``) where each value carries the period it is
in force (``valid_from``, optional ``valid_to``, both inclusive) and a ``source`` note.
:meth:`ReferenceTable.on` answers "what was in force on the date of care".

This module only parses; reading the file is the caller's job (``formats.reference``).
"""

from __future__ import annotations

import bisect
import itertools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from types import MappingProxyType
from typing import Any

from tierspayant.domain.care import CareDomain
from tierspayant.domain.codes import ReferenceCode
from tierspayant.domain.errors import DomainError
from tierspayant.domain.money import euros_to_cents, percent

REFERENCE_FORMAT = "tierspayant-reference/1"

FRANCHISE_KINDS = ("drug", "paramedical", "transport")
LENS_COMPLEXITIES = ("simple", "complex", "very_complex")
EQUIPMENT_KINDS = ("frame", "lens", "hearing_aid")

# Scalar parameters and how each is read: euros -> cents, percent -> basis points, or int.
_PARAMETER_KINDS: dict[str, str] = {
    "hors_parcours_rate": "percent",
    "care_pathway_min_age": "integer",
    "exemption_age": "integer",
    "participation_forfaitaire": "amount",
    "participation_daily_cap": "amount",
    "participation_annual_cap": "amount",
    "franchise.drug": "amount",
    "franchise.paramedical": "amount",
    "franchise.transport": "amount",
    "franchise_daily_cap.paramedical": "amount",
    "franchise_daily_cap.transport": "amount",
    "franchise_annual_cap": "amount",
    "hospital_daily_charge": "amount",
    "hospital_daily_charge_psychiatry": "amount",
    "responsable.non_optam_max_excess": "percent",
    "responsable.optam_min_gap": "percent",
    "responsable.optics_frame_cap": "amount",
    "responsable.optics_equipment": "optics_caps",
    "responsable.hearing_class_ii_cap": "amount",
    "rss.optics_frame_plv": "amount",
    "rss.hearing_class_i_plv": "amount",
    "optics.class_b_br": "amount",
    "hearing.class_ii_br_adult": "amount",
    "hearing.class_ii_br_young": "amount",
    "hearing.young_age": "integer",
    "renewal.glasses_months": "integer",
    "renewal.glasses_months_young": "integer",
    "renewal.young_age": "integer",
    "renewal.hearing_months": "integer",
}

_FAMILY_KEYS = frozenset(
    {
        "label",
        "domains",
        "amo_rate",
        "doctor_fees",
        "care_pathway",
        "participation",
        "franchise",
        "tm_required",
        "rss",
        "equipment",
        "lens_complexity",
        "daily_charge",
    }
)
_PERIOD_KEYS = frozenset({"valid_from", "valid_to", "value", "source"})
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class ReferenceDataError(DomainError):
    """The reference document is malformed, or holds no figure for the date asked."""


@dataclass(frozen=True, slots=True)
class FamilyRule:
    """How the AMO and the regulation treat one act family (the key guarantees use)."""

    name: str
    label: str
    domains: frozenset[CareDomain]
    rate_key: str  # key into ``ReferenceRules.amo_rates_bp``
    doctor_fees: bool  # doctors' fees: OPTAM / non-OPTAM levels and caps apply
    care_pathway: bool  # the hors parcours rate applies outside the care pathway
    participation: bool  # the participation forfaitaire is deducted
    franchise: str | None  # kind of franchise deducted: drug, paramedical, transport
    tm_required: bool  # a contrat responsable must cover its ticket modérateur
    rss: bool  # may be billed as a 100 % Santé basket (class A) or at a free price
    equipment: str | None  # frame, lens, hearing_aid: contrat responsable equipment caps
    lens_complexity: str | None  # simple, complex, very_complex (optics lenses)
    daily_charge: bool  # the forfait journalier hospitalier


@dataclass(frozen=True, slots=True)
class OpticsCap:
    """Contrat responsable bounds of the AMC share of one class B equipment."""

    floor_cents: int
    ceiling_cents: int


@dataclass(frozen=True, slots=True)
class ReferenceRules:
    """Every figure in force over one period (a snapshot of the table)."""

    valid_from: date
    valid_to: date | None
    families: Mapping[str, FamilyRule]
    amo_rates_bp: Mapping[str, int]
    family_rates_bp: Mapping[str, int]
    hors_parcours_rate_bp: int
    care_pathway_min_age: int
    exemption_age: int
    participation_cents: int
    participation_daily_cap_cents: int
    participation_annual_cap_cents: int
    franchise_cents: Mapping[str, int]
    franchise_daily_cap_cents: Mapping[str, int]
    franchise_annual_cap_cents: int
    hospital_daily_charge_cents: int
    hospital_daily_charge_psychiatry_cents: int
    non_optam_max_excess_bp: int
    optam_min_gap_bp: int
    optics_frame_cap_cents: int
    optics_equipment_caps: Mapping[tuple[str, str], OpticsCap]
    hearing_class_ii_cap_cents: int
    optics_frame_plv_cents: int
    hearing_class_i_plv_cents: int
    optics_class_b_br_cents: int
    hearing_br_adult_cents: int
    hearing_br_young_cents: int
    hearing_young_age: int
    glasses_renewal_months: int
    glasses_renewal_months_young: int
    renewal_young_age: int
    hearing_renewal_months: int
    sources: Mapping[str, str]

    def optics_cap(self, first: str, second: str) -> OpticsCap:
        """Bounds for an equipment with lenses of complexities ``first`` and ``second``."""
        return self.optics_equipment_caps[lens_pair(first, second)]


def lens_pair(first: str, second: str) -> tuple[str, str]:
    """Order two lens complexities the way the caps table is keyed."""
    a, b = LENS_COMPLEXITIES.index(first), LENS_COMPLEXITIES.index(second)
    return (first, second) if a <= b else (second, first)


@dataclass(frozen=True, slots=True)
class _Period:
    valid_from: date
    valid_to: date | None
    value: Any
    source: str

    def covers(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)


@dataclass(frozen=True, slots=True)
class ReferenceTable:
    """The dated reference data; :meth:`on` gives the rules in force on a date."""

    starts: tuple[date, ...]
    snapshots: tuple[ReferenceRules | None, ...]

    def on(self, day: date) -> ReferenceRules:
        """The rules in force on ``day``, or ``reference.not_in_force``."""
        index = bisect.bisect_right(self.starts, day) - 1
        if index >= 0:
            rules = self.snapshots[index]
            if rules is not None and (rules.valid_to is None or day <= rules.valid_to):
                return rules
        raise ReferenceDataError(
            ReferenceCode.NOT_IN_FORCE,
            f"no reference figures are in force on {day.isoformat()}",
            field="care_date",
        )

    @property
    def first_day(self) -> date:
        """The first day the table answers for."""
        for start, rules in zip(self.starts, self.snapshots, strict=True):
            if rules is not None:
                return start
        raise ReferenceDataError(ReferenceCode.EMPTY, "the reference table is empty")


def parse_reference(document: str | Mapping[str, Any]) -> ReferenceTable:
    """Build a :class:`ReferenceTable` from the JSON text or the already decoded mapping."""
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except json.JSONDecodeError as exc:
            raise ReferenceDataError(ReferenceCode.MALFORMED, f"not JSON: {exc}") from exc
    if not isinstance(document, Mapping):
        raise ReferenceDataError(ReferenceCode.MALFORMED, "the document must be an object")
    _check_keys(document, {"format", "note", "families", "amo_rates", "parameters"}, "")
    if document.get("format") != REFERENCE_FORMAT:
        raise ReferenceDataError(
            ReferenceCode.MALFORMED, f"format must be {REFERENCE_FORMAT!r}", field="format"
        )
    rates = _parse_series_group(document.get("amo_rates"), "amo_rates", lambda _: "percent")
    families = _parse_families(document.get("families"), rates)
    parameters = _parse_series_group(
        document.get("parameters"), "parameters", _parameter_kind, required=_PARAMETER_KINDS
    )
    every_series = {**{f"amo_rates.{k}": v for k, v in rates.items()}, **parameters}
    boundaries: set[date] = set()
    for periods in every_series.values():
        for period in periods:
            boundaries.add(period.valid_from)
            if period.valid_to is not None:
                boundaries.add(date.fromordinal(period.valid_to.toordinal() + 1))
    starts = tuple(sorted(boundaries))
    snapshots = []
    for i, start in enumerate(starts):
        end = date.fromordinal(starts[i + 1].toordinal() - 1) if i + 1 < len(starts) else None
        snapshots.append(_snapshot(start, end, families, rates, parameters))
    return ReferenceTable(starts, tuple(snapshots))


def _parameter_kind(name: str) -> str:
    kind = _PARAMETER_KINDS.get(name)
    if kind is None:
        raise ReferenceDataError(
            ReferenceCode.MALFORMED, f"unknown parameter {name!r}", field=f"parameters.{name}"
        )
    return kind


def _check_keys(obj: Mapping[str, Any], allowed: set[str] | frozenset[str], where: str) -> None:
    unknown = sorted(set(obj) - set(allowed))
    if unknown:
        raise ReferenceDataError(
            ReferenceCode.MALFORMED, f"unknown key {unknown[0]!r}", field=f"{where}{unknown[0]}"
        )


def _parse_series_group(
    group: Any,
    where: str,
    kind_of: Any,
    required: Mapping[str, str] | None = None,
) -> dict[str, tuple[_Period, ...]]:
    if not isinstance(group, Mapping) or not group:
        raise ReferenceDataError(ReferenceCode.MALFORMED, f"{where} must be an object", field=where)
    parsed: dict[str, tuple[_Period, ...]] = {}
    for name, periods in group.items():
        parsed[name] = _parse_periods(periods, f"{where}.{name}", kind_of(name))
    for name in required or {}:
        if name not in parsed:
            raise ReferenceDataError(
                ReferenceCode.MALFORMED, f"missing parameter {name!r}", field=f"{where}.{name}"
            )
    return parsed


def _parse_periods(periods: Any, where: str, kind: str) -> tuple[_Period, ...]:
    if not isinstance(periods, list) or not periods:
        raise ReferenceDataError(
            ReferenceCode.MALFORMED, "expected a non-empty list of dated values", field=where
        )
    out: list[_Period] = []
    for i, raw in enumerate(periods):
        at = f"{where}[{i}]"
        if not isinstance(raw, Mapping):
            raise ReferenceDataError(ReferenceCode.MALFORMED, "expected an object", field=at)
        _check_keys(raw, _PERIOD_KEYS, f"{at}.")
        source = raw.get("source")
        if not isinstance(source, str) or not source.strip():
            raise ReferenceDataError(
                ReferenceCode.MALFORMED, "every value needs a source note", field=f"{at}.source"
            )
        valid_from = _parse_date(raw.get("valid_from"), f"{at}.valid_from")
        valid_to = None
        if raw.get("valid_to") is not None:
            valid_to = _parse_date(raw["valid_to"], f"{at}.valid_to")
        if valid_to is not None and valid_to < valid_from:
            raise ReferenceDataError(
                ReferenceCode.MALFORMED, "valid_to is before valid_from", field=f"{at}.valid_to"
            )
        if "value" not in raw:
            raise ReferenceDataError(ReferenceCode.MALFORMED, "missing value", field=f"{at}.value")
        value = _parse_value(raw["value"], kind, f"{at}.value")
        out.append(_Period(valid_from, valid_to, value, source.strip()))
    out.sort(key=lambda p: p.valid_from)
    for before, after in itertools.pairwise(out):
        if before.valid_to is None or before.valid_to >= after.valid_from:
            raise ReferenceDataError(
                ReferenceCode.MALFORMED,
                f"periods overlap around {after.valid_from.isoformat()}",
                field=where,
            )
    return tuple(out)


def _parse_date(value: Any, where: str) -> date:
    if not isinstance(value, str):
        raise ReferenceDataError(ReferenceCode.MALFORMED, "expected an ISO date", field=where)
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ReferenceDataError(ReferenceCode.MALFORMED, str(exc), field=where) from exc


def _parse_value(value: Any, kind: str, where: str) -> Any:
    try:
        if kind == "amount":
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise ValueError("expected an amount in euros as a string")
            cents = euros_to_cents(value)
            if cents < 0:
                raise ValueError("negative amount")
            return cents
        if kind == "percent":
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise ValueError("expected a percentage")
            bp = percent(value)
            if not 0 <= bp <= 10_000:
                raise ValueError("a rate must be between 0 and 100 %")
            return bp
        if kind == "integer":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError("expected a non-negative integer")
            return value
        return _parse_optics_caps(value)
    except (ValueError, ArithmeticError) as exc:
        raise ReferenceDataError(ReferenceCode.MALFORMED, str(exc), field=where) from exc


def _parse_optics_caps(value: Any) -> Mapping[tuple[str, str], OpticsCap]:
    if not isinstance(value, Mapping):
        raise ValueError("expected an object keyed 'simple/complex'…")
    caps: dict[tuple[str, str], OpticsCap] = {}
    for key, bounds in value.items():
        parts = str(key).split("/")
        if len(parts) != 2 or any(p not in LENS_COMPLEXITIES for p in parts):
            raise ValueError(f"bad lens pair {key!r}")
        if not isinstance(bounds, Mapping) or set(bounds) != {"floor", "ceiling"}:
            raise ValueError(f"{key}: expected floor and ceiling")
        cap = OpticsCap(euros_to_cents(bounds["floor"]), euros_to_cents(bounds["ceiling"]))
        if not 0 <= cap.floor_cents <= cap.ceiling_cents:
            raise ValueError(f"{key}: floor above ceiling")
        caps[lens_pair(parts[0], parts[1])] = cap
    expected = {lens_pair(a, b) for a in LENS_COMPLEXITIES for b in LENS_COMPLEXITIES}
    if set(caps) != expected:
        raise ValueError("every pair of lens complexities needs bounds")
    return MappingProxyType(caps)


def _parse_families(
    group: Any, rates: Mapping[str, tuple[_Period, ...]]
) -> Mapping[str, FamilyRule]:
    if not isinstance(group, Mapping) or not group:
        raise ReferenceDataError(
            ReferenceCode.MALFORMED, "families must be an object", field="families"
        )
    families: dict[str, FamilyRule] = {}
    for name, raw in group.items():
        at = f"families.{name}"
        if not isinstance(name, str) or not _NAME.match(name):
            raise ReferenceDataError(ReferenceCode.MALFORMED, "bad family name", field=at)
        if not isinstance(raw, Mapping):
            raise ReferenceDataError(ReferenceCode.MALFORMED, "expected an object", field=at)
        _check_keys(raw, _FAMILY_KEYS, f"{at}.")
        try:
            domains = frozenset(CareDomain(d) for d in raw["domains"])
            rule = FamilyRule(
                name=name,
                label=str(raw["label"]),
                domains=domains,
                rate_key=str(raw["amo_rate"]),
                doctor_fees=_flag(raw, "doctor_fees"),
                care_pathway=_flag(raw, "care_pathway"),
                participation=_flag(raw, "participation"),
                franchise=raw.get("franchise"),
                tm_required=_flag(raw, "tm_required"),
                rss=_flag(raw, "rss"),
                equipment=raw.get("equipment"),
                lens_complexity=raw.get("lens_complexity"),
                daily_charge=_flag(raw, "daily_charge"),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise ReferenceDataError(
                ReferenceCode.MALFORMED, f"bad family: {exc}", field=at
            ) from exc
        if not domains:
            raise ReferenceDataError(ReferenceCode.MALFORMED, "no domains", field=f"{at}.domains")
        if rule.rate_key not in rates:
            raise ReferenceDataError(
                ReferenceCode.MALFORMED, "unknown AMO rate", field=f"{at}.amo_rate"
            )
        if rule.franchise is not None and rule.franchise not in FRANCHISE_KINDS:
            raise ReferenceDataError(
                ReferenceCode.MALFORMED, "unknown franchise kind", field=f"{at}.franchise"
            )
        if rule.equipment is not None and rule.equipment not in EQUIPMENT_KINDS:
            raise ReferenceDataError(
                ReferenceCode.MALFORMED, "unknown equipment kind", field=f"{at}.equipment"
            )
        if (rule.equipment == "lens") != (rule.lens_complexity in LENS_COMPLEXITIES):
            raise ReferenceDataError(
                ReferenceCode.MALFORMED,
                "lenses, and only lenses, need a lens_complexity",
                field=f"{at}.lens_complexity",
            )
        families[name] = rule
    return MappingProxyType(families)


def _flag(raw: Mapping[str, Any], key: str) -> bool:
    value = raw.get(key, False)
    if not isinstance(value, bool):
        raise TypeError(f"{key} must be true or false")
    return value


def _value_on(periods: tuple[_Period, ...], day: date) -> _Period | None:
    for period in periods:
        if period.covers(day):
            return period
    return None


def _snapshot(
    start: date,
    end: date | None,
    families: Mapping[str, FamilyRule],
    rates: Mapping[str, tuple[_Period, ...]],
    parameters: Mapping[str, tuple[_Period, ...]],
) -> ReferenceRules | None:
    """The rules over ``[start, end]``, or None when a figure is missing in that period."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, periods in parameters.items():
        period = _value_on(periods, start)
        if period is None:
            return None
        values[name] = period.value
        sources[name] = period.source
    rate_values: dict[str, int] = {}
    for name, periods in rates.items():
        period = _value_on(periods, start)
        if period is None:
            return None
        rate_values[name] = period.value
        sources[f"amo_rates.{name}"] = period.source
    return ReferenceRules(
        valid_from=start,
        valid_to=end,
        families=families,
        amo_rates_bp=MappingProxyType(rate_values),
        family_rates_bp=MappingProxyType(
            {name: rate_values[f.rate_key] for name, f in families.items()}
        ),
        hors_parcours_rate_bp=values["hors_parcours_rate"],
        care_pathway_min_age=values["care_pathway_min_age"],
        exemption_age=values["exemption_age"],
        participation_cents=values["participation_forfaitaire"],
        participation_daily_cap_cents=values["participation_daily_cap"],
        participation_annual_cap_cents=values["participation_annual_cap"],
        franchise_cents=MappingProxyType({k: values[f"franchise.{k}"] for k in FRANCHISE_KINDS}),
        franchise_daily_cap_cents=MappingProxyType(
            {k: values[f"franchise_daily_cap.{k}"] for k in ("paramedical", "transport")}
        ),
        franchise_annual_cap_cents=values["franchise_annual_cap"],
        hospital_daily_charge_cents=values["hospital_daily_charge"],
        hospital_daily_charge_psychiatry_cents=values["hospital_daily_charge_psychiatry"],
        non_optam_max_excess_bp=values["responsable.non_optam_max_excess"],
        optam_min_gap_bp=values["responsable.optam_min_gap"],
        optics_frame_cap_cents=values["responsable.optics_frame_cap"],
        optics_equipment_caps=values["responsable.optics_equipment"],
        hearing_class_ii_cap_cents=values["responsable.hearing_class_ii_cap"],
        optics_frame_plv_cents=values["rss.optics_frame_plv"],
        hearing_class_i_plv_cents=values["rss.hearing_class_i_plv"],
        optics_class_b_br_cents=values["optics.class_b_br"],
        hearing_br_adult_cents=values["hearing.class_ii_br_adult"],
        hearing_br_young_cents=values["hearing.class_ii_br_young"],
        hearing_young_age=values["hearing.young_age"],
        glasses_renewal_months=values["renewal.glasses_months"],
        glasses_renewal_months_young=values["renewal.glasses_months_young"],
        renewal_young_age=values["renewal.young_age"],
        hearing_renewal_months=values["renewal.hearing_months"],
        sources=MappingProxyType(sources),
    )
