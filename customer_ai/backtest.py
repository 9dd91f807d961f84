"""Out-of-time back-tests: score as of a past date, then compare with what really happened next.

The model is trained exactly as a run at that date would be (only labels fully observed before it), scores
every eligible profile, and is judged on the outcomes in ``[as_of, as_of + window_days)``, which the model
never saw.  Two simple baselines are judged on the same profiles: recency (days since the last goal event)
and frequency (goal events in the lookback), each turned into a probability by a one-variable logistic fit
on the same training snapshots as the model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from customer_ai.conditions import patterns_mask
from customer_ai.evaluation import classification_metrics, paired_auc_difference
from customer_ai.labels import build_labels
from customer_ai.model import fit_platt
from customer_ai.pipeline import build_training_set, score_profiles, train_model
from customer_ai.spec import InstanceSpec
from customer_ai.windows import in_window

__all__ = ["BASELINES", "GoalWindowOpenError", "backtest", "baseline_signals", "format_markdown"]

BASELINES = {
    "recency": "days since the last goal event (fewer days, higher score)",
    "frequency": "goal events in the lookback (more events, higher score)",
}


class GoalWindowOpenError(ValueError):
    """The outcome window of a back-test date is not fully inside the data."""


def baseline_signals(events: pd.DataFrame, spec: InstanceSpec, as_of: pd.Timestamp, profiles: pd.Index) -> pd.DataFrame:
    """Return the baselines' inputs per profile: ``-log1p(days since last goal event)`` and ``log1p(count)``.

    Profiles with no goal event in the lookback get the lookback plus one day as their recency.
    """
    lookback = spec.eligibility.lookback_days
    window = in_window(events["timestamp"], as_of - pd.Timedelta(days=lookback), as_of)
    hits = events.loc[window & patterns_mask(events, spec.goal.events), ["profile_id", "timestamp"]]
    grouped = hits.groupby("profile_id")["timestamp"]
    days = ((as_of - grouped.max()) / pd.Timedelta(days=1)).reindex(profiles).fillna(lookback + 1)
    count = grouped.size().reindex(profiles).fillna(0)
    return pd.DataFrame(
        {
            "recency": -np.log1p(days.to_numpy(dtype="float64")),
            "frequency": np.log1p(count.to_numpy(dtype="float64")),
        },
        index=profiles,
    )


def backtest(
    spec: InstanceSpec, events: pd.DataFrame, as_of: pd.Timestamp, attributes: pd.DataFrame | None = None
) -> dict:
    """Train as of ``as_of``, score, and measure model and baselines on the real outcomes.

    Returns
    -------
    dict
        ``as_of``, ``eligible``, ``validation`` (the model's own validation metrics), ``model`` and one entry
        per baseline, each a dict of :func:`classification_metrics`; ``model_vs`` holds, per baseline, the
        model's ROC AUC gain over it with a paired bootstrap 95% interval.

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
    training_set = build_training_set(spec, events, as_of, attributes)
    model, validation = train_model(spec, training_set)
    outcome = build_labels(events, spec, [as_of])
    profiles = pd.Index(outcome["profile_id"])
    label = outcome["label"].to_numpy()
    scores, _ = score_profiles(spec, model, training_set.plan, events, as_of, attributes=attributes, profiles=profiles)
    result = {
        "as_of": f"{as_of:%Y-%m-%d}",
        "eligible": len(profiles),
        "validation": validation,
        "model": classification_metrics(scores["probability"].to_numpy(), label),
    }
    train_signals = pd.concat(
        [
            baseline_signals(events, spec, snapshot, pd.Index(group["profile_id"]))
            for snapshot, group in training_set.labels.groupby("as_of", sort=False)
        ]
    )
    train_label = training_set.labels["label"].to_numpy()
    test_signals = baseline_signals(events, spec, as_of, profiles)
    result["model_vs"] = {}
    for name in BASELINES:
        calibration = fit_platt(train_signals[name].to_numpy(), train_label)
        probability = calibration(test_signals[name].to_numpy())
        result[name] = classification_metrics(probability, label)
        result["model_vs"][name] = paired_auc_difference(label, scores["probability"].to_numpy(), probability)
    return result


_COLUMNS = [
    ("roc_auc", "ROC AUC", "{:.3f}"),
    ("pr_auc", "PR AUC", "{:.3f}"),
    ("log_loss", "log loss", "{:.3f}"),
    ("brier", "Brier", "{:.3f}"),
    ("calibration_error", "calibration error", "{:.3f}"),
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
            name = "**model**" if scorer == "model" else f"baseline: {scorer}"
            lines.append(f"| {result['as_of']} | {name} | {result['eligible']:,} | " + " | ".join(cells) + " |")
    lines += ["", "ROC AUC gain of the model over each baseline (paired bootstrap 95% interval, 1,000 resamples):", ""]
    for result in results:
        gains = ", ".join(
            f"{name} {gain['difference']:+.3f} [{gain['low']:+.3f}, {gain['high']:+.3f}]"
            for name, gain in result["model_vs"].items()
        )
        lines.append(f"- {result['as_of']}: {gains}")
    return "\n".join(lines) + "\n"
