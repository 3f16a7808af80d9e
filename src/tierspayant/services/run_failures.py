"""The errors a run or a request may end with and be tried again (at the next tick, or
after the ``Retry-After`` of a 503), and what an entry point shows for them.

A rule refused something (``DomainError``, including every ``ServiceError``), or the
database failed under it (a lost connection, a lock held too long). The workers in
``jobs/`` log these and carry on; anything else is a bug and stops their thread. Naming
the database's and Redis's errors here keeps ``sqlalchemy`` and ``redis`` out of the entry
points: :func:`as_refusal` turns a lost component into a coded refusal the command line
prints as one line (``cli/common.py``).
"""

from __future__ import annotations

import redis
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import InterfaceError as SAInterfaceError

from tierspayant.domain.codes import PlatformCode
from tierspayant.domain.errors import DomainError
from tierspayant.services.errors import Unavailable
from tierspayant.store.db import DatabaseBusy
from tierspayant.store.reconnect import LOST_CONNECTION_ERRORS, connection_lost

RUN_FAILURES: tuple[type[Exception], ...] = (DomainError, SQLAlchemyError)

# What a request may meet when the database is busy with other writers (the process's write
# gate held too long, or SQLite's busy timeout run out on another process's lock), or when
# its connection was lost (a restart, a failover, a COMMIT whose answer never came). The
# API and the portals answer them 503 with Retry-After (``api/errors.py``, ``web/portals.py``)
# when :func:`is_busy` or :func:`is_lost` says so; any other database error is a fault.
DATABASE_ERRORS: tuple[type[Exception], ...] = (DatabaseBusy, *LOST_CONNECTION_ERRORS)


class DatabaseUnavailable(Unavailable):
    """The database cannot be reached, or the connection was lost during the work."""


class RedisUnavailable(Unavailable):
    """Redis (the guard's and the rate limits' counters) cannot be reached."""


def is_busy(exc: BaseException) -> bool:
    """Whether a database error means "busy, try again" rather than a fault."""
    if isinstance(exc, DatabaseBusy):
        return True
    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)


def is_lost(exc: BaseException) -> bool:
    """Whether a database error means the connection was lost, or could not be opened
    (``store/reconnect.py``): nothing to fix in the request, which may be sent again.
    Searched along the chain of causes, so a failed clean-up after the loss reads as it."""
    return any(connection_lost(cause) for cause in _causes(exc))


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it was raised from, outermost first: the explicit causes (``raise …
    from``), and what a failure that is not a refusal was raised while handling (a failed
    clean-up after a lost connection). A refusal raised while handling an error it had
    caught on purpose keeps its own meaning."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not s for s in seen):
        seen.append(current)
        implicit = None if isinstance(current, DomainError) else current.__context__
        current = current.__cause__ or implicit
    return seen


def _first_line(exc: BaseException) -> str:
    """The driver's own first line (``connection refused``…), without its SQL or links."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0][:160] if text else type(orig).__name__


def as_refusal(exc: BaseException) -> DomainError | None:
    """The coded refusal that stands for ``exc`` at an entry point, or None for a bug.

    A refusal is itself, unless a lost component caused it; a database gone or dropped
    mid-run (connection refused, server terminated the connection) is
    :class:`DatabaseUnavailable`
    ``database.unavailable`` (or ``database.busy``); Redis unreachable is
    :class:`RedisUnavailable` ``redis.unavailable``. The chain of causes is searched, so a
    failure met while cleaning up after the first one still reads as the first one.
    """
    for cause in _causes(exc):
        if is_busy(cause):
            return Unavailable(
                PlatformCode.DATABASE_BUSY,
                "base de données occupée par d'autres écritures : réessayez",
            )
        if (
            isinstance(cause, OperationalError | SAInterfaceError)
            or (isinstance(cause, DBAPIError) and cause.connection_invalidated)
            or connection_lost(cause)  # the audit writer's Disconnected, psycopg's own
        ):
            return DatabaseUnavailable(
                PlatformCode.DATABASE_UNAVAILABLE,
                "base de données injoignable ou connexion perdue en cours de traitement "
                f"({_first_line(cause)}) : rien n'est perdu de ce qui a été validé, "
                "relancez la commande quand la base répond",
            )
        if isinstance(cause, redis.ConnectionError | redis.TimeoutError):
            return RedisUnavailable(
                PlatformCode.REDIS_UNAVAILABLE,
                f"Redis injoignable ({_first_line(cause)}) : vérifiez TIERSPAYANT_REDIS_URL "
                "et le service Redis, puis relancez",
            )
    return exc if isinstance(exc, DomainError) else None
