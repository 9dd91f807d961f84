"""The HTML report: its summaries on tiny inputs, then reports of a real run of the online-retail example, checked
as text (sections, size, nothing external, hostile text escaped) and opened in a real headless Chromium."""

from __future__ import annotations

import base64
import dataclasses
import html as html_module
import json
import os
import re
import select
import shutil
import subprocess
import time
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import customer_ai.report.factors as factors_module
from customer_ai import artifacts, steps
from customer_ai.features import FeatureInfo, money_prefix
from customer_ai.outcome_metrics import decile_table
from customer_ai.outcomes import read_tracked
from customer_ai.report import (
    SECTIONS,
    build_report,
    factor_long,
    factor_summary,
    score_bins,
    score_history,
    timing_counts,
    value_deciles,
)
from customer_ai.report.figures import _RC, _history_figure, _scores_figure, _validation_figure
from customer_ai.report.folder import ScoreSummary, _RunFiles, read_sample
from customer_ai.scoring import BucketRule
from customer_ai.spec import GoalValue, InstanceSpec, MonitoringSettings, load_spec
from customer_ai.store import open_store

from conftest import BASE_SPEC, RETAIL_EVENTS, ROOT, make_spec, ts

AS_OF = ts("2011-12-11")
INSTANCE = "repurchase_30d"
CHROMIUM = Path("/usr/bin/chromium")
HOSTILE = "<script>alert('factor')</script> & \"quoted\" $x$"
HOSTILE_FEATURE = "<img src=x onerror=alert(1)>"


# --- summaries on tiny inputs ----------------------------------------------------------------------------------


def test_score_bins_count_profiles_per_five_points_and_bucket_with_100_in_the_last_bin() -> None:
    bins = score_bins(
        np.array([0, 4, 5, 99, 100, 100]), np.array(["low", "low", "low", "high", "high", "medium"], dtype=object)
    )
    assert len(bins) == 20
    assert bins.iloc[0].to_dict() == {"low_score": 0, "high_score": 5, "profiles": 2, "low": 2, "medium": 0, "high": 0}
    assert bins.iloc[1].to_dict() == {"low_score": 5, "high_score": 10, "profiles": 1, "low": 1, "medium": 0, "high": 0}
    assert bins.iloc[19].to_dict() == {
        "low_score": 95,
        "high_score": 100,
        "profiles": 3,
        "low": 0,
        "medium": 1,
        "high": 2,
    }
    assert bins["profiles"].sum() == 6


def test_a_score_summary_read_a_row_group_at_a_time_counts_what_the_whole_file_holds(tmp_path: Path) -> None:
    probability = np.array([0.004, 0.005, 0.3, 0.31, 0.994, 0.995, 1.0, 0.12, 0.3])
    bucket = ["low", "low", "medium", "medium", "high", "high", "high", "low", "high"]
    path = tmp_path / "scores.parquet"
    frame = pd.DataFrame({"profile_id": list("abcdefghi"), "probability": probability, "bucket": bucket})
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=2)
    assert pq.ParquetFile(path).num_row_groups == 5
    summary = ScoreSummary.read(path)
    assert summary.profiles == 9
    assert summary.buckets == {"low": 3, "medium": 2, "high": 4}
    assert summary.top == 100
    scored = {score: row.tolist() for score, row in enumerate(summary.by_score) if row.any()}
    assert scored == {
        0: [1, 0, 0],
        1: [1, 0, 0],
        12: [1, 0, 0],
        30: [0, 1, 1],
        31: [0, 1, 0],
        99: [0, 0, 1],
        100: [0, 0, 2],
    }
    assert summary.sums["medium"] == pytest.approx(0.61)
    expected = np.percentile(probability * 100, [10, 25, 50, 75, 90])
    assert list(summary.quantiles.values()) == expected.tolist()  # exactly np.percentile's, from parts
    assert list(summary.quantiles) == ["p10", "p25", "p50", "p75", "p90"]
    with pytest.raises(ValueError, match="bucket 'top' is not one of"):
        ScoreSummary.of(lambda: [frame.assign(bucket="top")])
    empty = ScoreSummary.of(list)
    assert (empty.profiles, empty.top) == (0, None)
    assert all(np.isnan(value) for value in empty.quantiles.values())


def test_score_history_gives_bucket_shares_and_score_quantiles_per_date_oldest_first() -> None:
    history = score_history(
        {
            "2011-01-08": pd.DataFrame(
                {"probability": [0.1, 0.2, 0.3, 0.4], "bucket": ["low", "low", "medium", "high"]}
            ),
            "2011-01-01": pd.DataFrame({"probability": [0.5], "bucket": ["medium"]}),
        }
    )
    assert history["as_of"].tolist() == ["2011-01-01", "2011-01-08"]
    assert history["profiles"].tolist() == [1, 4]
    later = history.iloc[1]
    assert (later["low"], later["medium"], later["high"]) == (0.5, 0.25, 0.25)
    assert later["p50"] == pytest.approx(25.0)
    assert later["p25"] == pytest.approx(17.5)
    assert later["mean"] == pytest.approx(25.0)
    assert history.iloc[0]["p10"] == pytest.approx(50.0)


def _factor(feature: str, description: str, value: object, contribution: float) -> dict:
    return {
        "feature": feature,
        "description": description,
        "value": value,
        "contribution": contribution,
        "importance": "low",
    }


def test_factor_summary_measures_influence_frequency_and_typical_values() -> None:
    factors = [
        json.dumps([_factor("a", "a is 1", 1, 0.4), _factor("b", "b is x", "x", -0.2)]),
        [_factor("b", "b is y", "y", -0.5), _factor("a", "a is 3", 3, 0.1)],
        [_factor("a", "a is 5", 5, -0.3)],
        "[]",
    ]
    long = factor_long(factors)
    assert long[["profile", "rank", "feature"]].values.tolist() == [
        [0, 0, "a"],
        [0, 1, "b"],
        [1, 0, "b"],
        [1, 1, "a"],
        [2, 0, "a"],
    ]
    summary = factor_summary(long, 4, {"a": FeatureInfo("a", "a is {value}", "no a", "int")})
    assert summary["feature"].tolist() == ["a", "b"]
    a, b = summary.iloc[0], summary.iloc[1]
    assert a["mean_abs"] == pytest.approx(0.8 / 4)
    assert a["mean_raise"] == pytest.approx(0.5 / 4)
    assert a["mean_lower"] == pytest.approx(-0.3 / 4)
    assert (a["top_share"], a["listed_share"]) == (0.5, 0.75)
    assert a["raises_share"] == pytest.approx(2 / 3)
    assert a["typical_raises"] == "a is 2"  # the median of 1 and 3, in the feature's words
    assert a["typical_lowers"] == "a is 5"
    assert b["mean_abs"] == pytest.approx(0.7 / 4)
    assert (b["top_share"], b["listed_share"], b["raises_share"]) == (0.25, 0.5, 0.0)
    assert b["typical_raises"] == ""
    assert b["typical_lowers"] == "b is x"  # no words for b: the commonest description (first of the tie)


def test_factor_summary_of_no_factors_is_empty() -> None:
    assert factor_summary(factor_long(["[]", "[]"]), 2).empty
    assert factor_summary(factor_long([]), 0).empty


def _scores_file(path: Path, rows: int, row_group_size: int) -> Path:
    """Write ``rows`` scores with their factors (JSON text) as Parquet in row groups of ``row_group_size``."""
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(
        {
            "profile_id": [f"p{i}" for i in range(rows)],
            "probability": rng.random(rows),
            "bucket": rng.choice(["low", "medium", "high"], rows),
            "factors": [json.dumps([_factor("a", f"a is {i}", i, 0.01 * i)]) for i in range(rows)],
        }
    )
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=row_group_size)
    return path


@pytest.mark.parametrize(("rows", "row_group_size", "size"), [(100, 7, 30), (100, 7, 3), (100, 100, 99)])
def test_read_sample_picks_the_rows_dataframe_sample_picks_in_its_order(
    tmp_path: Path, rows: int, row_group_size: int, size: int
) -> None:
    path = _scores_file(tmp_path / "scores.parquet", rows, row_group_size)
    assert pq.ParquetFile(path).num_row_groups == -(-rows // row_group_size)
    expected = pd.read_parquet(path).sample(size, random_state=0)[["bucket", "factors"]]
    sample = read_sample(path, ["bucket", "factors"], size)
    pd.testing.assert_frame_equal(sample, expected)
    assert not sample.index.is_monotonic_increasing  # the sample's order, not the file's
    # what pandas draws: DataFrame.sample takes the positions np.random.RandomState(seed).choice picks
    drawn = np.random.RandomState(0).choice(rows, size=size, replace=False)
    assert sample.index.tolist() == drawn.tolist()
    assert sample["factors"].tolist() == [json.dumps([_factor("a", f"a is {i}", int(i), 0.01 * i)]) for i in drawn]


@pytest.mark.parametrize("size", [100, 101])
def test_read_sample_of_a_file_no_larger_than_the_sample_reads_it_whole_in_order(tmp_path: Path, size: int) -> None:
    path = _scores_file(tmp_path / "scores.parquet", 100, 7)
    sample = read_sample(path, ["bucket", "factors"], size)
    pd.testing.assert_frame_equal(sample, pd.read_parquet(path, columns=["bucket", "factors"]))


def _run_files(folder: Path, model: dict, scores_file: Path, scores: ScoreSummary) -> _RunFiles:
    """A run folder as the report reads it, holding nothing but its model and its scores."""
    return _RunFiles(
        folder=folder,
        model=model,
        scores=scores,
        scores_file=scores_file,
        expected=None,
        source=None,
        evaluation=None,
        metadata=None,
        drift=None,
        validation={},
        tracked={},
    )


def _drawn(section: Callable, spec: InstanceSpec, run: _RunFiles) -> str:
    """A report section written with the report's figure settings (those of ``build_report``)."""
    with mpl.rc_context():
        mpl.rcdefaults()
        mpl.rcParams.update(_RC)
        return section(spec, run)


def _card_text(model: dict) -> str:
    from customer_ai.report.card import _model_card  # noqa: PLC0415 - the card alone, without a run folder

    run = _run_files(Path("."), model, Path("scores.parquet"), ScoreSummary.of(list))
    spec = load_spec(ROOT / "instances" / f"{INSTANCE}.yaml")
    return _sections(_model_card(spec, AS_OF, run))["model-card"]["text"]


def test_the_model_card_states_the_training_sample_only_when_there_was_one() -> None:
    sample = {
        "max_profiles": 100_000,
        "sampled": True,
        "eligible_profiles": 300_000,
        "profiles": 100_000,
        "strata": {
            "positive": {"eligible": 72_345, "sampled": 24_115},
            "other": {"eligible": 227_655, "sampled": 75_885},
        },
    }
    model = {"model_version": "20111211-0123456789", "as_of": "2011-12-11"}
    card = _card_text({**model, "training_sample": sample})
    assert (
        "training profilestrained on a stratified sample of 100,000 of 300,000 profiles (cap 100,000), every "
        "snapshot of each; 24,115 of the 72,345 that reached the goal at a training snapshot"
    ) in card
    unsampled = {**sample, "sampled": False, "profiles": 300_000}
    assert _card_text({**model, "training_sample": unsampled}) == _card_text(model)  # nothing new without a sample
    assert "sample" not in _card_text(model)


def test_the_model_card_states_the_quality_grade_in_words() -> None:
    metrics = {"top_decile_lift": 2.63, "calibration_error": 0.018, "model_roc_auc": 0.75}
    card = _card_text(
        {"model_version": "20111211-0123456789", "as_of": "2011-12-11", "validation": {"metrics": metrics}}
    )
    assert (
        "qualitygood: finds 2.6 times as many profiles whose goal came true in its top tenth as a random pick; its "
        "probabilities were on average within 2 points of what happened"
    ) in card
    assert "qualityunknown: its ranking was not measured" in _card_text({"model_version": "v", "as_of": "2011-12-11"})


def test_the_history_places_runs_at_their_dates() -> None:
    # before: a run a week after the first and one eight weeks after that were drawn equally far apart
    dates = ["2011-10-02", "2011-10-09", "2011-12-04"]
    history = pd.DataFrame(
        {"as_of": dates, "low": 0.5, "medium": 0.3, "high": 0.2, "p10": 5.0, "p25": 10.0, "p50": 20.0, "p75": 30.0}
        | {"p90": 40.0, "mean": 22.0}
    )
    figure = _history_figure(history)
    shares = figure.axes[0]
    centres = sorted({round(p.get_x() + p.get_width() / 2, 6) for p in shares.patches})
    assert np.diff(centres).tolist() == pytest.approx([7.0, 56.0])
    assert shares.patches[0].get_width() == pytest.approx(0.7 * 7)  # bars never overlap


def test_the_score_histogram_leaves_room_above_its_tallest_bar_and_labels_no_bar() -> None:
    bins = score_bins(
        np.array([5] * 300 + [30] * 10 + [80] * 50), np.array(["low"] * 300 + ["medium"] * 10 + ["high"] * 50)
    )
    ax = _scores_figure({"medium": 25.0, "high": 75.0}, bins).axes[0]
    assert ax.get_ylim()[1] == pytest.approx(300 * 1.2)  # the tallest bar ends below the top, under no label
    assert [t.get_text() for t in ax.texts] == ["medium from 25", "high from 75"]
    assert ax.get_legend().get_bbox_to_anchor().x0 >= ax.get_window_extent().x1 - 1  # the legend beside, not on it


def test_a_stage_not_checked_in_the_run_is_said_not_drawn_empty() -> None:
    figure = _validation_figure({"events": {"evaluated": 11, "failed": 0}, "training_set": None, "scores": None})
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.texts] == ["not checked in this run", "not checked in this run"]
    assert len(ax.patches) == 2  # events: passed, and a failed bar of zero width


# --- a real run ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def retail_spec() -> InstanceSpec:
    return load_spec(ROOT / "instances" / f"{INSTANCE}.yaml")


@pytest.fixture(scope="session")
def retail_run(tmp_path_factory: pytest.TempPathFactory, retail_spec: InstanceSpec) -> Path:
    """The home of a run of the online-retail example as of 2011-12-11, as ``customer-ai run`` makes it."""
    home = tmp_path_factory.mktemp("report-home")
    steps.run(retail_spec, AS_OF, home, open_store(None, home))
    return home


@pytest.fixture(scope="session")
def retail_report(retail_run: Path, retail_spec: InstanceSpec, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "report.html"
    return build_report(retail_spec, AS_OF, retail_run, open_store(None, retail_run), out=out)


class _Sections(HTMLParser):
    """Collects each section's id, heading text, and counts of figures and tables inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, dict] = {}
        self._current: str | None = None
        self._in_heading = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        if tag == "section":
            self._current = attributes.get("id")
            self.sections[self._current] = {"heading": "", "svg": 0, "table": 0, "text": ""}
        elif self._current is not None and tag in ("svg", "table"):
            self.sections[self._current][tag] += 1
        self._in_heading = tag == "h2"

    def handle_endtag(self, tag: str) -> None:
        if tag == "section":
            self._current = None
        if tag == "h2":
            self._in_heading = False

    def handle_data(self, data: str) -> None:
        if self._current is None:
            return
        if self._in_heading:
            self.sections[self._current]["heading"] += data
        self.sections[self._current]["text"] += data


def _sections(page: str) -> dict[str, dict]:
    parser = _Sections()
    parser.feed(page)
    return parser.sections


@pytest.mark.e2e
def test_the_modellers_detail_is_folded_away_in_the_model_card(retail_report: Path) -> None:
    page = retail_report.read_text(encoding="utf-8")
    card = re.search(r'<section id="model-card">.*?</section>', page, re.DOTALL).group(0)
    folded = re.search(r'<details class="analysts">(.*?)</details>', card, re.DOTALL).group(1)
    assert "<summary>For analysts: calibration, boosting, parameters, versions and the features</summary>" in folded
    outside = card.replace(folded, "")
    for row in ("calibration", "boosting start", "parameters", "versions"):
        assert f"<th>{row}</th>" in folded
        assert f"<th>{row}</th>" not in outside
    assert "<caption>Features</caption>" in folded
    for row in ("quality", "quality gate", "held-out ROC AUC", "expected to reach the goal"):
        assert f"<th>{row}</th>" in outside  # what the scores' user reads stays in view


@pytest.mark.e2e
def test_report_has_every_section_with_a_heading_a_picture_and_a_table(retail_report: Path) -> None:
    sections = _sections(retail_report.read_text(encoding="utf-8"))
    assert list(sections) == list(SECTIONS)
    for key, heading in SECTIONS.items():
        assert sections[key]["heading"] == heading
        if key != "outcomes":  # the first run of an instance has no past run to check
            assert sections[key]["svg"] >= 1, key
            assert sections[key]["table"] >= 1, key
    assert "No past run has a closed goal window yet" in sections["outcomes"]["text"]
    assert sections["evaluation"]["svg"] == 1
    assert "goal: purchase occurs within 30 days" in sections["model-card"]["text"].lower()
    # how many are expected to reach the goal, and the range the base rate's past moves give
    assert re.search(
        r"expected to reach the goal\s*[\d,]+ of the [\d,]+ profiles scored \(the sum of their probabilities\); "
        r"[\d,]+ to [\d,]+ if the base rate moves once more as much as it did between the model's past windows",
        sections["model-card"]["text"],
    )
    assert "Drift: " in sections["drift"]["text"]


@pytest.mark.e2e
def test_report_is_small_self_contained_and_scriptless(retail_report: Path) -> None:
    page = retail_report.read_text(encoding="utf-8")
    assert retail_report.stat().st_size < 5_000_000
    assert "<script" not in page.lower()
    assert "<image" not in page  # no raster inside a figure: vector only
    assert "<link" not in page.lower()
    assert "@import" not in page
    assert "@font-face" not in page
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:[a-z]+:)?//""", page, re.IGNORECASE)
    assert not re.search(r"url\(\s*['\"]?(?!#)", page)  # only references inside the document
    assert "default-src 'none'" in page  # and the page itself refuses to load anything


def _published(home: Path, date: str = f"{AS_OF:%Y-%m-%d}") -> Path:
    """The folder of the run published as of ``date``, found as every reader finds it: through the store."""
    return artifacts.published_folders(home, INSTANCE, open_store(None, home).read_runs(INSTANCE))[date]


@pytest.mark.e2e
def test_report_numbers_come_from_the_run(retail_run: Path, retail_report: Path) -> None:
    folder = _published(retail_run)
    model = artifacts.read_json(folder / "model.json")
    scores = pd.read_parquet(folder / "scores.parquet", columns=["bucket"])
    sections = _sections(retail_report.read_text(encoding="utf-8"))
    auc = model["validation"]["metrics"]["roc_auc"]
    assert f"{auc:.3f}" in sections["evaluation"]["text"]
    assert model["model_version"] in sections["model-card"]["text"]
    assert f"in this run, as of {AS_OF:%Y-%m-%d}" in sections["model-card"]["text"]
    assert f"{len(scores):,} profiles scored" in sections["scores"]["text"]
    high = int((scores["bucket"] == "high").sum())
    assert f"high{high:,}" in sections["scores"]["text"].replace(" ", "")
    assert "purchase occurs within 30 days" in sections["model-card"]["text"]
    rule = BucketRule.from_dict(artifacts.read_json(folder / "buckets.json"))  # the rule the run kept, stated
    assert rule.chosen == "auto"
    assert (
        f"Buckets {rule.in_words()}. The rule was chosen for this run (output.buckets_by: auto)"
        in (sections["scores"]["text"])
    )


@pytest.mark.e2e
def test_a_run_keeps_held_out_curves_of_the_model_and_the_baselines(retail_run: Path) -> None:
    folder = _published(retail_run)
    model = artifacts.read_json(folder / "model.json")
    evaluation = artifacts.read_json(folder / "evaluation.json")
    stored = artifacts.model_dir(retail_run, INSTANCE, model["model_version"]) / "evaluation.json"
    assert artifacts.read_json(stored) == evaluation
    assert evaluation["model_version"] == model["model_version"]
    validation = model["label_counts"]["snapshots"][0]
    assert evaluation["snapshot"] == validation["as_of"] == model["validation"]["snapshot"]
    assert evaluation["rows"] == validation["evaluation"]["rows"]
    assert evaluation["positives"] == validation["evaluation"]["positives"]
    assert set(evaluation["scorers"]) == {"model", "recency", "frequency", "bgnbd"}
    assert evaluation["scorers"]["model"]["metrics"] == model["validation"]["metrics"]
    for name, scorer in evaluation["scorers"].items():
        assert scorer["metrics"]["n"] == evaluation["rows"], name
        assert scorer["roc"]["auc"] == pytest.approx(scorer["metrics"]["roc_auc"], abs=1e-12), name
        assert len(scorer["roc"]["false_positive_rate"]) <= 200
        assert [g["decile"] for g in scorer["gains"]] == list(range(1, 11))
        assert scorer["gains"][-1]["cumulative_gain"] == pytest.approx(1.0)
        assert sum(b["count"] for b in scorer["reliability"]) == evaluation["rows"]
    assert set(evaluation["model_vs"]) == {"recency", "frequency", "bgnbd"}
    assert evaluation["scorers"]["model"]["metrics"]["roc_auc"] > evaluation["scorers"]["recency"]["metrics"]["roc_auc"]


@pytest.mark.e2e
def test_report_defaults_to_the_published_folder_written_atomically_and_reproducibly(
    retail_run: Path, retail_spec: InstanceSpec, retail_report: Path
) -> None:
    folder = _published(retail_run)
    written_by_the_run = (folder / "report.html").read_bytes()  # before it was published, in its staging folder
    path = build_report(retail_spec, AS_OF, retail_run, open_store(None, retail_run))
    assert path == folder / "report.html"
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no staging folder left beside it
    assert path.read_bytes() == retail_report.read_bytes() == written_by_the_run


@pytest.mark.e2e
def test_report_of_a_date_without_a_published_run_names_it(
    retail_run: Path, retail_spec: InstanceSpec, tmp_path: Path
) -> None:
    # a folder on disk that no run row points at (a run killed before its commit) is no published run
    _copy_run(retail_run, tmp_path, "2011-12-04")
    runs = open_store(None, retail_run).read_runs(INSTANCE)
    assert runs["as_of"].tolist() == [f"{AS_OF:%Y-%m-%d}"]
    for store in (open_store(None, retail_run), _StoreWithOutcomes(runs, None), None):
        with pytest.raises(FileNotFoundError, match=f"^{INSTANCE} has no run published as of 2011-12-04( in |$)"):
            build_report(retail_spec, ts("2011-12-04"), tmp_path, store)


def _copy_run(home: Path, target_home: Path, date: str = f"{AS_OF:%Y-%m-%d}", run_id: str | None = None) -> Path:
    """Copy the run published in ``home`` as of AS_OF to ``target_home`` as a run folder of ``date``."""
    source = _published(home)
    target = artifacts.run_dir(target_home, INSTANCE, ts(date), source.name if run_id is None else run_id)
    shutil.copytree(source, target)
    return target


@pytest.mark.e2e
def test_user_text_is_escaped_everywhere(retail_run: Path, retail_spec: InstanceSpec, tmp_path: Path) -> None:
    folder = _copy_run(retail_run, tmp_path)
    scores = pd.read_parquet(folder / "scores.parquet")
    hostile = []
    for text in scores["factors"]:
        factors = json.loads(text)
        factors[0] = {**factors[0], "feature": HOSTILE_FEATURE, "description": HOSTILE}
        hostile.append(json.dumps(factors))
    scores["factors"] = hostile
    scores.to_parquet(folder / "scores.parquet", index=False)
    spec = retail_spec.model_copy(update={"description": "<b onclick=alert(2)>bold</b>"})
    page = build_report(spec, AS_OF, tmp_path, None, folder=folder).read_text(encoding="utf-8")
    assert "<script" not in page
    assert "<img" not in page
    assert "<b onclick" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page  # the factor's name, in the tables
    assert "&lt;script&gt;alert(&#x27;factor&#x27;)&lt;/script&gt; &amp; &quot;quoted&quot; $x$" in page
    assert "&lt;b onclick=alert(2)&gt;bold&lt;/b&gt;" in page


def _factors_html(spec: InstanceSpec, run: _RunFiles) -> str:
    """The factors section of ``run``, drawn with the report's matplotlib settings (as build_report draws it)."""
    return _drawn(factors_module._factors_section, spec, run)


@pytest.mark.e2e
def test_factors_of_many_profiles_are_summarised_over_the_sample_dataframe_sample_picks(
    retail_run: Path, retail_spec: InstanceSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _copy_run(retail_run, tmp_path)
    everyone = pd.read_parquet(folder / "scores.parquet")
    pq.write_table(pa.Table.from_pandas(everyone, preserve_index=False), folder / "scores.parquet", row_group_size=97)
    monkeypatch.setattr(factors_module, "MAX_FACTOR_PROFILES", 500)
    run = _RunFiles.read(folder)
    assert run.scores.profiles == len(everyone) > 500  # counted: no profile's score held, nor its factors
    section = _factors_html(retail_spec, run)
    assert f"Summarised over a random sample of 500 of the {len(everyone):,} profiles." in section
    # the same section as one whose file holds just the rows DataFrame.sample picks, read whole
    picked = tmp_path / "picked.parquet"
    everyone.sample(500, random_state=0).to_parquet(picked, index=False)
    assert section == _factors_html(retail_spec, dataclasses.replace(run, scores_file=picked))
    other = tmp_path / "other.parquet"
    everyone.sample(500, random_state=1).to_parquet(other, index=False)
    assert section != _factors_html(retail_spec, dataclasses.replace(run, scores_file=other))


@pytest.mark.e2e
def test_report_of_a_reused_model_without_curves_says_why(
    retail_run: Path, retail_spec: InstanceSpec, tmp_path: Path
) -> None:
    folder = _copy_run(retail_run, tmp_path)
    (folder / "evaluation.json").unlink()
    (folder / "validation" / "training_set.json").unlink()
    (folder / "metadata.json").unlink()  # a report written by the run, before its metadata
    model = artifacts.read_json(folder / "model.json")
    artifacts.write_json(folder / "model.json", {**model, "reused": True})
    page = build_report(retail_spec, AS_OF, tmp_path, None, folder=folder).read_text(encoding="utf-8")
    sections = _sections(page)
    assert list(sections) == list(SECTIONS)
    assert f"The held-out curves are not available for model {model['model_version']}" in sections["evaluation"]["text"]
    assert f"reused: trained in the run as of {model['as_of']}" in sections["model-card"]["text"]
    assert "not built: the model was reused" in sections["validation"]["text"]


@pytest.mark.e2e
def test_a_reused_model_brings_its_curves_to_the_run(
    retail_run: Path, retail_spec: InstanceSpec, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    shutil.copytree(retail_run, home)  # the shared run is left as it is
    later = ts("2011-12-18")
    store = open_store(None, home)
    # the events end on 2011-12-09: a week later every recency has moved past the drift warning, which would
    # retrain early; a warning out of reach keeps the model
    steady = retail_spec.model_copy(update={"monitoring": MonitoringSettings(drift_warn=50)})
    result = steps.run(steady, later, home, store, force_retrain=False)
    folder = _published(home, "2011-12-18")
    assert result.artifact_dir == folder
    model = artifacts.read_json(folder / "model.json")
    assert model["reused"] is True
    assert model["as_of"] == f"{AS_OF:%Y-%m-%d}"
    stored = artifacts.model_dir(home, INSTANCE, model["model_version"])
    assert artifacts.read_json(folder / "evaluation.json") == artifacts.read_json(stored / "evaluation.json")
    out = tmp_path / "report-again.html"
    sections = _sections(build_report(retail_spec, later, home, store, out=out).read_text(encoding="utf-8"))
    assert sections["evaluation"]["svg"] == 1
    # the score history holds the earlier run of 2011-12-11, found through the store, and this one
    assert "2011-12-11" in sections["history"]["text"]
    assert "2011-12-18" in sections["history"]["text"]


class _StoreWithOutcomes:
    """A store that has run rows and outcomes (the shape ``read_outcomes`` returns)."""

    def __init__(self, runs: pd.DataFrame, outcomes: pd.DataFrame | None) -> None:
        self.runs, self.outcomes = runs, outcomes

    def read_runs(self, instance: str) -> pd.DataFrame:
        return self.runs

    def read_outcomes(self, instance: str) -> pd.DataFrame:
        return self.outcomes


def _outcomes(as_of: str, tracked_at: str) -> list[tuple]:
    rows = [("all", "all", 1000, 0.30, 0.25)]
    rows += [("bucket", "low", 500, 0.1, 0.12), ("bucket", "medium", 400, 0.4, 0.35), ("bucket", "high", 100, 0.8, 0.7)]
    rows += [("decile", str(d), 100, 0.05 * (11 - d), 0.045 * (11 - d)) for d in range(1, 11)]
    return [(INSTANCE, as_of, *row, tracked_at) for row in rows]


def _runs(*rows: tuple[str, str, str]) -> pd.DataFrame:
    """Run rows as ``read_runs`` returns them, from (as_of, model_version, run_id)."""
    return pd.DataFrame(
        [
            (INSTANCE, as_of, version, "ok", "", '{"model_roc_auc": 0.7}', 10, "2012-01-01T00:00:00Z", run_id)
            for as_of, version, run_id in rows
        ],
        columns=[
            "instance",
            "as_of",
            "model_version",
            "status",
            "reason",
            "metrics",
            "scored_profiles",
            "written_at",
            "run_id",
        ],
    )


def _everyone_in(folder: Path, bucket: str) -> None:
    scores = pd.read_parquet(folder / "scores.parquet")
    scores["bucket"] = bucket
    scores.to_parquet(folder / "scores.parquet", index=False)


@pytest.mark.e2e
def test_history_and_outcomes_show_past_published_runs_only(
    retail_run: Path, retail_spec: InstanceSpec, tmp_path: Path
) -> None:
    this_run = _copy_run(retail_run, tmp_path)
    legacy = _copy_run(retail_run, tmp_path, "2011-10-30", run_id="")  # published in the date's folder itself
    _everyone_in(legacy, "low")
    published = _copy_run(retail_run, tmp_path, "2011-11-06", run_id="cli-aaaaaaaaaa")
    _everyone_in(published, "high")
    abandoned = _copy_run(retail_run, tmp_path, "2011-11-06", run_id="cli-bbbbbbbbbb")  # no run row names it
    _everyone_in(abandoned, "medium")
    _copy_run(retail_run, tmp_path, "2011-10-02", run_id="cli-cccccccccc")  # a date nothing was published for
    _copy_run(retail_run, tmp_path, "2012-01-08", run_id="cli-dddddddddd")  # after this run: not its history
    runs = _runs(
        ("2011-10-30", "20111030-legacy0000", ""),
        ("2011-11-06", "20111106-published0", "cli-aaaaaaaaaa"),
        ("2011-12-11", "20111211-storerow00", this_run.name),
        ("2012-01-08", "20120108-later00000", "cli-dddddddddd"),
    )
    columns = ["instance", "as_of", "grouping", "group", "profiles", "predicted_rate", "realised_rate", "tracked_at"]
    outcomes = pd.DataFrame(
        _outcomes("2011-11-06", "2011-12-11T06:00:00Z") + _outcomes("2012-01-08", "2012-02-10T06:00:00Z"),
        columns=columns,
    )
    page = build_report(retail_spec, AS_OF, tmp_path, _StoreWithOutcomes(runs, outcomes))
    assert page == this_run / "report.html"  # the folder the store names, by default
    sections = _sections(page.read_text(encoding="utf-8"))
    history = sections["history"]["text"]
    assert "2011-10-30" in history
    assert "20111030-legacy0000" in history
    assert "2011-11-06" in history
    assert "20111106-published0" in history
    assert "2011-12-11" in history
    assert "2011-10-02" not in history
    assert "2012-01-08" not in history
    # this run's own row comes from its folder, not from the store's row of it
    assert "20111211-storerow00" not in history
    assert artifacts.read_json(this_run / "model.json")["model_version"] in history
    compact = history.replace(" ", "")
    assert "100.0%0.0%0.0%" in compact  # the legacy run's bucket shares: all low
    assert "0.0%0.0%100.0%" in compact  # the published run of 2011-11-06: all high
    assert "0.0%100.0%0.0%" not in compact  # not the abandoned folder beside it: all medium
    outcome = sections["outcomes"]
    assert outcome["svg"] == 1
    assert outcome["table"] == 2
    assert "30% → 25% (1,000)" in outcome["text"]
    assert "80% → 70% (100)" in outcome["text"]
    assert "50 → 45" in outcome["text"]  # decile 1, in percent
    assert "2012-01-08" not in outcome["text"]


@pytest.mark.e2e
def test_outcomes_without_a_store_that_tracks_them(retail_run: Path, retail_spec: InstanceSpec, tmp_path: Path) -> None:
    folder = _copy_run(retail_run, tmp_path)

    class RunsOnly:
        def read_runs(self, instance: str) -> pd.DataFrame:
            return open_store(None, retail_run).read_runs(instance)

    for store, given in ((None, folder), (RunsOnly(), None)):
        page = build_report(retail_spec, AS_OF, tmp_path, store, folder=given)
        assert page == folder / "report.html"
        sections = _sections(page.read_text(encoding="utf-8"))
        assert "No past run has a closed goal window yet" in sections["outcomes"]["text"]


# --- a run that tracked the outcomes of an earlier one ---------------------------------------------------------

EARLIER = ts("2011-11-06")  # its 30-day goal window closed before the events end (2011-12-09)


@pytest.fixture(scope="session")
def tracking_run(tmp_path_factory: pytest.TempPathFactory, retail_spec: InstanceSpec) -> Path:
    """A home with runs as of 2011-11-06 and 2011-12-11: the second tracks what came true for the first."""
    home = tmp_path_factory.mktemp("tracking-home")
    store = open_store(None, home)
    steps.run(retail_spec, EARLIER, home, store)
    steps.run(retail_spec, AS_OF, home, store)
    return home


@pytest.mark.e2e
def test_a_report_written_before_publishing_is_the_one_written_after(
    tracking_run: Path, retail_spec: InstanceSpec, tmp_path: Path
) -> None:
    store = open_store(None, tracking_run)
    folder = _published(tracking_run)
    # the run wrote its report in its staging folder, when the store had neither its run row nor these outcomes
    before = (folder / "report.html").read_bytes()
    assert store.read_runs(INSTANCE)["as_of"].tolist() == ["2011-11-06", "2011-12-11"]
    assert store.read_outcomes(INSTANCE)["as_of"].unique().tolist() == ["2011-11-06"]  # published with the run
    assert list(read_tracked(folder)) == ["2011-11-06"]
    assert store.read_attempts(INSTANCE, "2011-12-11")["status"].tolist() == ["started", "ok"]
    again = build_report(retail_spec, AS_OF, tracking_run, store, out=tmp_path / "again.html")
    assert again.read_bytes() == before
    assert build_report(retail_spec, AS_OF, tracking_run, store) == folder / "report.html"  # the published folder
    assert (folder / "report.html").read_bytes() == before
    sections = _sections(before.decode("utf-8"))
    assert "2011-11-06" in sections["outcomes"]["text"]
    assert sections["outcomes"]["svg"] == 1
    history = sections["history"]["text"]
    earlier = artifacts.read_json(_published(tracking_run, "2011-11-06") / "model.json")["model_version"]
    assert f"2011-11-06ok{earlier}" in history.replace(" ", "")  # the earlier run, through the store's row
    assert "this run" in history


def test_report_needs_a_scored_run_folder(retail_spec: InstanceSpec, tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    artifacts.write_json(tmp_path / "run" / "model.json", {})
    with pytest.raises(FileNotFoundError, match=r"scores\.parquet is missing: a report needs a run folder"):
        build_report(retail_spec, AS_OF, tmp_path, None, folder=tmp_path / "run")


# --- in a real browser -----------------------------------------------------------------------------------------


class _Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (fds 3 and 4): no port, nothing to download."""

    def __init__(self, profile: Path) -> None:
        to_browser, self._writer = os.pipe()
        self._reader, from_browser = os.pipe()

        def fds() -> None:
            read, write = os.dup(to_browser), os.dup(from_browser)  # off 3 and 4, whatever they held
            os.dup2(read, 3)
            os.dup2(write, 4)

        self.process = subprocess.Popen(
            [
                str(CHROMIUM),
                "--headless",
                "--disable-gpu",
                "--no-sandbox",
                "--no-first-run",
                "--remote-debugging-pipe",
                # belt and braces: even a request the page tried would reach nothing
                "--proxy-server=127.0.0.1:9",
                "--host-resolver-rules=MAP * ~NOTFOUND",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=fds,  # noqa: PLW1509 - it only moves two descriptors
            close_fds=False,
        )
        os.close(to_browser)
        os.close(from_browser)
        self._buffer, self._id, self.events = b"", 0, []

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._id += 1
        message: dict = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._writer, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 60
        while True:
            for answer in self._messages(deadline):
                if answer.get("id") == self._id:
                    assert "error" not in answer, f"{method}: {answer['error']}"
                    return answer["result"]
                self.events.append(answer)

    def wait_for(self, method: str) -> None:
        deadline = time.monotonic() + 60
        while not any(e.get("method") == method for e in self.events):
            self.events += self._messages(deadline)

    def _messages(self, deadline: float) -> list[dict]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._reader], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer within 60 seconds")
            chunk = os.read(self._reader, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed its pipe")
            self._buffer += chunk
        *complete, self._buffer = self._buffer.split(b"\0")
        return [json.loads(c) for c in complete]

    def open(self, url: str) -> str:
        """Load ``url`` in a new page, wait for its load event, return the page's session id."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Network", "Page", "Log"):
            self.send(f"{domain}.enable", session=session)
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1100, "height": 900, "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        self.send("Page.navigate", {"url": url}, session=session)
        self.wait_for("Page.loadEventFired")
        return session

    def evaluate(self, expression: str, session: str) -> object:
        """Return the value of a JavaScript expression that ends in ``JSON.stringify(...)``, in the page."""
        found = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=session)
        return json.loads(found["result"]["value"])

    def screenshot(self, session: str, path: Path) -> dict:
        """Save the whole page as a PNG at ``path``; return the page's size (``width``, ``height``)."""
        size = self.send("Page.getLayoutMetrics", session=session)["cssContentSize"]
        shot = self.send(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
            },
            session=session,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return size

    def requested(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (TimeoutError, RuntimeError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._writer)
        os.close(self._reader)


@pytest.fixture
def chromium(tmp_path: Path):  # noqa: ANN201 - a generator fixture
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (CI installs it): the report is not opened in a browser")
    browser = _Chromium(tmp_path / "chromium-profile")
    yield browser
    browser.close()


def _local(url: str) -> bool:
    return url.startswith(("file://", "data:"))


def test_the_browser_check_sees_a_page_that_reaches_out(chromium: _Chromium, tmp_path: Path) -> None:
    """The check below can fail: a page naming an outside image and stylesheet is caught."""
    page = tmp_path / "reaching-out.html"
    page.write_text(
        '<html><body><img src="http://example.invalid/x.png"><link rel=stylesheet href="https://example.invalid/y.css">'
        "</body></html>"
    )
    chromium.open(page.as_uri())
    outside = [url for url in chromium.requested() if not _local(url)]
    assert sorted(outside) == ["http://example.invalid/x.png", "https://example.invalid/y.css"]


@pytest.mark.e2e
def test_report_opens_in_chromium_complete_and_without_a_network_request(
    chromium: _Chromium, retail_report: Path
) -> None:
    session = chromium.open(retail_report.as_uri())
    found = chromium.send(
        "Runtime.evaluate",
        {
            "expression": "JSON.stringify({sections: [...document.querySelectorAll('section')].map(s => s.id),"
            " figures: document.querySelectorAll('figure svg').length,"
            " end: document.getElementById('end') !== null})",
            "returnByValue": True,
        },
        session=session,
    )
    dom = json.loads(found["result"]["value"])
    assert dom["sections"] == list(SECTIONS)
    assert dom["figures"] == retail_report.read_text(encoding="utf-8").count("<svg ")
    assert dom["end"]
    assert chromium.requested() == [retail_report.as_uri()]
    problems = [e["params"]["entry"]["text"] for e in chromium.events if e.get("method") == "Log.entryAdded"]
    assert problems == []
    screenshot = ROOT / "var" / "test-artifacts" / "report.png"
    size = chromium.screenshot(session, screenshot)
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert size["height"] > 5000  # the whole report was laid out, not a blank page


# --- issue 18: what the data holds can neither disguise itself nor bury the page --------------------------------

MILLION = "x" * 1_000_000
CONTROLS = "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\x1b"  # every bidi control, and ESC
DISGUISED = f"invoice\u202efdp.exe{CONTROLS}"  # U+202E displays "invoiceexe.pdf"
LONG_DESCRIPTION = "d" * 10_000


@pytest.fixture(scope="session")
def hostile_run(tmp_path_factory: pytest.TempPathFactory, retail_spec: InstanceSpec):  # noqa: ANN201 - generator
    """A run of the online-retail events plus 100 events of each of four event types (a million characters, a
    disguised one, 10,000 characters, 200 characters: the longest that names features), for an instance whose
    description is 10,000 unbroken characters."""
    home = tmp_path_factory.mktemp("hostile-home")
    events = pd.read_parquet(RETAIL_EVENTS)
    kinds = (MILLION, DISGUISED, "w" * 10_000, "y" * 200)
    extra = [events.iloc[:100].assign(event_type=kind) for kind in kinds]
    pd.concat([events, *extra], ignore_index=True).to_parquet(home / "events.parquet", index=False)
    spec = retail_spec.model_copy(update={"description": LONG_DESCRIPTION})
    steps.run(spec, AS_OF, home, open_store(None, home), events_path=home / "events.parquet")
    yield spec, home
    shutil.rmtree(home)


@pytest.mark.e2e
def test_a_run_with_a_million_character_event_type_has_a_small_report(hostile_run: tuple, tmp_path: Path) -> None:
    # before: 16.5 MB (the event type in 16 cells of the features table) and a 160 MB home (it named 8 features,
    # copied into the training set, the model and its metadata), without a word
    spec, home = hostile_run
    folder = _published(home)
    report = folder / "report.html"
    assert report.stat().st_size < 1_000_000  # the report of the same run without these events: about 0.55 MB
    names = artifacts.read_json(folder / "model.json")["features"]["names"]
    assert (
        max(len(name) for name in names) == 217
    )  # a type too long to name features has none: y * 200 + _days_since_first
    assert sum(p.stat().st_size for p in home.rglob("*") if p.is_file()) < 40_000_000  # the events file is 4 MB
    page = report.read_text(encoding="utf-8")
    assert "x" * 201 not in page
    assert "y" * 201 not in page
    assert f"<td class=w>{'y' * 200}… (209 characters)</td>" in page  # a feature's name: yyy..._count_7d
    assert f"{'d' * 2_000}… (10,000 characters)</p>" in page  # the description, a text: 2,000 characters
    assert "d" * 2_001 not in page
    header = page[page.index("<header>") : page.index("</header>")]
    assert (
        '<p class="missing">Some values of the data are too long to show whole: a value (a name, a text) is cut after '
        "its first 200 characters, any other text after 2,000, and ends in &quot;… (N characters)&quot;, its whole "
        "length. The data is not changed: the run&#x27;s files and the store hold every value whole.</p>"
    ) in header
    assert f"{'y' * 200}_count_7d" in names  # whole in the model
    # written before publishing, written again after it: the same page
    again = build_report(spec, AS_OF, home, open_store(None, home), out=tmp_path / "again.html")
    assert again.read_bytes() == report.read_bytes()


@pytest.mark.e2e
def test_control_characters_in_the_data_are_shown_not_obeyed(hostile_run: tuple) -> None:
    # before: U+202E displayed "invoice\u202efdp.exe" as "invoiceexe.pdf", and the other controls acted unseen
    from customer_ai.report.figures import _label_text  # noqa: PLC0415 - the figures' labels, drawn as paths

    _, home = hostile_run
    page = (_published(home) / "report.html").read_text(encoding="utf-8")
    assert [c for c in CONTROLS if c in page] == []
    shown = "".join(f"&lt;U+{ord(c):04X}&gt;" for c in CONTROLS)
    assert f"<td class=w>… invoice&lt;U+202E&gt;fdp.exe{shown}s in the last 7 days</td>" in page  # a meaning
    assert shown.count("&lt;U+") == 12
    header = page[page.index("<header>") : page.index("</header>")]
    assert (
        '<p class="missing">The data holds invisible control characters: they are shown as &lt;U+…&gt; with their '
        "code, such as &lt;U+202E&gt; for one that would display the text after it backwards.</p>"
    ) in header
    assert _label_text("invoice\u202efdp.exe") == "invoice<U+202E>fdp.exe"


@pytest.mark.e2e
def test_a_report_with_long_unbroken_values_fits_the_window(chromium: _Chromium, hostile_run: tuple) -> None:
    # before: the 10,000-character description widened the page, and the features table scrolled sideways over
    # 15,000,000 pixels
    _, home = hostile_run
    report = _published(home) / "report.html"
    session = chromium.open(report.as_uri())
    found = chromium.send(
        "Runtime.evaluate",
        {
            "expression": "JSON.stringify({page: document.documentElement.scrollWidth, window: window.innerWidth,"
            " scrolled: [...document.querySelectorAll('.table')].filter(t => t.scrollWidth > t.clientWidth).length,"
            " beyond: [...document.querySelectorAll('body *')]"
            ".filter(e => e.getBoundingClientRect().right > window.innerWidth).length,"
            " cells: [...document.querySelectorAll('td')]"
            ".filter(td => td.textContent.includes('<U+202E>fdp')).length})",
            "returnByValue": True,
        },
        session=session,
    )
    dom = json.loads(found["result"]["value"])
    assert dom["window"] == 1100
    assert dom["page"] <= dom["window"]
    assert (dom["scrolled"], dom["beyond"]) == (0, 0)  # no table scrolls sideways, nothing reaches past the window
    assert dom["cells"] == 8  # the meanings of the disguised event type's 8 features, its controls shown
    assert chromium.requested() == [report.as_uri()]


# --- issue 23: buckets that say their rule, deciles that fit, outcomes that fit churn -----------------------------


def past_outcomes(dates: list[str]) -> pd.DataFrame:
    """Return tracked outcomes of past runs: all, three buckets and ten deciles each, with the widest rates."""
    rows = []
    for date in dates:
        rows.append((date, "all", "all", 1000, 0.333, 0.301))
        rows += [(date, "bucket", b, 300, 0.5, 0.5) for b in ("low", "medium", "high")]
        rows += [(date, "decile", str(d), 100, 1.0 if d == 1 else 0.125, 0.999) for d in range(1, 11)]
    frame = pd.DataFrame(rows, columns=["as_of", "grouping", "group", "profiles", "predicted_rate", "realised_rate"])
    return frame.assign(tracked_at="2011-12-11T00:00:00Z")


def test_outcomes_per_bucket_are_compared_across_runs_of_one_rule_only() -> None:
    from customer_ai.report.evaluation import _outcomes_section  # noqa: PLC0415

    ranked = BucketRule("percentile", 51, 91, "auto", "by score the high bucket would hold no profile")
    rules = {"2011-09-04": BucketRule("score", 25, 75), "2011-09-11": ranked}
    outcomes = past_outcomes(["2011-09-04", "2011-09-11"])
    page = _outcomes_section(pd.Timestamp("2011-12-11", tz="UTC"), outcomes, rules, ranked)
    assert "<tr><td class=n>2011-09-04</td><td class=n>score 25/75</td>" in page
    assert "<tr><td class=n>2011-09-11</td><td class=n>rank: top tenth high</td>" in page
    assert "joins only runs whose buckets followed this run&#x27;s rule (rank: top tenth high)" in page
    assert (
        '<table class="compact"><caption>Predicted → came true, per decile (1 = the highest scores), in percent' in page
    )
    assert "<td class=n>100 → 100</td><td class=n>12 → 100</td>" in page  # percent points, no sign: narrow


def test_outcomes_of_runs_that_predicted_a_value_show_it_beside_what_was_spent() -> None:
    from customer_ai.report.evaluation import _outcomes_section  # noqa: PLC0415

    rule = BucketRule("score", 25, 75)
    plain = past_outcomes(["2011-09-04"])
    assert "Expected value" not in _outcomes_section(pd.Timestamp("2011-12-11", tz="UTC"), plain, {}, rule, "GBP")
    valued = plain.assign(predicted_value=np.nan, realised_value=np.nan)
    worth = {("all", "all"): (302.5, 280.0), ("bucket", "high"): (1200.0, 1010.25), ("decile", "10"): (12.0, 0.0)}
    for (grouping, group), (predicted, realised) in worth.items():
        at = (valued["grouping"] == grouping) & (valued["group"] == group)
        valued.loc[at, ["predicted_value", "realised_value"]] = [predicted, realised]
    page = _outcomes_section(pd.Timestamp("2011-12-11", tz="UTC"), valued, {}, rule, "GBP")
    assert "<caption>Expected value → realised, per profile</caption>" in page
    row = page[page.index("Expected value → realised") :]
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", row)
    assert cells == [
        "2011-09-04",
        "GBP 302.50 → GBP 280.00",
        "–",
        "–",
        "GBP 1,200.00 → GBP 1,010.25",
        "–",
        "GBP 12.00 → GBP 0.00",
    ]


def test_the_bucket_lines_of_the_outcomes_figure_skip_runs_of_another_rule() -> None:
    from customer_ai.report.figures import _outcomes_figure  # noqa: PLC0415

    dates = ["2011-09-04", "2011-09-11", "2011-09-18"]
    figure = _outcomes_figure(past_outcomes(dates), dates, alike={"2011-09-11", "2011-09-18"})
    lines = {line.get_label(): line.get_ydata() for line in figure.axes[0].get_lines()}
    assert list(lines["all profiles: came true"]) == pytest.approx([0.301] * 3)
    high = lines["high bucket: came true"]
    assert np.isnan(high[0])
    assert list(high[1:]) == pytest.approx([0.5, 0.5])


def test_the_decile_table_of_twelve_runs_fits_the_window_in_chromium(chromium: _Chromium, tmp_path: Path) -> None:
    # before: "12% → 10%" in 10 decile columns overflowed the page and hid decile 10
    from customer_ai.report.evaluation import _outcomes_section  # noqa: PLC0415
    from customer_ai.report.html import _CSS  # noqa: PLC0415

    dates = [f"2011-{month:02d}-04" for month in range(1, 13)]
    rule = BucketRule("score", 25, 75)
    section = _outcomes_section(pd.Timestamp("2012-03-01", tz="UTC"), past_outcomes(dates), {}, rule)
    page = tmp_path / "outcomes.html"
    page.write_text(
        f"<!doctype html><html><head><style>{_CSS}</style></head><body><main>{section}</main></body></html>"
    )
    session = chromium.open(page.as_uri())
    dom = chromium.evaluate(
        "JSON.stringify({scrolled: [...document.querySelectorAll('.table')]"
        ".filter(t => t.scrollWidth > t.clientWidth).length, last: [...document.querySelectorAll('th')]"
        ".filter(th => th.textContent === '10').map(th => th.getBoundingClientRect().right),"
        " window: window.innerWidth})",
        session,
    )
    assert dom["scrolled"] == 0  # no table scrolls sideways
    assert len(dom["last"]) == 1
    assert dom["last"][0] <= dom["window"]  # decile 10 is in the window
    chromium.screenshot(session, ROOT / "var" / "test-artifacts" / "report-outcomes.png")


# --- predicted value: a goal with a value ------------------------------------------------------------------------


def test_value_deciles_cut_the_values_highest_first_as_the_held_out_deciles_are_cut(tmp_path: Path) -> None:
    values = np.array([5.0, 100.0, 0.0, 30.0, 20.0, 50.0, 10.0, 40.0, 20.0, 10.0, 5.0, 0.0])
    parts = lambda: np.array_split(values, 3)  # noqa: E731 - the parts, given again on every pass
    deciles = value_deciles(parts)
    # highest first: 100 | 50 | 40 | 30 | 20 20 | 10 | 10 | 5 | 5 | 0 0 (cut at floor(g * 12 / 10))
    assert deciles["profiles"].tolist() == [1, 1, 1, 1, 2, 1, 1, 1, 1, 2]
    assert deciles["total"].tolist() == [100.0, 50.0, 40.0, 30.0, 40.0, 10.0, 10.0, 5.0, 5.0, 0.0]
    assert deciles["mean"].tolist() == [100.0, 50.0, 40.0, 30.0, 20.0, 10.0, 10.0, 5.0, 5.0, 0.0]
    assert deciles["share"].tolist() == pytest.approx(deciles["total"].to_numpy() / 290)
    # tied values cut through, many row groups: the held-out decile table's means of the same order
    many = np.random.default_rng(3).integers(0, 7, 1003).astype("float64")
    found = value_deciles(lambda: np.array_split(many, 17))
    expected = decile_table(many, many)
    assert found["profiles"].tolist() == expected["profiles"].tolist()
    assert found["mean"].tolist() == pytest.approx(expected["mean_predicted"].tolist(), rel=1e-12)
    assert found["total"].sum() == pytest.approx(many.sum(), rel=1e-12)
    # fewer profiles than groups: empty groups, NaN means
    few = value_deciles(lambda: [np.array([3.0, 1.0, 2.0])])
    assert few["profiles"].tolist() == [0, 0, 0, 1, 0, 0, 1, 0, 0, 1]
    assert few.loc[few["profiles"] == 1, "total"].tolist() == [3.0, 2.0, 1.0]
    assert few["mean"].isna().sum() == 7


VALUE_METRICS = {
    "normalised_gini": 0.62,
    "spearman": 0.41,
    "decile_error": 0.25,
    "total_ratio": 1.1,
    "total_predicted": 1100.0,
    "total_realised": 1000.0,
    "deciles": [
        {"group": g, "profiles": 3, "mean_predicted": 10.0 * (11 - g), "mean_realised": 9.0 * (11 - g)}
        for g in range(1, 11)
    ],
    "baselines": {"past_spend": {"normalised_gini": 0.55}},
}


def _value_model(**metrics: object) -> dict:
    """Return the ``value`` of a hand-made model.json, its held-out metrics changed by ``metrics``."""
    return {
        "field": "value",
        "model": "tweedie",
        "best_iteration": 12,
        "scale": 0.9,
        "start": {"feature": "goal_value_per_30d", "per_window": 1.0, "floor": 4.5, "center": 2.0},
        "features": ["goal_value_per_30d", "tenure_days"],
        "parameters": {"objective": "tweedie"},
        "why": "the expected value of the goal's events in the window",
        "metrics": {**VALUE_METRICS, **metrics},
    }


def _value_html(tmp_path: Path, value: dict, gain: float = 0.0) -> str:
    """The value section of a hand-made run folder of 12 profiles (3 row groups) whose model has ``value``."""
    from customer_ai.report.value import _value_section  # noqa: PLC0415 - the section alone, without a run folder

    values = [5.0, 100.0, 0.0, 30.0, 20.0, 50.0, 10.0, 40.0, 20.0, 10.0, 5.0, 0.0]
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / "scores.parquet"
    frame = pd.DataFrame(
        {"profile_id": [f"p{i}" for i in range(12)], "probability": 0.5, "bucket": "medium", "expected_value": values}
    )
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=5)
    model = {"model_version": "v", "as_of": "2011-12-11", "validation": {"snapshot": "2011-11-11"}, "value": value}
    model["history"] = {"window_days": 30}
    run = _run_files(tmp_path, model, path, ScoreSummary.read(path))
    goal = {**BASE_SPEC["goal"], "value": {"field": "value"}}
    spec = make_spec(
        goal=goal, output={"currency": "$"}, training={**BASE_SPEC["training"], "min_value_gini_gain": gain}
    )
    return _drawn(_value_section, spec, run)


def _table_rows(section: str, caption: str) -> list[list[str]]:
    """The body rows of the section's table with ``caption``, each cell as its text."""
    table = re.search(rf"<caption>{re.escape(caption)}</caption>.*?<tbody>(.*?)</tbody>", section, re.DOTALL)
    return [
        [html_module.unescape(re.sub(r"<[^>]+>", "", cell)) for cell in re.findall(r"<td[^>]*>.*?</td>", row)]
        for row in re.findall(r"<tr>(.*?)</tr>", table.group(1))
    ]


def test_the_value_section_shows_the_runs_expected_value_by_decile_and_the_held_out_check(tmp_path: Path) -> None:
    section = _value_html(tmp_path, _value_model())
    found = _sections(section)["value"]
    assert found["heading"] == "Predicted value"
    assert (found["svg"], found["table"]) == (1, 4)
    text = found["text"]
    assert (
        "The expected value of a profile is the expected sum of the goal events' value in the next 30 days, zero "
        "included" in text
    )
    assert (
        "One LightGBM model with a Tweedie objective predicts it, boosted from each profile's past spend rate" in text
    )
    assert "Its factors add up exactly on the log of the expected value." in text
    assert "the predictions are scaled by 0.900 so that their total on the calibration half" in text
    assert "This run: 12 profiles are expected to be worth $290.00 in all, $24.17 per profile." in text
    assert _table_rows(section, "Expected value by decile of this run (1 = the highest expected values)") == [
        ["1", "1", "$100.00", "$100.00", "34.5%"],
        ["2", "1", "$50.00", "$50.00", "17.2%"],
        ["3", "1", "$40.00", "$40.00", "13.8%"],
        ["4", "1", "$30.00", "$30.00", "10.3%"],
        ["5", "2", "$20.00", "$40.00", "13.8%"],
        ["6", "1", "$10.00", "$10.00", "3.4%"],
        ["7", "1", "$10.00", "$10.00", "3.4%"],
        ["8", "1", "$5.00", "$5.00", "1.7%"],
        ["9", "1", "$5.00", "$5.00", "1.7%"],
        ["10", "2", "$0.00", "$0.00", "0.0%"],
    ]
    assert (
        "Held out: measured on 30 profiles of the validation snapshot 2011-11-11 (its evaluation half), whose "
        "outcomes no fitting step saw" in text
    )
    assert "The quality gate: the value model's normalised Gini 0.620 is above the past spend rate's 0.550." in text
    metrics = _table_rows(section, "Held-out metrics of the expected value")
    assert [row[:3] for row in metrics] == [
        ["normalised Gini", "0.620", "0.550"],
        ["Spearman", "0.410", "–"],
        ["decile error", "25.0%", "–"],
        ["predicted / realised total", "1.100", "–"],
    ]
    assert metrics[3][3] == (
        "$1,100.00 predicted against $1,000.00 realised: 1 is the right level, 1.10 means the total is 10% too high"
    )
    held_out = _table_rows(section, "Held out: predicted against realised by decile (1 = the highest predicted)")
    assert held_out[0] == ["1", "3", "$100.00", "$90.00"]
    assert held_out[9] == ["10", "3", "$10.00", "$9.00"]
    assert "poor" not in text


def test_the_value_section_says_plainly_when_the_value_model_is_poor(tmp_path: Path) -> None:
    below = {"normalised_gini": 0.5}
    poor = "The value model is poor: the value model's normalised Gini 0.500 is not above the past spend rate's 0.550."
    assert poor in _sections(_value_html(tmp_path / "gate", _value_model(**below)))["value"]["text"]
    # a gate that lets a model a little worse than the past spend through: said all the same
    let_through = _sections(_value_html(tmp_path / "let", _value_model(**below), gain=-0.1))["value"]["text"]
    assert (
        "The value model is poor: its normalised Gini 0.500 is not above the past spend rate's 0.550 (the quality "
        "gate lets it through: training.min_value_gini_gain is -0.1)." in let_through
    )
    # the best of the run's baselines is the bar, the column and the words
    baselines = {"past_spend": {"normalised_gini": 0.55}, "last_year": {"normalised_gini": 0.65}}
    page = _value_html(tmp_path / "year", _value_model(baselines=baselines))
    assert (
        "The value model is poor: the value model's normalised Gini 0.620 is not above the last year's spend's "
        "0.650. Ranking the profiles by the last year's spend finds those who spend most as well as its expected "
        "values do, or better" in _sections(page)["value"]["text"]
    )
    assert _table_rows(page, "Held-out metrics of the expected value")[0][:3] == ["normalised Gini", "0.620", "0.650"]
    assert "<th>best baseline: the last year&#x27;s spend</th>" in page


@pytest.mark.e2e
def test_a_report_has_the_value_section_only_for_a_goal_with_a_value(
    retail_run: Path, retail_spec: InstanceSpec, retail_report: Path, tmp_path: Path
) -> None:
    page = retail_report.read_text(encoding="utf-8")
    assert 'id="value"' not in page
    assert 'href="#value"' not in page
    folder = _copy_run(retail_run, tmp_path)
    model = artifacts.read_json(folder / "model.json")
    artifacts.write_json(folder / "model.json", {**model, "value": _value_model()})
    scores = pd.read_parquet(folder / "scores.parquet")
    scores["expected_value"] = scores["probability"] * 100
    scores.to_parquet(folder / "scores.parquet", index=False)
    spec = retail_spec.model_copy(
        update={"goal": retail_spec.goal.model_copy(update={"value": GoalValue(field="value")})}
    )
    valued = build_report(spec, AS_OF, tmp_path, None, folder=folder).read_text(encoding="utf-8")
    keys = list(SECTIONS)
    keys.insert(keys.index("evaluation") + 1, "value")
    assert list(_sections(valued)) == keys
    assert re.findall(r'<li><a href="#([^"]+)">', valued) == keys
    total = float(scores["expected_value"].sum())
    worth = f"{money_prefix(spec.output.currency)}{total:,.2f}"  # the instance's currency: GBP
    assert f"This run: {len(scores):,} profiles are expected to be worth {worth} in all" in valued


# --- next goal event: an instance with output.timing ----------------------------------------------------------------


def test_timing_counts_put_each_median_in_its_interval_and_count_the_missing_ones() -> None:
    parts = [np.array([0.0, 7.49, 7.5, np.nan]), np.array([22.5, 30.0, np.nan]), np.array([], dtype="float64")]
    counts, missing = timing_counts(parts, 7.5, 4)
    # intervals [0, 7.5), [7.5, 15), [15, 22.5), [22.5, 30): a median at the last one's end is counted in it
    assert counts.tolist() == [2, 1, 0, 2]
    assert missing == 2


TIMING_METRICS = {
    "concordance": 0.71,
    "concordance_median": 0.7,
    "bought_by_median": 0.55,
    "counted": 40,
    "finite_median": 0.6,
    "span_days": 30.0,
    "baselines": {"recency": {"concordance": 0.65}, "bgnbd": {"concordance": 0.69}},
}


def _timing_model(learned_intervals: int = 12, **metrics: object) -> dict:
    """Return the ``timing`` of a hand-made model.json, its held-out metrics changed by ``metrics``."""
    return {
        "model": "discrete-time hazard",
        "parameters": {"objective": "binary", "num_leaves": 15},
        "best_iteration": 80,
        "grid": {"window_days": 30.0, "horizon_days": 90.0, "width_days": 7.5, "intervals": 12, "window_index": 4},
        "features": ["tenure_days", "days_since_last_event"],
        "learned_intervals": learned_intervals,
        "training": {"snapshots": 3, "profile_snapshots": 900, "rows": 6000, "rows_kept": 5000, "max_rows": 5000},
        "why": "the days to the next goal event",
        "metrics": {**TIMING_METRICS, **metrics},
    }


def _timing_html(tmp_path: Path, timing: dict, days: list[float], gain: float = 0.0) -> str:
    """The timing section of a hand-made run folder (row groups of 4 profiles) whose model has ``timing``."""
    from customer_ai.report.timing import _timing_section  # noqa: PLC0415 - the section alone, without a run folder

    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / "scores.parquet"
    frame = pd.DataFrame(
        {"profile_id": [f"p{i}" for i in range(len(days))], "probability": 0.5, "bucket": "medium"}
    ).assign(days_to_next=days)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=4)
    validation = {"snapshot": "2011-11-11", "metrics": {"n": 120}}
    model = {"model_version": "v", "as_of": "2011-12-11", "validation": validation, "timing": timing}
    run = _run_files(tmp_path, model, path, ScoreSummary.read(path))
    spec = make_spec(output={"timing": True}, training={**BASE_SPEC["training"], "min_timing_concordance_gain": gain})
    return _drawn(_timing_section, spec, run)


def _paragraphs(section: str) -> list[str]:
    """The text of the section's paragraphs, in order."""
    return [html_module.unescape(text) for text in re.findall(r"<p(?: [^>]*)?>(.*?)</p>", section, re.DOTALL)]


DAYS = [5.0, 29.9, np.nan, 30.0, 45.0, 59.99, np.nan, 60.0, 90.0, np.nan]


def test_the_timing_section_says_what_is_predicted_how_the_run_is_spread_and_the_held_out_check(
    tmp_path: Path,
) -> None:
    section = _timing_html(tmp_path, _timing_model(), DAYS)
    found = _sections(section)["timing"]
    assert found["heading"] == "Next goal event"
    assert (found["svg"], found["table"]) == (1, 3)
    assert _paragraphs(section) == [
        "The next goal event of a profile is predicted as the median number of days from the as-of date to its next "
        "goal event (days_to_next): the time by which it is as likely as not to have reached the goal; next_by is "
        "the date of that day. A discrete-time hazard model gives each profile a curve, its chance of no goal event "
        "yet over the next 90 days, in intervals of 7.5 days (a quarter of the goal window). The curve is anchored on "
        "the profile's probability: its chance of a goal event within the 30-day goal window is exactly the "
        "probability its score shows. A median beyond the 90-day horizon is left empty.",
        "This run: 7 of 10 profiles (70.0%) have a median, 2 of them within the goal window; 3 (30.0%) are left "
        "empty: they are less likely than not to reach the goal within 90 days.",
        "Held out: measured on the 120 profiles of the validation snapshot 2011-11-11 (its evaluation half), whose "
        "goal events no fitting step saw, observed for the 30 days after it. Concordance (Harrell's) is the share of "
        "pairs of profiles put in the right order, among the pairs whose order is known (one reached the goal within "
        "the 30 days before the other did, or the other did not at all): the one expected to wait less should be the "
        "one who reached the goal first. 1 is a perfect order, 0.5 a random one. The quality gate: the timing "
        "model's concordance 0.710 is above the repeat-buying model's 0.690.",
    ]
    assert "Profiles by their median days to the next goal event; 3 have none within 90 days" in section
    assert _table_rows(section, "Profiles by goal window of their median days to the next goal event") == [
        ["within the goal window: under 30 days", "2", "20.0%", "20.0%"],
        ["window 2: 30 to under 60 days", "3", "30.0%", "50.0%"],
        ["window 3: 60 to 90 days", "2", "20.0%", "70.0%"],
        ["none: beyond 90 days (left empty)", "3", "30.0%", "–"],
    ]
    metrics = _table_rows(section, "Held-out metrics of the days to the next goal event")
    assert [row[:4] for row in metrics] == [
        ["concordance", "0.710", "0.650", "0.690"],
        ["concordance of the median", "0.700", "–", "–"],
        ["bought by the median", "55.0%", "–", "–"],
        ["with a median", "60.0%", "–", "–"],
    ]
    assert metrics[2][4] == (
        "of the 40 profiles whose median lies within the 30 observed days, the share that reached the goal before "
        "their median: 50% is right, more means the medians come too late, less too early"
    )
    folded = re.search(r'<details class="analysts">(.*?)</details>', section, re.DOTALL).group(1)
    assert "<summary>For analysts: the timing model</summary>" in folded
    rows = {
        html_module.unescape(key): html_module.unescape(re.sub(r"<[^>]+>", "", value))
        for key, value in re.findall(r"<tr><th>(.*?)</th>(<td[^>]*>.*?</td>)</tr>", folded)
    }
    assert rows == {
        "model": "discrete-time hazard; trees: 80",
        "grid": "12 intervals of 7.5 days up to 90 days (horizon 90); the 30-day goal window ends at boundary 4",
        "learned intervals": "12 of 12: medians up to 90 days",
        "training rows": "5,000 person-period rows kept of 6,000 (at most 5,000), from 900 (profile, snapshot) "
        "pairs of 3 snapshots",
        "parameters": "num_leaves=15, objective=binary",
        "features": "2 and the interval's number: tenure_days, days_since_last_event",
        "why": "the days to the next goal event",
    }


def test_the_timing_section_says_where_the_learned_intervals_stop_the_medians(tmp_path: Path) -> None:
    days = [10.0, 52.5, 60.0, np.nan]
    section = _timing_html(tmp_path, _timing_model(learned_intervals=8), days)
    words, run = _paragraphs(section)[:2]
    assert words.endswith(
        "A median beyond the 90-day horizon or beyond the 60 days the model learned from (no training row reached a "
        "later interval, so it cannot tell what comes after) is left empty."
    )
    assert run == (
        "This run: 3 of 4 profiles (75.0%) have a median, 1 of them within the goal window; 1 (25.0%) are left "
        "empty: they are less likely than not to reach the goal within 60 days."
    )
    assert _table_rows(section, "Profiles by goal window of their median days to the next goal event") == [
        ["within the goal window: under 30 days", "1", "25.0%", "25.0%"],
        ["window 2: 30 to 60 days", "2", "50.0%", "75.0%"],
        ["none: beyond 60 days (left empty)", "1", "25.0%", "–"],
    ]
    assert "12 of 12" not in section
    assert "8 of 12: medians up to 60 days" in html_module.unescape(section)


def test_the_timing_section_says_plainly_when_the_timing_model_is_poor(tmp_path: Path) -> None:
    below = {"concordance": 0.68}
    poor = (
        "The timing model is poor: the timing model's concordance 0.680 is not above the repeat-buying model's "
        "0.690. Its days order the profiles' next goal events no better than the simpler ranking does: read them "
        "with care."
    )
    assert poor in _paragraphs(_timing_html(tmp_path / "gate", _timing_model(**below), DAYS))
    # a gate that lets a model a little worse than the baselines through: said all the same
    let_through = _paragraphs(_timing_html(tmp_path / "let", _timing_model(**below), DAYS, gain=-0.05))
    assert (
        "The timing model is poor: its concordance 0.680 is not above the repeat-buying model's 0.690 (the "
        "quality gate lets it through: training.min_timing_concordance_gain is -0.05). Its days order the profiles' "
        "next goal events no better than the simpler ranking does: read them with care." in let_through
    )
    assert not [text for text in _paragraphs(_timing_html(tmp_path / "ok", _timing_model(), DAYS)) if "poor" in text]


@pytest.mark.e2e
def test_a_report_has_the_timing_section_only_for_an_instance_with_timing(
    retail_run: Path, retail_spec: InstanceSpec, retail_report: Path, tmp_path: Path
) -> None:
    page = retail_report.read_text(encoding="utf-8")
    assert 'id="timing"' not in page
    assert 'href="#timing"' not in page
    folder = _copy_run(retail_run, tmp_path)
    model = artifacts.read_json(folder / "model.json")
    artifacts.write_json(folder / "model.json", {**model, "timing": _timing_model()})
    scores = pd.read_parquet(folder / "scores.parquet")
    scores["days_to_next"] = np.where(scores["probability"] > 0.3, (1 - scores["probability"]) * 90, np.nan)
    scores.to_parquet(folder / "scores.parquet", index=False)
    spec = retail_spec.model_copy(update={"output": retail_spec.output.model_copy(update={"timing": True})})
    timed = build_report(spec, AS_OF, tmp_path, None, folder=folder).read_text(encoding="utf-8")
    keys = list(SECTIONS)
    keys.insert(keys.index("evaluation") + 1, "timing")
    assert list(_sections(timed)) == keys
    assert re.findall(r'<li><a href="#([^"]+)">', timed) == keys
    dated = int(scores["days_to_next"].notna().sum())
    assert f"This run: {dated:,} of {len(scores):,} profiles" in html_module.unescape(timed)
