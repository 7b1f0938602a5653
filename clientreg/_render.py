"""Terminal output that an authorization server cannot write into.

The CLI prints what servers said (error descriptions, client IDs, scopes, discovery documents). Rich
would read ``[/red]`` in such a string as markup and crash on it, render ``[link=…]`` as a clickable,
spoofed link, turn ``:smile:`` into an emoji, and pass ESC (CSI sequences that rewrite the screen) and
bidi overrides straight to the terminal. :class:`SafeConsole` turns markup and emoji off and passes every
string it renders (``print`` arguments, table cells, titles) through :func:`clientreg.errors.printable`,
so no call site has to remember to escape; styled text is built as :class:`rich.text.Text` instead.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, Literal

from rich.console import Console
from rich.style import Style
from rich.text import Text

from .errors import printable

__all__ = ["SafeConsole", "console", "env_line", "error_line"]


class SafeConsole(Console):
    """A rich Console with markup and emoji off, escaping control and bidi characters in every string."""

    def render_str(self, text: str, *, style: str | Style = "",
                   justify: Literal["default", "left", "center", "right", "full"] | None = None,
                   overflow: Literal["fold", "crop", "ellipsis", "ignore"] | None = None,
                   emoji: bool | None = None, markup: bool | None = None, highlight: bool | None = None,
                   highlighter: Callable[[str | Text], Text] | None = None) -> Text:
        # markup/emoji requested per call are ignored too: no string printed here is trusted.
        return super().render_str(printable(text), style=style, justify=justify, overflow=overflow, emoji=False,
                                  markup=False, highlight=highlight, highlighter=highlighter)


    def print_json(self, json: str | None = None, *, data: Any = None, indent: int | str | None = 2,
                   highlight: bool = True, skip_keys: bool = False, ensure_ascii: bool = False,
                   check_circular: bool = True, allow_nan: bool = True, default: Callable[[Any], Any] | None = None,
                   sort_keys: bool = False) -> None:
        # Rich re-serialises with ensure_ascii=False by default, which would let U+202E through as itself.
        super().print_json(json, data=data, indent=indent, highlight=highlight, skip_keys=skip_keys,
                           ensure_ascii=True, check_circular=check_circular, allow_nan=allow_nan, default=default,
                           sort_keys=sort_keys)


def console(*, stderr: bool = False) -> SafeConsole:
    """The CLI's console for stdout or stderr; piped output gets a wide table, not rich's 80 columns."""
    tty = (sys.stderr if stderr else sys.stdout).isatty()
    return SafeConsole(stderr=stderr, highlight=False, markup=False, emoji=False, soft_wrap=True,
                       width=None if tty else 200)


def error_line(message: object) -> Text:
    """``error: <message>`` with the prefix in red and the message as plain, escaped text."""
    return Text.assemble(("error:", "red"), " ", printable(str(message)))


#: Printed exactly as issued: the user asked for them by name, and escaping would change the credential.
_SECRETS = frozenset({"client_secret", "private_key"})


def env_line(key: str, value: str) -> str:
    """``KEY='value'`` for ``credentials -o env``: shell-quoted, and escaped unless it is a secret (an AS can
    no longer issue a secret with control characters: clientreg.issued)."""
    shown = value if key in _SECRETS else printable(value)
    return f"{key.upper()}='" + shown.replace("'", "'\"'\"'") + "'"
