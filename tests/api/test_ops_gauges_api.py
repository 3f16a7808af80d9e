"""The gauges the alert rules read, through a real app's ``/metrics`` on SQLite and
PostgreSQL: readiness by check, the payment run due and done, the active KEK's age, the
proxy certificate's end of validity, and the audit chain's state after a checkpoint."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient
from sqlalchemy import delete, text

from tests.api.test_metrics_api import sample
from tierspayant.api.app import create_app
from tierspayant.app.platform import Platform
from tierspayant.domain.banking_calendar import PARIS
from tierspayant.security.keys import LocalKeyring
from tierspayant.services import checkpoints
from tierspayant.services.errors import Conflict
from tierspayant.services.payments import run_payments
from tierspayant.store import audit
from tierspayant.store.tables import audit_events

TOKEN = "ops-gauges-test-metrics-token-0123456789"
# A Tuesday of 2031, after the 16:00 cut-off (no other test of the module uses 2031).
TUESDAY_EVENING = datetime(2031, 3, 4, 17, 30, tzinfo=PARIS)


class Clock:
    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment.astimezone(UTC)


@pytest.fixture
def clock(platform: Platform) -> Clock:
    tick = Clock(TUESDAY_EVENING)
    platform.clock = tick
    return tick


@pytest.fixture
def client(platform: Platform) -> Iterator[TestClient]:
    platform.settings = dataclasses.replace(platform.settings, metrics_token=TOKEN)
    with TestClient(create_app(platform)) as built:
        yield built


def scrape(client: TestClient) -> str:
    answer = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200, answer.text
    return str(answer.text)


def _cutoff(year: int, month: int, day: int) -> float:
    return datetime(year, month, day, 16, 0, tzinfo=PARIS).timestamp()


def test_each_readiness_check_is_a_gauge_set_at_each_scrape(
    platform: Platform, client: TestClient
) -> None:
    text_ = scrape(client)
    for check in ("database", "migrations", "keys", "audit_writer"):
        assert sample(text_, "tierspayant_readiness_check", check=check) == 1, check
    # Redis on a closed port: its gauge turns 0 at the next scrape, naming no host.
    platform.settings = dataclasses.replace(platform.settings, redis_url="redis://127.0.0.1:1/0")
    text_ = scrape(client)
    assert 'tierspayant_readiness_check{check="redis"} 0.0' in text_
    assert sample(text_, "tierspayant_readiness_check", check="database") == 1
    assert "127.0.0.1" not in text_


def test_the_payment_gauges_follow_the_calendar_and_the_finished_runs(
    platform: Platform, clock: Clock, client: TestClient
) -> None:
    text_ = scrape(client)
    due = sample(text_, "tierspayant_payment_due_cutoff_timestamp_seconds")
    assert due == _cutoff(2031, 3, 4)
    done_before = sample(text_, "tierspayant_payment_done_cutoff_timestamp_seconds")
    assert done_before < due  # nothing paid on that day yet: the alert's condition

    run_payments(platform, TUESDAY_EVENING.date(), out_dir=Path(platform.settings.data_dir))
    text_ = scrape(client)
    assert sample(text_, "tierspayant_payment_done_cutoff_timestamp_seconds") == due

    # Before Wednesday's cut-off, Tuesday's run is still the newest due.
    clock.moment = datetime(2031, 3, 5, 15, 59, tzinfo=PARIS)
    assert sample(scrape(client), "tierspayant_payment_due_cutoff_timestamp_seconds") == due
    clock.moment = datetime(2031, 3, 5, 16, 1, tzinfo=PARIS)
    text_ = scrape(client)
    assert sample(text_, "tierspayant_payment_due_cutoff_timestamp_seconds") == _cutoff(2031, 3, 5)
    assert sample(text_, "tierspayant_payment_done_cutoff_timestamp_seconds") == due


def test_the_active_kek_creation_time_follows_a_rotation_by_another_process(
    platform: Platform, client: TestClient
) -> None:
    assert isinstance(platform.key_provider, LocalKeyring)
    # As written in the file (to the second).
    created = LocalKeyring.load(platform.key_provider.path).active_created_at.timestamp()
    assert abs(created - platform.key_provider.active_created_at.timestamp()) < 1
    assert sample(scrape(client), "tierspayant_kek_created_timestamp_seconds") == created
    # Another process (the CLI's ``keys rotate-kek``) rotates the file.
    rotated_at = datetime(2031, 6, 1, 9, 0, tzinfo=UTC)
    LocalKeyring.load(platform.key_provider.path).rotate(now=rotated_at)
    assert (
        sample(scrape(client), "tierspayant_kek_created_timestamp_seconds")
        == rotated_at.timestamp()
    )


def _certificate(path: Path, not_after: datetime) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tierspayant.test")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_after - timedelta(days=90))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def test_the_proxy_certificate_end_of_validity_is_a_gauge(
    platform: Platform, client: TestClient, tmp_path: Path
) -> None:
    name = "tierspayant_tls_certificate_expiry_timestamp_seconds"
    assert platform.settings.tls_cert_file is None
    cert_file = tmp_path / "proxy.pem"
    not_after = datetime(2031, 9, 14, 12, 0, tzinfo=UTC)
    _certificate(cert_file, not_after)
    platform.settings = dataclasses.replace(platform.settings, tls_cert_file=cert_file)
    assert sample(scrape(client), name) == not_after.timestamp()
    # Unreadable: 0, the alert fires (and the scrape still answers).
    cert_file.write_text("not a certificate")
    assert f"{name} 0.0" in scrape(client)


def test_a_checkpoint_sets_the_chain_gauges_and_a_broken_chain_sets_them_to_broken(
    platform: Platform, client: TestClient, tmp_path: Path, engine_name: str
) -> None:
    moment = datetime(2031, 2, 3, 4, 5, tzinfo=UTC)
    platform.clock = lambda: moment
    with platform.engine.begin() as conn:
        for n in range(3):
            audit.append(
                conn, at=moment, actor="job:test", action="scheduler.job", decision="allow",
                detail={"n": n},
            )  # fmt: skip
    out = tmp_path / "checkpoints"
    assert checkpoints.write_checkpoint(platform, out) is not None
    text_ = scrape(client)
    assert sample(text_, "tierspayant_audit_chain_broken") == 0
    assert (
        sample(text_, "tierspayant_audit_checkpoint_last_success_timestamp_seconds")
        == moment.timestamp()
    )
    broken_before = sample(
        text_, "tierspayant_audit_checkpoint_failures_total", code="audit.chain_broken"
    )
    if engine_name != "sqlite":
        return  # the triggers below are SQLite's; PostgreSQL's are covered by the audit tests
    with platform.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER audit_events_no_delete"))
        newest = audit.count_events(conn)
        conn.execute(delete(audit_events).where(audit_events.c.seq == newest - 1))
    with pytest.raises(Conflict):
        checkpoints.write_checkpoint(platform, out)
    text_ = scrape(client)
    assert sample(text_, "tierspayant_audit_chain_broken") == 1
    assert (
        sample(text_, "tierspayant_audit_checkpoint_failures_total", code="audit.chain_broken")
        == broken_before + 1
    )
