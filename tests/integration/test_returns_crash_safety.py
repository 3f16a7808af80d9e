"""Recording returned transfers, SIGKILLed inside its transaction or right after its
commit, then run again, ends exactly as a recording never interrupted: same postings and
balances, one return row per transfer, one ``payments.return`` event each. The payment
run that pays the returned amounts again to new bank details, killed inside a
provider's transaction and rerun, writes the same transfer file as the clean twin.

The machinery is the payment run's (``test_crash_safety.py``): twin databases with the
same history, the clean one recorded in one go, the crashy one by child processes that
stop at a progress point of ``services/billing.record_returns`` and wait to be killed.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.camt054_support import Returned, notification
from tests.factories import make_french_iban
from tests.integration.test_crash_safety import (
    Twin,
    _database_urls,
    _files,
    _fresh_url,
    kill_when_marked,
)
from tests.money_support import ACCEPTED, REDUCED, adjudicated_claim, make_provider
from tierspayant.app.platform import Platform, initialise
from tierspayant.config import load_settings
from tierspayant.security.principal import AuthStrength, Principal, PrincipalKind
from tierspayant.services import bank_details, billing, insurers, payments
from tierspayant.store import ledger
from tierspayant.store.bank_tables import provider_transfer_returns
from tierspayant.store.tables import audit_events, providers

PAID_ON = date(2026, 5, 4)
REPAID_ON = date(2026, 5, 11)
RECORDED_AT = datetime(2026, 5, 6, 9, tzinfo=UTC)

CHILD = """
import sys, time
from datetime import datetime
from pathlib import Path
from tierspayant.config import load_settings
from tierspayant.services import billing
from tierspayant.app.platform import open_platform

point, wanted, marker, report, clock = sys.argv[1:]
now = datetime.fromisoformat(clock)
platform = open_platform(load_settings(), clock=lambda: now)

def progress(reached, n):
    if reached == point and n == int(wanted):
        Path(marker).write_text(f"{reached}:{n}")
        time.sleep(120)  # killed here

billing.record_returns(
    platform, Path(report).read_bytes(), actor="operator:cli", progress=progress
)
print("done")
"""

PAY_CHILD = """
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


def _seed(platform: Platform) -> list[int]:
    """Three providers paid on PAID_ON; their ids."""
    rng = random.Random(5040)
    platform.clock = lambda: datetime(2026, 5, 4, 8, tzinfo=UTC)
    insurer = insurers.add_insurer(platform, "31000017", "Mutuelle Rhône", "mutuelle", "t")
    people = [make_provider(platform, rng) for _ in range(3)]
    platform.clock = lambda: datetime(2026, 5, 4, 9, tzinfo=UTC)
    for n, provider in enumerate(people):
        adjudicated_claim(
            platform, insurer_id=insurer.id, amc_number="31000017", provider_id=provider.id,
            lines=(ACCEPTED, REDUCED)[: n % 2 + 1], care_date=date(2026, 5, 1),
        )  # fmt: skip
    payments.run_payments(platform, PAID_ON, out_dir=platform.settings.data_dir / "pay")
    platform.clock = lambda: RECORDED_AT
    return [p.id for p in people]


def _report(path: Path, provider_ids: list[int]) -> Path:
    """The bank's camt.054: the first and third transfers came back."""
    path.write_bytes(
        notification(
            [
                Returned(f"TP20260504-{provider_ids[0]}", "3.50", "AC04"),
                Returned(f"TP20260504-{provider_ids[2]}", "3.50", "AC01"),
            ],
            created="2026-05-06T07:00:00",
        )
    )
    return path


def _twin(url: str, data_dir: Path) -> tuple[Twin, list[int]]:
    env = {"TIERSPAYANT_DATA_DIR": str(data_dir), "TIERSPAYANT_DATABASE_URL": url}
    platform = initialise(load_settings(env))
    return Twin(platform, env), _seed(platform)


def _new_details(platform: Platform, provider_ids: list[int]) -> None:
    """New accounts for the returned providers, asked, verified, past the cooling-off."""
    staff = [
        Principal(id=f"operator:{n}", kind=PrincipalKind.OPERATOR_STAFF, strength=AuthStrength.AAL2)
        for n in ("alice", "bob")
    ]
    with platform.engine.connect() as conn:
        ams = dict(conn.execute(select(providers.c.id, providers.c.am_number)).all())
    for n, provider_id in enumerate((provider_ids[0], provider_ids[2])):
        iban = make_french_iban(random.Random(700 + n))
        change = bank_details.request_change(platform, staff[0], iban, am_number=ams[provider_id])
        bank_details.verify_change(platform, staff[1], change.id, "provider_contact")


def _state(platform: Platform) -> tuple[dict[str, int], int, int, int]:
    """Balances, postings, returns recorded and ``payments.return`` events."""
    with platform.engine.connect() as conn:
        check = ledger.check(conn)
        assert check.ok
        returns = conn.execute(
            select(func.count()).select_from(provider_transfer_returns)
        ).scalar_one()
        events = conn.execute(
            select(func.count()).where(audit_events.c.action == "payments.return")
        ).scalar_one()
        return ledger.balances(conn), check.postings, int(returns), int(events)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def clean(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Twin, Path, str]]:
    """The clean twin: the returns recorded in one go, then paid again on REPAID_ON."""
    engine_name = str(request.param)
    base = tmp_path_factory.mktemp(f"clean-returns-{engine_name}")
    urls = _database_urls(engine_name, base)
    url, spare = next(urls)
    twin, ids = _twin(url, base / "a")
    summary = billing.record_returns(twin.platform, _report(base / "camt.xml", ids).read_bytes())
    assert len(summary.transfers) == 2
    _new_details(twin.platform, ids)
    twin.platform.clock = lambda: datetime(2026, 5, 11, 9, tzinfo=UTC)
    payments.run_payments(twin.platform, REPAID_ON, out_dir=base / "out")
    try:
        yield twin, base / "out", spare
    finally:
        twin.platform.close()
        urls.close()


def _child(twin: Twin, script: str, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        env={**os.environ, **twin.env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_recording_returns_killed_then_rerun_ends_as_if_never_interrupted(
    clean: tuple[Twin, Path, str], tmp_path: Path
) -> None:
    reference, reference_out, _ = clean
    crashy, ids = _twin(_fresh_url(clean, tmp_path), tmp_path / "data")
    try:
        report = _report(tmp_path / "camt.xml", ids)
        before = _state(crashy.platform)

        # Killed inside the file's transaction, after the second return: nothing stays
        marker = tmp_path / "m1"
        args = (str(report), RECORDED_AT.isoformat())
        child = _child(crashy, CHILD, billing.RETURN_POSTED, "2", str(marker), *args)
        kill_when_marked(child, marker, f"{billing.RETURN_POSTED}:2")
        assert _state(crashy.platform) == before

        # Killed right after the commit: everything stays, once
        marker = tmp_path / "m2"
        child = _child(crashy, CHILD, billing.RETURNS_COMMITTED, "2", str(marker), *args)
        kill_when_marked(child, marker, f"{billing.RETURNS_COMMITTED}:2")
        after_commit = _state(crashy.platform)
        assert after_commit[2:] == (2, 2)

        # Run again: nothing more is recorded
        rerun = _child(crashy, CHILD, "none", "0", str(tmp_path / "unused"), *args)
        _, err = rerun.communicate(timeout=120)
        assert rerun.returncode == 0, err.decode()[-2000:]
        assert _state(crashy.platform) == after_commit

        # The payment run paying them again, killed inside the first provider's
        # transaction, then rerun, pays as the clean twin did
        _new_details(crashy.platform, ids)
        pay_out = tmp_path / "out"
        clock = datetime(2026, 5, 11, 9, tzinfo=UTC).isoformat()
        marker = tmp_path / "m3"
        pay_args = (str(pay_out), REPAID_ON.isoformat(), clock)
        child = _child(crashy, PAY_CHILD, payments.REMITTED, "1", str(marker), *pay_args)
        kill_when_marked(child, marker, f"{payments.REMITTED}:1")
        rerun = _child(crashy, PAY_CHILD, "none", "0", str(tmp_path / "unused"), *pay_args)
        _, err = rerun.communicate(timeout=120)
        assert rerun.returncode == 0, err.decode()[-2000:]

        assert _files(pay_out) == _files(reference_out)
        assert _state(crashy.platform) == _state(reference.platform)
    finally:
        crashy.platform.close()
