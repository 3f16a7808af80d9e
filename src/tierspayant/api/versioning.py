"""API versioning: ``/v1`` is stable; a route to be removed is deprecated first.

A route is marked with ``**policy(Policy.…, deprecation=Deprecation(since=…, sunset=…,
successor="/v1/…"))``. That sets ``deprecated: true`` on its operation in the OpenAPI
document, with the dates in ``x-deprecation``, and :class:`DeprecationHeadersMiddleware`
adds to every answer of the route (refusals included):

- ``Deprecation: @<seconds>`` (RFC 9745): the moment the route was deprecated;
- ``Sunset: <HTTP-date>`` (RFC 8594): the moment it stops answering;
- ``Link: <successor>; rel="successor-version"`` when a replacement exists.

The policy (``docs/api.md``, "Versioning"): a deprecated route lives at least
:data:`MIN_NOTICE` after its deprecation; :class:`Deprecation` refuses a shorter sunset.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from email.utils import format_datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEPRECATION_KEY = "x-deprecation"
MIN_NOTICE = timedelta(days=365)  # the shortest life of a deprecated route


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Deprecation:
    """A route's deprecation: since when, until when it answers, and what replaces it.

    ``since`` and ``sunset`` are days, at 00:00 UTC. ``successor``: the path (or URL) of
    the replacing route, if any.
    """

    since: date
    sunset: date
    successor: str | None = None

    def __post_init__(self) -> None:
        if self.sunset - self.since < MIN_NOTICE:
            raise ValueError(f"a deprecated route lives at least {MIN_NOTICE.days} days")
        if self.successor is not None and (
            not self.successor or any(c in self.successor for c in '<>"\r\n ')
        ):
            raise ValueError("a successor is a path or URL, without spaces, quotes or brackets")

    def openapi(self) -> dict[str, str]:
        """What ``x-deprecation`` says in the OpenAPI document."""
        out = {"since": self.since.isoformat(), "sunset": self.sunset.isoformat()}
        if self.successor is not None:
            out["successor"] = self.successor
        return out

    def headers(self) -> list[tuple[bytes, bytes]]:
        """The response headers announcing it."""
        since = int(_midnight(self.since).timestamp())
        headers = [
            (b"deprecation", f"@{since}".encode("ascii")),
            (b"sunset", format_datetime(_midnight(self.sunset), usegmt=True).encode("ascii")),
        ]
        if self.successor is not None:
            link = f'<{self.successor}>; rel="successor-version"'
            headers.append((b"link", link.encode("ascii")))
        return headers


def deprecation_kwargs(deprecation: Deprecation) -> dict[str, Any]:
    """Decorator keyword arguments of a deprecated route (merged by ``deps.policy``)."""
    return {"deprecated": True, "openapi_extra": {DEPRECATION_KEY: deprecation.openapi()}}


def route_deprecation(route: Any) -> Deprecation | None:
    """The deprecation a matched route declares, if any."""
    extra = getattr(route, "openapi_extra", None)
    if not isinstance(extra, dict) or DEPRECATION_KEY not in extra:
        return None
    declared = extra[DEPRECATION_KEY]
    return Deprecation(
        since=date.fromisoformat(declared["since"]),
        sunset=date.fromisoformat(declared["sunset"]),
        successor=declared.get("successor"),
    )


class DeprecationHeadersMiddleware:
    """Adds the deprecation headers to every answer of a route that declares them.

    The router records the matched route in the scope before calling it, so the headers
    are known when the answer starts, whatever it is (success or refusal).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def announcing_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                deprecation = route_deprecation(scope.get("route"))
                if deprecation is not None:
                    headers = list(message.get("headers", []))
                    headers.extend(deprecation.headers())
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, announcing_send)
