"""Services hold no SQL: what import-linter cannot say (it forbids modules, not names).

The contract "Services reach the database through store repositories, never table
objects" (pyproject.toml) keeps the table modules out of ``services``; this keeps SQL
constructs (``select``, ``update``, ``func``…) and statement execution out as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

import tierspayant.services

SERVICES = Path(tierspayant.services.__file__).parent
# Types a service may name: the connection it opens and commits, and the errors it maps.
ALLOWED_FROM_SQLALCHEMY = frozenset({"Connection", "Engine"})
EXECUTE = frozenset({"execute", "exec_driver_sql", "executemany"})


def _offences(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "sqlalchemy":
            found += [
                f"{path.name}:{node.lineno}: from sqlalchemy import {alias.name}"
                for alias in node.names
                if alias.name not in ALLOWED_FROM_SQLALCHEMY
            ]
        elif (
            isinstance(node, ast.ImportFrom)
            and (node.module or "").startswith("sqlalchemy.")
            and node.module != "sqlalchemy.exc"
        ):
            found.append(f"{path.name}:{node.lineno}: from {node.module} import …")
        elif isinstance(node, ast.Import):
            found += [
                f"{path.name}:{node.lineno}: import {alias.name}"
                for alias in node.names
                if alias.name.split(".")[0] == "sqlalchemy"
            ]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in EXECUTE
        ):
            found.append(f"{path.name}:{node.lineno}: .{node.func.attr}(…)")
    return found


def test_services_build_and_run_no_sql_statement() -> None:
    offences = [o for path in sorted(SERVICES.rglob("*.py")) for o in _offences(path)]
    assert not offences, "SQL belongs in store/: " + "; ".join(offences)
