"""The pure per-event work of a big batch, done in a process beside the sequencer.

Appending is bound by the sequencer's one Python thread: signature checks already run on
the other core (``ledger.core.signatures`` releases the GIL), but an event's schema check,
the codes it names (``event_facts``) and its CBV 2.0 capture key (``capture_key``) are
pure Python, about a quarter of the thread's work per event. For a batch of at least
``OFFLOAD_MIN`` events they are worked out in one helper process from the statements'
canonical bytes, chunk by chunk, while the sequencer goes on checking the rest; what comes
back is small (codes and a key per event).

Nothing is decided there: an event the helper could not derive (its body is refused, or
anything else went wrong) is derived again in the sequencer's thread, which raises the
same error it always did, so refusals and their order do not depend on where the work
ran. The helper (``python -c``, importing this module: no caller's ``__main__`` is run
again) is started on the first big batch and used from the next one on, so a batch never
waits for it to start; if it dies, what it had not answered is derived in the thread and a
new helper is started for the next big batch.

It is off unless ``SUYUAN_OFFLOAD=1``: on this project's 2-core machine, with nothing else
running, ``bench ledger`` appended faster without it (one submitter 6,327/s against 5,941;
two 7,582 against 6,252; PostgreSQL's two 4,868 against 3,855), because the verify threads
already keep the second core busy and the helper's pickling and pipes cost more than the
work they move. It pays only where a core would otherwise be idle.
"""

from __future__ import annotations

import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from typing import IO, Any, NamedTuple

import orjson

from ledger.core.errors import LedgerError
from ledger.epcis.event_hash import CaptureKey, capture_key
from ledger.epcis.stages import EventCodes
from ledger.log import helperproc
from ledger.log.verifier import event_facts

OFFLOAD_MIN = 256  # events in a batch from which the helper process is worth its IPC
CHUNK = 128  # events per job: small enough that the first results come back early
_LENGTH = struct.Struct(">I")


class Derived(NamedTuple):
    """What an event says and its capture key, as the helper worked them out."""

    codes: EventCodes
    capture: CaptureKey


def derive(statements: Sequence[bytes]) -> list[Derived | None]:
    """Per statement (its canonical bytes), its event's ``Derived``, or None where the
    sequencer must derive it itself (to raise the error it would have raised)."""
    out: list[Derived | None] = []
    for raw in statements:
        try:
            body = orjson.loads(raw)["body"]
            out.append(Derived(event_facts(body), capture_key(body)))
        except (LedgerError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            out.append(None)
    return out


def _read(stream: IO[bytes]) -> Any:
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        raise EOFError
    (n,) = _LENGTH.unpack(head)
    data = stream.read(n)
    if len(data) < n:
        raise EOFError
    return pickle.loads(data)


def _write(stream: IO[bytes], value: object) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(data)) + data)
    stream.flush()


def serve() -> None:
    """The helper's loop: a job (a list of statement bytes) in on stdin, its ``derive``
    out on stdout, until stdin closes. Only its parent writes to it."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    _write(stdout, "ready")
    while True:
        try:
            job = _read(stdin)
        except EOFError:
            return
        _write(stdout, derive(job))


class _Helper:
    """The helper process, answering jobs in the order they were sent. One thread writes
    the jobs and one reads the answers, so neither the sequencer nor the helper ever waits
    on a full pipe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.outbox: queue.SimpleQueue[list[bytes] | None] = queue.SimpleQueue()
        self.waiting: deque[Future[list[Derived | None]]] = deque()
        self.ready = threading.Event()
        self.dead = False
        self.proc = helperproc.spawn(__name__)
        self.reader = threading.Thread(target=self._answers, name="suyuan-offload-in", daemon=True)
        self.reader.start()
        self.sender = threading.Thread(target=self._send, name="suyuan-offload-out", daemon=True)
        self.sender.start()

    def _answers(self) -> None:
        assert self.proc.stdout is not None
        try:
            if _read(self.proc.stdout) != "ready":
                raise EOFError
            self.ready.set()
            while True:
                got = _read(self.proc.stdout)
                with self.lock:
                    future = self.waiting.popleft()
                future.set_result(got)
        except (EOFError, OSError, pickle.UnpicklingError, IndexError):
            pass
        with self.lock:
            self.dead = True
            waiting, self.waiting = list(self.waiting), deque()
        for future in waiting:
            future.set_exception(EOFError("the offload helper stopped"))

    def submit(self, job: list[bytes]) -> Future[list[Derived | None]] | None:
        """Queue ``job``; its answer arrives on the future. Never blocks: a thread of its
        own writes jobs to the helper, so the sequencer goes on while the pipe is full."""
        future: Future[list[Derived | None]] = Future()
        with self.lock:
            if self.dead:
                return None
            self.waiting.append(future)
            self.outbox.put(job)
        return future

    def _send(self) -> None:
        assert self.proc.stdin is not None
        while True:
            job = self.outbox.get()
            if job is None:
                break
            try:
                _write(self.proc.stdin, job)
            except (OSError, ValueError):
                break  # the helper is gone: the reader fails what waits
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def stop(self) -> None:
        self.outbox.put(None)  # the sender closes the helper's input after what is queued
        self.sender.join(timeout=5)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(timeout=5)  # it ends at the helper's end of output
        if self.proc.stdout is not None and not self.reader.is_alive():
            self.proc.stdout.close()


_slot: helperproc.Slot[_Helper] = helperproc.Slot(_Helper)


def _get() -> _Helper | None:
    """The helper if it is up; otherwise start it (once) and answer None for now: a batch
    never waits for it to start."""
    helper = _slot.get()
    return helper if helper is not None and helper.ready.is_set() else None


def wait_ready(timeout: float = 30.0) -> bool:
    """Start the helper if it is not running and wait until it answers (tests, and a
    server that wants its first big batch helped too)."""
    _get()
    helper = _slot.helper
    return helper is not None and helper.ready.wait(timeout) and _get() is helper


def helper_pid() -> int | None:
    """The running helper's process id, if one runs for this process."""
    return _slot.pid()


def enabled() -> bool:
    return os.environ.get("SUYUAN_OFFLOAD", "0") == "1"


class Offload:
    """The jobs of one batch: ``add`` events as they are checked, ``results`` at the end."""

    def __init__(self, events: int) -> None:
        self.helper = _get() if events >= OFFLOAD_MIN and enabled() else None
        self.jobs: list[tuple[list[int], Future[list[Derived | None]]]] = []
        self.pending: list[int] = []
        self.raws: list[bytes] = []

    @property
    def active(self) -> bool:
        return self.helper is not None

    def add(self, index: int, statement_bytes: bytes) -> None:
        """The event at ``index`` of the batch, to be derived by the helper."""
        self.pending.append(index)
        self.raws.append(statement_bytes)
        if len(self.pending) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        if self.helper is None or not self.pending:
            return
        job = self.helper.submit(self.raws)
        if job is not None:
            self.jobs.append((self.pending, job))
        self.pending, self.raws = [], []

    def cancel(self) -> None:
        """Results no longer wanted: they are read and dropped as they come."""
        self.jobs = []

    def results(self) -> dict[int, Derived]:
        """Index in the batch -> what the helper derived; an index missing here (refused
        there, or the helper died) is derived by the caller."""
        self.flush()
        out: dict[int, Derived] = {}
        for indexes, job in self.jobs:
            try:
                got = job.result()
            except EOFError:
                continue
            for i, d in zip(indexes, got, strict=True):
                if d is not None:
                    out[i] = d
        return out


__all__ = [
    "CHUNK",
    "OFFLOAD_MIN",
    "Derived",
    "Offload",
    "derive",
    "enabled",
    "helper_pid",
    "serve",
    "wait_ready",
]
