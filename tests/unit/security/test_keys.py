"""Key-encryption keys: the local keyring file, wrapping, rotation, purpose keys."""

from __future__ import annotations

import json
import os
import stat
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tierspayant.security.keys import (
    KeyProvider,
    KeyringError,
    KeyringPermissionWarning,
    LocalKeyring,
    UnwrapError,
    derive_key,
    rewrap,
    wrapped_kek_id,
)

CONTEXT = b"tierspayant.dek.v1|12345678|1"
DATA_KEY = bytes(range(64))
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def keyring_path(tmp_path: Path) -> Path:
    return tmp_path / "keyring.json"


@pytest.fixture
def keyring(keyring_path: Path) -> LocalKeyring:
    return LocalKeyring.create(keyring_path, now=NOW)


def test_given_no_file_when_created_then_file_is_0600_and_loads_back(keyring_path: Path) -> None:
    created = LocalKeyring.create(keyring_path, now=NOW)

    assert _mode(keyring_path) == 0o600
    loaded = LocalKeyring.load(keyring_path)
    assert loaded.kek_id == created.kek_id
    assert loaded.kek_id.startswith("kek-20260302T093000Z-")
    # A blob wrapped by the creating instance opens with the loaded one.
    assert loaded.unwrap(created.wrap(DATA_KEY, CONTEXT), CONTEXT) == DATA_KEY


def test_given_a_permissive_umask_when_created_then_mode_is_still_0600(
    keyring_path: Path,
) -> None:
    previous = os.umask(0)
    try:
        LocalKeyring.create(keyring_path)
    finally:
        os.umask(previous)
    assert _mode(keyring_path) == 0o600


def test_given_an_existing_keyring_when_created_again_then_refused_and_untouched(
    keyring: LocalKeyring, keyring_path: Path
) -> None:
    before = keyring_path.read_bytes()

    with pytest.raises(KeyringError) as caught:
        LocalKeyring.create(keyring_path)

    assert caught.value.code == "keyring.exists"
    assert keyring_path.read_bytes() == before


def test_given_any_existing_file_when_created_then_refused(keyring_path: Path) -> None:
    keyring_path.write_text("not a keyring")
    with pytest.raises(KeyringError) as caught:
        LocalKeyring.create(keyring_path)
    assert caught.value.code == "keyring.exists"
    assert keyring_path.read_text() == "not a keyring"


def test_given_no_file_when_loaded_then_missing_code(keyring_path: Path) -> None:
    with pytest.raises(KeyringError) as caught:
        LocalKeyring.load(keyring_path)
    assert caught.value.code == "keyring.missing"


def _rewrite(path: Path, mutate: object) -> None:
    document = json.loads(path.read_text())
    assert callable(mutate)
    mutate(document)
    path.write_text(json.dumps(document))
    path.chmod(0o600)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(format="something-else"),
        lambda d: d.update(version=99),
        lambda d: d.update(active="kek-unknown"),
        lambda d: d.update(keys=[]),
        lambda d: d["keys"][0].update(material="c2hvcnQ="),  # 5 bytes, not 32
        lambda d: d["keys"][0].update(material="***not base64***"),
        lambda d: d["keys"][0].update(created_at="yesterday"),
        lambda d: d["keys"][0].pop("id"),
        lambda d: d["keys"].append(dict(d["keys"][0])),  # duplicate id
    ],
    ids=[
        "format",
        "version",
        "active",
        "no-keys",
        "short-key",
        "bad-base64",
        "bad-date",
        "no-id",
        "duplicate",
    ],
)
def test_given_a_corrupt_keyring_when_loaded_then_corrupt_code(
    keyring: LocalKeyring, keyring_path: Path, mutate: object
) -> None:
    _rewrite(keyring_path, mutate)
    with pytest.raises(KeyringError) as caught:
        LocalKeyring.load(keyring_path)
    assert caught.value.code == "keyring.corrupt"


def test_given_non_json_bytes_when_loaded_then_corrupt_code(keyring_path: Path) -> None:
    keyring_path.write_bytes(b"\xff\xfe garbage")
    keyring_path.chmod(0o600)
    with pytest.raises(KeyringError) as caught:
        LocalKeyring.load(keyring_path)
    assert caught.value.code == "keyring.corrupt"


def test_given_a_world_readable_keyring_when_loaded_then_warns_but_works(
    keyring: LocalKeyring, keyring_path: Path
) -> None:
    keyring_path.chmod(0o644)
    with pytest.warns(KeyringPermissionWarning, match="chmod 600"):
        loaded = LocalKeyring.load(keyring_path)
    assert loaded.kek_id == keyring.kek_id


def test_given_a_keyring_when_inspected_then_no_key_material_in_repr_or_errors(
    keyring: LocalKeyring, keyring_path: Path
) -> None:
    material = json.loads(keyring_path.read_text())["keys"][0]["material"]
    assert material not in repr(keyring)
    with pytest.raises(UnwrapError) as caught:
        keyring.unwrap(keyring.wrap(DATA_KEY, CONTEXT), b"other")
    assert material not in str(caught.value)


def test_given_a_wrapped_key_when_unwrapped_with_another_context_then_refused(
    keyring: LocalKeyring,
) -> None:
    wrapped = keyring.wrap(DATA_KEY, b"tierspayant.dek.v1|12345678|1")

    with pytest.raises(UnwrapError) as caught:
        keyring.unwrap(wrapped, b"tierspayant.dek.v1|87654321|1")

    assert caught.value.code == "keyring.unwrap_failed"


def test_given_a_wrapped_key_when_any_byte_is_flipped_then_unwrap_fails(
    keyring: LocalKeyring,
) -> None:
    wrapped = keyring.wrap(DATA_KEY, CONTEXT)
    for position in range(len(wrapped)):
        tampered = bytearray(wrapped)
        tampered[position] ^= 0x01
        with pytest.raises(UnwrapError):
            keyring.unwrap(bytes(tampered), CONTEXT)


def test_given_a_truncated_or_foreign_blob_when_unwrapped_then_bad_blob(
    keyring: LocalKeyring,
) -> None:
    wrapped = keyring.wrap(DATA_KEY, CONTEXT)
    for blob in (b"", wrapped[:10], b"\x02" + wrapped[1:]):
        with pytest.raises(UnwrapError) as caught:
            keyring.unwrap(blob, CONTEXT)
        assert caught.value.code == "keyring.bad_blob"


def test_given_a_blob_when_inspected_then_it_names_its_kek(keyring: LocalKeyring) -> None:
    assert wrapped_kek_id(keyring.wrap(DATA_KEY, CONTEXT)) == keyring.kek_id


def test_given_two_wraps_of_one_key_then_ciphertexts_differ(keyring: LocalKeyring) -> None:
    assert keyring.wrap(DATA_KEY, CONTEXT) != keyring.wrap(DATA_KEY, CONTEXT)


def test_given_another_keyring_when_unwrapping_then_unknown_kek(
    keyring: LocalKeyring, tmp_path: Path
) -> None:
    other = LocalKeyring.create(tmp_path / "other.json")
    with pytest.raises(UnwrapError) as caught:
        other.unwrap(keyring.wrap(DATA_KEY, CONTEXT), CONTEXT)
    assert caught.value.code == "keyring.unknown_kek"


def test_given_a_rotation_then_old_blobs_still_open_and_new_wraps_use_the_new_kek(
    keyring: LocalKeyring, keyring_path: Path
) -> None:
    old_id = keyring.kek_id
    old_blob = keyring.wrap(DATA_KEY, CONTEXT)

    new_id = keyring.rotate()

    assert new_id != old_id
    assert keyring.kek_id == new_id
    assert keyring.kek_ids == (old_id, new_id)
    assert wrapped_kek_id(keyring.wrap(DATA_KEY, CONTEXT)) == new_id
    assert keyring.unwrap(old_blob, CONTEXT) == DATA_KEY
    # The file was rewritten with both keys and kept private.
    assert _mode(keyring_path) == 0o600
    reloaded = LocalKeyring.load(keyring_path)
    assert reloaded.kek_id == new_id
    assert reloaded.unwrap(old_blob, CONTEXT) == DATA_KEY
    assert not [p for p in keyring_path.parent.iterdir() if p.name.endswith(".tmp")]


def test_given_a_process_loaded_before_a_rotation_when_unwrapping_a_new_blob_then_reloads(
    keyring: LocalKeyring, keyring_path: Path
) -> None:
    stale = LocalKeyring.load(keyring_path)
    keyring.rotate()
    fresh_blob = keyring.wrap(DATA_KEY, CONTEXT)

    assert stale.unwrap(fresh_blob, CONTEXT) == DATA_KEY


def test_given_two_stale_instances_when_both_rotate_then_no_kek_is_lost(
    keyring: LocalKeyring, keyring_path: Path
) -> None:
    first = LocalKeyring.load(keyring_path)
    second = LocalKeyring.load(keyring_path)

    first_id = first.rotate()
    blob = first.wrap(DATA_KEY, CONTEXT)
    second_id = second.rotate()  # second never saw first's key in memory

    reloaded = LocalKeyring.load(keyring_path)
    assert set(reloaded.kek_ids) == {keyring.kek_id, first_id, second_id}
    assert reloaded.unwrap(blob, CONTEXT) == DATA_KEY


def test_given_concurrent_rotations_in_threads_then_every_kek_is_kept(
    keyring: LocalKeyring, keyring_path: Path
) -> None:
    instances = [LocalKeyring.load(keyring_path) for _ in range(4)]
    new_ids: list[str] = []
    lock = threading.Lock()

    def rotate(instance: LocalKeyring) -> None:
        kek_id = instance.rotate()
        with lock:
            new_ids.append(kek_id)

    threads = [threading.Thread(target=rotate, args=(i,)) for i in instances]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert set(LocalKeyring.load(keyring_path).kek_ids) == {keyring.kek_id, *new_ids}


def test_given_a_rotation_when_rewrapping_then_blob_moves_to_the_active_kek(
    keyring: LocalKeyring,
) -> None:
    old_blob = keyring.wrap(DATA_KEY, CONTEXT)
    new_id = keyring.rotate()

    moved = rewrap(keyring, old_blob, CONTEXT)

    assert wrapped_kek_id(moved) == new_id
    assert keyring.unwrap(moved, CONTEXT) == DATA_KEY


def test_given_a_retired_kek_then_its_blobs_no_longer_open_and_active_cannot_retire(
    keyring: LocalKeyring, keyring_path: Path
) -> None:
    old_id = keyring.kek_id
    old_blob = keyring.wrap(DATA_KEY, CONTEXT)
    keyring.rotate()

    with pytest.raises(KeyringError) as active:
        keyring.retire(keyring.kek_id)
    assert active.value.code == "keyring.active_kek"

    keyring.retire(old_id)

    assert old_id not in LocalKeyring.load(keyring_path).kek_ids
    with pytest.raises(UnwrapError) as caught:
        keyring.unwrap(old_blob, CONTEXT)
    assert caught.value.code == "keyring.unknown_kek"


def test_local_keyring_satisfies_the_provider_protocol(keyring: LocalKeyring) -> None:
    provider: KeyProvider = keyring  # checked by mypy
    assert provider.unwrap(provider.wrap(DATA_KEY, CONTEXT), CONTEXT) == DATA_KEY


def test_given_one_root_when_deriving_then_keys_are_per_purpose_and_deterministic() -> None:
    root = bytes(range(32))

    audit = derive_key(root, "audit.subject")
    digest = derive_key(root, "import.row_digest")

    assert len(audit) == 32
    assert audit == derive_key(root, "audit.subject")
    assert audit != digest
    assert root not in (audit, digest)
    assert derive_key(bytes(32), "audit.subject") != audit
    with pytest.raises(ValueError, match="256 bits"):
        derive_key(b"short", "audit.subject")
    with pytest.raises(ValueError, match="purpose"):
        derive_key(root, "")
