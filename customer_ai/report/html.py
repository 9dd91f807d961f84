"""The words and the HTML of the report: escaping, numbers in words, tables, paragraphs, sections, the CSS and the page.

Everything that turns a value into text of the page is here, and everything that came from a user passes
through :func:`_esc` on its way in.  The section keys and headings (:data:`SECTIONS`) and the names of the
buckets, scorers and validation stages are shared by the tables and the figures.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from customer_ai.report.folder import _RunFiles
from customer_ai.spec import InstanceSpec

SECTIONS = {
    "model-card": "Goal and model card",
    "scores": "Score distribution",
    "history": "Score history across runs",
    "factors": "Influential factors",
    "evaluation": "Evaluation against the baselines",
    "outcomes": "Did it come true",
    "validation": "Data validation",
}
_BUCKETS = ("low", "medium", "high")
_SCORERS = {"model": "model", "recency": "recency", "frequency": "frequency", "bgnbd": "BG/NBD"}
_STAGE_WORDS = {"events": "events", "training_set": "training set", "scores": "scores"}


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


# --- numbers in words ------------------------------------------------------------------------------------------


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float | np.floating) and math.isnan(value))


def _pct(value: object, digits: int = 1) -> str:
    return "–" if _missing(value) else f"{float(value):.{digits}%}"  # type: ignore[arg-type]


def _num(value: object, digits: int = 3) -> str:
    return "–" if _missing(value) else f"{float(value):,.{digits}f}"  # type: ignore[arg-type]


def _int(value: object) -> str:
    return "–" if _missing(value) else f"{int(value):,}"  # type: ignore[call-overload]


def _template_words(template: str) -> str:
    return template.replace("{value}", "…")


# --- tables and paragraphs -------------------------------------------------------------------------------------


def _cell(value: object) -> str:
    text = _esc(value)
    return f"<td class=n>{text}</td>" if len(str(value)) <= 20 else f"<td>{text}</td>"


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]], *, caption: str | None = None) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in rows)
    cap = f"<caption>{_esc(caption)}</caption>" if caption else ""
    return f'<div class="table"><table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _pairs(rows: Iterable[tuple[str, object]]) -> str:
    body = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in rows)
    return f'<div class="table"><table class="card"><tbody>{body}</tbody></table></div>'


def _p(text: str, cls: str | None = None) -> str:
    return f'<p class="{cls}">{_esc(text)}</p>' if cls else f"<p>{_esc(text)}</p>"


def _section(key: str, parts: Iterable[str]) -> str:
    return f'<section id="{key}"><h2>{_esc(SECTIONS[key])}</h2>{"".join(parts)}</section>'


# --- the page --------------------------------------------------------------------------------------------------


_CSS = """
:root { color-scheme: light; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: #1f2328; background: #ffffff; margin: 0; }
header, main, footer { max-width: 1040px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 24px; border-bottom: 1px solid #d8dee4; }
h1 { font-size: 1.6em; margin: 0 0 4px; }
h2 { font-size: 1.3em; margin: 0 0 8px; padding-top: 16px; border-top: 3px solid #1d3f7a; }
nav ul { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 4px 16px; }
nav a, a { color: #1d3f7a; }
section { margin: 28px 0; }
.goal { font-size: 1.15em; }
.missing { background: #fff8e6; border-left: 4px solid #d9822b; padding: 8px 12px; }
.notes { color: #57606a; font-size: 0.92em; }
figure { margin: 12px 0; }
figure svg { max-width: 100%; height: auto; }
figcaption { color: #57606a; font-size: 0.9em; }
.table { overflow-x: auto; margin: 12px 0; }
table { border-collapse: collapse; font-size: 0.88em; font-variant-numeric: tabular-nums; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
th, td { border-bottom: 1px solid #d8dee4; padding: 4px 10px; text-align: left; vertical-align: top; }
thead th { background: #f3f5f8; }
td.n { white-space: nowrap; }
table.card th { width: 190px; color: #57606a; font-weight: 500; }
footer { color: #57606a; font-size: 0.85em; padding-bottom: 32px; border-top: 1px solid #d8dee4; }
@media print {
  body { font-size: 11px; }
  nav { display: none; }
  section { break-before: page; }
  section:first-of-type { break-before: auto; }
  figure, tr { break-inside: avoid; }
  .table { overflow: visible; }
}
"""


def _page(spec: InstanceSpec, as_of: pd.Timestamp, run: _RunFiles, sections: list[str]) -> str:
    title = f"{spec.name} as of {as_of:%Y-%m-%d}: {run.model.get('goal') or spec.goal_in_words()}"
    nav = "".join(f'<li><a href="#{key}">{_esc(heading)}</a></li>' for key, heading in SECTIONS.items())
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # the report may load nothing: no script, no font, no image from anywhere
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{_esc(spec.name)}: propensity report</h1>"
        f"<p>{_esc(title)} &middot; model {_esc(run.model.get('model_version', '?'))}</p>"
        f"<nav><ul>{nav}</ul></nav></header>"
        f"<main>{''.join(sections)}</main>"
        f'<footer id="end"><p>Built from the run folder of {_esc(spec.name)} as of {as_of:%Y-%m-%d}. '
        "Every picture is drawn from the numbers in the table under it.</p></footer>"
        "</body></html>\n"
    )
