"""The time to the next goal event: the interval grid, person-periods, the hazard fit, anchoring, medians, dates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from customer_ai.timing_model import (
    INTERVAL_COLUMN,
    TIMING_MODEL_FILE,
    TimingGrid,
    TimingModel,
    TimingSnapshot,
    anchored,
    fit_timing_model,
    median_days,
    next_by,
    person_periods,
    restricted_mean,
    snapshot_grid,
    timing_quality,
    timing_rows,
    timing_verdict,
)

UTC = "UTC"


def day(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=UTC)


# ---- the grid ------------------------------------------------------------------------------------------------------


def test_the_grid_has_quarter_window_intervals_up_to_the_horizon() -> None:
    grid = TimingGrid.of(30, 90)
    assert (grid.width, grid.count, grid.window_index, grid.end_days) == (7.5, 12, 4, 90.0)
    assert (TimingGrid.of(14, 42).width, TimingGrid.of(14, 42).count) == (3.5, 12)
    longer = TimingGrid.of(30, 100)  # 13.3 intervals: the last one ends after the horizon
    assert (longer.count, longer.end_days, longer.horizon_days) == (14, 105.0, 100.0)
    assert TimingGrid.of(30, 30).count == 4
    assert TimingGrid.from_dict(longer.to_dict()) == longer


@pytest.mark.parametrize(("window", "horizon"), [(30, 29), (0, 10), (-4, 10)])
def test_a_grid_without_the_whole_window_is_refused(window: int, horizon: int) -> None:
    with pytest.raises(ValueError, match="window"):
        TimingGrid.of(window, horizon)


def test_intervals_within_counts_those_ending_on_or_before_the_days() -> None:
    grid = TimingGrid.of(4, 12)  # width 1, 12 intervals
    counted = grid.intervals_within([0.0, 0.999, 1.0, 2.5, 12.0, 15.0, -1.0])
    assert counted.tolist() == [0, 0, 1, 2, 12, 12, 0]


def test_the_snapshot_grid_steps_back_half_a_window_from_one_window_before_while_covered() -> None:
    as_of = day("2024-03-01")
    grid = snapshot_grid(as_of, 5, day("2024-02-16"))  # steps of ceil(5 / 2) = 3 days
    assert grid == [day("2024-02-25"), day("2024-02-22"), day("2024-02-19"), day("2024-02-16")]  # the earliest: in
    assert snapshot_grid(as_of, 5, day("2024-02-17")) == grid[:3]
    assert snapshot_grid(as_of, 5, day("2024-02-26")) == []


# ---- person-periods ------------------------------------------------------------------------------------------------


def periods(days: list[float], observed: float | list[float]) -> list[list[tuple[int, int]]]:
    """Per profile, its rows as (interval, label), on intervals of one day."""
    result = person_periods(np.array(days), observed, TimingGrid.of(4, 8))
    out = [[] for _ in days]
    for row, interval, label in zip(result.row, result.interval, result.label, strict=True):
        out[row].append((int(interval), int(label)))
    return out


def test_an_event_on_a_boundary_belongs_to_the_later_interval() -> None:
    assert periods([0.0, 0.999, 1.0, 2.5], 3.0) == [
        [(0, 1)],
        [(0, 1)],
        [(0, 0), (1, 1)],
        [(0, 0), (1, 0), (2, 1)],
    ]


def test_without_an_event_a_profile_has_every_observed_interval() -> None:
    assert periods([np.nan, 7.0, 50.0, np.inf], 3.0) == [[(0, 0), (1, 0), (2, 0)]] * 4


def test_only_intervals_that_end_on_or_before_the_observed_days_give_rows() -> None:
    # observed 2 days: intervals [0, 1) and [1, 2); an event at 2.0 lies in [2, 3), after it: censored
    assert periods([1.999, 2.0, np.nan], 2.0) == [[(0, 0), (1, 1)], [(0, 0), (1, 0)], [(0, 0), (1, 0)]]
    # observed 2.999 days: [2, 3) is not whole, so an event at 2.5 is not seen
    assert periods([2.5], 2.999) == [[(0, 0), (1, 0)]]
    assert periods([0.2, np.nan], 0.999) == [[], []]  # no whole interval
    assert periods([np.nan], 100.0) == [[(k, 0) for k in range(8)]]  # at most the grid's intervals


def test_the_observed_days_may_differ_per_profile() -> None:
    assert periods([np.nan, 1.5, 1.5], [1.0, 1.0, 2.0]) == [[(0, 0)], [(0, 0)], [(0, 0), (1, 1)]]


def test_an_event_before_its_snapshot_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        person_periods(np.array([1.0, -0.5]), 3.0, TimingGrid.of(4, 8))


# ---- training rows -------------------------------------------------------------------------------------------------


def test_timing_rows_stack_every_snapshot_with_its_features_and_interval() -> None:
    grid = TimingGrid.of(4, 8)
    first = pd.DataFrame({"x": [1.0, 2.0]}, index=pd.Index(["a", "b"], name="profile_id"))
    second = pd.DataFrame({"x": [3.0]}, index=pd.Index(["a"], name="profile_id"))
    too_late = pd.DataFrame({"x": [9.0]}, index=pd.Index(["c"], name="profile_id"))
    rows = timing_rows(
        [
            TimingSnapshot(first, np.array([1.5, np.nan]), 2.0),
            TimingSnapshot(too_late, np.array([np.nan]), 0.5),  # no whole interval: nothing
            TimingSnapshot(second, np.array([0.0]), 1.0),
        ],
        grid,
    )
    assert rows.frame.to_dict("list") == {"x": [1.0, 1.0, 2.0, 2.0, 3.0], INTERVAL_COLUMN: [0, 1, 0, 1, 0]}
    assert rows.label.tolist() == [0, 1, 0, 0, 1]
    assert rows.profile.tolist() == ["a", "a", "b", "b", "a"]
    assert rows.summary == {"snapshots": 2, "profile_snapshots": 3, "rows": 5, "rows_kept": 5, "max_rows": 1_500_000}


def test_above_the_row_cap_whole_profile_snapshots_are_kept_by_a_hash() -> None:
    grid = TimingGrid.of(4, 8)
    ids = pd.Index([f"p{i}" for i in range(400)], name="profile_id")
    features = pd.DataFrame({"x": np.arange(400.0)}, index=ids)
    days = np.where(np.arange(400) % 3 == 0, np.nan, np.arange(400) % 8 + 0.5)
    snapshots = [TimingSnapshot(features, days, 8.0), TimingSnapshot(features, days, 4.0)]
    everything = timing_rows(snapshots, grid)
    capped = timing_rows(snapshots, grid, max_rows=1000)
    # per profile i (k = i % 8, no event when i % 3 == 0): 8 rows or k + 1, then 4 or min(k + 1, 4)
    assert everything.summary["rows"] == capped.summary["rows"] == len(everything.frame) == 3670
    assert capped.summary["rows_kept"] == len(capped.frame) == 998  # about the cap (this hash)
    # a kept (profile, snapshot) keeps all its intervals: the same rows as without the cap
    full = everything.frame.assign(profile=everything.profile, label=everything.label)
    kept = capped.frame.assign(profile=capped.profile, label=capped.label)
    full["snapshot"] = _snapshot_of(full)
    kept["snapshot"] = _snapshot_of(kept)
    units = kept[["profile", "snapshot"]].drop_duplicates()
    expected = full.merge(units, on=["profile", "snapshot"])
    pd.testing.assert_frame_equal(kept.reset_index(drop=True), expected.reset_index(drop=True))
    assert 0 < units["snapshot"].eq(0).sum() < 400  # some units of both snapshots, not all
    assert 0 < units["snapshot"].eq(1).sum() < 400
    again = timing_rows(snapshots, grid, max_rows=1000)
    pd.testing.assert_frame_equal(again.frame, capped.frame)  # deterministic


def _snapshot_of(frame: pd.DataFrame) -> np.ndarray:
    """The position of each row's snapshot: a new snapshot starts where the profile number goes down."""
    number = frame["profile"].str[1:].astype(int).to_numpy()
    return np.concatenate([[0], np.cumsum(np.diff(number) < 0)])


# ---- the fit -------------------------------------------------------------------------------------------------------


def buyers(count: int, seed: int, observed: float) -> TimingSnapshot:
    """Profiles whose ``fast`` ones buy after about 2 days, the others after about 12, observed for ``observed``."""
    rng = np.random.default_rng(seed)
    fast = rng.random(count) < 0.5
    days = rng.exponential(np.where(fast, 2.0, 12.0))
    features = pd.DataFrame(
        {"fast": fast.astype(float), "noise": rng.random(count)},
        index=pd.Index([f"s{seed}-{i}" for i in range(count)], name="profile_id"),
    )
    return TimingSnapshot(features, np.where(days < observed, days, np.nan), observed)


@pytest.fixture(scope="module")
def fitted() -> TimingModel:
    return fit_timing_model([buyers(800, 1, 12.0), buyers(800, 2, 8.0), buyers(800, 3, 5.0)], TimingGrid.of(4, 12))


def scoring() -> pd.DataFrame:
    return pd.DataFrame({"fast": [1.0, 0.0], "noise": [0.5, 0.5]}, index=pd.Index(["f", "s"], name="profile_id"))


def test_the_hazard_model_gives_falling_curves_that_part_fast_and_slow_buyers(fitted: TimingModel) -> None:
    curves = fitted.curves(scoring())
    assert curves.shape == (2, 13)
    assert curves[:, 0].tolist() == [1.0, 1.0]
    assert (np.diff(curves, axis=1) <= 0).all()
    # S(4 days) of exponential times with means 2 and 12: 0.135 and 0.717
    assert curves[0, 4] == pytest.approx(np.exp(-2.0), abs=0.06)
    assert curves[1, 4] == pytest.approx(np.exp(-4 / 12), abs=0.06)
    assert fitted.learned_intervals == 12
    assert fitted.features == ["fast", "noise"]
    assert fitted.training == {
        "snapshots": 3,
        "profile_snapshots": 2400,
        "rows": fitted.training["rows"],
        "rows_kept": fitted.training["rows"],
        "max_rows": 1_500_000,
    }
    again = fit_timing_model([buyers(800, 1, 12.0), buyers(800, 2, 8.0), buyers(800, 3, 5.0)], TimingGrid.of(4, 12))
    np.testing.assert_array_equal(again.curves(scoring()), curves)  # deterministic


def test_curves_are_the_same_predicted_in_parts(fitted: TimingModel, monkeypatch: pytest.MonkeyPatch) -> None:
    many = pd.concat([scoring()] * 5, ignore_index=True)
    whole = fitted.curves(many)
    monkeypatch.setattr("customer_ai.timing_model._PREDICT_ROWS", 24)  # two profiles at a time
    np.testing.assert_array_equal(fitted.curves(many), whole)


def test_the_learned_intervals_are_the_last_a_training_row_reached() -> None:
    model = fit_timing_model([buyers(800, 1, 5.0), buyers(800, 2, 4.0)], TimingGrid.of(4, 12))
    assert model.learned_intervals == 5
    assert model.limit_days == 5.0
    slow = model.curves(scoring())[1:]
    assert np.isnan(model.median_days(slow)).all()  # the slow buyers' median (8.3 days) lies beyond 5 days
    assert 5.0 < median_days(slow, 1.0)[0] < 12.0  # where the unlearned intervals put it


def test_a_fit_is_refused_without_rows_or_profiles_on_both_sides_or_with_a_feature_named_interval() -> None:
    grid = TimingGrid.of(4, 12)
    with pytest.raises(ValueError, match="no training row"):
        fit_timing_model([buyers(800, 1, 0.5)], grid)  # no whole interval observed
    with pytest.raises(ValueError, match="too few"):
        fit_timing_model([buyers(1, 1, 12.0)], grid)
    named = buyers(50, 1, 12.0)
    with pytest.raises(ValueError, match="'interval'"):
        fit_timing_model([named._replace(features=named.features.rename(columns={"noise": "interval"}))], grid)


def test_a_saved_model_loads_back_and_gives_the_same_curves(fitted: TimingModel, tmp_path) -> None:
    described = fitted.save(tmp_path)
    assert described["grid"] == {
        "window_days": 4.0,
        "horizon_days": 12.0,
        "width_days": 1.0,
        "intervals": 12,
        "window_index": 4,
    }
    assert (described["learned_intervals"], described["best_iteration"]) == (12, fitted.best_iteration)
    loaded = TimingModel.from_saved((tmp_path / TIMING_MODEL_FILE).read_text(), described)
    np.testing.assert_array_equal(loaded.curves(scoring()), fitted.curves(scoring()))
    assert (loaded.grid, loaded.features, loaded.training) == (fitted.grid, fitted.features, fitted.training)
    assert loaded.best_iteration == fitted.best_iteration


def test_a_saved_model_that_does_not_load_says_which_part(fitted: TimingModel, tmp_path) -> None:
    described = fitted.save(tmp_path)
    text = (tmp_path / TIMING_MODEL_FILE).read_text()
    with pytest.raises(ValueError, match="LightGBM cannot load"):
        TimingModel.from_saved("tree\nnot a model", described)
    with pytest.raises(ValueError, match="description is incomplete.*learned_intervals"):
        TimingModel.from_saved(text, {k: v for k, v in described.items() if k != "learned_intervals"})


# ---- anchoring -----------------------------------------------------------------------------------------------------

CURVE = np.array([[1.0, 0.9, 0.8, 0.7, 0.6, 0.5]])  # the window ends at column 2: S(w) = 0.8


def test_anchoring_raises_the_curve_to_the_power_that_gives_the_probability_in_the_window() -> None:
    # c = log(1 - 0.36) / log(0.8) = 2
    np.testing.assert_allclose(anchored(CURVE, [0.36], 2), [[1.0, 0.81, 0.64, 0.49, 0.36, 0.25]], rtol=1e-12)
    rng = np.random.default_rng(0)
    curves = np.concatenate([np.ones((50, 1)), np.cumprod(rng.uniform(0.5, 0.99, (50, 6)), axis=1)], axis=1)
    p = rng.uniform(0.0, 1.0, 50)
    np.testing.assert_allclose(1.0 - anchored(curves, p, 2)[:, 2], p, rtol=1e-12)


def test_anchoring_to_a_probability_of_0_or_1() -> None:
    assert anchored(CURVE, [0.0], 2).tolist() == [[1.0] * 6]
    assert anchored(CURVE, [1.0], 2).tolist() == [[1.0, 0.0, 0.0, 0.0, 0.0, 0.0]]


def test_a_curve_certain_or_impossible_within_the_window_is_anchored_with_a_constant_hazard() -> None:
    flat = np.array([[1.0, 1.0, 1.0, 0.9, 0.8, 0.7], [1.0, 0.5, 0.0, 0.0, 0.0, 0.0]])
    expected = [1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125]  # (1 - 0.75) ** (t / w)
    np.testing.assert_allclose(anchored(flat, [0.75, 0.75], 2), [expected, expected], rtol=1e-12)
    assert anchored(flat, [0.0, 1.0], 2).tolist() == [[1.0] * 6, [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]]


@pytest.mark.parametrize("p", [-0.1, 1.1, np.nan])
def test_a_probability_outside_0_1_is_refused(p: float) -> None:
    with pytest.raises(ValueError, match="outside"):
        anchored(CURVE, [p], 2)


# ---- medians and dates ---------------------------------------------------------------------------------------------


def test_the_median_is_interpolated_inside_its_interval() -> None:
    curves = np.array([[1.0, 0.8, 0.4, 0.2], [1.0, 0.5, 0.4, 0.3], [1.0, 0.9, 0.8, 0.7], [1.0, 0.6, 0.55, 0.5]])
    median = median_days(curves, 2.0)
    np.testing.assert_allclose(median[:2], [3.5, 2.0], rtol=1e-12)  # (1 + 0.3 / 0.4) * 2; S = 0.5 on a boundary
    assert np.isnan(median[2])  # above one half to the end: NaN, not inf
    assert median[3] == pytest.approx(6.0)  # on the last boundary
    limited = median_days(curves, 2.0, limit_days=3.5)
    assert limited[0] == pytest.approx(3.5)  # at the limit: given
    assert np.isnan(median_days(curves, 2.0, limit_days=3.4)[0])


def test_the_model_leaves_a_median_beyond_the_horizon_or_the_learned_intervals_empty() -> None:
    curves = np.array([[1.0] + [1.0 - 0.0525 * k for k in range(1, 11)]])  # S = 0.5 at 9.52 days
    grid = TimingGrid.of(4, 9.5)  # 10 intervals of a day, the horizon inside the last
    assert median_days(curves, 1.0)[0] == pytest.approx(9.5238095238)
    assert np.isnan(TimingModel(None, grid, [], 10).median_days(curves)[0])  # beyond 9.5 days
    assert TimingModel(None, TimingGrid.of(4, 10), [], 10).median_days(curves)[0] == pytest.approx(9.5238095238)
    assert np.isnan(TimingModel(None, TimingGrid.of(4, 10), [], 9).median_days(curves)[0])  # learned up to 9 days


def test_next_by_is_the_last_day_the_median_reaches_into() -> None:
    dates = next_by(day("2024-03-01"), np.array([7.0, 6.5, 0.2, 0.0, np.nan, 7.0 + 1e-12, 30.999, 1.0]))
    assert dates.tolist() == [
        "2024-03-07",  # [Mar 1, Mar 8): by the end of Mar 7
        "2024-03-07",
        "2024-03-01",  # the as-of date itself
        "2024-03-01",
        None,
        "2024-03-07",  # float noise above a whole day stays on it
        "2024-03-31",
        "2024-03-01",
    ]
    assert next_by(day("2024-03-01"), np.array([])).tolist() == []


# ---- held-out measures and the gate ---------------------------------------------------------------------------------


def test_the_held_out_measures_read_the_anchored_curves_against_the_days_seen(fitted: TimingModel) -> None:
    held = buyers(400, 9, 4.0)
    probability = np.where(held.features["fast"] > 0, 0.8, 0.3)
    measured = timing_quality(
        fitted,
        fitted.curves(held.features),
        probability,
        held.days,
        span_days=4.0,
        baselines={"noise": held.features["noise"].to_numpy(), "reversed": -held.features["fast"].to_numpy()},
    )
    curves = fitted.anchored(fitted.curves(held.features), probability)
    np.testing.assert_allclose(1.0 - curves[:, fitted.grid.window_index], probability, rtol=1e-9)
    assert measured["span_days"] == 4.0
    assert measured["concordance"] > 0.6  # the fast ones, seen to buy sooner, are predicted sooner
    assert abs(measured["baselines"]["noise"]["concordance"] - 0.5) < 0.08
    assert measured["baselines"]["reversed"]["concordance"] > 0.6  # -fast: fewer days for the fast ones
    medians = fitted.median_days(curves)
    assert measured["finite_median"] == float(np.mean(~np.isnan(medians)))
    assert 0 <= measured["counted"] <= len(held.days)


def test_restricted_mean_is_the_area_under_the_curve() -> None:
    curves = np.array([[1.0, 0.5, 0.25], [1.0, 1.0, 1.0]])
    assert restricted_mean(curves, 2.0).tolist() == [2.25, 4.0]


def test_the_timing_gate_asks_for_a_concordance_above_the_best_baseline() -> None:
    better = {"concordance": 0.71, "baselines": {"recency": {"concordance": 0.65}, "bgnbd": {"concordance": 0.70}}}
    assert timing_verdict(better) == (
        "ok",
        "the timing model's concordance 0.710 is above the repeat-buying model's 0.700",
    )
    assert timing_verdict(better, 0.02) == (
        "poor",
        "the timing model's concordance 0.710 is not above the repeat-buying model's 0.700 by more than 0.02 "
        "(training.min_timing_concordance_gain)",
    )
    assert timing_verdict({"concordance": float("nan"), "baselines": {}})[0] == "poor"
    assert timing_verdict({"concordance": 0.6, "baselines": {}})[0] == "ok"
