"""The servers: `serve` (the HTTP API and pages) and `agent` (an enterprise's capture
endpoint)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ledger.core.errors import MalformedInput
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
