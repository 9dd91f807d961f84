"""The PostgreSQL profile store: tables in a configurable schema, binary COPY, one transaction per run."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import psycopg2
import pyarrow as pa
from psycopg2 import errors, sql
from psycopg2.extensions import parse_dsn

from customer_ai.store.address import ambiguity_message, ambiguous_address, mask_password, postgres_location
from customer_ai.store.base import (
    _CONNECT_TIMEOUT_SECONDS,
    _DEFAULT_SCHEMA,
    _SCORE_COLUMNS,
    MIGRATE_HINT,
    StoreAddressError,
    StoreMissingError,
    StoreUnavailableError,
    StoreVersionError,
    _AttemptValues,
    _factor_texts,
    _finite_texts,
    _metrics_json,
    _nullable,
    _ordered_factors,
    _OutcomeRow,
    _RunValues,
    _ScoreColumns,
    _ScoredTwiceError,
    _Store,
    _Writer,
)
from customer_ai.store.copy import BinaryCopy, Field
from customer_ai.store.lease import RunLease

__all__ = ["PostgresStore", "mask_password", "postgres_location"]

_MIGRATION_LOCK_CLASS = 0x0C_A1  # first key of the two-key advisory lock that guards migrations
_DATE_TEXT = "YYYY-MM-DD"
_WRITTEN_AT_TEXT = 'YYYY-MM-DD"T"HH24:MI:SS"Z"'
_AUDIENCES = (
    f"SELECT name, rule, saved_by, to_char(saved_at AT TIME ZONE 'UTC', '{_WRITTEN_AT_TEXT}') FROM {{audiences}} "
    "WHERE instance = %(instance)s"
)

_SCORE_TABLE_COLUMNS = """
    instance text NOT NULL, profile_id text NOT NULL, as_of date NOT NULL,
    probability double precision NOT NULL, score integer NOT NULL, percentile integer NOT NULL,
    bucket text NOT NULL, propensity text NOT NULL, model_version text NOT NULL, factors jsonb NOT NULL"""

# the current as-of date of each instance from the table of current scores, which is then dropped (version 3
# makes it a view); a step of its own because a schema whose migrations are applied again already has the view
_SCORES_TABLE_TO_CURRENT = "(the scores table's dates into {current}; the table dropped)"

# the view of current scores: made by version 3, and again by version 4 (a column under a view cannot change type)
_CURRENT_VIEW_3 = (
    "CREATE OR REPLACE VIEW {scores} AS SELECT h.instance, h.profile_id, h.as_of, h.probability, h.score,\n"
    "    h.percentile, h.bucket, h.propensity, h.model_version, h.factors\n"
    "    FROM {history} AS h JOIN {current} AS c ON c.instance = h.instance AND c.as_of = h.as_of"
)
# ... and by version 7, with the optional score columns before the factors, as the history's are read
_CURRENT_VIEW = (
    "CREATE VIEW {scores} AS SELECT h.instance, h.profile_id, h.as_of, h.probability, h.score,\n"
    "    h.percentile, h.bucket, h.propensity, h.model_version, h.expected_value, h.days_to_next, h.next_by,\n"
    "    h.factors\n"
    "    FROM {history} AS h JOIN {current} AS c ON c.instance = h.instance AND c.as_of = h.as_of"
)

# (version, description, statements); a statement's {schema}, {scores}, {history}, {runs}, {segments},
# {outcomes}, {current}, {attempts} are identifiers (so a literal brace is written twice)
_MIGRATIONS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (
        1,
        "scores, score history and runs tables",
        (
            f"CREATE TABLE IF NOT EXISTS {{scores}} ({_SCORE_TABLE_COLUMNS},\n    PRIMARY KEY (instance, profile_id))",
            f"CREATE TABLE IF NOT EXISTS {{history}} ({_SCORE_TABLE_COLUMNS},\n"
            "    PRIMARY KEY (instance, as_of, profile_id))",
            "CREATE TABLE IF NOT EXISTS {runs} (\n"
            "    instance text NOT NULL, as_of date NOT NULL, model_version text NOT NULL, status text NOT NULL,\n"
            "    reason text NOT NULL, metrics jsonb NOT NULL, scored_profiles integer NOT NULL,\n"
            "    written_at timestamptz NOT NULL DEFAULT now(),\n"
            "    PRIMARY KEY (instance, as_of))",
        ),
    ),
    (
        2,
        "segment membership and outcomes tables",
        (
            "CREATE TABLE IF NOT EXISTS {segments} (\n"
            "    instance text NOT NULL, segment text NOT NULL, as_of date NOT NULL, profile_id text NOT NULL,\n"
            "    PRIMARY KEY (instance, as_of, segment, profile_id))",
            "CREATE TABLE IF NOT EXISTS {outcomes} (\n"
            '    instance text NOT NULL, as_of date NOT NULL, "grouping" text NOT NULL, "group" text NOT NULL,\n'
            "    profiles integer NOT NULL, predicted_rate double precision, realised_rate double precision,\n"
            "    tracked_at timestamptz NOT NULL DEFAULT now(),\n"
            '    PRIMARY KEY (instance, as_of, "grouping", "group"))',
        ),
    ),
    (
        3,
        "current scores as a view of history at each instance's current as-of date",
        (
            "CREATE TABLE IF NOT EXISTS {current} (instance text PRIMARY KEY, as_of date NOT NULL)",
            _SCORES_TABLE_TO_CURRENT,
            # applied again to a later schema (its version rows lost), the view has columns this one would drop
            "DROP VIEW IF EXISTS {scores}",
            _CURRENT_VIEW_3,
        ),
    ),
    (
        4,
        "factors as json (the text as written, checked) instead of jsonb",
        (
            # json keeps the text the server checked instead of building jsonb's binary form, which took half of
            # the history COPY; factors are only read whole, so jsonb's operators and indexes are not needed
            # (json has -> and ->>, a cast to jsonb gives the rest)
            "DROP VIEW IF EXISTS {scores}",
            "ALTER TABLE {history} ALTER COLUMN factors TYPE json USING factors::json",
            _CURRENT_VIEW_3,
        ),
    ),
    (
        5,
        "attempts kept apart (append-only); a run row is the published run of its date and names its folder",
        (
            "ALTER TABLE {runs} ADD COLUMN IF NOT EXISTS run_id text NOT NULL DEFAULT ''",
            "CREATE TABLE IF NOT EXISTS {attempts} (\n"
            "    id bigserial PRIMARY KEY, instance text NOT NULL, as_of date NOT NULL, attempt text NOT NULL,\n"
            "    step text NOT NULL, try_number integer NOT NULL, status text NOT NULL, reason text NOT NULL,\n"
            "    model_version text NOT NULL, metrics jsonb NOT NULL, run_id text NOT NULL,\n"
            "    recorded_at timestamptz NOT NULL DEFAULT clock_timestamp())",
            "CREATE INDEX IF NOT EXISTS customer_ai_attempts_by_date ON {attempts} (instance, as_of)",
            # until now a run row also held poor and failed attempts, one per date, so that a poor re-run of a
            # published date replaced the published run's row: such rows move to the attempts, and where the date's
            # scores were published, a published row is put back, rebuilt from its history rows
            "INSERT INTO {attempts} (instance, as_of, attempt, step, try_number, status, reason, model_version, "
            "metrics, run_id, recorded_at) SELECT instance, as_of, '', CASE status WHEN 'poor' THEN 'quality_gate' "
            "ELSE '' END, 1, status, reason, model_version, metrics, '', written_at FROM {runs} "
            "WHERE status <> 'ok' ORDER BY written_at, instance, as_of",
            "UPDATE {runs} AS r SET status = 'ok', reason = 'published before attempts were recorded; its run row "
            "had been replaced by a later attempt that published nothing (kept in the attempts)', "
            "metrics = '{{}}'::jsonb, model_version = h.model_version, scored_profiles = h.profiles "
            "FROM (SELECT instance, as_of, MIN(model_version) AS model_version, COUNT(*) AS profiles "
            "FROM {history} GROUP BY instance, as_of) AS h "
            "WHERE r.status <> 'ok' AND h.instance = r.instance AND h.as_of = r.as_of",
            "DELETE FROM {runs} WHERE status <> 'ok'",
        ),
    ),
    (
        6,
        "run locks: one lease per instance, so runs on different machines never mix",
        (
            "CREATE TABLE IF NOT EXISTS {locks} (\n"
            "    instance text PRIMARY KEY, attempt text NOT NULL, origin text NOT NULL, scope text NOT NULL,\n"
            "    acquired_at timestamptz NOT NULL, renewed_at timestamptz NOT NULL, expires_at timestamptz NOT NULL)",
        ),
    ),
    (
        7,
        "expected value, days to the next goal event and its date: optional score columns; outcomes' values",
        (
            # the view lists them before the factors: it is made again (CREATE OR REPLACE only adds at the end)
            "DROP VIEW IF EXISTS {scores}",
            "ALTER TABLE {history} ADD COLUMN IF NOT EXISTS expected_value double precision,\n"
            "    ADD COLUMN IF NOT EXISTS days_to_next double precision, ADD COLUMN IF NOT EXISTS next_by date",
            _CURRENT_VIEW,
            # and a past run's mean expected and realised value per group, once its goal window has closed
            "ALTER TABLE {outcomes} ADD COLUMN IF NOT EXISTS predicted_value double precision,\n"
            "    ADD COLUMN IF NOT EXISTS realised_value double precision",
        ),
    ),
    (
        8,
        "saved audiences: a rule, who saved it and when, applied by the segments step of every later run",
        (
            "CREATE TABLE IF NOT EXISTS {audiences} (\n"
            "    instance text NOT NULL, name text NOT NULL, rule jsonb NOT NULL, saved_by text NOT NULL,\n"
            "    saved_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (instance, name))",
        ),
    ),
)
_SCHEMA_VERSION = max(version for version, _, _ in _MIGRATIONS)


def _connect_postgres(dsn: str, what: str) -> Any:
    """Open a psycopg2 connection with a connect timeout; raise StoreUnavailableError when that fails."""
    try:
        given = parse_dsn(dsn)
    except psycopg2.ProgrammingError:
        raise ValueError(f"invalid PostgreSQL address {mask_password(dsn)!r}") from None
    defaults = {"connect_timeout": _CONNECT_TIMEOUT_SECONDS, "application_name": "customer-ai"}
    options = {k: v for k, v in defaults.items() if k not in given}
    try:
        return psycopg2.connect(dsn, client_encoding="UTF8", **options)
    except psycopg2.OperationalError as exc:
        reason = " ".join(str(exc).split())
        password = given.get("password")
        if password:
            reason = reason.replace(password, "***")
        raise StoreUnavailableError(f"cannot connect to {what} at {postgres_location(dsn)}: {reason}") from exc


def _holds_any(texts: pa.Array, words: tuple[bytes, ...]) -> bool:
    """Whether any of ``texts`` contains one of ``words``: a scan of their bytes with NumPy, no per-row work.

    The texts are scanned as one, so a word split across two neighbours is also found (a harmless false alarm).
    """
    if not len(texts):
        return False
    offsets = np.frombuffer(texts.buffers()[1], dtype="int32", count=len(texts) + 1, offset=texts.offset * 4)
    if offsets[-1] == offsets[0]:  # only empty texts, perhaps without a data buffer
        return False
    data = np.frombuffer(texts.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    for word in words:
        starts = np.flatnonzero(data[: max(len(data) - len(word) + 1, 0)] == word[0])
        for shift in range(1, len(word)):
            starts = starts[data[starts + shift] == word[shift]]
        if len(starts):
            return True
    return False


def _finite_block(texts: pa.Array) -> pa.Array:
    """Return a block of factor texts with NaN and infinities as null (:func:`_finite_texts`).

    A block without ``NaN`` or ``Infinity`` anywhere, which is almost every block, is passed on after a scan of its
    bytes, five times as fast as the regular expression that finds the rows to mend in the others.
    """
    return _finite_texts(texts) if _holds_any(texts.cast(pa.string()), (b"NaN", b"Infinity")) else texts


_DATE_COLUMNS = ("as_of", "next_by")  # read as YYYY-MM-DD text, as the SQLite store keeps them


def _score_list(prefix: str = "") -> str:
    """Return the select list of the score columns (of the table aliased by ``prefix``), dates as text."""
    return ", ".join(
        f"to_char({prefix}{c}, '{_DATE_TEXT}')" if c in _DATE_COLUMNS else f"{prefix}{c}" for c in _SCORE_COLUMNS
    )


def _score_column(name: str) -> sql.Composable:
    """Return one score column of a composed select list (a checked name), a date as text."""
    if name in _DATE_COLUMNS:
        return sql.SQL("to_char({}, {})").format(sql.Identifier(name), sql.Literal(_DATE_TEXT))
    return sql.Identifier(name)


class _PostgresWriter(_Writer):
    def __init__(self, store: PostgresStore, cursor: Any, instance: str, as_of: str) -> None:
        self.store = store
        self.cursor = cursor
        self.instance = instance
        self.as_of = as_of

    def _execute(self, template: str, params: dict) -> None:
        self.cursor.execute(self.store._sql(template), params)

    def _copy(self, table: str, fields: dict[str, Field]) -> None:
        """COPY ``fields`` (column name -> values) into ``table`` in PostgreSQL's binary format."""
        columns = sql.SQL(", ").join(map(sql.Identifier, fields))
        statement = sql.SQL("COPY {table} ({columns}) FROM STDIN WITH (FORMAT binary)").format(
            table=self.store._sql(table), columns=columns
        )
        stream = BinaryCopy(list(fields.values()))
        try:
            self.cursor.copy_expert(statement, stream, size=1 << 20)
        except psycopg2.Error:
            if stream.error is not None:  # the data could not be encoded: say why, not that the COPY was cut short
                raise stream.error from None
            raise
        # a stream cut short between two rows is a valid end of COPY data for the server: never take it as done
        if stream.error is not None:
            raise stream.error
        if self.cursor.rowcount != stream.rows:
            raise RuntimeError(f"COPY into {table} took {self.cursor.rowcount:,} of {stream.rows:,} rows")

    def replace_history(self) -> None:
        params = {"instance": self.instance, "as_of": self.as_of}
        self._execute("DELETE FROM {history} WHERE instance = %(instance)s AND as_of = %(as_of)s", params)

    def append_history(self, rows: _ScoreColumns) -> None:
        fields = {
            "instance": Field("text", pa.array([self.instance] * len(rows), pa.string())),
            "profile_id": Field("text", rows.profile_id),
            "as_of": Field("date", self.as_of),
            "probability": Field("float8", rows.probability),
            "score": Field("int4", rows.score),
            "percentile": Field("int4", rows.percentile),
            "bucket": Field("text", rows.bucket),
            "propensity": Field("text", rows.propensity),
            "model_version": Field("text", rows.model_version),
            "expected_value": Field("float8", _nullable(rows.expected_value)),
            "days_to_next": Field("float8", _nullable(rows.days_to_next)),
            "next_by": Field("date", rows.next_by),
            "factors": Field("json", _factor_texts(rows.factors, finite=True), _finite_block),
        }
        try:
            self._copy("{history}", fields)
        except errors.UniqueViolation as exc:
            raise _ScoredTwiceError(exc.diag.message_detail or str(exc)) from exc

    def newest_ok(self) -> str | None:
        self._execute(
            f"SELECT to_char(MAX(as_of), '{_DATE_TEXT}') FROM ("
            "SELECT as_of FROM {runs} WHERE instance = %(instance)s AND status = %(status)s "
            "UNION ALL SELECT as_of FROM {current} WHERE instance = %(instance)s) AS dates",
            {"instance": self.instance, "status": "ok"},
        )
        return self.cursor.fetchone()[0]

    def replace_current(self) -> None:
        # the current scores are the history rows of the instance's current as-of date (a view): one row to move
        self._execute(
            "INSERT INTO {current} (instance, as_of) VALUES (%(instance)s, %(as_of)s) "
            "ON CONFLICT (instance) DO UPDATE SET as_of = EXCLUDED.as_of",
            {"instance": self.instance, "as_of": self.as_of},
        )

    def replace_segments(self) -> None:
        params = {"instance": self.instance, "as_of": self.as_of}
        self._execute("DELETE FROM {segments} WHERE instance = %(instance)s AND as_of = %(as_of)s", params)

    def append_segments(self, members: pa.Table) -> None:
        if not members.num_rows:
            return
        # in primary key order within the part (members come by probability): each row goes to the right edge of
        # the key's index instead of a random page of it, which halves the time of the COPY at a million rows
        members = members.sort_by([("segment", "ascending"), ("profile_id", "ascending")])
        self._copy(
            "{segments}",
            {
                "instance": Field("text", pa.array([self.instance] * members.num_rows, pa.string())),
                "segment": Field("text", members["segment"].combine_chunks()),
                "as_of": Field("date", self.as_of),
                "profile_id": Field("text", members["profile_id"].combine_chunks()),
            },
        )

    def replace_outcomes(self, as_of: str, rows: list[_OutcomeRow]) -> None:
        params = {"instance": self.instance, "as_of": as_of}
        self._execute("DELETE FROM {outcomes} WHERE instance = %(instance)s AND as_of = %(as_of)s", params)
        self.cursor.executemany(
            self.store._sql(
                'INSERT INTO {outcomes} (instance, as_of, "grouping", "group", profiles, predicted_rate, '
                "realised_rate, predicted_value, realised_value, tracked_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, COALESCE(%s::timestamptz, now()))"
            ),
            [(self.instance, as_of, *r.values()) for r in rows],
        )

    def upsert_run(self, values: _RunValues, scored_profiles: int) -> None:
        self._execute(
            "INSERT INTO {runs} (instance, as_of, model_version, status, reason, metrics, scored_profiles, run_id) "
            "VALUES (%(instance)s, %(as_of)s, %(model_version)s, %(status)s, %(reason)s, %(metrics)s::jsonb, "
            "%(scored_profiles)s, %(run_id)s) "
            "ON CONFLICT (instance, as_of) DO UPDATE SET model_version = EXCLUDED.model_version, "
            "status = EXCLUDED.status, reason = EXCLUDED.reason, metrics = EXCLUDED.metrics, "
            "scored_profiles = EXCLUDED.scored_profiles, run_id = EXCLUDED.run_id, written_at = now()",
            {
                "instance": self.instance,
                "as_of": self.as_of,
                "model_version": values.model_version,
                "status": values.status,
                "reason": values.reason,
                "metrics": _metrics_json(values.metrics),
                "scored_profiles": scored_profiles,
                "run_id": values.run_id,
            },
        )

    def append_attempt(self, values: _AttemptValues) -> None:
        self._execute(
            "INSERT INTO {attempts} (instance, as_of, attempt, step, try_number, status, reason, model_version, "
            "metrics, run_id) VALUES (%(instance)s, %(as_of)s, %(attempt)s, %(step)s, %(try_number)s, %(status)s, "
            "%(reason)s, %(model_version)s, %(metrics)s::jsonb, %(run_id)s)",
            {
                "instance": self.instance,
                "as_of": self.as_of,
                **values._asdict(),
                "metrics": _metrics_json(values.metrics),
            },
        )

    def newest_publish(self) -> str | None:
        self._execute(
            "SELECT run_id FROM {attempts} WHERE instance = %(instance)s AND as_of = %(as_of)s AND status = 'ok' "
            "ORDER BY id DESC LIMIT 1",
            {"instance": self.instance, "as_of": self.as_of},
        )
        found = self.cursor.fetchone()
        return None if found is None else found[0]

    def now(self) -> dt.datetime:
        self.cursor.execute("SELECT clock_timestamp()")  # the server's clock: the same for every machine
        return self.cursor.fetchone()[0].astimezone(dt.UTC)

    def read_lease(self) -> RunLease | None:
        columns = ", ".join(RunLease._fields)
        self._execute(f"SELECT {columns} FROM {{locks}} WHERE instance = %(instance)s", {"instance": self.instance})
        found = self.cursor.fetchone()
        return None if found is None else RunLease(*found[:4], *(moment.astimezone(dt.UTC) for moment in found[4:]))

    def write_lease(self, lease: RunLease) -> None:
        names = RunLease._fields
        self._execute(
            f"INSERT INTO {{locks}} ({', '.join(names)}) VALUES ({', '.join(f'%({n})s' for n in names)}) "
            f"ON CONFLICT (instance) DO UPDATE SET {', '.join(f'{n} = EXCLUDED.{n}' for n in names[1:])}",
            lease._asdict(),
        )

    def delete_lease(self) -> None:
        self._execute("DELETE FROM {locks} WHERE instance = %(instance)s", {"instance": self.instance})

    def audience_rows(self) -> list[tuple]:
        self._execute(_AUDIENCES, {"instance": self.instance})
        return self.cursor.fetchall()

    def put_audience(self, name: str, rule: str, saved_by: str) -> None:
        self._execute(
            "INSERT INTO {audiences} (instance, name, rule, saved_by) VALUES (%(instance)s, %(name)s, "
            "%(rule)s::jsonb, %(saved_by)s) ON CONFLICT (instance, name) DO UPDATE SET rule = EXCLUDED.rule, "
            "saved_by = EXCLUDED.saved_by, saved_at = now()",
            {"instance": self.instance, "name": name, "rule": rule, "saved_by": saved_by},
        )

    def remove_audience(self, name: str) -> None:
        self._execute(
            "DELETE FROM {audiences} WHERE instance = %(instance)s AND name = %(name)s",
            {"instance": self.instance, "name": name},
        )


class PostgresStore(_Store):
    """Profile store in PostgreSQL: the tables (``factors`` as JSON, ``metrics`` as JSONB) in one schema.

    The schema and its tables are created on first use and migrated in order (``customer_ai_schema_version``
    records the versions applied) under a transaction-level advisory lock, so processes may start at once.  The
    current scores, ``customer_ai_scores``, are a view: the history rows of each instance's current as-of date,
    which ``customer_ai_current`` holds (one row per instance), so making a run current moves one row instead of
    rewriting a million.  A write takes ``pg_advisory_xact_lock(hashtext(instance))``, so writers of one instance
    queue up, then in one transaction replaces the date's history rows and membership (one binary ``COPY`` of
    each per part of the run: the factors' JSON text is checked once by the server and kept as written, since
    ``json`` is text) and the outcomes the run tracked, moves the current date when the run becomes current,
    writes the run row and appends the attempt's row; a failure (bad row, lost connection, a killed client) leaves
    the previous rows untouched.  Attempts (``customer_ai_attempts``) are only ever appended.

    Parameters
    ----------
    dsn : str
        libpq address: ``postgresql://user:password@host:port/dbname`` or ``host=... dbname=...``.
    schema : str, default "customer_ai"
        Schema holding the tables; created if needed.
    create : bool, default True
        False opens the store for reading only, in read-only transactions: no schema or table is created and
        nothing is migrated or written; a schema without the store's tables reads as empty, a schema of an
        earlier version is refused with :class:`StoreVersionError`.

    Raises
    ------
    StoreAddressError
        For an ambiguous address (a raw ``@`` or ``/`` in the password; see
        :func:`customer_ai.store.address.ambiguous_address`): the message shows it masked.
    """

    def __init__(self, dsn: str, schema: str = _DEFAULT_SCHEMA, *, create: bool = True) -> None:
        if not schema:
            raise ValueError("the PostgreSQL store needs a schema name")
        if len(schema.encode()) > 63:
            raise ValueError(f"schema name {schema!r} is longer than PostgreSQL's 63 bytes")
        if ambiguous_address(dsn):
            raise StoreAddressError(ambiguity_message(dsn))
        self.dsn = dsn
        self.schema = schema
        self.create = create
        self._migrated = False  # the schema is known to be at this version

    def __repr__(self) -> str:
        return f"PostgresStore({mask_password(self.dsn)!r}, schema={self.schema!r})"

    def _sql(self, template: str, **identifiers: str) -> Any:
        """Compose ``template`` with the store's table names (and ``identifiers``) as quoted identifiers."""

        def table(name: str) -> Any:
            return sql.Identifier(self.schema, name)

        return sql.SQL(template).format(
            schema=sql.Identifier(self.schema),
            scores=table("customer_ai_scores"),
            history=table("customer_ai_score_history"),
            runs=table("customer_ai_runs"),
            segments=table("customer_ai_segments"),
            outcomes=table("customer_ai_outcomes"),
            current=table("customer_ai_current"),
            attempts=table("customer_ai_attempts"),
            locks=table("customer_ai_locks"),
            audiences=table("customer_ai_audiences"),
            versions=table("customer_ai_schema_version"),
            **{k: sql.Identifier(v) for k, v in identifiers.items()},
        )

    @contextmanager
    def _connect(self) -> Iterator[Any]:
        """Yield a connection (None: a store opened for reading whose schema holds no store)."""
        connection = _connect_postgres(self.dsn, "the PostgreSQL profile store")
        try:
            if self.create:
                if not self._migrated:
                    self._migrate(connection)
                yield connection
            else:
                connection.set_session(readonly=True)  # a reader never writes, whatever it runs
                yield connection if self._readable(connection) else None
        finally:
            connection.close()

    def _where(self) -> str:
        return f"schema {self.schema!r} of the PostgreSQL database at {postgres_location(self.dsn)}"

    def _readable(self, connection: Any) -> bool:  # noqa: ANN401
        """Whether the schema holds a store at this version (False: no store there); refuse another version."""
        if self._migrated:
            return True
        with connection.cursor() as cursor:
            version = self._schema_version(cursor)
        connection.rollback()
        if version == 0:
            return False
        if version < _SCHEMA_VERSION:
            raise StoreVersionError(
                f"the profile store in {self._where()} was written by an earlier version of customer-ai (schema "
                f"version {version}; this version reads {_SCHEMA_VERSION}): {MIGRATE_HINT}"
            )
        if version > _SCHEMA_VERSION:
            raise self._newer(version)
        self._migrated = True
        return True

    def _newer(self, version: int) -> StoreVersionError:
        return StoreVersionError(
            f"schema {self.schema!r} of {self!r} is at version {version}, newer than this customer-ai understands "
            f"({_SCHEMA_VERSION}); upgrade customer-ai"
        )

    def check(self) -> None:
        """Reach the server and the schema (see :meth:`_Store.check`)."""
        with self._connect() as connection:
            if connection is None:
                raise StoreMissingError(
                    f"no profile store in {self._where()}: nothing has been run with this store yet (or its address "
                    "or schema is mistyped)"
                )

    def migrate(self) -> tuple[int, int]:
        """Bring an existing schema to this version's; return its versions (before, after)."""
        connection = _connect_postgres(self.dsn, "the PostgreSQL profile store")
        try:
            with connection.cursor() as cursor:
                before = self._schema_version(cursor)
            connection.rollback()
            if before == 0:
                raise StoreMissingError(f"no profile store in {self._where()}: nothing to migrate")
            return before, self._migrate(connection)
        finally:
            connection.close()

    def _schema_version(self, cursor: Any) -> int:
        cursor.execute(
            "SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = %s AND tablename = 'customer_ai_schema_version'",
            (self.schema,),
        )
        if cursor.fetchone() is None:
            return 0
        cursor.execute(self._sql("SELECT COALESCE(MAX(version), 0) FROM {versions}"))
        return cursor.fetchone()[0]

    def _migrate(self, connection: Any) -> int:  # noqa: ANN401
        """Create the schema and apply the migrations not applied yet, in order, in one locked transaction.

        Returns the schema's version after it.
        """
        try:
            with connection.cursor() as cursor:
                version = self._schema_version(cursor)
                if version < _SCHEMA_VERSION:
                    # only one process migrates a schema at a time; the others wait, then see the new version
                    cursor.execute(
                        "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_MIGRATION_LOCK_CLASS, self.schema)
                    )
                    # CREATE SCHEMA needs the CREATE right on the database even when the schema exists: ask first
                    cursor.execute("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = %s", (self.schema,))
                    if cursor.fetchone() is None:
                        cursor.execute(self._sql("CREATE SCHEMA IF NOT EXISTS {schema}"))
                    cursor.execute(
                        self._sql(
                            "CREATE TABLE IF NOT EXISTS {versions} (version integer PRIMARY KEY, "
                            "description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
                        )
                    )
                    version = self._schema_version(cursor)
                    for number, description, statements in _MIGRATIONS:
                        if number <= version:
                            continue
                        for statement in statements:
                            if statement == _SCORES_TABLE_TO_CURRENT:
                                self._scores_table_to_current(cursor)
                            else:
                                cursor.execute(self._sql(statement))
                        cursor.execute(
                            self._sql("INSERT INTO {versions} (version, description) VALUES (%s, %s)"),
                            (number, description),
                        )
                        version = number
            connection.commit()
        except BaseException:
            connection.rollback()
            raise
        if version > _SCHEMA_VERSION:
            raise self._newer(version)
        self._migrated = True
        return version

    def _scores_table_to_current(self, cursor: Any) -> None:
        """Record each instance's current as-of date from the table of current scores, then drop that table."""
        cursor.execute(
            "SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = %s AND tablename = 'customer_ai_scores'",
            (self.schema,),
        )
        if cursor.fetchone() is None:
            return
        cursor.execute(
            self._sql(
                "INSERT INTO {current} (instance, as_of) SELECT instance, MAX(as_of) FROM {scores} "
                "GROUP BY instance ON CONFLICT (instance) DO NOTHING"
            )
        )
        cursor.execute(self._sql("DROP TABLE {scores}"))

    @contextmanager
    def _writing(self, instance: str, as_of: str) -> Iterator[_PostgresWriter]:
        self._refuse_if_read_only()
        with self._connect() as connection:
            try:
                with connection.cursor() as cursor:
                    # writers of one instance queue up here; the rows are copied straight into their tables
                    # inside the transaction, so a bad row (or a lost connection) leaves the last run as it was
                    cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (instance,))
                    yield _PostgresWriter(self, cursor, instance, as_of)
                connection.commit()
            except psycopg2.OperationalError as exc:  # the server went away mid-write: nothing was committed
                if not connection.closed:
                    connection.rollback()
                reason = " ".join(str(exc).split())
                raise StoreUnavailableError(
                    f"the PostgreSQL profile store at {postgres_location(self.dsn)} dropped the connection during "
                    f"the write of {instance} as of {as_of}; nothing was written: {reason}"
                ) from exc
            except BaseException:
                if not connection.closed:
                    connection.rollback()
                raise

    @contextmanager
    def _reading(self) -> Iterator[Any]:
        """Yield a connection for read-only queries, whose transaction is then rolled back.

        None: a store opened for reading whose schema holds no store.  A connection the server dropped during the
        read raises :class:`StoreUnavailableError`.
        """
        with self._connect() as connection:
            try:
                yield connection
                if connection is not None:
                    connection.rollback()
            except psycopg2.OperationalError as exc:  # the server went away during the read
                reason = " ".join(str(exc).split())
                raise StoreUnavailableError(
                    f"the PostgreSQL profile store at {postgres_location(self.dsn)} dropped the connection during a "
                    f"read: {reason}"
                ) from exc

    def _fetch(self, query: Any, params: Any) -> list[tuple]:  # noqa: ANN401 - a composed query and its parameters
        """Return the rows of one read-only query (see :meth:`_reading`); a store without a schema has none."""
        with self._reading() as connection:
            if connection is None:
                return []
            with connection.cursor() as cursor:
                cursor.execute(query, params)
                return cursor.fetchall()

    def _select_segment(self, instance: str, segment: str, as_of: str) -> list[tuple]:
        query = (
            f"SELECT {_score_list('h.')} FROM {{segments}} AS m JOIN {{history}} AS h "
            "ON h.instance = m.instance AND h.as_of = m.as_of AND h.profile_id = m.profile_id "
            "WHERE m.instance = %(instance)s AND m.as_of = %(as_of)s AND m.segment = %(segment)s "
            'ORDER BY h.probability DESC, h.profile_id COLLATE "C"'
        )
        rows = self._fetch(self._sql(query), {"instance": instance, "as_of": as_of, "segment": segment})
        return [(*row[:-1], _ordered_factors(row[-1])) for row in rows]

    def _select_segment_names(self, instance: str, as_of: str) -> list[str]:
        rows = self._fetch(
            self._sql("SELECT DISTINCT segment FROM {segments} WHERE instance = %s AND as_of = %s"),
            (instance, as_of),
        )
        return [row[0] for row in rows]

    def _select_outcomes(self, instance: str) -> list[tuple]:
        query = (
            f'SELECT instance, to_char(as_of, \'{_DATE_TEXT}\'), "grouping", "group", profiles, predicted_rate, '
            f"realised_rate, predicted_value, realised_value, to_char(tracked_at AT TIME ZONE 'UTC', "
            f"'{_WRITTEN_AT_TEXT}') "
            "FROM {outcomes} WHERE instance = %s"
        )
        return self._fetch(self._sql(query), (instance,))

    def _select_scores(
        self, instance: str, as_of: str | None, profile_id: str | None, limit: int | None = None
    ) -> list[tuple]:
        table = "{scores}" if as_of is None else "{history}"
        query = f"SELECT {_score_list()} FROM {table} WHERE instance = %(instance)s"
        if as_of is not None:
            query += " AND as_of = %(as_of)s"
        if profile_id is not None:
            query += " AND profile_id = %(profile_id)s"
        query += ' ORDER BY probability DESC, profile_id COLLATE "C" LIMIT %(limit)s'  # byte order, as SQLite sorts
        parameters = {"instance": instance, "as_of": as_of, "profile_id": profile_id, "limit": limit}  # None: all
        rows = self._fetch(self._sql(query), parameters)
        return [(*row[:-1], _ordered_factors(row[-1])) for row in rows]

    def _score_rows(self, instance: str, as_of: str, columns: list[str], rows: int) -> Iterator[list[tuple]]:
        query = sql.SQL("SELECT {columns} FROM {history} WHERE instance = %(instance)s AND as_of = %(as_of)s").format(
            columns=sql.SQL(", ").join(map(_score_column, columns)), history=self._sql("{history}")
        )
        with self._reading() as connection:
            if connection is None:
                return
            with connection.cursor(name="customer_ai_score_batches") as cursor:  # server-side: rows as fetched
                cursor.itersize = rows
                cursor.execute(query, {"instance": instance, "as_of": as_of})
                while batch := cursor.fetchmany(rows):
                    yield batch

    def _select_audiences(self, instance: str) -> list[tuple]:
        return self._fetch(self._sql(_AUDIENCES), {"instance": instance})

    def _select_attempts(self, instance: str, as_of: str | None, latest: bool) -> list[tuple]:
        query = (
            f"SELECT id, instance, to_char(as_of, '{_DATE_TEXT}'), attempt, step, try_number, status, reason, "
            f"model_version, metrics, run_id, to_char(recorded_at AT TIME ZONE 'UTC', '{_WRITTEN_AT_TEXT}') "
            "FROM {attempts} WHERE instance = %(instance)s"
        )
        if as_of is not None:
            query += " AND as_of = %(as_of)s"
        query += " ORDER BY id DESC LIMIT 1" if latest else " ORDER BY id"
        rows = self._fetch(self._sql(query), {"instance": instance, "as_of": as_of})
        return [(*row[:9], json.dumps(row[9], sort_keys=True), *row[10:]) for row in rows]

    def _select_runs(self, instance: str, status: str | None, latest: bool) -> list[tuple]:
        query = (
            f"SELECT instance, to_char(as_of, '{_DATE_TEXT}'), model_version, status, reason, metrics, "
            f"scored_profiles, to_char(written_at AT TIME ZONE 'UTC', '{_WRITTEN_AT_TEXT}'), run_id "
            "FROM {runs} WHERE instance = %(instance)s"
        )
        if status is not None:
            query += " AND status = %(status)s"
        query += " ORDER BY as_of DESC LIMIT 1" if latest else " ORDER BY as_of"
        rows = self._fetch(self._sql(query), {"instance": instance, "status": status})
        # metrics as the same JSON text the SQLite store keeps
        return [(*row[:5], json.dumps(row[5], sort_keys=True), *row[6:]) for row in rows]

    def count_rows(self, instance: str) -> dict[str, int]:
        """Return the row counts of the three tables for one instance."""
        tables = {
            "customer_ai_scores": "{scores}",
            "customer_ai_score_history": "{history}",
            "customer_ai_runs": "{runs}",
        }
        counts = dict.fromkeys(tables, 0)
        with self._connect() as connection:
            if connection is None:
                return counts
            with connection.cursor() as cursor:
                for name, table in tables.items():
                    cursor.execute(self._sql(f"SELECT COUNT(*) FROM {table} WHERE instance = %s"), (instance,))
                    counts[name] = cursor.fetchone()[0]
            connection.rollback()
        return counts
