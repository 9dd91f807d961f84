"""Choose the predicted-value model by measurement, on the tuning dates of docs/evaluation.md only.

Usage: ``.venv/bin/python bench/value_models.py [--data-set NAME] [--json-out PATH]``.

For every goal of ``examples/evaluation.yaml`` that must occur (the repurchase goals), at each of its **tuning**
dates (never a reported one: those are measured once, when the method is finished), the goal is given a value (the
events' ``value`` summed over the goal's events in ``[as_of, as_of + window)``, :func:`examples.evaluate.goal_spec`)
and a run at that date is trained on it (:func:`bench.tuning.trained_as_a_run`): its training rows carry their
values and the goal's spend per 30 days of the history read (``goal_value_per_30d``).  Each candidate predicts every
eligible profile's expected value from what that run sees:

- ``tweedie``: the value model the run trains (:func:`customer_ai.value_model.fit_value_model` with
  ``start=("goal_value_per_30d", window / 30)``): LightGBM with a Tweedie objective on the run's training rows (log
  link: its TreeSHAP factors are exact on the log of the expected value), boosted from the log of each profile's
  past spend rate scaled to the window, stopped early on the calibration half of the validation snapshot;
- ``tweedie_constant_start``: the same model boosted from a constant (LightGBM's own average), kept for the record;
- ``chance_x_amount``: the run's calibrated probability times a LightGBM gamma regression of the amount on the
  training rows that reached the goal;
- ``chance_x_history``: the run's probability times the profile's mean spend per past goal day, shrunk towards the
  population's (Gamma-Gamma's conditional mean);

each scaled so that its total on the calibration rows equals theirs (the issue's calibration), and the three
baselines of :mod:`customer_ai.value_baselines` fitted on the same history: BG/NBD x Gamma-Gamma (Fader, Hardie & Lee
2005), the spend of the last year scaled to the window, and the spend of the last window.  Each is judged against
what the profiles really spent in the window by normalised Gini, Spearman, decile error and predicted over realised
total (:mod:`customer_ai.outcome_metrics`); the candidates' margins over the best baseline come with a paired
bootstrap interval (:func:`customer_ai.value_baselines.gini_margin`).  Needs the prepared logs
(``examples/*/prepare.py``).
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
from customer_ai.gamma_gamma import fit_gamma_gamma, spend_summary  # noqa: E402
from customer_ai.labels import eligible_profiles, goal_value  # noqa: E402
from customer_ai.outcome_metrics import decile_error, normalised_gini, spearman, total_ratio  # noqa: E402
from customer_ai.value_baselines import (  # noqa: E402
    VALUE_BASELINES,
    best_baseline,
    gini_margin,
    goal_amounts,
    value_baselines,
)
from customer_ai.value_model import fit_value_model  # noqa: E402
from examples.evaluate import goal_spec  # noqa: E402

VALUE = "value"
CANDIDATES = ("tweedie", "tweedie_constant_start", "chance_x_amount", "chance_x_history")
BASELINES = tuple(VALUE_BASELINES)
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


def measure(row: TuningRow) -> dict:
    """Fit every candidate as a run at the row's date would, and judge them and the baselines on the real window."""
    as_of = row.as_of
    run = trained_as_a_run(goal_spec(row.instance, VALUE), as_of)
    spec, events, attributes, seen, first = run.spec, run.events, run.attributes, run.seen, run.first
    estimator, training_set = run.estimator, run.training_set
    keys = training_set.frame.index.to_frame(index=False)
    target = training_set.values.to_numpy()
    features = training_set.features
    train, calibration = training_set.rows("training"), training_set.rows("calibration")
    profiles = eligible_profiles(events, spec.eligibility, as_of)
    now = estimator.features(seen, as_of, profiles, attributes)
    chance = estimator.predict_proba(now)
    chance_calibration = estimator.predict_proba(features.loc[calibration])
    realised = goal_value(events, spec.goal, VALUE, as_of, profiles).to_numpy()

    held = features.loc[calibration]
    tweedie = estimator.value_model_  # the run's: boosted from the past spend rate
    constant = fit_value_model(features.loc[train], target[train], held, target[calibration], seed=spec.training.seed)
    buyers = train & (target > 0)
    stop = calibration & (target > 0)
    amount = _lightgbm("gamma", (features.loc[buyers], target[buyers]), (features.loc[stop], target[stop]))
    goal = goal_amounts(seen, spec.goal, VALUE)
    spend = spend_summary(goal, as_of, profiles)
    gamma = fit_gamma_gamma(spend["x"].to_numpy(), spend["m_x"].to_numpy())
    history_calibration = _history_amount(goal, training_set, calibration, keys)
    predicted = {  # the two Tweedie models are scaled on these rows already: _scaled keeps them
        "tweedie": (tweedie.predict(now), tweedie.predict(held)),
        "tweedie_constant_start": (constant.predict(now), constant.predict(held)),
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
        "spend_per_profile": {
            "calibration_window": float(target[calibration].mean()),
            "outcome_window": float(realised.mean()),
        },
        "trees": {
            "tweedie": tweedie.best_iteration,
            "tweedie_constant_start": constant.best_iteration,
            "chance_x_amount": int(amount.best_iteration),
        },
    }
    scored = {name: _scaled(now_, cal, target[calibration]) for name, (now_, cal) in predicted.items()}
    baselines = value_baselines(seen, spec.goal, as_of, profiles, field=VALUE, data_start=first)
    scored.update({name: baselines[name].to_numpy() for name in BASELINES})
    best = best_baseline({name: scored[name] for name in BASELINES}, realised)
    result["best_baseline"] = best
    for name, values in scored.items():
        margin = gini_margin(values, scored[best], realised) if name in CANDIDATES else None
        result[name] = {
            "gini_margin": None if margin is None else [margin["difference"], margin["low"], margin["high"]],
            "normalised_gini": normalised_gini(values, realised),
            "spearman": spearman(values, realised),
            "decile_error": decile_error(values, realised),
            "total_ratio": total_ratio(values, realised),
        }
    return result


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
