"""Retention of the audit log: a past month archived to a file, then its partition
detached and dropped (PostgreSQL, migration 0018). Never an UPDATE or DELETE in place.

Refused unless the month is the oldest still in the database, wholly past, and covered by
a validly signed checkpoint that the chain verifies against (from the previous archive's
tip, or from the genesis). The month's events are written once to
``audit-YYYY-MM.jsonl`` with a manifest (``.manifest.json``: digest, line count, first and
last sequence and hashes, the Merkle frontier at the last event, the covering
checkpoint); the file is read back and verified before the partition is detached, and the
detached table is dropped in the same transaction, after its count and last hash agreed
with the manifest. ``audit verify`` then starts from the archived month's last hash.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import Connection

from tierspayant.app.platform import Platform
from tierspayant.domain.codes import PlatformCode
from tierspayant.security.audit import (
    GENESIS,
    AuditEvent,
    MerkleAccumulator,
    chain_hash,
    verify_checkpoint,
)
from tierspayant.services.checkpoints import (
    CheckpointFile,
    load_signing_key,
    read_checkpoints,
    signing_key_path,
)
from tierspayant.services.errors import Conflict, ServiceError
from tierspayant.store import audit_archives
from tierspayant.store.audit import iter_events
from tierspayant.store.audit_archives import ArchivedMonth
from tierspayant.store.partitions import (
    AUDIT_TABLE,
    audit_months,
    is_partitioned,
    month_partition_name,
    month_start,
    next_month,
)

ARCHIVE_FORMAT = "tierspayant.audit-archive.v1"


@dataclass(frozen=True, slots=True)
class ArchiveResult:
    month: str
    events: int
    first_seq: int
    last_seq: int
    file: Path
    manifest: Path
    digest: str
    checkpoint_seq: int


def _event_line(event: AuditEvent) -> str:
    return json.dumps(
        {
            "seq": event.seq,
            "at": event.at.astimezone(UTC).isoformat(),
            "actor": event.actor,
            "structure": event.structure,
            "action": event.action,
            "purpose": event.purpose,
            "subject": event.subject,
            "insurer": event.insurer,
            "decision": event.decision,
            "detail": dict(event.detail),
            "prev_hash": event.prev_hash.hex(),
            "hash": event.hash.hex(),
        },
        sort_keys=True,
        separators=(",", ":"),
    )


def _event_of(line: str) -> AuditEvent:
    raw = json.loads(line)
    return AuditEvent(
        seq=int(raw["seq"]),
        at=datetime.fromisoformat(raw["at"]),
        actor=raw["actor"],
        structure=raw["structure"],
        action=raw["action"],
        purpose=raw["purpose"],
        subject=raw["subject"],
        insurer=raw["insurer"],
        decision=raw["decision"],
        detail=raw["detail"],
        prev_hash=bytes.fromhex(raw["prev_hash"]),
        hash=bytes.fromhex(raw["hash"]),
    )


def _month_events(conn: Connection, partition: str, batch: int = 5000) -> Iterator[AuditEvent]:
    """The partition's events in chain order, read in batches (memory stays flat)."""
    after = 0
    while True:
        rows = audit_archives.month_rows(conn, partition, after, batch)
        if not rows:
            return
        for row in rows:
            yield AuditEvent(
                seq=int(row["seq"]),
                at=row["at"],
                actor=str(row["actor"]),
                structure=row["structure"],
                action=str(row["action"]),
                purpose=row["purpose"],
                subject=row["subject"],
                insurer=row["insurer"],
                decision=str(row["decision"]),
                detail=json.loads(str(row["detail"])),
                prev_hash=bytes(row["prev_hash"]),
                hash=bytes(row["hash"]),
            )
        after = int(rows[-1]["seq"])


class _Follower:
    """Follows the chain from a tip: sequence, link and hash of each event."""

    def __init__(self, seq: int, last_hash: bytes, merkle: MerkleAccumulator) -> None:
        self.seq, self.last_hash, self.merkle = seq, last_hash, merkle

    def follow(self, event: AuditEvent) -> None:
        if (
            event.seq != self.seq + 1
            or not hmac.compare_digest(event.prev_hash, self.last_hash)
            or not hmac.compare_digest(chain_hash(event.prev_hash, event.canonical()), event.hash)
        ):
            raise Conflict(
                PlatformCode.AUDIT_CHAIN_BROKEN,
                f"chaîne d'audit rompue à la position {self.seq + 1} : archivage refusé",
            )
        self.merkle.add(event.hash)
        self.seq, self.last_hash = event.seq, event.hash

    def copy(self) -> _Follower:
        return _Follower(self.seq, self.last_hash, MerkleAccumulator.resume(self.merkle.frontier()))


def _tip(previous: ArchivedMonth | None) -> _Follower:
    if previous is None:
        return _Follower(0, GENESIS, MerkleAccumulator())
    return _Follower(
        previous.last_seq, previous.last_hash, MerkleAccumulator.resume(previous.frontier)
    )


def _covering(
    conn: Connection, after_month: _Follower, checkpoints: list[CheckpointFile]
) -> CheckpointFile:
    """The first signed checkpoint at or after the month's last event that the chain,
    followed from there in the database, reaches with the same hash and Merkle root."""
    candidates = [f for f in checkpoints if f.checkpoint.up_to_seq >= after_month.seq]
    if not candidates:
        raise Conflict(
            PlatformCode.AUDIT_ARCHIVE_NOT_COVERED,
            f"aucun point de contrôle signé ne couvre l'événement {after_month.seq} : "
            "exporter un point de contrôle avant d'archiver",
        )
    target = candidates[0]
    follower = after_month.copy()
    if follower.seq < target.checkpoint.up_to_seq:
        for event in iter_events(conn, after=follower.seq):
            follower.follow(event)
            if follower.seq == target.checkpoint.up_to_seq:
                break
    checkpoint = target.checkpoint
    if (
        follower.seq != checkpoint.up_to_seq
        or follower.last_hash != checkpoint.last_hash
        or follower.merkle.root() != checkpoint.merkle_root
    ):
        raise Conflict(
            PlatformCode.AUDIT_ARCHIVE_NOT_COVERED,
            f"le journal ne concorde pas avec le point de contrôle {target.path.name} : "
            "archivage refusé",
        )
    return target


def _write_once(path: Path, lines: Iterable[str]) -> str:
    """Write ``lines`` to a new file (never over an existing one); its SHA-256."""
    digest = hashlib.sha256()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError as exc:
        raise Conflict(PlatformCode.AUDIT_ARCHIVE_EXISTS, f"{path.name} existe déjà") from exc
    with os.fdopen(fd, "wb") as out:
        for line in lines:
            data = (line + "\n").encode("utf-8")
            digest.update(data)
            out.write(data)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest()


def _reread(path: Path, digest: str, start: _Follower, expected: ArchivedMonth) -> None:
    """Read the archive file back: same digest, same events, the chain intact."""
    check = hashlib.sha256()
    follower = start.copy()
    lines = 0
    with path.open("rb") as source:
        for raw in source:
            check.update(raw)
            follower.follow(_event_of(raw.decode("utf-8")))
            lines += 1
    if (
        check.hexdigest() != digest
        or lines != expected.events
        or follower.seq != expected.last_seq
        or follower.last_hash != expected.last_hash
        or follower.merkle.frontier() != expected.frontier
    ):
        raise Conflict(
            PlatformCode.AUDIT_ARCHIVE_REFUSED,
            f"{path.name} relu ne concorde pas avec le journal : partition conservée",
        )


def parse_month(value: str) -> date:
    """``YYYY-MM`` as the first day of that month (ServiceError otherwise)."""
    try:
        parsed = datetime.strptime(value, "%Y-%m").date()
    except ValueError as exc:
        raise ServiceError(
            PlatformCode.AUDIT_ARCHIVE_MONTH,
            f"mois attendu au format AAAA-MM, reçu {value!r}",
            field="mois",
        ) from exc
    return parsed


def archive_month(
    platform: Platform, month: date, out_dir: Path, checkpoints_dir: Path | None = None
) -> ArchiveResult:
    """Archive ``month`` of the audit log to ``out_dir`` and drop its partition."""
    label = f"{month.year:04d}-{month.month:02d}"
    refused = PlatformCode.AUDIT_ARCHIVE_REFUSED
    directory = checkpoints_dir or platform.settings.jobs.checkpoint_dir(platform.settings.data_dir)
    end = month_start(next_month(month))
    if end > platform.now():
        raise Conflict(refused, f"le mois {label} n'est pas terminé")
    with platform.engine.connect() as conn:
        if not is_partitioned(conn, AUDIT_TABLE):
            raise Conflict(
                refused, "l'archivage par mois demande PostgreSQL (journal partitionné par mois)"
            )
        months = audit_months(conn)
        if not months or months[0].month != month:
            oldest = f"{months[0].month:%Y-%m}" if months else "aucun"
            raise Conflict(
                refused,
                f"seul le mois le plus ancien peut être archivé (le plus ancien : {oldest})",
            )
        early = audit_archives.default_events_before(conn, end)
        if early:
            raise Conflict(refused, f"la partition par défaut tient des événements de {label}")
        signed: list[CheckpointFile] = []
        if signing_key_path(platform.settings).is_file():
            public_key = load_signing_key(platform.settings).public_key()
            signed = [
                f
                for f in read_checkpoints(directory)
                if verify_checkpoint(public_key, f.checkpoint, f.signature)
            ]
        previous = audit_archives.latest(conn)
        start = _tip(previous)
        follower = start.copy()
        partition = month_partition_name(month)
        first: AuditEvent | None = None
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"audit-{label}.jsonl"

        def lines() -> Iterator[str]:
            nonlocal first
            for event in _month_events(conn, partition):
                follower.follow(event)
                first = first or event
                yield _event_line(event)

        digest = _write_once(path, lines())
        if first is None:
            path.unlink()
            raise Conflict(refused, f"le mois {label} ne tient aucun événement")
        covering = _covering(conn, follower, signed)
    archived = ArchivedMonth(
        month=label,
        first_seq=first.seq,
        last_seq=follower.seq,
        events=follower.seq - first.seq + 1,
        first_prev_hash=first.prev_hash,
        last_hash=follower.last_hash,
        frontier=follower.merkle.frontier(),
        file_name=path.name,
        file_digest=digest,
        checkpoint_seq=covering.checkpoint.up_to_seq,
        checkpoint_file=covering.path.name,
        archived_at=platform.now(),
    )
    manifest = out_dir / f"audit-{label}.manifest.json"
    _write_once(manifest, [json.dumps(_manifest(archived), indent=2)])
    _reread(path, digest, start, archived)
    _detach_and_drop(platform, partition, archived)
    return ArchiveResult(
        label,
        archived.events,
        archived.first_seq,
        archived.last_seq,
        path,
        manifest,
        digest,
        archived.checkpoint_seq,
    )


def _manifest(archived: ArchivedMonth) -> dict[str, object]:
    return {
        "format": ARCHIVE_FORMAT,
        "month": archived.month,
        "file": archived.file_name,
        "sha256": archived.file_digest,
        "lines": archived.events,
        "first_seq": archived.first_seq,
        "last_seq": archived.last_seq,
        "first_prev_hash": archived.first_prev_hash.hex(),
        "last_hash": archived.last_hash.hex(),
        "frontier": [[size, digest.hex()] for size, digest in archived.frontier],
        "checkpoint_seq": archived.checkpoint_seq,
        "checkpoint_file": archived.checkpoint_file,
        "archived_at": archived.archived_at.isoformat(),
    }


def _detach_and_drop(platform: Platform, partition: str, archived: ArchivedMonth) -> None:
    """Detach the month, check the detached table against the manifest, record the
    archive and drop the table: one transaction (any refusal re-attaches it)."""
    with platform.engine.begin() as conn:
        count, last = audit_archives.detach_month(conn, partition)
        if count != archived.events or last != archived.last_hash:
            raise Conflict(
                PlatformCode.AUDIT_ARCHIVE_REFUSED,
                f"la partition {partition} a changé pendant l'archivage : conservée",
            )
        audit_archives.record(conn, archived)
        audit_archives.drop_detached(conn, partition)
