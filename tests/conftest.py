"""Shared test helpers: tiny inline event logs and instance specs."""

from __future__ import annotations

import copy
import importlib.util
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from customer_ai.events import canonicalize
from customer_ai.spec import InstanceSpec, parse_spec

# anything that imports Airflow in the test process gets a throwaway home instead of creating ~/airflow
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="customer-ai-tests-airflow-"))

ROOT = Path(__file__).resolve().parents[1]
RETAIL_EVENTS = ROOT / "examples" / "online_retail" / "events.parquet"

BASE_SPEC: dict = {
    "name": "unit",
    "events": {"path": "events.parquet"},
    "goal": {
        "occurrence": "will_occur",
        "match": "any",
        "events": [{"where": [{"field": "event_type", "op": "eq", "value": "purchase"}]}],
        "window_days": 30,
    },
    "eligibility": {"lookback_days": 365},
    "training": {"snapshots": 2, "snapshot_every_days": 30, "min_positives": 1, "min_negatives": 1},
}


# what a finished run leaves in its sealed folder <home>/artifacts/<instance>/<as_of>/<run_id>/
RUN_FILES = [
    "buckets.json",
    "drift.json",
    "evaluation.json",
    "events",
    "instance.json",
    "metadata.json",
    "model.json",
    "outcomes.parquet",
    "plan.json",
    "report.html",
    "scores.parquet",
    "scoring",
    "segments.parquet",
    "source.json",
    "training_events.parquet",
    "training_set.parquet",
    "validation",
]
# a run of an instance with profile attributes keeps them per partition beside its events
RUN_FILES_WITH_ATTRIBUTES = sorted([*RUN_FILES, "attributes"])


TRAINING_FILES = ("training_events.parquet", "training_set.parquet")  # not in the folder of a run reusing a model


def write_run_events(folder: Path, events: pd.DataFrame, count: int = 1) -> None:
    """Give a run folder its events as its first step would: ``count`` partitions, and the count in ``source.json``."""
    from customer_ai import artifacts  # noqa: PLC0415
    from customer_ai.event_split import part_path  # noqa: PLC0415
    from customer_ai.partitions import partition_of  # noqa: PLC0415

    hashed = partition_of(events["profile_id"], count)
    for partition in range(count):
        artifacts.write_frame(part_path(folder, partition), events.loc[hashed == partition].reset_index(drop=True))
    stamps = events["timestamp"]
    split = {"count": count, "first_event": stamps.min().isoformat(), "last_event": stamps.max().isoformat()}
    artifacts.write_json(folder / "source.json", {"data_start": None, "partitions": split})


def load_bench(name: str):  # noqa: ANN201 - a module
    """Import ``bench/<name>.py`` (not a package) as the module ``bench_<name>``."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def run_command(*args: str, home: Path) -> subprocess.CompletedProcess:
    """Run ``customer-ai`` with ``args`` in a process of its own, from the project's root, its home ``home``."""
    return subprocess.run(
        [sys.executable, "-m", "customer_ai.cli", *args],
        capture_output=True,
        text=True,
        env={"CUSTOMER_AI_HOME": str(home), "PATH": "/usr/bin:/bin"},
        cwd=ROOT,
        check=False,
    )


def cdnow_transactions() -> pd.DataFrame:
    """Return the CDNOW transactions ``lifetimes`` ships: ``customer_id``, ``date`` (a day), ``cds``, ``amount``."""
    import warnings

    from lifetimes.datasets import load_dataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = load_dataset(
            "CDNOW_master.txt", header=0, sep=r"\s+", names=["customer_id", "date", "cds", "amount"], dtype=str
        )
    raw["date"] = pd.to_datetime(raw["date"], format="%Y%m%d")
    raw["amount"] = raw["amount"].astype("float64")
    return raw


def stopped_optimiser(parameters: int) -> Callable[..., object]:
    """Return a stand-in for ``scipy.optimize.minimize`` that stops without converging after 7 iterations."""
    from scipy.optimize import OptimizeResult

    def stopped(*args: object, **kwargs: object) -> OptimizeResult:
        return OptimizeResult(
            x=np.zeros(parameters), fun=3.2, success=False, message="ABNORMAL_TERMINATION_IN_LNSRCH", nit=7
        )

    return stopped


def hidden_entries(parent: Path) -> list[str]:
    """Return the names of hidden entries (staging or retired files and folders) in ``parent``."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


# modules whose Airflow tests start Airflow's services (API server, scheduler, DAG processor, Celery workers)
SERVED_AIRFLOW_MODULES = {"test_airflow_services", "test_airflow_partitions", "test_airflow_ui", "test_make_airflow"}
# the longest groups, longest first (seconds of test time in CI on 2026-12-06: 490, 435, 362, 299, 250, 95): xdist
# hands out groups in the order they are collected, so these start at once and the many short groups fill the other
# worker around them, instead of one long group starting last while the other worker has nothing left.  That order
# holds only with --no-loadscope-reorder (pyproject.toml): by default xdist reorders the groups by their number of
# tests, which put these few-test groups last (CI on 2026-12-06: 38 min of tests took 26 min on two workers)
LONGEST_GROUPS = ("test_airflow_runs", "test_cli", "served-airflow", "test_steps", "test_packaging", "test_report")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups into the test ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Group the tests for pytest-xdist's ``loadgroup``: a module's tests share a worker, served Airflows one more.

    A module's fixtures (a first run, a served Airflow) are then built once, and two served Airflows never compete
    for the machine's cores at once: their processes start and wait on each other with timeouts.

    Two conditions, both needed (found on 2026-12-06, when every module was being spread test by test): this hook
    runs before xdist's, which copies the groups into the test ids, and pytest is below 9.2 (pyproject.toml), whose
    ``Node.nodeid`` no longer reads the id xdist 3.8 writes.
    """
    groups = {}
    for item in items:
        module = item.module.__name__
        served = item.get_closest_marker("airflow") and module in SERVED_AIRFLOW_MODULES
        groups[item.nodeid] = "served-airflow" if served else module
        item.add_marker(pytest.mark.xdist_group(groups[item.nodeid]))
    rank = {group: at for at, group in enumerate(LONGEST_GROUPS)}
    items.sort(key=lambda item: rank.get(groups[item.nodeid], len(rank)))  # stable: a module keeps its order


def make_spec(**overrides: object) -> InstanceSpec:
    """Return a valid spec built from BASE_SPEC with top-level keys replaced by ``overrides``."""
    data = copy.deepcopy(BASE_SPEC)
    data.update(copy.deepcopy(overrides))
    return parse_spec(data, source="unit.yaml", base_dir=ROOT)


def make_events(rows: list[tuple]) -> pd.DataFrame:
    """Return canonical events from ``(profile_id, timestamp, event_type[, value[, extras dict]])`` tuples."""
    records = []
    for row in rows:
        record = {"profile_id": row[0], "timestamp": row[1], "event_type": row[2]}
        record["value"] = row[3] if len(row) > 3 else None
        if len(row) > 4:
            record.update(row[4])
        records.append(record)
    return canonicalize(pd.DataFrame.from_records(records), source="inline")


def ts(text: str) -> pd.Timestamp:
    """Return a UTC timestamp."""
    return pd.Timestamp(text, tz="UTC")


@pytest.fixture
def spec() -> InstanceSpec:
    return make_spec()


def synthetic_events(customers: int = 600, seed: int = 7, start: str = "2010-01-01", days: float = 730) -> pd.DataFrame:
    """Return purchases of customers buying at steady personal rates (a learnable signal), canonical."""
    rng = np.random.default_rng(seed)
    origin = ts(start)
    rows = []
    for customer in range(customers):
        rate = rng.gamma(0.8, 1 / 40)  # purchases per day
        for day in np.sort(rng.uniform(0, days, size=rng.poisson(rate * days))):
            rows.append(
                (f"c{customer:03d}", origin + pd.Timedelta(days=float(day)), "purchase", float(rng.gamma(2, 20)))
            )
    frame = pd.DataFrame(rows, columns=["profile_id", "timestamp", "event_type", "value"])
    return canonicalize(frame, source="synthetic")


def stationary_events(profiles: int = 3000, days: int = 730, seed: int = 3, start: str = "2022-01-01") -> pd.DataFrame:
    """Return visits and purchases of customers whose habits never change (a log without change over time), canonical.

    Each profile visits at its own steady rate (a homogeneous Poisson process over the whole span, log-normal rates)
    and buys on a steady share of its visits, a minute after the visit, for a log-normal value: any date of the log
    looks like any other, so every feature should be distributed alike at every snapshot and at scoring.
    """
    rng = np.random.default_rng(seed)
    visit_rate = rng.lognormal(np.log(0.08), 0.7, profiles)  # visits per day
    buy_share = rng.beta(2, 6, profiles)
    visits = rng.poisson(visit_rate * days)
    profile = np.repeat(np.arange(profiles), visits)
    second = rng.uniform(0, days * 86_400, len(profile))
    buys = rng.random(len(profile)) < buy_share[profile]
    origin = ts(start)
    frame = pd.DataFrame(
        {
            "profile_id": np.char.add("p", np.r_[profile, profile[buys]].astype(str)),
            "timestamp": origin + pd.to_timedelta(np.r_[second, second[buys] + 60], unit="s"),
            "event_type": np.r_[np.full(len(profile), "visit"), np.full(buys.sum(), "purchase")],
            "value": np.r_[np.full(len(profile), np.nan), rng.lognormal(3.5, 0.6, buys.sum())],
        }
    )
    return canonicalize(frame, source="stationary")


def event_logs():  # noqa: ANN201 - a hypothesis strategy, imported lazily
    """Hypothesis strategy: small canonical event logs around 2011-09-01, with events on exact day boundaries."""
    from hypothesis import strategies as st

    base = ts("2011-03-01")
    moment = st.one_of(
        st.integers(0, 300).map(lambda d: base + pd.Timedelta(days=d)),  # midnight: on a window's edge
        st.integers(0, 300 * 86_400_000_000).map(lambda us: base + pd.Timedelta(microseconds=us)),
    )
    event = st.tuples(
        st.sampled_from(["a", "b", "c", "d", "e"]),
        moment,
        st.sampled_from(["purchase", "view"]),
        st.one_of(st.none(), st.floats(0, 500, allow_nan=False)),
    )
    return st.lists(event, min_size=1, max_size=40).map(make_events)


def as_of_dates():  # noqa: ANN201 - a hypothesis strategy, imported lazily
    """Hypothesis strategy: as-of dates (midnight UTC) inside the span of :func:`event_logs`."""
    from hypothesis import strategies as st

    return st.integers(60, 290).map(lambda d: ts("2011-03-01") + pd.Timedelta(days=d))


@pytest.fixture(scope="session")
def s3_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One real S3 server for the test session, and this process's environment pointing S3 clients at it.

    One for the session: fsspec keeps one S3 file system per set of arguments, made with the environment of its
    first use, so a second server on another port would not be reached by this process.
    """
    from s3_support import environment, s3_server

    with s3_server(tmp_path_factory.mktemp("s3")) as env, environment(env):
        yield env
