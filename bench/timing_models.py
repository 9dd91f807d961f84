"""Choose the next-purchase timing model by measurement, on the tuning dates of docs/evaluation.md only.

Usage: ``.venv/bin/python bench/timing_models.py [--data-set NAME] [--json-out PATH]``.

For every goal of ``examples/evaluation.yaml`` that must occur (the repurchase goals), at each of its **tuning**
dates (never a reported one), every candidate predicts, per eligible profile, a curve ``S(t)``: the chance of no goal
event in ``[as_of, as_of + t)``, for ``t`` up to the horizon ``H = 3 x`` the goal window ``w``, from what a run at
that date sees (the run's history, its fitted :class:`~customer_ai.estimator.PropensityModel` and feature plan).
Its median (the first ``t`` with ``S(t) <= 0.5``; ``inf`` when ``S(H) > 0.5``) is the ``days_to_next`` of the
product's future ``output.timing``:

- ``hazard``: a discrete-time survival model.  ``[0, H)`` is cut into 12 equal intervals (``w / 4`` each, so the
  goal window ends on a boundary and the curve's value there needs no interpolation).  Snapshots lie on a grid
  ``as_of - w - k * ceil(w / 2)`` back to where the plan's feature lookback is covered by the data (for a single
  period plan, 28 days after the data's start, its features then read a shorter history); this one keeps the
  snapshots whose whole horizon ``[s, s + H)`` ends on or before ``as_of`` (the product's rule), and the row of a
  profile at a snapshot for each interval until its first goal event (label 1 there, 0 before), with the run's
  features at ``s`` plus the interval's number; LightGBM binary (deterministic), stopped early on a fifth of the
  profiles (a hash of the id), on one thread.  Above 1.5M person-period rows, whole (profile, snapshot) units are
  kept by a hash of both, in proportion (said as ``rows_kept`` in the JSON).  ``S(t) = prod(1 - h_k)``, linear
  inside an interval.  The grid, the person-periods, the fit, the curves, the anchoring and the median are
  :mod:`customer_ai.timing_model`'s (what a run uses); the snapshots and their inputs are built here;
- ``hazard_anchored``: that curve raised to the power ``c = log(1 - p) / log(S(w))`` per profile, ``p`` the
  propensity model's calibrated probability, so that ``1 - S(w) = p`` as the product requires;
- ``hazard_censored`` and ``hazard_censored_anchored``: the same with every grid snapshot, each giving only the
  intervals that end on or before ``as_of`` (right-censored person-periods): usable where no snapshot has a whole
  horizon before ``as_of``, at the price of learning the late intervals from older snapshots only (the table's last
  column says how many intervals any snapshot saw: beyond them the trees hold the last learned interval's hazard);
- ``bgnbd``: BG/NBD's own ``P(a purchase within t)`` (fitted on the goal events before ``as_of``), median by
  bisection;
- ``recency``: the days since the last goal event (the eligibility lookback plus one without one): a ranking, not a
  time, so only its concordance is given; ``probability`` ranks by the propensity model's probability alone
  (``1 - p``), the reference for what a curve adds to the ranking.

They are judged on the goal events after ``as_of`` up to the data set's ``cutoff`` (``examples/evaluation.yaml``)
at most, and ``H`` days: ``observed`` days to the first goal event in ``[as_of, as_of + min(H, cutoff - as_of))``,
censored at that span.  Measures (:mod:`customer_ai.outcome_metrics`): Harrell's concordance of the median
(``inf`` medians tie) and of the curve's restricted mean time over ``[0, H)`` (the curve's own ranking, no ties);
the share that bought before their median among the profiles whose median lies in the observed span (0.5 for a
calibrated curve), with how many that is; the share with a finite median; and the mean chance within ``w`` beside the
realised share (when ``w`` is observed).  Targets of the issue: concordance >= the best baseline (recency, BG/NBD)
+ 0.01, bought by the median in 0.45-0.55.  Needs the prepared logs (``examples/*/prepare.py``).
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from bench.tuning import TuningRow, main, trained_as_a_run  # noqa: E402
from customer_ai.bgnbd import fit_repeat_model, repeat_summary  # noqa: E402
from customer_ai.conditions import patterns_mask  # noqa: E402
from customer_ai.estimator import PropensityModel  # noqa: E402
from customer_ai.labels import days_to_goal, eligible_profiles  # noqa: E402
from customer_ai.outcome_metrics import bought_by_median, concordance  # noqa: E402
from customer_ai.spec import load_spec  # noqa: E402
from customer_ai.timing_model import (  # noqa: E402
    INTERVALS_PER_WINDOW,
    TimingGrid,
    TimingSnapshot,
    fit_timing_model,
    median_days,
    snapshot_grid,
)
from customer_ai.windows import EventIndex, in_window, rows_where  # noqa: E402

HORIZON_WINDOWS = 3  # H = 3 goal windows
INTERVALS = HORIZON_WINDOWS * INTERVALS_PER_WINDOW  # w / 4 each, the goal window ends on the 4th boundary
SINGLE_PERIOD_LOOKBACK = 28  # the shortest history a grid snapshot of a single-period plan reads (days)
CURVES = (
    "hazard",
    "hazard_anchored",
    "hazard_censored",
    "hazard_censored_anchored",
    "hazard_run",
    "hazard_run_anchored",
    "bgnbd",
)
RANKINGS = ("recency", "probability")


def _grid(estimator: PropensityModel, as_of: pd.Timestamp, first: pd.Timestamp) -> list[pd.Timestamp]:
    """Return the snapshots of the hazard models, latest first: ``as_of - w - k ceil(w / 2)`` while history covers."""
    plan = estimator.snapshot_plan_
    lookback = SINGLE_PERIOD_LOOKBACK if plan.single_period else estimator.feature_plan_.lookback_days
    return snapshot_grid(as_of, estimator.spec.goal.window_days, first + pd.Timedelta(days=lookback))


def _restricted_mean(curves: np.ndarray, width: float) -> np.ndarray:
    """Return the area under each curve (boundaries ``width`` apart): the expected days without an event in [0, H)."""
    return width * (curves[:, 1:] + curves[:, :-1]).sum(axis=1) / 2


def _bgnbd_curves(goal: pd.DataFrame, as_of: pd.Timestamp, profiles: pd.Index, context: dict) -> dict:
    """Return BG/NBD's median, restricted mean and chance within the window, fitted on the goal events before it."""
    model = fit_repeat_model(goal, as_of)
    horizon, window = context["horizon"], context["window"]
    if model is None:
        nan = np.full(len(profiles), np.nan)
        return {"median": nan, "mean": nan, "by_window": nan}
    summary = repeat_summary(goal, as_of, profiles)
    x, t_x, big_t = (summary[c].to_numpy(dtype="float64") for c in ("x", "t_x", "T"))

    def chance(t: float | np.ndarray) -> np.ndarray:
        return model.probability_of_purchase(t, x, t_x, big_t)

    fine = np.linspace(0.0, horizon, 8 * INTERVALS + 1)
    survival = np.stack([1.0 - chance(t) for t in fine], axis=1)
    low, high = np.zeros(len(profiles)), np.full(len(profiles), float(horizon))
    reached = chance(horizon) >= 0.5
    for _ in range(40):  # bisection: P(a purchase within t) rises with t
        middle = (low + high) / 2
        above = chance(middle) >= 0.5
        high, low = np.where(above, middle, high), np.where(above, low, middle)
    return {
        "median": np.where(reached, high, np.inf),
        "mean": _restricted_mean(survival, fine[1] - fine[0]),
        "by_window": chance(window),
    }


def _recency(goal: pd.DataFrame, as_of: pd.Timestamp, profiles: pd.Index, lookback: int) -> np.ndarray:
    """Return the days since each profile's last goal event in the lookback (``lookback + 1`` without one)."""
    recent = goal.loc[in_window(goal["timestamp"], as_of - pd.Timedelta(days=lookback), as_of)]
    last = recent.groupby("profile_id")["timestamp"].max()
    days = ((as_of - last) / pd.Timedelta(days=1)).reindex(profiles)
    return days.fillna(lookback + 1).to_numpy(dtype="float64")


def _snapshot_inputs(estimator: PropensityModel, seen: pd.DataFrame, attributes: object, context: dict) -> None:
    """Fill ``context`` with every grid snapshot's features and days to the goal (events before ``as_of`` only)."""
    index = EventIndex(seen)
    spec = estimator.spec
    context["features"], context["days"] = {}, {}
    for snapshot in context["grid"]:
        profiles = eligible_profiles(seen, spec.eligibility, snapshot, index=index)
        context["features"][snapshot] = estimator.features(seen, snapshot, profiles, attributes, index=index)
        days = days_to_goal(seen, spec.goal, snapshot, profiles, context["horizon"], index=index)
        context["days"][snapshot] = days.to_numpy(dtype="float64")


def _run_rows(training_set: object, seen: pd.DataFrame, spec: object, as_of: pd.Timestamp, horizon: int) -> list:
    """Return the run's own training rows as timing snapshots (``hazard_run``), each censored at ``as_of``.

    Its snapshots, profiles and features; the evaluation half of the validation snapshot is left out.
    """
    index = EventIndex(seen)
    keys = training_set.frame.index.to_frame(index=False)
    kept = (training_set.frame["role"] != "evaluation").to_numpy()
    out = []
    for snapshot in training_set.snapshot_plan.snapshots:
        at = kept & (keys["as_of"] == snapshot).to_numpy()
        if not at.any():
            continue
        features = training_set.features.loc[at].droplevel("as_of")
        days = days_to_goal(seen, spec.goal, snapshot, features.index, horizon, index=index)
        out.append(TimingSnapshot(features, days.to_numpy(dtype="float64"), (as_of - snapshot) / pd.Timedelta(days=1)))
    return out


def _hazard_variants(context: dict, now: pd.DataFrame, probability: np.ndarray, result: dict) -> dict:
    """Return the four hazard curves' predictions (missing when a variant has no training snapshot)."""
    grid = context["timing"]
    snapshots = [
        TimingSnapshot(context["features"][s], context["days"][s], (context["as_of"] - s) / pd.Timedelta(days=1))
        for s in context["grid"]
    ]
    out = {}
    for name, fully in (("hazard", True), ("hazard_censored", False), ("hazard_run", False)):
        least = grid.count if fully else 1  # intervals a snapshot must observe whole to give rows
        used = list(context["run_rows"] if name == "hazard_run" else snapshots)
        used = [s for s in used if grid.intervals_within(s.observed_days) >= least]
        if not used:
            result["fits"][name] = {"snapshots": 0, "rows": 0}
            continue
        started = time.perf_counter()
        model = fit_timing_model(used, grid)
        curves = model.curves(now)
        result["fits"][name] = {
            "snapshots": model.training["snapshots"],
            "intervals": model.learned_intervals,
            "profile_snapshots": model.training["profile_snapshots"],
            "rows": model.training["rows"],
            "rows_kept": model.training["rows_kept"],
            "trees": model.best_iteration,
            "seconds": round(time.perf_counter() - started, 1),
        }
        for suffix, curve in (("", curves), ("_anchored", model.anchored(curves, probability))):
            median = median_days(curve, grid.width)  # the whole curve's median, beyond the learned intervals too
            out[name + suffix] = {
                "median": np.where(np.isnan(median), np.inf, median),
                "mean": _restricted_mean(curve, grid.width),
                "by_window": 1.0 - curve[:, grid.window_index],
            }
    return out


def measure(row: TuningRow) -> dict:
    """Fit every candidate as a run at the row's date would, and judge them on the goal events up to its cutoff."""
    as_of, cutoff = row.as_of, row.cutoff
    run = trained_as_a_run(load_spec(row.instance), as_of)
    spec, events, attributes, seen, start, first = run.spec, run.events, run.attributes, run.seen, run.start, run.first
    estimator = run.estimator
    window = spec.goal.window_days
    horizon = HORIZON_WINDOWS * window
    context = {
        "as_of": as_of,
        "window": window,
        "horizon": horizon,
        "timing": TimingGrid.of(window, horizon),
        "grid": _grid(estimator, as_of, max(first, start)),
    }
    _snapshot_inputs(estimator, seen, attributes, context)
    context["run_rows"] = _run_rows(run.training_set, seen, spec, as_of, horizon)
    profiles = eligible_profiles(events, spec.eligibility, as_of)
    now = estimator.features(seen, as_of, profiles, attributes)
    probability = estimator.predict_proba(now)

    observed_span = int(min(horizon, (cutoff - as_of) / pd.Timedelta(days=1)))
    observed = days_to_goal(events, spec.goal, as_of, profiles, observed_span).to_numpy(dtype="float64")
    happened = ~np.isnan(observed)
    observed = np.where(happened, observed, observed_span)
    window_seen = observed_span >= window
    result = {
        "instance": spec.name,
        "as_of": f"{as_of:%Y-%m-%d}",
        "window_days": window,
        "horizon_days": horizon,
        "observed_days": observed_span,
        "profiles": len(profiles),
        "events": int(happened.sum()),
        "realised_by_window": float((happened & (observed < window)).mean()) if window_seen else None,
        "single_period": bool(estimator.snapshot_plan_.single_period),
        "grid": [f"{s:%Y-%m-%d}" for s in context["grid"]],
        "fits": {},
    }
    predicted = _hazard_variants(context, now, probability, result)
    goal = rows_where(seen[["profile_id", "timestamp"]], patterns_mask(seen, spec.goal.events))
    predicted["bgnbd"] = _bgnbd_curves(goal, as_of, profiles, context)
    recency = _recency(goal, as_of, profiles, spec.eligibility.lookback_days)
    predicted["recency"] = {"median": None, "mean": recency, "by_window": None}
    predicted["probability"] = {"median": None, "mean": 1.0 - probability, "by_window": probability}
    for name in (*CURVES, *RANKINGS):
        result[name] = _judged(predicted.get(name), observed, happened, observed_span)
    return result


def _judged(predicted: dict | None, observed: np.ndarray, happened: np.ndarray, span: int) -> dict | None:
    """Return a method's measures against the observed days (None for a method that could not be fitted)."""
    if predicted is None or np.isnan(predicted["mean"]).any():
        return None
    out = {
        "concordance_median": None,
        "concordance_curve": concordance(predicted["mean"], observed, happened),
        "bought_by_median": None,
        "counted": 0,
        "finite_median": None,
        "by_window_mean": None if predicted["by_window"] is None else float(np.mean(predicted["by_window"])),
    }
    median = predicted["median"]
    if median is not None:
        out["concordance_median"] = concordance(median, observed, happened)
        out["bought_by_median"], out["counted"] = bought_by_median(median, observed, happened, span)
        out["finite_median"] = float(np.isfinite(median).mean())
    return out


def _number(value: float | None, form: str = ".3f") -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, form)


def _table(results: list[dict]) -> str:
    lines = [
        "| data set | goal | as of | profiles (bought in span) | span / H | method | C median | C curve "
        "| bought by median (counted) | finite median | P(< w) mean (realised) | fit: snapshots, intervals |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        realised = _number(r["realised_by_window"])
        for name in (*CURVES, *RANKINGS):
            m = r[name]
            head = (
                f"| {r['data_set']} | {r['instance']} | {r['as_of']} | {r['profiles']:,} ({r['events']:,}) "
                f"| {r['observed_days']} / {r['horizon_days']} | {name} |"
            )
            fit = r["fits"].get(name.removesuffix("_anchored"))
            fitted = "" if fit is None else f"{fit['snapshots']}, {fit.get('intervals', 0)}/{INTERVALS}"
            if m is None:
                lines.append(f"{head} no snapshot | | | | | {fitted} |")
                continue
            bought = "" if m["finite_median"] is None else f"{_number(m['bought_by_median'])} ({m['counted']:,})"
            chance = "" if m["by_window_mean"] is None else f"{m['by_window_mean']:.3f} ({realised})"
            lines.append(
                f"{head} {_number(m['concordance_median'])} | {m['concordance_curve']:.3f} | {bought} "
                f"| {_number(m['finite_median'], '.2f')} | {chance} | {fitted} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(__doc__.splitlines()[0], measure, _table, None))
