"""Errors a caller can act on, each with a stable machine-readable code.

Codes are dotted, lower case, and never change once published: ``nir.bad_key``,
``catalogue.responsable.covers_participation``. The API maps them to HTTP 4xx, the CLI
to a message and a non-zero exit status.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

_NO_DETAILS: Mapping[str, str | int] = MappingProxyType({})


class DomainError(Exception):
    """Base of every error raised by a rule of the domain.

    ``details``: where in a file the fault is (``line``, ``column``, ``path``) and the
    offending ``value``, masked if it is personal data; the API adds them to its answer
    next to ``code``, ``message`` and ``field``.
    """

    code: str = "domain.error"

    def __init__(
        self,
        code: str,
        message: str,
        *,
        field: str | None = None,
        details: Mapping[str, str | int] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.details: Mapping[str, str | int] = _NO_DETAILS if details is None else details

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.message!r}, field={self.field!r})"


class InvalidIdentifier(DomainError):
    """An identifier (NIR, RPPS, FINESS, IBAN…) is malformed or fails its check digit."""


class CatalogueError(DomainError):
    """A guarantee catalogue is malformed or breaks a regulatory rule."""


class PricingError(DomainError):
    """A calculation cannot be made from the lines given (inconsistent amounts, unknown code)."""


class EligibilityError(DomainError):
    """A rights-check request is not well formed."""


class FhirUnreadable(DomainError):
    """A body sent to the FHIR interface is not a FHIR resource (not JSON, not an object)."""


class FhirInvalid(DomainError):
    """A FHIR resource the interface cannot act on: wrong type, missing or unknown element."""


class FhirRefused(DomainError):
    """A FHIR interaction the interface does not offer: searches, unknown resource types."""


class FhirNotAllowed(DomainError):
    """A FHIR interaction on a resource type the interface lists, but not this interaction."""
