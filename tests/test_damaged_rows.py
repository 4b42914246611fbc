"""Rows of the log written outside the ledger with another column type than it wrote.

SQLite keeps whatever type a value is given (TEXT in a BLOB column, a REAL in a BIGINT
key); the readers of entries, nodes and checkpoints must name the place, not crash. The
audit reports each at its seq and exits 1; every other reader (``suyuan entry``, proofs,
the checkpoint, appends, the consumer page) refuses with ``error [damaged]: seq N: …``.
PostgreSQL's typed columns cannot hold such a row, so these are SQLite's tests.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from ledger.core.errors import DamagedStore
from ledger.log.audit import audit
from tests.support import Client, World
from tools.cli import main

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

Cli = tuple[int, str, str]


@pytest.fixture
def ledger(world: World) -> World:
    """Nine entries: genesis, a registration, seven events (items 0-6)."""
    party, key = world.register()
    world.append_events(party, key, 4)
    world.append_events(party, key, 3, start=4)
    assert world.ledger.size() == 9 and audit(world.store).ok
    return world


@pytest.fixture
def cli(
    ledger: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[object]:
    monkeypatch.setenv("SUYUAN_DB", ledger.url)
    monkeypatch.setenv("SUYUAN_HOME", str(ledger.home.path))

    def run(*args: str) -> Cli:
        capsys.readouterr()
        rc = main(list(args))
        got = capsys.readouterr()
        return rc, got.out, got.err

    yield run


def _raw(w: World, sql: str) -> None:
    """Write as someone with the database file: the append-only triggers dropped first."""
    w.store.drop_append_only()
    w.store.raw(sql)


def _audit_lines(cli: object) -> tuple[int, list[str]]:
    """The problem lines `suyuan audit` writes for people (stderr, above its summary); the
    JSON report on stdout names the same problems."""
    rc, out, err = cli("audit")  # type: ignore[operator]
    assert "Traceback" not in err
    lines = err.splitlines()
    assert lines[-1].startswith("audit: ")
    report = json.loads(out)
    assert [
        f"seq {p['seq']}: {p['problem']}"
        if p["seq"] is not None
        else f"checkpoint {p['checkpoint']}: {p['problem']}"
        if p["checkpoint"] is not None
        else p["problem"]
        for p in report["problems"]
    ] == lines[:-1]
    return rc, lines[:-1]


def test_an_entry_held_as_text_is_named_by_the_audit(ledger: World, cli: object) -> None:
    # The same bytes, stored as TEXT: nothing else is wrong with the entry.
    _raw(ledger, "UPDATE entries SET entry = CAST(entry AS TEXT) WHERE seq = 5")
    rc, lines = _audit_lines(cli)
    assert rc == 1
    assert lines == [
        "seq 5: entries.entry holds TEXT, not the bytes the ledger wrote; "
        "the database was changed outside the ledger"
    ]


def test_an_appended_row_with_text_columns_is_named_by_the_audit(ledger: World, cli: object) -> None:
    """No trigger needs dropping: a new seq at the end is an INSERT the triggers allow."""
    ledger.store.raw(
        "INSERT INTO entries (seq, leaf_hash, statement_hash, kind, signer, entry) "
        "SELECT 9, hex(leaf_hash), 'x', kind, signer, CAST(entry AS TEXT) "
        "FROM entries WHERE seq = 8"
    )
    rc, lines = _audit_lines(cli)
    assert rc == 1
    assert lines[0].startswith("seq 9: entries.leaf_hash holds TEXT")
    assert any(line.startswith("seq 9: entries.statement_hash holds TEXT") for line in lines)
    assert any(line.startswith("seq 9: entries.entry holds TEXT") for line in lines)
    # Every other line is about that row too (its bytes, its missing nodes), none earlier.
    assert not [line for line in lines if line.startswith("seq ") and not line.startswith("seq 9: ")], (
        "\n".join(lines)
    )


@pytest.mark.parametrize(
    ("sql", "first"),
    [
        (
            "UPDATE entries SET leaf_hash = hex(leaf_hash) WHERE seq = 3",
            "seq 3: entries.leaf_hash holds TEXT",
        ),
        (
            "UPDATE entries SET statement_hash = 7 WHERE seq = 3",
            "seq 3: entries.statement_hash holds INTEGER",
        ),
        ("UPDATE entries SET entry = 1.5 WHERE seq = 3", "seq 3: entries.entry holds REAL"),
        (
            "UPDATE merkle_nodes SET hash = hex(hash) WHERE node = 3",
            "seq 3: merkle_nodes.hash of node (0, 3) holds TEXT",
        ),
        (
            f"UPDATE merkle_nodes SET hash = 'x' WHERE node = {1 << 56 | 1}",
            "seq 2: merkle_nodes.hash of node (1, 1) holds TEXT",
        ),
        (
            "UPDATE checkpoints SET root = hex(root) WHERE size = 6",
            "checkpoint 6: checkpoints.root holds TEXT",
        ),
        (
            "UPDATE checkpoints SET note = CAST(note AS BLOB) WHERE size = 6",
            "checkpoint 6: checkpoints.note holds BLOB",
        ),
        (
            "UPDATE entries SET seq = 'five' WHERE seq = 5",
            "a row has entries.seq 'five' (TEXT), not an integer",
        ),
        (
            "UPDATE checkpoints SET size = 6.5 WHERE size = 6",
            "a row has checkpoints.size 6.5 (REAL), not an integer",
        ),
    ],
    ids=[
        "leaf-text",
        "hash-int",
        "entry-real",
        "leaf-node-text",
        "inner-node-text",
        "root-text",
        "note-blob",
        "seq-text",
        "size-real",
    ],
)
def test_each_damaged_column_is_named_and_the_audit_goes_on(
    ledger: World, cli: object, sql: str, first: str
) -> None:
    _raw(ledger, sql)
    rc, lines = _audit_lines(cli)
    assert rc == 1
    assert any(line.startswith(first) for line in lines), lines
    # The audit read on past the damage: the last entry was reached and judged.
    report = audit(ledger.store)
    assert report.entries >= 8


def test_suyuan_entry_names_the_seq(ledger: World, cli: object) -> None:
    _raw(ledger, "UPDATE entries SET entry = CAST(entry AS TEXT) WHERE seq = 5")
    rc, out, err = cli("entry", "5")  # type: ignore[operator]
    assert (rc, out) == (2, "")
    assert err.startswith("error [damaged]: seq 5: entries.entry holds TEXT")
    assert cli("entry", "4")[0] == 0  # type: ignore[operator]


def test_a_proof_through_a_damaged_node_names_it(ledger: World, cli: object) -> None:
    _raw(ledger, "UPDATE merkle_nodes SET hash = hex(hash) WHERE node = 1")
    rc, out, err = cli("prove", "inclusion", "0")  # type: ignore[operator]
    assert (rc, out) == (2, "")
    assert err.startswith("error [damaged]: seq 1: merkle_nodes.hash of node (0, 1) holds TEXT")


def test_a_damaged_latest_checkpoint_is_named_and_appends_are_refused(ledger: World, cli: object) -> None:
    party, key = ledger.register()  # entry 9, checkpoint 10
    _raw(ledger, "UPDATE checkpoints SET root = hex(root) WHERE size = 10")
    rc, out, err = cli("checkpoint")  # type: ignore[operator]
    assert (rc, out) == (2, "")
    assert err.startswith("error [damaged]: checkpoint 10: checkpoints.root holds TEXT")
    with pytest.raises(DamagedStore, match="checkpoint 10: checkpoints.root holds TEXT"):
        ledger.ledger.append_batch([ledger.event(party, key, 100)])
    with ledger.store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM entries")).scalar_one() == 10


def test_the_consumer_page_names_the_damaged_seq(ledger: World, client: Client) -> None:
    _raw(ledger, "UPDATE entries SET entry = CAST(entry AS TEXT) WHERE seq = 3")
    r = client.get("/01/09506000134352/21/1", headers={"Accept": "application/json"})
    assert r.status_code == 422
    assert "seq 3: entries.entry holds TEXT" in r.json()["error"]["message"]
    ok = client.get("/01/09506000134352/21/5", headers={"Accept": "application/json"})
    assert ok.status_code == 200


def test_graphql_names_the_damaged_seq(ledger: World) -> None:
    from api.app import create_app
    from api.settings import Settings
    from tests.test_auth import Api

    _raw(ledger, "UPDATE entries SET entry = CAST(entry AS TEXT) WHERE seq = 5")
    api = Api(
        create_app(Settings(db_url=ledger.url, home=ledger.home.path, base_url="https://trace.example"))
    )
    try:
        # One read serves the entries of a request: asked alone, each answers for itself.
        bad = api.gql("{ entry(seq: 5) { seq } }").json()
        good = api.gql("{ entry(seq: 4) { seq } }").json()
    finally:
        api.app.state.store.dispose()
    assert bad["data"] == {"entry": None}
    (err,) = bad["errors"]
    assert err["extensions"]["code"] == "damaged"
    assert err["message"].startswith("seq 5: entries.entry holds TEXT")
    assert good == {"data": {"entry": {"seq": 4}}}
