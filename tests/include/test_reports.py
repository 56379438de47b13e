"""The report kit: one set of number formats, one escaping rule, atomic page writes, valid charts."""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pytest

from include.reports.format import finite, fmt_auc, fmt_number, fmt_psi, fmt_short, jsonable
from include.reports.render import TEMPLATES, environment, plotly_script, render, write_page


def test_numbers_are_formatted_one_way() -> None:
    assert [fmt_number(v) for v in (0.75321, 12345, np.int64(7), np.float64(0.5), None, math.nan, True, "x")] == [
        "0.7532",
        "12,345",
        "7",
        "0.5000",
        "n/a",
        "n/a",
        "True",
        "x",
    ]
    assert fmt_number(0.99995123) == "0.999951" and fmt_number(0.0000123) == "1.23e-05"  # not hidden by rounding
    assert fmt_number(-0.0061, signed=True) == "-0.0061" and fmt_number(3, signed=True) == "+3"
    assert (fmt_psi(0.10249), fmt_auc(0.61573), fmt_psi(None), fmt_auc(math.inf)) == ("0.102", "0.6157", "n/a", "n/a")
    assert (fmt_short(0.05), fmt_short(100.0), fmt_short(1e6 + 0.5), fmt_short(7)) == ("0.05", "100", "1e+06", "7")


def test_jsonable_and_finite_give_plain_json() -> None:
    value = {
        1: np.float64(0.25),
        "nan": math.nan,
        "ints": (np.int32(3), 4),
        "set": {"a"},
        "day": date(2013, 1, 5),
        "time": datetime(2013, 1, 5, 12),
        "array": np.array([1, 2]),
    }
    out = jsonable(value)
    assert out == {
        "1": 0.25,
        "nan": None,
        "ints": [3, 4],
        "set": ["a"],
        "day": "2013-01-05",
        "time": "2013-01-05T12:00:00",
        "array": "[1 2]",
    }
    json.dumps(out, allow_nan=False)
    assert type(out["ints"][0]) is int
    assert (finite(np.float32(0.5)), finite(math.nan), finite(None), finite("0.25")) == (0.5, None, None, 0.25)


def test_every_template_escapes_and_shares_the_stylesheet() -> None:
    env = environment()
    assert env.autoescape is True
    page = render("message.html", title="<b>t</b>", paragraphs=["a & b", "<script>x</script>"])
    assert "&lt;b&gt;t&lt;/b&gt;" in page and "a &amp; b" in page and "&lt;script&gt;x&lt;/script&gt;" in page
    stylesheet = (TEMPLATES / "style.css").read_text()
    assert stylesheet in page and "<script" not in page  # no chart: no plotly
    pages = sorted(p.name for p in TEMPLATES.glob("*.html"))
    for name in pages:
        source = (TEMPLATES / name).read_text()
        assert "|safe" not in source and "<style" not in source.replace("<style>{% include", ""), name


def test_plotly_is_inlined_or_loaded_from_a_given_url() -> None:
    assert plotly_script("../static/plotly.min.js") == '<script src="../static/plotly.min.js"></script>'
    assert plotly_script('x" onload="y') == '<script src="x&#34; onload=&#34;y"></script>'
    inline = plotly_script(None)
    assert inline.startswith("<script>") and len(inline) > 3_000_000 and "https://" not in inline[:200]


def test_pages_are_written_atomically(tmp_path: Path) -> None:
    target = write_page(tmp_path / "report.html", "first")
    write_page(target, "second")
    assert target.read_text() == "second" and sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_replay_charts_are_valid_plotly_figures() -> None:
    go = pytest.importorskip("plotly.graph_objects")

    from include.replay import DayResult, PolicyResult, replay_charts

    days = [
        DayResult(day=f"2024-01-{d:02d}", champion=1, roc_auc=0.8 + d / 1000, trained=2 if d == 3 else None)
        for d in range(1, 6)
    ]
    results = {"drift": PolicyResult("drift", days=days, seconds={"train": 2.5, "score": 1.0})}
    charts = replay_charts(results, {"drift": {"2024-01": 0.803}})
    for figure in charts.values():
        go.Figure(figure)
    daily, week, retrains = charts["daily-auc"]["data"]
    assert daily["y"] == [0.801, 0.802, 0.803, 0.804, 0.805] and week["y"][1] == pytest.approx(0.8015)
    assert retrains["x"] == ["2024-01-03"] and retrains["marker"]["symbol"] == ["triangle-up-open"]
    assert charts["compute"]["data"][0]["y"] == [2.5] and charts["monthly-auc"]["data"][0]["y"] == [0.803]


def test_sparkline_points_share_one_scale() -> None:
    from datetime import date

    from include.reports.charts import sparkline

    day = [date(2024, 1, d) for d in (1, 2, 3, 5)]
    lines = sparkline(
        {"a": [(day[0], 0.6), (day[1], None), (day[3], 0.8)], "b": [(day[2], 0.7)], "none": []}, width=100, height=20
    )
    # x: 2024-01-01 at the left pad, 2024-01-05 at the right; y: 0.8 at the top pad, 0.6 at the bottom
    assert lines == {"a": "2.0,18.0 98.0,2.0", "b": "50.0,10.0", "none": ""}
    assert sparkline({"flat": [(day[0], 0.7), (day[1], 0.7)]}, width=100, height=20) == {"flat": "2.0,10.0 98.0,10.0"}
    assert sparkline({"one": [(day[0], 0.7)]}, width=100, height=20) == {"one": "50.0,10.0"}
    assert sparkline({"empty": [(day[0], None)]}) == {"empty": ""}
