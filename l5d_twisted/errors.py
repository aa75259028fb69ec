"""Failures the mesh itself generates, and the HTTP answer each one becomes.

Every routing failure is a :class:`MeshError`.  The HTTP server turns one into a response
with the error's ``status``, an ``l5d-err`` header (URL-encoded message), a text body and,
when ``retryable`` (the request provably never reached a server), ``l5d-retryable: true``.
``kind`` names the failure in stats (``failures/<kind>``).
"""

from __future__ import annotations

from typing import Any


class MeshError(Exception):
    status = 502
    retryable = False
    kind = "MeshError"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def body(self) -> str:
        """The text body of the error response (may be longer than the header message)."""
        return self.message + "\n"


class IdentificationError(MeshError):
    status = 400
    kind = "IdentificationError"


class BadDtabHeader(MeshError):
    status = 400
    kind = "BadDtab"


class CallDepthExceeded(MeshError):
    status = 400
    kind = "MaxCallDepthExceeded"


class RoutingLoop(CallDepthExceeded):
    """The request came back to a router it already passed (its loop marker is there)."""

    kind = "RoutingLoop"


class BadRequest(MeshError):
    status = 400
    kind = "BadRequest"


class NoHostsAvailable(MeshError):
    """No address to send to: the name is negative, empty, failed or every branch gave none.

    ``explanation`` is the naming engine's explanation tree printed as text, so the body
    says why (the service name, the dtabs, and what each branch became).
    """

    status = 502
    retryable = True
    kind = "NoBrokersAvailableException"

    def __init__(self, message: str, explanation: str = "", **details: Any) -> None:
        super().__init__(message, **details)
        self.explanation = explanation

    def body(self) -> str:
        if not self.explanation:
            return self.message + "\n"
        return f"{self.message}\n\n{self.explanation.rstrip()}\n"


class BindingTimeout(MeshError):
    status = 503
    retryable = True
    kind = "BindingTimeout"


class ConnectionFailed(MeshError):
    """Could not connect: nothing was written, so the request may be sent elsewhere."""

    status = 502
    retryable = True
    kind = "ConnectionFailed"


class ConnectionReset(MeshError):
    """The upstream connection broke after (part of) the request was written."""

    status = 502
    kind = "ChannelClosedException"


class UpstreamProtocolError(MeshError):
    status = 502
    kind = "ProtocolError"


class RequestTimeout(MeshError):
    status = 503
    kind = "RequestTimeoutException"


class DeadlineExceeded(MeshError):
    status = 503
    kind = "DeadlineExceeded"


class Overloaded(MeshError):
    """maxConcurrentRequests or a pool's maxWaiters was exceeded."""

    status = 503
    retryable = True
    kind = "RejectedExecutionException"


class ClientFault(MeshError):
    """The client, not the endpoint, broke the exchange (after the request was handed on).

    Never held against the endpoint or the service: failure accrual ignores it, stats count
    it as ``client_errors`` (not ``failures``), and it is never retried or requeued.
    """

    status = 400
    kind = "ClientFault"


class Forbidden(ClientFault):
    """A request's own dtab asked for something its server does not allow (403).

    The client's doing, refused before anything was sent: a client_error in the stats, never
    held against the endpoint whose guard refused it or the service it named.
    """

    status = 403
    kind = "Forbidden"


class MalformedRequestBody(ClientFault):
    """The request body broke its framing (a bad chunk size) while it was being forwarded."""

    kind = "MalformedRequestBody"


class ClientDisconnected(ClientFault):
    """The client closed its connection before its request body was complete."""

    status = 499  # nginx's "client closed request": counted, never written to anyone
    kind = "ClientDisconnected"


class ClientTimeout(ClientFault):
    """The client sent its request body too slowly (requestBody idle timeout or minimum rate)."""

    status = 408
    kind = "ClientTimeout"


# Failures no resend can cure: the binding itself has no address (yet).
UNROUTABLE = (NoHostsAvailable, BindingTimeout)
