"""How the security console, alerts and incident notices name who acted: one identifier
per structure, and the reasons stored with a principal's status read back as codes.

**One identifier per structure.** The guard, the audit log and containment all key a
structure on one number: its FINESS, else its SIRET, else the AM number of the
professional (``store.providers.Provider.structure``). People read that same number,
always written with its kind and after the structure's name:
« Pharmacie des Lilas (FINESS 750000001) ». The AM number of a professional inside a
structure is an internal key of principals (``provider:AM/user:ID``), shown only as the
raw id analysts may copy.

**Status reasons.** A principal's ``status_reason`` is written by the guard
(``guard.human_speed: …``), by the console (``revoked by operator/staff:3``), by the
reinstatement (``reinstated by A and B``) or typed by an analyst on the command line.
:func:`parse_status_reason` reads it back as a label code (``kind``/``code``), the
principals it names, and, for a reason typed by a person, the text as typed.
Nothing here does I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class NumberKind(StrEnum):
    """The kind of number a structure is known by."""

    FINESS = "finess"
    SIRET = "siret"
    AM = "am"

    @property
    def prefix(self) -> str:
        """How the number is introduced in French text."""
        return {"finess": "FINESS", "siret": "SIRET", "am": "n° AM"}[self.value]


@dataclass(frozen=True, slots=True)
class StructureRef:
    """A structure as people read it: its name and its one number."""

    number: str
    kind: NumberKind
    name: str | None = None

    @property
    def reference(self) -> str:
        """``FINESS 750000001``."""
        return f"{self.kind.prefix} {self.number}"

    @property
    def text(self) -> str:
        """``Pharmacie des Lilas (FINESS 750000001)``, or the reference alone if unnamed."""
        return f"{self.name} ({self.reference})" if self.name else self.reference


def structure_ref(
    finess: str | None, siret: str | None, am_number: str, name: str | None = None
) -> StructureRef:
    """The structure a professional acts for, by the number the platform keys it on."""
    if finess:
        return StructureRef(finess, NumberKind.FINESS, name)
    if siret:
        return StructureRef(siret, NumberKind.SIRET, name)
    return StructureRef(am_number, NumberKind.AM, name)


def unknown_structure(number: str) -> StructureRef:
    """A structure number no provider holds any more: its kind guessed from its length
    (FINESS 9 digits, SIRET 14; an AM number is also 9 digits, read as a FINESS)."""
    kind = NumberKind.SIRET if len(number) == 14 else NumberKind.FINESS
    return StructureRef(number, kind)


@dataclass(frozen=True, slots=True)
class StatusReason:
    """A stored status reason read back: a label (``kind``, ``code``) and the principals
    it names, or the text an analyst typed (``typed``), shown as typed."""

    kind: str | None = None  # a labels.Kind value: "alert" or "operation"
    code: str | None = None
    actors: tuple[str, ...] = ()
    typed: str | None = None


_ALERT = re.compile(r"^((?:guard|canary)\.[a-z_]+)(?::|$)")
_REVOKED = re.compile(r"^revoked by (\S+)$")
_REINSTATED = re.compile(r"^reinstated by (\S+) and (\S+)$")
SYSTEM_REASONS = {
    "incident response": "incident.revoke",
    "suspend": "suspend",
}
"""Fixed English reasons the services write, and the operation each stands for."""


def parse_status_reason(reason: str | None) -> StatusReason | None:
    """Read a stored reason back (None when there is none)."""
    if not reason or not reason.strip():
        return None
    text = reason.strip()
    if found := _ALERT.match(text):
        return StatusReason("alert", found.group(1))
    if found := _REVOKED.match(text):
        return StatusReason("operation", "principal.revoke", (found.group(1),))
    if found := _REINSTATED.match(text):
        return StatusReason("operation", "principal.reinstate", found.groups())
    if text in SYSTEM_REASONS:
        return StatusReason("operation", SYSTEM_REASONS[text])
    return StatusReason(typed=text)
