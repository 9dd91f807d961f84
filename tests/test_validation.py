"""Data validation with Great Expectations: built-in suites, readable failures, extra suites, suite errors."""

from __future__ import annotations

import datetime as dt
import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from customer_ai.events import canonicalize
from customer_ai.scoring import BucketRule, score_frame
from customer_ai.spec import EventThresholds
from customer_ai.validation import (
    DataValidationError,
    ExpectationSuiteError,
    event_checks,
    exact_duplicates,
    expectations_dir,
    load_suite,
    validate_frame,
)

ROOT = Path(__file__).resolve().parents[1]
SUITES = ROOT / "customer_ai" / "expectations"  # the built-in suites: package data
AS_OF = pd.Timestamp("2011-12-10", tz="UTC")
PARAMS = {"not_after": AS_OF, "value_min": -1e12, "value_max": 1e12, "max_duplicate_share": 0.01}


def events_frame(n: int = 200) -> pd.DataFrame:
    """Canonical events: profile p<i> bought at minute i from 2011-11-01; all distinct, all before AS_OF."""
    raw = pd.DataFrame(
        {
            "profile_id": [f"p{i}" for i in range(n)],
            "timestamp": pd.date_range("2011-11-01", periods=n, freq="min", tz="UTC"),
            "event_type": "purchase",
            "value": np.arange(n, dtype="float64"),
        }
    )
    return canonicalize(raw, source="inline")


def checked(events: pd.DataFrame) -> pd.DataFrame:
    """The events as a run validates them: with the column exact_duplicate (see event_checks)."""
    return event_checks(events, EventThresholds(), AS_OF)[0]


def training_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "profile_id": ["a", "b", "c", "d"],
            "as_of": pd.Timestamp("2011-10-11", tz="UTC"),
            "label": np.array([0, 1, 0, 1], dtype="int8"),
            "role": ["training", "training", "calibration", "evaluation"],
            "tenure_days": [10.0, 20.0, 30.0, 40.0],
            "days_since_last_event": [1.0, 2.0, 3.0, 4.0],
            "active_days": [1, 2, 3, 4],
            "purchase_count_30d": [0, 1, 2, 3],
        }
    )


def scores_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "profile_id": ["a", "b", "c"],
            "probability": [0.1, 0.5, 0.9],
            "score": np.array([10, 50, 90], dtype="int64"),
            "percentile": np.array([34, 67, 100], dtype="int64"),
            "bucket": ["low", "medium", "high"],
            "propensity": "conversion",
            "as_of": "2011-12-10",
            "model_version": "20111210-abc",
            "factors": [[{"feature": "active_days", "contribution": 0.2}], [], [{"feature": "x", "value": [1, 2]}]],
        }
    )


def failure_of(frame: pd.DataFrame, stage: str, **kwargs: object) -> DataValidationError:
    with pytest.raises(DataValidationError) as caught:
        validate_frame(frame, stage, **kwargs)
    return caught.value


def write_suite(path: Path, name: str, expectations: list[dict]) -> Path:
    path.write_text(json.dumps({"name": name, "expectations": expectations}), encoding="utf-8")
    return path


# --- the built-in suites ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("stage", "count"), [("events", 11), ("training_set", 15), ("scores", 18)])
def test_builtin_suites_are_gx_suites_with_notes(stage: str, count: int) -> None:
    import great_expectations as gx

    path = SUITES / f"{stage}.json"
    assert expectations_dir() == SUITES == (ROOT / "expectations").resolve()
    data = json.loads(path.read_text(encoding="utf-8"))
    suite = gx.ExpectationSuite(**data)  # the documented 1.x way; it silently drops what it cannot build
    assert suite.name == stage
    assert len(data["expectations"]) == len(suite.expectations) == count
    assert suite.to_json_dict() == data  # the file is exactly how GX serialises the suite
    assert all(e["meta"]["notes"].strip() for e in data["expectations"])
    assert len(load_suite(path).expectations) == count


def test_good_frames_pass() -> None:
    assert validate_frame(checked(events_frame()), "events", parameters=PARAMS) == {
        "stage": "events",
        "suites": ["events"],
        "success": True,
        "evaluated": 11,
        "failed": 0,
        "result_path": None,
    }
    assert validate_frame(training_frame(), "training_set")["evaluated"] == 15
    report = validate_frame(scores_frame(), "scores")  # factors: lists of dicts, left out of validation
    assert (report["success"], report["evaluated"], report["failed"]) == (True, 18, 0)


def test_scores_as_the_package_makes_them_pass() -> None:
    probability = np.array([0.0, 0.004, 0.25, 0.5, 0.749, 1.0])
    scores = score_frame(pd.Index([f"p{i}" for i in range(6)]), probability, BucketRule("score", 25, 75))
    scores = scores.assign(propensity="churn", as_of="2011-12-10", model_version="v", factors=[[]] * 6)
    assert validate_frame(scores, "scores")["success"] is True


def test_events_without_values_pass() -> None:
    events = events_frame().assign(value=np.nan)  # value may be empty on every row
    assert validate_frame(checked(events), "events", parameters=PARAMS)["success"] is True


# --- events -----------------------------------------------------------------------------------------------------


def test_null_profile_ids_report_count_share_and_examples() -> None:
    events = events_frame(1000)
    events.loc[[3, 500, 999], "profile_id"] = None
    error = failure_of(checked(events), "events", parameters=PARAMS)
    assert str(error) == (
        "events: 1 of 11 expectations failed\n"
        "- expect_column_values_to_not_be_null on profile_id: 3 of 1,000 rows (0.3%) unexpected, e.g. [None]"
    )
    assert error.result_path is None
    assert error.failures == [
        {
            "suite": "events",
            "expectation": "expect_column_values_to_not_be_null",
            "column": "profile_id",
            "unexpected_count": 3,
            "element_count": 1000,
            "unexpected_percent": 0.3,
            "examples": [None],
            "message": error.summary.splitlines()[1][2:],
        }
    ]
    assert error.report["failed"] == 1


FUTURE_LINE = (
    "- expect_column_max_to_be_between on timestamp: observed 2011-12-10 00:00:00+00:00, "
    "expected below 2011-12-10 00:00:00+00:00"
)


@pytest.mark.parametrize(
    "as_of",
    [
        AS_OF,
        AS_OF.tz_convert("Europe/Paris").to_pydatetime(),  # same instant, another zone
        AS_OF.tz_localize(None),  # naive: taken as UTC
        dt.date(2011, 12, 10),  # a date: midnight UTC
        "2011-12-10",  # GX alone would turn this into a datetime.date and fail to compare it
        np.datetime64("2011-12-10T00:00:00"),
    ],
    ids=["utc", "paris", "naive", "date", "string", "datetime64"],
)
def test_event_at_as_of_fails_and_a_microsecond_before_passes(as_of: object) -> None:
    events = events_frame(10)
    events.loc[9, "timestamp"] = AS_OF  # windows are half-open: an event at as_of is the future
    error = failure_of(checked(events), "events", parameters={**PARAMS, "not_after": as_of})
    assert str(error) == f"events: 1 of 11 expectations failed\n{FUTURE_LINE}"
    events.loc[9, "timestamp"] = AS_OF - pd.Timedelta(microseconds=1)
    assert events["timestamp"].dtype == "datetime64[us, UTC]"
    assert validate_frame(checked(events), "events", parameters={**PARAMS, "not_after": as_of})["success"] is True


def test_far_future_event_and_infinite_value() -> None:
    events = events_frame(10)
    events.loc[2, "timestamp"] = pd.Timestamp("2012-01-03", tz="UTC")
    events.loc[[4, 5], "value"] = [np.inf, -2e12]
    error = failure_of(checked(events), "events", parameters=PARAMS)
    assert str(error) == (
        "events: 2 of 11 expectations failed\n"
        "- expect_column_max_to_be_between on timestamp: observed 2012-01-03 00:00:00+00:00, "
        "expected below 2011-12-10 00:00:00+00:00\n"
        "- expect_column_values_to_be_between on value: 2 of 10 rows (20%) unexpected, e.g. [inf, -2e+12]; "
        "expected above -1e+12 and below 1e+12"
    )


def duplicate(events: pd.DataFrame, pairs: list[tuple[int, int]]) -> pd.DataFrame:
    """Make row ``copy`` an exact copy of row ``original``."""
    for copy, original in pairs:
        events.loc[copy] = events.loc[original].to_numpy()
    return events


def test_exact_duplicate_rows_up_to_one_percent_pass() -> None:
    events = duplicate(events_frame(200), [(1, 0), (3, 2)])  # 2 extra copies of 200 rows: 1%
    assert validate_frame(checked(events), "events", parameters=PARAMS)["success"] is True


def test_exact_duplicate_rows_above_one_percent_fail() -> None:
    events = duplicate(events_frame(200), [(1, 0), (3, 2), (5, 4)])  # 3 extra copies: 1.5%
    error = failure_of(checked(events), "events", parameters=PARAMS)
    assert str(error) == (
        "events: 1 of 11 expectations failed\n"
        "- expect_column_mean_to_be_between on exact_duplicate: observed 0.015, expected at most 0.01"
    )
    assert validate_frame(checked(events), "events", parameters={**PARAMS, "max_duplicate_share": 0.02})["success"]


def test_a_daily_log_with_several_orders_a_day_passes() -> None:
    # before: rows sharing (profile_id, timestamp, event_type) counted as duplicates, so an ordinary log with
    # dates only (CDNOW: 5.5% of rows, Ta-Feng's lines: more) was refused with no way to relax the rule
    events = events_frame(200)
    events["timestamp"] = events["timestamp"].dt.floor("D")
    events["profile_id"] = [f"p{i % 20}" for i in range(200)]  # 20 customers, ten orders each on the same day
    assert events.duplicated(["profile_id", "timestamp", "event_type"], keep=False).mean() == 1.0
    assert validate_frame(checked(events), "events", parameters=PARAMS)["success"] is True


def test_event_checks_flag_exact_copies_and_take_the_instance_thresholds() -> None:
    events = duplicate(events_frame(5), [(4, 1)])
    thresholds = EventThresholds(max_duplicate_share=0.3, max_abs_value=500.0, future_tolerance_days=2.5)
    frame, parameters = event_checks(events, thresholds, AS_OF)
    assert frame["exact_duplicate"].tolist() == [False, False, False, False, True]
    assert list(frame.columns[:-1]) == list(events.columns)
    assert parameters == {
        "not_after": "2011-12-12T12:00:00+00:00",
        "value_min": -500.0,
        "value_max": 500.0,
        "max_duplicate_share": 0.3,
    }


def test_the_real_example_events_pass() -> None:
    events = pd.read_parquet(ROOT / "examples" / "online_retail" / "events.parquet")
    # 1.1% of its rows share a key with another row: separate invoices of one customer in the same minute
    assert events.duplicated(["profile_id", "timestamp", "event_type"], keep=False).mean() > 0.01
    assert validate_frame(checked(events), "events", parameters=PARAMS)["success"] is True


def test_missing_column_and_empty_frame() -> None:
    events = events_frame(3).iloc[:0].drop(columns="value")
    error = failure_of(checked(events), "events", parameters=PARAMS)
    columns = "(columns: profile_id, timestamp, event_type, exact_duplicate)"
    assert str(error) == (
        "events: 5 of 11 expectations failed\n"
        f"- expect_column_to_exist on value: column 'value' is missing {columns}\n"
        "- expect_column_max_to_be_between on timestamp: observed None, expected below 2011-12-10 00:00:00+00:00\n"
        f"- expect_column_values_to_be_between on value: not evaluated, column 'value' is missing {columns}\n"
        "- expect_column_mean_to_be_between on exact_duplicate: observed None, expected at most 0.01\n"
        "- expect_table_row_count_to_be_between: observed 0, expected at least 1"
    )


# --- training set and scores ------------------------------------------------------------------------------------


@pytest.mark.parametrize("label", [0, 1])
def test_single_class_labels_fail(label: int) -> None:
    frame = training_frame().assign(label=np.full(4, label, dtype="int8"))
    error = failure_of(frame, "training_set")
    assert str(error) == (
        "training_set: 1 of 15 expectations failed\n"
        f"- expect_column_mean_to_be_between on label: observed {label}, expected above 0 and below 1"
    )


def test_training_set_labels_and_missing_features() -> None:
    frame = training_frame().assign(
        label=[0, 2, 1, -1], active_days=[1.0, None, 2.0, 3.0], role=["training", "test", "training", "evaluation"]
    )
    error = failure_of(frame.drop(columns="tenure_days"), "training_set")
    assert str(error) == (
        "training_set: 4 of 15 expectations failed\n"
        "- expect_column_to_exist on tenure_days: column 'tenure_days' is missing (columns: profile_id, as_of, "
        "label, role, days_since_last_event, active_days, purchase_count_30d)\n"
        "- expect_column_values_to_be_in_set on label: 2 of 4 rows (50%) unexpected, e.g. [2, -1]; "
        "expected one of [0, 1]\n"
        "- expect_column_values_to_not_be_null on active_days: 1 of 4 rows (25%) unexpected, e.g. [None]\n"
        "- expect_column_values_to_be_in_set on role: 1 of 4 rows (25%) unexpected, e.g. ['test']; "
        "expected one of ['training', 'calibration', 'evaluation']"
    )


def test_a_profile_without_events_in_the_feature_lookback_is_a_valid_row() -> None:
    # a shortened feature lookback leaves eligible profiles without recent events: their "days since" is missing
    frame = training_frame().assign(days_since_last_event=[None, None, 3.0, None], active_days=[0, 0, 3, 0])
    assert validate_frame(frame, "training_set")["success"] is True
    error = failure_of(frame.assign(active_days=0), "training_set")
    assert "expect_column_max_to_be_between on active_days: observed 0, expected at least 1" in str(error)


def test_out_of_range_probability() -> None:
    error = failure_of(scores_frame().assign(probability=[1.2, 0.5, -0.1]), "scores")
    assert str(error) == (
        "scores: 1 of 18 expectations failed\n"
        "- expect_column_values_to_be_between on probability: 2 of 3 rows (66.7%) unexpected, e.g. [1.2, -0.1]; "
        "expected at least 0 and at most 1"
    )


def test_duplicate_profile_in_scores() -> None:
    error = failure_of(scores_frame().assign(profile_id=["a", "b", "a"]), "scores")
    assert str(error) == (
        "scores: 1 of 18 expectations failed\n"
        "- expect_column_values_to_be_unique on profile_id: 2 of 3 rows (66.7%) unexpected, e.g. ['a']"
    )


def test_scores_failures_are_listed_in_suite_order() -> None:
    frame = scores_frame().assign(
        probability=[0.1, np.nan, 0.9], score=[10.0, 50.0, 101.0], bucket=["low", "Mid", None]
    )
    error = failure_of(frame.iloc[[0, 1, 2, 2]], "scores")
    assert str(error) == (
        "scores: 5 of 18 expectations failed\n"
        "- expect_column_values_to_be_unique on profile_id: 2 of 4 rows (50%) unexpected, e.g. ['c']\n"
        "- expect_column_values_to_not_be_null on probability: 1 of 4 rows (25%) unexpected, e.g. [None]\n"
        "- expect_column_values_to_be_in_type_list on score: observed float64, expected one of [int8, int16, "
        "int32, int64, uint8, uint16, uint32, uint64, ... (16 in all)]\n"
        "- expect_column_values_to_be_between on score: 2 of 4 rows (50%) unexpected, e.g. [101]; "
        "expected at least 0 and at most 100\n"
        "- expect_column_values_to_be_in_set on bucket: 1 of 2 non-missing values (50%) unexpected, "
        "e.g. ['Mid']; expected one of ['low', 'medium', 'high']"
    )


# --- results file, extra suites, errors -------------------------------------------------------------------------


def _strict_json(path: Path) -> dict:
    def refuse(constant: str) -> None:
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


def test_results_are_written_as_strict_json(tmp_path: Path) -> None:
    scores = scores_frame().assign(probability=[0.1, np.inf, 0.9])
    result_path = tmp_path / "run" / "validation" / "scores.json"
    error = failure_of(scores, "scores", result_path=result_path)
    assert error.result_path == result_path
    assert str(error).endswith(f"\nfull results: {result_path}")
    written = _strict_json(result_path)
    assert {k: written[k] for k in ("stage", "suites", "success", "evaluated", "failed", "result_path")} == {
        "stage": "scores",
        "suites": ["scores"],
        "success": False,
        "evaluated": 18,
        "failed": 1,
        "result_path": str(result_path),
    }
    assert written["summary"] == str(error)
    assert written["failures"] == error.failures
    assert written["failures"][0]["examples"] == ["inf"]
    assert written["left_out_columns"] == ["factors"]
    (gx_result,) = written["results"]
    assert gx_result["suite_name"] == "scores"
    assert gx_result["path"] == str(SUITES / "scores.json")
    assert gx_result["statistics"]["unsuccessful_expectations"] == 1
    assert len(gx_result["results"]) == 18
    assert [r["success"] for r in gx_result["results"]].count(False) == 1


def test_results_are_written_on_success_too(tmp_path: Path) -> None:
    result_path = tmp_path / "events.json"
    report = validate_frame(checked(events_frame()), "events", parameters=PARAMS, result_path=result_path)
    assert report["result_path"] == str(result_path)
    written = _strict_json(result_path)
    assert written["success"] is True
    assert written["parameters"] == {
        "not_after": "2011-12-10T00:00:00+00:00",
        "value_min": -1e12,
        "value_max": 1e12,
        "max_duplicate_share": 0.01,
    }
    assert written["summary"] == f"events: all 11 expectations passed\nfull results: {result_path}"


def test_extra_suite_runs_after_the_builtin_one_under_its_own_name(tmp_path: Path) -> None:
    rules = write_suite(
        tmp_path / "shop_rules.json",
        "shop_rules",
        [
            {
                "type": "expect_column_values_to_be_in_set",
                "kwargs": {"column": "event_type", "value_set": ["purchase"]},
            },
            {
                "type": "expect_column_min_to_be_between",
                "kwargs": {"column": "timestamp", "min_value": {"$PARAMETER": "history_start"}},
            },
        ],
    )
    events = events_frame()
    events.loc[7, "event_type"] = "refund"
    params = {**PARAMS, "history_start": AS_OF - pd.Timedelta(days=365)}
    error = failure_of(checked(events), "events", parameters=params, extra_suites=[rules])
    assert str(error) == (
        "events: all 11 expectations passed\n"
        "shop_rules: 1 of 2 expectations failed\n"
        "- expect_column_values_to_be_in_set on event_type: 1 of 200 rows (0.5%) unexpected, e.g. ['refund']; "
        "expected one of ['purchase']"
    )
    assert error.report["suites"] == ["events", "shop_rules"]
    assert (error.report["evaluated"], error.report["failed"]) == (13, 1)
    assert error.failures[0]["suite"] == "shop_rules"

    events.loc[8, "profile_id"] = None  # now both fail: the built-in suite is reported first
    error = failure_of(checked(events), "events", parameters=params, extra_suites=[rules])
    assert [line for line in str(error).splitlines() if not line.startswith("-")] == [
        "events: 1 of 11 expectations failed",
        "shop_rules: 1 of 2 expectations failed",
    ]


def test_expectations_folder_can_be_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_suite(
        tmp_path / "events.json",
        "strict_events",
        [{"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 500}}],
    )
    monkeypatch.setenv("CUSTOMER_AI_EXPECTATIONS", str(tmp_path))
    assert expectations_dir() == tmp_path
    error = failure_of(checked(events_frame()), "events")
    assert str(error) == (
        "strict_events: 1 of 1 expectations failed\n"
        "- expect_table_row_count_to_be_between: observed 200, expected at least 500"
    )


def test_missing_suite_files_are_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(ExpectationSuiteError) as caught:
        validate_frame(checked(events_frame()), "events", parameters=PARAMS, extra_suites=[missing])
    assert str(caught.value) == f"{missing}: expectation suite file not found"
    with pytest.raises(ExpectationSuiteError, match=r"expectations/profiles\.json: expectation suite file not found"):
        validate_frame(events_frame(), "profiles")


NOT_NULL = "expect_column_values_to_not_be_null"


def one_expectation(kwargs: dict, kind: str = NOT_NULL) -> str:
    return json.dumps({"name": "x", "expectations": [{"type": kind, "kwargs": kwargs}]})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"name": "x", "expectations": [', "not valid JSON (line 1, column 32: Expecting value)"),
        ("[]", "an expectation suite is a JSON object with 'name' and 'expectations', not a list"),
        ('{"expectations": []}', "'name' must be a non-empty string"),
        (
            '{"name": "x", "expectation": []}',
            "unknown key(s) 'expectation' (allowed: expectations, id, meta, name, notes, suite_parameters)",
        ),
        (one_expectation({}, "expect_foo"), "expectation 1 (expect_foo): unknown expectation type 'expect_foo'"),
        (
            one_expectation({"column": "a", "mostlyy": 0.5}),
            f"expectation 1 ({NOT_NULL}): mostlyy: extra fields not permitted",
        ),
        (
            one_expectation({"column": "a", "mostly": 5}),
            f"expectation 1 ({NOT_NULL}): mostly: ensure this value is less than or equal to 1.0",
        ),
        (one_expectation({}), f"expectation 1 ({NOT_NULL}): column: field required"),
        ('{"name": "x", "expectations": [{"kwargs": {}}]}', f"expectation 1 has no 'type' (e.g. \"{NOT_NULL}\")"),
    ],
    ids=["json", "list", "name", "key", "type", "kwarg", "value", "no-column", "no-type"],
)
def test_malformed_suite_files_are_named_with_the_problem(tmp_path: Path, content: str, message: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content, encoding="utf-8")
    result_path = tmp_path / "result.json"
    with pytest.raises(ExpectationSuiteError) as caught:
        validate_frame(
            checked(events_frame()), "events", parameters=PARAMS, extra_suites=[bad], result_path=result_path
        )
    assert str(caught.value) == f"{bad}: {message}"
    assert not result_path.exists()  # every suite is checked before anything runs


def test_missing_or_unfit_parameter_is_named() -> None:
    with pytest.raises(ExpectationSuiteError) as caught:
        validate_frame(checked(events_frame()), "events", parameters={"as_of": AS_OF})
    assert str(caught.value) == (
        f"{SUITES / 'events.json'}: expectation 8 (expect_column_max_to_be_between on timestamp) "
        "takes max_value from the suite parameter 'not_after'; pass it in parameters= (given: as_of)"
    )
    with pytest.raises(ExpectationSuiteError) as caught:
        validate_frame(checked(events_frame()), "events", parameters={**PARAMS, "not_after": [2011, 12, 10]})
    assert str(caught.value) == (
        f"{SUITES / 'events.json'}: a suite parameter does not fit its expectation "
        "(max_value: value is not a valid float); parameters: not_after=[2011, 12, 10], value_min=-1e+12, "
        "value_max=1e+12, max_duplicate_share=0.01"
    )


def test_the_callers_gx_context_is_left_current() -> None:
    import great_expectations as gx
    from great_expectations.data_context.data_context.context_factory import project_manager

    mine = gx.get_context(mode="ephemeral")
    validate_frame(checked(events_frame()), "events", parameters=PARAMS)
    assert project_manager.get_current_project() is mine


def test_validation_error_pickles() -> None:
    error = failure_of(scores_frame().assign(profile_id=["a", "a", "b"]), "scores")
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.failures, copy.report) == (str(error), error.failures, error.report)


# --- import cost and network ------------------------------------------------------------------------------------

PROBE = textwrap.dedent(
    """
    import json, os, socket, sys

    OUTGOING = {"socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr",
                "socket.sendto", "socket.sendmsg", "http.client.connect", "urllib.Request"}
    seen = []
    sys.addaudithook(lambda event, args: seen.append(event) if event in OUTGOING else None)
    socket.getaddrinfo("127.0.0.1", 9)  # proves the hook sees a lookup
    hook_works = seen == ["socket.getaddrinfo"]
    seen.clear()

    import pandas as pd
    import customer_ai.validation as validation

    after_import = sorted(m for m in ("great_expectations", "airflow") if m in sys.modules)
    events = pd.DataFrame({"profile_id": ["a"], "timestamp": pd.Timestamp("2011-01-01", tz="UTC"),
                           "event_type": ["x"], "value": [1.0]})
    from customer_ai.spec import EventThresholds
    checked, parameters = validation.event_checks(events, EventThresholds(), pd.Timestamp("2011-12-09", tz="UTC"))
    report = validation.validate_frame(checked, "events", parameters=parameters)
    print(json.dumps({"hook_works": hook_works, "after_import": after_import,
                      "gx_used": "great_expectations" in sys.modules, "success": report["success"],
                      "analytics": os.environ.get("GX_ANALYTICS_ENABLED"), "network": seen}))
    """
)


def test_import_is_cheap_and_gx_never_goes_online() -> None:
    env = {k: v for k, v in os.environ.items() if k != "GX_ANALYTICS_ENABLED"}
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "hook_works": True,
        "after_import": [],
        "gx_used": True,
        "success": True,
        "analytics": "false",
        "network": [],
    }


CHATTER_PROBE = textwrap.dedent(
    """
    import logging, sys
    import pandas as pd
    from customer_ai import validation
    from customer_ai.spec import EventThresholds

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)  # what an Airflow task log captures
    events = pd.DataFrame({"profile_id": ["a"], "timestamp": pd.Timestamp("2011-01-01", tz="UTC"),
                           "event_type": ["x"], "value": [1.0]})
    checked, parameters = validation.event_checks(events, EventThresholds(), pd.Timestamp("2011-12-09", tz="UTC"))
    for _ in range(2):
        validation.validate_frame(checked, "events", parameters=parameters)
    print("done")
    """
)


def test_great_expectations_chatter_stays_out_of_the_logs() -> None:
    # before: 214 INFO lines like "Skipping registering function ... because it is a closure" per run
    done = subprocess.run([sys.executable, "-c", CHATTER_PROBE], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "done"
    chatter = [line for line in done.stderr.splitlines() if "great_expectations" in line or "registering" in line]
    assert chatter == []


def test_exact_duplicates_compare_rows_sharing_a_time_and_a_profile_and_find_what_a_full_comparison_finds() -> None:
    t0, t1 = pd.Timestamp("2011-01-01", tz="UTC"), pd.Timestamp("2011-01-02", tz="UTC")
    rows = [
        ("a", t0, "view", np.nan, "x"),
        ("a", t0, "purchase", 5.0, "x"),
        ("a", t0, "view", np.nan, "x"),  # repeats row 0 across a different row
        ("b", t0, "view", np.nan, "x"),
        ("b", t0, "view", np.nan, "y"),  # differs in an extra column only
        ("a", t1, "purchase", 5.0, "x"),  # the same as row 1 but a day later
        ("c", t1, "purchase", 5.0, "x"),
        ("c", t1, "purchase", 5.0, "x"),
        ("c", t1, "purchase", 5.0, "x"),
    ]
    events = pd.DataFrame(rows, columns=["profile_id", "timestamp", "event_type", "value", "store"])
    events = events.astype({"profile_id": "str", "event_type": "str", "store": "str"})
    expected = [False, False, True, False, False, False, False, True, True]
    assert exact_duplicates(events).tolist() == expected
    assert events.duplicated(keep="first").tolist() == expected
    shuffled = events.iloc[[5, 0, 7, 2, 1, 8, 3, 6, 4]].reset_index(drop=True)  # not in canonical order
    assert exact_duplicates(shuffled).tolist() == shuffled.duplicated(keep="first").tolist()
    assert exact_duplicates(events.iloc[:1]).tolist() == [False]
    assert exact_duplicates(events.iloc[:0]).tolist() == []


def test_exact_duplicates_agree_with_a_full_comparison_on_generated_logs() -> None:
    generator = np.random.default_rng(7)
    size = 5_000
    stamps = pd.Timestamp("2011-01-01", tz="UTC") + pd.to_timedelta(generator.integers(0, 40, size), unit="D")
    events = pd.DataFrame(
        {
            "profile_id": generator.choice(["p1", "p2", "p10", "é", "P1"], size),
            "timestamp": stamps,
            "event_type": generator.choice(["view", "purchase"], size),
            "value": generator.choice([np.nan, 1.0, 2.0], size),
        }
    ).astype({"profile_id": "str", "event_type": "str"})
    canonical = canonicalize(events)
    assert len(canonical) == size
    assert exact_duplicates(canonical).tolist() == canonical.duplicated(keep="first").tolist()
    assert exact_duplicates(events).tolist() == events.duplicated(keep="first").tolist()
