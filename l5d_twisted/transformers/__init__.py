"""Generic transformers: rewrite a bound name tree after the dtab resolved it.

``io.l5d.port``, ``io.l5d.localhost``, ``io.l5d.specificHost`` rewrite or filter each
leaf's live address set (see ``_base.LeafAddrTransformer``); ``io.l5d.replace`` and
``io.l5d.const`` swap the tree for a configured bound path.  Transformed bound ids read
``/%/<transformer prefix>/<original id>``.  The Kubernetes transformers live in
``l5d_twisted.k8s``.
"""
