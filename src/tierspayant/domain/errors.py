"""Errors a caller can act on, each with a stable machine-readable code.

Codes are dotted, lower case, and never change once published: ``nir.bad_key``,
``catalogue.responsable.covers_participation``. The API maps them to HTTP 4xx, the CLI
to a message and a non-zero exit status.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error raised by a rule of the domain."""

    code: str = "domain.error"

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field

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
