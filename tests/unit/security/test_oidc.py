"""OpenID Connect relying party against a real local issuer: the flow and every refusal."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc.jwk import RSAKey

from tests.support.oidc_issuer import PlannedLogin, TestIssuer, run_test_issuer
from tierspayant.config import load_settings
from tierspayant.security.oidc import (
    OidcClient,
    OidcConfig,
    OidcError,
    code_challenge,
    extract_rpps,
    state_matches,
)
from tierspayant.web.login import oidc_config

REDIRECT = "http://127.0.0.1:8000/auth/callback"


@pytest.fixture(scope="module")
def issuer() -> Iterator[TestIssuer]:
    with run_test_issuer() as running:
        yield running


@pytest.fixture
def client(issuer: TestIssuer) -> Iterator[OidcClient]:
    with httpx.Client(timeout=5) as http:
        yield OidcClient(issuer.config(REDIRECT), http)


def _now() -> datetime:
    return datetime.now(UTC)


def _follow_authorize(url: str) -> dict[str, str]:
    """What the browser brings back to the redirect URI."""
    response = httpx.get(url, follow_redirects=False, timeout=5)
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(REDIRECT)
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def _refusal(client: OidcClient, token: str, nonce: str = "n-1") -> str:
    with pytest.raises(OidcError) as caught:
        client.validate_id_token(token, nonce, _now())
    return caught.value.code


# --------------------------------------------------------------------------- the flow


def test_given_professional_logs_in_then_identity_has_rpps_acr_amr_and_auth_time(
    issuer: TestIssuer, client: OidcClient
) -> None:
    logged_in_at = int(time.time()) - 30
    issuer.next_login(
        sub="psc-42", rpps="10003456789", acr="eidas2", amr=["pop"], auth_time=logged_in_at
    )
    request = client.start_login()
    back = _follow_authorize(request.url)
    assert state_matches(request.state, back["state"])
    identity = client.complete_login(back["code"], request.code_verifier, request.nonce, _now())
    assert identity.sub == "psc-42"
    assert identity.rpps == "10003456789"
    assert identity.acr == "eidas2"
    assert identity.amr == ("pop",)
    assert identity.auth_time == datetime.fromtimestamp(logged_in_at, UTC)
    assert identity.issuer == issuer.url


def test_given_authorization_url_then_pkce_s256_nonce_acr_and_max_age_requested(
    client: OidcClient, issuer: TestIssuer
) -> None:
    url = client.authorization_url("state-1", "nonce-1", "v" * 43)
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert url.startswith(issuer.url + "/authorize?")
    assert query["response_type"] == "code"
    assert query["client_id"] == issuer.client_id
    assert query["redirect_uri"] == REDIRECT
    assert query["state"] == "state-1"
    assert query["nonce"] == "nonce-1"
    assert query["code_challenge_method"] == "S256"
    assert query["code_challenge"] == code_challenge("v" * 43)
    assert query["acr_values"] == "eidas2 eidas3"
    assert query["max_age"] == "600"


def test_pkce_challenge_matches_rfc7636_example() -> None:
    # RFC 7636, appendix B.
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert code_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_given_state_from_another_browser_then_it_does_not_match() -> None:
    assert not state_matches("state-of-this-browser", "state-of-another")


def test_given_rpps_only_in_userinfo_then_it_is_read_from_there(
    issuer: TestIssuer, client: OidcClient
) -> None:
    issuer.next_login(sub="psc-7", rpps="10009999999", rpps_in_userinfo_only=True)
    request = client.start_login()
    back = _follow_authorize(request.url)
    identity = client.complete_login(back["code"], request.code_verifier, request.nonce, _now())
    assert identity.rpps == "10009999999"
    assert "/userinfo" in issuer.requests


def test_given_code_used_twice_then_second_exchange_refused(
    issuer: TestIssuer, client: OidcClient
) -> None:
    issuer.next_login()
    request = client.start_login()
    back = _follow_authorize(request.url)
    client.exchange_code(back["code"], request.code_verifier)
    with pytest.raises(OidcError) as caught:
        client.exchange_code(back["code"], request.code_verifier)
    assert caught.value.code == "oidc.token"


def test_given_wrong_pkce_verifier_then_exchange_refused(
    issuer: TestIssuer, client: OidcClient
) -> None:
    issuer.next_login()
    request = client.start_login()
    back = _follow_authorize(request.url)
    with pytest.raises(OidcError) as caught:
        client.exchange_code(back["code"], "w" * 43)
    assert caught.value.code == "oidc.token"


def test_given_wrong_client_secret_then_exchange_refused(issuer: TestIssuer) -> None:
    with httpx.Client(timeout=5) as http:
        bad = OidcClient(replace(issuer.config(REDIRECT), client_secret="wrong"), http)
        issuer.next_login()
        request = bad.start_login()
        back = _follow_authorize(request.url)
        with pytest.raises(OidcError) as caught:
            bad.exchange_code(back["code"], request.code_verifier)
    assert caught.value.code == "oidc.token"


def test_given_discovery_naming_another_issuer_then_refused(issuer: TestIssuer) -> None:
    with httpx.Client(timeout=5) as http:
        # Same server, but we expect an issuer string it does not claim.
        config = issuer.config(REDIRECT, discovery_ttl_seconds=0)
        mixed_up = OidcClient(replace(config, issuer=issuer.url + "/"), http)
        with pytest.raises(OidcError) as caught:
            mixed_up.discovery()
    assert caught.value.code == "oidc.discovery"


def test_given_discovery_fetched_once_then_cached(issuer: TestIssuer, client: OidcClient) -> None:
    client.discovery()
    before = issuer.requests.count("/.well-known/openid-configuration")
    client.discovery()
    client.authorization_url("s", "n", "v" * 43)
    assert issuer.requests.count("/.well-known/openid-configuration") == before


def test_given_issuer_rotated_its_key_then_new_jwks_fetched_and_token_accepted(
    issuer: TestIssuer,
) -> None:
    with httpx.Client(timeout=5) as http:
        rp = OidcClient(issuer.config(REDIRECT), http)
        rp.validate_id_token(issuer.mint_id_token(nonce="n-1"), "n-1", _now())
        old_key = issuer.key
        issuer.rotate_key()
        try:
            rp.JWKS_REFRESH_MIN_SECONDS = 0.0
            identity = rp.validate_id_token(issuer.mint_id_token(nonce="n-1"), "n-1", _now())
        finally:
            issuer.key = old_key
    assert identity.sub == "psc-user-1"


# --------------------------------------------------------------------------- refusals


def test_given_valid_minted_token_then_accepted(issuer: TestIssuer, client: OidcClient) -> None:
    # The baseline the refusal tests below differ from by one claim each.
    identity = client.validate_id_token(issuer.mint_id_token(nonce="n-1"), "n-1", _now())
    assert identity.rpps == "10001234567"


@pytest.mark.parametrize("acr", ["eidas1", "", "EIDAS2", "urn:low"])
def test_given_acr_below_requirement_then_refused(
    issuer: TestIssuer, client: OidcClient, acr: str
) -> None:
    assert _refusal(client, issuer.mint_id_token(nonce="n-1", acr=acr)) == "oidc.acr"


def test_given_no_acr_then_refused(issuer: TestIssuer, client: OidcClient) -> None:
    assert _refusal(client, issuer.mint_id_token(nonce="n-1", acr=None)) == "oidc.acr"


@pytest.mark.parametrize("amr", [["pwd"], ["otp-sms"], [], "pwd", None, [1, 2]])
def test_given_amr_not_allowed_then_refused(
    issuer: TestIssuer, client: OidcClient, amr: Any
) -> None:
    token = issuer.mint_id_token(nonce="n-1", amr=amr)
    assert _refusal(client, token) == "oidc.amr"


@pytest.mark.parametrize(
    ("amr", "refused"),
    [
        (["pwd"], True),
        (["otp", "sms"], True),
        (["pin"], True),
        (["pop"], False),
        (["sc", "pin"], False),
        (["mfa", "swk"], False),
        (["hwk"], False),
    ],
)
def test_given_default_settings_then_amr_checked(
    issuer: TestIssuer, amr: list[str], refused: bool
) -> None:
    """Given the settings without TIERSPAYANT_OIDC_ALLOWED_AMR (the default a deployment
    gets), when the ID token says how the user logged in, then a password, a one-time code
    or a PIN alone is refused and a card, a key or multi-factor is accepted."""
    env = issuer.environment(REDIRECT)
    del env["TIERSPAYANT_OIDC_ALLOWED_AMR"]
    config = oidc_config(load_settings({**env, "TIERSPAYANT_DATA_DIR": "/nonexistent"}))
    assert config is not None
    with httpx.Client(timeout=5) as http:
        default_client = OidcClient(config, http)
        token = issuer.mint_id_token(nonce="n-1", amr=amr)
        if refused:
            assert _refusal(default_client, token) == "oidc.amr"
        else:
            assert default_client.validate_id_token(token, "n-1", _now()).amr == tuple(amr)


def test_given_amr_with_one_allowed_method_then_accepted(
    issuer: TestIssuer, client: OidcClient
) -> None:
    token = issuer.mint_id_token(nonce="n-1", amr=["pwd", "hwk"])
    assert client.validate_id_token(token, "n-1", _now()).amr == ("pwd", "hwk")


@pytest.mark.parametrize(
    "auth_time",
    [
        lambda: int(time.time()) - 600 - 61 - 5,  # older than max age + leeway
        lambda: int(time.time()) + 3600,  # in the future
        lambda: None,  # missing
    ],
)
def test_given_auth_time_stale_future_or_missing_then_refused(
    issuer: TestIssuer, client: OidcClient, auth_time: Any
) -> None:
    value = auth_time()
    if value is None:
        token = issuer.mint_id_token(nonce="n-1", auth_time=None)
    else:
        token = issuer.mint_id_token(nonce="n-1", auth_time=value)
    assert _refusal(client, token) == "oidc.auth_time"


def test_given_auth_time_just_within_max_age_then_accepted(
    issuer: TestIssuer, client: OidcClient
) -> None:
    token = issuer.mint_id_token(nonce="n-1", auth_time=int(time.time()) - 590)
    assert client.validate_id_token(token, "n-1", _now()).acr == "eidas2"


def test_given_token_signed_by_another_key_then_signature_refused(
    issuer: TestIssuer, client: OidcClient
) -> None:
    claims = issuer.id_token_claims(_planned(issuer), "n-1")
    forged = issuer.sign(claims, key=RSAKey.generate_key(2048, auto_kid=True))
    assert _refusal(client, forged) == "oidc.signature"


def test_given_forger_reuses_the_issuer_kid_then_signature_refused(
    issuer: TestIssuer, client: OidcClient
) -> None:
    other = RSAKey.generate_key(2048, parameters={"kid": issuer.kid})
    forged = issuer.sign(issuer.id_token_claims(_planned(issuer), "n-1"), key=other)
    assert _refusal(client, forged) == "oidc.signature"


def test_given_payload_tampered_then_signature_refused(
    issuer: TestIssuer, client: OidcClient
) -> None:
    header, payload, signature = issuer.mint_id_token(nonce="n-1").split(".")
    other_payload = issuer.mint_id_token(nonce="n-1", sub="someone-else").split(".")[1]
    assert _refusal(client, f"{header}.{other_payload}.{signature}") == "oidc.signature"
    assert payload != other_payload


def test_given_unsigned_token_then_signature_refused(
    issuer: TestIssuer, client: OidcClient
) -> None:
    def part(document: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(document).encode()).rstrip(b"=").decode()

    claims = issuer.id_token_claims(_planned(issuer), "n-1")
    unsigned = f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."
    assert _refusal(client, unsigned) == "oidc.signature"
    assert _refusal(client, "not-a-jwt") == "oidc.signature"


def test_given_nonce_of_another_login_then_refused(issuer: TestIssuer, client: OidcClient) -> None:
    assert _refusal(client, issuer.mint_id_token(nonce="n-1"), nonce="n-2") == "oidc.nonce"


def test_given_no_nonce_in_token_then_refused(issuer: TestIssuer, client: OidcClient) -> None:
    assert _refusal(client, issuer.mint_id_token(nonce=None)) == "oidc.nonce"


def test_given_other_issuer_then_refused(issuer: TestIssuer, client: OidcClient) -> None:
    token = issuer.mint_id_token(nonce="n-1", iss="https://evil.example")
    assert _refusal(client, token) == "oidc.issuer"


@pytest.mark.parametrize(
    "overrides",
    [
        {"aud": "another-service"},
        {"aud": ["another-service"]},
        {"aud": ["tierspayant-test", "another-service"], "azp": "another-service"},
        {"aud": ["tierspayant-test", "another-service"]},  # several audiences, no azp
        {"aud": None},
    ],
)
def test_given_token_for_another_audience_then_refused(
    issuer: TestIssuer, client: OidcClient, overrides: dict[str, Any]
) -> None:
    token = issuer.mint_id_token(nonce="n-1", **overrides)
    assert _refusal(client, token) == "oidc.audience"


def test_given_several_audiences_and_azp_us_then_accepted(
    issuer: TestIssuer, client: OidcClient
) -> None:
    token = issuer.mint_id_token(
        nonce="n-1", aud=["tierspayant-test", "other"], azp="tierspayant-test"
    )
    assert client.validate_id_token(token, "n-1", _now()).sub == "psc-user-1"


@pytest.mark.parametrize(
    "overrides",
    [
        {"exp": int(time.time()) - 120},
        {"exp": None},
        {"iat": int(time.time()) + 3600},
        {"nbf": int(time.time()) + 3600},
    ],
)
def test_given_expired_or_not_yet_valid_token_then_refused(
    issuer: TestIssuer, client: OidcClient, overrides: dict[str, Any]
) -> None:
    assert _refusal(client, issuer.mint_id_token(nonce="n-1", **overrides)) == "oidc.expired"


def test_given_token_checked_later_than_its_expiry_then_refused(
    issuer: TestIssuer, client: OidcClient
) -> None:
    token = issuer.mint_id_token(nonce="n-1")
    later = _now() + timedelta(seconds=issuer.token_ttl_seconds + 120)
    with pytest.raises(OidcError) as caught:
        client.validate_id_token(token, "n-1", later)
    assert caught.value.code == "oidc.expired"


def test_given_no_rpps_anywhere_then_refused(issuer: TestIssuer, client: OidcClient) -> None:
    assert _refusal(client, issuer.mint_id_token(nonce="n-1", SubjectNameID=None)) == "oidc.rpps"


def test_given_no_subject_then_refused(issuer: TestIssuer, client: OidcClient) -> None:
    assert _refusal(client, issuer.mint_id_token(nonce="n-1", sub=None)) == "oidc.subject"


def test_given_userinfo_of_another_subject_then_its_rpps_is_ignored(
    issuer: TestIssuer, client: OidcClient
) -> None:
    token = issuer.mint_id_token(nonce="n-1", SubjectNameID=None)
    with pytest.raises(OidcError) as caught:
        client.validate_id_token(
            token, "n-1", _now(), userinfo={"sub": "someone-else", "SubjectNameID": "810001234567"}
        )
    assert caught.value.code == "oidc.rpps"


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10001234567", "10001234567"),
        ("810001234567", "10001234567"),
        (" 810001234567 ", "10001234567"),
        ("010001234567", None),  # ADELI-style national id, not an RPPS
        ("1000123456", None),
        ("1000123456a", None),
        (10001234567, None),
        (None, None),
    ],
)
def test_extract_rpps(value: object, expected: str | None) -> None:
    assert extract_rpps(value) == expected


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"issuer": "http://idp.example.fr"}, "https"),
        ({"required_acr": set()}, "required_acr"),
        ({"allowed_amr": set()}, "allowed_amr"),
        ({"max_auth_age_seconds": 0}, "positive"),
        ({"algorithms": ("RS256", "HS256")}, "asymmetric"),
        ({"algorithms": ("none",)}, "asymmetric"),
    ],
)
def test_given_unsafe_configuration_then_refused(overrides: dict[str, Any], message: str) -> None:
    base: dict[str, Any] = {
        "issuer": "https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet",
        "client_id": "c",
        "client_secret": "s",
        "redirect_uri": "https://portail.example.fr/auth/callback",
        "required_acr": {"eidas1"},
        "max_auth_age_seconds": 300,
        "allowed_amr": {"pop"},
    }
    with pytest.raises(ValueError, match=message):
        OidcConfig(**{**base, **overrides})


def test_given_config_then_secret_not_in_repr() -> None:
    config = OidcConfig(
        issuer="https://idp.example.fr",
        client_id="c",
        client_secret="very-secret",
        redirect_uri="https://portail.example.fr/cb",
        required_acr={"eidas1"},
        max_auth_age_seconds=300,
        allowed_amr={"pop"},
    )
    assert "very-secret" not in repr(config)
    assert config.required_acr == frozenset({"eidas1"})


def _planned(issuer: TestIssuer) -> PlannedLogin:
    return PlannedLogin(
        sub="psc-user-1",
        rpps="10001234567",
        acr="eidas2",
        amr=["pop"],
        auth_time=int(time.time()),
        rpps_claim="SubjectNameID",
        rpps_in_userinfo_only=False,
        extra_claims={},
    )
