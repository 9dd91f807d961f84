"""The modeling computations of a run, in memory: training set, model, scores with factors.

:mod:`customer_ai.steps` wraps them into the file-based steps that Airflow tasks and the command chain; the
back-test calls them directly.  Scoring is a pure function of (spec, model, events before the as-of date,
profiles), so any subset of profiles can be scored on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from customer_ai.evaluation import classification_metrics
from customer_ai.events import load_event_file, load_profiles
from customer_ai.explain import top_factors
from customer_ai.features import FeaturePlan, build_features, feature_infos, plan_features
from customer_ai.labels import build_labels, eligible_profiles
from customer_ai.model import TrainedModel, fit_model
from customer_ai.progress import logger, step
from customer_ai.scoring import score_frame
from customer_ai.spec import InstanceSpec
from customer_ai.windows import training_snapshots

__all__ = [
    "CALIBRATION_NOTE",
    "InsufficientDataError",
    "TrainingSet",
    "build_training_set",
    "load_attributes",
    "load_events",
    "score_profiles",
    "train_model",
]

CALIBRATION_NOTE = (
    "Platt scaling on the out-of-time validation snapshot: robust with a few thousand validation profiles "
    "(isotonic steps overfit and tie scores there) and keeps TreeSHAP factors additive on the calibrated log-odds"
)


class InsufficientDataError(ValueError):
    """Too few positive or negative training examples to fit a model."""


@dataclass
class TrainingSet:
    """Labels and features of every eligible profile at every training snapshot.

    Attributes
    ----------
    labels : pandas.DataFrame
        ``profile_id``, ``as_of``, ``label``; one row per eligible profile and snapshot.
    features : pandas.DataFrame
        Feature matrix aligned row by row with ``labels``.
    plan : FeaturePlan
        The features built.
    snapshots : list of pandas.Timestamp
        Snapshot dates, latest (the validation snapshot) first.
    """

    labels: pd.DataFrame
    features: pd.DataFrame
    plan: FeaturePlan
    snapshots: list[pd.Timestamp]

    def counts(self) -> list[dict]:
        """Return rows, positives and negatives per snapshot, latest first."""
        grouped = self.labels.groupby("as_of")["label"].agg(["size", "sum"])
        out = []
        for k, snapshot in enumerate(self.snapshots):
            size, positives = (int(v) for v in grouped.loc[snapshot]) if snapshot in grouped.index else (0, 0)
            out.append(
                {
                    "as_of": f"{snapshot:%Y-%m-%d}",
                    "role": "validation" if k == 0 else "training",
                    "rows": size,
                    "positives": positives,
                    "negatives": size - positives,
                }
            )
        return out


def load_events(spec: InstanceSpec, events_path: str | Path | None = None) -> pd.DataFrame:
    """Load the instance's events, or a canonical event file that replaces them.

    Parameters
    ----------
    spec : InstanceSpec
        The instance.
    events_path : str or pathlib.Path, optional
        A canonical event file (no column mapping applied) used instead of ``spec.events``.
    """
    with step("loading events") as info:
        if events_path is not None:
            events = load_event_file(events_path)
        elif spec.events.path is not None:
            events = load_event_file(spec.resolve(spec.events.path), spec.events.columns)
        else:
            raise NotImplementedError(
                f"instance {spec.name}: events from a database table ({spec.events.table}) are read one run "
                "window at a time (customer-ai run, Airflow); here, export them to a file and pass --events"
            )
        info["events"] = len(events)
        info["profiles"] = int(events["profile_id"].nunique())
    return events


def load_attributes(spec: InstanceSpec) -> pd.DataFrame | None:
    """Load the instance's static profile attributes, if it has any."""
    if spec.profiles is None:
        return None
    return load_profiles(spec.resolve(spec.profiles.path), spec.profiles.columns, spec.profiles.id_column)


def build_training_set(
    spec: InstanceSpec, events: pd.DataFrame, as_of: pd.Timestamp, attributes: pd.DataFrame | None = None
) -> TrainingSet:
    """Build labels and point-in-time features at every training snapshot before ``as_of``.

    Raises
    ------
    InsufficientDataError
        When the snapshots hold fewer positives or negatives than ``training.min_positives`` /
        ``training.min_negatives``, or the validation snapshot lacks one class.
    """
    settings = spec.training
    snapshots = training_snapshots(as_of, spec.goal.window_days, settings.snapshots, settings.snapshot_every_days)
    last_event = events["timestamp"].max() if len(events) else None
    if last_event is None or last_event < as_of - pd.Timedelta(days=7):
        logger.warning(
            "events end on %s, before the as-of date %s: the latest training labels may be incomplete",
            "(no events)" if last_event is None else f"{last_event:%Y-%m-%d}",
            f"{as_of:%Y-%m-%d}",
        )
    with step(f"labelling {len(snapshots)} snapshots {snapshots[-1]:%Y-%m-%d} .. {snapshots[0]:%Y-%m-%d}") as info:
        labels = build_labels(events, spec, snapshots)
        info["rows"] = len(labels)
        info["positives"] = int(labels["label"].sum())
    _check_enough(spec, labels, snapshots[0])
    plan = plan_features(events, spec, as_of, attributes)
    with step("building point-in-time features") as info:
        frames = []
        for snapshot in snapshots:
            profiles = pd.Index(labels.loc[labels["as_of"] == snapshot, "profile_id"])
            frames.append(build_features(events, snapshot, profiles, spec, plan, attributes=attributes))
        features = pd.concat(frames).reset_index(drop=True)
        info["features"] = features.shape[1]
    return TrainingSet(labels=labels, features=features, plan=plan, snapshots=snapshots)


def _check_enough(spec: InstanceSpec, labels: pd.DataFrame, validation: pd.Timestamp) -> None:
    positives = int(labels["label"].sum())
    negatives = len(labels) - positives
    settings = spec.training
    if positives < settings.min_positives or negatives < settings.min_negatives:
        raise InsufficientDataError(
            f"insufficient data for {spec.name}: the {settings.snapshots} training snapshots hold {positives:,} "
            f"positive and {negatives:,} negative examples; at least {settings.min_positives:,} positive and "
            f"{settings.min_negatives:,} negative are needed (training.min_positives / training.min_negatives). "
            "Use more snapshots, a longer history, a broader eligibility rule, or lower the thresholds."
        )
    held_out = labels.loc[labels["as_of"] == validation, "label"]
    if held_out.nunique() < 2:
        raise InsufficientDataError(
            f"insufficient data for {spec.name}: the validation snapshot {validation:%Y-%m-%d} has "
            f"{len(held_out):,} eligible profiles and {int(held_out.sum()):,} positives; it needs both outcomes"
        )


def train_model(spec: InstanceSpec, training_set: TrainingSet) -> tuple[TrainedModel, dict]:
    """Fit on the older snapshots, stop early and calibrate on the latest one (out of time).

    Returns
    -------
    (TrainedModel, dict)
        The model and its validation metrics (see :func:`classification_metrics`).
    """
    is_valid = (training_set.labels["as_of"] == training_set.snapshots[0]).to_numpy()
    y = training_set.labels["label"].to_numpy()
    with step("training LightGBM with out-of-time early stopping") as info:
        model = fit_model(
            training_set.features.loc[~is_valid],
            y[~is_valid],
            training_set.features.loc[is_valid],
            y[is_valid],
            seed=spec.training.seed,
        )
        metrics = classification_metrics(model.predict_proba(training_set.features.loc[is_valid]), y[is_valid])
        info["rounds"] = model.best_iteration
        info["validation_auc"] = f"{metrics['roc_auc']:.3f}"
    return model, metrics


def score_profiles(
    spec: InstanceSpec,
    model: TrainedModel,
    plan: FeaturePlan,
    events: pd.DataFrame,
    as_of: pd.Timestamp,
    *,
    attributes: pd.DataFrame | None = None,
    profiles: pd.Index | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score profiles at ``as_of`` with their influential factors.

    Parameters
    ----------
    spec, model, plan
        The instance, its trained model and feature plan.
    events : pandas.DataFrame
        Canonical events; only those before ``as_of`` are used.
    as_of : pandas.Timestamp
        The scoring date.
    attributes : pandas.DataFrame, optional
        Static profile attributes.
    profiles : pandas.Index, optional
        Profiles to score; by default every profile eligible at ``as_of``.

    Returns
    -------
    (pandas.DataFrame, pandas.DataFrame)
        The scores (``profile_id, probability, score, percentile, bucket, propensity, as_of, factors``) and
        the feature matrix they were computed from.
    """
    if profiles is None:
        profiles = eligible_profiles(events, spec.eligibility, as_of)
    with step(f"scoring {len(profiles):,} profiles as of {as_of:%Y-%m-%d}"):
        features = build_features(events, as_of, profiles, spec, plan, attributes=attributes)
        probability = model.predict_proba(features) if len(features) else np.array([])
        scores = score_frame(features.index, probability, spec.output.buckets)
        scores["propensity"] = spec.propensity
        scores["as_of"] = f"{as_of:%Y-%m-%d}"
    with step("explaining scores with TreeSHAP"):
        contributions = model.contributions(features) if len(features) else np.zeros((0, features.shape[1] + 1))
        scores["factors"] = top_factors(features, contributions, feature_infos(plan, spec), spec.output.factors)
    return scores, features
