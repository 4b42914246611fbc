"""A big batch's Ed25519 checks, done in a process beside the sequencer.

libsodium releases the GIL while it checks a signature, but a verify thread needs the GIL
back after each one, and the sequencer's thread, busy with Python, hands it over only at
its next pause (a database call, or CPython's switch interval). Measured on the bench's
appends, the verify threads of a 1,000-statement batch were still working when the
sequencer had finished the rest of the batch, and it waited for them (about a fifth of its
time). Here the batch's checks go to one helper process in one write, and their answer
comes back in one read: the helper checks on the other core while the sequencer sequences,
and neither waits for the other's GIL.

Nothing is decided differently: the helper runs ``ledger.core.signatures.verify_chunk``
over the same (number, message, signature, key) jobs. If it cannot answer (it died, or its
answer does not parse) the batch's checks are made here, in the verify threads. One batch
uses it at a time; a batch appended beside it in another thread uses the threads. It is
started on the first big batch and used from the next one on, so a batch never waits for
it to start. ``SUYUAN_SIGPROC=0`` turns it off.

The pipe protocol is this module's own, with no pickling: a request is its length (4
bytes, big-endian) and per job the message length (4 bytes), the public key (32), the
signature (64) and the message; the answer is its length, the count of jobs that did not
verify and their numbers in the request (4 bytes each).
"""

from __future__ import annotations

import os
import select
import struct
import subprocess
import sys
from collections import deque
from collections.abc import Sequence
from typing import IO

try:
    import fcntl
except ImportError:  # not POSIX: the pipe keeps its default size
    fcntl = None  # type: ignore[assignment]

from ledger.core.signatures import Job, verify_chunk
from ledger.log import helperproc

MIN_JOBS = 256  # signatures in a batch from which the helper is worth its pipe
PIPE_BYTES = 1 << 20  # Linux's default ceiling for an unprivileged pipe's buffer
_U32 = struct.Struct(">I")
_READY = b"R"


def enabled() -> bool:
    return os.environ.get("SUYUAN_SIGPROC", "1") != "0"


def encode(jobs: Sequence[Job]) -> bytes:
    """A request: per job its message length, key, signature and message."""
    parts: list[bytes] = []
    for _, message, sig, pk in jobs:
        if len(pk) != 32 or len(sig) != 64:
            raise ValueError("a key is 32 bytes and a signature 64")
        parts += (_U32.pack(len(message)), pk, sig, message)
    body = b"".join(parts)
    return _U32.pack(len(body)) + body


def decode(body: bytes) -> list[Job]:
    jobs: list[Job] = []
    at, n = 0, 0
    while at < len(body):
        (size,) = _U32.unpack_from(body, at)
        pk, sig = body[at + 4 : at + 36], body[at + 36 : at + 100]
        message = body[at + 100 : at + 100 + size]
        if len(message) != size:
            raise ValueError("a request ends inside a job")
        jobs.append((n, message, sig, pk))
        at += 100 + size
        n += 1
    return jobs


def _read_exactly(stream: IO[bytes], n: int) -> bytes:
    data = stream.read(n)
    if data is None or len(data) < n:
        raise EOFError
    return data


def serve() -> None:
    """The helper's loop: a request in on stdin, the numbers of its jobs that do not
    verify out on stdout, until stdin closes."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    stdout.write(_READY)
    stdout.flush()
    while True:
        try:
            (size,) = _U32.unpack(_read_exactly(stdin, 4))
            jobs = decode(_read_exactly(stdin, size))
        except EOFError:
            return
        bad = verify_chunk(jobs)
        answer = _U32.pack(len(bad)) + b"".join(_U32.pack(b) for b in bad)
        stdout.write(_U32.pack(len(answer)) + answer)
        stdout.flush()


class _Helper:
    def __init__(self) -> None:
        self.proc = helperproc.spawn(__name__)
        self.ready = False
        self.dead = False
        self.busy = False
        if self.proc.stdin is not None and hasattr(fcntl, "F_SETPIPE_SZ"):
            try:  # room for a batch's requests, so that sending never waits for the helper
                fcntl.fcntl(self.proc.stdin.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
            except OSError:
                pass

    def is_ready(self) -> bool:
        """Whether the helper has said it is up (without waiting for it)."""
        if not self.ready and not self.dead:
            assert self.proc.stdout is not None
            try:
                up, _, _ = select.select([self.proc.stdout], [], [], 0)
                if up:
                    if self.proc.stdout.read(1) != _READY:
                        raise EOFError
                    self.ready = True
            except (OSError, ValueError, EOFError):
                self.dead = True
        return self.ready and not self.dead

    def stop(self) -> None:
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


_slot: helperproc.Slot[_Helper] = helperproc.Slot(_Helper)


def _take() -> _Helper | None:
    """The helper, marked busy, if it is up and free; else None (and start it, once)."""
    if not enabled():
        return None
    with _slot.lock:
        helper = _slot.get_locked()
        if helper is None or helper.busy or not helper.is_ready():
            return None
        helper.busy = True
        return helper


def _give_back(helper: _Helper, *, dead: bool = False) -> None:
    with _slot.lock:
        helper.busy = False
        helper.dead = helper.dead or dead


def helper_pid() -> int | None:
    """The running helper's process id, if one runs for this process."""
    return _slot.pid()


def wait_ready(timeout: float = 30.0) -> bool:
    """Start the helper if it is not running and wait until it is up (tests, and an
    audit long enough to repay the wait); False at once if it cannot be started."""
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        helper = _take()
        if helper is not None:
            _give_back(helper)
            return True
        with _slot.lock:
            helper = _slot.helper
            if helper is None or not enabled():
                return False  # it could not be started
            ready = helper.is_ready()  # which finds out whether it ended before saying so
            if helper.dead:
                return False
            if helper.busy and ready:
                return True  # up, and checking a batch
        time.sleep(0.02)
    return False


def _answer(helper: _Helper, n: int) -> list[int]:
    """The positions, in a request of ``n`` jobs, of those that do not verify: the
    helper's next answer (raises if it cannot be read or does not parse)."""
    stdout = helper.proc.stdout
    assert stdout is not None
    (size,) = _U32.unpack(_read_exactly(stdout, 4))
    body = _read_exactly(stdout, size)
    (count,) = _U32.unpack_from(body, 0)
    if size != 4 + 4 * count:
        raise ValueError("the helper's answer has the wrong length")
    positions = [_U32.unpack_from(body, 4 + 4 * i)[0] for i in range(count)]
    if any(p >= n for p in positions):
        raise ValueError("the helper names a job it was not sent")
    return positions


class Checks:
    """Signature checks sent to the helper request by request (a batch's chunks as it is
    prepared, the audit's as it reads), their answers read oldest first. A request's jobs
    are kept only until its answer is read; if the helper fails, those not answered are
    checked in this thread. ``open`` answers None when the helper is not there to take
    them; one user at a time has it, until ``bad`` or ``close``."""

    def __init__(self, helper: _Helper) -> None:
        self.helper: _Helper | None = helper
        self.waiting: deque[tuple[list[Job], bool]] = deque()  # (jobs, sent to the helper)

    @classmethod
    def open(cls, *, wait: bool = False) -> Checks | None:
        """The helper's checks, or None; ``wait``: start the helper and wait (a few
        seconds at most) until it is up, for a read long enough to repay that."""
        if wait:
            wait_ready(10.0)
        helper = _take()
        return None if helper is None else cls(helper)

    def __len__(self) -> int:
        return len(self.waiting)

    def send(self, jobs: Sequence[Job]) -> None:
        """Queue these checks (the helper starts on them at once)."""
        kept = list(jobs)
        sent = False
        if self.helper is not None and kept:
            try:
                stdin = self.helper.proc.stdin
                assert stdin is not None
                stdin.write(encode(kept))
                stdin.flush()
                sent = True
            except (OSError, ValueError):
                self._fail()
        self.waiting.append((kept, sent))

    def _fail(self) -> None:
        if self.helper is not None:
            _give_back(self.helper, dead=True)
            self.helper = None

    def next_bad(self) -> list[int]:
        """The job numbers (as the caller gave them) of the oldest request that do not
        verify."""
        jobs, sent = self.waiting.popleft()
        if sent and self.helper is not None:
            try:
                return [jobs[p][0] for p in _answer(self.helper, len(jobs))]
            except (EOFError, OSError, ValueError, struct.error):
                self._fail()
        return verify_chunk(jobs)

    def bad(self) -> list[int]:
        """The job numbers of every request not yet answered that do not verify; the
        helper is then free for its next user."""
        out: list[int] = []
        while self.waiting:
            out += self.next_bad()
        self.close()
        return out

    def close(self) -> None:
        """Read what is still unanswered (the answers are not wanted, but the next user
        must get its own) and give the helper back."""
        while self.waiting and self.helper is not None:
            self.next_bad()
        self.waiting.clear()
        if self.helper is not None:
            _give_back(self.helper)
            self.helper = None

    cancel = close


__all__ = ["MIN_JOBS", "Checks", "decode", "enabled", "encode", "helper_pid", "serve", "wait_ready"]
