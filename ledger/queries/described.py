"""The master data in force of places and products as the ledger's index holds it, with
every earlier version's seq: what GraphQL shows (read from the index and the entries, not
verified; the consumer page verifies what it shows)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from ledger.core.errors import IdentifierError
from ledger.core.ids import index_key
from ledger.epcis.masterdata import MasterData, describe
from ledger.store import masterdatadb
from ledger.store.db import Store


@dataclass(frozen=True)
class Described:
    data: MasterData  # what the version in force says
    seq: int  # its entry
    signer: str
    versions: tuple[int, ...]  # the seq of every version, oldest first


def described(store: Store, codes: Iterable[str]) -> dict[str, Described]:
    """Each of ``codes`` (any accepted form; the result is keyed by the form given) that has
    master data: its version in force. Two reads whatever their number."""
    keys: dict[str, str] = {}
    for code in codes:
        try:
            keys[code] = index_key(code)
        except IdentifierError:
            continue
    with store.reading() as conn:
        versions = masterdatadb.versions(conn, set(keys.values()))
        raw = store.entries_by_seq(conn, [v[-1].seq for v in versions.values()])
    out: dict[str, Described] = {}
    for code, key in keys.items():
        rows = versions.get(key)
        if not rows or rows[-1].seq not in raw:
            continue
        body = orjson.loads(raw[rows[-1].seq])["envelope"]["statement"]["body"]
        out[code] = Described(describe(body), rows[-1].seq, rows[-1].signer, tuple(r.seq for r in rows))
    return out
