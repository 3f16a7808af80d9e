"""Failures speak: a lost database, a lost Redis or a held lease is one coded line and a
documented exit status; leases of dead processes are taken over at once; a rerun of ``pay``
says what it did this time; a killed beneficiary import leaves its record and audit events
and is found interrupted. On SQLite and PostgreSQL, with real child processes and SIGKILL.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event, select, text
from sqlalchemy.exc import OperationalError
from typer.testing import CliRunner

from tests.conftest import SeededInsurer
from tests.money_support import ACCEPTED, adjudicated_claim, make_provider
from tierspayant.app.platform import Platform
from tierspayant.cli.common import LOG_NAME
from tierspayant.cli.main import app
from tierspayant.cli.money_cmds import pay_report
from tierspayant.demo.synthetic import write_beneficiaries_csv
from tierspayant.domain.payments import payment_run_key
from tierspayant.services import enrolment, payments, run_failures, run_leases
from tierspayant.services.errors import Conflict
from tierspayant.store import audit, runs
from tierspayant.store import enrolment as enrolment_store
from tierspayant.store.beneficiaries import count_beneficiaries
from tierspayant.store.ledger_tables import money_runs
from tierspayant.store.tables import import_runs

PAY_DAY = date(2026, 11, 30)
FILE_DATE = date(2025, 3, 1)
ACTOR = "test:failures"


def at(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def cli_env(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {
        "TIERSPAYANT_DATA_DIR": str(platform.settings.data_dir),
        "TIERSPAYANT_DATABASE_URL": platform.settings.database_url,
        "COLUMNS": "200",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("TIERSPAYANT_DEBUG", raising=False)
    monkeypatch.delenv("TIERSPAYANT_REDIS_URL", raising=False)
    return env


def coded_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("erreur [")]


def assert_one_coded_line(output: str, code: str) -> str:
    """The output holds one coded line, of ``code``, and no traceback."""
    lines = coded_lines(output)
    assert len(lines) == 1, output
    assert lines[0].startswith(f"erreur [{code}] "), output
    assert "Traceback" not in output
    assert "sqlalchemy" not in output.lower() or code == "database.unavailable"
    return lines[0]


# --- a lost database, a lost Redis: one coded line ------------------------------------


def test_a_database_on_a_closed_port_is_one_coded_line_exit_7(
    platform: Platform, cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an initialised data directory whose database URL points at nothing
    if platform.settings.database_url.startswith("sqlite"):
        gone = f"sqlite:///{platform.settings.data_dir}"  # a directory: cannot be opened
    else:
        gone = f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/tierspayant"
    monkeypatch.setenv("TIERSPAYANT_DATABASE_URL", gone)
    # When a command needs it
    result = CliRunner().invoke(app, ["insurers", "list"])
    # Then one coded line in French, exit 7, and the traceback in the log file only
    line = assert_one_coded_line(result.output, "database.unavailable")
    assert result.exit_code == 7
    assert "base de données injoignable" in line
    log = platform.settings.data_dir / "logs" / LOG_NAME
    assert str(log) in line
    assert "Traceback" in log.read_text(encoding="utf-8")
    # And --debug shows the traceback instead
    debug = CliRunner().invoke(app, ["--debug", "insurers", "list"])
    assert debug.exit_code != 0
    assert debug.exception is not None
    assert "OperationalError" in type(debug.exception).__name__


@pytest.fixture
def terminate_on() -> Iterator[Callable[[str], list[int]]]:
    """Arm a PostgreSQL backend's termination: the first statement matching ``needle`` is
    sent on a connection that another connection has just terminated
    (``pg_terminate_backend``), as when the server drops a session mid-run."""
    armed: list[tuple[str, list[int]]] = []
    admins: list[Engine] = []

    def before(conn: Any, cursor: Any, statement: str, *_rest: Any) -> None:
        if conn.dialect.name != "postgresql":
            return
        for needle, fired in armed:
            if needle in statement and not fired:
                pid = int(cursor.connection.info.backend_pid)
                fired.append(pid)
                admin = create_engine(
                    conn.engine.url.render_as_string(hide_password=False),
                    isolation_level="AUTOCOMMIT",
                )
                admins.append(admin)
                with admin.connect() as other:
                    other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

    def arm(needle: str) -> list[int]:
        fired: list[int] = []
        armed.append((needle, fired))
        return fired

    event.listen(Engine, "before_cursor_execute", before)
    try:
        yield arm
    finally:
        event.remove(Engine, "before_cursor_execute", before)
        for admin in admins:
            admin.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("engine_name", ["postgres"], indirect=True)
def test_a_database_dropping_an_import_mid_run_is_one_coded_line_and_a_failed_record(
    platform: Platform,
    cli_env: dict[str, str],
    seed_insurer: Callable[..., SeededInsurer],
    terminate_on: Callable[[str], list[int]],
    tmp_path: Path,
) -> None:
    # Given a beneficiary file, and the server dropping the import's session when its
    # transaction starts merging
    insurer = seed_insurer(platform)
    made = write_beneficiaries_csv(
        tmp_path / "full.csv", 300, seed=3, contracts=insurer.contracts, start=FILE_DATE
    )
    fired = terminate_on("UPDATE import_runs SET file_digest")
    # When the import command runs
    result = CliRunner().invoke(
        app,
        ["import", "beneficiaries", str(made.path), "--insurer", insurer.amc_number,
         "--mode", "full", "--file-date", FILE_DATE.isoformat()],
    )  # fmt: skip
    # Then the session was really terminated, and the command says so in one line, exit 7
    assert fired, "the import never reached its merge"
    line = assert_one_coded_line(result.output, "database.unavailable")
    assert result.exit_code == 7, result.output
    assert "terminating connection" in line or "closed" in line
    # And the run left its record (failed) and its start and error events; nothing applied
    with platform.engine.connect() as conn:
        rows = conn.execute(
            select(import_runs.c.id, import_runs.c.status).where(
                import_runs.c.insurer_id == insurer.id
            )
        ).all()
        assert [r.status for r in rows] == ["failed"]
        decisions = _import_events(conn, rows[0].id)
        assert count_beneficiaries(conn, insurer.id) == 0
    assert decisions == ["start", "error"]


@pytest.mark.postgres
@pytest.mark.parametrize("engine_name", ["postgres"], indirect=True)
def test_a_payment_run_whose_session_is_terminated_mid_run_frees_its_lease_and_resumes(
    platform: Platform,
    seed_insurer: Callable[..., SeededInsurer],
    terminate_on: Callable[[str], list[int]],
    tmp_path: Path,
) -> None:
    # Given three providers to pay, and the server terminating the run's session when it
    # records the second payment
    day = date(2026, 11, 9)  # a date of its own (one PostgreSQL database per module)
    platform.clock = at(datetime(2026, 11, 9, 9, tzinfo=UTC))
    insurer = seed_insurer(platform)
    rng = random.Random(14)
    for _ in range(3):
        provider = make_provider(platform, rng)
        adjudicated_claim(
            platform, insurer_id=insurer.id, amc_number=insurer.amc_number,
            provider_id=provider.id,
        )  # fmt: skip
    seen: list[int] = []

    def count(point: str, n: int) -> None:
        if point == payments.COMMITTED:
            seen.append(n)
            if n == 1:
                armed.append(terminate_on("INSERT INTO payments "))

    armed: list[list[int]] = []
    # When the run meets it
    with pytest.raises(OperationalError) as lost:
        payments.run_payments(platform, day, out_dir=tmp_path, progress=count)
    # Then the failure is the lost session, which reads as database.unavailable
    refusal = run_failures.as_refusal(lost.value)
    assert refusal is not None
    assert refusal.code == "database.unavailable"
    assert seen == [1]
    assert armed[0], "the session was never terminated"
    # And the lease was released on the way out (the server still answers): no wait
    with platform.engine.connect() as conn:
        run = runs.read_run(conn, payment_run_key(day))
    assert run is not None
    assert (run.status, run.lock_owner) == ("open", None)
    # And the rerun resumes at once, pays the two others, and says so
    resumed = payments.run_payments(platform, day, out_dir=tmp_path)
    assert (resumed.resumed, resumed.new_payments, resumed.providers) == (True, 2, 3)


def test_a_redis_on_a_closed_port_is_one_coded_line_exit_8(
    platform: Platform, cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given Redis configured on a port nothing listens on
    monkeypatch.setenv("TIERSPAYANT_REDIS_URL", f"redis://127.0.0.1:{closed_port()}/0")
    # When a command reads the guard's counters there
    result = CliRunner().invoke(app, ["guard", "daily-figures"])
    # Then one coded line in French, exit 8
    line = assert_one_coded_line(result.output, "redis.unavailable")
    assert result.exit_code == 8, result.output
    assert "Redis injoignable" in line
    assert "TIERSPAYANT_REDIS_URL" in line


# --- leases ----------------------------------------------------------------------------

HOLDER = """
import os, sys, time
from datetime import date
from pathlib import Path
from tierspayant.app.platform import open_platform
from tierspayant.config import load_settings
from tierspayant.services import payments, run_leases

day = date.fromisoformat(sys.argv[3])
platform = open_platform(load_settings())
run_leases.acquire_run(
    platform, run_key=payments.payment_run_key(day), kind="payment", run_date=day, period=None
)
Path(os.environ["MARKER"]).write_text("held")
time.sleep(120)  # killed here, the lease held
"""


def _hold_lease(platform: Platform, tmp_path: Path, day: date) -> subprocess.Popen[bytes]:
    script = tmp_path / "holder.py"
    script.write_text(HOLDER, encoding="utf-8")
    marker = tmp_path / "held"
    env = {
        **os.environ,
        "TIERSPAYANT_DATA_DIR": str(platform.settings.data_dir),
        "TIERSPAYANT_DATABASE_URL": platform.settings.database_url,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "MARKER": str(marker),
    }
    child = subprocess.Popen(
        [sys.executable, str(script), "pay", "--date", day.isoformat()],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not marker.exists():
        if child.poll() is not None or time.monotonic() > deadline:
            child.kill()
            pytest.fail(f"the holder never took the lease: {child.communicate()[1].decode()}")
        time.sleep(0.05)
    return child


def _kill(child: subprocess.Popen[bytes]) -> None:
    child.send_signal(signal.SIGKILL)
    child.communicate()


def _session_ended(platform: Platform, run_id: int) -> None:
    """Wait until PostgreSQL has ended a killed importer's session, and with it released
    the run's advisory lock: the server learns of the closed socket when the backend next
    reads from it, a moment after the kill (longer when the kill came mid-statement, seen
    as a CI failure). Until then the run looks alive, as it should; the test is about what
    the next import finds once it is dead. SQLite's file lock goes with the process."""
    if platform.engine.dialect.name != "postgresql":
        return
    deadline = time.monotonic() + 30
    while True:
        with platform.engine.connect() as conn:
            held = conn.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND classid = :space AND objid = :run AND objsubid = 2"
                ),
                {"space": enrolment_store._LOCK_SPACE, "run": run_id},
            ).scalar_one()
        if not held:
            return
        assert time.monotonic() < deadline, "the killed importer's session never ended"
        time.sleep(0.05)


def test_a_lease_held_by_a_live_process_is_refused_with_who_and_until_when_then_taken_over_once_it_is_killed(  # noqa: E501
    platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path
) -> None:
    # Given a claim to pay, and another process holding the payment run's lease
    insurer = seed_insurer(platform)
    provider = make_provider(platform, random.Random(11))
    adjudicated_claim(
        platform, insurer_id=insurer.id, amc_number=insurer.amc_number, provider_id=provider.id
    )
    child = _hold_lease(platform, tmp_path, PAY_DAY)
    try:
        # When this process runs the same date
        with pytest.raises(Conflict) as refused:
            payments.run_payments(platform, PAY_DAY, out_dir=tmp_path / "out")
        # Then it is refused in French, naming the host, the process, its command, the end
        message = refused.value.message
        assert refused.value.code == "run.locked"
        assert f"hôte {socket.gethostname()[:50]}" in message
        assert f"processus {child.pid}" in message
        assert f"holder.py pay --date {PAY_DAY.isoformat()}" in message
        assert "jusqu'au 20" in message
        assert " UTC" in message
    finally:
        _kill(child)
    # And once the holder is SIGKILLed, its lease is taken over at once (no waiting for
    # its end): the run pays
    started = time.monotonic()
    summary = payments.run_payments(platform, PAY_DAY, out_dir=tmp_path / "out")
    assert summary.new_payments == 1
    assert summary.net_cents > 0
    assert time.monotonic() - started < 30
    with platform.engine.connect() as conn:
        run = runs.read_run(conn, summary.run_key)
    assert run is not None
    assert run.status == "done"
    assert run.lock_owner is None


def test_the_pay_command_prints_the_held_lease_as_one_coded_line_exit_4(
    platform: Platform, cli_env: dict[str, str], tmp_path: Path
) -> None:
    # Given another process holding today's payment run (the command uses the wall clock)
    today = platform.today()
    child = _hold_lease(platform, tmp_path, today)
    try:
        # When the command runs it
        result = CliRunner().invoke(app, ["pay", "--date", today.isoformat()])
    finally:
        _kill(child)
    # Then one coded line naming the holder, exit 4
    line = assert_one_coded_line(result.output, "run.locked")
    assert result.exit_code == 4
    assert f"processus {child.pid}" in line
    assert "jusqu'au" in line


def _foreign_lease(platform: Platform, run_key: str, now: datetime) -> None:
    """A lease written by a process of another host at ``now``, never renewed since."""
    with platform.engine.begin() as conn:
        runs.create_run(
            conn,
            run_key=run_key,
            kind="payment",
            run_date=PAY_DAY,
            period=None,
            owner="batch-2.example:4242:0badcafe:tierspayant pay --date 2026-11-30",
            now=now,
            ttl=run_leases.LEASE,
        )


def test_a_lease_of_another_host_is_taken_over_once_its_heartbeat_is_older_than_the_lease(
    platform: Platform,
) -> None:
    # Given a lease taken on another host at 09:00 and never renewed since
    nine = datetime(2026, 11, 30, 9, tzinfo=UTC)
    key = "pay:foreign-host"
    _foreign_lease(platform, key, nine)
    # When a worker asks for the run 30 s later: refused, naming that host and command
    platform.clock = at(nine + timedelta(seconds=30))
    with pytest.raises(Conflict) as refused:
        run_leases.acquire_run(platform, run_key=key, kind="payment", run_date=PAY_DAY, period=None)
    assert "hôte batch-2.example, processus 4242" in refused.value.message
    assert "« tierspayant pay --date 2026-11-30 »" in refused.value.message
    assert "jusqu'au 2026-11-30 09:01:00 UTC" in refused.value.message
    # Then, once the heartbeat is older than the lease (61 s), the run is taken over
    platform.clock = at(nine + run_leases.LEASE + timedelta(seconds=1))
    _, owner = run_leases.acquire_run(
        platform, run_key=key, kind="payment", run_date=PAY_DAY, period=None
    )
    run_leases.release_run(platform, key, owner, done=False)
    assert owner.startswith(f"{socket.gethostname()[:50]}:{os.getpid()}:")


def test_a_live_holder_keeps_its_lease_by_its_heartbeat_however_long_its_work(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a run held by this process, its heartbeat quickened for the test
    monkeypatch.setattr(run_leases, "HEARTBEAT", 0.05)
    nine = datetime(2026, 11, 30, 9, tzinfo=UTC)
    platform.clock = at(nine)
    key = "pay:heartbeat"
    _, owner = run_leases.acquire_run(
        platform, run_key=key, kind="payment", run_date=PAY_DAY, period=None
    )
    try:
        # When its work lasts past the lease's first end (the clock moves 50 s, then 100 s)
        for seconds in (50, 100):
            platform.clock = at(nine + timedelta(seconds=seconds))
            wanted = nine + timedelta(seconds=seconds) + run_leases.LEASE
            deadline = time.monotonic() + 10
            while _lease_end(platform, key) < wanted:
                assert time.monotonic() < deadline, "the heartbeat did not renew the lease"
                time.sleep(0.02)
        # Then another worker is still kept out (the lease was renewed, not left to expire),
        # with a foreign owner so that only the heartbeat's end can keep it out
        with platform.engine.begin() as conn:
            conn.execute(
                money_runs.update()
                .where(money_runs.c.run_key == key)
                .values(lock_owner="batch-2.example:1:00000000:x")
            )
        with pytest.raises(Conflict):
            run_leases.acquire_run(
                platform, run_key=key, kind="payment", run_date=PAY_DAY, period=None
            )
    finally:
        run_leases.release_run(platform, key, owner, done=False)


def _lease_end(platform: Platform, run_key: str) -> datetime:
    with platform.engine.connect() as conn:
        run = runs.read_run(conn, run_key)
    assert run is not None
    assert run.lock_expires_at is not None
    end = run.lock_expires_at
    return end if end.tzinfo else end.replace(tzinfo=UTC)


# --- a rerun says what it did this time ------------------------------------------------


def test_a_rerun_of_a_finished_date_says_nothing_new_and_why_then_the_next_date_pays(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path
) -> None:
    # Given a date paid at 09:00
    nine = datetime(
        2026, 11, 23, 9, tzinfo=UTC
    )  # a date of its own (one PostgreSQL database per module)
    platform.clock = at(nine)
    insurer = seed_insurer(platform)
    rng = random.Random(12)
    first, second = make_provider(platform, rng), make_provider(platform, rng)
    adjudicated_claim(
        platform, insurer_id=insurer.id, amc_number=insurer.amc_number, provider_id=first.id
    )
    paid = payments.run_payments(platform, nine.date(), out_dir=tmp_path / "a")
    assert (paid.new_payments, paid.resumed, paid.already_done) == (1, False, False)
    assert pay_report(paid)[0].startswith(f"pay:{nine.date()}: 1 prestataires, 1 virements")
    # And a claim adjudicated after that run's cut-off
    platform.clock = at(nine + timedelta(hours=2))
    adjudicated_claim(
        platform, insurer_id=insurer.id, amc_number=insurer.amc_number, provider_id=second.id,
        lines=(ACCEPTED,), adjudicated_at=nine + timedelta(hours=1),
    )  # fmt: skip
    # When the same date is run again
    again = payments.run_payments(platform, nine.date(), out_dir=tmp_path / "a")
    # Then it pays nothing new and says so, with the reason and what waits
    assert (again.new_payments, again.new_net_cents, again.already_done) == (0, 0, True)
    assert (again.providers, again.net_cents) == (paid.providers, paid.net_cents)
    assert again.unpaid_providers == 1
    report = pay_report(again)
    assert "rien de nouveau à payer" in report[0]
    assert "est close (clôture 2026-11-23 09:00 UTC" in report[0]
    assert "un seul fichier de virements par date d'exécution" in report[1]
    assert report[2].startswith("1 prestataires ont des lignes adjudiquées non payées")
    # And the next date pays the new claim, and says how much
    platform.clock = at(datetime(2026, 11, 24, 9, tzinfo=UTC))
    later = payments.run_payments(platform, date(2026, 11, 24), out_dir=tmp_path / "b")
    assert later.new_payments == 1
    assert later.new_net_cents == ACCEPTED.accepted
    assert later.unpaid_providers == 0
    assert pay_report(later) == [
        f"pay:2026-11-24: 1 prestataires, 1 virements, 3.50 EUR -> {tmp_path / 'b'}"
    ]


class Interrupt(Exception):
    pass


def test_a_resumed_run_says_what_it_paid_this_time(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path
) -> None:
    # Given three providers to pay, and a run that stops after the first one committed
    # A date of its own (one PostgreSQL database per module: PAY_DAY is other tests')
    platform.clock = at(datetime(2026, 11, 26, 9, tzinfo=UTC))
    insurer = seed_insurer(platform)
    rng = random.Random(13)
    for _ in range(3):
        provider = make_provider(platform, rng)
        adjudicated_claim(
            platform, insurer_id=insurer.id, amc_number=insurer.amc_number,
            provider_id=provider.id,
        )  # fmt: skip

    def stop_after_first(point: str, n: int) -> None:
        if point == payments.COMMITTED and n == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        payments.run_payments(
            platform, date(2026, 11, 26), out_dir=tmp_path, progress=stop_after_first
        )
    # When it is run again
    resumed = payments.run_payments(platform, date(2026, 11, 26), out_dir=tmp_path)
    # Then it says it resumed, and what it paid this time apart from the total
    assert (resumed.resumed, resumed.already_done) == (True, False)
    assert (resumed.new_payments, resumed.providers) == (2, 3)
    assert resumed.new_net_cents == 2 * ACCEPTED.accepted
    assert (
        "reprise d'une exécution interrompue: cette fois 2 prestataires" in pay_report(resumed)[0]
    )


# --- killed beneficiary imports --------------------------------------------------------

IMPORTER = """
import os, sys, time
from datetime import date
from pathlib import Path
from tierspayant.app.platform import open_platform
from tierspayant.config import load_settings
from tierspayant.services.enrolment import import_beneficiaries

amc, path, stop_at, marker = sys.argv[1:]
calls = []

def progress(done, total):
    calls.append(done)
    if len(calls) == int(stop_at):
        Path(marker).write_text(str(done))
        time.sleep(120)  # killed here

platform = open_platform(load_settings())
import_beneficiaries(platform, amc, Path(path), mode="full", file_date=date(2025, 3, 1),
                     actor="test:child", progress=progress, workers=0)
"""
# Progress calls of a 2,500-line import: the start, after each 1,000 lines, the end of the
# file, and once more inside the transaction after the merge.
PROGRESS_CALLS = 5


def _import_events(conn: Any, run_id: int) -> list[str]:
    return [
        e.decision
        for e in audit.iter_events(conn)
        if e.action == enrolment.ACTION and e.detail.get("run") == run_id
    ]


def test_a_beneficiary_import_killed_at_a_random_point_leaves_its_record_and_is_found_interrupted(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path
) -> None:
    # Given a full file, and a child importing it, SIGKILLed at a random progress point
    seed = random.randrange(10**6)
    stop_at = random.Random(seed).randint(1, PROGRESS_CALLS)
    why = f"seed {seed}: killed at progress call {stop_at}"
    insurer = seed_insurer(platform)
    made = write_beneficiaries_csv(
        tmp_path / "full.csv", 2500, seed=4, contracts=insurer.contracts, start=FILE_DATE
    )
    script = tmp_path / "importer.py"
    script.write_text(IMPORTER, encoding="utf-8")
    marker = tmp_path / "marker"
    env = {
        **os.environ,
        "TIERSPAYANT_DATA_DIR": str(platform.settings.data_dir),
        "TIERSPAYANT_DATABASE_URL": platform.settings.database_url,
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    child = subprocess.Popen(
        [sys.executable, str(script), insurer.amc_number, str(made.path), str(stop_at),
         str(marker)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not marker.exists():
        if child.poll() is not None or time.monotonic() > deadline:
            child.kill()
            pytest.fail(f"{why}: never reached: {child.communicate()[1].decode()[-2000:]}")
        time.sleep(0.05)
    try:
        # While it lives, its record is running, with its start event, and nobody marks it
        # interrupted
        with platform.engine.connect() as conn:
            (run_id,) = conn.execute(
                select(import_runs.c.id).where(
                    import_runs.c.insurer_id == insurer.id, import_runs.c.status == "running"
                )
            ).scalars()
            assert _import_events(conn, run_id) == ["start"], why
        assert enrolment.interrupted_runs(platform, ACTOR) == [], why
    finally:
        _kill(child)
    _session_ended(platform, run_id)
    # When the next import of the insurer runs
    summary = enrolment.import_beneficiaries(
        platform, insurer.amc_number, made.path, mode="full", file_date=FILE_DATE,
        actor=ACTOR, workers=0,
    )  # fmt: skip
    # Then it names the killed run as interrupted, and applies the whole file (the killed
    # run applied nothing)
    assert [run.id for run in summary.interrupted_before] == [run_id], why
    assert summary.inserted == 2500 - made.bad_lines, why
    with platform.engine.connect() as conn:
        statuses = dict(
            conn.execute(
                select(import_runs.c.id, import_runs.c.status).where(
                    import_runs.c.insurer_id == insurer.id
                )
            ).all()
        )
        assert statuses == {run_id: "interrupted", summary.run_id: "done"}, why
        assert _import_events(conn, run_id) == ["start", "error"], why
        assert _import_events(conn, summary.run_id) == ["start", "allow"], why
        assert count_beneficiaries(conn, insurer.id) == 2500 - made.bad_lines, why
    # And the CLI's list shows it interrupted, in French
    rows = enrolment.import_runs(platform, insurer.amc_number, ACTOR)
    assert [(r.id, r.status) for r in rows] == [(summary.run_id, "done"), (run_id, "interrupted")]


def test_the_import_command_says_the_previous_run_was_interrupted_and_import_runs_shows_it(
    platform: Platform,
    cli_env: dict[str, str],
    seed_insurer: Callable[..., SeededInsurer],
    tmp_path: Path,
) -> None:
    # Given an import SIGKILLed while it reads its file (first progress call)
    insurer = seed_insurer(platform)
    made = write_beneficiaries_csv(
        tmp_path / "full.csv", 50, seed=6, contracts=insurer.contracts, start=FILE_DATE
    )
    script = tmp_path / "importer.py"
    script.write_text(IMPORTER, encoding="utf-8")
    marker = tmp_path / "marker"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen(
        [sys.executable, str(script), insurer.amc_number, str(made.path), "1", str(marker)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, child.communicate()
        time.sleep(0.05)
    _kill(child)
    with platform.engine.connect() as conn:
        killed = conn.execute(
            select(import_runs.c.id).where(import_runs.c.insurer_id == insurer.id)
        ).scalar_one()
    _session_ended(platform, int(killed))
    # When the operator runs the import again, then lists the insurer's imports
    again = CliRunner().invoke(
        app,
        ["import", "beneficiaries", str(made.path), "--insurer", insurer.amc_number,
         "--mode", "full", "--file-date", FILE_DATE.isoformat()],
    )  # fmt: skip
    listed = CliRunner().invoke(app, ["import", "runs", "--insurer", insurer.amc_number])
    # Then the import says the killed run was interrupted, and the list shows it so
    assert again.exit_code == 0, again.output
    assert f"l'import n° {killed} (full, démarré le " in again.output
    assert "a été interrompu avant sa fin: rien n'en a été appliqué" in again.output
    assert listed.exit_code == 0, listed.output
    shown = {
        cells[1]: cells[4]
        for cells in (line.split("│") for line in listed.output.splitlines())
        if len(cells) > 4 and cells[1].strip().isdigit()
    }
    assert {k.strip(): v.strip() for k, v in shown.items()} == {
        str(killed): "interrompu",
        str(killed + 1): "terminé",
    }
    with platform.engine.connect() as conn:
        statuses = conn.execute(
            select(import_runs.c.status)
            .where(import_runs.c.insurer_id == insurer.id)
            .order_by(import_runs.c.id)
        ).scalars()
        assert list(statuses) == ["interrupted", "done"]
