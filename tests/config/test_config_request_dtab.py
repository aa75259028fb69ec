"""``servers[].requestDtab`` and ``servers[].clearContext`` in the config, and into the server."""

from __future__ import annotations

import pytest

from l5d_twisted.config import load_config
from l5d_twisted.config.errors import ConfigErrors


def servers(block: str) -> tuple:  # type: ignore[type-arg]
    config = load_config(
        f"""
routers:
- protocol: http
  dtab: /svc => /$/nil;
  servers:
  {block}
"""
    )
    return config.routers[0].servers  # type: ignore[no-any-return]


def test_defaults_honour_request_dtabs_without_addresses() -> None:
    (server,) = servers("- port: 4140")
    assert server.clear_context is False
    assert (server.request_dtab.enabled, server.request_dtab.allow_addresses) == (True, False)


def test_request_dtab_keys() -> None:
    (off, allow) = servers(
        "- {port: 4140, requestDtab: {enabled: false}}\n"
        "  - {port: 4141, clearContext: true, requestDtab: {allowAddresses: true}}"
    )
    assert off.request_dtab.enabled is False and off.request_dtab.allow_addresses is False
    assert (
        allow.clear_context is True
        and allow.request_dtab.enabled is True
        and allow.request_dtab.allow_addresses is True
    )


def test_a_misspelt_key_is_an_error() -> None:
    with pytest.raises(ConfigErrors, match="allowAddress"):
        servers("- {port: 4140, requestDtab: {allowAddress: true}}")
