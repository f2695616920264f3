"""Which requests the response cache may answer: deterministic ones only, whatever the body
holds."""

from __future__ import annotations

import pytest

from steward.models.response_cache import is_deterministic


@pytest.mark.parametrize("n", ["several", 2.5, [1], True])
def test_a_malformed_n_is_never_deterministic_and_never_an_error(n: object) -> None:
    assert not is_deterministic({"temperature": 0, "n": n})


def test_temperature_zero_single_choice_without_streaming_is_deterministic() -> None:
    assert is_deterministic({"temperature": 0})
    assert is_deterministic({"temperature": 0, "n": 1})
    assert not is_deterministic({"temperature": 0, "n": 2})
    assert not is_deterministic({"temperature": 0, "stream": True})
    assert not is_deterministic({"temperature": 0.2})
