"""A command's exit status comes from the kind of refusal, through one table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

from tierspayant.cli.common import EXIT_CODES, exit_code, fail, platform_ctx
from tierspayant.domain.codes import DirectoryCode
from tierspayant.domain.errors import DomainError, InvalidIdentifier
from tierspayant.services import errors, run_failures

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
