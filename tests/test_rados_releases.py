"""
Objects on every Ceph release (16.2, 18.2 and 20.2): one cluster per release
(cephx, three memstore OSDs) serves every test here, so the module costs a
few seconds of startup per release.

- librados itself (python3-rados of that release, inside its chroot) reads
  what we write, byte for byte with xattrs and omap, and we read what it
  writes, for each of crc and secure over msgr2.0 and msgr2.1;
- requests keep completing while an OSD is marked out and back in (a
  replicated pool of size 2);
- an erasure-coded pool (k=2 m=1, failure domain osd): our placement equals
  ``ceph osd map``; whole-object writes, reads, stat, xattrs and remove
  work; the writes Ceph refuses on such a pool (at an offset, omap) fail
  with a typed error that names what was refused.
"""

import atexit
import json
import os
import re
import subprocess
import uuid

from twisted.internet import defer, reactor, task, threads
from twisted.trial.unittest import TestCase

from msgr2tx.ceph.crush import ITEM_NONE
from msgr2tx.ceph.osdmap import OSDMap, PgId
from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.constants import ConnectionMode
from msgr2tx.errors import ObjectNotFound, OperationNotSupported
from msgr2tx.rados import Rados
from tests import cephlab
from tests.test_placement import (
    ceph_osd_map_many, check_osd_map_answers, check_osdmap_dump, object_names, osdmaptool_dump,
)

REP = "rel-rep"
EC = "rel-ec"

#: argv: conf keyring pool job.json; job = {"read": [names], "write": {name: hex}};
#: prints {name: {"data", "xattrs", "omap"}} for the names read
LIBRADOS_JOB = r"""
import json, sys, rados
conf, keyring, pool, job = sys.argv[1:5]
job = json.load(open(job))
out = {}
with rados.Rados(conffile=conf, conf={"keyring": keyring}) as r:
    with r.open_ioctx(pool) as io:
        for name in job["read"]:
            size, _ = io.stat(name)
            got = {"data": io.read(name, max(size, 1)).hex(),
                   "xattrs": {k: v.hex() for k, v in io.get_xattrs(name)}}
            with rados.ReadOpCtx() as op:
                it, ret = io.get_omap_vals(op, "", "", 100000)
                io.operate_read_op(op, name)
                got["omap"] = {k: v.hex() for k, v in it}
            out[name] = got
        for name, data in job["write"].items():
            io.write_full(name, bytes.fromhex(data))
            io.set_xattr(name, "user.by", b"librados " + rados.__name__.encode())
            with rados.WriteOpCtx() as op:
                io.set_omap(op, ("k", "name"), (b"v", name.encode()))
                io.operate_write_op(op, name)
print(json.dumps(out))
"""

MODES = [(ConnectionMode.CRC, False), (ConnectionMode.CRC, True),
         (ConnectionMode.SECURE, False), (ConnectionMode.SECURE, True)]

_CLUSTERS: dict = {}


def _cluster(release):
    """The module's cluster of *release*: cephx, osd.0-2, a replicated pool
    of size 2 and an erasure-coded pool (k=2 m=1 over OSDs); made once."""
    if release in _CLUSTERS:
        return _CLUSTERS[release]
    cephlab.ensure_ceph()
    cephlab.ensure_release(release)
    mon = cephlab.CephMonitor(auth="cephx", release=release).start()
    atexit.register(mon.stop)
    try:
        for _ in range(3):
            mon.add_osd()
        mon.create_pool(REP, 16)
        mon.ceph_checked("osd", "pool", "set", REP, "size", "2")
        mon.ceph_checked("osd", "erasure-code-profile", "set", "k2m1", "k=2", "m=1", "crush-failure-domain=osd")
        mon.ceph_checked("osd", "pool", "create", EC, "8", "8", "erasure", "k2m1")
        mon.ceph_checked("osd", "pool", "application", "enable", EC, "rados")
        mon.rados("-p", REP, "ls", timeout=60)
        mon.rados("-p", EC, "ls", timeout=60)
    except BaseException:
        mon.stop()
        raise
    _CLUSTERS[release] = mon
    return mon


def _librados_job(mon, pool, read=(), write=None):
    """Run LIBRADOS_JOB with the release's own python3-rados."""
    d = cephlab.release_tmpdir(mon.release, prefix="msgr2tx-job-")
    try:
        path = os.path.join(d, "job.json")
        with open(path, "w") as f:
            json.dump({"read": list(read), "write": write or {}}, f)
        env = {k: v for k, v in os.environ.items() if k not in ("CEPH_ARGS", "CEPH_CONF", "CEPH_KEYRING")}
        p = subprocess.run(mon.librados_argv() + ["-c", LIBRADOS_JOB, mon.conf, mon.keyring, pool, path],
                           env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=90)
    finally:
        cephlab.remove_release_tmpdir(d)
    if p.returncode != 0:
        raise AssertionError("librados (%s) failed: %s" % (mon.release, p.stderr.decode("utf-8", "replace")[-2000:]))
    return json.loads(p.stdout.decode())


def _ids(text):
    return [ITEM_NONE if v == "NONE" else int(v) for v in text.split(",") if v]


class _ReleaseCase(TestCase):
    """The module's cluster of C{release}, and clients of it."""

    timeout = 240
    release = cephlab.DEFAULT_RELEASE

    def setUp(self):
        self.mon = _cluster(self.release)

    @defer.inlineCallbacks
    def client(self, config=None, op_timeout=30.0):
        rados = Rados(reactor, self.mon.addr, auth="cephx:keyring=%s" % self.mon.keyring, config=config,
                      op_timeout=op_timeout)
        yield rados.connect()
        self.addCleanup(rados.close)
        return rados

    @defer.inlineCallbacks
    def placed_like_the_monitor(self, rados, jobs):
        """The monitor's osd map for each (pool, names) of *jobs*, checked
        against our client's map at the same epoch; fires with the answers."""
        for _ in range(10):
            epoch = (yield threads.deferToThread(self.mon.osd_dump))["epoch"]
            yield rados.follower.when_epoch(epoch).addTimeout(30, reactor)
            answers = yield threads.deferToThread(ceph_osd_map_many, self.mon, jobs)
            if {a["epoch"] for a in answers} == {rados.osdmap.epoch}:
                check_osd_map_answers(self, rados.osdmap, answers)
                return answers
            yield task.deferLater(reactor, 0.5, lambda: None)
        self.fail("the map kept changing")


class ObjectsOnReleaseTests(_ReleaseCase):
    """librados interop in four modes, an OSD out and in, an EC pool."""

    @defer.inlineCallbacks
    def test_librados_both_ways_in_every_mode(self):
        tag = uuid.uuid4().hex[:6]
        ours = {}
        clients = []
        for mode, rev1 in MODES:
            rados = yield self.client(ConnectionConfig(modes=(mode,), revision1=rev1))
            clients.append(rados)
            io = rados.open_ioctx(REP)
            name = "ours-%s-%s-%d-%s" % (self.release, mode.name.lower(), rev1, tag)
            data = os.urandom(150000 + 1000 * len(ours))
            yield io.write_full(name, data)
            yield io.write(name, b"PATCHED", 777)
            data = data[:777] + b"PATCHED" + data[784:]
            yield io.setxattr(name, "user.mode", mode.name.encode())
            yield io.omap_set(name, {"rev": b"%d" % rev1, "bin": b"\x00\xff" * 3})
            ours[name] = (data, mode, rev1)
            session = next(iter(rados.objecter.sessions.values()))
            self.assertEqual((session.protocol.info.con_mode, session.protocol.info.revision),
                             (mode, 1 if rev1 else 0))
        theirs = {"lib-%s-%d-%s" % (self.release, i, tag): os.urandom(90000 + i) for i in range(len(MODES))}
        got = yield threads.deferToThread(_librados_job, self.mon, REP, read=list(ours),
                                          write={n: d.hex() for n, d in theirs.items()})
        for name, (data, mode, rev1) in ours.items():
            self.assertEqual(bytes.fromhex(got[name]["data"]), data, name)
            self.assertEqual({k: bytes.fromhex(v) for k, v in got[name]["xattrs"].items()},
                             {"user.mode": mode.name.encode()})
            self.assertEqual({k: bytes.fromhex(v) for k, v in got[name]["omap"].items()},
                             {"rev": b"%d" % rev1, "bin": b"\x00\xff" * 3})
        for rados, (name, data) in zip(clients, sorted(theirs.items())):
            io = rados.open_ioctx(REP)
            self.assertEqual((yield io.read(name)), data)
            self.assertEqual((yield io.stat(name)).size, len(data))
            self.assertEqual((yield io.getxattr(name, "user.by")), b"librados rados")
            self.assertEqual((yield io.omap_get(name)), {"k": b"v", "name": name.encode()})

    @defer.inlineCallbacks
    def test_osd_out_and_in_during_io(self):
        rados = yield self.client(op_timeout=60.0)
        io = rados.open_ioctx(REP)
        prefix = "oi-%s-" % uuid.uuid4().hex[:6]
        written = {}
        stop = []

        @defer.inlineCallbacks
        def writer():
            i = 0
            while not stop:
                batch = {"%s%04d" % (prefix, i + k): os.urandom(3000) for k in range(8)}
                yield defer.gatherResults([io.write_full(n, b) for n, b in batch.items()])
                written.update(batch)
                got = yield defer.gatherResults([io.read(n) for n in batch])
                self.assertEqual(got, list(batch.values()))
                i += 8
                yield task.deferLater(reactor, 0.1, lambda: None)

        running = writer()
        epoch0 = rados.osdmap.epoch
        try:
            for step in (("osd", "out", "0"), ("osd", "in", "0"), ("osd", "out", "2"), ("osd", "in", "2")):
                yield task.deferLater(reactor, 1.0, lambda: None)
                yield threads.deferToThread(self.mon.ceph_checked, *step)
                if step[1] == "out":
                    # the map we send by has the OSD out of every up set while writes go on
                    dump = yield threads.deferToThread(self.mon.osd_dump)
                    yield rados.follower.when_epoch(dump["epoch"]).addTimeout(30, reactor)
                    pool = rados.osdmap.pool_by_name(REP)
                    ups = [rados.osdmap.pg_to_up_acting(PgId(pool.id, s)).up for s in range(pool.pg_num)]
                    self.assertFalse([u for u in ups if int(step[2]) in u])
                    self.assertTrue(all(len(u) == 2 for u in ups))
            epoch = (yield threads.deferToThread(self.mon.osd_dump))["epoch"]
            yield rados.follower.when_epoch(epoch).addTimeout(30, reactor)
            yield task.deferLater(reactor, 1.5, lambda: None)
        finally:
            stop.append(True)
            yield running
        self.assertGreaterEqual(rados.osdmap.epoch, epoch0 + 4)
        self.assertGreater(len(written), 24)
        listed = yield threads.deferToThread(self.mon.rados, "-p", REP, "ls")
        self.assertEqual(sorted(n for n in listed.stdout.decode().split() if n.startswith(prefix)), sorted(written))
        for name in sorted(written)[::len(written) // 8]:
            self.assertEqual((yield threads.deferToThread(self.mon.rados_get, REP, name)), written[name], name)
        names = sorted(written)
        self.assertEqual((yield defer.gatherResults([io.read(n) for n in names])), [written[n] for n in names])
        self.assertGreater(len(rados.objecter.sessions), 1)
        self.assertEqual(rados.objecter.in_flight(), 0)

    @defer.inlineCallbacks
    def test_erasure_coded_pool(self):
        rados = yield self.client()
        m = rados.osdmap
        pool = m.pool_by_name(EC)
        self.assertEqual((pool.type, pool.size, pool.erasure_code_profile), (3, 3, "k2m1"))
        # placement: ours against the monitor's, NONE holes included (none expected with all up)
        pat = re.compile(r"object '(.*)' -> pg (\d+)\.([0-9a-f]+) \((\S+)\) -> up \(\[(.*?)\], p(-?\d+)\) "
                         r"acting \(\[(.*?)\], p(-?\d+)\)")
        for i in range(6):
            name = "ecmap-%d" % (i * 101)
            out = (yield threads.deferToThread(self.mon.ceph_checked, "osd", "map", EC, name)).stdout.decode()
            mt = pat.search(out)
            self.assertIsNotNone(mt, out)
            raw, pg, placement = rados.osdmap.map_object(pool.id, name.encode())
            self.assertEqual((raw.seed, str(pg)), (int(mt.group(3), 16), mt.group(4)), out)
            self.assertEqual(tuple(placement), (_ids(mt.group(5)), int(mt.group(6)),
                                                _ids(mt.group(7)), int(mt.group(8))), out)
            self.assertEqual(sorted(placement.up), [0, 1, 2])
        io = rados.open_ioctx(EC)
        name = "ec-%s" % uuid.uuid4().hex[:8]
        data = os.urandom(200001)
        yield io.write_full(name, data)
        self.assertEqual((yield io.read(name)), data)
        self.assertEqual((yield io.read(name, 1000, 5000)), data[5000:6000])
        self.assertEqual((yield io.stat(name)).size, len(data))
        self.assertEqual((yield threads.deferToThread(self.mon.rados_get, EC, name)), data)
        yield io.setxattr(name, "user.ec", b"yes")
        self.assertEqual((yield io.getxattr(name, "user.ec")), b"yes")
        # what Ceph refuses on an EC pool without overwrites: typed, in words
        e = yield self.assertFailure(io.write(name, b"x", 10), OperationNotSupported)
        self.assertEqual((e.errno, e.pool, e.oid), (95, EC, name))
        self.assertIn("write", str(e))
        self.assertIn(repr(EC), str(e))
        self.assertIn("operation not supported", str(e))
        e = yield self.assertFailure(io.omap_set(name, {"k": b"v"}), OperationNotSupported)
        self.assertEqual(e.errno, 95)
        self.assertIn("omap", str(e))
        e = yield self.assertFailure(io.append(name, b"x"), OperationNotSupported)
        self.assertIn("append", str(e))
        # the refused writes changed nothing
        self.assertEqual((yield io.read(name)), data)
        # an append at a stripe boundary is taken
        width = pool.stripe_width
        self.assertGreater(width, 0)
        aligned = name + "-a"
        yield io.write_full(aligned, data[:width])
        yield io.append(aligned, b"tail")
        self.assertEqual((yield threads.deferToThread(self.mon.rados_get, EC, aligned)), data[:width] + b"tail")
        yield io.remove(aligned)
        # osd.1 out: CRUSH has two OSDs for three shards, and the up sets show
        # the hole (NONE) where the monitor shows it; reads still work
        yield threads.deferToThread(self.mon.ceph_checked, "osd", "out", "1")
        try:
            answers = yield self.placed_like_the_monitor(rados, [(EC, object_names("ec-out", 300))])
            self.assertTrue(any(ITEM_NONE in a["up"] for a in answers))
            self.assertEqual((yield io.read(name)), data)
        finally:
            yield threads.deferToThread(self.mon.ceph_checked, "osd", "in", "1")
        yield io.remove(name)
        yield self.assertFailure(io.stat(name), ObjectNotFound)

    @defer.inlineCallbacks
    def test_map_known_answers_and_many_objects(self):
        # the live map (OSDs up, with addresses): our decode of the monitor's
        # map and the map our client built from incrementals, field by field
        # against the release's osdmaptool; then 2000 names per pool placed
        # by the client's map against the monitor's answers at that epoch
        rados = yield self.client()
        for _ in range(5):
            path = os.path.join(self.mon.dir, "osdmap-%s.bin" % uuid.uuid4().hex[:6])
            yield threads.deferToThread(self.mon.ceph_checked, "osd", "getmap", "-o", path)
            with open(path, "rb") as f:
                decoded = OSDMap.decode(f.read())
            yield rados.follower.when_epoch(decoded.epoch).addTimeout(30, reactor)
            ours = rados.osdmap
            if ours.epoch != decoded.epoch:
                continue
            answers = yield threads.deferToThread(ceph_osd_map_many, self.mon,
                                                  [(p, object_names(p, 2000)) for p in (REP, EC)])
            if {a["epoch"] for a in answers} == {decoded.epoch}:
                break
        else:
            self.fail("the map kept changing")
        dump = yield threads.deferToThread(osdmaptool_dump, self.release, path)
        self.assertGreater(check_osdmap_dump(self, decoded, dump), 50)
        self.assertGreater(check_osdmap_dump(self, ours, dump), 50)
        self.assertTrue(all(ours.is_up(i) and ours.osd_addrs[i].addrs for i in range(3)))
        self.assertEqual(check_osd_map_answers(self, ours, answers), 4000)


cephlab.release_variants(globals(), ObjectsOnReleaseTests)


#: an msr_indep rule over OSDs (three OSDs on one host here), set with crushtool
MSR_RULE = """
rule msrosd {
	id 7
	type msr_indep
	step take default
	step choosemsr 3 type osd
	step emit
}
"""


class MsrPoolTentacleTests(_ReleaseCase):
    """
    An erasure-coded pool on an MSR rule (Ceph 20.2): the cluster then
    requires CRUSH_MSR of every client, which Rados advertises; objects go
    both ways and placement equals the monitor's.
    """

    release = "tentacle"

    @defer.inlineCallbacks
    def test_io_on_an_msr_pool(self):
        mon = self.mon
        pools = {p["pool_name"] for p in (yield threads.deferToThread(mon.osd_dump))["pools"]}
        if "rel-msr" not in pools:
            yield threads.deferToThread(self._make_msr_pool)
        rados = yield self.client()
        pool = rados.osdmap.pool_by_name("rel-msr")
        self.assertEqual(rados.osdmap.crush.rules[pool.crush_rule].type, 5)
        io = rados.open_ioctx("rel-msr")
        name = "msr-%s" % uuid.uuid4().hex[:8]
        data = os.urandom(120000)
        yield io.write_full(name, data)
        self.assertEqual((yield threads.deferToThread(mon.rados_get, "rel-msr", name)), data)
        yield threads.deferToThread(mon.rados_put, "rel-msr", name + "-t", data[::-1])
        self.assertEqual((yield io.read(name + "-t")), data[::-1])
        yield self.placed_like_the_monitor(rados, [("rel-msr", object_names("msr", 500))])

    @defer.inlineCallbacks
    def test_commands_on_a_cluster_with_msr_rules(self):
        # the monitor refuses a session without CRUSH_MSR once the map has an
        # MSR rule: the CLI's commands and pings and a bare MonClient advertise it
        import sys

        from twisted.internet import utils

        from msgr2tx.auth import makeClientHandler
        from msgr2tx.clients.monclient import MonClient

        mon = self.mon
        pools = {p["pool_name"] for p in (yield threads.deferToThread(mon.osd_dump))["pools"]}
        if "rel-msr" not in pools:
            yield threads.deferToThread(self._make_msr_pool)
        from tests.test_cli_partial import env as cli_env
        env = dict(cli_env(), CEPH_ARGS="")
        out, err, code = yield utils.getProcessOutputAndValue(
            sys.executable, ["-m", "msgr2tx", "command", "-c", "/dev/null", "-m", mon.addr, "-k", mon.keyring,
                             "--timeout", "60", "osd", "crush", "rule", "ls"], env=env)
        self.assertEqual(code, 0, err)
        self.assertIn(b"msrosd", out)
        out, err, code = yield utils.getProcessOutputAndValue(
            sys.executable, ["-m", "msgr2tx", "ping", mon.addr, "-c", "/dev/null", "-k", mon.keyring,
                             "--count", "1", "--timeout", "60"], env=env)
        self.assertEqual(code, 0, err)
        monclient = MonClient()
        monclient.start(reactor, [mon.addr], [makeClientHandler("cephx:keyring=%s" % mon.keyring)])
        self.addCleanup(monclient.stop)
        yield monclient.authenticate(timeout=60)
        result, _, output = yield monclient.command({"prefix": "osd crush rule ls", "format": "json"})
        self.assertEqual(result, 0)
        self.assertIn("msrosd", json.loads(output))

    def _make_msr_pool(self):
        mon = self.mon
        prefix = cephlab.release_argv(self.release)
        path = os.path.join(mon.dir, "crush-msr")
        mon.ceph_checked("osd", "getcrushmap", "-o", path)
        subprocess.run(prefix + ["crushtool", "-d", path, "-o", path + ".txt"], check=True, timeout=60)
        with open(path + ".txt", "a") as f:
            f.write(MSR_RULE)
        subprocess.run(prefix + ["crushtool", "-c", path + ".txt", "-o", path + ".new"], check=True, timeout=60)
        mon.ceph_checked("osd", "set-require-min-compat-client", "squid")
        mon.ceph_checked("osd", "setcrushmap", "-i", path + ".new")
        mon.ceph_checked("osd", "pool", "create", "rel-msr", "8", "8", "erasure", "k2m1", "msrosd")
        mon.ceph_checked("osd", "pool", "application", "enable", "rel-msr", "rados")
        mon.rados("-p", "rel-msr", "ls", timeout=60)
