"""Rewriting history through SQL that is not an UPDATE or DELETE: SQLite's REPLACE deletes
the row it replaces without firing DELETE triggers, and upserts and MERGE update rows. Each
is refused on every log table, and the ledger is unchanged after it."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from ledger.log.audit import audit
from ledger.store.migrate import upgrade
from ledger.store.schema import LOG_TABLES
from tests.support import World

COLUMNS = {
    "entries": "seq, leaf_hash, statement_hash, kind, signer, entry",
    "merkle_nodes": "node, hash",
    "checkpoints": "size, root, note, time",
}
KEY = {"entries": "seq", "merkle_nodes": "node", "checkpoints": "size"}
# A forged hash, in each dialect's spelling.
BLOB = {"sqlite": "randomblob(32)", "postgresql": "decode(repeat('ab', 32), 'hex')"}
# The row at key 2 (entry 2, the leaf node of entry 2, the checkpoint of size 2) written
# back with one column changed, and that change as a SET clause.
CHANGED_ROW = {
    "entries": "SELECT seq, leaf_hash, statement_hash, 'attest', signer, entry FROM entries WHERE seq = 2",
    "merkle_nodes": "SELECT node, {blob} FROM merkle_nodes WHERE node = 2",
    "checkpoints": "SELECT size, root, 'forged note', time FROM checkpoints WHERE size = 2",
}
CHANGE = {
    "entries": "kind = 'attest'",
    "merkle_nodes": "hash = {blob}",
    "checkpoints": "note = 'forged note'",
}

SQLITE_ATTACKS = {
    "insert-or-replace": "INSERT OR REPLACE INTO {t} ({cols}) {row}",
    "replace-into": "REPLACE INTO {t} ({cols}) {row}",
    # WHERE true: SQLite's grammar needs it between INSERT … SELECT and ON CONFLICT.
    "upsert": "INSERT INTO {t} ({cols}) {row} AND true ON CONFLICT ({key}) DO UPDATE SET {change}",
    "update-or-replace": "UPDATE OR REPLACE {t} SET {key} = 2 WHERE {key} = 1",
}
POSTGRES_ATTACKS = {
    "upsert": "INSERT INTO {t} ({cols}) {row} ON CONFLICT ({key}) DO UPDATE SET {change}",
    "merge-update": "MERGE INTO {t} USING (SELECT 2 AS k) s ON {t}.{key} = s.k "
    "WHEN MATCHED THEN UPDATE SET {change}",
    "merge-delete": "MERGE INTO {t} USING (SELECT 2 AS k) s ON {t}.{key} = s.k WHEN MATCHED THEN DELETE",
}
# db_url is parametrised here, not by its fixture: each dialect has its own attacks.
CASES = [pytest.param("sqlite", t, a, id=f"sqlite-{t}-{a}") for a in SQLITE_ATTACKS for t in LOG_TABLES] + [
    pytest.param("postgres", t, a, id=f"postgres-{t}-{a}", marks=pytest.mark.postgres)
    for a in POSTGRES_ATTACKS
    for t in LOG_TABLES
]


def _snapshot(w: World) -> dict[str, list[tuple[object, ...]]]:
    with w.store.engine.connect() as conn:
        return {
            t: [tuple(r) for r in conn.execute(sa.text(f"SELECT {COLUMNS[t]} FROM {t} ORDER BY {KEY[t]}"))]
            for t in LOG_TABLES
        }


def _sql(dialect: str, table: str, attack: str) -> str:
    template = (SQLITE_ATTACKS if dialect == "sqlite" else POSTGRES_ATTACKS)[attack]
    blob = BLOB["sqlite" if dialect == "sqlite" else "postgresql"]
    return template.format(
        t=table,
        cols=COLUMNS[table],
        key=KEY[table],
        row=CHANGED_ROW[table].format(blob=blob),
        change=CHANGE[table].format(blob=blob),
    )


@pytest.fixture
def ledger_of_five(world: World) -> World:
    party, key = world.register()
    world.append_events(party, key, 3)
    assert world.ledger.size() == 5
    return world


@pytest.mark.parametrize(("db_url", "table", "attack"), CASES, indirect=["db_url"])
def test_rewriting_a_log_row_is_refused(ledger_of_five: World, table: str, attack: str) -> None:
    w = ledger_of_five
    before = _snapshot(w)
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        w.store.raw(_sql(w.store.dialect, table, attack))
    assert _snapshot(w) == before
    assert w.ledger.size() == 5
    assert audit(w.store).ok


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_replace_with_another_seq_but_an_existing_statement_hash_is_refused(ledger_of_five: World) -> None:
    """REPLACE also deletes the row that holds a unique statement hash under another seq."""
    w = ledger_of_five
    before = _snapshot(w)
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        w.store.raw(
            "REPLACE INTO entries (seq, leaf_hash, statement_hash, kind, signer, entry) "
            "SELECT 5, leaf_hash, statement_hash, kind, signer, entry "
            "FROM entries WHERE seq = 2"
        )
    assert _snapshot(w) == before
    assert audit(w.store).ok


def test_a_new_row_at_the_end_is_still_an_insert(ledger_of_five: World) -> None:
    """The trigger refuses only a row that meets an existing key: appends go on."""
    w = ledger_of_five
    party, key = w.register()
    w.append_events(party, key, 2)
    assert w.ledger.size() == 8
    assert audit(w.store).ok


def test_migration_0007_protects_a_ledger_made_before_it(db_url: str) -> None:
    """A ledger at revision 0006 (no REPLACE trigger; owner a VARCHAR(64) on PostgreSQL) gets
    the trigger and the wider columns from the upgrade; the downgrade takes them away."""
    from ledger.store.db import Store

    store = Store(db_url)
    try:
        upgrade(store.engine, "0006")
        if store.dialect == "sqlite":
            # What revision 0006 created before this change: no INSERT trigger.
            with store.engine.connect() as conn, conn.begin():
                for t in LOG_TABLES:
                    conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {t}_no_replace")
        else:
            with store.engine.connect() as conn, conn.begin():
                for table, column in (("current_state", "owner"), ("finding_parties", "party")):
                    conn.exec_driver_sql(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE VARCHAR(64)")
        old = (False, None) if store.dialect == "sqlite" else (None, 64)
        assert _protection(store) == old
        upgrade(store.engine)
        assert _protection(store) == ((True, None) if store.dialect == "sqlite" else (None, None))
        from ledger.store.migrate import downgrade

        downgrade(store.engine, "0006")
        assert _protection(store) == old
    finally:
        store.dispose()


def _protection(store: object) -> tuple[bool | None, int | None]:
    """(whether every log table has its REPLACE trigger, on SQLite; the owner column's
    length limit, on PostgreSQL)."""
    from ledger.store.db import Store

    assert isinstance(store, Store)
    with store.engine.connect() as conn:
        if store.dialect == "sqlite":
            names = {
                r[0] for r in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            }
            return {f"{t}_no_replace" for t in LOG_TABLES} <= names, None
        lengths = {
            r[0]
            for r in conn.exec_driver_sql(
                "SELECT character_maximum_length FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND ((table_name = 'current_state' AND "
                "column_name = 'owner') OR (table_name = 'finding_parties' AND column_name = 'party'))"
            )
        }
        assert len(lengths) == 1
        return None, lengths.pop()
