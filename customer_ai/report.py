"""The insights report of a run: one self-contained HTML file with pictures, and the numbers behind each.

Sections (each a ``<section id=...>`` with a heading, a picture and a table): the goal and a model card; the
score distribution and bucket counts; the score history across runs; the influential factors, overall and per
bucket; the evaluation against the baselines (ROC, cumulative gains, lift by decile, reliability); "did it come
true" for past runs whose goal window has closed; the data validation of the run.

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
``validation/*.json``, ``evaluation.json``; ``metadata.json`` when present), the scores of the instance's earlier
published runs, and the store's runs and outcomes.  Everything shown that came from a user (names, descriptions,
factor texts, validation messages) is HTML-escaped.
"""

from __future__ import annotations

import html
import io
import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from customer_ai import artifacts
from customer_ai.features import FeatureInfo, FeaturePlan, feature_infos
from customer_ai.scoring import empty_bucket_notes
from customer_ai.spec import InstanceSpec

__all__ = [
    "MAX_FACTOR_PROFILES",
    "REPORT_FILE",
    "SECTIONS",
    "build_report",
    "factor_long",
    "factor_summary",
    "published_runs",
    "score_bins",
    "score_history",
]

REPORT_FILE = "report.html"
SECTIONS = {
    "model-card": "Goal and model card",
    "scores": "Score distribution",
    "history": "Score history across runs",
    "factors": "Influential factors",
    "evaluation": "Evaluation against the baselines",
    "outcomes": "Did it come true",
    "validation": "Data validation",
}
MAX_FACTOR_PROFILES = 100_000  # factors are summarised over a fixed random sample beyond this many profiles
_BUCKETS = ("low", "medium", "high")
_BUCKET_COLOURS = {"low": "#b9cbe4", "medium": "#5b8fd1", "high": "#1d3f7a"}
_SCORERS = {"model": "model", "recency": "recency", "frequency": "frequency", "bgnbd": "BG/NBD"}
_SCORER_STYLES = {
    "model": {"color": "#1d3f7a", "linewidth": 2.6, "zorder": 5},
    "recency": {"color": "#d9822b", "linewidth": 1.4},
    "frequency": {"color": "#3a9a5b", "linewidth": 1.4},
    "bgnbd": {"color": "#9a5bb5", "linewidth": 1.4},
}
_RAISES, _LOWERS = "#2f7d4f", "#c0502f"
_TOP_FEATURES = 12
# matplotlib's own defaults plus these, whatever the process set: the same run gives the same file
_RC = {"svg.fonttype": "path", "svg.hashsalt": "customer-ai-report", "font.size": 9, "font.family": "DejaVu Sans"}


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


def _label_text(text: str, limit: int = 52) -> str:
    """Return user text safe for a matplotlib label: ``$`` is not mathtext, long text is cut."""
    text = " ".join(str(text).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("$", r"\$")


# --- what the run folder holds ---------------------------------------------------------------------------------


@dataclass
class _RunFiles:
    """The files of a run folder that the report reads; optional ones are None when absent."""

    folder: Path
    model: dict
    scores: pd.DataFrame
    source: dict | None
    evaluation: dict | None
    metadata: dict | None
    validation: dict[str, dict | None]

    @classmethod
    def read(cls, folder: Path) -> _RunFiles:
        for required in ("model.json", "scores.parquet"):
            if not (folder / required).exists():
                raise FileNotFoundError(
                    f"{folder / required} is missing: a report needs a run folder whose model was trained and "
                    "whose profiles were scored"
                )

        def optional(name: str) -> dict | None:
            path = folder / name
            return artifacts.read_json(path) if path.exists() else None

        return cls(
            folder=folder,
            model=artifacts.read_json(folder / "model.json"),
            scores=pd.read_parquet(folder / "scores.parquet"),
            source=optional("source.json"),
            evaluation=optional("evaluation.json"),
            metadata=optional("metadata.json"),
            validation={stage: optional(f"validation/{stage}.json") for stage in ("events", "training_set", "scores")},
        )


def published_runs(home: Path, instance: str) -> list[pd.Timestamp]:
    """Return the as-of dates of the instance's published run folders in ``home`` that hold scores, oldest first."""
    dates = []
    for path in (Path(home) / "artifacts" / instance).glob("[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]"):
        if (path / "scores.parquet").exists():
            try:
                dates.append(pd.Timestamp(path.name, tz="UTC"))
            except ValueError:
                continue
    return sorted(dates)


# --- figures ---------------------------------------------------------------------------------------------------


def _figure(width: float, height: float, **subplots: object) -> tuple[Figure, object]:
    figure = Figure(figsize=(width, height), layout="constrained")
    axes = figure.subplots(**subplots) if subplots else figure.subplots()
    return figure, axes


def _style(ax: object) -> None:
    ax.spines[["top", "right"]].set_visible(False)  # type: ignore[attr-defined]
    ax.grid(True, color="#e4e4e4", linewidth=0.6)  # type: ignore[attr-defined]
    ax.set_axisbelow(True)  # type: ignore[attr-defined]


def _svg(figure: Figure, name: str, caption: str) -> str:
    """Return a figure as inline SVG (text as paths, ids prefixed by ``name``) inside a ``<figure>``."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.DOTALL)
    text = re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL)
    # several SVGs share one HTML document: their ids must not collide
    text = re.sub(r'\bid="', f'id="{name}-', text)
    text = text.replace('href="#', f'href="#{name}-').replace("url(#", f"url(#{name}-")
    text = re.sub(r"\n\s*", "\n", text)
    label = _esc(caption)
    text = text.replace("<svg ", f'<svg role="img" aria-label="{label}" ', 1)
    return f"<figure>{text}<figcaption>{label}</figcaption></figure>"


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


# --- model card ------------------------------------------------------------------------------------------------


def _model_card(spec: InstanceSpec, as_of: pd.Timestamp, run: _RunFiles) -> str:
    model = run.model
    reused = bool(model.get("reused"))
    trained = model.get("as_of", "?")
    quality = model.get("quality", {})
    metrics = model.get("validation", {}).get("metrics", {})
    windows = model.get("windows", {})
    snapshots = windows.get("snapshots", [])
    counts = model.get("label_counts", {})
    source = run.source or {}
    window = source.get("window") or ["?", "?"]
    history = model.get("history", {})
    parameters = model.get("parameters", {})
    calibration = model.get("calibration", {})
    start = model.get("boosting_start") or {}
    versions = model.get("versions", {})
    auc = metrics.get("model_roc_auc", metrics.get("roc_auc"))
    verdict = f"{quality.get('status', '?')}: {quality.get('reason', '')}"
    rows = [
        ("instance", f"{spec.name} ({model.get('propensity', spec.propensity)})"),
        ("scored as of", f"{as_of:%Y-%m-%d}"),
        ("model version", model.get("model_version", "?")),
        (
            "trained",
            f"reused: trained in the run as of {trained}, not retrained in this run"
            if reused
            else f"in this run, as of {trained}",
        ),
        ("quality gate", verdict),
        ("held-out ROC AUC", _num(auc)),
        (
            "data read",
            f"events from {window[0]} to before {window[1]}; the source starts {_day(source.get('data_start'))}",
        ),
        ("feature window", windows.get("features", "?")),
        ("eligible profiles", windows.get("eligibility", "?")),
        ("goal window", windows.get("label", "?")),
        ("validation snapshot", snapshots[0] if snapshots else "?"),
        ("training snapshots", ", ".join(snapshots[1:])),
        (
            "training labels",
            f"{_int(counts.get('positives'))} reached the goal, {_int(counts.get('negatives'))} did not",
        ),
        ("features", f"{len(model.get('features', {}).get('names', []))} (listed below)"),
        (
            "calibration",
            f"{calibration.get('method', '?')}: slope {_num(calibration.get('slope'))}, "
            f"intercept {_num(calibration.get('intercept'))}",
        ),
        ("boosting start", f"{start.get('chosen', '?')}; rounds: {model.get('best_iteration', '?')}"),
        ("parameters", ", ".join(f"{k}={v}" for k, v in sorted(parameters.items()))),
        ("versions", ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))),
    ]
    if run.metadata is not None and run.metadata.get("versions") and run.metadata["versions"] != versions:
        rows.append(
            ("versions of this run", ", ".join(f"{k} {v}" for k, v in sorted(run.metadata["versions"].items())))
        )
    notes = history.get("notes") or []
    label_rows = []
    for entry in counts.get("snapshots", []):
        rows_n = entry.get("rows", 0)
        label_rows.append(
            (
                entry.get("as_of"),
                entry.get("role"),
                _int(rows_n),
                _int(entry.get("positives")),
                _int(entry.get("negatives")),
                _pct(entry["positives"] / rows_n if rows_n else None),
                _int(entry.get("evaluation", {}).get("rows")) if entry.get("role") == "validation" else "",
            )
        )
    descriptions = model.get("features", {}).get("descriptions", {})
    categorical = set(model.get("features", {}).get("categorical", []))
    feature_rows = [
        (name, _template_words(descriptions.get(name, "")), "category" if name in categorical else "number")
        for name in model.get("features", {}).get("names", [])
    ]
    parts = [
        f'<p class="goal">Goal: <strong>{_esc(model.get("goal") or spec.goal_in_words())}</strong></p>',
        _p(spec.description) if spec.description else "",
        _p(
            "The model learns from past snapshots: at each date it looks at what every eligible profile did before, "
            "and at whether the goal happened in the goal window after it. It is judged on half of the latest "
            "snapshot's profiles that nothing in training saw."
        ),
    ]
    if counts.get("snapshots"):
        parts.append(_svg(_timeline_figure(as_of, run.model), "model-card-timeline", "Snapshots and their windows"))
    parts.append(_pairs(rows))
    if notes:
        parts.append("<ul class=notes>" + "".join(f"<li>{_esc(n)}</li>" for n in notes) + "</ul>")
    parts.append(
        _table(
            ["snapshot", "role", "profiles", "reached the goal", "did not", "rate", "held out for evaluation"],
            label_rows,
            caption="Label counts per snapshot",
        )
    )
    parts.append(_table(["feature", "meaning", "kind"], feature_rows, caption="Features"))
    return _section("model-card", parts)


def _day(text: object) -> str:
    return "?" if not text else str(text)[:10]


def _template_words(template: str) -> str:
    return template.replace("{value}", "…")


def _timeline_figure(as_of: pd.Timestamp, model: dict) -> Figure:
    from matplotlib import dates as mdates  # noqa: PLC0415 - only the timeline needs date axes

    counts = model["label_counts"]["snapshots"]
    history = model.get("history", {})
    lookback = int(history.get("lookback_days") or 0)
    window = int(history.get("window_days") or _window_days(model))
    figure, ax = _figure(8.5, 0.45 * (len(counts) + 1) + 0.9)
    rows = [*reversed(counts)]
    for y, entry in enumerate(rows):
        start = pd.Timestamp(entry["as_of"])
        colour = "#d9822b" if entry["role"] == "validation" else "#5b8fd1"
        if lookback:
            ax.barh(y, lookback, left=mdates.date2num(start - pd.Timedelta(days=lookback)), color="#e6e6e6", height=0.6)
        ax.barh(y, window, left=mdates.date2num(start), color=colour, height=0.6)
        rate = entry["positives"] / entry["rows"] if entry["rows"] else float("nan")
        ax.annotate(
            f"{entry['rows']:,} profiles, {rate:.0%} reached the goal",
            (mdates.date2num(start + pd.Timedelta(days=window)), y),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=7.5,
        )
    y = len(rows)
    naive = as_of.tz_convert(None) if as_of.tzinfo else as_of
    if lookback:
        ax.barh(y, lookback, left=mdates.date2num(naive - pd.Timedelta(days=lookback)), color="#e6e6e6", height=0.6)
    ax.barh(y, window, left=mdates.date2num(naive), color="white", edgecolor="#1d3f7a", hatch="///", height=0.6)
    ax.annotate(
        "scored: the goal window ahead",
        (mdates.date2num(naive + pd.Timedelta(days=window)), y),
        xytext=(4, 0),
        textcoords="offset points",
        va="center",
        fontsize=7.5,
    )
    ax.set_yticks(
        range(len(rows) + 1), [f"{e['as_of']} ({e['role']})" for e in rows] + [f"{naive:%Y-%m-%d} (this run)"]
    )
    locator = mdates.AutoDateLocator(minticks=4, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlim(right=mdates.date2num(naive + pd.Timedelta(days=window * 3.2)))
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_title(
        "grey: what the features look at; colour: the goal window (blue training, orange validation)", fontsize=8
    )
    return figure


def _window_days(model: dict) -> int:
    match = re.search(r"(\d+) days\)", model.get("windows", {}).get("label", ""))
    return int(match.group(1)) if match else 30


# --- score distribution ----------------------------------------------------------------------------------------


def score_bins(score: np.ndarray, bucket: np.ndarray, width: int = 5) -> pd.DataFrame:
    """Return profiles per score bin of ``width`` points (the last bin includes 100), per bucket.

    Columns ``low_score``, ``high_score`` (the bin is ``[low, high)``, the last ``[low, 100]``), ``profiles``,
    then one count column per bucket (``low``, ``medium``, ``high``).
    """
    score = np.asarray(score, dtype="int64")
    bucket = np.asarray(bucket, dtype=object)
    edges = list(range(0, 100, width))
    which = np.minimum(score // width, len(edges) - 1)
    rows = []
    for i, low in enumerate(edges):
        inside = which == i
        row = {"low_score": low, "high_score": min(low + width, 100), "profiles": int(inside.sum())}
        row.update({b: int((inside & (bucket == b)).sum()) for b in _BUCKETS})
        rows.append(row)
    return pd.DataFrame(rows)


def _scores_section(spec: InstanceSpec, run: _RunFiles) -> str:
    scores = run.scores
    bins = score_bins(scores["score"].to_numpy(), scores["bucket"].to_numpy())
    figure, ax = _figure(8.5, 3.2)
    bottom = np.zeros(len(bins))
    centres = bins["low_score"].to_numpy() + 2.5
    for b in _BUCKETS:
        ax.bar(centres, bins[b], width=4.6, bottom=bottom, color=_BUCKET_COLOURS[b], label=b)
        bottom += bins[b].to_numpy()
    if spec.output.buckets_by == "score":
        for name, threshold in spec.output.buckets.items():
            ax.axvline(threshold, color="#555555", linestyle=":", linewidth=1)
            ax.annotate(
                f"{name} from {threshold:g}",
                (threshold, 1),
                xycoords=("data", "axes fraction"),
                xytext=(3, -10),
                textcoords="offset points",
                fontsize=7.5,
            )
    ax.set_xlim(0, 100)
    ax.set_xlabel("score (the probability of the goal, in percent)")
    ax.set_ylabel("profiles")
    ax.legend(title="bucket", frameon=False)
    _style(ax)
    total = len(scores)
    bucket_rows = []
    for b in _BUCKETS:
        members = scores.loc[scores["bucket"] == b]
        bucket_rows.append(
            (
                b,
                _int(len(members)),
                _pct(len(members) / total if total else None),
                f"{members['score'].min()}–{members['score'].max()}" if len(members) else "–",
                _pct(members["probability"].mean() if len(members) else None),
            )
        )
    expected = scores["probability"].sum()
    parts = [
        _p(
            f"{total:,} profiles scored. The score is the calibrated probability of the goal in percent: of 100 "
            f"profiles with a score of 30, about 30 are expected to reach the goal. Of all {total:,}, about "
            f"{expected:,.0f} are expected to reach it."
        ),
        _svg(figure, "scores-histogram", "Profiles per 5-point score bin, coloured by bucket"),
        _table(["bucket", "profiles", "share", "scores", "mean probability"], bucket_rows, caption="Bucket counts"),
        *[_p(note, "notes") for note in empty_bucket_notes(spec.output, scores)],
        _table(
            ["scores", "profiles", *_BUCKETS],
            [
                (
                    f"{r.low_score}–{r.high_score - 1 if r.high_score < 100 else 100}",
                    _int(r.profiles),
                    _int(r.low),
                    _int(r.medium),
                    _int(r.high),
                )
                for r in bins.itertuples(index=False)
            ],
            caption="Profiles per 5-point score bin",
        ),
    ]
    return _section("scores", parts)


# --- score history ---------------------------------------------------------------------------------------------


def score_history(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Return per run date the profiles, bucket shares and score quantiles of its scores.

    Parameters
    ----------
    frames : dict
        As-of date (text) to that run's scores (columns ``probability`` and ``bucket``).

    Returns
    -------
    pandas.DataFrame
        One row per date, oldest first: ``as_of``, ``profiles``, ``low``, ``medium``, ``high`` (shares),
        ``p10``, ``p25``, ``p50``, ``p75``, ``p90`` (of the score, the probability in percent) and ``mean``.
    """
    rows = []
    for date in sorted(frames):
        frame = frames[date]
        score = frame["probability"].to_numpy(dtype="float64") * 100
        n = len(frame)
        row: dict[str, object] = {"as_of": date, "profiles": n}
        row.update({b: float((frame["bucket"] == b).mean()) if n else float("nan") for b in _BUCKETS})
        for q in (10, 25, 50, 75, 90):
            row[f"p{q}"] = float(np.percentile(score, q)) if n else float("nan")
        row["mean"] = float(score.mean()) if n else float("nan")
        rows.append(row)
    columns = ["as_of", "profiles", *_BUCKETS, "p10", "p25", "p50", "p75", "p90", "mean"]
    return pd.DataFrame(rows, columns=columns)


def _read_runs(store: object, instance: str) -> pd.DataFrame | None:
    reader = getattr(store, "read_runs", None)
    return None if reader is None else reader(instance)


def _history_section(
    spec: InstanceSpec, as_of: pd.Timestamp, home: Path, run: _RunFiles, runs: pd.DataFrame | None
) -> str:
    today = f"{as_of:%Y-%m-%d}"
    frames = {
        f"{date:%Y-%m-%d}": pd.read_parquet(
            artifacts.run_dir(home, spec.name, date) / "scores.parquet", columns=["probability", "bucket"]
        )
        for date in published_runs(home, spec.name)
        if date < as_of
    }
    frames[today] = run.scores[["probability", "bucket"]]
    history = score_history(frames)
    positions = np.arange(len(history))
    figure, (shares, levels) = _figure(8.5, 5.2, nrows=2, sharex=True)
    bottom = np.zeros(len(history))
    for b in _BUCKETS:
        shares.bar(positions, history[b], bottom=bottom, color=_BUCKET_COLOURS[b], label=b, width=0.7)
        bottom += history[b].to_numpy()
    shares.set_ylabel("share of profiles")
    shares.yaxis.set_major_formatter(PercentFormatter(1.0))
    shares.legend(title="bucket", frameon=False, loc="upper left", bbox_to_anchor=(1, 1))
    _style(shares)
    levels.vlines(positions, history["p10"], history["p90"], color="#b9cbe4", linewidth=3, label="10%–90% of profiles")
    levels.vlines(positions, history["p25"], history["p75"], color="#5b8fd1", linewidth=9, label="middle half")
    levels.plot(positions, history["p50"], color="#1d3f7a", marker="o", markersize=4, label="median")
    levels.set_ylabel("score")
    levels.legend(frameon=False, loc="upper left", bbox_to_anchor=(1, 1))
    _style(levels)
    step = max(1, math.ceil(len(history) / 12))
    levels.set_xticks(positions[::step], history["as_of"].iloc[::step], rotation=30, ha="right")
    if len(history) == 1:
        levels.set_xlim(-1, 1)
    statuses: dict[str, tuple[str, str, str]] = {}
    if runs is not None and len(runs):
        for row in runs.itertuples(index=False):
            if row.as_of > today:
                continue
            metrics = json.loads(row.metrics) if row.metrics else {}
            statuses[row.as_of] = (
                row.status,
                row.model_version,
                _num(metrics.get("model_roc_auc", metrics.get("roc_auc"))),
            )
    dates = sorted(set(history["as_of"]) | set(statuses))
    by_date = history.set_index("as_of")
    table_rows = []
    for date in dates:
        status, version, auc = statuses.get(date, ("this run" if date == today else "–", "", ""))
        if date == today and date not in statuses:
            version = run.model.get("model_version", "")
            auc = _num(run.model.get("validation", {}).get("metrics", {}).get("model_roc_auc"))
        if date in by_date.index:
            h = by_date.loc[date]
            cells = [
                _int(h["profiles"]),
                *(_pct(h[b]) for b in _BUCKETS),
                _num(h["p10"], 0),
                _num(h["p50"], 0),
                _num(h["p90"], 0),
            ]
        else:
            cells = ["no scores published"] + ["–"] * 6
        table_rows.append((date, status, version, auc, *cells))
    parts = [
        _p(
            "How the scores of this instance moved from run to run: the share of profiles in each bucket, and "
            "where the scores lie. A sudden shift is worth a look: a change in the data, in the customers, or in "
            "the model."
        ),
        _svg(figure, "history-buckets", "Bucket shares and score levels per run"),
        _table(
            [
                "as of",
                "status",
                "model",
                "held-out ROC AUC",
                "profiles",
                *_BUCKETS,
                "10th pct score",
                "median score",
                "90th pct score",
            ],
            table_rows,
            caption="Runs of this instance",
        ),
    ]
    return _section("history", parts)


# --- influential factors ---------------------------------------------------------------------------------------


def factor_long(factors: Iterable[object]) -> pd.DataFrame:
    """Return each profile's factors as rows, one per (profile, factor).

    Columns ``profile`` (the profile's position), ``rank`` (0 = its top factor), ``feature``, ``description``,
    ``value``, ``contribution``.  ``factors`` holds per profile a JSON text (as in ``scores.parquet``) or a
    list of factor dicts.
    """
    records = []
    for position, item in enumerate(factors):
        listed = json.loads(item) if isinstance(item, str) else (item or [])
        for rank, factor in enumerate(listed):
            records.append(
                (
                    position,
                    rank,
                    str(factor.get("feature", "")),
                    str(factor.get("description", "")),
                    factor.get("value"),
                    float(factor.get("contribution", 0.0)),
                )
            )
    return pd.DataFrame.from_records(
        records, columns=["profile", "rank", "feature", "description", "value", "contribution"]
    )


def _typical(values: pd.Series, descriptions: pd.Series, info: FeatureInfo | None) -> str:
    """Return a typical value in words: the median's (or commonest category's) description, else the commonest text."""
    if values.empty:
        return ""
    if info is not None:
        present = values.dropna()
        if len(present) * 2 < len(values):
            return info.missing
        try:
            if info.style == "text" or info.categorical:
                return info.describe(present.astype(str).mode().iloc[0])
            return info.describe(float(np.median(present.astype("float64"))))
        except (TypeError, ValueError, KeyError, IndexError):
            pass
    return str(descriptions.mode().iloc[0])


def factor_summary(long: pd.DataFrame, profiles: int, infos: dict[str, FeatureInfo] | None = None) -> pd.DataFrame:
    """Return per feature how much and how often it drives the scores of ``profiles`` profiles.

    Parameters
    ----------
    long : pandas.DataFrame
        The factors of those profiles, from :func:`factor_long`.
    profiles : int
        How many profiles (those without factors count too).
    infos : dict, optional
        Feature name to :class:`~customer_ai.features.FeatureInfo`, to put typical values in words; without
        one, the commonest description stands for the typical value.

    Returns
    -------
    pandas.DataFrame
        One row per feature, the most influential first: ``feature``, ``mean_abs`` (mean absolute
        contribution on the log-odds, a factor not among a profile's listed factors counting zero),
        ``mean_raise`` and ``mean_lower`` (the positive and the negative parts of that mean), ``top_share``
        (share of profiles whose top factor it is), ``listed_share`` (share listing it), ``raises_share``
        (share of its listings that raise the chance), ``typical_raises`` and ``typical_lowers`` (a typical
        value, in words, where it raises and where it lowers the chance).
    """
    infos = infos or {}
    columns = [
        "feature",
        "mean_abs",
        "mean_raise",
        "mean_lower",
        "top_share",
        "listed_share",
        "raises_share",
        "typical_raises",
        "typical_lowers",
    ]
    if profiles == 0 or long.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for feature, group in long.groupby("feature", sort=False):
        contribution = group["contribution"]
        up, down = group.loc[contribution > 0], group.loc[contribution < 0]
        info = infos.get(str(feature))
        rows.append(
            {
                "feature": feature,
                "mean_abs": float(contribution.abs().sum() / profiles),
                "mean_raise": float(up["contribution"].sum() / profiles),
                "mean_lower": float(down["contribution"].sum() / profiles),
                "top_share": float((group["rank"] == 0).sum() / profiles),
                "listed_share": float(group["profile"].nunique() / profiles),
                "raises_share": float(len(up) / len(group)),
                "typical_raises": _typical(up["value"], up["description"], info),
                "typical_lowers": _typical(down["value"], down["description"], info),
            }
        )
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values(["mean_abs", "feature"], ascending=[False, True], kind="stable").reset_index(drop=True)


def _feature_infos(spec: InstanceSpec, model: dict) -> dict[str, FeatureInfo]:
    try:
        plan = FeaturePlan.from_dict(model["features"]["plan"])
        return {info.name: info for info in feature_infos(plan, spec)}
    except (KeyError, TypeError, ValueError, AttributeError):  # a model of another definition: words from the texts
        return {}


def _feature_labels(model: dict) -> Callable[[str], str]:
    descriptions = model.get("features", {}).get("descriptions", {})

    def label(name: str) -> str:
        template = descriptions.get(name)
        return _template_words(template) if template else name

    return label


def _factors_section(spec: InstanceSpec, run: _RunFiles) -> str:
    scores = run.scores
    sampled = len(scores) > MAX_FACTOR_PROFILES
    if sampled:
        scores = scores.sample(MAX_FACTOR_PROFILES, random_state=0)
    long = factor_long(scores["factors"])
    infos = _feature_infos(spec, run.model)
    label = _feature_labels(run.model)
    overall = factor_summary(long, len(scores), infos)
    parts = [
        _p(
            "Each profile's score comes with the factors that moved it most (TreeSHAP contributions on the "
            "log-odds). Overall, a factor's influence is its mean absolute contribution over all profiles (zero "
            "where it is not among a profile's listed factors); green raises the chance of the goal, red lowers "
            'it. "Top factor" counts the profiles for which it is the strongest.'
        )
    ]
    if sampled:
        parts.append(
            _p(f"Summarised over a random sample of {MAX_FACTOR_PROFILES:,} of the {len(run.scores):,} profiles.")
        )
    if overall.empty:
        parts.append(_p("No profile has influential factors."))
        return _section("factors", parts)
    top = overall.head(_TOP_FEATURES)
    parts.append(_svg(_overall_figure(top, label), "factors-overall", "The most influential factors over all profiles"))
    parts.append(
        _table(
            [
                "factor",
                "influence",
                "top factor for",
                "listed for",
                "raises the chance in",
                "typically, where it raises",
                "typically, where it lowers",
            ],
            [
                (
                    label(r.feature),
                    _num(r.mean_abs),
                    _pct(r.top_share),
                    _pct(r.listed_share),
                    _pct(r.raises_share),
                    r.typical_raises,
                    r.typical_lowers,
                )
                for r in overall.itertuples(index=False)
            ],
            caption="Influential factors over all profiles",
        )
    )
    per_bucket = {}
    bucket_of = scores["bucket"].to_numpy()
    for b in _BUCKETS:
        members = np.flatnonzero(bucket_of == b)
        subset = long.loc[long["profile"].isin(members)]
        per_bucket[b] = factor_summary(subset, len(members), infos)
    figure = _bucket_figure(per_bucket, list(top["feature"]), label)
    parts.append(_svg(figure, "factors-buckets", "Influence of the main factors in each bucket"))
    rows = []
    for b in _BUCKETS:
        summary = per_bucket[b].head(5)
        for r in summary.itertuples(index=False):
            typical = r.typical_raises if r.raises_share >= 0.5 else r.typical_lowers
            direction = "raises" if r.raises_share >= 0.5 else "lowers"
            rows.append((b, label(r.feature), _num(r.mean_abs), _pct(r.top_share), f"mostly {direction}", typical))
    parts.append(
        _table(
            ["bucket", "factor", "influence", "top factor for", "effect", "typical value"],
            rows,
            caption="The five main factors of each bucket",
        )
    )
    return _section("factors", parts)


def _overall_figure(top: pd.DataFrame, label: Callable[[str], str]) -> Figure:
    names = [_label_text(label(f)) for f in top["feature"]][::-1]
    figure, (influence, often) = _figure(9.5, 0.32 * len(top) + 1.4, ncols=2, sharey=True, width_ratios=[3, 2])
    y = np.arange(len(top))
    influence.barh(y, top["mean_raise"].to_numpy()[::-1], color=_RAISES, label="raises the chance")
    influence.barh(y, top["mean_lower"].to_numpy()[::-1], color=_LOWERS, label="lowers the chance")
    influence.axvline(0, color="#333333", linewidth=0.8)
    influence.set_yticks(y, names)
    influence.set_xlabel("mean contribution (log-odds)")
    influence.legend(frameon=False, loc="lower right")
    _style(influence)
    often.barh(y, top["top_share"].to_numpy()[::-1], color="#5b8fd1")
    often.xaxis.set_major_formatter(PercentFormatter(1.0))
    often.set_xlabel("profiles whose top factor it is")
    _style(often)
    return figure


def _bucket_figure(per_bucket: dict[str, pd.DataFrame], shown: list[str], label: Callable[[str], str]) -> Figure:
    matrix = np.array([[_lookup(per_bucket[b], f, "mean_abs") for b in _BUCKETS] for f in shown], dtype="float64")
    figure, ax = _figure(7.5, 0.32 * len(shown) + 1.2)
    filled = np.nan_to_num(matrix)
    # cells drawn as vector patches (an image would be a raster, blocked by the page's policy and blurred)
    ax.pcolormesh(filled, cmap="Blues", vmin=0, vmax=max(float(filled.max()), 1e-9), edgecolors="white", linewidth=1)
    for (row, column), value in np.ndenumerate(filled):
        dark = value > filled.max() * 0.6
        ax.text(
            column + 0.5,
            row + 0.5,
            f"{value:.2f}",
            ha="center",
            va="center",
            fontsize=7.5,
            color="white" if dark else "#222222",
        )
    ax.set_xticks(np.arange(len(_BUCKETS)) + 0.5, [f"{b} bucket" for b in _BUCKETS])
    ax.set_yticks(np.arange(len(shown)) + 0.5, [_label_text(label(f)) for f in shown])
    ax.invert_yaxis()
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    ax.spines[:].set_visible(False)
    ax.set_title("mean absolute contribution in each bucket", fontsize=8)
    return figure


def _lookup(frame: pd.DataFrame, feature: str, column: str) -> float:
    match = frame.loc[frame["feature"] == feature, column]
    return float(match.iloc[0]) if len(match) else float("nan")


# --- evaluation ------------------------------------------------------------------------------------------------


def _evaluation_section(run: _RunFiles) -> str:
    evaluation = run.evaluation
    if evaluation is None:
        version = run.model.get("model_version", "?")
        why = (
            f"The held-out curves are not available for model {version}: it was stored before models kept them "
            f"(it was trained as of {run.model.get('as_of', '?')} and reused by this run). They come with the next "
            "model trained; the model's held-out metrics are in the model card."
        )
        return _section("evaluation", [_p(why, "missing")])
    scorers = [s for s in _SCORERS if s in evaluation["scorers"]]
    data = evaluation["scorers"]
    figure, axes = _figure(9.5, 8.0, nrows=2, ncols=2)
    roc, gains, lift, reliability = axes.ravel()
    for name in reversed(scorers):  # the model drawn last, on top
        style = _SCORER_STYLES[name]
        curve = data[name]
        auc = curve["metrics"].get("roc_auc")
        roc.plot(
            curve["roc"]["false_positive_rate"],
            curve["roc"]["true_positive_rate"],
            label=f"{_SCORERS[name]} (AUC {_num(auc)})",
            **style,
        )
        share = [0.0] + [g["share"] for g in curve["gains"]]
        gained = [0.0] + [g["cumulative_gain"] for g in curve["gains"]]
        gains.plot(share, gained, marker="o", markersize=3, label=_SCORERS[name], **style)
        lift.plot(
            [g["decile"] for g in curve["gains"]],
            [g["lift"] for g in curve["gains"]],
            marker="o",
            markersize=3,
            label=_SCORERS[name],
            **style,
        )
        filled = [b for b in curve["reliability"] if b["count"]]
        reliability.plot(
            [b["mean_predicted"] for b in filled],
            [b["observed_rate"] for b in filled],
            marker="o",
            markersize=3,
            label=_SCORERS[name],
            **style,
        )
    for ax in (roc, gains, reliability):
        ax.plot(
            [0, 1],
            [0, 1],
            color="#999999",
            linestyle="--",
            linewidth=1,
            label="chance" if ax is not reliability else "perfect",
        )
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    lift.axhline(1, color="#999999", linestyle="--", linewidth=1, label="no lift")
    roc.set(title="ROC curve", xlabel="false positive rate", ylabel="true positive rate")
    gains.set(
        title="Cumulative gains",
        xlabel="share of profiles contacted, best scores first",
        ylabel="share of goal events reached",
    )
    lift.set(title="Lift by decile", xlabel="decile (1 = highest scores)", ylabel="goal rate / overall rate")
    lift.set_xticks(range(1, 11))
    reliability.set(title="Reliability", xlabel="predicted probability (mean of a bin)", ylabel="observed rate")
    for ax in (roc, gains, lift, reliability):
        ax.legend(frameon=False, fontsize=7.5)
        _style(ax)
    metric_rows = []
    for name in scorers:
        m = data[name]["metrics"]
        versus = evaluation.get("model_vs", {}).get(name)
        gain = f"{versus['difference']:+.3f} [{versus['low']:+.3f}, {versus['high']:+.3f}]" if versus else ""
        metric_rows.append(
            (
                _SCORERS[name],
                _num(m.get("roc_auc")),
                _num(m.get("pr_auc")),
                _num(m.get("log_loss")),
                _num(m.get("brier")),
                _num(m.get("calibration_error")),
                _num(m.get("calibration_error_floor")),
                _num(m.get("top_decile_lift"), 2),
                _pct(m.get("mean_probability")),
                _pct(m.get("positive_rate")),
                gain,
            )
        )
    decile_headers = ["scorer", *(str(d) for d in range(1, 11))]
    decile_tables = [
        _table(
            decile_headers,
            [[_SCORERS[n], *(fmt(g[key]) for g in data[n]["gains"])] for n in scorers],
            caption=caption,
        )
        for key, fmt, caption in (
            ("positive_rate", _pct, "Goal rate by decile (1 = the tenth of profiles with the highest scores)"),
            ("lift", lambda v: _num(v, 2), "Lift by decile"),
            (
                "cumulative_gain",
                lambda v: _pct(v, 0),
                "Cumulative gains: share of goal events reached up to the decile",
            ),
        )
    ]
    bin_rows = []
    for i, edges in enumerate(data["model"]["reliability"]):
        cells = [f"{edges['low']:.1f}–{edges['high']:.1f}"]
        for name in scorers:
            b = data[name]["reliability"][i]
            cells.append(
                f"{_pct(b['mean_predicted'])} / {_pct(b['observed_rate'])} ({b['count']:,})" if b["count"] else "–"
            )
        bin_rows.append(cells)
    names = ", ".join(f"{_SCORERS[n]}: {evaluation['baselines'][n]}" for n in scorers if n != "model")
    parts = [
        _p(
            f"Measured on {evaluation['rows']:,} profiles of the snapshot {evaluation['snapshot']} "
            f"({evaluation['positives']:,} reached the goal), which no fitting step saw. The baselines are simple "
            f"rules a marketer could use instead ({names}), each turned into a probability on the same training "
            "snapshots; the model is worth its keep where its curves lie above theirs."
        ),
        _p(
            "How to read: ROC, the higher and further left the better (0.5 is chance); cumulative gains, the share "
            "of all goal events reached by contacting the best-scored share of profiles; lift, how many times the "
            "overall rate each tenth of profiles reaches; reliability, points on the diagonal mean that a predicted "
            "30% comes true 30% of the time."
        ),
        _svg(figure, "evaluation-curves", "ROC, cumulative gains, lift by decile and reliability, model and baselines"),
        _table(
            [
                "scorer",
                "ROC AUC",
                "PR AUC",
                "log loss",
                "Brier",
                "calibration error",
                "from chance alone",
                "top-decile lift",
                "mean predicted",
                "observed rate",
                "model's ROC AUC gain [95% interval]",
            ],
            metric_rows,
            caption="Held-out metrics",
        ),
        *decile_tables,
        _table(
            ["predicted", *(f"{_SCORERS[n]}: predicted / observed (profiles)" for n in scorers)],
            bin_rows,
            caption="Reliability bins",
        ),
    ]
    return _section("evaluation", parts)


# --- did it come true ------------------------------------------------------------------------------------------


def _read_outcomes(store: object, instance: str) -> pd.DataFrame | None:
    reader = getattr(store, "read_outcomes", None)
    return None if reader is None else reader(instance)


def _outcomes_section(as_of: pd.Timestamp, outcomes: pd.DataFrame | None) -> str:
    today = f"{as_of:%Y-%m-%d}"
    if outcomes is not None:
        outcomes = outcomes.loc[outcomes["as_of"] <= today]
    if outcomes is None or outcomes.empty:
        return _section(
            "outcomes",
            [
                _p(
                    "No past run has a closed goal window yet: once the goal window of a run has passed, the rate "
                    "that came true is shown here next to the rate its scores predicted.",
                    "missing",
                )
            ],
        )
    dates = sorted(outcomes["as_of"].unique())
    figure, (over_time, deciles) = _figure(9.5, 3.6, ncols=2, width_ratios=[3, 2])
    positions = np.arange(len(dates))
    for group, colour in (("all", "#333333"), *((b, _BUCKET_COLOURS[b]) for b in _BUCKETS)):
        rows = outcomes.loc[outcomes["group"] == group].set_index("as_of").reindex(dates)
        if rows["profiles"].isna().all():
            continue
        name = "all profiles" if group == "all" else f"{group} bucket"
        over_time.plot(
            positions, rows["realised_rate"], color=colour, marker="o", markersize=4, label=f"{name}: came true"
        )
        over_time.plot(
            positions, rows["predicted_rate"], color=colour, linestyle="--", linewidth=1, label=f"{name}: predicted"
        )
    step = max(1, math.ceil(len(dates) / 10))
    over_time.set_xticks(positions[::step], dates[::step], rotation=30, ha="right")
    if len(dates) == 1:
        over_time.set_xlim(-1, 1)
    over_time.yaxis.set_major_formatter(PercentFormatter(1.0))
    over_time.set(title="Per bucket, by run date", ylabel="goal rate")
    over_time.legend(frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1, 1))
    _style(over_time)
    latest = dates[-1]
    decile_rows = outcomes.loc[(outcomes["as_of"] == latest) & (outcomes["grouping"] == "decile")].copy()
    decile_rows["order"] = decile_rows["group"].astype(int)
    decile_rows = decile_rows.sort_values("order")
    deciles.bar(decile_rows["order"], decile_rows["realised_rate"], color="#5b8fd1", label="came true")
    deciles.plot(
        decile_rows["order"],
        decile_rows["predicted_rate"],
        color="#1d3f7a",
        marker="D",
        markersize=4,
        linestyle="none",
        label="predicted",
    )
    deciles.set_xticks(range(1, 11))
    deciles.yaxis.set_major_formatter(PercentFormatter(1.0))
    deciles.set(title=f"Per decile, run as of {latest}", xlabel="decile (1 = highest scores)")
    deciles.legend(frameon=False, fontsize=7.5)
    _style(deciles)
    bucket_rows, decile_rows_text = [], []
    for date in dates:
        rows = outcomes.loc[outcomes["as_of"] == date]
        rate = {(r.grouping, str(r.group)): r for r in rows.itertuples(index=False)}
        tracked = rows["tracked_at"].iloc[0] if "tracked_at" in rows.columns and len(rows) else ""
        bucket_rows.append(
            [
                date,
                *(_predicted_realised(rate.get(("all" if g == "all" else "bucket", g))) for g in ("all", *_BUCKETS)),
                tracked,
            ]
        )
        decile_rows_text.append(
            [date, *(_predicted_realised(rate.get(("decile", str(d))), False) for d in range(1, 11))]
        )
    parts = [
        _p(
            "For past runs whose goal window has closed: the share of each group's profiles that really reached the "
            "goal (solid), next to the share their scores predicted (dashed). Close lines mean the probabilities "
            "can be taken at their word."
        ),
        _svg(figure, "outcomes-rates", "Predicted and realised goal rates of past runs"),
        _table(
            ["run as of", "all profiles", *(f"{b} bucket" for b in _BUCKETS), "checked"],
            bucket_rows,
            caption="Predicted → came true, per bucket (profiles)",
        ),
        _table(
            ["run as of", *(str(d) for d in range(1, 11))],
            decile_rows_text,
            caption="Predicted → came true, per decile (1 = the highest scores)",
        ),
    ]
    return _section("outcomes", parts)


def _predicted_realised(row: object, profiles: bool = True) -> str:
    if row is None:
        return "–"
    text = f"{_pct(row.predicted_rate, 0)} → {_pct(row.realised_rate, 0)}"  # type: ignore[attr-defined]
    return f"{text} ({_int(row.profiles)})" if profiles else text  # type: ignore[attr-defined]


# --- data validation -------------------------------------------------------------------------------------------


_STAGE_WORDS = {"events": "events", "training_set": "training set", "scores": "scores"}


def _validation_section(run: _RunFiles) -> str:
    stages = run.validation
    reused = bool(run.model.get("reused"))
    figure, ax = _figure(7.5, 1.9)
    labels, rows, failures = [], [], []
    for y, stage in enumerate(("events", "training_set", "scores")):
        result = stages.get(stage)
        labels.append(_STAGE_WORDS[stage])
        if result is None:
            note = (
                "not built: the model was reused" if stage == "training_set" and reused else "not validated in this run"
            )
            rows.append((_STAGE_WORDS[stage], "–", "–", "–", "–", note))
            continue
        evaluated, failed = int(result.get("evaluated", 0)), int(result.get("failed", 0))
        ax.barh(y, evaluated - failed, color="#3a9a5b", label="passed" if y == 0 else None)
        ax.barh(y, failed, left=evaluated - failed, color="#c0502f", label="failed" if failed else None)
        rows.append(
            (
                _STAGE_WORDS[stage],
                _int(result.get("rows")),
                ", ".join(result.get("suites", [])),
                _int(evaluated),
                _int(failed),
                "passed" if result.get("success") else "failed",
            )
        )
        failures += [(_STAGE_WORDS[stage], f.get("message", "")) for f in result.get("failures", [])]
    ax.set_yticks(range(3), labels)
    ax.invert_yaxis()
    ax.set_xlabel("expectations")
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1, 1))
    _style(ax)
    parts = [
        _p(
            "Before anything is trained or written, the data is checked against expectations (Great Expectations "
            "suites): the events as loaded, the training set, and the scores."
        ),
        _svg(figure, "validation-stages", "Expectations passed and failed per stage"),
        _table(["stage", "rows", "suites", "expectations", "failed", "result"], rows, caption="Validation summary"),
    ]
    if failures:
        parts.append(_table(["stage", "failed expectation"], failures, caption="Failed expectations"))
    return _section("validation", parts)


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
        The profile store: its ``read_runs`` (run statuses) and, when it has one, ``read_outcomes`` (what came
        true) are read; None reads nothing.
    folder : pathlib.Path, optional
        The run folder; by default the published one of ``as_of``.  A run's staging folder works too: nothing
        requires ``metadata.json``.
    out : pathlib.Path, optional
        Where to write; by default ``folder / "report.html"``.  Written atomically.

    Raises
    ------
    FileNotFoundError
        When the folder has no ``model.json`` or no ``scores.parquet``.
    """
    folder = Path(folder) if folder is not None else artifacts.run_dir(home, spec.name, as_of)
    out = Path(out) if out is not None else folder / REPORT_FILE
    run = _RunFiles.read(folder)
    runs = _read_runs(store, spec.name)
    outcomes = _read_outcomes(store, spec.name)
    with mpl.rc_context():
        mpl.rcdefaults()
        mpl.rcParams.update(_RC)
        sections = [
            _model_card(spec, as_of, run),
            _scores_section(spec, run),
            _history_section(spec, as_of, Path(home), run, runs),
            _factors_section(spec, run),
            _evaluation_section(run),
            _outcomes_section(as_of, outcomes),
            _validation_section(run),
        ]
    page = _page(spec, as_of, run, sections)
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=f".{out.name}-", dir=out.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(page)
        os.replace(staging, out)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    return out
