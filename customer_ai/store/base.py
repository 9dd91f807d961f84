"""What both profile stores share: the tables' columns, the row checks and the rules of a run's write."""

from __future__ import annotations

import datetime as dt
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import pandas as pd

__all__ = ["StoreUnavailableError"]

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

    ``newest_ok`` is the newest as-of date of the instance's ``ok`` runs (before this run's row is written) or of
    its current scores, whichever is later: a ``poor`` run recorded later on the date of the current scores
    replaces that date's run row, yet an older backfill must still not replace those scores.
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
