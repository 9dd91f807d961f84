"""The PostgreSQL profile store: tables in a configurable schema, COPY into staging, one transaction per run."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import parse_dsn

from customer_ai.store.base import (
    _CONNECT_TIMEOUT_SECONDS,
    _DEFAULT_SCHEMA,
    _SCORE_COLUMNS,
    StoreUnavailableError,
    _finite,
    _json_default,
    _ordered_factors,
    _OutcomeRow,
    _RunValues,
    _ScoreRow,
    _Store,
    _Writer,
)

__all__ = ["PostgresStore", "mask_password", "postgres_location"]

_URI_PREFIXES = ("postgresql://", "postgres://")
_MIGRATION_LOCK_CLASS = 0x0C_A1  # first key of the two-key advisory lock that guards migrations
_STAGING = "customer_ai_staging"
_MEMBER_STAGING = "customer_ai_segment_staging"
_STAGED_COLUMNS = _SCORE_COLUMNS[1:2] + _SCORE_COLUMNS[3:]  # instance and as_of are the same on every row
_DATE_TEXT = "YYYY-MM-DD"
_WRITTEN_AT_TEXT = 'YYYY-MM-DD"T"HH24:MI:SS"Z"'

_SCORE_TABLE_COLUMNS = """
    instance text NOT NULL, profile_id text NOT NULL, as_of date NOT NULL,
    probability double precision NOT NULL, score integer NOT NULL, percentile integer NOT NULL,
    bucket text NOT NULL, propensity text NOT NULL, model_version text NOT NULL, factors jsonb NOT NULL"""

# (version, description, statements); a statement's {schema}, {scores}, {history}, {runs}, {segments},
# {outcomes} are identifiers
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
)
_SCHEMA_VERSION = max(version for version, _, _ in _MIGRATIONS)


def mask_password(address: str) -> str:
    """Return a database address with its password (URI user info, ``password`` parameter) replaced by ``***``.

    Parameters
    ----------
    address : str
        A URI (``scheme://user:password@host/db?...``) or a libpq ``key=value`` string.
    """
    if "://" in address:
        try:
            parts = urlsplit(address)
        except ValueError:
            return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", address)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, hosts = netloc.rsplit("@", 1)
            if ":" in userinfo:
                userinfo = userinfo.split(":", 1)[0] + ":***"
            netloc = f"{userinfo}@{hosts}"
        query = parts.query
        if re.search(r"(^|&)password=", query, flags=re.IGNORECASE):
            pairs = parse_qsl(query, keep_blank_values=True)
            query = urlencode([(k, "***" if k.lower() == "password" else v) for k, v in pairs], safe="*/:@")
        return urlunsplit(parts._replace(netloc=netloc, query=query))
    return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S*)", r"\1***", address, flags=re.IGNORECASE)


def postgres_location(dsn: str) -> str:
    """Return ``host=... port=... dbname=...`` of a PostgreSQL address (libpq defaults filled in), no password."""
    try:
        params = parse_dsn(dsn)
    except Exception:  # an unparseable address is described by its masked text
        return mask_password(dsn)
    host = params.get("host") or params.get("hostaddr") or os.environ.get("PGHOST") or "localhost"
    port = params.get("port") or os.environ.get("PGPORT") or "5432"
    user = params.get("user") or os.environ.get("PGUSER")
    dbname = params.get("dbname") or os.environ.get("PGDATABASE") or user or "(default)"
    return f"host={host} port={port} dbname={dbname}"


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


def _score_records(rows: list[_ScoreRow]) -> Iterator[tuple]:
    """Yield the staged columns of each score row (factors as JSON text, without NaN or infinities)."""
    for r in rows:
        factors = json.dumps(_finite(r.factors), ensure_ascii=False, allow_nan=False, default=_json_default)
        yield (r.profile_id, r.probability, r.score, r.percentile, r.bucket, r.propensity, r.model_version, factors)


class _CsvStream:
    """A file-like object producing records as CSV on demand, for ``COPY ... FROM STDIN``."""

    def __init__(self, records: Iterable[tuple]) -> None:
        self._rows = iter(records)
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
        self._pending = ""

    def read(self, size: int = -1) -> str:
        while size < 0 or len(self._pending) < size:
            batch = [next(self._rows, None) for _ in range(1000)]
            batch = [r for r in batch if r is not None]
            if not batch:
                break
            self._writer.writerows(batch)
            self._pending += self._buffer.getvalue()
            self._buffer.seek(0)
            self._buffer.truncate()
        if size < 0:
            size = len(self._pending)
        chunk, self._pending = self._pending[:size], self._pending[size:]
        return chunk


class _PostgresWriter(_Writer):
    def __init__(self, store: PostgresStore, cursor: Any, instance: str, as_of: str) -> None:
        self.store = store
        self.cursor = cursor
        self.instance = instance
        self.as_of = as_of

    def _execute(self, template: str, params: dict) -> None:
        self.cursor.execute(self.store._sql(template, staging=_STAGING), params)

    def replace_history(self) -> None:
        params = {"instance": self.instance, "as_of": self.as_of}
        self._execute("DELETE FROM {history} WHERE instance = %(instance)s AND as_of = %(as_of)s", params)
        self._execute(
            "INSERT INTO {history} (instance, as_of, {staged}) "
            "SELECT %(instance)s, %(as_of)s::date, {staged} FROM {staging}",
            params,
        )

    def newest_ok(self) -> str | None:
        self._execute(
            f"SELECT to_char(MAX(as_of), '{_DATE_TEXT}') FROM ("
            "SELECT as_of FROM {runs} WHERE instance = %(instance)s AND status = %(status)s "
            "UNION ALL SELECT as_of FROM {scores} WHERE instance = %(instance)s) AS dates",
            {"instance": self.instance, "status": "ok"},
        )
        return self.cursor.fetchone()[0]

    def replace_current(self) -> None:
        params = {"instance": self.instance, "as_of": self.as_of}
        self._execute(
            "DELETE FROM {scores} AS s WHERE s.instance = %(instance)s "
            "AND NOT EXISTS (SELECT 1 FROM {staging} AS t WHERE t.profile_id = s.profile_id)",
            params,
        )
        self._execute(
            "INSERT INTO {scores} (instance, as_of, {staged}) "
            "SELECT %(instance)s, %(as_of)s::date, {staged} FROM {staging} "
            "ON CONFLICT (instance, profile_id) DO UPDATE SET as_of = EXCLUDED.as_of, {staged_update}",
            params,
        )

    def replace_segments(self) -> None:
        params = {"instance": self.instance, "as_of": self.as_of}
        self._execute("DELETE FROM {segments} WHERE instance = %(instance)s AND as_of = %(as_of)s", params)
        self.cursor.execute(
            self.store._sql(
                "INSERT INTO {segments} (instance, segment, as_of, profile_id) "
                "SELECT %(instance)s, segment, %(as_of)s::date, profile_id FROM {staging}",
                staging=_MEMBER_STAGING,
            ),
            params,
        )

    def replace_outcomes(self, rows: list[_OutcomeRow]) -> None:
        params = {"instance": self.instance, "as_of": self.as_of}
        self._execute("DELETE FROM {outcomes} WHERE instance = %(instance)s AND as_of = %(as_of)s", params)
        self.cursor.executemany(
            self.store._sql(
                'INSERT INTO {outcomes} (instance, as_of, "grouping", "group", profiles, predicted_rate, '
                "realised_rate) VALUES (%s, %s, %s, %s, %s, %s, %s)"
            ),
            [
                (self.instance, self.as_of, r.grouping, r.group, r.profiles, r.predicted_rate, r.realised_rate)
                for r in rows
            ],
        )

    def upsert_run(self, values: _RunValues, scored_profiles: int) -> None:
        metrics = json.dumps(_finite(values.metrics), sort_keys=True, allow_nan=False, default=_json_default)
        self._execute(
            "INSERT INTO {runs} (instance, as_of, model_version, status, reason, metrics, scored_profiles) "
            "VALUES (%(instance)s, %(as_of)s, %(model_version)s, %(status)s, %(reason)s, %(metrics)s::jsonb, "
            "%(scored_profiles)s) "
            "ON CONFLICT (instance, as_of) DO UPDATE SET model_version = EXCLUDED.model_version, "
            "status = EXCLUDED.status, reason = EXCLUDED.reason, metrics = EXCLUDED.metrics, "
            "scored_profiles = EXCLUDED.scored_profiles, written_at = now()",
            {
                "instance": self.instance,
                "as_of": self.as_of,
                "model_version": values.model_version,
                "status": values.status,
                "reason": values.reason,
                "metrics": metrics,
                "scored_profiles": scored_profiles,
            },
        )


class PostgresStore(_Store):
    """Profile store in PostgreSQL: the five tables (``factors`` and ``metrics`` as JSONB) in one schema.

    The schema and its tables are created on first use and migrated in order (``customer_ai_schema_version``
    records the versions applied) under a transaction-level advisory lock, so processes may start at once.  A
    write stages the run's rows and segment membership with ``COPY`` into temporary tables, then replaces
    history, membership, current scores and the run row in one transaction holding
    ``pg_advisory_xact_lock(hashtext(instance))``, so writers of one instance queue up and a failure (bad row, lost
    connection) leaves the previous rows untouched.

    Parameters
    ----------
    dsn : str
        libpq address: ``postgresql://user:password@host:port/dbname`` or ``host=... dbname=...``.
    schema : str, default "customer_ai"
        Schema holding the tables; created if needed.
    """

    def __init__(self, dsn: str, schema: str = _DEFAULT_SCHEMA) -> None:
        if not schema:
            raise ValueError("the PostgreSQL store needs a schema name")
        if len(schema.encode()) > 63:
            raise ValueError(f"schema name {schema!r} is longer than PostgreSQL's 63 bytes")
        self.dsn = dsn
        self.schema = schema
        self._migrated = False

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
            versions=table("customer_ai_schema_version"),
            staged=sql.SQL(", ").join(map(sql.Identifier, _STAGED_COLUMNS)),
            staged_update=sql.SQL(", ").join(
                sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in _STAGED_COLUMNS[1:]
            ),
            **{k: sql.Identifier(v) for k, v in identifiers.items()},
        )

    @contextmanager
    def _connect(self) -> Iterator[Any]:
        connection = _connect_postgres(self.dsn, "the PostgreSQL profile store")
        try:
            if not self._migrated:
                self._migrate(connection)
            yield connection
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

    def _migrate(self, connection: Any) -> None:
        """Create the schema and apply the migrations not applied yet, in order, in one locked transaction."""
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
            raise RuntimeError(
                f"schema {self.schema!r} of {self!r} is at version {version}, newer than this customer-ai "
                f"understands ({_SCHEMA_VERSION}); upgrade customer-ai"
            )
        self._migrated = True

    @contextmanager
    def _writing(
        self, instance: str, as_of: str, rows: list[_ScoreRow] | None, members: list[tuple[str, str]] | None = None
    ) -> Iterator[_PostgresWriter]:
        with self._connect() as connection:
            try:
                with connection.cursor() as cursor:
                    if rows is not None:
                        # stage first (outside the instance lock's critical part): a bad row fails here
                        cursor.execute(
                            self._sql(
                                "CREATE TEMPORARY TABLE {staging} (profile_id text NOT NULL, "
                                "probability double precision NOT NULL, score integer NOT NULL, "
                                "percentile integer NOT NULL, bucket text NOT NULL, propensity text NOT NULL, "
                                "model_version text NOT NULL, factors jsonb NOT NULL) ON COMMIT DROP",
                                staging=_STAGING,
                            )
                        )
                        cursor.copy_expert(
                            self._sql("COPY {staging} ({staged}) FROM STDIN WITH (FORMAT csv)", staging=_STAGING),
                            _CsvStream(_score_records(rows)),
                        )
                        cursor.execute(self._sql("ANALYZE {staging}", staging=_STAGING))  # plans for large runs
                        self._stage_members(cursor, members or [])
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

    def _stage_members(self, cursor: Any, members: list[tuple[str, str]]) -> None:
        """COPY a run's segment membership into a temporary table dropped at commit."""
        cursor.execute(
            self._sql(
                "CREATE TEMPORARY TABLE {staging} (segment text NOT NULL, profile_id text NOT NULL) ON COMMIT DROP",
                staging=_MEMBER_STAGING,
            )
        )
        cursor.copy_expert(
            self._sql("COPY {staging} (segment, profile_id) FROM STDIN WITH (FORMAT csv)", staging=_MEMBER_STAGING),
            _CsvStream(members),
        )

    def _select_segment(self, instance: str, segment: str, as_of: str) -> list[tuple]:
        query = (
            f"SELECT h.instance, h.profile_id, to_char(h.as_of, '{_DATE_TEXT}'), h.probability, h.score, "
            "h.percentile, h.bucket, h.propensity, h.model_version, h.factors "
            "FROM {segments} AS m JOIN {history} AS h "
            "ON h.instance = m.instance AND h.as_of = m.as_of AND h.profile_id = m.profile_id "
            "WHERE m.instance = %(instance)s AND m.as_of = %(as_of)s AND m.segment = %(segment)s "
            'ORDER BY h.probability DESC, h.profile_id COLLATE "C"'
        )
        with self._connect() as connection, connection.cursor() as cursor:
            cursor.execute(self._sql(query), {"instance": instance, "as_of": as_of, "segment": segment})
            rows = cursor.fetchall()
            connection.rollback()
        return [(*row[:-1], _ordered_factors(row[-1])) for row in rows]

    def _select_segment_names(self, instance: str, as_of: str) -> list[str]:
        with self._connect() as connection, connection.cursor() as cursor:
            cursor.execute(
                self._sql("SELECT DISTINCT segment FROM {segments} WHERE instance = %s AND as_of = %s"),
                (instance, as_of),
            )
            rows = cursor.fetchall()
            connection.rollback()
        return [row[0] for row in rows]

    def _select_outcomes(self, instance: str) -> list[tuple]:
        query = (
            f'SELECT instance, to_char(as_of, \'{_DATE_TEXT}\'), "grouping", "group", profiles, predicted_rate, '
            f"realised_rate, to_char(tracked_at AT TIME ZONE 'UTC', '{_WRITTEN_AT_TEXT}') "
            "FROM {outcomes} WHERE instance = %s"
        )
        with self._connect() as connection, connection.cursor() as cursor:
            cursor.execute(self._sql(query), (instance,))
            rows = cursor.fetchall()
            connection.rollback()
        return rows

    def _select_scores(self, instance: str, as_of: str | None, profile_id: str | None) -> list[tuple]:
        table = "{scores}" if as_of is None else "{history}"
        query = (
            f"SELECT instance, profile_id, to_char(as_of, '{_DATE_TEXT}'), probability, score, percentile, "
            f"bucket, propensity, model_version, factors FROM {table} WHERE instance = %(instance)s"
        )
        if as_of is not None:
            query += " AND as_of = %(as_of)s"
        if profile_id is not None:
            query += " AND profile_id = %(profile_id)s"
        query += ' ORDER BY probability DESC, profile_id COLLATE "C"'  # byte order, as SQLite sorts
        with self._connect() as connection, connection.cursor() as cursor:
            cursor.execute(self._sql(query), {"instance": instance, "as_of": as_of, "profile_id": profile_id})
            rows = cursor.fetchall()
            connection.rollback()
        return [(*row[:-1], _ordered_factors(row[-1])) for row in rows]

    def _select_runs(self, instance: str, status: str | None, latest: bool) -> list[tuple]:
        query = (
            f"SELECT instance, to_char(as_of, '{_DATE_TEXT}'), model_version, status, reason, metrics, "
            f"scored_profiles, to_char(written_at AT TIME ZONE 'UTC', '{_WRITTEN_AT_TEXT}') "
            "FROM {runs} WHERE instance = %(instance)s"
        )
        if status is not None:
            query += " AND status = %(status)s"
        query += " ORDER BY as_of DESC LIMIT 1" if latest else " ORDER BY as_of"
        with self._connect() as connection, connection.cursor() as cursor:
            cursor.execute(self._sql(query), {"instance": instance, "status": status})
            rows = cursor.fetchall()
            connection.rollback()
        # metrics as the same JSON text the SQLite store keeps
        return [(*row[:5], json.dumps(row[5], sort_keys=True), *row[6:]) for row in rows]

    def count_rows(self, instance: str) -> dict[str, int]:
        """Return the row counts of the three tables for one instance."""
        counts = {}
        with self._connect() as connection, connection.cursor() as cursor:
            for name, table in (
                ("customer_ai_scores", "{scores}"),
                ("customer_ai_score_history", "{history}"),
                ("customer_ai_runs", "{runs}"),
            ):
                cursor.execute(self._sql(f"SELECT COUNT(*) FROM {table} WHERE instance = %s"), (instance,))
                counts[name] = cursor.fetchone()[0]
            connection.rollback()
        return counts
