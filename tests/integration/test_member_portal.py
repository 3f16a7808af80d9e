"""The member portal's service on SQLite and PostgreSQL: a member reads their own
family's data only, and every read is audited (action, purpose, subject, decision).

The service takes nothing but the principal, so "another family" cannot be asked for:
what these tests check is that what comes back is the principal's own (its cards, its
history, its record) and never a neighbour's, and that a principal that is not a member
gets nothing and leaves no event.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.integration.test_cards import ACTOR, Person, World, make_world
from tierspayant.app.platform import Platform
from tierspayant.security.audit import subject_pseudonym
from tierspayant.security.principal import AuthStrength, Principal, PrincipalKind
from tierspayant.services import cards, member_portal
from tierspayant.services.errors import Forbidden
from tierspayant.services.identification import CardData, identify
from tierspayant.store.cards_tables import cards as cards_table
from tierspayant.store.tables import audit_events


def _beneficiary_id(world: World, person: Person) -> int:
    data = CardData(world.amc, date.fromisoformat(person.birth_date), person.nir, person.birth_rank)
    with world.platform.engine.connect() as conn:
        _, found = identify(world.platform, conn, data.normalised())
    assert found is not None
    return found.record.id


def _member(world: World, person: Person, name: str) -> Principal:
    return Principal(
        f"member:{name}",
        PrincipalKind.MEMBER,
        AuthStrength.AAL2,
        insurer_id=world.insurer_id,
        beneficiary_id=_beneficiary_id(world, person),
    )


def _two_families(world: World) -> tuple[Person, Person]:
    first = world.people[0]
    other = next(p for p in world.people if p.member_number != first.member_number)
    return first, other


def _events(platform: Platform, actor: str) -> list[tuple[str, str | None, str | None, str]]:
    with platform.engine.connect() as conn:
        rows = conn.execute(
            select(
                audit_events.c.action,
                audit_events.c.purpose,
                audit_events.c.subject,
                audit_events.c.decision,
            )
            .where(audit_events.c.actor == actor)
            .order_by(audit_events.c.seq)
        ).all()
    return [(r.action, r.purpose, r.subject, r.decision) for r in rows]


def _pseudonym(world: World, principal: Principal) -> str:
    key = world.platform.operator_keys().derive("audit.subject")
    return subject_pseudonym(key, world.amc, str(principal.beneficiary_id))


def _serials(platform: Platform, insurer_id: int) -> set[str]:
    with platform.engine.connect() as conn:
        return set(
            conn.execute(
                select(cards_table.c.serial).where(cards_table.c.insurer_id == insurer_id)
            ).scalars()
        )


def test_given_two_families_then_each_member_reads_only_their_own(
    platform: Platform, tmp_path: Path
) -> None:
    world = make_world(platform, tmp_path, count=12)
    mine, theirs = _two_families(world)
    me = _member(world, mine, "me")
    neighbour = _member(world, theirs, "neighbour")
    year = platform.today().year
    my_serial = cards.issue_family_card(
        platform, world.amc, mine.member_number, year, world.out, ACTOR
    )
    their_serial = cards.issue_family_card(
        platform, world.amc, theirs.member_number, year, world.out, ACTOR
    )
    assert _serials(platform, world.insurer_id) == {my_serial, their_serial}

    assert [c.serial for c in member_portal.own_cards(platform, me)] == [my_serial]
    assert [c.serial for c in member_portal.own_cards(platform, neighbour)] == [their_serial]

    # The neighbour's views are events about the neighbour: my history never lists them.
    member_portal.consultations(platform, neighbour)
    member_portal.consultations(platform, neighbour)
    # A view lists what came before it (its own event is appended after the read).
    history = member_portal.consultations(platform, me)
    assert [(c.action, c.who) for c in history] == [
        ("member.cards", "vous-même"),
        ("card.issue", "—"),
    ]

    export = member_portal.data_export(platform, me)
    assert export.record.member_number == mine.member_number
    assert export.record.birth_date == mine.birth_date
    assert export.record.insurer == world.amc
    assert mine.nir not in export.record.nir_masked
    assert export.record.nir_masked.endswith("** ** *** *** **")
    assert [c.action for c in export.history] == [
        "member.consultations",
        "member.cards",
        "card.issue",
    ]


def test_every_read_of_a_member_is_audited_with_their_subject(
    platform: Platform, tmp_path: Path
) -> None:
    world = make_world(platform, tmp_path, count=6)
    mine, _ = _two_families(world)
    me = _member(world, mine, "audited")
    subject = _pseudonym(world, me)

    member_portal.consultations(platform, me)
    member_portal.own_cards(platform, me)
    member_portal.data_export(platform, me)
    card = member_portal.new_card_pdf(platform, me)

    assert card.year == platform.today().year
    assert card.pdf.startswith(b"%PDF")
    reads = [
        ("member.consultations", "data_subject_access", subject, "allow"),
        ("member.cards", "data_subject_access", subject, "allow"),
        ("member.data_export", "data_subject_access", subject, "allow"),
    ]
    events = _events(platform, me.id)
    assert events[:3] == reads
    assert [e[0] for e in events[3:]] == ["card.issue"]  # audited by services.cards


@pytest.mark.parametrize(
    "principal",
    [
        Principal("staff:x", PrincipalKind.INSURER_STAFF, AuthStrength.AAL2, insurer_id=1),
        Principal("operator:x", PrincipalKind.OPERATOR_STAFF, AuthStrength.AAL2),
        Principal("member:none", PrincipalKind.MEMBER, AuthStrength.AAL2, insurer_id=1),
        Principal(
            "provider:x",
            PrincipalKind.PROVIDER_USER,
            AuthStrength.AAL2,
            insurer_id=1,
            beneficiary_id=1,
        ),
    ],
    ids=["insurer-staff", "operator", "member-without-beneficiary", "provider"],
)
def test_given_a_principal_that_is_not_a_member_then_nothing_is_read_nor_audited(
    platform: Platform, principal: Principal
) -> None:
    with platform.engine.connect() as conn:
        before = conn.execute(select(func.count()).select_from(audit_events)).scalar_one()
    for read in (
        member_portal.consultations,
        member_portal.own_cards,
        member_portal.data_export,
        member_portal.new_card_pdf,
    ):
        with pytest.raises(Forbidden) as refused:
            read(platform, principal)
        assert refused.value.code == "auth.wrong_principal"
    with platform.engine.connect() as conn:
        after = conn.execute(select(func.count()).select_from(audit_events)).scalar_one()
    assert after == before
