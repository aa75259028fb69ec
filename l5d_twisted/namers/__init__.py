"""Namers configured under ``namers:`` and reached from dtabs as ``/#/<prefix>/...``.

One module per kind: ``fs`` (``io.l5d.fs``, a directory of service files) and ``memory``
(``io.l5d.memory``, names set in the config or from Python, for tests and demos).  The
Kubernetes namer lives in ``l5d_twisted.k8s``.  Modules starting with ``_`` are helpers.
"""
