"""Time to scope an incident: who was read by one principal, in a log of N events.

Run: ``.venv/bin/python bench/bench_incident.py [--events 100000] [--beneficiaries 200000]
[--attacker-share 0.2] [--engine sqlite|postgres|both]``.

Builds a fresh database per engine: one insurer with ``--beneficiaries`` rows (random
bytes in place of ciphertexts: scoping never decrypts), then an audit log of ``--events``
rights checks, a share of them by one attacking principal (hits and misses), the rest by
honest pharmacies. The events are real chained events (same hashes, same pseudonyms as the
rights check); they are bulk-inserted to save time, which does not change what scoping
reads. Measured: :func:`tierspayant.services.incident.scope_incident` for the attacker,
then for its structure, end to end (query, pseudonym resolution, audit, commit).

Also measured: signing a checkpoint of the whole log (which verifies the chain first) and
verifying the log against it. Prints one JSON line per (engine, measure).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from tierspayant.app.platform import Platform, initialise
from tierspayant.config import load_settings
from tierspayant.security.audit import AuditEvent, next_event, subject_pseudonym
from tierspayant.services import checkpoints, incident
from tierspayant.store import audit
from tierspayant.store.keys import insurer_scope
from tierspayant.store.tables import audit_events, beneficiaries, insurers

POSTGRES_SERVER = os.environ.get(
    "TIERSPAYANT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/"
)
AMC = "77665544"
ATTACKER = "provider:751234567/client:phished"
ATTACKER_STRUCTURE = "750000001"
T0 = datetime(2025, 2, 1, 8, 0, tzinfo=UTC)
CHUNK = 5000
INCREMENT = 1000


def fresh_database(engine_name: str, workdir: Path) -> tuple[str, Path]:
    data_dir = workdir / f"data-{uuid.uuid4().hex[:8]}"
    data_dir.mkdir()
    if engine_name == "sqlite":
        return f"sqlite:///{data_dir / 'tierspayant.sqlite3'}", data_dir
    name = f"bench_incident_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_SERVER.rstrip("/") + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return POSTGRES_SERVER.rstrip("/") + f"/{name}", data_dir


def drop_database(url: str) -> None:
    if not url.startswith("postgresql"):
        return
    name = url.rsplit("/", 1)[1]
    admin = create_engine(POSTGRES_SERVER.rstrip("/") + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def seed_beneficiaries(platform: Platform, count: int, rng: random.Random) -> int:
    now = platform.now()
    with platform.engine.begin() as conn:
        insurer_id = int(
            conn.execute(
                insurers.insert()
                .values(amc_number=AMC, name="Mutuelle du banc", kind="mutuelle", created_at=now)
                .returning(insurers.c.id)
            ).scalar_one()
        )
        platform.keys.create(conn, insurer_scope(AMC), now)
        for start in range(1, count + 1, CHUNK):
            conn.execute(
                beneficiaries.insert(),
                [
                    _row(insurer_id, i, rng, now)
                    for i in range(start, min(start + CHUNK, count + 1))
                ],
            )
    return insurer_id


def _row(insurer_id: int, beneficiary_id: int, rng: random.Random, now: datetime) -> dict[str, Any]:
    blob = rng.randbytes(48)
    return {
        "insurer_id": insurer_id,
        "id": beneficiary_id,
        "idx_nir": rng.randbytes(16),
        "idx_member": rng.randbytes(16),
        "idx_family": rng.randbytes(16),
        "key_version": 1,
        "nir_ct": blob,
        "member_number_ct": blob,
        "birth_date_ct": blob,
        "last_name_ct": blob,
        "first_name_ct": blob,
        "birth_rank": 1,
        "sex": "F",
        "quality": "member",
        "birth_year": 1970,
        "contract_code": "ESSENTIEL",
        "coverage_start": date(2024, 1, 1),
        "coverage_end": None,
        "css": False,
        "is_canary": False,
        "row_digest": bytes(16),
        "updated_at": now,
    }


def _values(event: AuditEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "at": event.at,
        "actor": event.actor,
        "structure": event.structure,
        "action": event.action,
        "purpose": event.purpose,
        "subject": event.subject,
        "insurer": event.insurer,
        "decision": event.decision,
        "detail": json.dumps(dict(event.detail), sort_keys=True, separators=(",", ":")),
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


def seed_log(
    platform: Platform, events: int, people: int, share: float, rng: random.Random
) -> set[int]:
    """Append ``events`` rights checks; return the ids the attacker was answered about."""
    key = platform.operator_keys().derive(incident.PSEUDONYM_PURPOSE)
    disclosed: set[int] = set()
    with platform.engine.begin() as conn:
        previous: AuditEvent | None = None
        batch: list[dict[str, Any]] = []
        for n in range(events):
            attacker = rng.random() < share
            beneficiary = rng.randint(1, people)
            hit = rng.random() < (0.7 if attacker else 0.98)
            previous = next_event(
                previous,
                at=T0 + timedelta(milliseconds=300 * n),
                actor=ATTACKER if attacker else f"provider:{rng.randint(1, 500)}/client:x",
                structure=ATTACKER_STRUCTURE if attacker else f"69{rng.randint(1, 500):07d}",
                action="eligibility.check",
                purpose="rights_check",
                subject=subject_pseudonym(key, AMC, str(beneficiary)) if hit else None,
                insurer=AMC,
                decision="hit" if hit else "miss",
                detail={"care_date": "2025-02-01", "domains": "PHAR", "by": "nir", "proof": False},
            )
            if attacker and hit:
                disclosed.add(beneficiary)
            batch.append(_values(previous))
            if len(batch) == CHUNK:
                conn.execute(audit_events.insert(), batch)
                batch = []
        if batch:
            conn.execute(audit_events.insert(), batch)
    return disclosed


def _checkpoint_figures(
    platform: Platform, engine_name: str, events: int, data_dir: Path
) -> dict[str, Any]:
    """Time to sign a first checkpoint (whole log checked), a second one after a few more
    events (incremental), then to verify the whole log against them."""
    out = data_dir / "checkpoints"
    started = time.perf_counter()
    written = checkpoints.write_checkpoint(platform, out)
    signed = time.perf_counter() - started
    with platform.engine.begin() as conn:
        for _ in range(INCREMENT):
            audit.append(conn, at=T0, actor="bench", action="bench.event", decision="allow")
    started = time.perf_counter()
    checkpoints.write_checkpoint(platform, out)
    incremental = time.perf_counter() - started
    started = time.perf_counter()
    report = checkpoints.verify(platform, out)
    verified = time.perf_counter() - started
    return {
        "bench": "audit_checkpoint",
        "engine": engine_name,
        "log_events": events,
        "up_to_seq": written.checkpoint.up_to_seq if written else None,
        "ok": report.ok,
        "sign_seconds": round(signed, 3),
        f"sign_after_{INCREMENT}_more_seconds": round(incremental, 3),
        "verify_seconds": round(verified, 3),
    }


def run(engine_name: str, args: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    url, data_dir = fresh_database(engine_name, workdir)
    settings = load_settings(
        {"TIERSPAYANT_DATA_DIR": str(data_dir), "TIERSPAYANT_DATABASE_URL": url}
    )
    platform = initialise(settings)
    try:
        rng = random.Random(2024)
        seed_beneficiaries(platform, args.beneficiaries, rng)
        disclosed = seed_log(platform, args.events, args.beneficiaries, args.attacker_share, rng)
        window = (T0, T0 + timedelta(days=30))
        results = []
        for label, criteria in (
            ("principal", incident.ScopeCriteria(*window, principal=ATTACKER)),
            ("structure", incident.ScopeCriteria(*window, structure=ATTACKER_STRUCTURE)),
        ):
            started = time.perf_counter()
            result = incident.scope_incident(platform, criteria, "operator:bench")
            seconds = time.perf_counter() - started
            found = {r.beneficiary_id for s in result.insurers for r in s.records}
            results.append(
                {
                    "bench": "incident_scope",
                    "engine": engine_name,
                    "by": label,
                    "log_events": args.events,
                    "beneficiaries": args.beneficiaries,
                    "events_examined": result.events_scanned,
                    "people": result.people,
                    "exact": found == disclosed,
                    "seconds": round(seconds, 3),
                }
            )
        results.append(_checkpoint_figures(platform, engine_name, args.events, data_dir))
        return results
    finally:
        platform.close()
        drop_database(url)
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--beneficiaries", type=int, default=200_000)
    parser.add_argument("--attacker-share", type=float, default=0.2)
    parser.add_argument("--engine", choices=("sqlite", "postgres", "both"), default="sqlite")
    args = parser.parse_args()
    engines = ("sqlite", "postgres") if args.engine == "both" else (args.engine,)
    with tempfile.TemporaryDirectory(prefix="bench-incident-") as tmp:
        for engine_name in engines:
            for line in run(engine_name, args, Path(tmp)):
                print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
