"""Hypothesis strategies for attacking a running proxy: requests, framing, and dtabs.

Everything generated stays on loopback: ``/$/inet`` and ``/$/io.buoyant.rinet`` leaves
always carry a numeric 127.0.0.1 host and one of the given ports (a residual path can only
follow them), and the prefix builtins that take a host from the request
(``io.buoyant.hostportPfx``, ``porthostPfx``) are left out, so no generated dtab can turn
a client's Host into a DNS lookup or a dial outside the machine.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

SERVICES = ["a", "b", "ab", "loop", "nosuch"]
NAME = st.one_of(
    st.sampled_from(SERVICES), st.from_regex(r"[a-z0-9][a-z0-9.-]{0,8}", fullmatch=True)
)


@dataclass(frozen=True)
class Ports:
    """The loopback ports a dtab may name: the canary, the admin server, the proxy, a backend."""

    canary: int
    admin: int
    proxy: int
    backend: int

    def all(self) -> list[int]:
        return [self.canary, self.admin, self.proxy, self.backend]


def leaves(ports: Ports | None) -> st.SearchStrategy[str]:
    """Names a dtab rule may point at; with ``ports``, also loopback addresses."""
    names = [NAME.map(lambda n: f"/svc/{n}"), NAME.map(lambda n: f"/#/io.l5d.fs/{n}")]
    if ports is not None:
        port = st.sampled_from(ports.all())
        names += [
            port.map(lambda p: f"/$/inet/127.0.0.1/{p}"),
            port.map(lambda p: f"/$/io.buoyant.rinet/{p}/127.0.0.1"),
        ]
    return st.one_of(
        *names,
        st.sampled_from(
            [
                "/$/nil",
                "/$/fail",
                "~",
                "!",
                "$",
                "/$/io.buoyant.http.domainToPathPfx/svc",
                "/$/io.buoyant.http.subdomainOfPfx/x.y/svc",
                "/#/io.l5d.fs",
                "/svc",
                "/#/nosuch/x",
            ]
        ),
    )


def trees(ports: Ports) -> st.SearchStrategy[str]:
    weight = st.sampled_from(["", "1 * ", "0.5 * ", "0 * ", "3 * ", "1e9 * "])

    def extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        union = st.lists(st.tuples(weight, children), min_size=2, max_size=4).map(
            lambda parts: " & ".join(w + t for w, t in parts)
        )
        alternation = st.lists(children, min_size=2, max_size=4).map(" | ".join)
        return st.one_of(union, alternation, children.map(lambda t: f"({t})"))

    return st.recursive(leaves(ports), extend, max_leaves=12)


def prefixes() -> st.SearchStrategy[str]:
    return st.one_of(
        # "/svc" three times: a rule on the whole prefix rewrites every name, and its own
        # output again (the recursive unions of finding 1)
        st.sampled_from(
            [
                "/svc",
                "/svc",
                "/svc",
                "/svc/a",
                "/svc/b",
                "/svc/*",
                "/#/io.l5d.fs",
                "/#/io.l5d.fs/a",
                "/svc/a/b",
                "/$/inet",
                "/",
            ]
        ),
        NAME.map(lambda n: f"/svc/{n}"),
    )


def dtabs(ports: Ports) -> st.SearchStrategy[str]:
    dentry = st.tuples(prefixes(), trees(ports)).map(lambda pt: f"{pt[0]} => {pt[1]}")
    wellformed = st.lists(dentry, min_size=1, max_size=4).map(";".join)
    # near-misses: what a parser must refuse cleanly.  Mutated only where no address is
    # written: a character inserted into "127.0.0.1" could make a hostname to look up.
    no_addresses = st.lists(
        st.tuples(
            prefixes(),
            st.recursive(
                leaves(None),
                lambda c: st.lists(c, min_size=2, max_size=3).map(" & ".join),
                max_leaves=6,
            ),
        ),
        min_size=1,
        max_size=3,
    ).map(lambda ds: ";".join(f"{p} => {t}" for p, t in ds))
    broken = st.tuples(
        no_addresses,
        st.sampled_from(
            ["(", ")", "=>", "&", "|", "*", ";;", "#", "\\", "\x00", "é", "/", " => =>"]
        ),
        st.integers(0, 60),
    ).map(lambda t: t[0][: t[2]] + t[1] + t[0][t[2] :])
    return st.one_of(wellformed, wellformed, broken)


METHODS = st.one_of(
    st.sampled_from(
        [
            "GET",
            "POST",
            "PUT",
            "HEAD",
            "DELETE",
            "OPTIONS",
            "PATCH",
            "TRACE",
            "CONNECT",
            "get",
            "G ET",
            "GET\x00",
        ]
    ),
    st.from_regex(r"[A-Z]{1,10}", fullmatch=True),
)
TARGETS = st.one_of(
    st.sampled_from(
        [
            "/inspect",
            "/inspect?x=1",
            "/echo",
            "/sink",
            "/status?code=204",
            "/status?code=304",
            "/chunked?n=3",
            "/close",
            "http://a/inspect",
            "http://b/echo",
            "http://a:80/inspect",
            "https://a/inspect",
            "http://127.0.0.1/config.json",
            "*",
            "",
            "//",
            "/%00",
            "/a b",
            "/config.json",
            "/admin/ping",
            "/" + "x" * 5000,
        ]
    ),
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=30).map(
        lambda t: "/" + t
    ),
)
VERSIONS = st.sampled_from(
    ["HTTP/1.1"] * 6
    + ["HTTP/1.0", "HTTP/2.0", "HTTP/1.2", "HTTP/0.9", "http/1.1", "HTTP/1.1 x", "HTTP/11", ""]
)
HOSTS = st.one_of(
    st.sampled_from(
        SERVICES
        + [
            "a:80",
            "a:99999",
            "",
            " a",
            "a ",
            "A",
            "a.",
            "127.0.0.1",
            f"127.0.0.1:{1}",
            "../etc",
            "a/b",
            "a%2fb",
            "[::1]",
            "x" * 300,
        ]
    ),
    NAME,
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20),
)
TOKEN = st.from_regex(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,20}", fullmatch=True)
VALUE = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40),
    st.binary(max_size=20).map(lambda b: b.decode("latin-1")),
)
FRAMINGS = st.sampled_from(
    [
        "none",
        "cl",
        "cl-short",
        "cl-long",
        "cl-twice",
        "cl-differ",
        "cl-bad",
        "chunked",
        "chunked-bad",
        "chunked-ext",
        "chunked-trailer",
        "te-cl",
        "te-obfuscated",
        "te-twice",
        "te-identity",
    ]
)


@dataclass(frozen=True)
class FuzzRequest:
    raw: bytes
    split: int
    head_only: bool


def _chunked(body: bytes, bad: str = "") -> bytes:
    out = b""
    if body:
        size = b"%x" % len(body)
        if bad == "size":
            size = b"zz"
        elif bad == "ext":
            size += b";name=val;x"
        out += size + b"\r\n" + body + b"\r\n"
    trailer = b"X-T: 1\r\n" if bad == "trailer" else b""
    return out + b"0\r\n" + trailer + b"\r\n"


@st.composite
def requests(draw: st.DrawFn, ports: Ports) -> FuzzRequest:
    method = draw(METHODS)
    target = draw(TARGETS)
    version = draw(VERSIONS)
    headers: list[tuple[str, str]] = []
    for host in (
        draw(st.lists(HOSTS, min_size=0, max_size=2)) if draw(st.booleans()) else [draw(HOSTS)]
    ):
        headers.append(("Host", host))
    for _ in range(draw(st.integers(0, 2))):
        headers.append(
            (draw(st.sampled_from(["l5d-dtab", "l5d-ctx-dtab", "L5d-Dtab"])), draw(dtabs(ports)))
        )
    extra = st.one_of(
        st.tuples(
            st.sampled_from(
                [
                    "l5d-ctx-deadline",
                    "l5d-ctx-trace",
                    "l5d-sample",
                    "l5d-ctx-foo",
                    "l5d-reqid",
                    "l5d-dst-service",
                    "Via",
                    "Connection",
                    "Expect",
                    "Upgrade",
                    "Forwarded",
                    "X-Forwarded-For",
                    "Proxy-Connection",
                ]
            ),
            VALUE,
        ),
        st.tuples(
            st.just("l5d-sample"),
            st.sampled_from(["0", "1", "0.5", "-1", "nan", "inf", "1e309", "x"]),
        ),
        st.tuples(
            st.just("Connection"),
            st.sampled_from(
                ["close", "keep-alive", "upgrade", "Host", "Transfer-Encoding", "l5d-dtab"]
            ),
        ),
        st.tuples(TOKEN, VALUE),
        st.tuples(st.sampled_from(["Bad Name", "Name:", "", "\x00", "Host "]), VALUE),
    )
    headers += draw(st.lists(extra, max_size=4))
    body = draw(st.binary(max_size=300))
    framing = draw(FRAMINGS)
    payload = b""
    if framing == "none":
        pass
    elif framing.startswith("cl"):
        n = len(body)
        value = {
            "cl": str(n),
            "cl-short": str(max(0, n - 3)),
            "cl-long": str(n + 10),
            "cl-twice": str(n),
            "cl-differ": str(n),
            "cl-bad": draw(
                st.sampled_from(["+3", "-1", "0x10", "3 4", "99999999999999999999", "", "1,2"])
            ),
        }[framing]
        headers.append(("Content-Length", value))
        if framing == "cl-twice":
            headers.append(("Content-Length", str(n)))
        if framing == "cl-differ":
            headers.append(("Content-Length", str(n + 1)))
        payload = body
    else:
        te = {
            "te-obfuscated": draw(
                st.sampled_from(
                    [
                        " chunked",
                        "chunked ",
                        "Chunked",
                        "xchunked",
                        "chunked, identity",
                        "identity, chunked",
                        "chunked\t",
                        "gzip, chunked",
                    ]
                )
            ),
            "te-identity": "identity",
        }.get(framing, "chunked")
        headers.append(("Transfer-Encoding", te))
        if framing == "te-twice":
            headers.append(("Transfer-Encoding", "chunked"))
        if framing == "te-cl":
            headers.append(("Content-Length", str(draw(st.integers(0, 400)))))
        bad = {"chunked-bad": "size", "chunked-ext": "ext", "chunked-trailer": "trailer"}.get(
            framing, ""
        )
        payload = _chunked(body, bad)
    headers = draw(st.permutations(headers))
    line = " ".join(p for p in (method, target, version) if p) if version else f"{method} {target}"
    head = line + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    split = draw(st.sampled_from([0, 0, 0, 1, 7, 64]))
    return FuzzRequest(head.encode("latin-1", "replace") + payload, split, method == "HEAD")
