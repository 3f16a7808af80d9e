"""Demo logins of the portals, and TOTP enrolment by an administrator.

The demo needs one login per portal that a person can type: a password and a TOTP
secret to put in an authenticator app (or to feed ``pyotp``). Health professionals have
no password at all (Pro Santé Connect only); their demo account is bound to a registered
provider's RPPS and logs in through the configured OpenID Connect issuer.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from tierspayant.app.platform import Platform
from tierspayant.domain.codes import DirectoryCode
from tierspayant.services import accounts, directory
from tierspayant.services.accounts import AccountKind
from tierspayant.services.errors import Conflict, NotFound

DEMO_ACTOR = "operator:demo"
PORTAL_PATHS = {
    AccountKind.PROVIDER_USER: "/portail/prestataire/",
    AccountKind.INSURER_STAFF: "/portail/assureur/",
    AccountKind.MEMBER: "/portail/adherent/",
    AccountKind.OPERATOR_STAFF: "/portail/securite/",
}


@dataclass(frozen=True, slots=True)
class DemoAccount:
    """One demo login; ``password`` and ``totp_secret`` are None for a professional."""

    kind: AccountKind
    portal_path: str
    login: str
    password: str | None
    totp_secret: str | None
    principal_id: str


def demo_password() -> str:
    """A random passphrase that passes the password policy (about 120 bits)."""
    return "-".join(secrets.token_urlsafe(6) for _ in range(4))


def _staff(
    platform: Platform,
    kind: AccountKind,
    login: str,
    *,
    insurer_id: int | None = None,
    beneficiary_id: int | None = None,
) -> DemoAccount:
    password = demo_password()
    account = accounts.create_account(
        platform,
        kind,
        login,
        password,
        actor=DEMO_ACTOR,
        insurer_id=insurer_id,
        beneficiary_id=beneficiary_id,
    )
    enrolment = accounts.enrol_totp_now(platform, login, password)
    return DemoAccount(
        kind, PORTAL_PATHS[kind], login, password, enrolment.secret, account.principal_id
    )


def _first_insurer(platform: Platform, amc: str | None) -> tuple[int, str]:
    found = directory.first_insurer(platform, amc)
    if found is None:
        raise NotFound(DirectoryCode.INSURER_UNKNOWN, "no insurer to attach demo accounts to")
    return found


def _demo_beneficiary(platform: Platform, insurer_id: int) -> int | None:
    # Demo set-up only: the first real (non-canary) beneficiary becomes the demo member.
    return directory.first_member_id(platform, insurer_id)


def _demo_professional(platform: Platform) -> DemoAccount | None:
    row = directory.first_professional(platform)
    if row is None:
        return None
    account = accounts.create_account(
        platform,
        AccountKind.PROVIDER_USER,
        None,
        None,
        actor=DEMO_ACTOR,
        provider_id=row.id,
        rpps=row.rpps,
    )
    kind = AccountKind.PROVIDER_USER
    return DemoAccount(
        kind, PORTAL_PATHS[kind], f"RPPS {row.rpps}", None, None, account.principal_id
    )


def create_demo_accounts(
    platform: Platform, *, insurer_amc: str | None = None, domain: str = "demo.tierspayant.fr"
) -> list[DemoAccount]:
    """One account per portal (two operators: reinstatement needs a second approver).

    Accounts that already exist are skipped (their secrets cannot be shown again).
    """
    insurer_id, amc = _first_insurer(platform, insurer_amc)
    wanted: list[tuple[AccountKind, str, dict[str, int | None]]] = [
        (AccountKind.INSURER_STAFF, f"gestion.{amc}@{domain}", {"insurer_id": insurer_id}),
        (AccountKind.OPERATOR_STAFF, f"securite.1@{domain}", {}),
        (AccountKind.OPERATOR_STAFF, f"securite.2@{domain}", {}),
    ]
    beneficiary = _demo_beneficiary(platform, insurer_id)
    if beneficiary is not None:
        extra: dict[str, int | None] = {"insurer_id": insurer_id, "beneficiary_id": beneficiary}
        wanted.append((AccountKind.MEMBER, f"adherent.{amc}@{domain}", extra))
    made: list[DemoAccount] = []
    for kind, login, ids in wanted:
        try:
            made.append(_staff(platform, kind, login, **ids))
        except Conflict:
            continue
    try:
        professional = _demo_professional(platform)
    except Conflict:
        professional = None
    if professional is not None:
        made.append(professional)
    return made
