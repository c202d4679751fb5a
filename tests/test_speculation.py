"""
The speculative first flight (docs/protocol.md): a client that knows its
peer from an earlier connection sends banner, HELLO and AUTH_REQUEST in one
write.

- FirstFlightFrameTests: the bytes the core queues before it has read
  anything, parsed frame by frame, and the handshake they lead to.
- SpeculationLoopbackTests: msgr2tx <-> msgr2tx over TCP: a shared
  PeerBannerCache makes the second connection speculate; a peer whose
  banner picks the other frame revision, or whose HELLO names another
  entity type, ends the speculative attempt with SpeculationFailed and
  connect() dials again without speculation; a changed COMPRESSION bit is
  taken on the same connection.
- SpeculationToCephMonTests / ...ToCephOsdTests (and their Reef and
  Tentacle variants): real Ceph accepts the first flight in crc and secure
  mode, and the client wrote HELLO and AUTH_REQUEST before it read the
  peer's banner.
"""

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.trial.unittest import TestCase

from msgr2tx.auth.cephx import CephxAuthProvider, CephxClientHandler, CephxKeyServer, CephxServerHandler
from msgr2tx.auth.cephx_proto import CryptoKey
from msgr2tx.auth.keyring import Keyring
from msgr2tx.auth.none import NoneClientHandler, NoneServerHandler
from msgr2tx.client import connect
from msgr2tx.core import events as E
from msgr2tx.core import frames as F
from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.connection import BANNER_SIZE, Msgr2Connection, Role, State
from msgr2tx.core.constants import AuthMethod, ConnectionMode, Msgr2Feature, Tag
from msgr2tx.core.encoding import EntityName, EntityType, entity_addr_t
from msgr2tx.core.framing import FrameReader, ReceiveBuffer
from msgr2tx.core.speculation import KnownPeer, PeerBannerCache, address_key
from msgr2tx.errors import SpeculationFailed
from msgr2tx.factory import Msgr2ClientFactory, Msgr2ServerFactory
from msgr2tx.clients.monclient import MonClient
from msgr2tx.services import EchoReceiver
from msgr2tx.testing import CLIENT_ADDR, SERVER_ADDR, CorePair
from tests import cephlab

ADMIN = EntityName.parse("client.admin")
REV1_COMPRESSION = int(Msgr2Feature.REVISION_1 | Msgr2Feature.COMPRESSION)
MON_PEER = KnownPeer(REV1_COMPRESSION, 0, EntityType.MON)
#: what an msgr2tx peer on its defaults advertises
FAST = int(Msgr2Feature.MSGR2TX_FAST_RECONNECT)
OURS = REV1_COMPRESSION | FAST


def parse_first_flight(data, rev1):
    """(banner supported, banner required, [(tag, decoded frame)]) of what a client wrote."""
    import struct
    supported, required = struct.unpack_from("<QQ", data, BANNER_SIZE - 16)
    reader = FrameReader(rev1, True, 1 << 20, 1 << 20, 1 << 20)
    rbuf = ReceiveBuffer()
    rbuf.append(bytes(data[BANNER_SIZE:]))
    frames = []
    while True:
        frame = reader.next_frame(rbuf)
        if frame is None:
            break
        frames.append((Tag(frame.tag), F.decode_frame(frame.tag, frame.segments)))
    return supported, required, frames


class FirstFlightFrameTests(TestCase):
    """What the core queues at initiate() with an assumed peer, before any byte is read."""

    def _client(self, config=None):
        return Msgr2Connection(config or ConnectionConfig(), Role.CLIENT, CLIENT_ADDR, SERVER_ADDR,
                               nonce=1234, cookie=0x1111)

    def test_banner_hello_auth_request_in_one_write(self):
        client = self._client()
        payload = NoneClientHandler(ADMIN).build_request(EntityType.MON)
        client.initiate(MON_PEER, (AuthMethod.NONE, payload, (ConnectionMode.CRC,)))
        parts = client.data_to_send()
        supported, required, frames = parse_first_flight(b"".join(parts), rev1=True)
        self.assertEqual((supported, required), (OURS, 0))
        self.assertEqual([tag for tag, _ in frames], [Tag.HELLO, Tag.AUTH_REQUEST])
        hello, auth = frames[0][1], frames[1][1]
        self.assertEqual(hello.entity_type, EntityType.CLIENT)
        self.assertEqual(hello.peer_addr, SERVER_ADDR)
        self.assertEqual((auth.method, tuple(auth.preferred_modes), auth.payload),
                         (AuthMethod.NONE, (ConnectionMode.CRC,), payload))
        self.assertTrue(client.speculated)
        self.assertTrue(client.rev1)
        self.assertIs(client.state, State.BANNER_CONNECTING)

    def test_rev0_peer_gets_rev0_frames(self):
        client = self._client()
        payload = NoneClientHandler(ADMIN).build_request(EntityType.MON)
        client.initiate(KnownPeer(0, 0, EntityType.MON), (AuthMethod.NONE, payload, (ConnectionMode.CRC,)))
        data = b"".join(client.data_to_send())
        _, _, frames = parse_first_flight(data, rev1=False)
        self.assertEqual([tag for tag, _ in frames], [Tag.HELLO, Tag.AUTH_REQUEST])
        self.assertFalse(client.rev1)
        # the same bytes do not parse as msgr2.1 frames
        self.assertRaises(Exception, parse_first_flight, data, True)

    def test_no_first_flight_without_assumption(self):
        client = self._client()
        client.initiate()
        self.assertEqual(len(b"".join(client.data_to_send())), BANNER_SIZE)
        self.assertFalse(client.speculated)

    def test_no_first_flight_towards_an_incompatible_banner(self):
        # a peer requiring a bit we lack would refuse us anyway: no frames ahead
        for peer in (KnownPeer(0xFF, 0x80, EntityType.MON), KnownPeer(REV1_COMPRESSION, 0, 0)):
            client = self._client()
            client.initiate(peer, (AuthMethod.NONE, b"x", (ConnectionMode.CRC,)))
            self.assertEqual(len(b"".join(client.data_to_send())), BANNER_SIZE)
            self.assertFalse(client.speculated)
        client = self._client(ConnectionConfig(peer_type=EntityType.OSD))
        client.initiate(MON_PEER, (AuthMethod.NONE, b"x", (ConnectionMode.CRC,)))
        self.assertFalse(client.speculated)

    def _pair(self, assume, server_config=None, client_auth=None, server_auth=None):
        client_auth = client_auth or NoneClientHandler(ADMIN)
        pair = CorePair([client_auth], server_auth or [NoneServerHandler()], server_config=server_config)
        pair._client_handler = client_auth
        payload = client_auth.build_request(assume.entity_type)
        pair.client.initiate(assume, (client_auth.method, payload, (ConnectionMode.CRC,)))
        pair.server.initiate()
        return pair

    def test_handshake_completes_without_auth_request_needed(self):
        pair = self._pair(MON_PEER)
        pair.pump()
        self.assertIs(pair.client.state, State.READY)
        self.assertIs(pair.server.state, State.READY)
        # the auth method never had to be asked for: it went with the banner
        self.assertEqual(pair.events_of("client", E.AuthRequestNeeded), [])
        # the server read the AUTH_REQUEST that came with the banner
        self.assertEqual(len(pair.events_of("server", E.AuthRequestReceived)), 1)

    def test_cephx_secure_signatures_cover_the_first_flight(self):
        key = CryptoKey.generate()
        ring = Keyring()
        ring.add(ADMIN, key, {"mon": "allow *"})
        client_auth = CephxClientHandler(ADMIN, key)
        server_config = ConnectionConfig(entity_type=EntityType.MON, entity_num=0,
                                         modes=(ConnectionMode.SECURE, ConnectionMode.CRC))
        pair = CorePair([client_auth], [CephxServerHandler(CephxKeyServer(ring))],
                        client_config=ConnectionConfig(modes=(ConnectionMode.SECURE,)),
                        server_config=server_config)
        pair._client_handler = client_auth
        pair.client.initiate(MON_PEER, (client_auth.method, client_auth.build_request(EntityType.MON),
                                        (ConnectionMode.SECURE,)))
        pair.server.initiate()
        pair.pump()
        self.assertIs(pair.client.state, State.READY)
        self.assertEqual(pair.client.con_mode, ConnectionMode.SECURE)

    def test_compression_bit_changed_goes_on(self):
        # assumed without COMPRESSION, the server has it: the frames are the
        # same, the COMPRESSION exchange simply happens after AUTH_SIGNATURE
        pair = self._pair(KnownPeer(int(Msgr2Feature.REVISION_1), 0, EntityType.MON))
        pair.pump()
        self.assertIs(pair.client.state, State.READY)
        self.assertEqual(pair.client.peer_supported, OURS)
        self.assertTrue(pair.client.speculated)

    def test_revision_changed_fails(self):
        server_config = ConnectionConfig(entity_type=EntityType.MON, entity_num=0, revision1=False)
        pair = self._pair(MON_PEER, server_config=server_config)
        # (the server's banner reaches the client first: a server sends it at accept)
        with self.assertRaises(SpeculationFailed) as caught:
            pair.pump(c2s=False)
        self.assertIn("msgr2.0", str(caught.exception))
        self.assertIs(pair.client.state, State.CLOSED)
        self.assertEqual([type(e) for e in caught.exception.events
                          if isinstance(e, E.FirstFlightMissed)], [E.FirstFlightMissed])

    def test_entity_type_changed_fails(self):
        pair = self._pair(KnownPeer(REV1_COMPRESSION, 0, EntityType.OSD))
        with self.assertRaises(SpeculationFailed) as caught:
            pair.pump()
        self.assertIn("HELLO says it is a mon", str(caught.exception))


class PeerBannerCacheTests(TestCase):

    def test_bounded_lru_and_key(self):
        cache = PeerBannerCache(size=2)
        a, b, c = (entity_addr_t.parse("v2:127.0.0.1:%d/%d" % (p, p)) for p in (1, 2, 3))
        cache.learn(a, MON_PEER)
        cache.learn(b, MON_PEER)
        cache.get(a)
        cache.learn(c, MON_PEER)
        self.assertEqual(len(cache), 2)
        self.assertIsNone(cache.get(b))
        # a restarted daemon (new nonce) at the same address is the same entry
        self.assertEqual(cache.get(entity_addr_t.parse("v2:127.0.0.1:1/99")), MON_PEER)
        self.assertEqual(address_key(entity_addr_t.parse("v2:[::1]:3300/0")), "[::1]:3300")
        cache.forget(a)
        self.assertIsNone(cache.get(a))
        self.assertRaises(ValueError, PeerBannerCache, 0)

    def test_configured_peer_banner(self):
        self.assertIsNone(ConnectionConfig(peer_banner=(3, 0)).assumed_peer())
        self.assertEqual(ConnectionConfig(peer_banner=(3, 0), peer_type=EntityType.MON).assumed_peer(),
                         KnownPeer(3, 0, EntityType.MON))
        self.assertRaises(ValueError, ConnectionConfig, peer_banner=(3,))
        self.assertRaises(ValueError, ConnectionConfig, peer_banner=(-1, 0))


class _FlightRecorder:
    """
    An interceptor that never acts: it records, per client connection, the
    frames written and the moment the peer's banner was read, in order.
    """

    def __init__(self):
        self.log = {}

    def __call__(self, connection, point, tag=None):
        if connection.role is Role.CLIENT:
            self.log.setdefault(id(connection), []).append(point if tag is None else (point, Tag(tag)))
        return None

    def before_banner(self, connection):
        """The frames a client wrote before it had read anything from the peer."""
        entries = self.log[id(connection)]
        return [tag for point, tag in (e for e in entries[:entries.index("banner")] if isinstance(e, tuple))
                if point == "write"]


@defer.inlineCallbacks
def dial(addr, handlers, config, cache, recorder=None, receiver=None, target=None):
    """One connection through a Msgr2ClientFactory sharing C{cache}; fires with the READY protocol."""
    factory = Msgr2ClientFactory(handlers, config, target_addr=target or addr, receiver=receiver,
                                 reactor=reactor, handshake_timeout=10, peer_banners=cache)
    factory.interceptor = recorder
    p = yield TCP4ClientEndpoint(reactor, str(addr.host), addr.port, timeout=10).connect(factory)
    yield p.whenReady()
    return p


class SpeculationLoopbackTests(TestCase):
    """msgr2tx client -> msgr2tx server over loopback TCP."""

    timeout = 30

    def _server(self, config=None, handlers=None, port=0):
        factory = Msgr2ServerFactory(handlers or [NoneServerHandler()], EchoReceiver(),
                                     config or ConnectionConfig(entity_type=EntityType.MON, entity_num=0))
        self.accepted = []
        factory.onProtocol = self.accepted.append
        self.port = reactor.listenTCP(port, factory, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        return entity_addr_t.parse("v2:127.0.0.1:%d/0" % self.port.getHost().port)

    def _close(self, p):
        self.addCleanup(p.transport.loseConnection)
        return p

    @defer.inlineCallbacks
    def test_second_connection_speculates(self):
        addr = self._server()
        cache = PeerBannerCache()
        recorder = _FlightRecorder()
        p1 = self._close((yield dial(addr, [NoneClientHandler(ADMIN)], ConnectionConfig(), cache, recorder)))
        self.assertFalse(p1.conn.speculated)
        self.assertEqual(recorder.before_banner(p1.conn), [])
        self.assertEqual(cache.get(addr), KnownPeer(OURS, 0, EntityType.MON))
        p2 = self._close((yield dial(addr, [NoneClientHandler(ADMIN)], ConnectionConfig(), cache, recorder)))
        self.assertTrue(p2.conn.speculated)
        self.assertEqual(recorder.before_banner(p2.conn), [Tag.HELLO, Tag.AUTH_REQUEST])
        self.assertEqual(str(p2.info.peer_name), "mon.0")
        rtt = yield p2.keepalive()
        self.assertGreaterEqual(rtt, 0)

    @defer.inlineCallbacks
    def test_speculate_off(self):
        addr = self._server()
        cache = PeerBannerCache()
        cache.learn(addr, MON_PEER)
        recorder = _FlightRecorder()
        p = self._close((yield dial(addr, [NoneClientHandler(ADMIN)], ConnectionConfig(speculate=False),
                                    cache, recorder)))
        self.assertFalse(p.conn.speculated)
        self.assertEqual(recorder.before_banner(p.conn), [])

    @defer.inlineCallbacks
    def test_configured_banner_cephx_secure(self):
        key = CryptoKey.generate()
        ring = Keyring()
        ring.add(ADMIN, key, {"mon": "allow *"})
        addr = self._server(ConnectionConfig(entity_type=EntityType.MON, entity_num=0,
                                             modes=(ConnectionMode.SECURE, ConnectionMode.CRC)),
                            [CephxServerHandler(CephxKeyServer(ring))])
        config = ConnectionConfig(modes=(ConnectionMode.SECURE,), peer_type=EntityType.MON,
                                  peer_banner=(REV1_COMPRESSION, 0))
        p = self._close((yield connect(reactor, str(addr), [CephxClientHandler(ADMIN, key)], config, timeout=10)))
        self.assertTrue(p.conn.speculated)
        self.assertEqual(p.info.mode_name, "secure")
        self.assertEqual(len(self.accepted), 1)

    @defer.inlineCallbacks
    def _redialled(self, assumed, server_config):
        addr = self._server(server_config)
        cache = PeerBannerCache()
        cache.learn(addr, assumed)
        p = self._close((yield connect(reactor, str(addr), [NoneClientHandler(ADMIN)], ConnectionConfig(),
                                       timeout=10, peer_banners=cache)))
        # the speculative attempt was refused, the second one did not speculate
        self.assertEqual(len(self.accepted), 2)
        self.assertFalse(p.conn.speculated)
        self.assertEqual(str(p.info.peer_name), "%s.0" % EntityType.name(server_config.entity_type))
        return p, cache, addr

    @defer.inlineCallbacks
    def test_revision_changed_redials(self):
        p, cache, addr = yield self._redialled(
            MON_PEER, ConnectionConfig(entity_type=EntityType.MON, entity_num=0, revision1=False))
        self.assertFalse(p.info.rev1)
        # and the cache now holds what the peer really is
        self.assertEqual(cache.get(addr), KnownPeer(int(Msgr2Feature.COMPRESSION) | FAST, 0, EntityType.MON))

    @defer.inlineCallbacks
    def test_entity_type_changed_redials(self):
        p, cache, addr = yield self._redialled(
            KnownPeer(REV1_COMPRESSION, 0, EntityType.OSD),
            ConnectionConfig(entity_type=EntityType.MON, entity_num=0))
        self.assertEqual(cache.get(addr).entity_type, EntityType.MON)

    @defer.inlineCallbacks
    def test_speculation_failed_without_redial(self):
        addr = self._server(ConnectionConfig(entity_type=EntityType.MON, entity_num=0, revision1=False))
        cache = PeerBannerCache()
        cache.learn(addr, MON_PEER)
        factory = Msgr2ClientFactory([NoneClientHandler(ADMIN)], ConnectionConfig(), target_addr=addr,
                                     reactor=reactor, handshake_timeout=10, peer_banners=cache)
        p = yield TCP4ClientEndpoint(reactor, "127.0.0.1", addr.port).connect(factory)
        yield self.assertFailure(p.whenReady(), SpeculationFailed)
        # the entry keeps the banner seen, without an entity type: no speculation next time
        self.assertEqual(cache.get(addr), KnownPeer(int(Msgr2Feature.COMPRESSION) | FAST, 0, 0))

    @defer.inlineCallbacks
    def test_compression_bit_changed_same_connection(self):
        addr = self._server()
        cache = PeerBannerCache()
        cache.learn(addr, KnownPeer(int(Msgr2Feature.REVISION_1), 0, EntityType.MON))
        p = self._close((yield connect(reactor, str(addr), [NoneClientHandler(ADMIN)], ConnectionConfig(),
                                       timeout=10, peer_banners=cache)))
        self.assertTrue(p.conn.speculated)
        self.assertEqual(len(self.accepted), 1)
        self.assertEqual(cache.get(addr), KnownPeer(OURS, 0, EntityType.MON))


    @defer.inlineCallbacks
    def test_refused_method_falls_back_to_the_next(self):
        # the speculative AUTH_REQUEST uses the first handler; the server
        # allows only auth none: AUTH_BAD_METHOD, then none, same connection
        addr = self._server()
        cache = PeerBannerCache()
        cache.learn(addr, MON_PEER)
        handlers = [CephxClientHandler(ADMIN, CryptoKey.generate()), NoneClientHandler(ADMIN)]
        p = self._close((yield connect(reactor, str(addr), handlers, ConnectionConfig(), timeout=10,
                                       peer_banners=cache)))
        self.assertTrue(p.conn.speculated)
        self.assertEqual(p.conn.auth_method, AuthMethod.NONE)
        self.assertEqual(len(self.accepted), 1)

    @defer.inlineCallbacks
    def test_reconnecting_client_speculates_and_recovers(self):
        from msgr2tx.client import ReconnectingClient
        addr = self._server()
        client = ReconnectingClient(reactor, str(addr), [NoneClientHandler(ADMIN)], ConnectionConfig(),
                                    timeout=10, initial_backoff=0.01, max_backoff=0.05)
        client.startService()
        self.addCleanup(client.stopService)
        p1 = yield client.whenReady()
        self.assertFalse(p1.conn.speculated)
        p1.transport.abortConnection()
        yield _until(lambda: client.protocol is not None and client.protocol is not p1)
        self.assertTrue(client.protocol.conn.speculated)
        # the server comes back at the same port speaking msgr2.0 only
        yield self.port.stopListening()
        for p in self.accepted:
            if p.transport is not None:
                p.transport.abortConnection()
        p2 = client.protocol
        self._server(ConnectionConfig(entity_type=EntityType.MON, entity_num=0, revision1=False), port=addr.port)
        yield _until(lambda: client.protocol is not None and client.protocol is not p2)
        # its first attempt speculated and failed, the next one did not speculate
        self.assertEqual(len(self.accepted), 2)
        self.assertFalse(client.protocol.conn.speculated)
        self.assertFalse(client.protocol.info.rev1)


@defer.inlineCallbacks
def _until(condition, timeout=10.0):
    from twisted.internet import task
    waited = 0.0
    while not condition():
        if waited > timeout:
            raise AssertionError("condition not met within %gs" % timeout)
        yield task.deferLater(reactor, 0.01, lambda: None)
        waited += 0.01


# ---- real Ceph ------------------------------------------------------------------

SPEC_CONFIGS = {mode: ConnectionConfig(modes=(ConnectionMode.parse(mode),)) for mode in ("crc", "secure")}


class SpeculationToCephMonTests(TestCase):
    """A real ceph-mon with cephx accepts a speculative first flight, crc and secure."""

    release = cephlab.DEFAULT_RELEASE
    timeout = 90

    def setUp(self):
        self.mon = cephlab.shared_monitor(auth="cephx", release=self.release)

    def _handler(self):
        return CephxAuthProvider().clientHandler("keyring=%s" % self.mon.keyring)

    @defer.inlineCallbacks
    def _mon(self, mode):
        addr = entity_addr_t.parse(self.mon.addr)
        cache = PeerBannerCache()
        recorder = _FlightRecorder()
        config = SPEC_CONFIGS[mode]
        p1 = yield dial(addr, [self._handler()], config, cache, recorder, receiver=MonClient())
        self.addCleanup(p1.transport.loseConnection)
        self.assertFalse(p1.conn.speculated)
        known = cache.get(addr)
        self.assertEqual(known.entity_type, EntityType.MON)
        self.assertEqual(known.required, 0)
        monclient = MonClient()
        p2 = yield dial(addr, [self._handler()], config, cache, recorder, receiver=monclient)
        self.addCleanup(p2.transport.loseConnection)
        self.assertTrue(p2.conn.speculated)
        self.assertEqual(recorder.before_banner(p2.conn), [Tag.HELLO, Tag.AUTH_REQUEST])
        self.assertEqual(p2.info.mode_name, mode)
        self.assertTrue(p2.info.rev1)
        self.assertEqual(str(p2.info.peer_name), "mon.0")
        # the session is real: the monitor answers a command
        result, status, output = yield monclient.command({"prefix": "version"})
        self.assertEqual(result, 0)
        self.assertIn("ceph version %s." % self.mon.version, output.decode())

    def test_mon_crc(self):
        return self._mon("crc")

    def test_mon_secure(self):
        return self._mon("secure")

    @defer.inlineCallbacks
    def test_monclient_second_session_speculates(self):
        monclient = MonClient()
        yield monclient.start(reactor, [self.mon.addr], [self._handler()], SPEC_CONFIGS["secure"])
        self.addCleanup(monclient.stop)
        p1 = yield monclient.authenticate(timeout=20)
        self.assertFalse(p1.conn.speculated)
        monclient.reopen_session()
        p2 = yield monclient.authenticate(timeout=20)
        self.assertIsNot(p1, p2)
        self.assertTrue(p2.conn.speculated)
        self.assertEqual(p2.info.mode_name, "secure")
        result, status, output = yield monclient.command({"prefix": "version"})
        self.assertEqual(result, 0)

    @defer.inlineCallbacks
    def test_monclient_redials_at_once_after_a_wrong_assumption(self):
        monclient = MonClient(hunt_interval=60.0)
        monclient.peer_banners.learn(entity_addr_t.parse(self.mon.addr), KnownPeer(0, 0, EntityType.MON))
        yield monclient.start(reactor, [self.mon.addr], [self._handler()], SPEC_CONFIGS["crc"])
        self.addCleanup(monclient.stop)
        # well before the next hunting round (60 s)
        p = yield monclient.authenticate(timeout=10)
        self.assertFalse(p.conn.speculated)
        self.assertEqual(monclient.sessions, 1)
        self.assertTrue(monclient.peer_banners.get(entity_addr_t.parse(self.mon.addr)).rev1_with(3))

    @defer.inlineCallbacks
    def _fallback(self, assumed, handler):
        """A wrong assumption about the monitor: the first attempt fails, connect() dials again plainly."""
        addr = entity_addr_t.parse(self.mon.addr)
        cache = PeerBannerCache()
        cache.learn(addr, assumed)
        attempts = []
        original = Msgr2ClientFactory.buildProtocol

        def counting(factory, a):
            p = original(factory, a)
            attempts.append(p)
            return p
        self.patch(Msgr2ClientFactory, "buildProtocol", counting)
        monclient = MonClient()
        p = yield connect(reactor, self.mon.addr, [handler], SPEC_CONFIGS["secure"], receiver=monclient,
                          timeout=10, peer_banners=cache)
        self.addCleanup(p.transport.loseConnection)
        self.assertEqual(len(attempts), 2)
        self.assertTrue(attempts[0].conn.speculated)
        self.assertIsInstance(attempts[0]._failure.value, SpeculationFailed)
        self.assertFalse(p.conn.speculated)
        self.assertEqual(str(p.info.peer_name), "mon.0")
        self.assertEqual(cache.get(addr).entity_type, EntityType.MON)
        result, status, output = yield monclient.command({"prefix": "version"})
        self.assertEqual(result, 0)

    def test_fallback_when_revision_differs(self):
        # assumed msgr2.0 (a banner without REVISION_1): every release here offers msgr2.1
        return self._fallback(KnownPeer(0, 0, EntityType.MON), self._handler())

    @defer.inlineCallbacks
    def test_fallback_when_entity_type_differs(self):
        # assumed an OSD at the monitor's address: the AUTH_REQUEST carried an authorizer
        handler = self._handler()
        p = yield connect(reactor, self.mon.addr, [handler], SPEC_CONFIGS["crc"], receiver=MonClient(), timeout=10)
        p.transport.loseConnection()
        yield self._fallback(KnownPeer(REV1_COMPRESSION, 0, EntityType.OSD), handler.spawn())


cephlab.release_variants(globals(), SpeculationToCephMonTests)


class SpeculationToCephOsdTests(TestCase):
    """A real ceph-osd accepts a speculative first flight carrying a cephx authorizer."""

    release = cephlab.DEFAULT_RELEASE
    timeout = 180

    def setUp(self):
        self.mon = cephlab.shared_monitor(auth="cephx", osds=1, release=self.release)
        self.osd = self.mon.osds[0]

    @defer.inlineCallbacks
    def _osd(self, mode):
        config = SPEC_CONFIGS[mode]
        handler = CephxAuthProvider().clientHandler("keyring=%s" % self.mon.keyring)
        p = yield connect(reactor, self.mon.addr, [handler], config, receiver=MonClient(), timeout=10)
        self.addCleanup(p.transport.loseConnection)
        addr = entity_addr_t.parse(self.osd.addr)
        cache = PeerBannerCache()
        recorder = _FlightRecorder()
        p1 = yield dial(addr, [handler.spawn()], config, cache, recorder)
        self.addCleanup(p1.transport.loseConnection)
        self.assertFalse(p1.conn.speculated)
        self.assertEqual(cache.get(addr).entity_type, EntityType.OSD)
        p2 = yield dial(addr, [handler.spawn()], config, cache, recorder)
        self.addCleanup(p2.transport.loseConnection)
        self.assertTrue(p2.conn.speculated)
        self.assertEqual(recorder.before_banner(p2.conn), [Tag.HELLO, Tag.AUTH_REQUEST])
        self.assertEqual(str(p2.info.peer_name), "osd.0")
        self.assertEqual(p2.info.mode_name, mode)
        rtt = yield p2.keepalive()
        self.assertGreaterEqual(rtt, 0)

    def test_osd_crc(self):
        return self._osd("crc")

    def test_osd_secure(self):
        return self._osd("secure")


cephlab.release_variants(globals(), SpeculationToCephOsdTests)
