"""Idempotent capture, on SQLite and PostgreSQL: an event its signer already has on the ledger
(the same eventID, or without one the same CBV 2.0 event hash) is not appended again, from
whatever source it comes; its receipt is the first one's and says so."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ledger.core.statements import sign_one
from ledger.epcis.event_hash import event_hash
from ledger.log.reindex import reindex
from ledger.queries.documents import import_epcis
from ledger.store.tracedb import dump_projections
from tests.support import World
from tests.test_graphql import SUBMIT_Q, data, make_api

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
GS1 = FIXTURES / "epcis" / "Example_9.6.1-ObjectEvent.jsonld"
SBDH = FIXTURES / "epcis-capture" / "Example_9.6.1-ObjectEvent-with-pseudo-SBDH-headers.jsonld"


def load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


def body(n: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "type": "ObjectEvent",
        "eventTime": "2026-11-27T13:05:00.000+08:00",
        "eventTimeZoneOffset": "+08:00",
        "action": "ADD",
        "bizStep": "commissioning",
        "epcList": [f"urn:epc:id:sgtin:9506000.013435.{n}"],
        **extra,
    }


def test_the_same_events_in_another_document_are_not_appended_again(world: World) -> None:
    """GS1's 9.6.1 and its pseudo-SBDH variant carry the same two events: two entries, not
    four; the second import answers with the first receipts and a record of its header."""
    party, key = world.register(["logistics"])
    first = import_epcis(world.ledger, load(GS1), signer=party, key=key)
    size = world.ledger.size()
    second = import_epcis(world.ledger, load(SBDH), signer=party, key=key, source=SBDH.name)
    assert [r.duplicate_of for r in second.events] == [r.seq for r in first.events]
    assert [(r.seq, r.leaf_hash, r.statement_hash) for r in second.events] == [
        (r.seq, r.leaf_hash, r.statement_hash) for r in first.events
    ]
    assert [r.as_dict()["duplicateOf"] for r in second.events] == [r.seq for r in first.events]
    assert all(r.duplicate_of is None for r in first.events)
    # Only the second document's record is new: its header is kept, signed, with the hashes.
    assert world.ledger.size() == size + 1 == second.document.seq + 1
    record = world.ledger.entry(second.document.seq).decoded()["envelope"]["statement"]
    assert record["kind"] == "document" and record["signer"] == party
    assert {k: record["body"][k] for k in ("sender", "receiver", "instanceIdentifier", "id")} == {
        "sender": "urn:epc:id:sgln:0353579.00001.0",
        "receiver": "urn:epc:id:sgln:5012345.00001.0",
        "instanceIdentifier": "1234567890",
        "id": "https://id.example.org/document1",
    }
    assert record["body"]["events"] == [event_hash(e) for e in load(SBDH)["epcisBody"]["eventList"]]

    # The very same document again adds nothing at all, not even its record.
    again = import_epcis(world.ledger, load(SBDH), signer=party, key=key)
    assert again.document.duplicate_of == second.document.seq
    assert world.ledger.size() == size + 1


def test_without_an_event_id_the_event_hash_decides(world: World) -> None:
    party, key = world.register(["producer"])
    first = world.ledger.append(sign_one(kind="event", signer=party, key=key, body=body()))
    # The same event spelled otherwise: UTC time, a Digital Link, keys in another order.
    other = {
        "epcList": ["https://id.gs1.org/01/09506000134352/21/1"],
        "eventTime": "2026-11-27T05:05:00Z",
        "type": "ObjectEvent",
        "eventTimeZoneOffset": "+08:00",
        "action": "ADD",
        "bizStep": "urn:epcglobal:cbv:bizstep:commissioning",
    }
    size = world.ledger.size()
    again = world.ledger.append(sign_one(kind="event", signer=party, key=key, body=other))
    assert (again.seq, again.duplicate_of) == (first.seq, first.seq)
    assert world.ledger.size() == size
    # A different event is appended.
    new = world.ledger.append(sign_one(kind="event", signer=party, key=key, body=body(2)))
    assert new.seq == size and new.duplicate_of is None


def test_within_one_batch_the_second_copy_answers_with_the_first(world: World) -> None:
    party, key = world.register(["producer"])
    twin = {**body(), "epcList": ["https://id.gs1.org/01/09506000134352/21/1"]}
    size = world.ledger.size()
    receipts = world.ledger.append_batch(
        [
            sign_one(kind="event", signer=party, key=key, body=body()),
            sign_one(kind="event", signer=party, key=key, body=body(2)),
            sign_one(kind="event", signer=party, key=key, body=twin),
        ]
    )
    assert [r.seq for r in receipts] == [size, size + 1, size]
    assert receipts[2].duplicate_of == size and receipts[2].statement_hash == receipts[0].statement_hash
    assert world.ledger.size() == size + 2


def test_another_signer_may_state_the_same_event(world: World) -> None:
    a, ka = world.register(["producer"])
    b, kb = world.register(["producer"])
    ra = world.ledger.append(sign_one(kind="event", signer=a, key=ka, body=body()))
    rb = world.ledger.append(sign_one(kind="event", signer=b, key=kb, body=body()))
    assert rb.seq == ra.seq + 1 and rb.duplicate_of is None


def test_an_error_declaration_is_appended_once(world: World) -> None:
    party, key = world.register(["producer"])
    original = body(eventID="urn:uuid:00000000-0000-4000-8000-000000000001")
    first = world.ledger.append(sign_one(kind="event", signer=party, key=key, body=original))
    declared = {
        **original,
        "errorDeclaration": {"declarationTime": "2026-11-28T00:00:00Z", "reason": "incorrect_data"},
    }
    decl = world.ledger.append(sign_one(kind="event", signer=party, key=key, body=declared))
    assert decl.seq == first.seq + 1 and decl.duplicate_of is None
    again = world.ledger.append(
        sign_one(kind="event", signer=party, key=key, body=declared, issued="2026-12-01T00:00:00+08:00")
    )
    assert again.duplicate_of == decl.seq


def test_an_event_id_reused_for_another_event_is_another_event(world: World) -> None:
    """Not a repeat (the hash differs): appended, so no fact is lost. GS1's own examples give
    one eventID to different events."""
    party, key = world.register(["producer"])
    eid = "urn:uuid:00000000-0000-4000-8000-000000000002"
    first = world.ledger.append(sign_one(kind="event", signer=party, key=key, body=body(eventID=eid)))
    other = world.ledger.append(sign_one(kind="event", signer=party, key=key, body=body(2, eventID=eid)))
    assert other.seq == first.seq + 1 and other.duplicate_of is None


def test_graphql_submit_answers_a_duplicate_with_the_first_receipt(world: World) -> None:
    party, key = world.register(["producer"])
    api = make_api(world)
    try:
        first = data(
            api.gql(
                SUBMIT_Q.replace("checkpoint", "checkpoint duplicateOf"),
                e=[sign_one(kind="event", signer=party, key=key, body=body())],
            )
        )
        other = copy.deepcopy(body())
        other["eventTime"] = "2026-11-27T05:05:00.000Z"
        again = data(
            api.gql(
                SUBMIT_Q.replace("checkpoint", "checkpoint duplicateOf"),
                e=[sign_one(kind="event", signer=party, key=key, body=other)],
            )
        )
        seq = first["submit"][0]["receipt"]["seq"]
        assert again["submit"][0]["receipt"]["seq"] == seq
        assert again["submit"][0]["receipt"]["duplicateOf"] == seq
        assert first["submit"][0]["receipt"]["duplicateOf"] is None
        got = data(api.gql("query($s: Int!) { entry(seq: $s) { eventHash } }", s=seq))
        assert got["entry"]["eventHash"] == event_hash(body())
    finally:
        api.app.state.store.dispose()


def test_cli_import_says_which_events_were_there_already(world: World) -> None:
    env = {"SUYUAN_DB": world.url, "SUYUAN_HOME": str(world.home.path), "PATH": os.environ.get("PATH", "")}
    keyname = "capture-cli"
    cli_key = world.home.keys.create(keyname)
    signer = _register_with(world, cli_key)

    def imp(path: Path) -> list[dict[str, Any]]:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "tools.cli",
                "epcis",
                "import",
                str(path),
                "--signer",
                signer,
                "--key",
                keyname,
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        return [json.loads(line) for line in proc.stdout.splitlines()]

    first = imp(GS1)
    second = imp(SBDH)
    assert [r.get("duplicateOf") for r in second[:2]] == [r["seq"] for r in first[:2]]
    assert "duplicateOf" not in first[0] and "document" in second[2]


def _register_with(world: World, key: Any) -> str:
    from tests.support import new_uscc

    party = new_uscc()
    world.ledger.append(world.registration(party, key, ["logistics"]))
    return party


def test_the_capture_index_is_a_projection_reindex_rebuilds(world: World) -> None:
    """Reindex rebuilds it byte for byte from the entries; a row deleted by someone with
    database access (so that an event would be captured twice) comes back with it."""
    party, key = world.register(["logistics"])
    done = import_epcis(world.ledger, load(GS1), signer=party, key=key)
    with world.store.reading() as conn:
        before = dump_projections(conn)["event_keys"]
    assert [r[0] for r in before] == [*(r.seq for r in done.events), done.document.seq]
    reindex(world.store)
    with world.store.reading() as conn:
        assert dump_projections(conn)["event_keys"] == before
    with world.store.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM event_keys WHERE seq = :s"), {"s": done.events[0].seq})
    reindex(world.store)
    size = world.ledger.size()
    again = import_epcis(world.ledger, load(GS1), signer=party, key=key)
    assert [r.duplicate_of for r in again.events] == [r.seq for r in done.events]
    assert world.ledger.size() == size


def test_migration_0009_fills_the_capture_index_from_the_entries(world: World) -> None:
    from ledger.store import migrate

    party, key = world.register(["logistics"])
    import_epcis(world.ledger, load(GS1), signer=party, key=key)
    with world.store.reading() as conn:
        before = dump_projections(conn)["event_keys"]
    migrate.downgrade(world.store.engine, "0008")
    assert "event_keys" not in sa.inspect(world.store.engine).get_table_names()
    world.store.migrate()
    with world.store.reading() as conn:
        assert dump_projections(conn)["event_keys"] == before
    size = world.ledger.size()
    again = import_epcis(world.ledger, load(SBDH), signer=party, key=key)
    assert all(r.duplicate_of is not None for r in again.events)
    assert world.ledger.size() == size + 1


def test_migration_0015_rebuilds_the_capture_index_by_key_id(world: World) -> None:
    """A ledger made before revision 0015 has the capture index by the keys' text: going
    back to 0014 gives that shape again, and upgrading rebuilds the index by key_id with
    the same keys, so the same events are still found."""
    from ledger.store import migrate

    party, key = world.register(["logistics"])
    done = import_epcis(world.ledger, load(GS1), signer=party, key=key)
    with world.store.reading() as conn:
        before = dump_projections(conn)["event_keys"]
    migrate.downgrade(world.store.engine, "0014")
    inspect = sa.inspect(world.store.engine)
    assert "key_id" not in {c["name"] for c in inspect.get_columns("event_keys")}
    assert {i["name"] for i in inspect.get_indexes("event_keys")} == {"event_keys_key", "event_keys_hash"}
    with world.store.engine.connect() as conn:
        old = conn.execute(sa.text("SELECT seq, event_key FROM event_keys ORDER BY seq")).all()
    assert [tuple(r) for r in old] == [(r[0], r[1]) for r in before]
    world.store.migrate()
    inspect = sa.inspect(world.store.engine)
    assert {i["name"] for i in inspect.get_indexes("event_keys")} == {"event_keys_key_id"}
    with world.store.reading() as conn:
        assert dump_projections(conn)["event_keys"] == before
    size = world.ledger.size()
    again = import_epcis(world.ledger, load(GS1), signer=party, key=key)
    assert [r.duplicate_of for r in again.events] == [r.seq for r in done.events]
    assert world.ledger.size() == size  # the document was recorded already too


def test_a_key_id_shared_by_another_key_finds_nothing(world: World) -> None:
    """The index is looked up by a 64-bit id of each key; a row whose key_id is this key's
    but whose key is another (a collision, or a row written into the database) is not
    taken for it: the event is appended, and an EPCIS query by eventID does not name it."""
    from ledger.store import capturedb
    from ledger.store.epcisdb import EventSelection, select_events

    def by_event_id(conn: sa.Connection, event_id: str) -> list[int]:
        sel = EventSelection(event_keys=(event_id,))
        return [r.seq for r in select_events(conn, sel, after=None, limit=10)]

    party, key = world.register(["producer"])
    first = world.ledger.append(
        sign_one(kind="event", signer=party, key=key, body=body(1, eventID="urn:uuid:a"))
    )
    wanted = "urn:uuid:b"
    with world.store.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE event_keys SET key_id = :k WHERE seq = :s"),
            {"k": capturedb.key_id(wanted), "s": first.seq},
        )
    with world.store.reading() as conn:
        assert capturedb.captured(conn, [wanted]) == {}
        assert by_event_id(conn, wanted) == []
        assert by_event_id(conn, "urn:uuid:a") == []  # its key_id is no longer its own
    second = world.ledger.append(sign_one(kind="event", signer=party, key=key, body=body(1, eventID=wanted)))
    assert second.duplicate_of is None and second.seq == first.seq + 1
    with world.store.reading() as conn:
        found = capturedb.captured(conn, [wanted])
        assert by_event_id(conn, wanted) == [second.seq]
    assert [c.seq for c in found[wanted]] == [second.seq]
