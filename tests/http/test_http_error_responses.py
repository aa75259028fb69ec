"""MeshErrors become linkerd-style responses: status, l5d-err, text body, l5d-retryable."""

from __future__ import annotations

from urllib.parse import unquote

from twisted.python.failure import Failure

from l5d_twisted import errors
from l5d_twisted.http.errors import error_response


def test_retryable_mesh_error() -> None:
    response = error_response(errors.ConnectionFailed("unable to connect to 10.0.0.1:80: refused"))
    assert response.status == 502
    assert response.headers.get(b"l5d-retryable") == b"true"
    err = response.headers.get(b"l5d-err")
    assert err is not None and unquote(err.decode()) == "unable to connect to 10.0.0.1:80: refused"
    assert b"\n" not in err and b"\r" not in err
    assert response.headers.get(b"content-type", b"").startswith(b"text/plain")  # type: ignore[union-attr]
    assert response.body.data == b"unable to connect to 10.0.0.1:80: refused\n"


def test_non_retryable_keeps_its_status_and_long_body() -> None:
    error = errors.NoHostsAvailable("Unable to route request!", explanation="/svc/x\n  neg")
    error.retryable = False
    response = error_response(Failure(error))
    assert response.status == 502
    assert b"l5d-retryable" not in response.headers
    assert response.body.data.startswith(b"Unable to route request!\n\n/svc/x")
    timeout = error_response(errors.RequestTimeout("exceeded 100ms"))
    assert timeout.status == 503


def test_multiline_unicode_message_is_one_header_line() -> None:
    response = error_response(errors.BadRequest("bad dtab:\n  /a => ü"))
    err = response.headers.get(b"l5d-err")
    assert err is not None and unquote(err.decode()) == "bad dtab:\n  /a => ü"
    assert response.status == 400


def test_unexpected_exception_is_502() -> None:
    response = error_response(ValueError("boom"))
    assert response.status == 502
    assert b"l5d-retryable" not in response.headers
    assert b"boom" in response.body.data
