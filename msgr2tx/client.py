"""
Connecting as a client: L{connect} returns a Deferred that fires with the
protocol once the handshake reaches READY.
"""

import random
from typing import Optional, Sequence

from twisted.internet import defer
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.logger import Logger
from zope.interface import implementer
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, clientFromString

from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.encoding import AddrType, entity_addr_t, entity_addrvec_t
from msgr2tx.core.speculation import PeerBannerCache
from msgr2tx.errors import SpeculationFailed
from msgr2tx.factory import Msgr2ClientFactory


def parse_target(reactor, address, timeout: float = 30.0):
    """
    Resolve what a user typed into (endpoint, target entity_addr_t).

    Accepts Ceph syntax (C{v2:127.0.0.1:3300}, C{[v2:...,v1:...]},
    C{127.0.0.1:3300}), Twisted client endpoint strings (C{tcp:host=...:port=...}),
    or an endpoint object (then the target address is learnt from the socket).
    """
    if not isinstance(address, str):
        return address, None
    text = address.strip()
    if text.startswith(("tcp:", "tcp6:", "unix:", "tls:", "ssl:", "host=")):
        return clientFromString(reactor, text), None
    addrs = entity_addrvec_t.parse(text)
    target = addrs.msgr2_addr()
    if target is None:
        raise ValueError("%s has no msgr2 (v2) address" % (text,))
    target = entity_addr_t(AddrType.MSGR2, target.nonce, target.host, target.port)
    cls = TCP6ClientEndpoint if target.host.version == 6 else TCP4ClientEndpoint
    return cls(reactor, str(target.host), target.port, timeout=timeout), target


def connect(reactor, address, auth: Sequence, config: Optional[ConnectionConfig] = None,
            receiver=None, timeout: Optional[float] = 30.0, via=None,
            peer_banners: Optional[PeerBannerCache] = None) -> defer.Deferred:
    """
    Connect and complete the msgr2 handshake.

    @param address: see L{parse_target}.
    @param via: connect to this address or endpoint instead, while the
        handshake still names C{address} (for tunnels and test proxies).
    @param auth: client auth handlers (L{IClientAuthHandler}) in order of
        preference; a failed method falls back to the next one the server
        allows.
    @param peer_banners: a L{PeerBannerCache} shared between calls: a
        connection to an address that an earlier one reached sends its
        banner, HELLO and AUTH_REQUEST in one write (a speculative first
        flight, one round trip less to READY).  If the peer turned out
        different (L{msgr2tx.errors.SpeculationFailed}), it is dialled once
        more without speculation.
    @return: a Deferred firing with the L{Msgr2Protocol} after READY; its
        C{info} attribute holds the peer's entity, features, mode and revision.
    """
    config = config or ConnectionConfig()
    endpoint, target = parse_target(reactor, address, timeout or 30.0)
    if via is not None:
        # dial another endpoint (a tunnel, a proxy) but name the target in the handshake
        endpoint = parse_target(reactor, via, timeout or 30.0)[0]
    factory = Msgr2ClientFactory(auth, config, target_addr=target, receiver=receiver,
                                 reactor=reactor, handshake_timeout=timeout, peer_banners=peer_banners)

    def connected(protocol):
        return protocol.whenReady().addCallback(lambda info: protocol)

    def redial(failure):
        # the peer is not the one our first flight assumed: the protocol
        # left a cache entry without an entity type, so this attempt does not speculate
        failure.trap(SpeculationFailed)
        return endpoint.connect(factory).addCallback(connected)

    return endpoint.connect(factory).addCallback(connected).addErrback(redial)


_log = Logger()


@implementer(IStreamClientEndpoint)
class _LoggingEndpoint:
    """
    A client endpoint that names its peer's address in its repr (Twisted's
    C{ClientService} logs its retries with it) and logs why a connect failed.
    """

    def __init__(self, endpoint, address: str) -> None:
        self._endpoint = endpoint
        self._address = address

    def __repr__(self) -> str:
        return self._address

    def connect(self, factory) -> defer.Deferred:
        def failed(failure):
            _log.info("msgr2 peer {address}: cannot connect ({why})", address=self._address,
                      why=failure.getErrorMessage())
            return failure
        return self._endpoint.connect(factory).addErrback(failed)


class ReconnectingClient:
    """
    A client that keeps one msgr2 session alive across connection failures,
    built on Twisted's C{ClientService}: it reconnects with exponential
    backoff (reset after every connection), resumes a lossless session with
    SESSION_RECONNECT and replays what the peer had not acknowledged.  With
    an msgr2tx peer and a cephx session key, the session comes back with a
    fast reconnect instead (one AUTH_REQUEST proving the key, the queued
    messages riding in it; docs/protocol.md, "Fast reconnect").

    Messages sent while disconnected wait in the session and go out, in
    order, once the next connection is READY.  From its second connection
    on, the client knows the peer's banner and entity type (its factory's
    L{PeerBannerCache}) and sends banner, HELLO and AUTH_REQUEST in one
    write (C{ConnectionConfig.speculate}).  Add it to a service
    hierarchy or call L{startService}/L{stopService} yourself.

    (The handshake is not run as C{ClientService}'s C{prepareConnection}:
    a connection that closes after a failed preparation upsets its state
    machine, so READY is tracked here instead.)
    """

    def __init__(self, reactor, address, auth: Sequence, config: Optional[ConnectionConfig] = None,
                 receiver=None, timeout: float = 30.0, initial_backoff: float = 0.2,
                 max_backoff: float = 15.0, via=None) -> None:
        from twisted.application.internet import ClientService, backoffPolicy

        from msgr2tx.core.session import GlobalSeq, Session

        self.reactor = reactor
        self.config = config or ConnectionConfig()
        endpoint, target = parse_target(reactor, address, timeout)
        if via is not None:
            endpoint = parse_target(reactor, via, timeout)[0]
        self.factory = Msgr2ClientFactory(auth, self.config, target_addr=target, receiver=receiver,
                                          reactor=reactor, handshake_timeout=timeout,
                                          session=Session(), global_seqs=GlobalSeq())
        self.factory.onProtocol = self._new_protocol
        # jitter in proportion to the first delay (Twisted's default adds up to a second)
        policy = backoffPolicy(initial_backoff, max_backoff, jitter=lambda: random.random() * initial_backoff)
        # ClientService counts only failed TCP connects; a handshake that
        # fails (a refused key, say) counts too, so the delay still grows
        self.address = address if isinstance(address, str) else repr(address)
        endpoint = _LoggingEndpoint(endpoint, self.address)
        self.service = ClientService(endpoint, self.factory, clock=reactor,
                                     retryPolicy=lambda attempt: policy(attempt + self.failed_handshakes))
        self._current = None
        self._ready_waiters = []
        #: READY connections made so far (the first, then every reconnect)
        self.connections = 0
        #: connections in a row that closed before READY (reset at READY)
        self.failed_handshakes = 0

    def _new_protocol(self, protocol) -> None:
        def ready(info):
            self._current = protocol
            self.connections += 1
            self.failed_handshakes = 0
            waiters, self._ready_waiters = self._ready_waiters, []
            for d in waiters:
                d.callback(protocol)

        def failed(reason):
            _log.info("msgr2 peer {address}: the handshake failed ({why}); trying again",
                      address=self.address, why=reason.getErrorMessage())
            if not reason.check(SpeculationFailed):
                # (a first flight that assumed an outdated peer is not a
                # failure of the peer: the next attempt goes at the usual pace)
                self.failed_handshakes += 1
        protocol.whenReady().addCallbacks(ready, failed)

    @property
    def protocol(self):
        """The current READY connection, or None between connections."""
        p = self._current
        return p if p is not None and not p._closed else None

    @property
    def session(self):
        return self.factory.session

    def startService(self) -> None:
        self.service.startService()

    def stopService(self, abort_after: Optional[float] = 5.0) -> defer.Deferred:
        """
        Stop reconnecting and close the current connection; fires once it
        is closed.  A connection that cannot flush what it has buffered
        (its peer stopped reading) is aborted after C{abort_after} seconds
        (C{None}: wait for ever), so stopping never hangs on a stuck peer.
        """
        waiters, self._ready_waiters = self._ready_waiters, []
        for d in waiters:
            d.cancel()
        current = self._current
        stopped = self.service.stopService()
        if abort_after is None or current is None or stopped.called:
            return stopped

        def abort() -> None:
            if current.transport is not None:
                current.abort()
        call = self.reactor.callLater(abort_after, abort)

        def done(result):
            if call.active():
                call.cancel()
            return result
        return stopped.addBoth(done)

    def setServiceParent(self, parent) -> None:
        self.service.setServiceParent(parent)

    def whenReady(self) -> defer.Deferred:
        """Fires with the READY protocol of the current or next connection."""
        p = self.protocol
        if p is not None:
            return defer.succeed(p)
        d = defer.Deferred()
        self._ready_waiters.append(d)
        return d

    def sendMessage(self, message) -> None:
        """Send now if READY, else queue in the session for the next connection."""
        p = self.protocol
        if p is not None:
            p.sendMessage(message)
        else:
            self.factory.session.pending.append(message)

    def whenWritable(self) -> defer.Deferred:
        p = self.protocol
        return p.whenWritable() if p is not None else defer.succeed(None)
