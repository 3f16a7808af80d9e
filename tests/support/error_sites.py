"""Where the source raises coded errors, read from its syntax tree (no import of the sites).

A *coded error class* is a subclass of ``DomainError`` or ``SecurityError`` whose
constructor takes the code first (``CardProofError`` and ``GuardUnavailable`` fix their
own). A *site* is a call of one of these classes, by name, anywhere under ``src/``.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import tierspayant
from tierspayant.domain.codes import REGISTRIES, ErrorCode
from tierspayant.domain.errors import DomainError
from tierspayant.security import SecurityError

SRC = Path(tierspayant.__file__).parent


def _all_subclasses(base: type) -> Iterator[type]:
    sub: type
    for sub in base.__subclasses__():
        yield sub
        yield from _all_subclasses(sub)


def coded_error_classes() -> dict[str, type[Exception]]:
    """Every coded error class of the package, by class name (names are unique)."""
    for module in pkgutil.walk_packages(tierspayant.__path__, "tierspayant."):
        if ".migrations" not in module.name:  # Alembic scripts run only under Alembic
            importlib.import_module(module.name)
    found: dict[str, type[Exception]] = {}
    for base in (DomainError, SecurityError):
        for cls in (base, *_all_subclasses(base)):
            if not cls.__module__.startswith("tierspayant."):
                continue
            params = list(inspect.signature(cls).parameters)
            if params and params[0] == "code":
                assert found.get(cls.__name__, cls) is cls, f"two classes named {cls.__name__}"
                found[cls.__name__] = cls
    return found


MEMBERS: dict[str, ErrorCode] = {
    f"{registry.__name__}.{member.name}": member for registry in REGISTRIES for member in registry
}
"""``"AuthCode.FORBIDDEN"`` → the member, as written at a site."""


@dataclass(frozen=True)
class Site:
    path: str  # relative to src/tierspayant
    line: int
    cls: str
    first: ast.expr | None

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def member(self) -> ErrorCode | None:
        """The registry member written as the first argument, if it is written so."""
        return MEMBERS.get(ast.unparse(self.first)) if self.first is not None else None

    @property
    def bare_string(self) -> bool:
        """The code is a string built in place: a literal, an f-string, a concatenation."""
        node = self.first
        if isinstance(node, ast.Constant):
            return isinstance(node.value, str)
        return isinstance(node, ast.JoinedStr | ast.BinOp) or (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Constant)
        )


def sites(classes: dict[str, type[Exception]], root: Path = SRC) -> list[Site]:
    """Every call of a coded error class under ``root``."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name in classes:
                first = node.args[0] if node.args else None
                if first is None:
                    first = next((k.value for k in node.keywords if k.arg == "code"), None)
                rel = path.relative_to(root).as_posix()
                found.append(Site(rel, node.lineno, name, first))
    return found
