"""Out-of-time back-tests: score as of a past date, then compare with what really happened next.

The model is trained exactly as a run at that date would be: from the events a run reads (the configured
history before the date), with only labels fully observed before it.  It scores every eligible profile and is
judged on the outcomes in ``[as_of, as_of + window_days)``, which nothing in training saw.  Three baselines are
judged on the same profiles, each fitted on the same history:

- **recency**: days since the last goal event (fewer days, higher score);
- **frequency**: goal events in the lookback (more events, higher score);
- **BG/NBD** (Fader, Hardie & Lee 2005): the probability of at least one goal event in the goal window, from a
  BG/NBD model fitted, at each date, on the goal events before it (see :mod:`customer_ai.bgnbd`).

Each baseline's signal becomes a probability through a one-variable logistic fit on the rows the model is calibrated
on (the calibration half of its validation snapshot; the direction is learned, so a churn goal works too), so the
calibrations of the model and the baselines are compared on equal terms.
A run measures the same baselines, fitted the same way (:func:`baseline_probabilities`), on the profiles its
model was judged on (:func:`held_out_evaluation`): the curves of its report.

A goal with a value is also judged on its amounts: the value model the run trains predicts every eligible profile's
spend in the window, against what each really spent there and beside the baselines of
:mod:`customer_ai.value_baselines` fitted on the same history (BG/NBD x Gamma-Gamma, the last year's spend, the last
window's), by normalised Gini, Spearman, decile error and predicted over realised total; with the spend per profile
of the window its total was scaled on, to tell how much of a total's miss the change of spend explains.

With ``output.timing`` the timing model is judged on when each eligible profile's next goal event came, observed up
to the horizon or the end of the data, whichever is first (right-censored there): Harrell's concordance of its
curve against recency, BG/NBD's chance within the goal window and BG/NBD's own curve, and the share of profiles
that bought by their predicted median (see :func:`timing_backtest`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from customer_ai.bgnbd import BGNBD, fit_repeat_model, repeat_summary, repeat_view
from customer_ai.conditions import patterns_mask
from customer_ai.curves import scorer_curves
from customer_ai.estimator import PropensityModel, TrainingSet
from customer_ai.evaluation import (
    calibration_error,
    calibration_error_floor,
    classification_metrics,
    paired_auc_difference,
    shift_to_rate,
)
from customer_ai.events import events_start
from customer_ai.history import run_window
from customer_ai.labels import build_labels, days_to_goal, goal_value
from customer_ai.model import fit_platt
from customer_ai.outcome_metrics import (
    best_of,
    concordance,
    decile_error,
    normalised_gini,
    paired_margin,
    spearman,
    total_ratio,
)
from customer_ai.progress import step
from customer_ai.spec import InstanceSpec
from customer_ai.timing_model import median_quality, restricted_mean, timing_quality, timing_verdict
from customer_ai.value_baselines import VALUE_BASELINES, best_baseline, gini_margin, value_baselines
from customer_ai.value_model import value_verdict
from customer_ai.windows import in_window, rows_where

__all__ = [
    "BASELINES",
    "EVALUATION_NOTE",
    "GoalWindowOpenError",
    "backtest",
    "baseline_probabilities",
    "baseline_signals",
    "format_markdown",
    "held_out_evaluation",
    "held_out_value_baselines",
    "calibration_rows",
    "spend_moved",
    "timing_backtest",
    "value_backtest",
]

BASELINES = {
    "recency": "days since the last goal event (fewer days, higher score)",
    "frequency": "goal events in the lookback (more events, higher score)",
    "bgnbd": "BG/NBD probability of a goal event within the goal window, fitted on the goal events before the date",
}
TIMING_BASELINES = {
    "recency": "days since the last goal event (fewer days, sooner)",
    "bgnbd_window": "BG/NBD's chance of a goal event within the goal window (likelier, sooner; what a run's gate uses)",
    "bgnbd": "BG/NBD's expected days without a goal event over the horizon, from its own curve",
}
EVALUATION_NOTE = (
    "the model and the baselines are measured on the evaluation half of the validation snapshot: profiles whose "
    "outcome no fitting step saw (neither the trees, nor early stopping, nor the calibration); each baseline's "
    "one-variable logistic fit used the rows the model is calibrated on (the calibration half)"
)
_EPS = 1e-9


class GoalWindowOpenError(ValueError):
    """The outcome window of a back-test date is not fully inside the data."""


def baseline_signals(
    events: pd.DataFrame,
    spec: InstanceSpec,
    as_of: pd.Timestamp,
    profiles: pd.Index,
    *,
    repeat_models: Mapping[pd.Timestamp, BGNBD | None] | None = None,
) -> pd.DataFrame:
    """Return the baselines' inputs per profile at ``as_of``, from the goal events strictly before it.

    ``recency``: ``-log1p(days since the last goal event)`` (the lookback plus one day without one);
    ``frequency``: ``log1p(goal events in the lookback)``; ``bgnbd``: the logit of BG/NBD's probability of at
    least one goal event in the next ``window_days``, from a BG/NBD fitted on every goal event in ``events``
    before ``as_of`` (a profile without one is a customer with no purchase yet; even odds when nobody has
    repeated a goal event, as there is nothing to fit).  With ``repeat_models`` (the models of every profile's
    goal events by date, see :func:`customer_ai.features.fit_repeat_models`), ``events`` need only hold the
    profiles' own events.
    """
    lookback = spec.eligibility.lookback_days
    goal = rows_where(events[["profile_id", "timestamp"]], patterns_mask(events, spec.goal.events))
    recent = goal.loc[in_window(goal["timestamp"], as_of - pd.Timedelta(days=lookback), as_of)]
    grouped = recent.groupby("profile_id")["timestamp"]
    days = ((as_of - grouped.max()) / pd.Timedelta(days=1)).reindex(profiles).fillna(lookback + 1)
    count = grouped.size().reindex(profiles).fillna(0)
    if repeat_models is None:
        view = repeat_view(goal, as_of, profiles, spec.goal.window_days)
    else:
        model = repeat_models[as_of]
        view = None if model is None else repeat_view(goal, as_of, profiles, spec.goal.window_days, model=model)
    chance = np.full(len(profiles), 0.5) if view is None else view["chance"].to_numpy(dtype="float64")
    chance = np.clip(chance, _EPS, 1 - _EPS)
    return pd.DataFrame(
        {
            "recency": -np.log1p(days.to_numpy(dtype="float64")),
            "frequency": np.log1p(count.to_numpy(dtype="float64")),
            "bgnbd": np.log(chance / (1 - chance)),
        },
        index=profiles,
    )


def backtest(
    spec: InstanceSpec,
    events: pd.DataFrame,
    as_of: pd.Timestamp,
    attributes: pd.DataFrame | None = None,
    *,
    params: dict | None = None,
) -> dict:
    """Train as of ``as_of`` as a run would, score, and measure model and baselines on the real outcomes.

    ``params`` overrides LightGBM parameters (for tuning on earlier dates; runs use the defaults).

    Returns
    -------
    dict
        ``as_of``, ``eligible``, ``history`` (the snapshot plan, with what was adapted), ``validation`` (the
        model's own held-out metrics, as a run reports them), ``model`` and one entry per baseline, each a dict
        of :func:`classification_metrics` plus ``calibration_error_floor``; ``model_vs`` holds, per baseline,
        the model's ROC AUC gain over it with DeLong's paired 95% interval.  A goal with a value adds ``value``
        (:func:`value_backtest`).

    Raises
    ------
    GoalWindowOpenError
        If the events end before ``as_of + window_days`` (the outcomes are not all known yet).
    """
    window_end = as_of + pd.Timedelta(days=spec.goal.window_days)
    last_event = events["timestamp"].max()
    if last_event < window_end - pd.Timedelta(days=1):
        raise GoalWindowOpenError(
            f"back-test as of {as_of:%Y-%m-%d}: its goal window ends {window_end:%Y-%m-%d} but the events end "
            f"{last_event:%Y-%m-%d}; pick an earlier date"
        )
    start, _ = run_window(spec, as_of)
    seen = rows_where(events, in_window(events["timestamp"], start, as_of))
    estimator = PropensityModel(spec, params=params)
    started = events_start(events["timestamp"], f"instance {spec.name}").start  # where a run's history starts
    training_set = estimator.build_training_set(seen, as_of, attributes, data_start=started)
    estimator.fit_training_set(training_set)
    outcome = build_labels(events, spec, [as_of])
    profiles = pd.Index(outcome["profile_id"])
    label = outcome["label"].to_numpy()
    if estimator.value_model_ is not None:  # the run's gate judges it against these too
        estimator.judge_value(training_set, held_out_value_baselines(spec, training_set, seen, data_start=started))
    scores, features = estimator.score(seen, as_of, attributes=attributes, profiles=profiles)
    probability = scores["probability"].to_numpy()
    validation = estimator.label_counts_[0]
    result = {
        "as_of": f"{as_of:%Y-%m-%d}",
        "eligible": len(profiles),
        "history": estimator.snapshot_plan_.to_dict(),
        "validation": estimator.metrics_,
        "boosting_start": estimator.boosting_start_["chosen"],
        "base_rate": {
            "validation_window": validation["positives"] / validation["rows"] if validation["rows"] else float("nan"),
            "outcome_window": float(label.mean()) if len(label) else float("nan"),
        },
        "model": _measured(probability, label),
    }
    result["model"]["calibration_error_level_known"] = calibration_error(
        shift_to_rate(probability, float(label.mean())), label
    )
    baselines = baseline_probabilities(seen, spec, calibration_rows(training_set), as_of, profiles)
    result["model_vs"] = {}
    for name in BASELINES:
        baseline = baselines[name].to_numpy()
        result[name] = _measured(baseline, label)
        result["model_vs"][name] = paired_auc_difference(label, probability, baseline)
    if spec.goal.value is not None:
        result["value"] = value_backtest(
            spec, estimator, training_set, features, as_of, seen=seen, events=events, data_start=started
        )
    if estimator.timing_model_ is not None:
        result["timing"] = timing_backtest(
            spec, estimator, features, probability, as_of, seen=seen, events=events, outcome_rate=float(label.mean())
        )
    return result


def value_backtest(
    spec: InstanceSpec,
    estimator: PropensityModel,
    training_set: TrainingSet,
    features: pd.DataFrame,
    as_of: pd.Timestamp,
    *,
    seen: pd.DataFrame,
    events: pd.DataFrame,
    data_start: pd.Timestamp,
) -> dict:
    """Measure the fitted value model and the value baselines on what the profiles spent in the goal window.

    Parameters
    ----------
    spec : InstanceSpec
        The instance; its goal has a value.
    estimator : PropensityModel
        Fitted on ``training_set`` (with its value model), as a run at ``as_of``.
    training_set : TrainingSet
        What it was fitted on: the calibration rows' values give the spend per profile its total was scaled on.
    features : pandas.DataFrame
        The eligible profiles' features at ``as_of`` (indexed by profile id), as the run scores them.
    as_of : pandas.Timestamp
        Where the goal window starts.
    seen : pandas.DataFrame
        The events a run at ``as_of`` reads: the baselines are fitted on them.
    events : pandas.DataFrame
        Events that hold the goal window: what the profiles spent there.
    data_start : pandas.Timestamp
        Where the events really start (:func:`customer_ai.events.events_start`): the last year is cut there.

    Returns
    -------
    dict
        ``field``, ``eligible``, ``spenders`` (profiles that spent in the window), ``total_realised``, ``trees``
        (the value model's), ``model`` and one entry per baseline of :data:`customer_ai.value_baselines.
        VALUE_BASELINES` (``normalised_gini``, ``spearman``, ``decile_error``, ``total_ratio``,
        ``total_predicted``; NaN for a baseline that could not be fitted), ``best_baseline`` (highest normalised
        Gini; None when none is measured), ``model_vs_best`` (the model's normalised Gini minus the best baseline's
        with a paired bootstrap 95% interval: ``difference``, ``low``, ``high``; None without a best baseline) and
        ``spend_per_profile``: the mean value of the calibration rows (``calibration_window``, what the model's
        total was scaled on) and of the eligible profiles in the goal window (``outcome_window``); ``gate``: what a
        run's quality gate said of the value model on its evaluation half (``status``, ``reason``, its
        ``normalised_gini`` and each baseline's).
    """
    field = spec.goal.value.field  # type: ignore[union-attr]  # a goal with a value
    profiles = features.index
    realised = goal_value(events, spec.goal, field, as_of, profiles).to_numpy()
    predicted = estimator.predict_value(features)
    with step("fitting the value baselines (BG/NBD x Gamma-Gamma, last year, last window)"):
        baselines = value_baselines(seen, spec.goal, as_of, profiles, field=field, data_start=data_start)
    scored = {name: baselines[name].to_numpy() for name in VALUE_BASELINES}
    best = best_baseline(scored, realised)
    calibration = training_set.values.to_numpy()[training_set.rows("calibration")]  # type: ignore[union-attr]
    return {
        "field": field,
        "eligible": len(profiles),
        "spenders": int((realised > 0).sum()),
        "total_realised": float(realised.sum()),
        "trees": estimator.value_model_.best_iteration,
        "model": _value_measured(predicted, realised),
        **{name: _value_measured(values, realised) for name, values in scored.items()},
        "best_baseline": best,
        "model_vs_best": None if best is None else gini_margin(predicted, scored[best], realised),
        "spend_per_profile": {
            "calibration_window": float(calibration.mean()) if len(calibration) else float("nan"),
            "outcome_window": float(realised.mean()) if len(realised) else float("nan"),
        },
        "gate": _gate(estimator.value_metrics_, "normalised_gini", value_verdict, spec.training.min_value_gini_gain),
    }


def timing_backtest(
    spec: InstanceSpec,
    estimator: PropensityModel,
    features: pd.DataFrame,
    probability: np.ndarray,
    as_of: pd.Timestamp,
    *,
    seen: pd.DataFrame,
    events: pd.DataFrame,
    outcome_rate: float | None = None,
) -> dict:
    """Measure the fitted timing model and the timing baselines on when each profile's next goal event came.

    Each eligible profile's days to its first goal event on or after ``as_of`` are observed up to the model's
    horizon or the end of the data (the day after the last event's), whichever comes first: a profile without a
    goal event there is right-censored at that span.  The model's curves are anchored on ``probability``, as a run's.

    Parameters
    ----------
    spec : InstanceSpec
        The instance (``output.timing``).
    estimator : PropensityModel
        Fitted as a run at ``as_of``, with its timing model.
    features, probability : pandas.DataFrame, numpy.ndarray
        The eligible profiles' features at ``as_of`` (indexed by profile id) and their propensity probabilities.
    as_of : pandas.Timestamp
        Where the observation starts.
    seen : pandas.DataFrame
        The events a run at ``as_of`` reads: the baselines are fitted on them.
    events : pandas.DataFrame
        Every event, to the end of the data: when the profiles' goal events came.
    outcome_rate : float, optional
        The share of the profiles that reached the goal within the goal window: with it, the model's ``model``
        entry also holds ``bought_by_median_level_known`` and ``counted_level_known``, the share that bought by
        their median once the curves are anchored on the probabilities moved to that rate (as
        ``calibration_error_level_known`` does for the propensity): how much of a miss the level of the period
        explains.

    Returns
    -------
    dict
        ``horizon_days``, ``span_days`` (days observed after ``as_of``), ``data_end``, ``eligible``, ``bought``
        (profiles with a goal event in the span), ``model`` (:func:`customer_ai.timing_model.timing_quality`
        without its baselines), one entry per baseline of :data:`TIMING_BASELINES` (``concordance``; BG/NBD's curve
        also ``concordance_median``, ``bought_by_median``, ``counted`` and ``finite_median``), ``best_baseline``
        (highest concordance), ``model_vs_best`` (the model's concordance minus the best baseline's, with a
        paired bootstrap 95% interval) and ``gate``: what a run's quality gate said of the timing model on its
        evaluation half (``status``, ``reason``, its ``concordance`` and each baseline's).
    """
    model = estimator.timing_model_
    profiles = features.index
    data_end = events["timestamp"].max().normalize() + pd.Timedelta(days=1)
    span = int(min(model.grid.horizon_days, (data_end - as_of) // pd.Timedelta(days=1)))
    days = days_to_goal(events, spec.goal, as_of, profiles, span).to_numpy(dtype="float64")
    happened = ~np.isnan(days)
    observed = np.where(happened, days, span)
    with step("fitting the timing baselines (recency, BG/NBD)"):
        predicted, bgnbd_median = timing_baselines(seen, spec, as_of, profiles, model.grid.end_days)
    fitted = {name: values for name, values in predicted.items() if not np.isnan(values).any()}
    curves = model.curves(features)  # predicted once: the measures, the margin and the level known read them
    measured = timing_quality(model, curves, probability, days, span_days=span, baselines=fitted)
    baselines = measured.pop("baselines")
    if bgnbd_median is not None:
        baselines["bgnbd"].update(median_quality(bgnbd_median, observed, happened, span))
    best = best_of(baselines, "concordance")
    best = None if best is None else best[0]
    curve = restricted_mean(model.anchored(curves, probability), model.grid.width)
    if outcome_rate is not None and len(profiles):  # how far the level of the period moves the medians
        known = model.median_days(model.anchored(curves, shift_to_rate(probability, outcome_rate)))
        level_known = median_quality(known, observed, happened, span)
        measured.update(
            bought_by_median_level_known=level_known["bought_by_median"], counted_level_known=level_known["counted"]
        )
    return {
        "horizon_days": model.grid.horizon_days,
        "span_days": span,
        "data_end": f"{data_end - pd.Timedelta(days=1):%Y-%m-%d}",
        "eligible": len(profiles),
        "bought": int(happened.sum()),
        "model": measured,
        **baselines,
        "best_baseline": best,
        "model_vs_best": None
        if best is None
        else paired_margin(concordance, curve, np.nan_to_num(predicted[best], nan=np.inf), observed, happened),
        "gate": _gate(
            estimator.timing_metrics_, "concordance", timing_verdict, spec.training.min_timing_concordance_gain
        ),
    }


def _gate(metrics: dict, key: str, verdict: Callable[[dict, float], tuple[str, str]], min_gain: float) -> dict:
    """Return what a run's gate said of a model at the back-test's date, from its held-out measures."""
    status, reason = verdict(metrics, min_gain)
    return {
        "status": status,
        "reason": reason,
        key: metrics.get(key),
        "baselines": {name: m.get(key) for name, m in (metrics.get("baselines") or {}).items()},
    }


def timing_baselines(
    events: pd.DataFrame, spec: InstanceSpec, as_of: pd.Timestamp, profiles: pd.Index, horizon_days: float
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Return each timing baseline's predicted days per profile (shorter is sooner), and BG/NBD's median days.

    From the goal events in ``events`` strictly before ``as_of``: recency and BG/NBD's chance within the goal window
    as :func:`baseline_signals` gives them (as orders: only the order counts), BG/NBD's expected days without a goal
    event over ``[0, horizon_days)`` and its median (``inf`` beyond the horizon) from
    :meth:`customer_ai.bgnbd.BGNBD.purchase_timing`.  Without a BG/NBD fit (nobody repeated a goal event) its two
    entries are NaN (left out of the judging) and the median None.
    """
    goal = rows_where(events[["profile_id", "timestamp"]], patterns_mask(events, spec.goal.events))
    repeat = fit_repeat_model(goal, as_of)  # fitted once: the chance within the window and the curve read it
    signals = baseline_signals(events, spec, as_of, profiles, repeat_models={as_of: repeat})
    predicted = {"recency": -signals["recency"].to_numpy(), "bgnbd_window": -signals["bgnbd"].to_numpy()}
    if repeat is None:
        predicted["bgnbd_window"] = np.full(len(profiles), np.nan)
        predicted["bgnbd"] = np.full(len(profiles), np.nan)
        return predicted, None
    summary = repeat_summary(goal, as_of, profiles)
    x, t_x, big_t = (summary[c].to_numpy(dtype="float64") for c in ("x", "t_x", "T"))
    predicted["bgnbd"], median = repeat.purchase_timing(horizon_days, x, t_x, big_t)
    return predicted, median


def _value_measured(predicted: np.ndarray, realised: np.ndarray) -> dict:
    """Return how predicted amounts match realised ones (all NaN for a baseline that could not be fitted)."""
    names = ("normalised_gini", "spearman", "decile_error", "total_ratio", "total_predicted")
    if np.isnan(predicted).any():
        return dict.fromkeys(names, float("nan"))
    return {
        "normalised_gini": normalised_gini(predicted, realised),
        "spearman": spearman(predicted, realised),
        "decile_error": decile_error(predicted, realised),
        "total_ratio": total_ratio(predicted, realised),
        "total_predicted": float(predicted.sum()),
    }


def calibration_rows(training_set: TrainingSet) -> pd.DataFrame:
    """Return the rows the model is calibrated on as ``profile_id, as_of, label``: what the baselines are fitted on.

    The calibration half of the validation snapshot (the calibration part of a single period): a baseline's
    one-variable logistic fit is its calibration, so it is made on the same window as the model's, and the two
    calibrations are compared on equal terms.
    """
    return training_set.labels.loc[training_set.rows("calibration")].reset_index()


def baseline_probabilities(
    events: pd.DataFrame,
    spec: InstanceSpec,
    rows: pd.DataFrame,
    as_of: pd.Timestamp,
    profiles: pd.Index,
    *,
    repeat_models: Mapping[pd.Timestamp, BGNBD | None] | None = None,
) -> pd.DataFrame:
    """Fit each baseline on the model's calibration rows; return its probabilities for ``profiles`` at ``as_of``.

    One code path for the back-test and for a run's held-out evaluation: each baseline's signal
    (:func:`baseline_signals`, from the events before each date) becomes a probability through a one-variable
    logistic fit on ``rows`` (:func:`calibration_rows`: the profiles and labels the model is calibrated on).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``profiles``, one column of probabilities per baseline of :data:`BASELINES`.
    """
    with step("fitting the baselines (recency, frequency, BG/NBD)"):
        groups = list(rows.groupby("as_of", sort=False))
        train_signals = pd.concat(
            [
                baseline_signals(events, spec, snapshot, pd.Index(group["profile_id"]), repeat_models=repeat_models)
                for snapshot, group in groups
            ]
        )
        test_signals = baseline_signals(events, spec, as_of, profiles, repeat_models=repeat_models)
    train_label = np.concatenate([group["label"].to_numpy() for _, group in groups])  # in the signals' order
    out = {}
    for name in BASELINES:
        calibration = fit_platt(train_signals[name].to_numpy(), train_label, monotone=False)
        out[name] = calibration(test_signals[name].to_numpy())
    return pd.DataFrame(out, index=profiles)


def held_out_evaluation(
    spec: InstanceSpec,
    estimator: PropensityModel,
    training_set: TrainingSet,
    events: pd.DataFrame,
    *,
    repeat_models: Mapping[pd.Timestamp, BGNBD | None] | None = None,
) -> dict:
    """Measure a fitted model and the baselines on the evaluation half of its validation snapshot, with curves.

    The evaluation half is what no fitting step saw (see :mod:`customer_ai.estimator`); the baselines are
    fitted on the model's calibration rows (:func:`baseline_probabilities`) and judged on the same profiles.

    Parameters
    ----------
    spec : InstanceSpec
        The instance.
    estimator : PropensityModel
        Fitted on ``training_set`` (it keeps ``evaluation_rows_``).
    training_set : TrainingSet
        What it was fitted on.
    events : pandas.DataFrame
        The run's events (every event before the run's as-of date that the run reads), or with
        ``repeat_models`` those of the training set's profiles at least.
    repeat_models : mapping, optional
        The repeat-buying models of every profile's goal events at the validation snapshot (and any other date).

    Returns
    -------
    dict
        ``snapshot``, ``rows``, ``positives``, ``design`` (how the rows were held out), ``baselines`` (name:
        what it is), ``scorers`` (``model`` and each baseline: ``metrics``, then ``roc``, ``gains`` and
        ``reliability`` of :func:`customer_ai.curves.scorer_curves`) and ``model_vs`` (per baseline, the
        model's ROC AUC gain with DeLong's paired 95% interval).
    """
    rows = estimator.evaluation_rows_
    snapshot = estimator.snapshot_plan_.validation
    label = rows["label"].to_numpy()
    probability = rows["probability"].to_numpy()
    profiles = pd.Index(rows["profile_id"], name="profile_id")
    baselines = baseline_probabilities(
        events, spec, calibration_rows(training_set), snapshot, profiles, repeat_models=repeat_models
    )
    scorers = {"model": {"metrics": dict(estimator.metrics_), **scorer_curves(probability, label)}}
    model_vs = {}
    for name in BASELINES:
        baseline = baselines[name].to_numpy()
        scorers[name] = {"metrics": _measured(baseline, label), **scorer_curves(baseline, label)}
        model_vs[name] = paired_auc_difference(label, probability, baseline)
    return {
        "snapshot": f"{snapshot:%Y-%m-%d}",
        "rows": len(label),
        "positives": int(label.sum()),
        "design": EVALUATION_NOTE,
        "baselines": dict(BASELINES),
        "scorers": scorers,
        "model_vs": model_vs,
    }


def held_out_value_baselines(
    spec: InstanceSpec, training_set: TrainingSet, events: pd.DataFrame, *, data_start: pd.Timestamp
) -> pd.DataFrame:
    """Return the value baselines' expected spend of the evaluation half's profiles at the validation snapshot.

    The baselines of :mod:`customer_ai.value_baselines`, fitted on ``events`` before the validation snapshot (the
    run's, or those of the training set's profiles at least), for :meth:`customer_ai.estimator.PropensityModel.
    judge_value`: in the evaluation rows' order, one column per baseline.
    """
    rows = training_set.frame.index[training_set.rows("evaluation")]
    profiles = pd.Index(rows.get_level_values("profile_id"), name="profile_id")
    with step("fitting the value baselines on the evaluation half (BG/NBD x Gamma-Gamma, last year, last window)"):
        return value_baselines(
            events,
            spec.goal,
            training_set.snapshot_plan.validation,
            profiles,
            field=spec.goal.value.field,  # type: ignore[union-attr]  # a goal with a value
            data_start=data_start,
        )


def _measured(probability: np.ndarray, label: np.ndarray) -> dict:
    floor = calibration_error_floor(probability)
    return {**classification_metrics(probability, label), "calibration_error_floor": floor}


_NAMES = {"recency": "recency", "frequency": "frequency", "bgnbd": "BG/NBD"}
_STARTS = {"repeat_model": "the BG/NBD odds", "constant": "a constant"}
_COLUMNS = [
    ("roc_auc", "ROC AUC", "{:.3f}"),
    ("pr_auc", "PR AUC", "{:.3f}"),
    ("log_loss", "log loss", "{:.3f}"),
    ("brier", "Brier", "{:.3f}"),
    ("calibration_error", "calibration error", "{:.3f}"),
    ("calibration_error_floor", "error from chance alone", "{:.3f}"),
    ("top_decile_lift", "top-decile lift", "{:.2f}"),
    ("positive_rate", "observed rate", "{:.3f}"),
    ("mean_probability", "mean predicted", "{:.3f}"),
]


def format_markdown(spec: InstanceSpec, results: list[dict]) -> str:
    """Return a Markdown table of back-test results: one row per (as-of date, scorer)."""
    header = "| as of | scorer | eligible | " + " | ".join(title for _, title, _ in _COLUMNS) + " |"
    lines = [
        f"### {spec.name}: {spec.goal_in_words()}",
        "",
        header,
        "|" + "---|" * (3 + len(_COLUMNS)),
    ]
    for result in results:
        for scorer in ("model", *BASELINES):
            metrics = result[scorer]
            cells = [fmt.format(metrics[key]) for key, _, fmt in _COLUMNS]
            name = "**model**" if scorer == "model" else f"baseline: {_NAMES[scorer]}"
            lines.append(f"| {result['as_of']} | {name} | {result['eligible']:,} | " + " | ".join(cells) + " |")
    lines += ["", "ROC AUC gain of the model over each baseline (DeLong's paired 95% interval):", ""]
    for result in results:
        gains = ", ".join(
            f"{_NAMES[name]} {gain['difference']:+.3f} [{gain['low']:+.3f}, {gain['high']:+.3f}]"
            for name, gain in result["model_vs"].items()
        )
        lines.append(f"- {result['as_of']}: {gains}")
    lines += ["", "What the model was fitted with, and where its calibration error comes from:", ""]
    for result in results:
        history, rates = result["history"], result.get("base_rate", {})
        level_known = result["model"].get("calibration_error_level_known", float("nan"))
        design = (
            f"one period ({history['validation']}: parts for fitting, calibration and evaluation), features reading "
            f"the whole history counted per {history['lookback_days']} days"
            if history.get("single_period")
            else f"{len(history['training'])} training snapshots {history['every_days']} days apart, features "
            f"looking back {history['lookback_days']} days" + (" (adapted to the history)" if history["notes"] else "")
        )
        lines.append(
            f"- {result['as_of']}: {design}"
            + (f", boosted from {_STARTS[result['boosting_start']]}" if "boosting_start" in result else "")
            + f"; base rate {rates.get('validation_window', float('nan')):.3f} in the calibration window, "
            f"{rates.get('outcome_window', float('nan')):.3f} in the outcome window; calibration error "
            f"{result['model']['calibration_error']:.3f}, {level_known:.3f} once the base rate is known"
        )
    valued = [result for result in results if "value" in result]
    if valued:
        lines += ["", *_value_markdown(valued)]
    timed = [result for result in results if "timing" in result]
    if timed:
        lines += ["", *_timing_markdown(timed)]
    return "\n".join(lines) + "\n"


_VALUE_NAMES = {
    "bgnbd_gamma_gamma": "BG/NBD x Gamma-Gamma",
    "last_year": "last year's spend",
    "last_window": "last window's spend",
}
_VALUE_COLUMNS = [
    ("normalised_gini", "{:.3f}"),
    ("margin", "{}"),
    ("spearman", "{:.3f}"),
    ("decile_error", "{:.3f}"),
    ("total_ratio", "{:.3f}"),
]


def _value_markdown(results: list[dict]) -> list[str]:
    """Return the lines of the value table and of where each predicted total's miss comes from."""
    field = results[0]["value"]["field"]
    lines = [
        f"Predicted value (the goal events' {field} in the window) against what each eligible profile spent there; "
        "margin: normalised Gini minus the best baseline's, with a paired bootstrap 95% interval:",
        "",
        "| as of | scorer | eligible (spent) | normalised Gini | against the best baseline [95% CI] | Spearman | "
        "decile error | total ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        value = result["value"]
        for scorer in ("model", *VALUE_BASELINES):
            metrics = {**value[scorer], "margin": _margin_cell(scorer, value)}
            cells = [fmt.format(metrics[key]) for key, fmt in _VALUE_COLUMNS]
            name = "**model**" if scorer == "model" else f"baseline: {_VALUE_NAMES[scorer]}"
            lines.append(
                f"| {result['as_of']} | {name} | {value['eligible']:,} ({value['spenders']:,}) | "
                + " | ".join(cells)
                + " |"
            )
    lines += [
        "",
        "Where the predicted total's miss comes from (the model's total is scaled on the calibration window):",
        "",
    ]
    lines += [f"- {result['as_of']}: {spend_moved(result['value'])}" for result in results]
    return lines + _gate_lines(results, "value")


def _margin_cell(scorer: str, table: dict) -> str:
    """Return a scorer's cell of a value or timing table's margin column: the model's margin with its interval."""
    gain = table["model_vs_best"]
    if scorer == "model" and gain is not None:
        return f"{gain['difference']:+.3f} [{gain['low']:+.3f}, {gain['high']:+.3f}]"
    return "best baseline" if scorer == table["best_baseline"] else ""


def _gate_lines(results: list[dict], key: str) -> list[str]:
    """Return what a run's quality gate said of the value or the timing model at each date (if the results say)."""
    said = [(result["as_of"], result[key]["gate"]) for result in results if "gate" in result[key]]
    if not said:
        return []
    return [
        "",
        f"What a run's quality gate said of the {key} model at each date (on the run's own evaluation half):",
        "",
        *(f"- {as_of}: {gate['status']}: {gate['reason']}" for as_of, gate in said),
    ]


_TIMING_NAMES = {
    "recency": "recency",
    "bgnbd_window": "BG/NBD's chance within the window",
    "bgnbd": "BG/NBD's curve",
}


def _timing_markdown(results: list[dict]) -> list[str]:
    """Return the lines of the timing table."""
    lines = [
        "When the next goal event came, observed up to the horizon or the end of the data (right-censored there); "
        "concordance: Harrell's, of the curve's expected days without one over the horizon (of the baseline's "
        "order for the others), with the margin over the best baseline and its paired bootstrap 95% interval; "
        "bought by median: the share that bought before their predicted median, of those whose median lies in the "
        "observed span (0.5 is right):",
        "",
        "| as of | scorer | eligible (bought) | span / horizon | concordance | against the best baseline [95% CI] | "
        "C median | bought by median (counted) | median given |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        timing = result["timing"]
        for scorer in ("model", *TIMING_BASELINES):
            metrics = timing.get(scorer)
            if metrics is None:
                continue
            margin = _margin_cell(scorer, timing)
            name = "**model**" if scorer == "model" else f"baseline: {_TIMING_NAMES[scorer]}"
            lines.append(
                f"| {result['as_of']} | {name} | {timing['eligible']:,} ({timing['bought']:,}) | "
                f"{timing['span_days']:g} / {timing['horizon_days']:g} | {metrics['concordance']:.3f} | {margin} | "
                + " | ".join(_timing_cells(metrics))
                + " |"
            )
    moved = [result for result in results if "bought_by_median_level_known" in result["timing"]["model"]]
    if moved:
        lines += [
            "",
            "Where the share bought by the median comes from (the curves are anchored on the probabilities):",
            "",
        ]
        lines += [f"- {result['as_of']}: {_level_moved(result)}" for result in moved]
    return lines + _gate_lines(results, "timing")


def _level_moved(result: dict) -> str:
    """Say how the base rate moved and what the share bought by the median is once the outcome window's is known."""
    rates, model = result.get("base_rate", {}), result["timing"]["model"]
    return (
        f"base rate {rates.get('validation_window', float('nan')):.3f} in the calibration window, "
        f"{rates.get('outcome_window', float('nan')):.3f} in the outcome window; bought by the median "
        f"{_share(model['bought_by_median'])} ({model['counted']:,}), {_share(model['bought_by_median_level_known'])} "
        f"({model['counted_level_known']:,}) once the outcome window's base rate is known"
    )


def _share(share: float | None) -> str:
    """Return a share bought by the median ("none counted" when no profile was)."""
    return "none counted" if share is None or not np.isfinite(share) else f"{share:.3f}"


def _timing_cells(metrics: dict) -> list[str]:
    """Return the median's cells of a timing row (empty for a baseline without a median)."""
    if "concordance_median" not in metrics:
        return ["", "", ""]
    share = metrics["bought_by_median"]
    bought = _share(share) if share is None or not np.isfinite(share) else f"{share:.3f} ({metrics['counted']:,})"
    given = metrics["finite_median"]
    return [f"{metrics['concordance_median']:.3f}", bought, "" if given is None else f"{given:.2f}"]


def spend_moved(value: dict) -> str:
    """Return how the spend per profile moved from the calibration window to the outcome window, and what it explains.

    ``r``, the calibration window's spend per profile over the outcome window's, is the total ratio that move alone
    gives a model whose total is right on the calibration window; the model's total ratio divided by ``r`` is what is
    left of its miss once the move is known.
    """
    before, after = value["spend_per_profile"]["calibration_window"], value["spend_per_profile"]["outcome_window"]
    ratio = before / after if after > 0 else float("nan")
    total = value["model"]["total_ratio"]
    return (
        f"spend per profile moved from {before:,.2f} to {after:,.2f} (ratio r = {ratio:.3f}): the total ratio "
        f"{total:.3f} divided by r is {total / ratio:.3f}"
    )
