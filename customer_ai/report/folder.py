"""What the report reads of a run folder: its files (:class:`_RunFiles`) and the instance's published runs.

The model and the scores are required; the source summary, the evaluation, the tracked outcomes, the metadata
and the validation results are optional and None when absent, so that a run's staging folder can be reported on
too.  The instance's published runs are found through the store (:func:`_published_folders`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from customer_ai import artifacts
from customer_ai.home import fetch
from customer_ai.outcomes import read_tracked


@dataclass
class _RunFiles:
    """The files of a run folder that the report reads; optional ones are None when absent."""

    folder: Path
    model: dict
    scores: pd.DataFrame
    source: dict | None
    evaluation: dict | None
    metadata: dict | None
    drift: dict | None
    validation: dict[str, dict | None]
    tracked: dict[str, pd.DataFrame]  # outcomes of past runs this run found, by their as-of date

    @classmethod
    def read(cls, folder: Path) -> _RunFiles:
        for required in ("model.json", "scores.parquet"):
            if not (folder / required).exists():
                raise FileNotFoundError(
                    f"{folder / required} is missing: a report needs a run folder whose model was trained and "
                    "whose profiles were scored"
                )

        def optional(name: str) -> dict | None:
            path = folder / name
            return artifacts.read_json(path) if path.exists() else None

        return cls(
            folder=folder,
            model=artifacts.read_json(folder / "model.json"),
            scores=pd.read_parquet(fetch(folder / "scores.parquet")),
            source=optional("source.json"),
            evaluation=optional("evaluation.json"),
            metadata=optional("metadata.json"),
            drift=optional("drift.json"),
            validation={stage: optional(f"validation/{stage}.json") for stage in ("events", "training_set", "scores")},
            tracked=read_tracked(folder),
        )


def _published_folders(instance: str, home: Path, runs: pd.DataFrame | None) -> dict[str, Path]:
    """Return the folder of each published run (``runs``, the store's ``read_runs``; None: none), by as-of date."""
    return {} if runs is None else artifacts.published_folders(home, instance, runs)
