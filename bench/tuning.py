"""What the choice-of-method benchmarks share: the tuning dates of the split, a run's training at a date, their main.

``bench/value_models.py`` and ``bench/timing_models.py`` measure candidates on the **tuning** dates of the goals that
must occur in ``examples/evaluation.yaml``, read with the evaluation's own reader (:func:`examples.evaluate.
load_split`), and train at each date exactly as a run would (:func:`trained_as_a_run`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from customer_ai.estimator import PropensityModel, TrainingSet  # noqa: E402
from customer_ai.events import events_start, load_attributes, load_events  # noqa: E402
from customer_ai.history import run_window  # noqa: E402
from customer_ai.spec import InstanceSpec, load_spec  # noqa: E402
from customer_ai.windows import as_of_timestamp, in_window, rows_where  # noqa: E402
from examples.evaluate import load_split  # noqa: E402


@dataclass(frozen=True)
class TuningRow:
    """One goal that must occur at one of its tuning dates, with its data set's cutoff."""

    data_set: str
    instance: Path
    as_of: pd.Timestamp
    cutoff: pd.Timestamp


def tuning_rows(data_sets: list[str] | None) -> list[TuningRow]:
    """Return the tuning dates of the split's goals that must occur (of ``data_sets`` only, when given)."""
    return [
        TuningRow(goal.data_set, goal.instance, as_of_timestamp(day), as_of_timestamp(goal.cutoff))
        for goal in load_split()
        if (not data_sets or goal.data_set in data_sets) and load_spec(goal.instance).goal.occurrence == "will_occur"
        for day in goal.tuning
    ]


@dataclass
class RunAtDate:
    """What a run at ``as_of`` reads and trains: its events and attributes, its window, the fitted model."""

    spec: InstanceSpec
    events: pd.DataFrame
    attributes: pd.DataFrame | None
    start: pd.Timestamp  # where the run's window starts
    seen: pd.DataFrame  # the events of ``[start, as_of)``
    first: pd.Timestamp  # where the data starts
    estimator: PropensityModel
    training_set: TrainingSet


def trained_as_a_run(spec: InstanceSpec, as_of: pd.Timestamp) -> RunAtDate:
    """Read what a run of ``spec`` at ``as_of`` reads and fit its model on it, as :func:`customer_ai.backtest` does."""
    events = load_events(spec, None)
    attributes = load_attributes(spec)
    start, _ = run_window(spec, as_of)
    seen = rows_where(events, in_window(events["timestamp"], start, as_of))
    first = events_start(events["timestamp"], spec.name).start
    estimator = PropensityModel(spec)
    training_set = estimator.build_training_set(seen, as_of, attributes, data_start=first)
    estimator.fit_training_set(training_set)
    return RunAtDate(spec, events, attributes, start, seen, first, estimator, training_set)


def main(
    description: str, measure: Callable[[TuningRow], dict], table: Callable[[list[dict]], str], argv: list[str] | None
) -> int:
    """Measure every tuning row (``--data-set`` to choose); print the table, write ``--json-out``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data-set", action="append", help="only this data set (repeat for several)")
    parser.add_argument("--json-out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    results = []
    for row in tuning_rows(args.data_set):
        print(f"{row.data_set} {row.instance.stem} as of {row.as_of:%Y-%m-%d} ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        result = {"data_set": row.data_set, **measure(row)}
        result["seconds"] = round(time.perf_counter() - started, 1)
        results.append(result)
    print(table(results))
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(results, indent=2) + "\n")
    return 0
