"""The restore drill: prove that a backup and the key export restore together.

Restores the newest pgBackRest backup into a scratch cluster (to a point in time, or to
the end of the WAL archive), installs the keys from a sealed key export beside it, opens
the platform on the restored database with those keys only, and runs the checks an
operator would run after a real restore:

- the audit chain (``audit verify``);
- the audit log against the signed checkpoints exported before the target
  (``audit verify-checkpoints``);
- the ledger and its reconciliations (``ledger check``);
- sample rights checks through the real service (blind index, decryption, coverage),
  each compared with the answer expected, which proves the data keys unwrap with the
  restored KEKs.

It measures the restore time (file copy, then WAL replay up to the promotion) and the
data-loss window: the time between the last transaction recovered and the reference
moment (the recovery target, or the incident for a restore to the end of the archive).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from tierspayant.app.platform import Platform, open_platform
from tierspayant.config import load_settings
from tierspayant.domain.care import CareDomain
from tierspayant.domain.codes import PlatformCode
from tierspayant.domain.errors import DomainError
from tierspayant.security.principal import AuthStrength, Principal, PrincipalKind
from tierspayant.services import audit_log, checkpoints, key_backup, ledger_check, providers
from tierspayant.services.backup_restore import (
    BackupInfo,
    BackupRepository,
    DrillFailed,
    backup_info,
    restore,
    stop,
    wait_promoted,
)
from tierspayant.services.eligibility import RightsCheck, check_rights
from tierspayant.services.errors import Conflict, NotFound
from tierspayant.services.identification import CardData

DRILL_CLIENT = "backup-drill"
_MAX_SAMPLES = 100


@dataclass(frozen=True, slots=True)
class Sample:
    """One rights check to replay on the restored data, with its expected answer."""

    provider: str  # billing number (numéro AM) of a provider under convention
    card: CardData
    domain: CareDomain
    covered: bool


@dataclass(frozen=True, slots=True)
class DrillPlan:
    repository: BackupRepository
    scratch_dir: Path  # a new or empty directory; everything restored goes under it
    port: int
    database: str  # the platform's database in the cluster
    key_export: Path
    passphrase: str = field(repr=False)
    target: datetime | None = None  # None: to the end of the WAL archive
    incident_at: datetime | None = None  # reference of the data loss without a target
    checkpoints_dir: Path | None = None
    samples: tuple[Sample, ...] = ()
    user: str = "postgres"
    keep: bool = False  # leave the restored cluster running and its files in place
    timeout_seconds: float = 600


@dataclass(frozen=True, slots=True)
class Check:
    name: str  # audit_chain, checkpoints, ledger, rights_samples
    ok: bool
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DrillReport:
    target: datetime | None
    reference: datetime
    restore_seconds: float
    recovery_seconds: float
    last_replayed_at: datetime | None
    database_bytes: int
    backup: BackupInfo
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def total_seconds(self) -> float:
        return self.restore_seconds + self.recovery_seconds

    @property
    def data_loss_seconds(self) -> float | None:
        """Reference moment minus the last transaction recovered (None if none was)."""
        if self.last_replayed_at is None:
            return None
        return max(0.0, (self.reference - self.last_replayed_at).total_seconds())


def parse_samples(raw: str) -> tuple[Sample, ...]:
    """The samples of a JSON file: ``[{"provider", "amc_number", "nir", "birth_date",
    "birth_rank", "domain", "covered"}]`` (``backup.samples`` when malformed)."""
    try:
        entries = json.loads(raw)
        if not isinstance(entries, list) or len(entries) > _MAX_SAMPLES:
            raise TypeError("a list of at most 100 samples")
        return tuple(
            Sample(
                provider=str(entry["provider"]),
                card=CardData(
                    str(entry["amc_number"]),
                    date.fromisoformat(str(entry["birth_date"])),
                    str(entry["nir"]),
                    int(entry["birth_rank"]),
                ),
                domain=CareDomain(str(entry.get("domain", "PHAR"))),
                covered=_boolean(entry["covered"]),
            )
            for entry in entries
        )
    except (json.JSONDecodeError, TypeError, KeyError, ValueError) as exc:
        raise DrillFailed(
            PlatformCode.BACKUP_SAMPLES, f"the samples file is not a list of rights checks: {exc}"
        ) from None


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError("covered must be true or false")
    return value


def database_url(plan: DrillPlan) -> str:
    return f"postgresql+psycopg://{plan.user}@127.0.0.1:{plan.port}/{plan.database}"


def run_drill(plan: DrillPlan, *, clock: Callable[[], datetime] | None = None) -> DrillReport:
    """Restore, check, measure; stop the scratch cluster and remove its files unless
    ``plan.keep`` (also when a step fails)."""
    now = clock or (lambda: datetime.now(UTC))
    reference = plan.target or plan.incident_at or now()
    if plan.scratch_dir.exists() and any(plan.scratch_dir.iterdir()):
        # Never a directory in use: the drill deletes what it restored there at the end.
        raise Conflict(
            PlatformCode.BACKUP_EXISTS,
            f"{plan.scratch_dir} is not empty: the drill restores into a new directory",
        )
    info = backup_info(plan.repository)
    cluster_dir = plan.scratch_dir / "pgdata"
    try:
        # The keys first: a wrong passphrase fails the drill before hours of restore.
        keyring = plan.scratch_dir / "keys" / "keyring.json"
        keys = key_backup.import_keys(plan.key_export, plan.passphrase, keyring)
        cluster = restore(
            plan.repository, plan.scratch_dir, plan.port, plan.target, timeout=plan.timeout_seconds
        )
        started = time.monotonic()
        state = wait_promoted(database_url(plan), timeout=plan.timeout_seconds)
        recovery_seconds = time.monotonic() - started
        checks = _checks(plan, keys)
    finally:
        if not plan.keep:
            stop(plan.repository, cluster_dir)
            for name in ("pgdata", "run", "keys", "data"):
                shutil.rmtree(plan.scratch_dir / name, ignore_errors=True)
    return DrillReport(
        target=plan.target,
        reference=reference,
        restore_seconds=cluster.restore_seconds,
        recovery_seconds=recovery_seconds,
        last_replayed_at=state.last_replayed_at,
        database_bytes=state.database_bytes,
        backup=info,
        checks=checks,
    )


def _checks(plan: DrillPlan, imported: key_backup.ImportSummary) -> tuple[Check, ...]:
    """Open the restored platform with the imported keys only, run the checks."""
    # Only these three settings: the drill must not reach the production Redis (the
    # guard's counters) or any other service of the configured platform.
    settings = load_settings(
        {
            "TIERSPAYANT_DATA_DIR": str(plan.scratch_dir / "data"),
            "TIERSPAYANT_DATABASE_URL": database_url(plan),
            "TIERSPAYANT_KEYRING": str(imported.keyring_path),
        }
    )
    platform = open_platform(settings)
    try:
        found: list[Check] = []
        chain = audit_log.verify(platform)
        found.append(
            Check(
                "audit_chain",
                chain.ok,
                {"events": chain.checked, "first_broken": chain.first_broken_seq},
            )
        )
        if plan.checkpoints_dir is not None:
            if imported.checkpoint_key_path is None:
                found.append(Check("checkpoints", False, {"reason": "no checkpoint key exported"}))
            else:
                verified = checkpoints.verify(
                    platform, plan.checkpoints_dir, signed_until=plan.target
                )
                found.append(
                    Check(
                        "checkpoints",
                        verified.ok,
                        {
                            "checkpoints": verified.checkpoints,
                            "latest_seq": verified.latest_checkpoint_seq,
                            "reason": verified.reason,
                        },
                    )
                )
        ledger = ledger_check.check_ledger(platform)
        found.append(
            Check(
                "ledger",
                ledger.ok,
                {
                    "postings": ledger.postings,
                    "problems": len(ledger.problems) + len(ledger.differences),
                },
            )
        )
        if plan.samples:
            found.append(_rights_samples(platform, plan.samples))
        return tuple(found)
    finally:
        platform.close()


def _rights_samples(platform: Platform, samples: tuple[Sample, ...]) -> Check:
    """Replay each sample as its provider's software would (audited in the scratch copy);
    only positions are reported, never who was checked."""
    mismatched: list[int] = []
    for index, sample in enumerate(samples, start=1):
        try:
            provider = providers.get_provider(platform, sample.provider)
        except NotFound:
            mismatched.append(index)
            continue
        principal = Principal(
            id=providers.client_principal_id(provider.am_number, DRILL_CLIENT),
            kind=PrincipalKind.PROVIDER_CLIENT,
            strength=AuthStrength.AAL2,
            provider_id=provider.id,
            provider_am_number=provider.am_number,
            structure=provider.structure,
            provider_category=provider.category.value,
        )
        try:
            answer = check_rights(
                platform, principal, RightsCheck(sample.card, platform.today(), (sample.domain,))
            )
            covered = any(right.covered for right in answer.rights)
        except DomainError:
            covered = False
        if covered != sample.covered:
            mismatched.append(index)
    return Check(
        "rights_samples",
        not mismatched,
        {"samples": len(samples), "mismatched": mismatched},
    )
