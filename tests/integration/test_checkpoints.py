"""Signed checkpoints outside the database; tampering with a copy is found and located."""

from __future__ import annotations

import json
import shutil
import stat
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, select, text, update
from structlog.testing import capture_logs

from tierspayant.app.platform import Platform
from tierspayant.jobs.checkpoints import CheckpointWorker
from tierspayant.security.audit import next_event
from tierspayant.services import checkpoints
from tierspayant.services.errors import Conflict
from tierspayant.store import audit
from tierspayant.store.db import make_engine
from tierspayant.store.operations_tables import audit_checkpoints
from tierspayant.store.tables import audit_events

T0 = datetime(2025, 3, 10, 8, 0, tzinfo=UTC)
SQLITE_ONLY = pytest.mark.parametrize("engine_name", ["sqlite"])


def _append(platform: Platform, count: int) -> None:
    with platform.engine.begin() as conn:
        start = audit.count_events(conn)
        for n in range(start, start + count):
            audit.append(
                conn,
                at=T0 + timedelta(seconds=n),
                actor=f"provider:{n % 3}",
                action="eligibility.check",
                decision="hit",
                subject=f"{n:032x}",
                insurer="12345678",
                detail={"n": n},
            )


@pytest.fixture
def logged(platform: Platform, tmp_path: Path) -> tuple[Platform, Path]:
    """35 events with checkpoints after events 10, 20 and 30 (31-35 not yet covered)."""
    out = tmp_path / "checkpoints"
    with platform.engine.connect() as conn:
        before = audit.count_events(conn)
    assert before == 0 or platform.engine.dialect.name == "postgresql"
    for _ in range(3):
        _append(platform, 10)
        assert checkpoints.write_checkpoint(platform, out) is not None
    _append(platform, 5)
    return platform, out


def test_given_new_events_when_checkpointing_then_signed_file_outside_the_database(
    logged: tuple[Platform, Path],
) -> None:
    platform, out = logged
    files = checkpoints.read_checkpoints(out)
    with platform.engine.connect() as conn:
        total = audit.count_events(conn)
        recorded = conn.execute(select(audit_checkpoints.c.up_to_seq)).scalars().all()
    assert [f.checkpoint.up_to_seq for f in files] == [total - 25, total - 15, total - 5]
    assert sorted(recorded)[-3:] == [f.checkpoint.up_to_seq for f in files]
    key_file = checkpoints.signing_key_path(platform.settings)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.parent != out
    report = checkpoints.verify(platform, out)
    assert report.ok, report
    assert (report.checked, report.checkpoints) == (total, 3)


def test_given_no_new_event_when_checkpointing_then_nothing_written(
    logged: tuple[Platform, Path],
) -> None:
    platform, out = logged
    assert checkpoints.write_checkpoint(platform, out) is not None  # covers 31-35
    assert checkpoints.write_checkpoint(platform, out) is None
    assert len(checkpoints.read_checkpoints(out)) == 4
    assert checkpoints.verify(platform, out).ok  # incremental roots equal full ones


def test_given_a_published_key_when_verifying_then_it_is_used(
    logged: tuple[Platform, Path], tmp_path: Path
) -> None:
    platform, out = logged
    published = tmp_path / "checkpoint.pub"
    checkpoints.export_public_key(platform, published)
    assert checkpoints.verify(platform, out, published).ok
    other = tmp_path / "other.pub"
    other.write_text("11" * 32 + "\n", encoding="ascii")
    report = checkpoints.verify(platform, out, other)
    assert not report.ok
    assert report.reason == "checkpoint.bad_signature"
    assert len(report.bad_files) == 3


def test_given_a_forged_checkpoint_file_then_its_signature_fails(
    logged: tuple[Platform, Path],
) -> None:
    platform, out = logged
    newest = checkpoints.read_checkpoints(out)[-1].path
    document = json.loads(newest.read_text(encoding="utf-8"))
    inner = json.loads(document["checkpoint"])
    inner["up_to_seq"] = inner["up_to_seq"] - 1
    document["checkpoint"] = json.dumps(inner, sort_keys=True, separators=(",", ":"))
    newest.write_text(json.dumps(document), encoding="utf-8")
    report = checkpoints.verify(platform, out)
    assert not report.ok
    assert report.bad_files == (newest.name,)


@pytest.mark.parametrize("frontier", [[[3, "00" * 32]], [[16, "00" * 32], [4, "11" * 32]]])
def test_given_a_forged_frontier_when_checkpointing_then_ignored_and_the_log_read_whole(
    logged: tuple[Platform, Path], frontier: list[list[object]]
) -> None:
    """The frontier is not signed: one that does not yield the signed root is not used."""
    platform, out = logged
    newest = checkpoints.read_checkpoints(out)[-1].path
    document = json.loads(newest.read_text(encoding="utf-8"))
    document["frontier"] = frontier
    newest.write_text(json.dumps(document), encoding="utf-8")
    assert checkpoints.write_checkpoint(platform, out) is not None
    assert checkpoints.verify(platform, out).ok


@SQLITE_ONLY
def test_given_an_old_event_deleted_when_checkpointing_then_refused_with_its_position(
    logged: tuple[Platform, Path],
) -> None:
    platform, out = logged
    with platform.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER audit_events_no_delete"))
        conn.execute(delete(audit_events).where(audit_events.c.seq == 12))
    with pytest.raises(Conflict) as refused:
        checkpoints.write_checkpoint(platform, out)
    assert "position 12" in refused.value.message


@SQLITE_ONLY
def test_given_an_old_event_edited_when_checkpointing_then_the_edit_is_not_absorbed(
    logged: tuple[Platform, Path],
) -> None:
    """The incremental checkpoint extends the signed frontier, not the edited rows."""
    platform, out = logged
    with platform.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER audit_events_no_update"))
        conn.execute(update(audit_events).where(audit_events.c.seq == 15).values(actor="x"))
    written = checkpoints.write_checkpoint(platform, out)
    assert written is not None
    assert written.frontier is not None
    report = checkpoints.verify(platform, out)
    assert (report.ok, report.first_broken_seq, report.reason) == (False, 15, "audit.hash_mismatch")


# --- tampering with a SQLite copy (the append-only triggers dropped first) ------------------


def _tampered_copy(platform: Platform, tmp_path: Path) -> Engine:
    source = Path(platform.engine.url.database or "")
    with platform.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    copy = tmp_path / "copy.sqlite3"
    shutil.copyfile(source, copy)
    engine = make_engine(f"sqlite:///{copy}")
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER audit_events_no_update"))
        conn.execute(text("DROP TRIGGER audit_events_no_delete"))
    return engine


def _verify(platform: Platform, engine: Engine, out: Path) -> checkpoints.CheckpointVerification:
    public_key = checkpoints.load_signing_key(platform.settings).public_key()
    return checkpoints.verify_against_checkpoints(engine, out, public_key)


@SQLITE_ONLY
def test_given_an_untouched_copy_then_it_verifies(
    logged: tuple[Platform, Path], tmp_path: Path
) -> None:
    platform, out = logged
    assert _verify(platform, _tampered_copy(platform, tmp_path), out).ok


@SQLITE_ONLY
def test_given_an_edited_event_then_named_at_its_position(
    logged: tuple[Platform, Path], tmp_path: Path
) -> None:
    platform, out = logged
    engine = _tampered_copy(platform, tmp_path)
    with engine.begin() as conn:
        conn.execute(update(audit_events).where(audit_events.c.seq == 15).values(actor="nobody"))
    report = _verify(platform, engine, out)
    assert (report.ok, report.first_broken_seq, report.reason) == (False, 15, "audit.hash_mismatch")


@SQLITE_ONLY
def test_given_a_deleted_event_then_named_at_its_position(
    logged: tuple[Platform, Path], tmp_path: Path
) -> None:
    platform, out = logged
    engine = _tampered_copy(platform, tmp_path)
    with engine.begin() as conn:
        conn.execute(delete(audit_events).where(audit_events.c.seq == 12))
    report = _verify(platform, engine, out)
    assert (report.ok, report.first_broken_seq, report.reason) == (False, 12, "audit.seq_gap")


@SQLITE_ONLY
def test_given_two_events_swapped_then_named_at_the_first(
    logged: tuple[Platform, Path], tmp_path: Path
) -> None:
    platform, out = logged
    engine = _tampered_copy(platform, tmp_path)
    with engine.begin() as conn:
        for old, new in ((7, -7), (8, 7), (-7, 8)):
            conn.execute(update(audit_events).where(audit_events.c.seq == old).values(seq=new))
    report = _verify(platform, engine, out)
    assert not report.ok
    assert report.first_broken_seq == 7


@SQLITE_ONLY
def test_given_a_truncated_log_then_truncation_is_named(
    logged: tuple[Platform, Path], tmp_path: Path
) -> None:
    platform, out = logged
    engine = _tampered_copy(platform, tmp_path)
    with engine.begin() as conn:
        conn.execute(delete(audit_events).where(audit_events.c.seq >= 26))
    report = _verify(platform, engine, out)
    assert (report.ok, report.first_broken_seq, report.reason) == (False, 26, "audit.truncated")


@SQLITE_ONLY
def test_given_a_suffix_rewritten_and_rehashed_then_the_checkpoint_window_is_named(
    logged: tuple[Platform, Path], tmp_path: Path
) -> None:
    """A consistent re-hash passes the chain check; only the signed checkpoints see it."""
    platform, out = logged
    engine = _tampered_copy(platform, tmp_path)
    with engine.begin() as conn:
        events = list(audit.iter_events(conn))
        previous = events[12]  # seq 13 kept
        for event in events[13:]:
            forged = next_event(
                previous,
                at=event.at,
                actor="provider:innocent" if event.seq == 14 else event.actor,
                action=event.action,
                decision=event.decision,
                subject=event.subject,
                insurer=event.insurer,
                detail=event.detail,
            )
            conn.execute(
                update(audit_events)
                .where(audit_events.c.seq == event.seq)
                .values(actor=forged.actor, prev_hash=forged.prev_hash, hash=forged.hash)
            )
            previous = forged
    report = _verify(platform, engine, out)
    assert not report.ok
    assert report.reason == "audit.anchor_mismatch"
    assert report.window == (11, 20)
    assert report.first_broken_seq == 11


@SQLITE_ONLY
def test_given_a_tampered_log_when_checkpointing_then_refused(
    logged: tuple[Platform, Path], tmp_path: Path
) -> None:
    platform, out = logged
    with platform.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER audit_events_no_update"))
        conn.execute(update(audit_events).where(audit_events.c.seq == 33).values(actor="x"))
    with pytest.raises(Conflict) as refused:
        checkpoints.write_checkpoint(platform, out)
    assert refused.value.code == "audit.chain_broken"
    assert "33" in refused.value.message


# --- scheduled export ------------------------------------------------------------------------


def test_given_a_worker_when_events_arrive_then_checkpoints_follow(
    platform: Platform, tmp_path: Path
) -> None:
    out = tmp_path / "scheduled"
    worker = CheckpointWorker(platform, out, interval=0.05)
    _append(platform, 3)
    with capture_logs() as logs:
        worker.start()
        deadline = time.monotonic() + 10
        while not checkpoints.read_checkpoints(out) and time.monotonic() < deadline:
            time.sleep(0.02)
        _append(platform, 2)
        worker.stop()
    written = checkpoints.read_checkpoints(out)
    with platform.engine.connect() as conn:
        total = audit.count_events(conn)
    assert written
    assert written[-1].checkpoint.up_to_seq == total  # stop() writes a last one
    assert any(entry["event"] == "audit.checkpoint_written" for entry in logs)


@SQLITE_ONLY
def test_given_a_broken_chain_when_the_worker_runs_then_it_logs_and_keeps_going(
    platform: Platform, tmp_path: Path
) -> None:
    _append(platform, 3)
    with platform.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER audit_events_no_delete"))
        conn.execute(delete(audit_events).where(audit_events.c.seq == 2))
    worker = CheckpointWorker(platform, tmp_path / "cp", interval=60)
    with capture_logs() as logs:
        assert worker.run_once() is None
    assert logs[-1]["event"] == "audit.checkpoint_failed"
    assert logs[-1]["code"] == "audit.chain_broken"


def test_an_event_committed_while_a_checkpoint_reads_is_not_a_break(
    logged: tuple[Platform, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The log is live: an event another writer commits after the checkpoint has read the
    chain (before it counts) is left to the next checkpoint, not reported as a break."""
    platform, out = logged
    read = audit.iter_events

    def read_then_another_writer_commits(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        yield from read(*args, **kwargs)  # type: ignore[arg-type]
        _append(platform, 1)  # committed on its own connection, after the last row read

    monkeypatch.setattr(audit, "iter_events", read_then_another_writer_commits)
    with platform.engine.connect() as conn:
        before = audit.count_events(conn)
    signed = checkpoints.write_checkpoint(platform, out)
    assert signed is not None
    assert signed.checkpoint.up_to_seq == before  # the tip it read, not the newer event
    monkeypatch.undo()
    following = checkpoints.write_checkpoint(platform, out)
    assert following is not None
    assert following.checkpoint.up_to_seq == before + 1
    assert checkpoints.verify(platform, out).ok
