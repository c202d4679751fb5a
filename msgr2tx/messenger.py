"""
A messenger for lossless peers: one endpoint that listens and connects,
with one session per peer whichever side opened the connection.

After a fault, either side that has something to send resumes the session
with SESSION_RECONNECT (whichever side opened the failed connection): each
side's server knows the session by its cookies.  When both reconnect at
once, connect_seq and, for equal attempts, the address order settle it, as
in Ceph.

Two peers that connect to each other at the same moment race; the race is
resolved as Ceph resolves it (the connection opened by the peer with the
lower address survives, the other side answers WAIT), and every message
queued on either side is delivered exactly once on the surviving
connection.  A side told to WAIT does not retry soon: it waits for the
other side's connection, and tries again itself only after C{max_backoff}
(Ceph's C{ms_max_backoff}).

The policy (Ceph's C{lossless_peer} by default, as OSDs use among
themselves) decides the rest: with C{standby} a link whose connection failed
with nothing queued stays idle until there is something to send; with
C{server} it never reconnects by itself.

    a = Msgr2Messenger(reactor, "v2:127.0.0.1:6800/111", receiver=..., ...)
    yield a.start()
    a.send("v2:127.0.0.1:6801/222", message)
"""

from typing import Dict, Optional, Sequence

from twisted.internet import defer
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint, TCP6ClientEndpoint
from twisted.logger import Logger

from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.connection import State
from msgr2tx.core.encoding import AF_INET6, AddrType, EntityType, entity_addr_t, entity_addrvec_t
from msgr2tx.core.policy import Policy
from msgr2tx.core.session import GlobalSeq, Session
from msgr2tx.factory import Msgr2ClientFactory, Msgr2ServerFactory
from msgr2tx.service import DEFAULT_BACKLOG


class PeerLink:
    """Our side of the session with one peer, and the attempts to reach it."""

    def __init__(self, messenger: "Msgr2Messenger", addr: entity_addr_t) -> None:
        self.messenger = messenger
        self.policy = messenger.policy
        self.addr = addr
        self.key = str(entity_addrvec_t((addr,)))
        self.session = Session()
        self.session.lossy = False
        self.session.peer_key = self.key
        self.connecting = False
        self.attempts = 0
        self._retry = None

    def ready_protocol(self):
        conn = self.session.connection
        if conn is not None and conn.state is State.READY and conn.owner is not None and not conn.owner._closed:
            return conn.owner
        return None

    def send(self, message) -> None:
        protocol = self.ready_protocol()
        if protocol is not None:
            protocol.sendMessage(message)
            return
        self.session.pending.append(message)
        self.ensure_connected()

    def ensure_connected(self) -> None:
        if self.connecting or self.ready_protocol() is not None or self.messenger.stopped:
            return
        conn = self.session.connection
        if conn is not None and conn.state not in (State.READY, State.CLOSED):
            return  # a connection (either way) is on its way to READY
        if self.policy.server and self.session.server_cookie:
            return  # a server side waits in standby for the peer to come back
        self.connecting = True
        self.attempts += 1
        m = self.messenger
        factory = Msgr2ClientFactory(m.client_auth, m.client_config, target_addr=self.addr,
                                     receiver=m.receiver, reactor=m.reactor, handshake_timeout=m.timeout,
                                     session=self.session, global_seqs=m.global_seqs, sessions=m.sessions)
        factory.interceptor = m.interceptor
        cls = TCP6ClientEndpoint if self.addr.family == AF_INET6 else TCP4ClientEndpoint
        d = cls(m.reactor, str(self.addr.host), self.addr.port, timeout=m.timeout).connect(factory)

        def connected(protocol):
            m.outgoing.append(protocol)
            return protocol.whenReady().addBoth(done, protocol)

        def done(result, protocol=None):
            self.connecting = False
            if protocol is not None:
                # watch the connection: when it goes, try again if nothing carries the session
                protocol.notifyOnLost(lambda: self._lost(protocol))
            else:
                self._schedule_retry()
            return None

        d.addCallbacks(connected, lambda f: done(f))

    def _lost(self, protocol=None) -> None:
        if self.ready_protocol() is not None:
            return
        conn = self.session.connection
        if conn is not None and conn.state not in (State.READY, State.CLOSED):
            return  # another connection (the peer's, after a WAIT) is on its way
        if protocol is not None and protocol.conn is not None and protocol.conn.waited:
            # the peer's own connection carries the session: wait for it, and
            # only try again ourselves after the longest backoff (Ceph's WAIT)
            self._schedule_retry(self.messenger.max_backoff)
            return
        if self.policy.server:
            return  # a server side never reconnects by itself
        if self.session.pending or self.session.unacked or not self.policy.standby:
            self._schedule_retry()

    def _schedule_retry(self, delay: Optional[float] = None) -> None:
        if self._retry is not None and self._retry.active():
            return
        if self.messenger.stopped:
            return
        if delay is None:
            delay = min(self.messenger.max_backoff,
                        self.messenger.initial_backoff * (2 ** min(self.attempts, 10)))
        self._retry = self.messenger.reactor.callLater(delay, self.ensure_connected)

    def stop(self) -> None:
        if self._retry is not None and self._retry.active():
            self._retry.cancel()


class Msgr2Messenger:
    """
    One lossless peer: listens on its own address and connects to others.

    @param my_addr: our msgr2 address with its nonce, e.g.
        C{"v2:127.0.0.1:6800/4242"}; peers must dial exactly this.
    """

    log = Logger()

    def __init__(self, reactor, my_addr: str, server_auth: Sequence, client_auth: Sequence, receiver=None,
                 entity_type: int = EntityType.OSD, entity_num: int = 0, timeout: float = 10.0,
                 initial_backoff: float = 0.05, max_backoff: float = 2.0, config: Optional[ConnectionConfig] = None,
                 policy: Optional[Policy] = None):
        import dataclasses

        addr = entity_addr_t.parse(my_addr)
        self.my_addr = entity_addr_t(AddrType.MSGR2, addr.nonce, addr.host, addr.port)
        self.reactor = reactor
        self.receiver = receiver
        self.timeout = timeout
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        base = config or ConnectionConfig()
        #: our policy towards every peer (Ceph's lossless_peer by default)
        self.policy = policy or Policy.lossless_peer()
        if self.policy.lossy:
            raise ValueError("a messenger of lossless peers needs a lossless policy, not %s" % self.policy)
        my_addrs = entity_addrvec_t((self.my_addr,))
        self.server_config = dataclasses.replace(base, entity_type=entity_type, entity_num=entity_num,
                                                 lossy=False, my_addrs=my_addrs, policy=self.policy)
        self.client_config = dataclasses.replace(base, entity_type=entity_type, entity_num=entity_num,
                                                 lossy=False, my_addrs=my_addrs, policy=self.policy)
        self.client_auth = list(client_auth)
        self.global_seqs = GlobalSeq()
        self.factory = Msgr2ServerFactory(server_auth, receiver, self.server_config, reactor=reactor,
                                          handshake_timeout=timeout, nonce=self.my_addr.nonce)
        self.factory.global_seqs = self.global_seqs
        self.incoming: list = []
        self.factory.onProtocol = self.incoming.append  # type: ignore[assignment]
        self.factory.onWaitSent = self._peer_waits  # type: ignore[assignment]
        self.links: Dict[str, PeerLink] = {}
        self.outgoing: list = []
        self.interceptor = None
        self.stopped = False
        self._port = None

    @property
    def sessions(self):
        return self.factory.sessions

    def start(self) -> defer.Deferred:
        self.factory.interceptor = self.interceptor
        endpoint = TCP4ServerEndpoint(self.reactor, self.my_addr.port, backlog=DEFAULT_BACKLOG,
                                      interface=str(self.my_addr.host))

        def listening(port):
            self._port = port
            return port
        return endpoint.listen(self.factory).addCallback(listening)

    def link(self, peer_addr: str) -> PeerLink:
        addr = entity_addr_t.parse(peer_addr)
        addr = entity_addr_t(AddrType.MSGR2, addr.nonce, addr.host, addr.port)
        key = str(entity_addrvec_t((addr,)))
        link = self.links.get(key)
        if link is None:
            link = self.links[key] = PeerLink(self, addr)
            existing = self.sessions.by_peer.get(key)
            if existing is not None:
                # the peer connected to us first: its connection carries our session
                link.session = existing
            else:
                # an incoming connection from this peer finds our session here
                self.sessions.by_peer[key] = link.session
        else:
            # the session may have been taken over by an incoming connection
            current = self.sessions.by_peer.get(key)
            if current is not None:
                link.session = current
        return link

    def _peer_waits(self, peer_key: str) -> None:
        """We told a peer to WAIT: our own attempt to reach it must go on."""
        link = self.links.get(peer_key)
        if link is not None:
            link.ensure_connected()

    def send(self, peer_addr: str, message) -> None:
        """Send to a peer, connecting first if no connection carries our session with it."""
        self.link(peer_addr).send(message)

    def stop(self) -> defer.Deferred:
        self.stopped = True
        for link in self.links.values():
            link.stop()
        for p in list(self.outgoing) + list(self.incoming):
            if p.transport is not None and p.transport.connected:
                p.transport.abortConnection()
        if self._port is not None:
            return defer.maybeDeferred(self._port.stopListening)
        return defer.succeed(None)
