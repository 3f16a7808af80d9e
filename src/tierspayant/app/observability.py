"""Structured logs and the request id of the request being served.

:func:`configure_logging` makes every ``structlog`` logger of the process write one JSON
object a line, with the context bound by the request id middleware (``request_id``)
merged in. :data:`REQUEST_ID` holds the id of the HTTP request being served: the lookups
copy it into their audit event's detail, so an audit event leads back to its log lines.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from typing import Any, TextIO

import structlog

REQUEST_ID: ContextVar[str | None] = ContextVar("tierspayant_request_id", default=None)
REQUEST_ID_DETAIL = "request_id"  # its key in an audit event's detail


def current_request_id() -> str | None:
    """The id of the HTTP request being served, or None outside one (CLI, jobs)."""
    return REQUEST_ID.get()


def _fallback(value: Any) -> Any:
    """What structlog's JSON renderer writes for a value JSON has no form for."""
    try:
        return value.__structlog__()
    except AttributeError:
        return repr(value)


# One encoder for every log line: ``json.dumps`` with an option (structlog passes
# ``default``) builds a new encoder per call. Same options, same text.
_LOG_JSON = json.JSONEncoder(default=_fallback)


def _json_line(event: Any, **_options: Any) -> str:
    return _LOG_JSON.encode(event)


def configure_logging(stream: TextIO | None = None, level: int = logging.INFO) -> None:
    """JSON lines on ``stream`` (default: standard error), below ``level`` dropped."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(_json_line),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.WriteLoggerFactory(file=stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
