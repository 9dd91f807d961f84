-- The profile store lives beside Airflow's metadata, in its own database.
CREATE DATABASE customer_ai OWNER airflow;
