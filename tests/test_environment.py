"""Numbers read from the environment: the default when unset, the variable named when wrong."""

from __future__ import annotations

import pytest

from customer_ai.environment import number_setting


def test_a_number_setting_reads_its_variable_or_gives_its_default() -> None:
    assert number_setting({}, "X", 10) == 10
    assert number_setting({"X": "  "}, "X", 10) == 10
    assert number_setting({"X": " 2.5 "}, "X", 10) == 2.5
    assert number_setting({"X": "1"}, "X", 10, minimum=1) == 1.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("soon", "X='soon': not a number"),
        ("0.5", "X='0.5': must be at least 1"),
        ("nan", "X='nan': must be at least 1"),
    ],
)
def test_a_bad_number_setting_names_the_variable_and_its_value(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        number_setting({"X": text}, "X", 10, minimum=1)
