"""
Connecting as a client: L{connect} returns a Deferred that fires with the
protocol once the handshake reaches READY.
"""

from typing import Optional, Sequence

from twisted.internet import defer
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, clientFromString

from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.encoding import AddrType, entity_addr_t, entity_addrvec_t
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
            receiver=None, timeout: Optional[float] = 30.0) -> defer.Deferred:
    """
    Connect and complete the msgr2 handshake.

    @param address: see L{parse_target}.
    @param auth: client auth handlers (L{IClientAuthHandler}) in order of
        preference; a failed method falls back to the next one the server
        allows.
    @return: a Deferred firing with the L{Msgr2Protocol} after READY; its
        C{info} attribute holds the peer's entity, features, mode and revision.
    """
    config = config or ConnectionConfig()
    endpoint, target = parse_target(reactor, address, timeout or 30.0)
    factory = Msgr2ClientFactory(auth, config, target_addr=target, receiver=receiver,
                                 reactor=reactor, handshake_timeout=timeout)
    d = endpoint.connect(factory)

    def connected(protocol):
        return protocol.whenReady().addCallback(lambda info: protocol)

    d.addCallback(connected)
    return d


class ReconnectingClient:
    """
    A client that keeps one msgr2 session alive across connection failures,
    built on Twisted's C{ClientService}: it reconnects with exponential
    backoff (reset after every success), resumes a lossless session with
    SESSION_RECONNECT and replays what the peer had not acknowledged.

    Messages sent while disconnected wait in the session and go out, in
    order, once the next connection is READY.  Add it to a service
    hierarchy or call L{startService}/L{stopService} yourself.
    """

    def __init__(self, reactor, address, auth: Sequence, config: Optional[ConnectionConfig] = None,
                 receiver=None, timeout: float = 30.0, initial_backoff: float = 0.2,
                 max_backoff: float = 15.0) -> None:
        from twisted.application.internet import ClientService, backoffPolicy

        from msgr2tx.core.session import GlobalSeq, Session

        self.reactor = reactor
        self.config = config or ConnectionConfig()
        endpoint, target = parse_target(reactor, address, timeout)
        self.factory = Msgr2ClientFactory(auth, self.config, target_addr=target, receiver=receiver,
                                          reactor=reactor, handshake_timeout=timeout,
                                          session=Session(), global_seqs=GlobalSeq())
        self.service = ClientService(
            endpoint, self.factory, retryPolicy=backoffPolicy(initial_backoff, max_backoff),
            clock=reactor, prepareConnection=lambda p: p.whenReady())
        self._current = None

    @property
    def session(self):
        return self.factory.session

    def startService(self) -> None:
        self.service.startService()

    def stopService(self) -> defer.Deferred:
        return self.service.stopService()

    def setServiceParent(self, parent) -> None:
        self.service.setServiceParent(parent)

    def whenReady(self, failAfterFailures: Optional[int] = None) -> defer.Deferred:
        """Fires with the READY protocol of the current connection."""
        return self.service.whenConnected(failAfterFailures=failAfterFailures)

    def sendMessage(self, message) -> None:
        """Send now if READY, else queue in the session for the next connection."""
        d = self.service.whenConnected()
        protocol = [None]
        d.addCallback(protocol.__setitem__, 0) if d.called else d.cancel()
        d.addErrback(lambda f: None)
        p = protocol[0]
        if p is not None and not p._closed and p.info is not None:
            p.sendMessage(message)
        else:
            self.factory.session.pending.append(message)
