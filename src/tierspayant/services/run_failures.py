"""The errors a run or a request may end with and be tried again (at the next tick, or
after the ``Retry-After`` of a 503).

A rule refused something (``DomainError``, including every ``ServiceError``), or the
database failed under it (a lost connection, a lock held too long). The workers in
``jobs/`` log these and carry on; anything else is a bug and stops their thread. Naming
the database's errors here keeps ``sqlalchemy`` out of the entry points.
"""

from __future__ import annotations

from sqlalchemy.exc import OperationalError, SQLAlchemyError

from tierspayant.domain.errors import DomainError
from tierspayant.store.db import DatabaseBusy

RUN_FAILURES: tuple[type[Exception], ...] = (DomainError, SQLAlchemyError)

# What a request may meet when the database is busy with other writers: the process's write
# gate held too long, or SQLite's busy timeout run out on another process's lock. The API
# answers them 503 with Retry-After (``api/errors.py``) when :func:`is_busy` says so.
DATABASE_ERRORS: tuple[type[Exception], ...] = (DatabaseBusy, OperationalError)


def is_busy(exc: BaseException) -> bool:
    """Whether a database error means "busy, try again" rather than a fault."""
    if isinstance(exc, DatabaseBusy):
        return True
    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)
