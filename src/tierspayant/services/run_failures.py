"""The errors a background run may end with and be tried again at its next tick.

A rule refused something (``DomainError``, including every ``ServiceError``), or the
database failed under it (a lost connection, a lock held too long). The workers in
``jobs/`` log these and carry on; anything else is a bug and stops their thread. Naming
the database's errors here keeps ``sqlalchemy`` out of the entry points.
"""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError

from tierspayant.domain.errors import DomainError

RUN_FAILURES: tuple[type[Exception], ...] = (DomainError, SQLAlchemyError)
