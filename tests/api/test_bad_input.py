"""Bad input on the provider routes: every refusal is a 4xx with a stable code, never a 500,
and nothing is written (no audit event, no token) for a request that was refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from tests.api.world import TODAY, World, error_code
from tierspayant.store.tables import access_tokens, audit_events

JSON = "application/json"


def counts(world: World) -> tuple[int, int]:
    """Rows a refused request must not add: audit events and access tokens."""
    with world.platform.engine.connect() as conn:
        events = conn.execute(select(func.count()).select_from(audit_events)).scalar_one()
        tokens = conn.execute(select(func.count()).select_from(access_tokens)).scalar_one()
    return int(events), int(tokens)


def eligibility_body(world: World, **card: object) -> dict[str, Any]:
    return {
        "card": world.covered().card(**card),
        "care_date": TODAY.isoformat(),
        "domains": ["PHAR"],
    }


def calculation_body(world: World, **line: object) -> dict[str, Any]:
    base: dict[str, object] = {
        "act_code": "G",
        "domain": "MED",
        "family": "consultation",
        "billed_cents": 3000,
        "br_cents": 3000,
    }
    base.update(line)
    return {"card": world.covered().card(), "care_date": TODAY.isoformat(), "lines": [base]}


def send(world: World, path: str, content: bytes, content_type: str | None = JSON) -> Any:
    # Calculations price a GP's consultation: the GP is under the MED convention.
    headers = dict((world.gp if path == "/v1/calculations" else world.pharmacy).headers)
    if content_type is not None:
        headers["content-type"] = content_type
    return world.client.post(path, content=content, headers=headers)


def refused(world: World, response: Any, before: tuple[int, int]) -> tuple[int, str]:
    """Status and code of a refusal, after checking it wrote nothing."""
    assert 400 <= response.status_code < 500, response.text
    assert counts(world) == before
    return int(response.status_code), error_code(response)


def replaced(body: dict[str, Any], path: tuple[str | int, ...], value: object) -> bytes:
    """``body`` as JSON with the value at ``path`` replaced (or deleted for ``...``)."""
    document = json.loads(json.dumps(body))
    target = document
    for part in path[:-1]:
        target = target[part]
    if value is ...:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return json.dumps(document).encode()


ELIGIBILITY_CASES = [
    pytest.param(
        ("card", "nir_typo"),
        "185057512345678",
        422,
        "request.unknown_field",
        id="unknown-card-field",
    ),
    pytest.param(("extra",), 1, 422, "request.unknown_field", id="unknown-top-field"),
    pytest.param(("care_date",), ..., 422, "request.missing_field", id="missing-care-date"),
    pytest.param(("care_date",), "2026-02-30", 422, "request.invalid_date", id="impossible-date"),
    pytest.param(("card", "birth_date"), "1985-13-01", 422, "request.invalid_date", id="month-13"),
    pytest.param(("care_date",), 20260316, 422, "request.invalid_date", id="date-as-number"),
    pytest.param(("domains",), "PHAR", 422, "request.invalid_value", id="domains-not-a-list"),
    pytest.param(("domains",), [], 422, "request.invalid_value", id="no-domain"),
    pytest.param(("domains",), ["PHAR"] * 14, 422, "request.invalid_value", id="too-many-domains"),
    pytest.param(("domains",), ["SPA"], 422, "request.invalid_value", id="unknown-domain"),
    pytest.param(("card", "nir"), "185057512345600", 422, "nir.key", id="nir-bad-key"),
    pytest.param(("card", "nir"), "985057512345678", 422, "nir.sex", id="nir-bad-sex"),
    pytest.param(("card", "nir"), "1850575123456789", 422, "nir.length", id="nir-16-chars"),
    pytest.param(("card", "nir"), "1" * 40, 422, "request.invalid_value", id="nir-too-long"),
    pytest.param(("card", "amc_number"), "7501234X", 422, "request.invalid_value", id="amc-letter"),
    pytest.param(("card", "amc_number"), "7501234", 422, "request.invalid_value", id="amc-short"),
    pytest.param(("card", "birth_rank"), 0, 422, "request.invalid_value", id="rank-0"),
    pytest.param(("card", "birth_rank"), 10, 422, "request.invalid_value", id="rank-10"),
    pytest.param(("card", "birth_rank"), "1", 422, "request.invalid_value", id="rank-as-text"),
    pytest.param(("card", "birth_rank"), True, 422, "request.invalid_value", id="rank-as-bool"),
    pytest.param(("card", "birth_rank"), 10**30, 422, "request.invalid_value", id="rank-huge"),
    pytest.param(
        ("card", "member_number"), "A\u0000B", 422, "request.invalid_value", id="nul-in-member"
    ),
    pytest.param(("card",), None, 422, "request.invalid_value", id="card-null"),
    pytest.param(("card",), [], 422, "request.invalid_value", id="card-list"),
]


@pytest.mark.parametrize(("path", "value", "status", "code"), ELIGIBILITY_CASES)
def test_given_a_bad_eligibility_field_then_exact_code_and_nothing_written(
    sqlite_world: World, path: tuple[str, ...], value: object, status: int, code: str
) -> None:
    world = sqlite_world
    before = counts(world)
    response = send(world, "/v1/eligibility", replaced(eligibility_body(world), path, value))
    assert refused(world, response, before) == (status, code)


CALCULATION_CASES = [
    pytest.param("billed_cents", -1, "request.invalid_value", id="negative-amount"),
    pytest.param("billed_cents", 10**40, "request.invalid_value", id="huge-amount"),
    pytest.param("billed_cents", 3000.5, "request.invalid_value", id="fractional-cents"),
    pytest.param("billed_cents", "3000", "request.invalid_value", id="amount-as-text"),
    pytest.param("quantity", 0, "request.invalid_value", id="zero-quantity"),
    pytest.param("quantity", 1000, "request.invalid_value", id="quantity-1000"),
    pytest.param("amo_rate_bp", 10_001, "request.invalid_value", id="rate-above-100"),
    pytest.param("in_care_pathway", "yes", "request.invalid_value", id="flag-as-text"),
    pytest.param("act_code", "g'; drop", "request.invalid_value", id="act-code-pattern"),
    pytest.param("family", "x" * 41, "request.invalid_value", id="family-too-long"),
    pytest.param("rss_class", "C", "request.invalid_value", id="unknown-class"),
    pytest.param("cost", 1, "request.unknown_field", id="unknown-line-field"),
    pytest.param("family", "no_such_family", "pricing.unknown_family", id="unknown-family"),
    pytest.param("billed_cents", 2000, "pricing.amounts_inconsistent", id="billed-below-br"),
    pytest.param("domain", "PHAR", "pricing.family_domain_mismatch", id="family-domain"),
]


@pytest.mark.parametrize(("field", "value", "code"), CALCULATION_CASES)
def test_given_a_bad_calculation_line_then_exact_code_and_nothing_written(
    sqlite_world: World, field: str, value: object, code: str
) -> None:
    world = sqlite_world
    before = counts(world)
    body = replaced(calculation_body(world), ("lines", 0, field), value)
    assert refused(world, send(world, "/v1/calculations", body), before) == (422, code)


def test_given_too_many_or_no_lines_then_refused(sqlite_world: World) -> None:
    world = sqlite_world
    body = calculation_body(world)
    before = counts(world)
    too_many: list[object] = body["lines"] * 100
    for lines in ([], too_many):
        response = send(world, "/v1/calculations", replaced(body, ("lines",), lines))
        assert refused(world, response, before) == (422, "request.invalid_value")


def test_given_99_lines_at_the_maxima_then_answered(sqlite_world: World) -> None:
    world = sqlite_world
    body = calculation_body(world, billed_cents=100_000_000, br_cents=100_000_000, quantity=999)
    response = send(world, "/v1/calculations", replaced(body, ("lines",), body["lines"] * 99))
    assert response.status_code == 200
    assert response.json()["totals"]["billed_cents"] == 99 * 100_000_000


def _deep(depth: int) -> bytes:
    return b'{"card": ' + b"[" * depth + b"]" * depth + b"}"


BODY_CASES = [
    pytest.param(b"{bad", JSON, 400, "request.malformed_json", id="malformed"),
    pytest.param(
        b'{"card": {"amc_number": "7501', JSON, 400, "request.malformed_json", id="truncated"
    ),
    pytest.param(b"\xff\xfe{}", JSON, 400, "request.malformed_json", id="not-utf8"),
    pytest.param(
        b'{"x": ' + b"9" * 5000 + b"}", JSON, 400, "request.malformed_json", id="5000-digit-number"
    ),
    pytest.param(_deep(40_000), JSON, 400, "request.malformed_json", id="nested-40000-deep"),
    pytest.param(b"", JSON, 422, "request.missing_field", id="empty"),
    pytest.param(b"null", JSON, 422, "request.invalid_value", id="null"),
    pytest.param(b"[]", JSON, 422, "request.invalid_value", id="array"),
    pytest.param(b'{"card": NaN}', JSON, 422, "request.invalid_value", id="nan"),
    pytest.param(b"{}", "text/plain", 415, "request.unsupported_media_type", id="text-plain"),
    pytest.param(
        b"a=1",
        "application/x-www-form-urlencoded",
        415,
        "request.unsupported_media_type",
        id="form",
    ),
    pytest.param(b"{}", None, 415, "request.unsupported_media_type", id="no-content-type"),
]


@pytest.mark.parametrize("path", ["/v1/eligibility", "/v1/calculations"])
@pytest.mark.parametrize(("content", "content_type", "status", "code"), BODY_CASES)
def test_given_a_body_that_is_not_a_request_then_exact_code(
    sqlite_world: World,
    path: str,
    content: bytes,
    content_type: str | None,
    status: int,
    code: str,
) -> None:
    world = sqlite_world
    before = counts(world)
    assert refused(world, send(world, path, content, content_type), before) == (status, code)


def _chunks(total: int, size: int = 16 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b" " * min(size, total - sent)
        sent += size


@pytest.mark.parametrize("path", ["/v1/eligibility", "/v1/calculations", "/v1/oauth/token"])
def test_given_a_body_above_the_limit_then_413_declared_or_streamed(
    sqlite_world: World, path: str
) -> None:
    world = sqlite_world
    limit = world.platform.settings.max_body_bytes
    before = counts(world)
    media = "application/x-www-form-urlencoded" if path.endswith("token") else JSON
    headers = {**world.pharmacy.headers, "content-type": media}
    declared = world.client.post(path, content=b" " * (limit + 1), headers=headers)
    assert refused(world, declared, before) == (413, "request.too_large")
    # Chunked transfer: no content-length, the limit is counted while reading.
    streamed = world.client.post(path, content=_chunks(limit + 1), headers=headers)
    assert "content-length" not in streamed.request.headers
    assert refused(world, streamed, before) == (413, "request.too_large")
    lying = world.client.post(
        path, content=b"{}", headers={**headers, "content-length": "not-a-number"}
    )
    assert lying.status_code in (400, 413)
    assert counts(world) == before


def test_given_a_body_just_under_the_limit_then_it_is_parsed(sqlite_world: World) -> None:
    world = sqlite_world
    body = json.dumps(eligibility_body(world)).encode()
    padded = body[:-1] + b" " * (world.platform.settings.max_body_bytes - len(body)) + b"}"
    assert len(padded) == world.platform.settings.max_body_bytes
    assert send(world, "/v1/eligibility", padded).status_code == 200


# --------------------------------------------------------------------------- fuzzing

_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
_dates = st.dates().map(lambda d: d.isoformat()) | st.text(max_size=12)
_cards = st.fixed_dictionaries(
    {
        "amc_number": st.sampled_from(["75012345", "33998877", "00000000"]) | st.text(max_size=12),
        "birth_date": _dates,
    },
    optional={
        "nir": st.text("0123456789AB ", max_size=22),
        "birth_rank": st.integers(-5, 15) | _json,
        "member_number": st.text(max_size=24),
        "junk": _json,
    },
)
_lines = st.fixed_dictionaries(
    {
        "act_code": st.sampled_from(["G", "PH7", "C"]) | st.text(max_size=20),
        "domain": st.sampled_from(["MED", "PHAR", "OPTI", "DENT"]) | st.text(max_size=6),
        "family": st.sampled_from(["consultation", "drug_65", "optics_frame", "specialist"]),
        "billed_cents": st.integers(-10, 10**9) | _json,
        "br_cents": st.integers(-10, 10**9),
    },
    optional={
        "quantity": st.integers(-1, 1200),
        "amo_rate_bp": st.integers(-1, 12_000),
        "exemption": st.text(max_size=8),
        "rss_class": st.sampled_from(["A", "B", "Z"]),
        "plv_cents": st.integers(-1, 10**9),
        "in_care_pathway": _json,
    },
)
_eligibility = st.fixed_dictionaries(
    {
        "card": _cards | _json,
        "care_date": _dates,
        "domains": st.lists(st.sampled_from(["PHAR", "MED", "OPTI", "XX"]), max_size=15) | _json,
    },
    optional={"extra": _json},
)
_calculation = st.fixed_dictionaries(
    {"card": _cards | _json, "care_date": _dates, "lines": st.lists(_lines, max_size=5) | _json},
    optional={"maternity": _json},
)
FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)


@FUZZ
@given(body=_eligibility | _json)
def test_fuzzed_eligibility_bodies_never_get_a_5xx(sqlite_world: World, body: object) -> None:
    response = send(sqlite_world, "/v1/eligibility", json.dumps(body).encode())
    assert response.status_code < 500, response.text
    if response.status_code != 200:
        error_code(response)


@FUZZ
@given(body=_calculation | _json)
def test_fuzzed_calculation_bodies_never_get_a_5xx(sqlite_world: World, body: object) -> None:
    response = send(sqlite_world, "/v1/calculations", json.dumps(body).encode())
    assert response.status_code < 500, response.text
    if response.status_code != 200:
        error_code(response)
