"""Label sheets: A4 PDF pages of QR trace codes, one label per item of a lot, each with its
human-readable code under the symbol, ready for a label printer or plain sticker paper.

The symbols are drawn as vector rectangles (no bitmaps), so they stay sharp at any
printer resolution; the text uses the PDF core fonts, so no font file is needed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from fpdf import FPDF
from fpdf.enums import WrapMode, XPos, YPos

from api.qr import BORDER, digital_link_url, qr_modules
from ledger.core.errors import NotFound
from ledger.core.ids import element_string
from ledger.queries import trace
from ledger.store.db import Store

PAGE_W, PAGE_H = 210.0, 297.0  # A4 portrait, mm
MARGIN: Final = 10.0
HEADER_H: Final = 8.0
COLUMNS, ROWS = 4, 7
CELL_W: Final = (PAGE_W - 2 * MARGIN) / COLUMNS
CELL_H: Final = (PAGE_H - 2 * MARGIN - HEADER_H) / ROWS
SYMBOL_MM: Final = 27.0  # the symbol with its quiet zone
PER_PAGE: Final = COLUMNS * ROWS


@dataclass(frozen=True)
class Label:
    """One label: the text its QR code carries and the lines printed under it (the first
    in monospace, as GS1 prints human-readable interpretations)."""

    qr_text: str
    lines: tuple[str, ...]


def _fit(pdf: FPDF, text: str, width: float, *, font: str, start: float, least: float) -> float:
    """The largest size from ``start`` down in steps of 0.25 at which ``text`` fits
    ``width``, else ``least``; a string's width grows in proportion to its size."""
    pdf.set_font(font, size=start)
    wide = pdf.get_string_width(text)
    size = start
    if wide > width:
        steps = math.ceil((start - start * width / wide) / 0.25 - 1e-9)
        size = start - 0.25 * steps
    if size <= least:
        size = least
    pdf.set_font(font, size=size)
    return size


_DARK_RUN = re.compile(rb"\x01+")


def _draw_symbol(pdf: FPDF, text: str, x: float, y: float) -> None:
    rows = qr_modules(text)
    n = len(rows)
    module = SYMBOL_MM / (n + 2 * BORDER)
    # PDF operators, as fpdf's own rect() writes them but in module units: the matrix
    # puts module (0, 0) at the symbol's top left and one unit at one module, y downwards.
    # One rectangle per run of dark modules (no hairline gaps between neighbours when
    # rasterised), all in one path filled once: fpdf's rect() per run costs ten times the
    # drawing itself, and a sheet of a thousand labels has about 250,000 runs.
    k, m = pdf.k, module * pdf.k
    ops = [
        "q",
        f"{m:.5f} 0 0 {-m:.5f} {(x + BORDER * module) * k:.3f} {(pdf.h - y - BORDER * module) * k:.3f} cm",
    ]
    ops += [
        f"{run.start()} {r} {run.end() - run.start()} 1 re"
        for r, row in enumerate(rows)
        for run in _DARK_RUN.finditer(row)
    ]
    ops += ["f", "Q"]
    pdf._out("\n".join(ops))  # noqa: SLF001 - fpdf2 has no public call for raw path operators


def label_sheet(
    labels: Sequence[Label], *, title: str, progress: Callable[[int, int], None] | None = None
) -> bytes:
    """A PDF of A4 pages, ``COLUMNS`` × ``ROWS`` labels a page, in the order given."""
    if not labels:
        raise NotFound("there are no labels to print")
    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.set_auto_page_break(False)
    pdf.set_margins(MARGIN, MARGIN, MARGIN)
    pdf.set_title(title)
    pdf.set_creator("suyuan")
    pdf.set_fill_color(0, 0, 0)
    pages = (len(labels) + PER_PAGE - 1) // PER_PAGE
    text_w = CELL_W - 3.0
    for i, label in enumerate(labels):
        slot = i % PER_PAGE
        if slot == 0:
            pdf.add_page()
            pdf.set_font("Helvetica", size=9)
            pdf.set_xy(MARGIN, MARGIN)
            pdf.cell(
                PAGE_W - 2 * MARGIN,
                HEADER_H - 2,
                f"{title}  -  {len(labels)} labels  -  page {i // PER_PAGE + 1} of {pages}",
            )
            if progress is not None:
                progress(i, len(labels))
        col, row = slot % COLUMNS, slot // COLUMNS
        x = MARGIN + col * CELL_W
        y = MARGIN + HEADER_H + row * CELL_H
        _draw_symbol(pdf, label.qr_text, x + (CELL_W - SYMBOL_MM) / 2, y)
        pdf.set_xy(x + 1.5, y + SYMBOL_MM)
        for n, line in enumerate(label.lines):
            font = "Courier" if n == 0 else "Helvetica"
            size = _fit(
                pdf, line, text_w, font=font, start=7.5 if n == 0 else 5.5, least=4.5 if n == 0 else 4.0
            )
            pdf.set_x(x + 1.5)
            if pdf.get_string_width(line) <= text_w:
                pdf.cell(text_w, size * 0.45, line, align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
                continue
            # A code longer than the label at the smallest size wraps between characters.
            pdf.multi_cell(
                text_w,
                size * 0.45,
                line,
                align="C",
                wrapmode=WrapMode.CHAR,
                new_x=XPos.LMARGIN,
                new_y=YPos.NEXT,
            )
    if progress is not None:
        progress(len(labels), len(labels))
    return bytes(pdf.output())


def lot_label_sheet(
    store: Store, base_url: str, lot: str, progress: Callable[[int, int], None] | None = None
) -> tuple[bytes, dict[str, Any]]:
    """A label sheet of every item of ``lot``: (PDF bytes, what it holds)."""
    found = trace.lot_items(store, lot)
    if not found["items"]:
        raise NotFound(
            f"the ledger knows no items of lot {found['lot']}; items belong to a lot "
            "when commissioned with its lot number (ilmd cbvmda:lotNumber)"
        )
    labels = []
    for item in found["items"]:
        url = digital_link_url(base_url, item)
        labels.append(Label(url, (element_string(item), url)))
    pdf = label_sheet(labels, title=f"Lot {element_string(found['lot'])}", progress=progress)
    return pdf, {"lot": found["lot"], "items": len(labels), "pages": (len(labels) + PER_PAGE - 1) // PER_PAGE}
