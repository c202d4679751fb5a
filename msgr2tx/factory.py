"""Factories for both roles."""

import random
from typing import Optional, Sequence

from twisted.internet.protocol import ClientFactory, Factory

from msgr2tx.auth import share_global_ids
from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.connection import Role
from msgr2tx.core.encoding import EntityType, entity_addr_t
from msgr2tx.core.session import GlobalSeq, Session, SessionTable
from msgr2tx.core.speculation import PeerBannerCache
from msgr2tx.protocol import Msgr2Protocol


class Msgr2ServerFactory(Factory):
    """
    Accepts msgr2 clients.

    @param auth_handlers: server auth handlers (L{IServerAuthHandler}), in
        the order they are offered.
    @param receiver: the L{IMsgr2Receiver} that gets messages and events.
    @param handshake_timeout: seconds a client has from accept to READY
        before its connection is aborted (Ceph's ms_connection_ready_timeout,
        10 s; None: no limit).  Idle READY connections are closed after the
        config's C{idle_timeout} (900 s by default on a server).
    """

    protocol = Msgr2Protocol
    #: test breakpoints (msgr2tx.testing.Interceptor) for every connection
    interceptor = None
    #: called with each new protocol
    onProtocol = None
    #: called with a peer's address key when we answered its connection
    #: with WAIT because our own attempt to reach it wins the race
    onWaitSent = None

    def __init__(self, auth_handlers: Sequence, receiver=None,
                 config: Optional[ConnectionConfig] = None, reactor=None,
                 handshake_timeout: Optional[float] = 10.0, nonce: int = 0) -> None:
        if not auth_handlers:
            raise ValueError("a server needs at least one auth handler")
        self.config = config or ConnectionConfig(entity_type=EntityType.MON, entity_num=0, lossy=True)
        self.auth_handlers = list(auth_handlers)
        self.receiver = receiver
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.handshake_timeout = handshake_timeout
        self.nonce = nonce
        #: registered sessions by peer address, shared by all connections
        self.sessions = SessionTable()
        self.global_seqs = GlobalSeq()
        #: one global_id counter for every auth handler of this server, so
        #: that clients of different auth methods never share a global_id
        self.global_ids = share_global_ids(self.auth_handlers)

    def buildProtocol(self, addr):
        p = self.protocol(Role.SERVER, self.config, self.auth_handlers, self.receiver,
                          clock=self.reactor, handshake_timeout=self.handshake_timeout,
                          server_nonce=self.nonce, sessions=self.sessions,
                          global_seqs=self.global_seqs)
        p.factory = self
        if self.onProtocol is not None:
            self.onProtocol(p)
        return p


class Msgr2ClientFactory(ClientFactory):
    """
    Builds one client protocol for a connection attempt.

    @param peer_banners: the L{PeerBannerCache} in which each connection
        records the banner and entity type its peer showed, and from which
        the next connection to that address builds its speculative first
        flight (C{ConnectionConfig.speculate}); share one between factories
        to let their connections learn from each other.  None: a new cache
        of this factory's own.
    """

    protocol = Msgr2Protocol

    def __init__(self, auth_handlers: Sequence, config: ConnectionConfig,
                 target_addr: Optional[entity_addr_t] = None, receiver=None,
                 reactor=None, handshake_timeout: Optional[float] = 30.0,
                 session: Optional[Session] = None, global_seqs: Optional[GlobalSeq] = None,
                 sessions: Optional[SessionTable] = None,
                 peer_banners: Optional[PeerBannerCache] = None) -> None:
        self.config = config
        self.auth_handlers = list(auth_handlers)
        self.target_addr = target_addr
        self.receiver = receiver
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.handshake_timeout = handshake_timeout
        #: kept across connection attempts, so a lossless session resumes
        self.session = session if session is not None else Session()
        self.global_seqs = global_seqs if global_seqs is not None else GlobalSeq()
        #: where a lossless session is registered once READY; a messenger
        #: shares its server's table so that the peer can resume it either way
        self.sessions = sessions
        #: our address nonce for every connection this factory makes (Ceph's
        #: messenger nonce): a peer finds our session by our address
        self.nonce = random.getrandbits(32) or 1
        #: what peers showed earlier connections (for speculative first flights)
        self.peer_banners = peer_banners if peer_banners is not None else PeerBannerCache()

    #: called with each new protocol (ReconnectingClient watches READY this way)
    onProtocol = None
    #: test breakpoints (msgr2tx.testing.Interceptor) for every connection
    interceptor = None

    def buildProtocol(self, addr):
        p = self.protocol(Role.CLIENT, self.config, self.auth_handlers, self.receiver,
                          target_addr=self.target_addr, clock=self.reactor,
                          handshake_timeout=self.handshake_timeout,
                          session=self.session, global_seqs=self.global_seqs,
                          sessions=self.sessions, nonce=self.nonce)
        p.factory = self
        if self.onProtocol is not None:
            self.onProtocol(p)
        return p
