"""The profile store: where scores land for other systems to read.

Three tables, created on first use:

- ``customer_ai_scores``: the current score per (instance, profile), from the newest as-of date of a run with
  status ``ok``.
- ``customer_ai_score_history``: one row per (instance, profile, as_of).
- ``customer_ai_runs``: one row per (instance, as_of): model version, status, reason, metrics.

A run's rows are written in one transaction: a re-run of the same as-of date replaces its rows (same row
counts), a failure leaves the previous scores untouched, and writing an older as-of date (a backfill) fills
history without replacing newer current scores.  Which as-of date is current is decided from the runs table,
counting only runs with status ``ok``: a run's scores become current when it is ``ok`` and its date is the
newest (or equal to the newest) ``ok`` date of its instance.  A run that stops before writing scores (a
``poor`` model, a failure) is recorded with :meth:`record_run`, which touches neither scores nor history.

Two implementations share these rules: :class:`SQLiteStore` (the embedded default, ``<home>/store.sqlite``)
and :class:`PostgresStore` (tables in a configurable schema, migrated in order under an advisory lock).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import os
import re
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pandas as pd
import psycopg2
from psycopg2 import sql
from psycopg2.extensions import parse_dsn

__all__ = [
    "PostgresStore",
    "SQLiteStore",
    "StoreUnavailableError",
    "mask_password",
    "open_store",
    "postgres_location",
]

_SCORE_COLUMNS = (
    "instance",
    "profile_id",
    "as_of",
    "probability",
    "score",
    "percentile",
    "bucket",
    "propensity",
    "model_version",
    "factors",
)
_RUN_COLUMNS = (
    "instance",
    "as_of",
    "model_version",
    "status",
    "reason",
    "metrics",
    "scored_profiles",
    "written_at",
)
_REQUIRED_SCORE_COLUMNS = ("profile_id", "probability", "score", "percentile", "bucket", "propensity", "model_version")
# the dtypes both stores return, whatever the backend and even when no row matches
_SCORE_DTYPES = {
    "instance": "str",
    "profile_id": "str",
    "as_of": "str",
    "probability": "float64",
    "score": "int64",
    "percentile": "int64",
    "bucket": "str",
    "propensity": "str",
    "model_version": "str",
    "factors": "object",
}
_RUN_DTYPES = {
    "instance": "str",
    "as_of": "str",
    "model_version": "str",
    "status": "str",
    "reason": "str",
    "metrics": "str",
    "scored_profiles": "int64",
    "written_at": "str",
}
# JSONB keeps no key order: factors read back from PostgreSQL get the order the scoring code writes
_FACTOR_KEYS = ("feature", "description", "value", "contribution", "importance")
_DEFAULT_SCHEMA = "customer_ai"
_SCHEMA_ENV = "CUSTOMER_AI_STORE_SCHEMA"
_CONNECT_TIMEOUT_SECONDS = 5


class StoreUnavailableError(ConnectionError):
    """The profile store's server cannot be reached; the message names host, port and database, never a password."""


# ---------------------------------------------------------------------------------------------------------------
# shared rules


class _RunValues(NamedTuple):
    model_version: Any
    status: Any
    reason: Any
    metrics: dict


@dataclass(frozen=True)
class _ScoreRow:
    profile_id: str
    probability: float
    score: int
    percentile: int
    bucket: str
    propensity: str
    model_version: str
    factors: Any


def _as_of_text(as_of: object) -> str:
    """Return an as-of date as ``YYYY-MM-DD``; accept that text, a date or a timestamp."""
    if isinstance(as_of, dt.datetime | pd.Timestamp):
        return f"{as_of:%Y-%m-%d}"
    if isinstance(as_of, dt.date):
        return as_of.isoformat()
    try:
        return dt.date.fromisoformat(str(as_of)).isoformat()
    except ValueError:
        raise ValueError(f"as-of date {as_of!r} is not a date (use YYYY-MM-DD)") from None


def _score_rows(instance: str, as_of: str, scores: pd.DataFrame) -> list[_ScoreRow]:
    """Check a run's scores (no missing value in a required column) and return them as rows."""
    empty = [c for c in _REQUIRED_SCORE_COLUMNS if scores[c].isna().any()]
    if empty:
        raise ValueError(f"scores for {instance} as of {as_of}: missing values in {empty}; nothing written")
    return [
        _ScoreRow(
            str(r.profile_id),
            float(r.probability),
            int(r.score),
            int(r.percentile),
            str(r.bucket),
            str(r.propensity),
            str(r.model_version),
            r.factors,
        )
        for r in scores.itertuples(index=False)
    ]


def _run_values(run: dict) -> _RunValues:
    return _RunValues(run["model_version"], run["status"], run["reason"], run.get("metrics") or {})


def _becomes_current(status: str, as_of: str, newest_ok: str | None) -> bool:
    """Whether a run's scores replace the current ones.

    ``newest_ok`` is the newest as-of date of the instance's ``ok`` runs before this run's row is written.
    """
    return status == "ok" and (newest_ok is None or as_of >= newest_ok)


def _scores_frame(rows: Iterable[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(list(rows), columns=list(_SCORE_COLUMNS))
    return frame.astype(_SCORE_DTYPES)


def _runs_frame(rows: Iterable[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(list(rows), columns=list(_RUN_COLUMNS))
    return frame.astype(_RUN_DTYPES)


def _finite(value: Any) -> Any:
    """Replace NaN and infinities (which JSON cannot hold) by None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _ordered_factors(factors: Any) -> Any:
    if not isinstance(factors, list):
        return factors
    ordered = []
    for factor in factors:
        if isinstance(factor, dict):
            known = {k: factor[k] for k in _FACTOR_KEYS if k in factor}
            factor = known | {k: v for k, v in factor.items() if k not in known}  # noqa: PLW2901
        ordered.append(factor)
    return ordered


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


class _Writer(ABC):
    """One write transaction of one instance, holding the instance's writer lock (backend specific)."""

    @abstractmethod
    def replace_history(self) -> None:
        """Replace the history rows of (instance, as_of) by this run's rows."""

    @abstractmethod
    def newest_ok(self) -> str | None:
        """Return the newest as-of date of the instance's ``ok`` runs (``YYYY-MM-DD``) or None."""

    @abstractmethod
    def replace_current(self) -> None:
        """Make this run's rows the instance's current scores (profiles not rescored disappear)."""

    @abstractmethod
    def upsert_run(self, values: _RunValues, scored_profiles: int) -> None:
        """Insert or replace the run row of (instance, as_of)."""


class _Store(ABC):
    """The public interface and the rules both stores share; subclasses supply the SQL."""

    @abstractmethod
    def _writing(self, instance: str, as_of: str, rows: list[_ScoreRow] | None) -> Any:
        """Return a context manager: one transaction yielding a :class:`_Writer`, committed on success."""

    @abstractmethod
    def _select_scores(self, instance: str, as_of: str | None, profile_id: str | None) -> list[tuple]:
        """Return score rows (factors parsed) in the order of :meth:`read_scores`."""

    @abstractmethod
    def _select_runs(self, instance: str, status: str | None, latest: bool) -> list[tuple]:
        """Return run rows (metrics as sorted JSON text), oldest first, or only the newest when ``latest``."""

    def write_run(self, instance: str, as_of: str, scores: pd.DataFrame, run: dict) -> None:
        """Write one run's scores, history and run row in a single transaction.

        The history rows of (instance, as_of) are replaced; the current scores are replaced (profiles not
        rescored disappear) only when the run is ``ok`` and ``as_of`` is at least the newest ``ok`` as-of date
        already recorded; the run row is inserted or replaced.

        Parameters
        ----------
        instance : str
            Instance name.
        as_of : str
            As-of date, ``YYYY-MM-DD``.
        scores : pandas.DataFrame
            Columns ``profile_id, probability, score, percentile, bucket, propensity, model_version, factors``
            (factors: lists of dicts).
        run : dict
            ``model_version``, ``status``, ``reason``, ``metrics`` (dict, optional).

        Raises
        ------
        ValueError
            When a required score column has missing values (nothing is written).
        """
        as_of = _as_of_text(as_of)
        rows = _score_rows(instance, as_of, scores)
        values = _run_values(run)
        with self._writing(instance, as_of, rows) as writer:
            writer.replace_history()
            if _becomes_current(values.status, as_of, writer.newest_ok()):
                writer.replace_current()
            writer.upsert_run(values, len(rows))

    def record_run(self, instance: str, as_of: str, run: dict) -> None:
        """Insert or replace only the run row of a run that wrote no scores (``scored_profiles`` 0).

        Used when a run stops before writing scores: status ``poor`` when the model failed the quality gate, or
        ``failed``.  Scores and history are never touched, so the previous current scores stay current.

        Parameters
        ----------
        instance : str
            Instance name.
        as_of : str
            As-of date, ``YYYY-MM-DD``.
        run : dict
            ``model_version``, ``status``, ``reason``, ``metrics`` (dict, optional).

        Raises
        ------
        ValueError
            For status ``ok``: an ``ok`` run has scores, written with :meth:`write_run`.
        """
        as_of = _as_of_text(as_of)
        values = _run_values(run)
        if values.status == "ok":
            raise ValueError(
                f"run of {instance} as of {as_of}: record_run is for runs that wrote no scores; "
                "an 'ok' run is written with write_run"
            )
        with self._writing(instance, as_of, None) as writer:
            writer.upsert_run(values, 0)

    def read_scores(self, instance: str, as_of: str | None = None, profile_id: str | None = None) -> pd.DataFrame:
        """Return current scores (or the history of one as-of date), optionally for one profile.

        Rows come by probability descending, then profile id; ``factors`` comes back as lists of dicts.  A value
        of ``as_of`` that is not a date matches nothing.
        """
        if as_of is not None:
            try:
                as_of = _as_of_text(as_of)
            except ValueError:
                return _scores_frame([])  # writes refuse such dates: nothing can match
        return _scores_frame(self._select_scores(instance, as_of, profile_id))

    def read_runs(self, instance: str) -> pd.DataFrame:
        """Return the run rows of an instance, oldest first (``metrics`` as JSON text with sorted keys)."""
        return _runs_frame(self._select_runs(instance, None, latest=False))

    def latest_run(self, instance: str, status: str | None = "ok") -> dict | None:
        """Return the run row with the newest as-of date and this status (any status for None), or None.

        The dict has the columns of :meth:`read_runs`, with ``metrics`` as a dict.
        """
        rows = self._select_runs(instance, status, latest=True)
        if not rows:
            return None
        row = dict(zip(_RUN_COLUMNS, rows[0], strict=True))
        row["metrics"] = json.loads(row["metrics"])
        row["scored_profiles"] = int(row["scored_profiles"])
        return row

    @abstractmethod
    def count_rows(self, instance: str) -> dict[str, int]:
        """Return the row counts of the three tables for one instance."""


# ---------------------------------------------------------------------------------------------------------------
# SQLite

_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS customer_ai_scores (
    instance TEXT NOT NULL, profile_id TEXT NOT NULL, as_of TEXT NOT NULL,
    probability REAL NOT NULL, score INTEGER NOT NULL, percentile INTEGER NOT NULL, bucket TEXT NOT NULL,
    propensity TEXT NOT NULL, model_version TEXT NOT NULL, factors TEXT NOT NULL,
    PRIMARY KEY (instance, profile_id)
);
CREATE TABLE IF NOT EXISTS customer_ai_score_history (
    instance TEXT NOT NULL, profile_id TEXT NOT NULL, as_of TEXT NOT NULL,
    probability REAL NOT NULL, score INTEGER NOT NULL, percentile INTEGER NOT NULL, bucket TEXT NOT NULL,
    propensity TEXT NOT NULL, model_version TEXT NOT NULL, factors TEXT NOT NULL,
    PRIMARY KEY (instance, profile_id, as_of)
);
CREATE TABLE IF NOT EXISTS customer_ai_runs (
    instance TEXT NOT NULL, as_of TEXT NOT NULL, model_version TEXT NOT NULL, status TEXT NOT NULL,
    reason TEXT NOT NULL, metrics TEXT NOT NULL, scored_profiles INTEGER NOT NULL,
    written_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    PRIMARY KEY (instance, as_of)
);
"""
_SQLITE_INSERT = f"({', '.join(_SCORE_COLUMNS)}) VALUES ({', '.join('?' for _ in _SCORE_COLUMNS)})"


class _SQLiteWriter(_Writer):
    def __init__(self, connection: sqlite3.Connection, instance: str, as_of: str, rows: list[_ScoreRow] | None):
        self.connection = connection
        self.instance = instance
        self.as_of = as_of
        self.rows = [
            (instance, r.profile_id, as_of, r.probability, r.score, r.percentile, r.bucket, r.propensity)
            + (r.model_version, json.dumps(r.factors, ensure_ascii=False, default=_json_default))
            for r in rows or []
        ]

    def replace_history(self) -> None:
        self.connection.execute(
            "DELETE FROM customer_ai_score_history WHERE instance = ? AND as_of = ?", (self.instance, self.as_of)
        )
        self.connection.executemany(f"INSERT INTO customer_ai_score_history {_SQLITE_INSERT}", self.rows)

    def newest_ok(self) -> str | None:
        return self.connection.execute(
            "SELECT MAX(as_of) FROM customer_ai_runs WHERE instance = ? AND status = 'ok'", (self.instance,)
        ).fetchone()[0]

    def replace_current(self) -> None:
        self.connection.execute("DELETE FROM customer_ai_scores WHERE instance = ?", (self.instance,))
        self.connection.executemany(f"INSERT INTO customer_ai_scores {_SQLITE_INSERT}", self.rows)

    def upsert_run(self, values: _RunValues, scored_profiles: int) -> None:
        self.connection.execute(
            "INSERT OR REPLACE INTO customer_ai_runs "
            "(instance, as_of, model_version, status, reason, metrics, scored_profiles) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                self.instance,
                self.as_of,
                values.model_version,
                values.status,
                values.reason,
                json.dumps(values.metrics, sort_keys=True, default=_json_default),
                scored_profiles,
            ),
        )


class SQLiteStore(_Store):
    """Profile store in a SQLite file (the embedded default).

    Parameters
    ----------
    path : pathlib.Path
        The database file; its folder is created if needed.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.path, timeout=60)) as connection:
            connection.executescript(_SQLITE_SCHEMA)
            yield connection

    @contextmanager
    def _writing(self, instance: str, as_of: str, rows: list[_ScoreRow] | None) -> Iterator[_SQLiteWriter]:
        with self._connect() as connection:
            connection.execute("BEGIN IMMEDIATE")  # one writer at a time for the whole file
            try:
                yield _SQLiteWriter(connection, instance, as_of, rows)
                connection.commit()
            except BaseException:
                connection.rollback()
                raise

    def _select_scores(self, instance: str, as_of: str | None, profile_id: str | None) -> list[tuple]:
        table = "customer_ai_scores" if as_of is None else "customer_ai_score_history"
        query = f"SELECT {', '.join(_SCORE_COLUMNS)} FROM {table} WHERE instance = ?"
        params: list = [instance]
        if as_of is not None:
            query += " AND as_of = ?"
            params.append(as_of)
        if profile_id is not None:
            query += " AND profile_id = ?"
            params.append(profile_id)
        with self._connect() as connection:
            rows = connection.execute(query + " ORDER BY probability DESC, profile_id", params).fetchall()
        return [(*row[:-1], json.loads(row[-1])) for row in rows]

    def _select_runs(self, instance: str, status: str | None, latest: bool) -> list[tuple]:
        query = f"SELECT {', '.join(_RUN_COLUMNS)} FROM customer_ai_runs WHERE instance = ?"
        params: list = [instance]
        if status is not None:
            query += " AND status = ?"
            params.append(status)
        query += " ORDER BY as_of DESC LIMIT 1" if latest else " ORDER BY as_of"
        with self._connect() as connection:
            return connection.execute(query, params).fetchall()

    def count_rows(self, instance: str) -> dict[str, int]:
        """Return the row counts of the three tables for one instance."""
        counts = {}
        with self._connect() as connection:
            for table in ("customer_ai_scores", "customer_ai_score_history", "customer_ai_runs"):
                counts[table] = connection.execute(
                    f"SELECT COUNT(*) FROM {table} WHERE instance = ?",
                    (instance,),
                ).fetchone()[0]
        return counts


# ---------------------------------------------------------------------------------------------------------------
# PostgreSQL

_URI_PREFIXES = ("postgresql://", "postgres://")
_MIGRATION_LOCK_CLASS = 0x0C_A1  # first key of the two-key advisory lock that guards migrations
_STAGING = "customer_ai_staging"
_STAGED_COLUMNS = _SCORE_COLUMNS[1:2] + _SCORE_COLUMNS[3:]  # instance and as_of are the same on every row
_DATE_TEXT = "YYYY-MM-DD"
_WRITTEN_AT_TEXT = 'YYYY-MM-DD"T"HH24:MI:SS"Z"'

_SCORE_TABLE_COLUMNS = """
    instance text NOT NULL, profile_id text NOT NULL, as_of date NOT NULL,
    probability double precision NOT NULL, score integer NOT NULL, percentile integer NOT NULL,
    bucket text NOT NULL, propensity text NOT NULL, model_version text NOT NULL, factors jsonb NOT NULL"""

# (version, description, statements); a statement's {schema}, {scores}, {history}, {runs} are identifiers
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


class _CsvStream:
    """A file-like object producing the staged rows as CSV on demand, for ``COPY ... FROM STDIN``."""

    def __init__(self, rows: list[_ScoreRow]) -> None:
        self._rows = iter(rows)
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
        self._pending = ""

    def read(self, size: int = -1) -> str:
        while size < 0 or len(self._pending) < size:
            batch = [next(self._rows, None) for _ in range(1000)]
            batch = [r for r in batch if r is not None]
            if not batch:
                break
            for r in batch:
                factors = json.dumps(_finite(r.factors), ensure_ascii=False, allow_nan=False, default=_json_default)
                self._writer.writerow(
                    (r.profile_id, r.probability, r.score, r.percentile, r.bucket, r.propensity)
                    + (r.model_version, factors)
                )
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
            f"SELECT to_char(MAX(as_of), '{_DATE_TEXT}') FROM {{runs}} "
            "WHERE instance = %(instance)s AND status = %(status)s",
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
    """Profile store in PostgreSQL: the three tables (``factors`` and ``metrics`` as JSONB) in one schema.

    The schema and its tables are created on first use and migrated in order (``customer_ai_schema_version``
    records the versions applied) under a transaction-level advisory lock, so processes may start at once.  A
    write stages the run's rows with ``COPY`` into a temporary table, then replaces history, current scores and
    the run row in one transaction holding ``pg_advisory_xact_lock(hashtext(instance))``, so writers of one
    instance queue up and a failure (bad row, lost connection) leaves the previous rows untouched.

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
    def _writing(self, instance: str, as_of: str, rows: list[_ScoreRow] | None) -> Iterator[_PostgresWriter]:
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
                            _CsvStream(rows),
                        )
                        cursor.execute(self._sql("ANALYZE {staging}", staging=_STAGING))  # plans for large runs
                    cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (instance,))
                    yield _PostgresWriter(self, cursor, instance, as_of)
                connection.commit()
            except BaseException:
                if not connection.closed:
                    connection.rollback()
                raise

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


# ---------------------------------------------------------------------------------------------------------------


def open_store(uri: str | None, home: Path, schema: str | None = None) -> SQLiteStore | PostgresStore:
    """Return the store named by ``uri``, or the embedded default under ``home``.

    Parameters
    ----------
    uri : str or None
        Store address: ``None`` or empty for ``<home>/store.sqlite``; ``sqlite:///path``; ``postgresql://...``
        or ``postgres://...`` for a :class:`PostgresStore`.
    home : pathlib.Path
        The customer-ai home folder.
    schema : str, optional
        Schema of a PostgreSQL store; default ``$CUSTOMER_AI_STORE_SCHEMA``, else ``customer_ai``.

    Raises
    ------
    ValueError
        For any other address (the message shows it with its password masked).
    """
    if not uri:
        return SQLiteStore(Path(home) / "store.sqlite")
    if uri.startswith("sqlite:///"):
        return SQLiteStore(Path(uri.removeprefix("sqlite:///")))
    if uri.startswith(_URI_PREFIXES):
        return PostgresStore(uri, schema or os.environ.get(_SCHEMA_ENV) or _DEFAULT_SCHEMA)
    raise ValueError(
        f"unsupported store address {mask_password(uri)!r}: use sqlite:///path/to/file.sqlite "
        "or postgresql://user@host:port/dbname"
    )
