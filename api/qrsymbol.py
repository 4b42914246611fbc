"""QR symbols (ISO/IEC 18004, error correction M) as module rows, fast enough for label runs.

The `qrcode` package draws every image the API serves, but building one symbol costs it
about 5 ms of pure Python: it re-places every module for each of the eight masks and
scores them module by module. A sheet of a thousand labels needs a thousand symbols, so
this module builds the same symbol (the same segments, version, codewords, placement and
mask choice, taken from `qrcode`'s own tables and functions) with whole-buffer
operations: the data is placed once through a precomputed gather, each mask is one XOR
of big integers, and the penalty rules run as byte-string searches and bit arithmetic.
A test checks it against `qrcode`'s matrices module for module.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

import qrcode
import qrcode.base
import qrcode.constants
import qrcode.util

LEVEL: Final = qrcode.constants.ERROR_CORRECT_M
_LEVEL_BITS: Final = 0  # M in the format information (L=1, M=0, Q=3, H=2), as qrcode keeps it
OPTIMIZE: Final = 20  # qrcode's default: runs of 20 digits (or alphanumerics) get their own mode

# --- Reed-Solomon over GF(256), x^8 + x^4 + x^3 + x^2 + 1 -------------------------------------

_EXP = [0] * 512
_LOG = [0] * 256
_x = 1
for _i in range(255):
    _EXP[_i] = _x
    _LOG[_x] = _i
    _x <<= 1
    if _x & 0x100:
        _x ^= 0x11D
for _i in range(255, 512):
    _EXP[_i] = _EXP[_i - 255]


@lru_cache(maxsize=64)
def _rs_table(degree: int) -> tuple[int, ...]:
    """For each byte f, f times the generator polynomial of ``degree`` (its leading 1 left
    out) as one ``degree``-byte integer: a division step is then a shift and an XOR."""
    gen = [1]
    for i in range(degree):  # (x - a^0)(x - a^1)...(x - a^(degree-1))
        nxt = [0] * (len(gen) + 1)
        for j, g in enumerate(gen):
            nxt[j] ^= g
            if g:
                nxt[j + 1] ^= _EXP[_LOG[g] + i]
        gen = nxt
    coeffs = gen[1:]
    table = [0]
    for f in range(1, 256):
        lf = _LOG[f]
        table.append(int.from_bytes(bytes(_EXP[lf + _LOG[c]] if c else 0 for c in coeffs), "big"))
    return tuple(table)


def _ec_bytes(data: bytes, degree: int) -> bytes:
    table = _rs_table(degree)
    top, mask = 8 * (degree - 1), (1 << (8 * degree)) - 1
    rem = 0
    for b in data:
        rem = ((rem << 8) & mask) ^ table[(rem >> top) ^ b]
    return rem.to_bytes(degree, "big")


# --- codewords ------------------------------------------------------------------------------

_NUMBER_BITS: Final = {1: 4, 2: 7, 3: 10}


def _segments(text: str) -> list[qrcode.util.QRData]:
    return list(qrcode.util.optimal_data_chunks(text, minimum=OPTIMIZE))


def _segment_bits(seg: qrcode.util.QRData) -> tuple[int, int]:
    """(value, bit length) of a segment's data, as qrcode.util.QRData.write puts it."""
    data: bytes = seg.data
    if seg.mode == qrcode.util.MODE_8BIT_BYTE:
        return int.from_bytes(data, "big"), 8 * len(data)
    acc = n = 0
    if seg.mode == qrcode.util.MODE_NUMBER:
        for i in range(0, len(data), 3):
            chunk = data[i : i + 3]
            bits = _NUMBER_BITS[len(chunk)]
            acc, n = (acc << bits) | int(chunk), n + bits
        return acc, n
    alnum: bytes = qrcode.util.ALPHA_NUM
    for i in range(0, len(data), 2):
        pair = data[i : i + 2]
        if len(pair) == 2:
            acc, n = (acc << 11) | (alnum.find(pair[:1]) * 45 + alnum.find(pair[1:])), n + 11
        else:
            acc, n = (acc << 6) | alnum.find(pair), n + 6
    return acc, n


def _fit(segments: Sequence[qrcode.util.QRData]) -> tuple[int, int, int]:
    """(version, data bits, their value): the smallest version at level M that holds them."""
    limits = qrcode.util.BIT_LIMIT_TABLE[LEVEL]
    parts = [_segment_bits(s) for s in segments]
    for version in range(1, 41):
        sizes = qrcode.util.mode_sizes_for_version(version)
        acc = n = 0
        for seg, (value, bits) in zip(segments, parts, strict=True):
            count_bits = sizes[seg.mode]
            acc = (((acc << 4 | seg.mode) << count_bits | len(seg.data)) << bits) | value
            n += 4 + count_bits + bits
        if n <= limits[version]:
            return version, n, acc
    raise qrcode.exceptions.DataOverflowError(
        f"{sum(len(s.data) for s in segments)} bytes do not fit in a QR code at level M"
    )


def _codewords(version: int, n: int, acc: int) -> bytes:
    """Terminator, byte padding, pad codewords, then error correction, interleaved."""
    blocks = qrcode.base.rs_blocks(version, LEVEL)
    limit = 8 * sum(b.data_count for b in blocks)
    term = min(limit - n, 4)
    acc, n = acc << term, n + term
    if n % 8:
        acc, n = acc << (8 - n % 8), n + 8 - n % 8
    data = acc.to_bytes(n // 8, "big") + (b"\xec\x11" * limit)[: (limit - n) // 8]
    dc: list[bytes] = []
    ec: list[bytes] = []
    at = 0
    for b in blocks:
        chunk = data[at : at + b.data_count]
        at += b.data_count
        dc.append(chunk)
        ec.append(_ec_bytes(chunk, b.total_count - b.data_count))
    return _interleave(dc) + _interleave(ec)


def _interleave(blocks: list[bytes]) -> bytes:
    """The first byte of every block, then the second, …; longer blocks (a version's second
    group has one more data codeword) end with their extra byte, in block order."""
    short = min(map(len, blocks))
    out = bytearray(short * len(blocks))
    for j, b in enumerate(blocks):
        out[j :: len(blocks)] = b[:short]
    return bytes(out) + bytes(b[short] for b in blocks if len(b) > short)


# --- the matrix -----------------------------------------------------------------------------
#
# A symbol of n x n modules is one integer of n*n bits, module (r, c) at bit n*n-1-(r*n+c):
# shifting left by 1 brings each module's right neighbour to its place, by n the one
# below it. The masks below say where a comparison stays within the symbol.


@dataclass(frozen=True)
class _Template:
    """What every symbol of one version shares."""

    size: int
    fixed: bytes  # b"0"/b"1" per module: function modules as qrcode scores the masks
    gather: tuple[int, ...]  # per module: its index in fixed + data bits
    data_cells: int
    masks: tuple[int, ...]  # per mask: the data modules it darkens
    formats: tuple[int, ...]  # per mask: the dark format (and version) modules
    right: int  # modules with a right neighbour
    down: int  # modules with one below
    block: int  # modules at the top left of a 2x2 block
    row11: int  # modules where 11 modules fit to the right
    col11: int  # modules where 11 modules fit downwards


def _blank(version: int) -> Any:
    q = qrcode.QRCode(version=version, error_correction=LEVEL, border=0)
    n = q.modules_count = version * 4 + 17
    q.modules = [[None] * n for _ in range(n)]
    q.setup_position_probe_pattern(0, 0)
    q.setup_position_probe_pattern(n - 7, 0)
    q.setup_position_probe_pattern(0, n - 7)
    q.setup_position_adjust_pattern()
    q.setup_timing_pattern()
    return q


def _walk(n: int, is_data: list[list[bool]]) -> list[tuple[int, int]]:
    """Data module positions in placement order (qrcode's map_data: up and down two-module
    columns from the bottom right, skipping the vertical timing column)."""
    order = []
    row, inc = n - 1, -1
    for col in range(n - 1, 0, -2):
        if col <= 6:
            col -= 1
        while True:
            for c in (col, col - 1):
                if is_data[row][c]:
                    order.append((row, c))
            row += inc
            if row < 0 or row >= n:
                row -= inc
                inc = -inc
                break
    return order


def _bits_where(n: int, cells: Iterable[tuple[int, int]]) -> int:
    x = 0
    for r, c in cells:
        x |= 1 << (n * n - 1 - (r * n + c))
    return x


@lru_cache(maxsize=40)
def _template(version: int) -> _Template:
    q = _blank(version)
    n = q.modules_count
    # Format and version information as qrcode scores the masks: reserved, and light.
    q.setup_type_info(True, 0)
    if version >= 7:
        q.setup_type_number(True)
    is_data = [[v is None for v in row] for row in q.modules]
    fixed = bytes(b"1"[0] if q.modules[r][c] else b"0"[0] for r in range(n) for c in range(n))
    order = _walk(n, is_data)
    where = {rc: k for k, rc in enumerate(order)}
    gather = tuple(n * n + where[divmod(i, n)] if is_data[i // n][i % n] else i for i in range(n * n))
    masks = tuple(
        _bits_where(n, ((r, c) for r, c in order if qrcode.util.mask_func(k)(r, c))) for k in range(8)
    )
    formats = []
    for k in range(8):
        q.setup_type_info(False, k)
        if version >= 7:
            q.setup_type_number(False)
        formats.append(
            _bits_where(
                n,
                (
                    (r, c)
                    for r in range(n)
                    for c in range(n)
                    if q.modules[r][c] and fixed[r * n + c] == b"0"[0]
                ),
            )
        )
    every = range(n)
    return _Template(
        n,
        fixed,
        gather,
        len(order),
        masks,
        tuple(formats),
        right=_bits_where(n, ((r, c) for r in every for c in range(n - 1))),
        down=_bits_where(n, ((r, c) for r in range(n - 1) for c in every)),
        block=_bits_where(n, ((r, c) for r in range(n - 1) for c in range(n - 1))),
        row11=_bits_where(n, ((r, c) for r in every for c in range(n - 10))),
        col11=_bits_where(n, ((r, c) for r in range(n - 10) for c in every)),
    )


def _finders(x: int, step: int, fits: int) -> int:
    """Finder-like patterns 1011101 with four light modules after (or before) them, one
    module every ``step`` bits, starting where ``fits`` says there is room."""

    def at(v: int, i: int) -> int:
        return v << (i * step)

    light = ~x
    core = x & at(light, 1) & at(x, 2) & at(x, 3) & at(x, 4) & at(light, 5) & at(x, 6)
    two = light & at(light, 1)
    four = two & at(two, 2)
    return (fits & core & at(four, 7)).bit_count() + (fits & four & at(core, 4)).bit_count()


def _runs(equal: int, step: int) -> int:
    """Runs of five or more equal modules (``equal``: a module is the same as the next one,
    ``step`` bits on): 3 points, and 1 more for each module past 5."""
    five = equal & (equal << step) & (equal << 2 * step) & (equal << 3 * step)
    return five.bit_count() + 2 * (five & ~(five >> step)).bit_count()


def _penalty(x: int, t: _Template) -> int:
    """qrcode's score of a masked symbol (util.lost_point): runs of five or more, 2x2
    blocks, finder-like patterns, and the balance of dark and light."""
    n = t.size
    diff_right = x ^ (x << 1)
    diff_down = x ^ (x << n)
    score = _runs(t.right & ~diff_right, 1) + _runs(t.down & ~diff_down, n)
    same_block = t.block & ~(diff_right | diff_down | (diff_right << n))
    score += 3 * same_block.bit_count()
    score += 40 * (_finders(x, 1, t.row11) + _finders(x, n, t.col11))
    percent = float(x.bit_count()) / (n * n)
    return score + int(abs(percent * 100 - 50) / 5) * 10


def qr_rows(text: str) -> list[bytes]:
    """The QR symbol of ``text`` at level M, without its quiet zone: one bytes object per
    row, 1 for a dark module and 0 for a light one; the same symbol `qrcode` makes."""
    version, n_bits, acc = _fit(_segments(text))
    t = _template(version)
    words = _codewords(version, n_bits, acc)
    bits = format(int.from_bytes(words, "big"), f"0{8 * len(words)}b").encode()
    source = t.fixed + bits[: t.data_cells] + b"0" * max(0, t.data_cells - len(bits))
    x = int(bytes(map(source.__getitem__, t.gather)), 2)
    best, best_mask = -1, 0
    for k, m in enumerate(t.masks):
        score = _penalty(x ^ m, t)
        if best < 0 or score < best:
            best, best_mask = score, k
    n = t.size
    cells = format((x ^ t.masks[best_mask]) | t.formats[best_mask], f"0{n * n}b").encode()
    flat = cells.translate(_ASCII_BITS)
    return [flat[r * n : (r + 1) * n] for r in range(n)]


_ASCII_BITS = bytes.maketrans(b"01", b"\x00\x01")
