"""`make demo`, then `make airflow`, as the README writes them, from a clean clone: a first visit without a red run.

The clone is made with ``git clone`` of this repository (its committed state, as CI sees it).  Building a clean
clone's virtualenv takes minutes, so ``make`` is pointed at the virtualenv running these tests (``VENV=...``) and told
that the virtualenv is up to date (``-o``): a clone's files are newer than that virtualenv's marker, and without
``-o`` make would rebuild it, reinstalling this virtualenv from the clone.  A dry run (``make -n``) proves first that
nothing is installed (the ``customer_ai`` package then comes with that virtualenv: this checkout's, the same commit
in CI).  Everything else is the clone's own: its Makefile, DAG file, plugins, example data and its
``var/`` (AIRFLOW_HOME, the customer-ai home), thrown away with it.  Only free ports (with the URLs that name them)
and a single API worker are set from outside.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import psutil
import pytest
from airflow_support import PAGE_TIMEOUT, chromium, free_ports, tail

from conftest import ROOT

pytestmark = pytest.mark.airflow

VENV = Path(sys.executable).parent.parent  # the virtualenv running the tests (sys.executable is its bin/python)
STARTUP_TIMEOUT = 240.0  # database created, four components started, on a loaded 2-core machine
DAGS = ("customer_ai__churn_60d", "customer_ai__repurchase_30d")
ARTIFACTS = ROOT / "var" / "test-artifacts" / "first-visit"  # screenshots of what a first visitor sees


def make_env(api_port: int, worker_log_port: int, trigger_log_port: int) -> dict[str, str]:
    """Return the environment of a user's shell: no Airflow or customer-ai settings, the virtualenv not on PATH."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW", "CUSTOMER_AI", "PYTEST")) and key not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    bin_dir = str(VENV / "bin")
    env["PATH"] = os.pathsep.join(part for part in env.get("PATH", "").split(os.pathsep) if part != bin_dir)
    url = f"http://127.0.0.1:{api_port}"
    env.update(
        {
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__BASE_URL": url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(worker_log_port),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(trigger_log_port),
        }
    )
    return env


def family(pid: int) -> list[psutil.Process]:
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    return []


def stop(process: subprocess.Popen) -> None:
    """SIGTERM every process group among ``make``'s descendants, then SIGKILL what is left of them."""
    processes = family(process.pid)
    groups = {process.pid}
    for member in processes:
        with contextlib.suppress(psutil.Error):
            groups.add(os.getpgid(member.pid))
    groups.discard(os.getpgid(0))  # never this test's own group
    for group in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)
    _, alive = psutil.wait_procs(processes, timeout=30)
    for group in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
    psutil.wait_procs(alive, timeout=30)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    target = tmp_path / "customer-ai"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(target)], check=True, timeout=300)
    return target


def make_command(target: str, clone: Path, env: dict[str, str]) -> list[str]:
    """Return ``make <target>`` with this virtualenv, once a dry run proved it installs nothing."""
    command = ["make", "-o", f"{VENV}/bin/customer-ai", target, f"VENV={VENV}"]
    planned = subprocess.run([*command, "-n"], cwd=clone, env=env, capture_output=True, text=True, check=False)
    assert planned.returncode == 0, planned.stderr
    for installing in ("-m venv", "pip install"):  # the virtualenv is used, never rebuilt
        assert installing not in planned.stdout, planned.stdout
    return command


@contextlib.contextmanager
def make_airflow(clone: Path, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    command = make_command("airflow", clone, env)
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603
            command,
            cwd=clone,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole, never this test's
        )
    try:
        yield process
    finally:
        stop(process)


def wait_for(what: str, check, process: subprocess.Popen, log: Path, timeout: float):  # noqa: ANN001, ANN201
    """Poll ``check`` until it returns a value; fail at once when ``make`` exits, or at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, f"make airflow exited {process.returncode} before {what}\n{tail(log, 5000)}"
        with contextlib.suppress(httpx.TransportError):
            value = check()
            if value is not None:
                return value
        assert time.monotonic() < deadline, f"no {what} after {timeout:.0f}s\n{tail(log, 5000)}"
        time.sleep(1)


def test_make_demo_then_make_airflow_from_a_clean_clone_shows_the_demo_run_and_no_failed_one(
    clone: Path, tmp_path: Path
) -> None:
    api_port, worker_log_port, trigger_log_port = free_ports(3)
    env = make_env(api_port, worker_log_port, trigger_log_port)
    started = time.monotonic()
    demo = subprocess.run(  # noqa: S603
        make_command("demo", clone, env), cwd=clone, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "latest run as of 2011-12-11, model 20111211-" in demo.stdout
    log = tmp_path / "make-airflow.log"
    with make_airflow(clone, env, log) as process, httpx.Client(base_url=f"http://127.0.0.1:{api_port}") as client:

        def healthy() -> dict | None:
            health = client.get("/api/v2/monitor/health").json()
            parts = ("metadatabase", "scheduler", "dag_processor", "triggerer")
            return health if all((health.get(part) or {}).get("status") == "healthy" for part in parts) else None

        wait_for("a healthy API server, scheduler, dag-processor and triggerer", healthy, process, log, STARTUP_TIMEOUT)
        output = log.read_text(errors="replace")
        passwords = clone / "var" / "airflow" / "simple_auth_manager_passwords.json.generated"
        assert f"Airflow UI: http://localhost:{api_port}, user admin, password in {passwords}" in output.splitlines(), (
            output[-3000:]
        )
        password = json.loads(passwords.read_text())["admin"]
        token = client.post("/auth/token", json={"username": "admin", "password": password})
        assert token.status_code == 201, token.text
        client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"

        def parsed() -> list[dict] | None:
            dags = client.get("/api/v2/dags").json()["dags"]
            return dags if sorted(dag["dag_id"] for dag in dags) == list(DAGS) else None

        dags = wait_for("the example DAGs parsed", parsed, process, log, STARTUP_TIMEOUT)
        assert client.get("/api/v2/importErrors").json()["total_entries"] == 0
        plugins = {plugin["name"]: plugin for plugin in client.get("/api/v2/plugins").json()["plugins"]}
        assert [view["name"] for view in plugins["customer_ai"]["external_views"]] == ["Customer AI"]
        # a first visit: both DAGs active, their schedules ended with their data, so nothing is planned ...
        assert [(dag["is_paused"], dag["timetable_summary"]) for dag in dags] == [
            (False, "@weekly until 2011-12-11")
        ] * 2
        time.sleep(10)  # a few scheduler loops: a weekly DAG without an end would have its current week's run by now
        for dag_id in DAGS:
            assert client.get(f"/api/v2/dags/{dag_id}").json()["next_dagrun_run_after"] is None
        # ... and the one run, the demo's: green, as of the date its configuration gives, as long as it took (runs
        # the scheduler starts are noted with their as-of date: tests/test_airflow_services.py)
        assert client.get("/api/v2/dags/customer_ai__churn_60d/dagRuns").json()["total_entries"] == 0
        (run,) = client.get("/api/v2/dags/customer_ai__repurchase_30d/dagRuns").json()["dag_runs"]
        assert (run["state"], run["conf"]) == ("success", {"as_of": "2011-12-11"})
        took = dt.datetime.fromisoformat(run["end_date"]) - dt.datetime.fromisoformat(run["start_date"])
        assert dt.timedelta(0) < took < dt.timedelta(minutes=15)  # not since a 2011 start date
        screenshots(f"http://127.0.0.1:{api_port}", password, run["dag_run_id"])
        members = family(process.pid)
    assert not [member for member in members if member.is_running() and member.status() != psutil.STATUS_ZOMBIE]
    print(f"make demo, make airflow: checked {time.monotonic() - started:.0f}s after start")


def screenshots(url: str, password: str, run_id: str) -> None:
    """Log in with headless Chromium, as a first visitor; keep pictures of the DAG list, the grid and the run."""
    from selenium.webdriver.common.by import By  # noqa: PLC0415 - Selenium only where a browser is driven
    from selenium.webdriver.support import expected_conditions as seen  # noqa: PLC0415
    from selenium.webdriver.support.ui import WebDriverWait  # noqa: PLC0415

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    with chromium() as driver:
        wait = WebDriverWait(driver, PAGE_TIMEOUT)
        driver.get(f"{url}/")
        wait.until(seen.presence_of_element_located((By.NAME, "username"))).send_keys("admin")
        driver.find_element(By.NAME, "password").send_keys(password)
        driver.find_element(By.CSS_SELECTOR, "button[type='submit']").click()
        wait.until(seen.element_to_be_clickable((By.CSS_SELECTOR, "a[aria-label='Customer AI']")))
        driver.get(f"{url}/dags")
        wait.until(lambda d: "customer_ai__repurchase_30d" in d.find_element(By.TAG_NAME, "body").text)
        driver.save_screenshot(ARTIFACTS / "1-dags.png")
        driver.get(f"{url}/dags/customer_ai__repurchase_30d")
        wait.until(lambda d: "customer_ai__repurchase_30d" in d.find_element(By.TAG_NAME, "body").text)
        time.sleep(2)  # the grid draws its bars after the page
        driver.save_screenshot(ARTIFACTS / "2-grid.png")
        driver.get(f"{url}/dags/customer_ai__repurchase_30d/runs/{quote(run_id, safe='')}")
        wait.until(lambda d: "success" in d.find_element(By.TAG_NAME, "body").text.lower())
        driver.save_screenshot(ARTIFACTS / "3-run.png")
    assert sorted(path.name for path in ARTIFACTS.glob("*.png")) == ["1-dags.png", "2-grid.png", "3-run.png"]
