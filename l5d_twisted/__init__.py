"""l5d-twisted: a linkerd 1.x style service mesh proxy on the Twisted reactor.

A request flows through small layers, each a folder of this package:

    http.server -> identifiers -> naming (dtab + namers + transformers)
        -> balancers -> http.client, wrapped in resilience and telemetry filters.
"""

__version__ = "0.1.0"
