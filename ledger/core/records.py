"""Plain records that the rules and the store both hold: what a rule module works out and
what the store writes or reads back. No behaviour beyond presenting themselves; the rules
that make them stay in their own modules (``ledger.compliance.findings``,
``ledger.epcis.event_hash``, ``ledger.epcis.context``), the SQL that keeps them in
``ledger.store``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

# --- compliance findings ---------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One flagged problem: which rule, how bad, which entries, parties and products."""

    id: str
    seq: int  # the entry that raised it
    rule: str
    severity: str
    time: str  # the ledger time of that entry
    seqs: tuple[int, ...]
    parties: tuple[str, ...]
    codes: tuple[str, ...]
    message_zh: str
    message_en: str
    details: Mapping[str, Any]
    source: str = "entry"

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "seq": self.seq,
            "rule": self.rule,
            "severity": self.severity,
            "time": self.time,
            "seqs": list(self.seqs),
            "parties": list(self.parties),
            "codes": list(self.codes),
            "message": {"zh": self.message_zh, "en": self.message_en},
            "details": dict(self.details),
            "source": self.source,
        }


@dataclass(frozen=True)
class Document:
    """One version of a trade document: an order, payment, waybill or declaration."""

    type: str  # "cbec:order" | "cbec:payment" | "cbec:waybill" | "cbec:declaration"
    id: str
    seq: int
    signer: str
    links: Mapping[str, str]  # the other document types this event cites -> their numbers
    info: Mapping[str, Any]  # orderInfo / paymentInfo / waybillInfo; {} for a declaration
    procedure: str | None
    hs_code: str | None
    order: str | None  # the order number it belongs to (an order: its own)
    buyer: str | None  # buyerIdHash of an order or payment
    year: int | None  # an order's calendar year in its own time zone
    value: str | None  # an order's dutiable value in CNY (goods + freight)
    seller: str | None  # an order's merchant (sourceList owning_party), if named
    # This version withdraws the document (an error declaration of it): it counts as absent.
    withdrawn: bool = False
    # Read from a customs message (cbec:customsMessage), whose rules hold it to the fen.
    customs: bool = False


class CodeMark(NamedTuple):
    """The first time the ledger marked a code (recalled, decommissioned, sold...)."""

    code: str
    mark: str
    seq: int
    utc: str


# --- the capture index -----------------------------------------------------------------------


class CaptureKey(NamedTuple):
    """What tells one captured event from another of the same signer: its ``eventID`` (or,
    without one, its event hash), its event hash, and whether it declares an error."""

    key: str
    hash: str
    declared: bool


class Captured(NamedTuple):
    """An event already on the ledger, as the capture index holds it."""

    seq: int
    signer: str
    key: CaptureKey
    statement_hash: bytes


class DocumentRecord(NamedTuple):
    """A signed ``document`` statement: an import's record of the document it read."""

    seq: int
    signer: str
    issued: str
    body: Mapping[str, Any]
