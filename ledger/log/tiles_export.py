"""The log as static files: ``suyuan tiles export DIR`` and ``suyuan serve --tiles-dir DIR``
write the tlog-tiles tree (``checkpoint``, ``tile/…``) that any web server, object store or
CDN can serve as it is.

Incremental: ``DIR/.suyuan-tiles.json`` remembers the tree size, root and checkpoint last
written, and a run writes only the tiles a larger tree added or widened. Atomic: every
file goes to a temporary name beside it, is flushed to disk and renamed over, so a reader
sees the old bytes or the new, never part of a file; the checkpoint goes last, after the
directories holding the new tiles are flushed too, so no published checkpoint names a
tile that is not there. Partial tiles are removed once their full tile is written (the
spec allows it; a reader still on an older checkpoint reads the full tile instead).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # not on Windows: one exporter at a time is then the operator's care
    fcntl = None  # type: ignore[assignment]

from ledger.core import merkle, tiles
from ledger.core.errors import ConfigError, NotFound
from ledger.log.sequencer import Ledger
from ledger.store import tiledb

STATE = ".suyuan-tiles.json"
LOCK = ".suyuan-tiles.lock"


@dataclass(frozen=True)
class ExportResult:
    size: int
    previous: int
    written: tuple[str, ...]  # paths relative to the directory, checkpoint last if written
    removed: tuple[str, ...]  # partial tiles dropped now that their full tile is written

    def as_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "previous": self.previous,
            "written": len(self.written),
            "checkpoint": tiles.CHECKPOINT_PATH in self.written,
            "removedPartials": len(self.removed),
        }


def _write_atomic(directory: Path, rel: str, data: bytes, touched: set[Path]) -> None:
    path = directory / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    touched.add(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _lock(directory: Path, *, wait: bool) -> int | None:
    """The exporters' lock on ``directory``: its descriptor, or None if ``wait`` is False
    and another exporter holds it."""
    fd = os.open(directory / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    if fcntl is None:
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def read_state(directory: Path) -> dict[str, Any]:
    try:
        doc = json.loads((directory / STATE).read_text())
    except FileNotFoundError:
        return {}
    except ValueError:
        raise ConfigError(
            f"{directory / STATE} is not the JSON an export writes; remove it to export the whole tree again"
        ) from None
    return doc if isinstance(doc, dict) else {}


def export(ledger: Ledger, directory: Path, *, wait: bool = True, full: bool = False) -> ExportResult | None:
    """Bring ``directory`` up to the ledger's latest checkpoint (with its cosignatures).

    ``full`` writes every tile again (a directory restored from elsewhere). Returns None
    when ``wait`` is False and another exporter is at work on the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = _lock(directory, wait=wait)
    if fd is None:
        return None
    try:
        return _export(ledger, directory, full=full)
    finally:
        os.close(fd)


def _export(ledger: Ledger, directory: Path, *, full: bool) -> ExportResult:
    store = ledger.store
    state = {} if full else read_state(directory)
    touched: set[Path] = set()
    written: list[str] = []
    # One snapshot: the checkpoint and every tile it names come from the same tree, however
    # many appends land meanwhile.
    with store.reading(snapshot=True) as conn:
        head = store.head(conn)
        if head is None:
            raise NotFound("the ledger is empty; run `suyuan init` first")
        note = head.note + "".join(store.cosignature_lines(conn, head.size))
        old = int(state.get("size", 0))
        if state:
            if old > head.size:
                raise ConfigError(
                    f"{directory} holds tiles of a tree of {old} entries, larger "
                    f"than this ledger's {head.size}: it is another log's, or this "
                    "database was rolled back"
                )
            root = merkle.root(old, lambda ids: store.fetch_nodes(conn, ids))
            if base64.b64encode(root).decode() != state.get("root"):
                raise ConfigError(
                    f"{directory} holds tiles of another tree of {old} entries than "
                    "this ledger's; export into an empty directory"
                )
        todo = tiles.new_tiles(old, head.size)
        for t in todo:
            data = tiledb.read_tile(conn, t)
            if data is None:  # the head's own tree: its nodes are committed with it
                raise NotFound(f"the store has no {t.path()} for its checkpoint of size {head.size}")
            _write_atomic(directory, t.path(), data, touched)
            written.append(t.path())
    if note != state.get("checkpoint"):
        for d in touched:
            _fsync_dir(d)
        _write_atomic(directory, tiles.CHECKPOINT_PATH, note.encode(), touched)
        _fsync_dir(directory)
        written.append(tiles.CHECKPOINT_PATH)
    removed: list[str] = []
    for t in todo:
        stale = directory / (t.path() + ".p")
        if t.full and stale.is_dir():
            removed += sorted(str(p.relative_to(directory)) for p in stale.iterdir())
            shutil.rmtree(stale)
    new_state = {
        "origin": note.split("\n", 1)[0],
        "size": head.size,
        "root": base64.b64encode(head.root).decode(),
        "checkpoint": note,
    }
    if new_state != state:
        _write_atomic(directory, STATE, json.dumps(new_state).encode(), touched)
    return ExportResult(head.size, old, tuple(written), tuple(removed))
