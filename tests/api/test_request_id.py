"""The request id: from ``X-Request-Id`` (or made) to the response, the JSON log line and
the audit event of the lookup it served; a malformed or oversized id is replaced."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from tests.api.world import TODAY, World
from tierspayant.api.request_id import MAX_LENGTH, sane_request_id
from tierspayant.app.observability import configure_logging
from tierspayant.security.audit import AuditEvent
from tierspayant.store import audit


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging(stream)
    try:
        yield stream
    finally:
        structlog.reset_defaults()


def _rights_check(world: World, headers: dict[str, str | bytes]) -> Any:
    person = world.covered()
    body = {"card": person.card(), "care_date": TODAY.isoformat(), "domains": ["PHAR"]}
    return world.client.post(
        "/v1/eligibility", json=body, headers={**world.pharmacy.headers, **headers}
    )


def _records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def _events_with(world: World, request_id: str) -> list[AuditEvent]:
    with world.platform.engine.connect() as conn:
        return [e for e in audit.iter_events(conn) if e.detail.get("request_id") == request_id]


def test_given_an_x_request_id_on_a_rights_check_then_in_the_answer_the_log_and_the_audit(
    world: World, log_lines: io.StringIO
) -> None:
    request_id = f"check-{world.engine_name}-0f3c9a61-7e1b-4c55-9a8e-2d4b6a1c0e77"
    answer = _rights_check(world, {"X-Request-Id": request_id})
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-request-id"] == request_id
    requests = [r for r in _records(log_lines) if r.get("event") == "http.request"]
    assert [(r["request_id"], r["path"], r["status"]) for r in requests] == [
        (request_id, "/v1/eligibility", 200)
    ]
    assert requests[0]["level"] == "info"
    assert requests[0]["timestamp"].endswith("Z")
    events = _events_with(world, request_id)
    assert [(e.action, e.actor) for e in events] == [
        ("eligibility.check", world.pharmacy.principal_id)
    ]


@pytest.mark.parametrize(
    "bad",
    [
        b"x" * (MAX_LENGTH + 1),  # oversized
        b"with space",
        b'quote"inside',
        b"back\\slash",
        "é-accent".encode(),
        b"",
        b"a;DROP TABLE",
    ],
)
def test_given_a_malformed_or_oversized_id_then_replaced_never_echoed(
    sqlite_world: World, log_lines: io.StringIO, bad: bytes
) -> None:
    answer = _rights_check(sqlite_world, {"X-Request-Id": bad})
    assert answer.status_code == 200, answer.text
    given_back = answer.headers["x-request-id"]
    assert given_back != bad
    assert len(given_back) == 32
    assert given_back.isalnum()
    if bad:
        assert bad.decode() not in log_lines.getvalue()
    assert [r["request_id"] for r in _records(log_lines) if r["event"] == "http.request"] == [
        given_back
    ]
    assert len(_events_with(sqlite_world, given_back)) == 1


def test_given_no_id_then_each_request_gets_its_own(sqlite_world: World) -> None:
    first = sqlite_world.client.get("/healthz").headers["x-request-id"]
    second = sqlite_world.client.get("/healthz").headers["x-request-id"]
    assert first != second
    assert sane_request_id(first.encode()) == first


def test_given_an_error_answer_then_it_carries_the_request_id_too(sqlite_world: World) -> None:
    answer = sqlite_world.client.post(
        "/v1/eligibility", json={}, headers={"X-Request-Id": "bad-body-1"}
    )
    assert answer.status_code == 401
    assert answer.headers["x-request-id"] == "bad-body-1"


@given(st.binary(max_size=100))
def test_any_accepted_id_is_short_printable_ascii(raw: bytes) -> None:
    accepted = sane_request_id(raw)
    if accepted is not None:
        assert 1 <= len(accepted) <= MAX_LENGTH
        assert all(c.isalnum() or c in "._:-" for c in accepted)
        assert accepted.isascii()


def test_given_an_x_request_id_on_a_calculation_then_in_its_audit_event(
    sqlite_world: World,
) -> None:
    from tests.api.test_calculation_api import TILLEULS, adult, line

    person = adult(sqlite_world, TILLEULS, "EQUILIBRE")
    body = {
        "card": person.card(),
        "care_date": TODAY.isoformat(),
        "lines": [line("MED", "consultation", 3000, 3000)],
    }
    headers = {**sqlite_world.gp.headers, "X-Request-Id": "calc:2026-12-06.42"}
    answer = sqlite_world.client.post("/v1/calculations", json=body, headers=headers)
    assert answer.status_code == 200, answer.text
    events = _events_with(sqlite_world, "calc:2026-12-06.42")
    assert [e.actor for e in events] == [sqlite_world.gp.principal_id]


def test_a_log_line_is_the_text_structlogs_own_json_renderer_writes(
    log_lines: io.StringIO,
) -> None:
    """The renderer reuses one encoder; the line must not change for it."""

    class Custom:
        def __repr__(self) -> str:
            return "<custom é>"

    class Structlogged:
        def __structlog__(self) -> str:
            return "as structlog"

    fields = {"day": TODAY, "custom": Custom(), "own": Structlogged(), "n": 3, "text": "é\n"}
    structlog.get_logger("test").info("log.line", **fields)
    line = log_lines.getvalue().strip()
    written = json.loads(line)
    event = {**written, **fields}
    assert line == structlog.processors.JSONRenderer()(None, "info", event)
    assert written["custom"] == "<custom é>"
    assert written["own"] == "as structlog"
