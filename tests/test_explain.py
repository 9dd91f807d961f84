"""Influential factors: ordering, signs, importance and JSON-ready values."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from customer_ai import explain
from customer_ai.explain import CHANCE, EXPECTED_VALUE, effect_of, importance_of, top_factors
from customer_ai.features import FeatureInfo, FeaturePlan, feature_infos

from conftest import make_spec, run_command

HIGH = math.log(1.5)
MEDIUM = math.log(1.15)

INFOS = [
    FeatureInfo("purchase_count_30d", "{value} purchases in the last 30 days", "no purchases", "int"),
    FeatureInfo("days_since_last_visit", "last visit {value} days ago", "never visited", "days"),
    FeatureInfo("top_channel", "mostly uses {value}", "no channel", "text", categorical=True),
]


def features_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "purchase_count_30d": [3, 0, 1200],
            "days_since_last_visit": [4.56789, np.nan, 12.0],
            "top_channel": pd.Categorical(["web", "app", None], categories=["app", "web"]),
        }
    )


@pytest.mark.parametrize(
    ("contribution", "expected"),
    [
        (0.0, "low"),
        (np.nextafter(MEDIUM, 0), "low"),
        (MEDIUM, "medium"),
        (-MEDIUM, "medium"),
        (np.nextafter(HIGH, 0), "medium"),
        (HIGH, "high"),
        (-HIGH, "high"),
        (-np.nextafter(HIGH, 0), "medium"),
        (-np.nextafter(MEDIUM, 0), "low"),
        (3.0, "high"),
    ],
)
def test_importance_of_thresholds(contribution, expected):
    assert importance_of(contribution) == expected


@pytest.mark.parametrize(
    ("contribution", "expected"),
    [
        (HIGH, "raises the chance a lot"),
        (np.nextafter(HIGH, 0), "raises the chance"),
        (MEDIUM, "raises the chance"),
        (np.nextafter(MEDIUM, 0), "raises the chance a little"),
        (1e-9, "raises the chance a little"),
        (-1e-9, "lowers the chance a little"),
        (-MEDIUM, "lowers the chance"),
        (-np.nextafter(HIGH, 0), "lowers the chance"),
        (-HIGH, "lowers the chance a lot"),
        (0.0, "does not change the chance"),
    ],
)
def test_effect_of_follows_the_sign_and_the_importance_thresholds(contribution, expected):
    assert effect_of(contribution) == expected


def test_the_value_models_effects_name_the_expected_value() -> None:
    assert effect_of(0.5, EXPECTED_VALUE) == "raises the expected value a lot"
    assert effect_of(-0.2, EXPECTED_VALUE) == "lowers the expected value"
    assert effect_of(0.0, EXPECTED_VALUE) == "does not change the expected value"
    assert effect_of(-0.5, CHANCE) == effect_of(-0.5) == "lowers the chance a lot"


def test_top_factors_orders_by_absolute_contribution_keeping_sign():
    contributions = np.array(
        [
            [0.1, -0.5, 0.3, -1.0],
            [0.2, 0.05, -0.25, -1.0],
            [-0.123456, 0.0, 0.9, -1.0],
        ]
    )
    factors = top_factors(features_frame(), contributions, INFOS, k=2)
    assert [[f["feature"] for f in row] for row in factors] == [
        ["days_since_last_visit", "top_channel"],
        ["top_channel", "purchase_count_30d"],
        ["top_channel", "purchase_count_30d"],
    ]
    assert [[f["contribution"] for f in row] for row in factors] == [[-0.5, 0.3], [-0.25, 0.2], [0.9, -0.1235]]
    assert [[f["importance"] for f in row] for row in factors] == [
        ["high", "medium"],
        ["medium", "medium"],
        ["high", "low"],
    ]
    assert factors[0][0] == {
        "feature": "days_since_last_visit",
        "description": "last visit 4.6 days ago",
        "value": 4.5679,
        "contribution": -0.5,
        "importance": "high",
        "effect": "lowers the chance a lot",
    }
    assert list(factors[0][0]) == ["feature", "description", "value", "contribution", "importance", "effect"]


def test_top_factors_k_larger_than_features_and_zero_left_out():
    contributions = np.array(
        [
            [0.1, -0.5, 0.3, -1.0],
            [0.0, 0.0, 0.0, -1.0],
            [0.0, 0.2, 0.0, -1.0],
        ]
    )
    factors = top_factors(features_frame(), contributions, INFOS, k=10)
    assert [len(row) for row in factors] == [3, 0, 1]
    assert [f["feature"] for f in factors[0]] == ["days_since_last_visit", "top_channel", "purchase_count_30d"]
    assert factors[2][0]["feature"] == "days_since_last_visit"


def test_top_factors_equal_contributions_keep_feature_order():
    contributions = np.array([[0.2, -0.2, 0.2, 0.0]] * 3)
    factors = top_factors(features_frame(), contributions, INFOS, k=3)
    assert all([f["feature"] for f in row] == [i.name for i in INFOS] for row in factors)
    assert [f["contribution"] for f in factors[0]] == [0.2, -0.2, 0.2]


def test_top_factors_descriptions_and_json_ready_values():
    contributions = np.array([[0.1, 0.2, 0.3, 0.0]] * 3)
    factors = top_factors(features_frame(), contributions, INFOS, k=3)
    by_name = [{f["feature"]: f for f in row} for row in factors]

    assert by_name[0]["purchase_count_30d"]["description"] == "3 purchases in the last 30 days"
    assert by_name[0]["purchase_count_30d"]["value"] == 3
    assert type(by_name[0]["purchase_count_30d"]["value"]) is int
    assert by_name[2]["purchase_count_30d"]["description"] == "1,200 purchases in the last 30 days"

    assert by_name[0]["days_since_last_visit"]["value"] == 4.5679
    assert type(by_name[0]["days_since_last_visit"]["value"]) is float
    assert by_name[1]["days_since_last_visit"]["value"] is None
    assert by_name[1]["days_since_last_visit"]["description"] == "never visited"
    assert by_name[2]["days_since_last_visit"]["description"] == "last visit 12 days ago"

    assert by_name[0]["top_channel"]["value"] == "web"
    assert type(by_name[0]["top_channel"]["value"]) is str
    assert by_name[0]["top_channel"]["description"] == "mostly uses web"
    assert by_name[2]["top_channel"]["value"] is None
    assert by_name[2]["top_channel"]["description"] == "no channel"

    text = json.dumps(factors, allow_nan=False)  # strict JSON: no NaN, no numpy scalars
    assert json.loads(text) == factors


def test_top_factors_numpy_scalars_and_objects_become_plain():
    infos = [
        FeatureInfo("ratio", "{value} of activity", "no activity", "ratio"),
        FeatureInfo("count", "{value} events", "no events", "int"),
        FeatureInfo("first_seen", "first seen {value}", "never seen", "text"),
    ]
    features = pd.DataFrame(
        {
            "ratio": pd.Series([np.float64(0.123456), np.float64("nan")], dtype=object),
            "count": pd.Series([np.int64(7), np.int64(0)], dtype=object),
            "first_seen": pd.Series([pd.Timestamp("2024-01-31"), pd.NA], dtype=object),
        }
    )
    factors = top_factors(features, np.array([[0.3, 0.2, 0.1, 0.0]] * 2), infos, k=3)
    assert [(f["feature"], f["value"], f["description"]) for f in factors[0]] == [
        ("ratio", 0.1235, "12% of activity"),
        ("count", 7, "7 events"),
        ("first_seen", "2024-01-31 00:00:00", "first seen 2024-01-31 00:00:00"),
    ]
    assert [(f["contribution"], f["importance"]) for f in factors[0]] == [
        (0.3, "medium"),
        (0.2, "medium"),
        (0.1, "low"),
    ]
    assert [type(f["value"]) for f in factors[0]] == [float, int, str]
    assert [(f["value"], f["description"]) for f in factors[1]] == [
        (None, "no activity"),
        (0, "0 events"),
        (None, "never seen"),
    ]
    json.dumps(factors, allow_nan=False)


def test_top_factors_contribution_rounded_importance_from_exact_value():
    factors = top_factors(features_frame()[:1], np.array([[0.987654321, 0.0, 0.0, 0.0]]), INFOS, k=1)
    assert factors[0][0]["contribution"] == 0.9877
    assert type(factors[0][0]["contribution"]) is float


@pytest.mark.parametrize(("rows", "k"), [(3, 0), (0, 2)])
def test_top_factors_nothing_to_explain(rows, k):
    features = features_frame()[:rows]
    factors = top_factors(features, np.full((rows, 4), 0.5), INFOS, k=k)
    assert factors == [[] for _ in range(rows)]


# --- no two factors say the same thing ----------------------------------------------------------------------------

PLAN = FeaturePlan(
    lookback_days=365,
    event_types=["purchase", "view"],
    valued_sources=["purchase"],
    categorical_columns={"country": ["PT", "ES"]},
    profile_columns={"country": ["PT", "ES"]},
    repeat_model=True,
)


def plan_infos() -> list[FeatureInfo]:
    return feature_infos(PLAN, make_spec())


def profile(**values: object) -> pd.DataFrame:
    """Return one profile of PLAN: an active buyer, with ``values`` replacing some features."""
    infos = plan_infos()
    row = {i.name: 5.0 for i in infos}
    row.update(
        {
            "purchase_days_since_last": 3.0,
            "purchase_days_since_first": 200.0,
            "goal_days_since_first": 400.0,
            "purchase_value_sum": 500.0,
            "purchase_value_mean": 100.0,
            "goal_chance_30d": 0.5,
            "goal_p_alive": 0.9,
            "activity_ratio_30_90": 0.5,
            "activity_ratio_90_365": 0.5,
            "country_most_frequent": "ES",
            "profile_country": "PT",
        }
    )
    row.update(values)
    return pd.DataFrame([row], columns=[i.name for i in infos], dtype=object)


def contributions_for(weights: dict[str, float]) -> np.ndarray:
    """Return one row of contributions: ``weights`` by feature name, 0 elsewhere, base value -1."""
    names = [i.name for i in plan_infos()]
    unknown = set(weights) - set(names)
    assert not unknown, unknown
    return np.array([[weights.get(n, 0.0) for n in names] + [-1.0]])


def explained(weights: dict[str, float], k: int = 10, **values: object) -> list[tuple[str, str, float]]:
    factors = top_factors(profile(**values), contributions_for(weights), plan_infos(), k)[0]
    return [(f["feature"], f["description"], f["contribution"]) for f in factors]


def test_same_words_from_several_features_are_one_factor_with_their_summed_contribution():
    # before: "no purchase in the last 365 days" three times
    factors = explained(
        {
            "purchase_value_mean": -0.2,
            "purchase_days_since_last": -0.3,
            "purchase_value_sum": 0.05,
            "view_count_7d": 0.1,
        },
        purchase_days_since_last=np.nan,
        purchase_days_since_first=np.nan,
        purchase_value_sum=np.nan,
        purchase_value_mean=np.nan,
        purchase_count_365d=0.0,
        purchase_count_90d=0.0,
        purchase_count_30d=0.0,
        purchase_count_7d=0.0,
    )
    assert factors == [
        ("purchase_days_since_last", "no purchase in the last 365 days", -0.45),
        ("view_count_7d", "5 views in the last 7 days", 0.1),
    ]


def test_an_attribute_and_the_events_saying_the_same_value_are_one_factor():
    # before: "country is Portugal" and "most often country Portugal"
    weights = {"country_most_frequent": 0.3, "profile_country": -0.1, "view_count_7d": 0.05}
    assert explained(weights, country_most_frequent="PT") == [
        ("country_most_frequent", "country mostly PT", 0.2),
        ("view_count_7d", "5 views in the last 7 days", 0.05),
    ]
    assert explained(weights, country_most_frequent="ES") == [
        ("country_most_frequent", "country mostly ES", 0.3),
        ("profile_country", "country is PT", -0.1),
        ("view_count_7d", "5 views in the last 7 days", 0.05),
    ]


def test_first_purchase_as_an_event_and_as_the_goal_are_one_factor_when_equal():
    weights = {"purchase_days_since_first": 0.1, "goal_days_since_first": 0.2}
    assert explained(weights, purchase_days_since_first=40.0, goal_days_since_first=40.0) == [
        ("goal_days_since_first", "earliest purchase in the last 365 days was 40 days ago", 0.3),
    ]
    assert len(explained(weights, purchase_days_since_first=40.0, goal_days_since_first=400.0)) == 2


def test_one_valued_purchase_total_and_average_are_one_factor():
    weights = {"purchase_value_sum": 0.1, "purchase_value_mean": 0.15}
    assert explained(weights, purchase_value_sum=20.6, purchase_value_mean=20.6) == [
        ("purchase_value_mean", "average purchase worth 20.60", 0.25),
    ]


def test_no_activity_speaks_for_every_absence_it_implies_even_when_smaller():
    nothing = dict.fromkeys(("purchase_days_since_last", "purchase_days_since_first", "purchase_value_sum"), np.nan)
    nothing |= {"purchase_value_mean": np.nan, "view_days_since_last": np.nan, "view_days_since_first": np.nan}
    nothing |= {f"{p}_count_{w}d": 0.0 for p in ("purchase", "view") for w in (7, 30, 90, 365)}
    nothing |= {"tenure_days": np.nan, "days_since_last_event": np.nan, "active_days": 0.0, "gap_mean_days": np.nan}
    nothing |= {"gap_std_days": np.nan, "activity_ratio_30_90": np.nan, "activity_ratio_90_365": np.nan}
    nothing |= {"country_most_frequent": np.nan, "goal_repeat_days": 0.0}
    weights = {
        "purchase_value_mean": -0.5,
        "purchase_count_30d": -0.2,
        "gap_mean_days": -0.1,
        "country_most_frequent": 0.05,
        "active_days": -0.01,
        "goal_repeat_days": -0.3,
    }
    # before: "no purchase in the last 365 days", "no purchase in the last 30 days", "only one active day" and
    # "no activity in the last 365 days" side by side
    assert explained(weights, **nothing) == [
        ("active_days", "no activity in the last 365 days", -0.76),
        ("goal_repeat_days", "no repeat purchase in the last 365 days", -0.3),  # a count of goal days: not an absence
    ]


def test_a_broader_absence_of_the_same_events_speaks_for_the_narrower():
    weights = {"purchase_count_7d": -0.4, "purchase_count_30d": -0.2, "purchase_count_90d": 0.1, "view_count_7d": 0.3}
    factors = explained(weights, purchase_count_7d=0.0, purchase_count_30d=0.0, purchase_count_90d=0.0)
    assert factors == [
        ("purchase_count_90d", "no purchase in the last 90 days", -0.5),
        ("view_count_7d", "5 views in the last 7 days", 0.3),
    ]
    # 2 purchases in 90 days do not imply none in 7 days
    factors = explained(weights, purchase_count_7d=0.0, purchase_count_30d=2.0, purchase_count_90d=2.0)
    assert [f[1] for f in factors] == [
        "no purchase in the last 7 days",
        "5 views in the last 7 days",
        "2 purchases in the last 30 days",
        "2 purchases in the last 90 days",
    ]


def test_one_active_day_speaks_for_the_missing_gaps():
    weights = {"gap_mean_days": -0.3, "gap_std_days": -0.1, "active_days": 0.05}
    assert explained(weights, active_days=1.0, gap_mean_days=np.nan, gap_std_days=np.nan) == [
        ("active_days", "active on 1 day in the last 365 days", -0.35),
    ]
    assert explained(weights, active_days=2.0, gap_mean_days=4.0, gap_std_days=np.nan) == [
        ("gap_mean_days", "on average 4 days between active days", -0.3),
        ("active_days", "active on 2 different days in the last 365 days", -0.05),
    ]


def test_k_factors_come_back_when_duplicates_are_merged():
    weights = {"purchase_value_mean": -0.5, "purchase_value_sum": -0.4, "view_count_7d": 0.3, "view_count_30d": 0.2}
    factors = explained(weights, k=2, purchase_value_sum=np.nan, purchase_value_mean=np.nan)
    assert [(f[0], f[2]) for f in factors] == [("purchase_value_mean", -0.9), ("view_count_7d", 0.3)]


def test_all_factors_add_up_to_the_log_odds_and_each_says_something_new():
    infos = plan_infos()
    rng = np.random.default_rng(3)
    rows = []
    for i in range(60):
        quiet = i % 3 == 0
        rows.append(
            profile(
                purchase_count_7d=float(rng.integers(0, 2)),
                purchase_count_30d=0.0 if quiet else float(rng.integers(0, 3)),
                purchase_days_since_last=np.nan if quiet else 3.0,
                purchase_value_mean=np.nan if quiet else 20.0,
                purchase_value_sum=np.nan if quiet else float(rng.choice([20.0, 40.0])),
                active_days=float(rng.integers(0, 4)),
                gap_mean_days=np.nan if i % 2 else 3.0,
                country_most_frequent=str(rng.choice(["PT", "ES"])),
                goal_days_since_first=float(rng.choice([200.0, 400.0])),
            ).iloc[0]
        )
    features = pd.DataFrame(rows, columns=[i.name for i in infos])
    contributions = rng.normal(0, 0.3, size=(len(features), len(infos) + 1))
    factors = top_factors(features, contributions, infos, k=len(infos))
    for row, listed in enumerate(factors):
        assert sum(f["contribution"] for f in listed) == pytest.approx(
            contributions[row, :-1].sum(), abs=1e-4 * len(infos)
        )
        descriptions = [f["description"] for f in listed]
        assert len(set(descriptions)) == len(descriptions)
        assert [abs(f["contribution"]) for f in listed] == sorted(
            (abs(f["contribution"]) for f in listed), reverse=True
        )


def test_top_factors_are_the_same_in_chunks(monkeypatch):
    infos = plan_infos()
    features = pd.concat(
        [profile(purchase_value_sum=np.nan, purchase_value_mean=np.nan), profile()] * 5, ignore_index=True
    )
    contributions = np.random.default_rng(5).normal(0, 0.3, size=(len(features), len(infos) + 1))
    whole = top_factors(features, contributions, infos, k=6)
    monkeypatch.setattr(explain, "_CHUNK_ROWS", 3)
    assert top_factors(features, contributions, infos, k=6) == whole


# --- factors that read as reasons ---------------------------------------------------------------------------------

# 100 training profiles with a value: 10 below 1, 50 in [1, 2), 30 in [2, 4), 10 from 4; 7 without one
BINS = {"kind": "number", "edges": [1.0, 2.0, 4.0], "counts": [10, 50, 30, 10, 7]}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.0, (-1, 0.9)),  # 90 lie in the bins above
        (1.0, (0, 0.0)),  # 10 below and 40 above: neither is more than half
        (1.99, (0, 0.0)),
        (2.0, (1, 0.6)),  # 60 lie below; its own bin's 30 count on neither side
        (9.0, (1, 0.9)),
    ],
)
def test_a_value_is_placed_by_the_training_profiles_surely_below_or_above_it(value, expected):
    assert explain.place_among(BINS, value) == expected


def test_a_value_without_bins_of_numbers_has_no_place():
    assert explain.place_among(None, 1.0) is None
    assert explain.place_among({"kind": "values", "values": ["PT"], "counts": [3, 0, 0]}, 1.0) is None
    assert explain.place_among(BINS, float("nan")) is None
    assert explain.place_among({**BINS, "counts": [0, 0, 0, 0, 7]}, 1.0) is None


def info_named(name: str, spec_overrides: dict | None = None) -> FeatureInfo:
    return next(i for i in feature_infos(PLAN, make_spec(**(spec_overrides or {}))) if i.name == name)


CHURN = {
    "goal": {
        "occurrence": "will_not_occur",
        "events": [{"where": [{"field": "event_type", "op": "eq", "value": "purchase"}]}],
        "window_days": 30,
    },
    "propensity": "churn",
}
WHY = "for profiles like this one the model reads this the other way"
CORRECTS = "already reflected in the repeat-buying model's chance, which this corrects"


@pytest.mark.parametrize(
    ("name", "value", "contribution", "expected"),
    [
        ("purchase_count_30d", 3.0, 0.2, "3 purchases in the last 30 days (more than 60% of customers)"),
        (
            "goal_days_per_30d",
            0.5,
            -0.2,
            "purchases on 0.5 days per 30 days of the history read (fewer than 90% of customers)",
        ),
        ("purchase_count_30d", 1.0, 0.2, "1 purchase in the last 30 days (typical of customers)"),
        ("purchase_days_since_last", 0.5, 0.2, "last purchase less than 1 day ago (more recent than 90% of customers)"),
        ("purchase_days_since_last", 9.0, -0.2, "last purchase 9 days ago (longer ago than 90% of customers)"),
        ("purchase_value_sum", 9.0, 0.2, "purchases worth 9.00 in the last 365 days (more than 90% of customers)"),
        (
            "goal_chance_30d",
            0.001,
            -0.2,
            "repeat-buying model: under 1% chance of at least one purchase in the next "
            "30 days (lower than 90% of customers)",
        ),
        ("gap_mean_days", 9.0, -0.2, "on average 9 days between active days (less often than 90% of customers)"),
        # what a view or an average amount argues for has no plain reading: either sign reads as found
        ("view_count_30d", 9.0, -0.2, "9 views in the last 30 days (more than 90% of customers)"),
        ("purchase_value_mean", 9.0, -0.2, "average purchase worth 9.00 (more than 90% of customers)"),
        # absent: said as it is
        ("purchase_count_30d", 0.0, -0.2, "no purchase in the last 30 days"),
    ],
)
def test_a_number_is_compared_with_the_training_profiles_in_its_own_words(name, value, contribution, expected):
    assert explain.reads_as(info_named(name), value, contribution, BINS) == expected


def test_a_factor_whose_value_argues_against_its_sign_says_why():
    count, absent = info_named("purchase_count_30d"), info_named("active_days")
    assert (
        explain.reads_as(count, 9.0, -0.2, BINS)
        == f"9 purchases in the last 30 days (more than 90% of customers; {WHY})"
    )
    rate = info_named("goal_days_per_30d")
    assert explain.reads_as(rate, 0.5, 0.2, BINS).endswith(f"(fewer than 90% of customers; {WHY})")
    # the repeat-buying model reads the goal events' history: a statement that adjusts its chance says so
    assert explain.reads_as(count, 9.0, -0.2, BINS, modelled=True).endswith(f"; {CORRECTS})")
    assert explain.reads_as(absent, 0.0, 0.2, BINS) == f"no activity in the last 365 days ({WHY})"
    assert explain.reads_as(absent, 0.0, -0.2, BINS) == "no activity in the last 365 days"
    # the model's own chance is not corrected by itself
    chance = info_named("goal_chance_30d")
    assert explain.reads_as(chance, 0.9, 0.2, BINS, modelled=True).endswith(f"(lower than 90% of customers; {WHY})")
    # without bins (a model stored before they were kept) only a contrary absence can be read plainly
    assert explain.reads_as(count, 9.0, -0.2, None) == "9 purchases in the last 30 days"


def test_a_churn_goal_turns_every_plain_reading_round():
    count, recency = info_named("purchase_count_30d", CHURN), info_named("purchase_days_since_last", CHURN)
    assert explain.reads_as(count, 9.0, -0.2, BINS) == "9 purchases in the last 30 days (more than 90% of customers)"
    assert explain.reads_as(count, 9.0, 0.2, BINS).endswith(f"; {WHY})")
    assert explain.reads_as(recency, 9.0, 0.2, BINS) == "last purchase 9 days ago (longer ago than 90% of customers)"
    assert explain.reads_as(recency, 0.5, 0.2, BINS).endswith(f"; {WHY})")
    assert explain.reads_as(info_named("active_days", CHURN), 0.0, -0.2, BINS).endswith(f"({WHY})")


def test_the_repeat_buying_models_outputs_are_one_factor_in_the_words_of_its_chance():
    # before: "over 99% chance of still being an active customer" lowered a repurchase beside the chance raising it
    weights = {"goal_p_alive": -0.3, "goal_chance_30d": 0.2, "goal_expected_30d": 0.05, "view_count_7d": 0.01}
    assert explained(weights, goal_chance_30d=0.1, goal_p_alive=0.995, goal_expected_30d=0.11) == [
        ("goal_chance_30d", "repeat-buying model: 10% chance of at least one purchase in the next 30 days", -0.05),
        ("view_count_7d", "5 views in the last 7 days", 0.01),
    ]
    unknown = dict.fromkeys(("goal_chance_30d", "goal_p_alive", "goal_expected_30d"), np.nan)
    assert explained(weights, **unknown)[0] == ("goal_p_alive", "no repeat-buying estimate", -0.05)


def test_no_goal_event_in_the_lookback_is_said_once_by_no_activity():
    weights = {"goal_days_since_first": 0.3, "active_days": -0.5, "view_count_7d": 0.01}
    nothing = {"active_days": 0.0, "tenure_days": np.nan, "goal_days_since_first": np.nan, "view_count_7d": 0.0}
    assert explained(weights, **nothing) == [("active_days", "no activity in the last 365 days", -0.19)]


def test_top_factors_compare_with_the_models_bins_when_given():
    infos = plan_infos()
    weights = {"purchase_count_30d": 0.4, "purchase_days_since_last": 0.2}
    found = top_factors(
        profile(purchase_count_30d=3.0), contributions_for(weights), infos, 2, {"purchase_count_30d": BINS}
    )
    assert [f["description"] for f in found[0]] == [
        "3 purchases in the last 30 days (more than 60% of customers)",
        "last purchase 3 days ago",  # no bins for it
    ]


# --- the examples' 20 highest and 20 lowest profiles read as reasons ----------------------------------------------

# The test's own plain reading of a line (a goal of buying; a churn goal turns it round): a larger value of these
# argues for buying, of those against; an absence of purchases or activity argues against; anything else (a
# cancellation, an amount on average, a country) argues neither way.
LARGER_ARGUES_FOR = (
    "purchase_count_",
    "large_purchase_count_",
    "purchase_value_sum",
    "large_purchase_value_sum",
    "active_days",
    "activity_ratio_",
    "goal_chance_",
    "goal_repeat_days",
    "goal_days_per_30d",
)
LARGER_ARGUES_AGAINST = ("purchase_days_since_last", "large_purchase_days_since_last", "days_since_last_event")
ABSENCE = re.compile(
    r"^(no (activity|purchase|large purchase|repeat purchase)\b|at most one active day|fewer than three)"
)
ABOVE = re.compile(r"\((more|higher|longer ago|less often|less regular) than \d+% of customers")
BELOW = re.compile(r"\((fewer|less|lower|more recent|more often|more regular) than \d+% of customers")


def plain_reading(factor: dict, lean: int) -> int:
    """Return +1 when the line, read plainly, argues for the goal, -1 against, 0 neither (see above)."""
    text, feature = factor["description"], factor["feature"]
    if ABSENCE.match(text):
        return -lean
    side = 1 if ABOVE.search(text) else -1 if BELOW.search(text) else 0
    if feature.startswith(LARGER_ARGUES_FOR):
        return lean * side
    if feature.startswith(LARGER_ARGUES_AGAINST):
        return -lean * side
    return 0


@pytest.fixture(scope="module")
def example_factors(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    """Both example instances run as of the demo's date: each one's 20 lowest and 20 highest profiles."""
    found = {}
    for name in ("repurchase_30d", "churn_60d"):
        home = tmp_path_factory.mktemp(name)
        result = run_command("-q", "run", f"instances/{name}.yaml", "--as-of", "2011-12-11", home=home)
        assert result.returncode == 0, result.stderr
        (path,) = Path(home).glob(f"artifacts/{name}/2011-12-11/*/scores.parquet")
        scores = pd.read_parquet(path).sort_values(["probability", "profile_id"])
        found[name] = pd.concat([scores.head(20), scores.tail(20)])
    return found


@pytest.mark.e2e
@pytest.mark.parametrize(("name", "lean"), [("repurchase_30d", 1), ("churn_60d", -1)])
def test_no_factor_of_the_examples_extremes_argues_against_its_sign_without_saying_why(
    example_factors: dict[str, pd.DataFrame], name: str, lean: int
) -> None:
    # before: "over 99% chance of still being an active customer" lowered a repurchase, "100% chance ..." raised
    # churn while "over 99% ..." lowered it, "last purchase 8.3 days ago" lowered a repurchase, each without a word
    lines = [factor for text in example_factors[name]["factors"] for factor in json.loads(text)]
    assert len(lines) >= 150  # 40 profiles, mostly 5 factors each
    unexplained = [
        (factor["description"], factor["contribution"])
        for factor in lines
        if plain_reading(factor, lean) * factor["contribution"] < 0
        and not (WHY in factor["description"] or CORRECTS in factor["description"])
    ]
    assert unexplained == []
    # the repeat-buying model speaks once, in the words of its chance
    assert not [f for f in lines if f["feature"].startswith(("goal_expected_", "goal_p_alive"))]
    # every number that argues one way is placed among the customers
    directional = [f for f in lines if f["feature"].startswith(LARGER_ARGUES_FOR + LARGER_ARGUES_AGAINST)]
    placed = [
        f
        for f in directional
        if ABSENCE.match(f["description"])
        or "% of customers" in f["description"]
        or "typical of customers" in f["description"]
    ]
    assert len(directional) >= 40
    assert placed == directional
