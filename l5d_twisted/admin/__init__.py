"""The admin server on port 9990 (:mod:`.server`): the dashboard (``/``, fed by
:mod:`.dashboard_data`, each client's endpoints read by :mod:`.endpoints`), the dtab
playground (``/delegator``), state and metrics endpoints, ``/admin/shutdown``.  It serves
an :class:`~.target.AdminTarget` (the running ``Mesh``).  Static files (HTML, JS, CSS; no
framework, no CDN) live in ``static/``.
"""
