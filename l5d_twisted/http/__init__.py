"""The HTTP/1.1 data plane wire: raw Twisted protocols over httptools, no twisted.web.

Modules, each with one job:

* ``message``: ``Request``, ``Response``, ``Headers`` (bytes, original case, lowercase lookups).
* ``body``: ``Body``, ``BufferedBody`` (replayable), ``EMPTY_BODY``.
* ``stream``: ``StreamBody`` (flows between connections with backpressure), ``read_body``.
* ``server``: ``serve_http(reactor, ip, port, service, settings, stats) -> HttpServer``
  (an ``IListeningPort`` with ``drain(grace_s)``), ``ServerSettings``.
* ``client``: ``EndpointClient(reactor, address, pool, stats, connect_timeout_s, tls=None)``,
  a ``Service`` over pooled keep-alive connections; ``PoolSettings`` (from ``pool``).
* ``errors``: ``error_response(error)``, the linkerd-style answer for a failure.
* ``tls``: ``server_tls(config)``, ``client_tls(config, common_name)`` from the config's
  ``tls`` blocks.
* ``reader``: ``MessageReader``, httptools callbacks -> head/body/end events and the head's
  bounds, for the server's requests and the client's responses.
* ``exchange``: a server connection's pipelined requests in order; ``timeouts``: its
  timeout policy (header read, idle, request body pace).
* ``hop``, ``codec``, ``fastwrite``: hop-by-hop fields, message framing (``codec.Framing``)
  and writing.
"""
