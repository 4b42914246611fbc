"""API settings, from the environment by default (see README, Configuration)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from api.visitors import Network, parse_proxies
from ledger.log.home import Home, default_home
from ledger.queries.scans import batch_ms
from ledger.store.db import DEFAULT_URL, split_read_urls


@dataclass(frozen=True)
class Settings:
    db_url: str = DEFAULT_URL
    # Read replicas (SUYUAN_DB_READ): queries, pages, proofs and tiles read from them;
    # every write goes to db_url.
    db_read: tuple[str, ...] = ()
    home: Path | None = None
    base_url: str = "http://127.0.0.1:8000"
    dev: bool = False
    # Peers whose X-Forwarded-For and X-Region headers are believed (see api/visitors.py).
    trusted_proxies: tuple[Network, ...] = ()
    # The published log verifier key pages pin (SUYUAN_LOG_KEY); None: the genesis entry's.
    log_key: str | None = None
    tiles_dir: Path | None = None  # kept current with the log's static tiles (api/tiles.py)
    # How long a page's scan may wait to be written with others (SUYUAN_SCAN_BATCH_MS,
    # ledger/queries/scans.py ScanWriter); 0: each scan is written in its own request.
    scan_batch_ms: int = 0

    @classmethod
    def from_env(cls, *, dev: bool = False) -> Settings:
        home = default_home()
        return cls(
            db_url=os.environ.get("SUYUAN_DB") or DEFAULT_URL,
            db_read=split_read_urls(os.environ.get("SUYUAN_DB_READ")),
            home=home,
            log_key=Home(home).published_log_key(),
            base_url=(os.environ.get("SUYUAN_BASE_URL") or "http://127.0.0.1:8000").rstrip("/"),
            dev=dev,
            trusted_proxies=parse_proxies(os.environ.get("SUYUAN_TRUSTED_PROXIES", "")),
            tiles_dir=Path(os.environ["SUYUAN_TILES_DIR"]) if os.environ.get("SUYUAN_TILES_DIR") else None,
            scan_batch_ms=batch_ms(),
        )
