"""A command's exit status comes from the kind of refusal, through one table."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
import typer
from sqlalchemy.exc import OperationalError

from tierspayant.cli.common import EXIT_CODES, exit_code, fail, platform_ctx
from tierspayant.domain.codes import DirectoryCode, GuardCode, PaymentCode
from tierspayant.domain.errors import DomainError, InvalidIdentifier
from tierspayant.services import errors, run_failures
from tierspayant.store.reconnect import Disconnected

DOCUMENTED = {  # docs/operations.md, "Exit statuses"
    DomainError: 2,
    errors.ServiceError: 2,
    errors.Unprocessable: 2,
    errors.Unauthenticated: 2,
    errors.Forbidden: 2,
    errors.NotFound: 3,
    errors.Conflict: 4,
    errors.Unavailable: 5,
    errors.TooManyRequests: 5,
    errors.NotInitialised: 6,
    run_failures.DatabaseUnavailable: 7,
    run_failures.RedisUnavailable: 8,
}
OPERATIONS = Path(__file__).parents[3] / "docs" / "operations.md"


def test_the_table_is_the_documented_statuses() -> None:
    assert EXIT_CODES == DOCUMENTED
    assert exit_code(InvalidIdentifier(DirectoryCode.INSURER_UNKNOWN, "x")) == 2


def test_every_status_of_the_table_has_its_row_in_operations_md() -> None:
    # Given the "Exit statuses" table of docs/operations.md
    text = OPERATIONS.read_text(encoding="utf-8")
    section = text[text.index("## Exit statuses") :].split("\n## ", 1)[0]
    rows = {int(m[1]) for m in re.finditer(r"^\| (\d+) \|", section, re.MULTILINE)}
    # Then each status a refusal exits with is explained there, and nothing more but 0 and 1
    assert rows == set(EXIT_CODES.values()) | {0, 1}


@pytest.mark.parametrize(("cls", "status"), list(DOCUMENTED.items()))
def test_fail_exits_with_the_status_of_the_class(
    cls: type[DomainError], status: int, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a refusal of one kind
    error = cls(DirectoryCode.INSURER_UNKNOWN, "no insurer has the AMC number 1")
    # When the CLI fails with it
    exit_ = fail(error)
    # Then it prints the coded message and exits with the table's status
    assert exit_.exit_code == status
    assert "[insurer.unknown] no insurer has the AMC number 1" in capsys.readouterr().err


def test_platform_context_turns_a_refusal_into_its_exit_status(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    # Given a platform with no database schema yet
    monkeypatch.setenv("TIERSPAYANT_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("TIERSPAYANT_DATABASE_URL", raising=False)
    # When a command opens it
    with pytest.raises(typer.Exit) as exited, platform_ctx():
        pass
    # Then it exits 6: not initialised
    assert exited.value.exit_code == 6


def _raised(make: Callable[[], None]) -> BaseException:
    try:
        make()
    except Exception as exc:  # noqa: BLE001 - the exception is the value under test
        return exc
    raise AssertionError("nothing raised")


def _lost_connection() -> OperationalError:
    return OperationalError("SELECT 1", {}, Exception("server closed the connection"))


def test_a_refusal_caused_by_a_lost_redis_reads_as_redis_unavailable() -> None:
    # Given a service refusal raised from Redis's connection error
    def guard() -> None:
        try:
            raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:1")
        except redis.ConnectionError as exc:
            raise errors.Unavailable(GuardCode.UNAVAILABLE, "counters unreadable") from exc

    refusal = run_failures.as_refusal(_raised(guard))
    # Then the command line tells the component, with exit 8
    assert refusal is not None
    assert refusal.code == "redis.unavailable"
    assert exit_code(refusal) == 8


def test_a_failed_clean_up_after_a_lost_connection_still_reads_as_the_lost_database() -> None:
    # Given a run whose clean-up fails while the first failure is handled
    def run() -> None:
        try:
            raise _lost_connection()
        finally:
            raise RuntimeError("release failed")

    refusal = run_failures.as_refusal(_raised(run))
    assert refusal is not None
    assert refusal.code == "database.unavailable"
    assert exit_code(refusal) == 7


def test_a_refusal_raised_while_handling_a_database_error_keeps_its_own_meaning() -> None:
    # Given a service that met a database error, handled it, and refused on purpose
    def service() -> None:
        try:
            raise _lost_connection()
        except OperationalError:
            raise errors.Conflict(PaymentCode.RUN_LOCKED, "held") from None

    refusal = run_failures.as_refusal(_raised(service))
    assert refusal is not None
    assert refusal.code == "run.locked"
    # And an error that is neither a refusal nor a lost component is a bug: no refusal
    assert run_failures.as_refusal(_raised(lambda: [][1])) is None


def test_a_connection_lost_under_the_audit_writer_reads_as_the_lost_database() -> None:
    # Given a command whose audit event failed: the writer's own connection was dropped
    # (it raises Disconnected, not a SQLAlchemy error), and the run ended on it
    def run() -> None:
        raise Disconnected("server closed the connection unexpectedly")

    refusal = run_failures.as_refusal(_raised(run))
    # Then the command line says the database, with exit 7, not a fault
    assert refusal is not None
    assert refusal.code == "database.unavailable"
    assert exit_code(refusal) == 7
