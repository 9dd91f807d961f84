"""Segments: named groups of a run's scored profiles, by their scores and their influential factors.

Every run has one default segment per bucket (``low``, ``medium``, ``high``); the instance file adds named ones
(``segments``, see :class:`customer_ai.spec.Segment`), each a list of conditions that must all hold.  A
condition on a score column is the condition language of the events (:mod:`customer_ai.conditions`) applied to
the scores; a condition on a factor tests the signed contribution of that feature among the profile's stored top
factors, and fails for a profile whose top factors do not include it.  Every rule is a vectorised mask over the
scores: no user text is ever evaluated, and the store receives the membership as parameters only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from customer_ai.conditions import condition_mask
from customer_ai.spec import DEFAULT_SEGMENTS, Condition, InstanceSpec, SegmentCondition

__all__ = ["FLAT_FACTOR_FIELDS", "flat_factors", "rule_mask", "segment_members", "segment_sizes"]

# the flat columns of one factor: factor_<i>_<suffix>, from the factor's key
FLAT_FACTOR_FIELDS = {
    "name": "feature",
    "text": "description",
    "contribution": "contribution",
    "importance": "importance",
    "effect": "effect",
}


def _factor_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Return one row per (profile, stored factor): ``row`` (position in ``scores``), ``feature``, ``contribution``."""
    lists = [f if isinstance(f, list) else [] for f in scores["factors"]]
    flat = [f if isinstance(f, dict) else {} for factors in lists for f in factors]
    return pd.DataFrame(
        {
            "row": np.repeat(np.arange(len(lists)), [len(f) for f in lists]),
            "feature": pd.Series([f.get("feature") for f in flat], dtype=object),
            "contribution": pd.to_numeric(pd.Series([f.get("contribution") for f in flat], dtype=object), "coerce"),
        }
    )


def _factor_mask(factors: pd.DataFrame, cond: SegmentCondition, n: int) -> np.ndarray:
    hits = factors[factors["feature"] == cond.factor]
    mask = np.zeros(n, dtype=bool)
    if cond.op == "exists":
        mask[hits["row"].to_numpy()] = True
        return mask if cond.value in (None, True) else ~mask
    compared = condition_mask(hits, Condition(field="contribution", op=cond.op, value=cond.value))
    mask[hits["row"].to_numpy()[compared]] = True
    return mask


def rule_mask(
    scores: pd.DataFrame, where: Sequence[SegmentCondition], factors: pd.DataFrame | None = None
) -> np.ndarray:
    """Return which scored profiles satisfy every condition in ``where``.

    Parameters
    ----------
    scores : pandas.DataFrame
        A run's scores: ``profile_id, probability, score, percentile, bucket`` and ``factors`` (lists of dicts with
        ``feature`` and ``contribution``).
    where : sequence of SegmentCondition
        The conditions, all of which must hold.
    factors : pandas.DataFrame, optional
        The factors of ``scores`` as one row per (profile, factor), when already built for another rule.

    Returns
    -------
    numpy.ndarray
        Boolean, one entry per row of ``scores``.
    """
    mask = np.ones(len(scores), dtype=bool)
    for cond in where:
        if cond.factor is not None:
            factors = _factor_table(scores) if factors is None else factors
            mask &= _factor_mask(factors, cond, len(scores))
        else:
            mask &= condition_mask(scores, Condition(field=cond.field, op=cond.op, value=cond.value))
    return mask


def segment_members(scores: pd.DataFrame, spec: InstanceSpec) -> pd.DataFrame:
    """Return the membership of every segment of a run: the default ones (by bucket), then the instance's.

    Parameters
    ----------
    scores : pandas.DataFrame
        The run's scores, as :func:`rule_mask` takes them.
    spec : InstanceSpec
        The instance, whose ``segments`` are evaluated in their order.

    Returns
    -------
    pandas.DataFrame
        Columns ``segment, profile_id`` (text): ``low``, ``medium``, ``high``, then the named segments; within a
        segment, profiles by probability descending, then profile id.  A segment nobody matches has no row.
    """
    ranked = scores.assign(profile_id=scores["profile_id"].astype(str))
    ranked = ranked.sort_values(["probability", "profile_id"], ascending=[False, True], kind="stable")
    ranked = ranked.reset_index(drop=True)
    ids = ranked["profile_id"].to_numpy(dtype=object)
    masks = [(name, (ranked["bucket"] == name).to_numpy(dtype=bool)) for name in DEFAULT_SEGMENTS]
    factors = _factor_table(ranked) if any(c.factor for s in spec.segments for c in s.where) else None
    masks += [(segment.name, rule_mask(ranked, segment.where, factors)) for segment in spec.segments]
    names = np.concatenate([np.full(int(mask.sum()), name, dtype=object) for name, mask in masks])
    members = np.concatenate([ids[mask] for _, mask in masks])
    return pd.DataFrame({"segment": pd.Series(names, dtype="str"), "profile_id": pd.Series(members, dtype="str")})


def segment_sizes(members: pd.DataFrame, spec: InstanceSpec) -> dict[str, int]:
    """Return the number of members of every segment of ``spec`` (default ones first), zero for empty ones."""
    counts = members["segment"].value_counts()
    return {name: int(counts.get(name, 0)) for name in (*DEFAULT_SEGMENTS, *(s.name for s in spec.segments))}


def flat_factors(scores: pd.DataFrame, k: int) -> pd.DataFrame:
    """Return ``scores`` with its ``factors`` column replaced by flat columns a spreadsheet opens.

    Parameters
    ----------
    scores : pandas.DataFrame
        Scores with a ``factors`` column of lists of dicts (``feature``, ``description``, ``contribution``,
        ``importance``, ``effect``).
    k : int
        Factors to flatten per profile.

    Returns
    -------
    pandas.DataFrame
        In place of ``factors``: ``factor_1_name`` (the feature), ``factor_1_text`` (its description),
        ``factor_1_contribution`` (float), ``factor_1_importance``, ``factor_1_effect`` (in words), ... up to
        ``factor_k_*``; empty (missing) where a profile has fewer factors.
    """
    if k < 0:
        raise ValueError(f"k must be 0 or more, not {k}")
    lists = [f if isinstance(f, list) else [] for f in scores["factors"]]
    flat = {}
    for i in range(k):
        nth = [f[i] if len(f) > i and isinstance(f[i], dict) else {} for f in lists]
        for suffix, key in FLAT_FACTOR_FIELDS.items():
            values = pd.Series([factor.get(key) for factor in nth], index=scores.index, dtype=object)
            if suffix == "contribution":
                flat[f"factor_{i + 1}_{suffix}"] = pd.to_numeric(values, errors="coerce").astype("float64")
            else:
                flat[f"factor_{i + 1}_{suffix}"] = values.map(lambda v: None if v is None else str(v)).astype("str")
    position = list(scores.columns).index("factors")
    before, after = scores.iloc[:, :position], scores.iloc[:, position + 1 :]
    return pd.concat([before, pd.DataFrame(flat, index=scores.index), after], axis=1)
