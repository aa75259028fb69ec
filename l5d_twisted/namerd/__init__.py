"""namerd: a control plane that stores dtabs by namespace and binds names with them.

``l5d-twisted namerd CONFIG`` runs it (docs/namerd.md).  The modules, one job each:

* :mod:`.config`: namerd's config shape (``storage``, ``namers``, ``interfaces``, ``admin``)
  decoded with the project's decoder, every problem reported with its line.
* :mod:`.store`: the dtab store contract (versioned dtabs, compare-and-set writes, live
  views) and the ``io.l5d.inMemory`` storage.
* :mod:`.codec`: dtab bodies as namerd reads and writes them (JSON list of
  ``{prefix, dst}``, or dtab text), and the ``Accept`` negotiation.
* :mod:`.render`: bound trees and address sets as namerd's JSON.
* :mod:`.stream`: ``?watch=true`` responses: one line per change, latest value only while
  the client reads slowly.
* :mod:`.api`: the ``io.l5d.httpController`` HTTP interface (``/api/1/...``).
* :mod:`.server`: builds the store, namers, interpreter and listeners from a config.
* :mod:`.client`: a small blocking client of the HTTP interface for ``l5d-twisted dtab``.
"""
