"""The report's pictures, drawn with matplotlib: the figure, style and SVG helpers and every figure builder.

Each builder takes the numbers its section shows in a table and returns a :class:`matplotlib.figure.Figure`
(never through ``pyplot``); :func:`_svg` turns it into inline SVG with its text as paths and its ids prefixed,
so that several figures share one page.  :data:`_RC` holds the few settings drawn on top of matplotlib's
defaults, which :func:`customer_ai.report.build_report` applies around the whole drawing.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable

import numpy as np
import pandas as pd
from matplotlib import dates as mdates
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from customer_ai.report.html import _BUCKETS, _SCORERS, _STAGE_WORDS, _esc, _num, _visible

_BUCKET_COLOURS = {"low": "#b9cbe4", "medium": "#5b8fd1", "high": "#1d3f7a"}
_SCORER_STYLES = {
    "model": {"color": "#1d3f7a", "linewidth": 2.6, "zorder": 5},
    "recency": {"color": "#d9822b", "linewidth": 1.4},
    "frequency": {"color": "#3a9a5b", "linewidth": 1.4},
    "bgnbd": {"color": "#9a5bb5", "linewidth": 1.4},
}
_RAISES, _LOWERS = "#2f7d4f", "#c0502f"
# matplotlib's own defaults plus these, whatever the process set: the same run gives the same file
_RC = {"svg.fonttype": "path", "svg.hashsalt": "customer-ai-report", "font.size": 9, "font.family": "DejaVu Sans"}


def _label_text(text: str, limit: int = 52) -> str:
    """Return user text safe for a matplotlib label: ``$`` is not mathtext, control characters shown, long text cut."""
    text = " ".join(_visible(str(text)).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("$", r"\$")


# --- figure, style and SVG helpers -----------------------------------------------------------------------------


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


# --- figure builders, in the order of the sections -------------------------------------------------------------


def _timeline_figure(as_of: pd.Timestamp, model: dict, reached: str = "reached the goal") -> Figure:

    counts = model["label_counts"]["snapshots"]
    history = model.get("history", {})
    lookback = int(history.get("lookback_days") or 0)
    window = int(history.get("window_days") or _window_days(model))
    figure, ax = _figure(8.5, 0.45 * (len(counts) + 1) + 0.9)
    rows = [*reversed(counts)]
    for y, entry in enumerate(rows):
        start = pd.Timestamp(entry["as_of"])
        colour = "#5b8fd1" if entry["role"] == "training" else "#d9822b"  # validation, or the single period
        if lookback:
            ax.barh(y, lookback, left=mdates.date2num(start - pd.Timedelta(days=lookback)), color="#e6e6e6", height=0.6)
        ax.barh(y, window, left=mdates.date2num(start), color=colour, height=0.6)
        rate = entry["positives"] / entry["rows"] if entry["rows"] else float("nan")
        ax.annotate(
            f"{entry['rows']:,} profiles, {rate:.0%} {reached}",
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


def _scores_figure(thresholds: dict[str, float], bins: pd.DataFrame) -> Figure:
    figure, ax = _figure(8.5, 3.2)
    bottom = np.zeros(len(bins))
    centres = bins["low_score"].to_numpy() + 2.5
    for b in _BUCKETS:
        ax.bar(centres, bins[b], width=4.6, bottom=bottom, color=_BUCKET_COLOURS[b], label=b)
        bottom += bins[b].to_numpy()
    # room above the tallest bar, where the thresholds are named: no label lies on a bar, no bar is cut
    ax.set_ylim(0, max(float(bottom.max()) if len(bottom) else 0.0, 1.0) * 1.2)
    for name, threshold in thresholds.items():  # the score each bucket starts at
        ax.axvline(threshold, color="#555555", linestyle=":", linewidth=1)
        ax.annotate(
            f"{name} from {threshold:g}",
            (threshold, 1),
            xycoords=("data", "axes fraction"),
            xytext=(3, -9),
            textcoords="offset points",
            fontsize=7.5,
        )
    ax.set_xlim(0, 100)
    ax.set_xlabel("score (the probability of the goal, in percent)")
    ax.set_ylabel("profiles")
    ax.legend(title="bucket", frameon=False, loc="upper left", bbox_to_anchor=(1, 1))
    _style(ax)
    return figure


def _history_figure(history: pd.DataFrame) -> Figure:
    # runs at their dates: a gap of eight weeks looks eight times as long as one of a week
    positions = mdates.date2num(pd.to_datetime(history["as_of"]).to_numpy())
    gaps = np.diff(positions)
    width = 0.7 * float(gaps.min()) if len(gaps) else 5.0
    figure, (shares, levels) = _figure(8.5, 5.2, nrows=2, sharex=True)
    bottom = np.zeros(len(history))
    for b in _BUCKETS:
        shares.bar(positions, history[b], bottom=bottom, color=_BUCKET_COLOURS[b], label=b, width=width)
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
    locator = mdates.AutoDateLocator(minticks=2, maxticks=10)
    levels.xaxis.set_major_locator(locator)
    levels.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    margin = max(width, float(positions.max() - positions.min()) * 0.04) if len(positions) else 1.0
    levels.set_xlim(float(positions.min()) - margin, float(positions.max()) + margin)
    return figure


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


def _evaluation_figure(scorers: list[str], data: dict) -> Figure:
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
    return figure


def _outcomes_figure(outcomes: pd.DataFrame, dates: list[str], alike: set[str]) -> Figure:
    """Draw the realised and predicted rates of past runs; buckets only of the runs in ``alike`` (one rule)."""
    figure, (over_time, deciles) = _figure(9.5, 3.6, ncols=2, width_ratios=[3, 2])
    positions = np.arange(len(dates))
    for group, colour in (("all", "#333333"), *((b, _BUCKET_COLOURS[b]) for b in _BUCKETS)):
        rows = outcomes.loc[outcomes["group"] == group].set_index("as_of").reindex(dates)
        if group != "all":
            rows.loc[[date not in alike for date in dates]] = np.nan
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
    # room above the tallest bar or point, where the legend lies in one row: it covers no bar
    tallest = np.nanmax([*decile_rows["realised_rate"], *decile_rows["predicted_rate"], 0.01])
    deciles.set_ylim(0, float(tallest) * 1.3)
    deciles.legend(frameon=False, fontsize=7.5, loc="upper right", ncols=2)
    _style(deciles)
    return figure


def _value_figure(run_deciles: pd.DataFrame, held_out: list[dict], unit: str) -> Figure:
    """Draw the mean expected value by decile of this run and, held out, the mean predicted against realised.

    ``run_deciles`` has ``group`` and ``mean``; ``held_out`` is the value metrics' ``deciles``; ``unit`` names the
    amounts on the axes (the currency, or empty).
    """
    figure, (run, checked) = _figure(9.5, 3.2, ncols=2)
    amounts = f"mean per profile ({_label_text(unit)})" if unit else "mean per profile"
    run.bar(run_deciles["group"], run_deciles["mean"], color="#5b8fd1")
    run.set(title="This run: expected value by decile", xlabel="decile (1 = highest expected value)", ylabel=amounts)
    groups = [row["group"] for row in held_out]
    realised = [np.nan if row["mean_realised"] is None else row["mean_realised"] for row in held_out]
    predicted = [np.nan if row["mean_predicted"] is None else row["mean_predicted"] for row in held_out]
    checked.bar(groups, realised, color="#b9cbe4", label="realised")
    checked.plot(groups, predicted, color="#1d3f7a", marker="D", markersize=4, linestyle="none", label="predicted")
    checked.set(title="Held out: predicted against realised", xlabel="decile (1 = highest predicted)")
    # room above the tallest bar or point, where the legend lies in one row: it covers no bar
    tallest = np.nanmax([*realised, *predicted, 0.0])
    checked.set_ylim(0, float(tallest) * 1.3 or 1.0)
    checked.legend(frameon=False, fontsize=7.5, loc="upper right", ncols=2)
    for ax in (run, checked):
        ax.set_xticks(range(1, 11))
        _style(ax)
    return figure


def _timing_figure(edges: np.ndarray, counts: np.ndarray, window_days: float) -> Figure:
    """Draw how many profiles have their median days to the next goal event in each interval.

    ``edges`` are the intervals' boundaries in days (one more than ``counts``); a dashed line marks where the goal
    window ends.
    """
    figure, ax = _figure(7.5, 2.8)
    edges = np.asarray(edges, dtype="float64")
    ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="#5b8fd1", edgecolor="white")
    ax.axvline(window_days, color="#d9822b", linestyle="--", linewidth=1.2, label="end of the goal window")
    ax.set_xlim(0, edges[-1])
    ax.set_ylim(0, float(max(counts.max(initial=0), 1)) * 1.25)  # room above the bars for the legend
    ax.set(
        title="This run: profiles by days to their next goal event",
        xlabel="median days from the as-of date",
        ylabel="profiles",
    )
    ax.legend(frameon=False, fontsize=7.5, loc="upper right")
    _style(ax)
    return figure


def _validation_figure(stages: dict[str, dict | None]) -> Figure:
    figure, ax = _figure(7.5, 1.9)
    labels = []
    for y, stage in enumerate(("events", "training_set", "scores")):
        result = stages.get(stage)
        labels.append(_STAGE_WORDS[stage])
        if result is None:  # the training set of a reused model, say: said, not drawn as an empty bar
            ax.annotate(
                "not checked in this run", (0, y), xytext=(4, 0), textcoords="offset points", va="center", fontsize=8
            )
            continue
        evaluated, failed = int(result.get("evaluated", 0)), int(result.get("failed", 0))
        ax.barh(y, evaluated - failed, color="#3a9a5b", label="passed" if y == 0 else None)
        ax.barh(y, failed, left=evaluated - failed, color="#c0502f", label="failed" if failed else None)
    ax.set_yticks(range(3), labels)
    ax.invert_yaxis()
    ax.set_xlabel("expectations")
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1, 1))
    _style(ax)
    return figure


_DRIFT_COLOURS = {"ok": "#5b8fd1", "warn": "#d9822b", "stop": "#c0502f"}


def _drift_figure(features: list[dict], warn: float, stop: float | None, label: Callable[[str], str]) -> Figure:
    """Bars of the features' stability indexes (largest first), with the warning and the stop drawn across."""
    names = [_label_text(label(f["feature"])) for f in features][::-1]
    values = np.array([f["psi"] for f in features][::-1], dtype="float64")
    status = ["stop" if stop is not None and v >= stop else "warn" if v >= warn else "ok" for v in values]
    figure, ax = _figure(8.5, 0.3 * len(features) + 1.3)
    y = np.arange(len(features))
    ax.barh(y, values, color=[_DRIFT_COLOURS[s] for s in status])
    ax.axvline(warn, color=_DRIFT_COLOURS["warn"], linestyle="--", linewidth=1, label=f"warning ({warn:g})")
    if stop is not None:
        ax.axvline(stop, color=_DRIFT_COLOURS["stop"], linestyle="--", linewidth=1, label=f"stop ({stop:g})")
    ax.set_yticks(y, names)
    ax.set_xlim(0, max(float(values.max()) if len(values) else 0.0, warn, stop or 0.0) * 1.1)
    ax.set_xlabel("population stability index: scored profiles against the training rows")
    ax.legend(frameon=False, loc="lower right")
    _style(ax)
    return figure
