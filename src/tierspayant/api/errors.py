"""One error shape for every refusal: ``{"error": {"code", "message", "field"}}``.

Under ``/fhir`` the same refusal, with the same status and code, is an OperationOutcome
(the code in ``issue.details.coding``): :func:`_answer` chooses the shape by path.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tierspayant.api.fhir import is_fhir_path
from tierspayant.domain.codes import GuardCode, PlatformCode, RequestCode
from tierspayant.domain.errors import (
    DomainError,
    FhirInvalid,
    FhirNotAllowed,
    FhirRefused,
    FhirUnreadable,
)
from tierspayant.formats.fhir.write import MEDIA_TYPE as FHIR_MEDIA_TYPE
from tierspayant.formats.fhir.write import operation_outcome
from tierspayant.formats.strict_json import DuplicateJsonKey
from tierspayant.security.ratelimit import RateLimitStoreDown
from tierspayant.services.errors import (
    Conflict,
    Forbidden,
    NotFound,
    NotInitialised,
    ServiceError,
    TooManyRequests,
    Unauthenticated,
    Unavailable,
    Unprocessable,
)
from tierspayant.services.run_failures import DATABASE_ERRORS, is_busy, is_lost

log = structlog.get_logger("tierspayant.api")


def error_body(
    code: str, message: str, field: str | None = None, **extra: object
) -> dict[str, object]:
    body: dict[str, object] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    body.update(extra)
    return {"error": body}


HTTP_STATUS: dict[type[DomainError], int] = {
    DomainError: 422,  # a rule of the domain refused a value (malformed NIR, bad catalogue…)
    ServiceError: 400,
    Unprocessable: 422,
    NotFound: 404,
    Conflict: 409,
    Unauthenticated: 401,
    Forbidden: 403,
    TooManyRequests: 429,
    Unavailable: 503,
    NotInitialised: 503,
    FhirUnreadable: 400,
    DuplicateJsonKey: 400,
    FhirInvalid: 422,
    FhirRefused: 403,
    FhirNotAllowed: 405,
}
"""The HTTP status of each kind of refusal: the one place the API decides it. A class not
listed answers the status of its nearest listed ancestor."""


def http_status(exc: DomainError) -> int:
    """The status the API answers ``exc`` with (see :data:`HTTP_STATUS`)."""
    return next(HTTP_STATUS[kind] for kind in type(exc).__mro__ if kind in HTTP_STATUS)


def _validation_code(error: dict[str, object]) -> str:
    kind = str(error.get("type", ""))
    if kind == "extra_forbidden":
        return RequestCode.UNKNOWN_FIELD
    if kind == "missing":
        return RequestCode.MISSING_FIELD
    if kind == "json_invalid":
        return RequestCode.MALFORMED_JSON
    if kind.startswith(("date", "datetime")):
        return RequestCode.INVALID_DATE
    return RequestCode.INVALID_VALUE


def _is_json(request: Request) -> bool:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _location(error: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(part) for part in error.get("loc", ()))


def _wrong_media_type(request: Request, error: Mapping[str, Any]) -> bool:
    """A JSON body sent under another content type: the framework never parsed it."""
    return (
        _location(error) == ("body",)
        and error.get("type") == "model_attributes_type"
        and not _is_json(request)
    )


def _field(error: Mapping[str, Any]) -> str | None:
    if error.get("type") == "json_invalid":
        return None  # its location is a character offset, not a field
    return ".".join(part for part in _location(error) if part != "body") or None


def _answer(
    request: Request,
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: object,
) -> JSONResponse:
    """The refusal in the shape of the route: ``{"error": …}``, or an OperationOutcome."""
    if is_fhir_path(request.url.path):
        return JSONResponse(
            operation_outcome(code, message, status, field),
            status,
            headers=headers,
            media_type=FHIR_MEDIA_TYPE,
        )
    return JSONResponse(error_body(code, message, field, **extra), status, headers=headers)


def _busy(request: Request) -> JSONResponse:
    return _answer(
        request,
        503,
        PlatformCode.DATABASE_BUSY,
        "the database is busy with other writes; try again",
        headers={"Retry-After": "1"},
    )


# A connection lost under a request (at its COMMIT, or past the one second run of
# ``store/reconnect.py``) leaves a write's outcome unknown. Sending it again is safe: an
# invoice is applied once per invoice number, a prior authorisation once per
# ``request_key``, a calculation once per ``Idempotency-Key`` (its kept answer comes
# back); without a key, the same calculation while its engagement is open answers that
# engagement, priced again (docs/api.md, "Retries and idempotency").
LOST_CONNECTION_MESSAGE = (
    "the database connection was lost or refused; retry the request (a write sent again "
    "under the same invoice number, request_key or Idempotency-Key is applied once)"
)


def _lost(request: Request) -> JSONResponse:
    return _answer(
        request,
        503,
        PlatformCode.DATABASE_UNAVAILABLE,
        LOST_CONNECTION_MESSAGE,
        headers={"Retry-After": "2"},
    )


def install_error_handlers(app: FastAPI) -> None:
    """Map every failure to a 4xx with a stable code; a 500 only for a real bug."""
    # The portals mounted on this app answer their refusal pages with the same statuses.
    app.state.http_status = http_status

    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError) -> JSONResponse:
        headers = {}
        if isinstance(exc, TooManyRequests):
            headers["Retry-After"] = str(exc.retry_after)
        if exc.code.startswith("auth.invalid"):
            headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        return _answer(
            request, http_status(exc), exc.code, exc.message, exc.field, headers, **exc.details
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        first = errors[0] if errors else {"type": "value_error", "loc": (), "msg": "invalid"}
        if _wrong_media_type(request, first):
            return _answer(
                request,
                415,
                RequestCode.UNSUPPORTED_MEDIA_TYPE,
                "send the body as application/json",
            )
        code = _validation_code(first)
        status = 400 if code == RequestCode.MALFORMED_JSON else 422
        details = [
            {"code": _validation_code(e), "field": _field(e), "message": str(e.get("msg", ""))}
            for e in errors[:20]
        ]
        # Never echo the submitted values back: they may be identifiers.
        message = str(first.get("msg", "invalid request"))
        return _answer(request, status, code, message, _field(first), details=details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {
            404: RequestCode.ROUTE_NOT_FOUND,
            405: RequestCode.ROUTE_METHOD_NOT_ALLOWED,
            413: RequestCode.TOO_LARGE,
        }
        code = codes.get(exc.status_code, f"http.{exc.status_code}")
        if exc.status_code == 400:
            # The framework could not parse the body (too deep, a huge number, bad UTF-8…).
            code = RequestCode.MALFORMED_JSON if _is_json(request) else RequestCode.MALFORMED_BODY
        return _answer(request, exc.status_code, code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(RateLimitStoreDown)
    async def limits_down(request: Request, _exc: RateLimitStoreDown) -> JSONResponse:
        return _answer(
            request,
            503,
            GuardCode.LIMITS_UNAVAILABLE,
            "lookups are paused: the limit store is down",
            headers={"Retry-After": "30"},
        )

    async def database_error(request: Request, exc: Exception) -> JSONResponse:
        if is_busy(exc):
            return _busy(request)
        if is_lost(exc):
            # The class only: a driver's message may quote the statement's values.
            log.warning("db.connection_lost", error=type(exc).__name__)
            return _lost(request)
        raise exc  # anything else is a fault: the server's 500

    for kind in DATABASE_ERRORS:
        app.add_exception_handler(kind, database_error)

    @app.exception_handler(json.JSONDecodeError)
    async def bad_json(request: Request, _exc: json.JSONDecodeError) -> JSONResponse:
        return _answer(request, 400, RequestCode.MALFORMED_JSON, "body is not valid JSON")
