"""
A msgr2 server as a Twisted service, for an application's service tree::

    from twisted.application.service import Application
    from msgr2tx.auth import makeServerHandler
    from msgr2tx.service import Msgr2ServerService
    from msgr2tx.services import EchoReceiver

    application = Application("echo")
    server = Msgr2ServerService(["tcp:3300:interface=127.0.0.1"],
                                [makeServerHandler("none")], EchoReceiver())
    server.setServiceParent(application)

C{stopService} stops listening, closes every open connection cleanly (what
was queued is flushed, then a FIN) and returns a Deferred that fires once
every connection is gone.  A peer that does not let its connection close
within C{close_timeout} seconds is aborted.
"""

import re
from typing import Any, Dict, List, Optional, Sequence, Set, Union

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger
from twisted.python.failure import Failure

from msgr2tx.core.config import ConnectionConfig
from msgr2tx.factory import Msgr2ServerFactory
from msgr2tx.protocol import Msgr2Protocol

__all__ = ["Msgr2ServerService", "TrackingServerFactory", "with_backlog", "DEFAULT_BACKLOG"]

#: Ceph's ms_tcp_listen_backlog: connections the kernel queues for accept()
#: (Twisted's own default is 50, which drops SYNs in a burst of connects)
DEFAULT_BACKLOG = 512

_BACKLOG_ENDPOINTS = ("tcp", "tcp6", "ssl", "unix")


def with_backlog(description: str, backlog: int = DEFAULT_BACKLOG) -> str:
    """
    A server endpoint string with C{backlog=N} added, when its endpoint type
    takes one (tcp, tcp6, ssl, unix) and it does not set its own; other
    descriptions come back unchanged.
    """
    parts = re.split(r"(?<!\\):", description)
    if parts[0] not in _BACKLOG_ENDPOINTS or any(p.startswith("backlog=") for p in parts[1:]):
        return description
    return "%s:backlog=%d" % (description, backlog)


class _TrackedProtocol(Msgr2Protocol):
    """A server protocol that tells its factory when it connects and closes."""

    def connectionMade(self) -> None:
        self.factory._connected(self)
        super().connectionMade()

    def connectionLost(self, reason: Any = None) -> None:
        try:
            super().connectionLost(reason)
        finally:
            self.factory._disconnected(self)


class TrackingServerFactory(Msgr2ServerFactory):
    """
    A L{Msgr2ServerFactory} that knows its open connections, so they can be
    closed and waited for.  Takes the same arguments.
    """

    protocol = _TrackedProtocol

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: the protocols whose connection is open
        self.openProtocols: Set[Msgr2Protocol] = set()
        self._goneWaiters: Dict[Msgr2Protocol, List[defer.Deferred]] = {}

    def _connected(self, protocol: Msgr2Protocol) -> None:
        self.openProtocols.add(protocol)

    def _disconnected(self, protocol: Msgr2Protocol) -> None:
        self.openProtocols.discard(protocol)
        for d in self._goneWaiters.pop(protocol, []):
            d.callback(None)

    def whenClosed(self, protocol: Msgr2Protocol) -> defer.Deferred:
        """A Deferred that fires when C{protocol}'s connection is gone."""
        if protocol not in self.openProtocols:
            return defer.succeed(None)
        d: defer.Deferred = defer.Deferred()
        self._goneWaiters.setdefault(protocol, []).append(d)
        return d

    def closeAll(self, timeout: Optional[float] = 10.0) -> defer.Deferred:
        """
        Close every open connection cleanly and fire when all are gone.
        Connections still open after C{timeout} seconds are aborted
        (C{None}: wait for ever).
        """
        protocols = list(self.openProtocols)
        waits = [self.whenClosed(p) for p in protocols]
        for p in protocols:
            p.close()
        done = defer.gatherResults(waits)
        if timeout is None or not waits:
            return done.addCallback(lambda _: None)

        def abortStragglers() -> None:
            for p in list(self.openProtocols):
                if p in protocols:
                    p.abort()

        call = self.reactor.callLater(timeout, abortStragglers)

        def finished(result: Any) -> Any:
            if call.active():
                call.cancel()
            return None

        return done.addBoth(finished)


class Msgr2ServerService(Service):
    """
    Listen on Twisted server endpoint strings with one msgr2 server factory.

    @param endpoints: endpoint strings such as C{"tcp:3300:interface=127.0.0.1"}
        (a single string is accepted too).
    @param auth_handlers: server auth handlers in the order they are offered.
    @param receiver: the L{msgr2tx.interfaces.IMsgr2Receiver} of the server.
    @param config: a L{ConnectionConfig}; the default is a lossy monitor.
    @param close_timeout: seconds C{stopService} waits for connections to
        close cleanly before it aborts them (C{None}: wait for ever).
    @param factory: use this L{TrackingServerFactory} instead of building one
        from the other arguments.
    @param backlog: the listen backlog given to endpoints that take one and
        do not set their own (L{with_backlog}; Ceph's ms_tcp_listen_backlog).

    Other keyword arguments go to L{TrackingServerFactory}.
    """

    log = Logger()

    def __init__(self, endpoints: Union[str, Sequence[str]], auth_handlers: Sequence = (),
                 receiver: Any = None, config: Optional[ConnectionConfig] = None, reactor: Any = None,
                 close_timeout: Optional[float] = 10.0,
                 factory: Optional[TrackingServerFactory] = None, backlog: int = DEFAULT_BACKLOG,
                 **factory_kwargs: Any) -> None:
        if isinstance(endpoints, str):
            endpoints = [endpoints]
        if not endpoints:
            raise ValueError("Msgr2ServerService needs at least one endpoint")
        self.endpoints = [with_backlog(e, backlog) for e in endpoints]
        if reactor is None:
            from twisted.internet import reactor as _reactor
            reactor = _reactor
        self.reactor = reactor
        if factory is None:
            factory = TrackingServerFactory(auth_handlers, receiver, config, reactor=reactor, **factory_kwargs)
        self.factory = factory
        self.close_timeout = close_timeout
        #: the listening ports, once listening
        self.ports: List[Any] = []
        self._listening: Optional[defer.Deferred] = None
        self._listenResult: Any = None
        self._listenWaiters: List[defer.Deferred] = []

    def startService(self) -> None:
        super().startService()
        self.ports = []
        self._listenResult = None
        attempts = []
        for description in self.endpoints:
            d = serverFromString(self.reactor, description).listen(self.factory)
            d.addCallback(self.ports.append)
            attempts.append(d)
        listening = self._listening = defer.gatherResults(attempts, consumeErrors=True)

        def listened(_: Any) -> None:
            self.log.info("msgr2 server listening on {where}",
                          where=", ".join(str(p.getHost()) for p in self.ports))
            self._settle(list(self.ports))

        def failed(f: Failure) -> None:
            error = f.value.subFailure if isinstance(f.value, defer.FirstError) else f
            if not error.check(defer.CancelledError):
                self.log.failure("msgr2 server could not listen", error)
            self._settle(error)

        listening.addCallbacks(listened, failed)

    def _settle(self, result: Any) -> None:
        self._listening = None
        self._listenResult = result
        waiters, self._listenWaiters = self._listenWaiters, []
        for d in waiters:
            if isinstance(result, Failure):
                d.errback(result)
            else:
                d.callback(list(result))

    def whenListening(self) -> defer.Deferred:
        """
        Fires with the list of listening ports (C{port.getHost().port} is
        the port number, useful with C{tcp:0}), or fails if an endpoint
        could not listen.
        """
        result = self._listenResult
        if result is None:
            d: defer.Deferred = defer.Deferred()
            self._listenWaiters.append(d)
            return d
        if isinstance(result, Failure):
            return defer.fail(result)
        return defer.succeed(list(result))

    @property
    def openProtocols(self) -> Set[Msgr2Protocol]:
        return self.factory.openProtocols

    @defer.inlineCallbacks
    def stopService(self):  # type: ignore[override]
        """
        Stop listening, close every connection cleanly and fire when the
        last one is closed.
        """
        super().stopService()
        if self._listening is not None:
            self._listening.cancel()
        ports, self.ports = self.ports, []
        yield defer.gatherResults([defer.maybeDeferred(p.stopListening) for p in ports])
        count = len(self.factory.openProtocols)
        yield self.factory.closeAll(self.close_timeout)
        self.log.info("msgr2 server stopped; closed {count} connection(s)", count=count)
