"""The Airflow plugin of customer-ai: the "Customer AI" view, a timetable and a listener.

The timetable of a schedule that ends (:class:`customer_ai_airflow.timetables.CronUntilTimetable`) is registered so
the scheduler can read it back; the listener (:mod:`customer_ai_airflow.run_notes`) notes each run's as-of date.

The entry opens the view of :mod:`customer_ai_airflow.ui` (served by Airflow's API server under ``/customer-ai/``,
to logged-in users only) inside the UI.  Airflow finds the plugin through the package's ``airflow.plugins`` entry
point (``pip install "customer-ai[airflow]"``): nothing goes into the plugins folder.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from customer_ai_airflow import run_notes
from customer_ai_airflow.timetables import CronUntilTimetable
from customer_ai_airflow.ui import URL_PREFIX, app


class CustomerAIPlugin(AirflowPlugin):
    """Mounts the view on the API server and adds its navigation entry; registers the timetable."""

    name = "customer_ai"
    timetables = [CronUntilTimetable]
    listeners = [run_notes]  # each run's as-of date as its note
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Customer AI"}]
    external_views = [
        {
            "name": "Customer AI",
            # relative to the UI's base URL (no leading slash), so it also works under a path prefix
            "href": f"{URL_PREFIX.lstrip('/')}/",
            "url_route": "customer-ai",
            "destination": "nav",
            "nav_top_level": True,
        }
    ]
