"""The embedded profile store: a SQLite file (the default, ``<home>/store.sqlite``)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pyarrow as pa

from customer_ai.store.base import (
    _OUTCOME_COLUMNS,
    _RUN_COLUMNS,
    _SCORE_COLUMNS,
    _factor_texts,
    _json_default,
    _OutcomeRow,
    _RunValues,
    _ScoreColumns,
    _Store,
    _Writer,
)

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
_SQLITE_INSERT = f"({', '.join(_SCORE_COLUMNS)}) VALUES ({', '.join('?' for _ in _SCORE_COLUMNS)})"
_SQLITE_OUTCOME_COLUMNS = ", ".join(f'"{c}"' for c in _OUTCOME_COLUMNS)


class _SQLiteWriter(_Writer):
    def __init__(
        self,
        connection: sqlite3.Connection,
        instance: str,
        as_of: str,
        rows: _ScoreColumns | None,
        members: pa.Table | None = None,
    ):
        self.connection = connection
        self.instance = instance
        self.as_of = as_of
        self.members = [] if members is None else list(zip(*members.to_pydict().values(), strict=True))
        texts = [] if rows is None else _factor_texts(rows.factors, finite=False, check=True).to_pylist()
        self.rows = [] if rows is None else [(instance, r[0], as_of, *r[1:]) for r in rows.rows(texts)]

    def replace_history(self) -> None:
        self.connection.execute(
            "DELETE FROM customer_ai_score_history WHERE instance = ? AND as_of = ?", (self.instance, self.as_of)
        )
        self.connection.executemany(f"INSERT INTO customer_ai_score_history {_SQLITE_INSERT}", self.rows)

    def newest_ok(self) -> str | None:
        return self.connection.execute(
            "SELECT MAX(as_of) FROM (SELECT as_of FROM customer_ai_runs WHERE instance = ? AND status = 'ok' "
            "UNION ALL SELECT as_of FROM customer_ai_scores WHERE instance = ?)",
            (self.instance, self.instance),
        ).fetchone()[0]

    def replace_current(self) -> None:
        self.connection.execute("DELETE FROM customer_ai_scores WHERE instance = ?", (self.instance,))
        self.connection.executemany(f"INSERT INTO customer_ai_scores {_SQLITE_INSERT}", self.rows)

    def replace_segments(self) -> None:
        key = (self.instance, self.as_of)
        self.connection.execute("DELETE FROM customer_ai_segments WHERE instance = ? AND as_of = ?", key)
        self.connection.executemany(
            "INSERT INTO customer_ai_segments (instance, segment, as_of, profile_id) VALUES (?, ?, ?, ?)",
            ((self.instance, segment, self.as_of, profile_id) for segment, profile_id in self.members),
        )

    def replace_outcomes(self, rows: list[_OutcomeRow]) -> None:
        key = (self.instance, self.as_of)
        self.connection.execute("DELETE FROM customer_ai_outcomes WHERE instance = ? AND as_of = ?", key)
        self.connection.executemany(
            'INSERT INTO customer_ai_outcomes (instance, as_of, "grouping", "group", profiles, predicted_rate, '
            "realised_rate) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(*key, r.grouping, r.group, r.profiles, r.predicted_rate, r.realised_rate) for r in rows],
        )

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
    def _writing(
        self, instance: str, as_of: str, rows: _ScoreColumns | None, members: pa.Table | None = None
    ) -> Iterator[_SQLiteWriter]:
        with self._connect() as connection:
            connection.execute("BEGIN IMMEDIATE")  # one writer at a time for the whole file
            try:
                yield _SQLiteWriter(connection, instance, as_of, rows, members)
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

    def _select_segment(self, instance: str, segment: str, as_of: str) -> list[tuple]:
        columns = ", ".join(f"h.{c}" for c in _SCORE_COLUMNS)
        query = (
            f"SELECT {columns} FROM customer_ai_segments AS m JOIN customer_ai_score_history AS h "
            "ON h.instance = m.instance AND h.as_of = m.as_of AND h.profile_id = m.profile_id "
            "WHERE m.instance = ? AND m.as_of = ? AND m.segment = ? ORDER BY h.probability DESC, h.profile_id"
        )
        with self._connect() as connection:
            rows = connection.execute(query, (instance, as_of, segment)).fetchall()
        return [(*row[:-1], json.loads(row[-1])) for row in rows]

    def _select_segment_names(self, instance: str, as_of: str) -> list[str]:
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT DISTINCT segment FROM customer_ai_segments WHERE instance = ? AND as_of = ?", (instance, as_of)
            ).fetchall()
        return [row[0] for row in rows]

    def _select_outcomes(self, instance: str) -> list[tuple]:
        with self._connect() as connection:
            return connection.execute(
                f"SELECT {_SQLITE_OUTCOME_COLUMNS} FROM customer_ai_outcomes WHERE instance = ?", (instance,)
            ).fetchall()

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
