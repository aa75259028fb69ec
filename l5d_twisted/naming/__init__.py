"""Naming: how a logical name such as ``/svc/hello`` becomes live addresses.

* ``path``, ``nametree``, ``addr``, ``var``: the values (paths, name trees, address sets,
  observable vars and activities).
* ``dtab`` and ``parser``: delegation tables, linkerd 1 syntax in and out.
* ``interpreter``: ``Interpreter.bind(dtab, path)``, the live bound tree; ``builtins`` and
  ``inet`` are the ``/$/`` namers; ``activity`` holds the combinators binding uses.
* ``evaluate``: a bound tree reduced to what a router sends to.
* ``explanation``: why a name resolves the way it does, as text and delegator JSON.
* ``namer``: the contracts namers and transformers meet (namers live in
  ``l5d_twisted.namers``).
"""
