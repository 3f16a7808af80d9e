"""``tierspayant demo``: create the demo data with progress bars and print how to use it."""

from __future__ import annotations

import json

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from tierspayant.app.platform import initialise
from tierspayant.config import Settings
from tierspayant.demo.accounts import DemoAccount
from tierspayant.demo.builder import build_demo


def run_demo(
    settings: Settings,
    beneficiaries: int,
    providers_count: int,
    seed: int,
    console: Console,
    claims: int = 3_000,
) -> None:
    """Initialise the platform, create the data set, print accounts and a curl example."""
    platform = initialise(settings)
    try:
        with Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as bar:
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
    if summary.already_there:
        console.print("Demo data already present: a fresh client was issued.")
    else:
        console.print(
            f"Created {len(summary.insurers)} insurers, {summary.beneficiaries} beneficiaries, "
            f"{summary.providers} providers, {summary.claims} invoices of "
            f"{summary.claims_month:%m/%Y} (adjudicated), {summary.canaries} canaries."
        )
        console.print(
            f"Providers paid {summary.paid_cents / 100:,.2f} EUR (pain.001 and remittance "
            f"advices under {settings.data_dir / 'payments'}); insurers billed "
            f"{summary.billed_cents / 100:,.2f} EUR (under {settings.data_dir / 'billing'})."
        )
        _print_accounts(console, summary.accounts, f"http://{settings.host}:{settings.port}")
    base = f"http://{settings.host}:{settings.port}"
    card = {
        "amc_number": summary.sample_card["amc_number"],
        "nir": summary.sample_card["nir"],
        "birth_rank": int(summary.sample_card["birth_rank"]),
        "birth_date": summary.sample_card["birth_date"],
    }
    body = json.dumps({"card": card, "care_date": "TODAY", "domains": ["PHAR", "MED"]})
    console.print(f"\nProvider software credentials (pharmacy {summary.provider_am_number}):")
    console.print(f"  client_id={summary.client_id}\n  client_secret={summary.client_secret}\n")
    console.print("Try it (synthetic card data):\n", style="bold")
    console.print(
        f"TOKEN=$(curl -s -d grant_type=client_credentials -d client_id={summary.client_id} "
        f"-d client_secret={summary.client_secret} {base}/v1/oauth/token "
        "| python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')",
        soft_wrap=True,
    )
    console.print(
        f"curl -s -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' "
        f"-d '{body}' {base}/v1/eligibility".replace('"TODAY"', "\"'$(date +%F)'\""),
        soft_wrap=True,
    )
    console.print(f"\nDocument OpenAPI (avec TIERSPAYANT_API_DOCS=1) : {base}/openapi.json")
    console.print(f"Portals: {base}/portail/\n")


def _print_accounts(console: Console, accounts: list[DemoAccount], base: str) -> None:
    """The demo logins, once: passwords and TOTP secrets are not stored in clear."""
    if not accounts:
        return
    console.print("\nDemo accounts (shown once):", style="bold")
    for account in accounts:
        console.print(f"  {base}{account.portal_path}", soft_wrap=True)
        console.print(f"    identifiant : {account.login}", soft_wrap=True)
        if account.password is None:
            console.print("    connexion   : Pro Santé Connect (démo)")
            continue
        console.print(f"    mot de passe: {account.password}", soft_wrap=True)
        if account.totp_secret:
            console.print(
                f'    code TOTP   : .venv/bin/python -c "import pyotp; '
                f"print(pyotp.TOTP('{account.totp_secret}').now())\"",
                soft_wrap=True,
            )
