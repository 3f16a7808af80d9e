"""``tierspayant containment …``: contain an attack without taking the platform down.

Two operators: one proposes (``propose``, ``lift``), another approves (``approve``);
every step is audited. Messages in French; refusals exit with the statuses of
``cli.common.EXIT_CODES`` (2 refused as given, 3 unknown switch, 4 nothing waits).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich.markup import escape
from rich.table import Table

from tierspayant.cli.common import console, fail, platform_ctx
from tierspayant.domain.containment import REFUSALS_FR, Switch
from tierspayant.domain.errors import DomainError
from tierspayant.services import containment

containment_app = typer.Typer(
    no_args_is_help=True,
    help=(
        "Confinement sans interruption : passer un périmètre en mode carte obligatoire ou "
        "hors service, à deux opérateurs."
    ),
)

Operator = Annotated[
    str, typer.Option("--as", help="opérateur qui agit, operator:NOM (journalisé)")
]
SwitchId = Annotated[int, typer.Argument(help="numéro de la bascule")]
Reason = Annotated[str, typer.Option("--reason", help="motif (10 à 500 caractères, journalisé)")]


def register(app: typer.Typer, import_app: typer.Typer) -> None:
    """Add ``containment`` to the ``tierspayant`` application."""
    app.add_typer(containment_app, name="containment")


def _french(error: DomainError) -> typer.Exit:
    return fail(error, REFUSALS_FR.get(error.code))


def local_time(moment: datetime) -> str:
    return moment.astimezone(ZoneInfo("Europe/Paris")).strftime("%d/%m/%Y %H:%M")


def _describe(switch: Switch) -> str:
    return escape(f"n° {switch.id} — {switch.scope.label}, {switch.mode.label}")


@containment_app.command("propose")
def propose(
    scope: Annotated[
        str,
        typer.Option(
            "--scope",
            help=(
                "platform, insurer:AMC, structure:NUMÉRO, category:CATÉGORIE (pharmacy, gp…) "
                "ou route:eligibility|calculation|prior_auth|claims"
            ),
        ),
    ],
    mode: Annotated[
        str,
        typer.Option("--mode", help="card_proof_only (carte obligatoire) ou off (hors service)"),
    ],
    reason: Reason,
    actor: Operator,
    hours: Annotated[
        int | None, typer.Option("--hours", help="levée automatique après N heures (1 à 168)")
    ] = None,
) -> None:
    """Proposer une bascule ; elle s'applique dès qu'un second opérateur l'approuve."""
    with platform_ctx() as platform:
        try:
            switch = containment.propose(platform, actor, scope, mode, reason, hours=hours)
        except DomainError as exc:
            raise _french(exc) from None
    console.print(f"bascule proposée : {_describe(switch)}")
    console.print(
        f"un second opérateur doit l'approuver dans l'heure : "
        f"tierspayant containment approve {switch.id} --as operator:NOM"
    )


@containment_app.command("approve")
def approve(switch_id: SwitchId, actor: Operator) -> None:
    """Approuver ce qui attend (une bascule proposée, ou sa levée) : second opérateur."""
    with platform_ctx() as platform:
        try:
            switch = containment.approve(platform, actor, switch_id)
        except DomainError as exc:
            raise _french(exc) from None
    if switch.state.in_force:
        console.print(
            f"bascule en vigueur : {_describe(switch)} (tous les serveurs sous "
            f"{containment.REFRESH_SECONDS:g} s)"
        )
    else:
        console.print(f"bascule levée : {_describe(switch)}")


@containment_app.command("lift")
def lift(switch_id: SwitchId, reason: Reason, actor: Operator) -> None:
    """Proposer la levée d'une bascule ; elle reste en vigueur jusqu'à l'approbation."""
    with platform_ctx() as platform:
        try:
            switch = containment.propose_lift(platform, actor, switch_id, reason)
        except DomainError as exc:
            raise _french(exc) from None
    console.print(f"levée proposée : {_describe(switch)}")
    console.print(
        f"un second opérateur doit l'approuver : "
        f"tierspayant containment approve {switch.id} --as operator:NOM"
    )


STATES_FR = {
    "proposed": "proposée",
    "active": "en vigueur",
    "lift_proposed": "en vigueur, levée proposée",
    "lifted": "levée",
}


@containment_app.command("status")
def status() -> None:
    """Lister les bascules récentes : en vigueur, en attente, levées."""
    with platform_ctx() as platform:
        views = containment.status(platform)
    table = Table("n°", "périmètre", "mode", "état", "proposée par", "approuvée par", "fin")
    for view in views:
        switch = view.switch
        state = STATES_FR[switch.state.value]
        if view.lapsed:
            state += " (proposition expirée)"
        elif switch.state.in_force and not view.in_force:
            state = "expirée"
        table.add_row(
            str(switch.id),
            escape(switch.scope.label),
            switch.mode.label,
            state,
            escape(switch.proposer),
            escape(switch.approver or "—"),
            local_time(switch.expires_at) if switch.expires_at else "à la levée",
        )
    console.print(table)
    active = sum(1 for v in views if v.in_force)
    console.print(f"{active} bascule(s) en vigueur")
