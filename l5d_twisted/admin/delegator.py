"""``/delegator.json``: how a path binds on a router, with an optional override dtab.

The effective dtab is the router's dtab followed by the override (later rules win, as
with an ``l5d-dtab`` header).  Input errors raise :class:`HttpError` (400/404) with a
message saying what is wrong, and so does an override that makes binding exceed the
limits of ``naming.limits`` (as the router answers such an ``l5d-dtab`` with 400); a
failure inside naming becomes a 500 naming the error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from l5d_twisted.admin.http_error import HttpError
from l5d_twisted.admin.target import RouterView
from l5d_twisted.naming.dtab import Dtab, DtabError
from l5d_twisted.naming.limits import BindingLimitError
from l5d_twisted.naming.path import Path, PathError
from l5d_twisted.naming.var import Failed

log = Logger()


def pick_router(routers: Sequence[RouterView], label: str | None) -> RouterView:
    if not routers:
        raise HttpError(404, "no routers configured")
    if not label:
        return routers[0]
    for router in routers:
        if router.label == label:
            return router
    known = ", ".join(r.label for r in routers)
    raise HttpError(404, f"no router {label!r}; routers: {known}")


def explain(
    routers: Sequence[RouterView], label: str | None, path_text: str, dtab_text: str
) -> Deferred[dict[str, Any]]:
    router = pick_router(routers, label)
    path_text = path_text.strip()
    if not path_text:
        raise HttpError(400, "give the path to explain: ?path=/svc/<name>")
    try:
        path = Path.read(path_text)
    except PathError as e:
        raise HttpError(400, f"bad path: {e}") from None
    try:
        override = Dtab.read(dtab_text) if dtab_text.strip() else Dtab.empty()
    except DtabError as e:
        raise HttpError(400, f"bad dtab: {e}") from None

    def described(explanation: Any) -> dict[str, Any]:
        state = getattr(explanation, "state", None)
        if override and isinstance(state, Failed) and isinstance(state.error, BindingLimitError):
            raise HttpError(400, f"cannot bind {path.show()} with this dtab: {state.error}")
        body = {
            "router": router.label,
            "path": path.show(),
            "dtab": router.dtab.show(),
            "override": override.show(),
            "explanation": explanation.to_json(),
            "text": explanation.to_text(),
        }
        # io.l5d.namerd.http: where the names were bound and namerd's dtab (which the
        # explanation's dtab starts with)
        namerd = getattr(router.interpreter, "delegator_info", None)
        if namerd is not None:
            body["namerd"] = namerd()
        return body

    def failed(failure: Failure) -> Failure:
        if failure.check(HttpError):
            return failure
        log.failure("explaining {path} failed", failure, path=path.show())
        error = failure.value
        return Failure(
            HttpError(500, f"explaining {path.show()} failed: {type(error).__name__}: {error}")
        )

    # Wait (bounded) for namers to answer, so a name no route has looked up yet (say a
    # Kubernetes service) shows its addresses rather than "pending"; a plain snapshot
    # where the interpreter cannot wait.
    interpreter = router.interpreter
    settled = getattr(interpreter, "explain_settled", None)
    if settled is not None:
        d: Deferred[dict[str, Any]] = maybeDeferred(settled, router.dtab + override, path, 2.0)
    else:
        d = maybeDeferred(interpreter.explain, router.dtab + override, path)
    d.addCallbacks(described, failed)
    return d
