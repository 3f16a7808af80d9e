"""KEK rewrap and data-key re-encryption: lookups work before, during and after; no secret
leaks into the logs."""

from __future__ import annotations

import base64
import logging
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Select, select
from structlog.testing import capture_logs

from tests.integration.operations_support import Person, SeedInsurer, enrol
from tierspayant.app.platform import Platform
from tierspayant.config import load_settings
from tierspayant.security.keys import LocalKeyring, Pkcs11Keyring, UnwrapError, wrapped_kek_id
from tierspayant.services import key_rotation
from tierspayant.services.breakglass import open_identity
from tierspayant.services.identification import identify
from tierspayant.services.insurers import Insurer
from tierspayant.store.beneficiaries import record_from_row
from tierspayant.store.db import make_engine, migrate
from tierspayant.store.keys import insurer_scope
from tierspayant.store.tables import beneficiaries, data_keys

ACTOR = "operator:cli"


def _fresh(platform: Platform) -> Platform:
    """Another process: new key cache, keyring read again from its file."""
    return Platform(
        settings=platform.settings,
        engine=platform.engine,
        key_provider=LocalKeyring.load(platform.settings.keyring_path),
        clock=platform.clock,
    )


def _all_found(platform: Platform, amc: str, people: list[Person]) -> bool:
    with platform.engine.connect() as conn:
        for person in people:
            _, found = identify(platform, conn, person.card(amc))
            if found is None or found.record.id != person.line + 1:
                return False
    return True


def _versions(platform: Platform, insurer_id: int) -> dict[int, int]:
    with platform.engine.connect() as conn:
        rows = conn.execute(
            select(beneficiaries.c.key_version).where(beneficiaries.c.insurer_id == insurer_id)
        ).scalars()
        counts: dict[int, int] = {}
        for version in rows:
            counts[int(version)] = counts.get(int(version), 0) + 1
    return counts


def _names(platform: Platform, insurer_id: int, amc: str) -> dict[int, tuple[str, str, str]]:
    with platform.engine.connect() as conn:
        rows = conn.execute(
            select(beneficiaries).where(beneficiaries.c.insurer_id == insurer_id)
        ).all()
        out = {}
        for row in rows:
            identity = open_identity(platform, conn, amc, record_from_row(row), show_nir=True)
            out[int(row.id)] = (identity.last_name, identity.first_name, identity.nir)
    return out


def _rows(insurer: Insurer) -> Select[Any]:
    return select(beneficiaries).where(beneficiaries.c.insurer_id == insurer.id)


@pytest.fixture
def enrolled(
    platform: Platform, seed_insurer: SeedInsurer, tmp_path: Path
) -> tuple[Platform, Insurer, list[Person]]:
    seeded, people = enrol(platform, seed_insurer, tmp_path, 40, seed=11)
    return platform, Insurer(seeded.id, seeded.amc_number, "", "mutuelle"), people


def test_given_a_kek_rotation_then_every_data_key_is_rewrapped_and_lookups_work(
    enrolled: tuple[Platform, Insurer, list[Person]],
) -> None:
    platform, insurer, people = enrolled
    old_kek = platform.key_provider.kek_id
    done = key_rotation.rotate_kek(platform, ACTOR)
    assert done.new_kek != old_kek
    with platform.engine.connect() as conn:
        keks = set(conn.execute(select(data_keys.c.kek_id)).scalars())
    assert keks == {done.new_kek}
    assert _all_found(_fresh(platform), insurer.amc_number, people)
    retired = key_rotation.retire_unused_keks(platform, ACTOR)
    assert old_kek in retired
    reopened = _fresh(platform)
    assert isinstance(reopened.key_provider, LocalKeyring)
    assert reopened.key_provider.kek_ids == (done.new_kek,)
    assert _all_found(reopened, insurer.amc_number, people)


def test_given_a_data_rotation_then_lookups_work_before_during_and_after(
    enrolled: tuple[Platform, Insurer, list[Person]],
) -> None:
    platform, insurer, people = enrolled
    before = _names(platform, insurer.id, insurer.amc_number)
    with platform.engine.connect() as conn:
        old_rows = {r.id: r for r in conn.execute(_rows(insurer)).all()}
    assert _all_found(platform, insurer.amc_number, people)
    target = key_rotation.start_data_rotation(platform, insurer.amc_number, ACTOR)
    assert target == 2
    assert _all_found(_fresh(platform), insurer.amc_number, people)  # all rows still v1
    done, last = key_rotation.reencrypt_batch(platform, insurer, target, 0, 15)
    assert (done, last) == (15, 15)
    assert _versions(platform, insurer.id) == {2: 15, 1: 25}  # mixed
    assert _all_found(_fresh(platform), insurer.amc_number, people)
    key_rotation.finish_data_rotation(platform, insurer, target, batch=7)
    assert _versions(platform, insurer.id) == {2: 40}
    reopened = _fresh(platform)
    assert _all_found(reopened, insurer.amc_number, people)
    assert _names(reopened, insurer.id, insurer.amc_number) == before
    with platform.engine.connect() as conn:
        for row in conn.execute(_rows(insurer)).all():
            old = old_rows[row.id]
            assert row.idx_nir == old.idx_nir  # the index key is kept: no re-indexing
            assert row.nir_ct != old.nir_ct  # re-encrypted under the new key


def test_given_lookups_running_while_rows_are_reencrypted_then_none_fails(
    enrolled: tuple[Platform, Insurer, list[Person]],
) -> None:
    platform, insurer, people = enrolled
    target = key_rotation.start_data_rotation(platform, insurer.amc_number, ACTOR)
    failures: list[BaseException] = []

    def migrate() -> None:
        try:
            key_rotation.finish_data_rotation(_fresh(platform), insurer, target, batch=3)
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            failures.append(exc)

    worker = threading.Thread(target=migrate)
    worker.start()
    rounds = 0
    while worker.is_alive() or rounds == 0:
        assert _all_found(platform, insurer.amc_number, people)
        rounds += 1
    worker.join()
    assert failures == []
    assert _versions(platform, insurer.id) == {target: 40}


def test_given_a_full_rotation_then_no_key_material_nor_identity_in_logs(
    enrolled: tuple[Platform, Insurer, list[Person]], caplog: pytest.LogCaptureFixture
) -> None:
    platform, insurer, people = enrolled
    caplog.set_level(logging.DEBUG)
    with capture_logs() as structured:
        key_rotation.rotate_kek(platform, ACTOR)
        result = key_rotation.rotate_data(platform, insurer.amc_number, ACTOR, batch=8)
        key_rotation.retire_unused_keks(platform, ACTOR)
    assert result.reencrypted == 40
    assert result.remaining == 0
    text = repr(structured) + caplog.text
    assert structured, "rotation logs what it did"
    secrets: list[bytes] = []
    with platform.engine.connect() as conn:
        scope = insurer_scope(insurer.amc_number)
        for version in (1, 2):
            keys = platform.keys.version(conn, scope, version)
            secrets += [keys.encryption_key, keys.index_key]
    keyring = platform.key_provider
    assert isinstance(keyring, LocalKeyring)
    secrets += [kek.material for kek in keyring._keks.values()]
    for secret in secrets:
        for form in (secret.hex(), base64.b64encode(secret).decode(), repr(secret)):
            assert form not in text
    for person in people:
        assert person.nir not in text
        assert person.last_name not in text


def test_given_an_unknown_insurer_when_rotating_then_refused(platform: Platform) -> None:
    from tierspayant.services.errors import NotFound

    with pytest.raises(NotFound):
        key_rotation.rotate_data(platform, "999999999", ACTOR)


# --- KEKs in an HSM (PKCS#11, SoftHSM2) ------------------------------------------------------

SOFTHSM_LIBRARIES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
)
HSM_PIN = "4321"


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pkcs11Keyring]:
    """A SoftHSM2 token of its own (skipped where SoftHSM2 or python-pkcs11 is absent)."""
    pytest.importorskip("pkcs11")
    library = next((p for p in SOFTHSM_LIBRARIES if Path(p).exists()), None)
    if library is None or shutil.which("softhsm2-util") is None:
        pytest.skip("SoftHSM2 is not installed (Debian package softhsm2)")
    directory = tmp_path_factory.mktemp("softhsm")
    (directory / "tokens").mkdir()
    config = directory / "softhsm2.conf"
    config.write_text(
        f"directories.tokendir = {directory / 'tokens'}\nobjectstore.backend = file\n"
        "log.level = ERROR\n",
        encoding="ascii",
    )
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SOFTHSM2_CONF", str(config))
        subprocess.run(
            ["softhsm2-util", "--init-token", "--free", "--label", "tierspayant-test",
             "--so-pin", "87654321", "--pin", HSM_PIN],
            check=True,
            capture_output=True,
        )  # fmt: skip
        keyring = Pkcs11Keyring(library, "tierspayant-test", HSM_PIN)
        keyring.rotate()
        yield keyring
        keyring.close()


def test_given_an_hsm_then_wrapping_binds_the_context_and_the_kek_stays_inside(
    hsm: Pkcs11Keyring,
) -> None:
    secret = bytes(range(64))
    blob = hsm.wrap(secret, b"tierspayant.dek.v1|12345678|1")
    assert wrapped_kek_id(blob) == hsm.kek_id
    assert hsm.unwrap(blob, b"tierspayant.dek.v1|12345678|1") == secret
    with pytest.raises(UnwrapError) as other_context:
        hsm.unwrap(blob, b"tierspayant.dek.v1|87654321|1")
    assert other_context.value.code == "keyring.unwrap_failed"
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(UnwrapError):
        hsm.unwrap(tampered, b"tierspayant.dek.v1|12345678|1")
    pkcs11 = pytest.importorskip("pkcs11")
    kek = hsm._keys()[hsm.kek_id]
    assert kek[pkcs11.Attribute.EXTRACTABLE] is False
    with pytest.raises(pkcs11.PKCS11Error):
        kek[pkcs11.Attribute.VALUE]  # sensitive: the HSM refuses to show it


def test_given_an_hsm_platform_when_rotating_the_kek_then_lookups_work_throughout(
    hsm: Pkcs11Keyring, seed_insurer: SeedInsurer, tmp_path: Path
) -> None:
    data_dir = tmp_path / "hsm-data"
    settings = load_settings(
        {
            "TIERSPAYANT_DATA_DIR": str(data_dir),
            "TIERSPAYANT_DATABASE_URL": f"sqlite:///{data_dir / 'tierspayant.sqlite3'}",
        }
    )
    engine = make_engine(settings.database_url)
    migrate(engine)
    platform = Platform(settings=settings, engine=engine, key_provider=hsm)
    try:
        seeded, people = enrol(platform, seed_insurer, tmp_path, 10, seed=3)
        old_kek = hsm.kek_id
        done = key_rotation.rotate_kek(platform, ACTOR)
        assert done.new_kek == hsm.kek_id != old_kek
        with engine.connect() as conn:
            assert set(conn.execute(select(data_keys.c.kek_id)).scalars()) == {done.new_kek}
        fresh = Platform(settings=settings, engine=engine, key_provider=hsm)
        assert _all_found(fresh, seeded.amc_number, people)
        assert old_kek in key_rotation.retire_unused_keks(platform, ACTOR)
        assert old_kek not in hsm.kek_ids
        again = Platform(settings=settings, engine=engine, key_provider=hsm)
        assert _all_found(again, seeded.amc_number, people)
    finally:
        platform.close()
