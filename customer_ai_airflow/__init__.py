"""The Airflow integration of customer-ai (``pip install "customer-ai[airflow]"``).

- :mod:`customer_ai_airflow.dags`: the DAG factory, one DAG per instance file (a DAG file of a few lines);
- :mod:`customer_ai_airflow.operators`: thin operators around the steps of :mod:`customer_ai.steps`;
- :mod:`customer_ai_airflow.connections`: where the tasks find the profile store and the events database;
- :mod:`customer_ai_airflow.ui` and :mod:`customer_ai_airflow.plugin`: the "Customer AI" view, registered by the
  ``airflow.plugins`` entry point;
- :mod:`customer_ai_airflow.provider`: what ``airflow providers list`` shows.

The modeling package, :mod:`customer_ai`, never imports Airflow.
"""
