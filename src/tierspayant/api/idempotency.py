"""The ``Idempotency-Key`` request header on the routes that write without a natural key.

:data:`IdempotencyKeyDep` reads and checks the header (and shows it in the OpenAPI
document as an optional parameter); :func:`kept` turns a response the route built into
the answer the service keeps with its write, and :func:`replayed` sends a kept answer
back as it was. The rules are :mod:`tierspayant.services.idempotency`'s.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request, Response

from tierspayant.services.idempotency import HEADER, KEPT_FOR, StoredAnswer, parse_key

# The headers that describe a kept body; the others (request id, deprecation) belong to
# the request that is answered, and the middleware adds them to a replay as to any answer.
KEPT_HEADERS = frozenset({"content-type"})

DESCRIPTION = (
    "Optional: a key of your choice, unique per request (a UUID), 1 to 120 visible ASCII "
    "characters. The first covered answer is kept "
    f"{int(KEPT_FOR.total_seconds()) // 3600} hours with what it wrote; the same request "
    "sent again under the key gets that answer again, byte for byte, and writes nothing. "
    "The same key with another body: 422 request.idempotency_key_reused. Send one with "
    "every calculation, so that a retry after a timeout or a 503 is safe."
)


def idempotency_key(
    request: Request,
    idempotency_key: Annotated[str | None, Header(alias=HEADER, description=DESCRIPTION)] = None,
) -> str | None:
    """The request's key (None without the header), or ``400
    request.idempotency_key_invalid``."""
    del idempotency_key  # declared for the OpenAPI document; every value is read below
    return parse_key(request.headers.getlist(HEADER))


IdempotencyKeyDep = Annotated[str | None, Depends(idempotency_key)]


def kept(response: Response) -> StoredAnswer:
    """What of ``response`` is kept: its status, the headers of :data:`KEPT_HEADERS`, and
    its body."""
    headers = tuple(
        (name, value) for name, value in response.headers.items() if name in KEPT_HEADERS
    )
    return StoredAnswer(response.status_code, headers, bytes(response.body))


def replayed(answer: StoredAnswer) -> Response:
    """A kept answer, sent again byte for byte."""
    return Response(answer.body, answer.status, headers=dict(answer.headers))
