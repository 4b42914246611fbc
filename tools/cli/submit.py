"""Statements in and out: `sign`, `submit`, `entry`, `shred`."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator
from typing import Any

from ledger.core import canonical
from ledger.core.errors import MalformedInput
from ledger.core.private import Viewer, make_blob, unwrap_envelopes
from ledger.core.statements import KINDS, sign_one
from ledger.log.home import Home
from ledger.log.sequencer import Ledger
from ledger.log.witnesses import gather, http_post
from tools.cli.common import (
    EXIT_STOPPED,
    Commands,
    open_ledger,
    out,
    read_bytes,
    read_json_file,
    silence_stdout,
)
from tools.cli.witness import witnessing_of

SUBMIT_BATCH = 1000


def cmd_sign(a: argparse.Namespace, home: Home) -> int:
    body = read_json_file(a.body)
    if not isinstance(body, dict):
        raise MalformedInput(f"{a.body} must hold one JSON object, the statement body")
    key = home.keys.load(a.key)
    if a.private:
        data = read_json_file(a.private)
        if not isinstance(data, dict):
            raise MalformedInput(f"{a.private} must hold one JSON object, the private data")
        commitment, blob = make_blob(data)
        env = sign_one(kind=a.kind, signer=a.signer, key=key, body=body, private=commitment)
        # The blob travels beside the envelope, never inside the signed statement.
        out({"envelope": env, "private": blob})
        return 0
    out(sign_one(kind=a.kind, signer=a.signer, key=key, body=body))
    return 0


def envelopes_in(raw: bytes, name: str) -> Iterator[Any]:
    """One envelope, a JSON array of them, or JSON Lines."""
    text = raw.lstrip()
    if text.startswith(b"["):
        doc = canonical.parse_json(raw)
        if not isinstance(doc, list):
            raise MalformedInput(f"{name} must hold an envelope, an array or JSON Lines")
        yield from doc
        return
    try:
        yield canonical.parse_json(raw)
        return
    except MalformedInput:
        if raw.count(b"\n") < 1:
            raise
    for n, line in enumerate(raw.splitlines(), 1):
        if line.strip():
            try:
                yield canonical.parse_json(line)
            except MalformedInput as e:
                raise MalformedInput(f"{name} line {n}: {e.message}") from None


def _batches(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def cmd_submit(a: argparse.Namespace, home: Home) -> int:
    led = open_ledger(home)
    if a.files.count("-") > 1:
        raise MalformedInput("name stdin (-) once; it can be read only once")
    landed = 0
    try:
        for path in a.files:
            raw = sys.stdin.buffer.read() if path == "-" else read_bytes(path)
            # Parse the whole file first: a malformed line refuses the file before anything lands.
            items = list(envelopes_in(raw, "stdin" if path == "-" else path))
            for batch in _batches(iter(items), a.batch):
                # Envelopes as `suyuan sign --private` writes them carry their blob beside them.
                envs, private = unwrap_envelopes(batch)
                receipts = led.append_batch(envs, private=private)
                landed += len(batch)
                for r in receipts:
                    sys.stdout.write(json.dumps(r.as_dict(), ensure_ascii=False) + "\n")
                sys.stdout.flush()
                if sys.stderr.isatty() and len(items) > a.batch:
                    sys.stderr.write(f"\rsubmitted {landed:,} envelopes")
    except BrokenPipeError:
        # `suyuan submit … | head -1`: nobody reads the receipts any more, so stop here;
        # what landed is witnessed as usual.
        silence_stdout()
        print(
            f"stopped: stdout was closed after {landed:,} envelopes had landed (the ledger's "
            f"size is now {led.size():,}); the rest was not submitted",
            file=sys.stderr,
        )
        _witness_landed(home, led, landed)
        return EXIT_STOPPED
    except Exception:
        # Refused or failed partway: the batches before this one have landed, and their
        # witnesses are asked all the same (what fails here must not hide the refusal).
        with contextlib.suppress(Exception):
            _witness_landed(home, led, landed)
        raise
    if sys.stderr.isatty() and landed > a.batch:
        sys.stderr.write("\n")
    _witness_landed(home, led, landed)
    return 0


def _witness_landed(home: Home, led: Ledger, landed: int) -> None:
    witnessing = witnessing_of(home)
    if witnessing is None or not landed:
        return
    res = gather(led, witnessing, http_post)
    print(
        f"witnessed: {len(res.cosigned)} of {len(witnessing.witnesses)} cosigned "
        f"size {res.size} (quorum {res.quorum})" + "".join(f"; {k}: {v}" for k, v in res.errors.items()),
        file=sys.stderr,
    )


def cmd_entry(a: argparse.Namespace, home: Home) -> int:
    led = open_ledger(home)
    doc = led.entry(a.seq).as_dict()
    viewer = Viewer.parse(a.viewer)
    if viewer.kind != "public" and doc["decoded"]["envelope"]["statement"].get("private"):
        doc["privateData"] = led.private_data(a.seq, viewer)
    out(doc)
    return 0


def cmd_shred(a: argparse.Namespace, home: Home) -> int:
    out(open_ledger(home).shred(a.commitment))
    return 0


def add_sign(sub: Commands) -> None:
    s = sub.add_parser("sign", help="sign a statement body; prints the envelope")
    s.add_argument("--key", required=True)
    s.add_argument("--signer", required=True)
    s.add_argument("--kind", default="event", choices=sorted(KINDS - {"genesis"}))
    s.add_argument("body", help="JSON file with the body, or - for stdin")
    s.add_argument(
        "--private", metavar="FILE", help="JSON object kept off the chain; the statement commits to it"
    )
    s.set_defaults(fn=cmd_sign)


def add_submit(sub: Commands) -> None:
    s = sub.add_parser("submit", help="append envelopes; one receipt per line")
    s.add_argument("files", nargs="+")
    s.add_argument("--batch", type=int, default=SUBMIT_BATCH, help=argparse.SUPPRESS)
    s.set_defaults(fn=cmd_submit)


def add_entry(sub: Commands) -> None:
    s = sub.add_parser("entry", help="one entry, exact bytes and decoded")
    s.add_argument("seq", type=int)
    s.add_argument(
        "--viewer",
        default="public",
        help="public (default), regulator, or party:<id>: who may see private data",
    )
    s.set_defaults(fn=cmd_entry)


def add_shred(sub: Commands) -> None:
    s = sub.add_parser("shred", help="erase a private blob (crypto-shredding)")
    s.add_argument("commitment")
    s.set_defaults(fn=cmd_shred)
