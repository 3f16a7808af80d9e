"""Who may call a route: every route declares exactly one policy.

A route is declared with ``**policy(Policy.PROVIDER)`` (or another) in its decorator,
which records ``x-policy`` in the OpenAPI document, and takes the matching dependency
(:func:`provider`, :func:`insurer_staff`, :func:`operator_staff`, :func:`member`) to get
its principal; ``/metrics`` takes :func:`metrics_scraper` (a token of its own, no
principal). ``tests/api/test_route_policies.py`` fails on a route without a policy,
and calls every non-public route without credentials to see it refused.

Bearer tokens are either provider software tokens (OAuth2 client credentials) or portal
session tokens of staff and members (password + second factor).
"""

from __future__ import annotations

import hmac
from enum import StrEnum
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from tierspayant.api.lanes import LookupLane
from tierspayant.api.versioning import Deprecation, deprecation_kwargs
from tierspayant.app.platform import Platform
from tierspayant.domain.codes import AuthCode
from tierspayant.security.principal import Principal, PrincipalKind
from tierspayant.services import accounts, providers
from tierspayant.services.errors import Forbidden, Unauthenticated

POLICY_KEY = "x-policy"


class Policy(StrEnum):
    PUBLIC = "public"  # no credentials (health, token endpoint, docs)
    PROVIDER = "provider"  # provider software or a provider's portal user
    INSURER_STAFF = "insurer_staff"  # staff of one insurer, its data only
    OPERATOR_STAFF = "operator_staff"  # the operator's staff (security, support)
    MEMBER = "member"  # an insured member, their own data only
    METRICS_SCRAPER = "metrics_scraper"  # Prometheus, with TIERSPAYANT_METRICS_TOKEN


def policy(name: Policy, *, deprecation: Deprecation | None = None) -> dict[str, Any]:
    """Decorator keyword arguments recording a route's policy, and its deprecation if any
    (``api/versioning.py``: ``deprecated`` in the OpenAPI document, and response headers)."""
    kwargs: dict[str, Any] = {"openapi_extra": {POLICY_KEY: name.value}}
    if deprecation is not None:
        extra = deprecation_kwargs(deprecation)
        kwargs["deprecated"] = extra["deprecated"]
        kwargs["openapi_extra"].update(extra["openapi_extra"])
    return kwargs


bearer = HTTPBearer(auto_error=False)


async def get_platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


async def get_lane(request: Request) -> LookupLane:
    """The application's lane for rights checks and calculations (``api/lanes.py``)."""
    lane: LookupLane = request.app.state.lookup_lane
    return lane


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The principal behind the bearer token: provider token first, then portal session.

    A provider token seen in the last few seconds is answered from the platform's cache
    on the event loop; anything that needs the database runs in a worker thread.
    """
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated(AuthCode.MISSING_TOKEN, "a bearer access token is required")
    platform: Platform = request.app.state.platform
    token = credentials.credentials
    cached = providers.cached_principal(platform, token)
    if cached is not None:
        return cached
    return await run_in_threadpool(authenticate_bearer, platform, token)


def authenticate_bearer(platform: Platform, token: str) -> Principal:
    """The principal of a bearer token (provider token, else portal session), from the
    database: run it in a worker thread."""
    try:
        return providers.authenticate_token_cached(platform, token)
    except Unauthenticated:
        pass
    try:
        return accounts.validate_session(platform, token).principal
    except Unauthenticated:
        raise Unauthenticated(AuthCode.INVALID_TOKEN, "invalid or expired access token") from None


_PROVIDER_KINDS = frozenset({PrincipalKind.PROVIDER_CLIENT, PrincipalKind.PROVIDER_USER})


def _require(principal: Principal, kinds: frozenset[PrincipalKind]) -> Principal:
    if principal.kind not in kinds:
        raise Forbidden(AuthCode.WRONG_PRINCIPAL, "this route is not open to this kind of account")
    return principal


async def provider(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    """A provider (software or portal user) acting for its structure."""
    checked = _require(principal, _PROVIDER_KINDS)
    if checked.provider_id is None:
        raise Forbidden(AuthCode.NO_PROVIDER, "this account is not bound to a provider")
    return checked


async def insurer_staff(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    """Staff of one insurer; ``principal.insurer_id`` is the only insurer it may see."""
    checked = _require(principal, frozenset({PrincipalKind.INSURER_STAFF}))
    if checked.insurer_id is None:
        raise Forbidden(AuthCode.NO_INSURER, "this staff account is not bound to an insurer")
    return checked


async def operator_staff(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    return _require(principal, frozenset({PrincipalKind.OPERATOR_STAFF}))


async def member(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    return _require(principal, frozenset({PrincipalKind.MEMBER}))


async def metrics_scraper(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """The scraper of ``/metrics``: the bearer token of ``TIERSPAYANT_METRICS_TOKEN``,
    compared in constant time. No token configured: 404, as an unknown path."""
    expected = request.app.state.platform.settings.metrics_token
    if expected is None:
        raise StarletteHTTPException(404)
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated(AuthCode.MISSING_TOKEN, "a bearer access token is required")
    if not hmac.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise Unauthenticated(AuthCode.INVALID_TOKEN, "invalid metrics token")


ProviderPrincipal = Annotated[Principal, Depends(provider)]
InsurerStaff = Annotated[Principal, Depends(insurer_staff)]
OperatorStaff = Annotated[Principal, Depends(operator_staff)]
MemberPrincipal = Annotated[Principal, Depends(member)]
PlatformDep = Annotated[Platform, Depends(get_platform)]
LaneDep = Annotated[LookupLane, Depends(get_lane)]
