"""API settings, from the environment by default (see README, Configuration)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ledger.home import default_home
from ledger.store.db import DEFAULT_URL


@dataclass(frozen=True)
class Settings:
    db_url: str = DEFAULT_URL
    home: Path | None = None
    base_url: str = "http://127.0.0.1:8000"
    dev: bool = False
    tiles_dir: Path | None = None  # kept current with the log's static tiles (api/tiles.py)

    @classmethod
    def from_env(cls, *, dev: bool = False) -> Settings:
        return cls(
            db_url=os.environ.get("SUYUAN_DB") or DEFAULT_URL,
            home=default_home(),
            base_url=(os.environ.get("SUYUAN_BASE_URL") or "http://127.0.0.1:8000").rstrip("/"),
            dev=dev,
            tiles_dir=Path(os.environ["SUYUAN_TILES_DIR"]) if os.environ.get("SUYUAN_TILES_DIR")
            else None,
        )
