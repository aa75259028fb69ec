"""The generic decoder, through plugins registered by this test (kinds test.config.*)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import pytest

from l5d_twisted.config import ConfigErrors, PluginSpec, knob, load_config
from l5d_twisted.naming.path import Path
from l5d_twisted.registry import BACKOFFS, NAMERS, TELEMETERS


@dataclass(frozen=True)
class Inner:
    name: str = knob(doc="required")
    weight: float = knob(1.0, minimum=0.0)


@dataclass(frozen=True)
class EverythingConfig:
    count: int = knob(3, minimum=1, maximum=10)
    ratio: float = knob(0.5, minimum=0.0, maximum=1.0)
    enabled: bool = knob(False)
    title: str = knob("t")
    maybe: int | None = knob(None)
    tags: tuple[str, ...] = knob(default=())
    inner: Inner | None = knob(None)
    inners: tuple[Inner, ...] = knob(default=())
    where: Path = knob(default_factory=lambda: Path.read("/a"))
    limits: dict[str, int] = knob(default_factory=dict)
    mode: Literal["fast", "slow"] = knob("fast")
    level: str = knob("info", choices=("debug", "info", "warn"))
    backoff: PluginSpec = knob(registry=BACKOFFS, default_kind="constant")
    extra: Any = knob(None)
    http_uri_in_dst: bool = knob(False, key="httpUriInDst")

    def __post_init__(self) -> None:
        if self.title == "forbidden":
            raise ValueError("title may not be 'forbidden'")


@TELEMETERS.register("test.config.everything", EverythingConfig)
def _make_everything(config: EverythingConfig, ctx: Any) -> Any:
    return config


@dataclass(frozen=True)
class RequiredConfig:
    root: str = knob(doc="required")


@NAMERS.register("test.config.namer", RequiredConfig)
def _make_namer(config: RequiredConfig, prefix: Path, ctx: Any) -> Any:
    return config


ROUTER = "routers:\n- protocol: http\n"


def telemeter(body: str) -> Any:
    config = load_config(ROUTER + "telemetry:\n- kind: test.config.everything\n" + body)
    [spec] = config.telemetry
    assert spec.kind == "test.config.everything"
    return spec.config


def errors_of(text: str) -> list[str]:
    with pytest.raises(ConfigErrors) as info:
        load_config(text, "c.yaml")
    return [str(e) for e in info.value.errors]


def test_defaults_fill_everything_not_given() -> None:
    config = telemeter("")
    assert config == EverythingConfig()
    assert config.backoff.kind == "constant"
    assert config.backoff.config.ms == 0


def test_every_field_type_decodes() -> None:
    config = telemeter(
        "  count: 7\n  ratio: 1\n  enabled: yes\n  title: 2024\n  maybe: ~\n  tags: [a, b]\n"
        "  inner: {name: x}\n  inners: [{name: y, weight: 2}]\n  where: /b/c\n"
        "  limits: {a: 1}\n  mode: slow\n  level: warn\n  backoff: {kind: jittered, minMs: 1, maxMs: 2}\n"
        "  extra: {any: [thing, 1]}\n  httpUriInDst: true\n"
    )
    assert config.count == 7
    assert config.ratio == 1.0 and isinstance(config.ratio, float)
    assert config.enabled is True
    assert config.title == "2024"  # a number written where a string is expected stays as written
    assert config.maybe is None
    assert config.tags == ("a", "b")
    assert config.inner == Inner("x")
    assert config.inners == (Inner("y", 2.0),)
    assert config.where == Path.read("/b/c")
    assert config.limits == {"a": 1}
    assert config.mode == "slow"
    assert config.level == "warn"
    assert config.backoff.kind == "jittered"
    assert (config.backoff.config.min_ms, config.backoff.config.max_ms) == (1, 2)
    assert config.extra == {"any": ["thing", 1]}
    assert config.http_uri_in_dst is True


def test_quoted_numbers_and_booleans_are_accepted() -> None:
    # Templating tools (Helm) often quote what they render.
    config = telemeter('  count: "8"\n  enabled: "true"\n  ratio: "0.25"\n')
    assert (config.count, config.enabled, config.ratio) == (8, True, 0.25)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("  count: 11\n", "telemetry[0].count: expected an integer 1-10, got 11"),
        ("  count: 2.5\n", "telemetry[0].count: expected an integer 1-10, got 2.5"),
        ("  count: true\n", "telemetry[0].count: expected an integer 1-10, got true"),
        ("  ratio: high\n", 'telemetry[0].ratio: expected a number 0-1, got "high"'),
        ("  ratio: .nan\n", "telemetry[0].ratio: expected a number 0-1, got .nan"),
        ("  enabled: 3\n", "telemetry[0].enabled: expected true or false, got 3"),
        ("  title: [a]\n", "telemetry[0].title: expected a string, got a list"),
        (
            "  title: true\n",
            "telemetry[0].title: expected a string (quote it if you mean the word), got true",
        ),
        ("  tags: a\n", 'telemetry[0].tags: expected a list, got "a"'),
        ("  inner: {}\n", "telemetry[0].inner: missing required key 'name'"),
        ("  inner: 3\n", "telemetry[0].inner: expected a mapping, got 3"),
        ("  where: b/c\n", "telemetry[0].where: invalid path: path must start with '/': 'b/c'"),
        ("  mode: medium\n", "telemetry[0].mode: expected one of 'fast', 'slow', got \"medium\""),
        (
            "  level: inof\n",
            "telemetry[0].level: expected one of 'debug', 'info', 'warn', got \"inof\" (did you mean 'info'?)",
        ),
        (
            "  backoff: {kind: jitterd}\n",
            "telemetry[0].backoff.kind: unknown backoff kind 'jitterd' (did you mean 'jittered'?); known kinds: ",
        ),
        ("  title: forbidden\n", "telemetry[0]: title may not be 'forbidden'"),
    ],
)
def test_bad_values_name_key_path_line_and_value(body: str, message: str) -> None:
    [error] = errors_of(ROUTER + "telemetry:\n- kind: test.config.everything\n" + body)
    line = 5 if not message.startswith("telemetry[0]:") else 4
    assert error.startswith(f"c.yaml:{line}: {message}"), error


def test_unknown_key_suggests_the_close_one_and_lists_known() -> None:
    [error] = errors_of(ROUTER + "telemetry:\n- kind: test.config.everything\n  cuont: 3\n")
    assert error.startswith(
        "c.yaml:5: telemetry[0].cuont: unknown key 'cuont' (did you mean 'count'?); known keys: count, ratio,"
    )


def test_unknown_plugin_kind_lists_known_kinds_with_a_hint() -> None:
    [error] = errors_of(ROUTER + "namers:\n- kind: test.config.namr\n  root: x\n")
    assert error.startswith(
        "c.yaml:4: namers[0].kind: unknown namer kind 'test.config.namr' "
        "(did you mean 'test.config.namer'?); known kinds: "
    )
    assert "test.config.namer" in error.split("known kinds:")[1]


def test_plugin_without_kind_and_no_default_is_an_error() -> None:
    [error] = errors_of(ROUTER + "namers:\n- root: x\n")
    assert error.startswith("c.yaml:4: namers[0]: missing required key 'kind' (a namer kind: ")


def test_missing_required_key_is_reported_at_its_block() -> None:
    assert errors_of(ROUTER + "namers:\n- kind: test.config.namer\n") == [
        "c.yaml:4: namers[0]: missing required key 'root'"
    ]


def test_all_errors_are_collected_in_file_order() -> None:
    errors = errors_of(
        "admin:\n  port: -1\n  ip: nowhere\nrouters:\n- servers:\n  - port: x\n  label: 5\n  bogus: 1\n"
        "telemetry:\n- kind: test.config.everything\n  count: 0\n  enabled: maybe\n"
    )
    assert [e.split(": ")[0:2] for e in errors] == [
        ["c.yaml:2", "admin.port"],
        ["c.yaml:3", "admin.ip"],
        ["c.yaml:6", "routers[0].servers[0].port"],
        ["c.yaml:8", "routers[0].bogus"],
        ["c.yaml:11", "telemetry[0].count"],
        ["c.yaml:12", "telemetry[0].enabled"],
    ]


def test_duplicate_keys_are_errors() -> None:
    [error] = errors_of("routers:\n- protocol: http\n  label: a\n  label: b\n")
    assert error == "c.yaml:4: routers[0].label: duplicate key 'label' (first on line 3)"


def test_yaml_anchors_and_merge_keys_work() -> None:
    config = load_config(
        "routers:\n- label: a\n  servers:\n  - &s {ip: 127.0.0.2, port: 5000, clearContext: true}\n"
        "- label: b\n  servers:\n  - <<: *s\n    port: 5001\n"
    )
    a, b = config.routers
    assert (b.servers[0].ip, b.servers[0].port, b.servers[0].clear_context) == (
        "127.0.0.2",
        5001,
        True,
    )
    assert a.servers[0].port == 5000


def test_usage_is_accepted_and_ignored() -> None:
    config = load_config(ROUTER + "usage:\n  orgId: acme\n  enabled: false\n")
    assert config.routers[0].label == "http"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "c.yaml: the config is empty; it needs at least 'routers'"),
        ("# nothing\n", "c.yaml: the config is empty; it needs at least 'routers'"),
        (
            "- a\n",
            "c.yaml:1: expected a mapping of top-level keys (admin, routers, namers, telemetry), got a list",
        ),
        (
            "hello\n",
            'c.yaml:1: expected a mapping of top-level keys (admin, routers, namers, telemetry), got "hello"',
        ),
        ("admin: {}\n", "c.yaml:1: missing required key 'routers'"),
        ("routers: []\n", "c.yaml:1: routers: needs at least 1 item"),
        ("routers:\n- [\n", "c.yaml:3: not valid YAML: "),
        ("a: 1\n---\nb: 2\n", "c.yaml:2: not valid YAML: "),
        (
            "routers:\n\t- {}\n",
            "c.yaml:2: not valid YAML: while scanning for the next token found character '\\t' "
            "that cannot start any token (indent YAML with spaces, not tabs)",
        ),
        ("routers: !!python/object:os.system {}\n", "c.yaml:1: routers: "),
        ("? [a]\n: x\nrouters: [{}]\n", "c.yaml:1: keys must be names, got a list"),
        ("1: x\nrouters: [{}]\n", "c.yaml:1: 1: unknown key '1'; known keys: admin, routers"),
    ],
)
def test_documents_that_are_not_configs(text: str, message: str) -> None:
    errors = errors_of(text)
    assert errors[0].startswith(message), errors


def test_a_value_its_tag_cannot_construct_gives_one_clear_error_even_when_read_twice() -> None:
    # The router's protocol is read twice (once to pick the servers' default port); PyYAML
    # used to report the second read as an "unconstructable recursive node".
    problems = errors_of("routers:\n- protocol: !!int http\n")
    assert len(problems) == 1, problems
    assert "routers[0].protocol: unreadable value: invalid literal for int()" in problems[0]
    assert "recursive" not in problems[0]


# -- a type read differently in one part of the document (how a router's protocol reaches
#    the reading of its servers: an argument, not a scratch dict on the decoder) ----------


@dataclass(frozen=True)
class Listener:
    port: int = knob(1, minimum=0)


@dataclass(frozen=True)
class Group:
    port_default: int = knob(1)
    listeners: tuple[Listener, ...] = knob(default=())


@dataclass(frozen=True)
class Groups:
    groups: tuple[Group, ...] = knob(default=())
    loose: tuple[Listener, ...] = knob(default=())


def _decode_group(decoder: Any, node: Any, where: str, meta: Any) -> Any:
    from l5d_twisted.config.decode import INVALID

    entries = decoder.mapping(node, where)
    if entries is INVALID:
        return INVALID
    default = decoder.scalar(entries["portDefault"][1], where) if "portDefault" in entries else 1

    def decode_listener(decoder: Any, node: Any, where: str, meta: Any) -> Any:
        return decoder.decode_fields(
            Listener, decoder.mapping(node, where), node, where, defaults={"port": default}
        )

    return decoder.with_type_decoders({Listener: decode_listener}).decode_fields(
        Group, entries, node, where
    )


def test_a_scoped_decoder_reads_a_type_differently_inside_one_block_and_records_into_its_parent() -> (
    None
):
    from l5d_twisted.config.decode import Decoder
    from l5d_twisted.config.yamldoc import parse

    doc = parse(
        "groups:\n- portDefault: 7\n  listeners: [{}, {port: 9}]\n- listeners: [{}]\n"
        "- portDefault: 8\n  listeners: [{port: -1}]\nloose: [{}]\n",
        "c.yaml",
    )
    decoder = Decoder(doc, {Group: _decode_group})
    decoder.decode(Groups, doc.root, "")
    assert [str(e) for e in decoder.errors] == [
        "c.yaml:6: groups[2].listeners[0].port: expected an integer >= 0, got -1"
    ]
    values = decoder.values
    assert [values[f"groups[0].listeners[{i}]"].port for i in (0, 1)] == [7, 9]
    assert values["groups[1].listeners[0]"].port == 1  # the next block: not the previous one's
    assert values["loose[0]"].port == 1  # outside any group: the plain reading
    assert decoder.type_decoders.keys() == {Group}  # the parent's table is untouched
