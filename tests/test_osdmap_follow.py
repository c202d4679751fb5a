"""
Following the OSDMap over a monitor session: MOSDMap decoded, incrementals
applied in order from a real 16.2 monitor, and the result equal, field by
field and placement by placement, to the full map the monitor hands out
(C{ceph osd getmap}) at the same epoch.
"""

import uuid

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase

from msgr2tx import ConnectionConfig, EntityName, MonClient, connect
from msgr2tx.auth.none import NoneClientHandler
from msgr2tx.clients.follower import OSDMapFollower
from msgr2tx.ceph.osdmap import OSDMap, PgId, advance
from msgr2tx.messages.osd import MOSDMap
from tests import cephlab

ADMIN = EntityName.parse("client.admin")


def _same_map(test, ours, theirs):
    """Every client-visible field equal, and every PG placed alike."""
    for name in ("fsid", "epoch", "modified", "pool_max", "flags", "max_osd", "osd_state", "osd_weight",
                 "osd_addrs", "pg_temp", "primary_temp", "primary_affinity", "erasure_code_profiles",
                 "pg_upmap", "pg_upmap_items", "pg_upmap_primaries", "crush_version"):
        test.assertEqual(getattr(ours, name), getattr(theirs, name), name)
    test.assertEqual({i: vars(p) for i, p in ours.pools.items()}, {i: vars(p) for i, p in theirs.pools.items()})
    test.assertEqual([vars(b) if b else None for b in ours.crush.buckets],
                     [vars(b) if b else None for b in theirs.crush.buckets])
    test.assertEqual([vars(r) if r else None for r in ours.crush.rules],
                     [vars(r) if r else None for r in theirs.crush.rules])
    for pool in theirs.pools.values():
        for seed in range(pool.pg_num):
            pg = PgId(pool.id, seed)
            test.assertEqual(ours.pg_to_up_acting(pg), theirs.pg_to_up_acting(pg), str(pg))


class FollowTests(TestCase):
    timeout = 120
    release = cephlab.DEFAULT_RELEASE

    def setUp(self):
        cephlab.ensure_ceph()
        self.mon = cephlab.CephMonitor(auth="none", release=self.release).start()
        self.addCleanup(self.mon.stop)

    @defer.inlineCallbacks
    def connect(self, monclient):
        p = yield connect(reactor, self.mon.addr, [NoneClientHandler(ADMIN)], ConnectionConfig(),
                          receiver=monclient, timeout=10)
        self.addCleanup(p.transport.loseConnection)
        return p

    def full_map(self):
        path = self.mon.dir + "/osdmap.now"
        self.mon.ceph_checked("osd", "getmap", "-o", path)
        with open(path, "rb") as f:
            return OSDMap.decode(f.read())

    def change_the_map(self):
        c = self.mon.ceph_checked
        for _ in range(4):
            c("osd", "new", str(uuid.uuid4()))
        c("osd", "crush", "add-bucket", "h1", "host")
        c("osd", "crush", "move", "h1", "root=default")
        for i in range(4):
            c("osd", "crush", "add", "osd.%d" % i, "1.0", "host=h1")
        c("osd", "pool", "create", "p1", "8")
        c("osd", "pool", "create", "p2", "16")
        c("osd", "pool", "set", "p2", "size", "2")
        c("osd", "pool", "rename", "p2", "p2b")
        c("osd", "set-require-min-compat-client", "luminous")
        c("osd", "pg-upmap-items", "1.1", "0", "2")
        c("osd", "pg-upmap", "2.3", "3", "1")
        c("osd", "out", "1")
        c("osd", "primary-affinity", "osd.2", "0.5")
        c("osd", "pool", "create", "gone", "4")
        c("osd", "pool", "rm", "gone", "gone", "--yes-i-really-really-mean-it")
        c("osd", "rm-pg-upmap", "2.3")
        c("osd", "crush", "remove", "osd.3")
        c("osd", "rm", "osd.3")

    @defer.inlineCallbacks
    def test_incrementals_from_epoch_1(self):
        self.change_the_map()
        messages = []
        monclient = MonClient()
        monclient.addMessageHandler(MOSDMap, messages.append)
        monclient.subscribe("osdmap", 1)
        yield self.connect(monclient)
        full = self.full_map()
        for _ in range(100):
            if messages and max(m.last for m in messages) >= full.epoch:
                break
            yield task.deferLater(reactor, 0.1, lambda: None)
        self.assertFalse(any(m.maps for m in messages))       # incrementals only
        ours = None
        for m in messages:
            ours, want = advance(ours, m.fsid_uuid, m.incremental_maps, m.maps, m.oldest_map)
            self.assertIsNone(want)
        self.assertEqual(ours.epoch, full.epoch)
        self.assertGreater(full.epoch, 20)
        _same_map(self, ours, full)
        self.assertEqual(sorted(p.name for p in ours.pools.values()), ["p1", "p2b"])

    @defer.inlineCallbacks
    def test_follower_live(self):
        # a full map first, then incrementals as the map changes under us
        monclient = MonClient()
        follower = OSDMapFollower(monclient)
        seen = []
        follower.add_listener(lambda m: seen.append(m.epoch))
        yield self.connect(monclient)
        first = yield follower.when_epoch(1)
        self.assertEqual(first.epoch, self.full_map().epoch)
        self.change_the_map()
        full = self.full_map()
        current = yield follower.when_epoch(full.epoch)
        self.assertEqual(current.epoch, full.epoch)
        _same_map(self, current, full)
        self.assertEqual(seen, sorted(set(seen)))
        self.assertEqual(monclient.subscriptions["osdmap"], full.epoch + 1)

    def test_gap_asks_for_the_missing_epochs(self):
        base = self.full_map()
        self.mon.ceph_checked("osd", "pool", "create", "p1", "8")
        self.mon.ceph_checked("osd", "pool", "create", "p2", "8")
        later = self.full_map()
        # an incremental two epochs ahead cannot be applied: ask from base + 1
        ours, want = advance(base, base.fsid, {base.epoch + 5: b"unused"}, {}, 0)
        self.assertIs(ours, base)
        self.assertEqual(want, base.epoch + 1)
        # no map yet and no full map offered: ask for the newest full map
        self.assertEqual(advance(None, base.fsid, {3: b"unused"}, {}, 0), (None, 0))
        # a full map for the next epochs is taken
        path = self.mon.dir + "/later"
        self.mon.ceph_checked("osd", "getmap", str(later.epoch), "-o", path)
        with open(path, "rb") as f:
            blob = f.read()
        ours, want = advance(base, base.fsid, {}, {later.epoch: blob}, base.epoch + 1)
        self.assertEqual((ours, want), (base, base.epoch + 1))    # the sender has what we lack
        ours, want = advance(base, base.fsid, {}, {later.epoch: blob}, later.epoch)
        self.assertIsNone(want)                                     # trimmed: jump to its full map
        self.assertEqual(ours.epoch, later.epoch)
        # another cluster's maps are ignored
        self.assertEqual(advance(base, uuid.uuid4(), {}, {later.epoch: blob}), (base, None))


cephlab.release_variants(globals(), FollowTests)
