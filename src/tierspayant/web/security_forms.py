"""The security console's forms read field by field: every bad or empty field gets its
own French message, next to it, with the machine code the services and the API use.

Each reader returns the value it could read and a :class:`Problems` naming every field
that failed (not only the first), so the page shows all of them at once and keeps what
was typed. The HTTP status of the refusal is the API's for the first problem's error
(``render.refusal_status``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from starlette.datastructures import FormData

from tierspayant.domain import containment as rules
from tierspayant.domain.codes import ContainmentCode, IncidentCode, RequestCode
from tierspayant.domain.containment import ContainmentError, ContainmentMode, ScopeKind
from tierspayant.domain.errors import DomainError
from tierspayant.services.errors import ServiceError
from tierspayant.web import forms
from tierspayant.web.render import french_message

PRINCIPAL_MAX = 120
# FINESS or AM number (9 characters, 2A/2B in Corsica), or SIRET (14 digits).
STRUCTURE_NUMBER = re.compile(r"[0-9][0-9AB][0-9]{7}|[0-9]{14}")
# Principal ids as the platform writes them: provider:AM/user:ID, insurer:AMC/staff:ID,
# operator/staff:ID, provider:AM/client:ID, operator:NAME (command line), system:NAME.
PRINCIPAL_ID = re.compile(r"^(?:provider|insurer|operator|system|client)[:/][^\s]+$")
PRINCIPAL_HINT = "par exemple provider:123456789/user:12"


@dataclass(frozen=True, slots=True)
class FieldProblem:
    field: str
    code: str
    message: str  # French, shown next to the field


@dataclass(slots=True)
class Problems:
    """The fields a form got wrong, in the order the form shows them."""

    items: dict[str, FieldProblem] = field(default_factory=dict)

    def add(self, name: str, code: str, message: str) -> None:
        self.items.setdefault(name, FieldProblem(name, code, message))

    def __bool__(self) -> bool:
        return bool(self.items)

    def get(self, name: str) -> FieldProblem | None:
        return self.items.get(name)

    @property
    def first(self) -> FieldProblem:
        return next(iter(self.items.values()))

    def error(self) -> DomainError:
        """The first problem as the error the API would raise (its status and code)."""
        first = self.first
        if first.code.startswith("containment."):
            return ContainmentError(first.code, first.message, field=first.field)
        return ServiceError(first.code, first.message, field=first.field)


@dataclass(frozen=True, slots=True)
class FormState:
    """A console form as the page shows it back: what was typed and what was wrong."""

    values: dict[str, str] = field(default_factory=dict)
    problems: Problems = field(default_factory=Problems)


def typed(form: FormData, names: tuple[str, ...], max_length: int = 500) -> dict[str, str]:
    """What was typed, to put back in the fields (bounded)."""
    return {name: str(form.get(name) or "")[:max_length] for name in names}


def _day(form: FormData, name: str, what: str, problems: Problems) -> date | None:
    if not forms.text(form, name, max_length=40, required=False):
        problems.add(name, RequestCode.PORTAL_FORM, f"Indiquez la date {what} (JJ/MM/AAAA).")
        return None
    try:
        return forms.day(form, name)
    except ServiceError:
        problems.add(
            name, RequestCode.PORTAL_FORM, f"Date {what} invalide : écrivez-la JJ/MM/AAAA."
        )
        return None


def _bounded(form: FormData, name: str, max_length: int, problems: Problems) -> str | None:
    raw = form.get(name)
    value = raw.strip() if isinstance(raw, str) else ""
    if len(value) > max_length:
        problems.add(name, RequestCode.PORTAL_FORM, f"Trop long : {max_length} caractères au plus.")
        return None
    return value or None


def principal_problem(value: str | None) -> str | None:
    """Why a typed principal id cannot be one (None if it can)."""
    if value is None:
        return f"Indiquez l'identifiant du compte ({PRINCIPAL_HINT})."
    if not PRINCIPAL_ID.match(value):
        return f"Identifiant de compte mal formé ({PRINCIPAL_HINT})."
    return None


@dataclass(frozen=True, slots=True)
class IncidentAsk:
    start: date
    end: date  # inclusive
    principal: str | None
    structure: str | None


INCIDENT_FIELDS = ("principal", "structure", "start", "end")


def incident_ask(form: FormData) -> tuple[IncidentAsk | None, Problems]:
    """The incident scope form: one account or one structure, and a window of days."""
    problems = Problems()
    principal = _bounded(form, "principal", PRINCIPAL_MAX, problems)
    structure = _bounded(form, "structure", 20, problems)
    if principal is not None and (why := principal_problem(principal)):
        problems.add("principal", IncidentCode.PRINCIPAL, why)
    if structure is not None and not STRUCTURE_NUMBER.fullmatch(structure):
        problems.add(
            "structure",
            RequestCode.PORTAL_FORM,
            "Numéro de structure : FINESS ou n° AM (9 caractères), ou SIRET (14 chiffres).",
        )
    if principal is None and structure is None and not problems:
        problems.add(
            "principal",
            IncidentCode.CRITERIA,
            "Indiquez le compte en cause, ou à défaut la structure.",
        )
    elif principal is not None and structure is not None:
        problems.add(
            "structure",
            IncidentCode.CRITERIA,
            "Indiquez soit un compte, soit une structure, pas les deux.",
        )
    start = _day(form, "start", "de début", problems)
    end = _day(form, "end", "de fin", problems)
    if start is not None and end is not None and end < start:
        problems.add(
            "end", IncidentCode.WINDOW, "La date de fin doit être le jour de début ou après."
        )
    if problems or start is None or end is None:
        return None, problems
    return IncidentAsk(start, end, principal, structure), problems


def principal_field(form: FormData) -> tuple[str | None, Problems]:
    """The principal of the revoke and reinstate forms."""
    problems = Problems()
    value = _bounded(form, "principal", PRINCIPAL_MAX, problems)
    if not problems and (why := principal_problem(value)):
        code = RequestCode.PORTAL_FORM if value is None else IncidentCode.PRINCIPAL
        problems.add("principal", code, why)
    return (None if problems else value), problems


def from_error(exc: DomainError, default_field: str) -> Problems:
    """A service's refusal as a problem of its field (or of ``default_field``)."""
    problems = Problems()
    problems.add(exc.field or default_field, exc.code, french_message(exc))
    return problems


@dataclass(frozen=True, slots=True)
class Proposal:
    scope: str
    mode: str
    reason: str
    hours: int | None


PROPOSAL_FIELDS = ("scope_kind", "scope_value", "mode", "reason", "hours")
SCOPE_VALUE_HINTS = {
    ScopeKind.INSURER: "Indiquez le numéro AMC de l'organisme (chiffres).",
    ScopeKind.STRUCTURE: "Indiquez le numéro de la structure : FINESS, SIRET ou n° AM (chiffres).",
    ScopeKind.CATEGORY: "Indiquez une catégorie de professionnels de la liste.",
    ScopeKind.ROUTE: "Indiquez un type de consultation de la liste.",
}


def _reason(form: FormData, problems: Problems, name: str = "reason") -> str | None:
    raw = form.get(name)
    try:
        return rules.check_reason(raw if isinstance(raw, str) else "")
    except ContainmentError as exc:
        problems.add(name, exc.code, french_message(exc))
        return None


def proposal(form: FormData) -> tuple[Proposal | None, Problems]:
    """The containment proposal form: scope, mode, reason, optional duration."""
    problems = Problems()
    kind_text = str(form.get("scope_kind") or "").strip()
    value = str(form.get("scope_value") or "").strip()
    scope: str | None = None
    try:
        kind = ScopeKind(kind_text)
    except ValueError:
        problems.add("scope_kind", ContainmentCode.SCOPE, "Choisissez un périmètre de la liste.")
    else:
        text = kind.value if kind is ScopeKind.PLATFORM else f"{kind.value}:{value}"
        if kind is ScopeKind.PLATFORM and value:
            problems.add(
                "scope_value",
                ContainmentCode.SCOPE,
                "Toute la plateforme : laissez la valeur vide.",
            )
        else:
            try:
                scope = str(rules.parse_scope(text))
            except ContainmentError:
                problems.add("scope_value", ContainmentCode.SCOPE, SCOPE_VALUE_HINTS[kind])
    mode: str | None = None
    try:
        mode = ContainmentMode(str(form.get("mode") or "").strip()).value
    except ValueError:
        problems.add("mode", ContainmentCode.MODE, rules.REFUSALS_FR[ContainmentCode.MODE])
    reason = _reason(form, problems)
    hours: int | None = None
    try:
        hours = forms.optional_integer(form, "hours", low=1, high=rules.MAX_HOURS)
    except ServiceError:
        problems.add(
            "hours",
            ContainmentCode.DURATION,
            f"Durée : un nombre entier d'heures de 1 à {rules.MAX_HOURS}, ou vide.",
        )
    if problems or scope is None or mode is None or reason is None:
        return None, problems
    return Proposal(scope, mode, reason, hours), problems


def lift_reason(form: FormData) -> tuple[str | None, Problems]:
    """The reason of a lift proposal."""
    problems = Problems()
    return _reason(form, problems), problems
