"""Helpers to run real Airflow (CLI, DagBag and background services) in subprocesses with a throwaway AIRFLOW_HOME."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pandas as pd
import psutil
import pytest
import yaml

from conftest import ROOT

AIRFLOW = Path(sys.executable).with_name("airflow")
DAG = "customer_ai__repurchase_30d"
EXAMPLES = ROOT / "examples" / "online_retail"
T = TypeVar("T")


def write_instance(folder: Path, events: Path | None = None, name: str = "repurchase_30d", **changes: object) -> Path:
    """Write an example instance (``instances/<name>.yaml``) with absolute paths and optional changes."""
    spec = yaml.safe_load((ROOT / "instances" / f"{name}.yaml").read_text())
    spec["events"]["path"] = str(events or EXAMPLES / "events.parquet")
    spec["profiles"]["path"] = str(EXAMPLES / "profiles.parquet")
    spec.update(changes)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def eligible_at(as_of: str) -> set[str]:
    """Return the example customers with a purchase in the 365 days before ``as_of`` (both examples' rule)."""
    events = pd.read_parquet(EXAMPLES / "events.parquet")
    when = pd.Timestamp(as_of, tz="UTC")
    window = events[(events.timestamp >= when - pd.Timedelta(days=365)) & (events.timestamp < when)]
    return set(window.loc[window.event_type == "purchase", "profile_id"])


def airflow_env(tmp: Path, instances: Path, **extra: str) -> dict[str, str]:
    """Return an environment for Airflow on embedded SQLite, with the project's dags and plugins."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW", "CUSTOMER_AI", "PYTEST")) and key != "PYTHONPATH"
    }
    env.update(
        {
            "AIRFLOW_HOME": str(tmp / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "CUSTOMER_AI_INSTANCES": str(instances),
            "CUSTOMER_AI_HOME": str(tmp / "home"),
            "CUSTOMER_AI_RETRY_DELAY_SECONDS": "1",
            "GX_ANALYTICS_ENABLED": "False",
            # every Airflow process waits up to a minute for SQLite's lock instead of failing after 5 seconds
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": "airflow_sqlite.CONNECT_ARGS",
            "PYTHONPATH": str(Path(__file__).resolve().parent),
        }
    )
    env.update(extra)
    return env


def viewer_password(password: str) -> str:
    """Return the password of user ``viewer`` (role viewer: reads every DAG, edits none) beside admin's ``password``."""
    return f"{password}-viewer"


def served_settings(tmp: Path, api_port: int, log_port: int, password: str) -> dict[str, str]:
    """Return the settings of a local API server on ``api_port``: simple auth with user ``admin``, ``password``.

    User ``viewer`` (role viewer) may read but not edit: its password is :func:`viewer_password`.
    """
    passwords = tmp / "passwords.json"
    passwords.write_text(json.dumps({"admin": password, "viewer": viewer_password(password)}))
    return {
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(log_port),
    }


def served_env(tmp: Path, api_port: int, log_port: int, password: str, **extra: str) -> dict[str, str]:
    """Return :func:`airflow_env` for a local API server on ``api_port`` (:func:`served_settings`)."""
    return airflow_env(tmp, tmp / "instances", **served_settings(tmp, api_port, log_port, password), **extra)


def served_airflow(tmp: Path, **extra: str) -> Airflow:
    """Return the services (not started) of an Airflow served on free local ports, logs in ``tmp/services``.

    The API server is also the tasks' execution API, the user is ``admin`` (:func:`served_env`), and the scheduler
    makes only the runs a test triggers: no scheduled run of the current week (no data then) competes with them.
    """
    api_port, log_port = free_ports(2)
    url = f"http://127.0.0.1:{api_port}"
    password = secrets.token_urlsafe(16)
    env = served_env(
        tmp,
        api_port,
        log_port,
        password,
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{url}/execution/",
        AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE="False",
        **extra,
    )
    logs = tmp / "services"
    logs.mkdir()
    return Airflow(env, url, logs, password)


def healthy(airflow: Airflow) -> bool | None:
    """Return True once the API server answers that its metadata database is healthy, else None."""
    response = airflow.get("/monitor/health")
    if response.status_code == 200 and response.json()["metadatabase"]["status"] == "healthy":
        return True
    return None


def run_airflow(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the ``airflow`` command; never raises on a non-zero exit."""
    return subprocess.run(
        [str(AIRFLOW), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False, cwd=ROOT
    )


def migrate(env: dict[str, str]) -> None:
    """Create the Airflow metadata database (SQLite) of this environment."""
    result = run_airflow(env, "db", "migrate")
    assert result.returncode == 0, result.stderr[-3000:]


_DAGBAG_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from airflow.dag_processing.dagbag import DagBag
    bag = DagBag(dag_folder=sys.argv[1])
    out = {"import_errors": {str(k): v for k, v in bag.import_errors.items()}, "dags": {}}
    for dag_id, dag in bag.dags.items():
        out["dags"][dag_id] = {
            "tasks": {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks},
            "schedule": dag.schedule if isinstance(dag.schedule, str) or dag.schedule is None
            else dag.timetable.summary,
            "catchup": dag.catchup,
            "tags": sorted(dag.tags),
            "params": {k: dag.params.get_param(k).value for k in dag.params.keys()},
            "description": dag.description,
            "doc_md": dag.doc_md,
            "start_date": dag.start_date.isoformat() if dag.start_date else None,
            "max_active_runs": dag.max_active_runs,
            "retries": {t.task_id: t.retries for t in dag.tasks},
            "outlets": {t.task_id: [getattr(o, "uri", str(o)) for o in t.outlets] for t in dag.tasks},
            "mapped": sorted(t.task_id for t in dag.tasks if getattr(t, "is_mapped", False)),
        }
    print("JSON:" + json.dumps(out))
    """
)


def dagbag(env: dict[str, str]) -> dict:
    """Load the project's DAG folder with Airflow's DagBag in a subprocess; return what it found."""
    result = subprocess.run(
        [sys.executable, "-c", _DAGBAG_SCRIPT, str(ROOT / "dags")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("JSON:"))
    return json.loads(line.removeprefix("JSON:"))


def free_ports(count: int) -> list[int]:
    """Return ``count`` distinct free localhost ports (the sockets are held together so they differ)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def tail(path: Path, chars: int = 2500) -> str:
    text = path.read_text(errors="replace") if path.exists() else "(no file)"
    return text[-chars:]


class Airflow:
    """Background Airflow services sharing one environment, and a REST client for their API server."""

    def __init__(self, env: dict[str, str], url: str, logs: Path, password: str, executable: Path = AIRFLOW) -> None:
        self.env = env
        self.executable = executable  # the airflow command: this virtualenv's by default
        self.url = url
        self.logs = logs
        self.password = password
        self.processes: dict[str, subprocess.Popen] = {}
        self.client = httpx.Client(base_url=url, timeout=30)

    def start(
        self, name: str, *args: str, command: tuple[str, ...] | None = None, env: dict[str, str] | None = None
    ) -> None:
        """Start ``airflow <name> *args`` (or ``airflow *command *args``, kept under ``name``) in the background.

        ``env`` changes or adds variables for this process only (a worker's own local folders, say).
        """
        with (self.logs / f"{name}.out").open("wb") as out, (self.logs / f"{name}.err").open("wb") as err:
            self.processes[name] = subprocess.Popen(  # noqa: S603 - the venv's airflow command
                [str(self.executable), *(command or (name,)), *args],
                env={**self.env, **(env or {})},
                cwd=self.logs,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,  # its own process group, ended as a whole
            )

    def start_core(self) -> None:
        """Start the API server (one worker, on its configured port), the scheduler and the DAG processor."""
        self.start("api-server", "--host", "127.0.0.1", "--port", self.env["AIRFLOW__API__PORT"], "--workers", "1")
        self.start("scheduler")
        self.start("dag-processor")  # no deferrable operators: no triggerer

    def stop(self) -> None:
        """SIGTERM every service's process group (scheduler first), then SIGKILL what is left."""
        self.client.close()
        order = sorted(self.processes.items(), key=lambda item: item[0] != "scheduler")
        family: list[psutil.Process] = []
        for _, process in order:
            with contextlib.suppress(psutil.Error):
                family.extend(psutil.Process(process.pid).children(recursive=True))  # task runners setpgid
        for _, process in order:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for _, process in order:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
        for _, process in order:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)
        for child in family:
            with contextlib.suppress(psutil.Error):
                child.kill()

    def diagnostics(self) -> str:
        parts = []
        for name, process in self.processes.items():
            state = "running" if process.poll() is None else f"exited {process.returncode}"
            parts.append(f"--- {name} ({state}) stdout ---\n{tail(self.logs / f'{name}.out')}")
            parts.append(f"--- {name} stderr ---\n{tail(self.logs / f'{name}.err')}")
        return "\n".join(parts)

    def wait_for(self, what: str, check: Callable[[], T | None], timeout: float) -> T:
        """Poll ``check`` until it returns a value; fail early if a service died, or at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            dead = {name: p.returncode for name, p in self.processes.items() if p.poll() is not None}
            assert not dead, f"Airflow services exited {dead} while waiting for {what}\n{self.diagnostics()}"
            with contextlib.suppress(httpx.TransportError):
                value = check()
                if value is not None:
                    return value
            assert time.monotonic() < deadline, f"no {what} after {timeout:.0f}s\n{self.diagnostics()}"
            time.sleep(1)

    def login(self) -> None:
        """Get a JWT like the UI's login form does, and send it with every later request."""
        response = self.client.post("/auth/token", json={"username": "admin", "password": self.password})
        assert response.status_code == 201, response.text
        self.client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.client.get(f"/api/v2{path}", params=params)


CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PAGE_TIMEOUT = 30.0  # seconds for a page of the UI to load


@contextlib.contextmanager
def chromium() -> Iterator:  # noqa: ANN201 - a selenium WebDriver, imported lazily
    """Start Debian's headless Chromium through its own chromedriver (Selenium Manager stays offline)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: apt-get install -y chromium chromium-driver (Debian's packages)")
    os.environ["SE_OFFLINE"] = "1"  # Selenium Manager never looks for (or downloads) a browser or a driver
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,900"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(PAGE_TIMEOUT)
    try:
        yield driver
    finally:
        driver.quit()
