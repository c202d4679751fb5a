"""
Test helpers for msgr2tx and its users, with no sockets and no reactor.

L{CorePair} connects a client and a server L{Msgr2Connection} in memory and
answers their auth events with given handlers, so a whole handshake runs in
a plain function call.
"""

from typing import List, Optional

from msgr2tx.auth import AuthDone, AuthMore, AuthReject, AuthRequestInfo
from msgr2tx.core import events as E
from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.connection import Msgr2Connection, Role, State
from msgr2tx.core.encoding import AddrType, EntityType, entity_addr_t, entity_addrvec_t
from msgr2tx.core.session import GlobalSeq, Session, SessionTable

SERVER_ADDR = entity_addr_t.parse("v2:127.0.0.1:3300/0")
CLIENT_ADDR = entity_addr_t.parse("v2:127.0.0.1:40000/0")


class CorePair:
    """
    A client and a server core wired back to back.

    @ivar client_events: every event the client core produced.
    @ivar server_events: likewise for the server.
    @ivar wire_c2s: every byte the client sent, in order.
    """

    def __init__(self, client_auth, server_auth, client_config: Optional[ConnectionConfig] = None,
                 server_config: Optional[ConnectionConfig] = None, client_session: Optional[Session] = None,
                 sessions: Optional[SessionTable] = None, client_global_seqs: Optional[GlobalSeq] = None,
                 server_global_seqs: Optional[GlobalSeq] = None, client_nonce: int = 1234,
                 client_cookie: int = 0x1111, server_cookie: int = 0x2222) -> None:
        self.client_auth = list(client_auth)
        self.server_auth = list(server_auth)
        self.client = Msgr2Connection(
            client_config or ConnectionConfig(), Role.CLIENT, CLIENT_ADDR, SERVER_ADDR,
            session=client_session, nonce=client_nonce, cookie=client_cookie,
            global_seqs=client_global_seqs)
        self.server = Msgr2Connection(
            server_config or ConnectionConfig(entity_type=EntityType.MON, entity_num=0),
            Role.SERVER, SERVER_ADDR, CLIENT_ADDR,
            server_addrs=entity_addrvec_t((SERVER_ADDR,)), cookie=server_cookie,
            sessions=sessions, global_seqs=server_global_seqs)
        # what an AUTH_BAD_METHOD refusing a fast reconnect offers instead
        self.server.auth_offer = (tuple(h.method for h in self.server_auth), tuple(self.server.config.modes))
        self.client_events: List[E.Event] = []
        self.server_events: List[E.Event] = []
        self.wire_c2s = bytearray()
        self.wire_s2c = bytearray()
        self._client_handler = None
        self._auth_state: dict = {}

    def start(self) -> None:
        self.client.initiate()
        self.server.initiate()

    def pump(self, max_rounds: int = 100, c2s: bool = True, s2c: bool = True) -> None:
        """
        Move bytes both ways until neither side has anything to send.  With
        C{c2s} or C{s2c} false, bytes in that direction are lost (a link
        that died one way before the peers noticed).
        """
        for _ in range(max_rounds):
            moved = False
            out = b"".join(self.client.data_to_send())
            if out and c2s and self.server.state is not State.CLOSED:
                moved = True
                self.wire_c2s += out
                self._handle(self.server, self.server.receive_data(out), self.server_events)
            out = b"".join(self.server.data_to_send())
            if out and s2c and self.client.state is not State.CLOSED:
                moved = True
                self.wire_s2c += out
                self._handle(self.client, self.client.receive_data(out), self.client_events)
            if not moved:
                return
        raise AssertionError("the pair did not settle in %d rounds" % max_rounds)

    def break_link(self) -> None:
        """Both ends see the TCP connection drop."""
        self.client.connection_lost()
        self.server.connection_lost()

    def handshake(self) -> None:
        self.start()
        self.pump()

    def _handle(self, conn, events, log) -> None:
        while events:
            log.extend(events)
            for event in events:
                self._answer(conn, event)
            events = conn.receive_data()

    def _answer(self, conn, event) -> None:
        if isinstance(event, E.AuthRequestNeeded):
            handlers = self.client_auth
            if event.allowed_methods is not None:
                handlers = [h for h in handlers if h.method in event.allowed_methods
                            and h.method != event.rejected_method]
            if not handlers:
                return
            self._client_handler = h = handlers[0]
            modes = [m for m in conn.config.modes if m in h.allowed_modes]
            conn.send_auth_request(h.method, h.build_request(conn.peer_entity_type), modes)
        elif isinstance(event, E.AuthReplyMoreReceived):
            conn.send_auth_request_more(self._client_handler.handle_reply_more(event.payload))
        elif isinstance(event, E.AuthDoneReceived):
            expires = getattr(self._client_handler, "session_expires", None)
            session_key, secret = self._client_handler.handle_done(event.global_id, event.con_mode, event.payload)
            conn.auth_finish(session_key, secret, expires=expires() if expires is not None else 0.0)
        elif isinstance(event, E.AuthRequestReceived):
            handler = next((h for h in self.server_auth if h.method == event.method), None)
            if handler is None:
                conn.send_auth_bad_method(event.method, -95, [h.method for h in self.server_auth],
                                          list(conn.config.modes))
                return
            mode = conn.pick_mode(event.preferred_modes, handler.allowed_modes)
            if not mode:
                conn.send_auth_bad_method(event.method, -95, [h.method for h in self.server_auth],
                                          list(conn.config.modes))
                return
            result = handler.handle_request(AuthRequestInfo(
                event.method, mode, event.payload, event.more, conn.peer_entity_type, self._auth_state))
            if isinstance(result, AuthDone):
                conn.send_auth_done(result.global_id, mode, result.payload, result.session_key,
                                    result.connection_secret, expires=result.expires)
            elif isinstance(result, AuthMore):
                conn.send_auth_reply_more(result.payload)
            elif isinstance(result, AuthReject):
                conn.send_auth_bad_method(event.method, result.result, [h.method for h in self.server_auth],
                                          list(conn.config.modes))

    def events_of(self, side: str, kind):
        events = self.client_events if side == "client" else self.server_events
        return [e for e in events if isinstance(e, kind)]


__all__ = ["CorePair", "SERVER_ADDR", "CLIENT_ADDR", "AddrType", "Interceptor", "Breakpoint", "Action",
           "FAULT", "BLOCK", "STALL", "FaultProxy"]


# ---- breakpoints --------------------------------------------------------------

class Action:
    """What a breakpoint does: C{fault}, C{block} or C{stall} (for C{seconds})."""

    __slots__ = ("kind", "seconds")

    def __init__(self, kind: str, seconds: float = 0.0) -> None:
        if kind not in ("fault", "block", "stall"):
            raise ValueError("a breakpoint action is fault, block or stall")
        self.kind = kind
        self.seconds = seconds

    def __repr__(self) -> str:
        return "Action(%r%s)" % (self.kind, ", %g" % self.seconds if self.kind == "stall" else "")


FAULT = Action("fault")
BLOCK = Action("block")


def STALL(seconds: float) -> Action:
    return Action("stall", seconds)


class Breakpoint:
    """
    Fire C{action} on the C{nth} time (counting from 1, over every
    connection the interceptor sees) that C{role} reaches C{point}.

    Points: C{"connect"} (a client's TCP connection is up), C{"accept"} (a
    server's), C{"banner"} (the banners were exchanged), C{("read", TAG)}
    (a frame of that tag arrived and is about to be handled) and
    C{("write", TAG)} (a frame of that tag is about to be written).
    """

    def __init__(self, point, role: Optional[str] = None, nth: int = 1, action: Action = FAULT) -> None:
        if isinstance(point, tuple):
            direction, tag = point
            if direction not in ("read", "write"):
                raise ValueError("a frame breakpoint is ('read', TAG) or ('write', TAG)")
            self.point, self.tag = direction, int(tag)
        else:
            if point not in ("connect", "accept", "banner"):
                raise ValueError("unknown breakpoint %r" % (point,))
            self.point, self.tag = point, None
        if role not in (None, "client", "server"):
            raise ValueError("role is client, server or None for both")
        if nth < 1:
            raise ValueError("nth counts from 1")
        self.role = role
        self.nth = nth
        self.action = action
        self.seen = 0
        self.fired = False

    def __repr__(self) -> str:
        from msgr2tx.core.constants import Tag
        where = self.point if self.tag is None else "%s %s" % (self.point, Tag(self.tag).name)
        return "<Breakpoint %s %s #%d %r>" % (self.role or "any", where, self.nth, self.action)


class Interceptor:
    """
    Breakpoints for tests: give one to a factory (C{factory.interceptor =
    interceptor}) or a L{msgr2tx.core.connection.Msgr2Connection}
    (C{connection.interceptor}); each fires once.

        interceptor = Interceptor()
        interceptor.add(("write", Tag.MESSAGE), role="client", nth=3, action=FAULT)

    C{hits} lists the breakpoints that fired, C{blocked} the connections a
    C{block} action holds; L{release_all} lets them go on.
    """

    def __init__(self, *breakpoints: Breakpoint) -> None:
        self.breakpoints: List[Breakpoint] = list(breakpoints)
        self.hits: List[Breakpoint] = []
        self.blocked: list = []
        self.counts: dict = {}

    def add(self, point, role: Optional[str] = None, nth: int = 1, action: Action = FAULT) -> Breakpoint:
        bp = Breakpoint(point, role, nth, action)
        self.breakpoints.append(bp)
        return bp

    def __call__(self, connection, point: str, tag=None):
        role = connection.role.value
        key = (role, point, tag)
        self.counts[key] = self.counts.get(key, 0) + 1
        for bp in self.breakpoints:
            if bp.fired or bp.point != point or bp.tag != (None if tag is None else int(tag)):
                continue
            if bp.role is not None and bp.role != role:
                continue
            bp.seen += 1
            if bp.seen == bp.nth:
                bp.fired = True
                self.hits.append(bp)
                if bp.action.kind == "block":
                    self.blocked.append(connection)
                return bp.action
        return None

    def release_all(self) -> None:
        """Let every blocked connection go on."""
        blocked, self.blocked = self.blocked, []
        for connection in blocked:
            owner = connection.owner
            if owner is not None:
                owner.release()
            else:
                connection.release()


# ---- Twisted-level helpers --------------------------------------------------

class FaultProxy:
    """
    A TCP proxy on loopback that can break the connections it carries:
    cut them (both sides see a reset), cut at random after a number of
    forwarded chunks, cut after a random number of forwarded bytes, or go
    silent (forward nothing, close nothing: a peer that vanished without a
    FIN).

        proxy = FaultProxy(reactor, "127.0.0.1", server_port, cut_chance=1/30, seed=7)
        port = proxy.listen()

    Every cut is an abortive close of both sockets (C{SO_LINGER} 0): each
    side sees an RST, not a FIN, as when a host or a middlebox resets.

    @param cut_chance: the chance that a chunk (one read, in either
        direction) is dropped and the link cut instead; cuts then fall
        where reads end, often between frames.
    @param rst_after_bytes: C{(low, high)}, or a callable taking the
        proxy's C{random.Random} and returning a count: each link forwards
        that many bytes, both directions counted together, drawn afresh
        (uniformly from C{low..high}) for every accepted connection, then
        resets both sides.  The last chunk is split at the count, so the
        cut falls at an arbitrary byte offset, mid-frame as often as not;
        the proxy waits for the forwarded bytes to leave its socket
        buffers (for up to C{drain_timeout} seconds) before the reset, so
        the peer really has them.  C{cut_offsets} lists the counts of
        the links cut so far.
    @param seed: seeds C{rng}, which draws every random choice, so a run
        is reproducible up to the timing of the reads.
    """

    def __init__(self, reactor, host: str, port: int, cut_chance: float = 0.0, seed: int = 0,
                 delay_chance: float = 0.0, max_delay: float = 0.0, rst_after_bytes=None,
                 drain_timeout: float = 0.2) -> None:
        import random
        self.reactor = reactor
        self.host = host
        self.port = port
        self.cut_chance = cut_chance
        self.delay_chance = delay_chance
        self.max_delay = max_delay
        if rst_after_bytes is not None and not callable(rst_after_bytes):
            low, high = rst_after_bytes
            if not 0 <= low <= high:
                raise ValueError("rst_after_bytes is (low, high) with 0 <= low <= high")
        self.rst_after_bytes = rst_after_bytes
        self.drain_timeout = drain_timeout
        self.seed = seed
        self.rng = random.Random(seed)
        self.silent = False
        self.links: List["_ProxyLink"] = []
        self.cuts = 0
        #: the byte counts at which links were reset (rst_after_bytes)
        self.cut_offsets: List[int] = []
        self.accepts = 0
        self._listening = None

    def _draw_budget(self) -> Optional[int]:
        spec = self.rst_after_bytes
        if spec is None:
            return None
        if callable(spec):
            return int(spec(self.rng))
        return self.rng.randint(spec[0], spec[1])

    def listen(self, interface: str = "127.0.0.1") -> int:
        from twisted.internet.protocol import Factory
        factory = Factory.forProtocol(lambda: _ProxyLink(self))
        self._listening = self.reactor.listenTCP(0, factory, interface=interface)
        return self._listening.getHost().port

    def stop(self):
        for link in list(self.links):
            link.cut()
        if self._listening is not None:
            return self._listening.stopListening()

    def cut_all(self) -> None:
        for link in list(self.links):
            link.cut()

    def go_silent(self) -> None:
        self.silent = True


class _ProxyLink:
    """One accepted connection and its outgoing twin."""

    def __new__(cls, proxy):
        from twisted.internet.protocol import Protocol

        class Link(Protocol):
            def __init__(self):
                self.proxy = proxy
                self.peer = None
                self.buffered = []
                self.closed = False
                #: bytes forwarded so far, both directions
                self.forwarded = 0
                self.budget = None
                #: the budget is spent: forward nothing more, reset once drained
                self.draining = False

            def connectionMade(self):
                from twisted.internet.protocol import ClientCreator
                proxy.accepts += 1
                proxy.links.append(self)
                self.budget = proxy._draw_budget()
                self.transport.setTcpNoDelay(True)  # no Nagle delays on handshake frames
                self.transport.pauseProducing()
                d = ClientCreator(proxy.reactor, _Upstream, self).connectTCP(proxy.host, proxy.port)
                d.addErrback(lambda f: self.cut())

            def upstream_ready(self, upstream):
                self.peer = upstream
                for data in self.buffered:
                    upstream.transport.write(data)
                self.buffered = []
                self.transport.resumeProducing()

            def dataReceived(self, data):
                self.forward(data, lambda d: self.peer.transport.write(d) if self.peer else self.buffered.append(d),
                             self.peer.transport if self.peer is not None else None)

            def forward(self, data, write, target=None):
                if proxy.silent or self.closed or self.draining:
                    return
                if self.budget is not None and self.forwarded + len(data) >= self.budget:
                    head = data[:self.budget - self.forwarded]
                    self.forwarded += len(head)
                    self.reset_after(head, write, target)
                    return
                self.forwarded += len(data)
                if proxy.cut_chance and proxy.rng.random() < proxy.cut_chance:
                    proxy.cuts += 1
                    self.cut()
                    return
                if proxy.delay_chance and proxy.rng.random() < proxy.delay_chance:
                    # delayed writes keep their order: everything after waits too
                    self.transport.pauseProducing()
                    if self.peer is not None:
                        self.peer.transport.pauseProducing()

                    def later():
                        if not self.closed:
                            write(data)
                            self.transport.resumeProducing()
                            if self.peer is not None:
                                self.peer.transport.resumeProducing()
                    proxy.reactor.callLater(proxy.rng.random() * proxy.max_delay, later)
                    return
                write(data)

            def reset_after(self, head, write, target):
                """Write C{head}, let it leave our buffers, then reset both sides."""
                self.draining = True
                proxy.cut_offsets.append(self.forwarded)
                proxy.cuts += 1
                for t in (self.transport, self.peer.transport if self.peer is not None else None):
                    if t is not None:
                        t.pauseProducing()
                if target is None:
                    self.cut()
                    return
                deadline = proxy.reactor.seconds() + proxy.drain_timeout

                def kernel_drained():
                    if self.closed:
                        return
                    if _unsent(target) and proxy.reactor.seconds() < deadline:
                        proxy.reactor.callLater(0.001, kernel_drained)
                        return
                    self.cut()

                target.registerProducer(_WhenDrained(kernel_drained), False)
                if head:
                    write(head)
                # a write pass even if nothing is buffered, so that the
                # producer hears the buffer is empty
                target.startWriting()

            def cut(self):
                if self.closed:
                    return
                self.closed = True
                if self in proxy.links:
                    proxy.links.remove(self)
                for t in (self.transport, self.peer.transport if self.peer is not None else None):
                    if t is not None:
                        _linger_zero(t)
                        t.abortConnection()

            def connectionLost(self, reason):
                self.cut()

        return Link()


class _WhenDrained:
    """A pull producer whose only job is to hear that a transport's write buffer is empty."""

    def __init__(self, callback) -> None:
        self.callback = callback
        self.calls = 0

    def resumeProducing(self) -> None:
        self.calls += 1
        if self.calls == 1:
            return  # registerProducer's own first call, not a drained buffer
        callback, self.callback = self.callback, None
        if callback is not None:
            callback()

    def stopProducing(self) -> None:
        self.callback = None


def _linger_zero(transport) -> None:
    """Make the coming close an abortive one: the peer gets an RST, not a FIN."""
    import socket
    import struct
    try:
        transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except (AttributeError, OSError):
        pass


def _unsent(transport) -> int:
    """Bytes still in the kernel's send queue of a TCP transport (0 where unknown)."""
    import fcntl
    import struct
    import termios
    try:
        return struct.unpack("i", fcntl.ioctl(transport.getHandle().fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]
    except (AttributeError, OSError, ValueError):
        return 0


def _Upstream(link):
    from twisted.internet.protocol import Protocol

    class Upstream(Protocol):
        def connectionMade(self):
            self.transport.setTcpNoDelay(True)
            link.upstream_ready(self)

        def dataReceived(self, data):
            link.forward(data, link.transport.write, link.transport)

        def connectionLost(self, reason):
            link.cut()

    return Upstream()
