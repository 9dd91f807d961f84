"""Point-in-time features: per profile, computed only from events in ``[as_of - lookback, as_of)``.

Everything is vectorised with group-bys over the events in the window; there is no per-profile Python loop.
Which event types and categorical columns become features is decided once, from the training data, and kept
in a :class:`FeaturePlan` so that scoring builds exactly the same columns.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from customer_ai.bgnbd import repeat_summary, repeat_view
from customer_ai.conditions import patterns_mask, where_mask
from customer_ai.events import CANONICAL_COLUMNS
from customer_ai.spec import Condition, InstanceSpec
from customer_ai.windows import in_window

__all__ = [
    "COUNT_WINDOWS",
    "FeatureInfo",
    "FeaturePlan",
    "build_features",
    "count_windows",
    "feature_infos",
    "plan_features",
    "ratio_windows",
    "repeat_model_names",
]

COUNT_WINDOWS = (7, 30, 90, 365)
MAX_CATEGORIES = 50
_DAY = pd.Timedelta(days=1)


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

    def describe(self, value: object) -> str:
        """Return the readable text for one profile's value, e.g. "3 purchases in the last 30 days"."""
        if _is_missing(value):
            return self.missing
        if self._is_zero(value):
            return self.zero  # type: ignore[return-value]
        text, singular = _render(value, self.style)
        template = self.one if singular and self.one is not None else self.template
        return template.format(value=text)

    def claim(self, value: object) -> str | None:
        """Return what the description of ``value`` asserts, to spot two features of a profile saying the same.

        A missing or zero value gives its text: those are the states that different features word alike ("no
        purchase in the last 365 days" from a count, a recency and a total).  A feature with a ``subject``
        gives the subject and the rendered value.  Any other value gives None: its text names its own feature
        and no other feature of the plan can say it.
        """
        if self.is_absent(value):
            return self.describe(value)
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


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return slug or "event"


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
    """

    lookback_days: int
    event_types: list[str] = field(default_factory=list)
    valued_sources: list[str] = field(default_factory=list)
    categorical_columns: dict[str, list[str]] = field(default_factory=dict)
    profile_columns: dict[str, list[str]] = field(default_factory=dict)
    repeat_model: bool = False

    def to_dict(self) -> dict:
        """Return the plan as JSON-ready data."""
        return asdict(self)

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
    """
    past = events.loc[(events["timestamp"] < before).to_numpy()]
    counts = past["event_type"].value_counts()
    top = counts.sort_index().sort_values(ascending=False, kind="stable")
    # "add to cart" and "add-to-cart" would share feature names: keep the more frequent one
    top = top[~pd.Index([_slug(str(t)) for t in top.index]).duplicated()]
    event_types = [str(t) for t in top.index[: spec.training.max_event_types]]
    lookback = spec.eligibility.lookback_days if lookback_days is None else lookback_days
    plan = FeaturePlan(lookback_days=lookback, event_types=event_types)
    for prefix, _, where in _sources(plan, spec):
        if past.loc[where_mask(past, where), "value"].notna().any():
            plan.valued_sources.append(prefix)
    goal_days = past.loc[patterns_mask(past, spec.goal.events), ["profile_id", "timestamp"]]
    goal_days = goal_days.assign(day=goal_days["timestamp"].dt.floor("D")).drop_duplicates(["profile_id", "day"])
    plan.repeat_model = bool(goal_days["profile_id"].duplicated().any())  # somebody repeated: BG/NBD can be fitted
    for column in past.columns:
        if column in CANONICAL_COLUMNS or not _is_text(past[column]):
            continue
        values = past[column].dropna().astype(str).unique()
        if 1 < len(values) <= MAX_CATEGORIES:
            plan.categorical_columns[str(column)] = sorted(values)
    if profiles is not None:
        for column in profiles.columns:
            if _is_text(profiles[column]):
                plan.profile_columns[str(column)] = sorted(profiles[column].dropna().astype(str).unique())
            else:
                plan.profile_columns[str(column)] = []
    return plan


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


def _source_infos(prefix: str, words: str, *, lookback: int, valued: bool) -> list[FeatureInfo]:
    """Return the infos of one event type's or custom event's features."""
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
        ),
        FeatureInfo(
            f"{prefix}_days_since_first",
            f"earliest {one} in the last {lookback} days was {{value}} days ago",
            none,
            "days",
            one=f"earliest {one} in the last {lookback} days was {{value}} day ago",
            subject=f"first {one}",
            absence=nothing,
        ),
    ]
    if valued:
        infos += [
            # equal only for one valued event: then both say what it was worth
            FeatureInfo(
                f"{prefix}_value_sum",
                f"{many} worth {{value}} in the last {lookback} days",
                none,
                "money",
                subject=f"{one} value",
                absence=nothing,
            ),
            FeatureInfo(
                f"{prefix}_value_mean",
                f"average {one} worth {{value}}",
                none,
                "money",
                subject=f"{one} value",
                absence=nothing,
            ),
        ]
    return infos


def _repeat_model_infos(spec: InstanceSpec) -> list[FeatureInfo]:
    """Return the infos of the repeat-buying model's view of the goal events (see :func:`repeat_model_names`)."""
    window = spec.goal.window_days
    one, many = (_literal(n) for n in _goal_nouns(spec))
    chance, expected, alive, repeats, since_first = repeat_model_names(spec)
    unknown = "no repeat-buying estimate"
    return [
        FeatureInfo(
            chance,
            f"repeat-buying model: {{value}} chance of at least one {one} in the next {window} days",
            unknown,
            "ratio",
        ),
        FeatureInfo(
            expected,
            f"repeat-buying model: {{value}} {many} expected in the next {window} days",
            unknown,
            "number",
            one=f"repeat-buying model: {{value}} {one} expected in the next {window} days",
        ),
        FeatureInfo(alive, "repeat-buying model: {value} chance of still being an active customer", unknown, "ratio"),
        FeatureInfo(
            repeats,
            f"repeat {many} on {{value}} different days",
            f"no {one} yet",
            "int",
            one=f"repeat {many} on {{value}} day",
            zero=f"no repeat {one} yet",
        ),
        FeatureInfo(
            since_first,
            f"first {one} {{value}} days ago",
            f"no {one} yet",
            "days",
            one=f"first {one} {{value}} day ago",
            subject=f"first {one}",
        ),
    ]


def feature_infos(plan: FeaturePlan, spec: InstanceSpec) -> list[FeatureInfo]:
    """Return the features the plan builds, in column order, with their descriptions.

    The words follow the numbers ("1 purchase", "2 purchases", "no purchase", "less than 1 day ago"); money has
    two decimals and thousands separators.  Features that can say the same thing about a profile share the
    same words for it, or a ``subject`` (see :meth:`FeatureInfo.claim`).
    """
    lookback = plan.lookback_days
    infos: list[FeatureInfo] = []
    for prefix, words, _ in _sources(plan, spec):
        infos += _source_infos(prefix, words, lookback=lookback, valued=prefix in plan.valued_sources)
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
        ),
        FeatureInfo(
            "days_since_last_event",
            "last activity {value} days ago",
            none,
            "days",
            one="last activity {value} day ago",
            absence=nothing,
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
        ),
        FeatureInfo(
            "gap_mean_days",
            "on average {value} days between active days",
            f"at most one active day in the last {lookback} days",
            "days",
            one="on average {value} day between active days",
            absence=("active days", lookback),
            at_most=1,
        ),
        FeatureInfo(
            "gap_std_days",
            "gaps between active days vary by {value} days",
            f"fewer than three active days in the last {lookback} days",
            "days",
            one="gaps between active days vary by {value} day",
            absence=("active days", lookback),
            at_most=2,
        ),
    ]
    if plan.repeat_model:
        infos += _repeat_model_infos(spec)
    infos += [
        FeatureInfo(
            f"activity_ratio_{recent}_{longer}",
            f"{{value}} of the events of the last {longer} days were in the last {recent} days",
            f"no activity in the last {longer} days",
            "ratio",
            absence=("", longer),
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
    return infos


def _source_features(
    window_events: pd.DataFrame,
    age: np.ndarray,
    mask: np.ndarray,
    prefix: str,
    *,
    windows: Sequence[int],
    valued: bool,
) -> pd.DataFrame:
    hits = window_events.loc[mask, ["profile_id", "value"]].copy()
    hit_age = age[mask]
    columns = {}
    for w in windows:
        # the longest window is the whole lookback, whose first instant (age == lookback) is inside it
        inside = hit_age < w if w < windows[-1] else np.ones(len(hit_age), dtype=bool)
        hits[f"{prefix}_count_{w}d"] = inside.astype("int64")
        columns[f"{prefix}_count_{w}d"] = "sum"
    hits[f"{prefix}_days_since_last"] = hit_age
    hits[f"{prefix}_days_since_first"] = hit_age
    columns[f"{prefix}_days_since_last"] = "min"
    columns[f"{prefix}_days_since_first"] = "max"
    grouped = hits.groupby("profile_id", sort=False)
    result = grouped.agg(columns)
    if valued:
        result[f"{prefix}_value_sum"] = grouped["value"].sum(min_count=1)
        result[f"{prefix}_value_mean"] = grouped["value"].mean()
    return result


def _activity_features(window_events: pd.DataFrame, age: np.ndarray, lookback: int) -> pd.DataFrame:
    frame = pd.DataFrame({"profile_id": window_events["profile_id"].to_numpy(), "age": age})
    frame["day"] = np.floor(age).astype("int64")
    grouped = frame.groupby("profile_id", sort=False)
    result = pd.DataFrame(
        {
            "tenure_days": grouped["age"].max(),
            "days_since_last_event": grouped["age"].min(),
            "active_days": grouped["day"].nunique(),
        }
    )
    days = frame[["profile_id", "day"]].drop_duplicates().sort_values(["profile_id", "day"])
    days["gap"] = days.groupby("profile_id", sort=False)["day"].diff()
    gaps = days.dropna(subset=["gap"]).groupby("profile_id", sort=False)["gap"]
    result["gap_mean_days"] = gaps.mean()
    result["gap_std_days"] = gaps.std(ddof=1)
    for recent, longer in ratio_windows(lookback):
        count_recent = (frame["age"] < recent).groupby(frame["profile_id"], sort=False).sum()
        count_longer = (
            (frame["age"] < longer).groupby(frame["profile_id"], sort=False).sum()
            if longer < lookback
            else grouped.size()
        )
        result[f"activity_ratio_{recent}_{longer}"] = (count_recent / count_longer.where(count_longer > 0)).astype(
            "float64"
        )
    return result


def _repeat_model_features(
    history: pd.DataFrame, as_of: pd.Timestamp, profiles: pd.Index, spec: InstanceSpec
) -> pd.DataFrame:
    """BG/NBD fitted on every profile's goal events before ``as_of``; its view of each of ``profiles``.

    Unlike the windowed features, this uses the whole history the run read: BG/NBD takes a profile's first
    observed goal event as its start, so its outputs (a probability, an expected count) mean the same thing
    however far back the data goes, only with more or less evidence; a profile without a goal event is a
    customer with no purchase yet.  The fit uses every profile in ``history``, not only ``profiles``, so a
    subset of profiles gets the same values.
    """
    goal = history.loc[patterns_mask(history, spec.goal.events), ["profile_id", "timestamp"]]
    names = repeat_model_names(spec)
    view = repeat_view(goal, as_of, profiles, spec.goal.window_days)
    summary = repeat_summary(goal, as_of, profiles)
    # T is 0 only without a goal event: unknown, not "today"
    history_part = pd.DataFrame({names[3]: summary["x"], names[4]: summary["T"].where(summary["T"] > 0)})
    if view is None:
        model_part = pd.DataFrame(np.nan, index=profiles, columns=names[:3])
    else:
        model_part = view[["chance", "expected", "alive"]].set_axis(names[:3], axis=1)
    return pd.concat([model_part, history_part], axis=1)


def repeat_model_names(spec: InstanceSpec) -> list[str]:
    """Return the names of the whole-history goal features.

    BG/NBD's chance of a goal event in the window, its expected count and P(alive), then the summary it is
    fitted on: goal days after the first, and days since the first goal event.
    """
    window = spec.goal.window_days
    model = [f"goal_chance_{window}d", f"goal_expected_{window}d", "goal_p_alive"]
    return [*model, "goal_repeat_days", "goal_days_since_first"]


def _most_frequent(window_events: pd.DataFrame, column: str) -> pd.Series:
    pairs = window_events[["profile_id", column]].dropna()
    counts = pairs.groupby(["profile_id", column], sort=True, observed=True).size().reset_index(name="n")
    counts = counts.sort_values(["profile_id", "n"], ascending=[True, False], kind="stable")
    first = counts.drop_duplicates("profile_id")
    return pd.Series(first[column].astype(str).to_numpy(), index=first["profile_id"].to_numpy())


def build_features(
    events: pd.DataFrame,
    as_of: pd.Timestamp,
    profiles: pd.Index,
    spec: InstanceSpec,
    plan: FeaturePlan,
    *,
    attributes: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Return the feature matrix of ``profiles`` at ``as_of``.

    Parameters
    ----------
    events : pandas.DataFrame
        Canonical events; only those in ``[as_of - plan.lookback_days, as_of)`` are used.
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

    Returns
    -------
    pandas.DataFrame
        Indexed by ``profile_id``; counts are 0 and "days since" is missing for profiles without such events;
        categorical features use a fixed pandas ``category`` dtype.
    """
    lookback = plan.lookback_days
    window = in_window(events["timestamp"], as_of - pd.Timedelta(days=lookback), as_of)
    window_events = events.loc[window]
    window_events = window_events.loc[window_events["profile_id"].isin(profiles).to_numpy()]
    age = ((as_of - window_events["timestamp"]) / _DAY).to_numpy(dtype="float64")

    parts = [
        _source_features(
            window_events,
            age,
            where_mask(window_events, where),
            prefix,
            windows=count_windows(lookback),
            valued=prefix in plan.valued_sources,
        )
        for prefix, _, where in _sources(plan, spec)
    ]
    parts.append(_activity_features(window_events, age, lookback))
    if plan.repeat_model:
        history = events.loc[(events["timestamp"] < as_of).to_numpy()]  # all of it, see _repeat_model_features
        parts.append(_repeat_model_features(history, as_of, pd.Index(profiles), spec))
    for column in plan.categorical_columns:
        parts.append(_most_frequent(window_events, column).rename(f"{_slug(column)}_most_frequent").to_frame())
    matrix = pd.concat(parts, axis=1).reindex(pd.Index(profiles, name="profile_id"))

    if attributes is not None:
        for column in plan.profile_columns:
            matrix[f"profile_{_slug(column)}"] = attributes[column].reindex(matrix.index).to_numpy()
    infos = feature_infos(plan, spec)
    for info in infos:
        if info.fill is not None:
            matrix[info.name] = matrix[info.name].fillna(info.fill)
    for column, categories in _categorical_names(plan).items():
        values = matrix[column].astype("object")
        known = values.where(values.isin(categories))  # a value unseen in training becomes missing
        matrix[column] = pd.Categorical(known, categories=categories)
    numeric = [i.name for i in infos if not i.categorical]
    matrix[numeric] = matrix[numeric].astype("float64")
    return matrix[[i.name for i in infos]]


def _categorical_names(plan: FeaturePlan) -> dict[str, list[str]]:
    names = {f"{_slug(c)}_most_frequent": cats for c, cats in plan.categorical_columns.items()}
    names.update({f"profile_{_slug(c)}": cats for c, cats in plan.profile_columns.items() if cats})
    return names
