"""JSON request bodies read strictly: an object that names a key twice is refused.

The standard parser keeps the last of two equal keys. Two parsers that disagree on which
one counts (a proxy or a WAF that keeps the first, the API the last) let a body say one
thing to the check and another to the service, so a request body with a duplicate key is
refused (``request.duplicate_key``, ``fhir.duplicate_key`` under ``/fhir``).

The check is the parser's ``object_pairs_hook``: the C decoder still does the parsing and
hands each object's pairs to one ``dict()`` call and a length comparison (measured in
``docs/security.md``: well under a microsecond per object).
"""

from __future__ import annotations

import json
from typing import Any

from tierspayant.domain.codes import RequestCode
from tierspayant.domain.errors import DomainError


class DuplicateJsonKey(DomainError):
    """A JSON object of the body names the same key twice."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        # The key is not named back: a request's content is never echoed.
        raise DuplicateJsonKey(RequestCode.DUPLICATE_KEY, "a JSON object names the same key twice")
    return document


# One decoder for the process: json.loads with a hook would build a new one per call.
_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates)


def loads(body: bytes | str) -> Any:
    """``json.loads`` that refuses duplicate keys (:class:`DuplicateJsonKey`).

    Other failures are those of ``json.loads`` (``ValueError``, ``RecursionError``).
    """
    if isinstance(body, bytes):
        # As json.loads reads bytes: UTF-8, 16 or 32, told by the first bytes.
        text = body.decode(json.detect_encoding(body), "surrogatepass")
    elif body.startswith("\ufeff"):
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", body, 0)
    else:
        text = body
    return _DECODER.decode(text)
