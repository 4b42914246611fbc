"""The consumer page in a real browser: a uvicorn server on a loopback port, headless
Chromium with JavaScript switched off, phones 360 and 390 px wide, every page type (an
item, a lot, a GTIN, a recalled item, a counterfeit suspect, a mistyped code and an
unknown one) in Chinese and in English: no horizontal scroll, nothing green above a recall
or counterfeit warning, a screenshot of each, and the text a person would read.

Layout and colours are read through the DevTools protocol (``Page.getLayoutMetrics``,
``DOMSnapshot.captureSnapshot``), not page JavaScript, which is off as on the page itself.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them). Locally
the test skips with the reason when they are absent; under CI their absence fails it.
Set ``SUYUAN_SCREENSHOT_DIR`` to keep the screenshots (docs/consumer-page*.png are some).
"""

from __future__ import annotations

import colorsys
import os
import re
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
from tests.pagechain import (
    BONDED_EN,
    BONDED_ZH,
    FACTORY_EN,
    FACTORY_ZH,
    NAME_EN,
    NAME_ZH,
    RECALL_EN,
    RECALL_ZH,
    FormulaChain,
    witness_quorum,
)
from tests.support import World

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
WIDTHS = (360, 390)
HEIGHT = 800


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
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={WIDTHS[-1]},{HEIGHT}",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        "--lang=zh-CN",
    ):
        opts.add_argument(arg)
    # A phone in China (Accept-Language zh-CN), and the page must work with JavaScript off.
    opts.add_experimental_option(
        "prefs",
        {"intl.accept_languages": "zh-CN,zh", "profile.managed_default_content_settings.javascript": 2},
    )
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
    x["class"] = c.build_class_order()
    c.describe()
    witness_quorum(w, tmp_path, up=2, of=3, quorum=2)
    # Scans come through a front end on loopback that sets X-Region (a trusted proxy).
    app = create_app(
        Settings(
            db_url=w.url,
            home=w.home.path,
            base_url="http://127.0.0.1",
            trusted_proxies=parse_proxies("127.0.0.1"),
        )
    )
    try:
        with Server(app) as srv:
            # Three regions scan the unsold tin: a copied code.
            for region in ("CN-HE-Tangshan", "CN-GD-Shenzhen", "CN-XJ-Urumqi"):
                r = httpx.get(
                    srv.url(x["unsold"]),
                    timeout=30,
                    headers={
                        "X-Region": region,
                        "Accept": "text/html",
                        "User-Agent": "Mozilla/5.0 (Linux; Android 14) Chrome/131.0 Mobile",
                    },
                )
                assert r.status_code == 200
            yield srv, x
    finally:
        w.close()


def pages(x: dict[str, Any]) -> dict[str, tuple[str, int]]:
    """Every page type: its code and the HTTP status it answers with."""
    return {
        "item": (x["sold"], 200),
        "lot": (x["lot"], 200),
        "gtin": (x["class"], 200),
        "recalled": (x["recalled"], 200),
        "counterfeit": (x["unsold"], 200),
        "400": ("https://id.gs1.org/01/04901234567895/21/JP0001", 400),
        "404": ("https://id.gs1.org/01/04901234567894/21/NOPE", 404),
    }


# --- what the browser laid out --------------------------------------------------------------


def _rgba(css: str) -> tuple[float, float, float, float] | None:
    m = re.fullmatch(r"rgba?\(([\d.]+),\s*([\d.]+),\s*([\d.]+)(?:,\s*([\d.]+))?\)", css.strip())
    if not m:
        return None
    r, g, b = (float(m.group(i)) / 255 for i in (1, 2, 3))
    return r, g, b, float(m.group(4)) if m.group(4) is not None else 1.0


def is_green(css: str) -> bool:
    """A visible colour whose hue is green (75°-165°) and that is not a grey."""
    c = _rgba(css)
    if c is None or c[3] < 0.1:
        return False
    r, g, b, _ = c
    hue, light, sat = colorsys.rgb_to_hls(r, g, b)
    return 75 <= hue * 360 <= 165 and sat >= 0.2 and max(r, g, b) - min(r, g, b) >= 0.04


def test_green_means_green() -> None:
    """The colour test on known answers: the page's own greens, reds, oranges and greys."""
    for css in ("rgb(230, 244, 234)", "rgb(20, 90, 50)", "rgba(0, 128, 0, 1)"):
        assert is_green(css), css
    for css in (
        "rgb(176, 0, 32)",
        "rgb(255, 244, 229)",
        "rgb(11, 87, 208)",
        "rgb(61, 68, 81)",
        "rgb(243, 244, 246)",
        "rgba(0, 128, 0, 0)",
        "rgb(255, 255, 255)",
    ):
        assert not is_green(css), css


class Layout:
    """The page as Chromium laid it out: each element box with its colours and text."""

    STYLES = ["color", "background-color", "border-top-color", "display", "visibility"]

    def __init__(self, driver: Any) -> None:
        metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
        self.content_width = float(metrics["cssContentSize"]["width"])
        self.viewport_width = float(metrics["cssLayoutViewport"]["clientWidth"])
        self.height = float(metrics["cssContentSize"]["height"])
        snap = driver.execute_cdp_cmd("DOMSnapshot.captureSnapshot", {"computedStyles": self.STYLES})
        doc, strings = snap["documents"][0], snap["strings"]
        names = doc["nodes"]["nodeName"]
        attrs = doc["nodes"]["attributes"]
        layout = doc["layout"]
        self.boxes: list[dict[str, Any]] = []
        for node, bounds, styles in zip(layout["nodeIndex"], layout["bounds"], layout["styles"], strict=True):
            name = strings[names[node]]
            if name.startswith("#"):
                continue
            a = attrs[node]
            pairs = {strings[a[i]]: strings[a[i + 1]] for i in range(0, len(a), 2)}
            self.boxes.append(
                {
                    "name": name,
                    "class": pairs.get("class", ""),
                    "x": bounds[0],
                    "y": bounds[1],
                    "w": bounds[2],
                    "h": bounds[3],
                    **{k: strings[v] if v >= 0 else "" for k, v in zip(self.STYLES, styles, strict=True)},
                }
            )

    def first(self, css_class: str) -> dict[str, Any] | None:
        return next((b for b in self.boxes if css_class in b["class"].split()), None)

    def green_above(self, y: float) -> list[dict[str, Any]]:
        """Elements that start above ``y`` and show green (text, background or border)."""
        return [
            b
            for b in self.boxes
            if b["y"] < y
            and b["h"] > 0
            and b["visibility"] != "hidden"
            and any(is_green(b[k]) for k in ("color", "background-color", "border-top-color"))
        ]


def _load(driver: Any, url: str, width: int) -> tuple[str, Layout]:
    from selenium.webdriver.common.by import By

    driver.set_window_size(width, HEIGHT)
    driver.get(url)
    text = re.sub(r"\s+", " ", driver.find_element(By.TAG_NAME, "body").text)
    return text, Layout(driver)


def _shoot(driver: Any, layout: Layout, out: Path, width: int) -> None:
    """The whole page, phone-wide: the height the layout needs."""
    driver.set_window_size(width, max(HEIGHT, int(layout.height) + 140))
    driver.save_screenshot(str(out))
    keep = os.environ.get("SUYUAN_SCREENSHOT_DIR")
    if keep:
        shutil.copy(out, Path(keep) / out.name)


# What each page says, in each language: (words that must be there, words that must not).
WORDS: dict[tuple[str, str], tuple[tuple[str, ...], tuple[str, ...]]] = {
    ("item", "zh"): (
        (
            NAME_ZH,
            "原产国（地区）",
            "日本 (JP)",
            "1210 保税备货进口 / bonded import",
            "040220****0123",
            "放行时间",
            "2026-11-27 13:43 (UTC+08:00)",
            "2026-09-15 10:20 (UTC+09:00)",
            f"{FACTORY_ZH}（帯広，日本）",
            f"{BONDED_ZH}（唐山，中国）",
            "送达消费者",
            "✓ 记录已核验",
            "该检查点由账本签名，并由 2/3 个独立见证方联署",
            "本账本配置了 3 个独立见证方（w1.example/witness、w2.example/witness、w3.example/witness）",
        ),
        ("此商品已被召回", "仿冒", "GLN", "如海关、市场监管部门"),
    ),
    ("item", "en"): (
        (
            NAME_EN,
            "Japan (JP)",
            "1210 bonded import / 保税备货进口",
            "Released 2026-11-27 13:43 (UTC+08:00)",
            "Sakura Dairy Co., Ltd.",
            f"{FACTORY_EN}, Obihiro, Japan",
            f"{BONDED_EN}, Tangshan, China",
            "Caofeidian Customs",
            "Delivered to the consumer",
            "✓ Records verified",
            "signed by the ledger and cosigned by 2 of 3 independent witnesses",
            "not the quality of the product itself",
        ),
        ("GLN", "such as customs", "conformant"),
    ),
    ("lot", "zh"): (
        (NAME_ZH, "批号 L2026A", "放行情况 本批 3 件中 1 件已由海关放行", "生产赋码"),
        ("尚未放行", "单品序列号"),
    ),
    ("lot", "en"): (
        (NAME_EN, "1 of the 3 items of this lot released by customs", "Produced and coded"),
        ("not released yet", "Serial number"),
    ),
    ("gtin", "zh"): (
        (NAME_ZH, "品牌 樱花", "净含量 800克", "交易单据：采购订单", "唐山跨境优选电商平台"),
        ("transaction",),
    ),
    ("gtin", "en"): (
        (
            NAME_EN,
            "Brand Sakura",
            "Net content 800 g",
            "Business transaction: purchase order",
            "Tangshan Cross-border Select",
        ),
        ("唐山",),
    ),
    ("recalled", "zh"): (("⚠ 此商品已被召回", RECALL_ZH, "✓ 记录已核验"), (RECALL_EN,)),
    ("recalled", "en"): (("⚠ This product has been recalled", RECALL_EN), (RECALL_ZH,)),
    ("counterfeit", "zh"): (("⚠ 注意：可能是仿冒品", "个不同地区"), ()),
    ("counterfeit", "en"): (("⚠ Caution: this may be a counterfeit", "different regions"), ()),
    ("400", "zh"): (("追溯码有误", "GTIN 04901234567895 的校验位是 5，正确的应为 4。"), ()),
    ("400", "en"): (("This code has a typo", "has check digit 5; the correct one is 4"), ()),
    ("404", "zh"): (("未找到此追溯码", "https://id.gs1.org/01/04901234567894/21/NOPE"), ()),
    ("404", "en"): (("Code not found",), ()),
}
WARNED = {"recalled": "recall", "counterfeit": "fake"}


def test_every_page_type_on_phones_in_headless_chromium(
    live: tuple[Server, dict[str, Any]], tmp_path: Path
) -> None:
    srv, x = live
    driver = _browser_or_skip()
    shots = tmp_path / "shots"
    shots.mkdir()
    try:
        for kind, (code, status) in pages(x).items():
            answered = httpx.get(srv.url(code), headers={"Accept": "text/html"}, timeout=30)
            assert answered.status_code == status, (kind, answered.status_code)
            for lang in ("zh", "en"):
                for width in WIDTHS:
                    url = srv.url(code) + ("?lang=en" if lang == "en" else "")
                    text, layout = _load(driver, url, width)
                    where = f"{kind} page ({lang}) at {width} px"
                    # No horizontal scroll: the content is no wider than the screen.
                    assert layout.viewport_width == width, where
                    assert layout.content_width <= layout.viewport_width, (
                        f"{where} is {layout.content_width} px wide"
                    )
                    want, never = WORDS[(kind, lang)]
                    for words in want:
                        assert words in text, f"{where}: {words!r} missing"
                    for words in never:
                        assert words not in text, f"{where}: {words!r} shown"
                    # Every page has a title people can read, never a bare URL.
                    assert driver.title and not driver.title.startswith("http"), where
                    html_lang = driver.find_element("tag name", "html").get_attribute("lang")
                    assert html_lang == ("zh-CN" if lang == "zh" else "en"), where
                    if kind in WARNED:
                        # The warning comes first, and nothing green competes with it.
                        warning = layout.first(WARNED[kind])
                        assert warning is not None, where
                        main = [b for b in layout.boxes if b["name"] == "SECTION"]
                        assert main[0] is warning, where
                        bottom = warning["y"] + warning["h"]
                        green = layout.green_above(bottom)
                        assert green == [], f"{where}: green above the warning: {green}"
                        badge = layout.first("ok")
                        assert badge is not None and badge["y"] > bottom, where
                    _shoot(driver, layout, shots / f"{kind}-{lang}-{width}.png", width)
        # Served under the strict policy, and styled all the same: the stylesheet is
        # allowed by its hash, and the browser refused nothing.
        csp = httpx.get(srv.url(x["sold"]), headers={"Accept": "text/html"}, timeout=30).headers[
            "content-security-policy"
        ]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
        _load(driver, srv.url(x["sold"]), 390)
        badge = driver.find_element("css selector", ".badge.ok")
        assert badge.value_of_css_property("background-color") == "rgba(230, 244, 234, 1)"
        assert badge.value_of_css_property("border-radius") == "999px"
        refused = [
            e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]
        ]
        assert refused == []
        pngs = sorted(shots.iterdir())
        assert len(pngs) == len(pages(x)) * 2 * len(WIDTHS)
        for png in pngs:
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5_000
    finally:
        driver.quit()


def test_audit_report_on_phones_in_headless_chromium(tmp_path: Path) -> None:
    """The regulator's HTML report (tools/report.py) has no horizontal scroll at 360 or
    390 px: its charts shrink to the screen and its long codes wrap."""
    from ledger.log.home import Home
    from tools.report import collect, render_html

    w = World.create(f"sqlite:///{tmp_path}/ledger.db", home=tmp_path / "home")
    try:
        c = FormulaChain(w)
        x = c.build()
        c.build_recalled()
        c.describe()
        doc = collect(w.ledger, Home(w.home.path), scope=x["sold"])
    finally:
        w.close()
    report = tmp_path / "report.html"
    report.write_text(render_html(doc), encoding="utf-8")
    driver = _browser_or_skip()
    try:
        for width in WIDTHS:
            text, layout = _load(driver, report.as_uri(), width)
            assert "Integrity" in text
            wide = [
                (b["name"], b["class"], b["x"] + b["w"]) for b in layout.boxes if b["x"] + b["w"] > width
            ][:8]
            assert layout.content_width <= layout.viewport_width == width, (
                f"the report at {width} px is {layout.content_width} px wide: {wide}"
            )
            _shoot(driver, layout, tmp_path / f"report-{width}.png", width)
    finally:
        driver.quit()
