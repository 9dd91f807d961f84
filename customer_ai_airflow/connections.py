"""Where a task finds the profile store, the events database and the home folder.

- Profile store: the Airflow connection ``customer_ai_store`` (a Postgres connection, read by the Postgres
  provider's ``PostgresHook``: its extras are libpq options, ``sslmode`` and the like, except ``{"schema":
  "..."}``, which picks the store's schema, default ``customer_ai``), else the ``CUSTOMER_AI_STORE`` address
  (``postgresql://...`` or ``sqlite:///...``), else the embedded SQLite file under the home folder.
- Events in a database: the instance's ``events.connection`` is an Airflow connection id.
- Home (artifacts, models, embedded store): ``CUSTOMER_AI_HOME``, else ``~/.customer-ai``; with several
  workers it must be a shared folder.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote, urlencode

from airflow.sdk.exceptions import AirflowNotFoundException

__all__ = ["OWN_EXTRAS", "STORE_CONNECTION_ID", "events_dsn", "libpq_address", "postgres_address", "store_address"]

STORE_CONNECTION_ID = "customer_ai_store"
OWN_EXTRAS = frozenset({"schema"})  # extras customer-ai reads (the store's schema): never libpq options


def libpq_address(arguments: dict[str, Any]) -> str:
    """Return a ``postgresql://`` address of libpq connection arguments (``host``, ``user``, ``sslmode``, ...).

    Every argument other than host, port, user, password and dbname becomes a query parameter, which libpq reads
    as a connection option; None values are left out; parts are percent-encoded.
    """
    rest = {key: value for key, value in arguments.items() if value is not None}
    host = str(rest.pop("host", None) or "localhost")
    host = f"[{host}]" if ":" in host and not host.startswith("[") else quote(host, safe="[]:")
    port = f":{rest.pop('port')}" if "port" in rest else ""
    user = quote(str(rest.pop("user", "")), safe="")
    password = f":{quote(str(rest.pop('password')), safe='')}" if "password" in rest else ""
    auth = f"{user}{password}@" if user or password else ""
    dbname = quote(str(rest.pop("dbname", "")), safe="")
    options = {key: str(value).lower() if isinstance(value, bool) else str(value) for key, value in rest.items()}
    query = f"?{urlencode(options)}" if options else ""
    return f"postgresql://{auth}{host}{port}/{dbname}{query}"


def postgres_address(connection_id: str) -> tuple[str, dict[str, Any]]:
    """Return the address of a Postgres connection, read by the Postgres provider's hook, and its own extras.

    The hook's own extras (``cursor``, ``iam``, ``sqlalchemy_query``, ...) are left to it, an IAM connection gets
    its token from it, and every other extra (``sslmode``, ``sslrootcert``, ``connect_timeout``, ``options``,
    ``application_name``, ...) is a libpq option of the address, as the hook passes it to libpq; the extras of
    :data:`OWN_EXTRAS` are returned apart.
    """
    return _hook_address(_hook(connection_id))


def _hook(connection_id: str):  # noqa: ANN202 - a PostgresHook, imported when a task needs it
    from airflow.providers.postgres.hooks.postgres import PostgresHook  # noqa: PLC0415 - only a task needs it

    return PostgresHook(postgres_conn_id=connection_id)


def _hook_address(hook) -> tuple[str, dict[str, Any]]:  # noqa: ANN001 - a PostgresHook
    connection = hook.connection
    extras = connection.extra_dejson
    login, password, port = connection.login, connection.password, connection.port
    if extras.get("iam", False):
        login, password, port = hook.get_iam_token(connection)
    arguments = {
        "host": connection.host,
        "port": port,
        "user": login,
        "password": password,
        "dbname": connection.schema,
    }
    skipped = hook.ignored_extra_options | OWN_EXTRAS
    arguments.update({key: value for key, value in extras.items() if key not in skipped})
    return libpq_address(arguments), {key: extras[key] for key in OWN_EXTRAS if key in extras}


def store_address() -> tuple[str | None, str | None]:
    """Return (store address, schema) for :func:`customer_ai.store.open_store`; the connection is looked up once."""
    hook = _hook(STORE_CONNECTION_ID)
    try:
        conn = hook.connection
    except AirflowNotFoundException:
        return os.environ.get("CUSTOMER_AI_STORE") or None, None
    if (conn.conn_type or "").lower() == "sqlite":
        return f"sqlite:///{conn.host}", None
    address, own = _hook_address(hook)
    return address, own.get("schema")


def events_dsn(connection_id: str | None) -> str | None:
    """Return the database address of the events' Airflow connection (None when there is none)."""
    if not connection_id:
        return None
    return postgres_address(connection_id)[0]
