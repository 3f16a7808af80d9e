"""``tierspayant keys export|import`` and ``backup sqlite`` on a real data directory: the
keys leave only sealed under a passphrase, come back byte for byte, never over an existing
keyring without ``--force``; a wrong passphrase or an altered file is refused in French."""

from __future__ import annotations

import base64
import json
import re
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tierspayant.cli.main import app

PASSPHRASE = "une phrase secrète assez longue"


def _env(data: Path, **extra: str) -> dict[str, str]:
    return {"TIERSPAYANT_DATA_DIR": str(data), "COLUMNS": "200", **extra}


def run(data: Path, *args: str, input: str | None = None, **extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env=_env(data, **extra), input=input)
    return result.exit_code, result.output


def with_passphrase(data: Path, *args: str, passphrase: str = PASSPHRASE) -> tuple[int, str]:
    return run(data, *args, TIERSPAYANT_BACKUP_PASSPHRASE=passphrase)


@pytest.fixture
def source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An initialised data directory whose checkpoint signing key exists."""
    monkeypatch.delenv("TIERSPAYANT_DATABASE_URL", raising=False)
    monkeypatch.delenv("TIERSPAYANT_KEYRING", raising=False)
    monkeypatch.delenv("TIERSPAYANT_BACKUP_PASSPHRASE", raising=False)
    data = tmp_path / "source"
    assert run(data, "init")[0] == 0
    code, out = run(data, "audit", "checkpoint", "--out", str(tmp_path / "checkpoints"))
    assert code == 0, out
    return data


def _events(data: Path) -> int:
    code, out = run(data, "audit", "verify")
    assert code == 0, out
    found = re.search(r"intacte : (\d+) événements", out)
    assert found is not None, out
    return int(found.group(1))


def test_keys_exported_then_imported_come_back_byte_for_byte(source: Path, tmp_path: Path) -> None:
    # Given an export of the source's keys
    sealed = tmp_path / "keys.sealed"
    before = _events(source)
    code, out = with_passphrase(source, "keys", "export", "--out", str(sealed))
    assert code == 0, out
    assert "avec clé des points de contrôle" in out
    # Then the export holds no key in clear, is private, and was recorded in the audit log
    keyring = (source / "keyring.json").read_bytes()
    material = json.loads(keyring)["keys"][0]["material"]
    assert material.encode() not in sealed.read_bytes()
    assert stat.S_IMODE(sealed.stat().st_mode) == 0o600
    assert _events(source) == before + 1
    # When it is imported into an empty data directory
    target = tmp_path / "restored"
    code, out = with_passphrase(target, "keys", "import", str(sealed))
    # Then the keyring and the checkpoint key are the same bytes, private
    assert code == 0, out
    assert "trousseau restauré" in out
    for name in ("keyring.json", "audit-checkpoint.key"):
        assert (target / name).read_bytes() == (source / name).read_bytes()
        assert stat.S_IMODE((target / name).stat().st_mode) == 0o600


def test_a_wrong_passphrase_is_refused_in_french_and_installs_nothing(
    source: Path, tmp_path: Path
) -> None:
    sealed = tmp_path / "keys.sealed"
    assert with_passphrase(source, "keys", "export", "--out", str(sealed))[0] == 0
    target = tmp_path / "restored"
    code, out = with_passphrase(
        target, "keys", "import", str(sealed), passphrase=PASSPHRASE + " fausse"
    )
    assert code == 2
    assert "key_export.refused" in out
    assert "phrase secrète incorrecte" in out
    assert not (target / "keyring.json").exists()
    assert not (target / "audit-checkpoint.key").exists()


def test_an_altered_export_is_refused(source: Path, tmp_path: Path) -> None:
    sealed = tmp_path / "keys.sealed"
    assert with_passphrase(source, "keys", "export", "--out", str(sealed))[0] == 0
    document = json.loads(sealed.read_text())
    raw = bytearray(base64.b64decode(document["ciphertext"]))
    raw[0] ^= 0x80
    document["ciphertext"] = base64.b64encode(bytes(raw)).decode()
    sealed.write_text(json.dumps(document))
    target = tmp_path / "restored"
    code, out = with_passphrase(target, "keys", "import", str(sealed))
    assert code == 2
    assert "fichier modifié" in out
    assert not (target / "keyring.json").exists()


def test_an_existing_keyring_is_replaced_only_with_force_and_kept_aside(
    source: Path, tmp_path: Path
) -> None:
    # Given an export of another installation's keys
    other = tmp_path / "other"
    assert run(other, "init")[0] == 0
    sealed = tmp_path / "other.sealed"
    assert with_passphrase(other, "keys", "export", "--out", str(sealed))[0] == 0
    mine = (source / "keyring.json").read_bytes()
    # When it is imported over the source's keyring without --force
    code, out = with_passphrase(source, "keys", "import", str(sealed))
    # Then it is refused and the keyring is unchanged
    assert code == 4
    assert "--force" in out
    assert (source / "keyring.json").read_bytes() == mine
    # When it is imported with --force
    code, out = run(
        source, "keys", "import", str(sealed), "--force", "--passphrase-file", str(_file(tmp_path))
    )
    # Then the keyring is the other one and the replaced one is kept beside it
    assert code == 0, out
    assert (source / "keyring.json").read_bytes() == (other / "keyring.json").read_bytes()
    kept = list(source.glob("keyring.json.replaced-*"))
    assert [k.read_bytes() for k in kept] == [mine]
    # The other installation had no checkpoint key: the source's is left as it was
    assert (source / "audit-checkpoint.key").exists()


def _file(tmp_path: Path) -> Path:
    path = tmp_path / "passphrase.txt"
    path.write_text(PASSPHRASE + "\n", encoding="utf-8")
    return path


def test_an_export_never_overwrites_a_file_and_refuses_a_short_passphrase(
    source: Path, tmp_path: Path
) -> None:
    existing = tmp_path / "existing"
    existing.write_text("keep me")
    code, out = with_passphrase(source, "keys", "export", "--out", str(existing))
    assert code == 4
    assert "backup.exists" in out
    assert existing.read_text() == "keep me"
    code, out = with_passphrase(
        source, "keys", "export", "--out", str(tmp_path / "new"), passphrase="court"
    )
    assert code == 2
    assert "au moins 12 caractères" in out
    assert not (tmp_path / "new").exists()


def test_the_passphrase_can_be_typed_at_a_prompt(source: Path, tmp_path: Path) -> None:
    sealed = tmp_path / "typed.sealed"
    typed = f"{PASSPHRASE}\n{PASSPHRASE}\n"
    code, out = run(source, "keys", "export", "--out", str(sealed), input=typed)
    assert code == 0, out
    assert PASSPHRASE not in out  # hidden input
    code, out = run(tmp_path / "restored", "keys", "import", str(sealed), input=PASSPHRASE + "\n")
    assert code == 0, out


def test_a_sqlite_copy_made_online_holds_the_same_audit_log(source: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.sqlite3"
    events = _events(source)
    code, out = run(source, "backup", "sqlite", "--out", str(copy))
    assert code == 0, out
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    # The copy, opened with the same keyring, has the same intact chain
    url = f"sqlite:///{copy}"
    code, out = run(
        source, "audit", "verify",
        TIERSPAYANT_DATABASE_URL=url, TIERSPAYANT_KEYRING=str(source / "keyring.json"),
    )  # fmt: skip
    assert code == 0, out
    assert f"intacte : {events} événements" in out
    # And a second copy to the same file is refused
    assert run(source, "backup", "sqlite", "--out", str(copy))[0] == 4
