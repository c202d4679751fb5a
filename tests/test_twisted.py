"""
The Twisted layer on real loopback sockets: our client against our server,
plugin discovery, and a server that survives bad clients.
"""

import errno
import struct

from twisted.application.service import IServiceMaker
from twisted.internet import defer, protocol, reactor, task
from twisted.logger import globalLogPublisher
from twisted.plugin import getPlugins
from twisted.trial.unittest import TestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from msgr2tx.auth import AuthReject, findAuthProvider, UnknownAuthMethod
from msgr2tx.auth.none import NoneAuthProvider, NoneClientHandler, NoneServerHandler
from msgr2tx.client import connect
from msgr2tx.core import frames as F
from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.constants import Tag
from msgr2tx.core.crc import preamble_crc
from msgr2tx.core.encoding import EntityName, EntityType, entity_addr_t
from msgr2tx.core.framing import FrameWriter
from msgr2tx.core.messages import GenericMessage
from msgr2tx.messages import MPing
from msgr2tx.errors import AuthBadMethod, HandshakeTimeout
from msgr2tx.factory import Msgr2ServerFactory
from msgr2tx.interfaces import (
    IAuthProviderFactory, IClientAuthHandler, IMsgr2ServiceFactory, IServerAuthHandler,
)
from msgr2tx.services import EchoReceiver

ADMIN = EntityName.parse("client.admin")


class Collector:
    def __init__(self):
        self.messages = []
        self.ready = []
        self.lost = []
        self.waiting = []

    def connectionReady(self, p, info):
        self.ready.append(info)

    def messageReceived(self, p, m):
        self.messages.append(m)
        waiting, self.waiting = self.waiting, []
        for d in waiting:
            d.callback(m)

    def connectionLost(self, p, reason):
        self.lost.append(reason)

    def next_message(self):
        d = defer.Deferred()
        self.waiting.append(d)
        return d


class PluginTests(TestCase):

    def test_none_is_found_by_getPlugins(self):
        providers = list(getPlugins(IAuthProviderFactory))
        names = [p.name for p in providers]
        self.assertIn("none", names)
        none = findAuthProvider("none")
        self.assertIsInstance(none, NoneAuthProvider)
        verifyObject(IAuthProviderFactory, none)
        verifyObject(IClientAuthHandler, none.clientHandler("name=client.foo"))
        verifyObject(IServerAuthHandler, none.serverHandler(""))
        self.assertEqual(none.clientHandler("name=client.foo").name, EntityName.parse("client.foo"))

    def test_unknown_provider(self):
        self.assertRaises(UnknownAuthMethod, findAuthProvider, "kerberos-nope")

    def test_twistd_plugin(self):
        makers = [m for m in getPlugins(IServiceMaker) if m.tapname == "msgr2"]
        self.assertEqual(len(makers), 1)
        self.assertEqual(makers[0].options.__module__, "msgr2tx.tap")

    def test_service_plugins(self):
        names = sorted(s.name for s in getPlugins(IMsgr2ServiceFactory))
        self.assertIn("echo", names)
        self.assertIn("inspect", names)


class LoopbackTests(TestCase):

    def setUp(self):
        self.server_receiver = EchoReceiver()
        self.factory = Msgr2ServerFactory([NoneServerHandler()], self.server_receiver)
        self.port = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.address = "v2:127.0.0.1:%d" % self.port.getHost().port
        self.failures = []
        globalLogPublisher.addObserver(self._observe)
        self.addCleanup(globalLogPublisher.removeObserver, self._observe)

    def _observe(self, event):
        if event.get("log_failure") is not None or event.get("isError"):
            self.failures.append(event)

    @defer.inlineCallbacks
    def _client(self, rev1=True, receiver=None, **kw):
        config = ConnectionConfig(revision1=rev1, **kw)
        p = yield connect(reactor, self.address, [NoneClientHandler(ADMIN)], config,
                          receiver=receiver, timeout=5)
        self.addCleanup(self._close, p)
        return p

    def _close(self, p):
        d = defer.Deferred()
        original = p.connectionLost

        def lost(reason):
            original(reason)
            d.callback(None)
        p.connectionLost = lost
        if p.transport.connected:
            p.transport.loseConnection()
            return d
        return None

    @defer.inlineCallbacks
    def _echo_roundtrip(self, rev1):
        receiver = Collector()
        p = yield self._client(rev1=rev1, receiver=receiver)
        self.assertEqual(p.info.rev1, rev1)
        self.assertEqual(p.info.mode_name, "crc")
        self.assertEqual(str(p.info.peer_name), "mon.0")
        rtt = yield p.keepalive()
        self.assertGreater(rtt, 0)
        waiting = receiver.next_message()
        p.sendMessage(MPing())
        echoed = yield waiting
        self.assertIsInstance(echoed, MPing)
        self.assertEqual(str(echoed.src), "mon.0")
        # an unknown type comes back byte for byte
        waiting = receiver.next_message()
        p.sendMessage(GenericMessage(0x7FF0, b"front-bytes", b"", b"data" * 1000))
        echoed = yield waiting
        self.assertIsInstance(echoed, GenericMessage)
        self.assertEqual((echoed.TYPE, echoed.front, echoed.data), (0x7FF0, b"front-bytes", b"data" * 1000))
        self.assertEqual(self.failures, [])

    def test_rev1(self):
        return self._echo_roundtrip(True)

    def test_rev0(self):
        return self._echo_roundtrip(False)

    @defer.inlineCallbacks
    def test_secure_only_client_fails_with_bad_method(self):
        from msgr2tx.core.constants import ConnectionMode
        handler = NoneClientHandler(ADMIN)
        handler.allowed_modes = (ConnectionMode.SECURE,)
        d = connect(reactor, self.address, [handler],
                    ConnectionConfig(modes=(ConnectionMode.SECURE,)), timeout=5)
        err = yield self.assertFailure(d, AuthBadMethod)
        self.assertEqual(err.result, -95)

    @defer.inlineCallbacks
    def test_handshake_timeout(self):
        silent = reactor.listenTCP(0, protocol.Factory.forProtocol(protocol.Protocol), interface="127.0.0.1")
        self.addCleanup(silent.stopListening)
        d = connect(reactor, "v2:127.0.0.1:%d" % silent.getHost().port,
                    [NoneClientHandler(ADMIN)], ConnectionConfig(), timeout=0.3)
        yield self.assertFailure(d, HandshakeTimeout)


class RawClient(protocol.Protocol):
    """Sends given bytes, then optionally closes; records whether the server closed."""

    def __init__(self, payload, close_after):
        self.payload = payload
        self.close_after = close_after
        self.closed = defer.Deferred()
        self.received = b""

    def connectionMade(self):
        self.transport.write(self.payload)
        if self.close_after:
            self.transport.loseConnection()

    def dataReceived(self, data):
        self.received += data

    def connectionLost(self, reason):
        self.reason = reason
        self.closed.callback(None)


def banner(supported=1):
    return b"ceph v2\n" + struct.pack("<HQQ", 16, supported, 0)


def hello_frame(rev1=True):
    return b"".join(FrameWriter(rev1).assemble(
        Tag.HELLO, [F.Hello(EntityType.CLIENT, entity_addr_t.parse("v2:127.0.0.1:3300")).encode()]))


def raw_preamble(tag, count, lengths, flags=0):
    slots = []
    for i in range(4):
        slots += [lengths[i] if i < len(lengths) else 0, 8 if i < len(lengths) else 0]
    body = struct.pack("<BBIHIHIHIHBB", tag, count, *slots, flags, 0)
    return body + struct.pack("<I", preamble_crc(body))


class BadClientTests(TestCase):
    """Each bad input closes that connection; the server goes on serving."""

    def setUp(self):
        self.factory = Msgr2ServerFactory([NoneServerHandler()], EchoReceiver(),
                                          config=ConnectionConfig(entity_type=EntityType.MON, entity_num=0,
                                                                  max_control=4096))
        self.port = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.portnum = self.port.getHost().port
        self.failures = []
        self.warnings = []
        globalLogPublisher.addObserver(self._observe)
        self.addCleanup(globalLogPublisher.removeObserver, self._observe)

    def _observe(self, event):
        if event.get("log_failure") is not None or event.get("isError"):
            self.failures.append(event)
        if event.get("error_type"):
            self.warnings.append(event["error_type"])

    @defer.inlineCallbacks
    def _send(self, payload, close_after=False):
        cc = protocol.ClientCreator(reactor, RawClient, payload, close_after)
        p = yield cc.connectTCP("127.0.0.1", self.portnum)
        timeout = reactor.callLater(5, p.transport.abortConnection)
        yield p.closed
        if timeout.active():
            timeout.cancel()
        return p

    @defer.inlineCallbacks
    def _assert_still_serving(self):
        p = yield connect(reactor, "v2:127.0.0.1:%d" % self.portnum, [NoneClientHandler(ADMIN)],
                          ConnectionConfig(), timeout=5)
        rtt = yield p.keepalive()
        self.assertGreater(rtt, 0)
        p.transport.loseConnection()
        yield task.deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(self.failures, [])

    @defer.inlineCallbacks
    def _expect_close(self, payload, error_type):
        p = yield self._send(payload)
        # the server answered with its banner and HELLO, then closed on us
        self.assertTrue(p.received.startswith(b"ceph v2\n"))
        self.assertIn(error_type, self.warnings)
        yield self._assert_still_serving()

    @defer.inlineCallbacks
    def test_truncated_at_every_offset(self):
        data = banner() + hello_frame()
        for cut in range(len(data)):
            yield self._send(data[:cut], close_after=True)
        yield self._assert_still_serving()

    def test_bad_preamble_crc(self):
        frame = bytearray(hello_frame())
        frame[30] ^= 0xFF
        return self._expect_close(banner() + bytes(frame), "CrcMismatch")

    def test_segment_crc_mismatch(self):
        frame = bytearray(hello_frame())
        frame[40] ^= 0x01
        return self._expect_close(banner() + bytes(frame), "CrcMismatch")

    def test_segment_count_zero(self):
        return self._expect_close(banner() + raw_preamble(Tag.HELLO, 0, []), "BadSegmentCount")

    def test_segment_count_five(self):
        return self._expect_close(banner() + raw_preamble(Tag.HELLO, 5, [1, 1, 1, 1]), "BadSegmentCount")

    def test_length_above_maximum(self):
        return self._expect_close(banner() + raw_preamble(Tag.HELLO, 1, [1 << 30]), "FrameTooLarge")

    def test_unknown_tag(self):
        return self._expect_close(banner() + raw_preamble(99, 1, [8]), "UnknownTag")

    def test_out_of_state_frame(self):
        frame = b"".join(FrameWriter(True).assemble(Tag.AUTH_DONE, [F.AuthDone(1, 1, b"").encode()]))
        return self._expect_close(banner() + hello_frame() + frame, "UnexpectedFrame")

    def test_msgr1_client(self):
        return self._expect_close(b"ceph v027" + bytes(200), "Msgr1Banner")

    def test_garbage(self):
        return self._expect_close(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "BannerError")


@implementer(IServerAuthHandler)
class RefuseEveryone:
    """A server auth handler that refuses every request, as a monitor refuses a wrong key."""

    method = NoneServerHandler.method
    allowed_modes = NoneServerHandler.allowed_modes

    def __init__(self):
        self.requests = 0

    def handle_request(self, request):
        self.requests += 1
        return AuthReject(-errno.EACCES, "refused for the test")


class ReconnectBackoffTests(TestCase):
    """
    A peer that accepts TCP but refuses the handshake must not be redialled
    at the first backoff step forever: failed handshakes grow the delay
    as failed connects do, and READY resets it.
    """

    timeout = 30

    @defer.inlineCallbacks
    def test_failed_handshakes_back_off(self):
        from msgr2tx.client import ReconnectingClient

        refuse = RefuseEveryone()
        port = reactor.listenTCP(0, Msgr2ServerFactory([refuse], EchoReceiver()), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        client = ReconnectingClient(reactor, "v2:127.0.0.1:%d" % port.getHost().port,
                                    [NoneClientHandler(EntityName.parse("client.admin"))],
                                    initial_backoff=0.05, max_backoff=10.0, timeout=5)
        client.startService()
        self.addCleanup(client.stopService)
        yield task.deferLater(reactor, 1.6, lambda: None)
        # delays 0.05, 0.1, 0.2, 0.4, 0.8 (plus jitter): about five attempts,
        # where a fixed first step would have made about twenty
        self.assertGreaterEqual(refuse.requests, 3)
        self.assertLessEqual(refuse.requests, 7)
        self.assertEqual(client.failed_handshakes, refuse.requests)
        self.assertEqual(client.connections, 0)


class MonClientWithoutConnectionTests(TestCase):
    """Calls that need a monitor connection fail their Deferred, not with an AttributeError."""

    def test_get_version_and_renewal_fail_cleanly(self):
        from msgr2tx.errors import ConnectionClosed
        from msgr2tx.clients.monclient import MonClient

        monclient = MonClient(resend_on_reconnect=True)
        self.failureResultOf(monclient.get_version("osdmap"), ConnectionClosed)
        self.failureResultOf(monclient.request_rotating())
        self.failureResultOf(monclient._auth_request(b"", lambda bl: bl, "renewal"), ConnectionClosed)


class _ShapedAuth(NoneServerHandler):
    """Auth none whose answer comes back in one of the shapes a handler may use."""

    def __init__(self, shape):
        super().__init__()
        self.shape = shape

    def handle_request(self, request):
        from msgr2tx.errors import AuthRejected
        if self.shape == "raise":
            raise AuthRejected("refused by raising")
        result = NoneServerHandler.handle_request(self, request)
        if self.shape == "deferred":
            return task.deferLater(reactor, 0, lambda: result)
        if self.shape == "coroutine":
            async def later():
                await task.deferLater(reactor, 0, lambda: None)
                return result
            return later()
        if self.shape == "failed":
            return defer.fail(AuthRejected("refused through a Deferred"))
        return result


class AuthStepShapesTests(TestCase):
    """
    A server auth handler may answer with a value, a Deferred or a
    coroutine, or refuse by raising AuthRejected (at once or through the
    Deferred): the handshake ends the same way for each.
    """

    timeout = 30

    @defer.inlineCallbacks
    def _connect(self, shape):
        factory = Msgr2ServerFactory([_ShapedAuth(shape)], EchoReceiver())
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        p = yield connect(reactor, "v2:127.0.0.1:%d" % port.getHost().port,
                          [NoneClientHandler(EntityName.parse("client.admin"))], timeout=5)
        p.close()
        return p.info, factory.config.entity_type

    @defer.inlineCallbacks
    def test_accepting_shapes(self):
        for shape in ("value", "deferred", "coroutine"):
            info, server_type = yield self._connect(shape)
            self.assertEqual(info.peer_name.type, server_type)

    @defer.inlineCallbacks
    def test_refusing_shapes(self):
        for shape in ("raise", "failed"):
            with self.assertRaises(AuthBadMethod):
                yield self._connect(shape)


class ReentrantDeliveryTests(TestCase):
    """
    A transport that delivers bytes while the protocol is still dispatching
    (a test double or wrapper that writes through synchronously): the bytes
    handed to C{dataReceived} from inside a receiver are read after the
    current batch, not dropped.
    """

    def test_bytes_delivered_from_inside_a_dispatch_are_read(self):
        from twisted.internet.address import IPv4Address
        from twisted.internet.testing import StringTransport

        from msgr2tx.factory import Msgr2ClientFactory

        clock = task.Clock()
        later = []
        got = []

        class Feeding(Collector):
            def messageReceived(self, protocol, message):
                got.append(struct.unpack_from("<Q", message.front)[0])
                if later:
                    protocol.dataReceived(later.pop())

        config = ConnectionConfig(entity_type=EntityType.OSD, entity_num=0)
        server_factory = Msgr2ServerFactory([NoneServerHandler()], Feeding(), config, reactor=clock)
        client_factory = Msgr2ClientFactory([NoneClientHandler(EntityName.parse("client.admin"))],
                                            ConnectionConfig(), receiver=Collector(), reactor=clock)
        caddr, saddr = IPv4Address("TCP", "127.0.0.1", 40000), IPv4Address("TCP", "127.0.0.1", 6800)
        server, client = server_factory.buildProtocol(caddr), client_factory.buildProtocol(saddr)
        st = StringTransport(hostAddress=saddr, peerAddress=caddr)
        ct = StringTransport(hostAddress=caddr, peerAddress=saddr)
        server.makeConnection(st)
        client.makeConnection(ct)
        for _ in range(20):
            for src, dst in ((ct, server), (st, client)):
                data = src.value()
                if data:
                    src.clear()
                    dst.dataReceived(data)
        self.assertIsNotNone(client.info, "no handshake")
        client.sendMessage(GenericMessage(0x7FF0, struct.pack("<Q", 1)))
        first = ct.value()
        ct.clear()
        for n in (2, 3):
            client.sendMessage(GenericMessage(0x7FF0, struct.pack("<Q", n) + bytes(5000)))
        rest = ct.value()
        ct.clear()
        # message 1 and half of the rest now; the other half from inside message 1's dispatch
        later.append(rest[len(rest) // 2:])
        server.dataReceived(first + rest[:len(rest) // 2])
        self.assertEqual(got, [1, 2, 3])
        server.transport.loseConnection()
        client.transport.loseConnection()
