"""
Memory stays bounded against hostile and slow peers, and the liveness
defaults are Ceph's (issue 10, items 7 and 8).

Core tests check what the connection buffers; process tests run an echo
server in a child process (tests/hostile.py) and measure its RSS while a
peer misbehaves.
"""

import os
import resource
import select
import signal
import socket
import struct
import time

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import SynchronousTestCase, TestCase

from msgr2tx.auth.none import NoneClientHandler, NoneServerHandler
from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.connection import (
    SMALL_CONTROL_LIMIT, TRANSITIONS, Msgr2Connection, Role, State,
)
from msgr2tx.core.constants import PREAMBLE_SIZE, Tag
from msgr2tx.core import events as E
from msgr2tx.core.encoding import EntityName, EntityType, entity_addrvec_t, utime_t
from msgr2tx.core.framing import build_preamble
from msgr2tx.core.messages import GenericMessage
from msgr2tx.messages import MPing
from msgr2tx.errors import DecodeError, FrameTooLarge, UnexpectedFrame
from msgr2tx.testing import CLIENT_ADDR, SERVER_ADDR, CorePair
from tests.hostile import ServerProcess, SyncClient, closed_within

ADMIN = EntityName.parse("client.admin")
MiB = 1 << 20

#: the preamble of the issue's hostile frame: MESSAGE, 4 segments of 32 MiB
#: (each within max_segment, 128 MiB in all: within max_frame)
HOSTILE_MESSAGE = build_preamble(Tag.MESSAGE, [32 * MiB] * 4, [8, 8, 8, 4096])


def client_banner() -> bytes:
    client = Msgr2Connection(ConnectionConfig(), Role.CLIENT, CLIENT_ADDR, SERVER_ADDR)
    client.initiate()
    return b"".join(client.data_to_send())


def server_after_banner() -> Msgr2Connection:
    server = Msgr2Connection(ConnectionConfig(entity_type=EntityType.MON, entity_num=0), Role.SERVER,
                             SERVER_ADDR, CLIENT_ADDR, server_addrs=entity_addrvec_t((SERVER_ADDR,)))
    server.initiate()
    server.receive_data(client_banner())
    assert server.state is State.HELLO_ACCEPTING
    return server


def ready_pair() -> CorePair:
    pair = CorePair([NoneClientHandler(ADMIN)], [NoneServerHandler()])
    pair.handshake()
    assert pair.server.state is State.READY and pair.client.state is State.READY
    return pair


class PreambleGateTests(SynchronousTestCase):
    """A frame the state does not accept is refused at its preamble."""

    def test_message_before_auth_refused_at_preamble(self):
        server = server_after_banner()
        with self.assertRaises(UnexpectedFrame) as cm:
            server.receive_data(HOSTILE_MESSAGE)
        self.assertIn("MESSAGE frame is not allowed in state HELLO_ACCEPTING", str(cm.exception))
        self.assertLessEqual(server.buffered, PREAMBLE_SIZE)
        self.assertIs(server.state, State.CLOSED)

    def test_message_preamble_with_body_bytes_refused_at_once(self):
        # the body the peer sends with the preamble is never collected
        server = server_after_banner()
        self.assertRaises(UnexpectedFrame, server.receive_data, HOSTILE_MESSAGE + bytes(1 * MiB))

    def test_every_unexpected_tag_refused_in_every_reachable_state(self):
        # server: after the banner, after HELLO, at READY; client: at READY
        def hello_done():
            pair = CorePair([NoneClientHandler(ADMIN)], [NoneServerHandler()])
            pair.start()
            server = pair.server
            server.receive_data(b"".join(pair.client.data_to_send()))  # banner
            # the client's HELLO goes out when it sees the server's banner
            pair.client.receive_data(b"".join(server.data_to_send()))
            server.receive_data(b"".join(pair.client.data_to_send()))
            assert server.state is State.AUTH_ACCEPTING, server.state
            return server
        makers = {
            "server HELLO_ACCEPTING": server_after_banner,
            "server AUTH_ACCEPTING": hello_done,
            "server READY": lambda: ready_pair().server,
            "client READY": lambda: ready_pair().client,
        }
        checked = 0
        for where, make in makers.items():
            for tag in Tag:
                conn = make()
                state = conn.state
                if tag in TRANSITIONS[state]:
                    continue
                # declared lengths far above anything that will arrive
                lengths = [41, 16 * MiB, 0, 16 * MiB] if tag == Tag.MESSAGE else [MiB // 2]
                try:
                    conn.receive_data(build_preamble(tag, lengths, [8] * len(lengths)))
                except UnexpectedFrame as e:
                    self.assertIn(Tag(tag).name, str(e))
                else:
                    self.fail("%s accepted the preamble of %s" % (where, Tag(tag).name))
                checked += 1
        self.assertGreater(checked, 60)

    def test_message_in_ready_is_admitted_within_max_frame(self):
        pair = ready_pair()
        # 4 x 32 MiB is within the defaults: the preamble is accepted and the
        # body awaited, nothing is buffered beyond what arrived
        self.assertEqual(pair.server.receive_data(HOSTILE_MESSAGE + bytes(1000)), [])
        self.assertLessEqual(pair.server.buffered, PREAMBLE_SIZE + 1000)
        pair = ready_pair()
        too_big = build_preamble(Tag.MESSAGE, [41, 64 * MiB, 64 * MiB, 1], [8, 8, 8, 4096])
        self.assertRaises(FrameTooLarge, pair.server.receive_data, too_big)

    def test_handshake_control_frames_have_a_small_limit(self):
        server = server_after_banner()
        hello = build_preamble(Tag.HELLO, [SMALL_CONTROL_LIMIT + 1], [8])
        with self.assertRaises(FrameTooLarge) as cm:
            server.receive_data(hello)
        self.assertIn("HELLO", str(cm.exception))
        # KEEPALIVE2 at READY likewise
        pair = ready_pair()
        self.assertRaises(FrameTooLarge, pair.server.receive_data,
                          build_preamble(Tag.KEEPALIVE2, [SMALL_CONTROL_LIMIT + 1], [8]))

    def test_auth_frames_may_use_max_control(self):
        # cephx tickets can be large: AUTH_REQUEST gets the whole max_control
        server = server_after_banner()
        pair = CorePair([NoneClientHandler(ADMIN)], [NoneServerHandler()])
        pair.start()
        server = pair.server
        server.receive_data(b"".join(pair.client.data_to_send()))
        pair.client.receive_data(b"".join(server.data_to_send()))
        server.receive_data(b"".join(pair.client.data_to_send()))
        limit = server.config.max_control
        self.assertEqual(server.receive_data(build_preamble(Tag.AUTH_REQUEST, [limit], [8])), [])
        server = server_after_banner()
        self.assertRaises(UnexpectedFrame, server.receive_data, build_preamble(Tag.AUTH_REQUEST, [limit], [8]))


class SecurePreambleGateTests(SynchronousTestCase):
    """In secure mode the gate sees the decrypted preamble, before the rest is read."""

    def check(self, rev1):
        from tests.test_secure import secure_pair
        pair = secure_pair(rev1)
        pair.handshake()
        self.assertIs(pair.server.state, State.READY)
        # an auth frame of 1 MiB at READY: only its first block is sent
        parts = pair.client.writer.assemble(Tag.AUTH_REQUEST_MORE, (bytes(MiB),), (8,))
        first = parts[0][:PREAMBLE_SIZE + 64] if rev1 else parts[0][:PREAMBLE_SIZE]
        with self.assertRaises(UnexpectedFrame) as cm:
            pair.server.receive_data(first)
        self.assertIn("AUTH_REQUEST_MORE frame is not allowed in state READY", str(cm.exception))

    def test_rev1(self):
        self.check(True)

    def test_rev0(self):
        self.check(False)


class KeepaliveFloodTests(SynchronousTestCase):
    """A peer that sends KEEPALIVE2 and reads nothing cannot queue acks without end."""

    def test_acks_coalesce_while_the_transport_is_full(self):
        pair = ready_pair()
        pair.server.pause_tx()  # as the transport does when the peer does not read
        for n in range(1, 1001):
            pair.client.send_keepalive(utime_t(1700000000, n))
        events = pair.server.receive_data(b"".join(pair.client.data_to_send()))
        self.assertEqual(len([e for e in events if isinstance(e, E.KeepaliveReceived)]), 1000)
        self.assertEqual(pair.server.data_to_send(), [])
        pair.server.resume_tx()
        acks = pair.client.receive_data(b"".join(pair.server.data_to_send()))
        self.assertEqual([e.timestamp for e in acks if isinstance(e, E.KeepaliveAckReceived)],
                         [utime_t(1700000000, 1000)])
        # with room, each one is answered
        pair.client.send_keepalive(utime_t(1700000001, 0))
        pair.server.receive_data(b"".join(pair.client.data_to_send()))
        acks = pair.client.receive_data(b"".join(pair.server.data_to_send()))
        self.assertEqual([e.timestamp for e in acks if isinstance(e, E.KeepaliveAckReceived)],
                         [utime_t(1700000001, 0)])


class CompatVersionTests(SynchronousTestCase):
    """Received messages whose compat_version is newer than we decode are refused."""

    def test_newer_compat_version_refused(self):
        pair = ready_pair()
        ping = MPing()
        ping.compat_version = MPing.HEAD_VERSION + 1
        pair.client.send_message(ping)
        with self.assertRaises(DecodeError) as cm:
            pair.server.receive_data(b"".join(pair.client.data_to_send()))
        self.assertIn("compat_version 2 is newer than our version 1", str(cm.exception))

    def test_known_compat_version_and_unknown_types_accepted(self):
        pair = ready_pair()
        ping = MPing()
        ping.compat_version = MPing.HEAD_VERSION
        pair.client.send_message(ping)
        # a type we do not decode is passed on whatever its compat_version
        generic = GenericMessage(0x7FF0, b"front", compat_version=99)
        pair.client.send_message(generic)
        events = pair.server.receive_data(b"".join(pair.client.data_to_send()))
        got = [e.message for e in events if hasattr(e, "message")]
        self.assertEqual([type(m) for m in got], [MPing, GenericMessage])
        self.assertEqual(got[1].compat_version, 99)


def _raise_nofile(n: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))


class ServerProcessTests(SynchronousTestCase):
    """An echo server in its own process against hostile peers."""

    def start(self, **kwargs) -> ServerProcess:
        log = self.mktemp()
        server = ServerProcess(log_path=log, **kwargs)
        self.addCleanup(server.stop)
        return server

    def assertCleanLog(self, server: ServerProcess) -> None:
        text = server.log_text()
        for bad in ("Traceback", "Unhandled", "internal error"):
            self.assertNotIn(bad, text)

    def test_pre_auth_message_preambles_cost_no_memory(self):
        # ten connections each declare a 128 MiB MESSAGE before auth and
        # push 64 MiB: each is refused at the preamble
        server = self.start()
        time.sleep(0.3)
        before = server.rss()
        socks = []
        for _ in range(10):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            s.sendall(client_banner() + HOSTILE_MESSAGE)
            socks.append(s)
        chunk = bytes(MiB)
        for s in socks:
            s.settimeout(5)
            try:
                for _ in range(64):
                    s.sendall(chunk)
            except OSError:
                pass  # the server closed on us, as it should
        peak = server.rss()
        for s in socks:
            self.assertIsNotNone(closed_within(s, 5.0), "the server kept a hostile connection open")
            s.close()
        growth = max(peak, server.rss()) - before
        self.assertLess(growth, 16 * MiB, "server RSS grew by %.1f MiB" % (growth / MiB))
        # and it still serves
        client = SyncClient(server.port)
        client.handshake()
        client.close()
        self.assertIn("UnexpectedFrame: MESSAGE frame is not allowed in state", server.log_text())
        self.assertCleanLog(server)

    def test_peer_that_never_reads_cannot_grow_the_server(self):
        # 128 MiB of 1 MiB messages to the echo service, reading nothing:
        # the server queues at most send_queue_bytes, then stops reading
        limit = 8 * MiB
        server = self.start(send_queue_bytes=limit)
        client = SyncClient(server.port)
        client.handshake()
        time.sleep(0.3)
        before = server.rss()
        count = 128
        payload = bytes(MiB)
        out = bytearray()
        for n in range(count):
            client.conn.send_message(GenericMessage(0x7FF0, struct.pack("<Q", n), data=payload))
            out += b"".join(client.conn.data_to_send())
        sock = client.sock
        sock.setblocking(False)
        sent = 0
        peak = before
        stalled_since = None
        while sent < len(out):
            _, w, _ = select.select([], [sock], [], 0.1)
            if w:
                sent += sock.send(out[sent:sent + (1 << 20)])
                stalled_since = None
            elif stalled_since is None:
                stalled_since = time.monotonic()
            elif time.monotonic() - stalled_since > 1.5:
                break
            peak = max(peak, server.rss())
        self.assertLess(sent, len(out) // 2, "the server read %d of %d bytes without being read" % (sent, len(out)))
        growth = peak - before
        self.assertLess(growth, 48 * MiB, "server RSS grew by %.1f MiB" % (growth / MiB))
        # now read: everything is echoed, in order, and the flood completes
        deadline = time.monotonic() + 60
        while len(client.messages) < count and time.monotonic() < deadline:
            r, w, _ = select.select([sock], [sock] if sent < len(out) else [], [], 0.5)
            if r:
                data = sock.recv(1 << 20)
                self.assertTrue(data, "server closed the connection")
                # our ACKs go after the last whole frame we have to send
                client.feed(data, flush=False)
                out += b"".join(client.conn.data_to_send())
            if w:
                sent += sock.send(out[sent:sent + (1 << 20)])
        self.assertEqual([struct.unpack_from("<Q", m.front)[0] for m in client.messages], list(range(count)))
        client.close()
        self.assertCleanLog(server)

    def test_listen_backlog_is_cephs(self):
        # with the server stopped, the kernel completes as many connects as
        # the listen backlog allows: 1,000 at once lose none of the first 512
        with open("/proc/sys/net/core/somaxconn") as f:
            if int(f.read()) < 512:
                raise self.skipTest("net.core.somaxconn is below 512")
        _raise_nofile(1200)
        server = self.start()
        os.kill(server.pid, signal.SIGSTOP)
        socks = []
        try:
            for _ in range(1000):
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", server.port))
                socks.append(s)
            time.sleep(0.5)
            # poll(), not select(): the descriptors may be past FD_SETSIZE
            poller = select.poll()
            for s in socks:
                poller.register(s, select.POLLOUT)
            writable = {fd for fd, event in poller.poll(0) if event & select.POLLOUT}
            connected = sum(1 for s in socks if s.fileno() in writable
                            and s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0)
        finally:
            os.kill(server.pid, signal.SIGCONT)
            for s in socks:
                s.close()
        # Twisted's default backlog of 50 lets 51 through here
        self.assertGreaterEqual(connected, 500)
        self.assertLessEqual(connected, 600)

    def test_handshake_timeout(self):
        server = self.start(handshake_timeout=1.0)
        s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        self.addCleanup(s.close)
        s.sendall(client_banner())  # and then nothing
        took = closed_within(s, 5.0)
        self.assertIsNotNone(took, "a silent client was kept past the handshake timeout")
        self.assertGreater(took, 0.8)

    def test_vanished_client_is_closed_after_the_idle_timeout(self):
        # the client reaches READY, then neither sends nor closes its socket
        server = self.start(idle_timeout=1.0)
        client = SyncClient(server.port)
        self.addCleanup(client.close)
        client.handshake()
        took = closed_within(client.sock, 5.0)
        self.assertIsNotNone(took, "an idle connection was kept past the idle timeout")
        self.assertGreater(took, 0.8)

    def test_active_client_is_not_idle(self):
        server = self.start(idle_timeout=1.0)
        client = SyncClient(server.port)
        self.addCleanup(client.close)
        client.handshake()
        for n in range(8):
            time.sleep(0.3)
            client.conn.send_message(GenericMessage(0x7FF0, struct.pack("<Q", n)))
            client.flush()
        client.sock.settimeout(5)
        while len(client.messages) < 8:
            data = client.sock.recv(1 << 16)
            self.assertTrue(data, "an active connection was closed as idle")
            client.feed(data)


class DefaultsTests(SynchronousTestCase):
    """Ceph's liveness defaults (ceph-conf 16.2: ms_connection_ready_timeout 10,
    ms_connection_idle_timeout 900, ms_tcp_listen_backlog 512)."""

    def test_config_idle_timeout_defaults(self):
        config = ConnectionConfig()
        self.assertEqual(config.effective_idle_timeout(server=True), 900.0)
        self.assertEqual(config.effective_idle_timeout(server=False), 0.0)
        self.assertEqual(ConnectionConfig(idle_timeout=0).effective_idle_timeout(server=True), 0.0)
        self.assertEqual(ConnectionConfig(idle_timeout=5).effective_idle_timeout(server=False), 5.0)

    def test_twistd_defaults(self):
        from msgr2tx.tap import Options, makeService
        options = Options()
        options.parseOptions(["--auth", "none", "--mode", "crc", "--listen", "tcp:0:interface=127.0.0.1"])
        top = makeService(options)
        (service,) = list(top)
        self.assertEqual(service.factory.handshake_timeout, 10.0)
        self.assertEqual(service.factory.config.effective_idle_timeout(server=True), 900.0)
        self.assertEqual(getattr(service.endpoint, "wrapped", service.endpoint)._backlog, 512)

    def test_twistd_options_change_them(self):
        from msgr2tx.tap import Options, makeService
        options = Options()
        options.parseOptions(["--auth", "none", "--mode", "crc", "--listen", "tcp:0:interface=127.0.0.1",
                              "--idle-timeout", "0", "--handshake-timeout", "3", "--backlog", "64"])
        (service,) = list(makeService(options))
        self.assertEqual(service.factory.handshake_timeout, 3.0)
        self.assertEqual(service.factory.config.effective_idle_timeout(server=True), 0.0)
        self.assertEqual(getattr(service.endpoint, "wrapped", service.endpoint)._backlog, 64)


class _SlowAuth(NoneServerHandler):
    """Auth none that answers only when the test fires its Deferred."""

    def __init__(self):
        super().__init__()
        self.waiting = []

    def handle_request(self, request):
        from twisted.internet import defer
        d = defer.Deferred()
        self.waiting.append((d, request))
        return d

    def answer_all(self):
        waiting, self.waiting = self.waiting, []
        for d, request in waiting:
            d.callback(NoneServerHandler.handle_request(self, request))


class BlockedReadTests(TestCase):
    """While the server waits for its auth handler, a peer cannot make it buffer without end."""

    timeout = 30

    @defer.inlineCallbacks
    def test_reading_pauses_while_auth_is_pending(self):
        from msgr2tx.factory import Msgr2ServerFactory
        from msgr2tx.protocol import BLOCKED_READ_LIMIT
        from msgr2tx.services import EchoReceiver
        from tests.fuzzing import capture, split_stream

        auth = _SlowAuth()
        protocols = []
        factory = Msgr2ServerFactory([auth], EchoReceiver(),
                                     ConnectionConfig(entity_type=EntityType.MON, entity_num=0))
        factory.onProtocol = protocols.append
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        c2s, _ = capture(True, port.getHost().port)
        banner, frames = split_stream(c2s, True)
        from tests.fuzzing import assemble
        head = banner + assemble(frames[0], True) + assemble(frames[1], True)  # HELLO, AUTH_REQUEST
        # then AUTH_SIGNATURE (zeros with auth none), COMPRESSION_REQUEST (both
        # banners advertise compression), CLIENT_IDENT and 10 MiB of one
        # MESSAGE repeated (the repeats are duplicates, dropped by seq)
        self.assertEqual([Tag(f.tag).name for f in frames[2:5]],
                         ["AUTH_SIGNATURE", "COMPRESSION_REQUEST", "CLIENT_IDENT"])
        big = next(f for f in frames if f.tag == Tag.MESSAGE and sum(len(x) for x in f.segments) > 5000)
        flood = (b"".join(assemble(f, True) for f in frames[2:5])
                 + assemble(big, True) * (10 * MiB // 5100))
        s = socket.create_connection(("127.0.0.1", port.getHost().port))
        self.addCleanup(s.close)
        s.setblocking(False)
        s.send(head)
        sent = 0
        for _ in range(100):
            try:
                sent += s.send(flood[sent:sent + MiB])
            except BlockingIOError:
                pass
            yield task.deferLater(reactor, 0.01, lambda: None)
            if sent >= len(flood):
                break
        (server,) = protocols
        self.assertTrue(auth.waiting, "the auth request never reached the handler")
        self.assertIn("blocked", server._read_pauses)
        # what the server holds: at most the limit plus one read
        self.assertLessEqual(server.conn.buffered, BLOCKED_READ_LIMIT + (256 << 10) + len(head))
        self.assertLess(sent, len(flood), "the server read everything while blocked")
        # the answer comes: reading resumes and the rest of the stream is read
        auth.answer_all()
        for _ in range(500):
            try:
                if sent < len(flood):
                    sent += s.send(flood[sent:sent + MiB])
            except BlockingIOError:
                pass
            if sent >= len(flood) and server.conn.buffered == 0:
                break
            yield task.deferLater(reactor, 0.01, lambda: None)
        self.assertFalse(server._closed)
        self.assertEqual(server._read_pauses, set())
        self.assertEqual(sent, len(flood))
        self.assertIs(server.conn.state, State.READY)


class RealCephTests(SynchronousTestCase):
    """What a real Ceph 16.2 monitor does with the same input (tests/cephlab.py)."""

    def setUp(self):
        from tests import cephlab
        cephlab.ensure_ceph()
        self.mon = cephlab.CephMonitor(auth="none").start()
        self.addCleanup(self.mon.stop)

    def test_mon_refuses_a_pre_auth_message_at_its_preamble(self):
        # as our server does: closed at once, after a few MiB in socket buffers
        s = socket.create_connection(("127.0.0.1", self.mon.port), timeout=5)
        self.addCleanup(s.close)
        s.sendall(client_banner() + HOSTILE_MESSAGE)
        pushed = 0
        try:
            for _ in range(64):
                s.sendall(bytes(MiB))
                pushed += 1
        except OSError:
            pass
        self.assertLess(pushed, 32)
        self.assertIsNotNone(closed_within(s, 5.0))

    def test_mon_ignores_bytes_after_known_control_frame_fields(self):
        # every control frame we send carries 11 bytes more: the monitor
        # still completes the handshake, as our decoders now do
        from msgr2tx.core import frames as F
        original = F.ControlFrame.encode

        def padded(frame):
            return original(frame) + b"\x01\x02\x03\x04\x05future"
        F.ControlFrame.encode = padded
        self.addCleanup(setattr, F.ControlFrame, "encode", original)
        client = SyncClient(self.mon.port)
        self.addCleanup(client.close)
        client.handshake()
        self.assertIs(client.conn.state, State.READY)
        self.assertEqual(client.conn.peer_name.type, EntityType.MON)
