"""Secret files in SUYUAN_HOME (keys, settings): written whole or not at all, and read
back with a refusal that names the file instead of a traceback.

A key file is made in a temporary file beside it (mode 0600), flushed to disk, then
linked into place: a crash or a full disk leaves either no key file or the complete one,
and an existing key is never overwritten, not even by a concurrent writer. The directory
is flushed too, so that the new name survives a power cut.
"""

from __future__ import annotations

import base64
import binascii
import errno
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ledger.core.errors import ConfigError

SEED_BYTES = 32
# Hard links are not everywhere (some network and FAT filesystems): there the file is
# reserved with O_EXCL first and the complete one renamed over it.
_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV}


def bad_key_file(path: Path, why: str) -> ConfigError:
    return ConfigError(
        f"the key file {why}; restore it from a backup or move it away ({path})", code="bad_key_file"
    )


def write_key_file(path: Path, doc: Mapping[str, Any]) -> None:
    """Create ``path`` holding ``doc`` as JSON, atomically; FileExistsError if it exists."""
    data = (json.dumps(doc, indent=1, ensure_ascii=False) + "\n").encode()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = _written_temp(path, data)
    try:
        try:
            os.link(tmp, path)
        except OSError as e:
            if e.errno not in _NO_LINKS:
                raise
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            os.replace(tmp, path)
    finally:
        _remove(tmp)
    fsync_directory(path.parent)


def replace_file(path: Path, text: str) -> None:
    """Write ``path`` anew, atomically (settings that change, never keys)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = _written_temp(path, text.encode())
    try:
        os.replace(tmp, path)
    finally:
        _remove(tmp)
    fsync_directory(path.parent)


def read_key_file(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; FileNotFoundError if there is none, ``bad_key_file``
    if it cannot be read or is not a whole JSON object."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise bad_key_file(path, "is a directory") from None
    except OSError as e:
        raise bad_key_file(path, f"cannot be read ({e.strerror or e})") from None
    if not raw.strip():
        raise bad_key_file(path, "is empty")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise bad_key_file(path, "is not JSON (truncated or damaged)") from None
    if not isinstance(doc, dict):
        raise bad_key_file(path, "does not hold a JSON object")
    return doc


def seed_in(doc: Mapping[str, Any], path: Path, *, field: str = "seed") -> bytes:
    """The 32-byte Ed25519 seed stored base64 under ``field``."""
    value = doc.get(field)
    if not isinstance(value, str):
        raise bad_key_file(path, f"has no {field}")
    try:
        seed = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise bad_key_file(path, f"has a {field} that is not base64") from None
    if len(seed) != SEED_BYTES:
        raise bad_key_file(path, f"has a {field} of {len(seed)} bytes, not {SEED_BYTES}")
    return seed


def text_in(doc: Mapping[str, Any], path: Path, field: str) -> str:
    value = doc.get(field)
    if not isinstance(value, str) or not value:
        raise bad_key_file(path, f"has no {field}")
    return value


def fsync_directory(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # not on this platform (Windows opens no directories)
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot flush a directory; the rename itself stands
    finally:
        os.close(fd)


def _written_temp(path: Path, data: bytes) -> str:
    # mkstemp makes the file 0600 and under a name no other writer picks.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        _remove(tmp)
        # Name the file the user knows (a write on a descriptor names none).
        raise OSError(e.errno, e.strerror, str(path)) from None
    except BaseException:
        _remove(tmp)
        raise
    return tmp


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
