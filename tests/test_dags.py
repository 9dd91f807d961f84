"""DAG integrity: one DAG per instance file, tasks and dependencies as specified, bad files isolated."""

from __future__ import annotations

import ast
import datetime as dt
import json
import os
import runpy
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from airflow.sdk import Param, ParamsDict
from airflow.sdk.definitions.param import ParamValidationError
from airflow.serialization.serialized_objects import DagSerialization
from airflow_support import airflow_env, dagbag

import customer_ai_airflow.dags
from customer_ai.flow import step_names
from customer_ai_airflow.settings import TaskSettings
from customer_ai_airflow.ui import instance_rows

from conftest import ROOT, make_spec

DRAFT_7 = {"$schema": "http://json-schema.org/draft-07/schema#"}
TASKS = step_names()  # the DAG and `customer-ai run` follow the same declared list


@pytest.fixture(scope="module")
def example_bag(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("dagbag")
    return dagbag(airflow_env(tmp, ROOT / "instances"))


def test_every_example_instance_loads_without_import_errors(example_bag: dict) -> None:
    assert example_bag["import_errors"] == {}
    assert sorted(example_bag["dags"]) == ["customer_ai__churn_60d", "customer_ai__repurchase_30d"]


def test_tasks_form_the_specified_chain(example_bag: dict) -> None:
    assert TASKS == [
        "validate_events",
        "build_training_set",
        "train",
        "quality_gate",
        "plan_scoring",
        "score_partition",
        "combine_scores",
        "validate_scores",
        "track_outcomes",
        "write_report",
        "publish",
    ]
    tasks = example_bag["dags"]["customer_ai__repurchase_30d"]["tasks"]
    assert sorted(tasks) == sorted(TASKS)
    for upstream, downstream in zip(TASKS, TASKS[1:], strict=False):
        assert tasks[upstream] == [downstream]
    assert tasks["publish"] == []
    assert example_bag["dags"]["customer_ai__repurchase_30d"]["mapped"] == ["score_partition"]  # over the partitions


def test_dag_settings_come_from_the_instance(example_bag: dict) -> None:
    dag = example_bag["dags"]["customer_ai__churn_60d"]
    assert dag["schedule"] == "@weekly until 2011-12-11"  # the instance's end_date: its data ends in 2011
    assert dag["catchup"] is False
    assert dag["tags"] == ["churn", "customer-ai"]
    assert dag["params"] == {"force_retrain": False, "factors": 5, "min_auc": 0.65, "as_of": "2011-12-11"}
    assert dag["start_date"] == "2010-01-01T00:00:00+00:00"
    assert dag["max_active_runs"] == 1
    assert dag["retries"]["publish"] == 2  # the commit point: a store that is down is retried
    assert dag["retries"]["quality_gate"] == 0
    assert dag["outlets"]["publish"] == ["customer_ai://churn_60d/scores"]
    assert dag["description"] == "customer-ai churn: purchase does not occur within 60 days"
    assert "purchase does not occur within 60 days" in dag["doc_md"]
    assert "instances/churn_60d.yaml" in dag["doc_md"]


def test_start_date_can_be_overridden(tmp_path: Path) -> None:
    bag = dagbag(airflow_env(tmp_path, ROOT / "instances", CUSTOMER_AI_START_DATE="2011-06-05"))
    assert bag["dags"]["customer_ai__repurchase_30d"]["start_date"] == "2011-06-05T00:00:00+00:00"


def test_catchup_and_schedule_come_from_the_file(tmp_path: Path) -> None:
    instances = tmp_path / "instances"
    instances.mkdir()
    spec = yaml.safe_load((ROOT / "instances" / "churn_60d.yaml").read_text())
    spec.update({"catchup": True, "schedule": "0 6 * * 1", "start_date": "2011-01-03"})
    (instances / "churn_60d.yaml").write_text(yaml.safe_dump(spec))
    spec.pop("end_date")
    (instances / "open.yaml").write_text(yaml.safe_dump({**spec, "name": "open"}))
    (instances / "manual.yaml").write_text(yaml.safe_dump({**spec, "name": "manual", "schedule": None}))
    dags = dagbag(airflow_env(tmp_path, instances))["dags"]
    dag = dags["customer_ai__churn_60d"]
    assert dag["catchup"] is True
    assert dag["schedule"] == "0 6 * * 1 until 2011-12-11"
    assert dags["customer_ai__open"]["schedule"] == "0 6 * * 1"  # no end_date: Airflow's own cron schedule
    assert dags["customer_ai__manual"]["schedule"] is None
    assert dag["start_date"] == "2011-01-03T00:00:00+00:00"


def test_the_trigger_forms_as_of_is_the_instances_trigger_as_of_or_none(tmp_path: Path) -> None:
    instances = tmp_path / "instances"
    instances.mkdir()
    spec = yaml.safe_load((ROOT / "instances" / "churn_60d.yaml").read_text())
    (instances / "churn_60d.yaml").write_text(yaml.safe_dump({**spec, "trigger_as_of": "2011-10-02"}))
    spec.pop("trigger_as_of")
    (instances / "other.yaml").write_text(yaml.safe_dump({**spec, "name": "other"}))
    dags = dagbag(airflow_env(tmp_path, instances))["dags"]
    assert dags["customer_ai__churn_60d"]["params"]["as_of"] == "2011-10-02"
    assert "`as_of` is as of that date instead (offered: 2011-10-02)." in dags["customer_ai__churn_60d"]["doc_md"]
    assert dags["customer_ai__other"]["params"]["as_of"] is None  # the run's own date
    assert "`as_of` is as of that date instead." in dags["customer_ai__other"]["doc_md"]


def test_the_trigger_as_of_changes_neither_the_spec_nor_the_model_hash() -> None:
    plain, offered = make_spec(), make_spec(trigger_as_of="2011-12-11")
    assert offered.trigger_as_of == dt.date(2011, 12, 11)
    assert offered.spec_hash() == plain.spec_hash()  # published runs and reused models stay the same
    assert offered.model_hash() == plain.model_hash()


def test_a_broken_instance_shows_its_own_error_and_hides_nothing(tmp_path: Path) -> None:
    instances = tmp_path / "instances"
    instances.mkdir()
    for name in ("repurchase_30d.yaml", "churn_60d.yaml"):
        text = (ROOT / "instances" / name).read_text().replace("../examples", str(ROOT / "examples"))
        (instances / name).write_text(text)
    broken = yaml.safe_load((instances / "churn_60d.yaml").read_text())
    broken["name"] = "broken_goal"
    broken["goal"]["window_days"] = 0
    (instances / "broken_goal.yaml").write_text(yaml.safe_dump(broken))
    (instances / "not_yaml.yml").write_text("name: [unclosed\n")
    duplicate = yaml.safe_load((instances / "churn_60d.yaml").read_text())
    (instances / "zz_duplicate.yaml").write_text(yaml.safe_dump(duplicate))

    bag = dagbag(airflow_env(tmp_path, instances))
    assert bag["import_errors"] == {}
    assert sorted(bag["dags"]) == [
        "customer_ai__broken_goal",
        "customer_ai__churn_60d",
        "customer_ai__not_yaml",
        "customer_ai__repurchase_30d",
        "customer_ai__zz_duplicate",
    ]
    invalid = bag["dags"]["customer_ai__broken_goal"]
    assert invalid["tags"] == ["customer-ai", "invalid"]
    assert invalid["tasks"] == {"instance_file_is_invalid": []}
    assert invalid["description"].startswith("INVALID instance file: ")
    assert "broken_goal.yaml: goal.window_days: Input should be greater than or equal to 1" in invalid["description"]
    assert "goal.window_days" in invalid["doc_md"]
    assert "not valid YAML at line" in bag["dags"]["customer_ai__not_yaml"]["description"]
    assert "'churn_60d' is already used by" in bag["dags"]["customer_ai__zz_duplicate"]["description"]
    assert bag["dags"]["customer_ai__churn_60d"]["tasks"]["publish"] == []


def test_a_file_that_is_not_utf8_is_an_invalid_dag_and_hides_nothing(tmp_path: Path) -> None:
    # before: UnicodeDecodeError from load_spec failed the DAG file's import, and every DAG disappeared
    instances = tmp_path / "instances"
    instances.mkdir()
    for name in ("repurchase_30d.yaml", "churn_60d.yaml"):
        text = (ROOT / "instances" / name).read_text().replace("../examples", str(ROOT / "examples"))
        (instances / name).write_text(text)
    (instances / "latin.yaml").write_bytes(b"name: latin\ndescription: caf\xe9\n")
    (instances / "stray.yml").write_bytes(b"\xff\xfen\x00a\x00m\x00e\x00")  # UTF-16, as some editors save

    bag = dagbag(airflow_env(tmp_path, instances))
    assert bag["import_errors"] == {}
    assert sorted(bag["dags"]) == [
        "customer_ai__churn_60d",
        "customer_ai__latin",
        "customer_ai__repurchase_30d",
        "customer_ai__stray",
    ]
    latin = bag["dags"]["customer_ai__latin"]
    reason = f"{instances / 'latin.yaml'}: line 2, column 17: byte 0xe9 is not UTF-8; save the file as UTF-8"
    assert latin["tags"] == ["customer-ai", "invalid"]
    assert latin["description"] == f"INVALID instance file: {reason}"
    assert bag["dags"]["customer_ai__stray"]["description"].endswith(
        "the file is UTF-16 (it starts with a UTF-16 byte order mark); save it as UTF-8"
    )
    assert bag["dags"]["customer_ai__repurchase_30d"]["tasks"]["publish"] == []

    # the "Customer AI" view reads the folder as the DAG file does: the file is listed as invalid, with the reason
    def no_store() -> None:
        raise OSError("no store in this test")

    rows = {row.name: row for row in instance_rows(instances, tmp_path / "home", no_store)}
    assert (rows["latin"].status, rows["latin"].message) == ("invalid", reason)
    assert rows["stray"].status == "invalid"
    assert rows["repurchase_30d"].status == "error"  # loaded: only its store is missing


def test_parsing_the_dag_file_imports_nothing_heavy(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import runpy, sys
        import airflow.sdk  # the baseline every DAG file pays
        before = set(sys.modules)
        runpy.run_path(sys.argv[1])
        heavy = ("pandas", "lightgbm", "great_expectations", "sklearn", "scipy", "pyarrow", "numpy", "psycopg2")
        print(sorted({m.split(".")[0] for m in set(sys.modules) - before} & set(heavy)))
        """
    )
    env = airflow_env(tmp_path, ROOT / "instances")
    result = subprocess.run(
        [sys.executable, "-c", script, str(ROOT / "dags" / "customer_ai_dags.py")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_an_empty_instances_folder_gives_no_dags(tmp_path: Path) -> None:
    empty = tmp_path / "none"
    empty.mkdir()
    shutil.rmtree(empty / "x", ignore_errors=True)
    bag = dagbag(airflow_env(tmp_path, empty))
    assert bag == {"import_errors": {}, "dags": {}}


_PARSE_ONCE = textwrap.dedent(
    """
    import json, runpy, sys
    import airflow.sdk
    namespace = runpy.run_path(sys.argv[1])
    dags = sorted(k for k in namespace if k.startswith("customer_ai__"))
    print(json.dumps({"dags": dags, "files_read": "customer_ai.spec" in sys.modules}))
    """
)


def settle(folder: Path, mtime_ns: int = 1_600_000_000_000_000_000) -> None:
    """Date every file in ``folder`` in the past (the cache keeps no file changed in the last seconds)."""
    for path in folder.iterdir():
        os.utime(path, ns=(mtime_ns, mtime_ns))


def parse_in_a_fresh_process(env: dict[str, str]) -> dict:
    """Parse the DAG file in a new process; return its DAG ids and whether it read an instance file."""
    result = subprocess.run(
        [sys.executable, "-c", _PARSE_ONCE, str(ROOT / "dags" / "customer_ai_dags.py")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_cached_parse_builds_the_same_dags_without_reading_the_files(tmp_path: Path) -> None:
    instances = tmp_path / "instances"
    instances.mkdir()
    for name in ("repurchase_30d.yaml", "churn_60d.yaml"):
        text = (ROOT / "instances" / name).read_text().replace("../examples", str(ROOT / "examples"))
        (instances / name).write_text(text)
    (instances / "not_yaml.yml").write_text("name: [unclosed\n")
    (instances / "zz_duplicate.yaml").write_text((instances / "churn_60d.yaml").read_text())
    settle(instances)
    cache = tmp_path / "cache"
    env = airflow_env(tmp_path, instances, CUSTOMER_AI_PARSE_CACHE=str(cache))

    fresh = dagbag(airflow_env(tmp_path, instances, CUSTOMER_AI_PARSE_CACHE="off"))
    assert not cache.exists()
    first = dagbag(env)  # reads every file and fills the cache
    entries = json.loads(next(cache.iterdir()).read_text())["files"]
    assert sorted(Path(p).name for p in entries) == sorted(p.name for p in instances.iterdir())
    assert entries[str(instances / "not_yaml.yml")]["value"]["error"].startswith(f"{instances / 'not_yaml.yml'}: ")
    assert parse_in_a_fresh_process(env) == {
        "dags": [
            "customer_ai__churn_60d",
            "customer_ai__not_yaml",
            "customer_ai__repurchase_30d",
            "customer_ai__zz_duplicate",
        ],
        "files_read": False,  # every file came from the cache: the spec module was not even imported
    }
    assert dagbag(env) == first == fresh
    assert "'churn_60d' is already used by" in first["dags"]["customer_ai__zz_duplicate"]["description"]


def test_an_edited_instance_file_is_read_again(tmp_path: Path) -> None:
    instances = tmp_path / "instances"
    spec = yaml.safe_load((ROOT / "instances" / "churn_60d.yaml").read_text())
    spec["events"]["path"] = str(ROOT / "examples" / "online_retail" / "events.parquet")
    instances.mkdir()
    (instances / "churn_60d.yaml").write_text(yaml.safe_dump(spec))
    settle(instances)
    env = airflow_env(tmp_path, instances, CUSTOMER_AI_PARSE_CACHE=str(tmp_path / "cache"))
    assert dagbag(env)["dags"]["customer_ai__churn_60d"]["description"].endswith("within 60 days")

    spec["goal"]["window_days"] = 45
    (instances / "churn_60d.yaml").write_text(yaml.safe_dump(spec))
    settle(instances, 1_600_000_000_000_000_001)
    assert parse_in_a_fresh_process(env) == {"dags": ["customer_ai__churn_60d"], "files_read": True}
    assert dagbag(env)["dags"]["customer_ai__churn_60d"]["description"].endswith("within 45 days")

    spec["goal"]["window_days"] = 0
    (instances / "churn_60d.yaml").write_text(yaml.safe_dump(spec))
    settle(instances, 1_600_000_000_000_000_002)
    assert dagbag(env)["dags"]["customer_ai__churn_60d"]["tags"] == ["customer-ai", "invalid"]


def test_a_task_run_builds_only_its_own_dag(tmp_path: Path, example_bag: dict) -> None:
    # Airflow names the DAG in the parsing context when it parses the file to run one of its tasks
    env = airflow_env(tmp_path, ROOT / "instances", _AIRFLOW_PARSING_CONTEXT_DAG_ID="customer_ai__churn_60d")
    assert dagbag(env) == {
        "import_errors": {},
        "dags": {"customer_ai__churn_60d": example_bag["dags"]["customer_ai__churn_60d"]},
    }


@pytest.fixture
def dag_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Return a fresh namespace of the DAG factory's module (as a parse starts with), in this process."""
    monkeypatch.setenv("CUSTOMER_AI_INSTANCES", str(tmp_path))
    monkeypatch.setenv("CUSTOMER_AI_PARSE_CACHE", "off")
    return runpy.run_path(customer_ai_airflow.dags.__file__)


def build(dag_file: dict, tmp_path: Path, settings: TaskSettings | None = None, **changes: object):  # noqa: ANN201
    summary = dag_file["InstanceSummary"](
        name="shop",
        propensity="conversion",
        description="customer-ai conversion: purchase occurs within 30 days",
        doc_md="### shop",
        schedule="@weekly",
        start_date="2011-01-02",
        catchup=False,
        factors=5,
        min_auc=0.65,
        trigger_as_of="2011-12-11",
    )
    return dag_file["build_dag"](summary._replace(**changes), tmp_path / "shop.yaml", settings)


def test_the_heavy_steps_take_the_configured_pool_and_every_task_its_time_limit_and_priority(
    dag_file: dict, tmp_path: Path
) -> None:
    settings = TaskSettings(
        execution_timeout=dt.timedelta(minutes=45), heavy_pool="customer_ai_heavy", priority_weight=3
    )
    dag = build(dag_file, tmp_path, settings)
    pools = {task.task_id: task.pool for task in dag.tasks}
    heavy = ["validate_events", "build_training_set", "train", "plan_scoring", "score_partition"]
    assert [name for name in TASKS if pools[name] == "customer_ai_heavy"] == heavy
    assert {pools[name] for name in TASKS if name not in heavy} == {"default_pool"}
    assert {task.execution_timeout for task in dag.tasks} == {dt.timedelta(minutes=45)}
    assert {task.priority_weight for task in dag.tasks} == {3}
    assert {tuple(task.template_fields) for task in dag.tasks} == {("instance_path",)}
    assert {task.pool for task in build(dag_file, tmp_path).tasks} == {"default_pool"}  # by default: no pool to create


def test_a_bad_setting_in_the_environment_is_the_dag_files_import_error(tmp_path: Path) -> None:
    env = airflow_env(tmp_path, ROOT / "instances", CUSTOMER_AI_EXECUTION_TIMEOUT_MINUTES="soon")
    bag = dagbag(env)
    assert bag["dags"] == {}
    (error,) = bag["import_errors"].values()
    assert "ValueError: CUSTOMER_AI_EXECUTION_TIMEOUT_MINUTES='soon': not a number" in error


def test_the_trigger_form_is_plain_airflow_params_and_every_task_gets_its_own(dag_file: dict, tmp_path: Path) -> None:
    dag = build(dag_file, tmp_path)
    assert type(dag.params) is ParamsDict
    own = {key: dag.params.get_param(key) for key in dag.params}
    assert [type(param) for param in own.values()] == [Param] * 4
    assert {key: (param.value, param.description, param.schema) for key, param in own.items()} == {
        "force_retrain": (False, "Train a new model even if one is recent.", {**DRAFT_7, "type": "boolean"}),
        "factors": (5, "Factors per profile.", {**DRAFT_7, "type": "integer", "minimum": 0, "maximum": 50}),
        "min_auc": (0.65, "Quality gate (ROC AUC).", {**DRAFT_7, "type": "number", "minimum": 0, "maximum": 1}),
        "as_of": (
            "2011-12-11",
            "Score as of this date (YYYY-MM-DD): the run sees only events before it. Empty: the run's data interval "
            "end. Manual runs only; scheduled runs and backfills use their own date.",
            {**DRAFT_7, "type": ["null", "string"], "pattern": r"^(\d{4}-\d{2}-\d{2})?$", "title": "As of"},
        ),
    }
    train, gate = dag.get_task("train"), dag.get_task("quality_gate")
    train.params["factors"] = 7  # as a run's conf sets it: into the task's own Param
    assert (train.params["factors"], gate.params["factors"], dag.params["factors"]) == (7, 5, 5)
    with pytest.raises(ParamValidationError):
        gate.params["factors"] = 51
    assert gate.params["factors"] == 5
    assert DagSerialization.from_dict(DagSerialization.to_dict(dag)).params.dump() == {
        "force_retrain": False,
        "factors": 5,
        "min_auc": 0.65,
        "as_of": "2011-12-11",
    }


def test_invalid_defaults_are_refused_by_airflow(dag_file: dict, tmp_path: Path) -> None:
    refused = "Dag 'customer_ai__shop' is not allowed to define a Schedule"
    with pytest.raises(ValueError, match=refused):
        build(dag_file, tmp_path, factors=60)
    unscheduled = build(dag_file, tmp_path, factors=60, schedule=None)  # Airflow checks no default of these
    assert unscheduled.params.get_param("factors").value == 60
    assert build(dag_file, tmp_path, factors=50).params["factors"] == 50


# what the integration may import from Airflow: the SDK, the providers, and what Airflow documents for plugins (its
# "Public Interface for Airflow 3.0+" names timetables and listeners among the ways to extend it)
PUBLIC_AIRFLOW = (
    "airflow.sdk",
    "airflow.providers.",
    "airflow.plugins_manager",
    "airflow.api_fastapi.core_api.security",
    "airflow.timetables",
    "airflow.listeners",
)


PUBLIC_UNDERSCORED = {"_asdict", "_replace", "_fields", "_make"}  # a named tuple's public methods


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.endswith("__") and name not in PUBLIC_UNDERSCORED


def test_the_integration_uses_only_airflows_public_interface() -> None:
    offences = []
    for path in sorted((ROOT / "customer_ai_airflow").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "airflow":
                modules = [node.module]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names if alias.name.split(".")[0] == "airflow"]
            else:
                modules = []
            for module in modules:
                private = any(part.startswith("_") for part in module.split("."))
                if private or not module.startswith(PUBLIC_AIRFLOW):
                    offences.append(f"{path.name}:{node.lineno}: imports {module}")
            if isinstance(node, ast.ImportFrom) and modules:
                offences += [
                    f"{path.name}:{node.lineno}: imports {alias.name}" for alias in node.names if alias.name[0] == "_"
                ]
            if isinstance(node, ast.Attribute) and _is_private(node.attr):
                if not (isinstance(node.value, ast.Name) and node.value.id in {"self", "cls"}):
                    offences.append(f"{path.name}:{node.lineno}: reads .{node.attr}")
            if isinstance(node, ast.Attribute) and node.attr == "__setattr__":
                offences.append(f"{path.name}:{node.lineno}: calls __setattr__")
    assert offences == []


_PARSE_WITH_A_BUG = textwrap.dedent(
    """
    import json, runpy, sys
    import customer_ai.spec
    if sys.argv[2] == "bug":  # reading this one file raises what no instance file should make it raise
        real = customer_ai.spec.load_spec
        def load_spec(path):
            if str(path).endswith("churn_60d.yaml"):
                raise RuntimeError("a bug in reading")
            return real(path)
        customer_ai.spec.load_spec = load_spec
    dags = {k: v for k, v in runpy.run_path(sys.argv[1]).items() if k.startswith("customer_ai__")}
    print(json.dumps({k: [d.description, sorted(d.tags)] for k, d in dags.items()}))
    """
)


def test_an_unexpected_error_reading_one_file_hides_no_other_dag_and_is_not_cached(tmp_path: Path) -> None:
    # before: only a SpecError became an invalid DAG; any other exception failed the DAG file's import, every DAG gone
    env = airflow_env(tmp_path, ROOT / "instances")
    env["CUSTOMER_AI_PARSE_CACHE"] = str(tmp_path / "cache")

    def parse(mode: str) -> dict:
        command = [sys.executable, "-c", _PARSE_WITH_A_BUG, str(ROOT / "dags" / "customer_ai_dags.py"), mode]
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout.strip().splitlines()[-1])

    broken = parse("bug")
    assert sorted(broken) == ["customer_ai__churn_60d", "customer_ai__repurchase_30d"]
    description, tags = broken["customer_ai__churn_60d"]
    assert tags == ["customer-ai", "invalid"]
    assert (
        description
        == (
            f"INVALID instance file: {ROOT / 'instances' / 'churn_60d.yaml'}: could not be read: RuntimeError: a bug "
            "in reading (an unexpected error: please report it)"
        )[:200]
    )
    assert "invalid" not in broken["customer_ai__repurchase_30d"][1]
    fixed = parse("fine")  # the error was not kept in the parse cache: the file is read again
    assert "invalid" not in fixed["customer_ai__churn_60d"][1]
