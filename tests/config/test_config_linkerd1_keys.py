"""linkerd 1's keys (issue 12): one table (config/linkerd1_keys.py) drives the refusals of
``check`` and the marks of the config reference.

* the table and the schema agree: every accepted key is marked (and not as refused), every
  key marked supported is accepted, a kind marked supported is registered;
* every key and kind marked "not yet" is refused by name, with the exact message, exit 2,
  never as an unknown key, and alongside the config's other problems;
* the reference shows each key's mark from the table, and every refused key and kind;
* published-style linkerd 1 configs (tests/config/fixtures/linkerd1-*.yaml) get the exact
  list of refusals from a real ``l5d-twisted check``.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from l5d_twisted.cli import main
from l5d_twisted.config import ConfigErrors, load_config
from l5d_twisted.config import linkerd1_keys as keys
from l5d_twisted.config.decode import type_hints
from l5d_twisted.config.loader import IGNORED_TOP_LEVEL
from l5d_twisted.config.model import Config
from l5d_twisted.config.reference import _PLUGIN_SECTIONS, _nested, render_reference
from l5d_twisted.config.schema import yaml_key
from l5d_twisted.naming.path import Path as Path_
from l5d_twisted.registry import PROTOCOLS, load_plugins

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"

load_plugins()
REGISTRIES: dict[str, Any] = {registry.category: registry for _t, registry in _PLUGIN_SECTIONS}
REGISTRIES["protocol"] = PROTOCOLS


def ours(plugin: Any) -> bool:
    """A plugin of l5d-twisted (other tests register kinds of their own)."""
    return str(getattr(plugin.config_type, "__module__", "")).startswith("l5d_twisted")


# keys every namer kind takes, read by the namers[] decoder itself
NAMER_GENERIC = {"kind", "prefix", "experimental", "transformers"}


def _fields(cls: Any) -> list[str]:
    if not (dataclasses.is_dataclass(cls) and isinstance(cls, type)):
        return []
    return [
        yaml_key(f) for f in dataclasses.fields(cls) if f.init and not f.metadata.get("internal")
    ]


def schema_keys() -> Iterator[tuple[str, str]]:
    """(place, key) of every key the schema accepts, places as the table writes them."""
    for key in _fields(Config):
        yield "", key
    seen: set[tuple[str, type]] = set()
    queue = _nested(Config, "")
    while queue:
        name, cls = queue.pop(0)
        place = name.split(" ")[0]
        if (place, cls) in seen:
            continue
        seen.add((place, cls))
        for key in _fields(cls):
            yield place, key
        queue += _nested(cls, place)
    for category, registry in REGISTRIES.items():
        if category == "protocol":
            continue
        for plugin in filter(ours, registry):
            config_type = plugin.config_type
            if type_hints(config_type) is None:
                continue
            for key in _fields(config_type):
                yield f"{category}[{plugin.kind}]", key
            for name, cls in _nested(config_type, f"{category}[{plugin.kind}]"):
                for key in _fields(cls):
                    yield name.split(" ")[0], key


def interpreter_kinds() -> tuple[str, ...] | None:
    """The interpreter kinds the schema accepts (None if it no longer lists them)."""
    from l5d_twisted.config.model import InterpreterConfig

    field = next(f for f in dataclasses.fields(InterpreterConfig) if f.name == "kind")
    choices = field.metadata.get("choices")
    return tuple(choices) if choices is not None else None


def _join(place: str, key: str) -> str:
    return f"{place}.{key}" if place else key


def _kind_of(pattern: str) -> tuple[str, str] | None:
    """``namer[io.l5d.consul]`` -> ("namer", "io.l5d.consul"); None for a key."""
    match = re.fullmatch(r"([A-Za-z]+)\[([^\]]+)\]", pattern)
    return (match.group(1), match.group(2)) if match else None


# -- the table and the schema agree -------------------------------------------------------


def test_every_accepted_key_is_marked_and_not_as_refused() -> None:
    unmarked, refused = [], []
    for place, key in schema_keys():
        found = keys.mark(_join(place, key))
        if found is None:
            unmarked.append(_join(place, key))
        elif found.status == keys.NOT_YET:
            refused.append(_join(place, key))
    assert not unmarked, f"mark these in l5d_twisted/config/linkerd1_keys.py: {unmarked}"
    assert not refused, f"accepted now: mark them supported in linkerd1_keys.py: {refused}"


def test_every_key_marked_as_accepted_is_accepted() -> None:
    accepted = {_join(place, key) for place, key in schema_keys()}
    accepted |= set(IGNORED_TOP_LEVEL) | {f"namer[*].{k}" for k in NAMER_GENERIC}
    missing = []
    for pattern, found in keys.KEYS.items():
        if found.status == keys.NOT_YET or _kind_of(pattern) is not None:
            continue
        kind = re.match(r"([A-Za-z]+)\[([^\]*]+)\]", pattern)
        if kind and kind.group(2) not in REGISTRIES.get(kind.group(1), ()):
            continue  # a kind not registered (yet): its keys come with it
        if pattern not in accepted:
            missing.append(pattern)
    assert not missing, f"marked as accepted but the schema has no such key: {missing}"


def test_kinds_marked_as_accepted_are_registered_and_refused_ones_are_not() -> None:
    for pattern, found in keys.KEYS.items():
        kind = _kind_of(pattern)
        if kind is None or kind[1] == "*":
            continue
        family, name = kind
        if family == "interpreter":
            choices = interpreter_kinds()
            if choices is not None:
                assert (name in choices) == (found.status != keys.NOT_YET), pattern
            continue
        registered = name in REGISTRIES[family]
        if found.status == keys.NOT_YET:
            assert not registered, f"{pattern} is registered now: mark it supported"
        elif pattern not in keys.IN_PROGRESS:
            assert registered, f"{pattern} is marked {found.status} but not registered"


def test_every_registered_kind_is_marked() -> None:
    unmarked = [
        f"{family}[{plugin.kind}]"
        for family, registry in REGISTRIES.items()
        for plugin in filter(ours, registry)
        if keys.mark(f"{family}[{plugin.kind}]") is None
    ]
    assert not unmarked, f"mark these kinds in linkerd1_keys.py: {unmarked}"


def test_patterns() -> None:
    assert keys.pattern_of("routers[2].client.configs[1].tls.trustCerts") == (
        "routers[].client.tls.trustCerts"
    )
    assert keys.pattern_of("routers[0].service.configs[3].retries") == "routers[].service.retries"
    assert keys.mark("namer[io.l5d.fs].transformers") == keys.KEYS["namer[*].transformers"]
    assert (
        keys.mark("loadBalancer[ewma].enableProbation")
        == keys.KEYS["loadBalancer[*].enableProbation"]
    )
    assert keys.mark("routers[].noSuchKey") is None
    assert keys.refused("routers[].dtab") is None
    assert keys.counts()[keys.NOT_YET] == sum(
        1 for m in keys.KEYS.values() if m.status == keys.NOT_YET
    )


# -- every refused key and kind: by name, the exact message, exit 2 -----------------------

# place -> (YAML with @KEY@ where the key goes, the key path of the block that holds it)
PLACES: dict[str, tuple[str, str]] = {
    "": ("routers: [{protocol: http}]\n@KEY@: 1\n", ""),
    "admin": ("admin:\n  @KEY@: 1\nrouters: [{protocol: http}]\n", "admin"),
    "admin.tls": (
        "admin:\n  tls:\n    certPath: c.pem\n    keyPath: k.pem\n    @KEY@: 1\n"
        "routers: [{protocol: http}]\n",
        "admin.tls",
    ),
    "routers[]": ("routers:\n- protocol: http\n  @KEY@: 1\n", "routers[0]"),
    "routers[].servers[]": (
        "routers:\n- protocol: http\n  servers:\n  - port: 4140\n    @KEY@: 1\n",
        "routers[0].servers[0]",
    ),
    "routers[].servers[].socketOptions": (
        "routers:\n- servers:\n  - socketOptions:\n      @KEY@: 1\n",
        "routers[0].servers[0].socketOptions",
    ),
    "routers[].client.socketOptions": (
        "routers:\n- client:\n    socketOptions:\n      @KEY@: 1\n",
        "routers[0].client.socketOptions",
    ),
    "routers[].servers[].tls": (
        "routers:\n- servers:\n  - tls:\n      certPath: c.pem\n      keyPath: k.pem\n      @KEY@: 1\n",
        "routers[0].servers[0].tls",
    ),
    "routers[].interpreter": (
        "routers:\n- interpreter:\n    @KEY@: 1\n",
        "routers[0].interpreter",
    ),
    "routers[].client": ("routers:\n- client:\n    @KEY@: 1\n", "routers[0].client"),
    "routers[].client.tls": (
        "routers:\n- client:\n    kind: io.l5d.static\n    configs:\n    - prefix: /\n"
        "      tls:\n        commonName: x\n        @KEY@: 1\n",
        "routers[0].client.configs[0].tls",
    ),
    "routers[].client.tls.clientAuth": (
        "routers:\n- client:\n    tls:\n      commonName: x\n      clientAuth:\n"
        "        certPath: c.pem\n        keyPath: k.pem\n        @KEY@: 1\n",
        "routers[0].client.tls.clientAuth",
    ),
    "routers[].service": ("routers:\n- service:\n    @KEY@: 1\n", "routers[0].service"),
}

# plugin family -> (YAML with @KIND@ and @KEY@, the plugin block's key path, a kind it has)
FAMILIES: dict[str, tuple[str, str, str]] = {
    "namer": (
        "routers: [{protocol: http}]\nnamers:\n- kind: @KIND@\n  @KEY@: 1\n",
        "namers[0]",
        "io.l5d.memory",
    ),
    "telemeter": (
        "routers: [{protocol: http}]\ntelemetry:\n- kind: @KIND@\n  @KEY@: 1\n",
        "telemetry[0]",
        "io.l5d.prometheus",
    ),
    "identifier": (
        "routers:\n- identifier:\n    kind: @KIND@\n    @KEY@: 1\n",
        "routers[0].identifier[0]",
        "io.l5d.header",
    ),
    "loadBalancer": (
        "routers:\n- client:\n    loadBalancer:\n      kind: @KIND@\n      @KEY@: 1\n",
        "routers[0].client.loadBalancer",
        "p2c",
    ),
    "failureAccrual": (
        "routers:\n- client:\n    failureAccrual:\n      kind: @KIND@\n      @KEY@: 1\n",
        "routers[0].client.failureAccrual",
        "none",
    ),
    "responseClassifier": (
        "routers:\n- service:\n    responseClassifier:\n      kind: @KIND@\n      @KEY@: 1\n",
        "routers[0].service.responseClassifier",
        "io.l5d.http.nonRetryable5XX",
    ),
    "transformer": (
        "routers:\n- interpreter:\n    transformers:\n    - kind: @KIND@\n      @KEY@: 1\n",
        "routers[0].interpreter.transformers[0]",
        "io.l5d.localhost",
    ),
    "interpreter": (
        "routers:\n- interpreter:\n    kind: @KIND@\n    @KEY@: 1\n",
        "routers[0].interpreter",
        "default",
    ),
    "protocol": ("routers:\n- protocol: @KIND@\n  @KEY@: 1\n", "routers[0]", "http"),
}

REFUSED = sorted(p for p, m in keys.KEYS.items() if m.status == keys.NOT_YET)


def placed(pattern: str) -> tuple[str, str, str]:
    """(YAML holding the refused key or kind, the error's key path, the name it says)."""
    kind = _kind_of(pattern)
    if kind is not None:
        family, name = kind
        text, where, _default = FAMILIES[family]
        text = text.replace("@KIND@", name).replace("  @KEY@: 1\n", "  dst: /x\n")
        if family == "protocol":
            return text, f"{where}.protocol", f"protocol {name}"
        return text, f"{where}.kind", f"{family} kind {name}"
    place, _, key = pattern.rpartition(".")
    plugin = re.fullmatch(r"([A-Za-z]+)\[([^\]]+)\]", place)
    if plugin is not None:
        family, name = plugin.groups()
        text, where, default = FAMILIES[family]
        text = text.replace("@KIND@", default if name == "*" else name)
        return text.replace("@KEY@", key), _join(where, key), key
    text, where = PLACES[place]
    return text.replace("@KEY@", key), _join(where, key), key


@pytest.mark.parametrize("pattern", REFUSED)
def test_each_refused_key_and_kind_is_named_with_the_feature(
    pattern: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, where, name = placed(pattern)
    feature = keys.KEYS[pattern].note
    expected = (
        f"{where}: {name} is linkerd 1 configuration that l5d-twisted does not support yet "
        f"({feature})"
    )
    with pytest.raises(ConfigErrors) as caught:
        load_config(text, "c.yaml", source_dir=str(REPO))
    messages = [str(e).split(": ", 1)[1] for e in caught.value.errors]
    assert expected in messages, messages
    assert not any("unknown key" in m or "unknown " in m.split(" kind")[0] for m in messages), (
        messages
    )
    # and `l5d-twisted check` exits 2 saying so
    config = tmp_path / "linkerd.yaml"
    config.write_text(text)
    assert main(["check", str(config)]) == 2
    assert expected in capsys.readouterr().err


def test_a_refused_kind_is_one_problem_not_one_per_key() -> None:
    text = (
        "routers: [{protocol: http}]\nnamers:\n- kind: io.l5d.consul\n  host: localhost\n"
        "  port: 8500\n  includeTag: true\n"
    )
    with pytest.raises(ConfigErrors) as caught:
        load_config(text, "c.yaml")
    assert [str(e) for e in caught.value.errors] == [
        "c.yaml:3: namers[0].kind: namer kind io.l5d.consul is linkerd 1 configuration that "
        "l5d-twisted does not support yet (Consul service discovery)"
    ]


def test_keys_that_are_not_linkerd_1_keys_are_still_unknown_keys() -> None:
    with pytest.raises(ConfigErrors) as caught:
        load_config("routers:\n- protocol: http\n  dtabb: /a => /b\n", "c.yaml")
    assert "unknown key 'dtabb' (did you mean 'dtab'?)" in str(caught.value)
    with pytest.raises(ConfigErrors, match="unknown namer kind 'io.l5d.nope'"):
        load_config("routers: [{protocol: http}]\nnamers: [{kind: io.l5d.nope}]\n")


def _first_refused(place: str) -> str:
    return next(p.rsplit(".", 1)[1] for p in REFUSED if p.rpartition(".")[0] == place)


def test_refusals_are_listed_with_every_other_problem() -> None:
    at_router, at_client = _first_refused("routers[]"), _first_refused("routers[].client")
    text = (
        "admin: {port: 99999}\n"
        f"routers:\n- protocol: http\n  {at_router}: true\n  bindingTimeoutMs: -1\n"
        f"  client: {{requeueBudget: {{ttlSecs: 0}}, {at_client}: true}}\n"
    )
    with pytest.raises(ConfigErrors) as caught:
        load_config(text, "c.yaml")
    assert [e.path for e in caught.value.errors] == [
        "admin.port",
        f"routers[0].{at_router}",
        "routers[0].bindingTimeoutMs",
        f"routers[0].client.{at_client}",
        "routers[0].client.requeueBudget.ttlSecs",
    ]
    assert sum(REFUSAL in e.message for e in caught.value.errors) == 2


# -- the reference shows the table's marks -----------------------------------------------


def _sections(text: str) -> dict[str, list[list[str]]]:
    """Section title -> its table rows (cells, the key without backquotes)."""
    out: dict[str, list[list[str]]] = {}
    title = ""
    for line in text.splitlines():
        if line.startswith("## "):
            title = line[3:]
            out[title] = []
        elif line.startswith("| `") and title:
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            cells[0] = cells[0].strip("`")
            out[title].append(cells)
    return out


def _place_of(title: str) -> str:
    if title == "Top level":
        return ""
    for section_title, registry in _PLUGIN_SECTIONS:
        if title.startswith(section_title + ": "):
            rest = title[len(section_title) + 2 :]
            if rest == "every kind":
                return f"{registry.category}[*]"
            return f"{registry.category}[{rest.removeprefix('kind `').removesuffix('`')}]"
    return title.split(",")[0].split(" ")[0]


def test_the_reference_shows_each_keys_mark_from_the_table() -> None:
    sections = _sections(render_reference())
    shown: set[str] = set()
    for title, rows in sections.items():
        if title.startswith("linkerd 1 kinds") or "kind `test." in title:
            continue
        place = _place_of(title)
        # a section shown for several places (a retry budget, server and admin TLS) holds
        # the keys of each, with each place's mark if they differ
        places = [place]
        if not any(title.startswith(t) for t, _r in _PLUGIN_SECTIONS) and "," in title:
            places = [p.split(" ")[0] for p in title.split(", ")]
        for cells in rows:
            accepted = len(cells) == 5 and cells[1] != "—"
            texts = []
            for at in places:
                pattern = _join(at, cells[0])
                found = keys.mark(pattern)
                if found is None:
                    texts.append("not audited")
                    continue
                shown.add(pattern)
                texts.append(
                    "supported" if accepted and found.status == keys.NOT_YET else found.text()
                )
            assert "not audited" not in texts or not accepted, (title, cells)
            expected = (
                texts[0]
                if len(set(texts)) == 1
                else "; ".join(f"{at}: {text}" for at, text in zip(places, texts))
            )
            assert cells[-1].replace("\\|", "|") == expected, (title, cells)
    for pattern, found in keys.KEYS.items():
        kind = re.match(r"([A-Za-z]+)\[([^\]]+)\]", pattern)
        if _kind_of(pattern) is not None or (
            kind and kind.group(2) != "*" and kind.group(2) not in REGISTRIES[kind.group(1)]
        ):
            continue
        if pattern.startswith(("protocol[", "interpreter[")):
            continue
        assert pattern in shown, f"{pattern} ({found.text()}) is not in the reference"


def test_the_reference_lists_every_refused_kind() -> None:
    rows = _sections(render_reference().replace("| protocol |", "| `protocol` |"))
    text = render_reference()
    for pattern in REFUSED:
        kind = _kind_of(pattern)
        if kind is None or kind[1] == "*":
            continue
        family, name = kind
        assert f"| {family} | `{name}` | {keys.KEYS[pattern].note} |" in text, pattern
    assert rows  # parsed


def test_the_committed_reference_has_the_marks() -> None:
    committed = (REPO / "docs" / "config-reference.md").read_text()
    assert "| `requeueBudget` |" in committed
    refused_key = next(p for p in REFUSED if _kind_of(p) is None and "[*]" not in p)
    key = refused_key.rsplit(".", 1)[1]
    row = f"| `{key}` | — | — | — | **not yet** ({keys.KEYS[refused_key].note}) |"
    assert row in committed
    assert "| protocol | `h2` | the HTTP/2 protocol |" in committed


# -- published-style linkerd 1 configs, through a real `l5d-twisted check` -----------------

REFUSAL = "is linkerd 1 configuration that l5d-twisted does not support yet"

EXPECTED = {
    "linkerd1-servicemesh.yaml": [
        f"76: routers[2].protocol: protocol h2 {REFUSAL} (the HTTP/2 protocol)",
        f"84: routers[3].protocol: protocol h2 {REFUSAL} (the HTTP/2 protocol)",
        f"101: routers[4].identifier[0].kind: identifier kind io.l5d.ingress {REFUSAL}"
        " (the Kubernetes ingress identifier)",
    ],
    "linkerd1-daemonset-zipkin.yaml": [
        f"13: telemetry[0].kind: telemeter kind io.l5d.zipkin {REFUSAL} (Zipkin tracing)",
    ],
    "linkerd1-namerd-tuned.yaml": [
        f"6: admin.security: security {REFUSAL} (admin endpoint white/blacklists)",
        f"20: routers[0].originator: originator {REFUSAL} (originator stats)",
        f"21: routers[0].httpAccessLog: httpAccessLog {REFUSAL} (the HTTP access log)",
        f"22: routers[0].httpAccessLogRollPolicy: httpAccessLogRollPolicy {REFUSAL}"
        " (the HTTP access log)",
        f"23: routers[0].compressionLevel: compressionLevel {REFUSAL} (response compression)",
        f"25: routers[0].interpreter.kind: interpreter kind io.l5d.namerd {REFUSAL}"
        " (the namerd thrift interpreter)",
        f"31: routers[0].client.clientSession: clientSession {REFUSAL}"
        " (client session idle and life times)",
        f"35: routers[0].client.loadBalancer.enableProbation: enableProbation {REFUSAL}"
        " (probation of endpoints removed by discovery)",
        f"39: routers[0].servers[0].addForwardedHeader: addForwardedHeader {REFUSAL}"
        " (the Forwarded header)",
    ],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_published_style_configs_get_every_refusal_from_check(name: str) -> None:
    path = FIXTURES / name
    result = subprocess.run(
        [sys.executable, "-m", "l5d_twisted", "check", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result
    out = result.stdout + result.stderr
    lines = [line for line in out.splitlines() if line.startswith(str(path))]
    found = [line[len(str(path)) + 1 :] for line in lines]
    expected = [
        e
        for e in EXPECTED[name]
        # a key implemented since (by another change) is no longer refused
        if keys.refused(_expected_pattern(e)) is not None
    ]
    assert found == expected, out
    assert "Traceback" not in out and "unknown key" not in out


def _expected_pattern(line: str) -> str:
    where = line.split(": ", 2)[1]
    if where.endswith(".kind") or where.endswith(".protocol"):
        name = line.split(": ", 2)[2].split(" is ")[0]
        family, _, kind = name.rpartition(" ")
        return f"{family.split(' ')[0]}[{kind}]"
    pattern = keys.pattern_of(where)
    if ".loadBalancer." in pattern:
        return "loadBalancer[*]." + pattern.rsplit(".", 1)[1]
    return pattern


def test_a_refused_key_set_to_linkerd_1s_default_is_accepted() -> None:
    """``enableProbation: false`` is linkerd 1's default, which l5d-twisted does (removed
    endpoints leave the balancer at once); true asks for what is missing."""
    for value in ("false", '"false"', "False"):
        config = load_config(
            f"routers:\n- client:\n    loadBalancer: {{kind: ewma, enableProbation: {value}}}\n"
        )
        assert config.routers[0].client.params_for(Path_("/#/x")).load_balancer.kind == "ewma"
    for value in ("true", '"true"', "0", "no-such"):
        with pytest.raises(ConfigErrors) as caught:
            load_config(
                f"routers:\n- client:\n    loadBalancer: {{kind: p2c, enableProbation: {value}}}\n",
                "c.yaml",
            )
        assert [str(e) for e in caught.value.errors] == [
            "c.yaml:3: routers[0].client.loadBalancer.enableProbation: enableProbation "
            f"{REFUSAL} (probation of endpoints removed by discovery)"
        ], value


def test_a_namers_experimental_switch_must_be_a_bool() -> None:
    """Accepted on every namer as in linkerd 1 (none here needs it), but not any value."""
    text = "routers: [{protocol: http}]\nnamers:\n- kind: io.l5d.memory\n  experimental: %s\n"
    assert load_config(text % "true").namers[0].kind == "io.l5d.memory"
    with pytest.raises(ConfigErrors) as caught:
        load_config(text % "banana", "c.yaml")
    assert [str(e) for e in caught.value.errors] == [
        'c.yaml:4: namers[0].experimental: expected true or false, got "banana"'
    ]
