"""Telemetry: the metrics tree every layer records into, and how it is exposed.

* :mod:`.stats` - the recording API (``counter``/``stat``/``gauge``/``scope``), the contract.
* :mod:`.metrics` - ``MetricsTree(clock)``: the implementation; ``tree.stats`` is the root
  receiver.  Idle ``rt/<r>/service/<s>``, ``rt/<r>/client/<id>`` and
  ``rt/<r>/server/<ip>/<port>`` scopes expire after a TTL (default 600 s; knob
  ``metricsExpiryTtlSecs`` of the ``io.l5d.prometheus`` telemeter, 0 = never) and come back
  when their handles are used again.
* :mod:`.scope_limit` - ``limited_scope(stats, kind, name, max_scopes)``: what the router
  calls for service and client scopes; beyond ``routers[].maxMetricScopes`` (default 1,000)
  live scopes, new names share ``<overflow>``, counted by ``rt/<r>/service_scope_overflow``
  and ``client_scope_overflow``.
* :mod:`.render` - exposition in small steps on a ``Cooperator`` (10 ms slices), so a
  scrape of thousands of scopes never holds the reactor for long; bodies written as the
  socket drains.
* :mod:`.histogram` - log-linear buckets; percentiles over the last 30-60 s,
  ``count``/``sum`` cumulative.
* :mod:`.filters` - ``StatsFilter(stats, classifier, clock)``: requests, success, failures
  (+ ``failures/<kind>``), pending, request_latency_ms (to the response head),
  ``status/<code>``, ``status/<N>XX``.
* :mod:`.prometheus` - linkerd 1 names (``rt:service:requests{rt=..,service=..}``, no
  ``_total``; summaries with ``quantile``, ``_count``, ``_sum``, ``_avg``) via
  prometheus-client; :mod:`.process` adds process metrics: ``process_resident_memory_bytes``,
  ``process_virtual_memory_bytes``, ``process_open_fds``, ``process_max_fds``,
  ``process_cpu_seconds_total``, ``process_start_time_seconds``,
  ``python_gc_objects_collected_total``, ``python_gc_objects_uncollectable_total``,
  ``python_gc_collections_total``, ``python_info`` and ``process_uptime_seconds``.
* :mod:`.metrics_json` - ``/admin/metrics.json`` (``rt/outgoing/service/svc/hello/requests``,
  histograms as ``.count .sum .avg .min .max .p50 .p90 .p95 .p99 .p9990 .p9999``).
* :mod:`.telemeter` - the ``Telemeter`` protocol (``admin_resources()``, ``stack_edits``,
  ``request_observer``, ``recent_requests``, ``close()``); plugins
  ``io.l5d.prometheus`` (:mod:`.prometheus_telemeter`) and ``io.l5d.recentRequests``
  (:mod:`.recent`).
"""
