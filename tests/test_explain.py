"""Influential factors: ordering, signs, importance and JSON-ready values."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from customer_ai import explain
from customer_ai.explain import effect_of, importance_of, top_factors
from customer_ai.features import FeatureInfo, FeaturePlan, feature_infos

from conftest import make_spec

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
