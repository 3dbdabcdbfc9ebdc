"""What text this package accepts from outside before it is stored or looked up, written once so
SQLite and PostgreSQL see the same: PostgreSQL refuses a NUL in any text and a value longer than
its column, SQLite stores both, and a lone surrogate (``"\\ud800"``, valid JSON) is not Unicode
text at all — the database driver fails to encode it. So every such value is checked here first
and refused with one sentence (``InvalidInput``), the same on both databases.

- ``check_line``: a name or a short line (a workflow, a node type, a reason): 1 to ``chars_max``
  characters, at least one visible, none of ``FORBIDDEN`` (controls, the invisible format
  characters that hide or reorder text, lone surrogates).
- ``check_lookup``: an identifier only looked up (a run id, a workspace name): at most
  ``chars_max`` characters and none of ``FORBIDDEN``, else ``InvalidInput`` — a lookup of a value
  no row can hold answers "not found" on SQLite and fails on PostgreSQL otherwise.
- ``bad_json_text``: a parsed JSON document's first string (key or value) holding a NUL or a
  lone surrogate, for ``jsonbody``.

``LINE_PATTERN`` is ``check_line``'s rule as a regular expression (ECMA and Python alike), so
the OpenAPI schema states exactly what the server accepts.
"""

from __future__ import annotations

import re
from typing import Any

from spojit_engine.errors import InvalidInput

# C0 and C1 controls and DEL; soft hyphen; the Arabic letter mark; the Mongolian vowel
# separator; zero-width characters and direction marks; line and paragraph separators and the
# bidi embeddings and overrides; word joiners and invisible operators; the byte order mark.
# (Lone surrogates are refused too, by ``_LONE_SURROGATE``: a regex class cannot hold them in
# every engine that reads the schema.)
FORBIDDEN = r"\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff"
LINE_PATTERN = rf"^[^{FORBIDDEN}]*[^\s{FORBIDDEN}][^{FORBIDDEN}]*$"
_FORBIDDEN = re.compile(f"[{FORBIDDEN}]")
_LINE = re.compile(LINE_PATTERN)
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _problem(value: str) -> str | None:
    """What makes ``value`` unstorable text, or None."""
    if _LONE_SURROGATE.search(value):
        return "a lone surrogate (\\ud800-\\udfff), which is not Unicode text"
    found = _FORBIDDEN.search(value)
    if found:
        return f"the invisible or control character U+{ord(found.group()):04X}"
    return None


def check_line(value: Any, *, what: str, chars_max: int) -> str:
    """``value`` if it is a line of 1-``chars_max`` characters with something visible in it and
    no forbidden character; else ``InvalidInput`` naming ``what``."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be text.")
    problem = _problem(value)
    if problem is not None:
        raise InvalidInput(f"{what} holds {problem}; send plain text.")
    if not 0 < len(value) <= chars_max or not _LINE.fullmatch(value):
        raise InvalidInput(f"{what} must be 1-{chars_max} characters of visible text.")
    return value


def check_lookup(value: Any, *, what: str, chars_max: int) -> str:
    """``value`` if it could be stored at all (at most ``chars_max`` characters, nothing
    forbidden); else ``InvalidInput`` naming ``what``."""
    if not isinstance(value, str) or len(value) > chars_max or _problem(value) is not None:
        raise InvalidInput(f"{what} must be at most {chars_max} characters of plain text.")
    return value


def bad_json_text(value: Any) -> str | None:
    """What is wrong with the first string (key or value) in a parsed JSON document that holds
    a NUL or a lone surrogate, or None."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "a NUL character (\\u0000)"
            if _LONE_SURROGATE.search(item):
                return "a lone surrogate (\\ud800-\\udfff), which is not Unicode text"
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None
