"""Benchmark: a whole ``customer-ai run`` on synthetic logs of several sizes (wall time, peak memory, steps).

Usage: ``.venv/bin/python bench/scale.py [SIZES ...] [--repeats 3] [--time-v] [--keep-home]
[--store postgresql://127.0.0.1:5432/test]`` with sizes such as ``10k 100k 300k 1M 3M 10M`` (default ``10k 100k``).
For each size it generates (once, then reuses) a data set with ``bench/generate.py`` under
``var/bench/data/<profiles>-seed<seed>/``, then runs ``customer-ai run instance.yaml --as-of <the day after the
log> --home <fresh folder under var/bench/homes/>`` as a subprocess and reads each step's time from the progress
lines on stderr (``... done in Xs``).

**Peak memory is the kernel's, never sampled.**  The run is started with :class:`subprocess.Popen` and reaped with
:func:`os.wait4`, whose ``ru_maxrss`` (KiB on Linux) is the figure used everywhere (table, summaries, medians,
ratios, targets): the run process's own peak resident set size.  ``customer-ai run`` is one process that runs every
step in turn, so this peak bounds each Airflow task's.  Two properties of that figure, both from the kernel:

- It is the largest peak of the run process *or of any descendant it waited for* (the kernel's ``RUSAGE_BOTH`` of
  the child), a maximum, not a sum: should the run start processes of its own that live at the same time, their
  sum is not in it.  The psutil sampler counts the processes it sees (``processes_seen``) so that this shows.
  (``resource.getrusage(RUSAGE_CHILDREN)`` of this benchmark process would give the same kind of maximum, but
  over every child it ever reaped, data set generation and earlier runs included, so it is not used.)
- A child starts from its parent's memory image: Linux counts the parent's peak RSS at the moment of the spawn
  into the child's ``ru_maxrss``.  The figure is therefore ``max(this process's peak at launch, the run's own
  peak)``; the first is recorded as ``launcher_peak_rss_bytes`` (about 0.1 GB, far below any run) and
  ``peak_rss_may_be_inherited`` says when the figure does not exceed it (it is then only an upper bound).

With ``--time-v`` the command runs under ``/usr/bin/time -v`` (its report to a file, not to the run's stderr); its
"Maximum resident set size" and "Elapsed (wall clock) time" are kept beside the wait4 figure as a cross-check
(``time_v``), not used for the medians.  The run's resident memory is still sampled every 0.2 s over its process
tree, but only to tell in which phase (from one progress line to the next) memory peaks: ``memory_by_phase_sampled``,
indicative only, may miss a short peak.

**Only runs that ended ok count.**  A run whose exit status is not 0, or whose output lacks the ``scored N profiles``
and ``store:`` lines that ``customer-ai run`` prints once it has scored and published, is an error of the
benchmark: its last 40 lines of stderr are printed, it is recorded under its size's ``errors`` in the JSON, it is in
no median, and the script exits 1.  A size with no ok run has no figure.

It prints a markdown row per size (medians over the ok runs), then one summary line per size, the ratios between
consecutive sizes (``300k -> 3M: wall 9.8x, peak 1.10x``) and the targets of issue 22, and writes every
measurement as JSON to ``var/bench/scale-<time>.json`` (rewritten after each size, so a later failure keeps the
sizes before it).  GB are 10^9 bytes.

With ``--value-and-timing`` each run reads ``instance-value-timing.yaml``, written beside the data set's
``instance.yaml``: the same instance, its goal worth the purchases' ``value`` (``goal.value``) and with
``output.timing``, so that the value and timing models' memory is measured too.  Its quality gates for both are
lowered to -1 there (the synthetic log's value model need not beat its baselines for its memory to be measured;
the gates are judged on real data in docs/evaluation.md).

With ``--store postgresql://...`` every run writes to a fresh schema (``CUSTOMER_AI_STORE_SCHEMA``) that is
dropped afterwards.  With ``--commit REV`` the runs use the ``customer_ai`` package of that git commit (exported
with ``git archive`` to a temporary folder, first on ``PYTHONPATH``) instead of the working tree's, so a baseline
can be measured while the tree holds changes.  ``--keep-home`` keeps each run's home (on the same disk as
``var/bench``) for inspection; by default it is removed after the run.
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import hashlib
import io
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
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
import yaml
from psycopg2 import sql

ROOT = Path(__file__).resolve().parents[1]
TIME_V = "/usr/bin/time"
_STEP_DONE = re.compile(r"^\[customer-ai [^\]]*\] (?P<step>.+?) done in (?P<seconds>[0-9.]+)s")
_LOG_LINE = re.compile(r"^\[customer-ai (?P<time>[0-9]{2}:[0-9]{2}:[0-9]{2})\] (?P<message>.*)$")
_SIZE = re.compile(r"(?P<number>[0-9]+(?:\.[0-9]+)?)(?P<unit>[kKmM]?)")
_TIME_V_RSS = re.compile(r"^\s*Maximum resident set size \(kbytes\): (?P<kib>[0-9]+)\s*$", re.MULTILINE)
_TIME_V_WALL = re.compile(r"^\s*Elapsed \(wall clock\) time \([^)]*\): (?P<clock>[0-9:.]+)\s*$", re.MULTILINE)
# what `customer-ai run` prints on stdout once it has scored and published (customer_ai/cli.py, _cmd_run)
_SCORED = re.compile(r"^scored [0-9,]+ profiles \(")
# customer_ai/cli.py's exit statuses other than 0
_EXIT_MEANING = {
    1: "the model failed the quality gate",
    2: "bad input or usage",
    3: "store, events or machine unavailable",
    4: "another run holds the run lock",
    5: "a bug in customer-ai",
}
# issue 22's targets: peak at 3M <= 1.25x the 300k figure, peak at 10M <= 4 GB, wall <= 11x per 10x data
TARGET_PEAK_RATIO = (300_000, 3_000_000, 1.25)
TARGET_PEAK_GB = (10_000_000, 4.0)
TARGET_WALL_PER_10X = 11.0

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

__all__ = [
    "format_size",
    "measure_run",
    "memory_by_phase",
    "parse_size",
    "parse_time_v",
    "ratio_line",
    "run_failure",
    "size_ratios",
    "step_name",
    "step_seconds",
    "summarise",
    "summary_line",
    "target_verdicts",
    "tree_rss",
]


def parse_size(text: str) -> int:
    """Return the number of profiles written as ``10000``, ``10k``, ``1M``, ``1.5M`` or ``10M``.

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


def format_size(profiles: int) -> str:
    """Return a number of profiles as the benchmark's sizes are written: ``10k``, ``300k``, ``1.5M``, ``10M``."""
    if profiles >= 1_000_000:
        return f"{profiles / 1_000_000:g}M"
    if profiles >= 1_000:
        return f"{profiles / 1_000:g}k"
    return str(profiles)


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


def tree_rss(process: psutil.Process) -> tuple[int, int]:
    """Return the resident memory in bytes of ``process`` and its descendants now, and how many processes that is.

    A sample, for :func:`memory_by_phase` only: (0, 0) once the process has ended.
    """
    total = 0
    try:
        members = [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0
    alive = 0
    for member in members:
        try:
            total += member.memory_info().rss
        except psutil.NoSuchProcess:
            continue
        alive += 1
    return total, alive


def memory_by_phase(log: list[str], samples: list[tuple[float, int]], top: int = 8) -> list[dict]:
    """Return the ``top`` phases of a run by sampled memory, a phase running from one progress line to the next.

    The samples are the process tree's resident memory every 0.2 s: where memory peaks, indicatively (a peak
    shorter than the interval may be missed).  The run's peak figure is the kernel's (:func:`measure_run`).

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
        ``phase`` (the line's message, or ``start-up``) and ``peak_rss_gb`` (the highest sample), highest first.
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


def parse_time_v(text: str) -> dict:
    """Return the peak RSS and the wall time that ``/usr/bin/time -v`` reported.

    Returns
    -------
    dict
        ``max_rss_bytes`` ("Maximum resident set size (kbytes)" x 1024) and ``wall_seconds`` ("Elapsed (wall clock)
        time", ``h:mm:ss`` or ``m:ss.ss``).

    Raises
    ------
    ValueError
        When either line is missing (the command could not be timed).
    """
    rss, wall = _TIME_V_RSS.search(text), _TIME_V_WALL.search(text)
    if rss is None or wall is None:
        raise ValueError("no 'Maximum resident set size' or 'Elapsed (wall clock) time' line in /usr/bin/time's output")
    seconds = 0.0
    for part in wall["clock"].split(":"):
        seconds = seconds * 60 + float(part)
    return {"max_rss_bytes": int(rss["kib"]) * 1024, "wall_seconds": round(seconds, 2)}


def _own_peak_rss() -> int:
    """Return this process's peak resident set in bytes: the part of a child's ``ru_maxrss`` that it inherits.

    That is the high-water mark of this process's memory image (``VmHWM``), which a child starts from; this
    process's own ``ru_maxrss`` may be higher, having inherited its parent's the same way.
    """
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    match = re.search(r"^VmHWM:\s*([0-9]+) kB$", status, re.MULTILINE)
    return int(match[1]) * 1024 if match else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure_run(command: list[str], env: dict[str, str], *, interval: float = 0.2, time_v: bool = False) -> dict:
    """Run ``command`` to its end; return its exit status, wall time, the kernel's peak RSS and its output.

    The process is reaped with :func:`os.wait4`: ``peak_rss_bytes`` is its ``ru_maxrss`` (the run process's own
    peak resident set, or that of a descendant it waited for if larger; see the module's docstring for what it
    does not include).  Its process tree's memory is also sampled every ``interval`` seconds, for
    ``memory_by_phase_sampled`` alone.

    Parameters
    ----------
    command : list of str
        The command and its arguments.
    env : dict
        Its environment.
    interval : float, default 0.2
        Seconds between memory samples.
    time_v : bool, default False
        Run it under ``/usr/bin/time -v`` and keep that tool's peak RSS and wall time as ``time_v`` (a
        cross-check; ``peak_rss_bytes`` stays the wait4 figure).

    Returns
    -------
    dict
        ``returncode`` (negative: killed by that signal), ``wall_seconds``, ``peak_rss_bytes``,
        ``peak_rss_source``, ``launcher_peak_rss_bytes`` (this process's own peak when it started the command: a
        floor under ``peak_rss_bytes``), ``peak_rss_may_be_inherited``, ``cpu_user_seconds``,
        ``cpu_system_seconds``, ``processes_seen`` (most processes in the tree in one sample), ``steps`` (seconds
        per step name), ``log`` (the progress lines), ``memory_by_phase_sampled`` (see :func:`memory_by_phase`),
        ``stdout`` and ``stderr_tail`` (the last 40 lines of each) and, with ``time_v``, ``time_v``.
    """
    launcher = _own_peak_rss()
    with tempfile.TemporaryDirectory(prefix="customer-ai-measure-") as scratch:
        out_path, err_path, time_path = (Path(scratch) / name for name in ("stdout", "stderr", "time-v"))
        full = [TIME_V, "-v", "-o", str(time_path), *command] if time_v else list(command)
        with out_path.open("w") as out, err_path.open("w") as err:
            started = time.perf_counter()
            child = subprocess.Popen(full, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
            samples: list[tuple[float, int]] = []  # (epoch seconds, bytes): where in the run memory peaks
            processes = [0]
            done = threading.Event()

            watched = psutil.Process(child.pid)  # before wait4 reaps it: a zombie still has its pid

            def sample() -> None:
                while not done.is_set():
                    rss, alive = tree_rss(watched)
                    samples.append((time.time(), rss))
                    processes[0] = max(processes[0], alive)
                    done.wait(interval)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            try:
                _, status, usage = os.wait4(child.pid, 0)
            except BaseException:  # interrupted: do not leave the run behind
                done.set()
                child.kill()
                os.wait4(child.pid, 0)
                child.returncode = -signal.SIGKILL
                raise
            wall = time.perf_counter() - started
            child.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
            done.set()
            sampler.join()
        stdout = out_path.read_text(errors="replace").splitlines()
        stderr = err_path.read_text(errors="replace")
        timed = time_path.read_text(errors="replace") if time_v and time_path.exists() else None
    lines = stderr.splitlines()
    # the progress log, timestamps included, shows where time no step accounts for went
    log = [line for line in lines if line.startswith("[customer-ai ")]
    peak = usage.ru_maxrss * 1024  # KiB on Linux
    result = {
        "returncode": child.returncode,
        "wall_seconds": round(wall, 1),
        "peak_rss_bytes": peak,
        "peak_rss_source": "wait4 ru_maxrss" + (" (of /usr/bin/time and the run it waited for)" if time_v else ""),
        "launcher_peak_rss_bytes": launcher,
        "peak_rss_may_be_inherited": peak <= launcher,
        "cpu_user_seconds": round(usage.ru_utime, 1),
        "cpu_system_seconds": round(usage.ru_stime, 1),
        "processes_seen": processes[0],
        "steps": step_seconds(stderr),
        "log": log,
        "memory_by_phase_sampled": memory_by_phase(log, samples),
        "stdout": stdout[-40:],
        "stderr_tail": lines[-40:],
    }
    if time_v:
        try:
            result["time_v"] = parse_time_v(timed or "")
        except ValueError as exc:
            result["time_v"] = {"error": str(exc)}
    return result


def run_failure(run: dict) -> str | None:
    """Return why a measured ``customer-ai run`` did not end ok, or None when it did.

    Ok means exit status 0 and, on stdout, the ``scored N profiles (...)`` and ``store: ...`` lines that the
    command prints once it has scored and published (a run that stops at the quality gate prints neither).
    """
    code = run["returncode"]
    if code < 0:
        return f"killed by signal {signal.Signals(-code).name}" + (" (out of memory?)" if code == -9 else "")
    if code != 0:
        return f"exit status {code} ({_EXIT_MEANING.get(code, 'an error')})"
    stdout = run.get("stdout", [])
    if not any(_SCORED.match(line) for line in stdout) or not any(line.startswith("store: ") for line in stdout):
        return "exit status 0 but no 'scored N profiles' and 'store:' lines on stdout: the run did not publish"
    return None


def summarise(profiles: int, events: int, runs: list[dict]) -> dict:
    """Return the medians over the ok runs (``ok`` true) of one size, with the derived rates.

    The failed runs only count in ``runs_failed``; with no ok run every figure is None and ``steps_median`` empty.
    """
    ok = [r for r in runs if r["ok"]]
    summary: dict = {"profiles": profiles, "events": events, "runs_ok": len(ok), "runs_failed": len(runs) - len(ok)}
    figures = ["wall_seconds_median", "peak_rss_bytes_median", "peak_rss_gb_median", "events_per_second"]
    figures += ["seconds_per_1k_profiles"]
    if not ok:
        return {**summary, **dict.fromkeys(figures), "wall_seconds_all": [], "peak_rss_gb_all": [], "steps_median": {}}
    wall = statistics.median(r["wall_seconds"] for r in ok)
    peak = statistics.median(r["peak_rss_bytes"] for r in ok)
    names = sorted({name for r in ok for name in r["steps"]})
    steps = {name: round(statistics.median(r["steps"].get(name, 0.0) for r in ok), 1) for name in names}
    # start-up, imports, saving the model and whatever else logs no step
    steps["not in a step"] = round(statistics.median(r["wall_seconds"] - sum(r["steps"].values()) for r in ok), 1)
    summary.update(
        {
            "wall_seconds_median": round(wall, 1),
            "wall_seconds_all": [r["wall_seconds"] for r in ok],
            "peak_rss_bytes_median": round(peak),
            "peak_rss_gb_median": round(peak / 1e9, 2),
            "peak_rss_gb_all": [round(r["peak_rss_bytes"] / 1e9, 2) for r in ok],
            "peak_rss_source": "wait4 ru_maxrss",
            "events_per_second": round(events / wall) if wall else None,
            "seconds_per_1k_profiles": round(wall / profiles * 1_000, 3),
            "steps_median": dict(sorted(steps.items(), key=lambda item: -item[1])),
        }
    )
    timed = [r["time_v"] for r in ok if "max_rss_bytes" in r.get("time_v", {})]
    if timed:  # the cross-check, beside the wait4 figure
        summary["time_v_peak_rss_gb_median"] = round(statistics.median(t["max_rss_bytes"] for t in timed) / 1e9, 2)
        summary["time_v_wall_seconds_median"] = round(statistics.median(t["wall_seconds"] for t in timed), 1)
    return summary


def summary_line(summary: dict) -> str:
    """Return one size's summary: profiles, events, wall and peak medians, runs, seconds per 1k profiles."""
    runs = f"runs {summary['runs_ok']} of {summary['runs_ok'] + summary['runs_failed']} ok"
    head = f"{format_size(summary['profiles'])}: {summary['profiles']:,} profiles, {summary['events']:,} events"
    if summary["wall_seconds_median"] is None:
        return f"{head}, no figure (no ok run), {runs}"
    line = (
        f"{head}, wall {summary['wall_seconds_median']:.1f} s, peak RSS {summary['peak_rss_gb_median']:.2f} GB "
        f"(kernel), {runs}, {summary['seconds_per_1k_profiles']:.3f} s per 1k profiles"
    )
    if "time_v_peak_rss_gb_median" in summary:
        line += (
            f"; /usr/bin/time -v: {summary['time_v_peak_rss_gb_median']:.2f} GB, "
            f"{summary['time_v_wall_seconds_median']:.1f} s"
        )
    return line


def size_ratios(summaries: list[dict]) -> list[dict]:
    """Return the wall and peak ratios between consecutive sizes (ordered by profiles), medians of ok runs.

    Each entry: ``from`` and ``to`` (sizes as written, e.g. ``300k``), ``profiles_ratio``, ``events_ratio``,
    ``wall_ratio``, ``peak_ratio`` and ``wall_per_10x_events`` (the wall ratio scaled to ten times the events,
    ``wall_ratio ** (1 / log10(events_ratio))``); the last three are None when either size has no ok run.
    """
    ordered = sorted(summaries, key=lambda s: s["profiles"])
    ratios = []
    for small, large in zip(ordered, ordered[1:], strict=False):
        if small["profiles"] == large["profiles"]:
            continue
        events = large["events"] / small["events"]
        entry = {
            "from": format_size(small["profiles"]),
            "to": format_size(large["profiles"]),
            "profiles_ratio": round(large["profiles"] / small["profiles"], 6),
            "events_ratio": round(events, 6),
            "wall_ratio": None,
            "peak_ratio": None,
            "wall_per_10x_events": None,
        }
        if small["wall_seconds_median"] and large["wall_seconds_median"] is not None:
            wall = large["wall_seconds_median"] / small["wall_seconds_median"]
            entry["wall_ratio"] = round(wall, 6)  # 6 places: the lines round them once
            entry["peak_ratio"] = round(large["peak_rss_bytes_median"] / small["peak_rss_bytes_median"], 6)
            if events > 1:
                entry["wall_per_10x_events"] = round(wall ** (1 / math.log10(events)), 6)
        ratios.append(entry)
    return ratios


def ratio_line(ratio: dict) -> str:
    """Return a ratio as one line, e.g. ``300k -> 3M: wall 9.8x, peak 1.10x (10x profiles, ...)``."""
    head = f"{ratio['from']} -> {ratio['to']}"
    if ratio["wall_ratio"] is None:
        return f"{head}: no ratio (a size without an ok run)"
    line = (
        f"{head}: wall {ratio['wall_ratio']:.1f}x, peak {ratio['peak_ratio']:.2f}x "
        f"({ratio['profiles_ratio']:.3g}x profiles, {ratio['events_ratio']:.2f}x events"
    )
    if ratio["wall_per_10x_events"] is not None:
        line += f"; wall {ratio['wall_per_10x_events']:.1f}x per 10x events"
    return line + ")"


def target_verdicts(summaries: list[dict], ratios: list[dict]) -> list[dict]:
    """Return issue 22's targets that the measured sizes reach, each with its value, limit and whether it is met.

    Peak at 3M at most 1.25x the 300k figure, peak at 10M at most 4 GB, and wall at most 11x per 10x events
    between any two consecutive sizes; a target whose sizes were not measured (or have no ok run) is left out.
    """
    verdicts = []
    for ratio in ratios:
        if ratio["wall_per_10x_events"] is not None:
            target = f"wall {ratio['from']} -> {ratio['to']} <= {TARGET_WALL_PER_10X:g}x per 10x events"
            verdicts.append({"target": target, "value": ratio["wall_per_10x_events"], "limit": TARGET_WALL_PER_10X})
    measured = {s["profiles"]: s for s in summaries if s["peak_rss_bytes_median"] is not None}
    small, large, limit = TARGET_PEAK_RATIO
    if small in measured and large in measured:  # consecutive in the run or not
        value = round(measured[large]["peak_rss_bytes_median"] / measured[small]["peak_rss_bytes_median"], 6)
        target = f"peak {format_size(small)} -> {format_size(large)} <= {limit:g}x"
        verdicts.append({"target": target, "value": value, "limit": limit})
    profiles, gb = TARGET_PEAK_GB
    if profiles in measured:
        target = f"peak at {format_size(profiles)} <= {gb:g} GB"
        verdicts.append({"target": target, "value": measured[profiles]["peak_rss_gb_median"], "limit": gb})
    return [{**v, "met": v["value"] <= v["limit"]} for v in verdicts]


def _markdown_row(summary: dict, slowest: int = 6) -> str:
    head = f"| {summary['profiles']:,} | {summary['events']:,} "
    runs = f"{summary['runs_ok']}/{summary['runs_ok'] + summary['runs_failed']}"
    if summary["wall_seconds_median"] is None:
        return f"{head}| no ok run | | | | {runs} | |"
    slowest_steps = list(summary["steps_median"].items())[:slowest]
    steps = ", ".join(f"{_SHORT.get(name, name)} {seconds:.0f}" for name, seconds in slowest_steps)
    return (
        f"{head}| {summary['wall_seconds_median']:.1f} | {summary['peak_rss_gb_median']:.2f} "
        f"| {summary['events_per_second']:,} | {summary['seconds_per_1k_profiles']:.3f} | {runs} | {steps} |"
    )


def _dataset(folder: Path, profiles: int, seed: int) -> dict:
    """Generate the data set into ``folder`` unless one made by this generator is there; return its manifest.

    ``generate.py`` runs as its own process and writes block by block (``BLOCK_PROFILES`` profiles, one row
    group each), so its memory stays bounded by one block at any size.
    """
    manifest_path = folder / "dataset.json"
    generator = hashlib.sha256((ROOT / "bench" / "generate.py").read_bytes()).hexdigest()[:16]
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if (manifest.get("profiles"), manifest.get("seed"), manifest.get("generator")) == (profiles, seed, generator):
            return manifest
    shutil.rmtree(folder, ignore_errors=True)
    command = [sys.executable, str(ROOT / "bench" / "generate.py"), "--profiles", str(profiles)]
    command += ["--seed", str(seed), "--out", str(folder)]
    print(f"generating {profiles:,} profiles into {folder} ...", file=sys.stderr, flush=True)
    measured = measure_run(command, dict(os.environ))
    if measured["returncode"] != 0:
        raise RuntimeError("generating the data set failed:\n" + "\n".join(measured["stderr_tail"]))
    manifest = {
        "profiles": profiles,
        "seed": seed,
        "generator": generator,
        "events": pq.ParquetFile(folder / "events.parquet").metadata.num_rows,
        "generate_seconds": measured["wall_seconds"],
        "generate_peak_rss_gb": round(measured["peak_rss_bytes"] / 1e9, 2),
        "generate_peak_rss_source": "wait4 ru_maxrss",
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
    """Run the benchmark; print a markdown table, summaries and ratios; write the measurements as JSON.

    Returns 1 when any run did not end ok (an error of the benchmark), else 0.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", default=["10k", "100k"], help="profiles per data set, e.g. 10k 1M 10M")
    parser.add_argument("--repeats", type=int, default=1, help="runs per size; the table shows medians of ok runs")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated data sets (default 0)")
    parser.add_argument("--as-of", default="2024-01-01", help="as-of date (default: the day after the log)")
    parser.add_argument("--store", help="profile store address (default: SQLite in each run's home)")
    parser.add_argument("--data", type=Path, default=ROOT / "var" / "bench" / "data", help="data set cache")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "var" / "bench", help="folder for the JSON results and, in homes/, the runs"
    )
    parser.add_argument(
        "--time-v",
        action="store_true",
        help=f"also run each command under {TIME_V} -v and keep its peak RSS and wall time as a cross-check",
    )
    parser.add_argument(
        "--value-and-timing",
        action="store_true",
        help=f"run {VALUE_AND_TIMING}: the goal worth the purchases' value, with output.timing (gates lowered)",
    )
    parser.add_argument(
        "--keep-home", action="store_true", help="keep each run's home (under OUT/homes/) instead of removing it"
    )
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
    if args.time_v and not os.access(TIME_V, os.X_OK):
        parser.error(f"--time-v: {TIME_V} is not there (Debian package 'time')")
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


def _report_run(run: dict, profiles: int, time_v: bool) -> None:
    """Print one run's outcome to stderr: its figures when ok, its last 40 lines of stderr when not."""
    which = f"run {run['repeat']} of {profiles:,} profiles"
    if not run["ok"]:
        print("\n".join(run["stderr_tail"]), file=sys.stderr)
        print(
            f"{which} FAILED: {run['error']} after {run['wall_seconds']} s (an error of the benchmark: no figure)",
            file=sys.stderr,
            flush=True,
        )
        return
    cross = ""
    if time_v:
        timed = run["time_v"]
        cross = f", /usr/bin/time -v {timed['max_rss_bytes'] / 1e9:.2f} GB" if "max_rss_bytes" in timed else ""
    phases = ", ".join(f"{p['peak_rss_gb']:.2f} GB in {p['phase']!r}" for p in run["memory_by_phase_sampled"][:3])
    print(
        f"{which}: ok, {run['wall_seconds']} s, peak RSS {run['peak_rss_bytes'] / 1e9:.2f} GB (kernel, wait4{cross}); "
        f"where it peaks, sampled (indicative): {phases}",
        file=sys.stderr,
    )
    if run["processes_seen"] > 1 + time_v:
        print(
            f"  note: {run['processes_seen']} processes ran at once: the peak is the largest one's, not their sum",
            file=sys.stderr,
        )
    if run["peak_rss_may_be_inherited"]:
        print(
            f"  note: the peak does not exceed this benchmark's own ({run['launcher_peak_rss_bytes'] / 1e9:.2f} GB), "
            "which a child inherits: it is only an upper bound",
            file=sys.stderr,
        )
    if "home" in run:
        print(f"  home kept: {run['home']}", file=sys.stderr)


VALUE_AND_TIMING = "instance-value-timing.yaml"


def write_value_and_timing(folder: Path) -> Path:
    """Write :data:`VALUE_AND_TIMING` beside the data set's ``instance.yaml``: with a value and timing; return it."""
    spec = yaml.safe_load((folder / "instance.yaml").read_text())
    spec["name"] = f"{spec['name']}_value_timing"
    spec["goal"]["value"] = {"field": "value"}
    spec["output"] = {**spec.get("output", {}), "timing": True}
    spec["training"].update(min_value_gini_gain=-1.0, min_timing_concordance_gain=-1.0)  # memory, not quality
    path = folder / VALUE_AND_TIMING
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _one_run(args: argparse.Namespace, env: dict[str, str], folder: Path, profiles: int, repeat: int) -> dict:
    """Run ``customer-ai run`` once on the data in ``folder``; return its measurement with ``ok`` (and ``error``)."""
    schema = f"bench_scale_{os.getpid()}_{profiles}_{repeat}"
    # the run's home on the disk of the results, not in a temporary folder that may be elsewhere (or in memory)
    homes = args.out / "homes"
    homes.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix=f"run-{format_size(profiles)}-", dir=homes))
    instance = folder / (VALUE_AND_TIMING if args.value_and_timing else "instance.yaml")
    command = [str(Path(sys.executable).with_name("customer-ai")), "run", str(instance)]
    command += ["--as-of", args.as_of, "--home", str(home), "--top", "0"]  # no --allow-poor: a poor model fails
    run_env = dict(env)
    if args.store:
        command += ["--store", args.store]
        run_env["CUSTOMER_AI_STORE_SCHEMA"] = schema
    try:
        run = measure_run(command, run_env, time_v=args.time_v)
    finally:
        if args.store:
            _drop_schema(args.store, schema)
        if not args.keep_home:
            shutil.rmtree(home, ignore_errors=True)
    failure = run_failure(run)
    run.update({"repeat": repeat + 1, "ok": failure is None})
    if failure is None:
        del run["stderr_tail"]  # the progress log is kept
    else:
        run["error"] = failure
    if args.keep_home:
        run["home"] = str(home)
    return run


def _conclude(results: dict, path: Path) -> int:
    """Add the ratios and targets, write the JSON, print the summaries; return 1 if any run failed, else 0."""
    ratios = size_ratios(results["sizes"])
    targets = target_verdicts(results["sizes"], ratios)
    results.update({"ratios": ratios, "targets": targets})
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    path.write_text(json.dumps(results, indent=2))
    print()
    for summary in results["sizes"]:
        print(summary_line(summary))
    for ratio in ratios:
        print(ratio_line(ratio))
    for verdict in targets:
        print(f"target {verdict['target']}: {verdict['value']:.2f}, {'met' if verdict['met'] else 'NOT MET'}")
    errors = sum(s["runs_failed"] for s in results["sizes"])
    print(f"measurements: {path}", file=sys.stderr)
    if errors:
        print(f"{errors} run(s) did not end ok: errors of the benchmark, in no figure", file=sys.stderr)
    return 1 if errors else 0


def _measure(args: argparse.Namespace, sizes: list[int], *, env: dict[str, str], code: dict, command_line: str) -> int:
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
        "peak_rss": "the kernel's: ru_maxrss of the run process from os.wait4 (KiB x 1024), GB = 1e9 bytes; "
        "memory_by_phase_sampled is psutil sampling every 0.2 s, indicative only",
        "time_v": args.time_v,
        "instance": VALUE_AND_TIMING if args.value_and_timing else "instance.yaml",
        "sizes": [],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"scale-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.json"
    print("| profiles | events | wall (s) | peak RSS (GB, kernel) | events/s | s per 1k profiles | ok runs ", end="")
    print("| slowest steps (s) |")
    print("|---|---|---|---|---|---|---|---|", flush=True)
    for profiles in sizes:
        folder = args.data / f"{profiles}-seed{args.seed}"
        dataset = _dataset(folder, profiles, args.seed)
        if args.value_and_timing:
            write_value_and_timing(folder)
        runs = []
        for repeat in range(args.repeats):
            runs.append(_one_run(args, env, folder, profiles, repeat))
            _report_run(runs[-1], profiles, args.time_v)
        summary = summarise(profiles, dataset["events"], runs)
        summary["dataset"] = dataset
        summary["runs"] = [r for r in runs if r["ok"]]
        summary["errors"] = [r for r in runs if not r["ok"]]
        results["sizes"].append(summary)
        print(_markdown_row(summary), flush=True)
        path.write_text(json.dumps(results, indent=2))  # after each size: a later failure keeps these
    return _conclude(results, path)


if __name__ == "__main__":
    sys.exit(main())
