"""Benchmark: TreeSHAP contributions by decision pattern against LightGBM's ``pred_contrib``, in one run.

Usage: ``.venv/bin/python bench/factors.py [10k 100k 300k] [--repeats 3]``.

For each size it takes the seeded log of ``bench/generate.py`` (made once under ``var/bench/data/``, as
``bench/scale.py`` does), trains the benchmark model with ``customer-ai run`` as of the day after the log (once:
the run's home is kept under ``var/bench/factors/``), builds the features of every profile eligible at that
date, and times on that matrix, alternating, ``repeats`` times each:

- ``pred_contrib``: LightGBM's ``booster.predict(..., pred_contrib=True)`` with one thread (what the model
  trains with) and with OpenMP's default threads (what ``predict`` uses unless told);
- ``by pattern``: :func:`customer_ai.treeshap.contributions` with one thread.

It prints the medians, the ratios and the largest absolute difference between the two results, and writes
them to ``var/bench/factors-<time>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from bench.scale import _dataset, parse_size  # noqa: E402
from customer_ai import artifacts, treeshap  # noqa: E402
from customer_ai.events import load_attributes  # noqa: E402
from customer_ai.spec import load_spec  # noqa: E402
from customer_ai.store import open_store  # noqa: E402


def _model_home(data: Path, home: Path, as_of: str) -> Path:
    """Train the benchmark model into ``home`` with ``customer-ai run`` unless a run there already has one."""
    if not (home / "models").exists():
        command = [str(Path(sys.executable).with_name("customer-ai")), "-q", "run", str(data / "instance.yaml")]
        command += ["--as-of", as_of, "--home", str(home), "--allow-poor", "--top", "0"]
        subprocess.run(command, check=True, env={**os.environ, "GX_ANALYTICS_ENABLED": "False"})
    return home


def _timed(work: Callable[[], np.ndarray]) -> tuple[float, np.ndarray]:
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, np.asarray(result, dtype="float64")


def measure(profiles: int, *, seed: int, as_of: str, repeats: int) -> dict:
    """Time both ways on the benchmark model of ``profiles`` profiles; return the figures."""
    data = ROOT / "var" / "bench" / "data" / f"{profiles}-seed{seed}"
    _dataset(data, profiles, seed)
    home = _model_home(data, ROOT / "var" / "bench" / "factors" / f"{profiles}-seed{seed}", as_of)
    spec = load_spec(data / "instance.yaml")
    moment = pd.Timestamp(as_of, tz="UTC")
    published = open_store(None, home).latest_run(spec.name)  # the run's folder is the one its store names
    folder = artifacts.run_dir(home, spec.name, moment, published["run_id"])
    run_model = artifacts.read_json(folder / "model.json")
    estimator, _ = artifacts.load_model(artifacts.model_dir(home, spec.name, run_model["model_version"]), spec)
    events = pd.read_parquet(folder / "events.parquet")
    features = estimator.features(events, moment, attributes=load_attributes(spec))
    model = estimator.model_
    frame, trees = features[model.features], model.best_iteration
    figures = {"profiles": profiles, "scored": len(frame), "features": frame.shape[1], "trees": trees}
    timings: dict[str, list[float]] = {
        "pred_contrib_1_thread": [],
        "pred_contrib_default_threads": [],
        "by_pattern": [],
    }
    results: dict[str, np.ndarray] = {}
    work = {
        "pred_contrib_1_thread": lambda: model.booster.predict(
            frame, pred_contrib=True, num_iteration=trees, num_threads=1
        ),
        "pred_contrib_default_threads": lambda: model.booster.predict(frame, pred_contrib=True, num_iteration=trees),
        "by_pattern": lambda: treeshap.contributions(model.booster, frame, trees, threads=1),
    }
    for _ in range(repeats):  # alternating, so a busy spell of the machine hits all three alike
        for name, job in work.items():
            seconds, results[name] = _timed(job)
            timings[name].append(seconds)
    medians = {name: statistics.median(values) for name, values in timings.items()}
    figures["seconds"] = {name: round(value, 3) for name, value in medians.items()}
    figures["runs"] = timings
    figures["speedup_vs_1_thread"] = round(medians["pred_contrib_1_thread"] / medians["by_pattern"], 2)
    figures["speedup_vs_default_threads"] = round(medians["pred_contrib_default_threads"] / medians["by_pattern"], 2)
    figures["max_abs_difference"] = float(np.max(np.abs(results["by_pattern"] - results["pred_contrib_1_thread"])))
    figures["rows_per_second_by_pattern"] = round(len(frame) / medians["by_pattern"])
    return figures


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print a markdown table and write the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", default=["10k", "100k"], help="profiles per data set, e.g. 10k 300k")
    parser.add_argument("--repeats", type=int, default=3, help="timings per way; the table shows medians")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated data sets (default 0)")
    parser.add_argument("--as-of", default="2024-01-01", help="as-of date (default: the day after the log)")
    args = parser.parse_args(argv)
    try:
        sizes = [parse_size(s) for s in args.sizes]
    except ValueError as exc:
        parser.error(str(exc))
    rows = [measure(size, seed=args.seed, as_of=args.as_of, repeats=args.repeats) for size in sizes]
    print(
        "| profiles | scored | trees | pred_contrib, 1 thread | default threads | by pattern | ratio (1 thread) "
        "| ratio (default) | max abs difference |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        seconds = row["seconds"]
        print(
            f"| {row['profiles']:,} | {row['scored']:,} | {row['trees']} | {seconds['pred_contrib_1_thread']:.2f} s "
            f"| {seconds['pred_contrib_default_threads']:.2f} s | {seconds['by_pattern']:.2f} s "
            f"| {row['speedup_vs_1_thread']}x | {row['speedup_vs_default_threads']}x "
            f"| {row['max_abs_difference']:.1e} |"
        )
    out = ROOT / "var" / "bench" / f"factors-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"repeats": args.repeats, "sizes": rows}, indent=2))
    print(f"figures: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
