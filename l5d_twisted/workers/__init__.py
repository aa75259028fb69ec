"""``workers: N``: N reactor processes serving one config's routers, under one admin server.

* :mod:`.cpus`: ``workers: auto``, the CPUs a container may use (cgroup limit, affinity);
* :mod:`.supervisor`: the process that was started: spawns and restarts the workers, serves
  the admin port (:mod:`.admin`), drains them all on SIGTERM;
* :mod:`.worker`: one worker: the mesh's routers with ``SO_REUSEPORT``, no admin server;
* :mod:`.control`: the private channel between the two (JSON frames on a socketpair).

How the metrics of the workers merge into one view: :mod:`l5d_twisted.telemetry.merged`.
Operators' view: docs/operations.md, "Workers".
"""
