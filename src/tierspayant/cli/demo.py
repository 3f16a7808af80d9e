"""``tierspayant demo``: create the demo data with progress bars and print how to use it
(in French: this is what a person reads)."""

from __future__ import annotations

import json

from rich.console import Console
from rich.progress import TaskID

from tierspayant.app.platform import initialise
from tierspayant.cli.common import progress_bar
from tierspayant.config import Settings
from tierspayant.demo import totp
from tierspayant.demo.accounts import DemoAccount
from tierspayant.demo.builder import DemoSummary, build_demo
from tierspayant.services.accounts import AccountKind

ROLES = {
    AccountKind.INSURER_STAFF: "Gestionnaire de l'organisme complémentaire",
    AccountKind.OPERATOR_STAFF: "Équipe sécurité de l'opérateur",
    AccountKind.MEMBER: "Adhérent (relevés de remboursement)",
    AccountKind.PROVIDER_USER: "Professionnel de santé",
}


def euros(cents: int) -> str:
    """``1 234,56 €``: French grouping (narrow no-break space) and decimal comma."""
    whole, rest = divmod(abs(cents), 100)
    grouped = f"{whole:,}".replace(",", "\u202f")
    return f"{'-' if cents < 0 else ''}{grouped},{rest:02d} €"


def run_demo(
    settings: Settings,
    beneficiaries: int,
    providers_count: int,
    seed: int,
    console: Console,
    claims: int = 3_000,
) -> DemoSummary:
    """Initialise the platform, create the data set (or, if it is there, renew the demo
    accounts' credentials), print the accounts and a curl example."""
    platform = initialise(settings)
    try:
        with progress_bar(console) as bar:
            tasks: dict[str, TaskID] = {}

            def progress(label: str, done: int, total: int) -> None:
                if label not in tasks:
                    tasks[label] = bar.add_task(label, total=total)
                bar.update(tasks[label], completed=done, total=total)

            summary = build_demo(
                platform,
                beneficiaries=beneficiaries,
                providers_count=providers_count,
                seed=seed,
                claims=claims,
                progress=progress,
            )
    finally:
        platform.close()
    base = f"http://{settings.host}:{settings.port}"
    if summary.already_there:
        console.print("Données de démonstration déjà présentes : rien n'a été recréé.")
    else:
        month = f"{summary.claims_month:%m/%Y}" if summary.claims_month else "-"
        console.print(
            f"Créés : {len(summary.insurers)} organismes complémentaires, "
            f"{summary.beneficiaries} bénéficiaires, {summary.providers} professionnels de "
            f"santé, {summary.claims} factures de {month} (liquidées), "
            f"{summary.canaries} canaris."
        )
        console.print(
            f"Professionnels payés : {euros(summary.paid_cents)} (virements pain.001 et avis "
            f"de paiement sous {settings.data_dir / 'payments'}) ; organismes facturés : "
            f"{euros(summary.billed_cents)} (sous {settings.data_dir / 'billing'}).",
            soft_wrap=True,
        )
    _print_accounts(console, summary, base)
    _print_api(console, summary, base)
    return summary


def _print_accounts(console: Console, summary: DemoSummary, base: str) -> None:
    accounts = summary.accounts
    if summary.already_there and not summary.accounts_reset:
        console.print(
            "\nLes comptes de démonstration ne sont renouvelés que sur la base SQLite "
            "intégrée de la démo ; ici, créez-les avec « tierspayant accounts demo ».",
            soft_wrap=True,
        )
        return
    if not accounts:
        return
    title = (
        "\nComptes de démonstration (nouveaux mots de passe et secrets TOTP, les anciens "
        "ne fonctionnent plus) :"
        if summary.already_there
        else "\nComptes de démonstration (relancez « make demo » pour en obtenir de nouveaux) :"
    )
    console.print(title, style="bold", soft_wrap=True)
    for account in accounts:
        _print_account(console, account, summary, base)
    console.print(
        "\nLa commande TOTP attend le pas suivant s'il reste moins de "
        f"{totp.MIN_LEFT_SECONDS} s : le code affiché n'est jamais périmé.",
        soft_wrap=True,
    )


def _print_account(console: Console, account: DemoAccount, summary: DemoSummary, base: str) -> None:
    role = ROLES[account.kind]
    pharmacist = account.login == f"RPPS {summary.pharmacist_rpps}"
    if pharmacist:
        role = f"Pharmacien·ne titulaire ({summary.pharmacist_name}, {summary.pharmacy_name})"
    console.print(f"\n  {role}", soft_wrap=True)
    console.print(f"    adresse       : {base}{account.portal_path}", soft_wrap=True)
    console.print(f"    identifiant   : {account.login}", soft_wrap=True, markup=False)
    if account.password is None:
        console.print(
            "    connexion     : « Se connecter avec Pro Santé Connect », puis choisir ce "
            "professionnel sur la page Pro Santé Connect de démonstration",
            soft_wrap=True,
        )
        if pharmacist:
            console.print(
                "    à voir        : factures payées (avis de paiement à télécharger) et "
                "factures rejetées avec leur motif",
                soft_wrap=True,
            )
        return
    console.print(f"    mot de passe  : {account.password}", soft_wrap=True, markup=False)
    if account.totp_secret:
        console.print(f"    secret TOTP   : {account.totp_secret}", soft_wrap=True, markup=False)
        console.print(
            f"    code TOTP     : {totp.command(account.totp_secret)}",
            soft_wrap=True,
            markup=False,
        )
    if account.kind is AccountKind.MEMBER:
        console.print("    à voir        : relevés avec les lignes payées", soft_wrap=True)


def _print_api(console: Console, summary: DemoSummary, base: str) -> None:
    card = {
        "amc_number": summary.sample_card["amc_number"],
        "nir": summary.sample_card["nir"],
        "birth_rank": int(summary.sample_card["birth_rank"]),
        "birth_date": summary.sample_card["birth_date"],
    }
    body = json.dumps({"card": card, "care_date": "TODAY", "domains": ["PHAR", "MED"]})
    console.print(
        f"\nIdentifiants du logiciel de la pharmacie {summary.provider_am_number} "
        "(nouveaux à chaque lancement) :"
    )
    console.print(
        f"  client_id={summary.client_id}\n  client_secret={summary.client_secret}\n",
        markup=False,
    )
    console.print("Essayer l'API (données de carte synthétiques) :\n", style="bold")
    console.print(
        f"TOKEN=$(curl -s -d grant_type=client_credentials -d client_id={summary.client_id} "
        f"-d client_secret={summary.client_secret} {base}/v1/oauth/token "
        "| python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')",
        soft_wrap=True,
        markup=False,
    )
    console.print(
        f"curl -s -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' "
        f"-d '{body}' {base}/v1/eligibility".replace('"TODAY"', "\"'$(date +%F)'\""),
        soft_wrap=True,
        markup=False,
    )
    console.print(f"\nAccueil : {base}/", soft_wrap=True)
    console.print(f"Portails : {base}/portail/", soft_wrap=True)
    console.print(
        f"Documentation de l'API : {base}/docs (document OpenAPI : {base}/openapi.json)\n"
    )
