"""The rights check's lean handler (``api/hot.py``) answers the same bytes as the FastAPI
route it stands in front of: status, body and the headers that matter, for answers and
for every kind of refusal (some handed back to the framework, some raised by the check).

Two applications on the same platform: the default one (hot path on) and one built with
``hot_path=False`` (the framework's route only). Each case sends the same request to both,
with the same ``X-Request-Id``, and compares what comes back.
"""

from __future__ import annotations

import json
import random
import re
import warnings
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

import pytest

from tests.api.world import TODAY, World, build_world, close_world, staff_session
from tests.factories import make_nir
from tierspayant.api.app import PlatformApp, create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

# Everything but the date (a second may tick between the two answers).
HEADERS = (
    "content-type",
    "content-length",
    "x-request-id",
    "x-content-type-options",
    "referrer-policy",
    "x-frame-options",
    "cache-control",
    "retry-after",
    "www-authenticate",
    "strict-transport-security",
)
_ENGAGEMENT = re.compile(rb'"engagement_number":"[^"]+"')


@pytest.fixture(scope="module")
def both(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[World, TestClient]]:
    world = build_world("sqlite", request, tmp_path_factory, count=40)
    full = TestClient(create_app(world.platform, hot_path=False), raise_server_exceptions=False)
    try:
        yield world, full
    finally:
        full.close()
        close_world(world)


def _body(world: World, **changes: object) -> dict[str, object]:
    person = world.covered()
    body: dict[str, object] = {
        "card": person.card(),
        "care_date": TODAY.isoformat(),
        "domains": ["PHAR", "MED"],
    }
    body.update(changes)
    return body


def _shape(response: Any, engagement: bool = False) -> tuple[int, bytes, dict[str, str | None]]:
    content = response.content
    if engagement:
        # Each covered answer seals a new engagement number: same place, same length.
        found = _ENGAGEMENT.search(content)
        assert found is not None, content
        content = content.replace(found.group(0), b'"engagement_number":"%d"' % len(found[0]))
    return response.status_code, content, {h: response.headers.get(h) for h in HEADERS}


def _same(
    world: World,
    full: TestClient,
    content: bytes,
    headers: Mapping[str, str],
    *,
    engagement: bool = False,
    request_id: str = "hot-path-1",
) -> tuple[int, bytes, dict[str, str | None]]:
    sent = {"X-Request-Id": request_id, **headers}
    hot = world.client.post("/v1/eligibility", content=content, headers=sent)
    framework = full.post("/v1/eligibility", content=content, headers=sent)
    assert _shape(hot, engagement) == _shape(framework, engagement)
    assert isinstance(world.client.app, PlatformApp)
    assert world.client.app.hot is not None
    return _shape(hot, engagement)


def _json(world: World) -> dict[str, str]:
    return {**world.pharmacy.headers, "Content-Type": "application/json"}


def test_given_a_covered_person_then_both_paths_answer_the_same_bytes(
    both: tuple[World, TestClient],
) -> None:
    world, full = both
    status, content, headers = _same(
        world, full, json.dumps(_body(world)).encode(), _json(world), engagement=True
    )
    assert status == 200
    assert b'"covered":true' in content
    assert headers["x-request-id"] == "hot-path-1"
    assert headers["content-type"] == "application/json"
    assert headers["x-frame-options"] == "DENY"
    assert headers["cache-control"] == "no-store"


def test_given_an_unknown_person_then_both_paths_answer_the_same_no(
    both: tuple[World, TestClient],
) -> None:
    world, full = both
    person = world.covered()
    card = {**person.card(), "nir": make_nir(random.Random(16))}
    status, content, _ = _same(
        world, full, json.dumps(_body(world, card=card)).encode(), _json(world)
    )
    assert status == 200
    assert b'"covered":true' not in content
    assert b"engagement_number" not in content


def test_given_no_request_id_then_each_path_makes_one_of_the_same_shape(
    both: tuple[World, TestClient],
) -> None:
    world, full = both
    content = json.dumps(_body(world)).encode()
    hot = world.client.post("/v1/eligibility", content=content, headers=_json(world))
    framework = full.post("/v1/eligibility", content=content, headers=_json(world))
    made = [r.headers["x-request-id"] for r in (hot, framework)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", m) for m in made), made
    assert made[0] != made[1]
    # An id that is not sane is replaced, never echoed, on both paths.
    sent = {**_json(world), "X-Request-Id": "a b"}
    hot = world.client.post("/v1/eligibility", content=content, headers=sent)
    framework = full.post("/v1/eligibility", content=content, headers=sent)
    shapes = [_shape(r, engagement=True) for r in (hot, framework)]
    for _, _, headers in shapes:
        assert re.fullmatch(r"[0-9a-f]{32}", str(headers.pop("x-request-id")))
    assert shapes[0] == shapes[1]


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (b"{", 400, "request.malformed_json"),
        (b'{"care_date": "2026-01-01", "care_date": "2026-01-02"}', 400, "request.duplicate_key"),
        (b"[]", 422, "request.invalid_value"),
        (b'{"card": {}}', 422, "request.missing_field"),
        (b"", 422, "request.missing_field"),
    ],
)
def test_given_a_body_the_route_refuses_then_both_paths_refuse_it_the_same(
    both: tuple[World, TestClient], content: bytes, status: int, code: str
) -> None:
    world, full = both
    answered, body, _ = _same(world, full, content, _json(world))
    assert (answered, json.loads(body)["error"]["code"]) == (status, code)


def test_given_fields_the_route_refuses_then_both_paths_refuse_them_the_same(
    both: tuple[World, TestClient],
) -> None:
    world, full = both
    cases = {
        "extra": (_body(world, extra=1), 422, "request.unknown_field"),
        "no_domain": (_body(world, domains=[]), 422, "request.invalid_value"),
        # Refused by the check itself (a domain error), not by the model.
        "far_date": (
            _body(world, care_date=(TODAY + timedelta(days=400)).isoformat()),
            422,
            None,
        ),
    }
    for name, (body, status, code) in cases.items():
        answered, content, _ = _same(world, full, json.dumps(body).encode(), _json(world))
        assert answered == status, (name, content)
        if code is not None:
            assert json.loads(content)["error"]["code"] == code, name


def test_given_another_media_type_then_both_paths_answer_415(
    both: tuple[World, TestClient],
) -> None:
    world, full = both
    headers = {**world.pharmacy.headers, "Content-Type": "text/plain"}
    status, _, _ = _same(world, full, json.dumps(_body(world)).encode(), headers)
    assert status == 415


def test_given_no_or_a_bad_or_a_foreign_token_then_both_paths_refuse_the_same(
    both: tuple[World, TestClient],
) -> None:
    world, full = both
    content = json.dumps(_body(world)).encode()
    json_only = {"Content-Type": "application/json"}
    status, body, _ = _same(world, full, content, json_only)
    assert (status, json.loads(body)["error"]["code"]) == (401, "auth.missing_token")
    bad = {**json_only, "Authorization": "Bearer not-a-token"}
    status, body, headers = _same(world, full, content, bad)
    assert (status, json.loads(body)["error"]["code"]) == (401, "auth.invalid_token")
    assert headers["www-authenticate"] is not None
    basic = {**json_only, "Authorization": "Basic dXNlcjpwYXNz"}
    assert _same(world, full, content, basic)[0] == 401
    staff = staff_session(world, "operator_staff")
    status, body, _ = _same(world, full, content, {**json_only, "Authorization": f"Bearer {staff}"})
    assert status == 403


def test_given_a_misread_card_proof_then_both_paths_ask_for_a_new_scan(
    both: tuple[World, TestClient],
) -> None:
    world, full = both
    content = json.dumps(_body(world, card_proof="TP1:cut-short")).encode()
    status, body, _ = _same(world, full, content, _json(world))
    assert (status, json.loads(body)["error"]["code"]) == (422, "card.misread")


def test_given_a_suspended_principal_then_both_paths_give_the_guards_refusal(
    both: tuple[World, TestClient],
) -> None:
    world, full = both
    account = world.account("nurse")
    guard = world.platform.guard
    assert guard is not None
    guard.mark_suspended(account.principal_id)
    headers = {**account.headers, "Content-Type": "application/json"}
    status, body, _ = _same(world, full, json.dumps(_body(world)).encode(), headers)
    assert (status, json.loads(body)["error"]["code"]) == (403, "guard.suspended")


def test_given_a_body_above_the_limit_then_both_paths_answer_413(
    both: tuple[World, TestClient],
) -> None:
    world, full = both
    limit = world.platform.settings.max_body_bytes
    content = json.dumps(_body(world, pad="x" * (limit + 10))).encode()
    status, body, _ = _same(world, full, content, _json(world))
    assert (status, json.loads(body)["error"]["code"]) == (413, "request.too_large")
