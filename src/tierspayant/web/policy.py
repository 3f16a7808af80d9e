"""Who may open a portal page: every route declares one policy, like the API's routes.

The web layer may not import the API (layers: api > web), so the helper is repeated here
with the same ``x-policy`` key and the same values; the test that walks ``app.routes``
reads both alike.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

POLICY_KEY = "x-policy"


class WebPolicy(StrEnum):
    """The same names as ``tierspayant.api.deps.Policy``."""

    PUBLIC = "public"  # login pages, the chooser
    PROVIDER = "provider"
    INSURER_STAFF = "insurer_staff"
    OPERATOR_STAFF = "operator_staff"
    MEMBER = "member"


def policy(name: WebPolicy) -> dict[str, Any]:
    """Route keyword arguments: the policy, and no place in the API's OpenAPI document."""
    return {"openapi_extra": {POLICY_KEY: name.value}, "include_in_schema": False}
