"""Audiences cut from a run's scores: tallies, cuts, expected profit, worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from customer_ai.audiences import PROBABILITY_BINS, audience_table, best_cut, cut_at, cut_curve
from customer_ai.scoring import percentile_of, score_of

PROBABILITY = [0.9, 0.6, 0.6, 0.3, 0.05]


def _scores(probability: list[float], expected_value: list[float] | None = None) -> pd.DataFrame:
    p = np.array(probability)
    frame = pd.DataFrame({"probability": p, "score": score_of(p), "percentile": percentile_of(p)})
    return frame if expected_value is None else frame.assign(expected_value=expected_value)


def test_the_tally_of_parts_is_the_tally_of_the_whole() -> None:
    whole = audience_table([_scores(PROBABILITY)])
    parts = audience_table([_scores(PROBABILITY)[:2], _scores(PROBABILITY)[2:]])
    for name in ("by_score", "by_percentile", "by_probability"):
        pd.testing.assert_frame_equal(getattr(parts, name), getattr(whole, name))
    assert whole.profiles == 5
    assert not whole.valued
    assert whole.by_score["score"].iloc[[0, -1]].tolist() == [100, 0]  # highest first
    assert whole.by_percentile["percentile"].iloc[[0, -1]].tolist() == [100, 1]
    assert len(whole.by_probability) == PROBABILITY_BINS


def test_a_score_cut_keeps_the_profiles_at_or_above_it() -> None:
    table = audience_table([_scores(PROBABILITY)])
    # score 60 keeps 0.9, 0.6, 0.6: 2.1 expected conversions of 3
    assert cut_at(table, "score", 60) == {
        "at": 60,
        "size": 3,
        "expected_conversions": pytest.approx(2.1),
        "expected_rate": pytest.approx(0.7),
    }
    assert cut_at(table, "score", 61)["size"] == 1
    assert cut_at(table, "score", 0)["expected_conversions"] == pytest.approx(2.45)
    assert math.isnan(cut_at(table, "score", 100)["expected_rate"])  # nobody at 100: an empty audience


def test_a_percentile_cut_uses_the_runs_percentiles() -> None:
    table = audience_table([_scores(PROBABILITY)])
    # percentiles of 5 profiles: 0.9 -> 100, 0.6 (twice, ties share the higher) -> 80, 0.3 -> 40, 0.05 -> 20
    assert _scores(PROBABILITY)["percentile"].tolist() == [100, 80, 80, 40, 20]
    assert cut_at(table, "percentile", 80)["size"] == 3
    assert cut_at(table, "percentile", 41)["size"] == 3
    assert cut_at(table, "percentile", 40)["expected_conversions"] == pytest.approx(2.4)


def test_a_top_n_counts_the_profiles_of_the_bin_it_cuts_through_at_its_mean() -> None:
    table = audience_table([_scores(PROBABILITY)])
    assert cut_at(table, "top", 1)["expected_conversions"] == pytest.approx(0.9)
    # the top 2 take one of the two profiles at 0.6 (one bin): 0.9 + 0.6
    two = cut_at(table, "top", 2)
    assert (two["size"], two["expected_conversions"], two["expected_rate"]) == (2, pytest.approx(1.5), 0.75)
    assert cut_at(table, "top", 5)["expected_conversions"] == pytest.approx(2.45)
    assert cut_at(table, "top", 0)["size"] == 0
    with pytest.raises(ValueError, match=r"^a cut by top is at 0 to 5, not 6$"):
        cut_at(table, "top", 6)
    with pytest.raises(ValueError, match=r"^a cut by percentile is at 1 to 100, not 0$"):
        cut_at(table, "percentile", 0)


def test_the_cut_of_highest_expected_profit_is_the_one_that_keeps_whoever_earns_more_than_the_contact_costs() -> None:
    table = audience_table([_scores(PROBABILITY)])
    # a conversion is worth 10, a contact costs 4: a profile earns 10 p - 4, above 0 from p = 0.4 on
    curve = cut_curve(table, "top", value_per_conversion=10.0, cost_per_contact=4.0)
    assert curve["size"].tolist() == [1, 3, 4, 5]
    assert curve["expected_profit"].tolist() == pytest.approx([5.0, 9.0, 8.0, 4.5])
    best = best_cut(curve)
    assert (best["size"], best["expected_profit"]) == (3, pytest.approx(9.0))
    by_score = best_cut(cut_curve(table, "score", value_per_conversion=10.0, cost_per_contact=4.0))
    assert (by_score["at"], by_score["size"]) == (60, 3)  # the highest score of the best audience
    # contacts dearer than any conversion can earn: no audience is worth it
    assert best_cut(cut_curve(table, "top", value_per_conversion=1.0, cost_per_contact=2.0)) is None
    assert best_cut(cut_curve(table, "top")) is None  # no value: no profit


def test_a_run_with_expected_values_gets_their_sum_and_its_profit_from_them() -> None:
    table = audience_table([_scores(PROBABILITY, [100.0, 30.0, 10.0, 2.0, np.nan])])
    assert table.valued
    curve = cut_curve(table, "score", cost_per_contact=20.0)
    at_60 = curve.loc[curve["at"] == 60].iloc[0]
    assert (at_60["expected_value"], at_60["expected_profit"]) == (140.0, 80.0)
    # the two at score 60 add 30 + 10 for 40 of contacts: nothing; a tie keeps the smaller audience, score 90
    best = best_cut(curve)
    assert (best["at"], best["size"], best["expected_profit"]) == (90, 1, 80.0)
    # a value per conversion given replaces them in the profit
    assert cut_curve(table, "score", value_per_conversion=10.0)["expected_profit"].iloc[-1] == pytest.approx(24.5)


@pytest.mark.parametrize(
    ("kind", "money", "message"),
    [
        ("bucket", {}, r"^a cut is by score, percentile or top, not 'bucket'$"),
        ("score", {"cost_per_contact": -1.0}, r"^cost_per_contact must be a number at or above 0, not -1.0$"),
        ("score", {"value_per_conversion": float("nan")}, r"^value_per_conversion must be a number at or above 0"),
    ],
)
def test_a_wrong_cut_or_amount_says_what_is_wrong(kind: str, money: dict, message: str) -> None:
    table = audience_table([_scores(PROBABILITY)])
    with pytest.raises(ValueError, match=message):
        cut_curve(table, kind, **money)


def test_a_scores_file_is_tallied_a_row_group_at_a_time_with_its_expected_values(tmp_path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from customer_ai.audiences import scores_file_table

    frame = _scores(PROBABILITY, expected_value=[10.0, 4.0, float("nan"), 1.0, 0.5]).assign(profile_id=list("abcde"))
    path = tmp_path / "scores.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=2)
    assert pq.read_metadata(path).num_row_groups == 3
    table = scores_file_table(path)
    whole = audience_table([frame])
    assert table.valued
    for name in ("by_score", "by_percentile", "by_probability"):
        pd.testing.assert_frame_equal(getattr(table, name), getattr(whole, name))
    assert cut_at(table, "score", 60)["expected_value"] == pytest.approx(14.0)  # a missing value counts as 0
    pq.write_table(pa.Table.from_pandas(frame.drop(columns="expected_value"), preserve_index=False), path)
    assert not scores_file_table(path).valued
