"""Human accounts of the portals: logins, second factors, sessions.

Who logs in how (details and references in ``docs/authentication.md``):

- health professionals: OpenID Connect (Pro Santé Connect), :func:`login_oidc`, after
  :mod:`tierspayant.security.oidc` has checked the ID token (acr, amr, auth_time);
- insurer staff, operator staff, members: :func:`begin_login` (argon2id password) then
  :func:`complete_mfa` (TOTP, WebAuthn or a one-time recovery code). The second factor is
  mandatory: an account without one sets one up first (:func:`enrol_totp` then
  :func:`confirm_totp`, or the WebAuthn pair) and only then gets a session.

Failures all look alike to the caller (``auth.invalid_credentials``, ``auth.mfa_failed``);
the audit log records the precise reason. Ten consecutive failures (passwords and second
factors together) lock the account for 15 minutes; any further failure while the count
stays at ten locks it again. Sessions end after 15 minutes without activity and 8 hours
after login, whichever comes first, and can be revoked one by one, per account or per
principal (suspension by the guard).

One module per part, each importing only those before it: ``common`` (kinds, policy,
values, audit and lockout helpers), ``sessions``, ``admin`` (create, disable, unlock),
``login`` (password step), ``second_factor`` (the second step, step-up),
``second_factor_setup`` (TOTP or security key on a new account, recovery codes),
``oidc`` and ``demo_reset`` (fresh credentials for the demo's accounts). Their SQL is in
:mod:`tierspayant.store.accounts`. Import from this package.
"""

from __future__ import annotations

from tierspayant.services.accounts.admin import (
    create_account,
    disable_account,
    find_account,
    get_account,
    unlock_account,
)
from tierspayant.services.accounts.common import (
    MAX_FAILED_LOGINS_CEILING,
    Account,
    AccountKind,
    AuthPolicy,
    Enrolled,
    Factor,
    LoginChallenge,
    Session,
    SessionInfo,
    TotpEnrolment,
    auth_policy,
    normalise_login,
)
from tierspayant.services.accounts.demo_reset import (
    DEMO_DOMAIN,
    DemoCredentials,
    demo_password,
    reset_demo_credentials,
)
from tierspayant.services.accounts.login import begin_login
from tierspayant.services.accounts.oidc import login_oidc, record_oidc_failure
from tierspayant.services.accounts.second_factor import begin_webauthn, complete_mfa, step_up
from tierspayant.services.accounts.second_factor_setup import (
    begin_webauthn_enrolment,
    confirm_totp,
    enrol_totp,
    enrol_totp_now,
    finish_webauthn_enrolment,
    regenerate_recovery_codes,
)
from tierspayant.services.accounts.sessions import (
    SESSION_TOUCH_INTERVAL,
    logout,
    logout_everywhere,
    revoke_principal_sessions,
    validate_session,
)

__all__ = [
    "DEMO_DOMAIN",
    "MAX_FAILED_LOGINS_CEILING",
    "SESSION_TOUCH_INTERVAL",
    "Account",
    "AccountKind",
    "AuthPolicy",
    "DemoCredentials",
    "Enrolled",
    "Factor",
    "LoginChallenge",
    "Session",
    "SessionInfo",
    "TotpEnrolment",
    "auth_policy",
    "begin_login",
    "begin_webauthn",
    "begin_webauthn_enrolment",
    "complete_mfa",
    "confirm_totp",
    "create_account",
    "demo_password",
    "disable_account",
    "enrol_totp",
    "enrol_totp_now",
    "find_account",
    "finish_webauthn_enrolment",
    "get_account",
    "login_oidc",
    "logout",
    "logout_everywhere",
    "normalise_login",
    "record_oidc_failure",
    "regenerate_recovery_codes",
    "reset_demo_credentials",
    "revoke_principal_sessions",
    "step_up",
    "unlock_account",
    "validate_session",
]
