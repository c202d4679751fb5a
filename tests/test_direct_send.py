"""
The direct send path (L{Msgr2Protocol._send_direct}): on a plain TCP
transport with nothing buffered, frames go to the socket with
C{socket.sendmsg} at once; what the kernel does not take waits in the
protocol's own queue and goes out, in order, when the socket is writable.  Over real loopback TCP, through a
recording relay, the bytes that arrive are compared with the bytes the core
produced, in crc and secure mode, msgr2.0 and msgr2.1, with cephx.
"""

import os
import socket
import struct

from twisted.internet import defer, protocol, reactor, task
from twisted.protocols import policies
from twisted.trial.unittest import SynchronousTestCase, TestCase

from msgr2tx.auth.cephx import CephxAuthProvider
from msgr2tx.auth.none import NoneClientHandler, NoneServerHandler
from msgr2tx.client import connect
from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.connection import Msgr2Connection
from msgr2tx.core.constants import ConnectionMode
from msgr2tx.core.encoding import EntityName, EntityType
from msgr2tx.core.messages import GenericMessage
from msgr2tx.factory import Msgr2ServerFactory
from msgr2tx.protocol import Msgr2Protocol
from tests.test_large_frames import Collect, keyring

ADMIN = EntityName.parse("client.admin")


class _RelayIn(protocol.Protocol):
    """The relay's side facing the msgr2 client: records what the client wrote."""

    def connectionMade(self):
        relay = self.factory.relay
        relay.inbound = self
        self.transport.setTcpNoDelay(True)
        if relay.rcvbuf:
            self.transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, relay.rcvbuf)
        self.transport.stopReading()  # until the way to the server is open
        out = protocol.ClientFactory()
        out.protocol = _RelayOut
        out.relay = relay
        reactor.connectTCP("127.0.0.1", relay.target, out)

    def dataReceived(self, data):
        self.factory.relay.upstream.append(data)
        self.factory.relay.outbound.transport.write(data)

    def connectionLost(self, reason):
        out = self.factory.relay.outbound
        if out is not None:
            out.transport.loseConnection()


class _RelayOut(protocol.Protocol):
    """The relay's side facing the msgr2 server: records what the server wrote."""

    def connectionMade(self):
        relay = self.factory.relay
        relay.outbound = self
        self.transport.setTcpNoDelay(True)
        if not relay.held:
            relay.inbound.transport.startReading()

    def dataReceived(self, data):
        self.factory.relay.downstream.append(data)
        self.factory.relay.inbound.transport.write(data)

    def connectionLost(self, reason):
        self.factory.relay.inbound.transport.loseConnection()


class Relay:
    """
    A TCP relay in front of C{target} that keeps every byte passing in each
    direction; L{hold} stops it reading from the client (a slow reader),
    L{release} reads again.
    """

    def __init__(self, target, rcvbuf=0):
        self.target = target
        self.rcvbuf = rcvbuf
        self.upstream = []
        self.downstream = []
        self.inbound = self.outbound = None
        self.held = False
        factory = protocol.Factory()
        factory.protocol = _RelayIn
        factory.relay = self
        self.port = reactor.listenTCP(0, factory, interface="127.0.0.1")

    def hold(self):
        self.held = True
        self.inbound.transport.stopReading()

    def release(self):
        self.held = False
        self.inbound.transport.startReading()

    def close(self):
        for side in (self.inbound, self.outbound):
            if side is not None and side.transport.connected:
                side.transport.abortConnection()
        return self.port.stopListening()


class _SocketProxy:
    """A socket with its sendmsg replaced (the rest passed on)."""

    def __init__(self, sock, sendmsg):
        self._sock = sock
        self.sendmsg = sendmsg

    def __getattr__(self, name):
        return getattr(self._sock, name)


class DirectSendTests(TestCase):

    timeout = 120

    def setUp(self):
        # what every connection's core handed to the protocol to send, in order
        self.produced = {}
        #: parts that were views of a frame writer's reused buffer
        self.views = []
        original = Msgr2Connection.data_to_send

        def data_to_send(conn):
            parts = original(conn)
            self.produced.setdefault(conn, []).extend(bytes(p) for p in parts)
            self.views.extend(len(p) for p in parts if type(p) is memoryview)
            return parts
        self.patch(Msgr2Connection, "data_to_send", data_to_send)
        # what each direct send was given, whether bytes were waiting
        # already (in Twisted's buffer or our own queue), and how many of
        # the given bytes did not go to the socket in this call
        self.direct = []
        send_direct = Msgr2Protocol._send_direct

        def recording(protocol_, parts):
            transport = protocol_.transport
            before = protocol_._unsent_bytes
            buffered = bool(transport.dataBuffer or transport._tempDataBuffer or before)
            given = sum(len(p) for p in parts)
            rest = send_direct(protocol_, parts)
            # what is left: the parts returned for writeSequence, and what
            # joined our own queue (see Msgr2Protocol._unsent)
            left = sum(len(p) for p in rest) + protocol_._unsent_bytes - before
            self.direct.append((protocol_, buffered, given, left, rest is parts))
            return rest
        self.patch(Msgr2Protocol, "_send_direct", recording)

    @defer.inlineCallbacks
    def _session(self, mode, rev1=True, rcvbuf=0, auth="cephx", **client_config):
        collect = Collect()
        if auth == "cephx":
            path = keyring(self.mktemp())
            server_auth = [CephxAuthProvider().serverHandler("keyring=%s" % path)]
            client_auth = [CephxAuthProvider().clientHandler("keyring=%s" % path)]
        else:
            server_auth, client_auth = [NoneServerHandler()], [NoneClientHandler(ADMIN)]
        factory = Msgr2ServerFactory(server_auth, collect,
                                     ConnectionConfig(entity_type=EntityType.MON, entity_num=0, modes=(mode,)))
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        relay = Relay(port.getHost().port, rcvbuf=rcvbuf)
        self.addCleanup(relay.close)
        p = yield connect(reactor, "v2:127.0.0.1:%d" % port.getHost().port, client_auth,
                          ConnectionConfig(modes=(mode,), revision1=rev1, **client_config), timeout=10,
                          via="tcp:127.0.0.1:%d" % relay.port.getHost().port)
        self.addCleanup(p.abort)
        self.assertEqual((p.info.con_mode, p.info.rev1), (mode, rev1))
        # (out of the READY dispatch, where sends are batched until it ends)
        yield task.deferLater(reactor, 0, lambda: None)
        return p, collect, relay

    @defer.inlineCallbacks
    def _settle(self, relay, p, collect, count):
        """Wait for C{count} messages, then until the relay has passed on everything both cores produced."""
        if len(collect.messages) < count:
            yield collect.wait_for(count)
        for _ in range(500):
            if (b"".join(relay.upstream) == b"".join(self.produced[p.conn])
                    and b"".join(relay.downstream) == b"".join(self.produced[collect.protocol.conn])):
                return
            yield task.deferLater(reactor, 0.01, lambda: None)

    def _check_streams(self, relay, p, collect):
        """The bytes that crossed the relay are exactly those the cores produced, in order, both ways."""
        up = b"".join(relay.upstream)
        expected = b"".join(self.produced[p.conn])
        self.assertEqual(len(up), len(expected))
        self.assertTrue(up == expected, "the client's stream differs from what its core produced")
        down = b"".join(relay.downstream)
        self.assertTrue(down == b"".join(self.produced[collect.protocol.conn]),
                        "the server's stream differs from what its core produced")

    def _check_messages(self, collect, payloads):
        got = [(struct.unpack("<I", bytes(m.front))[0], bytes(m.data)) for m in collect.messages]
        self.assertEqual(len(got), len(payloads))
        self.assertTrue(got == list(enumerate(payloads)), "messages arrived changed or out of order")

    @defer.inlineCallbacks
    def _stream(self, mode, rev1):
        p, collect, relay = yield self._session(mode, rev1)
        self.assertTrue(p._direct_send)
        self.assertTrue(collect.protocol._direct_send)
        payloads = [os.urandom(n) for n in (4 << 20, 1000, 0, 3 << 20, 100, 4 << 20, 5000)]
        for i, data in enumerate(payloads):
            p.sendMessage(GenericMessage(0x7F20, front=struct.pack("<I", i), data=data))
        yield self._settle(relay, p, collect, len(payloads))
        self._check_messages(collect, payloads)
        self._check_streams(relay, p, collect)
        # the handshake and the messages went out directly, at least in part
        ours = [d for d in self.direct if d[0] is p]
        self.assertTrue(any(not buffered and left == 0 and given > 0 for _, buffered, given, left, _ in ours))
        # the server's acks and handshake frames too
        self.assertTrue(any(d[0] is collect.protocol and d[3] == 0 for d in self.direct))
        if mode == ConnectionMode.SECURE:
            # large frames were encrypted into the writer's reused buffer
            # (one sent in the same loop while the socket still holds the
            # buffer's last frame in our queue gets a buffer of its own)
            self.assertGreaterEqual(len(self.views), 2)
            self.assertGreater(min(self.views), 1000)
            self.assertFalse(p.conn.writer.lent)
        else:
            self.assertEqual(self.views, [])

    def test_crc_rev1(self):
        return self._stream(ConnectionMode.CRC, True)

    def test_crc_rev0(self):
        return self._stream(ConnectionMode.CRC, False)

    def test_secure_rev1(self):
        return self._stream(ConnectionMode.SECURE, True)

    def test_secure_rev0(self):
        return self._stream(ConnectionMode.SECURE, False)

    @defer.inlineCallbacks
    def _partial(self, mode):
        """
        A small send buffer and a reader that stops: sendmsg takes part of a
        frame, the rest waits in our own queue (no copy: views of the parts),
        later frames queue behind it, and once the reader goes on the stream
        arrives whole and in order.
        """
        p, collect, relay = yield self._session(mode, rcvbuf=16384)
        p.transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        relay.hold()
        del self.direct[:]
        # (the first frame's rest stays below bufferSize: the transport does
        # not pause us; in secure mode it is a view of the reused buffer,
        # which the second large frame overwrites)
        payloads = [os.urandom(n) for n in (100_000, 10, 2 << 20, 70_000, 1 << 20, 7)]
        for i, data in enumerate(payloads):
            p.sendMessage(GenericMessage(0x7F20, front=struct.pack("<I", i), data=data))
        yield task.deferLater(reactor, 0.05, lambda: None)
        ours = [d for d in self.direct if d[0] is p]
        # the first frame went out in part, the rest of it to our queue
        self.assertTrue(any(0 < left < given for _, _, given, left, _ in ours), ours)
        # later frames found bytes waiting and queued whole behind them
        self.assertTrue(any(buffered and left == given and not passed for _, buffered, given, left, passed in ours),
                        ours)
        # nothing went to Twisted's buffer, and what waits is no copy of what the core produced
        self.assertFalse(p.transport.dataBuffer or p.transport._tempDataBuffer)
        self.assertTrue(p._unsent)
        self.assertTrue(all(type(x) in (bytes, memoryview) for x in p._unsent))
        self.assertTrue(any(type(x) is memoryview for x in p._unsent))
        self.assertEqual(p._unsent_bytes, sum(len(x) for x in p._unsent))
        self.assertLess(len(collect.messages), len(payloads))
        if mode == ConnectionMode.SECURE:
            # the first large frame went into the reused buffer; its unsent
            # end waits in our queue as a view of it, so the next large
            # frame gets a buffer of its own (the stream check below shows
            # the view was not overwritten)
            self.assertGreaterEqual(len(self.views), 1)
            self.assertTrue(p.conn.writer.lent)
        relay.release()
        yield self._settle(relay, p, collect, len(payloads))
        self._check_messages(collect, payloads)
        self._check_streams(relay, p, collect)
        # once our queue drained, sends went direct again
        self.assertIsNone(p._unsent)
        self.assertEqual(p._unsent_bytes, 0)
        if mode == ConnectionMode.SECURE:
            self.assertFalse(p.conn.writer.lent)
        del self.direct[:]
        p.sendMessage(GenericMessage(0x7F20, front=struct.pack("<I", len(payloads)), data=b"after"))
        yield self._settle(relay, p, collect, len(payloads) + 1)
        self.assertTrue(any(d[0] is p and not d[1] and d[3] == 0 for d in self.direct), self.direct)
        self._check_streams(relay, p, collect)

    def test_partial_crc(self):
        return self._partial(ConnectionMode.CRC)

    def test_partial_secure(self):
        return self._partial(ConnectionMode.SECURE)

    @defer.inlineCallbacks
    def test_sent_frames_free_their_buffers(self):
        """
        Large secure frames that the socket takes whole free the writer's
        reused buffer at once: each next one is written into a reused
        buffer again, not into a fresh one.
        """
        p, collect, relay = yield self._session(ConnectionMode.SECURE)
        # (room for several frames: the kernel takes each one whole)
        p.transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        del self.views[:]
        payloads = [os.urandom(300_000) for _ in range(4)]
        for i, data in enumerate(payloads):
            p.sendMessage(GenericMessage(0x7F20, front=struct.pack("<I", i), data=data))
            self.assertIsNone(p._unsent)
            self.assertFalse(p.conn.writer.lent)
        self.assertEqual(len(self.views), 4)
        yield self._settle(relay, p, collect, len(payloads))
        self._check_messages(collect, payloads)
        self._check_streams(relay, p, collect)

    @defer.inlineCallbacks
    def test_close_waits_for_the_queue(self):
        """
        close() while the socket has not taken a large frame: the rest,
        waiting in our queue, still goes out before the connection closes,
        and the server gets the whole message.
        """
        p, collect, relay = yield self._session(ConnectionMode.CRC, rcvbuf=16384)
        p.transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        relay.hold()
        # (less than bufferSize waits: the protocol is not paused, so a
        # message sent after the close is written, not held in the session)
        data = os.urandom(200_000)
        p.sendMessage(GenericMessage(0x7F20, front=struct.pack("<I", 0), data=data))
        self.assertTrue(p._unsent)
        self.assertFalse(p.conn.tx_paused)
        lost = defer.Deferred()
        p.notifyOnLost(lambda: lost.called or lost.callback(None))
        p.close()
        # a message sent while the close waits (the connection is not
        # closed yet): the queue goes to Twisted's buffer first, as bytes,
        # and this one after it
        p.sendMessage(GenericMessage(0x7F20, front=struct.pack("<I", 1), data=b"after the close"))
        self.assertIsNone(p._unsent)
        self.assertTrue(p.transport._tempDataBuffer)
        yield task.deferLater(reactor, 0.05, lambda: None)
        self.assertFalse(lost.called)  # (still writing what waits)
        relay.release()
        yield collect.wait_for(2)
        self._check_messages(collect, [data, b"after the close"])
        yield lost
        self.assertIsNone(p._unsent)

    @defer.inlineCallbacks
    def test_abort_drops_the_queue(self):
        """abort() with bytes queued: the connection goes at once and the queue with it."""
        p, collect, relay = yield self._session(ConnectionMode.CRC, rcvbuf=16384)
        p.transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        relay.hold()
        p.sendMessage(GenericMessage(0x7F20, front=struct.pack("<I", 0), data=os.urandom(3 << 20)))
        self.assertTrue(p._unsent)
        lost = defer.Deferred()
        p.notifyOnLost(lambda: lost.called or lost.callback(None))
        p.abort()
        yield lost
        self.assertIsNone(p._unsent)
        self.assertEqual(p._unsent_bytes, 0)
        self.assertEqual(collect.messages, [])

    @defer.inlineCallbacks
    def test_more_parts_than_iov_max(self):
        """A flush of more parts than one sendmsg takes (IOV_MAX) goes out in several calls, in order."""
        from msgr2tx.protocol import IOV_MAX
        p, collect, relay = yield self._session(ConnectionMode.CRC, auth="none")
        sizes = []
        original = p.transport.socket.sendmsg

        def sendmsg(buffers, *args):
            sizes.append(len(buffers))
            return original(buffers, *args)
        # (socket objects take no new attributes: the protocol's view of it is swapped for a proxy)
        p.transport.socket = _SocketProxy(p.transport.socket, sendmsg)
        count = 3 * IOV_MAX // 2
        payloads = [os.urandom(i % 50 + 1) for i in range(count)]
        # held by the core, then released together: one flush of about 3 parts a message
        p.conn.pause_tx()
        for i, data in enumerate(payloads):
            p.sendMessage(GenericMessage(0x7F20, front=struct.pack("<I", i), data=data))
        p.conn.resume_tx()
        p._flush()
        self.assertGreater(len(sizes), 1)
        self.assertEqual(max(sizes), IOV_MAX)
        self.assertGreater(sum(sizes), 2 * IOV_MAX)
        yield self._settle(relay, p, collect, len(payloads))
        self._check_messages(collect, payloads)
        self._check_streams(relay, p, collect)

    @defer.inlineCallbacks
    def test_backpressure_still_pauses(self):
        """
        A reader that stops: the transport still pauses the protocol (its
        buffer past bufferSize), messages wait in the session queue,
        whenWritable holds the sender, and all of it arrives in order later.
        """
        p, collect, relay = yield self._session(ConnectionMode.CRC, auth="none", send_queue_bytes=4 << 20)
        relay.hold()
        payloads = [os.urandom(1 << 20) for _ in range(40)]
        for i, data in enumerate(payloads):
            p.sendMessage(GenericMessage(0x7F20, front=struct.pack("<I", i), data=data))
        for _ in range(100):
            if p.transport.producerPaused:
                break
            yield task.deferLater(reactor, 0.01, lambda: None)
        self.assertTrue(p.transport.producerPaused, "the transport never paused us")
        self.assertTrue(p.conn.tx_paused)
        self.assertGreater(len(p.conn.session.pending), 0)
        self.assertFalse(p.writable)
        writable = p.whenWritable()
        self.assertFalse(writable.called)
        relay.release()
        yield writable
        yield self._settle(relay, p, collect, len(payloads))
        self._check_messages(collect, payloads)
        self._check_streams(relay, p, collect)
        self.assertFalse(p.transport.producerPaused)


class NotDirectTests(TestCase):
    """Transports that are not a plain TCP connection carrying only us keep using writeSequence."""

    timeout = 60

    @defer.inlineCallbacks
    def _echo(self, p, collect):
        written = []
        original = p.transport.writeSequence

        def writeSequence(parts):
            written.append(sum(len(x) for x in parts))
            return original(parts)
        p.transport.writeSequence = writeSequence
        done = collect.wait_for(2)
        data = os.urandom(2 << 20)
        p.sendMessage(GenericMessage(0x7F20, front=b"a", data=data))
        p.sendMessage(GenericMessage(0x7F20, front=b"b", data=b"x"))
        yield done
        self.assertEqual([(bytes(m.front), bytes(m.data)) for m in collect.messages], [(b"a", data), (b"b", b"x")])
        self.assertGreater(sum(written), 2 << 20)

    @defer.inlineCallbacks
    def test_wrapped_server_protocol(self):
        # a wrapper (WrappingFactory: the protocol's transport is the wrapper) sees every byte
        collect = Collect()
        factory = Msgr2ServerFactory([NoneServerHandler()], collect,
                                     ConnectionConfig(entity_type=EntityType.MON, entity_num=0))
        wrapped = policies.WrappingFactory(factory)
        port = reactor.listenTCP(0, wrapped, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        p = yield connect(reactor, "v2:127.0.0.1:%d" % port.getHost().port, [NoneClientHandler(ADMIN)],
                          ConnectionConfig(), timeout=10)
        self.addCleanup(p.abort)
        server = collect.protocol
        self.assertFalse(server._direct_send)
        self.assertIsInstance(server.transport, policies.ProtocolWrapper)
        # the client is a plain TCP connection (through the endpoints' _WrappingProtocol): direct
        self.assertTrue(p._direct_send)
        # the server's answers go through the wrapper: send the client something and check it arrives
        answers = Collect()
        p.receiver = answers
        done = answers.wait_for(1)
        server.sendMessage(GenericMessage(0x7F21, front=b"from the server", data=os.urandom(1 << 20)))
        yield done
        self.assertEqual(bytes(answers.messages[0].front), b"from the server")

    @defer.inlineCallbacks
    def test_transport_not_ours_alone(self):
        # a plain TCP transport whose protocol is no longer us (as after
        # startTLS, or a wrapper installed later): everything to writeSequence
        collect = Collect()
        factory = Msgr2ServerFactory([NoneServerHandler()], collect,
                                     ConnectionConfig(entity_type=EntityType.MON, entity_num=0))
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        p = yield connect(reactor, "v2:127.0.0.1:%d" % port.getHost().port, [NoneClientHandler(ADMIN)],
                          ConnectionConfig(), timeout=10)
        self.addCleanup(p.abort)
        parts = [b"abc", b"def"]
        self.assertTrue(p._direct_send)
        # a wrapper that passes every byte on to us: reads and writes go through Twisted
        wrapper = policies.ProtocolWrapper(policies.WrappingFactory(protocol.Factory()), p)
        real = p.transport.protocol
        p.transport.protocol = wrapper
        try:
            self.assertIs(p._send_direct(parts), parts)
            yield self._echo(p, collect)
        finally:
            p.transport.protocol = real
        p.transport.TLS = True
        try:
            self.assertIs(p._send_direct(parts), parts)
        finally:
            del p.transport.TLS

    @defer.inlineCallbacks
    def test_tls(self):
        from twisted.internet.endpoints import serverFromString
        from tests.test_tls import make_pki
        directory = self.mktemp()
        os.makedirs(directory)
        make_pki(directory)
        collect = Collect()
        factory = Msgr2ServerFactory([NoneServerHandler()], collect,
                                     ConnectionConfig(entity_type=EntityType.MON, entity_num=0))
        description = "ssl:0:interface=127.0.0.1:privateKey=%s:certKey=%s" % (
            os.path.join(directory, "localhost.key"), os.path.join(directory, "localhost.pem"))
        port = yield serverFromString(reactor, description).listen(factory)
        self.addCleanup(port.stopListening)
        number = port.getHost().port
        p = yield connect(reactor, "v2:127.0.0.1:%d" % number, [NoneClientHandler(ADMIN)], ConnectionConfig(),
                          timeout=20, via="tls:host=localhost:port=%d:trustRoots=%s"
                          % (number, os.path.join(directory, "cadir")))
        lost = defer.Deferred()
        p.notifyOnLost(lambda: lost.called or lost.callback(None))
        self.addCleanup(lambda: None if lost.called else (p.abort(), lost)[1])
        self.assertFalse(p._direct_send)
        self.assertFalse(collect.protocol._direct_send)
        yield self._echo(p, collect)
        server_lost = defer.Deferred()
        collect.protocol.notifyOnLost(lambda: server_lost.called or server_lost.callback(None))
        p.abort()
        yield defer.DeferredList([lost, server_lost])


class ReusedBufferTests(SynchronousTestCase):
    """The frame writer's reused buffer for large secure frame parts (no I/O: the core alone)."""

    def _writers(self, rev1):
        from msgr2tx.core.crypto import TxCipher, split_connection_secret
        from msgr2tx.core.framing import FrameWriter
        key, _, tx = split_connection_secret(bytes(range(64)), accepting=False)
        plain, views = FrameWriter(rev1), FrameWriter(rev1)
        plain.cipher, views.cipher = TxCipher(key, tx, rev1), TxCipher(key, tx, rev1)
        views.views = True
        return plain, views

    def _check(self, rev1):
        from msgr2tx.core.constants import Tag
        plain, views = self._writers(rev1)
        frames = [[b"h" * 41, os.urandom(100), b"", os.urandom(n)] for n in (300_000, 5, 200_000, 70_000)]
        lent = []
        for segments in frames:
            expected = plain.assemble(Tag.MESSAGE, segments, (8, 8, 8, 4096))
            got = views.assemble(Tag.MESSAGE, segments, (8, 8, 8, 4096))
            # the same bytes on the wire as encrypting a joined plaintext
            self.assertEqual(b"".join(bytes(p) for p in got), b"".join(expected))
            lent.append([p for p in got if type(p) is memoryview])
            views.release()
        self.assertEqual([len(x) for x in lent], [1, 0, 1, 1])
        self.assertTrue(all(v.readonly for x in lent for v in x))
        self.assertFalse(views.lent)

    def test_rev1(self):
        self._check(True)

    def test_rev0(self):
        self._check(False)

    def test_lent_buffer_is_not_overwritten(self):
        from msgr2tx.core.constants import Tag
        plain, views = self._writers(True)
        frames = [[b"h" * 41, bytes([i]), b"", os.urandom(100_000)] for i in range(4)]
        expected = [plain.assemble(Tag.MESSAGE, f, (8, 8, 8, 4096)) for f in frames]

        def lent_view(parts):
            return [p for p in parts if type(p) is memoryview]

        first = views.assemble(Tag.MESSAGE, frames[0], (8, 8, 8, 4096))
        second = views.assemble(Tag.MESSAGE, frames[1], (8, 8, 8, 4096))
        v1, v2 = lent_view(first)[0], lent_view(second)[0]
        # two buffers, both lent: the third frame gets a buffer of its own
        self.assertIsNot(v1.obj, v2.obj)
        self.assertTrue(views.lent)
        third = views.assemble(Tag.MESSAGE, frames[2], (8, 8, 8, 4096))
        self.assertEqual([type(p) for p in third], [bytes, bytes])
        kept = [bytes(v1), bytes(v2)]
        # the first one's views are done with, the second's not: the fourth
        # frame reuses the first buffer and leaves the second alone
        views.release([v2.obj])
        self.assertTrue(views.lent)
        fourth = views.assemble(Tag.MESSAGE, frames[3], (8, 8, 8, 4096))
        self.assertIs(lent_view(fourth)[0].obj, v1.obj)
        self.assertEqual(bytes(v2), kept[1])
        self.assertEqual(b"".join(bytes(p) for p in second), b"".join(expected[1]))
        self.assertEqual(b"".join(bytes(p) for p in third), b"".join(expected[2]))
        self.assertEqual(b"".join(bytes(p) for p in fourth), b"".join(expected[3]))
        self.assertEqual(kept[0], b"".join(expected[0])[-len(kept[0]):])
        # all released
        views.release()
        self.assertFalse(views.lent)
