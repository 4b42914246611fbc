"""Keys in SUYUAN_HOME: a new ledger never signs with the demo's public keys or another
ledger's, key files are written whole (or not at all) and a damaged one is a one-line
refusal naming it, and two `suyuan init` on one database leave exactly one ledger.

Everything runs through the real command (subprocesses, or ``tools.cli.main`` in this
process where a matrix of cases would otherwise take minutes)."""

from __future__ import annotations

import base64
import fcntl
import gc
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nacl.signing
import pytest
import sqlalchemy as sa

from ledger.core.note import NoteVerifier
from ledger.log.home import DEFAULT_ORIGIN
from ledger.store.db import Store
from tests.test_cli import REPO, Cli, Run, home_files, one_error_line, run_all, uscc
from tools import cli as cli_module
from tools.demo import operator_keys, party_key

DEMO_SCALE = "0.05"


def key_files(home: Path) -> set[str]:
    return {str(p.relative_to(home)) for p in home.rglob("*.key")} if home.exists() else set()


def entry_count(url: str) -> int:
    store = Store(url)
    try:
        if not store.is_initialised():
            return 0
        with store.engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM entries")).scalar_one())
    finally:
        store.dispose()


def demo_public_keys() -> tuple[bytes, bytes]:
    """(checkpoint key, registrar key) of the demo, derived here from its public seed."""
    signer, registrar = operator_keys(DEFAULT_ORIGIN)
    return bytes(signer.signing_key.verify_key), registrar.public_key


# --- item 10: the demo's keys are never a new ledger's -----------------------------------------


def test_init_after_the_demo_refuses_its_keys_and_a_new_home_gets_fresh_ones(
    db_url: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    demo = Cli(f"sqlite:///{tmp_path}/demo.db", home)
    built = json.loads(demo("demo", "--scale", DEMO_SCALE).out)
    demo_vkey = demo("log-key").out.strip()

    # init of a new database in the demo's home: refused, naming the files to move, and
    # neither the home nor the new database changes.
    before = home_files(home)
    new = Cli(db_url, home)
    line = one_error_line(new("init", rc=2), "home_in_use")
    assert str(home / "log-note.key") in line and str(home / "keys" / "registrar.key") in line
    assert "demo" in line and "SUYUAN_HOME" in line
    assert home_files(home) == before
    assert entry_count(db_url) == 0

    # The demo is deterministic down to its operator's keys, which anyone can derive.
    demo_note_key, demo_registrar_key = demo_public_keys()
    assert NoteVerifier.from_vkey(demo_vkey).verify_key.encode() == demo_note_key
    registrar_file = json.loads((home / "keys" / "registrar.key").read_text())
    assert base64.b64decode(registrar_file["publicKey"]) == demo_registrar_key

    # Moving the two files away, as told, lets init make a ledger with keys of its own.
    aside = tmp_path / "demo-keys-aside"
    aside.mkdir()
    shutil.move(home / "log-note.key", aside / "log-note.key")
    shutil.move(home / "keys" / "registrar.key", aside / "registrar.key")
    doc = new("init").json()
    fresh_note = NoteVerifier.from_vkey(doc["logKey"]).verify_key.encode()
    fresh_registrar = base64.b64decode(json.loads((home / "keys" / "registrar.key").read_text())["publicKey"])
    assert fresh_note != demo_note_key and fresh_registrar != demo_registrar_key
    genesis = new("entry", "0").json()["decoded"]["envelope"]["statement"]["body"]
    assert genesis["logKey"] == doc["logKey"] != demo_vkey
    assert base64.b64decode(genesis["registrar"]["publicKey"]) == fresh_registrar

    # The demo still works from a home of its own (and from its old database: the same keys
    # again, derived), and appends nothing twice.
    again = Cli(demo.db, tmp_path / "demo-home-2")
    rerun = json.loads(again("demo", "--scale", DEMO_SCALE).out)
    assert rerun["appended"] == 0 and rerun["entries"] == built["entries"]
    assert again("log-key").out.strip() == demo_vkey


def test_demo_into_a_home_of_another_ledger_overwrites_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    real = Cli(f"sqlite:///{tmp_path}/real.db", home)
    real("init")
    real("keygen", "demo-mirai")  # a key of this operator's that happens to bear a demo name
    before = home_files(home)
    demo = Cli(f"sqlite:///{tmp_path}/demo.db", home)
    line = one_error_line(demo("demo", "--scale", DEMO_SCALE, rc=2), "home_in_use")
    for name in ("log-note.key", "keys/registrar.key", "keys/demo-mirai.key"):
        assert str(home / name) in line, name
    assert home_files(home) == before
    # With the ledger's keys gone elsewhere, a party key of a demo name is still not taken
    # for the demo's, nor replaced, and the demo's database is left without a ledger.
    shutil.move(home / "log-note.key", tmp_path / "aside-note.key")
    shutil.move(home / "keys" / "registrar.key", tmp_path / "aside-registrar.key")
    before = home_files(home)
    line = one_error_line(demo("demo", "--scale", DEMO_SCALE, rc=2), "home_in_use")
    assert str(home / "keys" / "demo-mirai.key") in line and "log-note.key" not in line
    assert home_files(home) == before
    mirai = json.loads((home / "keys" / "demo-mirai.key").read_text())
    assert mirai["publicKey"] != party_key("mirai").public_key_b64
    assert entry_count(demo.db) == 0


# --- key files: written whole, read with a clear refusal ---------------------------------------


def test_key_files_are_private_complete_and_never_overwritten(tmp_path: Path) -> None:
    cli = Cli(f"sqlite:///{tmp_path}/ledger.db", tmp_path / "home")
    cli("init")
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "tools.cli", "keygen", "same"],
            cwd=REPO,
            env=cli.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    results = [(p.returncode, out, err) for p in runs for out, err in [p.communicate(timeout=60)]]
    winners = [json.loads(out) for rc, out, _ in results if rc == 0]
    assert len(winners) == 1, results
    assert all(
        rc == 2 and b"error [config]: key 'same' already exists" in err for rc, _, err in results if rc != 0
    )
    stored = json.loads((cli.home / "keys" / "same.key").read_text())
    assert stored["publicKey"] == winners[0]["publicKey"]
    seed = base64.b64decode(stored["seed"])
    assert base64.b64encode(bytes(nacl.signing.SigningKey(seed).verify_key)).decode() == stored["publicKey"]
    for path in (
        cli.home / "log-note.key",
        cli.home / "keys" / "registrar.key",
        cli.home / "keys" / "same.key",
        cli.home / "config.json",
    ):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE((cli.home / "keys").stat().st_mode) == 0o700
    leftovers = [p.name for p in cli.home.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


DAMAGES: dict[str, Callable[[Path], None]] = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
    "not json": lambda p: p.write_bytes(b"\x00\xff\xfe not a key \x01"),
    "empty": lambda p: p.write_bytes(b""),
    "a list": lambda p: p.write_text("[1, 2]"),
    "seed not base64": lambda p: p.write_text(
        json.dumps({**json.loads(p.read_text()), "seed": "%%%not-base64%%%"})
    ),
    "seed too short": lambda p: p.write_text(
        json.dumps({**json.loads(p.read_text()), "seed": base64.b64encode(b"k" * 31).decode()})
    ),
    "no seed": lambda p: p.write_text(json.dumps({"name": "x"})),
    "a directory": lambda p: (p.unlink(), p.mkdir()),  # type: ignore[func-returns-value]
}


@contextmanager
def damaged(path: Path, how: str) -> Iterator[None]:
    saved = path.read_bytes()
    DAMAGES[how](path)
    try:
        yield
    finally:
        if path.is_dir():
            path.rmdir()
        path.write_bytes(saved)


def in_process(
    cli: Cli, args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Run:
    monkeypatch.setenv("SUYUAN_DB", cli.db)
    monkeypatch.setenv("SUYUAN_HOME", str(cli.home))
    rc = cli_module.main(args)
    gc.collect()  # the engines of the command: their connections close now
    got = capsys.readouterr()
    return Run(tuple(args), rc, got.out, got.err)


def test_a_damaged_key_file_is_one_sentence_naming_it_for_every_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Key files are read before any database is asked anything: SQLite alone here.
    cli = Cli(f"sqlite:///{tmp_path}/ledger.db", tmp_path / "home")
    cli("init")
    party, other = uscc(41), uscc(42)
    *_, witness_run = cli.many([("keygen", "p"), ("keygen", "q"), ("witness", "init", "w.example/one")])
    witness = witness_run.json()
    cli("party", "register", "--id", party, "--name", "唐山测试", "--roles", "producer", "--key", "p")
    body = tmp_path / "body.json"
    body.write_text(
        json.dumps(
            {
                "type": "ObjectEvent",
                "eventTime": "2026-11-27T13:05:00+08:00",
                "eventTimeZoneOffset": "+08:00",
                "action": "OBSERVE",
                "bizStep": "inspecting",
                "epcList": ["https://id.gs1.org/01/09506000134352/21/1"],
            }
        )
    )
    (tmp_path / "env.json").write_text(cli("sign", "--key", "p", "--signer", party, str(body)).out)
    epcis = tmp_path / "doc.jsonld"
    epcis.write_text(
        json.dumps(
            {
                "type": "EPCISDocument",
                "schemaVersion": "2.0",
                "creationDate": "2026-11-27T13:05:00+08:00",
                "epcisBody": {"eventList": [json.loads(body.read_text())]},
            }
        )
    )
    keys, note = cli.home / "keys", cli.home / "log-note.key"
    witness_file = cli.home / "witness" / "w.example_one.key"
    party_key_commands = [
        ["sign", "--key", "p", "--signer", party, str(body)],
        ["token", "--key", "p", "--signer", party],
        ["party", "rotate", "--id", party, "--old-key", "p", "--new-key", "q"],
        ["party", "revoke", "--id", party, "--key-id", "0" * 16, "--key", "p"],
        ["epcis", "import", str(epcis), "--signer", party, "--key", "p"],
        [
            "list",
            "load",
            str(REPO / "schemas" / "positive-list.sample.json"),
            "--key",
            "p",
            "--signer",
            party,
        ],
    ]
    cases: list[tuple[Path, list[str]]] = [
        *[(keys / "p.key", c) for c in party_key_commands],
        (
            keys / "registrar.key",
            ["party", "register", "--id", other, "--name", "乙", "--roles", "producer", "--key", "q"],
        ),
        (keys / "registrar.key", ["party", "revoke", "--id", party, "--key-id", "0" * 16]),
        (note, ["submit", str(tmp_path / "env.json")]),
        (note, ["checkpoint"]),
    ]
    size = cli.size()
    for path, args in cases:
        for how in DAMAGES:
            with damaged(path, how):
                run = in_process(cli, args, capsys, monkeypatch)
            assert run.rc == 2, (how, args, run)
            line = one_error_line(run, "bad_key_file")
            assert line.endswith(f"({path})"), (how, line)
    assert cli.size() == size  # nothing was appended by any of them
    # The real command for those that would start a server (and, failing, never end), and
    # for init from a home with a damaged key: no traceback, one line naming the file.
    log_key = cli("log-key").out.strip()
    second = Cli(f"sqlite:///{tmp_path}/second.db", cli.home)
    for how in ("truncated", "a directory", "seed too short"):
        with damaged(witness_file, how), damaged(note, how):
            wit, serve, init_elsewhere = run_all(
                [
                    (
                        cli,
                        ("witness", "serve", "--name", witness["name"], "--log-key", log_key, "--port", "9"),
                        b"",
                    ),
                    (cli, ("serve", "--port", "9"), b""),
                    (second, ("init",), b""),
                ],
                rc=2,
            )
        assert one_error_line(wit, "bad_key_file").endswith(f"({witness_file})")
        assert one_error_line(serve, "bad_key_file").endswith(f"({note})")
        assert one_error_line(init_elsewhere, "bad_key_file").endswith(f"({note})")


def test_the_demo_refuses_a_damaged_key_file_of_its_own(tmp_path: Path) -> None:
    demo = Cli(f"sqlite:///{tmp_path}/demo.db", tmp_path / "home")
    demo("demo", "--scale", DEMO_SCALE)
    for path in (
        tmp_path / "home" / "log-note.key",
        tmp_path / "home" / "keys" / "demo-mirai.key",
        tmp_path / "home" / "demo-zone.key",
    ):
        with damaged(path, "seed too short" if path.name != "demo-zone.key" else "truncated"):
            run = demo("demo", "--scale", DEMO_SCALE, rc=2)
        assert one_error_line(run, "bad_key_file").endswith(f"({path})")


# --- concurrent init on one database ------------------------------------------------------------


@contextmanager
def appenders_held(url: str) -> Iterator[None]:
    """Hold the lock every append queues on (the lock file beside a SQLite database, the
    schema's advisory lock on PostgreSQL), so that concurrent inits all reach their
    genesis append before any of them can make it."""
    if url.startswith("sqlite"):
        fd = os.open(url.removeprefix("sqlite:///") + "-writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            os.close(fd)
        return
    eng = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(sa.text("SELECT pg_advisory_lock(hashtext(current_schema()))"))
        try:
            yield
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(hashtext(current_schema()))"))
    eng.dispose()


def test_concurrent_inits_leave_one_ledger_and_refuse_the_others(db_url: str, tmp_path: Path) -> None:
    store = Store(db_url)
    store.migrate()  # so that all of them pass their check of an empty database
    store.dispose()
    homes = [tmp_path / f"home{i}" for i in range(4)]
    clis = [Cli(db_url, h) for h in [*homes, homes[0]]]  # two of them share a home
    with appenders_held(db_url):
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "tools.cli", "init"],
                cwd=REPO,
                env=c.env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for c in clis
        ]
        deadline = time.monotonic() + 90
        while not all((h / "log-note.key").exists() for h in homes):
            assert time.monotonic() < deadline, [p.poll() for p in procs]
            time.sleep(0.05)
    runs = [
        Run(("init",), p.returncode, out.decode(), err.decode())
        for p in procs
        for out, err in [p.communicate(timeout=120)]
    ]
    winners = [i for i, r in enumerate(runs) if r.rc == 0]
    assert len(winners) == 1, runs
    for i, run in enumerate(runs):
        if i not in winners:
            one_error_line(run, "already_initialised")
    won = clis[winners[0]]
    # Exactly one genesis, signed with the winner's keys; the losers took theirs back, so
    # each of their homes can still make a ledger.
    assert won.size() == 1
    genesis = won("entry", "0").json()["decoded"]["envelope"]["statement"]
    assert genesis["kind"] == "genesis"
    assert genesis["body"]["logKey"] == runs[winners[0]].json()["logKey"]
    assert won("audit").rc == 0
    for h in homes:
        if h != won.home:
            assert key_files(h) == set(), h
    loser = next(h for h in homes if h != won.home)
    Cli(f"sqlite:///{tmp_path}/another.db", loser)("init")
    # And the ledger is usable: a party registers and its event lands.
    won("keygen", "p")
    receipt: Any = won(
        "party", "register", "--id", uscc(43), "--name", "丙", "--roles", "producer", "--key", "p"
    ).json()
    assert receipt["seq"] == 1 and won("audit").rc == 0
