"""Containment rules: which switch refuses which lookup, and how scopes are written.

Worked examples first, then properties over random sets of switches and lookups: a
lookup with card proof is never refused by card-proof-only mode; ``off`` wins over it;
a switch not in force (proposed, lifted, expired) refuses nothing.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tierspayant.domain.codes import ContainmentCode
from tierspayant.domain.containment import (
    ContainmentError,
    ContainmentMode,
    ContainmentScope,
    LookupScope,
    Route,
    ScopeKind,
    Switch,
    SwitchState,
    binding_switch,
    check_reason,
    expiry,
    parse_mode,
    parse_scope,
)

NOW = datetime(2026, 2, 5, 10, 0, tzinfo=UTC)
PHARMACY = LookupScope("75012345", "750012346", "pharmacy", Route.ELIGIBILITY, with_proof=False)


def switch(
    scope: str,
    mode: ContainmentMode,
    *,
    id: int = 1,
    state: SwitchState = SwitchState.ACTIVE,
    expires_at: datetime | None = None,
) -> Switch:
    return Switch(
        id=id,
        scope=parse_scope(scope),
        mode=mode,
        state=state,
        reason="phishing campaign",
        proposer="operator:alice",
        proposed_at=NOW - timedelta(minutes=5),
        approver="operator:bob",
        approved_at=NOW - timedelta(minutes=4),
        expires_at=expires_at,
    )


CARD = ContainmentMode.CARD_PROOF_ONLY
OFF = ContainmentMode.OFF


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("platform", ContainmentScope(ScopeKind.PLATFORM)),
        (" insurer:75012345 ", ContainmentScope(ScopeKind.INSURER, "75012345")),
        ("structure:750012346", ContainmentScope(ScopeKind.STRUCTURE, "750012346")),
        # Corsica's FINESS and AM numbers carry the département 2A or 2B
        ("structure:2a0001234", ContainmentScope(ScopeKind.STRUCTURE, "2A0001234")),
        ("structure:2B0001234", ContainmentScope(ScopeKind.STRUCTURE, "2B0001234")),
        ("category:Pharmacy", ContainmentScope(ScopeKind.CATEGORY, "pharmacy")),
        ("route:prior_auth", ContainmentScope(ScopeKind.ROUTE, "prior_auth")),
    ],
)
def test_given_a_written_scope_then_it_parses_and_prints_back(
    text: str, expected: ContainmentScope
) -> None:
    parsed = parse_scope(text)
    assert parsed == expected
    assert parse_scope(str(parsed)) == parsed


@pytest.mark.parametrize(
    "text",
    [
        "",
        "planet",
        "platform:1",
        "insurer:",
        "insurer:AB12",
        "insurer:2A0001234",
        "structure:2A",
        "structure:2C0001234",
        "structure:75００1",
        "category:plumber",
        "route:/v1/x",
    ],
)
def test_given_a_bad_scope_then_a_coded_refusal(text: str) -> None:
    with pytest.raises(ContainmentError) as refused:
        parse_scope(text)
    assert refused.value.code == ContainmentCode.SCOPE


def test_given_bad_mode_reason_or_duration_then_each_has_its_code() -> None:
    assert parse_mode(" OFF ") is OFF
    with pytest.raises(ContainmentError) as mode:
        parse_mode("closed")
    assert mode.value.code == ContainmentCode.MODE
    with pytest.raises(ContainmentError) as reason:
        check_reason("   short  ")
    assert reason.value.code == ContainmentCode.REASON
    assert expiry(NOW, None) is None
    assert expiry(NOW, 2) == NOW + timedelta(hours=2)
    for hours in (0, 169):
        with pytest.raises(ContainmentError) as duration:
            expiry(NOW, hours)
        assert duration.value.code == ContainmentCode.DURATION


def test_given_card_proof_only_then_only_lookups_without_proof_are_refused() -> None:
    # Given the whole platform in card-proof-only mode
    switches = [switch("platform", CARD)]
    # Then a lookup without proof is refused, the same lookup with a proof goes on
    assert binding_switch(switches, PHARMACY, NOW) == switches[0]
    with_proof = replace(PHARMACY, with_proof=True)
    assert binding_switch(switches, with_proof, NOW) is None


def test_given_off_then_even_card_proof_is_refused_and_off_wins_over_card_proof_only() -> None:
    # Given the platform card-proof-only (switch 1) and the insurer off (switch 2)
    switches = [switch("platform", CARD, id=1), switch("insurer:75012345", OFF, id=2)]
    with_proof = replace(PHARMACY, with_proof=True)
    # Then the insurer's lookups meet "off", with or without proof
    assert binding_switch(switches, PHARMACY, NOW) == switches[1]
    assert binding_switch(switches, with_proof, NOW) == switches[1]
    # And another insurer's lookups meet card-proof-only
    elsewhere = replace(PHARMACY, insurer="99999999")
    assert binding_switch(switches, elsewhere, NOW) == switches[0]


@pytest.mark.parametrize(
    ("scope", "covered"),
    [
        ("insurer:75012345", True),
        ("insurer:75012346", False),
        ("structure:750012346", True),
        ("structure:750012347", False),
        ("category:pharmacy", True),
        ("category:gp", False),
        ("route:eligibility", True),
        ("route:calculation", False),
    ],
)
def test_given_a_scope_then_it_covers_exactly_its_lookups(scope: str, covered: bool) -> None:
    assert (binding_switch([switch(scope, OFF)], PHARMACY, NOW) is not None) is covered


def test_given_switches_not_in_force_then_nothing_is_refused() -> None:
    # Given a proposed, a lifted and an expired switch, all off for the platform
    switches = [
        switch("platform", OFF, id=1, state=SwitchState.PROPOSED),
        switch("platform", OFF, id=2, state=SwitchState.LIFTED),
        switch("platform", OFF, id=3, expires_at=NOW),
    ]
    # Then none refuses; a lift only proposed leaves the switch in force
    assert binding_switch(switches, PHARMACY, NOW) is None
    waiting = switch("platform", OFF, id=4, state=SwitchState.LIFT_PROPOSED)
    assert binding_switch([*switches, waiting], PHARMACY, NOW) == waiting


def test_approval_leads_proposed_to_active_and_a_proposed_lift_to_lifted() -> None:
    assert SwitchState.PROPOSED.after_approval is SwitchState.ACTIVE
    assert SwitchState.LIFT_PROPOSED.after_approval is SwitchState.LIFTED
    assert SwitchState.ACTIVE.after_approval is None
    assert SwitchState.LIFTED.after_approval is None


SCOPES = st.sampled_from(
    [
        "platform",
        "insurer:75012345",
        "insurer:75099999",
        "structure:750012346",
        "category:pharmacy",
        "category:gp",
        *(f"route:{r.value}" for r in Route),
    ]
)
SWITCHES = st.lists(
    st.builds(
        lambda scope, mode, state, expired: (scope, mode, state, expired),
        SCOPES,
        st.sampled_from(list(ContainmentMode)),
        st.sampled_from(list(SwitchState)),
        st.booleans(),
    ),
    max_size=8,
)
LOOKUPS = st.builds(
    LookupScope,
    st.sampled_from(["75012345", "75099999"]),
    st.sampled_from(["750012346", None]),
    st.sampled_from(["pharmacy", "gp", None]),
    st.sampled_from([*Route, None]),
    st.booleans(),
)


def _build(drawn: list[tuple[str, ContainmentMode, SwitchState, bool]]) -> list[Switch]:
    return [
        switch(scope, mode, id=i, state=state, expires_at=NOW if expired else None)
        for i, (scope, mode, state, expired) in enumerate(drawn, 1)
    ]


@given(SWITCHES, LOOKUPS)
def test_property_the_refusing_switch_is_in_force_covers_and_is_the_strictest(
    drawn: list[tuple[str, ContainmentMode, SwitchState, bool]], lookup: LookupScope
) -> None:
    switches = _build(drawn)
    chosen = binding_switch(switches, lookup, NOW)
    applicable = [s for s in switches if s.in_force_at(NOW) and s.scope.covers(lookup)]
    if chosen is None:
        # Nothing refuses: no "off" applies, and card-proof-only applies only with a proof
        assert all(s.mode is CARD for s in applicable)
        assert lookup.with_proof or not applicable
    else:
        assert chosen in applicable
        assert chosen.mode is OFF or not lookup.with_proof
        if any(s.mode is OFF for s in applicable):
            assert chosen.mode is OFF
        # The same answer whatever the order the switches are read in
        assert binding_switch(list(reversed(switches)), lookup, NOW) == chosen


@given(SWITCHES, LOOKUPS)
def test_property_a_card_proof_is_refused_only_by_off(
    drawn: list[tuple[str, ContainmentMode, SwitchState, bool]], lookup: LookupScope
) -> None:
    switches = _build(drawn)
    with_proof = replace(lookup, with_proof=True)
    chosen = binding_switch(switches, with_proof, NOW)
    assert chosen is None or chosen.mode is OFF
    # And taking the card proof away never turns a refusal into an answer
    if chosen is not None:
        without = replace(lookup, with_proof=False)
        assert binding_switch(switches, without, NOW) is not None
