"""Every transformer and the k8s namer decode from linkerd-style YAML, and bad values are
config errors that name the field."""

from __future__ import annotations

import pytest

from l5d_twisted.config import ConfigErrors, load_config
from l5d_twisted.naming.path import Path

CONFIG = """
namers:
- kind: io.l5d.k8s
  host: 127.0.0.1
  port: 8111
  labelSelector: version
routers:
- protocol: http
  dtab: /svc => /#/io.l5d.k8s/default/http;
  interpreter:
    kind: default
    transformers:
    - kind: io.l5d.port
      port: 4141
    - kind: io.l5d.localhost
    - kind: io.l5d.specificHost
      host: 10.0.0.7
    - kind: io.l5d.replace
      path: /$/inet/127.0.0.1/4141
    - kind: io.l5d.const
      path: /#/io.l5d.k8s/default/http/web
    - kind: io.l5d.k8s.daemonset
      namespace: default
      service: l5d
      port: 4141
      hostNetwork: true
    - kind: io.l5d.k8s.localnode
      hostNetwork: false
"""


def test_all_kinds_decode():
    config = load_config(CONFIG)
    (namer,) = config.namers
    assert (namer.config.host, namer.config.port, namer.config.label_selector) == (
        "127.0.0.1",
        8111,
        "version",
    )
    specs = {s.kind: s.config for s in config.routers[0].interpreter.transformers}
    assert specs["io.l5d.port"].port == 4141
    assert specs["io.l5d.specificHost"].host == "10.0.0.7"
    assert specs["io.l5d.replace"].path == Path.read("/$/inet/127.0.0.1/4141")
    assert specs["io.l5d.const"].path == Path.read("/#/io.l5d.k8s/default/http/web")
    daemonset = specs["io.l5d.k8s.daemonset"]
    assert (daemonset.namespace, daemonset.service, daemonset.port, daemonset.host_network) == (
        "default",
        "l5d",
        "4141",
        True,
    )
    assert specs["io.l5d.k8s.localnode"].host_network is False


@pytest.mark.parametrize(
    "block, where",
    [
        ("- kind: io.l5d.port\n      port: 99999", "port"),
        ("- kind: io.l5d.port", "port"),
        ("- kind: io.l5d.k8s.daemonset\n      namespace: default", "service"),
        ("- kind: io.l5d.replace\n      path: not-a-path", "path"),
    ],
)
def test_bad_transformer_config_is_a_clear_error(block, where):
    text = f"""
routers:
- protocol: http
  interpreter:
    transformers:
    {block}
"""
    with pytest.raises(ConfigErrors) as info:
        load_config(text)
    assert where in str(info.value), str(info.value)
