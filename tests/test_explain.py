"""Influential factors: ordering, signs, importance and JSON-ready values."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from customer_ai.explain import importance_of, top_factors
from customer_ai.features import FeatureInfo

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
    }


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
