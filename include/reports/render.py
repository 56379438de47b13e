"""Every airloop HTML page comes from here: Jinja2 templates in ``templates/``, one stylesheet
(``templates/style.css``, inlined into each page), one escaping rule (autoescape on for every
template: a value is escaped unless a template marks it safe, and none does with user text).

Pages are self-contained files: CSS inline, chart figures as JSON inside the page, and plotly.js
either inlined (pages written into the lake or a folder, opened offline) or loaded from the
airloop plugin's ``/airloop/static/plotly.min.js`` (the dashboard it serves), see
:func:`plotly_script`. Nothing is fetched from the internet.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from include.reports.format import fmt_auc, fmt_fixed, fmt_number, fmt_psi, fmt_short, jsonable

TEMPLATES = Path(__file__).with_name("templates")


@functools.cache
def environment() -> jinja2.Environment:
    """The one Jinja2 environment: autoescape on for every template, undefined names raise."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        num=fmt_number,
        signed=functools.partial(fmt_number, signed=True),
        fixed=fmt_fixed,
        psi=fmt_psi,
        auc=fmt_auc,
        short=fmt_short,
        jsonable=jsonable,
    )
    return env


@functools.cache
def plotly_js() -> str:
    """The plotly.js bundle that ships with the plotly package (about 4.5 MB, offline)."""
    from plotly.offline import get_plotlyjs

    return str(get_plotlyjs())


def plotly_script(src: str | None) -> Markup:
    """The ``<script>`` that brings plotly.js: ``src`` is a URL the page loads it from, None
    inlines the bundle (a page that must open on its own, from the lake or a folder)."""
    if src is not None:
        return Markup('<script src="{}"></script>').format(src)
    # "</script" cannot occur inside an inline script; plotly.js has none, checked here.
    code = plotly_js()
    if "</script" in code.lower():  # pragma: no cover - a plotly release that would break the page
        raise ValueError("plotly.js contains '</script': it cannot be inlined")
    return Markup(f"<script>{code}</script>")


def render(template: str, /, **context: Any) -> str:
    """Render ``templates/<template>`` with ``context`` (autoescaped)."""
    return environment().get_template(template).render(**context)


def write_page(path: Path, page: str) -> Path:
    """Write ``page`` to ``path`` atomically (a temporary file beside it, then a rename), so a
    reader never sees half a page and a rerun replaces it whole."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(page, encoding="utf-8")
    os.replace(temporary, path)
    return path


def charts_context(charts: Mapping[str, Any], plotly_src: str | None) -> dict[str, Any]:
    """Template variables of a page with charts: ``charts`` (element id -> plotly figure dict)
    and ``plotly`` (the script tag, only when there is a chart to draw)."""
    return {"charts": dict(charts), "plotly": plotly_script(plotly_src) if charts else Markup("")}


__all__ = ["TEMPLATES", "charts_context", "environment", "plotly_js", "plotly_script", "render", "write_page"]
