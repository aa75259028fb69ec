"""linkerd 1's configuration, key by key: what l5d-twisted does with each (issue 12).

The specification is linkerd 1's own config reference (the linkerd repository's
``linkerd/docs/*.md``: routers, protocol-http, servers, clients, services, namers,
interpreters, transformers, telemetry, admin, tls, load balancers, failure accrual,
retries, response classifiers).  :data:`KEYS` maps every key and plugin kind of it (for
the http protocol, and every plugin family the project has) to a :class:`Mark`:

* ``supported``: accepted with linkerd 1's meaning and default;
* ``differs``: accepted, with a difference the mark says;
* ``not-yet``: linkerd 1 configuration l5d-twisted does not support yet; ``check`` refuses
  it by name (:func:`refusal`), never as an unknown key;
* ``l5d-twisted``: not in linkerd 1's reference, this project's own key.

The one table drives both the refusals (``config.decode`` and ``config.decoders`` ask
:func:`refused`) and the marks of docs/config-reference.md (``config.reference``), so the
two cannot disagree; tests hold the table to the schema (every accepted key is marked,
no refused key is accepted).

Patterns:

* a key of a config section: the section's key path with list indexes dropped, e.g.
  ``routers[].servers[].tls.certPath``; the per-prefix blocks read as the global one
  (``routers[].client.configs[3].tls`` is ``routers[].client.tls``);
* a plugin kind: ``<category>[<kind>]``, e.g. ``namer[io.l5d.consul]``; a key of that
  kind: ``namer[io.l5d.consul].host``; a key every kind of the family takes:
  ``namer[*].transformers``; a key inside such a plugin: ``loadBalancer[p2c].x.y``;
* router protocols and interpreter kinds: ``protocol[h2]``, ``interpreter[io.l5d.namerd]``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

SUPPORTED: Final = "supported"
DIFFERS: Final = "differs"
NOT_YET: Final = "not-yet"
OURS: Final = "l5d-twisted"


@dataclass(frozen=True)
class Mark:
    """What l5d-twisted does with one linkerd 1 key or kind; ``note`` says how it differs
    (``differs``), which feature is missing (``not-yet``) or what the key is (``l5d-twisted``)."""

    status: str
    note: str = ""
    # not-yet keys only: the values that mean linkerd 1's default, which l5d-twisted already
    # does (``enableProbation: false``); those are accepted, any other is refused
    defaults: tuple[bool, ...] = ()

    def text(self) -> str:
        """The mark as the config reference shows it."""
        if self.status == SUPPORTED:
            return "supported"
        if self.status == DIFFERS:
            return f"supported, differs: {self.note}"
        if self.status == NOT_YET:
            accepted = " or ".join(f"`{str(v).lower()}`" for v in self.defaults)
            also = f"; {accepted}, linkerd 1's default, is accepted" if accepted else ""
            return f"**not yet** ({self.note}){also}"
        return f"l5d-twisted only{': ' + self.note if self.note else ''}"


def _ok() -> Mark:
    return Mark(SUPPORTED)


def _differs(how: str) -> Mark:
    return Mark(DIFFERS, how)


def _not_yet(feature: str) -> Mark:
    return Mark(NOT_YET, feature)


def _ours(what: str = "") -> Mark:
    return Mark(OURS, what)


_ACCESS_LOG = "the HTTP access log"
_ANNOUNCERS = "announcers"
_H2 = "the HTTP/2 protocol"
_NAMERD = "namerd"

KEYS: Final[dict[str, Mark]] = {
    # -- top level (linkerd/docs/config.md) -----------------------------------------------
    "admin": _ok(),
    "routers": _ok(),
    "namers": _ok(),
    "telemetry": _ok(),
    "usage": _differs("accepted and ignored: l5d-twisted sends no usage data"),
    "workers": _ours("reactor processes sharing the router ports"),
    # -- admin ----------------------------------------------------------------------------
    "admin.ip": _ok(),
    "admin.port": _ok(),
    "admin.shutdownGraceMs": _ok(),
    "admin.drainPeriodMs": _ours("Envoy-style drain before the listeners close"),
    "admin.allowShutdown": _ours("POST /admin/shutdown is refused unless true"),
    "admin.socketOptions": _not_yet("socket options of the admin server"),
    "admin.httpIdentifierPort": _not_yet("the HTTP identifier debug endpoint"),
    "admin.tls": _ok(),
    "admin.tls.certPath": _ok(),
    "admin.tls.keyPath": _ok(),
    "admin.tls.intermediateCertsPath": _ok(),
    "admin.tls.caCertPath": _ok(),
    "admin.tls.requireClientAuth": _differs(
        "needs caCertPath (linkerd 1 then trusted every public CA of the JVM)"
    ),
    "admin.tls.enabled": _not_yet("the TLS enabled switch"),
    "admin.tls.protocols": _differs("TLSv1.2 and TLSv1.3 only; older versions never enabled"),
    "admin.security": _ok(),
    "admin.security.uiEnabled": _differs(
        "the ui paths are linkerd 1's list plus this dashboard's own (/index.html, /admin,"
        " /static/.*, /admin/dashboard.json, /admin/routers.json)"
    ),
    "admin.security.controlEnabled": _ok(),
    "admin.security.diagnosticsEnabled": _ok(),
    "admin.security.pathWhitelist": _differs("Python regular expressions (Java's in linkerd 1)"),
    "admin.security.pathBlacklist": _differs("Python regular expressions (Java's in linkerd 1)"),
    "admin.workerThreads": _differs(
        "bounds the metrics renders worked on at once (the reactor serves the admin)"
    ),
    # -- routers (routers.md, protocol-http.md) --------------------------------------------
    "routers[].protocol": _ok(),
    "protocol[http]": _ok(),
    "protocol[h2]": _not_yet(_H2),
    "protocol[thrift]": _not_yet("the Thrift protocol"),
    "protocol[thriftmux]": _not_yet("the ThriftMux protocol"),
    "protocol[mux]": _not_yet("the Mux protocol"),
    "routers[].label": _ok(),
    "routers[].servers": _ok(),
    "routers[].dtab": _ok(),
    "routers[].dstPrefix": _ok(),
    "routers[].identifier": _ok(),
    "routers[].interpreter": _ok(),
    "routers[].client": _ok(),
    "routers[].service": _ok(),
    "routers[].bindingTimeoutMs": _ok(),
    "routers[].bindingCache": _ok(),
    "routers[].announcers": _not_yet(_ANNOUNCERS),
    "routers[].originator": _ok(),
    "routers[].experimental": _ok(),
    "routers[].maxHeadersKB": _ok(),
    "routers[].maxInitialLineKB": _ok(),
    "routers[].maxRequestKB": _ours("largest buffered request body (older linkerd 1 releases)"),
    # accepted until issue 12 and never used (responses are always streamed here); linkerd 1
    # itself dropped it in 1.6.4
    "routers[].maxResponseKB": _not_yet("a bound on buffered response bodies"),
    "routers[].streamingEnabled": _differs(
        "false buffers request bodies (up to maxRequestKB); responses are streamed either way"
    ),
    "routers[].maxCallDepth": _ours("linkerd 1 sets it per server (servers[].maxCallDepth)"),
    "routers[].maxMetricScopes": _ours("bounds the metric scopes clients can create"),
    "routers[].httpAccessLog": _differs(
        "quotes, backslashes and non-printable bytes in logged fields are escaped as Apache 2 "
        "does (linkerd 1 wrote them raw); lines are written by a thread, dropped and counted "
        "beyond 10,000 waiting"
    ),
    "routers[].httpAccessLogRollPolicy": _differs(
        "a roll policy other than never needs workers: 1 (each worker would roll the shared file)"
    ),
    "routers[].httpAccessLogAppend": _ok(),
    "routers[].httpAccessLogRotateCount": _ok(),
    "routers[].streamAfterContentLengthKB": _differs(
        "unset, requests up to 8 KB and responses up to 64 KB are buffered (linkerd 1: 5 KB); "
        "set, the threshold of both (requests capped by maxRequestKB)"
    ),
    "routers[].maxErrResponseKB": _not_yet("a bound on error response bodies"),
    "routers[].compressionLevel": _differs(
        "gzip only (Netty also offered deflate); a stream is flushed chunk by chunk"
    ),
    "routers[].tracePropagator": _not_yet("trace propagators"),
    # bindingCache
    "routers[].bindingCache.paths": _differs("default 10,000 (linkerd 1: 1,000)"),
    "routers[].bindingCache.trees": _differs(
        "default 10,000 (linkerd 1: 1,000); bound trees live in the routes, not a cache apart"
    ),
    "routers[].bindingCache.bounds": _differs(
        "default 10,000 (linkerd 1: 1,000); bound names live in the clients, not a cache apart"
    ),
    "routers[].bindingCache.clients": _differs("default 10,000 (linkerd 1: 1,000)"),
    "routers[].bindingCache.idleTtlSecs": _ok(),
    # -- servers --------------------------------------------------------------------------
    "routers[].servers[].port": _ok(),
    "routers[].servers[].ip": _ok(),
    "routers[].servers[].clearContext": _ok(),
    "routers[].servers[].maxConcurrentRequests": _ok(),
    "routers[].servers[].tls": _ok(),
    "routers[].servers[].socketOptions": _ok(),
    "routers[].servers[].requestDtab": _ours("what a client's own dtab may do"),
    "routers[].servers[].maxConnections": _ours("connections open at once"),
    "routers[].servers[].requestBodyIdleTimeoutMs": _ours("slow request bodies are cut"),
    "routers[].servers[].minRequestBodyBytesPerSec": _ours("slow request bodies are cut"),
    "routers[].servers[].announce": _not_yet(_ANNOUNCERS),
    "routers[].servers[].serverSession": _not_yet("server session idle and life times"),
    "routers[].servers[].addForwardedHeader": _differs(
        "all Forwarded fields are joined into one with the new element last (linkerd 1 added "
        "a second field line: the same meaning); a host that is not a token is quoted"
    ),
    "routers[].servers[].addForwardedHeader.by": _ok(),
    "routers[].servers[].addForwardedHeader.for": _ok(),
    "routers[].servers[].addForwardedHeader.by.kind": _ok(),
    "routers[].servers[].addForwardedHeader.by.label": _ok(),
    "routers[].servers[].addForwardedHeader.for.kind": _ok(),
    "routers[].servers[].addForwardedHeader.for.label": _ok(),
    "routers[].servers[].timestampHeader": _not_yet("the timestamp header"),
    "routers[].servers[].maxCallDepth": _not_yet(
        "maxCallDepth per server; routers[].maxCallDepth sets it for the router"
    ),
    "routers[].servers[].requestDtab.enabled": _ours(),
    "routers[].servers[].requestDtab.allowAddresses": _ours(),
    "routers[].servers[].socketOptions.noDelay": _ok(),
    "routers[].servers[].socketOptions.reuseAddr": _ok(),
    "routers[].servers[].socketOptions.reusePort": _ok(),
    "routers[].servers[].socketOptions.keepAlive": _ok(),
    "routers[].servers[].socketOptions.readTimeoutMs": _not_yet("socket read timeouts"),
    "routers[].servers[].socketOptions.writeTimeoutMs": _not_yet("socket write timeouts"),
    "routers[].servers[].socketOptions.backlog": _not_yet("the listen backlog"),
    "routers[].servers[].tls.certPath": _ok(),
    "routers[].servers[].tls.keyPath": _ok(),
    "routers[].servers[].tls.caCertPath": _ok(),
    "routers[].servers[].tls.requireClientAuth": _differs(
        "needs caCertPath (linkerd 1 then trusted every public CA of the JVM)"
    ),
    "routers[].servers[].tls.enabled": _not_yet("the TLS enabled switch"),
    "routers[].servers[].tls.intermediateCertsPath": _ok(),
    "routers[].servers[].tls.protocols": _differs(
        "TLSv1.2 and TLSv1.3 only; older versions never enabled"
    ),
    # -- interpreter (interpreter.md) -------------------------------------------------------
    "routers[].interpreter.kind": _ok(),
    "routers[].interpreter.transformers": _ok(),
    "routers[].interpreter.experimental": _ok(),
    "routers[].interpreter.dst": _ok(),
    "routers[].interpreter.namespace": _ok(),
    "routers[].interpreter.retry": _ok(),
    "routers[].interpreter.retry.baseSeconds": _ok(),
    "routers[].interpreter.retry.maxSeconds": _ok(),
    "routers[].interpreter.tls": _ok(),
    "routers[].interpreter.tls.enabled": _ok(),
    "routers[].interpreter.tls.commonName": _ok(),
    "routers[].interpreter.tls.disableValidation": _ok(),
    "routers[].interpreter.tls.trustCertsBundle": _ok(),
    "routers[].interpreter.tls.trustCerts": _ok(),
    "routers[].interpreter.tls.clientAuth": _ok(),
    "routers[].interpreter.tls.clientAuth.certPath": _ok(),
    "routers[].interpreter.tls.clientAuth.keyPath": _ok(),
    "routers[].interpreter.tls.clientAuth.intermediateCertsPath": _ok(),
    "routers[].interpreter.tls.protocols": _differs(
        "TLSv1.2 and TLSv1.3 only; older versions never enabled"
    ),
    "interpreter[default]": _ok(),
    "interpreter[io.l5d.namerd]": _not_yet(f"the {_NAMERD} thrift interpreter"),
    "interpreter[io.l5d.namerd.http]": _ok(),
    "interpreter[io.l5d.mesh]": _not_yet(f"the {_NAMERD} mesh (gRPC) interpreter"),
    "interpreter[io.l5d.fs]": _not_yet("the dtab-file interpreter"),
    "interpreter[io.l5d.consul.interpreter]": _not_yet("the Consul dtab interpreter"),
    "interpreter[io.l5d.k8s.configMap]": _not_yet("the Kubernetes ConfigMap interpreter"),
    # -- client parameters (routers.md) -----------------------------------------------------
    "routers[].client.loadBalancer": _ok(),
    "routers[].client.failureAccrual": _ok(),
    "routers[].client.requestAttemptTimeoutMs": _ok(),
    "routers[].client.connectTimeoutMs": _ours("TCP connect timeout"),
    "routers[].client.hostConnectionPool": _ok(),
    "routers[].client.failFast": _ok(),
    "routers[].client.tls": _ok(),
    "routers[].client.requeueBudget": _ok(),
    "routers[].client.clientSession": _not_yet("client session idle and life times"),
    "routers[].client.requestAuthorizers": _not_yet("request authorizers"),
    "routers[].client.forwardClientCert": _not_yet("the x-forwarded-client-cert header"),
    "routers[].client.socketOptions": _differs(
        "set on each connection once connected (linkerd 1 set them before connecting); "
        "SO_REUSEADDR/SO_REUSEPORT then have no effect on Linux"
    ),
    "routers[].client.socketOptions.noDelay": _ok(),
    "routers[].client.socketOptions.reuseAddr": _ok(),
    "routers[].client.socketOptions.reusePort": _ok(),
    "routers[].client.socketOptions.keepAlive": _ok(),
    "routers[].client.socketOptions.readTimeoutMs": _not_yet("socket read timeouts"),
    "routers[].client.socketOptions.writeTimeoutMs": _not_yet("socket write timeouts"),
    "routers[].client.socketOptions.backlog": _not_yet("the listen backlog"),
    "routers[].client.requeueBudget.minRetriesPerSec": _ok(),
    "routers[].client.requeueBudget.percentCanRetry": _ok(),
    "routers[].client.requeueBudget.ttlSecs": _ok(),
    "routers[].client.hostConnectionPool.minSize": _ok(),
    "routers[].client.hostConnectionPool.maxSize": _ok(),
    "routers[].client.hostConnectionPool.idleTimeMs": _differs(
        "default 10 s (linkerd 1: no limit), so idle sockets to unused endpoints go away"
    ),
    "routers[].client.hostConnectionPool.maxWaiters": _ok(),
    "routers[].client.hostConnectionPool.maxIdlePerClient": _ours(
        "idle connections over all of a client's endpoints"
    ),
    "routers[].client.tls.commonName": _ok(),
    "routers[].client.tls.disableValidation": _ok(),
    "routers[].client.tls.trustCertsBundle": _ok(),
    "routers[].client.tls.clientAuth": _ok(),
    "routers[].client.tls.trustCerts": _ok(),
    "routers[].client.tls.protocols": _differs(
        "TLSv1.2 and TLSv1.3 only; older versions never enabled"
    ),
    "routers[].client.tls.enabled": _ok(),
    "routers[].client.tls.clientAuth.certPath": _ok(),
    "routers[].client.tls.clientAuth.keyPath": _ok(),
    "routers[].client.tls.clientAuth.intermediateCertsPath": _ok(),
    # -- service parameters ---------------------------------------------------------------
    "routers[].service.retries": _ok(),
    "routers[].service.totalTimeoutMs": _differs("default 15 s (linkerd 1: no timeout)"),
    "routers[].service.responseClassifier": _ok(),
    "routers[].service.retries.budget": _ok(),
    "routers[].service.retries.backoff": _ok(),
    "routers[].service.retries.budget.minRetriesPerSec": _ok(),
    "routers[].service.retries.budget.percentCanRetry": _ok(),
    "routers[].service.retries.budget.ttlSecs": _ok(),
    # -- namers (namer.md) ------------------------------------------------------------------
    "namer[*].kind": _ok(),
    "namer[*].prefix": _ok(),
    "namer[*].experimental": _differs(
        "true or false, never required (linkerd 1 required true on io.l5d.k8s.external)"
    ),
    "namer[*].transformers": _ok(),
    "namer[io.l5d.fs]": _ok(),
    "namer[io.l5d.fs].rootDir": _ok(),
    "namer[io.l5d.fs].pollIntervalMs": _ours("how often files are read where inotify is missing"),
    "namer[io.l5d.fs].maxIdleNames": _ours("names watched without a client"),
    "namer[io.l5d.k8s]": _ok(),
    "namer[io.l5d.k8s].host": _ok(),
    "namer[io.l5d.k8s].port": _ok(),
    "namer[io.l5d.k8s].labelSelector": _ok(),
    "namer[io.l5d.k8s].requestTimeoutMs": _ours(),
    "namer[io.l5d.k8s].watchTimeoutSecs": _ours(),
    "namer[io.l5d.k8s].resyncIntervalSecs": _ours(),
    "namer[io.l5d.k8s].preferEndpointSlices": _ours(),
    "namer[io.l5d.memory]": _ours("names and addresses written in the config"),
    "namer[io.l5d.memory].names": _ours(),
    "namer[io.l5d.rewrite]": _ok(),
    "namer[io.l5d.rewrite].pattern": _ok(),
    "namer[io.l5d.rewrite].name": _ok(),
    "namer[io.l5d.k8s.external]": _ok(),
    "namer[io.l5d.k8s.external].host": _ok(),
    "namer[io.l5d.k8s.external].port": _ok(),
    "namer[io.l5d.k8s.external].labelSelector": _ok(),
    "namer[io.l5d.k8s.external].requestTimeoutMs": _ours(),
    "namer[io.l5d.k8s.external].watchTimeoutSecs": _ours(),
    "namer[io.l5d.k8s.external].resyncIntervalSecs": _ours(),
    "namer[io.l5d.k8s.ns]": _not_yet("the namespaced Kubernetes namer"),
    "namer[io.l5d.k8s.istio]": _not_yet("Istio service discovery"),
    "namer[io.l5d.serversets]": _not_yet("ZooKeeper ServerSets service discovery"),
    "namer[io.l5d.consul]": _not_yet("Consul service discovery"),
    "namer[io.l5d.marathon]": _not_yet("Marathon service discovery"),
    "namer[io.l5d.dnssrv]": _not_yet("DNS SRV service discovery"),
    "namer[io.l5d.zkLeader]": _not_yet("ZooKeeper leader service discovery"),
    "namer[io.l5d.curator]": _not_yet("Curator service discovery"),
    "namer[io.l5d.rancher]": _not_yet("Rancher service discovery"),
    # -- identifiers (protocol-http.md) -----------------------------------------------------
    "identifier[io.l5d.header]": _ok(),
    "identifier[io.l5d.header].header": _ok(),
    "identifier[io.l5d.header.token]": _ok(),
    "identifier[io.l5d.header.token].header": _ok(),
    "identifier[io.l5d.methodAndHost]": _ok(),
    "identifier[io.l5d.methodAndHost].httpUriInDst": _ok(),
    "identifier[io.l5d.path]": _ok(),
    "identifier[io.l5d.path].segments": _ok(),
    "identifier[io.l5d.path].consume": _ok(),
    "identifier[io.l5d.static]": _ok(),
    "identifier[io.l5d.static].path": _ok(),
    "identifier[io.l5d.ingress]": _not_yet("the Kubernetes ingress identifier"),
    "identifier[io.l5d.k8s.istio]": _not_yet("the Istio identifier"),
    # -- transformers (transformer.md), on interpreters and namers --------------------------
    "transformer[io.l5d.localhost]": _ok(),
    "transformer[io.l5d.specificHost]": _ok(),
    "transformer[io.l5d.specificHost].host": _ok(),
    "transformer[io.l5d.port]": _ok(),
    "transformer[io.l5d.port].port": _ok(),
    "transformer[io.l5d.k8s.daemonset]": _ok(),
    "transformer[io.l5d.k8s.daemonset].namespace": _ok(),
    "transformer[io.l5d.k8s.daemonset].service": _ok(),
    "transformer[io.l5d.k8s.daemonset].port": _ok(),
    "transformer[io.l5d.k8s.daemonset].hostNetwork": _ok(),
    "transformer[io.l5d.k8s.daemonset].k8sHost": _ok(),
    "transformer[io.l5d.k8s.daemonset].k8sPort": _ok(),
    "transformer[io.l5d.k8s.localnode]": _ok(),
    "transformer[io.l5d.k8s.localnode].hostNetwork": _ok(),
    "transformer[io.l5d.replace]": _ok(),
    "transformer[io.l5d.replace].path": _ok(),
    "transformer[io.l5d.const]": _ok(),
    "transformer[io.l5d.const].path": _ok(),
    # -- load balancers (load_balancer.md) ---------------------------------------------------
    "loadBalancer[*].enableProbation": Mark(
        NOT_YET, "probation of endpoints removed by discovery", defaults=(False,)
    ),
    "loadBalancer[p2c]": _ok(),
    "loadBalancer[p2c].maxEffort": _ok(),
    "loadBalancer[ewma]": _ok(),
    "loadBalancer[ewma].maxEffort": _ok(),
    "loadBalancer[ewma].decayTimeMs": _ok(),
    "loadBalancer[aperture]": _ok(),
    "loadBalancer[aperture].maxEffort": _not_yet("maxEffort on the aperture balancer"),
    "loadBalancer[aperture].smoothWindowMs": _ok(),
    "loadBalancer[aperture].lowLoad": _ok(),
    "loadBalancer[aperture].highLoad": _ok(),
    "loadBalancer[aperture].minAperture": _ok(),
    "loadBalancer[heap]": _ok(),
    "loadBalancer[roundRobin]": _ok(),
    "loadBalancer[roundRobin].maxEffort": _not_yet("maxEffort on the roundRobin balancer"),
    # -- failure accrual (failure_accrual.md) ------------------------------------------------
    "failureAccrual[io.l5d.consecutiveFailures]": _ok(),
    "failureAccrual[io.l5d.consecutiveFailures].failures": _ok(),
    "failureAccrual[io.l5d.consecutiveFailures].backoff": _ok(),
    "failureAccrual[io.l5d.successRate]": _ok(),
    "failureAccrual[io.l5d.successRate].successRate": _ok(),
    "failureAccrual[io.l5d.successRate].requests": _ok(),
    "failureAccrual[io.l5d.successRate].backoff": _ok(),
    "failureAccrual[io.l5d.successRateWindowed]": _ok(),
    "failureAccrual[io.l5d.successRateWindowed].successRate": _ok(),
    "failureAccrual[io.l5d.successRateWindowed].window": _ok(),
    "failureAccrual[io.l5d.successRateWindowed].backoff": _ok(),
    "failureAccrual[none]": _ok(),
    # -- backoffs (retries.md) -------------------------------------------------------------
    "backoff[constant]": _ok(),
    "backoff[constant].ms": _ok(),
    "backoff[jittered]": _ok(),
    "backoff[jittered].minMs": _ok(),
    "backoff[jittered].maxMs": _ok(),
    # -- response classifiers (response_classifier.md) ---------------------------------------
    "responseClassifier[io.l5d.http.nonRetryable5XX]": _ok(),
    "responseClassifier[io.l5d.http.retryableRead5XX]": _ok(),
    "responseClassifier[io.l5d.http.retryableIdempotent5XX]": _ok(),
    "responseClassifier[io.l5d.http.retryableAll5XX]": _ok(),
    "responseClassifier[io.l5d.http.allSuccessful]": _ok(),
    "responseClassifier[io.l5d.h2.nonRetryable5XX]": _not_yet(_H2),
    "responseClassifier[io.l5d.h2.retryableRead5XX]": _not_yet(_H2),
    "responseClassifier[io.l5d.h2.retryableIdempotent5XX]": _not_yet(_H2),
    "responseClassifier[io.l5d.h2.retryableAll5XX]": _not_yet(_H2),
    "responseClassifier[io.l5d.h2.allSuccessful]": _not_yet(_H2),
    "responseClassifier[io.l5d.h2.grpc.default]": _not_yet("gRPC over HTTP/2"),
    "responseClassifier[io.l5d.h2.grpc.compliant]": _not_yet("gRPC over HTTP/2"),
    "responseClassifier[io.l5d.h2.grpc.alwaysRetryable]": _not_yet("gRPC over HTTP/2"),
    "responseClassifier[io.l5d.h2.grpc.neverRetryable]": _not_yet("gRPC over HTTP/2"),
    "responseClassifier[io.l5d.h2.grpc.retryableStatusCodes]": _not_yet("gRPC over HTTP/2"),
    # -- telemeters (telemetry.md) ---------------------------------------------------------
    "telemeter[*].experimental": _not_yet("experimental on a telemeter that is not io.l5d.statsd"),
    "telemeter[io.l5d.prometheus]": _ok(),
    "telemeter[io.l5d.prometheus].path": _ok(),
    "telemeter[io.l5d.prometheus].prefix": _ok(),
    "telemeter[io.l5d.prometheus].metricsExpiryTtlSecs": _ours("idle metric scopes expire"),
    "telemeter[io.l5d.prometheus].quantiles": _ours("quantiles exported (4 by default)"),
    "telemeter[io.l5d.influxdb]": _ok(),
    "telemeter[io.l5d.statsd]": _ok(),
    "telemeter[io.l5d.statsd].experimental": _ok(),
    "telemeter[io.l5d.statsd].prefix": _ok(),
    "telemeter[io.l5d.statsd].hostname": _ok(),
    "telemeter[io.l5d.statsd].port": _ok(),
    "telemeter[io.l5d.statsd].gaugeIntervalMs": _ok(),
    "telemeter[io.l5d.statsd].sampleRate": _ok(),
    "telemeter[io.l5d.tracelog]": _ok(),
    "telemeter[io.l5d.tracelog].sampleRate": _ok(),
    "telemeter[io.l5d.tracelog].level": _ok(),
    "telemeter[io.l5d.tracelog].host": _not_yet("the tracelog host key"),
    "telemeter[io.l5d.recentRequests]": _ok(),
    "telemeter[io.l5d.recentRequests].sampleRate": _differs("default 1.0 (linkerd 1: required)"),
    "telemeter[io.l5d.recentRequests].capacity": _ok(),
    "telemeter[io.l5d.zipkin]": _not_yet("Zipkin tracing"),
}
"""Pattern -> mark, for every linkerd 1 key and kind (and every l5d-twisted key)."""

# Kinds marked supported while their module is still being written (tests let them be
# unregistered); none now.
IN_PROGRESS: Final[frozenset[str]] = frozenset()

_INDEX = re.compile(r"\[\d+\]")
_PER_PREFIX = re.compile(r"\.(client|service)\.configs\[\]")


def pattern_of(where: str) -> str:
    """The table pattern of a config key path (``routers[0].client.configs[1].tls`` ->
    ``routers[].client.tls``)."""
    return _PER_PREFIX.sub(r".\1", _INDEX.sub("[]", where))


def mark(pattern: str) -> Mark | None:
    """The mark of a pattern (a plugin key also matches its family's ``[*]`` entry)."""
    found = KEYS.get(pattern)
    if found is not None:
        return found
    generic = _generic(pattern)
    return KEYS.get(generic) if generic is not None else None


def _generic(pattern: str) -> str | None:
    """``namer[io.l5d.fs].transformers`` -> ``namer[*].transformers``."""
    if not pattern[:1].isalpha() or "[" not in pattern:
        return None
    head, _, rest = pattern.partition("[")
    if "." in head:
        return None
    _kind, close, tail = rest.partition("].")
    return f"{head}[*].{tail}" if close else None


def refused(pattern: str) -> Mark | None:
    """The mark of a linkerd 1 key or kind that ``check`` refuses by name, else None."""
    found = mark(pattern)
    return found if found is not None and found.status == NOT_YET else None


def is_default(found: Mark, value: object) -> bool:
    """Whether ``value`` of a refused key is linkerd 1's default, which is accepted."""
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        value = value.strip().lower() == "true"  # templating tools quote what they render
    return isinstance(value, bool) and value in found.defaults


def refusal(name: str, feature: str) -> str:
    """The message of a refused key or kind (``name``: the key, or ``<family> kind <k>``)."""
    return f"{name} is linkerd 1 configuration that l5d-twisted does not support yet ({feature})"


def counts() -> dict[str, int]:
    """How many keys and kinds the table has of each status (for the closing note)."""
    out: dict[str, int] = {}
    for m in KEYS.values():
        out[m.status] = out.get(m.status, 0) + 1
    return out
