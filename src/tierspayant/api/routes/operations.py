"""Operations: liveness and readiness.

Every route declares its policy: ``**policy(Policy.…)`` and the matching dependency
from :mod:`tierspayant.api.deps`.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from tierspayant.api.deps import PlatformDep, Policy, policy
from tierspayant.api.json_body import StrictJsonRoute
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
