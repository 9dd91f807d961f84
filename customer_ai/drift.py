"""Drift: how far the profiles scored now lie from those the model was trained on, feature by feature.

A model learns what its training snapshots show; when the scoring population's features lie elsewhere (values
above anything in training, a category training never saw, values missing far more often) its scores are
extrapolations.  Per feature, :func:`feature_drift` compares the scoring rows (``current``) with the training
rows (``reference``):

- **population stability index** (PSI): ``sum((c - r) * ln(c / r))`` over bins, where ``r`` and ``c`` are the
  shares of the reference and current rows in each bin.  Numbers are binned at the reference's deciles (ties
  merge bins: a count that is 0 for 70% of the rows has a bin for 0 and bins above it), except features whose
  scale means the same everywhere, binned on that scale (:func:`customer_ai.features.fixed_scales`): probabilities
  in twentieths of ``[0, 1]`` (deciles of a probability that is 0.999999 for most rows would turn a change in the
  sixth decimal into a large index), rates in steps that matter (deciles of a rate whose lowest value, one event
  over the history read, moves down as that history grows would call that move a major shift); text by value;
  missing
  values are a bin of their own, and so are text values the reference never had.  Every share is smoothed
  (``(count + 0.5) / (rows + 0.5 * bins)``) so that an empty bin gives a large, finite index.  The usual reading
  (Siddiqi 2006, "Credit Risk Scorecards"): below 0.1 no real change, 0.1 to 0.25 a moderate shift, above 0.25 a
  major one.
- **outside the training range**: the share of the current rows with a value below the reference's smallest or
  above its largest (numbers), in a bin below or above every bin the reference fills (a scale's), or a value the
  reference never had (text); missing values are not counted.
- **missing**: the share of rows without a value, in each, and its change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "DRIFT_COLUMNS",
    "DriftStopError",
    "QUANTILE_BINS",
    "WARN_PSI",
    "add_counts",
    "describe_drift",
    "drift_counts",
    "drift_reference",
    "drift_status",
    "drift_table",
    "feature_drift",
    "population_stability",
    "scale_drift",
]

QUANTILE_BINS = 10  # bins of a numeric feature: the reference's deciles
WARN_PSI = 0.1  # the usual threshold of a shift worth a look (the default warning of an instance)
NOTABLE_SHARE = 0.05  # a share of the scored rows worth naming in words (outside the range, missing more often)
DRIFT_COLUMNS = [
    "psi",
    "outside_share",
    "below_share",
    "above_share",
    "missing_reference",
    "missing_current",
    "missing_change",
    "mean_reference",
    "mean_current",
]
_SMOOTHING = 0.5  # added to every bin's count (an empty bin must not make the index infinite)


def _is_text(values: pd.Series) -> bool:
    return (
        isinstance(values.dtype, pd.CategoricalDtype) or values.dtype == object or pd.api.types.is_string_dtype(values)
    )


def _shares(counts: np.ndarray) -> np.ndarray:
    return (counts + _SMOOTHING) / (counts.sum() + _SMOOTHING * len(counts))


def population_stability(reference: np.ndarray, current: np.ndarray) -> float:
    """Return the population stability index of two sets of bin counts (same bins), smoothed as the module says.

    Examples
    --------
    >>> round(population_stability(np.array([50.0, 50.0]), np.array([50.0, 50.0])), 6)
    0.0
    """
    expected, actual = _shares(np.asarray(reference, "float64")), _shares(np.asarray(current, "float64"))
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def _numbers(values: pd.Series) -> np.ndarray:
    return values.to_numpy(dtype="float64", na_value=np.nan)


def _bin_reference(values: pd.Series, scale: Sequence[float] | None) -> dict:
    """Return how one training feature is binned (``kind``, ``edges`` or ``values``) and its range."""
    if _is_text(values):
        known = sorted(str(v) for v in values.dropna().unique())
        return {"kind": "text", "values": known}
    present = _numbers(values)
    present = present[~np.isnan(present)]
    if scale is not None:
        return {"kind": "scale", "edges": [float(edge) for edge in scale]}
    edges = np.unique(np.quantile(present, np.linspace(0, 1, QUANTILE_BINS + 1)[1:-1])) if len(present) else []
    found = {"low": float(present.min()), "high": float(present.max())} if len(present) else {}
    return {"kind": "number", "edges": np.asarray(edges, dtype="float64").tolist(), **found}


def _count(binning: dict, values: pd.Series) -> dict:
    """Return the additive counts of ``values`` in one feature's bins (see :func:`drift_counts`)."""
    rows = len(values)
    if binning["kind"] == "text":
        present = values.dropna().astype(str)
        positions = pd.Index(binning["values"]).get_indexer(present)
        found = np.bincount(positions[positions >= 0], minlength=len(binning["values"]))
        unseen = int((positions < 0).sum())
        counts = [*found.tolist(), unseen, rows - len(present)]
        return {"counts": counts, "rows": rows, "missing": rows - len(present), "unseen": unseen}
    numbers = _numbers(values)
    present = numbers[~np.isnan(numbers)]
    edges = np.asarray(binning["edges"], dtype="float64")
    found = np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1)
    counted = {"counts": [*found.tolist(), rows - len(present)], "rows": rows, "missing": rows - len(present)}
    if binning["kind"] == "number":  # a scale's bins tell what lies outside the training rows' (drift_table)
        low, high = binning.get("low", np.inf), binning.get("high", -np.inf)  # no value in training: all outside
        counted.update({"below": int((present < low).sum()), "above": int((present > high).sum())})
    return {**counted, "sum": float(present.sum())}


def drift_reference(training: pd.DataFrame, scales: Mapping[str, Sequence[float]] | None = None) -> dict:
    """Return, per feature, how the training rows are binned and how many fall in each bin (JSON-ready).

    Stored with the model, so that every later scoring, in any number of parts, counts its rows in the same bins
    (:func:`drift_counts`) and is compared with the same reference (:func:`drift_table`).

    Parameters
    ----------
    training : pandas.DataFrame
        The training rows (every training snapshot), one column per feature.
    scales : mapping, optional
        The features whose scale means the same everywhere (probabilities, rates), each with the inner edges of
        its bins (see the module's notes).
    """
    scales = scales or {}
    reference = {}
    for name in training.columns:
        binning = _bin_reference(training[name], scales.get(name))
        reference[name] = {**binning, **_count(binning, training[name])}
    return reference


def drift_counts(reference: dict, current: pd.DataFrame) -> dict:
    """Return the counts of ``current``'s rows in the bins of ``reference``, per feature (parts: :func:`add_counts`).

    Raises
    ------
    ValueError
        When ``current`` lacks a feature of the reference.
    """
    missing = [name for name in reference if name not in current.columns]
    if missing:
        raise ValueError(f"the scored rows lack features the training rows have: {', '.join(missing)}")
    return {name: _count(binning, current[name]) for name, binning in reference.items()}


def add_counts(parts: Sequence[dict]) -> dict:
    """Return the counts of several parts of one scoring (each from :func:`drift_counts`) as those of the whole."""
    total: dict = {}
    for part in parts:
        for name, counts in part.items():
            if name not in total:
                total[name] = {key: list(value) if key == "counts" else value for key, value in counts.items()}
                continue
            into = total[name]
            into["counts"] = [a + b for a, b in zip(into["counts"], counts["counts"], strict=True)]
            for key, value in counts.items():
                if key != "counts":
                    into[key] += value
    return total


def drift_table(reference: dict, counts: dict) -> pd.DataFrame:
    """Return, per feature of ``reference``, how far the counted rows lie from the training rows.

    Returns
    -------
    pandas.DataFrame
        Indexed by feature, in the reference's order: :data:`DRIFT_COLUMNS` (shares from 0 to 1; ``below_share``
        and ``above_share`` split ``outside_share`` for numbers, ``mean_reference`` and ``mean_current`` are the
        means of the present values, missing for text).
    """
    rows = []
    for name, before in reference.items():
        now = counts[name]
        present = now["rows"] - now["missing"]
        below, above = now.get("below", 0), now.get("above", 0)
        if before["kind"] == "scale":  # outside: in bins below or above every bin the training rows fill
            filled = np.flatnonzero(np.asarray(before["counts"][:-1]))
            inner = np.asarray(now["counts"][:-1])
            below = int(inner[: filled[0]].sum()) if len(filled) else int(inner.sum())
            above = int(inner[filled[-1] + 1 :].sum()) if len(filled) else 0
        outside = now["unseen"] if before["kind"] == "text" else below + above
        present_before = before["rows"] - before["missing"]
        rows.append(
            {
                "psi": population_stability(np.asarray(before["counts"]), np.asarray(now["counts"])),
                "outside_share": outside / present if present else 0.0,
                "below_share": below / present if present else 0.0,
                "above_share": above / present if present else 0.0,
                "missing_reference": before["missing"] / before["rows"] if before["rows"] else 0.0,
                "missing_current": now["missing"] / now["rows"] if now["rows"] else 0.0,
                "mean_reference": before["sum"] / present_before if "sum" in before and present_before else np.nan,
                "mean_current": now["sum"] / present if "sum" in now and present else np.nan,
            }
        )
    table = pd.DataFrame(rows, index=pd.Index(list(reference), name="feature"))
    table["missing_change"] = table["missing_current"] - table["missing_reference"]
    return table[DRIFT_COLUMNS]


def feature_drift(
    reference: pd.DataFrame, current: pd.DataFrame, scales: Mapping[str, Sequence[float]] | None = None
) -> pd.DataFrame:
    """Return, per feature of ``reference``, how far ``current`` lies from it (:func:`drift_table` of the two frames).

    Parameters
    ----------
    reference : pandas.DataFrame
        The training rows (every training snapshot), one column per feature.
    current : pandas.DataFrame
        The rows scored now, with the same columns.
    scales : mapping, optional
        The features binned on a scale of their own, with its inner edges (see :func:`drift_reference`).
    """
    binned = drift_reference(reference, scales)
    return drift_table(binned, drift_counts(binned, current))


def scale_drift(
    reference: Iterable[pd.DataFrame], current: Iterable[pd.DataFrame], scales: Mapping[str, Sequence[float]]
) -> pd.DataFrame:
    """Return :func:`feature_drift` of features binned on scales of their own, both sides read a frame at a time.

    A scale's bins do not depend on the rows, so each side's counts add up over its frames (:func:`add_counts`):
    the same table as the frames put together give, one frame held at a time.

    Parameters
    ----------
    reference, current : iterable of pandas.DataFrame
        Each side's rows in parts (a file's row groups, say), with a column per feature of ``scales``.
    scales : mapping
        Feature name to the inner edges of its scale.
    """
    binning = {name: {"kind": "scale", "edges": [float(edge) for edge in edges]} for name, edges in scales.items()}
    nothing = pd.DataFrame({name: pd.Series(dtype="float64") for name in binning})

    def counted(parts: Iterable[pd.DataFrame]) -> dict:
        return add_counts([drift_counts(binning, nothing), *(drift_counts(binning, part) for part in parts)])

    before = counted(reference)
    return drift_table({name: {**binning[name], **before[name]} for name in binning}, counted(current))


class DriftStopError(ValueError):
    """The profiles to score lie too far from the training rows (``monitoring.drift_stop``): the run stops."""


def drift_status(table: pd.DataFrame, warn: float, stop: float | None = None) -> str:
    """Return ``ok``, ``warn`` (some feature's index at or above ``warn``) or ``stop`` (at or above ``stop``)."""
    largest = float(table["psi"].max()) if len(table) else 0.0
    if stop is not None and largest >= stop:
        return "stop"
    return "warn" if largest >= warn else "ok"


def _share(value: float) -> str:
    return f"{value:.0%}" if value >= 0.01 else "under 1%"


def _how(row: pd.Series) -> str:
    """Return in words how one feature moved (what stands out most), with its stability index."""
    if row["above_share"] >= NOTABLE_SHARE and row["above_share"] >= row["below_share"]:
        how = f"{_share(row['above_share'])} of the scored values lie above anything in training"
    elif row["below_share"] >= NOTABLE_SHARE:
        how = f"{_share(row['below_share'])} of the scored values lie below anything in training"
    elif row["outside_share"] >= NOTABLE_SHARE:  # text values training never had
        how = f"{_share(row['outside_share'])} of the scored values never occurred in training"
    elif abs(row["missing_change"]) >= NOTABLE_SHARE:
        now, before = _share(row["missing_current"]), _share(row["missing_reference"])
        how = f"missing for {now} of the scored profiles, {before} in training"
    elif np.isfinite(row["mean_reference"]) and np.isfinite(row["mean_current"]):
        way = "up" if row["mean_current"] > row["mean_reference"] else "down"
        how = f"the values moved {way} (mean {row['mean_current']:.3g}, {row['mean_reference']:.3g} in training)"
    else:
        how = "the mix of values changed"
    return f"{how} (stability index {row['psi']:.2f})"


def describe_drift(table: pd.DataFrame, labels: Mapping[str, str] | None = None, top: int = 3) -> list[str]:
    """Return, for the ``top`` features that moved most (highest index first), a sentence saying how.

    ``labels`` gives a feature's words ("average purchase worth N"); the name is used without them.
    """
    labels = labels or {}
    moved = table.sort_values("psi", ascending=False, kind="stable").head(top)
    return [
        f"{labels[name]} ({name}): {_how(row)}" if name in labels else f"{name}: {_how(row)}"
        for name, row in moved.iterrows()
    ]
