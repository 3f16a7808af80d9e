"""The hash-chained audit log, independent of where events are stored.

Each event's hash covers the previous event's hash and the event's canonical bytes::

    hash(n) = SHA-256(hash(n-1) || canonical(n))        hash(0) = GENESIS (32 zero bytes)

so editing, deleting or reordering an event breaks the chain at that point, and
:func:`verify_chain` names the position. What a chain alone cannot show — the tail cut
off, or the whole suffix rewritten and re-hashed — is caught by comparing with a signed
:class:`Checkpoint` exported outside the database (``anchor``) or with a count kept
elsewhere (``expected_count``).

Checkpoints carry the RFC 6962 Merkle tree hash of the event hashes, so that later one
event can be proved to be in an exported checkpoint without handing over the others.

Events name people only by :func:`subject_pseudonym` — never a NIR, a name or a date.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from itertools import pairwise
from types import MappingProxyType

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

HASH_BYTES = 32
GENESIS = bytes(HASH_BYTES)
DetailValue = str | int | bool | None
_MAX_DETAIL_ITEMS = 32
_MAX_DETAIL_TEXT = 200
_CHECKPOINT_DOMAIN = b"tierspayant.audit.checkpoint.v1\x00"
_PSEUDONYM_DOMAIN = b"tierspayant.audit.subject.v1\x00"

DISCLOSED = "disclosed"
"""Detail key that every event written by an answer about a person carries (a bool):
True when the answer told the caller something it would not have told about an unknown
person, i.e. it differed from the single "miss" answer (rights, a calculation, an
agreement or a refusal that depends on the contract, an invoice received for them). The
incident scope lists exactly the subjects of the events where it is True. The key is
covered by the event's hash like the rest of the detail."""


class VerifyFailure(StrEnum):
    """Why a chain failed verification (stable codes)."""

    HASH_MISMATCH = "audit.hash_mismatch"  # an event's content no longer matches its hash
    SEQ_GAP = "audit.seq_gap"  # an event is missing (deleted)
    PREV_MISMATCH = "audit.prev_mismatch"  # the link to the previous event is broken
    TRUNCATED = "audit.truncated"  # fewer events than the anchor or expected count
    ANCHOR_MISMATCH = "audit.anchor_mismatch"  # the log differs from a signed checkpoint


def _utc_text(at: datetime) -> str:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


_DETAIL_TYPES = (str, int, bool)  # a tuple: isinstance reads it faster than a union


def _check_detail(detail: Mapping[str, DetailValue]) -> None:
    if len(detail) > _MAX_DETAIL_ITEMS:
        raise ValueError(f"audit detail holds at most {_MAX_DETAIL_ITEMS} items")
    for key, value in detail.items():
        if not isinstance(key, str):
            raise TypeError("audit detail keys must be strings")
        # float is refused: its text form is not stable enough to hash across systems.
        if value is not None and not isinstance(value, _DETAIL_TYPES):
            raise TypeError(f"audit detail {key!r} must be str, int, bool or None")
        if isinstance(value, str) and len(value) > _MAX_DETAIL_TEXT:
            raise ValueError(f"audit detail {key!r} is longer than {_MAX_DETAIL_TEXT}")


# One encoder for every event (``json.dumps`` with options builds a new one per call).
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def canonical_bytes(
    *,
    seq: int,
    at: datetime,
    actor: str,
    structure: str | None,
    action: str,
    purpose: str | None,
    subject: str | None,
    insurer: str | None,
    decision: str,
    detail: Mapping[str, DetailValue],
) -> bytes:
    """The deterministic bytes an event's hash covers: sorted-key compact JSON, UTF-8."""
    document = {
        "seq": seq,
        "at": _utc_text(at),
        "actor": actor,
        "structure": structure,
        "action": action,
        "purpose": purpose,
        "subject": subject,
        "insurer": insurer,
        "decision": decision,
        "detail": dict(detail),
    }
    return _CANONICAL.encode(document).encode("utf-8")


def chain_hash(prev_hash: bytes, canonical: bytes) -> bytes:
    """SHA-256 of the previous hash followed by the event's canonical bytes."""
    return hashlib.sha256(prev_hash + canonical).digest()


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One entry of the log. ``seq`` counts from 1; ``at`` is UTC, given by the caller."""

    seq: int
    at: datetime
    actor: str
    structure: str | None
    action: str
    purpose: str | None
    subject: str | None
    insurer: str | None
    decision: str
    detail: Mapping[str, DetailValue]
    prev_hash: bytes
    hash: bytes

    def canonical(self) -> bytes:
        """The bytes this event's hash covers."""
        return canonical_bytes(
            seq=self.seq,
            at=self.at,
            actor=self.actor,
            structure=self.structure,
            action=self.action,
            purpose=self.purpose,
            subject=self.subject,
            insurer=self.insurer,
            decision=self.decision,
            detail=self.detail,
        )


@dataclass(frozen=True, slots=True)
class ChainHead:
    """What the next event needs of the newest one: its position and its hash."""

    seq: int
    hash: bytes


def check_event_fields(
    *, at: datetime, actor: str, action: str, decision: str, detail: Mapping[str, DetailValue]
) -> None:
    """Raise ValueError for fields :func:`next_event` would refuse (checked up front when
    an event is queued for a batch, so one bad event cannot fail its neighbours)."""
    _check_detail(detail)
    if at.tzinfo is None or at.utcoffset() is None:  # what _utc_text refuses
        raise ValueError("audit timestamps must be timezone-aware")
    if not actor or not action or not decision:
        raise ValueError("an audit event needs an actor, an action and a decision")


def next_event(
    prev: AuditEvent | ChainHead | None,
    *,
    at: datetime,
    actor: str,
    action: str,
    decision: str,
    structure: str | None = None,
    purpose: str | None = None,
    subject: str | None = None,
    insurer: str | None = None,
    detail: Mapping[str, DetailValue] | None = None,
) -> AuditEvent:
    """The event that follows ``prev`` (or the first event when ``prev`` is None)."""
    frozen_detail = MappingProxyType(dict(detail or {}))
    _check_detail(frozen_detail)
    _utc_text(at)  # refuses naive datetimes
    # Stored in UTC: some databases drop the offset and hand back UTC wall time, which
    # must reproduce the same canonical bytes.
    at = at.astimezone(UTC)
    if not actor or not action or not decision:
        raise ValueError("an audit event needs an actor, an action and a decision")
    seq = 1 if prev is None else prev.seq + 1
    prev_hash = GENESIS if prev is None else prev.hash
    canonical = canonical_bytes(
        seq=seq,
        at=at,
        actor=actor,
        structure=structure,
        action=action,
        purpose=purpose,
        subject=subject,
        insurer=insurer,
        decision=decision,
        detail=frozen_detail,
    )
    return AuditEvent(
        seq=seq,
        at=at,
        actor=actor,
        structure=structure,
        action=action,
        purpose=purpose,
        subject=subject,
        insurer=insurer,
        decision=decision,
        detail=frozen_detail,
        prev_hash=prev_hash,
        hash=chain_hash(prev_hash, canonical),
    )


def subject_pseudonym(key: bytes, insurer_amc: str, beneficiary_id: str) -> str:
    """How the log names a beneficiary: 32 hex characters of a keyed HMAC.

    ``beneficiary_id`` is a stable internal id (never a NIR). Without ``key`` the
    pseudonym says nothing; with it, incident scoping recomputes the pseudonyms of an
    insurer's beneficiaries and lists exactly who was read.
    """
    if len(key) < 32:
        raise ValueError("pseudonym key must hold at least 256 bits")
    message = (
        _PSEUDONYM_DOMAIN + insurer_amc.encode("utf-8") + b"\x00" + beneficiary_id.encode("utf-8")
    )
    return hmac.digest(key, message, "sha256")[:16].hex()  # one call, no HMAC object


# --- Merkle tree (RFC 6962 §2.1) -------------------------------------------------------


def _leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def _node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


class MerkleAccumulator:
    """Builds the RFC 6962 Merkle tree hash of a stream of leaves in O(log n) memory."""

    __slots__ = ("_stack", "count")

    def __init__(self) -> None:
        # Roots of complete subtrees, largest first, as (number of leaves, hash).
        self._stack: list[tuple[int, bytes]] = []
        self.count = 0

    def add(self, leaf: bytes) -> None:
        """Append one leaf (for the audit log: an event hash)."""
        size, digest = 1, _leaf_hash(leaf)
        while self._stack and self._stack[-1][0] == size:
            left_size, left = self._stack.pop()
            size, digest = left_size + size, _node_hash(left, digest)
        self._stack.append((size, digest))
        self.count += 1

    def frontier(self) -> tuple[tuple[int, bytes], ...]:
        """Roots of the complete subtrees so far, largest first: enough to resume later."""
        return tuple(self._stack)

    @classmethod
    def resume(cls, frontier: Iterable[tuple[int, bytes]]) -> MerkleAccumulator:
        """An accumulator continuing from a :meth:`frontier` (kept with a checkpoint).

        The sizes must be distinct powers of two, largest first (the binary digits of the
        leaf count); ValueError otherwise. Whether the frontier belongs to a given root is
        for the caller to check (``resume(f).root() == checkpoint.merkle_root``).
        """
        stack = [(int(size), bytes(digest)) for size, digest in frontier]
        sizes = [size for size, _ in stack]
        descending = all(later < earlier for earlier, later in pairwise(sizes))
        if not descending or any(size < 1 or size & (size - 1) for size in sizes):
            raise ValueError("not a Merkle frontier")
        accumulator = cls()
        accumulator._stack = stack
        accumulator.count = sum(sizes)
        return accumulator

    def root(self) -> bytes:
        """The tree hash of the leaves added so far (SHA-256 of b"" when empty)."""
        if not self._stack:
            return hashlib.sha256(b"").digest()
        digest = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            digest = _node_hash(left, digest)
        return digest


def merkle_root(hashes: Sequence[bytes]) -> bytes:
    """RFC 6962 Merkle tree hash of ``hashes`` taken as leaves, in order."""
    accumulator = MerkleAccumulator()
    for leaf in hashes:
        accumulator.add(leaf)
    return accumulator.root()


# --- Signed checkpoints ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed statement of the log's state: events 1..up_to_seq, their tip and root."""

    up_to_seq: int
    last_hash: bytes
    merkle_root: bytes
    at: datetime

    def to_json(self) -> str:
        """Portable text form, for export next to its signature."""
        return json.dumps(
            {
                "up_to_seq": self.up_to_seq,
                "last_hash": self.last_hash.hex(),
                "merkle_root": self.merkle_root.hex(),
                "at": _utc_text(self.at),
            },
            sort_keys=True,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> Checkpoint:
        """Read a checkpoint written by :meth:`to_json` (ValueError if malformed)."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("checkpoint must be a JSON object")
        try:
            return cls(
                up_to_seq=int(data["up_to_seq"]),
                last_hash=bytes.fromhex(data["last_hash"]),
                merkle_root=bytes.fromhex(data["merkle_root"]),
                at=datetime.fromisoformat(str(data["at"]).replace("Z", "+00:00")),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError("checkpoint lacks a field or has a wrong type") from exc


def checkpoint_bytes(checkpoint: Checkpoint) -> bytes:
    """The exact bytes a checkpoint signature covers (domain-separated)."""
    return _CHECKPOINT_DOMAIN + checkpoint.to_json().encode("ascii")


def generate_signing_key() -> Ed25519PrivateKey:
    """A new Ed25519 key for signing checkpoints (keep it outside the database)."""
    return Ed25519PrivateKey.generate()


def private_key_bytes(private_key: Ed25519PrivateKey) -> bytes:
    """The 32 raw bytes of a signing key, to store in a protected file or secret store."""
    return private_key.private_bytes_raw()


def load_private_key(raw: bytes) -> Ed25519PrivateKey:
    """A signing key from its 32 raw bytes."""
    return Ed25519PrivateKey.from_private_bytes(raw)


def public_key_bytes(public_key: Ed25519PublicKey) -> bytes:
    """The 32 raw bytes of a verification key, to publish to auditors."""
    return public_key.public_bytes_raw()


def load_public_key(raw: bytes) -> Ed25519PublicKey:
    """A verification key from its 32 raw bytes."""
    return Ed25519PublicKey.from_public_bytes(raw)


def sign_checkpoint(private_key: Ed25519PrivateKey, checkpoint: Checkpoint) -> bytes:
    """Ed25519 signature (64 bytes) over :func:`checkpoint_bytes`."""
    return private_key.sign(checkpoint_bytes(checkpoint))


def verify_checkpoint(
    public_key: Ed25519PublicKey, checkpoint: Checkpoint, signature: bytes
) -> bool:
    """True when ``signature`` is a valid signature of exactly this checkpoint."""
    try:
        public_key.verify(signature, checkpoint_bytes(checkpoint))
    except InvalidSignature:
        return False
    return True


# --- Verification ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """Outcome of :func:`verify_chain`.

    ``checked`` counts the events found intact before the first break. ``last_seq``,
    ``last_hash`` and ``merkle_root`` describe those intact events: on success they are
    exactly what a new :class:`Checkpoint` should state.
    """

    ok: bool
    checked: int
    first_broken_seq: int | None = None
    reason: VerifyFailure | None = None
    last_seq: int = 0
    last_hash: bytes = field(default=GENESIS, repr=False)
    merkle_root: bytes = field(default=hashlib.sha256(b"").digest(), repr=False)

    def checkpoint(self, at: datetime) -> Checkpoint:
        """A checkpoint of the verified events (only for a successful report)."""
        if not self.ok:
            raise ValueError("refusing to checkpoint a chain that failed verification")
        return Checkpoint(self.last_seq, self.last_hash, self.merkle_root, at)


@dataclass(frozen=True, slots=True)
class ChainStart:
    """Where verification starts when the events up to ``seq`` were archived: the last
    archived event's hash and the Merkle frontier of events 1..seq. Trusted only through
    a signed checkpoint at or after ``seq`` (passed as ``anchor``), whose root the
    frontier must lead to."""

    seq: int
    last_hash: bytes
    frontier: tuple[tuple[int, bytes], ...]


def verify_chain(
    events: Iterable[AuditEvent],
    *,
    expected_count: int | None = None,
    anchor: Checkpoint | None = None,
    start: ChainStart | None = None,
) -> VerifyReport:
    """Check a whole log, in order, from seq 1 (or from ``start``); stop at the first
    break and name it.

    ``expected_count``: how many events the log is known to hold at least (a counter kept
    elsewhere), counted from seq 1; fewer is ``audit.truncated``. ``anchor``: a checkpoint
    whose signature the caller has already verified; the log must reach
    ``anchor.up_to_seq`` and agree with its hash and Merkle root there. ``start``: the
    archived prefix's tip (the events given then begin at ``start.seq + 1``); with an
    ``anchor`` at ``start.seq`` exactly, the start itself must agree with it. Memory stays
    constant (O(log n) for the Merkle root).
    """
    merkle = MerkleAccumulator()
    prev_hash = GENESIS
    expected_seq = 1
    if start is not None:
        try:
            merkle = MerkleAccumulator.resume(start.frontier)
        except ValueError:
            return VerifyReport(False, 0, start.seq, VerifyFailure.ANCHOR_MISMATCH)
        if merkle.count != start.seq or (
            anchor is not None
            and anchor.up_to_seq == start.seq
            and (anchor.last_hash != start.last_hash or anchor.merkle_root != merkle.root())
        ):
            return VerifyReport(False, 0, start.seq, VerifyFailure.ANCHOR_MISMATCH)
        if anchor is not None and anchor.up_to_seq < start.seq:
            anchor = None  # archived: vouched for when the month was archived
        prev_hash = start.last_hash
        expected_seq = start.seq + 1
    stream: Iterator[AuditEvent] = iter(events)
    pending: AuditEvent | None = None

    def broken(seq: int, reason: VerifyFailure) -> VerifyReport:
        return VerifyReport(
            ok=False,
            checked=merkle.count,
            first_broken_seq=seq,
            reason=reason,
            last_seq=expected_seq - 1,
            last_hash=prev_hash,
            merkle_root=merkle.root(),
        )

    while True:
        if pending is not None:
            event, pending = pending, None
        else:
            event_or_none = next(stream, None)
            if event_or_none is None:
                break
            event = event_or_none
        if event.seq != expected_seq:
            if event.seq > expected_seq:
                # Either the expected event was deleted, or it comes later (reordering):
                # one event of look-ahead tells them apart.
                pending = next(stream, None)
                if pending is not None and pending.seq == expected_seq:
                    return broken(expected_seq, VerifyFailure.PREV_MISMATCH)
                return broken(expected_seq, VerifyFailure.SEQ_GAP)
            # An already seen position again: moved back or duplicated.
            return broken(expected_seq, VerifyFailure.PREV_MISMATCH)
        if not hmac.compare_digest(event.prev_hash, prev_hash):
            return broken(event.seq, VerifyFailure.PREV_MISMATCH)
        if not hmac.compare_digest(chain_hash(event.prev_hash, event.canonical()), event.hash):
            return broken(event.seq, VerifyFailure.HASH_MISMATCH)
        merkle.add(event.hash)
        prev_hash = event.hash
        expected_seq += 1
        if (
            anchor is not None
            and event.seq == anchor.up_to_seq
            and (event.hash != anchor.last_hash or merkle.root() != anchor.merkle_root)
        ):
            return broken(event.seq, VerifyFailure.ANCHOR_MISMATCH)
    seen = expected_seq - 1
    if anchor is not None and seen < anchor.up_to_seq:
        return broken(seen + 1, VerifyFailure.TRUNCATED)
    if expected_count is not None and seen < expected_count:
        return broken(seen + 1, VerifyFailure.TRUNCATED)
    return VerifyReport(
        ok=True,
        checked=seen,
        last_seq=seen,
        last_hash=prev_hash,
        merkle_root=merkle.root(),
    )
