"""The profile store: where scores land for other systems to read.

Three tables, created on first use:

- ``customer_ai_scores``: the current score per (instance, profile), from the latest as-of date written.
- ``customer_ai_score_history``: one row per (instance, profile, as_of).
- ``customer_ai_runs``: one row per (instance, as_of): model version, status, reason, metrics.

A run's rows are written in one transaction: a re-run of the same as-of date replaces its rows (same row
counts), a failure leaves the previous scores untouched, and writing an older as-of date (a backfill) fills
history without replacing newer current scores.  The embedded default is SQLite at
``<home>/store.sqlite``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pandas as pd

__all__ = ["SQLiteStore", "open_store"]

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

_SCHEMA = """
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


class SQLiteStore:
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
            connection.executescript(_SCHEMA)
            yield connection

    def write_run(self, instance: str, as_of: str, scores: pd.DataFrame, run: dict) -> None:
        """Write one run's scores and run row in a single transaction.

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
            ``model_version``, ``status``, ``reason``, ``metrics`` (dict).
        """
        required = ["profile_id", "probability", "score", "percentile", "bucket", "propensity", "model_version"]
        empty = [c for c in required if scores[c].isna().any()]
        if empty:
            raise ValueError(f"scores for {instance} as of {as_of}: missing values in {empty}; nothing written")
        rows = [
            (
                instance,
                str(r.profile_id),
                as_of,
                float(r.probability),
                int(r.score),
                int(r.percentile),
                str(r.bucket),
                str(r.propensity),
                str(r.model_version),
                json.dumps(r.factors, ensure_ascii=False),
            )
            for r in scores.itertuples(index=False)
        ]
        placeholders = ", ".join("?" for _ in _SCORE_COLUMNS)
        columns = ", ".join(_SCORE_COLUMNS)
        with self._connect() as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                connection.execute(
                    "DELETE FROM customer_ai_score_history WHERE instance = ? AND as_of = ?",
                    (instance, as_of),
                )
                connection.executemany(
                    f"INSERT INTO customer_ai_score_history ({columns}) VALUES ({placeholders})", rows
                )
                # the newest run decides what is current, even if it scored nobody
                newest = connection.execute(
                    "SELECT MAX(as_of) FROM customer_ai_runs WHERE instance = ?", (instance,)
                ).fetchone()[0]
                if newest is None or as_of >= newest:
                    connection.execute("DELETE FROM customer_ai_scores WHERE instance = ?", (instance,))
                    connection.executemany(f"INSERT INTO customer_ai_scores ({columns}) VALUES ({placeholders})", rows)
                connection.execute(
                    "INSERT OR REPLACE INTO customer_ai_runs "
                    "(instance, as_of, model_version, status, reason, metrics, scored_profiles) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        instance,
                        as_of,
                        run["model_version"],
                        run["status"],
                        run["reason"],
                        json.dumps(run.get("metrics", {}), sort_keys=True),
                        len(rows),
                    ),
                )
                connection.commit()
            except BaseException:
                connection.rollback()
                raise

    def read_scores(self, instance: str, as_of: str | None = None, profile_id: str | None = None) -> pd.DataFrame:
        """Return current scores (or the history of one as-of date), optionally for one profile.

        ``factors`` comes back as lists of dicts.
        """
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
            frame = pd.read_sql_query(query + " ORDER BY probability DESC, profile_id", connection, params=params)
        frame["factors"] = [json.loads(f) for f in frame["factors"]]
        return frame

    def read_runs(self, instance: str) -> pd.DataFrame:
        """Return the run rows of an instance, oldest first."""
        with self._connect() as connection:
            return pd.read_sql_query(
                "SELECT * FROM customer_ai_runs WHERE instance = ? ORDER BY as_of",
                connection,
                params=[instance],
            )

    def count_rows(self, instance: str) -> dict[str, int]:
        """Return the row counts of the three tables for one instance."""
        counts = {}
        with self._connect() as connection:
            for table in ("customer_ai_scores", "customer_ai_score_history", "customer_ai_runs"):
                counts[table] = connection.execute(
                    f"SELECT COUNT(*) FROM {table} WHERE instance = ?", (instance,)
                ).fetchone()[0]
        return counts


def open_store(uri: str | None, home: Path) -> SQLiteStore:
    """Return the store named by ``uri`` (``sqlite:///path``), or the embedded default under ``home``.

    Parameters
    ----------
    uri : str or None
        Store address; ``None`` or empty for ``<home>/store.sqlite``.
    home : pathlib.Path
        The customer-ai home folder.
    """
    if not uri:
        return SQLiteStore(Path(home) / "store.sqlite")
    if uri.startswith("sqlite:///"):
        return SQLiteStore(Path(uri.removeprefix("sqlite:///")))
    raise ValueError(
        f"unsupported store address {uri!r}: use sqlite:///path/to/file.sqlite "
        "(PostgreSQL stores are configured through Airflow)"
    )
