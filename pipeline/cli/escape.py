"""Event strings, shown safely: they are data, and must not drive the terminal or the spreadsheet they land in.

Products, versions, features and goals come from whoever holds a write key
(or the Kafka topic), so the CLI treats every cell as hostile:

* :func:`visible` shows control characters as escapes (``\\x1b``, ``\\u202e``):
  C0 (tab, newline and ESC included), DEL, C1, and the bidi controls
  (U+061C, U+200E-U+200F, U+202A-U+202E, U+2066-U+2069) that reorder what a
  reader sees. ``ESC[2J`` cannot clear the screen, nor ``pay\\u202elapyap``
  pass for another product.
* :func:`table_cell` adds Rich's markup escaping, so ``[/x]`` is text, not a
  closing tag (a ``MarkupError``), and ``[link=...]`` no terminal hyperlink.
* :func:`csv_cell` neutralises formulas (OWASP's CSV injection advice): a text
  cell that starts with ``= + - @`` gets a leading ``'``, unless it is a plain
  number, so ``-3.5`` stays a number (a leading tab or CR is visible already).
"""

from __future__ import annotations

import re

from rich.markup import escape

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_FORMULA_START = ("=", "+", "-", "@")  # a leading tab or CR is already an escape (visible) by then
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def visible(text: str) -> str:
    """``text`` with every control and bidi character written as its Python escape."""
    return _CONTROL.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def table_cell(text: str) -> str:
    """A cell for a Rich table: visible, and never parsed as markup."""
    return escape(visible(text))


def csv_cell(value: object) -> object:
    """A CSV cell: numbers as they are; text visible, and a would-be formula prefixed with ``'``."""
    if not isinstance(value, str):
        return value
    text = visible(value)
    if text.startswith(_FORMULA_START) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text
