"""Exact order statistics of numbers read in parts (customer_ai.quantiles)."""

from __future__ import annotations

import numpy as np
import pytest

from customer_ai.quantiles import linear_quantiles, order_statistics


class Reader:
    """Gives the same parts on every call and counts the passes."""

    def __init__(self, parts: list[np.ndarray]) -> None:
        self.parts = parts
        self.passes = 0

    def __call__(self) -> list[np.ndarray]:
        self.passes += 1
        return self.parts


def test_order_statistics_of_a_few_parts():
    reader = Reader([np.array([0.5, 0.1, 0.9]), np.array([], dtype=float), np.array([0.3, 0.1])])
    assert order_statistics(reader, [0, 1, 2, 3, 4, 2]).tolist() == [0.1, 0.1, 0.3, 0.5, 0.9, 0.3]


def test_order_statistics_of_negative_numbers_zeros_and_infinities():
    values = [np.array([-1.5, np.inf, 0.0]), np.array([-np.inf, 2.0, -0.0, 1e-300, -1e-300])]
    ordered = order_statistics(Reader(values), range(8))
    assert ordered.tolist() == [-np.inf, -1.5, -1e-300, 0.0, 0.0, 1e-300, 2.0, np.inf]


def test_order_statistics_without_ranks_reads_nothing():
    reader = Reader([np.array([1.0])])
    assert order_statistics(reader, []).tolist() == []
    assert reader.passes == 0


def test_order_statistics_refuse_a_rank_outside_the_values_and_nan():
    with pytest.raises(ValueError, match=r"rank 3 is outside 0 \.\. 2: the parts hold 3 values"):
        order_statistics(Reader([np.array([1.0, 2.0, 3.0])]), [0, 3])
    with pytest.raises(ValueError, match="NaN"):
        order_statistics(Reader([np.array([1.0, np.nan])]), [0])


def test_order_statistics_notice_parts_that_change_between_passes():
    calls = iter([[np.array([1.0, 2.0])], [np.array([1.0, 2.0, 2.0])]])
    with pytest.raises(ValueError, match="the parts changed from one pass to the next"):
        order_statistics(lambda: next(calls), [1])


@pytest.mark.parametrize("keep", [1, 7, 1000, 1 << 20])
def test_order_statistics_equal_a_sort_of_everything(keep):
    rng = np.random.default_rng(keep)
    for draw in range(20):
        count = int(rng.integers(1, 5000))
        kinds = [rng.random(count), rng.integers(0, 4, count) / 3, rng.normal(0, 1e6, count), np.full(count, 0.25)]
        values = kinds[draw % 4]
        parts = np.array_split(values, int(rng.integers(1, 9)))
        ranks = rng.integers(0, count, 40)
        assert np.array_equal(order_statistics(Reader(parts), ranks, keep=keep), np.sort(values)[ranks])


def test_order_statistics_hold_at_most_keep_candidates_and_take_few_passes():
    rng = np.random.default_rng(0)
    values = 1 / (1 + np.exp(-rng.normal(-2, 1.5, 200_000)))
    reader = Reader(np.array_split(values, 10))
    ranks = np.arange(1, 100) * 2000
    assert np.array_equal(order_statistics(reader, ranks, keep=5000), np.sort(values)[ranks])
    # 16 bits of 64 per pass: the first pass counts, at most four more narrow and keep
    assert 2 <= reader.passes <= 5


def test_linear_quantiles_equal_numpys_percentiles_exactly():
    rng = np.random.default_rng(1)
    for count in (1, 2, 3, 10, 999, 5000):
        values = rng.random(count) * 100
        parts = Reader(np.array_split(values, 3))
        quantiles = [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0]
        expected = np.percentile(values, [0, 10, 25, 50, 75, 90, 100])
        assert linear_quantiles(parts, count, quantiles).tolist() == expected.tolist()
    assert linear_quantiles(Reader([np.array([0.0, 10.0])]), 2, [0.25, 0.5]).tolist() == [2.5, 5.0]
