"""China Customs CBEC messages at the agent (``POST /ceb``), end to end with real processes:
a message posted while the ledger is down is accepted (XSD-checked), kept, signed with the
enterprise's own key once the ledger's registry can be read, and lands once, with the
private data its statement commits to; the same guid again is the same job; the agent
killed between accepting and delivering delivers after its restart; a document the
enterprise may not sign fails its job with ``wrong_sender``; hostile or invalid XML is
refused at the door, with its code, and nothing is kept."""

from __future__ import annotations

import asyncio
import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import jsonschema
import pytest

from ledger.core.keys import PartyKey
from ledger.core.private import Viewer
from ledger.epcis import ceb
from ledger.log.home import Home
from tests.support import World, loopback_port, new_uscc
from tests.test_agent import GS1_SCHEMA, Zone, http

SCENARIOS = Path(__file__).parent / "fixtures" / "ceb" / "scenarios"
ZONE_KEY = bytes(range(32))
ORDER = (SCENARIOS / "A1-CEB311.xml").read_bytes()
PAYMENT = (SCENARIOS / "A2-CEB411.xml").read_bytes()
XML = {"Content-Type": "application/xml"}
XXE = (
    b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    b'<ceb:CEB312Message xmlns:ceb="http://www.chinaport.gov.cn/ceb" guid="g">&x;'
    b"</ceb:CEB312Message>"
)
LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa">'
    b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]>'
    b"<d>&c;</d>"
)


class CustomsZone(Zone):
    """The zone of test_agent, its agent's enterprise a platform (customs code 3301TEST0P)
    that holds the zone's matching key, beside a registered merchant (3301TEST0E)."""

    def __init__(
        self,
        world: World,
        tmp: Path,
        *,
        ledger_port: int,  # noqa: D107 - Zone's
        agent_port: int,
    ) -> None:
        self.world, self.tmp = world, tmp
        self.ledger_port, self.agent_port = ledger_port, agent_port
        self.ledger_url = f"http://127.0.0.1:{self.ledger_port}"
        self.agent_url = f"http://127.0.0.1:{self.agent_port}"
        self.party = new_uscc()
        self.agent_home = tmp / "agent-home"
        key = Home(self.agent_home).keys.create("acme")
        (self.agent_home / "zone.key").write_text(json.dumps({"hmacKey": ZONE_KEY.hex()}))
        world.ledger.append(world.registration(self.party, key, ["platform"], customs_codes=["3301TEST0P"]))
        self.merchant, _ = world.register(["merchant"], customs_codes=["3301TEST0E"])
        self.outbox = tmp / "outbox.db"
        base = {k: v for k, v in os.environ.items() if not k.startswith("SUYUAN_")}
        self.ledger_env = {**base, "SUYUAN_DB": world.url, "SUYUAN_HOME": str(world.home.path)}
        self.agent_env = {**base, "SUYUAN_HOME": str(self.agent_home)}
        self.procs = []


@pytest.fixture
def zone(tmp_path: Path) -> Iterator[CustomsZone]:
    w = World.create(f"sqlite:///{tmp_path}/ledger.db", home=tmp_path / "home")
    with loopback_port() as ledger_port, loopback_port() as agent_port:
        z = CustomsZone(w, tmp_path, ledger_port=ledger_port, agent_port=agent_port)
        yield z
        for p in z.procs:
            p.stop()
    w.close()


def post(zone: Zone, data: bytes) -> tuple[int, dict[str, str], Any]:
    return http("POST", f"{zone.agent_url}/ceb", data, XML)


def check_order_landed(zone: CustomsZone, job: dict[str, Any]) -> int:
    assert job["success"] is True and job["errors"] == [] and not job["running"], job
    assert job["suyuan:customsMessage"] == {
        "message": "CEB311Message",
        "signed": True,
        "guid": "A1B2C3D4-0000-4000-8000-000000000311",
    }
    [receipt] = job["suyuan:receipts"]
    entry = zone.world.ledger.entry(receipt["seq"]).decoded()
    statement = entry["envelope"]["statement"]
    # Signed by the enterprise, with its own key, as an order of the CBEC vocabulary.
    assert statement["signer"] == zone.party
    body = statement["body"]
    assert body["eventID"] == receipt["eventID"]
    assert body["cbec:orderInfo"]["buyerIdHash"] == ceb.buyer_id_hash(ZONE_KEY, "110101199001010000")
    assert body["sourceList"] == [{"type": "owning_party", "source": zone.merchant}]
    assert "张三" not in json.dumps(body, ensure_ascii=False)  # people stay private
    # The private blob went with it: the regulator reads the message's own fields.
    private = zone.world.ledger.private_data(receipt["seq"], Viewer(kind="regulator"))
    assert "张三" in json.dumps(private, ensure_ascii=False)
    # The ledger's EPCIS query interface returns it, in a document GS1's schema accepts.
    status, _, doc = http("GET", f"{zone.ledger_url}/epcis/events/{quote(receipt['eventID'], safe='')}")
    assert status == 200
    jsonschema.Draft7Validator(GS1_SCHEMA, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER).validate(
        doc
    )
    [event] = doc["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    assert event["suyuan:seq"] == receipt["seq"]
    return int(receipt["seq"])


def test_a_customs_message_posted_while_the_ledger_is_down_lands_once(zone: CustomsZone) -> None:
    zone.agent()
    status, headers, answer = post(zone, ORDER)
    assert status == 202, answer
    assert answer["repeat"] is False and answer["documents"] == 1
    location = headers["location"]
    assert location == f"epcis/capture/{answer['captureID']}"
    # The same message again (the ERP never heard the 202): the same job, nothing new.
    status, headers, again = post(zone, ORDER)
    assert status == 202 and again["repeat"] is True and headers["location"] == location
    job = zone.job(location.removeprefix("epcis/"))
    assert job["running"] is True and job["suyuan:customsMessage"]["signed"] is False
    backlog = zone.status()
    assert (backlog["pendingCaptures"], backlog["pendingMessages"], backlog["pendingEvents"]) == (1, 1, 0)
    size = zone.world.ledger.size()

    zone.serve()
    job = zone.finished(location.removeprefix("epcis/"))
    seq = check_order_landed(zone, job)
    assert zone.world.ledger.size() == size + 1 and seq == size
    assert zone.status()["pendingMessages"] == 0

    # Another message of the platform's that another enterprise must sign (a payment,
    # payCode 3301TEST0Y): refused with the reason, nothing appended.
    status, headers, _ = post(zone, PAYMENT)
    assert status == 202
    job = zone.finished(headers["location"].removeprefix("epcis/"))
    assert job["success"] is False and job["suyuan:receipts"] == []
    assert job["errors"][0]["detail"].startswith("[wrong_sender]"), job["errors"]
    assert zone.world.ledger.size() == size + 1


def test_agent_killed_after_accepting_a_message_delivers_it_after_restart(zone: CustomsZone) -> None:
    agent = zone.agent()
    status, headers, _ = post(zone, ORDER)
    assert status == 202
    agent.kill()  # SIGKILL: the message is on disk, unsigned
    size = zone.world.ledger.size()
    zone.serve()
    zone.agent()
    job = zone.finished(headers["location"].removeprefix("epcis/"))
    check_order_landed(zone, job)
    assert zone.world.ledger.size() == size + 1


def call(app: Any, method: str, path: str, **kw: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as c:
            return await c.request(method, path, **kw)

    return asyncio.run(go())


def test_bad_customs_xml_is_refused_at_the_door_and_nothing_is_kept(tmp_path: Path) -> None:
    from tools.agent import AgentConfig, create_agent_app

    cfg = AgentConfig(
        key=PartyKey.generate("k"),
        signer=new_uscc(),
        ledger_url="http://127.0.0.1:9",
        db_url=f"sqlite:///{tmp_path}/o.db",
        matching_key=ZONE_KEY,
    )
    app = create_agent_app(cfg)
    outbox = app.state.outbox
    cases = {
        "xxe": (XXE, "xml_refused"),
        "laughs": (LAUGHS, "xml_refused"),
        "wrapped xxe": (ceb.dxp_wrapped(XXE, message="CEB312Message", sender="X"), "xml_refused"),
        "deep": (b'<?xml version="1.0"?><a>' + b"<b>" * 300 + b"</b>" * 300 + b"</a>", "malformed"),
        "no order number": (ORDER.replace(b"<ceb:orderNo>SO20240501000001</ceb:orderNo>", b""), "malformed"),
        "an EPCIS document": (b'<epcis:EPCISDocument xmlns:epcis="urn:epcglobal:epcis:xsd:2"/>', "malformed"),
    }
    for name, (data, code) in cases.items():
        r = call(app, "POST", "/ceb", content=data, headers=XML)
        assert r.status_code == 400, (name, r.text)
        problem = r.json()
        assert problem["type"] == "epcisException:ValidationException"
        assert problem["detail"].startswith(f"[{code}]"), (name, problem)
        assert "root:" not in problem["detail"]
    assert (
        "not a valid CEB311Message"
        in call(app, "POST", "/ceb", headers=XML, content=cases["no order number"][0]).json()["detail"]
    )
    r = call(app, "POST", "/ceb", content=ORDER, headers={"Content-Type": "application/json"})
    assert r.status_code == 415
    assert outbox.backlog()["pendingCaptures"] == 0 and outbox.jobs(after=None, limit=5) == []

    # The same guid with other content is a conflict, not a second message.
    assert call(app, "POST", "/ceb", content=ORDER, headers=XML).status_code == 202
    changed = ORDER.replace(b"<ceb:freight>10.00</ceb:freight>", b"<ceb:freight>11.00</ceb:freight>")
    r = call(app, "POST", "/ceb", content=changed, headers=XML)
    assert r.status_code == 409 and "guid" in r.json()["detail"]
    assert outbox.backlog()["pendingCaptures"] == 1
    outbox.dispose()

    # Without the zone's matching key the agent cannot hash buyers: 501, with the fix.
    bare = create_agent_app(
        AgentConfig(
            key=PartyKey.generate("k"),
            signer=new_uscc(),
            ledger_url="http://127.0.0.1:9",
            db_url=f"sqlite:///{tmp_path}/o2.db",
        )
    )
    r = call(bare, "POST", "/ceb", content=ORDER, headers=XML)
    assert r.status_code == 501 and r.json()["detail"].startswith("[no_matching_key]")
    assert "zone.key" in r.json()["detail"]
    bare.state.outbox.dispose()


def test_a_message_the_ledger_already_has_is_answered_with_its_first_receipt(zone: CustomsZone) -> None:
    """The platform imported the order on the ledger's host (`suyuan ceb import`) before its
    ERP posted it to the agent: the ledger answers the agent's statement, the same event by
    the same signer, with the first entry's receipt. The agent takes it (its proof holds)
    rather than retrying forever over a statement hash that is not its own."""
    from ledger.log.ceb_import import import_ceb

    key = Home(zone.agent_home).keys.load("acme")
    [first] = import_ceb(zone.world.ledger, ORDER, key=key, matching_key=ZONE_KEY)
    size = zone.world.ledger.size()
    zone.serve()
    zone.agent()
    status, headers, _ = post(zone, ORDER)
    assert status == 202
    job = zone.finished(headers["location"].removeprefix("epcis/"))
    assert job["success"] is True and "suyuan:lastError" not in job, job
    [receipt] = job["suyuan:receipts"]
    assert receipt["seq"] == first.receipt.seq and receipt["duplicateOf"] == first.receipt.seq
    assert zone.world.ledger.size() == size


def test_a_capture_job_answers_xml_by_the_bindings_names(zone: CustomsZone) -> None:
    """``GET /capture/{captureID}`` is the one capture answer the bindings define in XML:
    ``epcis:EPCISCaptureJob`` with captureID, running and success as attributes; the job
    list is JSON only (406 for XML)."""
    from lxml import etree

    from ledger.queries.epcis_query import LEDGER_NAMESPACE

    zone.serve()
    zone.agent()
    _, headers, _ = post(zone, ORDER)
    location = headers["location"].removeprefix("epcis/")
    job = zone.finished(location)
    req = urllib.request.Request(f"{zone.agent_url}/epcis/{location}", headers={"Accept": "application/xml"})
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.headers["content-type"] == "application/xml"
        root = etree.fromstring(r.read())
    assert root.tag == "{urn:epcglobal:epcis:xsd:2}EPCISCaptureJob"
    assert (root.get("captureID"), root.get("running"), root.get("success")) == (
        job["captureID"],
        "false",
        "true",
    )
    assert root.findtext("captureErrorBehaviour") == "rollback"
    assert root.findtext("createdAt") == job["createdAt"]
    [receipt] = root.iterfind(f"{{{LEDGER_NAMESPACE}}}receipt")
    assert int(receipt.get("seq")) == job["suyuan:receipts"][0]["seq"]
    hashes = [h.text for h in receipt.iterfind(f".//{{{LEDGER_NAMESPACE}}}hash")]
    assert hashes == job["suyuan:receipts"][0]["inclusionProof"]["hashes"]
    status, _, problem = http("GET", f"{zone.agent_url}/epcis/capture", None, {"Accept": "application/xml"})
    assert status == 406 and problem["type"] == "epcisException:NotAcceptableException"
