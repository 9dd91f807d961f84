"""Choose the predicted-value model by measurement, on the tuning dates of docs/evaluation.md only.

Usage: ``.venv/bin/python bench/value_models.py [--data-set NAME] [--json-out PATH]``.

For every goal of ``examples/evaluation.yaml`` that must occur (the repurchase goals), at each of its **tuning**
dates (never a reported one: those are measured once, when the method is finished), the goal is given a value (the
events' ``value`` summed over the goal's events in ``[as_of, as_of + window)``) and each candidate predicts every
eligible profile's expected value from what a run at that date sees:

- ``tweedie``: :func:`customer_ai.value_model.fit_value_model`, the model a run fits: LightGBM with a Tweedie
  objective on the run's training rows (log link: its TreeSHAP factors are exact on the log of the expected value),
  stopped early on the calibration half of the validation snapshot;
- ``chance_x_amount``: the run's calibrated probability times a LightGBM gamma regression of the amount on the
  training rows that reached the goal;
- ``chance_x_history``: the run's probability times the profile's mean spend per past goal day, shrunk towards the
  population's (Gamma-Gamma's conditional mean);

the two LightGBM models read the run's features and one more, the goal's spend per 30 days of the history read (as
``goal_days_per_30d`` counts its days: without it the tuning rows put the last year's spend ahead of every model);
each scaled so that its total on the calibration rows equals theirs (the issue's calibration), and three baselines
fitted on the same history: BG/NBD x Gamma-Gamma (Fader, Hardie & Lee 2005), the spend of the last year scaled to the
window, and the spend of the last window.  Each is judged against what the profiles really spent in the window by
normalised Gini, Spearman, decile error and predicted over realised total (:mod:`customer_ai.outcome_metrics`).
Needs the prepared logs (``examples/*/prepare.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from bench.tuning import TuningRow, main, trained_as_a_run  # noqa: E402
from customer_ai.bgnbd import fit_repeat_model, repeat_summary  # noqa: E402
from customer_ai.conditions import patterns_mask  # noqa: E402
from customer_ai.gamma_gamma import fit_gamma_gamma, spend_summary  # noqa: E402
from customer_ai.labels import eligible_profiles, goal_value  # noqa: E402
from customer_ai.outcome_metrics import decile_error, normalised_gini, spearman, total_ratio  # noqa: E402
from customer_ai.spec import load_spec  # noqa: E402
from customer_ai.value_model import fit_value_model  # noqa: E402
from customer_ai.windows import in_window, rows_where  # noqa: E402

VALUE = "value"
CANDIDATES = ("tweedie", "chance_x_amount", "chance_x_history")
BASELINES = ("bgnbd_gamma_gamma", "last_year", "last_window")
_BOOSTING = {"learning_rate": 0.05, "num_leaves": 15, "min_child_samples": 20, "n_estimators": 1000, "verbose": -1}


def _lightgbm(objective: str, train: tuple, stop: tuple) -> object:
    """Return a LightGBM booster fitted on ``train`` (features, target), stopped early on ``stop``."""
    params = {"objective": objective, "seed": 0, "deterministic": True, "num_threads": 2, **_BOOSTING}
    rounds = params.pop("n_estimators")
    fitted = lgb.Dataset(*train)
    return lgb.train(
        params,
        fitted,
        num_boost_round=rounds,
        valid_sets=[lgb.Dataset(*stop, reference=fitted)],
        callbacks=[lgb.early_stopping(50, verbose=False)],
    )


def _scaled(predicted: np.ndarray, on_calibration: np.ndarray, realised_calibration: np.ndarray) -> np.ndarray:
    """Return ``predicted`` times the factor that makes the calibration rows' predicted total their realised one."""
    total = on_calibration.sum()
    return predicted * (realised_calibration.sum() / total if total > 0 else 1.0)


def _goal_events(events: pd.DataFrame, spec: object) -> pd.DataFrame:
    return rows_where(events[["profile_id", "timestamp", VALUE]], patterns_mask(events, spec.goal.events))


def _spend(goal_events: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, profiles: pd.Index) -> np.ndarray:
    inside = goal_events.loc[in_window(goal_events["timestamp"], start, end)]
    return inside.groupby("profile_id")[VALUE].sum().reindex(profiles).fillna(0.0).to_numpy(dtype="float64")


def _baselines(seen: pd.DataFrame, spec: object, as_of: pd.Timestamp, profiles: pd.Index, first: pd.Timestamp) -> dict:
    """Return each baseline's expected spend in the goal window per profile, from the goal events before ``as_of``."""
    window = spec.goal.window_days
    goal = _goal_events(seen, spec)
    year_start = max(as_of - pd.Timedelta(days=365), first)
    year_days = (as_of - year_start) / pd.Timedelta(days=1)
    out = {
        "last_year": _spend(goal, year_start, as_of, profiles) * window / year_days,
        "last_window": _spend(goal, as_of - pd.Timedelta(days=window), as_of, profiles),
    }
    bgnbd = fit_repeat_model(goal[["profile_id", "timestamp"]], as_of)
    spend = spend_summary(goal, as_of, profiles)
    gamma = fit_gamma_gamma(spend["x"].to_numpy(), spend["m_x"].to_numpy())
    if bgnbd is None or gamma is None:
        out["bgnbd_gamma_gamma"] = np.full(len(profiles), np.nan)
    else:
        summary = repeat_summary(goal[["profile_id", "timestamp"]], as_of, profiles)
        x, t_x, big_t = (summary[c].to_numpy(dtype="float64") for c in ("x", "t_x", "T"))
        m_x = spend["m_x"].reindex(summary.index).to_numpy(dtype="float64")
        out["bgnbd_gamma_gamma"] = np.nan_to_num(
            gamma.expected_value(bgnbd, window, x, t_x, big_t, m_x=np.nan_to_num(m_x))
        )
    return out


def measure(row: TuningRow) -> dict:
    """Fit every candidate as a run at the row's date would, and judge them and the baselines on the real window."""
    as_of = row.as_of
    run = trained_as_a_run(load_spec(row.instance), as_of)
    spec, events, attributes, seen, start, first = run.spec, run.events, run.attributes, run.seen, run.start, run.first
    estimator, training_set = run.estimator, run.training_set
    frame = training_set.frame
    keys = frame.index.to_frame(index=False)
    target = np.zeros(len(frame))
    for snapshot in training_set.snapshot_plan.snapshots:
        at = (keys["as_of"] == snapshot).to_numpy()
        target[at] = goal_value(seen, spec.goal, VALUE, snapshot, pd.Index(keys.loc[at, "profile_id"])).to_numpy()
    features = training_set.features
    train, calibration = training_set.rows("training"), training_set.rows("calibration")
    profiles = eligible_profiles(events, spec.eligibility, as_of)
    now = estimator.features(seen, as_of, profiles, attributes)
    chance = estimator.predict_proba(now)
    chance_calibration = estimator.predict_proba(features.loc[calibration])
    goal = _goal_events(seen, spec)
    read_from = max(start, first)
    # the goal's spend per 30 days of the history read, as goal_days_per_30d counts its days
    features = features.copy()
    rate = np.zeros(len(features))
    for snapshot in training_set.snapshot_plan.snapshots:
        at = (keys["as_of"] == snapshot).to_numpy()
        days = (snapshot - read_from) / pd.Timedelta(days=30)
        rate[at] = _spend(goal, read_from, snapshot, pd.Index(keys.loc[at, "profile_id"])) / days
    features["goal_value_per_30d"] = rate
    per_30d = _spend(goal, read_from, as_of, profiles) / ((as_of - read_from) / pd.Timedelta(days=30))
    now = now.assign(goal_value_per_30d=per_30d)
    realised = goal_value(events, spec.goal, VALUE, as_of, profiles).to_numpy()

    held = features.loc[calibration]
    tweedie = fit_value_model(features.loc[train], target[train], held, target[calibration], seed=0)
    buyers = train & (target > 0)
    stop = calibration & (target > 0)
    amount = _lightgbm("gamma", (features.loc[buyers], target[buyers]), (features.loc[stop], target[stop]))
    spend = spend_summary(goal, as_of, profiles)
    gamma = fit_gamma_gamma(spend["x"].to_numpy(), spend["m_x"].to_numpy())
    history_calibration = _history_amount(goal, training_set, calibration, keys)
    predicted = {
        "tweedie": (tweedie.predict(now), tweedie.predict(held)),  # scaled on these rows already: _scaled keeps it
        "chance_x_amount": (chance * amount.predict(now), chance_calibration * amount.predict(held)),
        "chance_x_history": (
            chance * gamma.conditional_expected_average_spend(spend["x"].to_numpy(), spend["m_x"].fillna(0).to_numpy()),
            chance_calibration * history_calibration(gamma),
        ),
    }
    result = {
        "instance": spec.name,
        "as_of": f"{as_of:%Y-%m-%d}",
        "profiles": len(profiles),
        "buyers": int((realised > 0).sum()),
        "realised_total": float(realised.sum()),
        "trees": {"tweedie": tweedie.best_iteration, "chance_x_amount": int(amount.best_iteration)},
    }
    scored = {name: _scaled(now_, cal, target[calibration]) for name, (now_, cal) in predicted.items()}
    scored.update(_baselines(seen, spec, as_of, profiles, first))
    best = max(BASELINES, key=lambda name: normalised_gini(scored[name], realised))
    result["best_baseline"] = best
    for name, values in scored.items():
        result[name] = {
            "gini_margin": _margin_interval(values, scored[best], realised) if name in CANDIDATES else None,
            "normalised_gini": normalised_gini(values, realised),
            "spearman": spearman(values, realised),
            "decile_error": decile_error(values, realised),
            "total_ratio": total_ratio(values, realised),
        }
    return result


def _margin_interval(
    predicted: np.ndarray, baseline: np.ndarray, realised: np.ndarray, draws: int = 200
) -> list[float]:
    """Return the normalised Gini of ``predicted`` minus the baseline's, with a paired bootstrap 95% interval.

    The profiles are resampled with replacement (both methods on the same draw): whether a margin of 0.02 can be
    told apart from none on these many profiles, whose spend is dominated by a few large buyers.
    """
    rng = np.random.default_rng(0)
    margins = []
    for _ in range(draws):
        drawn = rng.integers(0, len(realised), len(realised))
        margins.append(
            normalised_gini(predicted[drawn], realised[drawn]) - normalised_gini(baseline[drawn], realised[drawn])
        )
    low, high = np.nanpercentile(margins, [2.5, 97.5])
    return [normalised_gini(predicted, realised) - normalised_gini(baseline, realised), float(low), float(high)]


def _history_amount(goal: pd.DataFrame, training_set: object, rows: np.ndarray, keys: pd.DataFrame) -> object:
    """Return a function of a fitted Gamma-Gamma giving the calibration rows' conditional mean spend."""
    snapshot = training_set.snapshot_plan.validation
    profiles = pd.Index(keys.loc[rows, "profile_id"])
    spend = spend_summary(goal, snapshot, profiles)

    def amounts(gamma: object) -> np.ndarray:
        return gamma.conditional_expected_average_spend(spend["x"].to_numpy(), spend["m_x"].fillna(0).to_numpy())

    return amounts


def _table(results: list[dict]) -> str:
    lines = [
        "| data set | goal | as of | profiles (buyers) | method | normalised Gini | against the best baseline "
        "(95% interval) | Spearman | decile error | total ratio |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for name in (*CANDIDATES, *BASELINES):
            m = r[name]
            margin = "best baseline" if name == r["best_baseline"] else ""
            if m["gini_margin"] is not None:
                margin = "{:+.3f} ({:+.3f} .. {:+.3f})".format(*m["gini_margin"])
            lines.append(
                f"| {r['data_set']} | {r['instance']} | {r['as_of']} | {r['profiles']:,} ({r['buyers']:,}) | {name} | "
                f"{m['normalised_gini']:.3f} | {margin} | {m['spearman']:.3f} | {m['decile_error']:.3f} | "
                f"{m['total_ratio']:.3f} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(__doc__.splitlines()[0], measure, _table, None))
