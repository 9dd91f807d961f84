"""Artifacts on disk: one folder per run, one immutable folder per trained model.

- Run folder ``<home>/artifacts/<instance>/<YYYY-MM-DD>/``: what a run as of that date read and produced
  (``events.parquet``, ``source.json``, ``training_set.parquet``, ``plan.json``, ``model.json``,
  ``scores.parquet``, ``validation/*.json``, ``metadata.json``).  A run builds it in its staging folder
  ``.<YYYY-MM-DD>.staging`` beside it (emptied when the run starts) and the last step puts it in place of the
  previous one only when everything succeeded: a failed or poor re-run leaves the last good folder as it was,
  and its own files in the staging folder for inspection.  Each file is written beside its final name and
  renamed into place, so a reader never sees half a file.
- Model folder ``<home>/models/<instance>/<model_version>/``: ``model.txt`` (LightGBM) and ``model.json``
  (versions, hashes, windows, label counts, features, parameters, calibration, validation metrics, quality).
  The version is a content hash, so a folder never changes once written; runs refer to it by version.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import platform
import shutil
import tempfile
from collections.abc import Iterator
from importlib import metadata as importlib_metadata
from pathlib import Path

import pandas as pd

from customer_ai.estimator import PropensityModel
from customer_ai.files import (
    copy_dir,
    promote_dir,
    read_frame,
    read_json,
    release_memory,
    reset_dir,
    write_frame,
    write_frames,
    write_json,
)
from customer_ai.model import TrainedModel
from customer_ai.spec import InstanceSpec

__all__ = [
    "RunInProgressError",
    "instance_lock",
    "copy_dir",
    "default_home",
    "load_model",
    "model_dir",
    "model_version",
    "package_versions",
    "promote_dir",
    "published_runs",
    "read_frame",
    "read_json",
    "release_memory",
    "reset_dir",
    "run_dir",
    "save_model",
    "staging_dir",
    "write_frame",
    "write_frames",
    "write_json",
]

_PACKAGES = ("customer-ai", "lightgbm", "pandas", "numpy", "pyarrow", "scikit-learn", "scipy", "pydantic")


class RunInProgressError(RuntimeError):
    """Another run of the same instance holds the home folder's lock for that instance."""


@contextlib.contextmanager
def instance_lock(home: Path, instance: str) -> Iterator[Path]:
    """Hold the lock of ``instance`` in ``home`` for a whole run; refuse at once if another run holds it.

    The lock is an advisory ``flock`` on ``<home>/artifacts/<instance>/.lock``: the kernel releases it when the
    holder exits, however it exits (a killed run never leaves a stale lock behind).

    Raises
    ------
    RunInProgressError
        When another process holds it.
    """
    path = Path(home) / "artifacts" / instance / ".lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise RunInProgressError(
                f"another run of {instance} is in progress in {home} ({holder}); wait for it to finish"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} on {platform.node()}\n")
        handle.flush()
        try:
            yield path
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)


def default_home() -> Path:
    """Return the folder for artifacts and the embedded store: ``$CUSTOMER_AI_HOME`` or ``~/.customer-ai``."""
    return Path(os.environ.get("CUSTOMER_AI_HOME") or Path.home() / ".customer-ai").expanduser()


def package_versions() -> dict[str, str]:
    """Return the versions of Python and the packages a model depends on."""
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def run_dir(home: Path, instance: str, as_of: pd.Timestamp) -> Path:
    """Return the artifact folder of one run."""
    return Path(home) / "artifacts" / instance / f"{as_of:%Y-%m-%d}"


def published_runs(home: Path, instance: str) -> list[pd.Timestamp]:
    """Return the as-of dates of the instance's published run folders in ``home`` that hold scores, oldest first."""
    dates = []
    for path in (Path(home) / "artifacts" / instance).glob("[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]"):
        if (path / "scores.parquet").exists():
            try:
                dates.append(pd.Timestamp(path.name, tz="UTC"))
            except ValueError:
                continue
    return sorted(dates)


def staging_dir(home: Path, instance: str, as_of: pd.Timestamp) -> Path:
    """Return the folder a run builds in before it replaces its run folder (hidden: no reader lists it)."""
    return Path(home) / "artifacts" / instance / f".{as_of:%Y-%m-%d}.staging"


def model_dir(home: Path, instance: str, version: str) -> Path:
    """Return the folder of one trained model."""
    return Path(home) / "models" / instance / version


def model_version(model: TrainedModel, as_of: pd.Timestamp) -> str:
    """Return a version id from the as-of date and a hash of the model and its calibration."""
    digest = hashlib.sha256(model.booster.model_to_string(num_iteration=model.best_iteration).encode())
    digest.update(repr((model.calibration.slope, model.calibration.intercept)).encode())
    return f"{as_of:%Y%m%d}-{digest.hexdigest()[:10]}"


def save_model(home: Path, instance: str, estimator: PropensityModel, metadata: dict) -> Path:
    """Store a fitted model under its version, atomically; an existing folder of that version is kept.

    ``metadata`` must hold ``model_version``; the model adds what it is (see :meth:`PropensityModel.describe`).
    """
    folder = model_dir(home, instance, metadata["model_version"])
    if (folder / "model.json").exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        estimator.save(staging, metadata)
        try:
            staging.rename(folder)
        except OSError:  # another process stored the same version first
            if not (folder / "model.json").exists():
                raise
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


def load_model(folder: Path, spec: InstanceSpec) -> tuple[PropensityModel, dict]:
    """Load a model stored with :func:`save_model`; return it with its metadata."""
    return PropensityModel.load(Path(folder), spec)
