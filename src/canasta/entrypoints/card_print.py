"""Printable cards: credit-card size (ISO/IEC 7810 ID-1, 85.6 × 54 mm), as SVG or PNG.

A card shows its QR code (the signed card code, ``canasta.domain.card_token``), its id in
large type to read aloud or type when a code will not scan, its issue and expiry dates, and
a line saying that it carries no personal data and how to check it.

Both formats are drawn from one layout. The SVG is vector and uses the printer's fonts. The
PNG is drawn with Pillow at 300 dpi, the QR code's modules in whole pixels. The QR code sits
in its 4-module quiet zone and uses error correction level Q, so a worn card still scans.
"""

from __future__ import annotations

import contextlib
import functools
import html
import io
import os
import shutil
import tempfile
import textwrap
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Literal

import segno
import sqlalchemy as sa
from PIL import Image, ImageDraw, ImageFont

from canasta.domain.card_token import TAG, read_card
from canasta.domain.errors import Conflict, InvalidInput
from canasta.domain.model import format_card_id
from canasta.service.card_tokens import printable_cards
from canasta.service.keys import Keyring


class CardFormat(StrEnum):
    SVG = "svg"
    PNG = "png"


CARD_WIDTH_MM = 85.6
CARD_HEIGHT_MM = 54.0
CORNER_MM = 3.18
QUIET_ZONE = 4  # modules of white around the QR code, as the QR standard asks
QR_ERROR = "q"  # recovers about a quarter of the code: scratches, creases, dirt
PNG_DPI = 300
MAX_NOTE = 60

_QR_AT = (1.5, 1.5)  # mm, the quiet zone's top left corner
_QR_BOX = 36.0  # mm, the QR code with its quiet zone
_COLUMN_X = 39.0  # mm, where the text beside the code starts
_COLUMN_END = 84.0
_ID_BASELINE = 50.0
_EDGE_MM = 2.0
_SANS = "DejaVu Sans, Helvetica, Arial, sans-serif"
_MONO = "DejaVu Sans Mono, Menlo, Consolas, monospace"


@dataclass(frozen=True, slots=True)
class _Text:
    x: float  # mm; the left edge, or the centre when ``centred``
    baseline: float  # mm
    size: float  # mm, the font size (em)
    text: str
    bold: bool = False
    mono: bool = False
    centred: bool = False


@dataclass(frozen=True, slots=True)
class _Layout:
    qr: tuple[bytearray, ...]  # the QR code's modules, without the quiet zone; 1 is dark
    texts: tuple[_Text, ...]


def qr_code(payload: str) -> segno.QRCode:
    """The QR code of a card code: alphanumeric mode, never a Micro QR."""
    mode = "alphanumeric" if payload.startswith(TAG) else None
    return segno.make(payload, error=QR_ERROR, mode=mode, micro=False, boost_error=False)


def _layout(
    payload: str, card_id_formatted: str, issued_on: date, expires_on: date, programme_note: str | None
) -> _Layout:
    if programme_note is not None:
        if len(programme_note) > MAX_NOTE:
            raise InvalidInput(f"a programme note on a card is at most {MAX_NOTE} characters")
        if any(unicodedata.category(c).startswith("C") for c in programme_note):
            raise InvalidInput("a programme note on a card is one line of printable text")
    fields = payload.split(".")
    key = f" {fields[2]}" if len(fields) == 6 and fields[0] == TAG else ""
    texts = [_Text(_COLUMN_X, 6.0, 3.6, "Benefit card", bold=True)]
    y = 6.0
    for line in textwrap.wrap(programme_note or "", 26)[:2]:
        y += 3.4
        texts.append(_Text(_COLUMN_X, y, 2.6, line))
    y += 4.6
    texts.append(_Text(_COLUMN_X, y, 2.8, f"Issued  {issued_on.isoformat()}", mono=True))
    y += 3.6
    texts.append(_Text(_COLUMN_X, y, 2.8, f"Expires {expires_on.isoformat()}", mono=True))
    y += 1.4
    privacy = (
        "No personal data on this card: only a random number, its dates and the issuer's "
        f"signature. Scan the code to check it offline with issuer key{key}."
    )
    for line in textwrap.wrap(privacy, 40):
        y += 2.7
        texts.append(_Text(_COLUMN_X, y, 2.1, line))
    texts.append(
        _Text(CARD_WIDTH_MM / 2, _ID_BASELINE, 5.2, card_id_formatted, bold=True, mono=True, centred=True)
    )
    return _Layout(tuple(qr_code(payload).matrix), tuple(texts))


def dark_runs(qr: Sequence[bytearray]) -> Iterator[tuple[int, int, int]]:
    """(row, first column, length) of each horizontal run of dark modules."""
    for y, row in enumerate(qr):
        x = 0
        while x < len(row):
            if row[x]:
                start = x
                while x < len(row) and row[x]:
                    x += 1
                yield y, start, x - start
            else:
                x += 1


def render_svg(
    payload: str,
    card_id_formatted: str,
    issued_on: date,
    expires_on: date,
    programme_note: str | None = None,
) -> str:
    """One card as a standalone SVG document, 85.6 × 54 mm (user units are millimetres).
    The QR code is the path ``id="qr"`` in module units, one ``M x y h n v 1 h -n z`` per run
    of dark modules."""
    layout = _layout(payload, card_id_formatted, issued_on, expires_on, programme_note)
    size = len(layout.qr)
    module = _QR_BOX / (size + 2 * QUIET_ZONE)
    x0, y0 = (_QR_AT[0] + QUIET_ZONE * module, _QR_AT[1] + QUIET_ZONE * module)
    runs = "".join(f"M{x} {y}h{n}v1h-{n}z" for y, x, n in dark_runs(layout.qr))
    w, h = CARD_WIDTH_MM, CARD_HEIGHT_MM
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w:g}mm" height="{h:g}mm" viewBox="0 0 {w:g} {h:g}" '
        'xml:space="preserve">',
        f"<title>Card {html.escape(card_id_formatted)}</title>",
        f'<rect x="0.1" y="0.1" width="{w - 0.2:g}" height="{h - 0.2:g}" rx="{CORNER_MM}" '
        'fill="#fff" stroke="#999" stroke-width="0.2"/>',
        f'<path id="qr" transform="translate({x0:.4f} {y0:.4f}) scale({module:.5f})" fill="#000" '
        f'shape-rendering="crispEdges" d="{runs}"/>',
    ]
    for t in layout.texts:
        attributes = [
            f'x="{t.x:g}"',
            f'y="{t.baseline:g}"',
            f'font-size="{t.size:g}"',
            f'font-family="{_MONO if t.mono else _SANS}"',
        ]
        if t.bold:
            attributes.append('font-weight="bold"')
        if t.centred:
            attributes.append('text-anchor="middle"')
        parts.append(f'<text {" ".join(attributes)} fill="#000">{html.escape(t.text)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


# ------------------------------------------------------------------------------ PNG


_DASHES = str.maketrans({"\u2010": "-", "\u2011": "-", "\u2013": "-", "\u2014": "-", "\u2212": "-"})
#: DejaVu sets Spanish and Portuguese text; where it is not installed, Pillow's built-in font
#: is used and accents are dropped.
_FONTS = {
    (False, False): "DejaVuSans.ttf",
    (True, False): "DejaVuSans-Bold.ttf",
    (False, True): "DejaVuSansMono.ttf",
    (True, True): "DejaVuSansMono-Bold.ttf",
}


@functools.cache
def _font(size: int, bold: bool, mono: bool) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.truetype(_FONTS[(bold, mono)], size)
    except OSError:
        return ImageFont.load_default(size)


def _plain(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.translate(_DASHES))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def render_png(
    payload: str,
    card_id_formatted: str,
    issued_on: date,
    expires_on: date,
    programme_note: str | None = None,
    *,
    dpi: int = PNG_DPI,
) -> bytes:
    """One card as a greyscale PNG at ``dpi`` (its pHYs chunk says so, so it prints at
    85.6 × 54 mm), drawn with Pillow (in DejaVu where installed)."""
    if not 150 <= dpi <= 1200:
        raise InvalidInput(f"cards are drawn at 150 to 1200 dpi, not {dpi}")
    layout = _layout(payload, card_id_formatted, issued_on, expires_on, programme_note)
    per_mm = dpi / 25.4

    def px(mm: float) -> int:
        return round(mm * per_mm)

    image = Image.new("L", (px(CARD_WIDTH_MM), px(CARD_HEIGHT_MM)), 255)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, image.width - 1, image.height - 1), outline=153, width=max(1, px(0.2)))
    size = len(layout.qr)
    module = px(_QR_BOX) // (size + 2 * QUIET_ZONE)  # whole pixels: crisp edges scan best
    x0, y0 = px(_QR_AT[0]) + QUIET_ZONE * module, px(_QR_AT[1]) + QUIET_ZONE * module
    for y, x, n in dark_runs(layout.qr):
        left, top = x0 + x * module, y0 + y * module
        draw.rectangle((left, top, left + n * module - 1, top + module - 1), fill=0)
    for t in layout.texts:
        room = px(CARD_WIDTH_MM - 2 * _EDGE_MM if t.centred else _COLUMN_END - t.x)
        font_size = px(t.size)
        font, text = _font(font_size, t.bold, t.mono), t.text
        if isinstance(font, ImageFont.FreeTypeFont) and font.path is None:
            text = _plain(text)  # Pillow's own font: no accents, no typographic dashes
        while font_size > 6 and draw.textlength(text, font=font) > room:  # shrink to fit
            font_size -= 1
            font = _font(font_size, t.bold, t.mono)
        anchor = "ms" if t.centred else "ls"  # the point given is on the baseline
        draw.text((px(t.x), px(t.baseline)), text, fill=0, font=font, anchor=anchor)
    out = io.BytesIO()
    image.save(out, format="PNG", dpi=(dpi, dpi), optimize=True)
    return out.getvalue()


# ------------------------------------------------------------------------ printing


def print_cards(
    engine: sa.Engine,
    keyring: Keyring,
    card_ids: Sequence[str] | None,
    out_dir: Path,
    fmt: CardFormat | Literal["svg", "png"],
    *,
    programme_note: str | None = None,
    today: date | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Path]:
    """Write one printable card per active card into ``out_dir``, named by its card id
    (``K7Q2M9XD4R1TZP8C.svg``); ``card_ids`` None prints every active card. All or
    nothing: cards are drawn in a hidden folder inside ``out_dir`` and linked into place
    only when all are drawn; a file already there is never replaced, and on any error
    nothing new is left behind. ``progress(done, total)`` is told of each card drawn."""
    if fmt not in set(CardFormat):
        raise InvalidInput(f"cards are printed as svg or png, not {fmt!r}")
    fmt = CardFormat(fmt)
    today = today or datetime.now(UTC).date()
    verifiers = [keyring.issuer.verifier]
    cards = printable_cards(engine, keyring, card_ids)
    targets = [out_dir / f"{card.card_id}.{fmt}" for card in cards]
    for target in targets:
        if target.exists():
            raise Conflict(f"{target} already exists; nothing was written")
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".canasta-print-", dir=out_dir))
    placed: list[Path] = []
    try:
        for done, (card, target) in enumerate(zip(cards, targets, strict=True), start=1):
            # Check what is printed as an outlet will: a card that fails here would fail there.
            token = read_card(card.payload, verifiers, today)
            args = (
                card.payload,
                format_card_id(card.card_id),
                token.issued_on,
                token.expires_on,
                programme_note,
            )
            if fmt is CardFormat.SVG:
                (staging / target.name).write_text(render_svg(*args), encoding="utf-8")
            else:
                (staging / target.name).write_bytes(render_png(*args))
            if progress is not None:
                progress(done, len(cards))
        for target in targets:
            _place(staging / target.name, target)
            placed.append(target)
    except BaseException:
        for target in placed:
            target.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
        if created:
            with contextlib.suppress(OSError):
                out_dir.rmdir()
        raise
    shutil.rmtree(staging, ignore_errors=True)
    return targets


def _place(drawn: Path, target: Path) -> None:
    """Move ``drawn`` to ``target``, never replacing a file already there."""
    try:
        os.link(drawn, target)  # fails, rather than replaces, when target exists
    except FileExistsError:
        raise Conflict(f"{target} appeared while cards were printed; nothing was written") from None
    except OSError:  # a file system without hard links
        if target.exists():
            raise Conflict(f"{target} appeared while cards were printed; nothing was written") from None
        os.replace(drawn, target)
