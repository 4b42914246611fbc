"""The counterfeit signal cannot be forged with headers: X-Region and X-Forwarded-For are
believed only from a configured trusted proxy, otherwise the peer address decides, and
one client counts once per code. Through HTTP (the ASGI app with a chosen peer address,
and `suyuan serve` on a real socket), on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from api.app import create_app
from api.settings import Settings
from api.visitors import SECRET_FILE, parse_proxies
from ledger.core.errors import ConfigError
from ledger.queries import scans
from ledger.queries.findings import list_findings
from tests.pagechain import FormulaChain
from tests.support import Client, World

REPO = Path(__file__).resolve().parent.parent
PHONE = {"Accept": "text/html", "User-Agent": "Mozilla/5.0 (Linux; Android 14) Chrome/131.0 Mobile"}
FAKE_ZH = "可能是仿冒品"


@pytest.fixture
def chain(world: World) -> dict[str, Any]:
    return FormulaChain(world).build()


def path(code: str) -> str:
    return code.removeprefix("https://id.gs1.org")


def app_for(world: World, trusted: str = "") -> Any:
    return create_app(
        Settings(
            db_url=world.url,
            home=world.home.path,
            base_url="https://trace.example",
            trusted_proxies=parse_proxies(trusted),
        )
    )


@pytest.fixture
def plain(world: World) -> Iterator[Any]:
    app = app_for(world)
    yield app
    app.state.store.dispose()


@pytest.fixture
def behind_cdn(world: World) -> Iterator[Any]:
    """The app behind a CDN whose edge nodes are 10.9.0.0/16."""
    app = app_for(world, "10.9.0.0/16")
    yield app
    app.state.store.dispose()


def counterfeit_findings(world: World) -> list[Any]:
    return list_findings(world.store, rule="scan.counterfeit")


def test_forged_region_headers_raise_no_signal_and_no_finding(
    world: World, chain: dict[str, Any], plain: Any
) -> None:
    """The attack of the issue: three requests with made-up X-Region (and X-Forwarded-For)
    headers made a genuine tin's page say "may be a counterfeit" and raised a high
    finding. From one address that is not a trusted proxy they are one region, one
    visitor."""
    item = chain["unsold"]
    client = Client(plain, peer="198.51.100.7")
    for n, region in enumerate(("CN-HE", "CN-BJ", "CN-GD")):
        r = client.get(path(item), headers={**PHONE, "X-Region": region, "X-Forwarded-For": f"203.0.{n}.1"})
        assert r.status_code == 200 and FAKE_ZH not in r.text
    facts = client.get(path(item), headers={"Accept": "application/json"}).json()
    assert facts["counterfeit"] is None
    assert counterfeit_findings(world) == []
    got = scans.scans_for(world.store, item)
    assert {s["region"] for s in got["scans"]} == {"198.51.0.0/16"} and got["signal"] is None


def test_headers_from_a_trusted_proxy_are_believed(
    world: World, chain: dict[str, Any], behind_cdn: Any
) -> None:
    item = chain["unsold"]
    edge = Client(behind_cdn, peer="10.9.3.4")
    for n, region in enumerate(("CN-HE", "CN-BJ")):
        r = edge.get(path(item), headers={**PHONE, "X-Region": region, "X-Forwarded-For": f"203.0.113.{n}"})
        assert FAKE_ZH not in r.text
    r = edge.get(path(item), headers={**PHONE, "X-Region": "CN-GD", "X-Forwarded-For": "203.0.113.9"})
    assert FAKE_ZH in r.text and "此追溯码已在 3 个不同地区被扫描。" in r.text
    (f,) = counterfeit_findings(world)
    assert f.codes == (item,) and f.details == {"reason": "regions", "regions": 3, "scansAfterSale": 0}
    # The same headers from a peer outside the CDN's network are the client's own claims.
    other = chain["sold"]
    for region in ("US-CA", "US-NY", "US-TX"):
        Client(behind_cdn, peer="10.10.0.1").get(
            path(other), headers={**PHONE, "X-Region": region, "X-Forwarded-For": "203.0.113.50"}
        )
    assert {s["region"] for s in scans.scans_for(world.store, other)["scans"]} == {"10.10.0.0/16"}
    assert [g.codes for g in counterfeit_findings(world)] == [(item,)]


def test_only_hops_the_proxies_added_are_believed(
    world: World, chain: dict[str, Any], behind_cdn: Any
) -> None:
    """X-Forwarded-For is read from the right: the first hop that is not a trusted proxy
    is the client; what the client put further left is its own claim. Without a region
    header from the proxy, the client's network is the region."""
    item = chain["unsold"]
    edge = Client(behind_cdn, peer="10.9.0.1")
    for forged in ("1.1.1.1", "2.2.2.2", "3.3.3.3"):
        edge.get(path(item), headers={**PHONE, "X-Forwarded-For": f"{forged}, 192.0.2.10, 10.9.8.7"})
    got = scans.scans_for(world.store, item)
    assert {s["region"] for s in got["scans"]} == {"192.0.0.0/16"} and got["signal"] is None
    # Garbage in the chain stops the walk at the last hop the proxies vouch for.
    edge.get(path(item), headers={**PHONE, "X-Forwarded-For": "3.3.3.3, nonsense, 10.9.8.7"})
    assert scans.scans_for(world.store, item)["scans"][0]["region"] == "10.9.0.0/16"


def test_one_address_counts_once_per_code(world: World, chain: dict[str, Any], behind_cdn: Any) -> None:
    """More than 20 scans after the sale give the signal only when they come from more
    than 20 clients: one phone asking 25 times is one visitor."""
    sold = chain["sold"]
    edge = Client(behind_cdn, peer="10.9.0.1")
    for _ in range(25):
        r = edge.get(path(sold), headers={**PHONE, "X-Forwarded-For": "203.0.113.77"})
        assert FAKE_ZH not in r.text
    # One IPv6 client's addresses within its /64 are one visitor too.
    for n in range(5):
        edge.get(path(sold), headers={**PHONE, "X-Forwarded-For": f"2001:db8:1:2::{n + 1}"})
    assert scans.counterfeit_signal(world.store, sold) is None
    assert len(scans.scans_for(world.store, sold)["scans"]) == 30
    for n in range(18):  # 20 visitors: not yet
        edge.get(path(sold), headers={**PHONE, "X-Forwarded-For": f"203.0.113.{n + 100}"})
    assert scans.counterfeit_signal(world.store, sold) is None
    r = edge.get(path(sold), headers={**PHONE, "X-Forwarded-For": "203.0.113.200"})
    assert FAKE_ZH in r.text and "已有 21 位不同的消费者扫描了此追溯码" in r.text
    (f,) = counterfeit_findings(world)
    assert f.details == {"reason": "scans_after_sale", "regions": 2, "scansAfterSale": 21}
    assert "21 different visitors" in f.message_en


def test_scans_keep_a_pseudonym_per_code_not_the_address(
    world: World, chain: dict[str, Any], plain: Any
) -> None:
    client = Client(plain, peer="198.51.100.23")
    for code in (chain["sold"], chain["unsold"]):
        client.get(path(code), headers=PHONE)
    with world.store.reading() as conn:
        rows = conn.execute(sa.text("SELECT code, region, visitor FROM scans ORDER BY code")).all()
    assert len(rows) == 2 and rows[0].visitor != rows[1].visitor
    assert all(len(r.visitor) == 32 and "198.51.100.23" not in "".join(map(str, r)) for r in rows)
    # The key lives in the home directory: another app (a worker, a restart) names the
    # same client alike.
    again = app_for(world)
    try:
        Client(again, peer="198.51.100.23").get(path(chain["sold"]), headers=PHONE)
    finally:
        again.state.store.dispose()
    with world.store.reading() as conn:
        n = conn.execute(
            sa.text("SELECT count(DISTINCT visitor) FROM scans WHERE code = :c"), {"c": chain["sold"]}
        ).scalar()
    assert n == 1
    secret = world.home.path / SECRET_FILE
    assert secret.stat().st_mode & 0o777 == 0o600
    secret.write_bytes(b"short")
    with pytest.raises(ConfigError, match="visitor.key is damaged"):
        app_for(world)
    secret.unlink()
    secret.mkdir()
    with pytest.raises(ConfigError, match="cannot read .*visitor.key"):
        app_for(world)
    secret.rmdir()
    # A home the server cannot write to: told what to do, not a traceback.
    world.home.path.chmod(0o500)
    try:
        if os.access(world.home.path, os.W_OK):
            return  # root writes anywhere
        with pytest.raises(ConfigError, match=r"cannot write .*visitor.key .*head -c 32"):
            app_for(world)
    finally:
        world.home.path.chmod(0o700)


def test_bad_trusted_proxies_are_refused(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUYUAN_TRUSTED_PROXIES", "10.0.0.0/8, nonsense")
    with pytest.raises(ConfigError, match="SUYUAN_TRUSTED_PROXIES: 'nonsense' is not"):
        Settings.from_env()
    monkeypatch.setenv("SUYUAN_TRUSTED_PROXIES", " 10.0.0.0/8 ,2001:db8::/32,192.0.2.1")
    assert [str(n) for n in Settings.from_env().trusted_proxies] == [
        "10.0.0.0/8",
        "2001:db8::/32",
        "192.0.2.1/32",
    ]
    monkeypatch.delenv("SUYUAN_TRUSTED_PROXIES")
    assert Settings.from_env().trusted_proxies == ()
    env = {**os.environ, "SUYUAN_DB": world.url, "SUYUAN_HOME": str(world.home.path)}
    bad = subprocess.run(
        [sys.executable, "-m", "tools.cli", "serve", "--port", "1", "--trusted-proxy", "10.0.0.0/33"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and bad.stderr.startswith(
        "error [config]: --trusted-proxy: '10.0.0.0/33' is not an address or CIDR network"
    )


def _serve(world: World, *extra: str, port: int) -> tuple[subprocess.Popen[bytes], str]:
    env = {**os.environ, "SUYUAN_DB": world.url, "SUYUAN_HOME": str(world.home.path)}
    env.pop("SUYUAN_TRUSTED_PROXIES", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.cli", "serve", "--port", str(port), *extra],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(base + "/healthz", timeout=2)
            return proc, base
        except httpx.TransportError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                err = proc.communicate()[1].decode()
                raise AssertionError(err) from None
            time.sleep(0.2)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.communicate(timeout=30)


def test_suyuan_serve_believes_headers_only_from_trusted_proxies(
    world: World, chain: dict[str, Any], port: int
) -> None:
    """On a real socket: uvicorn itself would take X-Forwarded-For from loopback; `suyuan
    serve` leaves the decision to the app, which believes nobody by default."""
    item = chain["unsold"]
    forged = [
        {"X-Region": r, "X-Forwarded-For": f"203.0.{n}.1"} for n, r in enumerate(("CN-HE", "CN-BJ", "CN-GD"))
    ]
    proc, base = _serve(world, port=port)
    try:
        for h in forged:
            r = httpx.get(base + path(item), headers={**PHONE, **h}, timeout=30)
            assert r.status_code == 200 and FAKE_ZH not in r.text
    finally:
        _stop(proc)
    assert {s["region"] for s in scans.scans_for(world.store, item)["scans"]} == {"127.0.0.0/16"}
    assert counterfeit_findings(world) == []

    proc, base = _serve(world, "--trusted-proxy", "127.0.0.1/32", "--trusted-proxy", "::1", port=port)
    try:
        for h in forged:
            r = httpx.get(base + path(item), headers={**PHONE, **h}, timeout=30)
        assert FAKE_ZH in r.text
    finally:
        _stop(proc)
    assert len(counterfeit_findings(world)) == 1


def test_migration_0008_gives_old_scans_a_visitor_each(world: World, chain: dict[str, Any]) -> None:
    from ledger.store import migrate

    sold = chain["sold"]
    migrate.downgrade(world.store.engine, "0007")
    assert "visitor" not in {c["name"] for c in sa.inspect(world.store.engine).get_columns("scans")}
    with pytest.raises(ConfigError, match="migrations 0005 and 0008"):
        scans.check_ready(world.store)
    with world.store.engine.begin() as conn:  # scans an older server recorded
        for _ in range(21):
            conn.execute(
                sa.text("INSERT INTO scans (code, time, region, client) VALUES (:c, :t, 'CN-HE', 'browser')"),
                {"c": sold, "t": scans.now_utc()},
            )
    world.store.migrate()
    scans.check_ready(world.store)
    assert scans.counterfeit_signal(world.store, sold) == {
        "reason": "scans_after_sale",
        "regions": 1,
        "scansAfterSale": 21,
    }
