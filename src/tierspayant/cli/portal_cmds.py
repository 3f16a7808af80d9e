"""``tierspayant accounts …``: portal accounts, registered by ``cli.main``."""

from __future__ import annotations

from typing import Annotated

import typer

from tierspayant.cli.common import CLI_ACTOR, console, fail, platform_ctx
from tierspayant.services import accounts, directory, portal_demo
from tierspayant.services.accounts import AccountKind
from tierspayant.services.platform import Platform

accounts_app = typer.Typer(no_args_is_help=True, help="Comptes des portails (personnes).")

KINDS = {
    "insurer_staff": AccountKind.INSURER_STAFF,
    "operator_staff": AccountKind.OPERATOR_STAFF,
    "member": AccountKind.MEMBER,
    "provider": AccountKind.PROVIDER_USER,
}


def _insurer_id(platform: Platform, amc: str | None) -> int | None:
    if amc is None:
        return None
    found = directory.insurer_id_of(platform, amc)
    if found is None:
        raise fail("insurer.unknown", f"no insurer has the AMC number {amc}")
    return found


def _provider_id(platform: Platform, am_number: str | None) -> int | None:
    if am_number is None:
        return None
    found = directory.provider_id_of(platform, am_number)
    if found is None:
        raise fail("provider.unknown", f"no provider has the AM number {am_number}")
    return found


@accounts_app.command("create")
def create(
    kind: Annotated[
        str, typer.Option("--kind", help="insurer_staff, operator_staff, member ou provider")
    ],
    login: Annotated[str | None, typer.Option("--login", help="adresse e-mail")] = None,
    insurer: Annotated[str | None, typer.Option("--insurer", help="numéro AMC")] = None,
    beneficiary_id: Annotated[
        int | None, typer.Option("--beneficiary-id", help="adhérent : son bénéficiaire")
    ] = None,
    provider: Annotated[
        str | None, typer.Option("--provider", help="professionnel : numéro AM")
    ] = None,
    rpps: Annotated[str | None, typer.Option("--rpps", help="professionnel : RPPS")] = None,
    name: Annotated[str | None, typer.Option("--name", help="nom affiché")] = None,
) -> None:
    """Créer un compte ; pour le personnel et les adhérents, affiche une seule fois la clé
    TOTP (et son URI otpauth) à saisir dans une application d'authentification."""
    if kind not in KINDS:
        raise fail("account.kind", f"kind must be one of {', '.join(KINDS)}")
    account_kind = KINDS[kind]
    password: str | None = None
    if account_kind is not AccountKind.PROVIDER_USER:
        if login is None:
            raise fail("account.login", "--login is required")
        password = typer.prompt("Mot de passe", hide_input=True, confirmation_prompt=True)
    with platform_ctx() as platform:
        account = accounts.create_account(
            platform,
            account_kind,
            login,
            password,
            actor=CLI_ACTOR,
            insurer_id=_insurer_id(platform, insurer),
            provider_id=_provider_id(platform, provider),
            beneficiary_id=beneficiary_id,
            rpps=rpps,
            display_name=name,
        )
        console.print(f"compte créé : {account.principal_id}")
        if password is None or login is None:
            console.print("connexion par Pro Santé Connect (OpenID Connect), sans mot de passe")
            return
        enrolment = portal_demo.enrol_totp_now(platform, login, password)
    console.print("clé TOTP (affichée une seule fois) :", enrolment.secret, markup=False)
    console.print("URI :", enrolment.uri, markup=False)


@accounts_app.command("demo")
def demo(
    insurer: Annotated[str | None, typer.Option("--insurer", help="numéro AMC")] = None,
) -> None:
    """Créer les comptes de démonstration des quatre portails et afficher leurs accès."""
    with platform_ctx() as platform:
        made = portal_demo.create_demo_accounts(platform, insurer_amc=insurer)
    for item in made:
        # Plain lines, never a table: a narrow terminal must not cut a secret.
        console.print(item.portal_path, markup=False)
        console.print("  identifiant :", item.login, markup=False)
        console.print("  mot de passe :", item.password or "(Pro Santé Connect)", markup=False)
        console.print("  clé TOTP :", item.totp_secret or "-", markup=False, soft_wrap=True)
    if not made:
        console.print("les comptes de démonstration existent déjà")


def register(app: typer.Typer, import_app: typer.Typer) -> None:
    """Add this module's commands to the ``tierspayant`` application."""
    del import_app  # nothing to import here
    app.add_typer(accounts_app, name="accounts")
