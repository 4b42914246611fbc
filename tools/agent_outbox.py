"""The agent's durable outbox: every accepted capture, its events signed once, and what the
ledger answered for each, in one local database (SQLite by default).

A capture is committed here, signed envelopes and all, before the client hears 202: a
crash after that loses nothing, and redelivery sends the very same signed statements,
which the ledger answers with their first receipts. An event whose body (JCS) this agent
signed before is not signed again: its stored envelope is reused, so a client that
resends a document it got no answer for does not duplicate its events either.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection

from api.epcis_http import ResourceExists
from ledger.core import canonical
from ledger.core.times import utc_text

metadata = MetaData()

captures = Table(
    "agent_captures",
    metadata,
    Column("n", Integer, primary_key=True, autoincrement=True),  # delivery order
    Column("capture_id", String(40), nullable=False, unique=True),
    Column("created", String(32), nullable=False),
    Column("finished", String(32)),
    Column("behaviour", String(8), nullable=False),  # rollback | proceed
    Column("running", Integer, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_try", Float, nullable=False, default=0.0),  # Unix time
    Column("last_error", Text),
)

capture_events = Table(
    "agent_events",
    metadata,
    Column("capture_n", Integer, primary_key=True),
    Column("idx", Integer, primary_key=True),  # index in the document's eventList
    Column("event_id", Text),
    Column("body_hash", String(64)),
    Column("envelope", Text),  # JCS of the signed envelope; NULL when it could not be signed
    Column("receipt", Text),  # the ledger's receipt, JSON
    Column("error", Text),  # an RFC 7807 problem, JSON
    Index("agent_events_body", "body_hash"),
)


# A customs message accepted at ``POST /ceb``: kept as received and signed at its first
# delivery, when the ledger's registry can be read; ``prepared`` once its envelopes (in
# agent_events) and the private blobs they commit to (``blobs``) are on disk.
ceb_messages = Table(
    "agent_ceb",
    metadata,
    Column("capture_n", Integer, primary_key=True),
    Column("guid", String(100), nullable=False, unique=True),
    Column("message", String(20), nullable=False),  # CEB311Message …
    Column("sha256", String(64), nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("prepared", Integer, nullable=False, default=0),
    Column("blobs", Text),  # JSON: commitment -> private blob
)


def body_hash(body: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical.canonical_bytes(dict(body))).hexdigest()


def now_iso() -> str:
    return utc_text(digits=3)


@dataclass(frozen=True)
class CapturedEvent:
    """One event of an accepted capture: its signed envelope, or why it was refused here."""

    index: int
    event_id: str | None
    body_hash: str | None
    envelope: dict[str, Any] | None
    error: dict[str, Any] | None


@dataclass(frozen=True)
class CebMessage:
    """A customs message kept by the outbox, and whether it is signed yet."""

    n: int
    guid: str
    message: str
    data: bytes
    prepared: bool
    blobs: dict[str, Any]


@dataclass(frozen=True)
class Pending:
    """A capture still to deliver: the events with an envelope and no receipt or error."""

    n: int
    capture_id: str
    behaviour: str
    attempts: int
    next_try: float
    events: list[tuple[int, dict[str, Any]]]


class Outbox:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        if self.engine.dialect.name == "sqlite":

            @event.listens_for(self.engine, "connect")
            def on_connect(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                # FULL: a 202 is only sent once the capture is on disk.
                cur.execute("PRAGMA synchronous=FULL")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.close()

        metadata.create_all(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    def signed_before(self, hashes: Sequence[str]) -> dict[str, dict[str, Any]]:
        """body hash -> the envelope this agent signed for that body before, if any."""
        if not hashes:
            return {}
        c = capture_events.c
        with self._tx() as conn:
            rows = conn.execute(
                select(c.body_hash, c.envelope).where(
                    c.body_hash.in_(list(set(hashes))), c.envelope.is_not(None)
                )
            )
            return {h: json.loads(e) for h, e in rows}

    def accept(self, events: Sequence[CapturedEvent], *, behaviour: str) -> str:
        """Store a capture, durably, and return its id. With ``rollback`` and an event
        refused here, the capture is finished at once and nothing of it is delivered."""
        capture_id = "cap-" + secrets.token_hex(12)
        refused = any(e.error is not None for e in events)
        done = (refused and behaviour == "rollback") or all(e.envelope is None for e in events)
        created = now_iso()
        with self._tx() as conn:
            n = conn.execute(
                insert(captures).values(
                    capture_id=capture_id,
                    created=created,
                    finished=created if done else None,
                    behaviour=behaviour,
                    running=0 if done else 1,
                    attempts=0,
                    next_try=0.0,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            if events:
                conn.execute(
                    insert(capture_events),
                    [
                        {
                            "capture_n": n,
                            "idx": e.index,
                            "event_id": e.event_id,
                            "body_hash": e.body_hash,
                            "envelope": None
                            if e.envelope is None
                            else canonical.canonical_bytes(e.envelope).decode(),
                            "error": None if e.error is None else json.dumps(e.error),
                        }
                        for e in events
                    ],
                )
        return capture_id

    def accept_ceb(self, *, guid: str, message: str, data: bytes) -> tuple[str, bool]:
        """Keep a customs message, durably, as a capture to sign and deliver: (its capture
        id, whether it is new). The same guid again with the same bytes is the capture it
        was; with other bytes, ``ResourceExists``."""
        digest = hashlib.sha256(data).hexdigest()
        cm, c = ceb_messages.c, captures.c
        with self._tx() as conn:
            row = conn.execute(
                select(cm.sha256, c.capture_id)
                .join_from(ceb_messages, captures, cm.capture_n == c.n)
                .where(cm.guid == guid)
            ).first()
            if row is not None:
                if row.sha256 != digest:
                    raise ResourceExists(
                        f"a {message} with guid {guid} was accepted with other "
                        "content; a changed message needs a new guid (and "
                        "appType 2 for a changed document)"
                    )
                return str(row.capture_id), False
            capture_id = "cap-" + secrets.token_hex(12)
            n = conn.execute(
                insert(captures).values(
                    capture_id=capture_id,
                    created=now_iso(),
                    finished=None,
                    behaviour="rollback",
                    running=1,
                    attempts=0,
                    next_try=0.0,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            conn.execute(
                insert(ceb_messages).values(
                    capture_n=n, guid=guid, message=message, sha256=digest, data=data, prepared=0
                )
            )
        return capture_id, True

    def ceb_message(self, n: int) -> CebMessage | None:
        """The customs message of capture ``n``, if it is one."""
        cm = ceb_messages.c
        with self._tx() as conn:
            row = conn.execute(select(ceb_messages).where(cm.capture_n == n)).first()
        if row is None:
            return None
        return CebMessage(
            n=n,
            guid=row.guid,
            message=row.message,
            data=bytes(row.data),
            prepared=bool(row.prepared),
            blobs=json.loads(row.blobs) if row.blobs else {},
        )

    def prepare_ceb(self, n: int, *, events: Sequence[CapturedEvent], blobs: Mapping[str, Any]) -> None:
        """Keep the signed statements of capture ``n``'s message and their private blobs,
        in one transaction: delivery sends these very envelopes from now on."""
        with self._tx() as conn:
            if events:
                conn.execute(
                    insert(capture_events),
                    [
                        {
                            "capture_n": n,
                            "idx": e.index,
                            "event_id": e.event_id,
                            "body_hash": e.body_hash,
                            "envelope": None
                            if e.envelope is None
                            else canonical.canonical_bytes(e.envelope).decode(),
                            "error": None if e.error is None else json.dumps(e.error),
                        }
                        for e in events
                    ],
                )
            conn.execute(
                update(ceb_messages)
                .where(ceb_messages.c.capture_n == n)
                .values(prepared=1, blobs=json.dumps(dict(blobs)))
            )

    def next_pending(self) -> Pending | None:
        """The oldest running capture: captures are delivered in the order accepted."""
        c, ev = captures.c, capture_events.c
        with self._tx() as conn:
            row = conn.execute(
                select(c.n, c.capture_id, c.behaviour, c.attempts, c.next_try)
                .where(c.running == 1)
                .order_by(c.n)
                .limit(1)
            ).first()
            if row is None:
                return None
            todo = conn.execute(
                select(ev.idx, ev.envelope)
                .where(
                    ev.capture_n == row.n, ev.envelope.is_not(None), ev.receipt.is_(None), ev.error.is_(None)
                )
                .order_by(ev.idx)
            ).all()
        return Pending(
            n=row.n,
            capture_id=row.capture_id,
            behaviour=row.behaviour,
            attempts=row.attempts,
            next_try=row.next_try,
            events=[(i, json.loads(e)) for i, e in todo],
        )

    def retry_later(self, n: int, *, error: str, next_try: float) -> None:
        with self._tx() as conn:
            conn.execute(
                update(captures)
                .where(captures.c.n == n)
                .values(attempts=captures.c.attempts + 1, next_try=next_try, last_error=error)
            )

    def record(
        self,
        n: int,
        *,
        receipts: Mapping[int, dict[str, Any]],
        errors: Mapping[int, dict[str, Any]],
        finished: bool,
    ) -> None:
        """Keep the receipts and errors of one delivery; ``finished`` ends the capture."""
        ev = capture_events.c
        with self._tx() as conn:
            for idx, receipt in receipts.items():
                conn.execute(
                    update(capture_events)
                    .where(ev.capture_n == n, ev.idx == idx)
                    .values(receipt=json.dumps(receipt))
                )
            for idx, err in errors.items():
                conn.execute(
                    update(capture_events)
                    .where(ev.capture_n == n, ev.idx == idx)
                    .values(error=json.dumps(err))
                )
            values: dict[str, Any] = {"attempts": captures.c.attempts + 1, "last_error": None}
            if finished:
                values |= {"running": 0, "finished": now_iso()}
            conn.execute(update(captures).where(captures.c.n == n).values(**values))

    def job(self, capture_id: str) -> dict[str, Any] | None:
        c = captures.c
        with self._tx() as conn:
            row = conn.execute(select(captures).where(c.capture_id == capture_id)).first()
            return None if row is None else self._job(conn, row)

    def jobs(self, *, after: int | None, limit: int) -> list[tuple[int, dict[str, Any]]]:
        c = captures.c
        with self._tx() as conn:
            q = select(captures).order_by(c.n.desc()).limit(limit)
            if after is not None:
                q = q.where(c.n < after)
            return [(row.n, self._job(conn, row)) for row in conn.execute(q).all()]

    def _job(self, conn: Connection, row: Any) -> dict[str, Any]:
        """The capture job document of the bindings, with the ledger's receipts beside it."""
        ev = capture_events.c
        events = conn.execute(
            select(ev.idx, ev.event_id, ev.receipt, ev.error).where(ev.capture_n == row.n).order_by(ev.idx)
        ).all()
        errors = [json.loads(e.error) for e in events if e.error is not None]
        job: dict[str, Any] = {
            "captureID": row.capture_id,
            "createdAt": row.created,
            "running": bool(row.running),
            "success": not errors,
            "captureErrorBehaviour": row.behaviour,
            "errors": errors,
        }
        if row.finished is not None:
            job["finishedAt"] = row.finished
        cm = ceb_messages.c
        message = conn.execute(select(cm.message, cm.guid, cm.prepared).where(cm.capture_n == row.n)).first()
        if message is not None:
            job["suyuan:customsMessage"] = {
                "message": message.message,
                "guid": message.guid,
                "signed": bool(message.prepared),
            }
        job["suyuan:events"] = len(events)
        job["suyuan:receipts"] = [
            {"index": e.idx, **({"eventID": e.event_id} if e.event_id else {}), **json.loads(e.receipt)}
            for e in events
            if e.receipt is not None
        ]
        job["suyuan:attempts"] = row.attempts
        if row.last_error:
            job["suyuan:lastError"] = row.last_error
        return job

    def backlog(self) -> dict[str, Any]:
        """What `suyuan agent status` shows: captures and events still to deliver."""
        c, ev = captures.c, capture_events.c
        with self._tx() as conn:
            pending = conn.execute(
                select(func.count(), func.min(c.created), func.max(c.attempts)).where(c.running == 1)
            ).one()
            events = conn.execute(
                select(func.count())
                .select_from(capture_events.join(captures, captures.c.n == ev.capture_n))
                .where(c.running == 1, ev.envelope.is_not(None), ev.receipt.is_(None), ev.error.is_(None))
            ).scalar_one()
            done = conn.execute(select(func.count()).where(c.running == 0)).scalar_one()
            failed = conn.execute(
                select(func.count(func.distinct(ev.capture_n))).where(ev.error.is_not(None))
            ).scalar_one()
            last = conn.execute(
                select(c.last_error).where(c.running == 1, c.last_error.is_not(None)).order_by(c.n).limit(1)
            ).scalar()
            unsigned = conn.execute(
                select(func.count())
                .select_from(ceb_messages.join(captures, captures.c.n == ceb_messages.c.capture_n))
                .where(c.running == 1, ceb_messages.c.prepared == 0)
            ).scalar_one()
        return {
            "pendingCaptures": pending[0],
            "pendingEvents": events,
            # customs messages kept but not signed yet: their documents are not counted
            # in pendingEvents until the ledger's registry has been read
            "pendingMessages": unsigned,
            "oldestPending": pending[1],
            "attempts": pending[2] or 0,
            "lastError": last,
            "finishedCaptures": done,
            "capturesWithErrors": failed,
        }
