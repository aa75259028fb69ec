"""A small blocking client of namerd's HTTP interface, for ``l5d-twisted dtab``.

It speaks to any namerd (linkerd 1's or ``l5d-twisted namerd``) the way namerctl did:
``GET /api/1/dtabs``, ``GET/POST/PUT/DELETE /api/1/dtabs/<ns>``, the version in ``ETag``
and ``If-Match``.  Failures raise :class:`NamerdRefused` (namerd answered with an error
status; ``status`` and namerd's message) or :class:`NamerdUnreachable`.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

DEFAULT_BASE_URL = "http://127.0.0.1:4180"
# Longest answer read from namerd (a dtab list or one dtab).
MAX_ANSWER_BYTES = 4 * 1024 * 1024


class NamerdError(Exception):
    pass


class NamerdRefused(NamerdError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}" if message else str(status))
        self.status = status
        self.message = message


class NamerdUnreachable(NamerdError):
    pass


@dataclass(frozen=True)
class Fetched:
    """A dtab as namerd served it: its rules (JSON list) and version (``ETag``)."""

    dentries: list[dict[str, str]]
    version: str | None


def check_base_url(url: str) -> str | None:
    """Why ``url`` cannot be namerd's base URL (None if it can)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return f"expected a URL such as {DEFAULT_BASE_URL}, got {url!r}"
    return None


class NamerdClient:
    def __init__(self, base_url: str, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    def list(self) -> list[str]:
        _, _, body = self._call("GET", "/api/1/dtabs", headers={"Accept": "application/json"})
        names = _json(body)
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise NamerdError("namerd's list of dtabs is not a JSON list of names")
        return names

    def get(self, ns: str) -> Fetched:
        _, headers, body = self._call(
            "GET", self._dtab_path(ns), headers={"Accept": "application/json"}
        )
        dentries = _json(body)
        if not isinstance(dentries, list):
            raise NamerdError("namerd's dtab is not a JSON list of rules")
        return Fetched(dentries, headers.get("etag"))

    def create(self, ns: str, body: bytes, content_type: str) -> str | None:
        _, headers, _ = self._call(
            "POST", self._dtab_path(ns), body, {"Content-Type": content_type}
        )
        return headers.get("etag")

    def update(self, ns: str, body: bytes, content_type: str, version: str | None) -> str | None:
        headers = {"Content-Type": content_type}
        if version is not None:
            headers["If-Match"] = version
        _, answer, _ = self._call("PUT", self._dtab_path(ns), body, headers)
        return answer.get("etag")

    def delete(self, ns: str) -> None:
        self._call("DELETE", self._dtab_path(ns))

    # --- internals ---------------------------------------------------------------------
    @staticmethod
    def _dtab_path(ns: str) -> str:
        return "/api/1/dtabs/" + quote(ns, safe="")

    def _call(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(
            self.base_url + path, data=body, method=method, headers=headers or {}
        )
        # namerd is often on loopback or inside the cluster: no proxy from the environment
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=self.timeout_s) as rsp:
                answer = rsp.read(MAX_ANSWER_BYTES + 1)
                if len(answer) > MAX_ANSWER_BYTES:
                    raise NamerdError(f"namerd's answer is larger than {MAX_ANSWER_BYTES} bytes")
                return rsp.status, _lower(rsp.headers.items()), answer
        except urllib.error.HTTPError as e:
            message = e.read(4096).decode("utf-8", "replace").strip()
            raise NamerdRefused(e.code, message) from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise NamerdUnreachable(f"cannot reach namerd at {self.base_url}: {reason}") from None


def _lower(items: Any) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in items}


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError as e:
        raise NamerdError(f"namerd's answer is not JSON: {e}") from None
