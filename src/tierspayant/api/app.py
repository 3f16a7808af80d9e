"""The FastAPI application: routes are thin, every rule lives in a service."""

from __future__ import annotations

from fastapi import FastAPI

from tierspayant import __version__
from tierspayant.api.errors import install_error_handlers
from tierspayant.api.lanes import LookupLane
from tierspayant.api.metrics import RequestMetricsMiddleware
from tierspayant.api.middleware import RequestLimitsMiddleware
from tierspayant.api.request_id import RequestIdMiddleware
from tierspayant.api.routes import include_routes
from tierspayant.api.versioning import DeprecationHeadersMiddleware
from tierspayant.app.platform import Platform
from tierspayant.web.portals import mount_portals


def create_app(platform: Platform) -> FastAPI:
    """Build the API around one platform.

    The OpenAPI document only when ``TIERSPAYANT_API_DOCS`` is on, and then its Swagger UI
    page at ``/docs`` from the package's own files (``web.home``), not FastAPI's, which
    loads its scripts from a CDN.
    """
    settings = platform.settings
    app = FastAPI(
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
    app.state.lookup_lane = LookupLane(platform)
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
    return app
