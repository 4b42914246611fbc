"""Fixtures: one contract suite on SQLite and on PostgreSQL, and a small world to act in.

PostgreSQL: each test run gets its own database, each test its own schema in it. Locally a
missing server skips those tests with the reason; under CI (``CI`` set) it is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from tests.support import Client, World, loopback_port

PG_ADMIN_URL = os.environ.get("SUYUAN_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _pg_reachable() -> str | None:
    try:
        eng = sa.create_engine(PG_ADMIN_URL)
        with eng.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        eng.dispose()
        return None
    except Exception as e:  # any failure to connect means: no server here
        return f"{type(e).__name__}: {str(e).splitlines()[0]}"


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    problem = _pg_reachable()
    if problem is not None:
        msg = f"PostgreSQL not reachable at {PG_ADMIN_URL} ({problem})"
        if os.environ.get("CI"):
            pytest.fail(msg + " — CI must run the PostgreSQL half of the suite")
        pytest.skip(msg + "; set CI=1 to make this a failure")
    name = f"suyuan_t_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(PG_ADMIN_URL).set(database=name)
    yield url.render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/ledger.db"
        return
    yield fresh_schema_url(request.getfixturevalue("pg_database"))


def fresh_schema_url(base: str) -> str:
    """A URL of the test database whose search_path is a new, empty schema."""
    schema = f"s_{uuid.uuid4().hex[:12]}"
    eng = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    eng.dispose()
    return f"{base}?options=-csearch_path%3D{schema}"


@pytest.fixture
def world(db_url: str, tmp_path: object) -> Iterator[World]:
    w = World.create(db_url, home=f"{tmp_path}/home")
    yield w
    w.close()


@pytest.fixture
def client(world: World) -> Iterator[Client]:
    """The whole app over the world's ledger, through httpx's ASGI transport."""
    from api.app import create_app
    from api.settings import Settings

    app = create_app(Settings(db_url=world.url, home=world.home.path, base_url="https://trace.example"))
    yield Client(app)
    app.state.store.dispose()


@pytest.fixture
def port() -> Iterator[int]:
    """A loopback port held for the test (see support.loopback_port) for a server it starts
    as its own process: nothing else is given it before or between the server's runs."""
    with loopback_port() as p:
        yield p
