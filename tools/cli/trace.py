"""An item's journey: `trace`, `upstream`, `downstream`, `recall`."""

from __future__ import annotations

import argparse

from ledger.log.home import Home
from ledger.queries import trace
from tools.cli.common import Commands, journey_or_refuse, open_ledger, out


def cmd_trace(a: argparse.Namespace, home: Home) -> int:
    store = open_ledger(home).store
    if a.command == "trace":
        out(journey_or_refuse(store, a.code, allow_empty=a.allow_empty))
    elif a.command == "upstream":
        out(trace.upstream(store, a.code, a.depth))
    elif a.command == "downstream":
        out(trace.downstream(store, a.code, a.depth))
    else:
        out(trace.recall_impact(store, a.code))
    return 0


def add_trace(sub: Commands) -> None:
    for name, text in (
        ("trace", "an item's journey, through its containers"),
        ("upstream", "what it was made from or packed in"),
        ("downstream", "what it became, contained, where it went"),
        ("recall", "everything downstream, with owner and place"),
    ):
        s = sub.add_parser(name, help=text)
        s.add_argument("code", help="GS1 Digital Link (any domain), EPC URN or GTIN")
        if name in ("upstream", "downstream"):
            s.add_argument("--depth", type=int, default=10, help="1..50 (default 10)")
        if name == "trace":
            s.add_argument(
                "--allow-empty",
                action="store_true",
                help="print an empty journey for a code the ledger never saw (default: error [not_found])",
            )
        s.set_defaults(fn=cmd_trace)
