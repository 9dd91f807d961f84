"""The benchmark scripts: the seeded log generator (deterministic, the stated shape) and the scale harness's parsing."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from customer_ai.events import CANONICAL_COLUMNS, canonicalize
from customer_ai.spec import load_spec

from conftest import ROOT, load_bench

generate = load_bench("generate")
scale = load_bench("scale")


@pytest.fixture(scope="module")
def log() -> tuple[pd.DataFrame, pd.DataFrame]:
    return generate.generate_events(2_000, seed=7)


def test_the_same_seed_gives_the_same_log_and_another_seed_another() -> None:
    events, profiles = generate.generate_events(150, seed=3, days=60)
    again, profiles_again = generate.generate_events(150, seed=3, days=60)
    other, _ = generate.generate_events(150, seed=4, days=60)
    pd.testing.assert_frame_equal(events, again)
    pd.testing.assert_frame_equal(profiles, profiles_again)
    assert not events.equals(other)


def test_events_are_canonical_and_inside_the_period(log) -> None:
    events, _ = log
    assert tuple(events.columns) == CANONICAL_COLUMNS
    pd.testing.assert_frame_equal(canonicalize(events), events)
    assert str(events["timestamp"].dtype) == "datetime64[us, UTC]"
    assert events["timestamp"].min() >= pd.Timestamp("2023-01-01", tz="UTC")
    assert events["timestamp"].max() < pd.Timestamp("2024-01-01", tz="UTC")
    assert set(events["event_type"]) == set(generate.EVENT_TYPES)
    priced = events["event_type"].isin(["purchase", "cancellation"])
    assert events.loc[priced, "value"].gt(0).all()
    assert events.loc[~priced, "value"].isna().all()


def test_the_log_has_the_stated_shape(log) -> None:
    events, profiles = log
    per_profile = events.groupby("profile_id").size().reindex(profiles["profile_id"], fill_value=0)
    assert 40 <= per_profile.mean() <= 60  # about 50 events per profile-year (45.2 with this seed)
    assert per_profile.max() > 10 * per_profile.median()  # heavy-tailed activity
    last_seen = events.groupby("profile_id")["timestamp"].max()
    quiet = (last_seen < pd.Timestamp("2023-10-01", tz="UTC")).sum() + (per_profile == 0).sum()
    assert quiet / len(profiles) > 0.2  # dormant and churned customers
    purchases = events[events["event_type"] == "purchase"]
    assert 0.02 < (purchases["value"] >= 200).mean() < 0.2  # the instance's large_purchase is neither rare nor usual
    assert set(profiles.columns) == {"profile_id", "country"}
    assert profiles["profile_id"].is_unique
    assert set(profiles["country"]) <= set(generate.COUNTRIES)


def test_recent_carts_raise_the_chance_of_a_purchase(log) -> None:
    events, profiles = log
    as_of = pd.Timestamp("2023-09-01", tz="UTC")
    before = events[(events["timestamp"] < as_of) & (events["timestamp"] >= as_of - pd.Timedelta(days=30))]
    after = events[(events["timestamp"] >= as_of) & (events["timestamp"] < as_of + pd.Timedelta(days=30))]
    carted = set(before.loc[before["event_type"] == "add_to_cart", "profile_id"])
    active = set(before["profile_id"])
    bought = set(after.loc[after["event_type"] == "purchase", "profile_id"])
    with_cart = len(bought & carted) / len(carted)
    without_cart = len(bought & (active - carted)) / len(active - carted)
    assert with_cart > 1.5 * without_cart


def test_blocks_cover_every_profile_once(monkeypatch) -> None:
    monkeypatch.setattr(generate, "BLOCK_PROFILES", 40)
    blocks = list(generate.iter_blocks(100, seed=1, days=30))
    assert [b.first_profile for b in blocks] == [0, 40, 80]
    assert [len(b.country) for b in blocks] == [40, 40, 20]
    assert all(np.all((b.profile >= b.first_profile) & (b.profile < b.first_profile + 40)) for b in blocks)
    assert list(generate.profile_ids(8, 3)) == ["p0000008", "p0000009", "p0000010"]


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="profiles: need at least 1, got 0"):
        generate.generate_events(0)
    with pytest.raises(ValueError, match="not a date"):
        generate.generate_events(5, start="2023-01-01 10:00")


def test_the_written_data_set_matches_the_log_in_memory_and_its_instance_loads(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(generate, "BLOCK_PROFILES", 50)
    written = generate.write_dataset(tmp_path, 120, seed=5, days=120)
    events, profiles = generate.generate_events(120, seed=5, days=120)
    assert written == {"profiles": 120, "events": len(events)}
    pd.testing.assert_frame_equal(canonicalize(pd.read_parquet(tmp_path / "events.parquet")), events)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "profiles.parquet").astype("str"), profiles)
    spec = load_spec(tmp_path / "instance.yaml")
    assert spec.goal.window_days == 30
    assert spec.eligibility.lookback_days == 365
    assert (spec.training.snapshots, spec.training.snapshot_every_days) == (6, 30)
    assert (spec.training.min_positives, spec.training.min_negatives) == (50, 50)
    assert [c.name for c in spec.custom_events] == ["cancellation", "large_purchase"]
    assert spec.trigger_as_of.isoformat() == "2023-05-01"
    # the variant the scale benchmark runs with --value-and-timing: the same instance, worth the purchases, timed
    variant = load_spec(scale.write_value_and_timing(tmp_path))
    assert (variant.name, variant.goal.value.field, variant.output.timing) == (
        "bench_purchase_30d_value_timing",
        "value",
        True,
    )
    assert (variant.training.min_value_gini_gain, variant.training.min_timing_concordance_gain) == (-1.0, -1.0)
    assert variant.model_dump(exclude={"name", "goal", "output", "training"}) == spec.model_dump(
        exclude={"name", "goal", "output", "training"}
    )


def test_sizes_read_as_numbers_of_profiles() -> None:
    assert [scale.parse_size(s) for s in ("10000", "10k", "300K", "1M", "1.5m", "3M", "10M")] == [
        10_000,
        10_000,
        300_000,
        1_000_000,
        1_500_000,
        3_000_000,
        10_000_000,
    ]
    with pytest.raises(ValueError, match="size 'ten': expected a number of profiles"):
        scale.parse_size("ten")
    sizes = [999, 10_000, 300_000, 1_000_000, 1_500_000, 3_000_000, 10_000_000]
    assert [scale.format_size(n) for n in sizes] == ["999", "10k", "300k", "1M", "1.5M", "3M", "10M"]


def test_step_times_are_read_from_the_progress_lines() -> None:
    stderr = "\n".join(
        [
            "[customer-ai 07:28:45] loading events ...",
            "[customer-ai 07:28:46] loading events done in 0.9s (events=510,234, profiles=8,668)",
            "[customer-ai 07:28:53] labelling 6 snapshots 2023-08-18 .. 2023-12-02 done in 0.4s (rows=25,258)",
            "[customer-ai 07:29:16] writing 5,086 scores and 3 segments to SQLiteStore('/tmp/x') done in 0.4s",
            "[customer-ai 07:29:20] loading events done in 1.2s",
            "history: features look back 228 days instead of 365",
        ]
    )
    assert scale.step_seconds(stderr) == {
        "loading events": 2.1,
        "labelling snapshots": 0.4,
        "writing scores and segments": 0.4,
    }


def _run(ok: bool, wall: float, peak: float, steps: dict) -> dict:
    return {"ok": ok, "wall_seconds": wall, "peak_rss_bytes": peak, "steps": steps}


def test_medians_and_rates_of_one_size_come_from_its_ok_runs_only() -> None:
    runs = [
        _run(True, 30.0, 5e8, {"features": 10.0, "training": 5.0}),
        _run(False, 2.0, 9e9, {"features": 1.0}),  # failed early: neither its time nor its memory is a figure
        _run(True, 20.0, 4e8, {"features": 8.0}),
        _run(False, 900.0, 1e8, {}),
        _run(True, 25.0, 6e8, {"features": 9.0, "training": 4.0}),
    ]
    summary = scale.summarise(10_000, 500_000, runs)
    assert (summary["runs_ok"], summary["runs_failed"]) == (3, 2)
    assert summary["wall_seconds_median"] == 25.0
    assert summary["wall_seconds_all"] == [30.0, 20.0, 25.0]
    assert summary["peak_rss_gb_median"] == 0.5
    assert summary["peak_rss_gb_all"] == [0.5, 0.4, 0.6]
    assert summary["events_per_second"] == 20_000
    assert summary["seconds_per_1k_profiles"] == 2.5
    assert summary["steps_median"] == {"not in a step": 12.0, "features": 9.0, "training": 4.0}
    assert scale.summary_line(summary) == (
        "10k: 10,000 profiles, 500,000 events, wall 25.0 s, peak RSS 0.50 GB (kernel), runs 3 of 5 ok, "
        "2.500 s per 1k profiles"
    )


def test_a_size_without_an_ok_run_has_no_figure() -> None:
    summary = scale.summarise(3_000_000, 150_000_000, [_run(False, 60.0, 3e9, {"loading events": 50.0})])
    assert (summary["runs_ok"], summary["runs_failed"]) == (0, 1)
    assert summary["wall_seconds_median"] is None
    assert summary["peak_rss_gb_median"] is None
    assert summary["seconds_per_1k_profiles"] is None
    assert summary["steps_median"] == {}
    assert scale.summary_line(summary) == (
        "3M: 3,000,000 profiles, 150,000,000 events, no figure (no ok run), runs 0 of 1 ok"
    )


def test_a_run_counts_only_when_it_exited_0_and_published() -> None:
    published = ["bench as of 2024-01-01: ...", "scored 5,086 profiles (low 1, medium 2, high 3)", "store: x"]
    assert scale.run_failure({"returncode": 0, "stdout": published}) is None
    assert scale.run_failure({"returncode": 1, "stdout": published}) == (
        "exit status 1 (the model failed the quality gate)"
    )
    assert scale.run_failure({"returncode": 2, "stdout": []}) == "exit status 2 (bad input or usage)"
    assert scale.run_failure({"returncode": 5, "stdout": []}) == "exit status 5 (a bug in customer-ai)"
    assert scale.run_failure({"returncode": -9, "stdout": []}) == "killed by signal SIGKILL (out of memory?)"
    # stopped at the quality gate with --allow-poor, or cut short: exit status 0 is not enough
    for stdout in (published[:1], published[:2], [published[0], published[2]]):
        failure = scale.run_failure({"returncode": 0, "stdout": stdout})
        assert failure == (
            "exit status 0 but no 'scored N profiles' and 'store:' lines on stdout: the run did not publish"
        )


_TIME_V_SAMPLE = """Command exited with non-zero status 3
\tCommand being timed: "customer-ai run instance.yaml"
\tUser time (seconds): 41.27
\tSystem time (seconds): 3.90
\tPercent of CPU this job got: 145%
\tElapsed (wall clock) time (h:mm:ss or m:ss): {clock}
\tAverage shared text size (kbytes): 0
\tMaximum resident set size (kbytes): 1534212
\tAverage resident set size (kbytes): 0
\tExit status: 3
"""


def test_the_peak_and_wall_time_of_time_v_are_read_from_its_report() -> None:
    assert scale.parse_time_v(_TIME_V_SAMPLE.format(clock="0:31.52")) == {
        "max_rss_bytes": 1_571_033_088,
        "wall_seconds": 31.52,
    }
    assert scale.parse_time_v(_TIME_V_SAMPLE.format(clock="12:03.50"))["wall_seconds"] == 723.5
    assert scale.parse_time_v(_TIME_V_SAMPLE.format(clock="1:02:03"))["wall_seconds"] == 3723.0
    with pytest.raises(ValueError, match="no 'Maximum resident set size'"):
        scale.parse_time_v("Command terminated by signal 9\n\tElapsed (wall clock) time (h:mm:ss or m:ss): 0:01.00\n")


def _size(profiles: int, events: int, wall: float | None, peak: float | None) -> dict:
    ok = wall is not None
    return scale.summarise(profiles, events, [_run(ok, wall or 1.0, peak or 1.0, {})])


def test_ratios_between_consecutive_sizes_and_the_targets() -> None:
    sizes = [
        _size(3_000_000, 150_000_000, 980.0, 1.65e9),  # out of order: ratios follow the profiles
        _size(300_000, 15_000_000, 100.0, 1.5e9),
        _size(10_000_000, 500_000_000, 3_600.0, 4.2e9),
    ]
    ratios = scale.size_ratios(sizes)
    assert [scale.ratio_line(r) for r in ratios] == [
        "300k -> 3M: wall 9.8x, peak 1.10x (10x profiles, 10.00x events; wall 9.8x per 10x events)",
        "3M -> 10M: wall 3.7x, peak 2.55x (3.33x profiles, 3.33x events; wall 12.0x per 10x events)",
    ]
    assert ratios[1] == {
        "from": "3M",
        "to": "10M",
        "profiles_ratio": 3.333333,
        "events_ratio": 3.333333,
        "wall_ratio": 3.673469,
        "peak_ratio": 2.545455,
        "wall_per_10x_events": 12.042111,
    }
    assert scale.target_verdicts(sizes, ratios) == [
        {"target": "wall 300k -> 3M <= 11x per 10x events", "value": 9.8, "limit": 11.0, "met": True},
        {"target": "wall 3M -> 10M <= 11x per 10x events", "value": 12.042111, "limit": 11.0, "met": False},
        {"target": "peak 300k -> 3M <= 1.25x", "value": 1.1, "limit": 1.25, "met": True},
        {"target": "peak at 10M <= 4 GB", "value": 4.2, "limit": 4.0, "met": False},
    ]
    # a size without an ok run gives no ratio and no target
    failed = [sizes[1], _size(3_000_000, 150_000_000, None, None)]
    ratios = scale.size_ratios(failed)
    assert [scale.ratio_line(r) for r in ratios] == ["300k -> 3M: no ratio (a size without an ok run)"]
    assert scale.target_verdicts(failed, ratios) == []


# the kernel's figure must be measured from a small process: a child's ru_maxrss starts from its parent's peak at
# the spawn (Linux counts the parent's image in), and this test process may have peaked high before
_MEASURE = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("bench_scale", sys.argv[1])
scale = importlib.util.module_from_spec(spec)
spec.loader.exec_module(scale)
allocate = [sys.executable, "-c", "block = bytearray(200 * 2**20)"]  # 210 MB, written (zeroed) page by page
idle = [sys.executable, "-c", "pass"]
time_v = sys.argv[2] == "time-v"
print(json.dumps([scale.measure_run(command, {}, time_v=time_v) for command in (allocate, idle)]))
"""


def _measure_in_a_fresh_process(mode: str) -> tuple[dict, dict]:
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(ROOT / "bench" / "scale.py"), mode],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    allocated, idle = json.loads(done.stdout)
    assert allocated["returncode"] == idle["returncode"] == 0
    # what the child inherits stays below what is asserted, else the test could not fail
    assert allocated["launcher_peak_rss_bytes"] < 150e6
    return allocated, idle


def test_the_peak_is_the_kernels_from_wait4_on_a_real_child() -> None:
    allocated, idle = _measure_in_a_fresh_process("wait4")
    assert allocated["peak_rss_source"] == "wait4 ru_maxrss"
    assert 200e6 <= allocated["peak_rss_bytes"] < 2e9
    assert not allocated["peak_rss_may_be_inherited"]
    # the same interpreter without the block: its own peak (about 10 MB) or, if higher, what it inherited
    assert idle["peak_rss_bytes"] < 150e6
    assert "time_v" not in allocated


@pytest.mark.skipif(not Path(scale.TIME_V).exists(), reason="no /usr/bin/time (Debian package 'time')")
def test_time_v_is_kept_beside_the_wait4_peak_as_a_cross_check() -> None:
    allocated, idle = _measure_in_a_fresh_process("time-v")
    assert 200e6 <= allocated["time_v"]["max_rss_bytes"] < 2e9
    assert idle["time_v"]["max_rss_bytes"] < 50e6  # /usr/bin/time is small: its child inherits next to nothing
    # /usr/bin/time's child is the run: wait4 on /usr/bin/time sees its peak too
    assert abs(allocated["peak_rss_bytes"] - allocated["time_v"]["max_rss_bytes"]) < 20e6
    assert 0 <= allocated["time_v"]["wall_seconds"] <= allocated["wall_seconds"] + 0.1


def test_memory_peaks_are_given_to_the_phase_between_two_progress_lines() -> None:
    log = [
        "[customer-ai 23:59:50] loading events ...",
        "[customer-ai 23:59:55] loading events done in 5.5s",
        "[customer-ai 00:00:01] training ...",
    ]
    at = dt.datetime(2026, 11, 29, 23, 59, 50).timestamp()
    samples = [(at - 1, 100), (at + 1, 3e9), (at + 4.9, 4e9), (at + 5.1, 2e9), (at + 11.0, 5e9), (at + 15, 1e9)]
    assert scale.memory_by_phase(log, samples) == [
        {"phase": "training ...", "peak_rss_gb": 5.0},
        {"phase": "loading events ...", "peak_rss_gb": 4.0},
        {"phase": "loading events done in 5.5s", "peak_rss_gb": 2.0},
        {"phase": "start-up", "peak_rss_gb": 0.0},
    ]
    assert scale.memory_by_phase(log, samples, top=1) == [{"phase": "training ...", "peak_rss_gb": 5.0}]
    assert scale.memory_by_phase(log, []) == []
