"""Tokens: the OAuth2 client credentials grant of provider software.

Every route declares its policy: ``**policy(Policy.…)`` and the matching dependency
from :mod:`tierspayant.api.deps`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import APIRouter, Form, Request

from tierspayant.api.deps import PlatformDep, Policy, policy
from tierspayant.api.json_body import StrictJsonRoute
from tierspayant.api.schemas import TokenOut
from tierspayant.domain.codes import AuthCode
from tierspayant.services import providers
from tierspayant.services.errors import ServiceError, Unauthenticated

router = APIRouter(route_class=StrictJsonRoute)


@router.post(
    "/v1/oauth/token",
    tags=["authentication"],
    response_model=TokenOut,
    summary="OAuth2 client credentials grant for provider software",
    **policy(Policy.PUBLIC),
)
def token(
    request: Request,
    platform: PlatformDep,
    grant_type: Annotated[str, Form()],
    client_id: Annotated[str | None, Form(max_length=64)] = None,
    client_secret: Annotated[str | None, Form(max_length=200)] = None,
) -> TokenOut:
    if grant_type != "client_credentials":
        # RFC 6749 §5.2: an unsupported grant type is a 400, not an authentication failure.
        raise ServiceError(AuthCode.UNSUPPORTED_GRANT, "only client_credentials is supported")
    basic = _basic_credentials(request.headers.get("authorization"))
    if basic is not None:
        client_id, client_secret = basic
    if not client_id or not client_secret:
        raise Unauthenticated(AuthCode.INVALID_CLIENT, "client_id and client_secret required")
    granted = providers.grant_client_token(platform, client_id, client_secret)
    return TokenOut(
        access_token=granted.access_token,
        token_type=granted.token_type,
        expires_in=granted.expires_in,
    )


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:], validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthenticated(AuthCode.INVALID_CLIENT, "malformed basic credentials") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise Unauthenticated(AuthCode.INVALID_CLIENT, "malformed basic credentials")
    return client_id, secret
