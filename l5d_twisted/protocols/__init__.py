"""The protocols a router speaks, by ``routers[].protocol`` (linkerd 1's ProtocolInitializer).

A protocol is one module here registering a :class:`~l5d_twisted.protocols.base.RouterProtocol`
under its name with ``PROTOCOLS`` (``http.py`` is the first); the mesh and the router find
it by name and know nothing of any wire format.
"""
