"""EPCIS XML: GS1's XML examples import as their JSON twins do, 1.2 documents too; an export
written as XML validates against GS1's XSD and reads back as the signed events; hostile XML
is refused with a clear error and nothing lands; errors name the document, line, event."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ledger.core.errors import MalformedInput
from ledger.epcis import xml as epcis_xml
from ledger.epcis.event_hash import event_hash
from ledger.queries.documents import export_document, export_xml, import_epcis
from tests.chain import ITEM, LOT_P, build
from tests.support import World, new_uscc
from tests.test_epcis import as_signed, jcs, roles_for

REPO = Path(__file__).resolve().parent.parent
STANDARD = REPO / "tests" / "fixtures" / "epcis-standard"
JSON_DIR = REPO / "tests" / "fixtures" / "epcis"
XML_EXAMPLES = sorted(p.name for p in STANDARD.glob("xml-*.xml") if "masterdata" not in p.name)
V961 = STANDARD / "xml-Example_9.6.1-ObjectEvent-2020_06_18a.xml"


def xml_doc(name: str) -> dict[str, Any]:
    return epcis_xml.parse((STANDARD / name).read_bytes(), source=name)


def json_doc(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((JSON_DIR / name).read_text(encoding="utf-8"))
    return doc


# --- twins ---------------------------------------------------------------------------------


def test_9_6_1_xml_gives_the_json_twins_bodies() -> None:
    """GS1's JSON twin adds eventIDs (hashes) and writes the first time with microseconds;
    apart from that the bodies are equal, and the event hashes are equal outright."""
    x, j = xml_doc(V961.name), json_doc("Example_9.6.1-ObjectEvent.jsonld")
    assert x["@context"] == j["@context"]
    for a, b in zip(x["epcisBody"]["eventList"], j["epcisBody"]["eventList"], strict=True):
        b = dict(b)
        del b["eventID"]
        if a["eventTime"] != b["eventTime"]:
            assert b["eventTime"] == "2005-04-03T20:33:31.116000-06:00"
            b["eventTime"] = a["eventTime"]
        assert a == b and jcs(a) == jcs(b)
    assert [event_hash(e) for e in x["epcisBody"]["eventList"]] == [
        event_hash(e) for e in j["epcisBody"]["eventList"]
    ]


def test_object_event_all_possible_fields_agrees_with_its_json_where_gs1_wrote_the_same() -> None:
    """GS1's two 'all possible fields' files are not exact twins (the JSON adds an eventID,
    an errorDeclaration, ilmd and extensions, and uses another action and time zone): every
    field both write the same way gives the same value."""
    a = xml_doc("xml-object_event_all_possible_fields.xml")["epcisBody"]["eventList"][0]
    b = json_doc("object_event_all_possible_fields.jsonld")["epcisBody"]["eventList"][0]
    same = (
        "type",
        "eventTimeZoneOffset",
        "epcList",
        "bizStep",
        "disposition",
        "readPoint",
        "bizLocation",
        "bizTransactionList",
        "quantityList",
        "sourceList",
        "destinationList",
        "persistentDisposition",
    )
    assert {k: a[k] for k in same} == {k: b[k] for k in same}
    assert set(a) - set(b) == set()
    # Sensor reports: same values and types (26.0 and 26 are one JSON number when signed).
    ra, rb = a["sensorElementList"][0]["sensorReport"][0], b["sensorElementList"][0]["sensorReport"][0]
    assert {k: ra[k] for k in ra if "time" not in k.lower()} == {
        k: rb[k] for k in rb if "time" not in k.lower()
    }
    assert jcs(ra["value"]) == jcs(rb["value"]) == b"26"


@pytest.mark.parametrize("name", XML_EXAMPLES)
def test_every_gs1_xml_example_validates_and_imports(world: World, name: str) -> None:
    doc = xml_doc(name)
    events = doc["epcisBody"]["eventList"]
    party, key = world.register(roles_for(events))
    done = import_epcis(world.ledger, doc, signer=party, key=key, source=name, media_type="application/xml")
    signed = [
        e.decoded()["envelope"]["statement"]["body"] for e in world.ledger.entries(r.seq for r in done.events)
    ]
    assert [jcs(e) for e in signed] == [jcs(e) for e in events]
    record = world.ledger.entry(done.document.seq).decoded()["envelope"]["statement"]["body"]
    assert record["format"] == "application/xml" and record["schemaVersion"] == "2.0"


def test_an_epcis_1_2_document_gives_the_same_events_as_its_2_0_form() -> None:
    v2 = V961.read_bytes()
    v1 = v2.replace(b"urn:epcglobal:epcis:xsd:2", b"urn:epcglobal:epcis:xsd:1").replace(
        b'schemaVersion="2.0"', b'schemaVersion="1.2"'
    )
    assert epcis_xml.parse(v1)["epcisBody"] == epcis_xml.parse(v2)["epcisBody"]
    # 1.2's extension wrappers (TransformationEvent in EventList/extension, sourceList and
    # sensor data in event extensions, eventID in baseExtension) are unwrapped.
    doc = b"""<?xml version="1.0"?>
<epcis:EPCISDocument xmlns:epcis="urn:epcglobal:epcis:xsd:1" schemaVersion="1.2"
    creationDate="2020-01-01T00:00:00Z"><EPCISBody><EventList>
  <ObjectEvent><eventTime>2020-03-04T11:00:30.000+01:00</eventTime>
    <eventTimeZoneOffset>+01:00</eventTimeZoneOffset>
    <baseExtension><eventID>urn:uuid:9b4d1c7e-1111-4a4a-9999-000000000001</eventID></baseExtension>
    <epcList><epc>urn:epc:id:sgtin:0614141.011111.987</epc></epcList><action>OBSERVE</action>
    <bizStep>urn:epcglobal:cbv:bizstep:departing</bizStep>
    <extension><sourceList><source type="urn:epcglobal:cbv:sdt:owning_party">
      urn:epc:id:pgln:4012345.00000</source></sourceList></extension>
  </ObjectEvent>
  <extension><TransformationEvent><eventTime>2020-03-04T12:00:00Z</eventTime>
    <eventTimeZoneOffset>+00:00</eventTimeZoneOffset>
    <inputEPCList><epc>urn:epc:id:sgtin:0614141.011111.987</epc></inputEPCList>
    <outputEPCList><epc>urn:epc:id:sgtin:0614141.011111.988</epc></outputEPCList>
  </TransformationEvent></extension>
</EventList></EPCISBody></epcis:EPCISDocument>"""
    events = epcis_xml.parse(doc, source="v12.xml")["epcisBody"]["eventList"]
    assert events == [
        {
            "type": "ObjectEvent",
            "eventTime": "2020-03-04T11:00:30.000+01:00",
            "eventTimeZoneOffset": "+01:00",
            "eventID": "urn:uuid:9b4d1c7e-1111-4a4a-9999-000000000001",
            "epcList": ["urn:epc:id:sgtin:0614141.011111.987"],
            "action": "OBSERVE",
            "bizStep": "departing",
            "sourceList": [{"type": "owning_party", "source": "urn:epc:id:pgln:4012345.00000"}],
        },
        {
            "type": "TransformationEvent",
            "eventTime": "2020-03-04T12:00:00Z",
            "eventTimeZoneOffset": "+00:00",
            "inputEPCList": ["urn:epc:id:sgtin:0614141.011111.987"],
            "outputEPCList": ["urn:epc:id:sgtin:0614141.011111.988"],
        },
    ]


def test_xml_document_header_is_kept_in_the_document_record(world: World) -> None:
    sbdh = "http://www.unece.org/cefact/namespaces/StandardBusinessDocumentHeader"
    text = V961.read_text().replace(
        "<EPCISBody>",
        f"""<EPCISHeader>
      <sbdh:StandardBusinessDocumentHeader xmlns:sbdh="{sbdh}">
        <sbdh:HeaderVersion>1.0</sbdh:HeaderVersion>
        <sbdh:Sender><sbdh:Identifier Authority="SGLN">
          urn:epc:id:sgln:0353579.00001.0</sbdh:Identifier></sbdh:Sender>
        <sbdh:Receiver><sbdh:Identifier Authority="SGLN">
          urn:epc:id:sgln:5012345.00001.0</sbdh:Identifier></sbdh:Receiver>
        <sbdh:DocumentIdentification><sbdh:Standard>EPCglobal</sbdh:Standard>
          <sbdh:TypeVersion>2.0</sbdh:TypeVersion><sbdh:InstanceIdentifier>1234567890</sbdh:InstanceIdentifier>
          <sbdh:Type>Events</sbdh:Type><sbdh:CreationDateAndTime>2005-07-11T11:30:47.0Z</sbdh:CreationDateAndTime>
        </sbdh:DocumentIdentification>
      </sbdh:StandardBusinessDocumentHeader></EPCISHeader><EPCISBody>""",
        1,
    )
    doc = epcis_xml.parse(text.encode(), source="with-sbdh.xml")
    assert (doc["sender"], doc["receiver"], doc["instanceIdentifier"]) == (
        "urn:epc:id:sgln:0353579.00001.0",
        "urn:epc:id:sgln:5012345.00001.0",
        "1234567890",
    )
    party, key = world.register(["logistics"])
    done = import_epcis(world.ledger, doc, signer=party, key=key, media_type="application/xml")
    record = world.ledger.entry(done.document.seq).decoded()["envelope"]["statement"]["body"]
    assert record["sbdh"]["DocumentIdentification"]["InstanceIdentifier"] == "1234567890"
    assert record["sender"] == "urn:epc:id:sgln:0353579.00001.0"
    # The same events from the JSON twin are already there: not appended again.
    twin = json_doc("Example_9.6.1-ObjectEvent.jsonld")
    again = import_epcis(world.ledger, twin, signer=party, key=key)
    assert [r.duplicate_of for r in again.events] == [None, None]  # the twin has eventIDs:
    # a different key (eventID vs hash), so GS1's eventID'd copy is a new capture; its hash
    # names the same event, which the export shows.
    assert event_hash(twin["epcisBody"]["eventList"][1]) == event_hash(doc["epcisBody"]["eventList"][1])


# --- export --------------------------------------------------------------------------------


def test_an_export_as_xml_validates_and_reads_back_as_the_signed_events(world: World) -> None:
    names = [
        "Example_9.6.1-ObjectEvent.jsonld",
        "object_event_all_possible_fields.jsonld",
        "Example_9.6.4-TransformationEvent.jsonld",
        "AssociationEvent-a.jsonld",
        "SensorDataExample1.jsonld",
        "ErrorDeclarationAndCorrectiveEvent.jsonld",
    ]
    docs = [json_doc(n) for n in names]
    party, key = world.register(roles_for([e for d in docs for e in d["epcisBody"]["eventList"]]))
    for d in docs:
        import_epcis(world.ledger, d, signer=party, key=key)
    for code, direction in (
        ("urn:epc:id:sgtin:0614141.107346.2018", "journey"),
        ("urn:epc:id:sgtin:4012345.011122.25", "down"),
        ("urn:epc:id:grai:4012345.55555.987", "journey"),
        ("urn:epc:id:sgtin:4012345.011111.9876", "journey"),
        ("urn:epc:id:sgtin:4012345.011111.987", "journey"),
    ):
        data = export_xml(world.store, code, direction=direction)  # type: ignore[arg-type]
        back = epcis_xml.parse(data, source="export.xml")  # the XSD check again
        signed = export_document(world.store, code, direction=direction)  # type: ignore[arg-type]
        assert [jcs(e) for e in back["epcisBody"]["eventList"]] == [jcs(e) for e in as_signed(signed)]
        assert b'eventHash="ni:///sha-256;' in data


def test_a_demo_like_chain_exports_as_valid_xml(world: World) -> None:
    chain = build(world)
    for code in (ITEM.format(1), LOT_P):
        data = export_xml(world.store, code, direction="down" if code == LOT_P else "journey")
        back = epcis_xml.parse(data, source="chain.xml")
        signed = export_document(world.store, code, direction="down" if code == LOT_P else "journey")
        # XML cannot tell a one-item array in an extension from its item (cbec:recall's
        # scope), so the events read back are compared by their event hash, which is the
        # same for both: what the standard defines as the same event.
        got, want = back["epcisBody"]["eventList"], signed["epcisBody"]["eventList"]
        assert [event_hash(e) for e in got] == [event_hash(e) for e in want]
        assert len(got) >= 2
    assert chain.seqs


def test_cli_imports_xml_and_exports_xml(world: World, tmp_path: Path) -> None:
    env = {"SUYUAN_DB": world.url, "SUYUAN_HOME": str(world.home.path), "PATH": os.environ.get("PATH", "")}
    party = new_uscc()
    key = world.home.keys.create("xml-cli")
    world.ledger.append(world.registration(party, key, ["logistics"]))

    def suyuan(*args: str, rc: int = 0) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "tools.cli", *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == rc, proc.stderr
        return proc

    lines = suyuan("epcis", "import", str(V961), "--signer", party, "--key", "xml-cli").stdout
    *events, record = [json.loads(x) for x in lines.splitlines()]
    assert len(events) == 2 and "document" in record
    out = tmp_path / "out.xml"
    suyuan("epcis", "export", "urn:epc:id:sgtin:0614141.107346.2018", "--format", "xml", "--out", str(out))
    assert (
        epcis_xml.parse(out.read_bytes())["epcisBody"]["eventList"]
        == epcis_xml.parse(V961.read_bytes())["epcisBody"]["eventList"]
    )
    # An invalid document: the error names the file, the line, the event and the field.
    bad = tmp_path / "bad.xml"
    bad.write_text(
        V961.read_text()
        .replace("<action>OBSERVE</action>", "<action>SEEN</action>", 2)
        .replace("<action>SEEN</action>", "<action>OBSERVE</action>", 1)
    )
    size = world.ledger.size()
    err = suyuan("epcis", "import", str(bad), "--signer", party, "--key", "xml-cli", rc=2).stderr
    assert err.startswith(f"error [malformed]: {bad} line 33: event 1: not valid EPCIS XML: Element 'action'")
    assert world.ledger.size() == size


# --- hostile XML ---------------------------------------------------------------------------


HOSTILE = {
    "xxe_file": b"""<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<epcis:EPCISDocument xmlns:epcis="urn:epcglobal:epcis:xsd:2" schemaVersion="2.0"
 creationDate="2020-01-01T00:00:00Z"><EPCISBody><EventList><ObjectEvent>
 <eventTime>2020-01-01T00:00:00Z</eventTime><eventTimeZoneOffset>+00:00</eventTimeZoneOffset>
 <action>OBSERVE</action><bizStep>&x;</bizStep></ObjectEvent></EventList></EPCISBody>
</epcis:EPCISDocument>""",
    "xxe_network": b"""<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "http://127.0.0.1:9/x">]>
<epcis:EPCISDocument xmlns:epcis="urn:epcglobal:epcis:xsd:2" schemaVersion="2.0"
 creationDate="2020-01-01T00:00:00Z"><EPCISBody><EventList/></EPCISBody>&x;</epcis:EPCISDocument>""",
    "external_dtd": b"""<?xml version="1.0"?><!DOCTYPE d SYSTEM "http://127.0.0.1:9/evil.dtd">
<epcis:EPCISDocument xmlns:epcis="urn:epcglobal:epcis:xsd:2" schemaVersion="2.0"
 creationDate="2020-01-01T00:00:00Z"><EPCISBody><EventList/></EPCISBody></epcis:EPCISDocument>""",
    "billion_laughs": b"""<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "lol">"""
    + b"".join(
        b'<!ENTITY %c "&%c;&%c;&%c;&%c;&%c;&%c;&%c;&%c;&%c;&%c;">' % ((98 + i,) + (97 + i,) * 10)
        for i in range(9)
    )
    + b"""]><epcis:EPCISDocument xmlns:epcis="urn:epcglobal:epcis:xsd:2" schemaVersion="2.0"
 creationDate="2020-01-01T00:00:00Z"><EPCISBody><EventList/></EPCISBody>&j;</epcis:EPCISDocument>""",
    "deep_nesting": b"""<?xml version="1.0"?><epcis:EPCISDocument xmlns:epcis="urn:epcglobal:epcis:xsd:2"
 xmlns:x="urn:x" schemaVersion="2.0" creationDate="2020-01-01T00:00:00Z"><EPCISBody><EventList>
 <ObjectEvent><eventTime>2020-01-01T00:00:00Z</eventTime><eventTimeZoneOffset>+00:00</eventTimeZoneOffset>
 <action>OBSERVE</action>"""
    + b"<x:a>" * 5000
    + b"</x:a>" * 5000
    + b"</ObjectEvent></EventList></EPCISBody></epcis:EPCISDocument>",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_xml_is_refused_and_nothing_lands(world: World, tmp_path: Path, name: str) -> None:
    with pytest.raises(MalformedInput) as e:
        epcis_xml.parse(HOSTILE[name], source=f"{name}.xml")
    assert e.value.message.startswith(f"{name}.xml")
    assert "root:" not in e.value.message  # nothing of /etc/passwd
    # Through the CLI: a clear refusal, exit 2, the ledger unchanged.
    party = new_uscc()
    key = world.home.keys.create(f"h-{name}")
    world.ledger.append(world.registration(party, key, ["logistics"]))
    path = tmp_path / f"{name}.xml"
    path.write_bytes(HOSTILE[name])
    size = world.ledger.size()
    env = {"SUYUAN_DB": world.url, "SUYUAN_HOME": str(world.home.path), "PATH": os.environ.get("PATH", "")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.cli",
            "epcis",
            "import",
            str(path),
            "--signer",
            party,
            "--key",
            f"h-{name}",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stderr.startswith("error [")
    assert str(path) in proc.stderr and proc.stdout == ""
    assert world.ledger.size() == size


def test_a_huge_xml_document_is_refused_before_parsing() -> None:
    huge = b"<a>" + b" " * epcis_xml.MAX_XML_BYTES + b"</a>"
    with pytest.raises(MalformedInput) as e:
        epcis_xml.parse(huge, source="huge.xml")
    assert e.value.code == "too_large" and "huge.xml" in e.value.message


def test_a_huge_text_node_is_refused_by_the_parser() -> None:
    """Under the size bound, libxml2's own limit (no huge_tree) still stops a giant node."""
    doc = (
        b'<epcis:EPCISDocument xmlns:epcis="urn:epcglobal:epcis:xsd:2"><x>'
        + b"a" * (11 << 20)
        + b"</x></epcis:EPCISDocument>"
    )
    with pytest.raises(MalformedInput) as e:
        epcis_xml.parse(doc, source="node.xml")
    assert e.value.message.startswith("node.xml line 1: not well-formed XML")
