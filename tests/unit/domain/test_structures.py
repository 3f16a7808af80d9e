"""One identifier per structure, and a principal's stored status reason read back."""

from __future__ import annotations

import pytest

from tierspayant.domain.structures import (
    NumberKind,
    StatusReason,
    parse_status_reason,
    structure_ref,
)


def test_a_structure_is_known_by_its_finess_else_siret_else_am_number() -> None:
    assert structure_ref("690000001", "12345678900011", "691234567", "Pharmacie").text == (
        "Pharmacie (FINESS 690000001)"
    )
    assert structure_ref(None, "12345678900011", "691234567", "Labo").text == (
        "Labo (SIRET 12345678900011)"
    )
    alone = structure_ref(None, None, "691234567")
    assert alone.kind is NumberKind.AM
    assert alone.text == "n° AM 691234567"


@pytest.mark.parametrize(
    ("stored", "read"),
    [
        (
            "guard.human_speed: lookups faster than a human (12 in 10 s)",
            StatusReason("alert", "guard.human_speed"),
        ),
        ("canary.touched", StatusReason("alert", "canary.touched")),
        (
            "revoked by operator/staff:3",
            StatusReason("operation", "principal.revoke", ("operator/staff:3",)),
        ),
        (
            "reinstated by operator/staff:3 and operator/staff:4",
            StatusReason(
                "operation", "principal.reinstate", ("operator/staff:3", "operator/staff:4")
            ),
        ),
        ("incident response", StatusReason("operation", "incident.revoke")),
        (
            "  identifiants vus sur un forum  ",
            StatusReason(typed="identifiants vus sur un forum"),
        ),
        ("guard: pas un code", StatusReason(typed="guard: pas un code")),
    ],
)
def test_a_stored_reason_reads_back_as_a_label_or_as_typed(stored: str, read: StatusReason) -> None:
    assert parse_status_reason(stored) == read


def test_no_reason_reads_back_as_none() -> None:
    assert parse_status_reason(None) is None
    assert parse_status_reason("   ") is None
