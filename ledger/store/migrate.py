"""Alembic, driven from code: the ledger's schema is always brought up by migrations."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    cfg = config()
    if revision == "head" and _at_head(engine, cfg):
        return  # nothing to do, and no lock taken: appenders are not made to wait
    with engine.connect() as conn:
        _serialise(conn)
        with conn.begin():
            _take_schema_lock(conn)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)


def _at_head(engine: Engine, cfg: Config) -> bool:
    with engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    return current == set(ScriptDirectory.from_config(cfg).get_heads())


def _serialise(conn: Connection) -> None:
    """Two processes migrating one database at once (two `suyuan init`) take turns: the
    second then finds the schema at head and does nothing, instead of failing halfway
    through a CREATE TABLE. SQLite: take the write lock when the transaction begins (a
    deferred transaction that read first cannot wait for it, it fails as locked)."""
    if conn.dialect.name == "sqlite":
        conn.info["begin_mode"] = "IMMEDIATE"


def _take_schema_lock(conn: Connection) -> None:
    # PostgreSQL: the appenders' advisory lock of this schema (see Store.writing).
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(current_schema()))"))


def downgrade(engine: Engine, revision: str) -> None:
    cfg = config()
    with engine.connect() as conn, conn.begin():
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)
