"""``make release-check``: the version, the CHANGELOG and the migrations agree.

- ``pyproject.toml``'s version is ``tierspayant.__version__``;
- CHANGELOG.md has a dated entry ``## [<version>] — YYYY-MM-DD``;
- the head of the packaged migrations is named on a ``Migrations`` line of that entry or
  of the ``## [Unreleased]`` entry above it (every migration is announced with its
  upgrade notes), and there is one head.

Run: ``python -m tests.support.release_check`` (exit 1 and one line per problem).
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_ENTRY = re.compile(r"(?m)^## \[([^\]]+)\](.*)$")
_MIGRATION = re.compile(r"\b(\d{4})\b")


def _entries(changelog: str) -> dict[str, tuple[str, str]]:
    """Each entry's heading tail and body, by its name (a version or ``Unreleased``)."""
    found: dict[str, tuple[str, str]] = {}
    marks = list(_ENTRY.finditer(changelog))
    for n, mark in enumerate(marks):
        end = marks[n + 1].start() if n + 1 < len(marks) else len(changelog)
        found[mark.group(1)] = (mark.group(2), changelog[mark.end() : end])
    return found


def _migrations_named(body: str) -> set[str]:
    named: set[str] = set()
    for line in body.splitlines():
        if "Migrations" in line or "migrations" in line:
            named |= set(_MIGRATION.findall(line))
    return named


def _heads(root: Path) -> list[str]:
    versions = root / "src" / "tierspayant" / "store" / "migrations" / "versions"
    revisions: dict[str, set[str]] = {}
    for path in versions.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        revision = re.search(r'(?m)^revision = "([^"]+)"', text)
        if revision is None:
            continue
        down = re.search(r"(?m)^down_revision = (.+)$", text)
        revisions[revision.group(1)] = set(re.findall(r'"([^"]+)"', down.group(1) if down else ""))
    parents = set().union(*revisions.values()) if revisions else set()
    return sorted(set(revisions) - parents)


def problems(root: Path = ROOT) -> list[str]:
    """What disagrees, one sentence each (empty: ready to tag)."""
    found: list[str] = []
    version = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "version"
    ]
    init = (root / "src" / "tierspayant" / "__init__.py").read_text(encoding="utf-8")
    declared = re.search(r'(?m)^__version__ = "([^"]+)"', init)
    if declared is None or declared.group(1) != version:
        found.append(
            f"src/tierspayant/__init__.py says {declared and declared.group(1)!r}, "
            f"pyproject.toml {version!r}"
        )
    changelog_path = root / "CHANGELOG.md"
    entries = (
        _entries(changelog_path.read_text(encoding="utf-8")) if changelog_path.exists() else {}
    )
    if version not in entries:
        found.append(f"CHANGELOG.md has no entry '## [{version}] — YYYY-MM-DD'")
    elif not re.search(r"\d{4}-\d{2}-\d{2}", entries[version][0]):
        found.append(f"CHANGELOG.md's entry {version} has no date")
    heads = _heads(root)
    if len(heads) != 1:
        found.append(f"the migrations have {len(heads)} heads: {', '.join(heads)} (merge them)")
    else:
        named = set()
        for name in ("Unreleased", version):
            if name in entries:
                named |= _migrations_named(entries[name][1])
        if heads[0] not in named:
            found.append(
                f"migration {heads[0]} (the head) is named on no 'Migrations' line of "
                f"CHANGELOG.md's entry {version} or Unreleased"
            )
    return found


def main() -> int:
    found = problems()
    for problem in found:
        print(f"release-check: {problem}", file=sys.stderr)
    if not found:
        print("release-check: version, CHANGELOG and migrations agree")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
