"""The process's Prometheus metrics: one registry, the metric objects, the exposition.

Every metric is declared here, once, and nowhere else; the modules that count import this
module and call one method (``inc``, ``observe``, ``set``). The module sits beside
``config`` at the package's root because the layers that count are low (the guard in
``security``, the audit writer in ``store``) as well as high (services, the API).

Labels are closed sets only: a route *template*, a status class, a guard or alert code, a
verdict, a level, a key-provider operation. No label ever carries a person's identifier,
a principal id, an insurer number or a raw path (docs/operations.md, "Metrics").

Several server processes (``uvicorn --workers N``): set ``PROMETHEUS_MULTIPROC_DIR`` to an
empty directory writable by every worker before they start; each process then writes its
samples to files there and :func:`exposition` sums them (prometheus-client's
multiprocess mode). Without it, each process counts in memory.
"""

from __future__ import annotations

import os
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE: Final = CONTENT_TYPE_LATEST

# Registry the metrics are declared in. In multiprocess mode the values go to files and
# the exposition reads them through a fresh registry (see :func:`exposition`).
REGISTRY: Final = CollectorRegistry(auto_describe=True)

_LATENCY_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
_RUN_BUCKETS: Final = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
_BATCH_BUCKETS: Final = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000)

# -- HTTP -----------------------------------------------------------------------------
HTTP_REQUESTS: Final = Counter(
    "tierspayant_http_requests",
    "HTTP requests answered, by method, route template and status class.",
    ("method", "route", "status"),
    registry=REGISTRY,
)
HTTP_LATENCY: Final = Histogram(
    "tierspayant_http_request_duration_seconds",
    "Time to answer an HTTP request, by method, route template and status class.",
    ("method", "route", "status"),
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)

# -- the guard, alerts, canaries -----------------------------------------------------
GUARD_DECISIONS: Final = Counter(
    "tierspayant_guard_decisions",
    "Admissions decided by the guard, by verdict (allow, step_up, deny) and signal code.",
    ("verdict", "code"),
    registry=REGISTRY,
)
ALERTS_RAISED: Final = Counter(
    "tierspayant_alerts_raised",
    "Security alerts raised, by signal code and level (soft, hard).",
    ("code", "level"),
    registry=REGISTRY,
)
CANARY_TOUCHES: Final = Counter(
    "tierspayant_canary_touches",
    "Canary beneficiaries reached: by a lookup, or by rows about to be decrypted or exported.",
    ("path",),
    registry=REGISTRY,
)

# -- audit writer ----------------------------------------------------------------------
AUDIT_BATCH_SIZE: Final = Histogram(
    "tierspayant_audit_writer_batch_events",
    "Events committed by the group-commit audit writer in one batch.",
    buckets=_BATCH_BUCKETS,
    registry=REGISTRY,
)
AUDIT_BATCH_SECONDS: Final = Histogram(
    "tierspayant_audit_writer_batch_seconds",
    "Time the audit writer took to commit one batch.",
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
AUDIT_PENDING: Final = Gauge(
    "tierspayant_audit_writer_pending_events",
    "Audit events queued and not committed yet (the writer's lag, in events).",
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
AUDIT_FAILED: Final = Counter(
    "tierspayant_audit_writer_failed_events",
    "Audit events whose batch failed to commit (their requests failed).",
    registry=REGISTRY,
)

# -- claims, payments, imports -----------------------------------------------------------
ADJUDICATION_BACKLOG: Final = Gauge(
    "tierspayant_adjudication_backlog_claims",
    "Received claims waiting for adjudication, when a run last looked.",
    multiprocess_mode="mostrecent",
    registry=REGISTRY,
)
ADJUDICATED_LINES: Final = Counter(
    "tierspayant_adjudicated_lines",
    "Claim lines adjudicated.",
    registry=REGISTRY,
)
PAYMENT_RUN_SECONDS: Final = Histogram(
    "tierspayant_payment_run_seconds",
    "Duration of a payment run (finished or failed).",
    buckets=_RUN_BUCKETS,
    registry=REGISTRY,
)
INVOICE_TO_TRANSFER_DAYS: Final = Histogram(
    "tierspayant_invoice_to_transfer_business_days",
    "Delay from an invoice's receipt (Paris day) to its transfer's execution date, in "
    "TARGET2 business days, observed once per invoice by the run that paid it.",
    buckets=(0, 1, 2, 3, 5, 7, 10, 15, 20, 30),
    registry=REGISTRY,
)
IMPORT_ROWS: Final = Counter(
    "tierspayant_import_rows",
    "Lines read from beneficiary files.",
    registry=REGISTRY,
)
IMPORT_REJECTS: Final = Counter(
    "tierspayant_import_rejects",
    "Lines of beneficiary files rejected.",
    registry=REGISTRY,
)

# -- keys ------------------------------------------------------------------------------
KEY_PROVIDER_ERRORS: Final = Counter(
    "tierspayant_key_provider_errors",
    "Failures of the key provider (keyring file or HSM), by operation (wrap, unwrap).",
    ("operation",),
    registry=REGISTRY,
)


# -- state read at each scrape (services/ops_gauges.py) and by the jobs ----------------
READINESS_CHECK: Final = Gauge(
    "tierspayant_readiness_check",
    "Outcome of each readiness check when it last ran (1 ok, 0 failed): database, "
    "migrations, redis, keys, audit_writer. Runs on /readyz and on every scrape.",
    ("check",),
    multiprocess_mode="mostrecent",
    registry=REGISTRY,
)
PAYMENT_DUE_CUTOFF: Final = Gauge(
    "tierspayant_payment_due_cutoff_timestamp_seconds",
    "Cut-off (Unix time) of the newest TARGET2 business day whose payment run is due.",
    multiprocess_mode="mostrecent",
    registry=REGISTRY,
)
PAYMENT_DONE_CUTOFF: Final = Gauge(
    "tierspayant_payment_done_cutoff_timestamp_seconds",
    "Cut-off (Unix time) of the execution date of the newest finished payment run "
    "(0 when none ever finished).",
    multiprocess_mode="mostrecent",
    registry=REGISTRY,
)
KEK_CREATED: Final = Gauge(
    "tierspayant_kek_created_timestamp_seconds",
    "Creation time (Unix time) of the active key-encryption key of the local keyring.",
    multiprocess_mode="mostrecent",
    registry=REGISTRY,
)
TLS_CERT_EXPIRY: Final = Gauge(
    "tierspayant_tls_certificate_expiry_timestamp_seconds",
    "End of validity (Unix time) of the reverse proxy's certificate "
    "(TIERSPAYANT_TLS_CERT_FILE; absent when unset).",
    multiprocess_mode="mostrecent",
    registry=REGISTRY,
)
AUDIT_CHAIN_BROKEN: Final = Gauge(
    "tierspayant_audit_chain_broken",
    "1 when the last audit checkpoint found the hash chain broken, 0 when it verified.",
    multiprocess_mode="mostrecent",
    registry=REGISTRY,
)
AUDIT_DEFAULT_PARTITION_ROWS: Final = Gauge(
    "tierspayant_audit_default_partition_events",
    "Audit events in the DEFAULT partition of the log (PostgreSQL): written in a month "
    "that had no partition yet; should be 0 (the checkpoint job creates months ahead).",
    multiprocess_mode="mostrecent",
    registry=REGISTRY,
)
AUDIT_CHECKPOINT_SUCCESS: Final = Gauge(
    "tierspayant_audit_checkpoint_last_success_timestamp_seconds",
    "When (Unix time) the audit chain was last verified by a checkpoint (signed or nothing new).",
    multiprocess_mode="mostrecent",
    registry=REGISTRY,
)
AUDIT_CHECKPOINT_FAILURES: Final = Counter(
    "tierspayant_audit_checkpoint_failures",
    "Audit checkpoints that failed, by code (audit.chain_broken, a file error…).",
    ("code",),
    registry=REGISTRY,
)


def status_class(status: int) -> str:
    """``2xx``, ``4xx``…: the outcome label of an HTTP answer."""
    return f"{status // 100}xx"


def multiprocess_dir() -> str | None:
    """The directory of multiprocess mode, or None when each process counts alone."""
    return os.environ.get(MULTIPROC_ENV) or None


def exposition() -> bytes:
    """The text exposition of every metric (summed over the processes in multiprocess
    mode)."""
    directory = multiprocess_dir()
    if directory is None:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def mark_process_dead(pid: int) -> None:
    """Drop the live gauges of a worker that exited (multiprocess mode; call it from the
    server's child-exit hook)."""
    directory = multiprocess_dir()
    if directory is not None:
        multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
