"""What a verifier needs: `checkpoint`, `log-key`, `prove`, `bundle`, `verify`, `monitor`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ledger.core.errors import LedgerError, MalformedInput
from ledger.log.home import Home
from ledger.log.sequencer import Ledger
from tools.cli.common import Commands, journey_or_refuse, open_ledger, out, read_json_file
from tools.cli.tiles import tiles_fetch

UNPINNED = (
    "no --log-key given: the bundle was checked only against the key it carries, "
    "which proves nothing about which ledger wrote it; pin the ledger's published key "
    "with --log-key (suyuan log-key), or give --trust-bundle-key to accept a "
    "self-consistent bundle"
)


def cmd_checkpoint(a: argparse.Namespace, home: Home) -> int:
    sys.stdout.write(open_ledger(home).latest_checkpoint())
    return 0


def cmd_log_key(a: argparse.Namespace, home: Home) -> int:
    # The pinned key (the published SUYUAN_LOG_KEY, else the genesis entry's): the one
    # verifiers must pin; a genesis that names another is a warning.
    led = open_ledger(home)
    pin = led.pinned_key()
    sys.stdout.write(led.log_verifier().vkey() + "\n")
    if pin.problem:
        print(f"warning: {pin.problem}", file=sys.stderr)
    return 0


def cmd_prove(a: argparse.Namespace, home: Home) -> int:
    led = open_ledger(home)
    if a.what == "inclusion":
        out(led.inclusion_proof(a.seq, a.size).as_dict())
    else:
        out(led.consistency_proof(a.first, a.second).as_dict())
    return 0


def _bundle_seqs(led: Ledger, items: Sequence[str]) -> list[int]:
    """Seqs to bundle: a bare decimal number is a seq; anything else is a product code
    (a Digital Link or EPC URN), standing for every entry of its journey."""
    seqs: list[int] = []
    for item in items:
        if item.isascii() and item.isdigit():
            seqs.append(int(item))
            continue
        seqs += [step["seq"] for step in journey_or_refuse(led.store, item, allow_empty=False)["journey"]]
    return seqs


def cmd_bundle(a: argparse.Namespace, home: Home) -> int:
    # ledger.log.bundle, .monitor and .tiles_export (about 10 ms to import together) load only
    # for the commands that use them.
    from ledger.log.bundle import make_bundle

    led = open_ledger(home)
    doc = make_bundle(led, _bundle_seqs(led, a.items))
    Path(a.out).write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n")
    out({"out": a.out, "entries": len(doc["entries"]), "requested": doc["requested"]})
    return 0


def cmd_verify(a: argparse.Namespace, home: Home) -> int:
    from ledger.log.bundle import bundle_from_tiles, verify_bundle

    log_key = a.log_key or home.published_log_key()
    if (a.file is None) == (a.tiles is None) or (a.tiles is None) != (a.seq is None):
        raise MalformedInput("give a bundle FILE, or --tiles URL with --seq N…", code="usage")
    if a.tiles is not None:
        if not log_key:
            raise MalformedInput(
                "--tiles needs --log-key (or SUYUAN_LOG_KEY): a mirror cannot vouch for the log's key",
                code="usage",
            )
        doc = bundle_from_tiles(tiles_fetch(a.tiles), a.seq)
    else:
        doc = read_json_file(a.file)
    res = verify_bundle(doc, log_key=log_key, witness_keys=a.witness_key or (), quorum=a.quorum)
    doc = res.as_dict()
    if not res.trusted_key and not a.trust_bundle_key:
        # The key inside the bundle is whatever its maker put there: checked against it, a
        # forged bundle verifies as well as a real one.
        doc["ok"] = False
        doc["problems"] = [*doc["problems"], UNPINNED]
    out(doc)
    if not res.trusted_key and a.trust_bundle_key:
        print(
            "warning: --trust-bundle-key: checked against the key inside the bundle, which "
            "proves only that the bundle is self-consistent",
            file=sys.stderr,
        )
    for p in doc["problems"]:
        print(p, file=sys.stderr)
    return 0 if doc["ok"] else 1


def cmd_monitor(a: argparse.Namespace, home: Home) -> int:
    # httpx (about 70 ms to import) loads only for the commands that go over the network.
    import httpx

    from ledger.log.monitor import observe, observe_tiles

    if (a.url is None) == (a.tiles is None):
        raise MalformedInput("give the ledger's URL, or --tiles URL", code="usage")
    if a.tiles is not None:
        if not a.log_key:
            raise MalformedInput(
                "--tiles needs --log-key: a mirror cannot vouch for the log's key", code="usage"
            )
        tile_fetch = tiles_fetch(a.tiles)
    elif a.witness_key:
        raise MalformedInput(
            "--witness-key is for --tiles; the ledger's own API is followed by size and proof alone",
            code="usage",
        )
    base = (a.url or a.tiles).rstrip("/")

    def fetch(path: str) -> str:
        r = httpx.get(base + path, timeout=10)
        r.raise_for_status()
        return r.text

    rounds = 0
    while True:
        try:
            if a.tiles is not None:
                obs = observe_tiles(
                    tile_fetch,
                    Path(a.state),
                    log_key=a.log_key,
                    witness_keys=a.witness_key or (),
                    quorum=a.quorum,
                )
            else:
                obs = observe(fetch, Path(a.state), log_key=a.log_key)
        except httpx.HTTPError as e:
            raise LedgerError(f"cannot reach {base}: {e}", code="unreachable") from None
        out(obs.as_dict())
        if not obs.ok:
            print(f"ALARM: {obs.alarm}", file=sys.stderr)
            return 1
        rounds += 1
        if a.every is None or (a.rounds and rounds >= a.rounds):
            return 0
        time.sleep(a.every)


def add_checkpoint(sub: Commands) -> None:
    sub.add_parser("checkpoint", help="the latest signed checkpoint").set_defaults(fn=cmd_checkpoint)


def add_log_key(sub: Commands) -> None:
    sub.add_parser("log-key", help="the checkpoint verifier key").set_defaults(fn=cmd_log_key)


def add_prove(sub: Commands) -> None:
    prove = sub.add_parser("prove", help="inclusion or consistency proofs")
    prsub = prove.add_subparsers(dest="what", required=True)
    s = prsub.add_parser("inclusion")
    s.add_argument("seq", type=int)
    s.add_argument("--size", type=int)
    s.set_defaults(fn=cmd_prove)
    s = prsub.add_parser("consistency")
    s.add_argument("first", type=int)
    s.add_argument("second", type=int)
    s.set_defaults(fn=cmd_prove)


def add_bundle(sub: Commands) -> None:
    s = sub.add_parser("bundle", help="an offline trace bundle of entries")
    s.add_argument(
        "items",
        nargs="+",
        metavar="SEQ|CODE",
        help="a seq, or a product code (Digital Link or EPC URN): every entry of its journey",
    )
    s.add_argument("--out", required=True)
    s.set_defaults(fn=cmd_bundle)


def add_verify(sub: Commands) -> None:
    s = sub.add_parser("verify", help="check a trace bundle offline, or entries from tiles")
    s.add_argument("file", nargs="?")
    s.add_argument(
        "--tiles",
        metavar="URL",
        help="build the bundle from a tlog-tiles URL (a mirror, a CDN) or directory; "
        "needs --log-key and --seq",
    )
    s.add_argument("--seq", type=int, nargs="+", help="with --tiles: the entries to verify")
    s.add_argument(
        "--log-key", help="the ledger's published verifier key (suyuan log-key; default SUYUAN_LOG_KEY)"
    )
    s.add_argument(
        "--trust-bundle-key",
        action="store_true",
        help="without --log-key, accept the key inside the bundle (ok then means only self-consistent)",
    )
    s.add_argument(
        "--witness-key", action="append", help="a witness's cosigner key to count (repeat for several)"
    )
    s.add_argument(
        "--quorum", type=int, default=0, help="how many of the given witnesses must have cosigned (default 0)"
    )
    s.set_defaults(fn=cmd_verify)


def add_monitor(sub: Commands) -> None:
    s = sub.add_parser("monitor", help="follow a ledger's checkpoints; alarm on fork or rollback")
    s.add_argument("url", nargs="?", help="the ledger's base URL, e.g. http://127.0.0.1:8000")
    s.add_argument(
        "--tiles",
        metavar="URL",
        help="follow a tlog-tiles URL (a mirror, a CDN) or directory instead: proofs "
        "from tiles; needs --log-key",
    )
    s.add_argument("--state", required=True, help="file keeping the pinned key and last size")
    s.add_argument("--log-key", help="pin this verifier key (default: trust on first use)")
    s.add_argument(
        "--witness-key",
        action="append",
        help="with --tiles: a witness's cosigner key to count (repeat for several)",
    )
    s.add_argument(
        "--quorum",
        type=int,
        default=0,
        help="with --tiles: follow only checkpoints this many of them cosigned",
    )
    s.add_argument("--every", type=float, help="poll every N seconds instead of once")
    s.add_argument("--rounds", type=int, default=0, help=argparse.SUPPRESS)
    s.set_defaults(fn=cmd_monitor)
