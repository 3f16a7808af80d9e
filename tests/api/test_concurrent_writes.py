"""Writers under concurrency, over real HTTP (uvicorn in a thread), on both engines.

Invoices, prior authorisations (decided by the rules, and a pending stay decided by
insurer staff), rights checks and a member portal page that audits what it shows, sent
by several threads at once: no answer may be a server error, every invoice is stored
once under its own id, and no request waits for long. On SQLite the writers of one
process queue on the platform's write gate (``store/db.py``); a writer that took
SQLite's lock first and then waited for the gate, while the audit writer held the gate
and waited for SQLite's lock, stalled for the busy timeout and answered 500.
"""

from __future__ import annotations

import socket
import sqlite3
import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import func, select

from tests.api.test_claims_api import CARE_DAY, claim_body, frame_quote
from tests.api.world import (
    ENGINE_PARAMS,
    TODAY,
    Person,
    World,
    build_world,
    close_world,
    error_code,
    staff_session,
)
from tierspayant.api.app import create_app
from tierspayant.store import db
from tierspayant.store.claims_tables import claims
from tierspayant.store.tables import insurers

THREADS = 6
ROUNDS = 4  # per thread; each round sends the eight requests of ``_round``
P99_BOUND_SECONDS = 2.0  # generous: a loaded 2-core machine answers these in tens of ms
INTAKE_THREADS = 8
INTAKE_PER_THREAD = 12


@dataclass
class Served:
    world: World
    url: str
    staff: dict[str, str]  # AMC number -> insurer staff session token
    member: str  # a member's portal session token


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module", params=ENGINE_PARAMS)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """A world behind a real server: requests really run at the same time."""
    world = build_world(str(request.param), request, tmp_path_factory, count=60)
    port = _free_port()
    config = uvicorn.Config(
        create_app(world.platform), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="concurrency-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        staff = {amc: staff_session(world, "insurer_staff", amc=amc) for amc in world.amc_numbers}
        member = staff_session(world, "member", beneficiary=world.covered())
        yield Served(world, f"http://127.0.0.1:{port}", staff, member)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        close_world(world)


@dataclass
class Tally:
    """What the threads saw: (kind, status, seconds) per request, and the invoices sent."""

    answers: list[tuple[str, int, float]] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    invoices: dict[str, int] = field(default_factory=dict)  # invoice number -> claim id
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, kind: str, response: httpx.Response, seconds: float) -> None:
        with self.lock:
            self.answers.append((kind, response.status_code, seconds))
            if not _answer_is_proper(response):
                self.faults.append(f"{kind} {response.status_code} {response.text[:200]}")

    def p99(self) -> float:
        times = sorted(seconds for _, _, seconds in self.answers)
        return statistics.quantiles(times, n=100, method="inclusive")[98]


def _answer_is_proper(response: httpx.Response) -> bool:
    """2xx, or a 4xx that carries a stable error code."""
    if response.is_success:
        return True
    if not 400 <= response.status_code < 500:
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and isinstance(body.get("error", {}).get("code"), str)


def _timed(tally: Tally, kind: str, send: Callable[[], httpx.Response]) -> httpx.Response | None:
    started = time.perf_counter()
    try:
        response = send()
    except httpx.HTTPError as exc:  # a dropped or timed-out request is a fault too
        with tally.lock:
            tally.faults.append(f"{kind} {type(exc).__name__}")
        return None
    tally.record(kind, response, time.perf_counter() - started)
    return response


def _stay(person: Person) -> dict[str, Any]:
    """A programmed hospital stay: the rules leave it pending for the insurer."""
    return {
        "card": person.card(),
        "care_date": CARE_DAY.isoformat(),
        "request_key": f"stay-{uuid.uuid4().hex[:10]}",
        "lines": [
            {
                "act_code": "GHS0001",
                "domain": "HOSP",
                "family": "hospital_stay",
                "billed_cents": 300000,
                "br_cents": 300000,
            }
        ],
    }


def _claim(served: Served, http: httpx.Client, tally: Tally, person: Person) -> None:
    body = claim_body(person, f"CC-{uuid.uuid4().hex[:14]}")
    headers = served.world.pharmacy.headers
    response = _timed(tally, "claim", lambda: http.post("/v1/claims", json=body, headers=headers))
    if response is not None and response.status_code == 201:
        with tally.lock:
            tally.invoices[body["invoice_number"]] = int(response.json()["claim_id"])


def _round(
    served: Served, http: httpx.Client, member: httpx.Client, tally: Tally, people: list[Person]
) -> None:
    """One of each kind of request, writers and readers interleaved."""
    world = served.world
    provider = world.pharmacy.headers
    # Prior authorisations come from professionals under convention for their domain.
    optician = world.account("optician").headers
    hospital = world.account("hospital").headers
    person = people[0]
    rights = {"card": person.card(), "care_date": TODAY.isoformat(), "domains": ["PHAR", "MED"]}

    def check() -> None:
        _timed(tally, "rights", lambda: http.post("/v1/eligibility", json=rights, headers=provider))

    _claim(served, http, tally, person)
    check()
    quote = frame_quote(people[1], f"q-{uuid.uuid4().hex[:10]}")
    path = "/v1/prior-authorisations"
    _timed(tally, "prior_auth", lambda: http.post(path, json=quote, headers=optician))
    check()
    stay = _timed(
        tally,
        "stay",
        lambda: http.post("/v1/prior-authorisations", json=_stay(people[2]), headers=hospital),
    )
    _claim(served, http, tally, people[3])
    _timed(tally, "member_page", lambda: member.get("/portail/adherent/"))
    if stay is not None and stay.status_code == 201:
        number = stay.json()["agreement_number"]
        staff = {"Authorization": f"Bearer {served.staff[people[2].amc_number]}"}
        decision = {"accept": True, "reason": "séjour programmé"}
        path = f"/v1/prior-authorisations/{number}/decision"
        _timed(tally, "decision", lambda: http.post(path, json=decision, headers=staff))


def _run_threads(count: int, work: Callable[[int], None]) -> None:
    start = threading.Barrier(count)
    errors: list[BaseException] = []

    def body(index: int) -> None:
        start.wait()
        try:
            work(index)
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    assert not any(thread.is_alive() for thread in threads), "a worker thread hung"


def _stored(served: Served, invoices: dict[str, int]) -> list[tuple[str, int]]:
    with served.world.platform.engine.connect() as conn:
        rows = conn.execute(
            select(claims.c.invoice_number, claims.c.id).where(
                claims.c.invoice_number.in_(list(invoices))
            )
        ).all()
    return [(str(number), int(claim_id)) for number, claim_id in rows]


def _people(world: World) -> list[Person]:
    first, second = world.amc_numbers
    return [world.covered(amc) for amc in (first, second, first, second)]


def test_given_mixed_writers_and_readers_at_once_then_no_server_error_and_no_stall(
    served: Served,
) -> None:
    tally = Tally()
    people = _people(served.world)
    for category in ("optician", "hospital"):  # made once, before the threads share them
        served.world.account(category)

    def work(_index: int) -> None:
        with (
            httpx.Client(base_url=served.url, timeout=60) as http,
            httpx.Client(
                base_url=served.url, timeout=60, cookies={"tp_session": served.member}
            ) as member,
        ):
            for _ in range(ROUNDS):
                _round(served, http, member, tally, people)

    started = time.perf_counter()
    _run_threads(THREADS, work)
    elapsed = time.perf_counter() - started
    kinds = Counter(kind for kind, _, _ in tally.answers)
    statuses = Counter(status for _, status, _ in tally.answers)
    p99 = tally.p99()
    print(
        f"\n[{served.world.engine_name}] {len(tally.answers)} requests by {THREADS} threads "
        f"in {elapsed:.2f} s: statuses {dict(statuses)}, kinds {dict(kinds)}, "
        f"p99 {p99 * 1000:.0f} ms, max {max(s for _, _, s in tally.answers) * 1000:.0f} ms, "
        f"faults {len(tally.faults)}"
    )
    assert tally.faults == []
    assert kinds["claim"] == THREADS * ROUNDS * 2
    assert statuses.get(422, 0) == 0  # no quote refused for a missing convention
    assert kinds["decision"] == THREADS * ROUNDS  # every stay was answered, and decided
    stored = _stored(served, tally.invoices)
    assert sorted(stored) == sorted(tally.invoices.items())  # each once, under its receipt id
    assert len({claim_id for _, claim_id in stored}) == len(stored)
    assert p99 < P99_BOUND_SECONDS, f"p99 {p99:.2f} s"


def test_given_invoices_sent_at_once_then_each_gets_its_own_id(served: Served) -> None:
    tally = Tally()
    first, second = served.world.amc_numbers
    people = [served.world.covered(first), served.world.covered(second)]
    with served.world.platform.engine.connect() as conn:
        before = conn.execute(select(func.count()).select_from(claims)).scalar_one()

    def work(index: int) -> None:
        with httpx.Client(base_url=served.url, timeout=60) as http:
            for n in range(INTAKE_PER_THREAD):
                _claim(served, http, tally, people[(index + n) % 2])

    _run_threads(INTAKE_THREADS, work)
    print(
        f"\n[{served.world.engine_name}] intake: {len(tally.answers)} invoices by "
        f"{INTAKE_THREADS} threads, statuses {dict(Counter(s for _, s, _ in tally.answers))}, "
        f"p99 {tally.p99() * 1000:.0f} ms"
    )
    assert tally.faults == []
    sent = INTAKE_THREADS * INTAKE_PER_THREAD
    assert len(tally.invoices) == sent  # every invoice answered 201 with a receipt
    assert len(set(tally.invoices.values())) == sent  # distinct ids across both insurers
    assert sorted(_stored(served, tally.invoices)) == sorted(tally.invoices.items())
    with served.world.platform.engine.connect() as conn:
        after = conn.execute(select(func.count()).select_from(claims)).scalar_one()
    assert after - before == sent


def test_given_the_gate_held_past_its_timeout_then_a_write_answers_503_busy(
    sqlite_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = sqlite_world
    body = claim_body(world.covered(), f"BUSY-{uuid.uuid4().hex[:12]}")
    monkeypatch.setattr(db, "GATE_TIMEOUT_SECONDS", 0.3)
    with world.platform.engine.begin() as conn:  # an in-process writer holds the gate
        conn.execute(insurers.update().where(insurers.c.id == -1).values(name="x"))
        busy = world.client.post("/v1/claims", json=body, headers=world.pharmacy.headers)
    assert busy.status_code == 503, busy.text
    assert error_code(busy) == "database.busy"
    assert busy.headers["Retry-After"] == "1"
    done = world.client.post("/v1/claims", json=body, headers=world.pharmacy.headers)
    assert done.status_code == 201, done.text  # nothing of the refused attempt remained


def test_given_another_process_holding_sqlite_then_a_write_answers_503_busy(
    sqlite_world: World,
) -> None:
    world = sqlite_world
    body = claim_body(world.covered(), f"LOCKED-{uuid.uuid4().hex[:12]}")
    path = world.platform.engine.url.database
    assert path is not None
    other = sqlite3.connect(path, isolation_level=None)  # not through the engine: no gate
    try:
        other.execute("BEGIN IMMEDIATE")
        started = time.perf_counter()
        locked = world.client.post("/v1/claims", json=body, headers=world.pharmacy.headers)
        waited = time.perf_counter() - started
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert locked.status_code == 503, locked.text
    assert error_code(locked) == "database.busy"
    assert waited >= 5  # it waited for SQLite's busy timeout, then gave up
    done = world.client.post("/v1/claims", json=body, headers=world.pharmacy.headers)
    assert done.status_code == 201, done.text
