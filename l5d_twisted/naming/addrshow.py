"""Address states as JSON and as short text, shared by explanations and namer states."""

from __future__ import annotations

from typing import Any

from l5d_twisted.naming.addr import Addr, AddrBound, Address, AddrFailed, AddrNeg, AddrPending


def sorted_addresses(addr: AddrBound) -> list[Address]:
    return sorted(addr.addresses, key=lambda a: (a.host, a.port))


def address_json(a: Address) -> dict[str, Any]:
    out: dict[str, Any] = {"ip": a.host, "port": a.port}
    if a.weight != 1.0:
        out["weight"] = a.weight
    if a.meta:
        out["meta"] = {
            k: v if isinstance(v, str | int | float | bool) or v is None else str(v)
            for k, v in a.meta
        }
    return out


def addr_json(addr: Addr) -> dict[str, Any]:
    """linkerd's delegator shape: ``{"type": "bound", "addrs": [{"ip", "port"}...]}``."""
    if isinstance(addr, AddrBound):
        return {"type": "bound", "addrs": [address_json(a) for a in sorted_addresses(addr)]}
    if isinstance(addr, AddrNeg):
        return {"type": "neg"}
    if isinstance(addr, AddrPending):
        return {"type": "pending"}
    if isinstance(addr, AddrFailed):
        return {"type": "failed", "cause": addr.reason}
    return {"type": type(addr).__name__}


def addr_text(addr: Addr) -> str:
    if isinstance(addr, AddrBound):
        if not addr.addresses:
            return "no addresses"
        parts = []
        for a in sorted_addresses(addr):
            parts.append(a.show() if a.weight == 1.0 else f"{a.show()} * {a.weight:g}")
        return ", ".join(parts)
    if isinstance(addr, AddrNeg):
        return "neg (no such name)"
    if isinstance(addr, AddrPending):
        return "pending"
    if isinstance(addr, AddrFailed):
        return f"failed: {addr.reason}"
    return repr(addr)
