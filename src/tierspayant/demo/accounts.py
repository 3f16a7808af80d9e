"""Demo logins of the portals, and TOTP enrolment by an administrator.

The demo needs one login per portal that a person can type: a password and a TOTP
secret to put in an authenticator app (or to feed ``pyotp``). Health professionals have
no password at all (Pro Santé Connect only); their demo account is bound to a registered
provider's RPPS and logs in through the configured OpenID Connect issuer.
"""

from __future__ import annotations

from dataclasses import dataclass

from tierspayant.app.platform import Platform
from tierspayant.domain.codes import DirectoryCode
from tierspayant.services import accounts, directory
from tierspayant.services.accounts import DEMO_DOMAIN, AccountKind, demo_password
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


__all__ = [
    "DEMO_ACTOR",
    "PORTAL_PATHS",
    "DemoAccount",
    "DemoPharmacist",
    "create_demo_accounts",
    "demo_password",
    "reset_demo_accounts",
]


@dataclass(frozen=True, slots=True)
class DemoPharmacist:
    """The demo pharmacy's pharmacist: an RPPS of their own, bound to the pharmacy's
    registry entry (a pharmacy is an establishment: it has a FINESS, not an RPPS)."""

    name: str
    rpps: str
    provider_id: int


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


def _professional_account(platform: Platform, provider_id: int, rpps: str) -> DemoAccount:
    account = accounts.create_account(
        platform,
        AccountKind.PROVIDER_USER,
        None,
        None,
        actor=DEMO_ACTOR,
        provider_id=provider_id,
        rpps=rpps,
    )
    kind = AccountKind.PROVIDER_USER
    return DemoAccount(kind, PORTAL_PATHS[kind], f"RPPS {rpps}", None, None, account.principal_id)


def _professionals(pharmacist: DemoPharmacist | None, platform: Platform) -> list[tuple[int, str]]:
    """(provider id, RPPS) of the demo's professional logins: the pharmacist first."""
    found = [] if pharmacist is None else [(pharmacist.provider_id, pharmacist.rpps)]
    row = directory.first_professional(platform)
    if row is not None:
        found.append((row.id, row.rpps))
    return found


def _wanted(
    platform: Platform, insurer_amc: str | None, domain: str
) -> list[tuple[AccountKind, str, dict[str, int | None]]]:
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
    return wanted


def create_demo_accounts(
    platform: Platform,
    *,
    insurer_amc: str | None = None,
    domain: str = DEMO_DOMAIN,
    pharmacist: DemoPharmacist | None = None,
) -> list[DemoAccount]:
    """One account per portal (two operators: reinstatement needs a second approver; two
    professionals when ``pharmacist`` is given: the pharmacist and the first registered
    professional).

    Accounts that already exist are skipped (their secrets cannot be shown again:
    :func:`reset_demo_accounts` gives them new ones).
    """
    made: list[DemoAccount] = []
    for kind, login, ids in _wanted(platform, insurer_amc, domain):
        try:
            made.append(_staff(platform, kind, login, **ids))
        except Conflict:
            continue
    for provider_id, rpps in _professionals(pharmacist, platform):
        try:
            made.append(_professional_account(platform, provider_id, rpps))
        except Conflict:
            continue
    return made


def reset_demo_accounts(
    platform: Platform, *, insurer_amc: str | None = None, pharmacist: DemoPharmacist | None = None
) -> list[DemoAccount]:
    """The demo's accounts again, with new passwords and TOTP secrets (audited
    ``account.demo_reset``; refused outside the embedded SQLite demo database), the
    professionals as they are (they log in through the demo Pro Santé Connect)."""
    shown: list[DemoAccount] = []
    for kind, login, _ in _wanted(platform, insurer_amc, DEMO_DOMAIN):
        found = accounts.find_account(platform, login)
        if found is None:
            continue
        fresh = accounts.reset_demo_credentials(platform, login, actor=DEMO_ACTOR)
        shown.append(
            DemoAccount(
                kind,
                PORTAL_PATHS[kind],
                login,
                fresh.password,
                fresh.totp_secret,
                found.principal_id,
            )
        )
    kind = AccountKind.PROVIDER_USER
    for _, rpps in _professionals(pharmacist, platform):
        shown.append(DemoAccount(kind, PORTAL_PATHS[kind], f"RPPS {rpps}", None, None, ""))
    return shown
