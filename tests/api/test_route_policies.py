"""Every route declares who may call it, and refuses everyone else.

Walks ``app.routes`` (API and portal alike, as they are added): each route carries an
``x-policy`` (``api/deps.py``, ``web/policy.py``) except FastAPI's documentation routes
and static mounts; every non-public route refuses a caller without credentials or with a
garbage token, and a provider's token on a route of another kind of account. The world
has a metrics token here, so ``/metrics`` is walked as a private route (without one it
answers 404: tests/api/test_metrics_api.py).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from tests.api.world import World, staff_session
from tierspayant.api.deps import POLICY_KEY, Policy

DOC_PATHS = frozenset({"/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"})
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
PORTAL_PREFIX = "/portail"
METRICS_TOKEN = "route-policy-test-metrics-token-0123456789"
# The routes outside /portail open without credentials: the French home page leading to
# the portals (web/home.py), liveness and readiness (their answers name checks only), the
# token endpoint, the FHIR capability statement and the FHIR routes that answer an
# unsupported type or operation with an OperationOutcome.
PUBLIC_API_PATHS = frozenset(
    {
        "/",
        "/healthz",
        "/readyz",
        "/v1/oauth/token",
        "/fhir/metadata",
        "/fhir/{resource_type}",
        "/fhir/{resource_type}/_search",
        "/fhir/{resource_type}/{logical_id}",
    }
)


@pytest.fixture
def sqlite_world(sqlite_world: World) -> Iterator[World]:
    """The API world with ``TIERSPAYANT_METRICS_TOKEN`` set."""
    platform = sqlite_world.platform
    before = platform.settings
    platform.settings = dataclasses.replace(before, metrics_token=METRICS_TOKEN)
    try:
        yield sqlite_world
    finally:
        platform.settings = before


@dataclass(frozen=True, slots=True)
class Endpoint:
    path: str
    methods: frozenset[str]
    policy: str

    @property
    def concrete_path(self) -> str:
        """The path with every parameter filled with a plausible id."""
        return re.sub(r"\{[^}]+\}", "1", self.path)

    @property
    def portal(self) -> bool:
        return self.path.startswith(PORTAL_PREFIX)


def all_routes(world: World) -> Iterator[tuple[str, Any]]:
    """(effective path, route) of every route, included routers flattened."""
    for context in iter_route_contexts(world.client.app.routes):  # type: ignore[attr-defined]
        yield str(context.path), context.original_route


def endpoints(world: World) -> Iterator[Endpoint]:
    for path, route in all_routes(world):
        if isinstance(route, APIRoute):
            extra = route.openapi_extra or {}
            yield Endpoint(path, frozenset(route.methods or ()), str(extra.get(POLICY_KEY)))


def test_every_route_declares_a_known_policy(sqlite_world: World) -> None:
    undeclared: list[str] = []
    for path, route in all_routes(sqlite_world):
        if path in DOC_PATHS:
            continue
        if isinstance(route, Mount):
            assert isinstance(route.app, StaticFiles), f"mount {path} is not static files"
            continue
        extra = route.openapi_extra if isinstance(route, APIRoute) else None
        if not extra or extra.get(POLICY_KEY) not in {p.value for p in Policy}:
            undeclared.append(f"{sorted(getattr(route, 'methods', ()))} {path}")
    assert undeclared == []
    assert {e.path for e in endpoints(sqlite_world)} >= {"/v1/eligibility", "/v1/calculations"}


def _call(world: World, method: str, path: str, headers: dict[str, str]) -> Any:
    body: dict[str, object] | None = {} if method in ("POST", "PUT", "PATCH") else None
    return world.client.request(method, path, headers=headers, json=body, follow_redirects=False)


def _refused_as_anonymous(endpoint: Endpoint, status: int, location: str) -> bool:
    if status == 401:
        return True
    # Portal pages send a visitor without a session to their login page, and refuse a
    # form posted without the session's CSRF token (403) before looking at the session.
    if not endpoint.portal:
        return False
    return status == 403 or (status in (302, 303, 307) and "connexion" in location)


def test_every_private_route_refuses_missing_or_garbage_credentials(
    sqlite_world: World,
) -> None:
    world = sqlite_world
    anonymous_headers: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer tpat_garbage-token-that-was-never-issued"},
        {"Authorization": "Bearer "},
        {"Authorization": f"Basic {'x' * 20}"},
        {"Authorization": world.pharmacy.token},  # no scheme
        {"Cookie": "tp_session=garbage; __Host-tp_session=garbage"},
    ]
    problems: list[str] = []
    checked = 0
    for endpoint in endpoints(world):
        if endpoint.policy == Policy.PUBLIC:
            continue
        for method in sorted(endpoint.methods - {"HEAD", "OPTIONS"}):
            for headers in anonymous_headers:
                response = _call(world, method, endpoint.concrete_path, headers)
                checked += 1
                location = response.headers.get("location", "")
                if not _refused_as_anonymous(endpoint, response.status_code, location):
                    problems.append(f"{method} {endpoint.path} {headers} → {response.status_code}")
        for method in METHODS:
            if method in endpoint.methods:
                continue
            response = _call(world, method, endpoint.concrete_path, {})
            if response.status_code < 300 or response.status_code >= 500:
                problems.append(f"wrong method {method} {endpoint.path} → {response.status_code}")
    assert problems == []
    assert checked >= 12


def test_a_provider_token_is_refused_on_routes_of_other_accounts(sqlite_world: World) -> None:
    world = sqlite_world
    problems: list[str] = []
    for endpoint in endpoints(world):
        if endpoint.portal or endpoint.policy in (Policy.PUBLIC, Policy.PROVIDER):
            continue
        for method in sorted(endpoint.methods - {"HEAD", "OPTIONS"}):
            response = _call(world, method, endpoint.concrete_path, world.pharmacy.headers)
            # The metrics scraper is no account: any other token is unauthenticated there.
            expected = 401 if endpoint.policy == Policy.METRICS_SCRAPER else 403
            if response.status_code != expected:
                problems.append(f"{method} {endpoint.path} → {response.status_code}")
    assert problems == []


def test_staff_and_member_sessions_are_refused_on_provider_routes(sqlite_world: World) -> None:
    world = sqlite_world
    person = world.covered()
    tokens = {
        "insurer_staff": staff_session(world, "insurer_staff", amc=person.amc_number),
        "operator_staff": staff_session(world, "operator_staff"),
        "member": staff_session(world, "member", beneficiary=person),
    }
    body = {"card": person.card(), "care_date": world.clock.now.date().isoformat(),
            "domains": ["PHAR"]}  # fmt: skip
    for kind, token in tokens.items():
        response = world.client.post(
            "/v1/eligibility", json=body, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 403, kind
        assert response.json()["error"]["code"] == "auth.wrong_principal"
    # The same sessions are valid: the refusal is about the kind of account.
    assert world.client.post(
        "/v1/eligibility", json=body, headers=world.pharmacy.headers
    ).is_success


def test_the_public_api_routes_are_liveness_readiness_and_what_logs_in(
    sqlite_world: World,
) -> None:
    """Outside the portals, a route without credentials is a deliberate exception: a new
    public route must be added to PUBLIC_API_PATHS, knowingly. ``/metrics`` is not one."""
    public = {
        endpoint.path
        for endpoint in endpoints(sqlite_world)
        if endpoint.policy == Policy.PUBLIC and not endpoint.portal
    }
    assert "/metrics" not in public
    assert {"/healthz", "/readyz"} <= public
    assert public == PUBLIC_API_PATHS, sorted(public ^ PUBLIC_API_PATHS)
