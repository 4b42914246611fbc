"""The `suyuan` command's rough edges, each through the command itself (a subprocess, as a
user runs it): an unknown code, a ledger that is not there, bundles of a product, proofs
asked the wrong way round, and what `GET /graphql` says to a browser."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from api.app import create_app
from api.graphql.app import USAGE
from api.settings import Settings
from tests.conftest import fresh_schema_url
from tests.support import World
from tests.test_auth import Api
from tests.test_cli import ERROR_LINE, REPO, Cli

ITEM = "https://id.gs1.org/01/09506000134352/21/{}"
NEVER_SEEN = "https://id.gs1.org/01/09506000134352/21/never-seen"


def _only_error(err: str, code: str) -> str:
    assert ERROR_LINE.fullmatch(err.rstrip("\n")), err
    assert err.startswith(f"error [{code}]: "), err
    return err


@pytest.fixture
def cli(world: World) -> Cli:
    return Cli(world.url, world.home.path)


def test_trace_of_a_code_the_ledger_never_saw(world: World, cli: Cli) -> None:
    party, key = world.register(["producer"])
    world.append_events(party, key, 2)
    # Before: {"journey": []} and exit 0, while the resolver answers 404.
    r = cli("trace", NEVER_SEEN, rc=2)
    assert r.out == ""
    _only_error(r.err, "not_found")
    assert NEVER_SEEN in r.err and "--allow-empty" in r.err
    empty = cli("trace", NEVER_SEEN, "--allow-empty").json()
    assert empty == {"code": NEVER_SEEN, "journey": []}
    known = cli("trace", ITEM.format(1)).json()
    assert [s["activity"] for s in known["journey"]] == ["commissioning"]


# Every command that reads a ledger, and two that write one.
NEEDS_A_LEDGER = [
    ("trace", ITEM.format(1)),
    ("upstream", ITEM.format(1)),
    ("downstream", ITEM.format(1)),
    ("recall", ITEM.format(1)),
    ("entry", "0"),
    ("entry", "0", "--viewer", "regulator"),
    ("checkpoint",),
    ("log-key",),
    ("prove", "inclusion", "0"),
    ("prove", "consistency", "1", "2"),
    ("bundle", "0", "--out", "{tmp}/bundle.json"),
    ("audit",),
    ("audit", "--json"),
    ("audit", "--report", "{tmp}/report.html"),
    ("audit", "--scope", ITEM.format(1)),
    ("credit", "--all"),
    ("credit", "uscc:91310110666007217T"),
    ("stats",),
    ("findings",),
    ("findings", "--summary"),
    ("scans", ITEM.format(1)),
    ("scans", "--suspicious"),
    ("party", "show", "--id", "uscc:91310110666007217T"),
    ("epcis", "export", ITEM.format(1)),
    (
        "qr",
        "--lot",
        "https://id.gs1.org/01/09506000134352/10/L1",
        "--sheet",
        "{tmp}/l.pdf",
        "--base-url",
        "https://trace.example.cn",
    ),
    ("token", "--key", "k", "--signer", "uscc:91310110666007217T"),
    ("reindex",),
    ("serve", "--port", "{port}"),
    ("submit", "{tmp}/envelope.json"),
    ("shred", "sha256:00"),
]


def _args(call: tuple[str, ...], tmp: Path, *, port: int) -> tuple[str, ...]:
    return tuple(a.replace("{tmp}", str(tmp)).replace("{port}", str(port)) for a in call)


def test_every_command_on_a_sqlite_file_that_is_not_there(tmp_path: Path, port: int) -> None:
    # Before: each of these created an empty suyuan.db (and its directory) and then said
    # "no ledger yet"; now they refuse and leave the disk as it was.
    db = tmp_path / "nowhere" / "ledger.db"
    out = tmp_path / "out"
    out.mkdir()
    (out / "envelope.json").write_text("{}")
    cli = Cli(f"sqlite:///{db}", tmp_path / "home")
    for call in NEEDS_A_LEDGER:
        r = cli(*_args(call, out, port=port), rc=2)
        assert r.out == "", call
        _only_error(r.err, "no_ledger")
        assert f"there is no ledger at {db} (no such file); run `suyuan init`" in r.err, call
    assert not (tmp_path / "nowhere").exists()
    assert not (tmp_path / "home").exists()
    assert sorted(p.name for p in out.iterdir()) == ["envelope.json"]
    # The default database, suyuan.db in the working directory, is not made either.
    env = {"SUYUAN_HOME": str(tmp_path / "home"), "PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "tools.cli", "checkpoint"], cwd=out, env=env, capture_output=True, timeout=120
    )
    assert proc.returncode == 2
    assert proc.stderr.decode().startswith("error [no_ledger]: there is no ledger at suyuan.db")
    assert sorted(p.name for p in out.iterdir()) == ["envelope.json"]


@pytest.mark.postgres
def test_every_command_on_a_postgresql_schema_without_tables(
    pg_database: str, tmp_path: Path, port: int
) -> None:
    url = fresh_schema_url(pg_database)
    out = tmp_path / "out"
    out.mkdir()
    (out / "envelope.json").write_text("{}")
    cli = Cli(url, tmp_path / "home")
    for call in NEEDS_A_LEDGER:
        r = cli(*_args(call, out, port=port), rc=2)
        assert r.out == "", call
        _only_error(r.err, "no_ledger")
        assert "this database holds no ledger (it has no tables); run `suyuan init`" in r.err
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            assert sa.inspect(conn).get_table_names() == []
    finally:
        engine.dispose()
    assert sorted(p.name for p in out.iterdir()) == ["envelope.json"]


def test_bundle_of_a_product_code(world: World, cli: Cli, tmp_path: Path) -> None:
    party, key = world.register(["producer"])
    world.append_events(party, key, 3)
    # Item 1's journey: its commissioning (seq 3 here), plus one more event naming it.
    more = world.event(
        party, key, 1, bizStep="inspecting", action="OBSERVE", eventTime="2026-11-27T14:00:00+08:00"
    )
    extra = world.ledger.append(more).seq
    journey = [s["seq"] for s in cli("trace", ITEM.format(1)).json()["journey"]]
    assert journey == [3, extra]
    out = tmp_path / "b.json"
    made = cli("bundle", ITEM.format(1), "--out", str(out)).json()
    assert made == {"out": str(out), "entries": made["entries"], "requested": journey}
    vkey = cli("log-key").out.strip()
    checked = cli("verify", str(out), "--log-key", vkey).json()
    assert checked["ok"] is True and set(journey) <= set(checked["verified"])
    # Seqs and codes mix; an EPC URN names the same item; a bare number is a seq.
    urn = "urn:epc:id:sgtin:9506000.013435.1"
    both = cli("bundle", "2", urn, "--out", str(out)).json()
    assert both["requested"] == [2, *journey]
    r = cli("bundle", NEVER_SEEN, "--out", str(tmp_path / "none.json"), rc=2)
    _only_error(r.err, "not_found")
    assert not (tmp_path / "none.json").exists()
    r = cli("bundle", "https://id.gs1.org/01/09506000134353/21/1", "--out", str(out), rc=2)
    _only_error(r.err, "bad_identifier")


def test_consistency_proof_the_wrong_way_round(world: World, cli: Cli) -> None:
    party, key = world.register(["producer"])
    world.append_events(party, key, 3)
    # Before: "size 3 is not between 0 and 1".
    r = cli("prove", "consistency", "3", "1", rc=2)
    assert r.err == (
        "error [bad_proof]: a consistency proof goes from an older tree to a newer "
        "one: the first size must be ≤ the second, and 3 > 1\n"
    )
    assert cli("prove", "consistency", "1", "3").json()["second"] == 3
    api = Api(create_app(Settings(db_url=world.url, home=world.home.path)))
    try:
        got = api.request("GET", "/proof/consistency/3/1")
        assert got.status_code == 400
        assert got.json()["error"]["message"].startswith("a consistency proof goes from an older")
    finally:
        api.app.state.store.dispose()


def test_get_graphql_without_a_query_says_how_to_ask(world: World) -> None:
    app = create_app(Settings(db_url=world.url, home=world.home.path))
    api = Api(app)
    try:
        for accept in ("text/html", "*/*"):
            # Before: 404 {"error": {"code": "not_found", "message": "Not Found"}}.
            r = api.request("GET", "/graphql", headers={"Accept": accept})
            assert r.status_code == 400
            assert r.json() == {"error": {"code": "malformed", "message": USAGE}}
        assert "schemas/schema.graphql" in USAGE and "POST" in USAGE and "\n" not in USAGE
        ok = api.request("GET", "/graphql", params={"query": "{ checkpoint { size } }"})
        assert ok.status_code == 200 and ok.json()["data"]["checkpoint"]["size"] >= 1
    finally:
        app.state.store.dispose()
    dev = create_app(Settings(db_url=world.url, home=world.home.path, dev=True))
    try:
        ide = Api(dev).request("GET", "/graphql", headers={"Accept": "text/html"})
        assert ide.status_code == 200 and "graphiql" in ide.text.lower()
    finally:
        dev.state.store.dispose()


def test_audit_prints_its_report_on_stdout(world: World, cli: Cli) -> None:
    party, key = world.register(["producer"])
    world.append_events(party, key, 2)
    r = cli("audit")
    rep = json.loads(r.out)
    assert rep["ok"] is True and rep["entries"] == world.ledger.size()
    assert r.err.startswith("audit: ") and r.err.endswith(": sound\n")
