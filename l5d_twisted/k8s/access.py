"""Where the Kubernetes API is and how to authenticate to it.

linkerd 1 only spoke plain HTTP to a ``kubectl proxy`` sidecar (``localhost:8001``), a
sidecar its users found fragile.  We keep that default when ``host``/``port`` are given
(or nothing else is available), and otherwise talk to the API server directly from inside
the cluster with the pod's service account: the environment variables
``KUBERNETES_SERVICE_HOST``/``_PORT`` plus the token and CA files Kubernetes mounts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
DEFAULT_PROXY_HOST = "localhost"
DEFAULT_PROXY_PORT = 8001


@dataclass(frozen=True)
class ApiAccess:
    """The API's base URL; for in-cluster access also the token file and CA bundle."""

    base_url: str
    token_file: str | None = None
    ca_file: str | None = None

    @property
    def in_cluster(self) -> bool:
        return self.token_file is not None

    def bearer_token(self) -> str | None:
        """Read on each request: Kubernetes rotates projected service-account tokens."""
        if self.token_file is None:
            return None
        try:
            with open(self.token_file, encoding="utf-8") as f:
                return f.read().strip() or None
        except OSError:
            return None

    def show(self) -> str:
        return self.base_url + (" (in-cluster service account)" if self.in_cluster else "")


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def in_cluster_access(
    env: Mapping[str, str], sa_dir: str = SERVICE_ACCOUNT_DIR
) -> ApiAccess | None:
    """In-cluster access if the environment and the service account files exist."""
    host = env.get("KUBERNETES_SERVICE_HOST")
    port = env.get("KUBERNETES_SERVICE_PORT", "443")
    token = os.path.join(sa_dir, "token")
    ca = os.path.join(sa_dir, "ca.crt")
    if not host or not (os.path.isfile(token) and os.path.isfile(ca)):
        return None
    return ApiAccess(f"https://{_url_host(host)}:{port}", token_file=token, ca_file=ca)


def resolve_access(
    host: str | None,
    port: int | None,
    env: Mapping[str, str],
    sa_dir: str = SERVICE_ACCOUNT_DIR,
) -> ApiAccess:
    """An explicit host/port wins (a kubectl proxy, plain HTTP); then in-cluster; then
    linkerd 1's default ``localhost:8001``."""
    if host is None and port is None:
        cluster = in_cluster_access(env, sa_dir)
        if cluster is not None:
            return cluster
    return ApiAccess(f"http://{_url_host(host or DEFAULT_PROXY_HOST)}:{port or DEFAULT_PROXY_PORT}")
