"""Request metrics: a pure ASGI middleware counting every HTTP answer.

Labels: the method (known verbs only), the matched route's *template* (``/v1/claims/{claim_id}``,
never the path: no identifier ends up in a label), ``<mount>/{path}`` under a mounted
application, ``unmatched`` when no route matched,
and the status class. Latency is measured from the request's arrival at this middleware
to the end of its response body.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tierspayant import metrics

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"


def route_template(scope: Scope) -> str:
    """The template of the route that answered, or ``unmatched``."""
    route: Any = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    root = str(scope.get("root_path", ""))
    if isinstance(path, str):
        return root + path
    # A mounted application (the portals' static files) routes below its mount point.
    return f"{root}/{{path}}" if root else UNMATCHED


class RequestMetricsMiddleware:
    """Counts and times every HTTP request by method, route template and status class."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # The labelled children by label values (a closed set: methods x route templates
        # x status classes): ``labels()`` costs more than the count itself.
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception before the answer started is a server error

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            labels = (method, route_template(scope), metrics.status_class(status))
            children = self._children.get(labels)
            if children is None:
                children = (
                    metrics.HTTP_REQUESTS.labels(*labels),
                    metrics.HTTP_LATENCY.labels(*labels),
                )
                self._children[labels] = children
            children[0].inc()
            children[1].observe(time.perf_counter() - started)
