"""Point-in-time features: per profile, computed only from events in ``[as_of - lookback, as_of)``.

Everything is vectorised over the events in the window, with no per-profile Python loop: the events are encoded
once (:class:`customer_ai.windows.EventIndex`: integer profile codes, rows sorted by profile then time, shared by
every snapshot of a run), so a profile's events in a window are a contiguous run of rows and counts, first and
last events and distinct days are NumPy reductions over integer codes (``bincount``, run boundaries).  Sums and
means of money values and the spread of gaps between active days are left to pandas' group-by, keyed by those
integer codes and fed the rows in the events' order: it sums floats with compensation in row order, and the
features keep its exact values.  Measured with ``bench/features.py`` (10k and 100k profiles, 0.5M and 5M
events), labels and features take 3-6 times less time than group-bys over string ids outside the BG/NBD fits,
which are unchanged (see docs/benchmarks.md); the output is identical (``tests/test_features.py`` compares every
bit with the former code, kept in ``tests/feature_reference.py``).
Which event types and categorical columns become features is decided once, from the training data, and kept
in a :class:`FeaturePlan` so that scoring builds exactly the same columns.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd

from customer_ai.bgnbd import (
    BGNBD,
    CountsTally,
    fit_counts,
    fit_summary,
    merge_counts,
    profile_rows,
    repeat_counts,
    repeat_summary,
)
from customer_ai.conditions import patterns_mask, where_mask
from customer_ai.events import CANONICAL_COLUMNS
from customer_ai.labels import goal_value_per_code
from customer_ai.progress import logger
from customer_ai.spec import Condition, InstanceSpec
from customer_ai.windows import EventIndex, rows_where

__all__ = [
    "COUNT_WINDOWS",
    "FEATURES_VERSION",
    "GOAL_VALUE_RATE",
    "FeatureInfo",
    "money_prefix",
    "FeatureEvidence",
    "FeaturePlan",
    "attribute_categories",
    "build_features",
    "classifier_columns",
    "count_windows",
    "feature_infos",
    "fit_repeat_counts",
    "fit_repeat_models",
    "history_span",
    "plan_features",
    "repeat_model_counts",
    "fixed_scales",
    "ratio_windows",
    "repeat_model_names",
]

COUNT_WINDOWS = (7, 30, 90, 365)
RATE_DAYS = 30  # goal_days_per_30d: goal days per this many days of the history read
GOAL_VALUE_RATE = "goal_value_per_30d"  # a valued goal's spend per RATE_DAYS days of the history read
VALUE_ONLY = (GOAL_VALUE_RATE,)  # features only the value model reads: a goal's chance is the same with a value
# What the features mean, as a number stored with every model: a model is reused only by code that builds its
# features the same way.  2: goal_repeat_days and goal_days_since_first over the lookback (1: everything read),
# goal_days_per_30d added.
FEATURES_VERSION = 2
MAX_CATEGORIES = 50
_DENSE_CELLS = 1 << 25  # most frequent values: a (profile x value) count table up to this size, else a sort


def classifier_columns(columns: Iterable[str]) -> list[str]:
    """Return the feature columns the propensity model reads: all but the value model's own (:data:`VALUE_ONLY`).

    Giving a goal a value adds a model of its amount; the probability of the goal stays what it was without one.
    """
    return [column for column in columns if column not in VALUE_ONLY]


@dataclass(frozen=True)
class FeatureInfo:
    """What a feature means, in words.

    ``template`` is formatted with ``value`` (already rendered as text by ``style``) and reads right for any
    number but one; ``one`` is used instead when the value reads as one ("1 purchase", "1 day", "less than
    1 day"); ``zero`` is the whole text for a value of 0 ("no purchase in the last 30 days"); ``missing`` is
    used when the profile has no value (for example no such event in the lookback).  ``subject`` names what a
    present value tells about the profile, so that two features saying the same thing in other words
    ("country is Portugal", "country mostly Portugal") can be recognised (see :meth:`claim`).

    ``absence`` is ``(scope, days)`` when a missing or zero value says no more than that at most ``at_most``
    (default none) things of ``scope`` happened in the last ``days`` days: scope ``""`` is any event, an event
    source's feature prefix is its events, a name with a space is something else ("active days").  ``tally``
    names the scope whose things a present value counts over those days ("active on 2 different days").  Such
    statements follow from a stronger one of the same profile ("no purchase in the last 30 days" from "no
    purchase in the last 365 days", all of them from "no activity in the last 365 days", "at most one active
    day" from "active on 1 day"), which then speaks for them (see :meth:`bound`).

    ``compare`` words a present value's place among the training profiles, above or below most of them ("more
    than", "fewer than"; "longer ago than", "more recent than"), as :func:`customer_ai.explain.top_factors` writes
    it ("4 purchases in the last 90 days (more than 81% of customers)").  ``lean`` is how the value reads plainly:
    +1 when a larger value argues for the goal (more purchases, for a goal of buying), -1 when against (longer
    since the last purchase; every direction turned round for a goal that must not occur), 0 when a plain reading
    argues neither way (an average amount, a cancellation).  ``absent_lean`` is the same for the statement of a
    missing or zero value ("no purchase in the last 30 days", "at most one active day": -1 for a goal of buying).
    ``family`` joins the outputs of one model of the profile (the
    repeat-buying model's chance, expected count and chance of still being active): a profile's present values of
    a family are one statement, spoken by the member that ``leads``.
    """

    name: str
    template: str
    missing: str
    style: str = "int"  # int | days | money | ratio | number | text
    categorical: bool = False
    fill: float | None = None  # value for profiles without events (counts are 0, "days since" stays missing)
    one: str | None = None
    zero: str | None = None
    subject: str | None = None
    absence: tuple[str, int] | None = None
    at_most: int = 0
    tally: str | None = None
    compare: tuple[str, str] | None = None
    lean: int = 0
    absent_lean: int = 0
    family: str | None = None
    leads: bool = False

    def describe(self, value: object) -> str:
        """Return the readable text for one profile's value, e.g. "3 purchases in the last 30 days"."""
        if _is_missing(value):
            return self.missing
        if self._is_zero(value):
            return self.zero  # type: ignore[return-value]
        text, singular = _render(value, self.style)
        template = self.one if singular and self.one is not None else self.template
        return template.format(value=text)

    @property
    def label(self) -> str:
        """Return the feature in words, its value written N ("average purchase worth N")."""
        return self.template.format(value="N")

    def claim(self, value: object) -> str | None:
        """Return what the description of ``value`` asserts, to spot two features of a profile saying the same.

        A missing or zero value gives its text: those are the states that different features word alike ("no
        purchase in the last 365 days" from a count, a recency and a total).  A feature with a ``subject``
        gives the subject and the rendered value; a member of a ``family`` gives the family.  Any other value
        gives None: its text names its own feature and no other feature of the plan can say it.
        """
        if self.is_absent(value):
            return self.describe(value)
        if self.family is not None:
            return self.family
        if self.subject is not None:
            return f"{self.subject}: {_render(value, self.style)[0]}"
        return None

    def bound(self, value: object) -> tuple[str, int, int] | None:
        """Return ``(scope, days, n)`` when ``value`` says "at most n things of scope in the last days days"."""
        if self.absence is None:
            return None
        scope, days = self.absence
        if self.is_absent(value):
            return scope, days, self.at_most
        if self.tally is not None:
            return self.tally, days, int(float(value))  # type: ignore[arg-type]
        return None

    @property
    def resolution(self) -> float:
        """Return how far apart two present numbers may be and still read the same (0 for text)."""
        return _RESOLUTION.get(self.style, 0.0)

    def is_absent(self, value: object) -> bool:
        """Return whether ``value`` is missing or a zero with its own words: the profile had none of it."""
        return _is_missing(value) or self._is_zero(value)

    def _is_zero(self, value: object) -> bool:
        return self.zero is not None and self.style != "text" and float(value) == 0  # type: ignore[arg-type]


def _is_missing(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, (float, np.floating)) and math.isnan(value)


# numbers that read the same are closer than this: whole days/counts (or "less than 1"), hundredths, percent
_RESOLUTION = {"days": 1.0, "int": 1.0, "money": 0.01, "ratio": 0.01, "number": 0.01}


def _render(value: object, style: str) -> tuple[str, bool]:
    """Return ``value`` as people read it in ``style`` and whether it takes the singular ("1 day")."""
    if style == "text":
        return str(value), False
    number = float(value)  # type: ignore[arg-type]
    if style == "days":
        if 0 <= number < 1:
            return "less than 1", True
        text = f"{number:,.0f}" if abs(number) >= 10 else f"{number:.1f}".removesuffix(".0")
    elif style == "int":
        text = f"{number:,.0f}"
    elif style == "money":
        text = f"{number:,.2f}"
    elif style == "ratio":
        text = f"{number:.0%}"
        if text == "100%" and number < 1:
            text = "over 99%"
        elif text == "0%" and number > 0:
            text = "under 1%"
    else:
        text = f"{number:,.0f}" if number.is_integer() else f"{number:,.2f}".rstrip("0").rstrip(".")
    return text, text == "1"


def count_windows(lookback: int) -> list[int]:
    """Return the count windows in days: 7/30/90/365 below the lookback, then the lookback itself."""
    return [w for w in COUNT_WINDOWS if w < lookback] + [lookback]


def ratio_windows(lookback: int) -> list[tuple[int, int]]:
    """Return (recent, longer) window pairs for activity ratios: 30 of 90 days, 90 of the lookback."""
    points = [w for w in (30, 90) if w < lookback] + [lookback]
    return list(zip(points, points[1:], strict=False))


def history_span(plan: FeaturePlan, as_of: pd.Timestamp) -> tuple[int, float]:
    """Return the days the features read back from ``as_of`` and the factor giving their counts per lookback.

    A plan with a window reads ``lookback_days`` days and counts them as they are (factor 1).  A plan of the
    whole history (``history_from`` set: a model trained and judged on one period) reads from the start of the
    history, which at scoring lies further back than at its one training snapshot: the counts, sums and repeat
    days over that span are multiplied by ``lookback_days / span``, so that they are per ``lookback_days`` days
    of history at training and at scoring alike (rates normalised by the history covered, the same meaning
    everywhere), while the scoring date uses all of its longer history, as a count over everything would.
    Days since an event and gaps between active days are not rescaled: they are days, and at scoring may lie
    beyond what the one period could show (trees treat them as the longest seen).
    """
    if plan.history_from is None:
        return plan.lookback_days, 1.0
    covered = math.ceil((as_of - pd.Timestamp(plan.history_from)) / pd.Timedelta(days=1))
    span = max(plan.lookback_days, covered)
    return span, plan.lookback_days / span


def _history_rates(plan: FeaturePlan, spec: InstanceSpec) -> tuple[list[str], list[str]]:
    """Return the columns counted over a whole-history plan's span (scaled by it) and the ratios divided by one."""
    lookback = plan.lookback_days
    counted = [f"{prefix}_count_{lookback}d" for prefix, _, _ in _sources(plan, spec)]
    counted += [f"{prefix}_value_sum" for prefix in plan.valued_sources]
    counted.append("active_days")
    if plan.repeat_model:
        counted.append(repeat_model_names(spec)[3])
    ratios = [f"activity_ratio_{recent}_{longer}" for recent, longer in ratio_windows(lookback) if longer == lookback]
    return counted, ratios


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return slug or "event"


MAX_NAME_CHARACTERS = 200  # an event type longer than this names no feature (its name would be copied everywhere)


def _nameable(counts: pd.Series) -> pd.Series:
    """Return the event type counts without the types too long to name a feature, each said in a warning.

    A type of a million characters would become the name of several features, copied into the training set, the
    model, its metadata and the report: tens of megabytes per run.  Its events still count in the activity
    features.
    """
    long = [str(t) for t in counts.index if len(str(t)) > MAX_NAME_CHARACTERS]
    for name in long:
        logger.warning(
            "event type %r (%s characters, %s events) gets no features of its own: a name longer than %d "
            "characters cannot name a feature; its events still count in the activity features",
            name[:60] + "…",
            f"{len(name):,}",
            f"{int(counts[name]):,}",
            MAX_NAME_CHARACTERS,
        )
    return counts.drop(index=long) if long else counts


@dataclass
class FeaturePlan:
    """Which features an instance builds; learned from training data and stored with the model.

    Attributes
    ----------
    lookback_days : int
        Features see events in ``[as_of - lookback_days, as_of)``.
    event_types : list of str
        Event types that get their own features (the most frequent ones).
    valued_sources : list of str
        Feature prefixes (event type slugs or custom event names) whose events carry a ``value``.
    categorical_columns : dict
        Extra event column -> categories; the profile's most frequent value becomes a categorical feature.
    profile_columns : dict
        Profile attribute -> categories (empty list for numeric attributes).
    repeat_model : bool
        Whether to add the BG/NBD repeat-buying model's view of the goal events (expected goal events in the
        goal window, probability of being alive), fitted at each date on all the goal events before it.
    history_from : str, optional
        Set (ISO time) for a model trained and judged on one period: its features read the whole history, from
        this instant (where the history starts) to the as-of date, and what they count over it is counted per
        ``lookback_days`` days of it (see :func:`history_span`).  None: the window ``[as_of - lookback_days,
        as_of)``.
    goal_value : str, optional
        The events' column a goal's value adds up (``goal.value.field``): its sum over the profile's goal events in
        the history read, per 30 days of it, becomes a feature (``goal_value_per_30d``).  None for a goal without
        a value, and then left out of :meth:`to_dict`, so plans of such goals read and write as before.
    """

    lookback_days: int
    event_types: list[str] = field(default_factory=list)
    valued_sources: list[str] = field(default_factory=list)
    categorical_columns: dict[str, list[str]] = field(default_factory=dict)
    profile_columns: dict[str, list[str]] = field(default_factory=dict)
    repeat_model: bool = False
    history_from: str | None = None
    goal_value: str | None = None

    def to_dict(self) -> dict:
        """Return the plan as JSON-ready data."""
        data = asdict(self)
        if self.goal_value is None:
            del data["goal_value"]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> FeaturePlan:
        """Rebuild a plan saved with :meth:`to_dict`."""
        return cls(**data)


def _sources(plan: FeaturePlan, spec: InstanceSpec) -> list[tuple[str, str, list]]:
    """Return (feature prefix, words, where-conditions) for every event type and custom event."""
    custom = [(c.name, c.name.replace("_", " "), list(c.where)) for c in spec.custom_events]
    taken = {name for name, _, _ in custom}
    by_type = [
        (_slug(t), t, [Condition(field="event_type", op="eq", value=t)])
        for t in plan.event_types
        if _slug(t) not in taken
    ]
    return by_type + custom


@dataclass
class FeatureEvidence:
    """What :func:`plan_features` learns from events before a date, in a form that adds up over partitions.

    Every fact is about event types, columns or single profiles, so the evidence of the partitions of a run's
    profiles, merged (:meth:`merge`), is the evidence of all its events, and :meth:`plan` gives the same plan.

    Attributes
    ----------
    type_counts : pandas.Series
        Events per event type.
    valued_types : set of str
        Event types with at least one event carrying a ``value``.
    valued_custom : set of str
        Custom events (names) with at least one event carrying a ``value``.
    repeated : bool
        Whether some profile has goal events on two different days (BG/NBD can be fitted).
    categories : dict
        Extra text column -> its distinct values, or None once it has more than :data:`MAX_CATEGORIES`.
    """

    type_counts: pd.Series
    valued_types: set[str] = field(default_factory=set)
    valued_custom: set[str] = field(default_factory=set)
    repeated: bool = False
    categories: dict[str, set[str] | None] = field(default_factory=dict)

    @classmethod
    def of(cls, events: pd.DataFrame, spec: InstanceSpec, before: pd.Timestamp) -> FeatureEvidence:
        """Return the evidence of the ``events`` strictly before ``before``."""
        stamps = events["timestamp"]
        if stamps.is_monotonic_increasing:  # canonical events: those before the date are a prefix, taken without a copy
            past = events.iloc[: int(stamps.searchsorted(before, side="left"))]
        else:
            past = events.loc[(stamps < before).to_numpy()]
        valued = past["value"].notna().to_numpy()
        evidence = cls(
            type_counts=past["event_type"].value_counts(),
            valued_types={str(t) for t in pd.unique(past["event_type"].to_numpy()[valued])},
            valued_custom={c.name for c in spec.custom_events if (valued & where_mask(past, list(c.where))).any()},
        )
        goal_days = rows_where(past[["profile_id", "timestamp"]], patterns_mask(past, spec.goal.events))
        goal_days = goal_days.assign(day=goal_days["timestamp"].dt.floor("D")).drop_duplicates(["profile_id", "day"])
        evidence.repeated = bool(goal_days["profile_id"].duplicated().any())
        for column in past.columns:
            if column in CANONICAL_COLUMNS or not _is_text(past[column]):
                continue
            values = set(past[column].dropna().astype(str).unique())
            evidence.categories[str(column)] = values if len(values) <= MAX_CATEGORIES else None
        return evidence

    @classmethod
    def merge(cls, parts: Sequence[FeatureEvidence]) -> FeatureEvidence:
        """Return the evidence of the union of disjoint sets of profiles' events, from each set's."""
        counts = [part.type_counts for part in parts if len(part.type_counts)]
        merged = cls(
            type_counts=pd.concat(counts).groupby(level=0, sort=False).sum() if counts else parts[0].type_counts
        )
        for part in parts:
            merged.valued_types |= part.valued_types
            merged.valued_custom |= part.valued_custom
            merged.repeated = merged.repeated or part.repeated
            for column, values in part.categories.items():
                known = merged.categories.get(column, set())
                joined = None if known is None or values is None else known | values
                merged.categories[column] = joined if joined is None or len(joined) <= MAX_CATEGORIES else None
        return merged

    def plan(
        self,
        spec: InstanceSpec,
        profiles: pd.DataFrame | None = None,
        *,
        lookback_days: int | None = None,
        categories: Mapping[str, list[str]] | None = None,
    ) -> FeaturePlan:
        """Return the feature plan this evidence gives (see :func:`plan_features`).

        The profile attributes' columns come from ``categories`` (:func:`attribute_categories` of every profile's
        attributes) or, without it, from ``profiles``.
        """
        top = self.type_counts.sort_index().sort_values(ascending=False, kind="stable")
        # "add to cart" and "add-to-cart" would share feature names: keep the more frequent one
        top = top[~pd.Index([_slug(str(t)) for t in top.index]).duplicated()]
        top = _nameable(top)
        event_types = [str(t) for t in top.index[: spec.training.max_event_types]]
        lookback = spec.eligibility.lookback_days if lookback_days is None else lookback_days
        plan = FeaturePlan(
            lookback_days=lookback,
            event_types=event_types,
            repeat_model=self.repeated,
            goal_value=None if spec.goal.value is None else spec.goal.value.field,
        )
        custom = {c.name for c in spec.custom_events}
        for prefix, words, _ in _sources(plan, spec):
            if (prefix in custom and prefix in self.valued_custom) or (
                prefix not in custom and words in self.valued_types
            ):
                plan.valued_sources.append(prefix)
        for column, values in self.categories.items():
            if values is not None and 1 < len(values):
                plan.categorical_columns[column] = sorted(values)
        if categories is None and profiles is not None:
            categories = attribute_categories(profiles)
        plan.profile_columns.update({column: list(values) for column, values in (categories or {}).items()})
        return plan


def attribute_categories(profiles: pd.DataFrame) -> dict[str, list[str]]:
    """Return each attribute column's categories: its distinct text values, sorted ([] for a numeric column)."""
    return {
        str(column): sorted(profiles[column].dropna().astype(str).unique()) if _is_text(profiles[column]) else []
        for column in profiles.columns
    }


def plan_features(
    events: pd.DataFrame,
    spec: InstanceSpec,
    before: pd.Timestamp,
    profiles: pd.DataFrame | None = None,
    *,
    lookback_days: int | None = None,
) -> FeaturePlan:
    """Decide which features to build, looking only at events strictly before ``before``.

    Parameters
    ----------
    events : pandas.DataFrame
        Canonical events.
    spec : InstanceSpec
        The instance (custom events, caps).
    before : pandas.Timestamp
        Only events before this date are looked at: the oldest training snapshot, so that the choice of event
        types and categories uses nothing a training row could not know (and nothing of the validation window).
    profiles : pandas.DataFrame, optional
        Static profile attributes indexed by ``profile_id``.
    lookback_days : int, optional
        The feature lookback; ``eligibility.lookback_days`` by default.

    Returns
    -------
    FeaturePlan
        :meth:`FeatureEvidence.plan` of the events' :class:`FeatureEvidence`.
    """
    return FeatureEvidence.of(events, spec, before).plan(spec, profiles, lookback_days=lookback_days)


def _is_text(column: pd.Series) -> bool:
    return (
        pd.api.types.is_string_dtype(column.dtype)
        or isinstance(column.dtype, pd.CategoricalDtype)
        or column.dtype == object
    )


# a name with one of these reads as an action ("add to cart", "sign up", "checkout started"): count its events
_ACTION_WORDS = frozenset({"to", "from", "in", "into", "on", "of", "for", "up", "out", "off", "with", "at", "by"})


def _nouns(words: str) -> tuple[str, str]:
    """Return the singular and plural of what an event name counts: purchase/purchases, add to cart event/events.

    A one-or-more-word name that reads as a noun ("purchase", "page view") gets its plural; a name that reads as
    an action or is plural already ("add to cart", "order completed", "news") counts its events.
    """
    parts = words.split()
    last = parts[-1].lower() if parts else ""
    if last in ("event", "events"):
        base = words if last == "event" else words[:-1]
        return base, f"{base}s"
    action = any(p.lower() in _ACTION_WORDS for p in parts[1:]) or last.endswith(("ed", "ing"))
    if not last or action or (last.endswith("s") and not last.endswith("ss")):
        return f"{words} event", f"{words} events"
    if last.endswith(("ss", "x", "z", "ch", "sh")):
        return words, f"{words}es"
    if len(last) > 1 and last.endswith("y") and last[-2] not in "aeiou":
        return words, f"{words[:-1]}ies"
    return words, f"{words}s"


def _literal(words: str) -> str:
    """Return user-given words safe to put in a template (braces doubled)."""
    return words.replace("{", "{{").replace("}", "}}")


def _goal_nouns(spec: InstanceSpec) -> tuple[str, str]:
    """Return what a goal event is called: its event type or the custom event it matches, else "goal event"."""
    patterns = [list(p.where) for p in spec.goal.events]
    for custom in spec.custom_events:
        if all(where == list(custom.where) for where in patterns):
            return _nouns(custom.name.replace("_", " "))
    types = set()
    for where in patterns:
        if len(where) != 1 or where[0].field != "event_type" or where[0].op != "eq":
            return "goal event", "goal events"
        types.add(str(where[0].value))
    if len(types) == 1:
        return _nouns(types.pop().replace("_", " "))
    return "goal event", "goal events"


def money_prefix(currency: str | None) -> str:
    """Return what goes before an amount: a code and a space ("GBP 12.50"), a symbol alone ("$12.50"), or nothing."""
    if not currency:
        return ""
    return f"{currency} " if currency.isalpha() else currency


# how a value compares with the training profiles' (see FeatureInfo.compare): words for above most, below most
_MANY = ("more than", "fewer than")
_MONEY = ("more than", "less than")
_CHANCE = ("higher than", "lower than")
_AGO = ("longer ago than", "more recent than")
_REPEAT_MODEL = "repeat-buying model"


def _goal_lean(spec: InstanceSpec) -> int:
    """Return +1 when more of the goal's events argue for the goal (it must occur), -1 when against."""
    return 1 if spec.goal.occurrence == "will_occur" else -1


def _of_goal(where: list[Condition], spec: InstanceSpec) -> bool:
    """Return whether events matching ``where`` are all goal events: it holds every test of one goal pattern."""
    return any(all(test in where for test in pattern.where) for pattern in spec.goal.events)


def _source_infos(
    prefix: str, words: str, *, lookback: int, valued: bool, currency: str | None = None, lean: int = 0
) -> list[FeatureInfo]:
    """Return the infos of one event type's or custom event's features (``lean``: of its counts, see FeatureInfo)."""
    one, many = (_literal(n) for n in _nouns(words.replace("_", " ")))
    none = f"no {one} in the last {lookback} days"
    infos = [
        FeatureInfo(
            f"{prefix}_count_{w}d",
            f"{{value}} {many} in the last {w} days",
            none,
            "int",
            fill=0.0,
            one=f"{{value}} {one} in the last {w} days",
            zero=f"no {one} in the last {w} days",
            absence=(prefix, w),
            compare=_MANY,
            lean=lean,
            absent_lean=-lean,
        )
        for w in count_windows(lookback)
    ]
    nothing = (prefix, lookback)
    infos += [
        FeatureInfo(
            f"{prefix}_days_since_last",
            f"last {one} {{value}} days ago",
            none,
            "days",
            one=f"last {one} {{value}} day ago",
            absence=nothing,
            compare=_AGO,
            lean=-lean,
            absent_lean=-lean,
        ),
        FeatureInfo(
            f"{prefix}_days_since_first",
            f"earliest {one} in the last {lookback} days was {{value}} days ago",
            none,
            "days",
            one=f"earliest {one} in the last {lookback} days was {{value}} day ago",
            subject=f"first {one}",
            absence=nothing,
            compare=_AGO,
            absent_lean=-lean,
        ),
    ]
    if valued:
        infos += [
            # equal only for one valued event: then both say what it was worth
            FeatureInfo(
                f"{prefix}_value_sum",
                f"{many} worth {money_prefix(currency)}{{value}} in the last {lookback} days",
                none,
                "money",
                subject=f"{one} value",
                absence=nothing,
                compare=_MONEY,
                lean=lean,
                absent_lean=-lean,
            ),
            FeatureInfo(
                f"{prefix}_value_mean",
                f"average {one} worth {money_prefix(currency)}{{value}}",
                none,
                "money",
                subject=f"{one} value",
                absence=nothing,
                compare=_MONEY,
                absent_lean=-lean,
            ),
        ]
    return infos


def _repeat_model_infos(spec: InstanceSpec, lookback: int) -> list[FeatureInfo]:
    """Return the infos of the repeat-buying model's view of the goal events (see :func:`repeat_model_names`)."""
    window = spec.goal.window_days
    one, many = (_literal(n) for n in _goal_nouns(spec))
    chance, expected, alive, repeats, since_first, rate = repeat_model_names(spec)
    unknown = "no repeat-buying estimate"
    lean = _goal_lean(spec)
    model = {"family": _REPEAT_MODEL, "lean": lean}  # one model's reading of the profile: one statement
    return [
        FeatureInfo(
            chance,
            f"repeat-buying model: {{value}} chance of at least one {one} in the next {window} days",
            unknown,
            "ratio",
            compare=_CHANCE,
            leads=True,
            **model,
        ),
        FeatureInfo(
            expected,
            f"repeat-buying model: {{value}} {many} expected in the next {window} days",
            unknown,
            "number",
            one=f"repeat-buying model: {{value}} {one} expected in the next {window} days",
            compare=_MANY,
            **model,
        ),
        FeatureInfo(
            alive,
            "repeat-buying model: {value} chance of still being an active customer",
            unknown,
            "ratio",
            compare=_CHANCE,
            **model,
        ),
        FeatureInfo(
            repeats,
            f"repeat {many} on {{value}} different days in the last {lookback} days",
            f"no {one} in the last {lookback} days",
            "int",
            one=f"repeat {many} on {{value}} day in the last {lookback} days",
            zero=f"no repeat {one} in the last {lookback} days",
            compare=_MANY,
            lean=lean,
            absent_lean=-lean,
        ),
        FeatureInfo(
            since_first,
            f"earliest {one} in the last {lookback} days was {{value}} days ago",
            f"no {one} in the last {lookback} days",
            "days",
            one=f"earliest {one} in the last {lookback} days was {{value}} day ago",
            subject=f"first {one}",
            absence=("goal events", lookback),  # missing: no goal event in the lookback, which "no activity" covers
            compare=_AGO,
            absent_lean=-lean,
        ),
        FeatureInfo(
            rate,
            f"{many} on {{value}} days per 30 days of the history read",
            f"no {one} in the history read",
            "number",
            zero=f"no {one} in the history read",
            compare=_MANY,
            lean=lean,
            absent_lean=-lean,
        ),
    ]


def _goal_value_info(spec: InstanceSpec) -> FeatureInfo:
    """Return the info of a valued goal's spend per 30 days of the history read (``goal_value_per_30d``)."""
    one, many = (_literal(n) for n in _goal_nouns(spec))
    lean = _goal_lean(spec)
    return FeatureInfo(
        GOAL_VALUE_RATE,
        f"{many} worth {money_prefix(spec.output.currency)}{{value}} per 30 days of the history read",
        f"no {one} in the history read",
        "money",
        fill=0.0,
        zero=f"no {one} value in the history read",
        compare=_MONEY,
        lean=lean,
        absent_lean=-lean,
    )


def feature_infos(plan: FeaturePlan, spec: InstanceSpec) -> list[FeatureInfo]:
    """Return the features the plan builds, in column order, with their descriptions.

    The words follow the numbers ("1 purchase", "2 purchases", "no purchase", "less than 1 day ago"); money has
    two decimals, thousands separators and the instance's ``output.currency`` ("GBP 1,250.00", "$1,250.00").
    Features that can say the same thing about a profile share the same words for it, or a ``subject`` (see
    :meth:`FeatureInfo.claim`).
    """
    lookback = plan.lookback_days
    infos: list[FeatureInfo] = []
    lean = _goal_lean(spec)
    for prefix, words, where in _sources(plan, spec):
        valued = prefix in plan.valued_sources
        infos += _source_infos(
            prefix,
            words,
            lookback=lookback,
            valued=valued,
            currency=spec.output.currency,
            lean=lean if _of_goal(where, spec) else 0,  # what other events argue for is no plain reading
        )
    none = f"no activity in the last {lookback} days"
    nothing = ("", lookback)  # no event of any kind
    infos += [
        FeatureInfo(
            "tenure_days",
            f"earliest activity in the last {lookback} days was {{value}} days ago",
            none,
            "days",
            one=f"earliest activity in the last {lookback} days was {{value}} day ago",
            absence=nothing,
            compare=_AGO,
            absent_lean=-lean,
        ),
        FeatureInfo(
            "days_since_last_event",
            "last activity {value} days ago",
            none,
            "days",
            one="last activity {value} day ago",
            absence=nothing,
            compare=_AGO,
            lean=-lean,
            absent_lean=-lean,
        ),
        FeatureInfo(
            "active_days",
            f"active on {{value}} different days in the last {lookback} days",
            none,
            "int",
            fill=0.0,
            one=f"active on {{value}} day in the last {lookback} days",
            zero=none,
            absence=nothing,
            tally="active days",
            compare=_MANY,
            lean=lean,
            absent_lean=-lean,
        ),
        FeatureInfo(
            "gap_mean_days",
            "on average {value} days between active days",
            f"at most one active day in the last {lookback} days",
            "days",
            one="on average {value} day between active days",
            absence=("active days", lookback),
            at_most=1,
            compare=("less often than", "more often than"),
            lean=-lean,
            absent_lean=-lean,
        ),
        FeatureInfo(
            "gap_std_days",
            "gaps between active days vary by {value} days",
            f"fewer than three active days in the last {lookback} days",
            "days",
            one="gaps between active days vary by {value} day",
            absence=("active days", lookback),
            at_most=2,
            compare=("less regular than", "more regular than"),
            absent_lean=-lean,
        ),
    ]
    if plan.repeat_model:
        infos += _repeat_model_infos(spec, plan.lookback_days)
    if plan.goal_value is not None:
        infos.append(_goal_value_info(spec))
    infos += [
        FeatureInfo(
            f"activity_ratio_{recent}_{longer}",
            f"{{value}} of the events of the last {longer} days were in the last {recent} days",
            f"no activity in the last {longer} days",
            "ratio",
            absence=("", longer),
            compare=_CHANCE,
            lean=lean,
            absent_lean=-lean,
        )
        for recent, longer in ratio_windows(lookback)
    ]
    for column in plan.categorical_columns:
        words = _literal(column.replace("_", " "))
        infos.append(
            FeatureInfo(
                f"{_slug(column)}_most_frequent",
                f"{words} mostly {{value}}",
                f"no {words} seen in the last {lookback} days",
                "text",
                categorical=True,
                subject=words,
                absence=(f"column {column}", lookback),
            )
        )
    for column, categories in plan.profile_columns.items():
        words = _literal(column.replace("_", " "))
        infos.append(
            FeatureInfo(
                f"profile_{_slug(column)}",
                f"{words} is {{value}}",
                f"{words} unknown",
                "text" if categories else "number",
                categorical=bool(categories),
                subject=words,
            )
        )
    return _whole_history_infos(infos, plan, spec) if plan.history_from is not None else infos


_IN_HISTORY = "in the history"


def _whole_history_infos(infos: list[FeatureInfo], plan: FeaturePlan, spec: InstanceSpec) -> list[FeatureInfo]:
    """Return ``infos`` worded for a plan of the whole history (see :func:`history_span`).

    What looked at the lookback looks at the whole history; what was counted over it is per ``lookback_days``
    days of history, a rate with decimals.  A statement of absence keeps the lookback as its days: none in the
    whole history implies none in any shorter window, which is all the explanations draw from it.
    """
    lookback = plan.lookback_days
    window = f"in the last {lookback} days"
    per = f"per {lookback} days of history"
    counted, ratios = _history_rates(plan, spec)
    out = []
    for info in infos:
        words: dict[str, object] = {
            key: getattr(info, key).replace(window, _IN_HISTORY)
            for key in ("template", "missing", "one", "zero")
            if getattr(info, key) is not None
        }
        if info.name in counted:
            for key in ("template", "one"):
                if key in words:
                    words[key] = str(words[key]).replace(_IN_HISTORY, per)
            words.update(style="number" if info.style == "int" else info.style, tally=None)  # money stays money
        elif info.name in ratios:
            recent = info.name.split("_")[2]
            words.update(
                template=f"{{value}} times as many events in the last {recent} days as {per}",
                missing=f"no activity {_IN_HISTORY}",
                style="number",
            )
        out.append(replace(info, **words))
    return out


@dataclass
class _Slice:
    """Events of one lookback window, of the wanted profiles, in (profile, time) order.

    ``rows`` are positions in the index's sorted order, ``codes`` their profile codes, ``age`` days before the
    as-of date (descending within a profile), ``bucket`` the first of the count windows (:func:`count_windows`)
    holding each event: an event is inside window ``j`` when its bucket is at most ``j``.
    """

    rows: np.ndarray
    codes: np.ndarray
    age: np.ndarray
    bucket: np.ndarray


class _Window:
    """One as-of date's lookback window over an :class:`EventIndex`, cut into slices of events."""

    def __init__(self, index: EventIndex, as_of: pd.Timestamp, lookback: int, wanted: np.ndarray, span: int) -> None:
        self.index = index
        # it reads ``span`` days (:func:`history_span`: the lookback, or a whole-history plan's history); the
        # longest count window, named for the lookback, covers them
        self.start, self.end = index.instant(as_of - pd.Timedelta(days=span)), index.instant(as_of)
        self.wanted = wanted
        self.size = index.profile_count
        self.windows = count_windows(lookback)
        self.all = self.cut(index.codes, index.stamps)

    def cut(self, codes: np.ndarray, stamps: np.ndarray, rows: np.ndarray | None = None) -> _Slice:
        """Return the slice of the events at sorted positions ``rows`` (default all), given their codes and stamps."""
        inside = np.flatnonzero((stamps >= self.start) & (stamps < self.end))
        inside = inside[self.wanted[codes[inside]]]
        age = (self.end - stamps[inside]) / self.index.day_length()
        # window w is [as_of - w days, as_of): its first instant, exactly w days old, is inside it
        bucket = np.searchsorted(np.asarray(self.windows[:-1], dtype="float64"), age, side="left")
        return _Slice(inside if rows is None else rows[inside], codes[inside], age, bucket)

    def source(self, where: Sequence[Condition]) -> _Slice:
        """Return the slice of the events satisfying ``where``, cut from their own sorted rows (kept per run)."""
        index = self.index

        def rows_of_source() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            rows = np.flatnonzero(index.where_mask(where)[index.order])
            return index.codes[rows], index.stamps[rows], rows

        key = ("source rows", *((c.field, c.op, repr(c.value)) for c in where))
        return self.cut(*index.memo(key, rows_of_source))

    def counts(self, events: _Slice) -> dict[int, np.ndarray]:
        """Return, per count window in days, each code's number of ``events``."""
        width = len(self.windows)
        per_bucket = np.bincount(events.codes.astype("int64") * width + events.bucket, minlength=self.size * width)
        cumulative = per_bucket.reshape(self.size, width).cumsum(axis=1)
        return {w: cumulative[:, j] for j, w in enumerate(self.windows)}


def _boundaries(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return which entries of ``codes`` (grouped by code) start and which end a run of one code."""
    change = codes[1:] != codes[:-1]
    return np.r_[True, change][: len(codes)], np.r_[change, True][: len(codes)]


def _per_code(size: int, codes: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Return a float array of ``size`` holding ``values`` at ``codes`` and NaN elsewhere."""
    out = np.full(size, np.nan)
    out[codes] = values
    return out


def _counts(size: int, codes: np.ndarray) -> np.ndarray:
    return np.bincount(codes, minlength=size).astype("float64")


def _ordered_sums(index: EventIndex, rows: np.ndarray) -> tuple[pd.Series, pd.Series]:
    """Return per code the sum (NaN without a value) and mean of ``value`` over the sorted ``rows``.

    The last bits of pandas' group-by sums depend on the order of all the rows it is given, other profiles'
    included (measured: a profile's sum can differ in its last bit when its rows are contiguous), so the rows
    go in the events' order, exactly as a group-by of the events would see them; only the keys are integer
    codes instead of string ids, which pandas numbers in the same order of first appearance.
    """
    selected = np.zeros(len(index), dtype=bool)
    selected[index.order[rows]] = True
    positions = np.flatnonzero(selected)
    values = index.memo(("value",), lambda: index.events["value"].to_numpy(dtype="float64"))
    grouped = pd.Series(values[positions]).groupby(index.row_codes[positions], sort=False)
    return grouped.sum(min_count=1), grouped.mean()


def _source_features(
    index: EventIndex, window: _Window, where: Sequence[Condition], prefix: str, *, valued: bool
) -> dict[str, np.ndarray]:
    events = window.source(where)
    codes, age, size = events.codes, events.age, window.size
    columns = {f"{prefix}_count_{w}d": count.astype("float64") for w, count in window.counts(events).items()}
    first, last = _boundaries(codes)
    columns[f"{prefix}_days_since_last"] = _per_code(size, codes[last], age[last])  # time ascends within a profile
    columns[f"{prefix}_days_since_first"] = _per_code(size, codes[first], age[first])
    if valued:
        sums, means = _ordered_sums(index, events.rows)
        columns[f"{prefix}_value_sum"] = _per_code(size, sums.index.to_numpy(), sums.to_numpy())
        columns[f"{prefix}_value_mean"] = _per_code(size, means.index.to_numpy(), means.to_numpy())
    return columns


def _reverse_runs(values: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Return ``values`` with each run of one code (``codes`` grouped) in reverse order."""
    first, last = _boundaries(codes)
    starts = np.repeat(np.flatnonzero(first), np.flatnonzero(last) - np.flatnonzero(first) + 1)
    ends = np.repeat(np.flatnonzero(last), np.flatnonzero(last) - np.flatnonzero(first) + 1)
    return values[starts + ends - np.arange(len(values))]


def _activity_features(window: _Window, lookback: int) -> dict[str, np.ndarray]:
    codes, age, size = window.all.codes, window.all.age, window.size
    first, last = _boundaries(codes)
    day = np.ceil(age).astype("int64") - 1  # whole days before the as-of date's: midnight starts its own day
    new_day = first | np.r_[True, day[1:] != day[:-1]][: len(day)]
    columns = {
        "tenure_days": _per_code(size, codes[first], age[first]),
        "days_since_last_event": _per_code(size, codes[last], age[last]),
        "active_days": _counts(size, codes[new_day]),
    }
    # gaps between a profile's distinct days, oldest first, profiles in code order: the order of the rows that
    # pandas' std (Welford's running update, order-dependent in the last bits) was always given
    day_codes, days = codes[new_day], _reverse_runs(day[new_day], codes[new_day])
    same = day_codes[1:] == day_codes[:-1]
    gaps = pd.Series((days[1:] - days[:-1])[same].astype("float64")).groupby(day_codes[1:][same], sort=False)
    means, stds = gaps.mean(), gaps.std(ddof=1)
    columns["gap_mean_days"] = _per_code(size, means.index.to_numpy(), means.to_numpy())
    columns["gap_std_days"] = _per_code(size, stds.index.to_numpy(), stds.to_numpy())
    counts = window.counts(window.all)  # the ratios' windows are count windows
    for recent, longer in ratio_windows(lookback):
        count_longer = counts[longer]
        columns[f"activity_ratio_{recent}_{longer}"] = counts[recent] / np.where(count_longer > 0, count_longer, np.nan)
    return columns


def _goal_events(index: EventIndex, spec: InstanceSpec) -> pd.DataFrame:
    """Return the goal events of ``index`` (kept with it): profile codes as ``profile_id``, and ``timestamp``."""

    def goal_events() -> pd.DataFrame:
        events = index.events
        rows = np.flatnonzero(patterns_mask(events, spec.goal.events))
        return pd.DataFrame({"profile_id": index.row_codes[rows], "timestamp": events["timestamp"].iloc[rows].array})

    return index.memo(("goal", *(repr(p) for p in spec.goal.events)), goal_events)


def fit_repeat_models(
    events: pd.DataFrame, dates: Sequence[pd.Timestamp], spec: InstanceSpec, *, index: EventIndex | None = None
) -> dict[pd.Timestamp, BGNBD | None]:
    """Return BG/NBD fitted at each of ``dates`` on every profile's goal events before it.

    The repeat-buying features of a profile come from a model fitted on everybody's goal events: fitted here
    once, on all the events, the models let :func:`build_features` work on the events of some profiles only
    (a sample, a partition) and give each of them exactly the values it has among all the events.

    Parameters
    ----------
    events : pandas.DataFrame
        Canonical events, all of them.
    dates : sequence of pandas.Timestamp
        As-of dates.
    spec : InstanceSpec
        The instance (its goal).
    index : EventIndex, optional
        ``events`` already encoded.

    Returns
    -------
    dict
        As-of date -> the fitted model, or None when nobody had repeated a goal event before it.
    """
    counts = repeat_model_counts(events, dates, spec, index=index)
    return {date: fit_counts(table) for date, table in counts.items()}


def repeat_model_counts(
    events: pd.DataFrame, dates: Sequence[pd.Timestamp], spec: InstanceSpec, *, index: EventIndex | None = None
) -> dict[pd.Timestamp, pd.DataFrame]:
    """Return, at each of ``dates``, how many profiles share each repeat-buying history of the goal events before it.

    What :func:`fit_repeat_models` fits (:func:`customer_ai.bgnbd.repeat_counts`): the counts of the partitions of
    a run's profiles add up (:func:`customer_ai.bgnbd.merge_counts`) to those of all its events, so the models of
    a run split by profile are the models of all its events, to the bit.
    """
    if index is None or index.events is not events:
        index = EventIndex(events)
    goal = _goal_events(index, spec)
    counts = {}
    for date in dates:
        summary = repeat_summary(goal, pd.Timestamp(date))  # indexed by profile codes, which sort as the ids
        counts[pd.Timestamp(date)] = repeat_counts(summary.set_axis(index.profile_ids.take(summary.index)))
    return counts


def fit_repeat_counts(
    counts: Mapping[pd.Timestamp, Sequence[pd.DataFrame] | CountsTally],
) -> dict[pd.Timestamp, BGNBD | None]:
    """Return the repeat-buying model at each date from the :func:`repeat_model_counts` of every partition.

    Each date's counts are a list of tables or a :class:`customer_ai.bgnbd.CountsTally` of them.
    """
    return {
        date: fit_counts(tables.total() if isinstance(tables, CountsTally) else merge_counts(tables))
        for date, tables in counts.items()
    }


def _repeat_model_features(
    index: EventIndex,
    as_of: pd.Timestamp,
    profiles: np.ndarray,
    *,
    lookback: int,
    spec: InstanceSpec,
    models: Mapping[pd.Timestamp, BGNBD | None] | None,
    read_from: pd.Timestamp,
) -> dict[str, np.ndarray]:
    """BG/NBD fitted on every profile's goal events before ``as_of``; its view of each of ``profiles`` (codes).

    Two kinds of feature come out, and they differ in how far back they may look:

    - **model outputs with a fixed meaning** (``goal_chance_Wd``, ``goal_expected_Wd``, ``goal_p_alive``): BG/NBD
      fitted on the whole history the run read.  It takes a profile's first observed goal event as its start, so
      a probability or an expected count means the same thing however far back the data goes, only with more or
      less evidence behind it (the scoring date, which reads further back than the oldest snapshot, has more);
    - **counts** (``goal_repeat_days``, ``goal_days_since_first``): BG/NBD's summary of each profile, but over the
      feature window ``[as_of - lookback, as_of)`` like every other count.  Over the whole history they would
      grow with each snapshot (the oldest one sees ``lookback`` days, the scoring date that plus the snapshots'
      span): scoring values above anything training saw;
    - **a rate** (``goal_days_per_30d``): the profile's goal days over the whole history read, per 30 days of that
      history (``[read_from, as_of)``, the same for every profile at a date).  Normalised by the history it covers,
      it means the same at every snapshot and at scoring, where it rests on more days: what a count over the
      whole history would add (the frequency baseline's strength when the history is short) without its skew.

    A profile without a goal event is a customer with no purchase yet.  The fit uses every profile in the events,
    not only ``profiles``, so a subset of profiles gets the same values; ``models`` (see
    :func:`fit_repeat_models`) brings fits made on more events than the index holds.  Profiles go in as integer
    codes, which sort as their ids do, so the fit sees its customers in the same order as it would with the ids.
    """
    goal = _goal_events(index, spec)
    history = repeat_summary(goal, as_of)
    if models is None:
        model = fit_summary(history)
    elif as_of in models:
        model = models[as_of]
    else:
        fitted = ", ".join(f"{date:%Y-%m-%d}" for date in models)
        raise ValueError(f"no repeat-buying model was fitted as of {as_of:%Y-%m-%d} (fitted as of: {fitted})")
    names = repeat_model_names(spec)
    summary = profile_rows(history, pd.Index(profiles))
    columns = {}
    if model is None:
        columns.update({name: np.full(len(profiles), np.nan) for name in names[:3]})
    else:
        view = model.view(summary, spec.goal.window_days)
        columns.update(
            {name: view[key].to_numpy() for name, key in zip(names[:3], ("chance", "expected", "alive"), strict=True)}
        )
    recent = goal.iloc[np.flatnonzero((goal["timestamp"] >= as_of - pd.Timedelta(days=lookback)).to_numpy())]
    counts = profile_rows(repeat_summary(recent, as_of), pd.Index(profiles))
    columns[names[3]] = counts["x"].to_numpy()
    columns[names[4]] = counts["T"].where(counts["T"] > 0).to_numpy()  # T is 0 only without a goal event
    covered = max((as_of - read_from) / pd.Timedelta(days=1), 1.0)
    goal_days = np.where(summary["T"].to_numpy() > 0, summary["x"].to_numpy() + 1, 0)  # the first day, and x more
    columns[names[5]] = RATE_DAYS * goal_days / covered
    return columns


def _goal_value_rate(
    index: EventIndex,
    spec: InstanceSpec,
    as_of: pd.Timestamp,
    codes: np.ndarray,
    *,
    field: str,
    read_from: pd.Timestamp,
) -> np.ndarray:
    """Return per profile (``codes``) its goal events' ``field`` summed over ``[read_from, as_of)``, per 30 days.

    Per 30 days of that history, the same for every profile at a date, as ``goal_days_per_30d`` counts goal days:
    it means the same at every snapshot and at scoring, where it rests on more days.  A missing amount adds
    nothing; a profile without goal events (or without events: code -1) has 0.
    """
    spent = goal_value_per_code(index, spec.goal, field, read_from, as_of)
    covered = max((as_of - read_from) / pd.Timedelta(days=1), 1.0)
    return np.append(RATE_DAYS * spent / covered, 0.0)[codes]


PROBABILITY_EDGES = tuple(k / 20 for k in range(1, 20))  # twentieths of [0, 1]
RATE_EDGES = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0)  # events per 30 days (or per window): steps that matter


def fixed_scales(plan: FeaturePlan, spec: InstanceSpec) -> dict[str, tuple[float, ...]]:
    """Return the features of ``plan`` whose scale means the same everywhere, with the bins a drift check uses.

    BG/NBD's chance of a goal event and P(alive) are model outputs with a fixed meaning (probabilities), its
    expected count is goal events in the goal window (a rate), and the goal rate is per 30 days of the history
    read, however long that is.  The same value means the same at every snapshot and at scoring, however much
    history lies behind it, so their drift is measured on their own scale (see :mod:`customer_ai.drift`), not at
    the training rows' deciles: with more history behind it, BG/NBD tells customers apart more sharply, and
    deciles of the oldest snapshots would call that a shift on a log that never changed.
    """
    if not plan.repeat_model:
        return {}
    chance, expected, alive, _, _, rate = repeat_model_names(spec)
    return {chance: PROBABILITY_EDGES, expected: RATE_EDGES, alive: PROBABILITY_EDGES, rate: RATE_EDGES}


def repeat_model_names(spec: InstanceSpec) -> list[str]:
    """Return the names of the repeat-buying features.

    BG/NBD's chance of a goal event in the window, its expected count and P(alive) (model outputs with a fixed
    meaning, from the whole history), then the summary it is fitted on, over the feature window: goal days after
    the first, and days since the first goal event; and the goal days per 30 days of the whole history read.
    """
    window = spec.goal.window_days
    model = [f"goal_chance_{window}d", f"goal_expected_{window}d", "goal_p_alive"]
    return [*model, "goal_repeat_days", "goal_days_since_first", "goal_days_per_30d"]


def _most_frequent(index: EventIndex, window: _Window, column: str) -> np.ndarray:
    """Return per code the most frequent value of ``column`` in the window (ties: the first in sorted order)."""

    def encoded() -> tuple[np.ndarray, np.ndarray]:
        codes, uniques = pd.factorize(index.events[column], sort=True)
        return codes.astype(np.int32)[index.order], np.asarray(uniques.astype(str), dtype=object)

    value_codes, values = index.memo(("column", column), encoded)
    found = value_codes[window.all.rows]
    present = found >= 0
    codes, found = window.all.codes[present], found[present]
    out = np.full(window.size, np.nan, dtype=object)
    if not len(codes):
        return out
    if window.size * len(values) <= _DENSE_CELLS:
        counts = np.bincount(codes.astype("int64") * len(values) + found, minlength=window.size * len(values))
        counts = counts.reshape(window.size, len(values))
        seen = counts.any(axis=1)
        out[seen] = values[counts[seen].argmax(axis=1)]  # argmax takes the first of equal counts
        return out
    pairs, n = np.unique(codes.astype("int64") * len(values) + found, return_counts=True)
    pair_codes, pair_values = pairs // len(values), pairs % len(values)
    best = np.lexsort((-n, pair_codes))  # per profile: most frequent first, then the first value in sorted order
    first, _ = _boundaries(pair_codes[best])
    out[pair_codes[best][first]] = values[pair_values[best][first]]
    return out


def build_features(
    events: pd.DataFrame,
    as_of: pd.Timestamp,
    profiles: pd.Index,
    spec: InstanceSpec,
    plan: FeaturePlan,
    *,
    attributes: pd.DataFrame | None = None,
    index: EventIndex | None = None,
    repeat_models: Mapping[pd.Timestamp, BGNBD | None] | None = None,
    read_from: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Return the feature matrix of ``profiles`` at ``as_of``.

    Parameters
    ----------
    events : pandas.DataFrame
        Canonical events; only those in ``[as_of - plan.lookback_days, as_of)`` are used (from the plan's
        ``history_from`` instead, for a plan of the whole history: see :func:`history_span`).
    as_of : pandas.Timestamp
        The as-of date (UTC).
    profiles : pandas.Index
        Profile ids, the rows of the result in this order.
    spec : InstanceSpec
        The instance (custom events).
    plan : FeaturePlan
        Which features to build.
    attributes : pandas.DataFrame, optional
        Static profile attributes indexed by ``profile_id``.
    index : EventIndex, optional
        ``events`` already encoded, to share between snapshots; built here when missing or of other events.
    repeat_models : mapping, optional
        The repeat-buying models by as-of date (:func:`fit_repeat_models`), fitted on all the events when
        ``events`` hold only some profiles' (those of ``profiles`` at least); fitted on ``events`` when not given.
    read_from : pandas.Timestamp, optional
        Where the history the run read starts (``goal_days_per_30d`` is per 30 days of it); by default the first
        of ``events``, which a caller holding only some profiles' events must not rely on.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``profile_id``; counts are 0 and "days since" is missing for profiles without such events;
        categorical features use a fixed pandas ``category`` dtype.
    """
    if index is None or index.events is not events:
        index = EventIndex(events)
    lookback = plan.lookback_days
    span, per_lookback = history_span(plan, as_of)
    rows_index = pd.Index(profiles, name="profile_id")
    codes = index.codes_of(rows_index)
    wanted = np.zeros(index.profile_count, dtype=bool)
    wanted[codes[codes >= 0]] = True
    window = _Window(index, as_of, lookback, wanted, span)

    columns: dict[str, np.ndarray] = {}
    for prefix, _, where in _sources(plan, spec):
        columns.update(_source_features(index, window, where, prefix, valued=prefix in plan.valued_sources))
    columns.update(_activity_features(window, lookback))
    for column in plan.categorical_columns:
        columns[f"{_slug(column)}_most_frequent"] = _most_frequent(index, window, column)
    # per code, then per requested profile: code -1 (no events at all) takes the appended missing value
    columns = {
        name: np.append(values, None if values.dtype == object else np.nan)[codes] for name, values in columns.items()
    }
    if read_from is None:
        read_from = index.events["timestamp"].min() if len(index.events) else as_of
    if plan.repeat_model:
        columns.update(
            _repeat_model_features(
                index, as_of, codes, lookback=span, spec=spec, models=repeat_models, read_from=read_from
            )
        )
    if plan.goal_value is not None:
        columns[GOAL_VALUE_RATE] = _goal_value_rate(
            index, spec, as_of, codes, field=plan.goal_value, read_from=read_from
        )
    if per_lookback != 1.0:
        counted, ratios = _history_rates(plan, spec)
        for name in counted:
            columns[name] = columns[name] * per_lookback
        for name in ratios:  # the recent count against the span's count per lookback
            columns[name] = columns[name] / per_lookback
    if attributes is not None:
        for column in plan.profile_columns:
            columns[f"profile_{_slug(column)}"] = attributes[column].reindex(rows_index).to_numpy()
    return _matrix(columns, rows_index, plan, spec)


def _matrix(columns: dict[str, np.ndarray], rows: pd.Index, plan: FeaturePlan, spec: InstanceSpec) -> pd.DataFrame:
    """Return the feature matrix of ``columns`` (one value per row): filled, typed and in the plan's order.

    Float columns are filled in NumPy; others (most frequent values, profile attributes) go through pandas'
    ``fillna`` and ``astype``, which give the same values for floats.
    """
    categorical = _categorical_names(plan)
    typed: dict[str, object] = {}
    for info in feature_infos(plan, spec):
        values = columns[info.name]
        if info.name in categorical:
            known = pd.Series(values, dtype="object")
            known = known if info.fill is None else known.fillna(info.fill)
            known = known.where(known.isin(categorical[info.name]))  # a value unseen in training becomes missing
            typed[info.name] = pd.Categorical(known, categories=categorical[info.name])
        elif isinstance(values, np.ndarray) and values.dtype == np.float64:
            typed[info.name] = values if info.fill is None else np.where(np.isnan(values), info.fill, values)
        else:
            series = pd.Series(values)
            typed[info.name] = (series if info.fill is None else series.fillna(info.fill)).astype("float64").to_numpy()
    return pd.DataFrame(typed, index=rows)


def _categorical_names(plan: FeaturePlan) -> dict[str, list[str]]:
    names = {f"{_slug(c)}_most_frequent": cats for c, cats in plan.categorical_columns.items()}
    names.update({f"profile_{_slug(c)}": cats for c, cats in plan.profile_columns.items() if cats})
    return names
