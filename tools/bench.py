"""Benchmarks: ``python -m tools.bench ledger|trace|api|labels`` prints JSON, each figure beside its
bound, the Ed25519 bound measured in the same run.

Every phase runs in a child process of its own so that its peak RSS is its own and the
proof timings come from a cold process (fresh interpreter, connection and caches).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PG_ADMIN = os.environ.get("SUYUAN_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BATCH = 1000

TARGETS = {
    "journey_ms_p95": 10.0,
    "lineage_ms_p95": 50.0,
    "recall_s": 1.0,
    "append_per_s_sqlite_traced": 8_000,
    "append_per_s_sqlite": 10_000,
    "append_per_s_postgres": 5_000,
    "inclusion_proof_ms_p50": 1.0,
    "consistency_proof_ms_p50": 1.0,
    "audit_per_s": 15_000,
    "rss_mb_peak": 300,
    "graphql_trace_ms_p95": 25.0,
    "page_req_per_s": 300,
    "page_to_healthz": 0.3,  # the page's rate over /healthz's, same server, same run
    "label_sheet_s_1000": 10.0,
}


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def verify_rate(seconds: float = 2.0) -> float:
    """Ed25519 verifications per second on one core: the bound appends are compared with."""
    import nacl.bindings
    import nacl.signing

    key = nacl.signing.SigningKey.generate()
    msg = b"suyuan-statement/v1\n" + b"x" * 600  # a typical statement's size
    signed = key.sign(msg)
    pk = bytes(key.verify_key)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(200):
            nacl.bindings.crypto_sign_open(bytes(signed), pk)
        n += 200
    return n / (time.perf_counter() - start)


# --- child phases ----------------------------------------------------------------------------


# The bench producer's GS1 company prefix, held in its registration as a brand's is: its
# GTIN below falls under it, so its commissionings raise no "unregistered prefix" finding
# (a producer making goods under a prefix no one registered is the exception, not the load).
BENCH_PREFIX = "9506000"
BENCH_GTIN = "09506000134352"
# The concurrent run's second producer, a brand of its own.
OTHER_PREFIX = "9506001"
OTHER_GTIN = "09506001000014"


def _event(party: str, n: int, gtin: str = BENCH_GTIN) -> dict[str, Any]:
    return {
        "type": "ObjectEvent",
        "action": "ADD",
        "bizStep": "commissioning",
        "disposition": "active",
        "eventTime": "2026-11-27T13:05:00+08:00",
        "eventTimeZoneOffset": "+08:00",
        "epcList": [f"https://id.gs1.org/01/{gtin}/21/{n}"],
        "readPoint": {"id": "https://id.gs1.org/414/9520123456788"},
        "ilmd": {"cbvmda:lotNumber": f"L{n // 1000}"},
    }


def _new_ledger(url: str, home: str) -> Any:
    """A fresh ledger at ``url`` with its genesis entry: (store, ledger, registrar, key)."""
    from ledger.core.ids import make_uscc
    from ledger.log.home import Home, genesis_envelope
    from ledger.log.sequencer import Ledger
    from ledger.store.db import Store

    store = Store(url)
    store.migrate()
    h = Home(Path(home))
    signer = h.create_note_signer("bench.suyuan/log")
    reg_key = h.keys.get_or_create("registrar")
    registrar = "uscc:" + make_uscc("12130200MB000000")
    led = Ledger(store, note_signer=signer)
    led.append(
        genesis_envelope(
            origin="bench.suyuan/log",
            signer=signer,
            registrar_id=registrar,
            registrar_name="bench",
            registrar_key=reg_key,
        )
    )
    return store, led, registrar, reg_key


def phase_append(url: str, home: str, n: int) -> dict[str, Any]:
    """Create a ledger at ``url`` and append ``n`` statements in batches of 1,000."""
    from ledger.core.statements import sign_one

    store, led, registrar, reg_key = _new_ledger(url, home)
    party, key = _register(led, registrar, reg_key, "91130200MA000001", "producer", [BENCH_PREFIX])
    spent = 0.0
    done = 0
    issued = "2026-11-27T13:05:00+08:00"
    while done < n:
        size = min(BATCH, n - done)
        # Signing is the clients' work, not the ledger's: it is not timed.
        batch = [
            sign_one(kind="event", signer=party, key=key, body=_event(party, done + i), issued=issued)
            for i in range(size)
        ]
        t = time.perf_counter()
        led.append_batch(batch)
        spent += time.perf_counter() - t
        done += size
        if sys.stderr.isatty():
            sys.stderr.write(f"\r  append {done:,}/{n:,} ({done / spent:,.0f}/s)")
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    store.dispose()
    return {"per_s": n / spent, "rss_mb": rss_mb(), "size": n + 2}


def _open_ledger(url: str, home: str) -> Any:
    """The ledger at ``url`` as its operator (checkpoint key and registrar in ``home``)."""
    from ledger.core.ids import make_uscc
    from ledger.log.home import Home
    from ledger.log.sequencer import Ledger
    from ledger.store.db import Store

    h = Home(Path(home))
    led = Ledger(Store(url), note_signer=h.note_signer_if_any())
    return led, "uscc:" + make_uscc("12130200MB000000"), h.keys.get_or_create("registrar")


def _register(
    led: Any, registrar: str, reg_key: Any, uscc_body: str, role: str, prefixes: Sequence[str] = ()
) -> Any:
    from ledger.core.ids import make_uscc
    from ledger.core.keys import PartyKey
    from ledger.core.statements import sign_one

    pid = "uscc:" + make_uscc(uscc_body)
    key = PartyKey.generate(role)
    led.append(
        sign_one(
            kind="party.register",
            signer=pid,
            key=key,
            body={
                "id": pid,
                "name": f"bench {role}",
                "roles": [role],
                "publicKey": key.public_key_b64,
                **({"gs1Prefixes": list(prefixes)} if prefixes else {}),
            },
            cosigners=[(registrar, reg_key)],
        )
    )
    return pid, key


def _submitter(url: str, home: str, spec: dict[str, Any], batches_dir: str, barrier: Any, out: Any) -> None:
    """One submitting process: signs its share of statements into batch files first (the
    clients' work, not timed), waits for the others, then submits the files one by one,
    reading each as a client's upload would arrive (JSON bytes)."""
    import orjson

    from ledger.core.statements import sign_one

    led, _, _ = _open_ledger(url, home)
    issued = "2026-11-27T13:05:00+08:00"
    if spec["kind"] == "events":
        party, key = spec["party"]
        bodies: Any = (("producer", _event(party, spec["first"] + i, OTHER_GTIN)) for i in range(spec["n"]))
        signers = {"producer": (party, key)}
    else:
        bodies = _supply_chain(spec["items"], 1000, part=spec["part"])
        signers = spec["parties"]
    files: list[Path] = []
    batch: list[Any] = []
    for role, body in bodies:
        pid, key = signers[role]
        batch.append(sign_one(kind="event", signer=pid, key=key, body=body, issued=issued))
        if len(batch) == BATCH:
            files.append(Path(batches_dir) / f"{spec['part']}-{len(files)}.json")
            files[-1].write_bytes(orjson.dumps(batch))
            batch = []
    if batch:
        files.append(Path(batches_dir) / f"{spec['part']}-{len(files)}.json")
        files[-1].write_bytes(orjson.dumps(batch))
    done = 0
    barrier.wait()
    start = time.monotonic()
    for f in files:
        envelopes = orjson.loads(f.read_bytes())
        led.append_batch(envelopes)
        done += len(envelopes)
    out.put({"start": start, "end": time.monotonic(), "done": done, "rss_mb": rss_mb()})


def phase_append_concurrent(url: str, home: str, kind: str, n: int, submitters: int) -> dict[str, Any]:
    """Append about ``n`` more statements to an existing ledger from ``submitters``
    processes at once, as several enterprises' uploads would arrive: each prepares and
    verifies its batches while another holds the sequencer. ``kind`` "events" are the
    ledger suite's commissioning events; "chain" is the trace suite's supply chain, one
    independent part per submitter."""
    import multiprocessing

    led, registrar, reg_key = _open_ledger(url, home)
    size = led.size()
    specs: list[dict[str, Any]] = []
    per = max(1, n // submitters)
    if kind == "events":
        party = _register(led, registrar, reg_key, "91130200MA000002", "producer", [OTHER_PREFIX])
        specs = [
            {"kind": kind, "part": k, "party": party, "first": 10_000_000 * (k + 1), "n": per}
            for k in range(submitters)
        ]
    else:
        parties = {
            role: _register(led, registrar, reg_key, f"9113021{k:09d}", role)
            for k, role in enumerate(("producer", "platform", "payment", "logistics"))
        }
        # _supply_chain makes about 5.15 entries per item; lots are of 1,000 items.
        items = max(1000, round(per / ENTRIES_PER_ITEM / 1000) * 1000)
        specs = [{"kind": kind, "part": k + 1, "parties": parties, "items": items} for k in range(submitters)]
    led.store.dispose()
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(submitters), ctx.Queue()
    with tempfile.TemporaryDirectory(prefix="suyuan-bench-batches-") as batches:
        procs = [
            ctx.Process(target=_submitter, args=(url, home, spec, batches, barrier, out)) for spec in specs
        ]
        for p in procs:
            p.start()
        got = [out.get() for _ in procs]
        for p in procs:
            p.join()
            if p.exitcode != 0:
                raise SystemExit(f"bench: a submitter failed (exit {p.exitcode})")
    done = sum(g["done"] for g in got)
    wall = max(g["end"] for g in got) - min(g["start"] for g in got)
    return {
        "per_s": done / wall,
        "submitters": submitters,
        "statements": done,
        "entries_before": size,
        "rss_mb": max(g["rss_mb"] for g in got),
    }


def phase_proofs(url: str, size: int, samples: int) -> dict[str, Any]:
    """Proof latency from a cold process: this process opened nothing before."""
    import random

    t0 = time.perf_counter()
    from ledger.log.sequencer import Ledger
    from ledger.store.db import Store

    led = Ledger(Store(url))
    rng = random.Random(7)
    first = None
    inc: list[float] = []
    for _ in range(samples):
        seq = rng.randrange(size)
        t = time.perf_counter()
        led.inclusion_proof(seq, size)
        dt = (time.perf_counter() - t) * 1000
        first = dt if first is None else first
        inc.append(dt)
    con: list[float] = []
    for _ in range(samples):
        a = rng.randrange(1, size)
        t = time.perf_counter()
        led.consistency_proof(a, size)
        con.append((time.perf_counter() - t) * 1000)
    return {
        "inclusion_ms_p50": statistics.median(inc),
        "inclusion_ms_p95": statistics.quantiles(inc, n=20)[-1],
        "inclusion_ms_first": first,
        "consistency_ms_p50": statistics.median(con),
        "consistency_ms_p95": statistics.quantiles(con, n=20)[-1],
        "import_and_open_s": time.perf_counter() - t0,
    }


def phase_audit(url: str, projections: bool = True) -> dict[str, Any]:
    """``suyuan audit`` (``projections``: with the projections re-derived from the
    entries and compared, as it runs by default) or ``suyuan audit --log-only``."""
    from ledger.log.audit import audit
    from ledger.store.db import Store

    store = Store(url)
    t = time.perf_counter()
    rep = audit(store, projections=projections)
    dt = time.perf_counter() - t
    return {
        "per_s": rep.entries / dt,
        "ok": rep.ok,
        "entries": rep.entries,
        "problems": [p.line() for p in rep.problems[:5]],
        "rss_mb": rss_mb(),
    }


# --- trace suite ------------------------------------------------------------------------------


def _supply_chain(items: int, big_lot: int, *, part: int = 0) -> Any:
    """Yield (role, body) for a chain of lots of 1,000 items (one lot of ``big_lot``):
    farm lots mixed into a product lot, items commissioned 50 at a time, cartons of 10,
    pallets of 10 cartons shipped and received, then per item an order, a payment, a
    waybill, a retail sale and a delivery. Chains of different ``part`` share no code,
    lot, order or container, so that several submitters can append them side by side."""
    from ledger.core.ids import gs1_check_digit

    def gtin(n: int) -> str:
        b = f"0695000{n:06d}"
        return b + gs1_check_digit(b)

    def sscc(n: int) -> str:
        b = f"1695000{n:010d}"
        return "https://id.gs1.org/00/" + b + gs1_check_digit(b)

    from datetime import datetime, timedelta, timezone

    tz = "+08:00"
    milk, tin = gtin(1), gtin(2)
    clock = datetime(2025, 1, 1, tzinfo=timezone(timedelta(hours=8)))

    def at() -> str:
        nonlocal clock
        clock += timedelta(seconds=20)  # a million events fit in one year
        return clock.isoformat()

    def ev(kind: str, **f: Any) -> dict[str, Any]:
        return {"type": kind, "eventTime": at(), "eventTimeZoneOffset": tz, **f}

    lot_sizes = [big_lot] + [1000] * max(0, (items - big_lot) // 1000)
    serial, carton_n = part * 100_000_000, part * 1_000_000_000
    for n_lot, size in enumerate(lot_sizes):
        lot_no = f"{part}-{n_lot}" if part else str(n_lot)
        lot = f"https://id.gs1.org/01/{tin}/10/P{lot_no}"
        farms = [f"https://id.gs1.org/01/{milk}/10/F{lot_no}-{k}" for k in range(2)]
        yield (
            "producer",
            ev(
                "TransformationEvent",
                bizStep="commissioning",
                inputQuantityList=[{"epcClass": f, "quantity": 100, "uom": "KGM"} for f in farms],
                outputQuantityList=[{"epcClass": lot, "quantity": size}],
            ),
        )
        lot_items = [f"https://id.gs1.org/01/{tin}/21/{serial + i}" for i in range(size)]
        serial += size
        for i in range(0, size, 50):
            yield (
                "producer",
                ev(
                    "ObjectEvent",
                    action="ADD",
                    bizStep="commissioning",
                    epcList=lot_items[i : i + 50],
                    ilmd={"cbvmda:lotNumber": f"P{lot_no}"},
                ),
            )
        for p in range(0, size, 100):
            cartons = []
            for c in range(p, min(p + 100, size), 10):
                carton_n += 1
                cartons.append(sscc(carton_n))
                yield (
                    "producer",
                    ev(
                        "AggregationEvent",
                        action="ADD",
                        bizStep="packing",
                        parentID=cartons[-1],
                        childEPCs=lot_items[c : c + 10],
                    ),
                )
            carton_n += 1
            pallet = sscc(carton_n)
            yield (
                "producer",
                ev("AggregationEvent", action="ADD", bizStep="packing", parentID=pallet, childEPCs=cartons),
            )
            for step in ("shipping", "receiving"):
                yield "logistics", ev("ObjectEvent", action="OBSERVE", bizStep=step, epcList=[pallet])
        for n, it in enumerate(lot_items):
            order = f"urn:suyuan:order:{lot_no}-{n}"
            bt = [{"type": "cbec:order", "bizTransaction": order}]
            yield (
                "platform",
                ev(
                    "TransactionEvent",
                    action="ADD",
                    bizStep="retail_selling",
                    disposition="retail_sold",
                    epcList=[it],
                    bizTransactionList=bt,
                ),
            )
            yield (
                "payment",
                ev(
                    "TransactionEvent",
                    action="OBSERVE",
                    epcList=[it],
                    bizTransactionList=[*bt, {"type": "cbec:payment", "bizTransaction": order + ":pay"}],
                ),
            )
            yield (
                "logistics",
                ev(
                    "TransactionEvent",
                    action="OBSERVE",
                    epcList=[it],
                    bizTransactionList=[*bt, {"type": "cbec:waybill", "bizTransaction": order + ":wb"}],
                ),
            )
            yield "logistics", ev("ObjectEvent", action="OBSERVE", bizStep="departing", epcList=[it])
            yield (
                "logistics",
                ev(
                    "ObjectEvent",
                    action="OBSERVE",
                    bizStep="arriving",
                    disposition="in_progress",
                    epcList=[it],
                ),
            )


def phase_trace_build(url: str, home: str, items: int, big_lot: int) -> dict[str, Any]:
    from ledger.core.ids import make_uscc
    from ledger.core.keys import PartyKey
    from ledger.core.statements import sign_one

    _, led, registrar, reg_key = _new_ledger(url, home)
    parties: dict[str, tuple[str, PartyKey]] = {}
    for n, role in enumerate(("producer", "platform", "payment", "logistics")):
        pid = "uscc:" + make_uscc(f"9113020{n:09d}")
        key = PartyKey.generate(role)
        led.append(
            sign_one(
                kind="party.register",
                signer=pid,
                key=key,
                body={"id": pid, "name": role, "roles": [role], "publicKey": key.public_key_b64},
                cosigners=[(registrar, reg_key)],
            )
        )
        parties[role] = (pid, key)
    spent = 0.0
    done = 0
    batch: list[Any] = []

    def flush() -> None:
        nonlocal spent, done
        t = time.perf_counter()
        led.append_batch(batch)
        spent += time.perf_counter() - t
        done += len(batch)
        batch.clear()
        if sys.stderr.isatty():
            sys.stderr.write(f"\r  trace build {done:,} entries ({done / spent:,.0f}/s)")

    for role, body in _supply_chain(items, big_lot):
        pid, key = parties[role]
        batch.append(
            sign_one(kind="event", signer=pid, key=key, body=body, issued="2026-11-27T13:05:00+08:00")
        )
        if len(batch) == BATCH:
            flush()
    if batch:
        flush()
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    return {"per_s": done / spent, "entries": led.size(), "rss_mb": rss_mb()}


def phase_trace_query(url: str, items: int, samples: int) -> dict[str, Any]:
    import random

    from ledger.core.ids import gs1_check_digit
    from ledger.queries import trace
    from ledger.store.db import Store

    store = Store(url)
    tin = "0695000000002" + gs1_check_digit("0695000000002")
    rng = random.Random(11)

    def timed(fn: Any, *args: Any) -> tuple[float, Any]:
        t = time.perf_counter()
        r = fn(*args)
        return (time.perf_counter() - t) * 1000, r

    codes = [f"https://id.gs1.org/01/{tin}/21/{rng.randrange(items)}" for _ in range(samples)]
    jt, lengths = [], []
    for c in codes:
        ms, r = timed(trace.journey, store, c)
        jt.append(ms)
        lengths.append(len(r["journey"]))
    up, down = [], []
    for c in codes[: samples // 2]:
        up.append(timed(trace.upstream, store, c, 10)[0])
    lots = [
        f"https://id.gs1.org/01/{tin}/10/P{rng.randrange(1, max(2, items // 1000))}"
        for _ in range(samples // 4)
    ]
    for lot in lots:
        down.append(timed(trace.downstream, store, lot, 10)[0])
    big = f"https://id.gs1.org/01/{tin}/10/P0"
    recall_ms, rec = timed(trace.recall_impact, store, big)

    def p95(xs: list[float]) -> float:
        return statistics.quantiles(xs, n=20)[-1] if len(xs) > 1 else xs[0]

    return {
        "journey_ms_p50": statistics.median(jt),
        "journey_ms_p95": p95(jt),
        "journey_events_median": statistics.median(lengths),
        "upstream_ms_p95": p95(up),
        "downstream_ms_p95": p95(down),
        "recall_s": recall_ms / 1000,
        "recall_affected": rec["counts"]["affected"],
    }


def bench_trace(items: int, big_lot: int, samples: int, submitters: int = 2) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="suyuan-bench-trace-"))
    try:
        url = f"sqlite:///{work}/trace.db"
        verify = verify_rate()
        build = _child("trace_build", url, str(work / "home"), str(items), str(big_lot))
        q = _child("trace_query", url, str(items), str(samples))
        concurrent = (
            _concurrent(
                url,
                str(work / "home"),
                "chain",
                max(10_000, build["entries"] // 5),
                submitters,
                "append_per_s_sqlite_traced",
            )
            if submitters > 1
            else None
        )
        return {
            "entries": build["entries"],
            "items": items,
            "ed25519_verify_per_s": round(verify),
            "append_per_s_sqlite_traced": _figure("append_per_s_sqlite_traced", build["per_s"]),
            **({"append_per_s_sqlite_traced_concurrent": concurrent} if concurrent else {}),
            "ratio_to_verify_bound": round(build["per_s"] / verify, 3),
            "journey_ms_p95": _figure("journey_ms_p95", q["journey_ms_p95"], higher_is_better=False),
            "upstream_ms_p95": {
                **_figure("lineage_ms_p95", q["upstream_ms_p95"], higher_is_better=False),
                "depth": 10,
            },
            "downstream_ms_p95": {
                **_figure("lineage_ms_p95", q["downstream_ms_p95"], higher_is_better=False),
                "depth": 10,
            },
            "recall_s": {
                **_figure("recall_s", q["recall_s"], higher_is_better=False),
                "affected": q["recall_affected"],
            },
            "detail": {k: round(v, 3) for k, v in q.items()},
            "rss_mb_build": round(build["rss_mb"], 1),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- api suite ---------------------------------------------------------------------------------
#
# The server runs as it would in production (uvicorn, one worker, its own process) on a
# loopback socket; the load comes from another process, so neither side's interpreter or
# event loop slows the other beyond sharing the machine's cores.

ENTRIES_PER_ITEM = 5.151  # _supply_chain: 5 per item, commissioning, cartons, pallets, lots
TRACE_QUERY = '{ trace(code: "%s") { journey { seq } } }'


def _tin() -> str:
    from ledger.core.ids import gs1_check_digit

    return "0695000000002" + gs1_check_digit("0695000000002")


def _items_for(entries: int) -> tuple[int, int]:
    """(items, big lot) for a supply chain of at least ``entries`` entries."""
    want = max(10, math.ceil(entries / ENTRIES_PER_ITEM))
    if want <= 10_000:
        return want, want  # one lot
    return math.ceil(want / 1000) * 1000, 10_000  # a big lot and lots of 1,000


def _p95(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=20)[-1] if len(xs) > 1 else xs[0]


def _graphql_latency(base: str, codes: list[str], queries: int) -> dict[str, Any]:
    """Sequential ``trace`` queries on one keep-alive connection: the latency one client
    sees, from request sent to response read."""
    import http.client
    import random
    from urllib.parse import urlsplit

    u = urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port or 80, timeout=30)
    rng = random.Random(5)

    def ask(code: str) -> tuple[float, int, Any, str]:
        body = json.dumps({"query": TRACE_QUERY % code}).encode()
        t = time.perf_counter()
        conn.request(
            "POST",
            "/graphql",
            body=body,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        resp = conn.getresponse()
        raw = resp.read()
        ms = (time.perf_counter() - t) * 1000
        try:
            doc = json.loads(raw)
        except ValueError:
            doc = None
        return ms, resp.status, doc, raw[:200].decode("utf-8", "replace")

    ms, status, doc, head = ask(codes[0])
    journey = (
        (((doc or {}).get("data") or {}).get("trace") or {}).get("journey") if isinstance(doc, dict) else None
    )
    if status != 200 or not isinstance(journey, list):
        errors = doc.get("errors") if isinstance(doc, dict) else None
        why = errors[0].get("message") if errors else head
        return {"missing": f"POST /graphql trace answered HTTP {status}: {why}"}
    for _ in range(min(100, queries)):  # warm-up: imports, caches, pools, page cache
        ask(rng.choice(codes))
    times: list[float] = []
    lengths: list[int] = []
    failed = 0
    for _ in range(queries):
        ms, status, doc, _ = ask(rng.choice(codes))
        data = (doc or {}).get("data") if isinstance(doc, dict) else None
        if status != 200 or not data or doc.get("errors"):
            failed += 1
            continue
        times.append(ms)
        lengths.append(len(data["trace"]["journey"]))
    conn.close()
    if not times:
        return {"missing": f"every POST /graphql trace failed (last HTTP {status})"}
    return {
        "p50_ms": statistics.median(times),
        "p95_ms": _p95(times),
        "queries": len(times),
        "failed": failed,
        "journey_events_median": statistics.median(lengths),
    }


def _probe_page(base: str, path: str) -> str | None:
    """None if ``path`` answers a browser with an HTML page, else what it answered."""
    import http.client
    from urllib.parse import urlsplit

    u = urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port or 80, timeout=30)
    conn.request("GET", path, headers={"Accept": "text/html,application/xhtml+xml"})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    ctype = resp.getheader("content-type") or "nothing"
    if resp.status == 200 and ctype.startswith("text/html"):
        return None
    return f"GET {path} with Accept: text/html answered HTTP {resp.status} {ctype}, not a page"


def _wrk(
    base: str, paths: list[str], seconds: float, connections: int, workdir: str, tag: str = ""
) -> dict[str, Any]:
    import re

    script = Path(workdir) / f"paths{tag}.lua"
    lua_paths = ",".join(json.dumps(p) for p in paths)
    script.write_text(
        f"local paths = {{{lua_paths}}}\nlocal i = 0\n"
        "request = function()\n  i = i + 1\n"
        "  return wrk.format('GET', paths[(i % #paths) + 1], "
        "{['Accept'] = 'text/html,application/xhtml+xml'})\nend\n"
    )
    proc = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "-s",
            str(script),
            base,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    text = proc.stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if proc.returncode != 0 or rps is None:
        raise SystemExit(f"bench: wrk failed: {proc.stderr or text}")

    def ms(label: str) -> float | None:
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        if m is None:
            return None
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(r"Socket errors:.*", text)
    total = re.search(r"(\d+) requests in", text)
    return {
        "req_per_s": float(rps.group(1)),
        "p50_ms": ms("50"),
        "p99_ms": ms("99"),
        "requests": int(total.group(1)) if total else None,
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(0) if errors else None,
    }


def _python_load(base: str, paths: list[str], seconds: float, connections: int) -> dict[str, Any]:
    import asyncio
    import random

    import httpx

    async def run() -> dict[str, Any]:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        headers = {"Accept": "text/html,application/xhtml+xml"}
        times: list[float] = []
        bad = 0
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
            start = time.perf_counter()
            deadline = start + seconds

            async def worker(n: int) -> None:
                nonlocal bad
                rng = random.Random(n)
                while time.perf_counter() < deadline:
                    t = time.perf_counter()
                    r = await client.get(rng.choice(paths), headers=headers)
                    times.append((time.perf_counter() - t) * 1000)
                    bad += not 200 <= r.status_code < 400

            await asyncio.gather(*(worker(n) for n in range(connections)))
            elapsed = time.perf_counter() - start
        return {
            "req_per_s": len(times) / elapsed,
            "p50_ms": statistics.median(times),
            "p95_ms": _p95(times),
            "requests": len(times),
            "non_2xx": bad,
        }

    return asyncio.run(run())


def phase_api_load(spec_json: str) -> dict[str, Any]:
    """The load generator: runs in its own process, talks to the server over loopback."""
    import random

    spec = json.loads(spec_json)
    base, items, tin = spec["base"], spec["items"], spec["tin"]
    rng = random.Random(3)
    # Distinct items, more than a run requests: most page loads are an item's first, as
    # when consumers each scan their own tin, so no cache of recent answers flatters them.
    serials = rng.sample(range(items), min(items, 20_000))
    codes = [f"https://id.gs1.org/01/{tin}/21/{k}" for k in serials]
    paths = [f"/01/{tin}/21/{k}" for k in serials]
    parts = spec["parts"]
    out: dict[str, Any] = {}
    if "graphql" in parts:
        out["graphql"] = _graphql_latency(base, codes, spec["queries"])
    use_wrk = spec["generator"] == "wrk"
    bases: list[str] = spec.get("bases") or [base]
    servers: list[int] = spec.get("servers") or []

    def load_one(b: str, ps: list[str], seconds: float, connections: int, tag: str) -> dict[str, Any]:
        if use_wrk:
            return _wrk(b, ps, seconds, connections, spec["workdir"], tag)
        return _python_load(b, ps, seconds, connections)

    def load(ps: list[str], seconds: float) -> dict[str, Any]:
        """The generator's connections on the server(s): with several servers (one worker
        each), the connections are split among them, each its own generator, all at once,
        and the rates add up. With each server's worker CPU seconds during the load."""
        before = _workers_cpu(servers)
        if len(bases) == 1:
            got = load_one(bases[0], ps, seconds, spec["concurrency"], "")
        else:
            from concurrent.futures import ThreadPoolExecutor

            share = max(1, spec["concurrency"] // len(bases))
            with ThreadPoolExecutor(len(bases)) as pool:
                runs = list(
                    pool.map(
                        lambda n: load_one(
                            bases[n],
                            ps[n :: len(bases)] if len(ps) >= len(bases) else ps,
                            seconds,
                            share,
                            str(n),
                        ),
                        range(len(bases)),
                    )
                )
            got = {
                "req_per_s": sum(r["req_per_s"] for r in runs),
                "p50_ms": statistics.median(r["p50_ms"] for r in runs if r["p50_ms"]),
                "requests": sum(r["requests"] or 0 for r in runs),
                "non_2xx": sum(r["non_2xx"] for r in runs),
                "servers": len(bases),
                "connections_each": share,
            }
        after = _workers_cpu(servers)
        if before and after:
            got["worker_cpu_s"] = sorted(
                (round(after[w] - before.get(w, 0.0), 2) for w in after), reverse=True
            )
        return got

    missing = _probe_page(base, paths[0])
    if "page_only" in parts:  # the page alone, on another server: items it has not seen
        paths = paths[len(paths) // 2 :]
    out["page"] = (
        {"missing": missing} if missing else {**load(paths, spec["duration"]), "distinct_items": len(paths)}
    )
    if "page_only" in parts:
        return out
    if "page_healthz" in parts:  # the page and its ceiling (and the tiles, if asked)
        out["healthz"] = load(["/healthz"], max(1.0, spec["duration"] / 3))
        if "tiles" in parts:
            out.update(_tile_read_path(base, spec["proof_samples"], lambda ps: load(ps, spec["duration"])))
        return out
    if not missing:
        # The same few items again and again, after one visit each: what answers cached per
        # item and checkpoint give, beside the figure above where nearly every load is cold.
        warm = paths[: spec["warm_items"]]
        for path in warm:
            _probe_page(base, path)
        out["page_warm"] = {**load(warm, spec["duration"]), "distinct_items": len(warm)}
    # The same generator on the cheapest endpoint: the most it and the server can do here,
    # so a page figure close to it says the generator, not the page, was the limit.
    out["healthz"] = load(["/healthz"], max(1.0, spec["duration"] / 3))
    if "tiles" in parts:
        out.update(_tile_read_path(base, spec["proof_samples"], lambda ps: load(ps, spec["duration"])))
    return out


def _workers_cpu(masters: list[int]) -> dict[int, float]:
    """CPU seconds so far of each worker process of the uvicorn servers ``masters`` (their
    children; a server of one worker has none and counts itself), from /proc: where the
    load went. Empty where /proc is not there."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    out: dict[int, float] = {}
    try:
        stats = {}
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    stats[int(d)] = Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
    except OSError:
        return out
    for m in masters:
        kids = [pid for pid, f in stats.items() if int(f[1]) == m]
        for pid in kids or ([m] if m in stats else []):
            f = stats[pid]
            out[pid] = (int(f[11]) + int(f[12])) / tick  # utime + stime
    return out


def _tile_read_path(base: str, samples: int, load: Any) -> dict[str, Any]:
    """The tlog-tiles read path: full level-0 tiles served to the page's load generator
    (every full tile of the log, each path a distinct tile, in turn), then inclusion proofs
    computed from tiles by one client as a monitor or verifier computes them: a fresh
    reader per proof (no tile cached), its tiles fetched over one kept-alive connection,
    the proof verified against the checkpoint's root."""
    import random

    import httpx

    from ledger.core import merkle, tiles
    from ledger.core.note import Checkpoint, split_note

    with httpx.Client(base_url=base, timeout=30) as client:
        cp = Checkpoint.parse(split_note(client.get("/checkpoint").text)[0])
        paths = ["/" + tiles.Tile(0, i).path() for i in range(cp.size // tiles.TILE_WIDTH)]
        probe = client.get(paths[0]) if paths else None
        if probe is None or probe.status_code != 200 or len(probe.content) != 8192:
            why = (
                f"GET {paths[0]} answered HTTP {probe.status_code}"
                if probe is not None
                else f"the log has no full tile (size {cp.size})"
            )
            return {"tiles": {"missing": why}, "proof_from_tiles": {"missing": why}}
        served = {**load(paths), "distinct_tiles": len(paths)}

        def fetch(path: str) -> bytes | None:
            r = client.get("/" + path)
            return r.content if r.status_code == 200 else None

        rng = random.Random(7)
        times: list[float] = []
        reads: list[int] = []
        for _ in range(samples):
            seq = rng.randrange(cp.size)
            t = time.perf_counter()
            reader = tiles.TileReader(cp.size, fetch)
            proof = reader.inclusion_proof(seq)
            leaf = reader.nodes([(0, seq)])[(0, seq)]
            merkle.verify_inclusion(leaf=leaf, index=seq, size=cp.size, proof=proof, root=cp.root)
            times.append((time.perf_counter() - t) * 1000)
            reads.append(reader.fetched)
    return {
        "tiles": served,
        "proof_from_tiles": {
            "p50_ms": statistics.median(times),
            "p95_ms": _p95(times),
            "proofs": len(times),
            "tiles_per_proof_median": statistics.median(reads),
        },
    }


def _forget_scans(url: str) -> None:
    from datetime import UTC, datetime

    from ledger.queries import scans
    from ledger.store.db import Store

    store = Store(url)
    try:
        scans.prune(store, now=datetime(9000, 1, 1, tzinfo=UTC))  # every scan is older
    finally:
        store.dispose()


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(
    url: str, home: str, workdir: Path, workers: int = 1, env_extra: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """``suyuan serve --workers N`` in its own process on loopback (uvicorn; with several
    workers, each listening on a socket of its own, see ``tools.cli.serve.serve_workers``);
    returns once /healthz answers."""
    import urllib.request

    for _attempt in range(3):  # another process may take the free port first
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "SUYUAN_DB": url,
            "SUYUAN_HOME": home,
            "SUYUAN_BASE_URL": base,
            **(env_extra or {}),
        }
        log = open(workdir / "server.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tools.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            cwd=Path(__file__).resolve().parents[1],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=5) as r:
                    if r.status == 200:
                        # Every worker listening, before any load: the connections a
                        # generator opens at once are spread over the listeners there are.
                        while _listeners(port) not in (None, workers) and time.monotonic() < deadline:
                            time.sleep(0.1)
                        return proc, base
            except OSError:
                time.sleep(0.2)
        proc.kill()
        proc.wait()
        tail = (workdir / "server.log").read_text(errors="replace")[-2000:]
        if "address already in use" not in tail.lower():
            break
    raise SystemExit(f"bench: the API server did not start:\n{tail}")


def _listeners(port: int) -> int | None:
    """How many sockets listen on 127.0.0.1:``port`` (Linux's /proc/net/tcp; None
    elsewhere): with several workers, each has its own (``suyuan serve``)."""
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return None
    want = f"0100007F:{port:04X}"
    return sum(1 for line in lines if (f := line.split())[1] == want and f[3] == "0A")


def _generator(choice: str) -> str:
    if choice == "auto":
        return "wrk" if shutil.which("wrk") else "python"
    if choice == "wrk" and not shutil.which("wrk"):
        raise SystemExit(
            "bench: wrk is not installed (Debian: apt-get install wrk); or use --generator python"
        )
    return choice


def bench_api(
    entries: int,
    queries: int,
    duration: float,
    concurrency: int,
    generator: str,
    postgres: bool,
    warm_items: int = 50,
    workers: int = 2,
    runs: int = 1,
    ledger_dir: str | None = None,
) -> dict[str, Any]:
    gen = _generator(generator)
    if gen == "python":
        print(
            "bench api: load from Python asyncio+httpx; wrk (apt-get install wrk) generates "
            "more load per core",
            file=sys.stderr,
        )
    work = Path(tempfile.mkdtemp(prefix="suyuan-bench-api-"))
    drop = None
    try:
        items, big_lot = _items_for(entries)
        if ledger_dir is not None and not postgres:
            # A ledger built by an earlier run, kept: the same chain, not built again.
            kept = Path(ledger_dir).resolve()
            kept.mkdir(parents=True, exist_ok=True)
            url, home = f"sqlite:///{kept}/api.db", str(kept / "home")
            made = kept / "build.json"
            if made.exists():
                build = json.loads(made.read_text())
                if build.get("items") != items:
                    raise SystemExit(
                        f"bench: {kept} holds a ledger of {build.get('entries')} "
                        f"entries ({build.get('items')} items), not one for "
                        f"--entries {entries}; give that or another --ledger"
                    )
            else:
                if (kept / "api.db").exists():
                    raise SystemExit(
                        f"bench: {kept}/api.db was not built by the bench; give "
                        "an empty directory to --ledger"
                    )
                build = {**_child("trace_build", url, home, str(items), str(big_lot)), "items": items}
                made.write_text(json.dumps(build))
            # Each run starts as a fresh build would: the scans earlier runs' page loads left
            # go (a page reads up to 1,000 of its code's scans, and the warm items reach that).
            _forget_scans(url)
        else:
            url = f"sqlite:///{work}/api.db"
            if postgres:
                pg = _pg_database()
                if pg is None:
                    raise SystemExit("bench: --postgres given but PostgreSQL is not reachable")
                url, drop = pg
            home = str(work / "home")
            build = _child("trace_build", url, home, str(items), str(big_lot))
            if postgres:
                _analyze(url)
        spec = {
            "items": items,
            "tin": _tin(),
            "queries": queries,
            "duration": duration,
            "concurrency": concurrency,
            "generator": gen,
            "warm_items": warm_items,
            "workdir": str(work),
            "proof_samples": 200,
        }

        def run(n: int, parts: list[str], servers: int = 1) -> dict[str, Any]:
            """``servers`` uvicorn servers of ``n`` workers each, loaded at once."""
            started = [_serve(url, home, work, n) for _ in range(servers)]
            try:
                return _child(
                    "api_load",
                    json.dumps(
                        {
                            **spec,
                            "base": started[0][1],
                            "bases": [b for _, b in started],
                            "servers": [p.pid for p, _ in started],
                            "parts": parts,
                        }
                    ),
                )
            finally:
                for server, _ in started:
                    server.terminate()
                    try:
                        server.wait(10)
                    except subprocess.TimeoutExpired:
                        server.kill()

        # GraphQL latency on one worker, as the bound asks; the page on ``workers`` (one
        # per core), and also on one worker over other items, to show what each adds.
        if workers == 1:
            load = run(1, ["graphql", "page", "tiles"])
        else:
            load = run(1, ["graphql", "page_only"])
            load["page_one_worker"] = load.pop("page")
            load.update(run(workers, ["page", "tiles"]))
        # More runs of the page beside /healthz, each on a fresh server (cold caches):
        # the machine is shared, so the figures are the medians, and the ratio of each run.
        pairs = [(load["page"], load["healthz"])]
        for _ in range(runs - 1):
            again = run(workers, ["page_healthz"])
            pairs.append((again["page"], again["healthz"]))
        # The same cores as ``workers`` servers of one worker each, the connections split
        # among them: what the cores do when each worker gets its share of the load.
        split = [] if workers == 1 else [run(1, ["page_healthz"], servers=workers) for _ in range(runs)]
        return _api_report(
            build,
            items,
            gen,
            concurrency,
            load,
            "postgresql" if postgres else "sqlite",
            workers,
            pairs=pairs,
            split=split,
        )
    finally:
        if drop is not None:
            drop()
        shutil.rmtree(work, ignore_errors=True)


def bench_api_replica(
    entries: int, duration: float, concurrency: int, generator: str, workers: int = 2, runs: int = 1
) -> dict[str, Any]:
    """The page beside /healthz and the tile read path on a PostgreSQL primary of the bench's
    own (``tools/pgcluster.py``), read from the primary alone, then from a hot standby
    streaming from it on this machine (SUYUAN_DB_READ), in turns on fresh servers."""
    from tools.pgcluster import Clusters, pg_bin, replayed

    if pg_bin() is None:
        raise SystemExit("bench: --replica needs PostgreSQL's server programs (initdb, pg_basebackup)")
    gen = _generator(generator)
    work = Path(tempfile.mkdtemp(prefix="suyuan-bench-replica-"))
    cs = Clusters()
    try:
        primary = cs.primary()
        primary.sql("CREATE DATABASE suyuan")
        url = primary.url("suyuan")
        home = str(work / "home")
        items, big_lot = _items_for(entries)
        build = _child("trace_build", url, home, str(items), str(big_lot))
        _analyze(url)
        standby = cs.standby(primary, "standby1")  # a base backup of the ledger just built
        replayed(standby, primary)
        spec = {
            "items": items,
            "tin": _tin(),
            "queries": 0,
            "duration": duration,
            "concurrency": concurrency,
            "generator": gen,
            "warm_items": 0,
            "workdir": str(work),
            "proof_samples": 200,
        }
        setups = {"primary_only": {}, "with_replica": {"SUYUAN_DB_READ": standby.url("suyuan")}}
        got: dict[str, list[dict[str, Any]]] = {name: [] for name in setups}
        for n in range(runs):
            for name, env in setups.items():  # in turns: the machine's noise falls on both
                server, base = _serve(url, home, work, workers, env)
                try:
                    parts = ["page_healthz", "tiles"] if n == 0 else ["page_healthz"]
                    got[name].append(
                        _child(
                            "api_load",
                            json.dumps({**spec, "base": base, "servers": [server.pid], "parts": parts}),
                        )
                    )
                finally:
                    server.terminate()
                    try:
                        server.wait(10)
                    except subprocess.TimeoutExpired:
                        server.kill()
        how = "wrk, 1 thread" if gen == "wrk" else "Python asyncio+httpx, one process"
        result: dict[str, Any] = {
            "entries": build["entries"],
            "items": items,
            "db": "postgresql, clusters of the bench's own (initdb; standby by pg_basebackup, streaming)",
            "cores": os.cpu_count(),
            "load_average_1m": round(os.getloadavg()[0], 2),
            "workers": workers,
            "load_generator": f"{how}, {concurrency} connections, in its own process",
        }
        for name, loads in got.items():
            one: dict[str, Any] = {}
            pairs = [(g["page"], g["healthz"]) for g in loads]
            ok = [p for p, _ in pairs if "missing" not in p]
            if ok:
                one["page_req_per_s"] = {
                    **_figure("page_req_per_s", statistics.median(p["req_per_s"] for p in ok)),
                    "runs": [round(p["req_per_s"], 1) for p in ok],
                    "p50_ms_runs": [p.get("p50_ms") for p in ok],
                }
            ratio = _ratio_figure(
                pairs,
                f"the page over distinct items / /healthz, each pair on one fresh server of {workers} "
                "workers",
            )
            if ratio is not None:
                one["page_to_healthz"] = ratio
            tl, pt = loads[0].get("tiles", {}), loads[0].get("proof_from_tiles", {})
            if tl and "missing" not in tl:
                one["tiles_req_per_s"] = {"value": round(tl["req_per_s"], 1), **_details(tl)}
            if pt and "missing" not in pt:
                one["proof_from_tiles_ms_p50"] = {"value": round(pt["p50_ms"], 3), **_details(pt)}
            result[name] = one
        result["note"] = (
            "primary and standby share this machine's cores with the server and the load "
            "generator: the standby moves reads off the primary, it adds no CPU here"
        )
        return result
    finally:
        cs.close()
        shutil.rmtree(work, ignore_errors=True)


def _analyze(url: str) -> None:
    """PostgreSQL's statistics of the tables just filled, as autovacuum would gather them
    in time on a running database: without them, the planner of a freshly loaded ledger
    scans whole tables for the journey, which no server that has run a while does."""
    import sqlalchemy as sa

    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
    finally:
        engine.dispose()


def _missing_figure(name: str, what: str) -> dict[str, Any]:
    """A bound whose endpoint was not there to measure: not met, and why."""
    return {"value": None, "bound": TARGETS[name], "met": False, "missing": what}


def _details(run: dict[str, Any]) -> dict[str, Any]:
    """A load run's figures other than its rate, floats rounded."""
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in run.items() if k != "req_per_s"}


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median rate (of an odd count; the lower middle of an even one)."""
    return sorted(runs, key=lambda r: r["req_per_s"])[(len(runs) - 1) // 2]


def _cpu_ms(run: dict[str, Any]) -> float | None:
    """Server CPU milliseconds per request of a load run (None if not measured)."""
    cpu, n = run.get("worker_cpu_s"), run.get("requests")
    return 1000 * sum(cpu) / n if cpu and n else None


def _ratio_figure(pairs: list[tuple[dict[str, Any], dict[str, Any]]], note: str) -> dict[str, Any] | None:
    ok = [(p, h) for p, h in pairs if "missing" not in p and h.get("req_per_s")]
    if not ok:
        return None
    ratios = [p["req_per_s"] / h["req_per_s"] for p, h in ok]
    # The server's CPU per answer, from its workers' CPU seconds over the answers given:
    # what the machine's other work changes least (it slows the rates, not this much).
    cpu: list[tuple[float, float]] = []
    for p, h in ok:
        pc, hc = _cpu_ms(p), _cpu_ms(h)
        if pc and hc:
            cpu.append((pc, hc))
    costs = (
        {
            "page_server_cpu_ms_per_request": round(statistics.median(c[0] for c in cpu), 3),
            "healthz_server_cpu_ms_per_request": round(statistics.median(c[1] for c in cpu), 3),
            "cpu_ratio": round(statistics.median(hc / pc for pc, hc in cpu), 3),
            "cpu_ratio_runs": [round(hc / pc, 3) for pc, hc in cpu],
        }
        if cpu
        else {}
    )
    return {
        **_figure("page_to_healthz", statistics.median(ratios)),
        **costs,
        "runs": [round(r, 3) for r in ratios],
        "page_req_per_s_runs": [round(p["req_per_s"], 1) for p, _ in ok],
        "healthz_req_per_s_runs": [round(h["req_per_s"], 1) for _, h in ok],
        "page_req_per_s_median": round(statistics.median(p["req_per_s"] for p, _ in ok), 1),
        "healthz_req_per_s_median": round(statistics.median(h["req_per_s"] for _, h in ok), 1),
        "page_worker_cpu_s": [p.get("worker_cpu_s") for p, _ in ok],
        "note": note,
    }


def _api_report(
    build: dict[str, Any],
    items: int,
    gen: str,
    concurrency: int,
    load: dict[str, Any],
    db: str,
    workers: int,
    pairs: list[tuple[dict[str, Any], dict[str, Any]]] | None = None,
    split: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    import importlib.util

    how = "wrk, 1 thread" if gen == "wrk" else "Python asyncio+httpx, one process"
    http_impl = "httptools" if importlib.util.find_spec("httptools") else "h11"
    result: dict[str, Any] = {
        "entries": build["entries"],
        "items": items,
        "db": db,
        "cores": os.cpu_count(),
        # Other work on the machine slows both sides: say how busy it was.
        "load_average_1m": round(os.getloadavg()[0], 2),
        "server": f"uvicorn, {http_impl}, 127.0.0.1",
        "workers": {"graphql": 1, "page": workers, "healthz": workers},
        "load_generator": f"{how}, {concurrency} connections, in its own process",
    }
    missing = []
    g = load["graphql"]
    if "missing" in g:
        missing.append(g["missing"])
        result["graphql_trace_ms_p95"] = _missing_figure("graphql_trace_ms_p95", g["missing"])
    else:
        result["graphql_trace_ms_p95"] = {
            **_figure("graphql_trace_ms_p95", g["p95_ms"], higher_is_better=False),
            "workers": 1,
            "p50_ms": round(g["p50_ms"], 3),
            "queries": g["queries"],
            "failed": g["failed"],
            "journey_events_median": g["journey_events_median"],
        }
    page = load["page"]
    if "missing" in page:
        missing.append(page["missing"])
        result["page_req_per_s"] = _missing_figure("page_req_per_s", page["missing"])
    else:
        result["page_req_per_s"] = {
            **_figure("page_req_per_s", page["req_per_s"]),
            "workers": workers,
            **_details(page),
        }
        one = load.get("page_one_worker")
        if one is not None and "missing" not in one:
            result["page_one_worker_req_per_s"] = {
                "value": round(one["req_per_s"], 1),
                "workers": 1,
                **_details(one),
                "note": "the page on the one-worker server of the GraphQL figure, other items",
            }
        warm = load["page_warm"]
        result["page_warm_req_per_s"] = {
            "value": round(warm["req_per_s"], 1),
            "workers": workers,
            **_details(warm),
            "note": "the same few items over and over, each visited once before",
        }
    hz = load["healthz"]
    result["healthz_req_per_s"] = {
        "value": round(hz["req_per_s"], 1),
        "workers": workers,
        **_details(hz),
        "note": "same generator and server on /healthz: the ceiling here, measured in the same run",
    }
    ratio = _ratio_figure(
        pairs or [(page, hz)],
        (
            f"the page over distinct items / /healthz, each pair on one fresh server of "
            f"{workers} workers, one after the other; value: the median of the runs' ratios. "
            "page_worker_cpu_s: each worker's CPU seconds during the page load (uvicorn's "
            "workers share one socket, and one of them may accept every connection)"
        ),
    )
    if ratio is not None:
        result["page_to_healthz"] = {**ratio, "workers": workers}
    if split:
        sp = _ratio_figure(
            [(r["page"], r["healthz"]) for r in split],
            (
                f"the same, on {workers} servers of one worker each, the generator's "
                "connections split evenly among them (each share its own generator, all at "
                "once), the rates added: every core's worker loaded, as behind a load balancer"
            ),
        )
        if sp is not None:
            result["page_to_healthz_split"] = {**sp, "workers": f"{workers} x 1"}
    tl, pt = load.get("tiles", {}), load.get("proof_from_tiles", {})
    if "missing" in tl:
        missing.append(tl["missing"])
    elif tl:
        result["tiles_req_per_s"] = {
            "value": round(tl["req_per_s"], 1),
            "workers": workers,
            **_details(tl),
            "note": "GET /tile/0/N, full level-0 tiles (8 KiB) of the ledger above, each path "
            "a distinct tile, from the stored Merkle nodes",
        }
    if pt and "missing" not in pt:
        result["proof_from_tiles_ms_p50"] = {
            "value": round(pt["p50_ms"], 3),
            "workers": workers,
            **_details(pt),
            "note": "an inclusion proof computed by a client from tiles fetched over HTTP "
            "(no tile cached), verified against the checkpoint's root",
        }
    if missing:
        result["missing"] = missing
        for m in missing:
            print(f"bench api: missing: {m}", file=sys.stderr)
    return result


# --- driver ----------------------------------------------------------------------------------


def _child(*args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "tools.bench", "_phase", *args],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    if proc.returncode != 0:
        raise SystemExit(f"bench phase {args[0]} failed (exit {proc.returncode})")
    doc: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return doc


def _pg_database() -> tuple[str, Any] | None:
    import sqlalchemy as sa

    try:
        admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        name = f"suyuan_bench_{uuid.uuid4().hex[:8]}"
        with admin.connect() as c:
            c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except Exception as e:
        print(f"bench: PostgreSQL not reachable at {PG_ADMIN}: {type(e).__name__}", file=sys.stderr)
        return None
    url = sa.engine.make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)

    def drop() -> None:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url, drop


def _figure(name: str, value: float, *, higher_is_better: bool = True) -> dict[str, Any]:
    bound = TARGETS[name]
    met = value >= bound if higher_is_better else value <= bound
    return {"value": round(value, 3), "bound": bound, "met": met}


def _concurrent(url: str, home: str, kind: str, n: int, submitters: int, bound: str) -> dict[str, Any]:
    c = _child("append_concurrent", url, home, kind, str(n), str(submitters))
    return {
        **_figure(bound, c["per_s"]),
        "submitters": submitters,
        "statements": c["statements"],
        "entries_before": c["entries_before"],
        "note": f"{submitters} processes submitting batches of {BATCH} at once to the "
        "ledger above, which was already this big",
    }


RATIO_TARGETS = {"append_sqlite_over_verify": 0.55, "audit_over_verify": 0.7}


def _ratio_lines(result: dict[str, Any], ratios: dict[str, float]) -> dict[str, Any]:
    """The figures issue targets name as multiples of the Ed25519 verify rate measured in
    this run (and PostgreSQL's single-submitter rate), each printed on a line of its own to
    stderr as well."""
    out: dict[str, Any] = {
        "append_sqlite_over_verify": _ratio(ratios["sqlite"], "append_sqlite_over_verify"),
        "audit_over_verify": _ratio(ratios["audit"], "audit_over_verify"),
        "audit_log_only_over_verify": _ratio(ratios["audit_log_only"], "audit_over_verify"),
    }
    pg = result.get("append_per_s_postgres")
    if pg is not None:
        out["append_postgres_per_s"] = pg
    verify = result["ed25519_verify_per_s"]
    sys.stderr.write(f"ed25519 verify (1 core): {verify:,}/s\n")
    for name, fig in out.items():
        what = {
            "append_sqlite_over_verify": "append/verify (SQLite, 1 submitter)",
            "audit_over_verify": "audit/verify (SQLite)",
            "audit_log_only_over_verify": "audit --log-only/verify (SQLite)",
            "append_postgres_per_s": "append (PostgreSQL, 1 submitter, per s)",
        }[name]
        sys.stderr.write(
            f"{what}: {fig['value']:,} (target >= {fig['bound']:,}: {'met' if fig['met'] else 'NOT met'})\n"
        )
    return out


def _ratio(value: float, name: str) -> dict[str, Any]:
    bound = RATIO_TARGETS[name]
    return {"value": value, "bound": bound, "met": value >= bound}


def bench_ledger(n: int, samples: int, postgres: bool, submitters: int = 2) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="suyuan-bench-"))
    try:
        verify = verify_rate()
        result: dict[str, Any] = {
            "n": n,
            "batch": BATCH,
            "cores": os.cpu_count(),
            "ed25519_verify_per_s": round(verify),
        }
        sqlite_url = f"sqlite:///{work}/bench.db"
        ap = _child("append", sqlite_url, str(work / "home-sqlite"), str(n))
        result["append_per_s_sqlite"] = _figure("append_per_s_sqlite", ap["per_s"])
        ratios = {"sqlite": round(ap["per_s"] / verify, 3)}
        rss = {"append_sqlite": round(ap["rss_mb"], 1)}
        pr = _child("proofs", sqlite_url, str(ap["size"]), str(samples))
        result["inclusion_proof_ms_p50"] = _figure(
            "inclusion_proof_ms_p50", pr["inclusion_ms_p50"], higher_is_better=False
        )
        result["consistency_proof_ms_p50"] = _figure(
            "consistency_proof_ms_p50", pr["consistency_ms_p50"], higher_is_better=False
        )
        result["proof_detail_sqlite"] = {k: round(v, 3) for k, v in pr.items()}
        au = _child("audit", sqlite_url)
        if not au["ok"]:
            raise SystemExit(f"bench: audit found problems: {au['problems']}")
        result["audit_per_s"] = _figure("audit_per_s", au["per_s"])
        rss["audit_sqlite"] = round(au["rss_mb"], 1)
        # The log alone (entries, chain, signatures, key rules, tree, checkpoints): what
        # the audit line measured before it also re-derived the projections.
        lo = _child("audit", sqlite_url, "log-only")
        result["audit_log_only_per_s"] = _figure("audit_per_s", lo["per_s"])
        rss["audit_log_only_sqlite"] = round(lo["rss_mb"], 1)
        extra = max(10_000, n // 5)
        if submitters > 1:
            result["append_per_s_sqlite_concurrent"] = _concurrent(
                sqlite_url, str(work / "home-sqlite"), "events", extra, submitters, "append_per_s_sqlite"
            )
        if postgres:
            pg = _pg_database()
            if pg is not None:
                url, drop = pg
                try:
                    app = _child("append", url, str(work / "home-pg"), str(n))
                    result["append_per_s_postgres"] = _figure("append_per_s_postgres", app["per_s"])
                    ratios["postgres"] = round(app["per_s"] / verify, 3)
                    rss["append_postgres"] = round(app["rss_mb"], 1)
                    ppg = _child("proofs", url, str(app["size"]), str(samples))
                    result["proof_detail_postgres"] = {k: round(v, 3) for k, v in ppg.items()}
                    if submitters > 1:
                        result["append_per_s_postgres_concurrent"] = _concurrent(
                            url, str(work / "home-pg"), "events", extra, submitters, "append_per_s_postgres"
                        )
                finally:
                    drop()
        # Appends are bounded by signature checks: 1.0 would be one core verifying and
        # nothing else; 2 cores could reach 2.0 at most.
        ratios["audit"] = round(au["per_s"] / verify, 3)
        ratios["audit_log_only"] = round(lo["per_s"] / verify, 3)
        result["ratio_to_verify_bound"] = ratios
        result["ratio_targets"] = _ratio_lines(result, ratios)
        worst = max(rss.values())
        result["rss_mb_peak"] = {**_figure("rss_mb_peak", worst, higher_is_better=False), "phases": rss}
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bench_labels(items: int) -> dict[str, Any]:
    """A lot of ``items`` items commissioned on a fresh SQLite ledger, then its A4 label
    sheet as `suyuan qr --lot … --sheet` makes it (api.labels.lot_label_sheet): the lot's
    items from the ledger, a QR symbol per item drawn as vectors, the PDF written out."""
    from api.labels import lot_label_sheet
    from ledger.core.statements import sign_one

    work = Path(tempfile.mkdtemp(prefix="suyuan-bench-labels-"))
    try:
        store, led, registrar, reg_key = _new_ledger(f"sqlite:///{work}/ledger.db", str(work / "home"))
        party, key = _register(led, registrar, reg_key, "91130200MA000001", "producer", [BENCH_PREFIX])
        issued = "2026-11-27T13:05:00+08:00"
        for start in range(0, items, BATCH):
            led.append_batch(
                [
                    sign_one(
                        kind="event",
                        signer=party,
                        key=key,
                        issued=issued,
                        body={**_event(party, start + i), "ilmd": {"cbvmda:lotNumber": "BENCH1"}},
                    )
                    for i in range(min(BATCH, items - start))
                ]
            )
        lot = "https://id.gs1.org/01/09506000134352/10/BENCH1"
        t = time.perf_counter()
        pdf, info = lot_label_sheet(store, "https://trace.example.cn", lot)
        (work / "labels.pdf").write_bytes(pdf)
        spent = time.perf_counter() - t
        store.dispose()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    # The bound is for 1,000 labels; another size is scaled to it.
    return {
        "label_sheet_s_1000": _figure(
            "label_sheet_s_1000", spent * 1000 / info["items"], higher_is_better=False
        ),
        "labels": info["items"],
        "pages": info["pages"],
        "bytes": len(pdf),
        "seconds": round(spent, 3),
        "labels_per_s": round(info["items"] / spent, 1),
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_phase":
        phase, *rest = argv[1:]
        if phase == "append":
            doc = phase_append(rest[0], rest[1], int(rest[2]))
        elif phase == "append_concurrent":
            doc = phase_append_concurrent(rest[0], rest[1], rest[2], int(rest[3]), int(rest[4]))
        elif phase == "trace_build":
            doc = phase_trace_build(rest[0], rest[1], int(rest[2]), int(rest[3]))
        elif phase == "trace_query":
            doc = phase_trace_query(rest[0], int(rest[1]), int(rest[2]))
        elif phase == "api_load":
            doc = phase_api_load(rest[0])
        elif phase == "proofs":
            doc = phase_proofs(rest[0], int(rest[1]), int(rest[2]))
        else:
            doc = phase_audit(rest[0], projections=rest[1:] != ["log-only"])
        print(json.dumps(doc))
        return 0
    p = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="suite", required=True)
    s = sub.add_parser("ledger", help="append, proofs, audit, memory")
    s.add_argument("--n", type=int, default=100_000, help="statements to append (target: 1e6)")
    s.add_argument("--samples", type=int, default=1000, help="proofs to time")
    s.add_argument("--no-postgres", action="store_true")
    s.add_argument(
        "--submitters", type=int, default=2, help="processes of the concurrent append run (0: skip it)"
    )
    s = sub.add_parser("trace", help="journeys, lineage and recall over a generated chain")
    s.add_argument(
        "--items", type=int, default=20_000, help="items (target: 200,000, about 1,000,000 entries)"
    )
    s.add_argument("--big-lot", type=int, default=10_000, help="items in the recalled lot")
    s.add_argument("--samples", type=int, default=400)
    s.add_argument(
        "--submitters", type=int, default=2, help="processes of the concurrent append run (0: skip it)"
    )
    s = sub.add_parser("api", help="GraphQL trace latency and consumer-page throughput over HTTP")
    s.add_argument("--entries", type=int, default=100_000, help="ledger size to build")
    s.add_argument("--queries", type=int, default=1000, help="GraphQL trace queries to time")
    s.add_argument("--duration", type=float, default=10.0, help="seconds of page load")
    s.add_argument("--concurrency", type=int, default=16, help="connections for page load")
    s.add_argument(
        "--generator",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator: wrk if installed (auto), or Python asyncio+httpx",
    )
    s.add_argument(
        "--postgres",
        action="store_true",
        help="build on PostgreSQL (SUYUAN_BENCH_PG) instead of SQLite in a temp dir",
    )
    s.add_argument(
        "--warm-items", type=int, default=50, help="items of the warm page run, each visited once before it"
    )
    s.add_argument(
        "--workers", type=int, default=2, help="uvicorn workers for the page runs (GraphQL latency: always 1)"
    )
    s.add_argument(
        "--runs",
        type=int,
        default=1,
        help="runs of the page beside /healthz, each on a fresh server (medians)",
    )
    s.add_argument(
        "--ledger",
        metavar="DIR",
        default=None,
        help="build the SQLite ledger in DIR, or reuse the one an earlier run built there",
    )
    s.add_argument(
        "--replica",
        action="store_true",
        help="on PostgreSQL clusters of the bench's own: the page, /healthz and the tiles read "
        "from the primary alone, then from a local streaming hot standby (SUYUAN_DB_READ)",
    )
    s = sub.add_parser("labels", help="an A4 label sheet of a lot, as `suyuan qr --lot --sheet`")
    s.add_argument("--items", type=int, default=1000, help="items in the lot (bound: 1,000)")
    args = p.parse_args(argv)
    if args.suite == "labels":
        print(json.dumps(bench_labels(args.items), indent=1))
        return 0
    if args.suite == "api" and args.replica:
        doc = bench_api_replica(
            args.entries,
            args.duration,
            args.concurrency,
            args.generator,
            max(1, args.workers),
            max(1, args.runs),
        )
        print(json.dumps(doc, indent=1))
        return 0
    if args.suite == "api":
        print(
            json.dumps(
                bench_api(
                    args.entries,
                    args.queries,
                    args.duration,
                    args.concurrency,
                    args.generator,
                    args.postgres,
                    args.warm_items,
                    max(1, args.workers),
                    max(1, args.runs),
                    args.ledger,
                ),
                indent=1,
            )
        )
        return 0
    if args.suite == "trace":
        print(json.dumps(bench_trace(args.items, args.big_lot, args.samples, args.submitters), indent=1))
        return 0
    print(json.dumps(bench_ledger(args.n, args.samples, not args.no_postgres, args.submitters), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
