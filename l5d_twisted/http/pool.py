"""A keep-alive connection pool to one upstream address (linkerd's ``hostConnectionPool``).

* ``max_size`` caps open plus connecting connections (``None``: unbounded); a request that
  finds none free waits in FIFO order, up to ``max_waiters`` waiting (then
  ``errors.Overloaded``, retryable).
* Idle connections are reused most-recent first (warm ones; the cold ones expire) and closed
  after ``idle_time_s`` (up to a tenth of it, at most 1 s, later), except that ``min_size``
  connections are kept.  One :class:`IdleReaper` per reactor and idle time closes them for
  every pool: one timer, however many pools (10,000 names meant 10,000 timers), visiting
  only connections that are due, in batches between which the reactor serves I/O.
* ``max_idle_per_client`` (:class:`IdleBudget`): the pools of one client keep at most that
  many idle connections between them; past it the one idle the longest is closed (this cap
  wins over ``min_size``).
* A connection comes back only when its exchange completed cleanly and keep-alive holds;
  otherwise it is closed and forgotten.
* ``close()`` fails the waiters (nothing was written: retryable), closes idle connections
  and fires when the busy ones have finished.

It is the HTTP/1 :class:`~l5d_twisted.protocols.session.SessionPool`: each session (a client
protocol) carries one exchange at a time.  Nothing in it reads HTTP.
"""

from __future__ import annotations

import ipaddress
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic

from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.endpoints import HostnameEndpoint, SSL4ClientEndpoint
from twisted.internet.error import ConnectingCancelledError
from twisted.internet.protocol import ClientFactory, Factory, Protocol, connectionDone
from twisted.python.failure import Failure

from l5d_twisted.errors import ConnectionFailed, Overloaded
from l5d_twisted.naming.addr import Address
from l5d_twisted.protocols.session import S
from l5d_twisted.telemetry.stats import StatsReceiver


class IdleBudget:
    """At most ``limit`` idle connections over all the pools that share it (one client's).

    A pool parks each connection it keeps idle here; past the limit the connection idle the
    longest, whichever endpoint's, is closed.  With p2c or ewma over 1,000 endpoints every
    endpoint ends up with a warm connection; this bounds the sockets (and the reactor's
    bookkeeping of them) a client keeps for the endpoints it is not using right now.
    Parking, taking and evicting are O(1).
    """

    __slots__ = ("limit", "_idle")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._idle: OrderedDict[Any, ConnectionPool[Any]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._idle)

    def park(self, pool: ConnectionPool[Any], conn: Any) -> None:
        self._idle[conn] = pool
        while len(self._idle) > self.limit:
            oldest, owner = self._idle.popitem(last=False)
            owner._evict(oldest)

    def unpark(self, conn: Any) -> None:
        self._idle.pop(conn, None)


class IdleReaper:
    """Closes idle connections ``idle_time_s`` after they became idle, for every pool of
    one reactor with that idle time.

    Connections are queued in the order they became idle, which is the order they are due
    (one idle time for the whole queue); taking one out is O(1).  One timer, set for the
    first due; when it fires it closes what is due, at most ``BATCH`` per reactor turn (the
    rest in the next turns, I/O in between), and the next firing is at least ``gap_s``
    later, so that connections idle since nearby moments are closed together rather than
    each with a timer of its own.  Nothing runs while nothing is idle.
    """

    # Closing an idle TCP connection costs ~40-100 us of CPU here (half of it the kernel's
    # shutdown of the socket): 64 per turn held the reactor ~5-6 ms while requests waited,
    # and 8 (0.3-0.8 ms) still showed in the latency of every request that arrived while
    # a second's worth of connections closed: names.py at 10,000 names, 3 interleaved
    # pairs, revisit p99 0.82-1.19 ms with 8 against 0.58-0.81 with 2, the cold binds of
    # round 1's second half (when its first connections idle out) +0.5-1.2 ms p99 against
    # -0.2 to +0.3 ms (bench/README.md "Sixth pass").  A turn more per 2 closes costs
    # ~15 us, while connections close only.
    BATCH = 2

    __slots__ = ("idle_time_s", "gap_s", "_reactor", "_idle", "_call", "__weakref__")

    def __init__(self, reactor: Any, idle_time_s: float) -> None:
        self.idle_time_s = idle_time_s
        self.gap_s = min(1.0, idle_time_s / 10.0)
        self._reactor = weakref.ref(reactor)  # (the registry is keyed by the reactor, weakly)
        self._idle: OrderedDict[Any, ConnectionPool[Any]] = OrderedDict()
        self._call: Any = None

    def __len__(self) -> int:
        return len(self._idle)

    def park(self, pool: ConnectionPool[Any], conn: Any) -> None:
        """``conn`` became idle now (``conn.idle_since``)."""
        self._idle[conn] = pool
        if self._call is None:
            self._schedule(conn.idle_since + self.idle_time_s)

    def unpark(self, conn: Any) -> None:
        self._idle.pop(conn, None)  # (the timer stays: it finds less to do, or nothing)

    def _schedule(self, at: float) -> None:
        reactor = self._reactor()
        if reactor is not None:
            self._call = reactor.callLater(max(at - reactor.seconds(), 0.0), self._fire)

    def _fire(self) -> None:
        reactor = self._reactor()
        if reactor is None:
            return
        self._call = _FIRING  # (a connection parked again meanwhile schedules nothing)
        now = reactor.seconds()
        cutoff = now - self.idle_time_s
        idle = self._idle
        done = 0
        while idle:
            conn = next(iter(idle))
            if conn.idle_since > cutoff:
                # the next due; connections idle since within gap_s of it go together
                self._schedule(max(conn.idle_since + self.idle_time_s, now + self.gap_s))
                return
            if done == self.BATCH:
                self._call = reactor.callLater(0, self._fire)  # the rest in the next turn
                return
            pool = idle.pop(conn)
            pool._expire(conn, now)
            done += 1
        self._call = None


_FIRING = object()

# one reaper per (reactor, idle time); a reactor that goes away (a test's clock) takes its
# reapers with it
_reapers: weakref.WeakKeyDictionary[Any, dict[float, IdleReaper]] = weakref.WeakKeyDictionary()


def idle_reaper(reactor: Any, idle_time_s: float) -> IdleReaper:
    """The reaper closing idle connections after ``idle_time_s`` on ``reactor``."""
    by_time = _reapers.get(reactor)
    if by_time is None:
        by_time = _reapers[reactor] = {}
    reaper = by_time.get(idle_time_s)
    if reaper is None:
        reaper = by_time[idle_time_s] = IdleReaper(reactor, idle_time_s)
    return reaper


@dataclass(frozen=True)
class PoolSettings:
    min_size: int = 0
    max_size: int | None = None
    idle_time_s: float = 10.0
    max_waiters: int | None = None
    max_headers_kb: int = 8
    """Largest response head (field lines) read on these connections: more is a 502."""
    max_initial_line_kb: int = 4
    """Largest response status line."""
    max_idle_per_client: int | None = None
    """Idle connections kept over all the pools built with these settings: the router builds
    one settings object per client, so this is per client (None: no cap)."""
    idle_budget: IdleBudget | None = field(init=False, compare=False, repr=False, default=None)
    socket_options: tuple[tuple[int, int, int], ...] = ()
    """``(level, option, value)`` set on each connection once connected (client socketOptions)."""
    max_buffered_response_kb: int = 64
    """Responses with a Content-Length up to this arrive whole (``BufferedBody``); larger
    and chunked ones stream (``streamAfterContentLengthKB``)."""

    max_head_bytes: int = field(init=False, compare=False, repr=False, default=0)
    """``max_headers_kb`` in bytes, ``max_line_bytes`` ``max_initial_line_kb`` and
    ``max_buffered_response_bytes`` ``max_buffered_response_kb``: computed once (ints past
    256 are objects: one per connection or endpoint client otherwise)."""
    max_line_bytes: int = field(init=False, compare=False, repr=False, default=0)
    max_buffered_response_bytes: int = field(init=False, compare=False, repr=False, default=0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_head_bytes", self.max_headers_kb * 1024)
        object.__setattr__(self, "max_line_bytes", self.max_initial_line_kb * 1024)
        object.__setattr__(
            self, "max_buffered_response_bytes", self.max_buffered_response_kb * 1024
        )
        if self.max_idle_per_client is not None:
            object.__setattr__(self, "idle_budget", IdleBudget(self.max_idle_per_client))


def _endpoint(reactor: Any, host: str, port: int, timeout: float, tls: Any = None) -> Any:
    if tls is not None:
        # connectSSL takes both connection creators (validating) and plain context factories
        return SSL4ClientEndpoint(reactor, host, port, tls, timeout=timeout)  # type: ignore[no-untyped-call, unused-ignore]  # untyped in Twisted
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return HostnameEndpoint(reactor, host.encode("idna"), port, timeout=timeout)
    return _DirectTCPEndpoint(reactor, host, port, timeout)


class _DirectTCPEndpoint:
    """Connects to an IP address with ``reactor.connectTCP``, without Twisted's endpoint
    wrappers.

    ``TCP4ClientEndpoint`` wraps the protocol for the connection's whole life (a
    ``_WrappingProtocol``, its factory and a Deferred: ~400 bytes per pooled connection,
    a pool per routed name and endpoint; issue 17) and adds a call to every read.  A
    plain TCP connection needs a stand-in only until ``makeConnection``
    (:class:`_Connecting`).  ``connect`` takes the one-shot factory the pool makes and
    returns a Deferred of the session, cancellable while connecting; a connect that times
    out or is refused fails it, as the endpoint's did.
    """

    __slots__ = ("reactor", "host", "port", "timeout")

    def __init__(self, reactor: Any, host: str, port: int, timeout: float) -> None:
        self.reactor = reactor
        self.host = host
        self.port = port
        self.timeout = timeout

    def connect(self, factory: Factory) -> Deferred[Any]:
        session = factory.buildProtocol(None)
        connecting = _DirectConnect(session)
        d: Deferred[Any] = Deferred(connecting.cancel)
        connecting.deferred = d
        self.reactor.connectTCP(self.host, self.port, connecting, timeout=self.timeout)
        return d


class _Connecting(Protocol):
    """Stands in for a session until its connection is made, then steps aside.

    In ``makeConnection`` it hands the transport to the session (``transport.protocol``,
    which Twisted's TCP transport reads at every event, so reads and the connection's end
    go to the session directly) and fires the connect's Deferred; nothing keeps it after.
    It forwards events to the session for a transport that keeps its first protocol (the
    memory transports of tests).
    """

    def __init__(self, session: Any, made: Deferred[Any]) -> None:
        self.session = session
        self._made = made

    def logPrefix(self) -> str:
        return str(self.session.__class__.__name__)

    def makeConnection(self, transport: Any) -> None:
        session = self.session
        transport.protocol = session
        session.makeConnection(transport)
        self._made.callback(session)

    def dataReceived(self, data: bytes) -> None:
        self.session.dataReceived(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.session.connectionLost(reason)


class _SpentFactory(ClientFactory):
    """What a connected connector keeps as its factory: Twisted's connector tells its
    factory when the connection is lost (``clientConnectionLost``, ``doStop``), which for
    a pooled connection is nothing anyone waits for.  One shared instance, instead of the
    factory that made each connection (an object with a ``__dict__``, ~200 bytes each)."""

    noisy = False


SPENT_FACTORY = _SpentFactory()


class _DirectConnect(ClientFactory):
    """The connector's factory: builds the stand-in once, or fails the connect."""

    noisy = False  # no "Starting factory" log line per connection

    def __init__(self, session: Any) -> None:
        self.session: Any = session
        self.deferred: Deferred[Any] | None = None
        self.connector: Any = None

    def startedConnecting(self, connector: Any) -> None:
        self.connector = connector  # (the connector calls this from connectTCP)

    def buildProtocol(self, addr: Any) -> Any:
        session, self.session = self.session, None
        d, self.deferred = self.deferred, None
        connector, self.connector = self.connector, None
        if connector is not None:
            connector.factory = SPENT_FACTORY  # connected: this factory's work is done
        if session is None or d is None:
            return None  # cancelled meanwhile: Twisted closes the connection
        return _Connecting(session, d)

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        d, self.deferred = self.deferred, None
        self.session = self.connector = None
        if d is not None:
            d.errback(reason)

    def cancel(self, d: Deferred[Any]) -> None:
        """The caller gave up while connecting (the Deferred fails with CancelledError)."""
        connector, self.connector = self.connector, None
        self.deferred = self.session = None
        if connector is not None:
            try:
                connector.stopConnecting()
            except Exception:  # already connected or failed: nothing to stop
                pass


class _OneShotFactory(Factory):
    """Builds the one connection it was given, then forgets it.

    Twisted's ``connectProtocol`` makes a class per connection whose closure holds the
    protocol: a class is always in reference cycles, so every closed upstream connection
    waited for a full garbage collection.  Forgetting the protocol once built also keeps
    it out of the connector's (cyclic) reference to this factory.
    """

    def __init__(self, protocol: Any) -> None:
        self._protocol = protocol

    def buildProtocol(self, addr: Any) -> Any:
        protocol, self._protocol = self._protocol, None
        return protocol


def _closed_factory(*_owner: Any) -> Any:
    raise ConnectionFailed("the connection pool is closed")


_NO_OWNER: Any = object()
"""A pool made without ``owner=`` calls its protocol factory with no argument (the
signature protocol plugins use, docs/architecture.md)."""


class _FewConns(list[Any]):
    """A pool's open connections while they are few: a list with a set's ``add`` and
    ``discard`` (an empty set is 216 bytes, a list of one 88, and nearly every pool of a
    node's thousands of names holds one connection; issue 17).  The pool swaps it for a
    set past :data:`_FEW` connections, where the linear ``remove`` would start to cost."""

    __slots__ = ()

    def add(self, conn: Any) -> None:
        if conn not in self:
            self.append(conn)

    def discard(self, conn: Any) -> None:
        try:
            self.remove(conn)
        except ValueError:
            pass


_FEW = 8


class ConnectionPool(Generic[S]):
    """Connections to one address; the pooled sessions are the client protocols."""

    # slotted: one pool per endpoint client, i.e. per name when thousands of names each
    # have one endpoint (issue 17)
    __slots__ = (
        "reactor",
        "address",
        "settings",
        "_protocol_factory",
        "_owner",
        "_connect_timeout_s",
        "_tls",
        "_endpoint",
        "_open",
        "_idle",
        "_connecting",
        "_waiters",
        "_reaper",
        "_closed",
        "_close_waiters",
        "_connects",
        "_connect_failures",
        "_budget",
        "_idle_capped",
        "_gauge",
        "__weakref__",
    )

    def __init__(
        self,
        reactor: Any,
        address: Address,
        settings: PoolSettings,
        protocol_factory: Callable[..., S],
        stats: StatsReceiver,
        connect_timeout_s: float,
        tls: Any = None,
        *,
        owner: Any = _NO_OWNER,
    ) -> None:
        self.reactor = reactor
        self.address = address
        self.settings = settings
        # a session is protocol_factory(owner) when an owner is given (a class and its
        # argument, not a bound method or a closure per pool: 64 bytes; issue 17), else
        # protocol_factory() as protocol plugins make theirs
        self._protocol_factory = protocol_factory
        self._owner = owner
        self._connect_timeout_s = connect_timeout_s
        self._tls = tls
        # made at the first connect: a pool whose connection stays open never needs it
        # again, and a Twisted endpoint is ~110 bytes per pool (issue 17)
        self._endpoint: Any = None
        self._open: set[S] | _FewConns = _FewConns()
        self._idle: list[S] = []
        self._connecting = 0
        # () until a request first waits (an empty deque is ~760 bytes, per pool, and most
        # pools never queue a request)
        self._waiters: deque[Deferred[S]] | tuple[()] = ()
        self._reaper = idle_reaper(reactor, settings.idle_time_s)
        self._closed = False
        self._close_waiters: list[Deferred[None]] | tuple[()] = ()
        self._connects = stats.counter("connects")
        self._connect_failures = stats.counter("connect_failures")
        self._budget = settings.idle_budget
        self._idle_capped: Any = (
            stats.counter("idle_capped_closes") if self._budget is not None else None
        )
        # (a bound method: a lambda and its cell were 200 bytes per pool)
        self._gauge: Any = stats.gauge("connections", fn=self._size_gauge)

    def _size_gauge(self) -> float:
        return float(len(self._open))

    # -- introspection -------------------------------------------------------------------

    @property
    def size(self) -> int:
        return len(self._open)

    @property
    def idle(self) -> int:
        return len(self._idle)

    @property
    def waiters(self) -> int:
        return len(self._waiters)

    @property
    def exhausted(self) -> bool:
        """No connection free and no room for another (requests would queue)."""
        return not self._idle and not self._has_room()

    def _has_room(self) -> bool:
        max_size = self.settings.max_size
        return max_size is None or len(self._open) + self._connecting < max_size

    # -- acquiring -----------------------------------------------------------------------

    def take_idle(self) -> S | None:
        idle = self._idle
        while idle:
            conn = idle.pop()
            self._reaper.unpark(conn)
            if self._budget is not None:
                self._budget.unpark(conn)
            if conn.reusable:
                return conn
            self._open.discard(conn)
        return None

    def acquire(self) -> Deferred[S]:
        if self._closed:
            return fail(ConnectionFailed(f"connection pool for {self.address.show()} is closed"))
        conn = self.take_idle()
        if conn is not None:
            return succeed(conn)
        if self._has_room():
            return self._connect()
        limit = self.settings.max_waiters
        if limit is not None and len(self._waiters) >= limit:
            return fail(
                Overloaded(f"connection pool for {self.address.show()} has {limit} waiters already")
            )
        waiter: Deferred[S] = Deferred(self._forget_waiter)
        if not isinstance(self._waiters, deque):
            self._waiters = deque()
        self._waiters.append(waiter)
        return waiter

    def _forget_waiter(self, waiter: Deferred[S]) -> None:
        if isinstance(self._waiters, deque) and waiter in self._waiters:
            self._waiters.remove(waiter)

    def _connect(self) -> Deferred[S]:
        self._connecting += 1
        endpoint = self._endpoint
        if endpoint is None:
            address = self.address
            try:
                endpoint = self._endpoint = _endpoint(
                    self.reactor, address.host, address.port, self._connect_timeout_s, self._tls
                )
            except Exception as e:  # e.g. a host name IDNA cannot encode
                self._connecting -= 1
                return fail(
                    ConnectionFailed(
                        f"unable to connect to {address.show()}: {e}", address=address.show()
                    )
                )
        owner = self._owner
        try:
            session = (
                self._protocol_factory() if owner is _NO_OWNER else self._protocol_factory(owner)
            )
        except Exception as e:  # a closed pool, or a plugin's factory failing
            self._connecting -= 1
            return fail(e)
        d: Deferred[S] = endpoint.connect(_OneShotFactory(session))

        def connected(conn: S) -> S:
            self._connecting -= 1
            self._connects.incr()
            opened = self._open
            opened.add(conn)
            if len(opened) > _FEW and type(opened) is _FewConns:
                self._open = set(opened)
            return conn

        def failed(reason: Failure) -> Any:
            self._connecting -= 1
            if isinstance(reason.value, (CancelledError, ConnectingCancelledError)):
                # the caller gave up (its client went away, a timeout): not the endpoint's
                # failure.  Twisted's endpoints fail a cancelled connect with
                # ConnectingCancelledError, which is no CancelledError: as a ConnectionFailed
                # it fed connect_failures and failure accrual, so clients that hang up
                # during the connect ejected healthy endpoints (issue 10, finding 4)
                self._serve_waiters()  # its room is free again
                raise CancelledError(f"connecting to {self.address.show()} was cancelled")
            self._connect_failures.incr()
            self._serve_waiters()
            raise ConnectionFailed(
                f"unable to connect to {self.address.show()}: {reason.getErrorMessage()}",
                address=self.address.show(),
            )

        d.addCallbacks(connected, failed)
        return d

    # -- returning -----------------------------------------------------------------------

    def release(self, conn: S) -> None:
        """An exchange on ``conn`` finished; keep it if it is reusable."""
        if self._closed or not conn.reusable:
            self._open.discard(conn)
            conn.close_idle()
            self._serve_waiters()
            self._check_closed()
            return
        if isinstance(self._waiters, deque) and self._waiters:
            self._waiters.popleft().callback(conn)
            return
        conn.idle_since = self.reactor.seconds()
        self._idle.append(conn)
        self._reaper.park(self, conn)
        if self._budget is not None:
            self._budget.park(self, conn)  # (may close this pool's or another's oldest idle one)

    def _evict(self, conn: S) -> None:
        """The client's idle budget closes ``conn``, idle here the longest of its pools."""
        try:
            self._idle.remove(conn)
        except ValueError:
            return
        self._reaper.unpark(conn)
        self._open.discard(conn)
        self._idle_capped.incr()
        conn.close_idle()

    def lost(self, conn: S) -> None:
        """``conn``'s connection closed (whatever the reason)."""
        self._open.discard(conn)
        if conn in self._idle:
            self._idle.remove(conn)
            self._reaper.unpark(conn)
            if self._budget is not None:
                self._budget.unpark(conn)
        self._serve_waiters()
        self._check_closed()

    def _serve_waiters(self) -> None:
        waiters = self._waiters
        while isinstance(waiters, deque) and waiters and self._has_room() and not self._closed:
            waiter = waiters.popleft()
            self._connect().addBoth(self._hand_to_waiter, waiter)

    def _hand_to_waiter(self, result: S | Failure, waiter: Deferred[S]) -> None:
        """A connection made for ``waiter``: to it, or to the pool if it gave up meanwhile
        (cancelled by a timeout): otherwise the connection would count against
        ``max_size`` while nobody could ever use it."""
        if not waiter.called:
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)
        elif not isinstance(result, Failure):
            self.release(result)

    def _expire(self, conn: S, now: float) -> None:
        """The reaper: ``conn`` has been idle for the idle time (and is out of its queue)."""
        if len(self._open) <= self.settings.min_size:
            # kept (minSize): looked at again one idle time from now
            conn.idle_since = now
            self._reaper.park(self, conn)
            return
        try:
            self._idle.remove(conn)  # (the oldest: at the front)
        except ValueError:
            return
        self._open.discard(conn)
        if self._budget is not None:
            self._budget.unpark(conn)
        conn.close_idle()

    # -- closing -------------------------------------------------------------------------

    def close(self) -> Deferred[None]:
        self._closed = True
        waiters, self._waiters = self._waiters, ()
        for waiter in waiters:
            waiter.errback(
                ConnectionFailed(
                    f"connection pool for {self.address.show()} closed", address=self.address.show()
                )
            )
        idle, self._idle = self._idle, []
        for conn in idle:
            self._open.discard(conn)
            self._reaper.unpark(conn)  # (the reaper and the budget hold this pool while it
            if self._budget is not None:  # has idle connections)
                self._budget.unpark(conn)
            conn.close_idle()
        # no connection is made from now on; the owner (which holds the pool) would keep
        # them in a reference cycle
        self._protocol_factory = _closed_factory
        self._owner = _NO_OWNER
        d: Deferred[None] = Deferred()
        if not isinstance(self._close_waiters, list):
            self._close_waiters = []
        self._close_waiters.append(d)
        self._check_closed()
        return d

    def _check_closed(self) -> None:
        if self._closed and not self._open and not self._connecting and self._close_waiters:
            if self._gauge is not None:
                self._gauge.remove()
                self._gauge = None
            waiting, self._close_waiters = self._close_waiters, ()
            for d in waiting:
                d.callback(None)
