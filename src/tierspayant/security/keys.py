"""Key-encryption keys (KEK): kept outside the database, used only to wrap data keys.

The database holds data keys wrapped by a KEK; the KEK itself lives in a
:class:`KeyProvider`: a local keyring file in the embedded mode, an HSM (PKCS#11) in
production. A stolen database therefore yields ciphertext only.

Wrapped blob layout (all integers big-endian)::

    0x01 | len(kek_id) (1 byte) | kek_id (ASCII) | nonce (12) | AES-256-GCM ciphertext+tag

The header (format byte and KEK id) and the caller's context are the GCM associated data,
so neither the KEK id nor the context can be altered without the unwrap failing.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import secrets
import stat
import sys
import threading
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tierspayant.domain.codes import PlatformCode
from tierspayant.security import SecurityError

if sys.platform != "win32":
    import fcntl

WRAP_FORMAT = 0x01
KEK_BYTES = 32
NONCE_BYTES = 12
_TAG_BYTES = 16
_MAX_KEK_ID = 64  # the data_keys.kek_id column is String(64)
_KEYRING_FORMAT = "tierspayant.keyring"
_KEYRING_VERSION = 1
_HKDF_INFO_PREFIX = b"tierspayant.purpose.v1\x00"


class KeyringError(SecurityError):
    """The keyring file is missing, already exists, is corrupt, or refuses an operation."""


class UnwrapError(SecurityError):
    """A wrapped key is malformed, names an unknown KEK, or fails authentication."""


class KeyringPermissionWarning(UserWarning):
    """The keyring file is readable or writable by other users than its owner."""


class KeyProvider(Protocol):
    """Holds key-encryption keys and wraps/unwraps data keys with them.

    ``context`` is associated data: a blob wrapped under one context does not unwrap under
    another (for example, another insurer's scope).
    """

    @property
    def kek_id(self) -> str:
        """Id of the KEK that :meth:`wrap` uses now."""
        ...

    def wrap(self, plaintext_key: bytes, context: bytes) -> bytes:
        """Encrypt ``plaintext_key`` under the active KEK, bound to ``context``."""
        ...

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        """Decrypt a blob made by :meth:`wrap` with the KEK named in it."""
        ...


def derive_key(root_key: bytes, purpose: str, *, length: int = 32) -> bytes:
    """Derive an independent key for one ``purpose`` from ``root_key`` (HKDF-SHA256).

    Used so that one stored secret serves several purposes (audit pseudonyms, import
    digests…) without any two purposes sharing a key, and so that no purpose ever uses a
    KEK directly.
    """
    if len(root_key) < 32:
        raise ValueError("root key must hold at least 256 bits")
    if not purpose or "\x00" in purpose:
        raise ValueError("purpose must be a non-empty label without NUL")
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=length,
        salt=None,
        info=_HKDF_INFO_PREFIX + purpose.encode("utf-8"),
    )
    return hkdf.derive(root_key)


def _header(kek_id: str) -> bytes:
    raw = kek_id.encode("ascii")
    return bytes((WRAP_FORMAT, len(raw))) + raw


def _split_wrapped(wrapped: bytes) -> tuple[str, bytes, bytes, bytes]:
    """(kek_id, header, nonce, ciphertext) of a wrapped blob, or UnwrapError."""
    if len(wrapped) < 2 or wrapped[0] != WRAP_FORMAT:
        raise UnwrapError(PlatformCode.KEYRING_BAD_BLOB, "wrapped key has an unknown format")
    id_len = wrapped[1]
    header_len = 2 + id_len
    if id_len == 0 or len(wrapped) < header_len + NONCE_BYTES + _TAG_BYTES:
        raise UnwrapError(PlatformCode.KEYRING_BAD_BLOB, "wrapped key is truncated")
    try:
        kek_id = wrapped[2:header_len].decode("ascii")
    except UnicodeDecodeError as exc:
        raise UnwrapError(
            PlatformCode.KEYRING_BAD_BLOB, "wrapped key has a malformed KEK id"
        ) from exc
    nonce = wrapped[header_len : header_len + NONCE_BYTES]
    return kek_id, wrapped[:header_len], nonce, wrapped[header_len + NONCE_BYTES :]


def wrapped_kek_id(wrapped: bytes) -> str:
    """The id of the KEK a blob was wrapped with (to find blobs that need a rewrap)."""
    return _split_wrapped(wrapped)[0]


@dataclass(frozen=True, slots=True)
class _Kek:
    id: str
    created_at: datetime
    material: bytes = field(repr=False)
    aead: AESGCM = field(repr=False, compare=False)


def _new_kek_id(now: datetime) -> str:
    # Readable creation date for operators, random suffix so two rotations in the same
    # second never collide.
    return f"kek-{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


def _make_kek(kek_id: str, created_at: datetime, material: bytes) -> _Kek:
    return _Kek(kek_id, created_at, material, AESGCM(material))


def _utc_iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _serialise(keks: Mapping[str, _Kek], active: str) -> bytes:
    document = {
        "format": _KEYRING_FORMAT,
        "version": _KEYRING_VERSION,
        "active": active,
        "keys": [
            {
                "id": kek.id,
                "created_at": _utc_iso(kek.created_at),
                "material": base64.b64encode(kek.material).decode("ascii"),
            }
            for kek in keks.values()
        ],
    }
    return (json.dumps(document, indent=2) + "\n").encode("utf-8")


def _corrupt(path: Path, why: str) -> KeyringError:
    return KeyringError(PlatformCode.KEYRING_CORRUPT, f"keyring {path} is corrupt: {why}")


def _parse(path: Path, raw: bytes) -> tuple[dict[str, _Kek], str]:
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _corrupt(path, "not JSON") from exc
    if not isinstance(document, dict) or document.get("format") != _KEYRING_FORMAT:
        raise _corrupt(path, "not a tierspayant keyring")
    if document.get("version") != _KEYRING_VERSION:
        raise _corrupt(path, f"unsupported version {document.get('version')!r}")
    entries = document.get("keys")
    active = document.get("active")
    if not isinstance(entries, list) or not entries or not isinstance(active, str):
        raise _corrupt(path, "no keys or no active key")
    keks: dict[str, _Kek] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            raise _corrupt(path, "a key entry is not an object")
        kek_id, created, material_b64 = (
            entry.get("id"),
            entry.get("created_at"),
            entry.get("material"),
        )
        if not isinstance(kek_id, str) or not isinstance(created, str):
            raise _corrupt(path, "a key entry lacks its id or creation time")
        if not isinstance(material_b64, str):
            raise _corrupt(path, f"key {kek_id} has no material")
        try:
            _header(kek_id)
            created_at = datetime.fromisoformat(created.replace("Z", "+00:00"))
            material = base64.b64decode(material_b64, validate=True)
        except (UnicodeEncodeError, ValueError, binascii.Error) as exc:
            raise _corrupt(path, f"key entry {kek_id!r} is malformed") from exc
        if not kek_id or len(kek_id) > _MAX_KEK_ID or created_at.tzinfo is None:
            raise _corrupt(path, f"key entry {kek_id!r} is malformed")
        if len(material) != KEK_BYTES:
            raise _corrupt(path, f"key {kek_id} is not {KEK_BYTES} bytes")
        if kek_id in keks:
            raise _corrupt(path, f"key id {kek_id} appears twice")
        keks[kek_id] = _make_kek(kek_id, created_at, material)
    if active not in keks:
        raise _corrupt(path, f"active key {active} is not in the keyring")
    return keks, active


def _fsync_dir(directory: Path) -> None:
    if sys.platform == "win32":  # directories cannot be opened for fsync there
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_exclusive(path: Path, content: bytes) -> None:
    """Create ``path`` with mode 0600; fail if anything already exists there."""
    # O_EXCL makes "refuse to overwrite" atomic: no window between a check and the write.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # the umask can only narrow 0600, but be explicit
        os.write(fd, content)
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace_atomically(path: Path, content: bytes) -> None:
    """Replace ``path`` so that a crash leaves either the old or the new keyring, whole."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        _write_exclusive(tmp, content)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    _fsync_dir(path.parent)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Exclusive lock across processes while the keyring file is rewritten.

    A separate, never-replaced lock file is used: locking the keyring itself would not
    work, since each rewrite replaces its inode.
    """
    if sys.platform == "win32":
        yield
        return
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _check_permissions(path: Path) -> None:
    if sys.platform == "win32":
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        warnings.warn(
            f"keyring {path} has mode {mode:04o}: other users may read the KEK; "
            "run `chmod 600` on it",
            KeyringPermissionWarning,
            stacklevel=3,
        )


class LocalKeyring:
    """KEKs in a local JSON file (mode 0600), for the embedded mode and for tests.

    The file lives outside the database (and should be backed up apart from it): losing it
    makes every encrypted field unreadable; copying it together with the database gives
    the thief everything.
    """

    def __init__(self, path: Path, keks: Mapping[str, _Kek], active: str) -> None:
        """Use :meth:`create` or :meth:`load`; this constructor trusts its arguments."""
        self.path = path
        self._keks = dict(keks)
        self._active = active
        self._lock = threading.Lock()

    @classmethod
    def create(cls, path: Path, *, now: datetime | None = None) -> LocalKeyring:
        """Create a keyring holding one fresh KEK; refuse if ``path`` already exists."""
        created = now or datetime.now(UTC)
        kek = _make_kek(_new_kek_id(created), created, os.urandom(KEK_BYTES))
        keks = {kek.id: kek}
        try:
            _write_exclusive(path, _serialise(keks, kek.id))
        except FileExistsError as exc:
            raise KeyringError(
                PlatformCode.KEYRING_EXISTS,
                f"a keyring already exists at {path}; refusing to overwrite it "
                "(that would make every wrapped data key unreadable)",
            ) from exc
        _fsync_dir(path.parent)
        return cls(path, keks, kek.id)

    @classmethod
    def load(cls, path: Path) -> LocalKeyring:
        """Read a keyring file; warns (KeyringPermissionWarning) if its mode is too open."""
        try:
            raw = path.read_bytes()
        except FileNotFoundError as exc:
            raise KeyringError(PlatformCode.KEYRING_MISSING, f"no keyring at {path}") from exc
        except IsADirectoryError as exc:
            raise KeyringError(
                PlatformCode.KEYRING_CORRUPT, f"keyring {path} is a directory"
            ) from exc
        _check_permissions(path)
        keks, active = _parse(path, raw)
        return cls(path, keks, active)

    @property
    def kek_id(self) -> str:
        """Id of the active KEK (the one new wraps use)."""
        return self._active

    @property
    def kek_ids(self) -> tuple[str, ...]:
        """Ids of every KEK held, oldest first."""
        return tuple(self._keks)

    @property
    def active_created_at(self) -> datetime:
        """When the active KEK was created (its age says when a rotation is due)."""
        return self._keks[self._active].created_at

    def wrap(self, plaintext_key: bytes, context: bytes) -> bytes:
        """Encrypt a data key under the active KEK, bound to ``context``."""
        with self._lock:
            kek = self._keks[self._active]
        header = _header(kek.id)
        nonce = os.urandom(NONCE_BYTES)
        return header + nonce + kek.aead.encrypt(nonce, plaintext_key, header + context)

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        """Decrypt a wrapped data key with the KEK named in the blob."""
        kek_id, header, nonce, ciphertext = _split_wrapped(wrapped)
        kek = self._keks.get(kek_id)
        if kek is None:
            # Another process may have rotated the keyring since we loaded it.
            self._reload()
            kek = self._keks.get(kek_id)
        if kek is None:
            raise UnwrapError(
                PlatformCode.KEYRING_UNKNOWN_KEK, f"KEK {kek_id} is not in the keyring"
            )
        try:
            return kek.aead.decrypt(nonce, ciphertext, header + context)
        except InvalidTag as exc:
            raise UnwrapError(
                PlatformCode.KEYRING_UNWRAP_FAILED,
                "wrapped key does not authenticate (tampered, or wrong context)",
            ) from exc

    def rotate(self, *, now: datetime | None = None) -> str:
        """Add a new active KEK, keep the old ones for unwrapping; return the new id."""
        created = now or datetime.now(UTC)
        with self._lock, _file_lock(self.path):
            # Re-read under the lock: a rotation made meanwhile by another process must
            # not be lost, or the data keys it wrapped would become unreadable.
            keks, _ = _parse(self.path, self.path.read_bytes())
            kek = _make_kek(_new_kek_id(created), created, os.urandom(KEK_BYTES))
            keks[kek.id] = kek
            _replace_atomically(self.path, _serialise(keks, kek.id))
            self._keks, self._active = keks, kek.id
        return kek.id

    def retire(self, kek_id: str) -> None:
        """Remove a KEK that no longer wraps anything (after every blob was rewrapped).

        Irreversible: a blob still wrapped by it is lost. The active KEK cannot be retired.
        """
        with self._lock, _file_lock(self.path):
            keks, active = _parse(self.path, self.path.read_bytes())
            if kek_id == active:
                raise KeyringError(
                    PlatformCode.KEYRING_ACTIVE_KEK, "the active KEK cannot be retired"
                )
            if kek_id not in keks:
                raise KeyringError(
                    PlatformCode.KEYRING_UNKNOWN_KEK, f"KEK {kek_id} is not in the keyring"
                )
            del keks[kek_id]
            _replace_atomically(self.path, _serialise(keks, active))
            self._keks, self._active = keks, active

    def _reload(self) -> None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return
        keks, active = _parse(self.path, raw)
        with self._lock:
            self._keks, self._active = keks, active

    def __repr__(self) -> str:
        return f"LocalKeyring(path={self.path!s}, active={self._active}, keys={len(self._keks)})"


def rewrap(provider: KeyProvider, wrapped: bytes, context: bytes) -> bytes:
    """Re-encrypt a wrapped key under the provider's active KEK (KEK rotation)."""
    return provider.wrap(provider.unwrap(wrapped, context), context)


def create_secret_file(path: Path, secret: bytes) -> None:
    """Store a new secret (e.g. the audit checkpoint signing key) in a 0600 file.

    Refuses to overwrite: replacing a signing key would orphan every signature made with
    it. Lives beside the keyring, outside the database, for the same reason.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        _write_exclusive(path, base64.b64encode(secret) + b"\n")
    except FileExistsError as exc:
        raise KeyringError(
            PlatformCode.KEYRING_EXISTS, f"a secret already exists at {path}"
        ) from exc
    _fsync_dir(path.parent)


def read_secret_file(path: Path) -> bytes:
    """Read a secret written by :func:`create_secret_file` (warns if the mode is too open)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise KeyringError(PlatformCode.KEYRING_MISSING, f"no secret at {path}") from exc
    _check_permissions(path)
    try:
        return base64.b64decode(raw.strip(), validate=True)
    except binascii.Error as exc:
        raise KeyringError(PlatformCode.KEYRING_CORRUPT, f"secret file {path} is corrupt") from exc


def keyring_ids(raw: bytes, origin: Path) -> tuple[str, ...]:
    """The KEK ids of a keyring document (KeyringError if it is not a sound keyring).

    Used to check a keyring restored from a backup before it is installed."""
    keks, _ = _parse(origin, raw)
    return tuple(keks)


def install_key_file(path: Path, content: bytes, *, replace: bool) -> Path | None:
    """Write a restored keyring or secret file (mode 0600).

    Without ``replace``, refuses (``keyring.exists``) when ``path`` exists. With it, the
    file found there is first renamed aside (``<name>.replaced-<UTC time>``, returned): a
    keyring that still wraps live data keys is never destroyed by a restore.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if not replace:
        try:
            _write_exclusive(path, content)
        except FileExistsError as exc:
            raise KeyringError(
                PlatformCode.KEYRING_EXISTS, f"a key file already exists at {path}"
            ) from exc
        _fsync_dir(path.parent)
        return None
    kept: Path | None = None
    with _file_lock(path):
        if path.exists():
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            kept = path.with_name(f"{path.name}.replaced-{stamp}")
            os.link(path, kept)
        _replace_atomically(path, content)
    return kept


_HSM_STAMP = "%Y%m%dT%H%M%S.%f"


def _hsm_label(now: datetime, newest: str | None) -> str:
    """A KEK label that sorts after ``newest``: the active KEK is the greatest label."""
    stamp = now.astimezone(UTC).replace(tzinfo=None)
    if newest is not None:
        try:
            previous = datetime.strptime(newest[4:26], _HSM_STAMP)
        except ValueError:
            previous = None
        if previous is not None and stamp <= previous:
            stamp = previous + timedelta(microseconds=1)
    return f"kek-{stamp.strftime(_HSM_STAMP)}Z-{secrets.token_hex(4)}"


class Pkcs11Keyring:
    """KEKs held inside an HSM through PKCS#11 (SoftHSM2 in tests): they never leave it.

    Each KEK is a non-extractable, sensitive AES-256 key object of the token, labelled
    ``kek-<UTC time to the microsecond>Z-<random>``, each label sorting after the previous
    one; the active KEK is the greatest label. Wrapping and unwrapping run inside the HSM
    (``CKM_AES_GCM``) and produce the same blob layout as :class:`LocalKeyring`, header
    and context as associated data.
    Needs the ``python-pkcs11`` package and the vendor's PKCS#11 library.
    """

    def __init__(self, library: str, token_label: str, pin: str) -> None:
        import pkcs11  # type: ignore[import-not-found, unused-ignore]

        self._pkcs11 = pkcs11
        self._token = pkcs11.lib(library).get_token(token_label=token_label)
        self._session = self._token.open(user_pin=pin, rw=True)
        self._lock = threading.Lock()

    def _keys(self) -> dict[str, Any]:
        attribute, object_class = self._pkcs11.Attribute, self._pkcs11.ObjectClass
        found: list[Any] = list(
            self._session.get_objects({attribute.CLASS: object_class.SECRET_KEY})
        )
        labelled = {str(getattr(key, "label", "")): key for key in found}
        return {label: key for label, key in labelled.items() if label.startswith("kek-")}

    @property
    def kek_ids(self) -> tuple[str, ...]:
        """Ids (labels) of every KEK in the token, oldest first."""
        with self._lock:
            return tuple(sorted(self._keys()))

    @property
    def kek_id(self) -> str:
        """Id of the active KEK (the newest)."""
        ids = self.kek_ids
        if not ids:
            raise KeyringError(
                PlatformCode.KEYRING_MISSING, "the HSM token holds no KEK: rotate first"
            )
        return ids[-1]

    def rotate(self, *, now: datetime | None = None) -> str:
        """Generate a new KEK inside the HSM; it becomes the active one."""
        attribute = self._pkcs11.Attribute
        with self._lock:
            newest = max(self._keys(), default=None)
            kek_id = _hsm_label(now or datetime.now(UTC), newest)
            self._session.generate_key(
                self._pkcs11.KeyType.AES,
                KEK_BYTES * 8,
                label=kek_id,
                store=True,
                template={
                    attribute.SENSITIVE: True,
                    attribute.EXTRACTABLE: False,
                    attribute.ENCRYPT: True,
                    attribute.DECRYPT: True,
                },
            )
        return kek_id

    def retire(self, kek_id: str) -> None:
        """Destroy a KEK nothing is wrapped with any more (never the active one)."""
        if kek_id == self.kek_id:
            raise KeyringError(PlatformCode.KEYRING_ACTIVE_KEK, "the active KEK cannot be retired")
        with self._lock:
            key = self._keys().get(kek_id)
            if key is None:
                raise KeyringError(
                    PlatformCode.KEYRING_UNKNOWN_KEK, f"KEK {kek_id} is not in the token"
                )
            key.destroy()

    def _gcm(self, nonce: bytes, aad: bytes) -> object:
        return self._pkcs11.mechanisms.GCMParams(nonce, aad, _TAG_BYTES * 8)

    def wrap(self, plaintext_key: bytes, context: bytes) -> bytes:
        """Encrypt a data key inside the HSM under the active KEK, bound to ``context``."""
        kek_id = self.kek_id
        header = _header(kek_id)
        nonce = os.urandom(NONCE_BYTES)
        with self._lock:
            key = self._keys()[kek_id]
            sealed = key.encrypt(
                plaintext_key,
                mechanism=self._pkcs11.Mechanism.AES_GCM,
                mechanism_param=self._gcm(nonce, header + context),
            )
        return header + nonce + bytes(sealed)

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        """Decrypt, inside the HSM, a blob made by :meth:`wrap`."""
        kek_id, header, nonce, ciphertext = _split_wrapped(wrapped)
        with self._lock:
            key = self._keys().get(kek_id)
            if key is None:
                raise UnwrapError(
                    PlatformCode.KEYRING_UNKNOWN_KEK, f"KEK {kek_id} is not in the token"
                )
            try:
                plain = key.decrypt(
                    ciphertext,
                    mechanism=self._pkcs11.Mechanism.AES_GCM,
                    mechanism_param=self._gcm(nonce, header + context),
                )
            except self._pkcs11.PKCS11Error as exc:
                raise UnwrapError(
                    PlatformCode.KEYRING_UNWRAP_FAILED,
                    "wrapped key does not authenticate (tampered, or wrong context)",
                ) from exc
        return bytes(plain)

    def close(self) -> None:
        """End the HSM session."""
        with self._lock:
            self._session.close()

    def __repr__(self) -> str:
        return f"Pkcs11Keyring(token={self._token.label!r})"
