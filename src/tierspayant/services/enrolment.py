"""Enrolment: import an insurer's beneficiary file, all or nothing.

The file is streamed and validated line by line; good lines are encrypted and indexed
under the insurer's active data keys and staged; the staged lines are then merged into
``beneficiaries`` in SQL. The whole run is one transaction: an I/O error, a crash or an
interrupt leaves the table exactly as it was. A keyed digest of each line's normalised
fields makes a rerun of the same file change nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Final

from sqlalchemy import Connection, select, update

from tierspayant.domain.errors import DomainError
from tierspayant.formats.beneficiaries import (
    BeneficiaryLine,
    BeneficiaryReader,
    ErrorReportWriter,
    ImportMode,
    LineError,
)
from tierspayant.security.crypto import BlindIndexer, DataKeys, FieldCipher
from tierspayant.security.identity import (
    BeneficiaryIdentity,
    family_index,
    member_index,
    nir_index,
    seal_identity,
)
from tierspayant.services.errors import NotFound, ServiceError
from tierspayant.services.platform import Platform
from tierspayant.store import audit
from tierspayant.store import beneficiaries as store
from tierspayant.store.keys import insurer_scope
from tierspayant.store.tables import catalogues, import_runs, insurers

ACTION: Final = "enrolment.import"
RUN_KIND: Final = "beneficiaries"
FIRST_ERRORS: Final = 20  # rejected lines kept in the summary, for a screen
PROGRESS_EVERY: Final = 1000  # lines between two progress calls
_DIGEST_PURPOSE: Final = "enrolment.row_digest"
_MERGE_MESSAGES: Final = {
    store.StageState.DUPLICATE: (
        "line.duplicate",
        "the same NIR and birth rank appear on an earlier line; only the first is applied",
        "nir",
    ),
    store.StageState.UNKNOWN: (
        "line.unknown_beneficiary",
        "removal of a beneficiary the platform does not hold for this insurer",
        "nir",
    ),
}

Progress = Callable[[int, int], None]


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


@dataclass(frozen=True, slots=True)
class _Target:
    insurer_id: int
    amc: str
    contracts: frozenset[str]
    keys: DataKeys


class _RowDigest:
    """Keyed digest of a line's normalised fields (HMAC-SHA256 truncated to 16 bytes).

    Keyed because a plain hash of the fields would let anyone holding the database test
    guesses of a person's identity against it. The key derives from the index key, which
    survives a rotation of the encryption key: digests stay comparable across rotations.
    """

    __slots__ = ("_base",)

    def __init__(self, keys: DataKeys) -> None:
        self._base = hmac.new(keys.derive(_DIGEST_PURPOSE), digestmod=hashlib.sha256)

    def __call__(self, line: BeneficiaryLine) -> bytes:
        mac = self._base.copy()
        mac.update(line.canonical())
        return mac.digest()[:16]


def _contract_codes(conn: Connection, insurer_id: int) -> frozenset[str] | None:
    document = conn.execute(
        select(catalogues.c.document)
        .where(catalogues.c.insurer_id == insurer_id)
        .order_by(catalogues.c.version.desc())
        .limit(1)
    ).scalar()
    if document is None:
        return None
    parsed = json.loads(document)
    return frozenset(str(contract["code"]) for contract in parsed.get("contracts", []))


def _target(platform: Platform, amc_number: str) -> _Target:
    amc = amc_number.strip()
    with platform.engine.connect() as conn:
        insurer_id = conn.execute(
            select(insurers.c.id).where(insurers.c.amc_number == amc)
        ).scalar()
        if insurer_id is None:
            raise NotFound("insurer.unknown", "no insurer has this AMC number", field="insurer")
        contracts = _contract_codes(conn, int(insurer_id))
        if contracts is None:
            raise ServiceError(
                "enrolment.no_catalogue",
                "the insurer has no guarantee catalogue yet: upload one before its members",
                field="insurer",
            )
        try:
            keys = platform.keys.active(conn, insurer_scope(amc))
        except LookupError:
            raise ServiceError(
                "enrolment.no_keys", "the insurer has no data keys", field="insurer"
            ) from None
    return _Target(int(insurer_id), amc, contracts, keys)


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as source:
            for block in iter(lambda: source.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return "unreadable"
    return digest.hexdigest()


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
) -> ImportSummary:
    """Import a beneficiary file for one insurer, in one transaction.

    ``mode="full"``: the file is the whole population on ``file_date`` (default today);
    the insurer's beneficiaries absent from it end the day before. ``"incremental"``: the
    file holds additions, changes and removals (``action`` R) only. Bad lines go to
    ``error_report`` (CSV) and are counted; good lines are applied. ``progress(done,
    total)`` is called with bytes read and the file's size.

    Refuses with ``insurer.unknown``, ``enrolment.no_catalogue`` or ``file.*`` (header).
    """
    import_mode = ImportMode(mode)
    day = file_date or platform.today()
    target = _target(platform, amc_number)
    started = platform.now()
    clock = time.perf_counter()
    try:
        with platform.engine.connect() as conn, store.import_connection(conn):
            with conn.begin():
                summary = _run(
                    conn, platform, target, path, import_mode, day, actor, started,
                    progress, error_report, clock,
                )  # fmt: skip
            store.drop_staging(conn)
            conn.commit()
    except BaseException as exc:
        # The run's transaction is rolled back; record the attempt on its own.
        _record_failure(platform, target, path, import_mode, actor, started, exc)
        raise
    return summary


def _run(
    conn: Connection,
    platform: Platform,
    target: _Target,
    path: Path,
    mode: ImportMode,
    file_date: date,
    actor: str,
    started: datetime,
    progress: Progress | None,
    error_report: Path | None,
    clock: float,
) -> ImportSummary:
    insurer_id = target.insurer_id
    keys = target.keys
    cipher = FieldCipher(keys)
    indexer = BlindIndexer(keys)
    digest = _RowDigest(keys)
    version = keys.version
    first_errors: list[LineError] = []
    lines = 0

    store.lock_insurer(conn, insurer_id)
    store.create_staging(conn)
    stager = store.Stager(conn)
    with (
        BeneficiaryReader(
            path, contracts=target.contracts, mode=mode, file_date=file_date
        ) as reader,
        ErrorReportWriter(error_report) as report,
    ):

        def reject(error: LineError) -> None:
            report.write(error)
            if len(first_errors) < FIRST_ERRORS:
                first_errors.append(error.public())

        if progress is not None:
            progress(0, reader.size)
        for item in reader:
            lines += 1
            if progress is not None and lines % PROGRESS_EVERY == 0:
                progress(reader.bytes_read, reader.size)
            if isinstance(item, LineError):
                reject(item)
                if item.nir is not None and item.birth_rank is not None:
                    stager.keep(nir_index(indexer, item.nir, item.birth_rank))
                continue
            idx_nir = nir_index(indexer, item.nir, item.birth_rank)
            sealed = seal_identity(
                cipher,
                insurer_id,
                idx_nir,
                BeneficiaryIdentity(
                    nir=item.nir,
                    member_number=item.member_number,
                    birth_date=item.birth_date,
                    last_name=item.last_name,
                    first_name=item.first_name,
                ),
            )
            end = item.coverage_end
            stager.add(
                (
                    item.line_no,
                    item.action.value,
                    idx_nir,
                    member_index(indexer, item.member_number, item.birth_date),
                    family_index(indexer, item.member_number),
                    version,
                    sealed["nir_ct"],
                    sealed["member_number_ct"],
                    sealed["birth_date_ct"],
                    sealed["last_name_ct"],
                    sealed["first_name_ct"],
                    item.birth_rank,
                    item.sex.value,
                    item.quality.value,
                    item.birth_date.year,
                    item.contract,
                    item.coverage_start.isoformat(),
                    None if end is None else end.isoformat(),
                    item.css,
                    digest(item),
                )
            )
        stager.flush()
        file_digest = reader.sha256()

        now = platform.now()
        run_id = _start_run(conn, insurer_id, mode, file_digest, started)

        def merge_rejected(line_no: int, state: store.StageState) -> None:
            code, message, column = _MERGE_MESSAGES[state]
            reject(LineError(line_no, code, message, column))

        counts = store.merge_staged(
            conn,
            insurer_id=insurer_id,
            terminate_before=file_date if mode is ImportMode.FULL else None,
            now=now,
            on_rejected=merge_rejected,
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
    conn.execute(
        update(import_runs)
        .where(import_runs.c.id == run_id)
        .values(
            finished_at=platform.now(),
            lines=summary.lines,
            inserted=summary.inserted,
            updated=summary.updated,
            unchanged=summary.unchanged,
            terminated=summary.terminated,
            rejected=summary.rejected,
            status="done",
        )
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
        },
    )
    if progress is not None:
        # Last call inside the transaction: a callback that raises still undoes the run.
        progress(reader.size, reader.size)
    return summary


def _start_run(
    conn: Connection, insurer_id: int, mode: ImportMode, file_digest: str, started: datetime
) -> int:
    # On SQLite this is the run's first write to the main database: it takes the write
    # lock before the merge reads anything, so no concurrent commit can invalidate it.
    return int(
        conn.execute(
            import_runs.insert()
            .values(
                insurer_id=insurer_id,
                kind=RUN_KIND,
                mode=mode.value,
                file_digest=file_digest,
                started_at=started,
                status="running",
            )
            .returning(import_runs.c.id)
        ).scalar_one()
    )


def _record_failure(
    platform: Platform,
    target: _Target,
    path: Path,
    mode: ImportMode,
    actor: str,
    started: datetime,
    exc: BaseException,
) -> None:
    """Record a failed run in a transaction of its own (the run's own was rolled back)."""
    reason = exc.code if isinstance(exc, DomainError) else type(exc).__name__
    now = platform.now()
    try:
        with platform.engine.begin() as conn:
            run_id = conn.execute(
                import_runs.insert()
                .values(
                    insurer_id=target.insurer_id,
                    kind=RUN_KIND,
                    mode=mode.value,
                    file_digest=_file_digest(path),
                    started_at=started,
                    finished_at=now,
                    status="failed",
                )
                .returning(import_runs.c.id)
            ).scalar_one()
            audit.append(
                conn,
                at=now,
                actor=actor,
                action=ACTION,
                decision="error",
                insurer=target.amc,
                detail={"run": int(run_id), "mode": mode.value, "reason": reason},
            )
    except Exception:  # noqa: BLE001 - the original failure matters more than its record
        return


__all__ = ["ImportMode", "ImportSummary", "LineError", "import_beneficiaries"]
