"""The embedded profile store: a SQLite file (the default, ``<home>/store.sqlite``)."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path

import pyarrow as pa

from customer_ai.store.base import (
    _ATTEMPT_COLUMNS,
    _OUTCOME_COLUMNS,
    _RUN_COLUMNS,
    _SCORE_COLUMNS,
    MIGRATE_HINT,
    StoreDamagedError,
    StoreMissingError,
    StoreUnavailableError,
    StoreVersionError,
    _AttemptValues,
    _factor_texts,
    _metrics_json,
    _OutcomeRow,
    _RunValues,
    _ScoreColumns,
    _ScoredTwiceError,
    _Store,
    _Writer,
)
from customer_ai.store.lease import RunLease

__all__ = ["SQLiteStore"]

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
CREATE TABLE IF NOT EXISTS customer_ai_segments (
    instance TEXT NOT NULL, segment TEXT NOT NULL, as_of TEXT NOT NULL, profile_id TEXT NOT NULL,
    PRIMARY KEY (instance, as_of, segment, profile_id)
);
CREATE TABLE IF NOT EXISTS customer_ai_outcomes (
    instance TEXT NOT NULL, as_of TEXT NOT NULL, "grouping" TEXT NOT NULL, "group" TEXT NOT NULL,
    profiles INTEGER NOT NULL, predicted_rate REAL, realised_rate REAL,
    tracked_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    PRIMARY KEY (instance, as_of, "grouping", "group")
);
"""
_NOW = "strftime('%Y-%m-%dT%H:%M:%SZ', 'now')"
# one run lock (lease) per instance; times are ISO 8601 UTC text with microseconds, so they compare as text
_SQLITE_LOCKS = (
    "CREATE TABLE IF NOT EXISTS customer_ai_locks (\n"
    "    instance TEXT PRIMARY KEY, attempt TEXT NOT NULL, origin TEXT NOT NULL, scope TEXT NOT NULL,\n"
    "    acquired_at TEXT NOT NULL, renewed_at TEXT NOT NULL, expires_at TEXT NOT NULL)"
)
# the first published run rows (schema version 0) kept poor and failed attempts too, one row per date: a poor re-run
# of a published date replaced the published run's row.  Version 1 moves every such row to the attempts and, where
# the date's scores were published, puts a published row back, rebuilt from its history rows.
_REPAIRED_REASON = (
    "published before attempts were recorded; its run row had been replaced by a later attempt that published "
    "nothing (kept in the attempts)"
)
# (version, statements), applied in order by the first writer or reader that finds the file older (PRAGMA user_version)
_SQLITE_MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        1,
        (
            "ALTER TABLE customer_ai_runs ADD COLUMN run_id TEXT NOT NULL DEFAULT ''",
            "CREATE TABLE IF NOT EXISTS customer_ai_attempts (\n"
            "    id INTEGER PRIMARY KEY AUTOINCREMENT, instance TEXT NOT NULL, as_of TEXT NOT NULL,\n"
            "    attempt TEXT NOT NULL, step TEXT NOT NULL, try_number INTEGER NOT NULL, status TEXT NOT NULL,\n"
            "    reason TEXT NOT NULL, model_version TEXT NOT NULL, metrics TEXT NOT NULL, run_id TEXT NOT NULL,\n"
            f"    recorded_at TEXT NOT NULL DEFAULT ({_NOW}))",
            "CREATE INDEX IF NOT EXISTS customer_ai_attempts_by_date ON customer_ai_attempts (instance, as_of)",
            "INSERT INTO customer_ai_attempts (instance, as_of, attempt, step, try_number, status, reason, "
            "model_version, metrics, run_id, recorded_at) SELECT instance, as_of, '', CASE status WHEN 'poor' THEN "
            "'quality_gate' ELSE '' END, 1, status, reason, model_version, metrics, '', written_at "
            "FROM customer_ai_runs WHERE status <> 'ok' ORDER BY written_at, instance, as_of",
            "UPDATE customer_ai_runs SET status = 'ok', reason = '" + _REPAIRED_REASON + "', metrics = '{}', "
            "model_version = (SELECT MIN(h.model_version) FROM customer_ai_score_history AS h "
            "WHERE h.instance = customer_ai_runs.instance AND h.as_of = customer_ai_runs.as_of), "
            "scored_profiles = (SELECT COUNT(*) FROM customer_ai_score_history AS h "
            "WHERE h.instance = customer_ai_runs.instance AND h.as_of = customer_ai_runs.as_of) "
            "WHERE status <> 'ok' AND EXISTS (SELECT 1 FROM customer_ai_score_history AS h "
            "WHERE h.instance = customer_ai_runs.instance AND h.as_of = customer_ai_runs.as_of)",
            "DELETE FROM customer_ai_runs WHERE status <> 'ok'",
        ),
    ),
    (2, (_SQLITE_LOCKS,)),
    # a run's scores are read and copied by date: without it each such query read every run's rows of the instance
    (
        3,
        (
            "CREATE INDEX IF NOT EXISTS customer_ai_score_history_by_date "
            "ON customer_ai_score_history (instance, as_of)",
        ),
    ),
    # what a goal may predict beside the probability (missing in the rows written before, and where it predicts
    # nothing): the expected sum of its events' amounts, the days to its next event and that day (YYYY-MM-DD)
    (
        4,
        (
            *(
                f"ALTER TABLE {table} ADD COLUMN {column}"
                for table in ("customer_ai_scores", "customer_ai_score_history")
                for column in ("expected_value REAL", "days_to_next REAL", "next_by TEXT")
            ),
            # and a past run's mean expected and realised value per group, once its goal window has closed
            "ALTER TABLE customer_ai_outcomes ADD COLUMN predicted_value REAL",
            "ALTER TABLE customer_ai_outcomes ADD COLUMN realised_value REAL",
        ),
    ),
    # audiences saved from the view or the command line: a rule (JSON text), who saved it and when, applied by the
    # segments step of every later run
    (
        5,
        (
            "CREATE TABLE IF NOT EXISTS customer_ai_audiences (\n"
            "    instance TEXT NOT NULL, name TEXT NOT NULL, rule TEXT NOT NULL, saved_by TEXT NOT NULL,\n"
            f"    saved_at TEXT NOT NULL DEFAULT ({_NOW}), PRIMARY KEY (instance, name))",
        ),
    ),
)
_SQLITE_VERSION = max(version for version, _ in _SQLITE_MIGRATIONS)
_SQLITE_COLUMNS = ", ".join(_SCORE_COLUMNS)
_SQLITE_INSERT = f"({_SQLITE_COLUMNS}) VALUES ({', '.join('?' for _ in _SCORE_COLUMNS)})"
_SQLITE_OUTCOME_COLUMNS = ", ".join(f'"{c}"' for c in _OUTCOME_COLUMNS)
_SQLITE_AUDIENCES = "SELECT name, rule, saved_by, saved_at FROM customer_ai_audiences WHERE instance = ?"


class _SQLiteWriter(_Writer):
    def __init__(self, connection: sqlite3.Connection, instance: str, as_of: str) -> None:
        self.connection = connection
        self.instance = instance
        self.as_of = as_of

    def replace_history(self) -> None:
        self.connection.execute(
            "DELETE FROM customer_ai_score_history WHERE instance = ? AND as_of = ?", (self.instance, self.as_of)
        )

    def append_history(self, rows: _ScoreColumns) -> None:
        texts = _factor_texts(rows.factors, finite=False, check=True).to_pylist()
        converted = ((self.instance, r[0], self.as_of, *r[1:]) for r in rows.rows(texts))
        try:
            self.connection.executemany(f"INSERT INTO customer_ai_score_history {_SQLITE_INSERT}", converted)
        except sqlite3.IntegrityError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
                raise
            raise _ScoredTwiceError(str(exc)) from exc

    def newest_ok(self) -> str | None:
        return self.connection.execute(
            "SELECT MAX(as_of) FROM (SELECT as_of FROM customer_ai_runs WHERE instance = ? AND status = 'ok' "
            "UNION ALL SELECT as_of FROM customer_ai_scores WHERE instance = ?)",
            (self.instance, self.instance),
        ).fetchone()[0]

    def replace_current(self) -> None:
        self.connection.execute("DELETE FROM customer_ai_scores WHERE instance = ?", (self.instance,))
        self.connection.execute(
            f"INSERT INTO customer_ai_scores ({_SQLITE_COLUMNS}) SELECT {_SQLITE_COLUMNS} "
            "FROM customer_ai_score_history WHERE instance = ? AND as_of = ?",
            (self.instance, self.as_of),
        )

    def replace_segments(self) -> None:
        key = (self.instance, self.as_of)
        self.connection.execute("DELETE FROM customer_ai_segments WHERE instance = ? AND as_of = ?", key)

    def append_segments(self, members: pa.Table) -> None:
        columns = members.to_pydict()
        self.connection.executemany(
            "INSERT INTO customer_ai_segments (instance, segment, as_of, profile_id) VALUES (?, ?, ?, ?)",
            (
                (self.instance, segment, self.as_of, profile_id)
                for segment, profile_id in zip(columns["segment"], columns["profile_id"], strict=True)
            ),
        )

    def replace_outcomes(self, as_of: str, rows: list[_OutcomeRow]) -> None:
        key = (self.instance, as_of)
        self.connection.execute("DELETE FROM customer_ai_outcomes WHERE instance = ? AND as_of = ?", key)
        self.connection.executemany(
            'INSERT INTO customer_ai_outcomes (instance, as_of, "grouping", "group", profiles, predicted_rate, '
            "realised_rate, predicted_value, realised_value, tracked_at) "
            f"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, COALESCE(?, {_NOW}))",
            [(*key, *r.values()) for r in rows],
        )

    def upsert_run(self, values: _RunValues, scored_profiles: int) -> None:
        self.connection.execute(
            "INSERT OR REPLACE INTO customer_ai_runs "
            "(instance, as_of, model_version, status, reason, metrics, scored_profiles, run_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                self.instance,
                self.as_of,
                values.model_version,
                values.status,
                values.reason,
                _metrics_json(values.metrics),
                scored_profiles,
                values.run_id,
            ),
        )

    def append_attempt(self, values: _AttemptValues) -> None:
        self.connection.execute(
            "INSERT INTO customer_ai_attempts (instance, as_of, attempt, step, try_number, status, reason, "
            "model_version, metrics, run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                self.instance,
                self.as_of,
                values.attempt,
                values.step,
                values.try_number,
                values.status,
                values.reason,
                values.model_version,
                _metrics_json(values.metrics),
                values.run_id,
            ),
        )

    def newest_publish(self) -> str | None:
        found = self.connection.execute(
            "SELECT run_id FROM customer_ai_attempts WHERE instance = ? AND as_of = ? AND status = 'ok' "
            "ORDER BY id DESC LIMIT 1",
            (self.instance, self.as_of),
        ).fetchone()
        return None if found is None else found[0]

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)  # one machine's file: its clock

    def read_lease(self) -> RunLease | None:
        found = self.connection.execute(
            f"SELECT {', '.join(RunLease._fields)} FROM customer_ai_locks WHERE instance = ?", (self.instance,)
        ).fetchone()
        if found is None:
            return None
        return RunLease(*found[:4], *(dt.datetime.fromisoformat(text) for text in found[4:]))

    def write_lease(self, lease: RunLease) -> None:
        self.connection.execute(
            f"INSERT OR REPLACE INTO customer_ai_locks ({', '.join(RunLease._fields)}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (*lease[:4], *(moment.astimezone(dt.UTC).isoformat() for moment in lease[4:])),
        )

    def delete_lease(self) -> None:
        self.connection.execute("DELETE FROM customer_ai_locks WHERE instance = ?", (self.instance,))

    def audience_rows(self) -> list[tuple]:
        return self.connection.execute(_SQLITE_AUDIENCES, (self.instance,)).fetchall()

    def put_audience(self, name: str, rule: str, saved_by: str) -> None:
        self.connection.execute(
            "INSERT OR REPLACE INTO customer_ai_audiences (instance, name, rule, saved_by) VALUES (?, ?, ?, ?)",
            (self.instance, name, rule, saved_by),
        )

    def remove_audience(self, name: str) -> None:
        self.connection.execute(
            "DELETE FROM customer_ai_audiences WHERE instance = ? AND name = ?", (self.instance, name)
        )


def _migrate(connection: sqlite3.Connection) -> int:
    """Apply the migrations the file has not had yet, in order, in one transaction that holds the write lock.

    Returns the version the file had.
    """
    found = connection.execute("PRAGMA user_version").fetchone()[0]
    if found >= _SQLITE_VERSION:
        return found
    connection.execute("BEGIN IMMEDIATE")  # another process may be migrating: wait for it, then look again
    try:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        for number, statements in _SQLITE_MIGRATIONS:
            if number > version:
                for statement in statements:
                    connection.execute(statement)
        connection.execute(f"PRAGMA user_version = {max(version, _SQLITE_VERSION)}")
        connection.commit()
    except BaseException:
        connection.rollback()
        raise
    return found


_TIMEOUT_SECONDS = 60
_HEADER = b"SQLite format 3\x00"
_RESTORE = "restore it from a backup, or move it aside (the next run then starts a new, empty store)"


def _problems(connection: sqlite3.Connection) -> list[str]:
    """Return what ``PRAGMA quick_check`` finds wrong (the first three problems; none: the file is whole).

    It reads every page of the file once: a damaged page is found however rarely it is read.
    """
    rows = [row[0] for row in connection.execute("PRAGMA quick_check(3)")]
    lines = [" ".join(line.split()) for row in rows for line in row.splitlines()]
    return [line for line in lines if line != "ok" and not line.startswith("***")]


def _damage(path: Path, reason: str, problems: list[str] | None = None) -> str:
    """Say what is wrong with a damaged file: not a SQLite file, cut short (from its header), else its problems."""
    try:
        size = path.stat().st_size
        with path.open("rb") as stream:
            header = stream.read(100)
    except OSError:
        return reason
    if not header.startswith(_HEADER):
        return f"it is not a SQLite database (it does not start with the SQLite header): {reason}"
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    header_valid = len(header) == 100 and header[24:28] == header[92:96]  # SQLite's rule for the page count
    if header_valid and size < pages * page_size:
        return f"it is cut short: {size:,} bytes where its header says {pages * page_size:,} ({reason})"
    if problems is None:  # a reader found a damaged page: say what every page check finds, as a run says it
        try:
            with closing(sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)) as connection:
                problems = _problems(connection)
        except sqlite3.Error:
            problems = []
    return "; ".join(problems) or reason


def _damaged(path: Path, reason: str, problems: list[str] | None = None) -> StoreDamagedError:
    return StoreDamagedError(f"the profile store {path} is damaged: {_damage(path, reason, problems)}; {_RESTORE}")


def _fault(path: Path, exc: sqlite3.Error) -> Exception:
    """Return the store error a SQLite error stands for (the file named, what is wrong), or ``exc`` itself."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = None if code is None else code & 0xFF
    reason = str(exc)
    if primary in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return _damaged(path, reason)
    if primary == sqlite3.SQLITE_FULL:
        return StoreUnavailableError(
            f"the profile store {path} cannot grow: {reason}; nothing was written: free some space, then run again"
        )
    if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return StoreUnavailableError(
            f"the profile store {path} stayed locked by another process for {_TIMEOUT_SECONDS} s ({reason}); "
            "nothing was written"
        )
    if primary == sqlite3.SQLITE_READONLY:
        return StoreUnavailableError(
            f"the profile store {path} cannot be written: {reason} (the file or its folder is read-only, or "
            "belongs to another user); nothing was written: make it writable or give another --home or --store, "
            "then run again"
        )
    if primary in (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_PERM):
        return StoreUnavailableError(f"the profile store {path} cannot be used: {reason}")
    return exc


@contextmanager
def _faults_named(path: Path) -> Iterator[None]:
    """Raise the store error a SQLite error stands for (naming the file, see :func:`_fault`), else the error."""
    try:
        yield
    except sqlite3.Error as exc:
        fault = _fault(path, exc)
        if fault is exc:
            raise
        raise fault from exc


def _missing(path: Path, detail: str = "") -> StoreMissingError:
    return StoreMissingError(
        f"no profile store at {path}{detail}: nothing has been run with this home or store yet (or its address is "
        "mistyped)"
    )


def _has_tables(connection: sqlite3.Connection) -> bool:
    found = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'customer_ai_runs'"
    ).fetchone()
    return found is not None


class SQLiteStore(_Store):
    """Profile store in a SQLite file (the embedded default).

    Parameters
    ----------
    path : pathlib.Path
        The database file.  With ``create``, its folder and the file are created if needed, the file's schema
        is migrated, and the file is checked for damage (``PRAGMA quick_check``) when it is first used.
    create : bool, default True
        False opens the file for reading only: no folder, file or table is created and nothing is migrated or
        written; a file that does not exist (or holds no customer-ai tables) reads as empty, a file of an
        earlier schema is refused with :class:`StoreVersionError`.
    """

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = Path(path)
        self.create = create
        self._checked = False

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection | None]:
        """Yield a connection (None: a store opened for reading that does not exist); name the file in errors."""
        opening = self._open_writable() if self.create else self._open_readable()
        with _faults_named(self.path), opening as connection:
            yield connection

    @contextmanager
    def _open_writable(self) -> Iterator[sqlite3.Connection]:
        existed = self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)  # an OSError names the folder (the command says why)
        with closing(sqlite3.connect(self.path, timeout=_TIMEOUT_SECONDS)) as connection:
            if existed and not self._checked:
                self._check_pages(connection)
            connection.executescript(_SQLITE_SCHEMA)
            _migrate(connection)
            self._checked = True
            yield connection

    def _check_pages(self, connection: sqlite3.Connection) -> None:
        """Read every page of the file once (``PRAGMA quick_check``): a damaged file is found before any work."""
        problems = _problems(connection)
        if problems:
            raise _damaged(self.path, "; ".join(problems), problems)

    @contextmanager
    def _open_readable(self) -> Iterator[sqlite3.Connection | None]:
        if not self.path.exists():
            yield None
            return
        # read-write without creating (a hot journal left by a killed writer must be rolled back to read), then
        # refusing every change: a reader never creates, migrates or writes
        address = f"{self.path.absolute().as_uri()}?mode=rw"
        with closing(sqlite3.connect(address, uri=True, timeout=_TIMEOUT_SECONDS)) as connection:
            connection.execute("PRAGMA query_only = ON")
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if not _has_tables(connection):
                yield None
                return
            if version < _SQLITE_VERSION:
                raise StoreVersionError(
                    f"the profile store {self.path} was written by an earlier version of customer-ai (SQLite "
                    f"user_version {version}; this version reads {_SQLITE_VERSION}): {MIGRATE_HINT}"
                )
            yield connection

    def check(self) -> None:
        """Reach the file (see :meth:`_Store.check`); with ``create``, a damaged file is found here."""
        with self._connect() as connection:
            if connection is None:
                raise _missing(self.path, "" if not self.path.exists() else " (the file holds no customer-ai tables)")

    def migrate(self) -> tuple[int, int]:
        """Bring the file to this version's schema; return its versions (before, after)."""
        if not self.path.exists():
            raise _missing(self.path)
        with _faults_named(self.path), closing(sqlite3.connect(self.path, timeout=_TIMEOUT_SECONDS)) as connection:
            if not _has_tables(connection):
                raise _missing(self.path, " (the file holds no customer-ai tables)")
            self._check_pages(connection)
            connection.executescript(_SQLITE_SCHEMA)
            before = _migrate(connection)
            return before, connection.execute("PRAGMA user_version").fetchone()[0]

    @contextmanager
    def _writing(self, instance: str, as_of: str) -> Iterator[_SQLiteWriter]:
        self._refuse_if_read_only()
        with self._connect() as connection:
            connection.execute("BEGIN IMMEDIATE")  # one writer at a time for the whole file
            try:
                yield _SQLiteWriter(connection, instance, as_of)
                connection.commit()
            except BaseException:
                connection.rollback()
                raise

    def _fetch(self, query: str, params: Sequence) -> list[tuple]:
        """Return the rows of one query (none from a store opened for reading that does not exist)."""
        with self._connect() as connection:
            return [] if connection is None else connection.execute(query, params).fetchall()

    def _select_scores(
        self, instance: str, as_of: str | None, profile_id: str | None, limit: int | None = None
    ) -> list[tuple]:
        table = "customer_ai_scores" if as_of is None else "customer_ai_score_history"
        query = f"SELECT {', '.join(_SCORE_COLUMNS)} FROM {table} WHERE instance = ?"
        params: list = [instance]
        if as_of is not None:
            query += " AND as_of = ?"
            params.append(as_of)
        if profile_id is not None:
            query += " AND profile_id = ?"
            params.append(profile_id)
        rows = self._fetch(
            query + " ORDER BY probability DESC, profile_id LIMIT ?", [*params, -1 if limit is None else limit]
        )
        return [(*row[:-1], json.loads(row[-1])) for row in rows]

    def _score_rows(self, instance: str, as_of: str, columns: list[str], rows: int) -> Iterator[list[tuple]]:
        with self._connect() as connection:
            if connection is None:
                return
            cursor = connection.execute(
                f"SELECT {', '.join(columns)} FROM customer_ai_score_history WHERE instance = ? AND as_of = ?",
                (instance, as_of),
            )
            while batch := cursor.fetchmany(rows):
                yield batch

    def _select_segment(self, instance: str, segment: str, as_of: str) -> list[tuple]:
        columns = ", ".join(f"h.{c}" for c in _SCORE_COLUMNS)
        query = (
            f"SELECT {columns} FROM customer_ai_segments AS m JOIN customer_ai_score_history AS h "
            "ON h.instance = m.instance AND h.as_of = m.as_of AND h.profile_id = m.profile_id "
            "WHERE m.instance = ? AND m.as_of = ? AND m.segment = ? ORDER BY h.probability DESC, h.profile_id"
        )
        rows = self._fetch(query, (instance, as_of, segment))
        return [(*row[:-1], json.loads(row[-1])) for row in rows]

    def _select_segment_names(self, instance: str, as_of: str) -> list[str]:
        rows = self._fetch(
            "SELECT DISTINCT segment FROM customer_ai_segments WHERE instance = ? AND as_of = ?", (instance, as_of)
        )
        return [row[0] for row in rows]

    def _select_outcomes(self, instance: str) -> list[tuple]:
        return self._fetch(
            f"SELECT {_SQLITE_OUTCOME_COLUMNS} FROM customer_ai_outcomes WHERE instance = ?", (instance,)
        )

    def _select_audiences(self, instance: str) -> list[tuple]:
        return self._fetch(_SQLITE_AUDIENCES, (instance,))

    def _select_attempts(self, instance: str, as_of: str | None, latest: bool) -> list[tuple]:
        query = f"SELECT {', '.join(_ATTEMPT_COLUMNS)} FROM customer_ai_attempts WHERE instance = ?"
        params: list = [instance]
        if as_of is not None:
            query += " AND as_of = ?"
            params.append(as_of)
        query += " ORDER BY id DESC LIMIT 1" if latest else " ORDER BY id"
        rows = self._fetch(query, params)
        # metrics as sorted JSON text, as the run rows keep them
        return [(*row[:9], json.dumps(json.loads(row[9]), sort_keys=True), *row[10:]) for row in rows]

    def _select_runs(self, instance: str, status: str | None, latest: bool) -> list[tuple]:
        query = f"SELECT {', '.join(_RUN_COLUMNS)} FROM customer_ai_runs WHERE instance = ?"
        params: list = [instance]
        if status is not None:
            query += " AND status = ?"
            params.append(status)
        query += " ORDER BY as_of DESC LIMIT 1" if latest else " ORDER BY as_of"
        return self._fetch(query, params)

    def count_rows(self, instance: str) -> dict[str, int]:
        """Return the row counts of the three tables for one instance."""
        counts = {}
        with self._connect() as connection:
            for table in ("customer_ai_scores", "customer_ai_score_history", "customer_ai_runs"):
                query = f"SELECT COUNT(*) FROM {table} WHERE instance = ?"
                counts[table] = 0 if connection is None else connection.execute(query, (instance,)).fetchone()[0]
        return counts
