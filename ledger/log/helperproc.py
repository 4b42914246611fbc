"""One helper process per appending process: how the sequencer's helpers (signature checks,
``ledger.log.sigproc``; event facts, ``ledger.log.offload``) are started, kept and stopped.

A helper is ``python -c "import <module> as m; m.serve()"``, so no caller's ``__main__`` is
run again, with pipes to its stdin and stdout. It is started on first use and the caller
goes on without it until it is up; one that died, or that belongs to the process this one
was forked from, is replaced on the next use; each is stopped at exit.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Generic, Protocol, TypeVar


def spawn(module: str) -> subprocess.Popen[bytes]:
    """The helper process of ``module`` (its ``serve()``), with pipes to it."""
    root = Path(__file__).resolve().parents[2]  # where the ledger package lives
    return subprocess.Popen(
        [sys.executable, "-c", f"import {module} as m; m.serve()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])},
    )


class Helper(Protocol):
    dead: bool
    proc: subprocess.Popen[bytes]

    def stop(self) -> None: ...


H = TypeVar("H", bound=Helper)


class Slot(Generic[H]):
    """Where this process keeps its one helper of a kind (made by ``make``)."""

    def __init__(self, make: Callable[[], H]) -> None:
        self.make = make
        self.lock = threading.Lock()
        self.helper: H | None = None
        self.owner = 0  # the pid that started it: a forked child does not inherit it
        self.registered = False

    def get_locked(self) -> H | None:
        """With ``lock`` held: the helper, or None if it is only being started now (or
        cannot be). A dead helper, or one of another process, is replaced."""
        helper = self.helper
        if helper is not None and (self.owner != os.getpid() or helper.dead):
            if self.owner == os.getpid():
                helper.stop()
            self.helper = helper = None
        if helper is None:
            try:
                self.helper, self.owner = self.make(), os.getpid()
            except OSError:
                return None
            if not self.registered:
                atexit.register(self.shutdown)
                self.registered = True
            return None
        return helper

    def get(self) -> H | None:
        with self.lock:
            return self.get_locked()

    def shutdown(self) -> None:
        """At exit: the helper stopped and reaped."""
        with self.lock:
            helper, self.helper = self.helper, None
        if helper is not None and self.owner == os.getpid():
            helper.stop()

    def pid(self) -> int | None:
        """The running helper's process id, if one runs for this process."""
        helper = self.helper
        alive = helper is not None and self.owner == os.getpid() and not helper.dead
        return helper.proc.pid if alive and helper is not None else None


__all__ = ["Helper", "Slot", "spawn"]
