"""Beneficiaries in the database: the bulk import path.

Import (:class:`BeneficiaryImport`): rows already validated, encrypted and indexed by the
caller are *staged* into a temporary table in chunks (``COPY`` on PostgreSQL,
``executemany`` on SQLite) and *merged* into ``beneficiaries`` with a handful of
set-based statements (chunk by chunk on PostgreSQL, once at the end on SQLite), all
inside the caller's transaction. Python never holds more than one chunk: memory stays
flat however large the file.

Nothing staged is in clear: the staging table holds the same ciphertexts and blind indexes
as the final table.

On PostgreSQL the rows arrive already encoded as binary ``COPY`` rows (:class:`CopyRows`,
made by the preparation workers): this process only streams their bytes to the server.
Staging and merging run on a writer thread of the import, one chunk behind the caller:
the server works on a chunk while the caller prepares the next one (psycopg releases the
GIL while it waits for the server). The thread uses the caller's connection
only while the caller does not; at most one chunk waits for it, so memory stays flat. On
SQLite, whose work happens inside this process and holds the GIL in between statements,
a thread made the import slower: it writes in the caller's thread.

The SQL below is assembled from module constants only (table and column names, enum
values); every value that comes from a caller or a file is a bound parameter or travels
through COPY/executemany. Hence the ``noqa: S608`` marks.
"""

from __future__ import annotations

import queue
import struct
import threading
from array import array
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import IntEnum
from types import TracebackType
from typing import Any, Final, Protocol

from sqlalchemy import Connection, Date, DateTime, bindparam, func, select, text

from tierspayant.store.bulk import bytea_array
from tierspayant.store.tables import beneficiaries

STAGE: Final = "stage_beneficiaries"
KEEP: Final = "stage_beneficiaries_keep"
CHUNK_ROWS = 5000  # rows per COPY/executemany (and per merge, where merged as we go)
# Dialects whose imports merge each chunk as it is staged (see BeneficiaryImport).
MERGE_EACH_CHUNK_ON = frozenset({"postgresql"})
# Dialects whose imports stage (and merge) on a writer thread (see BeneficiaryImport).
WRITE_IN_BACKGROUND_ON = frozenset({"postgresql"})
WRITER_QUEUE = 1  # chunks waiting for the writer thread (each holds CHUNK_ROWS rows)
# Row digest of a row ended by a full import: matches no line, so the beneficiary's
# line coming back in a later file updates (reinstates) the row.
TERMINATED_DIGEST: Final = bytes(16)
_ENROLMENT_LOCK: Final = 7_272_001  # PostgreSQL advisory lock class of imports

# The order of the values of a staged row (see StagedRow).
STAGE_COLUMNS: Final = (
    "line_no",
    "action",
    "idx_nir",
    "idx_member",
    "idx_family",
    "key_version",
    "nir_ct",
    "member_number_ct",
    "birth_date_ct",
    "last_name_ct",
    "first_name_ct",
    "birth_rank",
    "sex",
    "quality",
    "birth_year",
    "contract_code",
    "coverage_start",
    "coverage_end",
    "css",
    "row_digest",
)
# line_no, action ("A"/"R"), idx_nir, idx_member, idx_family, key_version, the five
# ciphertexts, birth_rank, sex, quality, birth_year, contract_code, coverage_start and
# coverage_end as ISO dates, css, row_digest.
StagedRow = tuple[
    int, str, bytes, bytes, bytes, int, bytes, bytes, bytes, bytes, bytes,
    int, str, str, int, str, str, str | None, bool, bytes,
]  # fmt: skip

# Columns copied from the staging table into beneficiaries, as they are named in both.
_DATA_COLUMNS: Final = STAGE_COLUMNS[2:]
# The fields of a binary COPY row on PostgreSQL (see CopyRows), as beneficiaries names
# them: a chunk is copied straight into beneficiaries with these columns (its line
# numbers replaced by ids) or into the staging table with STAGE_COPY_COLUMNS.
COPY_COLUMNS: Final = ("insurer_id", "id", *_DATA_COLUMNS, "is_canary", "updated_at")
# The same fields as the staging table names them (PostgreSQL): the line number in the
# id's place, whether the line is a removal in is_canary's.
STAGE_COPY_COLUMNS: Final = ("insurer_id", "line_no", *_DATA_COLUMNS, "removal", "updated_at")
_COPY_SIGNATURE: Final = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # flags and extension: none
_COPY_TRAILER: Final = b"\xff\xff"
_ID: Final = struct.Struct(">q")
ID_OFFSET: Final = 14  # of the int8 after a COPY row's field count and insurer_id


class CopyRows(Protocol):
    """A chunk of valid lines encoded for binary ``COPY`` (the preparation's output).

    ``copy``: the rows, in the order of :data:`COPY_COLUMNS`, without the format's header
    and trailer; each row starts with its field count and ``insurer_id``, then the line
    number as an int8 at :data:`ID_OFFSET`; ``starts``: each row's offset in ``copy``;
    ``indexes``: each row's ``idx_nir``; ``first_line``, ``last_line``: the line numbers
    of the first and last row; ``removals``: whether a row is a removal line.
    """

    @property
    def copy(self) -> bytes: ...
    @property
    def starts(self) -> array[int]: ...
    @property
    def indexes(self) -> list[bytes]: ...
    @property
    def first_line(self) -> int: ...
    @property
    def last_line(self) -> int: ...
    @property
    def removals(self) -> bool: ...


class _Batch:
    """Encoded chunks written together (one COPY, one merge)."""

    __slots__ = ("chunks", "rows")

    def __init__(self, chunks: list[CopyRows]) -> None:
        self.chunks = chunks
        self.rows = sum(len(c.starts) for c in chunks)

    def __len__(self) -> int:
        return self.rows

    def indexes(self) -> list[bytes]:
        return [i for chunk in self.chunks for i in chunk.indexes]

    def removals(self) -> bool:
        return any(chunk.removals for chunk in self.chunks)


class StageState(IntEnum):
    """What the merge decided for a staged line."""

    NEW = 0
    UNCHANGED = 1
    CHANGED = 2
    DUPLICATE = 3  # same NIR and rank as an earlier line of the file
    UNKNOWN = 4  # removal of a beneficiary the platform does not hold


@dataclass(frozen=True, slots=True)
class MergeCounts:
    """What one merge did."""

    inserted: int
    updated: int
    unchanged: int
    terminated: int
    duplicates: int
    unknown_removals: int


@contextmanager
def import_connection(conn: Connection) -> Iterator[Connection]:
    """Prepare ``conn`` (not in a transaction yet) for an import, and restore it after.

    SQLite keeps temporary tables in memory by default here (``temp_store=MEMORY``): the
    staging table of a large file would then live in RAM. For the import it goes to a
    temporary file instead, so memory stays flat with the file's size.
    """
    sqlite = conn.dialect.name == "sqlite"
    if sqlite:
        conn.exec_driver_sql("PRAGMA temp_store=FILE")
        conn.commit()
    try:
        yield conn
    finally:
        if sqlite:
            if conn.in_transaction():
                conn.rollback()
            conn.exec_driver_sql("PRAGMA temp_store=MEMORY")
            conn.commit()


def lock_insurer(conn: Connection, insurer_id: int) -> None:
    """Serialise imports of one insurer (PostgreSQL; SQLite has one writer anyway)."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            text("SELECT pg_advisory_xact_lock(:cls, :key)"),
            {"cls": _ENROLMENT_LOCK, "key": insurer_id},
        )


def create_staging(conn: Connection) -> None:
    """Create the (empty) staging tables for one import, inside the caller's transaction."""
    if conn.dialect.name == "postgresql":
        # The columns of STAGE_COPY_COLUMNS, typed as the binary COPY rows' fields.
        conn.exec_driver_sql(
            f"""CREATE TEMP TABLE {STAGE} (
                insurer_id integer NOT NULL, line_no bigint PRIMARY KEY,
                idx_nir bytea NOT NULL, idx_member bytea NOT NULL, idx_family bytea NOT NULL,
                key_version integer NOT NULL,
                nir_ct bytea NOT NULL, member_number_ct bytea NOT NULL,
                birth_date_ct bytea NOT NULL, last_name_ct bytea NOT NULL,
                first_name_ct bytea NOT NULL,
                birth_rank smallint NOT NULL, sex varchar NOT NULL, quality varchar NOT NULL,
                birth_year smallint NOT NULL, contract_code varchar NOT NULL,
                coverage_start date NOT NULL, coverage_end date, css boolean NOT NULL,
                row_digest bytea NOT NULL, removal boolean NOT NULL,
                updated_at timestamptz NOT NULL,
                state smallint NOT NULL DEFAULT 0, existing_id bigint
            ) ON COMMIT DROP"""
        )
        conn.exec_driver_sql(f"CREATE TEMP TABLE {KEEP} (idx_nir bytea NOT NULL) ON COMMIT DROP")
        return
    # SQLite: a pooled connection may still hold the tables of a run that failed.
    drop_staging(conn)
    conn.exec_driver_sql(
        f"""CREATE TEMP TABLE {STAGE} (
            line_no INTEGER PRIMARY KEY, action TEXT NOT NULL,
            idx_nir BLOB NOT NULL, idx_member BLOB NOT NULL, idx_family BLOB NOT NULL,
            key_version INTEGER NOT NULL,
            nir_ct BLOB NOT NULL, member_number_ct BLOB NOT NULL, birth_date_ct BLOB NOT NULL,
            last_name_ct BLOB NOT NULL, first_name_ct BLOB NOT NULL,
            birth_rank INTEGER NOT NULL, sex TEXT NOT NULL, quality TEXT NOT NULL,
            birth_year INTEGER NOT NULL, contract_code TEXT NOT NULL,
            coverage_start TEXT NOT NULL, coverage_end TEXT, css INTEGER NOT NULL,
            row_digest BLOB NOT NULL,
            state INTEGER NOT NULL DEFAULT 0, existing_id INTEGER
        )"""
    )
    conn.exec_driver_sql(f"CREATE TEMP TABLE {KEEP} (idx_nir BLOB NOT NULL)")


def drop_staging(conn: Connection) -> None:
    """Drop the staging tables if they exist (SQLite; PostgreSQL drops them at commit)."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{STAGE}")
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{KEEP}")


class _ChunkWriter:
    """A thread that writes handed-off chunks in order, one at a time.

    :meth:`submit` blocks while a chunk is already waiting (so at most two chunks exist
    besides the caller's: memory stays flat). The first error stops the writing; it is
    raised in the caller by the next :meth:`submit` or :meth:`drain`.
    """

    def __init__(self, write: Callable[[_Batch, list[tuple[bytes]]], None]) -> None:
        self._write = write
        self._queue: queue.Queue[tuple[_Batch, list[tuple[bytes]]] | None] = queue.Queue(
            maxsize=WRITER_QUEUE
        )
        self._error: BaseException | None = None
        self._abandoned = False
        self._thread = threading.Thread(target=self._run, name="beneficiary-import-writer")
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                if self._error is None and not self._abandoned:
                    self._write(*item)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                self._error = exc
            finally:
                self._queue.task_done()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def submit(self, rows: _Batch, keep: list[tuple[bytes]]) -> None:
        """Queue a chunk (waits while the previous one has not been taken yet)."""
        self._raise_error()
        self._queue.put((rows, keep))

    def drain(self) -> None:
        """Wait until every submitted chunk is written; raise the writer's error if any."""
        self._queue.join()
        self._raise_error()

    def close(self) -> None:
        """Stop the thread: chunks not started yet are dropped (idempotent)."""
        if not self._thread.is_alive():
            return
        self._abandoned = True
        with suppress(queue.Empty):
            while True:
                self._queue.get_nowait()
                self._queue.task_done()
        self._queue.put(None)
        self._thread.join()


class BeneficiaryImport:
    """Stages one import's rows and merges them into ``beneficiaries``, in the caller's
    transaction. Use as a context manager: leaving it stops the writer thread, which
    must happen before the transaction ends (also on error).

    Rows arrive in line order and are written a chunk at a time (``COPY`` of the encoded
    rows of :meth:`add_copy` on PostgreSQL, ``executemany`` of :meth:`add_many`'s tuples
    on SQLite). On PostgreSQL each chunk is also merged at once, by a
    writer thread, so the server works while the caller prepares the next lines; on
    SQLite the merge waits for :meth:`finish`, because merging takes the database's
    single write lock and other writers (the API's audit log) should not wait for the
    whole file.

    The merge, for a range of lines: a line whose (NIR, rank) index appeared on an earlier
    line is a duplicate; the others are matched with existing rows by that index and are
    new, changed (row digest differs) or unchanged; a removal of an unknown beneficiary is
    rejected; new rows get ids ``max(id) + 1, + 2…`` in line order; changed rows are
    rewritten. When the insurer had no rows before the run, the matching is skipped: any
    row found would come from an earlier line of the file, a duplicate already.
    """

    def __init__(
        self,
        conn: Connection,
        *,
        insurer_id: int,
        now: datetime,
        chunk_rows: int | None = None,
    ) -> None:
        self.conn = conn
        self.insurer_id = insurer_id
        self.now = now
        self.chunk_rows = CHUNK_ROWS if chunk_rows is None else chunk_rows
        self.staged = 0
        self._postgres = conn.dialect.name == "postgresql"
        self._merge_each_chunk = conn.dialect.name in MERGE_EACH_CHUNK_ON
        self._rows: list[StagedRow] = []
        self._copies: list[CopyRows] = []
        self._copied = 0  # rows in self._copies
        self._keep: list[tuple[bytes]] = []
        self._first_line: int | None = None  # first line staged and not merged yet
        self._removals = False  # whether a removal line was staged and not merged yet
        self._inserted = 0
        self._updated = 0
        columns = ", ".join(STAGE_COLUMNS)
        marks = ", ".join("?" for _ in STAGE_COLUMNS)
        self._insert = f"INSERT INTO {STAGE} ({columns}) VALUES ({marks})"  # noqa: S608
        self._copy = f"COPY {STAGE} ({', '.join(STAGE_COPY_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
        self._copy_direct_sql = (
            f"COPY beneficiaries ({', '.join(COPY_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
        )
        self._direct = 0  # rows copied straight into beneficiaries (see _copy_direct)
        self._keep_sql = f"INSERT INTO {KEEP} (idx_nir) VALUES ({'%s' if self._postgres else '?'})"  # noqa: S608
        lock_insurer(conn, insurer_id)
        create_staging(conn)
        if self._merge_each_chunk:
            self._index_staging()
        self._base = self._max_id() if self._merge_each_chunk else 0
        self.had_rows = self._base > 0 if self._merge_each_chunk else False
        self._writer = (
            _ChunkWriter(self._write) if conn.dialect.name in WRITE_IN_BACKGROUND_ON else None
        )

    def __enter__(self) -> BeneficiaryImport:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the writer thread, dropping chunks not written yet (idempotent)."""
        if self._writer is not None:
            self._writer.close()

    def add_many(self, rows: list[StagedRow]) -> None:
        """Stage valid lines (in line order), as tuples: SQLite only."""
        if not rows:
            return
        if self._postgres:
            raise TypeError("PostgreSQL imports take rows encoded for COPY (add_copy)")
        self._rows.extend(rows)
        if len(self._rows) >= self.chunk_rows:
            self._hand_off()

    def add_copy(self, rows: CopyRows) -> None:
        """Stage valid lines (in line order), encoded for ``COPY``: PostgreSQL only."""
        count = len(rows.starts)
        if not count:
            return
        if not self._postgres:
            raise TypeError("SQLite imports take rows as tuples (add_many)")
        self._copies.append(rows)
        self._copied += count
        if self._copied >= self.chunk_rows:
            self._hand_off()

    def keep(self, idx_nir: bytes) -> None:
        """Name a beneficiary whose line was rejected: a full import must not end them."""
        self._keep.append((idx_nir,))
        if len(self._keep) >= self.chunk_rows:
            self._hand_off()

    def flush(self) -> None:
        """Write what is buffered (and merge it, on PostgreSQL), and wait until written."""
        self._hand_off()
        if self._writer is not None:
            self._writer.drain()

    def _hand_off(self) -> None:
        keep = self._keep
        if self._postgres:
            if not self._copies and not keep:
                return
            batch = _Batch(self._copies)
            self._copies, self._copied, self._keep = [], 0, []
            if self._writer is None:
                self._write(batch, keep)
            else:
                self._writer.submit(batch, keep)
            return
        rows = self._rows
        if not rows and not keep:
            return
        self._rows, self._keep = [], []
        self._write(rows, keep)

    def _write(self, batch: _Batch | list[StagedRow], keep: list[tuple[bytes]]) -> None:
        """Stage ``batch`` and ``keep``. PostgreSQL: merge the batch, or copy it straight
        into beneficiaries."""
        if not isinstance(batch, _Batch):
            self._write_rows(batch, keep)
            return
        raw = self.conn.connection.driver_connection
        assert raw is not None
        if batch.rows and self._direct_ok(raw, batch):
            self._copy_direct(raw, batch)
        elif batch.rows:
            with raw.cursor() as cursor, cursor.copy(self._copy) as copy:
                copy.write(_COPY_SIGNATURE)
                for chunk in batch.chunks:
                    copy.write(chunk.copy)
                copy.write(_COPY_TRAILER)
            self.staged += batch.rows
            if self._first_line is None:
                self._first_line = batch.chunks[0].first_line
            if not self._removals:
                self._removals = batch.removals()
            if self._merge_each_chunk:
                self._merge_lines(self._first_line, batch.chunks[-1].last_line)
                self._first_line = None
        if keep:
            with raw.cursor() as cursor:
                cursor.executemany(self._keep_sql, keep)

    def _write_rows(self, rows: list[StagedRow], keep: list[tuple[bytes]]) -> None:
        """SQLite: stage ``rows`` and ``keep`` (merged by :meth:`finish`, unless
        MERGE_EACH_CHUNK_ON names SQLite)."""
        raw = self.conn.connection.driver_connection
        assert raw is not None
        if rows:
            raw.executemany(self._insert, rows)
            self.staged += len(rows)
            if self._first_line is None:
                self._first_line = rows[0][0]
            if not self._removals:
                self._removals = any(row[1] == "R" for row in rows)
            if self._merge_each_chunk:  # not by default (see the class)
                self._merge_lines(self._first_line, rows[-1][0])
                self._first_line = None
        if keep:
            raw.executemany(self._keep_sql, keep)

    def _direct_ok(self, raw: Any, rows: _Batch) -> bool:
        """Whether a chunk may skip the staging table: on PostgreSQL, for an insurer that
        had no rows before the run (nothing to match), a chunk without removal lines
        (which name someone the platform would have to hold), with nothing staged still
        waiting for its merge, and without a line repeating an earlier one (in the chunk,
        or already in the table: then from an earlier line of this file)."""
        if not (
            self._merge_each_chunk
            and self._postgres
            and not self.had_rows
            and self._first_line is None
            and not rows.removals()
        ):
            return False
        indexes = rows.indexes()
        if len(set(indexes)) != len(indexes):
            return False
        if self._base == 0:
            return True
        # One probe of the unique index per line: far cheaper than staging the chunk.
        # (Not a savepoint around the copy, undone on a unique violation: thousands of
        # subtransactions in one long transaction slow every other session's snapshots.)
        with raw.cursor() as cursor:
            cursor.execute(
                "SELECT 1 FROM beneficiaries WHERE insurer_id = %s "
                "AND idx_nir = ANY(%s::bytea[]) LIMIT 1",
                (self.insurer_id, bytea_array(indexes)),
            )
            return cursor.fetchone() is None

    def _copy_direct(self, raw: Any, rows: _Batch) -> None:
        """``COPY`` a chunk straight into ``beneficiaries``, with the ids the merge would
        give (the next ones, in line order: written over the rows' line numbers). Only
        for chunks :meth:`_direct_ok` admits, which hold no removal (the field after the
        row digest is then false, as ``is_canary`` must be): the unique index on
        (insurer, NIR index) would refuse a repeat anyway, failing the import rather than
        reporting the line."""
        number = self._base
        put = _ID.pack_into
        with raw.cursor() as cursor, cursor.copy(self._copy_direct_sql) as copy:
            copy.write(_COPY_SIGNATURE)
            for chunk in rows.chunks:
                data = bytearray(chunk.copy)
                for start in chunk.starts:
                    number += 1
                    put(data, start + ID_OFFSET, number)
                copy.write(data)
            copy.write(_COPY_TRAILER)
        self._base += len(rows)
        self._inserted += len(rows)
        self._direct += len(rows)

    def count_terminable(self, terminate_before: date) -> int:
        """The insurer's rows that a full import on ``terminate_before`` could end: not
        canaries, and covered past the day before. Call it before staging anything."""
        return int(
            self.conn.execute(
                text(
                    f"SELECT count(*) FROM beneficiaries WHERE {_TERMINABLE}"  # noqa: S608
                ).bindparams(bindparam("end", type_=Date())),
                {"insurer": self.insurer_id, "end": terminate_before - timedelta(days=1)},
            ).scalar_one()
        )

    def finish(
        self,
        *,
        terminate_before: date | None,
        on_rejected: Callable[[int, StageState], None],
        approve_terminations: Callable[[int], None] | None = None,
    ) -> MergeCounts:
        """Merge what is left, report rejected lines, end absent rows (full mode).

        Duplicates and removals of unknown beneficiaries go to ``on_rejected(line_no,
        state)`` in line order. With ``terminate_before`` (full mode: the file date), the
        insurer's rows absent from the file (and not canaries, and not named by a rejected
        line) end the day before. ``approve_terminations(count)`` is called with how many
        that is (0 without ``terminate_before``) before any row is ended (on SQLite,
        before any row is written at all): raising there undoes the run.
        """
        self.flush()
        self.close()
        conn = self.conn
        if not self._merge_each_chunk:
            self._index_staging()
            self._base = self._max_id()
            self.had_rows = self._base > 0
        conn.exec_driver_sql(
            f"CREATE INDEX {'' if self._postgres else 'temp.'}ix_{KEEP}_nir ON {KEEP} (idx_nir)"
        )
        end = None if terminate_before is None else terminate_before - timedelta(days=1)
        if approve_terminations is not None:
            # Merging cannot change this count: every row it inserts or rewrites is staged,
            # and staged rows are never absent.
            approve_terminations(0 if end is None or not self.had_rows else self._absent(end))
        if not self._merge_each_chunk:
            last = conn.execute(text(f"SELECT max(line_no) FROM {STAGE}")).scalar()  # noqa: S608
            if last is not None:
                self._merge_lines(1, int(last))
        duplicates = unknown = 0
        rejected = conn.execute(
            text(
                f"SELECT line_no, state FROM {STAGE} WHERE state IN "  # noqa: S608
                f"({StageState.DUPLICATE:d}, {StageState.UNKNOWN:d}) ORDER BY line_no"
            ).execution_options(yield_per=2000)
        )
        for line_no, state in rejected:
            if state == StageState.DUPLICATE:
                duplicates += 1
            else:
                unknown += 1
            on_rejected(int(line_no), StageState(state))
        unchanged = int(
            conn.execute(
                text(f"SELECT count(*) FROM {STAGE} WHERE state = {StageState.UNCHANGED:d}")  # noqa: S608
            ).scalar_one()
        )
        terminated = 0
        if end is not None and self.had_rows:
            terminated = self._terminate_absent(end)
        return MergeCounts(
            inserted=self._inserted,
            updated=self._updated,
            unchanged=unchanged,
            terminated=terminated,
            duplicates=duplicates,
            unknown_removals=unknown,
        )

    def _index_staging(self) -> None:
        # Duplicates and the full-mode anti-join look lines up by index.
        self.conn.exec_driver_sql(
            f"CREATE INDEX {'' if self._postgres else 'temp.'}ix_{STAGE}_nir "
            f"ON {STAGE} (idx_nir, line_no)"
        )

    def _max_id(self) -> int:
        return int(
            self.conn.execute(
                select(func.coalesce(func.max(beneficiaries.c.id), 0)).where(
                    beneficiaries.c.insurer_id == self.insurer_id
                )
            ).scalar_one()
        )

    def _merge_lines(self, first: int, last: int) -> None:
        """Classify and apply the staged lines ``first``..``last``."""
        conn, postgres = self.conn, self._postgres
        lines = {"first": first, "last": last}
        in_range = "s.line_no BETWEEN :first AND :last"
        conn.execute(
            text(
                f"UPDATE {STAGE} AS s SET state = {StageState.DUPLICATE:d} "  # noqa: S608
                f"WHERE {in_range} AND EXISTS (SELECT 1 FROM {STAGE} AS f "
                "WHERE f.idx_nir = s.idx_nir AND f.line_no < s.line_no)"
            ),
            lines,
        )
        if self.had_rows:
            # Without rows before the run, a match could only be a row inserted from an
            # earlier line of this file: that line is a duplicate, marked above.
            conn.execute(
                text(
                    f"UPDATE {STAGE} AS s SET existing_id = b.id, state = CASE "  # noqa: S608
                    f"WHEN b.row_digest = s.row_digest THEN {StageState.UNCHANGED:d} "
                    f"ELSE {StageState.CHANGED:d} END "
                    "FROM beneficiaries AS b WHERE b.insurer_id = :insurer "
                    f"AND b.idx_nir = s.idx_nir AND s.state = {StageState.NEW:d} AND {in_range}"
                ),
                {**lines, "insurer": self.insurer_id},
            )
        if not self.had_rows and self._direct:
            # Chunks copied straight into beneficiaries are not staged: a line repeating
            # one of theirs finds it in the table (the insurer had no rows before the run,
            # so every row found comes from an earlier line of this file).
            conn.execute(
                text(
                    f"UPDATE {STAGE} AS s SET state = {StageState.DUPLICATE:d} "  # noqa: S608
                    f"WHERE {in_range} AND s.state = {StageState.NEW:d} AND EXISTS "
                    "(SELECT 1 FROM beneficiaries AS b WHERE b.insurer_id = :insurer "
                    "AND b.idx_nir = s.idx_nir)"
                ),
                {**lines, "insurer": self.insurer_id},
            )
        if self._removals:  # full files (and most incremental chunks) have none
            removal = "s.removal" if postgres else "s.action = 'R'"
            conn.execute(
                text(
                    f"UPDATE {STAGE} AS s SET state = {StageState.UNKNOWN:d} "  # noqa: S608
                    f"WHERE {in_range} AND s.state = {StageState.NEW:d} AND {removal}"
                ),
                lines,
            )
            self._removals = False
        now_param = bindparam("now", type_=DateTime(timezone=True))
        selected = ", ".join(f"s.{c}" for c in _DATA_COLUMNS)
        inserted = conn.execute(
            text(
                f"INSERT INTO beneficiaries (insurer_id, id, {', '.join(_DATA_COLUMNS)}, "  # noqa: S608
                "is_canary, updated_at) "
                f"SELECT :insurer, :base + ROW_NUMBER() OVER (ORDER BY s.line_no), {selected}, "
                f"FALSE, :now FROM {STAGE} AS s WHERE s.state = {StageState.NEW:d} "
                f"AND {in_range} ORDER BY s.line_no"
            ).bindparams(now_param),
            {**lines, "insurer": self.insurer_id, "base": self._base, "now": self.now},
        ).rowcount
        self._base += inserted
        self._inserted += inserted
        if not self.had_rows:
            return  # nothing was matched: nothing changed
        assignments = ", ".join(f"{c} = s.{c}" for c in _DATA_COLUMNS if c != "idx_nir")
        self._updated += conn.execute(
            text(
                f"UPDATE beneficiaries AS b SET {assignments}, updated_at = :now "  # noqa: S608
                f"FROM {STAGE} AS s WHERE s.state = {StageState.CHANGED:d} AND {in_range} "
                "AND b.insurer_id = :insurer AND b.id = s.existing_id"
            ).bindparams(now_param),
            {**lines, "insurer": self.insurer_id, "now": self.now},
        ).rowcount

    def _absent(self, end: date) -> int:
        """How many rows :meth:`_terminate_absent` would end."""
        return int(
            self.conn.execute(
                text(
                    f"SELECT count(*) FROM beneficiaries WHERE {_TERMINABLE} AND {_ABSENT}"  # noqa: S608
                ).bindparams(bindparam("end", type_=Date())),
                {"insurer": self.insurer_id, "end": end},
            ).scalar_one()
        )

    def _terminate_absent(self, end: date) -> int:
        return int(
            self.conn.execute(
                text(
                    "UPDATE beneficiaries SET coverage_end = :end, row_digest = :tombstone, "  # noqa: S608
                    f"updated_at = :now WHERE {_TERMINABLE} AND {_ABSENT}"
                ).bindparams(
                    bindparam("now", type_=DateTime(timezone=True)), bindparam("end", type_=Date())
                ),
                {
                    "insurer": self.insurer_id,
                    "end": end,
                    "tombstone": TERMINATED_DIGEST,
                    "now": self.now,
                },
            ).rowcount
        )


# The rows a full import may end on ``:end`` (the day before the file date), and those of
# them that the file does not name, neither by a staged line nor by a rejected one.
_TERMINABLE: Final = (
    "insurer_id = :insurer AND is_canary = FALSE AND (coverage_end IS NULL OR coverage_end > :end)"
)
_ABSENT: Final = (
    f"NOT EXISTS (SELECT 1 FROM {STAGE} AS s WHERE s.idx_nir = beneficiaries.idx_nir) "  # noqa: S608
    f"AND NOT EXISTS (SELECT 1 FROM {KEEP} AS k WHERE k.idx_nir = beneficiaries.idx_nir)"
)
