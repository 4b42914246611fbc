"""QR images of trace codes: error correction M, as SVG (a path) or PNG (Pillow)."""

from __future__ import annotations

import io

import qrcode  # type: ignore[import-untyped]
import qrcode.image.svg  # type: ignore[import-untyped]

from ledger.errors import MalformedInput

FORMATS = {"svg": "image/svg+xml", "png": "image/png"}


def qr_image(text: str, fmt: str) -> bytes:
    """The QR code of ``text`` as ``svg`` or ``png`` bytes (error correction M, 4-module
    quiet zone, the smallest version that holds it)."""
    if fmt not in FORMATS:
        raise MalformedInput(f"QR format {fmt!r} is not one of {', '.join(FORMATS)}",
                             code="bad_format")
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=10, border=4)
    qr.add_data(text)
    qr.make(fit=True)
    if fmt == "svg":
        img = qr.make_image(image_factory=qrcode.image.svg.SvgPathImage)
    else:
        img = qr.make_image()
    buf = io.BytesIO()
    img.save(buf)
    return buf.getvalue()
