"""``tierspayant sandbox``: the fixed data set for provider software makers (docs/sandbox.md)."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tierspayant.app.platform import initialise
from tierspayant.config import Settings
from tierspayant.demo.sandbox import (
    SANDBOX_AMC,
    SANDBOX_PHARMACY_AM,
    build_sandbox,
    export_sandbox,
    sandbox_cases,
)


class ExportInsideDataDir(ValueError):
    """The export would land in the data directory, which must hold no identity in clear."""


def check_export_path(settings: Settings, path: Path) -> Path:
    """``path`` made absolute; refused inside the data directory."""
    target = path.expanduser().resolve()
    data_dir = settings.data_dir.expanduser().resolve()
    if target == data_dir or data_dir in target.parents:
        raise ExportInsideDataDir(
            f"l'export doit être écrit hors du répertoire de données ({data_dir})"
        )
    return target


def expected_text(expected: dict[str, object]) -> str:
    """The expected answer in a few French words (the table of docs/sandbox.md)."""
    if "code" in expected:
        return f"{expected['status']} {expected['code']}"
    rights = expected["rights"]
    assert isinstance(rights, list)
    parts = []
    for domain, covered, tiers_payant, code in rights:
        if not covered:
            parts.append(f"{domain} non couvert")
        elif tiers_payant:
            parts.append(f"{domain} {code}")
        else:
            parts.append(f"{domain} ({code}) sans tiers payant")
    engagement = "avec" if expected["engagement"] else "sans"
    return ", ".join(parts) + f" ; {engagement} numéro d'engagement"


def cases_table() -> Table:
    table = Table(title=f"Bac à sable : organisme {SANDBOX_AMC}, pharmacie {SANDBOX_PHARMACY_AM}")
    for column in ("Cas", "NIR", "Rang", "Né(e) le", "N° adhérent", "Domaines", "Réponse"):
        table.add_column(column)
    for case in sandbox_cases():
        card = case.card
        table.add_row(
            case.title,
            str(card.get("nir", "")),
            str(card.get("birth_rank", "")),
            str(card["birth_date"]),
            str(card.get("member_number", "")),
            " ".join(case.domains),
            expected_text(case.expected),
        )
    return table


def run_sandbox(settings: Settings, console: Console, export: Path | None) -> None:
    """Create the sandbox (once), print its cases and fresh credentials, export if asked."""
    target = None if export is None else check_export_path(settings, export)
    platform = initialise(settings)
    try:
        summary = build_sandbox(platform)
    finally:
        platform.close()
    console.print(
        "Bac à sable créé." if summary.created else "Bac à sable déjà présent : données inchangées."
    )
    console.print(cases_table(), soft_wrap=True)
    if target is not None:
        export_sandbox(target)
        console.print(f"Jeu de données écrit dans {target}")
    base = f"http://{settings.host}:{settings.port}"
    console.print(f"\nIdentifiants du logiciel de test (pharmacie {SANDBOX_PHARMACY_AM}) :")
    console.print(f"  client_id={summary.client_id}\n  client_secret={summary.client_secret}")
    first = sandbox_cases()[0]
    body = json.dumps({"card": first.card, "care_date": "TODAY", "domains": list(first.domains)})
    console.print("\nEssai (données de test, voir docs/sandbox.md) :", style="bold")
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


def cases_markdown() -> str:
    """The cases as the Markdown table of docs/sandbox.md (kept equal by the tests)."""
    lines = [
        "| Cas | NIR | Rang | Né(e) le | N° adhérent | Domaines | Réponse attendue |",
        "|---|---|---|---|---|---|---|",
    ]
    for case in sandbox_cases():
        card = case.card
        cells = (
            f"**{case.key}** — {case.title}",
            f"`{card['nir']}`" if "nir" in card else "—",
            str(card.get("birth_rank", "—")),
            str(card["birth_date"]),
            f"`{card['member_number']}`" if "member_number" in card else "—",
            " ".join(case.domains),
            expected_text(case.expected),
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
