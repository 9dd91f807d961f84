"""The training sample chosen a partition of the profiles at a time: the same profiles as from all labels at once."""

from __future__ import annotations

import pandas as pd
import pytest

from customer_ai.estimator import SAMPLE_NOTE, sample_profiles
from customer_ai.partitions import partition_of
from customer_ai.sampling import ProfileSampler, sample_key

from conftest import ts

A, B = ts("2011-01-01"), ts("2011-02-01")


def _labels(rows: list[tuple[str, pd.Timestamp, int, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["profile_id", "as_of", "label", "role"])
    return frame.astype({"profile_id": "str", "label": "int8", "role": "str"})


def test_the_sample_key_depends_on_the_seed_alone() -> None:
    assert sample_key(0) == sample_key(0)
    assert sample_key(0) != sample_key(1)
    assert len(sample_key(7)) == 16


def test_below_the_cap_every_profile_is_kept() -> None:
    sampler = ProfileSampler(max_profiles=3, seed=0)
    sampler.add(_labels([("a", A, 1, "training"), ("b", A, 0, "training"), ("a", B, 0, "evaluation")]))
    sampler.add(_labels([("c", A, 0, "training")]))
    assert (sampler.eligible, sampler.positive, sampler.sampled, sampler.kept()) == (3, 1, False, None)


def test_the_strata_keep_their_share_and_the_lowest_hashes() -> None:
    rows = [(f"p{i}", A, int(i < 4), "training") for i in range(10)]  # 4 positive, 6 other profiles
    sampler = ProfileSampler(max_profiles=5, seed=0)
    sampler.add(_labels(rows))
    kept = set(sampler.kept())
    assert len(kept) == 5
    assert len(kept & {"p0", "p1", "p2", "p3"}) == 2  # 5 * 4 / 10 = 2
    names = [f"p{i}" for i in range(10)]
    ranks = pd.Series(pd.util.hash_array(pd.Index(names, dtype=object).to_numpy(), hash_key=sample_key(0)), names)
    positive = ["p0", "p1", "p2", "p3"]
    lowest = set(ranks[positive].nsmallest(2).index) | set(ranks.drop(positive).nsmallest(3).index)
    assert kept == lowest


@pytest.mark.parametrize("count", [1, 2, 7])
def test_partitions_added_one_by_one_keep_the_profiles_of_all_at_once(count: int) -> None:
    ids = [f"c{i:03d}" for i in range(300)]
    rows = [(p, A, int(i % 3 == 0), "training") for i, p in enumerate(ids)]
    rows += [(p, B, int(i % 5 == 0), "evaluation" if i % 2 else "calibration") for i, p in enumerate(ids[:200])]
    labels = _labels(rows).sort_values(["as_of", "profile_id"], ignore_index=True)
    whole, summary = sample_profiles(labels, 120, seed=3)
    sampler = ProfileSampler(120, seed=3)
    hashed = partition_of(labels["profile_id"], count)
    for partition in range(count):
        sampler.add(labels.loc[hashed == partition])
    kept = sampler.kept()
    assert set(kept) == set(whole["profile_id"])
    rows_kept = labels.loc[labels["profile_id"].isin(kept)].reset_index(drop=True)
    pd.testing.assert_frame_equal(rows_kept, whole, check_exact=True)
    assert sampler.summary(rows_kept, [A, B], SAMPLE_NOTE) == summary
    assert summary["snapshots"][1] == {
        "as_of": "2011-02-01",
        "role": "validation",
        "eligible": 200,
        "sampled": summary["snapshots"][1]["sampled"],
        "eligible_positives": 40,
        "sampled_positives": summary["snapshots"][1]["sampled_positives"],
        "calibration": summary["snapshots"][1]["calibration"],
        "evaluation": summary["snapshots"][1]["evaluation"],
    }
    assert summary["strata"]["positive"] == {"eligible": 100, "sampled": 40}  # 120 * 100 / 300
