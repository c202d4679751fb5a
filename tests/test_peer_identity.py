"""
Who the peers are: HELLO used in full by the connecting side (the peer type
we meant to reach, our own address learned from the peer), policies by peer
type, one global_id per client whatever its auth method, and the stale
CLIENT_IDENT row of the decision table shown against a real Ceph 16.2 OSD
(a memstore OSD's cluster messenger is a lossless peer when we identify as
an OSD).
"""

import os
import subprocess
import sys

from twisted.internet import defer, reactor
from twisted.internet.task import deferLater
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.trial.unittest import SynchronousTestCase, TestCase

from msgr2tx.auth import GlobalIdAllocator, share_global_ids
from msgr2tx.auth import cephx_proto as P
from msgr2tx.auth.cephx import CephxClientHandler, CephxKeyServer, CephxServerHandler
from msgr2tx.auth.keyring import Keyring
from msgr2tx.auth.none import NoneClientHandler, NoneServerHandler
from msgr2tx.client import connect
from msgr2tx.core import events as E
from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.connection import Decision, State
from msgr2tx.core.constants import Tag
from msgr2tx.core.messages import GenericMessage
from msgr2tx.core.encoding import AddrType, EntityName, EntityType, entity_addr_t, entity_addrvec_t
from msgr2tx.core.policy import Policy, policy_map
from msgr2tx.core.session import GlobalSeq, Session
from msgr2tx.errors import ConnectionClosed, PeerTypeMismatch
from msgr2tx.factory import Msgr2ClientFactory, Msgr2ServerFactory
from msgr2tx.testing import CLIENT_ADDR, CorePair, Interceptor
from tests import cephlab

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ADMIN = EntityName.parse("client.admin")


class HelloTests(SynchronousTestCase):
    """The connecting side checks HELLO's entity type and learns its address from it."""

    def test_peer_type_mismatch_ends_the_connection_before_auth(self):
        pair = CorePair([NoneClientHandler(ADMIN)], [NoneServerHandler()],
                        client_config=ConnectionConfig(peer_type=EntityType.MON),
                        server_config=ConnectionConfig(entity_type=EntityType.OSD, entity_num=0))
        pair.start()
        e = self.assertRaises(PeerTypeMismatch, pair.pump)
        self.assertEqual((e.expected, e.actual), (EntityType.MON, EntityType.OSD))
        self.assertIn("mon", str(e))
        self.assertIn("osd", str(e))
        self.assertIs(pair.client.state, State.CLOSED)
        # nothing after HELLO: no AUTH_REQUEST was sent
        self.assertEqual(pair.events_of("client", E.AuthRequestNeeded), [])
        self.assertNotIn(bytes([Tag.AUTH_REQUEST]), _tags_sent(pair.wire_c2s))

    def test_matching_peer_type_goes_on(self):
        pair = CorePair([NoneClientHandler(ADMIN)], [NoneServerHandler()],
                        client_config=ConnectionConfig(peer_type=EntityType.OSD),
                        server_config=ConnectionConfig(entity_type=EntityType.OSD, entity_num=0))
        pair.handshake()
        self.assertIs(pair.client.state, State.READY)

    def test_address_learned_from_hello(self):
        pair = CorePair([NoneClientHandler(ADMIN)], [NoneServerHandler()], client_nonce=77)
        # the server sees us at another address than our socket reports (NAT)
        pair.server.peer_addr = entity_addr_t.parse("v2:192.0.2.9:51000/0")
        pair.handshake()
        learned = entity_addrvec_t((entity_addr_t(AddrType.ANY, 77, entity_addr_t.parse("192.0.2.9").host, 0),))
        self.assertEqual(pair.client.my_addrs, learned)
        # CLIENT_IDENT carried it: the server knows us by it
        self.assertEqual(pair.server.peer_addrs, learned)

    def test_address_from_socket_when_learning_is_off(self):
        pair = CorePair([NoneClientHandler(ADMIN)], [NoneServerHandler()], client_nonce=77,
                        client_config=ConnectionConfig(learn_addr_from_peer=False))
        pair.server.peer_addr = entity_addr_t.parse("v2:192.0.2.9:51000/0")
        pair.handshake()
        socket_side = entity_addrvec_t((entity_addr_t(AddrType.ANY, 77, CLIENT_ADDR.host, 0),))
        self.assertEqual(pair.server.peer_addrs, socket_side)

    def test_bound_address_is_not_relearned(self):
        mine = entity_addrvec_t((entity_addr_t.parse("v2:10.0.0.5:6800/42"),))
        pair = CorePair([NoneClientHandler(ADMIN)], [NoneServerHandler()],
                        client_config=ConnectionConfig(my_addrs=mine))
        pair.server.peer_addr = entity_addr_t.parse("v2:192.0.2.9:51000/0")
        pair.handshake()
        self.assertEqual(pair.server.peer_addrs, mine)

    def test_blank_bound_address_gets_the_learned_ip(self):
        mine = entity_addrvec_t((entity_addr_t.parse("v2:0.0.0.0:6800/42"),))
        pair = CorePair([NoneClientHandler(ADMIN)], [NoneServerHandler()],
                        client_config=ConnectionConfig(my_addrs=mine))
        pair.server.peer_addr = entity_addr_t.parse("v2:192.0.2.9:51000/0")
        pair.handshake()
        # a bound address keeps its type, port and nonce
        self.assertEqual(pair.server.peer_addrs, entity_addrvec_t((entity_addr_t.parse("v2:192.0.2.9:6800/42"),)))


class PolicyTests(SynchronousTestCase):
    """Ceph's presets and their choice by peer type."""

    def test_presets_carry_cephs_flags(self):
        table = {
            "stateful_server": (False, True, True, True),
            "stateless_server": (True, True, False, False),
            "stateless_registered_server": (True, True, False, False),
            "lossless_peer": (False, False, True, False),
            "lossless_peer_reuse": (False, False, True, True),
            "lossy_client": (True, False, False, False),
            "lossless_client": (False, False, False, True),
        }
        for name, flags in table.items():
            p = getattr(Policy, name)()
            self.assertEqual((p.lossy, p.server, p.standby, p.resetcheck), flags, name)
            self.assertEqual(p.name, name)
        self.assertFalse(Policy.stateless_server().register_lossy_clients)
        self.assertTrue(Policy.stateless_registered_server().register_lossy_clients)

    def test_policy_by_peer_type(self):
        # an OSD's cluster messenger: lossless among OSDs, stateless towards clients
        config = ConnectionConfig(policy=Policy.stateless_server(),
                                  policies=policy_map(osd=Policy.lossless_peer(), mon=Policy.lossy_client()))
        self.assertEqual(config.policy_for(EntityType.OSD, server=True), Policy.lossless_peer())
        self.assertEqual(config.policy_for(EntityType.CLIENT, server=True), Policy.stateless_server())
        self.assertEqual(ConnectionConfig(lossy=False).policy_for(EntityType.CLIENT, server=True),
                         Policy.stateful_server())
        self.assertEqual(ConnectionConfig(lossy=True).policy_for(EntityType.MON, server=False),
                         Policy.lossy_client())

    def _pair(self, peer_type, server_config):
        pair = CorePair([NoneClientHandler(EntityName(peer_type, "x"))], [NoneServerHandler()],
                        client_config=ConnectionConfig(entity_type=peer_type, lossy=True),
                        server_config=server_config)
        pair.handshake()
        return pair

    def test_server_policy_alone_decides_lossy(self):
        server_config = ConnectionConfig(entity_type=EntityType.OSD, entity_num=0, policy=Policy.stateless_server(),
                                         policies=policy_map(osd=Policy.lossless_peer()))
        # a lossy-asking OSD peer gets the lossless session the policy for OSDs says
        osd = self._pair(EntityType.OSD, server_config)
        (ready,) = osd.events_of("client", E.Ready)
        self.assertFalse(ready.lossy)
        self.assertEqual(osd.server.policy, Policy.lossless_peer())
        # a client gets the stateless default
        client = self._pair(EntityType.CLIENT, server_config)
        self.assertTrue(client.events_of("client", E.Ready)[0].lossy)

    def test_acks_only_on_lossless_sessions(self):
        server_config = ConnectionConfig(entity_type=EntityType.OSD, entity_num=0, policy=Policy.stateless_server(),
                                         policies=policy_map(osd=Policy.lossless_peer()))
        for peer_type, acks in ((EntityType.OSD, 1), (EntityType.CLIENT, 0)):
            pair = self._pair(peer_type, server_config)
            pair.client.send_message(GenericMessage(0x7000, b"x"))
            pair.pump()
            self.assertEqual(len(pair.events_of("server", E.MessageReceived)), 1)
            self.assertEqual(len(pair.events_of("client", E.AckReceived)), acks, EntityType.name(peer_type))


class GlobalIdTests(SynchronousTestCase):
    """One server, several auth methods: every client gets its own global_id."""

    def test_cephx_and_none_share_one_counter(self):
        admin_key = P.CryptoKey(b"ADMINSECRET-0123")
        ring = Keyring()
        ring.add(ADMIN, admin_key, {"mon": "allow *"})
        key_server = CephxKeyServer(ring)
        handlers = [CephxServerHandler(key_server), NoneServerHandler()]
        factory = Msgr2ServerFactory(handlers, config=ConnectionConfig(entity_type=EntityType.MON, entity_num=0))
        self.assertIs(handlers[0].global_ids, handlers[1].global_ids)
        self.assertIs(factory.global_ids, handlers[1].global_ids)
        ids = []
        for client_auth in ([CephxClientHandler(ADMIN, admin_key)], [NoneClientHandler(ADMIN)],
                            [CephxClientHandler(ADMIN, admin_key)], [NoneClientHandler(ADMIN)]):
            pair = CorePair(client_auth, handlers,
                            server_config=ConnectionConfig(entity_type=EntityType.MON, entity_num=0))
            pair.handshake()
            ids.append(pair.server.global_id)
        self.assertEqual(ids, [4100, 4101, 4102, 4103])

    def test_share_keeps_the_first_allocator(self):
        a, b = NoneServerHandler(), NoneServerHandler(first_global_id=9000)
        shared = share_global_ids([a, b])
        self.assertIs(shared, a.global_ids)
        self.assertIs(b.global_ids, shared)
        mine = GlobalIdAllocator(500)
        self.assertIs(share_global_ids([a, b], mine), mine)
        self.assertEqual(a.global_ids.allocate(), 500)


class TwistdGlobalIdTests(TestCase):
    """`twistd msgr2 --auth cephx,none` over sockets: a cephx client and an auth-none client."""

    @defer.inlineCallbacks
    def test_cephx_and_none_clients_get_their_own_global_ids(self):
        import shutil
        import tempfile

        from msgr2tx.tap import Options
        state = tempfile.mkdtemp(prefix="msgr2tx-session-")
        self.addCleanup(shutil.rmtree, state, True)
        options = Options()
        options.parseOptions(["--state-dir", os.path.join(state, "s"), "--auth", "cephx,none", "--mode", "crc",
                             "--listen", "tcp:0:interface=127.0.0.1"])
        keyring_path, _ = options["generated_keyring"]
        factory = Msgr2ServerFactory(options["auth_handlers"],
                                     config=ConnectionConfig(entity_type=EntityType.MON, entity_num=0))
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        address = "v2:127.0.0.1:%d" % port.getHost().port
        key = Keyring.load(keyring_path).get(ADMIN)
        ids = []
        for auth in ([CephxClientHandler(ADMIN, key)], [NoneClientHandler(ADMIN)],
                     [CephxClientHandler(ADMIN, key)], [NoneClientHandler(ADMIN)]):
            protocol = yield connect(reactor, address, auth, ConnectionConfig(), timeout=20)
            ids.append(protocol.info.global_id)
            protocol.abort()
        self.assertEqual(len(set(ids)), 4, ids)
        self.assertEqual(sorted(ids), [4100, 4101, 4102, 4103])


def _tags_sent(wire):
    from msgr2tx.core.framing import FrameReader, ReceiveBuffer
    rbuf = ReceiveBuffer()
    rbuf.append(bytes(wire[26:]))
    reader = FrameReader(True)
    tags = b""
    while True:
        frame = reader.next_frame(rbuf)
        if frame is None:
            return tags
        tags += bytes([frame.tag])


class _Peer:
    """Two connection attempts of one lossless OSD-like peer: same address, same client cookie."""

    def __init__(self, target):
        self.target = target
        self.nonce = 0x5EED
        self.cookie = 0xC00C1E

    def attempt(self, global_seq, config=None, interceptor=None, session=None, receiver=None):
        config = config or ConnectionConfig(entity_type=EntityType.OSD, entity_num=9, lossy=False,
                                            peer_type=EntityType.OSD, policy=Policy.lossless_peer())
        factory = Msgr2ClientFactory([NoneClientHandler(EntityName.parse("osd.9"))], config,
                                     target_addr=self.target, reactor=reactor, handshake_timeout=10,
                                     session=session or Session(self.cookie), global_seqs=GlobalSeq(global_seq - 1),
                                     receiver=receiver)
        factory.nonce = self.nonce
        factory.interceptor = interceptor
        endpoint = TCP4ClientEndpoint(reactor, str(self.target.host), self.target.port, timeout=10)
        return endpoint.connect(factory)


class StaleIdentMixin:

    timeout = 60

    @defer.inlineCallbacks
    def check_stale_ident_is_dropped(self, target):
        peer = _Peer(target)
        live = yield peer.attempt(10)
        info = yield live.whenReady()
        self.addCleanup(live.abort)
        self.assertFalse(info.lossy)
        # an older attempt of the same session (lower global_seq) arrives late
        seen = Interceptor()
        stale = yield peer.attempt(5, interceptor=seen)
        self.addCleanup(stale.abort)
        outcome = yield stale.whenReady().addCallbacks(lambda _: None, lambda f: [f])
        self.assertIsNotNone(outcome, "the stale attempt reached READY")
        # the server closed it without a word (no SERVER_IDENT, no WAIT, no reset)
        self.assertTrue(outcome[0].check(ConnectionClosed, ConnectionDone, ConnectionLost), outcome[0])
        self.assertEqual(stale.conn.decisions, [])
        self.assertEqual(stale.info, None)
        self.assertEqual(stale.conn.state, State.CLOSED)
        self.assertFalse(stale.conn.waited)
        # the live connection was kept: it still answers
        self.assertFalse(live._closed)
        rtt = yield live.keepalive()
        self.assertGreater(rtt, 0)
        # it was the CLIENT_IDENT that was refused, after auth
        self.assertEqual(seen.counts.get(("client", "write", Tag.CLIENT_IDENT)), 1)
        self.assertIsNone(seen.counts.get(("client", "read", Tag.SERVER_IDENT)))
        # a newer attempt of the same session (higher global_seq) does take it over
        newer = yield peer.attempt(20)
        self.addCleanup(newer.abort)
        info = yield newer.whenReady()
        self.assertFalse(info.lossy)
        for _ in range(100):
            if live._closed:
                break
            yield deferLater(reactor, 0.02, lambda: None)
        self.assertTrue(live._closed)
        rtt = yield newer.keepalive()
        self.assertGreater(rtt, 0)


    @defer.inlineCallbacks
    def check_unknown_reconnect_is_reset(self, target):
        """SESSION_RECONNECT for a session the server never had: SESSION_RESET(full=true), then a new session."""
        peer = _Peer(target)
        peer.nonce = 0xFACE
        session = Session(0xABCDEF)
        session.server_cookie = 0x1234567
        session.lossy = False
        receiver = _Resets()
        seen = Interceptor()
        protocol = yield peer.attempt(30, session=session, receiver=receiver, interceptor=seen)
        self.addCleanup(protocol.abort)
        info = yield protocol.whenReady()
        self.assertFalse(info.lossy)
        self.assertEqual(seen.counts.get(("client", "write", Tag.SESSION_RECONNECT)), 1)
        self.assertEqual(receiver.resets, [True])
        # a full reset: a new client cookie, and the server's new cookie
        self.assertNotEqual(session.client_cookie, 0xABCDEF)
        self.assertNotEqual(session.server_cookie, 0x1234567)
        self.assertEqual(seen.counts.get(("client", "write", Tag.CLIENT_IDENT)), 1)


class _Resets:
    def __init__(self):
        self.resets = []

    def connectionReady(self, protocol, info):
        pass

    def connectionLost(self, protocol, reason):
        pass

    def messageReceived(self, protocol, message):
        pass

    def sessionReset(self, protocol, full):
        self.resets.append(full)


class StaleIdentOurServerTests(StaleIdentMixin, TestCase):

    def serve(self):
        config = ConnectionConfig(entity_type=EntityType.OSD, entity_num=0, policy=Policy.stateless_server(),
                                  policies=policy_map(osd=Policy.lossless_peer()))
        factory = Msgr2ServerFactory([NoneServerHandler()], config=config, nonce=4242)
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return factory, entity_addr_t.parse("v2:127.0.0.1:%d/4242" % port.getHost().port)

    @defer.inlineCallbacks
    def test_unknown_reconnect_is_reset_by_our_server(self):
        factory, target = self.serve()
        accepted = []
        factory.onProtocol = accepted.append
        yield self.check_unknown_reconnect_is_reset(target)
        self.assertEqual(accepted[0].conn.decisions, [Decision.RECONNECT_UNKNOWN, Decision.IDENT_NEW])


    @defer.inlineCallbacks
    def test_stale_ident_is_dropped_by_our_server(self):
        config = ConnectionConfig(entity_type=EntityType.OSD, entity_num=0, policy=Policy.stateless_server(),
                                  policies=policy_map(osd=Policy.lossless_peer()))
        factory = Msgr2ServerFactory([NoneServerHandler()], config=config, nonce=4242)
        accepted = []
        factory.onProtocol = accepted.append
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        target = entity_addr_t.parse("v2:127.0.0.1:%d/4242" % port.getHost().port)
        yield self.check_stale_ident_is_dropped(target)
        self.assertEqual([p.conn.decision for p in accepted],
                         [Decision.IDENT_NEW, Decision.IDENT_STALE, Decision.IDENT_INTERRUPTED])


class StaleIdentRealOSDTests(StaleIdentMixin, TestCase):
    """The same against a real ceph-osd 16.2 (its cluster messenger, lossless_peer towards OSDs)."""

    timeout = 180

    @defer.inlineCallbacks
    def test_stale_ident_is_dropped_by_a_real_osd(self):
        mon = cephlab.shared_monitor("none", osds=1)
        osd = mon.osds[0]
        cluster = entity_addrvec_t.parse(osd.addrs["cluster_addrs"][0]).msgr2_addr()
        yield self.check_stale_ident_is_dropped(cluster)

    @defer.inlineCallbacks
    def test_unknown_reconnect_is_reset_by_a_real_osd(self):
        mon = cephlab.shared_monitor("none", osds=1)
        cluster = entity_addrvec_t.parse(mon.osds[0].addrs["cluster_addrs"][0]).msgr2_addr()
        yield self.check_unknown_reconnect_is_reset(cluster)


class PeerTypeRealOSDTests(TestCase):
    """`msgr2tx command --mon` pointed at a daemon that says it is an OSD fails at once."""

    timeout = 180

    def test_command_mon_against_an_osd(self):
        mon = cephlab.shared_monitor("none", osds=1)
        osd = mon.osds[0]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
        p = subprocess.run([sys.executable, "-m", "msgr2tx", "command", "--mon", osd.addr, "--auth", "none",
                            "--timeout", "60", '{"prefix": "version"}'],
                           capture_output=True, text=True, timeout=120, env=env)
        self.assertEqual(p.returncode, 1, p.stderr)
        # one line naming both types, long before the 60 s timeout
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
        self.assertEqual(p.stderr, "msgr2tx: error: %s is an OSD, not a monitor: give a monitor's address with -m\n"
                         % osd.addr)

    @defer.inlineCallbacks
    def test_connect_with_the_right_type(self):
        mon = cephlab.shared_monitor("none", osds=1)
        osd = mon.osds[0]
        protocol = yield connect(reactor, osd.addr, [NoneClientHandler(ADMIN)],
                                 ConnectionConfig(peer_type=EntityType.OSD), timeout=20)
        self.addCleanup(protocol.abort)
        self.assertEqual(protocol.info.peer_name.type, EntityType.OSD)
        # the OSD knows us by the address learned from its HELLO: 127.0.0.1, our nonce, port 0
        self.assertEqual(protocol.conn.my_addrs.addrs[0].host, entity_addr_t.parse("127.0.0.1").host)
        self.assertEqual(protocol.conn.my_addrs.addrs[0].port, 0)
