"""``workers: N | auto`` in the config: decoded, validated with clear errors, shown."""

from __future__ import annotations

import pytest

from l5d_twisted.config import ConfigErrors, load_config
from l5d_twisted.config.model import Workers
from l5d_twisted.config.tojson import config_json

ROUTERS = "routers:\n- protocol: http\n"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("auto", None),
        ("AUTO", None),
        ("1", 1),
        ("4", 4),
        ('"3"', 3),
        ("'auto'", None),
        ("256", 256),
    ],
)
def test_accepted(value: str, expected: int | None) -> None:
    config = load_config(f"workers: {value}\n{ROUTERS}")
    assert config.workers == Workers(expected)


def test_default_is_one_process() -> None:
    config = load_config(ROUTERS)
    assert config.workers == Workers(1)
    assert config_json(config)["workers"] == 1
    assert config_json(load_config(f"workers: auto\n{ROUTERS}"))["workers"] == "auto"


@pytest.mark.parametrize(
    ("value", "got"),
    [
        ("0", "0"),
        ("-2", "-2"),
        ("257", "257"),
        ("2.5", "2.5"),
        ("true", "true"),
        ("many", '"many"'),
        ("[2]", "a list"),
        ("{n: 2}", "a mapping"),
    ],
)
def test_refused_with_the_key_and_line(value: str, got: str) -> None:
    with pytest.raises(ConfigErrors) as e:
        load_config(f"admin: {{port: 9990}}\nworkers: {value}\n{ROUTERS}", "w.yaml")
    assert str(e.value).splitlines() == [
        f"w.yaml:2: workers: expected a number of worker processes 1-256, "
        f"or auto (one per CPU), got {got}"
    ]
