"""`party`: register, rotate, revoke, show, and delegate a GS1 company prefix."""

from __future__ import annotations

import argparse
from typing import Any

from ledger.core import registry
from ledger.core.errors import LedgerError, MalformedInput
from ledger.core.statements import sign_one
from ledger.log.home import Home
from tools.cli.common import Commands, open_ledger, out


def _roles(text: str) -> list[str]:
    roles = [r.strip() for r in text.split(",") if r.strip()]
    for r in roles:
        if r not in registry.ROLES:
            raise MalformedInput(f"unknown role {r!r}; roles are {', '.join(registry.ROLES)}")
    return roles


def cmd_party_register(a: argparse.Namespace, home: Home) -> int:
    led = open_ledger(home)
    reg_id, reg_key = home.registrar()
    key = home.keys.load(a.key)
    body: dict[str, Any] = {
        "id": a.id,
        "name": a.name,
        "roles": _roles(a.roles),
        "publicKey": key.public_key_b64,
    }
    if a.gs1_prefix:
        body["gs1Prefixes"] = registry.check_gs1_prefixes(a.gs1_prefix, where="--gs1-prefix")
    if a.customs_code:
        body["customsCodes"] = registry.check_customs_codes(a.customs_code, where="--customs-code")
    if a.name_en:
        body["nameEn"] = a.name_en
    env = sign_one(kind="party.register", signer=a.id, key=key, body=body, cosigners=[(reg_id, reg_key)])
    out(led.append(env).as_dict())
    return 0


def cmd_party_delegate(a: argparse.Namespace, home: Home) -> int:
    led = open_ledger(home)
    key = home.keys.load(a.key)
    body: dict[str, Any] = {"prefix": a.prefix, "to": a.to}
    if a.until is not None:
        if a.revoke:
            raise MalformedInput("--until sets when a delegation ends; a revocation ends it now")
        body["until"] = a.until
    env = sign_one(kind="prefix.revoke" if a.revoke else "prefix.delegate", signer=a.id, key=key, body=body)
    out(led.append(env).as_dict())
    return 0


def cmd_party_rotate(a: argparse.Namespace, home: Home) -> int:
    led = open_ledger(home)
    reg_id, reg_key = home.registrar()
    old, new = home.keys.load(a.old_key), home.keys.load(a.new_key)
    env = sign_one(
        kind="party.key.rotate",
        signer=a.id,
        key=old,
        body={"publicKey": new.public_key_b64},
        cosigners=[(reg_id, reg_key)],
    )
    out(led.append(env).as_dict())
    return 0


def cmd_party_revoke(a: argparse.Namespace, home: Home) -> int:
    led = open_ledger(home)
    if a.key:
        signer, key = a.id, home.keys.load(a.key)
    else:
        signer, key = home.registrar()
    env = sign_one(kind="party.key.revoke", signer=signer, key=key, body={"party": a.id, "key": a.key_id})
    out(led.append(env).as_dict())
    return 0


def cmd_party_show(a: argparse.Namespace, home: Home) -> int:
    reg = open_ledger(home).registry_view()
    p = reg.parties.get(a.id)
    if p is None:
        raise LedgerError(f"{a.id} is not a registered party", code="not_found")
    doc: dict[str, Any] = {
        "id": p.id,
        "name": p.name,
        "roles": list(p.roles),
        "registeredSeq": p.registered_seq,
    }
    if p.name_en:
        doc["nameEn"] = p.name_en
    if p.gs1_prefixes:
        doc["gs1Prefixes"] = list(p.gs1_prefixes)
        doc["delegations"] = [
            {"prefix": d.prefix, "to": d.party, "sinceSeq": d.since_seq, "until": d.until}
            for (prefix, _), d in sorted(reg.delegations.items())
            if prefix in p.gs1_prefixes
        ]
    if p.customs_codes:
        doc["customsCodes"] = list(p.customs_codes)
    doc["keys"] = [
        {"keyId": k.key_id, "validFrom": k.valid_from, "validUntil": k.valid_until, "endedBy": k.ended_by}
        for k in reg.keys.values()
        if k.party == p.id
    ]
    out(doc)
    return 0


def add_party(sub: Commands) -> None:
    party = sub.add_parser("party", help="register, rotate, revoke, show, delegate")
    psub = party.add_subparsers(dest="party_command", required=True)
    s = psub.add_parser("register")
    s.add_argument("--id", required=True)
    s.add_argument("--name", required=True)
    s.add_argument("--name-en", help="its English name, shown on English pages")
    s.add_argument("--roles", required=True, help="comma-separated: " + ",".join(registry.ROLES))
    s.add_argument("--key", required=True, help="name of the party's key in SUYUAN_HOME")
    s.add_argument(
        "--gs1-prefix",
        action="append",
        metavar="PREFIX",
        help="a GS1 company prefix the party holds (4-12 digits); repeatable. Only "
        "it, or a party it delegates to, may then make or recall GTINs under it",
    )
    s.add_argument(
        "--customs-code",
        action="append",
        metavar="CODE",
        help="a customs code the party uses in customs messages (its 10-character "
        "customs registration code, or its USCC); repeatable",
    )
    s.set_defaults(fn=cmd_party_register)
    s = psub.add_parser("rotate")
    s.add_argument("--id", required=True)
    s.add_argument("--old-key", required=True)
    s.add_argument("--new-key", required=True)
    s.set_defaults(fn=cmd_party_rotate)
    s = psub.add_parser("revoke")
    s.add_argument("--id", required=True)
    s.add_argument("--key-id", required=True)
    s.add_argument("--key", help="revoke as the party with this local key (default: registrar)")
    s.set_defaults(fn=cmd_party_revoke)
    s = psub.add_parser("show")
    s.add_argument("--id", required=True)
    s.set_defaults(fn=cmd_party_show)
    s = psub.add_parser(
        "delegate",
        help="let another party make and recall products under a "
        "GS1 company prefix this party holds (contract manufacturing), or revoke it",
    )
    s.add_argument("--id", required=True, help="the prefix holder, who signs")
    s.add_argument("--key", required=True, help="name of the holder's key in SUYUAN_HOME")
    s.add_argument("--prefix", required=True, help="a GS1 company prefix the holder registered")
    s.add_argument("--to", required=True, help="the registered party it is delegated to")
    s.add_argument(
        "--until",
        metavar="TIME",
        help="RFC 3339 time after which the delegation ends (default: until revoked)",
    )
    s.add_argument("--revoke", action="store_true", help="end the delegation now")
    s.set_defaults(fn=cmd_party_delegate)
