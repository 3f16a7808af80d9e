"""The guard's row over engagements on amounts (``docs/guard.md``): a structure's
calculations past ``reservations_soft`` engagements today need step-up, and the one past
``reservations_hard`` suspends its principal, which then creates no more; an ordinary
pharmacy day, a few dozen engagements under the defaults, is never stepped up. SQLite
and PostgreSQL."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.api.world import RELAXED_GUARD
from tests.integration.claims_world import NOW, World
from tests.integration.test_counter_binds import device
from tests.integration.test_counter_binds import world as world
from tierspayant.app.platform import Platform, initialise
from tierspayant.config import load_settings
from tierspayant.security.principal import AuthStrength
from tierspayant.services.errors import Forbidden, Unauthenticated
from tierspayant.services.lookup import reservation_context
from tierspayant.services.pricing import Calculation, calculate
from tierspayant.store.claims_tables import amount_reservations
from tierspayant.store.security_tables import security_alerts as alerts

TODAY = NOW.date()
SOFT, HARD = 5, 8
_acts = itertools.count(1)


@pytest.fixture
def platform(
    engine_name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Platform]:
    """The relaxed guard of the counter tests; ``tight`` in the test's name lowers the
    reservations row to SOFT and HARD, the defaults apply otherwise."""
    policy = dict(RELAXED_GUARD)
    if "tight" in request.node.name:
        policy.update(reservations_soft=SOFT, reservations_hard=HARD)
    if engine_name == "sqlite":
        data_dir = tmp_path / "data"
        url = f"sqlite:///{data_dir / 'tierspayant.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_url")
        data_dir = request.getfixturevalue("postgres_data_dir")
    env = {
        "TIERSPAYANT_DATA_DIR": str(data_dir),
        "TIERSPAYANT_DATABASE_URL": url,
        "TIERSPAYANT_GUARD_POLICY": json.dumps(policy),
    }
    built = initialise(load_settings(env))
    try:
        yield built
    finally:
        built.close()


def calc(world: World, person: int, principal: Any = None) -> None:
    card = world.people[person].card
    lines = (device(f"RES{next(_acts):06d}", 2_000),)
    calculate(world.platform, principal or world.principal, Calculation(card, TODAY, lines))


def created(world: World) -> int:
    structure = reservation_context(world.platform, world.principal).structure
    with world.platform.engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(amount_reservations)
                .where(amount_reservations.c.structure == structure)
            ).scalar_one()
        )


def alert_codes(world: World) -> list[str]:
    with world.platform.engine.connect() as conn:
        rows = conn.execute(select(alerts.c.code).where(alerts.c.principal == world.principal.id))
        return sorted(str(code) for (code,) in rows)


def test_tight_an_account_past_the_hard_limit_is_suspended_and_reserves_no_more(
    world: World,
) -> None:
    # Given a structure that created SOFT engagements today
    for n in range(SOFT):
        calc(world, n)
    # When it calculates again without stepping up, it is asked to, and reserves nothing
    with pytest.raises(Unauthenticated) as soft:
        calc(world, SOFT)
    assert soft.value.code == "auth.step_up_required"
    assert created(world) == SOFT
    # Stepped up, it goes on up to the hard limit
    strong = replace(world.principal, strength=AuthStrength.AAL3)
    for n in range(SOFT, HARD):
        calc(world, n, strong)
    assert created(world) == HARD
    # Then the next calculation suspends the principal, and no later one reserves
    with pytest.raises(Forbidden) as hard:
        calc(world, HARD, strong)
    assert hard.value.code == "guard.reservations"
    with pytest.raises(Forbidden) as after:
        calc(world, HARD + 1, strong)
    assert after.value.code == "guard.suspended"
    assert created(world) == HARD
    assert "guard.reservations" in alert_codes(world)


def test_an_ordinary_pharmacy_day_is_never_stepped_up(world: World) -> None:
    # Three engagements for each of the twelve people: 36, a busy pharmacy day's share
    # of calculations with a ceiling at stake
    for n in range(3 * len(world.people)):
        calc(world, n % len(world.people))
    assert created(world) == 3 * len(world.people)
    assert not [c for c in alert_codes(world) if c.startswith("guard.reservations")]
