"""Operations: liveness.

Every route declares its policy: ``**policy(Policy.…)`` and the matching dependency
from :mod:`tierspayant.api.deps`.
"""

from __future__ import annotations

from fastapi import APIRouter

from tierspayant.api.deps import Policy, policy
from tierspayant.api.json_body import StrictJsonRoute

router = APIRouter(route_class=StrictJsonRoute)


@router.get("/healthz", tags=["operations"], summary="Liveness", **policy(Policy.PUBLIC))
def healthz() -> dict[str, str]:
    return {"status": "ok"}
