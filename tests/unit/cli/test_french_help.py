"""Every ``tierspayant … --help`` text is present and in French: the command tree is walked,
each command's help and each option's and argument's help checked for English words."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from tierspayant.cli.main import app

# Typer's own options, whose texts come with the framework.
FRAMEWORK_PARAMS = frozenset({"help", "install_completion", "show_completion"})
ENGLISH = re.compile(
    r"\b(the|and|of|to|with|is|are|for|from|this|that|only|not|when|which|its|into|"
    r"run|create|list|show|write|record|delete|check|set|add|remove|read|every|each|"
    r"file|files|insurer|insurers|providers|grant|number|default|directory|key)\b",
    re.IGNORECASE,
)
# Option names, paths, code spans and placeholders are not prose.
NOT_PROSE = re.compile(r"--?[\w-]+|<[^>]*>|[\w.]+/[\w./<>-]*|\b\w+_\w+\b|\w+:\w+")


def commands() -> Iterator[tuple[str, Any]]:
    root = typer.main.get_command(app)

    def walk(command: Any, path: str) -> Iterator[tuple[str, Any]]:
        yield path, command
        for name, sub in sorted((getattr(command, "commands", None) or {}).items()):
            yield from walk(sub, f"{path} {name}")

    yield from walk(root, "tierspayant")


def texts() -> Iterator[tuple[str, str]]:
    for path, command in commands():
        yield f"{path} (aide)", command.help or ""
        for param in command.params:
            if param.name in FRAMEWORK_PARAMS:
                continue
            yield f"{path} {param.name}", getattr(param, "help", None) or ""


def english_words(text: str) -> list[str]:
    return ENGLISH.findall(NOT_PROSE.sub(" ", text))


def test_the_walk_sees_the_whole_tree() -> None:
    paths = {path for path, _ in commands()}
    assert {"tierspayant demo", "tierspayant import beneficiaries", "tierspayant pay"} <= paths
    assert len(paths) > 80


@pytest.mark.parametrize(("where", "text"), list(texts()))
def test_every_help_text_is_present_and_french(where: str, text: str) -> None:
    assert text.strip(), f"{where}: no help text"
    assert english_words(text) == [], f"{where}: {text!r}"


@pytest.mark.parametrize(
    "text",
    ["Run the import for this insurer", "Create the keyring", "List the insurers."],
)
def test_the_check_catches_english(text: str) -> None:
    assert english_words(text)


def test_a_help_page_reads_in_french() -> None:
    page = CliRunner().invoke(app, ["import", "beneficiaries", "--help"], terminal_width=120)
    assert page.exit_code == 0, page.output
    assert "Importer le fichier des bénéficiaires" in page.stdout
    assert "[obligatoire]" in page.stdout
