"""The rights check's index read on the driver itself.

:func:`find_by_nir_index_padded` is :func:`tierspayant.store.beneficiaries.find_by_nir_index_padded`
(same statement, same answer) without SQLAlchemy's execution around it: the rights check
runs it on every request, and the compiled-cache lookup, parameter processing and result
object cost several times the query itself on SQLite.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Dialect

from tierspayant.store.beneficiaries import (
    _BY_NIR_INDEX_PADDED,
    BeneficiaryRecord,
    record_from_row,
)
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
        self, conn: Connection, insurer_id: int, idx_nir: bytes
    ) -> tuple[BeneficiaryRecord | None, bool]:
        values = {**self._values, "insurer_id": insurer_id, "idx": idx_nir}
        params: Any = [values[p] for p in self._positions] if self._positions else values
        driver: Any = conn.connection.driver_connection
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
        finally:
            if alone:
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
    conn: Connection, insurer_id: int, idx_nir: bytes
) -> tuple[BeneficiaryRecord | None, bool]:
    """See :class:`_PaddedRead`."""
    dialect = conn.dialect
    read = _PADDED.get(dialect)
    if read is None:
        read = _PADDED.setdefault(dialect, _PaddedRead(dialect))
    return read(conn, insurer_id, idx_nir)
