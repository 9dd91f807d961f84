"""Score, percentile and bucket from calibrated probabilities."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from customer_ai.scoring import (
    BucketRule,
    bucket_of,
    choose_bucket_rule,
    percentile_among,
    percentile_of,
    percentile_ranks,
    profiles_per_score,
    score_frame,
    score_of,
    top_score_notes,
)
from customer_ai.spec import OutputSettings


@pytest.mark.parametrize(
    ("probability", "expected"),
    [(0.125, 13), (0.124, 12), (0.0, 0), (1.0, 100), (0.3, 30), (0.999, 100), (0.004, 0), (0.5049, 50)],
)
def test_score_of_rounds_halves_up(probability, expected):
    assert score_of(np.array([probability])).tolist() == [expected]


def test_score_of_is_int64_and_clipped():
    result = score_of(np.array([-0.2, 0.5, 1.3]))
    assert result.dtype == np.int64
    assert result.tolist() == [0, 50, 100]


def test_score_of_accepts_lists():
    assert score_of([0.01, 0.995001]).tolist() == [1, 100]


@pytest.mark.parametrize(
    ("probability", "expected"),
    [
        ([0.1, 0.2, 0.3, 0.4], [25, 50, 75, 100]),
        ([0.4, 0.1, 0.3, 0.2], [100, 25, 75, 50]),  # aligned with the input order
        ([0.7], [100]),
        ([0.5, 0.5, 0.1], [100, 100, 34]),  # ties share the higher percentile; 1/3 rounds up
        ([0.2, 0.2, 0.2, 0.2], [100, 100, 100, 100]),
        ([0.3, 0.1, 0.2], [100, 34, 67]),
        # k/10 * 100 is not exact in floating point (0.3 * 100 = 30.000000000000004) but must not round up
        (list(range(10)), [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]),
    ],
)
def test_percentile_of(probability, expected):
    result = percentile_of(np.array(probability, dtype=float))
    assert result.dtype == np.int64
    assert result.tolist() == expected


def test_percentile_of_spans_one_to_hundred():
    result = percentile_of(np.linspace(0, 1, 1000))
    assert result.min() == 1
    assert result.max() == 100
    assert np.all(np.diff(result) >= 0)
    # every percentile holds the same number of profiles
    assert np.bincount(result, minlength=101)[1:].tolist() == [10] * 100


def test_percentile_of_empty():
    result = percentile_of(np.array([]))
    assert result.dtype == np.int64
    assert result.shape == (0,)


@pytest.mark.parametrize(
    ("score", "expected"),
    [(0, "low"), (29, "low"), (30, "medium"), (69, "medium"), (70, "high"), (100, "high")],
)
def test_bucket_of_boundaries(score, expected):
    assert bucket_of(np.array([score]), medium=30, high=70).tolist() == [expected]


def test_bucket_of_float_thresholds_and_dtype():
    result = bucket_of(np.array([12, 13, 40, 41]), medium=12.5, high=40.5)
    assert result.dtype == object
    assert result.tolist() == ["low", "medium", "medium", "high"]


def test_score_frame_columns_dtypes_and_values():
    frame = score_frame(pd.Index([101, 7, 42]), np.array([0.125, 0.7, 0.05]), BucketRule("score", 10, 70))
    assert list(frame.columns) == ["profile_id", "probability", "score", "percentile", "bucket"]
    assert frame["probability"].dtype == np.float64
    assert frame["score"].dtype == np.int64
    assert frame["percentile"].dtype == np.int64
    # object under pandas 2, the default string dtype under pandas 3
    assert pd.api.types.is_string_dtype(frame["profile_id"])
    assert pd.api.types.is_string_dtype(frame["bucket"])
    assert frame["profile_id"].tolist() == ["101", "7", "42"]
    assert frame["probability"].tolist() == [0.125, 0.7, 0.05]
    assert frame["score"].tolist() == [13, 70, 5]
    assert frame["percentile"].tolist() == [67, 100, 34]
    assert frame["bucket"].tolist() == ["medium", "high", "low"]
    assert frame.index.tolist() == [0, 1, 2]


def test_score_frame_empty():
    frame = score_frame(pd.Index([]), np.array([]), BucketRule("score", 10, 70))
    assert list(frame.columns) == ["profile_id", "probability", "score", "percentile", "bucket"]
    assert len(frame) == 0


def test_buckets_by_percentile_put_the_thresholds_on_the_percentile():
    # a rare goal: every probability under 10%, so no score reaches "medium" or "high"
    probability = np.linspace(0.01, 0.08, 8)
    by_score = score_frame(pd.Index(list("abcdefgh")), probability, BucketRule("score", 25, 75))
    assert set(by_score["bucket"]) == {"low"}
    by_percentile = score_frame(pd.Index(list("abcdefgh")), probability, BucketRule("percentile", 25, 75))
    assert by_percentile["percentile"].tolist() == [13, 25, 38, 50, 63, 75, 88, 100]
    assert by_percentile["bucket"].tolist() == ["low", "medium", "medium", "medium", "medium", "high", "high", "high"]
    assert by_percentile["score"].tolist() == by_score["score"].tolist()


def test_a_rule_applies_to_the_score_or_the_percentile_only():
    with pytest.raises(ValueError, match="applies to the score or the percentile, not 'rank'"):
        score_frame(pd.Index(["a"]), np.array([0.5]), BucketRule("rank", 25, 75))


def test_percentile_ranks_are_where_a_run_of_seven_changes_percentile():
    # 1 of 7 at or below is 14.3% (percentile 15), 2 is 28.6% (29), 3 is 42.9% (43), 4 is 57.1% (58), ...
    ranks = percentile_ranks(7)
    assert len(ranks) == 99
    assert ranks.tolist() == [0] * 14 + [1] * 14 + [2] * 14 + [3] * 15 + [4] * 14 + [5] * 14 + [6] * 14
    assert percentile_ranks(100).tolist() == list(range(1, 100))  # above k percent: k + 1 of 100 at or below
    assert percentile_ranks(0).tolist() == []


def test_percentile_among_a_runs_cuts_places_a_part_as_the_whole_run_would():
    everyone = np.array([0.1, 0.4, 0.4, 0.2, 0.9, 0.05, 0.7])
    whole = percentile_of(everyone)
    assert whole.tolist() == [29, 72, 72, 43, 100, 15, 86]
    cuts = np.sort(everyone)[percentile_ranks(len(everyone))]
    assert percentile_among(everyone[[1, 4]], cuts).tolist() == [72, 100]
    assert percentile_among(everyone[[0, 2, 3, 5, 6]], cuts).tolist() == [29, 72, 43, 15, 86]
    assert percentile_among(np.array([0.0, 0.06, 1.0]), cuts).tolist() == [1, 15, 100]  # not of the run: placed
    assert percentile_among(np.array([]), cuts).tolist() == []
    part = score_frame(pd.Index(["b", "e"]), everyone[[1, 4]], BucketRule("percentile", 50, 80), cuts=cuts)
    assert part["percentile"].tolist() == [72, 100]
    assert part["bucket"].tolist() == ["medium", "high"]


def test_percentile_of_equals_the_share_at_or_below_rounded_up_at_every_size():
    rng = np.random.default_rng(0)
    for count in [*range(1, 300), 999, 1000, 1001, 12345]:
        probability = rng.integers(0, 7, count) / 7 if count % 2 else rng.random(count)
        share = np.searchsorted(np.sort(probability), probability, side="right") / count
        expected = np.ceil(np.round(share * 100, 9)).astype("int64").clip(1, 100)
        assert percentile_of(probability).tolist() == expected.tolist(), count


def test_top_score_notes_say_which_bucket_no_score_reaches():
    rule = BucketRule("score", 30, 60)
    assert top_score_notes(rule, 70) == []
    (note,) = top_score_notes(rule, 45)
    assert note == (
        "No profile is in the high bucket: the high bucket starts at a score of 60 and the highest score is 45. "
        "Scores are calibrated probabilities, so no profile is that likely to reach the goal now. To rank the "
        "profiles of each run into buckets instead, set `output.buckets_by: auto` (the default) or `percentile` in "
        "the instance file."
    )
    assert top_score_notes(rule, 20)[0].startswith(
        "No profile is in the medium or high bucket: the medium bucket starts at a score of 30 and the highest"
    )
    assert top_score_notes(BucketRule("percentile", 30, 60), 5) == []


def per_score(counts: dict[int, int]) -> np.ndarray:
    """Return 101 profile counts per score from ``{score: profiles}``."""
    out = np.zeros(101, dtype="int64")
    for score, n in counts.items():
        out[score] = n
    return out


def test_profiles_per_score_counts_the_rounded_scores():
    counted = profiles_per_score(np.array([0.0, 0.004, 0.005, 0.745, 0.75, 1.0]))
    assert counted.shape == (101,)
    assert {int(s): int(n) for s, n in enumerate(counted) if n} == {0: 2, 1: 1, 75: 2, 100: 1}


def test_auto_keeps_the_score_when_its_buckets_mean_something():
    output = OutputSettings()  # auto, 25 / 75
    assert output.buckets_by == "auto"
    # high holds 5 of 100 profiles (5%) in a 1-point band: enough by share
    rule = choose_bucket_rule(output, per_score({10: 60, 50: 35, 80: 5}))
    assert rule == BucketRule("score", 25.0, 75.0, "auto", "")
    # 1% in one score point is a sliver; 2% spanning 75-79, five score points, is enough by span
    assert choose_bucket_rule(output, per_score({10: 60, 50: 39, 79: 1})).by == "percentile"
    assert choose_bucket_rule(output, per_score({10: 60, 50: 38, 75: 1, 79: 1})).by == "score"
    assert choose_bucket_rule(output, np.zeros(101, dtype="int64")).by == "score"  # nobody: nothing to rank


def test_auto_ranks_the_run_when_a_bucket_by_score_is_empty_or_a_sliver():
    output = OutputSettings()
    rare = choose_bucket_rule(output, per_score({2: 900, 10: 90, 30: 10}))  # no score reaches 75
    assert rare == BucketRule("percentile", 51.0, 91.0, "auto", "by score the high bucket would hold no profile")
    assert rare.in_words() == (
        "by rank in the run: high is the likeliest tenth, medium the next two fifths, low the lower half (by score "
        "the high bucket would hold no profile)"
    )
    rarest = choose_bucket_rule(output, per_score({2: 900, 10: 100}))
    assert rarest.why == "by score the medium and high buckets would hold no profile"
    churn = choose_bucket_rule(output, per_score({20: 50, 40: 100, 60: 820, 75: 10, 76: 10, 77: 10}))  # 3%
    assert churn.why == "by score the high bucket would hold 3.0% of the profiles, with scores 75 to 77 only"
    everyone_likely = choose_bucket_rule(output, per_score({80: 50, 90: 50}))
    assert everyone_likely.why == "by score the low and medium buckets would hold no profile"


def test_a_rule_named_in_the_instance_file_is_kept_whatever_the_scores():
    chosen = OutputSettings(buckets={"medium": 30, "high": 60}, buckets_by="score")
    assert choose_bucket_rule(chosen, per_score({2: 100})) == BucketRule("score", 30.0, 60.0, "instance", "")
    ranked = OutputSettings(buckets={"medium": 50, "high": 90}, buckets_by="percentile")
    assert choose_bucket_rule(ranked, per_score({2: 100})) == BucketRule("percentile", 50.0, 90.0)
    assert BucketRule("score", 30.0, 60.0).in_words() == "by score: high from 60, medium from 30, low below"
    assert BucketRule("percentile", 50.0, 90.0).in_words() == (
        "by percentile in the run: high from 90, medium from 50, low below"
    )


def test_a_rule_survives_its_json_and_compares_by_column_and_thresholds():
    rule = BucketRule("percentile", 51.0, 91.0, "auto", "by score the high bucket would hold no profile")
    assert BucketRule.from_dict(rule.to_dict()) == rule
    assert rule.to_dict() == {
        "by": "percentile",
        "medium": 51.0,
        "high": 91.0,
        "chosen": "auto",
        "why": "by score the high bucket would hold no profile",
    }
    assert rule.key() == BucketRule("percentile", 51, 91).key() != BucketRule("score", 51, 91).key()


def test_percentile_buckets_of_the_auto_rule_hold_a_tenth_and_two_fifths():
    probability = np.arange(1, 101) / 1000  # 100 distinct probabilities, all under 11%
    frame = score_frame(pd.Index([f"p{i}" for i in range(100)]), probability, BucketRule("percentile", 51, 91))
    assert frame["bucket"].value_counts().to_dict() == {"low": 50, "medium": 40, "high": 10}
    assert frame.loc[frame["bucket"] == "high", "probability"].min() == 0.091
