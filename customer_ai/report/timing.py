"""The next goal event section of the report: how many days each profile is expected to wait for its next goal event.

Only a run with ``output.timing`` has it.  It reads the timing model's part of ``model.json`` (``timing``: its grid,
how it was fitted and its metrics on held-out profiles) and the ``days_to_next`` column of ``scores.parquet``, a row
group at a time: the profiles are counted per interval of the grid (:func:`timing_counts`), so no more than one row
group's medians is held.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from customer_ai import artifacts
from customer_ai.report.figures import _svg, _timing_figure
from customer_ai.report.folder import _RunFiles
from customer_ai.report.html import _folded, _int, _missing, _num, _p, _pairs, _pct, _section, _table
from customer_ai.spec import InstanceSpec
from customer_ai.timing_model import TimingModel, timing_verdict

MAX_BARS = 48  # the figure's bars at most: on a longer grid, neighbouring intervals are drawn as one bar
MAX_WINDOW_ROWS = 12  # goal windows the table shows one by one at most; the later ones share its last row
_WHOSE = {"recency": "recency's", "bgnbd": "the repeat-buying model's"}  # a baseline's, in words


def timing_counts(parts: Iterable[np.ndarray], width: float, intervals: int) -> tuple[np.ndarray, int]:
    """Return how many medians fall in each interval ``[k * width, (k + 1) * width)`` and how many are missing.

    Parameters
    ----------
    parts : iterable of numpy.ndarray
        The medians (days, NaN where there is none) in parts, in any order.
    width : float
        Days per interval.
    intervals : int
        How many intervals: a median at or after the last one's end is counted in the last.

    Returns
    -------
    tuple of (numpy.ndarray, int)
        The profiles per interval (``intervals`` integers) and the profiles without a median.
    """
    counts = np.zeros(intervals, dtype="int64")
    missing = 0
    for part in parts:
        days = np.asarray(part, dtype="float64")
        known = days[~np.isnan(days)]
        missing += len(days) - len(known)
        at = np.clip(np.floor(known / width).astype("int64"), 0, intervals - 1)
        counts += np.bincount(at, minlength=intervals)
    return counts, missing


def _days(value: float) -> str:
    """Return a number of days as words show it: ``30``, ``7.5``, ``1.75``."""
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def _window_rows(counts: np.ndarray, missing: int, grid: dict, limit: float) -> list[tuple[str, str, str, str]]:
    """Return the table of the run's medians by goal window: the days, the profiles, their share, the share by then.

    A row per window (its intervals' counts added up) up to the one holding ``limit``, at most
    :data:`MAX_WINDOW_ROWS` (the last then holds every later window), and a row of the profiles without a median.
    """
    window, per_window = float(grid["window_days"]), int(grid["window_index"])
    windows = max(1, math.ceil(limit / window - 1e-9))
    shown = min(windows, MAX_WINDOW_ROWS)
    profiles = int(counts.sum()) + missing
    rows, so_far = [], 0
    for at in range(shown):
        last = at == shown - 1
        stop = None if last else (at + 1) * per_window
        found = int(counts[at * per_window : stop].sum())
        so_far += found
        start, end = at * window, limit if last else (at + 1) * window
        if last:  # the last row holds its end: a median is at most the limit
            days = f"up to {_days(end)} days" if at == 0 else f"{_days(start)} to {_days(end)} days"
        else:
            days = f"under {_days(end)} days" if at == 0 else f"{_days(start)} to under {_days(end)} days"
        name = f"window {at + 1}" if at + 1 == windows or not last else f"windows {at + 1} to {windows}"
        name = "within the goal window" if at == 0 else name
        rows.append((f"{name}: {days}", _int(found), _share(found, profiles), _share(so_far, profiles)))
    rows.append((f"none: beyond {_days(limit)} days (left empty)", _int(missing), _share(missing, profiles), "–"))
    return rows


def _share(part: int, whole: int) -> str:
    return _pct(part / whole if whole else None)


def _bars(counts: np.ndarray, width: float, limit: float) -> tuple[np.ndarray, np.ndarray]:
    """Return the figure's bars (boundaries, counts): the intervals up to ``limit``, merged to :data:`MAX_BARS`."""
    used = max(1, min(len(counts), math.ceil(limit / width - 1e-9)))
    merged = math.ceil(used / MAX_BARS)
    bars = math.ceil(used / merged)
    shown = counts[:used].copy()
    shown[-1] += counts[used:].sum()  # a median exactly at the limit, on a boundary, begins the next interval
    totals = np.add.reduceat(shown, np.arange(0, used, merged))
    edges = np.minimum(np.arange(bars + 1) * merged * width, limit)
    return edges, totals


def _poor_words(metrics: dict, spec: InstanceSpec) -> str | None:
    """Return why the timing model is poor, or None when it is not.

    Poor when the quality gate says so (:func:`customer_ai.timing_model.timing_verdict` with
    ``training.min_timing_concordance_gain``) or, whatever gain the gate asks, when it orders the profiles no better
    than the best baseline.
    """
    gain = spec.training.min_timing_concordance_gain
    status, said = timing_verdict(metrics, gain)
    if status == "poor":
        return said
    found = metrics.get("concordance")
    measured = [
        (m.get("concordance"), name)
        for name, m in (metrics.get("baselines") or {}).items()
        if not _missing(m.get("concordance"))
    ]
    if not measured:
        return None
    best, name = max(measured)
    if found > best:
        return None
    whose = _WHOSE.get(name, f"{name}'s")
    return (
        f"its concordance {found:.3f} is not above {whose} {best:.3f} (the quality gate "
        f"lets it through: training.min_timing_concordance_gain is {gain:g})"
    )


def _metric_rows(metrics: dict, span: str, horizon: str) -> list[tuple[str, str, str, str, str]]:
    """Return the rows of the held-out metrics: the metric, the model's, recency's, BG/NBD's, the meaning."""
    baselines = metrics.get("baselines") or {}
    counted = metrics.get("counted")
    return [
        (
            "concordance",
            _num(metrics.get("concordance")),
            _num((baselines.get("recency") or {}).get("concordance")),
            _num((baselines.get("bgnbd") or {}).get("concordance")),
            f"Harrell's, of the expected days without a goal event over the {horizon}-day horizon (the curve's own "
            "order, which the quality gate judges); recency orders by the days since the last event, the repeat-buying "
            "model by its chance of a goal event within the window",
        ),
        (
            "concordance of the median",
            _num(metrics.get("concordance_median")),
            "–",
            "–",
            "the same of the median days, which the scores give (profiles without one count as the latest, tied)",
        ),
        (
            "bought by the median",
            _pct(metrics.get("bought_by_median")),
            "–",
            "–",
            f"of the {_int(counted)} profiles whose median lies within the {span} observed days, the share that "
            "reached the goal before their median: 50% is right, more means the medians come too late, less too early",
        ),
        (
            "with a median",
            _pct(metrics.get("finite_median")),
            "–",
            "–",
            "the share of the held-out profiles given a median (within the horizon and the learned intervals)",
        ),
    ]


def _medians(run: _RunFiles) -> Iterable[np.ndarray]:
    """Yield the run's medians (``days_to_next``), a row group at a time."""
    for part in artifacts.read_row_groups(run.scores_file, ["days_to_next"]):
        yield part["days_to_next"].to_numpy(dtype="float64")


def _timing_section(spec: InstanceSpec, run: _RunFiles) -> str:
    """Write the next goal event section of a run whose model has a timing model (``model.json["timing"]``)."""
    timing = run.model["timing"]
    metrics = timing.get("metrics") or {}
    grid = timing["grid"]
    window, width, horizon = float(grid["window_days"]), float(grid["width_days"]), float(grid["horizon_days"])
    limit = TimingModel.described_limit_days(timing)
    counts, missing = timing_counts(_medians(run), width, int(grid["intervals"]))
    profiles = int(counts.sum()) + missing
    dated = profiles - missing
    within = int(counts[: int(grid["window_index"])].sum())
    beyond = f"the {_days(horizon)}-day horizon"
    if limit < horizon:
        beyond += (
            f" or beyond the {_days(limit)} days the model learned from (no training row reached a later interval, "
            "so it cannot tell what comes after)"
        )
    parts = [
        _p(
            "The next goal event of a profile is predicted as the median number of days from the as-of date to its "
            "next goal event (days_to_next): the time by which it is as likely as not to have reached the goal; "
            "next_by is the date of that day. A discrete-time hazard model gives each profile a curve, its chance "
            f"of no goal event yet over the next {_days(horizon)} days, in intervals of {_days(width)} days (a "
            "quarter of the goal window). The curve is anchored on the profile's probability: its chance of a goal "
            f"event within the {_days(window)}-day goal window is exactly the probability its score shows. A median "
            f"beyond {beyond} is left empty."
        ),
        _p(
            f"This run: {dated:,} of {profiles:,} profiles ({_share(dated, profiles)}) have a median, {within:,} of "
            f"them within the goal window; {missing:,} ({_share(missing, profiles)}) are left empty: they are less "
            f"likely than not to reach the goal within {_days(limit)} days."
        ),
    ]
    poor = _poor_words(metrics, spec)
    if poor:
        parts.append(
            _p(
                f"The timing model is poor: {poor}. Its days order the profiles' next goal events no better than the "
                "simpler ranking does: read them with care.",
                "missing",
            )
        )
    edges, bars = _bars(counts, width, limit)
    parts += [
        _svg(
            _timing_figure(edges, bars, window),
            "timing-days",
            f"Profiles by their median days to the next goal event; {missing:,} have none within {_days(limit)} days",
        ),
        _table(
            ["days to the next goal event", "profiles", "share of the run", "by then, in all"],
            _window_rows(counts, missing, grid, limit),
            caption="Profiles by goal window of their median days to the next goal event",
        ),
    ]
    if metrics:
        parts += _held_out(spec, run, metrics)
    else:
        parts.append(_p("The timing model's held-out metrics are not kept with this model.", "missing"))
    parts.append(_folded("For analysts: the timing model", [_pairs(_analyst_rows(timing, limit))]))
    return _section("timing", parts)


def _held_out(spec: InstanceSpec, run: _RunFiles, metrics: dict) -> list[str]:
    """Return the held-out paragraph and the metrics table."""
    validation = run.model.get("validation") or {}
    checked = (validation.get("metrics") or {}).get("n")
    on = f"the {checked:,} profiles" if isinstance(checked, int) else "the profiles"
    span = _days(float(metrics.get("span_days") or run.model["timing"]["grid"]["window_days"]))
    horizon = _days(float(run.model["timing"]["grid"]["horizon_days"]))
    _, said = timing_verdict(metrics, spec.training.min_timing_concordance_gain)
    return [
        _p(
            f"Held out: measured on {on} of the validation snapshot {validation.get('snapshot', '?')} (its "
            "evaluation half), whose goal events no fitting step saw, observed for the "
            f"{span} days after it. Concordance (Harrell's) is the share of pairs of profiles put in the right order, "
            f"among the pairs whose order is known (one reached the goal within the {span} days before the other "
            "did, or the other did not at all): the one expected to wait less should be the one who reached the "
            f"goal first. 1 is a perfect order, 0.5 a random one. The quality gate: {said}."
        ),
        _table(
            ["metric", "timing model", "recency", "repeat-buying model (BG/NBD)", "what it means"],
            _metric_rows(metrics, span, horizon),
            caption="Held-out metrics of the days to the next goal event",
        ),
    ]


def _analyst_rows(timing: dict, limit: float) -> list[tuple[str, object]]:
    """Return the timing model's grid, settings and training rows, for whoever tunes it."""
    grid = timing.get("grid") or {}
    training = timing.get("training") or {}
    features = timing.get("features") or []
    return [
        ("model", f"{timing.get('model', '?')}; trees: {timing.get('best_iteration', '?')}"),
        (
            "grid",
            f"{grid.get('intervals', '?')} intervals of {_days(float(grid['width_days']))} days up to "
            f"{_days(float(grid['intervals']) * float(grid['width_days']))} days (horizon "
            f"{_days(float(grid['horizon_days']))}); the {_days(float(grid['window_days']))}-day goal window ends "
            f"at boundary {grid.get('window_index', '?')}",
        ),
        (
            "learned intervals",
            f"{timing.get('learned_intervals', '?')} of {grid.get('intervals', '?')}: medians up to "
            f"{_days(limit)} days",
        ),
        (
            "training rows",
            f"{_int(training.get('rows_kept'))} person-period rows kept of {_int(training.get('rows'))} (at most "
            f"{_int(training.get('max_rows'))}), from {_int(training.get('profile_snapshots'))} (profile, "
            f"snapshot) pairs of {_int(training.get('snapshots'))} snapshots",
        ),
        ("parameters", ", ".join(f"{k}={v}" for k, v in sorted((timing.get("parameters") or {}).items()))),
        ("features", f"{len(features)} and the interval's number: " + ", ".join(features)),
        ("why", timing.get("why", "")),
    ]
