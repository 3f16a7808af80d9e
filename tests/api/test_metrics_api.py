"""``/metrics`` through the real app: answered only with the metrics token, counting
requests by route template and status class, and never naming a person."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator

import pytest

from tests.api.world import World, error_code
from tierspayant import metrics
from tierspayant.security.guard.values import Level, Signal
from tierspayant.services.alerts import raise_alerts
from tierspayant.store import audit

TOKEN = "m" * 20 + "-metrics-token-for-tests"  # 44 characters


@pytest.fixture
def scraped(sqlite_world: World) -> Iterator[World]:
    """The world with a metrics token configured."""
    platform = sqlite_world.platform
    before = platform.settings
    platform.settings = dataclasses.replace(before, metrics_token=TOKEN)
    try:
        yield sqlite_world
    finally:
        platform.settings = before


def scrape(world: World) -> str:
    answer = world.client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return str(answer.text)


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in an exposition (0 when absent)."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if match is None or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        if found == labels:
            return float(match.group(3))
    return 0.0


def test_given_no_token_configured_then_metrics_answer_as_an_unknown_path(
    sqlite_world: World,
) -> None:
    assert sqlite_world.platform.settings.metrics_token is None
    for headers in ({}, {"Authorization": f"Bearer {TOKEN}"}, sqlite_world.pharmacy.headers):
        answer = sqlite_world.client.get("/metrics", headers=headers)
        assert answer.status_code == 404
        unknown = sqlite_world.client.get("/no-such-path", headers=headers)
        assert answer.json() == unknown.json()


def test_given_a_token_then_only_that_token_is_let_in(scraped: World) -> None:
    client = scraped.client
    refused = [
        {},
        {"Authorization": "Bearer "},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Basic {TOKEN}"},
        scraped.pharmacy.headers,  # a provider's token is not the metrics token
    ]
    for headers in refused:
        answer = client.get("/metrics", headers=headers)
        assert answer.status_code == 401, headers
        assert error_code(answer) in {"auth.missing_token", "auth.invalid_token"}
        assert "tierspayant_" not in answer.text
    assert "tierspayant_http_requests_total" in scrape(scraped)


def test_requests_are_counted_by_route_template_and_status_class(scraped: World) -> None:
    world = scraped
    person = world.covered()
    body = {"card": person.card(), "care_date": world.clock.now.date().isoformat(),
            "domains": ["PHAR"]}  # fmt: skip
    before = scrape(world)
    route = {"method": "POST", "route": "/v1/eligibility"}
    for _ in range(3):
        assert world.client.post("/v1/eligibility", json=body, headers=world.pharmacy.headers)
    assert world.client.post("/v1/eligibility", json={}, headers=world.pharmacy.headers)
    # A path with an identifier in it is counted under its template.
    claim = world.client.get("/v1/claims/987654321", headers=world.pharmacy.headers)
    assert claim.status_code == 404
    assert world.client.get("/no-such-path/987654321").status_code == 404
    # A portal page with an identifier in its path (refused without a session), and the
    # portals' static files under their mount point.
    advice = world.client.get(
        "/portail/prestataire/paiements/987654321/avis.csv", follow_redirects=False
    )
    assert advice.status_code in (302, 303, 401)
    assert world.client.get("/portail/static/htmx.min.js").status_code == 200
    assert world.client.get("/portail/static/x987654321.js").status_code == 404
    after = scrape(world)

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert delta("tierspayant_http_requests_total", **route, status="2xx") == 3
    assert delta("tierspayant_http_requests_total", **route, status="4xx") == 1
    assert delta("tierspayant_http_request_duration_seconds_count", **route, status="2xx") == 3
    assert (
        delta("tierspayant_http_request_duration_seconds_bucket", **route, status="2xx", le="+Inf")
        == 3
    )
    assert (
        delta(
            "tierspayant_http_requests_total",
            method="GET",
            route="/v1/claims/{claim_id}",
            status="4xx",
        )
        == 1
    )
    assert delta("tierspayant_http_requests_total", method="GET", route="unmatched", status="4xx")
    portal = "/portail/prestataire/paiements/{advice_id}/avis.csv"
    assert (
        delta("tierspayant_http_requests_total", method="GET", route=portal, status="3xx")
        + (delta("tierspayant_http_requests_total", method="GET", route=portal, status="4xx"))
        == 1
    )
    static = {"method": "GET", "route": "/portail/static/{path}"}
    assert delta("tierspayant_http_requests_total", **static, status="2xx") == 1
    assert delta("tierspayant_http_requests_total", **static, status="4xx") == 1
    assert "987654321" not in after
    # The guard admitted the three lookups; each lookup's audit event went through the
    # group-commit writer, which has nothing left pending once the answers are out.
    assert delta("tierspayant_guard_decisions_total", verdict="allow", code="guard.ok") >= 3
    assert delta("tierspayant_audit_writer_batch_events_count") >= 1
    assert delta("tierspayant_audit_writer_batch_events_sum") >= 3
    assert sample(after, "tierspayant_audit_writer_pending_events") == 0


def test_given_lookups_of_people_then_the_exposition_names_none_of_them(scraped: World) -> None:
    world = scraped
    people = [world.covered(amc) for amc in world.amc_numbers]
    day = world.clock.now.date().isoformat()
    with world.platform.engine.connect() as conn:
        first = audit.count_events(conn)
    secrets: list[str] = []
    for person in people:
        by_member = {
            "amc_number": person.amc_number,
            "birth_date": person.birth_date.isoformat(),
            "member_number": person.member_number,
        }
        for card in (person.card(), by_member):
            body = {"card": card, "care_date": day, "domains": ["PHAR"]}
            answer = world.client.post("/v1/eligibility", json=body, headers=world.pharmacy.headers)
            assert answer.status_code == 200, answer.text
        secrets += [*person.identity_strings(), person.member_number,
                    person.birth_date.strftime("%Y%m%d")]  # fmt: skip
    with world.platform.engine.connect() as conn:
        events = list(audit.iter_events(conn, after=first))
    pseudonyms = [e.subject for e in events if e.subject and e.action == "eligibility.check"]
    assert len(pseudonyms) == len(people) * 2
    text = scrape(world)
    assert "tierspayant_guard_decisions_total" in text
    for value in [*secrets, *pseudonyms, world.pharmacy.principal_id, world.pharmacy.structure]:
        assert value not in text


def test_alerts_are_counted_by_code_and_level(scraped: World) -> None:
    world = scraped
    before = scrape(world)
    signal = Signal(Level.SOFT, "guard.test_metrics", "a test signal", world.clock.now,
                    None, None, {"count": 1})  # fmt: skip
    raise_alerts(world.platform, [signal, signal])
    after = scrape(world)
    labels = {"code": "guard.test_metrics", "level": "soft"}
    assert (
        sample(after, "tierspayant_alerts_raised_total", **labels)
        - sample(before, "tierspayant_alerts_raised_total", **labels)
        == 2
    )


def test_status_class() -> None:
    assert [metrics.status_class(s) for s in (200, 204, 302, 404, 429, 503)] == [
        "2xx", "2xx", "3xx", "4xx", "4xx", "5xx",
    ]  # fmt: skip
