"""`tiles`: the log as C2SP tlog-tiles static files, and reading them back (for `verify
--tiles` and `monitor --tiles`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ledger.core.errors import LedgerError, MalformedInput
from ledger.core.tiles import TileFetch
from ledger.log.home import Home
from tools.cli.common import Commands, open_ledger, out


def cmd_tiles(a: argparse.Namespace, home: Home) -> int:
    from ledger.log.tiles_export import export  # see tools.cli.proofs.cmd_bundle

    res = export(open_ledger(home), Path(a.dir), full=a.full)
    assert res is not None  # waits for any other exporter
    out(res.as_dict())
    return 0


def tiles_fetch(base: str) -> TileFetch:
    """GET tiles from an http(s) URL (one kept-alive connection) or read them from a
    directory an export wrote: the bytes, or None where nothing is served."""
    # httpx (about 70 ms to import) loads only for commands that read tiles.
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


def add_tiles(sub: Commands) -> None:
    tiles_p = sub.add_parser("tiles", help="the log as C2SP tlog-tiles static files")
    tsub = tiles_p.add_subparsers(dest="tiles_command", required=True)
    s = tsub.add_parser(
        "export",
        help="write (incrementally) checkpoint and tile/ into DIR, for any web server, object store or CDN",
    )
    s.add_argument("dir")
    s.add_argument(
        "--full",
        action="store_true",
        help="write every tile again, not only what changed since the last export",
    )
    s.set_defaults(fn=cmd_tiles)
