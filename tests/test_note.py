"""C2SP signed notes and checkpoints against the published known answer."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import nacl.signing
import pytest

from ledger.core import note
from ledger.core.errors import NoteError

KAT = json.loads((Path(__file__).resolve().parent / "vectors" / "signed-note.json").read_text())


def test_known_answer_verifies() -> None:
    v = note.NoteVerifier.from_vkey(KAT["verifierKey"])
    text = v.verify(KAT["note"])
    assert text == KAT["note"].split("\n\n")[0] + "\n"
    assert KAT["valid"] is True


def test_known_answer_with_any_changed_character_fails() -> None:
    v = note.NoteVerifier.from_vkey(KAT["verifierKey"])
    original: str = KAT["note"]
    sep = original.index("\n\n")
    for i in range(0, sep, 7):
        changed = original[:i] + ("X" if original[i] != "X" else "Y") + original[i + 1 :]
        with pytest.raises(NoteError):
            v.verify(changed)


def test_verifier_key_hash_must_match() -> None:
    name, kh, key = KAT["verifierKey"].split("+")
    with pytest.raises(NoteError, match="does not match"):
        note.NoteVerifier.from_vkey(f"{name}+{'00000000'}+{key}")
    with pytest.raises(NoteError, match="does not match"):
        note.NoteVerifier.from_vkey(f"Other+{kh}+{key}")


def test_signer_output_round_trips_and_matches_vkey_form() -> None:
    sk = nacl.signing.SigningKey(bytes(range(32)))
    signer = note.NoteSigner("suyuan.local/log", sk)
    vkey = signer.verifier_key()
    name, kh, key = vkey.split("+", 2)
    assert name == "suyuan.local/log" and len(kh) == 8
    assert base64.b64decode(key) == b"\x01" + bytes(sk.verify_key)
    cp = note.Checkpoint("suyuan.local/log", 7, bytes(range(32)))
    signed = signer.sign(cp.body())
    assert signed.startswith("suyuan.local/log\n7\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n\n\u2014 ")
    got = note.open_checkpoint(signed, note.NoteVerifier.from_vkey(vkey), origin="suyuan.local/log")
    assert got == cp
    other = note.NoteSigner("suyuan.local/log", nacl.signing.SigningKey(bytes(32)))
    with pytest.raises(NoteError, match="no signature by"):
        note.open_checkpoint(signed, note.NoteVerifier.from_vkey(other.verifier_key()))
    with pytest.raises(NoteError, match="origin"):
        note.open_checkpoint(signed, note.NoteVerifier.from_vkey(vkey), origin="elsewhere/log")


@pytest.mark.parametrize(
    "body",
    [
        "",
        "o\n",
        "o\n1\n",
        "o\n01\nAA==\n",
        "o\n-1\n" + "A" * 44 + "\n",
        "o\n1\nnot base64\n",
        "o\n1\nAAAA\n",
        "\n1\n" + base64.b64encode(bytes(32)).decode() + "\n",
    ],
)
def test_bad_checkpoint_bodies_are_refused(body: str) -> None:
    with pytest.raises(NoteError):
        note.Checkpoint.parse(body)


def test_extension_lines_are_allowed() -> None:
    body = "o\n3\n" + base64.b64encode(bytes(32)).decode() + "\nextra line\n"
    assert note.Checkpoint.parse(body).size == 3
