"""QR trace codes: the image of an item's GS1 Digital Link on this ledger's resolver.

A QR code carries ``SUYUAN_BASE_URL`` + the code's Digital Link path, so a phone that
scans it lands on the consumer page. Error correction is level M: a label that has lost
about 15 % of its symbol to scuffs or a crease still reads.
"""

from __future__ import annotations

import hashlib
import io
import ipaddress
from functools import lru_cache
from typing import Final
from urllib.parse import urlsplit

import qrcode
import qrcode.constants
import qrcode.image.pil
import qrcode.image.svg
from starlette.requests import Request
from starlette.responses import Response

from api.errors import error_response
from api.qrsymbol import qr_rows
from ledger.core.errors import ConfigError, IdentifierError, MalformedInput
from ledger.core.ids import digital_link_path

FORMATS: Final = {"png": "image/png", "svg": "image/svg+xml"}
BOX_PX: Final = 10  # pixels per module in a PNG: sharp when printed at 300 dpi up to ~25 mm
BORDER: Final = 4  # the quiet zone ISO/IEC 18004 asks for, in modules
RENDERER: Final = "qr-v1"  # part of every ETag: change it when the images change

# A year, and "immutable": one path on one base URL always draws the same symbol.
CACHE_CONTROL: Final = "public, max-age=31536000, immutable"


def digital_link_url(base_url: str, code: str) -> str:
    """The Digital Link of ``code`` (a Digital Link on any domain, an EPC URN or a bare GTIN
    or SSCC) on the resolver at ``base_url``: what a QR code of that code carries."""
    return base_url.rstrip("/") + digital_link_path(code)


# Names that never reach a phone outside this machine or its network.
_LOCAL_SUFFIXES: Final = (".localhost", ".local", ".internal", ".lan", ".home.arpa", ".intranet", ".corp")
_EXAMPLE_BASE: Final = "https://trace.example.cn"


def printable_base_url(base: str | None, *, where: str) -> str:
    """The resolver base that printed codes may carry, without its trailing ``/``.

    A printed code is read for years by phones anywhere: its base must be said on purpose
    (``where``, such as "SUYUAN_BASE_URL or --base-url", names how) and be a public
    address, never the loopback a server falls back to, a private or link-local network,
    or a name only a local network resolves. Raises ConfigError (``no_base_url``,
    ``private_base_url``) or MalformedInput.
    """
    if base is None or not base.strip():
        raise ConfigError(
            f"printed codes carry the resolver's address for as long as the label lasts, and "
            f"none was given: set {where} to the public address consumers' phones will reach, "
            f"such as {_EXAMPLE_BASE}",
            code="no_base_url",
        )
    base = base.strip().rstrip("/")
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise MalformedInput(
            f"base URL {base!r} must be an http:// or https:// address with a host, such as {_EXAMPLE_BASE}"
        )
    if parts.query or parts.fragment:
        raise MalformedInput(
            f"base URL {base!r} must not have a query or fragment: the Digital Link path follows it"
        )
    host = parts.hostname.rstrip(".").lower()
    why = None
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if host == "localhost" or host.endswith(_LOCAL_SUFFIXES):
            why = f"{host} is a name only this machine or its local network resolves"
        elif "." not in host:
            why = f"{host} is a single-label name that only a local network resolves"
    else:
        if not ip.is_global:
            kind = (
                "the loopback address of this machine"
                if ip.is_loopback
                else "an address of a private or reserved network"
            )
            why = f"{host} is {kind}"
    if why is not None:
        raise ConfigError(
            f"printed codes would send every phone that scans them to {base}, and {why}: set "
            f"{where} to the public address of the resolver, such as {_EXAMPLE_BASE}",
            code="private_base_url",
        )
    return base


def _symbol(text: str) -> qrcode.QRCode:
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=BOX_PX, border=BORDER)
    qr.add_data(text)
    qr.make(fit=True)
    return qr


def qr_modules(text: str) -> list[bytes]:
    """The QR symbol of ``text`` (level M) as rows of modules, 1 dark and 0 light, without
    the quiet zone: for drawing it as vectors, as the label sheet does. The same symbol
    as the images, built faster (api/qrsymbol.py)."""
    return qr_rows(text)


def qr_image(text: str, fmt: str) -> bytes:
    """A QR code (error correction M) of ``text`` as PNG or SVG bytes.

    The same text always gives the same bytes, so responses can be cached for good.
    """
    if fmt not in FORMATS:
        raise MalformedInput(f"QR format {fmt!r} is not one of {', '.join(FORMATS)}", code="bad_format")
    qr = _symbol(text)
    buf = io.BytesIO()
    if fmt == "svg":
        # One <path> for all dark modules (small, crisp at any size) on a white square: the
        # quiet zone must be light even where the label is printed on a dark package.
        qr.make_image(image_factory=qrcode.image.svg.SvgPathFillImage).save(buf)
    else:
        qr.make_image(image_factory=qrcode.image.pil.PilImage).save(buf, format="PNG")
    return buf.getvalue()


# Drawing a symbol costs milliseconds of pure Python, and a label run asks for the same
# few thousand codes again and again: keep the latest images (a few KB each).
_cached_image = lru_cache(maxsize=4096)(qr_image)


def qr_response(request: Request, base_url: str) -> Response:
    """``GET /qr/{Digital Link path}.png|.svg``: the QR code of that path on ``base_url``."""
    # The raw path keeps percent-escapes as sent: a serial may hold an escaped '/'.
    raw = request.scope.get("raw_path")
    path = raw.decode("latin-1").split("?", 1)[0] if raw else request.url.path
    rest = path.removeprefix("/qr")
    stem, dot, fmt = rest.rpartition(".")
    if not dot or fmt not in FORMATS or "/" in fmt:
        return error_response(
            MalformedInput(
                f"a QR code URL ends in .png or .svg, such as /qr/01/09506000134352/21/1.png; "
                f"{path!r} does not",
                code="bad_format",
            )
        )
    try:
        dl_path = digital_link_path(stem)
    except IdentifierError as e:
        return error_response(e)
    text = base_url.rstrip("/") + dl_path
    etag = '"' + hashlib.sha256(f"{RENDERER}\n{fmt}\n{text}".encode()).hexdigest()[:32] + '"'
    headers = {"Cache-Control": CACHE_CONTROL, "ETag": etag, "X-Digital-Link": text}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(_cached_image(text, fmt), media_type=FORMATS[fmt], headers=headers)
