"""The data validation section of the report: the expectations checked on the run's events, training set and scores.

It reads the run's ``validation/*.json``; a stage without a result was not validated in this run (the
training set is not built when the model is reused).
"""

from __future__ import annotations

from customer_ai.report.figures import _svg, _validation_figure
from customer_ai.report.folder import _RunFiles
from customer_ai.report.html import _STAGE_WORDS, _int, _p, _section, _short, _table


def _validation_section(run: _RunFiles) -> str:
    stages = run.validation
    reused = bool(run.model.get("reused"))
    figure = _validation_figure(stages)
    rows, failures = [], []
    for stage in ("events", "training_set", "scores"):
        result = stages.get(stage)
        if result is None:
            note = (
                "not built: the model was reused" if stage == "training_set" and reused else "not validated in this run"
            )
            rows.append((_STAGE_WORDS[stage], "–", "–", "–", "–", note))
            continue
        evaluated, failed = int(result.get("evaluated", 0)), int(result.get("failed", 0))
        rows.append(
            (
                _STAGE_WORDS[stage],
                _int(result.get("rows")),
                ", ".join(_short(suite) for suite in result.get("suites", [])),
                _int(evaluated),
                _int(failed),
                "passed" if result.get("success") else "failed",
            )
        )
        failures += [(_STAGE_WORDS[stage], f.get("message", "")) for f in result.get("failures", [])]
    parts = [
        _p(
            "Before anything is trained or written, the data is checked against expectations (Great Expectations "
            "suites): the events as loaded, the training set, and the scores."
        ),
        _svg(figure, "validation-stages", "Expectations passed and failed per stage"),
        _table(["stage", "rows", "suites", "expectations", "failed", "result"], rows, caption="Validation summary"),
    ]
    if failures:
        parts.append(_table(["stage", "failed expectation"], failures, caption="Failed expectations"))
    return _section("validation", parts)
