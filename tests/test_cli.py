"""The ``suyuan`` command end to end: real subprocesses on SQLite and on PostgreSQL.

Every command runs as ``python -m tools.cli`` with nothing but SUYUAN_DB, SUYUAN_HOME and
PATH in its environment, and its output is checked the way an outsider would check it:
receipts and proofs against signed checkpoints with ``ledger.core.merkle`` and ``ledger.core.note``,
entry bytes against an independent RFC 8785 implementation, key ids against SHA-256.
Independent commands (signing, reading, verifying) run a few at a time to keep it quick.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nacl.signing
import pytest
import rfc8785
import sqlalchemy as sa

from ledger.core import ids, merkle
from ledger.core.errors import ProofError
from ledger.core.note import Checkpoint, NoteVerifier
from ledger.core.statements import SIGNING_DOMAIN
from ledger.store.db import Store

REPO = Path(__file__).resolve().parent.parent
ORIGIN = "suyuan.local/log"  # the default origin of `suyuan init`
REGISTRAR = "uscc:12130200MB0000000B"  # the default registrar of `suyuan init`
ERROR_LINE = re.compile(r"error \[[a-z_]+\]: [^\n]*\S")
PARALLEL = 3

Doc = dict[str, Any]


# --- driving the command ---------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    args: tuple[str, ...]
    rc: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def lines(self) -> list[Any]:
        return [json.loads(line) for line in self.out.splitlines()]


class Cli:
    """``suyuan`` bound to one database and one SUYUAN_HOME."""

    def __init__(self, db: str, home: Path) -> None:
        self.db, self.home = db, home

    def env(self) -> dict[str, str]:
        return {"SUYUAN_DB": self.db, "SUYUAN_HOME": str(self.home), "PATH": os.environ.get("PATH", "")}

    def __call__(self, *args: str, stdin: bytes = b"", rc: int | None = 0) -> Run:
        proc = subprocess.run(
            [sys.executable, "-m", "tools.cli", *args],
            cwd=REPO,
            env=self.env(),
            input=stdin,
            capture_output=True,
            timeout=120,
        )
        run = Run(args, proc.returncode, proc.stdout.decode(), proc.stderr.decode())
        if rc is not None:
            assert run.rc == rc, (
                f"suyuan {' '.join(args)} exited {run.rc}, not {rc}\nstdout: {run.out}\nstderr: {run.err}"
            )
        return run

    def many(
        self, calls: Sequence[Sequence[str]], rc: int | None = 0, stdins: Sequence[bytes] = ()
    ) -> list[Run]:
        """Independent commands, a few at a time; results in the order of ``calls``."""
        return run_all(
            [
                (self, args, stdin)
                for args, stdin in zip(calls, [*stdins, *[b""] * (len(calls) - len(stdins))], strict=True)
            ],
            rc=rc,
        )

    def checkpoint(self) -> str:
        return self("checkpoint").out

    def size(self) -> int:
        return int(self.checkpoint().split("\n")[1])


def run_all(jobs: Sequence[tuple[Cli, Sequence[str], bytes]], rc: int | None = 0) -> list[Run]:
    """(cli, args, stdin) jobs that do not depend on each other, run a few at a time."""
    with ThreadPoolExecutor(PARALLEL) as pool:
        return list(pool.map(lambda job: job[0](*job[1], stdin=job[2], rc=rc), jobs))


@pytest.fixture
def cli(db_url: str, tmp_path: Path) -> Cli:
    return Cli(db_url, tmp_path / "home")


# --- independent checks ----------------------------------------------------------------------


def uscc(n: int) -> str:
    return "uscc:" + ids.make_uscc(f"91130200MA{n:06d}")


def gln(body12: str) -> str:
    return "gln:" + body12 + ids.gs1_check_digit(body12)


def key_id_of(public_key_b64: str) -> str:
    raw = base64.b64decode(public_key_b64, validate=True)
    assert len(raw) == 32
    return hashlib.sha256(raw).hexdigest()[:16]


def open_note(note: str, vkey: str) -> Checkpoint:
    cp = Checkpoint.parse(NoteVerifier.from_vkey(vkey).verify(note))
    assert cp.origin == ORIGIN
    return cp


def check_receipt(r: Doc, vkey: str, *, statement: Doc | None = None) -> Checkpoint:
    """A receipt verifies from its own fields and the log key alone."""
    assert r.keys() == {"seq", "leafHash", "statementHash", "checkpoint", "inclusionProof"}
    cp = open_note(r["checkpoint"], vkey)
    proof = r["inclusionProof"]
    assert proof["leafIndex"] == r["seq"] and proof["treeSize"] == cp.size
    merkle.verify_inclusion(
        leaf=bytes.fromhex(r["leafHash"]),
        index=r["seq"],
        size=cp.size,
        proof=[bytes.fromhex(h) for h in proof["hashes"]],
        root=cp.root,
    )
    if statement is not None:
        assert r["statementHash"] == hashlib.sha256(rfc8785.dumps(statement)).hexdigest()
    return cp


def check_envelope_signatures(env: Doc, keys: dict[str, str]) -> None:
    """Each signature verifies over the domain and the JCS statement (keys: id -> b64)."""
    message = SIGNING_DOMAIN + rfc8785.dumps(env["statement"])
    for s in env["signatures"]:
        vk = nacl.signing.VerifyKey(base64.b64decode(keys[s["key"]]))
        vk.verify(message, base64.b64decode(s["sig"]))


def one_error_line(run: Run, code: str) -> str:
    """The refusal is one ``error [code]: sentence`` line on stderr and nothing on stdout."""
    assert run.out == ""
    assert run.err.endswith("\n") and run.err.count("\n") == 1, run.err
    line = run.err.rstrip("\n")
    assert ERROR_LINE.fullmatch(line), line
    assert line.startswith(f"error [{code}]: "), line
    return line


def home_files(home: Path) -> dict[str, bytes]:
    if not home.exists():
        return {}
    return {str(p.relative_to(home)): p.read_bytes() for p in home.rglob("*") if p.is_file()}


def event_body(n: int, step: str = "inspecting") -> Doc:
    """An EPCIS 2.0 ObjectEvent with floats and non-ASCII text, which JCS must get right.

    ``inspecting`` is a production step (a producer's to sign), ``shipping`` a logistics one.
    """
    return {
        "type": "ObjectEvent",
        "eventTime": "2026-11-27T13:05:00+08:00",
        "eventTimeZoneOffset": "+08:00",
        "action": "OBSERVE",
        "bizStep": step,
        "epcList": [f"https://id.gs1.org/01/09506000134352/21/{n}"],
        "quantityList": [
            {
                "epcClass": "https://id.gs1.org/01/09506000134352/10/L7",
                "quantity": 12.5 + n / 10,
                "uom": "KGM",
            }
        ],
        "readPoint": {"id": "https://id.gs1.org/414/9506000134369"},
        "example:note": "唐山港 3号冷库",
        "example:temperatureC": -18.5,
    }


@dataclass(frozen=True)
class Signing:
    key: str  # key name in SUYUAN_HOME
    signer: str
    n: int  # event_body(n, step)
    step: str = "inspecting"
    stdin: bool = False  # give the body to `suyuan sign` on stdin


def sign_events(cli: Cli, tmp: Path, jobs: Sequence[Signing]) -> list[Doc]:
    """Sign event bodies with ``suyuan sign`` (a few at a time) and check what it prints."""
    calls, stdins = [], []
    for j in jobs:
        body = json.dumps(event_body(j.n, j.step), ensure_ascii=False).encode()
        path = tmp / f"body-{j.key}-{j.n}.json"
        path.write_bytes(body)
        calls.append(("sign", "--key", j.key, "--signer", j.signer, "-" if j.stdin else str(path)))
        stdins.append(body if j.stdin else b"")
    envs = [r.json() for r in cli.many(calls, stdins=stdins)]
    for j, env in zip(jobs, envs, strict=True):
        st = env["statement"]
        assert st.keys() == {"v", "kind", "signer", "key", "issued", "body"}
        assert st["kind"] == "event" and st["signer"] == j.signer and st["v"] == 1
        assert st["body"] == event_body(j.n, j.step)
        assert [(s["signer"], s["key"]) for s in env["signatures"]] == [(j.signer, st["key"])]
    return envs


def register(
    cli: Cli, party: str, key: str, roles: str = "producer", name: str = "唐山海鲜加工有限公司"
) -> Doc:
    r: Doc = cli("party", "register", "--id", party, "--name", name, "--roles", roles, "--key", key).json()
    return r


def small_ledger(cli: Cli, tmp: Path, events: int) -> tuple[Doc, str, Doc]:
    """init, one producer with key ``p`` and ``events`` events in one JSON Lines submit."""
    doc = cli("init").json()
    key = cli("keygen", "p")
    party = uscc(7)
    register(cli, party, "p")
    envs = sign_events(cli, tmp, [Signing("p", party, n) for n in range(events)])
    (tmp / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in envs))
    receipts = cli("submit", str(tmp / "events.jsonl")).lines()
    assert [r["seq"] for r in receipts] == list(range(2, 2 + events))
    return doc, party, key.json()


# --- the tests -------------------------------------------------------------------------------


def test_init_refuses_a_second_time_and_keygen(cli: Cli, tmp_path: Path) -> None:
    # Nothing works before init, and says so.
    before_init = cli("checkpoint", rc=2)
    one_error_line(before_init, "no_ledger")
    assert "suyuan init" in before_init.err

    doc = cli("init").json()
    assert doc.keys() == {"origin", "logKey", "registrar", "registrarKey", "genesis"}
    assert doc["origin"] == ORIGIN and doc["registrar"] == REGISTRAR
    verifier = NoteVerifier.from_vkey(doc["logKey"])
    assert verifier.name == ORIGIN
    g = doc["genesis"]
    assert g["seq"] == 0
    cp = check_receipt(g, doc["logKey"])
    assert cp.size == 1 and cp.root == bytes.fromhex(g["leafHash"])  # one leaf: root = leaf
    assert g["inclusionProof"] == {"leafIndex": 0, "treeSize": 1, "hashes": []}

    reg_file = json.loads((cli.home / "keys" / "registrar.key").read_text())
    assert doc["registrarKey"] == key_id_of(reg_file["publicKey"])
    config = json.loads((cli.home / "config.json").read_text())
    assert config == {"origin": ORIGIN, "registrar": {"id": REGISTRAR, "key": "registrar"}}

    log_key, entry0, note, *keygens = cli.many(
        [("log-key",), ("entry", "0"), ("checkpoint",), ("keygen", "acme"), ("keygen", "beta")]
    )
    assert log_key.out == doc["logKey"] + "\n"
    assert note.out == g["checkpoint"]
    e0 = entry0.json()
    raw0 = base64.b64decode(e0["entry"], validate=True)
    assert hashlib.sha256(b"\x00" + raw0).hexdigest() == e0["leafHash"] == g["leafHash"]
    st = e0["decoded"]["envelope"]["statement"]
    assert st["kind"] == "genesis" and st["signer"] == REGISTRAR
    assert st["body"]["logKey"] == doc["logKey"] and st["body"]["origin"] == ORIGIN
    assert st["body"]["registrar"]["publicKey"] == reg_file["publicKey"]
    assert g["statementHash"] == hashlib.sha256(rfc8785.dumps(st)).hexdigest()
    check_envelope_signatures(e0["decoded"]["envelope"], {doc["registrarKey"]: reg_file["publicKey"]})

    # A second init is refused with one line, from this home, with another origin, or from
    # another home; neither the ledger nor any home changes.
    home_before = home_files(cli.home)
    other = Cli(cli.db, cli.home.parent / "other-home")
    again, other_origin, other_home = run_all(
        [
            (cli, ("init",), b""),
            (cli, ("init", "--origin", "elsewhere.example/log"), b""),
            (other, ("init",), b""),
        ],
        rc=2,
    )
    for run in (again, other_origin, other_home):
        line = one_error_line(run, "already_initialised")
        assert "already holds a ledger of 1 entries" in line and "nothing was changed" in line
    assert home_files(cli.home) == home_before
    assert not other.home.exists()
    key_file = (cli.home / "keys" / "acme.key").read_bytes()
    after, entry0_after, entry1, dup, bad_name = cli.many(
        [("checkpoint",), ("entry", "0"), ("entry", "1"), ("keygen", "acme"), ("keygen", "../escape")],
        rc=None,
    )
    assert after.rc == 0 and after.out == note.out
    assert entry0_after.rc == 0 and entry0_after.out == entry0.out
    assert entry1.rc == 2
    one_error_line(entry1, "not_found")

    # keygen: {name, keyId, publicKey}, the id recomputed here, a 0600 file holding the seed.
    acme, beta = (r.json() for r in keygens)
    for name, k in (("acme", acme), ("beta", beta)):
        assert k.keys() == {"name", "keyId", "publicKey"} and k["name"] == name
        assert re.fullmatch(r"[0-9a-f]{16}", k["keyId"])
        assert k["keyId"] == hashlib.sha256(base64.b64decode(k["publicKey"])).hexdigest()[:16]
        path = cli.home / "keys" / f"{name}.key"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        stored = json.loads(path.read_text())
        assert stored["publicKey"] == k["publicKey"] and stored["keyId"] == k["keyId"]
        seed = base64.b64decode(stored["seed"], validate=True)
        derived = bytes(nacl.signing.SigningKey(seed).verify_key)
        assert base64.b64encode(derived).decode() == k["publicKey"]
    assert acme["keyId"] != beta["keyId"]

    assert (dup.rc, bad_name.rc) == (2, 2)
    line = one_error_line(dup, "config")
    assert "'acme' already exists" in line
    assert (cli.home / "keys" / "acme.key").read_bytes() == key_file
    one_error_line(bad_name, "malformed")
    assert not (cli.home / "escape.key").exists()


def test_party_register_rotate_revoke_show(cli: Cli, tmp_path: Path) -> None:
    vkey = cli("init").json()["logKey"]
    a1, a2, b1 = (r.json() for r in cli.many([("keygen", "a1"), ("keygen", "a2"), ("keygen", "b1")]))
    a, b = uscc(1), gln("690123456789")
    assert ids.parse_party_id(b) == b

    reg_a = register(cli, a, "a1", roles="producer,merchant")
    reg_b = register(cli, b, "b1", roles="logistics,warehouse", name="Tangshan Cold Chain")
    assert (reg_a["seq"], reg_b["seq"]) == (1, 2)
    for r in (reg_a, reg_b):
        check_receipt(r, vkey)

    rotate = cli("party", "rotate", "--id", a, "--old-key", "a1", "--new-key", "a2").json()
    by_registrar = cli("party", "revoke", "--id", a, "--key-id", a2["keyId"]).json()
    by_self = cli("party", "revoke", "--id", b, "--key-id", b1["keyId"], "--key", "b1").json()
    assert (rotate["seq"], by_registrar["seq"], by_self["seq"]) == (3, 4, 5)
    for r in (rotate, by_registrar, by_self):
        check_receipt(r, vkey)

    show_a, show_b, entry4, entry5, note = cli.many(
        [
            ("party", "show", "--id", a),
            ("party", "show", "--id", b),
            ("entry", "4"),
            ("entry", "5"),
            ("checkpoint",),
        ]
    )
    pa, pb = show_a.json(), show_b.json()
    assert {k: v for k, v in pa.items() if k != "keys"} == {
        "id": a,
        "name": "唐山海鲜加工有限公司",
        "roles": ["producer", "merchant"],
        "registeredSeq": 1,
    }
    assert sorted(pa["keys"], key=lambda k: k["validFrom"]) == [
        {"keyId": a1["keyId"], "validFrom": 1, "validUntil": 3, "endedBy": "rotated"},
        {"keyId": a2["keyId"], "validFrom": 3, "validUntil": 4, "endedBy": "revoked"},
    ]
    assert pb == {
        "id": b,
        "name": "Tangshan Cold Chain",
        "roles": ["logistics", "warehouse"],
        "registeredSeq": 2,
        "keys": [{"keyId": b1["keyId"], "validFrom": 2, "validUntil": 5, "endedBy": "revoked"}],
    }
    # Who signed each revocation, as the entries record it.
    st4 = entry4.json()["decoded"]["envelope"]["statement"]
    st5 = entry5.json()["decoded"]["envelope"]["statement"]
    assert (st4["kind"], st4["signer"], st4["body"]) == (
        "party.key.revoke",
        REGISTRAR,
        {"party": a, "key": a2["keyId"]},
    )
    assert (st5["kind"], st5["signer"], st5["key"], st5["body"]) == (
        "party.key.revoke",
        b,
        b1["keyId"],
        {"party": b, "key": b1["keyId"]},
    )

    # Events signed with the revoked and the rotated-out key: both named, nothing appended.
    revoked, rotated = sign_events(cli, tmp_path, [Signing("b1", b, 1, step="shipping"), Signing("a1", a, 2)])
    check_envelope_signatures(revoked, {b1["keyId"]: b1["publicKey"]})
    (tmp_path / "revoked.json").write_text(json.dumps(revoked))
    (tmp_path / "both.jsonl").write_text(json.dumps(revoked) + "\n" + json.dumps(rotated) + "\n")
    one, both = cli.many(
        [("submit", str(tmp_path / "revoked.json")), ("submit", str(tmp_path / "both.jsonl"))], rc=2
    )
    for run in (one, both):
        assert run.out == ""
        first, *rest = run.err.splitlines()
        assert ERROR_LINE.fullmatch(first) and first.startswith("error [batch_rejected]: ")
        assert "nothing appended" in first
        assert rest[0].startswith("  envelope 0: [key_revoked] ")
        # Key id, party and the seq of the revocation. The party is printed shortened to
        # its first 14 characters (registry._short), so only that much can be asserted.
        assert f"key {b1['keyId']} of {b[:14]}" in rest[0] and "revoked at seq 5" in rest[0]
    assert len(one.err.splitlines()) == 2
    second = both.err.splitlines()[2]
    assert second.startswith("  envelope 1: [key_revoked] ")
    assert f"key {a1['keyId']} of {a[:14]}" in second and "rotated at seq 3" in second
    assert "2 envelope(s) refused" in both.err

    # Refusals of bad party commands, one line each; still nothing appended.
    bad_gln = "gln:6901234567891"  # wrong check digit
    assert bad_gln != b
    unknown, bad_id, bad_role = cli.many(
        [
            ("party", "show", "--id", uscc(99)),
            ("party", "register", "--id", bad_gln, "--name", "x", "--roles", "producer", "--key", "a2"),
            ("party", "register", "--id", uscc(98), "--name", "x", "--roles", "farmer", "--key", "a2"),
        ],
        rc=2,
    )
    assert uscc(99) in one_error_line(unknown, "not_found")
    assert "[bad_identifier]" in bad_id.err and "GLN" in bad_id.err
    assert "'farmer'" in one_error_line(bad_role, "malformed")
    assert cli.checkpoint() == note.out


def test_sign_submit_entry_checkpoint_prove(cli: Cli, tmp_path: Path) -> None:
    init = cli("init").json()
    vkey = init["logKey"]
    key = cli("keygen", "p").json()
    party = uscc(3)
    reg = register(cli, party, "p")
    notes = {1: init["genesis"]["checkpoint"], 2: reg["checkpoint"]}
    leaf_of = {0: init["genesis"]["leafHash"], 1: reg["leafHash"]}

    # Six events; the last body comes to `sign` on stdin.
    envs = sign_events(cli, tmp_path, [Signing("p", party, n, stdin=n == 5) for n in range(6)])
    for env in envs:
        assert env["statement"]["key"] == key["keyId"]
        check_envelope_signatures(env, {key["keyId"]: key["publicKey"]})
    assert len({hashlib.sha256(rfc8785.dumps(e["statement"])).digest() for e in envs}) == 6

    # One envelope, a JSON array, JSON Lines, and a pretty-printed envelope on stdin.
    one, array, lines = tmp_path / "one.json", tmp_path / "array.json", tmp_path / "lines.jsonl"
    one.write_text(json.dumps(envs[0]))
    array.write_text(json.dumps(envs[1:3], indent=2))
    lines.write_text("".join(json.dumps(e) + "\n" for e in envs[3:5]))
    stdin_bytes = json.dumps(envs[5], indent=2, ensure_ascii=False).encode()
    plan = [
        (str(one), b"", envs[0:1]),
        (str(array), b"", envs[1:3]),
        (str(lines), b"", envs[3:5]),
        ("-", stdin_bytes, envs[5:6]),
    ]
    outputs: list[str] = []
    seq = 2
    for file, stdin, batch in plan:
        run = cli("submit", file, stdin=stdin)
        assert run.out.endswith("\n") and len(run.out.splitlines()) == len(batch)
        receipts = run.lines()
        note = cli.checkpoint()  # the latest checkpoint is the one the receipts carry
        for r, env in zip(receipts, batch, strict=True):
            assert r["seq"] == seq and r["checkpoint"] == note
            cp = check_receipt(r, vkey, statement=env["statement"])
            assert cp.size == receipts[-1]["seq"] + 1
            leaf_of[seq] = r["leafHash"]
            seq += 1
        notes[seq] = note
        outputs.append(run.out)
    assert sorted(notes) == [1, 2, 3, 5, 7, 8]

    # Resubmitting everything appends nothing and answers with the very same receipts.
    again = cli("submit", str(one), str(array), str(lines), "-", stdin=stdin_bytes)
    assert again.out == "".join(outputs)
    latest = cli.checkpoint()
    assert latest == notes[8] and latest.split("\n")[1] == "8"

    # The checkpoints verify with the log key that `log-key` prints (the genesis one), and
    # proofs verify against their roots. Entries and refusals are read in the same round.
    inclusion = [(4, None), (4, 5), (0, 3)]
    consistency = [(1, 8), (3, 7), (5, 8)]
    entry_seqs = [1, 2, 4, 7]
    runs = cli.many(
        [("log-key",)]
        + [("prove", "inclusion", str(s), *(("--size", str(n)) if n else ())) for s, n in inclusion]
        + [("prove", "consistency", str(m), str(n)) for m, n in consistency]
        + [("entry", str(s)) for s in entry_seqs]
        + [("prove", "inclusion", "8"), ("prove", "consistency", "3", "9"), ("entry", "8")],
        rc=None,
    )
    log_key, runs = runs[0], runs[1:]
    inclusion_runs, runs = runs[: len(inclusion)], runs[len(inclusion) :]
    consistency_runs, runs = runs[: len(consistency)], runs[len(consistency) :]
    entry_runs, refused = runs[: len(entry_seqs)], runs[len(entry_seqs) :]
    for run in [log_key, *inclusion_runs, *consistency_runs, *entry_runs]:
        assert run.rc == 0, (run.args, run.err)

    assert log_key.out == vkey + "\n"
    cps = {n: open_note(note, log_key.out.strip()) for n, note in notes.items()}
    assert all(cp.size == n for n, cp in cps.items())
    assert len({cp.root for cp in cps.values()}) == len(cps)

    for (s, n), run in zip(inclusion, inclusion_runs, strict=True):
        p = run.json()
        size = n or 8
        assert p.keys() == {"leafIndex", "treeSize", "hashes"}
        assert (p["leafIndex"], p["treeSize"]) == (s, size)
        hashes = [bytes.fromhex(h) for h in p["hashes"]]
        merkle.verify_inclusion(
            leaf=bytes.fromhex(leaf_of[s]), index=s, size=size, proof=hashes, root=cps[size].root
        )
        with pytest.raises(ProofError):  # not vacuous: another root fails
            merkle.verify_inclusion(
                leaf=bytes.fromhex(leaf_of[s]), index=s, size=size, proof=hashes, root=cps[1].root
            )
    for (m, n), run in zip(consistency, consistency_runs, strict=True):
        p = run.json()
        assert p.keys() == {"first", "second", "hashes"} and (p["first"], p["second"]) == (m, n)
        hashes = [bytes.fromhex(h) for h in p["hashes"]]
        merkle.verify_consistency(
            first=m, second=n, first_root=cps[m].root, second_root=cps[n].root, proof=hashes
        )
        with pytest.raises(ProofError):
            merkle.verify_consistency(
                first=m, second=n, first_root=cps[m].root, second_root=cps[2].root, proof=hashes
            )

    # Entries: the exact bytes, their leaf hash, JCS of the decoded form, the chain.
    for s, run in zip(entry_seqs, entry_runs, strict=True):
        e = run.json()
        assert e.keys() == {"seq", "leafHash", "entry", "decoded"} and e["seq"] == s
        raw = base64.b64decode(e["entry"], validate=True)
        assert hashlib.sha256(b"\x00" + raw).hexdigest() == e["leafHash"] == leaf_of[s]
        assert raw == rfc8785.dumps(e["decoded"])
        assert json.loads(raw) == e["decoded"]
        d = e["decoded"]
        assert d.keys() == {"v", "seq", "prev", "time", "envelope"}
        assert (d["v"], d["seq"], d["prev"]) == (1, s, leaf_of[s - 1])
        assert d["envelope"] == (envs[s - 2] if s >= 2 else d["envelope"])
    register_entry = entry_runs[0].json()["decoded"]["envelope"]["statement"]
    assert register_entry["kind"] == "party.register"
    assert register_entry["body"]["name"] == "唐山海鲜加工有限公司"

    # Asking beyond the log is refused, one line each.
    assert [r.rc for r in refused] == [2, 2, 2]
    for run in refused:
        one_error_line(run, "not_found")


def _flip_b64(value: str, at: int) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[at] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def test_bundle_verify_and_tampered_bundles(cli: Cli, tmp_path: Path) -> None:
    init, party, _ = small_ledger(cli, tmp_path, 3)  # seqs 0-4
    vkey = init["logKey"]
    cli("keygen", "p2")
    rotate = cli("party", "rotate", "--id", party, "--old-key", "p", "--new-key", "p2").json()
    assert rotate["seq"] == 5
    (late,) = sign_events(cli, tmp_path, [Signing("p2", party, 9)])
    (tmp_path / "late.json").write_text(json.dumps(late))
    assert cli("submit", str(tmp_path / "late.json")).json()["seq"] == 6

    # The bundle, and meanwhile another ledger (its own home and database) for its log key.
    out = tmp_path / "bundle.json"
    other = Cli(f"sqlite:///{tmp_path}/other.db", tmp_path / "other-home")
    made, note, other_init = run_all(
        [
            (cli, ("bundle", "3", "6", "3", "--out", str(out)), b""),
            (cli, ("checkpoint",), b""),
            (other, ("init",), b""),
        ]
    )
    # seq 3 needs the key introduced at 1 (cosigned by the registrar: genesis 0); seq 6
    # needs the key rotated in at 5, which the old key and the registrar signed.
    assert made.json() == {"out": str(out), "entries": 5, "requested": [3, 6]}
    bundle = json.loads(out.read_text())
    assert bundle["v"] == 1 and bundle["logKey"] == vkey
    assert [e["seq"] for e in bundle["entries"]] == [0, 1, 3, 5, 6]
    assert bundle["checkpoint"] == note.out
    other_key = other_init.json()["logKey"]
    assert other_key != vkey and other_key.startswith(ORIGIN + "+")

    # Variants, each with one byte changed.
    variants: list[tuple[str, int, Doc]] = []  # (what, seq named or -1 for checkpoint, doc)
    for i, item in enumerate(bundle["entries"]):
        doc = json.loads(out.read_text())
        raw = base64.b64decode(item["entry"])
        doc["entries"][i]["entry"] = _flip_b64(item["entry"], len(raw) // 2)
        variants.append((f"entry {item['seq']}", item["seq"], doc))
    doc = json.loads(out.read_text())
    target = next(e for e in doc["entries"] if len(e["inclusionProof"]["hashes"]) >= 2)
    h = target["inclusionProof"]["hashes"][1]
    target["inclusionProof"]["hashes"][1] = h[:10] + ("0" if h[10] != "0" else "1") + h[11:]
    variants.append(("proof hash", target["seq"], doc))
    doc = json.loads(out.read_text())
    body, sigs = doc["checkpoint"].split("\n\n")
    root_line = body.split("\n")[2]
    doc["checkpoint"] = body.replace(root_line, _flip_b64(root_line, 0)) + "\n\n" + sigs
    variants.append(("checkpoint", -1, doc))
    paths = []
    for n, (_, _, doc) in enumerate(variants):
        path = tmp_path / f"tampered-{n}.json"
        path.write_text(json.dumps(doc))
        paths.append(path)

    runs = cli.many(
        [
            ("verify", str(out), "--log-key", vkey),
            ("verify", str(out), "--log-key", other_key),
            ("verify", str(out)),
        ]
        + [("verify", str(p), "--log-key", vkey) for p in paths],
        rc=None,
    )
    ok, wrong_key, no_key = runs[:3]
    assert ok.rc == 0, ok.err
    assert ok.json() == {
        "ok": True,
        "treeSize": 7,
        "origin": ORIGIN,
        "verified": [0, 1, 3, 5, 6],
        "logKeyFromBundle": False,
        "problems": [],
        "cosignedBy": [],
        "quorum": 0,
    }
    assert ok.err == ""
    assert wrong_key.rc == 1
    res = wrong_key.json()
    assert res["ok"] is False and res["verified"] == []
    other_hash = other_key.split("+")[1]
    assert res["problems"] == [f"checkpoint: the note carries no signature by {ORIGIN}+{other_hash}"]
    assert wrong_key.err.splitlines() == res["problems"]
    # Without a pinned key, a bundle proves only that it agrees with itself: not ok, and
    # why (it was ok with a warning), unless --trust-bundle-key says that is enough.
    assert no_key.rc == 1
    unpinned = no_key.json()
    assert unpinned["ok"] is False and unpinned["logKeyFromBundle"] is True
    assert unpinned["verified"] == [0, 1, 3, 5, 6] and len(unpinned["problems"]) == 1
    assert unpinned["problems"][0].startswith(
        "no --log-key given: the bundle was checked only against the key it carries"
    )
    assert "--trust-bundle-key" in unpinned["problems"][0]
    assert no_key.err.splitlines() == unpinned["problems"]
    trusting = cli("verify", str(out), "--trust-bundle-key")
    assert trusting.json() == {
        "ok": True,
        "treeSize": 7,
        "origin": ORIGIN,
        "verified": [0, 1, 3, 5, 6],
        "logKeyFromBundle": True,
        "problems": [],
        "cosignedBy": [],
        "quorum": 0,
    }
    assert trusting.err.startswith("warning: --trust-bundle-key: checked against the key inside")
    assert len(trusting.err.splitlines()) == 1

    for (what, seq, _), run in zip(variants, runs[3:], strict=True):
        assert run.rc == 1, (what, run.out, run.err)
        res = run.json()
        assert res["ok"] is False and res["problems"], what
        assert run.err.splitlines() == res["problems"], what
        if seq < 0:
            assert res["treeSize"] is None and res["verified"] == []
            assert len(res["problems"]) == 1
            assert res["problems"][0].startswith("checkpoint: "), res
        else:
            assert res["treeSize"] == 7
            assert seq not in res["verified"], what
            assert any(p.startswith(f"seq {seq}: ") for p in res["problems"]), (what, res)
            assert all(p.startswith("seq ") for p in res["problems"]), (what, res)


def test_audit_sound_then_one_changed_byte(cli: Cli, tmp_path: Path) -> None:
    small_ledger(cli, tmp_path, 4)  # init, register, one batch of 4 events: 6 entries
    size = cli.size()
    assert size == 6
    text, as_json = cli.many([("audit",), ("audit", "--json")])
    nodes = sum(size >> level for level in range(size.bit_length()))  # leaves and up
    # The report is JSON on stdout either way (it was empty without --json); the summary
    # for people goes to stderr, which --json keeps quiet.
    assert (
        text.json()
        == as_json.json()
        == {
            "ok": True,
            "entries": size,
            "checkpoints": 3,
            "nodes": nodes,
            "signatures": 7,
            "projectionsChecked": True,
            "problems": [],
        }
    )
    assert text.err == (f"audit: {size} entries, 7 signatures, 3 checkpoints, {nodes} tree nodes: sound\n")
    assert as_json.err == ""

    store = Store(cli.db)
    try:
        with store.engine.connect() as conn:
            raw = bytearray(conn.execute(sa.text("SELECT entry FROM entries WHERE seq = 4")).scalar_one())
        i = raw.index(b'"eventTime":"2026') + len(b'"eventTime":"2026')
        raw[i - 1] = ord("7")  # 2026 becomes 2027: still JSON, one byte different
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            store.raw("UPDATE entries SET entry = :e WHERE seq = 4", {"e": bytes(raw)})
        store.drop_append_only()
        store.raw("UPDATE entries SET entry = :e WHERE seq = 4", {"e": bytes(raw)})
    finally:
        store.dispose()

    text, as_json = cli.many([("audit",), ("audit", "--json")], rc=1)
    assert text.json() == as_json.json()
    lines = text.err.splitlines()[:-1]
    assert lines and lines[0].startswith("seq 4: "), lines
    assert all(line.startswith("seq 4: ") for line in lines), lines
    assert text.err.splitlines()[-1].startswith(f"audit: {size} entries, ")
    assert "problem(s)" in text.err
    rep = as_json.json()
    assert rep["ok"] is False and rep["entries"] == size
    assert [p["seq"] for p in rep["problems"]] == [4] * len(lines)
    assert [f"seq 4: {p['problem']}" for p in rep["problems"]] == lines


def test_bundle_to_a_missing_directory_is_refused_in_one_line(tmp_path: Path) -> None:
    cli = Cli(f"sqlite:///{tmp_path}/ledger.db", tmp_path / "home")  # no database involved
    cli("init")
    run = cli("bundle", "0", "--out", str(tmp_path / "no-such-dir" / "bundle.json"), rc=None)
    assert run.rc == 2, run.err
    one_error_line(run, "not_found")
