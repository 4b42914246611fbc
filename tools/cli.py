"""The ``suyuan`` command: JSON on stdout, one clear sentence on stderr when refused.

Exit codes: 0 done; 1 an audit or verification found problems; 2 refused (bad input,
not authorised, not found, not set up, a damaged key file, the database failing) or wrong
usage; 3 stopped because stdout was closed while appending (what landed stays, and is
witnessed). A reading command whose stdout is closed (``| head``) just stops, with 0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import nacl.signing

from ledger.core import canonical, registry
from ledger.core.errors import LedgerError, MalformedInput
from ledger.core.ids import parse_party_id
from ledger.core.keys import PartyKey
from ledger.core.note import NoteSigner
from ledger.core.statements import KINDS, sign_one
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
from ledger.store.db import DEFAULT_URL, Store
from ledger.store.failures import storage_error

SUBMIT_BATCH = 1000
EXIT_STOPPED = 3  # stdout was closed while entries were being appended: the rest was not


def out(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, ensure_ascii=False) + "\n")


def _ledger(home: Home) -> Ledger:
    return Ledger(Store(), note_signer=home.note_signer_if_any(),
                  log_key=home.published_log_key())


def _missing_database() -> str | None:
    """The SQLite file SUYUAN_DB names, when it does not exist: opening it would create an
    empty one (and its directory), so commands that need a ledger look first."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from ledger.store.db import DEFAULT_URL

    try:
        url = make_url(os.environ.get("SUYUAN_DB") or DEFAULT_URL)
    except ArgumentError:
        return None  # the store refuses it with its own sentence
    db = url.database
    if url.get_backend_name() != "sqlite" or not db or db == ":memory:" or db.startswith("file:"):
        return None
    path = Path(db).expanduser()
    return None if path.exists() else str(path)


def _open(home: Home) -> Ledger:
    """The ledger of SUYUAN_DB, for every command but `init` and `demo`: refused, creating
    nothing, when there is none (no SQLite file, or a database or schema without tables)."""
    missing = _missing_database()
    if missing is not None:
        raise LedgerError(f"there is no ledger at {missing} (no such file); run `suyuan init` "
                          "to create one, or set SUYUAN_DB to the ledger's database URL",
                          code="no_ledger")
    led = _ledger(home)
    if not led.store.is_initialised():
        led.store.dispose()
        raise LedgerError("this database holds no ledger (it has no tables); run `suyuan init` "
                          "to create one, or set SUYUAN_DB to the ledger's database URL",
                          code="no_ledger")
    return led


# --- commands ------------------------------------------------------------------------------


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
        receipt = create_ledger(led, home, origin=a.origin, registrar_id=a.registrar_id,
                                registrar_name=a.registrar_name, signer=signer,
                                registrar_key=reg_key)
    out({"origin": a.origin, "logKey": signer.verifier_key(), "registrar": a.registrar_id,
         "registrarKey": reg_key.key_id, "genesis": receipt.as_dict()})
    return 0


def _refuse_home_in_use(home: Home) -> None:
    files = home.ledger_key_files()
    if not files:
        return
    from tools.demo import holds_demo_keys

    raise home_in_use(home, files, whose="the demo, which anyone can derive from its public seed"
                      if holds_demo_keys(home) else "another ledger")


def cmd_keygen(a: argparse.Namespace, home: Home) -> int:
    out(home.keys.create(a.name).describe())
    return 0


def _roles(text: str) -> list[str]:
    roles = [r.strip() for r in text.split(",") if r.strip()]
    for r in roles:
        if r not in registry.ROLES:
            raise MalformedInput(f"unknown role {r!r}; roles are {', '.join(registry.ROLES)}")
    return roles


def cmd_party_register(a: argparse.Namespace, home: Home) -> int:
    led = _open(home)
    reg_id, reg_key = home.registrar()
    key = home.keys.load(a.key)
    body: dict[str, Any] = {"id": a.id, "name": a.name, "roles": _roles(a.roles),
                            "publicKey": key.public_key_b64}
    if a.gs1_prefix:
        body["gs1Prefixes"] = registry.check_gs1_prefixes(a.gs1_prefix, where="--gs1-prefix")
    if a.customs_code:
        body["customsCodes"] = registry.check_customs_codes(a.customs_code, where="--customs-code")
    if a.name_en:
        body["nameEn"] = a.name_en
    env = sign_one(kind="party.register", signer=a.id, key=key, body=body,
                   cosigners=[(reg_id, reg_key)])
    out(led.append(env).as_dict())
    return 0


def cmd_party_delegate(a: argparse.Namespace, home: Home) -> int:
    led = _open(home)
    key = home.keys.load(a.key)
    body: dict[str, Any] = {"prefix": a.prefix, "to": a.to}
    if a.until is not None:
        if a.revoke:
            raise MalformedInput("--until sets when a delegation ends; a revocation ends it now")
        body["until"] = a.until
    env = sign_one(kind="prefix.revoke" if a.revoke else "prefix.delegate", signer=a.id, key=key,
                   body=body)
    out(led.append(env).as_dict())
    return 0


def cmd_party_rotate(a: argparse.Namespace, home: Home) -> int:
    led = _open(home)
    reg_id, reg_key = home.registrar()
    old, new = home.keys.load(a.old_key), home.keys.load(a.new_key)
    env = sign_one(kind="party.key.rotate", signer=a.id, key=old,
                   body={"publicKey": new.public_key_b64}, cosigners=[(reg_id, reg_key)])
    out(led.append(env).as_dict())
    return 0


def cmd_party_revoke(a: argparse.Namespace, home: Home) -> int:
    led = _open(home)
    if a.key:
        signer, key = a.id, home.keys.load(a.key)
    else:
        signer, key = home.registrar()
    env = sign_one(kind="party.key.revoke", signer=signer, key=key,
                   body={"party": a.id, "key": a.key_id})
    out(led.append(env).as_dict())
    return 0


def cmd_party_show(a: argparse.Namespace, home: Home) -> int:
    reg = _open(home).registry_view()
    p = reg.parties.get(a.id)
    if p is None:
        raise LedgerError(f"{a.id} is not a registered party", code="not_found")
    doc: dict[str, Any] = {"id": p.id, "name": p.name, "roles": list(p.roles),
                           "registeredSeq": p.registered_seq}
    if p.name_en:
        doc["nameEn"] = p.name_en
    if p.gs1_prefixes:
        doc["gs1Prefixes"] = list(p.gs1_prefixes)
        doc["delegations"] = [
            {"prefix": d.prefix, "to": d.party, "sinceSeq": d.since_seq, "until": d.until}
            for (prefix, _), d in sorted(reg.delegations.items()) if prefix in p.gs1_prefixes]
    if p.customs_codes:
        doc["customsCodes"] = list(p.customs_codes)
    doc["keys"] = [{"keyId": k.key_id, "validFrom": k.valid_from, "validUntil": k.valid_until,
                    "endedBy": k.ended_by} for k in reg.keys.values() if k.party == p.id]
    out(doc)
    return 0


def _read_json_file(path: str) -> Any:
    raw = sys.stdin.buffer.read() if path == "-" else _read_bytes(path)
    return canonical.parse_json(raw)


def _read_bytes(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise LedgerError(f"cannot read {path}: {e.strerror}", code="not_found") from None


def cmd_sign(a: argparse.Namespace, home: Home) -> int:
    body = _read_json_file(a.body)
    if not isinstance(body, dict):
        raise MalformedInput(f"{a.body} must hold one JSON object, the statement body")
    key = home.keys.load(a.key)
    if a.private:
        from ledger.core.private import make_blob

        data = _read_json_file(a.private)
        if not isinstance(data, dict):
            raise MalformedInput(f"{a.private} must hold one JSON object, the private data")
        commitment, blob = make_blob(data)
        env = sign_one(kind=a.kind, signer=a.signer, key=key, body=body, private=commitment)
        # The blob travels beside the envelope, never inside the signed statement.
        out({"envelope": env, "private": blob})
        return 0
    out(sign_one(kind=a.kind, signer=a.signer, key=key, body=body))
    return 0


def envelopes_in(raw: bytes, name: str) -> Iterator[Any]:
    """One envelope, a JSON array of them, or JSON Lines."""
    text = raw.lstrip()
    if text.startswith(b"["):
        doc = canonical.parse_json(raw)
        if not isinstance(doc, list):
            raise MalformedInput(f"{name} must hold an envelope, an array or JSON Lines")
        yield from doc
        return
    try:
        yield canonical.parse_json(raw)
        return
    except MalformedInput:
        if raw.count(b"\n") < 1:
            raise
    for n, line in enumerate(raw.splitlines(), 1):
        if line.strip():
            try:
                yield canonical.parse_json(line)
            except MalformedInput as e:
                raise MalformedInput(f"{name} line {n}: {e.message}") from None


def _batches(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _unwrap(batch: list[Any]) -> tuple[list[Any], dict[str, Any]]:
    """Envelopes as `suyuan sign --private` writes them carry their blob beside them."""
    from ledger.core.private import unwrap_envelopes

    return unwrap_envelopes(batch)


def cmd_submit(a: argparse.Namespace, home: Home) -> int:
    led = _open(home)
    if a.files.count("-") > 1:
        raise MalformedInput("name stdin (-) once; it can be read only once")
    landed = 0
    try:
        for path in a.files:
            raw = sys.stdin.buffer.read() if path == "-" else _read_bytes(path)
            # Parse the whole file first: a malformed line refuses the file before anything lands.
            items = list(envelopes_in(raw, "stdin" if path == "-" else path))
            for batch in _batches(iter(items), a.batch):
                envs, private = _unwrap(batch)
                receipts = led.append_batch(envs, private=private)
                landed += len(batch)
                for r in receipts:
                    sys.stdout.write(json.dumps(r.as_dict(), ensure_ascii=False) + "\n")
                sys.stdout.flush()
                if sys.stderr.isatty() and len(items) > a.batch:
                    sys.stderr.write(f"\rsubmitted {landed:,} envelopes")
    except BrokenPipeError:
        # `suyuan submit … | head -1`: nobody reads the receipts any more, so stop here;
        # what landed is witnessed as usual.
        _silence_stdout()
        print(f"stopped: stdout was closed after {landed:,} envelopes had landed (the ledger's "
              f"size is now {led.size():,}); the rest was not submitted", file=sys.stderr)
        _witness_landed(home, led, landed)
        return EXIT_STOPPED
    except Exception:
        # Refused or failed partway: the batches before this one have landed, and their
        # witnesses are asked all the same (what fails here must not hide the refusal).
        with contextlib.suppress(Exception):
            _witness_landed(home, led, landed)
        raise
    if sys.stderr.isatty() and landed > a.batch:
        sys.stderr.write("\n")
    _witness_landed(home, led, landed)
    return 0


def _witness_landed(home: Home, led: Ledger, landed: int) -> None:
    witnessing = _witnessing(home)
    if witnessing is None or not landed:
        return
    from ledger.log.witnesses import gather, http_post

    res = gather(led, witnessing, http_post)
    print(f"witnessed: {len(res.cosigned)} of {len(witnessing.witnesses)} cosigned "
          f"size {res.size} (quorum {res.quorum})"
          + "".join(f"; {k}: {v}" for k, v in res.errors.items()), file=sys.stderr)


def _silence_stdout() -> None:
    """After EPIPE: Python flushes stdout once more at exit, which would raise again and
    print a traceback; send what is left to /dev/null instead."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass  # stdout is not a file (tests capturing it): nothing to flush at exit


def cmd_entry(a: argparse.Namespace, home: Home) -> int:
    from ledger.core.private import Viewer

    led = _open(home)
    doc = led.entry(a.seq).as_dict()
    viewer = Viewer.parse(a.viewer)
    if viewer.kind != "public" and doc["decoded"]["envelope"]["statement"].get("private"):
        doc["privateData"] = led.private_data(a.seq, viewer)
    out(doc)
    return 0


def cmd_shred(a: argparse.Namespace, home: Home) -> int:
    out(_open(home).shred(a.commitment))
    return 0


def cmd_trace(a: argparse.Namespace, home: Home) -> int:
    from ledger.queries import trace

    store = _open(home).store
    if a.command == "trace":
        out(_journey_or_refuse(store, a.code, allow_empty=a.allow_empty))
    elif a.command == "upstream":
        out(trace.upstream(store, a.code, a.depth))
    elif a.command == "downstream":
        out(trace.downstream(store, a.code, a.depth))
    else:
        out(trace.recall_impact(store, a.code))
    return 0


def _journey_or_refuse(store: Store, code: str, *, allow_empty: bool) -> dict[str, Any]:
    """The journey of ``code``; a code no entry names is refused as the resolver answers it
    (404), unless an empty journey is what the caller wants."""
    from ledger.core.errors import NotFound
    from ledger.queries import trace

    doc = trace.journey(store, code)
    if not doc["journey"] and not allow_empty:
        raise NotFound(f"the ledger has no event about {doc['code']}; check the code, or give "
                       "--allow-empty to print an empty journey", code="not_found")
    return doc


def cmd_reindex(a: argparse.Namespace, home: Home) -> int:
    from ledger.log.reindex import reindex

    led = _open(home)
    tty = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if tty:
            sys.stderr.write(f"\rreindex: {done:,}/{total:,} entries")

    res = reindex(led.store, progress=progress)
    if tty:
        sys.stderr.write("\n")
    out(res)
    return 0


def cmd_checkpoint(a: argparse.Namespace, home: Home) -> int:
    sys.stdout.write(_open(home).latest_checkpoint())
    return 0


def cmd_log_key(a: argparse.Namespace, home: Home) -> int:
    # The pinned key (the published SUYUAN_LOG_KEY, else the genesis entry's): the one
    # verifiers must pin; a genesis that names another is a warning.
    led = _open(home)
    pin = led.pinned_key()
    sys.stdout.write(led.log_verifier().vkey() + "\n")
    if pin.problem:
        print(f"warning: {pin.problem}", file=sys.stderr)
    return 0


def cmd_prove(a: argparse.Namespace, home: Home) -> int:
    led = _open(home)
    if a.what == "inclusion":
        out(led.inclusion_proof(a.seq, a.size).as_dict())
    else:
        out(led.consistency_proof(a.first, a.second).as_dict())
    return 0


def _bundle_seqs(led: Ledger, items: Sequence[str]) -> list[int]:
    """Seqs to bundle: a bare decimal number is a seq; anything else is a product code
    (a Digital Link or EPC URN), standing for every entry of its journey."""
    seqs: list[int] = []
    for item in items:
        if item.isascii() and item.isdigit():
            seqs.append(int(item))
            continue
        seqs += [step["seq"] for step in _journey_or_refuse(led.store, item,
                                                            allow_empty=False)["journey"]]
    return seqs


def cmd_bundle(a: argparse.Namespace, home: Home) -> int:
    from ledger.log.bundle import make_bundle

    led = _open(home)
    doc = make_bundle(led, _bundle_seqs(led, a.items))
    Path(a.out).write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n")
    out({"out": a.out, "entries": len(doc["entries"]), "requested": doc["requested"]})
    return 0


def cmd_verify(a: argparse.Namespace, home: Home) -> int:
    from ledger.log.bundle import bundle_from_tiles, verify_bundle

    log_key = a.log_key or home.published_log_key()
    if (a.file is None) == (a.tiles is None) or (a.tiles is None) != (a.seq is None):
        raise MalformedInput("give a bundle FILE, or --tiles URL with --seq N…", code="usage")
    if a.tiles is not None:
        if not log_key:
            raise MalformedInput("--tiles needs --log-key (or SUYUAN_LOG_KEY): a mirror cannot "
                                 "vouch for the log's key", code="usage")
        doc = bundle_from_tiles(_tiles_fetch(a.tiles), a.seq)
    else:
        doc = _read_json_file(a.file)
    res = verify_bundle(doc, log_key=log_key,
                        witness_keys=a.witness_key or (), quorum=a.quorum)
    doc = res.as_dict()
    if not res.trusted_key and not a.trust_bundle_key:
        # The key inside the bundle is whatever its maker put there: checked against it, a
        # forged bundle verifies as well as a real one.
        doc["ok"] = False
        doc["problems"] = [*doc["problems"], UNPINNED]
    out(doc)
    if not res.trusted_key and a.trust_bundle_key:
        print("warning: --trust-bundle-key: checked against the key inside the bundle, which "
              "proves only that the bundle is self-consistent", file=sys.stderr)
    for p in doc["problems"]:
        print(p, file=sys.stderr)
    return 0 if doc["ok"] else 1


UNPINNED = ("no --log-key given: the bundle was checked only against the key it carries, "
            "which proves nothing about which ledger wrote it; pin the ledger's published key "
            "with --log-key (suyuan log-key), or give --trust-bundle-key to accept a "
            "self-consistent bundle")


def cmd_audit(a: argparse.Namespace, home: Home) -> int:
    from ledger.log.audit import audit

    led = _open(home)
    started = time.monotonic()
    tty = sys.stderr.isatty() and not a.json

    def progress(done: int, total: int) -> None:
        if tty:
            pct = 100 * done / total if total else 100
            rate = done / max(time.monotonic() - started, 1e-9)
            sys.stderr.write(f"\raudit: {done:,}/{total:,} entries ({pct:.1f}%), {rate:,.0f}/s")
            sys.stderr.flush()

    if a.report or a.scope:
        from api.report import collect, render_html

        doc = collect(led, home, scope=a.scope)
        if a.report:
            Path(a.report).write_text(render_html(doc), encoding="utf-8")
        if a.json:
            out(doc)
        else:
            out({"report": a.report, "ok": doc["integrity"]["ok"],
                 "problems": len(doc["integrity"]["problems"]),
                 **({"scope": doc["scope"]["code"], "scopeOk": doc["scope"]["ok"],
                     "scopeEntries": len(doc["scope"]["entries"])} if a.scope else {})})
        ok = doc["integrity"]["ok"] and (not a.scope or doc["scope"]["ok"])
        return 0 if ok else 1
    rep = audit(led.store, progress=progress, log_key=led.published_log_key)
    if tty:
        sys.stderr.write("\n")
    # The report is JSON on stdout, as every command's answer; people read stderr.
    out(rep.as_dict())
    if not a.json:
        for p in rep.problems:
            print(p.line(), file=sys.stderr)
        status = "sound" if rep.ok else f"{len(rep.problems)} problem(s)"
        print(f"audit: {rep.entries} entries, {rep.signatures} signatures, "
              f"{rep.checkpoints} checkpoints, {rep.nodes} tree nodes: {status}",
              file=sys.stderr)
    return 0 if rep.ok else 1


def cmd_credit(a: argparse.Namespace, home: Home) -> int:
    from ledger.queries.credit import credit, credit_table

    led = _open(home)
    if a.all == (a.party is not None):
        raise MalformedInput("give one party id, or --all for the whole credit table")
    out(credit_table(led.store) if a.all else credit(led.store, a.party))
    return 0


def cmd_stats(a: argparse.Namespace, home: Home) -> int:
    from ledger.queries.stats import statistics

    out(statistics(_open(home).store))
    return 0


def cmd_demo(a: argparse.Namespace, home: Home) -> int:
    """A fresh ledger with the Tangshan scenario (tools/demo.py); creates the ledger if needed."""
    if a.ceb is not None:
        if a.serve:
            raise MalformedInput("--ceb writes customs messages and builds no ledger; drop --serve")
        from tools import demo_ceb

        return demo_ceb.run(home=home, scale=a.scale, out=Path(a.ceb))
    from tools.demo import run

    return run(home=home, scale=a.scale, serve=a.serve, host=a.host, port=a.port)


# --- findings (begin): compliance findings, the positive list, retail-import tax ----------------


def cmd_findings(a: argparse.Namespace, home: Home) -> int:
    from ledger.queries.findings import findings_summary, list_findings

    store = _open(home).store
    if a.summary:
        out(findings_summary(store))
        return 0
    for f in list_findings(store, rule=a.rule, party=a.party, code=a.code, severity=a.severity,
                           since_seq=a.since, limit=a.limit):
        out(f.as_dict())
    return 0


LIST_CHUNK = 500  # HS codes per list.update statement


def cmd_list_load(a: argparse.Namespace, home: Home) -> int:
    """Sign a positive-list file as list.update statements of a regulator and append them."""
    doc = _read_json_file(a.file)
    entries = doc.get("entries") if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or doc.get("list") != "positive" or not isinstance(entries, list):
        raise MalformedInput(f"{a.file} must be a positive-list file like "
                             "schemas/positive-list.sample.json: list \"positive\" and entries")
    codes = [e.get("hsCode") if isinstance(e, dict) else e for e in entries]
    if not codes or not all(isinstance(c, str) for c in codes):
        raise MalformedInput(f"every entry of {a.file} needs an hsCode string")
    reason = doc.get("reason") if isinstance(doc.get("reason"), str) else a.file
    key = home.keys.load(a.key)
    envs = [sign_one(kind="list.update", signer=a.signer, key=key,
                     body={"list": "positive", "action": a.action,
                           "hsCodes": codes[i : i + LIST_CHUNK], "reason": reason})
            for i in range(0, len(codes), LIST_CHUNK)]
    for r in _open(home).append_batch(envs):
        out(r.as_dict())
    return 0


def cmd_tax(a: argparse.Namespace, home: Home) -> int:
    from ledger.compliance.tax import as_json, tax_for

    order = _read_json_file(a.order)
    if not isinstance(order, dict):
        raise MalformedInput(f"{a.order} must hold an order event body or its cbec:orderInfo")
    try:
        out(as_json(tax_for(order, hs_code=a.hs_code)))
    except ValueError as e:
        raise MalformedInput(f"{a.order}: {e}") from None
    return 0


# --- findings (end) -----------------------------------------------------------------------------


# --- epcis (begin): EPCIS 2.0 document import and export ------------------------------------


def cmd_epcis(a: argparse.Namespace, home: Home) -> int:
    from ledger.queries import documents as epcis

    led = _open(home)
    if a.epcis_command == "import":
        from ledger.epcis import xml as epcis_xml

        raw = sys.stdin.buffer.read() if a.file == "-" else _read_bytes(a.file)
        name = "<stdin>" if a.file == "-" else a.file
        if raw.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
            document, media = epcis_xml.parse(raw, source=name), "application/xml"
        else:
            try:
                document, media = canonical.parse_json(raw), "application/ld+json"
            except MalformedInput as e:
                raise MalformedInput(f"{name}: {e.message}", code=e.code) from None
        done = epcis.import_epcis(led, document, signer=a.signer, key=home.keys.load(a.key),
                                  source=name, media_type=media)
        for r in done.events:
            out(r.as_dict())
        for r in done.masterdata:
            out({"masterdata": r.as_dict()})
        out({"document": done.document.as_dict()})
        return 0
    direction: epcis.Direction = "up" if a.up else "down" if a.down else "journey"
    if a.format == "xml":
        data = epcis.export_xml(led.store, a.code, direction=direction)
        if a.out:
            Path(a.out).write_bytes(data)
            out({"out": a.out, "format": "xml"})
        else:
            sys.stdout.buffer.write(data)
        return 0
    doc = epcis.export_document(led.store, a.code, direction=direction)
    if a.out:
        Path(a.out).write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n")
        out({"out": a.out, "events": len(doc["epcisBody"]["eventList"])})
    else:
        out(doc)
    return 0


# --- epcis (end) ---------------------------------------------------------------------------


# --- ceb (begin): China Customs CBEC messages in -------------------------------------------


def _matching_key(home: Home, path: str | None) -> bytes:
    """The zone's matching key (buyerIdHash, consigneeHash): {"hmacKey": "<64 hex>"}."""
    file = Path(path) if path else home.path / "zone.key"
    try:
        doc = json.loads(file.read_text())
        key = bytes.fromhex(doc["hmacKey"])
    except FileNotFoundError:
        raise LedgerError(f"no matching key at {file}: the zone's HMAC key, which platforms, "
                          "payment institutions and customs share, as {\"hmacKey\": \"<64 hex>\"} "
                          "(--matching-key FILE names another file)", code="no_matching_key") from None
    except (ValueError, KeyError, TypeError):
        raise LedgerError(f"{file} must hold {{\"hmacKey\": \"<64 hex characters>\"}}",
                          code="no_matching_key") from None
    if len(key) < 16:
        raise LedgerError(f"the matching key in {file} is {len(key)} bytes; it needs at least 16",
                          code="no_matching_key")
    return key


def cmd_ceb_import(a: argparse.Namespace, home: Home) -> int:
    """Every file is read and checked first; then one batch per message, orders before
    payments, waybills, inventories and receipts. One JSON line per document."""
    from ledger.epcis import ceb
    from ledger.log.ceb_import import import_message, import_order

    led = _open(home)
    key = home.keys.load(a.key)
    matching = _matching_key(home, a.matching_key)
    for f in a.files:  # refuse a huge file before reading it into memory
        if Path(f).is_file() and Path(f).stat().st_size > ceb.MAX_MESSAGE_BYTES:
            raise MalformedInput(f"{f} is {Path(f).stat().st_size} bytes; a customs message may "
                                 f"have at most {ceb.MAX_MESSAGE_BYTES} (32 MiB)", code="too_large")
    messages = [ceb.read_message(_read_bytes(f), source=f) for f in a.files]
    for msg in import_order(messages):
        for r in import_message(led, msg, key=key, matching_key=matching, signer=a.signer):
            out({"file": msg.source, **r.as_dict()})
    return 0


# --- ceb (end) -----------------------------------------------------------------------------


# --- qr (begin) ------------------------------------------------------------------------------


def _base_url(a: argparse.Namespace) -> str:
    """The resolver base printed into codes: said on purpose, and public (api.qr)."""
    from api.qr import printable_base_url

    return printable_base_url(a.base_url or os.environ.get("SUYUAN_BASE_URL"),
                              where="SUYUAN_BASE_URL or --base-url")


def cmd_qr(a: argparse.Namespace, home: Home) -> int:
    from api.qr import digital_link_url, qr_image

    base = _base_url(a)
    if a.lot is not None or a.sheet is not None:
        if a.code is not None or a.lot is None or a.sheet is None:
            raise MalformedInput("a label sheet takes --lot CODE --sheet FILE.pdf and no other code",
                                 code="usage")
        if a.out is not None or a.format is not None:
            raise MalformedInput("--out and --format are for one code; a sheet is always a PDF "
                                 "written to --sheet", code="usage")
        from api.labels import lot_label_sheet

        tty = sys.stderr.isatty()

        def progress(done: int, total: int) -> None:
            if tty and total >= 200:
                sys.stderr.write(f"\rqr: {done:,}/{total:,} labels")
                if done == total:
                    sys.stderr.write("\n")

        pdf, info = lot_label_sheet(_open(home).store, base, a.lot, progress=progress)
        Path(a.sheet).write_bytes(pdf)
        out({"sheet": a.sheet, **info, "bytes": len(pdf)})
        return 0
    if a.code is None:
        raise MalformedInput("give a product code, or --lot CODE --sheet FILE.pdf", code="usage")
    fmt = a.format or "png"
    text = digital_link_url(base, a.code)
    image = qr_image(text, fmt)
    if a.out is not None:
        Path(a.out).write_bytes(image)
        out({"file": a.out, "format": fmt, "text": text, "bytes": len(image)})
        return 0
    if sys.stdout.isatty():
        raise MalformedInput(f"a {fmt.upper()} image is not for a terminal; give --out FILE or "
                             "redirect stdout to a file", code="usage")
    sys.stdout.buffer.write(image)
    sys.stdout.flush()
    return 0


# --- qr (end) --------------------------------------------------------------------------------


def cmd_token(a: argparse.Namespace, home: Home) -> int:
    from ledger.core.tokens import make_token, read_token

    led = _open(home)
    audience = led.origin()
    token = make_token(home.keys.load(a.key), signer=a.signer, audience=audience, ttl=a.ttl)
    # Refuse here, with the API's own sentence, a token the API would refuse.
    led.viewer_for_token(token)
    claims = read_token(token)[0]
    out({"token": token, "sub": claims.sub, "key": claims.key, "exp": claims.exp, "aud": claims.aud})
    return 0


def cmd_serve(a: argparse.Namespace, home: Home) -> int:
    import uvicorn

    from api.app import create_app
    from api.settings import Settings
    from api.visitors import parse_proxies
    from ledger.queries.scans import check_ready

    if a.workers < 1:
        raise MalformedInput(f"--workers is a number of processes, at least 1, not {a.workers}")
    if a.dev and a.workers > 1:
        raise MalformedInput("--dev serves from one process; leave out --workers or --dev")
    led = _open(home)
    check_ready(led.store)  # refuse before binding a port: no ledger, or an old schema
    pin = led.pinned_key()
    if pin.problem:
        # Served anyway: the pages then say "not verified", with this reason.
        print(f"warning: {pin.problem}; every page will say \"not verified\"", file=sys.stderr)
    if a.trusted_proxy:
        # Through the environment: each worker process builds its Settings from it.
        os.environ["SUYUAN_TRUSTED_PROXIES"] = ",".join(
            str(n) for n in parse_proxies(a.trusted_proxy, where="--trusted-proxy"))
    if a.tiles_dir:
        # Every worker builds its app from the environment; they share the directory's lock.
        os.environ["SUYUAN_TILES_DIR"] = str(Path(a.tiles_dir).resolve())
    if a.db_read:
        os.environ["SUYUAN_DB_READ"] = " ".join(a.db_read)  # read replicas, as above
    settings = Settings.from_env(dev=a.dev)  # refuses a bad SUYUAN_TRUSTED_PROXIES here
    # uvicorn would take X-Forwarded-For from 127.0.0.1 on its own: the app decides whom
    # to believe (api/visitors.py), from the socket's own peer address.
    if a.workers > 1:
        # Each worker process builds its own app from the same environment (SUYUAN_DB,
        # SUYUAN_HOME, SUYUAN_BASE_URL) and answers on the one shared socket.
        uvicorn.run("api.app:create_app", factory=True, host=a.host, port=a.port,
                    workers=a.workers, log_level="warning", proxy_headers=False)
        return 0
    uvicorn.run(create_app(settings), host=a.host, port=a.port, proxy_headers=False,
                log_level="info" if a.dev else "warning")
    return 0


def cmd_agent(a: argparse.Namespace, home: Home) -> int:
    from tools.agent import run

    return run(a, home)


def cmd_scans(a: argparse.Namespace, home: Home) -> int:
    from ledger.queries import scans

    store = _open(home).store
    if a.prune:
        out({"deleted": scans.prune(store), "retentionDays": scans.retention_days()})
    elif a.suspicious:
        out({"suspicious": scans.suspicious(store)})
    elif a.code:
        out(scans.scans_for(store, a.code))
    else:
        raise MalformedInput("give a CODE, --suspicious or --prune")
    return 0


def _witness_key(home: Home, name: str, *, create: bool) -> Any:
    import base64 as b64

    from ledger.log.cosigner import Cosigner
    from ledger.log.keyfiles import read_key_file, seed_in, text_in, write_key_file

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
        raise LedgerError(f"no witness {name!r} here; run `suyuan witness init {name}`",
                          code="not_found") from None
    return Cosigner(text_in(doc, path, "name"), nacl.signing.SigningKey(seed_in(doc, path)))


def _witnessing(home: Home) -> Any:
    from ledger.log.witnesses import Witnessing

    cfg = home.config()
    return Witnessing.from_config(cfg) if cfg.get("witnesses") else None


def cmd_witness(a: argparse.Namespace, home: Home) -> int:
    if a.witness_command == "init":
        c = _witness_key(home, a.name, create=True)
        out({"name": c.name, "vkey": c.vkey()})
        return 0
    if a.witness_command in ("add", "quorum"):
        from ledger.log.cosigner import CosignatureVerifier
        from ledger.log.witnesses import Witnessing

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
        from ledger.log.witnesses import gather, http_post

        w = _witnessing(home)
        if w is None:
            raise LedgerError("no witnesses configured; add one with `suyuan witness add`",
                              code="config")
        res = gather(_open(home), w, http_post)
        out(res.as_dict())
        return 0 if res.witnessed else 1
    import uvicorn

    from api.witness_app import create_witness_app
    from ledger.core.note import NoteVerifier
    from ledger.log.cosigner import Witness

    cosigner = _witness_key(home, a.name, create=False)
    logs = {}
    for vkey in a.log_key:
        v = NoteVerifier.from_vkey(vkey)
        logs[v.name] = v  # a log's checkpoint key is named after its origin
    state = home.path / "witness" / f"{a.name.replace('/', '_')}.state.json"
    app = create_witness_app(Witness(cosigner, logs, state))
    uvicorn.run(app, host=a.host, port=a.port, log_level="warning")
    return 0


def cmd_monitor(a: argparse.Namespace, home: Home) -> int:
    import httpx

    from ledger.log.monitor import observe, observe_tiles

    if (a.url is None) == (a.tiles is None):
        raise MalformedInput("give the ledger's URL, or --tiles URL", code="usage")
    if a.tiles is not None:
        if not a.log_key:
            raise MalformedInput("--tiles needs --log-key: a mirror cannot vouch for the log's "
                                 "key", code="usage")
        tile_fetch = _tiles_fetch(a.tiles)
    elif a.witness_key:
        raise MalformedInput("--witness-key is for --tiles; the ledger's own API is followed "
                             "by size and proof alone", code="usage")
    base = (a.url or a.tiles).rstrip("/")

    def fetch(path: str) -> str:
        r = httpx.get(base + path, timeout=10)
        r.raise_for_status()
        return r.text

    rounds = 0
    while True:
        try:
            if a.tiles is not None:
                obs = observe_tiles(tile_fetch, Path(a.state), log_key=a.log_key,
                                    witness_keys=a.witness_key or (), quorum=a.quorum)
            else:
                obs = observe(fetch, Path(a.state), log_key=a.log_key)
        except httpx.HTTPError as e:
            raise LedgerError(f"cannot reach {base}: {e}", code="unreachable") from None
        out(obs.as_dict())
        if not obs.ok:
            print(f"ALARM: {obs.alarm}", file=sys.stderr)
            return 1
        rounds += 1
        if a.every is None or (a.rounds and rounds >= a.rounds):
            return 0
        time.sleep(a.every)


# --- tiles (begin): the log as C2SP tlog-tiles static files, and reading them back ---------


def cmd_tiles(a: argparse.Namespace, home: Home) -> int:
    from ledger.log.tiles_export import export

    res = export(_open(home), Path(a.dir), full=a.full)
    assert res is not None  # waits for any other exporter
    out(res.as_dict())
    return 0


def _tiles_fetch(base: str) -> Any:
    """GET tiles from an http(s) URL (one kept-alive connection) or read them from a
    directory an export wrote: the bytes, or None where nothing is served."""
    import httpx

    if not base.startswith(("http://", "https://")):
        root = Path(base)
        if not root.is_dir():
            raise MalformedInput(f"--tiles {base!r} is neither an http(s) URL nor a directory")

        def read(path: str) -> bytes | None:
            try:
                return (root / path).read_bytes()
            except (FileNotFoundError, IsADirectoryError):
                return None

        return read
    client = httpx.Client(base_url=base.rstrip("/") + "/", timeout=30)

    def get(path: str) -> bytes | None:
        try:
            r = client.get(path)
        except httpx.HTTPError as e:
            raise LedgerError(f"cannot reach {base}: {e}", code="unreachable") from None
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            raise LedgerError(f"{base}/{path} answered HTTP {r.status_code}", code="unreachable")
        return r.content

    return get


# --- tiles (end) ---------------------------------------------------------------------------


# --- parser --------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="suyuan", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("init", help="create the ledger: schema, keys, genesis entry")
    s.add_argument("--origin", default=DEFAULT_ORIGIN)
    s.add_argument("--registrar-id", default=DEFAULT_REGISTRAR_ID)
    s.add_argument("--registrar-name", default=DEFAULT_REGISTRAR_NAME)
    s.set_defaults(fn=cmd_init)

    s = sub.add_parser("demo", help="build a fresh ledger with the Tangshan CBEC scenario")
    s.add_argument("--scale", type=float, default=1.0,
                   help="volume of goods and orders (1: about 6,000 entries)")
    s.add_argument("--serve", action="store_true", help="then serve it, as `suyuan serve`")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--ceb", metavar="DIR", help="instead, write the 1210 and 9610 flows' orders, "
                   "payments, waybills, inventories and releases as China Customs messages")
    s.set_defaults(fn=cmd_demo)

    s = sub.add_parser("serve", help="the HTTP API: /graphql, /healthz, /checkpoint, /log-key, "
                       "resolver and page, /qr/")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--dev", action="store_true",
                   help="GraphiQL and introspection at /graphql, debug tracebacks, access logs")
    s.add_argument("--workers", type=int, default=1,
                   help="server processes sharing the port (e.g. one per core); default 1")
    s.add_argument("--trusted-proxy", action="append", default=[], metavar="CIDR",
                   help="a proxy or CDN network whose X-Forwarded-For and X-Region headers are "
                        "believed (repeat for several; replaces SUYUAN_TRUSTED_PROXIES)")
    s.add_argument("--tiles-dir", metavar="DIR",
                   help="keep DIR current with the log's static tiles, as `suyuan tiles export`, "
                   "within a second of each checkpoint")
    s.add_argument("--db-read", action="append", default=[], metavar="URL",
                   help="a read replica (PostgreSQL hot standby) to answer reads from; repeat "
                        "for several (replaces SUYUAN_DB_READ); writes go to SUYUAN_DB")
    s.set_defaults(fn=cmd_serve)

    tiles_p = sub.add_parser("tiles", help="the log as C2SP tlog-tiles static files")
    tsub = tiles_p.add_subparsers(dest="tiles_command", required=True)
    s = tsub.add_parser("export", help="write (incrementally) checkpoint and tile/ into DIR, "
                        "for any web server, object store or CDN")
    s.add_argument("dir")
    s.add_argument("--full", action="store_true",
                   help="write every tile again, not only what changed since the last export")
    s.set_defaults(fn=cmd_tiles)

    s = sub.add_parser("token", help="a bearer token for the API, signed by a party key")
    s.add_argument("--key", required=True, help="name of the party's key in SUYUAN_HOME")
    s.add_argument("--signer", required=True, help="the party id the key is registered to")
    s.add_argument("--ttl", type=int, default=3600, help="seconds it stays valid (default 3600)")
    s.set_defaults(fn=cmd_token)

    s = sub.add_parser("agent", help="the enterprise's EPCIS capture endpoint: signs with its own "
                       "key and delivers to the ledger through a durable outbox")
    s.add_argument("action", nargs="?", choices=("status",), help="status: the outbox's backlog")
    s.add_argument("--key", help="the party key's name in SUYUAN_HOME/keys")
    s.add_argument("--signer", help="the party id the key belongs to")
    s.add_argument("--ledger", help="the zone ledger's base URL, e.g. http://ledger:8000")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8020)
    s.add_argument("--db", help="the outbox's SQLAlchemy URL (default sqlite:///SUYUAN_HOME/agent.db)")
    s.add_argument("--token-file", help="the bearer token local clients must send (required "
                   "beyond loopback)")
    s.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    s.add_argument("--tls-key", help="its private key (PEM)")
    s.add_argument("--tls-client-ca", help="require client certificates from this CA (mTLS)")
    s.set_defaults(fn=cmd_agent)

    s = sub.add_parser("scans", help="consumer scans of an item and its counterfeit signal")
    s.add_argument("code", nargs="?", help="GS1 Digital Link (any domain), EPC URN or GTIN")
    s.add_argument("--suspicious", action="store_true",
                   help="every code whose scans raise the counterfeit signal")
    s.add_argument("--prune", action="store_true",
                   help="delete scans older than SUYUAN_SCAN_RETENTION_DAYS (default 400)")
    s.set_defaults(fn=cmd_scans)

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
    s.add_argument("--log-key", action="append", required=True,
                   help="verifier key of a log to follow (repeat for several)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8010)
    s.set_defaults(fn=cmd_witness)

    s = sub.add_parser("monitor", help="follow a ledger's checkpoints; alarm on fork or rollback")
    s.add_argument("url", nargs="?", help="the ledger's base URL, e.g. http://127.0.0.1:8000")
    s.add_argument("--tiles", metavar="URL",
                   help="follow a tlog-tiles URL (a mirror, a CDN) or directory instead: proofs "
                   "from tiles; needs --log-key")
    s.add_argument("--state", required=True, help="file keeping the pinned key and last size")
    s.add_argument("--log-key", help="pin this verifier key (default: trust on first use)")
    s.add_argument("--witness-key", action="append",
                   help="with --tiles: a witness's cosigner key to count (repeat for several)")
    s.add_argument("--quorum", type=int, default=0,
                   help="with --tiles: follow only checkpoints this many of them cosigned")
    s.add_argument("--every", type=float, help="poll every N seconds instead of once")
    s.add_argument("--rounds", type=int, default=0, help=argparse.SUPPRESS)
    s.set_defaults(fn=cmd_monitor)

    s = sub.add_parser("keygen", help="make a party key in SUYUAN_HOME/keys")
    s.add_argument("name")
    s.set_defaults(fn=cmd_keygen)

    party = sub.add_parser("party", help="register, rotate, revoke, show, delegate")
    psub = party.add_subparsers(dest="party_command", required=True)
    s = psub.add_parser("register")
    s.add_argument("--id", required=True)
    s.add_argument("--name", required=True)
    s.add_argument("--name-en", help="its English name, shown on English pages")
    s.add_argument("--roles", required=True, help="comma-separated: " + ",".join(registry.ROLES))
    s.add_argument("--key", required=True, help="name of the party's key in SUYUAN_HOME")
    s.add_argument("--gs1-prefix", action="append", metavar="PREFIX",
                   help="a GS1 company prefix the party holds (4-12 digits); repeatable. Only "
                        "it, or a party it delegates to, may then make or recall GTINs under it")
    s.add_argument("--customs-code", action="append", metavar="CODE",
                   help="a customs code the party uses in customs messages (its 10-character "
                        "customs registration code, or its USCC); repeatable")
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
    s = psub.add_parser("delegate", help="let another party make and recall products under a "
                        "GS1 company prefix this party holds (contract manufacturing), or revoke it")
    s.add_argument("--id", required=True, help="the prefix holder, who signs")
    s.add_argument("--key", required=True, help="name of the holder's key in SUYUAN_HOME")
    s.add_argument("--prefix", required=True, help="a GS1 company prefix the holder registered")
    s.add_argument("--to", required=True, help="the registered party it is delegated to")
    s.add_argument("--until", metavar="TIME",
                   help="RFC 3339 time after which the delegation ends (default: until revoked)")
    s.add_argument("--revoke", action="store_true", help="end the delegation now")
    s.set_defaults(fn=cmd_party_delegate)

    s = sub.add_parser("sign", help="sign a statement body; prints the envelope")
    s.add_argument("--key", required=True)
    s.add_argument("--signer", required=True)
    s.add_argument("--kind", default="event", choices=sorted(KINDS - {"genesis"}))
    s.add_argument("body", help="JSON file with the body, or - for stdin")
    s.add_argument("--private", metavar="FILE",
                   help="JSON object kept off the chain; the statement commits to it")
    s.set_defaults(fn=cmd_sign)

    s = sub.add_parser("submit", help="append envelopes; one receipt per line")
    s.add_argument("files", nargs="+")
    s.add_argument("--batch", type=int, default=SUBMIT_BATCH, help=argparse.SUPPRESS)
    s.set_defaults(fn=cmd_submit)

    s = sub.add_parser("entry", help="one entry, exact bytes and decoded")
    s.add_argument("seq", type=int)
    s.add_argument("--viewer", default="public",
                   help="public (default), regulator, or party:<id>: who may see private data")
    s.set_defaults(fn=cmd_entry)

    s = sub.add_parser("shred", help="erase a private blob (crypto-shredding)")
    s.add_argument("commitment")
    s.set_defaults(fn=cmd_shred)

    for name, text in (("trace", "an item's journey, through its containers"),
                       ("upstream", "what it was made from or packed in"),
                       ("downstream", "what it became, contained, where it went"),
                       ("recall", "everything downstream, with owner and place")):
        s = sub.add_parser(name, help=text)
        s.add_argument("code", help="GS1 Digital Link (any domain), EPC URN or GTIN")
        if name in ("upstream", "downstream"):
            s.add_argument("--depth", type=int, default=10, help="1..50 (default 10)")
        if name == "trace":
            s.add_argument("--allow-empty", action="store_true",
                           help="print an empty journey for a code the ledger never saw "
                                "(default: error [not_found])")
        s.set_defaults(fn=cmd_trace)

    sub.add_parser("reindex", help="rebuild every projection from entries").set_defaults(
        fn=cmd_reindex)

    sub.add_parser("checkpoint", help="the latest signed checkpoint").set_defaults(fn=cmd_checkpoint)
    sub.add_parser("log-key", help="the checkpoint verifier key").set_defaults(fn=cmd_log_key)

    prove = sub.add_parser("prove", help="inclusion or consistency proofs")
    prsub = prove.add_subparsers(dest="what", required=True)
    s = prsub.add_parser("inclusion")
    s.add_argument("seq", type=int)
    s.add_argument("--size", type=int)
    s.set_defaults(fn=cmd_prove)
    s = prsub.add_parser("consistency")
    s.add_argument("first", type=int)
    s.add_argument("second", type=int)
    s.set_defaults(fn=cmd_prove)

    s = sub.add_parser("bundle", help="an offline trace bundle of entries")
    s.add_argument("items", nargs="+", metavar="SEQ|CODE",
                   help="a seq, or a product code (Digital Link or EPC URN): every entry of "
                        "its journey")
    s.add_argument("--out", required=True)
    s.set_defaults(fn=cmd_bundle)

    s = sub.add_parser("verify", help="check a trace bundle offline, or entries from tiles")
    s.add_argument("file", nargs="?")
    s.add_argument("--tiles", metavar="URL",
                   help="build the bundle from a tlog-tiles URL (a mirror, a CDN) or directory; "
                   "needs --log-key and --seq")
    s.add_argument("--seq", type=int, nargs="+", help="with --tiles: the entries to verify")
    s.add_argument("--log-key", help="the ledger's published verifier key (suyuan log-key; "
                   "default SUYUAN_LOG_KEY)")
    s.add_argument("--trust-bundle-key", action="store_true",
                   help="without --log-key, accept the key inside the bundle (ok then means "
                        "only self-consistent)")
    s.add_argument("--witness-key", action="append",
                   help="a witness's cosigner key to count (repeat for several)")
    s.add_argument("--quorum", type=int, default=0,
                   help="how many of the given witnesses must have cosigned (default 0)")
    s.set_defaults(fn=cmd_verify)

    s = sub.add_parser("audit", help="check the whole ledger; --report writes the HTML report")
    s.add_argument("--json", action="store_true",
                   help="the JSON report on stdout and nothing on stderr (with --report or "
                        "--scope: the whole report's data); without it, a summary on stderr too")
    s.add_argument("--report", metavar="FILE",
                   help="write the audit report (integrity, findings, statistics, credit) as HTML")
    s.add_argument("--scope", metavar="CODE",
                   help="also audit one product chain: its entries with verified proofs")
    s.set_defaults(fn=cmd_audit)
    s = sub.add_parser("credit", help="a party's credit score with every item explained")
    s.add_argument("party", nargs="?", help="party id (uscc:… or gln:…)")
    s.add_argument("--all", action="store_true", help="the credit table of every party")
    s.set_defaults(fn=cmd_credit)
    sub.add_parser("stats", help="statistics: stages by month, trade, origins, clearance time"
                   ).set_defaults(fn=cmd_stats)
    # --- epcis (begin) ---
    epcis_p = sub.add_parser("epcis", help="import or export EPCIS 2.0 documents")
    esub = epcis_p.add_subparsers(dest="epcis_command", required=True)
    s = esub.add_parser("import", help="sign each event as one party; one batch, one receipt "
                        "per line")
    s.add_argument("file", help="EPCISDocument or EPCISQueryDocument (JSON-LD, or EPCIS 2.0 / 1.2 "
                   "XML), or - for stdin")
    s.add_argument("--signer", required=True, help="the party id that signs every event")
    s.add_argument("--key", required=True, help="name of the party's key in SUYUAN_HOME")
    s.set_defaults(fn=cmd_epcis)
    s = esub.add_parser("export", help="an EPCISDocument of the signed events about a code")
    s.add_argument("code", help="GS1 Digital Link (any domain), EPC URN or GTIN")
    way = s.add_mutually_exclusive_group()
    way.add_argument("--up", action="store_true", help="with everything upstream of it")
    way.add_argument("--down", action="store_true", help="with everything downstream of it")
    s.add_argument("--out", metavar="FILE", help="write the document here instead of stdout")
    s.add_argument("--format", choices=("json", "xml"), default="json",
                   help="JSON-LD (default) or EPCIS 2.0 XML, checked against GS1's XSD")
    s.set_defaults(fn=cmd_epcis)
    # --- epcis (end) ---
    # --- ceb (begin) ---
    ceb_p = sub.add_parser("ceb", help="China Customs CBEC messages (CEB311/411/511/621 and "
                           "receipts 312/412/512/622)")
    csub = ceb_p.add_subparsers(dest="ceb_command", required=True)
    s = csub.add_parser("import", help="sign one statement per document; one batch per message, "
                        "one JSON line per document")
    s.add_argument("files", nargs="+", metavar="FILE",
                   help="customs messages: bare, or base64 in a dxp:DxpMsg; UTF-8 or GB2312/GBK")
    s.add_argument("--key", required=True, help="name of the signing party's key in SUYUAN_HOME")
    s.add_argument("--signer", help="the party id that signs (default: the key's party)")
    s.add_argument("--matching-key", metavar="FILE",
                   help="the zone's matching key, {\"hmacKey\": hex} (default SUYUAN_HOME/zone.key)")
    s.set_defaults(fn=cmd_ceb_import)
    # --- ceb (end) ---
    # --- findings parser (begin) ---
    s = sub.add_parser("findings", help="compliance findings for regulators, as JSON lines")
    s.add_argument("--rule", help="a rule code, e.g. three_docs.mismatch")
    s.add_argument("--party", help="a party involved")
    s.add_argument("--code", help="a product code (Digital Link, EPC URN or GTIN)")
    s.add_argument("--severity", choices=("high", "medium", "low"))
    s.add_argument("--since", type=int, metavar="SEQ", help="raised at this seq or later")
    s.add_argument("--limit", type=int)
    s.add_argument("--summary", action="store_true", help="counts by rule, severity and party")
    s.set_defaults(fn=cmd_findings)
    lists = sub.add_parser("list", help="a regulator's lists")
    lsub = lists.add_subparsers(dest="list_command", required=True)
    s = lsub.add_parser("load", help="sign a positive-list file as list.update statements")
    s.add_argument("file", help="e.g. schemas/positive-list.sample.json")
    s.add_argument("--key", required=True, help="the regulator's key name in SUYUAN_HOME")
    s.add_argument("--signer", required=True, help="the regulator's party id")
    s.add_argument("--action", choices=("add", "remove"), default="add")
    s.set_defaults(fn=cmd_list_load)
    s = sub.add_parser("tax", help="the tax of a retail-import order, broken down")
    s.add_argument("order", help="an order event body (cbec:orderInfo) or the orderInfo alone")
    s.add_argument("--hs-code", help="the goods' HS code, if the order does not carry one")
    s.set_defaults(fn=cmd_tax)
    # --- findings parser (end) ---
    # --- qr (begin) ---
    s = sub.add_parser("qr", help="QR trace codes: one image, or a PDF label sheet of a lot")
    s.add_argument("code", nargs="?", help="GS1 Digital Link (any domain), EPC URN or GTIN")
    s.add_argument("--format", choices=("png", "svg"), help="image format (default png)")
    s.add_argument("--out", metavar="FILE", help="write the image here (default: stdout, "
                   "when it is not a terminal)")
    s.add_argument("--lot", metavar="CODE", help="a lot: one label per item of it")
    s.add_argument("--sheet", metavar="FILE", help="the A4 PDF label sheet to write")
    s.add_argument("--base-url", help="public resolver base in the codes (default "
                   "SUYUAN_BASE_URL; one of them is required, and no loopback or private address)")
    s.set_defaults(fn=cmd_qr)
    # --- qr (end) ---
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    home = Home()
    try:
        code: int = args.fn(args, home)
        sys.stdout.flush()  # here, not at exit, where a closed stdout could not be told
    except LedgerError as e:
        return _refused(e)
    except BrokenPipeError:
        return _stdout_closed(args)
    except Exception as e:
        storage = storage_error(e, where=_database_name())
        if storage is not None:
            return _refused(storage)
        if not isinstance(e, OSError):
            raise  # a bug, not the database failing: its traceback is what helps
        kind = "not_found" if isinstance(e, FileNotFoundError) else "io"
        where = f" {e.filename}" if e.filename else ""
        print(f"error [{kind}]: cannot use{where}: {e.strerror or e}", file=sys.stderr)
        return 2
    return code


def _refused(e: LedgerError) -> int:
    with contextlib.suppress(OSError):
        sys.stdout.flush()
    print(e.diagnostics(), file=sys.stderr)
    return 2


# Commands whose entries have landed by the time they print; see _stdout_closed.
_APPENDS = {"init", "party register", "party rotate", "party revoke", "shred", "list load",
            "epcis import", "demo", "party delegate"}


def _stdout_closed(args: argparse.Namespace) -> int:
    """Stdout closed (EPIPE) before the output was all written. A reading command just
    stops, as filters do under ``| head``; one that appended says so, since the receipts
    of what landed were not all seen (``submit`` stops between batches on its own)."""
    _silence_stdout()
    sub = (getattr(args, "party_command", None) or getattr(args, "list_command", None)
           or getattr(args, "epcis_command", None))
    if " ".join(filter(None, (args.command, sub))) not in _APPENDS:
        return 0
    print("stopped: stdout was closed before the output was all written; what was appended "
          "stays appended (`suyuan checkpoint` shows the ledger's size)", file=sys.stderr)
    return EXIT_STOPPED


def _database_name() -> str:
    from sqlalchemy.engine import make_url

    url = os.environ.get("SUYUAN_DB") or DEFAULT_URL
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL that does not parse was refused already
        return "SUYUAN_DB"


if __name__ == "__main__":
    sys.exit(main())
