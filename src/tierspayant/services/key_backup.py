"""Export and import of the keys kept outside the database (keyring, checkpoint key).

The export is sealed under a passphrase (:mod:`tierspayant.security.key_export`) and is
stored apart from the database backups; an import refuses to replace a keyring unless
asked, and then keeps the replaced file aside. Keys held in an HSM are not exported:
the HSM's own backup procedure covers them (docs/backup.md).
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tierspayant.app.platform import Platform
from tierspayant.config import Settings
from tierspayant.domain.codes import PlatformCode
from tierspayant.security.audit import load_private_key
from tierspayant.security.key_export import (
    KeyBundle,
    KeyExportError,
    check_passphrase,
    open_sealed,
    seal,
)
from tierspayant.security.keys import (
    KeyringError,
    LocalKeyring,
    install_key_file,
    keyring_ids,
    read_secret_file,
)
from tierspayant.services.checkpoints import SIGNING_KEY_FILE, signing_key_path
from tierspayant.services.errors import Conflict, ServiceError
from tierspayant.store import audit


@dataclass(frozen=True, slots=True)
class ExportSummary:
    path: Path
    kek_ids: tuple[str, ...]
    checkpoint_key: bool


@dataclass(frozen=True, slots=True)
class ImportSummary:
    keyring_path: Path
    kek_ids: tuple[str, ...]
    checkpoint_key_path: Path | None
    replaced: tuple[Path, ...]


def _refusal(exc: KeyExportError | KeyringError) -> ServiceError:
    if exc.code == PlatformCode.KEYRING_EXISTS:
        return Conflict(exc.code, exc.message)
    return ServiceError(exc.code, exc.message)


def _write_new(path: Path, content: bytes) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise Conflict(
            PlatformCode.BACKUP_EXISTS, f"{path} already exists: choose another file"
        ) from exc
    try:
        os.write(fd, content)
        os.fsync(fd)
    finally:
        os.close(fd)


def seal_keys(
    settings: Settings,
    out: Path,
    passphrase: str,
    *,
    now: datetime,
    scrypt_n: int | None = None,
) -> ExportSummary:
    """Seal the keyring and the checkpoint key of ``settings`` into ``out`` (new file)."""
    try:
        check_passphrase(passphrase)
        keyring = LocalKeyring.load(settings.keyring_path)
        raw_keyring = settings.keyring_path.read_bytes()
        key_path = signing_key_path(settings)
        checkpoint_key = key_path.read_bytes() if key_path.exists() else None
        if checkpoint_key is not None:
            load_private_key(read_secret_file(key_path))
        extra = {} if scrypt_n is None else {"scrypt_n": scrypt_n}
        sealed = seal(KeyBundle(raw_keyring, checkpoint_key), passphrase, now=now, **extra)
    except (KeyExportError, KeyringError) as exc:
        raise _refusal(exc) from None
    except ValueError as exc:  # a checkpoint key file that is not an Ed25519 key
        raise ServiceError(PlatformCode.CHECKPOINT_BAD_KEY, str(exc)) from None
    _write_new(out, sealed)
    return ExportSummary(out, keyring.kek_ids, checkpoint_key is not None)


def export_keys(
    platform: Platform,
    out: Path,
    passphrase: str,
    actor: str,
    *,
    scrypt_n: int | None = None,
) -> ExportSummary:
    """Seal the platform's keys into ``out`` and record the export in the audit log."""
    summary = seal_keys(platform.settings, out, passphrase, now=platform.now(), scrypt_n=scrypt_n)
    with platform.engine.begin() as conn:
        audit.append(
            conn,
            at=platform.now(),
            actor=actor,
            action="keys.export",
            decision="allow",
            detail={"keks": len(summary.kek_ids), "checkpoint_key": summary.checkpoint_key},
        )
    return summary


def import_keys(
    source: Path,
    passphrase: str,
    keyring_path: Path,
    *,
    force: bool = False,
) -> ImportSummary:
    """Open a key export and install its keyring (and checkpoint key) at ``keyring_path``.

    Refuses (``keyring.exists``) to replace existing files unless ``force``; with it, the
    replaced files are kept aside and named in the summary.
    """
    try:
        raw = source.read_bytes()
    except OSError as exc:
        raise ServiceError(
            PlatformCode.KEY_EXPORT_MALFORMED, f"{source} cannot be read: {exc.strerror}"
        ) from None
    key_path = keyring_path.parent / SIGNING_KEY_FILE
    try:
        bundle = open_sealed(raw, passphrase)
        kek_ids = keyring_ids(bundle.keyring, source)
        if bundle.checkpoint_key is not None:
            _check_secret(bundle.checkpoint_key)
        if not force:
            for path in (keyring_path, key_path if bundle.checkpoint_key else None):
                if path is not None and path.exists():
                    raise KeyringError(
                        PlatformCode.KEYRING_EXISTS,
                        f"a key file already exists at {path}: refusing to replace it "
                        "without --force",
                    )
        replaced = [install_key_file(keyring_path, bundle.keyring, replace=force)]
        if bundle.checkpoint_key is not None:
            replaced.append(install_key_file(key_path, bundle.checkpoint_key, replace=force))
    except (KeyExportError, KeyringError) as exc:
        raise _refusal(exc) from None
    return ImportSummary(
        keyring_path=keyring_path,
        kek_ids=kek_ids,
        checkpoint_key_path=key_path if bundle.checkpoint_key is not None else None,
        replaced=tuple(p for p in replaced if p is not None),
    )


def _check_secret(raw: bytes) -> None:
    try:
        load_private_key(base64.b64decode(raw.strip(), validate=True))
    except (binascii.Error, ValueError) as exc:
        raise KeyExportError(
            PlatformCode.KEY_EXPORT_MALFORMED, "the checkpoint key of the export is not a key"
        ) from exc
