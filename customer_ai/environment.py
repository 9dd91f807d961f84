"""Settings read from the environment: numbers checked once, with messages that name the variable."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["number_setting"]


def number_setting(env: Mapping[str, str], name: str, default: float, *, minimum: float = 0) -> float:
    """Return the number the variable ``name`` of ``env`` holds (blank or unset: ``default``).

    Raises
    ------
    ValueError
        When it is not a number, or below ``minimum``; the message names the variable and its value.
    """
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name}={text!r}: not a number") from None
    if not value >= minimum:  # NaN too
        raise ValueError(f"{name}={text!r}: must be at least {minimum:g}")
    return value
