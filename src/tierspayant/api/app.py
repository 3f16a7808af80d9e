"""The FastAPI application: routes are thin, every rule lives in a service."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from tierspayant import __version__
from tierspayant.api.errors import install_error_handlers
from tierspayant.api.hot import HotEligibility
from tierspayant.api.lanes import LookupLane
from tierspayant.api.metrics import RequestMetricsMiddleware
from tierspayant.api.middleware import RequestLimitsMiddleware
from tierspayant.api.request_id import RequestIdMiddleware
from tierspayant.api.routes import include_routes
from tierspayant.api.versioning import DeprecationHeadersMiddleware
from tierspayant.app.platform import Platform
from tierspayant.web.portals import mount_portals


class PlatformApp(FastAPI):
    """The FastAPI application, with the rights check's hot path in front of it.

    ``POST /v1/eligibility`` goes to :attr:`hot` (:mod:`tierspayant.api.hot`), which hands
    anything unusual back to the framework; ``hot = None`` serves everything through the
    framework (the hot path's tests compare both).
    """

    hot: HotEligibility | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hot = self.hot
        if hot is not None and hot.serves(scope):
            await hot(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    async def framework(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The application without its hot path (where the hot path hands back)."""
        await super().__call__(scope, receive, send)


def create_app(platform: Platform, *, hot_path: bool = True) -> PlatformApp:
    """Build the API around one platform.

    The OpenAPI document only when ``TIERSPAYANT_API_DOCS`` is on, and then its Swagger UI
    page at ``/docs`` from the package's own files (``web.home``), not FastAPI's, which
    loads its scripts from a CDN.
    """
    settings = platform.settings
    app = PlatformApp(
        title="tierspayant",
        version=__version__,
        description=(
            "Tiers payant operator API: rights checks (IDB) and calculations (CLC) for "
            "health providers. Lookups need the data printed on the patient's card; answers "
            "carry decisions and amounts, never identity data."
        ),
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.api_docs else None,
    )
    app.state.platform = platform
    lane = LookupLane(platform)
    app.state.lookup_lane = lane
    install_error_handlers(app)
    app.add_middleware(DeprecationHeadersMiddleware)
    app.add_middleware(RequestMetricsMiddleware)  # inside the limits: their refusals not timed
    # Outermost: every answer (a 413 or an error included) carries the request id.
    app.add_middleware(RequestIdMiddleware)
    include_routes(app)
    mount_portals(app, platform)
    # Added last, so outermost: oversized headers are refused before anything else runs.
    app.add_middleware(
        RequestLimitsMiddleware,
        max_body_bytes=settings.max_body_bytes,
        max_header_bytes=settings.max_header_bytes,
        max_headers_bytes=settings.max_headers_bytes,
        force_tls=settings.sessions.portal_tls,
    )
    if hot_path:
        handlers: dict[Any, Any] = app.exception_handlers
        app.hot = HotEligibility(app.framework, platform, lane, handlers)
    return app
