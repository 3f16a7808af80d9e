"""Idempotency keys: a client's retry of a write without a natural key gets the first
answer again, byte for byte, and writes nothing (the ``Idempotency-Key`` request header
of the IETF HTTPAPI draft "The Idempotency-Key HTTP Header Field").

- **Scope.** A key belongs to one principal and one route (:func:`request_key`): the
  key of one client never answers another, nor another route of the same client.
- **Kept with the write.** The answer (status, the headers that describe the body, the
  body) is kept in the write's own transaction (:func:`keep`), so a crash keeps both or
  neither. Only an answer that wrote is kept: a refusal writes nothing, and the same key
  may be sent again.
- **One write.** The table's primary key decides which of two requests under one key
  writes; the other learns it at its insert (:class:`KeyTaken`), its transaction is
  rolled back, and it answers the kept answer (it waited for the first to commit).
- **Same key, other body** (the SHA-256 of the body's canonical JSON differs):
  ``422 request.idempotency_key_reused``.
- **Kept 24 hours** (:data:`KEPT_FOR`): older rows are ignored, replaced by a new request,
  and deleted by the retention purge (``services/retention.py``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Connection

from tierspayant.app.platform import Platform
from tierspayant.domain.codes import RequestCode
from tierspayant.security.principal import Principal
from tierspayant.services.errors import ServiceError, Unprocessable
from tierspayant.store import idempotency as store

HEADER = "Idempotency-Key"
KEPT_FOR = timedelta(hours=24)
MAX_KEY_LENGTH = 120  # the column's width
MAX_SCOPE_LENGTH = 120
# Visible ASCII but the two characters a structured-field string escapes.
_KEY_CHARACTERS = frozenset(chr(c) for c in range(0x21, 0x7F)) - {'"', "\\"}


class KeyTaken(Exception):
    """Another request kept an answer under this key first (raised inside the write's
    transaction, which is then rolled back)."""


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    """A request's key: whose (``scope``), the client's ``key``, and its body's digest."""

    scope: str
    key: str
    digest: bytes


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """An answer as sent: status, the headers that describe the body, the body's bytes."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def to_text(self) -> str:
        """The row's ``response`` column (the body is UTF-8 JSON, kept as text)."""
        document = {
            "status": self.status,
            "headers": [list(pair) for pair in self.headers],
            "body": self.body.decode("utf-8"),
        }
        return json.dumps(document, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_text(cls, text: str) -> StoredAnswer:
        """The answer a ``response`` column holds (see :meth:`to_text`)."""
        document = json.loads(text)
        return cls(
            status=int(document["status"]),
            headers=tuple((str(name), str(value)) for name, value in document["headers"]),
            body=str(document["body"]).encode("utf-8"),
        )


def invalid_key() -> ServiceError:
    """The refusal of a header that is not a key."""
    return ServiceError(
        RequestCode.IDEMPOTENCY_KEY_INVALID,
        f"{HEADER}: 1 to {MAX_KEY_LENGTH} visible ASCII characters (a UUID, say), "
        "sent once, optionally as a quoted string",
        field=HEADER,
    )


def parse_key(values: list[str]) -> str | None:
    """The key of a request's ``Idempotency-Key`` header values (None without one).

    The draft sends it as a structured-field string (``"…"``); a bare token is taken too.
    Empty, too long, non-ASCII, control characters, or the header sent twice:
    ``400 request.idempotency_key_invalid``.
    """
    if not values:
        return None
    if len(values) > 1:
        raise invalid_key()
    key = values[0].strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not 0 < len(key) <= MAX_KEY_LENGTH or not set(key) <= _KEY_CHARACTERS:
        raise invalid_key()
    return key


def canonical_digest(document: object) -> bytes:
    """SHA-256 of a JSON document's canonical form: keys sorted, no spaces."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).digest()


def request_key(principal: Principal, route: str, key: str, document: object) -> IdempotencyKey:
    """``key`` scoped to ``principal`` on ``route``, with the digest of the request's
    ``document`` (its body as JSON)."""
    scope = f"{route} {principal.id}"
    if len(scope) > MAX_SCOPE_LENGTH:
        # A long principal id is named by its digest: never cut, which could merge two.
        scope = f"{route} #{hashlib.sha256(principal.id.encode()).hexdigest()}"
    return IdempotencyKey(scope, key, canonical_digest(document))


def stored_answer(
    platform: Platform, key: IdempotencyKey, *, any_age: bool = False
) -> StoredAnswer | None:
    """The answer kept under ``key`` (None if none, or kept more than :data:`KEPT_FOR`
    ago unless ``any_age``); ``422 request.idempotency_key_reused`` if it answered
    another body."""
    since = None if any_age else platform.now() - KEPT_FOR
    with platform.engine.connect() as conn:
        kept = store.find(conn, key.scope, key.key, since)
    if kept is None:
        return None
    if not hmac.compare_digest(kept.request_digest, key.digest):
        raise Unprocessable(
            RequestCode.IDEMPOTENCY_KEY_REUSED,
            f"this {HEADER} was already used for a different request: use a new key",
            field=HEADER,
        )
    return StoredAnswer.from_text(kept.response)


def keep(platform: Platform, conn: Connection, key: IdempotencyKey, answer: StoredAnswer) -> None:
    """Keep ``answer`` under ``key`` in the caller's write transaction, or raise
    :class:`KeyTaken` if another request holds the key (the caller's transaction must
    then roll back: nothing of it may stay)."""
    now = platform.now()
    if not store.keep(conn, key.scope, key.key, key.digest, answer.to_text(), now, now - KEPT_FOR):
        raise KeyTaken(key.key)


def purge_expired(platform: Platform, *, dry_run: bool = False) -> int:
    """Delete (or with ``dry_run`` only count) the answers kept more than
    :data:`KEPT_FOR` ago."""
    before = platform.now() - KEPT_FOR
    with platform.engine.begin() as conn:
        if dry_run:
            return store.count_before(conn, before)
        return store.delete_before(conn, before)
