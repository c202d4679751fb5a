"""
The Objecter's rules (C{src/osdc/Objecter.cc}), checked with maps built in
memory and connections that record what is sent: a request goes to its PG's
acting primary; a new map that moves the PG, forces a resend or changes the
OSD's address sends it again; a reply to an old attempt is dropped; -EAGAIN
and redirects resubmit; backoffs hold requests; a lost lossy session
reconnects and resends; nothing waits past its timeout.  (Against real OSDs:
tests/test_rados.py.)
"""

import errno

from twisted.internet import defer, task
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from msgr2tx.ceph import osd_types as T
from msgr2tx.clients.objecter import HELD_FULL, HELD_NO_PRIMARY, Objecter
from msgr2tx.ceph.osdmap import OSD_EXISTS, OSD_IN, OSD_UP, OSDMap, PgId, Pool
from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.encoding import entity_addr_t, entity_addrvec_t
from msgr2tx.errors import ConnectionClosed, OpTimeout, PoolNotFound, RadosError
from msgr2tx.messages.osd import BACKOFF_ACK_BLOCK, BACKOFF_BLOCK, BACKOFF_UNBLOCK, MOSDBackoff, MOSDOp, MOSDOpReply


class Follower:
    def __init__(self):
        self.osdmap = None
        self.listeners = []

    def add_listener(self, listener):
        self.listeners.append(listener)

    def when_epoch(self, epoch=1):
        return defer.Deferred()

    def publish(self, osdmap):
        self.osdmap = osdmap
        for listener in self.listeners:
            listener(osdmap)


class Wire:
    """A READY connection that records the messages sent on it."""

    def __init__(self, osd, addr):
        self.osd = osd
        self.addr = addr
        self.sent = []
        self.closed = False

    def sendMessage(self, message):
        self.sent.append(message)

    def close(self):
        self.closed = True


class RecordingObjecter(Objecter):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.wires = []
        self.refuse = False

    def _connect(self, session):
        if self.refuse:
            return defer.fail(ConnectionClosed("refused"))
        wire = Wire(session.osd, session.addr)
        self.wires.append(wire)
        session.connectionReady(wire, None)
        return defer.succeed(wire)

    def wire(self, osd):
        return [w for w in self.wires if w.osd == osd][-1]


def make_map(epoch, primary=lambda seed: 0, down=(), nonce=1, flags=0, force=0, pools=(1, 2), pool_flags=1):
    """Three OSDs; pools of 8 PGs placed by pg_temp (primary(seed) -> OSD)."""
    m = OSDMap()
    m.epoch = epoch
    m.flags = flags
    m.set_max_osd(3)
    for o in range(3):
        m.osd_state[o] = OSD_EXISTS | (0 if o in down else OSD_UP)
        m.osd_weight[o] = OSD_IN
        m.osd_addrs[o] = entity_addrvec_t((entity_addr_t.parse("v2:127.0.0.1:%d/%d" % (6800 + o, nonce)),))
    for p in pools:
        m.pools[p] = Pool(p, "pool%d" % p, size=1, min_size=1, crush_rule=-1, pg_num=8, pgp_num=8,
                          flags=pool_flags if p == 1 else 1, last_force_op_resend=force)
        for seed in range(8):
            m.pg_temp[PgId(p, seed)] = [primary(seed)]
    return m


def reply_to(request, result=0, attempt=None, outdata=(), redirect=None):
    ops = [T.OSDOp(o.op, o.flags, o.args, outdata=d) for o, d in zip(request.ops, list(outdata) + [b""] * 9)]
    return MOSDOpReply(request.oid, request.pool, request.seed, request.osd_flags, result, request.osdmap_epoch,
                       ops, request.retry_attempt if attempt is None else attempt, redirect=redirect,
                       tid=request.tid)


class ObjecterRuleTests(SynchronousTestCase):

    def setUp(self):
        self.clock = task.Clock()
        self.follower = Follower()
        self.objecter = RecordingObjecter(self.clock, self.follower, [], ConnectionConfig(), op_timeout=30.0)
        self.follower.publish(make_map(10))

    def read(self, name="obj", pool=1):
        return self.objecter.submit(pool, name, [T.OSDOp.extent(T.OP_READ, 0, 0)])

    def session(self, osd):
        return self.objecter.sessions[osd]

    def deliver(self, osd, message):
        session = self.session(osd)
        session.messageReceived(session.protocol, message)

    def test_sent_to_the_primary_and_matched_by_tid(self):
        d1, d2 = self.read("a"), self.read("b")
        sent = self.objecter.wire(0).sent
        self.assertEqual([m.oid for m in sent], ["a", "b"])
        self.assertEqual([m.tid for m in sent], [1, 2])
        m = sent[1]
        self.assertEqual((m.osdmap_epoch, m.retry_attempt, m.pool), (10, 0, 1))
        self.assertEqual(m.osd_flags & (T.FLAG_READ | T.FLAG_WRITE), T.FLAG_READ)
        self.deliver(0, reply_to(m, outdata=[b"B"]))
        self.assertEqual(self.successResultOf(d2).ops[0].outdata, b"B")
        self.assertNoResult(d1)

    def test_object_hash_is_remembered_per_name_namespace_and_key(self):
        from msgr2tx.clients import objecter as objecter_module
        self.patch(objecter_module, "SEED_CACHE", 3)   # so that it also fills up and starts over
        m = self.follower.osdmap
        cases = [("a", "", ""), ("b", "", ""), ("a", "ns", ""), ("a", "", "k"), ("b", "", "k"), ("a", "", ""),
                 ("a", "ns", ""), ("c", "ns", "k")] * 2
        for name, ns, key in cases:
            self.objecter.submit(1, name, [T.OSDOp.extent(T.OP_READ, 0, 0)], namespace=ns, key=key)
            sent = [w.sent[-1] for w in self.objecter.wires if w.sent]
            last = max(sent, key=lambda msg: msg.tid)
            expected = m.object_to_pg(1, name.encode(), ns.encode(), key.encode()).seed
            self.assertEqual(last.hash, expected, (name, ns, key))
        self.assertLessEqual(len(self.objecter._seeds), 3)

    def test_new_primary_resends_and_old_attempts_are_dropped(self):
        d = self.read()
        first = self.objecter.wire(0).sent[-1]
        seed = first.seed
        self.follower.publish(make_map(11, primary=lambda s: 1 if s == seed else 0))
        again = self.objecter.wire(1).sent[-1]
        self.assertEqual((again.tid, again.retry_attempt, again.osdmap_epoch), (first.tid, 1, 11))
        # osd.0 answers the first attempt late: the request is no longer there
        self.deliver(0, reply_to(first))
        # osd.1 answers an attempt that is not the current one: dropped
        self.deliver(1, reply_to(again, attempt=0))
        self.assertNoResult(d)
        self.deliver(1, reply_to(again))
        self.successResultOf(d)
        self.assertEqual(self.objecter.resends, 1)

    def test_full_pool_holds_writes_but_not_reads_or_forced_ones(self):
        # Objecter::target_should_be_paused: a write (without FULL_TRY or
        # FULL_FORCE) to a pool with FLAG_FULL, or under the map's FULL flag,
        # waits for a map without it; reads and forced writes go
        full = Pool.FLAG_HASHPSPOOL | Pool.FLAG_FULL
        self.follower.publish(make_map(11, pool_flags=full))
        write = self.objecter.submit(1, "w", [T.OSDOp.extent(T.OP_WRITEFULL, 0, 1, b"x")])
        other_pool = self.objecter.submit(2, "w", [T.OSDOp.extent(T.OP_WRITEFULL, 0, 1, b"x")])
        forced = self.objecter.submit(1, "f", [T.OSDOp.plain(T.OP_DELETE)], extra_flags=T.FLAG_FULL_FORCE)
        tried = self.objecter.submit(1, "t", [T.OSDOp.plain(T.OP_DELETE)], extra_flags=T.FLAG_FULL_TRY)
        self.read("r")
        sent = self.objecter.wire(0).sent
        self.assertEqual(sorted((m.pool, m.oid) for m in sent), [(1, "f"), (1, "r"), (1, "t"), (2, "w")])
        self.assertTrue(sent[[m.oid for m in sent].index("f")].osd_flags & T.FLAG_FULL_FORCE)
        [(kind, reason)] = self.objecter.held_reasons()
        self.assertEqual(kind, HELD_FULL)
        self.assertIn("pool 'pool1' is full in osdmap e11: an OSD it maps to is full", reason)
        self.follower.publish(make_map(12, pool_flags=full | Pool.FLAG_FULL_QUOTA))
        [(kind, reason)] = self.objecter.held_reasons()
        self.assertIn("its quota is reached", reason)
        self.assertIn("ceph osd pool set-quota pool1", reason)
        # the deprecated cluster-wide FULL flag holds writes to every pool
        self.follower.publish(make_map(13, flags=1 << 1))
        self.assertEqual(len(sent), 4)
        late = self.objecter.submit(2, "late", [T.OSDOp.extent(T.OP_WRITEFULL, 0, 1, b"x")])
        self.assertEqual(len(sent), 4)
        self.assertIn("the cluster is marked full", self.objecter.held_reasons()[0][1])
        # (the write to pool 2, sent before, was held by the flag too: it goes again)
        self.follower.publish(make_map(14))
        self.assertEqual(sorted((m.pool, m.oid) for m in sent[4:]), [(1, "w"), (2, "late"), (2, "w")])
        self.assertEqual(self.objecter.held_reasons(), [])
        self.assertNoResult(write)
        self.assertNoResult(other_pool)
        self.assertNoResult(late)
        self.assertNoResult(tried)
        self.assertNoResult(forced)

    def test_held_write_times_out_saying_why(self):
        self.follower.publish(make_map(11, pool_flags=Pool.FLAG_HASHPSPOOL | Pool.FLAG_FULL))
        d = self.objecter.submit(1, "w", [T.OSDOp.extent(T.OP_WRITEFULL, 0, 1, b"x")])
        self.clock.advance(30)
        e = self.failureResultOf(d, OpTimeout).value
        self.assertIn("writefull on 'w' in pool 1 timed out after 30 s, held back and never sent: pool 'pool1' is full",
                      str(e))
        self.assertIn("force_full=True", str(e))

    def test_unrelated_map_sends_nothing(self):
        self.read()
        self.follower.publish(make_map(11))
        self.assertEqual(len(self.objecter.wire(0).sent), 1)

    def test_last_force_op_resend(self):
        self.read()
        self.follower.publish(make_map(11, force=11))
        sent = self.objecter.wire(0).sent
        self.assertEqual([m.retry_attempt for m in sent], [0, 1])

    def test_eagain_resubmits_with_a_new_tid(self):
        d = self.read()
        first = self.objecter.wire(0).sent[-1]
        self.deliver(0, reply_to(first, result=-errno.EAGAIN))
        second = self.objecter.wire(0).sent[-1]
        self.assertNotEqual(second.tid, first.tid)
        self.assertNoResult(d)
        self.deliver(0, reply_to(second))
        self.assertEqual(self.successResultOf(d).result, 0)

    def test_redirect_resubmits_to_the_new_locator(self):
        d = self.read("obj", pool=1)
        first = self.objecter.wire(0).sent[-1]
        self.deliver(0, reply_to(first, redirect=T.Redirect(T.ObjectLocator(2), "elsewhere")))
        second = self.objecter.wire(0).sent[-1]
        self.assertEqual((second.pool, second.oid, second.locator.pool), (2, "elsewhere", 2))
        self.assertTrue(second.osd_flags & T.FLAG_REDIRECTED)
        self.deliver(0, reply_to(second))
        self.successResultOf(d)

    def test_backoff_holds_requests_until_unblock(self):
        first = self.read("x")
        m = self.objecter.wire(0).sent[-1]
        self.deliver(0, reply_to(m))
        self.successResultOf(first)
        begin, end = T.HObject(pool=1), T.HObject(pool=1, max=True)
        self.deliver(0, MOSDBackoff(1, m.seed, -1, 10, BACKOFF_BLOCK, 99, begin, end))
        ack = self.objecter.wire(0).sent[-1]
        self.assertIsInstance(ack, MOSDBackoff)
        self.assertEqual((ack.op, ack.id, ack.seed), (BACKOFF_ACK_BLOCK, 99, m.seed))
        d = self.read("x")
        self.assertIsInstance(self.objecter.wire(0).sent[-1], MOSDBackoff)
        self.deliver(0, MOSDBackoff(1, m.seed, -1, 10, BACKOFF_UNBLOCK, 99, begin, end))
        held = self.objecter.wire(0).sent[-1]
        self.assertIsInstance(held, MOSDOp)
        self.deliver(0, reply_to(held))
        self.successResultOf(d)

    def test_lost_session_reconnects_and_resends(self):
        d = self.read()
        session = self.session(0)
        old = session.protocol
        session.connectionLost(old, Failure(ConnectionClosed("reset")))
        self.assertEqual(len(self.objecter.wires), 1)
        self.clock.advance(self.objecter.reconnect_delay)
        new = self.objecter.wire(0)
        self.assertIsNot(new, old)
        self.assertEqual([m.retry_attempt for m in new.sent], [1])
        self.deliver(0, reply_to(new.sent[-1]))
        self.successResultOf(d)

    def test_unreachable_osd_is_retried_until_the_timeout(self):
        self.objecter.refuse = True
        d = self.read()
        for _ in range(10):
            self.clock.advance(1.0)
        self.assertNoResult(d)
        self.objecter.refuse = False
        self.clock.advance(1.0)
        self.assertEqual(len(self.objecter.wire(0).sent), 1)
        self.clock.advance(30.0)
        e = self.failureResultOf(d, OpTimeout).value
        self.assertIn("osd.0", str(e))

    def test_down_primary_waits_for_a_map(self):
        d = self.read()
        seed = self.objecter.wire(0).sent[-1].seed
        self.follower.publish(make_map(11, down=(0,)))
        self.assertTrue(self.objecter.wire(0).closed)
        self.assertEqual(self.objecter.in_flight(), 1)
        [(kind, reason)] = self.objecter.held_reasons()
        self.assertEqual(kind, HELD_NO_PRIMARY)
        self.assertIn("PG 1.%x has no primary OSD up in osdmap e11" % seed, reason)
        self.follower.publish(make_map(12, primary=lambda s: 2, down=(0,)))
        m = self.objecter.wire(2).sent[-1]
        self.deliver(2, reply_to(m))
        self.successResultOf(d)

    def test_nothing_waits_forever(self):
        d = self.read()
        self.follower.publish(make_map(11, primary=lambda s: -1))
        self.clock.advance(29.9)
        self.assertNoResult(d)
        self.clock.advance(0.2)
        self.failureResultOf(d, OpTimeout)
        self.assertEqual(self.objecter.in_flight(), 0)

    def test_each_request_times_out_at_its_own_deadline(self):
        # one timer serves every request: a shorter timeout after a longer
        # one still fires on time, replies leave the others alone, and no
        # timer is left once nothing is in flight
        self.follower.publish(make_map(11, primary=lambda s: -1))
        slow = self.read("slow")
        self.clock.advance(1.0)
        quick = self.objecter.submit(1, "quick", [T.OSDOp.extent(T.OP_READ, 0, 0)], timeout=2.0)
        later = self.objecter.submit(1, "later", [T.OSDOp.extent(T.OP_READ, 0, 0)], timeout=5.0)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(1.9)
        self.assertNoResult(quick)
        self.clock.advance(0.2)
        self.failureResultOf(quick, OpTimeout)
        self.assertNoResult(later)
        self.clock.advance(2.8)             # 5.9 s
        self.assertNoResult(later)
        self.clock.advance(0.2)
        f = self.failureResultOf(later, OpTimeout)
        self.assertIn("after 5 s", str(f.value))
        self.assertNoResult(slow)
        self.clock.advance(23.8)            # 29.9 s
        self.assertNoResult(slow)
        self.clock.advance(0.2)
        self.failureResultOf(slow, OpTimeout)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        # answered requests: the timer ends at its time, as nothing is left
        self.follower.publish(make_map(12))
        for name in ("a", "b", "c"):
            d = self.read(name)
            self.deliver(0, reply_to(self.objecter.wire(0).sent[-1]))
            self.successResultOf(d)
            self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(30.0)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.objecter.in_flight(), 0)
        # and close() cancels it
        d = self.read("d")
        self.objecter.close()
        self.failureResultOf(d, OpTimeout)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_new_address_reopens_the_session(self):
        d = self.read()
        old = self.objecter.wire(0)
        self.follower.publish(make_map(11, nonce=2))
        self.assertTrue(old.closed)
        new = self.objecter.wire(0)
        self.assertEqual(new.addr, "v2:127.0.0.1:6800/2")
        self.deliver(0, reply_to(new.sent[-1]))
        self.successResultOf(d)

    def test_deleted_pool(self):
        d = self.read(pool=2)
        self.follower.publish(make_map(11, pools=(1,)))
        self.failureResultOf(d, PoolNotFound)
        self.failureResultOf(self.read(pool=2), PoolNotFound)

    def test_close_fails_what_is_in_flight(self):
        d = self.read()
        self.objecter.close()
        self.failureResultOf(d, OpTimeout)
        self.assertTrue(self.objecter.wires[0].closed)
        # one submitted after close was never sent: not an OpTimeout
        e = self.failureResultOf(self.read("late"), RadosError).value
        self.assertNotIsInstance(e, OpTimeout)
        self.assertIn("nothing was sent", str(e))

    def test_throttle_by_count(self):
        self.objecter.max_in_flight_ops = 2
        ds = [self.read("t%d" % i) for i in range(3)]
        sent = self.objecter.wire(0).sent
        self.assertEqual([m.oid for m in sent], ["t0", "t1"])
        self.assertEqual(self.objecter.in_flight(), 3)
        self.deliver(0, reply_to(sent[0]))
        self.successResultOf(ds[0])
        self.assertEqual([m.oid for m in sent], ["t0", "t1", "t2"])

    def test_throttle_by_bytes_and_timeout_while_waiting(self):
        self.objecter.max_in_flight_bytes = 10
        write = [T.OSDOp.extent(T.OP_WRITEFULL, 0, 8, b"12345678")]
        d1 = self.objecter.submit(1, "w1", list(write))
        d2 = self.objecter.submit(1, "w2", list(write))
        big = self.objecter.submit(1, "big", [T.OSDOp.extent(T.OP_READ, 0, 1 << 20)])
        self.assertEqual([m.oid for m in self.objecter.wire(0).sent], ["w1"])
        self.clock.advance(30.0)
        for d in (d1, d2, big):
            self.failureResultOf(d, OpTimeout)
        self.assertEqual(self.objecter.in_flight(), 0)
        # one request larger than the budget still goes, alone
        d = self.objecter.submit(1, "big2", [T.OSDOp.extent(T.OP_READ, 0, 1 << 20)])
        m = self.objecter.wire(0).sent[-1]
        self.assertEqual(m.oid, "big2")
        self.deliver(0, reply_to(m))
        self.successResultOf(d)

    def test_a_map_changed_in_place_is_not_served_from_the_cache(self):
        # incrementals change the OSDMap object in place: placements follow the epoch
        d = self.read()
        m = self.follower.osdmap
        first = self.objecter.wire(0).sent[-1]
        m.epoch = 11
        m.pg_temp[PgId(1, first.seed)] = [2]
        self.follower.publish(m)
        again = self.objecter.wire(2).sent[-1]
        self.assertEqual((again.tid, again.retry_attempt), (first.tid, 1))
        self.deliver(2, reply_to(again))
        self.successResultOf(d)
