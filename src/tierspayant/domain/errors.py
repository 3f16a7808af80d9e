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
