"""QR trace codes: the image of an item's GS1 Digital Link on this ledger's resolver.

A QR code carries ``SUYUAN_BASE_URL`` + the code's Digital Link path, so a phone that
scans it lands on the consumer page. Error correction is level M: a label that has lost
about 15 % of its symbol to scuffs or a crease still reads.
"""

from __future__ import annotations

import hashlib
import io
from functools import lru_cache
from typing import Final

import qrcode
import qrcode.constants
import qrcode.image.pil
import qrcode.image.svg
from starlette.requests import Request
from starlette.responses import Response

from api.errors import error_response
from ledger.errors import IdentifierError, MalformedInput
from ledger.ids import digital_link_path

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


def _symbol(text: str) -> qrcode.QRCode:
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M,
                       box_size=BOX_PX, border=BORDER)
    qr.add_data(text)
    qr.make(fit=True)
    return qr


def qr_modules(text: str) -> list[list[bool]]:
    """The QR symbol of ``text`` (level M) as rows of dark (True) modules, without the
    quiet zone: for drawing it as vectors, as the label sheet does."""
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=0)
    qr.add_data(text)
    qr.make(fit=True)
    return [list(map(bool, row)) for row in qr.get_matrix()]


def qr_image(text: str, fmt: str) -> bytes:
    """A QR code (error correction M) of ``text`` as PNG or SVG bytes.

    The same text always gives the same bytes, so responses can be cached for good.
    """
    if fmt not in FORMATS:
        raise MalformedInput(f"QR format {fmt!r} is not one of {', '.join(FORMATS)}",
                             code="bad_format")
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
        return error_response(MalformedInput(
            f"a QR code URL ends in .png or .svg, such as /qr/01/09506000134352/21/1.png; "
            f"{path!r} does not", code="bad_format"))
    try:
        dl_path = digital_link_path(stem)
    except IdentifierError as e:
        return error_response(e)
    text = base_url.rstrip("/") + dl_path
    etag = '"' + hashlib.sha256(f"{RENDERER}\n{fmt}\n{text}".encode()).hexdigest()[:32] + '"'
    headers = {"Cache-Control": CACHE_CONTROL, "ETag": etag,
               "X-Digital-Link": text}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(_cached_image(text, fmt), media_type=FORMATS[fmt], headers=headers)
