"""Gauges read at each scrape of ``/metrics``: the state the alert rules watch.

Counters are counted where things happen; a state (is Redis reachable, is the payment run
of the day done, when does the proxy's certificate end) is better read when Prometheus
asks, so a restarted process reports it at once and a process that never does the work
still reports it. :func:`refresh` runs the readiness checks (their gauges are set by
:func:`~tierspayant.services.readiness.readiness`), then sets the payment, key and
certificate gauges. Every value is a time or a 0/1: nothing about a person.
"""

from __future__ import annotations

import structlog
from cryptography import x509

from tierspayant import metrics
from tierspayant.app.platform import Platform
from tierspayant.domain.schedule import Timetable, latest_due_payment_day, payment_cutoff_at
from tierspayant.security.keys import LocalKeyring
from tierspayant.services.readiness import readiness
from tierspayant.store import runs

log = structlog.get_logger(__name__)


def refresh(platform: Platform) -> None:
    """Set every scrape-time gauge (see the module's docstring); never raises for a
    component that is down: its readiness gauge says so."""
    state = readiness(platform)
    jobs = platform.settings.jobs
    timetable = Timetable(payment_cutoff=jobs.payment_cutoff, nightly_at=jobs.nightly_at)
    due = latest_due_payment_day(platform.now(), timetable)
    metrics.PAYMENT_DUE_CUTOFF.set(payment_cutoff_at(due, timetable).timestamp())
    if "database" not in state.failed:
        try:
            with platform.engine.connect() as conn:
                done = runs.last_done_payment_date(conn)
        except Exception as exc:  # noqa: BLE001 - a scrape must answer; logged
            log.warning("metrics.payment_state_failed", error=type(exc).__name__)
        else:
            metrics.PAYMENT_DONE_CUTOFF.set(
                0 if done is None else payment_cutoff_at(done, timetable).timestamp()
            )
    provider = platform.key_provider
    if isinstance(provider, LocalKeyring) and "keys" not in state.failed:
        try:  # the file as it is now: a rotation by the CLI shows at once
            current = LocalKeyring.load(provider.path)
        except Exception as exc:  # noqa: BLE001 - a scrape must answer; logged
            log.warning("metrics.keyring_unreadable", error=type(exc).__name__)
        else:
            metrics.KEK_CREATED.set(current.active_created_at.timestamp())
    cert_file = platform.settings.tls_cert_file
    if cert_file is not None:
        try:
            cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        except (OSError, ValueError) as exc:
            # An unreadable certificate reads as expired: the alert fires, the log says why.
            log.warning("metrics.tls_certificate_unreadable", error=type(exc).__name__)
            metrics.TLS_CERT_EXPIRY.set(0)
        else:
            metrics.TLS_CERT_EXPIRY.set(cert.not_valid_after_utc.timestamp())
