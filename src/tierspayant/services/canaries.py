"""Canaries: synthetic beneficiaries that no legitimate flow can reach.

Each insurer's population holds a few invented people with valid-looking NIRs and no
card. Nobody can present them at a counter, so a lookup of one means identifiers came
from somewhere else (a leaked list, a scraper, a database copy), and a decryption or
export of one means someone is reading rows they had no reason to read. Either raises an
alert and suspends the principal.

Canaries are written through the same code as an enrolment line (same validation, same
encryption, same blind indexes, same keyed row digest) and carry ``is_canary = FALSE``:
in ``beneficiaries`` they are indistinguishable from members. What makes them canaries is
a row of ``canary_marks``: ``HMAC(operator key, insurer | id | NIR index)``, with the row
id stored only encrypted under the operator's data key. Without the key-encryption key a
database reader cannot tell which rows are canaries (``docs/canaries.md``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import structlog
from sqlalchemy import Connection

from tierspayant import metrics
from tierspayant.app.platform import Platform
from tierspayant.domain.codes import GuardCode
from tierspayant.domain.identifiers import nir_key
from tierspayant.formats.beneficiaries import ImportMode, LineValidator
from tierspayant.security.crypto import BlindIndexer, DataKeys, FieldCipher, row_aad
from tierspayant.security.guard import Level, Signal
from tierspayant.security.identity import family_index, nir_index, open_column
from tierspayant.services.alerts import raise_alert
from tierspayant.services.enrolment_prepare import LinePreparer
from tierspayant.services.errors import ServiceError
from tierspayant.services.insurers import get_insurer
from tierspayant.store import audit
from tierspayant.store import cards as store
from tierspayant.store.beneficiaries import BeneficiaryRecord
from tierspayant.store.beneficiary_import import STAGE_COLUMNS, StagedRow
from tierspayant.store.insurers import amc_number_of
from tierspayant.store.keys import insurer_scope

log = structlog.get_logger("tierspayant.canaries")

MARK_PURPOSE = "canary.mark"
MARK_BYTES = 16
DEFAULT_COUNT = 10
MAX_COUNT = 1000
# Actors that are local processes, not principals: an alert names them, nothing suspends.
UNSUSPENDABLE_PREFIXES = ("system:", "operator:")
_MARK_TABLE = "canary_marks"


def canary_mark(
    operator_keys: DataKeys, insurer_id: int, beneficiary_id: int, idx_nir: bytes
) -> bytes:
    """The keyed mark of one row: equal only for that row, unforgeable without the key."""
    message = f"{insurer_id}|{beneficiary_id}|".encode("ascii") + idx_nir
    key = operator_keys.derive(MARK_PURPOSE)
    return hmac.new(key, message, hashlib.sha256).digest()[:MARK_BYTES]


def is_canary(
    platform: Platform, conn: Connection, insurer_id: int, beneficiary_id: int, idx_nir: bytes
) -> bool:
    """Whether one row is a canary: one keyed digest and one primary-key read."""
    mark = canary_mark(platform.operator_keys(), insurer_id, beneficiary_id, idx_nir)
    marks = platform.canary_marks.get(insurer_id)
    if marks is None:
        # An insurer has tens of canaries: its whole set is one small read, kept for
        # TIERSPAYANT_CACHE_SECONDS (planting in this process forgets it at once).
        marks = frozenset(store.marks_set(conn, insurer_id))
        platform.canary_marks.put(insurer_id, marks)
    return mark in marks


def canary_ids(
    platform: Platform, conn: Connection, insurer_id: int, rows: Iterable[tuple[int, bytes]]
) -> set[int]:
    """Which of the (id, NIR index) rows are canaries."""
    keys = platform.operator_keys()
    by_mark = {canary_mark(keys, insurer_id, i, idx): i for i, idx in rows}
    return {by_mark[m] for m in store.marked(conn, insurer_id, by_mark)}


# --------------------------------------------------------------------------- touching


def canary_touched(
    platform: Platform,
    conn: Connection,
    insurer_id: int,
    beneficiary_ids: Sequence[int],
    actor: str,
    purpose: str,
) -> list[int]:
    """Call before decrypting or exporting rows: alert if any of them is a canary.

    Returns the canaries among ``beneficiary_ids`` (the caller must not decrypt or export
    them). When there are any, writes in ``conn``'s transaction a hard alert, an audit
    event, and, if ``actor`` is a principal (not a local ``system:``/``operator:``
    process), its suspension with every token revoked. The alert names counts and the
    purpose only, never which rows.
    """
    rows = store.rows_by_id(conn, insurer_id, beneficiary_ids)
    found = sorted(canary_ids(platform, conn, insurer_id, ((r.id, r.idx_nir) for r in rows)))
    if not found:
        return []
    metrics.CANARY_TOUCHES.labels("rows").inc()
    now = platform.now()
    amc = amc_number_of(conn, insurer_id)
    suspendable = not actor.startswith(UNSUSPENDABLE_PREFIXES)
    signal = Signal(
        level=Level.HARD,
        code="canary.touched",
        message=f"canary rows reached by {actor} (purpose {purpose})",
        at=now,
        principal_id=actor if suspendable else None,
        structure=None,
        figures={"canaries": len(found), "purpose": purpose[:40]},
    )
    audit.append(
        conn,
        at=now,
        actor=actor,
        action="canary.touched",
        purpose=purpose[:60],
        insurer=amc,
        decision="alert",
        detail={"canaries": len(found)},
    )
    raise_alert(platform, conn, signal, insurer=amc)
    return found


# --------------------------------------------------------------------------- planting


@dataclass(frozen=True, slots=True)
class PlantSummary:
    insurer: str
    removed: int
    planted: int


@dataclass(frozen=True, slots=True)
class CanaryStatus:
    insurer: str
    count: int
    planted_at: datetime | None


def plant(
    platform: Platform,
    amc_number: str,
    count: int | None,
    actor: str,
    progress: Callable[[int], None] | None = None,
) -> PlantSummary:
    """Replace the insurer's canaries by fresh ones (``count``, default: as many as before,
    or 10). One transaction: either the new set is in place, or the old one still is."""
    now = platform.now()
    with platform.engine.begin() as conn:
        insurer = get_insurer(conn, amc_number)
        previous = store.marks_of(conn, insurer.id)
        wanted = count if count is not None else (len(previous) or DEFAULT_COUNT)
        if not 1 <= wanted <= MAX_COUNT:
            raise ServiceError(
                GuardCode.CANARY_COUNT, f"count must be between 1 and {MAX_COUNT}", field="count"
            )
        removed = _remove(platform, conn, insurer.id, previous)
        keys = platform.keys.active(conn, insurer_scope(insurer.amc_number))
        maker = _CanaryMaker(platform, conn, insurer.id, keys, platform.today())
        operator = platform.operator_keys()
        cipher = FieldCipher(operator)
        for done in range(1, wanted + 1):
            row, idx_nir = maker.row()
            beneficiary_id = maker.insert(row, now)
            mark = canary_mark(operator, insurer.id, beneficiary_id, idx_nir)
            aad = row_aad(insurer.id, _MARK_TABLE, mark.hex(), "ref")
            store.insert_mark(conn, insurer.id, mark, cipher.encrypt(str(beneficiary_id), aad), now)
            if progress is not None:
                progress(done)
        audit.append(
            conn,
            at=now,
            actor=actor,
            action="canary.plant",
            insurer=insurer.amc_number,
            decision="allow",
            # How many real rows were decrypted (in memory) to shape the canaries after.
            detail={"removed": removed, "planted": wanted, "sampled": len(maker.sample)},
        )
    platform.canary_marks.discard(insurer.id)
    log.info("canary.planted", insurer=insurer.amc_number, removed=removed, planted=wanted)
    return PlantSummary(insurer.amc_number, removed, wanted)


def _remove(
    platform: Platform,
    conn: Connection,
    insurer_id: int,
    marks: Sequence[tuple[bytes, bytes, datetime]],
) -> int:
    """Delete the rows and marks of the insurer's current canaries."""
    cipher = FieldCipher(platform.operator_keys())
    ids = [
        int(cipher.decrypt(ref, row_aad(insurer_id, _MARK_TABLE, mark.hex(), "ref")))
        for mark, ref, _ in marks
    ]
    removed = store.delete_rows(conn, insurer_id, ids)
    store.delete_marks(conn, insurer_id, (m for m, _, _ in marks))
    return removed


def status(platform: Platform) -> list[CanaryStatus]:
    """How many canaries each insurer holds and when they were planted."""
    with platform.engine.connect() as conn:
        return [CanaryStatus(a, n, at) for a, n, at in store.canary_counts(conn)]


SAMPLE_SIZE = 400
_SAMPLE_TRIES = 6


@dataclass(frozen=True, slots=True)
class _Sampled:
    """One real member of the insurer, decrypted in memory to shape canaries after."""

    member_number: str
    nir: str
    birth_date: date
    last_name: str
    first_name: str
    record: BeneficiaryRecord


def _shape(value: str) -> str:
    """The format of a value: each letter ``A``, each digit ``9``, other characters kept."""
    return "".join("A" if c.isalpha() else "9" if c.isdigit() else c for c in value)


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _mod97_valid(digits: str) -> bool:
    """The NIR-style key: the last two digits are 97 minus the rest modulo 97."""
    return len(digits) > 3 and int(digits[-2:]) == 97 - int(digits[:-2]) % 97


_CHECKS: tuple[Callable[[str], bool], ...] = (_luhn_valid, _mod97_valid)


class _MemberNumbers:
    """Member numbers shaped like the insurer's own: learnt from a sample of real ones.

    A canary's number is a real member's number (the template) whose trailing run of
    digits is drawn anew: what comes before it (a letter prefix, a year and a slash, an
    agency code) is a real one, and each new digit is one that real numbers of the same
    format have at that position, with their frequencies (leading zeros stay as common).
    A number of digits only keeps its template's first two. When every sampled number of
    a format passes a check-digit rule (Luhn, or a mod-97 key), the canary's passes too.
    """

    def __init__(self, numbers: Sequence[str], rng: secrets.SystemRandom) -> None:
        self.rng = rng
        self.by_shape: dict[str, list[str]] = {}
        for number in numbers:
            self.by_shape.setdefault(_shape(number), []).append(number)
        self.numbers = list(numbers)
        self.checks: dict[str, tuple[Callable[[str], bool], ...]] = {}
        for shape, group in self.by_shape.items():
            digit_groups = ["".join(c for c in n if c.isdigit()) for n in group]
            self.checks[shape] = tuple(
                check
                for check in _CHECKS
                if len(group) >= 20 and all(len(d) > 3 and check(d) for d in digit_groups)
            )

    @staticmethod
    def _kept(template: str) -> int:
        """How many leading characters of the template a canary keeps."""
        tail = len(template)
        while tail > 0 and template[tail - 1].isdigit():
            tail -= 1
        if tail == len(template):  # no trailing digit: the last character is drawn
            return tail - 1
        return tail if tail > 0 else min(2, len(template) - 1)

    def draw(self, loose: bool = False) -> str:
        """A number of a sampled format; ``loose`` (when the sample's combinations are all
        taken, as in a small population) draws any digit in the trailing run."""
        template = self.rng.choice(self.numbers)
        group = self.by_shape[_shape(template)]
        checks = self.checks[_shape(template)]
        kept = self._kept(template)
        for _ in range(10_000):
            tail = "".join(
                self.rng.choice("0123456789")
                if loose and template[position].isdigit()
                else self.rng.choice(group)[position]
                for position in range(kept, len(template))
            )
            number = template[:kept] + tail
            digits = "".join(c for c in number if c.isdigit())
            if all(check(digits) for check in checks):
                return number
        return template  # unreachable in practice; a taken number is refused by the caller


class _CanaryMaker:
    """Invents plausible people, shaped like the insurer's own members.

    Every field follows a sample of the insurer's real members (decrypted in memory,
    never written anywhere): a canary takes a real member's format of member number
    (:class:`_MemberNumbers`), the birth year and month, sex, NIR département and commune
    of birth, birth rank, quality, contract, coverage period and CSS flag of one sampled
    member (quality ``member``: a canary heads a family of one, as single members do), a
    last name of another member, and a first name of a third of the same sex born within
    a few years. Only the NIR's order number (and so its key) and the day of birth
    are drawn at random. Randomness comes from the operating system: canaries must not be
    reproducible from a seed. ``updated_at`` copies the latest import's, so the rows do
    not stand out by date.
    """

    def __init__(
        self, platform: Platform, conn: Connection, insurer_id: int, keys: DataKeys, today: date
    ) -> None:
        self.conn = conn
        self.insurer_id = insurer_id
        self.today = today
        self.rng = secrets.SystemRandom()
        self.indexer = BlindIndexer(keys)
        contracts = self._contract_mix()
        self.contracts = contracts
        self.validator = LineValidator(
            contracts={c for c, _ in contracts}, mode=ImportMode.INCREMENTAL, file_date=today
        )
        self.preparer = LinePreparer(keys, insurer_id, self.validator)
        self.next_id = self._max_id() + 1
        self.updated_at = self._latest_update()
        self.sample = self._sample(platform, keys)
        templates = [m for m in self.sample if m.record.quality == "member"]
        # A canary heads a family of its own: its template is a member (assuré principal).
        self.templates = templates or self.sample
        self.member_numbers = _MemberNumbers([m.member_number for m in self.templates], self.rng)

    def _contract_mix(self) -> list[tuple[str, int]]:
        rows = store.contract_mix(self.conn, self.insurer_id)
        if not rows:
            raise ServiceError(
                GuardCode.CANARY_NO_POPULATION,
                "enrol the insurer's beneficiaries before planting canaries",
            )
        return rows

    def _max_id(self) -> int:
        return store.max_beneficiary_id(self.conn, self.insurer_id)

    def _latest_update(self) -> datetime | None:
        return store.latest_update(self.conn, self.insurer_id)

    def _sample(self, platform: Platform, keys: DataKeys) -> list[_Sampled]:
        """Up to SAMPLE_SIZE real rows of the insurer, drawn at random ids, decrypted."""
        top = self.next_id - 1
        records: dict[int, BeneficiaryRecord] = {}
        if top <= 2 * SAMPLE_SIZE:
            records = {
                r.id: r for r in store.rows_by_id(self.conn, self.insurer_id, range(1, top + 1))
            }
        else:
            for _ in range(_SAMPLE_TRIES):
                ids = {self.rng.randint(1, top) for _ in range(SAMPLE_SIZE)}
                for record in store.rows_by_id(self.conn, self.insurer_id, ids - set(records)):
                    records[record.id] = record
                if len(records) >= SAMPLE_SIZE:
                    break
        scope = insurer_scope(amc_number_of(self.conn, self.insurer_id))
        ciphers: dict[int, FieldCipher] = {keys.version: FieldCipher(keys)}
        sampled: list[_Sampled] = []
        for record in records.values():
            if record.key_version not in ciphers:
                older = platform.keys.version(self.conn, scope, record.key_version)
                ciphers[record.key_version] = FieldCipher(older)
            cipher = ciphers[record.key_version]

            def clear(
                column: str,
                blob: bytes,
                r: BeneficiaryRecord = record,
                c: FieldCipher = cipher,
            ) -> str:
                return open_column(c, self.insurer_id, r.idx_nir, column, blob)

            sampled.append(
                _Sampled(
                    member_number=clear("member_number", record.member_number_ct),
                    nir=clear("nir", record.nir_ct),
                    birth_date=date.fromisoformat(clear("birth_date", record.birth_date_ct)),
                    last_name=clear("last_name", record.last_name_ct),
                    first_name=clear("first_name", record.first_name_ct),
                    record=record,
                )
            )
        if not sampled:
            raise ServiceError(
                GuardCode.CANARY_NO_POPULATION,
                "enrol the insurer's beneficiaries before planting canaries",
            )
        return sampled

    def _taken(self, column: str, value: bytes) -> bool:
        return store.index_taken(self.conn, self.insurer_id, column, value)

    def _nir(self, template: str) -> str:
        """A NIR with the template's sex, year and month, département and commune of birth
        (characters 1 to 10), and a random order number."""
        body = f"{template[:10]}{self.rng.randint(1, 999):03d}"
        return f"{body}{nir_key(body):02d}"

    def _birth(self, template: date) -> date:
        """The template's year and month, a random day of that month."""
        first = template.replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
        day = self.rng.randint(1, (following - timedelta(days=1)).day)
        birth = first.replace(day=day)
        return birth if birth <= self.today else template

    def _first_name(self, sex: str, born: date) -> str:
        close = [
            m.first_name
            for m in self.templates
            if m.record.sex == sex and abs(m.birth_date.year - born.year) <= 5
        ]
        pool = close or [m.first_name for m in self.templates if m.record.sex == sex]
        return self.rng.choice(pool or [m.first_name for m in self.templates])

    def row(self) -> tuple[StagedRow, bytes]:
        """One new canary as a staged row, with a NIR and member number nobody holds."""
        rng = self.rng
        tries = 0
        while True:
            tries += 1
            template = rng.choice(self.templates)
            nir = self._nir(template.nir)
            rank = template.record.birth_rank
            member = self.member_numbers.draw(loose=tries > 50)
            if self._taken("idx_nir", nir_index(self.indexer, nir, rank)):
                continue
            if self._taken("idx_family", family_index(self.indexer, member)):
                continue
            break
        record = template.record
        birth = self._birth(template.birth_date)
        end = record.coverage_end
        cells = (
            member,
            nir,
            str(rank),
            birth.isoformat(),
            rng.choice(self.templates).last_name,
            self._first_name(record.sex, birth),
            record.sex,
            record.quality,
            record.contract_code,
            record.coverage_start.isoformat(),
            "" if end is None else end.isoformat(),
            "1" if record.css else "0",
            "",
        )
        chunk = self.preparer.prepare([(1, cells)])
        if chunk.errors:
            raise ServiceError(GuardCode.CANARY_INVALID, chunk.errors[0].message)
        staged = chunk.rows[0]
        return staged, staged[2]

    def insert(self, row: StagedRow, now: datetime) -> int:
        """Insert the row as the next id of the insurer, exactly like an imported line."""
        values: dict[str, object] = dict(zip(STAGE_COLUMNS[2:], row[2:], strict=True))
        values["coverage_start"] = date.fromisoformat(str(values["coverage_start"]))
        end = values["coverage_end"]
        values["coverage_end"] = None if end is None else date.fromisoformat(str(end))
        beneficiary_id = self.next_id
        store.insert_beneficiary(
            self.conn,
            {
                "insurer_id": self.insurer_id,
                "id": beneficiary_id,
                "is_canary": False,
                "updated_at": self.updated_at or now,
                **values,
            },
        )
        self.next_id += 1
        return beneficiary_id
