"""Saved audiences: rules checked, said in words, and cut against a run (a top N over its partitions), by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from customer_ai.audiences import PROBABILITY_BINS
from customer_ai.saved_audiences import (
    AudienceCut,
    AudienceError,
    SavedAudience,
    Standing,
    applicable,
    applied_of,
    checked_audience,
    name_problem,
    new_audience,
    resolve_cuts,
    standing,
    top_boundaries,
)

# six profiles: two share 0.6 (b before c by id), two share one probability bin (0.30001 and 0.30004)
SCORES = pd.DataFrame(
    {
        "profile_id": ["a", "c", "b", "d", "e", "f"],
        "probability": [0.9, 0.6, 0.6, 0.30004, 0.30001, 0.05],
        "score": [90, 60, 60, 30, 30, 5],
        "percentile": [100, 67, 67, 50, 33, 17],
    }
)


def parts_of(frame: pd.DataFrame, *cuts: int):  # noqa: ANN201 - a factory of iterators of frames
    """Return a factory of ``frame`` split at the rows ``cuts`` (the parts a run's partitions give)."""
    bounds = [0, *cuts, len(frame)]
    return lambda: (frame.iloc[start:end] for start, end in zip(bounds, bounds[1:], strict=False))


def members(cut: AudienceCut, frame: pd.DataFrame = SCORES) -> list[str]:
    return sorted(frame.loc[cut.mask(frame), "profile_id"])


def test_a_rule_is_checked_and_said_in_words() -> None:
    assert checked_audience("vip", {"cut": "percentile", "at": 90}, "ana", "2026-12-06T10:00:00Z") == SavedAudience(
        "vip", "percentile", 90, "ana", "2026-12-06T10:00:00Z"
    )
    assert checked_audience("best_5000", {"cut": "top", "at": np.int64(5000)}).at == 5000
    assert SavedAudience("x", "score", 70).words() == "score at least 70"
    assert SavedAudience("x", "top", 5000).words() == "the top 5,000 profiles by probability"
    assert SavedAudience("x", "top", 5000, "ana", "T").record() == {
        "name": "x",
        "cut": "top",
        "at": 5000,
        "words": "the top 5,000 profiles by probability",
        "saved_by": "ana",
        "saved_at": "T",
    }


@pytest.mark.parametrize(
    ("name", "rule", "says"),
    [
        ("", {"cut": "score", "at": 1}, "audience name '': use a lower-case letter"),
        ("a" * 41, {"cut": "score", "at": 1}, "(at most 40)"),
        ("1st", {"cut": "score", "at": 1}, "audience name '1st'"),
        ("low", {"cut": "score", "at": 1}, "audience name 'low' is the segment of the bucket low in every run"),
        ("vip", {"cut": "score", "at": 1, "by": "me"}, "audience vip: a rule has a cut and an at, not 'by'"),
        ("vip", {"at": 1}, "audience vip: a cut is by score, percentile or top, not None"),
        ("vip", {"cut": "score", "at": 101}, "a cut by score is at a whole number 0 to 100, not 101"),
        ("vip", {"cut": "score", "at": 50.5}, "a cut by score is at a whole number 0 to 100, not 50.5"),
        ("vip", {"cut": "score", "at": True}, "a cut by score is at a whole number 0 to 100, not True"),
        ("vip", {"cut": "score", "at": "50"}, "a cut by score is at a whole number 0 to 100, not '50'"),
        ("vip", {"cut": "percentile", "at": 0}, "a cut by percentile is at a whole number 1 to 100, not 0"),
        ("vip", {"cut": "top", "at": -3}, "a cut by top is at a whole number at least 1, not -3"),
    ],
)
def test_a_rule_a_run_cannot_apply_says_what_is_wrong(name: str, rule: dict, says: str) -> None:
    with pytest.raises(AudienceError) as caught:
        checked_audience(name, rule)
    assert says in str(caught.value)


def test_a_name_the_instance_file_takes_is_refused_at_saving_and_skipped_by_a_run() -> None:
    assert name_problem("loyal", ["loyal", "lapsing"]) == (
        "'loyal' is a segment of the instance file: a saved audience never replaces it (the file wins); choose "
        "another name"
    )
    assert name_problem("vip", ["loyal"]) is None
    saved = [SavedAudience("loyal", "score", 50), SavedAudience("vip", "top", 2)]
    applied, skipped = applicable(saved, ["loyal"])
    assert applied == [saved[1]]
    assert skipped == [
        {"name": "loyal", "reason": "the instance file now has a segment named loyal: rename or delete the audience"}
    ]


def test_a_score_or_percentile_cut_keeps_the_profiles_at_or_above_it() -> None:
    assert members(AudienceCut(SavedAudience("x", "score", 60))) == ["a", "b", "c"]
    assert members(AudienceCut(SavedAudience("x", "score", 61))) == ["a"]
    assert members(AudienceCut(SavedAudience("x", "percentile", 50))) == ["a", "b", "c", "d"]
    assert members(AudienceCut(SavedAudience("x", "score", 0))) == list("abcdef")


@pytest.mark.parametrize("cuts", [(), (1,), (2, 4), (1, 2, 3, 4, 5)])
def test_the_top_n_is_the_first_n_by_probability_then_id_however_the_run_is_split(cuts: tuple[int, ...]) -> None:
    boundaries = top_boundaries(parts_of(SCORES, *cuts), [1, 2, 3, 4, 6, 9])
    assert boundaries == {
        1: (0.9, "a"),
        2: (0.6, "b"),  # a tie: the smaller id first
        3: (0.6, "c"),
        4: (0.30004, "d"),  # within one probability bin, the exact probability decides
        6: (0.05, "f"),
        9: (0.05, "f"),  # more than the run has: everybody
    }
    assert int(0.30004 * PROBABILITY_BINS) == int(0.30001 * PROBABILITY_BINS)  # the same bin
    cut = {n: AudienceCut(SavedAudience("x", "top", n), boundaries[n]) for n in boundaries}
    assert members(cut[2]) == ["a", "b"]
    assert members(cut[3]) == ["a", "b", "c"]
    assert members(cut[4]) == ["a", "b", "c", "d"]
    assert members(cut[9]) == list("abcdef")
    # each part cut alone adds up to the whole run's members
    parts = list(parts_of(SCORES, *cuts)())
    assert sorted(p for part in parts for p in part.loc[cut[3].mask(part), "profile_id"]) == ["a", "b", "c"]


def test_a_top_n_of_a_run_without_profiles_has_no_member() -> None:
    empty = SCORES.iloc[:0]
    assert top_boundaries(parts_of(empty), [5]) == {}
    cuts = resolve_cuts([SavedAudience("x", "top", 5)], parts_of(empty))
    assert cuts == [AudienceCut(SavedAudience("x", "top", 5), None)]
    assert members(cuts[0]) == []


def test_resolving_reads_the_scores_only_for_a_top_n() -> None:
    def unread():  # noqa: ANN202
        raise AssertionError("the scores were read")

    saved = [SavedAudience("hi", "score", 60), SavedAudience("pct", "percentile", 90)]
    assert resolve_cuts(saved, unread) == [AudienceCut(saved[0]), AudienceCut(saved[1])]
    reads = []

    def counted():  # noqa: ANN202
        reads.append(1)
        return parts_of(SCORES, 3)()

    cuts = resolve_cuts([*saved, SavedAudience("top2", "top", 2), SavedAudience("top3", "top", 3)], counted)
    assert len(reads) == 2  # two passes for every top N together
    assert [cut.boundary for cut in cuts] == [None, None, (0.6, "b"), (0.6, "c")]
    assert [cut.name for cut in cuts] == ["hi", "pct", "top2", "top3"]


def test_profile_ids_are_compared_as_text() -> None:
    numbers = pd.DataFrame({"profile_id": [10, 9, 100], "probability": [0.5, 0.5, 0.5]})
    boundary = top_boundaries(parts_of(numbers), [2])[2]
    assert boundary == (0.5, "100")  # "10" < "100" < "9", as segments and the store order them
    assert members(AudienceCut(SavedAudience("x", "top", 2), boundary), numbers.astype({"profile_id": str})) == [
        "10",
        "100",
    ]


def test_where_a_saved_audience_stands_against_a_run() -> None:
    vip = SavedAudience("vip", "percentile", 90, "ana", "T")
    metadata = {"audiences": [vip.record(), "not a record"], "segments": {"vip": 120, "low": 5}}
    applied = applied_of(metadata)
    assert applied == {"vip": vip.record()}
    assert applied_of({}) == {}
    assert standing(vip, ["loyal"], applied, metadata["segments"]) == Standing("applied", 120)
    assert standing(vip, ["vip"], applied, metadata["segments"]) == Standing("skipped")  # the file's segment wins
    assert standing(vip, [], None, {}) == Standing("no_run")
    assert standing(SavedAudience("new", "top", 5), [], applied, metadata["segments"]) == Standing("later")
    changed = SavedAudience("vip", "score", 50)
    assert standing(changed, [], applied, metadata["segments"]) == Standing("changed", 120, "percentile at least 90")


def test_a_new_audience_is_checked_and_may_not_take_a_segment_of_the_file() -> None:
    assert new_audience("unit", "vip", {"cut": "score", "at": 70}, "ana", ["loyal"]) == SavedAudience(
        "vip", "score", 70, "ana"
    )
    with pytest.raises(AudienceError) as caught:
        new_audience("unit", "loyal", {"cut": "score", "at": 70}, "ana", ["loyal"])
    assert str(caught.value) == (
        "audience loyal of unit: 'loyal' is a segment of the instance file: a saved audience never replaces it (the "
        "file wins); choose another name"
    )
    with pytest.raises(AudienceError, match="a cut by score is at a whole number 0 to 100, not 700"):
        new_audience("unit", "vip", {"cut": "score", "at": 700}, "ana", [])
