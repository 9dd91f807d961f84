"""A model's quality in a word: its grade from the held-out top-tenth lift and calibration error, and what it means.

Pure Python (no NumPy), so that Airflow's view can say it without loading the modeling stack.
"""

from __future__ import annotations

import math

__all__ = ["QUALITY_GRADES", "quality_grade"]

# the plain-word grade of a model, from its held-out top-tenth lift and calibration error: (grade, lift at least,
# calibration error at most); below the last, "poor".  Documented in the README ("How good is the model?").
QUALITY_GRADES = (("excellent", 3.0, 0.02), ("good", 2.0, 0.05), ("fair", 1.5, None))


def quality_grade(metrics: dict[str, float | None]) -> tuple[str, str]:
    """Return a model's grade in a word and one sentence that says what it means, from its held-out metrics.

    The grade is the first of :data:`QUALITY_GRADES` whose top-tenth lift (``top_decile_lift``) and calibration
    error (``calibration_error``) it meets, ``poor`` below them all; ``unknown`` without a measured lift.

    Examples
    --------
    >>> quality_grade({"top_decile_lift": 2.6, "calibration_error": 0.018})[0]
    'good'
    """
    lift, error = metrics.get("top_decile_lift"), metrics.get("calibration_error")
    if not isinstance(lift, (int, float)) or not math.isfinite(lift):
        return "unknown", "its ranking was not measured on held-out profiles"
    grade = "poor"
    for name, least_lift, most_error in QUALITY_GRADES:
        if lift >= least_lift and (most_error is None or (isinstance(error, (int, float)) and error <= most_error)):
            grade = name
            break
    if lift > 1:
        ranking = f"finds {lift:.1f} times as many profiles whose goal came true in its top tenth as a random pick"
    else:
        ranking = f"its top tenth holds no more profiles whose goal came true than a random pick ({lift:.1f} times)"
    if not isinstance(error, (int, float)) or not math.isfinite(error):
        return grade, ranking
    points = f"{error * 100:.0f} point{'' if round(error * 100) == 1 else 's'}"
    return grade, f"{ranking}; its probabilities were on average within {points} of what happened"
