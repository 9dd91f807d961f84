"""The pipeline steps on a small synthetic event log with a learnable signal."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from customer_ai import pipeline

from conftest import make_events, make_spec, synthetic_events, ts

AS_OF = ts("2012-01-01")


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    return synthetic_events()


@pytest.fixture
def spec():
    return make_spec(
        eligibility={
            "lookback_days": 365,
            "events": [{"where": [{"field": "event_type", "op": "eq", "value": "purchase"}]}],
        },
        training={"snapshots": 4, "snapshot_every_days": 30, "min_positives": 50, "min_negatives": 50},
        output={"factors": 3},
    )


def test_training_set_has_a_row_per_eligible_profile_and_snapshot(events: pd.DataFrame, spec) -> None:
    training = pipeline.build_training_set(spec, events, AS_OF)
    assert [f"{s:%Y-%m-%d}" for s in training.snapshots] == ["2011-12-02", "2011-11-02", "2011-10-03", "2011-09-03"]
    assert len(training.features) == len(training.labels)
    counts = training.counts()
    assert [c["role"] for c in counts] == ["validation", "training", "training", "training"]
    for count in counts:
        snapshot = pd.Timestamp(count["as_of"], tz="UTC")
        window = events[(events.timestamp >= snapshot - pd.Timedelta(days=365)) & (events.timestamp < snapshot)]
        assert count["rows"] == window["profile_id"].nunique()
        assert count["positives"] + count["negatives"] == count["rows"]
    assert sum(c["negatives"] for c in counts) > 0  # customers who did not buy again are rows, not dropped


def test_insufficient_data_names_counts_and_thresholds(events: pd.DataFrame) -> None:
    greedy = make_spec(training={"snapshots": 2, "min_positives": 100_000, "min_negatives": 1})
    with pytest.raises(pipeline.InsufficientDataError, match=r"at least 100,000 positive and 1 negative"):
        pipeline.build_training_set(greedy, events, AS_OF)


def test_validation_snapshot_needs_both_outcomes() -> None:
    few = make_events(
        [
            ("a", "2011-11-01", "purchase"),
            ("a", "2011-12-05", "purchase"),
            ("b", "2011-06-01", "purchase"),
            ("b", "2011-07-01", "purchase"),
            ("b", "2011-12-10", "purchase"),
        ]
    )
    with pytest.raises(
        pipeline.InsufficientDataError, match="validation snapshot 2011-12-02 has 2 eligible profiles and 2 positives"
    ):
        pipeline.build_training_set(make_spec(), few, AS_OF)


def test_scoring_a_subset_gives_the_same_probabilities_and_factors(events: pd.DataFrame, spec) -> None:
    training = pipeline.build_training_set(spec, events, AS_OF)
    model, _ = pipeline.train_model(spec, training)
    full, _ = pipeline.score_profiles(spec, model, training.plan, events, AS_OF)
    subset_ids = pd.Index(full["profile_id"].iloc[::7])
    part, _ = pipeline.score_profiles(spec, model, training.plan, events, AS_OF, profiles=subset_ids)
    expected = full.set_index("profile_id").loc[subset_ids]
    np.testing.assert_allclose(part["probability"].to_numpy(), expected["probability"].to_numpy(), rtol=1e-12)
    assert part["factors"].tolist() == expected["factors"].tolist()


def test_later_events_do_not_change_scores(events: pd.DataFrame, spec) -> None:
    """Scores as of T are a function of events before T only (no leakage from the future)."""
    training = pipeline.build_training_set(spec, events, AS_OF)
    model, _ = pipeline.train_model(spec, training)
    before, _ = pipeline.score_profiles(spec, model, training.plan, events, AS_OF)
    future = pd.concat([events, events.assign(timestamp=AS_OF, event_type="purchase")], ignore_index=True)
    after, _ = pipeline.score_profiles(spec, model, training.plan, future, AS_OF)
    pd.testing.assert_frame_equal(before, after)


def test_table_sources_are_not_read_whole(spec) -> None:
    tabled = spec.model_copy(update={"events": spec.events.model_copy(update={"path": None, "table": "public.ev"})})
    with pytest.raises(NotImplementedError, match=r"public\.ev.*pass --events"):
        pipeline.load_events(tabled)
