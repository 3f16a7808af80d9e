"""What the member's guarantees page says remains of a ceiling is what pricing finds:
an engagement held by a calculation counts as used until it is cancelled, and an
invoice adjudicated against the ceiling counts once consumed. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date

from tests.integration.claims_world import NOW, World
from tests.integration.test_counter_binds import at_the_counter_then_invoiced, device
from tests.integration.test_counter_binds import platform as platform
from tests.integration.test_counter_binds import world as world
from tests.support.world import beneficiary_id
from tierspayant.security.principal import AuthStrength, Principal, PrincipalKind
from tierspayant.services import member_portal
from tierspayant.services.engagements import cancel_amount, provider_engagements
from tierspayant.services.pricing import Calculation, calculate

TODAY = NOW.date()
CEILING = 20_000  # the facts catalogue's devices: 200 € a calendar year


def _member(world: World, person: int) -> Principal:
    found = beneficiary_id(world.platform, world.people[person].card)
    return Principal(
        f"member:test:{found}", PrincipalKind.MEMBER, AuthStrength.AAL2,
        insurer_id=world.insurer.id, beneficiary_id=found,
    )  # fmt: skip


def _devices(world: World, person: int) -> member_portal.CeilingStatus:
    answer = member_portal.guarantees(world.platform, _member(world, person))
    (own,) = [m for m in answer.family if m.own]
    (found,) = [c for c in own.ceilings if c.counter == "devices"]
    return found


def test_a_calculations_engagement_is_used_until_cancelled(world: World) -> None:
    assert _devices(world, 0).used_cents == 0
    card = world.people[0].card
    result = calculate(
        world.platform, world.principal, Calculation(card, TODAY, (device("DEV000001", 9_000),))
    )
    held = result.counter_consumption["devices"][0]
    assert held > 0

    seen = _devices(world, 0)
    assert (seen.used_cents, seen.remaining_cents) == (held, CEILING - held)
    assert seen.window == (date(TODAY.year, 1, 1), date(TODAY.year, 12, 31))

    for number, _ in provider_engagements(world.platform, world.principal):
        cancel_amount(world.platform, world.principal, number)
    assert _devices(world, 0).used_cents == 0


def test_an_adjudicated_invoice_counts_and_another_person_is_untouched(world: World) -> None:
    lines = (device("DEV000002", 15_000),)
    _, accepted = at_the_counter_then_invoiced(world, world.people[1], TODAY, lines)
    consumed = _devices(world, 1)
    assert consumed.used_cents > 0
    assert consumed.used_cents <= sum(accepted)
    assert consumed.remaining_cents == CEILING - consumed.used_cents
    # The next calculation, asking more than remains (50 € flat per device above the
    # ticket modérateur), is given exactly what the page says remains.
    more = tuple(device(f"DEV00001{n}", 20_000) for n in range(4))
    assert consumed.remaining_cents < 4 * 5_000
    again = calculate(
        world.platform, world.principal, Calculation(world.people[1].card, TODAY, more)
    )
    assert again.counter_consumption["devices"][0] == consumed.remaining_cents
    assert _devices(world, 2).used_cents == 0
