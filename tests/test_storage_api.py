"""A database that fails under the server is told as the ``storage`` refusal — one
sentence and its code, HTTP 503 — on HTTP routes and in GraphQL answers, never as a bare
500 or GraphQL's "Unexpected error."; and nothing is appended."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from api.app import create_app
from api.settings import Settings
from tests.support import Client, World

SUBMIT = "mutation($e: [JSON!]!) { submit(envelopes: $e) { index receipt { seq } error { code message } } }"


def test_a_database_that_cannot_be_opened_is_a_storage_refusal(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    world = World.create(f"sqlite:///{db}", home=tmp_path / "home")
    producer, key = world.register()
    world.append_events(producer, key, 1)
    world.close()
    app = create_app(Settings(db_url=world.url, home=world.home.path, base_url="https://trace.example"))
    client = Client(app)
    assert client.get("/epcis/events").status_code == 200

    # The file goes away under the server (a volume unmounted): a directory in its place.
    app.state.store.dispose()
    shutil.move(db, tmp_path / "elsewhere.db")
    db.mkdir()

    r = client.get("/epcis/events")
    assert r.status_code == 503, r.text
    error = r.json()["error"]
    assert error["code"] == "storage", error
    assert error["message"].startswith("the database file cannot be opened (the ledger's database: "), error

    r = client.post("/graphql", json={"query": SUBMIT, "variables": {"e": [world.event(producer, key, 2)]}})
    assert r.status_code == 200, r.text
    (problem,) = r.json()["errors"]
    assert problem["extensions"]["code"] == "storage", problem
    assert problem["message"].startswith("the database file cannot be opened"), problem
    assert "Unexpected error" not in json.dumps(r.json())

    # Back in place: the event was not appended, the ledger is as it was.
    app.state.store.dispose()
    db.rmdir()
    shutil.move(tmp_path / "elsewhere.db", db)
    r = client.post("/graphql", json={"query": "{ checkpoint { size } }"})
    assert r.json()["data"]["checkpoint"]["size"] == 3, r.text
    app.state.store.dispose()
