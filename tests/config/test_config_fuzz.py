"""Whatever the input, loading either returns a Config or raises ConfigErrors (hypothesis)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l5d_twisted.config import Config, ConfigErrors, config_json, load_config

SAMPLES = Path(__file__).resolve().parents[2] / "examples" / "configs"

# Keys the schema knows, so generated documents reach deep into the decoder.
KEYS = [
    "admin",
    "routers",
    "namers",
    "telemetry",
    "usage",
    "protocol",
    "label",
    "servers",
    "port",
    "ip",
    "dtab",
    "dstPrefix",
    "identifier",
    "interpreter",
    "transformers",
    "client",
    "service",
    "kind",
    "configs",
    "prefix",
    "loadBalancer",
    "failureAccrual",
    "backoff",
    "retries",
    "budget",
    "tls",
    "commonName",
    "hostConnectionPool",
    "maxSize",
    "minSize",
    "totalTimeoutMs",
    "responseClassifier",
    "rootDir",
    "clearContext",
    "maxConcurrentRequests",
    "<<",
    "header",
    "segments",
    "minMs",
    "maxMs",
]
KINDS = [
    "io.l5d.fs",
    "io.l5d.k8s",
    "io.l5d.static",
    "io.l5d.global",
    "p2c",
    "jittered",
    "constant",
    "io.l5d.header.token",
    "io.l5d.path",
    "io.l5d.prometheus",
    "io.l5d.k8s.daemonset",
    "default",
    "http",
    "h2",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(KINDS),
    st.sampled_from(
        [
            "/svc",
            "/svc => /#/io.l5d.fs",
            "/#/{x}",
            "/a/*",
            "(",
            "/svc => ~ | !",
            "0.0.0.0",
            "{",
            "\\x",
        ]
    ),
    st.text(max_size=20),
)
documents: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), children, max_size=6
        ),
    ),
    max_leaves=12,
)


def assert_loads_or_reports(text: str) -> None:
    try:
        config = load_config(text, "fuzz.yaml")
    except ConfigErrors as e:
        assert e.errors, "ConfigErrors without errors"
        lines = text.count("\n") + 2
        for error in e.errors:
            assert "internal error" not in error.message, error
            assert error.line is None or 1 <= error.line <= lines, error
            assert str(error)
    else:
        assert isinstance(config, Config)
        config_json(config)


FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FUZZ
@given(st.text(max_size=200))
def test_random_text(text: str) -> None:
    assert_loads_or_reports(text)


@FUZZ
@given(
    st.fixed_dictionaries(
        {"routers": documents},
        optional={"admin": documents, "namers": documents, "telemetry": documents},
    )
)
def test_random_config_shaped_documents(document: dict[str, Any]) -> None:
    assert_loads_or_reports(yaml.safe_dump(document))


@FUZZ
@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(
                [
                    "protocol",
                    "servers",
                    "dtab",
                    "client",
                    "service",
                    "identifier",
                    "interpreter",
                    "label",
                ]
            ),
            documents,
            max_size=4,
        ),
        max_size=2,
    )
)
def test_random_routers(routers: list[dict[str, Any]]) -> None:
    assert_loads_or_reports(
        yaml.safe_dump({"routers": routers, "namers": [{"kind": "io.l5d.fs", "rootDir": "."}]})
    )


@FUZZ
@given(st.sampled_from(sorted(SAMPLES.glob("*.yaml"))), st.data())
def test_mutated_samples(sample: Path, data: st.DataObject) -> None:
    text = sample.read_text()
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        at = data.draw(st.integers(min_value=0, max_value=len(text)))
        cut = data.draw(st.integers(min_value=0, max_value=8))
        insert = data.draw(
            st.sampled_from(
                ["", " ", "\n", ":", "- ", "{", "]", "&a ", "*a", "!!str ", "\t", "'", "x", "0"]
            )
        )
        text = text[:at] + insert + text[at + cut :]
    assert_loads_or_reports(text)


def test_alias_bombs_and_deep_nesting_are_reported_not_crashing() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
    )
    assert_loads_or_reports(bomb + "routers: [{}]\nusage: *i\n")
    assert_loads_or_reports("routers:\n- interpreter:\n    transformers: &t [*t]\n")
    assert_loads_or_reports("routers: " + "[" * 5000 + "]" * 5000 + "\n")
    assert_loads_or_reports("routers:\n" + "".join(" " * i + "- \n" for i in range(0, 2000, 2)))
    assert_loads_or_reports("routers:\n- dtab: " + "(" * 3000 + "/a" + ")" * 3000 + "\n")
