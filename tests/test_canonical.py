"""Tests for ledger.core.canonical: RFC 8785 known answers, agreement with the rfc8785 package,
round trips through parse_json, and one test per refusal."""

from __future__ import annotations

import collections
import datetime
import decimal
import enum
import json
import math
import struct
from typing import Any

import orjson
import pytest
import rfc8785
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ledger.core.canonical import (
    MAX_DEPTH,
    MAX_SAFE_INTEGER,
    canonical_bytes,
    check_value,
    parse_json,
)
from ledger.core.errors import MalformedInput

# ----------------------------------------------------------------------------- known answers

# RFC 8785 §3.2.3, the sorting example: member names are ordered by UTF-16 code units, so
# the emoji (lead surrogate U+D83D) sorts before U+FB33 although its code point is higher.
RFC_SORTING_INPUT = r"""{
  "\u20ac": "Euro Sign",
  "\r": "Carriage Return",
  "\ufb33": "Hebrew Letter Dalet With Dagesh",
  "1": "One",
  "\ud83d\ude00": "Emoji: Grinning Face",
  "\u0080": "Control",
  "\u00f6": "Latin Small Letter O With Diaeresis"
}"""
RFC_SORTING_ORDER = [
    "Carriage Return",
    "One",
    "Control",
    "Latin Small Letter O With Diaeresis",
    "Euro Sign",
    "Emoji: Grinning Face",
    "Hebrew Letter Dalet With Dagesh",
]
RFC_SORTING_OUTPUT = (
    '{"\\r":"Carriage Return","1":"One","\u0080":"Control",'
    '"\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign",'
    '"\U0001f600":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}'
).encode()

# RFC 8785 §3.2.2 input and §3.2.4 result (numbers, literals and string escaping).
RFC_VALUES_INPUT = r"""{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}"""
RFC_VALUES_OUTPUT = (
    r'{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
    r""""string":"€$\u000f\nA'B\"\\\\\"/"}"""
).encode()

# RFC 8785 Appendix B: IEEE 754 bit patterns and their JCS number text.
RFC_NUMBERS = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


def _double(bits: str) -> float:
    value: float = struct.unpack(">d", bytes.fromhex(bits))[0]
    return value


EVENT: dict[str, Any] = {
    "type": "ObjectEvent",
    "eventTime": "2024-05-14T08:30:00.000+08:00",
    "eventTimeZoneOffset": "+08:00",
    "epcList": ["urn:epc:id:sgtin:6901234.012345.1001"],
    "action": "OBSERVE",
    "bizStep": "shipping",
    "disposition": "in_transit",
    "readPoint": {"id": "urn:epc:id:sgln:6901234.00001.0"},
    "bizTransactionList": [{"type": "po", "bizTransaction": "urn:epcglobal:cbv:bt:6901234000017:PO-4711"}],
    "quantityList": [{"epcClass": "urn:epc:class:lgtin:6901234.012345.L42", "quantity": 120, "uom": "KGM"}],
    "sensorElementList": [{"sensorReport": [{"type": "Temperature", "value": 4, "uom": "CEL"}]}],
}


def test_rfc8785_sorting_example_from_text() -> None:
    value = parse_json(RFC_SORTING_INPUT)
    out = canonical_bytes(value)
    assert out == RFC_SORTING_OUTPUT
    assert list(parse_json(out).values()) == RFC_SORTING_ORDER


def test_rfc8785_sorting_example_is_utf16_order_not_code_point_order() -> None:
    value = parse_json(RFC_SORTING_INPUT)
    assert check_value(value) is False  # non-ASCII keys: the orjson path must not be taken
    # orjson sorts by code point, which puts U+FB33 before the emoji: not JCS.
    assert orjson.dumps(value, option=orjson.OPT_SORT_KEYS) != RFC_SORTING_OUTPUT
    assert canonical_bytes({"\ue000": 1, "\U00010000": 2}) == '{"\U00010000":2,"\ue000":1}'.encode()


def test_rfc8785_values_example() -> None:
    value = parse_json(RFC_VALUES_INPUT)
    assert check_value(value) is False  # it has floats
    assert canonical_bytes(value) == RFC_VALUES_OUTPUT
    assert canonical_bytes(value) == rfc8785.dumps(value)


@pytest.mark.parametrize(("bits", "text"), RFC_NUMBERS)
def test_rfc8785_appendix_b_numbers(bits: str, text: str) -> None:
    number = _double(bits)
    # fast=False skips check_value, which refuses the integral floats of 2^53..1e21 (below).
    assert canonical_bytes(number, fast=False) == text.encode()
    assert canonical_bytes([number], fast=False) == f"[{text}]".encode()


@pytest.mark.parametrize("bits", ["7fffffffffffffff", "7ff0000000000000", "fff0000000000000"])
def test_rfc8785_appendix_b_nan_and_infinity_are_refused(bits: str) -> None:
    with pytest.raises(MalformedInput, match="cannot represent"):
        canonical_bytes({"n": _double(bits)})
    with pytest.raises(MalformedInput, match="cannot be canonicalised"):
        canonical_bytes(_double(bits), fast=False)


@pytest.mark.parametrize(
    ("number", "text"),
    [
        (1e30, b"1e+30"),
        (4.50, b"4.5"),
        (2e-3, b"0.002"),
        (1e-7, b"1e-7"),
        (1e-6, b"0.000001"),
        (-0.0, b"0"),
        (1.0, b"1"),
        (-1.5, b"-1.5"),
        (1e21, b"1e+21"),
        (float(MAX_SAFE_INTEGER), b"9007199254740991"),
        (0, b"0"),
        (-MAX_SAFE_INTEGER, b"-9007199254740991"),
    ],
)
def test_number_formatting(number: float, text: bytes) -> None:
    assert canonical_bytes(number) == text
    assert canonical_bytes({"n": number}) == b'{"n":' + text + b"}"


def test_negative_zero_literal_parses_and_canonicalises_to_zero() -> None:
    assert canonical_bytes(parse_json("[-0, -0.0, 0.0]")) == b"[0,0,0]"


def test_literals_and_empty_containers() -> None:
    assert canonical_bytes([None, True, False, {}, [], ""]) == b'[null,true,false,{},[],""]'


def test_string_escaping_is_identical_on_both_paths() -> None:
    # JCS escapes only " \ and C0 controls (\b \t \n \f \r short, the rest as lowercase
    # \u00xx); "/", DEL, C1 controls, U+2028 and everything else are written as UTF-8.
    controls = "".join(chr(c) for c in range(0x20))
    value = {"s": controls + '"\\/\x7f\x80\u2028\u2029\u00e9\U0001f600'}
    expected = (
        b'{"s":"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b'
        b"\\f\\r\\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017"
        b'\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f\\"\\\\/'
        + "\x7f\x80\u2028\u2029\u00e9\U0001f600".encode()
        + b'"}'
    )
    assert check_value(value) is True
    assert canonical_bytes(value, fast=True) == expected
    assert canonical_bytes(value, fast=False) == expected
    assert rfc8785.dumps(value) == expected


def test_ascii_keys_sort_by_code_unit() -> None:
    value = {"b": 1, "a": {"z": [3, {"y": 1, "Y": 2, "": 0}], "aa": 2}, "A": None, "_": "", "~": 1}
    expected = b'{"A":null,"_":"","a":{"aa":2,"z":[3,{"":0,"Y":2,"y":1}]},"b":1,"~":1}'
    assert check_value(value) is True
    assert canonical_bytes(value) == expected
    assert canonical_bytes(value, fast=False) == expected


# -------------------------------------------------------------------------- fast path choice


def test_check_value_fast_path_decision() -> None:
    assert check_value(EVENT) is True
    assert check_value({"a": ["\u6eaf\u6e90", {"b": "\U0001f600"}]}) is True  # non-ASCII values
    assert check_value({"\u540d\u79f0": "x"}) is False  # a non-ASCII key
    assert check_value({"a": [{"b": 1.5}]}) is False  # a float, however deep
    assert check_value({"a": 1.0}) is False  # orjson writes "1.0", JCS writes "1"
    assert check_value(True) is True
    assert check_value(2.5) is False
    assert check_value([]) is True


def test_event_canonical_bytes_agree_on_both_paths() -> None:
    out = canonical_bytes(EVENT)
    assert out == canonical_bytes(EVENT, fast=True) == canonical_bytes(EVENT, fast=False)
    assert out == rfc8785.dumps(EVENT)
    assert parse_json(out) == EVENT


def test_orjson_differs_from_jcs_where_the_fast_path_is_refused() -> None:
    # The reasons check_value says False: orjson's own float text and code-point order.
    assert orjson.dumps(1.0) == b"1.0" and rfc8785.dumps(1.0) == b"1"
    assert orjson.dumps(-0.0) == b"-0.0" and rfc8785.dumps(-0.0) == b"0"
    assert orjson.dumps(1e16) == b"1e+16" and rfc8785.dumps(1e16) == b"10000000000000000"
    pair = {"\ue000": 1, "\U00010000": 2}
    assert orjson.dumps(pair, option=orjson.OPT_SORT_KEYS) != rfc8785.dumps(pair)


# -------------------------------------------------------------------------------- properties

_NONCHARACTERS = [chr(c) for c in range(0xFDD0, 0xFDF0)] + [
    chr(plane + low) for plane in range(0, 0x110000, 0x10000) for low in (0xFFFE, 0xFFFF)
]
_TEXT_CHARS = st.characters(exclude_categories=["Cs"], exclude_characters=_NONCHARACTERS)
_ASCII_CHARS = st.characters(max_codepoint=0x7F)
_KEYS = st.text(_ASCII_CHARS, max_size=6) | st.text(_TEXT_CHARS, max_size=6)
_INTS = st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
# Integral floats in [2^53, 1e21) are refused by check_value (JCS writes them as integers
# beyond 2^53-1, which parse_json refuses); they have their own test below.
_FLOATS = st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: not 2.0**53 <= abs(x) < 1e21)
_STRINGS = st.text(_TEXT_CHARS, max_size=12)
_SCALARS = st.none() | st.booleans() | _INTS | _FLOATS | _STRINGS
_VALUES = st.recursive(
    _SCALARS,
    lambda kids: st.lists(kids, max_size=5) | st.dictionaries(_KEYS, kids, max_size=5),
    max_leaves=30,
)
# No floats and ASCII keys: the values check_value sends down the orjson path.
_FAST_VALUES = st.recursive(
    st.none() | st.booleans() | _INTS | _STRINGS,
    lambda kids: (
        st.lists(kids, max_size=5) | st.dictionaries(st.text(_ASCII_CHARS, max_size=6), kids, max_size=5)
    ),
    max_leaves=30,
)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _check_agrees_with_rfc8785(value: Any) -> None:
    assume(_depth(value) <= MAX_DEPTH)
    expected = rfc8785.dumps(value)
    fast = check_value(value)
    assert canonical_bytes(value) == expected
    assert canonical_bytes(value, fast=False) == expected
    if fast:
        assert canonical_bytes(value, fast=True) == expected
    reparsed = parse_json(expected)
    assert reparsed == value  # 1.0 == 1 and -0.0 == 0, as JSON numbers should
    assert canonical_bytes(reparsed) == expected


@settings(max_examples=400, deadline=None)
@given(_VALUES)
def test_canonical_bytes_equals_rfc8785_and_round_trips(value: Any) -> None:
    _check_agrees_with_rfc8785(value)


@settings(max_examples=300, deadline=None)
@given(_FAST_VALUES)
def test_fast_path_equals_rfc8785(value: Any) -> None:
    assume(_depth(value) <= MAX_DEPTH)
    assert check_value(value) is True
    _check_agrees_with_rfc8785(value)


@settings(max_examples=200, deadline=None)
@given(_VALUES, st.booleans(), st.sampled_from([None, 1]))
def test_parse_json_reads_any_json_writing(value: Any, ascii_only: bool, indent: int | None) -> None:
    assume(_depth(value) <= MAX_DEPTH)
    text = json.dumps(value, ensure_ascii=ascii_only, indent=indent)
    assert parse_json(text) == value
    assert parse_json(text.encode()) == value


# ----------------------------------------------------------------------- parse_json refusals


def test_parse_json_accepts_the_boundaries() -> None:
    assert parse_json(b"[9007199254740991,-9007199254740991]") == [
        MAX_SAFE_INTEGER,
        -MAX_SAFE_INTEGER,
    ]
    assert parse_json("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None
    assert parse_json('"\\ud83d\\ude00"') == "\U0001f600"  # a proper surrogate pair
    assert parse_json(b' {"a" : [ 1 , 2.5 , "x" ] } \n') == {"a": [1, 2.5, "x"]}
    assert parse_json(b"1", max_bytes=1) == 1
    assert parse_json(bytearray(b"[true]")) == [True]  # type: ignore[arg-type]
    # A float literal beyond 2^53 is valid I-JSON; only integer literals are limited.
    assert parse_json("1e16") == 1e16


def test_parse_json_refuses_input_larger_than_max_bytes() -> None:
    with pytest.raises(MalformedInput, match="more than the limit of 10 bytes"):
        parse_json(b'"' + b"a" * 20 + b'"', max_bytes=10)
    # A str is measured in UTF-8 bytes: 5 characters, 8 bytes.
    with pytest.raises(MalformedInput, match="8 bytes, more than the limit of 7 bytes"):
        parse_json('"\u00e9\u00e9\u00e9"', max_bytes=7)
    with pytest.raises(MalformedInput, match="more than the limit"):
        parse_json(b" " * (2 * 1_048_576 + 1))


@pytest.mark.parametrize("raw", [b'"\xff"', b'"\xc0\xaf"', b'"\xed\xa0\x80"', b'"\xe2\x82"'])
def test_parse_json_refuses_bytes_that_are_not_utf8(raw: bytes) -> None:
    with pytest.raises(MalformedInput, match="not valid UTF-8"):
        parse_json(raw)


@pytest.mark.parametrize("raw", [b"\xef\xbb\xbf{}", "\ufeff{}"])
def test_parse_json_refuses_a_byte_order_mark(raw: bytes | str) -> None:
    with pytest.raises(MalformedInput, match="byte order mark"):
        parse_json(raw)


@pytest.mark.parametrize(
    "raw", ["", " ", "{'a': 1}", "[1,]", "[1 2]", "1 2", "01", '{"a" 1}', '"tab\there"', "nul"]
)
def test_parse_json_refuses_text_that_is_not_json(raw: str) -> None:
    with pytest.raises(MalformedInput, match="not valid JSON: .* at line 1 column"):
        parse_json(raw)


@pytest.mark.parametrize("name", ["NaN", "Infinity", "-Infinity"])
def test_parse_json_refuses_nan_and_infinity(name: str) -> None:
    with pytest.raises(MalformedInput, match=f"contains {name}, which is not a JSON number"):
        parse_json(f'{{"a": [1, {name}]}}')


@pytest.mark.parametrize("literal", ["1e400", "-1e400", "1.5E+309"])
def test_parse_json_refuses_numbers_that_overflow(literal: str) -> None:
    with pytest.raises(MalformedInput, match=r"at \$\.a\[1\] is too large .* infinity"):
        parse_json(f'{{"a": [0, {literal}]}}')


@pytest.mark.parametrize(
    ("raw", "where", "key"),
    [
        ('{"a": 1, "a": 2}', "$", "a"),
        ('{"a": 1, "b": [{"c": 1}, {"c": 1, "c": 1}]}', "$.b[1]", "c"),
        ('{"a": 1, "\\u0061": 2}', "$", "a"),  # same key, once escaped
    ],
)
def test_parse_json_refuses_duplicate_keys(raw: str, where: str, key: str) -> None:
    with pytest.raises(MalformedInput) as info:
        parse_json(raw)
    assert str(info.value) == (
        f'object at {where} has the key "{key}" more than once; I-JSON requires unique keys'
    )


@pytest.mark.parametrize(
    "literal",
    [
        "9007199254740992",
        "-9007199254740992",
        "18446744073709551616",
        "123456789012345678901234567890",
        "9" * 5000,  # beyond Python's int-from-str limit, refused before conversion
    ],
)
def test_parse_json_refuses_integers_beyond_2_53(literal: str) -> None:
    with pytest.raises(MalformedInput, match=r"integer .* at \$\.n is beyond ±9007199254740991"):
        parse_json(f'{{"n": {literal}}}')


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ('"\\ud800"', "string at $ "),
        ('["ok", "x\\udfffy"]', "string at $[1] "),
        ('{"a": "\\udc00\\ud800"}', "string at $.a "),  # a pair in the wrong order
        ('{"\\ud800": 1}', 'object key at $["\\ud800"] '),
    ],
)
def test_parse_json_refuses_lone_surrogates(raw: str, where: str) -> None:
    with pytest.raises(MalformedInput, match="lone surrogate U\\+D[89A-F]") as info:
        parse_json(raw)
    assert str(info.value).startswith(where)


def test_parse_json_refuses_a_lone_surrogate_in_str_input() -> None:
    with pytest.raises(MalformedInput, match="lone surrogate U\\+D800 at character 2"):
        parse_json('["\ud800"]')


@pytest.mark.parametrize("raw", ['"\\ufffe"', '{"a": "\\uFDD0"}', '"\U0010ffff"'.encode()])
def test_parse_json_refuses_noncharacters(raw: str | bytes) -> None:
    with pytest.raises(MalformedInput, match="noncharacter U\\+"):
        parse_json(raw)


@pytest.mark.parametrize(
    "raw",
    [
        "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1),
        '{"a":' * (MAX_DEPTH + 1) + "1" + "}" * (MAX_DEPTH + 1),
        "[" * 100_000,  # deep enough for the stdlib decoder's own recursion guard
    ],
)
def test_parse_json_refuses_nesting_deeper_than_max_depth(raw: str) -> None:
    with pytest.raises(MalformedInput, match=f"nesting is deeper than {MAX_DEPTH} levels"):
        parse_json(raw)


def test_parse_json_depth_message_names_the_path() -> None:
    with pytest.raises(MalformedInput, match=r"at \$\.body(\.a){31}; flatten"):
        parse_json('{"body":' + '{"a":' * MAX_DEPTH + "1" + "}" * (MAX_DEPTH + 1))


def test_parse_json_refuses_other_input_types() -> None:
    with pytest.raises(MalformedInput, match="bytes or str, not dict"):
        parse_json({"a": 1})  # type: ignore[arg-type]


# ---------------------------------------------------------------------- check_value refusals


def test_check_value_refuses_non_string_keys() -> None:
    with pytest.raises(MalformedInput, match=r"object at \$\.a has a key of type int"):
        check_value({"a": {1: "x"}})
    with pytest.raises(MalformedInput, match="key of type bytes"):
        check_value({b"a": 1})


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"a": ["ok", "x\udfff"]}, r"string at \$\.a\[1\] contains a lone surrogate U\+DFFF"),
        ({"k\ud800": 1}, r'object key at \$\["k\\ud800"\] contains a lone surrogate U\+D800'),
        ("\udc00\ud83d", r"string at \$ contains a lone surrogate U\+DC00"),
    ],
)
def test_check_value_refuses_lone_surrogates(value: Any, message: str) -> None:
    with pytest.raises(MalformedInput, match=message):
        check_value(value)


@pytest.mark.parametrize("char", ["\ufdd0", "\ufdef", "\ufffe", "\U0001ffff", "\U0010ffff"])
def test_check_value_refuses_noncharacters(char: str) -> None:
    with pytest.raises(MalformedInput, match=f"noncharacter U\\+{ord(char):04X}"):
        check_value({"a": "x" + char})
    with pytest.raises(MalformedInput, match="object key at .* noncharacter"):
        check_value({char: 1})


@pytest.mark.parametrize("number", [2**53, -(2**53), 2**64, -(2**5000)])
def test_check_value_refuses_integers_beyond_2_53(number: int) -> None:
    with pytest.raises(MalformedInput, match=r"integer .* at \$\.n\[0\] is beyond ±9007199254740991"):
        check_value({"n": [number]})


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_check_value_refuses_non_finite_floats(number: float) -> None:
    with pytest.raises(MalformedInput, match=r"number at \$\.x is .*, which JSON cannot represent"):
        check_value({"x": number})


@pytest.mark.parametrize("bits", ["4340000000000000", "c340000000000000", "4430000000000000"])
def test_check_value_refuses_integral_floats_that_jcs_writes_as_big_integers(bits: str) -> None:
    number = _double(bits)
    # JCS writes these as plain digits (see Appendix B), which parse_json would refuse as an
    # integer beyond 2^53-1; refusing them here keeps every canonical text re-parseable.
    with pytest.raises(MalformedInput, match=r"number at \$\[0\] is .* integral float beyond"):
        check_value([number])
    with pytest.raises(MalformedInput, match="integral float"):
        canonical_bytes([number])
    with pytest.raises(MalformedInput, match="integer"):
        parse_json(canonical_bytes([number], fast=False))
    for fine in (1e21, -1e21, 1e300, float(MAX_SAFE_INTEGER)):
        assert check_value([fine]) is False


def _nested_lists(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


def test_check_value_refuses_nesting_deeper_than_max_depth() -> None:
    assert check_value(_nested_lists(MAX_DEPTH)) is True
    with pytest.raises(MalformedInput, match=rf"nesting is deeper than {MAX_DEPTH} levels at \$"):
        check_value(_nested_lists(MAX_DEPTH + 1))
    with pytest.raises(MalformedInput, match="nesting is deeper"):
        check_value({"a": _nested_lists(MAX_DEPTH)})


def test_check_value_refuses_a_cycle_as_too_deep() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(MalformedInput, match="nesting is deeper"):
        check_value(loop)


class _Colour(enum.StrEnum):
    RED = "red"


class _Int(int):
    pass


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        ((1, 2), "tuple"),
        ({1, 2}, "set"),
        (b"bytes", "bytes"),
        (_Colour.RED, "_Colour"),
        (_Int(3), "_Int"),
        (collections.OrderedDict(a=1), "OrderedDict"),
        (decimal.Decimal("1.5"), "Decimal"),
        (datetime.date(2024, 5, 14), "date"),
        (object(), "object"),
    ],
)
def test_check_value_refuses_types_that_are_not_json(value: Any, type_name: str) -> None:
    with pytest.raises(MalformedInput, match=rf"value at \$\.a\[0\] is of type {type_name}, which"):
        check_value({"a": [value]})


def test_check_value_reports_the_given_location_and_quotes_odd_keys() -> None:
    with pytest.raises(MalformedInput) as info:
        check_value({"weird key": [{"ok": 1, "x": math.nan}]}, where="$.body")
    assert str(info.value).startswith('number at $.body["weird key"][0].x is nan')


def test_check_value_messages_are_one_sentence() -> None:
    with pytest.raises(MalformedInput) as info:
        check_value({"a": 2**60})
    error = info.value
    assert error.code == "malformed"
    assert "\n" not in error.message and error.message.count(". ") == 0


# ------------------------------------------------------------------ canonical_bytes refusals


def test_canonical_bytes_validates_by_default() -> None:
    with pytest.raises(MalformedInput, match="cannot represent"):
        canonical_bytes({"a": math.inf})
    with pytest.raises(MalformedInput, match="not a JSON type"):
        canonical_bytes({"a": (1, 2)})


def test_canonical_bytes_with_a_wrong_fast_flag_still_refuses_what_orjson_cannot_write() -> None:
    with pytest.raises(MalformedInput, match="cannot be canonicalised"):
        canonical_bytes({"a": 2**60}, fast=True)
    with pytest.raises(MalformedInput, match="cannot be canonicalised"):
        canonical_bytes({"a": "\ud800"}, fast=True)
    with pytest.raises(MalformedInput, match="cannot be canonicalised"):
        canonical_bytes({"a": 2**60}, fast=False)
