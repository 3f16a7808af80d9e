"""The API's routes, one module per capability, named as docs/glossary.md names it.

Each module has its ``router``; :func:`include_routes` adds them all to the application.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from tierspayant.api.fhir import routes as fhir
from tierspayant.api.routes import (
    calculation,
    cards,
    claims,
    eligibility,
    operations,
    overpayments,
    payments,
    prior_auth,
    statements,
    tokens,
)
from tierspayant.api.schemas import ErrorOut

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut},
    401: {"model": ErrorOut},
    403: {"model": ErrorOut},
    422: {"model": ErrorOut},
    429: {"model": ErrorOut},
}
# In this order: the order of the paths in the OpenAPI document.
CAPABILITIES = (
    tokens,
    eligibility,
    calculation,
    prior_auth,
    claims,
    payments,
    overpayments,
    statements,
    cards,
)


def include_routes(app: FastAPI) -> None:
    """Add every capability's routes (the liveness probe without the error responses)."""
    app.include_router(operations.router)
    for module in CAPABILITIES:
        app.include_router(module.router, responses=ERRORS)
    # The FHIR interface last: its catch-all refusals must not shadow a route above.
    app.include_router(fhir.router)
