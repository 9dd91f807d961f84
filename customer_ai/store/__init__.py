"""The profile store: where scores land for other systems to read, and the commit point of every run.

Seven tables, created by the first writer:

- ``customer_ai_scores``: the current score per (instance, profile), from the instance's newest published run.  In
  PostgreSQL a view of the history at each instance's current date (``customer_ai_current``).
- ``customer_ai_score_history``: one row per (instance, profile, as_of): probability, score, percentile, bucket,
  factors and, where the goal predicts them, ``expected_value``, ``days_to_next`` and ``next_by`` (NULL otherwise).
- ``customer_ai_runs``: one row per (instance, as_of), the run published as of that date: model version, status
  (``ok``), reason, metrics, profiles, and ``run_id``, the name of its sealed run folder.
- ``customer_ai_attempts``: append-only, one row per start, failed try of a step, poor model and publish of every
  attempt, with its step, try number and reason.
- ``customer_ai_segments``: segment membership per run, one row per (instance, segment, as_of, profile_id).
- ``customer_ai_outcomes``: the realised outcomes of a run once its goal window has closed, one row per
  (instance, as_of, grouping, group).
- ``customer_ai_locks``: the run lock of each instance, a lease held by one attempt at a time, so that runs on
  different machines never mix (:mod:`customer_ai.store.lease`); a run's commit releases it.

:meth:`write_run` publishes a run: its history, membership, the outcomes it tracked, its run row (naming its
folder, complete before the call), the current scores and its ``ok`` attempt, in one transaction, which is the
run's commit point (:meth:`write_run_parts` does the same with scores that come in parts, a row group at a
time, holding one part at a time).  A re-run of the same as-of date replaces its rows (same row counts, one more
attempt), a failure leaves the previous run untouched, and writing an older as-of date (a backfill) fills history
without replacing newer current scores.  An attempt that publishes nothing (a start, a failure, a ``poor`` model) is
recorded with :meth:`record_attempt`, which touches nothing else.

Two implementations share these rules: :class:`SQLiteStore` (the embedded default, ``<home>/store.sqlite``)
and :class:`PostgresStore` (tables in a configurable schema, migrated in order under an advisory lock).

Only writers (``run``, the DAG's tasks) create and migrate a store; :func:`open_store` with ``create=False`` gives
readers a store that creates, migrates and writes nothing (a missing store reads as empty and its ``check()`` says
so; one that needs a migration is refused until ``migrate()``, the ``customer-ai migrate`` command, is run).  A
writer's first use of a SQLite file reads every page once (``PRAGMA quick_check``), so a damaged file is found
before any work; a damaged file, a full disk and a locked file are :class:`StoreUnavailableError` naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from customer_ai.home import is_local
from customer_ai.store.address import URI_PREFIXES, ambiguous_address, mask_password, postgres_location
from customer_ai.store.base import (
    _DEFAULT_SCHEMA,
    _SCHEMA_ENV,
    AudienceExistsError,
    StoreAddressError,
    StoreDamagedError,
    StoreMissingError,
    StoreUnavailableError,
    StoreVersionError,
)
from customer_ai.store.sqlite import SQLiteStore

if TYPE_CHECKING:
    from customer_ai.store.postgres import PostgresStore

POSTGRES_EXTRA = "customer-ai[postgres]"

__all__ = [
    "AudienceExistsError",
    "PostgresStore",
    "SQLiteStore",
    "StoreAddressError",
    "StoreDamagedError",
    "StoreMissingError",
    "StoreUnavailableError",
    "StoreVersionError",
    "ambiguous_address",
    "mask_password",
    "open_store",
    "postgres_location",
]


def open_store(
    uri: str | None, home: Path, schema: str | None = None, *, create: bool = True
) -> SQLiteStore | PostgresStore:
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
    create : bool, default True
        Whether using the store may create and migrate it (a run, the DAG's tasks).  Readers pass False: then
        nothing is created, migrated or written, a store that does not exist reads as empty (its ``check()``
        raises :class:`StoreMissingError`) and one that needs a migration raises :class:`StoreVersionError`.

    Raises
    ------
    StoreAddressError
        For any other address, or an ambiguous PostgreSQL one (the message shows it with its password masked).
        Also for a PostgreSQL address when its driver is not installed (``pip install "customer-ai[postgres]"``).
    """
    if not uri:
        if not is_local(home):
            raise StoreAddressError(
                f"the home {home} is a bucket: the embedded SQLite store cannot live there (a database file needs a "
                "local disk and its locks). Give a database every worker reaches: --store postgresql://..., "
                "$CUSTOMER_AI_STORE, or in Airflow the connection customer_ai_store"
            )
        return SQLiteStore(Path(home) / "store.sqlite", create=create)
    if uri.startswith("sqlite:///"):
        return SQLiteStore(Path(uri.removeprefix("sqlite:///")), create=create)
    if uri.startswith(URI_PREFIXES):
        postgres = _postgres_module(mask_password(uri))
        return postgres.PostgresStore(uri, schema or os.environ.get(_SCHEMA_ENV) or _DEFAULT_SCHEMA, create=create)
    raise StoreAddressError(
        f"unsupported store address {mask_password(uri)!r}: use sqlite:///path/to/file.sqlite "
        "or postgresql://user@host:port/dbname"
    )


def _postgres_module(address: str):  # noqa: ANN202 - the module customer_ai.store.postgres
    """Import the PostgreSQL store, whose driver (psycopg2) comes with the ``postgres`` extra only."""
    try:
        from customer_ai.store import postgres  # noqa: PLC0415 - the driver is optional
    except ModuleNotFoundError as exc:
        if exc.name is None or not exc.name.startswith("psycopg2"):
            raise
        raise StoreAddressError(
            f"store {address}: a PostgreSQL store needs the psycopg2 driver, which is not installed: "
            f'pip install "{POSTGRES_EXTRA}"'
        ) from exc
    return postgres


def __getattr__(name: str) -> object:
    """Give ``PostgresStore`` on first use: importing the package must not need the PostgreSQL driver."""
    if name == "PostgresStore":
        from customer_ai.store.postgres import PostgresStore  # noqa: PLC0415

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
