"""Run the back-tests of the frozen evaluation split (examples/evaluation.yaml): its tuning rows or its reported rows.

Usage::

    .venv/bin/python examples/evaluate.py tuning      # the rows a method may be chosen on (make tune)
    .venv/bin/python examples/evaluate.py reported    # the rows docs/evaluation.md reports (make backtest)
    .venv/bin/python examples/evaluate.py checks      # dates measured once outside the cutoff's rule

Before running anything the split is checked: every tuning date's outcome window ``[as_of, as_of + window)``
ends on or before its data set's cutoff and every reported date is on or after it, for every goal of the data
set (so a method tuned for one goal never saw an outcome that a reported row of another goal is judged on).
Each goal's back-test prints its tables (``customer-ai backtest``) and writes its metrics to
``OUT/<data set>_<instance>.json``; the run ends with one summary line per row and the figures a variant of the
method is judged by: the worst and the mean ROC AUC gain over the best baseline, and the mean calibration error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from customer_ai.spec import load_spec

ROOT = Path(__file__).resolve().parent.parent
SPLIT = ROOT / "examples" / "evaluation.yaml"
SETS = ("tuning", "reported", "checks")
BASELINES = ("recency", "frequency", "bgnbd")


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

    def dates(self, which: str) -> tuple[dt.date, ...]:
        """Return the tuning, the reported or the check dates."""
        return {"tuning": self.tuning, "reported": self.reported, "checks": self.checks}[which]


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
            goals.append(
                Goal(
                    data_set=data_set,
                    cutoff=cutoff,
                    instance=instance,
                    window_days=load_spec(instance).goal.window_days,
                    tuning=tuple(_date(d, f"{where}: tuning") for d in goal["tuning"]),
                    reported=tuple(_date(d, f"{where}: reported") for d in goal["reported"]),
                    prepare=prepare,
                    checks=tuple(_date(d, f"{where}: checks") for d in goal.get("checks", ())),
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


def main(argv: list[str] | None = None) -> int:
    """Check the split, then back-test the chosen rows; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", choices=SETS, help="which dates to back-test")
    parser.add_argument("--data-set", action="append", help="only this data set (repeat for several)")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "evaluation", help="folder for the JSON files")
    parser.add_argument("--split", type=Path, default=SPLIT, help="the split file")
    args = parser.parse_args(argv)
    goals = load_split(args.split)
    problems = split_problems(goals)
    if problems:
        print("the evaluation split breaks its rules:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2
    chosen = [g for g in goals if (not args.data_set or g.data_set in args.data_set) and g.dates(args.rows)]
    out = args.out / args.rows
    out.mkdir(parents=True, exist_ok=True)
    command = [str(Path(sys.executable).parent / "customer-ai"), "-q", "backtest"]
    prepared: set[Path] = set()
    rows = []
    for goal in chosen:
        if goal.prepare is not None and goal.prepare not in prepared:
            subprocess.run([sys.executable, str(goal.prepare)], check=True)
            prepared.add(goal.prepare)
        target = out / f"{goal.data_set}_{goal.instance.stem}.json"
        dates = [part for day in goal.dates(args.rows) for part in ("--as-of", f"{day}")]
        subprocess.run([*command, str(goal.instance), *dates, "--json-out", str(target)], check=True, cwd=ROOT)
        rows += [row_summary(goal.data_set, goal.instance.stem, r) for r in json.loads(target.read_text())]
    totals = aggregate(rows)
    (out / "summary.json").write_text(json.dumps({"rows": rows, "totals": totals}, indent=2) + "\n")
    print(_format(rows, totals))
    return 0


if __name__ == "__main__":
    sys.exit(main())
