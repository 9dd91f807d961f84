"""The time to the next goal event: a discrete-time hazard model, anchored on the propensity probability.

The horizon ``[0, H)`` after a date is cut into half-open intervals ``[k * width, (k + 1) * width)`` of a quarter goal
window each (:class:`TimingGrid`), so the window ends on a boundary and the curve's value there needs no
interpolation.  Training rows are person-periods (:func:`person_periods`): a profile at a snapshot gives one row per
interval until the interval of its first goal event (label 1 there, 0 before), or until the last interval that ends on
or before the as-of date (right-censored: all 0).  A LightGBM binary model learns the hazard ``h_k`` (the chance of a
first event in interval ``k`` given none before) from the run's features at the snapshot plus the interval's number
(:func:`fit_timing_model`); a profile's curve ``S(t)``, the chance of no goal event in ``[as_of, as_of + t)``, is
``prod(1 - h_k)`` at the boundaries (:meth:`TimingModel.curves`).  The curve is then **anchored** so that its chance
within the goal window equals the propensity model's calibrated probability (:func:`anchored`: ``S'(t) = S(t) ** c``,
``c = log(1 - p) / log(S(w))``): one curve per profile, consistent with its ``probability``.  Its median
(:func:`median_days`) is the profile's ``days_to_next`` and :func:`next_by` the date it gives.

Chosen by measurement on the tuning dates of docs/evaluation.md (``bench/timing_models.py``, which fits with this
module, section "Next-purchase timing: tuning rows, first measurement"): against a model trained only on snapshots
whose whole horizon is observed (none exist on short logs), BG/NBD's own curve and recency.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import pandas as pd

from customer_ai.outcome_metrics import MarginGate, bought_by_median, concordance

__all__ = [
    "EARLY_STOPPING_ROUNDS",
    "INTERVAL_COLUMN",
    "INTERVALS_PER_WINDOW",
    "MAX_ROUNDS",
    "MAX_ROWS",
    "STOP_SHARE",
    "TIMING_BASELINE_WORDS",
    "TIMING_GATE",
    "TIMING_MODEL_FILE",
    "TIMING_NOTE",
    "TIMING_PARAMS",
    "PersonPeriods",
    "TimingGrid",
    "TimingModel",
    "TimingRows",
    "TimingSnapshot",
    "anchored",
    "fit_timing_model",
    "median_days",
    "next_by",
    "person_periods",
    "snapshot_grid",
    "median_quality",
    "timing_quality",
    "timing_rows",
    "timing_verdict",
]

TIMING_MODEL_FILE = "timing_model.txt"  # the hazard model's trees, beside model.txt
INTERVALS_PER_WINDOW = 4  # intervals of a quarter goal window: the window ends on the 4th boundary
INTERVAL_COLUMN = "interval"  # the feature added to the run's features: the interval's number, 0 the first
MAX_ROWS = 1_500_000  # person-period rows above this: whole (profile, snapshot) units are kept by a hash
STOP_SHARE = 5  # one profile in STOP_SHARE (a hash of its id) stops the boosting early
MAX_ROUNDS = 2000
EARLY_STOPPING_ROUNDS = 50
# the propensity model's settings (customer_ai.model.DEFAULT_PARAMS); one thread: OpenMP threads spin-wait, and on
# a 2-core machine two threads fitted the person-period sets 2-10x slower (bench/timing_models.py)
TIMING_PARAMS: dict = {
    "objective": "binary",
    "learning_rate": 0.03,
    "num_leaves": 15,
    "min_child_samples": 40,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "deterministic": True,
    "num_threads": 1,
    "verbose": -1,
}
TIMING_NOTE = (
    "the days to the next goal event: a discrete-time hazard model (LightGBM binary on person-periods, intervals of "
    "a quarter goal window up to the horizon, the run's features plus the interval's number), trained on every "
    "snapshot's intervals that end on or before the as-of date (right-censored), stopped early on a fifth of the "
    "profiles (a hash of the id); each profile's curve is raised to the power that makes its chance within the goal "
    "window equal its probability, and its median is the days to the next event (empty beyond the horizon or beyond "
    "the last interval a training row reached)"
)
_EPS = 1e-9  # float slack on interval positions (in intervals) and on days (in days)
_PREDICT_ROWS = 200_000  # person-period rows predicted at once: scoring memory stays bounded by it


@dataclass(frozen=True)
class TimingGrid:
    """The intervals of the horizon: ``[k * width, (k + 1) * width)`` days for ``k = 0 .. count - 1``.

    Attributes
    ----------
    window_days : float
        The goal window ``w``.
    horizon_days : float
        The horizon asked for (``output.timing_horizon_days``): medians beyond it are left empty.
    width : float
        Days per interval: ``w / 4``.
    count : int
        How many intervals: enough to cover the horizon (the last may end after it).
    window_index : int
        The boundary where the goal window ends (4): ``S`` there is column ``window_index`` of a curve.
    """

    window_days: float
    horizon_days: float
    width: float
    count: int
    window_index: int

    @classmethod
    def of(cls, window_days: float, horizon_days: float) -> TimingGrid:
        """Return the grid of a goal window and a horizon (both in days).

        Raises
        ------
        ValueError
            When the window is not positive or the horizon is shorter than the window (anchoring reads ``S`` at the
            window's end).
        """
        if not window_days > 0:
            raise ValueError(f"the goal window must be positive, not {window_days} days")
        if horizon_days < window_days:
            raise ValueError(
                f"the timing horizon ({horizon_days} days) must hold the goal window ({window_days} days): a curve is "
                "anchored on its chance within the window"
            )
        width = window_days / INTERVALS_PER_WINDOW
        count = math.ceil(horizon_days / width - _EPS)
        return cls(float(window_days), float(horizon_days), width, count, INTERVALS_PER_WINDOW)

    @property
    def end_days(self) -> float:
        """Where the last interval ends (days): at or after the horizon."""
        return self.count * self.width

    def intervals_within(self, days: npt.ArrayLike) -> np.ndarray:
        """Return how many intervals end on or before ``days`` (at most :attr:`count`, at least 0)."""
        whole = np.floor(np.asarray(days, dtype="float64") / self.width + _EPS)
        return np.clip(whole, 0, self.count).astype("int64")

    def to_dict(self) -> dict:
        """Return the grid for model.json (:meth:`from_dict` rebuilds it from the two first keys)."""
        return {
            "window_days": self.window_days,
            "horizon_days": self.horizon_days,
            "width_days": self.width,
            "intervals": self.count,
            "window_index": self.window_index,
        }

    @classmethod
    def from_dict(cls, data: dict) -> TimingGrid:
        """Return the grid :meth:`to_dict` described."""
        return cls.of(float(data["window_days"]), float(data["horizon_days"]))


def snapshot_grid(as_of: pd.Timestamp, window_days: int, earliest: pd.Timestamp) -> list[pd.Timestamp]:
    """Return the training snapshots of the hazard model, latest first.

    They are ``as_of - w - k * ceil(w / 2)`` for ``k = 0, 1, ...`` while on or after ``earliest`` (where the features'
    lookback is covered by the data): the latest sees one whole goal window before ``as_of``, so every snapshot gives
    the intervals up to the window's end at least.
    """
    step = pd.Timedelta(days=math.ceil(window_days / 2))
    out, snapshot = [], as_of - pd.Timedelta(days=window_days)
    while snapshot >= earliest:
        out.append(snapshot)
        snapshot -= step
    return out


class PersonPeriods(NamedTuple):
    """The person-period rows of a set of profiles: one per (profile, interval) it was observed in."""

    row: np.ndarray  # the position of the row's profile in the input
    interval: np.ndarray  # the interval's number, 0 the first
    label: np.ndarray  # 1 in the interval of the profile's first goal event, else 0 (int8)


def _unit_counts(days: np.ndarray, observed: np.ndarray, grid: TimingGrid) -> tuple[np.ndarray, np.ndarray]:
    """Return each profile's number of rows and whether its event was seen (in an interval observed whole)."""
    position = np.minimum(np.floor(np.nan_to_num(days, posinf=np.inf) / grid.width + _EPS), grid.count)
    event = np.where(np.isnan(days), grid.count, position).astype("int64")  # grid.count: not in the grid
    seen = event < observed
    return np.where(seen, event + 1, observed), seen


def person_periods(days: npt.ArrayLike, observed_days: npt.ArrayLike, grid: TimingGrid) -> PersonPeriods:
    """Return the person-period rows of profiles observed from a snapshot for ``observed_days``.

    Parameters
    ----------
    days : array-like of float
        Per profile, the days from the snapshot to its first goal event (NaN: none seen).  The event lies in the
        interval ``k`` with ``k * width <= days < (k + 1) * width``: one exactly on a boundary belongs to the later
        interval.
    observed_days : float or array-like of float
        How long after the snapshot the events are known (the as-of date minus the snapshot), for all profiles or
        per profile.  Only the intervals that end on or before it give rows (right-censoring): an event in an
        interval that ends after it is not seen.
    grid : TimingGrid
        The intervals.

    Returns
    -------
    PersonPeriods
        Per profile, in input order, a row for each interval up to the one of its event (label 1 there, 0 before),
        or up to the last interval observed whole (all 0).

    Raises
    ------
    ValueError
        When a day count is negative: an event before its snapshot.
    """
    days = np.asarray(days, dtype="float64")
    if (days < 0).any():
        raise ValueError("a first goal event lies before its snapshot (negative days)")
    observed = np.broadcast_to(grid.intervals_within(observed_days), days.shape)
    count, seen = _unit_counts(days, observed, grid)
    row = np.repeat(np.arange(len(days)), count)
    interval = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    label = (seen[row] & (interval == count[row] - 1)).astype("int8")
    return PersonPeriods(row, interval, label)


class TimingSnapshot(NamedTuple):
    """What one training snapshot gives the hazard model (see :func:`timing_rows`)."""

    features: pd.DataFrame  # the run's features at the snapshot, indexed by profile id (the eligible profiles)
    days: np.ndarray  # per profile, the days from the snapshot to its first goal event before the as-of date (NaN)
    observed_days: float  # the as-of date minus the snapshot, in days


@dataclass
class TimingRows:
    """The person-period training rows of a hazard model (after the row cap).

    Attributes
    ----------
    frame : pandas.DataFrame
        The features of each row's profile at its snapshot, then :data:`INTERVAL_COLUMN`.
    label : numpy.ndarray
        1 in the interval of the first goal event, else 0.
    profile : numpy.ndarray
        Each row's profile id.
    summary : dict
        ``snapshots`` (those giving rows), ``profile_snapshots``, ``rows`` (before the cap), ``rows_kept``,
        ``max_rows``.
    """

    frame: pd.DataFrame
    label: np.ndarray
    profile: np.ndarray
    summary: dict = field(default_factory=dict)


def _timing_parts(
    snapshots: Sequence[TimingSnapshot], grid: TimingGrid, max_rows: int
) -> tuple[list[tuple[pd.DataFrame, np.ndarray, np.ndarray]], dict]:
    """Return each snapshot's person-period rows (features, labels, profile ids) after the cap, and their summary."""
    used = [(part, grid.intervals_within(part.observed_days)) for part in snapshots]
    used = [(part, observed) for part, observed in used if observed >= 1]
    counts = [_unit_counts(np.asarray(part.days, dtype="float64"), observed, grid)[0] for part, observed in used]
    rows = int(sum(int(c.sum()) for c in counts))
    share = max_rows / rows if rows > max_rows else 1.0
    parts = []
    for position, (part, _) in enumerate(used):
        profiles = part.features.index.to_numpy()
        kept = np.arange(len(profiles))
        if share < 1.0:
            unit = pd.Index(profiles).astype(str) + f"@{position}"
            hashed = pd.util.hash_array(unit.to_numpy(dtype=object)) % np.uint64(10_000)
            kept = np.flatnonzero(hashed < np.uint64(share * 10_000))
        periods = person_periods(np.asarray(part.days, dtype="float64")[kept], part.observed_days, grid)
        source = kept[periods.row]
        frame = part.features.iloc[source].reset_index(drop=True).assign(**{INTERVAL_COLUMN: periods.interval})
        parts.append((frame, periods.label, profiles[source]))
    summary = {
        "snapshots": len(used),
        "profile_snapshots": int(sum(len(part.features) for part, _ in used)),
        "rows": rows,
        "rows_kept": int(sum(len(frame) for frame, _, _ in parts)),
        "max_rows": max_rows,
    }
    return parts, summary


def _joined(parts: list[tuple[pd.DataFrame, np.ndarray, np.ndarray]], summary: dict) -> TimingRows:
    if not parts:
        return TimingRows(pd.DataFrame(), np.zeros(0, dtype="int8"), np.zeros(0, dtype=object), summary)
    frames, labels, ids = zip(*parts, strict=True)
    return TimingRows(pd.concat(frames, ignore_index=True), np.concatenate(labels), np.concatenate(ids), summary)


def timing_rows(snapshots: Sequence[TimingSnapshot], grid: TimingGrid, *, max_rows: int = MAX_ROWS) -> TimingRows:
    """Return the person-period rows of ``snapshots``, at most about ``max_rows`` of them.

    A snapshot whose ``observed_days`` hold no whole interval gives nothing.  Above ``max_rows`` rows in all, whole
    (profile, snapshot) units are kept, by a hash of the profile id and the snapshot's position among those giving
    rows, in the proportion ``max_rows / rows`` (so about ``max_rows`` rows stay, and a profile keeps its intervals
    together).  The units to keep are chosen from row counts before any row is built: memory holds only the kept
    rows beside the snapshots' features.
    """
    return _joined(*_timing_parts(snapshots, grid, max_rows))


def _split_rows(snapshots: Sequence[TimingSnapshot], grid: TimingGrid, max_rows: int) -> tuple[TimingRows, TimingRows]:
    """Return :func:`timing_rows` split into the rows to fit and those that stop the boosting (:func:`_stop_rows`).

    Each part is the rows of :func:`timing_rows` in their order; they are split snapshot by snapshot and joined per
    side, so that all the rows are never held twice (joined, then each side copied out).
    """
    parts, summary = _timing_parts(snapshots, grid, max_rows)
    fit, stop = [], []
    while parts:
        frame, label, ids = parts.pop(0)
        stopping = _stop_rows(ids)
        fit.append((frame.loc[~stopping], label[~stopping], ids[~stopping]))
        stop.append((frame.loc[stopping], label[stopping], ids[stopping]))
        del frame
    return _joined(fit, summary), _joined(stop, summary)


def _limit_days(grid: TimingGrid, learned_intervals: int) -> float:
    return min(grid.horizon_days, learned_intervals * grid.width)


def _stop_rows(profiles: np.ndarray) -> np.ndarray:
    """Return which rows stop the boosting early: those of one profile in :data:`STOP_SHARE`, by a stable hash."""
    return (pd.util.hash_array(np.asarray(profiles, dtype=object)) % np.uint64(STOP_SHARE)) == 0


@dataclass
class TimingModel:
    """A fitted hazard model: the booster, its grid and features, and how far its training rows reached.

    Attributes
    ----------
    booster : lightgbm.Booster
        The trees; ``predict`` gives the hazard of a (profile, interval) row.
    grid : TimingGrid
        The intervals.
    features : list of str
        The run's feature columns, in order (:data:`INTERVAL_COLUMN` comes after them).
    learned_intervals : int
        How many intervals, from the first, some training row reached: beyond them the trees repeat the last
        learned interval's hazard, so a median there is not given.
    training : dict
        :attr:`TimingRows.summary` of the rows it was fitted on.
    """

    booster: lgb.Booster
    grid: TimingGrid
    features: list[str]
    learned_intervals: int
    training: dict = field(default_factory=dict)

    @property
    def best_iteration(self) -> int:
        """Return the number of trees kept (early stopping's best; a loaded model holds only those)."""
        best = int(self.booster.best_iteration or 0)  # -1 or 0 when unknown: a booster loaded from text
        return best if best > 0 else int(self.booster.current_iteration())

    @property
    def limit_days(self) -> float:
        """Return the longest median given: the horizon, or the end of the last learned interval if sooner."""
        return _limit_days(self.grid, self.learned_intervals)

    @staticmethod
    def described_limit_days(described: dict) -> float:
        """Return :attr:`limit_days` of a stored model from its part of model.json (:meth:`describe`)."""
        return _limit_days(TimingGrid.from_dict(described["grid"]), int(described["learned_intervals"]))

    def curves(self, features: pd.DataFrame) -> np.ndarray:
        """Return each profile's ``S`` at the boundaries ``0, width, ..., count * width`` (n x (count + 1)).

        Column ``k`` is the chance of no goal event in ``[as_of, as_of + k * width)``; column 0 is 1.  Predicted
        :data:`_PREDICT_ROWS` person-periods at a time.
        """
        count = self.grid.count
        now = features[self.features]
        hazard = np.zeros((len(now), count))
        step = max(1, _PREDICT_ROWS // count)
        for start in range(0, len(now), step):
            part = now.iloc[start : start + step]
            rows = part.iloc[np.repeat(np.arange(len(part)), count)].reset_index(drop=True)
            rows = rows.assign(**{INTERVAL_COLUMN: np.tile(np.arange(count), len(part))})
            predicted = self.booster.predict(rows, num_iteration=self.best_iteration)
            hazard[start : start + len(part)] = np.asarray(predicted).reshape(len(part), count)
        hazard = np.clip(hazard, 0.0, 1.0)
        return np.concatenate([np.ones((len(now), 1)), np.cumprod(1.0 - hazard, axis=1)], axis=1)

    def anchored(self, curves: np.ndarray, probability: npt.ArrayLike) -> np.ndarray:
        """Return :func:`anchored` curves on this model's grid."""
        return anchored(curves, probability, self.grid.window_index)

    def median_days(self, curves: np.ndarray) -> np.ndarray:
        """Return :func:`median_days` on this model's grid, NaN beyond :attr:`limit_days`."""
        return median_days(curves, self.grid.width, limit_days=self.limit_days)

    def describe(self) -> dict:
        """Return the model's part of model.json (what :meth:`from_saved` reads back with the trees)."""
        return {
            "model": "discrete-time hazard",
            "parameters": {**TIMING_PARAMS, "max_rounds": MAX_ROUNDS},
            "best_iteration": self.best_iteration,
            "grid": self.grid.to_dict(),
            "features": list(self.features),
            "learned_intervals": self.learned_intervals,
            "training": dict(self.training),
            "why": TIMING_NOTE,
        }

    def save(self, folder: Path) -> dict:
        """Write the trees to ``folder / TIMING_MODEL_FILE``; return :meth:`describe` for model.json."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(folder / TIMING_MODEL_FILE, num_iteration=self.best_iteration)
        return self.describe()

    @classmethod
    def from_saved(cls, text: str, described: dict) -> TimingModel:
        """Return the model whose trees are ``text`` (``TIMING_MODEL_FILE``'s) and whose description is ``described``.

        The caller reads the file whole first (``customer_ai.estimator.read_model_text``: LightGBM crashes the
        process on a file cut short).

        Raises
        ------
        ValueError
            When LightGBM refuses the trees, or ``described`` misses a key or holds a wrong value; the message says
            which.
        """
        try:
            booster = lgb.Booster(model_str=text)
        except lgb.basic.LightGBMError as exc:
            raise ValueError(f"LightGBM cannot load the timing model's trees: {exc}") from None
        try:
            return cls(
                booster=booster,
                grid=TimingGrid.from_dict(described["grid"]),
                features=[str(name) for name in described["features"]],
                learned_intervals=int(described["learned_intervals"]),
                training=dict(described.get("training") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"the timing model's description is incomplete ({type(exc).__name__}: {exc})") from None


def fit_timing_model(
    snapshots: Sequence[TimingSnapshot], grid: TimingGrid, *, max_rows: int = MAX_ROWS, seed: int = 0
) -> TimingModel:
    """Fit the hazard model on the person-periods of ``snapshots``.

    Parameters
    ----------
    snapshots : sequence of TimingSnapshot
        The training snapshots (:func:`snapshot_grid`), each with the run's features of its eligible profiles, the
        days to their first goal event seen before the as-of date and how many days that is.
    grid : TimingGrid
        The intervals.
    max_rows : int, default MAX_ROWS
        The person-period rows kept at most (about): above it, whole (profile, snapshot) units are kept by a hash
        (:func:`timing_rows`), so memory is bounded by ``max_rows`` rows of the features plus one column.
    seed : int, default 0
        LightGBM's seed (the fit is deterministic, on one thread).

    Returns
    -------
    TimingModel
        LightGBM binary (:data:`TIMING_PARAMS`) on the rows of four profiles in five, stopped early (after
        :data:`EARLY_STOPPING_ROUNDS` rounds without gain, at most :data:`MAX_ROUNDS`) on those of the fifth chosen
        by a hash of the id.

    Raises
    ------
    ValueError
        When the snapshots give no row, or too few profiles to have rows on both sides of the split, or a feature is
        named :data:`INTERVAL_COLUMN`.
    """
    for part in snapshots:
        if INTERVAL_COLUMN in part.features.columns:
            raise ValueError(f"a feature is named {INTERVAL_COLUMN!r}, the hazard model's own column")
    fit, stop = _split_rows(snapshots, grid, max_rows)
    if not len(fit.label) and not len(stop.label):
        raise ValueError(
            f"the timing model has no training row: no snapshot observes a whole interval ({grid.width:g} days) "
            "before the as-of date"
        )
    if not len(fit.label) or not len(stop.label):
        raise ValueError(
            f"the timing model needs profiles both to fit and to stop early on, and its {fit.summary['rows_kept']:,} "
            f"person-period rows come from too few of them"
        )
    params = {**TIMING_PARAMS, "seed": seed}
    fitted = lgb.Dataset(fit.frame, fit.label)
    booster = lgb.train(
        params,
        fitted,
        num_boost_round=MAX_ROUNDS,
        valid_sets=[lgb.Dataset(stop.frame, stop.label, reference=fitted)],
        callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)],
    )
    learned = int(fit.frame[INTERVAL_COLUMN].max()) + 1
    features = [c for c in fit.frame.columns if c != INTERVAL_COLUMN]
    return TimingModel(booster, grid, features, learned, fit.summary)


def anchored(curves: np.ndarray, probability: npt.ArrayLike, window_index: int) -> np.ndarray:
    """Return the curves made to agree with the probabilities: ``1 - S'(w) = p`` for each profile.

    ``S'(t) = S(t) ** c`` with ``c = log(1 - p) / log(S(w))``: the shape of the hazard model's curve is kept and its
    level set by ``p``.  A probability of 0 gives ``S' = 1`` (no event in the horizon); of 1, ``S' = 0`` after 0.
    Where ``S(w)`` carries no shape to scale (within 1e-9 of 0 or 1: the model sees an event in the window as certain
    or impossible), the curve is the constant hazard one, ``S'(t) = (1 - p) ** (t / w)``.

    Parameters
    ----------
    curves : numpy.ndarray
        ``S`` at the interval boundaries, one row per profile, column 0 the start (:meth:`TimingModel.curves`).
    probability : array-like of float
        Each profile's calibrated chance of a goal event within the window, in [0, 1].
    window_index : int
        The column where the window ends.

    Raises
    ------
    ValueError
        When a probability is outside [0, 1] or missing.
    """
    curves = np.asarray(curves, dtype="float64")
    p = np.asarray(probability, dtype="float64")
    if not ((p >= 0) & (p <= 1)).all():
        raise ValueError("a probability is outside [0, 1] or missing")
    at_window = curves[:, window_index]
    shaped = (at_window >= _EPS) & (at_window <= 1 - _EPS)
    with np.errstate(divide="ignore", invalid="ignore"):
        power = np.log1p(-p) / np.log(np.where(shaped, at_window, 0.5))
        scaled = curves ** power[:, None]
        steps = np.arange(curves.shape[1]) / window_index
        constant = (1.0 - p)[:, None] ** steps[None, :]
    return np.where(shaped[:, None], scaled, constant)


def median_days(curves: np.ndarray, width: float, *, limit_days: float | None = None) -> np.ndarray:
    """Return the first ``t`` with ``S(t) <= 0.5`` per profile, on curves linear between boundaries ``width`` apart.

    Parameters
    ----------
    curves : numpy.ndarray
        ``S`` at the boundaries ``0, width, 2 width, ...`` (column 0 is 1).
    width : float
        Days between boundaries.
    limit_days : float, optional
        The longest median given; None: the last boundary.

    Returns
    -------
    numpy.ndarray
        Days (float); NaN (never inf) where ``S`` stays above one half up to the last boundary or the median lies
        beyond ``limit_days``.
    """
    curves = np.asarray(curves, dtype="float64")
    below = curves <= 0.5
    reached = below.any(axis=1)
    k = np.maximum(np.argmax(below, axis=1), 1)  # the first boundary at or below one half (>= 1: S(0) = 1)
    rows = np.arange(len(curves))
    before, after = curves[rows, k - 1], curves[rows, k]
    drop = np.where(before > after, before - after, 1.0)
    median = (k - 1 + (before - 0.5) / drop) * width
    if limit_days is not None:
        reached &= median <= limit_days
    return np.where(reached, median, np.nan)


def next_by(as_of: pd.Timestamp, days: npt.ArrayLike) -> np.ndarray:
    """Return, per median, the date (``YYYY-MM-DD``, UTC) by the end of which the next goal event is expected.

    It is the last calendar day that ``[as_of, as_of + days)`` reaches into: by the end of that day the chance of a
    goal event is at least one half.  From an as-of date at midnight, 7 days give the 7th day (``as_of + 6``), 6.5
    and 0.2 days the 7th and the first (the as-of date itself).  A missing median (NaN) gives None.
    """
    days = np.asarray(days, dtype="float64")
    known = ~np.isnan(days)
    out = np.full(days.shape, None, dtype=object)
    last = pd.Timestamp(as_of) + pd.to_timedelta(np.maximum(days[known] - _EPS, 0.0), unit="D")
    out[known] = np.asarray(last.strftime("%Y-%m-%d"), dtype=object)
    return out


def restricted_mean(curves: np.ndarray, width: float) -> np.ndarray:
    """Return the area under each curve (boundaries ``width`` apart): the expected days without an event in [0, H)."""
    return width * (curves[:, 1:] + curves[:, :-1]).sum(axis=1) / 2


def median_quality(median: np.ndarray, observed: np.ndarray, happened: np.ndarray, span_days: float) -> dict:
    """Return how well predicted medians order and place the next goal events seen in ``[0, span_days)``.

    ``median`` holds NaN or ``inf`` where no median is given (beyond the limit or the horizon: they tie);
    ``observed`` and ``happened`` are the days seen (to the event, or to ``span_days``) and whether it came.

    Returns
    -------
    dict
        ``concordance_median`` (Harrell's), ``bought_by_median`` and ``counted``
        (:func:`customer_ai.outcome_metrics.bought_by_median`: 0.5 is right) and ``finite_median`` (the share given
        a median; None for no profile).
    """
    median = np.asarray(median, dtype="float64")
    ranked = np.where(np.isnan(median), np.inf, median)  # not nan_to_num: it would make inf a finite number
    share, counted = bought_by_median(ranked, observed, happened, span_days)
    return {
        "concordance_median": concordance(ranked, observed, happened),
        "bought_by_median": share,
        "counted": counted,
        "finite_median": float(np.mean(np.isfinite(ranked))) if len(ranked) else None,
    }


def timing_quality(
    model: TimingModel,
    curves: np.ndarray,
    probability: np.ndarray,
    days: np.ndarray,
    *,
    span_days: float,
    baselines: dict[str, np.ndarray],
) -> dict:
    """Return how well the anchored curves of held-out profiles order and place their next goal event.

    Parameters
    ----------
    model : TimingModel
        The fitted model.
    curves, probability : numpy.ndarray
        The held-out profiles' curves (:meth:`TimingModel.curves`) and propensity probabilities (the curves are
        anchored on them).
    days : numpy.ndarray
        Days to each profile's first goal event (NaN: none seen); only ``[0, span_days)`` is observed.
    span_days : float
        How long after the snapshot the events are known (the goal window, for the validation snapshot).
    baselines : dict of str to numpy.ndarray
        Rankings as predicted days (shorter is sooner): each gets its concordance.

    Returns
    -------
    dict
        ``concordance`` (Harrell's, of the curve's expected days without an event over the horizon: the curve's own
        order, which the gate judges), the measures of its median (:func:`median_quality`: ``concordance_median``,
        with ties beyond the limit, ``bought_by_median``, ``counted`` and ``finite_median``), ``span_days`` and
        ``baselines`` (each one's ``concordance``).
    """
    happened = ~np.isnan(days) & (days < span_days)
    observed = np.where(happened, days, span_days)
    anchored = model.anchored(curves, probability)
    return {
        "concordance": concordance(restricted_mean(anchored, model.grid.width), observed, happened),
        **median_quality(model.median_days(anchored), observed, happened, span_days),
        "span_days": float(span_days),
        "baselines": {
            name: {"concordance": concordance(np.nan_to_num(values, nan=np.inf), observed, happened)}
            for name, values in baselines.items()
        },
    }


TIMING_BASELINE_WORDS = {"recency": "recency's", "bgnbd": "the repeat-buying model's"}  # how the gate names them


TIMING_GATE = MarginGate(
    "concordance",
    "the timing model's concordance",
    TIMING_BASELINE_WORDS,
    "training.min_timing_concordance_gain",
    "the timing model's concordance is undefined (no held-out profile reached the goal in time)",
)


def timing_verdict(metrics: dict, min_gain: float = 0.0) -> tuple[str, str]:
    """Return ``("ok" | "poor", reason)``: whether the timing curves order next purchases better than the baselines.

    ``poor`` when the curve's concordance (:func:`timing_quality`) is not above the best baseline's by more than
    ``min_gain`` (``training.min_timing_concordance_gain``), or is undefined (no held-out profile bought within the
    observed span): :data:`TIMING_GATE`.
    """
    return TIMING_GATE.verdict(metrics, min_gain)
