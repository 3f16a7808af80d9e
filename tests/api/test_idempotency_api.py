"""The ``Idempotency-Key`` header on the calculation (``POST /v1/calculations`` and a
FHIR ``Claim/$submit`` of use predetermination), through the real app, on both engines.

A calculation writes an engagement on amounts. Under a key, its covered answer is kept
with the engagement in one transaction; the same key and body again get that answer,
byte for byte, and write nothing but the audit event of the answer handed over; another
body under the key is ``422 request.idempotency_key_reused``; a key belongs to one
principal on one route. On PostgreSQL: two requests under one key at once write once,
and a retry after a 503 whose COMMIT went through answers the first engagement.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Connection, event, text

from tests.api.fhir_support import FHIR, claim, outcome_code
from tests.api.test_reconnect_api import commit_connection_killed
from tests.api.world import (
    TODAY,
    Person,
    ProviderAccount,
    World,
    error_code,
)
from tests.support.world import beneficiary_id

TILLEULS = "75012345"
_used: set[tuple[str, str]] = set()


def fresh(world: World) -> Person:
    """A covered adult of the first insurer no earlier test of the module calculated for
    (the world is shared: at most three engagements are open per person and domain)."""
    for person in world.people[TILLEULS]:
        if (world.engine_name, person.nir) in _used:
            continue
        if person.covered_on(TODAY) and not person.css and (TODAY - person.birth_date).days > 6600:
            _used.add((world.engine_name, person.nir))
            return person
    raise LookupError("no covered adult left in the world")


def consultation(billed: int = 3000) -> dict[str, object]:
    return {
        "act_code": "CONSULTA",
        "domain": "MED",
        "family": "consultation",
        "quantity": 1,
        "billed_cents": billed,
        "br_cents": 3000,
    }


def drug() -> dict[str, object]:
    return {
        "act_code": "3400930000001",
        "domain": "PHAR",
        "family": "drug_65",
        "quantity": 1,
        "billed_cents": 1000,
        "br_cents": 1000,
    }


def body_for(person: Person, *lines: dict[str, object]) -> dict[str, object]:
    return {"card": person.card(), "care_date": TODAY.isoformat(), "lines": list(lines)}


def calculate(
    world: World, account: ProviderAccount, body: dict[str, object], key: str | None
) -> Any:
    headers = dict(account.headers)
    if key is not None:
        headers["Idempotency-Key"] = key
    return world.client.post("/v1/calculations", json=body, headers=headers)


def new_key() -> str:
    return str(uuid.uuid4())


def engagements_of(world: World, person: Person) -> int:
    """The engagements on amounts (reservations) held for ``person``, any state."""
    with world.platform.engine.connect() as conn:
        person_id = beneficiary_id(world.platform, person, conn)
        return int(
            conn.execute(
                text("SELECT count(*) FROM amount_reservations WHERE beneficiary_id = :b"),
                {"b": person_id},
            ).scalar_one()
        )


@contextmanager
def writes(world: World) -> Iterator[list[str]]:
    """The statements that change a table other than the audit log, sent meanwhile."""
    seen: list[str] = []

    def on_statement(_conn: Connection, _cursor: Any, statement: str, *_: Any) -> None:
        words = statement.split(None, 3)
        if not words or words[0].upper() not in {"INSERT", "UPDATE", "DELETE"}:
            return
        table = words[2] if words[0].upper() in {"INSERT", "DELETE"} else words[1]
        if not table.startswith("audit_events"):
            seen.append(statement[:80])

    engine = world.platform.engine
    event.listen(engine, "before_cursor_execute", on_statement)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", on_statement)


def replays_audited(world: World, account: ProviderAccount) -> int:
    with world.platform.engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM audit_events WHERE action = 'calculation'"
                    " AND actor = :a AND detail LIKE :replay"
                ),
                {"a": account.principal_id, "replay": '%"replay":true%'},
            ).scalar_one()
        )


def test_given_a_key_then_the_repeat_is_the_same_bytes_and_writes_nothing(world: World) -> None:
    person, key = fresh(world), new_key()
    body = body_for(person, consultation())
    # Given a covered calculation sent under a key
    first = calculate(world, world.gp, body, key)
    assert first.status_code == 200, first.text
    assert first.json()["engagement_number"].startswith("ENG1-C-")
    audited = replays_audited(world, world.gp)
    # When the client sends it again, twice, under the same key
    with writes(world) as written:
        again = [calculate(world, world.gp, body, key) for _ in range(2)]
    # Then it gets the first answer byte for byte, and nothing is priced or written
    for repeat in again:
        assert (repeat.status_code, repeat.content) == (200, first.content)
        assert repeat.headers["content-type"] == first.headers["content-type"]
    assert written == []
    assert engagements_of(world, person) == 1
    # but each answer handed over is audited, as every answer about a person
    assert replays_audited(world, world.gp) == audited + 2


def test_given_a_key_with_another_body_then_422_and_nothing_written(world: World) -> None:
    person, key = fresh(world), new_key()
    first = calculate(world, world.gp, body_for(person, consultation()), key)
    assert first.status_code == 200, first.text
    # When the same key comes with other lines, or for another person
    for other in (body_for(person, consultation(4500)), body_for(fresh(world), consultation())):
        reused = calculate(world, world.gp, other, key)
        # Then it is refused with its own code, and no engagement is made
        assert reused.status_code == 422, reused.text
        assert error_code(reused) == "request.idempotency_key_reused"
    assert engagements_of(world, person) == 1
    # and the first body under the key still gets the first answer
    assert calculate(world, world.gp, body_for(person, consultation()), key).content == (
        first.content
    )


def test_given_one_key_for_two_principals_then_each_has_its_own(world: World) -> None:
    key = new_key()
    gp_body = body_for(fresh(world), consultation())
    pharmacy_body = body_for(fresh(world), drug())
    # Given a key of the GP's software
    mine = calculate(world, world.gp, gp_body, key)
    assert mine.status_code == 200, mine.text
    # When the pharmacy's software happens to use the same key for its own calculation
    theirs = calculate(world, world.pharmacy, pharmacy_body, key)
    # Then it is calculated for the pharmacy, not refused nor answered the GP's answer
    assert theirs.status_code == 200, theirs.text
    assert theirs.json()["engagement_number"] != mine.json()["engagement_number"]
    # and each replays its own answer, and the key binds each to its own body
    assert calculate(world, world.pharmacy, pharmacy_body, key).content == theirs.content
    assert calculate(world, world.gp, gp_body, key).content == mine.content
    another = calculate(world, world.pharmacy, body_for(fresh(world), drug()), key)
    assert another.status_code == 422, another.text
    assert error_code(another) == "request.idempotency_key_reused"


@pytest.mark.parametrize(
    "value",
    ["", "   ", "x" * 121, "clé-1", "deux mots", '"', "tab\there"],
    ids=["empty", "blank", "too-long", "non-ascii", "space", "lone-quote", "control"],
)
def test_given_a_malformed_key_then_400_and_nothing_written(world: World, value: str) -> None:
    person = fresh(world)
    # Sent as the client's bytes (UTF-8 for the accented one): the server reads Latin-1.
    headers = [*world.gp.headers.items(), ("Idempotency-Key", value.encode())]
    response = world.client.post(
        "/v1/calculations", json=body_for(person, consultation()), headers=headers
    )
    assert response.status_code == 400, response.text
    assert error_code(response) == "request.idempotency_key_invalid"
    assert engagements_of(world, person) == 0


def test_given_the_header_twice_or_quoted_then_one_key_or_a_refusal(world: World) -> None:
    person, key = fresh(world), new_key()
    body = body_for(person, consultation())
    twice = world.client.post(
        "/v1/calculations",
        json=body,
        headers=[*world.gp.headers.items(), ("Idempotency-Key", key), ("Idempotency-Key", key)],
    )
    assert twice.status_code == 400, twice.text
    assert error_code(twice) == "request.idempotency_key_invalid"
    assert engagements_of(world, person) == 0
    # The draft's form, a quoted string, is the same key as the bare token
    quoted = calculate(world, world.gp, body, f'"{key}"')
    assert quoted.status_code == 200, quoted.text
    other = calculate(world, world.gp, body_for(person, consultation(4000)), key)
    assert error_code(other) == "request.idempotency_key_reused"


def fhir_predetermination(
    world: World, person: Person, key: str | None, *lines: dict[str, object]
) -> Any:
    headers = {**world.pharmacy.headers, "Content-Type": FHIR}
    if key is not None:
        headers["Idempotency-Key"] = key
    resource = claim("predetermination", person.card(), TODAY, list(lines))
    return world.client.post("/fhir/Claim/$submit", content=json.dumps(resource), headers=headers)


def test_given_a_key_on_a_fhir_predetermination_then_it_is_replayed(world: World) -> None:
    person, key = fresh(world), new_key()
    # Given a FHIR calculation under a key (the same key as a /v1 one: another route)
    assert calculate(world, world.pharmacy, body_for(fresh(world), drug()), key).status_code == 200
    first = fhir_predetermination(world, person, key, drug())
    assert first.status_code == 200, first.text
    # When it is sent again: the same ClaimResponse, byte for byte, nothing written
    with writes(world) as written:
        again = fhir_predetermination(world, person, key, drug())
    assert (again.status_code, again.content) == (200, first.content)
    assert again.headers["content-type"] == first.headers["content-type"]
    assert written == []
    assert engagements_of(world, person) == 1
    # and other lines under the key: the refusal, as an OperationOutcome
    other = fhir_predetermination(world, person, key, {**drug(), "billed_cents": 1200})
    assert other.status_code == 422, other.text
    assert outcome_code(other) == "request.idempotency_key_reused"


def test_the_header_is_an_optional_parameter_of_the_calculation_routes(
    sqlite_world: World,
) -> None:
    document = sqlite_world.client.app.openapi()  # type: ignore[attr-defined]
    for path in ("/v1/calculations", "/fhir/Claim/$submit"):
        parameters = document["paths"][path]["post"].get("parameters", [])
        header = [p for p in parameters if p["in"] == "header" and p["name"] == "Idempotency-Key"]
        assert len(header) == 1, (path, parameters)
        assert header[0]["required"] is False
        assert "24 hours" in header[0]["description"]


# --- PostgreSQL: real concurrency, and a connection lost at COMMIT -----------------------


# The module's PostgreSQL world (``world`` of ``conftest.py``, its PostgreSQL run only).
ON_POSTGRES = pytest.mark.parametrize(
    "world", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


def at_once(world: World, bodies: list[dict[str, object]], key: str) -> list[Any]:
    """``bodies`` sent under ``key`` by the GP from as many threads, released together."""
    start = threading.Barrier(len(bodies), timeout=10)
    answers: list[Any] = [None] * len(bodies)

    def send(n: int) -> None:
        start.wait()
        answers[n] = calculate(world, world.gp, bodies[n], key)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return answers


@ON_POSTGRES
def test_given_two_requests_under_one_key_at_once_then_one_engagement(world: World) -> None:
    engine = world.platform.engine
    first, second = fresh(world), fresh(world)
    key = new_key()
    # Given two calculations for two people under one key, each transaction held after
    # it wrote its engagement until the other has written its own: only the key's
    # primary key is left to keep one of them from committing
    both = threading.Barrier(2, timeout=10)

    def after_statement(_conn: Connection, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().startswith("INSERT INTO amount_reservations "):
            both.wait()

    event.listen(engine, "after_cursor_execute", after_statement)
    try:
        answers = at_once(
            world, [body_for(first, consultation()), body_for(second, consultation())], key
        )
    finally:
        event.remove(engine, "after_cursor_execute", after_statement)
    assert not both.broken  # they really were in flight together
    # Then one wrote and answered, the other was refused: one engagement in all
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 422], [a.text for a in answers]
    refused = next(a for a in answers if a.status_code == 422)
    assert error_code(refused) == "request.idempotency_key_reused"
    assert engagements_of(world, first) + engagements_of(world, second) == 1
    # When the same body comes twice at once under a new key, then both get one answer
    third, key = fresh(world), new_key()
    same = at_once(world, [body_for(third, consultation())] * 2, key)
    assert [a.status_code for a in same] == [200, 200], [a.text for a in same]
    assert same[0].content == same[1].content
    assert engagements_of(world, third) == 1


@ON_POSTGRES
def test_given_a_503_whose_commit_went_through_then_the_retry_answers_the_first_engagement(
    world: World,
) -> None:
    person, key = fresh(world), new_key()
    body = body_for(person, consultation())
    # Given a calculation whose connection is lost as its COMMIT is applied
    with commit_connection_killed(world, applied=True, table="amount_reservations") as ended:
        lost = calculate(world, world.gp, body, key)
    assert len(ended) == 1
    assert lost.status_code == 503, lost.text
    assert error_code(lost) == "database.unavailable"
    assert engagements_of(world, person) == 1  # the server applied it
    # When the client sends it again under its key
    with writes(world) as written:
        retry = calculate(world, world.gp, body, key)
    # Then it gets the answer kept with that engagement: nothing priced, nothing written
    assert retry.status_code == 200, retry.text
    assert written == []
    assert engagements_of(world, person) == 1
    assert retry.json()["engagement_number"].startswith("ENG1-C-")
    # and once more, the same bytes
    assert calculate(world, world.gp, body, key).content == retry.content
