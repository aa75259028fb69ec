"""config_json(config) (for /config.json): complete, JSON-serialisable, and loads back the same."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from l5d_twisted.config import config_json, load_config, load_config_file
from l5d_twisted.naming.path import Path as NamePath

SAMPLES = Path(__file__).resolve().parents[2] / "examples" / "configs"


@pytest.mark.parametrize("sample", sorted(p.name for p in SAMPLES.glob("*.yaml")))
def test_to_json_loads_back_to_the_same_config(
    sample: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(SAMPLES.parents[1])  # the samples' relative rootDirs: the repository root
    try:
        config = load_config_file(SAMPLES / sample)
    except Exception as e:  # a plugin kind of another area not there yet
        pytest.skip(f"{sample} does not load yet: {e}")
    shown = config_json(config)
    text = json.dumps(shown)
    again = load_config(yaml.safe_dump(json.loads(text)), source_dir=config.source_dir)
    assert config_json(again) == shown
    for a, b in zip(config.routers, again.routers):
        assert a.dtab == b.dtab
        for path in (
            "/#/io.l5d.fs/world-v1",
            "/#/io.l5d.k8s/default/http/world",
            "/$/inet/127.0.0.1/80",
        ):
            assert a.client.params_for(NamePath.read(path)) == b.client.params_for(
                NamePath.read(path)
            )
        for path in ("/svc/world", "/svc/hello"):
            assert a.service.params_for(NamePath.read(path)) == b.service.params_for(
                NamePath.read(path)
            )


def test_to_json_shows_defaults_camel_case_and_text_forms() -> None:
    shown = config_json(
        load_config(
            "routers:\n- label: out\n  dtab: /svc => /$/inet/127.0.0.1/80\nusage: {orgId: x}\n"
        )
    )
    assert set(shown) == {"admin", "routers", "namers", "telemetry", "workers"}
    assert shown["workers"] == 1
    router = shown["routers"][0]
    assert router["dtab"] == "/svc => /$/inet/127.0.0.1/80"
    assert router["dstPrefix"] == "/svc"
    assert router["maxHeadersKB"] == 8
    assert router["identifier"] == [{"kind": "io.l5d.header.token", "header": "Host"}]
    assert router["client"]["kind"] == "io.l5d.global"
    assert router["client"]["loadBalancer"]["kind"] == "p2c"
    assert router["service"]["retries"]["budget"] == {
        "minRetriesPerSec": 10,
        "percentCanRetry": 0.2,
        "ttlSecs": 10,
    }


def test_static_entries_show_only_the_keys_they_set() -> None:
    shown = config_json(
        load_config(
            "routers:\n- client:\n    kind: io.l5d.static\n    configs:\n    - prefix: /#/{ns}\n      failFast: true\n"
        )
    )
    assert shown["routers"][0]["client"] == {
        "kind": "io.l5d.static",
        "configs": [{"prefix": "/#/{ns}", "failFast": True}],
    }
