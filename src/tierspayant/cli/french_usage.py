"""The command line's own words in French: usage line, the help option, usage errors.

Typer draws help pages and usage errors with the Click it carries inside, whose texts are
English and not translatable (plain strings, no gettext). The help pages' panel titles are
set in ``cli/main.py``; this module does the rest:

- the usage line reads ``Utilisation : tierspayant …`` (the formatter's default prefix);
- ``--help`` is described as ``Afficher cette aide et quitter.``;
- a usage error (unknown option or command, missing option or argument, a value of the
  wrong type, an extra argument) is raised again as the same kind of error with a French
  sentence: :func:`french_usage_error`, applied by the root command (``FailureGroup``).

Messages of an unknown shape keep Click's English rather than lose what they say.
"""

from __future__ import annotations

import re
from typing import Any

from typer._click import core as click_core
from typer._click import exceptions as click_errors
from typer._click import formatting as click_formatting

USAGE_PREFIX = "Utilisation : "
HELP_TEXT = "Afficher cette aide et quitter."

_KINDS = {"option": "l'option", "argument": "l'argument", "parameter": "le paramètre"}

# Click's English sentences (after its own formatting) and their French.
_SENTENCES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.S), french)
    for pattern, french in (
        (r"No such option: (?P<a>.+)", "option inconnue : {a}"),
        (r"No such command (?P<a>.+)\.", "commande inconnue : {a}"),
        (r"Missing command\.", "commande manquante"),
        (r"Option (?P<a>'[^']+') requires an argument\.", "l'option {a} attend une valeur"),
        (
            r"Option (?P<a>'[^']+') requires (?P<b>\d+) arguments\.",
            "l'option {a} attend {b} valeurs",
        ),
        (r"Option (?P<a>'[^']+') does not take a value\.", "l'option {a} ne prend pas de valeur"),
        (
            r"Got unexpected extra arguments? \((?P<a>.*)\)",
            "argument en trop : {a}",
        ),
        (
            r"Value (?P<a>.+) is not a valid (?P<b>\w+)\.",
            "la valeur {a} n'est pas valide ({b} attendu)",
        ),
        (r"(?P<a>.+) is not one of (?P<b>.+)\.", "{a} n'est pas l'une des valeurs {b}"),
        (r"(?P<a>.+) is not (?P<b>'[^']+')\.", "{a} n'est pas {b}"),
        (r"(?P<a>.+) (?P<b>'[^']+') does not exist\.", "{b} n'existe pas"),
        (r"(?P<a>.+) (?P<b>'[^']+') is a file\.", "{b} est un fichier"),
        (r"(?P<a>.+) (?P<b>'[^']+') is a directory\.", "{b} est un dossier"),
        (r"(?P<a>.+) (?P<b>'[^']+') is not readable\.", "{b} n'est pas lisible"),
        (r"(?P<a>.+) (?P<b>'[^']+') is not writable\.", "{b} n'est pas accessible en écriture"),
    )
)


def french_sentence(message: str) -> str:
    """The French of one of Click's usage messages; the message itself if unknown."""
    for pattern, french in _SENTENCES:
        found = pattern.fullmatch(message.strip())
        if found is not None:
            return french.format(**found.groupdict())
    return message


def _hint(error: click_errors.BadParameter) -> str:
    if error.param_hint is not None:
        hint = error.param_hint
        return hint if isinstance(hint, str) else " / ".join(f"'{h}'" for h in hint)
    if error.param is not None:
        return str(error.param.get_error_hint())
    return ""


def french_usage_error(error: click_errors.UsageError) -> click_errors.UsageError:
    """``error`` said in French, as a usage error of the same context (same exit status 2,
    same usage line and help hint)."""
    if isinstance(error, click_errors.MissingParameter):
        kind = error.param_type
        if kind is None and error.param is not None:
            kind = error.param.param_type_name
        what = _KINDS.get(kind or "parameter", "le paramètre")
        text = f"{what} {_hint(error)} est obligatoire".replace("  ", " ")
    elif isinstance(error, click_errors.NoSuchOption):
        text = f"option inconnue : {error.option_name}"
        if error.possibilities:
            text += f" (vouliez-vous dire {', '.join(sorted(error.possibilities))} ?)"
    elif isinstance(error, click_errors.BadParameter):
        hint = _hint(error)
        detail = french_sentence(error.message)
        text = f"valeur invalide pour {hint} : {detail}" if hint else f"valeur invalide : {detail}"
    else:
        text = french_sentence(error.message)
    french = click_errors.UsageError(text[:1].upper() + text[1:] + ".", error.ctx)
    french.exit_code = error.exit_code
    return french


class _FrenchFormatter(click_formatting.HelpFormatter):
    def write_usage(self, prog: str, args: str = "", prefix: str | None = None) -> None:
        super().write_usage(prog, args, USAGE_PREFIX if prefix is None else prefix)


_help_option = click_core.Command.get_help_option


def _french_help_option(self: click_core.Command, ctx: Any) -> Any:
    option = _help_option(self, ctx)
    if option is not None:
        option.help = HELP_TEXT
    return option


def install() -> None:
    """Put the French usage line and help option text in place (idempotent)."""
    click_core.Context.formatter_class = _FrenchFormatter
    click_core.Command.get_help_option = _french_help_option  # type: ignore[method-assign]
