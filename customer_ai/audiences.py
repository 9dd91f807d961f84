"""Audiences cut from a run's scores: the size, expected conversions, rate and profit of any cut.

A cut keeps the profiles at or above a **score** (0-100), at or above a **percentile** (1-100), or the **top N** by
probability.  The probabilities are calibrated, so the expected number of profiles in an audience that reach the
goal is the sum of their probabilities, and its expected rate that sum over its size.  With a value per conversion
``V`` (or each profile's expected value, for an instance that predicts one) and a cost per contact ``C``, the
expected profit of an audience of ``N`` profiles is ``V x expected conversions - C x N`` (``sum of expected values -
C x N``); the best cut of a kind is the one of highest expected profit.

The run's scores are read a row group at a time and tallied (:class:`AudienceTable`): by score and by percentile
(exact for those cuts), and by probability in :data:`PROBABILITY_BINS` equal bins for the top N, where the profiles
of the bin the cut falls in are counted at its mean (off by less than 1/20,000 per profile cut through).  Memory
follows the number of bins, never the run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from customer_ai.files import read_row_groups

__all__ = [
    "CUT_KINDS",
    "PROBABILITY_BINS",
    "AudienceTable",
    "audience_table",
    "best_cut",
    "cut_at",
    "cut_curve",
    "probability_bins",
    "scores_file_table",
]

CUT_KINDS = ("score", "percentile", "top")
PROBABILITY_BINS = 10_000
_SUMS = ("profiles", "conversions", "value")


@dataclass(frozen=True)
class AudienceTable:
    """A run's profiles tallied for cutting, highest first.

    Attributes
    ----------
    by_score, by_percentile, by_probability : pandas.DataFrame
        One row per score (100 down to 0), per percentile (100 down to 1) and per probability bin (the highest
        first; ``bin`` ``k`` holds ``[k, k + 1) / PROBABILITY_BINS``, the last one 1 too): ``profiles``,
        ``conversions`` (their probabilities' sum) and ``value`` (their expected values' sum; 0 without).
    valued : bool
        Whether the scores had an expected value.
    """

    by_score: pd.DataFrame
    by_percentile: pd.DataFrame
    by_probability: pd.DataFrame
    valued: bool

    @property
    def profiles(self) -> int:
        """Return how many profiles were tallied."""
        return int(self.by_score["profiles"].sum())


def probability_bins(probability: pd.Series | np.ndarray) -> np.ndarray:
    """Return the bin of each probability: ``k`` holds ``[k, k + 1) / PROBABILITY_BINS``, the last one 1 too."""
    values = np.asarray(probability, dtype="float64")
    return np.clip(np.floor(values * PROBABILITY_BINS), 0, PROBABILITY_BINS - 1).astype("int64")


def _tally(keys: np.ndarray, size: int, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: np.bincount(keys, weights=values, minlength=size) for name, values in weights.items()}


def audience_table(parts: Iterable[pd.DataFrame]) -> AudienceTable:
    """Tally a run's scores for cutting.

    Parameters
    ----------
    parts : iterable of pandas.DataFrame
        The run's scores in parts (row groups): ``probability``, ``score``, ``percentile`` and, where the instance
        predicts it, ``expected_value`` (a missing expected value counts as 0).

    Returns
    -------
    AudienceTable
    """
    sizes = {"score": 101, "percentile": 101, "bin": PROBABILITY_BINS}
    totals = {key: dict.fromkeys(_SUMS, np.zeros(size)) for key, size in sizes.items()}
    valued = False
    for part in parts:
        probability = part["probability"].to_numpy(dtype="float64")
        valued = valued or "expected_value" in part.columns
        worth = part["expected_value"].to_numpy(dtype="float64") if "expected_value" in part.columns else None
        weights = {
            "profiles": np.ones(len(part)),
            "conversions": probability,
            "value": np.zeros(len(part)) if worth is None else np.nan_to_num(worth),
        }
        keys = {
            "score": part["score"].to_numpy(dtype="int64"),
            "percentile": part["percentile"].to_numpy(dtype="int64"),
            "bin": probability_bins(probability),
        }
        for key, size in sizes.items():
            added = _tally(keys[key], size, weights)
            totals[key] = {name: totals[key][name] + added[name] for name in _SUMS}

    def frame(key: str, name: str, first: int) -> pd.DataFrame:
        table = pd.DataFrame(totals[key]).iloc[first:].iloc[::-1]  # highest first
        table["profiles"] = table["profiles"].round().astype("int64")
        return table.rename_axis(name).reset_index()

    return AudienceTable(
        by_score=frame("score", "score", 0),
        by_percentile=frame("percentile", "percentile", 1),
        by_probability=frame("bin", "bin", 0),
        valued=valued,
    )


def scores_file_table(path: Path) -> AudienceTable:
    """Tally a run's ``scores.parquet`` for cutting, a row group at a time (with its expected values, if any).

    Raises
    ------
    OSError
        When the file cannot be read.
    """
    names = set(pq.read_schema(path).names)
    columns = ["probability", "score", "percentile", *(["expected_value"] if "expected_value" in names else [])]
    return audience_table(read_row_groups(path, columns))


def cut_curve(
    table: AudienceTable,
    kind: str,
    *,
    value_per_conversion: float | None = None,
    cost_per_contact: float = 0.0,
) -> pd.DataFrame:
    """Return every cut of ``kind`` with its audience and, given a value, its expected profit.

    Parameters
    ----------
    table : AudienceTable
        The run's tally.
    kind : {"score", "percentile", "top"}
        ``score``: a row per score 100 .. 0 (at or above it); ``percentile``: per percentile 100 .. 1; ``top``: a row
        per probability bin that holds profiles, its audience the profiles down to that bin's lowest (``at`` is how
        many).
    value_per_conversion : float, optional
        What a conversion is worth.  Without it, a valued table's expected values make the profit (when it has
        them); a table without either has no profit column.
    cost_per_contact : float
        What contacting a profile costs.

    Returns
    -------
    pandas.DataFrame
        ``at`` (the score, the percentile or N), ``size``, ``expected_conversions``, ``expected_rate`` (NaN for an
        empty audience), ``expected_value`` (the sum of the audience's expected values, with a valued table) and
        ``expected_profit`` (when a value is known).

    Raises
    ------
    ValueError
        For an unknown kind, or a negative value or cost.
    """
    if kind not in CUT_KINDS:
        raise ValueError(f"a cut is by {', '.join(CUT_KINDS[:-1])} or {CUT_KINDS[-1]}, not {kind!r}")
    for name, amount in (("value_per_conversion", value_per_conversion), ("cost_per_contact", cost_per_contact)):
        if amount is not None and not (np.isfinite(amount) and amount >= 0):
            raise ValueError(f"{name} must be a number at or above 0, not {amount!r}")
    rows = {"score": table.by_score, "percentile": table.by_percentile, "top": table.by_probability}[kind]
    size = rows["profiles"].cumsum().to_numpy()
    conversions = rows["conversions"].cumsum().to_numpy()
    out = pd.DataFrame(
        {
            "at": size if kind == "top" else rows[kind].to_numpy(),
            "size": size,
            "expected_conversions": conversions,
            "expected_rate": np.divide(conversions, size, out=np.full(len(size), np.nan), where=size > 0),
        }
    )
    if table.valued:
        out["expected_value"] = rows["value"].cumsum().to_numpy()
    if value_per_conversion is not None:
        out["expected_profit"] = value_per_conversion * conversions - cost_per_contact * size
    elif table.valued:
        out["expected_profit"] = out["expected_value"] - cost_per_contact * size
    if kind == "top":
        out = out.loc[rows["profiles"].to_numpy() > 0].reset_index(drop=True)
    return out


def best_cut(curve: pd.DataFrame) -> pd.Series | None:
    """Return the row of :func:`cut_curve` of highest expected profit (the smaller audience of a tie), else None.

    None when the curve has no profit (no value known) or no audience earns more than nothing: an empty audience
    earns 0.
    """
    if "expected_profit" not in curve.columns or not len(curve):
        return None
    profit = curve["expected_profit"].to_numpy()
    best = int(np.argmax(profit))  # the first of a tie: the smallest audience, the rows growing
    return curve.iloc[best] if profit[best] > 0 else None


def cut_at(table: AudienceTable, kind: str, at: int, **money: float | None) -> dict:
    """Return the audience of one cut: its row of :func:`cut_curve` (``money``: its value and cost).

    ``at`` is a score (0-100), a percentile (1-100) or N (at least 0) for ``top``; a top N that cuts through a
    probability bin counts that bin's profiles at its mean.

    Raises
    ------
    ValueError
        For an unknown kind, or ``at`` out of its range.
    """
    low, high = {"score": (0, 100), "percentile": (1, 100), "top": (0, table.profiles)}.get(kind, (0, 0))
    if kind in CUT_KINDS and not low <= at <= high:
        raise ValueError(f"a cut by {kind} is at {low} to {high}, not {at!r}")
    curve = cut_curve(table, kind, **money)
    if kind != "top":
        return curve.loc[curve["at"] == at].iloc[0].to_dict()
    rows = table.by_probability.loc[table.by_probability["profiles"] > 0].reset_index(drop=True)
    before = int(np.searchsorted(curve["size"].to_numpy(), at))  # the first bin whose audience reaches N
    if at == 0:
        return {column: (np.nan if column == "expected_rate" else 0.0) for column in curve.columns} | {
            "at": 0,
            "size": 0,
        }
    whole = curve.iloc[before - 1] if before > 0 else None
    taken = at - (int(whole["size"]) if whole is not None else 0)
    share = taken / rows["profiles"].iloc[before]
    out = {}
    for column in curve.columns:
        base = float(whole[column]) if whole is not None else 0.0
        out[column] = base + share * (float(curve.iloc[before][column]) - base)
    out.update(at=at, size=at)
    out["expected_rate"] = out["expected_conversions"] / at
    return out
