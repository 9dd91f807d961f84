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

from customer_ai.conditions import condition_mask, patterns_mask, where_mask
from customer_ai.saved_audiences import AudienceCut
from customer_ai.spec import (
    DEFAULT_SEGMENTS,
    Condition,
    FactorOrigin,
    InstanceSpec,
    SegmentCondition,
    factor_origin,
    feature_names,
    feature_slug,
    nearest_feature_names,
)
from customer_ai.store.base import OPTIONAL_SCORE_COLUMNS

__all__ = [
    "FLAT_FACTOR_FIELDS",
    "FORMULA_STARTS",
    "data_dependent_factors",
    "export_frame",
    "factor_problems",
    "flat_factors",
    "without_unpredicted",
    "neutralise_formulas",
    "rule_mask",
    "segment_members",
    "segment_sizes",
]

# the flat columns of one factor: factor_<i>_<suffix>, from the factor's key
FLAT_FACTOR_FIELDS = {
    "name": "feature",
    "text": "description",
    "contribution": "contribution",
    "importance": "importance",
    "effect": "effect",
}
# a spreadsheet takes a cell starting with one of these for a formula (OWASP, "CSV Injection")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


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


def segment_members(scores: pd.DataFrame, spec: InstanceSpec, audiences: Sequence[AudienceCut] = ()) -> pd.DataFrame:
    """Return the membership of every segment of a run: the default ones (by bucket), the instance's, its audiences.

    Parameters
    ----------
    scores : pandas.DataFrame
        The run's scores, as :func:`rule_mask` takes them.
    spec : InstanceSpec
        The instance, whose ``segments`` are evaluated in their order.
    audiences : sequence of AudienceCut
        The instance's saved audiences cut against this run (:func:`customer_ai.saved_audiences.resolve_cuts`),
        each a segment of its name, after the instance's.

    Returns
    -------
    pandas.DataFrame
        Columns ``segment, profile_id`` (text): ``low``, ``medium``, ``high``, the named segments, then the saved
        audiences; within a segment, profiles by probability descending, then profile id.  A segment nobody matches
        has no row.
    """
    ranked = scores.assign(profile_id=scores["profile_id"].astype(str))
    ranked = ranked.sort_values(["probability", "profile_id"], ascending=[False, True], kind="stable")
    ranked = ranked.reset_index(drop=True)
    ids = ranked["profile_id"].to_numpy(dtype=object)
    masks = [(name, (ranked["bucket"] == name).to_numpy(dtype=bool)) for name in DEFAULT_SEGMENTS]
    factors = _factor_table(ranked) if any(c.factor for s in spec.segments for c in s.where) else None
    masks += [(segment.name, rule_mask(ranked, segment.where, factors)) for segment in spec.segments]
    masks += [(cut.name, cut.mask(ranked)) for cut in audiences]
    names = np.concatenate([np.full(int(mask.sum()), name, dtype=object) for name, mask in masks])
    members = np.concatenate([ids[mask] for _, mask in masks])
    return pd.DataFrame({"segment": pd.Series(names, dtype="str"), "profile_id": pd.Series(members, dtype="str")})


def segment_sizes(members: pd.DataFrame, spec: InstanceSpec, audiences: Sequence[str] = ()) -> dict[str, int]:
    """Return the number of members of every segment of ``spec`` (default ones first), then of ``audiences``.

    Zero for a segment or audience nobody matched.
    """
    counts = members["segment"].value_counts()
    names = (*DEFAULT_SEGMENTS, *(s.name for s in spec.segments), *audiences)
    return {name: int(counts.get(name, 0)) for name in names}


def without_unpredicted(members: pd.DataFrame) -> pd.DataFrame:
    """Return a run's scored rows without the optional columns it did not fill (a goal without a value or timing).

    The store gives every run's rows ``expected_value``, ``days_to_next`` and ``next_by``, empty where the run did
    not predict them: an export leaves such a column out rather than writing it empty.
    """
    return members.drop(columns=[c for c in OPTIONAL_SCORE_COLUMNS if c in members and members[c].isna().all()])


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


def neutralise_formulas(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Return ``frame`` with every text cell a spreadsheet would run as a formula made plain text, and their count.

    A text cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return (:data:`FORMULA_STARTS`) gets
    a ``'`` in front, as OWASP's guidance on CSV injection advises: a spreadsheet then shows the text instead of
    running it.  Number columns are left as they are, so a negative contribution stays a number.

    Parameters
    ----------
    frame : pandas.DataFrame
        A flat frame about to be written as CSV for people (see :func:`flat_factors`).

    Returns
    -------
    tuple of (pandas.DataFrame, int)
        A copy of ``frame`` with those cells prefixed, and how many cells were.
    """
    out = frame.copy()
    changed = 0
    for column in out.columns:
        values = out[column]
        if pd.api.types.is_string_dtype(values.dtype):
            hostile = values.str.startswith(FORMULA_STARTS).fillna(False).to_numpy(dtype=bool)
        elif values.dtype == object:  # text among other things
            hostile = np.array([isinstance(v, str) and v.startswith(FORMULA_STARTS) for v in values], dtype=bool)
        else:
            continue
        if hostile.any():
            out[column] = values.where(~hostile, values.map(lambda v: f"'{v}"))
            changed += int(hostile.sum())
    return out, changed


def export_frame(members: pd.DataFrame, factors: int, *, spreadsheet: bool) -> tuple[pd.DataFrame, int]:
    """Return a segment's members as ``segment export`` writes them, and how many text cells were neutralised.

    The optional columns the run did not fill are left out (:func:`without_unpredicted`), the factors flattened
    (:func:`flat_factors`: at least ``factors`` per profile, more when a profile has more) and, for a file a person
    opens in a spreadsheet (``spreadsheet``: a CSV not asked for raw), formulas neutralised
    (:func:`neutralise_formulas`); the count is 0 otherwise.
    """
    members = without_unpredicted(members)
    flat = flat_factors(members, max([factors, *(len(f) for f in members["factors"])]))
    return neutralise_formulas(flat) if spreadsheet else (flat, 0)


# --- segment factors that depend on the events (customer-ai check) ------------------------------------------------


def data_dependent_factors(spec: InstanceSpec) -> list[str]:
    """Return the factors of ``spec``'s segments whose features exist or not depending on the events.

    Features of an event type (built for the most frequent types only), of an extra column (built for 2 to
    :data:`customer_ai.features.MAX_CATEGORIES` distinct values), value sums and means (built when the events
    carry values), the repeat-buying features (built when somebody repeated a goal event) and windows of a lookback
    shortened to a short history.  The others are known from the instance file alone and checked when it is read.
    """
    names = []
    for segment in spec.segments:
        for cond in segment.where:
            origin = factor_origin(spec, cond.factor) if cond.factor else None
            if origin and (origin.kind in ("event_type", "column", "repeat_model") or origin.valued or origin.adapted):
                names.append(cond.factor)
    return list(dict.fromkeys(names))


def factor_problems(spec: InstanceSpec, events: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Return what the events say of the factors ``spec``'s segments test: (errors, warnings), a line each.

    An error is a factor no run over these events can build (an event type or a column they do not have, a value
    sum of events without values, the repeat-buying features when nobody repeated a goal event): its segment
    would stay empty.  A warning is a factor that a run builds only in some cases (an event type outside the most
    frequent ones, a window of a shortened lookback).  Each line starts with where the condition is.

    Parameters
    ----------
    spec : InstanceSpec
        The instance, already checked (every factor has a :func:`customer_ai.spec.factor_origin`).
    events : pandas.DataFrame
        Its canonical events.
    """
    facts = _EventFacts(spec, events)
    errors: list[str] = []
    warnings: list[str] = []
    for i, segment in enumerate(spec.segments):
        for j, cond in enumerate(segment.where):
            origin = factor_origin(spec, cond.factor) if cond.factor else None
            if origin is None:
                continue
            where = f"segments[{i}].where[{j}]: segment {segment.name!r} tests factor {cond.factor!r}"
            error, warning = facts.problem(cond.factor, origin)
            errors += [f"{where}, {error}"] if error else []
            warnings += [f"{where}: {warning}"] if warning else []
    return errors, warnings


class _EventFacts:
    """What decides whether a run over ``events`` builds a feature: event types by frequency, text columns."""

    def __init__(self, spec: InstanceSpec, events: pd.DataFrame) -> None:
        from customer_ai.features import MAX_CATEGORIES  # noqa: PLC0415 - only check needs it (and scipy)

        self.spec, self.events, self.most = spec, events, MAX_CATEGORIES
        counts = events["event_type"].value_counts().sort_index().sort_values(ascending=False, kind="stable")
        self.types: dict[str, tuple[str, int]] = {}  # slug -> (event type, rank): one type per slug, as features
        for event_type in counts.index:
            self.types.setdefault(feature_slug(str(event_type)), (str(event_type), len(self.types) + 1))
        self.columns = {
            feature_slug(str(c)): (str(c), int(events[c].dropna().astype(str).nunique()))
            for c in events.columns
            if c not in ("profile_id", "timestamp", "event_type", "value") and _is_text(events[c])
        }

    def nearest(self, factor: str) -> str:
        names = feature_names(self.spec, [t for t, _ in self.types.values()], [c for c, _ in self.columns.values()])
        return nearest_feature_names(factor, names)

    def problem(self, factor: str, origin: FactorOrigin) -> tuple[str | None, str | None]:
        """Return (why no run builds ``factor``, when a run builds it only in some cases), each None if not so."""
        error = warning = None
        if origin.kind == "event_type" and origin.source not in self.types:
            shown = ", ".join(list(self.types)[:10]) + (", ..." if len(self.types) > 10 else "")
            error = (
                f"a feature of event type {origin.source!r}, but no event type of the events is called so (in lower "
                f"case, with _ for other characters, theirs are: {shown or 'none'}); {self.nearest(factor)}"
            )
        elif origin.kind == "column":
            error = self._column_problem(factor, origin.source)
        elif origin.kind == "repeat_model" and not self._repeated():
            error = (
                "but no profile of the events has goal events on two different days: the repeat-buying features are "
                "never built"
            )
        elif origin.valued and not self._valued(origin):
            error = f"but no event of {origin.source!r} carries a value: its value sum and mean are never built"
        if error is None and origin.kind == "event_type":
            event_type, rank = self.types[origin.source]
            limit = self.spec.training.max_event_types
            if rank > limit:
                warning = (
                    f"event type {event_type!r} is number {rank} by frequency in the events, and a run builds the "
                    f"features of the {limit} most frequent (training.max_event_types): the segment stays empty unless "
                    "it is among them before the run's oldest training snapshot"
                )
        if error is None and origin.adapted:
            warning = (
                f"a run has this feature only when a short history shortens the feature lookback (eligibility."
                f"lookback_days: {self.spec.eligibility.lookback_days}) to its number of days"
            )
        return error, warning

    def _column_problem(self, factor: str, source: str) -> str | None:
        if source not in self.columns:
            shown = ", ".join(c for c, _ in self.columns.values()) or "none"
            return (
                f"a feature of an extra text column {source!r} of the events, which they do not have (their extra "
                f"text columns: {shown}); {self.nearest(factor)}"
            )
        column, distinct = self.columns[source]
        if not 1 < distinct <= self.most:
            return (
                f"but column {column!r} has {distinct:,} distinct values: only a column with 2 to {self.most} "
                "becomes a feature"
            )
        return None

    def _repeated(self) -> bool:
        goal = self.events.loc[patterns_mask(self.events, self.spec.goal.events), ["profile_id", "timestamp"]]
        days = goal.assign(timestamp=goal["timestamp"].dt.floor("D")).drop_duplicates()
        return bool(days["profile_id"].duplicated().any())

    def _valued(self, origin: FactorOrigin) -> bool:
        if origin.kind == "custom_event":
            where = next(c.where for c in self.spec.custom_events if c.name == origin.source)
            rows = where_mask(self.events, where)
        elif origin.kind == "event_type":
            rows = (self.events["event_type"] == self.types[origin.source][0]).to_numpy(dtype=bool)
        else:
            return True
        return bool(self.events.loc[rows, "value"].notna().any())


def _is_text(column: pd.Series) -> bool:
    """Whether a run takes ``column`` for a text column (see :func:`customer_ai.features.plan_features`)."""
    return (
        pd.api.types.is_string_dtype(column.dtype)
        or isinstance(column.dtype, pd.CategoricalDtype)
        or column.dtype == object
    )
