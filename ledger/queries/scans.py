"""Consumer scans of item codes, kept outside the ledger, and the counterfeit signal
they feed.

Every resolve of a serialised item the ledger knows records (code, time, region, client
class, visitor). A genuine tin is scanned by one household; a code copied onto fakes is
scanned in many places, or by many people after the genuine item was sold. So a code has
a counterfeit signal when its scans come from ``SIGNAL_REGIONS`` (3) or more distinct
regions, or when more than ``SIGNAL_SCANS_AFTER_SALE`` (20) distinct visitors scanned it
after its sale ("sold" as in ``ledger.epcis.projection``: a ``retail_sold`` disposition, a
retail sale or a consumer order). Bots (crawlers, link previews, scripts) are recorded
but never count. A visitor is whoever the caller says scanned (the API: a keyed
pseudonym of the client's address), stored hashed with the code, so one client counts
once per code however often it asks, and its scans of two codes cannot be linked.

Scans are not evidence anyone signed: they live in their own table, are not a
projection (``suyuan reindex`` leaves them alone), and are deleted after
``SUYUAN_SCAN_RETENTION_DAYS`` (default 400) days and beyond ``MAX_SCANS_PER_CODE`` per
code, so the table stays bounded.

The server records the page's scans off the request path (``ScanWriter``): the page reads
the code's scans in its own read transaction and shows the signal with this scan counted,
and the scan joins a batch that one thread writes every ``SUYUAN_SCAN_BATCH_MS`` (default
50) milliseconds, in one transaction, raising findings as the synchronous write does. A
process that is killed loses the scans of its last unwritten batch (at most that many
milliseconds of them); a scan the database refuses is logged and dropped, as before.
Scans are counts for a signal, not evidence: neither loss changes what the ledger proves.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
import re
import secrets
import threading
import time as clock
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy.engine import Connection

from ledger.compliance import findings
from ledger.core.errors import ConfigError
from ledger.core.times import utc_text
from ledger.epcis.projection import SOLD_ACTIVITIES, SOLD_DISPOSITIONS, normalise_code
from ledger.queries.trace import Step, journey_steps
from ledger.store import findingsdb, scansdb, tracedb
from ledger.store.db import Store
from ledger.store.failures import storage_error
from ledger.store.scansdb import ScanRow, Visit

log = logging.getLogger(__name__)

DEFAULT_RETENTION_DAYS = 400
MAX_SCANS_PER_CODE = 1000
SIGNAL_REGIONS = 3
SIGNAL_SCANS_AFTER_SALE = 20
CLIENT_CLASSES = ("browser", "app", "bot")
_REGION_MAX = 64

# Coarse on purpose: a class, never a fingerprint.
_BOT = re.compile(
    r"bot|crawl|spider|slurp|preview|curl|wget|python|httpx|okhttp/|java/|go-http|"
    r"headless|libwww|scrapy|facebookexternalhit|monitor",
    re.I,
)
_APP = re.compile(
    r"MicroMessenger|AlipayClient|DingTalk|Weibo|QQ/|baiduboxapp|Dalvik|"
    r"CFNetwork|\bwv\)",
    re.I,
)


def retention_days() -> int:
    raw = os.environ.get("SUYUAN_SCAN_RETENTION_DAYS")
    if raw is None or raw == "":
        return DEFAULT_RETENTION_DAYS
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"SUYUAN_SCAN_RETENTION_DAYS must be a whole number of days ≥ 1, not {raw!r}")
    return int(raw)


def now_utc() -> str:
    return utc_text()


class Scan(NamedTuple):
    """One scan as the page records it: region, client class and visitor (None: unknown,
    then this scan counts as a visitor of its own)."""

    region: str
    client: str
    visitor: str | None = None


def region_of(header: str | None, address: str | None) -> str:
    """The region of a scan: ``header``, a region a trusted front end set (the caller
    passes it only from one), else the client's network (IPv4 /16, IPv6 /32), else
    ``unknown``."""
    if header:
        clean = "".join(ch for ch in header.strip() if ch.isprintable())[:_REGION_MAX]
        if clean:
            return clean
    if address:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return "unknown"
        prefix = 16 if ip.version == 4 else 32
        return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))
    return "unknown"


def client_class(user_agent: str | None) -> str:
    """browser, app (an in-app browser or mobile SDK) or bot, from the User-Agent."""
    ua = user_agent or ""
    if not ua or _BOT.search(ua):
        return "bot"
    if _APP.search(ua):
        return "app"
    return "browser" if ua.startswith("Mozilla/") else "bot"


def check_ready(store: Store) -> None:
    """Refuse, with the fix, a ledger whose schema predates the scans table."""
    with store.reading() as conn:
        if not scansdb.has_table(conn):
            raise ConfigError(
                "this ledger's schema predates the scans table (migrations 0005 "
                "and 0008); run `suyuan init` once to bring it up to date"
            )


@contextmanager
def _transaction(store: Store) -> Iterator[Connection]:
    with scansdb.transaction(store.engine) as conn:
        yield conn


def visitor_key(code: str, visitor: str | None) -> str:
    """What the scans table keeps of a visitor: a hash of it with the code (32 hex), or a
    fresh random one when the visitor is unknown."""
    if visitor is None:
        return secrets.token_hex(16)
    return hashlib.sha256(f"{code}\n{visitor}".encode()).hexdigest()[:32]


def record_scan(
    store: Store,
    code: str,
    *,
    region: str,
    client: str,
    visitor: str | None = None,
    time: str | None = None,
    journey: tuple[Sequence[Step], str | None] | None = None,
) -> dict[str, Any] | None:
    """``_record_scan``, except that a scan the database cannot take (a full disk, a
    read-only file, a server gone) is logged and dropped: the consumer asked for the
    item's page, not for the scan, so the page still answers, with the counterfeit signal
    of the scans stored before."""
    if client not in CLIENT_CLASSES:
        raise ValueError(f"client class {client!r} is not one of {CLIENT_CLASSES}")
    try:
        return _record_scan(
            store, code, region=region, client=client, visitor=visitor, time=time, journey=journey
        )
    except Exception as e:  # noqa: BLE001 - whatever failed, the page is still owed
        problem = storage_error(e, where="scans")
        log.warning(
            "scan of %s not recorded: %s", code, problem.message if problem else e, exc_info=problem is None
        )
    if journey is None:
        return None
    with store.reading() as conn:
        return signal_in(conn, normalise_code(code), journey[1])


def _record_scan(
    store: Store,
    code: str,
    *,
    region: str,
    client: str,
    visitor: str | None = None,
    time: str | None = None,
    journey: tuple[Sequence[Step], str | None] | None = None,
) -> dict[str, Any] | None:
    """Record one scan of an item and apply the retention rules to that code; a scan that
    is not a bot's raises the code's counterfeit finding when its scans give the signal.
    ``visitor`` names who scanned (see ``visitor_key``); None counts this scan as a
    visitor of its own.

    ``journey`` is the code's journey steps and sale time when the caller has just read
    them (the consumer page): then they are not read again, and the code's counterfeit
    signal after this scan is returned. Without it, None is returned."""
    if client not in CLIENT_CLASSES:
        raise ValueError(f"client class {client!r} is not one of {CLIENT_CLASSES}")
    when = time or now_utc()
    cutoff = utc_text(datetime.now(UTC) - timedelta(days=retention_days()))
    # An item scanned through a link that names its lot (…/10/L/21/S) is the same item as
    # …/21/S: its scans are kept and counted under the index key alone.
    key = normalise_code(code)
    fid = finding_id(key)
    with _transaction(store) as conn:
        scansdb.insert_scan(
            conn,
            code=key,
            time=when,
            region=region[:_REGION_MAX],
            client=client,
            visitor=visitor_key(key, visitor),
        )
        # The page's scan is two statements, the insert and one tally that also says
        # whether retention has anything to delete (it seldom has) and whether the
        # finding is raised already.
        sold = journey[1] if journey is not None else None
        got = scansdb.tally(conn, key, since=sold, exclude_client="bot", finding_id=fid)
        if got.scans > MAX_SCANS_PER_CODE or (got.oldest is not None and got.oldest < cutoff):
            scansdb.prune_code(conn, key, before=cutoff, cap=MAX_SCANS_PER_CODE)
            got = scansdb.tally(conn, key, since=sold, exclude_client="bot", finding_id=fid)
        raised = client == "bot" or got.finding
        if journey is None:
            if raised:
                return None
            steps: Sequence[Step] = journey_steps(conn, key)
            sig = signal_in(conn, key, first_sale(steps, tracedb.event_rows(conn, [s.seq for s in steps])))
        else:
            steps = journey[0]
            sig = _signal(got.regions, got.after)
        if sig is not None and not raised:
            _raise_finding(conn, key, when, [s.seq for s in steps], sig)
        return sig if journey is not None else None


def finding_id(code: str) -> str:
    """One counterfeit finding per code, raised the first time its scans give the signal."""
    return "scan-" + hashlib.sha256(code.encode()).hexdigest()[:24]


def _raise_finding(
    conn: Connection, key: str, when: str, seqs: Sequence[int], sig: Mapping[str, Any]
) -> None:
    """Record a ``scan.counterfeit`` finding for regulators when this scan makes the code's
    scans look like a counterfeit; once per code. Nobody is named as responsible: the
    producer of a copied code is its victim, not the offender."""
    rule = findings.RULES[findings.COUNTERFEIT_RULE]
    if sig["reason"] == "regions":
        zh = f"{rule.zh}：{key} 在 {sig['regions']} 个地区被扫码"
        en = f"{rule.en}: {key} was scanned in {sig['regions']} regions"
    else:
        zh = f"{rule.zh}：{key} 售出后被 {sig['scansAfterSale']} 个不同的访客扫码"
        en = f"{rule.en}: {key} was scanned by {sig['scansAfterSale']} different visitors after it was sold"
    last = seqs[-1] if seqs else 0
    findingsdb.save_scan_findings(
        conn,
        findings.record_scan_findings(
            [
                findings.Finding(
                    id=finding_id(key),
                    seq=last,
                    rule=rule.code,
                    severity=rule.severity,
                    time=when,
                    seqs=tuple(seqs),
                    parties=(),
                    codes=(key,),
                    message_zh=zh,
                    message_en=en,
                    details=dict(sig),
                    source="scan",
                )
            ]
        ),
    )


def prune(store: Store, *, now: datetime | None = None) -> int:
    """Delete every scan older than the retention period; returns how many went."""
    cutoff = utc_text((now or datetime.now(UTC)) - timedelta(days=retention_days()))
    with _transaction(store) as conn:
        return scansdb.prune_all(conn, before=cutoff)


def scans_for(store: Store, code: str, *, limit: int = MAX_SCANS_PER_CODE) -> dict[str, Any]:
    key = normalise_code(code)
    with store.reading() as conn:
        rows = scansdb.scans_of(conn, key, limit=limit)
    return {"code": key, "scans": rows, "signal": counterfeit_signal(store, key)}


def first_sale(steps: Sequence[Step], rows: Mapping[int, Mapping[str, Any]]) -> str | None:
    """UTC time of the first of these journey steps that sold the item, if any."""
    for s in steps:
        r = rows[s.seq]
        if r["disposition"] in SOLD_DISPOSITIONS or r["activity"] in SOLD_ACTIVITIES:
            return str(r["event_time_utc"])
    return None


def sold_at(conn: Connection, code: str) -> str | None:
    """UTC time of the first event of the code's journey that sold it, if any."""
    steps = journey_steps(conn, code)
    return first_sale(steps, tracedb.event_rows(conn, [s.seq for s in steps]))


def signal_in(conn: Connection, code: str, sold: str | None) -> dict[str, Any] | None:
    """The counterfeit signal of an index-key ``code`` sold at ``sold`` (see
    ``counterfeit_signal``), inside the caller's read transaction."""
    regions, after = scansdb.counts_of(conn, code, since=sold, exclude_client="bot")
    return _signal(regions, after)


def _signal(regions: int, after: int) -> dict[str, Any] | None:
    if regions >= SIGNAL_REGIONS:
        reason = "regions"
    elif after > SIGNAL_SCANS_AFTER_SALE:
        reason = "scans_after_sale"
    else:
        return None
    return {"reason": reason, "regions": regions, "scansAfterSale": after}


def counterfeit_signal(store: Store, code: str) -> dict[str, Any] | None:
    """``{"reason", "regions", "scansAfterSale"}`` when the code's scans look like a
    counterfeit, else None. ``reason`` is ``regions`` or ``scans_after_sale``."""
    key = normalise_code(code)
    with store.reading() as conn:
        return signal_in(conn, key, sold_at(conn, key))


def suspicious(store: Store) -> list[dict[str, Any]]:
    """Every code with a counterfeit signal, with the signal."""
    with store.reading() as conn:
        codes = scansdb.candidate_codes(
            conn, min_regions=SIGNAL_REGIONS, min_scans=SIGNAL_SCANS_AFTER_SALE + 1, exclude_client="bot"
        )
    out = []
    for code in codes:
        sig = counterfeit_signal(store, code)
        if sig is not None:
            out.append({"code": code, **sig})
    return out


DEFAULT_BATCH_MS = 50
BATCH_MAX = 512  # scans written in one transaction at most
PENDING_MAX = 20_000  # scans waiting at most (the database is away): older ones are dropped


def batch_ms() -> int:
    """``SUYUAN_SCAN_BATCH_MS``: how long a page's scan may wait to be written (0: written
    in its own request)."""
    raw = os.environ.get("SUYUAN_SCAN_BATCH_MS")
    if raw is None or raw == "":
        return DEFAULT_BATCH_MS
    if not raw.isdigit():
        raise ConfigError(f"SUYUAN_SCAN_BATCH_MS must be a whole number of milliseconds ≥ 0, not {raw!r}")
    return int(raw)


def visits_in(conn: Connection, code: str) -> list[Visit]:
    """What an index-key ``code``'s signal counts of its stored scans (bots left out), in
    the caller's read transaction; ``ScanWriter.record`` takes it."""
    return scansdb.visits_of(conn, code, exclude_client="bot")


class _Pending(NamedTuple):
    row: ScanRow
    sold: str | None  # the item's sale time, as the page read it
    seqs: tuple[int, ...]  # its journey's entries, for the finding


class ScanWriter:
    """The page's scans, written in batches by a thread of their own (see the module's
    docstring): the request only reads, and the signal it shows counts the scans stored,
    the ones of this process still waiting, and its own."""

    def __init__(self, store: Store, *, every_ms: int = DEFAULT_BATCH_MS) -> None:
        self.store = store
        self.every = max(every_ms, 1) / 1000
        self._pending: list[_Pending] = []
        self._codes: dict[str, int] = {}  # code -> its scans in _pending
        self._lock = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.written = 0  # scans written so far (tests, logs)
        self.dropped = 0  # scans lost: refused by the database, or past PENDING_MAX

    def record(
        self,
        code: str,
        scan: Scan,
        *,
        journey: tuple[Sequence[Step], str | None],
        visits: Sequence[Visit],
        time: str | None = None,
    ) -> dict[str, Any] | None:
        """Queue a scan of the index-key ``code`` for writing and return the code's
        counterfeit signal with it counted, and the scans stored before: ``visits``, read
        in the page's transaction (``visits_in``)."""
        if scan.client not in CLIENT_CLASSES:
            raise ValueError(f"client class {scan.client!r} is not one of {CLIENT_CLASSES}")
        steps, sold = journey
        row = ScanRow(
            code, time or now_utc(), scan.region[:_REGION_MAX], scan.client, visitor_key(code, scan.visitor)
        )
        with self._lock:
            waiting = [p.row for p in self._pending if p.row.code == code] if code in self._codes else []
            self._pending.append(_Pending(row, sold, tuple(s.seq for s in steps)))
            self._codes[code] = self._codes.get(code, 0) + 1
            if len(self._pending) > PENDING_MAX:
                self._forget(self._pending[: len(self._pending) - PENDING_MAX])
                del self._pending[: len(self._pending) - PENDING_MAX]
                self.dropped += 1
            self._start()
            self._lock.notify()  # the thread waits while the queue is empty
        regions = {v.region for v in visits}
        after = {v.visitor for v in visits if sold is not None and v.last >= sold}
        for r in [*waiting, row]:
            if r.client != "bot":
                regions.add(r.region)
                if sold is not None and r.time >= sold:
                    after.add(r.visitor)
        return _signal(len(regions), len(after))

    def _forget(self, gone: Sequence[_Pending]) -> None:
        for p in gone:
            left = self._codes.pop(p.row.code) - 1
            if left:
                self._codes[p.row.code] = left

    def _start(self) -> None:
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(target=self._run, name="scan-writer", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._pending and not self._closed:
                    self._lock.wait()
                if not self._pending and self._closed:
                    return
            clock.sleep(self.every)  # gather the batch
            self.flush()

    def flush(self) -> int:
        """Write every waiting scan now; how many were written."""
        done = 0
        while True:
            with self._lock:
                batch, self._pending = self._pending[:BATCH_MAX], self._pending[BATCH_MAX:]
                self._forget(batch)
            if not batch:
                return done
            try:
                _write_batch(self.store, batch)
                done += len(batch)
                self.written += len(batch)
            except Exception as e:  # noqa: BLE001 - scans are dropped, pages still answer
                self.dropped += len(batch)
                problem = storage_error(e, where="scans")
                log.warning(
                    "%d scans not recorded: %s",
                    len(batch),
                    problem.message if problem else e,
                    exc_info=problem is None,
                )

    def close(self) -> None:
        """Write what waits and stop the thread."""
        with self._lock:
            self._closed = True
            self._lock.notify()
        if self._thread is not None:
            self._thread.join(30)
        self.flush()


def _write_batch(store: Store, batch: Sequence[_Pending]) -> None:
    """One transaction: the scans, then per code the retention rules and the finding, as
    ``_record_scan`` applies them to one scan."""
    cutoff = utc_text(datetime.now(UTC) - timedelta(days=retention_days()))
    by_code: dict[str, list[_Pending]] = {}
    for p in batch:
        by_code.setdefault(p.row.code, []).append(p)
    with _transaction(store) as conn:
        scansdb.insert_scans(conn, [p.row for p in batch])
        for code, mine in by_code.items():
            last = mine[-1]
            fid = finding_id(code)
            got = scansdb.tally(conn, code, since=last.sold, exclude_client="bot", finding_id=fid)
            if got.scans > MAX_SCANS_PER_CODE or (got.oldest is not None and got.oldest < cutoff):
                scansdb.prune_code(conn, code, before=cutoff, cap=MAX_SCANS_PER_CODE)
                got = scansdb.tally(conn, code, since=last.sold, exclude_client="bot", finding_id=fid)
            people = [p for p in mine if p.row.client != "bot"]
            if got.finding or not people:
                continue
            sig = _signal(got.regions, got.after)
            if sig is not None:
                _raise_finding(conn, code, people[-1].row.time, people[-1].seqs, sig)
