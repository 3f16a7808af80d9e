"""Second factors: TOTP with its replay guard, recovery codes, WebAuthn with a software key."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest

from tests.support.webauthn_authenticator import SoftAuthenticator, b64url, unb64url
from tierspayant.security.mfa import (
    MfaError,
    WebAuthnRelyingParty,
    check_sign_count,
    looks_like_recovery_code,
    new_recovery_codes,
    new_totp_secret,
    normalise_recovery_code,
    provisioning_uri,
    recovery_code_digest,
    totp_step,
    verify_totp,
    verify_webauthn_authentication,
    verify_webauthn_registration,
    webauthn_authentication_options,
    webauthn_registration_options,
    webauthn_response_credential_id,
)

NOW = datetime(2026, 3, 2, 9, 30, 10, tzinfo=UTC)
RP = WebAuthnRelyingParty(
    rp_id="portail.example.fr", rp_name="tierspayant", origin="https://portail.example.fr"
)


def _code(secret: str, at: datetime) -> str:
    return str(pyotp.TOTP(secret).at(at))


# --------------------------------------------------------------------------- TOTP


def test_given_new_secrets_then_160_bits_base32_and_distinct() -> None:
    secrets = {new_totp_secret() for _ in range(20)}
    assert len(secrets) == 20
    for secret in secrets:
        assert len(secret) == 32
        assert set(secret) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")


def test_given_secret_when_provisioning_uri_then_app_gets_secret_issuer_and_account() -> None:
    secret = new_totp_secret()
    uri = provisioning_uri(secret, "agent@mutuelle.example", issuer="tierspayant")
    parts = urlsplit(uri)
    query = parse_qs(parts.query)
    assert parts.scheme == "otpauth"
    assert parts.netloc == "totp"
    assert query["secret"] == [secret]
    assert query["issuer"] == ["tierspayant"]
    assert "agent%40mutuelle.example" in parts.path or "agent@mutuelle.example" in parts.path


def test_given_current_code_when_verified_then_its_step_is_returned() -> None:
    secret = new_totp_secret()
    assert verify_totp(secret, _code(secret, NOW), now=NOW, last_used_step=None) == totp_step(NOW)


@pytest.mark.parametrize("offset_steps", [-1, 1])
def test_given_code_one_step_off_when_verified_then_accepted_for_clock_drift(
    offset_steps: int,
) -> None:
    secret = new_totp_secret()
    other = NOW + timedelta(seconds=30 * offset_steps)
    assert verify_totp(secret, _code(secret, other), now=NOW, last_used_step=None) == totp_step(
        other
    )


@pytest.mark.parametrize("offset_steps", [-3, -2, 2, 3])
def test_given_code_two_or_more_steps_off_when_verified_then_refused(offset_steps: int) -> None:
    secret = new_totp_secret()
    other = NOW + timedelta(seconds=30 * offset_steps)
    assert verify_totp(secret, _code(secret, other), now=NOW, last_used_step=None) is None


def test_given_code_accepted_when_same_code_replayed_then_refused() -> None:
    secret = new_totp_secret()
    code = _code(secret, NOW)
    step = verify_totp(secret, code, now=NOW, last_used_step=None)
    assert step is not None
    assert verify_totp(secret, code, now=NOW + timedelta(seconds=5), last_used_step=step) is None


def test_given_later_step_used_when_earlier_code_presented_then_refused() -> None:
    # Given the code of the next step was accepted (fast clock), the current code, though
    # inside the window, is older than the last accepted one.
    secret = new_totp_secret()
    later = verify_totp(
        secret, _code(secret, NOW + timedelta(seconds=30)), now=NOW, last_used_step=None
    )
    assert later == totp_step(NOW) + 1
    assert verify_totp(secret, _code(secret, NOW), now=NOW, last_used_step=later) is None


def test_given_code_of_next_step_when_previous_used_then_accepted() -> None:
    secret = new_totp_secret()
    first = verify_totp(secret, _code(secret, NOW), now=NOW, last_used_step=None)
    assert first is not None
    after = NOW + timedelta(seconds=30)
    assert verify_totp(secret, _code(secret, after), now=after, last_used_step=first) == first + 1


@pytest.mark.parametrize("typed", ["", "12345", "1234567", "abcdef", "12 34 5x"])
def test_given_malformed_code_when_verified_then_refused(typed: str) -> None:
    assert verify_totp(new_totp_secret(), typed, now=NOW, last_used_step=None) is None


def test_given_code_typed_with_a_space_when_verified_then_accepted() -> None:
    secret = new_totp_secret()
    code = _code(secret, NOW)
    assert verify_totp(secret, f"{code[:3]} {code[3:]}", now=NOW, last_used_step=None) is not None


def test_given_other_secret_when_verified_then_refused() -> None:
    code = _code(new_totp_secret(), NOW)
    assert verify_totp(new_totp_secret(), code, now=NOW, last_used_step=None) is None


# --------------------------------------------------------------------------- recovery codes


def test_given_new_recovery_codes_then_ten_distinct_readable_codes() -> None:
    codes = new_recovery_codes()
    assert len(codes) == 10
    assert len(set(codes)) == 10
    for code in codes:
        groups = code.split("-")
        assert [len(g) for g in groups] == [4, 4, 4, 4]
        assert looks_like_recovery_code(code)
        assert not set(code) & set("ILOU")


def test_given_code_typed_loosely_then_same_digest() -> None:
    code = new_recovery_codes(1)[0]
    loose = " " + code.lower().replace("-", " ") + " "
    assert normalise_recovery_code(loose) == code.replace("-", "")
    assert recovery_code_digest(loose) == recovery_code_digest(code)


def test_given_confusable_letters_then_mapped_to_digits() -> None:
    assert normalise_recovery_code("oOiI-lL00-1111-2222") == "0011110011112222"


def test_given_two_codes_then_digests_differ_and_are_32_bytes() -> None:
    first, second = new_recovery_codes(2)
    assert recovery_code_digest(first) != recovery_code_digest(second)
    assert len(recovery_code_digest(first)) == 32


@pytest.mark.parametrize(
    "typed", ["123456", "ABCD-EFGH", "ABCD-EFGH-JKMN-PQRS-T", "ÀBCD-EFGH-JKMN-PQRS"]
)
def test_given_totp_like_or_malformed_input_then_not_a_recovery_code(typed: str) -> None:
    assert not looks_like_recovery_code(typed)


def test_given_zero_codes_requested_then_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        new_recovery_codes(0)


# --------------------------------------------------------------------------- WebAuthn


def _register(authenticator: SoftAuthenticator) -> tuple[bytes, bytes, int]:
    ceremony = webauthn_registration_options(
        RP, user_handle=b"\x01" * 32, user_name="agent@mutuelle.example"
    )
    credential = verify_webauthn_registration(
        RP,
        response_json=authenticator.register(ceremony.options_json),
        expected_challenge=ceremony.challenge,
    )
    return credential.credential_id, credential.public_key, credential.sign_count


def test_given_registration_options_then_rp_user_and_no_attestation_requested() -> None:
    ceremony = webauthn_registration_options(
        RP,
        user_handle=b"\x02" * 32,
        user_name="agent@mutuelle.example",
        exclude_credential_ids=(b"old-key",),
    )
    options = json.loads(ceremony.options_json)
    assert options["rp"] == {"id": "portail.example.fr", "name": "tierspayant"}
    assert options["user"]["id"] == b64url(b"\x02" * 32)
    assert options["attestation"] == "none"
    assert unb64url(options["challenge"]) == ceremony.challenge
    assert len(ceremony.challenge) == 32
    assert [c["id"] for c in options["excludeCredentials"]] == [b64url(b"old-key")]


def test_given_software_key_when_registered_then_its_public_key_is_kept() -> None:
    authenticator = SoftAuthenticator(origin=RP.origin, rp_id=RP.rp_id)
    credential_id, public_key, count = _register(authenticator)
    assert credential_id == authenticator.credential_id
    assert public_key  # COSE key
    assert count == 0


def test_given_registration_answer_for_another_challenge_then_refused() -> None:
    authenticator = SoftAuthenticator(origin=RP.origin, rp_id=RP.rp_id)
    ceremony = webauthn_registration_options(RP, user_handle=b"\x01" * 32, user_name="a@b.fr")
    other = webauthn_registration_options(RP, user_handle=b"\x01" * 32, user_name="a@b.fr")
    with pytest.raises(MfaError) as caught:
        verify_webauthn_registration(
            RP,
            response_json=authenticator.register(other.options_json),
            expected_challenge=ceremony.challenge,
        )
    assert caught.value.code == "webauthn.registration"


def test_given_registered_key_when_it_signs_the_challenge_then_counter_advances() -> None:
    authenticator = SoftAuthenticator(origin=RP.origin, rp_id=RP.rp_id)
    credential_id, public_key, count = _register(authenticator)
    ceremony = webauthn_authentication_options(RP, allow_credential_ids=(credential_id,))
    assert json.loads(ceremony.options_json)["allowCredentials"][0]["id"] == b64url(credential_id)
    answer = authenticator.authenticate(ceremony.options_json)
    assert webauthn_response_credential_id(answer) == credential_id
    new_count = verify_webauthn_authentication(
        RP,
        response_json=answer,
        expected_challenge=ceremony.challenge,
        public_key=public_key,
        stored_sign_count=count,
    )
    assert new_count == 1


def test_given_answer_from_a_phishing_origin_then_refused() -> None:
    authenticator = SoftAuthenticator(origin=RP.origin, rp_id=RP.rp_id)
    credential_id, public_key, count = _register(authenticator)
    ceremony = webauthn_authentication_options(RP, allow_credential_ids=(credential_id,))
    answer = authenticator.authenticate(
        ceremony.options_json, origin="https://portail-example.fr.evil.test"
    )
    with pytest.raises(MfaError) as caught:
        verify_webauthn_authentication(
            RP,
            response_json=answer,
            expected_challenge=ceremony.challenge,
            public_key=public_key,
            stored_sign_count=count,
        )
    assert caught.value.code == "webauthn.authentication"


def test_given_answer_signed_by_another_key_then_refused() -> None:
    genuine = SoftAuthenticator(origin=RP.origin, rp_id=RP.rp_id)
    credential_id, public_key, count = _register(genuine)
    impostor = SoftAuthenticator(origin=RP.origin, rp_id=RP.rp_id, credential_id=credential_id)
    ceremony = webauthn_authentication_options(RP, allow_credential_ids=(credential_id,))
    with pytest.raises(MfaError) as caught:
        verify_webauthn_authentication(
            RP,
            response_json=impostor.authenticate(ceremony.options_json),
            expected_challenge=ceremony.challenge,
            public_key=public_key,
            stored_sign_count=count,
        )
    assert caught.value.code == "webauthn.authentication"


def test_given_cloned_key_replaying_an_old_counter_then_sign_count_refused() -> None:
    authenticator = SoftAuthenticator(origin=RP.origin, rp_id=RP.rp_id)
    credential_id, public_key, _ = _register(authenticator)
    ceremony = webauthn_authentication_options(RP, allow_credential_ids=(credential_id,))
    authenticator.sign_count = 7
    answer = authenticator.authenticate(ceremony.options_json, advance=False)
    with pytest.raises(MfaError) as caught:
        verify_webauthn_authentication(
            RP,
            response_json=answer,
            expected_challenge=ceremony.challenge,
            public_key=public_key,
            stored_sign_count=7,
        )
    assert caught.value.code == "webauthn.sign_count"


def test_given_malformed_answer_then_credential_id_refused() -> None:
    with pytest.raises(MfaError) as caught:
        webauthn_response_credential_id("{not json")
    assert caught.value.code == "webauthn.authentication"


@pytest.mark.parametrize(
    ("stored", "received", "accepted"),
    [
        (0, 0, True),
        (0, 1, True),
        (5, 6, True),
        (5, 50, True),
        (5, 5, False),
        (5, 3, False),
        (3, 0, False),
    ],
)
def test_sign_count_rule(stored: int, received: int, accepted: bool) -> None:
    if accepted:
        assert check_sign_count(stored, received) == received
    else:
        with pytest.raises(MfaError) as caught:
            check_sign_count(stored, received)
        assert caught.value.code == "webauthn.sign_count"
