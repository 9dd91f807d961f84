"""Run the back-tests of the frozen evaluation split (examples/evaluation.yaml): its tuning rows or its reported rows.

Usage::

    .venv/bin/python examples/evaluate.py tuning      # the rows a method may be chosen on (make tune)
    .venv/bin/python examples/evaluate.py reported    # the rows docs/evaluation.md reports (make backtest)
    .venv/bin/python examples/evaluate.py checks      # dates measured once outside the cutoff's rule

Before running anything the split is checked: every tuning date's outcome window ``[as_of, as_of + window)``
ends on or before its data set's cutoff and every reported date is on or after it, for every goal of the data
set (so a method tuned for one goal never saw an outcome that a reported row of another goal is judged on).
A goal of the split may carry ``value: FIELD``: it is back-tested as if its instance's goal had ``value: {field:
FIELD}`` (:func:`goal_spec`; the instance files stay as they are), so the run's value model is judged too; and
``timing: true``: as if its output had ``timing: true``, so the run's timing model is judged too.
Each goal's back-test prints its tables (those of ``customer-ai backtest``) and writes its metrics to
``OUT/<data set>_<instance>.json``; the run ends with one summary line per row and the figures a variant of the
method is judged by: the worst and the mean ROC AUC gain over the best baseline, and the mean calibration error;
then, for the goals with a value, the value model's margin over the best value baseline and its total ratio; for
the goals with timing, the timing model's concordance margin over the best timing baseline and the share that
bought by their predicted median.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from customer_ai.backtest import backtest, format_markdown, spend_moved
from customer_ai.events import check_attribute_join, load_attributes, load_events
from customer_ai.spec import InstanceSpec, load_spec, parse_spec
from customer_ai.windows import as_of_timestamp

ROOT = Path(__file__).resolve().parent.parent
SPLIT = ROOT / "examples" / "evaluation.yaml"
SETS = ("tuning", "reported", "checks")
BASELINES = ("recency", "frequency", "bgnbd")
VALUE_TARGET_MARGIN = 0.02  # the issue's target: normalised Gini at least the best baseline's + 0.02
VALUE_TOTAL_RATIO = (0.9, 1.1)  # and the predicted total within these times the realised one
TIMING_TARGET_MARGIN = 0.01  # timing: concordance at least the best baseline's + 0.01
BOUGHT_BY_MEDIAN = (0.45, 0.55)  # and the share that bought by their predicted median within these


@dataclass(frozen=True)
class Goal:
    """One instance of a data set with its tuning and reported as-of dates."""

    data_set: str
    cutoff: dt.date
    instance: Path
    window_days: int
    tuning: tuple[dt.date, ...]
    reported: tuple[dt.date, ...]
    prepare: Path | None = None
    checks: tuple[dt.date, ...] = ()  # measured once, outside the cutoff's rule (see evaluation.yaml)
    value: str | None = None  # the events' field the goal is worth: back-tested with a value (see goal_spec)
    timing: bool = False  # back-tested with output.timing (see goal_spec)

    def dates(self, which: str) -> tuple[dt.date, ...]:
        """Return the tuning, the reported or the check dates."""
        return {"tuning": self.tuning, "reported": self.reported, "checks": self.checks}[which]

    def spec(self) -> InstanceSpec:
        """Return the spec the goal is back-tested with: its instance's, worth ``value``, with timing if asked."""
        return goal_spec(self.instance, self.value, timing=self.timing)


def goal_spec(instance: Path, value: str | None = None, *, timing: bool = False) -> InstanceSpec:
    """Return the spec of the instance file ``instance``, its goal worth the events' ``value`` field when given.

    The file is read as it is (the instance files' hashes are pinned) and the value (and ``output.timing`` when
    ``timing``) added to the spec read, then checked as a file saying ``goal: {value: {field: VALUE}}`` and
    ``output: {timing: true}`` would be (a goal that must not occur is refused both).
    """
    spec = load_spec(instance)
    if value is None and not timing:
        return spec
    data = spec.model_dump(mode="json")
    added = []
    if value is not None:
        data["goal"] = {**data["goal"], "value": {"field": value}}
        added.append(f"goal.value.field {value!r}")
    if timing:
        data["output"] = {**data["output"], "timing": True}
        added.append("output.timing true")
    return parse_spec(data, source=f"{instance} with {' and '.join(added)}", base_dir=spec.base_dir)


def _date(value: object, where: str) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"{where}: not a date: {value!r} (use YYYY-MM-DD)") from None


def load_split(path: Path = SPLIT, root: Path = ROOT) -> list[Goal]:
    """Return the goals of the split file at ``path`` (instance paths relative to ``root``)."""
    goals = []
    for data_set, entry in yaml.safe_load(path.read_text()).items():
        cutoff = _date(entry["cutoff"], f"{data_set}: cutoff")
        prepare = root / entry["prepare"] if entry.get("prepare") else None
        for number, goal in enumerate(entry["goals"]):
            where = f"{data_set}: goals[{number}]"
            instance = root / goal["instance"]
            value = goal.get("value")
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"{where}: value: the name of the events' field the goal is worth, not {value!r}")
            timing = goal.get("timing", False)
            if not isinstance(timing, bool):
                raise ValueError(f"{where}: timing: true or false, not {timing!r}")
            goals.append(
                Goal(
                    data_set=data_set,
                    cutoff=cutoff,
                    instance=instance,
                    window_days=goal_spec(instance, value, timing=timing).goal.window_days,
                    tuning=tuple(_date(d, f"{where}: tuning") for d in goal["tuning"]),
                    reported=tuple(_date(d, f"{where}: reported") for d in goal["reported"]),
                    prepare=prepare,
                    checks=tuple(_date(d, f"{where}: checks") for d in goal.get("checks", ())),
                    value=value,
                    timing=timing,
                )
            )
    return goals


def split_problems(goals: list[Goal]) -> list[str]:
    """Return what breaks the split's rules (empty when it holds).

    Per data set: every tuning outcome window ``[as_of, as_of + window_days)`` ends on or before the cutoff, every
    reported date is on or after it, each goal has a tuning date and a reported date or a check.
    """
    problems = []
    for goal in goals:
        name = f"{goal.data_set}: {goal.instance.name}"
        window = dt.timedelta(days=goal.window_days)
        problems += [
            f"{name}: tuning date {day} has its outcome window end on {day + window}, after the cutoff {goal.cutoff}"
            for day in goal.tuning
            if day + window > goal.cutoff
        ]
        problems += [
            f"{name}: reported date {d} is before the cutoff {goal.cutoff}" for d in goal.reported if d < goal.cutoff
        ]
        problems += [f"{name}: no tuning date"] if not goal.tuning else []
        problems += [f"{name}: no reported date"] if not goal.reported and not goal.checks else []
    return problems


def choose(
    goals: list[Goal], which: str, data_sets: list[str] | None, *, valued_only: bool = False, timed_only: bool = False
) -> list[Goal]:
    """Return the goals with ``which`` dates (of ``data_sets`` only, when given; with a value or timing, if asked)."""
    return [
        goal
        for goal in goals
        if (not data_sets or goal.data_set in data_sets)
        and goal.dates(which)
        and (goal.value is not None or not valued_only)
        and (goal.timing or not timed_only)
    ]


def row_summary(data_set: str, instance: str, result: dict) -> dict:
    """Return one back-test result as the figures a variant is judged by: gain over the best baseline, calibration."""
    best = max(BASELINES, key=lambda name: result[name]["roc_auc"])
    gain = result["model_vs"][best]
    return {
        "data_set": data_set,
        "instance": instance,
        "as_of": result["as_of"],
        "model_roc_auc": result["model"]["roc_auc"],
        "best_baseline": best,
        "best_baseline_roc_auc": result[best]["roc_auc"],
        "gain": gain["difference"],
        "gain_low": gain["low"],
        "gain_high": gain["high"],
        "calibration_error": result["model"]["calibration_error"],
        "calibration_error_floor": result["model"]["calibration_error_floor"],
    }


def aggregate(rows: list[dict]) -> dict:
    """Return the worst and mean gain, the rows at +0.01 or more, the mean calibration error and the rows at <= 0.02."""
    gains = [row["gain"] for row in rows]
    errors = [row["calibration_error"] for row in rows]
    return {
        "rows": len(rows),
        "worst_gain": min(gains),
        "mean_gain": sum(gains) / len(gains),
        "rows_gain_at_least_0_01": sum(gain >= 0.01 for gain in gains),
        "rows_above_best_baseline": sum(gain > 0 for gain in gains),
        "mean_calibration_error": sum(errors) / len(errors),
        "rows_calibration_error_at_most_0_02": sum(error <= 0.02 for error in errors),
    }


def _against_best(table: dict, key: str, name: str) -> dict:
    """Return a value or timing table's best baseline, its ``key`` (as ``best_baseline_<name>``) and the margin."""
    best, margin = table["best_baseline"], table["model_vs_best"] or {}
    return {
        "best_baseline": best,
        f"best_baseline_{name}": table[best][key] if best is not None else float("nan"),
        "margin": margin.get("difference", float("nan")),
        "margin_low": margin.get("low", float("nan")),
        "margin_high": margin.get("high", float("nan")),
    }


def _margin_totals(rows: list[dict], target: float) -> dict:
    """Return the rows, those whose margin reaches ``target`` and those above zero, the worst and the mean margin."""
    margins = [row["margin"] for row in rows]
    return {
        "rows": len(rows),
        f"rows_margin_at_least_{target:g}".replace(".", "_"): sum(margin >= target for margin in margins),
        "rows_above_best_baseline": sum(margin > 0 for margin in margins),
        "worst_margin": min(margins),
        "mean_margin": sum(margins) / len(margins),
    }


def value_row_summary(data_set: str, instance: str, result: dict) -> dict:
    """Return a back-test result's value figures: margin over the best value baseline, total ratio, spend moved."""
    value = result["value"]
    spend = value["spend_per_profile"]
    moved = spend["calibration_window"] / spend["outcome_window"] if spend["outcome_window"] > 0 else float("nan")
    return {
        "data_set": data_set,
        "instance": instance,
        "as_of": result["as_of"],
        "eligible": value["eligible"],
        "spenders": value["spenders"],
        "model_gini": value["model"]["normalised_gini"],
        **_against_best(value, "normalised_gini", "gini"),
        "spearman": value["model"]["spearman"],
        "decile_error": value["model"]["decile_error"],
        "total_ratio": value["model"]["total_ratio"],
        "spend_calibration_window": spend["calibration_window"],
        "spend_outcome_window": spend["outcome_window"],
        "spend_ratio": moved,
        "total_ratio_over_spend_ratio": value["model"]["total_ratio"] / moved,
        "spend_moved": spend_moved(value),
    }


def value_aggregate(rows: list[dict]) -> dict:
    """Return the value rows' figures: rows at the Gini target, worst and mean margin, total ratios and their target."""
    ratios = [row["total_ratio"] for row in rows]
    low, high = VALUE_TOTAL_RATIO
    return {
        **_margin_totals(rows, VALUE_TARGET_MARGIN),
        "total_ratios": ratios,
        "rows_total_ratio_in_0_9_1_1": sum(low <= ratio <= high for ratio in ratios),
    }


def timing_row_summary(data_set: str, instance: str, result: dict) -> dict:
    """Return a back-test result's timing figures: concordance margin over the best baseline, bought by median."""
    timing = result["timing"]
    return {
        "data_set": data_set,
        "instance": instance,
        "as_of": result["as_of"],
        "eligible": timing["eligible"],
        "bought": timing["bought"],
        "span_days": timing["span_days"],
        "model_concordance": timing["model"]["concordance"],
        **_against_best(timing, "concordance", "concordance"),
        "bought_by_median": timing["model"]["bought_by_median"],
        "counted": timing["model"]["counted"],
    }


def timing_aggregate(rows: list[dict]) -> dict:
    """Return the timing rows' figures: rows at the concordance target, worst and mean margin, bought by median."""
    shares = [row["bought_by_median"] for row in rows]
    low, high = BOUGHT_BY_MEDIAN
    return {
        **_margin_totals(rows, TIMING_TARGET_MARGIN),
        "bought_by_median": shares,
        "rows_bought_by_median_in_0_45_0_55": sum(share is not None and low <= share <= high for share in shares),
    }


def _format(rows: list[dict], totals: dict) -> str:
    lines = [
        "| data set | instance | as of | model ROC AUC | best baseline | its ROC AUC | gain [95% CI] "
        "| calibration error |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['data_set']} | {r['instance']} | {r['as_of']} | {r['model_roc_auc']:.3f} | {r['best_baseline']} | "
        f"{r['best_baseline_roc_auc']:.3f} | {r['gain']:+.4f} [{r['gain_low']:+.3f}, {r['gain_high']:+.3f}] | "
        f"{r['calibration_error']:.3f} |"
        for r in rows
    ]
    lines.append(
        f"\n{totals['rows']} rows: gain over the best baseline worst {totals['worst_gain']:+.4f}, mean "
        f"{totals['mean_gain']:+.4f}, above it in {totals['rows_above_best_baseline']}, at +0.01 or more in "
        f"{totals['rows_gain_at_least_0_01']}; calibration error mean {totals['mean_calibration_error']:.4f}, "
        f"at most 0.02 in {totals['rows_calibration_error_at_most_0_02']}"
    )
    return "\n".join(lines)


def _format_value(rows: list[dict], totals: dict) -> str:
    lines = [
        "| data set | instance | as of | eligible (spent) | model normalised Gini | best baseline | its Gini "
        "| margin [95% CI] | total ratio | spend per profile: calibration -> outcome | total ratio / r |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['data_set']} | {r['instance']} | {r['as_of']} | {r['eligible']:,} ({r['spenders']:,}) | "
        f"{r['model_gini']:.3f} | {r['best_baseline']} | {r['best_baseline_gini']:.3f} | {r['margin']:+.3f} "
        f"[{r['margin_low']:+.3f}, {r['margin_high']:+.3f}] | {r['total_ratio']:.3f} | "
        f"{r['spend_calibration_window']:,.2f} -> {r['spend_outcome_window']:,.2f} (r = {r['spend_ratio']:.3f}) | "
        f"{r['total_ratio_over_spend_ratio']:.3f} |"
        for r in rows
    ]
    lines.append(
        f"\n{totals['rows']} value rows: normalised Gini at least the best baseline's + {VALUE_TARGET_MARGIN} in "
        f"{totals['rows_margin_at_least_0_02']}, above it in {totals['rows_above_best_baseline']}; margin worst "
        f"{totals['worst_margin']:+.3f}, mean {totals['mean_margin']:+.3f}; total ratios "
        + ", ".join(f"{ratio:.3f}" for ratio in totals["total_ratios"])
        + f", within {VALUE_TOTAL_RATIO[0]} - {VALUE_TOTAL_RATIO[1]} in {totals['rows_total_ratio_in_0_9_1_1']}"
    )
    return "\n".join(lines)


def _format_timing(rows: list[dict], totals: dict) -> str:
    lines = [
        "| data set | instance | as of | eligible (bought) | span | model concordance | best baseline | its "
        "concordance | margin [95% CI] | bought by median (counted) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['data_set']} | {r['instance']} | {r['as_of']} | {r['eligible']:,} ({r['bought']:,}) | "
        f"{r['span_days']} | {r['model_concordance']:.3f} | {r['best_baseline']} | "
        f"{r['best_baseline_concordance']:.3f} | {r['margin']:+.3f} [{r['margin_low']:+.3f}, {r['margin_high']:+.3f}] "
        f"| {_share(r['bought_by_median'])} ({r['counted']:,}) |"
        for r in rows
    ]
    lines.append(
        f"\n{totals['rows']} timing rows: concordance at least the best baseline's + {TIMING_TARGET_MARGIN} in "
        f"{totals['rows_margin_at_least_0_01']}, above it in {totals['rows_above_best_baseline']}; margin worst "
        f"{totals['worst_margin']:+.3f}, mean {totals['mean_margin']:+.3f}; bought by median "
        + ", ".join(_share(share) for share in totals["bought_by_median"])
        + f", within {BOUGHT_BY_MEDIAN[0]} - {BOUGHT_BY_MEDIAN[1]} in {totals['rows_bought_by_median_in_0_45_0_55']}"
    )
    return "\n".join(lines)


def _share(share: float | None) -> str:
    return "n/a" if share is None or math.isnan(share) else f"{share:.3f}"  # NaN: none counted


def run_backtests(
    spec: InstanceSpec, dates: tuple[dt.date, ...], target: Path, *, observed_until: dt.date | None = None
) -> list[dict]:
    """Back-test ``spec`` at ``dates`` as ``customer-ai backtest`` does: print the tables, write the JSON to ``target``.

    In this process rather than through the command, so that a goal can be given a value its file does not have.
    With ``observed_until`` (the cutoff, for tuning rows) the events end there: no outcome after it is read, not
    even by the timing model's measures, which otherwise follow each profile to the end of the data.
    """
    events = load_events(spec)
    if observed_until is not None:
        events = events.loc[events["timestamp"] < as_of_timestamp(observed_until)]
    attributes = load_attributes(spec)
    check_attribute_join(events, attributes, f"instance {spec.name}")
    results = [backtest(spec, events, as_of_timestamp(day), attributes) for day in dates]
    print(format_markdown(spec, results), flush=True)
    target.write_text(json.dumps(results, indent=2) + "\n")
    return results


def main(argv: list[str] | None = None) -> int:
    """Check the split, then back-test the chosen rows; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", choices=SETS, help="which dates to back-test")
    parser.add_argument("--data-set", action="append", help="only this data set (repeat for several)")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "evaluation", help="folder for the JSON files")
    parser.add_argument("--split", type=Path, default=SPLIT, help="the split file")
    parser.add_argument("--valued-only", action="store_true", help="only the goals with a value")
    parser.add_argument("--timed-only", action="store_true", help="only the goals with timing")
    args = parser.parse_args(argv)
    goals = load_split(args.split)
    problems = split_problems(goals)
    if problems:
        print("the evaluation split breaks its rules:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2
    chosen = choose(goals, args.rows, args.data_set, valued_only=args.valued_only, timed_only=args.timed_only)
    out = args.out / args.rows
    out.mkdir(parents=True, exist_ok=True)
    prepared: set[Path] = set()
    rows, value_rows, timing_rows = [], [], []
    for goal in chosen:
        if goal.prepare is not None and goal.prepare not in prepared:
            subprocess.run([sys.executable, str(goal.prepare)], check=True)
            prepared.add(goal.prepare)
        target = out / f"{goal.data_set}_{goal.instance.stem}.json"
        until = goal.cutoff if args.rows == "tuning" else None  # tuning rows read nothing of the reported period
        results = run_backtests(goal.spec(), goal.dates(args.rows), target, observed_until=until)
        rows += [row_summary(goal.data_set, goal.instance.stem, r) for r in results]
        value_rows += [value_row_summary(goal.data_set, goal.instance.stem, r) for r in results if "value" in r]
        timing_rows += [timing_row_summary(goal.data_set, goal.instance.stem, r) for r in results if "timing" in r]
    summary = {"rows": rows, "totals": aggregate(rows)}
    if value_rows:
        summary.update(value_rows=value_rows, value_totals=value_aggregate(value_rows))
    if timing_rows:
        summary.update(timing_rows=timing_rows, timing_totals=timing_aggregate(timing_rows))
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(_format(rows, summary["totals"]))
    if value_rows:
        print("\n" + _format_value(value_rows, summary["value_totals"]))
    if timing_rows:
        print("\n" + _format_timing(timing_rows, summary["timing_totals"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
