"""The one JSON body rule: nesting and number length bounded on the raw bytes, strings excluded,
whatever the body's size; the fast path (few brackets, no long digit run) agrees with the slow."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spojit_engine.errors import InvalidInput
from spojit_engine.jsonbody import check_json_shape, parse_json


def depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    return 0


DIGITS_MAX = 30
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**DIGITS_MAX - 1), max_value=10**DIGITS_MAX - 1)
    | st.text(alphabet='[]{}\\"0123456789ab', max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.text(st.characters(exclude_characters="\x00"), max_size=3), inner, max_size=3
        )
    ),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None)
@given(value=values, limit=st.integers(min_value=2, max_value=8))
def test_the_depth_rule_matches_the_documents_real_depth(value: object, limit: int) -> None:
    data = json.dumps(value).encode()
    if depth(value) > limit:
        with pytest.raises(InvalidInput, match="nests deeper"):
            check_json_shape(data, depth_max=limit, digits_max=DIGITS_MAX)
    else:
        check_json_shape(data, depth_max=limit, digits_max=DIGITS_MAX)
        assert parse_json(data, depth_max=limit, digits_max=DIGITS_MAX) == value


def test_long_numbers_are_refused_but_long_digit_strings_are_not() -> None:
    with pytest.raises(InvalidInput, match="longer than 20 digits"):
        parse_json(b'{"n": ' + b"9" * 21 + b"}", depth_max=8, digits_max=20)
    assert parse_json(b'{"s": "' + b"9" * 500 + b'"}', depth_max=8, digits_max=20)["s"] == "9" * 500
    for bad in (b"", b"  ", b"\xff", b"{", b"[" * 100_000 + b"]" * 100_000):
        with pytest.raises(InvalidInput):
            parse_json(bad, depth_max=64, digits_max=20)


texts = st.text(st.characters(exclude_categories=()), max_size=6)  # surrogates and NUL included


@settings(max_examples=300, deadline=None)
@given(value=st.recursive(texts, lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(texts, inner, max_size=3), max_leaves=10))  # fmt: skip
def test_a_string_with_a_nul_or_a_lone_surrogate_is_refused_and_only_that(value: object) -> None:
    """JSON escapes both (``"\\u0000"``, ``"\\ud800"``); neither is text a database stores."""
    data = json.dumps(value).encode()

    def bad(item: object) -> bool:
        if isinstance(item, str):
            return "\x00" in item or any(0xD800 <= ord(c) <= 0xDFFF for c in item)
        if isinstance(item, dict):
            return any(bad(k) or bad(v) for k, v in item.items())
        return isinstance(item, list) and any(bad(v) for v in item)

    for check in (check_json_shape, parse_json):
        if bad(value):
            with pytest.raises(InvalidInput, match=r"NUL|lone surrogate"):
                check(data, depth_max=64, digits_max=DIGITS_MAX)
        else:
            check(data, depth_max=64, digits_max=DIGITS_MAX)
    assert parse_json(b'["\\ud83d\\ude00"]', depth_max=8, digits_max=20) == ["\U0001f600"]
