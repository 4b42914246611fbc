"""Scans of item codes: recorded on resolve (region, client class), kept outside the
ledger with bounded retention, and the counterfeit signal with cases that must and must
not fire."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from ledger.log.reindex import reindex
from ledger.queries import scans, trace
from tests.pagechain import FormulaChain
from tests.support import Client, World

REPO = Path(__file__).resolve().parent.parent
CHROME = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0 Mobile Safari/537.36"
)
WECHAT = CHROME + " MicroMessenger/8.0.50"


@pytest.fixture
def chain(world: World) -> dict[str, object]:
    c = FormulaChain(world)
    return {**c.build(), "recalled": c.build_recalled()}


def path(code: str) -> str:
    return code.removeprefix("https://id.gs1.org")


def ago(**kw: float) -> str:
    return (datetime.now(UTC) - timedelta(**kw)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_region_and_client_class() -> None:
    assert scans.region_of("CN-HE-Tangshan", "10.1.2.3") == "CN-HE-Tangshan"
    assert scans.region_of(None, "10.1.2.3") == "10.1.0.0/16"
    assert scans.region_of("", "2001:db8:1234::1") == "2001:db8::/32"
    assert scans.region_of(None, "not an address") == "unknown"
    assert scans.region_of(None, None) == "unknown"
    assert len(scans.region_of("x" * 500, None)) == 64
    assert scans.client_class(CHROME) == "browser"
    assert scans.client_class(WECHAT) == "app"
    assert scans.client_class("Mozilla/5.0 (compatible; Googlebot/2.1)") == "bot"
    assert scans.client_class("python-httpx/0.28.1") == "bot"
    assert scans.client_class("") == "bot" and scans.client_class(None) == "bot"


def proxied(world: World) -> Client:
    """The app behind a front end at 127.0.0.1 that sets X-Region (a trusted proxy)."""
    from api.app import create_app
    from api.settings import Settings
    from api.visitors import parse_proxies

    return Client(
        create_app(
            Settings(
                db_url=world.url,
                home=world.home.path,
                base_url="https://trace.example",
                trusted_proxies=parse_proxies("127.0.0.1"),
            )
        )
    )


def test_resolving_an_item_records_a_scan(world: World, chain: dict[str, str], client: Client) -> None:
    item = chain["sold"]
    front = proxied(world)
    r = front.get(path(item), headers={"X-Region": "CN-HE", "User-Agent": CHROME, "Accept": "text/html"})
    assert r.status_code == 200
    front.app.state.store.dispose()
    # Without a trusted proxy in front, X-Region is the client's claim: the address decides.
    client.get(path(item), headers={"X-Region": "CN-BJ", "User-Agent": WECHAT, "Accept": "application/json"})
    got = scans.scans_for(world.store, item)["scans"]
    assert [(s["region"], s["client"]) for s in got] == [("127.0.0.0/16", "app"), ("CN-HE", "browser")]
    # A lot, an unknown item and a refused code record nothing.
    client.get(path(chain["lot"]))
    client.get("/01/04901234567894/21/NOPE")
    client.get("/01/04901234567895/21/JP0001")
    with world.store.reading() as conn:
        n = conn.execute(sa.text("SELECT count(*) FROM scans")).scalar()
    assert n == 2


def test_scans_through_a_link_naming_the_lot_count_for_the_item(world: World, chain: dict[str, str]) -> None:
    """…/10/L/21/S and …/21/S are one item: its scans are kept and counted under one code,
    whichever link type asked (here the journey JSON, which is not the page)."""
    item = chain["unsold"]
    client = proxied(world)
    with_lot = path(chain["lot"]) + "/21/" + item.rsplit("/21/", 1)[1]
    for region in ("CN-HE", "CN-BJ", "CN-GD"):
        r = client.get(
            with_lot,
            params={"linkType": "gs1:traceability"},
            headers={"X-Region": region, "User-Agent": CHROME},
        )
        assert r.status_code == 200 and r.json()["code"] == item
    assert [s["region"] for s in scans.scans_for(world.store, item)["scans"]] == ["CN-GD", "CN-BJ", "CN-HE"]
    assert scans.counterfeit_signal(world.store, item) == {
        "reason": "regions",
        "regions": 3,
        "scansAfterSale": 0,
    }
    assert [s["code"] for s in scans.suspicious(world.store)] == [item]
    client.app.state.store.dispose()


def test_counterfeit_regions_must_and_must_not_fire(world: World, chain: dict[str, str]) -> None:
    item = chain["unsold"]
    for region in ("CN-HE", "CN-BJ"):
        scans.record_scan(world.store, item, region=region, client="browser")
    scans.record_scan(world.store, item, region="US-CA", client="bot")  # bots never count
    assert scans.counterfeit_signal(world.store, item) is None
    scans.record_scan(world.store, item, region="CN-GD", client="app")
    assert scans.counterfeit_signal(world.store, item) == {
        "reason": "regions",
        "regions": 3,
        "scansAfterSale": 0,
    }
    assert [s["code"] for s in scans.suspicious(world.store)] == [item]


def test_counterfeit_scans_after_sale_must_and_must_not_fire(world: World, chain: dict[str, str]) -> None:
    sold = chain["sold"]  # sold (ordered) on 2026-11-27 05:02 UTC
    with world.store.reading() as conn:
        assert scans.sold_at(conn, sold) == "2026-11-27T05:02:11.000000Z"
    for _ in range(30):  # before the sale: the warehouse's own scans do not count
        scans.record_scan(
            world.store, sold, region="CN-HE", client="browser", time="2026-11-01T00:00:00.000000Z"
        )
    for _ in range(20):
        scans.record_scan(world.store, sold, region="CN-HE", client="browser")
    assert scans.counterfeit_signal(world.store, sold) is None
    scans.record_scan(world.store, sold, region="CN-HE", client="bot")
    assert scans.counterfeit_signal(world.store, sold) is None
    scans.record_scan(world.store, sold, region="CN-HE", client="browser")
    assert scans.counterfeit_signal(world.store, sold) == {
        "reason": "scans_after_sale",
        "regions": 1,
        "scansAfterSale": 21,
    }
    # An unsold item scanned often raises nothing: there is no sale to count from.
    unsold = chain["unsold"]
    for _ in range(25):
        scans.record_scan(world.store, unsold, region="CN-HE", client="browser")
    assert scans.counterfeit_signal(world.store, unsold) is None
    assert [s["code"] for s in scans.suspicious(world.store)] == [sold]


def test_retention_by_age_and_cap(
    world: World, chain: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    item, other = chain["sold"], chain["unsold"]
    monkeypatch.setenv("SUYUAN_SCAN_RETENTION_DAYS", "60")
    scans.record_scan(world.store, other, region="old", client="browser", time=ago(days=31))
    scans.record_scan(world.store, item, region="old", client="browser", time=ago(days=40))
    assert len(scans.scans_for(world.store, item)["scans"]) == 1
    monkeypatch.setenv("SUYUAN_SCAN_RETENTION_DAYS", "30")
    scans.record_scan(world.store, item, region="new", client="browser")
    # Recording prunes the scanned code; the other code's old scan waits for prune().
    assert [s["region"] for s in scans.scans_for(world.store, item)["scans"]] == ["new"]
    assert len(scans.scans_for(world.store, other)["scans"]) == 1
    assert scans.prune(world.store) == 1
    assert scans.scans_for(world.store, other)["scans"] == []
    monkeypatch.setattr(scans, "MAX_SCANS_PER_CODE", 5)
    for n in range(8):
        scans.record_scan(world.store, item, region=f"r{n}", client="bot")
    kept = [s["region"] for s in scans.scans_for(world.store, item)["scans"]]
    assert kept == ["r7", "r6", "r5", "r4", "r3"]
    monkeypatch.setenv("SUYUAN_SCAN_RETENTION_DAYS", "soon")
    with pytest.raises(Exception, match="SUYUAN_SCAN_RETENTION_DAYS"):
        scans.retention_days()


def test_counterfeit_signal_becomes_one_finding_for_regulators(world: World, chain: dict[str, str]) -> None:
    from ledger.queries.findings import list_findings

    item, other = chain["unsold"], chain["sold"]
    for region in ("CN-HE", "CN-BJ"):
        scans.record_scan(world.store, item, region=region, client="browser")
    scans.record_scan(world.store, item, region="US-CA", client="bot")
    scans.record_scan(world.store, other, region="CN-SH", client="browser")
    assert list_findings(world.store, rule="scan.counterfeit") == []
    for region in ("CN-GD", "CN-SH"):  # the third region raises it; the fourth adds nothing
        scans.record_scan(world.store, item, region=region, client="app")
    found = list_findings(world.store, rule="scan.counterfeit")
    assert len(found) == 1
    f = found[0]
    assert (f.codes, f.parties, f.severity, f.source) == ((item,), (), "high", "scan")
    assert f.details == {"reason": "regions", "regions": 3, "scansAfterSale": 0}
    assert "3 regions" in f.message_en and "3 个地区" in f.message_zh
    assert list(f.seqs) == [s["seq"] for s in trace.journey(world.store, item)["journey"]]
    assert [g.id for g in list_findings(world.store, code=item)] == [f.id]
    reindex(world.store)  # scans live outside the ledger: their finding survives a rebuild
    assert [g.id for g in list_findings(world.store, rule="scan.counterfeit")] == [f.id]


def test_reindex_leaves_scans_alone(world: World, chain: dict[str, str]) -> None:
    scans.record_scan(world.store, chain["sold"], region="CN-HE", client="browser")
    reindex(world.store)
    assert len(scans.scans_for(world.store, chain["sold"])["scans"]) == 1


def test_cli_scans(world: World, chain: dict[str, str]) -> None:
    for region in ("CN-HE", "CN-BJ", "CN-SH"):
        scans.record_scan(world.store, chain["unsold"], region=region, client="browser")
    env = {**os.environ, "SUYUAN_DB": world.url, "SUYUAN_HOME": str(world.home.path)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tools.cli", "scans", *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    one = run(chain["unsold"])
    assert one.returncode == 0, one.stderr
    doc = json.loads(one.stdout)
    assert doc["code"] == chain["unsold"] and len(doc["scans"]) == 3
    assert doc["signal"] == {"reason": "regions", "regions": 3, "scansAfterSale": 0}
    sus = json.loads(run("--suspicious").stdout)
    assert sus == {
        "suspicious": [{"code": chain["unsold"], "reason": "regions", "regions": 3, "scansAfterSale": 0}]
    }
    bad = run("/01/04901234567895/21/1")
    assert bad.returncode == 2 and bad.stderr.startswith("error [bad_identifier]: ")


def test_migration_0005_adds_and_removes_only_scans(world: World, chain: dict[str, str]) -> None:
    from ledger.store import migrate

    scans.record_scan(world.store, chain["sold"], region="CN-HE", client="browser")
    size = world.ledger.size()
    migrate.downgrade(world.store.engine, "0004")
    assert not sa.inspect(world.store.engine).has_table("scans")
    assert world.ledger.size() == size
    env = {**os.environ, "SUYUAN_DB": world.url, "SUYUAN_HOME": str(world.home.path)}
    serve = subprocess.run(
        [sys.executable, "-m", "tools.cli", "serve", "--port", "1"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert serve.returncode == 2
    assert serve.stderr.strip() == (
        "error [config]: this ledger's schema predates the scans table (migrations 0005 "
        "and 0008); run `suyuan init` once to bring it up to date"
    )
    migrate.upgrade(world.store.engine)
    assert scans.scans_for(world.store, chain["sold"])["scans"] == []
    scans.record_scan(world.store, chain["sold"], region="CN-HE", client="browser")
    assert len(scans.scans_for(world.store, chain["sold"])["scans"]) == 1


def test_scan_writes_leave_the_ledger_durable(world: World, chain: dict[str, str]) -> None:
    """On SQLite a scan commits without an fsync; the pooled connection goes back to
    synchronous=FULL for the ledger's own appends."""
    scans.record_scan(world.store, chain["sold"], region="CN-HE", client="browser")
    if world.store.dialect != "sqlite":
        return
    with world.store.engine.connect() as conn:
        assert (
            conn.connection.driver_connection.execute(  # type: ignore[union-attr]
                "PRAGMA synchronous"
            ).fetchone()[0]
            == 2
        )  # FULL


def _page_scan(world: World, writer: scans.ScanWriter, code: str, region: str, visitor: str) -> object:
    from ledger.queries.page import VerificationCache, page_facts

    facts = page_facts(
        world.ledger,
        code,
        cache=VerificationCache(),
        scan=scans.Scan(region, "browser", visitor),
        scans_to=writer,
    )
    assert facts is not None
    return facts["counterfeit"]


def test_batched_scans_show_the_signal_the_synchronous_write_would(
    world: World, chain: dict[str, str]
) -> None:
    """Queued scans: each page's signal counts the stored scans, those still queued and its
    own; nothing is written until the batch is; then the rows and the one finding are
    those of scans written one by one."""
    from ledger.queries.findings import list_findings

    item = chain["unsold"]
    writer = scans.ScanWriter(world.store, every_ms=60_000)  # flushed by the test alone
    scans.record_scan(world.store, item, region="CN-HE", client="browser", visitor="a")  # stored
    assert _page_scan(world, writer, item, "CN-HE", "b") is None  # the same region again
    assert _page_scan(world, writer, item, "CN-BJ", "c") is None  # a second, queued
    assert len(scans.scans_for(world.store, item)["scans"]) == 1  # nothing written yet
    third = _page_scan(world, writer, item, "CN-GD", "d")  # stored 1 + queued 1 + its own
    assert third == {"reason": "regions", "regions": 3, "scansAfterSale": 0}
    assert list_findings(world.store, rule="scan.counterfeit") == []
    assert writer.flush() == 3 and writer.written == 3 and writer.dropped == 0
    got = scans.scans_for(world.store, item)
    assert sorted(s["region"] for s in got["scans"]) == ["CN-BJ", "CN-GD", "CN-HE", "CN-HE"]
    assert got["signal"] == third
    found = list_findings(world.store, rule="scan.counterfeit")
    assert len(found) == 1 and found[0].codes == (item,) and found[0].details == third
    assert list(found[0].seqs) == [s["seq"] for s in trace.journey(world.store, item)["journey"]]
    # Once raised, later batches add no second finding.
    assert _page_scan(world, writer, item, "CN-SH", "e") == {**third, "regions": 4}
    writer.close()
    assert writer.written == 4 and len(list_findings(world.store, rule="scan.counterfeit")) == 1


def test_batched_scans_count_visitors_after_the_sale_once_each(world: World, chain: dict[str, str]) -> None:
    sold = chain["sold"]  # sold 2026-11-27 05:02 UTC
    writer = scans.ScanWriter(world.store, every_ms=60_000)
    for n in range(10):  # before the sale: never counted
        scans.record_scan(
            world.store,
            sold,
            region="CN-HE",
            client="browser",
            visitor=f"w{n}",
            time="2026-11-01T00:00:00.000000Z",
        )
    for n in range(10):
        scans.record_scan(world.store, sold, region="CN-HE", client="browser", visitor=f"v{n}")
    for n in range(10, 20):
        assert _page_scan(world, writer, sold, "CN-HE", f"v{n}") is None
    assert _page_scan(world, writer, sold, "CN-HE", "v3") is None  # stored visitor: once
    assert _page_scan(world, writer, sold, "CN-HE", "v12") is None  # queued visitor: once
    assert _page_scan(world, writer, sold, "CN-HE", "v20") == {
        "reason": "scans_after_sale",
        "regions": 1,
        "scansAfterSale": 21,
    }
    writer.close()
    assert scans.counterfeit_signal(world.store, sold) == {
        "reason": "scans_after_sale",
        "regions": 1,
        "scansAfterSale": 21,
    }


def test_the_batch_thread_writes_on_its_own_and_a_refused_batch_is_dropped(
    world: World, chain: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    item = chain["unsold"]
    writer = scans.ScanWriter(world.store, every_ms=1)
    written = threading.Event()
    real = scans._write_batch

    def spy(store: object, batch: object) -> None:
        real(store, batch)  # type: ignore[arg-type]
        written.set()

    monkeypatch.setattr(scans, "_write_batch", spy)
    _page_scan(world, writer, item, "CN-HE", "a")
    assert written.wait(60)  # no flush from here: the writer's thread wrote it
    assert [s["region"] for s in scans.scans_for(world.store, item)["scans"]] == ["CN-HE"]
    written.clear()  # and the next, after the thread found the queue empty and waited
    deadline = time.monotonic() + 60
    while writer.written < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    _page_scan(world, writer, item, "CN-SH", "a2")
    assert written.wait(60)
    assert sorted(s["region"] for s in scans.scans_for(world.store, item)["scans"]) == ["CN-HE", "CN-SH"]

    def refuse(store: object, batch: object) -> None:
        raise sa.exc.OperationalError("INSERT", {}, Exception("database is locked"))

    monkeypatch.setattr(scans, "_write_batch", refuse)
    writer.close()  # the thread ends; what is queued now is written by flush
    _page_scan(world, writer, item, "CN-BJ", "b")  # the page still answers
    assert writer.flush() == 0 and writer.dropped == 1
    assert sorted(s["region"] for s in scans.scans_for(world.store, item)["scans"]) == ["CN-HE", "CN-SH"]


def test_scan_batch_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SUYUAN_SCAN_BATCH_MS", raising=False)
    assert scans.batch_ms() == scans.DEFAULT_BATCH_MS
    monkeypatch.setenv("SUYUAN_SCAN_BATCH_MS", "0")
    assert scans.batch_ms() == 0
    monkeypatch.setenv("SUYUAN_SCAN_BATCH_MS", "-5")
    with pytest.raises(Exception, match="SUYUAN_SCAN_BATCH_MS"):
        scans.batch_ms()


def test_the_server_queues_the_page_scans_and_writes_them(world: World, chain: dict[str, str]) -> None:
    """With SUYUAN_SCAN_BATCH_MS (here through Settings) the app's pages queue their scans:
    the page answers with its own scan counted, and the writer puts it in the table."""
    from api.app import create_app
    from api.settings import Settings

    app = create_app(
        Settings(db_url=world.url, home=world.home.path, base_url="https://trace.example", scan_batch_ms=5)
    )
    client = Client(app)
    item = chain["unsold"]
    for region in ("CN-HE", "CN-BJ"):
        scans.record_scan(world.store, item, region=region, client="browser", visitor=region)
    r = client.get(path(item), headers={"User-Agent": CHROME, "Accept": "application/json"})
    assert r.status_code == 200
    assert r.json()["counterfeit"] == {"reason": "regions", "regions": 3, "scansAfterSale": 0}
    writer = app.state.scan_writer
    assert isinstance(writer, scans.ScanWriter)
    writer.close()
    got = scans.scans_for(world.store, item)["scans"]
    assert sorted(s["region"] for s in got) == ["127.0.0.0/16", "CN-BJ", "CN-HE"]
    assert writer.written == 1 and writer.dropped == 0
    app.state.store.dispose()
