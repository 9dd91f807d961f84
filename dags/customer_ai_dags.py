"""customer-ai: one Airflow DAG per instance file in the folder named by CUSTOMER_AI_INSTANCES.

The whole DAG file a deployment needs (README, "Deploying into your Airflow"); this project's own Airflow
(make demo, make airflow) sets CUSTOMER_AI_INSTANCES to its instances/ folder.
"""

from customer_ai_airflow.dags import dags_from_folder

globals().update(dags_from_folder())
