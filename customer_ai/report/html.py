"""The words and the HTML of the report: escaping, numbers in words, tables, paragraphs, sections, the CSS and the page.

Everything that turns a value into text of the page is here, and everything that came from a user passes
through :func:`_esc` on its way in.  The section keys and headings (:data:`SECTIONS`, every report's;
:data:`OPTIONAL_SECTIONS`, those only some runs have) and the names of the buckets, scorers and validation stages
are shared by the tables and the figures.

What the data holds is shown so that it can neither disguise itself nor bury the page (the data itself is never
changed, only what the page shows of it):

- control characters are shown as what they are, ``<U+202E>``: the bidirectional controls (Unicode's
  ``Bidi_Control``, such as U+202E, which displays the text after it backwards) and the C0 and C1 controls but
  tab, newline and carriage return (which HTML does not allow).  Isolating each value in a ``<bdi>`` would keep an
  override from reaching the text around the value, but would still display the value itself reversed, and would
  not work in the page's title or a figure; a visible mark shows the reader exactly what the data holds.
- a value from the data (a feature's name or meaning, a typical value, a suite's name) is cut after
  :data:`MAX_SHOWN` characters by :func:`_short`, and no text of the page whatever (a sentence, a message) is
  longer than :data:`MAX_TEXT`: a cut text ends in ``… (N characters)``, its whole length, and the page then
  says that values were shortened.  So a report's size is bounded by how many values it shows, not by their
  lengths.
- a string too long for its line is broken anywhere rather than widen the page: in text everywhere, and in a
  table cell that holds an unbroken run of 40 characters or more (``td.w``).  Other cells keep their words whole,
  so that a table too wide for a narrow window scrolls in its box instead of breaking words in two.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from customer_ai.features import money_prefix
from customer_ai.report.folder import BUCKETS, _RunFiles
from customer_ai.spec import InstanceSpec

SECTIONS = {
    "model-card": "Goal and model card",
    "scores": "Score distribution",
    "history": "Score history across runs",
    "factors": "Influential factors",
    "evaluation": "Evaluation against the baselines",
    "drift": "Drift since training",
    "outcomes": "Did it come true",
    "validation": "Data validation",
}
# sections only some runs have: "value", of a goal with a value; "timing", of an instance with output.timing
OPTIONAL_SECTIONS = {"value": "Predicted value", "timing": "Next goal event"}
_HEADINGS = {**SECTIONS, **OPTIONAL_SECTIONS}
_BUCKETS = BUCKETS
_SCORERS = {"model": "model", "recency": "recency", "frequency": "frequency", "bgnbd": "BG/NBD"}
_STAGE_WORDS = {"events": "events", "training_set": "training set", "scores": "scores"}
MAX_SHOWN = 200  # characters shown of one value from the data: a name, a text, a typical value
MAX_TEXT = 2_000  # characters shown of any one text of the page: a sentence, a message, a title
# bidirectional controls (Bidi_Control: they reorder the text around them), and C0 and C1 controls but tab, newline
# and carriage return
_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_SHORTENED = re.compile(r"… \(\d[\d,]* characters\)")  # how _short ends a text it cut
_SHOWN_CONTROL = re.compile(r"&lt;U\+[0-9A-F]{4}&gt;")  # how _visible shows a control character, escaped
_UNBROKEN = re.compile(r"\S{40}")  # a string a table cell breaks anywhere rather than widen its column for
_SECTION_START = re.compile(r'<section id="([^"]+)">')


def _visible(text: str) -> str:
    """Return ``text`` with its control characters shown as ``<U+202E>`` (see the module's docstring)."""
    return _CONTROLS.sub(lambda match: f"<U+{ord(match.group()):04X}>", text)


def _short(value: object, limit: int = MAX_SHOWN) -> str:
    """Return ``value`` as text, cut after ``limit`` characters and then ending in ``… (N characters)``."""
    text = str(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"


def _esc(value: object) -> str:
    """Return ``value`` as HTML text: at most :data:`MAX_TEXT` characters, control characters shown, escaped."""
    return html.escape(_visible(_short(value, MAX_TEXT)), quote=True)


def _td(value: object, short_on_one_line: bool = True) -> str:
    """Return a table cell: a short text on one line; a long unbroken one broken anywhere; others as words wrap."""
    shown = _visible(_short(value, MAX_TEXT))
    if short_on_one_line and len(shown) <= 20:
        kind = " class=n"
    else:
        kind = " class=w" if _UNBROKEN.search(shown) else ""
    return f"<td{kind}>{html.escape(shown, quote=True)}</td>"


# --- numbers in words ------------------------------------------------------------------------------------------


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float | np.floating) and math.isnan(value))


def _pct(value: object, digits: int = 1) -> str:
    return "–" if _missing(value) else f"{float(value):.{digits}%}"  # type: ignore[arg-type]


def _num(value: object, digits: int = 3) -> str:
    return "–" if _missing(value) else f"{float(value):,.{digits}f}"  # type: ignore[arg-type]


def _int(value: object) -> str:
    return "–" if _missing(value) else f"{int(value):,}"  # type: ignore[call-overload]


def _money(value: object, currency: str | None) -> str:
    """Return an amount as the instance writes money (``output.currency``): "GBP 1,234.50", "$1,234.50"."""
    return "–" if _missing(value) else f"{money_prefix(currency)}{float(value):,.2f}"  # type: ignore[arg-type]


def _template_words(template: str) -> str:
    return template.replace("{value}", "…")


# --- tables and paragraphs -------------------------------------------------------------------------------------


def _table(
    headers: Sequence[str], rows: Iterable[Sequence[object]], *, caption: str | None = None, compact: bool = False
) -> str:
    """Return a table; ``compact`` packs the cells closer, for many narrow columns (deciles)."""
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_td(c) for c in row) + "</tr>" for row in rows)
    cap = f"<caption>{_esc(caption)}</caption>" if caption else ""
    table = '<table class="compact">' if compact else "<table>"
    return f'<div class="table">{table}{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _pairs(rows: Iterable[tuple[str, object]]) -> str:
    body = "".join(f"<tr><th>{_esc(k)}</th>{_td(v, short_on_one_line=False)}</tr>" for k, v in rows)
    return f'<div class="table"><table class="card"><tbody>{body}</tbody></table></div>'


def _folded(summary: str, parts: Iterable[str]) -> str:
    """Return ``parts`` folded under a line that says what they hold (opened by a click)."""
    return f'<details class="analysts"><summary>{_esc(summary)}</summary>{"".join(parts)}</details>'


def _p(text: str, cls: str | None = None) -> str:
    return f'<p class="{cls}">{_esc(text)}</p>' if cls else f"<p>{_esc(text)}</p>"


def _section(key: str, parts: Iterable[str]) -> str:
    return f'<section id="{key}"><h2>{_esc(_HEADINGS[key])}</h2>{"".join(parts)}</section>'


def _section_key(section: str) -> str:
    """Return the key of a section written by :func:`_section`."""
    return _SECTION_START.match(section).group(1)  # type: ignore[union-attr]


# --- the page --------------------------------------------------------------------------------------------------


_CSS = """
:root { color-scheme: light; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: #1f2328; background: #ffffff; margin: 0; overflow-wrap: anywhere; }
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
details.analysts { margin: 16px 0; } details.analysts > summary { cursor: pointer; font-weight: 600; color: #1d3f7a; }
table { border-collapse: collapse; font-size: 0.88em; font-variant-numeric: tabular-nums; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
th, td { border-bottom: 1px solid #d8dee4; padding: 4px 10px; text-align: left; vertical-align: top;
         overflow-wrap: normal; }
thead th { background: #f3f5f8; }
td.n { white-space: nowrap; }
td.w { overflow-wrap: anywhere; }
table.card th { width: 190px; color: #57606a; font-weight: 500; }
table.compact th, table.compact td { padding: 4px 5px; }
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


def _data_notes(shown: str) -> str:
    """Return the page's notes on what it shows of the data differently (``shown``: the page's HTML), if any."""
    notes = []
    if _SHORTENED.search(shown):
        notes.append(
            f"Some values of the data are too long to show whole: a value (a name, a text) is cut after its first "
            f'{MAX_SHOWN:,} characters, any other text after {MAX_TEXT:,}, and ends in "… (N characters)", its '
            "whole length. The data is not changed: the run's files and the store hold every value whole."
        )
    if _SHOWN_CONTROL.search(shown):
        notes.append(
            "The data holds invisible control characters: they are shown as <U+…> with their code, such as "
            "<U+202E> for one that would display the text after it backwards."
        )
    return "".join(_p(note, "missing") for note in notes)


def _page(spec: InstanceSpec, as_of: pd.Timestamp, run: _RunFiles, sections: list[str]) -> str:
    title = f"{spec.name} as of {as_of:%Y-%m-%d}: {run.model.get('goal') or spec.goal_in_words()}"
    keys = [_section_key(section) for section in sections]
    nav = "".join(f'<li><a href="#{key}">{_esc(_HEADINGS[key])}</a></li>' for key in keys)
    line = f"<p>{_esc(title)} &middot; model {_esc(run.model.get('model_version', '?'))}</p>"
    main = "".join(sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # the report may load nothing: no script, no font, no image from anywhere
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{_esc(spec.name)}: propensity report</h1>{line}{_data_notes(line + main)}"
        f"<nav><ul>{nav}</ul></nav></header>"
        f"<main>{main}</main>"
        f'<footer id="end"><p>Built from the run folder of {_esc(spec.name)} as of {as_of:%Y-%m-%d}. '
        "Every picture is drawn from the numbers in the table under it.</p></footer>"
        "</body></html>\n"
    )
