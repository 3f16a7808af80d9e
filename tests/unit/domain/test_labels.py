"""Every code a person can read has its French label in ``domain/labels.py``."""

from __future__ import annotations

import json
import re
from enum import StrEnum
from pathlib import Path

import pytest

from tierspayant.domain import labels
from tierspayant.domain.adjudication import Reason
from tierspayant.domain.care import CareDomain
from tierspayant.domain.claims import ClaimStatus, LineStatus
from tierspayant.domain.containment import Route, ScopeKind
from tierspayant.domain.guarantees import Period
from tierspayant.domain.labels import Kind, label, labelled
from tierspayant.domain.prior_auth import PriorAuthStatus
from tierspayant.domain.providers import ProviderCategory
from tierspayant.formats.beneficiaries.model import ImportMode
from tierspayant.security.guard.thresholds import THRESHOLDS
from tierspayant.security.guard.values import ProofFault
from tierspayant.security.principal import PrincipalKind
from tierspayant.services import member_portal
from tierspayant.services.insurer_money import SELECTABLE_REASONS, UndueState

SRC = Path(labels.__file__).resolve().parents[1]
RULES = SRC / "reference" / "rules.json"


@pytest.mark.parametrize(
    ("kind", "enum"),
    [
        (Kind.DOMAIN, CareDomain),
        (Kind.CLAIM_STATUS, ClaimStatus),
        (Kind.LINE_STATUS, LineStatus),
        (Kind.PRIOR_AUTH_STATUS, PriorAuthStatus),
        (Kind.REASON, Reason),
        (Kind.IMPORT_MODE, ImportMode),
        (Kind.PRINCIPAL_KIND, PrincipalKind),
        (Kind.CEILING_PERIOD, Period),
        (Kind.PROVIDER_CATEGORY, ProviderCategory),
        (Kind.UNDUE_STATE, UndueState),
        (Kind.CONTAINMENT_SCOPE, ScopeKind),
        (Kind.CONTAINMENT_ROUTE, Route),
    ],
)
def test_every_value_of_a_code_enumeration_has_a_label(kind: Kind, enum: type[StrEnum]) -> None:
    missing = [m.value for m in enum if label(kind, m) == m.value]
    assert not missing, f"{kind}: no French label for {missing}"


def test_every_act_family_of_the_reference_rules_has_a_label() -> None:
    families = json.loads(RULES.read_text(encoding="utf-8"))["families"]
    assert set(families) == set(labels.FAMILIES)


def test_every_alert_the_guard_can_raise_has_a_label() -> None:
    codes = {c for row in THRESHOLDS for c in (row.code, row.soft_code, row.watch_code) if c}
    codes |= {f"guard.proof_{fault.value}" for fault in ProofFault} | {"guard.canary"}
    assert codes - set(labels.ALERTS) == set()


def test_every_audited_operation_has_a_label() -> None:
    """Every ``action="…"`` the source writes in the audit log (the member's history and
    the security console show them)."""
    found: set[str] = set()
    for path in SRC.rglob("*.py"):
        found |= set(re.findall(r'\baction="([a-z_.]+)"', path.read_text(encoding="utf-8")))
    assert len(found) > 40  # the scan sees the audit appends
    found |= {"containment.approve", "containment.lift"}  # chosen in a conditional
    found |= {  # the member portal's reads, written through named constants
        member_portal.CONSULTATIONS,
        member_portal.DATA_EXPORT,
        member_portal.CARDS,
        member_portal.COVERAGE,
        member_portal.GUARANTEES,
        member_portal.STATEMENT,
    }
    assert found - set(labels.OPERATIONS) == set()


def test_a_label_is_french_and_the_code_shows_only_where_asked() -> None:
    assert label("domain", CareDomain.PHAR) == "Pharmacie"
    assert label(Kind.FAMILY, "drug_65") == "Médicament remboursé à 65 %"
    assert labelled(Kind.REASON, "rights.none") == (
        "Pas de droits complémentaires à la date des soins (rights.none)"
    )
    # An unforeseen value still shows (as itself) rather than failing a page.
    assert label(Kind.ALERT, "guard.new_rule") == "guard.new_rule"
    assert labelled(Kind.ALERT, "guard.new_rule") == "guard.new_rule"


def test_every_reason_the_undue_form_offers_has_a_label() -> None:
    assert SELECTABLE_REASONS
    assert [r for r in SELECTABLE_REASONS if label(Kind.UNDUE_REASON, r) == r] == []
