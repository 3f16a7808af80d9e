"""``tierspayant accounts …``: portal accounts, registered by ``cli.main``."""

from __future__ import annotations

from typing import Annotated

import typer

from tierspayant.app.platform import Platform
from tierspayant.cli.common import CLI_ACTOR, console, fail, platform_ctx
from tierspayant.demo import accounts as demo_accounts
from tierspayant.domain.codes import AuthCode, DirectoryCode
from tierspayant.services import accounts, directory
from tierspayant.services.accounts import AccountKind
from tierspayant.services.errors import Forbidden, NotFound, ServiceError

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
        raise fail(
            NotFound(DirectoryCode.INSURER_UNKNOWN, f"aucun organisme ne porte le numéro AMC {amc}")
        )
    return found


def _provider_id(platform: Platform, am_number: str | None) -> int | None:
    if am_number is None:
        return None
    found = directory.provider_id_of(platform, am_number)
    if found is None:
        raise fail(
            NotFound(DirectoryCode.PROVIDER_UNKNOWN, f"no provider has the AM number {am_number}")
        )
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
        raise fail(
            ServiceError(AuthCode.ACCOUNT_KIND, f"type de compte : {' | '.join(KINDS)} attendu")
        )
    account_kind = KINDS[kind]
    password: str | None = None
    if account_kind is not AccountKind.PROVIDER_USER:
        if login is None:
            raise fail(
                ServiceError(
                    AuthCode.ACCOUNT_LOGIN, "--login est obligatoire pour ce type de compte"
                )
            )
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
        enrolment = accounts.enrol_totp_now(platform, login, password)
    console.print("clé TOTP (affichée une seule fois) :", enrolment.secret, markup=False)
    console.print("URI :", enrolment.uri, markup=False)


@accounts_app.command("unlock")
def unlock(
    login: Annotated[str, typer.Option("--login", help="identifiant (adresse e-mail)")],
) -> None:
    """Déverrouiller un compte du personnel ou d'un adhérent bloqué après trop d'échecs de
    connexion (à faire après avoir vérifié qui le demande) ; l'opération est tracée."""
    with platform_ctx() as platform:
        account = accounts.find_account(platform, login)
        if account is None:
            raise fail(NotFound(AuthCode.ACCOUNT_UNKNOWN, "aucun compte ne porte cet identifiant"))
        locked = account.locked_until is not None and account.locked_until > platform.now()
        accounts.unlock_account(platform, account.id, actor=CLI_ACTOR)
    state = "était verrouillé" if locked else "n'était pas verrouillé"
    console.print(
        f"compte déverrouillé : {account.principal_id} ({state}, "
        f"{account.failed_logins} échec(s) effacé(s))",
        markup=False,
    )


# Refusals of the login that precedes a renewal of recovery codes, in French.
_LOGIN_REFUSALS: dict[str, str] = {
    AuthCode.LOCKED: "trop d'échecs : le compte est bloqué pour quelques minutes",
    AuthCode.SUSPENDED: "ce compte est suspendu",
    AuthCode.MFA_ENROLMENT_REQUIRED: "ce compte n'a pas encore de second facteur : "
    "connectez-vous d'abord au portail pour en configurer un",
}


@accounts_app.command("recovery-codes")
def recovery_codes(
    login: Annotated[str, typer.Option("--login", help="votre identifiant (adresse e-mail)")],
) -> None:
    """Remplacer vos codes de secours : connexion complète (mot de passe puis code de
    l'application ou code de secours), puis affichage unique des dix nouveaux codes ; les
    anciens ne fonctionnent plus."""
    password = typer.prompt("Mot de passe", hide_input=True)
    with platform_ctx() as platform:
        try:
            challenge = accounts.begin_login(platform, login, password)
            if challenge.must_enrol:
                code = AuthCode.MFA_ENROLMENT_REQUIRED
                raise fail(Forbidden(code, _LOGIN_REFUSALS[code]))
            code = typer.prompt(
                "Code à 6 chiffres de votre application, ou code de secours", hide_input=True
            ).replace(" ", "")
            recovery = "-" in code
            session = accounts.complete_mfa(
                platform,
                challenge.challenge_id,
                totp_code=None if recovery else code,
                recovery_code=code if recovery else None,
            )
        except ServiceError as exc:
            message = _LOGIN_REFUSALS.get(exc.code, "identifiant, mot de passe ou code refusé")
            raise fail(exc, message) from None
        try:
            codes = accounts.regenerate_recovery_codes(platform, session.token)
        finally:
            accounts.logout(platform, session.token)
    console.print("Nouveaux codes de secours (affichés une seule fois, chacun sert une fois) :")
    for item in codes:
        console.print(f"  {item}", markup=False)
    console.print("Les anciens codes de secours ne fonctionnent plus.")


@accounts_app.command("demo")
def demo(
    insurer: Annotated[str | None, typer.Option("--insurer", help="numéro AMC")] = None,
) -> None:
    """Créer les comptes de démonstration des quatre portails et afficher leurs accès."""
    with platform_ctx() as platform:
        made = demo_accounts.create_demo_accounts(platform, insurer_amc=insurer)
    for item in made:
        # Plain lines, never a table: a narrow terminal must not cut a secret.
        console.print(item.portal_path, markup=False)
        console.print("  identifiant :", item.login, markup=False)
        console.print("  mot de passe :", item.password or "(Pro Santé Connect)", markup=False)
        console.print("  clé TOTP :", item.totp_secret or "-", markup=False, soft_wrap=True)
    if not made:
        console.print(
            "les comptes de démonstration existent déjà : sur la base de la démonstration, "
            "« tierspayant demo --no-serve » leur donne de nouveaux identifiants et les affiche"
        )


def register(app: typer.Typer, import_app: typer.Typer) -> None:
    """Add this module's commands to the ``tierspayant`` application."""
    del import_app  # nothing to import here
    app.add_typer(accounts_app, name="accounts")
