"""Parsing Endpoints/EndpointSlices and resolving (service, port) to ready addresses."""

from __future__ import annotations

import pytest

from l5d_twisted.k8s.objects import (
    MalformedObject,
    parse_endpoint_slice,
    parse_endpoints,
    resolve,
)


def slice_(name, service, endpoints, ports=(("http", 8080),), labels=None):
    return {
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/service-name": service, **(labels or {})},
        },
        "addressType": "IPv4",
        "ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in ports],
        "endpoints": endpoints,
    }


def ep(ip, ready=True, node="n1", pod=None, zone=None):
    out = {"addresses": [ip], "conditions": {"ready": ready}, "nodeName": node}
    if pod:
        out["targetRef"] = {"kind": "Pod", "name": pod}
    if zone:
        out["zone"] = zone
    return out


def shows(resolution):
    return sorted(a.show() for a in resolution.addresses)


def test_slice_ready_addresses_with_node_pod_zone_meta():
    shard = parse_endpoint_slice(
        slice_(
            "web-abc", "web", [ep("10.0.0.1", pod="web-1", zone="z1"), ep("10.0.0.2", ready=False)]
        )
    )
    assert shard.service == "web"
    res = resolve([shard], "http")
    assert res.exists and shows(res) == ["10.0.0.1:8080"]
    (addr,) = res.addresses
    assert addr.node_name == "n1" and addr.get("pod_name") == "web-1" and addr.get("zone") == "z1"


def test_ready_unset_counts_as_ready():
    raw = slice_("web-abc", "web", [{"addresses": ["10.0.0.3"]}])
    assert shows(resolve([parse_endpoint_slice(raw)], "http")) == ["10.0.0.3:8080"]


def test_several_slices_union_and_per_slice_ports():
    a = parse_endpoint_slice(slice_("web-a", "web", [ep("10.0.0.1")], ports=(("http", 8080),)))
    b = parse_endpoint_slice(
        slice_("web-b", "web", [ep("10.0.0.2")], ports=(("http", 9090), ("admin", 9990)))
    )
    assert shows(resolve([a, b], "http")) == ["10.0.0.1:8080", "10.0.0.2:9090"]
    assert shows(resolve([a, b], "admin")) == ["10.0.0.2:9990"]


def test_unknown_port_name_is_negative_and_number_is_used():
    shard = parse_endpoint_slice(slice_("web-a", "web", [ep("10.0.0.1")]))
    assert not resolve([shard], "grpc").exists
    assert shows(resolve([shard], "8080")) == ["10.0.0.1:8080"]
    assert shows(resolve([shard], "7000")) == ["10.0.0.1:7000"]


def test_unknown_service_negative_and_no_endpoints_empty():
    assert not resolve([], "http").exists
    empty = parse_endpoints({"metadata": {"name": "web"}})
    res = resolve([empty], "http")
    assert res.exists and res.addresses == frozenset()
    no_ready = parse_endpoint_slice(slice_("web-a", "web", [ep("10.0.0.1", ready=False)]))
    res = resolve([no_ready], "http")
    assert res.exists and res.addresses == frozenset()


def test_v1_endpoints_subsets_and_not_ready():
    shard = parse_endpoints(
        {
            "metadata": {"name": "web", "resourceVersion": "5"},
            "subsets": [
                {
                    "addresses": [
                        {
                            "ip": "10.0.1.1",
                            "nodeName": "n2",
                            "targetRef": {"kind": "Pod", "name": "web-x"},
                        }
                    ],
                    "notReadyAddresses": [{"ip": "10.0.1.2"}],
                    "ports": [{"name": "http", "port": 80}],
                }
            ],
        }
    )
    res = resolve([shard], "http")
    assert shows(res) == ["10.0.1.1:80"]
    assert next(iter(res.addresses)).node_name == "n2"


@pytest.mark.parametrize(
    "raw",
    [
        "not an object",
        {"metadata": {}},
        {
            "metadata": {"name": "x", "labels": {"kubernetes.io/service-name": "s"}},
            "endpoints": "nope",
        },
        {
            "metadata": {"name": "x", "labels": {"kubernetes.io/service-name": "s"}},
            "endpoints": [{"addresses": [3]}],
        },
        {
            "metadata": {"name": "x", "labels": {"kubernetes.io/service-name": "s"}},
            "ports": [{"port": "http"}],
        },
        {"metadata": {"name": "x"}},  # a slice without its service label
    ],
)
def test_malformed_slices_raise_clear_errors(raw):
    with pytest.raises(MalformedObject):
        parse_endpoint_slice(raw)


def test_udp_ports_and_fqdn_slices_are_ignored():
    shard = parse_endpoint_slice(slice_("dns-a", "dns", [ep("10.0.0.9")], ports=()))
    raw = slice_("dns-b", "dns", [ep("10.0.0.9")])
    raw["ports"] = [{"name": "dns", "port": 53, "protocol": "UDP"}]
    assert parse_endpoint_slice(raw).subsets[0].ports == ()
    raw["addressType"] = "FQDN"
    assert parse_endpoint_slice(raw).subsets == ()
    assert shard.subsets[0].ports == ()


def test_service_ports_map_numbers_to_names():
    from l5d_twisted.k8s.objects import parse_service, service_port_name

    svc = parse_service(
        {
            "metadata": {"name": "web"},
            "spec": {
                "ports": [
                    {"name": "http", "port": 80, "targetPort": 8080},
                    {"port": 9000, "targetPort": "admin"},
                ]
            },
        }
    )
    assert service_port_name([svc], 80) == "http"
    assert service_port_name([svc], 9000) == ""  # unnamed: matches the unnamed endpoint port
    assert service_port_name([svc], 81) is None
    with pytest.raises(MalformedObject):
        parse_service({"metadata": {"name": "web"}, "spec": {"ports": "nope"}})
