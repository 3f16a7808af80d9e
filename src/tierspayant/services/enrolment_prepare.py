"""The CPU-heavy half of enrolment: file lines into validated, sealed, indexed rows.

Validation, five AES-GCM encryptions and four keyed HMACs per line cost more than the
database does, so large files spread this work over worker processes. This module is
kept apart from :mod:`tierspayant.services.enrolment` so that a worker imports only the
format and the security primitives (no database stack) and starts in a fraction of a
second.

The data keys reach a worker through its start-up pipe (same host, same user) and live
in its memory only, as in the parent's; workers exit when the import ends.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import struct
import subprocess
import sys
import threading
from array import array
from binascii import hexlify
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from multiprocessing.connection import Connection
from types import TracebackType
from typing import TYPE_CHECKING, Final

from tierspayant.formats.beneficiaries import (
    BeneficiaryLine,
    LineError,
    LineFields,
    LineValidator,
    Piece,
    RawRecord,
    RecordCutter,
    TextLines,
    canonical_fields,
)
from tierspayant.security.crypto import (
    INDEX_BYTES,
    NONCE_BYTES,
    BlindIndexer,
    DataKeys,
    FieldCipher,
    MacState,
    hmac_sha256_state,
    row_aad,
)
from tierspayant.security.identity import (
    BENEFICIARIES,
    FAMILY_KIND,
    MEMBER_KIND,
    NIR_KIND,
    SEALED_COLUMNS,
    nir_index,
)

if TYPE_CHECKING:
    from tierspayant.store.beneficiary_import import StagedRow

DIGEST_PURPOSE: Final = "enrolment.row_digest"
DIGEST_BYTES: Final = 16


@dataclass(slots=True)
class PreparedChunk:
    """What one chunk of lines became.

    The valid lines are either ``rows`` (staged tuples), or, when the preparer encodes
    for PostgreSQL's binary ``COPY``, ``copy``: the rows as ``COPY`` bytes in the order
    of ``store.beneficiary_import.COPY_COLUMNS`` (header and trailer left to the writer),
    ``starts`` the offset of each row in them, ``indexes`` each row's ``idx_nir``,
    ``first_line`` and ``last_line`` the line numbers of the first and last row, and
    ``removals`` whether a row is a removal line.
    """

    lines: int = 0
    rows: list[StagedRow] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)
    keep: list[bytes] = field(default_factory=list)  # idx_nir of rejected, identified lines
    copy: bytes = b""
    starts: array[int] = field(default_factory=lambda: array("q"))
    indexes: list[bytes] = field(default_factory=list)
    first_line: int = 0
    last_line: int = 0
    removals: bool = False


class LinePreparer:
    """Validates lines, then seals and indexes the good ones under one insurer's keys.

    A chunk is validated first; then each good line is indexed, sealed and digested in
    one flat loop over prepared primitives (keyed HMAC states copied per value, one
    AES-GCM object, the nonces of the whole chunk drawn in one system call, the
    associated data built from the insurer's precomputed prefix). The rows are the same
    bytes as line-by-line ``nir_index``, ``member_index``, ``family_index``,
    ``seal_identity`` and :meth:`row_digest` would give (tests compare them), nonces aside.
    """

    __slots__ = (
        "_aad_head",
        "_check",
        "_copy",
        "_cutter",
        "_digest",
        "_family",
        "_header",
        "_indexer",
        "_member",
        "_nir",
        "_seal",
        "_version",
    )

    def __init__(
        self,
        keys: DataKeys,
        insurer_id: int,
        validator: LineValidator,
        cutter: RecordCutter | None = None,
        copy_at: datetime | None = None,
    ) -> None:
        """``cutter``: cuts the :class:`TextLines` of a chunk into records (a chunk of
        records only needs none). ``copy_at``: encode the rows for ``COPY``
        (:class:`PreparedChunk`), their ``updated_at`` this instant."""
        self._cutter = cutter
        self._copy = None if copy_at is None else _CopyEncoder(insurer_id, copy_at)
        self._indexer = BlindIndexer(keys)
        # The row digest is keyed (a plain hash of the fields would let anyone holding the
        # database test guesses of an identity) by a key derived from the index key, which
        # survives a rotation of the encryption key: digests stay comparable.
        self._digest = hmac_sha256_state(keys.derive(DIGEST_PURPOSE))
        self._check = validator.check
        self._version = keys.version
        # One keyed state per index family, the kind and its separator already fed (what
        # KindIndexer does; the values indexed here are ASCII and stripped by validation,
        # so its normalisation would leave them unchanged).
        self._nir, self._member, self._family = (
            _kind_state(keys, kind) for kind in (NIR_KIND, MEMBER_KIND, FAMILY_KIND)
        )
        self._header, self._seal = FieldCipher(keys).bulk_parts()
        # Associated data of a sealed column: header, then row_aad(insurer, table, hex of
        # the NIR index, column); everything but the index's hex and the column is fixed.
        empty = row_aad(insurer_id, BENEFICIARIES, "", "")
        self._aad_head = self._header + empty[:-4] + (2 * INDEX_BYTES).to_bytes(2, "big")

    def row_digest(self, line: BeneficiaryLine | LineFields) -> bytes:
        """Keyed digest of every stored field of a line: equal digests, equal rows."""
        mac = self._digest.copy()
        mac.update(
            line.canonical() if isinstance(line, BeneficiaryLine) else canonical_fields(line)
        )
        return mac.digest()[:DIGEST_BYTES]

    def prepare(self, pieces: Sequence[Piece]) -> PreparedChunk:
        """Cut ``pieces`` into records and validate them; seal and index the valid ones
        as staged rows (or ``COPY`` bytes)."""
        records: Sequence[RawRecord | LineError]
        if self._cutter is not None and any(isinstance(p, TextLines) for p in pieces):
            records = self._cutter.expand(pieces)
        else:
            records = pieces  # type: ignore[assignment]  # records only, without a cutter
        chunk = PreparedChunk(lines=len(records))
        errors, keep = chunk.errors, chunk.keep
        check = self._check
        valid: list[LineFields] = []
        for record in records:
            line = record if isinstance(record, LineError) else check(*record)
            if isinstance(line, LineError):
                errors.append(line)
                if line.nir is not None and line.birth_rank is not None:
                    keep.append(nir_index(self._indexer, line.nir, line.birth_rank))
                continue
            valid.append(line)
        if valid:
            self._seal_rows(valid, chunk.rows)
            if self._copy is not None:
                self._copy.encode(chunk)
        return chunk

    def _seal_rows(self, valid: list[LineFields], rows: list[StagedRow]) -> None:
        """Index, seal and digest valid lines into staged rows (the hot loop of imports)."""
        digest, version, header, seal = self._digest, self._version, self._header, self._seal
        nir_state, member_state, family_state = self._nir, self._member, self._family
        head = self._aad_head
        s_nir, s_member, s_birth, s_last, s_first = _SUFFIXES
        nonces = os.urandom(_NONCES_PER_ROW * len(valid))
        at = 0
        append = rows.append
        for fields in valid:
            (line_no, member, nir, rank, birth_date, last, first, sex, quality, contract, start,
             end, css, action) = fields  # fmt: skip
            birth = birth_date.isoformat()
            mac = nir_state.copy()
            mac.update(f"{nir}|{rank}".encode())
            idx_nir = mac.digest()[:INDEX_BYTES]
            mac = member_state.copy()
            mac.update(f"{member}|{birth}".encode())
            idx_member = mac.digest()[:INDEX_BYTES]
            mac = family_state.copy()
            mac.update(member.encode())
            idx_family = mac.digest()[:INDEX_BYTES]
            aad = head + hexlify(idx_nir)
            n1, n2, n3, n4, n5 = (
                nonces[at : at + 12], nonces[at + 12 : at + 24], nonces[at + 24 : at + 36],
                nonces[at + 36 : at + 48], nonces[at + 48 : at + 60],
            )  # fmt: skip
            at += 60
            start_iso = start.isoformat()
            end_iso = None if end is None else end.isoformat()
            # canonical_fields(fields), from the parts already at hand (a test compares).
            mac = digest.copy()
            mac.update(
                f"{member}\x1f{nir}\x1f{rank}\x1f{birth}\x1f{last}\x1f{first}\x1f{sex._value_}"
                f"\x1f{quality._value_}\x1f{contract}\x1f{start_iso}\x1f{end_iso or ''}"
                f"\x1f{'1' if css else '0'}".encode()
            )
            append(
                (
                    line_no,
                    # ``_value_``: the plain string, without the ``value`` property's cost.
                    action._value_,
                    idx_nir,
                    idx_member,
                    idx_family,
                    version,
                    header + n1 + seal(n1, nir.encode(), aad + s_nir),
                    header + n2 + seal(n2, member.encode(), aad + s_member),
                    header + n3 + seal(n3, birth.encode(), aad + s_birth),
                    header + n4 + seal(n4, last.encode(), aad + s_last),
                    header + n5 + seal(n5, first.encode(), aad + s_first),
                    rank,
                    sex._value_,
                    quality._value_,
                    birth_date.year,
                    contract,
                    start_iso,
                    end_iso,
                    css,
                    mac.digest()[:DIGEST_BYTES],
                )
            )


_NONCES_PER_ROW: Final = 5 * NONCE_BYTES
# Length-prefixed column names that end a sealed column's associated data (row_aad).
_SUFFIXES: Final = tuple(len(c).to_bytes(2, "big") + c.encode("ascii") for c in SEALED_COLUMNS)


_EPOCH: Final = date(2000, 1, 1)  # PostgreSQL's binary dates and timestamps count from it
_EPOCH_AT: Final = datetime(2000, 1, 1, tzinfo=UTC)
# The fields of a COPY row up to the staged row's line number (int8): field count,
# insurer_id (int4), then the line number's length.
_ROW_HEAD: Final = struct.Struct(">hiiiq")
_LENGTH: Final = struct.Struct(">i")
_INT2: Final = struct.Struct(">ii")  # length 2 as int4, then the int2 in the low half
_NULL: Final = _LENGTH.pack(-1)
_TRUE: Final = _LENGTH.pack(1) + b"\x01"
_FALSE: Final = _LENGTH.pack(1) + b"\x00"
COPY_FIELDS: Final = 22


class _CopyEncoder:
    """Staged rows into binary ``COPY`` rows (PostgreSQL's wire format of each type), in
    the order of ``store.beneficiary_import.COPY_COLUMNS``: insurer_id, the line number
    (the id once copied into beneficiaries), the indexes, key version, the five
    ciphertexts, birth rank, sex, quality, birth year, contract, coverage dates, css, row
    digest, whether the line is a removal (``is_canary``'s place: always false there),
    updated_at. Values that repeat (enums, contracts, dates, small numbers) are encoded
    once and remembered."""

    __slots__ = ("_at", "_cache", "_insurer")

    def __init__(self, insurer_id: int, at: datetime) -> None:
        self._insurer = insurer_id
        micros = (at - _EPOCH_AT) // _ONE_MICROSECOND
        self._at = _LENGTH.pack(8) + struct.pack(">q", micros)
        self._cache: dict[object, bytes] = {}

    def _text(self, value: str) -> bytes:
        encoded = self._cache.get(value)
        if encoded is None:
            raw = value.encode("utf-8")
            encoded = self._cache[value] = _LENGTH.pack(len(raw)) + raw
        return encoded

    def _date(self, iso: str | None) -> bytes:
        if iso is None:
            return _NULL
        key = ("date", iso)
        encoded = self._cache.get(key)
        if encoded is None:
            days = (date.fromisoformat(iso) - _EPOCH).days
            encoded = self._cache[key] = _LENGTH.pack(4) + struct.pack(">i", days)
        return encoded

    def _int2(self, value: int) -> bytes:
        key = ("int2", value)
        encoded = self._cache.get(key)
        if encoded is None:
            encoded = self._cache[key] = _LENGTH.pack(2) + struct.pack(">h", value)
        return encoded

    def encode(self, chunk: PreparedChunk) -> None:
        """Move ``chunk.rows`` into ``chunk.copy`` (and its offsets and indexes)."""
        rows = chunk.rows
        head = _ROW_HEAD.pack
        length = _LENGTH.pack
        text, day, int2 = self._text, self._date, self._int2
        cache = self._cache
        insurer, at = self._insurer, self._at
        index_length = length(INDEX_BYTES)
        digest_length = length(DIGEST_BYTES)
        parts: list[bytes] = []
        starts = chunk.starts
        indexes = chunk.indexes
        offset = 0
        removals = False
        for (line_no, action, idx_nir, idx_member, idx_family, version, nir_ct, member_ct,
             birth_ct, last_ct, first_ct, rank, sex, quality, year, contract, start, end,
             css, row_digest) in rows:  # fmt: skip
            removal = action == "R"
            removals = removals or removal
            row = b"".join(
                (
                    head(COPY_FIELDS, 4, insurer, 8, line_no),
                    index_length, idx_nir, index_length, idx_member, index_length, idx_family,
                    cache.get(("int4", version)) or self._int4(version),
                    length(len(nir_ct)), nir_ct,
                    length(len(member_ct)), member_ct,
                    length(len(birth_ct)), birth_ct,
                    length(len(last_ct)), last_ct,
                    length(len(first_ct)), first_ct,
                    cache.get(("int2", rank)) or int2(rank),
                    cache.get(sex) or text(sex),
                    cache.get(quality) or text(quality),
                    cache.get(("int2", year)) or int2(year),
                    cache.get(contract) or text(contract),
                    cache.get(("date", start)) or day(start),
                    _NULL if end is None else cache.get(("date", end)) or day(end),
                    _TRUE if css else _FALSE,
                    digest_length, row_digest,
                    _TRUE if removal else _FALSE,
                    at,
                )
            )  # fmt: skip
            starts.append(offset)
            offset += len(row)
            parts.append(row)
            indexes.append(idx_nir)
        chunk.copy = b"".join(parts)
        chunk.first_line = rows[0][0]
        chunk.last_line = rows[-1][0]
        chunk.removals = removals
        chunk.rows = []

    def _int4(self, value: int) -> bytes:
        encoded = self._cache[("int4", value)] = _LENGTH.pack(4) + struct.pack(">i", value)
        return encoded


_ONE_MICROSECOND: Final = datetime.resolution


def _kind_state(keys: DataKeys, kind: str) -> MacState:
    state = hmac_sha256_state(keys.index_key)
    state.update(kind.encode("ascii") + b"\x00")
    return state


# --- worker processes --------------------------------------------------------------------
#
# Workers are plain child interpreters running this module (``python -m``), fed through a
# pair of pipes: unlike multiprocessing's "spawn", they never re-import the parent's main
# script, and unlike "fork" they never inherit its threads, locks or database connections.
# Messages are pickles framed by multiprocessing.connection; both ends are this program.

_STOP: Final = None
# What a worker is started with: the keys, the insurer, the validator, the cutter and
# the COPY instant (see LinePreparer).
_Setup = tuple[DataKeys, int, LineValidator, RecordCutter | None, datetime | None]
WORKER_TIMEOUT: Final = 10.0  # seconds a worker gets to exit once told to stop
# Chunks queued per worker: enough to keep it busy while the parent waits on the database.
PIPELINE_DEPTH: Final = 4


class WorkerError(RuntimeError):
    """A worker process failed or died; the import is rolled back."""


class _Worker:
    """One worker process, and a thread that feeds it.

    Sending happens on its own thread so that the parent never blocks on a full pipe
    while the worker blocks on sending a result back: the parent only ever waits for
    results, which always come.
    """

    def __init__(self, setup: _Setup) -> None:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        try:
            # The command is this interpreter and this module: nothing from the caller.
            self.process = subprocess.Popen(  # noqa: S603
                [sys.executable, "-m", __name__, str(to_child_r), str(from_child_w)],
                pass_fds=(to_child_r, from_child_w),
                stdin=subprocess.DEVNULL,
            )
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        self._send_channel = Connection(to_child_w, readable=False)
        self._recv_channel = Connection(from_child_r, writable=False)
        self._outbox: queue.Queue[list[Piece] | None] = queue.Queue()
        self._sender = threading.Thread(
            target=self._feed, args=(setup,), name=f"enrolment-feed-{self.process.pid}"
        )
        self._sender.start()

    def _feed(self, setup: _Setup) -> None:
        try:
            self._send_channel.send(setup)
            while (item := self._outbox.get()) is not _STOP:
                self._send_channel.send(item)
            self._send_channel.send(_STOP)
        except OSError:
            return  # the worker is gone: receive() reports it

    def send(self, records: list[Piece]) -> None:
        """Queue a chunk for the worker (never blocks)."""
        self._outbox.put(records)

    def receive(self) -> PreparedChunk:
        """The worker's next result, in the order the chunks were sent."""
        try:
            answer = self._recv_channel.recv()
        except (EOFError, OSError) as exc:
            raise WorkerError(f"enrolment worker {self.process.pid} died") from exc
        if isinstance(answer, PreparedChunk):
            return answer
        raise WorkerError(f"enrolment worker failed: {answer}")

    def stop(self) -> None:
        """Drop queued chunks, tell the worker to stop, and wait for it (or kill it)."""
        with contextlib.suppress(queue.Empty):
            while True:
                self._outbox.get_nowait()
        self._outbox.put(_STOP)
        # Stop listening first: a worker still sending a result gets a broken pipe and
        # exits, instead of waiting for a reader that is gone.
        self._recv_channel.close()
        try:
            self.process.wait(WORKER_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._sender.join(WORKER_TIMEOUT)
        self._send_channel.close()


class ParallelPreparer:
    """Prepares chunks in worker processes, giving results back in submission order.

    Each worker has at most PIPELINE_DEPTH chunks in flight, so memory does not grow
    with the file. Use as a context manager: leaving it stops the workers, also on error
    or interrupt.
    """

    def __init__(
        self,
        keys: DataKeys,
        insurer_id: int,
        validator: LineValidator,
        workers: int,
        cutter: RecordCutter | None = None,
        copy_at: datetime | None = None,
    ) -> None:
        self._workers: list[_Worker] = []
        try:
            for _ in range(max(workers, 1)):
                self._workers.append(_Worker((keys, insurer_id, validator, cutter, copy_at)))
        except BaseException:
            self._stop()
            raise

    def __enter__(self) -> ParallelPreparer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    def _stop(self) -> None:
        for worker in self._workers:
            worker.stop()
        self._workers = []

    def map(self, chunks: Iterable[list[Piece]]) -> Iterator[PreparedChunk]:
        """Prepared chunks, in the order of ``chunks``."""
        # ``in_flight`` names the worker of each outstanding chunk, oldest first; a worker
        # handles its chunks in order, so results come back in the order sent.
        in_flight: deque[_Worker] = deque()
        source = iter(chunks)
        for _ in range(PIPELINE_DEPTH):
            for worker in self._workers:
                chunk = next(source, None)
                if chunk is None:
                    break
                worker.send(chunk)
                in_flight.append(worker)
        while in_flight:
            worker = in_flight.popleft()
            prepared = worker.receive()
            chunk = next(source, None)
            if chunk is not None:
                worker.send(chunk)
                in_flight.append(worker)
            yield prepared


def _serve(read_fd: int, write_fd: int) -> None:
    """A worker's life: receive the keys, then prepare chunks until told to stop."""
    # Ctrl-C reaches the whole process group: only the parent decides, and it rolls back.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    incoming = Connection(read_fd, writable=False)
    outgoing = Connection(write_fd, readable=False)
    keys, insurer_id, validator, cutter, copy_at = incoming.recv()
    preparer = LinePreparer(keys, insurer_id, validator, cutter, copy_at)
    while True:
        try:
            records = incoming.recv()
        except EOFError:
            return
        if records is _STOP:
            return
        answer: PreparedChunk | str
        try:
            answer = preparer.prepare(records)
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which rolls back
            answer = type(exc).__name__  # the type only: a message could quote a line
        try:
            outgoing.send(answer)
        except OSError:
            return  # the parent stopped listening: the import is over
        if isinstance(answer, str):
            return


if __name__ == "__main__":
    # Run the imported module's copy, not this ``__main__`` one: the chunks sent back must
    # pickle as tierspayant.services.enrolment_prepare.PreparedChunk.
    from tierspayant.services.enrolment_prepare import _serve as serve

    serve(int(sys.argv[1]), int(sys.argv[2]))
