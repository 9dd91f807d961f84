"""Tests for customer_ai.segments: membership by score columns and factors, sizes, flat factor columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from customer_ai.segments import (
    data_dependent_factors,
    export_frame,
    factor_problems,
    flat_factors,
    neutralise_formulas,
    rule_mask,
    segment_members,
    segment_sizes,
)
from customer_ai.spec import InstanceSpec, SpecError

from conftest import BASE_SPEC, make_events, make_spec


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
                [factor("purchase_days_since_last", 0.4), factor("purchase_count_30d", -0.2)],
                [factor("purchase_count_30d", 0.7, "high"), factor("purchase_days_since_last", 0.1)],
                [factor("purchase_days_since_last", -0.3)],
                [factor("purchase_count_30d", 0.0)],
                [factor("tenure_days", 0.2)],
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
            {"name": "recent", "where": [{"factor": "purchase_days_since_last", "op": "gt", "value": 0}]},
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
    spec = make_spec(segments=[{"name": "top", "where": [{"factor": "purchase_days_since_last", "op": "exists"}]}])
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
        ([{"factor": "purchase_days_since_last", "op": "gt", "value": 0}], ["b", "a"]),
        ([{"factor": "purchase_days_since_last", "op": "lt", "value": 0}], ["c"]),
        # ne holds only where the feature is among the top factors: c, d, e and f do not count
        ([{"factor": "purchase_count_30d", "op": "ne", "value": 0.7}], ["d", "a"]),
        ([{"factor": "purchase_count_30d", "op": "gte", "value": 0}], ["b", "d"]),
        ([{"factor": "purchase_count_30d", "op": "in", "value": [0, -0.2]}], ["d", "a"]),
        ([{"factor": "purchase_count_30d", "op": "not_in", "value": [0]}], ["b", "a"]),
        ([{"factor": "tenure_days", "op": "exists"}], ["e"]),
        ([{"factor": "tenure_days", "op": "exists", "value": True}], ["e"]),
        ([{"factor": "purchase_days_since_last", "op": "exists", "value": False}], ["d", "e", "f"]),
        ([{"factor": "cancellation_count_7d", "op": "lt", "value": 100}], []),
        (
            [
                {"factor": "purchase_days_since_last", "op": "gt", "value": 0},
                {"factor": "purchase_count_30d", "op": "lt", "value": 0},
            ],
            ["a"],
        ),
        (
            [{"field": "bucket", "op": "eq", "value": "high"}, {"factor": "purchase_days_since_last", "op": "exists"}],
            ["b"],
        ),
    ],
)
def test_conditions_on_factors(where: list[dict], expected: list[str]) -> None:
    assert members_of(where) == expected


def test_a_factor_without_a_contribution_never_compares() -> None:
    scores = run_scores()
    # what a store returns for a NaN it could not hold
    scores.at[0, "factors"] = [factor("purchase_days_since_last", None)]
    assert members_of([{"factor": "purchase_days_since_last", "op": "ne", "value": 1}], scores) == ["b", "c"]
    assert members_of([{"factor": "purchase_days_since_last", "op": "exists"}], scores) == ["b", "a", "c"]


def test_yaml_numbers_match_text_ids() -> None:
    scores = run_scores().assign(profile_id=["12346", "b", "c", "d", "e", "f"])
    assert members_of([{"field": "profile_id", "op": "eq", "value": 12346}], scores) == ["12346"]
    assert members_of([{"field": "profile_id", "op": "in", "value": [10**17, 12346]}], scores) == ["12346"]


def test_rule_mask_is_one_flag_per_row_in_the_scores_order() -> None:
    spec = make_spec(
        segments=[{"name": "x", "where": [{"factor": "purchase_days_since_last", "op": "gt", "value": 0.2}]}]
    )
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
    assert members_of([{"factor": "purchase_days_since_last", "op": op, "value": huge}]) == []


@pytest.mark.parametrize(
    ("condition", "reason"),
    [
        ({"factor": "purchase_days_since_last", "op": "gt", "value": 10**400}, "is too large"),
        ({"factor": "purchase_days_since_last", "op": "gt", "value": float("inf")}, "not inf"),
        ({"factor": "purchase_days_since_last", "op": "gt", "value": float("nan")}, "not nan"),
        ({"field": "percentile", "op": "gte", "value": 1e300}, "percentile takes a number from 1 to 100, not 1e+300"),
        ({"field": "bucket", "op": "eq", "value": "'; DROP TABLE x; --"}, "bucket is one of low, medium, high"),
        ({"factor": "x; DROP TABLE y", "op": "exists"}, "is not a feature name"),
        ({"factor": "__import__('os')", "op": "exists"}, "is not a feature name"),
        ({"factor": "purchase_days_since_last\n", "op": "exists"}, "is not a feature name"),
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
    assert flat["factor_1_name"].tolist() == ["purchase_days_since_last", "purchase_days_since_last", np.nan]
    assert flat["factor_1_text"].tolist() == [
        "purchase_days_since_last said in words",
        "purchase_days_since_last said in words",
        np.nan,
    ]
    assert flat["factor_1_contribution"].tolist() == pytest.approx([0.4, -0.3, np.nan], nan_ok=True)
    assert flat["factor_2_name"].tolist() == ["purchase_count_30d", np.nan, np.nan]
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


# --- factors whose features depend on the events (customer-ai check) ----------------------------------------------

FACTOR_ROWS = [
    ("a", "2011-01-01", "purchase", 10.0, {"channel": "web", "invoice": "i0"}),
    ("a", "2011-02-01", "purchase", 20.0, {"channel": "app", "invoice": "i1"}),
    ("b", "2011-01-05", "Page View", None, {"channel": "web", "invoice": "i2"}),
    ("b", "2011-01-06", "Page View", None, {"channel": "web", "invoice": "i3"}),
    ("b", "2011-01-07", "Page View", None, {"channel": "web", "invoice": "i4"}),
    ("c", "2011-01-07", "rare", None, {"channel": "web", "invoice": "i5"}),
] + [("d", f"2011-03-{i % 28 + 1:02d}", "purchase", 1.0, {"channel": "app", "invoice": f"x{i}"}) for i in range(50)]


def factor_spec(*factors: str) -> InstanceSpec:
    """Return an instance with one segment per factor, a custom event big_buy, and features for 2 event types."""
    return make_spec(
        custom_events=[{"name": "big_buy", "where": [{"field": "value", "op": "gte", "value": 500}]}],
        training={**BASE_SPEC["training"], "max_event_types": 2},
        segments=[{"name": f"s{i}", "where": [{"factor": f, "op": "exists"}]} for i, f in enumerate(factors)],
    )


def test_factors_the_events_can_give_pass() -> None:
    spec = factor_spec("purchase_days_since_last", "purchase_value_sum", "channel_most_frequent", "goal_repeat_days")
    assert factor_problems(spec, make_events(FACTOR_ROWS)) == ([], [])


@pytest.mark.parametrize(
    ("factor", "error"),
    [
        (
            "purchse_days_since_last",
            "a feature of event type 'purchse', but no event type of the events is called so (in lower case, with _ "
            "for other characters, theirs are: purchase, page_view, rare); nearest known names: "
            "purchase_days_since_last, purchase_days_since_first, rare_days_since_last",
        ),
        ("page_view_value_sum", "but no event of 'page_view' carries a value: its value sum and mean are never built"),
        ("big_buy_value_mean", "but no event of 'big_buy' carries a value: its value sum and mean are never built"),
        (
            "chanel_most_frequent",
            "a feature of an extra text column 'chanel' of the events, which they do not have (their extra text "
            "columns: channel, invoice); nearest known names: channel_most_frequent, invoice_most_frequent",
        ),
        (
            "invoice_most_frequent",
            "but column 'invoice' has 56 distinct values: only a column with 2 to 50 becomes a feature",
        ),
    ],
)
def test_a_factor_no_run_over_the_events_can_build_is_an_error(factor: str, error: str) -> None:
    # before: the segment stayed silently empty at every run
    spec = factor_spec("tenure_days", factor)
    assert factor_problems(spec, make_events(FACTOR_ROWS)) == (
        [f"segments[1].where[0]: segment 's1' tests factor {factor!r}, {error}"],
        [],
    )


def test_the_repeat_buying_features_need_somebody_who_repeated_a_goal_event() -> None:
    once = make_events([row for row in FACTOR_ROWS if row[0] in ("b", "c")] + [FACTOR_ROWS[0]])
    assert factor_problems(factor_spec("goal_chance_30d"), once)[0] == [
        "segments[0].where[0]: segment 's0' tests factor 'goal_chance_30d', but no profile of the events has goal "
        "events on two different days: the repeat-buying features are never built"
    ]


def test_factors_a_run_builds_only_in_some_cases_are_warnings() -> None:
    spec = factor_spec("rare_count_30d", "purchase_count_200d")
    assert factor_problems(spec, make_events(FACTOR_ROWS)) == (
        [],
        [
            "segments[0].where[0]: segment 's0' tests factor 'rare_count_30d': event type 'rare' is number 3 by "
            "frequency in the events, and a run builds the features of the 2 most frequent "
            "(training.max_event_types): the segment stays empty unless it is among them before the run's oldest "
            "training snapshot",
            "segments[1].where[0]: segment 's1' tests factor 'purchase_count_200d': a run has this feature only when "
            "a short history shortens the feature lookback (eligibility.lookback_days: 365) to its number of days",
        ],
    )


def test_the_factors_that_depend_on_the_events_are_named() -> None:
    spec = factor_spec(
        "tenure_days", "purchase_days_since_last", "big_buy_count_30d", "big_buy_value_sum", "goal_chance_30d"
    )
    assert data_dependent_factors(spec) == ["purchase_days_since_last", "big_buy_value_sum", "goal_chance_30d"]
    assert data_dependent_factors(make_spec()) == []


# --- cells a spreadsheet would run as formulas (issue 18) ---------------------------------------------------------


def test_neutralise_formulas_prefixes_text_cells_only() -> None:
    frame = pd.DataFrame(
        {
            "profile_id": pd.Series(
                ["=cmd|' /C calc'!A0", "+1+1", "@SUM(A1)", "-2+3", "\t1", "\r1", "a=b", None], dtype="str"
            ),
            "mixed": pd.Series(["=1", 5, None, "-x", "ok", b"=bytes", 1.5, "@"], dtype=object),
            "contribution": [-0.5, 0.25, float("nan"), -1e-9, 0.0, 1.0, -2.0, 3.0],
            "score": [-1, 2, 3, 4, 5, 6, 7, 8],
        }
    )
    out, changed = neutralise_formulas(frame)
    assert changed == 6 + 3
    assert out["profile_id"].tolist() == [
        "'=cmd|' /C calc'!A0",
        "'+1+1",
        "'@SUM(A1)",
        "'-2+3",
        "'\t1",
        "'\r1",
        "a=b",
        np.nan,
    ]
    assert out["mixed"].tolist() == ["'=1", 5, None, "'-x", "ok", b"=bytes", 1.5, "'@"]
    pd.testing.assert_frame_equal(out[["contribution", "score"]], frame[["contribution", "score"]])
    assert out.dtypes.to_dict() == frame.dtypes.to_dict()
    assert frame["profile_id"].iloc[0] == "=cmd|' /C calc'!A0"  # the frame given is left as it was


def test_an_export_leaves_out_what_the_run_did_not_predict() -> None:
    from customer_ai.segments import without_unpredicted  # noqa: PLC0415

    rows = pd.DataFrame(
        {
            "profile_id": ["a", "b"],
            "expected_value": [12.5, np.nan],
            "days_to_next": [np.nan, np.nan],
            "next_by": [None, None],
        }
    )
    assert without_unpredicted(rows).columns.tolist() == ["profile_id", "expected_value"]
    assert without_unpredicted(rows[["profile_id"]]).columns.tolist() == ["profile_id"]


def test_the_export_frame_is_what_segment_export_writes_for_a_spreadsheet_or_a_program() -> None:
    members = pd.DataFrame(
        {
            "profile_id": ["=evil", "b"],
            "probability": [0.8, 0.4],
            "factors": [[factor("recency", 0.5), factor("frequency", -0.2)], [factor("recency", -0.1)]],
            "days_to_next": [np.nan, np.nan],
        }
    )
    flat, neutralised = export_frame(members, 1, spreadsheet=True)
    # at least 1 factor, 2 because a profile has 2; the column the run did not fill left out
    assert flat.columns.tolist() == [
        "profile_id",
        "probability",
        *(f"factor_{i}_{s}" for i in (1, 2) for s in ("name", "text", "contribution", "importance", "effect")),
    ]
    assert (flat["profile_id"].tolist(), neutralised) == (["'=evil", "b"], 1)
    raw, untouched = export_frame(members, 3, spreadsheet=False)
    assert (raw["profile_id"].tolist(), untouched) == (["=evil", "b"], 0)
    assert "factor_3_name" in raw.columns
