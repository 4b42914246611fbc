"""`suyuan agent` end to end: real processes (the ledger's `suyuan serve`, the agent), real
signatures, the ledger down at capture time, the agent killed with SIGKILL between
accepting and delivering, and its outbox tampered with so that it delivers twice: every
event lands exactly once, the capture job shows its receipts, and the ledger's
``/epcis/events`` returns them in a document GS1's JSON Schema accepts."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from ledger.log.home import Home
from tests.support import World, loopback_port, new_uscc

REPO = Path(__file__).resolve().parent.parent
GS1_SCHEMA = json.loads((REPO / "tests/fixtures/epcis-standard/EPCIS-JSON-Schema.json").read_text())


def http(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            raw, status, hdrs = r.read(), r.status, {k.lower(): v for k, v in r.headers.items()}
    except urllib.error.HTTPError as e:
        raw, status, hdrs = e.read(), e.code, {k.lower(): v for k, v in e.headers.items()}
    return status, hdrs, json.loads(raw) if raw else None


def wait_for(what: str, check: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class Proc:
    """A `suyuan` command as its own process, stopped (or killed) by the test."""

    def __init__(self, args: list[str], env: dict[str, str], health: str, log: Path) -> None:
        self.log = open(log, "ab")  # noqa: SIM115 (closed in stop/kill)
        self.p = subprocess.Popen(
            [sys.executable, "-m", "tools.cli", *args],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        self.health, self.log_path = health, log

    def up(self) -> Proc:
        def ready() -> bool:
            if self.p.poll() is not None:
                raise AssertionError(f"process ended: {self.log_path.read_text()[-2000:]}")
            try:
                return http("GET", self.health)[0] == 200
            except OSError:
                return False

        wait_for(self.health, ready, timeout=30)
        return self

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()

    def kill(self) -> None:
        self.p.send_signal(signal.SIGKILL)
        self.p.wait()
        self.log.close()


class Zone:
    def __init__(
        self, world: World, tmp: Path, *, ledger_port: int, agent_port: int, register: bool = True
    ) -> None:
        # Both ports are held for the whole test (support.loopback_port): the agent is told
        # the ledger's before the ledger serves, and each server may be started again.
        self.world, self.tmp = world, tmp
        self.ledger_port, self.agent_port = ledger_port, agent_port
        self.ledger_url = f"http://127.0.0.1:{self.ledger_port}"
        self.agent_url = f"http://127.0.0.1:{self.agent_port}"
        self.party = new_uscc()
        self.agent_home = tmp / "agent-home"
        self.key = Home(self.agent_home).keys.create("acme")
        if register:
            world.ledger.append(world.registration(self.party, self.key, ["producer"]))
        self.outbox = tmp / "outbox.db"
        base = {k: v for k, v in os.environ.items() if not k.startswith("SUYUAN_")}
        self.ledger_env = {**base, "SUYUAN_DB": world.url, "SUYUAN_HOME": str(world.home.path)}
        self.agent_env = {**base, "SUYUAN_HOME": str(self.agent_home)}
        self.procs: list[Proc] = []

    def serve(self) -> Proc:
        p = Proc(
            ["serve", "--port", str(self.ledger_port)],
            self.ledger_env,
            self.ledger_url + "/healthz",
            self.tmp / "serve.log",
        )
        self.procs.append(p)
        return p.up()

    def agent(self) -> Proc:
        p = Proc(
            [
                "agent",
                "--key",
                "acme",
                "--signer",
                self.party,
                "--ledger",
                self.ledger_url,
                "--port",
                str(self.agent_port),
                "--db",
                f"sqlite:///{self.outbox}",
            ],
            self.agent_env,
            self.agent_url + "/healthz",
            self.tmp / "agent.log",
        )
        self.procs.append(p)
        return p.up()

    def status(self) -> dict[str, Any]:
        out = subprocess.run(
            [sys.executable, "-m", "tools.cli", "agent", "status", "--db", f"sqlite:///{self.outbox}"],
            cwd=REPO,
            env=self.agent_env,
            capture_output=True,
            text=True,
            check=True,
        )
        doc: dict[str, Any] = json.loads(out.stdout)
        return doc

    def job(self, location: str) -> dict[str, Any]:
        status, _, job = http("GET", f"{self.agent_url}/epcis/{location}")
        assert status == 200
        return job  # type: ignore[no-any-return]

    def finished(self, location: str) -> dict[str, Any]:
        return wait_for(
            "the capture job to finish",  # type: ignore[no-any-return]
            lambda: (j := self.job(location)) and not j["running"] and j,
        )


def document(run: str, n: int = 3) -> dict[str, Any]:
    return {
        "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2026-11-27T05:00:00Z",
        "epcisBody": {
            "eventList": [
                {
                    "type": "ObjectEvent",
                    "eventID": f"urn:uuid:00000000-0000-4000-8000-{run}{i:08d}",
                    "eventTime": "2026-11-27T13:05:00+08:00",
                    "eventTimeZoneOffset": "+08:00",
                    "action": "ADD",
                    "bizStep": "commissioning",
                    "disposition": "active",
                    "epcList": [f"https://id.gs1.org/01/09506000134352/21/{run}{i}"],
                    "readPoint": {"id": "urn:epc:id:sgln:0614141.00777.0"},
                }
                for i in range(n)
            ]
        },
    }


@pytest.fixture
def zone(tmp_path: Path) -> Iterator[Zone]:
    w = World.create(f"sqlite:///{tmp_path}/ledger.db", home=tmp_path / "home")
    with loopback_port() as ledger_port, loopback_port() as agent_port:
        z = Zone(w, tmp_path, ledger_port=ledger_port, agent_port=agent_port)
        yield z
        for p in z.procs:
            p.stop()
    w.close()


def ledger_events(zone: Zone, run: str) -> list[dict[str, Any]]:
    status, _, doc = http(
        "GET", f"{zone.ledger_url}/epcis/events?perPage=1000&MATCH_epc=urn:epc:idpat:sgtin:9506000.013435.*"
    )
    assert status == 200
    jsonschema.Draft7Validator(GS1_SCHEMA, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER).validate(
        doc
    )
    return [
        e
        for e in doc["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        if e["epcList"][0].endswith(tuple(f"/21/{run}{i}" for i in range(10)))
    ]


def assert_landed_once(zone: Zone, job: dict[str, Any], run: str, n: int = 3) -> None:
    assert job["success"] is True and job["errors"] == [] and not job["running"]
    receipts = job["suyuan:receipts"]
    assert [r["index"] for r in receipts] == list(range(n))
    events = ledger_events(zone, run)
    assert sorted(e["eventID"] for e in events) == sorted(r["eventID"] for r in receipts)
    assert len(events) == n  # exactly once
    by_id = {e["eventID"]: e for e in events}
    for r in receipts:
        e = by_id[r["eventID"]]
        assert (e["suyuan:seq"], e["suyuan:leafHash"]) == (r["seq"], r["leafHash"])
        # The receipt's proof is the ledger's own: the same as it serves now for that size.
        status, _, proof = http(
            "GET", f"{zone.ledger_url}/proof/inclusion/{r['seq']}/{r['inclusionProof']['treeSize']}"
        )
        assert status == 200 and proof["hashes"] == r["inclusionProof"]["hashes"]


def test_capture_while_the_ledger_is_down_lands_once_it_is_up(zone: Zone) -> None:
    zone.agent()
    status, headers, _ = http("POST", f"{zone.agent_url}/epcis/capture", document("1"))
    assert status == 202 and headers["gs1-epcis-version"] == "2.0.0"
    location = headers["location"]
    # A delivery fails (the ledger is down): waited for, not assumed to happen within a sleep.
    job = wait_for(
        "a failed delivery",
        lambda: (j := zone.job(location)) and j["suyuan:attempts"] >= 1 and "suyuan:lastError" in j and j,
    )
    assert job["running"] is True and job["success"] is True
    assert job["suyuan:attempts"] >= 1 and "suyuan:lastError" in job
    backlog = zone.status()
    assert (backlog["pendingCaptures"], backlog["pendingEvents"]) == (1, 3)
    size = zone.world.ledger.size()

    zone.serve()
    job = zone.finished(location)
    assert_landed_once(zone, job, "1")
    assert zone.world.ledger.size() == size + 3
    assert zone.status()["pendingCaptures"] == 0

    # The client sends the same document again (it never heard the 202, say): the agent
    # reuses the envelopes it signed, and the ledger answers with the first receipts.
    status, headers, _ = http("POST", f"{zone.agent_url}/epcis/capture", document("1"))
    again = zone.finished(headers["location"])
    assert [r["seq"] for r in again["suyuan:receipts"]] == [r["seq"] for r in job["suyuan:receipts"]]
    assert zone.world.ledger.size() == size + 3


def test_agent_killed_between_accepting_and_delivering_delivers_after_restart(zone: Zone) -> None:
    agent = zone.agent()
    status, headers, _ = http("POST", f"{zone.agent_url}/epcis/capture", document("2"))
    assert status == 202
    location = headers["location"]
    agent.kill()  # SIGKILL: no shutdown, no flush beyond what the 202 waited for
    assert zone.status()["pendingEvents"] == 3
    size = zone.world.ledger.size()

    zone.serve()
    zone.agent()
    job = zone.finished(location)
    assert_landed_once(zone, job, "2")
    assert zone.world.ledger.size() == size + 3


def test_a_redelivery_after_a_lost_answer_appends_nothing(zone: Zone) -> None:
    """Someone with the outbox file (or a crash after the ledger appended but before the
    agent wrote its receipts) makes the agent deliver a capture again: the same signed
    statements go again, and the ledger answers with their first receipts."""
    zone.serve()
    agent = zone.agent()
    _, headers, _ = http("POST", f"{zone.agent_url}/epcis/capture", document("3"))
    job = zone.finished(headers["location"])
    size = zone.world.ledger.size()
    agent.stop()
    with sqlite3.connect(zone.outbox) as db:
        db.execute("UPDATE agent_events SET receipt = NULL")
        db.execute("UPDATE agent_captures SET running = 1, finished = NULL")
    zone.agent()
    again = zone.finished(headers["location"])
    assert again["suyuan:receipts"] == job["suyuan:receipts"]
    assert zone.world.ledger.size() == size
    assert_landed_once(zone, again, "3")


def test_an_event_the_ledger_refuses_fails_the_job_with_its_reason(zone: Zone) -> None:
    zone.serve()
    zone.agent()
    doc = document("4")
    # A producer may not sign shipping (logistics): the ledger refuses it, and with
    # rollback (the default) nothing of the capture is appended.
    doc["epcisBody"]["eventList"][1]["bizStep"] = "shipping"
    size = zone.world.ledger.size()
    _, headers, _ = http("POST", f"{zone.agent_url}/epcis/capture", doc)
    job = zone.finished(headers["location"])
    assert job["success"] is False and job["suyuan:receipts"] == []
    details = [e["detail"] for e in job["errors"]]
    assert any("event 1" in d and "role_not_allowed" in d for d in details)
    assert any("rolled_back" in d for d in details)
    assert zone.world.ledger.size() == size

    # proceed: the refused event is set aside, the others land.
    _, headers, _ = http(
        "POST", f"{zone.agent_url}/epcis/capture", doc, {"GS1-Capture-Error-Behaviour": "proceed"}
    )
    job = zone.finished(headers["location"])
    assert job["success"] is False and [r["index"] for r in job["suyuan:receipts"]] == [0, 2]
    assert zone.world.ledger.size() == size + 2


def test_a_receipt_that_is_not_for_our_statement_is_not_taken(tmp_path: Path) -> None:
    """A ledger (or whoever answers in its place) that sends receipts for other statements,
    or proofs that do not reach its checkpoint's root, does not end the capture: the agent
    keeps it and says why."""
    import base64
    import hashlib

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    from ledger.core import canonical
    from ledger.core.keys import PartyKey
    from tests.support import Server
    from tools.agent import AgentConfig, create_agent_app

    root = hashlib.sha256(b"some other tree").digest()
    forged = {"which": "statement"}

    async def checkpoint(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"liar.example/log\n1\n{base64.b64encode(root).decode()}\n")

    async def graphql(request: Request) -> JSONResponse:
        envs = (await request.json())["variables"]["e"]
        results = []
        for i, env in enumerate(envs):
            ours = hashlib.sha256(canonical.canonical_bytes(env["statement"])).hexdigest()
            results.append(
                {
                    "index": i,
                    "error": None,
                    "receipt": {
                        "seq": 7,
                        "leafHash": "00" * 32,
                        "checkpoint": "liar.example/log\n1\n" + base64.b64encode(root).decode() + "\n",
                        "statementHash": "11" * 32 if forged["which"] == "statement" else ours,
                        "inclusionProof": {"leafIndex": 0, "treeSize": 1, "hashes": []},
                    },
                }
            )
        return JSONResponse({"data": {"submit": results}})

    liar = Starlette(routes=[Route("/checkpoint", checkpoint), Route("/graphql", graphql, methods=["POST"])])
    with Server(liar) as ledger:
        cfg = AgentConfig(
            key=PartyKey.generate("k"),
            signer=new_uscc(),
            ledger_url=f"http://127.0.0.1:{ledger.port}",
            db_url=f"sqlite:///{tmp_path}/outbox.db",
        )
        with Server(create_agent_app(cfg), lifespan="on") as agent:
            base = f"http://127.0.0.1:{agent.port}/epcis"
            _, headers, _ = http("POST", f"{base}/capture", document("5", 1))
            url = f"{base}/{headers['location']}"
            job = wait_for(
                "a delivery attempt", lambda: (j := http("GET", url)[2]) and j["suyuan:attempts"] >= 1 and j
            )
            assert job["running"] is True and job["suyuan:receipts"] == []
            assert "not ours" in job["suyuan:lastError"]
            forged["which"] = "proof"
            job = wait_for(
                "another attempt",
                lambda: (j := http("GET", url)[2]) and "prove" in j.get("suyuan:lastError", "") and j,
                timeout=30,
            )
            assert job["running"] is True and job["suyuan:receipts"] == []


def test_an_epcis_xml_capture_lands_as_its_json_twin(zone: Zone) -> None:
    """EPCIS XML at the agent is read by the ledger's own hardened, XSD-checking parser:
    the same events as the JSON document land, with the same eventIDs; hostile XML is a 400
    and leaves nothing to deliver."""
    from ledger.epcis import xml as epcis_xml

    zone.serve()
    zone.agent()
    xml = epcis_xml.write(document("7"), namespaces={})
    status, headers, _ = http(
        "POST", f"{zone.agent_url}/epcis/capture", xml, {"Content-Type": "application/xml"}
    )
    assert status == 202
    assert_landed_once(zone, zone.finished(headers["location"]), "7")
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><d>&b;</d>'
    )
    before = zone.status()["pendingCaptures"]
    status, _, body = http(
        "POST", f"{zone.agent_url}/epcis/capture", bomb, {"Content-Type": "application/xml"}
    )
    assert status == 400, body
    assert zone.status()["pendingCaptures"] == before


def test_a_repeat_receipt_is_taken_only_for_our_own_event(tmp_path: Path) -> None:
    """A ledger answers an event its signer already had with the first entry's receipt,
    whose statement is another. The agent takes such a receipt only once it has read that
    entry, whose bytes must hash to the proven leaf, and found our event there (our signer,
    our eventID); a ledger that points at somebody else's entry does not end the capture."""
    import base64

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    from ledger.core import merkle
    from ledger.core.keys import PartyKey
    from tests.support import Server
    from tools.agent import AgentConfig, create_agent_app

    signer = new_uscc()
    doc = document("6", 1)
    event_id = doc["epcisBody"]["eventList"][0]["eventID"]
    held = {"signer": new_uscc()}  # whose event the ledger says is at seq 0

    def entry_bytes() -> bytes:
        return json.dumps(
            {
                "envelope": {
                    "statement": {
                        "kind": "event",
                        "signer": held["signer"],
                        "issued": "2026-11-27T05:00:00Z",
                        "body": {**doc["epcisBody"]["eventList"][0]},
                    }
                }
            }
        ).encode()

    def root() -> str:
        return base64.b64encode(merkle.leaf_hash(entry_bytes())).decode()

    async def checkpoint(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"liar.example/log\n1\n{root()}\n")

    async def graphql(request: Request) -> JSONResponse:
        q = await request.json()
        if "entry(seq" in q["query"]:
            return JSONResponse({"data": {"entry": {"bytes": base64.b64encode(entry_bytes()).decode()}}})
        return JSONResponse(
            {
                "data": {
                    "submit": [
                        {
                            "index": i,
                            "error": None,
                            "receipt": {
                                "seq": 0,
                                "duplicateOf": 0,
                                "leafHash": merkle.leaf_hash(entry_bytes()).hex(),
                                "statementHash": "22" * 32,
                                "checkpoint": f"liar.example/log\n1\n{root()}\n",
                                "inclusionProof": {"leafIndex": 0, "treeSize": 1, "hashes": []},
                            },
                        }
                        for i, _ in enumerate(q["variables"]["e"])
                    ]
                }
            }
        )

    ledger_app = Starlette(
        routes=[Route("/checkpoint", checkpoint), Route("/graphql", graphql, methods=["POST"])]
    )
    with Server(ledger_app) as ledger:
        cfg = AgentConfig(
            key=PartyKey.generate("k"),
            signer=signer,
            ledger_url=f"http://127.0.0.1:{ledger.port}",
            db_url=f"sqlite:///{tmp_path}/outbox.db",
        )
        with Server(create_agent_app(cfg), lifespan="on") as agent:
            base = f"http://127.0.0.1:{agent.port}/epcis"
            _, headers, _ = http("POST", f"{base}/capture", doc)
            url = f"{base}/{headers['location']}"
            job = wait_for(
                "a delivery attempt", lambda: (j := http("GET", url)[2]) and j["suyuan:attempts"] >= 1 and j
            )
            assert job["running"] is True and job["suyuan:receipts"] == []
            assert "another event" in job["suyuan:lastError"], job
            held["signer"] = signer  # now the entry is ours: same signer, same eventID
            job = wait_for(
                "the job to finish", lambda: (j := http("GET", url)[2]) and not j["running"] and j, timeout=90
            )
            assert job["success"] is True
            [receipt] = job["suyuan:receipts"]
            assert (receipt["eventID"], receipt["duplicateOf"]) == (event_id, 0)


def test_an_unregistered_agent_says_why_its_captures_wait_and_delivers_once_registered(
    tmp_path: Path,
) -> None:
    """The enterprise started its agent before the registrar registered it: the ledger
    refuses its token (401). The capture waits, and its job says why in words a person can
    act on; once the party is registered the capture lands, once."""
    w = World.create(f"sqlite:///{tmp_path}/ledger.db", home=tmp_path / "home")
    with loopback_port() as ledger_port, loopback_port() as agent_port:
        zone = Zone(w, tmp_path, ledger_port=ledger_port, agent_port=agent_port, register=False)
        try:
            zone.serve()
            zone.agent()
            status, headers, _ = http("POST", f"{zone.agent_url}/epcis/capture", document("7"))
            assert status == 202
            location = headers["location"]
            job = wait_for(
                "a refused delivery",
                lambda: (j := zone.job(location)) and "suyuan:lastError" in j and j,
            )
            why = job["suyuan:lastError"]
            assert why.startswith("the ledger answered 401 ("), why
            assert "not (yet) registered" in why and "b'" not in why, why
            assert job["running"] is True and zone.world.ledger.size() == 1

            w.ledger.append(w.registration(zone.party, zone.key, ["producer"]))
            job = zone.finished(location)
            assert_landed_once(zone, job, "7")
        finally:
            for p in zone.procs:
                p.stop()
    w.close()
