""" "Verified" must mean verified: attacks by someone with write access to the database
(and, for some, the operator's checkpoint key), through the public interfaces — the
consumer page over HTTP, ``/log-key``, ``suyuan verify`` of a bundle, the scope audit and
``suyuan audit`` — on SQLite and PostgreSQL.

Each attack INSERTs entries the rules would have refused (tests/forge.py), or edits the
projections, and each interface must say "not verified" and name the seq, or show what
the signed entries say."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.app import create_app
from api.settings import Settings
from ledger.core.keys import PartyKey
from ledger.core.note import NoteSigner
from ledger.core.statements import sign_one
from ledger.log.audit import audit
from ledger.log.bundle import make_bundle, verify_bundle
from ledger.log.home import Home
from ledger.log.sequencer import Ledger
from ledger.queries.chain_audit import scope_audit
from tests.forge import forge
from tests.pagechain import NAME_ZH, FormulaChain, item
from tests.support import ORIGIN, Client, World, new_uscc

REPO = Path(__file__).resolve().parent.parent
JSON = {"Accept": "application/json"}
BROWSER = {"Accept": "text/html", "User-Agent": "Mozilla/5.0 (iPhone) Mobile"}
NOW = "2026-12-01T09:00:00+08:00"


def path(code: str) -> str:
    return code.removeprefix("https://id.gs1.org")


def suyuan(w: World, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.cli", *args],
        cwd=REPO,
        text=True,
        capture_output=True,
        timeout=120,
        env={"SUYUAN_DB": w.url, "SUYUAN_HOME": str(w.home.path), "PATH": os.environ.get("PATH", ""), **env},
    )


def commissioning(
    party: str, key: PartyKey, code: str, name: str = "仿冒奶粉 Fake formula"
) -> dict[str, Any]:
    return sign_one(
        kind="event",
        signer=party,
        key=key,
        issued=NOW,
        body={
            "type": "ObjectEvent",
            "eventTime": NOW,
            "eventTimeZoneOffset": "+08:00",
            "action": "ADD",
            "bizStep": "commissioning",
            "epcList": [code],
            "ilmd": {"gs1:productName": name, "cbvmda:lotNumber": "F1"},
        },
    )


def recall(party: str, key: PartyKey, code: str) -> dict[str, Any]:
    return sign_one(
        kind="event",
        signer=party,
        key=key,
        issued=NOW,
        body={
            "type": "ObjectEvent",
            "eventTime": NOW,
            "eventTimeZoneOffset": "+08:00",
            "action": "OBSERVE",
            "bizStep": "cbec:recalling",
            "disposition": "recalled",
            "epcList": [code],
            "cbec:recall": {"reason": "FORGED RECALL", "scope": [code]},
        },
    )


def registration(w: World, party: str, key: PartyKey, cosigners: list[Any]) -> dict[str, Any]:
    return sign_one(
        kind="party.register",
        signer=party,
        key=key,
        cosigners=cosigners,
        body={
            "id": party,
            "name": "冒牌乳业 Fake Dairy",
            "roles": ["producer"],
            "publicKey": key.public_key_b64,
        },
    )


def page(client: Client, code: str) -> dict[str, Any]:
    got = client.get(path(code), headers=JSON)
    assert got.status_code == 200, got.text
    facts: dict[str, Any] = got.json()
    return facts


def visible(client: Client, code: str) -> str:
    html = client.get(path(code), headers=BROWSER).text
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html.split("</style>")[-1]))


def test_forged_party_product_checkpoint_and_log_key_row(
    world: World, client: Client, tmp_path: Path
) -> None:
    """Issue 10, item 1: a party.register signed only by its own key, a commissioning by
    it, the Merkle nodes, a checkpoint signed by the forger's own note key, and log_meta's
    log_key set to that key."""
    FormulaChain(world).build()
    real = world.ledger.note_signer.verifier_key()  # type: ignore[union-attr]
    forger = Home(tmp_path / "forger").create_note_signer(ORIGIN)
    party = new_uscc()
    key = PartyKey.generate(party)
    fake = item("FAKE0001")
    reg_seq, event_seq = forge(
        world, [registration(world, party, key, []), commissioning(party, key, fake)], note_signer=forger
    )
    world.store.raw("UPDATE log_meta SET value = :k WHERE name = 'log_key'", {"k": forger.verifier_key()})

    facts = page(client, fake)
    v = facts["verification"]
    assert v["verified"] is False and v["entriesVerified"] == 0, v
    assert v["problems"][0].startswith("checkpoint: the note carries no signature by "), v
    # Nothing the forger wrote is shown as a fact.
    assert facts["timeline"] == [] and facts["product"]["names"] == {}
    assert facts["product"]["producer"] is None and facts["recall"]["recalled"] is False
    text = visible(client, fake)
    assert "✗" in text and "Fake" not in text and "仿冒" not in text
    assert client.get("/log-key").text == real + "\n"
    assert suyuan(world, "log-key").stdout == real + "\n"

    # The forger's own bundle (made with its key pinned) is refused with the real one.
    bundle = make_bundle(Ledger(world.store, log_key=forger.verifier_key()), [event_seq])
    assert [e["seq"] for e in bundle["entries"]] == [0, reg_seq, event_seq]
    (tmp_path / "forged.json").write_text(json.dumps(bundle))
    pinned = suyuan(world, "verify", str(tmp_path / "forged.json"), SUYUAN_LOG_KEY=real)
    assert pinned.returncode == 1, pinned.stderr
    assert json.loads(pinned.stdout)["problems"][0].startswith("checkpoint: ")
    # Even trusting the key inside the bundle: the genesis names another one, and the
    # registration has no registrar's cosignature.
    trusting = suyuan(world, "verify", str(tmp_path / "forged.json"))
    assert trusting.returncode == 1
    problems = json.loads(trusting.stdout)["problems"]
    assert problems[0].startswith("seq 0: the genesis names log key " + real), problems
    assert any(p.startswith(f"seq {reg_seq}: ") and "registrar's cosignature" in p for p in problems), (
        problems
    )
    # Our own `suyuan bundle` refuses to vouch for the forged checkpoint.
    refused = suyuan(world, "bundle", str(event_seq), "--out", str(tmp_path / "b.json"))
    assert refused.returncode == 2 and refused.stderr.startswith("error ["), refused.stderr

    scope = scope_audit(world.ledger, fake)
    assert scope["ok"] is False and scope["checkpoint"]["logKey"] == real
    assert scope["problems"][0].startswith("latest checkpoint: the note carries no signature")
    assert not any(e["signaturesVerified"] for e in scope["entries"])

    rep = audit(world.store)
    lines = [p.line() for p in rep.problems]
    assert any(line.startswith(f"seq {reg_seq}: ") and "registrar's cosignature" in line for line in lines), (
        lines
    )
    assert any(line.startswith(f"checkpoint {event_seq + 1}: signature does not verify") for line in lines), (
        lines
    )


@pytest.fixture
def insider(world: World) -> Iterator[tuple[World, Client]]:
    """Someone who holds the operator's checkpoint key as well as database access: the
    checkpoint verifies; only the registry's rules stand between them and the page."""
    app = create_app(Settings(db_url=world.url, home=world.home.path, base_url="https://trace.example"))
    yield world, Client(app)
    app.state.store.dispose()


def _foreign_cosignature(w: World) -> tuple[str, int, str]:
    party = new_uscc()
    key, stranger = PartyKey.generate(party), PartyKey.generate("stranger")
    code = item("FAKE0002")
    reg_seq, _ = forge(
        w,
        [registration(w, party, key, [(w.registrar, stranger)]), commissioning(party, key, code)],
        note_signer=w.ledger.note_signer,
    )  # type: ignore[arg-type]
    return code, reg_seq, (f"key {stranger.key_id} of {w.registrar} is not registered (at seq {reg_seq})")


def _revoked(w: World, by_registrar: bool) -> tuple[str, int, str]:
    party, key = w.register()
    code = item("GOOD0003")
    w.ledger.append(commissioning(party, key, code, name="真货 Genuine"))
    signer, signing = (w.registrar, w.registrar_key) if by_registrar else (party, key)
    revoke = sign_one(
        kind="party.key.revoke", signer=signer, key=signing, body={"party": party, "key": key.key_id}
    )
    revoked_at, seq = forge(w, [revoke, recall(party, key, code)], note_signer=w.ledger.note_signer)  # type: ignore[arg-type]
    return code, seq, f"key {key.key_id} of {party} was revoked at seq {revoked_at}"


def _rotated(w: World) -> tuple[str, int, str]:
    party, key = w.register()
    code = item("GOOD0004")
    w.ledger.append(commissioning(party, key, code, name="真货 Genuine"))
    new = PartyKey.generate(party)
    rotated_at = w.ledger.append(
        sign_one(
            kind="party.key.rotate",
            signer=party,
            key=key,
            body={"publicKey": new.public_key_b64},
            cosigners=[(w.registrar, w.registrar_key)],
        )
    ).seq
    (seq,) = forge(w, [recall(party, key, code)], note_signer=w.ledger.note_signer)  # type: ignore[arg-type]
    return code, seq, f"key {key.key_id} of {party} was rotated at seq {rotated_at}"


ATTACKS = {
    "registrar cosignature by a stranger's key": _foreign_cosignature,
    "key revoked by its party": lambda w: _revoked(w, False),
    "key revoked by the registrar": lambda w: _revoked(w, True),
    "rotated-away key": _rotated,
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_registry_rules_hold_on_every_interface(insider: tuple[World, Client], attack: str) -> None:
    world, client = insider
    code, seq, why = ATTACKS[attack](world)

    facts = page(client, code)
    v = facts["verification"]
    assert v["verified"] is False, v
    assert f"seq {seq}: {why}" in v["problems"], v["problems"]
    # The entry that fails shows nothing: no forged recall, no forged product.
    assert seq not in [s["seq"] for s in facts["timeline"]]
    assert facts["recall"]["recalled"] is False
    text = visible(client, code)
    assert "FORGED" not in text and "Fake" not in text and "✗" in text and f"seq {seq}" in text

    journey = [
        s["seq"]
        for s in client.get(path(code), params={"linkType": "gs1:traceability"}, headers=JSON).json()[
            "journey"
        ]
    ]
    # The bundle of the journey carries the evidence; the verifier refuses the entry.
    real = world.ledger.log_verifier().vkey()
    res = verify_bundle(make_bundle(world.ledger, journey), log_key=real)
    assert not res.ok and seq not in res.verified
    assert f"seq {seq}: {why}" in res.problems, res.problems

    scope = scope_audit(world.ledger, code)
    assert scope["ok"] is False and f"seq {seq}: {why}" in scope["problems"]
    for e in scope["entries"] + scope["evidence"]:
        assert (e["seq"] == seq) <= (e["problems"] == [why]), e
    (failed,) = [e for e in scope["entries"] if e["seq"] == journey[-1]]
    assert failed["proofVerified"] is True and failed["signaturesVerified"] is False
    assert failed["stage"] is None  # no stage is claimed for an entry that did not verify

    lines = [p.line() for p in audit(world.store).problems]
    assert f"seq {seq}: {why}" in lines, lines


def test_edited_projections_change_nothing_the_page_shows(world: World, client: Client) -> None:
    """Issue 10, item 2 (first half): names, roles, keys and event rows edited in the
    projections; the page shows what the signed entries say, and still verifies."""
    chain = FormulaChain(world)
    built = chain.build()
    chain.describe()
    before = page(client, built["sold"])
    assert before["verification"]["verified"] is True
    stranger = PartyKey.generate("stranger")
    world.store.raw("UPDATE parties SET name = 'Fake', name_en = 'Fake', roles = 'regulator'")
    world.store.raw("UPDATE master_data SET signer = :s", {"s": new_uscc()})
    world.store.raw("UPDATE party_keys SET public_key = :pk", {"pk": stranger.public_key})
    world.store.raw(
        "UPDATE events SET stage = 'recall', activity = 'recall', "
        "event_time = '1999-01-01T00:00:00+08:00', disposition = 'recalled', "
        "biz_step = 'cbec:recalling', read_point = NULL, biz_location = NULL"
    )
    after = page(client, built["sold"])
    for part in ("product", "clearance", "timeline", "recall", "soldAt", "verification"):
        assert after[part] == before[part], part
    assert after["product"]["producer"] == {
        "id": chain.producer,
        "name": "樱花乳业株式会社",
        "nameEn": "Sakura Dairy Co., Ltd.",
    }
    text = visible(client, built["sold"])
    assert "Fake" not in text and "1999" not in text and NAME_ZH in text and "✓" in text
    assert "樱花乳业 帯広工厂" in text  # master data: its signer is read from its bytes


def test_a_signer_the_projection_does_not_name_is_still_proved(world: World, client: Client) -> None:
    """The events row names another signer: the page reads the real signer's registry
    entries all the same (the bytes decide whose keys are needed)."""
    built = FormulaChain(world).build()
    other, _ = world.register(["platform"])
    before = page(client, built["sold"])
    world.store.raw("UPDATE events SET signer = :s", {"s": other})
    after = page(client, built["sold"])
    assert after["verification"] == before["verification"]
    assert after["timeline"] == before["timeline"]


def test_a_published_key_the_genesis_does_not_name(world: World, tmp_path: Path, port: int) -> None:
    """SUYUAN_LOG_KEY set to another key: every page says not verified, with the reason;
    /log-key and `suyuan log-key` serve the published key; `suyuan serve` warns."""
    built = FormulaChain(world).build()
    other: NoteSigner = Home(tmp_path / "other").create_note_signer(ORIGIN)
    published = other.verifier_key()
    app = create_app(
        Settings(db_url=world.url, home=world.home.path, base_url="https://trace.example", log_key=published)
    )
    client = Client(app)
    try:
        v = page(client, built["sold"])["verification"]
        assert v["verified"] is False and v["entriesVerified"] == 0
        assert v["problems"][0] == (
            f"log key: the published log key (SUYUAN_LOG_KEY) is {published}, but this "
            f"ledger's genesis entry names {world.ledger.log_verifier().vkey()}: nothing "
            "here verifies against the published key"
        )
        assert "SUYUAN_LOG_KEY" in visible(client, built["sold"])
        assert client.get("/log-key").text == published + "\n"
    finally:
        app.state.store.dispose()
    got = suyuan(world, "log-key", SUYUAN_LOG_KEY=published)
    assert got.returncode == 0 and got.stdout == published + "\n"
    assert got.stderr.startswith("warning: the published log key (SUYUAN_LOG_KEY) is ")
    rep = audit(world.store, log_key=published)
    lines = [p.line() for p in rep.problems]
    assert lines[0].startswith("seq 0: the genesis names log key "), lines
    assert all(line.startswith(("seq 0:", "checkpoint ")) for line in lines), lines

    with subprocess.Popen(
        [sys.executable, "-m", "tools.cli", "serve", "--port", str(port)],
        cwd=REPO,
        text=True,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env={
            "SUYUAN_DB": world.url,
            "SUYUAN_HOME": str(world.home.path),
            "PATH": os.environ.get("PATH", ""),
            "SUYUAN_LOG_KEY": published,
        },
    ) as proc:
        try:
            assert proc.stderr is not None
            deadline = time.monotonic() + 60
            line = ""
            while time.monotonic() < deadline and "warning" not in line:
                line = proc.stderr.readline()
                if not line and proc.poll() is not None:
                    break
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    assert line.startswith("warning: the published log key (SUYUAN_LOG_KEY) is "), line
    assert line.rstrip().endswith('every page will say "not verified"')
