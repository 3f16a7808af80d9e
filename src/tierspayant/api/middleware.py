"""ASGI middleware: header and body size limits and security headers, before any parsing.

Runs on every request of the app (API, FHIR, portals), as plain ASGI: one pass over the
header list the server already parsed, no Request object. It refuses

- a header larger than ``max_header_bytes`` (name and value), or all headers together
  larger than ``max_headers_bytes``, with 431 ``request.header_too_large``;
- a body above ``max_body_bytes`` (declared or streamed) with 413 ``request.too_large``;

and adds the security headers to every response, with HSTS on every response served over
TLS (the request's scheme is ``https``, or ``TIERSPAYANT_PORTAL_TLS`` says the platform
sits behind a TLS proxy). Under ``/fhir`` the refusals are OperationOutcomes.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tierspayant.api.fhir import is_fhir_path
from tierspayant.domain.codes import RequestCode
from tierspayant.formats.fhir.write import MEDIA_TYPE as FHIR_MEDIA_TYPE
from tierspayant.formats.fhir.write import operation_outcome

HSTS = (b"strict-transport-security", b"max-age=63072000; includeSubDomains")
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]


class _TooLarge(HTTPException):
    """Raised from ``receive``: the framework passes an HTTPException through its body
    parsing (any other error there becomes a generic 400), so the app's handler answers 413."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"body above {max_bytes} bytes")


class RequestLimitsMiddleware:
    """Size limits on headers and body, security headers on every answer (see the module)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        max_header_bytes: int,
        max_headers_bytes: int,
        force_tls: bool = False,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_header_bytes = max_header_bytes
        self.max_headers_bytes = max_headers_bytes
        self.force_tls = force_tls

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = SECURITY_HEADERS
        if self.force_tls or scope.get("scheme") == "https":
            extra = [*SECURITY_HEADERS, HSTS]
        headers = scope.get("headers", ())
        declared = 0
        total = 0
        for name, value in headers:
            total += len(name) + len(value)
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = self.max_body_bytes + 1
        # One header cannot be above the limit while all of them together are under it.
        if total > self.max_header_bytes and (
            total > self.max_headers_bytes
            or any(len(n) + len(v) > self.max_header_bytes for n, v in headers)
        ):
            message = (
                f"request headers above {self.max_header_bytes} bytes each "
                f"or {self.max_headers_bytes} bytes in all"
            )
            await self._refuse(scope, send, extra, 431, RequestCode.HEADER_TOO_LARGE, message)
            return
        if declared > self.max_body_bytes:
            await self._refuse_body(scope, send, extra)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _TooLarge(self.max_body_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                present = {name for name, _ in headers}
                headers.extend(h for h in extra if h[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._refuse_body(scope, send, extra)

    async def _refuse_body(
        self, scope: Scope, send: Send, extra: list[tuple[bytes, bytes]]
    ) -> None:
        message = f"body above {self.max_body_bytes} bytes"
        await self._refuse(scope, send, extra, 413, RequestCode.TOO_LARGE, message)

    @staticmethod
    async def _refuse(
        scope: Scope,
        send: Send,
        extra: list[tuple[bytes, bytes]],
        status: int,
        code: RequestCode,
        message: str,
    ) -> None:
        if is_fhir_path(str(scope.get("path", ""))):
            document: object = operation_outcome(code, message, status)
            media = FHIR_MEDIA_TYPE.encode()
        else:
            document = {"error": {"code": code.value, "message": message}}
            media = b"application/json"
        body = json.dumps(document).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", media),
                    (b"content-length", str(len(body)).encode()),
                    *extra,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
