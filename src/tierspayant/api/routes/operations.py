"""Operations: liveness, readiness and the Prometheus metrics.

Every route declares its policy: ``**policy(Policy.…)`` and the matching dependency
from :mod:`tierspayant.api.deps`.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response

from tierspayant import metrics
from tierspayant.api.deps import PlatformDep, Policy, metrics_scraper, policy
from tierspayant.api.json_body import StrictJsonRoute
from tierspayant.services import ops_gauges
from tierspayant.services.readiness import readiness

router = APIRouter(route_class=StrictJsonRoute)


@router.get("/healthz", tags=["operations"], summary="Liveness", **policy(Policy.PUBLIC))
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    tags=["operations"],
    summary="Readiness",
    description=(
        "200 when the database answers at the newest migration, Redis answers (when "
        "configured), the key provider unwraps the data keys and the audit writer runs; "
        "503 otherwise. Each check is named `ok` or `failed`; the reason is only logged."
    ),
    responses={503: {"description": "Not ready: the failed checks are named"}},
    **policy(Policy.PUBLIC),
)
def readyz(platform: PlatformDep) -> JSONResponse:
    state = readiness(platform)
    return JSONResponse(
        {
            "status": "ready" if state.ready else "not_ready",
            "checks": {check.name: "ok" if check.ok else "failed" for check in state.checks},
        },
        status_code=200 if state.ready else 503,
    )


@router.get(
    "/metrics",
    tags=["operations"],
    summary="Prometheus metrics",
    description=(
        "The text exposition of the process's metrics (every worker's, summed, when "
        "PROMETHEUS_MULTIPROC_DIR is set). Bearer token of TIERSPAYANT_METRICS_TOKEN only; "
        "404 when none is configured. Labels carry no personal data."
    ),
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
    dependencies=[Depends(metrics_scraper)],
    **policy(Policy.METRICS_SCRAPER),
)
def metrics_exposition(platform: PlatformDep) -> Response:
    ops_gauges.refresh(platform)  # readiness, payment run, key and certificate state
    return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE)
