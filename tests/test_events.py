"""Tests for customer_ai.events: canonical columns, types, time zones, sorting, file loading and profiles."""

from __future__ import annotations

import io
import os
import re
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from psycopg2 import sql
from test_store import PG_DSN, admin, schemas

from customer_ai.events import (
    CANONICAL_COLUMNS,
    EventsError,
    canonicalize,
    check_attribute_join,
    event_table_start,
    events_start,
    load_event_file,
    load_profiles,
)

from conftest import RETAIL_EVENTS, ts


def raw(**columns: list) -> pd.DataFrame:
    return pd.DataFrame(columns)


def one_event(**changes: list) -> pd.DataFrame:
    columns = {"profile_id": ["a"], "timestamp": ["2011-01-01"], "event_type": ["purchase"]}
    columns.update(changes)
    return pd.DataFrame(columns)


# --- canonicalize -----------------------------------------------------------------------------------------------


def test_canonicalize_with_column_mapping() -> None:
    frame = raw(
        customer=[17850.0, 13047.0],
        ts=["2011-06-01T01:00:00+01:00", "2011-06-01 00:30"],
        event_type=["purchase", "view"],
        value=["12.5", None],
        country=["UK", "France"],
    )
    events = canonicalize(frame, {"profile_id": "customer", "timestamp": "ts"}, source="t.csv")
    assert list(events.columns) == ["profile_id", "timestamp", "event_type", "value", "country"]
    assert events["profile_id"].tolist() == ["17850", "13047"]
    assert events["timestamp"].tolist() == [ts("2011-06-01 00:00"), ts("2011-06-01 00:30")]
    assert events["event_type"].tolist() == ["purchase", "view"]
    assert events["value"].iloc[0] == 12.5
    assert np.isnan(events["value"].iloc[1])
    assert events["country"].tolist() == ["UK", "France"]
    assert list(events.index) == [0, 1]


def test_canonicalize_does_not_modify_its_input() -> None:
    frame = raw(customer=[1.0], ts=["2011-01-01"], event_type=["x"])
    before = frame.copy()
    canonicalize(frame, {"profile_id": "customer", "timestamp": "ts"})
    pd.testing.assert_frame_equal(frame, before)


def test_canonical_dtypes() -> None:
    events = canonicalize(one_event(value=[3]))
    assert str(events["timestamp"].dtype) == "datetime64[us, UTC]"
    assert events["value"].dtype == np.float64
    assert pd.api.types.is_string_dtype(events["profile_id"].dtype)
    assert pd.api.types.is_string_dtype(events["event_type"].dtype)
    assert CANONICAL_COLUMNS == ("profile_id", "timestamp", "event_type", "value")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2011-06-01T01:00:00+01:00", "2011-06-01 00:00"),
        ("2011-06-01T00:00:00Z", "2011-06-01 00:00"),
        ("2011-05-31T20:00:00-04:00", "2011-06-01 00:00"),
        ("2011-06-01 00:00:00", "2011-06-01 00:00"),
        ("2011-06-01", "2011-06-01 00:00"),
        ("2011-06-01T13:45:30.250", "2011-06-01 13:45:30.250"),
    ],
)
def test_timestamp_strings_become_utc(text: str, expected: str) -> None:
    assert canonicalize(one_event(timestamp=[text]))["timestamp"].tolist() == [ts(expected)]


def test_mixed_naive_and_aware_strings() -> None:
    events = canonicalize(
        raw(profile_id=["a", "b"], timestamp=["2011-06-01T03:00:00+02:00", "2011-06-01 02:00"], event_type=["x", "x"])
    )
    assert events["timestamp"].tolist() == [ts("2011-06-01 01:00"), ts("2011-06-01 02:00")]


def test_naive_datetime_column_taken_as_utc() -> None:
    stamps = pd.to_datetime(["2011-06-01 10:00"])
    assert stamps.tz is None
    events = canonicalize(one_event(timestamp=stamps))
    assert events["timestamp"].tolist() == [ts("2011-06-01 10:00")]


def test_aware_datetime_column_converted_to_utc() -> None:
    stamps = pd.to_datetime(["2011-06-01 10:00", "2011-01-01 10:00"]).tz_localize("Europe/London")
    events = canonicalize(raw(profile_id=["summer", "winter"], timestamp=stamps, event_type=["x", "x"]))
    assert events["profile_id"].tolist() == ["winter", "summer"]
    assert events["timestamp"].tolist() == [ts("2011-01-01 10:00"), ts("2011-06-01 09:00")]
    assert str(events["timestamp"].dtype) == "datetime64[us, UTC]"


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        ([17850.0, 13047.0], ["17850", "13047"]),
        ([17850, 13047], ["17850", "13047"]),
        (["C17850", "007"], ["C17850", "007"]),
        ([1.5, 2.0], ["1.5", "2.0"]),
    ],
)
def test_profile_ids_become_strings(ids: list, expected: list[str]) -> None:
    frame = raw(profile_id=ids, timestamp=["2011-01-01", "2011-01-01"], event_type=["x", "x"])
    assert sorted(canonicalize(frame)["profile_id"].tolist()) == sorted(expected)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["12.5", "3"], [12.5, 3.0]),
        ([12, 3], [12.0, 3.0]),
        (["-1e2", " 7 "], [-100.0, 7.0]),
    ],
)
def test_values_parsed_as_float(values: list, expected: list[float]) -> None:
    frame = raw(profile_id=["a", "b"], timestamp=["2011-01-01", "2011-01-02"], event_type=["x", "x"], value=values)
    events = canonicalize(frame)
    assert events["value"].dtype == np.float64
    assert events["value"].tolist() == expected


def test_missing_value_cells_become_nan() -> None:
    frame = raw(profile_id=["a", "b"], timestamp=["2011-01-01", "2011-01-02"], event_type=["x", "x"], value=["1", None])
    assert canonicalize(frame)["value"].isna().tolist() == [False, True]


def test_missing_value_column_is_all_nan() -> None:
    events = canonicalize(raw(profile_id=["a", "b"], timestamp=["2011-01-01", "2011-01-02"], event_type=["x", "y"]))
    assert list(events.columns) == ["profile_id", "timestamp", "event_type", "value"]
    assert events["value"].dtype == np.float64
    assert events["value"].isna().tolist() == [True, True]


def test_extra_columns_kept_after_canonical_ones() -> None:
    frame = raw(channel=["web"], event_type=["x"], store=[7], timestamp=["2011-01-01"], value=[1.0], profile_id=["a"])
    events = canonicalize(frame)
    assert list(events.columns) == ["profile_id", "timestamp", "event_type", "value", "channel", "store"]
    assert events["channel"].tolist() == ["web"]
    assert events["store"].tolist() == [7]


def test_sorted_by_timestamp_then_profile_id() -> None:
    frame = raw(
        profile_id=["b", "a", "c", "a", "b"],
        timestamp=["2011-01-02", "2011-01-02", "2011-01-01", "2011-01-03", "2011-01-01"],
        event_type=["e1", "e2", "e3", "e4", "e5"],
    )
    events = canonicalize(frame)
    assert events["event_type"].tolist() == ["e5", "e3", "e2", "e1", "e4"]
    assert events["profile_id"].tolist() == ["b", "c", "a", "b", "a"]
    assert list(events.index) == [0, 1, 2, 3, 4]


def test_sort_is_stable_for_ties() -> None:
    frame = raw(profile_id=["a", "a", "a"], timestamp=["2011-01-01"] * 3, event_type=["first", "second", "third"])
    assert canonicalize(frame)["event_type"].tolist() == ["first", "second", "third"]


def test_sorting_uses_utc_instant_not_local_text() -> None:
    frame = raw(
        profile_id=["paris", "london"],
        timestamp=["2011-06-01T01:30:00+02:00", "2011-06-01T00:00:00+01:00"],
        event_type=["x", "x"],
    )
    events = canonicalize(frame)
    assert events["profile_id"].tolist() == ["london", "paris"]
    assert events["timestamp"].tolist() == [ts("2011-05-31 23:00"), ts("2011-05-31 23:30")]


def test_empty_frame() -> None:
    frame = raw(profile_id=[], timestamp=[], event_type=[])
    events = canonicalize(frame)
    assert len(events) == 0
    assert list(events.columns) == ["profile_id", "timestamp", "event_type", "value"]


# --- canonicalize errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dropped", ["profile_id", "timestamp", "event_type"])
def test_missing_required_column(dropped: str) -> None:
    frame = one_event().drop(columns=[dropped])
    with pytest.raises(EventsError, match=re.escape(f"t.csv: missing required column(s) ['{dropped}']")):
        canonicalize(frame, source="t.csv")


def test_missing_required_columns_listed_with_available_columns() -> None:
    frame = raw(customer=["a"], event_type=["x"])
    with pytest.raises(EventsError) as info:
        canonicalize(frame, source="t.csv")
    assert str(info.value) == (
        "t.csv: missing required column(s) ['profile_id', 'timestamp']; map them with events.columns "
        "(columns: customer, event_type)"
    )


def test_mapping_names_a_missing_column() -> None:
    with pytest.raises(EventsError) as info:
        canonicalize(one_event(), {"profile_id": "customer", "timestamp": "timestamp"}, source="t.csv")
    assert str(info.value) == (
        "t.csv: the column mapping names columns the data does not have: profile_id <- 'customer' "
        "(columns: profile_id, timestamp, event_type)"
    )


def test_null_ids_give_count_and_rows() -> None:
    frame = raw(profile_id=[1, None, 3, None], timestamp=["2011-01-01"] * 4, event_type=["x"] * 4)
    with pytest.raises(EventsError) as info:
        canonicalize(frame, source="t.csv")
    assert str(info.value) == (
        "t.csv: column 'profile_id' is empty on 2 of 4 rows (rows 1, 3); drop or fill those rows first"
    )


def test_many_null_ids_show_five_rows() -> None:
    frame = raw(profile_id=[None] * 7 + ["a"], timestamp=["2011-01-01"] * 8, event_type=["x"] * 8)
    with pytest.raises(EventsError, match=re.escape("empty on 7 of 8 rows (rows 0, 1, 2, 3, 4 ...)")):
        canonicalize(frame)


def test_empty_text_ids_are_refused() -> None:
    # before: an id "" was scored as a profile of its own
    frame = raw(profile_id=["a", "", "b"], timestamp=["2011-01-01"] * 3, event_type=["x"] * 3)
    with pytest.raises(EventsError) as info:
        canonicalize(frame, source="t.csv")
    assert str(info.value) == (
        "t.csv: column 'profile_id' is empty text on 1 of 3 rows (rows 1); drop or fill those rows first"
    )


@pytest.mark.parametrize("padded", [" 12346", "12346 ", "\t12346", "12346\n"])
def test_ids_with_white_space_around_them_are_refused(padded: str) -> None:
    frame = raw(profile_id=["12346", padded], timestamp=["2011-01-01"] * 2, event_type=["x"] * 2)
    with pytest.raises(EventsError) as info:
        canonicalize(frame, source="t.csv")
    assert str(info.value) == (
        f"t.csv: column 'profile_id' has 1 ids with white space around them (rows 1, e.g. {padded!r}); strip "
        f"them first, or '12346' and {padded!r} would be two profiles"
    )


def test_ids_with_a_nul_character_are_refused() -> None:
    # before: accepted, then the PostgreSQL store failed after the whole training
    frame = raw(profile_id=["a", "b\x00c"], timestamp=["2011-01-01"] * 2, event_type=["x"] * 2)
    with pytest.raises(EventsError, match=re.escape("t.csv: column 'profile_id' has 1 ids with a NUL character")):
        canonicalize(frame, source="t.csv")


def test_ids_with_inner_spaces_and_odd_characters_are_kept_exactly() -> None:
    ids = ["a b", "x\ny", "semi;colon", "quote'\"", "\x1b[31mred"]
    frame = raw(profile_id=ids, timestamp=["2011-01-01"] * 5, event_type=["x"] * 5)
    assert sorted(canonicalize(frame)["profile_id"]) == sorted(ids)


@pytest.mark.parametrize("column", ["timestamp", "event_type"])
def test_null_timestamp_or_event_type(column: str) -> None:
    frame = raw(profile_id=["a", "b"], timestamp=["2011-01-01", "2011-01-02"], event_type=["x", "y"])
    frame.loc[1, column] = None
    with pytest.raises(EventsError, match=re.escape(f"events: column '{column}' is empty on 1 of 2 rows (rows 1)")):
        canonicalize(frame)


def test_unparseable_timestamps() -> None:
    frame = raw(profile_id=["a", "b", "c"], timestamp=["2011-01-01", "yesterday", "31/12/2011"], event_type=["x"] * 3)
    with pytest.raises(EventsError) as info:
        canonicalize(frame, source="t.csv")
    assert str(info.value) == (
        "t.csv: column 'timestamp' has 2 values that are not ISO 8601 dates (rows 1, 2, e.g. 'yesterday')"
    )


def test_non_numeric_values() -> None:
    frame = raw(
        profile_id=["a", "b", "c"], timestamp=["2011-01-01"] * 3, event_type=["x"] * 3, value=["1", "12,5", "n/a"]
    )
    with pytest.raises(EventsError) as info:
        canonicalize(frame, source="t.csv")
    assert str(info.value) == "t.csv: column 'value' has 2 non-numeric values (rows 1, 2, e.g. '12,5')"


# --- load_event_file --------------------------------------------------------------------------------------------


@pytest.fixture
def raw_log() -> pd.DataFrame:
    return raw(
        customer=["17850", "13047", "17850"],
        ts=["2011-06-02T09:00:00Z", "2011-06-01T01:00:00+01:00", "2011-06-01T08:00:00"],
        event_type=["purchase", "view", "cancellation"],
        value=[12.5, None, -3.0],
        country=["UK", "France", "UK"],
    )


def expected_log() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "profile_id": ["13047", "17850", "17850"],
            "timestamp": [ts("2011-06-01 00:00"), ts("2011-06-01 08:00"), ts("2011-06-02 09:00")],
            "event_type": ["view", "cancellation", "purchase"],
            "value": [np.nan, -3.0, 12.5],
            "country": ["France", "UK", "UK"],
        }
    )


def check_log(events: pd.DataFrame) -> None:
    expected = expected_log()
    assert list(events.columns) == list(expected.columns)
    assert events["value"].tolist() == pytest.approx(expected["value"].tolist(), nan_ok=True)
    for column in ["profile_id", "timestamp", "event_type", "country"]:
        assert events[column].tolist() == expected[column].tolist(), column
    assert str(events["timestamp"].dtype) == "datetime64[us, UTC]"


def test_load_csv_round_trip(tmp_path: Path, raw_log: pd.DataFrame) -> None:
    path = tmp_path / "events.csv"
    raw_log.to_csv(path, index=False)
    check_log(load_event_file(path, {"profile_id": "customer", "timestamp": "ts"}))


def test_load_parquet_round_trip(tmp_path: Path, raw_log: pd.DataFrame) -> None:
    path = tmp_path / "events.parquet"
    raw_log.to_parquet(path, index=False)
    check_log(load_event_file(str(path), {"profile_id": "customer", "timestamp": "ts"}))


def test_load_parquet_with_datetime_and_float_ids(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    stamps = pd.to_datetime(["2011-06-01 10:00", "2011-06-01 09:00"]).tz_localize("Europe/Paris")
    raw(profile_id=[17850.0, 13047.0], timestamp=stamps, event_type=["x", "y"]).to_parquet(path)
    events = load_event_file(path)
    assert events["profile_id"].tolist() == ["13047", "17850"]
    assert events["timestamp"].tolist() == [ts("2011-06-01 07:00"), ts("2011-06-01 08:00")]


def test_load_csv_keeps_profile_id_as_text(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("profile_id,timestamp,event_type,value\n007,2011-01-02,purchase,12.5\n12,2011-01-01,view,\n")
    events = load_event_file(path)
    assert events["profile_id"].tolist() == ["12", "007"]
    assert events["value"].isna().tolist() == [True, False]


def test_load_uppercase_extension(tmp_path: Path) -> None:
    path = tmp_path / "EVENTS.CSV"
    path.write_text("profile_id,timestamp,event_type\na,2011-01-01,x\n")
    assert load_event_file(path)["profile_id"].tolist() == ["a"]


def test_load_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("profile_id,timestamp,event_type\na,2011-01-01,x\nb,soon,x\n")
    with pytest.raises(EventsError, match=re.escape(f"{path}: column 'timestamp' has 1 values")):
        load_event_file(path)


def test_load_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.parquet"
    with pytest.raises(EventsError, match=re.escape(f"{path}: file not found")):
        load_event_file(path)


@pytest.mark.parametrize("name", ["events.txt", "events.json", "events"])
def test_load_wrong_extension(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("profile_id,timestamp,event_type\na,2011-01-01,x\n")
    suffix = Path(name).suffix
    with pytest.raises(
        EventsError, match=re.escape(f"{path}: unsupported file type {suffix!r} (use .parquet or .csv)")
    ):
        load_event_file(path)


# --- load_profiles ----------------------------------------------------------------------------------------------


def test_empty_csv_file_is_named(tmp_path: Path) -> None:
    # before: pandas' EmptyDataError, a traceback with exit 1
    path = tmp_path / "events.csv"
    path.write_bytes(b"")
    with pytest.raises(EventsError, match=re.escape(f"{path}: the file is empty (not even a header line)")):
        load_event_file(path)


def test_profile_file_ids_with_spaces_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "profiles.csv"
    path.write_text("customer,country\nC1,UK\n C2,France\n")
    with pytest.raises(EventsError, match=re.escape(f"{path}: column 'customer' has 1 ids with white space")):
        load_profiles(path, ["country"], id_column="customer")


def test_attribute_join_counts_profiles_without_attributes() -> None:
    events = canonicalize(raw(profile_id=["1", "2", "2", "3"], timestamp=["2011-01-01"] * 4, event_type=["x"] * 4))
    attributes = pd.DataFrame({"country": ["UK", "FR"]}, index=pd.Index(["1", "3"], name="profile_id"))
    assert check_attribute_join(events, attributes, "unit") == {
        "profiles": 3,
        "with_attributes": 2,
        "without_attributes": 1,
    }
    assert check_attribute_join(events, None, "unit") is None


def test_float_looking_ids_that_join_nothing_are_an_error(tmp_path: Path) -> None:
    # before: a CSV with ids 12346.0 joined 0 of 20,329 rows to profiles 12346 and trained a different model
    path = tmp_path / "events.csv"
    path.write_text("profile_id,timestamp,event_type\n12346.0,2011-01-01,x\n12347.0,2011-01-02,x\n")
    events = load_event_file(path)
    assert events["profile_id"].tolist() == ["12346.0", "12347.0"]  # text, exactly as written
    attributes = pd.DataFrame({"country": ["UK"]}, index=pd.Index(["12346"], name="profile_id"))
    with pytest.raises(EventsError) as info:
        check_attribute_join(events, attributes, "instance unit")
    assert str(info.value) == (
        "instance unit: none of the 2 profiles in the events has a row in the profile file (event ids look like "
        "'12346.0', profile ids like '12346'); the ids must be written the same way in both"
    )


def test_load_profiles_parquet(tmp_path: Path) -> None:
    path = tmp_path / "profiles.parquet"
    raw(profile_id=[17850.0, 13047.0], country=["UK", "France"], age=[30, 40]).to_parquet(path)
    profiles = load_profiles(path, ["country"])
    assert profiles.index.name == "profile_id"
    assert profiles.index.tolist() == ["17850", "13047"]
    assert list(profiles.columns) == ["country"]
    assert profiles.loc["13047", "country"] == "France"


def test_load_profiles_csv_with_id_column(tmp_path: Path) -> None:
    path = tmp_path / "profiles.csv"
    path.write_text("customer,country,age\nC1,UK,30\nC2,France,40\n")
    profiles = load_profiles(path, ["age", "country"], id_column="customer")
    assert profiles.index.name == "profile_id"
    assert profiles.index.tolist() == ["C1", "C2"]
    assert list(profiles.columns) == ["age", "country"]
    assert profiles["age"].tolist() == [30, 40]


def test_load_profiles_duplicate_ids(tmp_path: Path) -> None:
    path = tmp_path / "profiles.parquet"
    raw(profile_id=["1", "2", "1"], country=["UK", "France", "Spain"]).to_parquet(path)
    with pytest.raises(EventsError) as info:
        load_profiles(path, ["country"])
    assert (
        str(info.value) == f"{path}: 2 rows share a profile_id (e.g. '1'); the profile file needs one row per profile"
    )


def test_load_profiles_duplicates_after_id_normalisation(tmp_path: Path) -> None:
    path = tmp_path / "profiles.parquet"
    raw(profile_id=[5.0, 6.0, 5.0], country=["UK", "France", "Spain"]).to_parquet(path)
    with pytest.raises(EventsError, match=re.escape("2 rows share a profile_id (e.g. '5')")):
        load_profiles(path, ["country"])


@pytest.mark.parametrize(
    ("attributes", "id_column", "missing"),
    [(["age"], "profile_id", "['age']"), (["country"], "customer", "['customer']")],
)
def test_load_profiles_missing_column(tmp_path: Path, attributes: list[str], id_column: str, missing: str) -> None:
    path = tmp_path / "profiles.parquet"
    raw(profile_id=["1"], country=["UK"]).to_parquet(path)
    with pytest.raises(EventsError) as info:
        load_profiles(path, attributes, id_column=id_column)
    assert str(info.value) == f"{path}: missing profile column(s) {missing} (columns: profile_id, country)"


def test_load_profiles_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "profiles.csv"
    with pytest.raises(EventsError, match=re.escape(f"{path}: file not found")):
        load_profiles(path, ["country"])


def test_csv_ids_keep_leading_zeros_when_mapped(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("customer,ts,event_type\n007,2011-01-01T00:00:00Z,purchase\n")
    events = load_event_file(path, {"profile_id": "customer", "timestamp": "ts"})
    assert events["profile_id"].tolist() == ["007"]
    profiles_path = tmp_path / "profiles.csv"
    profiles_path.write_text("customer,country\n007,France\n")
    assert load_profiles(profiles_path, ["country"], id_column="customer").index.tolist() == ["007"]


def test_numeric_timestamps_are_refused_not_guessed() -> None:
    with pytest.raises(EventsError, match=r"column 'timestamp' holds numbers \(int64\); convert epoch values"):
        canonicalize(raw(profile_id=["a"], timestamp=[1293840000], event_type=["purchase"]))


def test_events_are_ordered_by_time_then_id_as_a_stable_sort_would():
    rng = np.random.default_rng(2)
    ids = np.array(["b", "a", "ä", "Z", "é", "10", "9", "a b", "💡"])
    raw = pd.DataFrame(
        {
            "profile_id": rng.choice(ids, 400),
            "event_type": rng.choice(["visit", "purchase"], 400),
            "timestamp": pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 5, 400), unit="D"),
            "value": np.arange(400.0),  # tells apart rows with the same time and id
        }
    )
    expected = raw.sort_values(["timestamp", "profile_id"], kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(canonicalize(raw), expected[list(canonicalize(raw).columns)], check_exact=True)


def test_events_far_from_today_keep_their_order():
    raw = pd.DataFrame(
        {
            "profile_id": ["a", "b", "a"],
            "event_type": ["visit"] * 3,
            "timestamp": pd.to_datetime(["2500-01-02", "1500-06-01", "2500-01-01"]).as_unit("us").tz_localize("UTC"),
        }
    )
    assert canonicalize(raw)["timestamp"].dt.year.tolist() == [1500, 2500, 2500]
    assert canonicalize(raw)["timestamp"].dt.day.tolist() == [1, 1, 2]


def test_text_columns_are_sorted_with_their_missing_values_and_types_kept():
    raw = pd.DataFrame(
        {
            "profile_id": ["b", "a", "c", "a"],
            "event_type": pd.array(["e1", "e2", "e3", "e4"], dtype="str"),
            "timestamp": ["2011-01-03", "2011-01-02", "2011-01-01", "2011-01-03"],
            "channel": pd.array(["web", None, "app", "web"], dtype="str"),
            "note": pd.Series(["x", None, "y", "z"], dtype=object),
        }
    )
    events = canonicalize(raw)
    assert events["profile_id"].tolist() == ["c", "a", "a", "b"]
    assert events["event_type"].tolist() == ["e3", "e2", "e4", "e1"]
    assert events["channel"].isna().tolist() == [False, True, False, False]
    assert events["channel"].fillna("-").tolist() == ["app", "-", "web", "web"]
    assert events["note"].tolist() == ["y", None, "z", "x"]
    dtypes = [str(events[c].dtype) for c in ("profile_id", "event_type", "channel", "note")]
    assert dtypes == ["str", "str", "str", "object"]


# --- where the history starts (issue 18) ------------------------------------------------------------------------


def retail_with(day: str, count: int) -> pd.DataFrame:
    """Return the real online-retail events plus ``count`` copies of its first rows dated ``day`` (a broken date)."""
    real = pd.read_parquet(RETAIL_EVENTS, columns=["profile_id", "timestamp", "event_type", "value"])
    broken = real.head(count).assign(timestamp=pd.Series([ts(day)] * count, dtype=real["timestamp"].dtype))
    return pd.concat([broken, real], ignore_index=True)


def test_events_start_warns_about_a_few_early_events(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="customer_ai"):
        found = events_start(retail_with("1900-01-01", 20)["timestamp"], "events.parquet")
    assert found.start == ts("2010-12-01 08:26")
    assert caplog.messages == [found.describe()]
    assert caplog.messages[0].startswith("events.parquet: 20 of 22,210 events (0.09%), dated 1900-01-01, lie before")


def test_events_start_refuses_more_than_a_thousandth_before_the_start() -> None:
    with pytest.raises(EventsError) as info:
        events_start(retail_with("1970-01-01", 1_200)["timestamp"], "events.parquet")
    assert str(info.value).startswith(
        "events.parquet: 1,200 of 23,390 events (5.1%), dated 1970-01-01, lie before 14,943 days without any event; "
        "the events really start on 2010-12-01."
    )
    assert str(info.value).endswith(
        "correct the dates of those rows or filter them out of the events (1900-01-01 "
        "and 1970-01-01 are the usual stand-ins for a missing date)"
    )


@pytest.fixture(scope="module")
def start_tables() -> Iterator[str]:
    """A schema with the real online-retail events as tables: clean, with 20 rows of 1900, with 5% of 1970."""
    with schemas("test_events_start") as fresh:
        name = fresh()
        with admin() as connection, connection.cursor() as cursor:
            cursor.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
            for table, day, count, kind in [
                ("clean", "1900-01-01", 0, "timestamptz"),
                ("broken", "1900-01-01", 20, "timestamptz"),
                ("naive", "1900-01-01", 20, "timestamp"),
                ("daily", "1900-01-01", 20, "date"),
                ("nineteen_seventy", "1970-01-01", 1_200, "timestamptz"),
            ]:
                cursor.execute(
                    sql.SQL("CREATE TABLE {} (customer text, occurred_at {}, event_type text)").format(
                        sql.Identifier(name, table), sql.SQL(kind)
                    )
                )
                rows = retail_with(day, count)[["profile_id", "timestamp", "event_type"]]
                buffer = io.StringIO(rows.assign(timestamp=rows["timestamp"].astype(str)).to_csv(index=False))
                copy = sql.SQL("COPY {} FROM STDIN WITH (FORMAT csv, HEADER true)").format(sql.Identifier(name, table))
                cursor.copy_expert(copy.as_string(connection), buffer)
        yield name


def test_a_tables_history_starts_where_a_files_does(start_tables: str, caplog: pytest.LogCaptureFixture) -> None:
    # before: the table's min(timestamp), 1900-01-01, made 111 years of history
    mapping = {"timestamp": "occurred_at"}
    clean = event_table_start(PG_DSN, f"{start_tables}.clean", mapping)
    assert (clean.start, clean.events, clean.before) == (ts("2010-12-01 08:26"), 22_190, 0)
    with caplog.at_level("WARNING", logger="customer_ai"):
        broken = event_table_start(PG_DSN, f"{start_tables}.broken", mapping)
    expected = events_start(retail_with("1900-01-01", 20)["timestamp"], f"postgresql table {start_tables}.broken")
    assert broken == expected  # the same start, counts, dates and message as for the same events in a file
    assert caplog.messages == [expected.describe(), expected.describe()]
    naive = event_table_start(PG_DSN, f"{start_tables}.naive", mapping)
    assert (naive.start, naive.before, naive.first_before) == (ts("2010-12-01 08:26"), 20, ts("1900-01-01"))
    daily = event_table_start(PG_DSN, f"{start_tables}.daily", mapping)
    assert (daily.start, daily.before, daily.last_before) == (ts("2010-12-01"), 20, ts("1900-01-01"))


def test_a_table_with_more_than_a_thousandth_before_a_year_without_events_is_refused(start_tables: str) -> None:
    with pytest.raises(EventsError) as info:
        event_table_start(PG_DSN, f"{start_tables}.nineteen_seventy", {"timestamp": "occurred_at"})
    assert str(info.value).startswith(
        f"postgresql table {start_tables}.nineteen_seventy: 1,200 of 23,390 events (5.1%), dated 1970-01-01, lie "
        "before 14,943 days without any event; the events really start on 2010-12-01."
    )


def test_a_table_start_names_a_missing_column(start_tables: str) -> None:
    with pytest.raises(EventsError, match=re.escape(f'postgresql table {start_tables}.clean: column "timestamp"')):
        event_table_start(PG_DSN, f"{start_tables}.clean")


# --- NUL characters in text (issue 18) --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "values", "shown"),
    [
        ("event_type", ["purchase", "pur\x00chase", "x\x00"], "'pur\\x00chase'"),
        ("channel", ["web", "a" * 30 + "\x00" + "b" * 30, "app"], "...'" + "a" * 20 + "\\x00" + "b" * 19 + "'..."),
        ("note", pd.Series([{"a": 1}, None, "\x00"], dtype=object), "'\\x00'"),
    ],
)
def test_text_with_a_nul_character_is_refused_in_every_column(column: str, values: list, shown: str) -> None:
    # before: accepted; the report then held raw NUL bytes and PostgreSQL's json factors \u0000
    frame = raw(profile_id=["a", "b", "c"], timestamp=["2011-01-01"] * 3, event_type=["x"] * 3)
    frame[column] = values
    count = 2 if column == "event_type" else 1
    rows = "rows 1, 2" if column == "event_type" else f"rows {1 if column == 'channel' else 2}"
    with pytest.raises(EventsError) as info:
        canonicalize(frame, source="t.csv")
    assert str(info.value) == (
        f"t.csv: column {column!r} has {count} values with a NUL character ({rows}, e.g. {shown}); no database "
        "text column can hold one: remove the NUL characters, or those rows, first"
    )


def test_a_nul_character_in_a_parquet_category_or_a_csv_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    frame = raw(profile_id=["a", "b"], timestamp=["2011-01-01"] * 2, event_type=["x", "y"])
    frame.assign(channel=pd.Categorical(["web", "we\x00b"])).to_parquet(path)
    with pytest.raises(EventsError, match=re.escape(f"{path}: column 'channel' has 1 values with a NUL character")):
        load_event_file(path)
    csv = tmp_path / "events.csv"
    csv.write_bytes(b"profile_id,timestamp,event_type\na,2011-01-01,pur\x00chase\n")
    with pytest.raises(EventsError, match=re.escape(f"{csv}: column 'event_type' has 1 values with a NUL")):
        load_event_file(csv)


def test_tabs_and_newlines_in_text_are_data() -> None:
    frame = raw(profile_id=["a", "b"], timestamp=["2011-01-01"] * 2, event_type=["x\ty", "line\nbreak\r"])
    assert sorted(canonicalize(frame)["event_type"]) == ["line\nbreak\r", "x\ty"]


def test_a_profile_attribute_with_a_nul_character_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "profiles.csv"
    path.write_bytes(b"customer,country,age\nC1,UK,30\nC2,Fr\x00ance,40\n")
    with pytest.raises(EventsError) as info:
        load_profiles(path, ["age", "country"], id_column="customer")
    assert str(info.value) == (
        f"{path}: column 'country' has 1 values with a NUL character (rows 1, e.g. 'Fr\\x00ance'); no database "
        "text column can hold one: remove the NUL characters, or those rows, first"
    )
    assert load_profiles(path, ["age"], id_column="customer")["age"].tolist() == [30, 40]  # columns not read: fine


# --- event files that are not what their name says (issue 18) ----------------------------------------------------


def _cut(path: Path) -> None:
    good = RETAIL_EVENTS.read_bytes()
    path.write_bytes(good[: len(good) // 2])


def _damaged(path: Path) -> None:
    good = RETAIL_EVENTS.read_bytes()
    path.write_bytes(good[:1000] + bytes(b ^ 0xFF for b in good[1000:1200]) + good[1200:])


NOT_PARQUET = "{path}: the file is not Parquet, or is damaged (cut short?): "
NOT_UTF8 = "{path}: the file is not UTF-8 text: "
CAFE = "profile_id,timestamp,event_type\na,2011-01-01,café\n"

# case: (file name, how to make it, the message it must give: the start of it)
BAD_SOURCES = {
    "truncated parquet": (
        "cut.parquet",
        _cut,
        NOT_PARQUET + "Parquet magic bytes not found in footer. Either the file is corrupted or this is not a parquet "
        "file.",
    ),
    "damaged parquet": ("damaged.parquet", _damaged, NOT_PARQUET + "Corrupt snappy compressed data."),
    "garbage parquet": (
        "garbage.parquet",
        lambda path: path.write_text("profile_id,timestamp,event_type\na,2011-01-01,x\n"),
        NOT_PARQUET + "Parquet magic bytes not found in footer.",
    ),
    "folder named csv": (
        "x.csv",
        Path.mkdir,
        "{path}: is a folder, not a CSV file (only Parquet data can be a folder of files)",
    ),
    "empty parquet folder": (
        "x.parquet",
        lambda path: (path / "_SUCCESS").mkdir(parents=True),
        "{path}: the folder holds no Parquet files (files whose names start with '.' or '_' are skipped)",
    ),
    "utf-16 csv": (
        "utf16.csv",
        lambda path: path.write_text(CAFE, encoding="utf-16"),
        NOT_UTF8 + "it starts with a UTF-16 byte order mark; save it as UTF-8",
    ),
    "latin-1 csv": (
        "latin.csv",
        lambda path: path.write_text(CAFE, encoding="latin-1"),
        NOT_UTF8 + "line 2, byte 17 is 0xe9 (in b'a,2011-01-01,caf\\xe9'); save it as UTF-8 (Latin-1 and "
        "Windows-1252, which some spreadsheets write, are not read)",
    ),
    "symlink loop": (
        "loop.csv",
        lambda path: path.symlink_to(path),
        "{path}: a loop of symbolic links (it never leads to a file)",
    ),
    "fifo": (
        "pipe.csv",
        os.mkfifo,
        "{path}: is a named pipe (FIFO), not a file: read a regular file or a folder of Parquet files",
    ),
}


def bad_source(tmp_path: Path, case: str) -> tuple[Path, str]:
    """Make a bad event source of one kind in ``tmp_path``; return it and the message it must give."""
    name, make, message = BAD_SOURCES[case]
    path = tmp_path / name
    make(path)
    return path, message.format(path=path)


@contextmanager
def at_most(seconds: int) -> Iterator[None]:
    """Fail instead of hanging (reading a named pipe blocks until a writer comes)."""

    def expire(*_: object) -> None:
        raise TimeoutError(f"still blocked after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("case", BAD_SOURCES)
def test_a_source_that_is_not_what_its_name_says_is_named_with_what_is_wrong(tmp_path: Path, case: str) -> None:
    # before: tracebacks (ArrowInvalid, OSError, IsADirectoryError, UnicodeDecodeError), "missing required
    # column(s) ... (columns: )" for an empty folder, "file not found" for a loop, and a read that never ended
    path, message = bad_source(tmp_path, case)
    with at_most(20), pytest.raises(EventsError) as info:
        load_event_file(path)
    assert str(info.value).startswith(message)
    with at_most(20), pytest.raises(EventsError) as info:
        load_profiles(path, ["country"])
    assert str(info.value).startswith(message)


def test_a_parquet_folder_is_read_and_anything_odd_in_it_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "events.parquet"
    folder.mkdir()
    raw(profile_id=["a"], timestamp=["2011-01-01"], event_type=["x"]).to_parquet(folder / "part-0.parquet")
    raw(profile_id=["b"], timestamp=["2011-01-02"], event_type=["y"]).to_parquet(folder / "part-1.parquet")
    (folder / "_SUCCESS").write_text("")
    assert load_event_file(folder)["profile_id"].tolist() == ["a", "b"]
    (folder / "notes.txt").write_text("not parquet\n")
    with pytest.raises(EventsError) as info:
        load_event_file(folder)
    assert str(info.value).startswith(f"{folder}: a file of the folder is not Parquet, or is damaged (cut short?): ")
    assert "notes.txt" in str(info.value)
    (folder / "notes.txt").unlink()
    os.mkfifo(folder / "part-2.parquet")
    with at_most(20), pytest.raises(EventsError) as info:
        load_event_file(folder)
    assert str(info.value) == (
        f"{folder / 'part-2.parquet'}: is a named pipe (FIFO), not a file: read a regular file or a folder of "
        "Parquet files"
    )


def test_a_dangling_symbolic_link_says_where_it_points(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.symlink_to(tmp_path / "gone.csv")
    with pytest.raises(EventsError) as info:
        load_event_file(path)
    assert str(info.value) == f"{path}: file not found (a symbolic link to {str(tmp_path / 'gone.csv')!r}, which " + (
        "does not exist)"
    )


def test_a_csv_with_a_row_of_too_many_fields_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("profile_id,timestamp,event_type\na,2011-01-01,x\nb,2011-01-01,x,y,z\n")
    with pytest.raises(EventsError) as info:
        load_event_file(path)
    assert str(info.value) == (
        f"{path}: not a readable CSV file: Error tokenizing data. C error: Expected 3 fields in line 3, saw 5"
    )


def test_a_utf8_csv_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_bytes("profile_id,timestamp,event_type\na,2011-01-01,café\n".encode("utf-8-sig"))
    assert load_event_file(path)["event_type"].tolist() == ["café"]


def test_utf16_text_without_a_byte_order_mark_is_named(tmp_path: Path) -> None:
    # before: read as UTF-8 with a NUL byte after every letter: "missing required column(s)" with garbled names
    path = tmp_path / "events.csv"
    path.write_text("profile_id,timestamp,event_type\na,2011-01-01,x\n", encoding="utf-16-le")
    with pytest.raises(EventsError) as info:
        load_event_file(path)
    assert str(info.value) == (
        f"{path}: the file is not UTF-8 text: its first characters hold NUL bytes, as UTF-16 text does; save it as "
        "UTF-8"
    )
