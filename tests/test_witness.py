"""Witnesses (C2SP tlog-witness, tlog-cosignature) fed with the ledger's real checkpoints
and consistency proofs: honest growth is cosigned, a split view and a rollback are not."""

from __future__ import annotations

import base64
import hashlib
import struct
from pathlib import Path

import nacl.signing
import pytest

from ledger.core.errors import NoteError
from ledger.core.note import NoteSigner
from ledger.log.cosigner import CosignatureVerifier, Cosigner, Witness, request_body
from tests.support import ORIGIN, World


def _witness(w: World, tmp_path: Path, name: str = "witness.example/customs") -> Witness:
    return Witness(
        Cosigner(name, nacl.signing.SigningKey(bytes(range(32)))),
        {ORIGIN: w.ledger.log_verifier()},
        tmp_path / f"{name.replace('/', '_')}.json",
    )


def test_cosignature_format_matches_the_spec_by_hand() -> None:
    key = nacl.signing.SigningKey(bytes(32))
    c = Cosigner("w.example/1", key)
    body = "example.com/log\n5\n" + base64.b64encode(bytes(32)).decode() + "\n"
    line = c.cosign(body, timestamp=1679315147)
    assert line.startswith("\u2014 w.example/1 ") and line.endswith("\n")
    blob = base64.b64decode(line.split()[-1])
    pk = bytes(key.verify_key)
    assert blob[:4] == hashlib.sha256(b"w.example/1\n\x04" + pk).digest()[:4]
    assert struct.unpack(">Q", blob[4:12])[0] == 1679315147
    msg = b"cosignature/v1\ntime 1679315147\n" + body.encode()
    key.verify_key.verify(msg, blob[12:])  # raises if the signed message differs
    v = CosignatureVerifier.from_vkey(c.vkey())
    assert v.verify(body + "\n" + line) == 1679315147
    tampered = body.replace("\n5\n", "\n6\n")
    with pytest.raises(NoteError):
        v.verify(tampered + "\n" + line)


def test_honest_growth_is_cosigned_and_survives_a_restart(world: World, tmp_path: Path) -> None:
    wit = _witness(world, tmp_path)
    first = world.ledger.latest_checkpoint()
    a = wit.add_checkpoint(request_body(0, [], first))
    assert a.status == 200
    v = CosignatureVerifier.from_vkey(wit.cosigner.vkey())
    v.verify(first + a.body)
    size1 = world.ledger.size()
    party, key = world.register()
    world.append_events(party, key, 5)
    second = world.ledger.latest_checkpoint()
    proof = world.ledger.consistency_proof(size1).hashes
    restarted = _witness(world, tmp_path)  # a new process, the same state file
    b = restarted.add_checkpoint(request_body(size1, list(proof), second))
    assert b.status == 200, b.body
    v.verify(second + b.body)
    assert restarted.latest(ORIGIN) == (world.ledger.size(), world.ledger.root())


def test_refusals(world: World, tmp_path: Path) -> None:
    wit = _witness(world, tmp_path)
    cp = world.ledger.latest_checkpoint()
    assert wit.add_checkpoint(request_body(0, [], cp)).status == 200
    size1 = world.ledger.size()
    party, key = world.register()
    world.append_events(party, key, 3)
    cp2 = world.ledger.latest_checkpoint()
    good = list(world.ledger.consistency_proof(size1).hashes)
    stale = wit.add_checkpoint(request_body(0, [], cp2))
    assert (stale.status, stale.body, stale.content_type) == (409, f"{size1}\n", "text/x.tlog.size")
    bad = [bytes(32)] + good[1:]
    assert wit.add_checkpoint(request_body(size1, bad, cp2)).status == 422
    forger = NoteSigner(ORIGIN, nacl.signing.SigningKey(bytes(31) + b"\x01"))
    forged = forger.sign(cp2.split("\n\n")[0] + "\n")
    assert wit.add_checkpoint(request_body(size1, good, forged)).status == 403
    other = NoteSigner("elsewhere/log", nacl.signing.SigningKey(bytes(32)))
    assert (
        wit.add_checkpoint(
            request_body(0, [], other.sign(cp2.split("\n\n")[0].replace(ORIGIN, "elsewhere/log") + "\n"))
        ).status
        == 404
    )
    assert wit.add_checkpoint(request_body(10**6, [], cp2)).status == 400
    assert wit.add_checkpoint("old 01\n\n" + cp2).status == 400
    assert wit.add_checkpoint(request_body(size1, good, cp2)).status == 200


def test_a_split_view_is_refused(world: World, tmp_path: Path) -> None:
    """An operator who signs a second, different checkpoint of the same size (a fork)
    cannot get it cosigned by a witness that saw the first."""
    wit = _witness(world, tmp_path)
    assert wit.add_checkpoint(request_body(0, [], world.ledger.latest_checkpoint())).status == 200
    size = world.ledger.size()
    signer = world.ledger.note_signer
    assert signer is not None
    fork = signer.sign(f"{ORIGIN}\n{size}\n{base64.b64encode(bytes(32)).decode()}\n")
    r = wit.add_checkpoint(request_body(size, [], fork))
    assert r.status == 409 and r.body == f"{size}\n"
    party, key = world.register()
    world.append_events(party, key, 2)
    honest = world.ledger.latest_checkpoint()
    bigger_fork = signer.sign(
        f"{ORIGIN}\n{world.ledger.size()}\n{base64.b64encode(hashlib.sha256(b'x').digest()).decode()}\n"
    )
    proof = list(world.ledger.consistency_proof(size).hashes)
    assert wit.add_checkpoint(request_body(size, proof, bigger_fork)).status == 422
    assert wit.add_checkpoint(request_body(size, proof, honest)).status == 200


def test_witness_serve_over_http_keeps_state_across_restarts(world: World, tmp_path: Path, port: int) -> None:
    import os
    import subprocess
    import sys
    import time

    import httpx

    env = {**os.environ, "SUYUAN_HOME": str(tmp_path / "witness-home")}
    root = os.path.dirname(os.path.dirname(__file__))
    init = subprocess.run(
        [sys.executable, "-m", "tools.cli", "witness", "init", "regulator.example/w1"],
        env=env,
        capture_output=True,
        text=True,
        cwd=root,
        check=True,
    )
    vkey = __import__("json").loads(init.stdout)["vkey"]
    verifier = CosignatureVerifier.from_vkey(vkey)

    def serve() -> tuple[subprocess.Popen[bytes], str]:  # on the held port, each time
        p = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tools.cli",
                "witness",
                "serve",
                "--name",
                "regulator.example/w1",
                "--port",
                str(port),
                "--log-key",
                world.ledger.log_verifier().vkey(),
            ],
            env=env,
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        url = f"http://127.0.0.1:{port}/add-checkpoint"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.post(url, content=b"", timeout=2)
                return p, url
            except httpx.TransportError:
                time.sleep(0.2)
        p.kill()
        raise AssertionError("witness did not start")

    p, url = serve()
    try:
        cp = world.ledger.latest_checkpoint()
        r = httpx.post(url, content=request_body(0, [], cp).encode())
        assert r.status_code == 200
        verifier.verify(cp + r.text)
    finally:
        p.terminate()
        p.communicate(timeout=20)
    size = world.ledger.size()
    party, key = world.register()
    world.append_events(party, key, 2)
    p, url = serve()
    try:
        cp2 = world.ledger.latest_checkpoint()
        stale = httpx.post(url, content=request_body(0, [], cp2).encode())
        assert stale.status_code == 409 and stale.text == f"{size}\n"
        assert stale.headers["content-type"].startswith("text/x.tlog.size")
        proof = list(world.ledger.consistency_proof(size).hashes)
        ok = httpx.post(url, content=request_body(size, proof, cp2).encode())
        assert ok.status_code == 200
        verifier.verify(cp2 + ok.text)
    finally:
        p.terminate()
        p.communicate(timeout=20)
