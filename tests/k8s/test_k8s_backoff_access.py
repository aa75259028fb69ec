"""Backoff growth/jitter/reset and where the API is found (proxy, in-cluster, default)."""

from __future__ import annotations

import random

from l5d_twisted.k8s.access import resolve_access
from l5d_twisted.k8s.backoff import JitteredBackoff


def test_backoff_grows_to_cap_with_jitter_and_resets():
    backoff = JitteredBackoff(random.Random(1), base_s=0.1, max_s=2.0)
    delays = [backoff.next_delay() for _ in range(12)]
    assert all(0.1 <= d <= 2.0 for d in delays)
    assert max(delays[6:]) > 0.5  # the ceiling has grown
    assert len(set(delays)) == len(delays)  # jittered, not lockstep
    backoff.reset()
    assert backoff.next_delay() == 0.1


def test_explicit_host_port_is_a_plain_http_proxy(tmp_path):
    access = resolve_access(
        "127.0.0.5", 8111, {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, str(tmp_path)
    )
    assert access.base_url == "http://127.0.0.5:8111" and not access.in_cluster


def test_in_cluster_when_env_and_service_account_exist(tmp_path):
    (tmp_path / "token").write_text("secret-token\n")
    (tmp_path / "ca.crt").write_text("---")
    access = resolve_access(
        None,
        None,
        {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "6443"},
        str(tmp_path),
    )
    assert access.base_url == "https://10.96.0.1:6443" and access.in_cluster
    assert access.bearer_token() == "secret-token"
    assert access.ca_file == str(tmp_path / "ca.crt")


def test_default_is_kubectl_proxy_on_localhost(tmp_path):
    assert resolve_access(None, None, {}, str(tmp_path)).base_url == "http://localhost:8001"
    # env without the service account files is not enough
    assert (
        resolve_access(None, None, {"KUBERNETES_SERVICE_HOST": "10.96.0.1"}, str(tmp_path)).base_url
        == "http://localhost:8001"
    )
