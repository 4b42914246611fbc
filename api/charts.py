"""Small SVG charts that need no JavaScript: bar charts and stacked bars, with <title> and
<desc> for screen readers and ``data-label``/``data-value`` on every bar for machines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

PALETTE = ("#2f6f9f", "#d9822b", "#3d9970", "#b94a48", "#7f5fa8", "#8c6d31", "#5f7f8f", "#c06c84")
# A presentation attribute, not a style attribute: pages whose policy admits only their
# one stylesheet (the regulator console) draw these charts too.
_FONT = "font-family=\"'Noto Sans CJK SC','Noto Sans',sans-serif\""


def _fmt(v: float) -> str:
    return f"{v:,.2f}" if v != int(v) else f"{int(v):,}"


def _left_margin(top_value: float) -> int:
    """Room for the axis label: about 7 px per character at 11 px, at least 56."""
    return max(56, 12 + 7 * len(_fmt(top_value)))


def _frame(
    ident: str,
    title: str,
    desc: str,
    width: int,
    height: int,
    left: int,
    plot_w: float,
    top: int,
    plot_h: float,
    top_value: float,
) -> list[str]:
    """The opening of a chart: its svg element, title and description, baseline and the
    top value written at the axis."""
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" aria-labelledby="{ident}-t '
        f'{ident}-d" class="chart" id="{ident}" {_FONT}>',
        f'<title id="{ident}-t">{escape(title)}</title>',
        f'<desc id="{ident}-d">{escape(desc)}</desc>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#555"/>',
        f'<text x="{left - 6}" y="{top + 4}" font-size="11" text-anchor="end">'
        f"{escape(_fmt(top_value))}</text>",
    ]


def bar_chart(
    *,
    ident: str,
    title: str,
    desc: str,
    bars: Sequence[tuple[str, float]],
    unit: str = "",
    width: int = 560,
    height: int = 260,
    slanted: bool = False,
) -> str:
    """Vertical bars, one per (label, value), value written above each bar; ``slanted``
    labels (for long ones) need more height below."""
    top_value = max((v for _, v in bars), default=0) or 1
    left, right, top, bottom = _left_margin(top_value), 16, 24, (150 if slanted else 56)
    height += bottom - 56
    plot_w, plot_h = width - left - right, height - top - bottom
    slot = plot_w / max(len(bars), 1)
    bw = min(64.0, slot * 0.7)
    parts = _frame(ident, title, desc, width, height, left, plot_w, top, plot_h, top_value)
    parts.append(f'<text x="{left - 6}" y="{top + plot_h}" font-size="11" text-anchor="end">0</text>')
    if not bars:
        parts.append(
            f'<text x="{width / 2}" y="{top + plot_h / 2}" text-anchor="middle" '
            'font-size="13">无数据 / no data</text>'
        )
    for i, (label, value) in enumerate(bars):
        h = plot_h * value / top_value
        x = left + i * slot + (slot - bw) / 2
        y = top + plot_h - h
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{bw:.1f}" '
            f'height="{h:.1f}" fill="{PALETTE[0]}" data-label="{escape(label)}" '
            f'data-value="{value:g}"><title>{escape(label)}: '
            f"{escape(_fmt(value))}{escape(unit)}</title></rect>"
        )
        parts.append(
            f'<text x="{x + bw / 2:.1f}" y="{y - 4:.1f}" font-size="11" '
            f'text-anchor="middle">{escape(_fmt(value))}</text>'
        )
        lx, ly = x + bw / 2, top + plot_h + 16
        turn = f' transform="rotate(-35 {lx:.1f} {ly})"' if slanted else ""
        parts.append(
            f'<text x="{lx:.1f}" y="{ly}" font-size="11" '
            f'text-anchor="{"end" if slanted else "middle"}"{turn}>{escape(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def stacked_chart(
    *,
    ident: str,
    title: str,
    desc: str,
    columns: Sequence[str],
    series: Mapping[str, Mapping[str, int]],
    width: int = 900,
    height: int = 300,
) -> str:
    """One stacked bar per column (a month); ``series[name][column]`` is a segment; legend."""
    totals = {c: sum(s.get(c, 0) for s in series.values()) for c in columns}
    top_value = max(totals.values(), default=0) or 1
    left, right, top, bottom = _left_margin(top_value), 150, 24, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    slot = plot_w / max(len(columns), 1)
    bw = min(48.0, slot * 0.7)
    parts = _frame(ident, title, desc, width, height, left, plot_w, top, plot_h, top_value)
    if not columns:
        parts.append(
            f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" '
            'text-anchor="middle" font-size="13">无数据 / no data</text>'
        )
    names = list(series)
    for i, col in enumerate(columns):
        x = left + i * slot + (slot - bw) / 2
        y = float(top + plot_h)
        for k, name in enumerate(names):
            v = series[name].get(col, 0)
            if not v:
                continue
            h = plot_h * v / top_value
            y -= h
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{bw:.1f}" '
                f'height="{h:.1f}" fill="{PALETTE[k % len(PALETTE)]}" '
                f'data-series="{escape(name)}" data-label="{escape(col)}" '
                f'data-value="{v}"><title>{escape(col)} {escape(name)}: {v}</title>'
                "</rect>"
            )
        parts.append(
            f'<text x="{x + bw / 2:.1f}" y="{y - 4:.1f}" font-size="11" '
            f'text-anchor="middle">{totals[col]}</text>'
        )
        parts.append(
            f'<text x="{x + bw / 2:.1f}" y="{top + plot_h + 16}" font-size="11" '
            f'text-anchor="middle">{escape(col)}</text>'
        )
    for k, name in enumerate(names):
        ly = top + 6 + k * 18
        parts.append(
            f'<rect x="{left + plot_w + 16}" y="{ly}" width="12" height="12" '
            f'fill="{PALETTE[k % len(PALETTE)]}"/>'
        )
        parts.append(f'<text x="{left + plot_w + 34}" y="{ly + 11}" font-size="12">{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)
