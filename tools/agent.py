"""`suyuan agent`: the enterprise's own capture endpoint. It serves GS1's EPCIS 2.0 capture
interface (``POST /epcis/capture``, ``GET /epcis/capture[/{captureID}]``), signs every
event with the enterprise's key, which never leaves it, keeps the signed envelopes in a
durable outbox (tools/agent_outbox.py) and delivers them, in order, with retries and
backoff, to the zone ledger's GraphQL ``submit`` with a bearer token it makes itself.

China Customs CBEC messages (``POST /ceb``) are read and XSD-checked by the ledger's own
hardened reader (``ledger.epcis.ceb``), kept in the outbox as received, and signed at their first
delivery (``ledger.log.ceb_import.sign_message``), when the registry can be read from the
ledger's GraphQL: one statement per document, delivered as one batch with the private
blobs they commit to, idempotent by the message's guid. EPCIS XML captures are read by the
ledger's own hardened, XSD-checking parser (``ledger.epcis.xml``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import anyio.to_thread
import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from api.body import BodyLimit
from api.epcis_http import (
    JSON,
    JSON_LD,
    XML_TYPES,
    NotImplementedHere,
    check_versions,
    document,
    link_next,
    media_type,
    options,
    problem,
)
from api.errors import RequestTooLarge, UnsupportedMediaType
from ledger.core import canonical, merkle
from ledger.core.errors import ConfigError, LedgerError, MalformedInput, NotAuthentic, NotFound
from ledger.core.keys import PartyKey
from ledger.core.note import Checkpoint
from ledger.core.registry import PartyRecord
from ledger.core.statements import now_rfc3339, sign_one
from ledger.core.tokens import make_token
from ledger.epcis import ceb
from ledger.epcis import xml as epcis_xml
from ledger.epcis.event_hash import event_hash
from ledger.epcis.validation import validate_event_body
from ledger.log.ceb_import import no_facts, registry_of, sign_message
from ledger.queries.documents import events_of
from ledger.queries.epcis_query import LEDGER_NAMESPACE
from tools.agent_outbox import CapturedEvent, CebMessage, Outbox, body_hash

CAPTURE_LIMIT: Final = 1000  # events per capture: one ledger submit, one transaction
FILE_SIZE_LIMIT: Final = 8 * 1024 * 1024
TOKEN_TTL: Final = 300
TIMEOUT: Final = 30.0  # seconds for one submit
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 60.0
# Ledger answers worth trying again: it is down, overloaded, or does not (yet) know our key.
RETRY_STATUS: Final = frozenset({401, 408, 425, 429, 500, 502, 503, 504})

SUBMIT = (
    "mutation($e: [JSON!]!) { submit(envelopes: $e) { index "
    "receipt { seq leafHash statementHash duplicateOf checkpoint inclusionProof { "
    "leafIndex treeSize hashes } } error { code message } } }"
)
PARTIES = "{ parties { id name roles registeredSeq customsCodes } }"


@dataclass(frozen=True)
class AgentConfig:
    key: PartyKey
    signer: str
    ledger_url: str  # the ledger's base URL, e.g. http://127.0.0.1:8000
    db_url: str
    token: str | None = None  # the bearer token local clients must send, if any
    # The zone's matching key (buyerIdHash, consigneeHash of customs messages); without it
    # POST /ceb is 501.
    matching_key: bytes | None = None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _event_problem(index: int, event_id: str | None, err: LedgerError | Mapping[str, str]) -> dict[str, Any]:
    code, message = (
        (err.code, err.message)
        if isinstance(err, LedgerError)
        else (err.get("code", "refused"), err.get("message", ""))
    )
    name = f"event {index}" + (f" ({event_id})" if event_id else "")
    return {
        "type": "epcisException:ValidationException",
        "title": "Event refused",
        "status": 400,
        "detail": f"{name}: [{code}] {message}",
    }


# --- the ledger, over HTTP -----------------------------------------------------------------


class LedgerUnavailable(Exception):
    """The ledger could not be asked, or answered in a way worth asking again."""


def _http(
    url: str, *, data: bytes | None = None, headers: Mapping[str, str] | None = None
) -> tuple[int, bytes]:
    req = urllib.request.Request(
        url, data=data, headers=dict(headers or {}), method="POST" if data is not None else "GET"
    )
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (OSError, ValueError) as e:  # refused, reset, timed out, bad URL
        raise LedgerUnavailable(f"{url}: {e}") from None


def _answered(status: int, raw: bytes) -> str:
    """Why a capture waits, as its job's ``suyuan:lastError`` says: the ledger's own refusal
    (``{"error": {code, message}}``) when it gave one, else the start of its answer."""
    try:
        err = orjson.loads(raw)["error"]
        said = f"{err['code']}: {err['message']}"
    except (orjson.JSONDecodeError, KeyError, TypeError):
        said = raw[:200].decode("utf-8", "replace")
    hint = (
        "; the agent's party or key is not (yet) registered on the ledger, or was revoked: "
        "the capture waits and is tried again"
        if status == 401
        else "; tried again later"
    )
    return f"the ledger answered {status} ({said}){hint}"


def _statement_hash(envelope: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical.canonical_bytes(envelope["statement"])).hexdigest()


def _ours(receipt: Mapping[str, Any], envelope: Mapping[str, Any]) -> bool:
    return bool(receipt.get("statementHash") == _statement_hash(envelope))


def _verify_receipt(receipt: Mapping[str, Any], envelope: Mapping[str, Any]) -> None:
    """A receipt is for our statement, and its proof puts its leaf in its checkpoint."""
    # An event its signer already had on the ledger (same eventID or event hash) is
    # answered with that entry's receipt, whose statement is the first one: the deliverer
    # confirms that entry is our event (``Deliverer.confirm_repeat``).
    repeat = receipt.get("duplicateOf") is not None and receipt.get("duplicateOf") == receipt.get("seq")
    if not _ours(receipt, envelope) and not repeat:
        want = _statement_hash(envelope)
        raise LedgerUnavailable(
            f"the ledger's receipt names statement {receipt.get('statementHash')}, not ours ({want})"
        )
    proof = receipt["inclusionProof"]
    body = receipt["checkpoint"].split("\n\n", 1)[0] + "\n"
    try:
        cp = Checkpoint.parse(body)
        merkle.verify_inclusion(
            leaf=bytes.fromhex(receipt["leafHash"]),
            index=proof["leafIndex"],
            size=proof["treeSize"],
            proof=[bytes.fromhex(h) for h in proof["hashes"]],
            root=cp.root,
        )
    except (LedgerError, ValueError, KeyError, TypeError) as e:
        raise LedgerUnavailable(
            f"the ledger's receipt for seq {receipt.get('seq')} does not prove itself: {e}"
        ) from None
    if proof["treeSize"] != cp.size:
        raise LedgerUnavailable("the receipt's proof is not against its own checkpoint")


class Deliverer:
    """The thread that empties the outbox into the ledger, oldest capture first."""

    def __init__(self, cfg: AgentConfig, outbox: Outbox) -> None:
        self.cfg, self.outbox = cfg, outbox
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="suyuan-agent-delivery", daemon=True)
        self._origin: str | None = None

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        self.thread.join(timeout=TIMEOUT + 5)

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                pending = self.outbox.next_pending()
            except Exception:  # the outbox database is briefly busy: try again shortly
                pending = None
            if pending is None:
                self.wake.wait(1.0)
                self.wake.clear()
                continue
            delay = pending.next_try - time.time()
            if delay > 0:
                self.wake.wait(min(delay, 1.0))
                self.wake.clear()
                continue
            try:
                self.deliver_one(pending)
            except Exception as e:  # noqa: BLE001 - the ledger down, or anything unforeseen:
                # the capture stays in the outbox and is tried again; the thread must live on.
                why = str(e) if isinstance(e, LedgerUnavailable) else f"{type(e).__name__}: {e}"
                backoff = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** min(pending.attempts, 16))
                try:
                    self.outbox.retry_later(pending.n, error=why[:500], next_try=time.time() + backoff)
                except Exception:  # noqa: BLE001 - the outbox is busy: the next round retries
                    self.stopping.wait(BACKOFF_FIRST)

    def origin(self) -> str:
        """The ledger's checkpoint origin: the audience of our bearer tokens."""
        if self._origin is None:
            status, body = _http(self.cfg.ledger_url + "/checkpoint")
            if status != 200:
                raise LedgerUnavailable(f"GET /checkpoint answered {status}")
            self._origin = body.decode().split("\n", 1)[0]
        return self._origin

    def confirm_repeat(self, receipt: Mapping[str, Any], envelope: Mapping[str, Any]) -> None:
        """A receipt for another statement, said to be a repeat, is taken only when the entry
        it proves is our event: its bytes hash to the proven leaf, and it is an event signed
        by us with our event's eventID (or, without one, its event hash)."""
        seq = receipt["seq"]
        query = "query($s: Int!) { entry(seq: $s) { bytes } }"
        status, raw = _http(
            self.cfg.ledger_url + "/graphql",
            data=orjson.dumps({"query": query, "variables": {"s": seq}}),
            headers={"Content-Type": "application/json"},
        )
        if status != 200:
            raise LedgerUnavailable(f"the ledger answered {status} to reading entry {seq}")
        try:
            data = base64.b64decode(orjson.loads(raw)["data"]["entry"]["bytes"], validate=True)
            if merkle.leaf_hash(data) != bytes.fromhex(receipt["leafHash"]):
                raise ValueError("its bytes are not the leaf the receipt proves")
            theirs = orjson.loads(data)["envelope"]["statement"]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise LedgerUnavailable(
                f"entry {seq}, which the ledger says holds our event already, cannot be confirmed: {e}"
            ) from None
        ours = envelope["statement"]
        mine, other = ours["body"], theirs.get("body")
        same = (
            theirs.get("signer") == ours["signer"]
            and theirs.get("kind") == "event"
            and isinstance(other, dict)
            and (
                other.get("eventID") == mine["eventID"]
                if "eventID" in mine
                else event_hash(other) == event_hash(mine)
            )
        )
        if not same:
            raise LedgerUnavailable(
                f"the ledger says our event is at seq {seq} already, but that entry is another event"
            )

    def parties(self) -> list[PartyRecord]:
        """The ledger's registered parties, with their roles and customs codes."""
        status, raw = _http(
            self.cfg.ledger_url + "/graphql",
            data=orjson.dumps({"query": PARTIES}),
            headers={"Content-Type": "application/json"},
        )
        if status != 200:
            raise LedgerUnavailable(f"the ledger answered {status} to the parties query")
        try:
            rows = orjson.loads(raw)["data"]["parties"]
            return [
                PartyRecord(
                    id=r["id"],
                    name=r["name"],
                    roles=tuple(r["roles"]),
                    registered_seq=r["registeredSeq"],
                    customs_codes=tuple(r["customsCodes"]),
                )
                for r in rows
            ]
        except (orjson.JSONDecodeError, KeyError, TypeError) as e:
            raise LedgerUnavailable(f"the ledger's parties answer is not readable: {e}") from None

    def sign_ceb(self, message: CebMessage) -> None:
        """Sign a kept customs message: the registry from the ledger (who may sign each
        document, and for whom), the documents from the message; what the ledger holds of
        the documents is not read (README, "Capture with the agent"). A refusal ends the
        capture with the reason; the ledger unreachable leaves it for the next try."""
        msg = ceb.read_message(message.data, source=f"{message.message} {message.guid}")
        parties = self.parties()
        if self.cfg.signer not in {p.id for p in parties}:
            raise LedgerUnavailable(
                f"the ledger does not know {self.cfg.signer} (yet): "
                "register the enterprise, and its customs codes, there"
            )
        assert self.cfg.matching_key is not None  # POST /ceb accepts nothing without it
        try:
            signed = sign_message(
                msg,
                key=self.cfg.key,
                signer=self.cfg.signer,
                registry=registry_of(parties),
                facts=no_facts(),
                matching_key=self.cfg.matching_key,
            )
        except LedgerError as e:
            self.outbox.prepare_ceb(
                message.n,
                blobs={},
                events=[
                    CapturedEvent(
                        0,
                        None,
                        None,
                        None,
                        {
                            "type": "epcisException:ValidationException",
                            "title": "Message refused",
                            "status": 400,
                            "detail": f"[{e.code}] {e.message}",
                        },
                    )
                ],
            )
            self.outbox.record(message.n, receipts={}, errors={}, finished=True)
            return
        events = [
            CapturedEvent(
                i, env["statement"]["body"].get("eventID"), body_hash(env["statement"]["body"]), env, None
            )
            for i, env in enumerate(signed.envelopes)
        ]
        self.outbox.prepare_ceb(message.n, events=events, blobs=signed.blobs)

    def deliver_one(self, p: Any) -> None:
        message = self.outbox.ceb_message(p.n)
        if message is not None and not message.prepared:
            self.sign_ceb(message)
            self.wake.set()  # its envelopes go at once
            return
        if not p.events:
            self.outbox.record(p.n, receipts={}, errors={}, finished=True)
            return
        token = make_token(self.cfg.key, signer=self.cfg.signer, audience=self.origin(), ttl=TOKEN_TTL)
        blobs = message.blobs if message is not None else {}
        items = [
            {"envelope": e, "private": blobs[e["statement"]["private"]]}
            if e["statement"].get("private") in blobs
            else e
            for _, e in p.events
        ]
        payload = orjson.dumps({"query": SUBMIT, "variables": {"e": items}})
        status, raw = _http(
            self.cfg.ledger_url + "/graphql",
            data=payload,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
        if status in RETRY_STATUS:
            raise LedgerUnavailable(_answered(status, raw))
        try:
            doc = json.loads(raw)
        except ValueError:
            doc = None
        results = (doc.get("data") or {}).get("submit") if isinstance(doc, dict) else None
        if not isinstance(results, list):
            errors = doc.get("errors") if isinstance(doc, dict) else None
            if status == 200 and isinstance(errors, list) and errors:
                # The ledger refused the request itself (too many, malformed): final.
                msg = {
                    "code": (errors[0].get("extensions") or {}).get("code", "refused"),
                    "message": errors[0].get("message", ""),
                }
                self.outbox.record(
                    p.n,
                    receipts={},
                    finished=True,
                    errors={i: _event_problem(i, None, msg) for i, _ in p.events},
                )
                return
            raise LedgerUnavailable(f"the ledger answered {status} without submit results")
        by_index = {r["index"]: r for r in results}
        receipts: dict[int, dict[str, Any]] = {}
        refused: dict[int, dict[str, Any]] = {}
        held: list[int] = []
        for pos, (idx, env) in enumerate(p.events):
            r = by_index.get(pos)
            if r is None:
                raise LedgerUnavailable(f"the ledger's answer has no result for envelope {pos}")
            if r.get("receipt"):
                _verify_receipt(r["receipt"], env)
                if not _ours(r["receipt"], env):
                    self.confirm_repeat(r["receipt"], env)
                receipts[idx] = r["receipt"]
            elif r["error"]["code"] == "batch_rejected":
                held.append(idx)
            else:
                refused[idx] = _event_problem(idx, env["statement"]["body"].get("eventID"), r["error"])
        if refused and p.behaviour == "rollback":
            held_problems = {
                i: _event_problem(
                    i,
                    None,
                    {
                        "code": "rolled_back",
                        "message": "not appended: another event of this capture "
                        "was refused (GS1-Capture-Error-Behaviour: rollback)",
                    },
                )
                for i in held
            }
            self.outbox.record(p.n, receipts={}, errors={**refused, **held_problems}, finished=True)
            return
        # proceed: refused events are set aside and the rest go again at once.
        self.outbox.record(p.n, receipts=receipts, errors=refused, finished=not held)
        if held:
            self.wake.set()


def _xml_text(value: object) -> str:
    """Text XML 1.0 can hold: characters it cannot (control characters a client sent in an
    eventID, say) become U+FFFD."""
    return "".join(
        c
        if c in "\t\n\r" or 0x20 <= ord(c) < 0xD800 or 0xE000 <= ord(c) < 0xFFFE or ord(c) > 0xFFFF
        else "\ufffd"
        for c in str(value)
    )


def job_xml(job: Mapping[str, Any]) -> bytes:
    """A capture job as XML, by the bindings' XML names for ``CaptureJob``: the element
    ``epcis:EPCISCaptureJob`` with ``captureID``, ``running`` and ``success`` as attributes,
    the times and behaviour as elements, each error an ``epcis:EPCISException``; what the
    agent adds (receipts, attempts, last error, the customs message) follows as elements in
    the ledger's namespace."""
    from lxml import etree

    ns = {"epcis": epcis_xml.NS2, "suyuan": LEDGER_NAMESPACE}
    epcis, own = f"{{{epcis_xml.NS2}}}", f"{{{LEDGER_NAMESPACE}}}"
    sub = etree.SubElement
    root = etree.Element(f"{epcis}EPCISCaptureJob", nsmap=ns)
    root.set("captureID", _xml_text(job["captureID"]))
    for flag in ("running", "success"):
        root.set(flag, "true" if job[flag] else "false")
    for name in ("createdAt", "finishedAt", "captureErrorBehaviour"):
        if name in job:
            sub(root, name).text = _xml_text(job[name])
    for err in job["errors"]:
        e = sub(root, f"{epcis}EPCISException")
        for k in ("type", "title", "status", "detail"):
            if k in err:
                sub(e, k).text = _xml_text(err[k])
    if "suyuan:customsMessage" in job:
        m = job["suyuan:customsMessage"]
        sub(
            root,
            f"{own}customsMessage",
            message=_xml_text(m["message"]),
            guid=_xml_text(m["guid"]),
            signed="true" if m["signed"] else "false",
        )
    sub(root, f"{own}events").text = str(job["suyuan:events"])
    for r in job["suyuan:receipts"]:
        attrs = {
            k: _xml_text(r[k])
            for k in ("index", "eventID", "seq", "leafHash", "statementHash", "duplicateOf")
            if r.get(k) is not None
        }
        el = sub(root, f"{own}receipt", **attrs)
        sub(el, f"{own}checkpoint").text = _xml_text(r["checkpoint"])
        proof = r["inclusionProof"]
        p = sub(
            el, f"{own}inclusionProof", leafIndex=str(proof["leafIndex"]), treeSize=str(proof["treeSize"])
        )
        for h in proof["hashes"]:
            sub(p, f"{own}hash").text = _xml_text(h)
    sub(root, f"{own}attempts").text = str(job["suyuan:attempts"])
    if "suyuan:lastError" in job:
        sub(root, f"{own}lastError").text = _xml_text(job["suyuan:lastError"])
    out: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return out


# --- the HTTP face -------------------------------------------------------------------------


class LocalToken:
    """ASGI middleware: every request carries ``Authorization: Bearer <the token file's
    token>`` (constant-time compared), when the agent listens beyond loopback."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.token is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"authorization"), "")
        scheme, _, given = sent.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.token.encode()):
            await self.app(scope, receive, send)
            return
        await problem(
            NotAuthentic(
                "this agent needs `Authorization: Bearer <token>` with the token of its --token-file",
                code="agent_token",
            )
        )(scope, receive, send)


def _sign_events(cfg: AgentConfig, outbox: Outbox, events: list[dict[str, Any]]) -> list[CapturedEvent]:
    hashes = [body_hash(e) for e in events]
    before = outbox.signed_before(hashes)
    issued = now_rfc3339()
    out = []
    for i, (body, h) in enumerate(zip(events, hashes, strict=True)):
        eid = body.get("eventID") if isinstance(body.get("eventID"), str) else None
        try:
            validate_event_body(body)
            env = before.get(h) or sign_one(
                kind="event", signer=cfg.signer, key=cfg.key, body=body, issued=issued
            )
        except LedgerError as e:
            out.append(CapturedEvent(i, eid, h, None, _event_problem(i, eid, e)))
            continue
        out.append(CapturedEvent(i, eid, h, env, None))
    return out


def create_agent_app(cfg: AgentConfig) -> Starlette:
    outbox = Outbox(cfg.db_url)
    deliverer = Deliverer(cfg, outbox)

    def read_document(request: Request, raw: bytes) -> Mapping[str, Any]:
        kind = request.headers.get("content-type", JSON).split(";")[0].strip().lower()
        if kind in XML_TYPES:
            # EPCIS 2.0 or 1.2 XML, XSD-checked by the hardened parser of the ledger's import.
            return epcis_xml.parse(raw, source="the capture")
        if kind not in (JSON, JSON_LD):
            raise UnsupportedMediaType(f"capture takes {JSON}, {JSON_LD} or EPCIS XML, not {kind[:60]}")
        try:
            doc = canonical.parse_json(raw)
        except LedgerError as e:
            raise MalformedInput(f"the body is not an EPCIS document: {e.message}") from None
        if not isinstance(doc, dict):
            raise MalformedInput("the body is an EPCISDocument, a JSON object")
        return doc

    def capture(request: Request, raw: bytes) -> Response:
        behaviour = request.headers.get("GS1-Capture-Error-Behaviour", "rollback")
        if behaviour not in ("rollback", "proceed"):
            raise MalformedInput(
                f"GS1-Capture-Error-Behaviour is rollback or proceed, not {behaviour[:40]!r}"
            )
        events = list(events_of(read_document(request, raw)))
        if len(events) > CAPTURE_LIMIT:
            raise RequestTooLarge(
                f"a capture holds at most {CAPTURE_LIMIT} events, not {len(events)}; split the document"
            )
        capture_id = outbox.accept(_sign_events(cfg, outbox, events), behaviour=behaviour)
        deliverer.wake.set()
        return Response(
            status_code=202,
            headers={
                "Location": f"capture/{capture_id}",
                "GS1-EPCIS-Version": "2.0.0",
                "GS1-CBV-Version": "2.0.0",
            },
        )

    def jobs(request: Request) -> Response:
        kind = media_type(request)
        text = request.query_params.get("perPage", "30")
        try:
            per_page = min(max(int(text), 1), 1000)
        except ValueError:
            raise MalformedInput(f"perPage is an integer, not {text[:40]!r}") from None
        token = request.query_params.get("nextPageToken")
        after = int(token) if token is not None and token.isdigit() else None
        found = outbox.jobs(after=after, limit=per_page + 1)
        page = found[:per_page]
        headers = link_next(request, str(page[-1][0]), per_page) if len(found) > per_page else {}
        return Response(
            orjson.dumps([j for _, j in page]),
            media_type=kind,
            headers={"GS1-EPCIS-Version": "2.0.0", **headers},
        )

    async def capture_root(request: Request) -> Response:
        if request.method == "OPTIONS":
            return options(
                "OPTIONS, POST, GET",
                **{
                    "GS1-EPCIS-Capture-Limit": str(CAPTURE_LIMIT),
                    "GS1-EPCIS-Capture-File-Size-Limit": str(FILE_SIZE_LIMIT),
                    "GS1-Capture-Error-Behaviour": "all",
                },
            )
        try:
            check_versions(request)
            if request.method == "POST":
                raw = await request.body()
                return await anyio.to_thread.run_sync(capture, request, raw)
            return await anyio.to_thread.run_sync(jobs, request)
        except LedgerError as e:
            return problem(e)

    async def capture_job(request: Request) -> Response:
        if request.method == "OPTIONS":
            return options("OPTIONS, GET")
        try:
            check_versions(request)
            kind = media_type(request, xml=True)
            job = await anyio.to_thread.run_sync(outbox.job, request.path_params["captureID"])
            if job is None:
                raise NotFound(f"no capture job {request.path_params['captureID'][:80]}")
            return document(job, kind, xml=job_xml)
        except LedgerError as e:
            return problem(e)

    def accept_ceb(request: Request, raw: bytes) -> Response:
        kind = request.headers.get("content-type", "application/xml").split(";")[0].strip().lower()
        if kind not in XML_TYPES:
            raise UnsupportedMediaType(
                f"POST /ceb takes a customs message as application/xml or text/xml, not {kind[:60]}"
            )
        if cfg.matching_key is None:
            raise NotImplementedHere(
                "this agent has no matching key, so it cannot hash the buyer and consignee "
                'of customs messages: put the zone\'s key, {"hmacKey": "<64 hex>"}, in '
                "SUYUAN_HOME/zone.key and restart it",
                code="no_matching_key",
            )
        # Checked now, against the XSD, by the hardened reader: a message that would be
        # refused is never kept. Signing waits for the ledger's registry.
        msg = ceb.read_message(raw, source="the message")
        if not msg.guid:
            raise MalformedInput(
                f"the {msg.type} has no guid; customs messages are kept and delivered once by it",
                code="malformed",
            )
        capture_id, new = outbox.accept_ceb(guid=msg.guid, message=msg.type, data=raw)
        deliverer.wake.set()
        return JSONResponse(
            {
                "captureID": capture_id,
                "message": msg.type,
                "guid": msg.guid,
                "documents": len(msg.documents),
                "repeat": not new,
            },
            status_code=202,
            headers={"Location": f"epcis/capture/{capture_id}"},
        )

    async def ceb_endpoint(request: Request) -> Response:
        try:
            raw = await request.body()
            return await anyio.to_thread.run_sync(accept_ceb, request, raw)
        except LedgerError as e:
            return problem(e)

    def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True, "signer": cfg.signer, "key": cfg.key.key_id, **outbox.backlog()})

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        deliverer.start()
        yield
        deliverer.stop()
        outbox.dispose()

    epcis = [
        Route("/capture", capture_root, methods=["GET", "POST", "OPTIONS"]),
        Route("/capture/{captureID}", capture_job, methods=["GET", "OPTIONS"]),
    ]
    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/ceb", ceb_endpoint, methods=["POST"]),
            Mount("/epcis", routes=epcis),
        ],
        lifespan=lifespan,
        middleware=[
            Middleware(BodyLimit, max_bytes=FILE_SIZE_LIMIT),
            Middleware(LocalToken, token=cfg.token),
        ],
    )
    app.state.outbox = outbox
    app.state.deliverer = deliverer
    return app


def check_binding(host: str, token: str | None) -> None:
    """Beyond loopback, local clients must present the token file's token."""
    if not is_loopback(host) and token is None:
        raise ConfigError(
            f"the agent listens on {host}, beyond loopback: give --token-file "
            "with the bearer token its clients must send"
        )


def matching_key(path: Path) -> bytes | None:
    """The zone's matching key in ``path`` ({"hmacKey": "<hex>"}, as `suyuan ceb import`
    reads it), or None when there is no such file."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise ConfigError(
            f'{path} must hold {{"hmacKey": "<64 hex characters>"}}: {e}', code="no_matching_key"
        ) from None
    try:
        key = bytes.fromhex(doc["hmacKey"])
    except (KeyError, TypeError, ValueError):
        raise ConfigError(
            f'{path} must hold {{"hmacKey": "<64 hex characters>"}}', code="no_matching_key"
        ) from None
    if len(key) < 16:
        raise ConfigError(
            f"the matching key in {path} is {len(key)} bytes; it needs at least 16", code="no_matching_key"
        )
    return key


def default_db(home_path: Any) -> str:
    return f"sqlite:///{home_path}/agent.db"


def run(a: Any, home: Any) -> int:
    """`suyuan agent [status]` (tools/cli/serve.py parses the arguments)."""
    import ssl
    import sys

    import uvicorn

    from ledger.core.ids import parse_party_id

    db = a.db or default_db(home.path)
    if a.action == "status":
        outbox = Outbox(db)
        try:
            sys.stdout.write(json.dumps({"db": db, **outbox.backlog()}, ensure_ascii=False) + "\n")
        finally:
            outbox.dispose()
        return 0
    missing = [f"--{n}" for n in ("key", "signer", "ledger") if not getattr(a, n)]
    if missing:
        raise MalformedInput(f"`suyuan agent` needs {', '.join(missing)}")
    token = None
    if a.token_file:
        with open(a.token_file, encoding="utf-8") as f:
            token = f.read().strip()
        if len(token) < 16:
            raise ConfigError(
                f"{a.token_file} holds a token of {len(token)} characters; use at least 16 random ones"
            )
    check_binding(a.host, token)
    tls = [a.tls_cert, a.tls_key]
    if any(tls) and not all(tls):
        raise MalformedInput("--tls-cert and --tls-key go together")
    if a.tls_client_ca and not all(tls):
        raise MalformedInput("--tls-client-ca (mTLS) needs --tls-cert and --tls-key")
    if not a.ledger.startswith(("http://", "https://")):
        raise MalformedInput(f"--ledger is the ledger's base URL (http://…), not {a.ledger!r}")
    cfg = AgentConfig(
        key=home.keys.load(a.key),
        signer=parse_party_id(a.signer),
        ledger_url=a.ledger.rstrip("/"),
        db_url=db,
        token=token,
        matching_key=matching_key(home.path / "zone.key"),
    )
    kwargs: dict[str, Any] = {}
    if a.tls_cert:
        kwargs |= {"ssl_certfile": a.tls_cert, "ssl_keyfile": a.tls_key}
    if a.tls_client_ca:
        kwargs |= {"ssl_ca_certs": a.tls_client_ca, "ssl_cert_reqs": ssl.CERT_REQUIRED}
    uvicorn.run(
        create_agent_app(cfg), host=a.host, port=a.port, log_level="warning", proxy_headers=False, **kwargs
    )
    return 0
