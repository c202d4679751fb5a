"""
Faults on real sockets: connections cut at random, delays, a peer that goes
silent, a monitor killed with -9 and started again.  Lossless sessions must
deliver every message exactly once and in order through all of it.
"""

import json
import os
import struct
import sys
import time

from twisted.internet import defer, reactor, task, utils
from twisted.trial.unittest import SynchronousTestCase, TestCase

from msgr2tx.auth.none import NoneClientHandler, NoneServerHandler
from msgr2tx.client import ReconnectingClient, connect
from msgr2tx.core.config import DEFAULT_KEEPALIVE_TIMEOUT, ConnectionConfig
from msgr2tx.core.encoding import EntityName, EntityType
from msgr2tx.core.messages import GenericMessage
from msgr2tx.errors import KeepaliveTimeout
from msgr2tx.factory import Msgr2ServerFactory
from msgr2tx.clients.monclient import MonClient
from msgr2tx.protocol import PROBE_FRACTION
from msgr2tx.services import EchoReceiver
from msgr2tx.testing import FaultProxy
from tests import cephlab

ADMIN = EntityName.parse("client.admin")
TEST_TYPE = 0x7FF0


def tool(name):
    candidate = os.path.join(os.path.dirname(sys.executable), name)
    return candidate if os.path.exists(candidate) else name


class Tally:
    """Counts numbered echoes: exactly once, in order."""

    def __init__(self):
        self.seen = []
        self.duplicates = 0
        self.out_of_order = 0
        self.lost = []
        self._waiter = None

    def connectionReady(self, protocol, info):
        pass

    def connectionLost(self, protocol, reason):
        self.lost.append(reason)

    def messageReceived(self, protocol, message):
        (n,) = struct.unpack_from("<Q", message.front)
        if self.seen and n <= self.seen[-1]:
            if n in self.seen:
                self.duplicates += 1
                return
            self.out_of_order += 1
        self.seen.append(n)
        if self._waiter is not None:
            d, self._waiter = self._waiter, None
            d.callback(None)

    def progress(self, timeout=10.0):
        d = self._waiter = defer.Deferred()
        call = reactor.callLater(timeout, lambda: d.called or d.callback(None))
        return d.addBoth(lambda r: call.active() and call.cancel())


class EchoServerMixin:

    def start_server(self, lossless=True):
        config = ConnectionConfig(entity_type=EntityType.OSD, entity_num=0, lossy=not lossless)
        self.server_factory = Msgr2ServerFactory([NoneServerHandler()], EchoReceiver(), config)
        self.server_port = reactor.listenTCP(0, self.server_factory, interface="127.0.0.1")
        self.addCleanup(self.server_port.stopListening)
        self.address = "v2:127.0.0.1:%d" % self.server_port.getHost().port
        return self.server_port.getHost().port

    def start_proxy(self, **kw):
        proxy = FaultProxy(reactor, "127.0.0.1", self.server_port.getHost().port, **kw)
        self.via = "v2:127.0.0.1:%d" % proxy.listen()
        self.addCleanup(proxy.stop)
        return proxy


class CuttingProxyTests(EchoServerMixin, TestCase):

    timeout = 180

    @defer.inlineCallbacks
    def _exactly_once(self, count, cut_chance, seed, delay_chance=0.0, rev1=True, size=512, window=32):
        self.start_server()
        proxy = self.start_proxy(cut_chance=cut_chance, seed=seed, delay_chance=delay_chance, max_delay=0.02)
        tally = Tally()
        client = ReconnectingClient(reactor, self.address, [NoneClientHandler(ADMIN)],
                                    ConnectionConfig(lossy=False, revision1=rev1), receiver=tally,
                                    timeout=10, initial_backoff=0.01, max_backoff=0.2, via=self.via)
        client.startService()
        self.addCleanup(client.stopService)
        payload = bytes(size)
        sent = 0
        while sent < count:
            if sent - len(tally.seen) >= window:
                yield tally.progress()
                continue
            sent += 1
            client.sendMessage(GenericMessage(TEST_TYPE, struct.pack("<Q", sent) + payload))
            if sent % window == 0:
                yield task.deferLater(reactor, 0, lambda: None)
        deadline = time.monotonic() + 60
        while len(tally.seen) < count and time.monotonic() < deadline:
            yield tally.progress(1.0)
        self.assertEqual(tally.duplicates, 0)
        self.assertEqual(tally.out_of_order, 0)
        self.assertEqual(tally.seen, list(range(1, count + 1)))
        return proxy, client

    @defer.inlineCallbacks
    def test_stress_one_cut_in_thirty_with_delays(self):
        started = time.monotonic()
        proxy, client = yield self._exactly_once(10000, 1 / 30, seed=11, delay_chance=0.05)
        # the proxy really did cut (some cuts fall inside a handshake, so
        # fewer connections than cuts reached READY), and one session survived
        self.assertGreater(proxy.cuts, 10)
        self.assertGreater(client.connections, 10)
        self.assertEqual(len(self.server_factory.sessions), 1)
        print("\nstress: 10000 messages, %d cuts, %d connections, %.1fs"
              % (proxy.cuts, client.connections, time.monotonic() - started))

    @defer.inlineCallbacks
    def test_rev0_cuts(self):
        proxy, client = yield self._exactly_once(1000, 1 / 20, seed=5, rev1=False)
        self.assertGreater(proxy.cuts, 2)

    @defer.inlineCallbacks
    def test_echo_test_cli_through_a_cutting_proxy(self):
        self.start_server()
        proxy = self.start_proxy(cut_chance=1 / 30, seed=3)
        out, err, code = yield utils.getProcessOutputAndValue(
            tool("msgr2tx"), ["echo-test", "--target", self.address, "--via", self.via, "--count", "1000",
                              "--size", "1024", "--window", "16", "--timeout", "60"], env=dict(os.environ))
        self.assertEqual(code, 0, err)
        result = json.loads(out.decode().strip().splitlines()[-1])
        self.assertEqual(result["sent"], 1000)
        self.assertEqual(result["received"], 1000)
        self.assertEqual(result["duplicates"], 0)
        self.assertEqual(result["out_of_order"], 0)
        self.assertGreater(result["reconnects"], 0)
        self.assertLessEqual(result["reconnects"], proxy.cuts)
        for key in ("seconds", "MB/s"):
            self.assertIn(key, result)


class LivenessTests(EchoServerMixin, TestCase):

    timeout = 60

    @defer.inlineCallbacks
    def test_silent_peer_detected_after_the_timeout_and_an_unanswered_probe(self):
        self.start_server()
        proxy = self.start_proxy()
        interval, timeout = 0.2, 0.6
        tally = Tally()
        p = yield connect(reactor, self.address, [NoneClientHandler(ADMIN)],
                          ConnectionConfig(keepalive_interval=interval, keepalive_timeout=timeout),
                          receiver=tally, timeout=5, via=self.via)
        # keepalives flow: the connection stays up for several intervals
        yield task.deferLater(reactor, interval * 3, lambda: None)
        self.assertEqual(tally.lost, [])
        proxy.go_silent()
        silent_at = time.monotonic()
        while not tally.lost and time.monotonic() - silent_at < 5:
            yield task.deferLater(reactor, 0.02, lambda: None)
        detected = time.monotonic() - silent_at
        self.assertTrue(tally.lost, "the silent peer was never detected")
        self.assertIsInstance(p._failure.value, KeepaliveTimeout)
        # the last keepalive answer came at most one interval before the
        # silence began; then the timeout, then the probe's quarter timeout
        self.assertGreaterEqual(detected, timeout - interval)
        self.assertLessEqual(detected, timeout * (1 + PROBE_FRACTION) + 0.25)

    @defer.inlineCallbacks
    def _block_the_loop(self, config, block, settle, clients=20):
        """
        Connect C{clients} healthy connections, let keepalives flow, block
        the event loop for C{block} seconds, and check that none was
        faulted and that each still carries a message both ways.
        """
        self.start_server()
        tallies, protocols = [], []
        for _ in range(clients):
            tally = Tally()
            protocols.append((yield connect(reactor, self.address, [NoneClientHandler(ADMIN)], config,
                                            receiver=tally, timeout=5)))
            tallies.append(tally)
        yield task.deferLater(reactor, 2 * config.keepalive_interval, lambda: None)
        # a busy event loop: no timer runs, nothing is read or written
        yield task.deferLater(reactor, 0, time.sleep, block)
        # every timer that came due while blocked has run (and a probe had its time)
        yield task.deferLater(reactor, settle, lambda: None)
        faulted = [p._failure for p in protocols if p._failure is not None]
        self.assertEqual(faulted, [])
        self.assertEqual([t.lost for t in tallies if t.lost], [])
        for n, p in enumerate(protocols, 1):
            p.sendMessage(GenericMessage(TEST_TYPE, struct.pack("<Q", n)))
        deadline = time.monotonic() + 10
        while any(not t.seen for t in tallies) and time.monotonic() < deadline:
            yield task.deferLater(reactor, 0.02, lambda: None)
        self.assertEqual([t.seen for t in tallies], [[n] for n in range(1, clients + 1)])
        for p in protocols:
            p.close()

    def test_busy_loop_does_not_fault_healthy_connections_by_default(self):
        # echo-test's old keepalive interval: its 1.5 s timeout faulted all of them
        return self._block_the_loop(ConnectionConfig(keepalive_interval=1.0), block=3.0, settle=1.0)

    def test_busy_loop_longer_than_the_timeout_is_not_a_silent_peer(self):
        # a loop blocked past a short explicit timeout: the peer is probed, not faulted
        return self._block_the_loop(ConnectionConfig(keepalive_interval=0.2, keepalive_timeout=0.6), block=1.5,
                                    settle=0.6 * PROBE_FRACTION + 0.5)

    @defer.inlineCallbacks
    def test_idle_timeout_closes(self):
        self.start_server()
        tally = Tally()
        yield connect(reactor, self.address, [NoneClientHandler(ADMIN)],
                      ConnectionConfig(idle_timeout=0.3), receiver=tally, timeout=5)
        yield task.deferLater(reactor, 0.6, lambda: None)
        self.assertEqual(len(tally.lost), 1)


class MonitorRestartTests(TestCase):

    timeout = 120

    def setUp(self):
        cephlab.ensure_ceph()
        self.mon = cephlab.CephMonitor(auth="none").start()
        self.addCleanup(self.mon.stop)

    @defer.inlineCallbacks
    def test_client_recovers_from_kill_9(self):
        monclient = MonClient(resend_on_reconnect=True)
        client = ReconnectingClient(reactor, self.mon.addr, [NoneClientHandler(ADMIN)],
                                    ConnectionConfig(keepalive_interval=0.5), receiver=monclient,
                                    timeout=5, initial_backoff=0.1, max_backoff=0.5)
        client.startService()
        self.addCleanup(client.stopService)
        yield client.whenReady()
        results = []
        for i in range(12):
            if i == 4:
                self.mon.kill9()
                reactor.callLater(1.0, self.mon.start)
            result, status, output = yield monclient.command({"prefix": "version"})
            results.append(result)
        self.assertEqual(results, [0] * 12)
        self.assertGreaterEqual(client.connections, 2)


class KeepaliveDefaultsTests(SynchronousTestCase):
    """The keepalive timeout follows Ceph's MonClient (mon_client_ping_timeout / _interval)."""

    def test_default_is_cephs_mon_client_ping_timeout(self):
        self.assertEqual(DEFAULT_KEEPALIVE_TIMEOUT, 30.0)
        self.assertEqual(ConnectionConfig(keepalive_interval=1.0).effective_keepalive_timeout, 30.0)
        # Ceph's mon_client_ping_interval: 10 s, three of which make the timeout
        self.assertEqual(ConnectionConfig(keepalive_interval=10.0).effective_keepalive_timeout, 30.0)
        self.assertEqual(ConnectionConfig(keepalive_interval=20.0).effective_keepalive_timeout, 60.0)
        self.assertEqual(ConnectionConfig(keepalive_interval=1.0, keepalive_timeout=5.0)
                         .effective_keepalive_timeout, 5.0)

    def test_timeout_must_outlast_the_interval(self):
        self.assertRaises(ValueError, ConnectionConfig, keepalive_interval=2.0, keepalive_timeout=1.0)
        self.assertRaises(ValueError, ConnectionConfig, keepalive_interval=2.0, keepalive_timeout=2.0)
