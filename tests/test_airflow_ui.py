"""The "Customer AI" view of Airflow's UI (plugins/customer_ai_airflow/ui.py).

Unit tests build the table from tiny instance files, a stand-in store and hand-written run folders.  The
``airflow`` tests start a real API server (the view needs nothing else) on a home holding a real published run
(``customer-ai run`` of the repurchase example as of 2011-12-11), prove that the view's routes refuse a request
without a login or with a forged token, then drive Debian's headless Chromium like a user: log in on Airflow's
login page, follow the "Customer AI" navigation entry, read the table, open the run's report.  Screenshots of every
page go to ``var/test-artifacts/airflow-ui/``.
"""

from __future__ import annotations

import contextlib
import html
import io
import json
import re
import secrets
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pandas as pd
import pytest
import yaml
from airflow_support import (
    AIRFLOW,
    PAGE_TIMEOUT,
    Airflow,
    airflow_env,
    chromium,
    free_ports,
    healthy,
    migrate,
    served_env,
    viewer_password,
    write_instance,
)

from customer_ai.quality import quality_grade
from customer_ai.report import SECTIONS
from customer_ai.saved_audiences import SavedAudience
from customer_ai.scoring import BucketRule
from customer_ai.store import SQLiteStore, StoreUnavailableError
from customer_ai_airflow.routes import cross_site, form_fields
from customer_ai_airflow.ui import (
    InstanceRow,
    UnknownPageError,
    create_app,
    instance_rows,
    render_not_found,
    render_table,
    report_file,
)

from conftest import BASE_SPEC, ROOT

AS_OF = "2011-12-11"
ARTIFACTS = ROOT / "var" / "test-artifacts" / "airflow-ui"
STARTUP_TIMEOUT = 120.0
RUN_TIMEOUT = 300.0  # `customer-ai run` of the example: about 40 s on a loaded 2-core machine


# ---------------------------------------------------------------------------------------------------------------
# unit tests: tiny instance files, a stand-in store, hand-written run folders


def write_spec(folder: Path, name: str, **changes: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**BASE_SPEC, "name": name, **changes}))
    return path


EARLIER = "2011-12-04"
RECORDED = "2011-12-11T07:00:00Z"


def run_row(name: str, version: str, metrics: dict, run_id: str, as_of: str = AS_OF, **extra: object) -> dict:
    """Return a published run row as ``Store.latest_run`` gives it (every published run is ``ok``)."""
    row = {
        "instance": name,
        "as_of": as_of,
        "model_version": version,
        "status": "ok",
        "reason": f"validation ROC AUC {metrics.get('roc_auc', 0):.3f} meets the quality gate of 0.65",
        "metrics": metrics,
        "scored_profiles": 0,
        "written_at": f"{as_of}T06:00:00Z",
        "run_id": run_id,
    }
    return {**row, **extra}


def attempt_row(name: str, status: str, step: str, reason: str, attempt: str, **extra: object) -> dict:
    """Return an attempt row as ``Store.latest_attempt`` gives it."""
    row = {
        "id": 7,
        "instance": name,
        "as_of": AS_OF,
        "attempt": attempt,
        "step": step,
        "try_number": 1,
        "status": status,
        "reason": reason,
        "model_version": "",
        "metrics": {},
        "run_id": "",
        "recorded_at": RECORDED,
    }
    return {**row, **extra}


def publish(
    home: Path, name: str, version: str, buckets: dict, *, report: bool, run_id: str, as_of: str = AS_OF
) -> Path:
    """Write what a sealed run folder holds for the view: metadata.json (and report.html)."""
    folder = home / "artifacts" / name / as_of / run_id if run_id else home / "artifacts" / name / as_of
    folder.mkdir(parents=True)
    (folder / "metadata.json").write_text(json.dumps({"model_version": version, "buckets": buckets}))
    if report:
        (folder / "report.html").write_text(f"<title>report of {version}</title>")
    return folder


class StandInStore:
    """Answers from dicts of published runs and newest attempts; instances in ``failing`` raise as a server does."""

    def __init__(self, runs: dict[str, dict], attempts: dict[str, dict], failing: tuple[str, ...] = ()) -> None:
        self.runs = runs
        self.attempts = attempts
        self.failing = failing
        self.asked: list[tuple[str, str]] = []

    def _ask(self, what: str, instance: str) -> None:
        self.asked.append((what, instance))
        if instance in self.failing:
            raise StoreUnavailableError("cannot reach the profile store at db:5432/crm")

    def latest_run(self, instance: str, status: str | None = "ok") -> dict | None:
        self._ask("latest_run", instance)
        return self.runs.get(instance)

    def latest_attempt(self, instance: str) -> dict | None:
        self._ask("latest_attempt", instance)
        return self.attempts.get(instance)

    def read_runs(self, instance: str) -> pd.DataFrame:
        self._ask("read_runs", instance)
        rows = [self.runs[instance]] if instance in self.runs else []
        return pd.DataFrame(rows, columns=["instance", "as_of", "model_version", "status", "run_id"])


ALPHA_RUN = "af-a1a1a1a1a1"  # alpha's published run folder
KILLED = "af-dead0dead0"  # a sealed folder of the same date whose attempt was killed before its commit
GAMMA_RUN = "cli-0123456789"


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """Instances alpha (published), beta (nothing), gamma (published, then a poor attempt), delta (only a failed
    attempt), epsilon (published before run ids, then an attempt still running), broken (invalid file)."""
    instances, home = tmp_path / "instances", tmp_path / "home"
    for name in ("alpha", "beta", "gamma", "delta", "epsilon"):
        write_spec(instances, name)
    (instances / "broken.yaml").write_text("name: broken\ngoal: [\n")
    publish(home, "alpha", "v-alpha", {"low": 1992, "medium": 2049, "high": 218}, report=True, run_id=ALPHA_RUN)
    publish(home, "alpha", "v-alpha", {"low": 5, "medium": 5, "high": 5}, report=True, run_id=KILLED)
    publish(home, "gamma", "v-older", {"low": 1, "medium": 2, "high": 3}, report=True, run_id=GAMMA_RUN, as_of=EARLIER)
    staging = home / "artifacts" / "delta" / AS_OF / ".af-0d0d0d0d0d.staging"  # the failed attempt's work
    staging.mkdir(parents=True)
    (staging / "report.html").write_text("<title>never published</title>")
    publish(home, "epsilon", "v-eps", {"low": 4, "medium": 5, "high": 6}, report=True, run_id="", as_of=EARLIER)
    return instances, home


RUNS = {
    "alpha": run_row(
        "alpha",
        "v-alpha",
        {
            "model_roc_auc": 0.7546,
            "roc_auc": 0.7,
            "calibration_error": 0.0144,
            "top_decile_lift": 2.61,
            "drift": {"status": "warn", "largest_psi": 0.1234},
            "expected": {"expected": 1234.4, "low": 1100.2, "high": 1400.7},
            "bucket_rule": {"by": "percentile", "medium": 51.0, "high": 91.0, "chosen": "auto", "why": "too few"},
        },
        ALPHA_RUN,
        scored_profiles=4259,
    ),
    "gamma": run_row(
        "gamma",
        "v-older",
        {"roc_auc": 0.71, "calibration_error": 0.02, "single_period": True},
        GAMMA_RUN,
        as_of=EARLIER,
    ),
    "epsilon": run_row("epsilon", "v-eps", {"roc_auc": 0.8, "calibration_error": 0.03}, "", as_of=EARLIER),
}
SCORE_RULE, SCORE_RULE_WORDS = "score 25/75", "buckets by score: high from 75, medium from 25, low below"
ALPHA_MEANING = (
    "finds 2.6 times as many profiles whose goal came true in its top tenth as a random pick; its probabilities were "
    "on average within 1 point of what happened"
)
POOR = "model v-gamma is poor: validation ROC AUC 0.550 is below the quality gate of 0.65; the previous scores are kept"
NO_EVENTS = "AirflowFailException: instance delta: no events before the as-of date 2011-12-11"
ATTEMPTS = {
    "alpha": attempt_row("alpha", "ok", "publish", RUNS["alpha"]["reason"], ALPHA_RUN, run_id=ALPHA_RUN),
    "gamma": attempt_row("gamma", "poor", "quality_gate", POOR, "af-9a9a9a9a9a", model_version="v-gamma"),
    "delta": attempt_row("delta", "failed", "validate_events", NO_EVENTS, "af-0d0d0d0d0d", try_number=2),
    "epsilon": attempt_row("epsilon", "started", "validate_events", "started by Airflow", "af-e5e5e5e5e5"),
}


def test_rows_show_each_instances_current_run_and_its_newest_attempt(folders: tuple[Path, Path]) -> None:
    instances, home = folders
    store = StandInStore(RUNS, ATTEMPTS)
    rows = instance_rows(instances, home, lambda: store)
    assert [row.name for row in rows] == ["alpha", "beta", "broken", "delta", "epsilon", "gamma"]
    goal = "purchase occurs within 30 days"
    # the newest attempt is the current run's publish: nothing beside it; the numbers are its folder's
    assert rows[0] == InstanceRow(
        name="alpha",
        goal=goal,
        status="ok",
        as_of=AS_OF,
        roc_auc=0.7546,  # the held-out model's AUC wins over the plain roc_auc
        calibration_error=0.0144,
        grade="good",
        grade_meaning=ALPHA_MEANING,
        drift="warn",
        largest_psi=0.1234,
        expected={"expected": 1234.4, "low": 1100.2, "high": 1400.7},
        scored_profiles=4259,
        buckets={"low": 1992, "medium": 2049, "high": 218},
        bucket_rule="rank: top tenth high",  # the rule the run kept
        bucket_rule_words="buckets by rank in the run: high is the likeliest tenth, medium the next two fifths, low "
        "the lower half (too few)",
        report=True,
        message=RUNS["alpha"]["reason"],
    )
    assert rows[1] == InstanceRow(name="beta", goal=goal, status="none", message="no run yet")
    assert rows[2].status == "invalid"
    assert rows[2].message.startswith(f"{instances / 'broken.yaml'}: not valid YAML")
    # nothing published: the row is the failed attempt's
    assert rows[3] == InstanceRow(
        name="delta",
        goal=goal,
        status="failed",
        as_of=AS_OF,
        message="no run published yet",
        attempt=f"newest attempt, as of {AS_OF}, {RECORDED}: failed at validate_events (try 2): {NO_EVENTS}",
        attempt_status="failed",
    )
    # a run published before run ids: its folder is the date's
    assert rows[4] == InstanceRow(
        name="epsilon",
        goal=goal,
        status="ok",
        as_of=EARLIER,
        roc_auc=0.8,
        calibration_error=0.03,
        grade="unknown",  # no top-tenth lift recorded
        grade_meaning="its ranking was not measured on held-out profiles",
        drift="unknown",  # published before drift was measured
        scored_profiles=0,
        buckets={"low": 4, "medium": 5, "high": 6},
        bucket_rule=SCORE_RULE,  # a run from before rules were kept: the thresholds on the score, as then
        bucket_rule_words=SCORE_RULE_WORDS,
        report=True,
        message=RUNS["epsilon"]["reason"],
        attempt=f"newest attempt, as of {AS_OF}, {RECORDED}: started at validate_events: nothing recorded since "
        "(still running, or killed)",
        attempt_status="started",
    )
    # the current run stays what the store published; the poor attempt of a later date is beside it
    assert rows[5] == InstanceRow(
        name="gamma",
        goal=goal,
        status="ok",
        as_of=EARLIER,
        roc_auc=0.71,
        calibration_error=0.02,
        grade="unknown",
        grade_meaning="its ranking was not measured on held-out profiles",
        drift="unknown",
        single_period=True,
        scored_profiles=0,
        buckets={"low": 1, "medium": 2, "high": 3},
        bucket_rule=SCORE_RULE,
        bucket_rule_words=SCORE_RULE_WORDS,
        report=True,
        message=RUNS["gamma"]["reason"],
        attempt=f"newest attempt, as of {AS_OF}, {RECORDED}: poor at quality_gate: {POOR}",
        attempt_status="poor",
    )
    asked = {instance for _, instance in store.asked}
    assert asked == {"alpha", "beta", "gamma", "delta", "epsilon"}
    assert {what for what, _ in store.asked} == {"latest_run", "latest_attempt"}


def test_a_folder_the_store_does_not_name_is_never_shown(folders: tuple[Path, Path]) -> None:
    instances, home = folders
    shutil.rmtree(home / "artifacts" / "alpha" / AS_OF / ALPHA_RUN)  # only the killed attempt's folder is left
    (alpha,) = [
        row for row in instance_rows(instances, home, lambda: StandInStore(RUNS, ATTEMPTS)) if row.name == "alpha"
    ]
    assert (alpha.status, alpha.scored_profiles, alpha.buckets, alpha.report) == ("ok", 4259, {}, False)


def test_a_store_that_cannot_be_opened_shows_its_error_in_every_row(folders: tuple[Path, Path]) -> None:
    instances, home = folders

    def unreachable() -> StandInStore:
        raise StoreUnavailableError("cannot reach the profile store at db:5432/crm")

    rows = instance_rows(instances, home, unreachable)
    message = "the profile store cannot be read: StoreUnavailableError: cannot reach the profile store at db:5432/crm"
    assert [(row.name, row.status, row.message) for row in rows if row.status != "invalid"] == [
        ("alpha", "error", message),
        ("beta", "error", message),
        ("delta", "error", message),
        ("epsilon", "error", message),
        ("gamma", "error", message),
    ]


def test_a_failing_read_shows_in_its_own_row_only(folders: tuple[Path, Path]) -> None:
    instances, home = folders
    rows = instance_rows(instances, home, lambda: StandInStore(RUNS, ATTEMPTS, failing=("gamma",)))
    assert [(row.name, row.status) for row in rows] == [
        ("alpha", "ok"),
        ("beta", "none"),
        ("broken", "invalid"),
        ("delta", "failed"),
        ("epsilon", "ok"),
        ("gamma", "error"),
    ]
    assert "cannot reach the profile store at db:5432/crm" in rows[5].message


def test_the_view_reads_the_store_without_creating_or_migrating_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # before: opening the page made <home>/store.sqlite (and migrated an older one)
    from test_store import old_sqlite_store

    from customer_ai_airflow.ui import _open_store

    home = tmp_path / "home"
    monkeypatch.setenv("CUSTOMER_AI_HOME", str(home))
    monkeypatch.delenv("CUSTOMER_AI_STORE", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_CUSTOMER_AI_STORE", raising=False)
    instances = tmp_path / "instances"
    write_spec(instances, "unit")
    rows = instance_rows(instances, home, _open_store)
    assert [(row.name, row.status, row.message) for row in rows] == [("unit", "none", "no run yet")]
    assert not home.exists()
    home.mkdir()
    old_sqlite_store(home / "store.sqlite")
    before = (home / "store.sqlite").read_bytes()
    (row,) = instance_rows(instances, home, _open_store)
    assert (row.status, row.message) == (
        "error",
        f"the profile store cannot be read: StoreVersionError: the profile store {home / 'store.sqlite'} was written "
        "by an earlier version of customer-ai (SQLite user_version 0; this version reads 5): migrate it with "
        "`customer-ai migrate` and the same --home or --store (a run of any instance migrates it too); nothing was "
        "changed",
    )
    assert (home / "store.sqlite").read_bytes() == before


def test_the_table_shows_the_numbers_links_the_report_and_says_what_the_newest_attempt_did(
    folders: tuple[Path, Path],
) -> None:
    instances, home = folders
    page = render_table(instance_rows(instances, home, lambda: StandInStore(RUNS, ATTEMPTS)), instances)
    alpha = re.search(r'<tr data-instance="alpha">.*?</tr>', page).group(0)
    for cell in (
        '<td class="as-of">2011-12-11</td>',
        '<span class="status status-ok">ok</span>',
        '<td class="num roc-auc">0.755</td>',
        '<td class="num calibration-error">0.014</td>',
        '<td class="quality"><span class="grade grade-good">good</span>'
        f'<div class="meaning">{ALPHA_MEANING}</div></td>',
        '<td class="drift"><span class="drift-warn">warn (0.12)</span></td>',
        '<td class="num scored-profiles">4,259</td>',
        '<td class="num expected">1,234<div class="range">1,100 to 1,401</div></td>',
        '<td class="num bucket-low">1,992</td>',
        '<td class="num bucket-medium">2,049</td>',
        '<td class="num bucket-high">218</td>',
        '<a class="report" href="instances/alpha/runs/2011-12-11/report">report</a>',
        '<a href="../dags/customer_ai__alpha" target="_top">alpha</a>',
        '<a class="audiences" href="instances/alpha">segments, profiles, audiences</a>',
    ):
        assert cell in alpha
    assert 'class="attempt' not in alpha
    assert 'class="message' not in alpha
    gamma = re.search(r'<tr data-instance="gamma">.*?</tr>', page).group(0)
    assert '<td class="as-of">2011-12-04</td>' in gamma  # the current run ...
    assert '<span class="status status-ok">ok</span>' in gamma
    assert '<a class="report" href="instances/gamma/runs/2011-12-04/report">report</a>' in gamma
    assert '<div class="message single-period">trained and judged on one period: no check across time' in gamma
    poor = html.escape(f"newest attempt, as of {AS_OF}, {RECORDED}: poor at quality_gate: {POOR}")
    assert f'<div class="attempt attempt-poor">{poor}</div>' in gamma  # ... and the poor attempt beside it
    delta = re.search(r'<tr data-instance="delta">.*?</tr>', page).group(0)
    assert '<span class="status status-failed">failed</span>' in delta
    assert '<div class="message">no run published yet</div>' in delta
    failed = html.escape(f"failed at validate_events (try 2): {NO_EVENTS}")
    assert re.search(rf'<div class="attempt attempt-failed">newest attempt, [^<]*{re.escape(failed)}</div>', delta)
    assert "no report" in delta  # its staging folder's report is not a published one
    assert 'class="audiences"' not in delta  # no published run: nothing to cut
    epsilon = re.search(r'<tr data-instance="epsilon">.*?</tr>', page).group(0)
    assert '<div class="attempt attempt-started">' in epsilon
    assert "<script" not in page
    assert render_table([], instances).count(f"No instance files (*.yaml) in {instances}.") == 1


def rows_with(
    folders: tuple[Path, Path], name: str, run_id: str, summary: dict, **spec: object
) -> tuple[list[InstanceRow], InstanceRow]:
    """Return the table's rows with one more published instance ``name`` (its file: ``spec``) and its own row.

    Its run (version ``v-<name>``, 4,259 profiles) has a folder whose ``metadata.json`` holds ``summary`` too.
    """
    instances, home = folders
    write_spec(instances, name, **spec)
    folder = publish(home, name, f"v-{name}", {"low": 1, "medium": 2, "high": 3}, report=True, run_id=run_id)
    metadata = json.loads((folder / "metadata.json").read_text())
    (folder / "metadata.json").write_text(json.dumps({**metadata, **summary}))
    runs = {**RUNS, name: run_row(name, f"v-{name}", {"roc_auc": 0.75}, run_id, scored_profiles=4259)}
    rows = instance_rows(instances, home, lambda: StandInStore(runs, ATTEMPTS))
    (row,) = [row for row in rows if row.name == name]
    return rows, row


ZETA_RUN = "cli-5219833eb9"
ZETA_VALUE = {"field": "value", "window_days": 30, "total": 1288581.0766, "per_profile": 302.5548, "metrics": {}}


def test_a_run_with_a_value_shows_its_expected_value_in_the_instances_currency(folders: tuple[Path, Path]) -> None:
    instances, home = folders
    page = render_table(instance_rows(instances, home, lambda: StandInStore(RUNS, ATTEMPTS)), instances)
    assert "Expected value" not in page  # no run has a value: the table is as it always was
    assert "expected-value" not in page
    goal = {**BASE_SPEC["goal"], "value": {"field": "value"}}
    rows, zeta = rows_with(folders, "zeta", ZETA_RUN, {"value": ZETA_VALUE}, goal=goal, output={"currency": "GBP"})
    assert (zeta.value, zeta.currency) == ({"total": 1288581.0766, "per_profile": 302.5548}, "GBP")
    assert [row.value for row in rows if row.name != "zeta"] == [{}] * 6
    page = render_table(rows, instances)
    assert "<th>Expected to reach the goal</th><th>Expected value</th><th>Low</th>" in page
    zeta_html = re.search(r'<tr data-instance="zeta">.*?</tr>', page).group(0)
    assert (
        '<td class="num expected-value">GBP 1,288,581.08<div class="range">GBP 302.55 per profile</div></td>'
        '<td class="num bucket-low">1</td>'
    ) in zeta_html
    alpha = re.search(r'<tr data-instance="alpha">.*?</tr>', page).group(0)
    assert '</td><td class="num expected-value"></td><td class="num bucket-low">1,992</td>' in alpha
    assert "the expected value is what the scored profiles' goal events are expected to be worth" in html.unescape(page)


ETA_RUN = "cli-7e7a7e7a7e"
ETA_TIMING = {
    "horizon_days": 90,
    "limit_days": 90,
    "profiles": 4259,
    "dated": 2797,
    "within_window": 663,
    "metrics": {"concordance": 0.714},
}


def test_a_run_with_timing_shows_how_many_profiles_it_dated(folders: tuple[Path, Path]) -> None:
    instances, home = folders
    page = render_table(instance_rows(instances, home, lambda: StandInStore(RUNS, ATTEMPTS)), instances)
    assert "Next goal event" not in page  # no run has timing: the table is as it always was
    assert "next-event" not in page
    rows, eta = rows_with(folders, "eta", ETA_RUN, {"timing": ETA_TIMING}, output={"timing": True})
    assert eta.timing == {"profiles": 4259, "dated": 2797, "within_window": 663}
    assert [row.timing for row in rows if row.name != "eta"] == [{}] * 6
    page = render_table(rows, instances)
    assert "<th>Expected to reach the goal</th><th>Next goal event</th><th>Low</th>" in page
    eta_html = re.search(r'<tr data-instance="eta">.*?</tr>', page).group(0)
    assert (
        '<td class="num next-event">2,797 of 4,259 dated<div class="range">663 within the window</div></td>'
        '<td class="num bucket-low">1</td>'
    ) in eta_html
    alpha = re.search(r'<tr data-instance="alpha">.*?</tr>', page).group(0)
    assert '</td><td class="num next-event"></td><td class="num bucket-low">1,992</td>' in alpha
    assert (
        "With timing, the next goal event counts the scored profiles given a date (their median days to the next "
        "goal event lies within the horizon) and, below it, those whose date falls within the goal window."
    ) in html.unescape(page)
    # beside an expected value, after it
    both = {"timing": ETA_TIMING, "value": ZETA_VALUE}
    rows, _ = rows_with(folders, "theta", "cli-0e0e0e0e0e", both, output={"timing": True})
    page = render_table(rows, instances)
    assert "<th>Expected value</th><th>Next goal event</th><th>Low</th>" in page


def test_every_text_is_escaped() -> None:
    row = InstanceRow(
        name="a",
        goal="<script>alert(1)</script> occurs within 30 days",
        status="poor",
        as_of='2011-12-11"><b>',
        report=True,
        message="<img src=x onerror=alert(1)>",
        attempt="<u>newest</u>",
        attempt_status='"><s>',
    )
    page = render_table([row], Path("<i>"))
    assert "<script>" not in page
    assert "<img" not in page
    assert "<b>" not in page
    assert "<u>" not in page
    assert "<s>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; occurs within 30 days" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert '<div class="attempt attempt-&quot;&gt;&lt;s&gt;">&lt;u&gt;newest&lt;/u&gt;</div>' in page
    assert 'href="instances/a/runs/2011-12-11&quot;&gt;&lt;b&gt;/report"' in page
    assert "<i>" not in render_table([], Path("<i>"))
    assert "&lt;/p&gt;&lt;script&gt;" in render_not_found("</p><script>", back="../")


@pytest.mark.parametrize(
    ("name", "as_of", "status", "message", "asks"),
    [
        ("..", AS_OF, 404, "there is no instance named '..'", False),
        ("../alpha", AS_OF, 404, "there is no instance named '../alpha'", False),
        ("zeta", AS_OF, 404, "there is no instance named 'zeta'", False),
        ("alpha", "../../../store.sqlite", 400, "'../../../store.sqlite' is not an as-of date (use YYYY-MM-DD", False),
        ("alpha", "2011-12-11/..", 400, "'2011-12-11/..' is not an as-of date (use YYYY-MM-DD", False),
        ("alpha", "2011-02-30", 400, "'2011-02-30' is not an as-of date (no such day in the calendar)", False),
        ("alpha", EARLIER, 404, "alpha has no report as of 2011-12-04", True),
        ("beta", AS_OF, 404, "beta has no report as of 2011-12-11", True),
        ("delta", AS_OF, 404, "delta has no report as of 2011-12-11", True),  # only a staging folder has one
        ("gamma", AS_OF, 404, "gamma has no report as of 2011-12-11", True),  # a poor attempt publishes nothing
    ],
)
def test_a_report_is_found_only_for_a_known_instance_and_a_published_run(
    folders: tuple[Path, Path], name: str, as_of: str, *, status: int, message: str, asks: bool
) -> None:
    _, home = folders
    store = StandInStore(RUNS, ATTEMPTS)
    with pytest.raises(UnknownPageError, match=re.escape(message)) as raised:
        report_file(home, {"alpha", "beta", "delta", "gamma"}, name, as_of, lambda: store)
    assert raised.value.status == status
    assert bool(store.asked) is asks  # the store is asked only about a known instance and a real date


def test_the_report_file_is_in_the_folder_the_store_names(folders: tuple[Path, Path]) -> None:
    _, home = folders
    store = StandInStore(RUNS, ATTEMPTS)
    known = {"alpha", "gamma", "epsilon"}
    artifacts = home / "artifacts"
    found = report_file(home, known, "alpha", AS_OF, lambda: store)
    assert found == artifacts / "alpha" / AS_OF / ALPHA_RUN / "report.html"  # not the killed attempt's folder
    assert (
        report_file(home, known, "gamma", EARLIER, lambda: store)
        == artifacts / "gamma" / EARLIER / GAMMA_RUN / "report.html"
    )
    assert (
        report_file(home, known, "epsilon", EARLIER, lambda: store) == artifacts / "epsilon" / EARLIER / "report.html"
    )


def test_a_store_that_cannot_be_read_gives_a_503_page(folders: tuple[Path, Path]) -> None:
    _, home = folders
    with pytest.raises(UnknownPageError, match="cannot reach the profile store at db:5432/crm") as raised:
        report_file(home, {"alpha"}, "alpha", AS_OF, lambda: StandInStore(RUNS, ATTEMPTS, failing=("alpha",)))
    assert raised.value.status == 503

    def unreachable() -> StandInStore:
        raise StoreUnavailableError("cannot reach the profile store at db:5432/crm")

    with pytest.raises(UnknownPageError, match="the profile store cannot be read") as raised:
        report_file(home, {"alpha"}, "alpha", AS_OF, unreachable)
    assert raised.value.status == 503


def test_a_run_id_the_store_holds_never_leaves_the_date_folder(folders: tuple[Path, Path]) -> None:
    _, home = folders
    forged = {"alpha": {**RUNS["alpha"], "run_id": "../../gamma/2011-12-04/cli-0123456789"}}
    store = StandInStore(forged, {})
    # refused before any path is built: the route answers with its not-found page
    with pytest.raises(UnknownPageError, match="alpha has no report as of 2011-12-11") as raised:
        report_file(home, {"alpha"}, "alpha", AS_OF, lambda: store)
    assert raised.value.status == 404
    instances, _ = folders
    (alpha,) = [row for row in instance_rows(instances, home, lambda: store) if row.name == "alpha"]
    assert alpha.status == "error"


def test_every_route_of_the_app_requires_airflows_login() -> None:
    view = create_app()
    assert sorted(route.path for route in view.routes) == [  # no docs
        "/",
        "/instances/{name}",
        "/instances/{name}/audiences",
        "/instances/{name}/audiences/{audience}/delete",
        "/instances/{name}/runs/{as_of}/report",
        "/instances/{name}/segments/{file}",
    ]
    (login,) = view.router.dependencies
    assert login.dependency.__module__ == "airflow.api_fastapi.core_api.security"
    assert login.dependency.__qualname__ == "requires_authenticated.<locals>.inner"
    for route in view.routes:
        assert any(dependency.call is login.dependency for dependency in route.dependant.dependencies), route.path
        # an instance's page and its segments: only for a user whom Airflow lets read the instance's DAG; saving
        # and deleting its audiences (POST only) for one whom it lets edit the DAG
        access = [
            d.call.__name__
            for d in route.dependant.dependencies
            if d.call is not login.dependency and d.call.__name__ != "get_user"  # Airflow's: who is asking
        ]
        if route.path in ("/instances/{name}", "/instances/{name}/segments/{file}"):
            assert (access, route.methods) == (["may_read"], {"GET"}), route.path
        elif "/audiences" in route.path:
            assert (access, route.methods) == (["may_edit"], {"POST"}), route.path
        else:
            assert access == [], route.path


@pytest.mark.parametrize(
    ("headers", "cross"),
    [
        ({}, False),  # a script with a bearer token: no browser, no form
        ({"sec-fetch-site": "same-origin", "origin": "http://elsewhere"}, False),  # the browser's word first
        ({"sec-fetch-site": "none"}, False),  # typed in the address bar
        ({"sec-fetch-site": "same-site"}, True),  # a sibling site's form: the login cookie goes with it
        ({"sec-fetch-site": "cross-site"}, True),
        ({"origin": "http://airflow.example:8080", "host": "airflow.example:8080"}, False),
        ({"origin": "http://evil.example", "host": "airflow.example:8080"}, True),
    ],
)
def test_a_form_of_another_site_is_told_apart(headers: dict[str, str], cross: bool) -> None:
    assert cross_site(headers) is cross


def test_a_forms_fields_are_read_as_text() -> None:
    assert form_fields(b"audience=keen_1&kind=top&at=250&value=&cost=4.5&at=9") == {
        "audience": "keen_1",
        "kind": "top",
        "at": "250",  # the first of a field sent twice
        "value": "",
        "cost": "4.5",
    }
    assert form_fields(b"audience=caf%C3%A9+%3D1") == {"audience": "café =1"}


def test_importing_the_plugin_imports_nothing_heavy(tmp_path: Path) -> None:
    # Airflow imports plugins in every component, a task's process too: the view is built on its first request
    script = textwrap.dedent(
        """
        import json, sys
        import airflow.sdk  # the baseline every Airflow process pays
        import customer_ai_airflow.plugin as plugin
        heavy = ("fastapi", "pandas", "lightgbm", "airflow.api_fastapi.core_api.security", "customer_ai.store")
        print(json.dumps({
            "heavy": [m for m in heavy if m in sys.modules],
            "apps": [{k: str(v) for k, v in app.items()} for app in plugin.CustomerAIPlugin.fastapi_apps],
            "views": plugin.CustomerAIPlugin.external_views,
        }))
        """
    )
    env = airflow_env(tmp_path, ROOT / "instances")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["heavy"] == []
    assert loaded["apps"] == [
        {"app": "customer_ai_airflow.ui.app", "url_prefix": "/customer-ai", "name": "Customer AI"}
    ]
    assert loaded["views"] == [
        {
            "name": "Customer AI",
            "href": "customer-ai/",
            "url_route": "customer-ai",
            "destination": "nav",
            "nav_top_level": True,
        }
    ]


# ---------------------------------------------------------------------------------------------------------------
# a real API server and a real browser


class View:
    """The running API server, the home it reads and what the run published there."""

    def __init__(self, airflow: Airflow, home: Path, env: dict[str, str], instance: Path) -> None:
        self.airflow = airflow
        self.home = home
        self.env = env
        self.instance = instance
        run = SQLiteStore(home / "store.sqlite").latest_run("repurchase_30d")
        assert run is not None
        assert (run["as_of"], run["run_id"][:4]) == (AS_OF, "cli-")
        self.folder = home / "artifacts" / "repurchase_30d" / AS_OF / run["run_id"]  # the folder the store names

    def run_metrics(self) -> tuple[dict, int]:
        """Return the run row's metrics and scored profiles, read from the store file itself."""
        with contextlib.closing(sqlite3.connect(self.home / "store.sqlite")) as connection:
            metrics, scored = connection.execute(
                "SELECT metrics, scored_profiles FROM customer_ai_runs WHERE instance = 'repurchase_30d' AND as_of = ?",
                (AS_OF,),
            ).fetchone()
        return json.loads(metrics), scored

    def token(self, user: str = "admin") -> str:
        password = self.airflow.password if user == "admin" else viewer_password(self.airflow.password)
        response = self.airflow.client.post("/auth/token", json={"username": user, "password": password})
        assert response.status_code == 201, response.text
        return response.json()["access_token"]


def published_run(env: dict[str, str], instance: Path, logs: Path, as_of: str = AS_OF) -> subprocess.Popen:
    """Start ``customer-ai run`` of ``instance`` as of ``as_of`` into the environment's home."""
    command = [str(AIRFLOW.with_name("customer-ai")), "run", str(instance), "--as-of", as_of]
    with (logs / f"customer-ai-run-{as_of}.log").open("wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=logs)  # noqa: S603


@pytest.fixture(scope="module")
def view(tmp_path_factory: pytest.TempPathFactory) -> Iterator[View]:
    """One API server for the module (the view needs no scheduler), started while the example run is made."""
    tmp = tmp_path_factory.mktemp("airflow_ui")
    api_port, log_port = free_ports(2)
    url = f"http://127.0.0.1:{api_port}"
    password = secrets.token_urlsafe(16)
    env = served_env(tmp, api_port, log_port, password)
    instance = write_instance(tmp / "instances")
    write_instance(tmp / "instances", name="churn_60d")  # no run: its row says so
    logs = tmp / "services"
    logs.mkdir()
    run = published_run(env, instance, logs)
    migrate(env)
    airflow = Airflow(env, url, logs, password)
    try:
        airflow.start("api-server", "--host", "127.0.0.1", "--port", str(api_port), "--workers", "1")
        try:
            assert run.wait(timeout=RUN_TIMEOUT) == 0, (logs / f"customer-ai-run-{AS_OF}.log").read_text()[-3000:]
        finally:
            if run.poll() is None:
                run.kill()
        published = View(airflow, Path(env["CUSTOMER_AI_HOME"]), env, instance)
        assert (published.folder / "report.html").exists()  # written by the run
        airflow.wait_for("a healthy API server", lambda: healthy(airflow), STARTUP_TIMEOUT)
        yield published
    finally:
        airflow.stop()


def forged(token: str) -> str:
    """Return the token's claims signed with another key (what someone without the server's secret can make)."""
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    return jwt.encode(claims, secrets.token_urlsafe(64), algorithm=header["alg"])


REPORT = f"/customer-ai/instances/repurchase_30d/runs/{AS_OF}/report"


@pytest.mark.airflow
def test_the_view_refuses_a_request_without_a_login_or_with_a_forged_token(view: View) -> None:
    token = view.token()
    with httpx.Client(base_url=view.airflow.url, timeout=30) as anonymous:
        for path in ("/customer-ai/", REPORT):
            assert anonymous.get(path).status_code == 401, path
            response = anonymous.get(path, headers={"Authorization": f"Bearer {forged(token)}"})
            assert response.status_code == 403, path
            assert anonymous.get(path, headers={"Cookie": f"_token={forged(token)}"}).status_code == 403, path
            assert "repurchase_30d" not in response.text
        # the login the UI holds: its _token cookie, or the header the REST API takes
        table = anonymous.get("/customer-ai/", headers={"Cookie": f"_token={token}"})
        assert table.status_code == 200
        assert table.headers["content-type"] == "text/html; charset=utf-8"
        assert '<tr data-instance="repurchase_30d">' in table.text
        report = anonymous.get(REPORT, headers={"Authorization": f"Bearer {token}"})
        assert report.status_code == 200
        assert report.headers["content-type"] == "text/html; charset=utf-8"
        assert report.text == (view.folder / "report.html").read_text()
        for page in (table, report):  # nothing on either page may load from elsewhere or run a script
            assert page.headers["content-security-policy"].startswith("default-src 'none'; style-src 'unsafe-inline';")


@pytest.mark.airflow
@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        # a name or a date that would leave the run folder: refused before any path is built
        ("/customer-ai/instances/%2E%2E/runs/2011-12-11/report", 404, "there is no instance named &#x27;..&#x27;"),
        ("/customer-ai/instances/repurchase_30d/runs/%2E%2E/report", 400, "is not an as-of date"),
        ("/customer-ai/instances/..%2F..%2Fhome/runs/2011-12-11/report", 404, "Not Found"),
        ("/customer-ai/instances/repurchase_30d/runs/..%2F..%2Fstore.sqlite/report", 404, "Not Found"),
        ("/customer-ai/instances/repurchase_30d/runs/2011-13-01/report", 400, "no such day in the calendar"),
        # a run that has no report: a page that says so, no stack trace
        ("/customer-ai/instances/repurchase_30d/runs/2011-12-04/report", 404, "repurchase_30d has no report as of"),
        ("/customer-ai/instances/churn_60d/runs/2011-12-11/report", 404, "churn_60d has no report as of 2011-12-11"),
    ],
)
def test_only_a_known_instances_report_is_served(view: View, path: str, status: int, says: str) -> None:
    response = view.airflow.client.get(path, headers={"Authorization": f"Bearer {view.token()}"})
    assert response.status_code == status, response.text
    assert says in response.text
    assert "Traceback" not in response.text
    assert "SQLite format" not in response.text


def log_in(driver: object, view: View, shot: Path | None = None, user: str = "admin") -> object:
    """Log in as ``user`` on Airflow's login page; return the "Customer AI" navigation entry, once it can be clicked."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, PAGE_TIMEOUT)
    driver.get(f"{view.airflow.url}/")  # Airflow sends a visitor without a login to its login page
    wait.until(seen.presence_of_element_located((By.NAME, "username"))).send_keys(user)
    password = view.airflow.password if user == "admin" else viewer_password(view.airflow.password)
    driver.find_element(By.NAME, "password").send_keys(password)
    assert "/auth/login" in driver.current_url
    if shot is not None:
        driver.save_screenshot(shot)
    driver.find_element(By.CSS_SELECTOR, "button[type='submit']").click()
    return wait.until(seen.element_to_be_clickable((By.CSS_SELECTOR, "a[aria-label='Customer AI']")))


def build_top_250(form: object) -> None:
    """Ask the audience builder's ``form`` for the top 250 profiles, at 40 a conversion and 4 a contact."""
    from selenium.webdriver.common.by import By

    form.find_element(By.CSS_SELECTOR, "select[name='kind'] option[value='top']").click()
    for name, text in (("at", "250"), ("value", "40"), ("cost", "4")):
        field = form.find_element(By.NAME, name)
        field.clear()
        field.send_keys(text)
    form.find_element(By.CSS_SELECTOR, "button").click()


@pytest.mark.airflow
def test_a_user_logs_in_opens_customer_ai_and_reads_the_table_and_a_report(view: View) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import WebDriverWait

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    metrics, scored = view.run_metrics()
    buckets = json.loads((view.folder / "metadata.json").read_text())["buckets"]
    title = re.search(r"<title>(.*?)</title>", (view.folder / "report.html").read_text(), re.S).group(1).strip()
    started = time.monotonic()

    with chromium() as driver:
        wait = WebDriverWait(driver, PAGE_TIMEOUT)
        entry = log_in(driver, view, ARTIFACTS / "1-login.png")
        driver.save_screenshot(ARTIFACTS / "2-home.png")
        entry.click()
        wait.until(seen.frame_to_be_available_and_switch_to_it((By.CSS_SELECTOR, "iframe[title='Customer AI']")))
        row = wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, "tr[data-instance='repurchase_30d']")))

        def cell(name: str) -> str:
            return row.find_element(By.CSS_SELECTOR, f"td.{name}").text

        assert cell("goal") == "purchase occurs within 30 days"
        assert cell("as-of") == AS_OF
        assert row.find_element(By.CSS_SELECTOR, ".status").text == "ok"
        assert cell("roc-auc") == f"{metrics['model_roc_auc']:.3f}"
        assert cell("calibration-error") == f"{metrics['calibration_error']:.3f}"
        assert cell("quality") == "\n".join(quality_grade(metrics))  # the grade, its meaning beneath
        drift = metrics["drift"]
        assert cell("drift") == f"{drift['status']} ({drift['largest_psi']:.2f})"
        assert cell("scored-profiles") == f"{scored:,}"
        expected = metrics["expected"]
        assert cell("expected") == f"{expected['expected']:,.0f}\n{expected['low']:,.0f} to {expected['high']:,.0f}"
        assert [cell(f"bucket-{b}") for b in ("low", "medium", "high")] == [
            f"{buckets[b]:,}" for b in ("low", "medium", "high")
        ]
        assert sum(buckets.values()) == scored
        rule = BucketRule.from_dict(metrics["bucket_rule"])  # the rule the buckets followed, in a few words and whole
        assert cell("bucket-rule") == f"{rule.short()}\nbuckets {rule.in_words()}"
        churn = driver.find_element(By.CSS_SELECTOR, "tr[data-instance='churn_60d'] .status").text
        assert churn == "none"
        driver.switch_to.default_content()
        assert driver.current_url.startswith(f"{view.airflow.url}/plugin/customer-ai")  # inside the UI
        driver.save_screenshot(ARTIFACTS / "3-customer-ai.png")

        driver.switch_to.frame(driver.find_element(By.CSS_SELECTOR, "iframe[title='Customer AI']"))
        driver.find_element(By.CSS_SELECTOR, "tr[data-instance='repurchase_30d'] a.report").click()
        wait.until(lambda d: d.execute_script("return location.pathname") == REPORT)
        wait.until(lambda d: d.execute_script("return document.readyState") == "complete")
        assert driver.execute_script("return document.title") == title  # the frame's, not the UI's
        shown = driver.execute_script("return Array.from(document.querySelectorAll('section[id]'), s => s.id)")
        assert shown == list(SECTIONS)  # every section of the real report, in order
        assert driver.execute_script("return document.querySelectorAll('section svg').length") >= len(SECTIONS)
        driver.switch_to.default_content()
        driver.save_screenshot(ARTIFACTS / "4-report.png")

        # the instance's page: its segments, a profile looked up, an audience built, all in the frame
        driver.switch_to.frame(driver.find_element(By.CSS_SELECTOR, "iframe[title='Customer AI']"))
        driver.execute_script("history.back()")
        wait.until(
            seen.presence_of_element_located((By.CSS_SELECTOR, "tr[data-instance='repurchase_30d'] a.audiences"))
        )
        driver.find_element(By.CSS_SELECTOR, "tr[data-instance='repurchase_30d'] a.audiences").click()
        high = wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, "tr[data-segment='high']")))
        assert high.find_element(By.CSS_SELECTOR, "td.num").text == f"{buckets['high']:,}"
        assert [a.text for a in high.find_elements(By.CSS_SELECTOR, "a[download]")] == ["CSV", "PARQUET"]
        top = SQLiteStore(view.home / "store.sqlite").read_scores("repurchase_30d", limit=1)["profile_id"].iloc[0]
        driver.find_element(By.CSS_SELECTOR, "form.lookup input[name='profile']").send_keys(top)
        driver.find_element(By.CSS_SELECTOR, "form.lookup button").click()
        profile = wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, "section.profile h3")))
        assert profile.text == f"Profile {top}"
        driver.switch_to.default_content()
        driver.save_screenshot(ARTIFACTS / "5-instance-profile.png")
        driver.switch_to.frame(driver.find_element(By.CSS_SELECTOR, "iframe[title='Customer AI']"))
        build_top_250(driver.find_element(By.CSS_SELECTOR, "form.builder"))
        best = wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, "p.best-cut")))
        assert best.text.startswith("The highest expected profit by top: the top N profiles, N = ")
        audience = driver.find_element(By.CSS_SELECTOR, "table.audience").text
        assert audience.startswith("profiles 250\nexpected to reach the goal ")
        driver.switch_to.default_content()
        driver.save_screenshot(ARTIFACTS / "6-audience.png")
    shots = sorted(path.name for path in ARTIFACTS.glob("*.png"))
    assert shots == [
        "1-login.png",
        "2-home.png",
        "3-customer-ai.png",
        "4-report.png",
        "5-instance-profile.png",
        "6-audience.png",
    ]
    assert all((ARTIFACTS / shot).stat().st_size > 5000 for shot in shots)
    print(f"Customer AI view: checked in Chromium in {time.monotonic() - started:.0f}s; screenshots in {ARTIFACTS}")


@pytest.mark.airflow
def test_the_instance_page_serves_its_segments_a_profile_and_an_audience(view: View) -> None:
    headers = {"Authorization": f"Bearer {view.token()}"}
    page = view.airflow.client.get("/customer-ai/instances/repurchase_30d", headers=headers)
    assert page.status_code == 200, page.text
    assert page.headers["content-security-policy"].startswith("default-src 'none'; style-src 'unsafe-inline';")
    sizes = json.loads((view.folder / "metadata.json").read_text())["segments"]
    for segment, size in sizes.items():
        assert f'<tr data-segment="{segment}"><td>{segment}</td><td class="num">{size:,}</td>' in page.text
    download = view.airflow.client.get("/customer-ai/instances/repurchase_30d/segments/high.csv", headers=headers)
    assert download.status_code == 200, download.text
    assert download.headers["content-disposition"] == f"attachment; filename*=UTF-8''repurchase_30d_high_{AS_OF}.csv"
    rows = pd.read_csv(io.BytesIO(download.content), dtype={"profile_id": str})
    assert len(rows) == sizes["high"]
    exact = view.airflow.client.get("/customer-ai/instances/repurchase_30d/segments/high.parquet", headers=headers)
    assert pd.read_parquet(io.BytesIO(exact.content))["profile_id"].tolist() == rows["profile_id"].tolist()
    top = rows.sort_values("probability", ascending=False)["profile_id"].iloc[0]
    looked_up = view.airflow.client.get(
        "/customer-ai/instances/repurchase_30d",
        params={"profile": top, "kind": "top", "at": "100", "value": "50", "cost": "5"},
        headers=headers,
    )
    assert f"<h3>Profile {top}</h3>" in looked_up.text
    assert "<th>profiles</th><td>100</td>" in looked_up.text
    assert "The highest expected profit by top: the top N profiles, N = " in looked_up.text
    wrong = view.airflow.client.get("/customer-ai/instances/repurchase_30d", params={"at": "x"}, headers=headers)
    assert wrong.status_code == 400
    assert "the audience asked for: at: &#x27;x&#x27; is not a whole number" in wrong.text
    anonymous = httpx.get(f"{view.airflow.url}/customer-ai/instances/repurchase_30d/segments/high.csv", timeout=30)
    assert anonymous.status_code == 401


PAGE = "/customer-ai/instances/repurchase_30d"


@contextlib.contextmanager
def removed_after(store: SQLiteStore, audience: str) -> Iterator[None]:
    """Delete the saved audience ``audience`` of the instance when the block ends, whatever happened in it."""
    try:
        yield
    finally:
        store.delete_audience("repurchase_30d", audience)


@pytest.mark.airflow
def test_a_viewer_reads_the_page_but_may_not_save_or_delete_an_audience(view: View) -> None:
    viewer = {"Authorization": f"Bearer {view.token('viewer')}"}
    page = view.airflow.client.get(PAGE, headers=viewer)
    assert page.status_code == 200, page.text
    assert "Saving this cut as an audience needs permission to edit the DAG customer_ai__repurchase_30d" in page.text
    assert "save-audience" not in page.text
    form = {"audience": "keen", "kind": "score", "at": "70", "value": "", "cost": ""}
    saved = view.airflow.client.post(f"{PAGE}/audiences", data=form, headers=viewer)
    assert saved.status_code == 403, saved.text
    store = SQLiteStore(view.home / "store.sqlite")
    store.save_audience("repurchase_30d", SavedAudience("kept", "score", 90, "admin"))
    with removed_after(store, "kept"):
        deleted = view.airflow.client.post(f"{PAGE}/audiences/kept/delete", headers=viewer)
        assert deleted.status_code == 403, deleted.text
        assert [a.name for a in store.read_audiences("repurchase_30d")] == ["kept"]
        page = view.airflow.client.get(PAGE, headers=viewer)
        assert '<tr data-audience="kept">' in page.text  # listed for every reader ...
        assert "delete-audience" not in page.text  # ... without its delete button
        anonymous = httpx.post(f"{view.airflow.url}{PAGE}/audiences/kept/delete", timeout=30)
        assert anonymous.status_code == 401
        admin = {"Authorization": f"Bearer {view.token()}"}
        # a form of another site is refused, whoever's login the browser would add
        for forged_form in (
            {"Sec-Fetch-Site": "cross-site"},
            {"Sec-Fetch-Site": "same-site"},
            {"Origin": "http://x.example"},
        ):
            refused = view.airflow.client.post(f"{PAGE}/audiences/kept/delete", headers={**admin, **forged_form})
            assert refused.status_code == 403, forged_form
        assert [a.name for a in store.read_audiences("repurchase_30d")] == ["kept"]
        deleted = view.airflow.client.post(
            f"{PAGE}/audiences/kept/delete", headers={**admin, "Sec-Fetch-Site": "same-origin"}
        )
        assert (deleted.status_code, deleted.headers["location"]) == (303, "../../../repurchase_30d?deleted=kept")
        assert store.read_audiences("repurchase_30d") == []
        again = view.airflow.client.post(f"{PAGE}/audiences/kept/delete", headers=admin)
        assert again.status_code == 404
        assert "repurchase_30d has no saved audience named &#x27;kept&#x27; (deleted already?)" in again.text


@pytest.mark.airflow
def test_a_viewer_in_the_browser_sees_the_audiences_without_a_form_to_change_them(view: View) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import WebDriverWait

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    store = SQLiteStore(view.home / "store.sqlite")
    store.save_audience("repurchase_30d", SavedAudience("kept", "percentile", 95, "admin"))
    with removed_after(store, "kept"):
        with chromium() as driver:
            wait = WebDriverWait(driver, PAGE_TIMEOUT)
            log_in(driver, view, user="viewer").click()
            wait.until(seen.frame_to_be_available_and_switch_to_it((By.CSS_SELECTOR, "iframe[title='Customer AI']")))
            link = "tr[data-instance='repurchase_30d'] a.audiences"
            wait.until(seen.element_to_be_clickable((By.CSS_SELECTOR, link))).click()
            row = wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, "tr[data-audience='kept']")))
            assert row.text.startswith("kept percentile at least 95 admin ")
            assert driver.find_elements(By.CSS_SELECTOR, "form[method='post']") == []  # no save, no delete
            note = driver.find_element(By.CSS_SELECTOR, "p.save-needs-edit")
            assert note.text == (
                "Saving this cut as an audience needs permission to edit the DAG customer_ai__repurchase_30d in "
                "Airflow."
            )
            driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", note)
            driver.switch_to.default_content()
            driver.save_screenshot(ARTIFACTS / "10-viewer-may-not-save.png")


@pytest.mark.airflow
def test_an_editor_saves_a_cut_and_a_refused_name_is_said_on_the_page(view: View) -> None:
    admin = {"Authorization": f"Bearer {view.token()}"}
    store = SQLiteStore(view.home / "store.sqlite")
    form = {"audience": "Keen!", "kind": "top", "at": "120", "value": "40", "cost": "4"}
    refused = view.airflow.client.post(f"{PAGE}/audiences", data=form, headers=admin)
    assert refused.status_code == 400
    assert 'class="error save-problem">audience name &#x27;Keen!&#x27;: use a lower-case letter' in refused.text
    assert 'value="Keen!"' in refused.text  # the name as typed, to mend
    assert "<th>profiles</th><td>120</td>" in refused.text  # the cut as sent
    saved = view.airflow.client.post(f"{PAGE}/audiences", data={**form, "audience": "keen_120"}, headers=admin)
    assert saved.status_code == 303, saved.text
    assert saved.headers["location"] == "../repurchase_30d?kind=top&at=120&value=40&cost=4&saved=keen_120"
    with removed_after(store, "keen_120"):
        kept = store.read_audiences("repurchase_30d")
        assert [(a.name, a.cut, a.at, a.saved_by) for a in kept] == [("keen_120", "top", 120, "admin")]
        page = view.airflow.client.get(f"{PAGE}?kind=top&at=120&saved=keen_120", headers=admin)
        assert '<p class="notice">Saved the audience keen_120: the top 120 profiles by probability.' in page.text
        assert '<td class="num">from the next run</td>' in page.text
        twice = view.airflow.client.post(f"{PAGE}/audiences", data={**form, "audience": "keen_120"}, headers=admin)
        assert twice.status_code == 400
        assert "repurchase_30d has a saved audience named keen_120 already" in twice.text


@pytest.mark.airflow
def test_a_failed_attempt_shows_beside_the_current_run_and_leaves_its_report(view: View) -> None:
    # an attempt as of a date the events do not cover fails at its first step
    before = "2009-06-07"
    failed = published_run(view.env, view.instance, view.airflow.logs, as_of=before)
    assert failed.wait(timeout=RUN_TIMEOUT) == 2  # bad input
    headers = {"Authorization": f"Bearer {view.token()}"}
    page = view.airflow.client.get("/customer-ai/", headers=headers)
    assert page.status_code == 200, page.text
    row = re.search(r'<tr data-instance="repurchase_30d">.*?</tr>', page.text, re.S).group(0)
    assert f'<td class="as-of">{AS_OF}</td>' in row  # the current run is still the published one ...
    assert '<span class="status status-ok">ok</span>' in row
    assert f'<a class="report" href="instances/repurchase_30d/runs/{AS_OF}/report">report</a>' in row
    attempt = re.search(r'<div class="attempt attempt-failed">(.*?)</div>', row, re.S)
    assert attempt is not None, row  # ... and the failed attempt is beside it, with its reason
    text = html.unescape(attempt.group(1))
    assert text.startswith(f"newest attempt, as of {before}, ")
    assert ": failed at validate_events: EventsError: instance repurchase_30d: no events before the as-of date" in text
    assert "which lies before the events start" in text
    report = view.airflow.client.get(REPORT, headers=headers)
    assert report.status_code == 200
    assert report.text == (view.folder / "report.html").read_text()


@pytest.mark.airflow
def test_a_user_saves_an_audience_and_downloads_it_after_the_next_run(view: View, tmp_path: Path) -> None:
    # the last test of the module: it publishes the date again
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import WebDriverWait

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    store = SQLiteStore(view.home / "store.sqlite")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    with chromium() as driver:
        wait = WebDriverWait(driver, PAGE_TIMEOUT)
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
        log_in(driver, view).click()
        wait.until(seen.frame_to_be_available_and_switch_to_it((By.CSS_SELECTOR, "iframe[title='Customer AI']")))
        wait.until(seen.element_to_be_clickable((By.CSS_SELECTOR, "tr[data-instance='repurchase_30d'] a.audiences")))
        driver.find_element(By.CSS_SELECTOR, "tr[data-instance='repurchase_30d'] a.audiences").click()
        build_top_250(wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, "form.builder"))))
        save = wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, "form.save-audience")))
        save.find_element(By.NAME, "audience").send_keys("top_250")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", save)
        driver.switch_to.default_content()
        driver.save_screenshot(ARTIFACTS / "7-audience-to-save.png")
        driver.switch_to.frame(driver.find_element(By.CSS_SELECTOR, "iframe[title='Customer AI']"))
        save.find_element(By.CSS_SELECTOR, "button").click()
        notice = wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, "p.notice")))
        assert notice.text.startswith("Saved the audience top_250: the top 250 profiles by probability.")
        row = driver.find_element(By.CSS_SELECTOR, "tr[data-audience='top_250']")
        assert row.find_element(By.CSS_SELECTOR, "td.num").text == "from the next run"
        [kept] = store.read_audiences("repurchase_30d")
        assert (kept.name, kept.cut, kept.at, kept.saved_by) == ("top_250", "top", 250, "admin")
        driver.switch_to.default_content()
        driver.save_screenshot(ARTIFACTS / "8-audience-saved.png")

        # the next run applies it: a segment of the run, 250 profiles, that downloads as segment export writes it
        run = published_run(view.env, view.instance, view.airflow.logs)
        assert run.wait(timeout=RUN_TIMEOUT) == 0, (view.airflow.logs / f"customer-ai-run-{AS_OF}.log").read_text()
        driver.switch_to.frame(driver.find_element(By.CSS_SELECTOR, "iframe[title='Customer AI']"))
        driver.execute_script("location.reload()")
        segment = wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, "tr[data-segment='top_250']")))
        assert segment.find_element(By.CSS_SELECTOR, "td.num").text == "250"
        notice = driver.find_element(By.CSS_SELECTOR, "p.notice").text
        assert notice.endswith("The current run applied it: 250 profiles, in Segments above.")
        assert segment.find_element(By.CSS_SELECTOR, "div.note").text == (
            "saved audience: the top 250 profiles by probability, by admin"
        )
        segment.find_element(By.CSS_SELECTOR, "a[href$='.csv']").click()
        driver.switch_to.default_content()
        driver.save_screenshot(ARTIFACTS / "9-audience-after-next-run.png")
        file = downloads / f"repurchase_30d_top_250_{AS_OF}.csv"
        WebDriverWait(driver, PAGE_TIMEOUT).until(lambda _: file.exists() and not list(downloads.glob("*.crdownload")))
    exported = tmp_path / "exported.csv"
    command = [str(AIRFLOW.with_name("customer-ai")), "-q", "segment", "export", str(view.instance), "top_250"]
    done = subprocess.run([*command, "--out", str(exported)], env=view.env, capture_output=True, text=True, check=False)  # noqa: S603
    assert done.returncode == 0, done.stderr
    downloaded = pd.read_csv(file, dtype={"profile_id": str})
    pd.testing.assert_frame_equal(downloaded, pd.read_csv(exported, dtype={"profile_id": str}))
    top = store.read_scores("repurchase_30d", limit=250)["profile_id"].tolist()
    assert downloaded["profile_id"].tolist() == top  # the run's top 250, by probability then id
    assert sorted(p.name for p in ARTIFACTS.glob("[789]-*.png")) == [
        "7-audience-to-save.png",
        "8-audience-saved.png",
        "9-audience-after-next-run.png",
    ]
