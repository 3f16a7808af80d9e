"""The lean reading of a CoverageEligibilityRequest (the hot path) gives what the R4B model
of ``fhir.resources`` gives: the same values, or the same refusal, for the usual requests,
for every element FHIR allows beside them, and for random damage to them."""

from __future__ import annotations

import copy
import json
import random
import time
from typing import Any

import pytest

from tests.api.fhir_support import eligibility_request, parsed
from tierspayant.domain.care import CareDomain
from tierspayant.domain.errors import DomainError
from tierspayant.formats.fhir import lean, read, systems

CARD: dict[str, object] = {
    "amc_number": "75012345",
    "nir": "279042854094418",
    "birth_rank": 1,
    "birth_date": "1979-04-16",
}


def _usual() -> dict[str, Any]:
    return eligibility_request(CARD, ["PHAR", "MED"])


def _with(change: Any) -> dict[str, Any]:
    document = _usual()
    change(document)
    return document


def _proof(document: dict[str, Any]) -> None:
    document["extension"] = [{"url": systems.CARD_PROOF, "valueString": "TP1:ABCDEFGH"}]


def _member(document: dict[str, Any]) -> None:
    document["contained"][0]["identifier"] = [
        {"system": systems.MEMBER_NUMBER, "value": "0012345678"}
    ]


def _both(document: dict[str, Any]) -> None:
    _member(document)
    document["contained"][0]["identifier"].insert(0, _usual()["contained"][0]["identifier"][0])


# The shapes provider software sends: the lean models must read them (the fast path).
LEAN = {
    "usual": _usual(),
    "card proof": _with(_proof),
    "member number": _with(_member),
    "NIR and member number": _with(_both),
    "id, display, validation": _with(
        lambda d: d.update(
            id="req-1",
            purpose=["benefits", "validation"],
            insurer={**d["insurer"], "display": "AMC"},
            created="2026-03-01T10:15:00+01:00",
        )
    ),
    "all domains": eligibility_request(CARD, [d.value for d in CareDomain]),
    "INS of the patient": _with(
        lambda d: d["contained"][0]["identifier"][0].update(system=systems.INS_NIR)
    ),
}

# Valid FHIR the lean models leave to the R4B model, and refusals of every kind.
LEFT_TO_THE_MODEL = {
    "meta": _with(lambda d: d.update(meta={"versionId": "1"})),
    "identifier": _with(lambda d: d.update(identifier=[{"system": "urn:x", "value": "1"}])),
    "priority": _with(lambda d: d.update(priority={"text": "normal"})),
    "provider": _with(lambda d: d.update(provider={"display": "pharmacie"})),
    "patient name": _with(lambda d: d["contained"][0].update(name=[{"family": "X"}])),
    "proof as another type": _with(
        lambda d: d.update(extension=[{"url": systems.CARD_PROOF, "valueInteger": 3}])
    ),
    "unknown element": _with(lambda d: d.update(secretField="279042854094418")),
    "unknown element deep": _with(lambda d: d["insurer"]["identifier"].update(x=1)),
    "no status": _with(lambda d: d.pop("status")),
    "draft": _with(lambda d: d.update(status="draft")),
    "status with spaces": _with(lambda d: d.update(status=" active")),
    "no created": _with(lambda d: d.pop("created")),
    "created without zone": _with(lambda d: d.update(created="2026-03-01T10:15:00")),
    "created year only": _with(lambda d: d.update(created="2026")),
    "serviced month only": _with(lambda d: d.update(servicedDate="2026-03")),
    "serviced not a date": _with(lambda d: d.update(servicedDate="2026-02-30")),
    "serviced period too": _with(lambda d: d.update(servicedPeriod={"start": "2026-01-01"})),
    "no serviced date": _with(lambda d: d.pop("servicedDate")),
    "empty purpose": _with(lambda d: d.update(purpose=[])),
    "null purpose": _with(lambda d: d.update(purpose=None)),
    "unknown purpose": _with(lambda d: d.update(purpose=["discovery"])),
    "empty items": _with(lambda d: d.update(item=[])),
    "no items": _with(lambda d: d.pop("item")),
    "unknown domain": _with(lambda d: d["item"][0]["category"]["coding"][0].update(code="NOPE")),
    "no birth date": _with(lambda d: d["contained"][0].pop("birthDate")),
    "no birth rank": _with(lambda d: d["contained"][0]["identifier"][0].pop("extension")),
    "rank as text": _with(
        lambda d: d["contained"][0]["identifier"][0]["extension"][0].update(valuePositiveInt="1")
    ),
    "rank zero": _with(
        lambda d: d["contained"][0]["identifier"][0]["extension"][0].update(valuePositiveInt=0)
    ),
    "null NIR": _with(lambda d: d["contained"][0]["identifier"][0].update(value=None)),
    "bad NIR": _with(lambda d: d["contained"][0]["identifier"][0].update(value="12")),
    "patient not contained": _with(lambda d: d.update(patient={"reference": "Patient/1"})),
    "another contained id": _with(lambda d: d["contained"][0].update(id="q")),
    "contained Practitioner": _with(
        lambda d: d.update(contained=[{"resourceType": "Practitioner", "id": "p"}])
    ),
    "insurer without AMC": _with(lambda d: d.update(insurer={"display": "AMC"})),
    "bad AMC": _with(lambda d: d["insurer"]["identifier"].update(value="7501")),
    "proof not TP1": _with(
        lambda d: d.update(extension=[{"url": systems.CARD_PROOF, "valueString": "XX"}])
    ),
    "harmonised proof": _with(
        lambda d: d.update(extension=[{"url": systems.CARD_PROOF, "valueString": "TPH1|x"}])
    ),
    "bad id": _with(lambda d: d.update(id="no spaces allowed")),
    "wrong type": {"resourceType": "Patient"},
    "bare type": {"resourceType": "CoverageEligibilityRequest"},
}


def _bytes(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


def outcome(reader: Any, document: Any) -> tuple[object, ...]:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    try:
        return ("answer", reader(body))
    except DomainError as exc:
        return ("refused", type(exc).__name__, exc.code, exc.message, exc.field)


@pytest.mark.parametrize("name", sorted(LEAN))
def test_the_usual_requests_take_the_lean_path_and_read_as_the_model_reads(name: str) -> None:
    document = LEAN[name]
    parsed(document)  # valid R4B
    assert lean.eligibility_request(_bytes(document), document) is not None, name
    lean_way = outcome(read.rights_ask, document)
    assert lean_way == outcome(read.rights_ask_by_model, document), name
    if name != "harmonised proof":
        assert lean_way[0] == "answer", lean_way


@pytest.mark.parametrize("name", sorted(LEFT_TO_THE_MODEL))
def test_everything_else_answers_as_the_model_answers(name: str) -> None:
    document = LEFT_TO_THE_MODEL[name]
    assert outcome(read.rights_ask, document) == outcome(read.rights_ask_by_model, document)


def test_unknown_elements_are_never_read_by_the_lean_models() -> None:
    for name in ("unknown element", "unknown element deep", "meta", "patient name", "null NIR"):
        document = LEFT_TO_THE_MODEL[name]
        assert lean.eligibility_request(_bytes(document), document) is None, name


_ODD_VALUES: list[Any] = [None, "", " ", "x", "2026", "2026-02-30", "1979-04-16", 0, -1, 1,
                          1.5, True, [], [{}], {}, {"x": 1}, "a" * 80, "TP1:AB", "#p"]  # fmt: skip


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*path, index))
    return found


def _damage(rng: random.Random, document: dict[str, Any]) -> dict[str, Any]:
    damaged = copy.deepcopy(document)
    path = rng.choice(_paths(damaged)[1:])
    parent: Any = damaged
    for step in path[:-1]:
        parent = parent[step]
    action = rng.randrange(3)
    if action == 0:
        del parent[path[-1]]
    elif action == 1:
        parent[path[-1]] = copy.deepcopy(rng.choice(_ODD_VALUES))
    elif isinstance(parent, dict):
        parent[rng.choice(["extra", "id", "display", "text", "extension"])] = rng.choice(
            _ODD_VALUES
        )
    else:
        parent.append(copy.deepcopy(parent[-1]))
    return damaged


def test_randomly_damaged_requests_answer_as_the_model_answers() -> None:
    rng = random.Random(20261206)
    lean_read = 0
    for round_ in range(600):
        base = LEAN[sorted(LEAN)[round_ % len(LEAN)]]
        damaged = _damage(rng, base)
        if rng.random() < 0.3:
            damaged = _damage(rng, damaged)
        got = outcome(read.rights_ask, damaged)
        assert got == outcome(read.rights_ask_by_model, damaged), damaged
        lean_read += lean.eligibility_request(_bytes(damaged), damaged) is not None
    assert lean_read > 50  # the damage left many documents to the lean models too


def test_the_lean_path_is_several_times_faster_than_the_model() -> None:
    body = json.dumps(LEAN["card proof"]).encode()

    def best(reader: Any) -> float:
        runs = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(100):
                reader(body)
            runs.append(time.perf_counter() - start)
        return min(runs)

    assert best(read.rights_ask) * 3 < best(read.rights_ask_by_model)
