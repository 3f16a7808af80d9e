"""Fresh credentials for the demo's own accounts, so ``tierspayant demo`` run again can
print logins that work: only hashes and sealed TOTP secrets are stored, nothing can be
read back. Demo only: refused outside the embedded SQLite mode and for any login outside
the demo's domain; every reset is audited (``account.demo_reset``)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from tierspayant.app.platform import Platform
from tierspayant.domain.codes import AuthCode
from tierspayant.security import mfa
from tierspayant.security.breached import check_password_policy
from tierspayant.security.crypto import FieldCipher
from tierspayant.security.secrets import hash_password
from tierspayant.services.accounts.common import _audit, _totp_aad, normalise_login
from tierspayant.services.accounts.sessions import _revoke_account_sessions
from tierspayant.services.errors import Forbidden, NotFound
from tierspayant.store import accounts as repo

DEMO_DOMAIN = "demo.tierspayant.fr"


@dataclass(frozen=True, slots=True)
class DemoCredentials:
    """A demo account's new password and TOTP secret (shown once, then only hashed or
    sealed)."""

    login: str
    password: str
    totp_secret: str


def demo_password() -> str:
    """A random passphrase that passes the password policy (about 140 bits)."""
    return "-".join(secrets.token_urlsafe(6) for _ in range(4))


def reset_demo_credentials(platform: Platform, login: str, *, actor: str) -> DemoCredentials:
    """Give a demo account a new password and a new, confirmed TOTP secret.

    Its sessions end, its lockout and recovery codes are cleared. Forbidden
    ``account.demo_only`` outside the embedded SQLite mode or for a login outside
    ``@demo.tierspayant.fr``; NotFound ``account.unknown`` for no such account.
    """
    clean = normalise_login(login)
    if not platform.settings.is_sqlite or not clean.endswith("@" + DEMO_DOMAIN):
        raise Forbidden(
            AuthCode.ACCOUNT_DEMO_ONLY,
            "only the demo's own accounts, on the embedded demo database, can be reset",
            field="login",
        )
    password = demo_password()
    check_password_policy(password, context_words=[clean, "tierspayant"])
    secret = mfa.new_totp_secret()
    now = platform.now()
    keys = platform.operator_keys()
    with platform.engine.begin() as conn:
        row = repo.account_by_login(conn, clean)
        if row is None:
            raise NotFound(AuthCode.ACCOUNT_UNKNOWN, "no such account", field="login")
        repo.set_password_hash(conn, row.id, hash_password(password))
        repo.store_totp_secret(
            conn, row.id, FieldCipher(keys).encrypt(secret, _totp_aad(row.id)), keys.version
        )
        # Confirmed at once, the replay guard two steps back: a code of the current step,
        # or of the one before or after (clock drift), is accepted at the first login.
        repo.confirm_totp(conn, row.id, now, mfa.totp_step(now) - 2)
        repo.replace_recovery_codes(conn, row.id, (), now)
        repo.clear_lockout(conn, row.id)
        revoked = _revoke_account_sessions(conn, row.id, now)
        _audit(
            conn,
            at=now,
            actor=actor,
            action="account.demo_reset",
            allowed=True,
            row=row,
            account=row.principal_id,
            sessions=revoked,
        )
    return DemoCredentials(clean, password, secret)
