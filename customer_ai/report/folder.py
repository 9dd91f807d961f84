"""What the report reads of a run folder: its files (:class:`_RunFiles`) and the instance's published runs.

The model and the scores are required; the source summary, the evaluation, the metadata and the validation
results are optional and None when absent, so that a run's staging folder can be reported on too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from customer_ai import artifacts


@dataclass
class _RunFiles:
    """The files of a run folder that the report reads; optional ones are None when absent."""

    folder: Path
    model: dict
    scores: pd.DataFrame
    source: dict | None
    evaluation: dict | None
    metadata: dict | None
    validation: dict[str, dict | None]

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
            scores=pd.read_parquet(folder / "scores.parquet"),
            source=optional("source.json"),
            evaluation=optional("evaluation.json"),
            metadata=optional("metadata.json"),
            validation={stage: optional(f"validation/{stage}.json") for stage in ("events", "training_set", "scores")},
        )
