"""Key rotation without downtime: KEK rewrap, and data-key re-encryption in batches.

**KEK rotation** (``rotate_kek``): a new key-encryption key becomes active in the
keyring; every wrapped data key is unwrapped with its old KEK and wrapped again with the
new one, in one short transaction (there are a few rows per insurer). Old KEKs stay in
the keyring for reading until :func:`retire_unused_keks` removes those nothing refers to.

**Data-key rotation** (``rotate_data``): a new version of an insurer's data keys with a
fresh *encryption* key and the *same index key*; then rows are re-encrypted in batches,
each batch its own transaction, while the platform keeps serving.

Why the index key stays: a blind index is an HMAC under the index key, and each sealed
cell's associated data names its row by that index (``security/identity.py``); audit
pseudonyms and import digests derive from index keys too. Keeping it means lookups,
imports, incident scoping of past events and duplicate detection all keep working before,
during and after the migration with no dual lookup path: a row of either version is
found by the same index, and decrypted with the key version it records. What a rotation
protects against is wear and exposure of the *encryption* key (ciphertexts made under a
leaked key become unreadable to its holder once re-encrypted); an index key is never
used to encrypt and never leaves the process. If an index key itself were exposed, the
remedy is re-enrolment into a new scope from the insurer's next full file, not an
in-place migration.

Nothing here logs key material or identity: only scopes, versions, KEK ids and counts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

import structlog
from sqlalchemy import Connection

from tierspayant.app.platform import Platform
from tierspayant.domain.codes import PlatformCode
from tierspayant.security.crypto import (
    FieldCipher,
    new_data_keys,
    unwrap_data_keys,
    wrap_data_keys,
)
from tierspayant.security.identity import SEALED_COLUMNS, open_column
from tierspayant.security.identity import column_aad as sealed_aad
from tierspayant.security.keys import KeyProvider
from tierspayant.services.errors import Conflict, ServiceError
from tierspayant.services.insurers import Insurer, get_insurer
from tierspayant.store import audit
from tierspayant.store import beneficiaries as store_beneficiaries
from tierspayant.store import keys as store_keys
from tierspayant.store.beneficiaries import BeneficiaryRecord
from tierspayant.store.keys import insurer_scope

log = structlog.get_logger("tierspayant.keys")

BATCH_ROWS = 1000
Progress = Callable[[int], None]


@runtime_checkable
class RotatingKeyProvider(KeyProvider, Protocol):
    """A key provider that can add and remove KEKs itself (local keyring, PKCS#11 HSM)."""

    @property
    def kek_ids(self) -> tuple[str, ...]: ...

    def rotate(self, *, now: datetime | None = None) -> str: ...

    def retire(self, kek_id: str) -> None: ...


def _keyring(platform: Platform) -> RotatingKeyProvider:
    provider = platform.key_provider
    if not isinstance(provider, RotatingKeyProvider):
        raise ServiceError(
            PlatformCode.KEYS_UNSUPPORTED,
            "this key provider cannot rotate its KEK here: rewrap only",
        )
    return provider


def _label(scope: str) -> str:
    # The wrapping context of a scope, as store.keys defines it.
    return scope.removeprefix("insurer:")


@dataclass(frozen=True, slots=True)
class KekRotation:
    new_kek: str
    rewrapped: int


def rotate_kek(platform: Platform, actor: str) -> KekRotation:
    """Activate a new KEK and rewrap every data key with it; old KEKs are kept."""
    keyring = _keyring(platform)
    new_kek = keyring.rotate(now=platform.now())
    rewrapped = rewrap_all(platform, actor)
    log.info("keys.kek_rotated", kek=new_kek, rewrapped=rewrapped)
    return KekRotation(new_kek, rewrapped)


def rewrap_all(platform: Platform, actor: str) -> int:
    """Rewrap every data key not yet under the active KEK (idempotent; resumes a crash)."""
    provider = platform.key_provider
    with platform.engine.begin() as conn:
        rows = store_keys.wrapped_not_under(conn, provider.kek_id)
        for row in rows:
            keys = unwrap_data_keys(provider, _label(row.scope), row.version, row.wrapped)
            store_keys.rewrap(
                conn,
                row.scope,
                row.version,
                wrap_data_keys(provider, _label(row.scope), keys),
                provider.kek_id,
            )
        audit.append(
            conn,
            at=platform.now(),
            actor=actor,
            action="keys.rewrap",
            decision="allow",
            detail={"kek": provider.kek_id, "rewrapped": len(rows)},
        )
    return len(rows)


def retire_unused_keks(platform: Platform, actor: str) -> tuple[str, ...]:
    """Remove from the keyring every inactive KEK that no data key refers to any more."""
    keyring = _keyring(platform)
    with platform.engine.begin() as conn:
        used = store_keys.kek_ids_in_use(conn)
        retired = tuple(k for k in keyring.kek_ids if k != keyring.kek_id and k not in used)
        for kek in retired:
            keyring.retire(kek)
        if retired:
            audit.append(
                conn,
                at=platform.now(),
                actor=actor,
                action="keys.retire_kek",
                decision="allow",
                detail={"retired": ",".join(retired)[:200]},
            )
    log.info("keys.kek_retired", count=len(retired))
    return retired


@dataclass(frozen=True, slots=True)
class DataRotation:
    insurer: str
    new_version: int
    reencrypted: int
    remaining: int
    seconds: float


def start_data_rotation(platform: Platform, amc: str, actor: str) -> int:
    """Create the new active version (fresh encryption key, same index key); return it."""
    now = platform.now()
    with platform.engine.begin() as conn:
        insurer = get_insurer(conn, amc)
        scope = insurer_scope(insurer.amc_number)
        current = platform.keys.active(conn, scope)
        version = _max_version(conn, scope) + 1
        keys = new_data_keys(version, index_key=current.index_key)
        store_keys.add_active_version(
            conn,
            scope,
            version,
            platform.key_provider.kek_id,
            wrap_data_keys(platform.key_provider, _label(scope), keys),
            now,
        )
        audit.append(
            conn,
            at=now,
            actor=actor,
            action="keys.rotate_data",
            decision="allow",
            insurer=insurer.amc_number,
            detail={"version": version, "step": "start"},
        )
    # This process must use the new version from now on; other processes pick it up when
    # they restart (rows they write meanwhile record the older version and stay readable).
    platform.keys.forget()
    log.info("keys.data_version_created", insurer=amc, version=version)
    return version


def _max_version(conn: Connection, scope: str) -> int:
    value = store_keys.max_version(conn, scope)
    if value is None:
        raise Conflict(PlatformCode.KEYS_NO_DATA_KEYS, "this insurer has no data keys yet")
    return value


def reencrypt_batch(
    platform: Platform, insurer: Insurer, target: int, after: int, limit: int
) -> tuple[int, int]:
    """Re-encrypt up to ``limit`` rows with id > ``after`` not yet at ``target``.

    Returns (rows re-encrypted, last id seen; 0 when none was left). One transaction; a
    row changed meanwhile (an import) is left for the next pass by its version check.
    """
    scope = insurer_scope(insurer.amc_number)
    done = 0
    last = 0
    with platform.engine.begin() as conn:
        new_keys = platform.keys.version(conn, scope, target)
        new_cipher = FieldCipher(new_keys)
        rows = store_beneficiaries.records_behind(conn, insurer.id, target, after, limit)
        ciphers: dict[int, FieldCipher] = {}
        for row in rows:
            version = row.key_version
            if version not in ciphers:
                ciphers[version] = FieldCipher(platform.keys.version(conn, scope, version))
            values = _reseal(ciphers[version], new_cipher, insurer.id, row)
            done += store_beneficiaries.reseal(conn, insurer.id, row.id, version, target, values)
            last = row.id
    return done, last


def _reseal(
    old: FieldCipher, new: FieldCipher, insurer_id: int, row: BeneficiaryRecord
) -> dict[str, bytes]:
    idx_nir = row.idx_nir
    values = {}
    for column in SEALED_COLUMNS:
        blob: bytes = getattr(row, f"{column}_ct")
        plain = open_column(old, insurer_id, idx_nir, column, blob)
        values[f"{column}_ct"] = new.encrypt(plain, sealed_aad(insurer_id, idx_nir, column))
    return values


def count_behind(platform: Platform, insurer: Insurer, target: int) -> int:
    """Rows of the insurer not yet under data-key version ``target``."""
    with platform.engine.connect() as conn:
        return store_beneficiaries.count_behind(conn, insurer.id, target)


def rotate_data(
    platform: Platform,
    amc: str,
    actor: str,
    *,
    batch: int = BATCH_ROWS,
    progress: Progress | None = None,
) -> DataRotation:
    """New data-key version for ``amc``, then every row re-encrypted under it in batches."""
    started = time.perf_counter()
    with platform.engine.connect() as conn:
        insurer = get_insurer(conn, amc)
    target = start_data_rotation(platform, insurer.amc_number, actor)
    total = finish_data_rotation(platform, insurer, target, batch=batch, progress=progress)
    remaining = count_behind(platform, insurer, target)
    with platform.engine.begin() as conn:
        audit.append(
            conn,
            at=platform.now(),
            actor=actor,
            action="keys.rotate_data",
            decision="allow",
            insurer=insurer.amc_number,
            detail={"version": target, "step": "done", "rows": total, "remaining": remaining},
        )
    seconds = time.perf_counter() - started
    log.info("keys.data_rotated", insurer=amc, version=target, rows=total, seconds=seconds)
    return DataRotation(insurer.amc_number, target, total, remaining, seconds)


def finish_data_rotation(
    platform: Platform,
    insurer: Insurer,
    target: int,
    *,
    batch: int = BATCH_ROWS,
    progress: Progress | None = None,
) -> int:
    """Re-encrypt every row behind ``target``; passes again for rows written meanwhile."""
    total = 0
    for _ in range(3):  # a second pass catches rows an import wrote with the old version
        after, moved = 0, 0
        while True:
            done, last = reencrypt_batch(platform, insurer, target, after, batch)
            if last == 0:
                break
            moved += done
            after = last
            if progress is not None:
                progress(done)
        total += moved
        if moved == 0:
            break
    return total
