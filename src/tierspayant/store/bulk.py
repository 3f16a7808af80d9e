"""Reading and writing in bulk through the driver: the helpers of adjudication's batch
reads and writes and of the ledger's bulk postings.

Batch reads of adjudication go through the driver's cursor: per batch they fetch
thousands of rows by an ``IN`` list of up to a thousand ids, and SQLAlchemy's expansion
of such a list and its row objects cost more than the database's work (measured: about
a fifth of a run's CPU). Dates come back as ISO text from SQLite, as dates from psycopg.
Writes go through the driver's own executemany (SQLite) or binary COPY (PostgreSQL) for
the same reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection


def is_postgres(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def ids_in(conn: Connection, column: str, ids: Sequence[int]) -> tuple[str, tuple[Any, ...]]:
    """``column`` among ``ids``: one array parameter on PostgreSQL (one statement text
    for every batch), an ``IN`` list on SQLite."""
    if is_postgres(conn):
        return f"{column} = ANY(%s::bigint[])", (int_array(ids),)
    return f"{column} IN ({', '.join('?' * len(ids))})", tuple(ids)


# Array parameters written as PostgreSQL array literals (text the server parses): the
# driver's list dumper encodes element by element in Python, about ten times slower.
def int_array(values: Iterable[int]) -> str:
    return "{" + ",".join(map(str, map(int, values))) + "}"


def bytea_array(values: Iterable[bytes]) -> str:
    # Each element is bytea's hex input, its backslash escaped for the array syntax.
    return "{" + ",".join("\\\\x" + value.hex() for value in values) + "}"


def fetch(conn: Connection, sql: str, parameters: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` (written with ``%s`` marks, turned into ``?`` for SQLite) on this
    transaction's connection, as the driver returns them."""
    raw = conn.connection.driver_connection
    assert raw is not None
    cursor = raw.cursor()
    try:
        cursor.execute(sql if is_postgres(conn) else sql.replace("%s", "?"), parameters)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


IDS_PER_QUERY = 900  # values per IN list: SQLite binds at most 32,766 parameters


def bound(conn: Connection, column: Any, value: Any) -> Any:
    """``value`` as the column's type hands it to the driver (dates on SQLite are text)."""
    process = column.type.bind_processor(conn.dialect)
    if process is not None:
        return process(value)
    if isinstance(value, datetime) and not is_postgres(conn):
        # What sqlite3's default adapter would store, made once instead of once per row.
        return value.isoformat(" ")
    return value


def stage(conn: Connection, name: str, columns: str) -> None:
    """Make this session's staging table ``name`` exist and be empty (PostgreSQL).

    It lives as long as the database session and is emptied at each commit; emptied here
    too, as one transaction may stage several times (one batch, several insurers).
    """
    # Fixed names and columns (constants of the callers), not input.
    create = f"CREATE TEMP TABLE IF NOT EXISTS {name} ({columns}) ON COMMIT DELETE ROWS"
    conn.exec_driver_sql(f"{create}; DELETE FROM {name}")  # noqa: S608


def copy_in(
    conn: Connection, statement: str, types: Sequence[str], rows: Iterable[tuple[Any, ...]]
) -> None:
    """``COPY … FROM STDIN (FORMAT BINARY)`` of ``rows`` on this transaction (PostgreSQL)."""
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cursor, cursor.copy(statement) as copy:
        copy.set_types(types)
        for row in rows:
            copy.write_row(row)
