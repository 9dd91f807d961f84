"""Instance spec: the YAML a user writes, loaded and checked with errors that name the field.

An instance describes one propensity model: where the events are, the goal, who is eligible, which extra
features to build, how to train and what to output.  :func:`load_spec` is the only entry point that reads
a file; everything else takes an :class:`InstanceSpec`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

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
SEGMENT_FIELDS = ("profile_id", "probability", "score", "percentile", "bucket")  # the score columns a segment tests

Operator = Literal["eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "contains", "exists"]


class SpecError(ValueError):
    """An instance file that cannot be used; the message names the file, the field and the reason."""


def _is_number_field(annotation: object) -> bool:
    """Whether a field holds a number (int or float, optional or not) and never a boolean."""
    options = get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else (annotation,)
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
    """Raise ValueError when ``value`` does not fit operator ``op`` (a list for in/not_in, one value otherwise)."""
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            raise ValueError(f"operator {op!r} needs a non-empty list as value")
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


class Goal(_Strict):
    """What the model predicts: whether the listed events occur in ``[as_of, as_of + window_days)``."""

    occurrence: Literal["will_occur", "will_not_occur"]
    match: Literal["any", "all"] = "any"
    events: Annotated[list[EventPattern], Field(min_length=1)]
    window_days: Annotated[int, Field(ge=1, le=3650)]


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

    def left_out_of_hashes(self) -> set[str]:
        """Return the settings that the spec and model hashes leave out: ``max_profiles`` at its default.

        The cap came after models were stored; at its default it is left out, so the hashes of existing
        instances (and the reuse of their models) stay as they were, while any other value changes the model
        hash and so retrains.
        """
        return {"max_profiles"} if self.max_profiles == DEFAULT_MAX_PROFILES else set()


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
    for a rare goal whose scores are all low).
    """

    factors: Annotated[int, Field(ge=0, le=50)] = 5
    buckets: dict[Literal["medium", "high"], Annotated[float, Field(gt=0, lt=100)]] = Field(
        default_factory=lambda: {"medium": 25.0, "high": 75.0}
    )
    buckets_by: Literal["score", "percentile"] = "score"

    @field_validator("buckets")
    @classmethod
    def _ordered(cls, buckets: dict[str, float]) -> dict[str, float]:
        if set(buckets) != {"medium", "high"}:
            raise ValueError("buckets needs both 'medium' and 'high' score thresholds")
        if not buckets["medium"] < buckets["high"]:
            raise ValueError("the 'medium' threshold must be below the 'high' threshold")
        return buckets


class ScoringSettings(_Strict):
    """How scoring is split: ``partitions`` hash partitions of the eligible profiles, scored one by one.

    ``auto`` (the default) picks the count from the number of eligible profiles (see
    :func:`customer_ai.partitions.partition_count`); an integer fixes it.  Partitions change where and in what
    memory the profiles are scored, never the scores: a run with 4 gives exactly the scores of a run with 1.
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
    validation: ValidationSettings = Field(default_factory=ValidationSettings)
    segments: list[Segment] = Field(default_factory=list)
    schedule: str | None = "@weekly"
    start_date: dt.date = dt.date(2010, 1, 1)
    catchup: bool = False
    trigger_as_of: dt.date | None = None  # the as-of date Airflow's trigger form offers (data that has ended)
    base_dir: Path = Field(default=Path("."), exclude=True)

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

        The file's location, the description, the schedule, the trigger form's as-of date, the segments and how
        scoring is split into partitions do not change the model or its scores and are left out, and so are
        settings at a default they had before they existed (:meth:`TrainingSettings.left_out_of_hashes`).
        """
        exclude: dict = dict.fromkeys(("description", "schedule", "trigger_as_of", "segments", "scoring"), True)
        exclude["training"] = self.training.left_out_of_hashes()
        payload = json.dumps(self.model_dump(mode="json", exclude=exclude), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def model_hash(self) -> str:
        """Return a short hash of what a trained model depends on; a model is reused only if it matches.

        Leaves out what only affects scheduling, validation, outputs, segments and the quality gate.  A
        ``training.max_profiles`` other than its default is in it (another cap trains on other profiles).
        """
        exclude = {
            "description": True,
            "schedule": True,
            "start_date": True,
            "catchup": True,
            "trigger_as_of": True,
            "segments": True,
            "validation": True,
            "output": True,
            "scoring": True,
            "training": {"retrain_every_days", "min_auc", *self.training.left_out_of_hashes()},
        }
        payload = json.dumps(self.model_dump(mode="json", exclude=exclude), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def goal_in_words(self) -> str:
        """Describe the goal in one sentence, e.g. "purchase occurs within 30 days"."""
        patterns = [_pattern_in_words(p.where) for p in self.goal.events]
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


def _pattern_in_words(where: list[Condition]) -> str:
    parts = []
    for cond in where:
        if cond.field == "event_type" and cond.op == "eq":
            parts.append(str(cond.value))
        elif cond.op == "exists":
            parts.append(f"{cond.field} {'is set' if cond.value in (None, True) else 'is empty'}")
        else:
            parts.append(f"{cond.field} {_OP_WORDS[cond.op]} {cond.value}")
    return "(" + " with ".join(parts) + ")" if len(parts) > 1 else parts[0]


class _UniqueKeys:
    """Constructor mixin that refuses a key repeated in one mapping (the last one would silently win)."""

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
    data = _whole_characters(data, source, ())
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
    return spec


_SURROGATE = re.compile("[\ud800-\udfff]")


def _whole_characters(value: Any, source: str, where: tuple) -> Any:  # noqa: ANN401 - any parsed YAML value
    r"""Return ``value`` with UTF-16 surrogate pairs (``"\ud83d\ude00"`` in a double-quoted YAML string) joined.

    YAML reads each ``\u`` escape alone, so a character written as its two UTF-16 halves arrives as two lone
    surrogates, which no UTF-8 file, report or database can hold.  A pair is joined into its character, as JSON
    readers do; a half without its other half is refused with where it is (keys included).
    """
    if isinstance(value, dict):
        return {
            _whole_characters(key, source, where): _whole_characters(item, source, (*where, key))
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_whole_characters(item, source, (*where, i)) for i, item in enumerate(value)]
    if not isinstance(value, str) or not _SURROGATE.search(value):
        return value
    try:
        return value.encode("utf-16", "surrogatepass").decode("utf-16")
    except UnicodeDecodeError:
        half = _SURROGATE.search(value.encode("utf-16", "surrogatepass").decode("utf-16", "surrogatepass"))
        shown = f"\\u{ord(half.group()):04x}" if half else "a surrogate"
        raise SpecError(
            f"{source}: {_format_location(where)}: holds half of a UTF-16 surrogate pair ({shown}) without its "
            "other half: no UTF-8 text can hold it; write the character itself, or escape it as \\UXXXXXXXX"
        ) from None


def _read_yaml(text: str) -> Any:  # noqa: ANN401 - the parsed document
    """Parse ``text`` with libyaml; a document it refuses is parsed again in Python for the usual message."""
    try:
        return yaml.load(text, Loader=_FastUniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError:
        # libyaml words its errors differently: the pure-Python parser gives the message users and tests know
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


def load_spec(path: str | Path) -> InstanceSpec:
    """Read and check an instance YAML file.

    Parameters
    ----------
    path : str or pathlib.Path
        The instance file.

    Returns
    -------
    InstanceSpec
        The checked spec, with relative paths resolved against the file's folder.

    Raises
    ------
    SpecError
        If the file is missing, is not YAML, or does not describe a valid instance.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the instance file ({exc.strerror})") from None
    try:
        data = _read_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    return parse_spec(data, source=str(path), base_dir=path.resolve().parent)
