"""bench/engines.py: the SQL text and window helpers, and (where the engines' virtualenv exists) both engines against
our labels and features on a small log with events planted on the window boundaries."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import load_bench

engines = load_bench("engines")

JOB = {
    "snapshots": ["2023-12-02T00:00:00", "2023-11-02T00:00:00"],
    "goal_event_type": "purchase",
    "goal_window_days": 30,
    "eligible_event_type": "purchase",
    "eligibility_lookback_days": 365,
    "lookback_days": 228,
    "count_windows": [7, 30, 90, 228],
    "event_types": ["visit", "purchase"],
    "valued_sources": ["purchase", "large_purchase"],
    "large_value": 200,
}


def test_sources_windows_and_count_names() -> None:
    assert engines.sources(JOB) == {
        "visit": ("visit", None),
        "purchase": ("purchase", None),
        "large_purchase": ("purchase", 200.0),
    }
    assert engines.ratio_pairs(228) == [(30, 90), (90, 228)]
    assert engines.ratio_pairs(60) == [(30, 60)]
    assert engines.ratio_pairs(20) == []
    names = engines.count_names(JOB)
    assert names[:4] == ["visit_count_7d", "visit_count_30d", "visit_count_90d", "visit_count_228d"]
    assert names[-2:] == ["large_purchase_count_228d", "active_days"]
    assert len(names) == 3 * 4 + 1


def test_literals_quote_text_and_print_numbers() -> None:
    assert engines._literal("o'brien") == "'o''brien'"
    assert engines._literal(200) == "200.0"
    assert engines._condition("purchase", 200.0) == "w.event_type = 'purchase' AND w.value >= 200.0"
    assert engines._condition("visit", None, alias="e") == "e.event_type = 'visit'"


def test_the_query_has_half_open_windows_and_every_snapshot() -> None:
    sql = engines.duckdb_sql(JOB, JOB["snapshots"])
    assert "(VALUES (TIMESTAMP '2023-12-02 00:00:00'), (TIMESTAMP '2023-11-02 00:00:00')) AS s(as_of)" in sql
    assert (
        "count(*) FILTER (WHERE w.event_type = 'purchase' AND w.value >= 200.0 "
        "AND w.age_us <= 604800000000) AS large_purchase_count_7d"
    ) in sql
    assert "date_diff('microsecond', e.timestamp, s.as_of) AS age_us" in sql
    assert "max(w.age_us) / 86400000000.0 AS tenure_days" in sql
    assert (
        "count(*) FILTER (WHERE w.age_us <= 2592000000000) / nullif(count(*) FILTER (WHERE w.age_us <= "
        "7776000000000), 0) AS activity_ratio_30_90"
    ) in sql
    assert "ON e.timestamp >= s.as_of - INTERVAL 228 DAY AND e.timestamp < s.as_of\n" in sql
    assert "ON e.timestamp >= s.as_of - INTERVAL 365 DAY\n        AND e.timestamp < s.as_of + INTERVAL 30 DAY" in sql
    assert "coalesce(f.visit_count_90d, 0) AS visit_count_90d" in sql
    assert "coalesce(f.active_days, 0) AS active_days" in sql
    assert "f.visit_days_since_last" in sql
    assert "coalesce(f.visit_days_since_last" not in sql
    assert "sum(w.value) FILTER (WHERE w.event_type = 'purchase') AS purchase_value_sum" in sql
    assert "visit_value_sum" not in sql  # visits carry no value
    assert sql.count(" AS activity_ratio_") == 2
    one = engines.duckdb_sql(JOB, JOB["snapshots"][:1])
    assert "(VALUES (TIMESTAMP '2023-12-02 00:00:00')) AS s(as_of)" in one


# ---------------------------------------------------------------- both engines against ours (engines' virtualenv)


def _planted(snapshot: pd.Timestamp) -> pd.DataFrame:
    """Events of three profiles on the boundaries of the windows of ``snapshot`` (UTC, midnight)."""
    day = pd.Timedelta(days=1)
    rows = [
        ("pedge1", snapshot - 228 * day, "visit", None),  # the lookback's first instant: inside
        ("pedge1", snapshot - 90 * day - pd.Timedelta(microseconds=1), "visit", None),  # just outside 90 days
        ("pedge1", snapshot - 7 * day, "purchase", 250.0),  # exactly 7 days old: inside the 7-day window
        ("pedge1", snapshot - 4 * day - pd.Timedelta(seconds=1), "visit", None),  # 23:59:59, the day before ...
        ("pedge1", snapshot - 4 * day, "visit", None),  # ... midnight: its own day
        ("pedge1", snapshot, "purchase", 10.0),  # at T: not a feature, but the label
        ("pedge2", snapshot - pd.Timedelta(microseconds=1), "purchase", 5.0),  # just before T: eligible
        ("pedge2", snapshot + 30 * day, "purchase", 5.0),  # the goal window's end: not a positive
        ("pedge3", snapshot, "purchase", 5.0),  # at T only: not eligible at T
    ]
    frame = pd.DataFrame(rows, columns=["profile_id", "timestamp", "event_type", "value"])
    return frame.astype({"value": "float64"})


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    python = engines.VENV / "bin" / "python"
    if not python.exists():
        pytest.skip("the engines' virtualenv (var/bench/engines-venv) is not built: run bench/engines.py once")
    from bench.generate import write_dataset  # noqa: PLC0415

    folder = tmp_path_factory.mktemp("engines")
    write_dataset(folder, 2_000, seed=7)
    _, _, _, as_of, plan, _ = engines._ours(folder, 2_000)
    snapshot = plan.snapshots[-1]  # the earliest: its goal window and lookback lie inside the log
    events = pq.read_table(folder / "events.parquet")
    planted = _planted(snapshot.tz_convert("UTC"))
    table = pa.Table.from_pandas(planted, schema=events.schema, preserve_index=False)
    pq.write_table(pa.concat_tables([events, table]), folder / "events.parquet")
    profiles = pq.read_table(folder / "profiles.parquet")
    extra = pa.table(
        {"profile_id": ["pedge1", "pedge2", "pedge3"], "country": ["FR", "DE", "IT"]}, schema=profiles.schema
    )
    pq.write_table(pa.concat_tables([profiles, extra]), folder / "profiles.parquet")
    loaded = engines._ours(folder, 2_000)
    assert loaded[3] == as_of
    assert list(loaded[4].snapshots) == list(plan.snapshots)
    return folder, snapshot, loaded, python


@pytest.mark.parametrize(
    ("engine", "form", "ids"),
    [
        ("duckdb", "one-pass", "string"),
        ("duckdb", "per-snapshot", "string"),
        ("polars", "one-pass", "categorical"),
        ("polars", "per-snapshot", "string"),
    ],
)
def test_an_engine_agrees_with_ours_on_every_row(
    small: tuple, engine: str, form: str, ids: str, tmp_path: Path
) -> None:
    folder, snapshot, (events, attributes, spec, as_of, plan, feature_plan), python = small
    labels, frames, _, _ = engines._time_ours(events, attributes, spec, as_of)
    job = {**engines._job(folder, spec, plan, feature_plan, 1), "engine": engine, "form": form, "threads": 1}
    job["ids"] = ids
    engine_labels, matrix, reported = engines.run_engine(python, job, tmp_path)
    assert reported["timing"]["seconds"] > 0

    naive = snapshot.tz_localize(None)
    mine = engine_labels.loc[engine_labels["time"] == naive].set_index("profile_id")["label"]
    assert mine["pedge1"] == 1
    assert mine["pedge2"] == 0
    assert "pedge3" not in mine.index  # a purchase at T is not in the eligibility's lookback
    row = matrix.loc[(matrix["profile_id"] == "pedge1") & (matrix["as_of"] == naive)].iloc[0]
    assert row["tenure_days"] == 228.0
    assert row["visit_count_90d"] == 2
    assert row["visit_count_228d"] == 4
    assert row["purchase_count_7d"] == 1
    assert row["large_purchase_count_7d"] == 1
    assert row["purchase_days_since_last"] == 7.0
    assert row["purchase_value_sum"] == 250.0
    assert row["active_days"] == 5
    assert row["profile_country"] == "FR"

    agreement = engines.compare_engine(labels, frames, engine_labels, matrix)
    assert all(counts["identical"] for counts in agreement["labels"].values())
    differing = {name: found for name, found in agreement["features"].items() if found[0] != found[1]}
    assert differing == {}
    assert len(agreement["features"]) == 51
    assert agreement["ours_only"] == ["gap_std_days", "goal_chance_30d", "goal_expected_30d", "goal_p_alive"]


def test_the_comparison_reports_a_shifted_window(small: tuple, tmp_path: Path) -> None:
    """A closed window (``<=`` at T) counts the event at T: the comparison must say so, not hide it."""
    folder, snapshot, (events, attributes, spec, as_of, plan, feature_plan), python = small
    labels, frames, _, _ = engines._time_ours(events, attributes, spec, as_of)
    job = {**engines._job(folder, spec, plan, feature_plan, 1), "engine": "duckdb", "form": "one-pass", "threads": 1}
    engine_labels, matrix, _ = engines.run_engine(python, job, tmp_path)
    naive = snapshot.tz_localize(None)
    wrong = matrix.copy()
    edge = (wrong["profile_id"] == "pedge1") & (wrong["as_of"] == naive)
    wrong.loc[edge, "purchase_count_7d"] += 1  # what counting the purchase at T would give
    agreement = engines.compare_engine(labels, frames, engine_labels, wrong)
    agreeing, rows, _ = agreement["features"]["purchase_count_7d"]
    assert rows - agreeing == 1
