"""axe-core in the portals' pages: inject it, run the WCAG 2.1 A/AA rules, report.

axe-core is pinned in ``tools/a11y/package-lock.json`` and installed by ``npm ci`` there
(``make a11y-deps``; ``.ci/run`` and ``make test`` do it when it is absent). Playwright
adds ``axe.min.js`` to the page as a script tag: the portals' Content-Security-Policy
forbids that, so only the sweep's browser contexts are opened with ``bypass_csp``.

A sweep records, for each page and state it checks, every violation axe reports; the
test fails on the ``serious`` and ``critical`` ones and prints their rule id, impact,
target and help. Every count goes to ``tests/browser/artifacts/accessibility.json``.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from playwright.sync_api import Page

from tests.browser import keyboard
from tests.conftest import services_required

ROOT = Path(__file__).resolve().parents[2]
AXE_DIR = ROOT / "tools" / "a11y"
AXE_JS = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
# The success criteria of WCAG 2.0 and 2.1, levels A and AA (TIERSPAYANT_A11Y_TAGS=…,
# e.g. with best-practice, widens them for a look around).
TAGS = tuple(os.environ.get("TIERSPAYANT_A11Y_TAGS", "wcag2a,wcag2aa,wcag21a,wcag21aa").split(","))
BLOCKING = frozenset({"serious", "critical"})
IMPACTS = ("critical", "serious", "moderate", "minor")
# The whole sweep (every state of every page) when set to 1; CI runs the main states.
FULL = os.environ.get("TIERSPAYANT_A11Y_FULL") == "1"

RUN = """(tags) => axe.run(document, {
  runOnly: {type: 'tag', values: tags},
  resultTypes: ['violations'],
})"""


def axe_script() -> Path:
    """``axe.min.js``, or a skip (a failure in CI) saying how to install it."""
    if not AXE_JS.exists():
        message = f"axe-core is not installed: run `npm ci` in {AXE_DIR} (or `make a11y-deps`)"
        if services_required():
            pytest.fail(message)
        pytest.skip(message)
    return AXE_JS


def axe_version() -> str:
    meta = json.loads((AXE_JS.parent / "package.json").read_text(encoding="utf-8"))
    return str(meta["version"])


@dataclass(frozen=True, slots=True)
class Violation:
    rule: str
    impact: str
    help: str
    targets: tuple[str, ...]

    def describe(self) -> str:
        where = ", ".join(self.targets[:5]) + (" …" if len(self.targets) > 5 else "")
        return f"{self.rule} [{self.impact}] {self.help} — {where}"


@dataclass(frozen=True, slots=True)
class Checked:
    route: str  # the route's path as declared (with its {parameters})
    state: str  # in French words: "formulaire vide", "erreurs", "résultat"…
    violations: tuple[Violation, ...]
    review: tuple[str, ...] = ()  # rules axe could not decide ("incomplete"): by hand

    @property
    def blocking(self) -> tuple[Violation, ...]:
        return tuple(v for v in self.violations if v.impact in BLOCKING)


def _violations(raw: Iterable[dict[str, Any]]) -> tuple[Violation, ...]:
    found = []
    for item in raw:
        targets = tuple(" ".join(map(str, node["target"])) for node in item["nodes"])
        found.append(Violation(item["id"], str(item["impact"]), item["help"], targets))
    return tuple(found)


def route_pattern(route: str) -> re.Pattern[str]:
    """The paths a route answers: each ``{parameter}`` is one path segment."""
    parts = re.split(r"(\{[^}]+\})", route)
    return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts))


@dataclass
class Sweep:
    """The pages and states one portal's sweep checked in one browser context."""

    name: str
    base: str  # the site's URL
    page: Page
    script: Path
    checked: list[Checked] = field(default_factory=list)

    def check(self, route: str, state: str, *, host: str | None = None) -> Checked:
        """Run axe on the page as it is now, at ``route``'s path or at ``host``: the page
        a fragment is loaded into, or the address a form posted to."""
        path = urlsplit(self.page.url).path
        expected = host or route
        assert route_pattern(expected).fullmatch(path), f"{route} ({state}): the page is {path}"
        if not self.page.evaluate("() => typeof window.axe === 'object'"):
            self.page.add_script_tag(path=str(self.script))
        raw = self.page.evaluate(RUN, list(TAGS))
        found = list(_violations(raw["violations"]))
        # The Tab walk: on every state in the full sweep, on each page's first in CI.
        walk = FULL or route not in self.routes()
        if walk and (faults := keyboard.unfocusable_stops(self.page)):
            found.append(Violation(keyboard.RULE, "serious", keyboard.HELP, tuple(faults)))
        review = tuple(sorted({str(item["id"]) for item in raw["incomplete"]}))
        result = Checked(route, state, tuple(found), review)
        self.checked.append(result)
        return result

    def go(self, path: str) -> Page:
        self.page.goto(self.base + path)
        return self.page

    def visit(self, path: str, state: str, *, route: str | None = None) -> Checked:
        """Open ``path`` and check it (``route``: the route's path, when not ``path``'s)."""
        self.go(path)
        return self.check(route or path.split("?")[0], state)

    def routes(self) -> set[str]:
        return {c.route for c in self.checked}

    def failures(self) -> str:
        lines = []
        for c in self.checked:
            for v in c.blocking:
                lines.append(f"{c.route} ({c.state}): {v.describe()}")
        return "\n".join(lines)


def portal_get_routes(app: FastAPI) -> dict[str, str]:
    """Every GET route under /portail/ with its policy (``public``, ``provider``…)."""
    found: dict[str, str] = {}
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        path = str(context.path)
        get = isinstance(route, APIRoute) and "GET" in (route.methods or ())
        if get and path.startswith("/portail"):
            assert isinstance(route, APIRoute)
            extra = route.openapi_extra or {}
            found[path] = str(extra.get("x-policy"))
    return found


def counts(checked: Iterable[Checked]) -> Iterator[dict[str, Any]]:
    """One record per page state: violations (nodes) per impact and per rule."""
    for c in checked:
        impacts = Counter(v.impact for v in c.violations for _ in v.targets)
        rules = Counter({f"{v.rule} [{v.impact}]": len(v.targets) for v in c.violations})
        yield {
            "route": c.route,
            "state": c.state,
            "impacts": {i: impacts[i] for i in IMPACTS if impacts[i]},
            "rules": dict(sorted(rules.items())),
            "needs_review": list(c.review),
        }


def write_report(path: Path, sweep: Sweep, seconds: float) -> None:
    """Add (or replace) the sweep's records in the JSON report at ``path``."""
    report: dict[str, Any] = {}
    if path.exists():
        report = json.loads(path.read_text(encoding="utf-8"))
    report[sweep.name] = {
        "axe_core": axe_version(),
        "tags": list(TAGS),
        "full": FULL,
        "seconds": round(seconds, 1),
        "pages": list(counts(sweep.checked)),
    }
    path.write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
