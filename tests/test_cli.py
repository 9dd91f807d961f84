"""End to end: the `customer-ai` command on a slice of the real online-retail data, as a user runs it."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import BASE_SPEC, RETAIL_EVENTS, ROOT, RUN_FILES

pytestmark = pytest.mark.e2e

AS_OF = "2011-10-01"


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "customer_ai.cli", *args],
        capture_output=True,
        text=True,
        env={"CUSTOMER_AI_HOME": str(home), "PATH": "/usr/bin:/bin"},
        cwd=ROOT,
        check=False,
    )


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
    _, home = first_run
    folder = home / "artifacts" / "repurchase_30d" / AS_OF
    assert sorted(p.name for p in folder.iterdir()) == RUN_FILES
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["as_of"] == AS_OF
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
        runs = connection.execute("SELECT as_of, status FROM customer_ai_runs").fetchall()
    assert current == len(scores)
    assert runs == [(AS_OF, "ok")]


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
    instance = yaml.safe_load((workspace / "instance.yaml").read_text())
    instance["training"]["min_auc"] = 0.99
    path = workspace / "strict.yaml"
    path.write_text(yaml.safe_dump(instance))
    home = workspace / "home-poor"
    poor = _cli("run", str(path), "--as-of", AS_OF, home=home)
    assert poor.returncode == 1
    assert "below the quality gate of 0.99" in poor.stderr
    assert "the run stopped at the quality gate" in poor.stderr
    folder = home / "artifacts" / "repurchase_30d" / f".{AS_OF}.staging"  # never published
    assert f"artifacts: {folder}" in poor.stdout
    assert not (home / "artifacts" / "repurchase_30d" / AS_OF).exists()
    meta = json.loads((folder / "model.json").read_text())
    assert meta["quality"]["status"] == "poor"
    # the same declared steps as Airflow: nothing after the gate ran
    assert not (folder / "scores.parquet").exists()
    assert not (folder / "metadata.json").exists()
    with sqlite3.connect(home / "store.sqlite") as connection:
        assert connection.execute("SELECT COUNT(*) FROM customer_ai_scores").fetchone()[0] == 0
        assert connection.execute("SELECT status FROM customer_ai_runs").fetchall() == [("poor",)]
    allowed = _cli("run", str(path), "--as-of", AS_OF, "--allow-poor", home=home)
    assert allowed.returncode == 0


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
    assert "condition on field 'channel': the events have no such column" in result.stderr


def test_report_rewrites_a_published_runs_report_without_retraining(first_run: tuple, workspace: Path) -> None:
    _, home = first_run
    instance = str(workspace / "instance.yaml")
    folder = home / "artifacts" / "repurchase_30d" / AS_OF
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

    missing = _cli("report", instance, "--as-of", "2011-11-01", home=home)
    assert missing.returncode == 2
    assert f"repurchase_30d has no published run as of 2011-11-01 in {home} (published: {AS_OF})" in missing.stderr
    wrong = _cli("report", instance, "--out", str(workspace / "report.pdf"), home=home)
    assert wrong.returncode == 2
    assert f"--out {workspace / 'report.pdf'}: use a file name ending in .html" in wrong.stderr
    nothing = _cli("report", instance, home=workspace / "empty-home")
    assert nothing.returncode == 2
    assert f"repurchase_30d has no published run in {workspace / 'empty-home'}: run it first" in nothing.stderr


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
    assert lines[2].startswith(f"note: this run scored another definition of repurchase_30d than {other} holds now")
    assert lines[2].endswith("file's goal: purchase occurs within 60 days)")
    profile = pd.read_parquet(home / "artifacts" / "repurchase_30d" / AS_OF / "scores.parquet")["profile_id"].iloc[0]
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


def test_an_unreachable_store_exits_3_before_any_work(workspace: Path) -> None:
    store = "postgresql://postgres:s3cret-pw@127.0.0.1:1/test"
    result = _cli("run", str(workspace / "instance.yaml"), "--as-of", AS_OF, "--store", store, home=workspace / "h3")
    assert result.returncode == 3
    assert "cannot connect to the PostgreSQL profile store" in result.stderr
    assert "s3cret" not in result.stderr + result.stdout
    assert "validating events" not in result.stderr  # nothing was done before the store answered
    assert "Traceback" not in result.stderr


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
    assert lines[2].startswith("scored ")
    assert "(low " in lines[2]
    assert lines[3] == f"artifacts: {home / 'artifacts' / 'repurchase_30d' / AS_OF}"
    assert lines[4] == f"report: {home / 'artifacts' / 'repurchase_30d' / AS_OF / 'report.html'}"
    assert lines[6] == "top 2 profiles:"
    other = _cli("show", str(workspace / "instance.yaml"), "--as-of", "2011-11-01", home=home)
    assert other.returncode == 2
    assert (
        f"repurchase_30d has no run as of 2011-11-01 in SQLiteStore('{home / 'store.sqlite'}') (runs as of: {AS_OF})"
        in other.stderr
    )
    empty = _cli("show", str(workspace / "instance.yaml"), home=workspace / "nowhere")
    assert empty.returncode == 2
    assert "repurchase_30d has no runs in" in empty.stderr


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_scores_files_round_trip_hostile_ids_exactly(tmp_path: Path, suffix: str) -> None:
    # before: an id with a carriage return was written unquoted and read back as an extra row
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
    _write_scores(scores, path)
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
    high = workspace / "exports" / "high.csv"
    result = _cli(
        "segment", "export", str(workspace / "instance.yaml"), "high", "--as-of", AS_OF, "--out", str(high), home=home
    )
    assert result.returncode == 0, result.stderr
    assert sorted(pd.read_csv(high, dtype={"profile_id": str})["profile_id"]) == sorted(
        scores.loc[scores["bucket"] == "high", "profile_id"]
    )


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


@pytest.fixture
def filled(tmp_path: Path) -> dict:
    """An instance file with a named segment and a store holding two ok runs and a poor one, no artifacts."""
    from customer_ai.segments import segment_members
    from customer_ai.spec import load_spec
    from customer_ai.store import SQLiteStore

    data = {
        **BASE_SPEC,
        "output": {"factors": 2},
        "segments": [
            {"name": "top", "where": [{"field": "percentile", "op": "gte", "value": 60}]},
            {"name": "nobody", "where": [{"field": "score", "op": "gt", "value": 99}]},
        ],
    }
    instance = tmp_path / "unit.yaml"
    instance.write_text(yaml.safe_dump(data, allow_unicode=True))
    spec = load_spec(instance)
    store = SQLiteStore(tmp_path / "store.sqlite")
    for as_of, ids, version in (("2024-01-01", HOSTILE_IDS, "v1"), ("2024-02-01", ["p1", "p2", "p3"], "v2")):
        written = _stored_scores(ids, version)
        store.write_run(
            "unit",
            as_of,
            written,
            {"model_version": version, "status": "ok", "reason": "fine"},
            segments=segment_members(written, spec),
        )
    store.record_run("unit", "2024-03-01", {"model_version": "v3", "status": "poor", "reason": "AUC 0.5 < 0.65"})
    options = ["--home", str(tmp_path / "home"), "--store", f"sqlite:///{store.path}"]
    (tmp_path / "folder.csv").mkdir()
    return {"instance": str(instance), "store": store, "options": options, "folder": tmp_path}


def _main(*args: str, capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    from customer_ai.cli import main

    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_segment_export_round_trips_exactly(filled: dict, capsys: pytest.CaptureFixture, suffix: str) -> None:
    from customer_ai.segments import flat_factors

    out = filled["folder"] / "out" / f"top{suffix}"
    args = ("segment", "export", filled["instance"], "top", "--as-of", "2024-01-01", "--out", str(out))
    status, stdout, _ = _main(*args, *filled["options"], capsys=capsys)
    assert status == 0
    assert stdout == f"unit segment top as of 2024-01-01: 9 profiles written to {out}\n"
    expected = flat_factors(filled["store"].read_segment("unit", "top", "2024-01-01"), 2)
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
        (
            ["top", "--as-of", "2024-03-01"],
            "error: the run of unit as of 2024-03-01 scored nobody (poor: AUC 0.5 < 0.65)",
        ),
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
    options = ["--home", str(tmp_path), "--store", f"sqlite:///{tmp_path / 'empty.sqlite'}"]
    status, _, stderr = _main(
        "segment", "export", filled["instance"], "high", "--out", str(tmp_path / "h.csv"), *options, capsys=capsys
    )
    assert status == 2
    assert "error: unit has no run with status ok in SQLiteStore(" in stderr


def test_show_as_of_a_past_run(filled: dict) -> None:
    # before: show refused any date but the latest run's
    from customer_ai.artifacts import run_dir, write_json

    def show(as_of: str, *more: str) -> subprocess.CompletedProcess:
        return _cli("show", filled["instance"], "--as-of", as_of, *more, *filled["options"], home=filled["folder"])

    folder = run_dir(filled["folder"] / "home", "unit", pd.Timestamp("2024-01-01", tz="UTC"))
    meta = {"goal": "order occurs within 30 days", "spec_hash": "0123456789abcdef", "scored_profiles": 11}
    write_json(folder / "metadata.json", meta | {"buckets": {"low": 0, "medium": 7, "high": 4}})
    shown = show("2024-01-01", "--top", "2")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == "unit: order occurs within 30 days"  # the goal that run scored, from its metadata
    assert lines[1] == "run as of 2024-01-01, model v1: ok: fine"
    assert lines[2].startswith("note: this run scored another definition of unit")
    assert lines[3] == "scored 11 profiles (low 0, medium 7, high 4)"
    assert lines[4] == f"artifacts: {folder}"
    assert lines[6] == "top 2 profiles:"
    assert "a\\rb  probability 0.950" in lines[7]  # that run's profiles, from the history
    assert "c\\nd  probability 0.900" in lines[8]

    poor = show("2024-03-01")
    assert poor.returncode == 1  # a poor run: shown, with nobody scored
    assert poor.stdout.splitlines()[1] == "latest run as of 2024-03-01, model v3: poor: AUC 0.5 < 0.65"
    assert "top" not in poor.stdout

    ok = show("2024-02-01")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines()[0] == "unit: purchase occurs within 30 days"  # no metadata: the file's goal
    assert ok.stdout.splitlines()[1] == "run as of 2024-02-01, model v2: ok: fine"
    assert "p1  probability 0.950" in ok.stdout

    missing = show("2024-01-15")
    assert missing.returncode == 2
    assert missing.stdout == ""
    assert "unit has no run as of 2024-01-15 in SQLiteStore(" in missing.stderr
    assert missing.stderr.rstrip().endswith("(runs as of: 2024-01-01, 2024-02-01, 2024-03-01)")
