"""The PostgreSQL profile store on the real server: types, migrations, COPY, locks, lost connections, addresses.

The behaviour both stores share (round trip, re-runs, backfills, attempts, latest_run, refused rows, hostile
names) is tested once for both in test_store.py.  Every schema made here is named ``test_store_pg_<random
hex>_<n>`` and dropped at the end of the module.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd
import psycopg2
import pyarrow as pa
import pytest
from psycopg2 import sql
from psycopg2.extensions import make_dsn
from test_store import (
    FACTOR,
    MIGRATE,
    OLD_HISTORY,
    OLD_MEMBERS,
    OLD_RUN_ROWS,
    PG_DSN,
    admin,
    assert_every_read_refused,
    assert_old_rows_migrated,
    assert_predicted_nothing,
    assert_same_state,
    counts,
    every_read,
    hostile_run,
    members,
    membership,
    outcomes,
    poor,
    predicting,
    predictions,
    published,
    run,
    schemas,
    scores,
    started,
    stored_factor_texts,
    stored_predictions,
)

from customer_ai.store import (
    PostgresStore,
    SQLiteStore,
    StoreAddressError,
    StoreMissingError,
    StoreUnavailableError,
    StoreVersionError,
    ambiguous_address,
    mask_password,
    open_store,
    postgres_location,
)
from customer_ai.store.copy import BinaryCopy, Field
from customer_ai.store.postgres import _finite_block, _holds_any, _PostgresWriter


@pytest.fixture(scope="module")
def fresh_schema() -> Iterator[Callable[[], str]]:
    with schemas("test_store_pg") as fresh:
        yield fresh


@pytest.fixture
def store(fresh_schema) -> PostgresStore:
    opened = PostgresStore(PG_DSN, fresh_schema())
    opened.count_rows("unit")  # creates the schema and its tables
    return opened


def query(statement: str | sql.Composable, params: tuple = ()) -> list[tuple]:
    with admin() as connection, connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def wait_for(condition: Callable[[], object], what: str, timeout: float = 15.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def snapshot(store: PostgresStore, instance: str = "unit") -> list[pd.DataFrame]:
    return [
        store.read_scores(instance),
        store.read_scores(instance, as_of="2024-01-01"),
        store.read_runs(instance),
        store.read_attempts(instance),
        store.read_outcomes(instance),
    ]


def assert_unchanged(before: list[pd.DataFrame], store: PostgresStore) -> None:
    for old, new in zip(before, snapshot(store), strict=True):
        pd.testing.assert_frame_equal(old, new)


class Writer(threading.Thread):
    """Runs one store call in a thread and keeps its exception."""

    def __init__(self, call: Callable[[], None]) -> None:
        super().__init__(daemon=True)
        self.call = call
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            self.error = exc


def block_changes_of_current(schema: str, key: int) -> None:
    """Make every change of the current scores (an INSERT into ``customer_ai_current``, the table of each instance's
    current as-of date) wait for advisory lock ``key`` (held by the test)."""
    function = sql.Identifier(schema, "wait_for_test")
    query(
        sql.SQL(
            "CREATE FUNCTION {} () RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN PERFORM pg_advisory_xact_lock({}); RETURN NULL; END $$"
        ).format(function, sql.Literal(key))
    )
    query(
        sql.SQL("CREATE TRIGGER wait_for_test BEFORE INSERT ON {} FOR EACH STATEMENT EXECUTE FUNCTION {} ()").format(
            sql.Identifier(schema, "customer_ai_current"), function
        )
    )


def backend_waiting(application_name: str) -> int | None:
    """Return the pid of the backend with this application name while it waits for a lock."""
    rows = query(
        "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = 'Lock'",
        (application_name,),
    )
    return rows[0][0] if rows else None


# --- tables, types, JSON ---------------------------------------------------------------------------------------


def view_columns(schema: str) -> list[str]:
    """The columns of the view of current scores, in order."""
    rows = query(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
        "AND table_name = 'customer_ai_scores' ORDER BY ordinal_position",
        (schema,),
    )
    return [name for (name,) in rows]


def test_tables_and_column_types(store):
    store.write_run("unit", "2024-02-01", scores({"p1": 0.2, "p2": 0.9}), run(roc_auc=0.8, brier=0.1))
    types = dict(
        query(
            "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s",
            (store.schema,),
        )
    )
    for table in ("customer_ai_scores", "customer_ai_score_history"):
        assert types[f"{table}.as_of"] == "date"
        assert types[f"{table}.probability"] == "double precision"
        assert types[f"{table}.score"] == "integer"
        assert types[f"{table}.factors"] == "json"  # the text as written, checked by the server
        assert types[f"{table}.expected_value"] == types[f"{table}.days_to_next"] == "double precision"
        assert types[f"{table}.next_by"] == "date"
    nullable = query(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
        "AND table_name = 'customer_ai_score_history' AND is_nullable = 'YES' ORDER BY ordinal_position",
        (store.schema,),
    )
    assert nullable == [("expected_value",), ("days_to_next",), ("next_by",)]
    # the view of current scores lists the columns in the order read_scores gives them
    assert view_columns(store.schema) == list(store.read_scores("unit").columns)
    assert types["customer_ai_runs.metrics"] == "jsonb"
    assert types["customer_ai_runs.written_at"] == "timestamp with time zone"
    assert types["customer_ai_runs.run_id"] == "text"
    assert {c: v for c, v in types.items() if c.startswith("customer_ai_attempts.")} == {
        "customer_ai_attempts.id": "bigint",
        "customer_ai_attempts.instance": "text",
        "customer_ai_attempts.as_of": "date",
        "customer_ai_attempts.attempt": "text",
        "customer_ai_attempts.step": "text",
        "customer_ai_attempts.try_number": "integer",
        "customer_ai_attempts.status": "text",
        "customer_ai_attempts.reason": "text",
        "customer_ai_attempts.model_version": "text",
        "customer_ai_attempts.metrics": "jsonb",
        "customer_ai_attempts.run_id": "text",
        "customer_ai_attempts.recorded_at": "timestamp with time zone",
    }
    assert {c: types[f"customer_ai_segments.{c}"] for c in ("instance", "segment", "as_of", "profile_id")} == {
        "instance": "text",
        "segment": "text",
        "as_of": "date",
        "profile_id": "text",
    }
    assert {c: types[f"customer_ai_outcomes.{c}"] for c in ("as_of", "group", "profiles", "realised_rate")} == {
        "as_of": "date",
        "group": "text",
        "profiles": "integer",
        "realised_rate": "double precision",
    }
    assert types["customer_ai_outcomes.tracked_at"] == "timestamp with time zone"
    keys = query(
        "SELECT tc.table_name, string_agg(k.column_name, ',' ORDER BY k.ordinal_position) "
        "FROM information_schema.table_constraints tc JOIN information_schema.key_column_usage k "
        "ON k.constraint_name = tc.constraint_name AND k.table_schema = tc.table_schema "
        "WHERE tc.table_schema = %s AND tc.constraint_type = 'PRIMARY KEY' "
        "AND tc.table_name IN ('customer_ai_segments', 'customer_ai_outcomes') GROUP BY tc.table_name ORDER BY 1",
        (store.schema,),
    )
    assert keys == [
        ("customer_ai_outcomes", "instance,as_of,grouping,group"),
        ("customer_ai_segments", "instance,as_of,segment,profile_id"),
    ]
    history = sql.Identifier(store.schema, "customer_ai_score_history")
    rows = query(
        sql.SQL(
            "SELECT profile_id, json_typeof(factors), factors -> 0 ->> 'feature', "
            "(factors -> 0 ->> 'contribution')::float FROM {} ORDER BY profile_id"
        ).format(history)
    )
    assert rows == [("p1", "array", "purchase_count_30d", 0.5), ("p2", "array", None, None)]
    metrics = query(sql.SQL("SELECT metrics FROM {}").format(sql.Identifier(store.schema, "customer_ai_runs")))
    assert metrics == [({"brier": 0.1, "roc_auc": 0.8},)]
    assert store.read_runs("unit")["metrics"].tolist() == ['{"brier": 0.1, "roc_auc": 0.8}']
    attempts = sql.Identifier(store.schema, "customer_ai_attempts")
    assert query(sql.SQL("SELECT status, step, metrics FROM {}").format(attempts)) == [
        ("ok", "publish", {"brier": 0.1, "roc_auc": 0.8})
    ]


def test_values_json_cannot_hold_are_stored_as_null(store):
    written = scores({"p1": 0.2})
    written.at[0, "factors"] = [{"feature": "f", "value": float("nan"), "contribution": float("inf")}]
    store.write_run("unit", "2024-02-01", written, run(roc_auc=float("nan"), lift=2.0))
    assert store.read_scores("unit")["factors"].tolist() == [[{"feature": "f", "value": None, "contribution": None}]]
    assert store.latest_run("unit")["metrics"] == {"lift": 2.0, "roc_auc": None}


def test_a_large_write_round_trips_exactly(store):
    rng = random.Random(7)
    probabilities = {f"profile-{i:05d}": rng.random() for i in range(12_000)}
    written = scores(probabilities)
    written["factors"] = [[{"feature": f"f{i % 7}", "description": f'«{i}», "q"', "value": i}] for i in range(12_000)]
    store.write_run("unit", "2024-02-01", written, run())
    read = store.read_scores("unit")
    expected = written.sort_values(["probability", "profile_id"], ascending=[False, True]).reset_index(drop=True)
    assert read["profile_id"].tolist() == expected["profile_id"].tolist()
    assert read["probability"].tolist() == expected["probability"].tolist()  # doubles survive COPY bit for bit
    assert read["factors"].tolist() == expected["factors"].tolist()
    assert store.count_rows("unit") == counts(12_000, 12_000, 1)


def test_a_large_membership_is_copied_exactly(store):
    ids = [f"profile-{i:05d}" for i in range(12_000)]
    written = scores(dict(zip(ids, (i / 12_000 for i in range(12_000)), strict=True)))
    chosen = members({"low": ids[:6_000], "high": ids[6_000:], 'even, "quoted"': ids[::2]})
    store.write_run("unit", "2024-02-01", written, run(), segments=chosen)
    assert len(membership(store)) == 18_000
    assert store.read_segment("unit", "high")["profile_id"].tolist() == ids[6_000:][::-1]
    assert store.read_segment("unit", 'even, "quoted"')["profile_id"].tolist() == ids[::2][::-1]


@pytest.mark.parametrize(
    ("texts", "found"),
    [
        ([], False),
        (["", ""], False),
        (['[{"value": 1.5}]', "Na", "Infinit"], False),
        (['[{"value": NaN}]'], True),
        (['[{"value": -Infinity}]'], True),
        (["ünï", "🚀NaN"], True),
        (["xNa", "N"], True),  # a word across two texts: a false alarm, harmless
    ],
)
def test_holds_any_scans_the_bytes_of_a_block(texts, found):
    assert _holds_any(pa.array(texts, pa.string()), (b"NaN", b"Infinity")) is found


def test_holds_any_sees_only_its_slice_and_finite_block_mends_only_blocks_that_need_it():
    texts = pa.array(['[{"value": NaN}]', '[{"value": 1}]', '[{"value": Infinity}]'], pa.string())
    assert not _holds_any(texts.slice(1, 1), (b"NaN", b"Infinity"))
    clean = texts.slice(1, 1)
    assert _finite_block(clean) is clean  # passed on as it is
    assert _finite_block(texts).to_pylist() == ['[{"value": null}]', '[{"value": 1}]', '[{"value": null}]']


# --- binary COPY: NULL fields ------------------------------------------------------------------------------------


def copied(fields: list[Field]) -> bytes:
    """The whole binary COPY stream of ``fields``."""
    return b"".join(iter(BinaryCopy(fields).read, b""))


def copy_row(*fields: bytes) -> bytes:
    return struct.pack(">h", len(fields)) + b"".join(fields)


def float8(value: float) -> bytes:
    return struct.pack(">id", 8, value)


def date_field(days_from_2000: int) -> bytes:
    return struct.pack(">ii", 4, days_from_2000)


NULL_FIELD = struct.pack(">i", -1)  # a NULL: the length -1, no bytes
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
COPY_TRAILER = struct.pack(">h", -1)


def test_binary_copy_sends_the_nulls_of_float8_and_date_fields_as_length_minus_one(monkeypatch):
    monkeypatch.setattr("customer_ai.store.copy._BLOCK_ROWS", 2)  # a block of some nulls, a block of none
    fields = [
        Field("int4", np.array([7, 8, 9])),
        Field("float8", pa.array([1.5, None, -0.0], pa.float64())),
        Field("date", pa.array([dt.date(2000, 1, 2), None, dt.date(1999, 12, 31)], pa.date32())),
        Field("date", "2000-01-01"),
    ]
    assert copied(fields) == (
        COPY_HEADER
        + copy_row(struct.pack(">ii", 4, 7), float8(1.5), date_field(1), date_field(0))
        + copy_row(struct.pack(">ii", 4, 8), NULL_FIELD, NULL_FIELD, date_field(0))
        + copy_row(struct.pack(">ii", 4, 9), float8(-0.0), date_field(-1), date_field(0))
        + COPY_TRAILER
    )


def test_binary_copy_of_arrow_numbers_without_nulls_is_that_of_numpy_numbers():
    values = [0.25, 1e300, 5e-324]
    assert copied([Field("float8", pa.array(values))]) == copied([Field("float8", np.array(values))])
    assert copied([Field("float8", pa.array([None, None], pa.float64()))]) == (
        COPY_HEADER + copy_row(NULL_FIELD) * 2 + COPY_TRAILER
    )


def test_binary_copy_nulls_reach_the_server_as_null(monkeypatch):
    monkeypatch.setattr("customer_ai.store.copy._BLOCK_ROWS", 3)
    numbers = [0.25, None, None, 1e300, None, 5e-324, 0.0, None]
    days = [dt.date(2024, 2, 4), None, dt.date(1970, 1, 1), None, dt.date(1, 1, 1), dt.date(9999, 12, 31), None, None]
    stream = BinaryCopy(
        [
            Field("int4", np.arange(8)),
            Field("float8", pa.array(numbers, pa.float64())),
            Field("date", pa.array(days, pa.date32())),
        ]
    )
    with admin() as connection, connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE copied (n integer, x double precision, d date)")
        cursor.copy_expert("COPY copied (n, x, d) FROM STDIN WITH (FORMAT binary)", stream)
        assert cursor.rowcount == 8
        cursor.execute("SELECT x, d FROM copied ORDER BY n")
        assert cursor.fetchall() == list(zip(numbers, days, strict=True))


# --- migrations -------------------------------------------------------------------------------------------------


def test_migrations_are_recorded_and_idempotent(fresh_schema):
    schema = fresh_schema()
    PostgresStore(PG_DSN, schema).count_rows("unit")
    first = PostgresStore(PG_DSN, schema)
    first.write_run("unit", "2024-02-01", scores({"p1": 0.2}), run())
    again = PostgresStore(PG_DSN, schema)  # opening twice migrates nothing and keeps the rows
    assert again.count_rows("unit") == counts(1, 1, 1)
    versions = query(
        sql.SQL("SELECT version, description FROM {}").format(sql.Identifier(schema, "customer_ai_schema_version"))
    )
    assert versions == [
        (1, "scores, score history and runs tables"),
        (2, "segment membership and outcomes tables"),
        (3, "current scores as a view of history at each instance's current as-of date"),
        (4, "factors as json (the text as written, checked) instead of jsonb"),
        (5, "attempts kept apart (append-only); a run row is the published run of its date and names its folder"),
        (6, "run locks: one lease per instance, so runs on different machines never mix"),
        (7, "expected value, days to the next goal event and its date: optional score columns; outcomes' values"),
        (8, "saved audiences: a rule, who saved it and when, applied by the segments step of every later run"),
    ]
    # tables already there without a version row (created twice): the migrations apply cleanly again
    query(sql.SQL("DELETE FROM {}").format(sql.Identifier(schema, "customer_ai_schema_version")))
    assert PostgresStore(PG_DSN, schema).count_rows("unit") == counts(1, 1, 1)
    assert len(query(sql.SQL("SELECT * FROM {}").format(sql.Identifier(schema, "customer_ai_schema_version")))) == 8
    assert again.read_attempts("unit")["status"].tolist() == ["ok"]  # no attempt made twice


def test_a_version_1_schema_is_migrated_and_keeps_its_rows(fresh_schema):
    schema = fresh_schema()
    first = PostgresStore(PG_DSN, schema)
    first.write_run("unit", "2024-01-01", scores({"p1": 0.2, "p2": 0.6}), run())
    first.write_run("unit", "2024-02-01", scores({"p1": 0.3, "p2": 0.5}), run())
    first.write_run("other", "2024-01-01", scores({"p9": 0.1}), run())
    before = [first.read_scores("unit"), first.read_scores("other")]
    runs = first.read_runs("unit")
    as_version_4(schema)
    # what a store written before segments and outcomes existed looks like: current scores in a table of their own
    current, copied = sql.Identifier(schema, "customer_ai_scores"), sql.Identifier(schema, "copied")
    query(sql.SQL("CREATE TABLE {} AS SELECT * FROM {}").format(copied, current))
    query(sql.SQL("DROP VIEW {}").format(current))
    query(sql.SQL("ALTER TABLE {} RENAME TO customer_ai_scores").format(copied))
    for table in ("customer_ai_segments", "customer_ai_outcomes", "customer_ai_current"):
        query(sql.SQL("DROP TABLE {}").format(sql.Identifier(schema, table)))
    query(sql.SQL("DELETE FROM {} WHERE version > 1").format(sql.Identifier(schema, "customer_ai_schema_version")))
    upgraded = PostgresStore(PG_DSN, schema)
    assert upgraded.count_rows("unit") == counts(2, 4, 2)
    # the current scores are those of the table's dates, now read from history
    for old, new in zip(before, [upgraded.read_scores("unit"), upgraded.read_scores("other")], strict=True):
        pd.testing.assert_frame_equal(old, new)
    pd.testing.assert_frame_equal(upgraded.read_runs("unit"), runs)
    assert upgraded.read_attempts("unit").empty  # a store of version 1 kept no attempts
    assert query(
        "SELECT relkind::text FROM pg_class WHERE oid = %s::regclass", (f'"{schema}".customer_ai_scores',)
    ) == [("v",)]
    assert upgraded.read_segment("unit", "low").empty  # runs from before have no membership
    upgraded.write_run("unit", "2024-03-01", scores({"p2": 0.7}), run(), segments=members({"high": ["p2"]}))
    upgraded.write_outcomes("unit", "2024-02-01", outcomes(("all", "all", 2, 0.4, 0.5)))
    assert upgraded.read_segment("unit", "high")["profile_id"].tolist() == ["p2"]
    assert upgraded.read_outcomes("unit")["profiles"].tolist() == [2]
    versions = query(
        sql.SQL("SELECT version FROM {} ORDER BY version").format(sql.Identifier(schema, "customer_ai_schema_version"))
    )
    assert versions == [(1,), (2,), (3,), (4,), (5,), (6,), (7,), (8,)]


def factor_column_type(schema: str) -> list[tuple]:
    return query(
        "SELECT table_name, data_type FROM information_schema.columns WHERE table_schema = %s "
        "AND column_name = 'factors' ORDER BY table_name",
        (schema,),
    )


def as_version_6(schema: str) -> None:
    """Turn a schema back into version 6: history and outcomes without the value and timing columns, the old view."""
    view, history = sql.Identifier(schema, "customer_ai_scores"), sql.Identifier(schema, "customer_ai_score_history")
    query(sql.SQL("DROP VIEW {}").format(view))
    query(
        sql.SQL("ALTER TABLE {} DROP COLUMN expected_value, DROP COLUMN days_to_next, DROP COLUMN next_by").format(
            history
        )
    )
    query(
        sql.SQL(
            "CREATE VIEW {} AS SELECT h.instance, h.profile_id, h.as_of, h.probability, h.score, h.percentile, "
            "h.bucket, h.propensity, h.model_version, h.factors FROM {} AS h JOIN {} AS c "
            "ON c.instance = h.instance AND c.as_of = h.as_of"
        ).format(view, history, sql.Identifier(schema, "customer_ai_current"))
    )
    outcomes = sql.Identifier(schema, "customer_ai_outcomes")
    query(sql.SQL("ALTER TABLE {} DROP COLUMN predicted_value, DROP COLUMN realised_value").format(outcomes))
    query(sql.SQL("DELETE FROM {} WHERE version > 6").format(sql.Identifier(schema, "customer_ai_schema_version")))


def as_version_4(schema: str) -> None:
    """Turn a schema back into version 4: no attempts table, run rows without the name of their run folder."""
    as_version_6(schema)
    query(sql.SQL("DROP TABLE {}").format(sql.Identifier(schema, "customer_ai_attempts")))
    query(sql.SQL("ALTER TABLE {} DROP COLUMN run_id").format(sql.Identifier(schema, "customer_ai_runs")))
    query(sql.SQL("DELETE FROM {} WHERE version > 4").format(sql.Identifier(schema, "customer_ai_schema_version")))


def as_version_3(schema: str) -> None:
    """Turn a schema back into version 3: version 4's, with factors as jsonb (the view of current scores made again
    over them)."""
    as_version_4(schema)
    view, history = sql.Identifier(schema, "customer_ai_scores"), sql.Identifier(schema, "customer_ai_score_history")
    definition = query("SELECT pg_get_viewdef(%s::regclass)", (f'"{schema}".customer_ai_scores',))[0][0]
    query(sql.SQL("DROP VIEW {}").format(view))
    query(sql.SQL("ALTER TABLE {} ALTER COLUMN factors TYPE jsonb USING factors::jsonb").format(history))
    query(sql.SQL("CREATE VIEW {} AS ").format(view) + sql.SQL(definition))
    query(sql.SQL("DELETE FROM {} WHERE version > 3").format(sql.Identifier(schema, "customer_ai_schema_version")))


def everything_read(store: PostgresStore) -> list[pd.DataFrame]:
    """What the migration test reads from a store: scores current and of a date, a segment (not the runs: the code
    reads their run_id, which a schema of version 4 or older does not have)."""
    return [
        store.read_scores("unit"),
        store.read_scores("unit", as_of="2024-01-01"),
        store.read_scores("other"),
        store.read_segment("unit", "a\tb", as_of="2024-01-01"),
    ]


def test_a_version_3_schema_gets_json_factors_and_keeps_its_rows(fresh_schema):
    schema = fresh_schema()
    first = PostgresStore(PG_DSN, schema)
    written = hostile_run()
    everyone = members({"a\tb": written["profile_id"].tolist()})
    first.write_run("unit", "2024-01-01", written, run(), segments=everyone)
    first.write_run("unit", "2024-02-01", scores({"p1": 0.3, "p2": 0.5}), run())
    first.write_run("other", "2024-01-01", scores({"p9": 0.1}), run())
    runs = first.read_runs("unit")
    # read before: this code's reads need the columns of version 7, which a version 3 schema does not have
    before = everything_read(first)
    as_version_3(schema)
    assert factor_column_type(schema) == [("customer_ai_score_history", "jsonb"), ("customer_ai_scores", "jsonb")]
    old = PostgresStore(PG_DSN, schema)
    jsonb_texts = stored_factor_texts(old, "2024-01-01")
    history = sql.Identifier(schema, "customer_ai_score_history")
    jsonb_factors = query(
        sql.SQL("SELECT profile_id, factors FROM {} WHERE instance = 'unit' AND as_of = '2024-01-01'").format(history)
    )

    upgraded = PostgresStore(PG_DSN, schema)
    after = everything_read(upgraded)
    assert factor_column_type(schema) == [("customer_ai_score_history", "json"), ("customer_ai_scores", "json")]
    for old_frame, new_frame in zip(before, after, strict=True):
        pd.testing.assert_frame_equal(old_frame, new_frame)
    # the factors jsonb held, as values (jsonb keeps no key order)
    assert dict(zip(after[1]["profile_id"], after[1]["factors"], strict=True)) == dict(jsonb_factors)
    pd.testing.assert_frame_equal(upgraded.read_runs("unit"), runs)
    assert len(before[1]) == len(written)
    # the migrated rows hold jsonb's text of the factors: the same JSON values as before
    assert stored_factor_texts(upgraded, "2024-01-01") == jsonb_texts
    assert upgraded.count_rows("unit") == counts(2, len(written) + 2, 2)
    # later writes keep the text as given; jsonb operators still work on the column once cast
    upgraded.write_run("unit", "2024-03-01", scores({"p2": 0.7}), run(), segments=members({"high": ["p2"]}))
    factors = [{**FACTOR, "contribution": 0.5}]
    assert upgraded.read_segment("unit", "high")["factors"].tolist() == [factors]
    assert query(
        sql.SQL("SELECT factors::text, factors::jsonb -> 0 ->> 'feature' FROM {} WHERE as_of = '2024-03-01'").format(
            history
        )
    ) == [(json.dumps(factors, ensure_ascii=False), FACTOR["feature"])]
    versions = query(
        sql.SQL("SELECT version FROM {} ORDER BY version").format(sql.Identifier(schema, "customer_ai_schema_version"))
    )
    assert versions == [(1,), (2,), (3,), (4,), (5,), (6,), (7,), (8,)]


def old_postgres_store(schema: str) -> None:
    """Make ``schema`` a store of version 4 holding what ``old_sqlite_store`` (test_store.py) writes: the history,
    current scores and membership of published runs, and one run row per date, a poor or failed attempt's where the
    last attempt of the date published nothing."""
    first = PostgresStore(PG_DSN, schema)
    for (instance, as_of), frame in OLD_HISTORY.items():
        first.write_run(instance, as_of, frame, run(), segments=OLD_MEMBERS.get((instance, as_of)))
    as_version_4(schema)
    runs = sql.Identifier(schema, "customer_ai_runs")
    query(sql.SQL("DELETE FROM {}").format(runs))
    for row in OLD_RUN_ROWS[::-1]:  # in another order than written_at
        query(
            sql.SQL(
                "INSERT INTO {} (instance, as_of, model_version, status, reason, metrics, scored_profiles, written_at) "
                "VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s)"
            ).format(runs),
            row,
        )


def schema_versions(schema: str) -> list[int]:
    versions = sql.Identifier(schema, "customer_ai_schema_version")
    return [v for (v,) in query(sql.SQL("SELECT version FROM {} ORDER BY version").format(versions))]


def every_row(schema: str) -> dict[str, list[tuple]]:
    """Every row of the store's tables, as text, sorted."""
    tables = ("customer_ai_runs", "customer_ai_attempts", "customer_ai_score_history", "customer_ai_current")
    return {
        table: query(sql.SQL("SELECT t::text FROM {} AS t ORDER BY 1").format(sql.Identifier(schema, table)))
        for table in (*tables, "customer_ai_segments", "customer_ai_outcomes")
    }


def test_a_version_4_schema_gets_attempts_and_its_replaced_runs_back(fresh_schema):
    schema = fresh_schema()
    old_postgres_store(schema)
    assert schema_versions(schema) == [1, 2, 3, 4]
    upgraded = PostgresStore(PG_DSN, schema)
    assert_old_rows_migrated(upgraded)
    assert schema_versions(schema) == [1, 2, 3, 4, 5, 6, 7, 8]
    runs = sql.Identifier(schema, "customer_ai_runs")
    assert query(sql.SQL("SELECT DISTINCT status, run_id FROM {}").format(runs)) == [("ok", "")]
    migrated = every_row(schema)
    # opened again by another store object: nothing changes
    assert_old_rows_migrated(PostgresStore(PG_DSN, schema))
    assert every_row(schema) == migrated
    # the migration applied a second time (its version row lost): no attempt doubled, no run changed
    query(sql.SQL("DELETE FROM {} WHERE version >= 5").format(sql.Identifier(schema, "customer_ai_schema_version")))
    assert_old_rows_migrated(PostgresStore(PG_DSN, schema))
    assert every_row(schema) == migrated
    assert schema_versions(schema) == [1, 2, 3, 4, 5, 6, 7, 8]
    # and it takes published runs and attempts as a new schema does
    upgraded.write_run("unit", "2024-05-01", scores({"p4": 0.6}, "v5"), published("v5", "cli-00000000aa"))
    assert upgraded.read_runs("unit")["run_id"].tolist() == ["", "", "cli-00000000aa"]
    assert upgraded.latest_attempt("unit")["id"] == 5


def test_a_version_6_schema_gets_the_optional_score_columns_and_keeps_its_rows(fresh_schema):
    schema = fresh_schema()
    first = PostgresStore(PG_DSN, schema)
    written = hostile_run()
    first.write_run("unit", "2024-01-01", written, run(), segments=members({"a\tb": written["profile_id"].tolist()}))
    first.write_run("unit", "2024-02-01", scores({"p1": 0.3, "p2": 0.5}), published("v1", "cli-00000000aa"))
    first.write_run("other", "2024-01-01", scores({"p9": 0.1}), run())
    before = [*everything_read(first), first.read_runs("unit"), first.read_attempts("unit")]
    as_version_6(schema)
    assert schema_versions(schema) == [1, 2, 3, 4, 5, 6]
    assert "next_by" not in view_columns(schema)
    message = (
        f"the profile store in schema {schema!r} of the PostgreSQL database at {postgres_location(PG_DSN)} was "
        f"written by an earlier version of customer-ai (schema version 6; this version reads 8): {MIGRATE}"
    )
    assert_every_read_refused(PostgresStore(PG_DSN, schema, create=False), message)

    upgraded = PostgresStore(PG_DSN, schema)  # its first use migrates it
    after = [*everything_read(upgraded), upgraded.read_runs("unit"), upgraded.read_attempts("unit")]
    assert_same_state(before, after)
    assert schema_versions(schema) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert view_columns(schema) == list(after[0].columns)
    for frame in after[:4]:
        assert_predicted_nothing(frame)
    assert {row[2:] for row in stored_predictions(upgraded)} == {(None, None, None)}
    assert len(stored_predictions(upgraded)) == len(written) + 2
    assert upgraded.count_rows("unit") == counts(2, len(written) + 2, 2)
    # applied again (its version row lost), the migration changes nothing
    migrated = every_row(schema)
    query(sql.SQL("DELETE FROM {} WHERE version >= 7").format(sql.Identifier(schema, "customer_ai_schema_version")))
    assert_same_state(after[:4], everything_read(PostgresStore(PG_DSN, schema)))
    assert every_row(schema) == migrated
    # and it takes the new columns as a new schema does
    upgraded.write_run(
        "unit", "2024-03-01", predicting(scores({"p1": 0.6}), [2.5], [1.5], ["2024-03-02"]), published("v2", "cli-0b")
    )
    assert predictions(upgraded.read_scores("unit")) == [("p1", 2.5, 1.5, "2024-03-02")]


def test_processes_starting_at_once_migrate_once(fresh_schema):
    schema = fresh_schema()
    barrier = threading.Barrier(6)

    def start() -> None:
        barrier.wait()
        PostgresStore(PG_DSN, schema).count_rows("unit")

    threads = [Writer(start) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert [t.error for t in threads] == [None] * 6
    versions = query(
        sql.SQL("SELECT version FROM {} ORDER BY version").format(sql.Identifier(schema, "customer_ai_schema_version"))
    )
    assert versions == [(1,), (2,), (3,), (4,), (5,), (6,), (7,), (8,)]


def test_a_schema_newer_than_the_code_is_refused(fresh_schema):
    schema = fresh_schema()
    PostgresStore(PG_DSN, schema).count_rows("unit")
    query(
        sql.SQL("INSERT INTO {} (version, description) VALUES (99, 'from the future')").format(
            sql.Identifier(schema, "customer_ai_schema_version")
        )
    )
    # before: a RuntimeError (a traceback, exit 1); now refused as a store of another version (exit 2)
    for create in (True, False):
        with pytest.raises(StoreVersionError, match="is at version 99, newer than this customer-ai understands"):
            PostgresStore(PG_DSN, schema, create=create).count_rows("unit")


def test_a_hostile_schema_name_is_only_an_identifier(fresh_schema):
    schema = fresh_schema() + '"; DROP SCHEMA public; --'
    opened = PostgresStore(PG_DSN, schema)
    opened.write_run("unit", "2024-02-01", scores({"p1": 0.2}), run())
    assert opened.count_rows("unit") == counts(1, 1, 1)
    assert query("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (schema,)) == [(1,)]
    query(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def test_schema_names_are_checked():
    with pytest.raises(ValueError, match="needs a schema name"):
        PostgresStore(PG_DSN, "")
    with pytest.raises(ValueError, match="longer than PostgreSQL's 63 bytes"):
        PostgresStore(PG_DSN, "s" * 64)


def test_each_part_is_one_copy_into_history_and_one_into_segments(store, monkeypatch):
    copy = _PostgresWriter._copy
    copies: list[tuple[str, dict[str, list]]] = []

    def recorded(self: _PostgresWriter, table: str, fields: dict[str, Field]) -> None:
        shown = {name: fields[name].values.to_pylist() for name in ("segment", "profile_id") if name in fields}
        copies.append((table, shown))
        copy(self, table, fields)

    monkeypatch.setattr(_PostgresWriter, "_copy", recorded)
    later = scores({"p3": 0.4, "p4": 0.6})
    later.at[1, "factors"] = [{"feature": "f", "value": float("nan"), "contribution": float("inf")}]
    parts = [
        (scores({"p1": 0.2, "p2": 0.9}), members({"b": ["p2"], "a": ["p2", "p1"]})),
        (scores({"p5": 0.1}), None),
        (later, members({"a": ["p4", "p3"]})),
    ]
    store.write_run_parts("unit", "2024-02-01", iter(parts), run())

    assert copies == [
        ("{history}", {"profile_id": ["p1", "p2"]}),
        ("{segments}", {"segment": ["a", "a", "b"], "profile_id": ["p1", "p2", "p2"]}),  # in primary key order
        ("{history}", {"profile_id": ["p5"]}),
        ("{history}", {"profile_id": ["p3", "p4"]}),
        ("{segments}", {"segment": ["a", "a"], "profile_id": ["p3", "p4"]}),
    ]
    # values JSON cannot hold are null in a later part too
    assert store.read_scores("unit", profile_id="p4")["factors"].tolist() == [
        [{"feature": "f", "value": None, "contribution": None}]
    ]
    assert membership(store) == [
        ("unit", "a", "2024-02-01", "p1"),
        ("unit", "a", "2024-02-01", "p2"),
        ("unit", "a", "2024-02-01", "p3"),
        ("unit", "a", "2024-02-01", "p4"),
        ("unit", "b", "2024-02-01", "p2"),
    ]
    assert store.count_rows("unit") == counts(5, 5, 1)


# --- failures in the middle of a write --------------------------------------------------------------------------


def test_a_bad_row_in_the_copy_leaves_previous_rows_intact(store):
    store.write_run("unit", "2024-01-01", scores({"p1": 0.2, "p2": 0.9}, "v1"), run("v1"))
    before = snapshot(store)
    with pytest.raises(psycopg2.DataError, match="0x00"):  # PostgreSQL text cannot hold a NUL character
        store.write_run("unit", "2024-02-01", scores({"p3": 0.1, "bad\x00id": 0.5}, "v2"), run("v2"))
    assert_unchanged(before, store)
    assert store.count_rows("unit") == counts(2, 2, 1)


def test_a_value_the_copy_cannot_encode_fails_as_itself_and_leaves_previous_rows_intact(store):
    store.write_run("unit", "2024-01-01", scores({"p1": 0.2, "p2": 0.9}, "v1"), run("v1"))
    before = snapshot(store)
    bad = scores({f"p{i}": 0.5 for i in range(40_000)}, "v2")
    bad.loc[39_999, "score"] = 2**31  # beyond PostgreSQL's integer, in the second block of the stream
    with pytest.raises(ValueError, match="beyond PostgreSQL's integer: 50 to 2147483648"):
        store.write_run("unit", "2024-02-01", bad, run("v2"))
    assert_unchanged(before, store)
    assert store.count_rows("unit") == counts(2, 2, 1)
    store.write_run("unit", "2024-02-01", scores({"p3": 0.4}, "v2"), run("v2"))  # nothing left half-done
    assert store.count_rows("unit") == counts(1, 3, 2)


def test_a_bad_segment_name_in_the_copy_leaves_previous_rows_intact(store):
    store.write_run(
        "unit", "2024-01-01", scores({"p1": 0.2, "p2": 0.9}, "v1"), run("v1"), segments=members({"a": ["p1"]})
    )
    before = snapshot(store)
    with pytest.raises(psycopg2.DataError, match="0x00"):
        store.write_run(
            "unit", "2024-01-01", scores({"p3": 0.1}, "v2"), run("v2"), segments=members({"b\x00ad": ["p3"]})
        )
    assert_unchanged(before, store)
    assert membership(store) == [("unit", "a", "2024-01-01", "p1")]


def test_a_connection_killed_mid_write_leaves_previous_rows_intact(store):
    store.write_run(
        "unit",
        "2024-01-01",
        scores({"p1": 0.2, "p2": 0.9}, "v1"),
        published("v1", "cli-00000000aa", roc_auc=0.8),
        segments=members({"a": ["p2"]}),
    )
    store.write_outcomes("unit", "2023-12-01", outcomes(("all", "all", 4, 0.5, 0.5)))
    store.record_attempt("unit", "2024-02-01", started("cli-00000000bb"))
    before = snapshot(store)
    key = random.randrange(1, 2**31)
    block_changes_of_current(store.schema, key)
    holder = psycopg2.connect(PG_DSN)
    holder.autocommit = True
    try:
        holder.cursor().execute("SELECT pg_advisory_lock(%s)", (key,))
        writing = PostgresStore(make_dsn(PG_DSN, application_name=f"killed-{key}"), store.schema)
        writer = Writer(
            lambda: writing.write_run(
                "unit",
                "2024-02-01",
                scores({"p3": 0.4}, "v2"),
                published("v2", "cli-00000000bb"),
                segments=members({"a": ["p3"]}),
                outcomes={"2023-12-01": outcomes(("all", "all", 9, 0.1, 0.1))},
            )
        )
        writer.start()
        # the writer has replaced history, membership and outcomes, uncommitted, and waits to change the current date
        pid = wait_for(lambda: backend_waiting(f"killed-{key}"), "the writer to wait inside its transaction")
        assert query("SELECT pg_terminate_backend(%s)", (pid,)) == [(True,)]
        writer.join(30)
    finally:
        holder.close()
    # before: a raw OperationalError (a traceback with exit 1); now a fault to retry, with what happened
    assert isinstance(writer.error, StoreUnavailableError)
    assert "dropped the connection during the write of unit as of 2024-02-01; nothing was written" in str(writer.error)
    assert re.search("terminating connection|server closed the connection", str(writer.error))
    assert_unchanged(before, store)
    assert store.count_rows("unit") == counts(2, 2, 1)
    assert membership(store) == [("unit", "a", "2024-01-01", "p2")]  # the membership of 2024-02-01 was rolled back
    assert store.read_outcomes("unit")["profiles"].tolist() == [4]
    assert store.latest_attempt("unit")["status"] == "started"  # the publish left no ok attempt
    # nothing is left locked: the next write goes through (the trigger waits for nobody now)
    store.write_run("unit", "2024-02-01", scores({"p3": 0.4}, "v2"), published("v2", "cli-00000000bb"))
    assert store.read_scores("unit")["profile_id"].tolist() == ["p3"]
    assert store.count_rows("unit") == counts(1, 3, 2)
    assert store.read_attempts("unit")["status"].tolist() == ["ok", "started", "ok"]


# --- concurrent writers -----------------------------------------------------------------------------------------


def test_concurrent_writers_of_one_instance_queue_up(store):
    key = random.randrange(1, 2**31)
    block_changes_of_current(store.schema, key)
    holder = psycopg2.connect(PG_DSN)
    holder.autocommit = True

    def writer(name: str, as_of: str, probabilities: dict, version: str) -> Writer:
        opened = PostgresStore(make_dsn(PG_DSN, application_name=f"{name}-{key}"), store.schema)
        return Writer(lambda: opened.write_run("unit", as_of, scores(probabilities, version), run(version)))

    try:
        holder.cursor().execute("SELECT pg_advisory_lock(%s)", (key,))
        newer = writer("newer", "2024-02-01", {"p2": 0.4, "p3": 0.6}, "v2")
        newer.start()
        wait_for(lambda: backend_waiting(f"newer-{key}"), "the newer write to hold the instance lock")
        older = writer("older", "2024-01-01", {"p1": 0.2, "p2": 0.9}, "v1")
        older.start()
        pid = wait_for(lambda: backend_waiting(f"older-{key}"), "the older write to queue")
        # the older write waits for the instance's writer lock, not for rows or the test's lock
        waits = query(
            "SELECT (classid::bigint << 32) | objid::bigint FROM pg_locks "
            "WHERE pid = %s AND NOT granted AND locktype = 'advisory' AND objsubid = 1",
            (pid,),
        )
        assert waits == query("SELECT hashtext('unit')::bigint")
        holder.cursor().execute("SELECT pg_advisory_unlock(%s)", (key,))
        newer.join(30)
        older.join(30)
    finally:
        holder.close()
    assert (newer.error, older.error) == (None, None)
    current = store.read_scores("unit")
    assert current["profile_id"].tolist() == ["p3", "p2"]
    assert current["probability"].tolist() == [0.6, 0.4]
    assert set(current["as_of"]) == {"2024-02-01"}
    assert store.read_scores("unit", as_of="2024-01-01")["probability"].tolist() == [0.9, 0.2]
    assert store.count_rows("unit") == counts(2, 4, 2)


def test_many_concurrent_writers_end_consistent(store):
    dates = [f"2024-0{m}-01" for m in range(1, 7)]
    written = {d: {f"{d}-p{i}": round(0.1 * (i + 1), 2) for i in range(m + 1)} for m, d in enumerate(dates)}
    # each date published twice at once under one run folder's name (a publish and its retry), poor attempts between
    jobs = [(d, "ok") for d in dates] * 2 + [(d, "poor") for d in dates[::2]]
    random.Random(3).shuffle(jobs)
    barrier = threading.Barrier(len(jobs))

    def job(as_of: str, status: str) -> Callable[[], None]:
        def call() -> None:
            barrier.wait()
            if status == "ok":
                folder = f"af-{as_of.replace('-', '')}00"
                store.write_run("unit", as_of, scores(written[as_of], as_of), published(as_of, folder))
            else:
                store.record_attempt("unit", as_of, poor(as_of))

        return call

    threads = [Writer(job(*j)) for j in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [t.error for t in threads] == [None] * len(threads)
    runs = store.read_runs("unit")
    assert runs["as_of"].tolist() == dates
    assert runs["status"].tolist() == ["ok"] * len(dates)  # the poor attempts replaced no published run
    assert runs["model_version"].tolist() == dates
    assert runs["run_id"].tolist() == [f"af-{d.replace('-', '')}00" for d in dates]
    attempts = store.read_attempts("unit")
    # one ok attempt per run folder, however the two publishes of a date interleaved
    assert sorted(zip(attempts["as_of"], attempts["status"], strict=True)) == sorted(
        [(d, "ok") for d in dates] + [(d, "poor") for d in dates[::2]]
    )
    assert attempts["id"].is_monotonic_increasing
    current = store.read_scores("unit")
    assert set(current["as_of"]) == {"2024-06-01"}
    assert sorted(current["profile_id"]) == sorted(written["2024-06-01"])
    assert set(current["model_version"]) == {"2024-06-01"}
    for as_of, probabilities in written.items():
        assert sorted(store.read_scores("unit", as_of=as_of)["profile_id"]) == sorted(probabilities)
    assert store.count_rows("unit") == counts(6, sum(len(p) for p in written.values()), len(dates))


# --- addresses and unreachable servers --------------------------------------------------------------------------


def test_an_unreachable_server_fails_fast_without_the_password():
    started = time.monotonic()
    unreachable = PostgresStore("postgresql://postgres:s3cret-pw@127.0.0.1:1/test", "whatever")
    with pytest.raises(StoreUnavailableError) as caught:
        unreachable.read_scores("unit")
    assert time.monotonic() - started < 4
    assert isinstance(caught.value, ConnectionError)
    message = str(caught.value)
    assert message.startswith("cannot connect to the PostgreSQL profile store at host=127.0.0.1 port=1 dbname=test: ")
    assert "s3cret" not in message
    assert "s3cret" not in repr(unreachable)
    assert isinstance(caught.value.__cause__, psycopg2.OperationalError)


def test_a_server_that_never_answers_times_out_after_five_seconds():
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts TCP connections, never speaks
        port = silent.getsockname()[1]
        hanging = PostgresStore(f"postgresql://postgres:pw@127.0.0.1:{port}/test", "whatever")
        attempt = Writer(lambda: hanging.count_rows("unit"))
        started = time.monotonic()
        attempt.start()
        attempt.join(20)
        elapsed = time.monotonic() - started
    assert not attempt.is_alive()
    assert isinstance(attempt.error, StoreUnavailableError)
    assert 4 <= elapsed < 10
    assert "timeout" in str(attempt.error)
    assert "pw@" not in str(attempt.error)


@pytest.mark.parametrize(
    ("address", "masked"),
    [
        (
            "postgresql://u:pa:ss@w@db.example:6432/x?sslmode=require",
            "postgresql://u:***@db.example:6432/x?sslmode=require",
        ),
        ("postgres://u@h/x", "postgres://u@h/x"),
        ("postgresql://h/x?user=u&password=secret", "postgresql://h/x?user=u&password=***"),
        ("host=h password='se cret' dbname=x", "host=h password=*** dbname=x"),
        ("host=h password=secret dbname=x", "host=h password=*** dbname=x"),
        ("mysql://u:secret@h/x", "mysql://u:***@h/x"),
    ],
)
def test_mask_password(address, masked):
    assert mask_password(address) == masked


def test_postgres_location():
    assert postgres_location("postgresql://u:secret@db.example:6432/x") == "host=db.example port=6432 dbname=x"
    assert postgres_location("host=h password=secret dbname=x") == "host=h port=5432 dbname=x"


def test_repr_never_shows_the_password():
    store = PostgresStore("postgresql://u:secret@h:5433/x", "s")
    assert repr(store) == "PostgresStore('postgresql://u:***@h:5433/x', schema='s')"
    assert str(store) == repr(store)
    assert repr(PostgresStore("host=h password=secret", "s")) == "PostgresStore('host=h password=***', schema='s')"


@pytest.mark.parametrize("uri", ["postgresql://u:secret@h/x", "postgres://u@h/x"])
def test_open_store_postgres_schema_from_argument_env_or_default(tmp_path, monkeypatch, uri):
    monkeypatch.delenv("CUSTOMER_AI_STORE_SCHEMA", raising=False)
    opened = open_store(uri, tmp_path)
    assert isinstance(opened, PostgresStore)
    assert (opened.dsn, opened.schema) == (uri, "customer_ai")
    monkeypatch.setenv("CUSTOMER_AI_STORE_SCHEMA", "from_env")
    assert open_store(uri, tmp_path).schema == "from_env"
    assert open_store(uri, tmp_path, schema="from_argument").schema == "from_argument"


def test_open_store_round_trip_on_the_server(fresh_schema, tmp_path):
    opened = open_store(PG_DSN, tmp_path, schema=fresh_schema())
    opened.write_run("unit", "2024-02-01", scores({"p1": 0.2}), run())
    assert opened.read_scores("unit")["profile_id"].tolist() == ["p1"]


# --- addresses: no part of a password is ever shown (issue 18) ---------------------------------------------------


def pieces(secret: str) -> set[str]:
    """Every 3-character piece of a secret: none may appear in what is shown."""
    return {secret[i : i + 3] for i in range(len(secret) - 2)}


def assert_hidden(secret: str, *texts: str) -> None:
    """No 3-character piece of ``secret`` in ``texts`` (but in the word "password" they use: "p@ssw0rd" has "ssw")."""
    words = [re.sub("password", "", text, flags=re.IGNORECASE) for text in texts]
    shown = [piece for piece in pieces(secret) for text in words if piece in text]
    assert not shown, (shown, texts)


@pytest.mark.parametrize(
    ("address", "masked"),
    [
        # before: a URL parser's reading: everything after a raw '?' or '#' was left as it was
        ("postgresql+psycopg://u:s3c?ret@h/x", "postgresql+psycopg://u:***@h/x"),
        ("postgresql://u:s3c#ret@h/x", "postgresql://u:***@h/x"),
        ("postgresql://u:pa/ssword@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:secret?password=x@host/db", "postgresql://u:***"),
        # a secret parameter, whatever its case or encoding, to the end (a raw '&' may be part of it)
        ("postgresql://h/db?pass%77ord=abc&defgh", "postgresql://h/db?pass%77ord=***"),
        ("postgresql://h/db?sslmode=require&sslpassword=abc", "postgresql://h/db?sslmode=require&sslpassword=***"),
        # key=value strings, tokenised as libpq does: an escaped space, an unterminated quote
        ("host=x password=abc\\ defgh dbname=y", "host=x password=*** dbname=y"),
        ("host=x password='abc def", "host=x password=***"),
        ("host=x password 'abc def'", "host=x ***"),
        ("host=h sslpassword=s3cr dbname=x", "host=h sslpassword=*** dbname=x"),
        ("/tmp/store.sqlite", "/tmp/store.sqlite"),
    ],
)
def test_mask_password_hides_what_any_reading_takes_for_a_password(address, masked):
    assert mask_password(address) == masked


AMBIGUOUS = [
    # a raw '@' in the password: libpq reads user postgres, password 'p', host 'ssw0rd@127.0.0.1'
    ("postgresql://postgres:p@ssw0rd@127.0.0.1:5432/x", "p@ssw0rd", "postgresql://postgres:***@127.0.0.1:5432/x"),
    # a raw '/' in the password: libpq reads no password at all, host 'postgres', port 'pa'
    ("postgresql://postgres:pa/ssw0rd@127.0.0.1:5432/x", "pa/ssw0rd", "postgresql://postgres:***@127.0.0.1:5432/x"),
    ("postgres://us@er:s3cret-pw@db/x", "s3cret-pw", "postgres://us@er:***@db/x"),
    ("postgresql://db/x?application_name=a@b", "", "postgresql://db/x?application_name=a@b"),
]


@pytest.mark.parametrize(("address", "secret", "masked"), AMBIGUOUS)
def test_an_ambiguous_address_is_refused_showing_it_masked(tmp_path, address, secret, masked):
    # before: libpq's reading was printed: "host=ssw0rd@127.0.0.1" in every message about the store
    assert ambiguous_address(address)
    message = (
        f"ambiguous PostgreSQL address {masked!r}: libpq ends the user and password at the first '@' before any '/', "
        "so it would read part of them as the host or the database; percent-encode '@' as %40 (and '/' as %2F) in "
        "the user or password"
    )
    for opening in (lambda: PostgresStore(address), lambda: open_store(address, tmp_path, create=False)):
        with pytest.raises(StoreAddressError) as caught:
            opening()
        assert str(caught.value) == message
    assert postgres_location(address) == masked
    assert_hidden(secret, message, postgres_location(address), mask_password(address))


@pytest.mark.parametrize(
    "address",
    ["postgresql://u:pw@h/x", "postgresql://u:p%40ss%2Fw@h:5433/x?sslmode=require", "postgresql://h/x", "host=h"],
)
def test_an_address_libpq_reads_like_a_url_parser_is_not_ambiguous(address):
    assert not ambiguous_address(address)


@pytest.mark.parametrize(
    ("address", "secret"),
    [
        ("postgresql://postgres:s3c?r#t-pw@127.0.0.1:1/test", "s3c?r#t-pw"),
        ("postgresql://postgres:p%40ss%2Fw0rd@127.0.0.1:1/test", "p@ss/w0rd"),
        ("postgresql://postgres@127.0.0.1:1/test?password=pa%26ss&sslmode=disable", "pa&ss"),
        ("host=127.0.0.1 port=1 dbname=test user=postgres password='q@zx 8w0rd'", "q@zx 8w0rd"),
        ("host=127.0.0.1 port=1 dbname=test user=postgres password=q@zx\\ 8w0rd", "q@zx 8w0rd"),
    ],
)
def test_no_part_of_a_password_is_shown_by_a_store_that_cannot_connect(address, secret):
    store = PostgresStore(address, "whatever")
    with pytest.raises(StoreUnavailableError) as caught:
        store.read_runs("unit")
    assert str(caught.value).startswith("cannot connect to the PostgreSQL profile store at host=127.0.0.1 port=1 ")
    assert_hidden(secret, str(caught.value), repr(store), postgres_location(address), mask_password(address))
    raw = secret.replace("@", "%40").replace("/", "%2F")  # as it may be written in the address
    assert_hidden(raw, str(caught.value), repr(store))


# --- readers create and migrate nothing (issue 18) ----------------------------------------------------------------


def schema_rows(schema: str) -> dict[str, list[tuple]]:
    """Every row of every table of a schema, as text, sorted (nothing when the schema does not exist)."""
    tables = query("SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY 1", (schema,))
    return {
        table: query(sql.SQL("SELECT t::text FROM {} AS t ORDER BY 1").format(sql.Identifier(schema, table)))
        for (table,) in tables
    }


def test_a_store_opened_for_reading_creates_no_schema_and_writes_nothing(fresh_schema, tmp_path):
    # before: any read made the schema and its tables: a hostile CUSTOMER_AI_STORE_SCHEMA made that schema
    schema = fresh_schema() + '"; DROP SCHEMA public; --'
    reader = PostgresStore(PG_DSN, schema, create=False)
    try:
        assert_same_state(every_read(reader), every_read(SQLiteStore(tmp_path / "made.sqlite")))
        where = f"schema {schema!r} of the PostgreSQL database at {postgres_location(PG_DSN)}"
        with pytest.raises(StoreMissingError) as caught:
            reader.check()
        assert str(caught.value) == (
            f"no profile store in {where}: nothing has been run with this store yet (or its address or schema is "
            "mistyped)"
        )
        with pytest.raises(StoreMissingError, match=re.escape(f"no profile store in {where}: nothing to migrate")):
            reader.migrate()
        with pytest.raises(RuntimeError, match=r"was opened for reading \(create=False\): it is never written"):
            reader.write_run("unit", "2024-02-01", scores({"p1": 0.2}), run())
        assert query("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (schema,)) == [(0,)]
        # a store that exists is read as it is, in read-only transactions
        PostgresStore(PG_DSN, schema).write_run("unit", "2024-02-01", scores({"p1": 0.2}), published("v", "cli-0a"))
        written = schema_rows(schema)
        reader.check()
        assert reader.read_scores("unit")["profile_id"].tolist() == ["p1"]
        assert reader.latest_run("unit")["run_id"] == "cli-0a"
        assert schema_rows(schema) == written
    finally:
        query(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def test_a_schema_of_an_earlier_version_is_refused_by_readers_and_left_as_it_is(fresh_schema):
    # before: the first read of any reader migrated the schema
    schema = fresh_schema()
    old_postgres_store(schema)
    before = schema_rows(schema)
    reader = PostgresStore(PG_DSN, schema, create=False)
    message = (
        f"the profile store in schema {schema!r} of the PostgreSQL database at {postgres_location(PG_DSN)} was "
        f"written by an earlier version of customer-ai (schema version 4; this version reads 8): {MIGRATE}"
    )
    assert_every_read_refused(reader, message)
    assert schema_rows(schema) == before
    assert schema_versions(schema) == [1, 2, 3, 4]
    # the explicit step (`customer-ai migrate`) migrates it, once
    assert reader.migrate() == (4, 8)
    assert_old_rows_migrated(reader)
    assert reader.migrate() == (8, 8)
    assert schema_versions(schema) == [1, 2, 3, 4, 5, 6, 7, 8]
