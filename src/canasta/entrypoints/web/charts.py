"""Bar charts as inline SVG for server-rendered pages: no JavaScript, no styles.

The pages are served under a Content-Security-Policy that allows no inline style or script,
so a chart is drawn with presentation attributes only (``fill``, ``x``, ``font-size``…), never a
``style`` attribute or a ``<style>`` element. A chart is as wide as its container (its
``viewBox`` keeps the proportions; the page's stylesheet may cap it through the ``chart``
class) and grows taller with each bar, so it reads on a 360-pixel phone. It is an image to
assistive technology (``role="img"``), named by its ``<title>`` and described, every value
included, by its ``<desc>``; put it in a ``<figure>`` whose caption says what it shows, and
give the same figures in a table for whoever needs them exact.

Every text comes from data (a region may be called anything) and is escaped. Colours keep
WCAG AA contrast on the chart's own white background: text 17:1, bars at least 4.8:1.
This module does no I/O.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup

#: Width of the drawing in user units; it is scaled to the container's width.
WIDTH = 400
_PAD = 6
_FONT_SIZE = 14
#: A generous average advance of a character, in ems, to keep texts inside the drawing.
_CHAR_EM = 0.6
_TEXT = "#1b1b1b"  # 17.2:1 on white
_MUTED = "#595959"  # 7.0:1 on white, for "no data"
_COLOURS = ("#1f5f99", "#b35806")  # blue 6.7:1, orange 4.9:1 on white; told apart by colour-blind eyes
_NO_DATA = "no data"
# Characters XML 1.0 does not allow, even escaped: they would make the page invalid.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar: its name, its value (None when there is none to show) and, optionally, the
    text shown for the value instead of the number formatted with the chart's unit."""

    label: str
    value: float | None
    text: str | None = None


@dataclass(frozen=True, slots=True)
class PairedBar:
    """Two bars under one name, such as a region's coverage and uptake."""

    label: str
    first: float | None
    second: float | None
    first_text: str | None = None
    second_text: str | None = None


def bar_chart(
    title: str,
    bars: Sequence[Bar],
    *,
    unit_label: str = "%",
    max_value: float | None = None,
) -> Markup:
    """Horizontal bars, one per item in the order given, each with its name above it and
    its value at its end.

    Bars are scaled to ``max_value``; by default to the largest value, and for percentages
    (``unit_label="%"``) to at least 100. Values below zero draw no bar; missing values
    (None, NaN) draw none either and say "no data"."""
    rows = [[(bar.value, _value_text(bar.value, bar.text, unit_label), "")] for bar in bars]
    summary = [f"{_clean(bar.label)}: {row[0][1]}" for bar, row in zip(bars, rows, strict=True)]
    return _chart(title, [bar.label for bar in bars], rows, summary, max_value, unit_label)


def paired_bar_chart(
    title: str,
    pairs: Sequence[PairedBar],
    *,
    series: tuple[str, str] = ("coverage", "uptake"),
    unit_label: str = "%",
    max_value: float | None = None,
) -> Markup:
    """Two horizontal bars per item (in two colours, each value text naming its series, so
    colour is never the only cue), scaled together as in ``bar_chart``."""
    rows = []
    summary = []
    for pair in pairs:
        first = _value_text(pair.first, pair.first_text, unit_label)
        second = _value_text(pair.second, pair.second_text, unit_label)
        rows.append([(pair.first, first, series[0]), (pair.second, second, series[1])])
        summary.append(f"{_clean(pair.label)}: {_clean(series[0])} {first}, {_clean(series[1])} {second}")
    return _chart(title, [pair.label for pair in pairs], rows, summary, max_value, unit_label)


def _chart(
    title: str,
    labels: list[str],
    rows: list[list[tuple[float | None, str, str]]],
    summary: list[str],
    max_value: float | None,
    unit_label: str,
) -> Markup:
    title = _clean(title)
    desc = "; ".join(summary) + "." if summary else "No data."
    # Ids for aria-labelledby, the same for the same chart and distinct for others on a page.
    ident = "chart-" + hashlib.sha256(f"{title}\0{desc}".encode()).hexdigest()[:10]
    bars_per_row = max((len(row) for row in rows), default=1)
    bar_height = 16 if bars_per_row == 1 else 14
    row_height = 20 + bars_per_row * (bar_height + 4) + 4
    height = 2 * _PAD + (len(rows) * row_height if rows else 24)

    # Markup only from literal templates, whose ``format`` escapes every value put in.
    texts: list[Markup] = []
    # One path per series, a rectangle per bar: a third of the bytes of <rect> elements.
    shapes: list[list[str]] = [[] for _ in _COLOURS]
    if not rows:
        texts.append(Markup('<text x="{}" y="{}" fill="{}">No data</text>').format(_PAD, _PAD + 17, _MUTED))
    values = [[_finite(value) for value, _, _ in row] for row in rows]
    top = max((v for row in values for v in row if v is not None), default=0.0)
    if max_value is not None:
        top = max_value
    elif unit_label == "%":
        top = max(top, 100.0)
    value_texts = [_value_label(text, name) for row in rows for _, text, name in row]
    reserved = min(WIDTH * 0.45, _text_width(max(value_texts, key=len, default="")) + 2 * _PAD)
    span = WIDTH - 2 * _PAD - reserved
    for index, (label, row, row_values) in enumerate(zip(labels, rows, values, strict=True)):
        y = _PAD + index * row_height
        texts.append(Markup('<text x="{}" y="{}">{}</text>').format(_PAD, y + 15, _fit(label)))
        for series, ((_, text, name), value) in enumerate(zip(row, row_values, strict=True)):
            bar_y = y + 20 + series * (bar_height + 4)
            length = 0.0
            if value is not None and value > 0 and top > 0:
                length = span * min(value, top) / top
                shapes[series].append(f"M{_PAD} {bar_y}h{_num(length)}v{bar_height}H{_PAD}z")
            x, text_y, shown = _num(_PAD + length + 4), bar_y + bar_height - 3, _value_label(text, name)
            if value is None:
                texts.append(
                    Markup('<text x="{}" y="{}" fill="{}">{}</text>').format(x, text_y, _MUTED, shown)
                )
            else:
                texts.append(Markup('<text x="{}" y="{}">{}</text>').format(x, text_y, shown))
    parts = [
        Markup(
            '<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="100%" '
            'viewBox="0 0 {width} {height}" aria-labelledby="{id}-t {id}-d" '
            'font-family="system-ui,sans-serif" font-size="{size}">'
            '<title id="{id}-t">{title}</title><desc id="{id}-d">{desc}</desc>'
            '<rect width="{width}" height="{height}" fill="#fff"/>'
        ).format(width=WIDTH, height=height, id=ident, size=_FONT_SIZE, title=title, desc=desc)
    ]
    for colour, drawn in zip(_COLOURS, shapes, strict=True):
        if drawn:
            parts.append(Markup('<path fill="{}" d="{}"/>').format(colour, "".join(drawn)))
    parts += [Markup('<g fill="{}">').format(_TEXT), *texts, Markup("</g></svg>")]
    return Markup("").join(parts)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _value_text(value: float | None, text: str | None, unit_label: str) -> str:
    if text is not None:
        return _clean(text)
    if value is None or not math.isfinite(value):
        return _NO_DATA
    if unit_label == "%":
        return f"{value:.1f}%"
    number = f"{value:,.3f}".rstrip("0").rstrip(".")
    return f"{number} {_clean(unit_label)}" if unit_label else number


def _value_label(text: str, series: str) -> str:
    return f"{_clean(series)}: {text}" if series else text


def _clean(text: str) -> str:
    return _NOT_XML.sub("", text)


def _text_width(text: str) -> float:
    return len(text) * _FONT_SIZE * _CHAR_EM


def _fit(label: str) -> str:
    """A name short enough for one line of the drawing (the description has it whole)."""
    label = _clean(label)
    room = int((WIDTH - 2 * _PAD) / (_FONT_SIZE * _CHAR_EM))
    return label if len(label) <= room else label[: room - 1].rstrip() + "…"


def _num(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")
