"""The condition language: turn ``where`` lists and event patterns into boolean masks over events."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from customer_ai.spec import Condition, EventPattern

__all__ = ["ConditionError", "condition_mask", "patterns_mask", "where_mask"]


class ConditionError(ValueError):
    """A condition that cannot be applied to the events (for example a field the events do not have)."""


def _comparable(column: pd.Series, value: object, cond: Condition) -> object:
    """Convert ``value`` to the column's kind so that ``timestamp gte "2011-01-01"`` compares dates."""
    if pd.api.types.is_datetime64_any_dtype(column.dtype):
        try:
            converted = pd.Timestamp(value)
        except (TypeError, ValueError):
            converted = pd.NaT
        if converted is pd.NaT:
            raise ConditionError(
                f"condition on {cond.field!r} ({cond.op}): {value!r} is not a date (use ISO 8601, e.g. 2011-09-01)"
            )
        return converted.tz_localize("UTC") if converted.tzinfo is None else converted.tz_convert("UTC")
    if pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            try:
                return float(value)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise ConditionError(f"condition on {cond.field!r} compares a numeric column with {value!r}") from None
    elif (
        cond.op in ("eq", "ne", "in", "not_in")
        and _is_text(column)
        and isinstance(value, (int, float))
        and not isinstance(value, bool)
    ):
        # YAML reads `value: 17850` as a number; ids and codes are text in the events
        # int(), not float(): 10**400 has no float but is a plain id
        return str(value) if isinstance(value, int) or not float(value).is_integer() else str(int(value))
    return value


def _is_text(column: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(column.dtype) or column.dtype == object


def condition_mask(events: pd.DataFrame, cond: Condition) -> np.ndarray:
    """Return a boolean array: which events satisfy one condition.

    Missing values never satisfy a comparison (``ne`` and ``not_in`` included); use ``exists`` to test for them.

    Parameters
    ----------
    events : pandas.DataFrame
        Canonical events.
    cond : Condition
        The test.

    Returns
    -------
    numpy.ndarray
        Boolean, one entry per row of ``events``.
    """
    if cond.field not in events.columns:
        raise ConditionError(
            f"condition on field {cond.field!r}: the events have no such column "
            f"(columns: {', '.join(map(str, events.columns))})"
        )
    column = events[cond.field]
    present = column.notna().to_numpy()
    if cond.op == "exists":
        return present if cond.value in (None, True) else ~present
    if cond.op in ("in", "not_in"):
        values = [_comparable(column, v, cond) for v in cond.value]
        hit = column.isin(values).to_numpy()
        return hit & present if cond.op == "in" else ~hit & present
    if cond.op == "contains":
        hit = column.astype("string").str.contains(cond.value, regex=False).fillna(False)
        return hit.to_numpy(dtype=bool)
    value = _comparable(column, cond.value, cond)
    compare = {
        "eq": column.__eq__,
        "ne": column.__ne__,
        "gt": column.__gt__,
        "gte": column.__ge__,
        "lt": column.__lt__,
        "lte": column.__le__,
    }[cond.op]
    try:
        result = compare(value)
    except TypeError as exc:
        raise ConditionError(f"condition on {cond.field!r} ({cond.op} {cond.value!r}): {exc}") from None
    return result.fillna(False).to_numpy(dtype=bool) & present


def where_mask(events: pd.DataFrame, where: Sequence[Condition]) -> np.ndarray:
    """Return which events satisfy every condition in ``where`` (all tests on the same event)."""
    mask = np.ones(len(events), dtype=bool)
    for cond in where:
        mask &= condition_mask(events, cond)
    return mask


def patterns_mask(events: pd.DataFrame, patterns: Sequence[EventPattern]) -> np.ndarray:
    """Return which events match at least one of ``patterns``."""
    mask = np.zeros(len(events), dtype=bool)
    for pattern in patterns:
        mask |= where_mask(events, pattern.where)
    return mask
