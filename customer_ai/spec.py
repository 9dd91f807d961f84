"""Instance spec: the YAML a user writes, loaded and checked with errors that name the field.

An instance describes one propensity model: where the events are, the goal, who is eligible, which extra
features to build, how to train and what to output.  :func:`load_spec` is the only entry point that reads
a file; everything else takes an :class:`InstanceSpec`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

__all__ = [
    "Condition",
    "Eligibility",
    "EventPattern",
    "EventSource",
    "Goal",
    "InstanceSpec",
    "PROPENSITY_OF",
    "OutputSettings",
    "ProfileSource",
    "SpecError",
    "TrainingSettings",
    "load_spec",
    "parse_spec",
]

PROPENSITY_OF = {"will_occur": "conversion", "will_not_occur": "churn"}  # the goal's polarity names the score

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
        if self.op in ("in", "not_in"):
            if not isinstance(self.value, list) or not self.value:
                raise ValueError(f"operator {self.op!r} needs a non-empty list as value")
        elif self.op == "exists":
            if self.value is not None and not isinstance(self.value, bool):
                raise ValueError("operator 'exists' takes true, false or no value")
        elif self.value is None:
            raise ValueError(f"operator {self.op!r} needs a value")
        elif isinstance(self.value, (list, dict)):
            raise ValueError(f"operator {self.op!r} needs a single value, not a {type(self.value).__name__}")
        if self.op == "contains" and not isinstance(self.value, str):
            raise ValueError("operator 'contains' needs a string value")
        return self


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
    validation: ValidationSettings = Field(default_factory=ValidationSettings)
    schedule: str | None = "@weekly"
    start_date: dt.date = dt.date(2010, 1, 1)
    catchup: bool = False
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

    @field_validator("custom_events")
    @classmethod
    def _unique_names(cls, custom_events: list[CustomEvent]) -> list[CustomEvent]:
        names = [c.name for c in custom_events]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"custom event names must be unique; repeated: {duplicates}")
        return custom_events

    def resolve(self, path: str) -> Path:
        """Return ``path`` as absolute, relative to the instance file's folder."""
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else (self.base_dir / candidate).resolve()

    def spec_hash(self) -> str:
        """Return a short, stable hash of everything that defines the model.

        The file's location, the description and the schedule do not change the model and are left out.
        """
        payload = json.dumps(self.model_dump(mode="json", exclude={"description", "schedule"}), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def model_hash(self) -> str:
        """Return a short hash of what a trained model depends on; a model is reused only if it matches.

        Leaves out what only affects scheduling, validation, outputs and the quality gate.
        """
        exclude = {
            "description": True,
            "schedule": True,
            "start_date": True,
            "catchup": True,
            "validation": True,
            "output": True,
            "training": {"retrain_every_days", "min_auc"},
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


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a key repeated in one mapping (the last one would silently win)."""

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


# YAML 1.2 booleans only: YAML 1.1 also reads yes/no/on/off/y/n as booleans, which turned a condition value
# like NO (Norway) into false and silently matched nothing.  What a user writes stays a string.
_UniqueKeyLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_UniqueKeyLoader.add_implicit_resolver(
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
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    return parse_spec(data, source=str(path), base_dir=path.resolve().parent)
