"""Benchmark: how long Airflow takes to parse the DAG file with N instance files (default 50).

Usage: ``.venv/bin/python bench/dag_parse.py [--instances 50] [--repeats 7] [--tree PATH]``.

Each repeat starts fresh Python processes (no warm module cache) that import Airflow's SDK first (the baseline
every DAG file pays) and then time:

- ``dag_file``: the DAG file alone (``runpy``) as Airflow parses it again and again, its parse cache filled by
  an earlier parse (the files are dated a minute back: the cache keeps no file changed in the last seconds);
- ``dag_file_cold``: the same with the cache off (``CUSTOMER_AI_PARSE_CACHE=off``): every file read and checked,
  as on the first parse after a change;
- ``dagbag``: a whole ``DagBag`` load of the DAG folder as the DAG processor does it, after the first two
  (its modules already imported);
- ``airflow_floor``: Airflow alone building N DAGs of 10 chained ``EmptyOperator`` tasks, the same number of
  DAGs and tasks without anything of this project.

The processes of one repeat run one after the other, so the ratios compare like with like on a noisy machine;
the CPU time of each measurement is reported beside its wall time.
``--tree`` measures another checkout of the project (its DAG file, plugins and package, e.g. an older commit
unpacked with ``git archive``) with this script; ``--before PATH`` adds, to every repeat, a cached and a cold parse
by that other checkout (``before``, with a parse cache of its own), for before/after ratios measured side by side.
Prints the medians (and every run) as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SETTLED_SECONDS = 60  # how far back the instance files are dated

_SCRIPT = """
import json, runpy, sys, time
import airflow.sdk
started, cpu = time.perf_counter(), time.process_time()
namespace = runpy.run_path(sys.argv[1])
file_seconds, file_cpu = time.perf_counter() - started, time.process_time() - cpu
read_files = "customer_ai.spec" in sys.modules  # imported only when an instance file is not in the cache
dags = [k for k in namespace if k.startswith("customer_ai__")]
from airflow.dag_processing.dagbag import DagBag
started = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
bag_seconds = time.perf_counter() - started
print("JSON:" + json.dumps({"file": file_seconds, "file_cpu": file_cpu, "read_files": read_files,
                            "dagbag": bag_seconds, "dags": len(dags),
                            "bag_dags": len(bag.dags), "errors": len(bag.import_errors)}))
"""

_FLOOR_SCRIPT = """
import json, sys, time
import airflow.sdk
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, chain
started, cpu = time.perf_counter(), time.process_time()
dags = {}
for i in range(int(sys.argv[1])):
    with DAG(dag_id=f"floor_{i:03d}", schedule="@weekly") as dag:
        chain(*[EmptyOperator(task_id=f"task_{j}") for j in range(10)])
    dags[dag.dag_id] = dag
print("JSON:" + json.dumps({"floor": time.perf_counter() - started, "floor_cpu": time.process_time() - cpu,
                            "dags": len(dags)}))
"""


def make_instances(folder: Path, count: int) -> None:
    """Write ``count`` valid instance files, variations of the repurchase example, dated a minute back."""
    template = yaml.safe_load((ROOT / "instances" / "repurchase_30d.yaml").read_text())
    template["events"]["path"] = str(ROOT / "examples" / "online_retail" / "events.parquet")
    template["profiles"]["path"] = str(ROOT / "examples" / "online_retail" / "profiles.parquet")
    settled = time.time() - SETTLED_SECONDS
    for i in range(count):
        spec = {**template, "name": f"bench_{i:03d}", "goal": {**template["goal"], "window_days": 7 + i}}
        path = folder / f"bench_{i:03d}.yaml"
        path.write_text(yaml.safe_dump(spec))
        os.utime(path, (settled, settled))


def _run(script: str, argument: str, env: dict[str, str]) -> dict:
    # run from the instances' folder: `python -c` puts the working folder first on the path, and a checkout there
    # would shadow the one on PYTHONPATH
    out = subprocess.run(
        [sys.executable, "-c", script, argument],
        env=env,
        cwd=env["CUSTOMER_AI_INSTANCES"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(next(x for x in out.splitlines() if x.startswith("JSON:"))[5:])


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def main() -> int:
    """Run the benchmark and print its medians as JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--tree", type=Path, default=ROOT, help="the checkout to measure (default: this one)")
    parser.add_argument("--before", type=Path, help="another checkout to parse in every repeat, for comparison")
    args = parser.parse_args()
    tree = args.tree.resolve()
    dag_file = str(tree / "dags" / "customer_ai_dags.py")
    before = args.before.resolve() if args.before else None
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "instances"
        folder.mkdir()
        make_instances(folder, args.instances)
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(Path(tmp) / "airflow"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "CUSTOMER_AI_INSTANCES": str(folder),
            "CUSTOMER_AI_PARSE_CACHE": str(Path(tmp) / "parse_cache"),
            "PYTHONPATH": os.pathsep.join([str(tree), str(tree / "plugins")]),
        }
        off = {"CUSTOMER_AI_PARSE_CACHE": "off"}
        cold_env = {**env, **off}
        _run(_SCRIPT, dag_file, env)  # fills the parse cache
        before_env = {}
        if before:  # a parse cache of its own: the cache is stamped with the DAG file, so a shared one would thrash
            before_env = {
                **env,
                "CUSTOMER_AI_PARSE_CACHE": str(Path(tmp) / "parse_cache_before"),
                "PYTHONPATH": os.pathsep.join([str(before), str(before / "plugins")]),
            }
            _run(_SCRIPT, str(before / "dags" / "customer_ai_dags.py"), before_env)
        warm, cold, floor, earlier, earlier_cold = [], [], [], [], []
        for _ in range(args.repeats):
            if before:
                earlier.append(_run(_SCRIPT, str(before / "dags" / "customer_ai_dags.py"), before_env))
                earlier_cold.append(_run(_SCRIPT, str(before / "dags" / "customer_ai_dags.py"), {**before_env, **off}))
            cold.append(_run(_SCRIPT, dag_file, cold_env))
            warm.append(_run(_SCRIPT, dag_file, env))
            floor.append(_run(_FLOOR_SCRIPT, str(args.instances), env))
    result = {
        "instances": args.instances,
        "repeats": args.repeats,
        "tree": str(tree),
        "dags": warm[0]["dags"],
        "import_errors": warm[0]["errors"],
        "cached_parses": sum(not r.get("read_files", False) for r in warm),  # of the warm runs; code edits void it
        "dag_file_seconds_median": _median([r["file"] for r in warm]),
        "dag_file_seconds_all": [round(r["file"], 3) for r in warm],
        "dag_file_cold_seconds_median": _median([r["file"] for r in cold]),
        "dag_file_cold_seconds_all": [round(r["file"], 3) for r in cold],
        "dagbag_seconds_median": _median([r["dagbag"] for r in warm]),
        "dagbag_cold_seconds_median": _median([r["dagbag"] for r in cold]),
        "airflow_floor_seconds_median": _median([r["floor"] for r in floor]),
        "airflow_floor_seconds_all": [round(r["floor"], 3) for r in floor],
        "dag_file_over_floor_median": _median([w["file"] / f["floor"] for w, f in zip(warm, floor, strict=True)]),
        # CPU time of the same measurements: less disturbed than wall time by other work on the machine
        "dag_file_cpu_seconds_median": _median([r["file_cpu"] for r in warm]),
        "dag_file_cold_cpu_seconds_median": _median([r["file_cpu"] for r in cold]),
        "airflow_floor_cpu_seconds_median": _median([r["floor_cpu"] for r in floor]),
    }
    if before:
        result |= {
            "before": str(before),
            "before_cached_parses": sum(not r.get("read_files", False) for r in earlier),
            "before_dag_file_seconds_median": _median([r["file"] for r in earlier]),
            "before_dag_file_seconds_all": [round(r["file"], 3) for r in earlier],
            "before_dag_file_cpu_seconds_median": _median([r["file_cpu"] for r in earlier]),
            "before_dag_file_cold_seconds_median": _median([r["file"] for r in earlier_cold]),
            "before_dag_file_cold_seconds_all": [round(r["file"], 3) for r in earlier_cold],
            "before_dag_file_cold_cpu_seconds_median": _median([r["file_cpu"] for r in earlier_cold]),
            "before_over_cached_median": _median([b["file"] / w["file"] for b, w in zip(earlier, warm, strict=True)]),
            "before_over_cold_median": _median(
                [b["file"] / c["file"] for b, c in zip(earlier_cold, cold, strict=True)]
            ),
        }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
