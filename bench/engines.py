"""Benchmark: labels + features with DuckDB and Polars against ours, on the same events, in one run.

Usage: ``.venv/bin/python bench/engines.py --profiles 10000 100000`` (options: ``--repeats N``, ``--threads 1 2``,
``--engines duckdb polars``, ``--forms one-pass per-snapshot``, ``--polars-ids categorical|string``).

For each size it reads the generated log of ``bench/generate.py`` from ``var/bench/data/<size>`` (``10k``,
``100k``; written there first when missing) and its instance (will a customer who bought in the last 365 days buy
again within 30 days; 6 snapshots, a 228-day feature lookback), then, alternating in one process tree:

- **ours**: the labels and every snapshot's feature matrix as ``PropensityModel.build_training_set`` builds them
  (``bench/features.py``'s ``training_rows``, one thread), the BG/NBD fits inside timed apart;
- **DuckDB**: one SQL query for all snapshots (``one-pass``: the events joined to the snapshot dates by their
  windows, then grouped by profile and date), or the same query once per snapshot (``per-snapshot``);
- **Polars**: the same plan in lazy expressions (``join_where`` of the events to the snapshot dates, then
  ``group_by`` on profile and date), collected once, or once per snapshot; the profile ids cast to ``Categorical``
  inside the timed plan (``--polars-ids string`` keeps the strings).

Each engine run is a subprocess of the engines' virtualenv (``var/bench/engines-venv``, built on first use from
``bench/requirements-engines.txt``, never in the product's dependencies), with 1 thread (DuckDB ``SET threads``,
``POLARS_MAX_THREADS`` in its environment) and with 2.  Loading is not timed on any side: the engine's process reads
the events from Parquet straight into the engine's own form (a DuckDB table, a Polars frame; profile ids as
strings, timestamps in UTC; no pandas frame is converted in any run), then times the query up to the engine's
result (an Arrow table, a Polars frame).  Each run reports the process's memory: resident after loading, and its
peak (``VmHWM``) before and after the timed part.

The engines compute the features featuretools computes in ``bench/peers.py`` (counts per source in the count
windows, days since the last / first per source, value sums and means, tenure, days since the last event, active
days, the mean gap between active days, the activity ratios, country, and the two goal counts);
not BG/NBD nor the standard deviation of gaps.  Their outputs are compared with ours row by row (``peers.compare``:
labels per snapshot, counts exactly, days within 1e-6, money within 1e-9 relative).  Prints per size each side's
median seconds, events per second and the ratios; writes everything to ``var/bench/engines-<time>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.peers import _dataset, _job, _ours, _time_ours, compare, ours_summary, peer_python, write_results  # noqa: E402

VENV = ROOT / "var" / "bench" / "engines-venv"
REQUIREMENTS = ROOT / "bench" / "requirements-engines.txt"
ENGINES = ("duckdb", "polars")
FORMS = ("one-pass", "per-snapshot")
DAY_US = 86_400_000_000


# ---------------------------------------------------------------- what both engines compute (pure helpers)


def sources(job: dict) -> dict[str, tuple[str, float | None]]:
    """Return the feature sources: name -> (event type, the least value or None), as ``peers.py`` defines them.

    Every event type of the feature plan is a source, and ``large_purchase`` is a goal event with a value of at
    least ``job["large_value"]``.
    """
    found: dict[str, tuple[str, float | None]] = {t: (t, None) for t in job["event_types"]}
    found["large_purchase"] = (job["goal_event_type"], float(job["large_value"]))
    return found


def ratio_pairs(lookback: int) -> list[tuple[int, int]]:
    """Return the (recent, longer) windows in days of the activity ratios: 30 of 90, 90 of the lookback."""
    points = [w for w in (30, 90) if w < lookback] + [lookback]
    return list(zip(points, points[1:], strict=False))


def count_names(job: dict) -> list[str]:
    """Return the names of the features that are counts (0 where a profile has no such events)."""
    return [f"{s}_count_{w}d" for s in sources(job) for w in job["count_windows"]] + ["active_days"]


def _literal(value: object) -> str:
    """Return ``value`` as a SQL literal: text quoted (quotes doubled), numbers as they print."""
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(float(value))


def _condition(event_type: str, least: float | None, alias: str = "w") -> str:
    text = f"{alias}.event_type = {_literal(event_type)}"
    return text if least is None else f"{text} AND {alias}.value >= {_literal(least)}"


def duckdb_sql(job: dict, snapshots: list[str]) -> str:
    """Return the DuckDB query of the labels and features of ``job`` at ``snapshots`` (ISO dates at midnight).

    The events are in a table ``events (profile_id, timestamp, event_type, value)`` (timestamps in UTC, without a
    time zone) and the profiles in ``profiles (profile_id, country)``.  The snapshot dates are a ``VALUES`` list:
    every event is joined to each date whose window holds it, so one query covers all of them.  Windows are
    half-open, ``[T - w days, T)``: an event at exactly ``T - w`` is inside, one at ``T`` is not.  A day is the
    calendar day of the timestamp (the dates are midnights: an event at midnight starts its own day).
    """
    lookback, windows = job["lookback_days"], job["count_windows"]
    goal, eligible = _literal(job["goal_event_type"]), _literal(job["eligible_event_type"])
    dates = ", ".join(f"(TIMESTAMP {_literal(dt.datetime.fromisoformat(s).isoformat(sep=' '))})" for s in snapshots)
    columns, outer = [], []
    # ages in whole microseconds: window w is ``age_us <= w days`` (its first instant is exactly w days old),
    # integer comparisons instead of timestamp - interval arithmetic on every row for every window
    for name, (event_type, least) in sources(job).items():
        where = _condition(event_type, least)
        for w in windows:
            columns.append(f"count(*) FILTER (WHERE {where} AND w.age_us <= {w * DAY_US}) AS {name}_count_{w}d")
        columns.append(f"min(w.age_us) FILTER (WHERE {where}) / {DAY_US}.0 AS {name}_days_since_last")
        columns.append(f"max(w.age_us) FILTER (WHERE {where}) / {DAY_US}.0 AS {name}_days_since_first")
        if name in job["valued_sources"]:
            columns.append(f"sum(w.value) FILTER (WHERE {where}) AS {name}_value_sum")
            columns.append(f"avg(w.value) FILTER (WHERE {where}) AS {name}_value_mean")
    columns += [
        f"max(w.age_us) / {DAY_US}.0 AS tenure_days",
        f"min(w.age_us) / {DAY_US}.0 AS days_since_last_event",
        "count(DISTINCT w.day) AS active_days",
        "date_diff('day', min(w.day), max(w.day)) / nullif(count(DISTINCT w.day) - 1, 0) AS gap_mean_days",
    ]
    for recent, longer in ratio_pairs(lookback):
        columns.append(
            f"count(*) FILTER (WHERE w.age_us <= {recent * DAY_US})"
            f" / nullif(count(*) FILTER (WHERE w.age_us <= {longer * DAY_US}), 0)"
            f" AS activity_ratio_{recent}_{longer}"
        )
    counts = set(count_names(job))
    for column in columns:
        name = column.rsplit(" AS ", 1)[1]
        outer.append(f"coalesce(f.{name}, 0) AS {name}" if name in counts else f"f.{name}")
    body = ",\n        ".join(columns)
    picked = ",\n    ".join(outer)
    return f"""WITH snapshots AS (SELECT * FROM (VALUES {dates}) AS s(as_of)),
labels AS (
    SELECT e.profile_id, s.as_of,
        bool_or(e.event_type = {goal} AND e.timestamp >= s.as_of)::TINYINT AS label
    FROM events AS e JOIN snapshots AS s
        ON e.timestamp >= s.as_of - INTERVAL {job["eligibility_lookback_days"]} DAY
        AND e.timestamp < s.as_of + INTERVAL {job["goal_window_days"]} DAY
    WHERE e.event_type IN ({goal}, {eligible})
    GROUP BY e.profile_id, s.as_of
    HAVING bool_or(e.event_type = {eligible} AND e.timestamp < s.as_of)
),
windowed AS (
    SELECT e.profile_id, e.event_type, e.value, s.as_of, e.timestamp::DATE AS day,
        date_diff('microsecond', e.timestamp, s.as_of) AS age_us
    FROM events AS e JOIN snapshots AS s
        ON e.timestamp >= s.as_of - INTERVAL {lookback} DAY AND e.timestamp < s.as_of
),
features AS (
    SELECT w.profile_id, w.as_of,
        {body}
    FROM windowed AS w
    GROUP BY w.profile_id, w.as_of
),
goal_days AS (SELECT DISTINCT profile_id, timestamp::DATE AS day FROM events WHERE event_type = {goal}),
goal AS (
    SELECT g.profile_id, s.as_of, count(*) - 1 AS goal_repeat_days,
        date_diff('day', min(g.day), s.as_of::DATE) AS goal_days_since_first
    FROM goal_days AS g JOIN snapshots AS s
        ON g.day < s.as_of::DATE AND g.day >= s.as_of::DATE - INTERVAL {lookback} DAY
    GROUP BY g.profile_id, s.as_of
)
SELECT l.profile_id, l.as_of, l.label,
    {picked},
    p.country AS profile_country,
    coalesce(g.goal_repeat_days, 0) AS goal_repeat_days, g.goal_days_since_first
FROM labels AS l
LEFT JOIN features AS f ON f.profile_id = l.profile_id AND f.as_of = l.as_of
LEFT JOIN goal AS g ON g.profile_id = l.profile_id AND g.as_of = l.as_of
LEFT JOIN profiles AS p ON p.profile_id = l.profile_id
"""


# ---------------------------------------------------------------- the engines' side (runs in their virtualenv)


def polars_plan(events: object, profiles: object, snapshots: list[dt.datetime], job: dict) -> object:
    """Return the Polars lazy frame of the labels and features of ``job`` at ``snapshots``, as :func:`duckdb_sql`.

    ``events`` and ``profiles`` are lazy frames with the columns of the DuckDB tables; the events are joined to the
    snapshot dates by their windows (``join_where``, an inequality join), then grouped by profile and date.
    """
    import polars as pl  # noqa: PLC0415 - installed in the engines' virtualenv only

    ts, as_of, kind, value = pl.col("timestamp"), pl.col("as_of"), pl.col("event_type"), pl.col("value")
    goal, eligible = job["goal_event_type"], job["eligible_event_type"]
    snaps = pl.LazyFrame({"as_of": snapshots}, schema={"as_of": pl.Datetime("us")})
    bounds = snaps.with_columns(
        low=as_of - pl.duration(days=job["eligibility_lookback_days"]),
        high=as_of + pl.duration(days=job["goal_window_days"]),
    )
    labels = (
        events.filter(kind.is_in([goal, eligible]))
        .join_where(bounds, ts >= pl.col("low"), ts < pl.col("high"))
        .group_by("profile_id", "as_of")
        .agg(
            eligible=((kind == eligible) & (ts < as_of)).any(),
            label=((kind == goal) & (ts >= as_of)).any().cast(pl.Int8),
        )
        .filter(pl.col("eligible"))
        .drop("eligible")
    )
    lookback = job["lookback_days"]
    windowed = events.join_where(
        snaps.with_columns(start=as_of - pl.duration(days=lookback)), ts >= pl.col("start"), ts < as_of
    ).with_columns(age_us=(as_of - ts).dt.total_microseconds(), day=ts.dt.date())
    age, day = pl.col("age_us"), pl.col("day")
    aggregations = []
    for name, (event_type, least) in sources(job).items():
        where = kind == event_type if least is None else (kind == event_type) & (value >= least)
        aggregations += [(where & (age <= w * DAY_US)).sum().alias(f"{name}_count_{w}d") for w in job["count_windows"]]
        aggregations += [
            (age.filter(where).min() / DAY_US).alias(f"{name}_days_since_last"),
            (age.filter(where).max() / DAY_US).alias(f"{name}_days_since_first"),
        ]
        if name in job["valued_sources"]:
            valued = value.filter(where)
            aggregations += [
                pl.when(valued.count() > 0).then(valued.sum()).alias(f"{name}_value_sum"),
                valued.mean().alias(f"{name}_value_mean"),
            ]
    active = day.n_unique()
    aggregations += [
        (age.max() / DAY_US).alias("tenure_days"),
        (age.min() / DAY_US).alias("days_since_last_event"),
        active.alias("active_days"),
        pl.when(active > 1).then((day.max() - day.min()).dt.total_days() / (active - 1)).alias("gap_mean_days"),
    ]
    for recent, longer in ratio_pairs(lookback):
        longer_count = (age <= longer * DAY_US).sum()
        aggregations.append(
            pl.when(longer_count > 0)
            .then((age <= recent * DAY_US).sum() / longer_count)
            .alias(f"activity_ratio_{recent}_{longer}")
        )
    features = windowed.group_by("profile_id", "as_of").agg(aggregations)
    goal_days = events.filter(kind == goal).select("profile_id", day=ts.dt.date()).unique()
    goal_features = (
        goal_days.join_where(
            snaps.with_columns(as_of_day=as_of.dt.date()).with_columns(
                start_day=pl.col("as_of_day") - pl.duration(days=lookback)
            ),
            day < pl.col("as_of_day"),
            day >= pl.col("start_day"),
        )
        .group_by("profile_id", "as_of")
        .agg(
            goal_repeat_days=pl.len() - 1,
            goal_days_since_first=(pl.col("as_of_day").first() - day.min()).dt.total_days(),
        )
    )
    return (
        labels.join(features, on=["profile_id", "as_of"], how="left")
        .with_columns(pl.col(count_names(job)).fill_null(0))
        .join(profiles.select("profile_id", profile_country="country"), on="profile_id", how="left")
        .join(goal_features, on=["profile_id", "as_of"], how="left")
        .with_columns(pl.col("goal_repeat_days").fill_null(0))  # no goal day in the lookback: none repeated
    )


def _status_mb(field: str) -> float:
    """Return a memory field of this process's ``/proc/self/status`` (``VmRSS``, ``VmHWM``) in MB (Linux).

    ``VmHWM``, the peak resident memory, belongs to the process's own address space; ``ru_maxrss`` would not do:
    Linux keeps it across ``execve``, so a subprocess would report the peak of the parent that forked it.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _rss_mb() -> float:
    return _status_mb("VmRSS")


def _peak_mb() -> float:
    return _status_mb("VmHWM")


def _read(job: dict) -> tuple[object, object]:
    """Return the job's events and profiles as Arrow tables, timestamps in UTC without a time zone."""
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    events = pq.read_table(job["events"], columns=["profile_id", "timestamp", "event_type", "value"])
    events = events.set_column(1, "timestamp", events["timestamp"].cast(pa.timestamp("us")))
    return events, pq.read_table(job["profiles"], columns=["profile_id", "country"])


def _memory(seconds: float, loaded: tuple[float, float]) -> dict:
    """Return the timing with the memory: RSS and peak RSS when the timed part began (after loading), peak at end."""
    return {"seconds": seconds, "rss_loaded_mb": loaded[0], "peak_before_mb": loaded[1], "peak_mb": _peak_mb()}


def _run_duckdb(job: dict, groups: list[list[str]]) -> tuple[object, dict]:
    import duckdb  # noqa: PLC0415 - installed in the engines' virtualenv only
    import pyarrow as pa  # noqa: PLC0415

    con = duckdb.connect()
    con.execute(f"SET threads = {int(job['threads'])}")
    events, profiles = _read(job)
    con.register("events_arrow", events)
    con.register("profiles_arrow", profiles)
    con.execute("CREATE TABLE events AS SELECT * FROM events_arrow")  # DuckDB's own storage, in memory
    con.execute("CREATE TABLE profiles AS SELECT * FROM profiles_arrow")
    con.unregister("events_arrow")
    con.unregister("profiles_arrow")
    del events, profiles  # the Arrow copies: only DuckDB's tables stay
    queries = [duckdb_sql(job, group) for group in groups]
    loaded = _rss_mb(), _peak_mb()
    started = time.perf_counter()
    result = pa.concat_tables([con.sql(query).to_arrow_table() for query in queries])
    return result, _memory(time.perf_counter() - started, loaded)


def _run_polars(job: dict, groups: list[list[str]]) -> tuple[object, dict]:
    import polars as pl  # noqa: PLC0415 - installed in the engines' virtualenv only

    events, profiles = _read(job)
    events_lazy, profiles_lazy = pl.from_arrow(events).lazy(), pl.from_arrow(profiles).lazy()
    del events, profiles
    if job.get("ids") == "categorical":  # cast in the plan: timed, as our encoding of the ids is
        events_lazy = events_lazy.with_columns(pl.col("profile_id").cast(pl.Categorical))
        profiles_lazy = profiles_lazy.with_columns(pl.col("profile_id").cast(pl.Categorical))
    plans = [
        polars_plan(events_lazy, profiles_lazy, [dt.datetime.fromisoformat(s) for s in group], job) for group in groups
    ]
    loaded = _rss_mb(), _peak_mb()
    started = time.perf_counter()
    result = pl.concat([plan.collect() for plan in plans])
    seconds = time.perf_counter() - started
    return result.to_arrow(), _memory(seconds, loaded)


def engine_main(job_path: Path) -> None:
    """Run one engine once on the job's events; write its output and its timing beside the job."""
    import duckdb  # noqa: PLC0415 - installed in the engines' virtualenv only
    import polars  # noqa: PLC0415
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    job = json.loads(job_path.read_text())
    if any(dt.datetime.fromisoformat(s).time() != dt.time() for s in job["snapshots"]):
        raise SystemExit("the engines' day arithmetic takes the snapshot dates at midnight")
    groups = [job["snapshots"]] if job["form"] == "one-pass" else [[s] for s in job["snapshots"]]
    run = {"duckdb": _run_duckdb, "polars": _run_polars}[job["engine"]]
    result, timing = run(job, groups)
    pq.write_table(result, job_path.with_name("engine_output.parquet"))
    versions = {"duckdb": duckdb.__version__, "polars": polars.__version__, "pyarrow": pa.__version__}
    job_path.with_name("engine_timing.json").write_text(json.dumps({"timing": timing, "versions": versions}))


# ---------------------------------------------------------------- our side, the runs and the comparison


def engine_python() -> Path:
    """Return the engines' interpreter, building ``var/bench/engines-venv`` first when missing or stale."""
    return peer_python(VENV, REQUIREMENTS)


def run_engine(python: Path, job: dict, scratch: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Run one engine once in a subprocess; return its labels, its feature matrix and its timing and versions.

    The labels have ``profile_id``, ``time`` and ``label`` and the matrix ``profile_id``, ``as_of`` and the
    features, as ``peers.compare`` takes them.
    """
    job_path = scratch / "job.json"
    job_path.write_text(json.dumps(job))
    environment = dict(os.environ, POLARS_MAX_THREADS=str(job["threads"]))  # read by Polars when it is imported
    subprocess.run([str(python), __file__, "--engine-job", str(job_path)], check=True, env=environment)
    output = pd.read_parquet(scratch / "engine_output.parquet")
    output["profile_id"] = output["profile_id"].astype(str)
    output["as_of"] = output["as_of"].astype("datetime64[ns]")
    labels = output[["profile_id", "as_of", "label"]].rename(columns={"as_of": "time"})
    matrix = output.drop(columns="label")
    return labels, matrix, json.loads((scratch / "engine_timing.json").read_text())


def compare_engine(
    labels: pd.DataFrame, frames: list[pd.DataFrame], engine_labels: pd.DataFrame, matrix: pd.DataFrame
) -> dict:
    """Return ``peers.compare`` of our outputs and an engine's, its dates first given the type of ours."""
    ours_as_of = labels["as_of"].dt.tz_localize(None).dtype
    engine_labels = engine_labels.assign(time=engine_labels["time"].astype(ours_as_of))
    return compare(labels, frames, engine_labels, matrix.assign(as_of=matrix["as_of"].astype(ours_as_of)))


def _configs(args: argparse.Namespace) -> list[tuple[str, str, int]]:
    return [(e, f, t) for e in args.engines for f in args.forms for t in args.threads]


def _key(engine: str, form: str, threads: int) -> str:
    return f"{engine} {form} {threads}t"


def run_size(size: int, args: argparse.Namespace, python: Path) -> dict:  # noqa: PLR0914 - one report per size
    """Run ours and every engine configuration on one size, alternating, and return the measurements."""
    folder = _dataset(size, args.seed)
    events, attributes, spec, as_of, plan, feature_plan = _ours(folder, size)
    base = _job(folder, spec, plan, feature_plan, 1)
    configs = _configs(args)
    print(
        f"{size:,} profiles, {len(events):,} events ({folder.relative_to(ROOT)}), {len(plan.snapshots)} snapshots, "
        f"as of {as_of:%Y-%m-%d}; {args.repeats} runs of ours and of each of {len(configs)} engine configurations",
        flush=True,
    )
    ours: list[tuple[float, float]] = []
    runs: dict[str, list[dict]] = {_key(*c): [] for c in configs}
    outputs: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = {}
    versions: dict = {}
    with tempfile.TemporaryDirectory(prefix="engines-") as scratch:
        for _ in range(args.repeats):
            labels, frames, seconds, fitting = _time_ours(events, attributes, spec, as_of)
            ours.append((seconds, fitting))
            print(f"    ours: {seconds:.2f} s (BG/NBD fits {fitting:.2f} s)", flush=True)
            for engine, form, threads in configs:
                job = {**base, "engine": engine, "form": form, "threads": threads, "ids": args.polars_ids}
                engine_labels, matrix, reported = run_engine(python, job, Path(scratch))
                key = _key(engine, form, threads)
                runs[key].append(reported["timing"])
                outputs[key] = (engine_labels, matrix)
                versions = reported["versions"]
                print(
                    f"    {key}: {reported['timing']['seconds']:.2f} s "
                    f"(peak RSS {reported['timing']['peak_mb']:,.0f} MB)",
                    flush=True,
                )
    agreement = {key: compare_engine(labels, frames, *output) for key, output in outputs.items()}
    result = ours_summary(size, events, plan.snapshots, ours)
    ours_total, ours_rest = result["ours_median"], result["ours_median_without_bgnbd"]
    engines = {}
    for key, timings in runs.items():
        median = statistics.median(t["seconds"] for t in timings)
        engines[key] = {
            "seconds": [round(t["seconds"], 3) for t in timings],
            "median": round(median, 3),
            "events_per_second": round(len(events) / median),
            "engine_over_ours": round(median / ours_total, 2),
            "engine_over_ours_without_bgnbd": round(median / ours_rest, 2),
            "peak_rss_mb": round(max(t["peak_mb"] for t in timings)),
            "rss_after_loading_mb": round(max(t["rss_loaded_mb"] for t in timings)),
            "peak_rss_while_loading_mb": round(max(t["peak_before_mb"] for t in timings)),
        }
    result |= {"engines": engines, "engine_versions": versions, "agreement": agreement}
    _print_result(result)
    return result


def _print_result(result: dict) -> None:
    n = result["events"]
    shown = ", ".join(f"{t:.2f}" for t in result["ours_seconds"])
    print(
        f"  {'ours (1 thread)':26s} median {result['ours_median']:7.2f} s ({shown}): "
        f"{n / result['ours_median']:>10,.0f} events/s; {result['ours_median_without_bgnbd']:.2f} s, "
        f"{n / result['ours_median_without_bgnbd']:,.0f} events/s outside the BG/NBD fits (the engines do not fit)",
        flush=True,
    )
    for key, measured in result["engines"].items():
        shown = ", ".join(f"{t:.2f}" for t in measured["seconds"])
        print(
            f"  {key:26s} median {measured['median']:7.2f} s ({shown}): {measured['events_per_second']:>10,} events/s;"
            f" {measured['engine_over_ours']:.2f}x ours' time ({measured['engine_over_ours_without_bgnbd']:.2f}x "
            f"outside our fits); peak RSS {measured['peak_rss_mb']:,} MB "
            f"({measured['rss_after_loading_mb']:,} MB after loading, "
            f"{measured['peak_rss_while_loading_mb']:,} MB at its peak)",
            flush=True,
        )
    for key, agreement in result["agreement"].items():
        labels = agreement["labels"]
        same = [d for d, counts in labels.items() if counts["identical"]]
        rows = sum(counts["ours"][0] for counts in labels.values())
        print(f"  {key}: labels identical at {len(same)} of {len(labels)} snapshots ({rows:,} rows)")
        for as_of, counts in labels.items():
            if not counts["identical"]:
                print(
                    f"    labels {as_of}: ours {counts['ours']}, engine {counts['peers']} (rows, positives): DIFFERENT"
                )
        features = agreement["features"]
        full = [name for name, (agreeing, total, _) in features.items() if agreeing == total]
        print(f"    {len(full)} of {len(features)} features agree on every row")
        for name, (agreeing, total, zero_for_missing) in features.items():
            if agreeing != total:
                zeros = (
                    f" ({zero_for_missing:,} where ours is missing and the engine's is 0)" if zero_for_missing else ""
                )
                print(f"    {name:34s} {agreeing:>9,} of {total:,} rows agree{zeros}   <-- differs")
    first = next(iter(result["agreement"].values()), None)
    if first is not None:
        print(f"  ours only (not computed by the engines): {', '.join(first['ours_only'])}", flush=True)


def main() -> None:
    """Run the benchmark, or (``--engine-job``) one engine run in the engines' virtualenv."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeats", type=int, default=3, help="runs of ours and of each engine (default 3)")
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    parser.add_argument("--forms", nargs="+", choices=FORMS, default=list(FORMS))
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="engine threads (default 1 and 2)")
    parser.add_argument(
        "--polars-ids",
        choices=["categorical", "string"],
        default="categorical",
        help="Polars' profile ids: cast to Categorical in the timed plan (default), or the strings as loaded",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of a generated data set (default 0)")
    parser.add_argument("--engine-job", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine_job is not None:
        engine_main(args.engine_job)
        return
    sys.path.insert(1, str(ROOT / "tests"))  # bench.features imports the reference code from tests/
    python = engine_python()
    write_results("engines", [run_size(size, args, python) for size in args.profiles])


if __name__ == "__main__":
    main()
