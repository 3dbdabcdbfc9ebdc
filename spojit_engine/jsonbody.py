"""The one way a request body becomes JSON: bounded nesting and number length, checked on the raw
bytes *before* ``json.loads`` (which recurses once per level and refuses integers of more than
4,300 digits with exceptions a route would turn into a 500) — and no string in it may hold a NUL
or a lone surrogate (``"\\ud800"`` is valid JSON, yet no database driver can store it:
``text.bad_json_text``). Every body the web app parses goes through here: the ``BodyLimit``
middleware for the API's own routes, ``parse_json`` for the workflow webhooks and the Stripe
webhook, which read their raw bytes themselves.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

from spojit_engine.errors import InvalidInput
from spojit_engine.text import bad_json_text

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_OPENERS = frozenset(b"[{")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
# Only a body with one of these escapes can hold a NUL or a surrogate (raw UTF-8 cannot encode one).
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:[dD][89a-fA-F]|0000)")


def check_json_shape(data: bytes, *, depth_max: int, digits_max: int) -> None:
    """``InvalidInput`` when the JSON in ``data`` nests deeper than ``depth_max`` arrays and
    objects, writes a number with more than ``digits_max`` digits in a row (strings excluded), or
    holds a string with a NUL or a lone surrogate. Linear in the size of ``data`` and
    recursion-free; says nothing about other syntax."""
    _check_shape(data, depth_max=depth_max, digits_max=digits_max)
    if _SUSPECT_ESCAPE.search(data):
        try:
            value = json.loads(data.decode("utf-8"))
        except (ValueError, RecursionError):
            return  # not JSON: whoever parses it says so
        _check_strings(value)


def _check_strings(value: Any) -> None:
    problem = bad_json_text(value)
    if problem is not None:
        raise InvalidInput(f"The JSON body holds {problem}; send plain text.")


def _check_shape(data: bytes, *, depth_max: int, digits_max: int) -> None:
    too_long = re.compile(rb"[0-9]{%d}" % (digits_max + 1))
    opened = data.count(b"[") + data.count(b"{")
    if opened <= depth_max and not too_long.search(data):
        return  # the common case: nothing to strip (strings only ever add to these counts)
    bare = _STRING.sub(b'""', data)
    brackets = bare.translate(None, _NOT_BRACKETS)
    if max(accumulate(1 if b in _OPENERS else -1 for b in brackets), default=0) > depth_max:
        raise InvalidInput(
            f"The JSON body nests deeper than {depth_max} levels of arrays and objects."
        )
    if too_long.search(bare):
        raise InvalidInput(f"The JSON body has a number longer than {digits_max} digits.")


def parse_json(data: bytes, *, depth_max: int, digits_max: int) -> Any:
    """The JSON value in ``data`` (UTF-8), or ``InvalidInput`` saying in one sentence what is
    wrong with it."""
    if not data.strip():
        raise InvalidInput("The request body is empty; send a JSON document.")
    _check_shape(data, depth_max=depth_max, digits_max=digits_max)
    try:
        value = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidInput("The request body is not UTF-8 text; send a JSON document.") from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"The request body is not valid JSON: {exc.msg} at character {exc.pos}."
        ) from None
    except (ValueError, RecursionError):  # past the checks above only by a bug: still a 400
        raise InvalidInput("The request body is not JSON this server accepts.") from None
    if _SUSPECT_ESCAPE.search(data):
        _check_strings(value)
    return value
