"""Canaries on SQLite and PostgreSQL: planted like members, rotated, and loud when reached."""

from __future__ import annotations

import random
import time
import warnings
from pathlib import Path

import pytest
from sqlalchemy import func, select
from stdnum.fr import nir as stdnum_nir

from tests.integration.test_cards import (
    ACTOR,
    Person,
    World,
    canary_people,
    make_world,
    provider_token,
    unique_amc,
)
from tierspayant.api.app import create_app
from tierspayant.app.platform import Platform
from tierspayant.services import canaries
from tierspayant.services.errors import ServiceError
from tierspayant.services.insurers import add_insurer
from tierspayant.store.cards_tables import canary_marks
from tierspayant.store.security_tables import security_alerts
from tierspayant.store.tables import access_tokens, beneficiaries, principals

with warnings.catch_warnings():
    # Starlette warns that it prefers httpx2 to httpx; the client works the same.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

RNG = random.Random(2024)
ALERT_DEADLINE_SECONDS = 5.0


def rights_body(person: Person, amc: str, platform: Platform, **card: object) -> dict[str, object]:
    return {
        "card": {
            "amc_number": amc,
            "nir": person.nir,
            "birth_rank": person.birth_rank,
            "birth_date": person.birth_date,
            **card,
        },
        "care_date": platform.today().isoformat(),
        "domains": ["PHAR"],
    }


def alarm_state(platform: Platform, principal: str) -> tuple[bool, bool, bool]:
    """(alert recorded, principal suspended, every token revoked) for ``principal``."""
    with platform.engine.connect() as conn:
        alert = conn.execute(
            select(security_alerts.c.id).where(
                security_alerts.c.principal == principal, security_alerts.c.code == "guard.canary"
            )
        ).first()
        status = conn.execute(
            select(principals.c.status).where(principals.c.id == principal)
        ).scalar_one()
        live = conn.execute(
            select(func.count())
            .select_from(access_tokens)
            .where(access_tokens.c.principal == principal, access_tokens.c.revoked_at.is_(None))
        ).scalar_one()
    return alert is not None, status == "suspended", live == 0


def planted_world(platform: Platform, tmp_path: Path, count: int = 4) -> tuple[World, list[Person]]:
    world = make_world(platform, tmp_path, count=12)
    canaries.plant(platform, world.amc, count, ACTOR)
    return world, canary_people(platform, world.amc)


def test_given_planted_canaries_then_rows_look_like_members_and_status_counts_them(
    platform: Platform, tmp_path: Path
) -> None:
    world, planted = planted_world(platform, tmp_path, count=5)
    assert len(planted) == 5
    for person in planted:
        assert stdnum_nir.is_valid(person.nir)
        assert person.nir not in {p.nir for p in world.people}
    with platform.engine.connect() as conn:
        flags = conn.execute(
            select(beneficiaries.c.is_canary).where(beneficiaries.c.insurer_id == world.insurer_id)
        ).scalars()
        assert not any(flags)
        stamps = set(
            conn.execute(
                select(beneficiaries.c.updated_at).where(
                    beneficiaries.c.insurer_id == world.insurer_id
                )
            ).scalars()
        )
    assert len(stamps) == 1  # canaries carry the import's timestamp, not their own
    counts = {s.insurer: s.count for s in canaries.status(platform)}
    assert counts[world.amc] == 5
    if platform.engine.dialect.name == "sqlite":
        raw = Path(str(platform.engine.url.database)).read_bytes()
        for person in planted:
            assert person.nir.encode() not in raw


def test_given_a_second_plant_then_old_canaries_are_gone_and_the_count_is_kept(
    platform: Platform, tmp_path: Path
) -> None:
    world, first = planted_world(platform, tmp_path, count=3)
    summary = canaries.plant(platform, world.amc, None, ACTOR)
    second = canary_people(platform, world.amc)
    assert (summary.removed, summary.planted) == (3, 3)
    assert len(second) == 3
    assert not {p.nir for p in first} & {p.nir for p in second}
    with platform.engine.connect() as conn:
        total = conn.execute(
            select(func.count())
            .select_from(beneficiaries)
            .where(beneficiaries.c.insurer_id == world.insurer_id)
        ).scalar_one()
        marks = conn.execute(
            select(func.count())
            .select_from(canary_marks)
            .where(canary_marks.c.insurer_id == world.insurer_id)
        ).scalar_one()
    assert total == len(world.people) + 3
    assert marks == 3


def test_given_a_canary_looked_up_then_alert_suspension_and_revocation_within_5s(
    platform: Platform, tmp_path: Path
) -> None:
    world, planted = planted_world(platform, tmp_path)
    token, principal = provider_token(platform, RNG)
    client = TestClient(create_app(platform))
    headers = {"Authorization": f"Bearer {token}"}
    started = time.monotonic()
    response = client.post(
        "/v1/eligibility", json=rights_body(planted[0], world.amc, platform), headers=headers
    )
    while alarm_state(platform, principal) != (True, True, True):
        assert time.monotonic() - started < ALERT_DEADLINE_SECONDS, alarm_state(platform, principal)
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    print(f"canary: alert, suspension and revocation {elapsed:.3f} s after the request")
    assert response.status_code == 200  # the scraper learns nothing from the answer itself
    assert elapsed < ALERT_DEADLINE_SECONDS
    after = client.post(
        "/v1/eligibility", json=rights_body(world.people[0], world.amc, platform), headers=headers
    )
    assert after.status_code == 401


def test_given_a_canary_nir_with_a_wrong_birth_date_then_a_miss_answer_but_still_an_alert(
    platform: Platform, tmp_path: Path
) -> None:
    world, planted = planted_world(platform, tmp_path)
    token, principal = provider_token(platform, RNG)
    client = TestClient(create_app(platform))
    body = rights_body(planted[0], world.amc, platform, birth_date="1901-01-01")
    response = client.post(
        "/v1/eligibility", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200
    assert not any(r["covered"] for r in response.json()["rights"])
    assert alarm_state(platform, principal) == (True, True, True)


def test_given_canary_rows_reached_by_an_export_then_alert_and_suspension_of_principals_only(
    platform: Platform, tmp_path: Path
) -> None:
    world, _ = planted_world(platform, tmp_path, count=2)
    with platform.engine.connect() as conn:
        ids = list(
            conn.execute(
                select(beneficiaries.c.id).where(beneficiaries.c.insurer_id == world.insurer_id)
            ).scalars()
        )
    _, principal = provider_token(platform, RNG)
    with platform.engine.begin() as conn:
        found = canaries.canary_touched(
            platform, conn, world.insurer_id, ids, principal, "incident.scope"
        )
        local = canaries.canary_touched(
            platform, conn, world.insurer_id, ids, "operator:cli", "export"
        )
        none = canaries.canary_touched(
            platform, conn, world.insurer_id, [i for i in ids if i not in found], "staff:x", "x"
        )
    assert len(found) == 2
    assert local == found
    assert none == []
    with platform.engine.connect() as conn:
        alerts = conn.execute(
            select(security_alerts.c.principal, security_alerts.c.code).where(
                security_alerts.c.insurer == world.amc
            )
        ).all()
        status = conn.execute(
            select(principals.c.status).where(principals.c.id == principal)
        ).scalar_one()
        operator = conn.execute(
            select(principals.c.status).where(principals.c.id == "operator:cli")
        ).first()
    assert sorted((p or "", c) for p, c in alerts) == [
        ("", "canary.touched"),
        (principal, "canary.touched"),
    ]
    assert status == "suspended"
    assert operator is None


def test_given_bad_requests_then_planting_refuses_with_codes(
    platform: Platform, tmp_path: Path
) -> None:
    empty = add_insurer(platform, unique_amc(), "Vide", "mutuelle", ACTOR)
    with pytest.raises(ServiceError) as refused:
        canaries.plant(platform, empty.amc_number, 2, ACTOR)
    assert refused.value.code == "canary.no_population"
    world = make_world(platform, tmp_path, count=2)
    with pytest.raises(ServiceError) as too_many:
        canaries.plant(platform, world.amc, 100_000, ACTOR)
    assert too_many.value.code == "canary.count"
