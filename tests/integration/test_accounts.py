"""Human authentication on a real database: lockout, second factors, sessions, OIDC."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select, update

from tests.conftest import SeededInsurer
from tests.support.oidc_issuer import run_test_issuer
from tests.support.webauthn_authenticator import SoftAuthenticator
from tests.support.world import Clock
from tierspayant.app.platform import Platform
from tierspayant.security.audit import AuditEvent
from tierspayant.security.breached import PasswordPolicyError
from tierspayant.security.mfa import WebAuthnRelyingParty
from tierspayant.security.oidc import OidcClient, OidcError, OidcIdentity
from tierspayant.security.principal import AuthStrength, PrincipalKind
from tierspayant.security.secrets import needs_rehash, verify_password
from tierspayant.services import accounts as svc
from tierspayant.services.errors import (
    Conflict,
    Forbidden,
    ServiceError,
    TooManyRequests,
    Unauthenticated,
)
from tierspayant.store import audit
from tierspayant.store.accounts_tables import accounts, sessions
from tierspayant.store.tables import audit_events, metadata, principals, providers

PASSWORD = "cheval bleu mardi pluie"
START = datetime(2026, 3, 2, 9, 0, 10, tzinfo=UTC)
RP = WebAuthnRelyingParty(rp_id="localhost", rp_name="tierspayant", origin="http://localhost:8000")


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
def auth(platform: Platform, clock: Clock) -> Platform:
    """The platform with the accounts tables (until the migration has them) and our clock."""
    metadata.create_all(platform.engine)
    platform.clock = clock
    return platform


@pytest.fixture
def insurer(auth: Platform, seed_insurer: Callable[..., SeededInsurer]) -> SeededInsurer:
    return seed_insurer(auth, with_catalogue=False)


def _login() -> str:
    return f"agent.{uuid.uuid4().hex[:8]}@mutuelle.example"


def _code(secret: str, clock: Clock) -> str:
    return str(pyotp.TOTP(secret).at(clock.now))


@dataclass
class Enrolled:
    account: svc.Account
    login: str
    secret: str
    recovery_codes: tuple[str, ...]
    session: svc.Session


def _staff(auth: Platform, insurer: SeededInsurer, login: str | None = None) -> svc.Account:
    return svc.create_account(
        auth,
        svc.AccountKind.INSURER_STAFF,
        login or _login(),
        PASSWORD,
        actor="operator/staff:admin",
        insurer_id=insurer.id,
        display_name="Jeanne Martin",
    )


def _enrolled(auth: Platform, insurer: SeededInsurer, clock: Clock) -> Enrolled:
    login = _login()
    account = _staff(auth, insurer, login)
    challenge = svc.begin_login(auth, login, PASSWORD)
    assert challenge.must_enrol
    enrolment = svc.enrol_totp(auth, challenge.challenge_id)
    done = svc.confirm_totp(auth, challenge.challenge_id, _code(enrolment.secret, clock))
    clock.advance(seconds=30)  # the next login uses a fresh TOTP step
    return Enrolled(account, login, enrolment.secret, done.recovery_codes, done.session)


def _fail_password(auth: Platform, login: str) -> str:
    with pytest.raises(ServiceError) as caught:
        svc.begin_login(auth, login, "not the right password at all")
    return caught.value.code


def _events(auth: Platform, actor: str, action: str = "auth.login") -> list[AuditEvent]:
    with auth.engine.connect() as conn:
        return [e for e in audit.iter_events(conn) if e.actor == actor and e.action == action]


# --------------------------------------------------------------------------- creation


def test_given_staff_account_then_principal_registered_and_password_hashed(
    auth: Platform, insurer: SeededInsurer
) -> None:
    login = _login()
    account = svc.create_account(
        auth,
        "insurer_staff",
        login.upper(),
        PASSWORD,
        actor="operator/staff:admin",
        insurer_id=insurer.id,
    )
    assert account.login == login
    assert account.principal_id == f"insurer:{insurer.amc_number}/staff:{account.id}"
    assert not account.has_totp
    with auth.engine.connect() as conn:
        row = conn.execute(select(accounts).where(accounts.c.id == account.id)).one()
        status = conn.execute(
            select(principals.c.status).where(principals.c.id == account.principal_id)
        ).scalar_one()
    assert row.password_hash.startswith("$argon2id$")
    assert PASSWORD not in row.password_hash
    assert status == "active"
    assert _events(auth, "operator/staff:admin", "account.create")


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("motdepasse2024", "password.common"),
        ("court", "password.too_short"),
        ("jeanne-cheval-bleu", "password.contains_identity"),
    ],
)
def test_given_weak_password_then_account_refused(
    auth: Platform, insurer: SeededInsurer, password: str, code: str
) -> None:
    with pytest.raises(PasswordPolicyError) as caught:
        svc.create_account(
            auth,
            "insurer_staff",
            _login(),
            password,
            actor="admin",
            insurer_id=insurer.id,
            display_name="Jeanne Martin",
        )
    assert caught.value.code == code


def test_given_same_login_twice_then_conflict(auth: Platform, insurer: SeededInsurer) -> None:
    login = _login()
    _staff(auth, insurer, login)
    with pytest.raises(Conflict):
        _staff(auth, insurer, login)


def test_given_professional_with_a_password_then_refused(auth: Platform) -> None:
    provider_id, _ = _provider(auth)
    with pytest.raises(ServiceError) as caught:
        svc.create_account(
            auth,
            "provider_user",
            _login(),
            PASSWORD,
            actor="admin",
            provider_id=provider_id,
            rpps=_rpps(),
        )
    assert caught.value.code == "account.password_not_allowed"


# --------------------------------------------------------------------------- login and MFA


def test_given_new_staff_when_enrolling_totp_then_session_and_ten_recovery_codes(
    auth: Platform, insurer: SeededInsurer, clock: Clock
) -> None:
    enrolled = _enrolled(auth, insurer, clock)
    assert len(enrolled.recovery_codes) == 10
    info = svc.validate_session(auth, enrolled.session.token)
    assert info.principal.kind is PrincipalKind.INSURER_STAFF
    assert info.principal.insurer_id == insurer.id
    assert info.principal.strength is AuthStrength.AAL2
    assert info.principal.id == enrolled.account.principal_id
    assert info.check_csrf(enrolled.session.csrf_token)
    assert not info.check_csrf("forged")
    assert not info.check_csrf(None)
    # Then the TOTP secret is not stored in clear.
    with auth.engine.connect() as conn:
        stored = conn.execute(
            select(accounts.c.totp_secret_ct).where(accounts.c.id == enrolled.account.id)
        ).scalar_one()
    assert enrolled.secret.encode() not in bytes(stored)


def test_given_enrolled_staff_when_password_then_totp_then_session(
    auth: Platform, insurer: SeededInsurer, clock: Clock
) -> None:
    enrolled = _enrolled(auth, insurer, clock)
    challenge = svc.begin_login(auth, enrolled.login, PASSWORD, ip="192.0.2.1")
    assert not challenge.must_enrol
    assert challenge.methods == (svc.Factor.TOTP, svc.Factor.RECOVERY)
    session = svc.complete_mfa(
        auth, challenge.challenge_id, totp_code=_code(enrolled.secret, clock)
    )
    assert svc.validate_session(auth, session.token).account_id == enrolled.account.id
    decisions = [
        (e.decision, e.detail.get("step")) for e in _events(auth, enrolled.account.principal_id)
    ]
    assert ("allow", "password") in decisions
    assert ("allow", "totp") in decisions


def test_given_enrolled_account_then_password_alone_cannot_enrol_a_new_factor(
    auth: Platform, insurer: SeededInsurer, clock: Clock
) -> None:
    # Otherwise a stolen password would let the thief replace the victim's factor.
    enrolled = _enrolled(auth, insurer, clock)
    challenge = svc.begin_login(auth, enrolled.login, PASSWORD)
    with pytest.raises(Forbidden) as caught:
        svc.enrol_totp(auth, challenge.challenge_id)
    assert caught.value.code == "auth.already_enrolled"
    with pytest.raises(Forbidden):
        svc.begin_webauthn_enrolment(auth, challenge.challenge_id, RP)


def test_given_account_without_factor_then_no_session_without_enrolment(
    auth: Platform, insurer: SeededInsurer
) -> None:
    login = _login()
    _staff(auth, insurer, login)
    challenge = svc.begin_login(auth, login, PASSWORD)
    with pytest.raises(Forbidden) as caught:
        svc.complete_mfa(auth, challenge.challenge_id, totp_code="123456")
    assert caught.value.code == "auth.mfa_enrolment_required"


def test_given_unknown_login_or_wrong_password_then_same_generic_refusal(
    auth: Platform, insurer: SeededInsurer
) -> None:
    login = _login()
    _staff(auth, insurer, login)
    assert _fail_password(auth, "nobody@nowhere.example") == "auth.invalid_credentials"
    assert _fail_password(auth, login) == "auth.invalid_credentials"
    # The unknown login is audited under a keyed pseudonym, not in clear.
    with auth.engine.connect() as conn:
        actors = {e.actor for e in audit.iter_events(conn) if e.action == "auth.login"}
    assert not any("nobody" in actor for actor in actors)
    assert any(actor.startswith("login:") for actor in actors)


def test_given_ten_failed_passwords_then_locked_for_15_minutes_even_with_the_right_one(
    auth: Platform, insurer: SeededInsurer, clock: Clock
) -> None:
    enrolled = _enrolled(auth, insurer, clock)
    codes = [_fail_password(auth, enrolled.login) for _ in range(10)]
    assert codes[:9] == ["auth.invalid_credentials"] * 9
    assert codes[9] == "auth.locked"
    with pytest.raises(TooManyRequests) as caught:
        svc.begin_login(auth, enrolled.login, PASSWORD)
    assert caught.value.code == "auth.locked"
    assert 0 < caught.value.retry_after <= 15 * 60
    clock.advance(minutes=14)
    with pytest.raises(TooManyRequests):
        svc.begin_login(auth, enrolled.login, PASSWORD)
    clock.advance(minutes=1, seconds=1)
    assert svc.begin_login(auth, enrolled.login, PASSWORD).methods
    denies = [e for e in _events(auth, enrolled.account.principal_id) if e.decision == "deny"]
    assert len(denies) == 12
    assert {e.detail["reason"] for e in denies} == {"bad_password", "locked"}


def test_given_lock_expired_then_one_more_failure_locks_again(
    auth: Platform, insurer: SeededInsurer, clock: Clock
) -> None:
    enrolled = _enrolled(auth, insurer, clock)
    for _ in range(10):
        _fail_password(auth, enrolled.login)
    clock.advance(minutes=16)
    assert _fail_password(auth, enrolled.login) == "auth.locked"


def test_given_success_then_failure_count_resets(
    auth: Platform, insurer: SeededInsurer, clock: Clock
) -> None:
    enrolled = _enrolled(auth, insurer, clock)
    for _ in range(9):
        _fail_password(auth, enrolled.login)
    challenge = svc.begin_login(auth, enrolled.login, PASSWORD)
    svc.complete_mfa(auth, challenge.challenge_id, totp_code=_code(enrolled.secret, clock))
    assert svc.get_account(auth, enrolled.account.id).failed_logins == 0
    codes = [_fail_password(auth, enrolled.login) for _ in range(9)]
    assert set(codes) == {"auth.invalid_credentials"}


def test_given_correct_password_then_failures_are_not_reset_before_the_second_factor(
    auth: Platform, insurer: SeededInsurer, clock: Clock
) -> None:
    # Else a thief holding the password could guess TOTP codes forever.
    enrolled = _enrolled(auth, insurer, clock)
    for _ in range(9):
        _fail_password(auth, enrolled.login)
    challenge = svc.begin_login(auth, enrolled.login, PASSWORD)
    with pytest.raises(TooManyRequests):
        svc.complete_mfa(auth, challenge.challenge_id, totp_code="000000")
    assert svc.get_account(auth, enrolled.account.id).locked_until is not None


def test_given_totp_code_used_when_replayed_in_its_window_then_refused(
    auth: Platform, insurer: SeededInsurer, clock: Clock
) -> None:
    enrolled = _enrolled(auth, insurer, clock)
    code = _code(enrolled.secret, clock)
    first = svc.begin_login(auth, enrolled.login, PASSWORD)
    svc.complete_mfa(auth, first.challenge_id, totp_code=code)
    clock.advance(seconds=10)  # same 30-second step, or the next: still in the window
    second = svc.begin_login(auth, enrolled.login, PASSWORD)
    with pytest.raises(Unauthenticated) as caught:
        svc.complete_mfa(auth, second.challenge_id, totp_code=code)
    assert caught.value.code == "auth.mfa_failed"
    last = _events(auth, enrolled.account.principal_id)[-1]
    assert (last.decision, last.detail["reason"]) == ("deny", "totp_replay")
    # Then the code of the next step works on the same challenge.
    clock.advance(seconds=30)
    svc.complete_mfa(auth, second.challenge_id, totp_code=_code(enrolled.secret, clock))


def test_given_recovery_code_then_usable_once(
    auth: Platform, insurer: SeededInsurer, clock: Clock
) -> None:
    enrolled = _enrolled(auth, insurer, clock)
    code = enrolled.recovery_codes[3]
    first = svc.begin_login(auth, enrolled.login, PASSWORD)
    session = svc.complete_mfa(auth, first.challenge_id, recovery_code=code.lower())
    assert svc.validate_session(auth, session.token).mfa_at == clock.now
    second = svc.begin_login(auth, enrolled.login, PASSWORD)
    with pytest.raises(Unauthenticated) as caught:
        svc.complete_mfa(auth, second.challenge_id, recovery_code=code)
    assert caught.value.code == "auth.mfa_failed"
    # Another code still works.
    svc.complete_mfa(auth, second.challenge_id, recovery_code=enrolled.recovery_codes[4])


def test_given_challenge_used_or_expired_then_refused(
    auth: Platform, insurer: SeededInsurer, clock: Clock
) -> None:
    enrolled = _enrolled(auth, insurer, clock)
    used = svc.begin_login(auth, enrolled.login, PASSWORD)
    svc.complete_mfa(auth, used.challenge_id, totp_code=_code(enrolled.secret, clock))
    clock.advance(seconds=30)
    with pytest.raises(Unauthenticated) as caught:
        svc.complete_mfa(auth, used.challenge_id, totp_code=_code(enrolled.secret, clock))
    assert caught.value.code == "auth.invalid_challenge"
    late = svc.begin_login(auth, enrolled.login, PASSWORD)
    clock.advance(minutes=5, seconds=1)
    with pytest.raises(Unauthenticated) as caught:
        svc.complete_mfa(auth, late.challenge_id, totp_code=_code(enrolled.secret, clock))
    assert caught.value.code == "auth.invalid_challenge"


def test_given_five_wrong_codes_on_one_challenge_then_it_is_spent(
    auth: Platform, insurer: SeededInsurer, clock: Clock
) -> None:
    enrolled = _enrolled(auth, insurer, clock)
    challenge = svc.begin_login(auth, enrolled.login, PASSWORD)
    for _ in range(5):
        with pytest.raises(Unauthenticated):
            svc.complete_mfa(auth, challenge.challenge_id, totp_code="000000")
    with pytest.raises(Unauthenticated) as caught:
        svc.complete_mfa(auth, challenge.challenge_id, totp_code=_code(enrolled.secret, clock))
    assert caught.value.code == "auth.invalid_challenge"


def test_given_old_password_hash_when_logging_in_then_upgraded(
    auth: Platform, insurer: SeededInsurer, clock: Clock
) -> None:
    enrolled = _enrolled(auth, insurer, clock)
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    assert needs_rehash(weak)
    with auth.engine.begin() as conn:
        conn.execute(
            update(accounts).where(accounts.c.id == enrolled.account.id).values(password_hash=weak)
        )
    svc.begin_login(auth, enrolled.login, PASSWORD)
    with auth.engine.connect() as conn:
        stored = conn.execute(
            select(accounts.c.password_hash).where(accounts.c.id == enrolled.account.id)
        ).scalar_one()
    assert stored != weak
    assert not needs_rehash(stored)
    assert verify_password(stored, PASSWORD)


def test_given_webauthn_key_when_enrolled_and_used_then_session_and_clone_refused(
    auth: Platform, insurer: SeededInsurer
) -> None:
    login = _login()
    _staff(auth, insurer, login)
    key = SoftAuthenticator(origin=RP.origin, rp_id=RP.rp_id)
    challenge = svc.begin_login(auth, login, PASSWORD)
    options = svc.begin_webauthn_enrolment(auth, challenge.challenge_id, RP)
    enrolled = svc.finish_webauthn_enrolment(
        auth, challenge.challenge_id, key.register(options), RP, label="YubiKey"
    )
    assert len(enrolled.recovery_codes) == 10
    # Login with the key.
    challenge = svc.begin_login(auth, login, PASSWORD)
    assert svc.Factor.WEBAUTHN in challenge.methods
    options = svc.begin_webauthn(auth, challenge.challenge_id, RP)
    session = svc.complete_mfa(
        auth, challenge.challenge_id, webauthn_response=key.authenticate(options), rp=RP
    )
    assert svc.validate_session(auth, session.token).account_id == enrolled.session.account_id
    # A copy of the key answering with a counter not above the stored one is refused.
    challenge = svc.begin_login(auth, login, PASSWORD)
    options = svc.begin_webauthn(auth, challenge.challenge_id, RP)
    with pytest.raises(Unauthenticated) as caught:
        svc.complete_mfa(
            auth,
            challenge.challenge_id,
            webauthn_response=key.authenticate(options, advance=False),
            rp=RP,
        )
    assert caught.value.code == "auth.mfa_failed"
    principal = svc.get_account(auth, enrolled.session.account_id).principal_id
    assert _events(auth, principal)[-1].detail["reason"] == "webauthn_sign_count"


# --------------------------------------------------------------------------- sessions


def test_given_activity_then_session_lives_until_15_minutes_of_inactivity(
    auth: Platform, insurer: SeededInsurer, clock: Clock
) -> None:
    enrolled = _enrolled(auth, insurer, clock)
    token = enrolled.session.token
    clock.advance(minutes=14)  # 14 min 30 s after login
    svc.validate_session(auth, token)
    clock.advance(minutes=14, seconds=59)
    svc.validate_session(auth, token)  # touched 14 min 59 s ago: still alive
    clock.advance(minutes=15)
    with pytest.raises(Unauthenticated) as caught:
        svc.validate_session(auth, token)
    assert caught.value.code == "auth.session_expired"
    # Expired for good, even if asked about with an earlier clock.
    with pytest.raises(Unauthenticated):
        svc.validate_session(auth, token, now=clock.now - timedelta(minutes=20))


def test_given_constant_activity_then_session_ends_8_hours_after_login(
    auth: Platform, insurer: SeededInsurer, clock: Clock
) -> None:
    enrolled = _enrolled(auth, insurer, clock)
    token = enrolled.session.token
    assert enrolled.session.expires_at == enrolled.session.created_at + timedelta(hours=8)
    while clock.now + timedelta(minutes=10) < enrolled.session.expires_at:
        clock.advance(minutes=10)
        svc.validate_session(auth, token)
    clock.now = enrolled.session.expires_at
    with pytest.raises(Unauthenticated) as caught:
        svc.validate_session(auth, token)
    assert caught.value.code == "auth.session_expired"


def test_given_logout_then_token_no_longer_valid(
    auth: Platform, insurer: SeededInsurer, clock: Clock
) -> None:
    enrolled = _enrolled(auth, insurer, clock)
    svc.logout(auth, enrolled.session.token)
    svc.logout(auth, enrolled.session.token)  # idempotent
    with pytest.raises(Unauthenticated) as caught:
        svc.validate_session(auth, enrolled.session.token)
    assert caught.value.code == "auth.session_invalid"
    assert _events(auth, enrolled.account.principal_id, "auth.logout")


def test_given_two_sessions_when_logout_everywhere_then_both_end(
    auth: Platform, insurer: SeededInsurer, clock: Clock
) -> None:
    enrolled = _enrolled(auth, insurer, clock)
    challenge = svc.begin_login(auth, enrolled.login, PASSWORD)
    other = svc.complete_mfa(auth, challenge.challenge_id, totp_code=_code(enrolled.secret, clock))
    assert svc.logout_everywhere(auth, enrolled.account.id) == 2
    for token in (enrolled.session.token, other.token):
        with pytest.raises(Unauthenticated):
            svc.validate_session(auth, token)


def test_given_principal_suspended_then_sessions_revoked_and_login_refused(
    auth: Platform, insurer: SeededInsurer, clock: Clock
) -> None:
    enrolled = _enrolled(auth, insurer, clock)
    principal_id = enrolled.account.principal_id
    with auth.engine.begin() as conn:
        conn.execute(
            update(principals).where(principals.c.id == principal_id).values(status="suspended")
        )
        assert svc.revoke_principal_sessions(conn, principal_id, clock.now) == 1
    with pytest.raises(Unauthenticated):
        svc.validate_session(auth, enrolled.session.token)
    with pytest.raises(Forbidden) as caught:
        svc.begin_login(auth, enrolled.login, PASSWORD)
    assert caught.value.code == "auth.suspended"


def test_given_session_tokens_then_stored_only_as_digests(
    auth: Platform, insurer: SeededInsurer, clock: Clock
) -> None:
    enrolled = _enrolled(auth, insurer, clock)
    with auth.engine.connect() as conn:
        digests = [bytes(d) for d in conn.execute(select(sessions.c.token_digest)).scalars()]
    assert digests
    assert all(enrolled.session.token.encode() not in d for d in digests)


# --------------------------------------------------------------------------- professionals


def _rpps() -> str:
    return f"1{secrets.randbelow(10**10):010d}"


def _provider(auth: Platform, rpps: str | None = None) -> tuple[int, str]:
    am = f"{secrets.randbelow(10**9):09d}"
    finess = f"{secrets.randbelow(10**9):09d}"
    with auth.engine.begin() as conn:
        provider_id = conn.execute(
            providers.insert()
            .values(
                am_number=am,
                rpps=rpps,
                finess=finess,
                category="pharmacie",
                name="Pharmacie du Port",
                optam=False,
                status="active",
                created_at=START,
            )
            .returning(providers.c.id)
        ).scalar_one()
    return int(provider_id), finess


def test_given_psc_login_of_a_registered_professional_then_provider_session(
    auth: Platform,
) -> None:
    rpps = _rpps()
    provider_id, finess = _provider(auth, rpps)
    redirect = "http://127.0.0.1:8000/auth/callback"
    with run_test_issuer() as issuer, httpx.Client(timeout=5) as http:
        client = OidcClient(issuer.config(redirect), http)
        issuer.next_login(sub="psc-1", rpps=rpps, acr="eidas2", amr=["pop"])
        request = client.start_login()
        location = httpx.get(request.url, timeout=5).headers["location"]
        code = parse_qs(urlsplit(location).query)["code"][0]
        identity = client.complete_login(
            code, request.code_verifier, request.nonce, datetime.now(UTC)
        )
    session = svc.login_oidc(auth, identity)
    info = svc.validate_session(auth, session.token)
    assert info.principal.kind is PrincipalKind.PROVIDER_USER
    assert info.principal.provider_id == provider_id
    assert info.principal.structure == finess
    assert info.mfa_at == identity.auth_time
    # Then the same professional logs in again onto the same account.
    again = svc.login_oidc(auth, identity)
    assert again.account_id == session.account_id
    allowed = _events(auth, info.principal.id)
    assert [e.detail["step"] for e in allowed] == ["oidc", "oidc"]
    assert allowed[0].detail["acr"] == "eidas2"
    assert allowed[0].structure == finess


def test_given_psc_identity_unknown_to_the_registry_then_refused_and_audited(
    auth: Platform,
) -> None:
    identity = _identity(_rpps())
    with pytest.raises(Forbidden) as caught:
        svc.login_oidc(auth, identity)
    assert caught.value.code == "auth.unknown_professional"
    with auth.engine.connect() as conn:
        created = select(func.count()).select_from(accounts).where(accounts.c.rpps == identity.rpps)
        assert conn.execute(created).scalar_one() == 0
        last = audit.last_event(conn)
    assert last is not None
    assert (last.decision, last.detail["reason"]) == ("deny", "unknown_professional")


def test_given_refused_oidc_callback_then_audited(auth: Platform) -> None:
    svc.record_oidc_failure(auth, OidcError("oidc.acr", "too weak"), ip="192.0.2.7")
    with auth.engine.connect() as conn:
        last = audit.last_event(conn)
        total = conn.execute(select(func.count()).select_from(audit_events)).scalar_one()
    assert last is not None
    assert total >= 1
    assert (last.action, last.decision, last.detail["reason"]) == ("auth.login", "deny", "oidc.acr")


def test_given_professional_account_then_no_password_login(auth: Platform) -> None:
    rpps = _rpps()
    provider_id, _ = _provider(auth, rpps)
    login = _login()
    svc.create_account(
        auth, "provider_user", login, None, actor="admin", provider_id=provider_id, rpps=rpps
    )
    with pytest.raises(Unauthenticated) as caught:
        svc.begin_login(auth, login, PASSWORD)
    assert caught.value.code == "auth.invalid_credentials"


def _identity(rpps: str) -> OidcIdentity:
    return OidcIdentity(
        issuer="https://psc.example",
        sub="psc-x",
        rpps=rpps,
        acr="eidas2",
        amr=("pop",),
        auth_time=START,
    )
