"""Alerts and suspensions on a real SQLite file, with a real webhook receiver on 127.0.0.1.

The schema comes from the migrations, as ``tierspayant init`` makes it; the platform is a
small stand-in offering what :mod:`tierspayant.services.alerts` needs (engine, guard,
alert sink, clock), with a real :class:`Guard` on in-process counters.
"""

from __future__ import annotations

import hashlib
import json
import queue
import random
import re
import threading
import time
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from stdnum.fr import nir as stdnum_nir
from structlog.testing import capture_logs

from tests.factories import make_finess, make_nir
from tierspayant.app.alerting import AlertSink, build_guard, load_guard_policy
from tierspayant.app.caching import TtlCache
from tierspayant.config import Settings
from tierspayant.security.guard import (
    ActorKind,
    DailyFigures,
    Guard,
    GuardPolicy,
    Level,
    LookupContext,
    LookupOutcome,
    MemoryCounterStore,
    RestoringCounterStore,
    Signal,
)
from tierspayant.security.principal import AuthStrength, Principal, PrincipalKind
from tierspayant.services.alerts import (
    acknowledge_alert,
    raise_alert,
    raise_alerts,
    reinstate_principal,
    suspend_principal,
)
from tierspayant.services.errors import Conflict, Forbidden, NotFound
from tierspayant.store.db import make_engine, migrate
from tierspayant.store.guard_figures import GuardDailyHistory, save_daily
from tierspayant.store.security_tables import guard_daily, security_alerts
from tierspayant.store.tables import access_tokens, audit_events, principals

RNG = random.Random(33_000_000)
PHARMACY = make_finess(RNG, department="13")
NIRS = [make_nir(RNG) for _ in range(5)]
NOW = datetime(2025, 3, 10, 8, 0, tzinfo=UTC)
PROVIDER = "psc:810001234567"
ALICE = Principal("staff:alice", PrincipalKind.OPERATOR_STAFF, AuthStrength.AAL2)
BOB = Principal("staff:bob", PrincipalKind.OPERATOR_STAFF, AuthStrength.AAL2)


# --------------------------------------------------------------------------- fixtures


class _Receiver(BaseHTTPRequestHandler):
    bodies: queue.Queue[tuple[float, bytes, str]]
    delay_seconds = 0.0

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        time.sleep(self.delay_seconds)
        self.bodies.put((time.monotonic(), body, self.headers.get("Content-Type", "")))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep test output clean


@dataclass
class Webhook:
    url: str
    bodies: queue.Queue[tuple[float, bytes, str]]

    def next(self, timeout: float = 5.0) -> tuple[float, dict[str, object], bytes, str]:
        arrived, body, content_type = self.bodies.get(timeout=timeout)
        return arrived, json.loads(body), body, content_type


def _serve(delay_seconds: float) -> Iterator[Webhook]:
    bodies: queue.Queue[tuple[float, bytes, str]] = queue.Queue()
    handler = type("Handler", (_Receiver,), {"bodies": bodies, "delay_seconds": delay_seconds})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Webhook(f"http://127.0.0.1:{server.server_address[1]}/alerts", bodies)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    """A local HTTP server that records every POST it receives."""
    yield from _serve(0.0)


@pytest.fixture
def slow_webhook() -> Iterator[Webhook]:
    """A receiver that takes 5 s to answer: longer than the sink's 2 s timeout."""
    yield from _serve(5.0)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    built = make_engine(f"sqlite:///{tmp_path / 'alerts.sqlite3'}")
    migrate(built)
    try:
        yield built
    finally:
        built.dispose()


@dataclass
class AlertPlatform:
    """The parts of ``Platform`` that alerts use, with a real guard and sink."""

    engine: Engine
    guard: Guard
    alert_sink: AlertSink
    clock: list[datetime] = field(default_factory=lambda: [NOW])
    principals: TtlCache[bytes, tuple[Principal, datetime]] = field(
        default_factory=lambda: TtlCache(60)
    )

    def now(self) -> datetime:
        return self.clock[0]


def make_platform(engine: Engine, webhook_url: str | None) -> AlertPlatform:
    return AlertPlatform(engine, Guard(MemoryCounterStore()), AlertSink(webhook_url))


@pytest.fixture
def platform(engine: Engine, webhook: Webhook) -> AlertPlatform:
    with engine.begin() as conn:
        conn.execute(principals.insert().values(id=PROVIDER, kind="provider_user", status="active"))
        for n, revoked in ((1, None), (2, None), (3, NOW - timedelta(days=1))):
            conn.execute(
                access_tokens.insert().values(
                    token_digest=bytes([n]) * 32,
                    principal=PROVIDER,
                    issued_at=NOW - timedelta(minutes=5),
                    expires_at=NOW + timedelta(minutes=5),
                    revoked_at=revoked,
                )
            )
    return make_platform(engine, webhook.url)


def lookup(at: datetime = NOW, *, with_proof: bool = False) -> LookupContext:
    return LookupContext(PROVIDER, ActorKind.HUMAN, PHARMACY, "pharmacy", with_proof, at)


def canary_signals(guard: Guard, ctx: LookupContext) -> list[Signal]:
    assert guard.admit(ctx).allowed
    return guard.observe(ctx, LookupOutcome.canary("c0ffee" * 5))


def valid_nirs_in(text: str) -> list[str]:
    """Every 13- or 15-digit run (spaces allowed) that is a valid NIR."""
    found = []
    for match in re.finditer(r"[12378](?:\s?[0-9AB]){12}(?:\s?\d{2})?", text):
        candidate = re.sub(r"\s", "", match.group())
        if len(candidate) == 15 and stdnum_nir.is_valid(candidate):
            found.append(candidate)
    return found


# --------------------------------------------------------------------------- hard signals


def test_given_a_canary_lookup_then_suspended_revoked_recorded_audited_and_posted_within_5s(
    platform: AlertPlatform, webhook: Webhook
) -> None:
    ctx = lookup()
    signals = canary_signals(platform.guard, ctx)
    started = time.monotonic()
    records = raise_alerts(platform, signals, ctx, insurer="312345678")

    arrived, body, raw, content_type = webhook.next(timeout=5.0)
    assert arrived - started < 5.0
    assert content_type == "application/json"
    assert body["code"] == "guard.canary"
    assert body["level"] == "hard"
    assert body["principal"] == PROVIDER
    assert body["structure"] == PHARMACY
    assert body["insurer"] == "312345678"
    assert body["suspended"] is True
    assert body["alert_id"] == records[0].id
    # The text people read, in French; an unknown account keeps its raw id
    assert body["text"] == (
        f"Bénéficiaire leurre consulté — compte : {PROVIDER} — structure : FINESS {PHARMACY} "
        "— organisme : AMC 312345678 — compte suspendu"
    )
    assert [(r.level, r.code, r.suspended) for r in records] == [(Level.HARD, "guard.canary", True)]

    with platform.engine.connect() as conn:
        status = conn.execute(select(principals).where(principals.c.id == PROVIDER)).one()
        assert status.status == "suspended"
        assert status.status_reason.startswith("guard.canary")
        live = conn.execute(
            select(func.count())
            .select_from(access_tokens)
            .where(access_tokens.c.revoked_at.is_(None))
        ).scalar_one()
        assert live == 0
        alert = conn.execute(select(security_alerts)).one()
        assert (alert.level, alert.code, alert.principal, alert.insurer) == (
            "hard",
            "guard.canary",
            PROVIDER,
            "312345678",
        )
        assert json.loads(alert.figures) == {"canary": 1}
        assert alert.acknowledged_at is None
        event = conn.execute(select(audit_events)).one()
        assert (event.actor, event.action, event.decision) == (
            "system:guard",
            "principal.suspend",
            "allow",
        )
        assert json.loads(event.detail)["tokens_revoked"] == 2
    assert platform.guard.admit(lookup(NOW + timedelta(seconds=1))).code == "guard.suspended"
    assert raw.count(b"c0ffee") == 0  # not even the canary's pseudonym leaves


def test_given_a_scrape_with_real_nirs_then_nothing_identifying_reaches_webhook_db_or_logs(
    platform: AlertPlatform, webhook: Webhook
) -> None:
    # The scraper's card data carry real NIRs; the guard only ever sees pseudonyms.
    pseudonyms = [hashlib.sha256(n.encode()).hexdigest()[:32] for n in NIRS]
    guard = Guard(MemoryCounterStore(), GuardPolicy(no_proof_soft=2, no_proof_hard=4))
    platform.guard = guard
    signals: list[Signal] = []
    with capture_logs() as logs:
        for i, pseudonym in enumerate(pseudonyms):
            ctx = LookupContext(
                PROVIDER,
                ActorKind.SOFTWARE,
                PHARMACY,
                "pharmacy",
                False,
                NOW + timedelta(seconds=5 * i),
                stepped_up=True,
            )
            if guard.admit(ctx).allowed:
                found = guard.observe(ctx, LookupOutcome.hit(pseudonym))
                signals += found
                raise_alerts(platform, found, ctx, insurer="312345678")
    assert [s.code for s in signals] == ["guard.no_proof_soft", "guard.no_proof_quota"]
    bodies = [webhook.next()[2].decode() for _ in signals]
    with platform.engine.connect() as conn:
        rows = [
            json.dumps(list(r), default=str) for r in conn.execute(select(security_alerts)).all()
        ]
        rows += [str(list(r)) for r in conn.execute(select(audit_events)).all()]
    texts = bodies + rows + [json.dumps(logs, default=str)]
    for text in texts:
        assert valid_nirs_in(text) == []
        assert not any(p in text for p in pseudonyms)
    assert any(entry["event"] == "security.alert" for entry in logs)
    # The detector would find one if it were there.
    assert valid_nirs_in(f"nir={NIRS[0]}") == [NIRS[0]]


def test_given_an_unknown_principal_then_it_is_recorded_as_suspended(
    engine: Engine, webhook: Webhook
) -> None:
    platform = make_platform(engine, webhook.url)
    ctx = LookupContext("client:new-lgo", ActorKind.SOFTWARE, PHARMACY, "pharmacy", True, NOW)
    signals = canary_signals(platform.guard, ctx)
    raise_alerts(platform, signals, ctx)
    with engine.connect() as conn:
        row = conn.execute(select(principals).where(principals.c.id == "client:new-lgo")).one()
    assert (row.kind, row.status) == ("provider_client", "suspended")
    webhook.next()


def test_suspending_twice_writes_one_audit_event(platform: AlertPlatform) -> None:
    with platform.engine.begin() as conn:
        assert suspend_principal(platform, conn, PROVIDER, "manual") == 2
    with platform.engine.begin() as conn:
        assert suspend_principal(platform, conn, PROVIDER, "manual") == 0
        assert conn.execute(select(func.count()).select_from(audit_events)).scalar_one() == 1
    assert platform.guard.suspended(PROVIDER)


def test_given_the_database_fails_then_the_webhook_still_goes_and_the_guard_blocks(
    platform: AlertPlatform, webhook: Webhook
) -> None:
    security_alerts.drop(platform.engine)
    ctx = lookup()
    signals = canary_signals(Guard(MemoryCounterStore()), ctx)
    with pytest.raises(Exception, match="security_alerts"), platform.engine.begin() as conn:
        raise_alert(platform, conn, signals[0], ctx)
    _, body, _, _ = webhook.next()
    assert (body["code"], body["alert_id"], body["suspended"]) == ("guard.canary", None, False)
    assert platform.guard.suspended(PROVIDER)


# --------------------------------------------------------------------------- soft signals


def test_given_a_soft_signal_then_recorded_and_posted_without_suspension(
    platform: AlertPlatform, webhook: Webhook
) -> None:
    signal = Signal(
        Level.SOFT, "guard.invoice_ratio", "few invoiced", NOW, None, PHARMACY, {"looked_up": 60}
    )
    with platform.engine.begin() as conn:
        record = raise_alert(platform, conn, signal)
    assert (record.level, record.suspended) == (Level.SOFT, False)
    assert webhook.next()[1]["level"] == "soft"
    with platform.engine.connect() as conn:
        assert conn.execute(select(principals.c.status)).scalar_one() == "active"
        assert conn.execute(select(func.count()).select_from(audit_events)).scalar_one() == 0
    assert not platform.guard.suspended(PROVIDER)
    assert raise_alerts(platform, []) == []


# --------------------------------------------------------------------------- webhook failures


def test_given_no_receiver_then_the_failure_is_logged_and_nothing_blocks(
    engine: Engine,
) -> None:
    platform = make_platform(engine, "http://127.0.0.1:9/alerts")
    ctx = lookup()
    signals = canary_signals(platform.guard, ctx)
    with capture_logs() as logs:
        with platform.engine.begin() as conn:
            raise_alert(platform, conn, signals[0], ctx)
        thread = AlertSink("http://127.0.0.1:9/alerts").deliver({"code": "guard.canary"})
        assert thread is not None
        thread.join(timeout=5)
        assert AlertSink("http://127.0.0.1:9/x", background=False).deliver({"code": "y"}) is None
        # raise_alert's own delivery thread is not joined: wait for its log line.
        deadline = time.monotonic() + 5
        while len(_failures(logs)) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    assert _failures(logs) == ["ConnectError"] * 3
    assert all("127.0.0.1:9" not in json.dumps(entry, default=str) for entry in logs)


def test_given_a_slow_receiver_then_suspension_does_not_wait_for_it(
    engine: Engine, slow_webhook: Webhook
) -> None:
    platform = make_platform(engine, slow_webhook.url)
    ctx = lookup()
    signals = canary_signals(platform.guard, ctx)
    with capture_logs() as logs:
        started = time.monotonic()
        raise_alerts(platform, signals, ctx)
        assert time.monotonic() - started < 1.0
        assert platform.guard.suspended(PROVIDER)
        # Behind the answer, the delivery gives up after its 2 s timeout and says so.
        while time.monotonic() - started < 4.5 and not _failures(logs):
            time.sleep(0.05)
        gave_up = time.monotonic() - started
    assert _failures(logs) == ["ReadTimeout"]
    assert 1.5 < gave_up < 4.5


def _failures(logs: list[MutableMapping[str, Any]]) -> list[str]:
    return [str(e["error"]) for e in logs if e["event"] == "alert.webhook_failed"]


def test_given_no_webhook_configured_then_delivery_is_a_no_op() -> None:
    assert AlertSink(None).deliver({"code": "x"}) is None
    assert AlertSink("").webhook_url is None


# --------------------------------------------------------------------------- reinstatement


def _suspended(platform: AlertPlatform) -> None:
    with platform.engine.begin() as conn:
        suspend_principal(platform, conn, PROVIDER, "guard.canary")


def test_given_one_approver_twice_then_reinstatement_is_refused(platform: AlertPlatform) -> None:
    _suspended(platform)
    with pytest.raises(Forbidden) as refused:
        reinstate_principal(platform, PROVIDER, ALICE, ALICE)
    assert refused.value.code == "guard.second_approver_required"
    provider = Principal(PROVIDER, PrincipalKind.PROVIDER_USER, AuthStrength.AAL3)
    with pytest.raises(Forbidden) as not_staff:
        reinstate_principal(platform, PROVIDER, ALICE, provider)
    assert not_staff.value.code == "auth.forbidden"
    assert platform.guard.suspended(PROVIDER)


def test_given_two_operators_then_the_principal_is_reinstated(platform: AlertPlatform) -> None:
    _suspended(platform)
    reinstate_principal(platform, PROVIDER, ALICE, BOB)
    with platform.engine.connect() as conn:
        row = conn.execute(select(principals).where(principals.c.id == PROVIDER)).one()
        events = conn.execute(select(audit_events).order_by(audit_events.c.seq)).all()
        live = conn.execute(
            select(func.count())
            .select_from(access_tokens)
            .where(access_tokens.c.revoked_at.is_(None))
        ).scalar_one()
    assert row.status == "active"
    assert [e.action for e in events] == ["principal.suspend", "principal.reinstate"]
    assert events[-1].actor == ALICE.id
    assert json.loads(events[-1].detail)["second_approver"] == BOB.id
    assert live == 0  # tokens stay revoked: the provider signs in again
    assert not platform.guard.suspended(PROVIDER)
    assert platform.guard.admit(lookup(NOW + timedelta(hours=1))).allowed


def test_reinstating_an_active_or_unknown_principal_is_refused(platform: AlertPlatform) -> None:
    with pytest.raises(Conflict):
        reinstate_principal(platform, PROVIDER, ALICE, BOB)
    with pytest.raises(NotFound):
        reinstate_principal(platform, "nobody", ALICE, BOB)


# --------------------------------------------------------------------------- console


def test_an_operator_acknowledges_an_alert_once(platform: AlertPlatform) -> None:
    ctx = lookup()
    record = raise_alerts(platform, canary_signals(platform.guard, ctx), ctx)[0]
    assert record.id is not None
    platform.clock[0] = NOW + timedelta(minutes=3)
    acknowledge_alert(platform, record.id, ALICE)
    acknowledge_alert(platform, record.id, BOB)  # already done: unchanged
    with platform.engine.connect() as conn:
        row = conn.execute(select(security_alerts)).one()
    assert row.acknowledged_by == ALICE.id
    assert row.acknowledged_at.replace(tzinfo=UTC) == NOW + timedelta(minutes=3)
    with pytest.raises(NotFound):
        acknowledge_alert(platform, 999, ALICE)
    provider = Principal(PROVIDER, PrincipalKind.PROVIDER_USER, AuthStrength.AAL3)
    with pytest.raises(Forbidden):
        acknowledge_alert(platform, record.id, provider)


# --------------------------------------------------------------------------- history, settings


def test_daily_figures_are_saved_and_feed_the_calibration(engine: Engine) -> None:
    guard = Guard(MemoryCounterStore(), history=GuardDailyHistory(engine))
    day = date(2025, 3, 10)
    with engine.begin() as conn:
        for back in range(1, 31):
            counts = 1000 if back <= 28 else 9000  # days 29-30 fall outside the window
            save_daily(conn, DailyFigures(PHARMACY, "pharmacy", day - timedelta(days=back), 1, 0))
            save_daily(
                conn,
                DailyFigures(PHARMACY, "pharmacy", day - timedelta(days=back), counts, counts // 2),
            )
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(guard_daily)).scalar_one() == 30
    assert GuardDailyHistory(engine).daily_distinct(PHARMACY, day, 28) == [1000] * 28
    assert guard.caps(PHARMACY, "pharmacy", day).hard == 1500
    assert guard.caps("other", "pharmacy", day).hard == 800


def test_settings_choose_the_policy_the_webhook_and_the_counters(
    engine: Engine, tmp_path: Path
) -> None:
    base = Settings(tmp_path, "sqlite://", tmp_path / "keyring.json")
    assert load_guard_policy(base) == GuardPolicy()
    assert AlertSink.from_settings(base).webhook_url is None
    inline = Settings(
        tmp_path,
        "sqlite://",
        tmp_path / "keyring.json",
        guard_policy='{"no_proof_soft": 3, "no_proof_hard": 6}',
        alert_webhook_url="https://soc.example.org/hook",
    )
    assert load_guard_policy(inline).no_proof_hard == 6
    assert AlertSink.from_settings(inline).webhook_url == "https://soc.example.org/hook"
    policy_file = tmp_path / "guard.json"
    policy_file.write_text('{"daily_caps": {"optician": 15}}', encoding="utf-8")
    from_file = Settings(tmp_path, "sqlite://", tmp_path / "k.json", guard_policy=str(policy_file))
    guard = build_guard(from_file, engine)
    assert guard.policy.daily_caps["optician"] == 15
    # In memory, rebuilt from the audit log at the first lookup of the process.
    assert isinstance(guard.counters, RestoringCounterStore)
    assert isinstance(guard.counters.store, MemoryCounterStore)
    assert isinstance(guard.history, GuardDailyHistory)
