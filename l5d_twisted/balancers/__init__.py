"""Load balancers (``client.loadBalancer.kind``): ``p2c`` (default), ``ewma``, ``aperture``,
``heap``, ``roundRobin``.  ``base`` is the contract, ``nodes`` what they share (the live node
set, draining, fail-open, ``loadbalancer/*`` stats); each kind is one module."""
