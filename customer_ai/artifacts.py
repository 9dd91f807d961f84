"""Run artifacts: the model file, its metadata and the scores, in one folder per (instance, as-of).

Layout: ``<home>/artifacts/<instance>/<YYYY-MM-DD>/`` holding ``model.txt`` (LightGBM), ``metadata.json``
(versions, spec hash, windows, label counts, features, parameters, calibration, metrics) and
``scores.parquet``.  A folder is written beside its final place and renamed into it, so a reader never
sees half a run.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
from importlib import metadata as importlib_metadata
from pathlib import Path

import lightgbm as lgb
import pandas as pd

from customer_ai.model import PlattCalibration, TrainedModel

__all__ = [
    "default_home",
    "load_run",
    "model_version",
    "package_versions",
    "run_dir",
    "write_run",
]

_PACKAGES = ("customer-ai", "lightgbm", "pandas", "numpy", "pyarrow", "scikit-learn", "scipy", "pydantic")


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


def model_version(model: TrainedModel, as_of: pd.Timestamp) -> str:
    """Return a version id from the as-of date and a hash of the model and its calibration."""
    digest = hashlib.sha256(model.booster.model_to_string(num_iteration=model.best_iteration).encode())
    digest.update(repr((model.calibration.slope, model.calibration.intercept)).encode())
    return f"{as_of:%Y%m%d}-{digest.hexdigest()[:10]}"


def write_run(
    folder: Path, model: TrainedModel, metadata: dict, scores: pd.DataFrame, extra: dict[str, pd.DataFrame]
) -> Path:
    """Write a run's artifacts into ``folder`` atomically (replacing an earlier run of the same date).

    Parameters
    ----------
    folder : pathlib.Path
        Final folder, see :func:`run_dir`.
    model : TrainedModel
        The model.
    metadata : dict
        JSON-ready metadata.
    scores : pandas.DataFrame
        Scores; a ``factors`` column of lists is stored as JSON text.
    extra : dict
        More frames to store as ``<name>.parquet`` (e.g. the training set).

    Returns
    -------
    pathlib.Path
        ``folder``.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        model.booster.save_model(staging / "model.txt", num_iteration=model.best_iteration)
        (staging / "metadata.json").write_text(json.dumps(metadata, indent=2, sort_keys=True, default=str) + "\n")
        stored = scores.copy()
        if "factors" in stored.columns:
            stored["factors"] = [json.dumps(f, ensure_ascii=False) for f in stored["factors"]]
        stored.to_parquet(staging / "scores.parquet", index=False)
        for name, frame in extra.items():
            frame.to_parquet(staging / f"{name}.parquet")
        if folder.exists():
            retired = folder.with_name(f".{folder.name}-old-{os.getpid()}")
            folder.rename(retired)
            staging.rename(folder)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            staging.rename(folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


def load_run(folder: Path) -> tuple[TrainedModel, dict]:
    """Load the model and metadata written by :func:`write_run`."""
    folder = Path(folder)
    metadata = json.loads((folder / "metadata.json").read_text())
    booster = lgb.Booster(model_file=str(folder / "model.txt"))
    calibration = PlattCalibration(**metadata["calibration"])
    model = TrainedModel(
        booster=booster,
        calibration=calibration,
        features=metadata["features"]["names"],
        categorical=metadata["features"]["categorical"],
        params=metadata["parameters"],
    )
    return model, metadata
