"""The store: engines, transactions and every SQL statement the ledger runs.

Appends are serialised by one lock per log so that seqs are handed out without gaps and
no reader ever sees a gap filled in later: on SQLite the writer takes the database's
RESERVED lock up front (``BEGIN IMMEDIATE``) instead of upgrading a read lock mid-batch,
which would deadlock two writers; on PostgreSQL a transaction-scoped advisory lock keyed
by the schema does the same while leaving readers free (MVCC).
"""

from __future__ import annotations

import copy
import itertools
import logging
import os
import sqlite3
import threading

try:
    import fcntl
except ImportError:  # not on Windows: SQLite's own lock serialises writers there
    fcntl = None  # type: ignore[assignment]
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import (
    Engine,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from ledger.core.errors import ConfigError, DamagedStore
from ledger.core.registry import (
    CustomsCodeRecord,
    Delegation,
    KeyRecord,
    PartyRecord,
    PrefixRecord,
    RegistryState,
)
from ledger.store import schema
from ledger.store.driver import IN_CHUNK, as_blob, as_int, as_text, bound, rows_in, run, run_many
from ledger.store.schema import (
    NODE_LEVEL_SHIFT,
    checkpoints,
    cosignatures,
    customs_codes,
    entries,
    gs1_prefixes,
    log_meta,
    merkle_nodes,
    negative_list,
    node_id,
    node_key,
    parties,
    party_keys,
    positive_list,
    prefix_delegations,
    private_blobs,
)

DEFAULT_URL = "sqlite:///suyuan.db"
_log = logging.getLogger("suyuan")

Damage = Callable[[DamagedStore], None]
"""Where a stream reports a damaged row instead of raising (the audit's problem list)."""


def _column(
    value: object, column: str, seq: int | None, damaged: Damage | None, *, checkpoint: int | None = None
) -> bytes:
    """A streamed BLOB value; a damaged one is raised, or reported and read as its TEXT's
    UTF-8 bytes (or no bytes)."""
    try:
        return as_blob(value, column, seq=seq, checkpoint=checkpoint)
    except DamagedStore as problem:
        if damaged is None:
            raise
        damaged(problem)
        return value.encode("utf-8", "surrogatepass") if isinstance(value, str) else b""


def _node_hash(value: object, nid: tuple[int, int]) -> bytes:
    level, idx = nid
    return as_blob(value, f"merkle_nodes.hash of node ({level}, {idx})", seq=idx << level)


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves: pysqlite's implicit BEGIN is DEFERRED.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        # FULL: a receipt is only printed after the commit is on disk.
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA busy_timeout=120000")
        # 64 MiB of page cache: the statement-hash index takes random inserts, and a
        # cache that holds its upper levels keeps appends from slowing as the log grows.
        cur.execute("PRAGMA cache_size=-65536")
        # The writer no longer copies the log into the database after each commit (see
        # WalCheckpointer); this bound only matters when no checkpointer runs.
        cur.execute(f"PRAGMA wal_autocheckpoint={WAL_BACKSTOP_PAGES}")
        cur.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn: Connection) -> None:
        mode = conn.info.pop("begin_mode", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


WAL_BACKSTOP_PAGES = 8192  # 32 MiB of 4 KiB pages
IDLE_SECONDS = 2.0  # a checkpointer with no write for this long ends


class WalCheckpointer:
    """Copies SQLite's write-ahead log into the database file on a thread of its own.

    With SQLite's default, the commit that fills 1,000 pages of log also copies them into
    the database file, in the appender's own time. A batch of 1,000 statements dirties
    some 1,800 pages once the log is large (its random statement-hash index alone touches
    one page per statement), so every append paid for a checkpoint: measured at 600,000
    entries, a fifth of the batch's time. Here each write transaction only wakes this
    thread, which runs a PASSIVE checkpoint on its own connection: it never blocks or
    waits for the writer or readers, and copies what it can while the next batch is being
    prepared. The connections' ``wal_autocheckpoint`` stays as a bound for when it lags.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def poke(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="suyuan-wal-checkpoint", daemon=True)
                self._thread.start()
            self._wake.set()

    def stop(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop = thread is not None
            self._wake.set()
        if thread is not None:
            thread.join()
        with self._lock:
            self._stop = False
            self._wake.clear()

    def _run(self) -> None:
        con: sqlite3.Connection | None = None
        try:
            while True:
                if not self._wake.wait(IDLE_SECONDS):
                    with self._lock:
                        if not self._wake.is_set():
                            # Idle: give back the thread and its connection; the next
                            # write starts another.
                            self._thread = None
                            return
                with self._lock:
                    if self._stop:
                        return
                    self._wake.clear()
                try:
                    if con is None:
                        con = sqlite3.connect(self.path, check_same_thread=False)
                    con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:
                    # A database that went away (a removed test directory) or is busy:
                    # the next commit wakes us again, and autocheckpoint is the backstop.
                    if con is not None:
                        con.close()
                    con = None
        finally:
            if con is not None:
                con.close()


def make_engine(url: str | None = None, *, connect_timeout: int | None = None) -> Engine:
    url = url or os.environ.get("SUYUAN_DB") or DEFAULT_URL
    try:
        u = make_url(url)
    except Exception:
        raise ConfigError(f"SUYUAN_DB {url!r} is not a database URL") from None
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            Path(u.database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(u, future=True)
        _sqlite_setup(engine)
        return engine
    if u.get_backend_name() == "postgresql":
        if u.get_driver_name() in ("psycopg2", "default") or u.drivername == "postgresql":
            u = u.set(drivername="postgresql+psycopg")
        args = (
            {"connect_timeout": connect_timeout}
            if connect_timeout is not None and "connect_timeout" not in u.query
            else {}
        )
        return create_engine(u, future=True, pool_pre_ping=True, pool_recycle=3600, connect_args=args)
    raise ConfigError(f"unsupported database {u.get_backend_name()!r}; use sqlite or postgresql")


REPLICA_CONNECT_SECONDS = 5  # a replica that does not answer by then is passed over


def _replica_engine(url: str, dialect: str) -> Engine:
    eng = make_engine(url, connect_timeout=REPLICA_CONNECT_SECONDS)
    if eng.dialect.name != dialect:
        eng.dispose()
        raise ConfigError(
            f"SUYUAN_DB_READ {make_url(url).render_as_string(hide_password=True)!r}"
            f" is {eng.dialect.name}, but SUYUAN_DB is {dialect}: a replica is a "
            "copy of the primary, on the same engine"
        )
    return eng


def split_read_urls(text: str | None) -> tuple[str, ...]:
    """The replica URLs of SUYUAN_DB_READ (or ``--db-read``): separated by commas or spaces."""
    return tuple(u for u in (text or "").replace(",", " ").split() if u)


class EntryRow(NamedTuple):
    """One ``entries`` row, as an append writes it and a stream reads it back."""

    seq: int
    leaf_hash: bytes
    statement_hash: bytes
    kind: str
    signer: str
    entry: bytes


class NodeRow(NamedTuple):
    """One ``merkle_nodes`` row: a complete subtree's key (``schema.node_key``) and hash."""

    node: int
    hash: bytes


class CheckpointRow(NamedTuple):
    """One ``checkpoints`` row: the tree's size and root, the signed note, the ledger time
    of the batch it ends."""

    size: int
    root: bytes
    note: str
    time: str


class StoredEntry(NamedTuple):
    """An entry as a stream reads it back."""

    seq: int
    leaf_hash: bytes
    statement_hash: bytes
    entry: bytes


class LeafEntry(NamedTuple):
    """One entry's leaf hash and bytes."""

    leaf_hash: bytes
    entry: bytes


class LevelNode(NamedTuple):
    """A stored node of one tree level: its index in the level and its hash."""

    idx: int
    hash: bytes


class StoredCheckpoint(NamedTuple):
    """A stored checkpoint: the tree's size and root and the signed note."""

    size: int
    root: bytes
    note: str


class CosignedNote(NamedTuple):
    """The newest checkpoint a witness cosigned: its size and signed note, and where it
    was read (``""``: the primary)."""

    size: int
    note: str
    where: str = ""


class PrivateBlob(NamedTuple):
    blob: bytes | None  # None once shredded
    shredded: str | None  # when


def _insert(table: str, fields: Sequence[str]) -> str:
    return f"INSERT INTO {table} ({', '.join(fields)}) VALUES ({', '.join(':' + f for f in fields)})"


_INSERT_ENTRY = _insert("entries", EntryRow._fields)
_INSERT_NODE = _insert("merkle_nodes", NodeRow._fields)
_INSERT_CHECKPOINT = _insert("checkpoints", CheckpointRow._fields)


class Head(NamedTuple):
    size: int
    root: bytes
    note: str  # the signed checkpoint
    time: str  # the ledger time of the batch it ended


class Store:
    """SQL access for one log. Methods taking ``conn`` run inside the caller's transaction."""

    def __init__(
        self, url: str | None = None, *, engine: Engine | None = None, read_urls: Sequence[str] | None = None
    ) -> None:
        if read_urls is None:
            # The database of the environment (SUYUAN_DB) comes with its replicas.
            from_env = url is None and engine is None
            read_urls = split_read_urls(os.environ.get("SUYUAN_DB_READ")) if from_env else ()
        # With replicas, a primary that does not answer is given up on as soon as one is.
        self.engine = engine or make_engine(
            url, connect_timeout=REPLICA_CONNECT_SECONDS if read_urls else None
        )
        self.dialect = self.engine.dialect.name
        db = self.engine.url.database if self.dialect == "sqlite" else None
        on_disk = bool(db) and db != ":memory:" and not str(db).startswith("file:")
        self._checkpointer = WalCheckpointer(str(db)) if on_disk else None
        # Writers queue on a lock file next to the database (see ``writing``).
        self._write_lock = str(db) + "-writer.lock" if on_disk and fcntl is not None else None
        # Read replicas (SUYUAN_DB_READ): only the view ``reader()`` reads from them; this
        # store itself reads and writes the primary, and shows them to the fencing check.
        self.replicas: tuple[Engine, ...] = tuple(_replica_engine(u, self.dialect) for u in read_urls)
        self._routes_reads = False
        self._turn = itertools.count()

    def reader(self) -> Store:
        """The same store, reading from its replicas (one after the other, a request's reads
        from one of them: see ``pinned``) and writing to the primary. Without replicas it
        reads the primary, still one snapshot per pinned request."""
        view = copy.copy(self)
        view._routes_reads = True
        return view

    def _read_engines(self) -> list[Engine]:
        """The engines to read from, the one to try first first: replicas in turn, the
        primary last (it answers when every replica is down)."""
        if not self._routes_reads or not self.replicas:
            return [self.engine]
        n = next(self._turn) % len(self.replicas)
        return [*self.replicas[n:], *self.replicas[:n], self.engine]

    def _connect_for_reading(self) -> Connection:
        engines = self._read_engines()
        for eng in engines[:-1]:
            try:
                return eng.connect()
            except OperationalError as e:
                _log.warning(
                    "read replica %s is unreachable (%s); trying the next",
                    eng.url.render_as_string(hide_password=True),
                    str(e).splitlines()[0],
                )
        return engines[-1].connect()

    def dispose(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        self.engine.dispose()
        for eng in self.replicas:
            eng.dispose()

    # --- schema ------------------------------------------------------------------------

    def is_initialised(self) -> bool:
        with self.engine.connect() as conn:
            return inspect(conn).has_table("entries")

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision."""
        from ledger.store.migrate import upgrade

        upgrade(self.engine)

    # --- transactions --------------------------------------------------------------------

    @contextmanager
    def writing(self, *, while_queued: Callable[[], None] | None = None) -> Iterator[Connection]:
        """One serialised write transaction: commits on success, rolls back on error.

        On SQLite, writers first queue on an exclusive ``flock`` of a lock file beside the
        database. SQLite's own lock has no queue: a writer that finds it taken sleeps in
        its busy handler (up to 100 ms a try) and wakes late, so two submitters took
        turns with gaps; the kernel hands the file lock over the moment it is released.
        ``BEGIN IMMEDIATE`` still takes SQLite's lock, against writers that do not queue.

        ``while_queued`` is called when another writer holds the lock, before waiting for
        it: work the caller would otherwise do while holding it (whatever it raises ends
        the wait, and nothing is written).
        """
        lock_fd = self._queue_for_write(while_queued)
        try:
            with self.engine.connect() as conn, self._locked(conn, while_queued=while_queued):
                yield conn
        finally:
            if lock_fd is not None:
                os.close(lock_fd)  # closing the descriptor releases its lock
        if self._checkpointer is not None:
            self._checkpointer.poke()

    @contextmanager
    def writing_on(self, conn: Connection, *, lock_schema: str | None = None) -> Iterator[Connection]:
        """``writing`` on a connection the caller holds (with no transaction open), e.g.
        one with temporary tables of its own; ``lock_schema`` names the schema whose
        sequencer lock to take on PostgreSQL when its search path starts elsewhere."""
        lock_fd = self._queue_for_write()
        try:
            with self._locked(conn, lock_schema=lock_schema):
                yield conn
        finally:
            if lock_fd is not None:
                os.close(lock_fd)
        if self._checkpointer is not None:
            self._checkpointer.poke()

    @contextmanager
    def _locked(
        self,
        conn: Connection,
        *,
        lock_schema: str | None = None,
        while_queued: Callable[[], None] | None = None,
    ) -> Iterator[Connection]:
        if self.dialect == "sqlite":
            conn.info["begin_mode"] = "IMMEDIATE"
        with conn.begin():
            if self.dialect == "postgresql":
                key = "hashtext(current_schema())" if lock_schema is None else "hashtext(:s)"
                args = {} if lock_schema is None else {"s": lock_schema}
                taken = False
                if while_queued is not None:
                    try_lock = text(f"SELECT pg_try_advisory_xact_lock({key})")
                    taken = bool(conn.execute(try_lock, args).scalar())
                    if not taken:
                        while_queued()
                if not taken:
                    conn.execute(text(f"SELECT pg_advisory_xact_lock({key})"), args)
            yield conn

    def _queue_for_write(self, while_queued: Callable[[], None] | None = None) -> int | None:
        if self._write_lock is None or fcntl is None:
            return None
        try:
            fd = os.open(self._write_lock, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            return None  # a directory we may not write to: SQLite's lock alone serialises
        try:
            if while_queued is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return fd
                except BlockingIOError:
                    while_queued()
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        return fd

    @contextmanager
    def reading(self, *, snapshot: bool = False, single: bool = False) -> Iterator[Connection]:
        """A read transaction; ``snapshot`` keeps one view across many queries (audits);
        ``single`` is for one statement, which PostgreSQL then runs without BEGIN/COMMIT
        round trips (one statement is its own consistent snapshot). Inside ``pinned`` every
        read of this store is the pinned transaction's."""
        pin = _PINNED.get()
        if pin is not None and pin.store is self:
            with pin.lock:
                yield pin.connection()
            return
        with self._connect_for_reading() as conn:
            if self.dialect == "postgresql":
                if snapshot:
                    conn = conn.execution_options(isolation_level="REPEATABLE READ")
                elif single:
                    conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            with conn.begin():
                yield conn

    @contextmanager
    def pinned(self) -> Iterator[ReadPin]:
        """Every ``reading`` of this store in this context (this request, and the threads
        it hands work to) shares one read-only snapshot of one database, opened at the
        first read: an answer never mixes two replicas or two moments of one. The pin
        records the latest checkpoint of its snapshot, the one the answer is verified
        against. Writes (``writing``, scans) are not affected."""
        outer = _PINNED.get()
        if outer is not None and outer.store is self:
            yield outer
            return
        pin = ReadPin(self)
        token = _PINNED.set(pin)
        try:
            yield pin
        finally:
            _PINNED.reset(token)
            pin.close()

    def pinned_head(self) -> Head | None:
        """The latest checkpoint of the pinned snapshot this context reads, once its
        transaction is open (None: not pinned, not yet open, or no checkpoint)."""
        pin = _PINNED.get()
        return pin.head if pin is not None and pin.store is self else None

    # --- the log -------------------------------------------------------------------------

    def head(self, conn: Connection) -> Head | None:
        """The latest checkpoint, which every batch ends with."""
        # On the driver's cursor: every request reads it first (``ReadPin``), and building
        # the statement costs more than running it.
        rows = run(conn, "SELECT size, root, note, time FROM checkpoints ORDER BY size DESC LIMIT 1")
        if not rows:
            return None
        row = rows[0]
        size = as_int(row[0], "checkpoints.size")
        return Head(
            size=size,
            root=as_blob(row[1], "checkpoints.root", checkpoint=size),
            note=as_text(row[2], "checkpoints.note", checkpoint=size),
            time=as_text(row[3], "checkpoints.time", checkpoint=size),
        )

    def checkpoint_at(self, conn: Connection, size: int) -> StoredCheckpoint | None:
        row = conn.execute(
            select(checkpoints.c.root, checkpoints.c.note).where(checkpoints.c.size == size)
        ).first()
        if row is None:
            return None
        return StoredCheckpoint(
            size=size,
            root=as_blob(row[0], "checkpoints.root", checkpoint=size),
            note=as_text(row[1], "checkpoints.note", checkpoint=size),
        )

    def checkpoint_covering(self, conn: Connection, seq: int) -> StoredCheckpoint | None:
        """The first checkpoint that includes entry ``seq``: the one its receipt named."""
        row = conn.execute(
            select(checkpoints.c.size, checkpoints.c.root, checkpoints.c.note)
            .where(checkpoints.c.size > seq)
            .order_by(checkpoints.c.size)
            .limit(1)
        ).first()
        if row is None:
            return None
        size = as_int(row[0], "checkpoints.size")
        return StoredCheckpoint(
            size=size,
            root=as_blob(row[1], "checkpoints.root", checkpoint=size),
            note=as_text(row[2], "checkpoints.note", checkpoint=size),
        )

    def fetch_nodes(self, conn: Connection, ids: Collection[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """Hashes of the requested complete subtrees that exist, in one round trip.

        Every proof and every append calls this, so it goes straight to the driver: the
        statement-building layer costs more here than the primary-key lookups themselves.
        """
        out: dict[tuple[int, int], bytes] = {}
        wanted = [node_key(level, idx) for level, idx in ids]
        if not wanted:
            return out
        rows = rows_in(conn, "SELECT node, hash FROM merkle_nodes WHERE node IN", "node", wanted)
        for key, h in rows:
            # The IN list holds integers, so every key that matched is one.
            nid = node_id(key)
            out[nid] = h if type(h) is bytes else _node_hash(h, nid)
        return out

    def seqs_of_statements(self, conn: Connection, hashes: Collection[bytes]) -> dict[bytes, int]:
        """statement hash -> seq, of those already in the log (every append asks)."""
        rows = rows_in(
            conn,
            "SELECT statement_hash, seq FROM entries WHERE statement_hash IN",
            "statement_hash",
            list(hashes),
        )
        return {bytes(h): int(seq) for h, seq in rows}

    def append_rows(
        self,
        conn: Connection,
        *,
        entry_rows: Sequence[EntryRow],
        node_rows: Sequence[NodeRow],
        checkpoint_row: CheckpointRow,
    ) -> None:
        """Insert a batch: its entries, the tree nodes it completes and its checkpoint.

        The hot path of every append: rows go to the driver as they are (COPY on
        PostgreSQL), skipping per-row parameter processing that would cost more than the
        insert itself.
        """
        cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        if self.dialect == "postgresql":
            with cur.copy(f"COPY entries ({', '.join(EntryRow._fields)}) FROM STDIN") as copy:
                for row in entry_rows:
                    copy.write_row(row)
            with cur.copy(f"COPY merkle_nodes ({', '.join(NodeRow._fields)}) FROM STDIN") as copy:
                for node in node_rows:
                    copy.write_row(node)
        else:
            cur.executemany(bound(conn, _INSERT_ENTRY).sql, entry_rows)
            cur.executemany(bound(conn, _INSERT_NODE).sql, node_rows)
        cur.execute(bound(conn, _INSERT_CHECKPOINT).sql, checkpoint_row)

    def entry(self, conn: Connection, seq: int) -> LeafEntry | None:
        row = conn.execute(select(entries.c.leaf_hash, entries.c.entry).where(entries.c.seq == seq)).first()
        if row is None:
            return None
        return LeafEntry(
            leaf_hash=as_blob(row[0], "entries.leaf_hash", seq=seq),
            entry=as_blob(row[1], "entries.entry", seq=seq),
        )

    def entries_by_seq(self, conn: Connection, seqs: Collection[int]) -> dict[int, bytes]:
        out: dict[int, bytes] = {}
        wanted = sorted(set(seqs))
        for i in range(0, len(wanted), IN_CHUNK):
            rows = conn.execute(
                select(entries.c.seq, entries.c.entry).where(entries.c.seq.in_(wanted[i : i + IN_CHUNK]))
            )
            for s, e in rows:
                n = as_int(s, "entries.seq")
                out[n] = e if type(e) is bytes else as_blob(e, "entries.entry", seq=n)
        return out

    def count_entries(self, conn: Connection) -> int:
        return int(conn.execute(select(func.count()).select_from(entries)).scalar_one())

    # Streams read in keyset pages so memory stays flat whatever the log's size, on
    # both drivers, without holding one cursor open across a long audit.

    def stream_entries(
        self,
        conn: Connection,
        *,
        page: int = 2000,
        damaged: Damage | None = None,
        start: int = 0,
        stop: int | None = None,
    ) -> Iterator[StoredEntry]:
        """The stored entries in seq order, from ``start`` up to
        (not including) ``stop``.

        A row the ledger cannot have written (a column of another type) raises
        ``DamagedStore``; with ``damaged`` (the audit) it is reported there instead and the
        stream goes on, with a TEXT column's UTF-8 bytes (so a copy of the right bytes as
        TEXT is that one problem and no other) or, for any other type, no bytes.
        """
        after: object = start - 1
        while True:
            q = select(entries.c.seq, entries.c.leaf_hash, entries.c.statement_hash, entries.c.entry).where(
                entries.c.seq > after
            )
            if stop is not None:
                q = q.where(entries.c.seq < stop)
            rows = conn.execute(q.order_by(entries.c.seq).limit(page)).all()
            if not rows:
                return
            for seq, lh, sh, e in rows:
                if type(seq) is int and type(lh) is bytes and type(sh) is bytes and type(e) is bytes:
                    yield StoredEntry(seq, lh, sh, e)
                    continue
                try:
                    n = as_int(seq, "entries.seq")
                except DamagedStore as problem:
                    if damaged is None:
                        raise
                    damaged(problem)
                    continue
                yield StoredEntry(
                    seq=n,
                    leaf_hash=_column(lh, "entries.leaf_hash", n, damaged),
                    statement_hash=_column(sh, "entries.statement_hash", n, damaged),
                    entry=_column(e, "entries.entry", n, damaged),
                )
            # A key SQLite holds as TEXT sorts after every integer: page on the raw value.
            after = rows[-1][0]

    def stream_level(
        self, conn: Connection, level: int, *, page: int = 4000, damaged: Damage | None = None
    ) -> Iterator[LevelNode]:
        """Every stored node of one level, in index order; a hash of
        another type is refused or reported as in ``stream_entries``. The range bounds are
        integers, so a node key SQLite holds as TEXT is never read (nor is it by proofs)."""
        after, end = node_key(level, 0) - 1, node_key(level + 1, 0)
        while True:
            rows = conn.execute(
                select(merkle_nodes.c.node, merkle_nodes.c.hash)
                .where(merkle_nodes.c.node > after, merkle_nodes.c.node < end)
                .order_by(merkle_nodes.c.node)
                .limit(page)
            ).all()
            if not rows:
                return
            for key, h in rows:
                if type(key) is not int:  # a REAL key SQLite kept as written
                    try:
                        as_int(key, "merkle_nodes.node")
                    except DamagedStore as problem:
                        if damaged is None:
                            raise
                        damaged(problem)
                    continue
                idx = node_id(key)[1]
                yield LevelNode(
                    idx,
                    h
                    if type(h) is bytes
                    else _column(h, f"merkle_nodes.hash of node ({level}, {idx})", idx << level, damaged),
                )
            after = rows[-1][0]

    def max_level(self, conn: Connection) -> int:
        # Bounded by the largest key, so that a key SQLite holds as TEXT (greater than any
        # integer) is not the maximum.
        v = conn.execute(
            select(func.max(merkle_nodes.c.node)).where(merkle_nodes.c.node <= (1 << 63) - 1)
        ).scalar()
        return -1 if v is None else int(v) >> NODE_LEVEL_SHIFT

    def stream_checkpoints(
        self, conn: Connection, *, damaged: Damage | None = None
    ) -> Iterator[StoredCheckpoint]:
        """The stored checkpoints in size order; damage as in ``stream_entries``."""
        after: object = -1
        while True:
            rows = conn.execute(
                select(checkpoints.c.size, checkpoints.c.root, checkpoints.c.note)
                .where(checkpoints.c.size > after)
                .order_by(checkpoints.c.size)
                .limit(500)
            ).all()
            if not rows:
                return
            for size, root, note in rows:
                if type(size) is int and type(root) is bytes and type(note) is str:
                    yield StoredCheckpoint(size, root, note)
                    continue
                try:
                    n = as_int(size, "checkpoints.size")
                except DamagedStore as problem:
                    if damaged is None:
                        raise
                    damaged(problem)
                    continue
                if type(note) is not str:
                    try:
                        note = as_text(note, "checkpoints.note", checkpoint=n)
                    except DamagedStore as problem:
                        if damaged is None:
                            raise
                        damaged(problem)
                        note = ""
                yield StoredCheckpoint(
                    size=n, root=_column(root, "checkpoints.root", None, damaged, checkpoint=n), note=note
                )
            after = rows[-1][0]

    # --- registry projection -------------------------------------------------------------

    def load_registry(
        self,
        conn: Connection,
        *,
        key_ids: Iterable[str] | None,
        party_ids: Iterable[str] | None,
        prefixes: Iterable[str] | None = (),
        codes: Iterable[str] | None = (),
    ) -> RegistryState:
        """The registry slice for these keys, parties, GS1 company prefixes (with their
        delegations) and customs codes — None: all of them."""
        reg = RegistryState()
        if key_ids is None:
            key_ids = [r[0] for r in conn.execute(select(party_keys.c.key_id))]
        if party_ids is None:
            party_ids = [r[0] for r in conn.execute(select(parties.c.id))]
        meta = dict(conn.execute(select(log_meta.c.name, log_meta.c.value)).all())
        reg.registrar = meta.get("registrar")
        reg.origin = meta.get("origin")
        reg.log_key = meta.get("log_key")
        pids = set(party_ids)
        if reg.registrar:
            pids.add(reg.registrar)
        kids = list(set(key_ids))
        for i in range(0, len(kids), IN_CHUNK):
            for r in conn.execute(select(party_keys).where(party_keys.c.key_id.in_(kids[i : i + IN_CHUNK]))):
                reg.keys[r.key_id] = KeyRecord(
                    r.key_id, r.party, bytes(r.public_key), r.valid_from, r.valid_until, r.ended_by
                )
        plist = list(pids)
        for i in range(0, len(plist), IN_CHUNK):
            chunk = plist[i : i + IN_CHUNK]
            held: dict[str, set[str]] = {}
            own_codes: dict[str, set[str]] = {}
            # One statement: a party has few prefixes and codes, so their product is small.
            rows = conn.execute(
                select(parties, gs1_prefixes.c.prefix, customs_codes.c.code)
                .outerjoin(gs1_prefixes, gs1_prefixes.c.party == parties.c.id)
                .outerjoin(customs_codes, customs_codes.c.party == parties.c.id)
                .where(parties.c.id.in_(chunk))
            ).all()
            for r in rows:
                if r.prefix is not None:
                    held.setdefault(r.id, set()).add(r.prefix)
                if r.code is not None:
                    own_codes.setdefault(r.id, set()).add(r.code)
            for r in rows:
                reg.parties[r.id] = PartyRecord(
                    r.id,
                    r.name,
                    tuple(r.roles.split(",")),
                    r.registered_seq,
                    tuple(sorted(held.get(r.id, ()))),
                    customs_codes=tuple(sorted(own_codes.get(r.id, ()))),
                    name_en=r.name_en,
                )
            for r in conn.execute(select(negative_list).where(negative_list.c.party.in_(chunk))):
                reg.negative[r.party] = (int(r.since_seq), r.reason)
        self._load_prefixes(conn, reg, prefixes)
        self._load_customs_codes(conn, reg, codes)
        return reg

    def _load_customs_codes(self, conn: Connection, reg: RegistryState, codes: Iterable[str] | None) -> None:
        q = select(customs_codes.c.code, customs_codes.c.party, customs_codes.c.since_seq)
        if codes is None:
            rows = conn.execute(q).all()
        else:
            wanted = sorted(set(codes))
            rows = []
            for i in range(0, len(wanted), IN_CHUNK):
                rows += conn.execute(q.where(customs_codes.c.code.in_(wanted[i : i + IN_CHUNK])))
        for r in rows:
            reg.customs_codes[r.code] = CustomsCodeRecord(r.code, r.party, int(r.since_seq))

    def _load_prefixes(self, conn: Connection, reg: RegistryState, prefixes: Iterable[str] | None) -> None:
        """GS1 company prefixes and their delegations, in one statement."""
        q = select(
            gs1_prefixes.c.prefix,
            gs1_prefixes.c.party,
            gs1_prefixes.c.since_seq,
            prefix_delegations.c.party.label("delegate"),
            prefix_delegations.c.since_seq.label("delegated_seq"),
            prefix_delegations.c.until,
        ).outerjoin(prefix_delegations, prefix_delegations.c.prefix == gs1_prefixes.c.prefix)
        if prefixes is None:
            rows = conn.execute(q).all()
        else:
            wanted = sorted(set(prefixes))
            if not wanted:
                return
            rows = []
            for i in range(0, len(wanted), IN_CHUNK):
                rows += conn.execute(q.where(gs1_prefixes.c.prefix.in_(wanted[i : i + IN_CHUNK])))
        for r in rows:
            reg.prefixes[r.prefix] = PrefixRecord(r.prefix, r.party, int(r.since_seq))
            if r.delegate is not None:
                reg.delegations[(r.prefix, r.delegate)] = Delegation(
                    r.prefix, r.delegate, int(r.delegated_seq), r.until
                )

    def keys_of_parties(self, conn: Connection, party_ids: Collection[str]) -> dict[str, list[KeyRecord]]:
        """party -> its keys, oldest first."""
        out: dict[str, list[KeyRecord]] = {}
        pids = sorted(set(party_ids))
        for i in range(0, len(pids), IN_CHUNK):
            for r in conn.execute(
                select(party_keys)
                .where(party_keys.c.party.in_(pids[i : i + IN_CHUNK]))
                .order_by(party_keys.c.valid_from)
            ):
                out.setdefault(r.party, []).append(
                    KeyRecord(r.key_id, r.party, bytes(r.public_key), r.valid_from, r.valid_until, r.ended_by)
                )
        return out

    def public_keys(self, conn: Connection, key_ids: Collection[str]) -> dict[str, tuple[str, bytes]]:
        """key id -> (party, public key); both never change once registered."""
        out: dict[str, tuple[str, bytes]] = {}
        kids = list(key_ids)
        for i in range(0, len(kids), IN_CHUNK):
            rows = conn.execute(
                select(party_keys.c.key_id, party_keys.c.party, party_keys.c.public_key).where(
                    party_keys.c.key_id.in_(kids[i : i + IN_CHUNK])
                )
            )
            out.update((k, (p, bytes(pk))) for k, p, pk in rows)
        return out

    def save_registry(self, conn: Connection, reg: RegistryState, *, existing: Collection[str]) -> None:
        """Write the records ``reg`` marks dirty; ``existing`` are key ids already stored."""
        if reg.registrar and "registrar" not in existing:
            conn.execute(
                insert(log_meta),
                [
                    {"name": "registrar", "value": reg.registrar},
                    {"name": "origin", "value": reg.origin or ""},
                    {"name": "log_key", "value": reg.log_key or ""},
                ],
            )
        new_parties = [reg.parties[p] for p in reg.dirty_parties]
        if new_parties:
            conn.execute(
                insert(parties),
                [
                    {
                        "id": p.id,
                        "name": p.name,
                        "roles": ",".join(p.roles),
                        "registered_seq": p.registered_seq,
                        "name_en": p.name_en,
                    }
                    for p in new_parties
                ],
            )
        for kid in reg.dirty_keys:
            k = reg.keys[kid]
            row = {
                "key_id": k.key_id,
                "party": k.party,
                "public_key": k.public_key,
                "valid_from": k.valid_from,
                "valid_until": k.valid_until,
                "ended_by": k.ended_by,
            }
            if kid in existing:
                conn.execute(
                    update(party_keys)
                    .where(party_keys.c.key_id == kid)
                    .values(valid_until=k.valid_until, ended_by=k.ended_by)
                )
            else:
                conn.execute(insert(party_keys), [row])
        for party in reg.dirty_negative:
            conn.execute(delete(negative_list).where(negative_list.c.party == party))
            if party in reg.negative:
                since, reason = reg.negative[party]
                conn.execute(insert(negative_list), [{"party": party, "since_seq": since, "reason": reason}])
        new_prefixes = [reg.prefixes[p] for p in sorted(reg.dirty_prefixes)]
        if new_prefixes:
            # A prefix is held once and for good: registrations only ever add rows.
            conn.execute(
                insert(gs1_prefixes),
                [{"prefix": r.prefix, "party": r.party, "since_seq": r.since_seq} for r in new_prefixes],
            )
        new_codes = [reg.customs_codes[c] for c in sorted(reg.dirty_customs_codes)]
        if new_codes:
            # Like a prefix, a code is held once and for good.
            conn.execute(
                insert(customs_codes),
                [{"code": r.code, "party": r.party, "since_seq": r.since_seq} for r in new_codes],
            )
        for prefix, party in sorted(reg.dirty_delegations):
            conn.execute(
                delete(prefix_delegations).where(
                    prefix_delegations.c.prefix == prefix, prefix_delegations.c.party == party
                )
            )
            d = reg.delegations.get((prefix, party))
            if d is not None:
                conn.execute(
                    insert(prefix_delegations),
                    [{"prefix": prefix, "party": party, "since_seq": d.since_seq, "until": d.until}],
                )
        for code, since_seq in reg.positive_changes.items():
            conn.execute(delete(positive_list).where(positive_list.c.hs_code == code))
            if since_seq is not None:
                conn.execute(insert(positive_list), [{"hs_code": code, "since_seq": since_seq}])
        reg.dirty_parties.clear()
        reg.dirty_keys.clear()
        reg.dirty_negative.clear()
        reg.positive_changes.clear()
        reg.dirty_prefixes.clear()
        reg.dirty_delegations.clear()
        reg.dirty_customs_codes.clear()

    # --- witness cosignatures ----------------------------------------------------------

    def newest_cosigned(self, conn: Connection) -> CosignedNote | None:
        """The newest checkpoint a witness cosigned, if any."""
        newest = select(func.max(cosignatures.c.size)).scalar_subquery()
        row = conn.execute(
            select(checkpoints.c.size, checkpoints.c.note).where(checkpoints.c.size == newest)
        ).first()
        if row is None:
            return None
        size = as_int(row[0], "checkpoints.size")
        return CosignedNote(size=size, note=as_text(row[1], "checkpoints.note", checkpoint=size))

    def newest_cosigned_on_replicas(self) -> list[CosignedNote]:
        """The newest cosigned checkpoint on each replica
        that answers; one that does not is logged and passed over. A replica is named by
        its place in SUYUAN_DB_READ (refusals reach API clients; its URL is logged)."""
        out = []
        for n, eng in enumerate(self.replicas, 1):
            where = f"read replica {n} of SUYUAN_DB_READ"
            try:
                with eng.connect() as conn:
                    got = self.newest_cosigned(conn)
            except DBAPIError as e:
                _log.warning(
                    "fencing: %s (%s) not read: %s",
                    where,
                    eng.url.render_as_string(hide_password=True),
                    str(e).splitlines()[0],
                )
                continue
            if got is not None:
                out.append(got._replace(where=where))
        return out

    def save_cosignature(
        self, conn: Connection, *, size: int, witness: str, line: str, received: str
    ) -> None:
        exists = conn.execute(
            select(cosignatures.c.size).where(cosignatures.c.size == size, cosignatures.c.witness == witness)
        ).first()
        if exists is None:
            conn.execute(
                insert(cosignatures), [{"size": size, "witness": witness, "line": line, "received": received}]
            )

    def cosignature_lines(self, conn: Connection, size: int) -> list[str]:
        return [
            r[0]
            for r in conn.execute(
                select(cosignatures.c.line)
                .where(cosignatures.c.size == size)
                .order_by(cosignatures.c.witness)
            )
        ]

    def witness_size(self, conn: Connection, witness: str) -> int:
        v = conn.execute(
            select(func.max(cosignatures.c.size)).where(cosignatures.c.witness == witness)
        ).scalar()
        return 0 if v is None else int(v)

    # --- private data ------------------------------------------------------------------

    def commitment_owners(self, conn: Connection, commitments: Collection[str]) -> dict[str, int]:
        """commitment -> the seq of the statement that first committed to it, for those
        any statement on the ledger committed to (one statement per call)."""
        rows = rows_in(
            conn,
            "SELECT commitment, seq FROM private_commitments WHERE commitment IN",
            "commitment",
            sorted(set(commitments)),
        )
        return {c: int(seq) for c, seq in rows}

    def save_commitments(self, conn: Connection, rows: Sequence[tuple[str, int]]) -> None:
        """(commitment, seq) of statements that committed to them, in seq order: one insert."""
        if rows:
            # The first wins: a rebuild replays statements that reused a commitment before
            # ``private_reused`` refused them, in seq order.
            run_many(
                conn,
                "INSERT INTO private_commitments (commitment, seq) VALUES (:commitment, :seq) "
                "ON CONFLICT DO NOTHING",
                rows,
            )

    def save_private(self, conn: Connection, rows: Sequence[tuple[str, bytes, int]]) -> None:
        # One read and one multi-row insert per batch: a batch of orders carries a blob each.
        wanted = [c for c, _, _ in rows]
        held: set[str] = set()
        for i in range(0, len(wanted), IN_CHUNK):
            held.update(
                r[0]
                for r in conn.execute(
                    select(private_blobs.c.commitment).where(
                        private_blobs.c.commitment.in_(wanted[i : i + IN_CHUNK])
                    )
                )
            )
        new = [{"commitment": c, "blob": b, "seq": s} for c, b, s in rows if c not in held]
        if new:
            conn.execute(insert(private_blobs), new)

    def private_blob(self, conn: Connection, commitment: str) -> PrivateBlob | None:
        row = conn.execute(
            select(private_blobs.c.blob, private_blobs.c.shredded).where(
                private_blobs.c.commitment == commitment
            )
        ).first()
        if row is None:
            return None
        return PrivateBlob(blob=None if row[0] is None else bytes(row[0]), shredded=row[1])

    def private_blobs_of(
        self, conn: Connection, commitments: Collection[str]
    ) -> dict[str, tuple[bytes | None, str | None]]:
        """commitment -> (blob or None once shredded, when shredded), for those held."""
        out: dict[str, tuple[bytes | None, str | None]] = {}
        wanted = sorted(set(commitments))
        for i in range(0, len(wanted), IN_CHUNK):
            for c, blob, shredded in conn.execute(
                select(private_blobs.c.commitment, private_blobs.c.blob, private_blobs.c.shredded).where(
                    private_blobs.c.commitment.in_(wanted[i : i + IN_CHUNK])
                )
            ):
                out[c] = (None if blob is None else bytes(blob)), shredded
        return out

    def shred_private(self, conn: Connection, commitment: str, *, when: str) -> int | None:
        row = conn.execute(
            select(private_blobs.c.seq).where(private_blobs.c.commitment == commitment)
        ).first()
        if row is None:
            return None
        conn.execute(
            update(private_blobs)
            .where(private_blobs.c.commitment == commitment)
            .values(blob=None, shredded=when)
        )
        return int(row[0])

    # --- maintenance and tests -----------------------------------------------------------

    def raw(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Run SQL as-is in its own transaction (tamper tests and operators' repairs)."""
        with self.engine.connect() as conn, conn.begin():
            conn.execute(text(sql), dict(params or {}))

    def drop_append_only(self) -> None:
        with self.engine.connect() as conn, conn.begin():
            for t in schema.LOG_TABLES:
                for stmt in schema.drop_append_only_ddl(self.dialect, t):
                    conn.exec_driver_sql(stmt)


__all__ = ["Store", "make_engine", "DEFAULT_URL", "OperationalError"]


class ReadPin:
    """The one read transaction of a pinned context (see ``Store.pinned``), opened lazily
    by whichever thread reads first; threads of one request take turns on it."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.lock = threading.RLock()
        self.head: Head | None = None  # the snapshot's latest checkpoint, once opened
        self.url: str | None = None  # the database it reads, once opened (no password)
        self._conn: Connection | None = None
        self._closed = False

    @property
    def opened(self) -> bool:
        return self._conn is not None

    def connection(self) -> Connection:
        with self.lock:
            if self._closed:
                raise RuntimeError("a pinned read used after its request ended")
            if self._conn is None:
                conn = self.store._connect_for_reading()
                try:
                    if self.store.dialect == "postgresql":
                        # REPEATABLE READ: one snapshot for every statement (a hot standby
                        # allows it; SERIALIZABLE it does not).
                        conn.execution_options(isolation_level="REPEATABLE READ")
                        conn.begin()
                        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                    else:
                        conn.begin()
                    self.head = self.store.head(conn)
                except BaseException:
                    conn.close()
                    raise
                self.url = conn.engine.url.render_as_string(hide_password=True)
                self._conn = conn
            return self._conn

    def close(self) -> None:
        with self.lock:
            self._closed = True
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()  # rolls the read-only transaction back


_PINNED: ContextVar[ReadPin | None] = ContextVar("suyuan_pinned_read", default=None)
