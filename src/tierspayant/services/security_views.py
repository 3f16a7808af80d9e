"""What the security console shows, with names: alerts, suspended principals, each
structure's figures against its cap, canaries, containment switches.

Every screen resolves the principals, structures and insurers it shows in one batch
(``store.read_models.principal_names``): a principal is read as « Marie Dupont,
professionnel (portail) — Pharmacie des Lilas (FINESS 750000001) », a structure by its
name and its one number (``domain.structures``), never by a raw key alone. Names of
professionals, software and staff only: nothing here reads a beneficiary.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from tierspayant.app.platform import Platform
from tierspayant.domain.containment import ScopeKind
from tierspayant.domain.structures import (
    StatusReason,
    StructureRef,
    parse_status_reason,
    unknown_structure,
)
from tierspayant.services import containment, portal_views
from tierspayant.store.read_models import principal_names
from tierspayant.store.read_models.principal_names import InsurerRef, PrincipalName
from tierspayant.store.read_models.security import AlertRow, StructureDay, SuspendedRow

TOP_STRUCTURES = 15
"""Structures the caps chart shows: the closest to their cap first."""

__all__ = [
    "TOP_STRUCTURES",
    "InsurerRef",
    "Names",
    "PrincipalName",
    "StructureFigure",
    "StructureRef",
    "SuspendedView",
    "console_view",
    "containment_view",
    "names",
    "structure_figures",
]


@dataclass(frozen=True, slots=True)
class Names:
    """The names one screen needs, resolved together."""

    principals: dict[str, PrincipalName] = field(default_factory=dict)
    structures: dict[str, StructureRef] = field(default_factory=dict)
    insurers: dict[str, InsurerRef] = field(default_factory=dict)

    def principal(self, principal_id: str) -> PrincipalName:
        return self.principals.get(principal_id) or PrincipalName(principal_id, "unknown")

    def structure(self, number: str) -> StructureRef:
        return self.structures.get(number) or unknown_structure(number)

    def insurer(self, amc_number: str) -> InsurerRef:
        return self.insurers.get(amc_number) or InsurerRef(amc_number)


def names(
    platform: Platform,
    *,
    principals: Iterable[str | None] = (),
    structures: Iterable[str | None] = (),
    insurers: Iterable[str | None] = (),
) -> Names:
    """Resolve principal ids, structure numbers and AMC numbers in one connection."""
    with platform.engine.connect() as conn:
        return Names(
            principal_names.resolve_principals(conn, principals),
            principal_names.resolve_structures(conn, structures),
            principal_names.insurer_refs(conn, insurers),
        )


@dataclass(frozen=True, slots=True)
class SuspendedView:
    """A suspended principal with its reason read back (labels, or the text as typed)."""

    row: SuspendedRow
    reason: StatusReason | None


@dataclass(frozen=True, slots=True)
class StructureFigure:
    """One structure's distinct beneficiaries today, named, against its thresholds."""

    structure: StructureRef
    category: str
    distinct: int
    soft: int
    cap: int

    @property
    def percent(self) -> int | None:
        """Share of the cap used, in whole percent (None without a cap)."""
        return None if self.cap <= 0 else self.distinct * 100 // self.cap


@dataclass(frozen=True, slots=True)
class ConsoleView:
    alerts: list[AlertRow]
    suspended: list[SuspendedView]
    figures: list[StructureFigure]
    names: Names


def _closest_first(figures: list[StructureDay]) -> list[StructureDay]:
    """Closest to the cap first, then the most beneficiaries (without a cap), then the
    number: the order is the same on every refresh."""
    return sorted(
        figures,
        key=lambda f: (-(f.distinct * 10_000 // f.cap) if f.cap else 0, -f.distinct, f.structure),
    )


def structure_figures(platform: Platform, top: int = TOP_STRUCTURES) -> list[StructureFigure]:
    """The ``top`` structures closest to their daily cap, named."""
    figures = _closest_first(portal_views.structure_figures(platform))[:top]
    named = names(platform, structures=(f.structure for f in figures))
    return [
        StructureFigure(named.structure(f.structure), f.category, f.distinct, f.soft, f.cap)
        for f in figures
    ]


def console_view(platform: Platform) -> ConsoleView:
    """The console's home: alerts, suspended principals, structures, all named."""
    alerts = portal_views.alerts(platform)
    suspended = [
        SuspendedView(row, parse_status_reason(row.reason))
        for row in portal_views.suspended_principals(platform)
    ]
    figures = _closest_first(portal_views.structure_figures(platform))[:TOP_STRUCTURES]
    principals: list[str | None] = [a.principal for a in alerts]
    for view in suspended:
        principals += [view.row.id, view.row.requested_by]
        principals += list(view.reason.actors) if view.reason is not None else []
    named = names(
        platform,
        principals=principals,
        structures=[*(a.structure for a in alerts), *(f.structure for f in figures)],
        insurers=[a.insurer for a in alerts],
    )
    return ConsoleView(
        alerts,
        suspended,
        [
            StructureFigure(named.structure(f.structure), f.category, f.distinct, f.soft, f.cap)
            for f in figures
        ],
        named,
    )


def alerts_view(platform: Platform) -> tuple[list[AlertRow], Names]:
    """The live alerts fragment: latest alerts, named."""
    alerts = portal_views.alerts(platform)
    return alerts, names(
        platform,
        principals=[a.principal for a in alerts],
        structures=[a.structure for a in alerts],
        insurers=[a.insurer for a in alerts],
    )


def containment_view(platform: Platform) -> tuple[list[containment.SwitchView], Names]:
    """Recent containment switches, with their operators and scopes named."""
    views = containment.status(platform)
    principals: list[str | None] = []
    structures: list[str] = []
    insurers: list[str] = []
    for view in views:
        s = view.switch
        principals += [s.proposer, s.approver, s.lift_proposer, s.lifter]
        if s.scope.kind is ScopeKind.STRUCTURE:
            structures.append(s.scope.value)
        elif s.scope.kind is ScopeKind.INSURER:
            insurers.append(s.scope.value)
    return views, names(platform, principals=principals, structures=structures, insurers=insurers)
