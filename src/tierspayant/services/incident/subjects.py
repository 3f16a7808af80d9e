"""From the pseudonyms of the people read back to their internal ids, through an index.

An audit event names a beneficiary by ``subject_pseudonym(key, insurer, id)``, a keyed
HMAC that cannot be inverted. Recomputing it for every beneficiary of an insurer at each
scope costs one HMAC per person (20 M at national scale); instead the subject index
(``store/incident_tables.py``) keeps, for every id an insurer has issued, the *lookup* of
its pseudonym and the id. Scoping then costs one lookup per person read.

The lookup is a second keyed HMAC of the pseudonym (purpose :data:`INDEX_PURPOSE`), so a
copy of the database does not link the log's pseudonyms to beneficiary rows without the
operator key. Ids are issued as ``max(id) + 1``: the index is brought up to date by
indexing the ids above its mark, every integer up to the insurer's highest id (ids since
purged included: an id's pseudonym never changes, and whether the person is still held is
checked when resolving). The first catch-up of a large insurer is one pass over its ids;
run :func:`index_subjects` after an import to keep it off the incident's clock.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from tierspayant.app.platform import Platform
from tierspayant.security.audit import _PSEUDONYM_DOMAIN
from tierspayant.services.insurers import Insurer
from tierspayant.store import incidents as store
from tierspayant.store.insurers import all_insurers

PSEUDONYM_PURPOSE = "audit.subject"
INDEX_PURPOSE = "audit.subject.index"
LOOKUP_BYTES = 16
INDEX_BATCH = 50_000  # ids hashed and written per round of a catch-up


@dataclass(frozen=True, slots=True)
class SubjectKeys:
    """The pseudonym key (as the log uses it) and the index's lookup key."""

    pseudonym: bytes
    index: bytes

    @classmethod
    def of(cls, platform: Platform) -> SubjectKeys:
        operator = platform.operator_keys()
        return cls(operator.derive(PSEUDONYM_PURPOSE), operator.derive(INDEX_PURPOSE))


def pseudonym_hasher(key: bytes, insurer_amc: str) -> Callable[[int], str]:
    """``subject_pseudonym(key, insurer_amc, str(i))`` as a function of ``i``, keyed once."""
    if len(key) < 32:
        raise ValueError("pseudonym key must hold at least 256 bits")
    base = hmac.new(key, _PSEUDONYM_DOMAIN + insurer_amc.encode("utf-8") + b"\x00", "sha256")

    def pseudonym(beneficiary_id: int) -> str:
        mac = base.copy()
        mac.update(str(beneficiary_id).encode("ascii"))
        return mac.digest()[:16].hex()

    return pseudonym


def pseudonyms(key: bytes, insurer_amc: str, ids: Iterable[int]) -> Iterator[str]:
    """The pseudonym of each id, as the log names it."""
    return map(pseudonym_hasher(key, insurer_amc), ids)


def lookups(key: bytes, pseudonyms_: Iterable[str]) -> Iterator[bytes]:
    """The index lookup of each pseudonym."""
    base = hmac.new(key, digestmod=hashlib.sha256)
    for pseudonym in pseudonyms_:
        mac = base.copy()
        mac.update(pseudonym.encode("ascii"))
        yield mac.digest()[:LOOKUP_BYTES]


def catch_up(conn: Connection, keys: SubjectKeys, insurer: Insurer, now: datetime) -> int:
    """Index the insurer's ids above the mark, up to its highest id; how many."""
    store.lock_subject_index(conn, insurer.id)
    mark = store.subject_mark(conn, insurer.id)
    top = store.max_beneficiary_id(conn, insurer.id)
    if top <= mark:
        return 0
    for start in range(mark + 1, top + 1, INDEX_BATCH):
        ids = range(start, min(start + INDEX_BATCH, top + 1))
        found = lookups(keys.index, pseudonyms(keys.pseudonym, insurer.amc_number, ids))
        # In key order: the primary key's pages fill one after another, not at random.
        store.insert_subjects(conn, insurer.id, sorted(zip(found, ids, strict=True)))
    store.set_subject_mark(conn, insurer.id, top, now)
    return top - mark


def resolve(
    conn: Connection,
    keys: SubjectKeys,
    insurer: Insurer,
    wanted: Iterable[str],
    now: datetime,
) -> dict[str, int]:
    """Internal ids of the pseudonyms in ``wanted`` that name a beneficiary the insurer
    still holds (the others: unknown, or purged since)."""
    catch_up(conn, keys, insurer, now)
    names = sorted(set(wanted))
    by_lookup = dict(zip(lookups(keys.index, names), names, strict=True))
    indexed = store.indexed_subjects(conn, insurer.id, list(by_lookup))
    held = store.held_ids(conn, insurer.id, indexed.values())
    return {by_lookup[lookup]: i for lookup, i in indexed.items() if i in held}


def index_subjects(platform: Platform) -> dict[str, int]:
    """Bring every insurer's subject index up to date; ids indexed, by AMC number. One
    transaction per insurer."""
    keys = SubjectKeys.of(platform)
    done: dict[str, int] = {}
    with platform.engine.connect() as conn:
        every = all_insurers(conn)
    for insurer in every:
        with platform.engine.begin() as conn:
            done[insurer.amc_number] = catch_up(conn, keys, insurer, platform.now())
    return done
