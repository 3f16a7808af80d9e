"""The FHIR R4 interface (``/fhir``): an entry point beside ``/v1`` on the same services.

A FHIR request is a lookup like any other: the same principal, the same guard, the same
audit events as the ``/v1`` route it mirrors. The mapping of resources is a format
(:mod:`tierspayant.formats.fhir`); every refusal is an ``OperationOutcome`` (rendered by
``api/errors.py`` for paths under ``/fhir``). See ``docs/fhir.md``.
"""

from __future__ import annotations

PREFIX = "/fhir"


def is_fhir_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")
