"""Where a task finds the profile store, the events database and the home folder.

- Profile store: the Airflow connection ``customer_ai_store`` (a Postgres connection; its extra ``{"schema":
  "..."}`` picks the schema, default ``customer_ai``), else the ``CUSTOMER_AI_STORE`` address
  (``postgresql://...`` or ``sqlite:///...``), else the embedded SQLite file under the home folder.
- Events in a database: the instance's ``events.connection`` is an Airflow connection id.
- Home (artifacts, models, embedded store): ``CUSTOMER_AI_HOME``, else ``~/.customer-ai``; with several
  workers it must be a shared folder.
"""

from __future__ import annotations

import os
from urllib.parse import quote

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

__all__ = ["STORE_CONNECTION_ID", "connection_dsn", "events_dsn", "store_address"]

STORE_CONNECTION_ID = "customer_ai_store"


def connection_dsn(conn) -> str:  # noqa: ANN001 - an Airflow Connection
    """Return a ``postgresql://`` address built from a connection's fields (extras are not libpq options)."""
    login = quote(conn.login or "", safe="")
    password = f":{quote(conn.password, safe='')}" if conn.password else ""
    auth = f"{login}{password}@" if login or password else ""
    port = f":{conn.port}" if conn.port else ""
    return f"postgresql://{auth}{conn.host or 'localhost'}{port}/{quote(conn.schema or '', safe='')}"


def store_address() -> tuple[str | None, str | None]:
    """Return (store address, schema) for :func:`customer_ai.store.open_store`."""
    try:
        conn = BaseHook.get_connection(STORE_CONNECTION_ID)
    except AirflowNotFoundException:
        return os.environ.get("CUSTOMER_AI_STORE") or None, None
    if (conn.conn_type or "").lower() == "sqlite":
        return f"sqlite:///{conn.host}", None
    return connection_dsn(conn), conn.extra_dejson.get("schema")


def events_dsn(connection_id: str | None) -> str | None:
    """Return the database address of the events' Airflow connection (None when there is none)."""
    if not connection_id:
        return None
    return connection_dsn(BaseHook.get_connection(connection_id))
