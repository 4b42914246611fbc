"""SQL of the capture index (``event_keys``): the batch's lookup of events already on the
ledger, and the rows a batch adds. One statement each per batch, whatever its size."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, NamedTuple

import orjson
from sqlalchemy.engine import Connection

from ledger.core.records import Captured, CaptureKey, DocumentRecord
from ledger.store.driver import rows_in, run, run_many


class Row(NamedTuple):
    """One ``event_keys`` row."""

    seq: int
    event_key: str
    key_id: int
    signer: str
    event_hash: str
    declared: int


def key_id(key: str) -> int:
    """What the capture index is looked up by: the first 8 bytes of the key's SHA-256, as a
    signed 64-bit integer. Two keys may share one; a lookup compares the keys as well."""
    return int.from_bytes(
        hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()[:8], "big", signed=True
    )


def captured(
    conn: Connection, keys: Collection[str], *, ids: Mapping[str, int] | None = None
) -> dict[str, list[Captured]]:
    """The events on the ledger whose capture key is one of ``keys``, by key (``ids``: the
    keys' ``key_id`` where the caller worked them out already)."""
    wanted = set(keys)
    rows = rows_in(
        conn,
        "SELECT seq, event_key, signer, event_hash, declared FROM event_keys WHERE key_id IN",
        "key_id",
        sorted({ids[k] if ids is not None and k in ids else key_id(k) for k in wanted}),
    )
    # Another key with the same key_id is not this one. Nearly every batch finds nothing,
    # so the statement hashes of what it found are read only then, not joined for all.
    found = [r for r in rows if r[1] in wanted]
    if not found:
        return {}
    hashes = dict(
        rows_in(
            conn, "SELECT seq, statement_hash FROM entries WHERE seq IN", "seq", sorted({r[0] for r in found})
        )
    )
    out: dict[str, list[Captured]] = {}
    for seq, key, signer, digest, declared in found:
        out.setdefault(key, []).append(
            Captured(
                seq=seq,
                signer=signer,
                key=CaptureKey(key=key, hash=digest, declared=bool(declared)),
                statement_hash=bytes(hashes[seq]),
            )
        )
    return out


def row(seq: int, *, signer: str, key: CaptureKey, kid: int | None = None) -> Row:
    """The row of the event at ``seq`` (``kid``: its key's ``key_id``, if worked out)."""
    return Row(
        seq=seq,
        event_key=key.key,
        key_id=key_id(key.key) if kid is None else kid,
        signer=signer,
        event_hash=key.hash,
        declared=int(key.declared),
    )


def write(conn: Connection, rows: Sequence[Row]) -> None:
    run_many(
        conn,
        "INSERT INTO event_keys (seq, event_key, key_id, signer, event_hash, declared) "
        "VALUES (:seq, :event_key, :key_id, :signer, :event_hash, :declared)",
        rows,
    )


def fill(
    conn: Connection,
    key_of: Callable[[str, Mapping[str, Any]], CaptureKey],
    *,
    put: Callable[[Connection, Sequence[Row]], None] = write,
) -> None:
    """Write the capture index of every event and document entry on the ledger, each key
    worked out by ``key_of(kind, body)`` (the migrations that build it pass the event
    hash's rules, which the store does not import); ``put`` writes a chunk of rows."""
    rows: list[Row] = []
    result = conn.exec_driver_sql(
        "SELECT seq, signer, entry FROM entries WHERE kind IN ('event', 'document') ORDER BY seq"
    )
    for seq, signer, raw in result:
        st = orjson.loads(bytes(raw))["envelope"]["statement"]
        rows.append(row(seq, signer=signer, key=key_of(st["kind"], st["body"])))
        if len(rows) >= 5000:
            put(conn, rows)
            rows = []
    put(conn, rows)


def hashes_of(conn: Connection, seqs: Collection[int]) -> dict[int, str]:
    """The event hash of each event entry among ``seqs``."""
    return {
        s: h
        for s, h in rows_in(conn, "SELECT seq, event_hash FROM event_keys WHERE seq IN", "seq", sorted(seqs))
    }


def documents_naming(conn: Connection, hashes: Collection[str]) -> list[tuple[int, str, dict[str, Any]]]:
    """(seq, signer, body) of every document record that lists one of ``hashes``."""
    return [(r.seq, r.signer, dict(r.body)) for r in document_records(conn, hashes)]


def document_records(conn: Connection, hashes: Collection[str]) -> list[DocumentRecord]:
    """Every document record that lists one of ``hashes``, in seq order, with the time its
    statement was issued (which tells the record of an import from a later one).

    Reads every document record: there is one per imported document, far fewer than events;
    an index table is the step when that stops being true.
    """
    wanted = set(hashes)
    out = []
    for seq, signer, raw in run(
        conn, "SELECT seq, signer, entry FROM entries WHERE kind = 'document' ORDER BY seq"
    ):
        statement = orjson.loads(bytes(raw))["envelope"]["statement"]
        body = statement["body"]
        if wanted.intersection(body.get("events", ())):
            out.append(
                DocumentRecord(seq=int(seq), signer=str(signer), issued=str(statement["issued"]), body=body)
            )
    return out
