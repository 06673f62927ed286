"""What every command line of the project shares: how its help shows defaults, and options given on either side of a
subcommand.

Why: argparse's ``ArgumentDefaultsHelpFormatter`` appends ``(default: %(default)s)`` to every option, so an option
whose help already says what happens without it read ``(default: the folder the crawl recorded) (default: None)``,
a list read ``['leaf', 'parent']`` (Python's repr, not what one types) and a flag ``(default: False)``. And an
option defined on the main parser is refused after a subcommand (``models list --db X``: "unrecognized
arguments"), while one defined on a subcommand is refused before it: people type both.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import partial

__all__ = ["HelpFormatter", "default_text", "help_with_default", "subcommands"]


def default_text(default: object) -> str | None:
    """A default as a person would type it on the command line; None where nothing is worth showing (no value, an
    off switch, an empty list or string: the option's help says what its absence means).

    >>> default_text(["leaf", "parent"]), default_text(0.98), default_text(None), default_text(False)
    ('leaf,parent', '0.98', None, None)
    """
    if default is None or default is False or default is argparse.SUPPRESS:
        return None
    if isinstance(default, list | tuple):
        default = ",".join(map(str, default))
    return str(default) or None


def help_with_default(action: argparse.Action) -> str | None:
    """An option's help with its default (``default_text``) appended, unless there is none to show or the help
    already speaks of it (in words, "default: ...", or with argparse's ``%(default)s``)."""
    shown = default_text(action.default)
    if isinstance(action, argparse.BooleanOptionalAction) and action.default is True:
        shown = action.option_strings[0]  # "(default: --access-log)", not "(default: True)"
    if shown is None or action.help == argparse.SUPPRESS or "default" in (action.help or "").lower():
        return action.help
    return f"{action.help or ''} (default: {shown.replace('%', '%%')})"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``ArgumentDefaultsHelpFormatter`` that shows each default once and as typed (``help_with_default``): not where
    the help already says it, not ``None`` or ``False``, a list comma-joined."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        return help_with_default(action)


def subcommands(parser: argparse.ArgumentParser, shared: Callable[[argparse.ArgumentParser], None],
                **kwargs: object) -> argparse._SubParsersAction:
    """``parser.add_subparsers(**kwargs)``, with the options ``shared`` defines (``--db``) accepted before the
    subcommand and after it: ``prog --db X list`` and ``prog list --db X`` are the same command.

    ``shared`` defines them twice: on ``parser``, with their defaults, and on a parent of every subcommand with the
    default ``argparse.SUPPRESS``, so that a subcommand given no value leaves the one given before it (or the
    default) standing instead of overwriting it. Given on both sides, the value after the subcommand wins. Every
    subcommand's help shows the defaults too, and uses ``HelpFormatter``."""
    shared(parser)
    after = argparse.ArgumentParser(add_help=False)
    shared(after)
    for action in after._actions:  # argparse has no public list of a parser's actions
        action.help = help_with_default(action)  # the help shows the default that SUPPRESS hides from argparse
        action.default = argparse.SUPPRESS
    return parser.add_subparsers(
        parser_class=partial(argparse.ArgumentParser, parents=[after], formatter_class=HelpFormatter), **kwargs)
