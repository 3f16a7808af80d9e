"""Errors of the use cases: each class names a kind of failure, each carries a stable code.

The class says what went wrong for the caller (not found, conflict, refused…), never how
an entry point answers it: ``api/errors.py`` maps each class to an HTTP status and
``cli/common.py`` to an exit status, each in one table. Codes are the members of the
registries in :mod:`tierspayant.domain.codes`.
"""

from __future__ import annotations

from tierspayant.app.platform import NotInitialised as NotInitialised
from tierspayant.domain.errors import DomainError


class ServiceError(DomainError):
    """A use case refused the request as given (a bad or missing value, a wrong option)."""

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(code, message, field=field)


class Unprocessable(ServiceError):
    """The request is well formed but the facts do not allow an answer (no rights…)."""


class NotFound(ServiceError):
    """The thing named does not exist, or not for this caller."""


class Conflict(ServiceError):
    """The request contradicts the current state (already done, reused key, running)."""


class Unauthenticated(ServiceError):
    """The caller is not (or no longer) identified well enough."""


class Forbidden(ServiceError):
    """The caller is identified but may not do this."""


class TooManyRequests(ServiceError):
    """The caller went over a limit; ``retry_after`` seconds later it may pass."""

    def __init__(self, code: str, message: str, *, retry_after: int = 60) -> None:
        super().__init__(code, message)
        self.retry_after = retry_after


class Unavailable(ServiceError):
    """A component the use case needs is down or switched off (retry later)."""
