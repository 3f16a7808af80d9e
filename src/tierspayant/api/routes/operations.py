"""Operations: liveness.

Every route declares its policy: ``**policy(Policy.…)`` and the matching dependency
from :mod:`tierspayant.api.deps`.
"""

from __future__ import annotations

from fastapi import APIRouter

from tierspayant.api.deps import Policy, policy

router = APIRouter()


@router.get("/healthz", tags=["operations"], summary="Liveness", **policy(Policy.PUBLIC))
def healthz() -> dict[str, str]:
    return {"status": "ok"}
