"""A goal with a value, end to end: ``run``, ``show``, ``explain``, ``check``, segments and the scores file.

Half of the real online-retail customers, the goal "buy again within 30 days" worth the purchases' ``value``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import RETAIL_EVENTS, ROOT, run_command

AS_OF = "2011-10-01"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with half of the real customers' events and the repurchase instance, its goal worth the purchases."""
    folder = tmp_path_factory.mktemp("valued")
    events = pd.read_parquet(RETAIL_EVENTS)
    events.loc[events["profile_id"].map(lambda p: int(p) % 2 == 1)].to_parquet(folder / "events.parquet", index=False)
    instance = yaml.safe_load((ROOT / "instances" / "repurchase_30d.yaml").read_text())
    instance["name"] = "repurchase_value_30d"
    instance["events"] = {"path": "events.parquet"}
    instance["profiles"]["path"] = str(ROOT / "examples" / "online_retail" / "profiles.parquet")
    instance["goal"]["value"] = {"field": "value"}
    # on this half of the customers the value model ranks spend a little below the past spend rate (0.724 against
    # 0.737 held out): the gate is lowered here, and test_the_value_gate_stops_a_run_whose_value_model_is_no_better
    # runs it at its default
    instance["training"].update({"min_positives": 200, "min_negatives": 200, "min_value_gini_gain": -0.05})
    instance["segments"] = [
        {"name": "big_spenders", "where": [{"field": "expected_value", "op": "gte", "value": 500}]},
    ]
    (folder / "instance.yaml").write_text(yaml.safe_dump(instance))
    return folder


@pytest.fixture(scope="module")
def valued_run(workspace: Path) -> tuple[subprocess.CompletedProcess, Path]:
    home = workspace / "home"
    scores = workspace / "scores.csv"
    result = run_command(
        "run", str(workspace / "instance.yaml"), "--as-of", AS_OF, "--scores-out", str(scores), home=home
    )
    return result, home


def _variant(workspace: Path, name: str, training: dict | None = None, **goal: object) -> Path:
    instance = yaml.safe_load((workspace / "instance.yaml").read_text())
    instance["goal"].update(goal)
    instance["training"].update(training or {})
    path = workspace / name
    path.write_text(yaml.safe_dump(instance))
    return path


def test_a_run_writes_each_profiles_expected_value_and_says_the_total(valued_run: tuple, workspace: Path) -> None:
    result, home = valued_run
    assert result.returncode == 0, result.stderr
    scores = pd.read_csv(workspace / "scores.csv", dtype={"profile_id": str})
    assert list(scores.columns[:6]) == ["profile_id", "probability", "score", "percentile", "bucket", "expected_value"]
    assert scores["expected_value"].notna().all()
    assert (scores["expected_value"] > 0).all()  # every profile starts from what profiles like it spent
    total = scores["expected_value"].sum()
    line = next(x for x in result.stdout.splitlines() if x.startswith("expected value"))
    assert line.startswith(
        f"expected value (the goal events' value) in the next 30 days: GBP {total:,.2f} in all, "
        f"GBP {total / len(scores):,.2f} per profile (held out: normalised Gini "
    )
    folder = Path(next(x for x in result.stdout.splitlines() if x.startswith("artifacts: ")).split(": ", 1)[1])
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["value"]["total"] == pytest.approx(total, rel=1e-9)
    assert meta["value"]["window_days"] == 30
    model = json.loads((folder / "model.json").read_text())
    assert meta["reason"].split("; ")[1].startswith("the value model's normalised Gini ")
    assert meta["reason"].split("; ")[1].endswith(" by more than -0.05 (training.min_value_gini_gain)")
    assert "goal_value_per_30d" not in model["features"]["names"]  # the chance does not read the spend rate
    assert "goal_value_per_30d" in model["value"]["features"]
    # each profile's value factors are in the run's scores, on the log of the expected value
    kept = pd.read_parquet(folder / "scores.parquet", columns=["profile_id", "expected_value", "value_factors"])
    factors = [json.loads(f) for f in kept["value_factors"]]
    assert all(1 <= len(f) <= 5 for f in factors)
    assert {f["effect"].split(" the ")[0] for fs in factors for f in fs} <= {"raises", "lowers"}
    assert all(f["effect"].split(" the ")[1].startswith("expected value") for fs in factors for f in fs)
    # the store keeps the expected value beside the score
    from customer_ai.store import open_store  # noqa: PLC0415

    stored = open_store(None, home, create=False).read_scores("repurchase_value_30d")
    by_id = stored.set_index("profile_id")["expected_value"]
    np.testing.assert_allclose(by_id.loc[scores["profile_id"]].to_numpy(), scores["expected_value"], rtol=1e-12)


def test_a_segment_on_the_expected_value_holds_those_above_it(valued_run: tuple, workspace: Path) -> None:
    _, home = valued_run
    scores = pd.read_csv(workspace / "scores.csv", dtype={"profile_id": str})
    expected = sorted(scores.loc[scores["expected_value"] >= 500, "profile_id"])
    assert 10 < len(expected) < len(scores)
    out = workspace / "big.csv"
    args = ("segment", "export", str(workspace / "instance.yaml"), "big_spenders", "--out", str(out))
    result = run_command(*args, home=home)
    assert result.returncode == 0, result.stderr
    assert sorted(pd.read_csv(out, dtype={"profile_id": str})["profile_id"]) == expected


def test_show_and_explain_say_the_expected_value_and_why(valued_run: tuple, workspace: Path) -> None:
    _, home = valued_run
    scores = pd.read_csv(workspace / "scores.csv", dtype={"profile_id": str})
    shown = run_command("show", str(workspace / "instance.yaml"), "--top", "1", home=home)
    assert shown.returncode == 0, shown.stderr
    assert "expected value (the goal events' value) in the next 30 days: GBP " in shown.stdout
    assert "the value model's normalised Gini" in shown.stdout
    top = scores.sort_values(["probability", "profile_id"], ascending=[False, True]).iloc[0]
    assert f"bucket {top['bucket']}  expected value GBP {top['expected_value']:,.2f}" in shown.stdout
    richest = scores.sort_values("expected_value").iloc[-1]
    told = run_command("explain", str(workspace / "instance.yaml"), str(richest["profile_id"]), home=home)
    assert told.returncode == 0, told.stderr
    lines = told.stdout.splitlines()
    header = f"  expected value GBP {richest['expected_value']:,.2f} in the next 30 days; its factors (on the log of "
    at = next(i for i, x in enumerate(lines) if x.startswith(header))
    assert "the expected value" in lines[at + 1]
    assert "purchases worth GBP" in told.stdout[told.stdout.index(header) :]


def test_a_value_field_the_events_lack_or_that_holds_text_is_refused_in_words(workspace: Path) -> None:
    missing = _variant(workspace, "missing.yaml", value={"field": "amount"})
    for command in (("check", str(missing)), ("run", str(missing), "--as-of", AS_OF)):
        result = run_command(*command, home=workspace / "refused")
        assert result.returncode == 2, result.stderr
        assert "goal.value.field is 'amount', which the events" in result.stderr
        assert "do not have (their columns: profile_id, timestamp, event_type, value" in result.stderr
    text = _variant(workspace, "text.yaml", value={"field": "event_type"})
    result = run_command("check", str(text), home=workspace / "refused")
    assert result.returncode == 2
    assert "goal.value.field is 'event_type', which is not a column of numbers in the events" in result.stderr


def test_a_segment_on_the_expected_value_needs_a_goal_with_a_value(workspace: Path) -> None:
    instance = yaml.safe_load((workspace / "instance.yaml").read_text())
    del instance["goal"]["value"]
    path = workspace / "no_value.yaml"
    path.write_text(yaml.safe_dump(instance))
    result = run_command("check", str(path), home=workspace / "refused")
    assert result.returncode == 2
    assert (
        "segments[0] (big_spenders).where[0] tests expected_value, which a run writes only for a goal with a value"
        in result.stderr
    )


def test_the_value_gate_stops_a_run_whose_value_model_is_no_better(valued_run: tuple, workspace: Path) -> None:
    _, home = valued_run
    strict = _variant(workspace, "strict.yaml", training={"min_value_gini_gain": 0.0})
    result = run_command("run", str(strict), "--as-of", AS_OF, home=home)
    assert result.returncode == 1
    assert (
        "warning: the model is poor: validation ROC AUC 0.752 meets the quality gate of 0.65; the value model's "
        "normalised Gini 0.724 is not above the past spend rate's 0.737; the run stopped at the quality gate"
    ) in result.stderr
    from customer_ai.store import open_store  # noqa: PLC0415

    store = open_store(None, home, create=False)
    runs = store.read_runs("repurchase_value_30d")
    assert runs["status"].tolist() == ["ok"]  # the run of the lowered gate stays published
    poor = store.latest_attempt("repurchase_value_30d")
    assert poor["status"] == "poor"
    assert poor["metrics"]["value"]["normalised_gini"] == pytest.approx(0.724, abs=5e-4)
