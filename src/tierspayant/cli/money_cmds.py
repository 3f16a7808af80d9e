"""Money commands: ``pay``, ``bill`` (and ``bill returns``), ``bank``, ``ledger check``,
``overpayments flag``, ``mandates set``, ``fees set``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import Progress

from tierspayant.cli.common import (
    CLI_ACTOR,
    console,
    err_console,
    fail,
    platform_ctx,
    progress_bar,
)
from tierspayant.domain.banking_calendar import following_business_day, paris_day
from tierspayant.domain.codes import BillingCode, PaymentCode, RequestCode
from tierspayant.domain.errors import DomainError
from tierspayant.formats.sepa import amount
from tierspayant.security.principal import AuthStrength, Principal, PrincipalKind
from tierspayant.services import bank_details, billing, ledger_check, overpayments, payments
from tierspayant.services.errors import ServiceError

ledger_app = typer.Typer(no_args_is_help=True, help="Le grand livre en partie double.")
overpayments_app = typer.Typer(no_args_is_help=True, help="Les indus (montants payés à tort).")
mandates_app = typer.Typer(no_args_is_help=True, help="Mandats de prélèvement SEPA des organismes.")
fees_app = typer.Typer(
    no_args_is_help=True, help="Frais de gestion de l'opérateur facturés aux organismes."
)
bank_app = typer.Typer(
    no_args_is_help=True,
    help=(
        "Changements de coordonnées bancaires des professionnels : demandés, vérifiés par une "
        "autre personne, appliqués."
    ),
)
bill_app = typer.Typer(
    invoke_without_command=True,
    help=(
        "Facturer les organismes pour un mois clos (--period), ou enregistrer les appels de fonds"
        " retournés."
    ),
)


def _progress() -> Progress:
    return progress_bar(console, counted=False)


def _day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise fail(
            ServiceError(RequestCode.CLI_DATE, f"{option} doit être une date écrite AAAA-MM-JJ")
        ) from None


@contextmanager
def _in_french(french: Callable[[str], str | None]) -> Iterator[None]:
    """Print a refusal whose code ``french`` knows as its French sentence, with the code
    and the exit status of its class; other refusals go on as they are."""
    try:
        yield
    except DomainError as exc:
        sentence = french(exc.code)
        if sentence is None:
            raise
        raise fail(exc, sentence) from None


def _pay_refusal(run_date: date, today: date) -> Callable[[str], str | None]:
    sentences: dict[str, str] = {
        PaymentCode.NOT_BUSINESS_DAY: f"le {run_date} n'est pas un jour ouvré TARGET2 : "
        f"prochain jour ouvré le {following_business_day(run_date)}",
        PaymentCode.DATE_PAST: f"le {run_date} est passé (nous sommes le {today}, heure de "
        'Paris) : une date passée exige --backdate-reason "motif"',
        PaymentCode.BACKDATE_REASON: "le motif de rétrodatation fait de 10 à 200 caractères",
        PaymentCode.PERIOD_BILLED: f"la période {run_date:%Y-%m} est déjà facturée (ou un "
        "mois suivant) : choisissez une date ultérieure",
    }
    return lambda code: sentences.get(code)


def _bill_refusal(period: str) -> Callable[[str], str | None]:
    sentences: dict[str, str] = {
        BillingCode.PERIOD_OPEN: f"la période {period} n'est pas terminée (heure de Paris)",
        BillingCode.PERIOD_BILLED: f"la période {period} est déjà facturée",
        BillingCode.PERIOD_ORDER: f"une période postérieure à {period} est déjà facturée",
    }
    return lambda code: sentences.get(code)


def pay(
    when: Annotated[str, typer.Option("--date", help="Date d'exécution des paiements, AAAA-MM-JJ")],
    out: Annotated[
        Path | None,
        typer.Option(help="Dossier des fichiers (par défaut <data_dir>/payments/<date>)"),
    ] = None,
    backdate_reason: Annotated[
        str | None,
        typer.Option(
            help="Pourquoi une date passée est payée (10 à 200 caractères), noté au journal d'audit"
        ),
    ] = None,
) -> None:
    """Payer aux professionnels ce que la liquidation a accepté : fichier pain.001 et avis
    de paiement.

    La date doit être un jour ouvré TARGET2, aujourd'hui ou plus tard (heure de Paris) ;
    une date passée seulement avec --backdate-reason.
    """
    run_date = _day(when, "--date")
    with platform_ctx() as platform, _progress() as progress:
        task = progress.add_task("Professionnels payés", total=None)
        refusal = _pay_refusal(run_date, paris_day(platform.now()))
        with _in_french(refusal):
            summary = payments.run_payments(
                platform,
                run_date,
                out_dir=out,
                actor=CLI_ACTOR,
                backdate_reason=backdate_reason,
                progress=lambda point, n: (
                    progress.update(task, completed=n) if point == payments.COMMITTED else None
                ),
            )
    for line in pay_report(summary):
        console.print(escape(line), soft_wrap=True)
    if summary.waiting_for_iban:
        err_console.print(
            f"{len(summary.waiting_for_iban)} prestataires sans IBAN restent à payer: "
            + ", ".join(summary.waiting_for_iban[:20])
        )
    if summary.held_for_bank_details:
        err_console.print(
            f"{len(summary.held_for_bank_details)} prestataires en attente de coordonnées "
            "bancaires (virement retourné ou changement en délai de sécurité): "
            + ", ".join(summary.held_for_bank_details[:20])
        )


def pay_report(summary: payments.PaymentRunSummary) -> list[str]:
    """What this execution of ``pay`` did: paid, resumed, or nothing new (and why)."""
    files = f"-> {summary.out_dir}"
    total = (
        f"{summary.providers} prestataires, {summary.transfers} virements, "
        f"{amount(summary.net_cents)} EUR"
    )
    cutoff = (
        summary.cutoff.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if summary.cutoff else "?"
    )
    if summary.already_done:
        lines = [
            f"{summary.run_key}: rien de nouveau à payer: l'exécution du "
            f"{summary.payment_date.isoformat()} est close (clôture {cutoff}; {total} déjà "
            f"émis, fichiers réécrits à l'identique {files})",
            "un seul fichier de virements par date d'exécution: ce qui a été adjudiqué après "
            "la clôture est payé à la prochaine date d'exécution",
        ]
    elif summary.resumed and summary.new_payments == 0:
        lines = [
            f"{summary.run_key}: reprise d'une exécution interrompue: rien de nouveau à payer "
            f"cette fois; au total {total} {files}"
        ]
    elif summary.resumed:
        lines = [
            f"{summary.run_key}: reprise d'une exécution interrompue: cette fois "
            f"{summary.new_payments} prestataires, {summary.new_transfers} virements, "
            f"{amount(summary.new_net_cents)} EUR; au total {total} {files}"
        ]
    elif summary.providers == 0:
        lines = [f"{summary.run_key}: rien de nouveau à payer {files}"]
    else:
        lines = [f"{summary.run_key}: {total} {files}"]
    if summary.unpaid_providers:
        lines.append(
            f"{summary.unpaid_providers} prestataires ont des lignes adjudiquées non payées "
            f"par cette exécution (adjudiquées après la clôture {cutoff}, ou sans IBAN): "
            "prochaine date d'exécution"
        )
    return lines


@bill_app.callback()
def bill(
    ctx: typer.Context,
    period: Annotated[str | None, typer.Option(help="Période facturée, AAAA-MM")] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Dossier des fichiers (par défaut <data_dir>/billing/<period>)"),
    ] = None,
) -> None:
    """Facturer les organismes pour un mois clos : relevés, appels de fonds pain.008, fichiers de
    détail."""
    if ctx.invoked_subcommand is not None:
        if period is not None or out is not None:
            raise fail(
                ServiceError(
                    RequestCode.CLI_USAGE,
                    f"--period et --out ne s'appliquent pas à {ctx.invoked_subcommand}",
                )
            )
        return
    if period is None:
        raise fail(
            ServiceError(
                RequestCode.CLI_USAGE,
                "bill demande --period AAAA-MM (ou une sous-commande : returns)",
            )
        )
    with platform_ctx() as platform, _progress() as progress, _in_french(_bill_refusal(period)):
        task = progress.add_task("Organismes facturés", total=None)
        summary = billing.run_billing(
            platform,
            period,
            out_dir=out,
            actor=CLI_ACTOR,
            progress=lambda _point, n: progress.update(task, completed=n),
        )
    console.print(
        f"{summary.run_key}: {summary.insurers} assureurs, appels de fonds "
        f"{amount(max(summary.due_cents, 0))} EUR au {summary.collection_date.isoformat()} "
        f"-> {escape(str(summary.out_dir))}"
    )
    if summary.without_mandate:
        err_console.print("sans mandat de prélèvement: " + ", ".join(summary.without_mandate))


# What the operator reads for each problem of a bank file (the service's message, in
# English, goes to the audit and the logs).
RETURN_PROBLEMS_FR = {
    "returns.unknown": "aucun appel de fonds ne porte cette référence",
    "returns.no_fund_call": "rien n'a été appelé pour cette période",
    "returns.amount_mismatch": "le montant rejeté diffère de l'appel de fonds",
    "returns.unknown_transfer": "aucun virement à un professionnel ne porte cette référence",
    "returns.transfer_amount": "le montant retourné diffère du virement",
    "returns.split_payment": "ce paiement a été envoyé en plusieurs virements, chacun retourné "
    "sous sa propre référence",
}


@bill_app.command("returns")
def returns(
    report: Annotated[
        Path,
        typer.Argument(
            help="Le compte rendu pain.002.001.03 ou l'avis camt.054 de la banque",
            dir_okay=False,
        ),
    ],
) -> None:
    """Enregistrer les appels de fonds et les virements aux professionnels qu'un fichier
    bancaire retourne (tout ou rien, rejouable) : rejets pain.002 ou retours camt.054."""
    try:
        data = report.read_bytes()
    except OSError as exc:
        raise fail(
            ServiceError(RequestCode.CLI_FILE, f"lecture impossible de {report} : {exc.strerror}")
        ) from None
    with platform_ctx() as platform:
        summary = billing.record_returns(platform, data, actor=CLI_ACTOR, source=report.name)
    for problem in summary.errors:
        err_console.print(
            f"[red]erreur[/red] {escape(f'[{problem.code}] {problem.end_to_end_id}: ')}"
            f"{escape(RETURN_PROBLEMS_FR.get(problem.code, problem.message))}"
        )
        if problem.detail:
            err_console.print(f"  {escape(problem.detail)}")
    if summary.errors:
        err_console.print(f"rapport {escape(summary.report_id)}: rien n'a été enregistré")
        raise typer.Exit(1)
    for call in summary.recorded:
        console.print(
            f"rejet enregistré: {call.amc_number} {call.period} {amount(call.cents)} EUR "
            f"motif {escape(call.reason_code)}"
        )
    for call in summary.already:
        console.print(
            f"déjà enregistré: {call.amc_number} {call.period} motif {escape(call.reason_code)}"
        )
    for transfer in summary.transfers:
        console.print(
            f"virement retourné enregistré: {escape(transfer.end_to_end_id)} "
            f"{amount(transfer.cents)} EUR motif {escape(transfer.reason_code)}"
        )
    for transfer in summary.transfers_already:
        console.print(
            f"déjà enregistré: {escape(transfer.end_to_end_id)} "
            f"motif {escape(transfer.reason_code)}"
        )
    if summary.transfers:
        console.print(
            f"{len(summary.transfers)} virements retournés: les professionnels concernés "
            "seront payés après le changement de leurs coordonnées bancaires"
        )
    if not summary.recorded and not summary.transfers:
        console.print(f"rapport {escape(summary.report_id)}: aucun nouveau rejet, rien à faire")
    else:
        console.print(f"rapport {escape(summary.report_id)}: {len(summary.recorded)} rejets")


@fees_app.command("set")
def set_fee(
    amc: Annotated[str, typer.Option(help="Numéro AMC de l'organisme")],
    per_line_cents: Annotated[
        int | None, typer.Option(help="Frais par ligne payée, en centimes hors taxes")
    ] = None,
    platform_default: Annotated[
        bool,
        typer.Option("--platform-default", help="Revenir au tarif par défaut de la plateforme"),
    ] = False,
) -> None:
    """Fixer les frais de gestion par ligne payée d'un organisme, dès la prochaine facturation."""
    if (per_line_cents is None) == (not platform_default):
        raise fail(
            ServiceError(
                RequestCode.CLI_USAGE, "indiquez soit --per-line-cents N, soit --platform-default"
            )
        )
    with platform_ctx() as platform:
        rate = billing.set_insurer_fee(platform, amc, per_line_cents, actor=CLI_ACTOR)
    console.print(f"frais de gestion de {escape(amc)}: {amount(rate)} EUR HT par ligne payée")


@ledger_app.command("check")
def check() -> None:
    """Prouver que le grand livre est équilibré et rapproché des factures, avis de paiement et
    relevés."""
    with platform_ctx() as platform:
        report = ledger_check.check_ledger(platform)
    console.print(
        f"{report.postings} écritures, {report.entries} lignes, "
        f"{amount(report.total_cents)} EUR mouvementés"
    )
    if report.ok:
        console.print("grand livre équilibré et rapproché au centime")
        return
    for problem in report.problems:
        err_console.print(f"[red]erreur[/red] {escape('[ledger.unbalanced]')} {escape(problem)}")
    for difference in report.differences:
        err_console.print(
            f"[red]erreur[/red] {escape('[ledger.reconciliation]')} {escape(str(difference))}"
        )
    raise typer.Exit(1)


@overpayments_app.command("flag")
def flag(
    amc: Annotated[str, typer.Option(help="Numéro AMC de l'organisme")],
    claim: Annotated[int, typer.Option(help="Numéro de la facture")],
    line: Annotated[int, typer.Option(help="Numéro de la ligne")],
    reason: Annotated[str, typer.Option(help="Code du motif, par exemple rights.ended")],
) -> None:
    """Déclarer une ligne payée indue : contre-passée aussitôt, récupérée sur les prochains
    paiements du professionnel."""
    with platform_ctx() as platform:
        flagged = overpayments.flag_undue_as_operator(platform, amc, claim, line, reason, CLI_ACTOR)
    state = "enregistré" if flagged.created else "déjà enregistré"
    console.print(
        f"indu {state}: demande {flagged.claim_id} ligne {flagged.line_no}, "
        f"{amount(flagged.cents)} EUR à récupérer"
    )


@mandates_app.command("set")
def set_mandate(
    amc: Annotated[str, typer.Option(help="Numéro AMC de l'organisme")],
    iban: Annotated[str, typer.Option(help="IBAN de l'organisme (conservé chiffré)")],
    mandate: Annotated[str, typer.Option(help="Référence unique du mandat (RUM)")],
    signed: Annotated[str, typer.Option(help="Date de signature, AAAA-MM-JJ")],
    bic: Annotated[str | None, typer.Option(help="BIC de l'organisme")] = None,
) -> None:
    """Enregistrer le mandat SEPA B2B sous lequel les appels de fonds sont prélevés."""
    with platform_ctx() as platform:
        billing.set_mandate(
            platform,
            amc,
            iban=iban,
            bic=bic,
            mandate_id=mandate,
            signed_on=_day(signed, "--signed"),
            actor=CLI_ACTOR,
        )
    console.print(f"mandat {escape(mandate)} enregistré pour {escape(amc)}")


def _staff(name: str) -> Principal:
    """The operator staff member acting at this console, as named with ``--by``."""
    return Principal(
        id=f"operator:{name.strip()[:60]}",
        kind=PrincipalKind.OPERATOR_STAFF,
        strength=AuthStrength.AAL2,
    )


_BY = typer.Option(
    "--by", help="Votre identifiant d'opérateur (le vérificateur n'est pas le demandeur)"
)


@bank_app.command("request")
def bank_request(
    am: Annotated[str, typer.Option(help="Numéro AM du professionnel")],
    iban: Annotated[str, typer.Option(help="Le nouvel IBAN (conservé chiffré)")],
    by: Annotated[str, _BY],
    bic: Annotated[str | None, typer.Option(help="Le nouveau BIC")] = None,
) -> None:
    """Enregistrer la demande de nouvelles coordonnées bancaires d'un professionnel (rien n'y est
    encore payé)."""
    with platform_ctx() as platform:
        change = bank_details.request_change(platform, _staff(by), iban, bic, am_number=am)
    console.print(
        f"changement {change.id} demandé pour {escape(am)} (IBAN …{escape(change.iban_tail)}): "
        "à vérifier par une autre personne"
    )


@bank_app.command("verify")
def bank_verify(
    change: Annotated[int, typer.Option(help="Numéro du changement")],
    method: Annotated[
        str, typer.Option(help="second_person (justificatif bancaire contrôlé) ou provider_contact")
    ],
    by: Annotated[str, _BY],
) -> None:
    """Vérifier un changement en attente ; il s'applique après le délai de sécurité."""
    with platform_ctx() as platform:
        verified = bank_details.verify_change(platform, _staff(by), change, method)
    assert verified.effective_on is not None
    console.print(
        f"changement {verified.id} vérifié: premiers virements à partir du "
        f"{verified.effective_on.isoformat()}"
    )


@bank_app.command("refuse")
def bank_refuse(
    change: Annotated[int, typer.Option(help="Numéro du changement")],
    by: Annotated[str, _BY],
) -> None:
    """Refuser un changement : rien n'y sera jamais payé."""
    with platform_ctx() as platform:
        refused = bank_details.refuse_change(platform, _staff(by), change)
    console.print(f"changement {refused.id} refusé")


@bank_app.command("pending")
def bank_pending(by: Annotated[str, _BY]) -> None:
    """Lister les changements qui attendent une vérification."""
    with platform_ctx() as platform:
        changes = bank_details.pending_changes(platform, _staff(by))
    for item in changes:
        console.print(
            f"{item.id}: prestataire {item.provider_id} IBAN …{escape(item.iban_tail)} "
            f"demandé par {escape(item.requested_by)} le {item.requested_at:%Y-%m-%d %H:%M}"
        )
    if not changes:
        console.print("aucun changement en attente")


def register(app: typer.Typer, import_app: typer.Typer) -> None:
    """Add this module's commands to the ``tierspayant`` application."""
    app.command("pay")(pay)
    app.add_typer(bank_app, name="bank")
    app.add_typer(bill_app, name="bill")
    app.add_typer(ledger_app, name="ledger")
    app.add_typer(overpayments_app, name="overpayments")
    app.add_typer(mandates_app, name="mandates")
    app.add_typer(fees_app, name="fees")
