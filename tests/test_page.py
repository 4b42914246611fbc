"""The consumer page in a real browser: a uvicorn server on a loopback port, headless
Chromium with JavaScript switched off and a phone-sized window, a screenshot, and the
text a person would read.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them). Locally
the test skips with the reason when they are absent; under CI their absence fails it.
Set ``SUYUAN_SCREENSHOT_DIR`` to keep the screenshots (docs/consumer-page.png is one).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.settings import Settings
from api.visitors import parse_proxies
from tests import support
from tests.pagechain import NAME_EN, NAME_ZH, FormulaChain, witness_quorum
from tests.support import World

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
PHONE = (390, 844)


def _browser_or_skip() -> Any:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    try:
        from selenium import webdriver  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    if missing:
        msg = f"headless Chromium test needs {', '.join(missing)} (Debian: chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(msg + " — CI installs them in .ci/run")
        pytest.skip(msg)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={PHONE[0]},{PHONE[1]}", "--hide-scrollbars",
                "--force-device-scale-factor=1", "--lang=zh-CN"):
        opts.add_argument(arg)
    # A phone in China (Accept-Language zh-CN), and the page must work with JavaScript off.
    opts.add_experimental_option("prefs", {"intl.accept_languages": "zh-CN,zh",
                                           "profile.managed_default_content_settings.javascript": 2})
    # The console, to see whether the Content-Security-Policy refused anything.
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


class Server(support.Server):
    """The app on loopback, with its lifespan (scans' readiness check)."""

    def __init__(self, app: Any) -> None:
        super().__init__(app, lifespan="on")

    def url(self, code: str) -> str:
        return f"http://127.0.0.1:{self.port}" + code.removeprefix("https://id.gs1.org")


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[Server, dict[str, Any]]]:
    w = World.create(f"sqlite:///{tmp_path}/ledger.db", home=tmp_path / "home")
    c = FormulaChain(w)
    x = c.build()
    x["recalled"] = c.build_recalled()["tins"][0]
    witness_quorum(w, tmp_path, up=2, of=3, quorum=2)
    # Scans come through a front end on loopback that sets X-Region (a trusted proxy).
    app = create_app(Settings(db_url=w.url, home=w.home.path, base_url="http://127.0.0.1",
                              trusted_proxies=parse_proxies("127.0.0.1")))
    try:
        with Server(app) as srv:
            # Three regions scan the unsold tin: a copied code.
            for region in ("CN-HE-Tangshan", "CN-GD-Shenzhen", "CN-XJ-Urumqi"):
                r = httpx.get(srv.url(x["unsold"]), timeout=30, headers={
                    "X-Region": region, "Accept": "text/html",
                    "User-Agent": "Mozilla/5.0 (Linux; Android 14) Chrome/131.0 Mobile"})
                assert r.status_code == 200
            yield srv, x
    finally:
        w.close()


def _shoot(driver: Any, url: str, out: Path) -> str:
    driver.set_window_size(*PHONE)
    driver.get(url)
    from selenium.webdriver.common.by import By

    text: str = driver.find_element(By.TAG_NAME, "body").text
    # The whole page, phone-wide: the height the layout needs (DevTools, not page JS).
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    height = int(metrics["cssContentSize"]["height"])
    driver.set_window_size(PHONE[0], max(PHONE[1], height + 140))
    driver.save_screenshot(str(out))
    keep = os.environ.get("SUYUAN_SCREENSHOT_DIR")
    if keep:
        shutil.copy(out, Path(keep) / out.name)
    return text


def test_consumer_page_in_headless_chromium(live: tuple[Server, dict[str, Any]],
                                            tmp_path: Path) -> None:
    srv, x = live
    driver = _browser_or_skip()
    try:
        shots = tmp_path / "shots"
        shots.mkdir()
        page = _shoot(driver, srv.url(x["sold"]), shots / "consumer-page.png")
        assert driver.find_element("tag name", "html").get_attribute("lang") == "zh-CN"
        # Served under the strict policy, and styled all the same: the stylesheet is
        # allowed by its hash, and the browser refused nothing.
        csp = httpx.get(srv.url(x["sold"]), headers={"Accept": "text/html"},
                        timeout=30).headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
        badge = driver.find_element("css selector", ".badge.ok")
        assert badge.value_of_css_property("background-color") == "rgba(230, 244, 234, 1)"
        assert badge.value_of_css_property("border-radius") == "999px"
        refused = [e["message"] for e in driver.get_log("browser")
                   if "Content Security Policy" in e["message"]]
        assert refused == []
        for want in (NAME_ZH, "原产国（地区）", "日本 (JP)", "1210 保税备货进口 / bonded import",
                     "040220****0123", "放行时间", "2026-11-27 13:43", "送达消费者", "✓ 已验证",
                     "该检查点由账本签名，并由 2/3 个独立见证方联署"):
            assert want in page, want
        assert "此商品已被召回" not in page and "仿冒" not in page

        recalled = _shoot(driver, srv.url(x["recalled"]), shots / "recalled.png")
        assert "⚠ 此商品已被召回" in recalled and "铁含量低于标签标示值" in recalled

        fake = _shoot(driver, srv.url(x["unsold"]), shots / "counterfeit.png")
        assert "⚠ 注意：可能是仿冒品" in fake and "3 个不同地区" in fake

        en = _shoot(driver, srv.url(x["sold"]) + "?lang=en", shots / "consumer-page-en.png")
        for want in (NAME_EN, "Japan (JP)", "1210 bonded import / 保税备货进口",
                     "signed by the ledger and cosigned by 2 of 3 independent witnesses"):
            assert want in en, want
        for png in shots.iterdir():
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    finally:
        driver.quit()
