"""Benchmark: labels + point-in-time features alone, the columnar code against the code it replaced, in one run.

Usage: ``.venv/bin/python bench/features.py [--profiles 10000 100000] [--repeats 3] [--no-reference]``.

For each size it generates the seeded log of ``bench/generate.py`` (``generate_events(profiles, seed=...)``:
about 50 events per profile over a year, five event types, a profile attribute) and its instance (purchase
within 30 days, 6 snapshots, custom events), plans the snapshots as a run as of the day after the log does,
then times ``build_labels`` plus ``plan_features`` plus ``build_features`` at every snapshot, as
``PropensityModel.build_training_set`` does.  The reference (the code before the columnar rewrite, kept in
``tests/feature_reference.py``) runs on the same events in the same process, alternating with the current code,
and the two outputs are compared exactly.  Prints per implementation the median of ``--repeats`` runs, the
events per second, and the time of the BG/NBD fits inside it (the repeat-model features; the fit is shared
code that both implementations call identically).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import customer_ai.bgnbd  # noqa: E402
from bench.generate import generate_events, instance_spec  # noqa: E402
from customer_ai.estimator import PropensityModel  # noqa: E402
from customer_ai.features import build_features, plan_features  # noqa: E402
from customer_ai.labels import build_labels  # noqa: E402
from customer_ai.spec import InstanceSpec, parse_spec  # noqa: E402
from customer_ai.windows import EventIndex  # noqa: E402

START, DAYS = "2023-01-01", 365


def training_rows(  # noqa: PLR0917 - the two implementations differ only in their functions
    build_labels_fn: Callable,
    build_features_fn: Callable,
    events: pd.DataFrame,
    attributes: pd.DataFrame,
    spec: InstanceSpec,
    as_of: pd.Timestamp,
    *,
    encoded: bool,
) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """Return the labels and the feature matrix at every snapshot, as ``build_training_set`` builds them."""
    snapshot_plan = PropensityModel(spec).plan(events, as_of)
    keyword = {"index": EventIndex(events)} if encoded else {}
    labels = build_labels_fn(events, spec, snapshot_plan.snapshots, **keyword)
    plan = plan_features(
        events, spec, snapshot_plan.training[-1], attributes, lookback_days=snapshot_plan.lookback_days
    )
    frames = []
    for snapshot in snapshot_plan.snapshots:
        profiles = pd.Index(labels.loc[labels["as_of"] == snapshot, "profile_id"])
        frames.append(build_features_fn(events, snapshot, profiles, spec, plan, attributes=attributes, **keyword))
    return labels, frames


class FitClock:
    """Adds up the time spent fitting BG/NBD (``customer_ai.bgnbd.fit_bgnbd``) while it is installed."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._fit = customer_ai.bgnbd.fit_bgnbd

    def __enter__(self) -> FitClock:
        def timed(*args: object, **kwargs: object) -> object:
            started = time.perf_counter()
            try:
                return self._fit(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        customer_ai.bgnbd.fit_bgnbd = timed
        return self

    def __exit__(self, *exc: object) -> None:
        customer_ai.bgnbd.fit_bgnbd = self._fit


def main() -> None:
    """Run the benchmark and print one block per size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-reference", action="store_true", help="time the current code only")
    args = parser.parse_args()
    import feature_reference as reference  # noqa: PLC0415 - lives in tests/

    as_of = pd.Timestamp(START, tz="UTC") + pd.Timedelta(days=DAYS)
    for size in args.profiles:
        started = time.perf_counter()
        events, attributes = generate_events(size, seed=args.seed, start=START, days=DAYS)
        attributes = attributes.set_index("profile_id")
        made = time.perf_counter() - started
        spec = parse_spec(instance_spec(size, start=START, days=DAYS), source="bench.yaml", base_dir=ROOT)
        snapshots = PropensityModel(spec).plan(events, as_of).snapshots
        print(
            f"{size:,} profiles, {len(events):,} events (generated in {made:.1f} s), {len(snapshots)} snapshots, "
            f"as of {as_of:%Y-%m-%d}",
            flush=True,
        )
        runs = {"columnar": (build_labels, build_features, True)}
        if not args.no_reference:
            runs["reference"] = (reference.build_labels, reference.build_features, False)
        timings: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
        outputs = {}
        for _ in range(args.repeats):
            for name, (labels_fn, features_fn, encoded) in runs.items():
                with FitClock() as clock:
                    started = time.perf_counter()
                    outputs[name] = training_rows(
                        labels_fn, features_fn, events, attributes, spec, as_of, encoded=encoded
                    )
                    timings[name].append((time.perf_counter() - started, clock.seconds))
        for name, runs_seconds in timings.items():
            total = statistics.median(t for t, _ in runs_seconds)
            fitting = statistics.median(f for _, f in runs_seconds)
            shown = ", ".join(f"{t:.2f}" for t, _ in runs_seconds)
            print(
                f"  {name:9s} median {total:7.2f} s ({shown}): {len(events) / total:>10,.0f} events/s; "
                f"BG/NBD fits {fitting:.2f} s, the rest {total - fitting:.2f} s "
                f"({len(events) / (total - fitting):,.0f} events/s)",
                flush=True,
            )
        if "reference" in outputs:
            (labels, frames), (old_labels, old_frames) = outputs["columnar"], outputs["reference"]
            pd.testing.assert_frame_equal(labels, old_labels, check_exact=True)
            for new, old in zip(frames, old_frames, strict=True):
                pd.testing.assert_frame_equal(new, old, check_exact=True)
            new_total = statistics.median(t for t, _ in timings["columnar"])
            old_total = statistics.median(t for t, _ in timings["reference"])
            new_rest = statistics.median(t - f for t, f in timings["columnar"])
            old_rest = statistics.median(t - f for t, f in timings["reference"])
            print(
                f"  identical outputs; columnar is {old_total / new_total:.1f}x faster "
                f"({old_rest / new_rest:.1f}x outside the BG/NBD fits)",
                flush=True,
            )


if __name__ == "__main__":
    main()
