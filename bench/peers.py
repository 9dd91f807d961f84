"""Benchmark: labels + features side by side with composeml + featuretools, on the same events, in one run.

Usage: ``.venv/bin/python bench/peers.py [--profiles 10000 100000] [--repeats N] [--peer-repeats N]``.

For each size it reads the generated log of ``bench/generate.py`` from ``var/bench/data/<size>`` (``10k``,
``100k``; written there first when missing) and its instance (will a customer who bought in the last 365 days buy
again within 30 days; 6 snapshots), then, alternating in one process tree:

- **ours**: the labels and every snapshot's feature matrix as ``PropensityModel.build_training_set`` builds them
  (``bench/features.py``'s ``training_rows``), the BG/NBD fits inside timed apart;
- **the peers**, in their own virtualenv (``var/bench/peers-venv``, built on first use from
  ``bench/requirements-peers.txt``) and a subprocess: composeml's ``LabelMaker`` for the same goal at the same
  snapshots (every profile kept, ``drop_empty=False``), the same eligibility (a purchase in the lookback) on its
  label times, then featuretools' ``calculate_feature_matrix`` with those label times as cutoff times, one call
  per count window (``training_window``), with features spelled out to reproduce ours (see docs/benchmarks.md
  for the mapping and what featuretools cannot express).

Both sides start from the events in memory (loading is not timed).  The two outputs are then compared: label rows
at every snapshot, and every feature both compute, row by row.  Prints the median seconds of each side, events
per second, and the ratio; writes everything to ``var/bench/peers-<time>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / "var" / "bench" / "peers-venv"
REQUIREMENTS = ROOT / "bench" / "requirements-peers.txt"
DATA = ROOT / "var" / "bench" / "data"
DAY_S = 86_400.0
# our feature -> its tolerance when compared with the peer's (counts exact; days and money to rounding)
_EXACT, _DAYS, _MONEY = 0.0, 1e-6, 1e-9


# ---------------------------------------------------------------- the peers' virtualenv


def peer_python(venv: Path = VENV, requirements: Path = REQUIREMENTS) -> Path:
    """Return the peers' interpreter, building ``venv`` from ``requirements`` first when missing or stale.

    The requirements' digest is kept in the virtualenv; another digest rebuilds it from scratch.
    """
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    marker, python = venv / "requirements.sha256", venv / "bin" / "python"
    if marker.exists() and marker.read_text().strip() == digest and python.exists():
        return python
    print(f"building {venv.relative_to(ROOT)} from {requirements.relative_to(ROOT)} ...", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(requirements)], check=True)
    marker.write_text(digest + "\n")
    return python


# ---------------------------------------------------------------- the peer side (runs in the peers' virtualenv)


def _evenly_spaced_runs(snapshots: list[pd.Timestamp]) -> list[tuple[pd.Timestamp, pd.Timestamp, int]]:
    """Split sorted dates into runs of equal spacing: ``(first, last, spacing in days)`` each (0 alone)."""
    runs: list[list[pd.Timestamp]] = []
    for date in snapshots:
        run = runs[-1] if runs else None
        if run and (len(run) == 1 or date - run[-1] == run[1] - run[0]):
            run.append(date)
        else:
            runs.append([date])
    return [(r[0], r[-1], (r[1] - r[0]).days if len(r) > 1 else 0) for r in runs]


def peer_labels(events: pd.DataFrame, job: dict) -> pd.DataFrame:
    """Label times with composeml: every profile at every snapshot, then the eligible ones.

    ``LabelMaker`` slices each profile's events into the goal window after each cutoff time and calls the
    labeling function on it; ``drop_empty=False`` keeps the profiles without events in the window (the
    negatives).  composeml takes one gap per search, so evenly spaced snapshots make one search each.
    Eligibility (a purchase in ``[T - lookback, T)``) is outside what a labeling function sees (only the window
    after ``T``), so it is a backward as-of join of each label time to the profile's last purchase before it.
    """
    import composeml as cp  # noqa: PLC0415 - installed in the peers' virtualenv only

    goal_type, window = job["goal_event_type"], job["goal_window_days"]

    def reached(window_events: pd.DataFrame) -> bool:
        return bool((window_events["event_type"] == goal_type).any())

    maker = cp.LabelMaker(
        target_dataframe_index="profile_id",
        time_index="timestamp",
        labeling_function=reached,
        window_size=f"{window}d",
    )
    snapshots = sorted(pd.Timestamp(s) for s in job["snapshots"])
    found = []
    for first, last, gap in _evenly_spaced_runs(snapshots):
        count = (last - first).days // gap + 1 if gap else 1
        found.append(
            maker.search(
                events,
                num_examples_per_instance=count,
                minimum_data=str(first),
                maximum_data=str(last + pd.Timedelta(days=window)),
                gap=f"{gap}d" if gap else f"{window}d",
                drop_empty=False,
                verbose=False,
            )
        )
    times = pd.concat([pd.DataFrame(f) for f in found], ignore_index=True)
    times = times.loc[times["time"].isin(snapshots)].rename(columns={"reached": "label"})
    purchases = events.loc[events["event_type"] == job["eligible_event_type"], ["profile_id", "timestamp"]]
    joined = pd.merge_asof(
        times.sort_values("time"),
        purchases.sort_values("timestamp").rename(columns={"timestamp": "last_purchase"}),
        left_on="time",
        right_on="last_purchase",
        by="profile_id",
        allow_exact_matches=False,  # strictly before the cutoff
    )
    eligible = joined["last_purchase"] >= joined["time"] - pd.Timedelta(days=job["eligibility_lookback_days"])
    labels = joined.loc[eligible, ["profile_id", "time", "label"]]
    return labels.sort_values(["time", "profile_id"], ignore_index=True).astype({"label": "int8"})


def _entityset(events: pd.DataFrame, attributes: pd.DataFrame, job: dict) -> object:
    """Return the featuretools EntitySet: customers, their events, and their active days (one row per day)."""
    import featuretools as ft  # noqa: PLC0415 - installed in the peers' virtualenv only

    events = events.assign(
        large_purchase=(events["event_type"] == job["goal_event_type"]) & (events["value"] >= job["large_value"]),
        day=events["timestamp"].dt.floor("D"),
    )
    days = events.groupby(["profile_id", "day"], sort=False, observed=True)["event_type"].agg(
        lambda types: (types == job["goal_event_type"]).any()
    )
    days = days.rename("purchased").reset_index()
    es = ft.EntitySet("log")
    es.add_dataframe(
        dataframe_name="customers",
        dataframe=attributes.reset_index()[["profile_id", "country"]],
        index="profile_id",
        logical_types={"profile_id": "Categorical", "country": "Categorical"},  # all given: no type inference
    )
    es.add_dataframe(
        dataframe_name="events",
        dataframe=events.drop(columns="day"),
        index="event_id",
        make_index=True,
        time_index="timestamp",
        logical_types={
            "profile_id": "Categorical",
            "timestamp": "Datetime",
            "event_type": "Categorical",
            "value": "Double",
            "large_purchase": "Boolean",
        },
    )
    es.add_dataframe(
        dataframe_name="active_days",
        dataframe=days,
        index="day_id",
        make_index=True,
        time_index="day",
        logical_types={"profile_id": "Categorical", "day": "Datetime", "purchased": "Boolean"},
    )
    es.add_relationship("customers", "profile_id", "events", "profile_id")
    es.add_relationship("customers", "profile_id", "active_days", "profile_id")
    return es


def _peer_feature_sets(es: object, job: dict) -> dict[str, dict[str, object]]:
    """Return per training window (days) our feature name -> featuretools feature."""
    import featuretools as ft  # noqa: PLC0415 - installed in the peers' virtualenv only
    from featuretools.primitives import (  # noqa: PLC0415
        AvgTimeBetween,
        Count,
        Mean,
        Sum,
        TimeSinceFirst,
        TimeSinceLast,
    )

    events, days = es["events"].ww, es["active_days"].ww  # type: ignore[index]

    def agg(column: object, primitive: object, where: object = None) -> object:
        return ft.Feature(column, parent_dataframe_name="customers", primitive=primitive, where=where)

    sources = {t: ft.Feature(events["event_type"]) == t for t in job["event_types"]}
    sources["large_purchase"] = ft.Feature(events["large_purchase"])
    lookback = job["lookback_days"]
    sets: dict[int, dict[str, object]] = {}
    for window in job["count_windows"]:
        sets[window] = {f"{s}_count_{window}d": agg(events["event_id"], Count, where) for s, where in sources.items()}
        sets[window][f"event_count_{window}d"] = agg(events["event_id"], Count)  # for the activity ratios
    whole = sets[lookback]
    for source, where in sources.items():
        whole[f"{source}_days_since_last"] = agg(events["timestamp"], TimeSinceLast(unit="days"), where)
        whole[f"{source}_days_since_first"] = agg(events["timestamp"], TimeSinceFirst(unit="days"), where)
        if source in job["valued_sources"]:
            whole[f"{source}_value_sum"] = agg(events["value"], Sum, where)
            whole[f"{source}_value_mean"] = agg(events["value"], Mean, where)
    whole["tenure_days"] = agg(events["timestamp"], TimeSinceFirst(unit="days"))
    whole["days_since_last_event"] = agg(events["timestamp"], TimeSinceLast(unit="days"))
    whole["active_days"] = agg(days["day_id"], Count)
    whole["gap_mean_days"] = agg(days["day"], AvgTimeBetween(unit="days"))
    whole["profile_country"] = ft.Feature(es["customers"].ww["country"])  # type: ignore[index]
    purchased = ft.Feature(days["purchased"])
    whole["goal_purchase_days"] = agg(days["day_id"], Count, purchased)
    whole["goal_days_since_first"] = agg(days["day"], TimeSinceFirst(unit="days"), purchased)
    return sets


def peer_features(events: pd.DataFrame, attributes: pd.DataFrame, labels: pd.DataFrame, job: dict) -> pd.DataFrame:
    """Return featuretools' feature matrix at composeml's label times, indexed by (profile_id, as_of)."""
    import featuretools as ft  # noqa: PLC0415 - installed in the peers' virtualenv only

    es = _entityset(events, attributes, job)
    cutoffs = labels[["profile_id", "time"]]
    frames = []
    for window, features in _peer_feature_sets(es, job).items():
        matrix = ft.calculate_feature_matrix(
            list(features.values()),
            entityset=es,
            cutoff_time=cutoffs,
            cutoff_time_in_index=True,
            training_window=f"{window} days",
            include_cutoff_time=False,  # features see [T - window, T), as ours
            verbose=False,
        )
        matrix.columns = list(features)
        frames.append(matrix)
    matrix = pd.concat(frames, axis=1)
    matrix["goal_repeat_days"] = (matrix.pop("goal_purchase_days") - 1).clip(lower=0)
    windows, lookback = job["count_windows"], job["lookback_days"]
    points = [w for w in (30, 90) if w < lookback] + [lookback]
    for recent, longer in zip(points, points[1:], strict=False):
        total = matrix[f"event_count_{longer}d"].astype("float64")
        matrix[f"activity_ratio_{recent}_{longer}"] = matrix[f"event_count_{recent}d"] / total.where(total > 0)
    matrix = matrix.drop(columns=[f"event_count_{w}d" for w in windows])
    matrix.index = matrix.index.set_names(["profile_id", "as_of"])
    return matrix


def peer_main(job_path: Path) -> None:
    """Run the peers on the job's events, ``job["repeats"]`` times; write outputs and timings beside the job."""
    # featuretools 1.31 on pandas 2.2 warns in every group-by, and about training windows without a last time
    # index, which only dataframes with children have (ours have none)
    warnings.simplefilter("ignore")
    job = json.loads(job_path.read_text())
    events = pd.read_parquet(job["events"], columns=["profile_id", "timestamp", "event_type", "value"])
    events["timestamp"] = events["timestamp"].dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[ns]")
    events = events.sort_values("timestamp", kind="stable", ignore_index=True)
    attributes = pd.read_parquet(job["profiles"]).set_index("profile_id")
    timings = []
    for _ in range(job["repeats"]):
        started = time.perf_counter()
        labels = peer_labels(events, job)
        labelled = time.perf_counter()
        matrix = peer_features(events, attributes, labels, job)
        done = time.perf_counter()
        timings.append({"labels": labelled - started, "features": done - labelled, "total": done - started})
        print(f"    peers run: {done - started:.1f} s", file=sys.stderr, flush=True)
    labels.to_parquet(job_path.with_name("peer_labels.parquet"))
    matrix.reset_index().to_parquet(job_path.with_name("peer_features.parquet"))
    import composeml  # noqa: PLC0415
    import featuretools  # noqa: PLC0415

    versions = {"composeml": composeml.__version__, "featuretools": featuretools.__version__, "pandas": pd.__version__}
    versions["numpy"] = np.__version__
    job_path.with_name("peer_timings.json").write_text(json.dumps({"timings": timings, "versions": versions}))


# ---------------------------------------------------------------- our side and the comparison


def _dataset(profiles: int, seed: int) -> Path:
    """Return ``var/bench/data/<10k|100k|...>``, written with ``bench/generate.py`` unless it is there."""
    label = f"{profiles // 1_000_000}M" if profiles % 1_000_000 == 0 else f"{profiles // 1000}k"
    folder = DATA / (label if profiles % 1000 == 0 and seed == 0 else f"{profiles}-seed{seed}")
    if not (folder / "events.parquet").exists() or not (folder / "profiles.parquet").exists():
        from bench.generate import write_dataset  # noqa: PLC0415

        write_dataset(folder, profiles, seed=seed)
    return folder


def _job(folder: Path, spec: object, plan: object, feature_plan: object, repeats: int) -> dict:
    """Return what the peer side needs: the files, the snapshots and the windows of our run of the instance."""
    from customer_ai.features import count_windows  # noqa: PLC0415

    goal = [w for p in spec.goal.events for w in p.where]  # type: ignore[attr-defined]
    eligible = [w for p in spec.eligibility.events for w in p.where]  # type: ignore[attr-defined]
    large = next(c for c in spec.custom_events if c.name == "large_purchase")  # type: ignore[attr-defined]
    threshold = next(w.value for w in large.where if w.field == "value")
    if [(w.field, w.op) for w in goal + eligible] != [("event_type", "eq")] * 2:
        raise SystemExit("the peer side reproduces a goal and an eligibility of one event type only")
    return {
        "events": str(folder / "events.parquet"),
        "profiles": str(folder / "profiles.parquet"),
        "snapshots": [s.tz_localize(None).isoformat() for s in plan.snapshots],  # type: ignore[attr-defined]
        "goal_event_type": goal[0].value,
        "goal_window_days": spec.goal.window_days,  # type: ignore[attr-defined]
        "eligible_event_type": eligible[0].value,
        "eligibility_lookback_days": spec.eligibility.lookback_days,  # type: ignore[attr-defined]
        "lookback_days": plan.lookback_days,  # type: ignore[attr-defined]
        "count_windows": count_windows(plan.lookback_days),  # type: ignore[attr-defined]
        "event_types": feature_plan.event_types,  # type: ignore[attr-defined]
        "valued_sources": feature_plan.valued_sources,  # type: ignore[attr-defined]
        "large_value": threshold,
        "repeats": repeats,
    }


def _agree(ours: pd.Series, theirs: pd.Series, tolerance: float) -> np.ndarray:
    """Return per row whether two values agree: both missing, or equal within ``tolerance`` (relative for money)."""
    a, b = ours.to_numpy(dtype="float64"), theirs.to_numpy(dtype="float64")
    both_missing = np.isnan(a) & np.isnan(b)
    scale = np.maximum(np.abs(a), 1.0) if tolerance == _MONEY else 1.0
    with np.errstate(invalid="ignore"):
        return both_missing | (np.abs(a - b) <= tolerance * scale)


def compare(labels: pd.DataFrame, frames: list[pd.DataFrame], peer_labels: pd.DataFrame, peer: pd.DataFrame) -> dict:
    """Return the agreement of the two sides: label rows per snapshot and, per shared feature, agreeing rows."""
    ours_labels = labels.assign(as_of=labels["as_of"].dt.tz_localize(None))
    theirs = peer_labels.rename(columns={"time": "as_of"})
    per_snapshot = {}
    for as_of, group in ours_labels.groupby("as_of"):
        other = theirs.loc[theirs["as_of"] == as_of]
        same = group.merge(other, on=["profile_id", "as_of", "label"], how="inner")
        per_snapshot[f"{as_of:%Y-%m-%d}"] = {
            "ours": [len(group), int(group["label"].sum())],
            "peers": [len(other), int(other["label"].sum())],
            "identical": len(same) == len(group) == len(other),
        }
    matrix = pd.concat(
        [f.assign(as_of=as_of["as_of"].iloc[0]) for f, as_of in zip(frames, _snapshot_groups(ours_labels), strict=True)]
    )
    matrix = matrix.reset_index().set_index(["profile_id", "as_of"])
    peer = peer.assign(profile_id=peer["profile_id"].astype(str)).set_index(["profile_id", "as_of"])
    peer = peer.reindex(matrix.index)
    features = {}
    for name in peer.columns:
        if name == "profile_country":
            agree = (matrix[name].astype(str) == peer[name].astype(str)).to_numpy()
        else:
            tolerance = _EXACT if "count" in name or name in ("active_days", "goal_repeat_days") else _DAYS
            tolerance = _MONEY if "value" in name or name.startswith("activity_ratio") else tolerance
            agree = _agree(matrix[name], peer[name], tolerance)
        # featuretools' Sum of no values is 0 where ours (pandas' sum with min_count=1) is missing
        zero_for_missing = np.zeros_like(agree)
        if name.endswith("_value_sum"):
            zero_for_missing = _agree(matrix[name], peer[name].where(peer[name] != 0), _EXACT) & ~agree
        features[name] = [int(agree.sum()), len(agree), int(zero_for_missing.sum())]
    return {"labels": per_snapshot, "features": features, "ours_only": sorted(set(matrix.columns) - set(peer.columns))}


def _snapshot_groups(labels: pd.DataFrame) -> list[pd.DataFrame]:
    """Return the label rows of each snapshot in the order ``training_rows`` builds its frames (labels' order)."""
    return [group for _, group in labels.groupby("as_of", sort=False)]


def _ours(folder: Path, size: int) -> tuple:
    """Load the events and instance; return what our side needs, with the snapshot and feature plans."""
    from bench.generate import instance_spec  # noqa: PLC0415
    from customer_ai.estimator import PropensityModel  # noqa: PLC0415
    from customer_ai.events import load_event_file, load_profiles  # noqa: PLC0415
    from customer_ai.features import plan_features  # noqa: PLC0415
    from customer_ai.spec import parse_spec  # noqa: PLC0415

    events = load_event_file(folder / "events.parquet")
    attributes = load_profiles(folder / "profiles.parquet", ["country"])
    spec = parse_spec(instance_spec(size), source="instance.yaml", base_dir=folder)
    as_of = events["timestamp"].max().normalize() + pd.Timedelta(days=1)
    plan = PropensityModel(spec).plan(events, as_of)
    feature_plan = plan_features(events, spec, plan.training[-1], attributes, lookback_days=plan.lookback_days)
    return events, attributes, spec, as_of, plan, feature_plan


def _time_ours(events: pd.DataFrame, attributes: pd.DataFrame, spec: object, as_of: pd.Timestamp) -> tuple:
    """Run our labels + features once (``bench/features.py``'s ``training_rows``); return outputs and seconds."""
    from bench.features import FitClock, training_rows  # noqa: PLC0415
    from customer_ai.features import build_features  # noqa: PLC0415
    from customer_ai.labels import build_labels  # noqa: PLC0415

    with FitClock() as clock:
        started = time.perf_counter()
        labels, frames = training_rows(build_labels, build_features, events, attributes, spec, as_of, encoded=True)
        seconds = time.perf_counter() - started
    return labels, frames, seconds, clock.seconds


def _git_commit() -> str:
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False)
    return done.stdout.strip()


def run_size(size: int, args: argparse.Namespace, python: Path) -> dict:  # noqa: PLR0914 - one report per size
    """Run both sides on one size, alternating, and return the measurements and the agreement."""
    folder = _dataset(size, args.seed)
    events, attributes, spec, as_of, plan, feature_plan = _ours(folder, size)
    repeats = args.repeats or 3
    peer_repeats = args.peer_repeats or args.repeats or (3 if size <= 10_000 else 1)
    print(
        f"{size:,} profiles, {len(events):,} events ({folder.relative_to(ROOT)}), {len(plan.snapshots)} snapshots, "
        f"as of {as_of:%Y-%m-%d}; ours x{repeats}, peers x{peer_repeats}",
        flush=True,
    )
    ours: list[tuple[float, float]] = []
    peer_runs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="peers-") as scratch:
        for repeat in range(max(repeats, peer_repeats)):
            if repeat < repeats:
                labels, frames, seconds, fitting = _time_ours(events, attributes, spec, as_of)
                ours.append((seconds, fitting))
                print(f"    ours run: {seconds:.2f} s (BG/NBD fits {fitting:.2f} s)", flush=True)
            if repeat < peer_repeats:
                job_path = Path(scratch) / "job.json"
                job_path.write_text(json.dumps(_job(folder, spec, plan, feature_plan, 1)))
                subprocess.run([str(python), __file__, "--peer-job", str(job_path)], check=True)
                peer_runs += json.loads((Path(scratch) / "peer_timings.json").read_text())["timings"]
        versions = json.loads((Path(scratch) / "peer_timings.json").read_text())["versions"]
        peer_labels_frame = pd.read_parquet(Path(scratch) / "peer_labels.parquet")
        peer_matrix = pd.read_parquet(Path(scratch) / "peer_features.parquet")
    agreement = compare(labels, frames, peer_labels_frame, peer_matrix)
    result = ours_summary(size, events, plan.snapshots, ours)
    ours_total, ours_rest = result["ours_median"], result["ours_median_without_bgnbd"]
    peer_total = statistics.median(r["total"] for r in peer_runs)
    result |= {
        "peer_seconds": [{k: round(v, 2) for k, v in r.items()} for r in peer_runs],
        "peer_median": round(peer_total, 2),
        "ratio": round(peer_total / ours_total, 1),
        "ratio_without_bgnbd": round(peer_total / ours_rest, 1),
        "peer_versions": versions,
        "agreement": agreement,
    }
    _print_result(result)
    return result


def ours_summary(size: int, events: pd.DataFrame, snapshots: list, ours: list[tuple[float, float]]) -> dict:
    """Return the size, the snapshots and our runs' seconds (each ``(total, BG/NBD fits)``) with their medians."""
    return {
        "profiles": size,
        "events": len(events),
        "snapshots": [f"{s:%Y-%m-%d}" for s in snapshots],
        "ours_seconds": [round(t, 3) for t, _ in ours],
        "ours_bgnbd_seconds": [round(f, 3) for _, f in ours],
        "ours_median": round(statistics.median(t for t, _ in ours), 3),
        "ours_median_without_bgnbd": round(statistics.median(t - f for t, f in ours), 3),
    }


def _print_result(result: dict) -> None:
    n = result["events"]
    peer_labels = statistics.median(r["labels"] for r in result["peer_seconds"])
    peer_features = statistics.median(r["features"] for r in result["peer_seconds"])
    print(
        f"  ours  median {result['ours_median']:8.2f} s: {n / result['ours_median']:>10,.0f} events/s "
        f"({result['ours_median_without_bgnbd']:.2f} s, {n / result['ours_median_without_bgnbd']:,.0f} events/s "
        f"outside the BG/NBD fits, which the peers do not do)\n"
        f"  peers median {result['peer_median']:8.2f} s: {n / result['peer_median']:>10,.0f} events/s "
        f"(composeml labels {peer_labels:.1f} s, featuretools features {peer_features:.1f} s)\n"
        f"  ratio {result['ratio']:.1f}x ({result['ratio_without_bgnbd']:.1f}x outside our BG/NBD fits)",
        flush=True,
    )
    for as_of, counts in result["agreement"]["labels"].items():
        verdict = "identical" if counts["identical"] else "DIFFERENT"
        print(f"  labels {as_of}: ours {counts['ours']}, peers {counts['peers']} (rows, positives): {verdict}")
    for name, (agreeing, rows, zero_for_missing) in result["agreement"]["features"].items():
        flag = "" if agreeing + zero_for_missing == rows else "   <-- differs"
        zeros = f" + {zero_for_missing:,} where ours is missing and featuretools' Sum is 0" if zero_for_missing else ""
        print(f"  {name:34s} {agreeing:>9,} of {rows:,} rows agree{zeros}{flag}")
    print(f"  ours only (no featuretools equivalent): {', '.join(result['agreement']['ours_only'])}", flush=True)


def main() -> None:
    """Run the side-by-side benchmark, or (``--peer-job``) the peer side of one size in the peers' virtualenv."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeats", type=int, help="runs of each side (default: ours 3, peers 3 up to 10k, else 1)")
    parser.add_argument("--peer-repeats", type=int, help="runs of the peers, when other than --repeats")
    parser.add_argument("--seed", type=int, default=0, help="seed of a generated data set (default 0)")
    parser.add_argument("--peer-job", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer_job is not None:
        peer_main(args.peer_job)
        return
    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # bench.features imports the reference code from tests/
    python = peer_python()
    write_results("peers", [run_size(size, args, python) for size in args.profiles])


def write_results(kind: str, results: list[dict]) -> None:
    """Write ``results`` with the git commit to ``var/bench/<kind>-<time>.json`` and say where."""
    out = ROOT / "var" / "bench" / f"{kind}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps({"commit": _git_commit(), "results": results}, indent=2, default=str))
    print(f"written {out.relative_to(ROOT)}", flush=True)


if __name__ == "__main__":
    main()
