"""Restore a pgBackRest backup into a scratch PostgreSQL cluster (the restore drill).

The scratch cluster is restored with ``pgbackrest restore`` into a data directory of its
own, with WAL archiving switched off (a restored copy must never push WAL into the
production repository), then started on another port and socket directory, waiting
until recovery has replayed the archived WAL up to the target and promoted. When the
drill runs as root, pgBackRest and PostgreSQL run as ``run_as`` (the ``postgres`` user).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

from tierspayant.domain.codes import PlatformCode
from tierspayant.services.errors import Conflict, ServiceError
from tierspayant.store.db import make_engine
from tierspayant.store.recovery import RecoveryState, SqliteCopyFailed, copy_sqlite, recovery_state

DEFAULT_PG_BIN = Path("/usr/lib/postgresql/15/bin")
_OUTPUT_TAIL = 600  # characters of a failed command's output told


class DrillFailed(ServiceError):
    """A step of the restore drill could not run (a command failed, a timeout)."""


@dataclass(frozen=True, slots=True)
class BackupRepository:
    """A pgBackRest repository and stanza, and how to run its tools."""

    config: Path
    stanza: str
    run_as: str | None = None  # the cluster's owner, when the drill runs as root
    pg_bin: Path = DEFAULT_PG_BIN
    pgbackrest: str = "pgbackrest"


@dataclass(frozen=True, slots=True)
class BackupInfo:
    """What ``pgbackrest info`` says of the newest backup and of the WAL archive."""

    label: str | None
    stopped_at: datetime | None
    backup_bytes: int | None
    repository_bytes: int | None
    last_archived_wal: str | None


@dataclass(frozen=True, slots=True)
class ScratchCluster:
    """A restored cluster started on ``port`` (data in ``data_dir``)."""

    data_dir: Path
    port: int
    restore_seconds: float  # copying the backup's files (``pgbackrest restore``)


def run(
    args: Sequence[str], *, run_as: str | None, timeout: float, what: str
) -> subprocess.CompletedProcess[str]:
    """Run a tool (as ``run_as`` through runuser); DrillFailed with its output if it fails."""
    command = ["runuser", "-u", run_as, "--", *args] if run_as else list(args)
    try:
        done = subprocess.run(  # noqa: S603 - fixed tools, arguments from the operator
            command, capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError:
        raise DrillFailed(
            PlatformCode.BACKUP_COMMAND_FAILED, f"{what}: {command[0]} is not installed"
        ) from None
    except subprocess.TimeoutExpired as exc:
        raise DrillFailed(
            PlatformCode.BACKUP_COMMAND_FAILED, f"{what}: no answer after {timeout:.0f} s"
        ) from exc
    if done.returncode != 0:
        output = (done.stderr + done.stdout).strip()[-_OUTPUT_TAIL:]
        raise DrillFailed(
            PlatformCode.BACKUP_COMMAND_FAILED,
            f"{what} failed (exit {done.returncode}): {output}",
        )
    return done


def _base(repo: BackupRepository) -> list[str]:
    return [repo.pgbackrest, f"--config={repo.config}", f"--stanza={repo.stanza}"]


def _moment(text: object) -> datetime | None:
    return datetime.fromtimestamp(text, UTC) if isinstance(text, int) else None


def backup_info(repo: BackupRepository, *, timeout: float = 60) -> BackupInfo:
    """The newest backup of the stanza and the newest archived WAL segment."""
    done = run([*_base(repo), "--output=json", "info"], run_as=repo.run_as, timeout=timeout,
               what="pgbackrest info")  # fmt: skip
    try:
        stanzas = json.loads(done.stdout)
        stanza = next(s for s in stanzas if s.get("name") == repo.stanza)
    except (json.JSONDecodeError, StopIteration, AttributeError) as exc:
        raise DrillFailed(
            PlatformCode.BACKUP_COMMAND_FAILED, "pgbackrest info: unreadable answer"
        ) from exc
    backups = stanza.get("backup") or []
    archives = stanza.get("archive") or []
    newest = backups[-1] if backups else {}
    info = newest.get("info", {})
    return BackupInfo(
        label=newest.get("label"),
        stopped_at=_moment(newest.get("timestamp", {}).get("stop")),
        backup_bytes=info.get("size"),
        repository_bytes=info.get("repository", {}).get("size"),
        last_archived_wal=archives[-1].get("max") if archives else None,
    )


def _own_directory(path: Path, run_as: str | None) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if any(path.iterdir()):
        raise Conflict(
            PlatformCode.BACKUP_EXISTS, f"{path} is not empty: the drill restores into a new one"
        )
    path.chmod(0o700)
    if run_as:
        shutil.chown(path, user=run_as)


def restore(
    repo: BackupRepository,
    scratch: Path,
    port: int,
    target: datetime | None,
    *,
    timeout: float = 600,
) -> ScratchCluster:
    """Restore the newest backup into ``scratch``, replay the WAL to ``target`` (None:
    to the end of the archive) and start the cluster on ``port``, promoted."""
    data_dir, socket_dir = scratch / "pgdata", scratch / "run"
    for directory in (data_dir, socket_dir):
        _own_directory(directory, repo.run_as)
    if repo.run_as:
        shutil.chown(scratch, user=repo.run_as)
    aim = ["--type=default"]
    if target is not None:
        stamp = target.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")
        aim = ["--type=time", f"--target={stamp}", "--target-action=promote"]
    started = time.monotonic()
    restore_args = [*_base(repo), f"--pg1-path={data_dir}", "--archive-mode=off", *aim]
    run([*restore_args, "--log-level-console=warn", "restore"], run_as=repo.run_as,
        timeout=timeout, what="pgbackrest restore")  # fmt: skip
    restored = time.monotonic()
    options = (
        f"-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={socket_dir} "
        "-c archive_mode=off"
    )
    run([str(repo.pg_bin / "pg_ctl"), "-D", str(data_dir), "-l", str(scratch / "postgres.log"),
         "-o", options, "-w", "-t", str(int(timeout)), "start"],
        run_as=repo.run_as, timeout=timeout + 10, what="pg_ctl start")  # fmt: skip
    return ScratchCluster(data_dir, port, restored - started)


def wait_promoted(database_url: str, *, timeout: float = 600) -> RecoveryState:
    """Wait until the restored cluster has replayed the WAL and left recovery."""
    engine: Engine = make_engine(database_url, pool=False)
    try:
        deadline = time.monotonic() + timeout
        while True:
            state = recovery_state(engine)
            if not state.in_recovery:
                return state
            if time.monotonic() > deadline:
                raise DrillFailed(
                    PlatformCode.BACKUP_NOT_READY,
                    f"the restored cluster is still in recovery after {timeout:.0f} s",
                )
            time.sleep(0.2)
    finally:
        engine.dispose()


def stop(repo: BackupRepository, data_dir: Path, *, timeout: float = 60) -> None:
    """Stop a cluster (fast shutdown); nothing if it is not running."""
    if not (data_dir / "postmaster.pid").exists():
        return
    run([str(repo.pg_bin / "pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w", "stop"],
        run_as=repo.run_as, timeout=timeout, what="pg_ctl stop")  # fmt: skip


def backup_sqlite(source: Path, out: Path) -> int:
    """A consistent copy of the embedded SQLite database at ``out`` (a new file), made
    while the platform serves; its size in bytes."""
    try:
        return copy_sqlite(source, out)
    except FileExistsError:
        raise Conflict(PlatformCode.BACKUP_EXISTS, f"{out} already exists") from None
    except SqliteCopyFailed as exc:
        out.unlink(missing_ok=True)
        raise DrillFailed(PlatformCode.BACKUP_COMMAND_FAILED, str(exc)) from None
