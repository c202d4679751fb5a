"""
The interop matrix, cell by cell, on each release: 16.2 (Pacific, the
host's Ceph) in the classes named here, 18.2 and 20.2 in their
``...ReefTests`` and ``...TentacleTests`` variants (tests/cephlab.py runs
them in debootstrap chroots; Tentacle with aes keys).

1. our client -> ceph-mon, ``version`` and ``mon dump`` equal to the
   ceph CLI's output: {cephx crc, cephx secure, none crc} x {rev0, rev1}.
   The cephx cells are in L{tests.test_interop_cephx.OurCephxClientToCephMonTests};
   the auth none cells are here (MonNoneMatrixTests).
2. our authorizer -> ceph-osd, ticket renewal and the ceph CLI -> our server:
   L{tests.test_interop_cephx}; our client -> ceph-osd with auth none, crc
   rev0/rev1, here (OsdNoneMatrixTests).
3. librados (python3-rados, a real C++ MonClient) -> our ``twistd msgr2
   --auth cephx --keyring K --mode secure,crc``: {crc, secure} x {rev0, rev1}
   (LibradosToOurServerTests).
4. our client <-> our server in-process, the echo service sending every
   message back: {none crc, cephx crc, cephx secure} x {rev0, rev1}, payloads
   of 0, 1, 47, 48, 49, 4096 bytes and 1 MiB (OurClientToOurServerMatrixTests).
"""

import json
import os
import re
import subprocess

from twisted.internet import defer, reactor
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import TestCase

from msgr2tx.auth.cephx import CephxClientHandler, CephxKeyServer, CephxServerHandler
from msgr2tx.auth.cephx_proto import CryptoKey
from msgr2tx.auth.keyring import Keyring
from msgr2tx.auth.none import NoneClientHandler, NoneServerHandler
from msgr2tx.client import connect
from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.constants import ConnectionMode
from msgr2tx.core.encoding import EntityName, EntityType
from msgr2tx.core.messages import GenericMessage
from msgr2tx.messages import MPing
from msgr2tx.factory import Msgr2ServerFactory
from msgr2tx.clients.monclient import MonClient
from msgr2tx.services import EchoReceiver
from tests import cephlab
from tests.test_interop_cephx import (
    ceph_ready, cephx_server, our_ready_entities, server_keyring, wait_for_log,
)

ADMIN = EntityName.parse("client.admin")
SIZES = (0, 1, 47, 48, 49, 4096, 1 << 20)
#: a message type no one decodes, so it travels as a GenericMessage
TEST_MSG_TYPE = 0x7A5A


class MonNoneMatrixTests(TestCase):
    """Cells none crc rev0/rev1: our client -> ceph-mon with auth none."""

    release = cephlab.DEFAULT_RELEASE
    timeout = 60

    def setUp(self):
        self.mon = cephlab.shared_monitor(auth="none", release=self.release)

    @defer.inlineCallbacks
    def _session(self, rev1):
        monclient = MonClient()
        p = yield connect(reactor, self.mon.addr, [NoneClientHandler(ADMIN)],
                          ConnectionConfig(modes=(ConnectionMode.CRC,), revision1=rev1),
                          receiver=monclient, timeout=10)
        self.addCleanup(p.transport.loseConnection)
        self.assertEqual(p.info.rev1, rev1)
        self.assertEqual(p.info.mode_name, "crc")
        self.assertEqual(str(p.info.peer_name), "mon.0")
        return monclient

    @defer.inlineCallbacks
    def _version(self, rev1):
        monclient = yield self._session(rev1)
        result, status, output = yield monclient.command({"prefix": "version"})
        self.assertEqual(result, 0)
        cli = self.mon.ceph("version")
        self.assertEqual(cli.returncode, 0, cli.stderr)
        self.assertEqual(output, cli.stdout)

    @defer.inlineCallbacks
    def _mon_dump(self, rev1):
        monclient = yield self._session(rev1)
        result, status, output = yield monclient.command({"prefix": "mon dump", "format": "json"})
        self.assertEqual(result, 0)
        cli = self.mon.ceph("mon", "dump", "--format", "json")
        self.assertEqual(cli.returncode, 0, cli.stderr)
        self.assertEqual(json.loads(output), json.loads(cli.stdout))
        self.assertEqual(json.loads(output)["fsid"], self.mon.fsid)

    def test_version_none_crc_rev0(self):
        return self._version(False)

    def test_version_none_crc_rev1(self):
        return self._version(True)

    def test_mon_dump_none_crc_rev0(self):
        return self._mon_dump(False)

    def test_mon_dump_none_crc_rev1(self):
        return self._mon_dump(True)


cephlab.release_variants(globals(), MonNoneMatrixTests)


class OsdNoneMatrixTests(TestCase):
    """Cells none crc rev0/rev1: our client -> ceph-osd with auth none (no authorizer to show)."""

    release = cephlab.DEFAULT_RELEASE
    timeout = 90

    def setUp(self):
        self.mon = cephlab.shared_monitor(auth="none", osds=1, release=self.release)
        self.osd = self.mon.osds[0]

    @defer.inlineCallbacks
    def _osd(self, rev1):
        p = yield connect(reactor, self.osd.addr, [NoneClientHandler(ADMIN)],
                          ConnectionConfig(modes=(ConnectionMode.CRC,), revision1=rev1), timeout=10)
        self.addCleanup(p.transport.loseConnection)
        self.assertEqual(str(p.info.peer_name), "osd.0")
        self.assertEqual((p.info.mode_name, p.info.rev1), ("crc", rev1))
        self.assertEqual(p.conn.auth_method, 1)
        rtt = yield p.keepalive()
        self.assertGreaterEqual(rtt, 0)

    def test_osd_none_crc_rev0(self):
        return self._osd(False)

    def test_osd_none_crc_rev1(self):
        return self._osd(True)


cephlab.release_variants(globals(), OsdNoneMatrixTests)


# ---------------------------------------------------------------------------

#: Runs librados' connect() in a thread and leaves after a deadline: against a
#: server that is no real monitor, connect() would retry for half a minute.
LIBRADOS_SCRIPT = r"""
import os, sys, threading, time
import rados

mon, keyring, mode, deadline = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
cluster = rados.Rados(conffile="/dev/null", name="client.admin", conf={
    "mon_host": mon, "keyring": keyring, "auth_client_required": "cephx",
    "ms_mon_client_mode": mode, "client_mount_timeout": "3", "debug_ms": "1",
    "log_to_stderr": "true", "err_to_stderr": "true", "log_file": ""})
outcome = []

def run():
    try:
        cluster.connect()
        outcome.append("connected")
    except Exception as e:
        outcome.append("%s: %s" % (type(e).__name__, e))

t = threading.Thread(target=run, daemon=True)
t.start()
t.join(deadline)
time.sleep(0.3)  # let the log thread write out
sys.stdout.write((outcome[0] if outcome else "still connecting") + "\n")
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)
"""


class LibradosToOurServerTests(TestCase):
    """
    python3-rados (librados' C++ MonClient) with cephx against our twistd
    server (--mode secure,crc), in crc and secure, rev0 (our --rev 0) and rev1.
    librados cannot finish connecting (we are no monitor) and times out, as
    expected; it must reach READY in the mode asked for, and we must have
    decoded its messages.  The four cells run in parallel, once per process.
    """

    release = cephlab.DEFAULT_RELEASE
    timeout = 90
    _runs = None

    def setUp(self):
        cephlab.ensure_release(self.release)
        self.python = cephlab.librados_argv(self.release)

    @classmethod
    def _cells(cls, python):
        if cls.__dict__.get("_runs") is None:
            servers = {rev: cephx_server(rev) for rev in (0, 1)}
            starts = {rev: len(s.log()) for rev, s in servers.items()}
            env = {k: v for k, v in os.environ.items() if k not in ("CEPH_ARGS", "CEPH_CONF", "CEPH_KEYRING")}
            keyring = cephlab.release_copy(cls.release, server_keyring())
            procs = {(mode, rev): subprocess.Popen(
                python + ["-c", LIBRADOS_SCRIPT, servers[rev].addr, keyring, mode, "3.5"],
                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                for mode in ("crc", "secure") for rev in (0, 1)}
            runs = {}
            for cell, proc in procs.items():
                out, err = proc.communicate(timeout=60)
                runs[cell] = (proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))
            cls._runs = (runs, servers, starts)
        return cls._runs

    def _check(self, mode, rev):
        runs, servers, starts = self._cells(self.python)
        returncode, stdout, stderr = runs[mode, rev]
        self.assertEqual(returncode, 0, stderr[-3000:])
        self.assertNotEqual(stdout.strip(), "connected")
        ready = ceph_ready(stderr)
        self.assertTrue(ready, "librados logged no READY:\n" + stderr[-3000:])
        self.assertEqual(set(ready), {(mode, rev)})
        # librados asked for the monmap and subscribed; we decoded both
        # (correlated by the global_id we gave that client)
        def done(text):
            return any(re.search(r"message from %s: MMonSubscribe\(" % re.escape(e), text)
                       for e in our_ready_entities(text, mode, rev))
        log = wait_for_log(servers[rev], starts[rev], done)
        entities = our_ready_entities(log, mode, rev)
        self.assertTrue(entities, "no READY mode=%s rev%d in our log:\n%s" % (mode, rev, log[-3000:]))
        ok = [e for e in entities
              if re.search(r"message from %s: MMonSubscribe\(.*'monmap'" % re.escape(e), log)
              and re.search(r"message from %s: GenericMessage\(mon_get_map" % re.escape(e), log)]
        self.assertTrue(ok, log[-3000:])
        self.assertNotIn("Traceback", log)
        self.assertNotIn("Unhandled Error", log)

    def test_librados_crc_rev1(self):
        self._check("crc", 1)

    def test_librados_crc_rev0(self):
        self._check("crc", 0)

    def test_librados_secure_rev1(self):
        self._check("secure", 1)

    def test_librados_secure_rev0(self):
        self._check("secure", 0)


cephlab.release_variants(globals(), LibradosToOurServerTests)


# ---------------------------------------------------------------------------


class Collector:
    """A client receiver that keeps what the echo service sends back."""

    def __init__(self):
        self.messages = []
        self._waiters = []

    def connectionReady(self, p, info):
        pass

    def messageReceived(self, p, message):
        self.messages.append(message)
        self._check()

    def connectionLost(self, p, reason):
        waiters, self._waiters = self._waiters, []
        for n, d in waiters:
            d.errback(reason)

    def _check(self):
        for item in list(self._waiters):
            n, d = item
            if len(self.messages) >= n:
                self._waiters.remove(item)
                d.callback(self.messages[:n])

    def wait_for(self, n, timeout=20):
        d = defer.Deferred()
        self._waiters.append((n, d))
        self._check()
        return d.addTimeout(timeout, reactor)


class OurClientToOurServerMatrixTests(TestCase):
    """
    Our client <-> our server on loopback (reactor.listenTCP and the echo
    service), every cell of {none crc, cephx crc, cephx secure} x {rev0, rev1}:
    messages of every size in SIZES go out in front and data segments and
    come back intact, in order.
    """

    timeout = 60

    def setUp(self):
        self.key = CryptoKey.generate()
        ring = Keyring()
        ring.add(ADMIN, self.key, {"mon": "allow *"})
        self.key_server = CephxKeyServer(ring)
        self.errors = []
        globalLogPublisher.addObserver(self._observe)
        self.addCleanup(globalLogPublisher.removeObserver, self._observe)

    def _observe(self, event):
        if event.get("log_failure") is not None or event.get("isError") or \
                event.get("log_level") is not None and event["log_level"].name in ("warn", "error", "critical"):
            self.errors.append(event)

    def _listen(self, rev1):
        self.echo = EchoReceiver()
        config = ConnectionConfig(entity_type=EntityType.MON, entity_num=0, lossy=True, revision1=rev1,
                                  modes=(ConnectionMode.SECURE, ConnectionMode.CRC))
        # both methods, as twistd msgr2 --auth cephx,none would offer them
        factory = Msgr2ServerFactory([CephxServerHandler(self.key_server), NoneServerHandler()],
                                     self.echo, config, reactor=reactor)
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return "v2:127.0.0.1:%d" % port.getHost().port

    @defer.inlineCallbacks
    def _cell(self, auth, mode, rev):
        address = self._listen(rev == 1)
        handler = CephxClientHandler(ADMIN, self.key) if auth == "cephx" else NoneClientHandler(ADMIN)
        config = ConnectionConfig(modes=(ConnectionMode.parse(mode),), revision1=rev == 1)
        collector = Collector()
        p = yield connect(reactor, address, [handler], config, receiver=collector, timeout=10)
        closed = defer.Deferred()
        original = p.connectionLost

        def lost(reason):
            original(reason)
            closed.callback(None)
        p.connectionLost = lost
        self.addCleanup(lambda: closed)
        self.addCleanup(p.transport.loseConnection)
        self.assertEqual(p.info.mode_name, mode)
        self.assertEqual(p.info.revision, rev)
        self.assertEqual(str(p.info.peer_name), "mon.0")
        if auth == "cephx":
            self.assertEqual(p.conn.auth_method, 2)
            self.assertTrue(handler.tickets.have(EntityType.AUTH))
            self.assertEqual(p.info.global_id, handler.global_id)
        else:
            self.assertEqual(p.conn.auth_method, 1)
        self.assertEqual(p.conn.writer.cipher is not None, mode == "secure")

        sent = []
        for i, size in enumerate(SIZES):
            front = os.urandom(size)
            data = os.urandom(size)
            message = GenericMessage(TEST_MSG_TYPE, front=front, middle=b"" if size > 4096 else front[::-1],
                                     data=data, tid=i + 1)
            sent.append((front, message.middle, data, i + 1))
            p.sendMessage(message)
        p.sendMessage(MPing())
        back = yield collector.wait_for(len(SIZES) + 1)
        for (front, middle, data, tid), got in zip(sent, back):
            self.assertIsInstance(got, GenericMessage)
            self.assertEqual(got.TYPE, TEST_MSG_TYPE)
            self.assertEqual(got.tid, tid)
            self.assertEqual(len(got.front), len(front))
            self.assertTrue(got.front == front, "front of %d bytes changed" % len(front))
            self.assertTrue(got.middle == middle, "middle of %d bytes changed" % len(middle))
            self.assertTrue(got.data == data, "data of %d bytes changed" % len(data))
        self.assertIsInstance(back[-1], MPing)
        # sequence numbers on our side follow the order the server sent them
        self.assertEqual([m.seq for m in back], list(range(1, len(SIZES) + 2)))
        self.assertEqual(self.echo.received, len(SIZES) + 1)
        rtt = yield p.keepalive()
        self.assertGreaterEqual(rtt, 0)
        self.assertEqual(self.errors, [])

    def test_none_crc_rev0(self):
        return self._cell("none", "crc", 0)

    def test_none_crc_rev1(self):
        return self._cell("none", "crc", 1)

    def test_cephx_crc_rev0(self):
        return self._cell("cephx", "crc", 0)

    def test_cephx_crc_rev1(self):
        return self._cell("cephx", "crc", 1)

    def test_cephx_secure_rev0(self):
        return self._cell("cephx", "secure", 0)

    def test_cephx_secure_rev1(self):
        return self._cell("cephx", "secure", 1)

    @defer.inlineCallbacks
    def test_cephx_secure_authorizer(self):
        """
        A ticket for an OSD from our monitor role, presented as an authorizer
        to our OSD role sharing the key server, secure rev1 and rev0.
        """
        mon_address = self._listen(True)
        handler = CephxClientHandler(ADMIN, self.key)
        p = yield connect(reactor, mon_address, [handler], ConnectionConfig(modes=(ConnectionMode.SECURE,)),
                          timeout=10)
        p.transport.loseConnection()
        self.assertTrue(handler.tickets.have(EntityType.OSD))
        for rev1 in (True, False):
            echo = EchoReceiver()
            config = ConnectionConfig(entity_type=EntityType.OSD, entity_num=3, lossy=True, revision1=rev1,
                                      modes=(ConnectionMode.SECURE,))
            factory = Msgr2ServerFactory([CephxServerHandler(self.key_server, authority=False)], echo, config)
            port = reactor.listenTCP(0, factory, interface="127.0.0.1")
            self.addCleanup(port.stopListening)
            collector = Collector()
            p2 = yield connect(reactor, "v2:127.0.0.1:%d" % port.getHost().port, [handler.spawn()],
                               ConnectionConfig(modes=(ConnectionMode.SECURE,), revision1=rev1),
                               receiver=collector, timeout=10)
            self.addCleanup(p2.transport.loseConnection)
            self.assertEqual(str(p2.info.peer_name), "osd.3")
            self.assertEqual(p2.info.mode_name, "secure")
            self.assertEqual(p2.conn._session_key, handler.tickets.get(EntityType.OSD).session_key.secret_bytes)
            payload = os.urandom(49)
            p2.sendMessage(GenericMessage(TEST_MSG_TYPE, front=payload, data=payload * 3))
            (got,) = yield collector.wait_for(1)
            self.assertEqual((got.front, got.data), (payload, payload * 3))
