"""Tests for customer_ai.segments: membership by score columns and factors, sizes, flat factor columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from customer_ai.segments import flat_factors, rule_mask, segment_members, segment_sizes
from customer_ai.spec import SpecError

from conftest import make_spec


def factor(feature: str, contribution: float | None, importance: str = "low") -> dict:
    return {
        "feature": feature,
        "description": f"{feature} said in words",
        "value": 1,
        "contribution": contribution,
        "importance": importance,
        "effect": "raises the chance a little" if (contribution or 0) > 0 else "lowers the chance a little",
    }


def run_scores() -> pd.DataFrame:
    """Six scored profiles; a and e tie on probability, f has no factors."""
    return pd.DataFrame(
        {
            "profile_id": ["a", "b", "c", "d", "e", "f"],
            "probability": [0.5, 0.9, 0.1, 0.8, 0.5, 0.05],
            "score": [50, 90, 10, 80, 50, 5],
            "percentile": [67, 100, 34, 84, 67, 17],
            "bucket": ["medium", "high", "low", "high", "medium", "low"],
            "factors": [
                [factor("recency", 0.4), factor("count_30d", -0.2)],
                [factor("count_30d", 0.7, "high"), factor("recency", 0.1)],
                [factor("recency", -0.3)],
                [factor("count_30d", 0.0)],
                [factor("tenure", 0.2)],
                [],
            ],
        }
    )


def members_of(where: list[dict], scores: pd.DataFrame | None = None) -> list[str]:
    """Return the profile ids of the one named segment ``where`` defines, in membership order."""
    spec = make_spec(segments=[{"name": "chosen", "where": where}])
    members = segment_members(run_scores() if scores is None else scores, spec)
    return members.loc[members["segment"] == "chosen", "profile_id"].tolist()


# --- membership -------------------------------------------------------------------------------------------------


def test_default_segments_then_named_ones_in_spec_order() -> None:
    spec = make_spec(
        segments=[
            {"name": "top", "where": [{"field": "percentile", "op": "gte", "value": 67}]},
            {"name": "recent", "where": [{"factor": "recency", "op": "gt", "value": 0}]},
        ]
    )
    members = segment_members(run_scores(), spec)
    assert members.columns.tolist() == ["segment", "profile_id"]
    assert list(zip(members["segment"], members["profile_id"], strict=True)) == [
        ("low", "c"),
        ("low", "f"),
        ("medium", "a"),  # a and e share a probability: profile id decides
        ("medium", "e"),
        ("high", "b"),
        ("high", "d"),
        ("top", "b"),
        ("top", "d"),
        ("top", "a"),
        ("top", "e"),
        ("recent", "b"),
        ("recent", "a"),
    ]
    assert members.dtypes.astype(str).to_dict() == {"segment": "str", "profile_id": "str"}
    assert segment_sizes(members, spec) == {"low": 2, "medium": 2, "high": 2, "top": 4, "recent": 2}


def test_a_segment_nobody_matches_has_no_row_and_size_zero() -> None:
    spec = make_spec(segments=[{"name": "none", "where": [{"field": "score", "op": "gt", "value": 95}]}])
    members = segment_members(run_scores(), spec)
    assert "none" not in set(members["segment"])
    assert segment_sizes(members, spec)["none"] == 0


def test_no_scores_give_an_empty_membership() -> None:
    spec = make_spec(segments=[{"name": "top", "where": [{"factor": "recency", "op": "exists"}]}])
    members = segment_members(run_scores().iloc[:0], spec)
    assert members.empty
    assert members.dtypes.astype(str).to_dict() == {"segment": "str", "profile_id": "str"}
    assert segment_sizes(members, spec) == {"low": 0, "medium": 0, "high": 0, "top": 0}


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ([{"field": "percentile", "op": "gte", "value": 84}], ["b", "d"]),
        ([{"field": "probability", "op": "lt", "value": 0.5}], ["c", "f"]),
        ([{"field": "score", "op": "eq", "value": 50}], ["a", "e"]),
        ([{"field": "score", "op": "in", "value": [5, 90]}], ["b", "f"]),
        ([{"field": "bucket", "op": "ne", "value": "medium"}], ["b", "d", "c", "f"]),
        ([{"field": "bucket", "op": "not_in", "value": ["low", "high"]}], ["a", "e"]),
        ([{"field": "profile_id", "op": "in", "value": ["f", "a", "zz"]}], ["a", "f"]),
        ([{"field": "profile_id", "op": "contains", "value": "d"}], ["d"]),
        # every condition must hold
        ([{"field": "bucket", "op": "eq", "value": "high"}, {"field": "score", "op": "lt", "value": 85}], ["d"]),
    ],
)
def test_conditions_on_score_columns(where: list[dict], expected: list[str]) -> None:
    assert members_of(where) == expected


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ([{"factor": "recency", "op": "gt", "value": 0}], ["b", "a"]),
        ([{"factor": "recency", "op": "lt", "value": 0}], ["c"]),
        # ne holds only where the feature is among the top factors: c, d, e and f do not count
        ([{"factor": "count_30d", "op": "ne", "value": 0.7}], ["d", "a"]),
        ([{"factor": "count_30d", "op": "gte", "value": 0}], ["b", "d"]),
        ([{"factor": "count_30d", "op": "in", "value": [0, -0.2]}], ["d", "a"]),
        ([{"factor": "count_30d", "op": "not_in", "value": [0]}], ["b", "a"]),
        ([{"factor": "tenure", "op": "exists"}], ["e"]),
        ([{"factor": "tenure", "op": "exists", "value": True}], ["e"]),
        ([{"factor": "recency", "op": "exists", "value": False}], ["d", "e", "f"]),
        ([{"factor": "never_a_factor", "op": "lt", "value": 100}], []),
        ([{"factor": "recency", "op": "gt", "value": 0}, {"factor": "count_30d", "op": "lt", "value": 0}], ["a"]),
        ([{"field": "bucket", "op": "eq", "value": "high"}, {"factor": "recency", "op": "exists"}], ["b"]),
    ],
)
def test_conditions_on_factors(where: list[dict], expected: list[str]) -> None:
    assert members_of(where) == expected


def test_a_factor_without_a_contribution_never_compares() -> None:
    scores = run_scores()
    scores.at[0, "factors"] = [factor("recency", None)]  # what a store returns for a NaN it could not hold
    assert members_of([{"factor": "recency", "op": "ne", "value": 1}], scores) == ["b", "c"]
    assert members_of([{"factor": "recency", "op": "exists"}], scores) == ["b", "a", "c"]


def test_yaml_numbers_match_text_ids() -> None:
    scores = run_scores().assign(profile_id=["12346", "b", "c", "d", "e", "f"])
    assert members_of([{"field": "profile_id", "op": "eq", "value": 12346}], scores) == ["12346"]
    assert members_of([{"field": "profile_id", "op": "in", "value": [10**17, 12346]}], scores) == ["12346"]


def test_rule_mask_is_one_flag_per_row_in_the_scores_order() -> None:
    spec = make_spec(segments=[{"name": "x", "where": [{"factor": "recency", "op": "gt", "value": 0.2}]}])
    assert rule_mask(run_scores(), spec.segments[0].where).tolist() == [True, False, False, False, False, False]


# --- hostile values: compared as data, never run ------------------------------------------------------------------

HOSTILE_TEXT = [
    "'; DROP TABLE x; --",
    "__import__('os')",
    "nul\x00byte",
    "line\nbreak\r\n",
    "\x1b[2J",
    "' OR '1'='1",
    "{schema}",
]


@pytest.mark.parametrize("text", HOSTILE_TEXT)
@pytest.mark.parametrize("op", ["eq", "contains"])
def test_hostile_text_matches_nothing_in_ordinary_scores(text: str, op: str) -> None:
    assert members_of([{"field": "profile_id", "op": op, "value": text}]) == []


@pytest.mark.parametrize("text", HOSTILE_TEXT)
def test_hostile_text_matches_only_the_identical_id(text: str) -> None:
    scores = run_scores().assign(profile_id=["a", "b", text, "d", "e", "f"])
    assert members_of([{"field": "profile_id", "op": "eq", "value": text}], scores) == [text]
    assert members_of([{"field": "profile_id", "op": "ne", "value": text}], scores) == ["b", "d", "a", "e", "f"]


def test_code_in_a_value_is_never_run(tmp_path) -> None:
    marker = tmp_path / "ran"
    code = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    assert members_of([{"field": "profile_id", "op": "eq", "value": code}]) == []
    assert members_of([{"field": "profile_id", "op": "in", "value": [code, f"{code} or True"]}]) == []
    assert not marker.exists()


@pytest.mark.parametrize("huge", [1e308, -1e308])
def test_huge_contributions_match_nothing(huge: float) -> None:
    op = "gt" if huge > 0 else "lt"
    assert members_of([{"factor": "recency", "op": op, "value": huge}]) == []


@pytest.mark.parametrize(
    ("condition", "reason"),
    [
        ({"factor": "recency", "op": "gt", "value": 10**400}, "is too large"),
        ({"factor": "recency", "op": "gt", "value": float("inf")}, "not inf"),
        ({"factor": "recency", "op": "gt", "value": float("nan")}, "not nan"),
        ({"field": "percentile", "op": "gte", "value": 1e300}, "percentile takes a number from 1 to 100, not 1e+300"),
        ({"field": "bucket", "op": "eq", "value": "'; DROP TABLE x; --"}, "bucket is one of low, medium, high"),
        ({"factor": "x; DROP TABLE y", "op": "exists"}, "is not a feature name"),
        ({"factor": "__import__('os')", "op": "exists"}, "is not a feature name"),
        ({"factor": "recency\n", "op": "exists"}, "is not a feature name"),
        ({"field": "__class__", "op": "eq", "value": 1}, "unknown field '__class__'"),
        ({"field": "profile_id", "op": "eq", "value": 10**400}, "is too long for a number: write the id in quotes"),
    ],
)
def test_hostile_rules_are_refused_when_the_file_is_read(condition: dict, reason: str) -> None:
    with pytest.raises(SpecError, match=r"^unit\.yaml: segments\[0\]\.where\[0\]: ") as info:
        make_spec(segments=[{"name": "bad", "where": [condition]}])
    assert reason in str(info.value)


# --- flat factor columns ----------------------------------------------------------------------------------------


def test_flat_factors_replace_the_factors_column_in_place() -> None:
    scores = run_scores().iloc[[0, 2, 5]].reset_index(drop=True).assign(extra="x")
    flat = flat_factors(scores, 2)
    assert flat.columns.tolist() == [
        "profile_id",
        "probability",
        "score",
        "percentile",
        "bucket",
        "factor_1_name",
        "factor_1_text",
        "factor_1_contribution",
        "factor_1_importance",
        "factor_1_effect",
        "factor_2_name",
        "factor_2_text",
        "factor_2_contribution",
        "factor_2_importance",
        "factor_2_effect",
        "extra",
    ]
    assert flat["factor_1_name"].tolist() == ["recency", "recency", np.nan]
    assert flat["factor_1_text"].tolist() == ["recency said in words", "recency said in words", np.nan]
    assert flat["factor_1_contribution"].tolist() == pytest.approx([0.4, -0.3, np.nan], nan_ok=True)
    assert flat["factor_2_name"].tolist() == ["count_30d", np.nan, np.nan]
    assert flat["factor_2_importance"].tolist() == ["low", np.nan, np.nan]
    assert flat["factor_1_effect"].tolist() == ["raises the chance a little", "lowers the chance a little", np.nan]
    assert flat["factor_2_contribution"].tolist() == pytest.approx([-0.2, np.nan, np.nan], nan_ok=True)
    assert flat.dtypes.astype(str)[["factor_1_name", "factor_1_contribution", "factor_2_importance"]].tolist() == [
        "str",
        "float64",
        "str",
    ]
    pd.testing.assert_frame_equal(
        flat[["profile_id", "probability", "extra"]], scores[["profile_id", "probability", "extra"]]
    )


def test_flat_factors_with_k_zero_or_no_rows() -> None:
    assert flat_factors(run_scores(), 0).columns.tolist() == [
        "profile_id",
        "probability",
        "score",
        "percentile",
        "bucket",
    ]
    empty = flat_factors(run_scores().iloc[:0], 1)
    assert empty.empty
    assert empty.dtypes.astype(str).to_dict()["factor_1_contribution"] == "float64"
    assert empty.dtypes.astype(str).to_dict()["factor_1_name"] == "str"
    with pytest.raises(ValueError, match="k must be 0 or more, not -1"):
        flat_factors(run_scores(), -1)
