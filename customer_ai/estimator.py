"""The propensity model: one fitted object holding the snapshot plan, the feature plan, the booster and its calibration.

scikit-learn style: the constructor only stores the instance spec; :meth:`PropensityModel.fit` learns from the
events before an as-of date; :meth:`~PropensityModel.score`, :meth:`~PropensityModel.explain`,
:meth:`~PropensityModel.save` and :meth:`~PropensityModel.load` use what was learned (the attributes ending in
``_``).  Frames are keyed on ``(profile_id, as_of)``, never on row order.

How a model is validated, so that every number a user sees comes from rows that no fitting step saw:

- **training rows**: every eligible profile at every training snapshot (see :mod:`customer_ai.history`: the
  latest training snapshot is a whole goal window before the validation snapshot, so no training label is
  observed inside the validation label window);
- the **validation snapshot** ``T_0 = as_of - window`` is split by profile, with a stable hash of the id,
  into two halves: the **calibration** half stops the boosting early and fits the (monotone) Platt calibration;
  the **evaluation** half gives the metrics in the model's metadata and the quality gate's verdict;
- when the history is too short for a training snapshot (see :mod:`customer_ai.history`), the model is
  **trained and judged on one period**: the validation snapshot's profiles are split by a hash of their id into
  three disjoint parts, fitting (60%), calibration (20%) and evaluation (20%), with the same roles; nothing then
  checks the model across time, and the model card, the report and the run's reason say so;
- the quality gate judges the model's own ranking (ROC AUC of the raw margin on the evaluation half), which a
  calibration cannot flip: a model that ranks backwards is poor, whatever its calibrated probabilities.

Above ``training.max_profiles`` eligible profiles, training keeps a stratified sample of whole profiles (see
:func:`sample_profiles`), chosen after the cheap labels and before the features, so the feature and LightGBM cost
is bounded by the cap.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from customer_ai.attributes import RunAttributes
from customer_ai.bgnbd import BGNBD, CountsTally
from customer_ai.conditions import patterns_mask
from customer_ai.evaluation import calibration_error_floor, classification_metrics, quality_verdict, ranking_auc
from customer_ai.events import sort_events
from customer_ai.explain import CHANCE, EXPECTED_VALUE, top_factors
from customer_ai.features import (
    GOAL_VALUE_RATE,
    RATE_DAYS,
    FeatureEvidence,
    FeaturePlan,
    build_features,
    classifier_columns,
    feature_infos,
    fit_repeat_counts,
    repeat_model_counts,
    repeat_model_names,
)
from customer_ai.files import FileContentError, read_json_object, write_json
from customer_ai.history import SnapshotPlan, plan_snapshots
from customer_ai.history import data_start as data_start_of
from customer_ai.labels import build_labels, days_to_goal, eligible_profiles, goal_value
from customer_ai.model import Offset, PlattCalibration, TrainedModel, fit_model
from customer_ai.outcome_metrics import normalised_gini
from customer_ai.progress import logger, step
from customer_ai.sampling import ProfileSampler
from customer_ai.scoring import choose_bucket_rule, profiles_per_score, score_frame
from customer_ai.spec import InstanceSpec
from customer_ai.timing_model import (
    TIMING_MODEL_FILE,
    TimingGrid,
    TimingModel,
    TimingSnapshot,
    fit_timing_model,
    next_by,
    timing_quality,
)
from customer_ai.value_model import VALUE_PARAMS, ValueModel, ValueStart, fit_value_model, value_quality
from customer_ai.windows import EventIndex

__all__ = [
    "CALIBRATION_NOTE",
    "GOAL_LATE_DAYS",
    "KEY",
    "MODEL_KEYS",
    "ROLES",
    "SAMPLE_NOTE",
    "SINGLE_PERIOD",
    "SINGLE_PERIOD_NOTE",
    "SINGLE_PERIOD_SHARES",
    "VALIDATION_NOTE",
    "EventParts",
    "InsufficientDataError",
    "PropensityModel",
    "TrainingSet",
    "evaluation_half",
    "read_model_text",
    "sample_profiles",
    "single_period_roles",
    "training_totals",
]

KEY = ["profile_id", "as_of"]
# the training set's columns before the features ("value": a valued goal's; "days": with timing, the days to the
# first goal event seen before the run's as-of date, NaN when none)
TARGETS = ("label", "role", "value", "days")
ROLES = ("training", "calibration", "evaluation")
SINGLE_PERIOD = "single period"  # the role of the one snapshot of a model trained and judged on one period
_SPLIT_KEY = "customerai-split"  # 16 bytes: the hash key of the validation split (changing it reshuffles halves)
CALIBRATION_NOTE = (
    "monotone Platt scaling on the calibration half of the validation snapshot: robust with a few thousand "
    "profiles (isotonic steps overfit and tie scores there), never reverses the model's ranking, and keeps "
    "TreeSHAP factors additive on the calibrated log-odds"
)
VALIDATION_NOTE = (
    "the validation snapshot's profiles are split in two by a hash of their id: the calibration half stops the "
    "boosting early and fits the calibration; the metrics and the quality gate come from the evaluation half, "
    "which no fitting step saw; training snapshots end a whole goal window before the validation snapshot"
)
SAMPLE_NOTE = (
    "above training.max_profiles eligible profiles, training keeps whole profiles (every snapshot of a kept "
    "profile, none of the others), stratified by whether the profile reached the goal at some training snapshot, "
    "so that share is kept to the nearest profile; within each stratum the profiles with the lowest hash of their id "
    "seeded by training.seed are kept (deterministic, and stable as profiles come and go); the validation labels "
    "play no part in the choice, and the kept validation profiles are split into halves by their own hash as before"
)
SINGLE_PERIOD_NOTE = (
    "trained and judged on one period: no check across time. The history is too short for a training snapshot, so "
    "the validation snapshot's profiles are split by a hash of their id into parts for fitting (60%), calibration "
    "(20%: early stopping and the calibration) and evaluation (20%: the metrics and the quality gate, which no "
    "fitting step saw); the metrics say how the model ranks other profiles of the same period, not the next one"
)
BOOSTING_START_NOTE = (
    "boosting is fitted twice, from the repeat-buying model's (BG/NBD) odds and from a constant; the one with "
    "the higher ROC AUC on the calibration half is kept (BG/NBD fitted on a few weeks of history is a poor start)"
)


# what :meth:`PropensityModel.load` needs from ``model.json`` (dotted: a key of a nested object)
MODEL_KEYS = (
    "calibration.slope",
    "calibration.intercept",
    "features.names",
    "features.categorical",
    "features.plan",
    "parameters",
    "history",
    "validation.metrics",
    "label_counts.snapshots",
)
_MODEL_START, _MODEL_END = "tree\n", "pandas_categorical:"  # the first line and the last line's start of model.txt


VALUE_MODEL_FILE = "value_model.txt"  # a goal with a value: its value model's trees beside model.txt
VALUE_NOTE = (
    "the expected value of the goal's events in the window: one LightGBM model with a Tweedie objective (log link) "
    "on the training rows' values, boosted from the log of each profile's past spend rate scaled to the window, "
    "stopped early on the calibration half of the validation snapshot, then scaled so that its total there equals "
    "what those profiles spent; measured on the evaluation half"
)


def _load_value(folder: Path, meta: dict) -> ValueModel | None:
    """Return the value model stored beside a model (``value_model.txt``), or None when it has none."""
    value = meta.get("value")
    if value is None:
        return None
    path = folder / VALUE_MODEL_FILE
    text = read_model_text(path)
    try:
        booster = lgb.Booster(model_str=text)
        names = value.get("features", meta["features"]["names"])  # stored before the value had features of its own
        start = None if value.get("start") is None else ValueStart(**value["start"])
        return ValueModel(booster=booster, scale=float(value["scale"]), features=list(names), start=start)
    except lgb.basic.LightGBMError as exc:
        raise FileContentError(path, f"LightGBM cannot load it: {exc}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise FileContentError(folder / "model.json", f"does not describe its value model ({exc})") from None


def _load_timing(folder: Path, meta: dict) -> TimingModel | None:
    """Return the timing model stored beside a model (``timing_model.txt``), or None when it has none."""
    if meta.get("timing") is None:
        return None
    path = folder / TIMING_MODEL_FILE
    try:
        return TimingModel.from_saved(read_model_text(path), meta["timing"])
    except ValueError as exc:
        raise FileContentError(path, str(exc)) from None


def read_model_text(path: Path) -> str:
    """Return the text of a LightGBM model file that is whole: from its first line to its last.

    LightGBM parses a model cut short or with bytes changed inside a tree by crashing the process (SIGSEGV or
    ``std::terminate``), so a file is handed to it only when its first line and its last lines are there.

    Raises
    ------
    customer_ai.files.FileContentError
        When the file is missing, not UTF-8 text, does not start as a LightGBM model does, or is cut short.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileContentError(path, "is missing") from None
    if not data:
        raise FileContentError(path, "is empty (0 bytes)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        problem = f"is not a LightGBM model: byte 0x{data[exc.start]:02x} at offset {exc.start} is not UTF-8 text"
        raise FileContentError(path, problem) from None
    if not text.startswith(_MODEL_START):
        raise FileContentError(path, f"is not a LightGBM model: it starts with {text[:20]!r} ({len(data):,} bytes)")
    last = text.rstrip("\n").rsplit("\n", 1)[-1]
    whole = "\nend of trees\n" in text and "\nend of parameters\n" in text and last.startswith(_MODEL_END)
    if whole:
        try:
            json.loads(last[len(_MODEL_END) :])
        except json.JSONDecodeError:
            whole = False
    if not whole:
        raise FileContentError(path, f"is cut short: the end of a LightGBM model is missing ({len(data):,} bytes)")
    return text


class InsufficientDataError(ValueError):
    """Too few positive or negative examples to fit or to judge a model."""


def evaluation_half(profile_ids: pd.Index | np.ndarray) -> np.ndarray:
    """Return, per profile id, whether it belongs to the evaluation half of a validation snapshot.

    A stable hash of the id decides, so a profile is in the same half at every snapshot and in every run.
    """
    ids = np.asarray(profile_ids, dtype=object)
    if len(ids) == 0:
        return np.zeros(0, dtype=bool)
    return (pd.util.hash_array(ids, hash_key=_SPLIT_KEY) & np.uint64(1)).astype(bool)


SINGLE_PERIOD_SHARES = {"training": 0.6, "calibration": 0.2, "evaluation": 0.2}
GOAL_LATE_DAYS = 30  # goal events starting this many days after the others set the history's start
_PERIOD_KEY = "customerai-onepd"  # 16 bytes: the hash key of the single period's split


def single_period_roles(profile_ids: pd.Index | np.ndarray) -> np.ndarray:
    """Return each profile's role in a model trained on one period: training, calibration or evaluation.

    A stable hash of the id decides (60%, 20%, 20%: :data:`SINGLE_PERIOD_SHARES`), so a profile keeps its part
    from run to run; the parts are disjoint by profile, so no profile is judged on what it was fitted on.
    """
    ids = np.asarray(profile_ids, dtype=object)
    if len(ids) == 0:
        return np.zeros(0, dtype=object)
    fifth = pd.util.hash_array(ids, hash_key=_PERIOD_KEY) % np.uint64(5)
    return np.where(fifth < 3, "training", np.where(fifth == 3, "calibration", "evaluation")).astype(object)


def training_totals(counts: list[dict]) -> tuple[int, int]:
    """Return the positives and negatives of the training rows from :meth:`TrainingSet.counts`."""
    positives = negatives = 0
    for entry in counts:
        if entry["role"] == "training":
            positives, negatives = positives + entry["positives"], negatives + entry["negatives"]
        elif entry["role"] == SINGLE_PERIOD:
            part = entry["training"]
            positives, negatives = positives + part["positives"], negatives + part["rows"] - part["positives"]
    return positives, negatives


def sample_profiles(labels: pd.DataFrame, max_profiles: int, seed: int) -> tuple[pd.DataFrame, dict]:
    """Keep at most ``max_profiles`` profiles of a label table, with all their rows, stratified by outcome.

    The strata are the profiles with a positive label at some training snapshot (role ``training``) and the
    others; each keeps its share of ``max_profiles``, rounded to the nearest profile.  Within a stratum the
    profiles with the lowest hash of their id (keyed by ``seed``) are kept, so the choice depends on nothing but
    the ids, the strata and the seed.  The validation snapshot's labels are not looked at.

    Parameters
    ----------
    labels : pandas.DataFrame
        Columns ``profile_id``, ``as_of``, ``label`` (0/1) and ``role`` (one of :data:`ROLES`).
    max_profiles : int
        The most distinct profiles to keep.
    seed : int
        Keys the hash that orders the profiles within a stratum.

    Returns
    -------
    (pandas.DataFrame, dict)
        The kept rows in their order (``labels`` itself when it holds at most ``max_profiles`` profiles), and
        what was done: ``max_profiles``, ``sampled`` (whether the cap bound), ``eligible_profiles``,
        ``profiles`` (kept), ``seed``, ``strata`` (eligible and kept profiles of each), ``snapshots`` (per
        snapshot: its role, the eligible and kept rows and positives, and the kept profiles of each validation
        half) and ``design``.
    """
    sampler = ProfileSampler(max_profiles, seed)
    sampler.add(labels)
    kept = sampler.kept()
    rows = labels if kept is None else labels.loc[labels["profile_id"].isin(kept).to_numpy()].reset_index(drop=True)
    return rows, sampler.summary(rows, list(pd.unique(labels["as_of"])), SAMPLE_NOTE)


@dataclass
class EventParts:
    """Events in partitions of their profiles (every profile's events in one), read one partition at a time.

    Attributes
    ----------
    count : int
        How many partitions.
    read : callable
        ``read(k)`` returns partition ``k``'s canonical events, sorted by time then profile.
    first_event : pandas.Timestamp or None
        The first event of all the partitions.
    last_event : pandas.Timestamp or None
        The last event before the as-of date the parts are used for.
    goal_start : pandas.Timestamp or None
        Where the history of the goal's events starts (:func:`customer_ai.history.data_start` of their times).
    """

    count: int
    read: Callable[[int], pd.DataFrame]
    first_event: pd.Timestamp | None
    last_event: pd.Timestamp | None
    goal_start: pd.Timestamp | None

    @classmethod
    def of(cls, events: pd.DataFrame, spec: InstanceSpec, as_of: pd.Timestamp) -> EventParts:
        """Return one partition holding ``events`` (all of them), described for a use as of ``as_of``."""
        stamps = events["timestamp"]
        before = stamps.loc[(stamps < as_of).to_numpy()]
        goal = stamps.iloc[np.flatnonzero(patterns_mask(events, spec.goal.events))]
        return cls(
            count=1,
            read=lambda _: events,
            first_event=stamps.min() if len(events) else None,
            last_event=before.max() if len(before) else None,
            goal_start=data_start_of(goal).start if len(goal) else None,
        )


@dataclass
class TrainingSet:
    """Labels and features of every eligible profile at every snapshot, keyed on ``(profile_id, as_of)``.

    Attributes
    ----------
    frame : pandas.DataFrame
        Indexed by ``(profile_id, as_of)``; columns ``label`` (0/1), ``role`` (one of :data:`ROLES`), ``value``
        for a goal with a value (what the row's goal events were worth in its window), then the features in the
        feature plan's order.
    feature_plan : FeaturePlan
        The features built.
    snapshot_plan : SnapshotPlan
        The snapshots and lookback the rows were built with.
    sample : dict, optional
        How the profiles were sampled (see :func:`sample_profiles`); None for a training set built without it.
    events : pandas.DataFrame, optional
        The events of its profiles (those it was built from; not kept by :meth:`to_frame`).
    repeat_models : dict, optional
        The repeat-buying models of every profile's goal events at each snapshot and at the as-of date (None:
        not kept).
    """

    frame: pd.DataFrame
    feature_plan: FeaturePlan
    snapshot_plan: SnapshotPlan
    sample: dict | None = None
    events: pd.DataFrame | None = field(default=None, repr=False)
    repeat_models: dict[pd.Timestamp, BGNBD | None] | None = field(default=None, repr=False)

    @property
    def features(self) -> pd.DataFrame:
        """The feature matrix (same index as :attr:`frame`)."""
        return self.frame.drop(columns=[c for c in TARGETS if c in self.frame.columns])

    @property
    def values(self) -> pd.Series | None:
        """What each row's goal events were worth in its window (a goal with a value), else None."""
        return self.frame["value"] if "value" in self.frame.columns else None

    @property
    def days(self) -> pd.Series | None:
        """Days from each row's snapshot to its first goal event before the as-of date (with timing), else None.

        NaN where no goal event came within the timing horizon or before the as-of date (censored there).
        """
        return self.frame["days"] if "days" in self.frame.columns else None

    @property
    def labels(self) -> pd.Series:
        """The 0/1 labels (same index as :attr:`frame`)."""
        return self.frame["label"]

    def rows(self, role: str) -> np.ndarray:
        """Return a boolean mask of the rows with ``role``."""
        return (self.frame["role"] == role).to_numpy()

    def counts(self) -> list[dict]:
        """Return rows, positives and negatives per snapshot, latest first, with the validation halves' sizes."""
        frame = self.frame.reset_index()
        if self.snapshot_plan.single_period:
            entry = {
                "as_of": f"{self.snapshot_plan.validation:%Y-%m-%d}",
                "role": SINGLE_PERIOD,
                "rows": len(frame),
                "positives": int(frame["label"].sum()),
                "negatives": int(len(frame) - frame["label"].sum()),
            }
            for role in ROLES:
                part = frame.loc[frame["role"] == role, "label"]
                entry[role] = {"rows": len(part), "positives": int(part.sum())}
            return [entry]
        out = []
        for snapshot in self.snapshot_plan.snapshots:
            rows = frame.loc[frame["as_of"] == snapshot]
            entry = {
                "as_of": f"{snapshot:%Y-%m-%d}",
                "role": "validation" if snapshot == self.snapshot_plan.validation else "training",
                "rows": len(rows),
                "positives": int(rows["label"].sum()),
                "negatives": int(len(rows) - rows["label"].sum()),
            }
            if entry["role"] == "validation":
                for role in ("calibration", "evaluation"):
                    half = rows.loc[rows["role"] == role, "label"]
                    entry[role] = {"rows": len(half), "positives": int(half.sum())}
            out.append(entry)
        return out

    def to_frame(self) -> pd.DataFrame:
        """Return a flat frame (``profile_id, as_of, label, role`` then the features) for a Parquet file."""
        return self.frame.reset_index()

    @classmethod
    def from_frame(
        cls, frame: pd.DataFrame, feature_plan: FeaturePlan, snapshot_plan: SnapshotPlan, sample: dict | None = None
    ) -> TrainingSet:
        """Rebuild a training set from :meth:`to_frame`'s output (and its :attr:`sample`)."""
        return cls(frame.set_index(KEY), feature_plan, snapshot_plan, sample)


class PropensityModel:
    """A propensity model for one instance: learns from events before an as-of date, scores and explains.

    Parameters
    ----------
    spec : InstanceSpec
        The instance (goal, eligibility, features, training and output settings).
    params : dict, optional
        LightGBM parameters overriding :data:`customer_ai.model.DEFAULT_PARAMS`.

    Attributes
    ----------
    snapshot_plan_ : SnapshotPlan
        Snapshots and lookback the model was trained with (after adapting to the history).
    feature_plan_ : FeaturePlan
        The features it uses.
    model_ : TrainedModel
        The booster and its calibration.
    metrics_ : dict
        Metrics on the evaluation half of the validation snapshot (see :func:`classification_metrics`), plus
        ``model_roc_auc`` (the raw margin's ranking) and ``calibration_error_floor``.
    label_counts_ : list of dict
        Rows, positives and negatives per snapshot (of the sampled profiles).
    training_sample_ : dict or None
        How the training profiles were sampled (see :func:`sample_profiles`); None for a model trained before
        the cap existed.
    evaluation_rows_ : pandas.DataFrame
        The evaluation half's ``profile_id``, ``label`` and calibrated ``probability``: what :attr:`metrics_`
        was measured on (set by fitting only; a loaded model has none).
    """

    def __init__(self, spec: InstanceSpec, *, params: dict | None = None) -> None:
        self.spec = spec
        self.params = params

    # --- planning and training data ---------------------------------------------------------------------

    def plan(self, events: pd.DataFrame, as_of: pd.Timestamp, data_start: pd.Timestamp | None = None) -> SnapshotPlan:
        """Return the snapshots and feature lookback for a model used at ``as_of``, fitted to the history.

        ``data_start`` is the first event of the source; by default the first of ``events``.  When the goal's events
        start :data:`GOAL_LATE_DAYS` or more days after the other events (marketing events logged months before
        the first purchase), the history is that of the goal's events: labels before their start would all be
        negative for lack of data, not for lack of customers reaching the goal.
        """
        return self.plan_parts(EventParts.of(events, self.spec, as_of), as_of, data_start)

    def plan_parts(
        self, parts: EventParts, as_of: pd.Timestamp, data_start: pd.Timestamp | None = None
    ) -> SnapshotPlan:
        """Return :meth:`plan` of events in partitions (see :class:`EventParts`)."""
        if data_start is None:
            data_start = parts.first_event
        goal_start = self._goal_start(parts, data_start)
        if goal_start is not None:
            logger.warning(
                "history: the goal's events start on %s, %d days after the other events (%s): the history is "
                "that of the goal's events",
                f"{goal_start:%Y-%m-%d}",
                (goal_start - data_start).days,
                f"{data_start:%Y-%m-%d}",
            )
            data_start = goal_start
        training = self.spec.training
        return plan_snapshots(
            as_of,
            window_days=self.spec.goal.window_days,
            lookback_days=self.spec.eligibility.lookback_days,
            snapshots=training.snapshots,
            every_days=training.snapshot_every_days,
            data_start=data_start,
            adapt=training.history == "adapt",
            min_lookback_days=training.min_lookback_days,
        )

    def _goal_start(self, parts: EventParts, data_start: pd.Timestamp | None) -> pd.Timestamp | None:
        """Return where the goal's events start when that is :data:`GOAL_LATE_DAYS` or more after the others."""
        if data_start is None or parts.first_event is None:
            return None
        start = parts.goal_start
        others = max(data_start, parts.first_event)  # a run's events start at its window's start
        if start is None or start - others < pd.Timedelta(days=GOAL_LATE_DAYS):
            return None
        return start

    def build_training_set(
        self,
        events: pd.DataFrame,
        as_of: pd.Timestamp,
        attributes: pd.DataFrame | None = None,
        *,
        data_start: pd.Timestamp | None = None,
    ) -> TrainingSet:
        """Build labels and point-in-time features at every snapshot of the plan for ``as_of``.

        Labels are built for every eligible profile; above ``training.max_profiles`` profiles a stratified sample
        of them is kept (:func:`sample_profiles`) and only its features are built.  The same as
        :meth:`build_training_set_parts` of the events as one partition.

        Raises
        ------
        InsufficientHistoryError
            When the events do not reach far enough back (see :func:`customer_ai.history.plan_snapshots`).
        InsufficientDataError
            When the training rows hold fewer positives or negatives than ``training.min_positives`` /
            ``training.min_negatives``, or a validation half lacks one outcome.
        """
        parts = EventParts.of(events, self.spec, as_of)
        return self.build_training_set_parts(parts, as_of, attributes, data_start=data_start)

    def build_training_set_parts(
        self,
        parts: EventParts,
        as_of: pd.Timestamp,
        attributes: pd.DataFrame | RunAttributes | None = None,
        *,
        data_start: pd.Timestamp | None = None,
        also_keep: Callable[[pd.DataFrame, EventIndex], pd.Index] | None = None,
    ) -> TrainingSet:
        """Build the training set from events in partitions of their profiles, one partition in memory at a time.

        The first pass labels each partition's eligible profiles at every snapshot (kept on disk), adds them to
        the stratified sample (:class:`customer_ai.sampling.ProfileSampler`), and collects what the feature plan
        and the repeat-buying models need (:class:`customer_ai.features.FeatureEvidence`, the counts of
        :func:`customer_ai.features.repeat_model_counts`, merged exactly).  The second pass keeps the sample's
        labels and events; the features are built on those alone.  Memory follows a partition and the sample,
        never the run, and the training set is the same to the bit as one built on all the events at once.

        ``attributes`` may be every profile's attributes or a run's kept per partition
        (:class:`customer_ai.attributes.RunAttributes`), of which only the sample's profiles' rows are read.
        ``also_keep(events, index)`` may name more profiles of a partition whose events the result keeps
        (:attr:`TrainingSet.events`), e.g. a sample to measure drift on.  The training set's
        :attr:`TrainingSet.repeat_models` are the repeat-buying models of every profile at each snapshot and at
        ``as_of``.

        Raises
        ------
        InsufficientHistoryError, InsufficientDataError
            As :meth:`build_training_set`.
        """
        spec = self.spec
        snapshot_plan = self.plan_parts(parts, as_of, data_start)
        for note in snapshot_plan.notes:
            logger.warning("history: %s", note)
        if parts.last_event is None:
            raise InsufficientDataError(
                f"insufficient data for {spec.name}: there are no events before the as-of date {as_of:%Y-%m-%d}"
            )
        if parts.last_event < as_of - pd.Timedelta(days=7):
            logger.warning(
                "events end on %s, before the as-of date %s: the latest training labels may be incomplete",
                f"{parts.last_event:%Y-%m-%d}",
                f"{as_of:%Y-%m-%d}",
            )
        snapshots = snapshot_plan.snapshots
        sampler = ProfileSampler(spec.training.max_profiles, spec.training.seed)
        evidence, histories = [], {date: CountsTally() for date in [*snapshots, as_of]}
        with tempfile.TemporaryDirectory(prefix="customer-ai-labels-") as folder:
            scratch = Path(folder)
            label = f"labelling {len(snapshots)} snapshots {snapshots[-1]:%Y-%m-%d} .. {snapshots[0]:%Y-%m-%d}"
            with step(label) as info:
                rows = positives = 0
                for partition in range(parts.count):
                    events = parts.read(partition)
                    index = EventIndex(events)  # the events encoded once, for the labels of every snapshot
                    labels = self._labels(events, index, snapshot_plan)
                    sampler.add(labels)
                    evidence.append(FeatureEvidence.of(events, spec, snapshot_plan.oldest))
                    for date, table in repeat_model_counts(events, list(histories), spec, index=index).items():
                        histories[date].add(table)
                    rows, positives = rows + len(labels), positives + int(labels["label"].sum())
                    labels.to_parquet(scratch / f"labels-{partition:05d}.parquet", index=False)
                    del events, index, labels
                info["rows"], info["positives"] = rows, positives
            kept = sampler.kept()
            labels, events = self._sample_rows(parts, scratch, snapshots, kept, also_keep)
        sample = sampler.summary(labels, snapshots, SAMPLE_NOTE)
        if sample["sampled"]:
            logger.info(
                "training on a stratified sample of %s of %s eligible profiles (training.max_profiles %s): %s rows",
                f"{sample['profiles']:,}",
                f"{sample['eligible_profiles']:,}",
                f"{sample['max_profiles']:,}",
                f"{len(labels):,}",
            )
        self._check_enough(labels, snapshot_plan, sample)
        if isinstance(attributes, RunAttributes):  # kept per partition: the sample's own rows, every category
            categories, attributes = attributes.categories, attributes.of(pd.Index(labels["profile_id"].unique()))
        else:
            categories = None
        feature_plan = FeatureEvidence.merge(evidence).plan(
            spec, attributes, lookback_days=snapshot_plan.lookback_days, categories=categories
        )
        if snapshot_plan.single_period:  # scoring has more history than the one period: features read all of it
            feature_plan.history_from = snapshot_plan.data_start.isoformat()
        repeat_models = fit_repeat_counts(histories)  # on every profile's goal events, merged over the partitions
        del histories  # the counts of every history: not needed while the features are built
        with step(f"building point-in-time features (looking back {snapshot_plan.lookback_days} days)") as info:
            index = EventIndex(events)
            frames = []
            for snapshot in snapshots:
                profiles = pd.Index(labels.loc[labels["as_of"] == snapshot, "profile_id"])
                matrix = build_features(
                    events,
                    snapshot,
                    profiles,
                    spec,
                    feature_plan,
                    attributes=attributes,
                    index=index,
                    repeat_models=repeat_models if feature_plan.repeat_model else None,
                    read_from=parts.first_event,  # the history read: a sample's own events may start later
                )
                frames.append(matrix.set_index(pd.Index([snapshot] * len(matrix), name="as_of"), append=True))
            features = pd.concat(frames)
            info["features"] = features.shape[1]
        frame = labels.set_index(KEY)[[c for c in TARGETS if c in labels.columns]].join(features, how="left")
        return TrainingSet(
            frame=frame,
            feature_plan=feature_plan,
            snapshot_plan=snapshot_plan,
            sample=sample,
            events=events,
            repeat_models=repeat_models,
        )

    def _labels(self, events: pd.DataFrame, index: EventIndex, snapshot_plan: SnapshotPlan) -> pd.DataFrame:
        """Return the labels of a partition's eligible profiles at every snapshot, with their roles.

        A goal with a value also gets each row's ``value``: what the profile's goal events in the snapshot's window
        were worth (:func:`customer_ai.labels.goal_value`; a partition holds every event of its profiles).
        """
        labels = build_labels(events, self.spec, snapshot_plan.snapshots, index=index)
        goal = self.spec.goal
        if goal.value is not None:
            labels["value"] = np.zeros(len(labels))
            for snapshot in snapshot_plan.snapshots:
                at = (labels["as_of"] == snapshot).to_numpy()
                worth = goal_value(
                    events, goal, goal.value.field, snapshot, pd.Index(labels.loc[at, "profile_id"]), index=index
                )
                labels.loc[at, "value"] = worth.to_numpy()
        if self.spec.output.timing:
            labels["days"] = np.nan
            reach = math.ceil(TimingGrid.of(goal.window_days, self.spec.timing_horizon()).end_days)
            for snapshot in snapshot_plan.snapshots:
                at = (labels["as_of"] == snapshot).to_numpy()
                days = days_to_goal(events, goal, snapshot, pd.Index(labels.loc[at, "profile_id"]), reach, index=index)
                labels.loc[at, "days"] = days.to_numpy()
        if snapshot_plan.single_period:
            labels["role"] = single_period_roles(labels["profile_id"])
        else:
            validation = (labels["as_of"] == snapshot_plan.validation).to_numpy()
            halves = np.where(evaluation_half(labels["profile_id"]), "evaluation", "calibration")
            labels["role"] = np.where(validation, halves, "training")
        return labels

    def _sample_rows(
        self,
        parts: EventParts,
        scratch: Path,
        snapshots: list[pd.Timestamp],
        kept: pd.Index | None,
        also_keep: Callable[[pd.DataFrame, EventIndex], pd.Index] | None,
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Return the kept profiles' label rows (in snapshot then profile order) and events (time then profile)."""
        rows, events = [], []
        order = {snapshot: position for position, snapshot in enumerate(snapshots)}
        for partition in range(parts.count):
            labels = pd.read_parquet(scratch / f"labels-{partition:05d}.parquet")
            if kept is not None:
                labels = labels.loc[labels["profile_id"].isin(kept).to_numpy()]
            rows.append(labels)
            own = parts.read(partition)
            if kept is not None or also_keep is not None:  # some profiles' events only
                wanted = pd.Index(labels["profile_id"].unique())
                index = EventIndex(own)
                if also_keep is not None:
                    wanted = wanted.union(also_keep(own, index), sort=False)
                own = index.events_of(wanted)
                del index
            events.append(own)
            del own
        labels = pd.concat(rows, ignore_index=True).assign(position=lambda f: f["as_of"].map(order))
        labels = labels.sort_values(["position", "profile_id"], kind="stable", ignore_index=True)
        events = events[0] if len(events) == 1 else sort_events(pd.concat(events, ignore_index=True))
        return labels.drop(columns="position"), events

    def _check_enough(self, labels: pd.DataFrame, snapshot_plan: SnapshotPlan, sample: dict) -> None:
        settings, name = self.spec.training, self.spec.name
        training = labels.loc[labels["role"] == "training", "label"]
        positives, negatives = int(training.sum()), int(len(training) - training.sum())
        if positives < settings.min_positives or negatives < settings.min_negatives:
            sampled = (
                f" (a sample of {sample['profiles']:,} of {sample['eligible_profiles']:,} eligible profiles: "
                "training.max_profiles)"
                if sample["sampled"]
                else ""
            )
            rows = (
                f"the training part of the single period {snapshot_plan.validation:%Y-%m-%d}"
                if snapshot_plan.single_period
                else f"the {len(snapshot_plan.training)} training snapshots {snapshot_plan.training[-1]:%Y-%m-%d} .. "
                f"{snapshot_plan.training[0]:%Y-%m-%d}"
            )
            raise InsufficientDataError(
                f"insufficient data for {name}: {rows}{sampled} hold "
                f"{positives:,} positive and {negatives:,} negative examples; at least {settings.min_positives:,} "
                f"positive and {settings.min_negatives:,} negative are needed (training.min_positives / "
                "training.min_negatives). Use more snapshots, a longer history, a broader eligibility rule, or lower "
                "the thresholds."
            )
        for role in ("calibration", "evaluation"):
            half = labels.loc[labels["role"] == role, "label"]
            if half.nunique() < 2:
                raise InsufficientDataError(
                    f"insufficient data for {name}: the {role} part of the validation snapshot "
                    f"{snapshot_plan.validation:%Y-%m-%d} has {len(half):,} eligible profiles and "
                    f"{int(half.sum()):,} positives; it needs both outcomes"
                )

    # --- fitting ----------------------------------------------------------------------------------------

    def fit(
        self,
        events: pd.DataFrame,
        as_of: pd.Timestamp,
        attributes: pd.DataFrame | None = None,
        *,
        data_start: pd.Timestamp | None = None,
    ) -> PropensityModel:
        """Build the training set for ``as_of`` from ``events`` and fit on it; return ``self``."""
        return self.fit_training_set(self.build_training_set(events, as_of, attributes, data_start=data_start))

    def fit_training_set(self, training_set: TrainingSet) -> PropensityModel:
        """Fit the booster on the training rows, calibrate on the calibration half, measure on the evaluation half.

        Returns ``self``.
        """
        features, labels = training_set.features, training_set.labels.to_numpy()
        train, calibration, evaluation = (training_set.rows(role) for role in ROLES)
        with step("training LightGBM (early stopping and calibration on half the validation snapshot)") as info:
            chance_features = features[classifier_columns(features.columns)]
            model = self._fit_best_start(chance_features, labels, train, calibration, training_set.feature_plan)
            held_out = features.loc[evaluation]
            probability = model.predict_proba(held_out)
            metrics = classification_metrics(probability, labels[evaluation])
            metrics["model_roc_auc"] = ranking_auc(model.margin(held_out), labels[evaluation])
            metrics["calibration_error_floor"] = calibration_error_floor(probability)
            info["rounds"] = model.best_iteration
            info["evaluation_auc"] = f"{metrics['model_roc_auc']:.3f}"
        self.snapshot_plan_ = training_set.snapshot_plan
        self.feature_plan_ = training_set.feature_plan
        self.model_ = model
        self.metrics_ = metrics
        self.label_counts_ = training_set.counts()
        self.training_sample_ = training_set.sample
        self.evaluation_rows_ = pd.DataFrame(
            {
                "profile_id": held_out.index.get_level_values("profile_id"),
                "label": labels[evaluation],
                "probability": probability,
            }
        )
        self.value_model_, self.value_metrics_ = None, None
        if training_set.values is not None:
            self._fit_value(features, training_set.values.to_numpy(), (train, calibration, evaluation))
        self.timing_model_, self.timing_metrics_ = None, None
        if training_set.days is not None:
            self._fit_timing(training_set, chance_features, probability)
        return self

    def _fit_timing(self, training_set: TrainingSet, features: pd.DataFrame, held_out: np.ndarray) -> None:
        """Fit the timing model (:mod:`customer_ai.timing_model`) on the training rows; measure it held out.

        Every snapshot's rows but the evaluation half give right-censored person-periods (each row observed up to
        the run's as-of date); the evaluation half is judged with its propensity probabilities ``held_out``.
        """
        plan = training_set.snapshot_plan
        grid = TimingGrid.of(self.spec.goal.window_days, self.spec.timing_horizon())
        keys = training_set.frame.index.to_frame(index=False)
        days = training_set.days.to_numpy()
        fitting = (training_set.frame["role"] != "evaluation").to_numpy()
        snapshots = []
        for snapshot in plan.snapshots:
            at = fitting & (keys["as_of"] == snapshot).to_numpy()
            if at.any():
                observed = (plan.as_of - snapshot) / pd.Timedelta(days=1)
                snapshots.append(TimingSnapshot(features.loc[at].droplevel("as_of"), days[at], observed))
        with step("training the timing model (a discrete-time hazard on right-censored person-periods)") as info:
            model = fit_timing_model(snapshots, grid, seed=self.spec.training.seed)
            evaluation = training_set.rows("evaluation")
            span = (plan.as_of - plan.validation) / pd.Timedelta(days=1)
            self.timing_metrics_ = timing_quality(
                model,
                model.curves(features.loc[evaluation]),
                held_out,
                days[evaluation],
                span_days=span,
                baselines=self._timing_baselines(features.loc[evaluation]),
            )
            info["intervals"] = f"{model.learned_intervals} of {grid.count}"
            info["evaluation_concordance"] = f"{self.timing_metrics_['concordance']:.3f}"
        self.timing_model_ = model

    def _timing_baselines(self, features: pd.DataFrame) -> dict[str, np.ndarray]:
        """Return the rankings the timing model is judged against: recency and BG/NBD (as predicted days)."""
        baselines = {"recency": features["days_since_last_event"].to_numpy(dtype="float64")}
        if self.feature_plan_.repeat_model:  # its chance within the window: the likelier, the sooner
            chance = features[repeat_model_names(self.spec)[0]].to_numpy(dtype="float64")
            baselines["bgnbd"] = 1.0 - np.nan_to_num(chance, nan=0.0)
        return baselines

    def _fit_value(self, features: pd.DataFrame, values: np.ndarray, roles: tuple[np.ndarray, ...]) -> None:
        """Fit the value model (:mod:`customer_ai.value_model`) and measure it on the evaluation half.

        It is measured beside the past spend rate scaled to the goal window (``goal_value_per_30d``); the baselines
        that need the events (BG/NBD x Gamma-Gamma, the last year's and the last window's spend) are added by
        :meth:`judge_value`.
        """
        train, calibration, evaluation = roles
        with step("training the value model (Tweedie; early stopping and its total on the calibration half)") as info:
            model = fit_value_model(
                features.loc[train],
                values[train],
                features.loc[calibration],
                values[calibration],
                seed=self.spec.training.seed,
                start=(GOAL_VALUE_RATE, self.spec.goal.window_days / RATE_DAYS),
            )
            held_out = features.loc[evaluation]
            past = held_out[GOAL_VALUE_RATE].to_numpy() * self.spec.goal.window_days / RATE_DAYS
            self.value_metrics_ = value_quality(model.predict(held_out), values[evaluation], {"past_spend": past})
            info["rounds"] = model.best_iteration
            info["evaluation_gini"] = f"{self.value_metrics_['normalised_gini']:.3f}"
        self.value_model_ = model

    def judge_value(self, training_set: TrainingSet, baselines: pd.DataFrame) -> None:
        """Add baselines to the value model's held-out measures: each one's normalised Gini on the evaluation half.

        ``baselines`` holds each baseline's expected spend of the evaluation half's profiles, one column per baseline
        in the rows' order (:func:`customer_ai.backtest.held_out_value_baselines`); a column holding NaN (a
        baseline that could not be fitted) is left out.  The quality gate (:func:`customer_ai.value_model.
        value_verdict`) then compares the model with the best of them all.
        """
        realised = training_set.values.to_numpy()[training_set.rows("evaluation")]  # type: ignore[union-attr]
        measured = self.value_metrics_["baselines"]
        for name in baselines.columns:
            values = baselines[name].to_numpy(dtype="float64")
            if not np.isnan(values).any():
                measured[name] = {"normalised_gini": normalised_gini(values, realised)}

    def _fit_best_start(
        self,
        features: pd.DataFrame,
        labels: np.ndarray,
        train: np.ndarray,
        calibration: np.ndarray,
        feature_plan: FeaturePlan,
    ) -> TrainedModel:
        """Fit from the repeat-buying model's odds and from a constant; keep the better on the calibration half.

        Starting from BG/NBD helps where it ranks well and holds the trees back where it does not (a short
        history fits it on a few weeks); which one applies is measured on the rows early stopping used, so the
        evaluation half stays unseen.
        """
        offset = self._offset(feature_plan)
        train_x, train_y = features.loc[train], labels[train]
        held_x, held_y = features.loc[calibration], labels[calibration]
        fitted = [
            fit_model(train_x, train_y, held_x, held_y, seed=self.spec.training.seed, params=self.params, offset=start)
            for start in ([offset, None] if offset is not None else [None])
        ]
        aucs = [ranking_auc(model.margin(held_x), held_y) for model in fitted]
        chosen = int(np.argmax(aucs))  # a tie keeps the repeat-buying model's start
        names = ["repeat_model", "constant"] if offset is not None else ["constant"]
        self.boosting_start_ = {
            "chosen": names[chosen],
            "calibration_half_roc_auc": dict(zip(names, aucs, strict=True)),
            "why": BOOSTING_START_NOTE,
        }
        return fitted[chosen]

    def _offset(self, feature_plan: FeaturePlan) -> Offset | None:
        """Boost from the repeat-buying model's odds of the goal as stated, when the plan has that model."""
        if not feature_plan.repeat_model:
            return None
        sign = 1.0 if self.spec.goal.occurrence == "will_occur" else -1.0  # will_not_occur: the odds of none
        return Offset(repeat_model_names(self.spec)[0], sign)

    def verdict(self, min_auc: float | None = None) -> tuple[str, str]:
        """Return ``("ok" | "poor", reason)`` for the quality gate ``min_auc`` (default ``training.min_auc``)."""
        return quality_verdict(self.metrics_, self.spec.training.min_auc if min_auc is None else min_auc)

    # --- scoring and explaining -------------------------------------------------------------------------

    def features(
        self,
        events: pd.DataFrame,
        as_of: pd.Timestamp,
        profiles: pd.Index | None = None,
        attributes: pd.DataFrame | None = None,
        *,
        index: EventIndex | None = None,
        repeat_models: Mapping[pd.Timestamp, BGNBD | None] | None = None,
        read_from: pd.Timestamp | None = None,
    ) -> pd.DataFrame:
        """Return the feature matrix of ``profiles`` (default: every profile eligible at ``as_of``), indexed by id.

        ``index`` is ``events`` already encoded, to share between calls; built when missing or of other events.
        The features of a profile do not depend on which other profiles are asked for, nor on which other
        profiles' events ``events`` hold when ``repeat_models`` (:func:`customer_ai.features.fit_repeat_models`
        on all the events) and ``read_from`` (the first of all the events) are given.
        """
        if index is None or index.events is not events:
            index = EventIndex(events)  # the ids encoded once, for eligibility and features
        if profiles is None:
            profiles = eligible_profiles(events, self.spec.eligibility, as_of, index=index)
        return build_features(
            events,
            as_of,
            profiles,
            self.spec,
            self.feature_plan_,
            attributes=attributes,
            index=index,
            repeat_models=repeat_models,
            read_from=read_from,
        )

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Return calibrated probabilities of the goal for a feature matrix."""
        return self.model_.predict_proba(features) if len(features) else np.array([], dtype="float64")

    def predict_timing(
        self, features: pd.DataFrame, probability: np.ndarray, as_of: pd.Timestamp
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Return each profile's ``days_to_next`` and ``next_by`` (with ``output.timing``), else None.

        The curve of each profile is anchored on its ``probability`` (the chance within the goal window is the
        probability), and its median is the days to the next goal event: NaN (and ``next_by`` None) beyond the
        horizon or the intervals the model learned.
        """
        model = getattr(self, "timing_model_", None)
        if model is None:
            return None
        days = model.median_days(model.anchored(model.curves(features), probability))
        return days, next_by(as_of, days)

    def predict_value(self, features: pd.DataFrame) -> np.ndarray | None:
        """Return the expected value of the goal's events in the window (a goal with a value), else None."""
        value = getattr(self, "value_model_", None)
        return None if value is None else value.predict(features)

    def explain(self, features: pd.DataFrame, k: int | None = None, reference: dict | None = None) -> list[list[dict]]:
        """Return each profile's ``k`` (default ``output.factors``) most influential factors, signed, in words.

        ``reference`` is the model's ``drift_reference`` (its training rows in bins): with it each number is
        placed among the training profiles (see :func:`customer_ai.explain.top_factors`).
        """
        return self._explain(self.model_.features, self.model_.contributions, features, k, reference=reference)

    def explain_value(
        self, features: pd.DataFrame, k: int | None = None, reference: dict | None = None
    ) -> list[list[dict]] | None:
        """Return each profile's most influential factors of its expected value (a goal with a value), else None.

        Contributions are exact on the log of the expected value (the Tweedie model's link), so a factor's
        importance reads how much it multiplies the expected value; see :meth:`explain`.
        """
        value = getattr(self, "value_model_", None)
        if value is None:
            return None
        return self._explain(
            value.features, value.contributions, features, k, reference=reference, subject=EXPECTED_VALUE
        )

    def _explain(
        self,
        columns: list[str],
        contributions_of: Callable[[pd.DataFrame], np.ndarray],
        features: pd.DataFrame,
        k: int | None,
        *,
        reference: dict | None,
        subject: str = CHANCE,
    ) -> list[list[dict]]:
        """Return the top factors of one model reading ``columns`` of ``features`` (see :meth:`explain`)."""
        k = self.spec.output.factors if k is None else k
        read = features[columns]
        contributions = contributions_of(read) if len(read) else np.zeros((0, len(columns) + 1))
        infos = {info.name: info for info in feature_infos(self.feature_plan_, self.spec)}
        return top_factors(read, contributions, [infos[c] for c in columns], k, reference, subject=subject)

    def score(
        self,
        events: pd.DataFrame,
        as_of: pd.Timestamp,
        *,
        attributes: pd.DataFrame | None = None,
        profiles: pd.Index | None = None,
        factors: int | None = None,
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Score profiles at ``as_of`` with their influential factors.

        Parameters
        ----------
        events : pandas.DataFrame
            Canonical events; only those before ``as_of`` are used.
        as_of : pandas.Timestamp
            The scoring date.
        attributes : pandas.DataFrame, optional
            Static profile attributes.
        profiles : pandas.Index, optional
            Profiles to score; by default every profile eligible at ``as_of``.
        factors : int, optional
            Factors per profile; ``output.factors`` by default.

        Returns
        -------
        (pandas.DataFrame, pandas.DataFrame)
            The scores (``profile_id, probability, score, percentile, bucket, propensity, as_of, factors``) and
            the feature matrix they were computed from.
        """
        output = self.spec.output
        with step(f"scoring profiles as of {as_of:%Y-%m-%d}") as info:
            features = self.features(events, as_of, profiles, attributes)
            probability = self.predict_proba(features)
            rule = choose_bucket_rule(output, profiles_per_score(probability))
            scores = score_frame(features.index, probability, rule)
            scores["propensity"] = self.spec.propensity
            scores["as_of"] = f"{as_of:%Y-%m-%d}"
            info["profiles"] = len(scores)
        with step("explaining scores with TreeSHAP"):
            scores["factors"] = self.explain(features, factors)
        return scores, features

    # --- persistence ------------------------------------------------------------------------------------

    def describe(self) -> dict:
        """Return what the fitted model is, JSON-ready: snapshots, features, calibration, validation."""
        plan = self.snapshot_plan_
        infos = feature_infos(self.feature_plan_, self.spec)
        positives, negatives = training_totals(self.label_counts_)
        return {
            "windows": {
                "features": (
                    f"[{self.feature_plan_.history_from}, as_of), counted per {plan.lookback_days} days"
                    if self.feature_plan_.history_from is not None
                    else f"[as_of - {plan.lookback_days} days, as_of)"
                ),
                "eligibility": f"[as_of - {self.spec.eligibility.lookback_days} days, as_of)",
                "label": f"[as_of, as_of + {plan.window_days} days)",
                "snapshots": [f"{s:%Y-%m-%d}" for s in plan.snapshots],
            },
            "history": plan.to_dict(),
            "label_counts": {
                "snapshots": self.label_counts_,
                "positives": positives,
                "negatives": negatives,
            },
            "training_sample": getattr(self, "training_sample_", None),
            "features": {
                "names": self.model_.features,
                "categorical": self.model_.categorical,
                "descriptions": {i.name: i.template for i in infos},
                "plan": self.feature_plan_.to_dict(),
            },
            "calibration": {
                "method": "platt",
                "slope": self.model_.calibration.slope,
                "intercept": self.model_.calibration.intercept,
                "why": CALIBRATION_NOTE,
            },
            "offset": None if self.model_.offset is None else asdict(self.model_.offset),
            "boosting_start": getattr(self, "boosting_start_", None),
            "parameters": self.model_.params,
            "best_iteration": self.model_.best_iteration,
            "validation": {
                "snapshot": f"{plan.validation:%Y-%m-%d}",
                "design": SINGLE_PERIOD_NOTE if plan.single_period else VALIDATION_NOTE,
                "metrics": self.metrics_,
            },
            **self._describe_value(),
            **self._describe_timing(),
        }

    def _describe_value(self) -> dict:
        """Return the value model's part of :meth:`describe` (nothing for a goal without a value)."""
        model = getattr(self, "value_model_", None)
        if model is None:
            return {}
        return {
            "value": {
                "field": self.spec.goal.value.field,  # type: ignore[union-attr]
                "model": "tweedie",
                "parameters": VALUE_PARAMS,
                "best_iteration": model.best_iteration,
                "scale": model.scale,
                "start": None if model.start is None else asdict(model.start),
                "features": model.features,
                "metrics": self.value_metrics_,
                "why": VALUE_NOTE,
            }
        }

    def _describe_timing(self) -> dict:
        """Return the timing model's part of :meth:`describe` (nothing without ``output.timing``)."""
        model = getattr(self, "timing_model_", None)
        if model is None:
            return {}
        return {"timing": {**model.describe(), "metrics": self.timing_metrics_}}

    def save(self, folder: Path, metadata: dict | None = None) -> Path:
        """Write ``model.txt`` (LightGBM) and ``model.json`` (``metadata`` plus :meth:`describe`) into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.model_.booster.save_model(folder / "model.txt", num_iteration=self.model_.best_iteration)
        value = getattr(self, "value_model_", None)
        if value is not None:
            value.booster.save_model(folder / VALUE_MODEL_FILE, num_iteration=value.best_iteration)
        timing = getattr(self, "timing_model_", None)
        if timing is not None:
            timing.save(folder)
        write_json(folder / "model.json", {**(metadata or {}), **self.describe()})
        return folder

    @classmethod
    def load(cls, folder: Path, spec: InstanceSpec) -> tuple[PropensityModel, dict]:
        """Load a model written by :meth:`save`; return it with its metadata.

        Raises
        ------
        customer_ai.files.FileContentError
            When ``model.json`` is not a JSON object with every key a model needs, or ``model.txt`` is not a whole
            LightGBM model (LightGBM itself would crash the process on a cut-short file) or LightGBM refuses it;
            the message names the file and what is wrong.
        """
        folder = Path(folder)
        meta = read_json_object(folder / "model.json", MODEL_KEYS)
        text = read_model_text(folder / "model.txt")
        try:
            booster = lgb.Booster(model_str=text)
        except lgb.basic.LightGBMError as exc:
            raise FileContentError(folder / "model.txt", f"LightGBM cannot load it: {exc}") from None
        estimator = cls(spec)
        try:
            calibration = meta["calibration"]
            estimator.model_ = TrainedModel(
                booster=booster,
                calibration=PlattCalibration(float(calibration["slope"]), float(calibration["intercept"])),
                features=meta["features"]["names"],
                categorical=meta["features"]["categorical"],
                params=meta["parameters"],
                offset=None if meta.get("offset") is None else Offset(**meta["offset"]),
            )
            estimator.feature_plan_ = FeaturePlan.from_dict(meta["features"]["plan"])
            estimator.snapshot_plan_ = SnapshotPlan.from_dict(meta["history"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise FileContentError(
                folder / "model.json", f"does not describe a model ({type(exc).__name__}: {exc})"
            ) from None
        estimator.metrics_ = meta["validation"]["metrics"]
        estimator.label_counts_ = meta["label_counts"]["snapshots"]
        if meta.get("boosting_start") is not None:
            estimator.boosting_start_ = meta["boosting_start"]
        estimator.training_sample_ = meta.get("training_sample")
        estimator.value_model_ = _load_value(folder, meta)
        estimator.value_metrics_ = None if estimator.value_model_ is None else meta["value"].get("metrics")
        estimator.timing_model_ = _load_timing(folder, meta)
        estimator.timing_metrics_ = None if estimator.timing_model_ is None else meta["timing"].get("metrics")
        return estimator, meta

    def __repr__(self) -> str:
        fitted = hasattr(self, "model_")
        return f"PropensityModel({self.spec.name!r}{', fitted' if fitted else ''})"
