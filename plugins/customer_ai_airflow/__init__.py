"""Airflow operators around the customer-ai run steps (the modeling package never imports Airflow)."""
