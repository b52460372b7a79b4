"""Untrusted text made safe to show: ``html`` for web pages and the report, ``term`` for the terminal.

Reward code, its exceptions and component names, LLM answers, feedback and run files are written by
someone else. Everything rewardgen shows from them goes through one of these two functions, and
nothing else escapes text:

- ``html(x)``: a ``markupsafe.Markup`` with ``& < > " '`` escaped; the Jinja environment of the web
  UI calls it on every ``{{ value }}`` (its ``finalize``), the report and the SVG charts call it
  directly.
- ``term(x)``: text for a terminal. Control characters and escape sequences (``ESC[2J``, ``\\r``,
  ``\\b``, C1 controls, bidi overrides) become visible escapes like ``\\x1b``; with ``markup=True``
  (the default) Rich markup such as ``[link=...]`` is escaped too, for text placed inside a Rich
  markup string or table cell.

Both first replace lone surrogates (``"\\udcff"``, which Python lets into ``str`` from
``surrogateescape`` decoding or ``json`` but no encoder accepts) by visible ``\\udcff`` escapes, so
that printing or encoding the result never raises ``UnicodeEncodeError``.
"""

from __future__ import annotations

import re
from typing import Any

from markupsafe import Markup, escape

_SURROGATE = re.compile("[\ud800-\udfff]")
# C0 controls except newline and tab, DEL, C1 controls, and the bidi/format characters that reorder
# or hide text on a terminal (Trojan-source style).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_CONTROL_TAB = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _visible(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean(x: Any) -> str:
    """``str(x)`` (``""`` for None) with lone surrogates shown as ``\\udXXX``; encodable as UTF-8."""
    text = "" if x is None else x if isinstance(x, str) else str(x)
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def html(x: Any) -> Markup:
    """``x`` as HTML text: surrogates made visible, then ``& < > " '`` escaped. Markup passes as is."""
    if isinstance(x, Markup):
        return x
    return escape(clean(x))


def term(x: Any, *, markup: bool = True, newlines: bool = True) -> str:
    """``x`` safe for a terminal: no control character or escape sequence reaches it raw.

    :param markup: also escape Rich markup (``[bold]``, ``[link=...]``), for text inside a string
        Rich will parse (``console.print(f"... {term(x)}")``, table cells). False for plain ``print``.
    :param newlines: keep newlines and tabs (multi-line messages); False shows them as ``\\n``, ``\\t``
        too (one-line cells, progress descriptions).
    """
    text = clean(x)
    if newlines:
        text = _CONTROL.sub(lambda m: _visible(m.group()), text)
    else:
        text = _CONTROL_TAB.sub(lambda m: _visible(m.group()), text).replace("\n", "\\n")
    if markup:
        from rich.markup import escape as rich_escape

        text = rich_escape(text)
    return text


def one_line(x: Any, limit: int | None = None, *, markup: bool = True) -> str:
    """``term`` on one line (newlines shown as ``\\n``), cut to ``limit`` characters with an ellipsis."""
    text = clean(x)
    if limit is not None and len(text) > limit:
        text = text[: max(0, limit - 1)] + "…"
    return term(text, markup=markup, newlines=False)


__all__ = ["clean", "html", "term", "one_line"]
