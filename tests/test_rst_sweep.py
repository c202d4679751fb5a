"""
Exactly-once under abortive resets at any byte offset.

One long-lived lossless client stream goes through a L{FaultProxy} whose
every link forwards a random number of bytes (both directions counted
together) and then resets both sides with C{SO_LINGER} 0: an RST in the
middle of a frame, of a handshake or of a replay, whichever the count hits.
The client reconnects at once and resumes its session with
SESSION_RECONNECT (the ``test_fast_...`` configurations: with msgr2tx's
fast reconnect, whose first flight carries the queued messages); the
stateful (lossless) msgr2tx server echoes every message.  Each
configuration (msgr2.0/2.1, crc/secure, 4 KiB/64 KiB) runs until the proxy
has reset at least L{CUTS} links, and every echo must come back exactly
once and in order, with no stall.

The proxy's random choices are seeded: set C{MSGR2TX_SWEEP_SEED} to rerun
a configuration with the seed printed by a failure (the timing of reads
still varies from run to run).
"""

import os
import struct

from twisted.internet import defer, reactor, task
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.protocol import ClientCreator, Factory, Protocol
from twisted.trial.unittest import TestCase

from msgr2tx.auth.cephx import CephxClientHandler, CephxKeyServer, CephxServerHandler
from msgr2tx.auth.keyring import CryptoKey, Keyring
from msgr2tx.client import ReconnectingClient
from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.constants import ConnectionMode
from msgr2tx.core.encoding import EntityName, EntityType
from msgr2tx.core.messages import GenericMessage
from msgr2tx.factory import Msgr2ServerFactory
from msgr2tx.services import EchoReceiver
from msgr2tx.testing import FaultProxy

ADMIN = EntityName.parse("client.admin")
TEST_TYPE = 0x7FF0
#: links reset per configuration
CUTS = 200
#: no echo for this long while some are outstanding is a stall
STALL = 15.0
#: bytes that cover a cephx handshake and the first messages; a quarter of
#: the links are reset within them
HANDSHAKE_SPAN = 6000
BASE_SEED = int(os.environ.get("MSGR2TX_SWEEP_SEED", "0") or 0) or 20261130


class Numbers:
    """The client's receiver: numbered echoes, exactly once and in order."""

    def __init__(self):
        self.seen = []
        self.duplicates = 0
        self.out_of_order = 0
        self.downgraded = []
        self.lost = []
        self._waiter = None

    def connectionReady(self, protocol, info):
        if info.lossy:
            self.downgraded.append(info)

    def connectionLost(self, protocol, reason):
        self.lost.append(reason)

    def messageReceived(self, protocol, message):
        (n,) = struct.unpack_from("<Q", message.front)
        if self.seen and n <= self.seen[-1]:
            self.duplicates += 1
            return
        if n != len(self.seen) + 1:
            self.out_of_order += 1
        self.seen.append(n)
        if self._waiter is not None:
            d, self._waiter = self._waiter, None
            d.callback(None)

    def progress(self, timeout):
        """Fires at the next echo, or after C{timeout} seconds."""
        d = self._waiter = defer.Deferred()
        call = reactor.callLater(timeout, lambda: d.called or d.callback(None))
        return d.addBoth(lambda r: call.active() and call.cancel())


class Recorder(Protocol):
    """
    A raw TCP end: sends C{greeting} on connect and C{answer} when the
    first bytes arrive; records what it reads and how it ended.
    """

    def __init__(self, greeting=b"", answer=b""):
        self.greeting = greeting
        self.answer = answer
        self.received = bytearray()
        self.ended = defer.Deferred()

    def connectionMade(self):
        if self.greeting:
            self.transport.write(self.greeting)

    def dataReceived(self, data):
        self.received += data
        answer, self.answer = self.answer, b""
        if answer:
            self.transport.write(answer)

    def connectionLost(self, reason):
        self.ended.callback([reason])  # in a list: a Failure would run the errbacks


class FaultProxyResetTests(TestCase):
    """The proxy's rst_after_bytes style, on raw TCP."""

    timeout = 30

    @defer.inlineCallbacks
    def _link(self, budget, server_greeting, client_bytes, client_answer=b""):
        servers = []

        def make():
            p = Recorder(server_greeting)
            servers.append(p)
            return p

        port = reactor.listenTCP(0, Factory.forProtocol(make), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        proxy = FaultProxy(reactor, "127.0.0.1", port.getHost().port, rst_after_bytes=(budget, budget))
        proxy_port = proxy.listen()
        self.addCleanup(proxy.stop)
        client = yield ClientCreator(reactor, Recorder, client_bytes, client_answer).connectTCP("127.0.0.1", proxy_port)
        (client_end,) = yield client.ended
        (server_end,) = yield servers[0].ended
        return proxy, client, client_end, servers[0], server_end

    @defer.inlineCallbacks
    def test_forwards_exactly_the_count_then_resets_both_sides(self):
        proxy, client, client_end, server, server_end = yield self._link(12345, b"", bytes(range(256)) * 400)
        self.assertEqual(bytes(server.received), (bytes(range(256)) * 400)[:12345])
        self.assertEqual(proxy.cut_offsets, [12345])
        self.assertEqual(proxy.cuts, 1)
        # an RST on both sides: neither saw a clean close
        self.assertTrue(client_end.check(ConnectionLost), client_end)
        self.assertTrue(server_end.check(ConnectionLost), server_end)
        self.assertFalse(client_end.check(ConnectionDone))
        self.assertFalse(server_end.check(ConnectionDone))

    @defer.inlineCallbacks
    def test_both_directions_count(self):
        proxy, client, client_end, server, server_end = yield self._link(3000, b"s" * 1000, b"", b"c" * 50000)
        self.assertEqual(len(client.received) + len(server.received), 3000)
        self.assertEqual(set(client.received), {ord("s")})
        self.assertEqual(set(server.received), {ord("c")})
        self.assertEqual(proxy.cut_offsets, [3000])

    def test_counts_are_seeded(self):
        def draws(seed):
            proxy = FaultProxy(reactor, "127.0.0.1", 1, seed=seed, rst_after_bytes=(0, 1 << 20))
            return [proxy._draw_budget() for _ in range(5)]
        self.assertEqual(draws(7), draws(7))
        self.assertNotEqual(draws(7), draws(8))
        self.assertRaises(ValueError, FaultProxy, reactor, "127.0.0.1", 1, rst_after_bytes=(5, 1))


class RstSweepTests(TestCase):

    timeout = 240

    def start_server(self, rev1, mode):
        keyring = Keyring()
        self.key = CryptoKey.generate()
        keyring.add(ADMIN, self.key, {"mon": "allow *"})
        config = ConnectionConfig(entity_type=EntityType.MON, entity_num=0, lossy=False, revision1=rev1,
                                  modes=(mode,))
        self.server_factory = Msgr2ServerFactory([CephxServerHandler(CephxKeyServer(keyring))], EchoReceiver(),
                                                 config)
        port = reactor.listenTCP(0, self.server_factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return port.getHost().port

    @defer.inlineCallbacks
    def sweep(self, rev1, mode, size, window, seed, fast=False):
        port = self.start_server(rev1, mode)
        span = 2 * window * (size + 200)

        def budget(rng):
            if rng.random() < 0.25:
                return rng.randint(0, HANDSHAKE_SPAN)
            return rng.randint(0, span)

        proxy = FaultProxy(reactor, "127.0.0.1", port, seed=seed, rst_after_bytes=budget)
        via = "v2:127.0.0.1:%d" % proxy.listen()
        self.addCleanup(proxy.stop)
        numbers = Numbers()
        client = ReconnectingClient(reactor, "v2:127.0.0.1:%d" % port, [CephxClientHandler(ADMIN, self.key)],
                                    ConnectionConfig(lossy=False, revision1=rev1, modes=(mode,),
                                                     fast_reconnect=fast),
                                    receiver=numbers, timeout=10, initial_backoff=0.002, max_backoff=0.02,
                                    via=via)
        fast_readies = []
        new_protocol = client.factory.onProtocol

        def note(protocol):
            new_protocol(protocol)
            protocol.whenReady().addCallbacks(
                lambda info: fast_readies.append(protocol.conn.fast_reconnected), lambda f: None)
        client.factory.onProtocol = note
        client.startService()
        self.addCleanup(client.stopService)
        where = "proxy seed %d (MSGR2TX_SWEEP_SEED=%d reruns it)" % (seed, BASE_SEED)
        payload = bytes(size - 8)
        sent = 0

        @defer.inlineCallbacks
        def wait_for(count):
            while len(numbers.seen) < count:
                before = len(numbers.seen)
                yield numbers.progress(STALL)
                if len(numbers.seen) == before:
                    self.fail("stalled at %d of %d echoes after %d resets; %s"
                              % (before, count, proxy.cuts, where))

        while proxy.cuts < CUTS:
            if sent - len(numbers.seen) >= window:
                yield wait_for(sent - window + 1)
                continue
            sent += 1
            client.sendMessage(GenericMessage(TEST_TYPE, struct.pack("<Q", sent) + payload))
            if sent % window == 0:
                yield task.deferLater(reactor, 0, lambda: None)
        proxy.rst_after_bytes = None  # the links from now on are left alone
        yield wait_for(sent)
        self.assertEqual(numbers.duplicates, 0, where)
        self.assertEqual(numbers.out_of_order, 0, where)
        self.assertEqual(numbers.seen, list(range(1, sent + 1)), where)
        self.assertEqual(numbers.downgraded, [], where)
        # resets, not clean closes (a FIN would be ConnectionDone)
        self.assertEqual([r for r in numbers.lost if r.check(ConnectionDone)], [], where)
        # one session survived every reset, and the resets were many and
        # at many different offsets
        self.assertEqual(len(self.server_factory.sessions), 1, where)
        self.assertGreaterEqual(len(proxy.cut_offsets), CUTS, where)
        self.assertGreater(len(set(proxy.cut_offsets)), CUTS * 3 // 4, where)
        if fast:
            # a fast reconnect's first flight holds up to 64 KiB of queued
            # messages, so more of the resets land before READY
            self.assertGreater(client.connections, CUTS // 4, where)
            self.assertGreater(fast_readies.count(True), CUTS // 8, where)
        else:
            self.assertGreater(client.connections, CUTS // 2, where)
            self.assertNotIn(True, fast_readies)
        self.assertGreater(sent, CUTS, where)


def _add(rev1, mode, size, window, n):
    name = "test_rev%d_%s_%dk" % (1 if rev1 else 0, mode.name.lower(), size >> 10)

    def test(self):
        return self.sweep(rev1, mode, size, window, BASE_SEED + n)

    test.__name__ = name
    setattr(RstSweepTests, name, test)


for _n, (_rev1, _mode, _size, _window) in enumerate(
        (rev1, mode, size, window)
        for rev1 in (False, True)
        for mode in (ConnectionMode.CRC, ConnectionMode.SECURE)
        for size, window in ((4 << 10, 16), (64 << 10, 4))):
    _add(_rev1, _mode, _size, _window, _n)


def _add_fast(rev1, mode, size, window, n):
    name = "test_fast_rev%d_%s_%dk" % (1 if rev1 else 0, mode.name.lower(), size >> 10)

    def test(self):
        return self.sweep(rev1, mode, size, window, BASE_SEED + n, fast=True)

    test.__name__ = name
    setattr(RstSweepTests, name, test)


_add_fast(True, ConnectionMode.CRC, 4 << 10, 16, 100)
_add_fast(True, ConnectionMode.SECURE, 64 << 10, 4, 101)
