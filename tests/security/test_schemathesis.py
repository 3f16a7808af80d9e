"""Schemathesis against the app's own OpenAPI document, with several tenants' credentials.

Every operation of the schema (routes added later are covered as they land) gets generated
requests, valid and invalid, each sent with one of: no credentials, a garbage token, two
providers' tokens, two insurers' staff sessions. Whatever the request:

- no 5xx;
- no success without credentials on a route whose policy is not public;
- no cross-tenant read: for a GET with path parameters, when one tenant reads an object
  (2xx), the other tenant of the same kind asking for the same path must not.

``TIERSPAYANT_SCHEMATHESIS_CASES`` sets the number of generated cases per operation, half
valid and half invalid (default 60, about a minute for the dozen operations of today's
schema on a CI machine: generating bodies costs most of it); the test prints how many
cases and calls it made.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import hypothesis.errors
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.core.result import Ok
from schemathesis.generation import GenerationMode

from tests.api.world import World, build_world, close_world, staff_session
from tierspayant.api.deps import POLICY_KEY, Policy

CASES = int(os.environ.get("TIERSPAYANT_SCHEMATHESIS_CASES", "60"))
ANONYMOUS = ("anonymous", "garbage")


@dataclass
class Tenants:
    """Bearer headers by name, and which names are two tenants of the same kind."""

    headers: dict[str, dict[str, str]]
    pairs: tuple[tuple[str, str], ...]


@dataclass
class Tally:
    cases: Counter[str] = field(default_factory=Counter)
    calls: int = 0
    problems: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def fuzz_world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    world = build_world("sqlite", request, tmp_path_factory, count=100)
    try:
        yield world
    finally:
        close_world(world)


def tenants(world: World) -> Tenants:
    first, second = world.amc_numbers
    staff = {
        "insurer_a": staff_session(world, "insurer_staff", amc=first),
        "insurer_b": staff_session(world, "insurer_staff", amc=second),
    }
    headers: dict[str, dict[str, str]] = {
        "anonymous": {},
        "garbage": {"Authorization": "Bearer tpat_never-issued-token"},
        "provider_a": world.pharmacy.headers,
        "provider_b": world.gp.headers,
    }
    headers.update({name: {"Authorization": f"Bearer {t}"} for name, t in staff.items()})
    return Tenants(headers, (("provider_a", "provider_b"), ("insurer_a", "insurer_b")))


def seed_claims(world: World) -> int:
    """One invoice from each provider, so that there are objects to read across tenants."""
    care_day = (world.clock.now - timedelta(days=3)).date().isoformat()
    lines = {
        "provider_a": ("PHAR", "drug_65", "3400930000001", 1000, 6500, 550, 350),
        "provider_b": ("MED", "consultation", "G", 3000, 7000, 1900, 900),
    }
    seeded = 0
    for index, (who, account) in enumerate(
        (("provider_a", world.pharmacy), ("provider_b", world.gp))
    ):
        domain, family, act, br, rate, amo, amc = lines[who]
        body = {
            "invoice_number": f"FUZZ-{index}",
            "card": world.covered(world.amc_numbers[index]).card(),
            "care_date": care_day,
            "lines": [{"act_code": act, "domain": domain, "family": family, "quantity": 1,
                       "care_date": care_day, "br_cents": br, "billed_cents": br,
                       "amo_rate_bp": rate, "amo_paid_cents": amo, "amc_requested_cents": amc}],
        }  # fmt: skip
        response = world.client.post("/v1/claims", json=body, headers=account.headers)
        assert response.status_code < 300, response.text
        seeded += 1
    return seeded


def probe_objects(world: World, operations: list[Any], tenants_: Tenants, tally: Tally) -> int:
    """Ask every GET route with path parameters for ids 1 to 10 as every tenant: an object
    may be read by one tenant of a pair, never by both. Returns how many reads succeeded."""
    reads = 0
    for operation in operations:
        if operation.method.lower() != "get" or not _has_path_parameters(operation):
            continue
        for number in range(1, 11):
            path = re.sub(r"\{[^}]+\}", str(number), operation.path)
            readers = set()
            for who, headers in tenants_.headers.items():
                response = world.client.get(path, headers=headers)
                tally.calls += 1
                if response.status_code >= 500:
                    tally.problems.append(f"GET {path} [{who}] → {response.status_code}")
                if response.status_code < 300:
                    readers.add(who)
            reads += len(readers)
            for pair in tenants_.pairs:
                if set(pair) <= readers:
                    tally.problems.append(f"GET {path}: read by both {pair}")
            if readers & set(ANONYMOUS):
                tally.problems.append(f"GET {path}: read without credentials")
    return reads


def _policy(operation: Any) -> str:
    return str(operation.definition.raw.get(POLICY_KEY, ""))


def _has_path_parameters(operation: Any) -> bool:
    return "{" in operation.path


def check_case(
    operation: Any, case: Any, who: str, tenants_: Tenants, tally: Tally, mode: str
) -> None:
    label = f"{operation.method.upper()} {operation.path} [{mode}, {who}]"
    response = case.call(headers=tenants_.headers[who])
    tally.calls += 1
    if response.status_code >= 500:
        tally.problems.append(f"{label} → {response.status_code}: {response.text[:200]}")
    if who in ANONYMOUS and _policy(operation) != Policy.PUBLIC and response.status_code < 300:
        tally.problems.append(f"{label} answered {response.status_code} without credentials")
    if operation.method.lower() != "get" or not _has_path_parameters(operation):
        return
    if response.status_code >= 300:
        return
    for pair in tenants_.pairs:
        if who not in pair:
            continue
        other = pair[1] if who == pair[0] else pair[0]
        second = case.call(headers=tenants_.headers[other])
        tally.calls += 1
        if second.status_code < 300:
            tally.problems.append(f"{label}: {who} and {other} both read {case.formatted_path}")


def fuzz_operation(operation: Any, mode: GenerationMode, tenants_: Tenants, tally: Tally) -> None:
    names = sorted(tenants_.headers)

    @settings(
        max_examples=max(1, CASES // 2),
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode), who=st.sampled_from(names))
    def run(case: Any, who: str) -> None:
        tally.cases[f"{operation.method.upper()} {operation.path}"] += 1
        check_case(operation, case, who, tenants_, tally, mode.value)

    try:
        run()
    except hypothesis.errors.Unsatisfiable:
        # No invalid request can be built for this operation (nothing to negate).
        assert mode is GenerationMode.NEGATIVE


@pytest.mark.slow
def test_schema_fuzzing_finds_no_5xx_no_anonymous_access_no_cross_tenant_read(
    fuzz_world: World,
) -> None:
    # The document itself: the app serves none by default (TIERSPAYANT_API_DOCS).
    schema = schemathesis.openapi.from_dict(fuzz_world.client.app.openapi())  # type: ignore[attr-defined]
    schema.app = fuzz_world.client.app
    schema.location = "/openapi.json"
    tenants_ = tenants(fuzz_world)
    tally = Tally()
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # the document itself is valid
        operations.append(result.ok())
    assert {op.path for op in operations} >= {"/v1/eligibility", "/v1/calculations"}
    claims = "/v1/claims" in {op.path for op in operations}
    seeded = seed_claims(fuzz_world) if claims else 0
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz_operation(operation, mode, tenants_, tally)
    reads = probe_objects(fuzz_world, operations, tenants_, tally)
    print(json.dumps({"schemathesis": {"cases": sum(tally.cases.values()), "calls": tally.calls,
                                       "seeded": seeded, "object_reads": reads,
                                       "per_operation": dict(tally.cases)}}))  # fmt: skip
    assert tally.problems == []
    # The probe saw the seeded invoices, read by their senders only: it can find a leak.
    assert reads >= seeded
    assert all(count >= 1 for count in tally.cases.values())
    assert len(tally.cases) == len(operations)
