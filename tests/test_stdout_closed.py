"""A closed stdout (``suyuan submit … | head -1``): the submit stops between batches, says
on stderr how far it got, exits 3, and what landed is still witnessed; reading commands
just stop (exit 0, nothing on stderr); an appending command says its entry landed.

Real processes and pipes: a shell pipeline into ``head -1`` with a witness on loopback,
and pipes whose reading end is closed before the command writes a byte."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nacl.signing
import pytest

from api.witness_app import create_witness_app
from ledger.core.keys import PartyKey
from ledger.core.note import Checkpoint, NoteVerifier
from ledger.core.statements import sign_one
from ledger.log.cosigner import CosignatureVerifier, Cosigner, Witness
from ledger.log.keystore import KeyStore
from ledger.log.sequencer import Ledger
from ledger.log.witnesses import cosigned_note
from ledger.store.db import Store
from tests.support import Server
from tests.test_cli import ORIGIN, PARALLEL, REPO, Cli, Run, event_body, uscc

EVENTS = 600  # receipts of ~700 bytes each: far more than a pipe holds
BATCH = 20
STOPPED = re.compile(
    r"stopped: stdout was closed after (\d+) envelopes had landed \(the "
    r"ledger's size is now (\d+)\); the rest was not submitted"
)


@pytest.fixture
def witnessed(db_url: str, tmp_path: Path) -> Iterator[tuple[Cli, str, Cosigner]]:
    """A ledger with one producer, and a witness on loopback that its home asks."""
    cli = Cli(db_url, tmp_path / "home")
    log_key = cli("init").json()["logKey"]
    cli("keygen", "p")
    party = uscc(61)
    cli("party", "register", "--id", party, "--name", "唐山管道", "--roles", "producer", "--key", "p")
    cosigner = Cosigner("w.example/pipe", nacl.signing.SigningKey(b"\x07" * 32))
    witness = Witness(cosigner, {ORIGIN: NoteVerifier.from_vkey(log_key)}, tmp_path / "w.json")
    with Server(create_witness_app(witness)) as server:
        cli("witness", "add", "--url", f"http://127.0.0.1:{server.port}", "--key", cosigner.vkey())
        yield cli, party, cosigner


def events_file(cli: Cli, party: str, tmp: Path) -> Path:
    key = KeyStore(cli.home).load("p")
    path = tmp / "events.jsonl"
    path.write_text(
        "".join(
            json.dumps(
                sign_one(
                    kind="event",
                    signer=party,
                    key=key,
                    body=event_body(n),
                    issued="2026-11-27T13:05:00+08:00",
                )
            )
            + "\n"
            for n in range(EVENTS)
        )
    )
    return path


def witnessed_size(cli: Cli, cosigner: Cosigner) -> int:
    store = Store(cli.db)
    try:
        led = Ledger(store)
        note = cosigned_note(led)
        text = led.log_verifier().verify(note)
    finally:
        store.dispose()
    CosignatureVerifier.from_vkey(cosigner.vkey()).verify(note)
    return Checkpoint.parse(text).size


def test_submit_into_head_stops_says_so_and_is_witnessed(
    witnessed: tuple[Cli, str, Cosigner], tmp_path: Path
) -> None:
    cli, party, cosigner = witnessed
    events = events_file(cli, party, tmp_path)
    err, rc = tmp_path / "submit.err", tmp_path / "submit.rc"
    script = (
        f"set -o pipefail; {sys.executable} -m tools.cli submit {events} --batch {BATCH} "
        f"2>{err} | head -1; echo ${{PIPESTATUS[0]}} >{rc}"
    )
    shown = subprocess.run(
        ["bash", "-c", script], cwd=REPO, env=cli.env(), capture_output=True, text=True, timeout=300
    )
    first = json.loads(shown.stdout)
    assert first["seq"] == 2 and shown.stdout.count("\n") == 1
    assert rc.read_text().strip() == "3"
    lines = err.read_text().splitlines()
    assert "Traceback" not in err.read_text() and "Exception ignored" not in err.read_text()
    stop = STOPPED.fullmatch(lines[0])
    assert stop is not None, lines
    landed, size = int(stop[1]), int(stop[2])
    assert BATCH <= landed < EVENTS and landed % BATCH == 0 and size == 2 + landed
    assert lines[1:] == [f"witnessed: 1 of 1 cosigned size {size} (quorum 1)"]
    # The ledger holds exactly what the submit said, and the witness cosigned that size.
    assert cli.size() == size
    assert witnessed_size(cli, cosigner) == size
    # Nothing is lost: the same input again lands the rest, the landed part idempotently.
    receipts = cli("submit", str(events)).lines()
    assert [r["seq"] for r in receipts] == list(range(2, 2 + EVENTS))
    assert cli("audit").rc == 0

    # A file refused after another one landed: the landed one is witnessed all the same.
    more, stranger = tmp_path / "more.json", tmp_path / "stranger.json"
    key = KeyStore(cli.home).load("p")
    more.write_text(
        json.dumps(
            sign_one(
                kind="event",
                signer=party,
                key=key,
                body=event_body(EVENTS),
                issued="2026-11-27T13:05:00+08:00",
            )
        )
    )
    nobody = uscc(63)
    stranger.write_text(
        json.dumps(
            sign_one(
                kind="event",
                signer=nobody,
                key=PartyKey.generate(nobody),
                body=event_body(EVENTS + 1),
                issued="2026-11-27T13:05:00+08:00",
            )
        )
    )
    refused = cli("submit", str(more), str(stranger), rc=2)
    size = 3 + EVENTS
    assert refused.err.splitlines()[0] == f"witnessed: 1 of 1 cosigned size {size} (quorum 1)"
    assert refused.err.splitlines()[1].startswith("error [batch_rejected]: ")
    assert cli.size() == witnessed_size(cli, cosigner) == size


def closed_stdout(cli: Cli, *args: str) -> Run:
    """Run with a stdout pipe whose reading end is closed before the command starts."""
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "tools.cli", *args],
            cwd=REPO,
            env=cli.env(),
            stdout=write,
            stderr=subprocess.PIPE,
            timeout=120,
        )
    finally:
        os.close(write)
    return Run(args, proc.returncode, "", proc.stderr.decode())


def test_closed_stdout_from_the_start(witnessed: tuple[Cli, str, Cosigner], tmp_path: Path) -> None:
    cli, party, cosigner = witnessed
    events = events_file(cli, party, tmp_path)
    run = closed_stdout(cli, "submit", str(events), "--batch", str(BATCH))
    assert run.rc == 3, run
    first, *rest = run.err.splitlines()
    stop = STOPPED.fullmatch(first)
    assert stop is not None and (int(stop[1]), int(stop[2])) == (BATCH, 2 + BATCH), run.err
    assert rest == [f"witnessed: 1 of 1 cosigned size {2 + BATCH} (quorum 1)"]
    assert witnessed_size(cli, cosigner) == cli.size() == 2 + BATCH

    # Reading commands, long output or short: they stop, exit 0, and say nothing.
    code = "https://id.gs1.org/01/09506000134352/21/3"
    reads = [
        ("entry", "2"),
        ("epcis", "export", code),
        ("trace", code),
        ("findings",),
        ("findings", "--summary"),
        ("checkpoint",),
        ("stats",),
        ("party", "show", "--id", party),
    ]
    with ThreadPoolExecutor(PARALLEL) as pool:
        for run in pool.map(lambda args: closed_stdout(cli, *args), reads):
            assert (run.rc, run.err) == (0, ""), run
    # An appending command whose receipt nobody reads: its entry stays, and it says so.
    cli("keygen", "q")
    other = uscc(62)
    run = closed_stdout(
        cli, "party", "register", "--id", other, "--name", "乙", "--roles", "producer", "--key", "q"
    )
    assert run.rc == 3 and run.err.startswith("stopped: stdout was closed") and run.err.count("\n") == 1
    assert cli("party", "show", "--id", other).json()["id"] == other
