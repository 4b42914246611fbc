"""Setting up: `init` (a new ledger), `demo` (one with the Tangshan scenario), `keygen` (a
party key) and `token` (a bearer token for the API)."""

from __future__ import annotations

import argparse
from pathlib import Path

import nacl.signing

from ledger.core.errors import MalformedInput
from ledger.core.ids import parse_party_id
from ledger.core.keys import PartyKey
from ledger.core.note import NoteSigner
from ledger.core.tokens import make_token, read_token
from ledger.log.home import (
    DEFAULT_ORIGIN,
    DEFAULT_REGISTRAR_ID,
    DEFAULT_REGISTRAR_NAME,
    REGISTRAR_KEY,
    Home,
    create_ledger,
    home_in_use,
    refuse_initialised,
)
from ledger.log.sequencer import Ledger
from ledger.store.db import Store
from tools.cli.common import Commands, open_ledger, out


def cmd_init(a: argparse.Namespace, home: Home) -> int:
    parse_party_id(a.registrar_id)
    store = Store()
    store.migrate()
    led = Ledger(store)
    refuse_initialised(led)  # before the home is touched
    # Fresh keys for every new ledger: never the demo's (derived from a public seed),
    # never another ledger's (one origin and key signing two logs would look like a fork).
    signer = NoteSigner(a.origin, nacl.signing.SigningKey.generate())
    reg_key = PartyKey.generate(REGISTRAR_KEY)
    with home.init_lock():  # an init from this home that is under way finishes first
        refuse_initialised(led)
        _refuse_home_in_use(home)
        receipt = create_ledger(
            led,
            home,
            origin=a.origin,
            registrar_id=a.registrar_id,
            registrar_name=a.registrar_name,
            signer=signer,
            registrar_key=reg_key,
        )
    out(
        {
            "origin": a.origin,
            "logKey": signer.verifier_key(),
            "registrar": a.registrar_id,
            "registrarKey": reg_key.key_id,
            "genesis": receipt.as_dict(),
        }
    )
    return 0


def _refuse_home_in_use(home: Home) -> None:
    files = home.ledger_key_files()
    if not files:
        return
    # tools.demo (the scenario, 1,400 lines) is imported only when the home holds keys.
    from tools.demo import holds_demo_keys

    raise home_in_use(
        home,
        files,
        whose="the demo, which anyone can derive from its public seed"
        if holds_demo_keys(home)
        else "another ledger",
    )


def cmd_demo(a: argparse.Namespace, home: Home) -> int:
    """A fresh ledger with the Tangshan scenario (tools/demo.py); creates the ledger if needed."""
    # The scenarios (tools.demo, and tools.demo_ceb with the customs schemas, about 60 ms
    # to import) load for `suyuan demo` alone.
    if a.ceb is not None:
        if a.serve:
            raise MalformedInput("--ceb writes customs messages and builds no ledger; drop --serve")
        from tools import demo_ceb

        return demo_ceb.run(home=home, scale=a.scale, out=Path(a.ceb))
    from tools.demo import run

    return run(home=home, scale=a.scale, serve=a.serve, host=a.host, port=a.port)


def cmd_keygen(a: argparse.Namespace, home: Home) -> int:
    out(home.keys.create(a.name).describe())
    return 0


def cmd_token(a: argparse.Namespace, home: Home) -> int:
    led = open_ledger(home)
    audience = led.origin()
    token = make_token(home.keys.load(a.key), signer=a.signer, audience=audience, ttl=a.ttl)
    # Refuse here, with the API's own sentence, a token the API would refuse.
    led.viewer_for_token(token)
    claims = read_token(token)[0]
    out({"token": token, "sub": claims.sub, "key": claims.key, "exp": claims.exp, "aud": claims.aud})
    return 0


def add_init(sub: Commands) -> None:
    s = sub.add_parser("init", help="create the ledger: schema, keys, genesis entry")
    s.add_argument("--origin", default=DEFAULT_ORIGIN)
    s.add_argument("--registrar-id", default=DEFAULT_REGISTRAR_ID)
    s.add_argument("--registrar-name", default=DEFAULT_REGISTRAR_NAME)
    s.set_defaults(fn=cmd_init)


def add_demo(sub: Commands) -> None:
    s = sub.add_parser("demo", help="build a fresh ledger with the Tangshan CBEC scenario")
    s.add_argument(
        "--scale", type=float, default=1.0, help="volume of goods and orders (1: about 6,000 entries)"
    )
    s.add_argument("--serve", action="store_true", help="then serve it, as `suyuan serve`")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument(
        "--ceb",
        metavar="DIR",
        help="instead, write the 1210 and 9610 flows' orders, "
        "payments, waybills, inventories and releases as China Customs messages",
    )
    s.set_defaults(fn=cmd_demo)


def add_keygen(sub: Commands) -> None:
    s = sub.add_parser("keygen", help="make a party key in SUYUAN_HOME/keys")
    s.add_argument("name")
    s.set_defaults(fn=cmd_keygen)


def add_token(sub: Commands) -> None:
    s = sub.add_parser("token", help="a bearer token for the API, signed by a party key")
    s.add_argument("--key", required=True, help="name of the party's key in SUYUAN_HOME")
    s.add_argument("--signer", required=True, help="the party id the key is registered to")
    s.add_argument("--ttl", type=int, default=3600, help="seconds it stays valid (default 3600)")
    s.set_defaults(fn=cmd_token)
