"""Requests refused before they reach a service, and headers on every answer.

Given the real app: a JSON object naming a key twice is refused on /v1 and /fhir (the
last key would otherwise win); oversized request headers are refused with 431; HSTS is on
every response served over TLS; no documentation UI and, by default, no OpenAPI document.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest

from tests.api.fhir_support import FHIR, eligibility_request, outcome_code
from tests.api.world import TODAY, World, error_code
from tests.support.world import open_platform
from tierspayant.api.app import create_app
from tierspayant.api.json_body import StrictJsonRoute

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

HSTS = "strict-transport-security"


def _rights_body(world: World) -> tuple[dict[str, Any], dict[str, object]]:
    card = world.covered().card()
    body = {"card": card, "care_date": TODAY.isoformat(), "domains": ["PHAR"]}
    return body, card


def _post_text(world: World, path: str, text: str, media: str = "application/json") -> Any:
    headers = {**world.pharmacy.headers, "Content-Type": media}
    return world.client.post(path, content=text.encode(), headers=headers)


# --------------------------------------------------------------------------- duplicate keys


def test_duplicate_key_at_the_top_of_a_v1_body_is_refused(sqlite_world: World) -> None:
    # Given a rights check the API answers
    body, _ = _rights_body(sqlite_world)
    text = json.dumps(body)
    assert _post_text(sqlite_world, "/v1/eligibility", text).status_code == 200
    # When the same body names care_date twice (the last one would win)
    doubled = text[:-1] + ', "care_date": "2020-01-01"}'
    response = _post_text(sqlite_world, "/v1/eligibility", doubled)
    # Then it is refused with a coded 400, before any lookup
    assert response.status_code == 400
    assert error_code(response) == "request.duplicate_key"


def test_duplicate_key_inside_a_nested_object_is_refused(sqlite_world: World) -> None:
    body, card = _rights_body(sqlite_world)
    text = json.dumps(body)
    # the card object says one NIR first and the real one last
    doubled = text.replace('"card": {', '"card": {"nir": "' + str(card["nir"])[::-1] + '", ', 1)
    response = _post_text(sqlite_world, "/v1/eligibility", doubled)
    assert response.status_code == 400
    assert error_code(response) == "request.duplicate_key"


def test_duplicate_key_without_content_type_is_refused_too(sqlite_world: World) -> None:
    # FastAPI parses a body without a content type as JSON: so does the strict parser
    body, _ = _rights_body(sqlite_world)
    doubled = json.dumps(body)[:-1] + ', "domains": ["MED"]}'
    response = sqlite_world.client.post(
        "/v1/eligibility", content=doubled.encode(), headers=sqlite_world.pharmacy.headers
    )
    assert response.status_code == 400
    assert error_code(response) == "request.duplicate_key"


def test_body_that_is_not_json_keeps_its_own_code(sqlite_world: World) -> None:
    response = _post_text(sqlite_world, "/v1/eligibility", '{"card": ')
    assert response.status_code == 400
    assert error_code(response) == "request.malformed_json"


def test_duplicate_key_in_a_fhir_resource_is_an_operation_outcome(sqlite_world: World) -> None:
    # Given a FHIR rights check the interface answers
    _, card = _rights_body(sqlite_world)
    text = json.dumps(eligibility_request(card, ["PHAR"]))
    path = "/fhir/CoverageEligibilityRequest"
    assert _post_text(sqlite_world, path, text, FHIR).status_code == 200
    # When the resource names servicedDate twice
    doubled = text[:-1] + ', "servicedDate": "2020-01-01"}'
    response = _post_text(sqlite_world, path, doubled, FHIR)
    # Then an OperationOutcome with the code, status 400
    assert response.status_code == 400
    assert outcome_code(response) == "fhir.duplicate_key"


def test_every_v1_route_with_a_json_body_parses_it_strictly(sqlite_world: World) -> None:
    from fastapi.routing import APIRoute, iter_route_contexts

    routes = [
        c.original_route
        for c in iter_route_contexts(sqlite_world.client.app.routes)  # type: ignore[attr-defined]
        if str(c.path).startswith("/v1/")
    ]
    with_body = [r for r in routes if isinstance(r, APIRoute) and r.body_field is not None]
    assert len(with_body) >= 8
    assert [r.path for r in with_body if not isinstance(r, StrictJsonRoute)] == []


# --------------------------------------------------------------------------- header sizes


@pytest.mark.parametrize(
    ("headers", "what"),
    [
        ({"X-Padding": "a" * 200_000}, "one header of 200 KB"),
        ({"X-Padding": "a" * 9_000}, "one header above 8 KB"),
        ({f"X-Pad-{i}": "a" * 6_000 for i in range(3)}, "18 KB in all, each under 8 KB"),
    ],
)
def test_oversized_headers_are_refused_with_431(
    sqlite_world: World, headers: dict[str, str], what: str
) -> None:
    body, _ = _rights_body(sqlite_world)
    response = sqlite_world.client.post(
        "/v1/eligibility", json=body, headers={**sqlite_world.pharmacy.headers, **headers}
    )
    assert response.status_code == 431, what
    assert error_code(response) == "request.header_too_large"
    # and under /fhir, an OperationOutcome
    response = sqlite_world.client.get("/fhir/metadata", headers=headers)
    assert response.status_code == 431, what
    assert outcome_code(response) == "request.header_too_large"


def test_headers_just_under_the_limits_pass(sqlite_world: World) -> None:
    body, _ = _rights_body(sqlite_world)
    padding = {"X-Pad-1": "a" * 7_000, "X-Pad-2": "a" * 7_000}
    response = sqlite_world.client.post(
        "/v1/eligibility", json=body, headers={**sqlite_world.pharmacy.headers, **padding}
    )
    assert response.status_code == 200


# --------------------------------------------------------------------------- HSTS


def test_hsts_on_every_response_over_tls_and_none_over_plain_http(sqlite_world: World) -> None:
    body, _ = _rights_body(sqlite_world)
    auth = sqlite_world.pharmacy.headers
    for base, expected in (("https://testserver", True), ("http://testserver", False)):
        answers = [
            sqlite_world.client.get(f"{base}/healthz"),
            sqlite_world.client.post(f"{base}/v1/eligibility", json=body, headers=auth),
            sqlite_world.client.post(f"{base}/v1/eligibility", json=body),  # 401
            sqlite_world.client.get(f"{base}/v1/nowhere"),  # 404
            sqlite_world.client.get(f"{base}/fhir/metadata"),
            sqlite_world.client.get(f"{base}/portail/", follow_redirects=False),
            sqlite_world.client.get(f"{base}/healthz", headers={"X-Pad": "a" * 9_000}),  # 431
        ]
        statuses = [a.status_code for a in answers]
        assert {200, 401, 404, 431} <= set(statuses), statuses
        for answer in answers:
            assert (HSTS in answer.headers) is expected, (base, answer.request.url)
            if expected:
                assert answer.headers[HSTS].startswith("max-age=63072000")


# --------------------------------------------------------------------------- documentation


def test_no_documentation_ui_and_no_openapi_document_by_default(sqlite_world: World) -> None:
    for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
        response = sqlite_world.client.get(path)
        assert response.status_code == 404, path
        assert error_code(response) == "route.not_found"


def test_api_docs_setting_serves_the_document_and_its_own_ui_only(tmp_path: Path) -> None:
    platform = open_platform(tmp_path, env={"TIERSPAYANT_API_DOCS": "1"})
    try:
        client = TestClient(create_app(platform), raise_server_exceptions=False)
        document = client.get("/openapi.json")
        assert document.status_code == 200
        assert "/v1/eligibility" in document.json()["paths"]
        # The document is data, no page: nothing loads a script from elsewhere
        assert document.headers["content-type"].startswith("application/json")
        # Its page is the package's own Swagger UI (tests/web/test_home_and_docs.py), not
        # FastAPI's, which loads scripts from a CDN; no ReDoc, no OAuth redirect page.
        assert "/portail/static/swagger-ui/" in client.get("/docs").text
        for path in ("/redoc", "/docs/oauth2-redirect"):
            assert client.get(path).status_code == 404, path
    finally:
        platform.engine.dispose()
