"""Point-in-time features: window boundaries, exact values, the feature plan and the descriptions."""

from __future__ import annotations

import json
import math

import feature_reference as reference
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings

from customer_ai import features as features_module
from customer_ai.bgnbd import fit_bgnbd, fit_repeat_model, repeat_summary
from customer_ai.features import (
    FeatureEvidence,
    FeatureInfo,
    FeaturePlan,
    build_features,
    count_windows,
    feature_infos,
    fit_repeat_models,
    money_prefix,
    plan_features,
    ratio_windows,
)
from customer_ai.spec import InstanceSpec
from customer_ai.windows import EventIndex

from conftest import as_of_dates, event_logs, make_events, make_spec, ts

T = ts("2011-09-01")
US = pd.Timedelta(microseconds=1)


def ago(days: float) -> pd.Timestamp:
    """Return the moment ``days`` days before ``T``."""
    return T - pd.Timedelta(days=days)


def features(
    rows: list[tuple],
    profiles: list[str],
    spec: InstanceSpec | None = None,
    *,
    attributes: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Plan on the events before ``T`` and build the features of ``profiles`` at ``T``."""
    spec = spec or make_spec()
    events = make_events(rows)
    plan = plan_features(events, spec, T, attributes)
    return build_features(events, T, pd.Index(profiles), spec, plan, attributes=attributes)


def row(matrix: pd.DataFrame, profile: str) -> dict:
    return matrix.loc[profile].to_dict()


def assert_nan(value: object) -> None:
    assert isinstance(value, float)
    assert math.isnan(value)


# --- the lookback window -------------------------------------------------------------------------------------------


def test_event_at_as_of_is_not_a_feature() -> None:
    matrix = features([("a", ago(1), "purchase", 5.0), ("a", T, "purchase", 100.0)], ["a"])
    a = row(matrix, "a")
    assert a["purchase_count_7d"] == 1
    assert a["purchase_count_365d"] == 1
    assert a["purchase_value_sum"] == 5.0
    assert a["purchase_days_since_last"] == 1.0
    assert a["active_days"] == 1


def test_profile_with_only_an_event_at_as_of_has_empty_features() -> None:
    matrix = features([("a", ago(3), "purchase", 1.0), ("b", T, "purchase", 100.0)], ["a", "b"])
    b = row(matrix, "b")
    assert b["purchase_count_365d"] == 0
    assert b["active_days"] == 0
    for name in ("purchase_days_since_last", "purchase_value_sum", "tenure_days", "days_since_last_event"):
        assert_nan(b[name])


def test_event_exactly_at_lookback_start_is_a_feature() -> None:
    matrix = features([("a", ago(365), "purchase", 7.0), ("a", ago(10), "purchase", 3.0)], ["a"])
    a = row(matrix, "a")
    assert a["purchase_days_since_first"] == 365.0
    assert a["purchase_value_sum"] == 10.0
    assert a["purchase_value_mean"] == 5.0
    assert a["tenure_days"] == 365.0
    assert a["active_days"] == 2
    assert a["activity_ratio_90_365"] == 0.5


def test_event_a_microsecond_before_lookback_start_is_not_a_feature() -> None:
    matrix = features([("a", ago(365) - US, "purchase", 7.0), ("a", ago(10), "purchase", 3.0)], ["a"])
    a = row(matrix, "a")
    assert a["purchase_days_since_first"] == 10.0
    assert a["purchase_value_sum"] == 3.0
    assert a["tenure_days"] == 10.0
    assert a["active_days"] == 1
    assert a["activity_ratio_90_365"] == 1.0


def test_lookback_follows_the_plan() -> None:
    spec = make_spec(eligibility={"lookback_days": 30})
    matrix = features([("a", ago(30), "view"), ("a", ago(30) - US, "view"), ("a", ago(2), "view")], ["a"], spec)
    assert list(matrix.columns[:4]) == [
        "view_count_7d",
        "view_count_30d",
        "view_days_since_last",
        "view_days_since_first",
    ]
    assert row(matrix, "a")["view_days_since_first"] == 30.0
    assert row(matrix, "a")["tenure_days"] == 30.0
    assert row(matrix, "a")["view_count_30d"] == 2  # the lookback's first instant is inside its longest count
    assert not [c for c in matrix.columns if c.startswith("activity_ratio")]  # no ratio fits in 30 days


@pytest.mark.parametrize(
    ("lookback", "windows", "ratios"),
    [
        (365, [7, 30, 90, 365], [(30, 90), (90, 365)]),
        (180, [7, 30, 90, 180], [(30, 90), (90, 180)]),
        (60, [7, 30, 60], [(30, 60)]),
        (30, [7, 30], []),
        (5, [5], []),
    ],
)
def test_count_and_ratio_windows_fit_the_lookback(lookback: int, windows: list, ratios: list) -> None:
    assert count_windows(lookback) == windows
    assert ratio_windows(lookback) == ratios


def test_event_exactly_at_lookback_start_counts_in_the_longest_window() -> None:
    matrix = features([("a", ago(365), "purchase", 10.0), ("a", ago(31), "purchase", 5.0)], ["a"])
    a = row(matrix, "a")
    assert a["purchase_count_365d"] == 2
    assert a["purchase_count_90d"] == 1
    assert a["activity_ratio_90_365"] == 0.5


def test_event_types_with_the_same_slug_keep_the_more_frequent() -> None:
    events = make_events([("a", ago(3), "add to cart"), ("a", ago(2), "add-to-cart"), ("b", ago(2), "add-to-cart")])
    spec = make_spec()
    plan = plan_features(events, spec, T)
    assert plan.event_types == ["add-to-cart"]
    matrix = build_features(events, T, pd.Index(["a", "b"]), spec, plan)
    assert row(matrix, "a")["add_to_cart_count_7d"] == 1


def test_an_event_type_too_long_to_be_a_name_gets_no_features(caplog: pytest.LogCaptureFixture) -> None:
    # before: a 1-million-character event type named 8 features, copied into the training set, the model and its
    # metadata: a 160 MB home for 100 events, without a word
    long = "x" * 201
    events = make_events(
        [("a", ago(3), "purchase"), ("a", ago(2), long), ("b", ago(2), long), ("b", ago(1), "x" * 200)]
    )
    with caplog.at_level("WARNING", logger="customer_ai"):
        plan = plan_features(events, make_spec(), T)
    assert plan.event_types == ["purchase", "x" * 200]  # 200 characters still name features
    assert caplog.messages == [
        f"event type '{'x' * 60}…' (201 characters, 2 events) gets no features of its own: a name longer than 200 "
        "characters cannot name a feature; its events still count in the activity features"
    ]
    matrix = build_features(events, T, pd.Index(["a", "b"]), make_spec(), plan)
    assert not [c for c in matrix.columns if len(c) > 250]
    assert (row(matrix, "b")["active_days"], row(matrix, "b")["days_since_last_event"]) == (2, 1)  # its events count


def test_future_events_do_not_change_features() -> None:
    past = [
        ("a", ago(3), "purchase", 10.0, {"channel": "web"}),
        ("a", ago(40), "view", None, {"channel": "app"}),
        ("b", ago(100), "view", None, {"channel": "web"}),
    ]
    future = [
        ("a", T, "purchase", 99.0, {"channel": "app"}),
        ("a", T + pd.Timedelta(days=1), "view", None, {"channel": "app"}),
        ("b", T + pd.Timedelta(hours=1), "purchase", 1.0, {"channel": "app"}),
    ]
    spec = make_spec()
    plan = plan_features(make_events(past), spec, T)
    profiles = pd.Index(["a", "b"])
    without = build_features(make_events(past), T, profiles, spec, plan)
    with_future = build_features(make_events(past + future), T, profiles, spec, plan)
    pd.testing.assert_frame_equal(without, with_future)


# --- per event type ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "counts"),
    [
        (0.001, (1, 1, 1, 1)),
        (6.5, (1, 1, 1, 1)),
        (7.0, (1, 1, 1, 1)),  # [T - 7 days, T): exactly 7 days before T is the window's first instant
        (7.0 + 1 / 86_400_000_000, (0, 1, 1, 1)),  # a microsecond earlier is not
        (29.9, (0, 1, 1, 1)),
        (30.0, (0, 1, 1, 1)),
        (30.5, (0, 0, 1, 1)),
        (89.5, (0, 0, 1, 1)),
        (90.0, (0, 0, 1, 1)),
        (90.5, (0, 0, 0, 1)),
        (364.5, (0, 0, 0, 1)),
    ],
)
def test_count_windows_include_their_start(age: float, counts: tuple[int, int, int, int]) -> None:
    matrix = features([("a", ago(age), "purchase")], ["a"])
    a = row(matrix, "a")
    assert (
        a["purchase_count_7d"],
        a["purchase_count_30d"],
        a["purchase_count_90d"],
        a["purchase_count_365d"],
    ) == counts


def test_counts_and_days_since_exact_values() -> None:
    rows = [
        ("a", ago(0.25), "purchase", 10.0),
        ("a", ago(12), "purchase", 20.0),
        ("a", ago(12), "purchase", None),  # no value: not in the sum nor the mean
        ("a", ago(40.5), "purchase", 60.0),
        ("a", ago(200), "view"),
        ("a", ago(3), "view"),
    ]
    a = row(features(rows, ["a"]), "a")
    assert (a["purchase_count_7d"], a["purchase_count_30d"], a["purchase_count_90d"]) == (1, 3, 4)
    assert a["purchase_count_365d"] == 4
    assert a["purchase_days_since_last"] == pytest.approx(0.25)
    assert a["purchase_days_since_first"] == pytest.approx(40.5)
    assert a["purchase_value_sum"] == pytest.approx(90.0)
    assert a["purchase_value_mean"] == pytest.approx(30.0)
    assert (a["view_count_7d"], a["view_count_30d"], a["view_count_90d"], a["view_count_365d"]) == (1, 1, 1, 2)
    assert a["view_days_since_last"] == pytest.approx(3.0)
    assert a["view_days_since_first"] == pytest.approx(200.0)


def test_days_since_keeps_fractions_of_a_day() -> None:
    a = row(features([("a", T - pd.Timedelta(hours=36), "purchase")], ["a"]), "a")
    assert a["purchase_days_since_last"] == pytest.approx(1.5)
    assert a["days_since_last_event"] == pytest.approx(1.5)


def test_value_features_only_for_sources_with_values() -> None:
    matrix = features([("a", ago(5), "purchase", 12.5), ("a", ago(6), "view")], ["a"])
    assert "purchase_value_sum" in matrix.columns
    assert "purchase_value_mean" in matrix.columns
    assert not any(c.startswith("view_value") for c in matrix.columns)


def test_value_sum_is_missing_when_the_profiles_events_have_no_value() -> None:
    matrix = features([("a", ago(5), "purchase", 12.5), ("b", ago(5), "purchase")], ["a", "b"])
    assert row(matrix, "b")["purchase_count_7d"] == 1
    assert_nan(row(matrix, "b")["purchase_value_sum"])
    assert_nan(row(matrix, "b")["purchase_value_mean"])


def test_profile_without_the_event_type_has_zero_counts_and_missing_days() -> None:
    matrix = features([("a", ago(5), "purchase", 12.5), ("b", ago(5), "view")], ["a", "b"])
    b = row(matrix, "b")
    assert [b[f"purchase_count_{w}d"] for w in (7, 30, 90, 365)] == [0, 0, 0, 0]
    for name in ("purchase_days_since_last", "purchase_days_since_first", "purchase_value_sum", "purchase_value_mean"):
        assert_nan(b[name])


def test_event_type_slug_names_the_columns() -> None:
    matrix = features([("a", ago(1), "Add To Cart"), ("a", ago(2), "Add To Cart")], ["a"])
    assert row(matrix, "a")["add_to_cart_count_7d"] == 2


# --- activity ----------------------------------------------------------------------------------------------------


def test_activity_exact_values() -> None:
    rows = [
        ("a", ago(0.5), "view"),
        ("a", ago(0.75), "purchase"),  # same day offset as 0.5
        ("a", ago(3.2), "view"),
        ("a", ago(10.0), "view"),  # midnight: the first instant of the 10th day back (days back 0 is yesterday)
    ]
    a = row(features(rows, ["a"]), "a")
    assert a["tenure_days"] == pytest.approx(10.0)
    assert a["days_since_last_event"] == pytest.approx(0.5)
    assert a["active_days"] == 3  # days back 0, 3, 9
    assert a["gap_mean_days"] == pytest.approx(4.5)  # gaps 3 and 6
    assert a["gap_std_days"] == pytest.approx(math.sqrt(4.5))


@pytest.mark.parametrize(
    ("ages", "active_days"),
    [
        ((0.9, 1.1), 2),  # different days (yesterday, the day before) although 0.2 days apart
        ((1.1, 1.9), 1),
        ((1.0, 0.5), 1),  # midnight starting yesterday and yesterday noon: one day
        ((1.0, 1.5), 2),  # midnight starting yesterday belongs to yesterday, not to the day before
        ((2.0, 2.999), 2),
        ((2.0, 1.001), 1),
        ((2.0, 3.0), 2),
    ],
)
def test_active_days_count_distinct_day_offsets(ages: tuple[float, ...], active_days: int) -> None:
    a = row(features([("a", ago(x), "view") for x in ages], ["a"]), "a")
    assert a["active_days"] == active_days


def test_gaps_need_two_and_three_active_days() -> None:
    rows = [
        ("one", ago(1.2), "view"),
        ("one", ago(1.5), "view"),
        ("two", ago(1.5), "view"),
        ("two", ago(5.5), "view"),
    ]
    matrix = features(rows, ["one", "two"])
    one, two = row(matrix, "one"), row(matrix, "two")
    assert one["active_days"] == 1
    assert_nan(one["gap_mean_days"])
    assert_nan(one["gap_std_days"])
    assert two["active_days"] == 2
    assert two["gap_mean_days"] == pytest.approx(4.0)
    assert_nan(two["gap_std_days"])


def test_activity_ratios() -> None:
    rows = [
        ("a", ago(5), "view"),
        ("a", ago(30), "view"),  # the first instant of the last 30 days
        ("a", ago(30.5), "view"),  # not in the last 30 days, in the last 90
        ("a", ago(50), "purchase"),
        ("a", ago(90.5), "view"),  # not in the last 90 days
        ("a", ago(200), "view"),
        ("old", ago(200), "view"),
    ]
    matrix = features(rows, ["a", "old", "none"])
    a, old, none = row(matrix, "a"), row(matrix, "old"), row(matrix, "none")
    assert a["activity_ratio_30_90"] == pytest.approx(2 / 4)
    assert a["activity_ratio_90_365"] == pytest.approx(4 / 6)
    assert_nan(old["activity_ratio_30_90"])  # no events in the last 90 days
    assert old["activity_ratio_90_365"] == 0.0
    assert_nan(none["activity_ratio_30_90"])
    assert_nan(none["activity_ratio_90_365"])


def test_profile_without_events_gets_a_row() -> None:
    matrix = features([("a", ago(5), "view")], ["a", "ghost"])
    ghost = row(matrix, "ghost")
    assert ghost["view_count_365d"] == 0
    assert ghost["active_days"] == 0
    for name in ("tenure_days", "days_since_last_event", "gap_mean_days", "view_days_since_last"):
        assert_nan(ghost[name])


def test_rows_follow_the_profiles_argument() -> None:
    rows = [("a", ago(1), "view"), ("b", ago(2), "view"), ("b", ago(3), "view"), ("zz", ago(1), "view")]
    matrix = features(rows, ["c", "b", "a"])
    assert list(matrix.index) == ["c", "b", "a"]
    assert matrix.index.name == "profile_id"
    assert matrix["view_count_7d"].tolist() == [0.0, 2.0, 1.0]
    assert (matrix.dtypes == "float64").all()


def test_events_of_other_profiles_are_ignored() -> None:
    rows = [("a", ago(1), "view"), ("b", ago(2), "view")]
    alone = features(rows, ["a"])
    assert list(alone.index) == ["a"]
    pd.testing.assert_series_equal(alone.loc["a"], features(rows, ["a", "b"]).loc["a"])


# --- categorical columns and profile attributes -------------------------------------------------------------------


def test_most_frequent_categorical_value() -> None:
    rows = [
        ("a", ago(1), "view", None, {"country": "UK"}),
        ("a", ago(2), "view", None, {"country": "FR"}),
        ("a", ago(3), "view", None, {"country": "UK"}),
        ("a", ago(4), "view", None, {}),  # missing: not counted
        ("a", ago(5), "view", None, {}),
        ("b", ago(1), "view", None, {"country": "DE"}),
        ("none", ago(1), "view", None, {}),
    ]
    matrix = features(rows, ["a", "b", "none", "ghost"])
    column = matrix["country_most_frequent"]
    assert isinstance(column.dtype, pd.CategoricalDtype)
    assert list(column.cat.categories) == ["DE", "FR", "UK"]
    assert column.iloc[:2].tolist() == ["UK", "DE"]
    assert column.iloc[2:].isna().all()


def test_most_frequent_tie_goes_to_the_alphabetically_first_value() -> None:
    rows = [
        ("older_uk", ago(10), "view", None, {"country": "UK"}),
        ("older_uk", ago(1), "view", None, {"country": "FR"}),
        ("older_fr", ago(10), "view", None, {"country": "FR"}),
        ("older_fr", ago(1), "view", None, {"country": "UK"}),
    ]
    matrix = features(rows, ["older_uk", "older_fr"])
    assert matrix["country_most_frequent"].tolist() == ["FR", "FR"]


def test_categorical_uses_the_plans_categories_at_scoring() -> None:
    spec = make_spec()
    training = make_events(
        [("a", ago(40), "view", None, {"channel": "web"}), ("b", ago(40), "view", None, {"channel": "app"})]
    )
    plan = plan_features(training, spec, ago(30))
    assert plan.categorical_columns == {"channel": ["app", "web"]}
    scoring = make_events(
        [
            ("a", ago(2), "view", None, {"channel": "web"}),
            ("b", ago(2), "view", None, {"channel": "email"}),  # never seen in training
        ]
    )
    matrix = build_features(scoring, T, pd.Index(["a", "b"]), spec, plan)
    column = matrix["channel_most_frequent"]
    assert list(column.cat.categories) == ["app", "web"]
    assert column.iloc[0] == "web"
    assert pd.isna(column.iloc[1])


def test_profile_attributes_are_joined() -> None:
    attributes = pd.DataFrame(
        {"loyalty_tier": ["gold", "silver", "bronze"], "age": [31, 47, 22]},
        index=pd.Index(["a", "b", "c"], name="profile_id"),
    )
    spec = make_spec()
    events = make_events([("a", ago(1), "view"), ("b", ago(2), "view"), ("d", ago(3), "view")])
    plan = plan_features(events, spec, T, attributes)
    assert plan.profile_columns == {"loyalty_tier": ["bronze", "gold", "silver"], "age": []}
    scoring_attributes = attributes.assign(loyalty_tier=["gold", "platinum", "silver"])
    matrix = build_features(events, T, pd.Index(["d", "a", "b"]), spec, plan, attributes=scoring_attributes)
    tier, age = matrix["profile_loyalty_tier"], matrix["profile_age"]
    assert isinstance(tier.dtype, pd.CategoricalDtype)
    assert list(tier.cat.categories) == ["bronze", "gold", "silver"]
    assert pd.isna(tier["d"])  # no attributes
    assert tier["a"] == "gold"
    assert pd.isna(tier["b"])  # platinum is not a category of the plan
    assert age.dtype == "float64"
    assert_nan(age["d"])
    assert age[["a", "b"]].tolist() == [31.0, 47.0]
    assert list(matrix.columns[-2:]) == ["profile_loyalty_tier", "profile_age"]


# --- custom events -----------------------------------------------------------------------------------------------


def test_custom_event_gets_its_own_features() -> None:
    spec = make_spec(
        custom_events=[
            {
                "name": "big_purchase",
                "where": [
                    {"field": "event_type", "op": "eq", "value": "purchase"},
                    {"field": "value", "op": "gte", "value": 50},
                ],
            }
        ]
    )
    rows = [("a", ago(2), "purchase", 80.0), ("a", ago(20), "purchase", 10.0), ("a", ago(100), "purchase", 50.0)]
    matrix = features(rows, ["a"], spec)
    a = row(matrix, "a")
    assert (a["purchase_count_30d"], a["purchase_count_365d"]) == (2, 3)
    assert (a["big_purchase_count_7d"], a["big_purchase_count_90d"], a["big_purchase_count_365d"]) == (1, 1, 2)
    assert a["big_purchase_days_since_first"] == 100.0
    assert a["big_purchase_value_sum"] == 130.0
    assert list(matrix.columns[: 8 + 4]) == [
        *[f"purchase_{s}" for s in ("count_7d", "count_30d", "count_90d", "count_365d")],
        *[f"purchase_{s}" for s in ("days_since_last", "days_since_first", "value_sum", "value_mean")],
        *[f"big_purchase_count_{w}d" for w in (7, 30, 90, 365)],
    ]


def test_custom_event_named_like_an_event_type_replaces_it() -> None:
    spec = make_spec(
        custom_events=[
            {"name": "purchase", "where": [{"field": "event_type", "op": "in", "value": ["buy", "purchase"]}]}
        ]
    )
    rows = [("a", ago(2), "purchase"), ("a", ago(3), "buy"), ("a", ago(4), "view"), ("a", ago(5), "view")]
    matrix = features(rows, ["a"], spec)
    assert list(matrix.columns).count("purchase_count_7d") == 1
    a = row(matrix, "a")
    assert a["purchase_count_7d"] == 2  # purchase and buy
    assert a["buy_count_7d"] == 1
    assert a["purchase_days_since_first"] == 3.0
    # event types first (view, buy), then the custom events
    prefixes = [c.removesuffix("_count_7d") for c in matrix.columns if c.endswith("_count_7d")]
    assert prefixes == ["view", "buy", "purchase"]


# --- the plan ----------------------------------------------------------------------------------------------------


def test_plan_caps_event_types_by_frequency() -> None:
    spec = make_spec(training={"max_event_types": 2})
    rows = [
        *[("a", ago(d), "view") for d in (1, 2, 3)],
        *[("a", ago(d), "purchase") for d in (1, 2)],
        *[("a", ago(d), "cart") for d in (1, 2)],  # ties with purchase: alphabetical order decides
        ("a", ago(1), "refund"),
        *[("a", T + pd.Timedelta(days=d), "refund") for d in (0, 1, 2, 3)],  # after the plan date: not counted
    ]
    plan = plan_features(make_events(rows), spec, T)
    assert plan.event_types == ["view", "cart"]
    matrix = features(rows, ["a"], spec)
    assert not any(c.startswith(("purchase_", "refund_")) for c in matrix.columns)


def test_plan_only_looks_before_its_date() -> None:
    rows = [
        ("a", ago(10), "view", None, {"channel": "web"}),
        ("a", ago(9), "view", None, {"channel": "app"}),
        ("a", T, "refund", 5.0, {"channel": "email"}),
        ("a", T + pd.Timedelta(days=3), "view", 7.0, {"channel": "shop"}),
    ]
    plan = plan_features(make_events(rows), make_spec(), T)
    assert plan.event_types == ["view"]
    assert plan.valued_sources == []
    assert plan.categorical_columns == {"channel": ["app", "web"]}
    assert plan.lookback_days == 365


def test_plan_sees_events_older_than_the_lookback() -> None:
    plan = plan_features(make_events([("a", ago(1000), "view", 3.0)]), make_spec(), T)
    assert plan.event_types == ["view"]
    assert plan.valued_sources == ["view"]


@pytest.mark.parametrize(("distinct", "kept"), [(1, False), (2, True), (50, True), (51, False)])
def test_plan_categorical_cardinality(distinct: int, kept: bool) -> None:
    rows = [("a", ago(1 + i / 100), "view", None, {"sku": f"s{i:02d}"}) for i in range(distinct)]
    rows.append(("b", ago(1), "view", None, {"sku": "s00"}))
    plan = plan_features(make_events(rows), make_spec(), T)
    assert ("sku" in plan.categorical_columns) is kept
    if kept:
        assert len(plan.categorical_columns["sku"]) == distinct


def test_plan_skips_numeric_extra_columns() -> None:
    rows = [("a", ago(1), "view", None, {"quantity": 1}), ("a", ago(2), "view", None, {"quantity": 3})]
    assert plan_features(make_events(rows), make_spec(), T).categorical_columns == {}


def test_feature_plan_round_trip() -> None:
    plan = FeaturePlan(
        lookback_days=180,
        event_types=["view", "purchase"],
        valued_sources=["purchase"],
        categorical_columns={"country": ["FR", "UK"]},
        profile_columns={"tier": ["gold"], "age": []},
    )
    data = json.loads(json.dumps(plan.to_dict()))
    assert data["lookback_days"] == 180
    assert data["categorical_columns"] == {"country": ["FR", "UK"]}
    assert FeaturePlan.from_dict(data) == plan


def _whole_history(lookback: int, history_from: pd.Timestamp) -> tuple[FeaturePlan, InstanceSpec]:
    spec = make_spec(eligibility={"lookback_days": 120})
    plan = FeaturePlan(lookback_days=lookback, event_types=["purchase"], valued_sources=["purchase"])
    plan.history_from = history_from.isoformat()
    return plan, spec


def test_a_whole_history_plan_counts_everything_read_per_lookback_days() -> None:
    # one period's plan: 60 days of history before T, counted per 30 days; the window plan would see 30 days
    rows = [
        ("a", ago(59), "purchase", 10.0),  # outside the last 30 days, inside the history
        ("a", ago(45), "purchase", 20.0),
        ("a", ago(40), "view"),
        ("a", ago(10), "purchase", 30.0),
        ("a", ago(3), "purchase", 40.0),
        ("b", ago(50), "purchase", 5.0),  # nothing in the last 30 days: the window plan has no purchase of b
        ("c", ago(61), "purchase", 5.0),  # before the history starts: never read
    ]
    plan, spec = _whole_history(30, ago(60))
    assert features_module.history_span(plan, T) == (60, 0.5)
    matrix = build_features(make_events(rows), T, pd.Index(["a", "b", "c"]), spec, plan)
    a, b, c = row(matrix, "a"), row(matrix, "b"), row(matrix, "c")
    assert a["purchase_count_7d"] == 1  # windows shorter than the lookback keep their days and their counts
    assert a["purchase_count_30d"] == 2.0  # 4 purchases in 60 days: 2 per 30 days
    assert a["purchase_value_sum"] == 50.0  # 100 in 60 days
    assert a["purchase_value_mean"] == 25.0
    assert a["purchase_days_since_first"] == 59.0  # days are days: beyond the lookback at scoring
    assert a["tenure_days"] == 59.0
    assert a["active_days"] == 2.5  # 5 different days in 60
    assert a["gap_mean_days"] == pytest.approx(56 / 4)
    assert (b["purchase_count_30d"], b["purchase_days_since_last"], b["active_days"]) == (0.5, 50.0, 0.5)
    assert (c["purchase_count_30d"], c["active_days"]) == (0.0, 0.0)
    assert_nan(c["purchase_days_since_last"])
    # at the one training snapshot the history is the lookback itself: the window plan's values exactly
    window = FeaturePlan(lookback_days=30, event_types=["purchase"], valued_sources=["purchase"])
    at_training = T - pd.Timedelta(days=30)
    events = make_events(rows)
    assert features_module.history_span(plan, at_training) == (30, 1.0)
    pd.testing.assert_frame_equal(
        build_features(events, at_training, pd.Index(["a", "b", "c"]), spec, plan),
        build_features(events, at_training, pd.Index(["a", "b", "c"]), spec, window),
    )


def test_a_whole_history_plan_never_reads_less_than_its_lookback() -> None:
    plan, _ = _whole_history(30, ago(10))  # a history start after T - lookback (a later scoring of a sample)
    assert features_module.history_span(plan, T) == (30, 1.0)
    plan.history_from = (ago(44) - US).isoformat()  # a start within a day: the whole day is read
    assert features_module.history_span(plan, T) == (45, 30 / 45)


def test_a_whole_history_plans_ratio_compares_the_last_days_with_the_history_rate() -> None:
    rows = [("a", ago(d), "view") for d in (100, 80, 70, 50, 20, 5)]  # 6 events in 120 days, 2 in the last 30
    plan, spec = _whole_history(60, ago(120))
    plan.event_types = ["view"]
    plan.valued_sources = []
    a = row(build_features(make_events(rows), T, pd.Index(["a"]), spec, plan), "a")
    assert a["view_count_60d"] == 3.0  # 6 per 120 days
    assert a["activity_ratio_30_60"] == pytest.approx(2 / 3)  # 2 in the last 30 days against 3 per 60 days


def test_a_whole_history_plan_says_per_lookback_days_of_history() -> None:
    plan, spec = _whole_history(45, ago(100))
    infos = {i.name: i for i in feature_infos(plan, spec)}
    assert infos["purchase_count_45d"].describe(1.5) == "1.5 purchases per 45 days of history"
    assert infos["purchase_count_45d"].describe(1.0) == "1 purchase per 45 days of history"
    assert infos["purchase_count_45d"].describe(0.0) == "no purchase in the history"
    assert infos["purchase_count_30d"].describe(2.0) == "2 purchases in the last 30 days"
    assert infos["purchase_days_since_last"].describe(np.nan) == "no purchase in the history"
    assert infos["purchase_days_since_first"].describe(80.0) == "earliest purchase in the history was 80 days ago"
    assert infos["purchase_value_sum"].describe(12.5) == "purchases worth 12.50 per 45 days of history"
    assert infos["active_days"].describe(0.75) == "active on 0.75 different days per 45 days of history"
    assert infos["active_days"].tally is None  # a rate bounds no count of days
    assert infos["gap_mean_days"].describe(np.nan) == "at most one active day in the history"
    assert infos["activity_ratio_30_45"].describe(1.25) == (
        "1.25 times as many events in the last 30 days as per 45 days of history"
    )
    assert infos["activity_ratio_30_45"].describe(np.nan) == "no activity in the history"
    assert FeaturePlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan


# --- descriptions ------------------------------------------------------------------------------------------------


def test_feature_infos_match_the_built_columns() -> None:
    spec = make_spec(custom_events=[{"name": "big_purchase", "where": [{"field": "value", "op": "gt", "value": 100}]}])
    attributes = pd.DataFrame({"tier": ["gold", "silver"], "age": [30, 40]}, index=pd.Index(["a", "b"]))
    events = make_events(
        [
            ("a", ago(1), "purchase", 150.0, {"country": "FR"}),
            ("b", ago(2), "view", None, {"country": "UK"}),
        ]
    )
    plan = plan_features(events, spec, T, attributes)
    matrix = build_features(events, T, pd.Index(["a", "b"]), spec, plan, attributes=attributes)
    infos = feature_infos(plan, spec)
    assert [i.name for i in infos] == list(matrix.columns)
    categorical = [i.name for i in infos if i.categorical]
    assert categorical == ["country_most_frequent", "profile_tier"]
    assert [c for c in matrix.columns if isinstance(matrix[c].dtype, pd.CategoricalDtype)] == categorical


def _info(name: str, currency: str | None = None) -> FeatureInfo:
    spec = make_spec(output={"currency": currency}) if currency else make_spec()
    plan = FeaturePlan(
        lookback_days=365,
        event_types=["purchase"],
        valued_sources=["purchase"],
        categorical_columns={"country": ["FR"]},
        profile_columns={"tier": ["gold"], "age": []},
    )
    return {i.name: i for i in feature_infos(plan, spec)}[name]


@pytest.mark.parametrize(
    ("name", "value", "text"),
    [
        ("purchase_count_30d", 3.0, "3 purchases in the last 30 days"),
        ("purchase_count_30d", 1.0, "1 purchase in the last 30 days"),
        ("purchase_count_30d", 0.0, "no purchase in the last 30 days"),
        ("purchase_count_365d", 1234.0, "1,234 purchases in the last 365 days"),
        ("purchase_days_since_last", 12.0, "last purchase 12 days ago"),
        ("purchase_days_since_last", 12.6, "last purchase 13 days ago"),
        ("purchase_days_since_last", 2.5, "last purchase 2.5 days ago"),
        ("purchase_days_since_last", 2.0, "last purchase 2 days ago"),
        ("purchase_days_since_last", 1.04, "last purchase 1 day ago"),
        ("purchase_days_since_last", 0.4, "last purchase less than 1 day ago"),
        ("purchase_days_since_last", np.nan, "no purchase in the last 365 days"),
        ("purchase_days_since_first", None, "no purchase in the last 365 days"),
        ("purchase_days_since_first", 40.0, "earliest purchase in the last 365 days was 40 days ago"),
        ("purchase_value_sum", 1234.5, "purchases worth 1,234.50 in the last 365 days"),
        ("purchase_value_mean", 7.0, "average purchase worth 7.00"),
        ("purchase_value_mean", np.nan, "no purchase in the last 365 days"),
        ("tenure_days", 40.0, "earliest activity in the last 365 days was 40 days ago"),
        ("days_since_last_event", np.float64(1.0), "last activity 1 day ago"),
        ("active_days", 4.0, "active on 4 different days in the last 365 days"),
        ("active_days", 1.0, "active on 1 day in the last 365 days"),
        ("active_days", 0.0, "no activity in the last 365 days"),
        ("gap_mean_days", 1.0, "on average 1 day between active days"),
        ("gap_mean_days", np.nan, "at most one active day in the last 365 days"),
        ("gap_std_days", 0.0, "gaps between active days vary by less than 1 day"),
        ("gap_std_days", np.nan, "fewer than three active days in the last 365 days"),
        ("activity_ratio_30_90", 0.75, "75% of the events of the last 90 days were in the last 30 days"),
        ("activity_ratio_30_90", 0.996, "over 99% of the events of the last 90 days were in the last 30 days"),
        ("activity_ratio_30_90", 0.004, "under 1% of the events of the last 90 days were in the last 30 days"),
        ("activity_ratio_30_90", 0.0, "0% of the events of the last 90 days were in the last 30 days"),
        ("activity_ratio_90_365", np.nan, "no activity in the last 365 days"),
        ("country_most_frequent", "FR", "country mostly FR"),
        ("country_most_frequent", np.nan, "no country seen in the last 365 days"),
        ("profile_tier", "gold", "tier is gold"),
        ("profile_tier", pd.NA, "tier unknown"),
        ("profile_age", 41.0, "age is 41"),
        ("profile_age", 41.5, "age is 41.5"),
        ("profile_age", 1234.567, "age is 1,234.57"),
    ],
)
def test_describe(name: str, value: object, text: str) -> None:
    assert _info(name).describe(value) == text


def test_amounts_are_written_with_the_instances_currency() -> None:
    assert money_prefix(None) == ""
    assert money_prefix("GBP") == "GBP "
    assert money_prefix("$") == "$"
    assert money_prefix("€") == "€"
    assert _info("purchase_value_sum", "GBP").describe(1234.5) == "purchases worth GBP 1,234.50 in the last 365 days"
    assert _info("purchase_value_mean", "$").describe(7.0) == "average purchase worth $7.00"
    assert _info("purchase_value_mean", "GBP").label == "average purchase worth GBP N"
    assert _info("purchase_value_mean", "GBP").describe(np.nan) == "no purchase in the last 365 days"
    assert _info("purchase_count_30d", "GBP").describe(3.0) == "3 purchases in the last 30 days"  # counts: no money


def test_describe_uses_the_event_type_and_custom_event_words() -> None:
    spec = make_spec(custom_events=[{"name": "big_purchase", "where": [{"field": "value", "op": "gt", "value": 1}]}])
    plan = FeaturePlan(lookback_days=90, event_types=["add to cart"])
    infos = {i.name: i for i in feature_infos(plan, spec)}
    assert infos["add_to_cart_count_7d"].describe(2.0) == "2 add to cart events in the last 7 days"
    assert infos["add_to_cart_count_7d"].describe(1.0) == "1 add to cart event in the last 7 days"
    assert infos["add_to_cart_days_since_last"].describe(3.0) == "last add to cart event 3 days ago"
    assert infos["big_purchase_days_since_last"].describe(float("nan")) == "no big purchase in the last 90 days"
    assert infos["big_purchase_count_30d"].describe(2.0) == "2 big purchases in the last 30 days"
    assert "add_to_cart_count_365d" not in infos
    assert "add_to_cart_count_90d" in infos


@pytest.mark.parametrize(
    ("event_type", "text"),
    [
        ("page_view", "2 page views in the last 7 days"),
        ("search", "2 searches in the last 7 days"),
        ("box", "2 boxes in the last 7 days"),
        ("inquiry", "2 inquiries in the last 7 days"),
        ("day", "2 days in the last 7 days"),
        ("sales", "2 sales events in the last 7 days"),
        ("access", "2 accesses in the last 7 days"),
        ("sign up", "2 sign up events in the last 7 days"),
        ("order completed", "2 order completed events in the last 7 days"),
        ("email event", "2 email events in the last 7 days"),
        ("email events", "2 email events in the last 7 days"),
        ("shopping", "2 shopping events in the last 7 days"),
        ("{odd} name", "2 {odd} names in the last 7 days"),  # braces in a name are words, not placeholders
    ],
)
def test_event_names_get_their_plural_or_count_events(event_type: str, text: str) -> None:
    infos = {i.name: i for i in feature_infos(FeaturePlan(lookback_days=90, event_types=[event_type]), make_spec())}
    count = next(i for i in infos.values() if i.name.endswith("_count_7d"))
    assert count.describe(2.0) == text


def test_categorical_words_with_braces_are_not_placeholders() -> None:
    plan = FeaturePlan(lookback_days=90, categorical_columns={"size_{x}": ["S"]}, profile_columns={"tier": []})
    infos = {i.name: i for i in feature_infos(plan, make_spec())}
    assert infos["size_x_most_frequent"].describe("S") == "size {x} mostly S"
    assert infos["profile_tier"].describe(2.0) == "tier is 2"


def test_claims_recognise_the_same_statement_in_other_words() -> None:
    infos = {
        i.name: i
        for i in feature_infos(
            FeaturePlan(
                lookback_days=365,
                event_types=["purchase"],
                valued_sources=["purchase"],
                categorical_columns={"country": ["PT"]},
                profile_columns={"country": ["PT"]},
                repeat_model=True,
            ),
            make_spec(),
        )
    }
    assert infos["profile_country"].claim("PT") == infos["country_most_frequent"].claim("PT") == "country: PT"
    assert infos["profile_country"].claim("ES") != infos["country_most_frequent"].claim("PT")
    # the first purchase and the first goal event (a purchase) of the same window are the same event
    assert infos["purchase_days_since_first"].claim(40.2) == infos["goal_days_since_first"].claim(40.0)
    # one valued purchase: its total and its average are the same amount
    assert infos["purchase_value_sum"].claim(20.6) == infos["purchase_value_mean"].claim(20.6)
    # absences are claimed by their words, which several features share
    nothing = "no purchase in the last 365 days"
    assert infos["purchase_count_365d"].claim(0.0) == infos["purchase_days_since_last"].claim(np.nan) == nothing
    # anything else is said by one feature only
    assert infos["purchase_count_30d"].claim(3.0) is None
    assert infos["purchase_days_since_last"].claim(3.0) is None


def test_bounds_say_how_little_happened() -> None:
    plan = FeaturePlan(lookback_days=365, event_types=["purchase"])
    infos = {i.name: i for i in feature_infos(plan, make_spec())}
    assert infos["purchase_count_30d"].bound(0.0) == ("purchase", 30, 0)
    assert infos["purchase_count_30d"].bound(2.0) is None
    assert infos["purchase_days_since_last"].bound(np.nan) == ("purchase", 365, 0)
    assert infos["days_since_last_event"].bound(np.nan) == ("", 365, 0)
    assert infos["active_days"].bound(0.0) == ("", 365, 0)
    assert infos["active_days"].bound(2.0) == ("active days", 365, 2)
    assert infos["gap_mean_days"].bound(np.nan) == ("active days", 365, 1)
    assert infos["gap_std_days"].bound(np.nan) == ("active days", 365, 2)
    assert infos["gap_std_days"].bound(3.0) is None
    assert infos["activity_ratio_30_90"].bound(np.nan) == ("", 90, 0)
    assert infos["activity_ratio_30_90"].bound(0.0) is None  # 0% of some events: not an absence


def test_feature_info_defaults_keep_one_template() -> None:
    info = FeatureInfo("visits", "{value} visits", "no visits", "int")
    assert [info.describe(v) for v in (0.0, 1.0, 2.0, None)] == ["0 visits", "1 visits", "2 visits", "no visits"]
    assert info.claim(1.0) is None
    assert info.claim(None) == "no visits"
    assert info.bound(None) is None


# --- the repeat-buying model's view ------------------------------------------------------------------------


def repeat_rows() -> list[tuple]:
    rows = [("a", ago(d), "purchase", 10.0) for d in (400, 200, 100, 40, 10)]  # a repeats, 400 days back too
    rows += [("b", ago(300), "purchase", 10.0), ("b", ago(250), "purchase", 10.0)]
    rows += [("c", ago(50), "purchase", 10.0), ("d", ago(5), "view", None)]
    rows += [(f"x{i}", ago(20 + 3 * i), "purchase", 10.0) for i in range(20)]
    rows += [(f"x{i}", ago(2 + i), "purchase", 10.0) for i in range(0, 20, 2)]
    return rows


def test_repeat_model_features_are_bgnbd_fitted_on_every_goal_event_before_the_date() -> None:
    events = make_events(repeat_rows() + [("a", T, "purchase", 10.0)])  # at T: not seen
    spec = make_spec()
    plan = plan_features(events, spec, T)
    assert plan.repeat_model is True
    matrix = build_features(events, T, pd.Index(["a", "b", "c", "d"]), spec, plan)
    purchases = events.loc[(events["event_type"] == "purchase") & (events["timestamp"] < T)]
    history = repeat_summary(purchases, T)  # the whole history, 400 days back included
    model = fit_bgnbd(history["x"], history["t_x"], history["T"])
    summary = repeat_summary(purchases, T, pd.Index(["a", "b", "c", "d"]))
    x, t_x, big_t = (summary[c].to_numpy() for c in ("x", "t_x", "T"))
    np.testing.assert_allclose(matrix["goal_chance_30d"], model.probability_of_purchase(30, x, t_x, big_t))
    np.testing.assert_allclose(matrix["goal_expected_30d"], model.expected_purchases(30, x, t_x, big_t))
    np.testing.assert_allclose(matrix["goal_p_alive"], model.probability_alive(x, t_x, big_t))
    assert summary.loc["a", "x"] == 4  # the purchase 400 days back counts although the lookback is 365
    # a subset gets the same values: the fit uses every profile
    alone = build_features(events, T, pd.Index(["c"]), spec, plan)
    assert alone.loc["c", "goal_chance_30d"] == pytest.approx(matrix.loc["c", "goal_chance_30d"], rel=1e-12)


def test_models_fitted_on_all_events_give_a_subset_of_events_exactly_the_values_of_all() -> None:
    events = make_events(repeat_rows() + [("a", T, "purchase", 10.0)])
    spec = make_spec()
    plan = plan_features(events, spec, T)
    earlier = T - pd.Timedelta(days=30)
    models = fit_repeat_models(events, [T, earlier], spec)
    assert list(models) == [T, earlier]
    purchases = events.loc[(events["event_type"] == "purchase") & (events["timestamp"] < T)]
    assert models[T] == fit_repeat_model(purchases, T)
    own = events.loc[events["profile_id"].isin(["a", "c"])].reset_index(drop=True)  # two profiles' events only
    for date in (T, earlier):
        whole = build_features(events, date, pd.Index(["c", "a"]), spec, plan)
        part = build_features(own, date, pd.Index(["c", "a"]), spec, plan, repeat_models=models)
        pd.testing.assert_frame_equal(part, whole, check_exact=True)
    whole = build_features(events, T, pd.Index(["c", "a"]), spec, plan)
    refitted = build_features(own, T, pd.Index(["c", "a"]), spec, plan)  # fitted on the two profiles alone
    assert refitted.loc["c", "goal_chance_30d"] != whole.loc["c", "goal_chance_30d"]
    with pytest.raises(
        ValueError, match=r"no repeat-buying model was fitted as of 2011-09-01 \(fitted as of: 2011-08-02\)$"
    ):
        build_features(own, T, pd.Index(["a"]), spec, plan, repeat_models={earlier: models[earlier]})


def test_nobody_repeating_before_a_date_fits_no_model() -> None:
    events = make_events([("a", ago(10), "purchase", 1.0), ("b", ago(5), "purchase", 1.0)])
    assert fit_repeat_models(events, [T], make_spec()) == {T: None}


def test_repeat_summary_counts_exact_values_cover_the_feature_window_only() -> None:
    # e: one purchase a moment before the lookback's start (left out), one exactly on it (counted), one after
    window_edge = [("e", ago(365) - pd.Timedelta(microseconds=1), "purchase", 1.0), ("e", ago(365), "purchase", 1.0)]
    events = make_events(repeat_rows() + window_edge + [("e", ago(100), "purchase", 1.0), ("a", T, "purchase", 10.0)])
    spec = make_spec()
    plan = plan_features(events, spec, T)
    assert plan.lookback_days == 365
    matrix = build_features(events, T, pd.Index(["a", "b", "c", "d", "e"]), spec, plan)
    # a: five purchase days, the first 400 days back: beyond the 365-day lookback, so not counted (a run's
    # scoring date reads further back than its oldest snapshot: whole-history counts would mean more there)
    assert row(matrix, "a")["goal_repeat_days"] == 3
    assert row(matrix, "a")["goal_days_since_first"] == 200
    assert row(matrix, "b")["goal_repeat_days"] == 1
    assert row(matrix, "b")["goal_days_since_first"] == 300
    assert row(matrix, "c")["goal_repeat_days"] == 0
    assert row(matrix, "c")["goal_days_since_first"] == 50
    assert row(matrix, "d")["goal_repeat_days"] == 0  # no goal event: none repeated, and no first one
    assert_nan(row(matrix, "d")["goal_days_since_first"])
    assert row(matrix, "e")["goal_repeat_days"] == 1
    assert row(matrix, "e")["goal_days_since_first"] == 365
    # the model outputs still see the whole history: a's 400-day-old purchase is one of its five
    purchases = events.loc[(events["event_type"] == "purchase") & (events["timestamp"] < T)]
    assert repeat_summary(purchases, T).loc["a", "x"] == 4


def test_no_repeat_buyer_before_the_plan_date_means_no_repeat_model() -> None:
    events = make_events([("a", ago(10), "purchase", 1.0), ("b", ago(5), "purchase", 1.0)])
    plan = plan_features(events, make_spec(), T)
    assert plan.repeat_model is False
    names = [i.name for i in feature_infos(plan, make_spec())]
    assert "goal_chance_30d" not in names
    assert FeaturePlan.from_dict({k: v for k, v in plan.to_dict().items() if k != "repeat_model"}) == plan


def test_repeat_model_features_read_in_words() -> None:
    plan = plan_features(make_events(repeat_rows()), make_spec(), T)
    infos = {i.name: i for i in feature_infos(plan, make_spec())}
    assert infos["goal_chance_30d"].describe(0.34) == (
        "repeat-buying model: 34% chance of at least one purchase in the next 30 days"
    )
    assert infos["goal_chance_30d"].describe(0.9996) == (
        "repeat-buying model: over 99% chance of at least one purchase in the next 30 days"
    )
    assert (
        infos["goal_expected_30d"].describe(1.8249)
        == "repeat-buying model: 1.82 purchases expected in the next 30 days"
    )
    assert infos["goal_expected_30d"].describe(0.1) == "repeat-buying model: 0.1 purchases expected in the next 30 days"
    assert infos["goal_expected_30d"].describe(1.001) == "repeat-buying model: 1 purchase expected in the next 30 days"
    assert infos["goal_p_alive"].describe(0.9) == "repeat-buying model: 90% chance of still being an active customer"
    assert infos["goal_p_alive"].describe(1.0) == "repeat-buying model: 100% chance of still being an active customer"
    assert infos["goal_repeat_days"].describe(3.0) == "repeat purchases on 3 different days in the last 365 days"
    assert infos["goal_repeat_days"].describe(1.0) == "repeat purchases on 1 day in the last 365 days"
    assert infos["goal_repeat_days"].describe(0.0) == "no repeat purchase in the last 365 days"
    assert infos["goal_days_since_first"].describe(1.0) == "earliest purchase in the last 365 days was 1 day ago"
    assert infos["goal_days_since_first"].describe(float("nan")) == "no purchase in the last 365 days"


@pytest.mark.parametrize(
    ("goal", "custom_events", "text"),
    [
        # a goal matching a custom event takes its name
        (
            [
                {
                    "where": [
                        {"field": "event_type", "op": "eq", "value": "purchase"},
                        {"field": "value", "op": "gte", "value": 500},
                    ]
                }
            ],
            [
                {
                    "name": "large_order",
                    "where": [
                        {"field": "event_type", "op": "eq", "value": "purchase"},
                        {"field": "value", "op": "gte", "value": 500},
                    ],
                }
            ],
            "earliest large order in the last 90 days was 3 days ago",
        ),
        (
            [{"where": [{"field": "event_type", "op": "eq", "value": "add to cart"}]}],
            [],
            "earliest add to cart event in the last 90 days was 3 days ago",
        ),
        (
            [
                {"where": [{"field": "event_type", "op": "eq", "value": "purchase"}]},
                {"where": [{"field": "event_type", "op": "eq", "value": "renewal"}]},
            ],
            [],
            "earliest goal event in the last 90 days was 3 days ago",
        ),
        (
            [{"where": [{"field": "value", "op": "gte", "value": 500}]}],
            [],
            "earliest goal event in the last 90 days was 3 days ago",
        ),
    ],
)
def test_repeat_model_words_name_the_goal_event(goal: list, custom_events: list, text: str) -> None:
    base = make_spec()
    spec = make_spec(goal={**base.goal.model_dump(mode="json"), "events": goal}, custom_events=custom_events)
    infos = {i.name: i for i in feature_infos(FeaturePlan(lookback_days=90, repeat_model=True), spec)}
    assert infos["goal_days_since_first"].describe(3.0) == text


# --- properties over random logs ---------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(events=event_logs(), later=event_logs(), as_of=as_of_dates())
def test_events_at_or_after_the_as_of_date_change_no_feature(
    events: pd.DataFrame, later: pd.DataFrame, as_of: pd.Timestamp
) -> None:
    spec = make_spec()
    plan = plan_features(events, spec, as_of)
    profiles = pd.Index(sorted(set(events["profile_id"]) | set(later["profile_id"])))
    # the later log moved so that its first event falls exactly on the as-of date
    moved = later.assign(timestamp=later["timestamp"] - later["timestamp"].min() + as_of)
    extended = pd.concat([events, moved], ignore_index=True).sort_values("timestamp", kind="stable")
    before = build_features(events, as_of, profiles, spec, plan)
    after = build_features(extended.reset_index(drop=True), as_of, profiles, spec, plan)
    pd.testing.assert_frame_equal(before, after)


# --- exactly the values of the former group-by code (tests/feature_reference.py) ------------------------------------

EXACT_SPEC = {
    "custom_events": [
        {
            "name": "large_purchase",
            "where": [
                {"field": "event_type", "op": "eq", "value": "purchase"},
                {"field": "value", "op": "gte", "value": 100},
            ],
        },
        {"name": "app_visit", "where": [{"field": "channel", "op": "eq", "value": "app"}]},
    ],
}


def random_log(seed: int, profiles: int = 60, *, shuffled: bool = False) -> pd.DataFrame:
    """Return a seeded log around ``T``: five event types, values of every magnitude, two text columns.

    Events fall on exact midnights (window edges) and at random microseconds; some profiles have no event in a
    window, ids are not all ASCII, and values span twelve orders of magnitude so that the order in which a sum
    adds them shows in its last bits.
    """
    rng = np.random.default_rng(seed)
    ids = [f"p{i:03d}" for i in range(profiles)] + ["Zoë", "ångström", "10", "9", "ß"]
    count = 40 * len(ids)
    midnight = rng.random(count) < 0.3
    micros = rng.integers(-420 * 86_400_000_000, 40 * 86_400_000_000, size=count)
    micros = np.where(midnight, (micros // 86_400_000_000) * 86_400_000_000, micros)
    kinds = rng.choice(["purchase", "view", "add to cart", "search", "email"], size=count, p=[0.3, 0.3, 0.2, 0.1, 0.1])
    value = np.where(rng.random(count) < 0.8, 10.0 ** rng.uniform(-4, 8, size=count), np.nan)
    frame = pd.DataFrame(
        {
            "profile_id": rng.choice(ids, size=count, p=np.r_[np.full(profiles, 0.9 / profiles), np.full(5, 0.02)]),
            "timestamp": [str(T + pd.Timedelta(microseconds=int(m))) for m in micros],
            "event_type": kinds,
            "value": np.where(np.isin(kinds, ["purchase", "add to cart"]), value, np.nan),
            "channel": rng.choice(["web", "app", "store", None], size=count),
            "device": rng.choice(["b", "a", "c"], size=count),
        }
    )
    events = make_events([tuple(r[:4]) + ({"channel": r[4], "device": r[5]},) for r in frame.itertuples(index=False)])
    events["device"] = events["device"].astype(pd.CategoricalDtype(["c", "b", "a"]))  # categories not sorted
    if shuffled:  # profiles' events out of time order: sums must still add them in the events' order
        events = events.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    return events


def assert_same_as_reference(
    events: pd.DataFrame,
    spec: InstanceSpec,
    as_of: pd.Timestamp,
    profiles: pd.Index,
    *,
    attributes: pd.DataFrame | None = None,
    plan: FeaturePlan | None = None,
) -> pd.DataFrame:
    plan = plan or plan_features(events, spec, as_of, attributes)
    expected = reference.build_features(events, as_of, profiles, spec, plan, attributes=attributes)
    alone = build_features(events, as_of, profiles, spec, plan, attributes=attributes)
    shared = build_features(events, as_of, profiles, spec, plan, attributes=attributes, index=EventIndex(events))
    pd.testing.assert_frame_equal(alone, expected, check_exact=True)
    pd.testing.assert_frame_equal(shared, expected, check_exact=True)
    return alone


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
@pytest.mark.parametrize("lookback", [365, 100, 20])
def test_features_are_exactly_those_of_the_group_by_code(seed: int, lookback: int) -> None:
    events = random_log(seed)
    spec = make_spec(eligibility={"lookback_days": lookback}, **EXACT_SPEC)
    attributes = pd.DataFrame(
        {"country": ["PT", "FR", None, "FR"], "age": [31.0, np.nan, 55.0, 40.0]},
        index=pd.Index(["p000", "p001", "p002", "Zoë"], name="profile_id"),
    )
    plan = plan_features(events, spec, T - pd.Timedelta(days=30), attributes, lookback_days=lookback)
    assert plan.repeat_model
    assert set(plan.categorical_columns) == {"channel", "device"}
    assert plan.valued_sources
    profiles = pd.Index([*sorted(set(events["profile_id"]))[::-1], "never_seen"])  # not sorted, one unknown
    for as_of in (T - pd.Timedelta(days=30), T):
        matrix = assert_same_as_reference(events, spec, as_of, profiles, attributes=attributes, plan=plan)
        assert matrix.loc["never_seen"].isna().sum() > 0
    sums = matrix["purchase_value_sum"].dropna()
    assert len(sums) > 10  # the comparison covered many Kahan sums


@pytest.mark.parametrize("seed", [5, 6])
def test_features_of_events_out_of_time_order_are_exactly_those_of_the_group_by_code(seed: int) -> None:
    events = random_log(seed, shuffled=True)
    assert not events["timestamp"].is_monotonic_increasing
    spec = make_spec(**EXACT_SPEC)
    assert_same_as_reference(events, spec, T, pd.Index(sorted(set(events["profile_id"]))))


def test_features_of_a_subset_and_of_an_empty_window_are_exactly_those_of_the_group_by_code() -> None:
    events = random_log(7)
    spec = make_spec(**EXACT_SPEC)
    plan = plan_features(events, spec, T)
    assert_same_as_reference(events, spec, T, pd.Index(["p004", "Zoë", "p001"]), plan=plan)
    assert_same_as_reference(events, spec, T, pd.Index([], dtype="str"), plan=plan)
    long_before = T - pd.Timedelta(days=2000)  # no event in the lookback, none before for the repeat model
    assert_same_as_reference(events, spec, long_before, pd.Index(["p004", "p001"]), plan=plan)


def test_most_frequent_values_by_sorting_are_exactly_those_of_the_group_by_code(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(features_module, "_DENSE_CELLS", 0)  # what many profiles with many values take
    events = random_log(11)
    spec = make_spec(**EXACT_SPEC)
    matrix = assert_same_as_reference(events, spec, T, pd.Index(sorted(set(events["profile_id"]))))
    assert matrix["device_most_frequent"].notna().sum() > 10


def test_one_index_serves_every_snapshot_exactly() -> None:
    events = random_log(8)
    spec = make_spec(**EXACT_SPEC)
    plan = plan_features(events, spec, T - pd.Timedelta(days=90))
    index = EventIndex(events)
    profiles = pd.Index(sorted(set(events["profile_id"])))
    for days in (0, 30, 60, 90):
        as_of = T - pd.Timedelta(days=days)
        expected = reference.build_features(events, as_of, profiles, spec, plan)
        shared = build_features(events, as_of, profiles, spec, plan, index=index)
        pd.testing.assert_frame_equal(shared, expected, check_exact=True)


def test_an_index_of_other_events_is_not_used() -> None:
    events = random_log(9)
    other = EventIndex(random_log(10))
    spec = make_spec()
    plan = plan_features(events, spec, T)
    profiles = pd.Index(["p001", "p002"])
    expected = reference.build_features(events, T, profiles, spec, plan)
    pd.testing.assert_frame_equal(build_features(events, T, profiles, spec, plan, index=other), expected)


@settings(max_examples=80, deadline=None)
@given(events=event_logs(), as_of=as_of_dates())
def test_features_of_random_logs_are_exactly_those_of_the_group_by_code(
    events: pd.DataFrame, as_of: pd.Timestamp
) -> None:
    spec = make_spec(eligibility={"lookback_days": 90})
    profiles = pd.Index(sorted(set(events["profile_id"]) | {"z"}))
    assert_same_as_reference(events, spec, as_of, profiles)


def test_the_evidence_of_partitions_merged_gives_the_plan_of_all_events() -> None:
    spec = make_spec(
        training={"max_event_types": 3},
        custom_events=[{"name": "big_purchase", "where": [{"field": "value", "op": "gt", "value": 100}]}],
    )
    rows = [
        ("a", ago(10), "view", None, {"channel": "web"}),
        ("a", ago(9), "purchase", 20.0, {"channel": "app"}),
        ("a", ago(3), "purchase", 30.0, {"channel": "app"}),  # a repeat on another day: only in a's partition
        ("b", ago(8), "view", None, {"channel": "shop"}),
        ("b", ago(7), "cart", None, {"channel": None}),
        ("c", ago(6), "refund", 150.0, {"channel": "email"}),  # valued, and a big purchase by its value
        ("c", ago(5), "view", None, {"channel": "web"}),
        ("d", T + pd.Timedelta(days=1), "cart", 9.0, {"channel": "kiosk"}),  # after the date: unseen
    ]
    events = make_events(rows)
    whole = plan_features(events, spec, T)
    parts = [
        FeatureEvidence.of(events.loc[events["profile_id"].isin(ids)].reset_index(drop=True), spec, T)
        for ids in (["a"], ["b", "d"], ["c"], [])
    ]
    assert [p.repeated for p in parts] == [True, False, False, False]
    merged = FeatureEvidence.merge(parts)
    assert merged.plan(spec) == whole
    assert (whole.event_types, whole.valued_sources) == (["view", "purchase", "cart"], ["purchase", "big_purchase"])
    assert whole.categorical_columns == {"channel": ["app", "email", "shop", "web"]}
    assert whole.repeat_model


def test_merged_evidence_forgets_a_column_with_too_many_categories() -> None:
    rows = [(f"p{i}", ago(5), "view", None, {"sku": f"s{i}"}) for i in range(60)]  # 60 > MAX_CATEGORIES
    events = make_events(rows)
    halves = [events.iloc[:30].reset_index(drop=True), events.iloc[30:].reset_index(drop=True)]
    parts = [FeatureEvidence.of(half, make_spec(), T) for half in halves]
    assert all(len(p.categories["sku"]) == 30 for p in parts)
    merged = FeatureEvidence.merge(parts)
    assert merged.categories["sku"] is None
    assert (
        merged.plan(make_spec()).categorical_columns == plan_features(events, make_spec(), T).categorical_columns == {}
    )


# --- a goal with a value: its spend per 30 days of the history read ----------------------------------------------


def test_a_valued_goals_spend_rate_reads_the_goal_events_of_the_history_read_only() -> None:
    spec = make_spec(goal={**make_spec().goal.model_dump(mode="json"), "value": {"field": "value"}})
    events = make_events(
        [
            ("a", ago(70), "purchase", 999.0),  # before the history read
            ("a", ago(20), "purchase", 10.0),
            ("a", ago(5), "purchase", 20.0),
            ("a", ago(5), "view", 500.0),  # not a goal event
            ("a", ago(1), "purchase"),  # no amount: adds nothing
            ("a", T, "purchase", 1000.0),  # on the as-of date: not before it
            ("b", ago(3), "view"),
        ]
    )
    plan = plan_features(events, spec, T)
    assert plan.goal_value == "value"
    assert plan.to_dict()["goal_value"] == "value"
    assert FeaturePlan.from_dict(plan.to_dict()) == plan
    matrix = build_features(events, T, pd.Index(["a", "b", "stranger"]), spec, plan, read_from=ago(60))
    assert matrix["goal_value_per_30d"].tolist() == [15.0, 0.0, 0.0]  # 30 over 60 days, per 30 days
    info = next(i for i in feature_infos(plan, spec) if i.name == "goal_value_per_30d")
    assert info.describe(15.0) == "purchases worth 15.00 per 30 days of the history read"
    assert info.describe(0.0) == "no purchase value in the history read"


def test_a_goal_without_a_value_plans_and_stores_as_before() -> None:
    events = make_events([("a", ago(20), "purchase", 10.0)])
    plan = plan_features(events, make_spec(), T)
    assert plan.goal_value is None
    assert "goal_value" not in plan.to_dict()  # plans of earlier versions read and write unchanged
    assert "goal_value_per_30d" not in build_features(events, T, pd.Index(["a"]), make_spec(), plan).columns
