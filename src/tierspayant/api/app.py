"""The FastAPI application: routes are thin, every rule lives in a service."""

from __future__ import annotations

from fastapi import FastAPI

from tierspayant import __version__
from tierspayant.api.errors import install_error_handlers
from tierspayant.api.lanes import LookupLane
from tierspayant.api.middleware import BodyLimitMiddleware
from tierspayant.api.request_id import RequestIdMiddleware
from tierspayant.api.routes import include_routes
from tierspayant.api.versioning import DeprecationHeadersMiddleware
from tierspayant.app.platform import Platform
from tierspayant.web.portals import mount_portals


def create_app(platform: Platform) -> FastAPI:
    """Build the API around one platform."""
    app = FastAPI(
        title="tierspayant",
        version=__version__,
        description=(
            "Tiers payant operator API: rights checks (IDB) and calculations (CLC) for "
            "health providers. Lookups need the data printed on the patient's card; answers "
            "carry decisions and amounts, never identity data."
        ),
    )
    app.state.platform = platform
    app.state.lookup_lane = LookupLane(platform)
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=platform.settings.max_body_bytes)
    app.add_middleware(DeprecationHeadersMiddleware)
    # Outermost: every answer (a 413 or an error included) carries the request id.
    app.add_middleware(RequestIdMiddleware)
    include_routes(app)
    mount_portals(app, platform)
    return app
