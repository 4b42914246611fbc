"""Party and product identifiers: USCC and GS1 check characters, and one canonical form,
the GS1 Digital Link on ``https://id.gs1.org``, for every GS1 key however it was written.

Everything here is a pure function of strings; every refusal raises ``IdentifierError``.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, replace
from typing import Final, Literal
from urllib.parse import quote, unquote

from ledger.core.errors import IdentifierError

# --- Party identifiers -------------------------------------------------------------------

USCC_CHARSET: Final = "0123456789ABCDEFGHJKLMNPQRTUWXY"
"""GB 32100-2015: digits and upper-case letters without I, O, S, V, Z (values 0-30)."""

_USCC_VALUE: Final = {c: i for i, c in enumerate(USCC_CHARSET)}
_USCC_WEIGHTS: Final = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
# GB 11714-1997, the organisation code in positions 9-17: digits count as themselves and
# letters A-Z as 10-35 (its own alphabet, not the USCC's), weighted 3 7 9 10 5 8 4 2.
_ORG_VALUE: Final = {c: int(c, 36) for c in string.digits + string.ascii_uppercase}
_ORG_WEIGHTS: Final = (3, 7, 9, 10, 5, 8, 4, 2)


def _check_uscc_chars(chars: str, *, what: str, length: int) -> None:
    if len(chars) != length:
        raise IdentifierError(f"{what} {chars!r} has {len(chars)} characters; it needs {length}")
    # Lower case is refused, not folded: the code is printed on licences in upper case, and a
    # ledger that silently upper-cases would store a string its owner never wrote.
    if any("a" <= c <= "z" for c in chars):
        raise IdentifierError(
            f"{what} {chars} contains lower-case letters; write it in upper case: {chars.upper()}"
        )
    for position, c in enumerate(chars, start=1):
        if c not in _USCC_VALUE:
            raise IdentifierError(
                f"{what} {chars} has {c!r} at position {position}, which no USCC contains "
                f"(only digits and the letters {USCC_CHARSET[10:]})"
            )
    # Positions 3-8 are the registering authority's GB/T 2260 administrative division code.
    region = chars[2:8]
    if not region.isdigit():
        raise IdentifierError(
            f"{what} {chars} has {region!r} at positions 3-8, where the GB/T 2260 region "
            "code of 6 digits belongs"
        )


def uscc_check_char(first17: str) -> str:
    """The 18th character of the unified social credit code that starts with ``first17``."""
    _check_uscc_chars(first17, what="USCC body", length=17)
    total = sum(_USCC_VALUE[c] * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return USCC_CHARSET[(31 - total % 31) % 31]


def org_code_check_char(body8: str) -> str:
    """The check character (position 17 of a USCC) of the GB 11714 organisation code whose
    first 8 characters are ``body8`` (positions 9-16): 11 - sum mod 11, 10 -> X, 11 -> 0."""
    if len(body8) != 8 or any(c not in _ORG_VALUE for c in body8):
        raise IdentifierError(f"organisation code body {body8!r} must be 8 digits or upper-case letters")
    check = 11 - sum(_ORG_VALUE[c] * w for c, w in zip(body8, _ORG_WEIGHTS, strict=True)) % 11
    return "X" if check == 10 else "0" if check == 11 else str(check)


def validate_uscc(code: str) -> str:
    """Return ``code`` if it is an 18-character USCC whose two check characters are correct:
    the organisation code's (position 17, GB 11714) and the code's own (position 18)."""
    _check_uscc_chars(code, what="USCC", length=18)
    expected = uscc_check_char(code[:17])
    if code[17] != expected:
        raise IdentifierError(f"USCC {code} has check character {code[17]}; expected {expected}")
    inner = org_code_check_char(code[8:16])
    if code[16] != inner:
        raise IdentifierError(
            f"USCC {code} has organisation code {code[8:17]}, whose check character (position "
            f"17) is {code[16]}; GB 11714 gives {inner}"
        )
    return code


def make_uscc(body: str) -> str:
    """Complete a USCC (demo and test data). 16 characters get the organisation code's check
    character and then the USCC's; 17 (the organisation code's check character included,
    and verified) get the USCC's."""
    if len(body) not in (16, 17):
        raise IdentifierError(
            f"USCC body {body!r} has {len(body)} characters; give 16, or 17 with the "
            "organisation code's check character"
        )
    _check_uscc_chars(body[:16].ljust(17, "0"), what="USCC body", length=17)
    inner = org_code_check_char(body[8:16])
    if len(body) == 17 and body[16] != inner:
        raise IdentifierError(
            f"USCC body {body} has organisation code check character {body[16]}; GB 11714 gives {inner}"
        )
    first17 = body[:16] + inner
    return first17 + uscc_check_char(first17)


# --- GS1 keys ----------------------------------------------------------------------------


def _check_digits(value: str, *, what: str) -> None:
    if not value:
        raise IdentifierError(f"{what} is empty")
    # str.isdigit alone would admit other scripts' digits such as '٣'.
    if not (value.isascii() and value.isdigit()):
        raise IdentifierError(f"{what} {value!r} must contain only the digits 0-9")


def gs1_check_digit(digits_without_check: str) -> str:
    """The GS1 mod-10 check digit for a key body (GTIN, GLN, SSCC, GSRN, GDTI, GRAI...)."""
    _check_digits(digits_without_check, what="GS1 key body")
    # Weights count from the right so that one rule serves every key length, and a GTIN
    # keeps its check digit when padded with leading zeros.
    rev = digits_without_check[::-1]
    # Digits are ASCII (checked above): ord(d) - 48 is int(d) without the call.
    total = (
        3 * sum(map(ord, rev[0::2])) + sum(map(ord, rev[1::2])) - 48 * (3 * len(rev[0::2]) + len(rev[1::2]))
    )
    return str(-total % 10)


def _check_key(code: str, *, what: str, lengths: tuple[int, ...]) -> None:
    _check_digits(code, what=what)
    if len(code) not in lengths:
        allowed = " or ".join(", ".join(map(str, lengths)).rsplit(", ", 1))
        raise IdentifierError(f"{what} {code} has {len(code)} digits; {what}s have {allowed}")
    expected = gs1_check_digit(code[:-1])
    if code[-1] != expected:
        raise IdentifierError(f"{what} {code} has check digit {code[-1]}; expected {expected}")


def validate_gtin(code: str) -> str:
    """Return the GTIN-14 of a GTIN-8, -12, -13 or -14 whose check digit is correct."""
    _check_key(code, what="GTIN", lengths=(8, 12, 13, 14))
    return code.zfill(14)


def validate_gln(code: str) -> str:
    """Return ``code`` if it is a 13-digit GLN with a correct check digit."""
    _check_key(code, what="GLN", lengths=(13,))
    return code


def validate_sscc(code: str) -> str:
    """Return ``code`` if it is an 18-digit SSCC with a correct check digit."""
    _check_key(code, what="SSCC", lengths=(18,))
    return code


def parse_party_id(s: str) -> str:
    """Return ``s`` if it is ``uscc:`` + a valid USCC or ``gln:`` + a valid GLN."""
    scheme, colon, value = s.partition(":")
    if colon and scheme == "uscc":
        validate_uscc(value)
        return s
    if colon and scheme == "gln":
        validate_gln(value)
        return s
    raise IdentifierError(f"party id must be uscc:<18 characters> or gln:<13 digits>, not {s!r}")


# --- Product identifiers: the Digital Link value -----------------------------------------

CANONICAL_BASE: Final = "https://id.gs1.org"
"""Every canonical identifier is a Digital Link on this base, whichever domain it came on."""

LinkKind = Literal[
    "class",
    "lot",
    "item",
    "sscc",
    "location",
    "party",
    "payto",
    "grai",
    "giai",
    "gsrn",
    "gsrnp",
    "gdti",
    "gcn",
    "ginc",
    "gsin",
    "itip",
    "cpid",
    "gmn",
]


@dataclass(frozen=True)
class DigitalLink:
    """A GS1 key with its qualifiers, as ``parse_digital_link`` decodes it.

    Values are decoded (no percent-escapes); GTINs are 14 digits. ``serial`` is the
    serial of an item or of a piece (ITIP), or the serial component of a GRAI or GDTI.
    ``gln`` is the GLN of a location (AI 414), of a party (AI 417) or of a payee (AI 415).
    ``uic_ext`` is AI 7040, the EU 2018/574 UIC with extension that may qualify a location,
    a party or an asset; ``srin`` is AI 8019, the service relation instance of a GSRN(P).
    """

    kind: LinkKind
    gtin: str | None = None
    cpv: str | None = None
    lot: str | None = None
    serial: str | None = None
    sscc: str | None = None
    gln: str | None = None
    gln_extension: str | None = None
    grai: str | None = None
    giai: str | None = None
    gsrn: str | None = None
    gdti: str | None = None
    tpx: str | None = None
    uic_ext: str | None = None
    payment_ref: str | None = None
    gsrnp: str | None = None
    srin: str | None = None
    gcn: str | None = None
    ginc: str | None = None
    gsin: str | None = None
    itip: str | None = None
    cpid: str | None = None
    cpid_serial: str | None = None
    gmn: str | None = None

    @property
    def elements(self) -> tuple[tuple[str, str], ...]:
        """The (AI, value) pairs of the key and its qualifiers, in Digital Link path order."""
        pairs: list[tuple[str, str | None]]
        if self.kind in ("class", "lot", "item"):
            pairs = [
                ("01", self.gtin),
                ("22", self.cpv),
                ("10", self.lot),
                ("21", self.serial),
                ("235", self.tpx),
            ]
        elif self.kind == "sscc":
            pairs = [("00", self.sscc)]
        elif self.kind == "location":
            pairs = [("414", self.gln), ("254", self.gln_extension), ("7040", self.uic_ext)]
        elif self.kind == "party":
            pairs = [("417", self.gln), ("7040", self.uic_ext)]
        elif self.kind == "payto":
            pairs = [("415", self.gln), ("8020", self.payment_ref)]
        elif self.kind == "grai":
            # AI 8003 is a filler 0, the 13-digit GRAI, then the optional serial, all one value.
            pairs = [("8003", f"0{self.grai}{self.serial or ''}")]
        elif self.kind == "giai":
            pairs = [("8004", self.giai), ("7040", self.uic_ext)]
        elif self.kind == "gsrn":
            pairs = [("8018", self.gsrn), ("8019", self.srin)]
        elif self.kind == "gsrnp":
            pairs = [("8017", self.gsrnp), ("8019", self.srin)]
        elif self.kind == "gdti":
            pairs = [("253", f"{self.gdti}{self.serial or ''}")]
        elif self.kind == "gcn":
            pairs = [("255", self.gcn)]
        elif self.kind == "ginc":
            pairs = [("401", self.ginc)]
        elif self.kind == "gsin":
            pairs = [("402", self.gsin)]
        elif self.kind == "itip":
            pairs = [("8006", self.itip), ("22", self.cpv), ("10", self.lot), ("21", self.serial)]
        elif self.kind == "cpid":
            pairs = [("8010", self.cpid), ("8011", self.cpid_serial)]
        else:
            pairs = [("8013", self.gmn)]
        return tuple((ai, value) for ai, value in pairs if value is not None)

    @property
    def path(self) -> str:
        """The Digital Link path, the same on any resolver domain."""
        return "".join(f"/{ai}/{_dl_escape(value)}" for ai, value in self.elements)

    @property
    def canonical(self) -> str:
        return CANONICAL_BASE + self.path


@dataclass(frozen=True)
class _NoConversion:
    """A well-formed identifier that has no Digital Link here; ``reason`` says why."""

    reason: str


# GS1 AI 82 character set: what a lot, serial or other alphanumeric key part may hold.
_CSET82: Final = frozenset(string.ascii_letters + string.digits + "!\"%&'()*+,-./:;<=>?_")
# In an EPC URN these CSET 82 characters must be percent-escaped (EPC Tag Data Standard).
_EPC_ESCAPES: Final = {c: f"%{ord(c):02X}" for c in '"%&/<>?'}


_UNRESERVED: Final = re.compile(r"[A-Za-z0-9._~-]*")


def _dl_escape(value: str) -> str:
    # GS1 Digital Link escapes everything outside RFC 3986 "unreserved", so that one value
    # has one spelling and canonical URIs compare as strings. Most lots and serials need
    # no escape at all, and a match costs a fraction of quote().
    return value if _UNRESERVED.fullmatch(value) else quote(value, safe="")


def _epc_escape(value: str) -> str:
    return "".join(_EPC_ESCAPES.get(c, c) for c in value)


def _unescape(raw: str, *, what: str) -> str:
    if "%" not in raw:
        return raw  # most values: nothing to decode
    out: list[str] = []
    i = 0
    while i < len(raw):
        if raw[i] != "%":
            out.append(raw[i])
            i += 1
            continue
        pair = raw[i + 1 : i + 3]
        if len(pair) != 2 or not all(c in string.hexdigits for c in pair):
            raise IdentifierError(f"{what} {raw!r} has a '%' that does not start an escape such as %25")
        # Bytes are decoded one by one: anything outside ASCII fails the CSET 82 check after.
        out.append(chr(int(pair, 16)))
        i += 3
    return "".join(out)


def _check_cset82(value: str, *, what: str, max_len: int) -> None:
    if not value:
        raise IdentifierError(f"{what} is empty")
    if len(value) > max_len:
        raise IdentifierError(f"{what} {value!r} has {len(value)} characters; GS1 allows at most {max_len}")
    for c in value:
        if c not in _CSET82:
            raise IdentifierError(
                f"{what} {value!r} contains {c!r}, which GS1 does not allow "
                "(only letters, digits and !\"%&'()*+,-./:;<=>?_)"
            )


# --- Digital Link URIs -------------------------------------------------------------------

# The GS1 Digital Link 1.4 path grammar, as GS1's Barcode Syntax Dictionary states it
# ("dlpkey"): every primary key AI, and the sequences of key qualifiers it may take. Each
# qualifier in a sequence is optional, they come in the order given, and alternative
# sequences exclude each other (a GTIN takes CPV, lot and serial, or else a TPX).
_DL_KEYS: Final[dict[str, tuple[tuple[str, ...], ...]]] = {
    "00": (), "01": (("22", "10", "21"), ("235",)), "253": (), "255": (), "401": (),
    "402": (), "414": (("254",), ("7040",)), "415": (("8020",),), "417": (("7040",),),
    "8003": (), "8004": (("7040",),), "8006": (("22", "10", "21"),), "8010": (("8011",),),
    "8013": (), "8017": (("8019",),), "8018": (("8019",),),
}  # fmt: skip
# Qualifiers a key cannot stand without: AI 415 (pay to) always comes with its reference.
_REQUIRED_QUALIFIER: Final = {"415": "8020"}
_QUALIFIER_NAMES: Final = {
    "22": "consumer product variant (CPV)", "10": "lot", "21": "serial",
    "235": "third-party serial (TPX)",
    "254": "GLN extension", "7040": "UIC with extension (AI 7040)",
    "8019": "service relation instance (SRIN)", "8011": "CPID serial",
    "8020": "payment reference",
}  # fmt: skip
_AI_SEGMENT: Final = re.compile(r"[0-9]{2,4}")
_WEB_URI: Final = re.compile(r"(?i)https?://([^/?#]*)(.*)")
# Every GS1 key value starts with at least 4 digits: the numeric keys have 8 to 18 digits,
# and the others start with a GS1 company prefix (GS1's linter rule gcppos1). A segment
# after a key AI that does not (/2024/01/15, /00/index.html) is a web page, not a key.
_KEY_START: Final = re.compile(r"[0-9]{4}")
# EU 2018/574 importer index: the fourth character of AI 7040 (GS1 linter "importeridx").
_IMPORTER_INDEX: Final = frozenset(string.ascii_letters + string.digits + "-_")
# CSET 39, the characters of a CPID (AI 8010).
_CSET39: Final = frozenset(string.ascii_uppercase + string.digits + "#-/")
# CSET 32, the check character pair of a GMN (AI 8013), in order of value.
_CSET32: Final = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
_CSET82_ORDER: Final = "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
_PRIMES: Final = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83)


def _dl_segments(uri: str) -> list[str]:
    web = _WEB_URI.fullmatch(uri)
    if web is not None and not web.group(1):
        raise IdentifierError(f"Digital Link {uri} has no domain after the scheme")
    rest = web.group(2) if web is not None else uri
    # Query and fragment carry data attributes and link types, never identity.
    path = rest.split("#", 1)[0].split("?", 1)[0]
    segments = path.split("/")[1:]
    # One trailing '/' is tolerated, as resolvers do; a second leaves an empty segment.
    if segments and not segments[-1]:
        segments.pop()
    return segments


def looks_like_digital_link(code: str) -> bool:
    """Whether ``index_key`` reads ``code`` as a GS1 Digital Link, which must then parse or
    be refused, never be indexed as written.

    It does if ``code`` is an http(s) URI, or a path starting with '/', one of whose path
    segments is a GS1 primary key AI (00, 01, 253, 255, 401, 402, 414, 415, 417, 8003,
    8004, 8006, 8010, 8013, 8017, 8018) followed by a segment that starts with 4 digits, as
    every GS1 key value does; anywhere in the path, since a Digital Link may have any prefix.
    """
    if not (code.startswith("/") or _WEB_URI.fullmatch(code)):
        return False
    try:
        return bool(_key_positions(_dl_segments(code), loose=False))
    except IdentifierError:
        return True


def _key_positions(segments: list[str], *, loose: bool) -> list[int]:
    return [
        i
        for i in range(len(segments) - 1)
        if segments[i] in _DL_KEYS and (loose or _KEY_START.match(unquote(segments[i + 1])))
    ]


# The shape nearly every code has, a GTIN-14 with a lot, a serial or both whose values need
# no decoding, at the root of a domain or of the path: one match reads it. What the grammar
# walk below checks holds of every string it matches (a key AI first, then qualifiers of it
# in order, each value 1 to 20 CSET 82 characters needing no escape), so the only check
# left is the GTIN's, made the same way. Anything else takes the walk.
# ``tests/test_ids.py`` holds the two to the same answers on generated links.
_COMMON_GTIN_LINK: Final = re.compile(
    r"(?:https?://[^/?#\s]+)?/01/([0-9]{14})(?:/10/([A-Za-z0-9._-]{1,20}))?(?:/21/([A-Za-z0-9._-]{1,20}))?"
)


def _from_digital_link(uri: str, *, loose: bool = False) -> DigitalLink | _NoConversion:
    """``loose``: any primary key AI segment makes ``uri`` a Digital Link, as it does for a
    caller that says the string is one; otherwise only one followed by a key-like value."""
    common = _COMMON_GTIN_LINK.fullmatch(uri)
    if common is not None:
        gtin, lot, serial = common.groups()
        kind: LinkKind = "item" if serial is not None else "lot" if lot is not None else "class"
        return DigitalLink(kind, gtin=validate_gtin(gtin), lot=lot, serial=serial)
    return _walk_digital_link(uri, loose=loose)


def _walk_digital_link(uri: str, *, loose: bool = False) -> DigitalLink | _NoConversion:
    """``_from_digital_link`` by the grammar, for any shape."""
    segments = _dl_segments(uri)
    keys = _key_positions(segments, loose=loose)
    if not keys:
        return _NoConversion(
            f"{uri} is not a GS1 Digital Link: its path names no GS1 key such as /01/<GTIN> or /00/<SSCC>"
        )
    # As GS1's own parser does: walk /AI/value pairs back from the end of the path; the
    # first primary key found is the root and anything before it is the domain's own prefix.
    root = None
    i = len(segments) - 2
    while i >= 0 and _AI_SEGMENT.fullmatch(segments[i]):
        if segments[i] in _DL_KEYS:
            root = i
            break
        i -= 2
    if root is None:
        # The path names a key but does not end in /AI/value pairs after it: a qualifier
        # without a value (/21), a value without an AI (/21/x/y), an empty segment (//).
        k = keys[-1]
        tail = "/".join(segments[k + 2 :])
        raise IdentifierError(
            f"Digital Link {uri} does not follow the GS1 Digital Link grammar: after the key "
            f"/{segments[k]}/{segments[k + 1]} the path must go on in /AI/value pairs, "
            f"and /{tail} does not"
        )
    ai = segments[root]
    link = _primary(ai, _unescape(segments[root + 1], what=f"AI {ai} value"))
    try:
        found = _qualifiers(uri, ai, segments[root + 2 :])
    except IdentifierError as e:
        if uri in e.message:
            raise
        # Name the link: a qualifier's value alone (a serial, '1AB.') does not say which
        # of an event's identifiers it came from; a key's value does.
        raise IdentifierError(f"Digital Link {uri}: {e.message}") from None
    return _qualified(link, found)


def _qualifiers(uri: str, ai: str, pairs: list[str]) -> dict[str, str]:
    """The decoded, checked key qualifiers of key AI ``ai`` from the /AI/value pairs after it."""
    sequences = _DL_KEYS[ai]
    allowed = [q for seq in sequences for q in seq]
    names = pairs[0::2]
    for q in names:
        if q not in allowed:
            after = f"only {', '.join(allowed)} may follow it" if allowed else "it takes none"
            raise IdentifierError(
                f"Digital Link {uri} has AI {q} in its path, which is not a key qualifier of "
                f"AI {ai} ({after}); data attributes belong in the query string"
            )
    sequence = next(seq for seq in sequences if names[0] in seq) if names else ()
    if any(q not in sequence for q in names):
        alternatives = " or else ".join(", ".join(seq) for seq in sequences)
        raise IdentifierError(
            f"Digital Link {uri} mixes key qualifiers of AI {ai} that exclude each other: "
            f"it takes {alternatives}, not both"
        )
    positions = [sequence.index(q) for q in names]
    if positions != sorted(set(positions)):
        raise IdentifierError(
            f"Digital Link {uri} must give the qualifiers of AI {ai} at most once each, "
            f"in the order {', '.join(sequence)}"
        )
    required = _REQUIRED_QUALIFIER.get(ai)
    if required is not None and required not in names:
        raise IdentifierError(
            f"Digital Link {uri} names AI {ai} without its {_QUALIFIER_NAMES[required]} "
            f"(/{required}/…), which GS1 requires with it"
        )
    found: dict[str, str] = {}
    for q, raw in zip(names, pairs[1::2], strict=True):
        found[q] = _qualifier_value(q, _unescape(raw, what=_QUALIFIER_NAMES[q]))
    return found


def _qualifier_value(ai: str, value: str) -> str:
    what = _QUALIFIER_NAMES[ai]
    if ai in ("22", "10", "21", "254"):
        _check_cset82(value, what=what, max_len=20)
    elif ai == "235":
        _check_cset82(value, what=what, max_len=28)
    elif ai == "8020":
        _check_cset82(value, what=what, max_len=25)
    elif ai == "7040":
        # N1 X1 X1 X1: a digit, two CSET 82 characters and an importer index character.
        _check_cset82(value, what=what, max_len=4)
        if not (len(value) == 4 and value[0] in string.digits and value[3] in _IMPORTER_INDEX):
            raise IdentifierError(
                f"{what} {value!r} must be 4 characters: a digit, two letters, digits or "
                "symbols, and an importer index (a letter, digit, '-' or '_')"
            )
    else:  # 8019 SRIN (N..10) and 8011 CPID serial (N..12, no leading zero)
        _check_digits(value, what=what)
        limit = 10 if ai == "8019" else 12
        if len(value) > limit:
            raise IdentifierError(f"{what} {value} has {len(value)} digits; GS1 allows {limit}")
        if ai == "8011" and len(value) > 1 and value[0] == "0":
            raise IdentifierError(f"{what} {value} must not start with 0")
    return value


def _qualified(link: DigitalLink, found: dict[str, str]) -> DigitalLink:
    """``link`` (a primary key alone) with the qualifiers ``found`` after it."""
    if not found:
        return link
    if link.kind == "class":
        lot, serial, tpx = found.get("10"), found.get("21"), found.get("235")
        kind: LinkKind = (
            "item" if serial is not None or tpx is not None else "lot" if lot is not None else "class"
        )
        return DigitalLink(kind, gtin=link.gtin, cpv=found.get("22"), lot=lot, serial=serial, tpx=tpx)
    if link.kind == "itip":
        return replace(link, cpv=found.get("22"), lot=found.get("10"), serial=found.get("21"))
    return replace(
        link,
        gln_extension=found.get("254"),
        uic_ext=found.get("7040"),
        srin=found.get("8019"),
        cpid_serial=found.get("8011"),
        payment_ref=found.get("8020"),
    )


def _check_company_prefix(value: str, *, what: str) -> None:
    # GS1's linter rule gcppos1 ("key"): the value starts with a company prefix, 4+ digits.
    if not (len(value) >= 4 and value[:4].isascii() and value[:4].isdigit()):
        raise IdentifierError(
            f"{what} {value!r} must start with its owner's GS1 company prefix, 4 or more digits"
        )


def gmn_check_pair(body: str) -> str:
    """The two check characters of a GMN (AI 8013) whose other characters are ``body``."""
    _check_cset82(body, what="GMN body", max_len=23)
    # GS1 General Specifications 7.9.5: CSET 82 values weighted by primes from the right,
    # modulo 1021, split into two CSET 32 characters of 5 bits each.
    total = sum(_CSET82_ORDER.index(c) * p for c, p in zip(reversed(body), _PRIMES, strict=False)) % 1021
    return _CSET32[total >> 5] + _CSET32[total & 31]


def _primary(ai: str, value: str) -> DigitalLink:
    """The link a primary key value alone names (decoded value, checks verified)."""
    if ai == "01":
        return DigitalLink("class", gtin=validate_gtin(value))
    if ai == "00":
        return DigitalLink("sscc", sscc=validate_sscc(value))
    if ai in ("414", "415", "417"):
        kind: LinkKind = "location" if ai == "414" else "payto" if ai == "415" else "party"
        return DigitalLink(kind, gln=validate_gln(value))
    if ai in ("8017", "8018"):
        what = "GSRNP" if ai == "8017" else "GSRN"
        _check_key(value, what=what, lengths=(18,))
        return DigitalLink("gsrnp", gsrnp=value) if ai == "8017" else DigitalLink("gsrn", gsrn=value)
    if ai == "402":
        _check_key(value, what="GSIN", lengths=(17,))
        return DigitalLink("gsin", gsin=value)
    if ai == "8004":
        _check_cset82(value, what="GIAI", max_len=30)
        _check_company_prefix(value, what="GIAI")
        return DigitalLink("giai", giai=value)
    if ai == "401":
        _check_cset82(value, what="GINC", max_len=30)
        _check_company_prefix(value, what="GINC")
        return DigitalLink("ginc", ginc=value)
    if ai == "8010":
        if not value or len(value) > 30 or any(c not in _CSET39 for c in value):
            raise IdentifierError(
                f"CPID {value!r} must be 1 to 30 upper-case letters, digits, '#', '-' or '/'"
            )
        _check_company_prefix(value, what="CPID")
        return DigitalLink("cpid", cpid=value)
    if ai == "8013":
        _check_cset82(value, what="GMN", max_len=25)
        _check_company_prefix(value, what="GMN")
        expected = gmn_check_pair(value[:-2]) if len(value) >= 3 else ""
        if value[-2:] != expected:
            raise IdentifierError(
                f"GMN {value} has check characters {value[-2:]}; expected {expected or 'more'}"
            )
        return DigitalLink("gmn", gmn=value)
    if ai == "8006":
        # N14 check digit, then N4: this piece's number and the number of pieces.
        _check_digits(value, what="ITIP")
        if len(value) != 18:
            raise IdentifierError(
                f"ITIP {value} has {len(value)} digits; it needs 18: a GTIN-14, the piece "
                "number and the total number of pieces"
            )
        validate_gtin(value[:14])
        piece, total = int(value[14:16]), int(value[16:18])
        if not 1 <= piece <= total:
            raise IdentifierError(
                f"ITIP {value} says piece {value[14:16]} of {value[16:18]}; pieces count "
                "from 01 up to the total"
            )
        return DigitalLink("itip", itip=value)
    if ai == "8003":
        if len(value) < 14 or value[0] != "0":
            raise IdentifierError(
                f"GRAI value {value!r} must be a 0, the 13-digit GRAI and an optional serial"
            )
        _check_key(value[1:14], what="GRAI", lengths=(13,))
        serial = value[14:] or None
        if serial is not None:
            _check_cset82(serial, what="GRAI serial", max_len=16)
        return DigitalLink("grai", grai=value[1:14], serial=serial)
    if ai == "255":
        # The 13-digit GCN and an optional numeric serial of up to 12 digits.
        _check_key(value[:13], what="GCN", lengths=(13,))
        if len(value) > 25 or not (value.isascii() and value.isdigit()):
            raise IdentifierError(f"GCN {value!r} must be 13 digits and up to 12 more digits")
        return DigitalLink("gcn", gcn=value)
    # AI 253: the 13-digit GDTI and an optional serial.
    _check_key(value[:13], what="GDTI", lengths=(13,))
    serial = value[13:] or None
    if serial is not None:
        _check_cset82(serial, what="GDTI serial", max_len=17)
    return DigitalLink("gdti", gdti=value[:13], serial=serial)


# --- EPC URNs ----------------------------------------------------------------------------

_EPC_URN: Final = re.compile(r"(?i)urn:epc:(id|class|idpat):([a-z0-9]+):(.*)")


def _epc_numbers(urn: str, scheme: str, parts: list[str], *, total: int) -> tuple[str, str]:
    """The company prefix and numeric reference of an EPC URN, checked to spell a key body."""
    prefix, reference = parts[0], parts[1]
    if not (prefix.isascii() and prefix.isdigit() and 6 <= len(prefix) <= 12):
        raise IdentifierError(f"EPC URN {urn} must start with a GS1 company prefix of 6 to 12 digits")
    if reference and not (reference.isascii() and reference.isdigit()):
        raise IdentifierError(f"EPC URN {urn} has a non-digit reference {reference!r}")
    if len(prefix) + len(reference) != total:
        raise IdentifierError(
            f"EPC URN {urn}: company prefix and reference have {len(prefix) + len(reference)} "
            f"digits together; {scheme} URNs need {total}"
        )
    return prefix, reference


def _epc_component(urn: str, raw: str, *, what: str, max_len: int) -> str:
    for c in raw:
        if c in _EPC_ESCAPES and c != "%":
            raise IdentifierError(f"EPC URN {urn} must write {c!r} in its {what} as {_EPC_ESCAPES[c]}")
    value = _unescape(raw, what=what)
    _check_cset82(value, what=what, max_len=max_len)
    return value


def _complete(body: str) -> str:
    return body + gs1_check_digit(body)


# The EPC URNs with a Digital Link, and how many '.'-separated parts follow the scheme
# (the last part, a serial or reference, may itself contain dots).
_EPC_PARTS: Final = {
    ("id", "sgtin"): 3, ("class", "lgtin"): 3, ("idpat", "sgtin"): 3, ("id", "sscc"): 2,
    ("id", "sgln"): 3, ("id", "pgln"): 2, ("id", "grai"): 3, ("id", "gdti"): 3,
    ("id", "gsrn"): 2, ("id", "giai"): 2, ("id", "gsrnp"): 2, ("id", "ginc"): 2,
    ("id", "gsin"): 2, ("id", "sgcn"): 3, ("id", "itip"): 5, ("id", "upui"): 3, ("id", "cpi"): 3,
}  # fmt: skip


def _from_epc_urn(urn: str) -> DigitalLink | _NoConversion:
    m = _EPC_URN.fullmatch(urn)
    if m is None:
        return _NoConversion(f"{urn} is not an EPC pure identity, class or pattern URN")
    form, scheme, body = m.group(1).lower(), m.group(2).lower(), m.group(3)
    count = _EPC_PARTS.get((form, scheme))
    if count is None:
        return _NoConversion(f"{urn} is an EPC URN of scheme {form}:{scheme}, which has no Digital Link here")
    parts = body.split(".", count - 1)
    if len(parts) != count:
        raise IdentifierError(f"EPC URN {urn} must have {count} parts after '{scheme}:', separated by '.'")
    if form == "idpat" and parts[1:] == ["*", "*"]:
        return _NoConversion(f"{urn} matches every product of a company, so it names no GTIN to link to")

    if scheme in ("sgtin", "lgtin", "itip", "upui"):
        prefix, reference = _epc_numbers(urn, scheme, parts, total=13)
        # The reference starts with the GTIN's indicator digit, which leads the GTIN.
        gtin = _complete(reference[0] + prefix + reference[1:])
        if form == "idpat":
            if parts[2] != "*":
                raise IdentifierError(f"EPC pattern {urn} must end in '.*' to name a GTIN")
            return DigitalLink("class", gtin=gtin)
        if form == "class":
            lot = _epc_component(urn, parts[2], what="lot", max_len=20)
            return DigitalLink("lot", gtin=gtin, lot=lot)
        if scheme == "upui":
            tpx = _epc_component(urn, parts[2], what="third-party serial (TPX)", max_len=28)
            return DigitalLink("item", gtin=gtin, tpx=tpx)
        if scheme == "itip":
            piece_total = parts[2] + parts[3]
            if not (len(piece_total) == 4 and piece_total.isascii() and piece_total.isdigit()):
                raise IdentifierError(f"EPC URN {urn} must give piece and total as 2 digits each")
            serial = _epc_component(urn, parts[4], what="serial", max_len=20)
            return replace(_primary("8006", gtin + piece_total), serial=serial)
        serial = _epc_component(urn, parts[2], what="serial", max_len=20)
        return DigitalLink("item", gtin=gtin, serial=serial)
    if scheme == "sscc":
        prefix, reference = _epc_numbers(urn, scheme, parts, total=17)
        # Likewise the extension digit leads the serial reference and the SSCC.
        return DigitalLink("sscc", sscc=_complete(reference[0] + prefix + reference[1:]))
    if scheme == "giai":
        prefix = parts[0]
        if not (prefix.isascii() and prefix.isdigit() and 6 <= len(prefix) <= 12):
            raise IdentifierError(f"EPC URN {urn} must start with a GS1 company prefix of 6 to 12 digits")
        reference = _epc_component(urn, parts[1], what="asset reference", max_len=30 - len(prefix))
        return DigitalLink("giai", giai=prefix + reference)
    if scheme in ("ginc", "cpi"):
        prefix = parts[0]
        if not (prefix.isascii() and prefix.isdigit() and 6 <= len(prefix) <= 12):
            raise IdentifierError(f"EPC URN {urn} must start with a GS1 company prefix of 6 to 12 digits")
        if scheme == "ginc":
            reference = _epc_component(urn, parts[1], what="consignment reference", max_len=30 - len(prefix))
            return _primary("401", prefix + reference)
        # A component/part reference writes '#' and '/' as %23 and %2F (Tag Data Standard).
        reference = parts[1].replace("%23", "#").replace("%2F", "/")
        cpid = _primary("8010", prefix + reference)
        return _qualified(cpid, {"8011": _qualifier_value("8011", parts[2])})
    if scheme in ("gsrn", "gsrnp"):
        key = _complete("".join(_epc_numbers(urn, scheme, parts, total=17)))
        return _primary("8018" if scheme == "gsrn" else "8017", key)
    if scheme == "gsin":
        return _primary("402", _complete("".join(_epc_numbers(urn, scheme, parts, total=16))))
    key = _complete("".join(_epc_numbers(urn, scheme, parts, total=12)))
    if scheme == "pgln":
        return DigitalLink("party", gln=key)
    if scheme == "sgln":
        # The Tag Data Standard reserves extension "0" to mean "no extension".
        if parts[2] == "0":
            return DigitalLink("location", gln=key)
        ext = _epc_component(urn, parts[2], what="GLN extension", max_len=20)
        return DigitalLink("location", gln=key, gln_extension=ext)
    if scheme == "grai":
        serial = _epc_component(urn, parts[2], what="GRAI serial", max_len=16)
        return DigitalLink("grai", grai=key, serial=serial)
    if scheme == "sgcn":
        # The coupon's serial component is numeric, 1 to 12 digits.
        if not (parts[2].isascii() and parts[2].isdigit() and 1 <= len(parts[2]) <= 12):
            raise IdentifierError(f"EPC URN {urn} must end in a GCN serial of 1 to 12 digits")
        return _primary("255", key + parts[2])
    serial = _epc_component(urn, parts[2], what="GDTI serial", max_len=17)
    return DigitalLink("gdti", gdti=key, serial=serial)


# --- Entry points ------------------------------------------------------------------------


def _bare_key(code: str) -> DigitalLink:
    if len(code) == 18:
        return DigitalLink("sscc", sscc=validate_sscc(code))
    if len(code) in (8, 12, 13, 14):
        # 13 digits could also be a GLN; as a product code it is read as a GTIN-13, the
        # number under a retail barcode.
        return DigitalLink("class", gtin=validate_gtin(code))
    raise IdentifierError(
        f"{code} has {len(code)} digits; a bare GS1 key must be a GTIN "
        "(8, 12, 13 or 14 digits) or an SSCC (18 digits)"
    )


_WHITESPACE = re.compile(r"\s")


def _convert(code: str) -> DigitalLink | _NoConversion:
    if not code:
        raise IdentifierError("identifier is empty")
    if _WHITESPACE.search(code):
        raise IdentifierError(f"identifier {code!r} contains whitespace, which no URI or key does")
    if code.isascii() and code.isdigit():
        return _bare_key(code)
    if code[:8].lower() == "urn:epc:":
        return _from_epc_urn(code)
    if code.startswith("/") or _WEB_URI.fullmatch(code):
        return _from_digital_link(code)
    return _NoConversion(f"{code} is not a GS1 key, an EPC URN or a GS1 Digital Link")


def parse_digital_link(uri: str) -> DigitalLink:
    """Decode a Digital Link on any domain, or its bare path such as ``/01/…/10/ABC``."""
    if not (uri.startswith("/") or _WEB_URI.fullmatch(uri)):
        raise IdentifierError(
            f"{uri!r} is not a Digital Link; expected https://<domain>/01/<gtin>… or a path "
            "such as /01/09506000134352"
        )
    return parse_code(uri)


def canonical_code(code: str) -> str:
    """The canonical ``https://id.gs1.org/…`` Digital Link of a GS1 key, check digits verified.

    Accepts a Digital Link on any domain (with any path prefix), an EPC URN of a scheme that
    has a Digital Link (sgtin, lgtin, sgtin pattern, sscc, sgln, grai, giai, gsrn, gdti,
    pgln; their check digits are computed, as URNs carry none) or a bare GTIN or SSCC.
    """
    return parse_code(code).canonical


def parse_code(code: str) -> DigitalLink:
    """Any accepted product code (Digital Link on any domain, EPC URN, bare GTIN or SSCC)
    decoded, check digits verified."""
    link = _convert(code)
    if isinstance(link, _NoConversion) and (code.startswith("/") or _WEB_URI.fullmatch(code)):
        # Said to be a product code: any key AI in the path makes it a Digital Link, so
        # that /01/123 is refused for its GTIN rather than for naming no key.
        link = _from_digital_link(code, loose=True)
    if isinstance(link, _NoConversion):
        raise IdentifierError(link.reason)
    return link


def digital_link_path(code: str) -> str:
    """The Digital Link path of any accepted code, such as ``/01/09506000134352/21/7``: put
    a resolver's base URL in front of it to get the URL a QR code carries."""
    return parse_code(code).path


def element_string(code: str) -> str:
    """The GS1 element string printed under a barcode, e.g. ``(01)09506000134352(21)7``:
    each application identifier in brackets, then its value as written (not escaped)."""
    return "".join(f"({ai}){value}" for ai, value in parse_code(code).elements)


def index_key(code: str) -> str:
    """The key an identifier is indexed under: its canonical form if it is a GS1 key,
    otherwise the identifier unchanged.

    A GS1 key with a wrong check digit or shape is refused rather than indexed as written:
    a typo stored verbatim would split one product's history across two keys unnoticed.
    """
    link = _convert(code)
    return code if isinstance(link, _NoConversion) else link.canonical


def epc_urn(canonical: str, *, company_prefix_length: int = 7) -> str:
    """The EPC URN of a Digital Link: sgtin, lgtin class, sgtin pattern, sscc, sgln, pgln,
    grai, giai, gsrn or gdti.

    An EPC URN separates the GS1 company prefix from the rest of the key; a Digital Link
    does not, and the prefix length can only be looked up in GS1's allocation table, which a
    pure function has not got. So the caller says it: 7 by default, the length in most of
    GS1's examples. The same key split at another length is a different URN string, which is
    why the ledger indexes Digital Links, never URNs.
    """
    if not 6 <= company_prefix_length <= 12:
        raise IdentifierError(
            f"company_prefix_length is {company_prefix_length}; GS1 company prefixes in EPC "
            "URNs have 6 to 12 digits"
        )
    link = parse_digital_link(canonical)
    n = company_prefix_length
    # Qualifiers the Tag Data Standard has no place for: an EPC would drop them silently.
    for ai, _ in link.elements[1:]:
        if ai in ("7040", "8019", "8020", "22"):
            what = _QUALIFIER_NAMES[ai]
            raise IdentifierError(f"{canonical} has a {what} (AI {ai}), which no EPC URN carries")
    if link.kind in ("class", "lot", "item", "itip"):
        gtin = (link.itip or "")[:14] if link.kind == "itip" else link.gtin or ""
        numbers = f"{gtin[1 : 1 + n]}.{gtin[0]}{gtin[1 + n : 13]}"
        if link.kind == "itip":
            itip = link.itip or ""
            if link.serial is None:
                raise IdentifierError(f"{canonical} is an ITIP without a serial, which has no EPC URN")
            return f"urn:epc:id:itip:{numbers}.{itip[14:16]}.{itip[16:]}.{_epc_escape(link.serial)}"
        # An item's EPC is GTIN + serial; its lot is an attribute, not part of its identity.
        if link.kind == "item" and link.tpx is not None:
            return f"urn:epc:id:upui:{numbers}.{_epc_escape(link.tpx)}"
        if link.kind == "item":
            return f"urn:epc:id:sgtin:{numbers}.{_epc_escape(link.serial or '')}"
        if link.kind == "lot":
            return f"urn:epc:class:lgtin:{numbers}.{_epc_escape(link.lot or '')}"
        return f"urn:epc:idpat:sgtin:{numbers}.*"
    if link.kind == "sscc":
        sscc = link.sscc or ""
        return f"urn:epc:id:sscc:{sscc[1 : 1 + n]}.{sscc[0]}{sscc[1 + n : 17]}"
    if link.kind == "location":
        gln = link.gln or ""
        if link.gln_extension == "0":
            raise IdentifierError(f"{canonical} has GLN extension 0, which an SGLN URN reads as no extension")
        ext = _epc_escape(link.gln_extension) if link.gln_extension is not None else "0"
        return f"urn:epc:id:sgln:{gln[:n]}.{gln[n:12]}.{ext}"
    if link.kind == "party":
        gln = link.gln or ""
        return f"urn:epc:id:pgln:{gln[:n]}.{gln[n:12]}"
    if link.kind in ("gsrn", "gsrnp"):
        gsrn = (link.gsrn or link.gsrnp) or ""
        return f"urn:epc:id:{link.kind}:{gsrn[:n]}.{gsrn[n:17]}"
    if link.kind == "gsin":
        gsin = link.gsin or ""
        return f"urn:epc:id:gsin:{gsin[:n]}.{gsin[n:16]}"
    if link.kind in ("giai", "ginc", "cpid"):
        key = (link.giai or link.ginc or link.cpid) or ""
        what = link.kind.upper()
        if len(key) <= n or not (key[:n].isascii() and key[:n].isdigit()):
            raise IdentifierError(
                f"{what} {key!r} does not start with a {n}-digit company prefix and a reference"
            )
        if link.kind != "cpid":
            return f"urn:epc:id:{link.kind}:{key[:n]}.{_epc_escape(key[n:])}"
        if link.cpid_serial is None:
            raise IdentifierError(f"{canonical} is a CPID without a serial, which has no EPC URN")
        reference = key[n:].replace("#", "%23").replace("/", "%2F")
        return f"urn:epc:id:cpi:{key[:n]}.{reference}.{link.cpid_serial}"
    if link.kind == "gcn":
        gcn = link.gcn or ""
        if len(gcn) == 13:
            raise IdentifierError(f"{canonical} is a GCN without a serial, which has no EPC URN")
        return f"urn:epc:id:sgcn:{gcn[:n]}.{gcn[n:12]}.{gcn[13:]}"
    if link.kind in ("payto", "gmn"):
        raise IdentifierError(f"{canonical} is a {link.kind.upper()} key, which has no EPC URN")
    # GRAI and GDTI: an EPC names one instance, so the serial is required.
    key = (link.grai if link.kind == "grai" else link.gdti) or ""
    if link.serial is None:
        raise IdentifierError(f"{canonical} is a {link.kind.upper()} without a serial, which has no EPC URN")
    return f"urn:epc:id:{link.kind}:{key[:n]}.{key[n:12]}.{_epc_escape(link.serial)}"
