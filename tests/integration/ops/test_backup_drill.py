"""The restore drill on a real PostgreSQL cluster backed up by pgBackRest with WAL archiving.

The module creates its own cluster (never the 5432 one) in a temporary directory: WAL
archived with ``pgbackrest archive-push``, a full backup, then the platform writes a
small data set (migrations, beneficiary imports, invoices adjudicated, a payment run,
a signed audit checkpoint), the keys are exported under a passphrase, a recovery target
is noted, more is written (new beneficiaries, a second checkpoint), the source is
stopped. Each test restores into a scratch cluster with ``tierspayant backup drill``:
to the target (what came after is absent), to the end of the archive (everything is
there), and two failures (a sample that does not match, a wrong passphrase) that must
exit non-zero and still stop and remove the scratch cluster.

Skipped only when pgBackRest or the PostgreSQL binaries are missing and
``TIERSPAYANT_REQUIRE_SERVICES`` is unset; with it set (CI), their absence fails.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.conftest import services_required
from tests.support import world as core
from tierspayant.app.platform import Platform, initialise
from tierspayant.cli.main import app
from tierspayant.config import load_settings
from tierspayant.demo.builder import DEMO_INSURERS, build_demo, demo_catalogue
from tierspayant.domain.care import CareDomain
from tierspayant.services import checkpoints, providers
from tierspayant.services.eligibility import RightsCheck, check_rights
from tierspayant.services.identification import CardData

PG_BIN = Path(os.environ.get("TIERSPAYANT_PG_BIN", "/usr/lib/postgresql/15/bin"))
STANZA = "drill"
DATABASE = "tierspayant"
PASSPHRASE = "exercice de restauration 2026"
RUN_AS = "postgres" if os.geteuid() == 0 else None

pytestmark = pytest.mark.slow  # a cluster, a backup, a data set and several restores


def _tools_missing() -> list[str]:
    missing = [] if shutil.which("pgbackrest") else ["pgbackrest"]
    missing += [tool for tool in ("initdb", "pg_ctl") if not (PG_BIN / tool).exists()]
    return missing


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run(*args: str) -> str:
    command = ["runuser", "-u", RUN_AS, "--", *args] if RUN_AS else list(args)
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"{args[0]} failed: {done.stderr}{done.stdout}"
    return done.stdout


def _own(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    if RUN_AS:
        shutil.chown(path, user=RUN_AS)
    return path


def _stop_every_cluster(root: Path) -> None:
    """Stop whatever cluster still runs under ``root`` (a failed test's included)."""
    for pid_file in root.glob("**/postmaster.pid"):
        subprocess.run(
            [*(["runuser", "-u", RUN_AS, "--"] if RUN_AS else []), str(PG_BIN / "pg_ctl"),
             "-D", str(pid_file.parent), "-m", "immediate", "-w", "stop"],
            capture_output=True, timeout=60, check=False,
        )  # fmt: skip


@dataclass(frozen=True)
class Lab:
    root: Path
    config: Path
    key_export: Path
    passphrase_file: Path
    checkpoints: Path
    target: datetime
    incident_at: datetime
    before: dict[str, Any]  # a sample enrolled before the target (covered)
    after: dict[str, Any]  # a sample enrolled after the target (covered on the source)


def _covered(platform: Platform, am_number: str, card: CardData) -> bool:
    answer = check_rights(
        platform,
        core.provider_principal(providers.get_provider(platform, am_number), "drill-test"),
        RightsCheck(card, platform.today(), (CareDomain.PHAR,)),
    )
    return any(right.covered for right in answer.rights)


def _sample(am_number: str, card: CardData, covered: bool) -> dict[str, Any]:
    return {
        "provider": am_number,
        "amc_number": card.amc_number,
        "nir": card.nir,
        "birth_date": card.birth_date.isoformat(),
        "birth_rank": card.birth_rank,
        "domain": "PHAR",
        "covered": covered,
    }


def _write_source(root: Path, port: int, cli: CliRunner) -> Lab:
    """Everything the source cluster lives through; stopped at the end (the incident)."""
    config, source = root / "pgbackrest.conf", root / "source"
    socket_dir = _own(root / "run-source")
    for name in ("repo", "log", "lock"):
        _own(root / name)
    config.write_text(
        f"[global]\nrepo1-path={root / 'repo'}\nrepo1-retention-full=2\n"
        f"log-path={root / 'log'}\nlock-path={root / 'lock'}\n"
        "log-level-console=warn\nlog-level-file=info\nstart-fast=y\ncompress-type=lz4\n"
        f"[{STANZA}]\npg1-path={source}\npg1-port={port}\npg1-socket-path={socket_dir}\n",
        encoding="utf-8",
    )
    _run(str(PG_BIN / "initdb"), "-D", str(source), "-U", "postgres", "--auth=trust",
         "-E", "UTF8", "--locale=C.UTF-8")  # fmt: skip
    archive = f"pgbackrest --config={config} --stanza={STANZA} archive-push %p"
    with (source / "postgresql.conf").open("a", encoding="utf-8") as conf:
        conf.write(
            f"port={port}\nlisten_addresses='127.0.0.1'\nunix_socket_directories='{socket_dir}'\n"
            f"wal_level=replica\narchive_mode=on\narchive_command='{archive}'\n"
            "archive_timeout=60\nfsync=off\nsynchronous_commit=on\n"
        )
    _run(str(PG_BIN / "pg_ctl"), "-D", str(source), "-l", str(root / "source.log"), "-w", "start")
    _run(str(PG_BIN / "createdb"), "-h", str(socket_dir), "-p", str(port), DATABASE)
    pgbackrest = ["pgbackrest", f"--config={config}", f"--stanza={STANZA}"]
    _run(*pgbackrest, "stanza-create")
    _run(*pgbackrest, "--type=full", "backup")

    app_dir = root / "app"
    settings = {
        "TIERSPAYANT_DATA_DIR": str(app_dir),
        "TIERSPAYANT_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:{port}/{DATABASE}",
        "TIERSPAYANT_KEYRING": str(app_dir / "keyring.json"),
    }
    checkpoint_dir = root / "checkpoints"
    platform = initialise(load_settings(settings))
    try:
        demo = build_demo(platform, beneficiaries=120, providers_count=8, seed=4173, claims=40)
        assert demo.paid_cents > 0  # a payment run moved money
        checkpoints.write_checkpoint(platform, checkpoint_dir)
        pharmacy = demo.provider_am_number
        first = CardData(
            demo.sample_card["amc_number"],
            date.fromisoformat(demo.sample_card["birth_date"]),
            demo.sample_card["nir"],
            int(demo.sample_card["birth_rank"]),
        )
        assert _covered(platform, pharmacy, first)
        passphrase_file = root / "passphrase"
        passphrase_file.write_text(PASSPHRASE + "\n", encoding="utf-8")
        key_export = root / "keys.sealed"
        done = cli.invoke(
            app,
            ["keys", "export", "--out", str(key_export), "--passphrase-file", str(passphrase_file)],
            env=settings,
        )
        assert done.exit_code == 0, done.output
        _run(*pgbackrest, "check")  # switches the WAL and waits until it is archived
        time.sleep(1.1)
        target = datetime.now(UTC)
        time.sleep(1.1)

        amc, _, _, catalogue_file = DEMO_INSURERS[1]
        contracts = [str(c["code"]) for c in demo_catalogue(catalogue_file)["contracts"]]  # type: ignore[attr-defined]
        later = core.enrol(
            platform, amc, 4, 990_017, contracts, date(platform.today().year, 1, 1),
            path=root / "later.csv", mode="incremental", file_date=platform.today(),
        )  # fmt: skip
        covered_later = [p for p in later if _covered(platform, pharmacy, p.card_data())]
        assert covered_later, "the people enrolled after the target are covered on the source"
        checkpoints.write_checkpoint(platform, checkpoint_dir)
    finally:
        platform.close()
    _run(*pgbackrest, "check")
    incident_at = datetime.now(UTC)
    _run(str(PG_BIN / "pg_ctl"), "-D", str(source), "-m", "fast", "-w", "stop")
    return Lab(
        root=root,
        config=config,
        key_export=key_export,
        passphrase_file=passphrase_file,
        checkpoints=checkpoint_dir,
        target=target,
        incident_at=incident_at,
        before=_sample(pharmacy, first, True),
        after=_sample(pharmacy, covered_later[0].card_data(), True),
    )


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    missing = _tools_missing()
    if missing:
        message = f"restore drill needs {', '.join(missing)}"
        if services_required():
            pytest.fail(message + " (TIERSPAYANT_REQUIRE_SERVICES=1)")
        pytest.skip(message)
    root = Path(tempfile.mkdtemp(prefix="tp-backup-drill-"))
    root.chmod(0o755)
    _own(root)
    try:
        yield _write_source(root, _free_port(), CliRunner())
    finally:
        _stop_every_cluster(root)
        shutil.rmtree(root, ignore_errors=True)


def _drill(lab: Lab, name: str, samples: list[dict[str, Any]], *extra: str) -> tuple[int, str]:
    scratch = lab.root / f"scratch-{name}"
    samples_file = lab.root / f"samples-{name}.json"
    samples_file.write_text(json.dumps(samples), encoding="utf-8")
    args = [
        "backup", "drill", "--pgbackrest-config", str(lab.config), "--stanza", STANZA,
        "--scratch", str(scratch), "--port", str(_free_port()), "--keys", str(lab.key_export),
        "--database", DATABASE, "--checkpoints", str(lab.checkpoints),
        "--samples", str(samples_file), "--passphrase-file", str(lab.passphrase_file),
        *(["--run-as", RUN_AS] if RUN_AS else []), "--pg-bin", str(PG_BIN), *extra,
    ]  # fmt: skip
    done = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert not (scratch / "pgdata").exists(), "the scratch cluster is removed after the drill"
    return done.exit_code, done.output


def _report(output: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    checks = {line["check"]: line for line in lines if line["event"] == "check"}
    drill = next(line for line in lines if line["event"] == "drill")
    return drill, checks


def test_a_restore_to_the_target_time_has_what_came_before_and_nothing_after(lab: Lab) -> None:
    # Given the person enrolled after the target: absent from a restore to the target
    after = {**lab.after, "covered": False}
    # When the drill restores to the target
    code, output = _drill(lab, "target", [lab.before, after], "--target", lab.target.isoformat())
    # Then every check passes and only the checkpoint signed before the target counts
    assert code == 0, output
    drill, checks = _report(output)
    assert set(checks) == {"audit_chain", "checkpoints", "ledger", "rights_samples"}
    assert all(check["ok"] for check in checks.values()), checks
    assert checks["checkpoints"]["checkpoints"] == 1
    assert checks["ledger"]["postings"] > 0
    assert checks["audit_chain"]["events"] > 0
    # And the figures: the last transaction recovered is just before the target
    assert drill["target"] == lab.target.isoformat()
    replayed = datetime.fromisoformat(drill["last_replayed_at"])
    assert replayed <= lab.target
    assert 0 <= drill["data_loss_seconds"] < 10
    assert drill["total_seconds"] > 0
    assert drill["database_bytes"] > 1_000_000
    assert drill["last_archived_wal"]
    assert "Exercice réussi" in output
    assert "Fenêtre de perte de données" in output


def test_a_restore_to_the_end_of_the_archive_has_everything(lab: Lab) -> None:
    # When the drill restores to the end of the archive, the incident being the stop
    code, output = _drill(
        lab, "latest", [lab.before, lab.after], "--incident-at", lab.incident_at.isoformat()
    )
    # Then the person enrolled after the target is there, and both checkpoints agree
    assert code == 0, output
    drill, checks = _report(output)
    assert all(check["ok"] for check in checks.values()), checks
    assert checks["checkpoints"]["checkpoints"] == 2
    assert drill["target"] is None
    replayed = datetime.fromisoformat(drill["last_replayed_at"])
    assert lab.target < replayed <= lab.incident_at
    assert 0 <= drill["data_loss_seconds"] < 10


def test_a_sample_that_does_not_match_fails_the_drill(lab: Lab) -> None:
    # Given a sample expecting the person enrolled after the target, restored to the
    # target, and a sample naming a provider the restored data does not have
    unknown = {**lab.before, "provider": "999999999"}
    samples = [lab.before, lab.after, unknown]
    # When the drill runs
    code, output = _drill(lab, "mismatch", samples, "--target", lab.target.isoformat())
    # Then it exits 1, names the samples' positions only, and says it failed
    assert code == 1, output
    _, checks = _report(output)
    assert checks["rights_samples"]["ok"] is False
    assert checks["rights_samples"]["mismatched"] == [2, 3]
    assert checks["ledger"]["ok"] is True
    assert lab.after["nir"] not in output
    assert "ÉCHEC" in output


def test_a_wrong_passphrase_stops_the_drill_before_any_restore(lab: Lab) -> None:
    # Given a wrong passphrase for the key export
    wrong = lab.root / "wrong-passphrase"
    wrong.write_text("not the passphrase of this export", encoding="utf-8")
    scratch = lab.root / "scratch-wrong"
    args = [
        "backup", "drill", "--pgbackrest-config", str(lab.config), "--stanza", STANZA,
        "--scratch", str(scratch), "--port", str(_free_port()), "--keys", str(lab.key_export),
        "--database", DATABASE, "--passphrase-file", str(wrong),
        *(["--run-as", RUN_AS] if RUN_AS else []), "--pg-bin", str(PG_BIN),
    ]  # fmt: skip
    done = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    # Then a coded French refusal, a non-zero exit, and nothing restored or left behind
    assert done.exit_code == 2, done.output
    assert "key_export.refused" in done.output
    assert "phrase secrète incorrecte" in done.output
    assert not (scratch / "pgdata").exists()
    assert not (scratch / "keys").exists()


def test_a_scratch_directory_in_use_is_refused_and_left_alone(lab: Lab) -> None:
    # Given a scratch directory that already holds something (another drill kept running)
    scratch = _own(lab.root / "scratch-busy")
    (scratch / "pgdata").mkdir()
    kept = scratch / "pgdata" / "PG_VERSION"
    kept.write_text("15\n")
    args = [
        "backup", "drill", "--pgbackrest-config", str(lab.config), "--stanza", STANZA,
        "--scratch", str(scratch), "--port", str(_free_port()), "--keys", str(lab.key_export),
        "--passphrase-file", str(lab.passphrase_file), "--pg-bin", str(PG_BIN),
    ]  # fmt: skip
    done = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    # Then it is refused (conflict) and nothing in it is touched
    assert done.exit_code == 4, done.output
    assert "backup.exists" in done.output
    assert kept.read_text() == "15\n"
