"""Benchmark: how long Airflow takes to parse the DAG file with N instance files (default 50).

Usage: ``.venv/bin/python bench/dag_parse.py [--instances 50] [--repeats 7]``.  Each repeat is a fresh Python
process (no warm module cache): it imports Airflow's SDK, then times the DAG file alone (``runpy``), and
separately times a whole ``DagBag`` load of the DAG folder as the DAG processor does it.  Prints the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

_SCRIPT = """
import json, runpy, sys, time
import airflow.sdk
started = time.perf_counter()
namespace = runpy.run_path(sys.argv[1])
file_seconds = time.perf_counter() - started
dags = [k for k in namespace if k.startswith("customer_ai__")]
from airflow.dag_processing.dagbag import DagBag
started = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
bag_seconds = time.perf_counter() - started
print("JSON:" + json.dumps({"file": file_seconds, "dagbag": bag_seconds, "dags": len(dags),
                            "bag_dags": len(bag.dags), "errors": len(bag.import_errors)}))
"""


def make_instances(folder: Path, count: int) -> None:
    """Write ``count`` valid instance files, variations of the repurchase example."""
    template = yaml.safe_load((ROOT / "instances" / "repurchase_30d.yaml").read_text())
    template["events"]["path"] = str(ROOT / "examples" / "online_retail" / "events.parquet")
    template["profiles"]["path"] = str(ROOT / "examples" / "online_retail" / "profiles.parquet")
    for i in range(count):
        spec = {**template, "name": f"bench_{i:03d}", "goal": {**template["goal"], "window_days": 7 + i}}
        (folder / f"bench_{i:03d}.yaml").write_text(yaml.safe_dump(spec))


def main() -> int:
    """Run the benchmark and print its medians as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instances", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "instances"
        folder.mkdir()
        make_instances(folder, args.instances)
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(Path(tmp) / "airflow"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "CUSTOMER_AI_INSTANCES": str(folder),
            "PYTHONPATH": str(ROOT / "plugins"),
        }
        runs = []
        for _ in range(args.repeats):
            out = subprocess.run(
                [sys.executable, "-c", _SCRIPT, str(ROOT / "dags" / "customer_ai_dags.py")],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            runs.append(json.loads(next(x for x in out.splitlines() if x.startswith("JSON:"))[5:]))
    result = {
        "instances": args.instances,
        "repeats": args.repeats,
        "dags": runs[0]["dags"],
        "import_errors": runs[0]["errors"],
        "dag_file_seconds_median": round(statistics.median(r["file"] for r in runs), 3),
        "dag_file_seconds_all": [round(r["file"], 3) for r in runs],
        "dagbag_seconds_median": round(statistics.median(r["dagbag"] for r in runs), 3),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
