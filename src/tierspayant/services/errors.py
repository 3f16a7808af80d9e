"""Errors of the use cases, each with a stable code and the HTTP status it maps to."""

from __future__ import annotations

from tierspayant.domain.errors import DomainError


class ServiceError(DomainError):
    """A use case refused the request. ``status`` is the HTTP status the API answers."""

    status: int = 400

    def __init__(
        self, code: str, message: str, *, field: str | None = None, status: int | None = None
    ) -> None:
        super().__init__(code, message, field=field)
        if status is not None:
            self.status = status


class NotFound(ServiceError):
    status = 404


class Conflict(ServiceError):
    status = 409


class Unauthenticated(ServiceError):
    status = 401


class Forbidden(ServiceError):
    status = 403


class TooManyRequests(ServiceError):
    status = 429

    def __init__(self, code: str, message: str, *, retry_after: int = 60) -> None:
        super().__init__(code, message)
        self.retry_after = retry_after


class Unavailable(ServiceError):
    """A component the use case needs is down or switched off (retry later)."""

    status = 503


class NotInitialised(ServiceError):
    """The platform has no database schema or no keyring yet (run ``tierspayant init``)."""

    status = 503
