"""Settings: each one parsed, each bad value refused at start naming its variable."""

from __future__ import annotations

from collections.abc import Callable
from datetime import time
from pathlib import Path

import pytest

from tierspayant.config import (
    BillingSettings,
    EnrolmentSettings,
    JobSettings,
    OidcSettings,
    PriorAuthSettings,
    SessionSettings,
    SettingError,
    Settings,
    load_settings,
)
from tierspayant.domain.prior_auth import DEFAULT_POLICY
from tierspayant.services.accounts import AuthPolicy, auth_policy
from tierspayant.services.prior_auth import prior_auth_policy

OIDC = {
    "TIERSPAYANT_OIDC_ISSUER": "https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet",
    "TIERSPAYANT_OIDC_CLIENT_ID": "tierspayant",
    "TIERSPAYANT_OIDC_CLIENT_SECRET": "s3cret-s3cret-s3cret",
    "TIERSPAYANT_OIDC_REDIRECT_URI": "https://tp.example.fr/portail/prestataire/oidc/retour",
}


def _load(tmp_path: Path, **env: str) -> Settings:
    return load_settings({"TIERSPAYANT_DATA_DIR": str(tmp_path), **env})


def test_given_nothing_then_the_defaults_are_those_of_before(tmp_path: Path) -> None:
    settings = _load(tmp_path)
    assert settings.oidc is None
    assert settings.sessions == SessionSettings(
        idle_seconds=900,
        absolute_seconds=8 * 3600,
        max_failed_logins=10,
        lockout_seconds=900,
        portal_tls=False,
    )
    assert settings.jobs == JobSettings(10.0, 300.0, None)
    assert settings.jobs.checkpoint_dir(settings.data_dir) == tmp_path.resolve() / "checkpoints"
    assert settings.prior_auth == PriorAuthSettings(review_above_cents=150_000, validity_days=84)
    assert settings.billing == BillingSettings(operator_fee_per_line_cents=0)
    assert settings.enrolment == EnrolmentSettings(confirm_terminations_above_bp=200)
    # and the services' policies built from them are their own defaults
    assert auth_policy(settings) == AuthPolicy()
    assert prior_auth_policy(settings) == DEFAULT_POLICY


def test_given_empty_values_then_the_defaults_apply(tmp_path: Path) -> None:
    names = ("SESSION_IDLE_SECONDS", "PORTAL_TLS", "OIDC_ISSUER", "PRIOR_AUTH_VALIDITY_DAYS")
    settings = _load(tmp_path, **{f"TIERSPAYANT_{name}": "" for name in names})
    assert settings == _load(tmp_path)


@pytest.mark.parametrize(
    ("variable", "value", "read", "expected"),
    [
        ("SESSION_IDLE_SECONDS", "600", lambda s: s.sessions.idle_seconds, 600),
        ("SESSION_ABSOLUTE_SECONDS", "3600", lambda s: s.sessions.absolute_seconds, 3600),
        ("MAX_FAILED_LOGINS", "5", lambda s: s.sessions.max_failed_logins, 5),
        ("LOCKOUT_SECONDS", "60", lambda s: s.sessions.lockout_seconds, 60),
        ("PORTAL_TLS", "1", lambda s: s.sessions.portal_tls, True),
        ("PORTAL_TLS", "true", lambda s: s.sessions.portal_tls, True),
        ("PORTAL_TLS", "0", lambda s: s.sessions.portal_tls, False),
        (
            "ADJUDICATION_INTERVAL_SECONDS",
            "2.5",
            lambda s: s.jobs.adjudication_interval_seconds,
            2.5,
        ),
        ("CHECKPOINT_INTERVAL_SECONDS", "60", lambda s: s.jobs.checkpoint_interval_seconds, 60.0),
        ("AUDIT_CHECKPOINT_DIR", "/srv/cp", lambda s: s.jobs.audit_checkpoint_dir, Path("/srv/cp")),
        ("PRIOR_AUTH_REVIEW_ABOVE_CENTS", "0", lambda s: s.prior_auth.review_above_cents, 0),
        ("PRIOR_AUTH_VALIDITY_DAYS", " 30 ", lambda s: s.prior_auth.validity_days, 30),
        ("OPERATOR_FEE_PER_LINE_CENTS", "15", lambda s: s.billing.operator_fee_per_line_cents, 15),
        ("BILLING_NOTICE_BUSINESS_DAYS", "10", lambda s: s.billing.notice_business_days, 10),
        (
            "BANK_CHANGE_COOLING_OFF_DAYS",
            "5",
            lambda s: s.billing.bank_change_cooling_off_days,
            5,
        ),
        (
            "ENROLMENT_CONFIRM_TERMINATIONS_ABOVE_BP",
            "10000",
            lambda s: s.enrolment.confirm_terminations_above_bp,
            10_000,
        ),
    ],
)
def test_given_a_value_then_it_is_read_typed(
    tmp_path: Path, variable: str, value: str, read: Callable[[Settings], object], expected: object
) -> None:
    assert read(_load(tmp_path, **{f"TIERSPAYANT_{variable}": value})) == expected


def test_given_an_issuer_then_the_oidc_settings_are_read(tmp_path: Path) -> None:
    settings = _load(
        tmp_path,
        **OIDC,
        TIERSPAYANT_OIDC_REQUIRED_ACR="eidas3",
        TIERSPAYANT_OIDC_ALLOWED_AMR="pop  mfa",
        TIERSPAYANT_OIDC_MAX_AGE="300",
    )
    assert settings.oidc == OidcSettings(
        issuer=OIDC["TIERSPAYANT_OIDC_ISSUER"],
        client_id="tierspayant",
        client_secret="s3cret-s3cret-s3cret",
        redirect_uri=OIDC["TIERSPAYANT_OIDC_REDIRECT_URI"],
        required_acr=frozenset({"eidas3"}),
        allowed_amr=frozenset({"pop", "mfa"}),
        max_age_seconds=300,
    )
    assert "s3cret" not in repr(settings)
    defaults = _load(tmp_path, **OIDC).oidc
    assert defaults is not None
    assert (defaults.required_acr, defaults.allowed_amr, defaults.max_age_seconds) == (
        frozenset({"eidas2", "eidas3"}),
        frozenset({"pop", "hwk", "sc", "mfa"}),
        600,
    )
    local = _load(tmp_path, **{**OIDC, "TIERSPAYANT_OIDC_ISSUER": "http://127.0.0.1:8001"}).oidc
    assert local is not None
    assert local.issuer == "http://127.0.0.1:8001"


BAD = [
    ("METRICS_TOKEN", "short", "must have at least 32 characters"),
    ("SESSION_IDLE_SECONDS", "15m", "must be a whole number from 1 to 86400, got '15m'"),
    ("SESSION_IDLE_SECONDS", "0", "must be a whole number from 1 to 86400, got '0'"),
    ("SESSION_ABSOLUTE_SECONDS", "-1", "must be a whole number from 1 to 604800, got '-1'"),
    (
        "SESSION_ABSOLUTE_SECONDS",
        "60",
        "must be at least TIERSPAYANT_SESSION_IDLE_SECONDS (900), got 60",
    ),
    ("MAX_FAILED_LOGINS", "11", "must be a whole number from 1 to 10, got '11'"),
    ("MAX_FAILED_LOGINS", "0", "must be a whole number from 1 to 10, got '0'"),
    ("LOCKOUT_SECONDS", "1e3", "must be a whole number from 1 to 604800, got '1e3'"),
    ("PORTAL_TLS", "oui", "must be 1 or 0 (true/false), got 'oui'"),
    ("ADJUDICATION_INTERVAL_SECONDS", "0", "must be a positive number of seconds, got '0'"),
    ("ADJUDICATION_INTERVAL_SECONDS", "nan", "must be a positive number of seconds, got 'nan'"),
    ("CHECKPOINT_INTERVAL_SECONDS", "5 min", "must be a positive number of seconds, got '5 min'"),
    (
        "PRIOR_AUTH_REVIEW_ABOVE_CENTS",
        "15OO00",
        "must be a whole number from 0 to 100000000, got '15OO00'",
    ),
    ("PRIOR_AUTH_REVIEW_ABOVE_CENTS", "-1", "must be a whole number from 0 to 100000000, got '-1'"),
    (
        "PRIOR_AUTH_REVIEW_ABOVE_CENTS",
        "1500.00",
        "must be a whole number from 0 to 100000000, got '1500.00'",
    ),
    ("PRIOR_AUTH_VALIDITY_DAYS", "0", "must be a whole number from 1 to 366, got '0'"),
    ("PRIOR_AUTH_VALIDITY_DAYS", "367", "must be a whole number from 1 to 366, got '367'"),
    (
        "PRIOR_AUTH_VALIDITY_DAYS",
        "trois mois",
        "must be a whole number from 1 to 366, got 'trois mois'",
    ),
    ("OPERATOR_FEE_PER_LINE_CENTS", "0.15", "must be a whole number from 0 to 100000, got '0.15'"),
    ("BILLING_NOTICE_BUSINESS_DAYS", "0", "must be a whole number from 1 to 30, got '0'"),
    ("BILLING_NOTICE_BUSINESS_DAYS", "14j", "must be a whole number from 1 to 30, got '14j'"),
    (
        "OPERATOR_FEE_PER_LINE_CENTS",
        "100001",
        "must be a whole number from 0 to 100000, got '100001'",
    ),
    ("BANK_CHANGE_COOLING_OFF_DAYS", "31", "must be a whole number from 0 to 30, got '31'"),
    (
        "ENROLMENT_CONFIRM_TERMINATIONS_ABOVE_BP",
        "2%",
        "must be a whole number from 0 to 10000, got '2%'",
    ),
    (
        "ENROLMENT_CONFIRM_TERMINATIONS_ABOVE_BP",
        "10001",
        "must be a whole number from 0 to 10000, got '10001'",
    ),
    ("OIDC_CLIENT_ID", "orphan", "is set but TIERSPAYANT_OIDC_ISSUER is not"),
    ("CACHE_SECONDS", "61", "must be between 0 and 60"),
    ("PORT", "http", "must be an integer, got 'http'"),
    ("GUARD", "maybe", "must be 'on' or 'off'"),
    ("RATE_LIMITS", "lookup", "must list name=rule pairs, got 'lookup'"),
]

BAD_OIDC = [
    (
        "OIDC_ISSUER",
        "http://psc.example.fr",
        "must use https (plain http only on localhost), got 'http://psc.example.fr'",
    ),
    ("OIDC_ISSUER", "psc.example.fr", "must be an absolute http(s) URL, got 'psc.example.fr'"),
    (
        "OIDC_REDIRECT_URI",
        "/portail/prestataire/oidc/retour",
        "must be an absolute http(s) URL, got '/portail/prestataire/oidc/retour'",
    ),
    ("OIDC_REDIRECT_URI", "", "is required when TIERSPAYANT_OIDC_ISSUER is set"),
    ("OIDC_CLIENT_SECRET", "", "is required when TIERSPAYANT_OIDC_ISSUER is set"),
    ("OIDC_MAX_AGE", "0", "must be a whole number from 1 to 86400, got '0'"),
]


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [pytest.param(*case, id=f"{case[0]}={case[1]}") for case in BAD],
)
def test_given_a_bad_value_then_the_start_is_refused_naming_it(
    tmp_path: Path, variable: str, value: str, message: str
) -> None:
    with pytest.raises(SettingError) as refused:
        _load(tmp_path, **{f"TIERSPAYANT_{variable}": value})
    assert str(refused.value) == f"setting TIERSPAYANT_{variable} {message}"
    assert refused.value.variable == f"TIERSPAYANT_{variable}"
    assert isinstance(refused.value, SystemExit)  # the command line prints it and stops


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [pytest.param(*case, id=f"{case[0]}={case[1]}") for case in BAD_OIDC],
)
def test_given_a_bad_oidc_value_then_the_start_is_refused_naming_it(
    tmp_path: Path, variable: str, value: str, message: str
) -> None:
    with pytest.raises(SettingError) as refused:
        _load(tmp_path, **{**OIDC, f"TIERSPAYANT_{variable}": value})
    assert str(refused.value) == f"setting TIERSPAYANT_{variable} {message}"
    assert refused.value.variable == f"TIERSPAYANT_{variable}"


def test_the_scheduler_settings(tmp_path: Path) -> None:
    base = {"TIERSPAYANT_DATA_DIR": str(tmp_path)}
    default = load_settings(base).jobs
    assert default.scheduler is True
    assert (default.payment_cutoff, default.nightly_at) == (time(16, 0), time(2, 0))
    jobs = load_settings(
        {
            **base,
            "TIERSPAYANT_SCHEDULER": "0",
            "TIERSPAYANT_PAYMENT_CUTOFF": "15:45",
            "TIERSPAYANT_NIGHTLY_AT": "01:05",
        }
    ).jobs
    assert (jobs.scheduler, jobs.payment_cutoff, jobs.nightly_at) == (
        False,
        time(15, 45),
        time(1, 5),
    )
    for bad in ("16h", "24:00", "9:5", "12:60"):
        with pytest.raises(SettingError, match="TIERSPAYANT_PAYMENT_CUTOFF"):
            load_settings({**base, "TIERSPAYANT_PAYMENT_CUTOFF": bad})
