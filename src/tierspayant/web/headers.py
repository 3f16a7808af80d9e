"""Security headers of every portal response (pages, fragments, redirects, static files).

The content security policy forbids inline scripts and styles: the pages load one
stylesheet and htmx from ``/portail/static``, and nothing else. The same headers go on the
home page ``/`` and on the API documentation page ``/docs``, whose Swagger UI is served
from ``/portail/static/swagger-ui`` too; its stylesheet draws its icons as ``data:``
images, which that page alone allows.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PORTAL_PREFIX = "/portail"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)
DOCS_PATH = "/docs"
DOCS_CSP = CSP.replace("img-src 'self';", "img-src 'self' data:;")
HSTS = "max-age=63072000; includeSubDomains"
_ALWAYS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
)


def is_tls(scope: Scope, forced: bool) -> bool:
    """Whether the portal is served over TLS (scheme, or the ``portal_tls`` setting)."""
    return forced or scope.get("scheme") == "https"


def _covered(path: str) -> bool:
    return path.startswith(PORTAL_PREFIX) or path in ("/", DOCS_PATH)


class PortalHeadersMiddleware:
    """Adds the portal's headers to responses under ``/portail``, of ``/`` and of ``/docs``
    (HSTS only over TLS)."""

    def __init__(self, app: ASGIApp, *, force_tls: bool = False) -> None:
        self.app = app
        self.force_tls = force_tls

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] != "http" or not _covered(path):
            await self.app(scope, receive, send)
            return
        csp = DOCS_CSP if path == DOCS_PATH else CSP
        extra = [(b"content-security-policy", csp.encode()), *_ALWAYS]
        if is_tls(scope, self.force_tls):
            extra.append((b"strict-transport-security", HSTS.encode()))

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0] not in dict(extra)]
                message = {**message, "headers": [*headers, *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)
