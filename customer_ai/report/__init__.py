"""The insights report of a run: one self-contained HTML file with pictures, and the numbers behind each.

Sections (each a ``<section id=...>`` with a heading, a picture and a table): the goal and a model card; the
score distribution and bucket counts; the score history across runs; the influential factors, overall and per
bucket; the evaluation against the baselines (ROC, cumulative gains, lift by decile, reliability); for a goal with a
value, the predicted value (this run's by decile, and predicted against realised on held-out profiles); with
``output.timing``, the next goal event (this run's median days to it by goal window, and how well they order
held-out profiles' next goal events against recency and BG/NBD); the drift of the scored profiles' features from
the training rows; "did it come true" for past runs whose goal window has closed; the data validation of the run.

Why matplotlib draws the pictures: it is the most widely used and longest maintained plotting library of the
Python ecosystem (NumFOCUS-sponsored, releases several times a year, wheels for every platform), it renders
without a display or a browser, and it writes static SVG with the text drawn as paths, so a figure needs no
font file, no script and no network: the report opens offline, prints, and is reproducible byte for byte
(``svg.hashsalt`` fixed, no date in the files).  Interactive libraries (Plotly, Bokeh, Altair) need a
JavaScript runtime of several megabytes inlined in every report, or a CDN, which an offline report cannot use.
Figures are built with :class:`matplotlib.figure.Figure` directly, never through ``pyplot``: no GUI backend
(the non-interactive renderers only), nothing left open; they are drawn with matplotlib's default settings plus
a few fixed ones, whatever the process or a ``matplotlibrc`` set.

The report reads only files of the run folder (``model.json``, ``scores.parquet``, ``source.json``,
``validation/*.json``, ``evaluation.json``, ``outcomes.parquet``; ``metadata.json`` and ``drift.json`` when
present), the scores of the instance's earlier published runs (found through the store), and the store's runs and
outcomes.  It is written before the run is published and can be written again afterwards (``customer-ai report``):
both give the same page, since the run's own row and outcomes are taken from its folder.  Everything shown that
came from a user (names, descriptions, factor texts, validation messages) is HTML-escaped, its control characters
shown as ``<U+202E>`` and, when long, shortened with a note on the page (:mod:`~customer_ai.report.html`): the
page's size depends on how many values it shows, not on how long they are.

The package: :mod:`~customer_ai.report.folder` reads the run folder, one module per group of sections
(:mod:`~customer_ai.report.card`, :mod:`~customer_ai.report.scores`, :mod:`~customer_ai.report.factors`,
:mod:`~customer_ai.report.evaluation`, :mod:`~customer_ai.report.value`, :mod:`~customer_ai.report.timing`,
:mod:`~customer_ai.report.drift`,
:mod:`~customer_ai.report.validation`)
writes them,
:mod:`~customer_ai.report.figures` draws their pictures and :mod:`~customer_ai.report.html` their words and
the page around them.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib as mpl
import pandas as pd

from customer_ai.files import write_text
from customer_ai.home import as_path
from customer_ai.report.card import _model_card
from customer_ai.report.drift import _drift_section
from customer_ai.report.evaluation import (
    _evaluation_section,
    _outcomes_section,
    _read_outcomes,
    _with_tracked,
    bucket_rules,
)
from customer_ai.report.factors import (
    MAX_FACTOR_PROFILES,
    _factors_section,
    _feature_labels,
    factor_long,
    factor_summary,
)
from customer_ai.report.figures import _RC
from customer_ai.report.folder import _published_folders, _RunFiles
from customer_ai.report.html import OPTIONAL_SECTIONS, SECTIONS, _page
from customer_ai.report.scores import (
    _history_section,
    _read_runs,
    _scores_section,
    run_rule,
    score_bins,
    score_history,
)
from customer_ai.report.timing import _timing_section, timing_counts
from customer_ai.report.validation import _validation_section
from customer_ai.report.value import _value_section, value_deciles
from customer_ai.spec import InstanceSpec

__all__ = [
    "MAX_FACTOR_PROFILES",
    "OPTIONAL_SECTIONS",
    "REPORT_FILE",
    "SECTIONS",
    "build_report",
    "factor_long",
    "factor_summary",
    "score_bins",
    "score_history",
    "timing_counts",
    "value_deciles",
]

REPORT_FILE = "report.html"


def build_report(
    spec: InstanceSpec,
    as_of: pd.Timestamp,
    home: Path,
    store: object,
    *,
    folder: Path | None = None,
    out: Path | None = None,
) -> Path:
    """Write the HTML report of a run; return its path.

    Parameters
    ----------
    spec : InstanceSpec
        The instance.
    as_of : pandas.Timestamp
        The run's as-of date.
    home : pathlib.Path
        The customer-ai home (run folders of earlier runs are read for the score history).
    store : object
        The profile store: its ``read_runs`` (the published runs and where their folders are) and, when it has
        one, ``read_outcomes`` (what came true) are read; None reads nothing.
    folder : pathlib.Path, optional
        The run folder; by default the one the store says was published as of ``as_of``.  A run's staging folder
        works too: nothing requires ``metadata.json``.
    out : pathlib.Path, optional
        Where to write; by default ``folder / "report.html"``.  Written atomically.

    Raises
    ------
    FileNotFoundError
        When no run was published as of ``as_of`` (and no folder is given), or the folder has no ``model.json`` or
        no ``scores.parquet``.
    """
    runs = _read_runs(store, spec.name)
    published = _published_folders(spec.name, as_path(home), runs)
    if folder is None:
        if f"{as_of:%Y-%m-%d}" not in published:
            where = "" if store is None else f" in {store}"
            raise FileNotFoundError(f"{spec.name} has no run published as of {as_of:%Y-%m-%d}{where}")
        folder = published[f"{as_of:%Y-%m-%d}"]
    folder = as_path(folder)
    out = as_path(out) if out is not None else folder / REPORT_FILE
    run = _RunFiles.read(folder)
    outcomes = _with_tracked(_read_outcomes(store, spec.name), run, spec.name)
    with mpl.rc_context():
        mpl.rcdefaults()
        mpl.rcParams.update(_RC)
        sections = [
            _model_card(spec, as_of, run),
            _scores_section(spec, run),
            _history_section(as_of, run, runs, published),
            _factors_section(spec, run),
            _evaluation_section(run, spec.outcome_words().reached),
            *([_value_section(spec, run)] if run.model.get("value") else []),
            *([_timing_section(spec, run)] if run.model.get("timing") else []),
            _drift_section(run, _feature_labels(run.model)),
            _outcomes_section(as_of, outcomes, bucket_rules(spec, runs), run_rule(spec, run), spec.output.currency),
            _validation_section(run),
        ]
    return write_text(out, _page(spec, as_of, run, sections))
