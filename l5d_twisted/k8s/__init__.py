"""Kubernetes service discovery and the DaemonSet topology.

* ``namer`` - the ``io.l5d.k8s`` namer: ``/#/io.l5d.k8s/<ns>/<port>/<service>`` -> the
  service's ready pods, with node name, pod name and zone in each address's meta.
* ``watcher`` - one list+watch per namespace (EndpointSlices, else v1 Endpoints) shared
  by every name: resumes from its resourceVersion, re-lists on 410 without flapping,
  reconnects with jittered backoff, re-lists periodically.
* ``api``/``access``/``backoff`` - treq calls on the reactor (streamed watches), where the
  API is (a kubectl proxy, or in-cluster with the service account), reconnect delays.
* ``objects`` - Endpoints/EndpointSlice/Service JSON -> a small model, and resolution.
* ``daemonset``/``localnode`` - the ``io.l5d.k8s.daemonset`` and
  ``io.l5d.k8s.localnode`` transformers, matching nodes by node name (the /24 rule of
  linkerd 1 only as a fallback).
"""
