"""The condition language: turn ``where`` lists and event patterns into boolean masks over events."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np
import pandas as pd

from customer_ai.spec import Condition, EventPattern, InstanceSpec, pattern_in_words

__all__ = [
    "ConditionError",
    "condition_mask",
    "event_patterns",
    "patterns_mask",
    "rule_problems",
    "unknown_fields",
    "value_field_problems",
    "unlearnable_goal",
    "where_mask",
]


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


def unlearnable_goal(spec: InstanceSpec) -> str:
    """Say what follows when no event matches an instance's goal: every label would be the same."""
    if spec.goal.occurrence == "will_not_occur":
        return "every profile would reach the goal (nobody does these events), so no model can learn it"
    return "nobody can reach the goal, so no model can learn it"


def event_patterns(spec: InstanceSpec) -> dict[str, list[tuple[str, list[Condition]]]]:
    """Return an instance's event patterns by rule (goal, eligibility, exclude, custom), each with its place."""
    return {
        "goal": [(f"goal.events[{i}]", p.where) for i, p in enumerate(spec.goal.events)],
        "eligibility": [(f"eligibility.events[{i}]", p.where) for i, p in enumerate(spec.eligibility.events)],
        "exclude": [(f"eligibility.exclude[{i}]", p.where) for i, p in enumerate(spec.eligibility.exclude)],
        "custom": [(f"custom_events[{i}]", c.where) for i, c in enumerate(spec.custom_events)],
    }


def unknown_fields(spec: InstanceSpec, columns: Sequence[str], source: str = "") -> list[str]:
    """Return, for each condition of an instance's event patterns on a field the events lack, where it is and why.

    ``columns`` are the events' columns (canonical names, as the conditions see them), ``source`` where they were
    read (named in each line).  Empty when every field is there.
    """
    known = list(columns)
    problems = []
    for patterns in event_patterns(spec).values():
        for place, where in patterns:
            for i, cond in enumerate(where):
                if cond.field not in known:
                    problems.append(
                        f"{place}.where[{i}] tests field {cond.field!r}, which the events"
                        f"{f' of {source}' if source else ''} do not have (their columns: {', '.join(map(str, known))})"
                    )
    return problems


def value_field_problems(
    spec: InstanceSpec, columns: Sequence[str], numeric: Collection[str], source: str = ""
) -> list[str]:
    """Return why the events cannot give a valued goal its amounts: ``goal.value.field`` missing or not numeric.

    ``columns`` are the events' columns, ``numeric`` those of them holding numbers, ``source`` where they were read.
    Empty for a goal without a value or when the field is a numeric column.
    """
    if spec.goal.value is None:
        return []
    field = spec.goal.value.field
    where = f"the events{f' of {source}' if source else ''}"
    if field not in columns:
        return [
            f"goal.value.field is {field!r}, which {where} do not have (their columns: {', '.join(map(str, columns))})"
        ]
    if field not in numeric:
        return [f"goal.value.field is {field!r}, which is not a column of numbers in {where}: its amounts are summed"]
    return []


def _rule_problems(
    rule: str, match: str, patterns: list[tuple[str, list[Condition]]], hits: dict[str, int], consequence: str
) -> tuple[list[str], list[str]]:
    """Return the errors and warnings of one rule (the goal or eligibility) whose patterns' ``hits`` are known."""
    unmatched = [(place, where) for place, where in patterns if hits[place] == 0]
    if not unmatched:
        return [], []
    lines = [f"no event matches {place} ({pattern_in_words(where)})" for place, where in unmatched]
    if match == "all" or len(unmatched) == len(patterns):
        why = "the rule needs every one of its patterns (match: all)" if match == "all" and len(patterns) > 1 else ""
        return [f"{'; '.join(lines)}{': ' + why if why else ''}: {consequence}"], []
    return [], [f"{line}: the {rule} is met through its other patterns only" for line in lines]


def rule_problems(spec: InstanceSpec, events: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Return what in an instance's rules no event matches: errors (a rule nobody can meet) and warnings.

    A goal whose patterns match no event can never be reached (or, for ``will_not_occur``, is reached by everyone):
    no model can learn it.  An eligibility rule that matches no event makes nobody eligible.  Both are errors.  A
    pattern of a rule whose other patterns still match (``match: any``), an exclusion and a custom event that match
    nothing are warnings.  Said in words, with each pattern's place in the instance file.

    Raises
    ------
    ConditionError
        When a condition cannot be applied to the events (a field they do not have, say).
    """

    def hits(patterns: list[tuple[str, list[Condition]]]) -> dict[str, int]:
        counted = {}
        for place, where in patterns:
            try:
                counted[place] = int(where_mask(events, where).sum())
            except ConditionError as exc:
                raise ConditionError(f"{place}: {exc}") from None
        return counted

    goal, eligibility, exclude, custom = event_patterns(spec).values()
    counted = hits(goal + eligibility + exclude + custom)
    seen = _event_types(events)
    errors, warnings = _rule_problems("goal", spec.goal.match, goal, counted, unlearnable_goal(spec) + seen)
    more_errors, more_warnings = _rule_problems(
        "eligibility rule", spec.eligibility.match, eligibility, counted, f"no profile is eligible to be scored{seen}"
    )
    errors += more_errors
    warnings += more_warnings
    warnings += [
        f"no event matches {place} ({pattern_in_words(where)}): it excludes nobody"
        for place, where in exclude
        if counted[place] == 0
    ]
    warnings += [
        f"no event matches {place}, {event.name} ({pattern_in_words(where)}): its features are the same for every "
        "profile"
        for (place, where), event in zip(custom, spec.custom_events, strict=True)
        if counted[place] == 0
    ]
    return errors, warnings


def _event_types(events: pd.DataFrame, most: int = 10) -> str:
    """Return ``"; the events' types are a, b"`` (the ``most`` most frequent), or nothing without the column."""
    if "event_type" not in events.columns or not len(events):
        return ""
    counted = events["event_type"].astype(str).value_counts()
    types = sorted(counted.index, key=lambda name: (-counted[name], name))  # the most frequent first, ties by name
    shown = ", ".join(types[:most]) + (f" and {len(types) - most:,} more" if len(types) > most else "")
    return f"; the events' types are {shown}"
