"""Instance spec: the YAML a user writes, loaded and checked with errors that name the field.

An instance describes one propensity model: where the events are, the goal, who is eligible, which extra
features to build, how to train and what to output.  :func:`load_spec` is the only entry point that reads
a file; everything else takes an :class:`InstanceSpec`.
"""

from __future__ import annotations

import codecs
import datetime as dt
import difflib
import hashlib
import json
import math
import os
import re
import sys
import types
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

__all__ = [
    "Condition",
    "DEFAULT_MAX_PROFILES",
    "DEFAULT_SEGMENTS",
    "Eligibility",
    "EventPattern",
    "EventSource",
    "Goal",
    "InstanceSpec",
    "PROPENSITY_OF",
    "OutputSettings",
    "ProfileSource",
    "SEGMENT_FIELDS",
    "Segment",
    "SegmentCondition",
    "MonitoringSettings",
    "ScoringSettings",
    "SpecError",
    "TrainingSettings",
    "load_spec",
    "parse_spec",
]

MAX_PARTITIONS = 256  # scoring partitions: Airflow maps a task per partition
PROPENSITY_OF = {"will_occur": "conversion", "will_not_occur": "churn"}  # the goal's polarity names the score
DEFAULT_SEGMENTS = ("low", "medium", "high")  # one segment per bucket, in every run
DEFAULT_MAX_PROFILES = 100_000  # training.max_profiles: features and LightGBM for at most this many profiles
# the score columns a segment tests; expected_value only where the goal has a value, days_to_next with timing
SEGMENT_FIELDS = ("profile_id", "probability", "score", "percentile", "bucket", "expected_value", "days_to_next")
MAX_FILE_BYTES = 1_000_000  # an instance file is a few kilobytes: a larger one is the wrong file (or a hostile one)
MAX_TEXT_CHARACTERS = 10_000  # the longest text value (a description, an id in a rule)
MAX_DEPTH = 32  # levels of nesting: the deepest setting (segments[0].where[0].value[0]) is 6 levels down
MAX_EXPANDED_VALUES = 1_000_000  # values of the document with its aliases expanded; a 1 MB file holds fewer
_SINGLE_VALUES = "single values (text, numbers, dates, true or false)"

Operator = Literal["eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "contains", "exists"]


class SpecError(ValueError):
    """An instance file that cannot be used; the message names the file, the field and the reason."""


def _is_number_field(annotation: object) -> bool:
    """Whether a field holds a number (int or float, optional or not) and never a boolean."""
    options = get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else (annotation,)
    options = tuple(get_args(o)[0] if get_origin(o) is Annotated else o for o in options)  # Annotated[float, ...]
    return bool(set(options) & {int, float}) and bool not in options


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, data: Any) -> Any:
        # pydantic reads true as 1 in a number field: window_days: true would be a 1-day window
        if isinstance(data, dict):
            for name, field in cls.model_fields.items():
                if isinstance(data.get(name), bool) and _is_number_field(field.annotation):
                    raise ValueError(f"{name}: expected a number, got {str(data[name]).lower()}")
        return data


class Condition(_Strict):
    """One test on one field of an event, e.g. ``{field: value, op: gte, value: 50}``."""

    field: Annotated[str, Field(min_length=1)]
    op: Operator
    value: Any = None

    @model_validator(mode="after")
    def _value_fits_operator(self) -> Condition:
        _check_operator_value(self.op, self.value)
        return self


def _check_operator_value(op: str, value: Any) -> None:
    """Raise ValueError when ``value`` does not fit operator ``op`` (a flat list for in/not_in, one value otherwise)."""
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            raise ValueError(f"operator {op!r} needs a non-empty list as value")
        for i, item in enumerate(value):
            if isinstance(item, (list, dict)):
                raise ValueError(f"operator {op!r} needs a flat list of {_SINGLE_VALUES}; item {i} is a {_kind(item)}")
    elif op == "exists":
        if value is not None and not isinstance(value, bool):
            raise ValueError("operator 'exists' takes true, false or no value")
    elif value is None:
        raise ValueError(f"operator {op!r} needs a value")
    elif isinstance(value, (list, dict)):
        raise ValueError(f"operator {op!r} needs a single value, not a {type(value).__name__}")
    if op == "contains" and not isinstance(value, str):
        raise ValueError("operator 'contains' needs a string value")


class EventPattern(_Strict):
    """Events that satisfy every condition in ``where`` (all tests hold on the same event)."""

    where: Annotated[list[Condition], Field(min_length=1)]


class EventSource(_Strict):
    """Where the events come from and how the file's columns map to the canonical ones."""

    path: str | None = None
    table: str | None = None
    connection: str | None = None
    columns: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_source(self) -> EventSource:
        if (self.path is None) == (self.table is None):
            raise ValueError("give exactly one of 'path' (a .parquet or .csv file) or 'table'")
        if self.path is not None and Path(self.path).suffix.lower() not in (".parquet", ".csv"):
            raise ValueError(f"path {self.path!r} must end in .parquet or .csv")
        return self

    @field_validator("columns")
    @classmethod
    def _canonical_targets(cls, columns: dict[str, str]) -> dict[str, str]:
        canonical = {"profile_id", "timestamp", "event_type", "value"}
        unknown = sorted(set(columns) - canonical)
        if unknown:
            raise ValueError(
                f"columns maps canonical names to your file's names; {unknown} are not canonical "
                f"(use {sorted(canonical)})"
            )
        return columns


class GoalValue(_Strict):
    """What a goal's events are worth: ``field`` (a numeric column of the events) summed over them in the window."""

    field: Annotated[str, Field(min_length=1)]


class Goal(_Strict):
    """What the model predicts: whether the listed events occur in ``[as_of, as_of + window_days)``.

    ``value``: a goal that must occur may also be worth an amount, its events' ``value.field`` added up over the
    window (each event once), of which a run predicts the expected sum per profile.
    """

    occurrence: Literal["will_occur", "will_not_occur"]
    match: Literal["any", "all"] = "any"
    events: Annotated[list[EventPattern], Field(min_length=1)]
    window_days: Annotated[int, Field(ge=1, le=3650)]
    value: GoalValue | None = None

    @model_validator(mode="after")
    def _value_of_events_that_occur(self) -> Goal:
        if self.value is not None and self.occurrence == "will_not_occur":
            raise ValueError(
                "value: a will_not_occur goal is reached when no goal event happens, so there is nothing to add up; "
                "predict the value of a goal that occurs (will_occur), or leave value out"
            )
        return self


class Eligibility(_Strict):
    """Who gets a row and a score: profiles matching the rule in ``[as_of - lookback_days, as_of)``."""

    lookback_days: Annotated[int, Field(ge=1, le=3650)] = 365
    match: Literal["any", "all"] = "any"
    events: list[EventPattern] = Field(default_factory=list)
    exclude: list[EventPattern] = Field(default_factory=list)


class ProfileSource(_Strict):
    """Static profile attributes (one row per ``profile_id``) used as features.

    Only use attributes that were known before every as-of date the model is trained on; an attribute set
    after the fact (say, a "churned" flag) leaks the label.
    """

    path: str
    columns: Annotated[list[str], Field(min_length=1)]
    id_column: str = "profile_id"


class CustomEvent(_Strict):
    """A named event definition; becomes days-since and count-in-window features."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=40)]
    where: Annotated[list[Condition], Field(min_length=1)]


class TrainingSettings(_Strict):
    """How training snapshots are laid out and what the data must hold.

    ``history``: what to do when the events start too late for the configured snapshots and lookback
    (``adapt``: fit them to the history, see :mod:`customer_ai.history`; ``strict``: refuse).
    ``max_profiles``: the most profiles training builds features for; above it, a stratified sample of the
    eligible profiles (every snapshot of a sampled profile kept, see
    :func:`customer_ai.estimator.sample_profiles`), drawn with ``seed``.
    ``min_value_gini_gain``: a goal with a value passes the quality gate only when its value model's normalised
    Gini on the evaluation half is above the best value baseline's by more than this (the past spend rate, BG/NBD
    x Gamma-Gamma, the last year's and the last window's spend; 0: any better; a negative value lets a value model
    a little worse than the best of them through).  ``min_timing_concordance_gain``: the
    same for ``output.timing``, on Harrell's concordance of the timing curves against recency and the
    repeat-buying model.
    """

    snapshots: Annotated[int, Field(ge=2, le=60)] = 6
    snapshot_every_days: Annotated[int, Field(ge=1, le=365)] = 30
    history: Literal["adapt", "strict"] = "adapt"
    min_lookback_days: Annotated[int, Field(ge=1, le=3650)] = 28
    min_positives: Annotated[int, Field(ge=1)] = 500
    min_negatives: Annotated[int, Field(ge=1)] = 500
    min_auc: Annotated[float, Field(ge=0.0, le=1.0)] = 0.65
    max_event_types: Annotated[int, Field(ge=1, le=200)] = 10
    seed: int = 42
    retrain_every_days: Annotated[int, Field(ge=0, le=3650)] = 30
    max_profiles: Annotated[int, Field(ge=1000)] = DEFAULT_MAX_PROFILES
    min_value_gini_gain: Annotated[float, Field(ge=-1.0, le=1.0)] = 0.0
    min_timing_concordance_gain: Annotated[float, Field(ge=-1.0, le=1.0)] = 0.0

    def left_out_of_hashes(self) -> set[str]:
        """Return the settings the spec and model hashes leave out: ``max_profiles``, the value gate at defaults.

        They came after models were stored; at their defaults they are left out, so the hashes of existing
        instances (and the reuse of their models) stay as they were, while another cap changes the model hash and
        so retrains (the value gate, like ``min_auc``, is never in the model hash).
        """
        left_out = {"max_profiles"} if self.max_profiles == DEFAULT_MAX_PROFILES else set()
        gates = {
            "min_value_gini_gain": self.min_value_gini_gain,
            "min_timing_concordance_gain": self.min_timing_concordance_gain,
        }
        return left_out | {name for name, gain in gates.items() if gain == 0.0}


class EventThresholds(_Strict):
    """The thresholds of the built-in event checks (``expectations/events.json``).

    ``max_duplicate_share``: the share of rows that repeat an earlier row exactly (every column equal) that
    is still accepted; rows that merely share a profile, a time and a type (two orders on one day in a log with
    dates only) are not duplicates.  ``max_abs_value``: the largest accepted ``|value|``.
    ``future_tolerance_days``: how far after the wall clock an event may be dated (clock skew) before it is
    refused.
    """

    max_duplicate_share: Annotated[float, Field(ge=0.0, le=1.0)] = 0.01
    max_abs_value: Annotated[float, Field(gt=0.0)] = 1e12
    future_tolerance_days: Annotated[float, Field(ge=0.0, le=3650.0)] = 1.0


class ValidationSettings(_Strict):
    """Extra Great Expectations suites (JSON files) per stage, and the thresholds of the built-in event checks.

    The extra suites run after the built-in ones.
    """

    events: list[str] = Field(default_factory=list)
    training_set: list[str] = Field(default_factory=list)
    scores: list[str] = Field(default_factory=list)
    thresholds: EventThresholds = Field(default_factory=EventThresholds)


class OutputSettings(_Strict):
    """What is written per profile.

    ``buckets_by``: ``score`` puts the bucket thresholds on the score (the probability in percent, comparable
    across runs); ``percentile`` puts them on the percentile within the run (always some "high" profiles, even
    for a rare goal whose scores are all low); ``auto`` (the default) keeps them on the score when the buckets
    then mean something and else ranks the run (see :func:`customer_ai.scoring.choose_bucket_rule`).
    ``currency``: the code or symbol that amounts (the events' ``value``) are written with in the report and
    the factors (``GBP``, ``EUR``, ``$``); none by default.
    ``timing``: also predict when each profile next reaches a goal that must occur (the median number of days to
    its next goal event, within ``timing_horizon_days``: 3 goal windows by default).
    """

    factors: Annotated[int, Field(ge=0, le=50)] = 5
    buckets: dict[Literal["medium", "high"], Annotated[float, Field(gt=0, lt=100)]] = Field(
        default_factory=lambda: {"medium": 25.0, "high": 75.0}
    )
    buckets_by: Literal["auto", "score", "percentile"] = "auto"
    currency: str | None = None
    timing: bool = False
    timing_horizon_days: Annotated[int, Field(ge=1, le=10950)] | None = None

    @model_validator(mode="after")
    def _horizon_with_timing(self) -> OutputSettings:
        if self.timing_horizon_days is not None and not self.timing:
            raise ValueError("timing_horizon_days is set but timing is not: add timing: true, or leave it out")
        return self

    @property
    def unchanged_by_timing(self) -> bool:
        """Return whether timing is at its default (off, no horizon): then it is left out of both hashes."""
        return not self.timing and self.timing_horizon_days is None

    @field_validator("currency")
    @classmethod
    def _a_code_or_symbol(cls, currency: str | None) -> str | None:
        if currency is not None and not (
            1 <= len(currency) <= 8
            and currency.isprintable()
            and not currency.split()[1:]
            and currency.strip() == currency
        ):
            raise ValueError(f"{currency!r} is not a currency code or symbol: give one word such as GBP, EUR or $")
        return currency

    @field_validator("buckets")
    @classmethod
    def _ordered(cls, buckets: dict[str, float]) -> dict[str, float]:
        if set(buckets) != {"medium", "high"}:
            raise ValueError("buckets needs both 'medium' and 'high' score thresholds")
        if not buckets["medium"] < buckets["high"]:
            raise ValueError("the 'medium' threshold must be below the 'high' threshold")
        return buckets


class ScoringSettings(_Strict):
    """How a run is split: ``partitions`` hash partitions of its profiles, their events and scores, one by one.

    ``auto`` (the default) picks the count from the number of events the run reads (see
    :func:`customer_ai.partitions.partition_count`); an integer fixes it.  Partitions change where and in what
    memory the profiles are validated and scored, never the scores: a run with 4 gives exactly the scores of a run
    with 1.
    """

    partitions: Literal["auto"] | int = "auto"

    @field_validator("partitions", mode="before")
    @classmethod
    def _auto_or_a_count(cls, value: Any) -> Any:  # noqa: ANN401 - the raw YAML value
        if value == "auto" and isinstance(value, str):
            return value
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PARTITIONS:
            raise ValueError(f"takes auto or a whole number from 1 to {MAX_PARTITIONS}, not {value!r}")
        return value


class MonitoringSettings(_Strict):
    """When a run says its data drifted, and when it stops (see :mod:`customer_ai.drift`).

    Every run compares each feature of the profiles it scores with the model's training rows by the population
    stability index.  ``drift_warn``: at or above it for any feature the run is marked ``warn`` (its log, report,
    run row and the Airflow view say which features moved), and a reused model is retrained early.
    ``drift_stop``: at or above it (when set) the run stops before publishing, saying why, and the previous run
    stays current.  0.1 and 0.25 are the usual readings of a moderate and a major shift.
    """

    drift_warn: Annotated[float, Field(gt=0, le=100)] = 0.1
    drift_stop: Annotated[float, Field(gt=0, le=100)] | None = None

    @model_validator(mode="after")
    def _stop_above_warn(self) -> MonitoringSettings:
        if self.drift_stop is not None and self.drift_stop <= self.drift_warn:
            raise ValueError(
                f"drift_stop ({self.drift_stop:g}) must be above drift_warn ({self.drift_warn:g}): a run warns "
                "before it stops"
            )
        return self


_SCORE_RANGES = {"probability": (0, 1), "score": (0, 100), "percentile": (1, 100)}
_NUMBER_OPERATORS = ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte")
_SCORE_OPERATORS = {"bucket": ("eq", "ne", "in", "not_in"), "profile_id": ("eq", "ne", "in", "not_in", "contains")}
_FEATURE_NAME = re.compile(r"[a-z0-9][a-z0-9_]{0,119}")  # what features.py names a feature (slugs)


def _check_number(what: str, value: Any, low: float | None = None, high: float | None = None) -> None:
    """Raise ValueError unless ``value`` is a finite number (not a boolean) within ``[low, high]``."""
    span = f" from {low} to {high}" if low is not None else ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what} takes a number{span}, not {value!r}")
    try:
        number = float(value)
    except OverflowError:
        raise ValueError(f"{what} takes a number{span}; {value} is too large") from None
    if not math.isfinite(number) or (low is not None and not low <= number <= high):
        raise ValueError(f"{what} takes a number{span}, not {value!r}")


class SegmentCondition(_Strict):
    """One test of a segment rule: on a score column (``field``) or on one influential factor (``factor``).

    ``{field: percentile, op: gte, value: 90}`` tests one of :data:`SEGMENT_FIELDS` with the operators of
    :class:`Condition`.  ``{factor: purchase_count_30d, op: gt, value: 0}`` holds when that feature is among the
    profile's stored top factors and its signed contribution compares as stated; a profile whose top factors do
    not include the feature fails every comparison (``ne`` included).  ``{factor: F, op: exists}`` holds when
    ``F`` is among the top factors, with ``value: false`` when it is not.
    """

    field: str | None = None
    factor: str | None = None
    op: Operator
    value: Any = None

    @model_validator(mode="after")
    def _fits_the_scores(self) -> SegmentCondition:
        if (self.field is None) == (self.factor is None):
            raise ValueError(
                "give exactly one of 'field' (one of " + ", ".join(SEGMENT_FIELDS) + ") or 'factor' (a feature name)"
            )
        _check_operator_value(self.op, self.value)
        values = self.value if self.op in ("in", "not_in") else [self.value]
        if self.factor is not None:
            _check_factor_test(self.factor, self.op, values)
        else:
            _check_score_test(self.field, self.op, values)
        return self


def _check_factor_test(factor: str, op: str, values: list) -> None:
    if not _FEATURE_NAME.fullmatch(factor):
        raise ValueError(
            f"factor {factor!r} is not a feature name (lower-case letters, digits and _, as in purchase_count_30d)"
        )
    if op == "contains":
        raise ValueError("a factor's contribution is a number: 'contains' does not apply")
    if op != "exists":
        for value in values:
            _check_number(f"factor {factor} (its contribution)", value)


def _check_score_test(field: str, op: str, values: list) -> None:
    if field not in SEGMENT_FIELDS:
        raise ValueError(
            f"unknown field {field!r}: a segment tests one of {', '.join(SEGMENT_FIELDS)}, "
            "or an influential factor with 'factor: FEATURE'"
        )
    operators = _SCORE_OPERATORS.get(field, _NUMBER_OPERATORS)
    if op not in operators:
        hint = " ('exists' applies to factors: every scored profile has every score column)" if op == "exists" else ""
        raise ValueError(f"{field} takes {', '.join(operators)}, not {op!r}{hint}")
    for value in values:
        if field == "bucket" and value not in DEFAULT_SEGMENTS:
            raise ValueError(f"bucket is one of {', '.join(DEFAULT_SEGMENTS)}, not {value!r}")
        if field == "profile_id" and (isinstance(value, bool) or not isinstance(value, str | int)):
            raise ValueError(f"profile_id is text, not {value!r}")
        if field == "profile_id" and isinstance(value, int) and abs(value) >= 10**18:
            raise ValueError(f"profile_id {value} is too long for a number: write the id in quotes")
        if field in _SCORE_RANGES:
            _check_number(field, value, *_SCORE_RANGES[field])
        if field in ("expected_value", "days_to_next"):
            _check_number(field, value)
            if value < 0:
                what = "an amount" if field == "expected_value" else "a number of days"
                raise ValueError(f"{field} is {what} of at least 0, not {value!r}")


class Segment(_Strict):
    """A named group of scored profiles: those that satisfy every condition in ``where``."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=40)]
    where: Annotated[list[SegmentCondition], Field(min_length=1)]

    @field_validator("name")
    @classmethod
    def _not_a_default(cls, name: str) -> str:
        if name in DEFAULT_SEGMENTS:
            raise ValueError(
                f"{name!r} is the default segment of the bucket {name} (every run has low, medium and high); "
                "give your segment another name"
            )
        return name


class OutcomeWords(NamedTuple):
    """How the report and ``show`` say a profile's outcome: for a churn goal, that it did not come back.

    ``reached`` ("reached the goal", "did not come back"), ``missed`` (its opposite, after a count: "did not",
    "came back") and ``to_reach`` (after "expected to": "reach the goal", "not come back").
    """

    reached: str
    missed: str
    to_reach: str


class InstanceSpec(_Strict):
    """A whole instance file.  Relative paths are resolved against ``base_dir`` (the file's folder)."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9_]+$", max_length=63)]
    description: str = ""
    propensity: Literal["conversion", "churn"] | None = None  # follows goal.occurrence when left out
    events: EventSource
    goal: Goal
    eligibility: Eligibility = Field(default_factory=Eligibility)
    profiles: ProfileSource | None = None
    custom_events: list[CustomEvent] = Field(default_factory=list)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    output: OutputSettings = Field(default_factory=OutputSettings)
    scoring: ScoringSettings = Field(default_factory=ScoringSettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    validation: ValidationSettings = Field(default_factory=ValidationSettings)
    segments: list[Segment] = Field(default_factory=list)
    schedule: str | None = "@weekly"
    start_date: dt.date = dt.date(2010, 1, 1)
    end_date: dt.date | None = None  # data that ended: no run is scheduled after it (manual runs are not bounded)
    catchup: bool = False
    trigger_as_of: dt.date | None = None  # the as-of date Airflow's trigger form offers (data that has ended)
    base_dir: Path = Field(default=Path("."), exclude=True)

    @field_validator("end_date")
    @classmethod
    def _end_after_start(cls, end: dt.date | None, info: ValidationInfo) -> dt.date | None:
        start = info.data.get("start_date")
        if end is not None and start is not None and end < start:
            raise ValueError(
                f"{end:%Y-%m-%d} is before start_date {start:%Y-%m-%d}: the schedule would have no date to run"
            )
        schedule = info.data.get("schedule")
        if end is not None and schedule in (None, "@once", "@continuous"):
            raise ValueError(
                f"{end:%Y-%m-%d} ends a repeating schedule, and schedule is {schedule!r}: leave end_date out, or "
                "give a cron expression or preset such as '@weekly'"
            )
        return end

    @model_validator(mode="before")
    @classmethod
    def _propensity_from_goal(cls, data: Any) -> Any:  # noqa: ANN401 - the raw YAML document
        goal = data.get("goal") if isinstance(data, dict) else None
        if isinstance(goal, dict) and data.get("propensity") is None and goal.get("occurrence") in PROPENSITY_OF:
            data = {**data, "propensity": PROPENSITY_OF[goal["occurrence"]]}
        return data

    @field_validator("goal")
    @classmethod
    def _propensity_matches_goal(cls, goal: Goal, info: ValidationInfo) -> Goal:
        propensity, expected = info.data.get("propensity"), PROPENSITY_OF[goal.occurrence]
        if propensity is not None and propensity != expected:
            raise ValueError(
                f"occurrence {goal.occurrence!r} does not fit propensity {propensity!r}: the score is the probability "
                "of the goal as stated, so a churn score is the probability that the goal events do not occur "
                "(will_not_occur) and a conversion score the probability that they occur (will_occur). Write "
                f"propensity: {expected} or leave propensity out (it follows the goal); to score a leaving event "
                "that does occur (a cancellation), use will_occur with propensity: conversion"
            )
        return goal

    @field_validator("output")
    @classmethod
    def _timing_of_a_goal_that_occurs(cls, output: OutputSettings, info: ValidationInfo) -> OutputSettings:
        goal = info.data.get("goal")
        if goal is None or not output.timing:
            return output
        if goal.occurrence == "will_not_occur":
            raise ValueError(
                "timing: a will_not_occur goal is reached when no goal event happens, so it has no next time to "
                "predict; use timing with a goal that occurs (will_occur), or leave it out"
            )
        if output.timing_horizon_days is not None and output.timing_horizon_days < goal.window_days:
            raise ValueError(
                f"timing_horizon_days ({output.timing_horizon_days}) is shorter than the goal's window "
                f"({goal.window_days} days): the horizon must hold the window, whose chance is the score"
            )
        return output

    def timing_horizon(self) -> int:
        """Return the days within which timing predicts the next goal event: as set, else 3 goal windows."""
        return self.output.timing_horizon_days or 3 * self.goal.window_days

    @field_validator("segments")
    @classmethod
    def _fields_the_run_writes(cls, segments: list[Segment], info: ValidationInfo) -> list[Segment]:
        goal, output = info.data.get("goal"), info.data.get("output")
        missing = {
            "expected_value": (
                goal is not None and goal.value is None,
                "a goal with a value: add goal.value (the field of the events to add up)",
            ),
            "days_to_next": (output is not None and not output.timing, "an instance with output.timing: true"),
        }
        for i, segment in enumerate(segments):
            for j, condition in enumerate(segment.where):
                lacking, needs = missing.get(condition.field, (False, ""))
                if lacking:
                    raise ValueError(
                        f"segments[{i}] ({segment.name}).where[{j}] tests {condition.field}, which a run writes only "
                        f"for {needs}, or test another field"
                    )
        return segments

    @field_validator("custom_events", "segments")
    @classmethod
    def _unique_names(cls, named: list[CustomEvent] | list[Segment], info: ValidationInfo) -> list:
        names = [item.name for item in named]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            what = "custom event" if info.field_name == "custom_events" else "segment"
            raise ValueError(f"{what} names must be unique; repeated: {duplicates}")
        return named

    def resolve(self, path: str) -> Path:
        """Return ``path`` as absolute, relative to the instance file's folder."""
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else (self.base_dir / candidate).resolve()

    def spec_hash(self) -> str:
        """Return a short, stable hash of everything that defines the model.

        The file's location, the description, the schedule and its end, the trigger form's as-of date, the segments, how
        scoring is split into partitions, the drift thresholds and the currency amounts are written with do not
        change the model or its scores and are left out, and so are settings at a default they had before they existed
        (:meth:`TrainingSettings.left_out_of_hashes`).
        """
        left_out = ("description", "schedule", "end_date", "trigger_as_of", "segments", "scoring", "monitoring")
        exclude: dict = dict.fromkeys(left_out, True)
        exclude["training"] = self.training.left_out_of_hashes()
        exclude["output"] = {"currency"}  # how amounts are written, never what they are
        exclude.update(self._left_out_at_defaults())
        if self.output.unchanged_by_timing:
            exclude["output"] |= {"timing", "timing_horizon_days"}
        payload = json.dumps(self.model_dump(mode="json", exclude=exclude), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def _left_out_at_defaults(self) -> dict:
        """Return the exclusions of settings at a default they had before they existed (so old hashes hold)."""
        return {"goal": {"value"}} if self.goal.value is None else {}

    def model_hash(self) -> str:
        """Return a short hash of what a trained model depends on; a model is reused only if it matches.

        Leaves out what only affects scheduling, validation, outputs, segments and the quality gate.  A
        ``training.max_profiles`` other than its default is in it (another cap trains on other profiles).
        """
        exclude = {
            "description": True,
            "schedule": True,
            "start_date": True,
            "end_date": True,
            "catchup": True,
            "trigger_as_of": True,
            "segments": True,
            "validation": True,
            "output": True,
            "scoring": True,
            "monitoring": True,
            "training": {
                "retrain_every_days",
                "min_auc",
                "min_value_gini_gain",
                "min_timing_concordance_gain",
                *self.training.left_out_of_hashes(),
            },
            **self._left_out_at_defaults(),
        }
        data = self.model_dump(mode="json", exclude=exclude)
        if self.output.timing:  # the output settings are left out, but timing trains a model of its own
            data["timing"] = {"horizon_days": self.timing_horizon()}
        payload = json.dumps(data, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def outcome_words(self) -> OutcomeWords:
        """Return how a profile's outcome is said: a churn goal's profiles come back or do not."""
        if self.goal.occurrence == "will_occur":
            return OutcomeWords("reached the goal", "did not", "reach the goal")
        return OutcomeWords("did not come back", "came back", "not come back")

    def goal_in_words(self) -> str:
        """Describe the goal in one sentence, e.g. "purchase occurs within 30 days"."""
        patterns = [pattern_in_words(p.where) for p in self.goal.events]
        joiner = " or " if self.goal.match == "any" else " and "
        verb = "occurs" if self.goal.occurrence == "will_occur" else "does not occur"
        return f"{joiner.join(patterns)} {verb} within {self.goal.window_days} days"


_OP_WORDS = {
    "eq": "=",
    "ne": "!=",
    "in": "in",
    "not_in": "not in",
    "gt": ">",
    "gte": ">=",
    "lt": "<",
    "lte": "<=",
    "contains": "contains",
}


def pattern_in_words(where: list[Condition]) -> str:
    parts = []
    for cond in where:
        if cond.field == "event_type" and cond.op == "eq":
            parts.append(str(cond.value))
        elif cond.op == "exists":
            parts.append(f"{cond.field} {'is set' if cond.value in (None, True) else 'is empty'}")
        else:
            parts.append(f"{cond.field} {_OP_WORDS[cond.op]} {cond.value}")
    return "(" + " with ".join(parts) + ")" if len(parts) > 1 else parts[0]


# --- feature names: what a segment's factor can be ------------------------------------------------------------
# How customer_ai.features names its features, restated: spec.py cannot import it (it needs pandas, which the DAG
# file must not load).  tests/test_spec.py checks every name features.feature_infos gives against these.
_COUNT_WINDOWS = (7, 30, 90, 365)  # features.COUNT_WINDOWS
_ACTIVITY_FEATURES = ("tenure_days", "days_since_last_event", "active_days", "gap_mean_days", "gap_std_days")
_SOURCE_SUFFIXES = ("days_since_last", "days_since_first", "value_sum", "value_mean")  # and count_<N>d
_SOURCE_FEATURE = re.compile(
    r"(?P<source>.+)_(?:count_(?P<days>[1-9][0-9]*)d|(?P<suffix>" + "|".join(_SOURCE_SUFFIXES) + "))"
)
_RATIO_FEATURE = re.compile(r"activity_ratio_(?P<recent>[1-9][0-9]*)_(?P<longer>[1-9][0-9]*)")
_COLUMN_FEATURE = re.compile(r"(?P<source>.+)_most_frequent")
_SLUG = re.compile(r"[a-z0-9]+(?:_[a-z0-9]+)*")  # what feature_slug gives
_CANONICAL_COLUMNS = ("profile_id", "timestamp", "event_type", "value")
FEATURE_FAMILIES = (
    "EVENT_count_Nd, EVENT_days_since_last, EVENT_days_since_first, EVENT_value_sum, EVENT_value_mean (EVENT: an "
    "event type in lower case with _ for other characters, or a custom event; N: 7, 30, 90, 365 below the "
    "lookback, and the lookback), COLUMN_most_frequent (an extra text column of the events), profile_ATTRIBUTE, "
    "tenure_days, days_since_last_event, active_days, gap_mean_days, gap_std_days, activity_ratio_30_90, "
    "activity_ratio_90_LOOKBACK, goal_chance_Wd, goal_expected_Wd, goal_p_alive, goal_repeat_days, "
    "goal_days_since_first, goal_days_per_30d, goal_value_per_30d (a goal with a value)"
)
_GOAL_VALUE_RATE = "goal_value_per_30d"  # features.GOAL_VALUE_RATE


def feature_slug(text: str) -> str:
    """Return the part of a feature name an event type or column gives: lower case, ``_`` for other characters."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "event"


def _count_windows(lookback: int) -> list[int]:
    return [w for w in _COUNT_WINDOWS if w < lookback] + [lookback]


def _ratio_windows(lookback: int) -> list[tuple[int, int]]:
    points = [w for w in (30, 90) if w < lookback] + [lookback]
    return list(zip(points, points[1:], strict=False))


class FactorOrigin(NamedTuple):
    """What a feature name a segment tests stands for, and so what decides whether a run builds it.

    ``kind``: ``spec`` (always built: activity, ratios, profile attributes), ``custom_event`` and
    ``event_type`` (the features of ``source``: a custom event, or an event type as it is slugged; an event type's
    are built only when it is among the most frequent ones), ``column`` (the most frequent value of the extra
    text column ``source``, built when it has 2 to 50 distinct values) or ``repeat_model`` (built when somebody
    repeated a goal event).  ``valued``: a value sum or mean, built only when the source's events carry values.
    ``adapted``: its number of days is that of a lookback shortened to a short history, not the configured one.
    """

    kind: str
    source: str = ""
    valued: bool = False
    adapted: bool = False


def _lookbacks(spec: InstanceSpec) -> range:
    """Return the feature lookbacks a run of ``spec`` can use: the configured one, or shorter when history adapts."""
    lookback = spec.eligibility.lookback_days
    shortest = min(lookback, spec.training.min_lookback_days) if spec.training.history == "adapt" else lookback
    return range(shortest, lookback + 1)


def _repeat_model_features(spec: InstanceSpec) -> list[str]:  # features.repeat_model_names
    window = spec.goal.window_days
    return [
        f"goal_chance_{window}d",
        f"goal_expected_{window}d",
        "goal_p_alive",
        "goal_repeat_days",
        "goal_days_since_first",
        "goal_days_per_30d",
    ]


def _source_features(source: str, lookback: int) -> list[str]:
    return [f"{source}_count_{w}d" for w in _count_windows(lookback)] + [f"{source}_{s}" for s in _SOURCE_SUFFIXES]


def _in_windows(days: int, windows: Callable[[int], list], lookbacks: range, item: object) -> tuple[bool, bool]:
    """Return whether ``item`` is among ``windows(L)`` for some possible lookback L, and whether only when adapted.

    ``days`` is the item's largest number: a window of L holds nothing above L, so L is ``days`` or the longest.
    """
    configured = item in windows(lookbacks[-1])
    possible = configured or (days in lookbacks and item in windows(days))
    return possible, not configured


def factor_origin(spec: InstanceSpec, name: str) -> FactorOrigin | None:
    """Return what the feature ``name`` stands for in a run of ``spec``, or None when no run can build it.

    Parameters
    ----------
    spec : InstanceSpec
        The instance: its custom events, profile attributes, goal window, lookback and history policy.
    name : str
        A feature name, as a segment's ``factor`` gives it.

    Returns
    -------
    FactorOrigin or None
        Which family the name belongs to; whether it is built may still depend on the events (see
        :class:`FactorOrigin`).
    """
    lookbacks = _lookbacks(spec)
    profile = {f"profile_{feature_slug(c)}" for c in spec.profiles.columns} if spec.profiles else set()
    origin = None
    if name in _ACTIVITY_FEATURES or name in profile or (name == _GOAL_VALUE_RATE and spec.goal.value is not None):
        origin = FactorOrigin("spec")
    elif name in _repeat_model_features(spec):
        origin = FactorOrigin("repeat_model")
    elif ratio := _RATIO_FEATURE.fullmatch(name):
        pair = (int(ratio["recent"]), int(ratio["longer"]))
        possible, adapted = _in_windows(pair[1], _ratio_windows, lookbacks, pair)
        origin = FactorOrigin("spec", adapted=adapted) if possible else None
    elif found := _SOURCE_FEATURE.fullmatch(name):
        origin = _source_origin(spec, found, lookbacks)
    if origin is None and (column := _COLUMN_FEATURE.fullmatch(name)) and _SLUG.fullmatch(column["source"]):
        origin = FactorOrigin("column", column["source"])
    return origin


def _source_origin(spec: InstanceSpec, found: re.Match, lookbacks: range) -> FactorOrigin | None:
    """Return the origin of a feature of an event type or custom event (``found`` by :data:`_SOURCE_FEATURE`)."""
    adapted = False
    if found["days"]:
        possible, adapted = _in_windows(int(found["days"]), _count_windows, lookbacks, int(found["days"]))
        if not possible:
            return None
    valued = (found["suffix"] or "").startswith("value_")
    if found["source"] in {c.name for c in spec.custom_events}:
        return FactorOrigin("custom_event", found["source"], valued, adapted)
    if _SLUG.fullmatch(found["source"]):
        return FactorOrigin("event_type", found["source"], valued, adapted)
    return None


def feature_names(spec: InstanceSpec, event_types: Iterable[str] = (), columns: Iterable[str] = ()) -> list[str]:
    """Return the feature names of ``spec`` at its configured lookback, for these event types and columns.

    Besides the given event types and extra columns (as the events name them), the event types and columns that
    the instance's conditions name are taken: these are the names a misspelled factor most likely meant.
    """
    lookback = spec.eligibility.lookback_days
    conditions = [c for p in (*spec.goal.events, *spec.eligibility.events, *spec.eligibility.exclude) for c in p.where]
    conditions += [c for custom in spec.custom_events for c in custom.where]
    named_types = [
        v for c in conditions if c.field == "event_type" for v in (c.value if c.op in ("in", "not_in") else [c.value])
    ]
    sources = dict.fromkeys(
        [c.name for c in spec.custom_events] + [feature_slug(str(t)) for t in (*named_types, *event_types)]
    )
    fields = dict.fromkeys(feature_slug(c.field) for c in conditions if c.field not in _CANONICAL_COLUMNS)
    fields.update(dict.fromkeys(feature_slug(str(c)) for c in columns))
    names = list(_ACTIVITY_FEATURES) + [f"activity_ratio_{r}_{n}" for r, n in _ratio_windows(lookback)]
    names += _repeat_model_features(spec)
    names += [_GOAL_VALUE_RATE] if spec.goal.value is not None else []
    names += [f"profile_{feature_slug(c)}" for c in (spec.profiles.columns if spec.profiles else [])]
    names += [name for source in sources for name in _source_features(source, lookback)]
    return names + [f"{column}_most_frequent" for column in fields]


def nearest_feature_names(name: str, known: Sequence[str]) -> str:
    """Return the end of a message about an unknown feature ``name``: the nearest of ``known``, or the families."""
    nearest = difflib.get_close_matches(name, list(dict.fromkeys(known)), n=3, cutoff=0.6)
    if nearest:
        return "nearest known names: " + ", ".join(nearest)
    return "no known name is close; feature names are " + FEATURE_FAMILIES


def _segment_factor_problems(spec: InstanceSpec, source: str) -> list[str]:
    """Return a line per segment condition whose factor no run of ``spec`` can build, naming it and the nearest.

    The repeat-buying model's expected count and chance of still being active are built but never a factor of
    their own: the model's three outputs are one factor, named for its chance (customer_ai.explain).
    """
    chance, *spoken_for = _repeat_model_features(spec)[:3]
    lines = []
    for i, segment in enumerate(spec.segments):
        for j, cond in enumerate(segment.where):
            where = f"{source}: segments[{i}].where[{j}]: segment {segment.name!r} tests factor {cond.factor!r}"
            if cond.factor in spoken_for:
                lines.append(
                    f"{where}, which is never a factor of its own: the repeat-buying model's chance, expected count "
                    f"and chance of still being active are one factor, {chance}; test {chance} instead"
                )
            elif cond.factor is not None and factor_origin(spec, cond.factor) is None:
                nearest = nearest_feature_names(cond.factor, feature_names(spec))
                lines.append(f"{where}, which is not a feature of this instance; {nearest}")
    return lines


class _UniqueKeys:
    """Constructor mixin that refuses a key repeated in one mapping (the last one would silently win).

    It also gives a value PyYAML cannot build (``2011-02-30``, an integer of more digits than Python converts) its
    place in the file: PyYAML raises a bare ValueError for those.
    """

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:  # noqa: ANN401 - any YAML value
        try:
            return super().construct_object(node, deep=deep)
        except ValueError as exc:
            raise yaml.constructor.ConstructorError(None, None, _unreadable(node, exc), node.start_mark) from None

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in the same mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _unreadable(node: yaml.Node, exc: ValueError) -> str:
    """Return why the scalar ``node`` cannot be read, in words."""
    if "limit" in str(exc) and "digits" in str(exc):  # CPython's message for int() of too many digits
        return (
            f"a number of more than {sys.get_int_max_str_digits():,} digits cannot be read; write it in quotes "
            "if it is text"
        )
    kind = "date" if node.tag.endswith(":timestamp") else "number" if node.tag.endswith((":int", ":float")) else "value"
    shown = str(node.value)[:40] + ("..." if len(str(node.value)) > 40 else "")
    return f"{shown!r} is not a valid {kind} ({exc})"


class _UniqueKeyLoader(_UniqueKeys, yaml.SafeLoader):
    """The safe pure-Python loader with unique keys: its messages are the ones a user sees for a broken file."""


class _FastUniqueKeyLoader(_UniqueKeys, getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """The same loader on libyaml's parser when PyYAML has it (about 8 times faster, the same documents)."""


# YAML 1.2 booleans only: YAML 1.1 also reads yes/no/on/off/y/n as booleans, which turned a condition value
# like NO (Norway) into false and silently matched nothing.  What a user writes stays a string.
for _loader in (_UniqueKeyLoader, _FastUniqueKeyLoader):
    _loader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    _loader.add_implicit_resolver(
        "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
    )


def _format_location(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(top level)"


def parse_spec(data: Any, source: str = "<instance>", base_dir: Path | None = None) -> InstanceSpec:
    """Check already-parsed YAML content and return the spec.

    Parameters
    ----------
    data : Any
        The parsed YAML document.
    source : str, default "<instance>"
        Name of the file, used in error messages.
    base_dir : pathlib.Path, optional
        Folder that relative paths in the spec are resolved against; the current folder by default.

    Raises
    ------
    SpecError
        With one line per problem: ``source: field.path: reason``.
    """
    if not isinstance(data, dict):
        raise SpecError(f"{source}: the file must hold a mapping of keys (name, propensity, events, goal, ...)")
    if "base_dir" in data:
        raise SpecError(f"{source}: base_dir: unknown key (paths are relative to the instance file's folder)")
    data = _checked_values(data, source)
    try:
        spec = InstanceSpec.model_validate({**data, "base_dir": base_dir or Path.cwd()})
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message = "unknown key (check its spelling and indentation)"
            lines.append(f"{source}: {_format_location(err['loc'])}: {message}")
        raise SpecError("\n".join(lines)) from None
    problems = _segment_factor_problems(spec, source)
    if problems:
        raise SpecError("\n".join(problems))
    return spec


_SURROGATE = re.compile("[\ud800-\udfff]")
_SCALARS = (str, bool, int, float, dt.date, type(None))  # what YAML's plain values are (dt.datetime is a dt.date)
_TAGGED = {set: "a set (!!set)", tuple: "a pair (!!omap or !!pairs)", bytes: "binary data (!!binary)"}


class _Walk:
    """One pass over a parsed document: each node once, however many aliases (``*name``) point at it.

    A YAML alias is the same Python object as its anchor, so a file of a few lines can hold a list that, expanded,
    has billions of items.  Shared nodes are looked at once (``done`` maps a node's id to its result and its
    expanded size), so the pass costs what the file's text does; the expanded size of the document is then
    checked before anything (pydantic, hashing) walks it item by item.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.done: dict[int, tuple[Any, int]] = {}
        self.references: dict[int, int] = {}

    def error(self, where: tuple, message: str) -> SpecError:
        return SpecError(f"{self.source}: {_format_location(where)}: {message}")

    def value(self, value: Any, where: tuple) -> tuple[Any, int]:  # noqa: ANN401 - any parsed YAML value
        """Return ``value`` checked, with surrogate pairs joined, and its expanded size (nodes, itself included)."""
        if isinstance(value, (dict, list)):
            self.references[id(value)] = self.references.get(id(value), 0) + 1
            if id(value) not in self.done:
                self.done[id(value)] = self._container(value, where)
            return self.done[id(value)]
        if isinstance(value, str):
            if len(value) > MAX_TEXT_CHARACTERS:
                raise self.error(
                    where, f"a text of {len(value):,} characters; a value holds at most {MAX_TEXT_CHARACTERS:,}"
                )
            return _whole_characters(value, lambda message: self.error(where, message)), 1
        if not isinstance(value, _SCALARS):
            what = _TAGGED.get(type(value), f"a {type(value).__name__}")
            raise self.error(where, f"holds {what}, which no setting takes: write {_SINGLE_VALUES}, lists or mappings")
        return value, 1

    def _container(self, value: dict | list, where: tuple) -> tuple[Any, int]:
        if len(where) > MAX_DEPTH:
            raise self.error(where, f"nested more than {MAX_DEPTH} levels deep; an instance file needs a few")
        if isinstance(value, list):
            items, size = [], 1
            for i, item in enumerate(value):
                if isinstance(item, list):  # no setting is a list of lists: a value is one value or a flat list
                    raise self.error(
                        where, f"item {i} is a list: a value is a single value or a flat list of {_SINGLE_VALUES}"
                    )
                checked, count = self.value(item, (*where, i))
                items.append(checked)
                size += count
            return items, size
        mapping, size = {}, 1
        for key, item in value.items():
            checked_key, _ = self.value(key, where)
            mapping[checked_key], count = self.value(item, (*where, key))
            size += count
        return mapping, size

    def largest(self, value: Any, where: tuple, size: int) -> tuple[tuple, int]:  # noqa: ANN401 - a parsed node
        """Return where the expansion of ``value`` (of ``size`` values) lies: down its children written once."""
        children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for key, child in children:
            count = self.done[id(child)][1] if isinstance(child, (dict, list)) else 1
            if count > MAX_EXPANDED_VALUES and self.references[id(child)] == 1:
                return self.largest(child, (*where, key), count)
        return where, size


def _checked_values(data: Any, source: str) -> Any:  # noqa: ANN401 - the parsed document
    """Return ``data`` with every value checked and surrogate pairs joined; raise SpecError naming the field.

    Refused: a text longer than :data:`MAX_TEXT_CHARACTERS`, a list inside a list (no setting is one), a value
    YAML reads as something no setting takes (``!!set``, ``!!binary``, ``!!omap``), nesting deeper than
    :data:`MAX_DEPTH`, and a document whose aliases expand it to more than :data:`MAX_EXPANDED_VALUES` values.
    """
    walk = _Walk(source)
    checked, size = walk.value(data, ())
    if size > MAX_EXPANDED_VALUES:
        where, size = walk.largest(data, (), size)
        raise SpecError(
            f"{source}: {_format_location(where)}: its aliases (*name) expand it to {size:,} values; an instance file "
            f"holds at most {MAX_EXPANDED_VALUES:,}: write the repeated parts fewer times"
        )
    return checked


def _kind(value: list | dict) -> str:
    return "list" if isinstance(value, list) else "mapping"


def _whole_characters(value: str, error: Callable[[str], SpecError]) -> str:
    r"""Return ``value`` with its UTF-16 surrogate pairs (``"\ud83d\ude00"`` in a double-quoted YAML string) joined.

    YAML reads each ``\u`` escape alone, so a character written as its two UTF-16 halves arrives as two lone
    surrogates, which no UTF-8 file, report or database can hold.  A pair is joined into its character, as JSON
    readers do; a half without its other half raises ``error(message)``.
    """
    if not _SURROGATE.search(value):
        return value
    try:
        return value.encode("utf-16", "surrogatepass").decode("utf-16")
    except UnicodeDecodeError:
        half = _SURROGATE.search(value.encode("utf-16", "surrogatepass").decode("utf-16", "surrogatepass"))
        shown = f"\\u{ord(half.group()):04x}" if half else "a surrogate"
        raise error(
            f"holds half of a UTF-16 surrogate pair ({shown}) without its other half: no UTF-8 text can hold it; "
            "write the character itself, or escape it as \\UXXXXXXXX"
        ) from None


def _read_yaml(text: str) -> Any:  # noqa: ANN401 - the parsed document
    """Parse ``text`` with libyaml; a document it refuses is parsed again in Python for the usual message."""
    try:
        return yaml.load(text, Loader=_FastUniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError:
        # libyaml words its errors differently: the pure-Python parser gives the message users and tests know
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


def _line_and_column(text: str, position: int) -> str:
    """Return "line L, column C" (from 1) of character ``position`` of ``text``."""
    start = text.rfind("\n", 0, position) + 1
    return f"line {text.count(chr(10), 0, position) + 1}, column {position - start + 1}"


def _read_text(path: Path) -> str:
    """Return the text of the instance file at ``path``: UTF-8 (a byte order mark is allowed), at most 1 MB."""
    try:
        with path.open("rb") as file:
            size = os.fstat(file.fileno()).st_size  # 0 for a pipe, whose reading stops after the limit
            if size <= MAX_FILE_BYTES:
                data = file.read(MAX_FILE_BYTES + 1)
                size = max(size, len(data))
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the instance file ({exc.strerror or exc})") from None
    if size > MAX_FILE_BYTES:
        raise SpecError(
            f"{path}: the file has {size:,} bytes; an instance file holds at most {MAX_FILE_BYTES:,} (1 MB): "
            "is it the right file?"
        )
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise SpecError(f"{path}: the file is UTF-16 (it starts with a UTF-16 byte order mark); save it as UTF-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start].decode("utf-8")  # the bytes before the first bad one are whole characters
        raise SpecError(
            f"{path}: {_line_and_column(before, len(before))}: byte 0x{data[exc.start]:02x} is not UTF-8; "
            "save the file as UTF-8"
        ) from None


def _yaml_problem(exc: yaml.YAMLError, text: str) -> str:
    """Return where and why PyYAML refused ``text``: " at line L, column C: reason" (no place when it has none)."""
    if isinstance(exc, yaml.reader.ReaderError):  # a character YAML does not allow: a position, no mark
        code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "\0")
        hint = " (a NUL in a text file: is it UTF-16? save it as UTF-8)" if code == 0 else ""
        return (
            f" at {_line_and_column(text, exc.position)}: the character U+{code:04X} is not allowed in a YAML file"
            f"{hint}; to mean it, write it as an escape (\\x{code:02x}) in a double-quoted string"
        )
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    return f"{where}: {getattr(exc, 'problem', None) or exc}"


def _parse(path: Path, text: str) -> Any:  # noqa: ANN401 - the parsed document
    """Return the YAML document ``text`` read from ``path``; raise SpecError saying where it is broken."""
    try:
        return _read_yaml(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML{_yaml_problem(exc, text)}") from None
    except RecursionError:
        raise SpecError(f"{path}: not valid YAML: nested too deeply (hundreds of [ or {{ inside each other)") from None


def load_spec(path: str | Path) -> InstanceSpec:
    """Read and check an instance YAML file.

    Parameters
    ----------
    path : str or pathlib.Path
        The instance file: UTF-8 (with or without a byte order mark), at most :data:`MAX_FILE_BYTES` bytes.

    Returns
    -------
    InstanceSpec
        The checked spec, with relative paths resolved against the file's folder.

    Raises
    ------
    SpecError
        If the file is missing, too large, not UTF-8, is not YAML, or does not describe a valid instance.
    """
    path = Path(path)
    data = _parse(path, _read_text(path))
    spec = parse_spec(data, source=str(path), base_dir=path.resolve().parent)
    return spec
