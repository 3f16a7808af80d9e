"""The demo issuer's pages: the professional chooser and the error page, in French.

Output is HTML-escaped, the pages have no script, and the handler sends them with the
headers and the strict Content-Security-Policy built here.
"""

from __future__ import annotations

from html import escape
from typing import Protocol


class _Listing(Protocol):
    """What the login page shows of an issuer (a ``DemoIssuer``)."""

    @property
    def professionals(self) -> tuple[tuple[str, str], ...]: ...

    @property
    def client_id(self) -> str: ...


_STYLE = """\
body { margin: 0 auto; max-width: 42rem; padding: 1.5rem;
       font: 16px/1.5 system-ui, sans-serif; color: #1b1b1b; }
h1 { font-size: 1.5rem; }
.warning { border-left: 4px solid #8a4b00; padding: .5rem 1rem; background: #fff4e5; }
ul { list-style: none; padding: 0; }
button { display: block; width: 100%; margin: .5rem 0; padding: .75rem 1rem; font: inherit;
         text-align: left; color: #fff; background: #0b4f9c; border: 0; border-radius: 4px;
         cursor: pointer; }
button:focus-visible { outline: 3px solid #1b1b1b; outline-offset: 2px; }
.rpps { display: block; font-size: .875rem; }
"""

_WARNING = (
    "Ceci n'est pas Pro Santé Connect : c'est un fournisseur d'identité de démonstration. "
    "Aucune carte CPS ni e-CPS n'est vérifiée ; sa clé de signature est générée au "
    "démarrage et disparaît à l'arrêt. Ne l'utilisez jamais en production."
)


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="fr">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n"
        '<link rel="stylesheet" href="/demo.css">\n</head>\n'
        f"<body>\n<main>\n{body}</main>\n</body>\n</html>\n"
    )


def login_page(issuer: _Listing, ticket: str, state: str | None) -> str:
    """The professional chooser: one submit button per demo professional."""
    hidden = f'<input type="hidden" name="ticket" value="{escape(ticket)}">\n'
    if state is not None:
        hidden += f'<input type="hidden" name="state" value="{escape(state)}">\n'
    buttons = "".join(
        f'<li><button type="submit" name="rpps" value="{escape(rpps)}">'
        f'<span class="name">{escape(name)}</span> '
        f'<span class="rpps">RPPS {escape(rpps)}</span></button></li>\n'
        for name, rpps in issuer.professionals
    )
    return _page(
        "Pro Santé Connect — démonstration",
        "<h1>Pro Santé Connect — environnement de démonstration</h1>\n"
        f'<p class="warning" role="note">{escape(_WARNING)}</p>\n'
        "<p>Choisissez le professionnel de santé sous l'identité duquel vous connecter au "
        f"service <strong>{escape(issuer.client_id)}</strong> (niveau eIDAS substantiel, "
        "comme avec une e-CPS).</p>\n"
        '<form method="post" action="/authorize">\n'
        f"{hidden}<ul>\n{buttons}</ul>\n</form>\n",
    )


def error_page() -> str:
    return _page(
        "Connexion impossible",
        "<h1>Connexion impossible</h1>\n"
        "<p>Cette demande de connexion est invalide ou a expiré. Recommencez depuis le "
        "portail des professionnels.</p>\n",
    )


_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def _csp(form_action: str) -> str:
    return (
        "default-src 'none'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
        f"form-action {form_action}"
    )
