"""Interpreters other than the in-process one (``naming.interpreter``).

* :mod:`.namerd_http`: ``io.l5d.namerd.http``, names bound by namerd over its HTTP API
  (:mod:`.namerd_client` talks to it, :mod:`.namerd_json` reads its documents).
"""
