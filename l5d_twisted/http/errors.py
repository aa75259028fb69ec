"""The HTTP response a failure becomes.

A :class:`~l5d_twisted.errors.MeshError` keeps its own status; anything else is a 502.  The
response carries ``l5d-err`` (the URL-encoded message, so any text fits in one header line),
a ``text/plain`` body (``error.body()``, which may say more than the header), and
``l5d-retryable: true`` when the request provably never reached a server.  ``Via`` is the
router's business, not added here.
"""

from __future__ import annotations

from urllib.parse import quote

from twisted.python.failure import Failure

from l5d_twisted.errors import MeshError
from l5d_twisted.http.body import BufferedBody
from l5d_twisted.http.message import Headers, Response
from l5d_twisted.request_context import ERROR

L5D_ERR = b"l5d-err"
L5D_RETRYABLE = b"l5d-retryable"
_MAX_HEADER_MESSAGE = 2000


def encode_err_header(message: str) -> bytes:
    """URL-encode ``message`` for ``l5d-err`` (spaces as %20; urllib.parse.unquote reverses it)."""
    return quote(message[:_MAX_HEADER_MESSAGE], safe="/:,;=()[]'@!$*").encode("ascii")


def error_response(error: BaseException | Failure) -> Response:
    """Render a failure the way linkerd 1 did."""
    if isinstance(error, Failure):
        error = error.value if error.value is not None else Exception("unknown failure")
    if isinstance(error, MeshError):
        status = error.status
        message = error.message
        text = error.body()
        retryable = error.retryable
    else:
        status = 502
        message = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        text = message + "\n"
        retryable = False
    headers = Headers(
        [
            (L5D_ERR, encode_err_header(message)),
            (b"Content-Type", b"text/plain; charset=utf-8"),
        ]
    )
    if retryable:
        headers.add(L5D_RETRYABLE, b"true")
    response = Response(status, headers, BufferedBody(text.encode("utf-8", "replace")))
    response.ctx[ERROR] = error
    return response
