"""The running platform: settings, database, keys, reference data, limits, clock.

Every entry point (API, CLI, jobs) opens one :class:`Platform` and hands it to the use
cases. Nothing here holds per-request state.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cached_property

from sqlalchemy import Engine

from tierspayant.app.alerting import AlertSink, build_guard
from tierspayant.app.caching import TtlCache
from tierspayant.app.catalogues import CatalogueCache
from tierspayant.config import Settings
from tierspayant.domain.codes import PlatformCode
from tierspayant.domain.errors import DomainError
from tierspayant.domain.reference import ReferenceTable
from tierspayant.formats.reference import load_default_reference
from tierspayant.security.crypto import DataKeys
from tierspayant.security.guard import Guard
from tierspayant.security.keys import KeyProvider, LocalKeyring
from tierspayant.security.principal import Principal
from tierspayant.security.ratelimit import RateLimits
from tierspayant.store.audit_writer import AuditWriter
from tierspayant.store.db import is_initialised, make_engine, migrate
from tierspayant.store.insurers import Insurer
from tierspayant.store.keys import OPERATOR_SCOPE, DataKeyCache


class NotInitialised(DomainError):
    """The platform has no database schema or no keyring yet (run ``tierspayant init``).

    The platform's own failure, raised before any use case runs; ``services.errors``
    names it beside the use cases' errors, and the API and the CLI map it like them."""


def utc_now() -> datetime:
    """The wall clock, in UTC. Tests pass their own clock to :class:`Platform`."""
    return datetime.now(UTC)


@dataclass
class Platform:
    """Shared resources of one process."""

    settings: Settings
    engine: Engine
    key_provider: KeyProvider
    clock: Callable[[], datetime] = utc_now
    keys: DataKeyCache = field(init=False)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.keys = DataKeyCache(self.key_provider)

    @cached_property
    def reference(self) -> ReferenceTable:
        """Dated regulatory figures (rates, participation, franchises, caps)."""
        return load_default_reference()

    @cached_property
    def limits(self) -> RateLimits:
        """Named rate limiters: Redis when ``TIERSPAYANT_REDIS_URL`` is set, else in-process."""
        return RateLimits(self.settings.redis_url, self.settings.rate_limits)

    @cached_property
    def guard(self) -> Guard | None:
        """The exfiltration guard (None only when switched off to benchmark it)."""
        if not self.settings.guard_enabled:
            return None
        return build_guard(self.settings, self.engine, self.now)

    @cached_property
    def alert_sink(self) -> AlertSink:
        """Where security alerts go besides the database: structured log and webhook."""
        return AlertSink.from_settings(self.settings)

    @cached_property
    def catalogues(self) -> CatalogueCache:
        """Parsed guarantee catalogues, by insurer and version."""
        return CatalogueCache(self.settings.cache_seconds)

    @cached_property
    def audit_writer(self) -> AuditWriter:
        """Appends the lookups' audit events in batches (group commit)."""
        return AuditWriter(self.engine)

    @cached_property
    def principals(self) -> TtlCache[bytes, tuple[Principal, datetime]]:
        """Provider token digest → (principal, token expiry), for a few seconds."""
        return TtlCache(self.settings.cache_seconds)

    @cached_property
    def canary_marks(self) -> TtlCache[int, frozenset[bytes]]:
        """Insurer id → its canary marks, for a few seconds."""
        return TtlCache(self.settings.cache_seconds, max_entries=1_000)

    @cached_property
    def insurers(self) -> TtlCache[str, Insurer]:
        """AMC number → insurer, for a few seconds."""
        return TtlCache(self.settings.cache_seconds, max_entries=1_000)

    def now(self) -> datetime:
        return self.clock()

    def today(self) -> date:
        return self.clock().date()

    def operator_keys(self) -> DataKeys:
        """Operator-scope data keys (provider IBANs, audit pseudonyms)."""
        cached = self.keys.cached_active(OPERATOR_SCOPE)
        if cached is not None:
            return cached
        with self.engine.begin() as conn:
            try:
                return self.keys.active(conn, OPERATOR_SCOPE)
            except LookupError:
                return self.keys.create(conn, OPERATOR_SCOPE, self.now())

    def close(self) -> None:
        if "audit_writer" in self.__dict__:
            self.audit_writer.close()
        self.keys.forget()
        self.engine.dispose()


def initialise(settings: Settings) -> Platform:
    """Create the keyring (if absent) and the schema; idempotent."""
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if settings.keyring_path.exists():
        provider = LocalKeyring.load(settings.keyring_path)
    else:
        provider = LocalKeyring.create(settings.keyring_path)
    engine = make_engine(settings.database_url)
    migrate(engine)
    platform = Platform(settings=settings, engine=engine, key_provider=provider)
    platform.operator_keys()
    return platform


def open_platform(settings: Settings, clock: Callable[[], datetime] = utc_now) -> Platform:
    """Open an initialised platform, or explain what is missing."""
    if not settings.keyring_path.exists():
        raise NotInitialised(
            PlatformCode.NO_KEYRING,
            f"no keyring at {settings.keyring_path}: run `tierspayant init` first",
        )
    engine = make_engine(settings.database_url)
    if not is_initialised(engine):
        engine.dispose()
        raise NotInitialised(
            PlatformCode.NO_SCHEMA, "the database has no schema: run `tierspayant init` first"
        )
    migrate(engine)  # cheap when already at head; applies new revisions after an upgrade
    return Platform(
        settings=settings,
        engine=engine,
        key_provider=LocalKeyring.load(settings.keyring_path),
        clock=clock,
    )
