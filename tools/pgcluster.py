"""PostgreSQL clusters of their own, for the tests and the bench (``tools.bench api
--replica``): a primary made with ``initdb`` and hot standbys made from it with
``pg_basebackup``, streaming, on free loopback ports, in a temporary directory.

They are separate from the shared server at 127.0.0.1:5432 (which nothing here touches).
PostgreSQL refuses to run as root, so when the tests run as root every server program runs
as the ``postgres`` user (``runuser``). Only the processes of these clusters are ever
stopped or killed: a cluster's postmaster by the pid in its ``postmaster.pid``, and on
clean-up any process whose working directory is the cluster's data directory.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa


class ClusterError(RuntimeError):
    pass


def pg_bin() -> Path | None:
    """The newest PostgreSQL server binaries installed (Debian's layout), or None."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name)
    )
    return Path(found[-1]).parent if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(cmd: Sequence[str]) -> list[str]:
    if os.geteuid() != 0:
        return list(cmd)
    return ["runuser", "-u", "postgres", "--", *cmd]


def _owner() -> tuple[int, int] | None:
    if os.geteuid() != 0:
        return None
    pw = pwd.getpwnam("postgres")
    return pw.pw_uid, pw.pw_gid


@dataclass
class Cluster:
    """One PostgreSQL server: its data directory, port and name (``application_name`` of a
    standby, which ``synchronous_standby_names`` refers to)."""

    bin: Path
    data: Path
    port: int
    name: str
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.data.parent / f"{self.name}.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def run(
        self, program: str, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        cmd = _as_postgres([str(self.bin / program), *args])
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd="/", check=False)
        if check and done.returncode != 0:
            tail = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise ClusterError(
                f"{program} {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}\n{tail}"
            )
        return done

    def start(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self.run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop", check=False)

    def postmaster_pid(self) -> int | None:
        pidfile = self.data / "postmaster.pid"
        try:
            return int(pidfile.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def kill_postmaster(self) -> int:
        """SIGKILL the postmaster alone (a crashed machine, as far as clients can tell);
        its backends notice their parent is gone and exit on their own."""
        pid = self.postmaster_pid()
        if pid is None:
            raise ClusterError(f"{self.name} is not running")
        os.kill(pid, signal.SIGKILL)
        return pid

    def processes(self) -> list[int]:
        """Pids of every process of this cluster (working directory = its data directory)."""
        out = []
        want = str(self.data.resolve())
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if os.readlink(f"/proc/{entry}/cwd") == want:
                    out.append(int(entry))
            except OSError:
                continue
        return out

    def wait_gone(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.processes():
            if time.monotonic() > deadline:
                raise ClusterError(f"{self.name}'s processes did not exit: {self.processes()}")
            time.sleep(0.1)

    def kill_all(self) -> None:
        for pid in self.processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def sql(self, statement: str, database: str = "postgres") -> list[tuple[object, ...]]:
        eng = sa.create_engine(self.url(database), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        try:
            with eng.connect() as conn:
                result = conn.exec_driver_sql(statement)
                return [tuple(r) for r in result] if result.returns_rows else []
        finally:
            eng.dispose()

    def set(self, **settings: str) -> None:
        """Change server settings (ALTER SYSTEM) and reload."""
        for k, v in settings.items():
            self.sql(f"ALTER SYSTEM SET {k} = '{v}'")
        self.sql("SELECT pg_reload_conf()")

    def wait_sync(self, standby: str, timeout: float = 60) -> None:
        """Until ``standby`` streams from this primary as its synchronous standby."""
        deadline = time.monotonic() + timeout
        q = f"SELECT sync_state FROM pg_stat_replication WHERE application_name = '{standby}'"
        while self.sql(q) != [("sync",)]:
            if time.monotonic() > deadline:
                raise ClusterError(f"{standby} is not a synchronous standby of {self.name}")
            time.sleep(0.05)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sql("SELECT 1")
                return
            except sa.exc.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def in_recovery(self) -> bool:
        return bool(self.sql("SELECT pg_is_in_recovery()")[0][0])

    def promote(self) -> None:
        self.sql("SELECT pg_promote(true, 60)")
        deadline = time.monotonic() + 60
        while self.in_recovery():
            if time.monotonic() > deadline:
                raise ClusterError(f"{self.name} did not leave recovery")
            time.sleep(0.1)


class Clusters:
    """A temporary directory of clusters: one primary, and standbys of it."""

    def __init__(self) -> None:
        b = pg_bin()
        if b is None:
            raise ClusterError("no PostgreSQL server binaries under /usr/lib/postgresql")
        self.bin = b
        self.root = Path(tempfile.mkdtemp(prefix="suyuan-pg-"))
        owner = _owner()
        if owner is not None:
            os.chown(self.root, *owner)
        self.all: list[Cluster] = []

    def primary(self, name: str = "primary") -> Cluster:
        c = Cluster(self.bin, self.root / name, free_port(), name)
        c.run(
            "initdb",
            "-D",
            str(c.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )
        with open(c.data / "postgresql.conf", "a") as conf:
            conf.write(_CONF.format(port=c.port, root=self.root))
        with open(c.data / "pg_hba.conf", "a") as hba:
            hba.write("host replication postgres 127.0.0.1/32 trust\n")
        self.all.append(c)
        c.start()
        return c

    def standby(self, primary: Cluster, name: str) -> Cluster:
        """A hot standby streaming from ``primary``, named ``name`` in its connection."""
        c = Cluster(self.bin, self.root / name, free_port(), name)
        conninfo = f"host=127.0.0.1 port={primary.port} user=postgres application_name={name}"
        c.run(
            "pg_basebackup",
            "-d",
            conninfo,
            "-D",
            str(c.data),
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "--no-sync",
        )
        with open(c.data / "postgresql.auto.conf", "a") as conf:
            conf.write(f"port = {c.port}\nprimary_conninfo = '{conninfo}'\nsynchronous_standby_names = ''\n")
        self.all.append(c)
        c.start()
        return c

    def close(self) -> None:
        for c in self.all:
            if c.postmaster_pid() is not None and c.processes():
                c.stop("immediate")
            c.kill_all()
        for c in self.all:
            try:
                c.wait_gone(30)
            except ClusterError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)


_CONF = """
# suyuan test cluster
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{root}'
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
hot_standby = on
hot_standby_feedback = on
wal_keep_size = '256MB'
shared_buffers = '32MB'
max_connections = 60
fsync = on
synchronous_commit = on
"""


def replayed(standby: Cluster, primary: Cluster, timeout: float = 60) -> None:
    """Wait until ``standby`` has replayed everything ``primary`` has written so far."""
    target = str(primary.sql("SELECT pg_current_wal_lsn()")[0][0])
    deadline = time.monotonic() + timeout
    while True:
        done = standby.sql(f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn")[0][0]
        if done:
            return
        if time.monotonic() > deadline:
            raise ClusterError(f"{standby.name} did not replay up to {target}")
        time.sleep(0.05)
