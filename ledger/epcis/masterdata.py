"""Master data: what places and products are called, signed by whoever owns their identifier.

A ``masterdata`` statement's body is one EPCIS 2.0 vocabulary element (``id``,
``attributes``, ``children``) with its vocabulary ``type``, exactly as the JSON binding of
``epcisHeader.epcisMasterData.vocabularyList`` writes it: locations (``BusinessLocation``,
``ReadPoint``, named by a GLN or SGLN) and products (``EPCClass``, named by a GTIN class,
lot or SGTIN pattern). Attributes are kept as signed, any of them; the CBV 2.0 master
data attributes (``urn:epcglobal:cbv:mda#name``, ``#streetAddressOne``, ``#city``,
``#countryCode``, ``#latitude`` …) and the GS1 Web Vocabulary's product terms
(``gs1:productName``, ``gs1:brand``, ``gs1:netContent``, ``gs1:image``) are also read into
``MasterData`` for display. A value is a plain string or ``{"@language", "@value"}``; an
attribute repeated with different languages gives one name per language.

Only the owner of the identifier may describe it (``check_owner``): for a location the
party whose id is ``gln:`` + that GLN, or the holder of the registered GS1 company prefix
the GLN falls under; for a product the holder of its GTIN's registered prefix, or a party
the holder delegated the prefix to. Later statements about the same identifier supersede
earlier ones; every version stays on the ledger.

Pure: the registry slice comes from the caller.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from ledger.core import canonical
from ledger.core.errors import IdentifierError, MalformedInput, NotAuthorised
from ledger.core.ids import CANONICAL_BASE, DigitalLink, parse_code
from ledger.core.keys import PartyKey
from ledger.core.registry import PrefixRecord, RegistryState, may_use_prefix, prefix_holder

VTYPE: Final = "urn:epcglobal:epcis:vtype:"
LOCATION_TYPES: Final = (VTYPE + "BusinessLocation", VTYPE + "ReadPoint")
PRODUCT_TYPES: Final = (VTYPE + "EPCClass",)
VOCABULARY_TYPES: Final = LOCATION_TYPES + PRODUCT_TYPES
MAX_ATTRIBUTES: Final = 500
MAX_CHILDREN: Final = 1000
MAX_ATTRIBUTE_ID: Final = 2000
_FIELDS: Final = frozenset({"type", "id", "attributes", "children"})
_LOCATION_KINDS: Final = frozenset({"location"})
_PRODUCT_KINDS: Final = frozenset({"class", "lot"})


@dataclass(frozen=True)
class Subject:
    """What a master-data body describes: its identifier's canonical Digital Link (the key
    it is indexed under), ``location`` or ``product``, and the GLN or GTIN ownership is
    decided by (of the identifier and of each child)."""

    code: str
    kind: str
    keys: tuple[str, ...]  # the GLNs of a location and its children; the GTINs of a product


def _link(value: object, *, where: str, kinds: frozenset[str], what: str) -> DigitalLink:
    if not isinstance(value, str) or not value:
        raise MalformedInput(f"{where} must be the identifier it describes, a string")
    try:
        link = parse_code(value)
    except IdentifierError as e:
        raise IdentifierError(f"{where} {value!r}: {e.message}") from None
    if link.kind not in kinds:
        raise MalformedInput(f"{where} {value!r} names a {link.kind}; {what}")
    return link


def check_body(body: Mapping[str, Any]) -> Subject:
    """Refuse a body that is not one vocabulary element of a supported type about a GS1
    key; return what it describes."""
    extra = body.keys() - _FIELDS
    if extra:
        raise MalformedInput(
            f"a masterdata body has unknown field(s) {', '.join(sorted(extra))}; "
            "it holds one vocabulary element: type, id, attributes, children"
        )
    vtype = body.get("type")
    if vtype not in VOCABULARY_TYPES:
        raise MalformedInput(
            f"masterdata type {vtype!r} is not one of {', '.join(VOCABULARY_TYPES)}",
            code="unsupported_vocabulary",
        )
    location = vtype in LOCATION_TYPES
    kinds = _LOCATION_KINDS if location else _PRODUCT_KINDS
    what = (
        "a location is named by a GLN or SGLN (…/414/…, urn:epc:id:sgln:…)"
        if location
        else "a product class is named by a GTIN, a lot or an SGTIN pattern (…/01/…, "
        "urn:epc:class:lgtin:…, urn:epc:idpat:sgtin:…)"
    )
    link = _link(body.get("id"), where="masterdata id", kinds=kinds, what=what)
    keys = [_key(link)]
    children = body.get("children", [])
    if not isinstance(children, list) or len(children) > MAX_CHILDREN:
        raise MalformedInput(f"masterdata children must be a list of at most {MAX_CHILDREN} identifiers")
    for i, child in enumerate(children):
        keys.append(_key(_link(child, where=f"masterdata children[{i}]", kinds=kinds, what=what)))
    attrs = body.get("attributes", [])
    if not isinstance(attrs, list) or len(attrs) > MAX_ATTRIBUTES:
        raise MalformedInput(
            f'masterdata attributes must be a list of at most {MAX_ATTRIBUTES} {{"id", "attribute"}} objects'
        )
    for i, a in enumerate(attrs):
        if not isinstance(a, dict) or not {"id"} <= a.keys() <= {"id", "attribute"}:
            raise MalformedInput(f"masterdata attributes[{i}] must be an object with id and attribute")
        aid = a["id"]
        if (
            not isinstance(aid, str)
            or not aid
            or len(aid) > MAX_ATTRIBUTE_ID
            or any(c.isspace() for c in aid)
        ):
            raise MalformedInput(
                f"masterdata attributes[{i}].id must be a URI or compact URI "
                f"such as urn:epcglobal:cbv:mda#name, not {aid!r}"
            )
    return Subject(link.canonical, "location" if location else "product", tuple(dict.fromkeys(keys)))


def _key(link: DigitalLink) -> str:
    return (link.gln if link.kind == "location" else link.gtin) or ""


def subject_of(body: Mapping[str, Any]) -> Subject:
    """``check_body`` for a body already accepted (a ledger entry's)."""
    return check_body(body)


def body_hash(body: Mapping[str, Any]) -> str:
    """Hex SHA-256 of the body's canonical bytes: the same element signed again is the same
    version (the append path does not append it twice)."""
    return hashlib.sha256(canonical.canonical_bytes(dict(body))).hexdigest()


# --- who may describe what -------------------------------------------------------------------


def gln_prefix_holder(reg: RegistryState, gln: str) -> PrefixRecord | None:
    """The registered GS1 company prefix a GLN falls under, by longest match: a GLN starts
    with its company prefix (4 to 12 digits)."""
    for n in range(12, 3, -1):
        rec = reg.prefixes.get(gln[:n])
        if rec is not None:
            return rec
    return None


def prefix_candidates(subject: Subject) -> set[str]:
    """Every company prefix ``check_owner`` may look up for ``subject``."""
    out: set[str] = set()
    for key in subject.keys:
        digits = key if subject.kind == "location" else key[1:]
        out.update(digits[:n] for n in range(4, 13))
    return out


def owner_problem(reg: RegistryState, *, signer: str, subject: Subject, time: str | None) -> str | None:
    """Why ``signer`` may not describe ``subject`` given the registry ``reg`` (None: it may).
    ``time`` is the entry's ledger time, against which a delegation's end is compared."""
    for key in subject.keys:
        if subject.kind == "location":
            if signer == f"gln:{key}":
                continue
            held = gln_prefix_holder(reg, key)
            if held is not None and held.party == signer:
                continue
            whose = (
                f"the GS1 company prefix {held.prefix} it falls under is held by {held.party}"
                if held
                else "no registered party holds the GS1 company prefix it falls under"
            )
            return (
                f"{signer} may not describe location GLN {key}: only gln:{key} or the holder "
                f"of its GS1 company prefix may, and {whose}"
            )
        held = prefix_holder(reg, key)
        if held is None:
            return (
                f"{signer} may not describe GTIN {key}: no registered party holds its GS1 "
                "company prefix (register it with `suyuan party register --gs1-prefix`)"
            )
        if held.party == signer:
            continue
        if time is not None and may_use_prefix(reg, signer, held, time):
            continue
        if time is None and (held.prefix, signer) in reg.delegations:
            continue
        return (
            f"{signer} may not describe GTIN {key}: its GS1 company prefix {held.prefix} is "
            f"held by {held.party} (since seq {held.since_seq}), who has not delegated it to "
            f"{signer}"
        )
    return None


def check_owner(reg: RegistryState, *, signer: str, body: Mapping[str, Any], time: str | None) -> Subject:
    """Refuse (``not_owner``) master data its signer does not own (see ``owner_problem``)."""
    subject = check_body(body)
    why = owner_problem(reg, signer=signer, subject=subject, time=time)
    if why is not None:
        raise NotAuthorised(why, code="not_owner")
    return subject


# --- reading it --------------------------------------------------------------------------------


@dataclass(frozen=True)
class MasterData:
    """What a master-data body says, for display: texts by language (``und`` for a plain
    string), the rest as written."""

    code: str
    kind: str
    vtype: str
    names: Mapping[str, str] = field(default_factory=dict)
    street: tuple[str, ...] = ()
    city: Mapping[str, str] = field(default_factory=dict)
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None
    latitude: str | None = None
    longitude: str | None = None
    brand: Mapping[str, str] = field(default_factory=dict)
    net_content: str | None = None  # as words: "800 g", or the text the signer gave
    net_quantity: tuple[str, str] | None = None  # (value, UN/ECE unit code), when given so
    image: str | None = None
    attributes: int = 0

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "code": self.code,
            "kind": self.kind,
            "type": self.vtype,
            "names": dict(self.names),
        }
        if self.kind == "location":
            out.update(
                {
                    "street": list(self.street),
                    "city": dict(self.city),
                    "state": self.state,
                    "postalCode": self.postal_code,
                    "country": self.country,
                    "latitude": self.latitude,
                    "longitude": self.longitude,
                }
            )
        else:
            out.update(
                {
                    "brand": dict(self.brand),
                    "netContent": self.net_content,
                    "netQuantity": (
                        {"value": self.net_quantity[0], "unitCode": self.net_quantity[1]}
                        if self.net_quantity
                        else None
                    ),
                    "image": self.image,
                    "country": self.country,
                }
            )
        return out


_CBVMDA: Final = ("urn:epcglobal:cbv:mda#", "urn:epcglobal:cbv:mda:", "cbvmda:")
_GS1: Final = ("gs1:", "https://gs1.org/voc/", "http://gs1.org/voc/")
_UNITS: Final = {
    "GRM": "g",
    "KGM": "kg",
    "MLT": "ml",
    "LTR": "l",
    "H87": "pcs",
    "MGM": "mg",
    "CLT": "cl",
    "MTR": "m",
    "CMT": "cm",
    "MMT": "mm",
}


def term(attribute_id: str) -> tuple[str, str]:
    """(vocabulary, name) of an attribute id: ``cbvmda`` or ``gs1`` and the local name for the
    CBV master data attributes and GS1 Web Vocabulary terms in any spelling, else ("", id)."""
    for vocab, prefixes in (("cbvmda", _CBVMDA), ("gs1", _GS1)):
        for p in prefixes:
            if attribute_id.startswith(p):
                return vocab, attribute_id[len(p) :]
    return "", attribute_id


def _lang(tag: object) -> str:
    return tag.split("-")[0].lower() if isinstance(tag, str) and tag else "und"


def texts(value: object) -> dict[str, str]:
    """A value as language -> text: a string (``und``), ``{"@language", "@value"}``, or a
    list of either."""
    out: dict[str, str] = {}
    for v in value if isinstance(value, list) else [value]:
        if isinstance(v, str) and v.strip():
            out.setdefault("und", v.strip())
        elif isinstance(v, Mapping) and isinstance(v.get("@value"), str) and v["@value"].strip():
            out.setdefault(_lang(v.get("@language")), v["@value"].strip())
    return out


def _scalar(value: object) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (str, int, float)) and str(value).strip():
        return str(value).strip()
    if isinstance(value, Mapping):
        return _scalar(value.get("@value"))
    return None


def _net_quantity(value: object) -> tuple[str, str] | None:
    if isinstance(value, Mapping):
        amount, unit = _scalar(value.get("value")), _scalar(value.get("unitCode"))
        if amount is not None and unit is not None:
            return amount, unit
    return None


def _net_content(value: object) -> str | None:
    if isinstance(value, Mapping) and "value" in value:
        amount = _scalar(value.get("value"))
        unit = _scalar(value.get("unitCode"))
        if amount is None:
            return None
        return f"{amount} {_UNITS.get(unit or '', unit or '')}".strip()
    return _scalar(value)


def describe(body: Mapping[str, Any]) -> MasterData:
    """The display facts of an accepted master-data body."""
    subject = subject_of(body)
    got: dict[tuple[str, str], list[object]] = {}
    attrs = body.get("attributes") or []
    for a in attrs:
        got.setdefault(term(a["id"]), []).append(a.get("attribute"))

    def lang_map(*names: tuple[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for n in names:
            for v in got.get(n, ()):
                for k, t in texts(v).items():
                    out.setdefault(k, t)
        return out

    def first(*names: tuple[str, str]) -> str | None:
        for n in names:
            for v in got.get(n, ()):
                s = _scalar(v)
                if s is not None:
                    return s
        return None

    c, g = "cbvmda", "gs1"
    brand: dict[str, str] = {}
    for v in got.get((g, "brand"), ()):
        inner = v.get("gs1:brandName", v.get("brandName")) if isinstance(v, Mapping) else None
        for k, t in texts(inner if inner is not None else v).items():
            brand.setdefault(k, t)
    for k, t in lang_map((g, "brandName")).items():
        brand.setdefault(k, t)
    image = first((g, "image"), (g, "referencedFileURL"))
    country = first((c, "countryCode"), (c, "countryOfOrigin"), (g, "countryOfOrigin"))
    return MasterData(
        code=subject.code,
        kind=subject.kind,
        vtype=str(body["type"]),
        names=lang_map(
            (c, "name"),
            (g, "productName"),
            (c, "regulatedProductName"),
            (c, "tradeItemDescription"),
            (c, "descriptionShort"),
            (g, "name"),
        ),
        street=tuple(
            s
            for s in (
                first((c, "streetAddressOne")),
                first((c, "streetAddressTwo")),
                first((c, "streetAddressThree")),
            )
            if s
        ),
        city=lang_map((c, "city")),
        state=first((c, "state")),
        postal_code=first((c, "postalCode")),
        country=country.upper() if country else None,
        latitude=first((c, "latitude")),
        longitude=first((c, "longitude")),
        brand=brand,
        net_content=_net_content(next(iter(got.get((g, "netContent"), ())), None))
        or first((c, "netContentDescription")),
        net_quantity=_net_quantity(next(iter(got.get((g, "netContent"), ())), None)),
        image=image if image and image.startswith(("https://", "http://")) else None,
        attributes=len(attrs),
    )


# --- EPCIS documents ---------------------------------------------------------------------------


def elements_of(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The master-data bodies of an EPCIS document: one per vocabulary element of
    ``epcisHeader.epcisMasterData.vocabularyList``, each with its vocabulary's type, in
    document order (an element the document repeats is signed once per repetition; the
    later supersedes). Refuses a section that is not shaped as the JSON binding says."""
    header = document.get("epcisHeader")
    if header is None:
        return []
    if not isinstance(header, Mapping):
        raise MalformedInput("epcisHeader must be a JSON object")
    section = header.get("epcisMasterData")
    if section is None:
        return []
    vocabularies = section.get("vocabularyList") if isinstance(section, Mapping) else None
    if not isinstance(vocabularies, list):
        raise MalformedInput("epcisHeader.epcisMasterData.vocabularyList must be an array")
    out: list[dict[str, Any]] = []
    for i, vocabulary in enumerate(vocabularies):
        where = f"epcisHeader.epcisMasterData.vocabularyList[{i}]"
        if not isinstance(vocabulary, Mapping):
            raise MalformedInput(f"{where} must be an object with type and vocabularyElementList")
        elements = vocabulary.get("vocabularyElementList", [])
        if not isinstance(elements, list):
            raise MalformedInput(f"{where}.vocabularyElementList must be an array")
        for j, element in enumerate(elements):
            if not isinstance(element, Mapping):
                raise MalformedInput(f"{where}.vocabularyElementList[{j}] must be an object")
            body = {"type": vocabulary.get("type"), **element}
            try:
                check_body(body)
            except MalformedInput as e:
                raise type(e)(f"{where}.vocabularyElementList[{j}]: {e.message}", code=e.code) from None
            out.append(body)
    return out


def prefixes_to_load(bodies: Iterable[Mapping[str, Any]]) -> set[str]:
    """Every company prefix the ownership checks of these bodies may look up."""
    out: set[str] = set()
    for body in bodies:
        out |= prefix_candidates(subject_of(body))
    return out


SHOWN: Final = frozenset(
    {
        ("cbvmda", "name"),
        ("gs1", "productName"),
        ("cbvmda", "city"),
        ("gs1", "brand"),
        ("gs1", "brandName"),
        ("cbvmda", "regulatedProductName"),
        ("cbvmda", "tradeItemDescription"),
        ("cbvmda", "descriptionShort"),
        ("gs1", "name"),
    }
)


def shown_texts(body: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(where, text) of every text a page may show as a name (names, cities, brands), for
    the admission rules every displayed name meets."""
    out: list[tuple[str, str]] = []
    for i, a in enumerate(body.get("attributes") or []):
        if not isinstance(a, Mapping) or not isinstance(a.get("id"), str):
            continue
        if term(a["id"]) not in SHOWN:
            continue
        value = a.get("attribute")
        inner = value.get("gs1:brandName", value.get("brandName")) if isinstance(value, Mapping) else None
        shown = inner if inner is not None else value
        for v in shown if isinstance(shown, list) else [shown]:
            text = v.get("@value") if isinstance(v, Mapping) else v
            if isinstance(text, str):
                out.append((f"attributes[{i}] ({a['id']})", text))
    return out


def sign_elements(
    bodies: Iterable[Mapping[str, Any]], *, signer: str, key: PartyKey, issued: str
) -> list[dict[str, Any]]:
    """One signed ``masterdata`` envelope per body, all issued at ``issued``."""
    from ledger.core.statements import sign_one

    return [sign_one(kind="masterdata", signer=signer, key=key, body=b, issued=issued) for b in bodies]


def element_name(body: Mapping[str, Any]) -> str:
    """How a refusal names a master-data element: its type's last word and its id."""
    return f"master data {str(body.get('type', '')).rsplit(':', 1)[-1]} {body.get('id')}"


# --- which master data describes what an event names ---------------------------------------------


@functools.lru_cache(maxsize=1 << 14)
def place_codes(location: str | None) -> tuple[str, ...]:
    """The codes whose master data may name an event's place: the location as the event
    names it (a GLN with its extension) and its GLN alone; none for anything else. (A
    function of the text, kept: a page names the same few places many times.)"""
    if not location:
        return ()
    try:
        link = parse_code(location)
    except IdentifierError:
        return ()
    if link.kind != "location" or not link.gln:
        return ()
    return tuple(dict.fromkeys((link.canonical, f"{CANONICAL_BASE}/414/{link.gln}")))


def product_class(code: str | None) -> str | None:
    """The product class (``…/01/<GTIN>``) whose master data describes a GTIN, lot or
    item; None for anything else."""
    if not code:
        return None
    try:
        link = parse_code(code)
    except IdentifierError:
        return None
    return class_of(link)


def class_of(link: DigitalLink) -> str | None:
    """``product_class`` of a code already parsed."""
    return f"{CANONICAL_BASE}/01/{link.gtin}" if link.kind in ("class", "lot", "item") else None
