"""The API's JSON request bodies, parsed once and strictly (no duplicate keys).

FastAPI parses a route's JSON body with ``Request.json()``, which keeps the last of two
equal keys. Routes built with :class:`StrictJsonRoute` (every ``/v1`` router) parse the body
first with :func:`tierspayant.formats.strict_json.loads` and leave the result where
``Request.json()`` looks for it, so the body is still parsed once: a duplicate key is
refused with 400 ``request.duplicate_key``; a body that is not JSON at all is left to the
framework, which refuses it as before (``request.malformed_json``). The FHIR routes read
their bodies themselves (``formats/fhir/read.py``, same strict parser).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from tierspayant.formats import strict_json


def is_json_media(content_type: str | None) -> bool:
    """Whether the framework would parse a body of this content type as JSON."""
    if not content_type:
        return True  # FastAPI parses a body without a content type as JSON
    media = content_type.split(";", 1)[0].strip().lower()
    return media.startswith("application/") and (
        media == "application/json" or media.endswith("+json")
    )


async def parse_strictly(request: Request) -> None:
    """Parse the request's JSON body strictly and cache it for ``Request.json()``.

    Raises :class:`~tierspayant.formats.strict_json.DuplicateJsonKey`; a body that does
    not parse is left for the framework to refuse.
    """
    body = await request.body()
    if not body or not is_json_media(request.headers.get("content-type")):
        return
    try:
        document = strict_json.loads(body)
    except (ValueError, RecursionError):
        return
    # Starlette's Request.json() returns this attribute when it is set.
    request._json = document


class StrictJsonRoute(APIRoute):
    """An API route whose JSON body refuses duplicate keys (see the module)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def strict_handler(request: Request) -> Response:
            await parse_strictly(request)
            return await handler(request)

        return strict_handler
