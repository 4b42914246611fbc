"""The hot reads of a journey and of the consumer page, each in one round trip, on the
driver's cursor (as ``Store.fetch_nodes`` does): for these few statements building them
through SQLAlchemy costs more than running them.

The SQL is the same on SQLite and PostgreSQL but for one string function; every statement
is a read inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, NamedTuple

from sqlalchemy.engine import Connection

from ledger.store.driver import IN_CHUNK, as_blob, as_int, as_text, bound, cursor, execute, is_pg
from ledger.store.scansdb import Visit
from ledger.store.schema import node_id, node_key

EVENT_COLUMNS = (
    "seq",
    "type",
    "event_time",
    "event_time_utc",
    "stage",
    "activity",
    "biz_step",
    "disposition",
    "action",
    "signer",
    "read_point",
    "biz_location",
)
_EV = ", ".join("e." + c for c in EVENT_COLUMNS)

# A journey in one statement. ``walk`` climbs from the code through every container it
# was packed in, carrying the interval [lo, hi) (hi NULL: still inside) during which the
# code was inside, clipped at each level; a container already on the path is not entered
# again (cycles in packing data), nor one whose clipped interval is empty, and nesting
# stops at a bound. Each row of the result claims one event for the journey:
#   rank 0: an event naming the code itself (via NULL),
#   rank 1: an event naming one of its lots (via: the lot),
#   rank 2: an event naming a container while the code was inside it (via: the container;
#           path and starts: the containers and the start_seq of each packing on the way),
#   rank 3: (lots only, when asked) the commissioning events of the lot's items,
#   rank 4: (lots only, when asked) the customs releases of the lot's items.
# An event may be claimed several times; the caller keeps the first claim in the order of
# ``trace.journey_rows``. Codes are URIs, which hold no space (the event schema's
# ``\\S+``), so ' ' separates the codes of a path.
_JOURNEY = """
WITH RECURSIVE walk(node, lo, hi, depth, path, starts) AS (
    SELECT CAST(:code AS TEXT), CAST('' AS TEXT), CAST(NULL AS TEXT), 0,
           CAST(' ' || :code || ' ' AS TEXT), CAST('' AS TEXT)
  UNION ALL
    SELECT c.parent, CAST({lo} AS TEXT), CAST({hi} AS TEXT), w.depth + 1,
           w.path || c.parent || ' ', w.starts || CAST(c.start_seq AS TEXT) || ' '
    FROM walk w JOIN containment c ON c.child = w.node
    WHERE w.depth < :depth AND {find}(w.path, ' ' || c.parent || ' ') = 0
      AND ({hi} IS NULL OR {lo} < {hi})
)
SELECT 0, CAST(NULL AS TEXT), CAST(NULL AS TEXT), CAST(NULL AS TEXT), {ev}
  FROM events e WHERE e.seq IN (SELECT i.seq FROM ident_entries i WHERE i.code = :code)
UNION ALL
SELECT 1, l.src, CAST(NULL AS TEXT), CAST(NULL AS TEXT), {ev}
  FROM lineage l JOIN ident_entries i ON i.code = l.src JOIN events e ON e.seq = i.seq
  WHERE l.dst = :code AND l.kind = 'lot'
UNION ALL
SELECT 2, w.node, w.path, w.starts, {ev}
  FROM walk w JOIN ident_entries i ON i.code = w.node JOIN events e ON e.seq = i.seq
  WHERE w.depth > 0 AND e.event_time_utc >= w.lo AND (w.hi IS NULL OR e.event_time_utc < w.hi)
{lot_items}"""

_LOT_ITEMS = """UNION ALL
SELECT 3, CAST(NULL AS TEXT), CAST(NULL AS TEXT), CAST(NULL AS TEXT), {ev}
  FROM events e WHERE e.seq IN (SELECT l.seq FROM lineage l WHERE l.src = :code AND l.kind = 'lot')
UNION ALL
SELECT 4, CAST(NULL AS TEXT), CAST(NULL AS TEXT), CAST(NULL AS TEXT), {ev}
  FROM events e WHERE e.stage = 'clearance' AND e.activity = 'release' AND e.seq IN (
    SELECT i.seq FROM ident_entries i WHERE i.code IN (
      SELECT l.dst FROM lineage l WHERE l.src = :code AND l.kind = 'lot'))
"""


# The interval clipped to the container's: [max(start, lo), min(end, hi)), NULL as open.
_LO = "CASE WHEN c.start_utc > w.lo THEN c.start_utc ELSE w.lo END"
_HI = (
    "CASE WHEN w.hi IS NULL THEN c.end_utc WHEN c.end_utc IS NULL OR c.end_utc > w.hi "
    "THEN w.hi ELSE c.end_utc END"
)


class Claim(NamedTuple):
    """One claim of a journey on an event (see ``_JOURNEY``)."""

    rank: int
    via: str | None
    path: str | None
    starts: str | None
    event: dict[str, Any]  # the event's row, by ``EVENT_COLUMNS``


def journey_claims(conn: Connection, code: str, *, max_nesting: int, lot_items: bool = False) -> list[Claim]:
    """Every claim on an event by the journey of ``code`` (see ``_JOURNEY``);
    ``lot_items`` adds the commissioning events of a lot's items and their customs
    releases."""
    sql = _JOURNEY.format(
        lo=_LO,
        hi=_HI,
        find="strpos" if is_pg(conn) else "instr",
        ev=_EV,
        lot_items=_LOT_ITEMS.format(ev=_EV) if lot_items else "",
    )
    with cursor(conn) as cur:
        rows = execute(cur, bound(conn, sql), {"code": code, "depth": max_nesting})
    return [Claim(int(r[0]), r[1], r[2], r[3], dict(zip(EVENT_COLUMNS, r[4:], strict=True))) for r in rows]


class PageReads(NamedTuple):
    entries: dict[int, bytes]  # seq -> entry bytes, of those asked for that exist
    size: int | None  # of the latest checkpoint; None: the ledger has none
    note: str  # the latest checkpoint with every cosignature gathered for it ("" if none)
    # code -> (seq, signer) of the master data in force, as the index says (its bytes are
    # in ``entries``, with its signer's registry entries)
    described: dict[str, tuple[int, str]] = {}
    # seq -> bytes of delegations of a product's prefix, not in ``entries`` (see _DELEGATIONS)
    delegations: dict[int, bytes] = {}
    # (level, index) -> hash of the stored tree nodes asked for (``nodes``), of those stored
    nodes: dict[tuple[int, int], bytes] = {}
    # the scanned code's (region, visitor, latest time) without bots (None: not asked)
    visits: list[Visit] | None = None


# The registry entries of some parties, as the projections point to them: the entries
# that introduced or ended each of their keys (a party's registration introduced its
# first key). The projections only choose which entries to read; what is believed comes
# from their bytes. An entry may come twice (it ended one key and introduced the next).
_EVIDENCE = """SELECT 3, e.seq, e.entry, CAST(NULL AS TEXT), CAST(NULL AS TEXT)
  FROM party_keys k JOIN entries e ON e.seq = k.valid_from WHERE k.party IN :parties
UNION ALL
SELECT 3, e.seq, e.entry, CAST(NULL AS TEXT), CAST(NULL AS TEXT)
  FROM party_keys k JOIN entries e ON e.seq = k.valid_until WHERE k.party IN :parties
"""

# The master data in force of some identifiers (the entry of the latest version of each,
# with the code and signer the index holds), the registry entries of those signers, and
# the delegations to them of the GS1 company prefixes a product's GTIN may fall under
# (``prefixes``): all the page needs to verify that each was signed by its identifier's
# owner. The index only chooses the entries; the page verifies what their bytes say.
_MASTER_DATA = """SELECT 4, e.seq, e.entry, m.code, m.signer
  FROM master_data m JOIN entries e ON e.seq = m.seq WHERE m.code IN :codes
  AND m.seq = (SELECT MAX(n.seq) FROM master_data n WHERE n.code = m.code)
UNION ALL
SELECT 3, e.seq, e.entry, CAST(NULL AS TEXT), CAST(NULL AS TEXT)
  FROM party_keys k JOIN entries e ON e.seq = k.valid_from
  WHERE k.party IN (SELECT m.signer FROM master_data m WHERE m.code IN :codes)
UNION ALL
SELECT 3, e.seq, e.entry, CAST(NULL AS TEXT), CAST(NULL AS TEXT)
  FROM party_keys k JOIN entries e ON e.seq = k.valid_until
  WHERE k.party IN (SELECT m.signer FROM master_data m WHERE m.code IN :codes)
{delegations}"""

# Every delegation by the holders of those prefixes, when a product's master data is signed
# by another party than its holder (the caller keeps those to that signer: the bytes say
# to whom). By the entries themselves, not the delegations index, which forgets a
# delegation once revoked: master data signed while it ran stays the delegate's to sign.
_DELEGATIONS = """UNION ALL
SELECT 5, e.seq, e.entry, CAST(NULL AS TEXT), CAST(NULL AS TEXT)
  FROM entries e WHERE e.kind = 'prefix.delegate'
  AND e.signer IN (SELECT g.party FROM gs1_prefixes g WHERE g.prefix IN :prefixes)
  AND EXISTS (SELECT 1 FROM master_data m WHERE m.code IN :codes AND m.kind = 'product'
              AND m.signer <> e.signer)
"""

# What the page reads after its journey, in one statement: the entries' bytes, the
# registry entries of the parties it names, and the latest checkpoint with its
# cosignatures (put in witness order here, as ``Store.cosignature_lines``; the statement
# leaves rows unsorted). Rows are told apart by the first column; the rest hold (seq or
# size, bytes, text, witness). The entries come
# first: their columns give PostgreSQL the types of the union's.
_PAGE = """
SELECT 3, e.seq, e.entry, CAST(NULL AS TEXT), CAST(NULL AS TEXT) FROM entries e
  WHERE e.seq IN :seqs
UNION ALL
{evidence}{master_data}SELECT 0, c.size, NULL, c.note, NULL FROM checkpoints c
  WHERE c.size = (SELECT MAX(size) FROM checkpoints)
UNION ALL
SELECT 1, NULL, NULL, s.line, s.witness FROM cosignatures s
  WHERE s.size = (SELECT MAX(size) FROM checkpoints)
{nodes}{visits}"""

# Stored tree nodes an inclusion check will need (the caller knows which, from the size of
# the checkpoint its snapshot holds); a node is believed only where its path reaches the
# verified root (``ledger.queries.verified_cache``).
_NODES = """UNION ALL
SELECT 2, m.node, m.hash, CAST(NULL AS TEXT), CAST(NULL AS TEXT) FROM merkle_nodes m
  WHERE m.node IN :nodes
"""

# A scanned code's visits (``scansdb.visits_of``): region, and visitor with the time of its
# latest scan from there (a visitor key is hex, a time has no space).
_VISITS = """UNION ALL
SELECT 6, NULL, NULL, s.region, s.visitor || ' ' || MAX(s.time) FROM scans s
  WHERE s.code = :visits_code AND s.client <> :visits_client GROUP BY s.region, s.visitor
"""


def page_reads(
    conn: Connection,
    seqs: Collection[int],
    *,
    party_ids: Collection[str],
    codes: Collection[str] = (),
    prefixes: Collection[str] = (),
    nodes: Collection[tuple[int, int]] = (),
    visits_of: tuple[str, str] | None = None,
) -> PageReads:
    """The entries at ``seqs``, the registry entries of ``party_ids`` (see
    ``evidence_entries``), the master data in force of ``codes`` with what verifying it
    needs (``_MASTER_DATA``; ``prefixes``: those a product's GTIN may fall under) and the
    latest cosigned checkpoint, in one statement; with the stored tree ``nodes`` asked for
    (up to a bound: the caller reads any others it misses) and, for ``visits_of`` (code,
    client class left out), that code's scans as ``scansdb.visits_of`` reads them."""
    wanted = sorted(set(seqs))
    pids = sorted(set(party_ids))[: IN_CHUNK // 2]
    mds = sorted(set(codes))[: IN_CHUNK // 8]
    pfx = sorted(set(prefixes))[: IN_CHUNK // 8] if mds else []
    first, rest = wanted[:IN_CHUNK], wanted[IN_CHUNK:]
    evidence = _EVIDENCE + "UNION ALL\n" if pids else ""
    master_data = _master_data_sql(prefixes=bool(pfx)) + "UNION ALL\n" if mds else ""
    keys = sorted({node_key(level, idx) for level, idx in nodes})[: IN_CHUNK // 2]
    sql = _PAGE.format(
        evidence=evidence,
        master_data=master_data,
        nodes=_NODES if keys else "",
        visits=_VISITS if visits_of is not None else "",
    )
    lists = ["seqs", *(["parties"] if pids else []), *_master_data_lists(mds, pfx)]
    lists += ["nodes"] if keys else []
    page = bound(conn, sql, lists=lists)
    rest_sql = bound(conn, "SELECT seq, entry FROM entries WHERE seq IN :seqs", lists=("seqs",))
    vcode, vclient = visits_of if visits_of is not None else (None, None)
    got_nodes: dict[tuple[int, int], bytes] = {}
    visits: list[Visit] | None = [] if visits_of is not None else None
    entries: dict[int, bytes] = {}
    described: dict[str, tuple[int, str]] = {}
    delegations: dict[int, bytes] = {}
    size: int | None = None
    note = ""
    lines: list[tuple[str, str]] = []
    with cursor(conn) as cur:
        for kind, n, blob, text, who in execute(
            cur,
            page,
            {
                "seqs": first,
                "parties": pids,
                "codes": mds,
                "prefixes": pfx,
                "nodes": keys,
                "visits_code": vcode,
                "visits_client": vclient,
            },
        ):
            if kind == 0:
                size = as_int(n, "checkpoints.size")
                note = as_text(text, "checkpoints.note", checkpoint=size)
            elif kind == 1:
                lines.append((str(who), str(text)))
            elif kind == 2:
                nid = node_id(as_int(n, "merkle_nodes.node"))
                got_nodes[nid] = as_blob(blob, "merkle_nodes.hash")
            elif kind == 6:
                assert visits is not None  # asked for
                visitor, _, last = str(who).partition(" ")
                visits.append(Visit(str(text), visitor, last))
            else:
                seq = as_int(n, "entries.seq")
                (delegations if kind == 5 else entries)[seq] = as_blob(blob, "entries.entry", seq=seq)
                if kind == 4:
                    described[str(text)] = (seq, str(who))
        for i in range(0, len(rest), IN_CHUNK):
            chunk = rest[i : i + IN_CHUNK]
            for s, e in execute(cur, rest_sql, {"seqs": chunk}):
                seq = as_int(s, "entries.seq")
                entries[seq] = as_blob(e, "entries.entry", seq=seq)
    if len(pids) < len(set(party_ids)):
        entries.update(evidence_entries(conn, sorted(set(party_ids))[len(pids) :]))
    return PageReads(
        entries,
        size,
        note + "".join(line for _, line in sorted(lines)),
        described,
        delegations,
        got_nodes,
        visits,
    )


def _master_data_sql(*, prefixes: bool) -> str:
    return _MASTER_DATA.format(delegations=_DELEGATIONS if prefixes else "")


def _master_data_lists(codes: list[str], prefixes: list[str]) -> list[str]:
    """The list parameters ``_master_data_sql`` holds for these codes and prefixes."""
    if not codes:
        return []
    return ["codes", "prefixes"] if prefixes else ["codes"]


def master_data_reads(
    conn: Connection, codes: Collection[str], *, prefixes: Collection[str] = ()
) -> tuple[dict[int, bytes], dict[str, tuple[int, str]]]:
    """What ``page_reads`` reads of master data (``_MASTER_DATA``), for codes it did not ask
    about: (seq -> entry bytes, code -> (seq, signer))."""
    entries: dict[int, bytes] = {}
    described: dict[str, tuple[int, str]] = {}
    wanted = sorted(set(codes))
    pfx = sorted(set(prefixes))[: IN_CHUNK // 8]
    step = IN_CHUNK // 8
    with cursor(conn) as cur:
        for i in range(0, len(wanted), step):
            chunk = wanted[i : i + step]
            sql = bound(conn, _master_data_sql(prefixes=bool(pfx)), lists=_master_data_lists(chunk, pfx))
            for kind, n, blob, text, who in execute(cur, sql, {"codes": chunk, "prefixes": pfx}):
                if kind == 5:
                    continue  # no product is asked about here (places only)
                seq = as_int(n, "entries.seq")
                entries[seq] = as_blob(blob, "entries.entry", seq=seq)
                if kind == 4:
                    described[str(text)] = (seq, str(who))
    return entries, described


def evidence_entries(conn: Connection, party_ids: Collection[str]) -> dict[int, bytes]:
    """seq -> bytes of the registry entries of these parties: the entries that introduced
    (the first: its registration) or ended each of their keys, as the projections say."""
    pids = sorted(set(party_ids))
    out: dict[int, bytes] = {}
    step = IN_CHUNK // 2
    evidence = bound(conn, _EVIDENCE, lists=("parties",))
    with cursor(conn) as cur:
        for i in range(0, len(pids), step):
            chunk = pids[i : i + step]
            for r in execute(cur, evidence, {"parties": chunk}):
                seq = as_int(r[1], "entries.seq")
                out[seq] = as_blob(r[2], "entries.entry", seq=seq)
    return out
