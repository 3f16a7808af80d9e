"""Each kind of refusal answers one HTTP status, from the one table of ``api/errors.py``.

The services raise errors without a status; these statuses are what provider software
already sees, so the table is pinned here, and walked through a real application.
"""

from __future__ import annotations

import inspect

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tierspayant.api.errors import HTTP_STATUS, http_status, install_error_handlers
from tierspayant.domain.codes import ClaimCode
from tierspayant.domain.errors import (
    DomainError,
    FhirInvalid,
    FhirNotAllowed,
    FhirRefused,
    FhirUnreadable,
    InvalidIdentifier,
)
from tierspayant.formats.strict_json import DuplicateJsonKey
from tierspayant.services import errors
from tierspayant.services.enrolment import TerminationsNotConfirmed

PUBLISHED = {
    DomainError: 422,
    errors.ServiceError: 400,
    errors.Unprocessable: 422,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.Unauthenticated: 401,
    errors.Forbidden: 403,
    errors.TooManyRequests: 429,
    errors.Unavailable: 503,
    errors.NotInitialised: 503,
    # The FHIR interface (docs/fhir.md): refusals answered as OperationOutcomes.
    FhirUnreadable: 400,
    FhirInvalid: 422,
    FhirRefused: 403,
    FhirNotAllowed: 405,
    # A request body naming a JSON key twice (formats/strict_json.py).
    DuplicateJsonKey: 400,
}


def _service_error_classes() -> set[type[errors.ServiceError]]:
    return {
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.ServiceError) and cls.__module__ == errors.__name__
    }


def test_the_table_is_the_published_statuses() -> None:
    # Given the table and the statuses provider software already sees
    # Then they are the same, and every kind of service error has its own row
    assert HTTP_STATUS == PUBLISHED
    assert _service_error_classes() <= set(HTTP_STATUS)


def test_errors_carry_no_status() -> None:
    # Given every kind of service error
    for cls in _service_error_classes():
        # Then none knows an HTTP status: the API decides it
        assert not hasattr(cls, "status"), cls


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (InvalidIdentifier(ClaimCode.LINES, "x"), 422),  # a subclass of DomainError
        (
            TerminationsNotConfirmed(
                ClaimCode.LINES, "x", terminations=9, covered=10, threshold_bp=500, confirmed=None
            ),
            409,
        ),
    ],
)
def test_subclasses_answer_their_nearest_listed_ancestor(error: DomainError, status: int) -> None:
    assert http_status(error) == status


@pytest.mark.parametrize(("cls", "status"), list(PUBLISHED.items()))
def test_each_kind_is_answered_with_its_status(cls: type[DomainError], status: int) -> None:
    # Given an application whose route raises one kind of error
    app = FastAPI()
    install_error_handlers(app)
    error = cls(ClaimCode.UNKNOWN, "refused")

    @app.get("/refuse")
    def refuse() -> None:
        raise error

    # When it is called
    answer = TestClient(app).get("/refuse")
    # Then the status is the table's, and the body the usual coded error
    assert answer.status_code == status
    assert answer.json() == {"error": {"code": "claim.unknown", "message": "refused"}}
