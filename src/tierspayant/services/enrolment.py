"""Enrolment: import an insurer's beneficiary file, all or nothing.

The file is streamed and validated line by line; good lines are encrypted and indexed
under the insurer's active data keys and staged; the staged lines are then merged into
``beneficiaries`` in SQL. The whole run is one transaction: an I/O error, a crash or an
interrupt leaves the table exactly as it was. A keyed digest of each line's normalised
fields makes a rerun of the same file change nothing.

Every run leaves its record in ``import_runs`` and its audit events, killed or not: the
record is written ``running`` with an ``enrolment.import`` event (decision ``start``) by a
transaction of its own before any work, then finished ``done`` (or marked ``failed``) by
the run. A run whose process died is found by the next import of the insurer (or by
:func:`interrupted_runs`), marked ``interrupted`` with an event of its own, and named in
that import's summary (``interrupted_before``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Final

import structlog
from sqlalchemy import Connection

from tierspayant import metrics
from tierspayant.app.platform import Platform
from tierspayant.config import BASIS_POINTS
from tierspayant.domain.codes import DirectoryCode, EnrolmentCode
from tierspayant.domain.errors import DomainError
from tierspayant.formats.beneficiaries import (
    BeneficiaryReader,
    ErrorReportWriter,
    ImportMode,
    LineError,
    Piece,
)
from tierspayant.security.crypto import DataKeys
from tierspayant.services.enrolment_prepare import LinePreparer, ParallelPreparer, PreparedChunk
from tierspayant.services.errors import Conflict, NotFound, ServiceError
from tierspayant.store import audit
from tierspayant.store import beneficiary_import as store
from tierspayant.store import enrolment as runs
from tierspayant.store.insurers import (
    amc_number_of,
    insurer_id_by_amc,
    latest_catalogue_document,
)
from tierspayant.store.keys import insurer_scope
from tierspayant.store.read_models.insurer import ImportRow, import_history

log = structlog.get_logger(__name__)

ACTION: Final = "enrolment.import"
RUN_KIND: Final = "beneficiaries"
InterruptedRun = runs.InterruptedRun
WATCH_ACTOR: Final = "job:enrolment"  # who marks a dead run interrupted when a page lists it
FIRST_ERRORS: Final = 20  # rejected lines kept in the summary, for a screen
PREPARE_LINES: Final = 1000  # lines per chunk handed to a preparer (and per progress call)
# Below this size a file is prepared in-process: starting workers would cost more.
PARALLEL_MIN_BYTES: Final = 4 * 2**20
MIN_WORKERS: Final = 2
MAX_WORKERS: Final = 4
RESERVED_CPUS: Final = 1  # left to this process and the database (see _worker_count)
_MERGE_MESSAGES: Final = {
    store.StageState.DUPLICATE: (
        EnrolmentCode.LINE_DUPLICATE,
        "the same NIR and birth rank appear on an earlier line; only the first is applied",
        "nir",
    ),
    store.StageState.UNKNOWN: (
        EnrolmentCode.LINE_UNKNOWN_BENEFICIARY,
        "removal of a beneficiary the platform does not hold for this insurer",
        "nir",
    ),
}

# A full import ending more than this share of the insurer's covered beneficiaries (basis
# points of those it could end) is refused unless its count is confirmed: a truncated or
# mangled file must not end coverage wholesale. Setting: Settings.enrolment.
_BASIS: Final = BASIS_POINTS

Progress = Callable[[int, int], None]
Prepare = Callable[[Iterable[list[Piece]]], Iterator[PreparedChunk]]


@dataclass(frozen=True, slots=True)
class ImportSummary:
    """The outcome of one import run (counts only: no identity)."""

    run_id: int
    insurer: str
    mode: ImportMode
    file_date: date
    lines: int
    inserted: int
    updated: int
    unchanged: int
    terminated: int
    rejected: int
    duration: float  # seconds, wall clock
    file_digest: str
    error_report: Path | None
    first_errors: tuple[LineError, ...]
    # Earlier runs of this insurer found interrupted (their process died) by this one.
    interrupted_before: tuple[runs.InterruptedRun, ...] = ()


class TerminationsNotConfirmed(Conflict):
    """A full import would end more coverage than allowed without a confirmation, or the
    count confirmed is not the count the file gives. Nothing was applied.

    ``terminations``: how many beneficiaries the file would terminate; ``covered``: how
    many it could (the insurer's covered base); ``confirmed``: the count confirmed, if any.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        terminations: int,
        covered: int,
        threshold_bp: int,
        confirmed: int | None,
    ) -> None:
        super().__init__(code, message, field="confirm_terminations")
        self.terminations = terminations
        self.covered = covered
        self.threshold_bp = threshold_bp
        self.confirmed = confirmed


def confirm_terminations_above_bp(platform: Platform) -> int:
    """The share (basis points) above which a full import's terminations need a
    confirmation: ``TIERSPAYANT_ENROLMENT_CONFIRM_TERMINATIONS_ABOVE_BP`` (checked at
    start-up), default 200."""
    return platform.settings.enrolment.confirm_terminations_above_bp


def _approve_terminations(
    terminations: int, covered: int, threshold_bp: int, confirmed: int | None
) -> None:
    """Refuse the run unless its terminations are within the share or confirmed exactly."""
    if confirmed is not None:
        if confirmed == terminations:
            return
        code = EnrolmentCode.TERMINATIONS_MISMATCH
        message = (
            f"the file would terminate {terminations} beneficiaries, not the {confirmed} "
            "confirmed: nothing was applied"
        )
    elif terminations * _BASIS > covered * threshold_bp:
        code = EnrolmentCode.TERMINATIONS_UNCONFIRMED
        message = (
            f"the file would terminate {terminations} of the insurer's {covered} covered "
            f"beneficiaries, more than {threshold_bp / 100:g} %: nothing was applied; "
            f"check the file, or confirm with confirm_terminations={terminations}"
        )
    else:
        return
    raise TerminationsNotConfirmed(
        code,
        message,
        terminations=terminations,
        covered=covered,
        threshold_bp=threshold_bp,
        confirmed=confirmed,
    )


@dataclass(frozen=True, slots=True)
class _Target:
    insurer_id: int
    amc: str
    contracts: frozenset[str]
    keys: DataKeys


def _contract_codes(conn: Connection, insurer_id: int) -> frozenset[str] | None:
    document = latest_catalogue_document(conn, insurer_id)
    if document is None:
        return None
    parsed = json.loads(document)
    return frozenset(str(contract["code"]) for contract in parsed.get("contracts", []))


def _target(platform: Platform, amc_number: str) -> _Target:
    amc = amc_number.strip()
    with platform.engine.connect() as conn:
        insurer_id = insurer_id_by_amc(conn, amc)
        if insurer_id is None:
            raise NotFound(
                DirectoryCode.INSURER_UNKNOWN, "no insurer has this AMC number", field="insurer"
            )
        contracts = _contract_codes(conn, int(insurer_id))
        if contracts is None:
            raise ServiceError(
                EnrolmentCode.NO_CATALOGUE,
                "the insurer has no guarantee catalogue yet: upload one before its members",
                field="insurer",
            )
        try:
            keys = platform.keys.active(conn, insurer_scope(amc))
        except LookupError:
            raise ServiceError(
                EnrolmentCode.NO_KEYS, "the insurer has no data keys", field="insurer"
            ) from None
    return _Target(int(insurer_id), amc, contracts, keys)


def _chunks(reader: BeneficiaryReader) -> Iterator[list[Piece]]:
    # The lines as text: the preparer (a worker, for large files) cuts them into cells.
    return reader.pieces(PREPARE_LINES)


def _worker_count(requested: int | None, size: int) -> int:
    if requested is not None:
        return max(requested, 0)
    if size < PARALLEL_MIN_BYTES:
        return 0
    # This process reads the file and streams rows to the database, which works in its
    # own process: validation and sealing (most of the CPU) go to workers, at least two
    # even on two cores, so that a busy core does not stall the pipeline; one core is
    # left to this process and the database beyond that.
    # A single core has nothing to overlap: everything stays in this process.
    cpus = os.cpu_count() or 1
    if cpus < 2:
        return 0
    return max(MIN_WORKERS, min(cpus - RESERVED_CPUS, MAX_WORKERS))


@contextmanager
def _preparer(
    target: _Target, reader: BeneficiaryReader, workers: int | None, copy_at: datetime | None
) -> Iterator[Prepare]:
    """In-process preparation for small files, worker processes for large ones; rows
    encoded for ``COPY`` (``copy_at``: their ``updated_at``) on PostgreSQL."""
    count = _worker_count(workers, reader.size)
    if count == 0:
        local = LinePreparer(
            target.keys, target.insurer_id, reader.validator, reader.cutter, copy_at
        )

        def prepare_here(chunks: Iterable[list[Piece]]) -> Iterator[PreparedChunk]:
            return map(local.prepare, chunks)

        yield prepare_here
        return
    with ParallelPreparer(
        target.keys, target.insurer_id, reader.validator, count, reader.cutter, copy_at
    ) as pool:
        yield pool.map


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as source:
            for block in iter(lambda: source.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return "unreadable"
    return digest.hexdigest()


def _data_lines(path: Path) -> int:
    """The lines of a beneficiary file after its header (one per person): what the
    progress counts. A fast byte scan; an error on reading is left to the reader."""
    count, last = 0, b"\n"
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                count += chunk.count(b"\n")
                last = chunk[-1:]
    except OSError:
        return 0
    count += last != b"\n"  # a last line without its newline
    return max(count - 1, 0)


def import_beneficiaries(
    platform: Platform,
    amc_number: str,
    path: Path,
    *,
    mode: ImportMode | str,
    file_date: date | None,
    actor: str,
    progress: Progress | None = None,
    error_report: Path | None = None,
    workers: int | None = None,
    confirm_terminations: int | None = None,
) -> ImportSummary:
    """Import a beneficiary file for one insurer, in one transaction.

    ``mode="full"``: the file is the whole population on ``file_date`` (default today);
    the insurer's beneficiaries absent from it end the day before. ``"incremental"``: the
    file holds additions, changes and removals (``action`` R) only. Bad lines go to
    ``error_report`` (CSV) and are counted; good lines are applied. ``progress(done,
    total)`` is called with the people (lines) read and the file's line count, every
    thousand lines and once more after the merge, inside the transaction (it must not
    write to the database).
    ``workers``: processes that validate and encrypt (default: none for files under
    4 MiB, else one per CPU beyond the first, at least two, at most four); 0 keeps
    everything in this process.

    A full import that would terminate more than the share set by
    :func:`confirm_terminations_above_bp` of the insurer's covered beneficiaries is refused
    (:class:`TerminationsNotConfirmed`, ``enrolment.terminations_unconfirmed``) unless
    ``confirm_terminations`` is that count; a ``confirm_terminations`` that differs from
    the count the run gives refuses it too (``enrolment.terminations_mismatch``).

    Refuses with ``insurer.unknown``, ``enrolment.no_catalogue``, ``file.*`` (header),
    ``enrolment.empty_full_file`` or those two.
    """
    try:
        import_mode = ImportMode(mode)
    except ValueError:
        modes = ", ".join(m.value for m in ImportMode)
        raise ServiceError(
            EnrolmentCode.MODE, f"mode must be one of: {modes}", field="mode"
        ) from None
    if confirm_terminations is not None and confirm_terminations < 0:
        raise ServiceError(
            EnrolmentCode.CONFIRM_TERMINATIONS,
            "the count of terminations confirmed is a whole number, 0 or more",
            field="confirm_terminations",
        )
    day = file_date or platform.today()
    threshold_bp = confirm_terminations_above_bp(platform)
    target = _target(platform, amc_number)
    started = platform.now()
    clock = time.perf_counter()
    interrupted = _reap(platform, target.insurer_id, target.amc, actor)
    lock = runs.RunLock(platform.engine, _lock_dir(platform))
    run_id = _open_run(platform, lock, target, path, import_mode, actor, started)
    try:
        with platform.engine.connect() as conn, store.import_connection(conn):
            with conn.begin():
                summary = _run(
                    conn, platform, target, path, import_mode, day, actor, run_id,
                    progress, error_report, clock, workers,
                    (threshold_bp, confirm_terminations),
                )  # fmt: skip
            store.drop_staging(conn)
            conn.commit()
    except BaseException as exc:
        # The run's transaction is rolled back; record the attempt on its own. A partial
        # error report would describe lines that were not applied either: remove it.
        if error_report is not None:
            error_report.unlink(missing_ok=True)
        _record_failure(platform, target, run_id, import_mode, actor, exc)
        raise
    finally:
        _close_quietly(lock)
    return dataclasses.replace(summary, interrupted_before=tuple(interrupted))


def _run(
    conn: Connection,
    platform: Platform,
    target: _Target,
    path: Path,
    mode: ImportMode,
    file_date: date,
    actor: str,
    run_id: int,
    progress: Progress | None,
    error_report: Path | None,
    clock: float,
    workers: int | None,
    termination_rule: tuple[int, int | None],
) -> ImportSummary:
    insurer_id = target.insurer_id
    first_errors: list[LineError] = []
    lines = 0
    threshold_bp, confirmed = termination_rule

    now = platform.now()
    with (
        store.BeneficiaryImport(conn, insurer_id=insurer_id, now=now) as importer,
        BeneficiaryReader(
            path, contracts=target.contracts, mode=mode, file_date=file_date
        ) as reader,
        ErrorReportWriter(error_report) as report,
        _preparer(
            target, reader, workers, now if conn.dialect.name == "postgresql" else None
        ) as prepare,
    ):

        def reject(error: LineError) -> None:
            report.write(error)
            if len(first_errors) < FIRST_ERRORS:
                first_errors.append(error.public())

        # Counted before anything is staged: on PostgreSQL, staging merges as it goes.
        covered = importer.count_terminable(file_date) if mode is ImportMode.FULL else 0

        def approve(terminations: int) -> None:
            _approve_terminations(terminations, covered, threshold_bp, confirmed)

        total = _data_lines(path) if progress is not None else 0
        if progress is not None:
            progress(0, total)
        for prepared in prepare(_chunks(reader)):
            lines += prepared.lines
            for error in prepared.errors:
                reject(error)
            for idx_nir in prepared.keep:
                importer.keep(idx_nir)
            if prepared.starts:
                importer.add_copy(prepared)
            else:
                importer.add_many(prepared.rows)
            if progress is not None:
                progress(lines, max(total, lines))
        if mode is ImportMode.FULL and lines == 0:
            # A header alone would end the coverage of every beneficiary of the insurer.
            raise ServiceError(
                EnrolmentCode.EMPTY_FULL_FILE,
                "a full file without any beneficiary line would end every coverage: "
                "refused (send an incremental file to remove beneficiaries)",
            )
        importer.flush()
        file_digest = reader.sha256()
        # On SQLite this is the run's first write to the main database: it takes the write
        # lock before the merge reads anything, so no concurrent commit can invalidate it.
        runs.mark_merging(conn, run_id, file_digest)

        def merge_rejected(line_no: int, state: store.StageState) -> None:
            code, message, column = _MERGE_MESSAGES[state]
            reject(LineError(line_no, code, message, column))

        counts = importer.finish(
            terminate_before=file_date if mode is ImportMode.FULL else None,
            on_rejected=merge_rejected,
            approve_terminations=approve,
        )
        rejected = report.count
    summary = ImportSummary(
        run_id=run_id,
        insurer=target.amc,
        mode=mode,
        file_date=file_date,
        lines=lines,
        inserted=counts.inserted,
        updated=counts.updated,
        unchanged=counts.unchanged,
        terminated=counts.terminated,
        rejected=rejected,
        duration=time.perf_counter() - clock,
        file_digest=file_digest,
        error_report=error_report,
        first_errors=tuple(first_errors),
    )
    metrics.IMPORT_ROWS.inc(summary.lines)
    metrics.IMPORT_REJECTS.inc(summary.rejected)
    runs.finish_run(
        conn,
        run_id,
        finished_at=platform.now(),
        lines=summary.lines,
        inserted=summary.inserted,
        updated=summary.updated,
        unchanged=summary.unchanged,
        terminated=summary.terminated,
        rejected=summary.rejected,
    )
    audit.append(
        conn,
        at=now,
        actor=actor,
        action=ACTION,
        decision="allow",
        insurer=target.amc,
        detail={
            "run": run_id,
            "mode": mode.value,
            "file_date": file_date.isoformat(),
            "file_digest": file_digest,
            "lines": summary.lines,
            "inserted": summary.inserted,
            "updated": summary.updated,
            "unchanged": summary.unchanged,
            "terminated": summary.terminated,
            "rejected": summary.rejected,
            **({} if confirmed is None else {"terminations_confirmed": confirmed}),
        },
    )
    if progress is not None:
        # Last call inside the transaction: a callback that raises still undoes the run.
        progress(summary.lines, summary.lines)
    return summary


def _lock_dir(platform: Platform) -> Path:
    return platform.settings.data_dir / "locks"


def _open_run(
    platform: Platform,
    lock: runs.RunLock,
    target: _Target,
    path: Path,
    mode: ImportMode,
    actor: str,
    started: datetime,
) -> int:
    """Write the run's ``running`` record and its ``start`` event, before any work."""

    def audit_start(conn: Connection, run_id: int) -> None:
        audit.append(
            conn,
            at=started,
            actor=actor,
            action=ACTION,
            decision="start",
            insurer=target.amc,
            detail={"run": run_id, "mode": mode.value, "pid": os.getpid()},
        )

    return lock.open_run(
        insurer_id=target.insurer_id,
        kind=RUN_KIND,
        mode=mode.value,
        file_digest=_file_digest(path),
        started=started,
        also=audit_start,
    )


def _close_quietly(lock: runs.RunLock) -> None:
    """Let the run's lock go; if the database went away, its session lock went with it,
    and the import's own failure is what the caller reports (this one is logged)."""
    try:
        lock.close()
    except Exception as exc:  # noqa: BLE001 - secondary to the import's own outcome
        log.warning("enrolment.run_lock_close_failed", error=type(exc).__name__)


def _reap(
    platform: Platform, insurer_id: int | None, amc: str | None, actor: str
) -> list[runs.InterruptedRun]:
    """Mark interrupted the runs whose process died, one audit event each."""
    now = platform.now()
    with platform.engine.begin() as conn:
        found = runs.reap_interrupted(conn, insurer_id, _lock_dir(platform), now)
        for run in found:
            audit.append(
                conn,
                at=now,
                actor=actor,
                action=ACTION,
                decision="error",
                insurer=amc or amc_number_of(conn, run.insurer_id),
                detail={"run": run.id, "mode": run.mode, "reason": "interrupted"},
            )
    return found


def interrupted_runs(
    platform: Platform, actor: str, insurer_id: int | None = None
) -> list[runs.InterruptedRun]:
    """Find the import runs (of one insurer, or of all) whose process died, mark them
    ``interrupted`` (with an audit event each) and return them; live runs are left alone."""
    return _reap(platform, insurer_id, None, actor)


def import_runs(platform: Platform, amc_number: str, actor: str) -> list[ImportRow]:
    """The insurer's latest beneficiary imports, newest first, each with its status
    (``running``, ``done``, ``failed``, ``interrupted``: a dead run is marked first)."""
    with platform.engine.connect() as conn:
        insurer_id = insurer_id_by_amc(conn, amc_number.strip())
    if insurer_id is None:
        raise NotFound(
            DirectoryCode.INSURER_UNKNOWN, "no insurer has this AMC number", field="insurer"
        )
    _reap(platform, int(insurer_id), amc_number.strip(), actor)
    with platform.engine.connect() as conn:
        return import_history(conn, int(insurer_id))


def _record_failure(
    platform: Platform,
    target: _Target,
    run_id: int,
    mode: ImportMode,
    actor: str,
    exc: BaseException,
) -> None:
    """Mark the run failed in a transaction of its own (the run's own was rolled back)."""
    reason = exc.code if isinstance(exc, DomainError) else type(exc).__name__
    detail: dict[str, audit.DetailValue] = {"mode": mode.value, "reason": reason}
    if isinstance(exc, TerminationsNotConfirmed):
        detail.update(terminations=exc.terminations, covered=exc.covered)
    now = platform.now()
    try:
        with platform.engine.begin() as conn:
            runs.mark_failed(conn, run_id, now)
            audit.append(
                conn,
                at=now,
                actor=actor,
                action=ACTION,
                decision="error",
                insurer=target.amc,
                detail={"run": run_id, **detail},
            )
    except Exception:  # noqa: BLE001 - the original failure matters more than its record
        return


__all__ = [
    "ImportMode",
    "ImportSummary",
    "InterruptedRun",
    "LineError",
    "TerminationsNotConfirmed",
    "confirm_terminations_above_bp",
    "import_beneficiaries",
    "import_runs",
    "interrupted_runs",
]
