"""``l5d-twisted check --reference``: every key and every registered kind, from the schema."""

from __future__ import annotations

import dataclasses

import pytest

from l5d_twisted import registry
from l5d_twisted.cli import main
from l5d_twisted.config import ClientParams, RouterConfig, ServerConfig, ServiceParams
from l5d_twisted.config.schema import yaml_key


def test_reference_lists_model_keys_and_every_registered_kind(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check", "--reference"]) == 0
    text = capsys.readouterr().out
    for cls in (RouterConfig, ServerConfig, ClientParams, ServiceParams):
        for f in dataclasses.fields(cls):
            assert f"| `{yaml_key(f)}` |" in text, (cls.__name__, f.name)
    for reg in (
        registry.NAMERS,
        registry.IDENTIFIERS,
        registry.TRANSFORMERS,
        registry.BALANCERS,
        registry.TELEMETERS,
    ):
        for kind in reg.kinds():
            assert f"kind `{kind}`" in text
    assert "| `port` | integer | `4140` |" in text
    assert "| `routers` | list of mapping (RouterConfig) | **required** |" in text


def test_check_without_config_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check"]) == 2
    assert "a CONFIG file is required" in capsys.readouterr().err
