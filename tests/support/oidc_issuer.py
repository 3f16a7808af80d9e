"""The local OpenID provider of the tests: the demo issuer of ``demo/issuer/``
(one implementation), with the tests' client credentials and no login page.

It runs on 127.0.0.1 (random port) and signs ID tokens with an RS256 key generated at
start. ``/authorize`` redirects straight back to the relying party with a code, for
whatever user the test chose with :meth:`TestIssuer.next_login`. The token endpoint
checks what a real issuer checks (client credentials, single-use code, redirect URI,
PKCE S256), so the relying party's side of the flow is exercised for real.

    with run_test_issuer() as issuer:
        issuer.next_login(sub="f:1", rpps="10001234567", acr="eidas2", amr=["pop"])
        config = issuer.config(redirect_uri="http://127.0.0.1/callback", ...)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tierspayant.demo.issuer import DemoIssuer, PlannedLogin

__all__ = ["CLIENT_ID", "CLIENT_SECRET", "PlannedLogin", "TestIssuer", "run_test_issuer"]

CLIENT_ID = "tierspayant-test"
CLIENT_SECRET = "test-secret-" + "x" * 20


class TestIssuer(DemoIssuer):
    """Handle on a running test issuer."""

    __test__ = False  # not a pytest test class, despite its name


@contextmanager
def run_test_issuer() -> Iterator[TestIssuer]:
    """Start a test OpenID provider on 127.0.0.1 (random port); stop it on exit."""
    issuer = TestIssuer.start("127.0.0.1", 0, client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    try:
        yield issuer
    finally:
        issuer.stop()
