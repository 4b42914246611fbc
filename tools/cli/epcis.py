"""`epcis`: EPCIS 2.0 documents in (JSON-LD or XML) and out."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ledger.core import canonical
from ledger.core.errors import MalformedInput
from ledger.log.home import Home
from tools.cli.common import Commands, open_ledger, out, read_bytes


def cmd_epcis(a: argparse.Namespace, home: Home) -> int:
    # The EPCIS documents and their XML (lxml): about 16 ms to import, for `epcis` alone.
    from ledger.queries import documents as epcis

    led = open_ledger(home)
    if a.epcis_command == "import":
        from ledger.epcis import xml as epcis_xml

        raw = sys.stdin.buffer.read() if a.file == "-" else read_bytes(a.file)
        name = "<stdin>" if a.file == "-" else a.file
        if raw.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
            document, media = epcis_xml.parse(raw, source=name), "application/xml"
        else:
            try:
                document, media = canonical.parse_json(raw), "application/ld+json"
            except MalformedInput as e:
                raise MalformedInput(f"{name}: {e.message}", code=e.code) from None
        done = epcis.import_epcis(
            led, document, signer=a.signer, key=home.keys.load(a.key), source=name, media_type=media
        )
        for r in done.events:
            out(r.as_dict())
        for r in done.masterdata:
            out({"masterdata": r.as_dict()})
        out({"document": done.document.as_dict()})
        return 0
    direction: epcis.Direction = "up" if a.up else "down" if a.down else "journey"
    if a.format == "xml":
        data = epcis.export_xml(led.store, a.code, direction=direction)
        if a.out:
            Path(a.out).write_bytes(data)
            out({"out": a.out, "format": "xml"})
        else:
            sys.stdout.buffer.write(data)
        return 0
    doc = epcis.export_document(led.store, a.code, direction=direction)
    if a.out:
        Path(a.out).write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n")
        out({"out": a.out, "events": len(doc["epcisBody"]["eventList"])})
    else:
        out(doc)
    return 0


def add_epcis(sub: Commands) -> None:
    epcis_p = sub.add_parser("epcis", help="import or export EPCIS 2.0 documents")
    esub = epcis_p.add_subparsers(dest="epcis_command", required=True)
    s = esub.add_parser("import", help="sign each event as one party; one batch, one receipt per line")
    s.add_argument(
        "file", help="EPCISDocument or EPCISQueryDocument (JSON-LD, or EPCIS 2.0 / 1.2 XML), or - for stdin"
    )
    s.add_argument("--signer", required=True, help="the party id that signs every event")
    s.add_argument("--key", required=True, help="name of the party's key in SUYUAN_HOME")
    s.set_defaults(fn=cmd_epcis)
    s = esub.add_parser("export", help="an EPCISDocument of the signed events about a code")
    s.add_argument("code", help="GS1 Digital Link (any domain), EPC URN or GTIN")
    way = s.add_mutually_exclusive_group()
    way.add_argument("--up", action="store_true", help="with everything upstream of it")
    way.add_argument("--down", action="store_true", help="with everything downstream of it")
    s.add_argument("--out", metavar="FILE", help="write the document here instead of stdout")
    s.add_argument(
        "--format",
        choices=("json", "xml"),
        default="json",
        help="JSON-LD (default) or EPCIS 2.0 XML, checked against GS1's XSD",
    )
    s.set_defaults(fn=cmd_epcis)
