"""What Airflow's providers manager shows of customer-ai (the ``apache_airflow_provider`` entry point).

``airflow providers list`` names the package and its version; the plugin is registered by its own entry point
(``airflow.plugins``), which Airflow loads however it discovers providers.
"""

from __future__ import annotations

from importlib.metadata import version

__all__ = ["get_provider_info"]


def get_provider_info() -> dict:
    """Return the provider information Airflow reads: the distribution's name, a name and a description."""
    return {
        "package-name": "customer-ai",
        "name": "Customer AI",
        "description": "Calibrated propensity scores with per-profile reasons from an event log: one DAG per "
        "instance file, its operators and the Customer AI view",
        "versions": [version("customer-ai")],
    }
