"""Incident response and operations commands: incident, revoke, keys, purge, breakglass,
and the audit checkpoints (added to the ``audit`` group)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress
from rich.table import Table

from tierspayant.cli.common import CLI_ACTOR, console, err_console, fail, platform_ctx
from tierspayant.domain.codes import IncidentCode
from tierspayant.services import breakglass, checkpoints, incident, key_rotation, retention
from tierspayant.services.errors import ServiceError

incident_app = typer.Typer(no_args_is_help=True, help="Scope a breach and draft its notices.")
keys_app = typer.Typer(no_args_is_help=True, help="Rotate key-encryption and data keys.")
breakglass_app = typer.Typer(no_args_is_help=True, help="Operator access to personal data.")

OperatorOption = Annotated[
    str, typer.Option("--as", help="Operator acting, as operator:NAME (audited)")
]


def register(app: typer.Typer, import_app: typer.Typer) -> None:
    """Add this module's commands to the ``tierspayant`` application."""
    app.add_typer(incident_app, name="incident")
    app.add_typer(keys_app, name="keys")
    app.add_typer(breakglass_app, name="breakglass")
    app.command("revoke")(revoke)
    app.command("purge")(purge)
    audit_app = next((g.typer_instance for g in app.registered_groups if g.name == "audit"), None)
    target = audit_app if audit_app is not None else app
    target.command("checkpoint")(audit_checkpoint)
    target.command("verify-checkpoints")(audit_verify_checkpoints)
    target.command("public-key")(audit_public_key)


def _moment(text: str, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise fail(
            ServiceError(IncidentCode.WINDOW, f"{option} must be an ISO date or date-time")
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --- incident ----------------------------------------------------------------------------


@incident_app.command("scope")
def incident_scope(
    start: Annotated[str, typer.Option("--from", help="Start, ISO 8601 (UTC if no offset)")],
    end: Annotated[str, typer.Option("--to", help="End (excluded), ISO 8601")],
    principal: Annotated[str | None, typer.Option(help="Principal id (account)")] = None,
    structure: Annotated[str | None, typer.Option(help="FINESS/SIRET/AM of a structure")] = None,
    out: Annotated[Path | None, typer.Option(help="Write .json or .csv here")] = None,
    reveal: Annotated[
        bool, typer.Option(help="Decrypt names (needs an approved bulk/export grant)")
    ] = False,
    grant: Annotated[int | None, typer.Option(help="Break-glass grant id for --reveal")] = None,
    show_nir: Annotated[bool, typer.Option(help="With --reveal: NIR in clear")] = False,
    actor: Annotated[str, typer.Option("--as", help="Responder, operator:NAME")] = CLI_ACTOR,
) -> None:
    """List exactly which beneficiaries were read, per insurer, from the audit log."""
    if reveal and grant is None:
        raise fail(
            ServiceError(
                IncidentCode.BREAKGLASS_NO_GRANT, "--reveal needs --grant (an approved grant)"
            )
        )
    with platform_ctx() as platform:
        criteria = incident.ScopeCriteria(
            _moment(start, "--from"), _moment(end, "--to"), principal, structure
        )
        opened = incident.Reveal(grant, show_nir) if reveal and grant is not None else None
        result = incident.scope_incident(platform, criteria, actor, opened)
    table = Table("insurer", "people", "reads", "no longer held")
    for scope in result.insurers:
        table.add_row(scope.amc_number, str(scope.people), str(scope.reads), str(scope.unresolved))
    console.print(table)
    console.print(
        f"{result.people} people disclosed, {result.events_scanned} events examined "
        f"in {result.seconds:.2f} s"
    )
    if out is not None:
        incident.write_scope(result, out)
        console.print(f"written to {out} (mode 0600)")


@incident_app.command("notices")
def incident_notices(
    scope: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="Scope .json file")],
    out: Annotated[Path, typer.Option(help="Directory for the drafts")],
    dpo: Annotated[str | None, typer.Option(help="DPO name and contact details")] = None,
) -> None:
    """Draft the CNIL notification (art. 33) and one letter per person (art. 34), in French."""
    with platform_ctx():
        document = incident.load_scope_document(scope)
        context = incident.NoticeContext(dpo_contact=dpo) if dpo else incident.NoticeContext()
        files = incident.draft_notices(document, out, context)
    console.print(f"{len(files.cnil)} CNIL notification draft(s), {len(files.letters)} letters")


def revoke(
    principal: Annotated[str, typer.Option(help="Principal id to cut off")],
    reason: Annotated[str, typer.Option(help="Why (kept with the suspension)")] = (
        "incident response"
    ),
) -> None:
    """Suspend a principal, revoke all its tokens and end all its sessions at once."""
    with platform_ctx() as platform:
        done = incident.revoke(platform, principal, CLI_ACTOR, reason)
    console.print(
        f"{done.principal} suspended: {done.tokens} token(s) revoked, "
        f"{done.sessions} session(s) ended"
    )


# --- keys --------------------------------------------------------------------------------


@keys_app.command("rotate-kek")
def keys_rotate_kek() -> None:
    """New key-encryption key; every data key rewrapped; old KEKs kept until retired."""
    with platform_ctx() as platform:
        done = key_rotation.rotate_kek(platform, CLI_ACTOR)
    console.print(f"active KEK {done.new_kek}; {done.rewrapped} data key(s) rewrapped")


@keys_app.command("retire-kek")
def keys_retire_kek() -> None:
    """Remove the KEKs that no data key uses any more."""
    with platform_ctx() as platform:
        retired = key_rotation.retire_unused_keks(platform, CLI_ACTOR)
    console.print(f"retired: {', '.join(retired) if retired else 'none'}")


@keys_app.command("rotate-data")
def keys_rotate_data(
    insurer: Annotated[str, typer.Option("--insurer", help="AMC number")],
    batch: Annotated[int, typer.Option(min=10, max=50_000, help="Rows per transaction")] = (
        key_rotation.BATCH_ROWS
    ),
) -> None:
    """New data-key version for an insurer; rows re-encrypted in batches while serving."""
    with platform_ctx() as platform, Progress(console=console) as bar:
        task = bar.add_task("re-encrypting", total=None)
        done = key_rotation.rotate_data(
            platform, insurer, CLI_ACTOR, batch=batch, progress=lambda n: bar.advance(task, n)
        )
    console.print(
        f"{done.insurer}: version {done.new_version}, {done.reencrypted} rows re-encrypted "
        f"in {done.seconds:.1f} s, {done.remaining} left"
    )


# --- retention ---------------------------------------------------------------------------


def purge(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count only")] = False,
    retention_days: Annotated[
        int,
        typer.Option(envvar="TIERSPAYANT_RETENTION_DAYS", help="Days kept after coverage end"),
    ] = retention.DEFAULT_RETENTION_DAYS,
) -> None:
    """Delete former beneficiaries past retention (kept while a claim is unfinished)."""
    with platform_ctx() as platform:
        report = retention.purge(
            platform, CLI_ACTOR, retention_days=retention_days, dry_run=dry_run
        )
    table = Table("insurer", "past retention", "held by claims", "purged")
    for row in report.insurers:
        table.add_row(row.amc_number, str(row.expired), str(row.held), str(row.purged))
    console.print(table)
    verb = "would purge" if dry_run else "purged"
    console.print(f"coverage ended before {report.cutoff:%Y-%m-%d}: {verb} {report.purged}")


# --- break-glass -------------------------------------------------------------------------


@breakglass_app.command("request")
def breakglass_request(
    actor: OperatorOption,
    reason: Annotated[str, typer.Option(help="Ticket, case or request that justifies it")],
    scope: Annotated[breakglass.GrantScope, typer.Option(help="beneficiary | bulk | export")],
    hours: Annotated[int, typer.Option(help="Time limit in hours")] = 4,
    insurer: Annotated[str | None, typer.Option(help="AMC number")] = None,
    beneficiary: Annotated[int | None, typer.Option(help="Internal beneficiary id")] = None,
) -> None:
    """Ask for access; bulk and export wait for a second operator's approval."""
    with platform_ctx() as platform:
        grant = breakglass.request_grant(
            platform,
            actor,
            reason,
            scope,
            hours,
            insurer_amc=insurer,
            beneficiary_id=beneficiary,
        )
    console.print(f"grant {grant.id}: {grant.status}, until {grant.expires_at:%Y-%m-%d %H:%M}Z")
    console.print(f"DPO notice: {grant.dpo_notice}")


@breakglass_app.command("approve")
def breakglass_approve(
    grant_id: Annotated[int, typer.Argument(help="Grant id")],
    actor: OperatorOption,
) -> None:
    """Approve a bulk or export grant (a different operator than the requester)."""
    with platform_ctx() as platform:
        grant = breakglass.approve_grant(platform, grant_id, actor)
    console.print(f"grant {grant.id} active until {grant.expires_at:%Y-%m-%d %H:%M}Z")


@breakglass_app.command("close")
def breakglass_close(
    grant_id: Annotated[int, typer.Argument(help="Grant id")],
    actor: OperatorOption,
) -> None:
    """End a grant before its time limit."""
    with platform_ctx() as platform:
        grant = breakglass.close_grant(platform, grant_id, actor)
    console.print(f"grant {grant.id} {grant.status}")


@breakglass_app.command("reveal")
def breakglass_reveal(
    grant_id: Annotated[int, typer.Argument(help="Numéro de l'accès (portée : un bénéficiaire)")],
    actor: OperatorOption,
) -> None:
    """Ouvrir l'identité du bénéficiaire qu'un accès d'urgence désigne (NIR masqué ;
    lecture tracée au journal d'audit)."""
    with platform_ctx() as platform:
        identity = breakglass.reveal_beneficiary(platform, grant_id, actor)
    console.print(f"{identity.last_name} {identity.first_name} — NIR {identity.nir}")


@breakglass_app.command("list")
def breakglass_list(
    usable: Annotated[bool, typer.Option(help="Only grants usable now")] = False,
) -> None:
    """List break-glass grants, newest first."""
    with platform_ctx() as platform:
        grants = breakglass.list_grants(platform, usable_only=usable)
    table = Table("id", "requester", "scope", "status", "expires", "approver", "reason")
    for g in grants:
        table.add_row(
            str(g.id),
            g.requester,
            g.scope.value,
            g.status,
            f"{g.expires_at:%Y-%m-%d %H:%M}",
            g.approver or "",
            g.reason[:60],
        )
    console.print(table)


# --- audit checkpoints -------------------------------------------------------------------


def audit_checkpoint(
    out: Annotated[Path, typer.Option(help="Append-only directory of checkpoint files")],
) -> None:
    """Verify the log, sign its Merkle root, write the checkpoint outside the database."""
    with platform_ctx() as platform:
        written = checkpoints.write_checkpoint(platform, out)
    if written is None:
        console.print("no new event since the last checkpoint")
        return
    console.print(f"checkpoint up to event {written.checkpoint.up_to_seq}: {written.path}")


def audit_verify_checkpoints(
    directory: Annotated[Path, typer.Option("--checkpoints", help="Checkpoint directory")],
    public_key: Annotated[
        Path | None, typer.Option(help="Published verification key (default: this install's)")
    ] = None,
) -> None:
    """Verify the chain against every signed checkpoint; name what was altered."""
    with platform_ctx() as platform:
        report = checkpoints.verify(platform, directory, public_key)
    if report.ok:
        console.print(
            f"audit log intact: {report.checked} events, agrees with {report.checkpoints} "
            f"checkpoint(s) (latest up to {report.latest_checkpoint_seq})"
        )
        return
    where = f"position {report.first_broken_seq}"
    if report.window is not None:
        where = f"events {report.window[0]}..{report.window[1]} rewritten"
    err_console.print(f"[red]audit log altered[/red]: {report.reason} at {where}")
    for name in report.bad_files:
        err_console.print(f"  bad signature: {name}")
    raise typer.Exit(1)


def audit_public_key(
    out: Annotated[Path, typer.Option(help="Where to write the verification key (hex)")],
) -> None:
    """Export the checkpoint verification key for auditors."""
    with platform_ctx() as platform:
        fingerprint = checkpoints.export_public_key(platform, out)
    console.print(f"verification key {fingerprint} written to {out}")
