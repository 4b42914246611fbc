"""The regulator console: who gets in (a regulator's token, once, into a server-side
session), what a forged request gets (CSRF refused, no cookie readable by scripts or sent
by another site), and what a regulator sees (findings, chains with every entry's proof,
recall impact with buyers' contacts, parties, statistics, the audit report), through the
whole app over HTTP; then the same flows in headless Chromium with JavaScript off."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from api.app import create_app
from api.console import CSP as CONSOLE_CSP
from api.console.session import COOKIE, LOGIN_COOKIE
from api.pages import CSP as PAGE_CSP
from api.settings import Settings
from ledger.core.keys import PartyKey
from ledger.core.statements import sign_one
from ledger.core.tokens import make_token
from ledger.log.home import Home
from ledger.store.db import Store
from tests import support
from tests.support import ORIGIN, World
from tests.test_page import _browser_or_skip
from tools.demo import build, summary

PAGES = [
    "/console/",
    "/console/parties",
    "/console/stats",
    "/console/report",
    "/console/entry/1",
    "/console/chain?code=https://id.gs1.org/01/09506000134352/21/1",
    "/console/party/{party}",
]


class Browserless:
    """One user agent over the ASGI app: its own cookie jar, as a browser keeps one."""

    def __init__(self, app: Any, *, scheme: str = "http") -> None:
        self.app, self.base = app, f"{scheme}://console.test"
        self.cookies = httpx.Cookies()

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url=self.base, cookies=self.cookies) as c:
                r = await c.request(method, path, **kw)
                self.cookies = c.cookies
                return r

        return asyncio.run(go())

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("GET", path, **kw)

    def login_form(self) -> str:
        r = self.get("/console/login")
        assert r.status_code == 200, r.text
        found = re.search(r'name="csrf" value="([^"]+)"', r.text)
        assert found is not None
        return found.group(1)

    def login(self, token: str, *, csrf: str | None = None, next: str = "/console/") -> httpx.Response:
        form = {"token": token, "next": next}
        form["csrf"] = self.login_form() if csrf is None else csrf
        return self.request("POST", "/console/login", data=form)

    def page_csrf(self) -> str:
        found = re.search(
            r'action="/console/logout[^"]*"><input type="hidden" name="csrf" '
            r'value="([^"]+)"',
            self.get("/console/parties").text,
        )
        assert found is not None
        return found.group(1)


def _set_cookies(r: httpx.Response) -> dict[str, str]:
    return {h.split("=", 1)[0]: h for h in r.headers.get_list("set-cookie")}


@pytest.fixture
def console(world: World) -> Iterator[tuple[Any, World, dict[str, Any]]]:
    regulator, rkey = world.register(["regulator"])
    producer, pkey = world.register(["producer"])
    world.append_events(producer, pkey, 3)
    app = create_app(Settings(db_url=world.url, home=world.home.path, base_url="https://trace.example.cn"))
    people = {"regulator": (regulator, rkey), "producer": (producer, pkey)}
    yield app, world, people
    app.state.store.dispose()


def _token(people: dict[str, Any], who: str, **kw: Any) -> str:
    party, key = people[who]
    return make_token(key, signer=party, audience=ORIGIN, **kw)


def test_no_session_is_sent_to_the_login_form(console: tuple[Any, World, dict[str, Any]]) -> None:
    app, _, people = console
    ua = Browserless(app)
    for page in PAGES:
        page = page.format(party=people["producer"][0])
        r = ua.get(page)
        assert r.status_code == 303, (page, r.status_code)
        where = urlsplit(r.headers["location"])
        assert where.path == "/console/login"
        assert parse_qs(where.query)["next"] == [page]
        assert r.headers["cache-control"] == "no-store"
    # A cookie the server never issued is no session either.
    ua.cookies.set(COOKIE, "made-up", domain="console.test")
    assert ua.get("/console/").status_code == 303


def test_login_makes_a_session_whose_cookie_is_not_the_token(
    console: tuple[Any, World, dict[str, Any]],
) -> None:
    app, world, people = console
    ua = Browserless(app)
    token = _token(people, "regulator")
    r = ua.login(token, next="/console/parties")
    assert r.status_code == 303 and r.headers["location"] == "/console/parties"
    cookie = _set_cookies(r)[COOKIE]
    sid = cookie.split(";")[0].split("=", 1)[1]
    # HttpOnly (no script reads it), SameSite=Strict (no other site's request carries it),
    # scoped to the console, not Secure over plain http, and gone when the token would be.
    assert "; HttpOnly" in cookie and "; SameSite=Strict" in cookie and "; Path=/console" in cookie
    assert "Secure" not in cookie
    assert 0 < int(re.search(r"Max-Age=(\d+)", cookie).group(1)) <= 3600  # type: ignore[union-attr]
    # The browser holds a random id, not the token nor anything derived from it; the
    # server's file is named by the id's hash, so a listing shows no cookie either.
    assert token not in sid and sid not in token and len(sid) >= 40
    sessions = world.home.path / "console" / "sessions"
    files = list(sessions.iterdir())
    assert [f.name for f in files] == [hashlib.sha256(sid.encode()).hexdigest()]
    assert files[0].stat().st_mode & 0o777 == 0o600
    # The pre-login cookie is spent.
    assert "Max-Age=0" in _set_cookies(r)[LOGIN_COOKIE]
    page = ua.get("/console/parties")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert f"party {people['producer'][0][-6:]}" in page.text


def test_cookie_is_secure_over_tls(console: tuple[Any, World, dict[str, Any]]) -> None:
    app, _, people = console
    ua = Browserless(app, scheme="https")
    r = ua.login(_token(people, "regulator"))
    assert r.status_code == 303
    assert "; Secure" in _set_cookies(r)[COOKIE]
    assert ua.get("/console/").status_code == 200


def test_tokens_that_are_not_a_regulators_are_refused(console: tuple[Any, World, dict[str, Any]]) -> None:
    app, world, people = console
    ua = Browserless(app)
    producer = people["producer"][0]
    r = ua.login(_token(people, "producer"))
    assert r.status_code == 403
    assert f"此令牌属于 {producer}" in r.text and "regulator" in r.text
    assert COOKIE not in _set_cookies(r)
    forged_key = PartyKey.generate("forged")
    for token, status in (
        (make_token(forged_key, signer=people["regulator"][0], audience=ORIGIN), 401),
        (_token(people, "regulator", ttl=60, now=time.time() - 120), 401),
        (
            make_token(people["regulator"][1], signer=people["regulator"][0], audience="another.ledger/log"),
            401,
        ),
        ("not a token", 401),
        ("", 401),
    ):
        r = ua.login(token)
        assert r.status_code == status, (token[:20], r.status_code)
        assert COOKIE not in _set_cookies(r)
    assert not list((world.home.path / "console" / "sessions").iterdir())
    assert ua.get("/console/").status_code == 303


def test_forms_without_the_right_csrf_token_are_refused(console: tuple[Any, World, dict[str, Any]]) -> None:
    app, _, people = console
    token = _token(people, "regulator")
    # Login: no token in the form, a wrong one, or one made for another browser's nonce.
    ua = Browserless(app)
    ua.login_form()
    for csrf in ("", "0" * 64):
        r = ua.login(token, csrf=csrf)
        assert r.status_code == 403 and COOKIE not in _set_cookies(r)
    other = Browserless(app)
    stolen = other.login_form()
    ua.cookies.delete(LOGIN_COOKIE)  # a forged cross-site post carries no console cookie
    assert ua.login(token, csrf=stolen).status_code == 403
    assert ua.get("/console/").status_code == 303
    # Logout: the session survives a post without its token.
    assert ua.login(token).status_code == 303
    for form in ({}, {"csrf": "wrong"}, {"csrf": other.login_form()}):
        r = ua.request("POST", "/console/logout", data=form)
        assert r.status_code == 403
        assert ua.get("/console/").status_code == 200
    # A form of another type is not read at all.
    r = ua.request("POST", "/console/logout", json={"csrf": ua.page_csrf()})
    assert r.status_code == 400 and ua.get("/console/").status_code == 200


def test_logout_ends_the_session_for_good(console: tuple[Any, World, dict[str, Any]]) -> None:
    app, world, people = console
    ua = Browserless(app)
    assert ua.login(_token(people, "regulator")).status_code == 303
    old = dict(ua.cookies.items())
    r = ua.request("POST", "/console/logout", data={"csrf": ua.page_csrf()})
    assert r.status_code == 303 and r.headers["location"].startswith("/console/login")
    assert "Max-Age=0" in _set_cookies(r)[COOKIE]
    assert ua.get("/console/").status_code == 303
    # The old cookie, replayed, opens nothing: the session is gone on the server.
    replay = Browserless(app)
    for name, value in old.items():
        replay.cookies.set(name, value, domain="console.test")
    assert replay.get("/console/").status_code == 303
    assert not list((world.home.path / "console" / "sessions").iterdir())


def test_a_revoked_key_ends_its_sessions(console: tuple[Any, World, dict[str, Any]]) -> None:
    app, world, people = console
    ua = Browserless(app)
    assert ua.login(_token(people, "regulator")).status_code == 303
    assert ua.get("/console/").status_code == 200
    regulator, key = people["regulator"]
    world.ledger.append(
        sign_one(
            kind="party.key.revoke",
            signer=world.registrar,
            key=world.registrar_key,
            body={"party": regulator, "key": key.key_id},
        )
    )
    assert ua.get("/console/").status_code == 303


def test_next_never_leaves_the_console(console: tuple[Any, World, dict[str, Any]]) -> None:
    app, _, people = console
    for target in (
        "https://evil.example/",
        "//evil.example/console/",
        "/console/../graphql",
        "/checkpoint",
        "/console/\\evil",
        "/console//x",
    ):
        r = Browserless(app).login(_token(people, "regulator"), next=target)
        assert r.status_code == 303
        assert r.headers["location"] == "/console/", target
    r = Browserless(app).login(_token(people, "regulator"), next="/console/stats?lang=en")
    assert r.headers["location"] == "/console/stats?lang=en"


def test_headers_and_policies(console: tuple[Any, World, dict[str, Any]]) -> None:
    app, _, people = console
    ua = Browserless(app)
    login = ua.get("/console/login")
    assert login.headers["content-security-policy"] == CONSOLE_CSP
    assert "form-action 'self'" in CONSOLE_CSP and "script" not in CONSOLE_CSP
    assert "frame-ancestors 'none'" in CONSOLE_CSP and "default-src 'none'" in CONSOLE_CSP
    style = re.search(r"<style>(.*?)</style>", login.text, re.S)
    assert style is not None
    import base64

    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    assert f"'sha256-{digest}'" in CONSOLE_CSP
    # Everything else keeps the pages' policy: no form may post anywhere.
    other = ua.get("/healthz")
    assert other.headers["content-security-policy"] == PAGE_CSP
    assert "form-action 'none'" in PAGE_CSP


def test_what_a_regulator_sees(console: tuple[Any, World, dict[str, Any]]) -> None:
    app, world, people = console
    ua = Browserless(app)
    assert ua.login(_token(people, "regulator")).status_code == 303
    producer = people["producer"][0]
    for page in PAGES:
        r = ua.get(page.format(party=producer) + ("&" if "?" in page else "?") + "lang=en")
        assert r.status_code == 200, (page, r.text[:500])
        assert '<html lang="en">' in r.text and "Sign out" in r.text
    chain = ua.get("/console/chain?code=https://id.gs1.org/01/09506000134352/21/1")
    assert "✓ 已核验" in chain.text and "✗" not in chain.text
    entry = ua.get("/console/entry/1")
    assert "✓ 针对第" in entry.text
    # Bad input: a console page saying so, with the status of the refusal.
    for path, status, text in (
        ("/console/chain?code=https://id.gs1.org/01/09506000134353/21/1", 400, "bad_identifier"),
        ("/console/chain?code=https://id.gs1.org/01/09506000134352/21/none", 404, "no entry about"),
        ("/console/entry/999", 404, "not_found"),
        ("/console/party/uscc:91310110666007217T", 404, "not a registered"),
        ("/console/party/nobody", 400, "bad_identifier"),
        ("/console/?rule=nope", 400, "unknown finding rule"),
        ("/console/?since=yesterday", 400, "a date such as"),
        ("/console/party/x?after=-5", 400, "after is a seq"),
    ):
        r = ua.get(path)
        assert r.status_code == status, (path, r.status_code)
        assert text in r.text and "Traceback" not in r.text, path
        assert r.headers["content-type"].startswith("text/html")


# --- the demo in a browser ------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, dict[str, Any]]]:
    tmp = tmp_path_factory.mktemp("console-demo")
    url = f"sqlite:///{tmp}/demo.db"
    home = Home(tmp / "home")
    store = Store(url)
    built = build(store, home, scale=0.2)
    doc = summary(built, base_url="https://trace.example.cn", elapsed=0.0, db=url)
    store.dispose()
    app = create_app(Settings(db_url=url, home=home.path, base_url="https://trace.example.cn"))
    try:
        with support.Server(app, lifespan="on") as srv:
            yield srv, doc
    finally:
        app.state.store.dispose()


def _text(driver: Any) -> str:
    """What the page reads as (innerText through DevTools: WebDriver's own visible-text
    walk takes minutes over a page of a few thousand nodes in closed <details>)."""
    got: str = driver.execute_cdp_cmd("Runtime.evaluate", {"expression": "document.body.innerText"})[
        "result"
    ]["value"]
    return got


def _arrive(driver: Any, path: str) -> None:
    """Wait for the page a click leads to (the click returns before it loads); a path
    ending in / is matched exactly, any other as a prefix."""
    from selenium.webdriver.support.wait import WebDriverWait

    def there(now: str) -> bool:
        return now == path if path.endswith("/") and path != "/console/entry/" else (now.startswith(path))

    WebDriverWait(driver, 30).until(
        lambda d: (
            there(urlsplit(d.current_url).path)
            and d.execute_cdp_cmd("Runtime.evaluate", {"expression": "document.readyState"})["result"][
                "value"
            ]
            == "complete"
        )
    )


def _shoot(driver: Any, url: str, out: Path, width: int) -> str:
    driver.set_window_size(width, 900)
    if url:
        driver.get(url)
    text = _text(driver)
    scroll = driver.execute_cdp_cmd(
        "Runtime.evaluate", {"expression": "document.documentElement.scrollWidth"}
    )["result"]["value"]
    assert scroll <= width, f"{driver.current_url} is {scroll} px wide at {width} px"
    height = int(driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]["height"])
    driver.set_window_size(width, min(max(900, height + 140), 6000))
    driver.save_screenshot(str(out))
    keep = os.environ.get("SUYUAN_SCREENSHOT_DIR")
    if keep:
        shutil.copy(out, Path(keep) / out.name)
    driver.set_window_size(width, 900)
    return text


def test_console_in_headless_chromium(demo_server: tuple[Any, dict[str, Any]], tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    srv, doc = demo_server
    base = f"http://127.0.0.1:{srv.port}"
    driver = _browser_or_skip()
    shots = tmp_path / "shots"
    shots.mkdir()
    try:
        # No session: the login form, with the page asked for remembered.
        driver.set_window_size(1280, 900)
        driver.get(base + "/console/?lang=zh")
        assert urlsplit(driver.current_url).path == "/console/login"
        _shoot(driver, "", shots / "console-login.png", 360)
        driver.find_element(By.ID, "token").send_keys(doc["regulatorToken"])
        driver.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
        _arrive(driver, "/console/")
        cookie = driver.get_cookie(COOKIE)
        assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert cookie["value"] != doc["regulatorToken"]
        findings = _shoot(driver, "", shots / "console-findings.png", 1280)
        assert "合规发现" in findings and "三单信息不一致" in findings
        assert "唐山市市场监督管理局" in findings  # who is signed in, by name

        # Filter by rule, without JavaScript: the form is a plain GET.
        from selenium.webdriver.support.select import Select
        from selenium.webdriver.support.wait import WebDriverWait

        Select(driver.find_element(By.ID, "rule")).select_by_value("three_docs.mismatch")
        driver.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
        WebDriverWait(driver, 30).until(lambda d: "rule=three_docs.mismatch" in d.current_url)
        items = driver.find_elements(By.CSS_SELECTOR, "ul.findings li")
        assert items and all("three_docs.mismatch" in i.text for i in items)

        # A finding → its product chain → one of its entries.
        items[0].find_element(By.CSS_SELECTOR, "a[href*='/console/chain']").click()
        _arrive(driver, "/console/chain")
        chain = _text(driver)
        assert "全部条目的签名和包含证明均已核验" in chain and "✓ 已核验" in chain
        assert "三单信息不一致" in chain or "three_docs" in chain
        driver.find_element(By.CSS_SELECTOR, "table a[href*='/console/entry/']").click()
        _arrive(driver, "/console/entry/")
        entry = _text(driver)
        assert re.search(r"✓ 针对第 \d+ 号检查点的包含证明和签名", entry), entry[:400]
        _shoot(driver, "", shots / "console-entry.png", 360)

        # The recalled lot: recall impact by owner, and the buyers to call.
        lot = doc["planted"]["recalledLot"]
        recall = _shoot(driver, f"{base}/console/chain?code={lot}", shots / "console-chain.png", 1280)
        assert "此产品已被召回" in recall and "召回影响" in recall
        counts = driver.find_element(By.CSS_SELECTOR, "p.counts").text
        found = re.search(r"(\d+) 受影响 (\d+) 已售出 (\d+) 未售出", counts.replace("\n", " "))
        assert found is not None, counts
        affected, sold, unsold = map(int, found.groups())
        assert affected == sold + unsold and sold > 0
        assert "购买者联系方式（仅监管部门可见）" in recall
        phones = [
            td.text
            for td in driver.find_elements(
                By.XPATH, "//h2[contains(., '购买者联系方式')]/following-sibling::section[1]//tbody/tr/td[2]"
            )
        ]
        assert phones and all(re.fullmatch(r"1\d{10}", p) for p in phones), phones[:5]

        # English, and every page type at phone widths without sideways scrolling.
        en = _shoot(driver, f"{base}/console/chain?code={lot}&lang=en", shots / "console-chain-en.png", 390)
        assert "This product was recalled" in en and "Buyers' contacts" in en
        regulator = doc["regulator"]["id"]
        for width in (360, 390):
            for name, path in (
                ("findings", "/console/"),
                ("chain", f"/console/chain?code={lot}"),
                ("parties", "/console/parties"),
                ("stats", "/console/stats"),
                ("report", "/console/report"),
                ("entry", "/console/entry/5"),
                ("party", f"/console/party/{regulator}"),
            ):
                _shoot(driver, base + path, shots / f"phone-{name}-{width}.png", width)
        refused = [
            e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]
        ]
        assert refused == []

        # Sign out: back to the login form, and the console is closed again.
        driver.get(base + "/console/")
        driver.find_element(By.CSS_SELECTOR, "header form button[type=submit]").click()
        _arrive(driver, "/console/login")
        driver.get(base + "/console/parties")
        assert urlsplit(driver.current_url).path == "/console/login"
    finally:
        driver.quit()
    for png in shots.iterdir():  # kept in SUYUAN_SCREENSHOT_DIR when it is set
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
