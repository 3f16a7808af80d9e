"""The rights check's index read on the driver itself.

:func:`find_by_nir_index_padded` is :func:`tierspayant.store.beneficiaries.find_by_nir_index_padded`
(same statement, same answer) without SQLAlchemy's execution around it: the rights check
runs it on every request, and the compiled-cache lookup, parameter processing and result
object cost several times the query itself on SQLite.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, Dialect, Engine

from tierspayant.store.beneficiaries import (
    _BY_NIR_INDEX_PADDED,
    BeneficiaryRecord,
    record_from_row,
)
from tierspayant.store.reconnect import Disconnected, driver_lost
from tierspayant.store.tables import beneficiaries


class _MappedRow:
    """Decoded columns, read like a selected row (``row._mapping``)."""

    __slots__ = ("_mapping",)

    def __init__(self, mapping: Mapping[str, Any]) -> None:
        self._mapping = mapping


class _PaddedRead:
    """``store.beneficiaries.find_by_nir_index_padded`` on the driver itself: the same
    statement, compiled once per dialect, its rows decoded by the columns' own types.

    The rights check runs it on every request, and SQLAlchemy's execution (compiled-cache
    lookup, parameter processing, result object) cost several times the query on SQLite.
    """

    __slots__ = ("_names", "_positions", "_postgres", "_processors", "_sql", "_values")

    def __init__(self, dialect: Dialect) -> None:
        compiled = _BY_NIR_INDEX_PADDED.compile(dialect=dialect)
        self._postgres = dialect.name == "postgresql"
        self._sql = str(compiled)
        self._values = dict(compiled.params)
        self._positions = tuple(compiled.positiontup or ())
        columns = [*beneficiaries.c]
        self._names = (*(c.name for c in columns), "branch")
        self._processors = (
            *(c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns),
            None,
        )

    def __call__(
        self, conn: Connection | LookupReads, insurer_id: int, idx_nir: bytes
    ) -> tuple[BeneficiaryRecord | None, bool]:
        values = {**self._values, "insurer_id": insurer_id, "idx": idx_nir}
        params: Any = [values[p] for p in self._positions] if self._positions else values
        driver: Any = (
            conn.driver() if isinstance(conn, LookupReads) else conn.connection.driver_connection
        )
        # PostgreSQL: one statement needs no transaction. Run alone (autocommit, while no
        # transaction is open) it costs one round trip, where the driver's implicit BEGIN
        # and the pool's ROLLBACK on return would cost two more.
        alone = self._postgres and driver.info.transaction_status.name == "IDLE"
        if alone:
            driver.autocommit = True
        try:
            cursor = driver.cursor()
            try:
                cursor.execute(self._sql, params)
                row = cursor.fetchone()
            finally:
                cursor.close()
        except BaseException as exc:
            lost = driver_lost(driver)
            if isinstance(conn, LookupReads):
                conn.failed(lost=lost)
            elif lost:
                conn.invalidate()  # not back to the pool
            if lost and isinstance(exc, Exception):
                # Raised by the driver, unseen by SQLAlchemy: said here, so that the
                # lookup runs again on a new connection (``store/reconnect.py``).
                raise Disconnected(str(exc)) from exc
            raise
        finally:
            if alone and not driver_lost(driver):
                driver.autocommit = False
        if row is None:
            return None, False
        mapping = {
            name: value if process is None else process(value)
            for name, process, value in zip(self._names, self._processors, row, strict=True)
        }
        return record_from_row(_MappedRow(mapping)), mapping["branch"] == 0  # type: ignore[arg-type]


_PADDED: dict[Dialect, _PaddedRead] = {}


def find_by_nir_index_padded(
    conn: Connection | LookupReads, insurer_id: int, idx_nir: bytes
) -> tuple[BeneficiaryRecord | None, bool]:
    """See :class:`_PaddedRead` (``conn`` may be a :class:`LookupReads`)."""
    dialect = conn.dialect
    read = _PADDED.get(dialect)
    if read is None:
        read = _PADDED.setdefault(dialect, _PaddedRead(dialect))
    return read(conn, insurer_id, idx_nir)


class LookupReads:
    """A read-only lookup's access to the database, paid for only when used.

    A rights check usually needs one statement: the index read, every other row it reads
    (insurer, keys, canary marks, catalogue version) coming from the platform's caches.
    Checking a connection out of SQLAlchemy's pool and returning it (reset, rollback)
    cost as much as that read on SQLite. So:

    - on SQLite the index read runs on the calling thread's own driver connection, kept
      open between lookups (a plain SELECT outside a transaction: each sees the newest
      committed rows, and holds no snapshot once its cursor is closed);
    - anything else (an attribute of :class:`~sqlalchemy.Connection`: ``execute``,
      ``dialect``'s statements, a cache refresh) checks a pooled connection out on first
      use, returned when the lookup ends, as ``engine.connect()`` did.

    It stands for a ``Connection`` in the read path's signatures: it forwards what it
    does not define to the pooled connection.
    """

    __slots__ = ("_conn", "_engine", "dialect")

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._conn: Connection | None = None
        self.dialect: Dialect = engine.dialect

    def connection_(self) -> Connection:
        """The pooled connection, checked out on first use."""
        conn = self._conn
        if conn is None:
            conn = self._conn = self._engine.connect()
        return conn

    def driver(self) -> Any:
        """The driver connection for a single read-only statement."""
        if self.dialect.name == "sqlite" and self._conn is None:
            return _thread_driver(self._engine)
        return self.connection_().connection.driver_connection

    def failed(self, *, lost: bool = False) -> None:
        """A read on :meth:`driver` failed: this thread's connection is not reused; a
        pooled one that was ``lost`` does not go back to the pool."""
        if self._conn is None:
            forget_thread_driver(self._engine)
        elif lost:
            self._conn.invalidate()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.connection_(), name)

    def __enter__(self) -> LookupReads:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


_LOCAL = threading.local()


def _held() -> weakref.WeakKeyDictionary[Engine, Any]:
    held: weakref.WeakKeyDictionary[Engine, Any] | None = getattr(_LOCAL, "drivers", None)
    if held is None:
        held = _LOCAL.drivers = weakref.WeakKeyDictionary()
    return held


def _thread_driver(engine: Engine) -> Any:
    """This thread's own SQLite driver connection to ``engine``'s database.

    Taken from the pool once and detached from it (the pool's size is left to the
    requests), with the pool's connect-time settings (WAL, busy timeout) applied. It
    goes when the thread or the engine goes, or at once after a failed read (the next
    read opens another one).
    """
    held = _held()
    driver = held.get(engine)
    if driver is None:
        raw = engine.raw_connection()
        raw.detach()  # the pool forgets it; the driver's connection is ours to close
        driver = held[engine] = raw.dbapi_connection
    return driver


def forget_thread_driver(engine: Engine) -> None:
    """Close this thread's driver connection to ``engine`` (after a failed read)."""
    driver = _held().pop(engine, None)
    if driver is not None:
        with contextlib.suppress(Exception):
            driver.close()
