"""`witness`: a witness's key and server, and the witnesses this ledger asks to cosign."""

from __future__ import annotations

import argparse
import base64 as b64

import nacl.signing

from ledger.core.errors import LedgerError
from ledger.core.note import NoteVerifier
from ledger.log.cosigner import CosignatureVerifier, Cosigner, Witness
from ledger.log.home import Home
from ledger.log.keyfiles import read_key_file, seed_in, text_in, write_key_file
from ledger.log.witnesses import Witnessing, gather, http_post
from tools.cli.common import Commands, open_ledger, out


def _witness_key(home: Home, name: str, *, create: bool) -> Cosigner:
    path = home.path / "witness" / f"{name.replace('/', '_')}.key"
    if create:
        exists = LedgerError(f"witness {name!r} already exists at {path}", code="config")
        if path.exists() or path.is_symlink():
            raise exists
        key = nacl.signing.SigningKey.generate()
        try:
            write_key_file(path, {"name": name, "seed": b64.b64encode(bytes(key)).decode()})
        except FileExistsError:
            raise exists from None
        return Cosigner(name, key)
    try:
        doc = read_key_file(path)
    except FileNotFoundError:
        raise LedgerError(
            f"no witness {name!r} here; run `suyuan witness init {name}`", code="not_found"
        ) from None
    return Cosigner(text_in(doc, path, "name"), nacl.signing.SigningKey(seed_in(doc, path)))


def witnessing_of(home: Home) -> Witnessing | None:
    """The witnesses this home's ledger asks to cosign, if any are configured."""
    cfg = home.config()
    return Witnessing.from_config(cfg) if cfg.get("witnesses") else None


def cmd_witness(a: argparse.Namespace, home: Home) -> int:
    if a.witness_command == "init":
        c = _witness_key(home, a.name, create=True)
        out({"name": c.name, "vkey": c.vkey()})
        return 0
    if a.witness_command in ("add", "quorum"):
        cfg = home.config()
        ws = list(cfg.get("witnesses", []))
        if a.witness_command == "add":
            name = CosignatureVerifier.from_vkey(a.key).name
            ws = [w for w in ws if CosignatureVerifier.from_vkey(w["key"]).name != name]
            ws.append({"url": a.url, "key": a.key})
            cfg["witnesses"] = ws
            cfg.setdefault("quorum", len(ws))
        else:
            cfg["quorum"] = a.k
        Witnessing.from_config(cfg)  # refuse a quorum larger than the witnesses
        home.save_config(cfg)
        out({"witnesses": ws, "quorum": cfg["quorum"]})
        return 0
    if a.witness_command == "gather":
        w = witnessing_of(home)
        if w is None:
            raise LedgerError("no witnesses configured; add one with `suyuan witness add`", code="config")
        res = gather(open_ledger(home), w, http_post)
        out(res.as_dict())
        return 0 if res.witnessed else 1
    # The server (uvicorn, Starlette: about 50 ms to import) loads for `witness serve` alone.
    import uvicorn

    from api.witness_app import create_witness_app

    cosigner = _witness_key(home, a.name, create=False)
    logs = {}
    for vkey in a.log_key:
        v = NoteVerifier.from_vkey(vkey)
        logs[v.name] = v  # a log's checkpoint key is named after its origin
    state = home.path / "witness" / f"{a.name.replace('/', '_')}.state.json"
    app = create_witness_app(Witness(cosigner, logs, state))
    uvicorn.run(app, host=a.host, port=a.port, log_level="warning")
    return 0


def add_witness(sub: Commands) -> None:
    witness = sub.add_parser("witness", help="run a witness that cosigns checkpoints")
    wsub = witness.add_subparsers(dest="witness_command", required=True)
    s = wsub.add_parser("init", help="make a witness key in SUYUAN_HOME/witness")
    s.add_argument("name", help="a schema-less URL naming the witness, e.g. customs.example/w1")
    s.set_defaults(fn=cmd_witness)
    s = wsub.add_parser("add", help="ask this witness to cosign every new checkpoint")
    s.add_argument("--url", required=True, help="the witness's submission prefix")
    s.add_argument("--key", required=True, help="its cosigner verifier key")
    s.set_defaults(fn=cmd_witness)
    s = wsub.add_parser("quorum", help="how many witnesses make a checkpoint witnessed")
    s.add_argument("k", type=int)
    s.set_defaults(fn=cmd_witness)
    s = wsub.add_parser("gather", help="collect cosignatures of the latest checkpoint now")
    s.set_defaults(fn=cmd_witness)
    s = wsub.add_parser("serve", help="C2SP tlog-witness POST /add-checkpoint")
    s.add_argument("--name", required=True)
    s.add_argument(
        "--log-key",
        action="append",
        required=True,
        help="verifier key of a log to follow (repeat for several)",
    )
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8010)
    s.set_defaults(fn=cmd_witness)
