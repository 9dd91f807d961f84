"""How customer-ai is packaged: the library stands without its extras, the suites are package data."""

from __future__ import annotations

import email
import email.message
import json
import os
import re
import secrets
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from airflow_support import Airflow, airflow_env, free_ports, healthy, served_settings
from s3_support import new_bucket

ROOT = Path(__file__).resolve().parents[1]
PG_DSN = os.environ.get("CUSTOMER_AI_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def _python(code: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", textwrap.dedent(code)]
    return subprocess.run(command, check=False, capture_output=True, text=True, timeout=300, cwd="/")


def test_the_library_imports_neither_airflow_nor_a_database_driver() -> None:
    # the command and every module of the package work where only `pip install customer-ai` was run
    done = _python(
        """
        import importlib, pkgutil, sys
        import customer_ai
        for module in pkgutil.walk_packages(customer_ai.__path__, "customer_ai."):
            if module.name != "customer_ai.store.postgres":  # the PostgreSQL store: it is the driver's user
                importlib.import_module(module.name)
        optional = {"airflow", "celery", "redis", "psycopg2", "shap"}
        loaded = sorted({name.split(".")[0] for name in sys.modules} & optional)
        print(",".join(loaded) or "none")
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "none"


_WITHOUT_DRIVER = """
    import sys
    from pathlib import Path
    sys.modules["psycopg2"] = None  # as if the postgres extra were not installed
    {call}
"""


@pytest.mark.parametrize(
    ("call", "said"),
    [
        (
            "from customer_ai.store import open_store; open_store('postgresql://me:secret@db/scores', Path('.'))",
            "customer_ai.store.base.StoreAddressError: store postgresql://me:***@db/scores: a PostgreSQL store needs "
            'the psycopg2 driver, which is not installed: pip install "customer-ai[postgres]"',
        ),
        (
            "from customer_ai.events import load_event_table; load_event_table('postgresql://db/x', 'events')",
            "customer_ai.events.EventsError: postgresql table events: reading events from PostgreSQL needs the "
            'psycopg2 driver: pip install "customer-ai[postgres]"',
        ),
    ],
    ids=["a store", "an event table"],
)
def test_postgresql_without_its_driver_says_which_extra_to_install(call: str, said: str) -> None:
    done = _python(_WITHOUT_DRIVER.format(call=call))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == said


def test_the_built_in_suites_are_package_data() -> None:
    import importlib.resources

    from customer_ai.validation import expectations_dir

    suites = importlib.resources.files("customer_ai") / "expectations"
    assert sorted(p.name for p in suites.iterdir() if p.name.endswith(".json")) == [
        "events.json",
        "scores.json",
        "training_set.json",
    ]
    assert expectations_dir() == Path(str(suites))
    assert (ROOT / "expectations").resolve() == Path(str(suites))  # the project's folder is a link to them


# --- the built wheel ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")  # built once per worker, whatever runs between its tests
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the project's wheel as a user would (``pip wheel .``, isolated build); return its path."""
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", str(ROOT), "--wheel-dir", str(out)]
    built = subprocess.run(command, check=False, capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    (path,) = out.glob("customer_ai-*.whl")
    return path


def _metadata(wheel: Path) -> tuple[list[str], email.message.Message, str]:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        return names, email.message_from_bytes(archive.read(info)), archive.read(points).decode()


def test_the_wheel_holds_the_library_the_suites_and_the_airflow_integration(wheel: Path) -> None:
    names, _, _ = _metadata(wheel)
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"customer_ai", "customer_ai_airflow"}  # no tests, DAG file, examples or benchmarks
    assert {f"customer_ai/expectations/{s}.json" for s in ("events", "scores", "training_set")} <= set(names)
    assert {f"customer_ai_airflow/{m}.py" for m in ("dags", "operators", "plugin", "provider", "ui")} <= set(names)


def test_the_wheel_needs_airflow_only_for_its_airflow_extra(wheel: Path) -> None:
    _, metadata, _ = _metadata(wheel)
    requires = metadata.get_all("Requires-Dist")
    base = [r for r in requires if "extra ==" not in r]
    names = {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower() for r in base}
    assert names == {
        "great-expectations",
        "lightgbm",
        "matplotlib",
        "pandas",
        "pyarrow",
        "numpy",
        "scipy",
        "scikit-learn",
        "pydantic",
        "pyyaml",
    }
    assert set(metadata.get_all("Provides-Extra")) == {"airflow", "postgres", "s3", "gcs", "dev"}
    for extra, system in (("s3", "s3fs>=2024.6"), ("gcs", "gcsfs>=2024.6")):  # a bucket home's file system
        assert sorted(r.split(";")[0].strip() for r in requires if f'extra == "{extra}"' in r) == [
            system,
            "universal-pathlib>=0.2.6",
        ]
    airflow = [r.split(";")[0].strip() for r in requires if 'extra == "airflow"' in r]
    assert sorted(airflow) == [
        "apache-airflow-providers-postgres<8,>=7.1",
        "apache-airflow<4,>=3.2",
        "psycopg2-binary<3,>=2.9",
    ]
    runtime = [r.lower() for r in requires if 'extra == "dev"' not in r]  # what a deployment installs
    assert not [
        r for r in runtime if r.startswith(("shap", "celery", "redis", "asyncpg", "apache-airflow-providers-c"))
    ]


def test_airflow_finds_the_plugin_and_the_provider_by_entry_points(wheel: Path) -> None:
    _, _, points = _metadata(wheel)
    assert "[airflow.plugins]\ncustomer_ai = customer_ai_airflow.plugin:CustomerAIPlugin" in points
    assert "[apache_airflow_provider]\nprovider_info = customer_ai_airflow.provider:get_provider_info" in points


@pytest.fixture(scope="session")  # built once per worker, whatever runs between its tests
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv outside the source tree with nothing but the wheel (``pip install customer-ai``)."""
    return _fresh_virtualenv(tmp_path_factory.mktemp("installed"), str(wheel))


def _fresh_virtualenv(folder: Path, requirement: str) -> Path:
    """Make a virtualenv in ``folder`` and install ``requirement`` into it, its dependencies from the index."""
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    install = [str(venv / "bin" / "pip"), "install", "--quiet", requirement]
    done = subprocess.run(install, check=False, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    return venv


def test_the_wheel_alone_runs_the_example_instance_from_the_command_line(installed: Path, tmp_path: Path) -> None:
    # outside the source tree: the suites come from the package, nothing from the checkout is importable
    text = (ROOT / "instances" / "repurchase_30d.yaml").read_text()
    (tmp_path / "repurchase_30d.yaml").write_text(text.replace("../examples", str(ROOT / "examples")))
    env = {"PATH": f"{installed / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "GX_ANALYTICS_ENABLED": "False"}
    where = subprocess.run(
        [
            str(installed / "bin" / "python"),
            "-c",
            "import customer_ai, importlib.util as u; "
            "print(customer_ai.__file__, u.find_spec('airflow'), u.find_spec('psycopg2'))",
        ],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert where.stdout.split() == [
        str(
            installed
            / "lib"
            / f"python{sys.version_info.major}.{sys.version_info.minor}"
            / "site-packages"
            / "customer_ai"
            / "__init__.py"
        ),
        "None",
        "None",
    ]
    command = [
        str(installed / "bin" / "customer-ai"),
        "-q",
        "run",
        "repurchase_30d.yaml",
        "--as-of",
        "2011-12-11",
        "--home",
        str(tmp_path / "home"),
    ]
    done = subprocess.run(command, check=False, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    shown = subprocess.run(
        [str(installed / "bin" / "customer-ai"), "show", "repurchase_30d.yaml", "--home", str(tmp_path / "home")],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert shown.returncode == 0, shown.stderr
    assert "latest run as of 2011-12-11" in shown.stdout
    assert ": ok: validation ROC AUC" in shown.stdout


def test_airflow_lists_the_plugin_and_the_provider_with_an_empty_plugins_folder(tmp_path: Path) -> None:
    assert [p.name for p in (ROOT / "plugins").iterdir()] == ["README.md"]  # no Python file: nothing to import
    env = airflow_env(tmp_path, ROOT / "instances")
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == str(ROOT / "plugins")
    airflow = str(Path(sys.executable).parent / "airflow")

    def listed(*command: str) -> list[dict]:
        done = subprocess.run([airflow, *command, "-o", "json"], env=env, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout)

    (plugin,) = listed("plugins")
    assert plugin["name"] == "customer_ai"
    assert plugin["source"].startswith("customer-ai==0.1.0: EntryPoint(name='customer_ai', ")
    assert [view["name"] for view in plugin["external_views"]] == ["Customer AI"]
    providers = [p for p in listed("providers", "list") if p["package_name"] == "customer-ai"]
    assert providers == [
        {
            "package_name": "customer-ai",
            "description": "Calibrated propensity scores with per-profile reasons from an event log: one DAG per "
            "instance file, its operators and the Customer AI view",
            "version": "0.1.0",
        }
    ]


@pytest.fixture(scope="session")  # built once per worker, whatever runs between its tests
def installed_with_airflow(installed: Path, wheel: Path) -> Path:
    """The bare wheel's virtualenv, then ``pip install "customer-ai[airflow,postgres,s3]"`` in it: the extras added.

    As a user adds an extra to what they installed: pip keeps the wheel and its dependencies and installs what the
    extras need (a virtualenv of its own cost CI 40 s more, installing the same dependencies again).  The bare
    wheel's test runs first (this module's order) and checks that Airflow is not there: after this fixture it would
    fail, never pass by mistake.  The command's own test with a bucket home and a PostgreSQL store uses it too (a
    virtualenv of ``[postgres,s3]`` alone cost a minute of CI for what the library's import test and the bare
    wheel's already show).
    """
    install = [str(installed / "bin" / "pip"), "install", "--quiet", f"{wheel}[airflow,postgres,s3]"]
    done = subprocess.run(install, check=False, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    return installed


def _airflow_home(tmp_path: Path, bin_dir: Path, home: str) -> tuple[dict[str, str], Path]:
    """Make an Airflow home whose DAGs folder holds only the README's two-line DAG file and whose plugins folder is
    empty, with the example instance; return its environment (the customer-ai home: ``home``) and the instances."""
    dags, plugins, instances = tmp_path / "dags", tmp_path / "plugins", tmp_path / "instances"
    for folder in (dags, plugins, instances):
        folder.mkdir()
    (dags / "customer_ai_dags.py").write_text((ROOT / "dags" / "customer_ai_dags.py").read_text())
    text = (ROOT / "instances" / "repurchase_30d.yaml").read_text()
    (instances / "repurchase_30d.yaml").write_text(text.replace("../examples", str(ROOT / "examples")))
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "CUSTOMER_AI_INSTANCES": str(instances),
        "CUSTOMER_AI_HOME": home,
        "GX_ANALYTICS_ENABLED": "False",
    }
    return env, instances


def _succeeds(env: dict[str, str], cwd: Path, *command: str, timeout: float = 1500) -> str:
    """Run ``command``; fail the test with its output unless it exits 0; return what it printed."""
    done = subprocess.run(list(command), check=False, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)
    assert done.returncode == 0, f"{command}: {done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_the_wheel_with_its_airflow_extra_runs_the_example_dag_from_the_documented_dag_file(
    installed_with_airflow: Path, tmp_path: Path
) -> None:
    bin_dir = installed_with_airflow / "bin"
    env, instances = _airflow_home(tmp_path, bin_dir, str(tmp_path / "home"))
    api_port, log_port = free_ports(2)
    password = secrets.token_urlsafe(16)
    env.update(served_settings(tmp_path, api_port, log_port, password))  # the view's API server, simple auth

    def run(*command: str, timeout: float = 900) -> str:
        return _succeeds(env, tmp_path, *command, timeout=timeout)

    run(str(bin_dir / "airflow"), "db", "migrate")
    (plugin,) = json.loads(run(str(bin_dir / "airflow"), "plugins", "-o", "json"))
    assert plugin["name"] == "customer_ai"
    assert [view["name"] for view in plugin["external_views"]] == ["Customer AI"]
    run(str(bin_dir / "airflow"), "dags", "test", "customer_ai__repurchase_30d", "2011-12-11", timeout=1500)
    shown = run(str(bin_dir / "customer-ai"), "show", str(instances / "repurchase_30d.yaml"))
    assert "latest run as of 2011-12-11" in shown

    # the view, served by the wheel's API server: it lists the instance and the run the DAG test published
    logs = tmp_path / "services"
    logs.mkdir()
    airflow = Airflow(env, f"http://127.0.0.1:{api_port}", logs, password, executable=bin_dir / "airflow")
    try:
        airflow.start("api-server", "--host", "127.0.0.1", "--port", str(api_port), "--workers", "1")
        airflow.wait_for("a healthy API server", lambda: healthy(airflow), 300)
        assert airflow.client.get("/customer-ai/").status_code == 401  # no login, no view
        airflow.login()
        page = airflow.client.get("/customer-ai/")
    finally:
        airflow.stop()
    assert page.status_code == 200, page.text[-2000:]
    row = re.search(r'<tr data-instance="repurchase_30d">.*?</tr>', page.text, re.DOTALL)
    assert row is not None, page.text[-2000:]
    assert '<span class="status status-ok">ok</span>' in row.group()
    assert "2011-12-11" in row.group()


@pytest.fixture
def pg_schema() -> Iterator[str]:
    import psycopg2  # noqa: PLC0415 - the test environment's driver, to drop the schema

    schema = f"test_wheel_{secrets.token_hex(4)}"
    yield schema
    with psycopg2.connect(PG_DSN) as connection, connection.cursor() as cursor:
        cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_the_wheel_runs_the_example_with_its_home_in_a_bucket_and_reads_it_back(
    installed_with_airflow: Path, s3_env: dict[str, str], pg_schema: str, tmp_path: Path
) -> None:
    text = (ROOT / "instances" / "repurchase_30d.yaml").read_text()
    (tmp_path / "repurchase_30d.yaml").write_text(text.replace("../examples", str(ROOT / "examples")))
    env = {
        **s3_env,
        "PATH": f"{installed_with_airflow / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "GX_ANALYTICS_ENABLED": "False",
        "CUSTOMER_AI_HOME": f"s3://{new_bucket(s3_env)}/customer-ai",
        "CUSTOMER_AI_STORE": PG_DSN,
        "CUSTOMER_AI_STORE_SCHEMA": pg_schema,
    }

    def cli(*args: str) -> str:
        command = [str(installed_with_airflow / "bin" / "customer-ai"), *args]
        done = subprocess.run(command, check=False, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=1200)
        assert done.returncode == 0, f"{args}: {done.stderr[-3000:]}"
        return done.stdout

    cli("-q", "run", "repurchase_30d.yaml", "--as-of", "2011-12-11", "--top", "0")
    shown = cli("show", "repurchase_30d.yaml", "--top", "0")
    assert "latest run as of 2011-12-11" in shown
    assert f"artifacts: {env['CUSTOMER_AI_HOME']}/artifacts/repurchase_30d/2011-12-11/cli-" in shown
    cli("report", "repurchase_30d.yaml", "--out", str(tmp_path / "report.html"))
    assert (tmp_path / "report.html").read_text().startswith("<!DOCTYPE html>")
    said = cli("segment", "export", "repurchase_30d.yaml", "likely_buyers", "--out", str(tmp_path / "likely.csv"))
    assert said.startswith("repurchase_30d segment likely_buyers as of 2011-12-11: ")
    assert len((tmp_path / "likely.csv").read_text().splitlines()) > 100


def test_the_wheel_with_its_airflow_extra_runs_the_dag_with_its_home_in_a_bucket(
    installed_with_airflow: Path, s3_env: dict[str, str], pg_schema: str, tmp_path: Path
) -> None:
    bin_dir = installed_with_airflow / "bin"
    home = f"s3://{new_bucket(s3_env)}/customer-ai"
    env, instances = _airflow_home(tmp_path, bin_dir, home)
    connection = {"conn_type": "postgres", "host": "127.0.0.1", "port": 5432, "login": "postgres", "schema": "test"}
    env |= {
        **s3_env,
        "AIRFLOW_CONN_CUSTOMER_AI_STORE": json.dumps({**connection, "extra": {"schema": pg_schema}}),
        "CUSTOMER_AI_STORE_SCHEMA": pg_schema,  # for the command, which reads the store by its address
    }

    def run(*command: str) -> str:
        return _succeeds(env, tmp_path, *command)

    run(str(bin_dir / "airflow"), "db", "migrate")
    run(str(bin_dir / "airflow"), "dags", "test", "customer_ai__repurchase_30d", "2011-12-11")
    shown = run(
        str(bin_dir / "customer-ai"),
        "show",
        str(instances / "repurchase_30d.yaml"),
        "--store",
        "postgresql://postgres@127.0.0.1:5432/test",
        "--top",
        "0",
    )
    assert "latest run as of 2011-12-11" in shown
    assert f"artifacts: {home}/artifacts/repurchase_30d/2011-12-11/af-" in shown
