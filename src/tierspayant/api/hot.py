"""The rights check's hot path: ``POST /v1/eligibility`` served without the framework.

A rights check is the request a provider's software sends for every patient, and most of
its time went to the framework around it (six middleware layers, the dependency chain, a
Request object, a UUID), not to the check. :class:`HotEligibility` serves the usual
request itself, in one pass, with every control the full application applies:

- the size limits on headers and body, the security headers (HSTS over TLS), the request
  id (a sane ``X-Request-Id`` kept, else a new one), bound to the logs and to the audit
  event, one ``http.request`` log line, the request metrics (same labels);
- the strict JSON body (duplicate keys refused), validated by the route's model;
- the bearer token resolved to its principal (cached as the dependency does), a provider
  principal bound to its provider;
- then the route's own code (:func:`~tierspayant.api.routes.eligibility.rights_answer`):
  policy, containment, card proof, guard, identification, decryption, audit committed.

It answers only what it is sure to answer the same way: anything unusual before the
check starts (a limit crossed, a body that does not parse or validate, a missing or
unknown token, another kind of account, a path under a root path) is handed, body
replayed, to the full application, which refuses it as it always has. Refusals raised by
the check itself go through the application's own exception handlers.
``tests/api/test_hot_path.py`` sends the same requests both ways and compares the bytes.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tierspayant import metrics
from tierspayant.api.deps import authenticate_bearer
from tierspayant.api.lanes import LookupLane
from tierspayant.api.middleware import HSTS, SECURITY_HEADERS
from tierspayant.api.request_id import HEADER as REQUEST_ID_HEADER
from tierspayant.api.request_id import new_request_id, sane_request_id
from tierspayant.api.routes.eligibility import MEDIA_TYPE, rights_answer
from tierspayant.api.schemas import EligibilityIn
from tierspayant.app.observability import REQUEST_ID
from tierspayant.app.platform import Platform
from tierspayant.formats import strict_json
from tierspayant.formats.strict_json import DuplicateJsonKey
from tierspayant.security.principal import Principal, PrincipalKind
from tierspayant.services import providers
from tierspayant.services.errors import Unauthenticated

PATH = "/v1/eligibility"
_TEMPLATE = PATH  # the route's template: the metrics label the full application gives
_PROVIDER_KINDS = frozenset({PrincipalKind.PROVIDER_CLIENT, PrincipalKind.PROVIDER_USER})
_CONTENT_TYPE = b"content-type"
_JSON = MEDIA_TYPE.encode()
log = structlog.get_logger("tierspayant.http")

Handler = Callable[[Request, Exception], Awaitable[Any]]


class _HandBack(Exception):
    """The request is not the usual one: the full application answers it."""


def _json_media(value: bytes | None) -> bool:
    """Whether the route would read the body as JSON (``application/json`` or ``+json``;
    no content type at all is handed back: the framework's own rules decide then)."""
    if value is None:
        return False
    media = value.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (
        media.startswith(b"application/") and media.endswith(b"+json")
    )


class HotEligibility:
    """Serves ``POST /v1/eligibility`` (see the module); ``full`` answers anything else."""

    def __init__(
        self,
        full: ASGIApp,
        platform: Platform,
        lane: LookupLane,
        handlers: dict[Any, Handler],
    ) -> None:
        self.full = full
        self.platform = platform
        self.lane = lane
        self.handlers = handlers
        settings = platform.settings
        self.max_body = settings.max_body_bytes
        self.max_header = settings.max_header_bytes
        self.max_headers = settings.max_headers_bytes
        self.force_tls = settings.sessions.portal_tls
        self._children: dict[str, tuple[Any, Any]] = {}

    @staticmethod
    def serves(scope: Scope) -> bool:
        return (
            scope["type"] == "http"
            and scope["path"] == PATH
            and scope["method"] == "POST"
            and not scope.get("root_path")
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        given: bytes | None = None
        authorization: bytes | None = None
        content_type: bytes | None = None
        declared = 0
        total = 0
        oversized = False
        for name, value in scope["headers"]:
            size = len(name) + len(value)
            total += size
            oversized = oversized or size > self.max_header
            if name == b"authorization":
                authorization = value
            elif name == _CONTENT_TYPE:
                content_type = value
            elif name == REQUEST_ID_HEADER:
                if given is None:
                    given = value
            elif name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = self.max_body + 1
        if oversized or total > self.max_headers or declared > self.max_body:
            await self.full(scope, receive, send)
            return
        # The body, in full (a refusal from the full application may need it replayed).
        chunks: list[bytes] = []
        received = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.full(scope, _replay(chunks, receive, message), send)
                return
            chunk = message.get("body", b"")
            chunks.append(chunk)
            received += len(chunk)
            more = message.get("more_body", False)
            if received > self.max_body:
                await self.full(scope, _replay(chunks, receive, None, more), send)
                return
        raw = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        try:
            body, principal = await self._request(raw, content_type, authorization)
        except _HandBack:
            await self.full(scope, _replay([raw], receive, None), send)
            return
        request_id = sane_request_id(given) or new_request_id()
        token = REQUEST_ID.set(request_id)
        bound = structlog.contextvars.bind_contextvars(request_id=request_id)
        status = 500
        try:
            try:
                answer = await rights_answer(body, principal, self.platform, self.lane)
                headers = [
                    (b"content-length", str(len(answer)).encode()),
                    (_CONTENT_TYPE, _JSON),
                ]
                code = 200
            except Exception as exc:
                handler = self._handler(exc)
                if handler is None:
                    raise
                response = await handler(Request(scope), exc)
                code, headers, answer = response.status_code, response.raw_headers, response.body
        except Exception:
            # As the full application's outermost layer answers a fault: a bare 500.
            await PlainTextResponse("Internal Server Error", 500)(scope, receive, send)
            raise
        else:
            status = code
            await self._send(scope, send, status, headers, answer, request_id)
        finally:
            self._count(status, started)
            log.info(
                "http.request",
                method="POST",
                path=PATH,
                status=status,
                ms=round((time.perf_counter() - started) * 1000, 2),
            )
            structlog.contextvars.reset_contextvars(**bound)
            REQUEST_ID.reset(token)

    async def _request(
        self, raw: bytes, content_type: bytes | None, authorization: bytes | None
    ) -> tuple[EligibilityIn, Principal]:
        """The validated body and the provider principal, else :class:`_HandBack`."""
        if not raw or not _json_media(content_type) or authorization is None:
            raise _HandBack
        try:
            document = strict_json.loads(raw)
        except (ValueError, RecursionError, DuplicateJsonKey):
            raise _HandBack from None
        scheme, _, credentials = authorization.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not credentials:
            raise _HandBack
        principal = providers.cached_principal(self.platform, credentials)
        if principal is None:
            try:
                principal = await run_in_threadpool(authenticate_bearer, self.platform, credentials)
            except Unauthenticated:
                raise _HandBack from None
        if principal.kind not in _PROVIDER_KINDS or principal.provider_id is None:
            raise _HandBack
        try:
            body = EligibilityIn.model_validate(document)
        except ValidationError:
            raise _HandBack from None
        return body, principal

    def _handler(self, exc: Exception) -> Handler | None:
        for kind in type(exc).__mro__:
            handler = self.handlers.get(kind)
            if handler is not None:
                return handler
        return None

    async def _send(
        self,
        scope: Scope,
        send: Send,
        status: int,
        headers: list[tuple[bytes, bytes]],
        answer: bytes,
        request_id: str,
    ) -> None:
        # The order the full application's layers give: the response's own headers, the
        # request id, then the security headers the response does not set itself.
        out = [h for h in headers if h[0] != REQUEST_ID_HEADER]
        out.append((REQUEST_ID_HEADER, request_id.encode("ascii")))
        extra = SECURITY_HEADERS
        if self.force_tls or scope.get("scheme") == "https":
            extra = [*SECURITY_HEADERS, HSTS]
        present = {name for name, _ in out}
        out.extend(h for h in extra if h[0] not in present)
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": answer})

    def _count(self, status: int, started: float) -> None:
        klass = metrics.status_class(status)
        children = self._children.get(klass)
        if children is None:
            labels = ("POST", _TEMPLATE, klass)
            children = (metrics.HTTP_REQUESTS.labels(*labels), metrics.HTTP_LATENCY.labels(*labels))
            self._children[klass] = children
        children[0].inc()
        children[1].observe(time.perf_counter() - started)


def _replay(
    chunks: list[bytes], receive: Receive, last: Message | None, more: bool = False
) -> Receive:
    """A ``receive`` that gives back the body already read, then the rest from ``receive``.

    ``last`` is a message read after the body (a disconnect) to give back after it;
    ``more`` says the client has more body to send (read from ``receive`` afterwards).
    """
    pending: list[Message] = [
        {"type": "http.request", "body": b"".join(chunks), "more_body": more or last is not None}
    ]
    if last is not None:
        pending.append(last)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
