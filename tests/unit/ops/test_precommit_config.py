""".pre-commit-config.yaml runs the same linters as CI (the Makefile's ``lint`` and
``typecheck``), with the tools of the project's virtualenv, and pre-commit accepts it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.unit.ops.support import ROOT

CONFIG = ROOT / ".pre-commit-config.yaml"


def _hooks() -> dict[str, str]:
    document = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    return {hook["id"]: hook["entry"] for repo in document["repos"] for hook in repo["hooks"]}


def _make_target(name: str) -> list[str]:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    block = re.search(rf"(?m)^{name}:.*\n((?:\t.*\n)+)", makefile)
    assert block is not None, name
    return [line.strip().removeprefix("$(BIN)/") for line in block.group(1).splitlines()]


def test_the_hooks_are_the_linters_ci_runs() -> None:
    ci = [*_make_target("lint"), *_make_target("typecheck")]
    hooks = {hook_id: entry.removeprefix(".venv/bin/") for hook_id, entry in _hooks().items()}
    assert set(hooks) == {"ruff", "ruff-format", "mypy", "lint-imports"}
    tools = {command.split()[0] + (" format" if " format" in command else "") for command in ci}
    assert tools == {"ruff", "ruff format", "mypy", "lint-imports"}
    assert hooks["ruff"].startswith("ruff check")
    assert hooks["ruff-format"].startswith("ruff format --check")
    assert hooks["mypy"] == "mypy"
    assert hooks["lint-imports"] == "lint-imports"


def test_every_hook_runs_a_tool_of_the_virtualenv() -> None:
    bin_dir = Path(sys.executable).parent
    for entry in _hooks().values():
        assert entry.startswith(".venv/bin/"), entry
        assert (bin_dir / entry.split()[0].removeprefix(".venv/bin/")).exists(), entry


def test_pre_commit_accepts_the_configuration() -> None:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "pre-commit"), "validate-config", str(CONFIG)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
