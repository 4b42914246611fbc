"""For regulators: `findings`, the positive `list`, retail-import `tax`, `credit`, `stats`."""

from __future__ import annotations

import argparse

from ledger.compliance.tax import as_json, tax_for
from ledger.core.errors import MalformedInput
from ledger.core.statements import sign_one
from ledger.log.home import Home
from ledger.queries.findings import findings_summary, list_findings
from tools.cli.common import Commands, open_ledger, out, read_json_file

LIST_CHUNK = 500  # HS codes per list.update statement


def cmd_findings(a: argparse.Namespace, home: Home) -> int:
    store = open_ledger(home).store
    if a.summary:
        out(findings_summary(store))
        return 0
    for f in list_findings(
        store, rule=a.rule, party=a.party, code=a.code, severity=a.severity, since_seq=a.since, limit=a.limit
    ):
        out(f.as_dict())
    return 0


def cmd_list_load(a: argparse.Namespace, home: Home) -> int:
    """Sign a positive-list file as list.update statements of a regulator and append them."""
    doc = read_json_file(a.file)
    entries = doc.get("entries") if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or doc.get("list") != "positive" or not isinstance(entries, list):
        raise MalformedInput(
            f"{a.file} must be a positive-list file like "
            'schemas/positive-list.sample.json: list "positive" and entries'
        )
    codes = [e.get("hsCode") if isinstance(e, dict) else e for e in entries]
    if not codes or not all(isinstance(c, str) for c in codes):
        raise MalformedInput(f"every entry of {a.file} needs an hsCode string")
    reason = doc.get("reason") if isinstance(doc.get("reason"), str) else a.file
    key = home.keys.load(a.key)
    envs = [
        sign_one(
            kind="list.update",
            signer=a.signer,
            key=key,
            body={
                "list": "positive",
                "action": a.action,
                "hsCodes": codes[i : i + LIST_CHUNK],
                "reason": reason,
            },
        )
        for i in range(0, len(codes), LIST_CHUNK)
    ]
    for r in open_ledger(home).append_batch(envs):
        out(r.as_dict())
    return 0


def cmd_tax(a: argparse.Namespace, home: Home) -> int:
    order = read_json_file(a.order)
    if not isinstance(order, dict):
        raise MalformedInput(f"{a.order} must hold an order event body or its cbec:orderInfo")
    try:
        out(as_json(tax_for(order, hs_code=a.hs_code)))
    except ValueError as e:
        raise MalformedInput(f"{a.order}: {e}") from None
    return 0


def cmd_credit(a: argparse.Namespace, home: Home) -> int:
    # ledger.queries.credit and ledger.queries.stats (about 6 ms to import together) load for their
    # commands alone.
    from ledger.queries.credit import credit, credit_table

    led = open_ledger(home)
    if a.all == (a.party is not None):
        raise MalformedInput("give one party id, or --all for the whole credit table")
    out(credit_table(led.store) if a.all else credit(led.store, a.party))
    return 0


def cmd_stats(a: argparse.Namespace, home: Home) -> int:
    from ledger.queries.stats import statistics

    out(statistics(open_ledger(home).store))
    return 0


def add_credit(sub: Commands) -> None:
    s = sub.add_parser("credit", help="a party's credit score with every item explained")
    s.add_argument("party", nargs="?", help="party id (uscc:… or gln:…)")
    s.add_argument("--all", action="store_true", help="the credit table of every party")
    s.set_defaults(fn=cmd_credit)


def add_stats(sub: Commands) -> None:
    sub.add_parser("stats", help="statistics: stages by month, trade, origins, clearance time").set_defaults(
        fn=cmd_stats
    )


def add_findings(sub: Commands) -> None:
    s = sub.add_parser("findings", help="compliance findings for regulators, as JSON lines")
    s.add_argument("--rule", help="a rule code, e.g. three_docs.mismatch")
    s.add_argument("--party", help="a party involved")
    s.add_argument("--code", help="a product code (Digital Link, EPC URN or GTIN)")
    s.add_argument("--severity", choices=("high", "medium", "low"))
    s.add_argument("--since", type=int, metavar="SEQ", help="raised at this seq or later")
    s.add_argument("--limit", type=int)
    s.add_argument("--summary", action="store_true", help="counts by rule, severity and party")
    s.set_defaults(fn=cmd_findings)


def add_list(sub: Commands) -> None:
    lists = sub.add_parser("list", help="a regulator's lists")
    lsub = lists.add_subparsers(dest="list_command", required=True)
    s = lsub.add_parser("load", help="sign a positive-list file as list.update statements")
    s.add_argument("file", help="e.g. schemas/positive-list.sample.json")
    s.add_argument("--key", required=True, help="the regulator's key name in SUYUAN_HOME")
    s.add_argument("--signer", required=True, help="the regulator's party id")
    s.add_argument("--action", choices=("add", "remove"), default="add")
    s.set_defaults(fn=cmd_list_load)


def add_tax(sub: Commands) -> None:
    s = sub.add_parser("tax", help="the tax of a retail-import order, broken down")
    s.add_argument("order", help="an order event body (cbec:orderInfo) or the orderInfo alone")
    s.add_argument("--hs-code", help="the goods' HS code, if the order does not carry one")
    s.set_defaults(fn=cmd_tax)
