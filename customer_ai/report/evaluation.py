"""The sections of the report that compare probabilities with what happened: the evaluation and "did it come true".

The evaluation shows the held-out curves and metrics of the model and its baselines (the run's
``evaluation.json``); "did it come true" shows the realised goal rates of past runs whose goal window has
closed, from the store's outcomes.
"""

from __future__ import annotations

import json

import pandas as pd

from customer_ai.report.figures import _evaluation_figure, _outcomes_figure, _svg
from customer_ai.report.folder import _RunFiles
from customer_ai.report.html import _BUCKETS, _SCORERS, _int, _money, _num, _p, _pct, _section, _table
from customer_ai.scoring import BucketRule
from customer_ai.spec import InstanceSpec

# --- evaluation ------------------------------------------------------------------------------------------------


def _evaluation_section(run: _RunFiles, reached: str = "reached the goal") -> str:
    evaluation = run.evaluation
    if evaluation is None:
        version = run.model.get("model_version", "?")
        why = (
            f"The held-out curves are not available for model {version}: it was stored before models kept them "
            f"(it was trained as of {run.model.get('as_of', '?')} and reused by this run). They come with the next "
            "model trained; the model's held-out metrics are in the model card."
        )
        return _section("evaluation", [_p(why, "missing")])
    scorers = [s for s in _SCORERS if s in evaluation["scorers"]]
    data = evaluation["scorers"]
    figure = _evaluation_figure(scorers, data)
    metric_rows = []
    for name in scorers:
        m = data[name]["metrics"]
        versus = evaluation.get("model_vs", {}).get(name)
        gain = f"{versus['difference']:+.3f} [{versus['low']:+.3f}, {versus['high']:+.3f}]" if versus else ""
        metric_rows.append(
            (
                _SCORERS[name],
                _num(m.get("roc_auc")),
                _num(m.get("pr_auc")),
                _num(m.get("log_loss")),
                _num(m.get("brier")),
                _num(m.get("calibration_error")),
                _num(m.get("calibration_error_floor")),
                _num(m.get("top_decile_lift"), 2),
                _pct(m.get("mean_probability")),
                _pct(m.get("positive_rate")),
                gain,
            )
        )
    decile_headers = ["scorer", *(str(d) for d in range(1, 11))]
    decile_tables = [
        _table(
            decile_headers,
            [[_SCORERS[n], *(fmt(g[key]) for g in data[n]["gains"])] for n in scorers],
            caption=caption,
        )
        for key, fmt, caption in (
            ("positive_rate", _pct, "Goal rate by decile (1 = the tenth of profiles with the highest scores)"),
            ("lift", lambda v: _num(v, 2), "Lift by decile"),
            (
                "cumulative_gain",
                lambda v: _pct(v, 0),
                "Cumulative gains: share of goal events reached up to the decile",
            ),
        )
    ]
    bin_rows = []
    for i, edges in enumerate(data["model"]["reliability"]):
        cells = [f"{edges['low']:.1f}–{edges['high']:.1f}"]
        for name in scorers:
            b = data[name]["reliability"][i]
            cells.append(
                f"{_pct(b['mean_predicted'])} / {_pct(b['observed_rate'])} ({b['count']:,})" if b["count"] else "–"
            )
        bin_rows.append(cells)
    names = ", ".join(f"{_SCORERS[n]}: {evaluation['baselines'][n]}" for n in scorers if n != "model")
    parts = [
        _p(
            f"Measured on {evaluation['rows']:,} profiles of the snapshot {evaluation['snapshot']} "
            f"({evaluation['positives']:,} {reached}), which no fitting step saw. The baselines are simple "
            f"rules a marketer could use instead ({names}), each turned into a probability on the same training "
            "snapshots; the model is worth its keep where its curves lie above theirs."
        ),
        _p(
            "How to read: ROC, the higher and further left the better (0.5 is chance); cumulative gains, the share "
            "of all goal events reached by contacting the best-scored share of profiles; lift, how many times the "
            "overall rate each tenth of profiles reaches; reliability, points on the diagonal mean that a predicted "
            "30% comes true 30% of the time."
        ),
        _svg(figure, "evaluation-curves", "ROC, cumulative gains, lift by decile and reliability, model and baselines"),
        _table(
            [
                "scorer",
                "ROC AUC",
                "PR AUC",
                "log loss",
                "Brier",
                "calibration error",
                "from chance alone",
                "top-decile lift",
                "mean predicted",
                "observed rate",
                "model's ROC AUC gain [95% interval]",
            ],
            metric_rows,
            caption="Held-out metrics",
        ),
        *decile_tables,
        _table(
            ["predicted", *(f"{_SCORERS[n]}: predicted / observed (profiles)" for n in scorers)],
            bin_rows,
            caption="Reliability bins",
        ),
    ]
    return _section("evaluation", parts)


# --- did it come true ------------------------------------------------------------------------------------------


def _read_outcomes(store: object, instance: str) -> pd.DataFrame | None:
    reader = getattr(store, "read_outcomes", None)
    return None if reader is None else reader(instance)


def _with_tracked(outcomes: pd.DataFrame | None, run: _RunFiles, instance: str) -> pd.DataFrame | None:
    """Return the store's outcomes with those this run tracked (from its folder) in place of their dates' rows."""
    if not run.tracked:
        return outcomes
    mine = pd.concat([rows.assign(instance=instance, as_of=date) for date, rows in run.tracked.items()])
    if outcomes is None:
        return mine.reset_index(drop=True)
    kept = outcomes.loc[~outcomes["as_of"].isin(run.tracked)]
    return pd.concat([kept, mine[outcomes.columns]], ignore_index=True)


def bucket_rules(spec: InstanceSpec, runs: pd.DataFrame | None) -> dict[str, BucketRule]:
    """Return the bucket rule of each published run (the store's ``read_runs``), by as-of date."""
    rules = {}
    for row in runs.itertuples(index=False) if runs is not None else []:
        metrics = json.loads(row.metrics) if isinstance(row.metrics, str) and row.metrics else row.metrics or {}
        rules[row.as_of] = BucketRule.of_run(metrics.get("bucket_rule"), spec.output)
    return rules


def _outcomes_section(
    as_of: pd.Timestamp,
    outcomes: pd.DataFrame | None,
    rules: dict[str, BucketRule],
    rule: BucketRule,
    currency: str | None = None,
) -> str:
    """Write "did it come true" for past runs.

    Per bucket, runs are compared only when their buckets followed ``rule`` (this run's; ``rules`` holds the
    others', by as-of date).  Runs that predicted an expected value also get it next to what their profiles
    really spent, per profile, written with ``currency``.
    """
    today = f"{as_of:%Y-%m-%d}"
    if outcomes is not None:
        outcomes = outcomes.loc[outcomes["as_of"] <= today]
    if outcomes is None or outcomes.empty:
        return _section(
            "outcomes",
            [
                _p(
                    "No past run has a closed goal window yet: once the goal window of a run has passed, the rate "
                    "that came true is shown here next to the rate its scores predicted.",
                    "missing",
                )
            ],
        )
    dates = sorted(outcomes["as_of"].unique())
    alike = {date for date in dates if rules.get(date, rule).key() == rule.key()}
    figure = _outcomes_figure(outcomes, dates, alike)
    bucket_rows, decile_rows_text = [], []
    for date in dates:
        rows = outcomes.loc[outcomes["as_of"] == date]
        rate = {(r.grouping, str(r.group)): r for r in rows.itertuples(index=False)}
        tracked = rows["tracked_at"].iloc[0] if "tracked_at" in rows.columns and len(rows) else ""
        bucket_rows.append(
            [
                date,
                rules.get(date, rule).short(),
                *(_predicted_realised(rate.get(("all" if g == "all" else "bucket", g))) for g in ("all", *_BUCKETS)),
                tracked,
            ]
        )
        deciles = [_predicted_realised_points(rate.get(("decile", str(d)))) for d in range(1, 11)]
        decile_rows_text.append([date, *deciles])
    parts = [
        _p(
            "For past runs whose goal window has closed: the share of each group's profiles whose goal came true "
            "(solid), next to the share their scores predicted (dashed). Close lines mean the probabilities can be "
            "taken at their word. A bucket's line joins only runs whose buckets followed this run's rule ("
            f"{rule.short()}): buckets of another rule hold other profiles."
        ),
        _svg(figure, "outcomes-rates", "Predicted and realised goal rates of past runs"),
        _table(
            ["run as of", "buckets", "all profiles", *(f"{b} bucket" for b in _BUCKETS), "checked"],
            bucket_rows,
            caption="Predicted → came true, per bucket (profiles)",
        ),
        _table(
            ["run as of", *(str(d) for d in range(1, 11))],
            decile_rows_text,
            caption="Predicted → came true, per decile (1 = the highest scores), in percent",
            compact=True,
        ),
        *_value_outcomes(outcomes, dates, currency),
    ]
    return _section("outcomes", parts)


def _value_outcomes(outcomes: pd.DataFrame, dates: list[str], currency: str | None) -> list[str]:
    """Return the table of expected against realised value per profile of past runs that predicted one (or none)."""
    if "predicted_value" not in outcomes.columns or outcomes["predicted_value"].isna().all():
        return []
    rows = []
    for date in dates:
        rate = {(r.grouping, str(r.group)): r for r in outcomes.loc[outcomes["as_of"] == date].itertuples(index=False)}
        groups = [("all", "all"), *(("bucket", b) for b in _BUCKETS), ("decile", "1"), ("decile", "10")]
        rows.append([date, *(_expected_realised(rate.get(key), currency) for key in groups)])
    return [
        _p(
            "Runs that predicted an expected value: each group's mean expected value per profile next to what its "
            "profiles really spent in the goal window (zero included)."
        ),
        _table(
            ["run as of", "all profiles", *(f"{b} bucket" for b in _BUCKETS), "decile 1", "decile 10"],
            rows,
            caption="Expected value → realised, per profile",
        ),
    ]


def _expected_realised(row: object, currency: str | None) -> str:
    if row is None or pd.isna(getattr(row, "predicted_value", float("nan"))):
        return "–"
    return f"{_money(row.predicted_value, currency)} → {_money(row.realised_value, currency)}"  # type: ignore[attr-defined]


def _predicted_realised_points(row: object) -> str:
    """Return "predicted → came true" in percent without the signs ("12 → 10"), for a narrow cell."""
    if row is None:
        return "–"
    points = [None if pd.isna(rate) else 100 * float(rate) for rate in (row.predicted_rate, row.realised_rate)]  # type: ignore[attr-defined]
    return f"{_num(points[0], 0)} → {_num(points[1], 0)}"


def _predicted_realised(row: object) -> str:
    if row is None:
        return "–"
    text = f"{_pct(row.predicted_rate, 0)} → {_pct(row.realised_rate, 0)}"  # type: ignore[attr-defined]
    return f"{text} ({_int(row.profiles)})"  # type: ignore[attr-defined]
