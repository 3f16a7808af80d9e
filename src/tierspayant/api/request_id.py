"""The request id: taken from a sane ``X-Request-Id`` or made here, answered back,
bound to the log context and to :data:`tierspayant.app.observability.REQUEST_ID`.

A sane id is 1 to 64 characters among letters, digits, ``.``, ``_``, ``:`` and ``-``
(enough for a UUID, a ULID or a proxy's ``$request_id``). Anything else (too long, empty,
with spaces, control or non-ASCII characters) is replaced by a new id and never echoed:
a client cannot write what it likes into the logs or the audit log.
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
import time

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tierspayant.app.observability import REQUEST_ID

HEADER = b"x-request-id"
MAX_LENGTH = 64
_SANE = re.compile(rb"[A-Za-z0-9._:-]{1,%d}" % MAX_LENGTH)
log = structlog.get_logger("tierspayant.http")


def sane_request_id(raw: bytes | None) -> str | None:
    """``raw`` as text when it is a sane request id, else None."""
    if raw is None or _SANE.fullmatch(raw) is None:
        return None
    return raw.decode("ascii")


class _Ids:
    """Request ids of this process: a random 64-bit prefix and a counter, 32 hex digits
    like a UUID's, unique without a system call per request (``uuid4`` reads the kernel's
    random source each time; an id is a label, not a secret). A forked child draws its
    own prefix."""

    def __init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        self.prefix = secrets.token_hex(8)
        self.counter = itertools.count()

    def next(self) -> str:
        return f"{self.prefix}{next(self.counter) & 0xFFFF_FFFF_FFFF_FFFF:016x}"


_IDS = _Ids()
os.register_at_fork(after_in_child=_IDS.reseed)


def new_request_id() -> str:
    """A new request id (see :class:`_Ids`)."""
    return _IDS.next()


class RequestIdMiddleware:
    """Binds a request id to each HTTP request and logs one line when it is answered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = None
        for name, value in scope.get("headers", ()):
            if name == HEADER:
                given = value
                break
        request_id = sane_request_id(given) or new_request_id()
        encoded = request_id.encode("ascii")
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", ()) if k != HEADER]
                headers.append((HEADER, encoded))
                message["headers"] = headers
            await send(message)

        token = REQUEST_ID.set(request_id)
        bound = structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            # The path only, never the query string (a portal's query may carry a search).
            log.info(
                "http.request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                ms=round((time.perf_counter() - started) * 1000, 2),
            )
            structlog.contextvars.reset_contextvars(**bound)
            REQUEST_ID.reset(token)
