"""``make release-check``: it passes on the repository, and names each disagreement on a
copy where the version, the CHANGELOG or the migrations were broken."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.release_check import ROOT, problems

VERSIONS = Path("src/tierspayant/store/migrations/versions")


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The files the check reads, copied."""
    for name in ("pyproject.toml", "CHANGELOG.md", "src/tierspayant/__init__.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / VERSIONS, tmp_path / VERSIONS)
    return tmp_path


def _head(root: Path) -> str:
    names = sorted(p.name for p in (root / VERSIONS).glob("[0-9][0-9][0-9][0-9]_*.py"))
    return names[-1][:4]


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_the_repository_is_consistent() -> None:
    assert problems() == []


def test_make_release_check_runs_it() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.release_check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "agree" in done.stdout
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "release-check:" in makefile
    assert "-m tests.support.release_check" in makefile


def test_a_version_bumped_in_one_place_only_is_named(copy: Path) -> None:
    _edit(copy / "pyproject.toml", 'version = "0.1.0"', 'version = "0.2.0"')
    found = problems(copy)
    assert any("__init__.py says '0.1.0'" in p for p in found), found
    assert any("no entry '## [0.2.0]" in p for p in found), found


def test_an_entry_without_a_date_is_named(copy: Path) -> None:
    _edit(copy / "CHANGELOG.md", "## [0.1.0] — 2026-12-06", "## [0.1.0]")
    assert problems(copy) == ["CHANGELOG.md's entry 0.1.0 has no date"]


def test_a_new_migration_not_in_the_changelog_is_named(copy: Path) -> None:
    head = _head(copy)
    new = f"{int(head) + 1:04d}"
    (copy / VERSIONS / f"{new}_something.py").write_text(
        f'"""A new table."""\n\nrevision = "{new}"\ndown_revision = "{head}"\n',
        encoding="utf-8",
    )
    assert problems(copy) == [
        f"migration {new} (the head) is named on no 'Migrations' line of CHANGELOG.md's "
        "entry 0.1.0 or Unreleased"
    ]
    _edit(
        copy / "CHANGELOG.md",
        "## [Unreleased]\n",
        f"## [Unreleased]\n\n- Migrations: {new} (a new table)\n",
    )
    assert problems(copy) == []


def test_two_heads_are_named(copy: Path) -> None:
    head = _head(copy)
    for new in (f"{int(head) + 1:04d}", f"{int(head) + 2:04d}"):
        (copy / VERSIONS / f"{new}_branch.py").write_text(
            f'revision = "{new}"\ndown_revision = "{head}"\n', encoding="utf-8"
        )
    found = problems(copy)
    assert len(found) == 1
    assert "2 heads" in found[0]
