"""SQLAlchemy connect arguments for Airflow's embedded SQLite metadata database in the tests.

The scheduler, the dag-processor, the api-server and a CLI command (``airflow backfill create``) write to one
SQLite file; with SQLite's default 5-second wait, a command that meets the scheduler's write fails with
"database is locked".  Airflow imports this dict through ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS``.
"""

CONNECT_ARGS = {"timeout": 60}
