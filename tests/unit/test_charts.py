"""Inline SVG bar charts: valid, escaped, style-free, small and honest about missing data."""

import math
import re
import xml.etree.ElementTree as ET

import pytest
from markupsafe import Markup, escape

from canasta.entrypoints.web.charts import WIDTH, Bar, PairedBar, bar_chart, paired_bar_chart

SVG = "{http://www.w3.org/2000/svg}"


def _parse(chart: Markup) -> ET.Element:
    return ET.fromstring(str(chart))  # noqa: S314 (our own output, parsed to check it)


def _texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


def _bars(root: ET.Element) -> list[tuple[str, float, float]]:
    """Each bar as (colour, y, length), from the series' paths."""
    found = []
    for path in root.iter(f"{SVG}path"):
        for y, length in re.findall(r"M6 ([\d.]+)h([\d.]+)v\d+H6z", path.get("d", "")):
            found.append((path.get("fill", ""), float(y), float(length)))
    return found


def _height(root: ET.Element) -> float:
    return float(root.get("viewBox", "").split()[3])


def test_a_chart_is_an_accessible_image_of_its_data() -> None:
    chart = bar_chart("Coverage by region", [Bar("Norte", 45.25), Bar("Sur", 100)])
    assert isinstance(chart, Markup)
    root = _parse(chart)
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img" and root.get("width") == "100%"
    assert root.get("viewBox", "").startswith(f"0 0 {WIDTH} ")
    title, desc = root.find(f"{SVG}title"), root.find(f"{SVG}desc")
    assert title is not None and desc is not None
    assert title.text == "Coverage by region"
    assert desc.text == "Norte: 45.2%; Sur: 100.0%."
    assert root.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
    assert _texts(root) == ["Norte", "45.2%", "Sur", "100.0%"]


def test_bars_are_scaled_to_100_percent_or_to_the_maximum() -> None:
    (_, _, half), (_, _, full) = _bars(_parse(bar_chart("t", [Bar("a", 50), Bar("b", 100)])))
    assert full == pytest.approx(2 * half, abs=0.1)
    # Percentages are scaled to 100 even when no value reaches it (the value texts are the
    # same length in both charts, so the room left for bars is too).
    _, (_, _, fifty) = _bars(_parse(bar_chart("t", [Bar("a", 25), Bar("b", 50)])))
    _, (_, _, hundred) = _bars(_parse(bar_chart("t", [Bar("a", 25), Bar("b", 100, text="50.0%")])))
    assert fifty == pytest.approx(hundred / 2, abs=0.1)
    # Other units run to the largest value, or to max_value, and never past it.
    (_, _, two), (_, _, four) = _bars(_parse(bar_chart("t", [Bar("a", 2), Bar("b", 4)], unit_label="kg")))
    assert four == pytest.approx(2 * two, abs=0.1)
    bars = _bars(_parse(bar_chart("t", [Bar("a", 2), Bar("b", 16)], unit_label="kg", max_value=8)))
    assert bars[1][2] == pytest.approx(4 * bars[0][2], abs=0.1)  # 16 drawn as 8, the most
    assert all(length <= WIDTH for _, _, length in bars)


def test_zero_missing_and_negative_values_draw_no_bar() -> None:
    chart = bar_chart(
        "t", [Bar("zero", 0), Bar("none", None), Bar("nan", math.nan), Bar("negative", -5), Bar("some", 10)]
    )
    root = _parse(chart)
    assert len(_bars(root)) == 1
    assert _texts(root) == [
        "zero",
        "0.0%",
        "none",
        "no data",
        "nan",
        "no data",
        "negative",
        "-5.0%",
        "some",
        "10.0%",
    ]
    assert "none: no data; nan: no data" in "".join(root.itertext())
    # Nothing to scale to: no bar, no division by zero.
    assert _bars(_parse(bar_chart("t", [Bar("a", 0), Bar("b", 0)], unit_label="kg"))) == []
    assert _bars(_parse(bar_chart("t", [Bar("a", 3)], max_value=0))) == []


def test_an_empty_chart_says_there_is_no_data() -> None:
    for chart in (bar_chart("Nothing", []), paired_bar_chart("Nothing", [])):
        root = _parse(chart)
        assert _bars(root) == []
        assert _texts(root) == ["No data"]
        desc = root.find(f"{SVG}desc")
        assert desc is not None and desc.text == "No data."
        assert _height(root) > 0


def test_values_are_formatted_with_their_unit_or_the_text_given() -> None:
    root = _parse(
        bar_chart(
            "Granted",
            [Bar("a", 1234.5), Bar("b", 3), Bar("c", 0.125), Bar("d", 7, text="7 of 9 households")],
            unit_label="kg",
        )
    )
    assert _texts(root)[1::2] == ["1,234.5 kg", "3 kg", "0.125 kg", "7 of 9 households"]


@pytest.mark.parametrize(
    "name",
    [
        "<script>alert(1)</script>",
        '"><script>alert(1)</script>',
        "</text></svg><script>alert(1)</script>",
        "<style>*{display:none}</style>",
        "a & b ' \" <!-- -->",
        "]]><![CDATA[",
    ],
)
def test_every_text_from_data_is_inert(name: str) -> None:
    charts = [
        bar_chart(name, [Bar(name, 10, text=name)], unit_label=name),
        bar_chart(name, [Bar(name, 10)], unit_label=name),
        paired_bar_chart(name, [PairedBar(name, 10, None, second_text=name)], series=(name, name)),
    ]
    for chart in charts:
        assert "<script" not in chart and "<style" not in chart and "<!--" not in chart
        root = _parse(chart)
        assert {el.tag.removeprefix(SVG) for el in root.iter()} <= {
            "svg",
            "title",
            "desc",
            "rect",
            "path",
            "g",
            "text",
        }
        title = root.find(f"{SVG}title")
        assert title is not None and title.text == name
        assert name in _texts(root)  # the name, read back exactly as it was given
        # Safe to put in a Jinja2 template: it is not escaped a second time.
        assert str(escape(chart)) == str(chart)


def test_characters_xml_forbids_are_dropped() -> None:
    chart = bar_chart("a\x00b\udc80", [Bar("c\x1bd\ufffe", 1, text="e\x0bf")], unit_label="%")
    root = _parse(chart)
    assert _texts(root) == ["cd", "ef"]
    assert root.find(f"{SVG}title") is not None


def test_no_style_anywhere() -> None:
    charts = [
        bar_chart("Coverage", [Bar(f"Region {n}", n * 3.3) for n in range(30)]),
        paired_bar_chart("Coverage and uptake", [PairedBar(f"Region {n}", n * 3, n * 2) for n in range(30)]),
        bar_chart("Empty", []),
    ]
    for chart in charts:
        assert "style" not in chart.lower()
        for element in _parse(chart).iter():
            assert element.tag not in {f"{SVG}style", f"{SVG}script"}
            assert not [name for name in element.attrib if name == "style" or name.startswith("on")]


def test_thirty_regions_stay_small_and_the_chart_grows_with_them() -> None:
    names = [f"Región de {n:02d} Libertador General Bernardo" for n in range(30)]
    single = bar_chart("Coverage by region", [Bar(name, n * 3.3) for n, name in enumerate(names)])
    paired = paired_bar_chart(
        "Coverage and uptake by region", [PairedBar(name, n * 3.3, n * 2.9) for n, name in enumerate(names)]
    )
    assert len(single.encode()) < 6_000
    assert len(paired.encode()) < 8_500
    five = _parse(bar_chart("t", [Bar(name, 1) for name in names[:5]]))
    thirty = _parse(single)
    assert _height(thirty) == pytest.approx(6 * _height(five), rel=0.1)
    # Bars and texts stay inside the drawing.
    for root in (thirty, _parse(paired)):
        height = _height(root)
        assert all(0 < y < height for _, y, _ in _bars(root))
        assert all(float(t.get("y", "0")) <= height for t in root.iter(f"{SVG}text"))
        assert all(float(t.get("x", "0")) < WIDTH for t in root.iter(f"{SVG}text"))


def test_a_long_name_is_shortened_in_the_drawing_but_whole_in_the_description() -> None:
    name = "Región Metropolitana de Santiago y sus alrededores más lejanos del norte"
    root = _parse(bar_chart("t", [Bar(name, 50)]))
    shown = _texts(root)[0]
    assert shown.endswith("…") and name.startswith(shown[:-1]) and len(shown) < len(name)
    desc = root.find(f"{SVG}desc")
    assert desc is not None and desc.text == f"{name}: 50.0%."


def test_paired_bars_name_their_series_and_differ_in_colour() -> None:
    root = _parse(
        paired_bar_chart(
            "Food",
            [PairedBar("Norte", 100, 23.5), PairedBar("Sur", 50, None)],
        )
    )
    assert _texts(root) == [
        "Norte",
        "coverage: 100.0%",
        "uptake: 23.5%",
        "Sur",
        "coverage: 50.0%",
        "uptake: no data",
    ]
    bars = _bars(root)
    assert len(bars) == 3
    coverage = [b for b in bars if b[0] == bars[0][0]]
    uptake = [b for b in bars if b[0] != bars[0][0]]
    assert len(coverage) == 2 and len(uptake) == 1
    assert coverage[0][2] == pytest.approx(2 * coverage[1][2], abs=0.1)
    assert uptake[0][2] == pytest.approx(0.235 * coverage[0][2], abs=0.1)
    desc = root.find(f"{SVG}desc")
    assert desc is not None
    assert desc.text == "Norte: coverage 100.0%, uptake 23.5%; Sur: coverage 50.0%, uptake no data."


def test_the_same_chart_gets_the_same_ids_and_another_chart_other_ones() -> None:
    a = _parse(bar_chart("t", [Bar("a", 1)]))
    again = _parse(bar_chart("t", [Bar("a", 1)]))
    other = _parse(bar_chart("t", [Bar("a", 2)]))
    assert a.get("aria-labelledby") == again.get("aria-labelledby") != other.get("aria-labelledby")
