"""The model card section of the report: the goal, how and when the model was trained, its windows and features.

It reads the run's ``model.json`` and ``source.json`` (and ``metadata.json`` when present) and draws the
timeline of the snapshots the model learned from.
"""

from __future__ import annotations

import pandas as pd

from customer_ai.quality import quality_grade
from customer_ai.report.figures import _svg, _timeline_figure
from customer_ai.report.folder import _RunFiles
from customer_ai.report.html import (
    _esc,
    _folded,
    _int,
    _num,
    _p,
    _pairs,
    _pct,
    _section,
    _short,
    _table,
    _template_words,
)
from customer_ai.spec import InstanceSpec


def _expected_words(run: _RunFiles) -> str:  # the row's name says what is expected
    """Say how many scored profiles are expected to reach the goal, and the range past windows give."""
    expected = run.expected
    if expected is None:  # nothing to add up
        return "–"
    text = (
        f"{expected['expected']:,.0f} of the {expected['profiles']:,} profiles scored (the sum of their probabilities)"
    )
    if expected["low"] is None:
        return text + "; one window of history: how much the base rate moves is not known"
    return (
        text + f"; {expected['low']:,.0f} to {expected['high']:,.0f} if the base rate moves once more as much as it "
        f"did between the model's past windows (by up to {expected['largest_move']:.2f} in log-odds): the "
        "probabilities are calibrated on the latest fully observed window, and the next one's rate will differ"
    )


def _grade_words(metrics: dict) -> str:
    """Say the model's grade in a word and what it means (thresholds in the README, "How good is the model?")."""
    grade, meaning = quality_grade(metrics)
    return f"{grade}: {meaning}"


def _model_card(spec: InstanceSpec, as_of: pd.Timestamp, run: _RunFiles) -> str:
    model = run.model
    words = spec.outcome_words()
    reused = bool(model.get("reused"))
    trained = model.get("as_of", "?")
    quality = model.get("quality", {})
    metrics = model.get("validation", {}).get("metrics", {})
    windows = model.get("windows", {})
    snapshots = windows.get("snapshots", [])
    counts = model.get("label_counts", {})
    source = run.source or {}
    window = source.get("window") or ["?", "?"]
    history = model.get("history", {})
    parameters = model.get("parameters", {})
    calibration = model.get("calibration", {})
    start = model.get("boosting_start") or {}
    versions = model.get("versions", {})
    auc = metrics.get("model_roc_auc", metrics.get("roc_auc"))
    verdict = f"{quality.get('status', '?')}: {quality.get('reason', '')}"
    rows = [
        ("instance", f"{spec.name} ({model.get('propensity', spec.propensity)})"),
        ("scored as of", f"{as_of:%Y-%m-%d}"),
        ("model version", model.get("model_version", "?")),
        (
            "trained",
            f"reused: trained in the run as of {trained}, not retrained in this run"
            if reused
            else f"in this run, as of {trained}",
        ),
        ("quality", _grade_words(metrics)),
        ("quality gate", verdict),
        ("held-out ROC AUC", _num(auc)),
        (f"expected to {words.to_reach}", _expected_words(run)),
        (
            "data read",
            f"events from {window[0]} to before {window[1]}; the source starts {_day(source.get('data_start'))}",
        ),
        ("feature window", windows.get("features", "?")),
        ("eligible profiles", windows.get("eligibility", "?")),
        ("goal window", windows.get("label", "?")),
        *(
            [("design", model.get("validation", {}).get("design", "trained and judged on one period"))]
            if history.get("single_period")
            else []
        ),
        ("validation snapshot", snapshots[0] if snapshots else "?"),
        ("training snapshots", ", ".join(snapshots[1:]) or "none: one period, split by profile"),
        (
            "training labels",
            f"{_int(counts.get('positives'))} {words.reached}, {_int(counts.get('negatives'))} {words.missed}",
        ),
        *_sample_rows(model.get("training_sample"), words.reached),
        ("features", f"{len(model.get('features', {}).get('names', []))} (listed below)"),
        (
            "calibration",
            f"{calibration.get('method', '?')}: slope {_num(calibration.get('slope'))}, "
            f"intercept {_num(calibration.get('intercept'))}",
        ),
        ("boosting start", f"{start.get('chosen', '?')}; rounds: {model.get('best_iteration', '?')}"),
        ("parameters", ", ".join(f"{k}={v}" for k, v in sorted(parameters.items()))),
        ("versions", ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))),
    ]
    if run.metadata is not None and run.metadata.get("versions") and run.metadata["versions"] != versions:
        rows.append(
            ("versions of this run", ", ".join(f"{k} {v}" for k, v in sorted(run.metadata["versions"].items())))
        )
    notes = history.get("notes") or []
    label_rows = []
    for entry in counts.get("snapshots", []):
        rows_n = entry.get("rows", 0)
        label_rows.append(
            (
                entry.get("as_of"),
                entry.get("role"),
                _int(rows_n),
                _int(entry.get("positives")),
                _int(entry.get("negatives")),
                _pct(entry["positives"] / rows_n if rows_n else None),
                _int(entry.get("evaluation", {}).get("rows")) if entry.get("role") == "validation" else "",
            )
        )
    descriptions = model.get("features", {}).get("descriptions", {})
    categorical = set(model.get("features", {}).get("categorical", []))
    feature_rows = [
        (
            _short(name),
            _short(_template_words(descriptions.get(name, ""))),
            "category" if name in categorical else "number",
        )
        for name in model.get("features", {}).get("names", [])
    ]
    parts = [
        f'<p class="goal">Goal: <strong>{_esc(model.get("goal") or spec.goal_in_words())}</strong></p>',
        _p(spec.description) if spec.description else "",
        _p(
            "The model learns from past snapshots: at each date it looks at what every eligible profile did before, "
            "and at whether the goal happened in the goal window after it. It is judged on half of the latest "
            "snapshot's profiles that nothing in training saw."
        ),
    ]
    if counts.get("snapshots"):
        timeline = _timeline_figure(as_of, run.model, words.reached)
        parts.append(_svg(timeline, "model-card-timeline", "Snapshots and their windows"))
    main = [row for row in rows if row[0] not in _FOR_ANALYSTS]
    parts.append(_pairs(main))
    if notes:
        parts.append("<ul class=notes>" + "".join(f"<li>{_esc(n)}</li>" for n in notes) + "</ul>")
    parts.append(
        _table(
            ["snapshot", "role", "profiles", words.reached, words.missed, "rate", "held out for evaluation"],
            label_rows,
            caption="Label counts per snapshot",
        )
    )
    analysts = [_pairs([row for row in rows if row[0] in _FOR_ANALYSTS])]
    analysts.append(_table(["feature", "meaning", "kind"], feature_rows, caption="Features"))
    parts.append(_folded("For analysts: calibration, boosting, parameters, versions and the features", analysts))
    return _section("model-card", parts)


# the card's rows that speak to whoever tunes the model, not to whoever uses the scores: folded away
_FOR_ANALYSTS = frozenset({"calibration", "boosting start", "parameters", "versions", "versions of this run"})


def _sample_rows(sample: dict | None, reached: str) -> list[tuple[str, str]]:
    """Return the card's row about the training sample: none when training used every eligible profile."""
    if not sample or not sample.get("sampled"):
        return []
    positive = sample.get("strata", {}).get("positive", {})
    return [
        (
            "training profiles",
            f"trained on a stratified sample of {_int(sample.get('profiles'))} of "
            f"{_int(sample.get('eligible_profiles'))} profiles (cap {_int(sample.get('max_profiles'))}), every "
            f"snapshot of each; {_int(positive.get('sampled'))} of the {_int(positive.get('eligible'))} that "
            f"{reached} at a training snapshot",
        )
    ]


def _day(text: object) -> str:
    return "?" if not text else str(text)[:10]
