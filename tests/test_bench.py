"""The benchmark scripts: the seeded log generator (deterministic, the stated shape) and the scale harness's parsing."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from customer_ai.events import CANONICAL_COLUMNS, canonicalize
from customer_ai.spec import load_spec

from conftest import load_bench

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


def test_sizes_read_as_numbers_of_profiles() -> None:
    assert [scale.parse_size(s) for s in ("10000", "10k", "300K", "1M", "1.5m")] == [
        10_000,
        10_000,
        300_000,
        1_000_000,
        1_500_000,
    ]
    with pytest.raises(ValueError, match="size 'ten': expected a number of profiles"):
        scale.parse_size("ten")


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


def test_medians_and_rates_of_one_size() -> None:
    runs = [
        {"wall_seconds": 30.0, "peak_rss_bytes": 5e8, "steps": {"features": 10.0, "training": 5.0}},
        {"wall_seconds": 20.0, "peak_rss_bytes": 4e8, "steps": {"features": 8.0}},
        {"wall_seconds": 25.0, "peak_rss_bytes": 6e8, "steps": {"features": 9.0, "training": 4.0}},
    ]
    summary = scale.summarise(10_000, 500_000, runs)
    assert summary["wall_seconds_median"] == 25.0
    assert summary["peak_rss_gb_median"] == 0.5
    assert summary["events_per_second"] == 20_000
    assert summary["seconds_per_1k_profiles"] == 2.5
    assert summary["steps_median"] == {"not in a step": 12.0, "features": 9.0, "training": 4.0}


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
