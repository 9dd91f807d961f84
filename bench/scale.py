"""Benchmark: a whole ``customer-ai run`` on synthetic logs of several sizes (wall time, peak memory, steps).

Usage: ``.venv/bin/python bench/scale.py [SIZES ...] [--repeats 3] [--store postgresql://127.0.0.1:5432/test]``
with sizes such as ``10k 100k 300k 1M`` (default ``10k 100k``).  For each size it generates (once, then reuses)
a data set with ``bench/generate.py`` under ``var/bench/data/<size>-seed<seed>/``, then runs
``customer-ai run instance.yaml --as-of <the day after the log> --home <fresh folder>`` as a subprocess, sampling
the resident memory of its whole process tree every 0.2 s and reading each step's time from the progress lines
on stderr (``... done in Xs``).  It prints a markdown row per size (medians over the repeats) and writes every
measurement as JSON to ``var/bench/scale-<time>.json``.

With ``--store postgresql://...`` every run writes to a fresh schema (``CUSTOMER_AI_STORE_SCHEMA``) that is
dropped afterwards.  With ``--commit REV`` the runs use the ``customer_ai`` package of that git commit (exported
with ``git archive`` to a temporary folder, first on ``PYTHONPATH``) instead of the working tree's, so a baseline
can be measured while the tree holds changes.
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import hashlib
import io
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import psutil
import psycopg2
import pyarrow.parquet as pq
from psycopg2 import sql

ROOT = Path(__file__).resolve().parents[1]
_STEP_DONE = re.compile(r"^\[customer-ai [^\]]*\] (?P<step>.+?) done in (?P<seconds>[0-9.]+)s")
_LOG_LINE = re.compile(r"^\[customer-ai (?P<time>[0-9]{2}:[0-9]{2}:[0-9]{2})\] (?P<message>.*)$")
_SIZE = re.compile(r"(?P<number>[0-9]+(?:\.[0-9]+)?)(?P<unit>[kKmM]?)")

# short names of the steps for the table (the JSON keeps the full ones); unknown steps keep their own name
_SHORT = {
    "loading events": "load",
    "validating events": "event checks",
    "labelling snapshots": "labels",
    "building point-in-time features": "features",
    "validating the training set": "training-set checks",
    "training LightGBM": "training",
    "fitting the baselines": "baselines",
    "scoring profiles as of": "scoring",
    "explaining scores with TreeSHAP": "TreeSHAP",
    "writing scores and segments": "store",
    "writing the report": "report",
    "not in a step": "other",
}

__all__ = ["measure_run", "memory_by_phase", "parse_size", "peak_tree_rss", "step_name", "step_seconds", "summarise"]


def parse_size(text: str) -> int:
    """Return the number of profiles written as ``10000``, ``10k``, ``1M`` or ``1.5M``.

    Raises
    ------
    ValueError
        When ``text`` is not such a number, or is below 1.
    """
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"size {text!r}: expected a number of profiles such as 10000, 10k or 1M")
    count = round(float(match["number"]) * {"": 1, "k": 1_000, "m": 1_000_000}[match["unit"].lower()])
    if count < 1:
        raise ValueError(f"size {text!r}: need at least one profile")
    return count


def step_name(description: str) -> str:
    """Return a step's description without its counts, dates, paths and parenthesised details.

    ``"labelling 6 snapshots 2023-08-18 .. 2023-12-02"`` becomes ``"labelling snapshots"``; ``"writing 5,086
    scores and 3 segments to SQLiteStore('/tmp/x')"`` becomes ``"writing scores and segments"``.
    """
    words = []
    for word in description.split():
        if word.startswith("(") or word == "to":
            break
        if not re.search(r"[0-9]", word) and word != "..":
            words.append(word)
    return " ".join(words) or description


def step_seconds(stderr: str) -> dict[str, float]:
    """Return the seconds of each finished step in a run's stderr, summed over steps of the same name."""
    seconds: dict[str, float] = {}
    for line in stderr.splitlines():
        match = _STEP_DONE.match(line)
        if match:
            name = step_name(match["step"])
            seconds[name] = round(seconds.get(name, 0.0) + float(match["seconds"]), 1)
    return seconds


def peak_tree_rss(process: psutil.Process) -> int:
    """Return the resident memory in bytes of ``process`` and all its descendants now (0 once it has ended)."""
    total = 0
    try:
        members = [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for member in members:
        try:
            total += member.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


def memory_by_phase(log: list[str], samples: list[tuple[float, int]], top: int = 8) -> list[dict]:
    """Return the ``top`` phases of a run by peak memory, a phase running from one progress line to the next.

    Parameters
    ----------
    log : list of str
        Progress lines, ``[customer-ai HH:MM:SS] message`` (local time of day; a time earlier than the line
        before it is on the next day).
    samples : list of (float, int)
        Memory samples as (epoch seconds, bytes), the first taken before the first line; samples before the
        first line's second count as ``start-up``.

    Returns
    -------
    list of dict
        ``phase`` (the line's message, or ``start-up``) and ``peak_rss_gb``, highest first.
    """
    if not samples:
        return []
    day = dt.datetime.fromtimestamp(samples[0][0]).replace(hour=0, minute=0, second=0, microsecond=0)
    marks: list[tuple[float, str]] = []
    for line in log:
        match = _LOG_LINE.match(line)
        if match:
            clock = dt.datetime.strptime(match["time"], "%H:%M:%S").time()
            moment = dt.datetime.combine(day.date(), clock).timestamp()
            while marks and moment < marks[-1][0]:  # past midnight
                moment += 86_400
            marks.append((moment, match["message"]))
    moments = [moment for moment, _ in marks]
    peaks: dict[str, int] = {}
    for moment, rss in samples:
        at = bisect.bisect_right(moments, moment) - 1
        phase = marks[at][1] if at >= 0 else "start-up"
        peaks[phase] = max(peaks.get(phase, 0), rss)
    ranked = sorted(peaks.items(), key=lambda item: -item[1])[:top]
    return [{"phase": phase, "peak_rss_gb": round(rss / 1e9, 2)} for phase, rss in ranked]


def measure_run(command: list[str], env: dict[str, str], interval: float = 0.2) -> dict:
    """Run ``command``, sampling its process tree's memory every ``interval`` seconds.

    Returns
    -------
    dict
        ``returncode``, ``wall_seconds``, ``peak_rss_bytes``, ``steps`` (seconds per step name), ``log`` (the
        progress lines), ``memory_by_phase`` (see :func:`memory_by_phase`) and, when the run failed,
        ``stderr_tail`` (its last 40 lines of stderr).
    """
    with tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=err, text=True)
        watched = psutil.Process(child.pid)
        samples: list[tuple[float, int]] = []  # (epoch seconds, bytes): where in the run memory peaks
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                samples.append((time.time(), peak_tree_rss(watched)))
                done.wait(interval)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        returncode = child.wait()
        wall = time.perf_counter() - started
        done.set()
        sampler.join()
        err.seek(0)
        stderr = err.read()
    lines = stderr.splitlines()
    # the progress log, timestamps included, shows where time no step accounts for went
    log = [line for line in lines if line.startswith("[customer-ai ")]
    result = {
        "returncode": returncode,
        "wall_seconds": round(wall, 1),
        "peak_rss_bytes": max((rss for _, rss in samples), default=0),
        "steps": step_seconds(stderr),
        "log": log,
        "memory_by_phase": memory_by_phase(log, samples),
    }
    if returncode != 0:
        result["stderr_tail"] = lines[-40:]
    return result


def summarise(profiles: int, events: int, runs: list[dict]) -> dict:
    """Return the medians over ``runs`` of one size, with the derived rates."""
    wall = statistics.median(r["wall_seconds"] for r in runs)
    names = sorted({name for r in runs for name in r["steps"]})
    steps = {name: round(statistics.median(r["steps"].get(name, 0.0) for r in runs), 1) for name in names}
    # start-up, imports, saving the model and whatever else logs no step
    steps["not in a step"] = round(statistics.median(r["wall_seconds"] - sum(r["steps"].values()) for r in runs), 1)
    return {
        "profiles": profiles,
        "events": events,
        "repeats": len(runs),
        "wall_seconds_median": round(wall, 1),
        "wall_seconds_all": [r["wall_seconds"] for r in runs],
        "peak_rss_gb_median": round(statistics.median(r["peak_rss_bytes"] for r in runs) / 1e9, 2),
        "events_per_second": round(events / wall) if wall else None,
        "seconds_per_1k_profiles": round(wall / profiles * 1_000, 3),
        "steps_median": dict(sorted(steps.items(), key=lambda item: -item[1])),
    }


def _markdown_row(summary: dict, slowest: int = 6) -> str:
    slowest_steps = list(summary["steps_median"].items())[:slowest]
    steps = ", ".join(f"{_SHORT.get(name, name)} {seconds:.0f}" for name, seconds in slowest_steps)
    return (
        f"| {summary['profiles']:,} | {summary['events']:,} | {summary['wall_seconds_median']:.1f} "
        f"| {summary['peak_rss_gb_median']:.2f} | {summary['events_per_second']:,} "
        f"| {summary['seconds_per_1k_profiles']:.3f} | {steps} |"
    )


def _dataset(folder: Path, profiles: int, seed: int) -> dict:
    """Generate the data set into ``folder`` unless one made by this generator is there; return its manifest."""
    manifest_path = folder / "dataset.json"
    generator = hashlib.sha256((ROOT / "bench" / "generate.py").read_bytes()).hexdigest()[:16]
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if (manifest.get("profiles"), manifest.get("seed"), manifest.get("generator")) == (profiles, seed, generator):
            return manifest
    shutil.rmtree(folder, ignore_errors=True)
    command = [sys.executable, str(ROOT / "bench" / "generate.py"), "--profiles", str(profiles)]
    command += ["--seed", str(seed), "--out", str(folder)]
    measured = measure_run(command, dict(os.environ))
    if measured["returncode"] != 0:
        raise RuntimeError("generating the data set failed:\n" + "\n".join(measured.get("stderr_tail", [])))
    manifest = {
        "profiles": profiles,
        "seed": seed,
        "generator": generator,
        "events": pq.ParquetFile(folder / "events.parquet").metadata.num_rows,
        "generate_seconds": measured["wall_seconds"],
        "generate_peak_rss_gb": round(measured["peak_rss_bytes"] / 1e9, 2),
    }
    manifest_path.write_text(json.dumps(manifest, indent=2))
    return manifest


def _drop_schema(store: str, schema: str) -> None:
    with psycopg2.connect(store) as connection, connection.cursor() as cursor:
        cursor.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    connection.close()


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def _export_commit(revision: str, folder: Path) -> str:
    """Extract the files of git ``revision`` into ``folder`` (read-only for the repository); return its full id."""
    commit = _git("rev-parse", "--verify", f"{revision}^{{commit}}")
    archive = subprocess.run(["git", "archive", "--format=tar", commit], cwd=ROOT, capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(folder, filter="data")
    return commit


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print a markdown table and write the measurements as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", default=["10k", "100k"], help="profiles per data set, e.g. 10k 1M")
    parser.add_argument("--repeats", type=int, default=1, help="runs per size; the table shows medians")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated data sets (default 0)")
    parser.add_argument("--as-of", default="2024-01-01", help="as-of date (default: the day after the log)")
    parser.add_argument("--store", help="profile store address (default: SQLite in each run's home)")
    parser.add_argument("--data", type=Path, default=ROOT / "var" / "bench" / "data", help="data set cache")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bench", help="folder for the JSON results")
    parser.add_argument(
        "--commit",
        help="measure the customer_ai package of this git commit (exported to a temporary folder) instead of the "
        "working tree's",
    )
    args = parser.parse_args(argv)
    try:
        sizes = [parse_size(s) for s in args.sizes]
    except ValueError as exc:
        parser.error(str(exc))
    if args.repeats < 1:
        parser.error("--repeats: need at least 1")
    command_line = " ".join(["bench/scale.py", *(argv if argv is not None else sys.argv[1:])])
    with tempfile.TemporaryDirectory(prefix="customer-ai-commit-") as exported:
        env = {**os.environ}
        if args.commit:
            code = {"commit": _export_commit(args.commit, Path(exported)), "working_tree": False}
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [exported, os.environ.get("PYTHONPATH")]))
        else:
            changed = len(_git("status", "--porcelain").splitlines())
            code = {"commit": _git("rev-parse", "HEAD"), "working_tree": True, "changed_files": changed}
        return _measure(args, sizes, env=env, code=code, command_line=command_line)


def _measure(args: argparse.Namespace, sizes: list[int], *, env: dict[str, str], code: dict, command_line: str) -> int:
    executable = Path(sys.executable).with_name("customer-ai")
    results = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": command_line,
        "code": code,
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
            "python": platform.python_version(),
        },
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],  # other work on the machine
        "as_of": args.as_of,
        "store": "sqlite" if not args.store else "postgresql",
        "sizes": [],
    }
    print("| profiles | events | wall (s) | peak RSS (GB) | events/s | s per 1k profiles | slowest steps (s) |")
    print("|---|---|---|---|---|---|---|")
    for profiles in sizes:
        dataset = _dataset(args.data / f"{profiles}-seed{args.seed}", profiles, args.seed)
        runs = []
        for repeat in range(args.repeats):
            schema = f"bench_scale_{os.getpid()}_{profiles}_{repeat}"
            with tempfile.TemporaryDirectory(prefix="customer-ai-bench-") as home:
                command = [str(executable), "run", str(args.data / f"{profiles}-seed{args.seed}" / "instance.yaml")]
                command += ["--as-of", args.as_of, "--home", home, "--allow-poor", "--top", "0"]
                run_env = dict(env)
                if args.store:
                    command += ["--store", args.store]
                    run_env["CUSTOMER_AI_STORE_SCHEMA"] = schema
                try:
                    run = measure_run(command, run_env)
                finally:
                    if args.store:
                        _drop_schema(args.store, schema)
            runs.append(run)
            peaks = ", ".join(f"{p['peak_rss_gb']:.2f} GB in {p['phase']!r}" for p in run["memory_by_phase"][:3])
            print(
                f"run {repeat + 1} of {profiles:,} profiles: {run['wall_seconds']} s; memory peaks {peaks}",
                file=sys.stderr,
            )
            if run["returncode"] != 0:
                print("\n".join(run.get("stderr_tail", [])), file=sys.stderr)
                print(f"run of {profiles:,} profiles failed with exit status {run['returncode']}", file=sys.stderr)
        summary = summarise(profiles, dataset["events"], runs)
        summary["dataset"] = dataset
        summary["runs"] = runs
        results["sizes"].append(summary)
        print(_markdown_row(summary), flush=True)
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"scale-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"measurements: {path}", file=sys.stderr)
    return 0 if all(r["returncode"] == 0 for s in results["sizes"] for r in s["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
