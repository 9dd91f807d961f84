"""Events from a PostgreSQL table on the real server: time bounds, types, column mapping, chunks, errors.

Tables live in a schema of this module's own (``test_events_<random hex>_0``), dropped at the end.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import quote

import pandas as pd
import pytest
from psycopg2 import sql
from psycopg2.extensions import make_dsn
from test_store import PG_DSN, admin, schemas

from customer_ai import events as events_module
from customer_ai.events import EventsError, EventsUnavailableError, load_event_table

from conftest import ts

MAPPING = {"profile_id": "customer", "timestamp": "occurred_at", "event_type": "kind", "value": "amount"}


@pytest.fixture(scope="module")
def schema() -> Iterator[str]:
    with schemas("test_events") as fresh:
        name = fresh()
        with admin() as connection, connection.cursor() as cursor:
            cursor.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
            cursor.execute(
                sql.SQL(
                    "CREATE TABLE {} (customer text, occurred_at timestamptz, kind text, amount numeric(10, 2), "
                    "channel text, quantity integer, first_order boolean, attrs jsonb)"
                ).format(sql.Identifier(name, "orders"))
            )
            rows = [
                ("c1", "2024-01-01 00:00:00+00", "purchase", "12.50", "web", 2, True, '{"coupon": "X"}'),
                ("c2", "2024-01-01 23:30:00-05", "view", None, None, None, None, None),  # 2024-01-02 04:30 UTC
                ("007", "2024-01-03 00:00:00+00", "purchase", "3.25", None, 1, False, None),
                ("c1", "2024-01-04 12:00:00+01", "view", None, "store", None, None, None),  # 11:00 UTC
                ("c3", "2023-12-31 23:59:59.999999+00", "purchase", "1.00", "web", 5, True, None),
            ]
            cursor.executemany(
                sql.SQL("INSERT INTO {} VALUES (%s, %s, %s, %s, %s, %s, %s, %s)").format(
                    sql.Identifier(name, "orders")
                ),
                rows,
            )
            cursor.execute(
                sql.SQL(
                    'CREATE TABLE {} (profile_id text, "timestamp" timestamp, event_type text, value float8)'
                ).format(sql.Identifier(name, "naive"))
            )
            cursor.executemany(
                sql.SQL("INSERT INTO {} VALUES (%s, %s, %s, %s)").format(sql.Identifier(name, "naive")),
                [
                    ("a", "2024-01-01 00:00:00", "visit", None),
                    ("b", "2024-01-01 05:00:00", "visit", 1.5),
                    ("a", "2024-01-02 00:00:00", "purchase", 9.0),
                ],
            )
            cursor.execute(
                sql.SQL('CREATE TABLE {} (profile_id text, "timestamp" text, event_type text)').format(
                    sql.Identifier(name, "text_times")
                )
            )
            cursor.execute(
                sql.SQL('CREATE TABLE {} (profile_id text, "timestamp" date, event_type text)').format(
                    sql.Identifier(name, "daily")
                )
            )
            cursor.executemany(
                sql.SQL("INSERT INTO {} VALUES (%s, %s, %s)").format(sql.Identifier(name, "daily")),
                [("a", "2024-01-01", "visit"), ("b", "2024-01-02", "visit"), ("c", "2024-01-03", "visit")],
            )
        yield name


def dsn_in_time_zone(zone: str) -> str:
    """The test database with a session time zone other than UTC: the loader must not depend on it."""
    return make_dsn(PG_DSN, options=f"-c TimeZone={zone}")


def test_timestamptz_table_with_extra_columns(schema):
    events = load_event_table(PG_DSN, f"{schema}.orders", MAPPING)
    assert list(events.columns) == [
        "profile_id",
        "timestamp",
        "event_type",
        "value",
        "channel",
        "quantity",
        "first_order",
        "attrs",
    ]
    assert events["profile_id"].tolist() == ["c3", "c1", "c2", "007", "c1"]  # by time; "007" stays text
    assert events["timestamp"].tolist() == [
        ts("2023-12-31 23:59:59.999999"),
        ts("2024-01-01 00:00"),
        ts("2024-01-02 04:30"),
        ts("2024-01-03 00:00"),
        ts("2024-01-04 11:00"),
    ]
    assert str(events["timestamp"].dtype) == "datetime64[us, UTC]"
    assert events["event_type"].tolist() == ["purchase", "purchase", "view", "purchase", "view"]
    assert events["value"].fillna(-1).tolist() == [1.0, 12.5, -1, 3.25, -1]
    assert events["value"].dtype == "float64"
    assert events["channel"].fillna("?").tolist() == ["web", "web", "?", "?", "store"]
    assert events["quantity"].tolist() == [5, 2, pd.NA, 1, pd.NA]
    assert str(events["quantity"].dtype) == "Int64"  # integers with missing values stay integers
    assert events["first_order"].tolist() == [True, True, pd.NA, False, pd.NA]
    assert events["attrs"].tolist() == [None, {"coupon": "X"}, None, None, None]


def test_session_time_zone_does_not_matter(schema):
    events = load_event_table(dsn_in_time_zone("America/New_York"), f"{schema}.orders", MAPPING)
    pd.testing.assert_frame_equal(events, load_event_table(PG_DSN, f"{schema}.orders", MAPPING))


def test_naive_timestamps_are_utc(schema):
    dsn = dsn_in_time_zone("Asia/Tokyo")  # were naive values read in the session zone, every time would shift 9 h
    events = load_event_table(dsn, f"{schema}.naive")
    assert events["timestamp"].tolist() == [ts("2024-01-01 00:00"), ts("2024-01-01 05:00"), ts("2024-01-02 00:00")]
    assert events["profile_id"].tolist() == ["a", "b", "a"]
    assert events["value"].fillna(-1).tolist() == [-1, 1.5, 9.0]
    bounded = load_event_table(dsn, f"{schema}.naive", start=ts("2024-01-01 05:00"), end=ts("2024-01-02 00:00"))
    assert bounded["profile_id"].tolist() == ["b"]
    # naive bounds are UTC too
    naive = load_event_table(dsn, f"{schema}.naive", start=pd.Timestamp("2024-01-01 04:00"))
    assert naive["timestamp"].tolist() == [ts("2024-01-01 05:00"), ts("2024-01-02 00:00")]


def test_date_columns_are_days_in_utc(schema):
    # in a session zone east of UTC, a date compared with a UTC instant would start 9 hours early
    events = load_event_table(
        dsn_in_time_zone("Asia/Tokyo"), f"{schema}.daily", start=ts("2024-01-02"), end=ts("2024-01-03")
    )
    assert events["profile_id"].tolist() == ["b"]
    assert events["timestamp"].tolist() == [ts("2024-01-02")]


def test_bounds_are_half_open(schema):
    def times(**bounds: pd.Timestamp) -> list[pd.Timestamp]:
        return load_event_table(dsn_in_time_zone("Europe/Berlin"), f"{schema}.orders", MAPPING, **bounds)[
            "timestamp"
        ].tolist()

    # an event exactly at start is read, one exactly at end is not
    assert times(start=ts("2024-01-01 00:00"), end=ts("2024-01-03 00:00")) == [
        ts("2024-01-01 00:00"),
        ts("2024-01-02 04:30"),
    ]
    assert times(start=ts("2024-01-03 00:00")) == [ts("2024-01-03 00:00"), ts("2024-01-04 11:00")]
    assert times(end=ts("2024-01-01 00:00")) == [ts("2023-12-31 23:59:59.999999")]
    # a bound in another zone means the same instant
    assert times(start=pd.Timestamp("2024-01-02 05:30", tz="Europe/Berlin")) == [
        ts("2024-01-02 04:30"),
        ts("2024-01-03 00:00"),
        ts("2024-01-04 11:00"),
    ]
    assert times(start=ts("2024-02-01")) == []


def test_an_empty_result_has_the_canonical_columns(schema):
    events = load_event_table(PG_DSN, f"{schema}.orders", MAPPING, start=ts("2030-01-01"))
    assert events.empty
    assert list(events.columns)[:4] == ["profile_id", "timestamp", "event_type", "value"]
    assert str(events["timestamp"].dtype) == "datetime64[us, UTC]"


def test_column_mapping_renames_and_keeps_the_rest(schema):
    events = load_event_table(
        PG_DSN,
        f"{schema}.orders",
        {"profile_id": "channel", "timestamp": "occurred_at", "event_type": "kind"},
        start=ts("2024-01-04"),
    )
    assert events["profile_id"].tolist() == ["store"]
    assert "customer" in events.columns
    assert "amount" in events.columns
    assert events["value"].isna().all()  # no value column mapped, none named "value"


def test_an_unqualified_name_is_found_through_the_search_path(schema):
    dsn = make_dsn(PG_DSN, options=f"-c search_path={schema}")
    events = load_event_table(dsn, "naive")
    assert len(events) == 3


@pytest.mark.parametrize("chunk_rows", [1, 2, 3])
def test_chunks_give_the_same_result(schema, chunk_rows):
    whole = load_event_table(PG_DSN, f"{schema}.orders", MAPPING)
    pd.testing.assert_frame_equal(load_event_table(PG_DSN, f"{schema}.orders", MAPPING, chunk_rows=chunk_rows), whole)
    bounded = load_event_table(PG_DSN, f"{schema}.orders", MAPPING, start=ts("2024-01-01"))
    pd.testing.assert_frame_equal(
        load_event_table(PG_DSN, f"{schema}.orders", MAPPING, start=ts("2024-01-01"), chunk_rows=chunk_rows),
        bounded,
    )


def test_chunk_rows_must_be_positive(schema):
    with pytest.raises(ValueError, match="chunk_rows must be at least 1"):
        load_event_table(PG_DSN, f"{schema}.orders", MAPPING, chunk_rows=0)


@pytest.mark.parametrize("table", ["missing_table", "{schema}.missing_table", "no_such_schema.orders"])
def test_a_missing_table_is_named(schema, table):
    table = table.format(schema=schema)
    with pytest.raises(EventsError, match=re.escape(f"postgresql table {table}: table {table!r} not found")):
        load_event_table(PG_DSN, table, MAPPING)


def test_table_names_are_identifiers_not_sql(schema):
    hostile = f'{schema}.orders"; DROP TABLE "{schema}".orders; --'
    with pytest.raises(EventsError, match="not found"):
        load_event_table(PG_DSN, hostile, MAPPING)
    assert len(load_event_table(PG_DSN, f"{schema}.orders", MAPPING)) == 5


def test_a_missing_column_is_named(schema):
    with pytest.raises(EventsError, match=r"postgresql table .*orders: .*timestamp <- 'created_at'.*columns: customer"):
        load_event_table(PG_DSN, f"{schema}.orders", {**MAPPING, "timestamp": "created_at"}, start=ts("2024-01-01"))
    with pytest.raises(EventsError, match=r"missing required column\(s\) \['profile_id', 'timestamp'"):
        load_event_table(PG_DSN, f"{schema}.orders")  # nothing mapped, no canonical names in the table
    with pytest.raises(EventsError, match=r"no timestamp column 'timestamp' \(columns: customer, occurred_at"):
        load_event_table(PG_DSN, f"{schema}.orders", end=ts("2024-01-01"))


def test_bounds_need_a_time_column(schema):
    with pytest.raises(EventsError, match="column 'timestamp' is not a timestamp, timestamptz or date column"):
        load_event_table(PG_DSN, f"{schema}.text_times", start=ts("2024-01-01"))


def test_an_unreachable_database_is_a_fault_to_retry_without_the_password():
    # before: an EventsError ("bad input", exit 2, never retried in Airflow)
    with pytest.raises(EventsUnavailableError, match="cannot connect to host=127.0.0.1 port=1 dbname=test") as caught:
        load_event_table("postgresql://postgres:s3cret@127.0.0.1:1/test", "events")
    assert "s3cret" not in str(caught.value)
    assert not isinstance(caught.value, EventsError)


def test_an_ambiguous_events_address_is_refused_without_the_password():
    # before: libpq read "ssw0rd@127.0.0.1" as the host and its error printed it: part of the password
    address = "postgresql://postgres:p@ssw0rd@127.0.0.1:5432/test"
    with pytest.raises(EventsError, match="ambiguous PostgreSQL address 'postgresql://postgres:\\*\\*\\*@") as caught:
        load_event_table(address, "events")
    message = str(caught.value)
    assert message.startswith("postgresql table events: ambiguous PostgreSQL address")
    assert "percent-encode '@' as %40" in message
    shown = message.replace("password", "")  # our own word holds "ssw", a piece of this password
    assert not any(piece in shown for piece in ("p@s", "@ss", "ssw", "sw0", "w0r", "0rd"))


def test_a_connection_dropped_during_the_read_is_a_fault_to_retry(schema: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # the server ends our backend in the middle of the read, as a restart or a failover would
    real_chunk = events_module._table_chunk

    name = f"customer-ai events {schema}"  # this test's own backend only: other tests may read events meanwhile

    def chunk_then_terminate(rows, catalog):  # noqa: ANN001, ANN202
        with admin() as connection, connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", (name,)
            )
        return real_chunk(rows, catalog)

    monkeypatch.setattr(events_module, "_table_chunk", chunk_then_terminate)
    with pytest.raises(EventsUnavailableError, match=r"postgresql table .*naive: .*terminat"):
        load_event_table(f"{PG_DSN}?application_name={quote(name)}", f"{schema}.naive", chunk_rows=1)


def test_an_invalid_address_is_an_events_error_without_the_password():
    with pytest.raises(EventsError, match=re.escape("invalid database address 'host=h password=*** nonsense'")):
        load_event_table("host=h password=s3cret nonsense", "events")
