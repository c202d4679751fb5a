"""
Backpressure: priority order of held messages, a sender held back by a
peer that does not read, and a receiver whose slow dispatch stops reading.
"""

import struct

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import SynchronousTestCase, TestCase

from msgr2tx.auth.none import NoneClientHandler, NoneServerHandler
from msgr2tx.client import connect
from msgr2tx.core import events as E
from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.encoding import EntityName, EntityType
from msgr2tx.core.messages import GenericMessage
from msgr2tx.core.session import OutQueue
from msgr2tx.factory import Msgr2ServerFactory
from msgr2tx.testing import CorePair

ADMIN = EntityName.parse("client.admin")


def numbered(n, priority=127, size=0):
    return GenericMessage(0x7FF0, struct.pack("<Q", n) + bytes(size), priority=priority)


class PriorityTests(SynchronousTestCase):

    def test_out_queue_order(self):
        q = OutQueue()
        for n, prio in enumerate([127, 64, 196, 127, 255, 64, 196]):
            q.append(numbered(n, prio))
        order = []
        while q:
            m = q.popleft()
            order.append((m.priority, struct.unpack_from("<Q", m.front)[0]))
        self.assertEqual(order, [(255, 4), (196, 2), (196, 6), (127, 0), (127, 3), (64, 1), (64, 5)])
        self.assertEqual(q.bytes, 0)

    def test_held_messages_go_out_by_priority(self):
        pair = CorePair([NoneClientHandler(ADMIN)], [NoneServerHandler()])
        pair.handshake()
        pair.client.pause_tx()
        for n, prio in enumerate([64, 127, 255, 127, 196], 1):
            pair.client.send_message(numbered(n, prio))
        pair.pump()
        self.assertEqual(pair.events_of("server", E.MessageReceived), [])
        pair.client.resume_tx()
        pair.pump()
        got = [e.message for e in pair.events_of("server", E.MessageReceived)]
        self.assertEqual([struct.unpack_from("<Q", m.front)[0] for m in got], [3, 5, 2, 4, 1])
        # sequence numbers follow the order on the wire
        self.assertEqual([m.seq for m in got], [1, 2, 3, 4, 5])
        self.assertEqual([m.priority for m in got], [255, 196, 127, 127, 64])


class Slow:
    """A receiver whose dispatch finishes only when the test says so."""

    def __init__(self):
        self.messages = []
        self.pending = []

    def connectionReady(self, protocol, info):
        self.protocol = protocol

    def connectionLost(self, protocol, reason):
        pass

    def messageReceived(self, protocol, message):
        self.messages.append(message)
        d = defer.Deferred()
        self.pending.append(d)
        return d

    def finish_all(self):
        pending, self.pending = self.pending, []
        for d in pending:
            d.callback(None)


class FlowTests(TestCase):

    timeout = 60

    def serve(self, receiver, **config):
        factory = Msgr2ServerFactory([NoneServerHandler()], receiver,
                                     ConnectionConfig(entity_type=EntityType.OSD, entity_num=0, **config))
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return "v2:127.0.0.1:%d" % port.getHost().port

    @defer.inlineCallbacks
    def test_receive_window_stops_reading(self):
        slow = Slow()
        address = self.serve(slow, receive_window_messages=4)
        p = yield connect(reactor, address, [NoneClientHandler(ADMIN)], ConnectionConfig(), timeout=5)
        self.addCleanup(p.transport.loseConnection)
        for n in range(1, 201):
            p.sendMessage(numbered(n, size=1000))
        yield task.deferLater(reactor, 0.3, lambda: None)
        # the server stopped reading once 5 dispatches were outstanding
        held = len(slow.messages)
        self.assertLess(held, 200)
        self.assertTrue(slow.protocol._rx_throttled)
        # as dispatches finish, reading resumes, until everything arrived
        for _ in range(200):
            slow.finish_all()
            if len(slow.messages) == 200 and not slow.pending:
                break
            yield task.deferLater(reactor, 0.01, lambda: None)
        self.assertEqual([struct.unpack_from("<Q", m.front)[0] for m in slow.messages], list(range(1, 201)))
        self.assertFalse(slow.protocol._rx_throttled)

    @defer.inlineCallbacks
    def test_sender_is_held_back_by_a_peer_that_does_not_read(self):
        slow = Slow()
        address = self.serve(slow, receive_window_messages=1, receive_window_bytes=1 << 20)
        limit = 2 << 20
        p = yield connect(reactor, address, [NoneClientHandler(ADMIN)], ConnectionConfig(send_queue_bytes=limit),
                          timeout=5)
        self.addCleanup(p.transport.loseConnection)
        size = 256 << 10
        sent = 0
        waited = 0
        highest_queue = 0
        # a well-behaved sender: wait for whenWritable before each message
        while sent < 120:
            d = p.whenWritable()
            if not d.called:
                waited += 1
                # the server finishes a dispatch every 50 ms while the sender
                # waits for room (once per wait is not enough: what it then
                # reads may not free enough of the socket buffers for the
                # kernel to call the sender's socket writable again)
                finisher = task.LoopingCall(slow.finish_all)
                finisher.start(0.05, now=False)
                d.addBoth(lambda result, finisher=finisher: (finisher.stop(), result)[1])
            yield d
            sent += 1
            p.sendMessage(numbered(sent, size=size))
            highest_queue = max(highest_queue, p.conn.session.pending.bytes)
        for _ in range(500):
            slow.finish_all()
            if len(slow.messages) == sent:
                break
            yield task.deferLater(reactor, 0.01, lambda: None)
        self.assertGreater(waited, 0, "the sender was never held back")
        # the queue never grew past the limit plus the message being sent
        self.assertLessEqual(highest_queue, limit + size + 8)
        self.assertEqual([struct.unpack_from("<Q", m.front)[0] for m in slow.messages], list(range(1, sent + 1)))

    @defer.inlineCallbacks
    def fill_until_paused(self, p):
        """Queue 40 MiB towards a peer that stopped reading until the transport pauses p."""
        for n in range(1, 41):
            p.sendMessage(numbered(n, size=1 << 20))
        for _ in range(100):
            if p.transport.producerPaused:
                break
            yield task.deferLater(reactor, 0.01, lambda: None)
        self.assertTrue(p.transport.producerPaused, "the transport never paused us")

    @defer.inlineCallbacks
    def test_close_while_the_transport_holds_us_paused(self):
        # Twisted closes a transport with a registered producer only once the
        # producer is gone: a close() while the transport has paused us (its
        # write buffer full) must still end the connection once the buffer
        # drains, not resume us as a producer and stay open
        slow = Slow()
        address = self.serve(slow, receive_window_messages=1)
        p = yield connect(reactor, address, [NoneClientHandler(ADMIN)], ConnectionConfig(), timeout=5)
        lost = defer.Deferred()
        original = p.connectionLost

        def connectionLost(reason):
            original(reason)
            if not lost.called:
                lost.callback(None)
        p.connectionLost = connectionLost
        self.addCleanup(lambda: p.transport.abortConnection() if p.transport.connected else None)
        yield self.fill_until_paused(p)
        p.close()
        # the server reads again; everything buffered goes out, then the close
        for _ in range(1000):
            slow.finish_all()
            if lost.called and slow.protocol._closed:
                break
            yield task.deferLater(reactor, 0.01, lambda: None)
        self.assertTrue(lost.called, "the connection stayed open after close()")
        # (and the server read all of it, then the end of the stream)
        self.assertTrue(slow.protocol._closed)

    @defer.inlineCallbacks
    def test_stopping_a_client_whose_peer_stopped_reading(self):
        # a ReconnectingClient with megabytes the peer will never read: its
        # stopService fires after abort_after seconds instead of never
        from msgr2tx.client import ReconnectingClient
        slow = Slow()
        address = self.serve(slow, receive_window_messages=1)
        client = ReconnectingClient(reactor, address, [NoneClientHandler(ADMIN)], ConnectionConfig(), timeout=5)
        client.startService()
        self.addCleanup(lambda: client.protocol and client.protocol.abort())
        p = yield client.whenReady()
        yield self.fill_until_paused(p)
        started = reactor.seconds()
        yield client.stopService(abort_after=0.5)
        self.assertLess(reactor.seconds() - started, 5.0)
        self.assertIsNone(client.protocol)
        # the server side stopped reading, so it has not seen the abort yet
        slow.protocol.transport.abortConnection()
        yield task.deferLater(reactor, 0.05, lambda: None)


class Counter:
    """A client-side receiver that counts the echoes it gets."""

    def __init__(self):
        self.received = []

    def connectionReady(self, protocol, info):
        pass

    def connectionLost(self, protocol, reason):
        pass

    def messageReceived(self, protocol, message):
        self.received.append(struct.unpack_from("<Q", message.front)[0])


class NoMutualStallTests(TestCase):
    """
    Two msgr2tx peers that both stopped reading because both send queues
    were full would wait for each other for ever: an echo client whose
    last message took its queue to the limit, and the echo server whose
    answers did the same.  Only the accepting side stops reading for a
    full queue, so the connecting side always drains the other's queue.
    """

    timeout = 60

    @defer.inlineCallbacks
    def test_echo_with_both_queues_at_their_limit(self):
        from msgr2tx.services import EchoReceiver
        limit = 1 << 20
        small_buffers = []

        class Echo(EchoReceiver):
            def connectionReady(self, protocol, info):
                small_buffers.append(protocol)

        factory = Msgr2ServerFactory([NoneServerHandler()], Echo(),
                                     ConnectionConfig(entity_type=EntityType.OSD, entity_num=0, lossy=False,
                                                      send_queue_bytes=limit))
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        counter = Counter()
        p = yield connect(reactor, "v2:127.0.0.1:%d" % port.getHost().port, [NoneClientHandler(ADMIN)],
                          ConnectionConfig(lossy=False, send_queue_bytes=limit), receiver=counter, timeout=5)
        self.addCleanup(lambda: p.transport.abortConnection() if p.transport.connected else None)
        for _ in range(100):
            if small_buffers:
                break
            yield task.deferLater(reactor, 0.01, lambda: None)
        # small kernel buffers, so that the queues, not the kernel, hold the messages
        import socket
        for transport in [q.transport for q in small_buffers] + [p.transport]:
            transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 << 10)
            transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 10)
        count, window = 12, 4
        # one message fills the queue: the sender waits for whenWritable, as it should
        for n in range(1, count + 1):
            for _ in range(1000):
                if n - 1 - len(counter.received) < window:
                    break
                yield task.deferLater(reactor, 0.01, lambda: None)
            try:
                yield p.whenWritable().addTimeout(10, reactor)
            except defer.TimeoutError:
                break
            p.sendMessage(numbered(n, size=limit))
        for _ in range(500):
            if len(counter.received) == count:
                break
            yield task.deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(counter.received, list(range(1, count + 1)),
                         "stalled: client paused reading for %s, server for %s"
                         % (sorted(p._read_pauses), [sorted(q._read_pauses) for q in small_buffers]))
