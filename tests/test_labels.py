"""Eligibility at an as-of date, the goal window and labels with their lost negatives."""

from __future__ import annotations

import feature_reference as reference
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from customer_ai.labels import build_labels, days_to_goal, eligible_profiles, goal_reached, goal_value
from customer_ai.windows import EventIndex

from conftest import as_of_dates, event_logs, make_events, make_spec, ts

T = ts("2011-09-01")
US = pd.Timedelta(microseconds=1)
DAY = pd.Timedelta(days=1)


def _ids(index: pd.Index) -> list[str]:
    return list(index)


def _pattern(event_type: str) -> dict:
    return {"where": [{"field": "event_type", "op": "eq", "value": event_type}]}


def _goal(*event_types: str, occurrence: str = "will_occur", match: str = "any", window_days: int = 30) -> dict:
    return {
        "occurrence": occurrence,
        "match": match,
        "events": [_pattern(t) for t in event_types],
        "window_days": window_days,
    }


# --- eligibility -----------------------------------------------------------------------------------------------


def test_eligibility_lookback_is_half_open() -> None:
    spec = make_spec(eligibility={"lookback_days": 30})
    start = T - pd.Timedelta(days=30)
    events = make_events(
        [
            ("at_start", start, "view"),
            ("before_start", start - US, "view"),
            ("last_us", T - US, "view"),
            ("at_t", T, "view"),
            ("after_t", T + DAY, "view"),
        ]
    )
    assert _ids(eligible_profiles(events, spec.eligibility, T)) == ["at_start", "last_us"]


def test_eligible_profiles_are_sorted_strings() -> None:
    spec = make_spec()
    events = make_events([("b", "2011-08-01", "view"), ("10", "2011-08-01", "view"), ("a", "2011-08-02", "view")])
    result = eligible_profiles(events, spec.eligibility, T)
    assert _ids(result) == ["10", "a", "b"]
    assert result.name == "profile_id"


def test_eligibility_events_any() -> None:
    spec = make_spec(eligibility={"lookback_days": 365, "events": [_pattern("view"), _pattern("cart")]})
    events = make_events(
        [
            ("viewer", "2011-08-01", "view"),
            ("carter", "2011-08-01", "cart"),
            ("buyer", "2011-08-01", "purchase"),
            ("late_viewer", T, "view"),  # the matching event is at T: not in the lookback
        ]
    )
    assert _ids(eligible_profiles(events, spec.eligibility, T)) == ["carter", "viewer"]


def test_eligibility_match_all_needs_every_pattern() -> None:
    spec = make_spec(eligibility={"lookback_days": 365, "match": "all", "events": [_pattern("view"), _pattern("cart")]})
    events = make_events(
        [
            ("both", "2011-08-01", "view"),
            ("both", "2011-08-20", "cart"),
            ("view_only", "2011-08-01", "view"),
            ("view_only", "2011-08-01", "purchase"),
            ("cart_at_t", "2011-08-01", "view"),
            ("cart_at_t", T, "cart"),
            ("cart_too_old", "2011-08-01", "view"),
            ("cart_too_old", "2010-08-31", "cart"),
        ]
    )
    assert _ids(eligible_profiles(events, spec.eligibility, T)) == ["both"]


def test_eligibility_exclude_only_within_lookback() -> None:
    spec = make_spec(eligibility={"lookback_days": 30, "exclude": [_pattern("unsubscribe")]})
    events = make_events(
        [
            ("kept", "2011-08-15", "view"),
            ("excluded", "2011-08-15", "view"),
            ("excluded", "2011-08-20", "unsubscribe"),
            ("excluded_at_start", "2011-08-15", "view"),
            ("excluded_at_start", T - pd.Timedelta(days=30), "unsubscribe"),
            ("old_unsub", "2011-08-15", "view"),
            ("old_unsub", T - pd.Timedelta(days=30) - US, "unsubscribe"),
            ("unsub_at_t", "2011-08-15", "view"),
            ("unsub_at_t", T, "unsubscribe"),
        ]
    )
    assert _ids(eligible_profiles(events, spec.eligibility, T)) == ["kept", "old_unsub", "unsub_at_t"]


def test_eligibility_exclude_with_default_rule() -> None:
    spec = make_spec(eligibility={"lookback_days": 365, "exclude": [_pattern("unsubscribe")]})
    events = make_events([("only_unsub", "2011-08-20", "unsubscribe"), ("x", "2011-08-20", "view")])
    assert _ids(eligible_profiles(events, spec.eligibility, T)) == ["x"]


# --- goal window --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "reached"),
    [
        (-US, False),
        (pd.Timedelta(0), True),
        (pd.Timedelta(days=15), True),
        (pd.Timedelta(days=30) - US, True),
        (pd.Timedelta(days=30), False),
    ],
)
def test_goal_window_is_half_open(offset: pd.Timedelta, reached: bool) -> None:
    spec = make_spec()
    events = make_events([("p", "2011-08-01", "view"), ("p", T + offset, "purchase")])
    profiles = eligible_profiles(events, spec.eligibility, T)
    assert goal_reached(events, spec.goal, T, profiles).to_dict() == {"p": reached}
    assert build_labels(events, spec, [T])["label"].tolist() == [int(reached)]


def test_goal_reached_ignores_polarity_and_other_profiles() -> None:
    spec = make_spec(goal=_goal("purchase", occurrence="will_not_occur"))
    events = make_events(
        [("a", "2011-08-01", "view"), ("a", "2011-09-05", "purchase"), ("b", "2011-08-01", "view")]
        + [("stranger", "2011-09-05", "purchase")]
    )
    profiles = pd.Index(["a", "b"])
    reached = goal_reached(events, spec.goal, T, profiles)
    assert reached.to_dict() == {"a": True, "b": False}
    assert reached.dtype == bool


def test_goal_match_all_needs_every_pattern_in_window() -> None:
    spec = make_spec(goal=_goal("purchase", "review", match="all"))
    events = make_events(
        [
            *[(p, "2011-08-01", "view") for p in ("both", "purchase_only", "review_late", "review_before")],
            ("both", "2011-09-03", "purchase"),
            ("both", "2011-09-20", "review"),  # a different event from the purchase
            ("purchase_only", "2011-09-03", "purchase"),
            ("review_late", "2011-09-03", "purchase"),
            ("review_late", T + pd.Timedelta(days=30), "review"),
            ("review_before", "2011-08-15", "review"),
            ("review_before", "2011-09-03", "purchase"),
        ]
    )
    labels = build_labels(events, spec, [T])
    assert dict(zip(labels["profile_id"], labels["label"], strict=True)) == {
        "both": 1,
        "purchase_only": 0,
        "review_before": 0,
        "review_late": 0,
    }


def test_goal_match_any() -> None:
    spec = make_spec(goal=_goal("purchase", "subscribe"))
    events = make_events(
        [
            *[(p, "2011-08-01", "view") for p in ("buys", "subscribes", "neither")],
            ("buys", "2011-09-03", "purchase"),
            ("subscribes", "2011-09-03", "subscribe"),
            ("neither", "2011-09-03", "view"),
        ]
    )
    labels = build_labels(events, spec, [T])
    assert dict(zip(labels["profile_id"], labels["label"], strict=True)) == {"buys": 1, "neither": 0, "subscribes": 1}


def test_goal_conditions_hold_on_the_same_event() -> None:
    big_purchase = {
        "where": [
            {"field": "event_type", "op": "eq", "value": "purchase"},
            {"field": "value", "op": "gte", "value": 50},
        ]
    }
    spec = make_spec(goal={"occurrence": "will_occur", "events": [big_purchase], "window_days": 30})
    events = make_events(
        [
            ("big", "2011-08-01", "view"),
            ("big", "2011-09-02", "purchase", 50.0),
            ("split", "2011-08-01", "view"),
            ("split", "2011-09-02", "purchase", 40.0),
            ("split", "2011-09-02", "refund", 60.0),
        ]
    )
    assert build_labels(events, spec, [T])["label"].tolist() == [1, 0]


# --- labels --------------------------------------------------------------------------------------------------------


def test_build_labels_keeps_negatives_at_every_snapshot() -> None:
    spec = make_spec()
    t1, t0 = ts("2011-08-01"), ts("2011-09-01")
    events = make_events(
        [
            ("buyer", "2011-07-01", "view"),
            ("buyer", "2011-09-10", "purchase"),  # in the window of t0 only
            ("never", "2011-07-01", "view"),  # no goal event at all: a 0 row at both snapshots
            ("late", "2011-08-10", "view"),  # eligible from t0 on
            ("late", "2011-08-11", "purchase"),  # in the window of t1, but late is not eligible there
        ]
    )
    labels = build_labels(events, spec, [t0, t1])
    assert labels["profile_id"].tolist() == ["buyer", "late", "never", "buyer", "never"]
    assert labels["as_of"].tolist() == [t0, t0, t0, t1, t1]
    assert labels["label"].tolist() == [1, 0, 0, 0, 0]
    assert labels["label"].dtype == "int8"
    assert list(labels.columns) == ["profile_id", "as_of", "label"]


def test_will_not_occur_labels_absence_as_one() -> None:
    spec = make_spec(propensity="churn", goal=_goal("purchase", occurrence="will_not_occur"))
    events = make_events(
        [
            ("stays", "2011-08-01", "purchase"),
            ("stays", T, "purchase"),
            ("churns", "2011-08-01", "purchase"),
            ("churns", T + pd.Timedelta(days=30), "purchase"),  # just after the window: churned in it
            ("silent", "2011-08-01", "view"),
        ]
    )
    labels = build_labels(events, spec, [T])
    assert dict(zip(labels["profile_id"], labels["label"], strict=True)) == {"churns": 1, "silent": 1, "stays": 0}
    assert labels["label"].dtype == "int8"


def test_profile_with_events_only_from_t_on_gets_no_row() -> None:
    spec = make_spec()
    events = make_events([("old", "2011-08-01", "view"), ("new", T, "view"), ("new", "2011-09-02", "purchase")])
    labels = build_labels(events, spec, [T])
    assert labels["profile_id"].tolist() == ["old"]
    assert labels["label"].tolist() == [0]


def test_label_uses_window_days_of_the_goal() -> None:
    spec = make_spec(goal=_goal("purchase", window_days=7))
    events = make_events(
        [
            ("in", "2011-08-01", "view"),
            ("in", T + pd.Timedelta(days=7) - US, "purchase"),
            ("out", "2011-08-01", "view"),
            ("out", T + pd.Timedelta(days=7), "purchase"),
        ]
    )
    labels = build_labels(events, spec, [T])
    assert dict(zip(labels["profile_id"], labels["label"], strict=True)) == {"in": 1, "out": 0}


def test_build_labels_without_snapshots_is_empty() -> None:
    spec = make_spec()
    labels = build_labels(make_events([("a", "2011-08-01", "view")]), spec, [])
    assert len(labels) == 0
    assert list(labels.columns) == ["profile_id", "as_of", "label"]


# --- properties over random logs ---------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(events=event_logs(), snapshots=st.lists(as_of_dates(), min_size=1, max_size=4, unique=True))
def test_every_eligible_profile_has_exactly_one_label_row_per_snapshot(events: pd.DataFrame, snapshots: list) -> None:
    spec = make_spec()
    labels = build_labels(events, spec, snapshots)
    for as_of in snapshots:
        rows = labels.loc[labels["as_of"] == as_of, "profile_id"]
        assert sorted(rows) == sorted(eligible_profiles(events, spec.eligibility, as_of))
        assert not rows.duplicated().any()


@settings(max_examples=60, deadline=None)
@given(events=event_logs(), snapshots=st.lists(as_of_dates(), min_size=1, max_size=3, unique=True))
def test_will_occur_and_will_not_occur_labels_are_complements(events: pd.DataFrame, snapshots: list) -> None:
    occurs = make_spec()
    goal = {**occurs.goal.model_dump(mode="json"), "occurrence": "will_not_occur"}
    does_not = make_spec(goal=goal)
    yes, no = build_labels(events, occurs, snapshots), build_labels(events, does_not, snapshots)
    pd.testing.assert_frame_equal(yes[["profile_id", "as_of"]], no[["profile_id", "as_of"]])
    assert ((yes["label"] + no["label"]) == 1).all()


# --- exactly the labels of the former code (tests/feature_reference.py) --------------------------------------------

RULES = [
    {},
    {"eligibility": {"lookback_days": 60, "match": "any", "events": [_pattern("purchase"), _pattern("cart")]}},
    {
        "eligibility": {
            "lookback_days": 90,
            "match": "all",
            "events": [_pattern("view"), _pattern("cart")],
            "exclude": [_pattern("unsubscribe")],
        },
        "goal": _goal("purchase", "cart", match="all", window_days=14),
    },
    {"goal": _goal("purchase", occurrence="will_not_occur", window_days=7)},
]


def random_events(seed: int, *, shuffled: bool = False) -> pd.DataFrame:
    """Return a seeded log around ``T``: half the events on exact midnights (window edges), ids not all ASCII."""
    rng = np.random.default_rng(seed)
    ids = [f"p{i:02d}" for i in range(40)] + ["Zoë", "ångström", "10", "9"]
    count = 1500
    days = rng.integers(-200, 60, size=count)
    micros = np.where(rng.random(count) < 0.5, 0, rng.integers(0, 86_400_000_000, size=count))
    kinds = rng.choice(["view", "cart", "purchase", "unsubscribe"], size=count, p=[0.5, 0.2, 0.25, 0.05])
    rows = [
        (str(rng.choice(ids)), T + pd.Timedelta(days=int(d), microseconds=int(m)), str(kind))
        for d, m, kind in zip(days, micros, kinds, strict=True)
    ]
    events = make_events(rows)
    return events.sample(frac=1.0, random_state=seed).reset_index(drop=True) if shuffled else events


@pytest.mark.parametrize("rule", range(len(RULES)))
@pytest.mark.parametrize(("seed", "shuffled"), [(1, False), (2, False), (3, True)])
def test_labels_are_exactly_those_of_the_former_code(rule: int, seed: int, shuffled: bool) -> None:
    events = random_events(seed, shuffled=shuffled)
    spec = make_spec(**RULES[rule])
    snapshots = [T - pd.Timedelta(days=d) for d in (0, 7, 30, 61)]
    labels = build_labels(events, spec, snapshots)
    assert len(labels) > 20
    pd.testing.assert_frame_equal(labels, reference.build_labels(events, spec, snapshots), check_exact=True)
    index = EventIndex(events)
    pd.testing.assert_frame_equal(labels, build_labels(events, spec, snapshots, index=index), check_exact=True)
    for as_of in snapshots:
        eligible = eligible_profiles(events, spec.eligibility, as_of, index=index)
        pd.testing.assert_index_equal(
            eligible, reference.eligible_profiles(events, spec.eligibility, as_of), exact=True
        )
        asked = pd.Index(["never_seen", *eligible[::-1]])  # any order, an unknown id
        pd.testing.assert_series_equal(
            goal_reached(events, spec.goal, as_of, asked, index=index),
            reference.goal_reached(events, spec.goal, as_of, asked),
            check_exact=True,
        )


@settings(max_examples=60, deadline=None)
@given(events=event_logs(), snapshots=st.lists(as_of_dates(), min_size=1, max_size=3, unique=True))
def test_labels_of_random_logs_are_exactly_those_of_the_former_code(events: pd.DataFrame, snapshots: list) -> None:
    spec = make_spec(eligibility={"lookback_days": 60})
    pd.testing.assert_frame_equal(
        build_labels(events, spec, snapshots), reference.build_labels(events, spec, snapshots), check_exact=True
    )


# --- the goal's value and the days to it (predicted value and timing) ------------------------------------------


def _big_purchase() -> dict:
    return {
        "where": [
            {"field": "event_type", "op": "eq", "value": "purchase"},
            {"field": "value", "op": "gte", "value": 50},
        ]
    }


def test_goal_value_adds_up_the_goal_events_of_the_half_open_window_each_once() -> None:
    # a purchase of 60 matches both patterns: counted once
    spec = make_spec(goal={**_goal("purchase"), "events": [_pattern("purchase"), _big_purchase()]})
    events = make_events(
        [
            ("a", T - US, "purchase", 1000.0),  # before the window
            ("a", T, "purchase", 60.0),  # its first instant
            ("a", T + pd.Timedelta(days=30) - US, "purchase", 2.5),  # its last
            ("a", T + pd.Timedelta(days=30), "purchase", 1000.0),  # after it
            ("a", T + pd.Timedelta(days=3), "view", 1000.0),  # not a goal event
            ("b", T + pd.Timedelta(days=3), "purchase"),  # no value: adds nothing
            ("c", "2011-08-01", "view"),
        ]
    )
    value = goal_value(events, spec.goal, "value", T, pd.Index(["a", "b", "c", "unknown"]))
    assert value.to_dict() == {"a": 62.5, "b": 0.0, "c": 0.0, "unknown": 0.0}
    assert value.dtype == "float64"


def test_goal_value_of_a_column_the_events_lack_is_refused_by_name() -> None:
    events = make_events([("a", T, "purchase", 1.0)])
    with pytest.raises(KeyError, match="events have no column 'amount' to add up for the goal's value"):
        goal_value(events, make_spec().goal, "amount", T, pd.Index(["a"]))


def test_days_to_goal_counts_from_the_as_of_instant_and_censors_at_the_horizon() -> None:
    spec = make_spec(goal=_goal("purchase", window_days=30))
    events = make_events(
        [
            ("now", T - US, "purchase"),  # before: not the next one
            ("now", T, "purchase"),
            ("later", T + pd.Timedelta(days=40, hours=12), "purchase"),  # beyond the window, inside the horizon
            ("later", T + pd.Timedelta(days=50), "purchase"),
            ("edge", T + pd.Timedelta(days=90), "purchase"),  # the horizon's end is outside it
            ("views", T + pd.Timedelta(days=1), "view"),
        ]
    )
    days = days_to_goal(events, spec.goal, T, pd.Index(["now", "later", "edge", "views", "unknown"]), 90)
    assert days.to_dict(into=dict).keys() == {"now", "later", "edge", "views", "unknown"}
    assert days["now"] == 0.0
    assert days["later"] == 40.5
    assert days[["edge", "views", "unknown"]].isna().all()


def test_days_to_a_goal_of_every_pattern_are_those_to_the_last_pattern_first_seen() -> None:
    spec = make_spec(goal=_goal("purchase", "review", match="all"))
    events = make_events(
        [
            ("both", T + pd.Timedelta(days=2), "purchase"),
            ("both", T + pd.Timedelta(days=5), "review"),
            ("both", T + pd.Timedelta(days=7), "purchase"),
            ("purchase_only", T + pd.Timedelta(days=2), "purchase"),
        ]
    )
    days = days_to_goal(events, spec.goal, T, pd.Index(["both", "purchase_only"]), 30)
    assert days["both"] == 5.0
    assert np.isnan(days["purchase_only"])
