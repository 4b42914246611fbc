"""Identifier rules at the door: ``suyuan epcis import`` refuses an EPCIS document that names a
malformed Digital Link, saying which event and field, and appends nothing; the Digital Link
forms the grammar allows (AI 7040 after a party, a location or an asset) import, and their
events export under the canonical link, whichever spelling the document used."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.support import World, new_uscc

REPO = Path(__file__).resolve().parent.parent
GS1 = "https://id.gs1.org"
ITEM = f"{GS1}/01/09506000134352/21/1"

MALFORMED = [
    f"{GS1}/01/09506000134353/21/x/y",  # wrong check digit, odd number of segments
    f"{GS1}/01/09506000134352/21",  # a qualifier without its value
    f"{GS1}/01/09506000134352/10/L/21/",
    f"{GS1}/01/09506000134352/10/L//",
    f"{GS1}/01/09506000134352/21/S/235/X",  # alternatives that exclude each other
    f"{GS1}/417/9520123456788/7040/1AB.",  # a bad importer index
]


def document(events: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2026-11-27T05:05:00Z",
        "epcisBody": {"eventList": events},
    }


def commissioning(epc: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "ObjectEvent",
        "eventTime": "2026-11-27T13:05:00+08:00",
        "eventTimeZoneOffset": "+08:00",
        "action": "ADD",
        "bizStep": "commissioning",
        "disposition": "active",
        "epcList": [epc],
        **extra,
    }


def cli(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"SUYUAN_DB": world.url, "SUYUAN_HOME": str(world.home.path), "PATH": os.environ.get("PATH", "")}
    return subprocess.run(
        [sys.executable, "-m", "tools.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


# Each malformed link, in one of the fields an identifier can be in.
PLACES = [
    ("epcList", lambda link: {"epcList": [ITEM, link]}),
    ("readPoint id", lambda link: {"readPoint": {"id": link}}),
    ("bizLocation id", lambda link: {"bizLocation": {"id": link}}),
    ("sourceList", lambda link: {"sourceList": [{"type": "owning_party", "source": link}]}),
    ("quantityList epcClass", lambda link: {"quantityList": [{"epcClass": link, "quantity": 1}]}),
    ("destinationList", lambda link: {"destinationList": [{"type": "owning_party", "destination": link}]}),
]


def test_import_refuses_each_malformed_link_naming_event_and_field(world: World, tmp_path: Path) -> None:
    party = new_uscc()
    world.ledger.append(world.registration(party, world.home.keys.create("importer"), ["producer"]))
    size = world.ledger.size()
    jobs = []
    for n, (link, (field, place)) in enumerate(zip(MALFORMED, PLACES, strict=True)):
        second = commissioning(ITEM.replace("/21/1", "/21/2"))
        second.update(place(link))
        path = tmp_path / f"doc{n}.jsonld"
        path.write_text(json.dumps(document([commissioning(ITEM), second])))
        jobs.append((link, field, path))
    with ThreadPoolExecutor(3) as pool:
        runs = list(
            pool.map(
                lambda job: cli(
                    world, "epcis", "import", str(job[2]), "--signer", party, "--key", "importer"
                ),
                jobs,
            )
        )
    for (link, field, _), run in zip(jobs, runs, strict=True):
        assert run.returncode == 2 and run.stdout == "", run.stderr
        assert run.stderr.startswith("error [batch_rejected]: 1 event(s) refused, nothing appended\n"), (
            run.stderr
        )
        assert f"  event 1: [bad_identifier] {field}: " in run.stderr, run.stderr
        assert link in run.stderr, run.stderr
    assert world.ledger.size() == size


def test_valid_7040_links_import_and_export_under_the_canonical_link(world: World, tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        proc = cli(world, *args)
        assert proc.returncode == 0, proc.stderr
        return proc

    party = new_uscc()
    world.ledger.append(world.registration(party, world.home.keys.create("importer"), ["producer"]))
    # Spellings a scanner or another system may write: any domain, a path prefix, a query.
    asset = "https://example.com/assets/8004/9520123456788/7040/1ABC?linkType=gs1:pip"
    place = "https://example.com/414/9520123456788/7040/1AB-"
    owner = "https://id.gs1.org/417/9520123456788/7040/1ABC"
    event = commissioning(
        asset, bizLocation={"id": place}, sourceList=[{"type": "owning_party", "source": owner}]
    )
    path = tmp_path / "doc.jsonld"
    path.write_text(json.dumps(document([event])))
    receipts = [
        json.loads(line)
        for line in run(
            "epcis", "import", str(path), "--signer", party, "--key", "importer"
        ).stdout.splitlines()
    ]
    # One receipt per event, then the document record's (`{"document": receipt}`).
    assert len(receipts) == 2 and "document" in receipts[-1]
    for code in (f"{GS1}/8004/9520123456788/7040/1ABC", asset):
        exported = json.loads(run("epcis", "export", code).stdout)
        # The event comes back exactly as it was signed, found under the canonical key.
        assert exported["epcisBody"]["eventList"] == [event]
