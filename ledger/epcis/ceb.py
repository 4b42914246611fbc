"""China Customs CBEC messages in the ledger's own vocabulary.

The unified CBEC system (跨境电商统一版) takes from enterprises the order (CEB311), the
payment voucher (CEB411), the waybill (CEB511) and the import inventory (CEB621), and answers
each with a receipt (CEB312, 412, 512, 622). ``read_message`` reads one such message — bare,
or base64 inside the ``dxp:DxpMsg`` transport wrapper; UTF-8, or declared GB2312/GBK — with
the hardened parser of ``ledger.epcis.xml`` (no entities, no DTD, no network, bounded size
and depth), checks it against the official XSD shipped in ``ledger/cebdata`` and returns its
business documents, identical repeats counted once. ``event_of`` turns one document into an
EPCIS event body of the CBEC vocabulary (``cbec:orderInfo``, ``cbec:paymentInfo``,
``cbec:waybillInfo``, a ``cbec:declaring`` event, a release, return, inspection, hold or
receipt) and the private data its statement commits to: names, ID numbers, phones and
addresses never reach the body, only keyed hashes of them.

Pure, except that the XSDs are read once from the package.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from importlib import resources
from typing import Any, Final
from urllib.parse import quote

from lxml import etree

from ledger.core import canonical, ids
from ledger.core.errors import IdentifierError, MalformedInput
from ledger.epcis.event_hash import event_hash
from ledger.epcis.xml import hardened_parser, refuse_hostile

CEB: Final = "http://www.chinaport.gov.cn/ceb"
DXP: Final = "http://www.chinaport.gov.cn/dxp"
DSIG: Final = "http://www.w3.org/2000/09/xmldsig#"
MAX_MESSAGE_BYTES: Final = 32 << 20  # 100 inventories of 99 lines are a few MB
CHINA: Final = timezone(timedelta(hours=8))  # customs times are Beijing time
URI_PREFIX: Final = "urn:suyuan:ceb:"
MAX_URI: Final = 300


@dataclass(frozen=True)
class Kind:
    """One message type: its payload element, the fields of its natural key, and the
    enterprises responsible for its documents (by the fields naming their codes)."""

    message: str
    name: str
    payload: str  # the element repeated 1..100 times
    head: str | None  # the element holding the document's fields (None: the payload does)
    line: str | None
    key: tuple[str, ...]
    responsible: tuple[str, ...] = ()

    @property
    def receipt(self) -> bool:
        return self.head is None


KINDS: Final[Mapping[str, Kind]] = {
    k.message: k
    for k in (
        Kind(
            "CEB311Message",
            "order",
            "Order",
            "OrderHead",
            "OrderList",
            ("ebpCode", "ebcCode", "orderNo"),
            ("ebpCode", "ebcCode"),
        ),
        Kind(
            "CEB411Message",
            "payment",
            "Payment",
            "PaymentHead",
            None,
            ("payCode", "payTransactionId"),
            ("payCode",),
        ),
        Kind(
            "CEB511Message",
            "waybill",
            "Logistics",
            "LogisticsHead",
            None,
            ("logisticsCode", "logisticsNo"),
            ("logisticsCode",),
        ),
        Kind(
            "CEB621Message",
            "inventory",
            "Inventory",
            "InventoryHead",
            "InventoryList",
            ("agentCode", "copNo"),
            ("agentCode",),
        ),
        Kind(
            "CEB312Message",
            "order_receipt",
            "OrderReturn",
            None,
            None,
            ("ebpCode", "ebcCode", "orderNo", "returnStatus", "returnTime"),
        ),
        Kind(
            "CEB412Message",
            "payment_receipt",
            "PaymentReturn",
            None,
            None,
            ("payCode", "payTransactionId", "returnStatus", "returnTime"),
        ),
        Kind(
            "CEB512Message",
            "waybill_receipt",
            "LogisticsReturn",
            None,
            None,
            ("logisticsCode", "logisticsNo", "returnStatus", "returnTime"),
        ),
        Kind(
            "CEB622Message",
            "inventory_receipt",
            "InventoryReturn",
            None,
            None,
            ("agentCode", "copNo", "returnStatus", "returnTime"),
        ),
    )
}
# The order in which a call's messages are best imported: each document links to those
# before it (a payment to its order, a waybill to its order, an inventory to all three).
IMPORT_ORDER: Final = (
    "CEB311Message",
    "CEB411Message",
    "CEB511Message",
    "CEB621Message",
    "CEB312Message",
    "CEB412Message",
    "CEB512Message",
    "CEB622Message",
)

# JGS-20 country codes customs messages use -> ISO 3166-1 alpha-2, for the ones whose meaning
# the customs reference of issue 13 (CEB.md §7) gives; any other code stays private only.
COUNTRIES: Final[Mapping[str, str]] = {
    "110": "HK",
    "116": "JP",
    "133": "KR",
    "141": "VN",
    "142": "CN",
    "303": "GB",
    "304": "DE",
    "305": "FR",
    "502": "US",
    "601": "AU",
    "609": "NZ",
}
PROCEDURES: Final = ("9610", "1210")  # 直购进口, 保税进口: what a CEB621 declares


@dataclass(frozen=True)
class Document:
    """One business document of a message: its fields (text as sent, empty ones left out),
    and its lines; ``index`` is its place among the message's payload elements."""

    kind: Kind
    index: int
    fields: Mapping[str, str]
    lines: tuple[Mapping[str, str], ...] = ()

    def get(self, name: str) -> str | None:
        return self.fields.get(name)

    @property
    def key(self) -> dict[str, str]:
        """The natural key (receipts: the document answered, status and time)."""
        return {k: self.fields[k] for k in self.kind.key if k in self.fields}

    @property
    def app_type(self) -> str | None:
        return self.fields.get("appType")

    def where(self) -> str:
        key = ", ".join(f"{k} {v}" for k, v in self.key.items())
        return f"document {self.index} ({self.kind.name}" + (f" {key})" if key else ")")


@dataclass(frozen=True)
class Message:
    """A customs message as read: its type, guid, documents and transmitting enterprise."""

    source: str
    type: str
    guid: str
    documents: tuple[Document, ...]
    transfer: Mapping[str, str] = field(default_factory=dict)  # BaseTransfer
    wrapper: Mapping[str, str] = field(default_factory=dict)  # DxpMsg TransInfo, if wrapped

    @property
    def kind(self) -> Kind:
        return KINDS[self.type]

    @property
    def transmitter(self) -> str | None:
        return self.transfer.get("copCode")


# --- reading ------------------------------------------------------------------------------


def _files() -> Any:
    return resources.files("ledger").joinpath("cebdata")


@lru_cache(maxsize=1)
def import_schema() -> etree.XMLSchema:
    """The official import XSD, with the message's own ``ds:Signature`` made optional: the
    ledger neither verifies nor keeps customs' signatures (SM2 certificates of the E-Port),
    and the CEB621 the XSD demands one of is read the same without."""
    with resources.as_file(_files()) as folder:
        doc = etree.parse(str(folder / "ceb-import-202205.xsd"), hardened_parser())
        xs = "{http://www.w3.org/2001/XMLSchema}"
        for el in doc.iter(f"{xs}element"):
            if el.get("ref") == "ds:Signature":
                el.set("minOccurs", "0")
        return etree.XMLSchema(doc)


@lru_cache(maxsize=1)
def wrapper_schema() -> etree.XMLSchema:
    with resources.as_file(_files()) as folder:
        return etree.XMLSchema(etree.parse(str(folder / "ceb-dxp-202205.xsd"), hardened_parser()))


_DECLARATION: Final = re.compile(
    rb"^\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']", re.IGNORECASE
)
_TEXT_DECLARATION: Final = re.compile(
    r"^(\s*<\?xml[^>]*?encoding\s*=\s*[\"'])([A-Za-z0-9._-]+)([\"'])", re.IGNORECASE
)
_GB: Final = frozenset({"gb2312", "gbk", "gb18030", "cp936", "x-gbk", "euc-cn"})
_UTF8: Final = frozenset({"utf-8", "utf8"})


def _as_utf8(data: bytes, source: str) -> bytes:
    """The message as UTF-8 bytes: a UTF-8 BOM is dropped, and one declared in GB2312 or GBK
    is decoded as GB18030 (which covers both: messages declared GB2312 often hold GBK-only
    characters in names) and its declaration rewritten."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    m = _DECLARATION.match(data[:256])
    encoding = m.group(1).decode("ascii").lower() if m else "utf-8"
    if encoding in _UTF8:
        return data
    if encoding not in _GB:
        raise MalformedInput(
            f"{source}: encoding {encoding!r} is not one customs messages use; send UTF-8, GB2312 or GBK",
            code="malformed",
        )
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise MalformedInput(
            f"{source} line {line}: byte {e.start} is not {encoding.upper()} text as the XML declaration says"
        ) from None
    return _TEXT_DECLARATION.sub(r"\g<1>UTF-8\g<3>", text, count=1).encode("utf-8")


def _parse(data: bytes, source: str) -> Any:
    if len(data) > MAX_MESSAGE_BYTES:
        raise MalformedInput(
            f"{source} is {len(data)} bytes; a customs message may have at most {MAX_MESSAGE_BYTES} (32 MiB)",
            code="too_large",
        )
    data = _as_utf8(data, source)
    try:
        root = etree.fromstring(data, hardened_parser())
    except etree.XMLSyntaxError as e:
        # libxml2 stops an entity bomb itself (amplification, loops) even before the DTD
        # check below can: refused for what it is.
        hostile = "entit" in str(e.msg).lower()
        raise MalformedInput(
            f"{source} line {e.lineno}: not well-formed XML: {e.msg}",
            code="xml_refused" if hostile else "malformed",
        ) from None
    tree = root.getroottree()
    refuse_hostile(tree, source, "a customs message")
    return tree


def _local(tag: object) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def _ns(tag: object) -> str | None:
    return etree.QName(tag).namespace if isinstance(tag, str) else None


def _first_error(xsd: etree.XMLSchema) -> Any:
    return xsd.error_log[0]


def _unwrap(tree: Any, source: str) -> tuple[bytes, dict[str, str]]:
    """The message inside a ``dxp:DxpMsg``, and its TransInfo."""
    xsd = wrapper_schema()
    if not xsd.validate(tree):
        err = _first_error(xsd)
        raise MalformedInput(f"{source} line {err.line}: not a valid dxp:DxpMsg: {err.message}")
    root = tree.getroot()
    info: dict[str, str] = {}
    trans = root.find(f"{{{DXP}}}TransInfo")
    if trans is not None:
        for el in trans.iter():
            if el is not trans and el.text and el.text.strip() and not len(el):
                info[_local(el.tag)] = el.text.strip()
    data_el = root.find(f"{{{DXP}}}Data")
    text = re.sub(r"\s+", "", data_el.text or "") if data_el is not None else ""
    try:
        inner = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedInput(f"{source} line {data_el.sourceline}: dxp:Data is not base64") from None
    if not inner:
        raise MalformedInput(f"{source}: dxp:Data is empty; it carries the customs message")
    return inner, info


def _split_multi_heads(root: Any, kind: Kind) -> None:
    """One ``Payment`` (or ``Logistics``) wrapper holding several heads, as some senders
    write it (common-customs-beans), becomes one wrapper per head, as the XSD has it."""
    if kind.head is None or kind.line is not None:
        return
    for payload in list(root.findall(f"{{{CEB}}}{kind.payload}")):
        heads = payload.findall(f"{{{CEB}}}{kind.head}")
        if len(heads) < 2:
            continue
        at = root.index(payload)
        for i, head in enumerate(heads[1:], 1):
            twin = etree.Element(payload.tag, nsmap=payload.nsmap)
            twin.append(head)
            root.insert(at + i, twin)


def _fields(el: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for child in el:
        if not isinstance(child.tag, str) or len(child):
            continue
        text = (child.text or "").strip()
        if text:
            out[_local(child.tag)] = text
    return out


def read_message(data: bytes, *, source: str = "message") -> Message:
    """Read and check one customs message (bare or in a ``dxp:DxpMsg``); refuse it with
    ``MalformedInput`` naming the file, line, document and field of the first fault."""
    tree = _parse(data, source)
    root = tree.getroot()
    wrapper: dict[str, str] = {}
    if (_ns(root.tag), _local(root.tag)) == (DXP, "DxpMsg"):
        inner, wrapper = _unwrap(tree, source)
        source = f"{source} (dxp:Data)"
        tree = _parse(inner, source)
        root = tree.getroot()
        if _ns(root.tag) == DXP:
            raise MalformedInput(f"{source}: a dxp:DxpMsg inside a dxp:DxpMsg is not read")
    name = _local(root.tag)
    if _ns(root.tag) != CEB or name not in KINDS:
        raise MalformedInput(
            f"{source}: expected a customs message ({', '.join(IMPORT_ORDER)} in namespace "
            f"{CEB}), not <{name}> in namespace {_ns(root.tag)}"
        )
    declared = wrapper.get("MsgType")
    if declared and declared != name:
        raise MalformedInput(f"{source}: the dxp:DxpMsg says MsgType {declared}, but it carries a {name}")
    kind = KINDS[name]
    # The signature is neither verified nor kept: taking it out before the check makes a
    # placeholder one (as in assembled examples) as acceptable as none.
    for sig in root.findall(f"{{{DSIG}}}Signature"):
        root.remove(sig)
    _split_multi_heads(root, kind)
    payloads = root.findall(f"{{{CEB}}}{kind.payload}")
    xsd = import_schema()
    if not xsd.validate(tree):
        err = _first_error(xsd)
        starts = [p.sourceline or 0 for p in payloads]
        index = max((i for i, s in enumerate(starts) if s <= err.line), default=-1)
        where = f" document {index}:" if index >= 0 else ""
        more = len(xsd.error_log) - 1
        raise MalformedInput(
            f"{source} line {err.line}:{where} not a valid {name}: {err.message}"
            + (f" (and {more} more)" if more > 0 else "")
        )
    docs: list[Document] = []
    seen: set[bytes] = set()
    for i, payload in enumerate(payloads):
        lines: list[Any] = []
        if kind.head is None:
            head = payload
        else:
            head = payload.find(f"{{{CEB}}}{kind.head}")
            lines = payload.findall(f"{{{CEB}}}{kind.line}") if kind.line else []
        doc = Document(kind, i, _fields(head), tuple(_fields(x) for x in lines))
        # The official samples repeat whole documents: an identical repeat counts once.
        same = canonical.canonical_bytes({"f": dict(doc.fields), "l": [dict(x) for x in doc.lines]})
        if same in seen:
            continue
        seen.add(same)
        docs.append(doc)
    transfer = root.find(f"{{{CEB}}}BaseTransfer")
    return Message(
        source=source,
        type=name,
        guid=root.get("guid", ""),
        documents=tuple(docs),
        transfer=_fields(transfer) if transfer is not None else {},
        wrapper=wrapper,
    )


# --- values -------------------------------------------------------------------------------


def _fail(msg: Message, doc: Document, name: str, problem: str) -> MalformedInput:
    return MalformedInput(f"{msg.source}: {doc.where()}: {name} {problem}")


def _need(msg: Message, doc: Document, name: str) -> str:
    value = doc.get(name)
    if value is None:
        raise _fail(msg, doc, name, "is required here and is missing or empty")
    return value


def _decimal(msg: Message, doc: Document, name: str, value: str) -> Decimal:
    try:
        d = Decimal(value)
    except InvalidOperation:
        raise _fail(msg, doc, name, f"{value!r} is not a decimal number") from None
    if not d.is_finite() or d < 0:
        raise _fail(msg, doc, name, f"{value} is not an amount the ledger records (negative)")
    return d


def money(msg: Message, doc: Document, name: str, value: str | None = None) -> str:
    """An amount as the CBEC vocabulary writes it: a decimal string with two decimals."""
    text = _need(msg, doc, name) if value is None else value
    d = _decimal(msg, doc, name, text)
    cents = d.quantize(Decimal("0.01"))
    if cents != d:
        raise _fail(
            msg, doc, name, f"{text} has fractions of a fen; amounts are recorded to the fen (two decimals)"
        )
    if cents >= Decimal(10) ** 15:
        raise _fail(msg, doc, name, f"{text} is beyond 15 digits of yuan")
    return f"{cents:.2f}"


def quantity(msg: Message, doc: Document, name: str, value: str) -> Decimal:
    d = _decimal(msg, doc, name, value)
    if d >= Decimal(10) ** 14:
        raise _fail(msg, doc, name, f"{value} is beyond 14 digits")
    return d


def decimal_text(d: Decimal) -> str:
    """``2``, ``0.35``: no exponent, no trailing zeros (the vocabulary's ``cbecDecimal``)."""
    text = format(d.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def json_number(d: Decimal) -> int | float:
    return int(d) if d == d.to_integral_value() else float(d)


def customs_time(msg: Message, doc: Document, name: str) -> str:
    """``YYYYMMDDhhmmss`` (or with ``SSS`` milliseconds, as receipts write it) in Beijing
    time, as an RFC 3339 time."""
    text = _need(msg, doc, name)
    if not re.fullmatch(r"[0-9]{14}([0-9]{3})?", text):
        raise _fail(msg, doc, name, f"{text!r} is not a time such as 20240501093000")
    try:
        t = datetime.strptime(text[:14], "%Y%m%d%H%M%S").replace(tzinfo=CHINA)
    except ValueError:
        raise _fail(msg, doc, name, f"{text} is not a real date and time") from None
    if len(text) == 17:
        return t.isoformat(timespec="seconds")[:-6] + f".{text[14:]}+08:00"
    return t.isoformat(timespec="seconds")


def keyed_hash(key: bytes, text: str) -> str:
    return "hmac-sha256:" + hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def buyer_id_hash(key: bytes, id_number: str) -> str:
    """schemas/README.md: HMAC-SHA256 under the zone's matching key of "id:" + the number in
    upper case (the demo's ``buyer_id_hash``)."""
    return keyed_hash(key, "id:" + id_number.strip().upper())


def _plain(text: str) -> str:
    return " ".join(text.split())


def consignee_hash(key: bytes, name: str, telephone: str, address: str) -> str:
    """HMAC-SHA256 under the zone's matching key of "consignee:" + JCS([name, phone,
    address]), white space trimmed and runs of it made one space: customs requires the
    order's consignee to be the waybill's, and the hash compares them unseen."""
    parts = [_plain(name), _plain(telephone), _plain(address)]
    return keyed_hash(key, "consignee:" + canonical.canonical_bytes(parts).decode("utf-8"))


def _part(value: str) -> str:
    return quote(value, safe="-._~")


def document_uri(kind: str, *parts: str) -> str:
    """The URI a document is cited by: ``urn:suyuan:ceb:{kind}:{part}:{part}``, each part
    percent-encoded; one too long to index is named by the SHA-256 of its parts instead."""
    uri = URI_PREFIX + kind + ":" + ":".join(_part(p) for p in parts)
    if len(uri) <= MAX_URI:
        return uri
    digest = hashlib.sha256(canonical.canonical_bytes(list(parts))).hexdigest()
    return f"{URI_PREFIX}{kind}:sha256:{digest}"


def order_uri(ebp_code: str, order_no: str) -> str:
    """An order is one platform's (its orderNo is unique within the platform), so the payment
    (orderNo + ebpCode) and the inventory (with ebcCode too) name it alike."""
    return document_uri("order", ebp_code, order_no)


def order_number_uri(order_no: str) -> str:
    """What a waybill knows of its order: the number alone. The order cites it too, so that a
    waybill can be linked to the order that carries it."""
    return document_uri("order-number", order_no)


def payment_uri(pay_code: str, transaction: str) -> str:
    return document_uri("payment", pay_code, transaction)


def waybill_uri(logistics_code: str, logistics_no: str) -> str:
    return document_uri("waybill", logistics_code, logistics_no)


def inventory_uri(agent_code: str, cop_no: str) -> str:
    return document_uri("inventory", agent_code, cop_no)


def item_class(*, bar_code: str | None, item_no: str | None, ebc_code: str) -> str | None:
    """The product a line is about: the GTIN of its bar code when that is one (GS1 Digital
    Link of the class), else the e-commerce enterprise's own item number."""
    if bar_code and bar_code.isdigit() and len(bar_code) in (8, 12, 13, 14):
        try:
            return f"https://id.gs1.org/01/{ids.validate_gtin(bar_code)}"
        except IdentifierError:
            pass  # not a GTIN after all ("无", a shop's own bar code): fall back
    if item_no:
        return document_uri("item", ebc_code, item_no)
    return None


# --- what an importer decides before mapping --------------------------------------------------


@dataclass(frozen=True)
class Context:
    """What the importer found out about a document from the registry and the ledger."""

    responsible: tuple[str, ...] = ()  # codes of the enterprises responsible for it
    on_behalf_of: tuple[str, ...] = ()  # set when the signer transmits for them
    parties: tuple[str, ...] = ()  # registered parties among the responsible (not the signer)
    merchant: str | None = None  # the ebcCode's party, for an order's sourceList
    order: str | None = None  # a waybill's order, as resolved (None: by number only)
    payment: str | None = None  # an inventory's payment, as found on the ledger
    goods: tuple[Mapping[str, Any], ...] = ()  # a release's goods: its declaration's quantityList


def responsible_codes(doc: Document) -> tuple[str, ...]:
    return tuple(dict.fromkeys(c for f in doc.kind.responsible if (c := doc.get(f))))


def document_number(doc: Document) -> tuple[str, str] | None:
    """(bizTransaction type, URI) of the document an enterprise document *is*, or that a
    receipt answers; None when a field needed to name it is missing."""
    g = doc.get
    name = doc.kind.name.removesuffix("_receipt")
    if name == "order" and g("ebpCode") and g("orderNo"):
        return "cbec:order", order_uri(g("ebpCode") or "", g("orderNo") or "")
    if name == "payment" and g("payCode") and g("payTransactionId"):
        return "cbec:payment", payment_uri(g("payCode") or "", g("payTransactionId") or "")
    if name == "waybill" and g("logisticsCode") and g("logisticsNo"):
        return "cbec:waybill", waybill_uri(g("logisticsCode") or "", g("logisticsNo") or "")
    if name == "inventory" and g("agentCode") and g("copNo"):
        return "cbec:declaration", inventory_uri(g("agentCode") or "", g("copNo") or "")
    return None


# --- mapping --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mapped:
    """One document as an event body, with the private data its statement commits to."""

    document: Document
    body: dict[str, Any]
    private: dict[str, Any]
    number: tuple[str, str]  # (bizTransaction type, URI) of the document (or answered one)


def _provenance(msg: Message, doc: Document, ctx: Context) -> dict[str, Any]:
    out: dict[str, Any] = {"message": msg.type, "guid": msg.guid, "key": doc.key}
    head_guid = doc.get("guid")
    if head_guid:
        out["document"] = head_guid
    for name, f in (("appType", "appType"), ("appStatus", "appStatus"), ("status", "returnStatus")):
        if doc.get(f):
            out[name] = doc.get(f)
    if not doc.kind.receipt:
        out["responsible"] = list(ctx.responsible)
        if msg.transmitter:
            out["transmitter"] = msg.transmitter
    if ctx.on_behalf_of:
        out["onBehalfOf"] = list(ctx.on_behalf_of)
    if ctx.parties:
        out["parties"] = list(ctx.parties)
    return out


def _references(doc: Document, names: Sequence[str]) -> dict[str, str]:
    return {n: v for n in names if (v := doc.get(n)) is not None and n not in doc.kind.key}


def _private(msg: Message, doc: Document) -> dict[str, Any]:
    """Everything the document says, as sent: regulators and the parties it names see it."""
    out: dict[str, Any] = {"message": msg.type, "guid": msg.guid, "fields": dict(doc.fields)}
    if doc.lines:
        out["lines"] = [dict(x) for x in doc.lines]
    if msg.transfer:
        out["transfer"] = dict(msg.transfer)
    if msg.wrapper:
        out["transport"] = dict(msg.wrapper)
    return out


def _lines(
    msg: Message, doc: Document, *, name_field: str, ebc_code: str, declaration: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(cbec:lines, quantityList): each line by its gnum, and the products they name, each
    once with the lines' quantities added up."""
    lines: list[dict[str, Any]] = []
    quantities: dict[str, Decimal] = {}
    seen: set[int] = set()
    for n, x in enumerate(doc.lines):
        where = f"line {n + 1} "
        gnum_text = x.get("gnum", "")
        if not gnum_text.isdigit() or int(gnum_text) < 1:
            raise _fail(msg, doc, where + "gnum", f"{gnum_text!r} is not a line number from 1")
        gnum = int(gnum_text)
        if gnum in seen:
            raise _fail(msg, doc, where + "gnum", f"{gnum} repeats; each line has its own number")
        seen.add(gnum)
        line: dict[str, Any] = {"gnum": gnum}
        name = x.get(name_field) or x.get("itemName")
        if not name:
            raise _fail(msg, doc, where + name_field, "is required and is missing")
        line["name"] = name[:250]
        item = item_class(bar_code=x.get("barCode"), item_no=x.get("itemNo"), ebc_code=ebc_code)
        if item:
            line["item"] = item
        qty = quantity(msg, doc, where + "qty", x["qty"]) if x.get("qty") else None
        if qty is not None:
            line["quantity"] = decimal_text(qty)
            if item:
                quantities[item] = quantities.get(item, Decimal(0)) + qty
        unit = x.get("unit")
        if unit and re.fullmatch(r"[0-9A-Za-z]{1,3}", unit):
            line["unit"] = unit
        if declaration:
            gcode = x.get("gcode", "")
            if re.fullmatch(r"[0-9]{6}([0-9]{2}){0,2}", gcode):
                line["hsCode"] = gcode
        country = COUNTRIES.get(x.get("country", ""))
        if country:
            line["countryOfOrigin"] = country
        lines.append(line)
    goods = [{"epcClass": c, "quantity": json_number(q)} for c, q in quantities.items()]
    return lines, goods


def _goods(body: dict[str, Any], goods: Sequence[Mapping[str, Any]]) -> None:
    if goods:
        body["quantityList"] = [dict(g) for g in goods]
    else:
        body["epcList"] = []


def _finish(body: dict[str, Any]) -> dict[str, Any]:
    """The event's ID is its own CBV 2.0 event hash: one document, one ID, however often it
    is sent."""
    body["eventID"] = event_hash(body)
    return body


def _base(kind: str, time: str) -> dict[str, Any]:
    return {"type": kind, "eventTime": time, "eventTimeZoneOffset": "+08:00"}


def _order(msg: Message, doc: Document, ctx: Context, key: bytes) -> dict[str, Any]:
    g = doc.get
    ebp, ebc, order_no = _need(msg, doc, "ebpCode"), _need(msg, doc, "ebcCode"), _need(msg, doc, "orderNo")
    info: dict[str, Any] = {
        "goods": money(msg, doc, "goodsValue"),
        "freight": money(msg, doc, "freight"),
        "tax": money(msg, doc, "taxTotal"),
        "discount": money(msg, doc, "discount"),
        "paid": money(msg, doc, "acturalPaid"),
        "currency": "CNY",
        "buyerIdHash": buyer_id_hash(key, _need(msg, doc, "buyerIdNumber")),
    }
    if g("consignee") and g("consigneeTelephone") and g("consigneeAddress"):
        info["consigneeHash"] = consignee_hash(
            key, g("consignee") or "", g("consigneeTelephone") or "", g("consigneeAddress") or ""
        )
    lines, goods = _lines(msg, doc, name_field="itemName", ebc_code=ebc, declaration=False)
    body = _base("TransactionEvent", customs_time(msg, doc, "appTime"))
    body["action"] = "ADD"
    body["bizTransactionList"] = [
        {"type": "cbec:order", "bizTransaction": order_uri(ebp, order_no)},
        {"bizTransaction": order_number_uri(order_no)},
    ]
    _goods(body, goods)
    if ctx.merchant:
        body["sourceList"] = [{"type": "owning_party", "source": ctx.merchant}]
    body["cbec:orderInfo"] = info
    if lines:
        body["cbec:lines"] = lines
    prov = _provenance(msg, doc, ctx)
    refs = _references(doc, ("payCode", "payTransactionId"))
    if refs:
        prov["references"] = refs
    body["cbec:customsMessage"] = prov
    return body


def _payment(msg: Message, doc: Document, ctx: Context, key: bytes) -> dict[str, Any]:
    pay, tx = _need(msg, doc, "payCode"), _need(msg, doc, "payTransactionId")
    body = _base("TransactionEvent", customs_time(msg, doc, "payTime"))
    body["action"] = "ADD"
    body["bizTransactionList"] = [
        {
            "type": "cbec:order",
            "bizTransaction": order_uri(_need(msg, doc, "ebpCode"), _need(msg, doc, "orderNo")),
        },
        {"type": "cbec:payment", "bizTransaction": payment_uri(pay, tx)},
    ]
    body["epcList"] = []
    body["cbec:paymentInfo"] = {
        "paid": money(msg, doc, "amountPaid"),
        "currency": "CNY",
        "buyerIdHash": buyer_id_hash(key, _need(msg, doc, "payerIdNumber")),
    }
    prov = _provenance(msg, doc, ctx)
    prov["references"] = _references(doc, ("orderNo", "ebpCode"))
    body["cbec:customsMessage"] = prov
    return body


def _weight(msg: Message, doc: Document, name: str) -> str:
    d = quantity(msg, doc, name, _need(msg, doc, name)).quantize(Decimal("0.001"))
    if d >= Decimal(10) ** 10:
        raise _fail(msg, doc, name, "is beyond ten digits of kilograms")
    return f"{d:.3f}"


def _waybill(msg: Message, doc: Document, ctx: Context, key: bytes) -> dict[str, Any]:
    g = doc.get
    code, number = _need(msg, doc, "logisticsCode"), _need(msg, doc, "logisticsNo")
    order_no = _need(msg, doc, "orderNo")
    # The specification has it: freight "0" if none (the XSD lets it be left out).
    info: dict[str, Any] = {
        "freight": money(msg, doc, "freight", g("freight") or "0"),
        "currency": "CNY",
        "grossWeightKg": _weight(msg, doc, "weight"),
    }
    if g("consignee") and g("consigneeTelephone") and g("consigneeAddress"):
        info["consigneeHash"] = consignee_hash(
            key, g("consignee") or "", g("consigneeTelephone") or "", g("consigneeAddress") or ""
        )
    body = _base("TransactionEvent", customs_time(msg, doc, "appTime"))
    body["action"] = "ADD"
    # A waybill names its order by number only; the importer found the platform's order
    # with that number, or there is none on the ledger yet and the platform stays unknown.
    order = ctx.order or document_uri("order", "", order_no)
    body["bizTransactionList"] = [
        {"type": "cbec:order", "bizTransaction": order},
        {"type": "cbec:waybill", "bizTransaction": waybill_uri(code, number)},
    ]
    body["epcList"] = []
    body["cbec:waybillInfo"] = info
    prov = _provenance(msg, doc, ctx)
    prov["references"] = _references(doc, ("orderNo", "billNo"))
    body["cbec:customsMessage"] = prov
    return body


def _inventory(msg: Message, doc: Document, ctx: Context, key: bytes) -> dict[str, Any]:
    agent, cop_no = _need(msg, doc, "agentCode"), _need(msg, doc, "copNo")
    ebp, ebc = _need(msg, doc, "ebpCode"), _need(msg, doc, "ebcCode")
    lines, goods = _lines(msg, doc, name_field="gname", ebc_code=ebc, declaration=True)
    body = _base("ObjectEvent", customs_time(msg, doc, "appTime"))
    body["action"] = "OBSERVE"
    body["bizStep"] = "cbec:declaring"
    links = [{"type": "cbec:order", "bizTransaction": order_uri(ebp, _need(msg, doc, "orderNo"))}]
    if ctx.payment:
        links.append({"type": "cbec:payment", "bizTransaction": ctx.payment})
    links += [
        {
            "type": "cbec:waybill",
            "bizTransaction": waybill_uri(_need(msg, doc, "logisticsCode"), _need(msg, doc, "logisticsNo")),
        },
        {"type": "cbec:declaration", "bizTransaction": inventory_uri(agent, cop_no)},
    ]
    body["bizTransactionList"] = links
    _goods(body, goods)
    mode = doc.get("tradeMode")
    if mode in PROCEDURES:
        body["cbec:customsProcedure"] = mode
    first = lines[0] if lines else {}
    if "hsCode" in first:
        body["cbec:hsCode"] = first["hsCode"]
    if "countryOfOrigin" in first:
        body["cbec:countryOfOrigin"] = first["countryOfOrigin"]
    if lines:
        body["cbec:lines"] = lines
    prov = _provenance(msg, doc, ctx)
    prov["references"] = _references(
        doc,
        (
            "orderNo",
            "ebpCode",
            "ebcCode",
            "logisticsCode",
            "logisticsNo",
            "preNo",
            "invtNo",
            "tradeMode",
            "customsCode",
            "portCode",
            "emsNo",
            "areaCode",
            "billNo",
        ),
    )
    body["cbec:customsMessage"] = prov
    return body


# returnStatus -> (bizStep, disposition) of the customs event a receipt becomes.
def receipt_step(status: str) -> tuple[str, str | None]:
    if status in ("800", "899"):  # 放行, 结关
        return "cbec:releasing", "sellable_accessible"
    if status == "500":  # 查验
        return "cbec:inspecting_customs", None
    if status in ("501", "502", "503", "599"):  # 扣留移送通关/缉私/法规, 其它扣留
        return "cbec:holding_customs", None
    if status == "100":  # 海关退单
        return "cbec:returning_customs", None
    return "cbec:acknowledging_customs", None  # 暂存, 申报中, 入库, 审核, 审结, 退运, errors


def _receipt(msg: Message, doc: Document, ctx: Context, key: bytes) -> dict[str, Any]:
    number = document_number(doc)
    if number is None:
        need = {
            "order_receipt": "ebpCode and orderNo",
            "payment_receipt": "payCode and payTransactionId",
            "waybill_receipt": "logisticsCode and logisticsNo",
            "inventory_receipt": "agentCode and copNo",
        }[doc.kind.name]
        raise _fail(msg, doc, need, "are needed to name the document it answers")
    status = _need(msg, doc, "returnStatus")
    if not re.fullmatch(r"-?[0-9]{1,9}", status):
        raise _fail(msg, doc, "returnStatus", f"{status!r} is not a customs status code")
    step, disposition = receipt_step(status)
    body = _base("ObjectEvent", customs_time(msg, doc, "returnTime"))
    body["action"] = "OBSERVE"
    body["bizStep"] = step
    if disposition:
        body["disposition"] = disposition
    body["bizTransactionList"] = [{"type": number[0], "bizTransaction": number[1]}]
    _goods(body, ctx.goods if step == "cbec:releasing" else ())
    prov = _provenance(msg, doc, ctx)
    refs = _references(doc, ("preNo", "invtNo", "customsCode", "ebpCode", "ebcCode"))
    if refs:
        prov["references"] = refs
    body["cbec:customsMessage"] = prov
    return body


_MAPPERS: Final = {"order": _order, "payment": _payment, "waybill": _waybill, "inventory": _inventory}


def event_of(msg: Message, doc: Document, ctx: Context, *, matching_key: bytes) -> Mapped:
    """The event body one document becomes, and its private data. An ``appType`` 3 (delete)
    document becomes an error declaration of the document (reason ``did_not_occur``): the
    ledger keeps both, and the withdrawal is the document's latest version."""
    number = document_number(doc)
    mapper = _MAPPERS.get(doc.kind.name, _receipt)
    if number is None and mapper is not _receipt:
        raise _fail(msg, doc, " and ".join(doc.kind.key), "are required to identify it")
    body = mapper(msg, doc, ctx, matching_key)
    if doc.app_type == "3":
        body["errorDeclaration"] = {"declarationTime": body["eventTime"], "reason": "did_not_occur"}
    body = _finish(body)
    assert number is not None or mapper is _receipt
    return Mapped(
        doc,
        body,
        _private(msg, doc),
        number or (body["bizTransactionList"][0]["type"], body["bizTransactionList"][0]["bizTransaction"]),
    )


# --- writing (the demo's messages, tests) ---------------------------------------------------------


@lru_cache(maxsize=1)
def _sequences() -> dict[str, list[str]]:
    """Element name -> its children's names in the import XSD's order."""
    xs = "{http://www.w3.org/2001/XMLSchema}"
    with resources.as_file(_files()) as folder:
        root = etree.parse(str(folder / "ceb-import-202205.xsd"), hardened_parser()).getroot()
    out: dict[str, list[str]] = {}
    for el in root.findall(f"{xs}element"):
        seq = el.find(f"{xs}complexType/{xs}sequence")
        if seq is not None:
            out[el.get("name")] = [
                (c.get("name") or c.get("ref") or "").removeprefix("ceb:")
                for c in seq
                if c.tag == f"{xs}element"
            ]
    return out


def _append_fields(parent: Any, element: str, values: Mapping[str, str]) -> None:
    order = _sequences()[element]
    unknown = set(values) - set(order)
    if unknown:
        raise MalformedInput(f"{element} has no field {sorted(unknown)[0]}")
    for name in order:
        if name in values:
            etree.SubElement(parent, f"{{{CEB}}}{name}").text = values[name]


def message_xml(
    message: str,
    guid: str,
    documents: Sequence[tuple[Mapping[str, str], Sequence[Mapping[str, str]]]],
    transfer: Mapping[str, str] | None = None,
) -> bytes:
    """A customs message of ``message`` type: each document's fields (and lines) in the
    XSD's order, then BaseTransfer; checked against the XSD before it is returned."""
    kind = KINDS[message]
    root = etree.Element(f"{{{CEB}}}{message}", nsmap={"ceb": CEB})
    root.set("guid", guid)
    root.set("version", "1.0")
    for head, lines in documents:
        payload = etree.SubElement(root, f"{{{CEB}}}{kind.payload}")
        if kind.head is None:
            _append_fields(payload, kind.payload, head)
            continue
        _append_fields(etree.SubElement(payload, f"{{{CEB}}}{kind.head}"), kind.head, head)
        for line in lines:
            assert kind.line is not None
            _append_fields(etree.SubElement(payload, f"{{{CEB}}}{kind.line}"), kind.line, line)
    if transfer is not None:
        _append_fields(etree.SubElement(root, f"{{{CEB}}}BaseTransfer"), "BaseTransfer", transfer)
    data: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    read_message(data, source=f"{message} {guid}")  # what is written must read back
    return data


def dxp_wrapped(
    data: bytes,
    *,
    message: str,
    sender: str,
    receiver: str = "DXPEDCCEB0000002",
    created: str = "2024-05-01T09:30:00",
    msg_id: str = "1",
) -> bytes:
    """``data`` base64 in a ``dxp:DxpMsg``, as the E-Port's terminal node sends it."""
    root = etree.Element(f"{{{DXP}}}DxpMsg", nsmap={"dxp": DXP})
    root.set("ver", "1.0")
    info = etree.SubElement(root, f"{{{DXP}}}TransInfo")
    for name, value in (("CopMsgId", msg_id), ("SenderId", sender)):
        etree.SubElement(info, f"{{{DXP}}}{name}").text = value
    etree.SubElement(etree.SubElement(info, f"{{{DXP}}}ReceiverIds"), f"{{{DXP}}}ReceiverId").text = receiver
    etree.SubElement(info, f"{{{DXP}}}CreatTime").text = created
    etree.SubElement(info, f"{{{DXP}}}MsgType").text = message
    etree.SubElement(root, f"{{{DXP}}}Data").text = base64.b64encode(data).decode("ascii")
    out: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return out
