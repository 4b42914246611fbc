"""EPCIS XML in and out: an EPCIS 2.0 or 1.2 XML document becomes the EPCIS 2.0 JSON-LD
document GS1's mapping gives (so its events are signed exactly as their JSON twins), and an
export is written back as EPCIS 2.0 XML that validates against GS1's XSD.

Untrusted XML is parsed by lxml with entity resolution, DTD loading and the network off and
libxml2's limits on (no huge trees, depth 256); a document that declares entities or names
an external DTD is refused before anything is read from it. Every document is validated
against the official XSDs shipped in ``ledger/gs1data/xsd`` (1.2 against the 2.0 XSD,
which keeps 1.2's extension elements, with the EPCIS namespace mapped).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from importlib import resources
from typing import Any, Final

from lxml import etree

from ledger.core.errors import MalformedInput
from ledger.epcis.event_hash import _OLD_CBV, CBV, GS1_VOC, STANDARD_NAMESPACES, namespaces_of, vocabulary

EPCIS_CONTEXT: Final = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
NS2: Final = "urn:epcglobal:epcis:xsd:2"
NS1: Final = "urn:epcglobal:epcis:xsd:1"
QUERY2: Final = "urn:epcglobal:epcis-query:xsd:2"
QUERY1: Final = "urn:epcglobal:epcis-query:xsd:1"
SBDH: Final = "http://www.unece.org/cefact/namespaces/StandardBusinessDocumentHeader"
XSI: Final = "http://www.w3.org/2001/XMLSchema-instance"
XML_LANG: Final = "{http://www.w3.org/XML/1998/namespace}lang"
MAX_XML_BYTES: Final = 64 << 20
EVENT_TYPES: Final = (
    "ObjectEvent",
    "AggregationEvent",
    "TransactionEvent",
    "TransformationEvent",
    "AssociationEvent",
)

# XML namespaces that the standard JSON-LD context already names (its prefixes are protected).
_KNOWN_NS: Final = {
    "urn:epcglobal:cbv:mda": "cbvmda",
    "urn:epcglobal:cbv:mda:": "cbvmda",
    GS1_VOC: "gs1",
    "https://gs1.org/voc": "gs1",
    STANDARD_NAMESPACES["cbec"]: "cbec",
}

_TEXT: Final = frozenset(
    {
        "eventTime",
        "recordTime",
        "eventTimeZoneOffset",
        "eventID",
        "certificationInfo",
        "action",
        "parentID",
        "transformationID",
    }
)
_EPC_LISTS: Final = frozenset({"epcList", "childEPCs", "inputEPCList", "outputEPCList"})
_QUANTITY_LISTS: Final = frozenset(
    {"quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList"}
)
_TYPED_LISTS: Final = {
    "bizTransactionList": "bizTransaction",
    "sourceList": "source",
    "destinationList": "destination",
}
_NUMERIC_ATTRS: Final = frozenset(
    {"value", "minValue", "maxValue", "meanValue", "sDev", "percRank", "percValue"}
)
_VOCAB_ATTRS: Final = frozenset({"type", "exception", "component"})

# Element order of each event type in the 2.0 XSD (after the base type's).
_BASE_ORDER: Final = (
    "eventTime",
    "recordTime",
    "eventTimeZoneOffset",
    "eventID",
    "errorDeclaration",
    "certificationInfo",
)
_ORDER: Final[Mapping[str, tuple[str, ...]]] = {
    "ObjectEvent": (
        "epcList",
        "action",
        "bizStep",
        "disposition",
        "readPoint",
        "bizLocation",
        "bizTransactionList",
        "quantityList",
        "sourceList",
        "destinationList",
        "sensorElementList",
        "persistentDisposition",
        "ilmd",
    ),
    "AggregationEvent": (
        "parentID",
        "childEPCs",
        "action",
        "bizStep",
        "disposition",
        "readPoint",
        "bizLocation",
        "bizTransactionList",
        "childQuantityList",
        "sourceList",
        "destinationList",
        "sensorElementList",
        "persistentDisposition",
    ),
    "TransactionEvent": (
        "bizTransactionList",
        "parentID",
        "epcList",
        "action",
        "bizStep",
        "disposition",
        "readPoint",
        "bizLocation",
        "quantityList",
        "sourceList",
        "destinationList",
        "sensorElementList",
        "persistentDisposition",
    ),
    "TransformationEvent": (
        "inputEPCList",
        "inputQuantityList",
        "outputEPCList",
        "outputQuantityList",
        "transformationID",
        "bizStep",
        "disposition",
        "readPoint",
        "bizLocation",
        "bizTransactionList",
        "sourceList",
        "destinationList",
        "sensorElementList",
        "persistentDisposition",
        "ilmd",
    ),
    "AssociationEvent": (
        "parentID",
        "childEPCs",
        "childQuantityList",
        "action",
        "bizStep",
        "disposition",
        "readPoint",
        "bizLocation",
        "bizTransactionList",
        "sourceList",
        "destinationList",
        "sensorElementList",
        "persistentDisposition",
    ),
}
_URN_OF: Final = {web: urn for urn, web in _OLD_CBV}


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        huge_tree=False,
        load_dtd=False,
        dtd_validation=False,
        remove_comments=True,
        remove_pis=True,
        collect_ids=False,
    )


@lru_cache(maxsize=1)
def schema() -> etree.XMLSchema:
    """The EPCIS 2.0 query schema, which imports the document schema and SBDH's."""
    xsd = resources.files("ledger").joinpath("gs1data/xsd")
    with resources.as_file(xsd) as folder:
        doc = etree.parse(str(folder / "EPCglobal-epcis-query-2_0.xsd"), _parser())
        return etree.XMLSchema(doc)


def _local(tag: object) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def _ns(tag: object) -> str | None:
    return etree.QName(tag).namespace if isinstance(tag, str) else None


class _Reader:
    """Turns one parsed document into its JSON-LD form, naming where anything is wrong."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.prefixes: dict[str, str] = {}  # JSON prefix -> JSON-LD namespace IRI
        self.by_ns: dict[str, str] = {}  # XML namespace -> JSON prefix
        self.event = -1

    def fail(self, el: Any, message: str) -> MalformedInput:
        where = f"{self.source} line {el.sourceline}"
        if self.event >= 0:
            where += f": event {self.event}"
        return MalformedInput(f"{where}: {message}")

    # --- names ---------------------------------------------------------------------------

    def key(self, el: Any, tag: str) -> str:
        """The JSON-LD key of an extension element or attribute, binding its prefix."""
        ns, local = _ns(tag), _local(tag)
        if ns is None:
            raise self.fail(
                el,
                f"<{local}> is not an EPCIS field and has no namespace; "
                "extension elements must be namespace-qualified",
            )
        prefix = self.by_ns.get(ns)
        if prefix is None:
            prefix = _KNOWN_NS.get(ns) or self._new_prefix(el, ns)
            self.by_ns[ns] = prefix
            if prefix not in STANDARD_NAMESPACES:
                self.prefixes[prefix] = _jsonld_namespace(ns)
        return f"{prefix}:{local}"

    def _new_prefix(self, el: Any, ns: str) -> str:
        wanted = next((p for p, n in el.nsmap.items() if n == ns and p), None)
        taken = set(self.prefixes) | set(STANDARD_NAMESPACES) | set(vocabulary())
        if wanted and wanted not in taken:
            return str(wanted)
        n = 1
        while f"ns{n}" in taken:
            n += 1
        return f"ns{n}"

    # --- values --------------------------------------------------------------------------

    def text(self, el: Any) -> str:
        if len(el):
            raise self.fail(el, f"<{_local(el.tag)}> must hold text, not elements")
        return (el.text or "").strip()

    def extension(self, el: Any) -> Any:
        """An extension element's value: its text, or an object of its children (a name
        that repeats becomes an array), as GS1's JSON twins write them; a text with an
        ``xml:lang`` is the JSON-LD literal ``{"@language", "@value"}``."""
        if XML_LANG in el.attrib and not len(el) and len(el.attrib) == 1:
            return {"@language": el.get(XML_LANG), "@value": (el.text or "").strip()}
        attrs = {self.key(el, k) if _ns(k) else str(k): v for k, v in el.attrib.items() if _ns(k) != XSI}
        if not len(el):
            text = (el.text or "").strip()
            return {**attrs, "#text": text} if attrs else text
        out: dict[str, Any] = dict(attrs)
        for child in el:
            # Inside an extension element, an unqualified child is a plain JSON key (the
            # CBEC vocabulary's nested terms, such as cbec:orderInfo's goods).
            k = self.key(child, child.tag) if _ns(child.tag) else _local(child.tag)
            v = self.extension(child)
            if k in out:
                out[k] = out[k] + [v] if isinstance(out[k], list) else [out[k], v]
            else:
                out[k] = v
        return out

    def add_extension(self, out: dict[str, Any], el: Any) -> None:
        k = self.key(el, el.tag)
        v = self.extension(el)
        if k in out:
            out[k] = out[k] + [v] if isinstance(out[k], list) else [out[k], v]
        else:
            out[k] = v

    # --- events --------------------------------------------------------------------------

    def event_of(self, el: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"type": _local(el.tag)}
        self.fields(el, out)
        return out

    def fields(self, parent: Any, out: dict[str, Any]) -> None:  # noqa: C901 - one per field
        for el in parent:
            name = _local(el.tag)
            if _ns(el.tag) is not None:
                self.add_extension(out, el)
            elif name in ("extension", "baseExtension"):
                self.fields(el, out)  # EPCIS 1.2 wrappers: their fields belong to the event
            elif name in _TEXT:
                out[name] = self.text(el)
            elif name in ("bizStep", "disposition"):
                out[name] = compact(self.text(el))
            elif name in _EPC_LISTS:
                out[name] = [self.text(e) for e in el]
            elif name in _QUANTITY_LISTS:
                out[name] = [self.quantity(q) for q in el]
            elif name in ("readPoint", "bizLocation"):
                place: dict[str, Any] = {}
                for c in el:
                    if _ns(c.tag) is None and _local(c.tag) == "id":
                        place["id"] = self.text(c)
                    elif _ns(c.tag) is None and _local(c.tag) == "extension":
                        for x in c:
                            self.add_extension(place, x)
                    else:
                        self.add_extension(place, c)
                out[name] = place
            elif name in _TYPED_LISTS:
                item = _TYPED_LISTS[name]
                rows = []
                for c in el:
                    row = {"type": compact(c.get("type"))} if c.get("type") else {}
                    row[item] = self.text(c)
                    rows.append(row)
                out[name] = rows
            elif name == "sensorElementList":
                out[name] = [self.sensor_element(s) for s in el]
            elif name == "persistentDisposition":
                pd: dict[str, list[str]] = {}
                for c in el:
                    pd.setdefault(_local(c.tag), []).append(compact(self.text(c)))
                out[name] = pd
            elif name == "ilmd":
                ilmd: dict[str, Any] = {}
                for c in el:
                    if _ns(c.tag) is None and _local(c.tag) == "extension":
                        for x in c:
                            self.add_extension(ilmd, x)
                    else:
                        self.add_extension(ilmd, c)
                out[name] = ilmd
            elif name == "errorDeclaration":
                out[name] = self.declaration(el)
            else:
                raise self.fail(el, f"<{name}> is not a field of an EPCIS event")

    def quantity(self, el: Any) -> dict[str, Any]:
        q: dict[str, Any] = {}
        for c in el:
            name = _local(c.tag)
            if name == "quantity":
                q[name] = _number(self.text(c))
            elif name in ("epcClass", "uom"):
                q[name] = self.text(c)
            else:
                self.add_extension(q, c)
        return q

    def sensor_element(self, el: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for c in el:
            name = _local(c.tag)
            if _ns(c.tag) is not None:
                self.add_extension(out, c)
            elif name == "sensorMetadata":
                out[name] = self.attributes(c)
            elif name == "sensorReport":
                out.setdefault(name, []).append(self.attributes(c))
            elif name == "extension":
                for x in c:
                    self.add_extension(out, x)
        return out

    def attributes(self, el: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in el.attrib.items():
            if _ns(k) is not None:
                out[self.key(el, k)] = v
            elif k in _NUMERIC_ATTRS:
                out[k] = _number(v)
            elif k == "booleanValue":
                out[k] = v.strip() in ("true", "1")
            elif k in _VOCAB_ATTRS:
                out[k] = compact(v, gs1=True)
            else:
                out[k] = v
        for c in el:
            self.add_extension(out, c)
        return out

    def declaration(self, el: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for c in el:
            name = _local(c.tag)
            if _ns(c.tag) is not None:
                self.add_extension(out, c)
            elif name == "declarationTime":
                out[name] = self.text(c)
            elif name == "reason":
                out[name] = compact(self.text(c))
            elif name == "correctiveEventIDs":
                out[name] = [self.text(x) for x in c]
            elif name == "extension":
                for x in c:
                    self.add_extension(out, x)
        return out


def compact(value: str | None, *, gs1: bool = False) -> str:
    """A standard vocabulary value as GS1's JSON writes it: its bare word
    (``urn:epcglobal:cbv:bizstep:shipping`` and ``https://ref.gs1.org/cbv/BizStep-shipping``
    are ``shipping``); any other value unchanged."""
    v = (value or "").strip()
    for urn, web in _OLD_CBV:
        if v.startswith(urn):
            v = web + v[len(urn) :]
            break
    if gs1 and v.startswith("gs1:"):
        v = GS1_VOC + v[4:]
    if v.startswith((CBV, GS1_VOC)):
        word = v.rsplit("-", 1)[-1] if v.startswith(CBV) else v[len(GS1_VOC) :]
        if vocabulary().get(word) == v:
            return word
    return v


def _number(text: str) -> int | float:
    t = text.strip()
    try:
        return int(t) if t.lstrip("+-").isdigit() else float(t)
    except ValueError:
        raise MalformedInput(f"{text!r} is not a number") from None


def _jsonld_namespace(ns: str) -> str:
    """An XML namespace as a JSON-LD prefix IRI: ``prefix:local`` must expand to the
    namespace followed by the local name, so a namespace that ends in neither ``/``, ``#``
    nor ``:`` gets ``/`` (``:`` for a URN), as GS1's JSON twins of its XML examples do."""
    if ns.endswith(("/", "#", ":")):
        return ns
    return ns + (":" if ns.startswith("urn:") else "/")


def _refuse_hostile(tree: Any, source: str, what: str = "EPCIS XML") -> None:
    info = tree.docinfo
    if info.system_url or info.public_id:
        raise MalformedInput(
            f"{source}: the document names an external DTD "
            f"({info.system_url or info.public_id}); {what} needs none and "
            "it is not read",
            code="xml_refused",
        )
    dtd = info.internalDTD
    if dtd is not None and (list(dtd.iterentities()) or list(dtd.iterelements())):
        raise MalformedInput(
            f"{source}: the document declares a DTD with entities or elements; "
            f"{what} needs none and entities are never expanded",
            code="xml_refused",
        )


# The hardened parser and the check for hostile DTDs, for the other XML readers (customs
# messages, ``ledger/epcis/ceb.py``): one setup for all untrusted XML.
hardened_parser = _parser
refuse_hostile = _refuse_hostile


def _upgrade_12(root: Any) -> None:
    """EPCIS 1.2's layout in 2.0's: fields that 1.2 added later sit in ``extension`` (and
    ``baseExtension``) wrappers, and TransformationEvent in ``EventList/extension``; 2.0 puts
    them in the event, in the XSD's order. Only the wrappers move: every value stays."""
    for lst in root.iter("EventList"):
        for ext in [c for c in lst if c.tag == "extension"]:
            at = lst.index(ext)
            for i, ev in enumerate(list(ext)):
                lst.insert(at + i, ev)
            lst.remove(ext)
        for ev in lst:
            kind = _local(ev.tag)
            if kind not in _ORDER:
                continue
            _unwrap(ev)
            for place in ev:
                if place.tag in ("readPoint", "bizLocation", "ilmd", "errorDeclaration", "sensorElement"):
                    _unwrap(place)
            for sel in ev.iter("sensorElement"):
                _unwrap(sel)
            order = {n: i for i, n in enumerate(_BASE_ORDER + _ORDER[kind])}
            children = list(ev)
            children.sort(
                key=lambda c: order.get(c.tag, len(order)) if isinstance(c.tag, str) else len(order)
            )
            for c in children:
                ev.append(c)


def _unwrap(el: Any) -> None:
    """Move the children of ``el``'s unqualified extension wrappers into ``el``."""
    while True:
        wrappers = [c for c in el if c.tag in ("extension", "baseExtension")]
        if not wrappers:
            return
        for w in wrappers:
            at = el.index(w)
            for i, c in enumerate(list(w)):
                el.insert(at + i, c)
            el.remove(w)


def parse(data: bytes, *, source: str = "document") -> dict[str, Any]:
    """The EPCIS 2.0 JSON-LD form of an EPCIS XML document (2.0 or 1.2, capture or query),
    after checking it against GS1's XSD; ``MalformedInput`` names the line, and the event
    index where the fault is inside an event."""
    if len(data) > MAX_XML_BYTES:
        raise MalformedInput(
            f"{source} is {len(data)} bytes; an XML document may have at most "
            f"{MAX_XML_BYTES} (64 MiB): split it",
            code="too_large",
        )
    try:
        tree = etree.ElementTree(etree.fromstring(data, _parser()))
    except etree.XMLSyntaxError as e:
        raise MalformedInput(f"{source} line {e.lineno}: not well-formed XML: {e.msg}") from None
    _refuse_hostile(tree, source)
    root = tree.getroot()
    ns = _ns(root.tag)
    if ns in (NS1, QUERY1):
        # 1.2's layout is a subset of 2.0's (its <extension> wrappers are kept), so a 1.2
        # document is checked by the 2.0 XSD under the 2.0 namespace names.
        data2 = data.replace(NS1.encode(), NS2.encode()).replace(QUERY1.encode(), QUERY2.encode())
        tree = etree.ElementTree(etree.fromstring(data2, _parser()))
        root = tree.getroot()
        ns = _ns(root.tag)
        _upgrade_12(root)
    if (ns, _local(root.tag)) not in ((NS2, "EPCISDocument"), (QUERY2, "EPCISQueryDocument")):
        raise MalformedInput(
            f"{source}: expected an EPCIS XML document (epcis:EPCISDocument or "
            f"epcisq:EPCISQueryDocument), not <{_local(root.tag)}> in "
            f"namespace {ns}"
        )
    events = root.findall(".//EventList/*")
    flat = [ev for ev in events if _local(ev.tag) != "extension"]
    for ev in events:
        if _local(ev.tag) == "extension":  # 1.2: TransformationEvent sat in EventList/extension
            flat += list(ev)
    flat.sort(key=lambda ev: ev.sourceline or 0)
    xsd = schema()
    if not xsd.validate(tree):
        err = xsd.error_log[0]
        starts = [e.sourceline or 0 for e in flat]
        index = max((i for i, s in enumerate(starts) if s <= err.line), default=-1)
        where = f" event {index}:" if index >= 0 else ""
        more = len(xsd.error_log) - 1
        raise MalformedInput(
            f"{source} line {err.line}:{where} not valid EPCIS XML: "
            f"{err.message}" + (f" (and {more} more)" if more > 0 else "")
        )
    reader = _Reader(source)
    out_events = []
    for i, el in enumerate(flat):
        reader.event = i
        if _local(el.tag) not in EVENT_TYPES:
            raise reader.fail(
                el,
                f"<{_local(el.tag)}> is not an EPCIS 2.0 event type (QuantityEvent was removed in EPCIS 2.0)",
            )
        out_events.append(reader.event_of(el))
    reader.event = -1
    doc: dict[str, Any] = {"@context": [EPCIS_CONTEXT]}
    doc["type"] = _local(root.tag)
    for attr in ("schemaVersion", "creationDate"):
        if root.get(attr) is not None:
            doc[attr] = root.get(attr)
    doc.update(_header(root))
    if _local(root.tag) == "EPCISQueryDocument":
        results = root.find(".//queryResults")
        name = results.findtext("queryName") if results is not None else None
        qr: dict[str, Any] = {"queryName": name} if name else {}
        qr["resultsBody"] = {"eventList": out_events}
        doc["epcisBody"] = {"queryResults": qr}
    else:
        doc["epcisBody"] = {"eventList": out_events}
    vocabularies = _master_data(root, reader)
    if vocabularies:
        doc["epcisHeader"] = {"epcisMasterData": {"vocabularyList": vocabularies}}
    if reader.prefixes:
        doc["@context"].append(dict(sorted(reader.prefixes.items())))
    return doc


def _master_data(root: Any, reader: _Reader) -> list[dict[str, Any]]:
    """The EPCISMasterData of the header as the JSON binding's vocabularyList: each
    attribute's value its text, or an object of its elements as an extension's."""
    section = root.find("EPCISHeader//EPCISMasterData")
    if section is None:
        return []
    out = []
    for vocab in section.iterfind("VocabularyList/Vocabulary"):
        elements = []
        for el in vocab.iterfind("VocabularyElementList/VocabularyElement"):
            element: dict[str, Any] = {"id": el.get("id")}
            attributes = []
            for a in el.iterfind("attribute"):
                value = reader.extension(a) if len(a) else (a.text or "").strip()
                if isinstance(value, dict):
                    value.pop("id", None)  # the attribute's own id, not part of its value
                attributes.append({"id": a.get("id"), "attribute": value})
            if attributes:
                element["attributes"] = attributes
            children = [(c.text or "").strip() for c in el.iterfind("children/id")]
            if children:
                element["children"] = children
            elements.append(element)
        out.append({"type": vocab.get("type"), "vocabularyElementList": elements})
    return out


def _header(root: Any) -> dict[str, Any]:
    """The SBDH of the EPCISHeader as the JSON binding's document fields (``sender``,
    ``receiver``, ``instanceIdentifier``) and, whole, as ``sbdh`` for the import record."""
    h = root.find(f"EPCISHeader/{{{SBDH}}}StandardBusinessDocumentHeader")
    if h is None:
        return {}
    out: dict[str, Any] = {}
    sender = h.findtext(f"{{{SBDH}}}Sender/{{{SBDH}}}Identifier")
    receiver = h.findtext(f"{{{SBDH}}}Receiver/{{{SBDH}}}Identifier")
    instance = h.findtext(f"{{{SBDH}}}DocumentIdentification/{{{SBDH}}}InstanceIdentifier")
    for k, v in (("sender", sender), ("receiver", receiver), ("instanceIdentifier", instance)):
        if v is not None:
            out[k] = v.strip()
    out["sbdh"] = _plain(h)
    return out


def _plain(el: Any) -> Any:
    if not len(el):
        text = (el.text or "").strip()
        return {**dict(el.attrib), "#text": text} if el.attrib else text
    out: dict[str, Any] = dict(el.attrib)
    for c in el:
        k, v = _local(c.tag), _plain(c)
        out[k] = out[k] + [v] if isinstance(out.get(k), list) else [out[k], v] if k in out else v
    return out


# --- writing ------------------------------------------------------------------------------------


def _expand_vocab(value: str, *, gs1: bool = False) -> str:
    """A bare CBV word as the URN EPCIS XML has always used (GS1 words as their IRI)."""
    iri = vocabulary().get(value)
    if iri is None:
        return value
    for web, urn in _URN_OF.items():
        if iri.startswith(web):
            return urn + iri[len(web) :]
    return iri if gs1 or not iri.startswith(GS1_VOC) else iri


class _Writer:
    def __init__(self, namespaces: Mapping[str, str], *, declared: Mapping[str, str] | None = None) -> None:
        self.ns = namespaces
        self.declared = dict(declared or {})  # declared on each event element it writes

    def qname(self, key: str) -> str:
        prefix, sep, local = key.partition(":")
        if sep and not local.startswith("//") and prefix in self.ns:
            return f"{{{self.ns[prefix]}}}{local}"
        if key.startswith(("http://", "https://", "urn:")):
            cut = max(key.rfind("/"), key.rfind("#"), key.rfind(":")) + 1
            return f"{{{key[:cut]}}}{key[cut:]}"
        raise MalformedInput(f"{key!r} has no namespace an XML element could be written in")

    def ext(self, parent: Any, key: str, value: Any, *, nested: bool = False) -> None:
        if isinstance(value, list):
            for v in value:
                self.ext(parent, key, v, nested=nested)
            return
        plain = nested and ":" not in key  # a nested term of its parent's vocabulary
        el = etree.SubElement(parent, key if plain else self.qname(key))
        if isinstance(value, Mapping):
            if "@value" in value:  # a JSON-LD literal: its text, its language as xml:lang
                el.text = _text(value["@value"])
                if isinstance(value.get("@language"), str):
                    el.set(XML_LANG, value["@language"])
            for k, v in value.items():
                if k == "#text":
                    el.text = _text(v)
                elif not k.startswith("@"):
                    self.ext(el, k, v, nested=True)
        else:
            el.text = _text(value)

    def event(self, parent: Any, body: Mapping[str, Any]) -> None:
        kind = body["type"]
        el = etree.SubElement(parent, kind, nsmap=self.declared or None)
        order = _BASE_ORDER + _ORDER[kind]
        for name in order:
            if name in body:
                self.field(el, name, body[name])
        known = set(order) | {"type", "@context"}
        for k, v in body.items():
            if k not in known:
                self.ext(el, k, v)

    def field(self, parent: Any, name: str, value: Any) -> None:  # noqa: C901 - one per field
        sub = etree.SubElement
        if name in _TEXT:
            sub(parent, name).text = _text(value)
        elif name in ("bizStep", "disposition"):
            sub(parent, name).text = _expand_vocab(value)
        elif name in _EPC_LISTS:
            lst = sub(parent, name)
            for v in value:
                sub(lst, "epc").text = v
        elif name in _QUANTITY_LISTS:
            lst = sub(parent, name)
            for q in value:
                qe = sub(lst, "quantityElement")
                for f in ("epcClass", "quantity", "uom"):
                    if f in q:
                        sub(qe, f).text = _text(q[f])
        elif name in ("readPoint", "bizLocation"):
            place = sub(parent, name)
            sub(place, "id").text = value["id"]
            for k, v in value.items():
                if k != "id":
                    self.ext(place, k, v)
        elif name in _TYPED_LISTS:
            lst = sub(parent, name)
            item = _TYPED_LISTS[name]
            for row in value:
                e = sub(lst, item)
                if row.get("type"):
                    e.set("type", _expand_vocab(row["type"]))
                e.text = row[item]
        elif name == "sensorElementList":
            lst = sub(parent, name)
            for s in value:
                self.sensor(sub(lst, "sensorElement"), s)
        elif name == "persistentDisposition":
            pd = sub(parent, name)
            for k in ("unset", "set"):
                for v in value.get(k, []):
                    sub(pd, k).text = _expand_vocab(v)
        elif name == "ilmd":
            ilmd = sub(parent, name)
            for k, v in value.items():
                self.ext(ilmd, k, v)
        elif name == "errorDeclaration":
            decl = sub(parent, name)
            sub(decl, "declarationTime").text = value["declarationTime"]
            if "reason" in value:
                sub(decl, "reason").text = _expand_vocab(value["reason"])
            if "correctiveEventIDs" in value:
                ids = sub(decl, "correctiveEventIDs")
                for v in value["correctiveEventIDs"]:
                    sub(ids, "correctiveEventID").text = v
            for k, v in value.items():
                if k not in ("declarationTime", "reason", "correctiveEventIDs"):
                    self.ext(decl, k, v)

    def sensor(self, el: Any, s: Mapping[str, Any]) -> None:
        if "sensorMetadata" in s:
            self.attributes(etree.SubElement(el, "sensorMetadata"), s["sensorMetadata"])
        reports = s.get("sensorReport", [])
        for r in reports if isinstance(reports, list) else [reports]:
            self.attributes(etree.SubElement(el, "sensorReport"), r)
        for k, v in s.items():
            if k not in ("sensorMetadata", "sensorReport"):
                self.ext(el, k, v)

    def attributes(self, el: Any, values: Mapping[str, Any]) -> None:
        for k, v in values.items():
            if ":" in k:
                el.set(self.qname(k), _text(v))
            elif k in _VOCAB_ATTRS:
                el.set(k, _expand_vocab(v, gs1=True))
            else:
                el.set(k, _text(v))


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _event_list(parent: Any, events: Iterable[Mapping[str, Any]], *, namespaces: Mapping[str, str]) -> Any:
    lst = etree.SubElement(parent, "EventList")
    w = _Writer(namespaces)
    for event in events:
        # An event exported with a context of its own binds its prefixes there.
        own = namespaces_of(event) if "@context" in event else None
        (w if not own else _Writer({**namespaces, **own}, declared=own)).event(lst, event)
    return lst


def _root(
    tag: str, document: Mapping[str, Any], nsmap: dict[str | None, str], namespaces: Mapping[str, str]
) -> Any:
    nsmap.update({p: n for p, n in namespaces.items() if p not in nsmap})
    root = etree.Element(tag, nsmap=nsmap)
    root.set("schemaVersion", "2.0")
    root.set("creationDate", str(document["creationDate"]))
    return root


def write(
    document: Mapping[str, Any], *, namespaces: Mapping[str, str], body_extras: Iterable[Any] = ()
) -> bytes:
    """EPCIS 2.0 XML of a JSON-LD EPCISDocument whose events' prefixes ``namespaces`` binds;
    ``body_extras`` are elements (in a namespace of their own) put after the EventList."""
    root = _root(f"{{{NS2}}}EPCISDocument", document, {"epcis": NS2}, namespaces)
    body = etree.SubElement(root, "EPCISBody")
    _event_list(body, document["epcisBody"]["eventList"], namespaces=namespaces)
    for extra in body_extras:
        body.append(extra)
    out: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return out


def write_query(
    document: Mapping[str, Any], *, namespaces: Mapping[str, str], event_extras: Sequence[Sequence[Any]] = ()
) -> bytes:
    """EPCIS 2.0 XML of a JSON-LD EPCISQueryDocument (``epcisq:EPCISQueryDocument`` with
    ``epcisq:QueryResults``: queryName, subscriptionID if any, and the EventList), its
    events' prefixes bound by ``namespaces``. Fields an event carries beyond the standard
    ones are extension elements in their namespaces, after the standard fields, where
    GS1's XSD admits them; ``event_extras[i]`` are elements (in a namespace of their own)
    appended to the i-th event after those."""
    root = _root(f"{{{QUERY2}}}EPCISQueryDocument", document, {"epcisq": QUERY2, "epcis": NS2}, namespaces)
    results = document["epcisBody"]["queryResults"]
    body = etree.SubElement(root, "EPCISBody")
    qr = etree.SubElement(body, f"{{{QUERY2}}}QueryResults")
    etree.SubElement(qr, "queryName").text = str(results["queryName"])
    if results.get("subscriptionID") is not None:
        etree.SubElement(qr, "subscriptionID").text = str(results["subscriptionID"])
    rb = etree.SubElement(qr, "resultsBody")
    lst = _event_list(rb, results["resultsBody"]["eventList"], namespaces=namespaces)
    for el, extras in zip(lst, event_extras, strict=False):
        for extra in extras:
            el.append(extra)
    out: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return out


def validate(data: bytes, *, source: str = "document") -> None:
    """Raise MalformedInput unless ``data`` is EPCIS 2.0 XML the XSD accepts."""
    parse(data, source=source)
