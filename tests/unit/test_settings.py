"""OperatorSettings: defaults, environment overrides and refusals."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from kabin.settings import OperatorSettings, reconciles


@pytest.mark.parametrize(
    ("env", "field", "expected"),
    [
        ({}, "namespaces", ()),
        ({"KABIN_NAMESPACES": '["a", "b"]'}, "namespaces", ("a", "b")),
        ({}, "metrics_port", 8080),
        ({"KABIN_METRICS_PORT": "0"}, "metrics_port", 0),
        ({"KABIN_ERROR_BACKOFFS": "[0.1, 1]"}, "error_backoffs", (0.1, 1.0)),
    ],
    ids=["all-namespaces", "some-namespaces", "metrics-default", "metrics-off", "backoffs"],
)
def test_settings_from_environment(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], field: str, expected: object
) -> None:
    for key in [k for k in os.environ if k.startswith("KABIN_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert getattr(OperatorSettings(), field) == expected


def test_out_of_range_port_is_refused_naming_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KABIN_METRICS_PORT", "70000")
    with pytest.raises(ValidationError, match="metrics_port"):
        OperatorSettings()


def test_an_operator_reconciles_only_the_namespaces_it_watches_and_not_the_excluded() -> None:
    everywhere = OperatorSettings(exclude_namespaces=("k-*",))
    assert reconciles("team-a", everywhere)
    assert not reconciles("k-123", everywhere)
    assert not reconciles(None, everywhere)  # cluster-scoped objects are no namespace's
    watching = OperatorSettings(namespaces=("team-a",), exclude_namespaces=())
    assert reconciles("team-a", watching)
    assert not reconciles("team-b", watching)
