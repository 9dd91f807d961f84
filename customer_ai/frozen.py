"""The instance definition a run froze at its first step, which every later step of the run uses.

Airflow runs each step as a task of its own, possibly on another machine and hours later: reading the instance
file again in every task would let an edit made during a run change the definition between its tasks (a goal
window for the labels and another for the scores).  The first step writes the checked definition into the run's
folder (``instance.json``); every later step reads it from there, and the sealed run folder keeps it as the record
of what the run was.
"""

from __future__ import annotations

from pathlib import Path

from customer_ai.files import FileContentError, read_json_object, write_json
from customer_ai.spec import InstanceSpec, SpecError, parse_spec

__all__ = ["FROZEN_FILE", "FrozenDefinitionError", "freeze", "thaw"]

FROZEN_FILE = "instance.json"


class FrozenDefinitionError(RuntimeError):
    """A run's frozen definition is missing or does not read back as it was written."""


def freeze(spec: InstanceSpec, folder: Path, source: str) -> Path:
    """Write ``spec`` (read from ``source``, the instance file) into the run folder ``folder``; return the file.

    The definition is kept whole, defaults included, with the folder its relative paths are resolved against and
    its hash: :func:`thaw` gives back an equal spec even if the package's defaults change in between.
    """
    return write_json(
        folder / FROZEN_FILE,
        {
            "source": source,
            "base_dir": str(spec.base_dir),
            "spec_hash": spec.spec_hash(),
            "definition": spec.model_dump(mode="json"),
        },
    )


def thaw(folder: Path) -> InstanceSpec:
    """Return the definition frozen in the run folder ``folder`` by :func:`freeze`.

    Raises
    ------
    FrozenDefinitionError
        When the folder holds none (the run was started by a version that did not freeze it, or its folder was
        removed), or what it holds does not read back to the same definition.
    """
    path = folder / FROZEN_FILE
    if not path.exists():
        raise FrozenDefinitionError(
            f"{path}: the run's instance definition is missing: it is written by the run's first step "
            "(validate_events); run the whole run again"
        )
    try:
        frozen = read_json_object(path, ["source", "base_dir", "spec_hash", "definition"])
        spec = parse_spec(
            frozen["definition"], source=f"{frozen['source']} (frozen in {path})", base_dir=Path(frozen["base_dir"])
        )
    except (FileContentError, SpecError) as exc:
        raise FrozenDefinitionError(f"the run's frozen instance definition does not read back: {exc}") from exc
    if spec.spec_hash() != frozen["spec_hash"]:
        raise FrozenDefinitionError(
            f"{path}: the run's frozen instance definition reads back as another definition (hash "
            f"{spec.spec_hash()} instead of {frozen['spec_hash']}): was customer-ai upgraded during the run? run "
            "the whole run again"
        )
    return spec
