"""What the consumer side prints and sees: `qr` codes and label sheets, and `scans`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ledger.core.errors import MalformedInput
from ledger.log.home import Home
from tools.cli.common import Commands, open_ledger, out


def cmd_qr(a: argparse.Namespace, home: Home) -> int:
    # The QR encoder and the PDF maker (about 40 ms and 400 ms to import) load for `qr` alone.
    from api.qr import digital_link_url, printable_base_url, qr_image

    # The resolver base printed into codes: said on purpose, and public (api.qr).
    base = printable_base_url(
        a.base_url or os.environ.get("SUYUAN_BASE_URL"), where="SUYUAN_BASE_URL or --base-url"
    )
    if a.lot is not None or a.sheet is not None:
        if a.code is not None or a.lot is None or a.sheet is None:
            raise MalformedInput(
                "a label sheet takes --lot CODE --sheet FILE.pdf and no other code", code="usage"
            )
        if a.out is not None or a.format is not None:
            raise MalformedInput(
                "--out and --format are for one code; a sheet is always a PDF written to --sheet",
                code="usage",
            )
        from api.labels import lot_label_sheet

        tty = sys.stderr.isatty()

        def progress(done: int, total: int) -> None:
            if tty and total >= 200:
                sys.stderr.write(f"\rqr: {done:,}/{total:,} labels")
                if done == total:
                    sys.stderr.write("\n")

        pdf, info = lot_label_sheet(open_ledger(home).store, base, a.lot, progress=progress)
        Path(a.sheet).write_bytes(pdf)
        out({"sheet": a.sheet, **info, "bytes": len(pdf)})
        return 0
    if a.code is None:
        raise MalformedInput("give a product code, or --lot CODE --sheet FILE.pdf", code="usage")
    fmt = a.format or "png"
    text = digital_link_url(base, a.code)
    image = qr_image(text, fmt)
    if a.out is not None:
        Path(a.out).write_bytes(image)
        out({"file": a.out, "format": fmt, "text": text, "bytes": len(image)})
        return 0
    if sys.stdout.isatty():
        raise MalformedInput(
            f"a {fmt.upper()} image is not for a terminal; give --out FILE or redirect stdout to a file",
            code="usage",
        )
    sys.stdout.buffer.write(image)
    sys.stdout.flush()
    return 0


def cmd_scans(a: argparse.Namespace, home: Home) -> int:
    # ledger.queries.scans (with its store module, about 7 ms to import) loads for `scans` and
    # `serve` alone.
    from ledger.queries import scans

    store = open_ledger(home).store
    if a.prune:
        out({"deleted": scans.prune(store), "retentionDays": scans.retention_days()})
    elif a.suspicious:
        out({"suspicious": scans.suspicious(store)})
    elif a.code:
        out(scans.scans_for(store, a.code))
    else:
        raise MalformedInput("give a CODE, --suspicious or --prune")
    return 0


def add_scans(sub: Commands) -> None:
    s = sub.add_parser("scans", help="consumer scans of an item and its counterfeit signal")
    s.add_argument("code", nargs="?", help="GS1 Digital Link (any domain), EPC URN or GTIN")
    s.add_argument(
        "--suspicious", action="store_true", help="every code whose scans raise the counterfeit signal"
    )
    s.add_argument(
        "--prune",
        action="store_true",
        help="delete scans older than SUYUAN_SCAN_RETENTION_DAYS (default 400)",
    )
    s.set_defaults(fn=cmd_scans)


def add_qr(sub: Commands) -> None:
    s = sub.add_parser("qr", help="QR trace codes: one image, or a PDF label sheet of a lot")
    s.add_argument("code", nargs="?", help="GS1 Digital Link (any domain), EPC URN or GTIN")
    s.add_argument("--format", choices=("png", "svg"), help="image format (default png)")
    s.add_argument(
        "--out", metavar="FILE", help="write the image here (default: stdout, when it is not a terminal)"
    )
    s.add_argument("--lot", metavar="CODE", help="a lot: one label per item of it")
    s.add_argument("--sheet", metavar="FILE", help="the A4 PDF label sheet to write")
    s.add_argument(
        "--base-url",
        help="public resolver base in the codes (default "
        "SUYUAN_BASE_URL; one of them is required, and no loopback or private address)",
    )
    s.set_defaults(fn=cmd_qr)
