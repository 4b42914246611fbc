"""Whom to call about a recall: for each sold item a recall reaches, the private data of
the order, payment and waybill entries of its journey (buyer, payer, recipient), as far as
the viewer is entitled to it (``Ledger.private_views``: a regulator sees all)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ledger.core.private import Viewer
from ledger.log.sequencer import Ledger, PrivateView
from ledger.queries.trace import journey_rows

# The activities whose private data names the people who bought or receive an item.
CONTACT_ACTIVITIES = ("order", "payment", "waybill")
MAX_ITEMS = 200  # sold items looked up at once; the rest are counted, not listed


@dataclass(frozen=True)
class Contact:
    """One entry's private data about an item: who ordered, paid or receives it."""

    item: str
    seq: int
    activity: str
    signer: str
    view: PrivateView

    def as_dict(self) -> dict[str, Any]:
        return {
            "item": self.item,
            "seq": self.seq,
            "activity": self.activity,
            "signer": self.signer,
            "status": self.view.status,
            "data": self.view.data,
            "shredded": self.view.shredded,
        }


@dataclass(frozen=True)
class RecallContacts:
    contacts: tuple[Contact, ...]
    items: int  # sold items the recall reaches
    looked_up: int  # of which the first ones looked up (at most MAX_ITEMS)


def recall_contacts(
    ledger: Ledger, sold_items: Sequence[str], viewer: Viewer, *, limit: int = MAX_ITEMS
) -> RecallContacts:
    """The contacts of the first ``limit`` of ``sold_items`` (canonical codes), in the
    order given, each item's entries in journey order."""
    wanted = list(sold_items)[:limit]
    per_item: list[tuple[str, int, str, str]] = []
    with ledger.store.reading() as conn:
        for item in wanted:
            steps, _ = journey_rows(conn, item)
            per_item += [
                (item, s.seq, s.activity, s.signer) for s in steps if s.activity in CONTACT_ACTIVITIES
            ]
    entries = ledger.entries({seq for _, seq, _, _ in per_item})
    views = ledger.private_views(entries, viewer)
    contacts = tuple(
        Contact(item, seq, activity, signer, views[seq])
        for item, seq, activity, signer in per_item
        if seq in views
    )
    return RecallContacts(contacts, len(sold_items), len(wanted))
