"""Strict I-JSON (RFC 7493) parsing and RFC 8785 (JCS) canonical bytes.

Everything the ledger hashes or signs is a value that passed these rules and was serialised
by :func:`canonical_bytes`, so two parties holding the same statement derive the same bytes.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any, Final, NoReturn

import orjson
import rfc8785

from ledger.core.errors import MalformedInput

__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_SAFE_INTEGER",
    "canonical_bytes",
    "check_value",
    "parse_json",
]

MAX_DEPTH: Final = 32
"""Deepest nesting of objects and arrays accepted; the top-level container is level 1."""

MAX_SAFE_INTEGER: Final = 2**53 - 1
"""Largest integer magnitude an IEEE 754 double holds exactly (RFC 7493 §2.2)."""

MAX_BYTES: Final = 1_048_576 * 2
"""Default size limit of one JSON text given to :func:`parse_json`."""

_MAX_INT: Final = MAX_SAFE_INTEGER
_MAX_FLOAT: Final = sys.float_info.max
# Finite floats at or beyond 2**53 and below 1e21 are written by JCS as plain digit strings
# (ECMAScript switches to exponent form at 1e21), which parse_json then reads as integers
# beyond 2**53-1 and refuses; check_value refuses them so canonical bytes always re-parse.
_EXPONENT_FORM_FROM: Final = 1e21
# "-9007199254740991" is 17 characters and JSON forbids leading zeros, so any longer integer
# literal is out of range; refusing it before int() keeps int parsing linear in the input.
_MAX_INT_LITERAL_CHARS: Final = 17

# RFC 7493 §2.1: strings and member names must not contain surrogates or noncharacters.
# Well-formed UTF-8 cannot carry surrogates, but a "\ud800" escape (or a Python str) can.
_NONCHARACTERS: Final = "\ufdd0-\ufdef" + "".join(
    chr(plane + 0xFFFE) + chr(plane + 0xFFFF) for plane in range(0, 0x110000, 0x10000)
)
_FORBIDDEN_CHAR: Final = re.compile(f"[\ud800-\udfff{_NONCHARACTERS}]")
_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_BOM: Final = "\ufeff"


class _Refusal(Exception):
    """Internal: a refusal travelling up the recursion, collecting its JSON path on the way.

    The path is only built when something is wrong, so the accepting path pays nothing for
    it. The message is ``before + path + after``.
    """

    def __init__(self, before: str, after: str, *path: str | int) -> None:
        super().__init__(before)
        self.before = before
        self.after = after
        self.path: list[str | int] = list(path)  # innermost first

    def error(self, root: str, *, skip_outermost: bool = False) -> MalformedInput:
        steps = self.path[:-1] if skip_outermost else self.path
        return MalformedInput(f"{self.before}{_render_path(root, steps)}{self.after}")


class _LongIntLiteral:
    """Stands in for an integer literal too long to convert, so the walk can name its path."""

    __slots__ = ("literal",)

    def __init__(self, literal: str) -> None:
        self.literal = literal


def _render_path(root: str, steps: list[str | int]) -> str:
    parts = [root]
    for step in reversed(steps):
        if isinstance(step, int):
            parts.append(f"[{step}]")
        elif _IDENTIFIER.match(step):
            parts.append(f".{step}")
        else:
            shown = step if len(step) <= 64 else step[:64] + "\u2026"
            parts.append(f"[{json.dumps(shown)}]")
    return "".join(parts)


def _index_of(items: list[Any], item: Any) -> int:
    # The walk stops at the first bad element, so the first identical object is the one.
    for i, candidate in enumerate(items):
        if candidate is item:
            return i
    return -1


def _describe_int(n: int) -> str:
    # str() of a huge int is slow and limited to 4300 digits; a size is enough to act on.
    if n.bit_length() <= 128:
        return f"integer {n}"
    return f"integer of about {int(n.bit_length() * 0.30103)} digits"


def _char_refusal(what: str, text: str, *path: str | int) -> _Refusal:
    match = _FORBIDDEN_CHAR.search(text)
    assert match is not None
    code = ord(match.group())
    if 0xD800 <= code <= 0xDFFF:
        after = (
            f" contains a lone surrogate U+{code:04X}, which is not a Unicode character; "
            "fix the text's encoding"
        )
    else:
        after = f" contains the Unicode noncharacter U+{code:04X}, which I-JSON forbids; remove it"
    return _Refusal(f"{what} at ", after, *path)


def _key_refusal(key: object, *path: str | int) -> _Refusal:
    if type(key) is not str:
        return _Refusal(
            "object at ",
            f" has a key of type {type(key).__name__}; JSON object keys must be str",
            *path,
        )
    return _char_refusal("object key", key, key, *path)


def _int_refusal(n: int, *path: str | int) -> _Refusal:
    return _Refusal(
        f"{_describe_int(n)} at ",
        f" is beyond \u00b1{MAX_SAFE_INTEGER} (2^53-1), the range I-JSON numbers hold "
        "exactly; send it as a string",
        *path,
    )


def _float_refusal(x: float, *path: str | int) -> _Refusal | None:
    """Refusal for a float outside \u00b1(2^53-1), or None when JCS writes it in exponent form."""
    if x != x or x in (float("inf"), float("-inf")):
        return _Refusal("number at ", f" is {x!r}, which JSON cannot represent; use a finite number", *path)
    if -_EXPONENT_FORM_FROM < x < _EXPONENT_FORM_FROM:
        return _Refusal(
            "number at ",
            f" is {x!r}, an integral float beyond \u00b1{MAX_SAFE_INTEGER} (2^53-1) that JCS "
            "would write as an integer I-JSON refuses; send it as a string",
            *path,
        )
    return None


def _overflow_refusal(*path: str | int) -> _Refusal:
    return _Refusal(
        "number at ",
        " is too large for a double and overflows to infinity; send it as a string",
        *path,
    )


def _other_refusal(value: object, *path: str | int) -> _Refusal:
    if type(value) is _LongIntLiteral:
        digits = value.literal.lstrip("-")
        return _Refusal(
            f"integer of {len(digits)} digits ({value.literal[:20]}\u2026) at ",
            f" is beyond \u00b1{MAX_SAFE_INTEGER} (2^53-1), the range I-JSON numbers hold "
            "exactly; send it as a string",
            *path,
        )
    return _Refusal(
        "value at ",
        f" is of type {type(value).__qualname__}, which is not a JSON type; "
        "use dict, list, str, int, float, bool or None",
        *path,
    )


def _depth_refusal() -> _Refusal:
    return _Refusal(f"JSON nesting is deeper than {MAX_DEPTH} levels at ", "; flatten the value")


# The two walks below are the hot path (every appended statement goes through check_value),
# so the scalar checks are written out inline, dispatch is on exact type with `is` (one
# pointer compare, and it keeps bool, str-enum and numpy subclasses out), and the cheap
# common case is tested first: str.isascii() is O(1) in CPython, so only non-ASCII strings
# pay for the forbidden-character search.


def _walk(value: Any, depth: int) -> bool:
    """Check a dict or list built in Python; True when orjson's output would be JCS."""
    if depth > MAX_DEPTH:
        raise _depth_refusal()
    fast = True
    if type(value) is dict:
        for key, item in value.items():
            if type(key) is not str or not key.isascii():
                fast = False
                if type(key) is not str or _FORBIDDEN_CHAR.search(key) is not None:
                    raise _key_refusal(key)
            kind = type(item)
            if kind is str:
                if not item.isascii() and _FORBIDDEN_CHAR.search(item) is not None:
                    raise _char_refusal("string", item, key)
            elif kind is dict or kind is list:
                try:
                    if not _walk(item, depth + 1):
                        fast = False
                except _Refusal as refusal:
                    refusal.path.append(key)
                    raise
            elif kind is int:
                if not -_MAX_INT <= item <= _MAX_INT:
                    raise _int_refusal(item, key)
            elif kind is float:
                # JCS writes numbers the ECMAScript way (1.0 -> 1, 1e16 -> 10000000000000000)
                # and orjson does not, so any float sends the value down the slow path.
                fast = False
                if not -_MAX_INT <= item <= _MAX_INT:
                    problem = _float_refusal(item, key)
                    if problem is not None:
                        raise problem
            elif kind is not bool and item is not None:
                raise _other_refusal(item, key)
    elif type(value) is list:
        for item in value:
            kind = type(item)
            if kind is str:
                if not item.isascii() and _FORBIDDEN_CHAR.search(item) is not None:
                    raise _char_refusal("string", item, _index_of(value, item))
            elif kind is dict or kind is list:
                try:
                    if not _walk(item, depth + 1):
                        fast = False
                except _Refusal as refusal:
                    refusal.path.append(_index_of(value, item))
                    raise
            elif kind is int:
                if not -_MAX_INT <= item <= _MAX_INT:
                    raise _int_refusal(item, _index_of(value, item))
            elif kind is float:
                fast = False
                if not -_MAX_INT <= item <= _MAX_INT:
                    problem = _float_refusal(item, _index_of(value, item))
                    if problem is not None:
                        raise problem
            elif kind is not bool and item is not None:
                raise _other_refusal(item, _index_of(value, item))
    return fast


def _adopt(value: Any, depth: int) -> Any:
    """Check what the stdlib decoder produced and turn its objects into dicts.

    The decoder runs with ``object_pairs_hook=tuple``, a C call, so an object arrives as a
    tuple of (key, value) pairs and an array as a list (an array never yields a tuple, so
    the two cannot be confused). Building the dicts here, in the walk that visits every
    object anyway, costs the same as a Python hook (measured) and lets a duplicate key be
    reported with its path: it shows as a dict smaller than its pair count.
    """
    if depth > MAX_DEPTH:
        raise _depth_refusal()
    if type(value) is tuple:
        obj = dict(value)
        if len(obj) != len(value):
            seen: set[str] = set()
            for key, _ in value:
                if key in seen:
                    raise _Refusal(
                        "object at ",
                        f" has the key {json.dumps(key)} more than once; I-JSON requires unique keys",
                    )
                seen.add(key)
        for key, item in value:
            if not key.isascii() and _FORBIDDEN_CHAR.search(key) is not None:
                raise _char_refusal("object key", key, key)
            kind = type(item)
            if kind is str:
                if not item.isascii() and _FORBIDDEN_CHAR.search(item) is not None:
                    raise _char_refusal("string", item, key)
            elif kind is tuple:
                try:
                    obj[key] = _adopt(item, depth + 1)
                except _Refusal as refusal:
                    refusal.path.append(key)
                    raise
            elif kind is list:
                # Lists are converted in place, so the dict already holds the right object.
                try:
                    _adopt(item, depth + 1)
                except _Refusal as refusal:
                    refusal.path.append(key)
                    raise
            elif kind is int:
                if not -_MAX_INT <= item <= _MAX_INT:
                    raise _int_refusal(item, key)
            elif kind is float:
                # NaN and Infinity never get here (parse_constant refuses them); infinity
                # here means a literal such as 1e400 overflowed the double.
                if not -_MAX_FLOAT <= item <= _MAX_FLOAT:
                    raise _overflow_refusal(key)
            elif kind is _LongIntLiteral:
                raise _other_refusal(item, key)
        return obj
    for index, item in enumerate(value):
        kind = type(item)
        if kind is str:
            if not item.isascii() and _FORBIDDEN_CHAR.search(item) is not None:
                raise _char_refusal("string", item, index)
        elif kind is tuple:
            try:
                value[index] = _adopt(item, depth + 1)
            except _Refusal as refusal:
                refusal.path.append(index)
                raise
        elif kind is list:
            try:
                _adopt(item, depth + 1)
            except _Refusal as refusal:
                refusal.path.append(index)
                raise
        elif kind is int:
            if not -_MAX_INT <= item <= _MAX_INT:
                raise _int_refusal(item, index)
        elif kind is float:
            if not -_MAX_FLOAT <= item <= _MAX_FLOAT:
                raise _overflow_refusal(index)
        elif kind is _LongIntLiteral:
            raise _other_refusal(item, index)
    return value


def _refuse_constant(name: str) -> NoReturn:
    raise MalformedInput(
        f"input contains {name}, which is not a JSON number; I-JSON allows only finite numbers"
    )


def _parse_int(literal: str) -> int | _LongIntLiteral:
    if len(literal) > _MAX_INT_LITERAL_CHARS:
        return _LongIntLiteral(literal)
    return int(literal)


# Built once: json.loads() with hooks would construct a new decoder on every call.
_DECODER: Final = json.JSONDecoder(
    object_pairs_hook=tuple, parse_int=_parse_int, parse_constant=_refuse_constant
)


def parse_json(raw: bytes | str, *, max_bytes: int = MAX_BYTES) -> Any:
    """Parse one strict I-JSON (RFC 7493) text into dicts, lists, str, int, float, bool, None.

    Refuses with :class:`MalformedInput` a text longer than ``max_bytes`` (as UTF-8), bytes
    that are not UTF-8, a byte order mark, anything that is not JSON, NaN and Infinity,
    numbers that overflow a double, integer literals beyond ±(2^53-1), duplicate object
    keys, lone surrogates and noncharacters in strings or keys, and nesting deeper than
    :data:`MAX_DEPTH`. A float literal beyond 2^53 (``1e16``) is valid I-JSON and is
    returned, but :func:`check_value` refuses it because JCS would write it as an integer.
    """
    if isinstance(raw, str):
        # Every character is at least one UTF-8 byte, so this refuses early without encoding.
        if len(raw) > max_bytes:
            raise MalformedInput(f"input is more than the limit of {max_bytes} bytes; send a smaller value")
        if raw.isascii():
            size = len(raw)
        else:
            try:
                size = len(raw.encode("utf-8"))
            except UnicodeEncodeError as exc:
                raise MalformedInput(
                    f"input contains a lone surrogate U+{ord(raw[exc.start]):04X} at character "
                    f"{exc.start}, which is not a Unicode character; fix the text's encoding"
                ) from None
        text = raw
    elif isinstance(raw, (bytes, bytearray, memoryview)):
        # The size is known before decoding, so an oversized body is refused without a copy.
        size = memoryview(raw).nbytes
        if size <= max_bytes:
            try:
                text = str(raw, "utf-8")
            except UnicodeDecodeError as exc:
                raise MalformedInput(
                    f"input is not valid UTF-8 ({exc.reason} at byte {exc.start}); "
                    "encode the JSON text as UTF-8"
                ) from None
    else:
        raise MalformedInput(f"input must be JSON text as bytes or str, not {type(raw).__name__}")
    if size > max_bytes:
        raise MalformedInput(
            f"input is {size} bytes, more than the limit of {max_bytes} bytes; send a smaller value"
        )
    if text.startswith(_BOM):
        raise MalformedInput("input starts with a byte order mark (U+FEFF), which I-JSON forbids; remove it")
    try:
        parsed = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise MalformedInput(
            f"input is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        # The C decoder stops near the interpreter's recursion limit (~1000 levels), far
        # beyond MAX_DEPTH; nothing about the path is known at that point.
        raise MalformedInput(f"JSON nesting is deeper than {MAX_DEPTH} levels; flatten the value") from None
    # A scalar top-level value is wrapped in a one-element list to go through the same checks.
    wrapped = type(parsed) is not tuple and type(parsed) is not list
    try:
        return _adopt([parsed], 0)[0] if wrapped else _adopt(parsed, 1)
    except _Refusal as refusal:
        raise refusal.error("$", skip_outermost=wrapped) from None


def check_value(obj: Any, *, where: str = "$") -> bool:
    """Check a Python value against the rules :func:`parse_json` enforces on JSON text.

    Accepts only ``dict`` with ``str`` keys, ``list``, ``str``, ``int`` within ±(2^53-1),
    finite ``float``, ``bool`` and ``None``, as exact types (a ``str`` enum, ``OrderedDict``,
    tuple or numpy scalar is refused: convert it first), with no lone surrogates or
    noncharacters in strings and keys, nested at most :data:`MAX_DEPTH` deep. One rule
    goes beyond parse_json's: an integral float from 2^53 up to 1e21 (``1e16``) is refused,
    because JCS writes it as a plain integer that parse_json would refuse. ``where`` is the
    path of ``obj`` in a larger document, used in messages.

    Returns True when :func:`canonical_bytes` may take the orjson fast path: every object
    key is ASCII and there is no float anywhere. Raises :class:`MalformedInput` otherwise.
    """
    # A scalar top-level value is wrapped in a one-element list to go through the same checks.
    wrapped = type(obj) is not dict and type(obj) is not list
    try:
        return _walk([obj], 0) if wrapped else _walk(obj, 1)
    except _Refusal as refusal:
        raise refusal.error(where, skip_outermost=wrapped) from None


def canonical_bytes(obj: Any, *, fast: bool | None = None) -> bytes:
    """The RFC 8785 (JCS) canonical UTF-8 bytes of ``obj``.

    With ``fast=None`` (the default) ``obj`` is validated by :func:`check_value` first,
    which also picks the serialiser. Pass ``fast=True`` or ``fast=False`` only with the
    result of your own :func:`check_value` call on the same, unchanged value: the check is
    then skipped, and ``fast=True`` on a value that does not qualify gives bytes that are
    not JCS.
    """
    if fast is None:
        fast = check_value(obj)
    if fast:
        # With ASCII keys, code-point order (orjson) equals UTF-16 code-unit order (JCS);
        # with no floats and ints within 2^53 every number is written alike; and orjson
        # escapes strings exactly as JCS does (\b \t \n \f \r, other C0 as \u00xx, " and \).
        try:
            # OPT_STRICT_INTEGER is a safety net for a wrong fast=True: it refuses ints
            # beyond 2^53-1 instead of writing digits that rfc8785 would have refused.
            return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER)
        except orjson.JSONEncodeError as exc:
            raise MalformedInput(
                f"value cannot be canonicalised ({exc}); check it with check_value for details"
            ) from None
    try:
        return rfc8785.dumps(obj)
    except (rfc8785.CanonicalizationError, RecursionError) as exc:
        raise MalformedInput(
            f"value cannot be canonicalised ({exc}); check it with check_value for details"
        ) from None
