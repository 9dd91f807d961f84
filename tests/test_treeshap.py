"""TreeSHAP by decision pattern: the same values as LightGBM's pred_contrib, on every kind of split."""

from __future__ import annotations

import logging

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from customer_ai import treeshap


def _train(frame: pd.DataFrame, label: np.ndarray, rounds: int = 30, **params: object) -> lgb.Booster:
    settings = {"objective": "binary", "verbosity": -1, "num_threads": 1, "deterministic": True, "seed": 3}
    settings |= {"num_leaves": 15, "min_data_in_leaf": 5, "learning_rate": 0.2, **params}
    return lgb.train(settings, lgb.Dataset(frame, label), num_boost_round=rounds)


def _mixed(rows: int, seed: int) -> pd.DataFrame:
    """Numbers with gaps and zeros, whole counts, and a categorical with missing values."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "spend": rng.gamma(2.0, 30.0, rows),
            "visits": rng.poisson(3, rows).astype("float64"),
            "days": rng.integers(0, 365, rows).astype("float64"),
            "zeros": np.where(rng.random(rows) < 0.4, 0.0, rng.normal(size=rows)),
            "country": pd.Categorical(rng.choice(["DE", "FR", "GB", "IT", "PT"], rows)),
        }
    )
    frame.loc[rng.random(rows) < 0.15, "spend"] = np.nan
    frame.loc[rng.random(rows) < 0.1, "country"] = np.nan
    return frame


def _label(frame: pd.DataFrame, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    signal = frame["spend"].fillna(20).to_numpy() / 60 + frame["visits"].to_numpy() / 3 - frame["days"] / 200
    signal = signal + (frame["country"] == "PT").to_numpy() + frame["zeros"].to_numpy()
    return (signal + rng.normal(size=len(frame)) > 1.5).astype(int)


def _assert_same(booster: lgb.Booster, frame: pd.DataFrame, iterations: int | None = None) -> np.ndarray:
    iterations = iterations or booster.current_iteration()
    expected = booster.predict(frame, pred_contrib=True, num_iteration=iterations)
    actual = treeshap.contributions(booster, frame, iterations, threads=1)
    assert actual.shape == expected.shape
    assert np.max(np.abs(actual - expected)) <= 1e-12
    return actual


@pytest.fixture(scope="module")
def mixed() -> tuple[pd.DataFrame, np.ndarray]:
    frame = _mixed(3000, seed=0)
    return frame, _label(frame, seed=1)


def test_a_stump_gives_each_side_its_value_less_the_expected_value() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]})
    booster = _train(frame, np.array([0, 0, 0, 1, 0, 1, 1, 1]), rounds=1, num_leaves=2, min_data_in_leaf=1)
    tree = booster.dump_model()["tree_info"][0]["tree_structure"]
    left, right = tree["left_child"], tree["right_child"]
    assert (tree["threshold"], left["leaf_count"], right["leaf_count"]) == (3.5000000000000004, 3, 5)
    left, right = left["leaf_value"], right["leaf_value"]
    expected_value = (3 * left + 5 * right) / 8
    values = treeshap.contributions(booster, pd.DataFrame({"x": [1.0, 8.0]}), 1)
    np.testing.assert_allclose(values[:, 1], [expected_value, expected_value], rtol=0, atol=1e-15)
    np.testing.assert_allclose(values[:, 0], [left - expected_value, right - expected_value], rtol=0, atol=1e-15)


def test_equal_to_pred_contrib_with_missing_values_categories_and_zeros(mixed: tuple) -> None:
    frame, label = mixed
    booster = _train(frame, label)
    fresh = _mixed(2000, seed=7)
    fresh["country"] = fresh["country"].cat.add_categories(["US"])
    fresh.loc[:20, "country"] = "US"  # a category the model never saw
    fresh.loc[21:40, "visits"] = np.nan  # missing where training had none
    fresh.loc[41:60, "zeros"] = 1e-36  # counts as zero for LightGBM
    _assert_same(booster, fresh)


def test_equal_with_zero_as_missing_splits(mixed: tuple) -> None:
    frame, label = mixed
    booster = _train(frame, label, zero_as_missing=True)
    kinds = {n["missing_type"] for n in _internal_nodes(booster)}
    assert "Zero" in kinds
    _assert_same(booster, _mixed(1500, seed=8))


def test_equal_with_splits_that_send_missing_values_right(mixed: tuple) -> None:
    frame, label = mixed
    frame = frame.assign(spend=-frame["spend"])  # low spend now predicts the goal: missing values go the other way
    booster = _train(frame, label)
    assert {(n["missing_type"], n["default_left"]) for n in _internal_nodes(booster)} >= {("NaN", False)}
    _assert_same(booster, _mixed(1500, seed=9).assign(spend=lambda f: -f["spend"]))


def test_equal_on_trees_with_more_splits_than_fit_a_table(mixed: tuple) -> None:
    frame, label = mixed
    booster = _train(frame, label, rounds=8, num_leaves=90, min_data_in_leaf=2)
    assert max(len(s) for s in treeshap._trees(booster, 8)) > 64  # several words per pattern
    _assert_same(booster, _mixed(1500, seed=10))


def test_equal_on_a_prefix_of_the_trees_and_on_single_leaf_trees(mixed: tuple) -> None:
    frame, label = mixed
    booster = _train(frame, label, rounds=12)
    _assert_same(booster, _mixed(500, seed=11), iterations=5)
    flat = _train(
        frame, np.zeros(len(frame), dtype=int) | (np.arange(len(frame)) == 0), rounds=3, min_data_in_leaf=2000
    )
    assert all(len(s) == 0 for s in treeshap._trees(flat, 3))
    _assert_same(flat, frame.head(10))


def test_rows_sharing_every_decision_share_one_representative() -> None:
    frame = pd.DataFrame({"x": [0.0, 1.0, 0.5, 2.0, np.nan], "y": [5.0, 5.0, 9.0, 9.0, 5.0]})
    splits = [
        treeshap._Split(feature=0, threshold=0.75, categories=None, missing="NaN", default_left=False),
        treeshap._Split(feature=1, threshold=6.0, categories=None, missing="None", default_left=True),
    ]
    columns = treeshap._Columns(frame.to_numpy())
    pattern, representative = treeshap._patterns(columns, splits, len(frame))
    # left at x <= 0.75 (bit 0), left at y <= 6 (bit 1): keys 3, 2, 1, 0, 2 (missing x goes right)
    np.testing.assert_array_equal(pattern, [3, 2, 1, 0, 2])
    assert len(representative) == 4
    np.testing.assert_array_equal(pattern[representative], [0, 1, 2, 3])


def test_categorical_decisions_truncate_like_lightgbm() -> None:
    frame = np.array([[0.0], [1.9], [2.0], [-0.5], [-1.0], [np.nan]])
    split = treeshap._Split(
        feature=0, threshold=float("nan"), categories=np.array([0, 1]), missing="None", default_left=True
    )
    out = np.empty(len(frame), dtype=bool)
    treeshap._Columns(frame).decide(split, out)
    # 1.9 reads as 1 and -0.5 as 0 (truncation); -1 and missing go right
    np.testing.assert_array_equal(out, [True, True, False, True, False, False])


def test_feature_matrix_is_lightgbms_own_conversion(mixed: tuple) -> None:
    frame, label = mixed
    booster = _train(frame, label, rounds=2)
    fresh = _mixed(50, seed=12)
    expected, *_ = lgb.basic._data_from_pandas(fresh, "auto", "auto", booster.pandas_categorical)
    np.testing.assert_array_equal(treeshap.feature_matrix(fresh, booster), expected.astype("float64"))


def test_a_disagreement_on_the_sampled_rows_falls_back_to_pred_contrib(
    mixed: tuple, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    frame, label = mixed
    booster = _train(frame, label, rounds=5)
    original = treeshap._Columns.decide

    def blind_to_visits(self: treeshap._Columns, split: treeshap._Split, out: np.ndarray) -> None:
        original(self, split, out)
        if split.feature == 1:
            out[:] = True  # rows that differ only in visits now share a pattern they should not

    monkeypatch.setattr(treeshap._Columns, "decide", blind_to_visits)
    with caplog.at_level(logging.WARNING, logger="customer_ai"):
        values = treeshap.contributions(booster, frame, 5)
    np.testing.assert_array_equal(values, booster.predict(frame, pred_contrib=True, num_iteration=5))
    assert "computing every row with pred_contrib instead" in caplog.text


def test_no_rows_give_an_empty_matrix(mixed: tuple) -> None:
    frame, label = mixed
    booster = _train(frame, label, rounds=2)
    assert treeshap.contributions(booster, frame.head(0), 2).shape == (0, frame.shape[1] + 1)


def _internal_nodes(booster: lgb.Booster) -> list[dict]:
    found: list[dict] = []

    def walk(node: dict) -> None:
        if "split_index" in node:
            found.append(node)
            walk(node["left_child"])
            walk(node["right_child"])

    for tree in booster.dump_model()["tree_info"]:
        walk(tree["tree_structure"])
    return found


def test_a_model_is_read_once_per_tree_count(mixed: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    frame, label = mixed
    booster = _train(frame, label, rounds=6)
    dumps = []
    dump_model = booster.dump_model
    monkeypatch.setattr(booster, "dump_model", lambda **kwargs: dumps.append(kwargs) or dump_model(**kwargs))
    first = _assert_same(booster, frame.head(200))
    assert np.array_equal(_assert_same(booster, frame.head(200)), first)  # the second call reads no dump
    _assert_same(booster, frame.head(200), iterations=3)
    assert dumps == [{"num_iteration": 6}, {"num_iteration": 3}]
