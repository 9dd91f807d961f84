"""A model's grade in a word (customer_ai.quality): the documented thresholds and the sentence that goes with it."""

from __future__ import annotations

import pytest

from customer_ai.quality import quality_grade


@pytest.mark.parametrize(
    ("lift", "error", "grade"),
    [
        (3.0, 0.02, "excellent"),
        (3.5, 0.021, "good"),  # calibration error above excellent's 0.02
        (2.0, 0.05, "good"),
        (2.9, 0.051, "fair"),
        (1.5, 0.2, "fair"),
        (1.49, 0.0, "poor"),
        (3.2, None, "fair"),  # no calibration error: only the lift counts
    ],
)
def test_quality_grade_follows_the_documented_thresholds(lift, error, grade):
    assert quality_grade({"top_decile_lift": lift, "calibration_error": error})[0] == grade


def test_quality_grade_says_what_it_means_in_one_sentence():
    assert quality_grade({"top_decile_lift": 2.63, "calibration_error": 0.018}) == (
        "good",
        "finds 2.6 times as many profiles whose goal came true in its top tenth as a random pick; its probabilities "
        "were on average within 2 points of what happened",
    )
    assert quality_grade({"top_decile_lift": 0.8, "calibration_error": 0.01})[1] == (
        "its top tenth holds no more profiles whose goal came true than a random pick (0.8 times); its probabilities "
        "were on average within 1 point of what happened"
    )
    assert quality_grade({}) == ("unknown", "its ranking was not measured on held-out profiles")
    assert quality_grade({"top_decile_lift": float("nan")})[0] == "unknown"
