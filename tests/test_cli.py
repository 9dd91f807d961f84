"""End to end: the `customer-ai` command on a slice of the real online-retail data, as a user runs it."""

from __future__ import annotations

import csv
import json
import os
import re
import secrets
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_events import BAD_SOURCES, at_most, bad_source

from customer_ai import cli
from customer_ai.quality import quality_grade
from customer_ai.scoring import BucketRule

from conftest import BASE_SPEC, RETAIL_EVENTS, ROOT, RUN_FILES_WITH_ATTRIBUTES, run_command

pytestmark = pytest.mark.e2e

NAME = "repurchase_30d"
AS_OF = "2011-10-01"
LATER = "2011-11-01"  # a second as-of date, after AS_OF's goal window closed
RUN_ID = re.compile(r"cli-[0-9a-f]{10}")  # the command's attempt id, the name of the folder it seals
NO_STORE = "nothing has been run with this home or store yet (or its address is mistyped)"
PG_DSN = os.environ.get("CUSTOMER_AI_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


_cli = run_command


# the command with one function replaced by one that raises: ``failing.py module:attribute <command arguments>``
FAILING = """
import sys
from importlib import import_module

target, *argv = sys.argv[1:]
module, _, attribute = target.partition(":")
owner = import_module(module)
*parents, name = attribute.split(".")
for parent in parents:
    owner = getattr(owner, parent)
getattr(owner, name)  # it must exist: a typo must not make a run that cannot fail


def broken(*args, **kwargs):
    raise RuntimeError(f"{name} broke on purpose")


setattr(owner, name, broken)
from customer_ai.cli import main

sys.exit(main(argv))
"""


def _cli_failing(target: str, *args: str, home: Path) -> subprocess.CompletedProcess:
    """Run the command in a process of its own where ``target`` (``module:attribute``) raises RuntimeError."""
    script = home.parent / "failing.py"
    script.write_text(FAILING)
    return subprocess.run(
        [sys.executable, str(script), target, *args],
        capture_output=True,
        text=True,
        env={"CUSTOMER_AI_HOME": str(home), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        check=False,
    )


def _store_of(home: Path):  # noqa: ANN202 - the SQLite store of a home
    from customer_ai.store import SQLiteStore

    return SQLiteStore(home / "store.sqlite")


def _at(home: Path) -> list[str]:
    """The options naming a home and its embedded store, for the command run in this process."""
    return ["--home", str(home), "--store", f"sqlite:///{home / 'store.sqlite'}"]


def _published(home: Path, as_of: str = AS_OF) -> tuple[dict, Path]:
    """Return the store's runs row of ``as_of`` and the sealed folder it names."""
    runs = _store_of(home).read_runs(NAME)
    row = runs.loc[runs["as_of"] == as_of].iloc[0].to_dict()
    assert RUN_ID.fullmatch(row["run_id"]), row
    return row, home / "artifacts" / NAME / as_of / row["run_id"]


def _attempts(home: Path, as_of: str) -> list[dict]:
    return _store_of(home).read_attempts(NAME, as_of).to_dict("records")


def _head(home: Path, row: dict, folder: Path) -> list[str]:
    """The lines `show` prints first for the published run ``row`` of the workspace's instance."""
    meta = json.loads((folder / "metadata.json").read_text())
    buckets = ", ".join(f"{k} {meta['buckets'][k]:,}" for k in ("low", "medium", "high"))
    rule = BucketRule.from_dict(meta["bucket_rule"])
    return [
        f"{NAME}: purchase occurs within 30 days",
        f"latest run as of {row['as_of']}, model {row['model_version']}: ok: {row['reason']}",
        cli._describe_quality(meta["validation"]["metrics"]),  # as test_show_prints_the_latest_run_... says
        f"scored {meta['scored_profiles']:,} profiles ({buckets}); buckets {rule.in_words()}",
        cli._describe_expected(meta["expected"]),  # their words: test_show_prints_the_latest_run_and_top_profiles
        cli._describe_drift(meta["drift"]),
        f"artifacts: {folder}",
        f"report: {folder / 'report.html'}",
    ]


def _variant(workspace: Path, file_name: str, **training: object) -> Path:
    """Write the workspace's instance with other training settings; return its path."""
    instance = yaml.safe_load((workspace / "instance.yaml").read_text())
    instance["training"].update(training)
    path = workspace / file_name
    path.write_text(yaml.safe_dump(instance))
    return path


def _described(workspace: Path, file_name: str, description: str) -> Path:
    """Write the workspace's instance with ``description`` as a double-quoted YAML string, escapes kept as given."""
    instance = yaml.safe_load((workspace / "instance.yaml").read_text())
    instance.pop("description", None)
    path = workspace / file_name
    path.write_text(yaml.safe_dump(instance) + f'description: "{description}"\n')
    return path


def _main(*args: str, capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    from customer_ai.cli import main

    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with half of the real customers' events and a repurchase instance over them."""
    folder = tmp_path_factory.mktemp("e2e")
    events = pd.read_parquet(RETAIL_EVENTS)
    keep = events["profile_id"].map(lambda p: int(p) % 2 == 0)
    events.loc[keep].to_parquet(folder / "events.parquet", index=False)
    instance = yaml.safe_load((ROOT / "instances" / "repurchase_30d.yaml").read_text())
    instance["events"] = {"path": "events.parquet"}
    instance["profiles"]["path"] = str(ROOT / "examples" / "online_retail" / "profiles.parquet")
    instance["training"].update({"min_positives": 200, "min_negatives": 200})
    instance["segments"] = [
        {
            "name": "loyal_top",
            "where": [
                {"field": "percentile", "op": "gte", "value": 80},
                {"factor": "goal_repeat_days", "op": "gt", "value": 0},
            ],
        }
    ]
    (folder / "instance.yaml").write_text(yaml.safe_dump(instance))
    return folder


@pytest.fixture(scope="module")
def first_run(workspace: Path) -> tuple[subprocess.CompletedProcess, Path]:
    home = workspace / "home"
    result = _cli(
        "run",
        str(workspace / "instance.yaml"),
        "--as-of",
        AS_OF,
        "--scores-out",
        str(workspace / "scores.csv"),
        home=home,
    )
    return result, home


def test_run_writes_scores_for_every_eligible_profile(workspace: Path, first_run: tuple) -> None:
    result, home = first_run
    assert result.returncode == 0, result.stderr
    scores = pd.read_csv(workspace / "scores.csv", dtype={"profile_id": str})
    events = pd.read_parquet(workspace / "events.parquet")
    as_of = pd.Timestamp(AS_OF, tz="UTC")
    window = events[(events.timestamp >= as_of - pd.Timedelta(days=365)) & (events.timestamp < as_of)]
    eligible = set(window.loc[window.event_type == "purchase", "profile_id"])
    assert set(scores["profile_id"]) == eligible
    assert scores["profile_id"].is_unique
    for column in ("profile_id", "probability", "score", "percentile", "bucket", "propensity", "as_of"):
        assert column in scores.columns
    assert scores["probability"].between(0, 1).all()
    assert scores["percentile"].between(1, 100).all()
    assert scores["percentile"].max() == 100
    assert set(scores["bucket"]) <= {"low", "medium", "high"}
    assert (scores["score"] == (scores["probability"] * 100 + 0.5).astype(int)).all()
    assert (scores["as_of"] == AS_OF).all()
    factors = json.loads(scores.sort_values("probability").iloc[-1]["factors"])
    assert 1 <= len(factors) <= 5
    assert set(factors[0]) == {"feature", "description", "value", "contribution", "importance", "effect"}
    assert "progress" not in result.stdout
    assert "building point-in-time features" in result.stderr  # progress goes to stderr


def test_run_writes_artifacts_with_metadata(first_run: tuple) -> None:
    result, home = first_run
    row, folder = _published(home)  # the sealed folder the store's run row names
    assert f"artifacts: {folder}\n" in result.stdout
    assert sorted(p.name for p in folder.parent.iterdir()) == [row["run_id"]]  # sealed: no staging folder left
    assert sorted(p.name for p in folder.iterdir()) == RUN_FILES_WITH_ATTRIBUTES
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["as_of"] == AS_OF
    assert (meta["run_id"], meta["attempt"], meta["artifacts"]) == (row["run_id"], row["run_id"], str(folder))
    assert (meta["model_version"], meta["reason"]) == (row["model_version"], row["reason"])
    assert meta["quality"]["status"] == "ok"
    assert meta["validation"]["metrics"]["roc_auc"] > 0.65
    for key in ("roc_auc", "pr_auc", "log_loss", "brier", "top_decile_lift"):
        assert key in meta["validation"]["metrics"]
    assert meta["versions"]["lightgbm"].startswith("4.")
    assert len(meta["spec_hash"]) == 16
    model = json.loads((home / "models" / "repurchase_30d" / meta["model_version"] / "model.json").read_text())
    # the events start on 2010-12-01: the snapshots and the lookback are fitted to the 243 days before 2011-08-02
    assert model["windows"]["snapshots"] == [
        "2011-09-01",
        "2011-08-02",
        "2011-07-18",
        "2011-07-03",
        "2011-06-18",
        "2011-06-03",
    ]
    assert model["windows"]["features"] == "[as_of - 183 days, as_of)"
    assert model["history"]["notes"][0].startswith("the events start on 2010-12-01")
    assert meta["history"]["notes"] == model["history"]["notes"]
    assert model["label_counts"]["positives"] >= 200
    assert "purchase_count_30d" in model["features"]["names"]
    assert model["features"]["descriptions"]["purchase_count_30d"] == "{value} purchases in the last 30 days"
    assert model["calibration"]["method"] == "platt"
    assert model["calibration"]["slope"] > 0
    assert (home / "models" / "repurchase_30d" / meta["model_version"] / "model.txt").exists()


def test_run_fills_the_embedded_store(first_run: tuple, workspace: Path) -> None:
    _, home = first_run
    scores = pd.read_csv(workspace / "scores.csv", dtype={"profile_id": str})
    with sqlite3.connect(home / "store.sqlite") as connection:
        current = connection.execute("SELECT COUNT(*) FROM customer_ai_scores").fetchone()[0]
        runs = connection.execute("SELECT as_of, status, scored_profiles, run_id FROM customer_ai_runs").fetchall()
        attempts = connection.execute(
            "SELECT as_of, attempt, step, status, run_id FROM customer_ai_attempts ORDER BY id"
        ).fetchall()
    assert current == len(scores)
    (run_id,) = {attempt for _, attempt, *_ in attempts}
    assert RUN_ID.fullmatch(run_id)
    assert runs == [(AS_OF, "ok", len(scores), run_id)]
    # the attempt's start, then its publish (the command's attempt seals its folder under its own id)
    assert attempts == [(AS_OF, run_id, "validate_events", "started", ""), (AS_OF, run_id, "publish", "ok", run_id)]


def test_running_twice_gives_the_same_scores(workspace: Path, first_run: tuple) -> None:
    _, home = first_run
    again = _cli(
        "run",
        str(workspace / "instance.yaml"),
        "--as-of",
        AS_OF,
        "--scores-out",
        str(workspace / "again.parquet"),
        home=workspace / "home2",
    )
    assert again.returncode == 0, again.stderr
    first = pd.read_csv(workspace / "scores.csv", dtype={"profile_id": str})
    second = pd.read_parquet(workspace / "again.parquet")
    pd.testing.assert_frame_equal(
        first[["profile_id", "probability", "score", "percentile", "bucket"]],
        second[["profile_id", "probability", "score", "percentile", "bucket"]],
        check_exact=False,
        rtol=1e-12,
    )
    assert (first["model_version"] == second["model_version"]).all()


def test_explain_prints_one_profile(first_run: tuple, workspace: Path) -> None:
    _, home = first_run
    scores = pd.read_csv(workspace / "scores.csv", dtype={"profile_id": str})
    top = scores.sort_values(["probability", "profile_id"], ascending=[False, True]).iloc[0]
    result = _cli("explain", str(workspace / "instance.yaml"), top["profile_id"], home=home)
    assert result.returncode == 0, result.stderr
    assert f"probability {top['probability']:.3f}" in result.stdout
    assert json.loads(top["factors"])[0]["description"] in result.stdout
    missing = _cli("explain", str(workspace / "instance.yaml"), "no-such-profile", home=home)
    assert missing.returncode == 2
    assert "'no-such-profile' has no repurchase_30d score" in missing.stderr


def test_poor_model_exits_non_zero_unless_allowed(workspace: Path) -> None:
    path = _variant(workspace, "strict.yaml", min_auc=0.99)
    home = workspace / "home-poor"
    poor = _cli("run", str(path), "--as-of", AS_OF, home=home)
    assert poor.returncode == 1
    assert "below the quality gate of 0.99" in poor.stderr
    assert "the run stopped at the quality gate" in poor.stderr
    (started, stopped) = _attempts(home, AS_OF)
    attempt = started["attempt"]
    assert RUN_ID.fullmatch(attempt)
    assert [(r["attempt"], r["step"], r["status"]) for r in (started, stopped)] == [
        (attempt, "validate_events", "started"),
        (attempt, "quality_gate", "poor"),
    ]
    date = home / "artifacts" / NAME / AS_OF
    folder = date / f".{attempt}.staging"  # never sealed, never published
    assert f"artifacts: {folder}" in poor.stdout
    assert sorted(p.name for p in date.iterdir()) == [folder.name]
    meta = json.loads((folder / "model.json").read_text())
    assert meta["quality"]["status"] == "poor"
    assert stopped["model_version"] == meta["model_version"]
    assert stopped["reason"].startswith(f"model {meta['model_version']} is poor: validation ROC AUC ")
    # the same declared steps as Airflow: nothing after the gate ran
    assert not (folder / "scores.parquet").exists()
    assert not (folder / "metadata.json").exists()
    with sqlite3.connect(home / "store.sqlite") as connection:
        assert connection.execute("SELECT COUNT(*) FROM customer_ai_scores").fetchone()[0] == 0
        assert connection.execute("SELECT COUNT(*) FROM customer_ai_runs").fetchone()[0] == 0  # nothing published
    shown = _cli("show", str(path), home=home)
    assert shown.returncode == 1  # nothing to show but the attempt
    assert shown.stdout.splitlines()[2] == (
        f"newest attempt: as of {AS_OF}, attempt {attempt}: poor at quality_gate on {stopped['recorded_at']}: "
        f"{stopped['reason']}"
    )
    allowed = _cli("run", str(path), "--as-of", AS_OF, "--allow-poor", home=home)
    assert allowed.returncode == 0
    rows = _attempts(home, AS_OF)
    assert [r["status"] for r in rows] == ["started", "poor", "started", "poor"]
    again = rows[-1]["attempt"]
    assert again != attempt
    assert sorted(p.name for p in date.iterdir()) == [f".{again}.staging"]  # the earlier attempt's folder is gone


def test_insufficient_data_names_counts_and_thresholds(workspace: Path) -> None:
    instance = yaml.safe_load((workspace / "instance.yaml").read_text())
    instance["training"]["min_positives"] = 1_000_000
    path = workspace / "greedy.yaml"
    path.write_text(yaml.safe_dump(instance))
    result = _cli("run", str(path), "--as-of", AS_OF, home=workspace / "home-greedy")
    assert result.returncode == 2
    assert "insufficient data for repurchase_30d" in result.stderr
    assert "at least 1,000,000 positive" in result.stderr
    assert "Traceback" not in result.stderr


def test_events_option_replaces_the_source(workspace: Path) -> None:
    events = pd.read_parquet(workspace / "events.parquet")
    csv = workspace / "canonical.csv"
    subset = events[events["profile_id"].map(lambda p: int(p) % 4 == 0)]
    subset[["profile_id", "timestamp", "event_type", "value"]].to_csv(csv, index=False)
    instance = yaml.safe_load((workspace / "instance.yaml").read_text())
    instance["training"].update({"min_positives": 50, "min_negatives": 50})
    path = workspace / "small.yaml"
    path.write_text(yaml.safe_dump(instance))
    out = workspace / "small-scores.parquet"
    result = _cli(
        "run",
        str(path),
        "--as-of",
        AS_OF,
        "--events",
        str(csv),
        "--scores-out",
        str(out),
        "--allow-poor",
        home=workspace / "home-csv",
    )
    assert result.returncode == 0, result.stderr
    scores = pd.read_parquet(out)
    assert set(scores["profile_id"]) <= set(subset["profile_id"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "{instance}", "--as-of", "someday"], "--as-of: not a date: 'someday'"),
        (["run", "{instance}", "--as-of", "now"], "--as-of: not a date: 'now' (use YYYY-MM-DD"),
        (["run", "{instance}", "--as-of", "11/12/2011"], "--as-of: not a date: '11/12/2011' (use YYYY-MM-DD"),
        (["run", "{instance}", "--as-of", "2011-10-01T23:00"], "--as-of: not a date: '2011-10-01T23:00'"),
        (["backtest", "{instance}", "--as-of", "2011"], "--as-of: not a date: '2011' (use YYYY-MM-DD"),
        (["explain", "{instance}", "12346", "--as-of", "today"], "--as-of: not a date: 'today'"),
        # before: tracebacks with exit 1, the second one only after the whole training and the store write
        (["run", "{instance}", "--as-of", AS_OF, "--store", "mysql://u:secret@h/db"], "unsupported store address"),
        (["run", "{instance}", "--as-of", AS_OF, "--scores-out", "/proc/no/s.csv"], "/proc/no/s.csv: cannot write"),
        (["run", "{instance}", "--as-of", AS_OF, "--scores-out", "x.txt"], "use a .csv or .parquet file name"),
        (["run", "missing.yaml", "--as-of", AS_OF], "missing.yaml: cannot read the instance file"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(workspace: Path, args: list[str], message: str) -> None:
    args = [a.format(instance=workspace / "instance.yaml") for a in args]
    result = _cli(*args, home=workspace / "home-bad")
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert "secret" not in result.stderr
    assert "training LightGBM" not in result.stderr  # refused before any work


def test_check_validates_the_file_and_its_events(workspace: Path) -> None:
    result = _cli("check", str(workspace / "instance.yaml"), home=workspace)
    assert result.returncode == 0, result.stderr
    assert "ok: repurchase_30d (conversion): purchase occurs within 30 days" in result.stdout
    bad = workspace / "bad.yaml"
    bad.write_text((workspace / "instance.yaml").read_text().replace("window_days: 30", "window_days: 0"))
    broken = _cli("check", str(bad), home=workspace)
    assert broken.returncode == 2
    assert f"{bad}: goal.window_days: Input should be greater than or equal to 1" in broken.stderr


def test_check_rejects_a_condition_on_an_unknown_field(workspace: Path) -> None:
    instance = yaml.safe_load((workspace / "instance.yaml").read_text())
    instance["custom_events"].append({"name": "web", "where": [{"field": "channel", "op": "eq", "value": "web"}]})
    path = workspace / "channel.yaml"
    path.write_text(yaml.safe_dump(instance))
    result = _cli("check", str(path), home=workspace)
    assert result.returncode == 2
    assert result.stderr.startswith(
        f"error: {path}: custom_events[2]: condition on field 'channel': the events have no such column"
    )
    assert result.stderr.endswith(f" (in {workspace / 'events.parquet'})\n")


def test_run_names_the_file_the_condition_and_the_events_of_a_misspelled_field(workspace: Path) -> None:
    # before: run failed after reading the events, naming neither the instance file nor the condition
    instance = yaml.safe_load((workspace / "instance.yaml").read_text())
    instance["goal"]["events"][0]["where"][0]["field"] = "evnt_type"
    path = workspace / "evnt-type.yaml"
    path.write_text(yaml.safe_dump(instance))
    home = workspace / "home-evnt-type"
    result = _cli("run", str(path), "--as-of", AS_OF, home=home)
    assert result.returncode == 2
    assert (
        f"error: {path.resolve()}: goal.events[0].where[0] tests field 'evnt_type', which the events of "
        f"{workspace / 'events.parquet'} do not have (their columns: profile_id, timestamp, event_type, value"
    ) in result.stderr
    assert "Traceback" not in result.stderr
    assert "validating events" not in result.stderr  # refused at the first batch, before any partition is read


def test_a_goal_no_event_matches_is_refused_in_words_by_check_and_run(workspace: Path) -> None:
    # before: check said ok (a warning printed as Python data) and run said "insufficient data: use more snapshots"
    instance = yaml.safe_load((workspace / "instance.yaml").read_text())
    instance["goal"]["events"] = [{"where": [{"field": "event_type", "op": "eq", "value": "refund"}]}]
    instance["segments"] = []  # its factor of repeat goal events would be refused too
    instance["custom_events"].append({"name": "gifts", "where": [{"field": "event_type", "op": "eq", "value": "gift"}]})
    path = workspace / "refund.yaml"
    path.write_text(yaml.safe_dump(instance))
    result = _cli("check", str(path), home=workspace)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        f"error: {path}: no event matches goal.events[0] (refund): nobody can reach the goal, so no model can learn "
        f"it; the events' types are purchase, cancellation (in {workspace / 'events.parquet'})\n"
    )
    instance["goal"]["events"].append({"where": [{"field": "event_type", "op": "eq", "value": "purchase"}]})
    path.write_text(yaml.safe_dump(instance))
    result = _cli("check", str(path), home=workspace)
    assert result.returncode == 0
    assert result.stderr == (
        f"warning: {path}: no event matches goal.events[0] (refund): the goal is met through its other patterns "
        f"only\nwarning: {path}: no event matches custom_events[2], gifts (gift): its features are the same for every "
        "profile\n"
    )
    instance["goal"]["events"] = instance["goal"]["events"][:1]
    path.write_text(yaml.safe_dump(instance))
    run = _cli("run", str(path), "--as-of", AS_OF, home=workspace / "home-refund")
    assert run.returncode == 2
    assert "error: no event of " in run.stderr
    assert "matches the goal of repurchase_30d (refund occurs within 30 days): nobody can reach the goal" in run.stderr
    assert "More snapshots cannot help" in run.stderr


def test_report_rewrites_a_published_runs_report_without_retraining(first_run: tuple, workspace: Path) -> None:
    _, home = first_run
    instance = str(workspace / "instance.yaml")
    _, folder = _published(home)
    written_by_the_run = (folder / "report.html").read_bytes()
    out = workspace / "reports" / "copy.html"
    result = _cli("report", instance, "--out", str(out), home=home)  # default: the newest published run
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"repurchase_30d as of {AS_OF}: report written to {out}\n"
    assert out.read_bytes() == written_by_the_run  # the same run gives the same file, byte for byte
    models = sorted(p.name for p in (home / "models" / "repurchase_30d").iterdir())

    again = _cli("report", instance, "--as-of", AS_OF, home=home)
    assert again.returncode == 0, again.stderr
    assert again.stdout == f"repurchase_30d as of {AS_OF}: report written to {folder / 'report.html'}\n"
    assert sorted(p.name for p in (home / "models" / "repurchase_30d").iterdir()) == models  # nothing trained

    store = f"SQLiteStore('{home / 'store.sqlite'}')"
    missing = _cli("report", instance, "--as-of", "2011-11-01", home=home)
    assert missing.returncode == 2
    assert f"repurchase_30d has no run as of 2011-11-01 in {store} (published runs as of: {AS_OF})" in missing.stderr
    wrong = _cli("report", instance, "--out", str(workspace / "report.pdf"), home=home)
    assert wrong.returncode == 2
    assert f"--out {workspace / 'report.pdf'}: use a file name ending in .html" in wrong.stderr
    nothing = _cli("report", instance, home=workspace / "empty-home")
    assert nothing.returncode == 2
    empty = workspace / "empty-home" / "store.sqlite"
    assert nothing.stderr == f"error: no profile store at {empty}: {NO_STORE}\n"
    assert not empty.parent.exists()  # a reader creates nothing


def test_show_describes_what_the_run_scored_not_the_file(first_run: tuple, workspace: Path) -> None:
    # before: another file with the same name printed its own goal above the first file's scores
    _, home = first_run
    instance = yaml.safe_load((workspace / "instance.yaml").read_text())
    instance["goal"]["window_days"] = 60
    other = workspace / "same-name.yaml"
    other.write_text(yaml.safe_dump(instance))
    result = _cli("show", str(other), "--top", "0", home=home)
    lines = result.stdout.splitlines()
    assert lines[0] == "repurchase_30d: purchase occurs within 30 days"
    assert lines[2].startswith("quality: ")
    assert lines[3].startswith(f"note: this run scored another definition of repurchase_30d than {other} holds now")
    assert lines[3].endswith("file's goal: purchase occurs within 60 days)")
    _, folder = _published(home)
    profile = pd.read_parquet(folder / "scores.parquet")["profile_id"].iloc[0]
    explained = _cli("explain", str(other), profile, home=home).stdout.splitlines()
    assert explained[0].endswith("purchase occurs within 30 days")
    assert explained[1].startswith("note: this run scored another definition of repurchase_30d")


def test_check_says_ok_only_when_every_check_passed(workspace: Path) -> None:
    # before: "ok" was printed, then the error for the same file
    instance = yaml.safe_load((workspace / "instance.yaml").read_text())
    instance["custom_events"].append({"name": "web", "where": [{"field": "channel", "op": "eq", "value": "web"}]})
    path = workspace / "channel-ok.yaml"
    path.write_text(yaml.safe_dump(instance))
    result = _cli("check", str(path), home=workspace)
    assert result.returncode == 2
    assert "ok" not in result.stdout


def test_check_says_when_it_skipped_the_data_checks(workspace: Path) -> None:
    # before: "ok" without a word that the events file was missing
    instance = yaml.safe_load((workspace / "instance.yaml").read_text())
    instance["events"] = {"path": "not-there.parquet"}
    path = workspace / "missing-events.yaml"
    path.write_text(yaml.safe_dump(instance))
    result = _cli("check", str(path), home=workspace)
    assert result.returncode == 0
    assert f"the events file {workspace / 'not-there.parquet'} does not exist (yet): the data checks were skipped" in (
        result.stderr
    )
    named = _cli("check", str(path), "--events", str(workspace / "nope.csv"), home=workspace)
    assert named.returncode == 2
    assert f"--events {workspace / 'nope.csv'}: file not found" in named.stderr


def test_check_refuses_an_instance_file_that_is_not_utf8(workspace: Path) -> None:
    # before: UnicodeDecodeError, a traceback and exit 1
    path = workspace / "latin.yaml"
    path.write_bytes(b"name: latin\ndescription: caf\xe9\n")
    result = _cli("check", str(path), home=workspace)
    assert result.returncode == 2
    assert result.stderr == f"error: {path}: line 2, column 17: byte 0xe9 is not UTF-8; save the file as UTF-8\n"
    assert result.stdout == ""


def test_check_refuses_values_that_are_never_valid(workspace: Path) -> None:
    # before: a 9-level alias bomb passed after 30 s and 3.4 GB; a 1 MB file and a 10,001-character text passed
    text = (workspace / "instance.yaml").read_text()
    value = "&a0 [v, v, v, v, v, v, v, v, v]"
    for level in range(1, 10):
        value = f"&a{level} [{value}, " + ", ".join([f"*a{level - 1}"] * 8) + "]"
    bomb = yaml.safe_load(text)
    bomb["goal"]["events"][0]["where"][0].update({"op": "in", "value": "BOMB"})
    cases = {
        "bomb.yaml": (
            yaml.safe_dump(bomb).replace("value: BOMB", f"value: {value}"),
            "goal.events[0].where[0].value: item 0 is a list: a value is a single value or a flat list of single "
            "values (text, numbers, dates, true or false)",
        ),
        "large.yaml": (text + "#" * 1_000_000 + "\n", "the file has"),
        "long.yaml": (
            yaml.safe_dump({**yaml.safe_load(text), "description": "x" * 10_001}),
            "description: a text of 10,001 characters; a value holds at most 10,000",
        ),
    }
    for name, (content, message) in cases.items():
        path = workspace / name
        path.write_text(content)
        result = _cli("check", str(path), home=workspace)
        assert result.returncode == 2, name
        assert result.stderr.startswith(f"error: {path}: {message}"), result.stderr[:500]
        assert "Traceback" not in result.stderr


def test_check_refuses_a_segment_factor_that_does_not_exist(workspace: Path) -> None:
    # before: accepted by check and run; the segment stayed empty at every run
    instance = yaml.safe_load((workspace / "instance.yaml").read_text())
    instance["segments"][0]["where"][1]["factor"] = "purchase_days_since_lst"
    misspelled = workspace / "misspelled.yaml"
    misspelled.write_text(yaml.safe_dump(instance))
    expected = (
        f"error: {misspelled}: segments[0].where[1]: segment 'loyal_top' tests factor 'purchase_days_since_lst', "
        "which is not a feature of this instance; nearest known names: purchase_days_since_last, "
        "purchase_days_since_first, large_purchase_days_since_last\n"
    )
    result = _cli("check", str(misspelled), home=workspace)
    assert (result.returncode, result.stderr) == (2, expected)
    run = _cli("run", str(misspelled), "--as-of", AS_OF, home=workspace / "home-misspelled")
    assert (run.returncode, run.stderr) == (2, expected)  # refused before any work
    assert not (workspace / "home-misspelled" / "artifacts").exists()

    # an event type's features depend on the events: checked against them
    instance["segments"][0]["where"][1]["factor"] = "purchse_days_since_last"
    unknown_type = workspace / "unknown-type.yaml"
    unknown_type.write_text(yaml.safe_dump(instance))
    result = _cli("check", str(unknown_type), home=workspace)
    assert result.returncode == 2
    assert result.stderr == (
        f"error: {unknown_type}: segments[0].where[1]: segment 'loyal_top' tests factor 'purchse_days_since_last', a "
        "feature of event type 'purchse', but no event type of the events is called so (in lower case, with _ for "
        "other characters, theirs are: purchase, cancellation); nearest known names: purchase_days_since_last, "
        "purchase_days_since_first, large_purchase_days_since_last\n"
    )
    instance["events"] = {"path": "not-there.parquet"}
    unchecked = workspace / "unchecked.yaml"
    unchecked.write_text(yaml.safe_dump(instance))
    result = _cli("check", str(unchecked), home=workspace)
    assert result.returncode == 0
    assert result.stderr == (
        f"warning: the events file {workspace / 'not-there.parquet'} does not exist (yet): the data checks were "
        "skipped, with the segment factors that depend on them (purchse_days_since_last)\n"
    )


def test_an_unreachable_store_exits_3_before_any_work(workspace: Path) -> None:
    store = "postgresql://postgres:s3cret-pw@127.0.0.1:1/test"
    result = _cli("run", str(workspace / "instance.yaml"), "--as-of", AS_OF, "--store", store, home=workspace / "h3")
    assert result.returncode == 3
    assert "cannot connect to the PostgreSQL profile store" in result.stderr
    assert "s3cret" not in result.stderr + result.stdout
    assert "validating events" not in result.stderr  # nothing was done before the store answered
    assert "Traceback" not in result.stderr


def _with_rows_dated(workspace: Path, day: str, count: int) -> Path:
    """Write the real online-retail events plus ``count`` copies of its first rows dated ``day``; return the file."""
    events = pd.read_parquet(RETAIL_EVENTS)
    broken = events.head(count).assign(timestamp=pd.Series([pd.Timestamp(day, tz="UTC")] * count, dtype="M8[us, UTC]"))
    path = workspace / f"events-{count}-dated-{day}.parquet"
    pd.concat([broken, events], ignore_index=True).to_parquet(path, index=False)
    return path


def test_twenty_rows_dated_1900_change_nothing_but_a_warning(workspace: Path) -> None:
    # before: the run believed in 111 years of history: no adaptation, 365-day lookbacks over data starting on
    # 2010-12-01, exit 0 and no word
    events = _with_rows_dated(workspace, "1900-01-01", 20)
    home = workspace / "home-1900"
    result = _cli("run", str(workspace / "instance.yaml"), "--as-of", "2011-12-11", "--events", str(events), home=home)
    assert result.returncode == 0, result.stderr
    assert "history: training snapshots: 5 every 19 days instead of 5 every 30 days" in result.stdout
    assert "history: features look back 238 days instead of 365" in result.stdout
    warning = (
        f"{events}: 20 of 22,210 events (0.09%), dated 1900-01-01, lie before 40,510 days without any event; the "
        "history starts after them, on 2010-12-01 (at least 99.9% of the events lie on or after that day): the "
        "snapshots and the feature lookback are planned from there; correct or filter those rows if their dates "
        "are wrong"
    )
    assert warning in result.stderr
    _, folder = _published(home, "2011-12-11")
    assert json.loads((folder / "source.json").read_text())["before_start"]["message"] == warning


def test_five_percent_of_rows_dated_1970_exit_2_with_what_to_do(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    events = _with_rows_dated(tmp_path, "1970-01-01", 1_200)
    instance = str(workspace / "instance.yaml")
    command = ["run", instance, "--as-of", "2011-12-11", "--events", str(events), *_at(tmp_path / "home")]
    status, stdout, stderr = _main(*command, capsys=capsys)
    assert (status, stdout) == (2, "")
    assert stderr.startswith(
        f"error: {events}: 1,200 of 23,390 events (5.1%), dated 1970-01-01, lie before 14,943 days without any "
        "event; the events really start on 2010-12-01. At most 0.1% of the events may lie before the start"
    )
    assert stderr.endswith(
        "correct the dates of those rows or filter them out of the events (1900-01-01 and "
        "1970-01-01 are the usual stand-ins for a missing date)\n"
    )


def test_a_nul_character_in_an_event_type_exits_2_with_the_rows(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # before: accepted; the report then held raw NUL bytes and PostgreSQL's json factors \u0000
    events = pd.read_parquet(RETAIL_EVENTS, columns=["profile_id", "timestamp", "event_type", "value"])
    events.loc[[3, 7], "event_type"] = "purchase\x00"
    path = tmp_path / "nul.parquet"
    events.to_parquet(path, index=False)
    message = (
        f"error: {path}: column 'event_type' has 2 values with a NUL character (rows 3, 7, e.g. 'purchase\\x00'); "
        "no database text column can hold one: remove the NUL characters, or those rows, first\n"
    )
    instance = str(workspace / "instance.yaml")
    for command in (
        ["run", instance, "--as-of", AS_OF, "--events", str(path), *_at(tmp_path / "home")],
        ["check", instance, "--events", str(path)],
    ):
        status, stdout, stderr = _main(*command, capsys=capsys)
        assert (status, stdout, stderr) == (2, "", message)


@pytest.mark.parametrize("case", list(BAD_SOURCES))
def test_an_event_file_that_is_not_what_its_name_says_exits_2_naming_it(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture, case: str
) -> None:
    # before: tracebacks (ArrowInvalid, OSError, IsADirectoryError, UnicodeDecodeError), "missing required
    # column(s) ... (columns: )" for an empty folder, "file not found" for a loop, and a FIFO that blocked forever
    path, message = bad_source(tmp_path, case)
    instance = str(workspace / "instance.yaml")
    commands = [
        ["run", instance, "--as-of", AS_OF, "--events", str(path), *_at(tmp_path / "home")],
        ["check", instance, "--events", str(path)],  # a link loop too: it once said "file not found" first
    ]
    for command in commands:
        with at_most(60):
            status, stdout, stderr = _main(*command, capsys=capsys)
        assert (status, stdout) == (2, ""), command[0]
        assert stderr.startswith(f"error: {message}"), command[0]
        assert "Traceback" not in stderr


def test_ids_are_printed_escaped(capsys: pytest.CaptureFixture) -> None:
    # before: newlines, carriage returns and terminal escape sequences in ids reached the terminal raw
    from customer_ai.cli import _print_profile

    row = {
        "profile_id": "evil\x1b[2J\r\nid",
        "probability": 0.5,
        "score": 50,
        "percentile": 50,
        "bucket": "medium",
        "factors": [{"description": "most often country \x1b[31mNO", "contribution": 0.1, "importance": "low"}],
    }
    _print_profile(row)
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert "\r" not in out
    assert out.count("\n") == 2  # one line per profile and per factor
    assert "evil\\x1b[2J\\r\\nid" in out
    assert "most often country \\x1b[31mNO" in out


def test_backtest_prints_model_and_baselines(workspace: Path) -> None:
    result = _cli(
        "-q",
        "backtest",
        str(workspace / "instance.yaml"),
        "--as-of",
        "2011-09-01",
        "--json-out",
        str(workspace / "bt.json"),
        home=workspace,
    )
    assert result.returncode == 0, result.stderr
    assert "| 2011-09-01 | **model** |" in result.stdout
    assert "| 2011-09-01 | baseline: recency |" in result.stdout
    metrics = json.loads((workspace / "bt.json").read_text())[0]
    assert metrics["model"]["roc_auc"] > metrics["recency"]["roc_auc"]
    late = _cli("-q", "backtest", str(workspace / "instance.yaml"), "--as-of", "2011-11-20", home=workspace)
    assert late.returncode == 2
    assert "its goal window ends 2011-12-20 but the events end 2011-12-09" in late.stderr


def test_show_prints_the_latest_run_and_top_profiles(first_run: tuple, workspace: Path) -> None:
    _, home = first_run
    result = _cli("show", str(workspace / "instance.yaml"), "--as-of", AS_OF, "--top", "2", home=home)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "repurchase_30d: purchase occurs within 30 days"
    assert lines[1].startswith(f"latest run as of {AS_OF}, model ")
    assert ": ok: validation ROC AUC " in lines[1]
    _, folder = _published(home)
    metrics = json.loads((folder / "metadata.json").read_text())["validation"]["metrics"]
    grade, meaning = quality_grade(metrics)
    assert lines[2] == (
        f"quality: {grade}: {meaning} (held out: top-tenth lift {metrics['top_decile_lift']:.2f}, calibration error "
        f"{metrics['calibration_error']:.3f}, ROC AUC {metrics['model_roc_auc']:.3f})"
    )
    assert meaning.startswith(f"finds {metrics['top_decile_lift']:.1f} times as many profiles whose goal came true")
    assert lines[3].startswith("scored ")
    assert "(low " in lines[3]
    drift = json.loads((folder / "drift.json").read_text())
    scored = pd.read_parquet(folder / "scores.parquet")
    assert re.fullmatch(
        rf"expected to reach the goal: {scored['probability'].sum():,.0f} of {len(scored):,} profiles \([\d,]+ to "
        r"[\d,]+ if the base rate moves as much as it did between the model's past windows\)",
        lines[4],
    )
    assert lines[5].startswith(f"drift: {drift['status']} (largest stability index of a feature ")
    assert lines[6] == f"artifacts: {folder}"
    assert lines[7] == f"report: {folder / 'report.html'}"
    assert lines[8] == f"store: SQLiteStore('{home / 'store.sqlite'}')"  # no newer attempt than this run's publish
    assert lines[9] == "top 2 profiles:"
    other = _cli("show", str(workspace / "instance.yaml"), "--as-of", "2011-11-01", home=home)
    assert other.returncode == 2
    assert other.stderr == (
        f"repurchase_30d has no run as of 2011-11-01 in SQLiteStore('{home / 'store.sqlite'}') "
        f"(published runs as of: {AS_OF})\n"
    )
    empty = _cli("show", str(workspace / "instance.yaml"), home=workspace / "nowhere")
    assert empty.returncode == 2
    assert empty.stderr == f"error: no profile store at {workspace / 'nowhere' / 'store.sqlite'}: {NO_STORE}\n"


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_scores_files_round_trip_hostile_ids_exactly(tmp_path: Path, suffix: str) -> None:
    # before: an id with a carriage return was written unquoted and read back as an extra row
    from customer_ai.artifacts import write_frame
    from customer_ai.cli import _write_scores

    ids = ["a\rb", "c\nd", 'quote"d', "comma,id", "semi;--", "\x1b[31mred", "007", "12346.0"]
    scores = pd.DataFrame(
        {
            "profile_id": ids,
            "probability": [0.5] * len(ids),
            "factors": [[{"feature": "x", "description": "3\r\nevents", "contribution": 0.1}]] * len(ids),
        }
    )
    path = tmp_path / f"scores{suffix}"
    write_frame(tmp_path / "run" / "scores.parquet", scores)  # as a run folder holds them: factors as JSON text
    _write_scores(tmp_path / "run", path)
    back = pd.read_csv(path, dtype={"profile_id": str}) if suffix == ".csv" else pd.read_parquet(path)
    assert back["profile_id"].tolist() == ids
    assert [json.loads(f) for f in back["factors"]] == scores["factors"].tolist()


def test_segment_export_reads_the_run_from_the_store(first_run: tuple, workspace: Path) -> None:
    _, home = first_run
    scores = pd.read_csv(workspace / "scores.csv", dtype={"profile_id": str})
    factors = [json.loads(f) for f in scores["factors"]]
    repeat = [any(f["feature"] == "goal_repeat_days" and f["contribution"] > 0 for f in fs) for fs in factors]
    expected = scores.loc[(scores["percentile"] >= 80) & pd.Series(repeat), "profile_id"]
    assert len(expected) > 10
    out = workspace / "exports" / "loyal.parquet"
    result = _cli("segment", "export", str(workspace / "instance.yaml"), "loyal_top", "--out", str(out), home=home)
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout
        == f"repurchase_30d segment loyal_top as of {AS_OF}: {len(expected):,} profiles written to {out}\n"
    )
    assert "training" not in result.stderr  # read from the store, never retrained
    exported = pd.read_parquet(out)
    assert sorted(exported["profile_id"]) == sorted(expected)
    assert exported["probability"].is_monotonic_decreasing
    assert (exported["factor_1_name"].notna()).all()
    # a bucket's segment of a date (medium: this run put nobody in high)
    medium = workspace / "exports" / "medium.csv"
    result = _cli(
        "segment",
        "export",
        str(workspace / "instance.yaml"),
        "medium",
        "--as-of",
        AS_OF,
        "--out",
        str(medium),
        home=home,
    )
    assert result.returncode == 0, result.stderr
    expected = sorted(scores.loc[scores["bucket"] == "medium", "profile_id"])
    assert len(expected) > 10
    assert sorted(pd.read_csv(medium, dtype={"profile_id": str})["profile_id"]) == expected


# --- issue 17: one commit point; what readers see when a run fails or stops at the gate --------------------------


def _copy_home(home: Path, to: Path) -> Path:
    """Copy a home (artifacts, models, store) to ``to``; return the copy."""
    shutil.copytree(home, to)
    return to


def test_a_poor_rerun_of_a_published_date_keeps_the_published_run(
    first_run: tuple, workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # issue 17, case 2; before: the poor re-run replaced the date's run row, so show said "poor" (exit 1) and
    # segment export refused the date, although its scores were still the current ones
    home = _copy_home(first_run[1], tmp_path / "home")
    instance = str(workspace / "instance.yaml")
    store = _store_of(home)
    runs, counts, current = store.read_runs(NAME), store.count_rows(NAME), store.read_scores(NAME)
    row, folder = _published(home)
    files = sorted(p.name for p in folder.iterdir())
    report = (folder / "report.html").read_bytes()

    strict = _variant(workspace, "strict-rerun.yaml", min_auc=0.99)
    status, stdout, stderr = _main("run", str(strict), "--as-of", AS_OF, *_at(home), capsys=capsys)
    assert status == 1
    assert (
        "the run stopped at the quality gate (nothing scored or published: the store keeps its runs and scores; the "
        "attempt's files above are kept until the next run of this date)"
    ) in stderr
    rows = _attempts(home, AS_OF)
    assert [(r["attempt"], r["step"], r["status"]) for r in rows] == [
        (row["run_id"], "validate_events", "started"),
        (row["run_id"], "publish", "ok"),
        (rows[2]["attempt"], "validate_events", "started"),
        (rows[2]["attempt"], "quality_gate", "poor"),
    ]
    poor = rows[-1]
    assert RUN_ID.fullmatch(poor["attempt"])
    assert poor["attempt"] != row["run_id"]
    assert poor["model_version"] == row["model_version"]  # the same model, judged against a stricter gate
    assert poor["reason"].startswith(f"model {row['model_version']} is poor: validation ROC AUC ")
    assert poor["reason"].endswith("below the quality gate of 0.99; the previous scores are kept")
    staging = folder.parent / f".{poor['attempt']}.staging"
    assert f"artifacts: {staging}\n" in stdout
    # the published run is untouched: its run row, the store's rows and scores, its sealed folder
    pd.testing.assert_frame_equal(store.read_runs(NAME), runs)
    assert store.count_rows(NAME) == counts
    pd.testing.assert_frame_equal(store.read_scores(NAME), current)
    assert sorted(p.name for p in folder.parent.iterdir()) == sorted([row["run_id"], staging.name])
    assert sorted(p.name for p in folder.iterdir()) == files

    status, stdout, stderr = _main("show", instance, "--top", "0", *_at(home), capsys=capsys)
    assert (status, stderr) == (0, "")
    assert stdout.splitlines() == [
        *_head(home, row, folder),
        f"newest attempt: as of {AS_OF}, attempt {poor['attempt']}: poor at quality_gate on {poor['recorded_at']}: "
        f"{poor['reason']}",
        f"store: {store}",
    ]

    scores = pd.read_csv(workspace / "scores.csv", dtype={"profile_id": str})
    for segment in ("high", "medium"):  # this run put nobody in high: medium is the one that can differ
        out = tmp_path / f"{segment}.csv"
        status, stdout, _ = _main("segment", "export", instance, segment, "--out", str(out), *_at(home), capsys=capsys)
        expected = sorted(scores.loc[scores["bucket"] == segment, "profile_id"])
        assert status == 0
        assert stdout == f"{NAME} segment {segment} as of {AS_OF}: {len(expected):,} profiles written to {out}\n"
        assert sorted(pd.read_csv(out, dtype={"profile_id": str})["profile_id"]) == expected
    assert len(expected) > 10

    out = tmp_path / "report.html"
    status, stdout, _ = _main("report", instance, "--out", str(out), *_at(home), capsys=capsys)
    assert (status, stdout) == (0, f"{NAME} as of {AS_OF}: report written to {out}\n")
    assert out.read_bytes() == report  # the published run's report, as it was written


@pytest.fixture(scope="module")
def failed_report(first_run: tuple, workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """A copy of the first run's home, then a run as of LATER that failed while writing its report."""
    home = _copy_home(first_run[1], tmp_path_factory.mktemp("failed-report") / "home")
    out = home.parent / "later.csv"
    result = _cli_failing(
        "customer_ai.report:build_report",
        "run",
        str(workspace / "instance.yaml"),
        "--as-of",
        LATER,
        "--scores-out",
        str(out),
        home=home,
    )
    return result, home, out


def test_a_run_failing_in_its_report_leaves_every_reader_on_the_previous_run(
    failed_report: tuple, first_run: tuple, workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # issue 17, case 1; before: the store had the new scores while the artifacts still held the previous run, so
    # show, explain, report and segment export each described another run
    result, home, out = failed_report
    assert result.returncode != 0
    assert "RuntimeError: build_report broke on purpose" in result.stderr
    assert not out.exists()  # --scores-out: nothing, as nothing was published
    instance = str(workspace / "instance.yaml")
    store = _store_of(home)
    pd.testing.assert_frame_equal(store.read_runs(NAME), _store_of(first_run[1]).read_runs(NAME))
    row, folder = _published(home)
    assert folder.is_dir()
    started, failed = _attempts(home, LATER)
    attempt = started["attempt"]
    assert RUN_ID.fullmatch(attempt)
    assert [(r["attempt"], r["step"], r["status"], r["run_id"]) for r in (started, failed)] == [
        (attempt, "validate_events", "started", ""),
        (attempt, "write_report", "failed", ""),
    ]
    assert failed["reason"] == "RuntimeError: build_report broke on purpose"
    # the attempt's staging folder is left to look into, never sealed
    assert sorted(p.name for p in (home / "artifacts" / NAME / LATER).iterdir()) == [f".{attempt}.staging"]

    status, stdout, stderr = _main("show", instance, "--top", "0", *_at(home), capsys=capsys)
    assert (status, stderr) == (0, "")
    assert stdout.splitlines() == [
        *_head(home, row, folder),
        f"newest attempt: as of {LATER}, attempt {attempt}: failed at write_report on {failed['recorded_at']}: "
        "RuntimeError: build_report broke on purpose",
        f"store: {store}",
    ]

    scores = pd.read_csv(workspace / "scores.csv", dtype={"profile_id": str})
    top = scores.sort_values(["probability", "profile_id"], ascending=[False, True]).iloc[0]
    status, stdout, _ = _main("explain", instance, top["profile_id"], *_at(home), capsys=capsys)
    assert status == 0
    lines = stdout.splitlines()
    assert lines[0] == f"{NAME} as of {AS_OF} (model {row['model_version']}): purchase occurs within 30 days"
    assert f"probability {top['probability']:.3f}  score {top['score']:>3}" in lines[1]

    written = (folder / "report.html").read_bytes()
    (folder / "report.html").unlink()
    status, stdout, _ = _main("report", instance, *_at(home), capsys=capsys)
    assert (status, stdout) == (0, f"{NAME} as of {AS_OF}: report written to {folder / 'report.html'}\n")
    assert (folder / "report.html").read_bytes() == written

    exported = tmp_path / "medium.csv"
    status, stdout, _ = _main(
        "segment", "export", instance, "medium", "--out", str(exported), *_at(home), capsys=capsys
    )
    expected = sorted(scores.loc[scores["bucket"] == "medium", "profile_id"])
    assert (status, stdout) == (
        0,
        f"{NAME} segment medium as of {AS_OF}: {len(expected):,} profiles written to {exported}\n",
    )
    assert sorted(pd.read_csv(exported, dtype={"profile_id": str})["profile_id"]) == expected


def test_scores_out_is_written_after_the_publish_with_the_published_scores(
    failed_report: tuple, workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    home = _copy_home(failed_report[1], tmp_path / "home")
    out = tmp_path / "later.parquet"
    # a run whose commit fails: its folder is sealed, but the store's transaction never happens
    broken = _cli_failing(
        "customer_ai.store.sqlite:SQLiteStore.write_run_parts",
        "run",
        str(workspace / "instance.yaml"),
        "--as-of",
        LATER,
        "--scores-out",
        str(out),
        home=home,
    )
    assert broken.returncode != 0
    assert "RuntimeError: write_run_parts broke on purpose" in broken.stderr
    assert not out.exists()
    assert _store_of(home).read_runs(NAME)["as_of"].tolist() == [AS_OF]
    *_, failed = _attempts(home, LATER)
    assert (failed["step"], failed["status"], failed["reason"]) == (
        "publish",
        "failed",
        "RuntimeError: write_run_parts broke on purpose",
    )
    date = home / "artifacts" / NAME / LATER
    assert failed["attempt"] in {p.name for p in date.iterdir()}  # sealed, and nothing points at it

    # again, with an instance file whose description holds an emoji written as its two UTF-16 halves: before, the
    # halves stayed apart and the report could not be written (UnicodeEncodeError), after the store had the scores
    instance = _described(workspace, "emoji.yaml", r"Buy again \ud83d\ude00 within 30 days?")
    status, stdout, _ = _main(
        "run", str(instance), "--as-of", LATER, "--scores-out", str(out), "--top", "0", *_at(home), capsys=capsys
    )
    assert status == 0
    store = _store_of(home)
    row, folder = _published(home, LATER)
    assert stdout.splitlines()[-2:] == [f"store: {store}", f"scores: {out}"]
    assert sorted(p.name for p in date.iterdir()) == [row["run_id"]]  # the abandoned folders of the date are gone
    assert row["run_id"] != failed["attempt"]
    written = pd.read_parquet(out).sort_values("profile_id", ignore_index=True)
    current = store.read_scores(NAME).sort_values("profile_id", ignore_index=True)
    assert len(current) == row["scored_profiles"] > 1000
    assert written["profile_id"].tolist() == current["profile_id"].tolist()
    assert written["probability"].tolist() == current["probability"].tolist()
    assert set(written["model_version"]) == {row["model_version"]}
    assert set(written["as_of"]) == {LATER}
    assert "Buy again 😀 within 30 days?" in (folder / "report.html").read_text(encoding="utf-8")
    status, stdout, _ = _main("show", str(instance), "--top", "0", *_at(home), capsys=capsys)
    assert status == 0
    assert stdout.splitlines() == [*_head(home, row, folder), f"store: {store}"]  # the newest attempt is this run


def test_a_lone_half_of_a_surrogate_pair_is_refused(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    instance = _described(workspace, "lone.yaml", r"Buy again \ud83d within 30 days?")
    message = (
        f"error: {instance}: description: holds half of a UTF-16 surrogate pair (\\ud83d) without its other half: "
        "no UTF-8 text can hold it; write the character itself, or escape it as \\UXXXXXXXX\n"
    )
    for command in (["run", str(instance), "--as-of", AS_OF, *_at(tmp_path / "home")], ["check", str(instance)]):
        status, stdout, stderr = _main(*command, capsys=capsys)
        assert (status, stdout, stderr) == (2, "", message)
    assert not (tmp_path / "home").exists()  # refused before any work


def test_a_run_failing_validation_is_an_attempt_without_a_run(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # issue 17, case 3: the attempt is recorded (started, then failed at its step), nothing is published
    events = pd.read_parquet(workspace / "events.parquet", columns=["profile_id", "timestamp", "event_type", "value"])
    some = events.loc[events["profile_id"].isin(events["profile_id"].unique()[:20])]
    future = pd.DataFrame(
        {"profile_id": ["99998"], "timestamp": [pd.Timestamp("2100-01-01", tz="UTC")], "event_type": ["purchase"]}
    )
    path = tmp_path / "future.csv"
    pd.concat([some, future]).to_csv(path, index=False)
    home = tmp_path / "home"
    instance = str(workspace / "instance.yaml")
    status, stdout, stderr = _main("run", instance, "--as-of", AS_OF, "--events", str(path), *_at(home), capsys=capsys)
    assert (status, stdout) == (2, "")
    assert "expect_column_max_to_be_between on timestamp: observed 2100-01-01 00:00:00+00:00" in stderr
    assert "Traceback" not in stderr
    started, failed = _attempts(home, AS_OF)
    attempt = started["attempt"]
    assert RUN_ID.fullmatch(attempt)
    assert [(r["attempt"], r["step"], r["status"]) for r in (started, failed)] == [
        (attempt, "validate_events", "started"),
        (attempt, "validate_events", "failed"),
    ]
    assert started["reason"].startswith("started by the customer-ai command (process ")
    assert failed["reason"].startswith("DataValidationError: events: 1 of ")
    assert "expect_column_max_to_be_between on timestamp: observed 2100-01-01 00:00:00+00:00" in failed["reason"]
    store = _store_of(home)
    assert store.read_runs(NAME).empty
    assert store.count_rows(NAME) == {"customer_ai_scores": 0, "customer_ai_score_history": 0, "customer_ai_runs": 0}
    newest = (
        f"newest attempt: as of {AS_OF}, attempt {attempt}: failed at validate_events on {failed['recorded_at']}: "
        f"{failed['reason']}"
    )

    status, stdout, stderr = _main("show", instance, *_at(home), capsys=capsys)
    assert (status, stderr) == (1, "")
    lines = stdout.splitlines()
    assert len(lines) == 4
    assert lines[0] == f"{NAME}: purchase occurs within 30 days"
    assert lines[2:] == [newest, f"store: {store}"]  # lines[1]: test_show_without_a_date_when_nothing_was_published
    status, stdout, _ = _main("show", instance, "--as-of", AS_OF, *_at(home), capsys=capsys)
    assert status == 1
    assert stdout.splitlines()[1:] == [f"no run of {NAME} as of {AS_OF} was published", newest, f"store: {store}"]

    note = f"; newest attempt: {newest.removeprefix('newest attempt: ')}\n"
    out = tmp_path / "high.csv"
    status, _, stderr = _main("segment", "export", instance, "high", "--out", str(out), *_at(home), capsys=capsys)
    assert (status, stderr) == (2, f"error: {NAME} has no published run in {store}{note}")
    status, _, stderr = _main("report", instance, *_at(home), capsys=capsys)
    assert (status, stderr) == (2, f"error: {NAME} has no published run in {store}{note}")
    assert not out.exists()

    # no run and no attempt at all: no store yet, then a store without a run of the instance
    status, stdout, stderr = _main("show", instance, *_at(tmp_path / "nothing"), capsys=capsys)
    assert (status, stdout) == (2, "")
    assert stderr == f"error: no profile store at {tmp_path / 'nothing' / 'store.sqlite'}: {NO_STORE}\n"
    _store_of(tmp_path / "nothing").count_rows(NAME)  # made by a writer, as a run of another instance would
    status, stdout, stderr = _main("show", instance, *_at(tmp_path / "nothing"), capsys=capsys)
    assert (status, stdout) == (2, "")
    assert stderr == f"{NAME} has no runs in SQLiteStore('{tmp_path / 'nothing' / 'store.sqlite'}')\n"


def test_show_without_a_date_when_nothing_was_published(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from customer_ai.store import SQLiteStore

    instance = tmp_path / "unit.yaml"
    instance.write_text(yaml.safe_dump(BASE_SPEC))
    store = SQLiteStore(tmp_path / "store.sqlite")
    store.record_attempt("unit", "2024-03-01", {"attempt": POOR, "step": "quality_gate", "status": "poor"})
    status, stdout, _ = _main("show", str(instance), *_at(tmp_path), capsys=capsys)
    assert status == 1
    assert stdout.splitlines()[1] == "no run of unit was published yet"
    assert stdout.splitlines()[2].startswith("newest attempt: as of 2024-03-01, attempt ")


# --- segment export and show --as-of on a store filled directly (no training) ------------------------------------

HOSTILE_IDS = ["a\rb", "c\nd", 'quote"d', "comma,id", "semi;--", "007", "12346.0", "NA", "null", "ünï 🚀", "=1+1"]


def _factor(feature: str, text: str, contribution: float, importance: str = "low") -> dict:
    effect = "raises the chance" if contribution > 0 else "lowers the chance"
    return {
        "feature": feature,
        "description": text,
        "value": 1,
        "contribution": contribution,
        "importance": importance,
        "effect": effect,
    }


def _stored_scores(ids: list[str], version: str) -> pd.DataFrame:
    probability = [round(0.95 - 0.05 * i, 2) for i in range(len(ids))]
    return pd.DataFrame(
        {
            "profile_id": ids,
            "probability": probability,
            "score": [round(p * 100) for p in probability],
            "percentile": [100 - 5 * i for i in range(len(ids))],
            "bucket": ["high" if p >= 0.75 else "medium" for p in probability],
            "propensity": "conversion",
            "model_version": version,
            "factors": [
                [
                    _factor("recency", f'last seen {i}\r\n days ago, "quoted"', 0.1 * (i + 1), "high"),
                    _factor("count_30d", "«3» purchases; =SUM(A1)", -0.05 * i),
                ][: i % 3]
                for i in range(len(ids))
            ],
        }
    )


POOR = "af-00000000aa"  # the attempt of the filled store that stopped at the quality gate


def _fill(store, folder: Path, address: str) -> dict:  # noqa: ANN001 - either store
    """Write an instance file with a named segment into ``folder``; fill ``store`` with two published runs and a
    date with only a poor attempt, no artifacts; return what the tests need."""
    from customer_ai.segments import segment_members
    from customer_ai.spec import load_spec

    data = {
        **BASE_SPEC,
        "output": {"factors": 2},
        "segments": [
            {"name": "top", "where": [{"field": "percentile", "op": "gte", "value": 60}]},
            {"name": "nobody", "where": [{"field": "score", "op": "gt", "value": 99}]},
        ],
    }
    instance = folder / "unit.yaml"
    instance.write_text(yaml.safe_dump(data, allow_unicode=True))
    spec = load_spec(instance)
    # the first run sealed its folder under its attempt's id; the second one was published before run folders had
    # names (its folder is the date's)
    published = (("2024-01-01", HOSTILE_IDS, "v1", "cli-0123456789"), ("2024-02-01", ["p1", "p2", "p3"], "v2", ""))
    for as_of, ids, version, run_id in published:
        written = _stored_scores(ids, version)
        store.write_run(
            "unit",
            as_of,
            written,
            {"model_version": version, "status": "ok", "reason": "fine", "run_id": run_id, "attempt": run_id},
            segments=segment_members(written, spec),
        )
    for status, step in (("started", "validate_events"), ("poor", "quality_gate")):
        reason = "AUC 0.5 < 0.65" if status == "poor" else "started by the scheduler"
        store.record_attempt(
            "unit",
            "2024-03-01",
            {"attempt": POOR, "step": step, "status": status, "reason": reason, "model_version": "v3"},
        )
    options = ["--home", str(folder / "home"), "--store", address]
    (folder / "folder.csv").mkdir()
    return {"instance": str(instance), "store": store, "options": options, "folder": folder}


@pytest.fixture
def filled(tmp_path: Path) -> dict:
    """An instance file with a named segment and a store holding two published runs and a poor attempt."""
    from customer_ai.store import SQLiteStore

    store = SQLiteStore(tmp_path / "store.sqlite")
    return _fill(store, tmp_path, f"sqlite:///{store.path}")


@contextmanager
def _pg_schema() -> Iterator[str]:
    """Yield the name of a fresh PostgreSQL schema for a store; drop it at the end."""
    import psycopg2
    from psycopg2 import sql

    schema = f"test_cli_{secrets.token_hex(4)}"
    try:
        yield schema
    finally:
        connection = psycopg2.connect(PG_DSN, connect_timeout=5)
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        finally:
            connection.close()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_segment_export_round_trips_exactly(filled: dict, capsys: pytest.CaptureFixture, suffix: str) -> None:
    from customer_ai.segments import flat_factors, without_unpredicted

    out = filled["folder"] / "out" / f"top{suffix}"
    args = ("segment", "export", filled["instance"], "top", "--as-of", "2024-01-01", "--out", str(out))
    raw = ["--raw-csv"] if suffix == ".csv" else []  # exactly: "=1+1" is one of the ids
    status, stdout, _ = _main(*args, *raw, *filled["options"], capsys=capsys)
    assert status == 0
    assert stdout == f"unit segment top as of 2024-01-01: 9 profiles written to {out}\n"
    expected = flat_factors(without_unpredicted(filled["store"].read_segment("unit", "top", "2024-01-01")), 2)
    assert expected["profile_id"].tolist() == HOSTILE_IDS[:9]  # percentile >= 60, by probability
    assert expected.columns.tolist()[9:] == [
        f"factor_{i}_{c}" for i in (1, 2) for c in ("name", "text", "contribution", "importance", "effect")
    ]
    if suffix == ".csv":
        text = {c: "str" for c, kind in expected.dtypes.astype(str).items() if kind == "str"}
        back = pd.read_csv(out, dtype=text, keep_default_na=False, na_values=[""], encoding="utf-8")
        assert out.read_text(encoding="utf-8").startswith('"instance","profile_id","as_of","probability"')
    else:
        back = pd.read_parquet(out)
    pd.testing.assert_frame_equal(back, expected, check_exact=True)
    assert back.loc[1, "factor_1_text"] == 'last seen 1\r\n days ago, "quoted"'
    assert pd.isna(back.loc[0, "factor_1_name"])  # a profile without factors: empty cells


def test_segment_export_defaults_to_the_newest_ok_run(filled: dict, capsys: pytest.CaptureFixture) -> None:
    out = filled["folder"] / "high.parquet"
    status, stdout, _ = _main(
        "segment", "export", filled["instance"], "high", "--out", str(out), *filled["options"], capsys=capsys
    )
    assert status == 0
    assert stdout.startswith("unit segment high as of 2024-02-01: 3 profiles written")
    assert pd.read_parquet(out)["profile_id"].tolist() == ["p1", "p2", "p3"]


def test_an_empty_segment_is_exported_with_a_warning(filled: dict, capsys: pytest.CaptureFixture) -> None:
    out = filled["folder"] / "nobody.csv"
    status, stdout, stderr = _main(
        "segment", "export", filled["instance"], "nobody", "--out", str(out), *filled["options"], capsys=capsys
    )
    assert status == 0
    assert "0 profiles written" in stdout
    assert "warning: segment nobody has no member in the run of unit as of 2024-02-01" in stderr
    assert pd.read_csv(out).empty
    assert pd.read_csv(out).columns.tolist()[-1] == "factor_2_effect"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["top-10"], "error: unknown segment 'top-10' of unit as of 2024-02-01; known: low, medium, high, top, nobody"),
        (["evil\x1b[2J"], "error: unknown segment 'evil\\x1b[2J' of unit as of 2024-02-01"),
        (["top", "--as-of", "2023-12-01"], "error: unit has no run as of 2023-12-01 in SQLiteStore("),
        # a date with only a poor attempt: nothing published (the whole message: test_a_date_with_only_a_poor_...)
        (["top", "--as-of", "2024-03-01"], "error: no run of unit as of 2024-03-01 was published in SQLiteStore("),
        (["top", "--as-of", "March"], "error: --as-of: not a date: 'March'"),
        (["top", "--out", "{folder}/top.xlsx"], "use a .csv or .parquet file name"),
        (["top", "--out", "/proc/no/top.csv"], "error: --out /proc/no/top.csv: cannot write there"),
        (
            ["top", "--out", "{folder}/folder.csv"],
            "folder.csv: is a folder; give a file name ending in .csv or .parquet",
        ),
    ],
)
def test_segment_export_errors(filled: dict, capsys: pytest.CaptureFixture, args: list[str], message: str) -> None:
    args = [a.format(folder=filled["folder"]) for a in args]
    out = [] if "--out" in args else ["--out", str(filled["folder"] / "x.csv")]
    status, stdout, stderr = _main(
        "segment", "export", filled["instance"], *args, *out, *filled["options"], capsys=capsys
    )
    assert status == 2
    assert message in stderr
    assert "\x1b" not in stderr
    assert stdout == ""
    assert not (filled["folder"] / "x.csv").exists()


def test_segment_export_without_any_ok_run(tmp_path: Path, filled: dict, capsys: pytest.CaptureFixture) -> None:
    from customer_ai.store import SQLiteStore

    options = ["--home", str(tmp_path), "--store", f"sqlite:///{tmp_path / 'empty.sqlite'}"]
    SQLiteStore(tmp_path / "empty.sqlite").count_rows("unit")  # a store without a run of the instance
    status, _, stderr = _main(
        "segment", "export", filled["instance"], "high", "--out", str(tmp_path / "h.csv"), *options, capsys=capsys
    )
    assert status == 2
    assert stderr == f"error: unit has no published run in SQLiteStore('{tmp_path / 'empty.sqlite'}'): run it first\n"


# --- issue 18: a segment export opened in a spreadsheet runs no formula ------------------------------------------

FORMULA_IDS = ["=cmd|' /C calc'!A0", "+1+1", "@SUM(A1)", "-2+3", "\t=1+1", "\r=1+1", "12346", "'=quoted"]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@pytest.fixture
def formulas(tmp_path: Path) -> dict:
    """A store with one published run whose ids, model version and factor texts start like formulas."""
    from customer_ai.segments import segment_members
    from customer_ai.spec import load_spec
    from customer_ai.store import SQLiteStore

    instance = tmp_path / "unit.yaml"
    instance.write_text(yaml.safe_dump({**BASE_SPEC, "output": {"factors": 2}}))
    scores = _stored_scores(FORMULA_IDS, "@v1").assign(bucket="high")
    scores["factors"] = [
        [_factor('=HYPERLINK("http://x")', f"+{i} purchases", -0.5 * (i + 1), "@high"), _factor("b", "-1 day", 0.25)]
        for i in range(len(FORMULA_IDS))
    ]
    store = SQLiteStore(tmp_path / "store.sqlite")
    store.write_run(
        "unit",
        "2024-01-01",
        scores,
        {"model_version": "@v1", "status": "ok", "reason": "fine"},
        segments=segment_members(scores, load_spec(instance)),
    )
    options = ["--home", str(tmp_path / "home"), "--store", f"sqlite:///{store.path}"]
    return {"instance": str(instance), "store": store, "options": options, "folder": tmp_path}


def _csv_cells(path: Path) -> list[list]:
    """Read a CSV as a spreadsheet would see it: quoted cells are text, unquoted ones numbers (floats)."""
    with path.open(newline="", encoding="utf-8") as stream:
        return list(csv.reader(stream, quoting=csv.QUOTE_NONNUMERIC))


def test_a_segment_export_for_a_spreadsheet_runs_no_formula(formulas: dict, capsys: pytest.CaptureFixture) -> None:
    # before: "=cmd|' /C calc'!A0", "+1+1", "@SUM(A1)", ... were written as they are, and a spreadsheet ran them
    from customer_ai.segments import flat_factors, without_unpredicted

    expected = flat_factors(without_unpredicted(formulas["store"].read_segment("unit", "high", "2024-01-01")), 2)
    out = formulas["folder"] / "high.csv"
    args = ("segment", "export", formulas["instance"], "high", "--out", str(out), *formulas["options"])
    status, stdout, stderr = _main(*args, capsys=capsys)
    assert status == 0
    assert stdout == f"unit segment high as of 2024-01-01: 8 profiles written to {out}\n"
    # per profile its model version, its first factor's name, text and importance, its second factor's text;
    # and 6 of the 8 ids
    assert stderr == (
        "note: 46 text cells start with =, +, -, @, a tab or a carriage return: written with a ' in front so that a "
        "spreadsheet shows them as text instead of running them (--raw-csv writes them exactly)\n"
    )
    header, *rows = _csv_cells(out)
    assert header == expected.columns.tolist()
    assert len(rows) == 8
    numbers = {c for c, kind in expected.dtypes.astype(str).items() if kind != "str"}
    assert numbers == {"probability", "score", "percentile", "factor_1_contribution", "factor_2_contribution"}
    for row, (_, want) in zip(rows, expected.iterrows(), strict=True):
        for column, cell in zip(header, row, strict=True):
            if column in numbers:
                assert cell == float(want[column]), column  # unquoted: a number, never prefixed
            else:
                text = str(want[column])
                assert cell == ("'" + text if text.startswith(FORMULA_STARTS) else text), (column, cell)
    assert [r[header.index("profile_id")] for r in rows] == [
        "'=cmd|' /C calc'!A0",
        "'+1+1",
        "'@SUM(A1)",
        "'-2+3",
        "'\t=1+1",
        "'\r=1+1",
        "12346",
        "'=quoted",
    ]
    assert rows[3][header.index("factor_1_contribution")] == -2.0  # a negative contribution stays a number
    assert rows[0][header.index("factor_1_text")] == "'+0 purchases"


def test_raw_csv_and_parquet_segment_exports_keep_every_cell_exactly(
    formulas: dict, capsys: pytest.CaptureFixture
) -> None:
    from customer_ai.artifacts import write_frame
    from customer_ai.cli import _write_scores
    from customer_ai.segments import flat_factors, without_unpredicted

    expected = flat_factors(without_unpredicted(formulas["store"].read_segment("unit", "high", "2024-01-01")), 2)
    for name, more in (("raw.csv", ["--raw-csv"]), ("exact.parquet", [])):
        out = formulas["folder"] / name
        args = ("segment", "export", formulas["instance"], "high", "--out", str(out), *more, *formulas["options"])
        status, stdout, stderr = _main(*args, capsys=capsys)
        assert (status, stderr) == (0, "")
        assert stdout == f"unit segment high as of 2024-01-01: 8 profiles written to {out}\n"
        if out.suffix == ".csv":
            header, *rows = _csv_cells(out)
            assert [r[header.index("profile_id")] for r in rows] == FORMULA_IDS
            text = {c: "str" for c, kind in expected.dtypes.astype(str).items() if kind == "str"}
            back = pd.read_csv(out, dtype=text, keep_default_na=False, na_values=[""], encoding="utf-8")
        else:
            back = pd.read_parquet(out)
        pd.testing.assert_frame_equal(back, expected, check_exact=True)
    # --raw-csv is for a CSV file only: a Parquet file is always exact
    out = formulas["folder"] / "x.parquet"
    args = ("segment", "export", formulas["instance"], "high", "--out", str(out), "--raw-csv", *formulas["options"])
    status, stdout, stderr = _main(*args, capsys=capsys)
    assert (status, stdout) == (2, "")
    assert stderr == f"error: --raw-csv: only for a .csv file, not {out} (a Parquet file is always written exactly)\n"
    assert not out.exists()
    # run --scores-out is the file programs read: exact, as documented
    scores = formulas["store"].read_segment("unit", "high", "2024-01-01")
    run_folder = formulas["folder"] / "run"
    write_frame(run_folder / "scores.parquet", scores)
    _write_scores(run_folder, formulas["folder"] / "scores.csv")
    back = pd.read_csv(formulas["folder"] / "scores.csv", dtype={"profile_id": str})
    assert back["profile_id"].tolist() == FORMULA_IDS


def test_show_as_of_a_past_run(filled: dict) -> None:
    # before: show refused any date but the latest run's
    from customer_ai.artifacts import write_json

    def show(*more: str) -> subprocess.CompletedProcess:
        return _cli("show", filled["instance"], *more, *filled["options"], home=filled["folder"])

    dates = filled["folder"] / "home" / "artifacts" / "unit"
    store = f"store: SQLiteStore('{filled['folder'] / 'store.sqlite'}')"
    folder = dates / "2024-01-01" / "cli-0123456789"  # the folder the run row names
    meta = {"goal": "order occurs within 30 days", "spec_hash": "0123456789abcdef", "scored_profiles": 11}
    write_json(folder / "metadata.json", meta | {"buckets": {"low": 0, "medium": 7, "high": 4}})
    shown = show("--as-of", "2024-01-01", "--top", "2")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == "unit: order occurs within 30 days"  # the goal that run scored, from its metadata
    assert lines[1] == "run as of 2024-01-01, model v1: ok: fine"
    assert lines[2] == "quality: unknown: its ranking was not measured on held-out profiles"  # no lift in its row
    assert lines[3].startswith("note: this run scored another definition of unit")
    # a run from before bucket rules were kept: the instance's thresholds on the score, as then
    assert lines[4] == (
        "scored 11 profiles (low 0, medium 7, high 4); buckets by score: high from 75, medium from 25, low below"
    )
    assert lines[5] == f"artifacts: {folder}"
    assert lines[6] == store  # that date's newest attempt is this run's publish: not repeated
    assert lines[7] == "top 2 profiles:"
    assert "a\\rb  probability 0.950" in lines[8]  # that run's profiles, from the history
    assert "c\\nd  probability 0.900" in lines[9]

    ok = show("--as-of", "2024-02-01")
    assert ok.returncode == 0, ok.stderr
    lines = ok.stdout.splitlines()
    assert lines[0] == "unit: purchase occurs within 30 days"  # no metadata: the file's goal
    assert lines[1] == "latest run as of 2024-02-01, model v2: ok: fine"  # the newest published run
    assert lines[2].startswith("quality: ")
    assert lines[3] == f"artifacts: {dates / '2024-02-01'}"  # published before run folders had names
    assert lines[4] == store
    assert "p1  probability 0.950" in ok.stdout

    # the latest published run, and the newer attempt that published nothing
    latest = show("--top", "0")
    assert latest.returncode == 0, latest.stderr
    (poor,) = filled["store"].read_attempts("unit", "2024-03-01").tail(1).to_dict("records")
    assert latest.stdout.splitlines() == [
        "unit: purchase occurs within 30 days",
        "latest run as of 2024-02-01, model v2: ok: fine",
        "quality: unknown: its ranking was not measured on held-out profiles",
        f"artifacts: {dates / '2024-02-01'}",
        f"newest attempt: as of 2024-03-01, attempt {POOR}: poor at quality_gate on {poor['recorded_at']}: "
        "AUC 0.5 < 0.65",
        store,
    ]

    missing = show("--as-of", "2024-01-15")
    assert missing.returncode == 2
    assert missing.stdout == ""
    assert "unit has no run as of 2024-01-15 in SQLiteStore(" in missing.stderr
    assert missing.stderr.rstrip().endswith("(published runs as of: 2024-01-01, 2024-02-01)")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_date_with_only_a_poor_attempt_has_no_run_to_show_or_export(
    backend: str, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # issue 17, case 3 at the command: a date whose only attempt stopped at the quality gate published nothing;
    # before: its poor run row was shown as the date's run
    from customer_ai.store import PostgresStore, SQLiteStore

    with _pg_schema() as schema:
        if backend == "sqlite":
            store = SQLiteStore(tmp_path / "store.sqlite")
            filled = _fill(store, tmp_path, f"sqlite:///{store.path}")
        else:
            monkeypatch.setenv("CUSTOMER_AI_STORE_SCHEMA", schema)
            store = PostgresStore(PG_DSN, schema)
            filled = _fill(store, tmp_path, PG_DSN)
        (poor,) = store.read_attempts("unit", "2024-03-01").tail(1).to_dict("records")
        assert (poor["attempt"], poor["status"]) == (POOR, "poor")
        attempt = f"as of 2024-03-01, attempt {POOR}: poor at quality_gate on {poor['recorded_at']}: AUC 0.5 < 0.65"
        status, stdout, stderr = _main(
            "show", filled["instance"], "--as-of", "2024-03-01", *filled["options"], capsys=capsys
        )
        assert (status, stderr) == (1, "")
        assert stdout.splitlines() == [
            "unit: purchase occurs within 30 days",
            "no run of unit as of 2024-03-01 was published",
            f"newest attempt: {attempt}",
            f"store: {store}",
        ]
        out = tmp_path / "x.csv"
        args = ("segment", "export", filled["instance"], "top", "--as-of", "2024-03-01", "--out", str(out))
        status, stdout, stderr = _main(*args, *filled["options"], capsys=capsys)
        assert (status, stdout) == (2, "")
        assert stderr == f"error: no run of unit as of 2024-03-01 was published in {store}; newest attempt: {attempt}\n"
        assert not out.exists()
        # the date before is still there to export
        status, stdout, _ = _main(*args[:5], "2024-02-01", *args[6:], *filled["options"], capsys=capsys)
        assert (status, stdout) == (0, f"unit segment top as of 2024-02-01: 3 profiles written to {out}\n")
        assert pd.read_csv(out, dtype={"profile_id": str})["profile_id"].tolist() == ["p1", "p2", "p3"]


# --- issue 18: broken model folders, the home folder, dates and the machine ------------------------------------


def _cut_in_half(data: bytes) -> bytes:
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("model.txt", _cut_in_half),  # before: every later run of the date died in LightGBM (exit 1 or SIGSEGV)
        ("model.json", lambda data: b"\x00garbage" + data),  # before: json.JSONDecodeError, exit 1
        ("evaluation.json", _cut_in_half),  # before: json.JSONDecodeError, exit 1
    ],
)
def test_a_corrupted_model_file_is_moved_aside_and_the_run_retrains(
    first_run: tuple, workspace: Path, tmp_path: Path, name: str, change
) -> None:  # noqa: ANN001 - bytes -> bytes
    home = _copy_home(first_run[1], tmp_path / "home")
    row, _ = _published(home)
    folder = home / "models" / NAME / row["model_version"]
    good = {p.name: p.read_bytes() for p in folder.iterdir()}
    (folder / name).write_bytes(change(good[name]))
    result = _cli("run", str(workspace / "instance.yaml"), "--as-of", AS_OF, "--top", "0", home=home)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    (aside,) = [p for p in folder.parent.iterdir() if p.name != folder.name]
    assert re.fullmatch(rf"{row['model_version']}\.broken-[0-9]{{8}}T[0-9]{{6}}Z", aside.name)
    assert (aside / name).read_bytes() == change(good[name])  # kept for inspection
    from customer_ai.artifacts import model_problem

    problem = model_problem(aside, version=folder.name).split(": ", 1)[1]  # what is wrong with the file
    said = (
        f"model {row['model_version']} is broken: {folder / name}: {problem}; its folder was moved aside to {aside} "
        "(kept for inspection, never used again)"
    )
    assert said in result.stderr
    assert {p.name: p.read_bytes() for p in folder.iterdir()}.keys() == good.keys()  # trained and stored afresh
    assert (folder / "model.txt").read_bytes() == good["model.txt"]  # the same data gives the same model
    new, _ = _published(home)
    assert new["run_id"] != row["run_id"]
    assert new["model_version"] == row["model_version"]
    again = _cli("run", str(workspace / "instance.yaml"), "--as-of", AS_OF, "--top", "0", home=home)
    assert again.returncode == 0, again.stderr
    assert "is broken" not in again.stderr
    assert len(list(folder.parent.iterdir())) == 2  # the new folder is whole: nothing more is moved aside


OUTSIDE = (
    "is outside the as-of dates customer-ai supports, 1800-01-01 to 2199-12-31 (every window around the date, up "
    "to 90 years back and 10 years ahead, must lie within 1677-09-21 .. 2262-04-11, the timestamps pandas holds)"
)


@pytest.mark.parametrize("date", ["0001-01-01", "1677-09-21", "2262-04-12", "9999-12-31"])
@pytest.mark.parametrize(
    "args",
    [
        ["run", "{instance}", "--as-of", "{date}", "--home", "{home}"],
        ["show", "{instance}", "--as-of", "{date}", "--home", "{home}"],
        ["report", "{instance}", "--as-of", "{date}", "--home", "{home}"],
        ["explain", "{instance}", "12346", "--as-of", "{date}", "--home", "{home}"],
        ["segment", "export", "{instance}", "high", "--out", "{out}", "--as-of", "{date}", "--home", "{home}"],
        ["backtest", "{instance}", "--as-of", "2011-10-01", "--as-of", "{date}"],
    ],
    ids=["run", "show", "report", "explain", "segment-export", "backtest"],
)
def test_an_as_of_date_outside_the_supported_range_is_bad_input(
    first_run: tuple, workspace: Path, capsys: pytest.CaptureFixture, args: list[str], date: str
) -> None:
    # before: run: "strftime not yet supported" or "as-of date '1-01-01' is not a date" tracebacks (exit 1);
    # show, report, segment export: "no run as of 1-01-01"; backtest: pandas' strftime message
    values = {"instance": str(workspace / "instance.yaml"), "date": date, "out": workspace / "never.csv"}
    status, stdout, stderr = _main(*[a.format(home=first_run[1], **values) for a in args], capsys=capsys)
    assert (status, stdout, stderr) == (2, "", f"error: --as-of: '{date}' {OUTSIDE}\n")
    assert not (workspace / "never.csv").exists()


def test_a_home_that_is_a_file_is_bad_input(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # before: FileExistsError (or NotADirectoryError) tracebacks, exit 1
    home = tmp_path / "home.txt"
    home.write_text("not a folder\n")
    instance = str(workspace / "instance.yaml")
    is_file = f"{home}: is a file, not a folder (the home holds the artifacts and the store)"
    for args in (
        ["run", instance, "--as-of", AS_OF],
        ["show", instance],
        ["report", instance],
        ["explain", instance, "12346"],
        ["segment", "export", instance, "high", "--out", str(tmp_path / "x.csv")],
    ):
        given = _main(*args, "--home", str(home), capsys=capsys)
        assert given == (2, "", f"error: --home {is_file}\n"), args
        monkeypatch.setenv("CUSTOMER_AI_HOME", str(home))
        assert _main(*args, capsys=capsys) == (2, "", f"error: CUSTOMER_AI_HOME {is_file}\n"), args
        monkeypatch.delenv("CUSTOMER_AI_HOME")
    under = _main("run", instance, "--as-of", AS_OF, "--home", str(home / "sub"), capsys=capsys)
    assert under == (
        2,
        "",
        f"error: --home {home / 'sub'}: lies under {home}, which is a file, not a folder (the home holds the "
        "artifacts and the store)\n",
    )
    assert home.read_text() == "not a folder\n"
    assert [p.name for p in tmp_path.iterdir()] == ["home.txt"]  # nothing created


def _runs_and_scores(home: Path, store: Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    from customer_ai.store import SQLiteStore

    opened = SQLiteStore(store or home / "store.sqlite")
    return opened.read_runs(NAME), opened.read_scores(NAME)


def test_a_read_only_home_fails_run_and_report_with_exit_3_and_keeps_the_previous_run(
    first_run: tuple, workspace: Path, tmp_path: Path
) -> None:
    # before: OSError tracebacks (exit 1): "[Errno 30] Read-only file system: '.../.lock'" for run, and for report
    # the same on its temporary file
    from faults import read_only

    home = _copy_home(first_run[1], tmp_path / "home")
    runs, scores = _runs_and_scores(home)
    row, folder = _published(home)
    report = (folder / "report.html").read_bytes()
    instance = str(workspace / "instance.yaml")
    with read_only(home) as (text, code):
        ran = _cli("run", instance, "--as-of", LATER, "--top", "0", home=home)
        reported = _cli("report", instance, home=home)
        shown = _cli("show", instance, "--top", "0", home=home)
    read_only_fs = ("write", "the file system is mounted read-only: make it writable")
    verb, fix = read_only_fs if code == "EROFS" else ("use", "this user lacks the permission: grant it")
    assert (ran.returncode, ran.stdout) == (3, "")
    assert ran.stderr.splitlines()[-1] == (  # the run lock is the first thing a run writes, in the store
        f"error: the profile store {home}/store.sqlite cannot be written: attempt to write a readonly database (the "
        "file or its folder is read-only, or belongs to another user); nothing was written: make it writable or "
        "give another --home or --store, then run again"
    )
    assert "validating events" not in ran.stderr  # nothing was done
    assert (reported.returncode, reported.stdout) == (3, "")
    assert reported.stderr.splitlines()[-1] == (  # the file the user knows, not the one beside it
        f"error: cannot {verb} {folder}/report.html: {text} ({code}); {fix}, or write the report elsewhere with "
        "--out FILE, then run again"
    )
    for result in (ran, reported):
        assert "Traceback" not in result.stderr
    assert shown.returncode == 0, shown.stderr
    assert f"latest run as of {AS_OF}, model {row['model_version']}: ok" in shown.stdout
    # nothing published, nothing changed: the previous run is current
    after_runs, after_scores = _runs_and_scores(home)
    pd.testing.assert_frame_equal(after_runs, runs)
    pd.testing.assert_frame_equal(after_scores, scores)
    assert (folder / "report.html").read_bytes() == report
    assert sorted(p.name for p in (home / "artifacts" / NAME).iterdir()) == [AS_OF]


@pytest.mark.parametrize("fault", ["full disk", "file size limit"])
def test_a_full_disk_fails_the_run_with_exit_3_and_keeps_the_previous_run(
    first_run: tuple, workspace: Path, tmp_path: Path, fault: str
) -> None:
    # before: "OSError: [Errno 28] No space left on device" traceback (exit 1), naming no file
    from contextlib import ExitStack

    from faults import copy_tree, file_size_limit, small_disk, used_bytes

    instance = str(workspace / "instance.yaml")
    store = tmp_path / "store.sqlite"
    with ExitStack() as stack:
        if fault == "full disk":  # the home on a tmpfs with room for the previous run and 400 KB more
            shutil.copyfile(first_run[1] / "store.sqlite", store)  # the store elsewhere: its full disk is its own case
            home = stack.enter_context(small_disk(tmp_path / "home", 64 * 1024 * 1024))
            copy_tree(first_run[1] / "artifacts", home / "artifacts")
            copy_tree(first_run[1] / "models", home / "models")
            subprocess.run(["mount", "-o", f"remount,size={used_bytes(home) + 400 * 1024}", str(home)], check=True)
            limit, code, text = None, "ENOSPC", "No space left on device"
            fix = "the disk is full: free some space, then run again"
        else:  # every file the command writes is limited to 400 KB: with a fresh store, which stays smaller
            home = _copy_home(first_run[1], tmp_path / "home")
            limit, code, text = file_size_limit(400 * 1024), "EFBIG", "File too large"
            fix = "a limit on the size of files stopped the write (ulimit -f): raise it, then run again"
        runs, scores = _runs_and_scores(home, store) if store.exists() else (None, None)
        options = ["--home", str(home), "--store", f"sqlite:///{store}"]
        result = subprocess.run(
            [sys.executable, "-m", "customer_ai.cli", "run", instance, "--as-of", LATER, "--top", "0", *options],
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin"},
            cwd=ROOT,
            preexec_fn=limit,  # noqa: PLW1509 - it only lowers a limit
            check=False,
        )
        assert (result.returncode, result.stdout) == (3, ""), result.stderr[-3000:]
        assert "Traceback" not in result.stderr
        assert re.fullmatch(
            rf"error: cannot write {re.escape(str(home))}/\S+: {text} \({code}\); {re.escape(fix)}",
            result.stderr.splitlines()[-1],
        )
        # nothing published: the previous run (with a fresh store: no run) is current
        after_runs, after_scores = _runs_and_scores(home, store)
        if runs is None:
            assert after_runs.empty
        else:
            pd.testing.assert_frame_equal(after_runs, runs)
            pd.testing.assert_frame_equal(after_scores, scores)
            shown = _cli("show", instance, "--top", "0", *options, home=home)
            assert shown.returncode == 0, shown.stderr
            assert f"latest run as of {AS_OF}, model " in shown.stdout
        assert list((home / "artifacts" / NAME).glob(f"{LATER}/[!.]*")) == []  # no run folder sealed


# --- the store: no secret printed, nothing created by reading, a damaged store, a full disk (issue 18) -------------

READERS = {
    "show": ["show", "{instance}"],
    "explain": ["explain", "{instance}", "p1"],
    "segment export": ["segment", "export", "{instance}", "high", "--out", "{folder}/out/high.csv"],
    "report": ["report", "{instance}"],
    "audience list": ["audience", "list", "{instance}"],
}
COMMANDS = {"run": ["run", "{instance}", "--as-of", "2024-03-01"], **READERS}
UNSUPPORTED = "use sqlite:///path/to/file.sqlite or postgresql://user@host:port/dbname"
AMBIGUOUS = (
    "libpq ends the user and password at the first '@' before any '/', so it would read part of them as the host or "
    "the database; percent-encode '@' as %40 (and '/' as %2F) in the user or password"
)
REFUSED = "error: ambiguous PostgreSQL address 'postgresql://postgres:***@127.0.0.1:5432/x'"
PASSWORDS = [
    # (address, its password, exit status, what stderr starts with)
    ("postgresql://postgres:p@ssw0rd@127.0.0.1:5432/x", "p@ssw0rd", 2, REFUSED),
    ("postgresql://postgres:pa/ssw0rd@127.0.0.1:5432/x", "pa/ssw0rd", 2, REFUSED),
    (
        "postgresql://postgres:s3c?r#t-pw@127.0.0.1:1/x",
        "s3c?r#t-pw",
        3,
        "error: cannot connect to the PostgreSQL profile store at host=127.0.0.1 port=1 dbname=x: ",
    ),
    (
        "host=127.0.0.1 port=1 dbname=x password='q@zx 8w0rd'",
        "q@zx 8w0rd",
        2,
        f"error: unsupported store address 'host=127.0.0.1 port=1 dbname=x password=***': {UNSUPPORTED}",
    ),
]


def _command(name: str, instance: Path, folder: Path) -> list[str]:
    return [a.format(instance=instance, folder=folder) for a in COMMANDS[name]]


def _unit_instance(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "unit.yaml"
    path.write_text(yaml.safe_dump(BASE_SPEC))
    return path


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("case", PASSWORDS, ids=[p[1] for p in PASSWORDS])
def test_no_part_of_a_password_is_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture, command: str, case: tuple[str, str, int, str]
) -> None:
    # before: a raw '@' in the password printed "host=ssw0rd@127.0.0.1" twice (exit 3, after libpq's reading)
    address, password, status, says = case
    instance = _unit_instance(tmp_path)
    args = [*_command(command, instance, tmp_path), "--home", str(tmp_path / "home"), "--store", address]
    code, stdout, stderr = _main(*args, capsys=capsys)
    assert (code, stdout) == (status, "")
    assert stderr.startswith(says)
    if status == 2 and "ambiguous" in says:
        assert stderr == f"{says}: {AMBIGUOUS}\n"
    assert "Traceback" not in stderr
    output = re.sub("password", "", stdout + stderr, flags=re.IGNORECASE)  # the word itself holds "ssw"
    assert [p for p in (password[i : i + 3] for i in range(len(password) - 2)) if p in output] == []
    assert not (tmp_path / "home").exists()


def _no_schema(schema: str) -> bool:
    """Whether the schema does not exist (it is dropped if it does)."""
    import psycopg2
    from psycopg2 import sql

    connection = psycopg2.connect(PG_DSN, connect_timeout=5)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (schema,))
            missing = cursor.fetchone() == (0,)
            cursor.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
            return missing
    finally:
        connection.close()


@pytest.mark.parametrize("where", ["a mistyped address", "an empty home", "a hostile schema"])
@pytest.mark.parametrize("reader", list(READERS))
def test_readers_create_nothing_where_there_is_no_store(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, reader: str, where: str
) -> None:
    # before: show with a mistyped address made its folders and an empty store, explain on an empty home made
    # store.sqlite, a hostile CUSTOMER_AI_STORE_SCHEMA made that schema (and ran the migrations)
    from customer_ai.store import postgres_location

    monkeypatch.delenv("CUSTOMER_AI_STORE", raising=False)
    instance = _unit_instance(tmp_path / "files")
    home = tmp_path / "home"
    with _pg_schema() as base:
        schema = base + '"; DROP SCHEMA public; --'
        options = ["--home", str(home)]
        if where == "a mistyped address":
            path = tmp_path / "typo" / "dir" / "store.sqlite"
            options += ["--store", f"sqlite:///{path}"]
            message = f"no profile store at {path}: {NO_STORE}"
        elif where == "an empty home":
            message = f"no profile store at {home / 'store.sqlite'}: {NO_STORE}"
        else:
            monkeypatch.setenv("CUSTOMER_AI_STORE_SCHEMA", schema)
            options += ["--store", PG_DSN]
            message = (
                f"no profile store in schema {schema!r} of the PostgreSQL database at {postgres_location(PG_DSN)}: "
                "nothing has been run with this store yet (or its address or schema is mistyped)"
            )
        code, stdout, stderr = _main(*_command(reader, instance, tmp_path), *options, capsys=capsys)
        assert (code, stdout, stderr) == (2, "", f"error: {message}\n")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["files"]  # no folder, no file
        assert _no_schema(schema)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_readers_of_a_store_that_needs_a_migration_say_so_and_change_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    # before: the first read of any reader migrated the store
    from test_store import old_sqlite_store
    from test_store_postgres import old_postgres_store, schema_rows

    from customer_ai.store import postgres_location

    instance = _unit_instance(tmp_path / "files")
    hint = (
        "migrate it with `customer-ai migrate` and the same --home or --store (a run of any instance migrates it "
        "too); nothing was changed"
    )
    with _pg_schema() as schema:
        if backend == "sqlite":
            path = tmp_path / "home" / "store.sqlite"
            path.parent.mkdir()
            old_sqlite_store(path)
            options, store = ["--home", str(path.parent)], f"SQLiteStore({str(path)!r})"
            message = (
                f"the profile store {path} was written by an earlier version of customer-ai (SQLite user_version "
                f"0; this version reads 5): {hint}"
            )
            versions = "0 to schema version 5"

            def contents() -> object:
                return path.read_bytes()
        else:
            old_postgres_store(schema)
            monkeypatch.setenv("CUSTOMER_AI_STORE_SCHEMA", schema)
            options, store = ["--home", str(tmp_path / "home"), "--store", PG_DSN], f"PostgresStore({PG_DSN!r}, "
            store += f"schema={schema!r})"
            message = (
                f"the profile store in schema {schema!r} of the PostgreSQL database at {postgres_location(PG_DSN)} "
                f"was written by an earlier version of customer-ai (schema version 4; this version reads 8): {hint}"
            )
            versions = "4 to schema version 8"

            def contents() -> object:
                return schema_rows(schema)

        before = contents()
        for reader in READERS:
            code, stdout, stderr = _main(*_command(reader, instance, tmp_path), *options, capsys=capsys)
            assert (code, stdout, stderr) == (2, "", f"error: {message}\n")
        assert contents() == before
        assert not (tmp_path / "out").exists()
        # the documented step migrates it; then the readers read it
        code, stdout, stderr = _main("migrate", *options, capsys=capsys)
        assert (code, stdout) == (0, f"{store}: migrated from schema version {versions}\n")
        code, stdout, _ = _main("migrate", *options, capsys=capsys)
        assert (code, stdout) == (0, f"{store}: already at schema version {versions[-1]}\n")
        code, stdout, _ = _main("show", str(instance), "--top", "1", *options, capsys=capsys)
        assert code == 0
        assert stdout.splitlines()[1] == "latest run as of 2024-02-01, model v2: ok: " + (
            "published before attempts were recorded; its run row had been replaced by a later attempt that published "
            "nothing (kept in the attempts)"
        )


def _cut_short(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def _overwritten(path: Path) -> None:
    size = path.stat().st_size
    with path.open("r+b") as stream:  # every page but the first (the schema)
        stream.seek(4096)
        stream.write(bytes((i * 7919 + 13) % 256 for i in range(size - 4096)))


@pytest.mark.parametrize("damage", [_cut_short, _overwritten])
def test_a_damaged_store_is_named_before_any_work(filled: dict, capsys: pytest.CaptureFixture, damage) -> None:  # noqa: ANN001
    # before: noticed only at the write after the whole training (a traceback); readers: a traceback, exit 1
    path = filled["folder"] / "store.sqlite"
    damage(path)
    damaged = path.read_bytes()
    said = set()
    for command in COMMANDS:
        args = _command(command, Path(filled["instance"]), filled["folder"])
        code, stdout, stderr = _main(*args, *filled["options"], capsys=capsys)
        assert (code, stdout) == (3, ""), stderr
        said.add(stderr)
    (message,) = said  # every command says the same
    assert message.startswith(f"error: the profile store {path} is damaged: ")
    assert message.endswith(
        "; restore it from a backup, or move it aside (the next run then starts a new, empty store)\n"
    )
    if damage is _cut_short:
        size = len(damaged) * 2
        assert f": it is cut short: {len(damaged):,} bytes where its header says {size:,} " in message
    assert "Traceback" not in message
    assert path.read_bytes() == damaged
    assert not (filled["folder"] / "out").exists()


FULL_AT_THE_PUBLISH = """
import sys

from customer_ai.cli import main
from customer_ai.store.sqlite import _SQLiteWriter

replace_history = _SQLiteWriter.replace_history


def full(self):  # the file cannot grow from the first row the publish transaction writes: a full disk
    pages = self.connection.execute("PRAGMA page_count").fetchone()[0]
    self.connection.execute(f"PRAGMA max_page_count = {pages}")
    replace_history(self)


_SQLiteWriter.replace_history = full
sys.exit(main(sys.argv[1:]))
"""


def test_a_full_disk_at_the_publish_exits_3_and_keeps_the_previous_run(first_run: tuple, workspace: Path) -> None:
    # before: sqlite3.OperationalError "database or disk is full" after the whole run, a traceback, exit 1
    _, published_home = first_run
    home = workspace / "home-full"
    shutil.copytree(published_home, home)
    store = _store_of(home)
    shown = _cli("show", str(workspace / "instance.yaml"), home=home)
    before = [store.read_runs(NAME), store.read_scores(NAME), store.read_scores(NAME, as_of=AS_OF)]
    before.append(store.read_segment(NAME, "high"))
    script = workspace / "full.py"
    script.write_text(FULL_AT_THE_PUBLISH)
    result = subprocess.run(
        [sys.executable, str(script), "run", str(workspace / "instance.yaml"), "--as-of", LATER],
        capture_output=True,
        text=True,
        env={"CUSTOMER_AI_HOME": str(home), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 3, result.stderr
    assert result.stderr.endswith(
        f"error: the profile store {home / 'store.sqlite'} cannot grow: database or disk is full; nothing was "
        "written: free some space, then run again\n"
    )
    assert "Traceback" not in result.stderr
    after = [store.read_runs(NAME), store.read_scores(NAME), store.read_scores(NAME, as_of=AS_OF)]
    after.append(store.read_segment(NAME, "high"))
    for old, new in zip(before, after, strict=True):
        pd.testing.assert_frame_equal(old, new)
    assert store.read_scores(NAME, as_of=LATER).empty
    assert store.read_segment(NAME, "high", as_of=LATER).empty
    failed = store.latest_attempt(NAME)
    assert (failed["step"], failed["status"]) == ("publish", "failed")
    assert failed["reason"].startswith("StoreUnavailableError: the profile store ")
    again = _cli("show", str(workspace / "instance.yaml"), home=home)
    assert again.returncode == 0
    # the same run as before; only the attempt line is new
    assert [line for line in again.stdout.splitlines() if not line.startswith("newest attempt: ")] == (
        shown.stdout.splitlines()
    )


@pytest.mark.parametrize(
    ("reader", "status"),
    [
        (["show", "{instance}"], 0),
        (["explain", "{instance}", "nobody"], 2),
        (["report", "{instance}", "--as-of", "2023-12-01"], 2),
    ],
)
def test_a_password_with_a_question_mark_is_never_printed_by_a_reader_that_reaches_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, reader: list[str], status: int
) -> None:
    # before: the password of 'postgres:s3c?r#t-pw@...' was printed whole in "store: PostgresStore(...)" (a URL
    # parser's reading ends the user and password at the '?', and found none to mask)
    from psycopg2.extensions import parse_dsn

    from customer_ai.store import PostgresStore

    known = parse_dsn(PG_DSN)  # the test server trusts its clients: the password is read, and not needed
    host, port, dbname = known.get("host", "127.0.0.1"), known.get("port", "5432"), known.get("dbname", "test")
    address = f"postgresql://{known.get('user', 'postgres')}:s3c?r#t-pw@{host}:{port}/{dbname}"
    with _pg_schema() as schema:
        monkeypatch.setenv("CUSTOMER_AI_STORE_SCHEMA", schema)
        filled = _fill(PostgresStore(address, schema), tmp_path, address)
        args = [a.format(instance=filled["instance"]) for a in reader]
        code, stdout, stderr = _main(*args, *filled["options"], capsys=capsys)
        assert code == status, stderr
        masked = f"PostgresStore('postgresql://{known.get('user', 'postgres')}:***@{host}:{port}/{dbname}', "
        assert f"{masked}schema={schema!r})" in stdout + stderr  # each names the store, masked
        output = stdout + stderr
        assert [p for p in ("s3c", "3c?", "c?r", "?r#", "r#t", "#t-", "t-p", "-pw") if p in output] == []


def test_an_unexpected_error_exits_5_with_its_traceback(
    first_run: tuple, workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    # before: a bug's traceback ended the command with exit 1, the status of a poor model
    import customer_ai.cli

    def broken(args: object) -> int:
        raise RuntimeError("a bug")

    monkeypatch.setattr(customer_ai.cli, "_cmd_show", broken)
    status, stdout, stderr = _main("show", str(workspace / "instance.yaml"), *_at(first_run[1]), capsys=capsys)
    assert (status, stdout) == (5, "")
    assert stderr.startswith("Traceback (most recent call last):")
    assert "RuntimeError: a bug" in stderr
    assert stderr.endswith(
        "error: an unexpected error (RuntimeError) stopped `customer-ai show`: a bug, please report it with the "
        "traceback above; nothing a run had not published yet was published\n"
    )


def test_a_report_of_a_run_whose_folder_is_gone_says_so(
    first_run: tuple, workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # before: FileNotFoundError ".../model.json is missing", a traceback
    home = _copy_home(first_run[1], tmp_path / "home")
    _, folder = _published(home)
    shutil.rmtree(folder)
    status, stdout, stderr = _main("report", str(workspace / "instance.yaml"), *_at(home), capsys=capsys)
    assert (status, stdout) == (2, "")
    assert stderr == (
        f"error: the run of {NAME} as of {AS_OF} was published in {folder}, which is missing or no longer holds its "
        "model.json and scores.parquet (moved or deleted?): run that date again to rebuild it\n"
    )


def test_a_run_while_another_holds_the_instance_exits_4_saying_who_and_unlock_frees_it(workspace: Path) -> None:
    home = workspace / "h-locked"
    instance = str(workspace / "instance.yaml")
    store = _store_of(home)
    origin = "Airflow DAG run customer_ai__x / manual__1, task train"
    store.take_lock(NAME, "af-0123456789", origin, "dag:x", minutes=10)
    result = _cli("run", instance, "--as-of", AS_OF, home=home)
    assert result.returncode == 4
    assert f"error: another run of {NAME} is in progress: attempt af-0123456789 (Airflow DAG run" in result.stderr
    assert f"free the lock with `customer-ai unlock {NAME}`" in result.stderr
    assert "validating events" not in result.stderr  # nothing was done

    freed = _cli("unlock", instance, home=home)
    assert freed.returncode == 0, freed.stderr
    assert freed.stdout.startswith(f"{NAME}: freed its run lock: attempt af-0123456789 (Airflow DAG run")
    assert store.lock_holder(NAME)[0] is None
    again = _cli("unlock", instance, home=home)
    assert (again.returncode, again.stdout) == (0, f"{NAME}: no run holds its run lock; nothing to free\n")


def test_a_bad_lock_length_exits_2_before_any_work(workspace: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "customer_ai.cli", "run", str(workspace / "instance.yaml"), "--as-of", AS_OF],
        capture_output=True,
        text=True,
        env={"CUSTOMER_AI_HOME": str(workspace / "h-bad"), "PATH": "/usr/bin:/bin", "CUSTOMER_AI_LOCK_MINUTES": "0"},
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr == "error: CUSTOMER_AI_LOCK_MINUTES='0': must be at least 1\n"


def test_a_run_with_its_home_in_a_bucket_and_its_store_in_postgresql_is_read_back(
    workspace: Path, first_run: tuple, s3_env: dict[str, str], tmp_path: Path
) -> None:
    from s3_support import new_bucket

    from customer_ai.home import as_path
    from customer_ai.store import open_store

    home = f"s3://{new_bucket(s3_env)}/customer-ai"
    instance = str(workspace / "instance.yaml")
    with _pg_schema() as schema:
        env = {
            **s3_env,
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "CUSTOMER_AI_HOME": home,
            "CUSTOMER_AI_STORE": PG_DSN,
            "CUSTOMER_AI_STORE_SCHEMA": schema,
        }

        def cli(*args: str) -> subprocess.CompletedProcess:
            command = [sys.executable, "-m", "customer_ai.cli", *args]
            return subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, check=False)

        ran = cli("run", instance, "--as-of", AS_OF, "--top", "0")
        assert ran.returncode == 0, ran.stderr[-3000:]
        local = first_run[0].stdout.splitlines()
        assert ran.stdout.splitlines()[:2] == local[:2]  # the same model as the run in a local home
        store = open_store(PG_DSN, tmp_path, schema, create=False)
        run = store.latest_run(NAME)
        folder = as_path(home) / "artifacts" / NAME / AS_OF / run["run_id"]
        assert sorted(p.name for p in folder.iterdir()) == RUN_FILES_WITH_ATTRIBUTES
        assert open_store(PG_DSN, tmp_path, schema).lock_holder(NAME)[0] is None  # the commit freed the run lock
        shown = cli("show", instance, "--top", "1")
        assert shown.returncode == 0, shown.stderr[-3000:]
        assert f"latest run as of {AS_OF}, model {run['model_version']}: ok" in shown.stdout
        assert f"artifacts: {folder}\n" in shown.stdout
        report = tmp_path / "report.html"
        reported = cli("report", instance, "--out", str(report))
        assert reported.returncode == 0, reported.stderr[-3000:]
        assert report.read_text().startswith("<!DOCTYPE html>")
        exported = tmp_path / "loyal.csv"
        export = cli("segment", "export", instance, "loyal_top", "--out", str(exported))
        assert export.returncode == 0, export.stderr[-3000:]
        assert len(pd.read_csv(exported)) == store.read_segment(NAME, "loyal_top").shape[0] > 10
        rewritten = cli("report", instance)  # into the run folder in the bucket, whole
        assert rewritten.returncode == 0, rewritten.stderr[-3000:]
        assert (folder / "report.html").read_text() == report.read_text()


def test_a_bucket_home_without_a_database_store_is_refused(workspace: Path, s3_env: dict[str, str]) -> None:
    home = "s3://some-bucket/customer-ai"
    command = [sys.executable, "-m", "customer_ai.cli", "run", str(workspace / "instance.yaml"), "--as-of", AS_OF]
    env = {**s3_env, "PATH": "/usr/bin:/bin", "CUSTOMER_AI_HOME": home}
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    assert result.returncode == 2
    assert result.stderr == (
        f"error: the home {home} is a bucket: the embedded SQLite store cannot live there (a database file needs a "
        "local disk and its locks). Give a database every worker reaches: --store postgresql://..., "
        "$CUSTOMER_AI_STORE, or in Airflow the connection customer_ai_store\n"
    )


def test_two_runs_racing_on_two_homes_with_one_store_never_mix(
    workspace: Path, tmp_path: Path, s3_env: dict[str, str]
) -> None:
    # two machines: each its own home, one sharing the PostgreSQL store; the run lock there lets one run through
    from s3_support import new_bucket

    from customer_ai.store import open_store

    instance = str(workspace / "instance.yaml")
    with _pg_schema() as schema:
        base = {**s3_env, "PATH": "/usr/bin:/bin", "CUSTOMER_AI_STORE": PG_DSN, "CUSTOMER_AI_STORE_SCHEMA": schema}
        homes = [str(tmp_path / "machine-a"), f"s3://{new_bucket(s3_env)}/machine-b"]
        command = [sys.executable, "-m", "customer_ai.cli", "run", instance, "--as-of", AS_OF, "--top", "0"]
        store = open_store(PG_DSN, tmp_path, schema)

        def start(home: str) -> subprocess.Popen:
            env = {**base, "CUSTOMER_AI_HOME": home, "HOME": str(tmp_path)}
            return subprocess.Popen(  # noqa: S603
                command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )

        first = start(homes[0])
        deadline = time.monotonic() + 120
        while store.lock_holder(NAME)[0] is None:  # the first run holds the instance: the second comes now
            assert first.poll() is None, first.communicate()[1][-3000:]  # it ended before taking the lock
            assert time.monotonic() < deadline, "the first run never took the run lock"
            time.sleep(0.1)
        second = start(homes[1])
        outputs = [p.communicate(timeout=600) for p in (first, second)]
        results = [(p.returncode, *out) for p, out in zip((first, second), outputs, strict=True)]
        codes = sorted(code for code, _, _ in results)
        assert codes == [0, 4], [err[-2000:] for _, _, err in results]
        (refused,) = [err for code, _, err in results if code == 4]
        assert f"error: another run of {NAME} is in progress: attempt cli-" in refused
        assert "(the customer-ai command (process " in refused
        assert store.read_runs(NAME)["as_of"].tolist() == [AS_OF]
        assert store.lock_holder(NAME)[0] is None
        attempts = store.read_attempts(NAME)
        assert attempts["status"].tolist() == ["started", "ok"]  # the refused run started nothing


def test_a_run_killed_in_a_bucket_home_changes_nothing_and_the_next_run_goes_ahead(
    workspace: Path, tmp_path: Path, s3_env: dict[str, str]
) -> None:
    import signal

    from s3_support import new_bucket

    from customer_ai.home import as_path
    from customer_ai.store import open_store

    instance = str(workspace / "instance.yaml")
    home = f"s3://{new_bucket(s3_env)}/customer-ai"
    date_folder = as_path(home) / "artifacts" / NAME / AS_OF
    with _pg_schema() as schema:
        env = {**s3_env, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "CUSTOMER_AI_HOME": home}
        env |= {"CUSTOMER_AI_STORE": PG_DSN, "CUSTOMER_AI_STORE_SCHEMA": schema}
        command = [sys.executable, "-m", "customer_ai.cli", "run", instance, "--as-of", AS_OF, "--top", "0"]
        store = open_store(PG_DSN, tmp_path, schema)
        killed = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
        deadline = time.monotonic() + 300
        try:
            while not list(date_folder.glob(".*.staging/scores.parquet")):  # scored, not yet published
                date_folder.fs.invalidate_cache()
                assert killed.poll() is None, "the run ended before it was killed"
                assert time.monotonic() < deadline, "no scores in the bucket after 300 s"
                time.sleep(0.1)
        finally:
            killed.send_signal(signal.SIGKILL)
            killed.wait(timeout=60)
        held, _ = store.lock_holder(NAME)
        assert held.scope.startswith("process:")  # the killed process's lease, left behind
        assert store.latest_run(NAME) is None  # readers see nothing of it
        assert [row["status"] for row in store.read_attempts(NAME).to_dict("records")] == ["started"]
        ran = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
        assert ran.returncode == 0, ran.stderr[-3000:]  # its process is gone: the lease is taken at once
        assert f"took the run lock of {NAME} from an abandoned run: attempt {held.attempt}" in ran.stderr
        run = store.latest_run(NAME)
        date_folder.fs.invalidate_cache()
        assert sorted(p.name for p in date_folder.iterdir()) == [run["run_id"]]  # the killed staging folder is gone


# --- saved audiences (issue 25) ---------------------------------------------------------------------------------


def test_a_saved_audience_is_listed_applied_by_the_next_run_exported_and_deleted(
    first_run: tuple, workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    _, ran = first_run
    home = Path(shutil.copytree(ran, tmp_path / "home"))
    instance = str(workspace / "instance.yaml")
    _, folder = _published(home)
    scores = pd.read_parquet(folder / "scores.parquet").sort_values(
        ["probability", "profile_id"], ascending=[False, True]
    )
    keen = int((scores["score"] >= 80).sum())
    status, stdout, stderr = _main(
        "-q", "audience", "save", instance, "keen", "--cut", "score", "--at", "80", "--by", "ana", *_at(home),
        capsys=capsys,
    )  # fmt: skip
    assert (status, stderr) == (0, "")
    saved = _store_of(home).read_audiences(NAME)
    assert [(a.name, a.saved_by) for a in saved] == [("keen", "ana")]
    expected = scores.loc[scores["score"] >= 80, "probability"].sum()
    assert stdout.splitlines() == [
        f"{NAME}: saved audience keen: score at least 80, by ana at {saved[0].saved_at}; every later run applies it "
        "(segment export writes it after the next run)",
        f"in the current run (as of {AS_OF}) it would hold {keen:,} profiles, {expected:,.1f} expected to reach the "
        "goal",
    ]
    assert (
        _main("-q", "audience", "save", instance, "top_50", "--cut", "top", "--at", "50", *_at(home), capsys=capsys)[0]
        == 0
    )
    # refused, each saying why, nothing written
    for args, says in (
        (["loyal_top", "--cut", "score", "--at", "1"], "error: audience loyal_top of repurchase_30d: 'loyal_top' is a "
         "segment of the instance file: a saved audience never replaces it (the file wins); choose another name"),
        (["keen", "--cut", "top", "--at", "5"], "error: repurchase_30d has a saved audience named keen already (score "
         f"at least 80, saved by ana at {saved[0].saved_at}): delete it first, or choose another name"),
        (["wide", "--cut", "percentile", "--at", "0"], "error: audience wide: a cut by percentile is at a whole number "
         "1 to 100, not 0"),
        (["wide", "--cut", "score", "--at", "9", "--by", " "], "error: --by: say who saves the audience (a name), not "
         "an empty text"),
    ):  # fmt: skip
        assert _main("-q", "audience", "save", instance, *args, *_at(home), capsys=capsys) == (2, "", says + "\n")
    assert [a.name for a in _store_of(home).read_audiences(NAME)] == ["keen", "top_50"]
    top = _store_of(home).read_audiences(NAME)[1]
    status, stdout, _ = _main("audience", "list", instance, *_at(home), capsys=capsys)
    assert stdout.splitlines()[1:] == [
        f"  keen: score at least 80 (saved by ana at {saved[0].saved_at}): saved after the run as of {AS_OF}: the next "
        "run applies it",
        f"  top_50: the top 50 profiles by probability (saved by {top.saved_by} at {top.saved_at}): saved after the "
        f"run as of {AS_OF}: the next run applies it",
    ]

    # the next run (the same date again) applies both; its folder keeps their rules
    assert _main("-q", "run", instance, "--as-of", AS_OF, "--top", "0", *_at(home), capsys=capsys)[0] == 0
    _, folder = _published(home)
    meta = json.loads((folder / "metadata.json").read_text())
    assert [(a["name"], a["cut"], a["at"]) for a in meta["audiences"]] == [("keen", "score", 80), ("top_50", "top", 50)]
    scores = pd.read_parquet(folder / "scores.parquet").sort_values(
        ["probability", "profile_id"], ascending=[False, True]
    )
    out = tmp_path / "top_50.csv"
    status, stdout, _ = _main(
        "-q", "segment", "export", instance, "top_50", "--out", str(out), *_at(home), capsys=capsys
    )
    assert (status, stdout) == (0, f"{NAME} segment top_50 as of {AS_OF}: 50 profiles written to {out}\n")
    exported = pd.read_csv(out, dtype={"profile_id": str})
    assert exported["profile_id"].tolist() == scores["profile_id"].astype(str).head(50).tolist()
    keen = int((scores["score"] >= 80).sum())
    listed = _main("audience", "list", instance, *_at(home), capsys=capsys)[1].splitlines()
    assert listed[1].endswith(f"): {keen:,} profiles in the run as of {AS_OF}")
    assert listed[2].endswith(f"): 50 profiles in the run as of {AS_OF}")
    shown = _main("-q", "show", instance, "--top", "0", *_at(home), capsys=capsys)[1].splitlines()
    assert shown[shown.index("saved audiences:") + 1 :][:2] == listed[1:]
    checked = _main("-q", "check", instance, *_at(home), capsys=capsys)[1].splitlines()
    assert checked[-2:] == listed[1:]

    # deleted: gone from the list, said by show for the run that applied it, its members kept in that run
    status, stdout, _ = _main("-q", "audience", "delete", instance, "keen", *_at(home), capsys=capsys)
    assert stdout == (
        f"{NAME}: deleted audience keen (score at least 80, saved by ana at {saved[0].saved_at}): later runs no longer "
        "apply it; the runs already published keep its members\n"
    )
    assert _main("-q", "audience", "delete", instance, "keen", *_at(home), capsys=capsys) == (
        2,
        "",
        f"error: {NAME} has no saved audience named 'keen'; saved: top_50\n",
    )
    shown = _main("-q", "show", instance, "--top", "0", *_at(home), capsys=capsys)[1].splitlines()
    assert (
        f"  keen: score at least 80: {keen:,} profiles in this run; deleted since (later runs do not apply it)" in shown
    )
    assert len(_store_of(home).read_segment(NAME, "keen")) == keen


def test_audience_commands_on_a_store_that_does_not_exist_say_so_and_create_nothing(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    instance = str(workspace / "instance.yaml")
    home = tmp_path / "home"
    for args in (["list", instance], ["delete", instance, "keen"]):
        status, stdout, stderr = _main("-q", "audience", *args, *_at(home), capsys=capsys)
        assert (status, stdout) == (2, "")
        assert stderr == f"error: no profile store at {home / 'store.sqlite'}: {NO_STORE}\n"
    assert not home.exists()
    status, _, stderr = _main("-q", "check", instance, *_at(home), capsys=capsys)  # no store: nothing saved
    assert (status, stderr) == (0, "")
    assert not home.exists()
