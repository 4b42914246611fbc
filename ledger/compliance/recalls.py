"""Answers to a recall: what a negative-listed party may still do.

A party on the negative list (事前准入禁止) is refused, except for events that answer a
recall: moving, holding (quarantine, inspection), returning or destroying goods that are
under a recall. Whether an event does is decided by the ledger's facts, never by the words
the event uses (a disposition of ``recalled`` proves nothing):

- every code the event names is under a recall already on the ledger — a recall event
  named the code itself, its product (GTIN), one of its lots, or a container it was
  packed in (and, for packing, a new container of goods that all are), as the recall
  impact (``ledger.queries.trace.recall_impact``) follows lots and containers down to items;
- and what the event does is one of ``ANSWER_ACTIVITIES``: never making (commissioning,
  an ObjectEvent that adds objects, a transformation), selling, paying or declaring.

Pure: the facts come through ``RecallFacts`` (the append path's batch view, or the audit's
view re-derived from entries).
"""

from __future__ import annotations

from typing import Final, Protocol

from ledger.epcis.projection import SOLD_DISPOSITIONS, gtin_class, named_codes, split_lot
from ledger.epcis.stages import Classified, EventCodes

# What answering a recall does with the goods: move them (the way back included), hold,
# inspect or sample them, or end them.
ANSWER_ACTIVITIES: Final = frozenset({
    "shipping", "receiving", "departing", "arriving", "transporting", "storing", "stocking",
    "picking", "staging_outbound", "accepting", "collecting", "consigning", "entering_exiting",
    "loading", "unloading", "packing", "unpacking", "aggregation", "waybill",
    "holding", "hold", "inspecting", "sampling",
    "destroying", "decommissioning", "killing",
})  # fmt: skip


class RecallFacts(Protocol):
    """What the ledger held before the event being judged (a subset of findings.View)."""

    def recalled(self, code: str) -> tuple[int, str] | None:
        """(seq, UTC event time) of the first recall naming exactly ``code``."""

    def lots(self, code: str) -> frozenset[str]:
        """The lots an item belongs to."""

    def containers(self, code: str) -> frozenset[str]:
        """Every container the code was ever packed in, transitively."""


def covering_recall(code: str, facts: RecallFacts) -> tuple[str, int] | None:
    """(the recalled code, the seq of its first recall) that puts ``code`` under a recall:
    the code, a container it was packed in, their lots or their products. None if none."""
    around = {code} | facts.containers(code)
    for x in list(around):
        around |= facts.lots(x)
    for x in list(around):
        cls = gtin_class(x)
        if cls is not None:
            around.add(cls)
    best: tuple[str, int] | None = None
    for x in sorted(around):
        m = facts.recalled(x)
        if m is not None and (best is None or m[0] < best[1]):
            best = (x, m[0])
    return best


def refusal(*, classified: Classified, codes: EventCodes, facts: RecallFacts) -> str | None:
    """None when the event answers a recall; else why it does not, as a clause."""
    if codes.type == "ObjectEvent" and codes.action == "ADD":
        return "it adds objects to the ledger"
    if codes.disposition in SOLD_DISPOSITIONS:
        return "it sells goods"
    if classified.activity not in ANSWER_ACTIVITIES:
        return f"{classified.stage} ({classified.activity}) neither moves, holds, returns nor destroys goods"
    named = named_codes(codes)
    if not named:
        return "it names no goods"
    uncovered = [c for c in named if covering_recall(c, facts) is None]
    parent = split_lot(codes.parent)[0] if codes.parent else None
    if (
        codes.type == "AggregationEvent"
        and parent in uncovered
        and codes.action == "ADD"
        and len(uncovered) == 1
        and len(named) > 1
    ):
        uncovered = []  # a new container for goods that all are under a recall
    if uncovered:
        return f"{uncovered[0]} is under no recall on the ledger"
    return None
