"""Benchmarks: ``python -m tools.bench ledger [--n N]`` prints JSON, each figure beside its
bound, the Ed25519 bound measured in the same run.

Every phase runs in a child process of its own so that its peak RSS is its own and the
proof timings come from a cold process (fresh interpreter, connection and caches).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

PG_ADMIN = os.environ.get("SUYUAN_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BATCH = 1000

TARGETS = {
    "append_per_s_sqlite": 10_000,
    "append_per_s_postgres": 5_000,
    "inclusion_proof_ms_p50": 1.0,
    "consistency_proof_ms_p50": 1.0,
    "audit_per_s": 15_000,
    "rss_mb_peak": 300,
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


def _event(party: str, n: int) -> dict[str, Any]:
    return {
        "type": "ObjectEvent", "action": "ADD", "bizStep": "commissioning",
        "disposition": "active", "eventTime": "2026-11-27T13:05:00+08:00",
        "eventTimeZoneOffset": "+08:00",
        "epcList": [f"https://id.gs1.org/01/09506000134352/21/{n}"],
        "readPoint": {"id": "https://id.gs1.org/414/9520123456788"},
        "ilmd": {"cbvmda:lotNumber": f"L{n // 1000}"},
    }


def phase_append(url: str, home: str, n: int) -> dict[str, Any]:
    """Create a ledger at ``url`` and append ``n`` statements in batches of 1,000."""
    from ledger.home import Home, genesis_envelope
    from ledger.ids import make_uscc
    from ledger.keys import PartyKey
    from ledger.log import Ledger
    from ledger.statements import sign_one
    from ledger.store.db import Store

    store = Store(url)
    store.migrate()
    h = Home(Path(home))
    signer = h.create_note_signer("bench.suyuan/log")
    reg_key = h.keys.get_or_create("registrar")
    registrar = "uscc:" + make_uscc("12130200MB0000000")
    led = Ledger(store, note_signer=signer)
    led.append(genesis_envelope(origin="bench.suyuan/log", signer=signer,
                                registrar_id=registrar, registrar_name="bench",
                                registrar_key=reg_key))
    party = "uscc:" + make_uscc("91130200MA0000001")
    key = PartyKey.generate("p")
    led.append(sign_one(kind="party.register", signer=party, key=key,
                        body={"id": party, "name": "bench producer", "roles": ["producer"],
                              "publicKey": key.public_key_b64},
                        cosigners=[(registrar, reg_key)]))
    spent = 0.0
    done = 0
    issued = "2026-11-27T13:05:00+08:00"
    while done < n:
        size = min(BATCH, n - done)
        # Signing is the clients' work, not the ledger's: it is not timed.
        batch = [sign_one(kind="event", signer=party, key=key, body=_event(party, done + i),
                          issued=issued) for i in range(size)]
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


def phase_proofs(url: str, size: int, samples: int) -> dict[str, Any]:
    """Proof latency from a cold process: this process opened nothing before."""
    import random

    t0 = time.perf_counter()
    from ledger.log import Ledger
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


def phase_audit(url: str) -> dict[str, Any]:
    from ledger.audit import audit
    from ledger.store.db import Store

    store = Store(url)
    t = time.perf_counter()
    rep = audit(store)
    dt = time.perf_counter() - t
    return {"per_s": rep.entries / dt, "ok": rep.ok, "entries": rep.entries,
            "problems": [p.line() for p in rep.problems[:5]], "rss_mb": rss_mb()}


# --- driver ----------------------------------------------------------------------------------


def _child(*args: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "tools.bench", "_phase", *args],
                          stdout=subprocess.PIPE, text=True,
                          cwd=Path(__file__).resolve().parents[1])
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
        print(f"bench: PostgreSQL not reachable at {PG_ADMIN}: {type(e).__name__}",
              file=sys.stderr)
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


def bench_ledger(n: int, samples: int, postgres: bool) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="suyuan-bench-"))
    try:
        verify = verify_rate()
        result: dict[str, Any] = {"n": n, "batch": BATCH, "cores": os.cpu_count(),
                                  "ed25519_verify_per_s": round(verify)}
        sqlite_url = f"sqlite:///{work}/bench.db"
        ap = _child("append", sqlite_url, str(work / "home-sqlite"), str(n))
        result["append_per_s_sqlite"] = _figure("append_per_s_sqlite", ap["per_s"])
        ratios = {"sqlite": round(ap["per_s"] / verify, 3)}
        rss = {"append_sqlite": round(ap["rss_mb"], 1)}
        pr = _child("proofs", sqlite_url, str(ap["size"]), str(samples))
        result["inclusion_proof_ms_p50"] = _figure(
            "inclusion_proof_ms_p50", pr["inclusion_ms_p50"], higher_is_better=False)
        result["consistency_proof_ms_p50"] = _figure(
            "consistency_proof_ms_p50", pr["consistency_ms_p50"], higher_is_better=False)
        result["proof_detail_sqlite"] = {k: round(v, 3) for k, v in pr.items()}
        au = _child("audit", sqlite_url)
        if not au["ok"]:
            raise SystemExit(f"bench: audit found problems: {au['problems']}")
        result["audit_per_s"] = _figure("audit_per_s", au["per_s"])
        rss["audit_sqlite"] = round(au["rss_mb"], 1)
        if postgres:
            pg = _pg_database()
            if pg is not None:
                url, drop = pg
                try:
                    app = _child("append", url, str(work / "home-pg"), str(n))
                    result["append_per_s_postgres"] = _figure("append_per_s_postgres",
                                                              app["per_s"])
                    ratios["postgres"] = round(app["per_s"] / verify, 3)
                    rss["append_postgres"] = round(app["rss_mb"], 1)
                    ppg = _child("proofs", url, str(app["size"]), str(samples))
                    result["proof_detail_postgres"] = {k: round(v, 3) for k, v in ppg.items()}
                finally:
                    drop()
        # Appends are bounded by signature checks: 1.0 would be one core verifying and
        # nothing else; 2 cores could reach 2.0 at most.
        result["ratio_to_verify_bound"] = ratios
        worst = max(rss.values())
        result["rss_mb_peak"] = {**_figure("rss_mb_peak", worst, higher_is_better=False),
                                 "phases": rss}
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_phase":
        phase, *rest = argv[1:]
        if phase == "append":
            doc = phase_append(rest[0], rest[1], int(rest[2]))
        elif phase == "proofs":
            doc = phase_proofs(rest[0], int(rest[1]), int(rest[2]))
        else:
            doc = phase_audit(rest[0])
        print(json.dumps(doc))
        return 0
    p = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="suite", required=True)
    s = sub.add_parser("ledger", help="append, proofs, audit, memory")
    s.add_argument("--n", type=int, default=100_000, help="statements to append (target: 1e6)")
    s.add_argument("--samples", type=int, default=1000, help="proofs to time")
    s.add_argument("--no-postgres", action="store_true")
    args = p.parse_args(argv)
    print(json.dumps(bench_ledger(args.n, args.samples, not args.no_postgres), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
