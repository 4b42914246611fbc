"""`ceb`: China Customs CBEC messages in."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ledger.core.errors import LedgerError, MalformedInput
from ledger.log.home import Home
from tools.cli.common import Commands, open_ledger, out, read_bytes


def _matching_key(home: Home, path: str | None) -> bytes:
    """The zone's matching key (buyerIdHash, consigneeHash): {"hmacKey": "<64 hex>"}."""
    file = Path(path) if path else home.path / "zone.key"
    try:
        doc = json.loads(file.read_text())
        key = bytes.fromhex(doc["hmacKey"])
    except FileNotFoundError:
        raise LedgerError(
            f"no matching key at {file}: the zone's HMAC key, which platforms, "
            'payment institutions and customs share, as {"hmacKey": "<64 hex>"} '
            "(--matching-key FILE names another file)",
            code="no_matching_key",
        ) from None
    except (ValueError, KeyError, TypeError):
        raise LedgerError(
            f'{file} must hold {{"hmacKey": "<64 hex characters>"}}', code="no_matching_key"
        ) from None
    if len(key) < 16:
        raise LedgerError(
            f"the matching key in {file} is {len(key)} bytes; it needs at least 16", code="no_matching_key"
        )
    return key


def cmd_ceb_import(a: argparse.Namespace, home: Home) -> int:
    """Every file is read and checked first; then one batch per message, orders before
    payments, waybills, inventories and receipts. One JSON line per document."""
    # The customs message schemas (about 25 ms to import) load for `ceb import` alone.
    from ledger.epcis import ceb
    from ledger.log.ceb_import import import_message, import_order

    led = open_ledger(home)
    key = home.keys.load(a.key)
    matching = _matching_key(home, a.matching_key)
    for f in a.files:  # refuse a huge file before reading it into memory
        if Path(f).is_file() and Path(f).stat().st_size > ceb.MAX_MESSAGE_BYTES:
            raise MalformedInput(
                f"{f} is {Path(f).stat().st_size} bytes; a customs message may "
                f"have at most {ceb.MAX_MESSAGE_BYTES} (32 MiB)",
                code="too_large",
            )
    messages = [ceb.read_message(read_bytes(f), source=f) for f in a.files]
    for msg in import_order(messages):
        for r in import_message(led, msg, key=key, matching_key=matching, signer=a.signer):
            out({"file": msg.source, **r.as_dict()})
    return 0


def add_ceb(sub: Commands) -> None:
    ceb_p = sub.add_parser(
        "ceb", help="China Customs CBEC messages (CEB311/411/511/621 and receipts 312/412/512/622)"
    )
    csub = ceb_p.add_subparsers(dest="ceb_command", required=True)
    s = csub.add_parser(
        "import", help="sign one statement per document; one batch per message, one JSON line per document"
    )
    s.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="customs messages: bare, or base64 in a dxp:DxpMsg; UTF-8 or GB2312/GBK",
    )
    s.add_argument("--key", required=True, help="name of the signing party's key in SUYUAN_HOME")
    s.add_argument("--signer", help="the party id that signs (default: the key's party)")
    s.add_argument(
        "--matching-key",
        metavar="FILE",
        help='the zone\'s matching key, {"hmacKey": hex} (default SUYUAN_HOME/zone.key)',
    )
    s.set_defaults(fn=cmd_ceb_import)
