"""`audit` (the whole ledger, or one product chain, and the HTML report) and `reindex`."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ledger.log.home import Home
from tools.cli.common import Commands, open_ledger, out


def cmd_reindex(a: argparse.Namespace, home: Home) -> int:
    # ledger.log.reindex and ledger.log.audit (about 5 ms to import together) load for their
    # commands alone.
    from ledger.log.reindex import reindex

    led = open_ledger(home)
    tty = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if tty:
            sys.stderr.write(f"\rreindex: {done:,}/{total:,} entries")

    res = reindex(led.store, progress=progress)
    if tty:
        sys.stderr.write("\n")
    out(res)
    return 0


def cmd_audit(a: argparse.Namespace, home: Home) -> int:
    from ledger.log.audit import audit

    if a.log_only and (a.report or a.scope):
        from ledger.core.errors import MalformedInput

        raise MalformedInput(
            "--log-only checks the log alone; leave it out to write a --report or audit a --scope",
            code="bad_arguments",
        )
    led = open_ledger(home)
    started = time.monotonic()
    tty = sys.stderr.isatty() and not a.json

    def progress(done: int, total: int) -> None:
        if tty:
            pct = 100 * done / total if total else 100
            rate = done / max(time.monotonic() - started, 1e-9)
            sys.stderr.write(f"\raudit: {done:,}/{total:,} entries ({pct:.1f}%), {rate:,.0f}/s")
            sys.stderr.flush()

    if a.report or a.scope:
        # The report's templates and the API's queries (about 40 ms to import) load only
        # when a report or a scope is asked for.
        from api.report import collect, render_html

        doc = collect(led, home, scope=a.scope)
        if a.report:
            Path(a.report).write_text(render_html(doc), encoding="utf-8")
        if a.json:
            out(doc)
        else:
            out(
                {
                    "report": a.report,
                    "ok": doc["integrity"]["ok"],
                    "problems": len(doc["integrity"]["problems"]),
                    **(
                        {
                            "scope": doc["scope"]["code"],
                            "scopeOk": doc["scope"]["ok"],
                            "scopeEntries": len(doc["scope"]["entries"]),
                        }
                        if a.scope
                        else {}
                    ),
                }
            )
        ok = doc["integrity"]["ok"] and (not a.scope or doc["scope"]["ok"])
        return 0 if ok else 1
    rep = audit(led.store, progress=progress, log_key=led.published_log_key, projections=not a.log_only)
    if tty:
        sys.stderr.write("\n")
    # The report is JSON on stdout, as every command's answer; people read stderr.
    out(rep.as_dict())
    if not a.json:
        for p in rep.problems:
            print(p.line(), file=sys.stderr)
        status = "sound" if rep.ok else f"{len(rep.problems)} problem(s)"
        if not rep.projections:
            status += " (the log only: projections not checked; `suyuan audit` checks them)"
        print(
            f"audit: {rep.entries} entries, {rep.signatures} signatures, "
            f"{rep.checkpoints} checkpoints, {rep.nodes} tree nodes: {status}",
            file=sys.stderr,
        )
    return 0 if rep.ok else 1


def add_reindex(sub: Commands) -> None:
    sub.add_parser("reindex", help="rebuild every projection from entries").set_defaults(fn=cmd_reindex)


def add_audit(sub: Commands) -> None:
    s = sub.add_parser("audit", help="check the whole ledger; --report writes the HTML report")
    s.add_argument(
        "--json",
        action="store_true",
        help="the JSON report on stdout and nothing on stderr (with --report or "
        "--scope: the whole report's data); without it, a summary on stderr too",
    )
    s.add_argument(
        "--report",
        metavar="FILE",
        help="write the audit report (integrity, findings, statistics, credit) as HTML",
    )
    s.add_argument(
        "--scope", metavar="CODE", help="also audit one product chain: its entries with verified proofs"
    )
    s.add_argument(
        "--log-only",
        action="store_true",
        help="check the log alone (entries, chain, signatures, registry key rules, tree, "
        "checkpoints), not the projections the page and API read against a rebuild: "
        "faster; the full audit is what vouches for what people are shown",
    )
    s.set_defaults(fn=cmd_audit)
