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

import re
from collections.abc import Callable, Coroutine, Sequence
from datetime import date
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from tierspayant.domain.eligibility import DomainRight
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


# --- The rights check's answer, written without building models ----------------------

_PLAIN = re.compile(r"[A-Za-z0-9 _.:+/-]*")  # text that JSON writes as it is, unescaped


def _text(value: str | None) -> str | None:
    """``value`` as a JSON value, or None if it would need escaping (then the caller
    leaves the answer to the models)."""
    if value is None:
        return "null"
    return f'"{value}"' if _PLAIN.fullmatch(value) else None


def rights_json(
    care_date: date, rights: Sequence[DomainRight], engagement_number: str | None
) -> bytes | None:
    """The bytes ``EligibilityOut(...).model_dump_json()`` gives for a rights answer (the
    engagement number left out when absent), written directly: building the models and
    serialising them cost more than the rest of the answer. None when a text would need
    JSON escaping (a catalogue's coverage code, say): the caller then uses the models.
    ``tests/api/test_rights_json.py`` holds both equal."""
    parts = [f'{{"care_date":"{care_date.isoformat()}","rights":[']
    for index, right in enumerate(rights):
        code = _text(right.coverage_code)
        if code is None:
            return None
        until = "null" if right.valid_until is None else f'"{right.valid_until.isoformat()}"'
        parts.append(
            f'{"," if index else ""}{{"domain":"{right.domain.value}",'
            f'"covered":{"true" if right.covered else "false"},'
            f'"tiers_payant":{"true" if right.tiers_payant else "false"},'
            f'"coverage_code":{code},"valid_until":{until}}}'
        )
    if engagement_number:
        number = _text(engagement_number)
        if number is None:
            return None
        parts.append(f'],"engagement_number":{number}}}')
    else:
        parts.append("]}")
    return "".join(parts).encode()
