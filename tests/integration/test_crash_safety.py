"""A payment run killed with SIGKILL at chosen points, then run again, ends exactly as a
run that was never interrupted: same files byte for byte, same ledger, no line paid twice.

Two databases get the same data (twins). The clean twin is paid in one go. The crashy twin
is paid by a child process that stops at a progress point — inside a provider's
transaction, between providers, with the transfer file half-renamed, among the remittance
files — writes a marker, and waits; the test sees the marker and kills it with SIGKILL.
A second child then reruns the same run, on the same clock: it must take over the dead
worker's lease, finish the work and rewrite the files.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text

from tests.conftest import POSTGRES_SERVER_URL, services_required
from tests.money_support import ACCEPTED, REDUCED, REJECTED, Line, adjudicated_claim, make_provider
from tierspayant.app.platform import Platform, initialise
from tierspayant.config import load_settings
from tierspayant.security.principal import AuthStrength, Principal, PrincipalKind
from tierspayant.services import insurers, overpayments, payments
from tierspayant.services.errors import Conflict
from tierspayant.store import ledger
from tierspayant.store.ledger_tables import payment_lines

FIRST_DAY = date(2026, 5, 4)
PAY_DAY = date(2026, 5, 5)
CLOCK = datetime(2026, 5, 5, 9, tzinfo=UTC)
AMCS = ("31000017", "69000019")
BIG = Line("C", "MED", billed=3000, amo=1900, accepted=1100)

CHILD = """
import sys, time
from datetime import date, datetime
from pathlib import Path
from tierspayant.config import load_settings
from tierspayant.services import payments
from tierspayant.app.platform import open_platform

point, wanted, marker, out, day, clock = sys.argv[1:]
now = datetime.fromisoformat(clock)
platform = open_platform(load_settings(), clock=lambda: now)

def progress(reached, n):
    if reached == point and n == int(wanted):
        Path(marker).write_text(f"{reached}:{n}")
        time.sleep(120)  # killed here

payments.run_payments(platform, date.fromisoformat(day), out_dir=Path(out), progress=progress)
print("done")
"""


@dataclass(frozen=True, slots=True)
class Twin:
    platform: Platform
    env: dict[str, str]


def _twin(url: str, data_dir: Path) -> Twin:
    env = {"TIERSPAYANT_DATA_DIR": str(data_dir), "TIERSPAYANT_DATABASE_URL": url}
    platform = initialise(load_settings(env))
    platform.clock = lambda: datetime(2026, 5, 4, 9, tzinfo=UTC)
    _seed(platform)
    platform.clock = lambda: CLOCK
    return Twin(platform, env)


def _staff(insurer_id: int) -> Principal:
    return Principal(
        "staff:crash", PrincipalKind.INSURER_STAFF, AuthStrength.AAL2, insurer_id=insurer_id
    )


def _seed(platform: Platform) -> None:
    """The same money history in every twin: a first run, an undue line, new claims."""
    rng = random.Random(2026)
    ids = [
        insurers.add_insurer(platform, amc, f"Mutuelle {amc}", "mutuelle", "t").id for amc in AMCS
    ]
    people = [make_provider(platform, rng, category=c) for c in ("pharmacy", "gp") * 3]
    first = adjudicated_claim(
        platform, insurer_id=ids[0], amc_number=AMCS[0], provider_id=people[0].id, lines=(BIG,)
    )
    payments.run_payments(platform, FIRST_DAY, out_dir=platform.settings.data_dir / "first")
    platform.clock = lambda: datetime(2026, 5, 4, 12, tzinfo=UTC)
    overpayments.flag_undue(platform, _staff(ids[0]), first, 1, "care.not_given")
    for n, provider in enumerate(people):
        for k in range(3):
            insurer = n % 2 if k else (n + 1) % 2
            adjudicated_claim(
                platform, insurer_id=ids[insurer], amc_number=AMCS[insurer],
                provider_id=provider.id, lines=(ACCEPTED, REDUCED, REJECTED)[: k + 1],
            )  # fmt: skip


def _database_urls(engine_name: str, base: Path) -> Generator[tuple[str, str], None, None]:
    if engine_name == "sqlite":
        yield (f"sqlite:///{base / 'a' / 'db.sqlite3'}", f"sqlite:///{base / 'b' / 'db.sqlite3'}")
        return
    admin = create_engine(
        POSTGRES_SERVER_URL.rstrip("/") + "/postgres", isolation_level="AUTOCOMMIT"
    )
    names = [f"tp_crash_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    try:
        with admin.connect() as conn:
            for name in names:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any connection failure means "no server"
        admin.dispose()
        if services_required():
            pytest.fail(f"PostgreSQL is not reachable: {exc}")
        pytest.skip(f"PostgreSQL is not reachable: {exc}")
    try:
        yield tuple(POSTGRES_SERVER_URL.rstrip("/") + f"/{n}" for n in names)  # type: ignore[misc]
    finally:
        with admin.connect() as conn:
            for name in names:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def clean(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Twin, Path, str]]:
    """The clean twin, paid in one go (module-wide), and the engine name."""
    engine_name = str(request.param)
    base = tmp_path_factory.mktemp(f"clean-{engine_name}")
    urls = _database_urls(engine_name, base)
    url, spare = next(urls)
    twin = _twin(url, base / "a")
    out = base / "out"
    payments.run_payments(twin.platform, PAY_DAY, out_dir=out)
    try:
        yield twin, out, spare
    finally:
        twin.platform.close()
        urls.close()


def _run_child(twin: Twin, point: str, n: int, marker: Path, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, point, str(n), str(marker), str(out), PAY_DAY.isoformat(),
         CLOCK.isoformat()],
        env={**os.environ, **twin.env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip


def _kill_at(twin: Twin, point: str, n: int, marker: Path, out: Path) -> None:
    kill_when_marked(_run_child(twin, point, n, marker, out), marker, f"{point}:{n}")


def wait_for_marker(child: subprocess.Popen[bytes], marker: Path, where: str) -> None:
    """Wait until the child writes its marker (it then waits to be killed); fail with its
    error output if it dies or stalls before."""
    deadline = time.monotonic() + 60
    while not marker.exists():
        if child.poll() is not None or time.monotonic() > deadline:
            child.kill()
            _, err = child.communicate()
            pytest.fail(f"the child never reached {where}: {err.decode()[-2000:]}")
        time.sleep(0.05)


def kill_when_marked(child: subprocess.Popen[bytes], marker: Path, where: str) -> None:
    """:func:`wait_for_marker`, then SIGKILL the child."""
    wait_for_marker(child, marker, where)
    child.send_signal(signal.SIGKILL)
    child.communicate()
    assert child.returncode == -signal.SIGKILL


def _files(out: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and not p.name.endswith(".part")
    }


def _money(platform: Platform) -> tuple[dict[str, int], int, int]:
    with platform.engine.connect() as conn:
        lines = conn.execute(select(func.count()).select_from(payment_lines)).scalar_one()
        assert ledger.check(conn).ok
        return ledger.balances(conn), ledger.check(conn).postings, int(lines)


# Each point is where the next worker is killed; each rerun starts from what the previous
# one committed (provider numbers count the providers left to pay).
KILL_CHAIN = [
    (payments.REMITTED, 2),  # inside the 2nd provider's transaction: rolled back
    (payments.COMMITTED, 3),  # between providers
    (payments.TRANSFERS_WRITTEN, 6),  # the pain.001 written under its temporary name
    (payments.REMITTANCE_WRITTEN, 3),  # half of the remittance advice written
    (payments.FILES_DONE, 7),  # everything written, the run not yet marked done
]


def test_a_run_killed_again_and_again_ends_as_if_never_interrupted(
    clean: tuple[Twin, Path, str], tmp_path: Path
) -> None:
    reference, reference_out, _ = clean
    crashy = _twin(_fresh_url(clean, tmp_path), tmp_path / "data")
    try:
        out = tmp_path / "out"
        for n, (point, at) in enumerate(KILL_CHAIN):
            _kill_at(crashy, point, at, tmp_path / f"marker-{n}", out)

        rerun = _run_child(crashy, "none", 0, tmp_path / "unused", out)
        _, stderr = rerun.communicate(timeout=120)
        assert rerun.returncode == 0, stderr.decode()[-2000:]

        assert _files(out) == _files(reference_out)
        assert _money(crashy.platform) == _money(reference.platform)
    finally:
        crashy.platform.close()


def _fresh_url(clean: tuple[Twin, Path, str], tmp_path: Path) -> str:
    """A new empty database of the same engine as the clean twin."""
    spare = clean[2]
    if spare.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'data' / 'db.sqlite3'}"
    admin = create_engine(
        POSTGRES_SERVER_URL.rstrip("/") + "/postgres", isolation_level="AUTOCOMMIT"
    )
    name = spare.rsplit("/", 1)[1]
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return spare


def test_a_second_worker_is_kept_out_while_the_first_lives(
    clean: tuple[Twin, Path, str], tmp_path: Path
) -> None:
    crashy = _twin(_fresh_url(clean, tmp_path), tmp_path / "data")
    try:
        child = _run_child(crashy, payments.COMMITTED, 1, tmp_path / "marker", tmp_path / "out")
        wait_for_marker(child, tmp_path / "marker", f"{payments.COMMITTED}:1")
        with pytest.raises(Conflict) as locked:
            payments.run_payments(crashy.platform, PAY_DAY, out_dir=tmp_path / "other")
        assert locked.value.code == "run.locked"
        child.send_signal(signal.SIGKILL)
        child.communicate()
        payments.run_payments(crashy.platform, PAY_DAY, out_dir=tmp_path / "other")
        assert _money_net(crashy.platform) == _money_net(clean[0].platform)
    finally:
        crashy.platform.close()


def _money_net(platform: Platform) -> int:
    with platform.engine.connect() as conn:
        return -ledger.signed_journal_total(conn, "payment", "bank:operator")
