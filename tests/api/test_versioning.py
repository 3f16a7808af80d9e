"""A deprecated route says so: in the OpenAPI document and in every answer's headers.

A test application declares one deprecated route (with a successor), one without a
successor and one current route; the real application is checked to deprecate nothing
without declaring its dates (no route of ``/v1`` is deprecated today: no alias exists).
"""

from __future__ import annotations

import warnings
from datetime import date
from email.utils import parsedate_to_datetime

import pytest
from fastapi import APIRouter, FastAPI

from tests.api.world import World
from tierspayant.api.deps import Policy, policy
from tierspayant.api.errors import install_error_handlers
from tierspayant.api.versioning import DEPRECATION_KEY, Deprecation, DeprecationHeadersMiddleware
from tierspayant.domain.codes import AuthCode
from tierspayant.services.errors import Forbidden

with warnings.catch_warnings():
    # Starlette prefers httpx2 to httpx; the client works the same.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

OLD = Deprecation(since=date(2026, 3, 1), sunset=date(2027, 3, 1), successor="/v1/new")


def deprecated_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(DeprecationHeadersMiddleware)
    router = APIRouter(prefix="/v1")

    @router.get("/old", **policy(Policy.PUBLIC, deprecation=OLD))
    def old() -> dict[str, str]:
        return {"answer": "old"}

    @router.get("/refused", **policy(Policy.PUBLIC, deprecation=OLD))
    def refused() -> dict[str, str]:
        raise Forbidden(AuthCode.WRONG_PRINCIPAL, "not for you")

    lone = Deprecation(since=date(2026, 3, 1), sunset=date(2027, 6, 1))

    @router.get("/lone", **policy(Policy.PUBLIC, deprecation=lone))
    def alone() -> dict[str, str]:
        return {"answer": "lone"}

    @router.get("/new", **policy(Policy.PUBLIC))
    def new() -> dict[str, str]:
        return {"answer": "new"}

    app.include_router(router)
    return app


def test_given_a_deprecated_route_then_the_openapi_document_marks_it_with_its_dates() -> None:
    paths = deprecated_app().openapi()["paths"]
    operation = paths["/v1/old"]["get"]
    assert operation["deprecated"] is True
    assert operation[DEPRECATION_KEY] == {
        "since": "2026-03-01",
        "sunset": "2027-03-01",
        "successor": "/v1/new",
    }
    assert operation["x-policy"] == "public"
    assert "deprecated" not in paths["/v1/new"]["get"]
    assert DEPRECATION_KEY not in paths["/v1/new"]["get"]
    assert "successor" not in paths["/v1/lone"]["get"][DEPRECATION_KEY]


def test_given_a_deprecated_route_then_every_answer_carries_deprecation_sunset_and_link() -> None:
    client = TestClient(deprecated_app())
    for path, status in (("/v1/old", 200), ("/v1/refused", 403)):
        answer = client.get(path)
        assert answer.status_code == status
        # RFC 9745: a structured-field date, seconds since the epoch (2026-03-01 00:00 UTC).
        assert answer.headers["deprecation"] == "@1772323200"
        sunset = parsedate_to_datetime(answer.headers["sunset"])  # RFC 8594: an HTTP-date
        assert sunset.isoformat() == "2027-03-01T00:00:00+00:00"
        assert answer.headers["sunset"] == "Mon, 01 Mar 2027 00:00:00 GMT"
        assert answer.headers["link"] == '</v1/new>; rel="successor-version"'
    lone = client.get("/v1/lone")
    assert lone.headers["deprecation"] == "@1772323200"
    assert "link" not in lone.headers
    current = client.get("/v1/new")
    assert current.status_code == 200
    for header in ("deprecation", "sunset", "link"):
        assert header not in current.headers
    assert "deprecation" not in client.get("/v1/nowhere").headers


@pytest.mark.parametrize(
    ("since", "sunset", "successor"),
    [
        (date(2026, 3, 1), date(2027, 2, 28), None),  # less than a year of notice
        (date(2026, 3, 1), date(2026, 1, 1), None),
        (date(2026, 3, 1), date(2027, 3, 1), "/v1/new>; rel=x"),
        (date(2026, 3, 1), date(2027, 3, 1), ""),
    ],
)
def test_a_deprecation_shorter_than_the_policy_or_a_bad_successor_is_refused(
    since: date, sunset: date, successor: str | None
) -> None:
    with pytest.raises(ValueError, match=r"deprecated route|successor"):
        Deprecation(since=since, sunset=sunset, successor=successor)


def test_given_the_real_app_then_no_route_is_deprecated_without_its_dates(
    sqlite_world: World,
) -> None:
    document = sqlite_world.client.app.openapi()  # type: ignore[attr-defined]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if operation.get("deprecated"):
                assert DEPRECATION_KEY in operation, f"{method} {path}"
            assert path.startswith(
                ("/v1/", "/fhir/", "/healthz", "/readyz", "/metrics", "/portail")
            ), path
    answer = sqlite_world.client.get("/healthz")
    assert "deprecation" not in answer.headers
