"""
msgr2tx's fast reconnect bit against real Ceph, in both roles, on 16.2
(the host's Pacific) and, as ``...ReefTests`` and ``...TentacleTests``,
18.2 and 20.2 in their chroots (tests/cephlab.py).

The bit (``Msgr2Feature.MSGR2TX_FAST_RECONNECT``, bit 48) is only ever in
the banner's *supported* mask.  Ceph's
``ProtocolV2::_handle_peer_banner_payload`` checks its own required mask
against the peer's supported one and the peer's required mask against
what it knows; an unknown supported bit is logged and ignored.  These tests
show it on the wire:

- our client (bit on, the default) reaches READY with ceph-mon and with a
  memstore ceph-osd, whose debug_ms 1 log shows the banner it read;
- the ``ceph`` CLI (librados' MonClient, the release's own) reaches READY
  with our ``twistd msgr2`` server, and its log shows our banner with the bit.
"""

import os
import re
import subprocess
import time

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from msgr2tx.auth.none import NoneClientHandler
from msgr2tx.client import connect
from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.constants import ConnectionMode, Msgr2Feature
from msgr2tx.core.encoding import EntityName
from tests import cephlab
from tests.test_interop_pacific import READY_RE, TwistdServer

ADMIN = EntityName.parse("client.admin")
FAST = int(Msgr2Feature.MSGR2TX_FAST_RECONNECT)
#: what Ceph logs at debug_ms 1 for every banner it reads
BANNER_RE = re.compile(r"_handle_peer_banner_payload supported=([0-9a-f]+) required=([0-9a-f]+)")


def banners_seen(text):
    """[(supported, required)] of every peer banner a Ceph log shows."""
    return [(int(s, 16), int(r, 16)) for s, r in BANNER_RE.findall(text)]


def read_log(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def wait_for_banner(path, start, predicate, timeout=5.0):
    """The banners a daemon's log shows after offset C{start}, once one matches (or at timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        seen = banners_seen(read_log(path)[start:])
        if any(predicate(s, r) for s, r in seen) or time.monotonic() > deadline:
            return seen
        time.sleep(0.05)


class OurClientWithTheBitToCephTests(TestCase):
    """Our client advertising the bit -> ceph-mon and ceph-osd: READY, the bit read and ignored."""

    release = cephlab.DEFAULT_RELEASE
    timeout = 90

    def setUp(self):
        self.mon = cephlab.shared_monitor(auth="none", osds=1, release=self.release)
        self.osd = self.mon.osds[0]
        # the daemons log the banners they read at debug_ms 1
        for who in ("mon.a", "osd.%d" % self.osd.osd_id):
            r = self.mon.ceph("tell", who, "injectargs", "--debug_ms=1")
            self.assertEqual(r.returncode, 0, r.stderr)

    @defer.inlineCallbacks
    def _ready(self, addr, log_file, peer_name):
        start = len(read_log(log_file))
        config = ConnectionConfig(modes=(ConnectionMode.CRC,))
        self.assertTrue(config.msgr2_supported & FAST)
        p = yield connect(reactor, addr, [NoneClientHandler(ADMIN)], config, timeout=10)
        self.addCleanup(p.transport.loseConnection)
        self.assertEqual(str(p.info.peer_name), peer_name)
        # Ceph does not offer the bit back: no fast reconnect is ever tried with it
        self.assertEqual(p.conn.peer_supported & FAST, 0)
        self.assertEqual(p.conn.peer_required, 0)
        rtt = yield p.keepalive()
        self.assertGreaterEqual(rtt, 0)
        seen = wait_for_banner(log_file, start, lambda s, r: s == config.msgr2_supported)
        self.assertIn((config.msgr2_supported, 0), seen, "the daemon's log shows no banner with bit 48")

    def test_monitor(self):
        return self._ready(self.mon.addr, self.mon.log_file, "mon.0")

    def test_osd(self):
        return self._ready(self.osd.addr, self.osd.log_file, "osd.%d" % self.osd.osd_id)


cephlab.release_variants(globals(), OurClientWithTheBitToCephTests)


class CephCliToOurServerWithTheBitTests(TestCase):
    """The release's ``ceph`` CLI -> our ``twistd msgr2`` advertising the bit: READY."""

    release = cephlab.DEFAULT_RELEASE
    timeout = 60

    def setUp(self):
        cephlab.ensure_release(self.release)

    def test_ceph_cli(self):
        server = TwistdServer("--service", "inspect").start()
        self.addCleanup(server.stop)
        proc = subprocess.run(
            cephlab.ceph_argv(self.release) + [
                "-c", "/dev/null", "-m", server.addr, "--auth_client_required", "none", "--debug_ms", "1",
                "--client_mount_timeout", "2", "--connect-timeout", "3", "status"],
            capture_output=True, timeout=40, env=dict(os.environ, CEPH_ARGS=""))
        stderr = proc.stderr.decode("utf-8", "replace")
        ours = ConnectionConfig().msgr2_supported
        self.assertTrue(ours & FAST)
        self.assertIn((ours, 0), banners_seen(stderr), "the ceph client's log shows no banner with bit 48:\n"
                      + stderr[-3000:])
        ready = READY_RE.findall(stderr)
        self.assertTrue(ready, "no READY line in the ceph client's log:\n" + stderr[-3000:])
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "MMonSubscribe(" not in server.log():
            time.sleep(0.05)
        log = server.log()
        self.assertIn("inspect: READY", log)
        self.assertRegex(log, r"inspect: message from client\.\d+: MMonSubscribe\(")
        self.assertNotIn("Traceback", log)


cephlab.release_variants(globals(), CephCliToOurServerWithTheBitTests)


class StockCephRefusesTheResumeTests(TestCase):
    """
    A client that believes it holds a resumable msgr2tx session with the
    peer at an address where a stock ceph-mon now listens (a stale banner
    cache offering the bit, cookies and a key): its first flight carries the
    fast reconnect; Ceph answers AUTH_BAD_METHOD, and the client
    authenticates with cephx on the same TCP connection, then finds its
    session gone (SESSION_RESET) and starts a new one.  The request carries
    a 60 KiB queued message as early data, which Ceph reads with the
    AUTH_REQUEST and ignores.
    """

    release = cephlab.DEFAULT_RELEASE
    timeout = 60

    @defer.inlineCallbacks
    def test_fallback_to_cephx_on_the_same_connection(self):
        import secrets

        from twisted.internet.endpoints import TCP4ClientEndpoint

        from msgr2tx.auth.cephx import CephxAuthProvider
        from msgr2tx.core import events as E
        from msgr2tx.core.constants import AuthMethod
        from msgr2tx.core.encoding import EntityType, entity_addr_t
        from msgr2tx.core.session import Session
        from msgr2tx.errors import ResumeNotNegotiated
        from msgr2tx.factory import Msgr2ClientFactory
        from msgr2tx.clients.monclient import MonClient

        mon = cephlab.shared_monitor(auth="cephx", release=self.release)
        session = Session(client_cookie=secrets.randbits(63) | 1)
        session.server_cookie = secrets.randbits(63) | 1
        session.lossy = False
        session.resume_key = secrets.token_bytes(16)
        # a message queued for the session rides in the request: 60 KiB of early data for Ceph to read past
        from msgr2tx.core.messages import GenericMessage
        session.pending.append(GenericMessage(0x7A5A, front=b"x" * (60 << 10)))
        ours = ConnectionConfig().msgr2_supported
        config = ConnectionConfig(lossy=False, modes=(ConnectionMode.SECURE,), peer_type=EntityType.MON,
                                  peer_banner=(ours, 0))
        target = entity_addr_t.parse(mon.addr)
        factory = Msgr2ClientFactory([CephxAuthProvider().clientHandler("keyring=%s" % mon.keyring)], config,
                                     target_addr=target, receiver=MonClient(), reactor=reactor,
                                     handshake_timeout=10, session=session)
        events = []
        connections = []

        def watch(protocol):
            connections.append(protocol)
            dispatch = protocol._dispatch

            def record(event):
                events.append(event)
                return dispatch(event)
            protocol._dispatch = record
        factory.onProtocol = watch
        p = yield TCP4ClientEndpoint(reactor, "127.0.0.1", target.port).connect(factory)
        self.addCleanup(p.transport.loseConnection)
        info = yield p.whenReady()
        self.assertEqual(len(connections), 1)
        self.assertTrue(p.conn.speculated)
        self.assertEqual(p.conn.early_messages, 1)
        # the resume went out first and Ceph refused it as an unknown method
        self.assertIsInstance(p.conn.resume_refusal, ResumeNotNegotiated)
        refused = [e for e in events if isinstance(e, E.FastReconnectRefused)]
        self.assertEqual(len(refused), 1)
        self.assertIn("result -95", str(refused[0].error))
        self.assertFalse(p.conn.fast_reconnected)
        self.assertEqual(p.conn.auth_method, AuthMethod.CEPHX)
        self.assertEqual(info.mode_name, "secure")
        self.assertEqual(str(info.peer_name), "mon.0")
        # the session Ceph never had: reset, then a new one (lossy, as a monitor grants)
        self.assertEqual(len([e for e in events if isinstance(e, E.SessionResetReceived)]), 1)
        self.assertTrue(info.lossy)


cephlab.release_variants(globals(), StockCephRefusesTheResumeTests)
