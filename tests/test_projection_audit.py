"""``suyuan audit`` checks the projections against a rebuild from the entries (issue 10,
item 2, second half): someone with write access to the database edits or deletes
projection rows, which no signature covers; the audit names the table and the first seq
where it parts from the entries, and ``suyuan reindex`` repairs it. SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ledger.store.driver import run
from tests.pagechain import FormulaChain
from tests.support import World, new_uscc

REPO = Path(__file__).resolve().parent.parent
MESSAGE = "projection does not match a rebuild from the entries; `suyuan reindex` rebuilds it"


def suyuan(w: World, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.cli", *args],
        cwd=REPO,
        text=True,
        capture_output=True,
        timeout=300,
        env={"SUYUAN_DB": w.url, "SUYUAN_HOME": str(w.home.path), "PATH": os.environ.get("PATH", "")},
    )


def audit_lines(w: World) -> tuple[int, list[str], dict[str, Any]]:
    got = suyuan(w, "audit")
    return got.returncode, got.stderr.splitlines()[:-1], json.loads(got.stdout)


def one(w: World, sql: str, **params: Any) -> Any:
    with w.store.reading() as conn:
        rows = run(conn, sql, params)
    assert rows and rows[0][0] is not None, sql
    return rows[0][0]


Attack = Callable[[World, dict[str, Any]], tuple[str, int]]
"""Tampers with the database; returns (the table, the seq the audit must name)."""


def fake_producer_name(w: World, c: dict[str, Any]) -> tuple[str, int]:
    w.store.raw("UPDATE parties SET name = 'Fake', name_en = 'Fake' WHERE id = :p", {"p": c["producer"]})
    return "parties", one(w, "SELECT registered_seq FROM parties WHERE id = :p", p=c["producer"])


def delete_recall_event(w: World, c: dict[str, Any]) -> tuple[str, int]:
    w.store.raw("DELETE FROM events WHERE seq = :s", {"s": c["recall"]})
    return "events", c["recall"]


def delete_recall_idents(w: World, c: dict[str, Any]) -> tuple[str, int]:
    w.store.raw("DELETE FROM ident_entries WHERE seq = :s", {"s": c["recall"]})
    return "ident_entries", c["recall"]


def restage_an_event(w: World, c: dict[str, Any]) -> tuple[str, int]:
    seq = one(w, "SELECT max(seq) FROM events WHERE stage <> 'production'")
    w.store.raw(
        "UPDATE events SET stage = 'production', activity = 'commissioning' WHERE seq = :s", {"s": seq}
    )
    return "events", seq


def delete_a_finding(w: World, c: dict[str, Any]) -> tuple[str, int]:
    fid, seq = c["finding"]
    w.store.raw("DELETE FROM findings WHERE id = :f", {"f": fid})
    return "findings", seq


def unrecall_a_code(w: World, c: dict[str, Any]) -> tuple[str, int]:
    seq = one(w, "SELECT min(seq) FROM code_marks WHERE mark = 'recalled'")
    w.store.raw("DELETE FROM code_marks WHERE mark = 'recalled'")
    return "code_marks", seq


def resell_a_tin(w: World, c: dict[str, Any]) -> tuple[str, int]:
    seq = one(w, "SELECT last_seq FROM current_state WHERE code = :c", c=c["sold"])
    w.store.raw("UPDATE current_state SET sold = 0, disposition = 'active' WHERE code = :c", {"c": c["sold"]})
    return "current_state", seq


def forge_master_data_signer(w: World, c: dict[str, Any]) -> tuple[str, int]:
    seq = one(w, "SELECT min(seq) FROM master_data")
    w.store.raw("UPDATE master_data SET signer = :s WHERE seq = :q", {"s": c["producer"] + "x", "q": seq})
    return "master_data", seq


ATTACKS: dict[str, Attack] = {
    "party name": fake_producer_name,
    "recall event row": delete_recall_event,
    "recall ident rows": delete_recall_idents,
    "event stage": restage_an_event,
    "finding": delete_a_finding,
    "recall mark": unrecall_a_code,
    "current state": resell_a_tin,
    "master data": forge_master_data_signer,
}


@pytest.mark.parametrize("attack", ATTACKS)
def test_audit_names_an_edited_projection_and_reindex_repairs_it(world: World, attack: str) -> None:
    chain = FormulaChain(world)
    built = chain.build()
    chain.build_recalled()
    chain.describe()
    c = {
        "producer": chain.producer,
        "sold": built["sold"],
        "recall": one(world, "SELECT seq FROM events WHERE stage = 'recall'"),
        "finding": tuple(
            next(iter(run_rows(world, "SELECT id, seq FROM findings WHERE source = 'entry' ORDER BY seq")))
        ),
    }
    rc, lines, rep = audit_lines(world)
    assert rc == 0 and rep["ok"] and lines == [], lines

    table, seq = ATTACKS[attack](world, c)
    rc, lines, rep = audit_lines(world)
    assert rc == 1, lines
    assert f"seq {seq}: the {table} {MESSAGE}" in lines, lines
    # Each table is named once, at its first difference, and nothing else is blamed.
    assert all(MESSAGE in line for line in lines), lines
    assert len({line.split(": the ")[1] for line in lines}) == len(lines), lines
    assert {"seq": seq, "checkpoint": None, "problem": f"the {table} {MESSAGE}"} in rep["problems"]

    fixed = suyuan(world, "reindex")
    assert fixed.returncode == 0, fixed.stderr
    rc, lines, rep = audit_lines(world)
    assert rc == 0 and rep["ok"] and lines == [], lines


def run_rows(w: World, sql: str) -> list[tuple[Any, ...]]:
    with w.store.reading() as conn:
        return [tuple(r) for r in run(conn, sql)]


def test_scan_findings_are_not_projections(world: World) -> None:
    """Findings raised from scans live outside the ledger: the audit does not ask the
    entries for them, so one stored (or removed) is no problem."""
    from ledger.compliance.findings import COUNTERFEIT_RULE, Finding
    from ledger.store.findingsdb import save_scan_findings

    FormulaChain(world).build()
    with world.store.writing() as conn:
        save_scan_findings(
            conn,
            [
                Finding(
                    id="scan-1",
                    seq=3,
                    rule=COUNTERFEIT_RULE,
                    severity="high",
                    time="2026-12-01T00:00:00.000000Z",
                    seqs=(3,),
                    parties=(),
                    codes=("x",),
                    message_zh="扫码异常",
                    message_en="scan pattern",
                    details={},
                    source="scan",
                )
            ],
        )
    rc, lines, _ = audit_lines(world)
    assert rc == 0 and lines == [], lines


def test_a_big_ledger_is_re_derived_in_a_process_of_its_own(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From ``REDERIVE_APART_MIN`` entries the re-derivation runs beside the checks in a
    process of its own; it finds the same."""
    import ledger.log.audit

    chain = FormulaChain(world)
    chain.build()
    chain.build_recalled()
    recall = one(world, "SELECT seq FROM events WHERE stage = 'recall'")
    world.store.raw("DELETE FROM events WHERE seq = :s", {"s": recall})
    monkeypatch.setattr(ledger.log.audit, "REDERIVE_APART_MIN", 1)

    def not_here(store: object) -> None:
        raise AssertionError("re-derived in the auditing process, not in one of its own")

    monkeypatch.setattr(ledger.log.audit, "rederive", not_here)
    lines = [p.line() for p in ledger.log.audit.audit(world.store).problems]
    assert lines == [f"seq {recall}: the events {MESSAGE}"], lines


def test_log_only_audit_says_it_did_not_check_the_projections(world: World) -> None:
    """``suyuan audit --log-only`` checks the log alone: an edited projection is not
    reported, and the summary and the JSON say the projections were not checked, so no
    one reads "sound" as a verdict on what the page shows. A broken log is still caught."""
    chain = FormulaChain(world)
    chain.build()
    chain.build_recalled()
    recall = one(world, "SELECT seq FROM events WHERE stage = 'recall'")
    world.store.raw("DELETE FROM events WHERE seq = :s", {"s": recall})

    got = suyuan(world, "audit", "--log-only")
    assert got.returncode == 0, got.stderr
    rep = json.loads(got.stdout)
    assert rep["ok"] and rep["projectionsChecked"] is False
    assert "projections not checked" in got.stderr.splitlines()[-1]

    full = suyuan(world, "audit")
    assert full.returncode == 1 and json.loads(full.stdout)["projectionsChecked"] is True
    assert f"seq {recall}: the events {MESSAGE}" in full.stderr

    # A party registered with no registrar cosignature, written into the database file.
    from ledger.core.keys import PartyKey
    from tests.forge import forge
    from tests.test_verified import registration

    party = new_uscc()
    key = PartyKey.generate(party)
    (seq,) = forge(world, [registration(world, party, key, [])], note_signer=world.ledger.note_signer)  # type: ignore[arg-type]
    broken = suyuan(world, "audit", "--log-only")
    assert broken.returncode == 1, broken.stderr
    assert any(p["seq"] == seq for p in json.loads(broken.stdout)["problems"]), broken.stderr

    refused = suyuan(world, "audit", "--log-only", "--report", str(world.home.path / "r.html"))
    assert refused.returncode == 2
    assert "error [bad_arguments]: --log-only checks the log alone" in refused.stderr
