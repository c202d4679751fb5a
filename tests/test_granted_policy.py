"""
No silent downgrade: the client hears which session policy the server
granted (the core's PolicyGranted event, PeerInfo, a warning in the log),
in memory and on real sockets.
"""

import json

from twisted.internet import defer, reactor
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from msgr2tx.auth.none import NoneClientHandler, NoneServerHandler
from msgr2tx.client import connect
from msgr2tx.core import events as E
from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.encoding import EntityName, EntityType
from msgr2tx.core.session import Session, SessionTable
from msgr2tx.factory import Msgr2ServerFactory
from msgr2tx.services import EchoReceiver
from msgr2tx.testing import CorePair

ADMIN = EntityName.parse("client.admin")


def pair(client_lossy, server_lossy, **kw):
    return CorePair([NoneClientHandler(ADMIN)], [NoneServerHandler()],
                    client_config=ConnectionConfig(lossy=client_lossy),
                    server_config=ConnectionConfig(entity_type=EntityType.OSD, entity_num=0, lossy=server_lossy),
                    **kw)


class PolicyGrantedEventTests(SynchronousTestCase):

    def _granted(self, p):
        kinds = [type(e) for e in p.client_events]
        self.assertIn(E.PolicyGranted, kinds)
        # heard before READY, so the I/O layer knows it when READY comes
        self.assertLess(kinds.index(E.PolicyGranted), kinds.index(E.Ready))
        (granted,) = p.events_of("client", E.PolicyGranted)
        return granted

    def test_lossless_asked_lossy_granted(self):
        p = pair(client_lossy=False, server_lossy=True)
        p.handshake()
        granted = self._granted(p)
        self.assertEqual((granted.lossy, granted.requested_lossy), (True, False))
        self.assertTrue(granted.downgraded)
        self.assertTrue(granted.differs)
        (ready,) = p.events_of("client", E.Ready)
        self.assertTrue(ready.lossy)

    def test_lossless_asked_and_granted(self):
        p = pair(client_lossy=False, server_lossy=False)
        p.handshake()
        granted = self._granted(p)
        self.assertEqual((granted.lossy, granted.requested_lossy), (False, False))
        self.assertFalse(granted.downgraded)
        self.assertFalse(granted.differs)

    def test_lossy_asked_and_granted(self):
        p = pair(client_lossy=True, server_lossy=True)
        p.handshake()
        granted = self._granted(p)
        self.assertEqual((granted.lossy, granted.requested_lossy), (True, True))
        self.assertFalse(granted.differs)

    def test_reconnect_reports_the_resumed_lossless_session(self):
        session, sessions = Session(), SessionTable()
        first = pair(False, False, client_session=session, sessions=sessions)
        first.handshake()
        first.break_link()
        second = pair(False, False, client_session=session, sessions=sessions)
        second.handshake()
        (ready,) = second.events_of("client", E.Ready)
        self.assertTrue(ready.reconnected)
        granted = self._granted(second)
        self.assertEqual((granted.lossy, granted.requested_lossy), (False, False))

    def test_the_server_hears_no_grant(self):
        p = pair(client_lossy=False, server_lossy=True)
        p.handshake()
        self.assertEqual(p.events_of("server", E.PolicyGranted), [])


class GrantedPolicyOnSocketsTests(TestCase):

    timeout = 30

    def start_server(self, lossy):
        factory = Msgr2ServerFactory([NoneServerHandler()], EchoReceiver(),
                                     ConnectionConfig(entity_type=EntityType.OSD, entity_num=0, lossy=lossy))
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return "v2:127.0.0.1:%d" % port.getHost().port

    def capture_log(self):
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        return events

    @defer.inlineCallbacks
    def _connect(self, client_lossy, server_lossy):
        address = self.start_server(server_lossy)
        log = self.capture_log()
        protocol = yield connect(reactor, address, [NoneClientHandler(ADMIN)],
                                 ConnectionConfig(lossy=client_lossy), timeout=5)
        self.addCleanup(protocol.close)
        warnings = [formatEvent(e) for e in log
                    if e.get("log_level") == LogLevel.warn and "granted" in e.get("log_format", "")]
        return protocol.info, warnings

    @defer.inlineCallbacks
    def test_downgrade_is_reported_and_logged(self):
        info, warnings = yield self._connect(client_lossy=False, server_lossy=True)
        self.assertTrue(info.lossy)
        self.assertIs(info.requested_lossy, False)
        self.assertEqual(info.policy, "lossy")
        self.assertTrue(info.downgraded)
        self.assertEqual(len(warnings), 1, warnings)
        self.assertIn("for a lossless session and was granted a lossy one", warnings[0])

    @defer.inlineCallbacks
    def test_granted_as_asked_logs_no_warning(self):
        info, warnings = yield self._connect(client_lossy=False, server_lossy=False)
        self.assertEqual((info.lossy, info.requested_lossy, info.policy, info.downgraded),
                         (False, False, "lossless", False))
        self.assertEqual(warnings, [])
        info, warnings = yield self._connect(client_lossy=True, server_lossy=True)
        self.assertEqual((info.lossy, info.requested_lossy, info.policy, info.downgraded),
                         (True, True, "lossy", False))
        self.assertEqual(warnings, [])


class RealCephGrantTests(TestCase):
    """What real Ceph 16.2 daemons grant, as PeerInfo reports it."""

    timeout = 120

    def setUp(self):
        from tests import cephlab
        self.mon = cephlab.shared_monitor("none", osds=1)

    @defer.inlineCallbacks
    def test_a_monitor_grants_a_lossless_client_a_lossy_session(self):
        # a Ceph monitor's policy for clients is a stateless server
        protocol = yield connect(reactor, self.mon.addr, [NoneClientHandler(ADMIN)],
                                 ConnectionConfig(lossy=False), timeout=10)
        self.addCleanup(protocol.close)
        self.assertTrue(protocol.info.downgraded)
        self.assertEqual(protocol.info.policy, "lossy")

    @defer.inlineCallbacks
    def test_lossy_echo_test_against_a_monitor_says_it_does_not_echo(self):
        # a monitor closes a session that sends it unknown message types: the
        # CLI says so after a few sessions instead of waiting out --timeout
        from tests.test_cli_partial import msgr2tx
        out, err, code = yield msgr2tx("echo-test", "--target", self.mon.addr, "--policy", "lossy",
                                       "--count", "200", "--timeout", "60")
        self.assertEqual(code, 1, err)
        self.assertIn("echoed nothing back: it is not an echo service", err)
        self.assertIn("(mon.", err)
        self.assertIn("twistd msgr2 --service echo", err)
        summary = json.loads(out)
        self.assertEqual(summary["received"], 0)
        self.assertIs(summary["complete"], False)

    @defer.inlineCallbacks
    def test_an_osd_grants_an_osd_a_lossless_session_on_its_cluster_address(self):
        # Ceph's OSD: lossless_peer for OSDs on the cluster messenger
        osd = self.mon.osd_dump()["osds"][0]
        cluster = next(a for a in osd["cluster_addrs"]["addrvec"] if a["type"] == "v2")
        name = EntityName.parse("osd.7")
        protocol = yield connect(reactor, "v2:%s/%d" % (cluster["addr"], cluster["nonce"]),
                                 [NoneClientHandler(name)],
                                 ConnectionConfig(entity_type=EntityType.OSD, name=name, entity_num=7, lossy=False),
                                 timeout=10)
        self.addCleanup(protocol.close)
        self.assertFalse(protocol.info.downgraded)
        self.assertEqual(protocol.info.policy, "lossless")
        self.assertIs(protocol.info.requested_lossy, False)
