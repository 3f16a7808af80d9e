"""A local OpenID provider standing in for Pro Santé Connect in the demo and the tests.

DEMO ONLY. It never checks a CPS or e-CPS card: whoever reaches its login page picks a
professional from a list and is vouched for at the ``eidas2`` level. Its RS256 signing
key and client secret are generated at start and live only in memory. Never point a
production platform at it.

It serves what the platform's relying party (``security.oidc.OidcClient``) uses:
discovery, JWKS, ``/authorize``, ``/token`` (client_secret_basic, single-use code bound
to its redirect URI, PKCE S256) and ``/userinfo``. The token endpoint refuses what a real
issuer refuses, so the platform's side of the flow runs for real.

``/authorize`` answers in one of two ways:

- a login queued with :meth:`DemoIssuer.next_login` (the tests): straight back to the
  relying party with a code, no page;
- otherwise a French page listing the demo professionals (name and RPPS), one button
  each. The page carries a single-use ticket bound server-side to the authorization
  request (redirect URI, ``state``, ``nonce``, PKCE challenge) and the ``state`` in
  hidden fields; the POST must bring both back before a code is issued, so a form
  cannot be forged or replayed. Output is HTML-escaped, the page has no script and a
  strict Content-Security-Policy.

    issuer = start_demo_issuer("127.0.0.1", 8001, [("Dr Anne Martin", "10001234567")])
    settings = load_settings({**os.environ, **issuer.environment(
        "http://127.0.0.1:8000/portail/prestataire/oidc/retour")})
    ...
    issuer.stop()

The package's modules: ``flow`` (constants, the records kept between requests, the
checks), ``pages`` (the chooser and error pages, their headers) and ``server`` (the
running issuer and its HTTP handler). Every name callers use is re-exported here.
"""

from tierspayant.demo.issuer.flow import (
    DEMO_ACR,
    DEMO_AMR,
    DEMO_CLIENT_ID,
    MAX_FORM_BYTES,
    MAX_PENDING,
    TICKET_SECONDS,
    PlannedLogin,
)
from tierspayant.demo.issuer.pages import error_page, login_page
from tierspayant.demo.issuer.server import DemoIssuer, start_demo_issuer

__all__ = [
    "DEMO_ACR",
    "DEMO_AMR",
    "DEMO_CLIENT_ID",
    "MAX_FORM_BYTES",
    "MAX_PENDING",
    "TICKET_SECONDS",
    "DemoIssuer",
    "PlannedLogin",
    "error_page",
    "login_page",
    "start_demo_issuer",
]
