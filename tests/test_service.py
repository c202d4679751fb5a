"""
msgr2tx.service.Msgr2ServerService: listens on endpoint strings and closes
every connection cleanly on stopService.
"""

import time

from twisted.application.service import IService, MultiService
from twisted.internet import defer, reactor
from twisted.internet.error import ConnectionDone, ConnectionLost, ConnectionRefusedError
from twisted.trial import unittest
from zope.interface import implementer
from zope.interface.verify import verifyObject

from msgr2tx.auth import makeClientHandler, makeServerHandler
from msgr2tx.client import connect
from msgr2tx.messages import MPing
from msgr2tx.interfaces import IMsgr2Receiver
from msgr2tx.service import Msgr2ServerService
from msgr2tx.services import EchoReceiver


@implementer(IMsgr2Receiver)
class Recorder:
    """A client receiver that writes down what happens, in order."""

    def __init__(self):
        self.events = []
        self.lost = defer.Deferred()

    def connectionReady(self, protocol, info):
        self.events.append("ready")

    def messageReceived(self, protocol, message):
        self.events.append(type(message).__name__)

    def connectionLost(self, protocol, reason):
        self.events.append("lost")
        if not self.lost.called:
            self.lost.callback(reason.value)  # the exception, not a Failure


class ServiceTests(unittest.TestCase):
    timeout = 30

    def makeService(self, receiver=None, **kwargs):
        service = Msgr2ServerService("tcp:0:interface=127.0.0.1", [makeServerHandler("none")],
                                     receiver or EchoReceiver(), **kwargs)
        return service

    @defer.inlineCallbacks
    def startService(self, service):
        service.startService()
        self.addCleanup(lambda: service.running and service.stopService())
        ports = yield service.whenListening()
        defer.returnValue("v2:127.0.0.1:%d" % ports[0].getHost().port)

    @defer.inlineCallbacks
    def connectClient(self, address):
        recorder = Recorder()
        protocol = yield connect(reactor, address, [makeClientHandler("none")], receiver=recorder, timeout=10)
        self.addCleanup(lambda: protocol.abort())
        defer.returnValue((protocol, recorder))

    def test_provides_IService(self):
        service = self.makeService()
        self.assertTrue(verifyObject(IService, service))
        parent = MultiService()
        service.setServiceParent(parent)
        self.assertIn(service, list(parent))

    def test_needs_an_endpoint(self):
        self.assertRaises(ValueError, Msgr2ServerService, [], [makeServerHandler("none")])

    @defer.inlineCallbacks
    def test_stop_closes_every_connection_cleanly(self):
        """
        stopService fires only after every server-side connection is gone;
        each client sees a clean close (ConnectionDone, not a reset).
        """
        service = self.makeService()
        address = yield self.startService(service)
        clients = []
        for _ in range(3):
            clients.append((yield self.connectClient(address)))
        self.assertEqual(len(service.openProtocols), 3)
        server_protocols = list(service.openProtocols)

        yield service.stopService()

        self.assertEqual(service.openProtocols, set())
        self.assertTrue(all(p._closed for p in server_protocols))
        for protocol, recorder in clients:
            reason = yield recorder.lost
            self.assertIsInstance(reason, ConnectionDone)
            self.assertEqual(recorder.events, ["ready", "lost"])

    @defer.inlineCallbacks
    def test_stop_flushes_what_was_sent(self):
        """A reply sent in the same turn as stopService still reaches the client."""
        service = self.makeService()

        @implementer(IMsgr2Receiver)
        class ReplyThenStop:
            stopped = None

            def connectionReady(self, protocol, info):
                pass

            def messageReceived(self, protocol, message):
                for _ in range(50):
                    protocol.sendMessage(MPing())
                self.stopped = service.stopService()

            def connectionLost(self, protocol, reason):
                pass

        stopper = ReplyThenStop()
        service.factory.receiver = stopper
        address = yield self.startService(service)
        protocol, recorder = yield self.connectClient(address)
        protocol.sendMessage(MPing())
        reason = yield recorder.lost
        yield stopper.stopped
        self.assertIsInstance(reason, ConnectionDone)
        self.assertEqual(recorder.events, ["ready"] + ["MPing"] * 50 + ["lost"])

    @defer.inlineCallbacks
    def test_stop_refuses_new_connections(self):
        service = self.makeService()
        address = yield self.startService(service)
        yield service.stopService()
        yield self.assertFailure(connect(reactor, address, [makeClientHandler("none")], timeout=5),
                                 ConnectionRefusedError)

    @defer.inlineCallbacks
    def test_stop_with_no_connections(self):
        service = self.makeService()
        yield self.startService(service)
        yield service.stopService()
        self.assertEqual(service.ports, [])

    @defer.inlineCallbacks
    def test_close_timeout_aborts_a_stuck_connection(self):
        """A connection that does not close in close_timeout seconds is aborted."""
        service = self.makeService(close_timeout=0.3)
        address = yield self.startService(service)
        protocol, recorder = yield self.connectClient(address)
        (server_protocol,) = service.openProtocols
        server_protocol.close = lambda: None  # this connection will not close by itself
        started = time.monotonic()
        yield service.stopService()
        self.assertGreaterEqual(time.monotonic() - started, 0.25)
        self.assertEqual(service.openProtocols, set())
        reason = yield recorder.lost
        self.assertIsInstance(reason, (ConnectionLost, ConnectionDone))

    @defer.inlineCallbacks
    def test_listen_failure(self):
        service = self.makeService()
        address = yield self.startService(service)
        port = int(address.rsplit(":", 1)[1])
        other = Msgr2ServerService("tcp:%d:interface=127.0.0.1" % port, [makeServerHandler("none")])
        other.startService()
        yield self.assertFailure(other.whenListening(), Exception)
        yield other.stopService()
        self.flushLoggedErrors()

    @defer.inlineCallbacks
    def test_in_a_multiservice(self):
        """As a child of an application's MultiService, stopping the parent waits too."""
        parent = MultiService()
        service = self.makeService()
        service.setServiceParent(parent)
        parent.startService()
        ports = yield service.whenListening()
        address = "v2:127.0.0.1:%d" % ports[0].getHost().port
        protocol, recorder = yield self.connectClient(address)
        yield parent.stopService()
        self.assertEqual(service.openProtocols, set())
        reason = yield recorder.lost
        self.assertIsInstance(reason, ConnectionDone)
