"""SQLAlchemy connect arguments for Airflow's embedded SQLite metadata database in the tests.

The scheduler, the dag-processor, the api-server and a CLI command (``airflow backfill create``) write to one
SQLite file: every Airflow process waits up to a minute for another's write lock instead of SQLite's default
5 seconds.  A transaction that must upgrade its read lock while another writer waits still gets "database is
locked" at once (SQLite's deadlock avoidance), which is why the backfill test retries its command.  Airflow
imports this dict through ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS``.
"""

CONNECT_ARGS = {"timeout": 60}
