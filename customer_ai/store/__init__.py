"""The profile store: where scores land for other systems to read.

Five tables, created on first use:

- ``customer_ai_scores``: the current score per (instance, profile), from the newest as-of date of a run with
  status ``ok``.  In PostgreSQL a view of the history at each instance's current date (``customer_ai_current``).
- ``customer_ai_score_history``: one row per (instance, profile, as_of).
- ``customer_ai_runs``: one row per (instance, as_of): model version, status, reason, metrics.
- ``customer_ai_segments``: segment membership per run, one row per (instance, segment, as_of, profile_id).
- ``customer_ai_outcomes``: the realised outcomes of a run once its goal window has closed, one row per
  (instance, as_of, grouping, group), replaced whole by :meth:`write_outcomes`.

A run's rows (history, membership, current scores, run row) are written in one transaction: a re-run of the
same as-of date replaces its rows (same row counts), a failure leaves the previous scores untouched, and writing
an older as-of date (a backfill) fills history without replacing newer current scores.  Which as-of date is
current is decided from the runs table, counting only runs with status ``ok``: a run's scores become current when
it is ``ok`` and its date is the newest (or equal to the newest) ``ok`` date of its instance.  A run that stops
before writing scores (a ``poor`` model, a failure) is recorded with :meth:`record_run`, which touches neither
scores nor history.

Two implementations share these rules: :class:`SQLiteStore` (the embedded default, ``<home>/store.sqlite``)
and :class:`PostgresStore` (tables in a configurable schema, migrated in order under an advisory lock).
"""

from __future__ import annotations

import os
from pathlib import Path

from customer_ai.store.base import _DEFAULT_SCHEMA, _SCHEMA_ENV, StoreUnavailableError
from customer_ai.store.postgres import _URI_PREFIXES, PostgresStore, mask_password, postgres_location
from customer_ai.store.sqlite import SQLiteStore

__all__ = [
    "PostgresStore",
    "StoreAddressError",
    "SQLiteStore",
    "StoreUnavailableError",
    "mask_password",
    "open_store",
    "postgres_location",
]


class StoreAddressError(ValueError):
    """A store address of a kind customer-ai cannot write to; the message shows it, password masked."""


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
    StoreAddressError
        For any other address (the message shows it with its password masked).
    """
    if not uri:
        return SQLiteStore(Path(home) / "store.sqlite")
    if uri.startswith("sqlite:///"):
        return SQLiteStore(Path(uri.removeprefix("sqlite:///")))
    if uri.startswith(_URI_PREFIXES):
        return PostgresStore(uri, schema or os.environ.get(_SCHEMA_ENV) or _DEFAULT_SCHEMA)
    raise StoreAddressError(
        f"unsupported store address {mask_password(uri)!r}: use sqlite:///path/to/file.sqlite "
        "or postgresql://user@host:port/dbname"
    )
