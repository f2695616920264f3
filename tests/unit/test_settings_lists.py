"""Every list-valued setting reads both the comma form and the JSON form from the environment."""

from __future__ import annotations

import typing

import pytest

from steward.config import Settings


def _list_fields() -> list[str]:
    return [
        name
        for name, field in Settings.model_fields.items()
        if typing.get_origin(field.annotation) is list
    ]


def test_settings_has_the_list_fields_this_suite_covers() -> None:
    assert {"apps", "webhook_allowed_networks"} <= set(_list_fields())


@pytest.mark.parametrize("name", _list_fields())
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/srv/app.py", ["/srv/app.py"]),
        ("a.py,b.py", ["a.py", "b.py"]),
        (" a.py , b.py ,", ["a.py", "b.py"]),
        ('["a.py", "b.py"]', ["a.py", "b.py"]),
        ("", []),
    ],
)
def test_list_setting_takes_comma_and_json_forms_from_the_environment(
    name: str, raw: str, expected: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(f"STEWARD_{name.upper()}", raw)
    assert getattr(Settings(), name) == expected


@pytest.mark.parametrize("name", _list_fields())
def test_list_setting_refuses_a_json_value_that_is_not_a_list_of_strings(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(f"STEWARD_{name.upper()}", '["a.py", 3')
    with pytest.raises(ValueError, match=name):
        Settings()
