"""The EPCIS Event Hash ID of CBV 2.0 (section 8.9): a name of an event that does not depend on
its syntax (XML or JSON-LD), key order, namespace prefixes, identifier spelling (EPC URN or
Digital Link) or time zone.

``pre_hash`` builds the canonical pre-hash string from an event in its JSON-LD binding and
``event_hash`` names it ``ni:///sha-256;<hex>?ver=CBV2.0``. Pure: no I/O beyond reading the
standard context shipped with the package once.

Where the CBV text and GS1's reference implementation (epcis-event-hash-generator 1.9.3)
differ, this follows the reference, since its outputs are the hashes other systems compare
with: ``bizTransactionList``, ``sourceList``, ``destinationList``, ``ilmd``, extension
elements of ``readPoint``/``bizLocation`` and the event's own extension elements are
appended after the ordered fields as one lexically sorted group. Left out, as the algorithm
says: ``eventID``, ``recordTime``, ``errorDeclaration`` (so an error declaration has the hash
of the event it declares erroneous) and ``@context``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Collection, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from importlib import resources
from typing import Any, Final

from ledger.core.canonical import canonical_bytes
from ledger.core.errors import MalformedInput
from ledger.core.ids import gs1_check_digit
from ledger.core.records import Captured as Captured
from ledger.core.records import CaptureKey as CaptureKey
from ledger.core.times import clock_time

HASH_VERSION: Final = "CBV2.0"
GS1_DL: Final = "https://id.gs1.org"
CBV: Final = "https://ref.gs1.org/cbv/"
GS1_VOC: Final = "https://gs1.org/voc/"
EPCIS_NS: Final = "https://ref.gs1.org/epcis/"

# Prefixes every event may use without declaring them (the standard context's, and CBEC's).
STANDARD_NAMESPACES: Final[Mapping[str, str]] = {
    "epcis": EPCIS_NS,
    "cbv": CBV,
    "gs1": GS1_VOC,
    "cbvmda": "urn:epcglobal:cbv:mda:",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "owl": "http://www.w3.org/2002/07/owl#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "dcterms": "http://purl.org/dc/terms/",
    "cbec": "https://suyuan.example/cbec#",
}

IGNORED: Final = frozenset({"type", "eventID", "recordTime", "errorDeclaration", "@context"})
_OLD_CBV: Final = (
    ("urn:epcglobal:cbv:bizstep:", CBV + "BizStep-"),
    ("urn:epcglobal:cbv:disp:", CBV + "Disp-"),
    ("urn:epcglobal:cbv:btt:", CBV + "BTT-"),
    ("urn:epcglobal:cbv:sdt:", CBV + "SDT-"),
    ("urn:epcglobal:cbv:er:", CBV + "ER-"),
)
# A text longer than an identifier may be (the event schema's 300 characters) is free text:
# it is normalised each time, so that no cache here holds more than a few MB.
_CACHED_TEXT_MAX: Final = 300
_TIMESTAMP = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$")


@lru_cache(maxsize=1)
def vocabulary() -> Mapping[str, str]:
    """Bare CBV and GS1 words of the standard EPCIS 2.0 context (``shipping``,
    ``in_transit``, ``po``, ``Temperature``, …) and the IRIs they stand for."""
    text = resources.files("ledger").joinpath("gs1data/epcis-context.jsonld").read_text("utf-8")
    out: dict[str, str] = {}

    def walk(ctx: object) -> None:
        if isinstance(ctx, list):
            for c in ctx:
                walk(c)
        elif isinstance(ctx, dict):
            for k, v in ctx.items():
                if isinstance(v, str) and v.startswith(("cbv:", "gs1:")):
                    out[k] = expand_curie(v, STANDARD_NAMESPACES)
                elif isinstance(v, dict) and "@context" in v:
                    walk(v["@context"])

    walk(json.loads(text)["@context"])
    return out


def expand_curie(value: str, namespaces: Mapping[str, str]) -> str:
    prefix, sep, rest = value.partition(":")
    if sep and not rest.startswith("//") and prefix in namespaces:
        return namespaces[prefix] + rest
    return value


def namespaces_of(body: Mapping[str, Any], context: object = None) -> dict[str, str]:
    """The prefixes an event declares: ``context`` (a document's ``@context``), then the event's
    own ``@context``, later ones winning. A key whose prefix only the standard context binds
    (``cbvmda:lotNumber``) stays as written, as in the reference implementation."""
    out: dict[str, str] = {}
    for ctx in (context, body.get("@context")):
        if ctx is None:  # the common case, and an ABC isinstance check is slow
            continue
        for part in ctx if isinstance(ctx, list) else [ctx]:
            if isinstance(part, Mapping):
                out.update({k: v for k, v in part.items() if isinstance(v, str) and not k.startswith("@")})
    return out


# --- identifiers: EPC URNs and Digital Links to the constrained canonical Digital Link ---------

_PCT = str.maketrans({"!": "%21", "(": "%28", ")": "%29", "*": "%2A", "+": "%2B", ",": "%2C", ":": "%3A"})


def _enc(v: str) -> str:
    return v.translate(_PCT)


def _cd(digits: str) -> str:
    return digits + gs1_check_digit(digits)


def _gtin(cp: str, ir: str) -> str | None:
    if len(cp) + len(ir) != 13 or not (cp + ir).isdigit() or not 6 <= len(cp) <= 12:
        return None
    return _cd(ir[0] + cp + ir[1:])


def _epc_id(scheme: str, f: list[str]) -> str | None:  # noqa: C901 - one branch per scheme
    cp = f[0] if f else ""
    if not (cp.isdigit() and 6 <= len(cp) <= 12):
        return None
    n = len(f)
    if scheme == "sgtin" and n == 3 and (g := _gtin(cp, f[1])):
        return f"/01/{g}/21/{_enc(f[2])}"
    if scheme == "upui" and n == 3 and (g := _gtin(cp, f[1])):
        return f"/01/{g}/235/{_enc(f[2])}"
    if scheme == "itip" and n == 5 and (g := _gtin(cp, f[1])) and (f[2] + f[3]).isdigit():
        return f"/8006/{g}{f[2]}{f[3]}/21/{_enc(f[4])}"
    if scheme in ("sscc", "gsrn", "gsrnp", "gsin") and n == 2 and f[1].isdigit():
        total = {"sscc": 17, "gsrn": 17, "gsrnp": 17, "gsin": 16}[scheme]
        if len(cp) + len(f[1]) != total:
            return None
        ai = {"sscc": "00", "gsrn": "8018", "gsrnp": "8017", "gsin": "402"}[scheme]
        raw = f[1][0] + cp + f[1][1:] if scheme == "sscc" else cp + f[1]
        return f"/{ai}/{_cd(raw)}"
    if scheme in ("sgln", "grai", "gdti", "sgcn") and n == 3 and len(cp) + len(f[1]) == 12:
        if not f[1].isdigit() and f[1] != "":
            return None
        base = cp + f[1]
        if scheme == "sgln":
            return f"/414/{_cd(base)}" + ("" if f[2] == "0" else f"/254/{_enc(f[2])}")
        if scheme == "grai":
            return f"/8003/{_cd('0' + base)}{_enc(f[2])}"
        if scheme == "gdti":
            return f"/253/{_cd(base)}{_enc(f[2])}"
        return f"/255/{_cd(base)}{f[2]}"
    if scheme == "pgln" and n == 2 and len(cp) + len(f[1]) == 12:
        return f"/417/{_cd(cp + f[1])}"
    if scheme in ("giai", "ginc") and n == 2:
        return f"/{'8004' if scheme == 'giai' else '401'}/{cp}{_enc(f[1])}"
    if scheme == "cpi" and n == 3:
        return f"/8010/{_enc(cp + f[1])}/8011/{f[2]}"
    return None


def _epc_pattern(scheme: str, f: list[str]) -> str | None:
    if not f or f[-1] != "*":
        return None
    cp, rest = f[0], f[1:-1]
    if scheme in ("sgtin", "upui") and len(rest) == 1 and (g := _gtin(cp, rest[0])):
        return f"/01/{g}"
    if scheme == "itip" and len(rest) == 3 and (g := _gtin(cp, rest[0])):
        return f"/8006/{g}{rest[1]}{rest[2]}"
    if scheme in ("grai", "gdti", "sgcn") and len(rest) == 1 and len(cp) + len(rest[0]) == 12:
        base = ("0" if scheme == "grai" else "") + cp + rest[0]
        if not base.isdigit():
            return None
        return f"/{ {'grai': '8003', 'gdti': '253', 'sgcn': '255'}[scheme] }/{_cd(base)}"
    if scheme == "cpi" and len(rest) == 1:
        return f"/8010/{_enc(cp + rest[0])}"
    return None


_DL_ALIASES: Final = {
    "gtin": "01",
    "itip": "8006",
    "cpid": "8010",
    "gln": "414",
    "party": "417",
    "gsrnp": "8017",
    "gsrn": "8018",
    "gcn": "255",
    "sscc": "00",
    "gdti": "253",
    "ginc": "401",
    "gsin": "402",
    "grai": "8003",
    "giai": "8004",
    "cpv": "22",
    "lot": "10",
    "ser": "21",
}
_PRIMARY: Final = frozenset(
    {"00", "01", "8006", "8010", "414", "417", "8017", "8018", "255", "253", "401", "402", "8003", "8004"}
)
# The key qualifiers the constrained form keeps, finest first.
_QUALIFIERS: Final = {"01": ("21", "10", "235"), "8006": ("21", "10"), "414": ("254",), "8010": ("8011",)}
_DL_SHAPE: Final = re.compile(r"^https?://[^/?#]+(/[^?#]*)(?:\?[^#]*)?(?:#.*)?$")


def _digital_link(uri: str) -> str | None:
    m = _DL_SHAPE.match(uri)
    if m is None:
        return None
    segs = m[1].strip("/").split("/")
    start = next(
        (i for i, s in enumerate(segs) if _DL_ALIASES.get(s, s) in _PRIMARY and i + 1 < len(segs)), None
    )
    if start is None:
        return None
    segs = [_DL_ALIASES.get(s, s) if i % 2 == 0 else s for i, s in enumerate(segs[start:])]
    if len(segs) % 2:
        segs = segs[:-1]  # a trailing key without a value names nothing finer
    pairs = dict(zip(segs[0::2], segs[1::2], strict=True))
    primary, value = segs[0], segs[1]
    if primary == "01":
        if not value.isdigit() or len(value) not in (8, 12, 13, 14):
            return None
        value = value.zfill(14)
    for q in _QUALIFIERS.get(primary, ()):
        if q in pairs:
            if primary == "414" or primary == "8010" or q != "10" or "21" not in pairs:
                return f"{GS1_DL}/{primary}/{value}/{q}/{pairs[q]}"
    return f"{GS1_DL}/{primary}/{value}"


def canonical_identifier(value: str) -> str | None:
    """The constrained canonical GS1 Digital Link of an EPC URN, EPC class or pattern URN or
    Digital Link (CBV 2.0 §8.9 rules 17–18), or None if it names no GS1 key."""
    if len(value) > _CACHED_TEXT_MAX:
        return _canonical_identifier(value)
    return _cached_canonical_identifier(value)


def _canonical_identifier(value: str) -> str | None:
    if value.startswith("urn:epc:"):
        parts = value.split(":")
        if len(parts) != 5:
            return None
        kind, scheme, fields = parts[2], parts[3], parts[4].split(".")
        if kind == "id":
            path = _epc_id(scheme, fields)
        elif kind == "class" and scheme == "lgtin" and len(fields) == 3:
            g = _gtin(fields[0], fields[1])
            path = f"/01/{g}/10/{_enc(fields[2])}" if g else None
        elif kind == "idpat":
            path = _epc_pattern(scheme, fields)
        else:
            path = None
        return GS1_DL + path if path else None
    if value.startswith(("http://", "https://")):
        return _digital_link(value)
    return None


_cached_canonical_identifier: Final = lru_cache(maxsize=1 << 12)(_canonical_identifier)


# --- values -------------------------------------------------------------------------------------


def timestamp(value: str) -> str | None:
    """UTC with 'Z' and exactly three decimals, the fourth rounding half up; None if ``value``
    is not an xsd:dateTimeStamp."""
    return _cached_timestamp(value) if len(value) <= _CACHED_TEXT_MAX else _timestamp(value)


def _timestamp(value: str) -> str | None:
    return _clock_timestamp(value) or _parsed_timestamp(value)


def _clock_timestamp(value: str) -> str | None:
    """``timestamp`` of a time of the common shape whose fraction does not round up (so
    nothing carries into the seconds: only the minute moved); None for any other text."""
    c = clock_time(value)
    if c is not None and c.utc_minute is not None and (len(c.fraction) <= 3 or c.fraction[3] < "5"):
        return f"{c.utc_minute}:{c.seconds}.{(c.fraction + '000')[:3]}Z"
    return None


def _parsed_timestamp(value: str) -> str | None:
    """``timestamp`` of any text, the long way."""
    m = _TIMESTAMP.match(value)
    if m is None:
        return None
    try:
        t = datetime.fromisoformat(m[1] + ("+00:00" if m[3] == "Z" else m[3]))
    except ValueError:
        return None
    frac = (m[2] or "") + "0000"
    ms = int(frac[:3]) + (1 if frac[3] >= "5" else 0)
    t = t.astimezone(UTC) + timedelta(milliseconds=ms)
    # isoformat pads the year to four digits where strftime does not: below 1000 they differ.
    whole = t.isoformat()[:19] if t.year >= 1000 else t.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{whole}.{t.microsecond // 1000:03d}Z"


_cached_timestamp: Final = lru_cache(maxsize=1 << 12)(_timestamp)


# What float() could read: white space, a sign, then a digit (any Unicode decimal digit) or
# a point, or inf, infinity, nan in any case. A text that starts otherwise is no number, and
# the ValueError float() would raise for it (URIs, words: nearly every value) costs more
# than the rest of normalise. A superset: float() still decides for whatever matches.
_MAYBE_NUMBER: Final = re.compile(r"\s*[+-]?(?:[\d.]|[iI][nN][fF]|[nN][aA][nN])")


def _number(text: str) -> str:
    if _MAYBE_NUMBER.match(text) is None:
        return text
    try:
        f = float(text)
    except ValueError:
        return text
    if not math.isfinite(f):
        return text
    return str(int(f)) if f == int(f) else repr(f)


def _scalar_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _number(repr(value))
    return str(value).strip()


def _is_time_key(key: str) -> bool:
    low = key.lower()
    return "time" in low and "offset" not in low


_time_key: Final = lru_cache(maxsize=1 << 10)(_is_time_key)

# A canonical item link (GTIN and serial, on id.gs1.org) is its own constrained canonical
# form, whatever field names it: no time, vocabulary word, CURIE, old CBV URN or number
# spells like it. Items are the one value that does not repeat from event to event, so
# they skip the caches below. The serial is printable ASCII without white space, / ? or #
# (which _digital_link would cut at, or strip).
_CANONICAL_ITEM: Final = re.compile(r"https://id\.gs1\.org/01/[0-9]{14}/21/[!\"$-.0->@-~]+")


def _normalise_text(text: str, timey: bool, vocab: bool, namespaces: Mapping[str, str]) -> str:
    """``normalise`` of a stripped, non-empty text (the general path)."""
    if timey:
        ts = timestamp(text)
        if ts is not None:
            return ts
    if vocab:
        words = vocabulary()
        if text in words:
            return words[text]
        text = expand_curie(text, namespaces)
    if text.startswith("urn:epcglobal:cbv:"):  # every old CBV prefix starts so
        for old, new in _OLD_CBV:
            if text.startswith(old):
                text = new + text[len(old) :]
                break
    text = _number(text)
    return canonical_identifier(text) or text


@lru_cache(maxsize=1 << 12)
def _normalise_standard(text: str, timey: bool, vocab: bool) -> str:
    # Locations, times, words, lots and classes repeat from event to event. The namespaces
    # only matter to a vocabulary word, so the standard ones are the only ones cached.
    return _normalise_text(text, timey, vocab, STANDARD_NAMESPACES)


def normalise(
    value: object, *, key: str = "", vocab: bool = False, namespaces: Mapping[str, str] = STANDARD_NAMESPACES
) -> str:
    """One value as the pre-hash string writes it (rules 5–9, 14–18)."""
    text = value.strip() if type(value) is str else _scalar_text(value)
    if not text:
        return ""
    if _CANONICAL_ITEM.fullmatch(text) is not None:
        return text
    timey = _time_key(key) if len(key) <= _CACHED_TEXT_MAX else _is_time_key(key)
    if len(text) > _CACHED_TEXT_MAX or (vocab and namespaces is not STANDARD_NAMESPACES):
        return _normalise_text(text, timey, vocab, namespaces)
    return _normalise_standard(text, timey, vocab)


# --- the pre-hash string -----------------------------------------------------------------------

_EPC_LISTS: Final = ("epcList", "inputEPCList", "childEPCs")
_QUANTITY_LISTS: Final = ("quantityList", "childQuantityList", "inputQuantityList")
_METADATA: Final = (
    "time",
    "startTime",
    "endTime",
    "deviceID",
    "deviceMetadata",
    "rawData",
    "dataProcessingMethod",
    "bizRules",
)
_REPORT: Final = (
    "type",
    "exception",
    "deviceID",
    "deviceMetadata",
    "rawData",
    "dataProcessingMethod",
    "time",
    "microorganism",
    "chemicalSubstance",
    "value",
    "component",
    "stringValue",
    "booleanValue",
    "hexBinaryValue",
    "uriValue",
    "minValue",
    "maxValue",
    "meanValue",
    "sDev",
    "percRank",
    "percValue",
    "uom",
    "coordinateReferenceSystem",
)
_REPORT_VOCAB: Final = frozenset({"type", "exception", "component"})
ORDERED: Final = frozenset(
    {
        "eventTime",
        "eventTimeZoneOffset",
        "certificationInfo",
        "parentID",
        *_EPC_LISTS,
        *_QUANTITY_LISTS,
        "outputEPCList",
        "outputQuantityList",
        "action",
        "transformationID",
        "bizStep",
        "disposition",
        "persistentDisposition",
        "readPoint",
        "bizLocation",
        "sensorElementList",
    }
)
_SORTED_GROUP: Final = frozenset({"bizTransactionList", "sourceList", "destinationList", "ilmd"})
_NOT_EXTENSIONS: Final = ORDERED | _SORTED_GROUP | IGNORED


def _text_field(name: str, value: str, vocab: bool) -> str:
    """``name=value`` as the pre-hash string writes a text field, with the standard
    namespaces (the only ones a vocabulary word is cached with)."""
    if not vocab:
        # The two values that rarely repeat, an event's own time and a URN of its own (an
        # order or waybill number), are written here as normalise would write them, past
        # its caches, where each would only be a miss.
        if _plain_urn(value):
            return f"{name}={value}"
        if _time_key(name) if len(name) <= _CACHED_TEXT_MAX else _is_time_key(name):
            utc = _clock_timestamp(value)
            if utc is not None:
                return f"{name}={utc}"
    text = normalise(value, key=name, vocab=vocab)
    return f"{name}={text}" if text else ""


_cached_text_field: Final = lru_cache(maxsize=1 << 12)(_text_field)


def _plain_urn(value: object) -> bool:
    """Whether ``value`` is a URN of no EPC or old CBV scheme (an order or waybill number, a
    uuid), which a field writes as it is: no time, number, vocabulary word or GS1 key
    spells like one."""
    return (
        type(value) is str
        and value[:4] == "urn:"
        and value[4:7] != "epc"
        and value[-1:] > " "
        and value == value.strip()
    )


def _field_text(name: str, value: str, vocab: bool) -> str:
    if len(value) > _CACHED_TEXT_MAX or len(name) > _CACHED_TEXT_MAX:
        return _text_field(name, value, vocab)
    return _cached_text_field(name, value, vocab)


class _Writer:
    __slots__ = ("declared", "ns")

    def __init__(self, declared: Mapping[str, str]) -> None:
        self.declared = declared
        # The standard mapping itself when nothing is declared: normalise caches by it.
        self.ns = {**STANDARD_NAMESPACES, **declared} if declared else STANDARD_NAMESPACES

    def value(self, name: str, value: object, *, vocab: bool = False) -> str:
        if type(value) is str and (not vocab or self.ns is STANDARD_NAMESPACES):
            return _field_text(name, value, vocab)
        text = normalise(value, key=name, vocab=vocab, namespaces=self.ns)
        return f"{name}={text}" if text else ""

    def key(self, key: str) -> str:
        prefix, sep, local = key.partition(":")
        if sep and prefix in self.declared and not local.startswith("//"):
            return "{" + self.declared[prefix] + "}" + local
        if key.startswith(("http://", "https://")):
            cut = max(key.rfind("/"), key.rfind("#")) + 1
            return "{" + key[:cut] + "}" + key[cut:]
        return key

    def generic(self, key: str, value: object) -> list[str]:
        """A user extension element (rule 20): {namespace}local[=value], children sorted."""
        name = self.key(key)
        if isinstance(value, list):
            return [s for v in value for s in self.generic(key, v)]
        if isinstance(value, dict):
            if "@value" in value:
                return self.generic(key, value["@value"])
            inner = sorted(s for k, v in value.items() if not k.startswith("@") for s in self.generic(k, v))
            return [name + "".join(inner)]
        if type(value) is str:
            text = _field_text(name, value, False)
            return [text or name]
        text = normalise(value, key=name, namespaces=self.ns)
        return [f"{name}={text}" if text else name]

    def extensions(self, obj: Mapping[str, Any], skip: Collection[str]) -> list[str]:
        return sorted(s for k, v in obj.items() if k not in skip and k[:1] != "@" for s in self.generic(k, v))

    def ids(self, name: str, values: object, item: str = "epc") -> str:
        if not isinstance(values, list) or not values:
            return ""
        texts = []
        for v in values:
            if type(v) is str and _CANONICAL_ITEM.fullmatch(v) is not None:
                texts.append(f"{item}={v}")  # normalise would return it as it is, uncached
            else:
                texts.append(self.value(item, v))
        if len(texts) > 1:
            texts.sort()
        return name + "".join(texts)

    def quantities(self, name: str, values: object) -> str:
        if not isinstance(values, list) or not values:
            return ""
        parts = []
        for q in values:
            if isinstance(q, dict):
                fields = [
                    self.value(f, q.get(f)) for f in ("epcClass", "quantity", "uom") if q.get(f) is not None
                ]
                parts.append(
                    "quantityElement"
                    + "".join(fields)
                    + "".join(self.extensions(q, ("epcClass", "quantity", "uom")))
                )
        return name + "".join(sorted(parts))

    def typed_list(self, name: str, item: str, values: object) -> str:
        if not isinstance(values, list) or not values:
            return ""
        parts = []
        for v in values:
            if isinstance(v, dict):
                t = self.value("type", v["type"], vocab=True) if v.get("type") else ""
                parts.append(t + self.value(item, v.get(item, "")))
        return name + "".join(sorted(parts))

    def sensor_element(self, element: Mapping[str, Any]) -> str:
        out = "sensorElement"
        meta = element.get("sensorMetadata")
        if isinstance(meta, dict):
            out += "sensorMetadata" + "".join(self.value(f, meta[f]) for f in _METADATA if f in meta)
            out += "".join(self.extensions(meta, _METADATA))
        reports = element.get("sensorReport")
        reports = reports if isinstance(reports, list) else [reports] if reports else []
        texts = []
        for r in reports:
            if isinstance(r, dict):
                texts.append(
                    "sensorReport"
                    + "".join(self.value(f, r[f], vocab=f in _REPORT_VOCAB) for f in _REPORT if f in r)
                    + "".join(self.extensions(r, _REPORT))
                )
        out += "".join(sorted(texts))
        return out + "".join(self.extensions(element, ("sensorMetadata", "sensorReport")))

    def pre_hash(self, body: Mapping[str, Any]) -> str:
        # Every step below is skipped for a field the event does not have, where it would
        # have written nothing: most events have a few of the fields.
        value = self.value
        parts = ["eventType=" + str(body.get("type", ""))]
        later: list[str] = []
        if "eventTime" in body:
            parts.append(value("eventTime", body["eventTime"]))
        if "eventTimeZoneOffset" in body:
            parts.append(value("eventTimeZoneOffset", body["eventTimeZoneOffset"]))
        cert = body.get("certificationInfo")
        if cert is not None:
            parts += sorted(
                value("certificationInfo", c) for c in (cert if isinstance(cert, list) else [cert])
            )
        if "parentID" in body:
            parts.append(value("parentID", body["parentID"]))
        for name in _EPC_LISTS:
            if name in body:
                parts.append(self.ids(name, body[name]))
        for name in _QUANTITY_LISTS:
            if name in body:
                parts.append(self.quantities(name, body[name]))
        if "outputEPCList" in body:
            parts.append(self.ids("outputEPCList", body["outputEPCList"]))
        if "outputQuantityList" in body:
            parts.append(self.quantities("outputQuantityList", body["outputQuantityList"]))
        if "action" in body:
            parts.append(value("action", body["action"]))
        if "transformationID" in body:
            parts.append(value("transformationID", body["transformationID"]))
        if "bizStep" in body:
            parts.append(value("bizStep", body["bizStep"], vocab=True))
        if "disposition" in body:
            parts.append(value("disposition", body["disposition"], vocab=True))
        pd = body.get("persistentDisposition")
        if isinstance(pd, dict):
            inner = "".join(
                "".join(sorted(value(k, v, vocab=True) for v in pd.get(k) or [])) for k in ("set", "unset")
            )
            parts.append("persistentDisposition" + inner if inner else "")
        for name in ("readPoint", "bizLocation"):
            place = body.get(name)
            if isinstance(place, dict):
                parts.append(name + value("id", place["id"]) if place.get("id") else "")
                if len(place) > 1 or "id" not in place:
                    ext = self.extensions(place, ("id",))
                    if ext:
                        later.append(name + "".join(ext))
        sensors = body.get("sensorElementList")
        if isinstance(sensors, list) and sensors:
            parts.append(
                "sensorElementList"
                + "".join(sorted(self.sensor_element(s) for s in sensors if isinstance(s, dict)))
            )
        if "bizTransactionList" in body:
            later.append(self.typed_list("bizTransactionList", "bizTransaction", body["bizTransactionList"]))
        if "sourceList" in body:
            later.append(self.typed_list("sourceList", "source", body["sourceList"]))
        if "destinationList" in body:
            later.append(self.typed_list("destinationList", "destination", body["destinationList"]))
        ilmd = body.get("ilmd")
        if isinstance(ilmd, dict) and ilmd:
            later.append("ilmd" + "".join(self.extensions(ilmd, ())))
        for k in body.keys() - _NOT_EXTENSIONS:  # in any order: the group is sorted below
            if k[:1] != "@":
                later += self.generic(k, body[k])
        if len(later) > 1:
            later.sort()
        return "".join(parts) + "".join(s for s in later if s)


def pre_hash(body: Mapping[str, Any], *, context: object = None) -> str:
    """The canonical pre-hash string of one event (its JSON-LD binding). ``context`` is the
    ``@context`` of the document it came in, which binds its extension prefixes."""
    return _Writer(namespaces_of(body, context)).pre_hash(body)


def event_hash(body: Mapping[str, Any], *, context: object = None) -> str:
    """``ni:///sha-256;<hex>?ver=CBV2.0`` of one event."""
    digest = hashlib.sha256(pre_hash(body, context=context).encode("utf-8")).hexdigest()
    return f"ni:///sha-256;{digest}?ver={HASH_VERSION}"


# --- idempotent capture -------------------------------------------------------------------------


def capture_key(body: Mapping[str, Any]) -> CaptureKey:
    digest = event_hash(body)
    eid = body.get("eventID")
    key = eid if isinstance(eid, str) and eid.strip() else digest
    return CaptureKey(key, digest, "errorDeclaration" in body)


def earlier_capture(signer: str, key: CaptureKey, earlier: Iterable[Captured]) -> Captured | None:
    """The event of ``signer`` that ``key`` repeats, if any.

    The same event sent again (the same eventID, or no eventID, and the same hash) is that
    earlier one. An error declaration repeats its event's eventID and hash (the hash leaves
    ``errorDeclaration`` out) and is a new statement about it, so declaring counts too. The
    same eventID on an event with another hash is another event, and is appended: dropping
    it would lose a fact, and GS1's own examples reuse one eventID for different events.
    """
    for e in earlier:
        if (
            e.signer == signer
            and e.key.key == key.key
            and e.key.hash == key.hash
            and e.key.declared == key.declared
        ):
            return e
    return None


# --- document records ---------------------------------------------------------------------------

DOCUMENT_FIELDS: Final = frozenset(
    {
        "type",
        "format",
        "id",
        "schemaVersion",
        "creationDate",
        "sender",
        "receiver",
        "instanceIdentifier",
        "sbdh",
        "events",
        "context",
    }
)
_NI = re.compile(r"^ni:///sha-256;[0-9a-f]{64}\?ver=CBV2\.0$")


def check_document_record(body: Mapping[str, Any]) -> None:
    """The body of a ``document`` statement: what an importer received an EPCIS document as
    (its header fields, which the events do not carry, and its JSON-LD ``@context`` as
    ``context``) and the event hash of each of its events, in eventList order."""
    extra = set(body) - DOCUMENT_FIELDS
    if extra:
        raise MalformedInput(f"a document record has unknown field(s) {', '.join(sorted(extra))}")
    if body.get("type") not in ("EPCISDocument", "EPCISQueryDocument"):
        raise MalformedInput("a document record's type is EPCISDocument or EPCISQueryDocument")
    events = body.get("events")
    if not isinstance(events, list) or not all(isinstance(h, str) and _NI.match(h) for h in events):
        raise MalformedInput(
            "a document record lists the event hash (ni:///sha-256;…?ver=CBV2.0) of each of its events"
        )
    context = body.get("context")
    if "context" in body and not (
        _is_context_part(context)
        or (isinstance(context, list) and context and all(_is_context_part(c) for c in context))
    ):
        raise MalformedInput(
            "a document record's context is the document's JSON-LD @context: "
            "an IRI, an object, or a non-empty array of them"
        )
    for k in ("format", "id", "schemaVersion", "creationDate", "sender", "receiver", "instanceIdentifier"):
        if k in body and not isinstance(body[k], str):
            raise MalformedInput(f"a document record's {k} is a string")


def _is_context_part(value: object) -> bool:
    return (isinstance(value, str) and bool(value)) or isinstance(value, Mapping)


def document_key(body: Mapping[str, Any]) -> CaptureKey:
    """A document record is captured once per signer: its key is the hash of its body."""
    digest = "doc:sha-256;" + hashlib.sha256(canonical_bytes(dict(body))).hexdigest()
    return CaptureKey(digest, digest, False)


def statement_capture_key(kind: str, body: Mapping[str, Any]) -> CaptureKey:
    """The capture key of an event or document statement (``kind``) from its body."""
    return capture_key(body) if kind == "event" else document_key(body)
