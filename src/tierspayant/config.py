"""Every setting, read from the environment in one place, with embedded defaults.

Embedded default: a SQLite file and a local keyring file under ``./var``, in-process
limits. Production: ``TIERSPAYANT_DATABASE_URL=postgresql+psycopg://…``,
``TIERSPAYANT_REDIS_URL=redis://…`` and a key provider.

Settings of single components are typed groups (:class:`OidcSettings`,
:class:`SessionSettings`, :class:`JobSettings`, :class:`PriorAuthSettings`,
:class:`BillingSettings`, :class:`EnrolmentSettings`), parsed and checked by
:func:`load_settings`: a bad value stops the start with a :class:`SettingError` naming
its variable, never a request later. Each field is read from ``TIERSPAYANT_<NAME>``; see
docs/operations.md.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from urllib.parse import urlsplit

from tierspayant.domain.amount_limits import DEFAULT_CEILINGS, AmountCeiling
from tierspayant.domain.care import CareDomain
from tierspayant.domain.engagements import AMOUNT_DEFAULTS, MAX_AMOUNT_DAYS, MAX_OPEN_LIMIT
from tierspayant.domain.prior_auth import DEFAULT_POLICY as PRIOR_AUTH_DEFAULTS
from tierspayant.domain.prior_auth import MAX_REVIEW_ABOVE_CENTS, MAX_VALIDITY_DAYS

PREFIX = "TIERSPAYANT_"
# NIST SP 800-63B 5.2.2 allows at most 100 consecutive failures; the CNIL and the France
# Travail sanction (2026) point to far fewer. Ten is the ceiling the design sets.
MAX_FAILED_LOGINS_CEILING = 10
MAX_OPERATOR_FEE_PER_LINE_CENTS = 100_000  # 1,000 EUR a line: anything above is a typo
BASIS_POINTS = 10_000  # 100 %
_LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


MAX_NOTICE_BUSINESS_DAYS = 30  # a fund call's notice: six weeks at most


class SettingError(SystemExit):
    """A setting that cannot be used: the process does not start. ``variable`` names it."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"setting {variable} {message}")
        self.variable = variable


def _raw(source: Mapping[str, str], name: str) -> str | None:
    """The stripped value of ``TIERSPAYANT_<NAME>``; None when unset or empty."""
    raw = source.get(PREFIX + name.upper())
    return raw.strip() or None if raw is not None else None


def _int(source: Mapping[str, str], name: str, default: int) -> int:
    raw = source.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SettingError(name, f"must be an integer, got {raw!r}") from exc


def _whole(source: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """A whole number from ``low`` to ``high`` (digits only: no sign, decimals or units)."""
    raw = _raw(source, name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise SettingError(
            PREFIX + name.upper(), f"must be a whole number from {low} to {high}, got {raw!r}"
        )
    return int(raw)


def _seconds(source: Mapping[str, str], name: str, default: float) -> float:
    """A positive, finite number of seconds (decimals allowed)."""
    raw = _raw(source, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise SettingError(
            PREFIX + name.upper(), f"must be a positive number of seconds, got {raw!r}"
        )
    return value


METRICS_TOKEN_MIN_CHARS = 32


def _metrics_token(source: Mapping[str, str]) -> str | None:
    raw = _raw(source, "metrics_token")
    if raw is not None and len(raw) < METRICS_TOKEN_MIN_CHARS:
        raise SettingError(
            PREFIX + "METRICS_TOKEN", f"must have at least {METRICS_TOKEN_MIN_CHARS} characters"
        )
    return raw


def _flag(source: Mapping[str, str], name: str) -> bool:
    raw = _raw(source, name)
    if raw is None:
        return False
    if raw.lower() not in _TRUE | _FALSE:
        raise SettingError(PREFIX + name.upper(), f"must be 1 or 0 (true/false), got {raw!r}")
    return raw.lower() in _TRUE


def _required(source: Mapping[str, str], name: str) -> str:
    raw = _raw(source, name)
    if raw is None:
        raise SettingError(PREFIX + name.upper(), "is required when TIERSPAYANT_OIDC_ISSUER is set")
    return raw


def _url(source: Mapping[str, str], name: str, *, https: bool) -> str:
    """An absolute http(s) URL; with ``https``, plain http only on the local machine."""
    variable = PREFIX + name.upper()
    raw = _required(source, name)
    parts = urlsplit(raw)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise SettingError(variable, f"must be an absolute http(s) URL, got {raw!r}")
    if https and parts.scheme != "https" and parts.hostname not in _LOCAL_HOSTS:
        raise SettingError(variable, f"must use https (plain http only on localhost), got {raw!r}")
    return raw


def _cache_seconds(source: Mapping[str, str]) -> int:
    value = _int(source, "TIERSPAYANT_CACHE_SECONDS", 2)
    if not 0 <= value <= 60:
        raise SettingError("TIERSPAYANT_CACHE_SECONDS", "must be between 0 and 60")
    return value


# The amr values (RFC 8176) of a strong login: proof of possession of a key ("pop"), a
# hardware key ("hwk"), a smart card ("sc": the CPS card), multi-factor ("mfa": e-CPS).
# A token whose amr names none of them (a password, an SMS code, a PIN alone) is refused.
DEFAULT_OIDC_AMR: frozenset[str] = frozenset({"pop", "hwk", "sc", "mfa"})


@dataclass(frozen=True)
class OidcSettings:
    """The professionals' OpenID provider (Pro Santé Connect) for the provider portal."""

    issuer: str  # TIERSPAYANT_OIDC_ISSUER: without it, no OIDC login is offered
    client_id: str  # TIERSPAYANT_OIDC_CLIENT_ID
    client_secret: str = field(repr=False)  # TIERSPAYANT_OIDC_CLIENT_SECRET
    redirect_uri: str = ""  # TIERSPAYANT_OIDC_REDIRECT_URI
    required_acr: frozenset[str] = frozenset({"eidas2", "eidas3"})  # space-separated
    # TIERSPAYANT_OIDC_ALLOWED_AMR, space-separated; unset or empty: DEFAULT_OIDC_AMR
    allowed_amr: frozenset[str] = DEFAULT_OIDC_AMR
    max_age_seconds: int = 600  # TIERSPAYANT_OIDC_MAX_AGE


@dataclass(frozen=True)
class SessionSettings:
    """Limits of portal logins and sessions (defaults from the security design)."""

    idle_seconds: int = 15 * 60  # TIERSPAYANT_SESSION_IDLE_SECONDS
    absolute_seconds: int = 8 * 3600  # TIERSPAYANT_SESSION_ABSOLUTE_SECONDS
    max_failed_logins: int = 10  # TIERSPAYANT_MAX_FAILED_LOGINS
    lockout_seconds: int = 15 * 60  # TIERSPAYANT_LOCKOUT_SECONDS
    # TIERSPAYANT_PORTAL_TLS: treat every portal request as TLS (cookie names, HSTS)
    portal_tls: bool = False


@dataclass(frozen=True)
class JobSettings:
    """The background work of ``tierspayant serve``."""

    adjudication_interval_seconds: float = 10.0
    checkpoint_interval_seconds: float = 300.0
    # TIERSPAYANT_AUDIT_CHECKPOINT_DIR; None: ``<data dir>/checkpoints``
    audit_checkpoint_dir: Path | None = None
    # The scheduler of ``serve`` (docs/operations.md): TIERSPAYANT_SCHEDULER=0 leaves the
    # payment and billing runs to systemd timers or an operator.
    scheduler: bool = True
    payment_cutoff: time = time(16, 0)  # TIERSPAYANT_PAYMENT_CUTOFF, HH:MM in Paris
    nightly_at: time = time(2, 0)  # TIERSPAYANT_NIGHTLY_AT, HH:MM in Paris
    scheduler_tick_seconds: float = 5.0  # TIERSPAYANT_SCHEDULER_TICK_SECONDS

    def checkpoint_dir(self, data_dir: Path) -> Path:
        """Where signed audit checkpoints are exported."""
        return self.audit_checkpoint_dir or data_dir / "checkpoints"


@dataclass(frozen=True)
class PriorAuthSettings:
    """When a prior-authorisation request waits for a person, how long an agreement lasts."""

    review_above_cents: int = PRIOR_AUTH_DEFAULTS.review_above_cents
    validity_days: int = PRIOR_AUTH_DEFAULTS.validity_days


@dataclass(frozen=True)
class EngagementSettings:
    """Engagements on amounts (calculations): validity in days after the care date, per
    kind of care, and how many may be open at once per person and care domain."""

    equipment_days: int = AMOUNT_DEFAULTS.equipment_days  # optics, dental, hearing
    other_days: int = AMOUNT_DEFAULTS.other_days  # pharmacy, consultations…: the care day
    max_open: int = AMOUNT_DEFAULTS.max_open


@dataclass(frozen=True)
class BillingSettings:
    """The platform's default operator fee, for insurers without their own rate, and the
    debtor's notice of a fund call in TARGET2 business days (agreed in the insurer's
    contract; DOMAIN.md: 14 calendar days unless agreed shorter)."""

    operator_fee_per_line_cents: int = 0
    notice_business_days: int = 2
    # Business days between the verification of a provider's new bank details and the
    # first transfer to them (TIERSPAYANT_BANK_CHANGE_COOLING_OFF_DAYS).
    bank_change_cooling_off_days: int = 3


@dataclass(frozen=True)
class EnrolmentSettings:
    """The share of covered beneficiaries a full import may end without a confirmation."""

    confirm_terminations_above_bp: int = 200  # 2 %


@dataclass(frozen=True)
class Settings:
    """Settings of one running platform (API, CLI or job)."""

    data_dir: Path
    database_url: str
    keyring_path: Path
    redis_url: str | None = None
    access_token_ttl_seconds: int = 600
    # How long this process may reuse a token's principal, an insurer or a catalogue
    # version it read (app/caching.py); 0 reads them on every request.
    cache_seconds: int = 2
    max_body_bytes: int = 256 * 1024
    # TIERSPAYANT_MAX_HEADER_BYTES: one request header (name and value);
    # TIERSPAYANT_MAX_HEADERS_BYTES: all of them. Above either: 431.
    max_header_bytes: int = 8 * 1024
    max_headers_bytes: int = 16 * 1024
    # TIERSPAYANT_API_DOCS=1 serves the OpenAPI document at /openapi.json (off by default:
    # production leaves it off). There is no documentation UI: it would load scripts.
    api_docs: bool = False
    # TIERSPAYANT_METRICS_TOKEN: the bearer token Prometheus presents on /metrics (at least
    # 32 characters). Unset: /metrics answers 404, as an unknown path.
    metrics_token: str | None = None
    # TIERSPAYANT_TLS_CERT_FILE: the reverse proxy's certificate (PEM, public): its end of
    # validity is a metric, for the expiry alert. Unset: no such metric.
    tls_cert_file: Path | None = None
    audit_db_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    rate_limits: dict[str, str] = field(default_factory=dict)
    alert_webhook_url: str | None = None
    guard_policy: str | None = None  # JSON object, or the path of a JSON file
    guard_enabled: bool = True
    # The operator's settlement account: debited by provider payments (pain.001), credited
    # by insurers' fund calls (pain.008, under this SEPA creditor identifier). Demo values.
    operator_name: str = "Tierspayant Operateur"
    operator_iban: str = "FR7630006000011234567890189"
    operator_bic: str = "AGRIFRPPXXX"
    sepa_creditor_id: str = "FR81ZZZ534A21"
    oidc: OidcSettings | None = None  # None: the provider portal has no login
    sessions: SessionSettings = SessionSettings()
    jobs: JobSettings = JobSettings()
    prior_auth: PriorAuthSettings = PriorAuthSettings()
    engagements: EngagementSettings = EngagementSettings()
    billing: BillingSettings = BillingSettings()
    enrolment: EnrolmentSettings = EnrolmentSettings()
    # Ceilings of invoice amounts by care domain (domain/amount_limits.py, docs/money.md).
    amount_ceilings: Mapping[CareDomain, AmountCeiling] = field(
        default_factory=lambda: dict(DEFAULT_CEILINGS)
    )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read the settings from ``env`` (default: the process environment).

    Raises :class:`SettingError` (a ``SystemExit`` naming the variable) on a bad value.
    """
    source: Mapping[str, str] = os.environ if env is None else env
    data_dir = Path(source.get("TIERSPAYANT_DATA_DIR", "var")).resolve()
    database_url = source.get(
        "TIERSPAYANT_DATABASE_URL", f"sqlite:///{data_dir / 'tierspayant.sqlite3'}"
    )
    keyring_path = Path(source.get("TIERSPAYANT_KEYRING", str(data_dir / "keyring.json")))
    ttl = _int(source, "TIERSPAYANT_ACCESS_TOKEN_TTL", 600)
    max_body = _int(source, "TIERSPAYANT_MAX_BODY_BYTES", 256 * 1024)
    port = _int(source, "TIERSPAYANT_PORT", 8000)
    rate_limits = _rules(source.get("TIERSPAYANT_RATE_LIMITS", ""))
    guard = source.get("TIERSPAYANT_GUARD", "on").strip().lower()
    if guard not in {"on", "off"}:
        raise SettingError("TIERSPAYANT_GUARD", "must be 'on' or 'off'")
    if guard == "off" and not database_url.startswith("sqlite"):
        # Switching the guard off exists to measure its cost on a laptop; never in production.
        raise SystemExit("TIERSPAYANT_GUARD=off is refused outside the embedded SQLite mode")
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        keyring_path=keyring_path,
        redis_url=source.get("TIERSPAYANT_REDIS_URL") or None,
        access_token_ttl_seconds=ttl,
        cache_seconds=_cache_seconds(source),
        max_body_bytes=max_body,
        max_header_bytes=_whole(source, "max_header_bytes", 8 * 1024, 1024, 1024 * 1024),
        max_headers_bytes=_whole(source, "max_headers_bytes", 16 * 1024, 1024, 1024 * 1024),
        api_docs=_flag(source, "api_docs"),
        metrics_token=_metrics_token(source),
        tls_cert_file=Path(cert) if (cert := source.get("TIERSPAYANT_TLS_CERT_FILE")) else None,
        host=source.get("TIERSPAYANT_HOST", "127.0.0.1"),
        port=port,
        rate_limits=rate_limits,
        alert_webhook_url=source.get("TIERSPAYANT_ALERT_WEBHOOK") or None,
        guard_policy=source.get("TIERSPAYANT_GUARD_POLICY") or None,
        guard_enabled=guard == "on",
        operator_name=source.get("TIERSPAYANT_OPERATOR_NAME") or Settings.operator_name,
        operator_iban=source.get("TIERSPAYANT_OPERATOR_IBAN") or Settings.operator_iban,
        operator_bic=source.get("TIERSPAYANT_OPERATOR_BIC") or Settings.operator_bic,
        sepa_creditor_id=source.get("TIERSPAYANT_SEPA_CREDITOR_ID") or Settings.sepa_creditor_id,
        oidc=_oidc(source),
        sessions=_sessions(source),
        jobs=_jobs(source),
        prior_auth=_prior_auth(source),
        engagements=_engagements(source),
        billing=BillingSettings(
            operator_fee_per_line_cents=_whole(
                source, "operator_fee_per_line_cents", 0, 0, MAX_OPERATOR_FEE_PER_LINE_CENTS
            ),
            notice_business_days=_whole(
                source,
                "billing_notice_business_days",
                BillingSettings.notice_business_days,
                1,
                MAX_NOTICE_BUSINESS_DAYS,
            ),
            bank_change_cooling_off_days=_whole(
                source,
                "bank_change_cooling_off_days",
                BillingSettings.bank_change_cooling_off_days,
                0,
                30,
            ),
        ),
        amount_ceilings=_amount_ceilings(source),
        enrolment=EnrolmentSettings(
            confirm_terminations_above_bp=_whole(
                source,
                "enrolment_confirm_terminations_above_bp",
                EnrolmentSettings.confirm_terminations_above_bp,
                0,
                BASIS_POINTS,
            )
        ),
    )


def _oidc(source: Mapping[str, str]) -> OidcSettings | None:
    names = ("client_id", "client_secret", "redirect_uri", "required_acr", "allowed_amr")
    if _raw(source, "oidc_issuer") is None:
        for name in (*names, "max_age"):
            if _raw(source, f"oidc_{name}") is not None:
                # Half a configuration is a mistake: it would silently offer no login.
                raise SettingError(
                    f"{PREFIX}OIDC_{name.upper()}", "is set but TIERSPAYANT_OIDC_ISSUER is not"
                )
        return None
    client_id = _required(source, "oidc_client_id")
    secret = _required(source, "oidc_client_secret")
    required_acr = frozenset((_raw(source, "oidc_required_acr") or "eidas2 eidas3").split())
    return OidcSettings(
        issuer=_url(source, "oidc_issuer", https=True),
        client_id=client_id,
        client_secret=secret,
        redirect_uri=_url(source, "oidc_redirect_uri", https=False),
        required_acr=required_acr,
        allowed_amr=frozenset((_raw(source, "oidc_allowed_amr") or "").split()) or DEFAULT_OIDC_AMR,
        max_age_seconds=_whole(source, "oidc_max_age", 600, 1, 86_400),
    )


def _sessions(source: Mapping[str, str]) -> SessionSettings:
    default = SessionSettings()
    day = 86_400
    sessions = SessionSettings(
        idle_seconds=_whole(source, "session_idle_seconds", default.idle_seconds, 1, day),
        absolute_seconds=_whole(
            source, "session_absolute_seconds", default.absolute_seconds, 1, 7 * day
        ),
        max_failed_logins=_whole(
            source, "max_failed_logins", default.max_failed_logins, 1, MAX_FAILED_LOGINS_CEILING
        ),
        lockout_seconds=_whole(source, "lockout_seconds", default.lockout_seconds, 1, 7 * day),
        portal_tls=_flag(source, "portal_tls"),
    )
    if sessions.absolute_seconds < sessions.idle_seconds:
        raise SettingError(
            "TIERSPAYANT_SESSION_ABSOLUTE_SECONDS",
            f"must be at least TIERSPAYANT_SESSION_IDLE_SECONDS ({sessions.idle_seconds}),"
            f" got {sessions.absolute_seconds}",
        )
    return sessions


def _jobs(source: Mapping[str, str]) -> JobSettings:
    default = JobSettings()
    directory = _raw(source, "audit_checkpoint_dir")
    return JobSettings(
        adjudication_interval_seconds=_seconds(
            source, "adjudication_interval_seconds", default.adjudication_interval_seconds
        ),
        checkpoint_interval_seconds=_seconds(
            source, "checkpoint_interval_seconds", default.checkpoint_interval_seconds
        ),
        audit_checkpoint_dir=Path(directory) if directory else None,
        scheduler=_flag(source, "scheduler") if _raw(source, "scheduler") else default.scheduler,
        payment_cutoff=_clock_time(source, "payment_cutoff", default.payment_cutoff),
        nightly_at=_clock_time(source, "nightly_at", default.nightly_at),
        scheduler_tick_seconds=_seconds(
            source, "scheduler_tick_seconds", default.scheduler_tick_seconds
        ),
    )


def _clock_time(source: Mapping[str, str], name: str, default: time) -> time:
    """A time of day written HH:MM (24-hour clock, Paris time where it is used)."""
    raw = _raw(source, name)
    if raw is None:
        return default
    hours, sep, minutes = raw.partition(":")
    digits = sep and len(minutes) == 2 and hours.isdigit() and minutes.isdigit()
    if digits and int(hours) < 24 and int(minutes) < 60:
        return time(int(hours), int(minutes))
    raise SettingError(PREFIX + name.upper(), f"must be a time HH:MM, got {raw!r}")


def _prior_auth(source: Mapping[str, str]) -> PriorAuthSettings:
    default = PriorAuthSettings()
    return PriorAuthSettings(
        review_above_cents=_whole(
            source,
            "prior_auth_review_above_cents",
            default.review_above_cents,
            0,
            MAX_REVIEW_ABOVE_CENTS,
        ),
        validity_days=_whole(
            source, "prior_auth_validity_days", default.validity_days, 1, MAX_VALIDITY_DAYS
        ),
    )


def _engagements(source: Mapping[str, str]) -> EngagementSettings:
    default = EngagementSettings()
    return EngagementSettings(
        equipment_days=_whole(
            source, "engagement_equipment_days", default.equipment_days, 0, MAX_AMOUNT_DAYS
        ),
        other_days=_whole(source, "engagement_other_days", default.other_days, 0, MAX_AMOUNT_DAYS),
        max_open=_whole(source, "engagement_max_open", default.max_open, 1, MAX_OPEN_LIMIT),
    )


def _amount_ceilings(source: Mapping[str, str]) -> dict[CareDomain, AmountCeiling]:
    """``PHAR=3000000/10000000;HOSP=…``: line/invoice ceilings in cents, over the defaults."""
    name = PREFIX + "AMOUNT_CEILINGS"
    ceilings = dict(DEFAULT_CEILINGS)
    for part in (_raw(source, "amount_ceilings") or "").split(";"):
        if not part.strip():
            continue
        domain_text, _, values = part.partition("=")
        line_text, _, invoice_text = values.partition("/")
        try:
            domain = CareDomain(domain_text.strip().upper())
        except ValueError:
            raise SettingError(name, f"names an unknown care domain {domain_text!r}") from None
        texts = (line_text.strip(), invoice_text.strip())
        if not all(t.isascii() and t.isdigit() for t in texts):
            raise SettingError(
                name, f"must list DOMAIN=line_cents/invoice_cents pairs, got {part.strip()!r}"
            )
        try:
            ceilings[domain] = AmountCeiling(int(texts[0]), int(texts[1]))
        except ValueError as exc:
            raise SettingError(name, f"{domain.value}: {exc}") from None
    return ceilings


def _rules(raw: str) -> dict[str, str]:
    """Parse ``name=120/minute;other=10/second`` into a mapping."""
    rules: dict[str, str] = {}
    for part in raw.split(";"):
        if not part.strip():
            continue
        name, sep, rule = part.partition("=")
        if not sep or not name.strip() or not rule.strip():
            raise SettingError(
                "TIERSPAYANT_RATE_LIMITS", f"must list name=rule pairs, got {part!r}"
            )
        rules[name.strip()] = rule.strip()
    return rules
