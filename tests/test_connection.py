"""
The connection state machine, driven without a reactor: whole handshakes in
memory, then every kind of wrong input.
"""

import struct
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from msgr2tx.auth.none import NoneClientHandler, NoneServerHandler
from msgr2tx.core import events as E
from msgr2tx.core import frames as F
from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.connection import (
    BANNER_SIZE, NEXT_STATES, TRANSITIONS, Msgr2Connection, Role, State,
)
from msgr2tx.core.constants import ConnectionMode, Tag
from msgr2tx.core.encoding import EntityName, EntityType, entity_addrvec_t, utime_t
from msgr2tx.core.framing import FrameWriter
from msgr2tx.messages import MMonCommand, MPing
from msgr2tx.errors import (
    BannerError, IdentMismatch, LocalProtocolError, MissingFeatures, Msgr1Banner,
    ProtocolError, UnexpectedFrame,
)
from msgr2tx.testing import CLIENT_ADDR, SERVER_ADDR, CorePair

ADMIN = EntityName.parse("client.admin")


def none_pair(rev1_client=True, rev1_server=True, **client_kw):
    return CorePair(
        [NoneClientHandler(ADMIN)], [NoneServerHandler()],
        client_config=ConnectionConfig(revision1=rev1_client, **client_kw),
        server_config=ConnectionConfig(entity_type=EntityType.MON, entity_num=0, revision1=rev1_server))


class HandshakeTests(SynchronousTestCase):

    def assertReady(self, pair, rev1):
        self.assertIs(pair.client.state, State.READY)
        self.assertIs(pair.server.state, State.READY)
        (cready,) = pair.events_of("client", E.Ready)
        (sready,) = pair.events_of("server", E.Ready)
        self.assertEqual(cready.rev1, rev1)
        self.assertEqual(sready.rev1, rev1)
        self.assertEqual(cready.con_mode, ConnectionMode.CRC)
        self.assertEqual(str(cready.peer_name), "mon.0")
        self.assertEqual(sready.peer_name.type, EntityType.CLIENT)
        self.assertEqual(sready.peer_name.num, cready.global_id)
        self.assertTrue(cready.lossy)

    def test_rev1(self):
        pair = none_pair()
        pair.handshake()
        self.assertReady(pair, rev1=True)

    def test_rev0_when_client_leaves_out_revision1(self):
        pair = none_pair(rev1_client=False)
        pair.handshake()
        self.assertReady(pair, rev1=False)
        # the client's banner advertised only COMPRESSION (as Ceph, compression does not need rev1)
        # and msgr2tx's own fast reconnect bit (48)
        self.assertEqual(bytes(pair.wire_c2s[10:26]).hex(), "0200000000000100" + "00" * 8)

    def test_rev0_when_server_leaves_out_revision1(self):
        pair = none_pair(rev1_server=False)
        pair.handshake()
        self.assertReady(pair, rev1=False)

    def test_banner_bytes(self):
        pair = none_pair()
        pair.handshake()
        # "ceph v2\n", u16 16, u64 supported (REVISION_1 | COMPRESSION, as Reef
        # and Tentacle send it, and msgr2tx's fast reconnect bit 48), u64 required
        self.assertEqual(bytes(pair.wire_c2s[:BANNER_SIZE]).hex(),
                         "636570682076320a" "1000" "0300000000000100" "0000000000000000")

    def test_auth_none_global_ids(self):
        first = none_pair()
        first.handshake()
        (done,) = first.events_of("client", E.AuthDoneReceived)
        self.assertEqual(done.global_id, 4100)
        self.assertEqual(done.payload, b"")

    def test_secure_only_client_is_refused_with_bad_method(self):
        pair = none_pair(modes=(ConnectionMode.SECURE,))
        pair.start()
        # the pair's client handler offers only crc for auth none: force secure
        pair.client_auth[0].allowed_modes = (ConnectionMode.SECURE,)
        pair.pump()
        needed = pair.events_of("client", E.AuthRequestNeeded)
        self.assertEqual(len(needed), 2)
        self.assertEqual(needed[1].rejected_method, 1)
        self.assertEqual(needed[1].result, -95)
        self.assertEqual(needed[1].allowed_modes, (ConnectionMode.CRC,))

    def test_messages_and_acks(self):
        pair = none_pair()
        pair.handshake()
        pair.client.send_message(MPing())
        pair.client.send_message(MMonCommand(bytes(16), ['{"prefix": "version"}'], tid=7))
        pair.pump()
        got = [e.message for e in pair.events_of("server", E.MessageReceived)]
        self.assertEqual([type(m) for m in got], [MPing, MMonCommand])
        self.assertEqual([m.seq for m in got], [1, 2])
        self.assertEqual(got[1].tid, 7)
        self.assertEqual(got[1].cmd, ['{"prefix": "version"}'])
        self.assertEqual(str(got[0].src), "client.4100")
        # a lossy session has no ACK frames (Ceph acks only lossless sessions)
        self.assertTrue(pair.client.session.lossy)
        self.assertEqual(pair.events_of("client", E.AckReceived), [])

    def test_acks_on_a_lossless_session(self):
        pair = CorePair([NoneClientHandler(ADMIN)], [NoneServerHandler()],
                        server_config=ConnectionConfig(entity_type=EntityType.OSD, entity_num=0, lossy=False))
        pair.handshake()
        # the client asked for lossy (the default) but the server's policy decides
        self.assertFalse(pair.client.session.lossy)
        pair.client.send_message(MPing())
        pair.client.send_message(MPing())
        pair.pump()
        # the server acknowledged both with one ACK frame; they leave the replay queue
        (ack,) = pair.events_of("client", E.AckReceived)
        self.assertEqual(ack.seq, 2)
        self.assertEqual(len(pair.client.session.unacked), 0)

    def test_piggybacked_ack_seq(self):
        pair = none_pair()
        pair.handshake()
        pair.client.send_message(MPing())
        pair.pump()
        pair.server.send_message(MPing())
        pair.pump()
        (msg,) = [e.message for e in pair.events_of("client", E.MessageReceived)]
        self.assertEqual(msg.ack_seq, 1)

    def test_keepalive_answered(self):
        pair = none_pair()
        pair.handshake()
        stamp = utime_t(1700000000, 123)
        pair.client.send_keepalive(stamp)
        pair.pump()
        (ka,) = pair.events_of("server", E.KeepaliveReceived)
        (ack,) = pair.events_of("client", E.KeepaliveAckReceived)
        self.assertEqual(ka.timestamp, stamp)
        self.assertEqual(ack.timestamp, stamp)

    def test_messages_queued_before_ready_are_sent_at_ready(self):
        pair = none_pair()
        pair.client.send_message(MPing())
        pair.handshake()
        self.assertEqual(len(pair.events_of("server", E.MessageReceived)), 1)

    def test_duplicate_message_is_dropped(self):
        pair = none_pair()
        pair.handshake()
        pair.client.send_message(MPing())
        out = b"".join(pair.client.data_to_send())
        events = pair.server.receive_data(out)
        self.assertEqual(len([e for e in events if isinstance(e, E.MessageReceived)]), 1)
        # the same frame again: seq 1 is not above in_seq, so it is dropped
        events = pair.server.receive_data(out)
        self.assertEqual([e for e in events if isinstance(e, E.MessageReceived)], [])

    def test_session_reconnect_to_unknown_session_gets_reset(self):
        pair = none_pair()
        client = pair.client
        original = client._send_client_ident

        def reconnect_first():
            # pretend an earlier session existed: the server knows nothing of it
            client._send(F.SessionReconnect(entity_addrvec_t((CLIENT_ADDR,)), 0x1111, 0x2222, 5, 1, 0))
            client.state = State.SESSION_RECONNECTING
            client._send_client_ident = original

        client._send_client_ident = reconnect_first
        pair.handshake()
        (reset,) = pair.events_of("client", E.SessionResetReceived)
        self.assertTrue(reset.full)
        # the client went on with CLIENT_IDENT on the same connection
        self.assertIs(client.state, State.READY)
        self.assertEqual(len(pair.events_of("server", E.Ready)), 1)


class BadInputTests(SynchronousTestCase):

    def server(self):
        conn = Msgr2Connection(ConnectionConfig(entity_type=EntityType.MON, entity_num=0), Role.SERVER,
                               SERVER_ADDR, CLIENT_ADDR, server_addrs=entity_addrvec_t((SERVER_ADDR,)))
        conn.initiate()
        conn.data_to_send()
        return conn

    def banner(self, supported=1, required=0):
        return b"ceph v2\n" + struct.pack("<HQQ", 16, supported, required)

    def test_msgr1_banner(self):
        self.assertRaises(Msgr1Banner, self.server().receive_data, b"ceph v027")

    def test_msgr1_banner_prefix_alone(self):
        self.assertRaises(Msgr1Banner, self.server().receive_data, b"ceph v0")

    def test_garbage(self):
        self.assertRaises(BannerError, self.server().receive_data, b"GET / HTTP/1.1\r\n")

    def test_banner_fed_byte_by_byte(self):
        conn = self.server()
        data = self.banner()
        for i in range(len(data) - 1):
            self.assertEqual(conn.receive_data(data[i:i + 1]), [])
        (event,) = conn.receive_data(data[-1:])
        self.assertIsInstance(event, E.BannerExchanged)

    def test_wrong_banner_length(self):
        self.assertRaises(BannerError, self.server().receive_data,
                          b"ceph v2\n" + struct.pack("<HQQ", 24, 1, 0) + bytes(8))

    def test_peer_requires_feature_we_lack(self):
        err = self.assertRaises(MissingFeatures, self.server().receive_data, self.banner(supported=5, required=4))
        self.assertEqual(err.missing, 4)

    def test_closed_after_error(self):
        conn = self.server()
        self.assertRaises(BannerError, conn.receive_data, b"xxxxxxxx")
        self.assertIs(conn.state, State.CLOSED)
        self.assertRaises(LocalProtocolError, conn.receive_data, b"more")

    def _after_banner(self, frames, rev1=True):
        conn = self.server()
        writer = FrameWriter(rev1)
        data = self.banner(supported=1 if rev1 else 0)
        for frame in frames:
            data += b"".join(writer.assemble(frame.TAG, frame.segments()))
        return conn, data

    def test_frame_in_wrong_state(self):
        # AUTH_REQUEST before HELLO
        conn, data = self._after_banner([F.AuthRequest(1, (1,), b"")])
        err = self.assertRaises(UnexpectedFrame, conn.receive_data, data)
        self.assertIn("AUTH_REQUEST", str(err))
        self.assertIn("HELLO_ACCEPTING", str(err))

    def test_message_before_ready(self):
        hello = F.Hello(EntityType.CLIENT, SERVER_ADDR)
        msg = F.MessageFrame(F.MessageHeader2(seq=1, type=2))
        conn, data = self._after_banner([hello, msg])
        self.assertRaises(UnexpectedFrame, conn.receive_data, data)

    def test_server_only_frame_sent_by_client(self):
        hello = F.Hello(EntityType.CLIENT, SERVER_ADDR)
        conn, data = self._after_banner([hello, F.AuthDone(1, 1, b"")])
        self.assertRaises(UnexpectedFrame, conn.receive_data, data)

    def test_malformed_payload(self):
        conn, data = self._after_banner([])
        writer = FrameWriter(True)
        data += b"".join(writer.assemble(Tag.HELLO, [b"\x08\x01"]))
        self.assertRaises(ProtocolError, conn.receive_data, data)

    def test_rev0_framing_errors_too(self):
        conn, data = self._after_banner([F.AuthRequest(1, (1,), b"")], rev1=False)
        self.assertRaises(UnexpectedFrame, conn.receive_data, data)

    def test_client_ident_for_another_address(self):
        pair = none_pair()
        pair.server.server_addrs = entity_addrvec_t((SERVER_ADDR.with_port(9999),))
        pair.start()
        self.assertRaises(IdentMismatch, pair.pump)

    def test_verbs_in_wrong_state(self):
        conn = self.server()
        self.assertRaises(LocalProtocolError, conn.send_auth_done, 1, 1)
        self.assertRaises(LocalProtocolError, conn.send_keepalive, utime_t())


class StateTableTests(SynchronousTestCase):

    def test_every_tag_has_a_known_handler(self):
        for state, rules in TRANSITIONS.items():
            for tag, rule in rules.items():
                self.assertTrue(callable(getattr(Msgr2Connection, rule.handler, None)),
                                "%s/%s -> %s" % (state, tag, rule.handler))
                for target in rule.targets:
                    self.assertIsInstance(target, State)

    def test_next_states_are_states(self):
        for state, nexts in NEXT_STATES.items():
            for n in nexts:
                self.assertIsInstance(n, State)

    def test_client_and_server_tags_do_not_overlap_before_ready(self):
        client_states = {State.HELLO_CONNECTING, State.AUTH_CONNECTING, State.AUTH_CONNECTING_SIGN,
                         State.COMPRESSION_CONNECTING, State.SESSION_CONNECTING}
        client_tags = {t for s in client_states for t in TRANSITIONS[s]}
        self.assertNotIn(Tag.AUTH_REQUEST, client_tags)
        self.assertNotIn(Tag.CLIENT_IDENT, client_tags)
        self.assertNotIn(Tag.MESSAGE, client_tags)


class CoreIsolationTests(SynchronousTestCase):

    def test_core_imports_no_twisted(self):
        code = (
            "import sys, pkgutil, importlib, msgr2tx.core\n"
            "for m in pkgutil.iter_modules(msgr2tx.core.__path__):\n"
            "    importlib.import_module('msgr2tx.core.' + m.name)\n"
            "bad = sorted(n for n in sys.modules if n == 'twisted' or n.startswith('twisted.'))\n"
            "print(len([m for m in pkgutil.iter_modules(msgr2tx.core.__path__)]))\n"
            "sys.exit(1 if bad else 0)\n"
        )
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertGreaterEqual(int(proc.stdout.strip()), 10)

    def test_core_does_no_io(self):
        code = (
            "import sys, pkgutil, importlib, msgr2tx.core\n"
            "for m in pkgutil.iter_modules(msgr2tx.core.__path__):\n"
            "    importlib.import_module('msgr2tx.core.' + m.name)\n"
            "bad = [n for n in ('socket', 'select', 'selectors', 'asyncio', 'threading', 'subprocess')\n"
            "       if n in sys.modules and any(getattr(mod, '__name__', '').startswith('msgr2tx')\n"
            "       and n in vars(mod) for mod in list(sys.modules.values()))]\n"
            "print(bad)\n"
            "sys.exit(1 if bad else 0)\n"
        )
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
