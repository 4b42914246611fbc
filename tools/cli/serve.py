"""The servers: `serve` (the HTTP API and pages) and `agent` (an enterprise's capture
endpoint)."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

from ledger.core.errors import ConfigError, MalformedInput
from ledger.log.home import Home
from tools.cli.common import Commands, open_ledger


def cmd_serve(a: argparse.Namespace, home: Home) -> int:
    # The API and its server (Strawberry, Starlette, uvicorn: about 500 ms to import) load
    # for `serve` alone.
    import uvicorn

    from api.app import create_app
    from api.settings import Settings
    from api.visitors import parse_proxies
    from ledger.queries.scans import check_ready

    if a.workers < 1:
        raise MalformedInput(f"--workers is a number of processes, at least 1, not {a.workers}")
    if a.dev and a.workers > 1:
        raise MalformedInput("--dev serves from one process; leave out --workers or --dev")
    led = open_ledger(home)
    check_ready(led.store)  # refuse before binding a port: no ledger, or an old schema
    pin = led.pinned_key()
    if pin.problem:
        # Served anyway: the pages then say "not verified", with this reason.
        print(f'warning: {pin.problem}; every page will say "not verified"', file=sys.stderr)
    if a.trusted_proxy:
        # Through the environment: each worker process builds its Settings from it.
        os.environ["SUYUAN_TRUSTED_PROXIES"] = ",".join(
            str(n) for n in parse_proxies(a.trusted_proxy, where="--trusted-proxy")
        )
    if a.tiles_dir:
        # Every worker builds its app from the environment; they share the directory's lock.
        os.environ["SUYUAN_TILES_DIR"] = str(Path(a.tiles_dir).resolve())
    if a.db_read:
        os.environ["SUYUAN_DB_READ"] = " ".join(a.db_read)  # read replicas, as above
    settings = Settings.from_env(dev=a.dev)  # refuses a bad SUYUAN_TRUSTED_PROXIES here
    # uvicorn would take X-Forwarded-For from 127.0.0.1 on its own: the app decides whom
    # to believe (api/visitors.py), from the socket's own peer address.
    if a.workers > 1 and hasattr(socket, "SO_REUSEPORT"):
        return serve_workers(a.host, a.port, a.workers)
    if a.workers > 1:
        # Each worker process builds its own app from the same environment (SUYUAN_DB,
        # SUYUAN_HOME, SUYUAN_BASE_URL) and answers on the one shared socket.
        uvicorn.run(
            "api.app:create_app",
            factory=True,
            host=a.host,
            port=a.port,
            workers=a.workers,
            log_level="warning",
            proxy_headers=False,
        )
        return 0
    uvicorn.run(
        create_app(settings),
        host=a.host,
        port=a.port,
        proxy_headers=False,
        log_level="info" if a.dev else "warning",
    )
    return 0


def _listening(host: str, port: int) -> socket.socket:
    """A TCP socket of this worker's own on (host, port), shared with the other workers'
    through SO_REUSEPORT: the kernel spreads new connections over them."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(False)
    return sock


def _worker(host: str, port: int) -> None:
    import uvicorn

    sock = _listening(host, port)
    config = uvicorn.Config(
        "api.app:create_app",
        factory=True,
        host=host,
        port=port,
        log_level="warning",
        proxy_headers=False,
        access_log=False,
    )
    uvicorn.Server(config).run(sockets=[sock])


WORKER_RESTARTS = 10  # a worker that keeps dying is not restarted forever


def serve_workers(host: str, port: int, workers: int) -> int:
    """``workers`` server processes, each with a listening socket of its own on the port
    (SO_REUSEPORT; Linux spreads connections over them by their addresses), where workers
    sharing one socket let whichever wakes first accept every connection a client opens at
    once, leaving the others idle. Each builds its app from the environment, as uvicorn's
    workers do. A worker that dies is started again; SIGTERM or SIGINT stops them all
    (each finishes its requests and writes its queued scans)."""
    import multiprocessing
    import signal
    import time

    try:
        _listening(host, port).close()  # the port is free (else say so before starting any)
    except OSError as e:
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(host, port), daemon=False) for _ in range(workers)]
    for p in procs:
        p.start()
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    restarts = 0
    while not stopping:
        time.sleep(0.2)
        for n, p in enumerate(procs):
            if not p.is_alive() and not stopping:
                if restarts >= WORKER_RESTARTS:
                    print(f"error: worker {p.pid} exited ({p.exitcode}) too often; stopping", file=sys.stderr)
                    stopping = True
                    break
                restarts += 1
                procs[n] = ctx.Process(target=_worker, args=(host, port), daemon=False)
                procs[n].start()
    for p in procs:
        if p.is_alive() and p.pid is not None:
            os.kill(p.pid, signal.SIGTERM)
    for p in procs:
        p.join(30)
        if p.is_alive():
            p.kill()
    return 0 if restarts < WORKER_RESTARTS else 1


def cmd_agent(a: argparse.Namespace, home: Home) -> int:
    # The agent (its outbox and server, about 70 ms to import) loads for `agent` alone.
    from tools.agent import run

    return run(a, home)


def add_serve(sub: Commands) -> None:
    s = sub.add_parser(
        "serve", help="the HTTP API: /graphql, /healthz, /checkpoint, /log-key, resolver and page, /qr/"
    )
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument(
        "--dev",
        action="store_true",
        help="GraphiQL and introspection at /graphql, debug tracebacks, access logs",
    )
    s.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes sharing the port (e.g. one per core); default 1",
    )
    s.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        metavar="CIDR",
        help="a proxy or CDN network whose X-Forwarded-For and X-Region headers are "
        "believed (repeat for several; replaces SUYUAN_TRUSTED_PROXIES)",
    )
    s.add_argument(
        "--tiles-dir",
        metavar="DIR",
        help="keep DIR current with the log's static tiles, as `suyuan tiles export`, "
        "within a second of each checkpoint",
    )
    s.add_argument(
        "--db-read",
        action="append",
        default=[],
        metavar="URL",
        help="a read replica (PostgreSQL hot standby) to answer reads from; repeat "
        "for several (replaces SUYUAN_DB_READ); writes go to SUYUAN_DB",
    )
    s.set_defaults(fn=cmd_serve)


def add_agent(sub: Commands) -> None:
    s = sub.add_parser(
        "agent",
        help="the enterprise's EPCIS capture endpoint: signs with its own "
        "key and delivers to the ledger through a durable outbox",
    )
    s.add_argument("action", nargs="?", choices=("status",), help="status: the outbox's backlog")
    s.add_argument("--key", help="the party key's name in SUYUAN_HOME/keys")
    s.add_argument("--signer", help="the party id the key belongs to")
    s.add_argument("--ledger", help="the zone ledger's base URL, e.g. http://ledger:8000")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8020)
    s.add_argument("--db", help="the outbox's SQLAlchemy URL (default sqlite:///SUYUAN_HOME/agent.db)")
    s.add_argument("--token-file", help="the bearer token local clients must send (required beyond loopback)")
    s.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    s.add_argument("--tls-key", help="its private key (PEM)")
    s.add_argument("--tls-client-ca", help="require client certificates from this CA (mTLS)")
    s.set_defaults(fn=cmd_agent)
