"""SQL of the customs-message import (``ledger.log.ceb_import``): what the ledger already holds
of the documents a message names. Every read goes to projections the append path keeps and
``suyuan reindex`` rebuilds — trade documents, business transactions — and to the entries:
no table of its own, so nothing here can drift from the ledger. One statement each per
message, whatever its size.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

import orjson
from sqlalchemy.engine import Connection

from ledger.store.driver import rows_in

_TYPES = ("cbec:order", "cbec:payment", "cbec:waybill", "cbec:declaration")


def versions(
    conn: Connection, numbers: Collection[tuple[str, str]]
) -> dict[tuple[str, str], list[tuple[int, bool]]]:
    """(type, number) -> [(seq, withdrawn)] of every version of each trade document on the
    ledger, oldest first."""
    out: dict[tuple[str, str], list[tuple[int, bool]]] = {}
    for type_ in _TYPES:  # a literal type, so that the primary key (type, id, seq) serves
        wanted = sorted({i for t, i in numbers if t == type_})
        for id_, seq, doc in rows_in(
            conn, f"SELECT id, seq, doc FROM trade_documents WHERE type = '{type_}' AND id IN", "id", wanted
        ):
            withdrawn = bool(orjson.loads(doc).get("withdrawn"))
            out.setdefault((type_, id_), []).append((int(seq), withdrawn))
    for v in out.values():
        v.sort()
    return out


def untyped_citations(conn: Connection, numbers: Iterable[str]) -> dict[str, list[int]]:
    """number -> seqs of the events that cite it, untyped, in their bizTransactionList."""
    out: dict[str, list[int]] = {}
    for id_, seq in rows_in(
        conn, "SELECT id, seq FROM biz_transactions WHERE type = '' AND id IN", "id", sorted(set(numbers))
    ):
        out.setdefault(id_, []).append(int(seq))
    return out


def payments_of(conn: Connection, orders: Collection[str]) -> dict[str, list[tuple[int, str, bool]]]:
    """order number -> [(seq, payment number, withdrawn)] of every payment version citing it."""
    out: dict[str, list[tuple[int, str, bool]]] = {}
    for id_, seq, order, doc in rows_in(
        conn,
        "SELECT id, seq, order_id, doc FROM trade_documents WHERE type = 'cbec:payment' AND order_id IN",
        "order_id",
        sorted(set(orders)),
    ):
        out.setdefault(order, []).append((int(seq), id_, bool(orjson.loads(doc).get("withdrawn"))))
    return out


def bodies(conn: Connection, seqs: Collection[int]) -> dict[int, dict[str, Any]]:
    """seq -> the event body of each entry."""
    out: dict[int, dict[str, Any]] = {}
    for seq, raw in rows_in(conn, "SELECT seq, entry FROM entries WHERE seq IN", "seq", sorted(set(seqs))):
        out[int(seq)] = orjson.loads(bytes(raw))["envelope"]["statement"]["body"]
    return out


def statement_hashes(conn: Connection, seqs: Collection[int]) -> dict[int, bytes]:
    return {
        int(s): bytes(h)
        for s, h in rows_in(
            conn, "SELECT seq, statement_hash FROM entries WHERE seq IN", "seq", sorted(set(seqs))
        )
    }
