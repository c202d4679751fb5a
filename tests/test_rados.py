"""
Object I/O against real Ceph 16.2 (memstore OSDs): what msgr2tx.rados
writes, the rados tool and librados (python3-rados) read byte for byte, and
the other way round; xattrs, omap and listings both ways; typed errors;
cephx in crc and secure modes over msgr2.0 and msgr2.1; and requests that
keep completing while an OSD is marked out and back in.
"""

import errno
import json
import os
import subprocess
import sys
import time
import uuid

from twisted.internet import defer, reactor, task, threads
from twisted.trial.unittest import TestCase

from msgr2tx.ceph import osd_types as T
from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.constants import ConnectionMode
from msgr2tx.errors import NoData, ObjectExists, ObjectNotFound, OpTimeout, PoolNotFound, RadosError
from msgr2tx.rados import Rados
from tests import cephlab

POOL = "rados-io"

LIBRADOS_READ = r"""
import json, sys, rados
conf, keyring, pool, name = sys.argv[1:5]
with rados.Rados(conffile=conf, conf={"keyring": keyring}) as r:
    with r.open_ioctx(pool) as io:
        size, _ = io.stat(name)
        out = {"data": io.read(name, max(size, 1)).hex(),
               "xattrs": {k: v.hex() for k, v in io.get_xattrs(name)},
               "omap": {}}
        with rados.ReadOpCtx() as op:
            it, ret = io.get_omap_vals(op, "", "", 100000)
            io.operate_read_op(op, name)
            out["omap"] = {k: v.hex() for k, v in it}
print(json.dumps(out))
"""

LIBRADOS_WRITE = r"""
import sys, rados
conf, keyring, pool, name, data_hex = sys.argv[1:6]
with rados.Rados(conffile=conf, conf={"keyring": keyring}) as r:
    with r.open_ioctx(pool) as io:
        io.write_full(name, bytes.fromhex(data_hex))
        io.set_xattr(name, "user.by", b"librados")
        with rados.WriteOpCtx() as op:
            io.set_omap(op, ("a", "b"), (b"1", b"2"))
            io.operate_write_op(op, name)
"""


def _ensure_pool(mon, name=POOL, pg_num=8):
    pools = {p["pool_name"] for p in mon.osd_dump()["pools"]}
    if name not in pools:
        mon.create_pool(name, pg_num)
    return name


def _librados(mon, script, *args):
    python = cephlab.librados_python()
    env = {k: v for k, v in os.environ.items() if k not in ("CEPH_ARGS", "CEPH_CONF", "CEPH_KEYRING")}
    p = subprocess.run([python, "-c", script, mon.conf, mon.keyring, *args], env=env, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    if p.returncode != 0:
        raise AssertionError("librados script failed: %s" % p.stderr.decode("utf-8", "replace")[-2000:])
    return p.stdout.decode()


def _cli(mon, *argv):
    """msgr2tx rados against C{mon} with auth none (text output); CEPH_* come from nowhere."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {k: v for k, v in os.environ.items() if k not in ("CEPH_ARGS", "CEPH_CONF", "CEPH_KEYRING")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "msgr2tx", "rados", "-m", mon.addr, "--auth", "none", *argv],
                          capture_output=True, text=True, timeout=60, env=env)


def _auth_spec(mon):
    return "none" if mon.auth == "none" else "cephx:keyring=%s" % mon.keyring


class _RadosCase(TestCase):
    timeout = 120
    auth = "none"

    def setUp(self):
        cephlab.ensure_ceph()
        self.mon = cephlab.shared_monitor(self.auth, osds=1)
        _ensure_pool(self.mon)

    @defer.inlineCallbacks
    def client(self, config=None, op_timeout=20.0):
        rados = Rados(reactor, self.mon.addr, auth=_auth_spec(self.mon), config=config, op_timeout=op_timeout)
        yield rados.connect()
        self.addCleanup(rados.close)
        return rados

    def name(self, what):
        return "%s-%s" % (what, uuid.uuid4().hex[:8])


class InteropTests(_RadosCase):
    """auth none, crc, msgr2.1: every operation, both ways."""

    @defer.inlineCallbacks
    def test_we_write_they_read(self):
        rados = yield self.client()
        io = rados.open_ioctx(POOL)
        name = self.name("ours")
        data = os.urandom(300000)
        yield io.write_full(name, data)
        yield io.write(name, b"PATCH", 1000)
        expect = data[:1000] + b"PATCH" + data[1005:]
        got = yield threads.deferToThread(self.mon.rados_get, POOL, name)
        self.assertEqual(got, expect)
        yield io.setxattr(name, "user.colour", b"blue")
        yield io.omap_set(name, {"k1": b"v1", "k2": b"\x00\xff"})
        theirs = json.loads((yield threads.deferToThread(_librados, self.mon, LIBRADOS_READ, POOL, name)))
        self.assertEqual(bytes.fromhex(theirs["data"]), expect)
        self.assertEqual(bytes.fromhex(theirs["xattrs"]["user.colour"]), b"blue")
        self.assertEqual({k: bytes.fromhex(v) for k, v in theirs["omap"].items()}, {"k1": b"v1", "k2": b"\x00\xff"})
        rxattr = yield threads.deferToThread(self.mon.rados, "-p", POOL, "getxattr", name, "user.colour")
        self.assertEqual(rxattr.stdout, b"blue")

    @defer.inlineCallbacks
    def test_they_write_we_read(self):
        rados = yield self.client()
        io = rados.open_ioctx(POOL)
        name = self.name("theirs")
        data = os.urandom(5 << 20)      # more than one 4 MiB read of the rados tool
        yield threads.deferToThread(self.mon.rados_put, POOL, name, data)
        self.assertEqual((yield io.read(name)), data)
        self.assertEqual((yield io.read(name, 10, 4 << 20)), data[4 << 20:(4 << 20) + 10])
        self.assertEqual((yield io.read(name, 100, len(data) - 7)), data[-7:])
        self.assertEqual((yield io.read(name, 6 << 20, 1)), data[1:])
        io.read_chunk = 1 << 20     # exactly five chunks and an empty sixth read
        self.assertEqual((yield io.read(name)), data)
        self.assertEqual((yield io.read(name, 3000000, 500000)), data[500000:3500000])
        st = yield io.stat(name)
        self.assertEqual(st.size, len(data))
        # read returns bytes whatever the size; read_view leaves 64 KiB and
        # more as a read-only view of the received frame
        io.read_chunk = 4 << 20
        # (the messenger keeps frames of 256 KiB and more whole: those replies)
        for length in (4 << 20, 1 << 20, (1 << 16) - 1):
            got = yield io.read(name, length, 12345)
            self.assertIs(type(got), bytes)
            view = yield io.read_view(name, length, 12345)
            self.assertIs(type(view), memoryview if length >= 1 << 20 else bytes)
            self.assertEqual((got, bytes(view)), (data[12345:12345 + length],) * 2)
            if type(view) is memoryview:
                self.assertTrue(view.readonly)
                view.release()
        self.assertEqual(bytes((yield io.read_view(name, 1 << 20, len(data) - 100))), data[-100:])
        self.assertRaises(ValueError, io.read_view, name, io.read_chunk + 1)
        ops = yield io.operate(name, [T.OSDOp.extent(T.OP_READ, 0, 1 << 20)])
        self.assertIs(type(ops[0].outdata), bytes)
        small = self.name("lib")
        yield threads.deferToThread(_librados, self.mon, LIBRADOS_WRITE, POOL, small, b"from librados".hex())
        self.assertEqual((yield io.read(small)), b"from librados")
        self.assertEqual((yield io.getxattr(small, "user.by")), b"librados")
        self.assertEqual((yield io.omap_get(small)), {"a": b"1", "b": b"2"})
        yield threads.deferToThread(self.mon.rados, "-p", POOL, "setomapval", small, "c", "3")
        self.assertEqual((yield io.omap_get_by_keys(small, ["c", "zz"])), {"c": b"3"})

    @defer.inlineCallbacks
    def test_omap_in_pages(self):
        rados = yield self.client()
        io = rados.open_ioctx(POOL)
        name = self.name("omap")
        values = {"key%04d" % i: b"v%d" % i for i in range(1300)}
        yield io.omap_set(name, values)
        page, more = yield io.omap_get_vals(name, max_return=100)
        self.assertEqual((len(page), more), (100, True))
        self.assertEqual((yield io.omap_get(name)), values)
        self.assertEqual(len((yield io.omap_get(name, filter_prefix="key01"))), 100)
        yield io.omap_rm_keys(name, ["key0000", "key0001"])
        keys = yield threads.deferToThread(self.mon.rados, "-p", POOL, "listomapkeys", name)
        self.assertEqual(len(keys.stdout.split()), 1298)

    @defer.inlineCallbacks
    def test_ls_matches_rados_ls(self):
        rados = yield self.client()
        io = rados.open_ioctx(POOL)
        names = [self.name("ls") for _ in range(40)]
        yield defer.gatherResults([io.write_full(n, n.encode()) for n in names])
        ours = yield io.list_names()
        theirs = yield threads.deferToThread(self.mon.rados, "-p", POOL, "ls")
        self.assertEqual(ours, sorted(theirs.stdout.decode().split()))
        self.assertTrue(set(names) <= set(ours))
        # a namespace lists only its own objects
        ns = rados.open_ioctx(POOL, namespace="elsewhere")
        yield ns.write_full("hidden", b"x")
        self.assertEqual((yield ns.list_names()), ["hidden"])
        self.assertNotIn("hidden", (yield io.list_names()))
        everything = yield io.list_objects(all_namespaces=True)
        theirs = yield threads.deferToThread(self.mon.rados, "-p", POOL, "ls", "--all")
        self.assertEqual(sorted("%s\t%s" % (e.nspace, e.oid) for e in everything),
                         sorted(theirs.stdout.decode().splitlines()))
        self.assertIn(("elsewhere", "hidden"), [(e.nspace, e.oid) for e in everything])

    @defer.inlineCallbacks
    def test_create_remove_and_typed_errors(self):
        rados = yield self.client()
        io = rados.open_ioctx(POOL)
        name = self.name("life")
        yield io.create(name)
        e = yield self.assertFailure(io.create(name), ObjectExists)
        self.assertEqual((e.errno, e.pool, e.oid), (17, POOL, name))
        yield io.create(name, exclusive=False)
        self.assertEqual((yield io.stat(name)).size, 0)
        yield self.assertFailure(io.getxattr(name, "user.none"), NoData)
        yield io.remove(name)
        for d in (io.read(name), io.stat(name), io.remove(name)):
            e = yield self.assertFailure(d, ObjectNotFound)
            self.assertEqual((e.errno, e.pool, e.oid), (2, POOL, name))
            self.assertIn(repr(name), str(e))
            self.assertIn(repr(POOL), str(e))
        self.assertRaises(PoolNotFound, rados.open_ioctx, "no-such-pool")
        # negative offsets and lengths are refused before they reach the wire (u64 there)
        for call in (lambda: io.read(name, 3, -5), lambda: io.read(name, -1), lambda: io.truncate(name, -1),
                     lambda: io.write(name, b"x", -1), lambda: io.read_view(name, -2)):
            self.assertRaises(ValueError, call)
        # a namespace is named in the error
        e = yield self.assertFailure(rados.open_ioctx(POOL, namespace="ns9").stat(name), ObjectNotFound)
        self.assertIn("namespace 'ns9'", str(e))
        # an extent past osd_max_object_size (128 MiB): the OSD refuses it before storing anything
        e = yield self.assertFailure(io.write(name, b"x", 128 << 20), RadosError)
        self.assertEqual(e.errno, errno.EFBIG)
        self.assertIn("osd_max_object_size", str(e))
        stat = yield threads.deferToThread(self.mon.rados, "-p", POOL, "stat", name)
        self.assertNotEqual(stat.returncode, 0)

    @defer.inlineCallbacks
    def test_many_in_flight(self):
        rados = yield self.client()
        io = rados.open_ioctx(POOL)
        names = [self.name("many") for _ in range(64)]
        blobs = {n: os.urandom(4096) for n in names}
        yield defer.gatherResults([io.write_full(n, blobs[n]) for n in names])
        got = yield defer.gatherResults([io.read(n) for n in names])
        self.assertEqual(dict(zip(names, got)), blobs)

    @defer.inlineCallbacks
    def test_paused_requests_wait_then_time_out(self):
        # with the pause flags (PAUSERD, PAUSEWR) set a request has nowhere to
        # go: it waits for a map without them and fails with OpTimeout at its
        # deadline; one still waiting when the flags go is sent then
        rados = yield self.client(op_timeout=3.0)
        io = rados.open_ioctx(POOL)
        name = self.name("paused")
        yield io.write_full(name, b"p")
        yield threads.deferToThread(self.mon.ceph_checked, "osd", "set", "pause")
        try:
            epoch = self.mon.osd_dump()["epoch"]
            yield rados.follower.when_epoch(epoch)
            e = yield self.assertFailure(io.read(name), OpTimeout)
            self.assertIn(name, str(e))
            d = io.write_full(name, b"q")
            yield task.deferLater(reactor, 0.5, lambda: None)
            self.assertFalse(d.called)
        finally:
            yield threads.deferToThread(self.mon.ceph_checked, "osd", "unset", "pause")
        yield d
        self.assertEqual((yield io.read(name)), b"q")

    @defer.inlineCallbacks
    def test_full_pool_holds_writes(self):
        # Ceph's Objecter holds a write to a pool the map marks full (the OSD
        # would drop it unanswered); reads go on, a remove with force_full
        # frees space, the CLI says why it timed out, and a write still held
        # when the pool stops being full is sent then.  The OSD is made full
        # by lowering the full ratios below what it stores.
        rados = yield self.client(op_timeout=3.0)
        io = rados.open_ioctx(POOL)
        keep, spare = self.name("full-keep"), self.name("full-spare")
        data = os.urandom(256 << 10)
        yield defer.gatherResults([io.write_full(keep, data), io.write_full(spare, b"s")])
        pool_id = rados.open_ioctx(POOL).pool_id

        def full():
            pool = rados.follower.osdmap.pools[pool_id]
            return bool(pool.flags & pool.FLAG_FULL)

        @defer.inlineCallbacks
        def until(want):
            deadline = time.monotonic() + 60
            while full() != want:
                if time.monotonic() > deadline:
                    self.fail("the pool did not become %s within 60 s" % ("full" if want else "not full"))
                yield task.deferLater(reactor, 0.2, lambda: None)

        ratios = ("nearfull", "backfillfull", "full")
        for which, value in zip(ratios, ("0.00005", "0.00008", "0.0001")):
            yield threads.deferToThread(self.mon.ceph_checked, "osd", "set-%s-ratio" % which, value)
        held = None
        try:
            yield until(True)
            e = yield self.assertFailure(io.write_full(self.name("full-new"), b"x"), OpTimeout)
            self.assertIn("pool %r is full" % POOL, str(e))
            self.assertIn("held back and never sent", str(e))
            self.assertEqual((yield io.read(keep)), data)
            e = yield self.assertFailure(io.remove(spare), OpTimeout)
            self.assertIn("is full", str(e))
            cli = yield threads.deferToThread(_cli, self.mon, "-p", POOL, "--timeout", "3", "--json", "rm", keep)
            self.assertEqual(cli.returncode, 1, cli.stderr)
            out = json.loads(cli.stdout)
            self.assertEqual(out["error"], "held")
            self.assertIn("pool %r is full" % POOL, out["message"])
            self.assertIn("ceph health detail", out["message"])
            self.assertIn("add --force-full to remove anyway", out["message"])
            yield io.remove(spare, force_full=True)
            yield self.assertFailure(io.stat(spare), ObjectNotFound)
            cli = yield threads.deferToThread(_cli, self.mon, "-p", POOL, "rm", "--force-full", keep)
            self.assertEqual(cli.returncode, 0, cli.stderr)
            held = io.operate(keep, [T.OSDOp.extent(T.OP_WRITEFULL, 0, 4, b"back")], timeout=90)
            yield task.deferLater(reactor, 0.5, lambda: None)
            self.assertFalse(held.called)
        finally:
            for which, value in zip(reversed(ratios), ("0.95", "0.9", "0.85")):
                yield threads.deferToThread(self.mon.ceph_checked, "osd", "set-%s-ratio" % which, value)
            yield until(False)
        if held is not None:
            yield held
            self.assertEqual((yield io.read(keep)), b"back")

    @defer.inlineCallbacks
    def test_no_primary_is_named(self):
        # with its one OSD out, no PG has a primary: a request waits for a
        # map that gives it one, and its timeout (library and CLI) says so
        rados = yield self.client(op_timeout=3.0)
        io = rados.open_ioctx(POOL)
        name = self.name("homeless")
        yield io.write_full(name, b"h")
        osd = self.mon.osd_dump()["osds"][0]["osd"]
        yield threads.deferToThread(self.mon.ceph_checked, "osd", "out", str(osd))
        try:
            epoch = self.mon.osd_dump()["epoch"]
            yield rados.follower.when_epoch(epoch)
            e = yield self.assertFailure(io.read(name), OpTimeout)
            self.assertIn("held back", str(e))
            self.assertIn("has no primary OSD up in osdmap e", str(e))
            cli = yield threads.deferToThread(_cli, self.mon, "-p", POOL, "--timeout", "3", "--json", "get", name, "-")
            out = json.loads(cli.stdout)
            self.assertEqual((cli.returncode, out["error"]), (1, "held"), cli.stderr)
            self.assertIn("has no primary OSD up", out["message"])
            self.assertIn("ceph pg map", out["message"])
        finally:
            yield threads.deferToThread(self.mon.ceph_checked, "osd", "in", str(osd))
        rados.op_timeout = 60.0
        self.assertEqual((yield io.operate(name, [T.OSDOp.extent(T.OP_READ, 0, 1)], timeout=60))[0].outdata, b"h")


class CephxMatrixTests(_RadosCase):
    """cephx: crc and secure, msgr2.0 and msgr2.1, to the monitor and the OSD."""

    auth = "cephx"

    @defer.inlineCallbacks
    def _round_trip(self, mode, rev1):
        config = ConnectionConfig(modes=(mode,), revision1=rev1)
        rados = yield self.client(config=config)
        io = rados.open_ioctx(POOL)
        name = self.name("cell")
        data = os.urandom(70000)
        yield io.write_full(name, data)
        self.assertEqual((yield threads.deferToThread(self.mon.rados_get, POOL, name)), data)
        yield threads.deferToThread(self.mon.rados_put, POOL, name + "-t", data[::-1])
        self.assertEqual((yield io.read(name + "-t")), data[::-1])
        session = next(iter(rados.objecter.sessions.values()))
        info = session.protocol.info
        self.assertEqual((info.con_mode, info.revision), (mode, 1 if rev1 else 0))
        mon_info = rados.monclient.protocol.info
        self.assertEqual((mon_info.con_mode, mon_info.revision), (mode, 1 if rev1 else 0))

    @defer.inlineCallbacks
    def test_auth_as_a_list_of_specs(self):
        rados = Rados(reactor, self.mon.addr, auth=[_auth_spec(self.mon), "none"], connect_timeout=10.0)
        yield rados.connect()
        self.addCleanup(rados.close)
        yield rados.open_ioctx(POOL).write_full(self.name("specs"), b"s")
        self.assertEqual(rados.monclient.protocol.conn.auth_method, 2)    # cephx, the first spec

    @defer.inlineCallbacks
    def test_default_modes_are_cephs(self):
        # without a config, as Ceph's ms_mon_client_mode and ms_client_mode:
        # secure to the monitor, crc to the OSDs
        rados = yield self.client()
        yield rados.open_ioctx(POOL).write_full(self.name("modes"), b"m")
        self.assertEqual(rados.monclient.protocol.info.con_mode, ConnectionMode.SECURE)
        session = next(iter(rados.objecter.sessions.values()))
        self.assertEqual(session.protocol.info.con_mode, ConnectionMode.CRC)

    def test_crc_rev1(self):
        return self._round_trip(ConnectionMode.CRC, True)

    def test_crc_rev0(self):
        return self._round_trip(ConnectionMode.CRC, False)

    def test_secure_rev1(self):
        return self._round_trip(ConnectionMode.SECURE, True)

    def test_secure_rev0(self):
        return self._round_trip(ConnectionMode.SECURE, False)


class ConnectFailureTests(_RadosCase):
    """connect() fails with a typed error, and soon, when it cannot succeed."""

    auth = "cephx"

    @defer.inlineCallbacks
    def test_wrong_key(self):
        from msgr2tx.auth.cephx import CephxAuthProvider
        from msgr2tx.auth.keyring import CryptoKey
        from msgr2tx.errors import AuthError
        handler = CephxAuthProvider().clientHandler(name="client.admin", key=CryptoKey.generate())
        rados = Rados(reactor, self.mon.addr, auth=[handler], connect_timeout=10.0)
        yield self.assertFailure(rados.connect(), AuthError)

    @defer.inlineCallbacks
    def test_osd_address_as_monitor(self):
        # the monitor client asks for a monitor in its HELLO check: an OSD
        # is refused before auth, not blamed on our key
        from msgr2tx.errors import NoMonitorSession
        osd = self.mon.osd_dump()["osds"][0]
        addr = next(a["addr"] for a in osd["public_addrs"]["addrvec"] if a["type"] == "v2")
        rados = Rados(reactor, "v2:" + addr, auth=_auth_spec(self.mon), connect_timeout=10.0)
        e = yield self.assertFailure(rados.connect(give_up_after_round=True), NoMonitorSession)
        self.assertIn("HELLO says it is an osd", str(e))

    @defer.inlineCallbacks
    def test_no_monitor(self):
        from msgr2tx.errors import ConnectionClosed
        port = cephlab.free_port()
        rados = Rados(reactor, "v2:127.0.0.1:%d" % port, auth="none", connect_timeout=2.0)
        e = yield self.assertFailure(rados.connect(), ConnectionClosed)
        self.assertIn(str(port), str(e))
        self.assertIn("connection refused", str(e))

    @defer.inlineCallbacks
    def test_no_monitor_gives_up_after_one_round(self):
        from msgr2tx.errors import NoMonitorSession
        from twisted.internet.error import ConnectionRefusedError
        port = cephlab.free_port()
        rados = Rados(reactor, "v2:127.0.0.1:%d" % port, auth="none", connect_timeout=30.0)
        started = reactor.seconds()
        e = yield self.assertFailure(rados.connect(give_up_after_round=True), NoMonitorSession)
        self.assertLess(reactor.seconds() - started, 5.0)
        self.assertEqual([(name, type(error)) for name, _, error in e.failures],
                         [("noname-a", ConnectionRefusedError)])
        self.assertIn("v2:127.0.0.1:%d/0): connection refused" % port, str(e))

    @defer.inlineCallbacks
    def test_wrong_key_in_words(self):
        # a 16.2 monitor: the plain wrong-key words, with no advice about key types
        from msgr2tx.auth.cephx import CephxAuthProvider
        from msgr2tx.auth.keyring import CryptoKey
        from msgr2tx.errors import AuthBadMethod
        handler = CephxAuthProvider().clientHandler(name="client.admin", key=CryptoKey.generate())
        rados = Rados(reactor, self.mon.addr, auth=[handler], connect_timeout=10.0)
        e = yield self.assertFailure(rados.connect(), AuthBadMethod)
        self.assertIn("refused auth cephx (permission denied); it allows auth cephx with modes", str(e))
        self.assertIn("the key is wrong, or client.admin does not exist", str(e))
        self.assertNotIn("aes256k", str(e))
        self.assertNotIn("method 2", str(e))


class EchoServerTests(TestCase):
    """connect() to a msgr2 peer that is no Ceph monitor (the echo server, as mon.a) fails in time, in words."""

    timeout = 60

    @defer.inlineCallbacks
    def test_no_osdmap_from_an_echo_server(self):
        from msgr2tx.auth.none import NoneServerHandler
        from msgr2tx.core.encoding import EntityType
        from msgr2tx.errors import ConnectionClosed, NoOSDMap
        from msgr2tx.factory import Msgr2ServerFactory
        from msgr2tx.services import EchoReceiver

        factory = Msgr2ServerFactory([NoneServerHandler()], EchoReceiver(),
                                     ConnectionConfig(entity_type=EntityType.MON, entity_num=0))
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        address = "v2:127.0.0.1:%d" % port.getHost().port
        rados = Rados(reactor, [address], auth="none", connect_timeout=3.0)
        started = reactor.seconds()
        e = yield self.assertFailure(rados.connect(), NoOSDMap)
        self.assertIsInstance(e, ConnectionClosed)
        self.assertLess(reactor.seconds() - started, 3.0 + 2.0)
        self.assertIn("no osdmap from noname-a (%s" % address, str(e))
        self.assertIn("is it a Ceph monitor", str(e))
        self.assertIn("identified as mon.", str(e))
        self.assertIsNone(rados.monclient.protocol)   # closed: nothing left dialling


class RetryTests(TestCase):
    """
    Three OSDs, a pool of size 2: objects keep being written and read while
    an OSD is marked out and back in, while one restarts (new address) and
    while the monitor is killed and started again; every request completes
    and nothing is lost.
    """

    timeout = 240

    def setUp(self):
        cephlab.ensure_ceph()
        self.mon = cephlab.CephMonitor(auth="none").start()
        self.addCleanup(self.mon.stop)
        for _ in range(3):
            self.mon.add_osd()
        self.mon.create_pool("r2", 16)
        self.mon.ceph_checked("osd", "pool", "set", "r2", "size", "2")

    @defer.inlineCallbacks
    def test_out_in_and_restarts_during_io(self):
        rados = Rados(reactor, self.mon.addr, auth="none", op_timeout=60.0)
        yield rados.connect()
        self.addCleanup(rados.close)
        io = rados.open_ioctx("r2")
        written = {}
        stop = []

        @defer.inlineCallbacks
        def writer():
            i = 0
            while not stop:
                batch = {"obj-%04d" % (i + k): os.urandom(2048) for k in range(8)}
                yield defer.gatherResults([io.write_full(n, b) for n, b in batch.items()])
                written.update(batch)
                got = yield defer.gatherResults([io.read(n) for n in batch])
                self.assertEqual(got, list(batch.values()))
                i += 8

        running = writer()
        epoch0 = rados.osdmap.epoch
        c = self.mon.ceph_checked
        for step in (("osd", "out", "0"), ("osd", "in", "0"), ("osd", "out", "1"), ("osd", "in", "1")):
            yield task.deferLater(reactor, 1.0, lambda: None)
            yield threads.deferToThread(c, *step)
        yield threads.deferToThread(self.mon.osds[2].restart)
        yield task.deferLater(reactor, 2.0, lambda: None)
        # the monitor dies and comes back: we find it again and the map keeps moving
        yield threads.deferToThread(self.mon.restart)
        yield threads.deferToThread(c, "osd", "out", "2")
        epoch = (yield threads.deferToThread(self.mon.osd_dump))["epoch"]
        yield rados.follower.when_epoch(epoch).addTimeout(30, reactor)
        yield threads.deferToThread(c, "osd", "in", "2")
        yield task.deferLater(reactor, 2.0, lambda: None)
        stop.append(True)
        yield running
        self.assertGreater(rados.osdmap.epoch, epoch0 + 4)
        self.assertGreater(len(written), 40)
        # every object, as the rados tool sees it
        listed = yield threads.deferToThread(self.mon.rados, "-p", "r2", "ls")
        self.assertEqual(sorted(listed.stdout.decode().split()), sorted(written))
        for name in sorted(written)[::7]:
            got = yield threads.deferToThread(self.mon.rados_get, "r2", name)
            self.assertEqual(got, written[name], name)
        # the map moved requests: some were sent again, to more than one OSD
        self.assertGreater(rados.objecter.resends, 0)
        self.assertGreater(len(rados.objecter.sessions), 1)
        self.assertEqual(rados.objecter.in_flight(), 0)


class ExampleTests(_RadosCase):
    """examples/objects.py (shown in docs/objects.md) runs as a user runs it."""

    auth = "cephx"

    def test_example(self):
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ, PYTHONPATH=root)
        _ensure_pool(self.mon, "example")
        argv = [sys.executable, os.path.join(root, "examples", "objects.py"), "--mon", self.mon.addr,
                "--auth", "cephx:keyring=%s" % self.mon.keyring]
        p = subprocess.run(argv + ["--pool", "example"], capture_output=True, text=True, timeout=60, env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = [json.loads(line) for line in p.stdout.splitlines()]
        self.assertEqual((lines[0]["read"], lines[0]["size"]), ("Hello, RADOS", 12))
        self.assertEqual(lines[1], {"xattr": "en", "omap": {"farewell": "bye", "greeting": "hi"}})
        self.assertIn("hello", lines[2]["objects"])
        self.assertEqual(lines[3], {"after_remove": "ObjectNotFound", "errno": 2})
        p = subprocess.run(argv + ["--pool", "no-such-pool"], capture_output=True, text=True, timeout=60, env=env)
        self.assertEqual(p.returncode, 1)
        self.assertIn("no pool named 'no-such-pool'", p.stderr)
        # without --auth (none) against this cephx monitor: the refusal in words
        p = subprocess.run(argv[:4] + ["--pool", "example"], capture_output=True, text=True, timeout=60, env=env)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stderr, "error: the monitor at %s refused auth none; it allows cephx (modes secure, crc): "
                                   "use --auth cephx:keyring=PATH (e.g. /etc/ceph/ceph.client.admin.keyring)\n"
                         % self.mon.addr)
        # a wrong key: the key is named as the cause, not the auth method
        from msgr2tx.auth.keyring import CryptoKey, Keyring
        from msgr2tx.core.encoding import EntityName
        wrong = os.path.abspath(self.mktemp())
        ring = Keyring()
        ring.add(EntityName.parse("client.admin"), CryptoKey.generate(), {})
        ring.save(wrong)
        p = subprocess.run(argv[:4] + ["--auth", "cephx:keyring=%s" % wrong, "--pool", "example"],
                           capture_output=True, text=True, timeout=60, env=env)
        self.assertEqual(p.returncode, 1)
        self.assertIn("the key is wrong, or client.admin does not exist", p.stderr)
        self.assertNotIn("use --auth", p.stderr)


class ReleaseTests(TestCase):
    """Both ways with the rados tool, cephx in secure mode, on each Ceph release."""

    timeout = 180
    release = "pacific"

    def setUp(self):
        cephlab.ensure_ceph()
        self.mon = cephlab.shared_monitor("cephx", osds=1, release=self.release)
        _ensure_pool(self.mon)

    @defer.inlineCallbacks
    def test_both_ways(self):
        config = ConnectionConfig(modes=(ConnectionMode.SECURE,))
        rados = Rados(reactor, self.mon.addr, auth=_auth_spec(self.mon), config=config, op_timeout=20.0)
        yield rados.connect()
        self.addCleanup(rados.close)
        io = rados.open_ioctx(POOL)
        name = "rel-%s" % uuid.uuid4().hex[:8]
        data = os.urandom(100000)
        yield io.write_full(name, data)
        yield io.omap_set(name, {"k": b"v"})
        yield io.setxattr(name, "user.x", b"y")
        self.assertEqual((yield threads.deferToThread(self.mon.rados_get, POOL, name)), data)
        vals = yield threads.deferToThread(self.mon.rados, "-p", POOL, "listomapvals", name)
        self.assertTrue(vals.stdout.startswith(b"k\n"), vals.stdout)
        self.assertIn(b"|v|", vals.stdout)
        got = yield threads.deferToThread(self.mon.rados, "-p", POOL, "getxattr", name, "user.x")
        self.assertEqual(got.stdout, b"y")
        yield threads.deferToThread(self.mon.rados_put, POOL, name + "-t", data[::-1])
        self.assertEqual((yield io.read(name + "-t")), data[::-1])
        listed = yield threads.deferToThread(self.mon.rados, "-p", POOL, "ls")
        self.assertEqual((yield io.list_names()), sorted(listed.stdout.decode().split()))


cephlab.release_variants(globals(), ReleaseTests)


class CliTests(_RadosCase):
    """msgr2tx rados put/get/stat/rm/ls against the rados tool."""

    auth = "cephx"

    def msgr2tx(self, *args, input=None):
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = {k: v for k, v in os.environ.items() if k not in ("CEPH_ARGS", "CEPH_CONF")}
        env["PYTHONPATH"] = root
        argv = [sys.executable, "-m", "msgr2tx", "rados", "-m", self.mon.addr, "-k", self.mon.keyring, *args]
        return subprocess.run(argv, input=input, capture_output=True, timeout=60, env=env)

    def test_put_get_stat_rm_ls(self):
        name = self.name("cli")
        data = os.urandom(200000)
        p = self.msgr2tx("-p", POOL, "put", name, "-", input=data)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.mon.rados_get(POOL, name), data)
        self.mon.rados_put(POOL, name + "-t", data[::-1])
        p = self.msgr2tx("get", name + "-t", "-", "-p", POOL)       # -p after the operation, as rados allows
        self.assertEqual((p.returncode, p.stdout), (0, data[::-1]), p.stderr)
        ours = self.msgr2tx("-p", POOL, "stat", name)
        theirs = self.mon.rados("-p", POOL, "stat", name)
        self.assertEqual(ours.stdout, theirs.stdout)
        p = self.msgr2tx("-p", POOL, "stat", name, "--json")
        self.assertEqual(json.loads(p.stdout)["size"], len(data))
        p = self.msgr2tx("-p", POOL, "stat", name, "-f", "json-pretty")
        self.assertEqual(json.loads(p.stdout)["size"], len(data))
        self.assertIn(b'\n    "size": ', p.stdout)
        ours = self.msgr2tx("-p", POOL, "ls")
        theirs = self.mon.rados("-p", POOL, "ls")
        self.assertEqual(sorted(ours.stdout.split()), sorted(theirs.stdout.split()))
        # -f json as the rados tool's --format json: one array of namespace and name
        ours = self.msgr2tx("-p", POOL, "ls", "-f", "json")
        theirs = self.mon.rados("-p", POOL, "ls", "--format", "json")
        key = lambda e: (e["namespace"], e["name"])  # noqa: E731
        self.assertEqual(sorted(json.loads(ours.stdout), key=key), sorted(json.loads(theirs.stdout), key=key))
        ours = self.msgr2tx("-p", POOL, "ls", "--all")
        theirs = self.mon.rados("-p", POOL, "ls", "--all")
        self.assertEqual(sorted(ours.stdout.splitlines()), sorted(theirs.stdout.splitlines()))
        p = self.msgr2tx("-p", POOL, "rm", name, name + "-t")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertNotEqual(self.mon.rados("-p", POOL, "stat", name).returncode, 0)
        p = self.msgr2tx("-p", POOL, "get", name, "-")
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"not found (ENOENT)", p.stderr)
        p = self.msgr2tx("ls")
        self.assertEqual(p.returncode, 2)

    def test_json_for_every_operation(self):
        # with --json every operation prints one object (get to stdout
        # excepted: the data is the output), and a RADOS error its errno
        name = self.name("json")
        p = self.msgr2tx("-p", POOL, "put", name, "-", "--json", input=b"12345")
        self.assertEqual(json.loads(p.stdout), {"pool": POOL, "namespace": "", "object": name, "size": 5})
        out = os.path.join(self.mktemp())
        p = self.msgr2tx("-p", POOL, "get", name, out, "--json")
        self.assertEqual(json.loads(p.stdout)["size"], 5)
        p = self.msgr2tx("-p", POOL, "rm", name, "--json")
        self.assertEqual(json.loads(p.stdout)["removed"], [name])
        p = self.msgr2tx("-p", POOL, "-N", "ns9", "stat", name, "--json")
        err = json.loads(p.stdout)
        self.assertEqual((p.returncode, err["error"], err["errno"], err["oid"]), (1, "rados", "ENOENT", name))
        self.assertIn("namespace 'ns9'", err["message"])
        p = self.msgr2tx("-p", POOL, "put", name, "/nonexistent/file", "--json")
        self.assertEqual((p.returncode, json.loads(p.stdout)["error"]), (1, "file"))

    def test_put_in_pieces(self):
        """A file over the op size goes as write_full of 4 MiB, then writes at offsets: rados reads it whole."""
        name = self.name("big")
        data = os.urandom(2 * (4 << 20) + 12345)
        path = os.path.join(self.mktemp() + "-in")
        with open(path, "wb") as f:
            f.write(data)
        p = self.msgr2tx("-p", POOL, "put", name, path)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.mon.rados_get(POOL, name), data)
        # an empty file makes an empty object, replacing the old data
        with open(path, "wb"):
            pass
        p = self.msgr2tx("-p", POOL, "put", name, path)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.mon.rados_get(POOL, name), b"")

    def test_file_errors_in_words(self):
        name = self.name("files")
        p = self.msgr2tx("-p", POOL, "put", name, "/nonexistent/file")
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stderr, b"msgr2tx: error: cannot read /nonexistent/file: no such file or directory\n")
        self.mon.rados_put(POOL, name, b"abc")
        directory = os.path.dirname(os.path.abspath(self.mktemp()))
        os.makedirs(directory, exist_ok=True)
        p = self.msgr2tx("-p", POOL, "get", name, directory)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stderr, ("msgr2tx: error: cannot write %s: is a directory\n" % directory).encode())

    def test_common_options_after_the_operation(self):
        p = self.msgr2tx("-p", POOL, "ls", "--timeout", "30", "--mode", "secure")
        self.assertEqual(p.returncode, 0, p.stderr)
        p = self.msgr2tx("-p", POOL, "ls", "--timeout", "0")
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn(b"--timeout must be a positive number of seconds", p.stderr)


class CliErrorTests(_RadosCase):
    """msgr2tx rados fails in command's words and JSON kinds (a cephx 16.2 monitor)."""

    auth = "cephx"

    def msgr2tx(self, *args):
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = {k: v for k, v in os.environ.items() if k not in ("CEPH_ARGS", "CEPH_CONF", "CEPH_KEYRING")}
        env["PYTHONPATH"] = root
        argv = [sys.executable, "-m", "msgr2tx", "rados", *args]
        return subprocess.run(argv, capture_output=True, timeout=60, env=env, text=True, cwd=self.mktemp_dir())

    def mktemp_dir(self):
        path = self.mktemp()
        os.makedirs(path)
        return path

    def test_wrong_key(self):
        from msgr2tx.auth.keyring import CryptoKey, Keyring
        from msgr2tx.core.encoding import EntityName
        path = os.path.abspath(os.path.join(self.mktemp_dir(), "other.keyring"))
        ring = Keyring()
        ring.add(EntityName.parse("client.admin"), CryptoKey.generate(), {})
        ring.save(path)
        p = self.msgr2tx("-m", self.mon.addr, "-k", path, "-p", POOL, "ls", "--json")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("refused our key for client.admin: check the keyring", p.stderr)
        self.assertNotIn("aes256k", p.stderr)
        error = json.loads(p.stdout)
        self.assertEqual((error["error"], error["stage"]), ("key-refused", "auth"))
        self.assertIn(self.mon.addr, error["address"])

    def test_no_keyring_against_cephx(self):
        p = self.msgr2tx("-m", self.mon.addr, "--auth", "none", "-p", POOL, "ls", "--json")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("does not accept auth none; it allows cephx: use --auth cephx with -k KEYRING", p.stderr)
        self.assertEqual(json.loads(p.stdout)["error"], "auth-method")

    def test_unreachable_monitor_at_once(self):
        port = cephlab.free_port()
        started = time.monotonic()
        p = self.msgr2tx("-m", "v2:127.0.0.1:%d" % port, "-k", self.mon.keyring, "-p", POOL, "ls", "--json")
        self.assertLess(time.monotonic() - started, 8.0)   # not the 10 s connect timeout
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("could not connect to v2:127.0.0.1:%d/0: connection refused" % port, p.stderr)
        error = json.loads(p.stdout)
        self.assertEqual((error["error"], error["stage"]), ("connect", "connect"))


class ErrorWordsTests(TestCase):

    def test_errno_in_words_then_its_name(self):
        from msgr2tx.rados import _error
        self.assertEqual(str(_error(-errno.EMSGSIZE, "p", "o", "write_full")),
                         "write_full: object 'o' in pool 'p' message too long (EMSGSIZE)")
        self.assertEqual(str(_error(-errno.ENOENT, "p", "o", "read")),
                         "read: object 'o' in pool 'p' not found (ENOENT)")
