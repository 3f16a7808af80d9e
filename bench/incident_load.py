"""Bulk loaders for the national incident benchmark (PostgreSQL only).

``load_beneficiaries`` inserts synthetic beneficiaries server-side (``generate_series``):
unique blind indexes derived from the id, one random blob in place of every ciphertext
(scoping never decrypts). Their pseudonyms are real: the subject index is built from
their ids by the platform's own code (``subjects.catch_up``), as in production.

``load_events`` writes a chained audit log with COPY: rights checks of honest pharmacies
spread over ``days`` days, and on day ``attack_day`` a scraper's ``day_lookups`` lookups
from one structure. Each event's hash is the real one (``security.audit``'s canonical
bytes and chain hash), so ``audit verify`` accepts the log; the subjects are the real
pseudonyms of the people read.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tierspayant.security.audit import GENESIS, canonical_bytes, chain_hash
from tierspayant.services.incident.subjects import pseudonym_hasher

INSERT_CHUNK = 500_000
T0 = datetime(2025, 2, 1, tzinfo=UTC)
ATTACKER = "provider:751234567/client:scraper"
ATTACKER_STRUCTURE = "750000001"
DETAIL_BASE: dict[str, str | int | bool | None] = {
    "care_date": "2025-02-01",
    "domains": "PHAR",
    "by": "nir",
    "proof": False,
}

_BENEFICIARIES = """
INSERT INTO beneficiaries (insurer_id, id, idx_nir, idx_member, idx_family, key_version,
    nir_ct, member_number_ct, birth_date_ct, last_name_ct, first_name_ct, birth_rank, sex,
    quality, birth_year, contract_code, coverage_start, coverage_end, css, is_canary,
    row_digest, updated_at)
SELECT %(insurer)s, i, decode(md5('n' || i), 'hex'), decode(md5('m' || i), 'hex'),
    decode(md5('f' || (i / 3)), 'hex'), 1, %(blob)s, %(blob)s, %(blob)s, %(blob)s, %(blob)s,
    1, CASE WHEN i %% 2 = 0 THEN 'F' ELSE 'M' END, 'member', 1940 + i %% 80, 'ESSENTIEL',
    DATE '2024-01-01', NULL, false, false, decode(md5('d' || i), 'hex'), now()
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS i
"""


def load_beneficiaries(raw: Any, insurer_id: int, first: int, last: int) -> None:
    """Insert beneficiaries ``first``..``last`` (one transaction per chunk)."""
    blob = random.Random(first).randbytes(48)
    for start in range(first, last + 1, INSERT_CHUNK):
        end = min(start + INSERT_CHUNK - 1, last)
        with raw.cursor() as cursor:
            cursor.execute(
                _BENEFICIARIES, {"insurer": insurer_id, "blob": blob, "first": start, "last": end}
            )
        raw.commit()


@dataclass(frozen=True, slots=True)
class LogPlan:
    """The log to write: ``events`` in all, ``day_lookups`` of them by the scraper on
    day ``attack_day`` (0-based) of ``days``; subjects drawn from ids 1..``people``."""

    events: int
    people: int
    amc: str
    days: int = 30
    attack_day: int = 14
    day_lookups: int = 50_000
    scraper_hit_rate: float = 0.7
    honest_hit_rate: float = 0.98
    honest_structures: int = 2000
    seed: int = 2026

    def window(self) -> tuple[datetime, datetime]:
        start = T0 + timedelta(days=self.attack_day)
        return start, start + timedelta(days=1)


def _utc_text(at: datetime) -> str:
    return at.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _events(plan: LogPlan, key: bytes, disclosed: set[int]) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(plan.seed)
    step = timedelta(days=plan.days) / plan.events
    day_start, day_end = plan.window()
    in_day = int(timedelta(days=1) / step)
    scraper_share = min(1.0, plan.day_lookups / max(in_day, 1))
    scraper_left = plan.day_lookups
    prev = GENESIS
    pseudonym = pseudonym_hasher(key, plan.amc)
    for n in range(plan.events):
        seq = n + 1
        at = T0 + step * n
        scraper = day_start <= at < day_end and scraper_left > 0 and rng.random() < scraper_share
        if scraper:
            scraper_left -= 1
            actor, structure = ATTACKER, ATTACKER_STRUCTURE
            hit = rng.random() < plan.scraper_hit_rate
        else:
            pharmacy = rng.randint(1, plan.honest_structures)
            actor, structure = f"provider:{pharmacy:09d}/client:lgo", f"69{pharmacy:07d}"
            hit = rng.random() < plan.honest_hit_rate
        person = rng.randint(1, plan.people)
        subject = pseudonym(person) if hit else None
        if scraper and hit:
            disclosed.add(person)
        detail: dict[str, str | int | bool | None] = {**DETAIL_BASE, "disclosed": hit}
        canonical = canonical_bytes(
            seq=seq,
            at=at,
            actor=actor,
            structure=structure,
            action="eligibility.check",
            purpose="rights_check",
            subject=subject,
            insurer=plan.amc,
            decision="hit" if hit else "miss",
            detail=detail,
        )
        digest = chain_hash(prev, canonical)
        yield (
            seq,
            _utc_text(at),
            actor,
            structure,
            "eligibility.check",
            "rights_check",
            subject,
            plan.amc,
            "hit" if hit else "miss",
            json.dumps(detail, sort_keys=True, separators=(",", ":")),
            prev,
            digest,
        )
        prev = digest


def load_events(raw: Any, plan: LogPlan, key: bytes) -> tuple[set[int], bytes]:
    """COPY the planned log; the ids the scraper was answered about, and the last hash."""
    disclosed: set[int] = set()
    last = GENESIS
    columns = "seq, at, actor, structure, action, purpose, subject, insurer, decision, detail"
    with (
        raw.cursor() as cursor,
        cursor.copy(f"COPY audit_events ({columns}, prev_hash, hash) FROM STDIN") as copy,
    ):
        for row in _events(plan, key, disclosed):
            copy.write_row(row)
            last = row[-1]
    raw.commit()
    return disclosed, last


def digest_floor(raw: Any, batch: int = 20_000) -> tuple[int, float]:
    """The floor of any verification: read every event's hashed columns in chain order
    through a server-side cursor and SHA-256 them, nothing else; (events, seconds)."""
    started = time.perf_counter()
    count = 0
    sha = hashlib.sha256
    with raw.cursor(name="floor") as cursor:
        cursor.itersize = batch
        cursor.execute(
            "SELECT seq, at, actor, structure, action, purpose, subject, insurer, decision,"
            " detail, prev_hash, hash FROM audit_events ORDER BY seq"
        )
        for row in cursor:
            sha(row[10] + row[9].encode() + row[2].encode()).digest()
            count += 1
    raw.commit()
    return count, time.perf_counter() - started
