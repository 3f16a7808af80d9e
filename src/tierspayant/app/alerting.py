"""Wiring of the guard and of the alerts' delivery from the settings.

:func:`build_guard` gives a process its exfiltration guard (counters in Redis when
``TIERSPAYANT_REDIS_URL`` is set, in memory otherwise, rebuilt from the audit log when
they come back empty; thresholds from ``TIERSPAYANT_GUARD_POLICY``; calibration history
from ``guard_daily``), and
:class:`AlertSink` posts security alerts to the team's webhook. The platform builds both
once; the use cases of ``services/alerts.py`` raise alerts through them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import httpx
import structlog
from sqlalchemy import Engine

from tierspayant.config import Settings
from tierspayant.security.guard import (
    CounterStore,
    Guard,
    GuardPolicy,
    MemoryCounterStore,
    RedisCounterStore,
    Restorer,
    RestoringCounterStore,
)
from tierspayant.store.guard_figures import GuardDailyHistory
from tierspayant.store.lookup_history import AuditLookupHistory

log = structlog.get_logger("tierspayant.alerts")

# Fields of ``Settings`` read by this module.
WEBHOOK_SETTING = "alert_webhook_url"
GUARD_POLICY_SETTING = "guard_policy"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class AlertSink:
    """Delivers alerts to the security team's webhook (JSON POST), if one is configured."""

    def __init__(
        self, webhook_url: str | None, *, timeout_seconds: float = 2.0, background: bool = True
    ) -> None:
        self.webhook_url = webhook_url or None
        self.timeout_seconds = timeout_seconds
        self.background = background

    @classmethod
    def from_settings(cls, settings: Settings) -> AlertSink:
        """The sink configured by ``TIERSPAYANT_ALERT_WEBHOOK`` (through the settings)."""
        return cls(_setting(settings, WEBHOOK_SETTING))

    def deliver(self, payload: Mapping[str, object]) -> threading.Thread | None:
        """Post ``payload``; in the background unless built with ``background=False``.

        Returns the delivery thread (tests join it), or None when nothing runs behind.
        """
        if self.webhook_url is None:
            return None
        body = dict(payload)
        if not self.background:
            self._post(body)
            return None
        thread = threading.Thread(
            target=self._post, args=(body,), name="alert-webhook", daemon=True
        )
        thread.start()
        return thread

    def _post(self, body: dict[str, object]) -> None:
        assert self.webhook_url is not None
        try:
            response = httpx.post(self.webhook_url, json=body, timeout=self.timeout_seconds)
        except Exception as exc:  # noqa: BLE001 - a failed webhook is logged, never raised
            # The URL may embed a token: log the failure type only.
            log.warning("alert.webhook_failed", code=body.get("code"), error=type(exc).__name__)
            return
        if response.status_code >= 300:
            log.warning(
                "alert.webhook_rejected", code=body.get("code"), status=response.status_code
            )


def _setting(settings: Settings, name: str) -> str | None:
    value = getattr(settings, name, None)
    return str(value) if value else None


def load_guard_policy(settings: Settings) -> GuardPolicy:
    """The guard thresholds: defaults, overridden by ``TIERSPAYANT_GUARD_POLICY``.

    The setting holds a JSON object, or the path of a JSON file.
    """
    raw = _setting(settings, GUARD_POLICY_SETTING)
    if raw is None:
        return GuardPolicy()
    text = raw if raw.lstrip().startswith("{") else Path(raw).read_text(encoding="utf-8")
    return GuardPolicy.from_json(text)


def build_guard(
    settings: Settings, engine: Engine, clock: Callable[[], datetime] = _utc_now
) -> Guard:
    """The process's guard: Redis counters when ``TIERSPAYANT_REDIS_URL`` is set.

    Either store starts without its epoch (a new process, a Redis restarted empty): the
    first lookup then rebuilds the counters from the audit log (``docs/guard.md``).
    """
    store: CounterStore = (
        RedisCounterStore.from_url(settings.redis_url)
        if settings.redis_url
        else MemoryCounterStore()
    )
    policy = load_guard_policy(settings)
    restorer = Restorer(store, AuditLookupHistory(engine), policy, clock)
    return Guard(RestoringCounterStore(store, restorer), policy, GuardDailyHistory(engine))
