"""The reads of the tlog-tiles API: one tile is one range read of stored nodes (a tile at
level L is the stored hashes of tree level 8·L) or of entries, in the caller's
transaction, on the driver's cursor (a tile is read for every request a mirror or a
monitor makes)."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from ledger.core import tiles
from ledger.core.errors import DamagedStore
from ledger.store.driver import as_blob, as_int, run
from ledger.store.schema import node_id, node_key


def read_tile(conn: Connection, tile: tiles.Tile) -> bytes | None:
    """The bytes of ``tile`` (its first ``width`` hashes or entries, as the spec encodes
    them), or None when the log does not hold that many yet. A partial tile of a width
    the log has passed is still served: its bytes never change."""
    if tile.is_bundle:
        rows = run(
            conn,
            "SELECT seq, entry FROM entries WHERE seq >= :lo AND seq < :hi ORDER BY seq",
            {"lo": tile.start, "hi": tile.start + tile.width},
        )
        if len(rows) < tile.width:
            return None
        entries = [e for _, e in rows]
        if [s for s, _ in rows] == list(range(tile.start, tile.start + tile.width)) and all(
            type(e) is bytes for e in entries
        ):
            return tiles.encode_bundle(entries, first_seq=tile.start)
        entries = []  # a damaged row: name it
        for n, (seq, raw) in enumerate(rows):
            if as_int(seq, "entries.seq") != tile.start + n:
                raise DamagedStore(
                    f"entries has no row for seq {tile.start + n} but has seq {seq} after it",
                    seq=tile.start + n,
                )
            entries.append(as_blob(raw, "entries.entry", seq=seq))
        return tiles.encode_bundle(entries, first_seq=tile.start)
    level = tile.tree_level
    lo = node_key(level, tile.start)
    rows = run(
        conn,
        "SELECT node, hash FROM merkle_nodes WHERE node >= :lo AND node < :hi ORDER BY node",
        {"lo": lo, "hi": lo + tile.width},
    )
    if len(rows) < tile.width:
        return None
    hashes = [h for _, h in rows]
    if [k for k, _ in rows] == list(range(lo, lo + tile.width)) and all(
        type(h) is bytes and len(h) == tiles.HASH_SIZE for h in hashes
    ):
        return b"".join(hashes)
    hashes = []  # a damaged row: name it
    for n, (key, h) in enumerate(rows):
        if key != lo + n:  # a key SQLite keeps as TEXT is never in an integer range
            raise DamagedStore(
                f"merkle_nodes has no row for node {(level, tile.start + n)}", seq=(tile.start + n) << level
            )
        b = as_blob(h, f"merkle_nodes.hash of node {node_id(key)}", seq=(tile.start + n) << level)
        if len(b) != tiles.HASH_SIZE:
            raise DamagedStore(
                f"merkle_nodes.hash of node {node_id(key)} is {len(b)} bytes, not 32",
                seq=(tile.start + n) << level,
            )
        hashes.append(b)
    return tiles.encode_hash_tile(hashes)
