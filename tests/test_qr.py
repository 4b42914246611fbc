"""QR trace codes and label sheets, read back the way a phone or a printer's proofreader
would: every image is decoded by an independent reader (zxing-cpp), SVGs are rasterised by
cairosvg, PDF sheets by PDFium, and the texts are compared exactly with the Digital Links.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import cairosvg
import pypdfium2 as pdfium
import pytest
import qrcode
import qrcode.constants
import zxingcpp
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from api.app import create_app
from api.qr import CACHE_CONTROL, digital_link_url, qr_image, qr_modules
from api.settings import Settings
from ledger.core import ids
from ledger.core.errors import IdentifierError, MalformedInput
from ledger.core.statements import sign_one
from ledger.queries.trace import lot_items
from tests.support import Client, World
from tests.test_cli import REPO, Cli, Run

BASE = "https://trace.example.cn"
GTIN = "09506000134352"  # GS1's example GTIN; check digit 2
OTHER_GTIN = "0695000000001" + ids.gs1_check_digit("0695000000001")
CARTON = "06950000000000001" + ids.gs1_check_digit("06950000000000001")  # an SSCC


# --- independent readers --------------------------------------------------------------------


def decode(image: Image.Image) -> list[Any]:
    results = zxingcpp.read_barcodes(image.convert("L"))
    assert all(r.valid for r in results)
    return list(results)


def decode_one(image: Image.Image) -> Any:
    results = decode(image)
    assert len(results) == 1, f"expected one QR code, read {len(results)}"
    r = results[0]
    assert r.format == zxingcpp.BarcodeFormat.QRCode
    return r


def read_png(data: bytes) -> Any:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    return decode_one(Image.open(io.BytesIO(data)))


def read_svg(data: bytes) -> Any:
    root = ET.fromstring(data)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert len(root.findall("{http://www.w3.org/2000/svg}path")) == 1  # one path, vector
    png = cairosvg.svg2png(bytestring=data, output_width=400, output_height=400)
    return decode_one(Image.open(io.BytesIO(png)))


def read_pdf(data: bytes) -> tuple[list[list[Any]], list[str]]:
    """Per page: the QR codes decoded from a 144 dpi rendering, and the page's text."""
    doc = pdfium.PdfDocument(data)
    codes, texts = [], []
    try:
        for i in range(len(doc)):
            page = doc[i]
            w, h = page.get_size()
            assert (round(w / 72 * 25.4), round(h / 72 * 25.4)) == (210, 297)  # A4
            codes.append(decode(page.render(scale=2).to_pil()))
            tp = page.get_textpage()
            texts.append(tp.get_text_range())
            tp.close()
            page.close()
    finally:
        doc.close()
    return codes, texts


# --- codes, URLs, images --------------------------------------------------------------------

KNOWN = [
    # (code in any accepted form, Digital Link path, GS1 element string)
    (f"https://id.gs1.org/01/{GTIN}/21/123", f"/01/{GTIN}/21/123", f"(01){GTIN}(21)123"),
    (
        f"https://brand.example.com/shop/01/{GTIN[1:]}/10/L%2F7/21/A-1",
        f"/01/{GTIN}/10/L%2F7/21/A-1",
        f"(01){GTIN}(10)L/7(21)A-1",
    ),
    # EPC Tag Data Standard's own example: company prefix 0614141, item reference 812345.
    ("urn:epc:id:sgtin:0614141.812345.6789", "/01/80614141123458/21/6789", "(01)80614141123458(21)6789"),
    (
        "urn:epc:class:lgtin:4012345.012345.998877",
        "/01/04012345123456/10/998877",
        "(01)04012345123456(10)998877",
    ),
    ("urn:epc:id:sscc:0614141.1234567890", "/00/106141412345678908", "(00)106141412345678908"),
    (GTIN, f"/01/{GTIN}", f"(01){GTIN}"),
]


@pytest.mark.parametrize(("code", "path", "hri"), KNOWN)
def test_paths_urls_and_element_strings(code: str, path: str, hri: str) -> None:
    assert ids.digital_link_path(code) == path
    assert ids.element_string(code) == hri
    assert digital_link_url(BASE, code) == BASE + path
    assert digital_link_url(BASE + "/", code) == BASE + path


def test_bad_codes_are_refused_with_the_expected_digit() -> None:
    with pytest.raises(IdentifierError, match="expected 2"):
        digital_link_url(BASE, "https://id.gs1.org/01/09506000134353/21/1")
    with pytest.raises(IdentifierError):
        digital_link_url(BASE, "not a code")


@pytest.mark.parametrize(("code", "path", "hri"), KNOWN)
def test_png_and_svg_decode_to_the_digital_link(code: str, path: str, hri: str) -> None:
    text = digital_link_url(BASE, code)
    for data, read in ((qr_image(text, "png"), read_png), (qr_image(text, "svg"), read_svg)):
        r = read(data)
        assert r.text == text
        assert r.ec_level == "M"
    assert qr_image(text, "png") == qr_image(text, "png")  # same text, same bytes: cacheable


def test_unknown_format_is_refused() -> None:
    with pytest.raises(MalformedInput, match="not one of png, svg"):
        qr_image(BASE, "gif")


def _qrcode_rows(text: str) -> list[bytes]:
    """The symbol the qrcode package makes (every image the API serves), as 0/1 rows."""
    q = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=0)
    q.add_data(text)
    q.make(fit=True)
    return [bytes(map(int, row)) for row in q.get_matrix()]


@settings(max_examples=150, deadline=None)
@given(
    st.one_of(
        st.text(min_size=1, max_size=400),  # any Unicode: byte mode, UTF-8
        st.from_regex(r"[0-9]{1,500}", fullmatch=True),  # numeric mode
        st.from_regex(r"[0-9A-Z $%*+./:-]{1,400}", fullmatch=True),  # alphanumeric mode
        # Digital Links with long digit and capital runs: mixed segments
        st.builds(
            lambda serial, tail: f"{BASE}/01/{GTIN}/21/{serial}{tail}",
            st.from_regex(r"[0-9]{1,40}", fullmatch=True),
            st.from_regex(r"[A-Z0-9]{0,30}", fullmatch=True),
        ),
    )
)
def test_fast_symbols_are_the_qrcode_packages_module_for_module(text: str) -> None:
    # Label sheets draw api/qrsymbol.py's symbols: the same segments, version, codewords,
    # placement and mask choice as the qrcode package, down to the last module (versions
    # 1 to 40 with the long texts, version information from 7 on).
    assert qr_modules(text) == _qrcode_rows(text)


def test_fast_symbols_decode_at_level_m() -> None:
    text = f"{BASE}/01/{GTIN}/21/ABC%2F123"
    rows = qr_modules(text)
    n, scale = len(rows), 8
    img = Image.new("L", ((n + 8) * scale, (n + 8) * scale), 255)
    for r, row in enumerate(rows):
        for c, dark in enumerate(row):
            if dark:
                img.paste(0, ((c + 4) * scale, (r + 4) * scale, (c + 5) * scale, (r + 5) * scale))
    got = decode_one(img)
    assert (got.text, got.ec_level) == (text, "M")


def test_label_bench_runs_at_a_tiny_size() -> None:
    # The speed of a 1,000-label sheet is measured by `python -m tools.bench labels`, never
    # asserted here: this only keeps the benchmark running.
    from tools.bench import bench_labels

    doc = bench_labels(30)
    assert (doc["labels"], doc["pages"]) == (30, 2)
    assert doc["label_sheet_s_1000"]["bound"] == 10.0


# --- HTTP -------------------------------------------------------------------------------------


@pytest.fixture
def http(tmp_path: Path) -> Any:
    # QR codes need no ledger read: any database URL will do.
    app = create_app(Settings(db_url=f"sqlite:///{tmp_path}/x.db", base_url=BASE))
    yield Client(app)
    app.state.store.dispose()


def test_qr_route_png_and_svg(http: Client) -> None:
    r = http.get(f"/qr/01/{GTIN}/21/123.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert read_png(r.content).text == f"{BASE}/01/{GTIN}/21/123"
    assert r.headers["cache-control"] == CACHE_CONTROL
    again = http.get(f"/qr/01/{GTIN}/21/123.png", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    s = http.get(f"/qr/01/{GTIN}/21/123.svg")
    assert s.status_code == 200 and s.headers["content-type"].startswith("image/svg+xml")
    assert read_svg(s.content).text == f"{BASE}/01/{GTIN}/21/123"
    assert s.headers["etag"] != r.headers["etag"]


def test_qr_route_carries_the_canonical_path(http: Client) -> None:
    # A GTIN-13 and an escaped '/' in a lot: the code carries the canonical spelling.
    r = http.get(f"/qr/01/{GTIN[1:]}/10/A%2FB/21/7.png")
    assert r.status_code == 200
    assert read_png(r.content).text == f"{BASE}/01/{GTIN}/10/A%2FB/21/7"
    dotted = http.get(f"/qr/01/{GTIN}/21/v1.2.svg")  # only the last dot starts the suffix
    assert read_svg(dotted.content).text == f"{BASE}/01/{GTIN}/21/v1.2"


def test_qr_route_refusals(http: Client) -> None:
    bad = http.get("/qr/01/09506000134353/21/1.png")
    assert bad.status_code == 400
    err = bad.json()["error"]
    assert err["code"] == "bad_identifier" and "expected 2" in err["message"]
    for path in (f"/qr/01/{GTIN}/21/1.gif", f"/qr/01/{GTIN}/21/1", f"/qr/01/{GTIN}.jpeg"):
        r = http.get(path)
        assert r.status_code == 400, path
        assert r.json()["error"]["code"] == "bad_format"
        assert ".png or .svg" in r.json()["error"]["message"]
    assert http.get("/qr/.png").status_code == 400
    assert http.get("/qr/99/123.png").json()["error"]["code"] == "bad_identifier"


# --- the ledger: items of a lot ---------------------------------------------------------------


def _event(epcs: list[str], lot: str | None = None, minute: int = 0) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "ObjectEvent",
        "action": "ADD",
        "bizStep": "commissioning",
        "eventTime": f"2026-11-27T10:{minute:02d}:00+08:00",
        "eventTimeZoneOffset": "+08:00",
        "epcList": epcs,
    }
    if lot is not None:
        body["ilmd"] = {"cbvmda:lotNumber": lot}
    return body


def build_lots(world: World, size: int) -> list[str]:
    """Lot L1 of ``GTIN``: ``size`` items commissioned with its lot number, in two events
    and out of serial order, and two more named with /10/L1 in their links; beside it
    items of lot L2 and of lot L1 of another GTIN, which are not its items."""
    party, key = world.register(("producer",))
    item = f"https://id.gs1.org/01/{GTIN}/21/"
    half = size // 2
    bodies = [
        _event([item + str(n) for n in range(half, size)], "L1", 1),
        _event([item + str(n) for n in range(half)], "L1", 2),
        _event([f"https://id.gs1.org/01/{GTIN}/10/L1/21/X{n}" for n in (10, 9)], None, 3),
        _event([item + f"B{n}" for n in range(3)], "L2", 4),
        _event([f"https://id.gs1.org/01/{OTHER_GTIN}/21/{n}" for n in range(3)], "L1", 5),
        # Packing names items again, which makes them no more items of the lot.
        {
            "type": "AggregationEvent",
            "action": "ADD",
            "bizStep": "packing",
            "eventTime": "2026-11-27T10:06:00+08:00",
            "eventTimeZoneOffset": "+08:00",
            "parentID": "https://id.gs1.org/00/" + CARTON,
            "childEPCs": [item + str(n) for n in range(min(size, 5))],
        },
    ]
    world.ledger.append_batch(
        [
            sign_one(kind="event", signer=party, key=key, body=b, issued="2026-11-27T10:00:00+08:00")
            for b in bodies
        ]
    )
    first = [item + str(n) for n in range(half, size)]
    second = [item + str(n) for n in range(half)]
    return first + second + [item + "X9", item + "X10"]


def test_lot_items_from_ilmd_and_lot_links(world: World) -> None:
    expected = build_lots(world, 12)
    lot = f"https://id.gs1.org/01/{GTIN}/10/L1"
    got = lot_items(world.store, lot)
    assert got == {"lot": lot, "items": expected}
    # The same lot as an EPC class URN (company prefix 9506000, reference 013435).
    assert lot_items(world.store, "urn:epc:class:lgtin:9506000.013435.L1") == got
    assert lot_items(world.store, f"https://id.gs1.org/01/{GTIN}/10/L9")["items"] == []
    with pytest.raises(IdentifierError, match="not a lot"):
        lot_items(world.store, f"https://id.gs1.org/01/{GTIN}/21/1")


# --- the command ------------------------------------------------------------------------------


class QrCli(Cli):
    def env(self) -> dict[str, str]:
        return {**super().env(), "SUYUAN_BASE_URL": BASE}

    def raw(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-m", "tools.cli", *args], cwd=REPO, env=self.env(), timeout=120, **kw
        )


@pytest.fixture
def qr_cli(world: World) -> QrCli:
    return QrCli(world.url, world.home.path)


def test_cli_one_code_to_file_and_stdout(qr_cli: QrCli, tmp_path: Path) -> None:
    code = "urn:epc:id:sgtin:0614141.812345.6789"
    want = f"{BASE}/01/80614141123458/21/6789"
    png = tmp_path / "a.png"
    doc = qr_cli("qr", code, "--out", str(png)).json()
    assert doc == {"file": str(png), "format": "png", "text": want, "bytes": png.stat().st_size}
    assert read_png(png.read_bytes()).text == want
    proc = qr_cli.raw("qr", f"https://id.gs1.org/01/{GTIN}/21/9", "--format", "svg", capture_output=True)
    assert proc.returncode == 0, proc.stderr
    r = read_svg(proc.stdout)
    assert (r.text, r.ec_level) == (f"{BASE}/01/{GTIN}/21/9", "M")
    other = qr_cli("qr", code, "--base-url", "https://scan.example.org/", "--out", str(png))
    assert read_png(png.read_bytes()).text == "https://scan.example.org/01/80614141123458/21/6789"
    assert other.json()["text"] == "https://scan.example.org/01/80614141123458/21/6789"


def test_cli_refuses_binary_to_a_terminal_and_bad_codes(qr_cli: QrCli) -> None:
    main, sub = os.openpty()
    try:
        proc = qr_cli.raw("qr", f"https://id.gs1.org/01/{GTIN}/21/9", stdout=sub, stderr=subprocess.PIPE)
    finally:
        os.close(sub)
        os.close(main)
    assert proc.returncode == 2
    assert proc.stderr.decode().startswith("error [usage]: a PNG image is not for a terminal")
    bad = qr_cli("qr", "https://id.gs1.org/01/09506000134353/21/9", rc=2)
    assert bad.err.startswith("error [bad_identifier]:") and "expected 2" in bad.err
    assert bad.out == ""
    assert qr_cli("qr", rc=2).err.startswith("error [usage]:")
    assert qr_cli("qr", "--lot", f"https://id.gs1.org/01/{GTIN}/10/L1", rc=2).err.startswith("error [usage]:")


def test_cli_refuses_codes_without_a_public_base_url(world: World, tmp_path: Path) -> None:
    # Before: an unset SUYUAN_BASE_URL printed http://127.0.0.1:8000/… into every label.
    items = build_lots(world, 3)
    bare = Cli(world.url, world.home.path)  # no SUYUAN_BASE_URL
    lot = f"https://id.gs1.org/01/{GTIN}/10/L1"
    sheet, png = tmp_path / "labels.pdf", tmp_path / "one.png"
    for args in (("--lot", lot, "--sheet", str(sheet)), (f"{lot}/21/1", "--out", str(png))):
        r = bare("qr", *args, rc=2)
        assert r.err.startswith("error [no_base_url]: printed codes carry the resolver's address")
        assert "set SUYUAN_BASE_URL or --base-url to the public address" in r.err
        for base, why in (
            ("http://127.0.0.1:8000", "127.0.0.1 is the loopback address"),
            ("http://localhost:8000/", "localhost is a name only this machine"),
            ("http://192.168.1.20", "192.168.1.20 is an address of a private"),
            ("http://[fe80::1]:8000", "fe80::1 is an address of a private"),
            ("http://suyuan-box:8000", "suyuan-box is a single-label name"),
            ("https://trace.corp.local", "trace.corp.local is a name only"),
        ):
            r = bare("qr", *args, "--base-url", base, rc=2)
            assert r.err.startswith(
                "error [private_base_url]: printed codes would send every "
                f"phone that scans them to {base.rstrip('/')}, and {why}"
            ), r.err
        assert bare("qr", *args, "--base-url", "ftp://x.example.cn", rc=2).err.startswith(
            "error [malformed]: base URL 'ftp://x.example.cn' must be an http:// or https://"
        )
        assert not sheet.exists() and not png.exists()
    # SUYUAN_BASE_URL counts as said on purpose, and is held to the same rules.
    env_cli = QrCli(world.url, world.home.path)
    assert env_cli("qr", "--lot", lot, "--sheet", str(sheet)).json()["items"] == len(items)
    local = subprocess.run(
        [sys.executable, "-m", "tools.cli", "qr", "--lot", lot, "--sheet", str(tmp_path / "l.pdf")],
        cwd=REPO,
        capture_output=True,
        timeout=120,
        env={**env_cli.env(), "SUYUAN_BASE_URL": "http://127.0.0.1:8000"},
    )
    assert local.returncode == 2 and b"[private_base_url]" in local.stderr
    assert not (tmp_path / "l.pdf").exists()


def _check_sheet(run: Run, sheet: Path, items: list[str], lot: str) -> None:
    per_page = 28
    pages = (len(items) + per_page - 1) // per_page
    assert run.json() == {
        "sheet": str(sheet),
        "lot": lot,
        "items": len(items),
        "pages": pages,
        "bytes": sheet.stat().st_size,
    }
    codes, texts = read_pdf(sheet.read_bytes())
    assert len(codes) == pages
    decoded = [r.text for page in codes for r in page]
    want = [digital_link_url(BASE, i) for i in items]
    assert sorted(decoded) == sorted(want)  # every item once, nothing else
    assert {r.ec_level for page in codes for r in page} == {"M"}
    # Labels fill the pages in the lot's order.
    assert [len(p) for p in codes] == [min(per_page, len(items) - per_page * n) for n in range(pages)]
    text = "\n".join(texts)
    for i in items:
        assert ids.element_string(i) in text
        assert digital_link_url(BASE, i) in text


def test_cli_label_sheet_of_a_lot(world: World, qr_cli: QrCli, tmp_path: Path) -> None:
    items = build_lots(world, 40)  # 42 items: two pages
    sheet = tmp_path / "labels.pdf"
    lot = f"https://id.gs1.org/01/{GTIN}/10/L1"
    run = qr_cli("qr", "--lot", lot, "--sheet", str(sheet))
    _check_sheet(run, sheet, items, lot)
    # Texts per page follow the lot's order.
    _, texts = read_pdf(sheet.read_bytes())
    assert ids.element_string(items[0]) in texts[0] and ids.element_string(items[-1]) in texts[1]

    none = qr_cli(
        "qr", "--lot", f"https://id.gs1.org/01/{GTIN}/10/L9", "--sheet", str(tmp_path / "none.pdf"), rc=2
    )
    assert none.err.startswith("error [not_found]: the ledger knows no items of lot")
    assert not (tmp_path / "none.pdf").exists()
    item = qr_cli(
        "qr", "--lot", f"https://id.gs1.org/01/{GTIN}/21/1", "--sheet", str(tmp_path / "x.pdf"), rc=2
    )
    assert item.err.startswith("error [bad_identifier]:") and "not a lot" in item.err
