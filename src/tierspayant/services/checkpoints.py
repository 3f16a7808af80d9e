"""Signed audit checkpoints exported outside the database, and verification against them.

The hash chain alone shows an edit, a deletion or a reordering, but not a log cut short
or rewritten from some point on and re-hashed: only a statement kept elsewhere can. A
checkpoint states "events 1..N, last hash H, Merkle root R", signed with the operator's
Ed25519 checkpoint key. That key lives beside the keyring (a 0600 file in the data
directory), never in the database, so whoever rewrites the database cannot re-sign.

Each checkpoint is one JSON file, written once (``O_EXCL``) into an append-only directory
that should be shipped to write-once storage. It also carries the Merkle *frontier* (the
roots of the complete subtrees), so the next checkpoint reads only the newer events.
Verification takes the newest checkpoint with a valid signature as the anchor of
:func:`~tierspayant.security.audit.verify_chain`; when the log disagrees with it, one more
pass compares every checkpoint to name the narrowest window that was rewritten.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Connection, Engine

from tierspayant import metrics
from tierspayant.app.platform import Platform
from tierspayant.config import Settings
from tierspayant.domain.codes import PlatformCode
from tierspayant.security.audit import (
    GENESIS,
    AuditEvent,
    ChainStart,
    Checkpoint,
    MerkleAccumulator,
    VerifyFailure,
    VerifyReport,
    chain_hash,
    generate_signing_key,
    load_private_key,
    load_public_key,
    private_key_bytes,
    public_key_bytes,
    sign_checkpoint,
    verify_chain,
    verify_checkpoint,
)
from tierspayant.security.keys import create_secret_file, read_secret_file
from tierspayant.services.errors import Conflict, ServiceError
from tierspayant.store import audit, audit_archives
from tierspayant.store.checkpoints import insert_checkpoint
from tierspayant.store.partitions import default_partition_rows, ensure_audit_months

FILE_FORMAT = "tierspayant.audit-checkpoint.v1"
SIGNING_KEY_FILE = "audit-checkpoint.key"
FILE_PREFIX = "checkpoint-"


def signing_key_path(settings: Settings) -> Path:
    """Where the checkpoint signing key lives: beside the keyring, outside the database."""
    return settings.keyring_path.parent / SIGNING_KEY_FILE


def load_signing_key(settings: Settings, *, create: bool = False) -> Ed25519PrivateKey:
    """The operator's checkpoint signing key; created on first use when ``create``."""
    path = signing_key_path(settings)
    if create and not path.exists():
        create_secret_file(path, private_key_bytes(generate_signing_key()))
    raw = read_secret_file(path)
    try:
        return load_private_key(raw)
    except ValueError as exc:
        raise ServiceError(
            PlatformCode.CHECKPOINT_BAD_KEY, f"{path} is not an Ed25519 key"
        ) from exc


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short fingerprint naming the verification key in each checkpoint file."""
    return hashlib.sha256(public_key_bytes(public_key)).hexdigest()[:32]


def load_public_key_file(path: Path) -> Ed25519PublicKey:
    """A verification key published to auditors (64 hex characters)."""
    try:
        return load_public_key(bytes.fromhex(path.read_text(encoding="ascii").strip()))
    except (OSError, ValueError) as exc:
        raise ServiceError(
            PlatformCode.CHECKPOINT_BAD_PUBLIC_KEY, f"{path}: not an Ed25519 key"
        ) from exc


@dataclass(frozen=True, slots=True)
class CheckpointFile:
    """One exported checkpoint as read back from its file."""

    path: Path
    checkpoint: Checkpoint
    signature: bytes
    key_id: str
    frontier: tuple[tuple[int, bytes], ...] | None = None


def _file_name(checkpoint: Checkpoint) -> str:
    return f"{FILE_PREFIX}{checkpoint.up_to_seq:012d}.json"


def read_checkpoint_file(path: Path) -> CheckpointFile:
    """Parse one checkpoint file (ServiceError ``checkpoint.malformed`` if it is not one)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(document, dict) or document.get("format") != FILE_FORMAT:
            raise ValueError("not a checkpoint file")
        return CheckpointFile(
            path=path,
            checkpoint=Checkpoint.from_json(str(document["checkpoint"])),
            signature=bytes.fromhex(str(document["signature"])),
            key_id=str(document["key_id"]),
            frontier=_frontier(document.get("frontier")),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ServiceError(
            PlatformCode.CHECKPOINT_MALFORMED, f"{path.name} is not a checkpoint"
        ) from exc


def _frontier(raw: object) -> tuple[tuple[int, bytes], ...] | None:
    if not isinstance(raw, list):
        return None
    return tuple((int(size), bytes.fromhex(str(digest))) for size, digest in raw)


def read_checkpoints(directory: Path) -> list[CheckpointFile]:
    """Every checkpoint file of ``directory``, oldest (lowest sequence) first."""
    if not directory.is_dir():
        return []
    files = [read_checkpoint_file(p) for p in directory.glob(f"{FILE_PREFIX}*.json")]
    return sorted(files, key=lambda f: f.checkpoint.up_to_seq)


def _write_once(path: Path, content: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError as exc:
        raise Conflict(PlatformCode.CHECKPOINT_EXISTS, f"{path.name} already exists") from exc
    try:
        os.write(fd, content.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def write_checkpoint(platform: Platform, out_dir: Path) -> CheckpointFile | None:
    """Check the log and export a checkpoint (:func:`_write_checkpoint`), keeping the
    metrics of the alerts: ``tierspayant_audit_chain_broken`` (1 on a broken chain, 0
    once verified), the time of the last success, and each failure by its code."""
    try:
        written = _write_checkpoint(platform, out_dir)
    except Exception as exc:
        code = str(getattr(exc, "code", None) or type(exc).__name__)
        metrics.AUDIT_CHECKPOINT_FAILURES.labels(code).inc()
        if code == PlatformCode.AUDIT_CHAIN_BROKEN:
            metrics.AUDIT_CHAIN_BROKEN.set(1)
        raise
    metrics.AUDIT_CHAIN_BROKEN.set(0)
    metrics.AUDIT_CHECKPOINT_SUCCESS.set(platform.now().timestamp())
    maintain_audit_partitions(platform)
    return written


def maintain_audit_partitions(platform: Platform) -> int:
    """The audit log's month partitions ahead of time, and the events its DEFAULT
    partition holds (PostgreSQL; 0 on SQLite), kept in a gauge: run with each checkpoint."""
    with platform.engine.begin() as conn:
        ensure_audit_months(conn, platform.now().date())
        held = default_partition_rows(conn)
    metrics.AUDIT_DEFAULT_PARTITION_ROWS.set(held)
    return held


def _write_checkpoint(platform: Platform, out_dir: Path) -> CheckpointFile | None:
    """Check the events appended since the newest checkpoint, then sign and export one.

    Incremental: the newest validly signed checkpoint of ``out_dir`` carries the Merkle
    frontier it was computed with, so only newer events are read (their sequence, links
    and hashes), plus a count of all events (a deletion anywhere shows). Without such a
    checkpoint the whole log is checked. Returns None when nothing was appended. Refuses
    (``audit.chain_broken``, naming the position) to sign a log that fails: a checkpoint
    never blesses tampering — and since the new root extends the signed frontier, an
    older event edited in place is not absorbed either (verification names it).
    """
    private_key = load_signing_key(platform.settings, create=True)
    public_key = private_key.public_key()
    out_dir.mkdir(parents=True, exist_ok=True)
    trusted = [f for f in read_checkpoints(out_dir) if _signed_by(f, public_key)]
    latest = trusted[-1] if trusted else None
    with platform.engine.connect() as conn:
        tip = _extend(conn, _resume(latest), latest)
    if tip.seq == 0 or (latest is not None and tip.seq == latest.checkpoint.up_to_seq):
        return None
    checkpoint = Checkpoint(tip.seq, tip.last_hash, tip.merkle.root(), platform.now())
    signature = sign_checkpoint(private_key, checkpoint)
    path = out_dir / _file_name(checkpoint)
    frontier = tip.merkle.frontier()
    document = {
        "format": FILE_FORMAT,
        "checkpoint": checkpoint.to_json(),
        "signature": signature.hex(),
        "key_id": key_id(public_key),
        "frontier": [[size, digest.hex()] for size, digest in frontier],
    }
    _write_once(path, json.dumps(document, indent=2) + "\n")
    with platform.engine.begin() as conn:
        insert_checkpoint(
            conn,
            up_to_seq=checkpoint.up_to_seq,
            last_hash=checkpoint.last_hash,
            merkle_root=checkpoint.merkle_root,
            signed_at=checkpoint.at,
            key_id=key_id(public_key),
            file_name=path.name,
        )
    return CheckpointFile(path, checkpoint, signature, key_id(public_key), frontier)


@dataclass(frozen=True, slots=True)
class _Tip:
    """A state of the log a checkpoint can extend: events 1..seq, their tip and tree."""

    seq: int
    last_hash: bytes
    merkle: MerkleAccumulator


def _resume(latest: CheckpointFile | None) -> _Tip:
    """The state a signed checkpoint attests, or the empty log if it cannot be resumed."""
    empty = _Tip(0, GENESIS, MerkleAccumulator())
    if latest is None or latest.frontier is None:
        return empty
    try:
        merkle = MerkleAccumulator.resume(latest.frontier)
    except ValueError:
        return empty
    checkpoint = latest.checkpoint
    if merkle.count != checkpoint.up_to_seq or merkle.root() != checkpoint.merkle_root:
        return empty  # a frontier that does not produce the signed root is ignored
    return _Tip(checkpoint.up_to_seq, checkpoint.last_hash, merkle)


def _extend(conn: Connection, tip: _Tip, latest: CheckpointFile | None) -> _Tip:
    """Follow the chain from ``tip`` to the newest event; Conflict at the first break."""
    expected, previous = tip.seq + 1, tip.last_hash
    for event in audit.iter_events(conn, after=tip.seq):
        if (
            event.seq != expected
            or not hmac.compare_digest(event.prev_hash, previous)
            or not hmac.compare_digest(chain_hash(previous, event.canonical()), event.hash)
        ):
            raise _broken(conn, latest)
        tip.merkle.add(event.hash)
        previous = event.hash
        expected += 1
    # Counted up to the tip read: events appended since (the log is live) are not a
    # break, an event missing below the tip is. Archived months are no longer counted.
    archived = audit_archives.latest(conn)
    kept = expected - 1 - (archived.last_seq if archived else 0)
    if audit.count_events(conn, up_to_seq=expected - 1) != kept:
        raise _broken(conn, latest)  # an event missing (or added) below the tip
    return _Tip(expected - 1, previous, tip.merkle)


def _broken(conn: Connection, latest: CheckpointFile | None) -> Conflict:
    """The refusal, with the position a full verification names (slow path, on failure)."""
    anchor = latest.checkpoint if latest else None
    report = _verify_remaining(conn, anchor)
    where = (
        f"position {report.first_broken_seq} ({report.reason})"
        if not report.ok
        else "a position before the newest checkpoint"
    )
    return Conflict(
        PlatformCode.AUDIT_CHAIN_BROKEN, f"audit log broken at {where}: no checkpoint signed"
    )


def _verify_remaining(conn: Connection, anchor: Checkpoint | None) -> VerifyReport:
    """Verify the events still in the database: from the genesis, or from the tip of the
    newest archived month (whose events count as present)."""
    archived = audit_archives.latest(conn)
    start = archived.start() if archived else None
    expected = audit.count_events(conn) + (archived.last_seq if archived else 0)
    after = archived.last_seq if archived else 0
    return verify_chain(
        audit.iter_events(conn, after=after), expected_count=expected, anchor=anchor, start=start
    )


def _signed_by(file: CheckpointFile, public_key: Ed25519PublicKey) -> bool:
    return verify_checkpoint(public_key, file.checkpoint, file.signature)


@dataclass(frozen=True, slots=True)
class CheckpointVerification:
    """Outcome of verifying the log against exported checkpoints.

    ``first_broken_seq`` names the position; when the log was rewritten and re-hashed
    consistently, only a window can be named: ``window`` is (first, last) sequence
    between the last checkpoint that still agrees and the first that does not.
    """

    ok: bool
    checked: int
    checkpoints: int
    latest_checkpoint_seq: int
    first_broken_seq: int | None = None
    reason: str | None = None
    window: tuple[int, int] | None = None
    bad_files: tuple[str, ...] = ()


def verify_against_checkpoints(
    engine: Engine,
    directory: Path,
    public_key: Ed25519PublicKey,
    *,
    signed_until: datetime | None = None,
) -> CheckpointVerification:
    """Verify the chain and its agreement with every validly signed checkpoint.

    ``signed_until``: only the checkpoints signed at or before it count (a database
    restored to that point in time holds none of the events signed after it)."""
    files = read_checkpoints(directory)
    if signed_until is not None:
        files = [f for f in files if f.checkpoint.at <= signed_until]
    bad = tuple(f.path.name for f in files if not _signed_by(f, public_key))
    trusted = [f.checkpoint for f in files if _signed_by(f, public_key)]
    anchor = trusted[-1] if trusted else None
    with engine.connect() as conn:
        report = _verify_remaining(conn, anchor)
        window = None
        if report.reason is VerifyFailure.ANCHOR_MISMATCH:
            archived = audit_archives.latest(conn)
            after = archived.last_seq if archived else 0
            window = _disagreement_window(
                audit.iter_events(conn, after=after),
                [c for c in trusted if c.up_to_seq > after],
                archived.start() if archived else None,
            )
    latest = anchor.up_to_seq if anchor else 0
    if bad:
        return CheckpointVerification(
            ok=False,
            checked=report.checked,
            checkpoints=len(trusted),
            latest_checkpoint_seq=latest,
            first_broken_seq=report.first_broken_seq,
            reason="checkpoint.bad_signature",
            window=window,
            bad_files=bad,
        )
    return CheckpointVerification(
        ok=report.ok,
        checked=report.checked,
        checkpoints=len(trusted),
        latest_checkpoint_seq=latest,
        first_broken_seq=window[0] if window else report.first_broken_seq,
        reason=None if report.reason is None else str(report.reason),
        window=window,
    )


def _disagreement_window(
    events: Iterable[AuditEvent], checkpoints: list[Checkpoint], start: ChainStart | None = None
) -> tuple[int, int] | None:
    """The sequence range between the last agreeing and the first disagreeing checkpoint
    (from ``start``, the tip of the archived months, if any)."""
    if not checkpoints:
        return None
    merkle = MerkleAccumulator.resume(start.frontier) if start else MerkleAccumulator()
    pending = iter(checkpoints)
    target = next(pending)
    previous_seq = start.seq if start else 0
    for event in events:
        merkle.add(event.hash)
        if event.seq < target.up_to_seq:
            continue
        if event.hash != target.last_hash or merkle.root() != target.merkle_root:
            return previous_seq + 1, target.up_to_seq
        previous_seq = target.up_to_seq
        following = next(pending, None)
        if following is None:
            return None
        target = following
    return previous_seq + 1, target.up_to_seq


def verify(
    platform: Platform,
    directory: Path,
    public_key_file: Path | None = None,
    *,
    signed_until: datetime | None = None,
) -> CheckpointVerification:
    """Verify with the key of this installation, or with a published key file."""
    if public_key_file is not None:
        public_key = load_public_key_file(public_key_file)
    else:
        public_key = load_signing_key(platform.settings).public_key()
    return verify_against_checkpoints(
        platform.engine, directory, public_key, signed_until=signed_until
    )


def export_public_key(platform: Platform, path: Path) -> str:
    """Write the verification key (hex) for auditors; returns its fingerprint."""
    public_key = load_signing_key(platform.settings, create=True).public_key()
    path.write_text(public_key_bytes(public_key).hex() + "\n", encoding="ascii")
    return key_id(public_key)
