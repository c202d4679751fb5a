"""
Lossless peers that connect to each other at once: the connect race is
resolved as Ceph resolves it, and messages queued on both sides arrive
exactly once, in order, over the one connection that survives.
"""

import struct

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import SynchronousTestCase, TestCase

from msgr2tx.auth.none import NoneClientHandler, NoneServerHandler
from msgr2tx.core.connection import State, addr_sort_key
from msgr2tx.core.encoding import EntityName, entity_addr_t
from msgr2tx.core.messages import GenericMessage
from msgr2tx.core.policy import Policy
from msgr2tx.core.constants import Tag
from msgr2tx.messenger import Msgr2Messenger
from msgr2tx.testing import STALL, Interceptor
from tests.cephlab import free_port

ADMIN = EntityName.parse("client.admin")


class Inbox:
    def __init__(self):
        self.got = []
        self.readies = 0

    def connectionReady(self, protocol, info):
        self.readies += 1

    def connectionLost(self, protocol, reason):
        pass

    def messageReceived(self, protocol, message):
        self.got.append(struct.unpack_from("<Q", message.front)[0])


class OrderTests(SynchronousTestCase):

    def test_addresses_sort_like_ceph(self):
        a = entity_addr_t.parse("v2:127.0.0.1:6800/100")
        b = entity_addr_t.parse("v2:127.0.0.1:6800/200")
        c = entity_addr_t.parse("v2:127.0.0.1:6801/100")
        # type, then nonce (little-endian bytes), then the socket address
        self.assertLess(addr_sort_key(a), addr_sort_key(b))
        self.assertLess(addr_sort_key(a), addr_sort_key(c))
        self.assertEqual(addr_sort_key(a), addr_sort_key(entity_addr_t.parse("v2:127.0.0.1:6800/100")))


class PairMixin:

    timeout = 30

    @defer.inlineCallbacks
    def make_pair(self, nonce_a=1000, nonce_b=2000):
        addr_a = "v2:127.0.0.1:%d/%d" % (free_port(), nonce_a)
        addr_b = "v2:127.0.0.1:%d/%d" % (free_port(), nonce_b)
        inbox_a, inbox_b = Inbox(), Inbox()
        a = Msgr2Messenger(reactor, addr_a, [NoneServerHandler()], [NoneClientHandler(ADMIN)], inbox_a, entity_num=1)
        b = Msgr2Messenger(reactor, addr_b, [NoneServerHandler()], [NoneClientHandler(ADMIN)], inbox_b, entity_num=2)
        yield a.start()
        yield b.start()
        self.addCleanup(a.stop)
        self.addCleanup(b.stop)
        return (a, addr_a, inbox_a), (b, addr_b, inbox_b)


class RaceTests(PairMixin, TestCase):

    @defer.inlineCallbacks
    def _race(self, nonce_a, nonce_b, count=50, force=True):
        (a, addr_a, inbox_a), (b, addr_b, inbox_b) = yield self.make_pair(nonce_a, nonce_b)
        if force:
            # hold both CLIENT_IDENTs a moment, so that each side receives the
            # other's while its own connection is still in the handshake
            for m in (a, b):
                m.interceptor = Interceptor()
                m.interceptor.add(("write", Tag.CLIENT_IDENT), role="client", nth=1, action=STALL(0.1))
                m.factory.interceptor = m.interceptor
        # both start connecting in the same reactor turn
        for n in range(1, count + 1):
            a.send(addr_b, GenericMessage(0x7FF0, struct.pack("<Q", n)))
            b.send(addr_a, GenericMessage(0x7FF0, struct.pack("<Q", n)))
        for _ in range(300):
            if len(inbox_a.got) == count and len(inbox_b.got) == count:
                break
            yield task.deferLater(reactor, 0.01, lambda: None)
        yield task.deferLater(reactor, 0.1, lambda: None)
        self.assertEqual(inbox_a.got, list(range(1, count + 1)))
        self.assertEqual(inbox_b.got, list(range(1, count + 1)))
        # one connection carries both sessions: the two ends of the same socket
        link_a, link_b = a.link(addr_b), b.link(addr_a)
        conn_a, conn_b = link_a.session.connection, link_b.session.connection
        self.assertIs(conn_a.state, State.READY)
        self.assertIs(conn_b.state, State.READY)
        self.assertNotEqual(conn_a.role, conn_b.role)
        pa, pb = conn_a.owner.transport, conn_b.owner.transport
        self.assertEqual(pa.getHost().port, pb.getPeer().port)
        self.assertEqual(pa.getPeer().port, pb.getHost().port)
        return a, b, addr_a, addr_b, conn_a, conn_b

    @defer.inlineCallbacks
    def _check_winner(self, nonce_a, nonce_b):
        a, b, addr_a, addr_b, conn_a, conn_b = yield self._race(nonce_a, nonce_b)
        # Ceph orders addresses by their bytes (nonces little-endian first):
        # the connection opened by the lower address survives
        a_lower = addr_sort_key(entity_addr_t.parse(addr_a)) < addr_sort_key(entity_addr_t.parse(addr_b))
        self.assertEqual(conn_a.role.value, "client" if a_lower else "server")
        self.assertEqual(conn_b.role.value, "server" if a_lower else "client")
        # the loser's own attempt was refused with WAIT or dropped by its owner
        loser = b if a_lower else a
        self.assertTrue(all(p._closed for p in loser.outgoing))

    def test_race_nonce_order_one_way(self):
        return self._check_winner(1000, 2000)

    def test_race_nonce_order_other_way(self):
        return self._check_winner(2000, 1000)

    def test_race_equal_low_bytes(self):
        return self._check_winner(0x100, 0x200)

    @defer.inlineCallbacks
    def test_unforced_race_delivers_exactly_once(self):
        # whatever the timing, both sides end on one connection with nothing lost or doubled
        for nonces in ((1000, 2000), (2000, 1000)):
            yield self._race(*nonces, count=200, force=False)

    @defer.inlineCallbacks
    def test_one_side_connects_first(self):
        (a, addr_a, inbox_a), (b, addr_b, inbox_b) = yield self.make_pair()
        a.send(addr_b, GenericMessage(0x7FF0, struct.pack("<Q", 1)))
        for _ in range(200):
            if inbox_b.got:
                break
            yield task.deferLater(reactor, 0.01, lambda: None)
        # b answers over the connection a opened: no second connection
        b.send(addr_a, GenericMessage(0x7FF0, struct.pack("<Q", 1)))
        for _ in range(200):
            if inbox_a.got:
                break
            yield task.deferLater(reactor, 0.01, lambda: None)
        self.assertEqual((inbox_a.got, inbox_b.got), ([1], [1]))
        self.assertEqual(len(b.outgoing), 0)
        self.assertEqual(len(a.outgoing), 1)


class WaitTests(PairMixin, TestCase):

    @defer.inlineCallbacks
    def test_after_wait_the_loser_waits_for_the_winners_connection(self):
        """
        Ceph's WAIT: the side told to wait does not redial with a short
        backoff; the other side's connection carries its session.  With a
        30 s max_backoff everything still arrives at once, over the one
        connection the lower address opened.
        """
        (a, addr_a, inbox_a), (b, addr_b, inbox_b) = yield self.make_pair(1, 2)
        low, addr_low, inbox_low, high, addr_high, inbox_high = (
            (a, addr_a, inbox_a, b, addr_b, inbox_b)
            if addr_sort_key(entity_addr_t.parse(addr_a)) < addr_sort_key(entity_addr_t.parse(addr_b))
            else (b, addr_b, inbox_b, a, addr_a, inbox_a))
        high.max_backoff = 30.0
        # the lower address's CLIENT_IDENT is late: the higher one's arrives
        # at the lower side first, while its own attempt is in the handshake
        low.interceptor = Interceptor()
        low.interceptor.add(("write", Tag.CLIENT_IDENT), role="client", nth=1, action=STALL(0.3))
        low.factory.interceptor = low.interceptor
        count = 20
        for n in range(1, count + 1):
            low.send(addr_high, GenericMessage(0x7FF0, struct.pack("<Q", n)))
            high.send(addr_low, GenericMessage(0x7FF0, struct.pack("<Q", n)))
        for _ in range(300):
            if len(inbox_low.got) == count and len(inbox_high.got) == count:
                break
            yield task.deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(inbox_low.got, list(range(1, count + 1)))
        self.assertEqual(inbox_high.got, list(range(1, count + 1)))
        # the higher side dialled once, was told to WAIT, and did not dial again
        self.assertEqual(len(high.outgoing), 1)
        self.assertTrue(high.outgoing[0].conn.waited)
        self.assertTrue(high.link(addr_low)._retry.active())
        # its session went over the lower side's connection
        conn = high.link(addr_low).session.connection
        self.assertIs(conn.state, State.READY)
        self.assertEqual(conn.role.value, "server")


class PolicyFlagTests(TestCase):
    """standby and server, as the messenger honours them after a fault."""

    timeout = 30

    @defer.inlineCallbacks
    def make(self, policy_a, policy_b):
        addr_a = "v2:127.0.0.1:%d/1000" % free_port()
        addr_b = "v2:127.0.0.1:%d/2000" % free_port()
        inbox_a, inbox_b = Inbox(), Inbox()
        a = Msgr2Messenger(reactor, addr_a, [NoneServerHandler()], [NoneClientHandler(ADMIN)], inbox_a,
                           entity_num=1, initial_backoff=0.01, max_backoff=0.05, policy=policy_a)
        b = Msgr2Messenger(reactor, addr_b, [NoneServerHandler()], [NoneClientHandler(ADMIN)], inbox_b,
                           entity_num=2, initial_backoff=0.01, max_backoff=0.05, policy=policy_b)
        yield a.start()
        yield b.start()
        self.addCleanup(a.stop)
        self.addCleanup(b.stop)
        a.send(addr_b, GenericMessage(0x7FF0, struct.pack("<Q", 1)))
        yield self.until(lambda: inbox_b.got == [1])
        # cut the connection under both
        for p in a.outgoing + b.incoming:
            p.transport.abortConnection()
        yield task.deferLater(reactor, 0.3, lambda: None)
        return a, b, addr_a, addr_b, inbox_a, inbox_b

    @defer.inlineCallbacks
    def until(self, predicate):
        for _ in range(300):
            if predicate():
                return
            yield task.deferLater(reactor, 0.01, lambda: None)

    @defer.inlineCallbacks
    def test_standby_stays_idle_until_there_is_something_to_send(self):
        a, b, addr_a, addr_b, inbox_a, inbox_b = yield self.make(Policy.lossless_peer(), Policy.lossless_peer())
        self.assertEqual(len(a.outgoing), 1)       # nothing queued: no reconnect
        a.send(addr_b, GenericMessage(0x7FF0, struct.pack("<Q", 2)))
        yield self.until(lambda: inbox_b.got == [1, 2])
        self.assertEqual(inbox_b.got, [1, 2])
        self.assertEqual(len(a.outgoing), 2)

    @defer.inlineCallbacks
    def test_without_standby_reconnects_at_once(self):
        a, b, addr_a, addr_b, inbox_a, inbox_b = yield self.make(Policy.lossless_client(), Policy.lossless_peer())
        self.assertGreaterEqual(len(a.outgoing), 2)
        self.assertIs(a.link(addr_b).session.connection.state, State.READY)

    @defer.inlineCallbacks
    def test_server_side_never_reconnects(self):
        a, b, addr_a, addr_b, inbox_a, inbox_b = yield self.make(Policy.lossless_peer(), Policy.stateful_server())
        # b has something for a, but a server side waits for the peer to come back
        b.send(addr_a, GenericMessage(0x7FF0, struct.pack("<Q", 1)))
        yield task.deferLater(reactor, 0.3, lambda: None)
        self.assertEqual(len(b.outgoing), 0)
        self.assertEqual(inbox_a.got, [])
        # a comes back (it has something to send): b's message goes over a's connection, once
        a.send(addr_b, GenericMessage(0x7FF0, struct.pack("<Q", 2)))
        yield self.until(lambda: inbox_a.got == [1] and inbox_b.got == [1, 2])
        self.assertEqual((inbox_a.got, inbox_b.got), ([1], [1, 2]))
        self.assertEqual(len(b.outgoing), 0)


class PeerFaultTests(PairMixin, TestCase):

    @defer.inlineCallbacks
    def test_fault_after_race_resumes_exactly_once(self):
        (a, addr_a, inbox_a), (b, addr_b, inbox_b) = yield self.make_pair(1000, 2000)
        for m in (a, b):
            m.interceptor = Interceptor()
            m.factory.interceptor = m.interceptor
        # each side's 20th MESSAGE write fails its connection, whichever role it has
        a.interceptor.add(("write", Tag.MESSAGE), nth=20)
        b.interceptor.add(("write", Tag.MESSAGE), nth=35)
        count = 100
        for n in range(1, count + 1):
            a.send(addr_b, GenericMessage(0x7FF0, struct.pack("<Q", n)))
            b.send(addr_a, GenericMessage(0x7FF0, struct.pack("<Q", n)))
            if n % 10 == 0:
                yield task.deferLater(reactor, 0.01, lambda: None)
        for _ in range(500):
            if len(inbox_a.got) == count and len(inbox_b.got) == count:
                break
            yield task.deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(len(a.interceptor.hits) + len(b.interceptor.hits), 2)
        self.assertEqual(inbox_a.got, list(range(1, count + 1)))
        self.assertEqual(inbox_b.got, list(range(1, count + 1)))

    @defer.inlineCallbacks
    def test_acceptor_resumes_the_session(self):
        """
        b opened the connection; it fails; only a has something to send:
        a reconnects to b with the session's cookies, nothing is reset.
        """
        (a, addr_a, inbox_a), (b, addr_b, inbox_b) = yield self.make_pair(1000, 2000)
        b.send(addr_a, GenericMessage(0x7FF0, struct.pack("<Q", 1)))
        for _ in range(200):
            if inbox_a.got:
                break
            yield task.deferLater(reactor, 0.01, lambda: None)
        a.send(addr_b, GenericMessage(0x7FF0, struct.pack("<Q", 1)))
        for _ in range(200):
            if inbox_b.got:
                break
            yield task.deferLater(reactor, 0.01, lambda: None)
        # cut the connection under both
        for p in b.outgoing + a.incoming:
            p.transport.abortConnection()
        yield task.deferLater(reactor, 0.05, lambda: None)
        for n in range(2, 6):
            a.send(addr_b, GenericMessage(0x7FF0, struct.pack("<Q", n)))
        for _ in range(300):
            if len(inbox_b.got) == 5:
                break
            yield task.deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(inbox_b.got, [1, 2, 3, 4, 5])
        self.assertEqual(inbox_a.got, [1])
        self.assertEqual(len(a.outgoing), 1)

    @defer.inlineCallbacks
    def test_both_sides_reconnect_at_once(self):
        (a, addr_a, inbox_a), (b, addr_b, inbox_b) = yield self.make_pair(1000, 2000)
        a.send(addr_b, GenericMessage(0x7FF0, struct.pack("<Q", 1)))
        for _ in range(200):
            if inbox_b.got:
                break
            yield task.deferLater(reactor, 0.01, lambda: None)
        for p in a.outgoing + b.incoming:
            p.transport.abortConnection()
        yield task.deferLater(reactor, 0.05, lambda: None)
        for n in range(2, 30):
            a.send(addr_b, GenericMessage(0x7FF0, struct.pack("<Q", n)))
            b.send(addr_a, GenericMessage(0x7FF0, struct.pack("<Q", n)))
        for _ in range(500):
            if len(inbox_b.got) == 29 and len(inbox_a.got) == 28:
                break
            yield task.deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(inbox_b.got, list(range(1, 30)))
        self.assertEqual(inbox_a.got, list(range(2, 30)))
