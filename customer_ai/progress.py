"""Progress on stderr for steps that take more than a moment."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["logger", "step"]

logger = logging.getLogger("customer_ai")


@contextmanager
def step(description: str) -> Iterator[dict]:
    """Log ``description`` when it starts and, with its duration and any details set, when it ends.

    Yields a dict; keys put there (e.g. ``{"rows": 1234}``) are appended to the end message.
    """
    details: dict = {}
    logger.info("%s ...", description)
    started = time.perf_counter()
    yield details
    extra = ", ".join(f"{k}={v:,}" if isinstance(v, int) else f"{k}={v}" for k, v in details.items())
    logger.info("%s done in %.1fs%s", description, time.perf_counter() - started, f" ({extra})" if extra else "")
