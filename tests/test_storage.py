"""A full disk under the ledger, for real: a small tmpfs holds the SQLite database, or a
PostgreSQL tablespace that the test schema lives in, and a filler file takes its last
byte. An append is then a one-line ``storage`` refusal that lands nothing, a key file is
written whole or not at all, the consumer page still answers without its scan, and once
space is back the same ledger takes the same input.

Mounting needs root (the test environment runs as root); without it these tests skip
with the reason, and under CI they fail.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import pwd
import sqlite3
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from api.app import create_app
from api.settings import Settings
from ledger.core.statements import sign_one
from ledger.log.keystore import KeyStore
from tests.conftest import PG_ADMIN_URL, fresh_schema_url
from tests.pagechain import FormulaChain
from tests.support import Client, World
from tests.test_cli import Cli, event_body, one_error_line, uscc

CHROME = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0 Mobile Safari/537.36"
)


def cannot(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(reason + " — CI must run the disk-full tests")
    pytest.skip(reason)


@dataclass
class TinyDisk:
    """A tmpfs of a few MiB; ``fill`` takes its last free page, ``free`` gives it back."""

    path: Path

    def fill(self) -> None:
        fd = os.open(self.path / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for chunk in (1 << 20, 1 << 16, 1 << 12):
                try:
                    while True:
                        os.write(fd, b"\0" * chunk)
                except OSError as e:
                    assert e.errno == errno.ENOSPC, e
        finally:
            os.close(fd)

    def free(self) -> None:
        (self.path / "filler").unlink()


@pytest.fixture
def tiny_disk() -> Iterator[TinyDisk]:
    if os.geteuid() != 0:
        cannot("mounting a tmpfs needs root")
    # Under /tmp and open to all: a PostgreSQL server running as its own user must reach it.
    mount_point = Path(tempfile.mkdtemp(prefix="suyuan-tiny-", dir="/tmp"))
    mount_point.chmod(0o755)
    try:
        owner = pwd.getpwnam("postgres").pw_uid
    except KeyError:
        owner = 0
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size=24m,mode=0755,uid={owner}", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        mount_point.rmdir()
        cannot(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield TinyDisk(mount_point)
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)
        mount_point.rmdir()


@dataclass
class FullableDb:
    url: str
    disk: TinyDisk
    held: sqlite3.Connection | None = None

    def fill(self) -> None:
        if self.url.startswith("sqlite"):
            # Empty the write-ahead log into the database file first: a log that already
            # has room takes small writes without asking the disk for any. The connection
            # stays open, as a running server's would: the last one to close removes the
            # log and its shared-memory index, which a full disk could not then make again.
            self.held = sqlite3.connect(self.url.removeprefix("sqlite:///"))
            assert self.held.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
        self.disk.fill()

    def close(self) -> None:
        if self.held is not None:
            self.held.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def full_db(request: pytest.FixtureRequest, tiny_disk: TinyDisk) -> Iterator[FullableDb]:
    """A database whose every table lives on the tiny disk."""
    if request.param == "sqlite":
        db = FullableDb(f"sqlite:///{tiny_disk.path}/ledger.db", tiny_disk)
        yield db
        db.close()
        return
    base = request.getfixturevalue("pg_database")
    space = f"suyuan_tiny_{uuid.uuid4().hex[:10]}"
    (tiny_disk.path / "pg").mkdir()
    os.chown(tiny_disk.path / "pg", tiny_disk.path.stat().st_uid, -1)
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE TABLESPACE {space} LOCATION '{tiny_disk.path / 'pg'}'"))
    except sa.exc.DBAPIError as e:
        admin.dispose()
        cannot(f"the PostgreSQL server cannot use a tablespace on this host's tmpfs: {e.orig}")
    url = fresh_schema_url(base)
    schema = url.rsplit("%3D", 1)[1]
    try:
        yield FullableDb(f"{url}%20-cdefault_tablespace%3D{space}", tiny_disk)
    finally:
        eng = sa.create_engine(base, isolation_level="AUTOCOMMIT")
        with eng.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        eng.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP TABLESPACE {space}"))
        admin.dispose()


def signed_events(home: Path, party: str, count: int, start: int = 0) -> bytes:
    key = KeyStore(home).load("p")
    return b"".join(
        json.dumps(
            sign_one(
                kind="event",
                signer=party,
                key=key,
                body=event_body(start + n),
                issued="2026-11-27T13:05:00+08:00",
            ),
            ensure_ascii=False,
        ).encode()
        + b"\n"
        for n in range(count)
    )


def test_a_full_disk_is_a_storage_refusal_and_the_ledger_carries_on(
    full_db: FullableDb, tmp_path: Path
) -> None:
    cli = Cli(full_db.url, tmp_path / "home")
    cli("init")
    cli("keygen", "p")
    party = uscc(51)
    cli("party", "register", "--id", party, "--name", "唐山满盘", "--roles", "producer", "--key", "p")
    events = tmp_path / "events.jsonl"
    events.write_bytes(signed_events(cli.home, party, 300))
    note = cli.checkpoint()
    # A home on the full disk too, for the key file written whole or not at all.
    full_home = Cli(full_db.url, full_db.disk.path / "home")
    full_home.home.mkdir()

    full_db.fill()
    refused = cli("submit", str(events), rc=2)
    line = one_error_line(refused, "storage")
    assert "the disk holding the database is full" in line and "nothing of it landed" in line
    assert cli.checkpoint() == note  # the ledger is as it was
    keygen = full_home("keygen", "x", rc=2)
    line = one_error_line(keygen, "storage")
    assert "is full" in line and "keys" in line
    assert list(full_home.home.rglob("*")) in ([], [full_home.home / "keys"])  # no key, no temp

    full_db.disk.free()
    receipts = cli("submit", str(events)).lines()
    assert [r["seq"] for r in receipts] == list(range(2, 302))
    assert cli("audit").rc == 0
    full_home("keygen", "x")


def test_the_page_answers_when_its_scan_cannot_be_written(
    full_db: FullableDb, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    world = World.create(full_db.url, home=tmp_path / "home")
    app = create_app(Settings(db_url=world.url, home=world.home.path, base_url="https://trace.example"))
    try:
        item = FormulaChain(world).build()["sold"]
        path = item.removeprefix("https://id.gs1.org")
        full_db.fill()
        with caplog.at_level(logging.WARNING, logger="ledger.queries.scans"):
            r = Client(app).get(path, headers={"User-Agent": CHROME, "Accept": "application/json"})
        assert r.status_code == 200, r.text
        facts = r.json()
        assert facts["timeline"] and facts["verification"]["verified"] and facts["counterfeit"] is None
        assert any("not recorded" in m and "full" in m for m in caplog.messages), caplog.messages
        with world.store.reading() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM scans")).scalar() == 0
        full_db.disk.free()
        assert Client(app).get(path, headers={"User-Agent": CHROME}).status_code == 200
        with world.store.reading() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM scans")).scalar() == 1
    finally:
        app.state.store.dispose()
        world.close()
