"""The statements the store hands the driver itself: written with named parameters,
compiled once per dialect, never rewritten as text — so what the SQL says literally (a
``?``, a ``%``, PostgreSQL's JSONB ``?`` operator) is what runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from ledger.store import scansdb
from ledger.store.db import CheckpointRow, EntryRow, NodeRow, Store
from ledger.store.driver import IN_CHUNK, bound, rows_in, run, run_many
from tests.conftest import fresh_schema_url

_INSERT_MARK = "INSERT INTO code_marks (code, mark, seq, utc) VALUES (:code, :mark, :seq, :utc)"


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store(db_url)
    s.migrate()
    yield s
    s.dispose()


def test_statements_compile_to_the_drivers_own_placeholders(store: Store) -> None:
    with store.reading() as conn:
        b = bound(conn, "SELECT :a, '?', '%', :b, :a")
    if store.dialect == "postgresql":
        assert b.sql == "SELECT %s, '?', '%%', %s, %s"
    else:
        assert b.sql == "SELECT ?, '?', '%', ?, ?"
    assert b.names == ("a", "b", "a")


def test_a_literal_question_mark_or_percent_means_what_it_says(store: Store) -> None:
    with store.writing() as conn:
        rows = run(conn, "SELECT 'what?', '100%', :n, 'a?b' || :s", {"n": 7, "s": "?%"})
    assert [tuple(r) for r in rows] == [("what?", "100%", 7, "a?b?%")]


def test_a_scan_with_question_marks_in_its_values_is_stored_as_sent(store: Store) -> None:
    code = "https://id.example/01/09506000134352/21/a?b%c"
    with store.writing() as conn:
        scansdb.insert_scan(
            conn, code=code, time="2026-12-05T00:00:00Z", region="?", client="%s", visitor="?"
        )
        rows = run(conn, "SELECT code, region, client FROM scans WHERE code = :code", {"code": code})
    assert [tuple(r) for r in rows] == [(code, "?", "%s")]


def test_lists_expand_past_one_chunk_and_an_empty_list_matches_nothing(store: Store) -> None:
    n = IN_CHUNK * 2 + 7
    marks = [(f"c{i}", "recalled", i, "t") for i in range(n)]
    with store.writing() as conn:
        run_many(
            conn, "INSERT INTO code_marks (code, mark, seq, utc) VALUES (:code, :mark, :seq, :utc)", marks
        )
        got = rows_in(conn, "SELECT code, seq FROM code_marks WHERE code IN", "code", [c for c, *_ in marks])
        none = run(conn, "SELECT code FROM code_marks WHERE code IN :codes", {"codes": []}, lists=["codes"])
        some = run(
            conn,
            "SELECT seq FROM code_marks WHERE code IN :codes AND mark = :mark AND seq < :below ORDER BY seq",
            {"codes": ["c1", "c5", "c9", "nope"], "mark": "recalled", "below": 9},
            lists=["codes"],
        )
    assert sorted(int(s) for _, s in got) == list(range(n))
    assert none == []
    assert [int(r[0]) for r in some] == [1, 5]


def test_a_statement_of_lists_only_runs_on_each_database_with_its_own_placeholders(
    store: Store, tmp_path: Path
) -> None:
    """Such a statement compiles to the same text for every driver: its expansion is the
    driver's own all the same, whichever database ran it first in the process."""
    sql = "SELECT code FROM code_marks WHERE code IN :codes ORDER BY code"
    other = Store(f"sqlite:///{tmp_path}/other.db")
    try:
        other.migrate()
        for s in (other, store):
            with s.writing() as conn:
                run_many(conn, _INSERT_MARK, [("a", "recalled", 1, "t"), ("b", "recalled", 2, "t")])
                got = run(conn, sql, {"codes": ["b", "a", "z"]}, lists=["codes"])
            assert [r[0] for r in got] == ["a", "b"]
    finally:
        other.dispose()


def test_parameters_by_position_are_refused(store: Store) -> None:
    """A statement written with ``?`` and its values in order would run on SQLite alone, and
    silently with nothing bound where the text has no parameter: refused by type."""
    with store.reading() as conn, pytest.raises(TypeError, match="by name"):
        run(conn, "SELECT seq FROM entries WHERE seq = ?", (1,))  # type: ignore[arg-type]


class _Swapped(NamedTuple):
    mark: str
    code: str
    seq: int
    utc: str


def test_records_whose_fields_are_not_the_statements_parameters_are_refused(store: Store) -> None:
    with store.writing() as conn:
        with pytest.raises(ValueError, match="do not match"):
            run_many(
                conn,
                _INSERT_MARK,
                [_Swapped(mark="recalled", code="c", seq=1, utc="t")],
            )
        with pytest.raises(ValueError, match="names each parameter once"):
            run_many(
                conn, "INSERT INTO code_marks (code, mark, seq, utc) VALUES (:a, :a, :b, :c)", [(1, 2, 3)]
            )
        assert run(conn, "SELECT COUNT(*) FROM code_marks")[0][0] == 0


def test_append_rows_are_written_by_name(store: Store) -> None:
    with store.writing() as conn:
        store.append_rows(
            conn,
            entry_rows=[
                EntryRow(
                    seq=0, leaf_hash=b"L" * 32, statement_hash=b"S" * 32, kind="k?", signer="s%", entry=b"e"
                )
            ],
            node_rows=[NodeRow(node=0, hash=b"N" * 32)],
            checkpoint_row=CheckpointRow(size=1, root=b"R" * 32, note="n?%", time="t"),
        )
    with store.reading() as conn:
        head = store.head(conn)
        rows = run(conn, "SELECT seq, leaf_hash, statement_hash, kind, signer, entry FROM entries")
        nodes = store.fetch_nodes(conn, [(0, 0)])
    assert head is not None and (head.size, head.root, head.note, head.time) == (1, b"R" * 32, "n?%", "t")
    assert [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in rows] == [
        (0, b"L" * 32, b"S" * 32, "k?", "s%", b"e")
    ]
    assert nodes == {(0, 0): b"N" * 32}


@pytest.mark.postgres
def test_the_jsonb_question_mark_operator_runs_on_postgresql(pg_database: str) -> None:
    store = Store(fresh_schema_url(pg_database))
    try:
        store.migrate()
        with store.writing() as conn:
            rows = run(
                conn,
                "SELECT CAST(:doc AS jsonb) ? 'k', CAST(:doc AS jsonb) ? 'z', "
                "CAST(:doc AS jsonb) ?| ARRAY['z', 'k'], :tail",
                {"doc": '{"k": 1}', "tail": "?"},
            )
        assert [tuple(r) for r in rows] == [(True, False, True, "?")]
    finally:
        store.dispose()


def test_plain_inserts_of_many_rows_are_copies_on_postgresql_and_say_the_same() -> None:
    """``run_many`` sends a plain INSERT as a COPY on PostgreSQL; anything else (an upsert,
    parameters in another order than the columns, expressions) stays an INSERT."""
    from ledger.store.driver import _copy_of

    assert _copy_of(_INSERT_MARK) == "COPY code_marks (code, mark, seq, utc) FROM STDIN"
    assert _copy_of(_INSERT_MARK + " ON CONFLICT DO NOTHING") is None
    assert _copy_of("INSERT INTO code_marks (code, mark) VALUES (:mark, :code)") is None
    assert _copy_of("INSERT INTO code_marks (code, mark) VALUES (:code, lower(:mark))") is None
    assert _copy_of("INSERT INTO code_marks (code, mark) SELECT code, mark FROM x") is None


def test_rows_written_by_run_many_read_back_as_written(store: Store) -> None:
    """Values COPY's text format gives meaning to (tab, newline, backslash, its NULL marker
    \\N written as text), NULLs, non-ASCII text and negative 64-bit integers come back as
    they were sent, on both databases."""
    awkward = ["a\tb", "line\nbreak", "back\\slash", "\\N", "溯源 ✓", "", "x" * 5000]
    docs = [
        (
            "order",
            f"id-{i}",
            i,
            "uscc:x",
            text,
            None if i % 2 else text[:80],
            i if i % 3 else None,
            None,
            text,
        )
        for i, text in enumerate(awkward)
    ]
    keys = [(i, text or "k", -(2**63) + i, "uscc:x", text[:96], i % 2) for i, text in enumerate(awkward)]
    with store.writing() as conn:
        run_many(
            conn,
            "INSERT INTO trade_documents (type, id, seq, signer, order_id, buyer, year, value, doc) "
            "VALUES (:type, :id, :seq, :signer, :order_id, :buyer, :year, :value, :doc)",
            docs,
        )
        run_many(
            conn,
            "INSERT INTO event_keys (seq, event_key, key_id, signer, event_hash, declared) "
            "VALUES (:seq, :event_key, :key_id, :signer, :event_hash, :declared)",
            keys,
        )
    with store.reading() as conn:
        got_docs = run(
            conn, "SELECT type, id, seq, signer, order_id, buyer, year, value, doc FROM trade_documents"
        )
        got_keys = run(conn, "SELECT seq, event_key, key_id, signer, event_hash, declared FROM event_keys")
    assert sorted(tuple(r) for r in got_docs) == sorted(docs)
    assert sorted(tuple(r) for r in got_keys) == sorted(keys)
