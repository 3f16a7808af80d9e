"""The scope as files: JSON or CSV for the responder, the JSON read back for the notices.

Every file is written readable by its owner only: scopes and letters may name people.
"""

from __future__ import annotations

import json
import os
from dataclasses import fields
from datetime import UTC
from pathlib import Path
from typing import Any

from tierspayant.domain.codes import IncidentCode
from tierspayant.formats import french_csv
from tierspayant.services.errors import ServiceError
from tierspayant.services.incident.scope import IncidentScope, ScopedRecord

# The JSON keys of a scope record, and the French headers of the CSV for people.
CSV_FIELDS = (
    "insurer",
    "beneficiary_id",
    "pseudonym",
    "reads",
    "first_read",
    "last_read",
    "last_name",
    "first_name",
    "nir",
)
_ROW_FIELDS = tuple(f for f in fields(ScopedRecord) if f.name != "actions")
CSV_COLUMNS = (
    "Organisme",
    "Id bénéficiaire",
    "Pseudonyme",
    "Consultations",
    "Première consultation",
    "Dernière consultation",
    "Nom",
    "Prénom",
    "NIR",
)


def _row(record: ScopedRecord) -> dict[str, Any]:
    # Every field but ``actions`` (added by ``scope_document``), in declaration order.
    values = {f.name: getattr(record, f.name) for f in _ROW_FIELDS}
    values["first_read"] = record.first_read.astimezone(UTC).isoformat()
    values["last_read"] = record.last_read.astimezone(UTC).isoformat()
    return values


def scope_document(result: IncidentScope) -> dict[str, Any]:
    """The scope as a JSON-ready document (what ``incident notices`` reads back)."""
    return {
        "format": "tierspayant.incident-scope.v1",
        "criteria": result.criteria.describe(),
        "generated_at": result.generated_at.astimezone(UTC).isoformat(),
        "events_scanned": result.events_scanned,
        "people": result.people,
        # Whom the scope is about, named, and what was done since (suspension,
        # revocation, containment): the notices say only what these record.
        "subject_name": result.subject_name,
        "measures": list(result.measures),
        "insurers": [
            {
                "amc_number": s.amc_number,
                "name": s.name,
                "people": s.people,
                "reads": s.reads,
                "unresolved": s.unresolved,
                "actions": list(s.actions),
                "records": [{**_row(r), "actions": sorted(r.actions)} for r in s.records],
            }
            for s in result.insurers
        ],
    }


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read: scopes and letters may name people."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)


def write_scope(result: IncidentScope, path: Path) -> None:
    """Write the scope as JSON (``.json``, read back by ``incident notices``) or as a
    French CSV (any other suffix), mode 0600."""
    if path.suffix == ".json":
        document = json.dumps(scope_document(result), indent=2, ensure_ascii=False)
        _write_private(path, document + "\n")
        return
    # Plain attributes: read directly (``asdict`` per field deep-copied each record
    # nine times, seconds for a scraper's tens of thousands of people).
    rows = (
        tuple(getattr(record, field) for field in CSV_FIELDS)
        for scope in result.insurers
        for record in scope.records
    )
    # For the responder's spreadsheet: a French CSV (dates in Paris, BOM).
    _write_private(path, french_csv.text(CSV_COLUMNS, rows))


def load_scope_document(path: Path) -> dict[str, Any]:
    """Read a scope written by :func:`write_scope` as JSON."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ServiceError(IncidentCode.SCOPE_FILE, f"{path.name} is not a scope file") from exc
    if not isinstance(document, dict) or document.get("format") != "tierspayant.incident-scope.v1":
        raise ServiceError(IncidentCode.SCOPE_FILE, f"{path.name} is not a JSON scope file")
    return document
