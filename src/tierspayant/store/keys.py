"""Wrapped data keys in the database; unwrapped only in memory, through the key provider."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, func, select, update

from tierspayant.security.crypto import DataKeys, new_data_keys, unwrap_data_keys, wrap_data_keys
from tierspayant.security.keys import KeyProvider
from tierspayant.store.tables import data_keys

OPERATOR_SCOPE = "operator"


def insurer_scope(amc_number: str) -> str:
    """The key scope of one insurer's data."""
    return f"insurer:{amc_number}"


def _scope_label(scope: str) -> str:
    # The wrapping context binds the blob to its scope: a wrapped key copied to another
    # insurer's row does not unwrap.
    return scope.removeprefix("insurer:")


class DataKeyCache:
    """Unwraps each (scope, version) once per process and keeps the result in memory."""

    def __init__(self, provider: KeyProvider) -> None:
        self.provider = provider
        self._by_version: dict[tuple[str, int], DataKeys] = {}
        self._active: dict[str, int] = {}
        self._lock = threading.Lock()

    def create(self, conn: Connection, scope: str, now: datetime) -> DataKeys:
        """Create and store a new active version of the data keys of ``scope``."""
        current = conn.execute(
            select(data_keys.c.version)
            .where(data_keys.c.scope == scope)
            .order_by(data_keys.c.version.desc())
            .limit(1)
        ).scalar()
        version = 1 if current is None else int(current) + 1
        keys = new_data_keys(version)
        add_active_version(
            conn,
            scope,
            version,
            self.provider.kek_id,
            wrap_data_keys(self.provider, _scope_label(scope), keys),
            now,
        )
        with self._lock:
            self._by_version[(scope, version)] = keys
            self._active[scope] = version
        return keys

    def cached_active(self, scope: str) -> DataKeys | None:
        """The active keys of ``scope`` if this process already unwrapped them."""
        version = self._active.get(scope)
        return None if version is None else self._by_version[(scope, version)]

    def active(self, conn: Connection, scope: str) -> DataKeys:
        """The active data keys of ``scope`` (raises LookupError if none exist)."""
        version = self._active.get(scope)
        if version is not None:
            return self._by_version[(scope, version)]
        row = conn.execute(
            select(data_keys.c.version, data_keys.c.wrapped).where(
                data_keys.c.scope == scope, data_keys.c.active.is_(True)
            )
        ).first()
        if row is None:
            raise LookupError(f"no data keys for {scope}")
        keys = self._unwrap(scope, int(row.version), bytes(row.wrapped))
        with self._lock:
            self._active[scope] = keys.version
        return keys

    def version(self, conn: Connection, scope: str, version: int) -> DataKeys:
        """The data keys of ``scope`` at ``version`` (for rows written before a rotation)."""
        cached = self._by_version.get((scope, version))
        if cached is not None:
            return cached
        wrapped = conn.execute(
            select(data_keys.c.wrapped).where(
                data_keys.c.scope == scope, data_keys.c.version == version
            )
        ).scalar()
        if wrapped is None:
            raise LookupError(f"no data keys for {scope} version {version}")
        return self._unwrap(scope, version, bytes(wrapped))

    def forget(self) -> None:
        """Drop every unwrapped key from memory (after a rotation, or on shutdown)."""
        with self._lock:
            self._by_version.clear()
            self._active.clear()

    def _unwrap(self, scope: str, version: int, wrapped: bytes) -> DataKeys:
        keys = unwrap_data_keys(self.provider, _scope_label(scope), version, wrapped)
        with self._lock:
            self._by_version[(scope, version)] = keys
        return keys


# --- rotation ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WrappedKeys:
    """One stored version of a scope's data keys, still wrapped."""

    scope: str
    version: int
    wrapped: bytes = field(repr=False)


def wrapped_not_under(conn: Connection, kek_id: str) -> list[WrappedKeys]:
    """Every stored data-key version wrapped by another KEK than ``kek_id``."""
    rows = conn.execute(
        select(data_keys.c.scope, data_keys.c.version, data_keys.c.wrapped).where(
            data_keys.c.kek_id != kek_id
        )
    ).all()
    return [WrappedKeys(str(s), int(v), bytes(w)) for s, v, w in rows]


def rewrap(conn: Connection, scope: str, version: int, wrapped: bytes, kek_id: str) -> None:
    """Store a data-key version wrapped again, under ``kek_id``."""
    conn.execute(
        update(data_keys)
        .where(data_keys.c.scope == scope, data_keys.c.version == version)
        .values(wrapped=wrapped, kek_id=kek_id)
    )


def kek_ids_in_use(conn: Connection) -> set[str]:
    """The KEKs that wrap at least one stored data key."""
    return set(conn.execute(select(data_keys.c.kek_id).distinct()).scalars())


def max_version(conn: Connection, scope: str) -> int | None:
    """The newest data-key version of ``scope``, or None if it has none."""
    value = conn.execute(
        select(func.max(data_keys.c.version)).where(data_keys.c.scope == scope)
    ).scalar()
    return None if value is None else int(value)


def add_active_version(
    conn: Connection, scope: str, version: int, kek_id: str, wrapped: bytes, now: datetime
) -> None:
    """Store a new version of ``scope``'s data keys as the only active one."""
    conn.execute(update(data_keys).where(data_keys.c.scope == scope).values(active=False))
    conn.execute(
        data_keys.insert().values(
            scope=scope,
            version=version,
            kek_id=kek_id,
            wrapped=wrapped,
            active=True,
            created_at=now,
        )
    )
