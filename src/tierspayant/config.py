"""Every setting, read from the environment in one place, with embedded defaults.

Embedded default: a SQLite file and a local keyring file under ``./var``, in-process
limits. Production: ``TIERSPAYANT_DATABASE_URL=postgresql+psycopg://…``,
``TIERSPAYANT_REDIS_URL=redis://…`` and a key provider.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


def _int(source: Mapping[str, str], name: str, default: int) -> int:
    raw = source.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SystemExit(f"setting {name} must be an integer, got {raw!r}") from exc


def _cache_seconds(source: Mapping[str, str]) -> int:
    value = _int(source, "TIERSPAYANT_CACHE_SECONDS", 2)
    if not 0 <= value <= 60:
        raise SystemExit("setting TIERSPAYANT_CACHE_SECONDS must be between 0 and 60")
    return value


@dataclass(frozen=True)
class Settings:
    """Settings of one running platform (API, CLI or job)."""

    data_dir: Path
    database_url: str
    keyring_path: Path
    redis_url: str | None = None
    access_token_ttl_seconds: int = 600
    # How long this process may reuse a token's principal, an insurer or a catalogue
    # version it read (services/caching.py); 0 reads them on every request.
    cache_seconds: int = 2
    max_body_bytes: int = 256 * 1024
    audit_db_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    rate_limits: dict[str, str] = field(default_factory=dict)
    alert_webhook_url: str | None = None
    guard_policy: str | None = None  # JSON object, or the path of a JSON file
    guard_enabled: bool = True
    extra: dict[str, str] = field(default_factory=dict)
    # The operator's settlement account: debited by provider payments (pain.001), credited
    # by insurers' fund calls (pain.008, under this SEPA creditor identifier). Demo values.
    operator_name: str = "Tierspayant Operateur"
    operator_iban: str = "FR7630006000011234567890189"
    operator_bic: str = "AGRIFRPPXXX"
    sepa_creditor_id: str = "FR81ZZZ534A21"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read the settings from ``env`` (default: the process environment)."""
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
        raise SystemExit("TIERSPAYANT_GUARD must be 'on' or 'off'")
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
        extra=_extra(source),
    )


# Settings of single components (OIDC issuer, session limits, checkpoint directory…) read
# from ``TIERSPAYANT_<NAME>`` into ``Settings.extra["<name>"]``; see docs/operations.md.
EXTRA_KEYS = (
    "oidc_issuer",
    "oidc_client_id",
    "oidc_client_secret",
    "oidc_redirect_uri",
    "oidc_required_acr",
    "oidc_allowed_amr",
    "oidc_max_age",
    "portal_tls",
    "audit_checkpoint_dir",
    "checkpoint_interval_seconds",
    "adjudication_interval_seconds",
    "session_idle_seconds",
    "session_absolute_seconds",
    "max_failed_logins",
    "lockout_seconds",
    "prior_auth_review_above_cents",
    "prior_auth_validity_days",
    "operator_fee_per_line_cents",
    "enrolment_confirm_terminations_above_bp",
)


def _extra(source: Mapping[str, str]) -> dict[str, str]:
    return {
        key: source[f"TIERSPAYANT_{key.upper()}"]
        for key in EXTRA_KEYS
        if source.get(f"TIERSPAYANT_{key.upper()}")
    }


def _rules(raw: str) -> dict[str, str]:
    """Parse ``name=120/minute;other=10/second`` into a mapping."""
    rules: dict[str, str] = {}
    for part in raw.split(";"):
        if not part.strip():
            continue
        name, sep, rule = part.partition("=")
        if not sep or not name.strip() or not rule.strip():
            raise SystemExit(f"TIERSPAYANT_RATE_LIMITS: expected name=rule, got {part!r}")
        rules[name.strip()] = rule.strip()
    return rules
