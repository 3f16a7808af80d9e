"""Every error code is a registry member, raised as one, and documented with its statuses.

Given the registries of ``domain/codes.py``, the source under ``src/`` and
``docs/error-codes.md``: the page lists exactly the registries' members, each with the
statuses its raise sites produce and, where the portals show their own sentence, that
sentence; and no raise site writes its code as a bare string.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.support.error_sites import MEMBERS, Site, coded_error_classes, sites
from tierspayant.api.errors import http_status
from tierspayant.cli.common import exit_code
from tierspayant.domain.codes import REGISTRIES, ErrorCode, GuardCode
from tierspayant.domain.errors import DomainError
from tierspayant.domain.messages import ERROR_MESSAGES
from tierspayant.security.guard import judging as guard_judging
from tierspayant.security.guard.values import THROTTLE_CODES, UNAVAILABLE
from tierspayant.web.render import MESSAGES, french_message

PAGE = Path(__file__).parents[3] / "docs" / "error-codes.md"
ROW = re.compile(
    r"^\| `(?P<code>[a-z0-9_.]+)` \| (?P<http>[^|]+) \| (?P<cli>[^|]+) \|[^|]+\|(?P<fr>[^|]+)\|$"
)


def documented(text: str) -> dict[str, dict[str, str]]:
    rows: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        match = ROW.match(line.strip())
        if match:
            code = match["code"]
            assert code not in rows, f"{code} is documented twice"
            rows[code] = {k: v.strip() for k, v in match.groupdict().items()}
    return rows


def cell(values: str) -> set[str]:
    return {v.strip() for v in values.split(",")}


@pytest.fixture(scope="module")
def rows() -> dict[str, dict[str, str]]:
    return documented(PAGE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def classes() -> dict[str, type[Exception]]:
    return coded_error_classes()


@pytest.fixture(scope="module")
def all_sites(classes: dict[str, type[Exception]]) -> list[Site]:
    return sites(classes)


def registered() -> set[str]:
    return {member.value for registry in REGISTRIES for member in registry}


def test_registries_are_every_error_code_enum_and_values_are_unique() -> None:
    # Given every subclass of ErrorCode
    subclasses = set(ErrorCode.__subclasses__())
    # Then each is listed in REGISTRIES, once, and no value belongs to two registries
    assert subclasses == set(REGISTRIES)
    values = [member.value for registry in REGISTRIES for member in registry]
    assert len(values) == len(set(values))
    assert all(re.fullmatch(r"[a-z0-9_]+(\.[a-z0-9_]+)+", v) for v in values)


def test_the_page_documents_exactly_the_registered_codes(rows: dict[str, dict[str, str]]) -> None:
    # Given the codes of the page and the members of the registries
    on_page = set(rows)
    in_code = registered()
    # Then neither has a code the other lacks
    assert in_code - on_page == set(), "registered but not documented"
    assert on_page - in_code == set(), "documented but not registered"


def test_the_page_parser_sees_a_missing_and_an_unknown_code(
    rows: dict[str, dict[str, str]],
) -> None:
    # Given the page with one row removed and one row made up
    text = PAGE.read_text(encoding="utf-8")
    text = "\n".join(line for line in text.splitlines() if not line.startswith("| `nir.key`"))
    text += "\n| `nir.made_up` | 422 | 2 | Invented. | Inventé. |\n"
    # Then the parser reports both differences
    changed = set(documented(text))
    assert set(rows) - changed == {"nir.key"}
    assert changed - set(rows) == {"nir.made_up"}


def test_labels_of_the_portal_sentences_are_the_sentences(
    rows: dict[str, dict[str, str]],
) -> None:
    # Given the sentences the portals show for some codes
    for code, sentence in MESSAGES.items():
        # Then the page gives that very sentence as the code's French label
        assert rows[code]["fr"] == sentence, code
    assert all(row["fr"] for row in rows.values())


def test_every_code_has_the_french_sentence_the_page_gives(
    rows: dict[str, dict[str, str]],
) -> None:
    # Given the French sentences people read for refusals (portals, command line)
    registered = {m.value for registry in REGISTRIES for m in registry}
    # Then every registered code has one, and it is the page's sentence
    assert set(ERROR_MESSAGES) == registered
    different = {
        c: (ERROR_MESSAGES[c], rows[c]["fr"])
        for c in registered
        if ERROR_MESSAGES[c] != rows[c]["fr"]
    }
    assert not different


def test_the_portals_fall_back_on_the_codes_french_sentence() -> None:
    # Given a code the portals have no sentence of their own for
    code = next(
        c
        for c in ERROR_MESSAGES
        if c not in MESSAGES and not c.startswith(("nir", "identifier", "guard."))
    )
    # Then the page shows the code's French sentence, not a generic refusal
    assert french_message(DomainError(code, "english")) == ERROR_MESSAGES[code]


def test_documented_statuses_are_those_of_the_raise_sites(
    rows: dict[str, dict[str, str]],
    classes: dict[str, type[Exception]],
    all_sites: list[Site],
) -> None:
    # Given every site that raises a domain error with a registry member
    checked = 0
    for site in all_sites:
        member, cls = site.member, classes[site.cls]
        if member is None or not issubclass(cls, DomainError):
            continue
        error = cls.__new__(cls)
        row = rows[member.value]
        # Then the page lists the HTTP status of its class (unless only the CLI raises it)
        if not site.path.startswith("cli/"):
            assert str(http_status(error)) in cell(row["http"]), (site.where, row)
        # And the exit status (unless only the API or the portals raise it)
        if not site.path.startswith(("api/", "web/")):
            assert str(exit_code(error)) in cell(row["cli"]), (site.where, row)
        checked += 1
    assert checked > 300


def test_guard_refusals_are_documented_with_their_status(rows: dict[str, dict[str, str]]) -> None:
    # Given the codes the guard refuses a lookup with (the lookup raises them as variables)
    refusals = set(guard_judging._CALLER_MESSAGES) | {UNAVAILABLE}
    for code in refusals:
        # Then each is a GuardCode, documented 429 when a retry may pass, else 403 / 503
        assert GuardCode(code)
        expected = "429" if code in THROTTLE_CODES else "503" if code == UNAVAILABLE else "403"
        assert rows[code]["http"] == expected, code


def test_no_raise_site_writes_its_code_as_a_string(all_sites: list[Site]) -> None:
    # Given every call of a coded error class under src/
    bare = {site.where for site in all_sites if site.bare_string}
    # Then none builds its code from a string in place
    assert bare == set()


def test_the_site_scan_sees_a_bare_string_code(
    tmp_path: Path, classes: dict[str, type[Exception]]
) -> None:
    # Given a module that raises with a literal, an f-string and a registry member
    (tmp_path / "bad.py").write_text(
        "def f(kind):\n"
        "    raise NotFound('claim.unknown', 'no such claim')\n"
        "def g(kind):\n"
        "    raise InvalidIdentifier(f'{kind}.empty', 'empty')\n"
        "def h():\n"
        "    raise Conflict(ClaimCode.CANCELLED, 'cancelled')\n"
    )
    # When the scan reads it
    found = sites(classes, tmp_path)
    # Then the first two are bare strings and the third is the member
    assert [s.bare_string for s in found] == [True, True, False]
    assert found[2].member == MEMBERS["ClaimCode.CANCELLED"]
    assert found[0].first is not None
    assert ast.unparse(found[0].first) == "'claim.unknown'"
