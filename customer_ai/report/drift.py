"""The drift section of the report: how far the scored profiles lie from the model's training rows.

It reads the run's ``drift.json`` (see :mod:`customer_ai.drift`); a run scored before drift was measured, or with
a model stored before it, says so instead.
"""

from __future__ import annotations

from collections.abc import Callable

from customer_ai.report.figures import _drift_figure, _svg
from customer_ai.report.folder import _RunFiles
from customer_ai.report.html import _num, _p, _pct, _section, _table

SHOWN_FEATURES = 12  # features drawn and listed, those that moved most first
_STATUS_WORDS = {
    "ok": "no feature reached the warning",
    "warn": "at least one feature reached the warning: read the scores of the features below with care",
    "stop": "a feature reached the stop: this run was not published",
}


def _drift_section(run: _RunFiles, label: Callable[[str], str]) -> str:
    drift = run.drift
    if drift is None or drift.get("status") == "unknown":
        why = "the run was scored before drift was measured" if drift is None else drift.get("reason", "")
        return _section("drift", [_p(f"Drift was not measured for this run: {why}.", "missing")])
    features = drift["features"][:SHOWN_FEATURES]
    stop = drift.get("stop")
    thresholds = f"warning at {drift['warn']:g}" + ("" if stop is None else f", stop at {stop:g}")
    parts = [
        _p(
            "Each feature of the profiles scored in this run is compared with the same feature in the rows the model "
            "was trained on, by the population stability index (the rows in ten bins at the training rows' deciles, "
            "probabilities in twentieths; below 0.1 no real change, 0.1 to 0.25 a moderate shift, above 0.25 a "
            "major one). Where the scored values lie outside anything in training, the model extrapolates. "
            f"Drift: {drift['status']} ({thresholds}; monitoring in the instance file): "
            f"{_STATUS_WORDS[drift['status']]}. The largest index is {_num(drift['largest_psi'])}."
        ),
        _svg(
            _drift_figure(features, drift["warn"], stop, label),
            "drift-features",
            f"Stability index of the {len(features)} features that moved most",
        ),
        _table(
            ["feature", "stability index", "outside the training range", "missing now", "missing in training"],
            [
                (
                    f"{label(f['feature'])} ({f['feature']})",
                    _num(f["psi"]),
                    _pct(f["outside_share"]),
                    _pct(f["missing_current"]),
                    _pct(f["missing_reference"]),
                )
                for f in features
            ],
            caption="Features that moved most",
        ),
    ]
    if drift.get("moved_most"):
        parts.append(_p("What moved most: " + "; ".join(drift["moved_most"]) + "."))
    scores = drift.get("scores") or {}
    if "psi" in scores:
        parts.append(
            _p(
                f"The scores against those of the run as of {scores['previous_as_of']}: stability index "
                f"{_num(scores['psi'])}; mean probability {_num(scores['mean_now'])}, then "
                f"{_num(scores['mean_previous'])}."
            )
        )
    return _section("drift", parts)
