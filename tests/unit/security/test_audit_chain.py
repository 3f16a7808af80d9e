"""The hash-chained audit log: building, verifying, Merkle checkpoints, signatures."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tierspayant.security.audit import (
    GENESIS,
    AuditEvent,
    Checkpoint,
    MerkleAccumulator,
    VerifyFailure,
    canonical_bytes,
    chain_hash,
    generate_signing_key,
    load_private_key,
    load_public_key,
    merkle_root,
    next_event,
    private_key_bytes,
    public_key_bytes,
    sign_checkpoint,
    subject_pseudonym,
    verify_chain,
    verify_checkpoint,
)

T0 = datetime(2026, 2, 1, 8, 0, tzinfo=UTC)
ACTOR = "provider:123456789/client:abc"
PSEUDONYM_KEY = bytes(range(32))


def build_chain(count: int) -> list[AuditEvent]:
    events: list[AuditEvent] = []
    prev: AuditEvent | None = None
    for i in range(count):
        prev = next_event(
            prev,
            at=T0 + timedelta(seconds=i, microseconds=i),
            actor=ACTOR,
            structure="750300360",
            action="eligibility.check",
            purpose="care.dental",
            subject=subject_pseudonym(PSEUDONYM_KEY, "12345678", str(1000 + i)),
            insurer="12345678",
            decision="hit" if i % 3 else "miss",
            detail={"request": f"r{i}", "lines": i, "card_proof": bool(i % 2), "note": None},
        )
        events.append(prev)
    return events


def rechain(events: Sequence[AuditEvent], start: int, prev: AuditEvent | None) -> list[AuditEvent]:
    """Recompute hashes from ``start`` on, as an attacker with write access would."""
    out = list(events[:start])
    for event in events[start:]:
        prev = next_event(
            prev,
            at=event.at,
            actor=event.actor,
            structure=event.structure,
            action=event.action,
            purpose=event.purpose,
            subject=event.subject,
            insurer=event.insurer,
            decision=event.decision,
            detail=event.detail,
        )
        out.append(prev)
    return out


# --- building -------------------------------------------------------------------------


def test_given_no_previous_event_then_first_event_is_seq_1_after_genesis() -> None:
    first = next_event(None, at=T0, actor=ACTOR, action="auth.token", decision="allow")

    assert first.seq == 1
    assert first.prev_hash == GENESIS == bytes(32)
    assert first.hash == hashlib.sha256(GENESIS + first.canonical()).digest()


def test_given_an_event_then_the_next_links_to_its_hash() -> None:
    first, second = build_chain(2)
    assert second.seq == 2
    assert second.prev_hash == first.hash
    assert second.hash == chain_hash(first.hash, second.canonical())


def test_canonical_bytes_are_sorted_compact_json_with_utc_microseconds() -> None:
    paris = timezone(timedelta(hours=1))
    canonical = canonical_bytes(
        seq=42,
        at=datetime(2026, 2, 1, 9, 0, 0, 5, tzinfo=paris),
        actor="staff:jdupont",
        structure=None,
        action="beneficiary.read",
        purpose="support",
        subject="0f" * 16,
        insurer="12345678",
        decision="allow",
        detail={"z": 1, "a": True, "m": None, "é": "ü"},
    )
    assert (
        canonical
        == (
            '{"action":"beneficiary.read","actor":"staff:jdupont",'
            '"at":"2026-02-01T08:00:00.000005Z","decision":"allow",'
            '"detail":{"a":true,"m":null,"z":1,"é":"ü"},"insurer":"12345678",'
            '"purpose":"support","seq":42,"structure":null,'
            '"subject":"0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f"}'
        ).encode()
    )


def test_given_a_non_utc_time_then_the_event_stores_it_in_utc() -> None:
    paris = timezone(timedelta(hours=1))
    event = next_event(
        None, at=datetime(2026, 2, 1, 9, 0, tzinfo=paris), actor=ACTOR, action="a", decision="d"
    )
    assert event.at.tzinfo == UTC
    assert event.at.hour == 8


def test_given_a_naive_time_then_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        next_event(None, at=datetime(2026, 2, 1), actor=ACTOR, action="a", decision="d")


@pytest.mark.parametrize(
    "detail",
    [{"ratio": 0.5}, {"nested": {"a": 1}}, {"long": "x" * 201}, {f"k{i}": i for i in range(33)}],
    ids=["float", "nested", "long-text", "too-many"],
)
def test_given_unsupported_detail_then_refused(detail: dict[str, Any]) -> None:
    with pytest.raises((TypeError, ValueError)):
        next_event(None, at=T0, actor=ACTOR, action="a", decision="d", detail=detail)


def test_given_an_event_then_its_detail_cannot_be_mutated_afterwards() -> None:
    source = {"lines": 1}
    event = next_event(None, at=T0, actor=ACTOR, action="a", decision="d", detail=source)
    source["lines"] = 2
    assert event.detail["lines"] == 1
    with pytest.raises(TypeError):
        event.detail["lines"] = 3  # type: ignore[index]


# --- verification ---------------------------------------------------------------------


def test_given_an_intact_chain_then_verification_passes() -> None:
    events = build_chain(50)

    report = verify_chain(events, expected_count=50)

    assert report.ok
    assert report.checked == 50
    assert report.first_broken_seq is None
    assert report.reason is None
    assert report.last_seq == 50
    assert report.last_hash == events[-1].hash
    assert report.merkle_root == merkle_root([e.hash for e in events])


def test_given_an_empty_log_then_it_verifies_unless_events_were_expected() -> None:
    assert verify_chain([]).ok
    report = verify_chain([], expected_count=1)
    assert not report.ok
    assert report.reason == VerifyFailure.TRUNCATED
    assert report.first_broken_seq == 1


def test_given_an_edited_event_then_verification_names_its_seq() -> None:
    events = build_chain(20)
    events[11] = dataclasses.replace(events[11], decision="allow")  # seq 12

    report = verify_chain(events)

    assert not report.ok
    assert report.reason == VerifyFailure.HASH_MISMATCH
    assert report.reason.value == "audit.hash_mismatch"  # the stable code, as text
    assert report.first_broken_seq == 12
    assert report.checked == 11


def test_given_an_event_edited_and_rehashed_then_the_broken_link_is_named() -> None:
    events = build_chain(20)
    forged = rechain([dataclasses.replace(events[11], subject="00" * 16)], 0, events[10])[0]
    events[11] = forged

    report = verify_chain(events)

    assert report.reason == VerifyFailure.PREV_MISMATCH
    assert report.first_broken_seq == 13  # seq 13 no longer follows the rewritten seq 12


def test_given_a_deleted_event_then_a_gap_is_reported_at_its_seq() -> None:
    events = build_chain(20)
    del events[6]  # seq 7

    report = verify_chain(events)

    assert report.reason == VerifyFailure.SEQ_GAP
    assert report.first_broken_seq == 7
    assert report.checked == 6


def test_given_the_first_event_deleted_then_gap_at_1() -> None:
    report = verify_chain(build_chain(5)[1:])
    assert report.reason == VerifyFailure.SEQ_GAP
    assert report.first_broken_seq == 1


def test_given_two_swapped_events_then_reordering_is_reported_at_the_first() -> None:
    events = build_chain(20)
    events[8], events[9] = events[9], events[8]  # seq 9 and 10

    report = verify_chain(events)

    assert report.reason == VerifyFailure.PREV_MISMATCH
    assert report.first_broken_seq == 9


def test_given_contents_swapped_but_seqs_kept_then_hash_mismatch_at_the_first() -> None:
    events = build_chain(20)
    a, b = events[8], events[9]
    events[8] = dataclasses.replace(b, seq=9)
    events[9] = dataclasses.replace(a, seq=10)

    report = verify_chain(events)

    assert not report.ok
    assert report.first_broken_seq == 9


def test_given_a_duplicated_event_then_reported() -> None:
    events = build_chain(10)
    events.insert(5, events[4])

    report = verify_chain(events)

    assert report.reason == VerifyFailure.PREV_MISMATCH
    assert report.first_broken_seq == 6


def test_given_a_forged_prev_hash_then_prev_mismatch() -> None:
    events = build_chain(10)
    events[3] = dataclasses.replace(events[3], prev_hash=bytes(32))
    report = verify_chain(events)
    assert report.reason == VerifyFailure.PREV_MISMATCH
    assert report.first_broken_seq == 4


def test_given_a_truncated_log_then_only_a_count_or_an_anchor_reveals_it() -> None:
    events = build_chain(30)
    anchor = verify_chain(events).checkpoint(T0)
    cut = events[:25]

    assert verify_chain(cut).ok  # a bare chain cannot see its own tail removed

    by_count = verify_chain(cut, expected_count=30)
    assert by_count.reason == VerifyFailure.TRUNCATED
    assert by_count.first_broken_seq == 26
    by_anchor = verify_chain(cut, anchor=anchor)
    assert by_anchor.reason == VerifyFailure.TRUNCATED
    assert by_anchor.first_broken_seq == 26


def test_given_a_rewritten_suffix_then_only_the_anchor_reveals_it() -> None:
    events = build_chain(30)
    anchor = verify_chain(events[:20]).checkpoint(T0)
    # Attacker deletes seq 15 and re-hashes everything after: internally consistent.
    forged = rechain(events[:14] + events[15:], 14, events[13])

    assert verify_chain(forged).ok
    report = verify_chain(forged, anchor=anchor)
    assert report.reason == VerifyFailure.ANCHOR_MISMATCH
    assert report.first_broken_seq == 20


def test_given_a_log_that_grew_after_the_anchor_then_it_verifies() -> None:
    events = build_chain(40)
    anchor = verify_chain(events[:25]).checkpoint(T0)
    assert verify_chain(events, anchor=anchor, expected_count=25).ok


def test_given_a_one_shot_stream_then_verification_consumes_it_once() -> None:
    consumed = 0

    def stream() -> Iterator[AuditEvent]:
        nonlocal consumed
        for event in build_chain(500):
            consumed += 1
            yield event

    report = verify_chain(stream(), expected_count=500)
    assert report.ok
    assert consumed == 500


# Properties ---------------------------------------------------------------------------

_text = st.text(min_size=1, max_size=20)
_optional = st.none() | _text
_detail = st.dictionaries(
    st.text(max_size=8),
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=30),
    max_size=4,
)
_event_fields = st.fixed_dictionaries(
    {
        "at": st.datetimes(
            min_value=datetime(2000, 1, 1),
            max_value=datetime(2100, 1, 1),
            timezones=st.just(UTC),
        ),
        "actor": _text,
        "action": _text,
        "decision": _text,
        "structure": _optional,
        "purpose": _optional,
        "subject": _optional,
        "insurer": _optional,
        "detail": _detail,
    }
)


def _chain_from(fields: list[dict[str, Any]]) -> list[AuditEvent]:
    events: list[AuditEvent] = []
    prev: AuditEvent | None = None
    for item in fields:
        prev = next_event(prev, **item)
        events.append(prev)
    return events


@settings(max_examples=100)
@given(st.lists(_event_fields, min_size=1, max_size=15))
def test_property_any_chain_built_by_next_event_verifies(fields: list[dict[str, Any]]) -> None:
    events = _chain_from(fields)
    report = verify_chain(events, expected_count=len(events))
    assert report.ok
    assert report.checked == len(events)


_MUTABLE = ("at", "actor", "structure", "action", "purpose", "subject", "insurer", "decision")


@settings(max_examples=300)
@given(
    fields=st.lists(_event_fields, min_size=1, max_size=10),
    data=st.data(),
)
def test_property_any_single_modification_is_detected_at_that_event(
    fields: list[dict[str, Any]], data: st.DataObject
) -> None:
    events = _chain_from(fields)
    index = data.draw(st.integers(0, len(events) - 1), label="index")
    target = events[index]
    name = data.draw(st.sampled_from((*_MUTABLE, "detail", "prev_hash", "hash")), label="field")
    value: Any
    if name == "at":
        value = target.at + timedelta(microseconds=data.draw(st.integers(1, 10**9)))
    elif name == "detail":
        value = data.draw(_detail.filter(lambda d: d != dict(target.detail)))
    elif name in ("prev_hash", "hash"):
        current = getattr(target, name)
        value = data.draw(st.binary(min_size=32, max_size=32).filter(lambda b: b != current))
    else:
        value = data.draw(_optional.filter(lambda v: v != getattr(target, name)))
    events[index] = dataclasses.replace(target, **{name: value})

    report = verify_chain(events)

    assert not report.ok
    assert report.first_broken_seq == target.seq
    assert report.checked == index


@settings(max_examples=100)
@given(
    fields=st.lists(_event_fields, min_size=2, max_size=10),
    data=st.data(),
)
def test_property_any_deletion_or_adjacent_swap_is_detected(
    fields: list[dict[str, Any]], data: st.DataObject
) -> None:
    events = _chain_from(fields)
    index = data.draw(st.integers(0, len(events) - 2))
    if data.draw(st.booleans(), label="swap"):
        events[index], events[index + 1] = events[index + 1], events[index]
        expected = VerifyFailure.PREV_MISMATCH
    else:
        del events[index]
        expected = VerifyFailure.SEQ_GAP
    report = verify_chain(events)
    assert report.reason == expected
    assert report.first_broken_seq == index + 1


# --- pseudonyms -----------------------------------------------------------------------


def test_given_a_beneficiary_then_pseudonym_is_32_hex_deterministic_and_keyed() -> None:
    pseudonym = subject_pseudonym(PSEUDONYM_KEY, "12345678", "4242")

    assert len(pseudonym) == 32
    int(pseudonym, 16)
    assert pseudonym == subject_pseudonym(PSEUDONYM_KEY, "12345678", "4242")
    assert pseudonym != subject_pseudonym(PSEUDONYM_KEY, "87654321", "4242")
    assert pseudonym != subject_pseudonym(PSEUDONYM_KEY, "12345678", "4243")
    assert pseudonym != subject_pseudonym(bytes(32), "12345678", "4242")
    # Boundary between insurer and id is unambiguous.
    assert subject_pseudonym(PSEUDONYM_KEY, "1", "23") != subject_pseudonym(
        PSEUDONYM_KEY, "12", "3"
    )


def test_given_a_short_pseudonym_key_then_refused() -> None:
    with pytest.raises(ValueError, match="256 bits"):
        subject_pseudonym(b"k", "12345678", "1")


# --- Merkle ---------------------------------------------------------------------------

# RFC 6962 reference inputs and tree heads (Certificate Transparency test data).
CT_LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


@pytest.mark.parametrize("size", range(9))
def test_merkle_root_matches_the_rfc_6962_reference_heads(size: int) -> None:
    assert merkle_root(CT_LEAVES[:size]).hex() == CT_ROOTS[size]


def _reference_root(leaves: Sequence[bytes]) -> bytes:
    """RFC 6962 §2.1 written recursively, as the specification states it."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    split = 1
    while split * 2 < len(leaves):
        split *= 2
    return hashlib.sha256(
        b"\x01" + _reference_root(leaves[:split]) + _reference_root(leaves[split:])
    ).digest()


def test_given_a_stream_then_each_prefix_root_equals_the_recursive_definition() -> None:
    leaves = [hashlib.sha256(bytes([i])).digest() for i in range(70)]
    accumulator = MerkleAccumulator()
    for n, leaf in enumerate(leaves, start=1):
        accumulator.add(leaf)
        assert accumulator.count == n
        assert accumulator.root() == _reference_root(leaves[:n])


def test_given_a_changed_or_reordered_leaf_then_root_changes() -> None:
    leaves = [hashlib.sha256(bytes([i])).digest() for i in range(5)]
    root = merkle_root(leaves)
    assert merkle_root([*leaves[:2], bytes(32), *leaves[3:]]) != root
    assert merkle_root([leaves[1], leaves[0], *leaves[2:]]) != root


# --- checkpoints ----------------------------------------------------------------------


@pytest.fixture
def signed() -> tuple[Checkpoint, bytes, Any]:
    key = generate_signing_key()
    checkpoint = verify_chain(build_chain(12)).checkpoint(T0)
    return checkpoint, sign_checkpoint(key, checkpoint), key.public_key()


def test_given_a_signed_checkpoint_then_it_verifies(signed: tuple[Checkpoint, bytes, Any]) -> None:
    checkpoint, signature, public = signed
    assert len(signature) == 64
    assert verify_checkpoint(public, checkpoint, signature)


@pytest.mark.parametrize(
    "change",
    [
        {"up_to_seq": 11},
        {"last_hash": bytes(32)},
        {"merkle_root": bytes(32)},
        {"at": T0 + timedelta(microseconds=1)},
    ],
    ids=["seq", "last_hash", "root", "at"],
)
def test_given_a_tampered_checkpoint_then_signature_fails(
    signed: tuple[Checkpoint, bytes, Any], change: dict[str, Any]
) -> None:
    checkpoint, signature, public = signed
    assert not verify_checkpoint(public, dataclasses.replace(checkpoint, **change), signature)


def test_given_a_tampered_signature_or_another_key_then_verification_fails(
    signed: tuple[Checkpoint, bytes, Any],
) -> None:
    checkpoint, signature, public = signed
    flipped = bytes([signature[0] ^ 1]) + signature[1:]
    assert not verify_checkpoint(public, checkpoint, flipped)
    assert not verify_checkpoint(generate_signing_key().public_key(), checkpoint, signature)


def test_given_raw_key_bytes_then_keys_round_trip(signed: tuple[Checkpoint, bytes, Any]) -> None:
    checkpoint, _, _ = signed
    key = generate_signing_key()
    restored = load_private_key(private_key_bytes(key))
    public = load_public_key(public_key_bytes(key.public_key()))
    assert verify_checkpoint(public, checkpoint, sign_checkpoint(restored, checkpoint))


def test_given_a_checkpoint_then_json_round_trips(signed: tuple[Checkpoint, bytes, Any]) -> None:
    checkpoint, signature, public = signed
    restored = Checkpoint.from_json(checkpoint.to_json())
    assert restored == checkpoint
    assert verify_checkpoint(public, restored, signature)
    with pytest.raises(ValueError, match="checkpoint"):
        Checkpoint.from_json('{"up_to_seq": 1}')


def test_given_a_failed_report_then_no_checkpoint_is_made() -> None:
    events = build_chain(5)
    del events[2]
    with pytest.raises(ValueError, match="refusing"):
        verify_chain(events).checkpoint(T0)


def test_a_subject_pseudonym_stays_the_one_already_in_the_logs() -> None:
    # A known vector: the pseudonyms already written must still designate the same person.
    assert subject_pseudonym(bytes(range(32)), "75012345", "42") == (
        "4293f225b1cabea20da64ce76b4cd9a2"
    )
