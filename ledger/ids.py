"""Party and product identifiers: USCC and GS1 check characters, and one canonical form,
the GS1 Digital Link on ``https://id.gs1.org``, for every GS1 key however it was written.

Everything here is a pure function of strings; every refusal raises ``IdentifierError``.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import quote

from ledger.errors import IdentifierError

# --- Party identifiers -------------------------------------------------------------------

USCC_CHARSET: Final = "0123456789ABCDEFGHJKLMNPQRTUWXY"
"""GB 32100-2015: digits and upper-case letters without I, O, S, V, Z (values 0-30)."""

_USCC_VALUE: Final = {c: i for i, c in enumerate(USCC_CHARSET)}
_USCC_WEIGHTS: Final = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


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


def uscc_check_char(first17: str) -> str:
    """The 18th character of the unified social credit code that starts with ``first17``."""
    _check_uscc_chars(first17, what="USCC body", length=17)
    total = sum(_USCC_VALUE[c] * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return USCC_CHARSET[(31 - total % 31) % 31]


def validate_uscc(code: str) -> str:
    """Return ``code`` if it is an 18-character USCC with a correct check character."""
    _check_uscc_chars(code, what="USCC", length=18)
    expected = uscc_check_char(code[:17])
    if code[17] != expected:
        raise IdentifierError(f"USCC {code} has check character {code[17]}; expected {expected}")
    return code


def make_uscc(first17: str) -> str:
    """Complete 17 USCC characters with their check character (demo and test data)."""
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
    total = 3 * sum(map(ord, rev[0::2])) + sum(map(ord, rev[1::2])) - 48 * (
        3 * len(rev[0::2]) + len(rev[1::2]))
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
    "class", "lot", "item", "sscc", "location", "party", "grai", "giai", "gsrn", "gdti"
]


@dataclass(frozen=True)
class DigitalLink:
    """A GS1 key with its qualifiers, as ``parse_digital_link`` decodes it.

    Values are decoded (no percent-escapes); GTINs are 14 digits. ``serial`` is the
    serial of an item, or the serial component of a GRAI or GDTI. ``gln`` is the GLN of a
    location (AI 414) or of a party (AI 417).
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

    @property
    def path(self) -> str:
        """The Digital Link path, the same on any resolver domain."""
        if self.kind in ("class", "lot", "item"):
            return (
                f"/01/{self.gtin}"
                + (f"/22/{_dl_escape(self.cpv)}" if self.cpv is not None else "")
                + (f"/10/{_dl_escape(self.lot)}" if self.lot is not None else "")
                + (f"/21/{_dl_escape(self.serial)}" if self.serial is not None else "")
            )
        if self.kind == "sscc":
            return f"/00/{self.sscc}"
        if self.kind == "location":
            ext = self.gln_extension
            return f"/414/{self.gln}" + (f"/254/{_dl_escape(ext)}" if ext is not None else "")
        if self.kind == "party":
            return f"/417/{self.gln}"
        if self.kind == "grai":
            # AI 8003 is a filler 0, the 13-digit GRAI, then the optional serial, all one value.
            return f"/8003/0{self.grai}{_dl_escape(self.serial or '')}"
        if self.kind == "giai":
            return f"/8004/{_dl_escape(self.giai or '')}"
        if self.kind == "gsrn":
            return f"/8018/{self.gsrn}"
        return f"/253/{self.gdti}{_dl_escape(self.serial or '')}"

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
    out: list[str] = []
    i = 0
    while i < len(raw):
        if raw[i] != "%":
            out.append(raw[i])
            i += 1
            continue
        pair = raw[i + 1 : i + 3]
        if len(pair) != 2 or not all(c in string.hexdigits for c in pair):
            raise IdentifierError(
                f"{what} {raw!r} has a '%' that does not start an escape such as %25"
            )
        # Bytes are decoded one by one: anything outside ASCII fails the CSET 82 check after.
        out.append(chr(int(pair, 16)))
        i += 3
    return "".join(out)


def _check_cset82(value: str, *, what: str, max_len: int) -> None:
    if not value:
        raise IdentifierError(f"{what} is empty")
    if len(value) > max_len:
        raise IdentifierError(
            f"{what} {value!r} has {len(value)} characters; GS1 allows at most {max_len}"
        )
    for c in value:
        if c not in _CSET82:
            raise IdentifierError(
                f"{what} {value!r} contains {c!r}, which GS1 does not allow "
                "(only letters, digits and !\"%&'()*+,-./:;<=>?_)"
            )


# --- Digital Link URIs -------------------------------------------------------------------

# Every AI the GS1 Digital Link standard admits as a primary key; only some are converted.
_PRIMARY_KEY_AIS: Final = frozenset(
    "00 01 253 255 401 402 414 417 8003 8004 8006 8010 8013 8017 8018".split()
)
_CONVERTED_AIS: Final = ("00", "01", "253", "414", "417", "8003", "8004", "8018")
# Key qualifiers in the one order the standard allows them.
_QUALIFIERS: Final[dict[str, tuple[str, ...]]] = {"01": ("22", "10", "21"), "414": ("254",)}
# Qualifiers GS1 defines that have no field here; such links are indexed as written.
_UNCONVERTED_QUALIFIERS: Final[dict[str, frozenset[str]]] = {
    "01": frozenset({"235"}),
    "414": frozenset({"7040"}),
    "8018": frozenset({"8019"}),
}
_AI_SEGMENT: Final = re.compile(r"[0-9]{2,4}")
_WEB_URI: Final = re.compile(r"(?i)https?://([^/?#]*)(.*)")
_QUALIFIER_NAMES: Final = {"22": "CPV", "10": "lot", "21": "serial", "254": "GLN extension"}


def _from_digital_link(uri: str) -> DigitalLink | _NoConversion:
    web = _WEB_URI.fullmatch(uri)
    if web is not None and not web.group(1):
        raise IdentifierError(f"Digital Link {uri} has no domain after the scheme")
    rest = web.group(2) if web is not None else uri
    # Query and fragment carry data attributes and link types, never identity.
    path = rest.split("#", 1)[0].split("?", 1)[0]
    segments = path.split("/")[1:]
    if segments and not segments[-1]:
        segments.pop()
    # As GS1's own parser does: walk /AI/value pairs back from the end of the path; the
    # first primary key found is the root and anything before it is the domain's own prefix.
    root = None
    i = len(segments) - 2
    while i >= 0 and _AI_SEGMENT.fullmatch(segments[i]):
        if segments[i] in _PRIMARY_KEY_AIS:
            root = i
            break
        i -= 2
    if root is None:
        return _NoConversion(
            f"{uri} is not a GS1 Digital Link: its path names no GS1 key such as /01/ or /00/"
        )
    ai = segments[root]
    if ai not in _CONVERTED_AIS:
        return _NoConversion(
            f"{uri} uses GS1 key AI {ai}, which this ledger does not convert "
            f"(it converts AIs {', '.join(_CONVERTED_AIS)})"
        )
    link = _primary(ai, _unescape(segments[root + 1], what=f"AI {ai} value"))

    allowed = _QUALIFIERS.get(ai, ())
    found: dict[str, str] = {}
    last = -1
    for j in range(root + 2, len(segments), 2):
        q = segments[j]
        if q in _UNCONVERTED_QUALIFIERS.get(ai, frozenset()):
            return _NoConversion(
                f"{uri} has key qualifier AI {q}, which this ledger does not convert"
            )
        if q not in allowed:
            after = f"only {', '.join(allowed)} may follow it" if allowed else "it takes none"
            raise IdentifierError(
                f"Digital Link {uri} has AI {q} in its path, which is not a key qualifier of "
                f"AI {ai} ({after}); data attributes belong in the query string"
            )
        if allowed.index(q) <= last:
            raise IdentifierError(
                f"Digital Link {uri} must give the qualifiers of AI {ai} at most once each, "
                f"in the order {', '.join(allowed)}"
            )
        last = allowed.index(q)
        value = _unescape(segments[j + 1], what=_QUALIFIER_NAMES[q])
        _check_cset82(value, what=_QUALIFIER_NAMES[q], max_len=20)
        found[q] = value

    if ai == "414":
        return DigitalLink("location", gln=link.gln, gln_extension=found.get("254"))
    if ai == "01":
        lot, serial = found.get("10"), found.get("21")
        kind: LinkKind = "item" if serial is not None else "lot" if lot is not None else "class"
        return DigitalLink(kind, gtin=link.gtin, cpv=found.get("22"), lot=lot, serial=serial)
    return link


def _primary(ai: str, value: str) -> DigitalLink:
    """The link a primary key value alone names (decoded value, checks verified)."""
    if ai == "01":
        return DigitalLink("class", gtin=validate_gtin(value))
    if ai == "00":
        return DigitalLink("sscc", sscc=validate_sscc(value))
    if ai == "414":
        return DigitalLink("location", gln=validate_gln(value))
    if ai == "417":
        return DigitalLink("party", gln=validate_gln(value))
    if ai == "8018":
        _check_key(value, what="GSRN", lengths=(18,))
        return DigitalLink("gsrn", gsrn=value)
    if ai == "8004":
        _check_cset82(value, what="GIAI", max_len=30)
        # GS1's linter rule gcppos1: the value starts with a company prefix, at least 4 digits.
        if not (len(value) >= 4 and value[:4].isascii() and value[:4].isdigit()):
            raise IdentifierError(
                f"GIAI {value!r} must start with its owner's GS1 company prefix, 4 or more digits"
            )
        return DigitalLink("giai", giai=value)
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
        raise IdentifierError(
            f"EPC URN {urn} must start with a GS1 company prefix of 6 to 12 digits"
        )
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
            raise IdentifierError(
                f"EPC URN {urn} must write {c!r} in its {what} as {_EPC_ESCAPES[c]}"
            )
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
    ("id", "gsrn"): 2, ("id", "giai"): 2,
}  # fmt: skip


def _from_epc_urn(urn: str) -> DigitalLink | _NoConversion:
    m = _EPC_URN.fullmatch(urn)
    if m is None:
        return _NoConversion(f"{urn} is not an EPC pure identity, class or pattern URN")
    form, scheme, body = m.group(1).lower(), m.group(2).lower(), m.group(3)
    count = _EPC_PARTS.get((form, scheme))
    if count is None:
        return _NoConversion(
            f"{urn} is an EPC URN of scheme {form}:{scheme}, which has no Digital Link here"
        )
    parts = body.split(".", count - 1)
    if len(parts) != count:
        raise IdentifierError(
            f"EPC URN {urn} must have {count} parts after '{scheme}:', separated by '.'"
        )
    if form == "idpat" and parts[1:] == ["*", "*"]:
        return _NoConversion(
            f"{urn} matches every product of a company, so it names no GTIN to link to"
        )

    if scheme in ("sgtin", "lgtin"):
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
        serial = _epc_component(urn, parts[2], what="serial", max_len=20)
        return DigitalLink("item", gtin=gtin, serial=serial)
    if scheme == "sscc":
        prefix, reference = _epc_numbers(urn, scheme, parts, total=17)
        # Likewise the extension digit leads the serial reference and the SSCC.
        return DigitalLink("sscc", sscc=_complete(reference[0] + prefix + reference[1:]))
    if scheme == "giai":
        prefix = parts[0]
        if not (prefix.isascii() and prefix.isdigit() and 6 <= len(prefix) <= 12):
            raise IdentifierError(
                f"EPC URN {urn} must start with a GS1 company prefix of 6 to 12 digits"
            )
        reference = _epc_component(urn, parts[1], what="asset reference", max_len=30 - len(prefix))
        return DigitalLink("giai", giai=prefix + reference)
    if scheme == "gsrn":
        return DigitalLink(
            "gsrn", gsrn=_complete("".join(_epc_numbers(urn, scheme, parts, total=17)))
        )
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
    link = _convert(uri)
    if isinstance(link, _NoConversion):
        raise IdentifierError(link.reason)
    return link


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
    link = parse_code(code)
    parts: list[tuple[str, str | None]]
    if link.kind in ("class", "lot", "item"):
        parts = [("01", link.gtin), ("22", link.cpv), ("10", link.lot), ("21", link.serial)]
    elif link.kind == "sscc":
        parts = [("00", link.sscc)]
    elif link.kind == "location":
        parts = [("414", link.gln), ("254", link.gln_extension)]
    elif link.kind == "party":
        parts = [("417", link.gln)]
    elif link.kind == "grai":
        parts = [("8003", f"0{link.grai}{link.serial or ''}")]
    elif link.kind == "giai":
        parts = [("8004", link.giai)]
    elif link.kind == "gsrn":
        parts = [("8018", link.gsrn)]
    else:
        parts = [("253", f"{link.gdti}{link.serial or ''}")]
    return "".join(f"({ai}){value}" for ai, value in parts if value is not None)


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
    if link.kind in ("class", "lot", "item"):
        if link.cpv is not None:
            raise IdentifierError(
                f"{canonical} has a consumer product variant (AI 22), which no EPC URN carries"
            )
        gtin = link.gtin or ""
        numbers = f"{gtin[1 : 1 + n]}.{gtin[0]}{gtin[1 + n : 13]}"
        # An item's EPC is GTIN + serial; its lot is an attribute, not part of its identity.
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
            raise IdentifierError(
                f"{canonical} has GLN extension 0, which an SGLN URN reads as no extension"
            )
        ext = _epc_escape(link.gln_extension) if link.gln_extension is not None else "0"
        return f"urn:epc:id:sgln:{gln[:n]}.{gln[n:12]}.{ext}"
    if link.kind == "party":
        gln = link.gln or ""
        return f"urn:epc:id:pgln:{gln[:n]}.{gln[n:12]}"
    if link.kind == "gsrn":
        gsrn = link.gsrn or ""
        return f"urn:epc:id:gsrn:{gsrn[:n]}.{gsrn[n:17]}"
    if link.kind == "giai":
        giai = link.giai or ""
        if len(giai) <= n or not (giai[:n].isascii() and giai[:n].isdigit()):
            raise IdentifierError(
                f"GIAI {giai!r} does not start with a {n}-digit company prefix and a reference"
            )
        return f"urn:epc:id:giai:{giai[:n]}.{_epc_escape(giai[n:])}"
    # GRAI and GDTI: an EPC names one instance, so the serial is required.
    key = (link.grai if link.kind == "grai" else link.gdti) or ""
    if link.serial is None:
        raise IdentifierError(
            f"{canonical} is a {link.kind.upper()} without a serial, which has no EPC URN"
        )
    return f"urn:epc:id:{link.kind}:{key[:n]}.{key[n:12]}.{_epc_escape(link.serial)}"
