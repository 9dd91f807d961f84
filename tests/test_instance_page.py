"""An instance's page of the view (customer_ai_airflow/instance_page.py): segments, downloads, the profile look-up.

Tiny instance files, a stand-in store and a hand-written run folder, as the view's own unit tests
(tests/test_airflow_ui.py, which also drives the served routes in Chromium).
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from customer_ai.saved_audiences import AudienceError, SavedAudience
from customer_ai.scoring import percentile_of, score_of
from customer_ai.store import AudienceExistsError, SQLiteStore, StoreUnavailableError
from customer_ai_airflow.instance_page import (
    AudienceAsk,
    Editing,
    audience_ask,
    delete_audience,
    instance_page,
    render_instance_page,
    save_audience,
    segment_download,
)
from customer_ai_airflow.ui import UnknownPageError

from conftest import BASE_SPEC

AS_OF, RUN_ID, VERSION = "2011-12-11", "af-a1a1a1a1a1", "v-alpha"
FACTORS = [
    {"feature": "recency", "description": "days since the last purchase: 3", "contribution": 0.8,
     "importance": "high", "effect": "raises the chance a lot"},
]  # fmt: skip


class StandInStore:
    """A published run of alpha with two segments; ``failing`` raises as an unreachable server does."""

    def __init__(self, *, published: bool = True, failing: bool = False, saved: tuple = ()) -> None:
        self.published, self.failing, self.saved = published, failing, list(saved)

    def read_audiences(self, instance: str) -> list:
        self._ask()
        return self.saved

    def _ask(self) -> None:
        if self.failing:
            raise StoreUnavailableError("cannot reach the profile store at db:5432/crm")

    def latest_run(self, instance: str, status: str | None = "ok") -> dict | None:
        self._ask()
        row = {"instance": instance, "as_of": AS_OF, "model_version": VERSION, "run_id": RUN_ID, "status": "ok"}
        return row if self.published else None

    def read_scores(self, instance: str, as_of: str | None = None, profile_id: str | None = None) -> pd.DataFrame:
        self._ask()
        row = {
            "profile_id": "c1",
            "probability": 0.8123,
            "score": 81,
            "percentile": 97,
            "bucket": "high",
            "expected_value": 412.5,
            "days_to_next": 9.0,
            "next_by": "2011-12-19",
            "factors": FACTORS,
        }
        return pd.DataFrame([row] if profile_id == "c1" else [], columns=list(row))

    def segment_names(self, instance: str, as_of: str | None = None) -> list[str]:
        self._ask()
        return ["high", "loyal"]

    def read_segment(self, instance: str, segment: str, as_of: str | None = None) -> pd.DataFrame:
        self._ask()
        return pd.DataFrame(
            {
                "profile_id": ["=c1", "c2"],
                "probability": [0.8, 0.7],
                "factors": [FACTORS, []],
                "days_to_next": [np.nan, np.nan],
            }
        )


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    instances, home = tmp_path / "instances", tmp_path / "home"
    instances.mkdir()
    (instances / "alpha.yaml").write_text(yaml.safe_dump({**BASE_SPEC, "name": "alpha", "output": {"currency": "GBP"}}))
    run = home / "artifacts" / "alpha" / AS_OF / RUN_ID
    run.mkdir(parents=True)
    segments = {"loyal": 340, "high": 178, "low": 889, "medium": 712}
    (run / "metadata.json").write_text(json.dumps({"model_version": VERSION, "segments": segments}))
    probability = np.array([0.9, 0.6, 0.6, 0.3, 0.05])
    scores = pd.DataFrame({"probability": probability, "score": score_of(probability)})
    scores["percentile"] = percentile_of(probability)
    scores.assign(expected_value=[100.0, 30.0, 10.0, 2.0, 0.5]).to_parquet(run / "scores.parquet", index=False)
    gains = [
        {"decile": d, "share": d / 10, "positive_rate": 0.5, "lift": 2.0, "cumulative_gain": 0.2 * d} for d in (1, 2)
    ]
    (run / "evaluation.json").write_text(json.dumps({"scorers": {"model": {"gains": gains}}}))
    return instances, home


def test_the_page_lists_the_current_runs_segments_with_their_sizes_and_downloads(folders) -> None:
    instances, home = folders
    page = instance_page(instances, home, "alpha", StandInStore)
    assert (page.as_of, page.goal) == (AS_OF, "purchase occurs within 30 days")
    assert page.segments == {"low": 889, "medium": 712, "high": 178, "loyal": 340}  # buckets first, then by name
    text = render_instance_page(page)
    assert '<tr data-segment="loyal"><td>loyal</td><td class="num">340</td>' in text
    assert '<a href="alpha/segments/loyal.csv" download>CSV</a>' in text
    assert '<a href="alpha/segments/loyal.parquet" download>PARQUET</a>' in text
    assert '<form class="lookup" method="get" action="alpha">' in text
    assert 'class="profile"' not in text  # nobody looked up


def test_a_profile_look_up_shows_its_scores_and_factors_in_words(folders) -> None:
    instances, home = folders
    page = instance_page(instances, home, "alpha", StandInStore, profile_id=" c1 ")
    assert page.looked_up == "c1"
    text = render_instance_page(page)
    assert "<h3>Profile c1</h3>" in text
    for cells in (
        "<th>score</th><td>81 (probability 0.812)</td>",
        "<th>bucket</th><td>high</td>",
        "<th>percentile</th><td>97</td>",
        "<th>expected value</th><td>GBP 412.50</td>",
        "<th>next goal event</th><td>within 9 days (by 2011-12-19)</td>",
    ):
        assert cells in text
    assert "<li>days since the last purchase: 3: raises the chance a lot</li>" in text
    missing = render_instance_page(instance_page(instances, home, "alpha", StandInStore, profile_id="<b>x</b>"))
    assert "&lt;b&gt;x&lt;/b&gt; is not among the profiles scored as of 2011-12-11." in missing
    assert "<b>x</b>" not in missing


def test_a_segment_downloads_as_segment_export_writes_it(folders) -> None:
    instances, _ = folders
    content, media, name = segment_download(instances, "alpha", "loyal", "csv", StandInStore)
    assert (media, name) == ("text/csv; charset=utf-8", "alpha_loyal_2011-12-11.csv")
    frame = pd.read_csv(io.BytesIO(content))
    assert frame["profile_id"].tolist() == ["'=c1", "c2"]  # a spreadsheet shows it, never runs it
    assert "days_to_next" not in frame.columns  # what the run did not predict is left out
    assert frame["factor_1_effect"].tolist() == ["raises the chance a lot", np.nan]
    content, media, name = segment_download(instances, "alpha", "loyal", "parquet", StandInStore)
    assert (media, name) == ("application/vnd.apache.parquet", "alpha_loyal_2011-12-11.parquet")
    assert pd.read_parquet(io.BytesIO(content))["profile_id"].tolist() == ["=c1", "c2"]  # exact


@pytest.mark.parametrize(
    ("asked", "status", "says"),
    [
        (("nobody", "loyal", "csv", StandInStore), 404, "there is no instance named 'nobody'"),
        (("alpha", "loyal", "xlsx", StandInStore), 404, "a segment downloads as csv or parquet, not 'xlsx'"),
        (("alpha", "gone", "csv", StandInStore), 404, "alpha has no segment 'gone' with members as of 2011-12-11"),
        (("alpha", "loyal", "csv", lambda: StandInStore(published=False)), 404, "alpha has no published run yet"),
        (("alpha", "loyal", "csv", lambda: StandInStore(failing=True)), 503, "the profile store cannot be read"),
    ],
)
def test_a_download_that_cannot_be_served_says_why(folders, asked: tuple, status: int, says: str) -> None:
    instances, _ = folders
    name, segment, fmt, store = asked
    with pytest.raises(UnknownPageError, match=says) as raised:
        segment_download(instances, name, segment, fmt, store)
    assert raised.value.status == status


def test_an_instance_without_a_run_or_a_store_says_so(folders) -> None:
    instances, home = folders
    page = instance_page(instances, home, "alpha", lambda: StandInStore(published=False))
    assert "alpha has no published run yet: its DAG has not scored anyone" in render_instance_page(page)
    with pytest.raises(UnknownPageError, match="cannot reach the profile store") as raised:
        instance_page(instances, home, "alpha", lambda: StandInStore(failing=True))
    assert raised.value.status == 503
    with pytest.raises(UnknownPageError, match="there is no instance named 'beta'"):
        instance_page(instances, home, "beta", StandInStore)


def test_the_audience_builder_shows_the_cut_asked_for_and_the_one_of_highest_expected_profit(folders) -> None:
    instances, home = folders
    page = instance_page(instances, home, "alpha", StandInStore)  # by default: score 75 and up, without money
    assert (page.ask, page.valued) == (AudienceAsk("score", 75), True)
    assert (page.audience["size"], page.audience["expected_conversions"]) == (1, pytest.approx(0.9))
    # without a value per conversion the run's expected values make the profit: free contacts, everyone pays
    assert page.best["size"] == 5
    # at 20 a contact, only the first pays for it (the two at score 60 add 30 + 10 for 40: nothing, the smaller wins)
    page = instance_page(instances, home, "alpha", StandInStore, ask=AudienceAsk("score", 75, None, 20.0))
    assert (page.best["at"], page.best["size"], page.best["expected_profit"]) == (90, 1, 80.0)
    # a link asks for the best cut, with the same money: to look at it, and to save it
    link = '<a class="best-link" href="alpha?kind=score&amp;at=90&amp;value=&amp;cost=20">Show this cut</a>'
    assert link in render_instance_page(page)
    ask = AudienceAsk("top", 3, value_per_conversion=10.0, cost_per_contact=4.0)
    page = instance_page(instances, home, "alpha", StandInStore, ask=ask)
    assert (page.audience["size"], page.audience["expected_profit"]) == (3, pytest.approx(9.0))
    assert (page.best["size"], page.best["expected_profit"]) == (3, pytest.approx(9.0))
    text = render_instance_page(page)
    for shown in (
        "<th>profiles</th><td>3</td>",
        "<th>expected to reach the goal</th><td>2.1</td>",
        "<th>expected rate</th><td>70.0%</td>",
        "<th>expected profit</th><td>GBP 9.00</td>",
        "The highest expected profit by top: the top N profiles, N = 3, 3 profiles, GBP 9.00.</p>",  # shown: no link
        '<option value="top" selected>the top N profiles, N =</option>',
        '<td class="num">2</td><td class="num">20%</td><td class="num">40%</td><td class="num">2.00</td>',
    ):
        assert shown in text, shown
    # a cut out of its range is said on the page, not raised
    page = instance_page(instances, home, "alpha", StandInStore, ask=AudienceAsk("percentile", 0))
    assert "a cut by percentile is at 1 to 100, not 0" in render_instance_page(page)


def test_the_builders_form_fields_are_read_as_text_and_a_wrong_one_is_named() -> None:
    assert audience_ask(None, None, None, None) == AudienceAsk()
    assert audience_ask("top", "500", "", " ") == AudienceAsk("top", 500)
    assert audience_ask("score", "60", "25.5", "1") == AudienceAsk("score", 60, 25.5, 1.0)
    with pytest.raises(ValueError, match=r"^at: '6\.5' is not a whole number$"):
        audience_ask("score", "6.5", None, None)
    with pytest.raises(ValueError, match=r"^cost per contact: 'ten' is not a number$"):
        audience_ask("score", "60", None, "ten")


def test_a_runs_scores_are_tallied_once_for_every_cut_asked(folders, monkeypatch) -> None:
    from customer_ai import audiences  # noqa: PLC0415

    instances, home = folders
    reads = []
    original = audiences.read_row_groups
    monkeypatch.setattr(audiences, "read_row_groups", lambda *args: reads.append(args) or original(*args))
    for at in (60, 75, 90):
        instance_page(instances, home, "alpha", StandInStore, ask=AudienceAsk("score", at))
    assert len(reads) == 1  # the file is this test's own: read for the first cut, then its tally kept
    scores = home / "artifacts" / "alpha" / AS_OF / RUN_ID / "scores.parquet"
    scores.unlink()  # a file that is gone is said, not served from the tally
    page = instance_page(instances, home, "alpha", StandInStore)
    assert page.problem == "the current run's scores file cannot be read: no audience can be cut"


# --- saved audiences --------------------------------------------------------------------------------------------

VIP = SavedAudience("vip", "percentile", 90, "ana", "2026-12-06T10:00:00Z")
TOP = SavedAudience("top_2", "top", 2, "bo", "2026-12-06T11:00:00Z")


def _applied(home: Path, *audiences: SavedAudience, sizes: dict[str, int]) -> None:
    """Make the current run's metadata say it applied ``audiences``, with their ``sizes``."""
    path = home / "artifacts" / "alpha" / AS_OF / RUN_ID / "metadata.json"
    metadata = json.loads(path.read_text())
    metadata["segments"].update(sizes)
    metadata["audiences"] = [a.record() for a in audiences]
    path.write_text(json.dumps(metadata))


def test_saved_audiences_are_listed_with_their_rule_who_when_and_where_they_stand(folders) -> None:
    instances, home = folders
    _applied(home, VIP, sizes={"vip": 120})
    store = StandInStore(saved=[VIP, TOP])
    page = instance_page(instances, home, "alpha", lambda: store, editing=Editing(allowed=True))
    assert page.saved == [VIP, TOP]
    assert page.segments["vip"] == 120
    text = render_instance_page(page)
    assert (
        '<tr data-segment="vip"><td>vip<div class="note">saved audience: percentile at least 90, by ana</div></td>'
        '<td class="num">120</td>'
    ) in text
    assert (
        '<tr data-audience="vip"><td>vip</td><td>percentile at least 90</td><td>ana</td><td>2026-12-06T10:00:00Z</td>'
        '<td class="num">120 profiles</td><td><form method="post" action="alpha/audiences/vip/delete" '
        'class="delete-audience"><button type="submit">Delete</button></form></td></tr>'
    ) in text
    assert '<tr data-audience="top_2"><td>top_2</td><td>the top 2 profiles by probability</td>' in text
    assert '<td class="num">from the next run</td>' in text  # saved after the current run
    # an editor may save the cut shown: its fields go with the form
    assert '<form class="save-audience" method="post" action="alpha/audiences">' in text
    assert '<input type="hidden" name="kind" value="score"><input type="hidden" name="at" value="75">' in text
    # its rule changed since the run: the size then, said as such
    store.saved = [SavedAudience("vip", "score", 50, "ana", "2026-12-06T12:00:00Z")]
    text = render_instance_page(instance_page(instances, home, "alpha", lambda: store))
    assert "120 profiles by its rule then (percentile at least 90); this one from the next run" in text


def test_a_reader_sees_the_saved_audiences_but_no_form_to_save_or_delete(folders) -> None:
    instances, home = folders
    page = instance_page(instances, home, "alpha", lambda: StandInStore(saved=[VIP]))  # editing: not allowed
    text = render_instance_page(page)
    assert '<tr data-audience="vip">' in text
    assert '<form method="post"' not in text
    assert "delete-audience" not in text
    assert "save-audience" not in text
    assert "Saving this cut as an audience needs permission to edit the DAG customer_ai__alpha in Airflow." in text
    empty = render_instance_page(instance_page(instances, home, "alpha", StandInStore))
    assert "No saved audience yet: build one below and save it" in empty


def test_the_page_says_what_was_just_saved_or_deleted_only_when_it_is_so(folders) -> None:
    instances, home = folders
    store = StandInStore(saved=[VIP])

    def shown(**done: str) -> str:
        return render_instance_page(instance_page(instances, home, "alpha", lambda: store, editing=Editing(**done)))

    assert (
        '<p class="notice">Saved the audience vip: percentile at least 90. Every later run applies it as a segment. '
        "After the next run it downloads in Segments above.</p>"
    ) in shown(saved="vip")
    _applied(home, VIP, sizes={"vip": 120})
    assert "as a segment. The current run applied it: 120 profiles, in Segments above.</p>" in shown(saved="vip")
    assert 'class="notice"' not in shown(saved="nobody")  # a link cannot make the page claim a save
    assert 'class="notice"' not in shown(deleted="vip")  # ... nor a delete of an audience that is there
    assert '<p class="notice">Deleted the audience gone: later runs no longer apply it' in shown(deleted="gone")


def with_file_segment(instances: Path, name: str) -> None:
    """Give instance alpha's file a segment called ``name``."""
    segment = {"name": name, "where": [{"field": "score", "op": "gt", "value": 1}]}
    (instances / "alpha.yaml").write_text(yaml.safe_dump({**BASE_SPEC, "name": "alpha", "segments": [segment]}))


def test_a_name_the_instance_file_takes_is_shown_as_not_applied(folders) -> None:
    instances, home = folders
    with_file_segment(instances, "vip")
    text = render_instance_page(instance_page(instances, home, "alpha", lambda: StandInStore(saved=[VIP])))
    assert '<td class="num">not applied: the instance file has a segment of this name</td>' in text


@pytest.fixture
def store_file(tmp_path: Path):  # noqa: ANN201 - open_store as the view calls it
    path = tmp_path / "store.sqlite"
    SQLiteStore(path).read_runs("alpha")  # the tasks made it

    def open_store(*, create: bool = False) -> SQLiteStore:
        return SQLiteStore(path, create=create)

    return open_store


def test_saving_a_cut_keeps_its_rule_and_who_saved_it_and_deleting_it_removes_it(folders, store_file) -> None:
    instances, _ = folders
    kept = save_audience(instances, "alpha", store_file, " keen ", AudienceAsk("top", 250, 40.0, 4.0), saved_by="ana")
    assert (kept.name, kept.cut, kept.at, kept.saved_by) == ("keen", "top", 250, "ana")
    assert store_file().read_audiences("alpha") == [kept]
    with pytest.raises(AudienceExistsError, match="alpha has a saved audience named keen already"):
        save_audience(instances, "alpha", store_file, "keen", AudienceAsk("score", 10), saved_by="bo")
    assert delete_audience(instances, "alpha", store_file, "keen") == kept
    assert store_file().read_audiences("alpha") == []
    with pytest.raises(UnknownPageError, match="alpha has no saved audience named 'keen' \\(deleted already\\?\\)"):
        delete_audience(instances, "alpha", store_file, "keen")


@pytest.mark.parametrize(
    ("name", "ask", "says"),
    [
        ("", AudienceAsk("score", 70), "audience name '': use a lower-case letter"),
        ("Keen!", AudienceAsk("score", 70), "audience name 'Keen!': use a lower-case letter"),
        ("high", AudienceAsk("score", 70), "audience name 'high' is the segment of the bucket high in every run"),
        ("keen", AudienceAsk("top", 0), "audience keen: a cut by top is at a whole number at least 1, not 0"),
        ("keen", AudienceAsk("decile", 3), "audience keen: a cut is by score, percentile or top, not 'decile'"),
    ],
)
def test_a_cut_a_run_cannot_apply_is_never_saved(folders, store_file, name: str, ask: AudienceAsk, says: str) -> None:
    instances, _ = folders
    with pytest.raises(AudienceError, match=re.escape(says)):
        save_audience(instances, "alpha", store_file, name, ask, saved_by="ana")
    assert store_file().read_audiences("alpha") == []


def test_a_segment_name_of_the_file_or_a_store_that_cannot_be_used_is_refused(folders, store_file, tmp_path) -> None:
    instances, _ = folders
    with_file_segment(instances, "vip")
    with pytest.raises(AudienceError, match="'vip' is a segment of the instance file: a saved audience never"):
        save_audience(instances, "alpha", store_file, "vip", AudienceAsk(), saved_by="ana")
    missing = tmp_path / "nowhere" / "store.sqlite"

    def absent(*, create: bool = False) -> SQLiteStore:
        return SQLiteStore(missing, create=create)

    for change in (
        lambda: save_audience(instances, "alpha", absent, "keen", AudienceAsk(), saved_by="ana"),
        lambda: delete_audience(instances, "alpha", absent, "keen"),
    ):
        with pytest.raises(UnknownPageError, match=f"no profile store at {missing}") as raised:
            change()
        assert raised.value.status == 503
    assert not missing.parent.exists()  # the view creates no store
    with pytest.raises(UnknownPageError, match="there is no instance named 'beta'"):
        save_audience(instances, "beta", store_file, "keen", AudienceAsk(), saved_by="ana")


def test_the_held_out_gains_curve_is_drawn_with_the_share_of_the_run_the_audience_keeps(folders) -> None:
    instances, home = folders
    page = instance_page(instances, home, "alpha", StandInStore)  # score 75 and up: 1 profile of 5
    assert page.profiles == 5
    text = render_instance_page(page)
    # 288 x 168 inside a margin of 36: (0, 0), then deciles 1 and 2 at (10%, 20%) and (20%, 40%)
    assert '<polyline points="36.0,204.0 64.8,170.4 93.6,136.8" fill="none"' in text
    assert '<line class="cut" x1="93.6" y1="36.0" x2="93.6" y2="204.0"' in text
    assert ">20% of the run</text>" in text
    wide = instance_page(instances, home, "alpha", StandInStore, ask=AudienceAsk("top", 5))
    assert '<line class="cut" x1="324.0"' in render_instance_page(wide)  # everybody: the right edge
