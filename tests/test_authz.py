"""Who may read and sign what (issue 10, items 3-5), attacked through the public interface
on SQLite and PostgreSQL: the `suyuan` command (``tools.cli.main`` in process) and GraphQL
(the ASGI app, each party with its own bearer token); and a history that breaks a rule
through direct writes to the database is named by `suyuan audit`.

3. Private data belongs to the statement that first committed to it: naming another's
   commitment is refused (``private_reused``) and never makes its blob readable.
4. A GTIN under a registered GS1 company prefix is made and recalled only by the prefix's
   holder or a party it delegated the prefix to (``prefix_not_held``).
5. A negative-listed party answers a recall only with goods the ledger shows under one,
   and only by moving, holding or destroying them — whatever words its event uses.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from api.app import create_app
from api.settings import Settings
from ledger.core import ids
from ledger.core.keys import PartyKey
from ledger.core.private import make_blob
from ledger.core.statements import sign_one
from ledger.store.db import Store
from tests.support import ORIGIN, World, new_uscc
from tests.test_auth import Api
from tools import cli as suyuan

BRAND_PREFIX = "4512345"  # a GS1 company prefix (Japan, 7 digits)
OTHER = "09506000134352"  # GS1's example GTIN: its prefix is registered by nobody here
T0 = "2026-11-27T10:00:00+08:00"


def gtin(prefix: str, ref: str) -> str:
    body = "0" + prefix + ref
    return body + ids.gs1_check_digit(body)


BRAND_GTIN = gtin(BRAND_PREFIX, "00017")


def item(g: str, serial: object) -> str:
    return f"https://id.gs1.org/01/{g}/21/{serial}"


def event(**f: Any) -> dict[str, Any]:
    return {"type": "ObjectEvent", "action": "OBSERVE", "eventTime": T0, "eventTimeZoneOffset": "+08:00", **f}


def commissioning(*codes: str, **f: Any) -> dict[str, Any]:
    return event(action="ADD", bizStep="commissioning", epcList=list(codes), **f)


def recall(*codes: str) -> dict[str, Any]:
    return event(
        bizStep="cbec:recalling",
        disposition="recalled",
        epcList=list(codes),
        **{"cbec:recall": {"reason": "召回 recall", "scope": list(codes)}},
    )


# --- the `suyuan` command, in process -------------------------------------------------------


@dataclass(frozen=True)
class Run:
    rc: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def lines(self) -> list[Any]:
        return [json.loads(line) for line in self.out.splitlines()]


class _Store(Store):
    """The command's own store, kept to be closed after each command (a process would)."""

    opened: list[Store] = []

    def __init__(self, url: str | None = None) -> None:
        super().__init__(url)
        self.opened.append(self)


class Cli:
    """``suyuan`` on the world's database and SUYUAN_HOME; keys it files are parties' own."""

    def __init__(self, world: World, capsys: pytest.CaptureFixture[str], tmp: Path) -> None:
        self.world, self.capsys, self.tmp = world, capsys, tmp
        self.n = 0

    def __call__(self, *args: str, rc: int = 0) -> Run:
        self.capsys.readouterr()
        try:
            code = suyuan.main(list(args))
        finally:
            while _Store.opened:
                _Store.opened.pop().dispose()
        got = self.capsys.readouterr()
        run = Run(code, got.out, got.err)
        assert run.rc == rc, f"suyuan {' '.join(args)} exited {run.rc}, not {rc}\n{got.err}"
        return run

    def party(self, name: str, roles: str, *prefixes: str) -> tuple[str, PartyKey]:
        """A party registered with `suyuan keygen` and `suyuan party register`."""
        party = new_uscc()
        self("keygen", name)
        extra = [a for p in prefixes for a in ("--gs1-prefix", p)]
        self(
            "party",
            "register",
            "--id",
            party,
            "--name",
            f"{name} 株式会社",
            "--roles",
            roles,
            "--key",
            name,
            *extra,
        )
        return party, self.world.home.keys.load(name)

    def submit(self, *envelopes: dict[str, Any], rc: int = 0) -> Run:
        """`suyuan submit` of a file the parties signed (a JSON array)."""
        self.n += 1
        path = self.tmp / f"batch{self.n}.json"
        path.write_text(json.dumps(list(envelopes), ensure_ascii=False))
        return self("submit", str(path), rc=rc)


@pytest.fixture
def cli(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> Cli:
    monkeypatch.setenv("SUYUAN_DB", world.url)
    monkeypatch.setenv("SUYUAN_HOME", str(world.home.path))
    monkeypatch.setattr(suyuan, "Store", _Store)
    return Cli(world, capsys, tmp_path)


@pytest.fixture
def api(world: World) -> Iterator[Api]:
    app = create_app(Settings(db_url=world.url, home=world.home.path))
    yield Api(app)
    app.state.store.dispose()


def refusal(run: Run, code: str) -> str:
    """The one refused envelope's sentence, as `suyuan submit` prints it (exit 2)."""
    assert run.rc == 2 and run.out == "", run
    lines = run.err.strip().splitlines()
    assert lines[0].startswith("error [batch_rejected]: "), run.err
    mine = [ln for ln in lines[1:] if f"[{code}]" in ln]
    assert mine, run.err
    return mine[0]


def signed(who: tuple[str, PartyKey], body: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return sign_one(kind=kw.pop("kind", "event"), signer=who[0], key=who[1], body=body, issued=T0, **kw)


def gql_data(r: Any) -> dict[str, Any]:
    assert r.status_code == 200 and "errors" not in r.json(), r.text
    return dict(r.json()["data"])


SUBMIT_Q = """mutation($e: [JSON!]!) { submit(envelopes: $e) { index error { code message }
  receipt { seq } } }"""
PRIVATE_Q = "query($s: Int!) { entry(seq: $s) { seq private { status data } } }"


def token(who: tuple[str, PartyKey]) -> str:
    from ledger.core.tokens import make_token

    return make_token(who[1], signer=who[0], audience=ORIGIN)


# --- 3. private data belongs to the statement that first committed to it -----------------------


def _order(world: World) -> tuple[int, str, dict[str, Any], str]:
    """A platform's order whose buyer (name, phone, address) is private; it names the
    payment institution, which may read it too."""
    platform = world.register(["platform"])
    payer, _ = world.register(["payment"])
    commitment, blob = make_blob(
        {"buyer": {"name": "王秀英", "phone": "13912345678", "address": "唐山市路北区建设北路 12 号"}}
    )
    body = {
        "type": "TransactionEvent",
        "action": "ADD",
        "eventTime": T0,
        "eventTimeZoneOffset": "+08:00",
        "epcList": [item(OTHER, 900)],
        "bizTransactionList": [{"type": "cbec:order", "bizTransaction": "urn:suyuan:order:1"}],
        "destinationList": [{"type": "owning_party", "destination": payer}],
    }
    seq = world.ledger.append_batch([signed(platform, body, private=commitment)], private={commitment: blob})[
        0
    ].seq
    return seq, commitment, blob, payer


def test_naming_anothers_commitment_is_refused_and_reads_nothing_cli(world: World, cli: Cli) -> None:
    owner, commitment, blob, payer = _order(world)
    attacker = cli.party("atk", "producer")
    size = world.ledger.size()
    # The attack: its own commissioning, signed by itself, naming the order's commitment.
    stolen = signed(attacker, commissioning(item(OTHER, 1)), private=commitment)
    line = refusal(cli.submit(stolen, rc=2), "private_reused")
    assert f"belongs to the statement at seq {owner}" in line
    assert world.ledger.size() == size
    # Nothing of the owner's statement is shown to it either.
    err = cli("entry", str(owner), "--viewer", f"party:{attacker[0]}", rc=2).err
    assert err.startswith("error [not_entitled]: ") and "王秀英" not in err
    shown = cli("entry", str(owner), "--viewer", f"party:{payer}").json()["privateData"]
    assert shown == blob

    # Twice in one batch: the second names the first's seq.
    commitment2, blob2 = make_blob({"price": "298.00"})
    first = signed(attacker, commissioning(item(OTHER, 2)), private=commitment2)
    second = signed(attacker, commissioning(item(OTHER, 3)), private=commitment2)
    path = cli.tmp / "pair.json"
    path.write_text(json.dumps([{"envelope": first, "private": blob2}, second]))
    line = refusal(cli("submit", str(path), rc=2), "private_reused")
    assert line.lstrip().startswith("envelope 1:") and f"seq {size}" in line
    assert world.ledger.size() == size
    # Its own fresh commitment is fine.
    cli.submit(signed(attacker, commissioning(item(OTHER, 4)), private=make_blob({"x": 1})[0]))


def test_naming_anothers_commitment_over_graphql(world: World, api: Api) -> None:
    owner, commitment, blob, payer = _order(world)
    attacker = world.register(["producer"])
    stolen = signed(attacker, commissioning(item(OTHER, 1)), private=commitment)
    [res] = gql_data(api.gql(SUBMIT_Q, e=[stolen]))["submit"]
    assert res["receipt"] is None and res["error"]["code"] == "private_reused"
    assert f"seq {owner}" in res["error"]["message"]
    as_attacker = gql_data(api.gql(PRIVATE_Q, token(attacker), s=owner))["entry"]["private"]
    assert as_attacker == {"status": "not_entitled", "data": None}
    entries = gql_data(
        api.gql("{ entries(first: 100) { edges { node { seq private { data } } } } }", token(attacker))
    )["entries"]["edges"]
    assert "王秀英" not in json.dumps(entries, ensure_ascii=False)


def test_a_reused_commitment_in_the_database_is_named_and_shows_nothing(world: World, cli: Cli) -> None:
    """Someone with write access removes the owner from the private_commitments index, so
    the append path lets a reuse in: the audit names it, and after a rebuild the reuser
    still reads nothing, because the owning statement's parties alone are entitled."""
    owner, commitment, blob, payer = _order(world)
    attacker = cli.party("atk", "producer")
    world.store.raw("DELETE FROM private_commitments")
    reused = cli.submit(signed(attacker, commissioning(item(OTHER, 1)), private=commitment)).lines()[0]["seq"]
    rep = cli("audit", "--json", rc=1).json()
    assert any(p["seq"] == owner and "private_commitments" in p["problem"] for p in rep["problems"])
    cli("reindex")
    rep = cli("audit", "--json", rc=1).json()
    assert [(p["seq"], p["problem"].split(":")[0]) for p in rep["problems"]] == [(reused, "private_reused")]
    err = cli("entry", str(reused), "--viewer", f"party:{attacker[0]}", rc=2).err
    assert err.startswith("error [not_entitled]: ")
    assert cli("entry", str(reused), "--viewer", f"party:{payer}").json()["privateData"] == blob


# --- 4. a brand's GTINs are made and recalled by the brand or its delegate ----------------------


def test_brand_hijack_is_refused_cli(world: World, cli: Cli) -> None:
    brand = cli.party("brand", "producer,brand_owner", BRAND_PREFIX)
    attacker = cli.party("atk", "producer")
    maker = cli.party("maker", "producer")
    shown = cli("party", "show", "--id", brand[0]).json()
    assert shown["gs1Prefixes"] == [BRAND_PREFIX] and shown["delegations"] == []

    # The attack: another producer commissions the brand's GTIN, then recalls it.
    size = world.ledger.size()
    line = refusal(cli.submit(signed(attacker, commissioning(item(BRAND_GTIN, 1))), rc=2), "prefix_not_held")
    assert f"prefix {BRAND_PREFIX} is held by {brand[0]}" in line
    cli.submit(signed(brand, commissioning(item(BRAND_GTIN, 1))))
    refusal(cli.submit(signed(attacker, recall(item(BRAND_GTIN, 1))), rc=2), "prefix_not_held")
    # A transformation's outputs and a class-level commissioning are making too.
    making = [
        {
            "type": "TransformationEvent",
            "eventTime": T0,
            "eventTimeZoneOffset": "+08:00",
            "inputEPCList": [item(OTHER, 7)],
            "outputEPCList": [item(BRAND_GTIN, 8)],
        },
        commissioning(
            quantityList=[{"epcClass": f"https://id.gs1.org/01/{BRAND_GTIN}/10/L9", "quantity": 10}]
        ),
    ]
    for body in making:
        refusal(cli.submit(signed(attacker, body), rc=2), "prefix_not_held")
    assert world.ledger.size() == size + 1

    # Contract manufacturing: the brand delegates its prefix, for a while, and revokes it.
    cli("party", "delegate", "--id", brand[0], "--key", "brand", "--prefix", BRAND_PREFIX, "--to", maker[0])
    cli.submit(
        signed(maker, commissioning(item(BRAND_GTIN, 2))), signed(maker, commissioning(item(BRAND_GTIN, 5)))
    )
    cli.submit(signed(maker, recall(item(BRAND_GTIN, 2))))
    # The brand recalls what its contract manufacturer made, as its own products.
    cli.submit(signed(brand, recall(item(BRAND_GTIN, 5))))
    assert cli("party", "show", "--id", brand[0]).json()["delegations"][0]["to"] == maker[0]
    cli(
        "party",
        "delegate",
        "--id",
        brand[0],
        "--key",
        "brand",
        "--prefix",
        BRAND_PREFIX,
        "--to",
        maker[0],
        "--revoke",
    )
    refusal(cli.submit(signed(maker, commissioning(item(BRAND_GTIN, 3))), rc=2), "prefix_not_held")
    cli(
        "party",
        "delegate",
        "--id",
        brand[0],
        "--key",
        "brand",
        "--prefix",
        BRAND_PREFIX,
        "--to",
        maker[0],
        "--until",
        "2001-01-01T00:00:00+08:00",
    )  # already over
    refusal(cli.submit(signed(maker, commissioning(item(BRAND_GTIN, 3))), rc=2), "prefix_not_held")
    # Only the holder delegates, and only what it holds.
    err = cli(
        "party",
        "delegate",
        "--id",
        attacker[0],
        "--key",
        "atk",
        "--prefix",
        BRAND_PREFIX,
        "--to",
        attacker[0],
        rc=2,
    ).err
    assert "[prefix_not_held]" in err and brand[0] in err

    # A GTIN under no registered prefix is accepted and raises a finding, once.
    cli.submit(
        signed(attacker, commissioning(item(OTHER, 1), item(OTHER, 2))),
        signed(attacker, commissioning(item(OTHER, 3))),
    )
    found = cli("findings", "--rule", "gtin.unregistered_prefix").lines()
    assert [(f["parties"], f["codes"], f["severity"]) for f in found] == [
        ([attacker[0]], [f"https://id.gs1.org/01/{OTHER}"], "low")
    ]
    assert cli("audit").rc == 0


def test_prefixes_are_registrar_cosigned_and_never_shared(world: World, cli: Cli) -> None:
    brand = cli.party("brand", "brand_owner", BRAND_PREFIX, "69012345")
    for taken in (BRAND_PREFIX, BRAND_PREFIX + "6", BRAND_PREFIX[:5]):  # the same, inside, around
        cli("keygen", f"k{taken}")
        err = cli(
            "party",
            "register",
            "--id",
            new_uscc(),
            "--name",
            "copycat",
            "--roles",
            "producer",
            "--key",
            f"k{taken}",
            "--gs1-prefix",
            taken,
            rc=2,
        ).err
        assert err.startswith("error [batch_rejected]") and "[prefix_taken]" in err and brand[0] in err
    for bad in ("123", "1234567890123", "45l2345"):
        err = cli(
            "party",
            "register",
            "--id",
            new_uscc(),
            "--name",
            "x",
            "--roles",
            "producer",
            "--key",
            f"k{BRAND_PREFIX}",
            "--gs1-prefix",
            bad,
            rc=2,
        ).err
        assert err.startswith("error [malformed]: ") and "4 to 12 digits" in err
    # Without the registrar's cosignature the prefix is not taken.
    squatter = new_uscc()
    key = PartyKey.generate(squatter)
    env = sign_one(
        kind="party.register",
        signer=squatter,
        key=key,
        body={
            "id": squatter,
            "name": "squatter",
            "roles": ["producer"],
            "publicKey": key.public_key_b64,
            "gs1Prefixes": ["4999999"],
        },
    )
    refusal(cli.submit(env, rc=2), "registrar_cosignature_missing")


def test_brand_hijack_over_graphql(world: World, api: Api) -> None:
    brand = world.register(["brand_owner"], gs1_prefixes=[BRAND_PREFIX])
    attacker = world.register(["producer"])
    d = gql_data(
        api.gql(
            "query($id: String!) { party(id: $id) { gs1Prefixes } "
            'parties(role: "brand_owner") { id gs1Prefixes } }',
            id=brand[0],
        )
    )
    assert d["party"] == {"gs1Prefixes": [BRAND_PREFIX]}
    assert {"id": brand[0], "gs1Prefixes": [BRAND_PREFIX]} in d["parties"]
    size = world.ledger.size()
    for body in (commissioning(item(BRAND_GTIN, 1)), recall(item(BRAND_GTIN, 1))):
        [res] = gql_data(api.gql(SUBMIT_Q, token(attacker), e=[signed(attacker, body)]))["submit"]
        assert res["error"]["code"] == "prefix_not_held" and BRAND_PREFIX in res["error"]["message"]
    assert world.ledger.size() == size


def test_a_hijack_written_past_the_projection_is_named_by_the_audit(world: World, cli: Cli) -> None:
    """Someone with write access empties the prefix index, so the append path lets the
    hijack in; the audit replays the registry from entries and names the entry."""
    cli.party("brand", "brand_owner", BRAND_PREFIX)
    attacker = cli.party("atk", "producer")
    world.store.raw("DELETE FROM gs1_prefixes")
    seq = cli.submit(signed(attacker, commissioning(item(BRAND_GTIN, 1)))).lines()[0]["seq"]
    rep = cli("audit", "--json", rc=1).json()
    assert [p["seq"] for p in rep["problems"]] == [seq]
    assert f"prefix {BRAND_PREFIX}" in rep["problems"][0]["problem"]
    cli("reindex")
    with world.store.reading() as conn:
        assert conn.exec_driver_sql("SELECT prefix FROM gs1_prefixes").scalars().all() == [BRAND_PREFIX]


def test_the_new_projections_rebuild_identically(world: World) -> None:
    """Prefixes, delegations (one revoked, one running out) and commitment owners come back
    byte for byte from `suyuan reindex`."""
    from ledger.log.reindex import reindex
    from ledger.store import tracedb

    brand = world.register(["brand_owner", "producer"], gs1_prefixes=[BRAND_PREFIX, "69012345"])
    makers = [world.register(["producer"]) for _ in range(2)]
    world.ledger.append_batch(
        [
            signed(brand, {"prefix": BRAND_PREFIX, "to": makers[0][0]}, kind="prefix.delegate"),
            signed(
                brand,
                {"prefix": "69012345", "to": makers[1][0], "until": "2030-01-01T00:00:00Z"},
                kind="prefix.delegate",
            ),
            signed(makers[0], commissioning(item(BRAND_GTIN, 1))),
            signed(brand, {"prefix": BRAND_PREFIX, "to": makers[0][0]}, kind="prefix.revoke"),
        ]
    )
    _order(world)
    with world.store.reading() as conn:
        before = tracedb.dump_projections(conn)
    assert [r[:2] for r in before["gs1_prefixes"]] == [(BRAND_PREFIX, brand[0]), ("69012345", brand[0])]
    assert [(r[0], r[1], r[3]) for r in before["prefix_delegations"]] == [
        ("69012345", makers[1][0], "2030-01-01T00:00:00.000000Z")
    ]
    assert len(before["private_commitments"]) == 1
    reindex(world.store)
    with world.store.reading() as conn:
        assert tracedb.dump_projections(conn) == before


def test_migration_0010_goes_down_and_up(world: World) -> None:
    import sqlalchemy as sa

    from ledger.log.reindex import reindex
    from ledger.store import migrate

    new = {"gs1_prefixes", "prefix_delegations", "private_commitments"}
    world.register(["brand_owner"], gs1_prefixes=[BRAND_PREFIX])
    owner = _order(world)[0]
    migrate.downgrade(world.store.engine, "0009")
    assert not new & set(sa.inspect(world.store.engine).get_table_names())
    world.store.migrate()
    assert new <= set(sa.inspect(world.store.engine).get_table_names())
    reindex(world.store)  # a migrated ledger fills them from its entries
    with world.store.reading() as conn:
        assert (
            world.store.commitment_owners(
                conn, [world.ledger.entry(owner).decoded()["envelope"]["statement"]["private"]]
            )
            != {}
        )
    assert [p.gs1_prefixes for p in world.ledger.party_records(None).values() if p.gs1_prefixes] == [
        (BRAND_PREFIX,)
    ]


# --- 5. a negative-listed party answers a recall only by the ledger's facts ---------------------


def _listed(world: World) -> dict[str, tuple[str, PartyKey]]:
    """A producer with a lot on the ledger (items 1-3 of lot L1; 1 and 2 packed in a case),
    a carrier and a merchant, both negative-listed, and the regulator."""
    p = {
        "producer": world.register(["producer"]),
        "carrier": world.register(["logistics"]),
        "merchant": world.register(["merchant"]),
        "regulator": world.register(["regulator"]),
    }
    case = "https://id.gs1.org/00/345123450000000012"
    world.ledger.append_batch(
        [
            signed(
                p["producer"],
                commissioning(*(item(BRAND_GTIN, n) for n in (1, 2, 3, 4)), ilmd={"cbvmda:lotNumber": "L1"}),
            ),
            signed(
                p["producer"],
                event(
                    type="AggregationEvent",
                    action="ADD",
                    bizStep="packing",
                    parentID=case,
                    childEPCs=[item(BRAND_GTIN, n) for n in (1, 2)],
                ),
            ),
            *(
                signed(
                    p["regulator"],
                    {
                        "list": "negative",
                        "action": "add",
                        "party": p[who][0],
                        "reason": "走私嫌疑 / suspected smuggling",
                    },
                    kind="list.update",
                )
                for who in ("carrier", "merchant")
            ),
        ]
    )
    return p


def test_saying_recalled_answers_nothing_cli(world: World, cli: Cli) -> None:
    p = _listed(world)
    lister = cli.party("lister", "producer")
    world.ledger.append(
        signed(
            p["regulator"],
            {"list": "negative", "action": "add", "party": lister[0], "reason": "假冒"},
            kind="list.update",
        )
    )
    size = world.ledger.size()
    # The attack: a listed party's ordinary events, dressed up as answers to a recall.
    attacks = [
        (
            p["carrier"],
            event(bizStep="shipping", disposition="recalled", epcList=[item(BRAND_GTIN, 1)]),
            "is under no recall on the ledger",
        ),
        (lister, commissioning(item(OTHER, 77), disposition="recalled"), "adds objects"),
    ]
    for who, body, why in attacks:
        line = refusal(cli.submit(signed(who, body), rc=2), "negative_listed")
        assert "only answers to a recall are accepted" in line and why in line
    assert world.ledger.size() == size

    # The lot is recalled: now moving, returning or holding its items answers the recall,
    # whatever the event says of them.
    lot = f"https://id.gs1.org/01/{BRAND_GTIN}/10/L1"
    cli.submit(
        signed(
            p["regulator"],
            event(bizStep="cbec:recalling", disposition="recalled", quantityList=[{"epcClass": lot}]),
        )
    )
    cli.submit(signed(p["carrier"], event(bizStep="shipping", epcList=[item(BRAND_GTIN, 1)])))
    cli.submit(
        signed(
            p["carrier"],
            event(
                bizStep="receiving",
                disposition="returned",
                epcList=[item(BRAND_GTIN, 3), item(BRAND_GTIN, 2)],
            ),
        )
    )
    cli.submit(signed(p["carrier"], event(bizStep="holding", epcList=[item(BRAND_GTIN, 4)])))
    # ... but not selling them, nor moving anything else with them.
    line = refusal(
        cli.submit(
            signed(
                p["merchant"],
                event(bizStep="retail_selling", disposition="recalled", epcList=[item(BRAND_GTIN, 1)]),
            ),
            rc=2,
        ),
        "negative_listed",
    )
    assert "transaction (retail_selling) neither moves, holds, returns nor destroys" in line
    line = refusal(
        cli.submit(
            signed(p["carrier"], event(bizStep="shipping", epcList=[item(BRAND_GTIN, 1), item(OTHER, 5)])),
            rc=2,
        ),
        "negative_listed",
    )
    assert f"{item(OTHER, 5)} is under no recall" in line
    assert cli("audit").rc == 0


def test_a_listed_party_over_graphql(world: World, api: Api) -> None:
    p = _listed(world)
    shipping = event(bizStep="shipping", disposition="recalled", epcList=[item(BRAND_GTIN, 2)])
    [res] = gql_data(api.gql(SUBMIT_Q, token(p["carrier"]), e=[signed(p["carrier"], shipping)]))["submit"]
    assert res["error"]["code"] == "negative_listed" and "under no recall" in res["error"]["message"]
    # Its case is recalled (the recall of a container covers what is packed in it).
    world.ledger.append(signed(p["producer"], recall("https://id.gs1.org/00/345123450000000012")))
    [res] = gql_data(api.gql(SUBMIT_Q, token(p["carrier"]), e=[signed(p["carrier"], shipping)]))["submit"]
    assert res["error"] is None and res["receipt"]["seq"] == world.ledger.size() - 1


def test_a_fake_recall_in_the_database_is_named_by_the_audit(world: World, cli: Cli) -> None:
    """Someone with write access marks an item recalled that nobody recalled, so the append
    path takes the listed carrier's event for an answer; the audit reads the entry the mark
    names and, finding no recall there, names the carrier's entry."""
    p = _listed(world)
    producer_seq = world.ledger.size() - 4  # the commissioning of items 1-4
    world.store.raw(
        "INSERT INTO code_marks (code, mark, seq, utc) VALUES "
        "(:c, 'recalled', :s, '2026-11-27T02:00:00.000000Z')",
        {"c": item(BRAND_GTIN, 3), "s": producer_seq},
    )
    seq = cli.submit(signed(p["carrier"], event(bizStep="shipping", epcList=[item(BRAND_GTIN, 3)]))).lines()[
        0
    ]["seq"]
    rep = cli("audit", "--json", rc=1).json()
    assert [p["seq"] for p in rep["problems"]] == [seq]
    assert "negative list" in rep["problems"][0]["problem"]


# --- the contract other systems validate against ------------------------------------------------

STATEMENT_EXAMPLES = sorted(
    (Path(__file__).resolve().parent.parent / "schemas" / "examples" / "statements").glob("*.json")
)


@pytest.mark.parametrize("path", STATEMENT_EXAMPLES, ids=lambda p: p.stem)
def test_statement_examples_validate_as_the_ledger_judges_them(path: Path) -> None:
    """schemas/envelope.schema.json and the ledger agree on the new statement shapes: the
    examples pass both, and a prefix that is not 4 to 12 digits fails both."""
    import copy

    from ledger.core import registry
    from ledger.core.errors import MalformedInput
    from ledger.core.keys import verify
    from ledger.core.statements import SIGNING_DOMAIN, prepare
    from ledger.epcis import bodies
    from ledger.epcis import validation as schemas

    pytest.importorskip("jsonschema")
    env = json.loads(path.read_text(encoding="utf-8"))
    assert schemas.reference_error_paths(env, schemas.ENVELOPE_SCHEMA) == []
    p = prepare(env)
    bodies.check_body(p)
    embedded = registry.embedded_keys(p)
    if p.key in embedded:  # a registration's own signature, with the key it introduces
        verify(embedded[p.key], SIGNING_DOMAIN + p.statement_bytes, p.signatures[0].sig, who=p.signer)
    bad = copy.deepcopy(env)
    body = bad["statement"]["body"]
    if p.kind == "masterdata":  # an attribute without its id: both refuse it
        body["attributes"].append({"attribute": "x"})
        assert schemas.reference_error_paths(bad, schemas.ENVELOPE_SCHEMA) != []
        with pytest.raises(MalformedInput, match="must be an object with id and attribute"):
            bodies.check_body(prepare(bad))
        return
    if "gs1Prefixes" in body:
        body["gs1Prefixes"] = ["123"]
    else:
        body["prefix"] = "45l2345"
    assert schemas.reference_error_paths(bad, schemas.ENVELOPE_SCHEMA) != []
    with pytest.raises(MalformedInput, match="4 to 12 digits"):
        bodies.check_body(prepare(bad))


def test_there_are_statement_examples() -> None:
    assert [p.stem for p in STATEMENT_EXAMPLES] == [
        "01-party-register-brand",
        "02-prefix-delegate",
        "03-prefix-revoke",
        "04-masterdata-location",
        "05-masterdata-product",
    ]
