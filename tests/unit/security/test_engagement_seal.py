"""Engagement numbers: the seal opens what it sealed, and no alteration of a number is
ever accepted (property test over random mutations of the text)."""

from __future__ import annotations

import base64
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tierspayant.domain.care import CareDomain
from tierspayant.domain.engagements import (
    EngagementError,
    RightsEngagement,
    pack_rights,
    unpack_rights,
)
from tierspayant.security.crypto import new_data_keys
from tierspayant.security.engagement import (
    EngagementSealError,
    b32_text,
    open_sealed,
    parse,
    seal,
)

KEYS = new_data_keys(3)
OTHER_KEYS = new_data_keys(3)
ENGAGEMENT = RightsEngagement(
    insurer_id=12,
    provider_id=345,
    beneficiary_id=6_789_012,
    care_date=date(2026, 11, 2),
    valid_until=date(2026, 11, 2),
    coverage_start=date(2024, 1, 1),
    domains=frozenset({CareDomain.PHAR, CareDomain.MED}),
    tiers_payant=frozenset({CareDomain.PHAR}),
    contract_code="BASE-2026",
)
NUMBER = seal("R", pack_rights(ENGAGEMENT), KEYS)
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567-=01"


def opened(text: str) -> RightsEngagement:
    kind, version, sealed = parse(text)
    if version != KEYS.version:  # as the service does: no key of that version
        raise EngagementSealError("unknown key version")
    return unpack_rights(open_sealed(kind, sealed, KEYS))


def canonical(text: str) -> str:
    """The text as the reader normalises it (case, spaces and body dashes ignored)."""
    cleaned = text.replace(" ", "").upper()
    head, _, rest = cleaned.partition("-")
    kind, _, body = rest.partition("-")
    return f"{head}-{kind}-{body.replace('-', '')}"


def test_a_sealed_number_opens_to_what_was_sealed() -> None:
    assert NUMBER.startswith("ENG1-R-")
    assert opened(NUMBER) == ENGAGEMENT
    # read as typed: lower case, grouped with spaces
    assert opened(NUMBER.lower().replace("-", " - ", 1)) == ENGAGEMENT
    assert len(NUMBER) < 120


def test_another_key_or_another_kind_does_not_open_it() -> None:
    kind, _, sealed = parse(NUMBER)
    with pytest.raises(EngagementSealError):
        open_sealed(kind, sealed, OTHER_KEYS)
    with pytest.raises(EngagementSealError):
        opened(NUMBER.replace("ENG1-R-", "ENG1-C-"))


@st.composite
def mutations(draw: st.DrawFn) -> str:
    text = NUMBER
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(("replace", "insert", "delete", "truncate", "swap")))
        at = draw(st.integers(0, max(0, len(text) - 1)))
        char = draw(st.sampled_from(ALPHABET))
        if action == "replace":
            text = text[:at] + char + text[at + 1 :]
        elif action == "insert":
            text = text[:at] + char + text[at:]
        elif action == "delete":
            text = text[:at] + text[at + 1 :]
        elif action == "truncate":
            text = text[:at]
        elif at + 1 < len(text):
            text = text[:at] + text[at + 1] + text[at] + text[at + 2 :]
    return text


@settings(max_examples=500, deadline=None)
@given(mutations())
def test_no_mutation_of_a_number_is_ever_accepted(text: str) -> None:
    # Given a number altered anywhere (prefix, kind, key version, seal or ciphertext)
    if canonical(text) == canonical(NUMBER):
        return  # the same number, written differently
    # Then it never opens
    with pytest.raises((EngagementSealError, EngagementError)):
        opened(text)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=120))
def test_random_bytes_under_the_prefix_never_open(raw: bytes) -> None:
    import base64

    text = "ENG1-R-" + base64.b32encode(raw).decode("ascii").rstrip("=")
    with pytest.raises((EngagementSealError, EngagementError)):
        opened(text)


@settings(max_examples=300)
@given(st.binary(max_size=120))
def test_the_numbers_base32_is_the_standard_one_without_padding(raw: bytes) -> None:
    assert b32_text(raw) == base64.b32encode(raw).decode("ascii").rstrip("=")
