"""Routes of this part of the API (included by ``api.app.create_app``).

Every route declares its policy: ``**policy(Policy.…)`` and the matching dependency
from :mod:`tierspayant.api.deps`.
"""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
