"""
msgr2tx's fast reconnect (session resume) between two msgr2tx peers:
docs/protocol.md, "Fast reconnect".

The core-level tests (no sockets) run whole connections back to back with
L{msgr2tx.testing.CorePair}: a first connection sets up a lossless session
with cephx, the link breaks, the next connection resumes it.  The security
review is here as tests: a replayed request, a stale global_seq, an expired
ticket, a tampered request, a server that lost the session and a banner
whose bit was stripped on the way are each refused with a typed error from
msgr2tx.errors, and the client then falls back to cephx on the same
connection with every message delivered exactly once, in order.
"""

import struct
import time

from twisted.trial.unittest import TestCase

from msgr2tx.auth.cephx import CephxClientHandler, CephxKeyServer, CephxServerHandler
from msgr2tx.auth.cephx_proto import CryptoKey
from msgr2tx.auth.keyring import Keyring
from msgr2tx.core import events as E
from msgr2tx.core import resume as R
from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.connection import Decision, State
from msgr2tx.core.constants import AuthMethod, ConnectionMode, Msgr2Feature, Tag
from msgr2tx.core.encoding import EntityName, EntityType
from msgr2tx.core.messages import GenericMessage
from msgr2tx.core.session import GlobalSeq, Session, SessionTable
from msgr2tx.core.speculation import KnownPeer
from msgr2tx.errors import (
    ProtocolError, ResumeExpired, ResumeFailed, ResumeNotNegotiated, ResumeReplayed, ResumeStale,
    ResumeTampered, ResumeUnknownSession, SignatureMismatch,
)
from msgr2tx.testing import CorePair

ADMIN = EntityName.parse("client.admin")
TEST_TYPE = 0x7FF0
FAST = int(Msgr2Feature.MSGR2TX_FAST_RECONNECT)


def numbered(n, size=16):
    return GenericMessage(TEST_TYPE, struct.pack("<Q", n) + b"m" * size)


def number(message):
    return struct.unpack_from("<Q", bytes(message.front))[0]


class Peers:
    """
    One lossless client (its Session and global_seq counter) and one cephx
    server (its SessionTable), connected again and again with CorePairs.
    """

    def __init__(self, mode=ConnectionMode.SECURE, client_config=None, server_config=None):
        key = CryptoKey.generate()
        ring = Keyring()
        ring.add(ADMIN, key, {"mon": "allow *"})
        self.key_server = CephxKeyServer(ring)
        self.key = key
        self.client_config = client_config or ConnectionConfig(lossy=False, modes=(mode,))
        self.server_config = server_config or ConnectionConfig(
            entity_type=EntityType.MON, entity_num=0, lossy=False,
            modes=(ConnectionMode.SECURE, ConnectionMode.CRC))
        self.session = Session()
        self.client_seqs = GlobalSeq()
        self.server_seqs = GlobalSeq()
        self.sessions = SessionTable()
        #: numbers of the test messages the server received, in order, over all connections
        self.received = []
        self.pairs = []

    def pair(self, sessions=None, client_seqs=None):
        pair = CorePair([CephxClientHandler(ADMIN, self.key)], [CephxServerHandler(self.key_server)],
                        self.client_config, self.server_config, client_session=self.session,
                        sessions=self.sessions if sessions is None else sessions,
                        client_global_seqs=client_seqs or self.client_seqs,
                        server_global_seqs=self.server_seqs)
        self.pairs.append(pair)
        return pair

    def collect(self, pair):
        """The test messages the server got on C{pair} since the last collect."""
        seen = getattr(pair, "_collected", 0)
        events = pair.events_of("server", E.MessageReceived)
        pair._collected = len(events)
        new = [number(e.message) for e in events[seen:] if e.message.TYPE == TEST_TYPE]
        self.received.extend(new)
        return new

    def first_session(self, messages=(1, 2)):
        """A first connection: READY by cephx, a few messages delivered, then the link breaks."""
        pair = self.pair()
        pair.handshake()
        assert pair.client.state is State.READY and not pair.client.fast_reconnected
        for n in messages:
            pair.client.send_message(numbered(n))
        pair.pump()
        self.collect(pair)
        pair.break_link()
        return pair


def run(pair):
    pair.start()
    pair.pump()
    return pair


class FastReconnectTests(TestCase):
    """A lossless session resumed without cephx, in both modes."""

    def _resume(self, mode):
        peers = Peers(mode)
        peers.first_session()
        session = peers.sessions.get(peers.session.client_cookie)
        self.assertEqual(session.resume_key, peers.session.resume_key)
        self.assertTrue(session.resume_key)  # the cephx session key, on both sides
        self.assertGreater(session.resume_expires, time.time())
        # the client knows its ticket's end too (its own clock)
        self.assertGreater(peers.session.resume_expires, time.time())
        # messages sent while no connection carried the session
        for n in (3, 4, 5):
            peers.session.pending.append(numbered(n))
        pair = run(peers.pair())
        self.assertIs(pair.client.state, State.READY)
        self.assertIs(pair.server.state, State.READY)
        self.assertTrue(pair.client.fast_reconnected)
        self.assertTrue(pair.server.fast_reconnected)
        self.assertEqual(pair.client.con_mode, mode)
        self.assertEqual(pair.server.decision, Decision.FAST_RECONNECT)
        self.assertEqual(pair.client.auth_method, AuthMethod.MSGR2TX_RESUME)
        # the queued messages rode in the request (early data), nothing after
        self.assertEqual(pair.client.early_messages, 3)
        self.assertEqual(pair.events_of("server", E.FastReconnectAccepted), [E.FastReconnectAccepted(3)])
        peers.collect(pair)
        self.assertEqual(peers.received, [1, 2, 3, 4, 5])
        sent_after = [t for t in _tags(pair.wire_c2s, pair.client.rev1, mode) if t == Tag.MESSAGE]
        self.assertEqual(sent_after, [])
        # no cephx frames: one AUTH_REQUEST, no AUTH_REPLY_MORE, no session frames
        self.assertNotIn(Tag.AUTH_REPLY_MORE, _tags(pair.wire_s2c, pair.client.rev1, ConnectionMode.CRC, 2))
        # and the session goes on
        pair.client.send_message(numbered(6))
        pair.server.send_message(numbered(100))
        pair.pump()
        peers.collect(pair)
        self.assertEqual(peers.received, [1, 2, 3, 4, 5, 6])
        self.assertEqual([number(e.message) for e in pair.events_of("client", E.MessageReceived)], [100])
        return peers, pair

    def test_secure(self):
        return self._resume(ConnectionMode.SECURE)

    def test_crc(self):
        return self._resume(ConnectionMode.CRC)

    def test_new_connection_secrets_each_time(self):
        # the secure mode keys come from both randoms: never the same twice
        peers = Peers()
        peers.first_session()
        keys = []
        for _ in range(3):
            pair = run(peers.pair())
            self.assertTrue(pair.client.fast_reconnected)
            keys.append(pair.client._session_key)
            self.assertEqual(pair.server._session_key, pair.client._session_key)
            pair.break_link()
        self.assertEqual(len(set(keys)), 3)
        self.assertNotIn(peers.session.resume_key, keys)

    def test_unacked_replayed_in_order_without_duplicates(self):
        # messages the server got but did not acknowledge ride again, and are dropped as duplicates
        peers = Peers()
        pair = peers.pair()
        pair.handshake()
        for n in (1, 2, 3):
            pair.client.send_message(numbered(n))
        # the server reads them; its ACK is lost with the link
        pair.pump(s2c=False)
        peers.collect(pair)
        pair.break_link()
        self.assertEqual([s for s, _ in peers.session.unacked], [1, 2, 3])
        peers.session.pending.append(numbered(4))
        pair = run(peers.pair())
        self.assertTrue(pair.client.fast_reconnected)
        self.assertEqual(pair.client.early_messages, 4)
        peers.collect(pair)
        self.assertEqual(peers.received, [1, 2, 3, 4])
        self.assertEqual(list(peers.session.unacked), [])

    def test_early_data_capped(self):
        # 40 KiB messages: one fits in the 64 KiB of early data, the rest go after READY
        peers = Peers()
        peers.first_session(messages=())
        for n in (1, 2, 3):
            peers.session.pending.append(numbered(n, size=40 << 10))
        pair = run(peers.pair())
        self.assertTrue(pair.client.fast_reconnected)
        self.assertEqual(pair.client.early_messages, 1)
        peers.collect(pair)
        self.assertEqual(peers.received, [1, 2, 3])

    def test_first_flight_carries_the_resume(self):
        # with the peer's banner known, banner + HELLO + AUTH_REQUEST(resume) + early data in one write
        peers = Peers()
        peers.first_session()
        peers.session.pending.append(numbered(3))
        pair = peers.pair()
        assume = KnownPeer(peers.server_config.msgr2_supported, 0, EntityType.MON)
        handler = pair.client_auth[0]
        pair.client.initiate(assume, (handler.method, handler.build_request(EntityType.MON),
                                      (ConnectionMode.SECURE,)))
        pair.server.initiate()
        first = b"".join(pair.client.data_to_send())
        tags = _tags(first, True, ConnectionMode.CRC)
        self.assertEqual(tags, [Tag.HELLO, Tag.AUTH_REQUEST])
        pair.client._out.insert(0, first)
        pair.pump()
        self.assertTrue(pair.client.fast_reconnected)
        self.assertTrue(pair.client.speculated)
        peers.collect(pair)
        self.assertEqual(peers.received, [1, 2, 3])

    def test_not_tried_without_the_peer_bit(self):
        # a server with the bit off (or a Ceph server): cephx and SESSION_RECONNECT, as before
        peers = Peers(server_config=ConnectionConfig(entity_type=EntityType.MON, entity_num=0, lossy=False,
                                                     modes=(ConnectionMode.SECURE,), fast_reconnect=False))
        peers.first_session()
        pair = run(peers.pair())
        self.assertIs(pair.client.state, State.READY)
        self.assertFalse(pair.client.fast_reconnected)
        self.assertEqual(pair.client.auth_method, AuthMethod.CEPHX)
        self.assertEqual(pair.server.decision, Decision.RECONNECT)

    def test_secrets_stay_out_of_reprs(self):
        peers = Peers()
        peers.first_session()
        pair = run(peers.pair())
        key = peers.session.resume_key
        request, _ = R.ResumeRequest.decode(_resume_payload(pair)), None
        for text in (repr(peers.session), repr(pair.client), repr(request), repr(pair.client.session),
                     repr(R.connection_keys(key, request, bytes(32))), repr(pair.events_of("client", E.Event))):
            self.assertNotIn(key.hex(), text)
            self.assertNotIn(request.client_random.hex(), text)
            self.assertNotIn(repr(key)[2:-1], text)


def _resume_payload(pair):
    """The fast reconnect request payload the client of C{pair} sent (crc-framed, before any cipher)."""
    from msgr2tx.core import frames as F
    from msgr2tx.core.connection import BANNER_SIZE
    from msgr2tx.core.framing import FrameReader, ReceiveBuffer
    reader = FrameReader(True, True, 1 << 20, 1 << 20, 1 << 20)
    rbuf = ReceiveBuffer()
    rbuf.append(bytes(pair.wire_c2s[BANNER_SIZE:]))
    while True:
        frame = reader.next_frame(rbuf)
        if frame.tag == Tag.AUTH_REQUEST:
            return F.decode_frame(frame.tag, frame.segments).payload


def _tags(data, rev1, mode, limit=None):
    """The frame tags in C{data} (a banner first), as far as they can be read in the clear."""
    from msgr2tx.core.connection import BANNER_SIZE
    from msgr2tx.core.framing import FrameReader, ReceiveBuffer
    reader = FrameReader(rev1, True, 1 << 24, 1 << 24, 1 << 24)
    rbuf = ReceiveBuffer()
    rbuf.append(bytes(data[BANNER_SIZE:]))
    tags = []
    while limit is None or len(tags) < limit:
        try:
            frame = reader.next_frame(rbuf)
        except ProtocolError:
            break  # encrypted from here on
        if frame is None:
            break
        tags.append(Tag(frame.tag))
        if frame.tag in (Tag.AUTH_DONE, Tag.AUTH_SIGNATURE) and mode == ConnectionMode.SECURE:
            break
    return tags


class SecurityReviewTests(TestCase):
    """
    Each attack on the fast reconnect is refused with a typed error on the
    server (and the same on the client, read from AUTH_BAD_METHOD's errno);
    the client falls back to cephx on the same connection and every message
    still arrives exactly once.
    """

    def _fallback(self, peers, pair, error_type):
        self.assertIsInstance(pair.server.resume_refusal, error_type)
        self.assertIsInstance(pair.client.resume_refusal, error_type)
        refused = pair.events_of("client", E.FastReconnectRefused)
        self.assertEqual([type(e.error) for e in refused], [error_type])
        self.assertNotIn(Decision.FAST_RECONNECT, pair.server.decisions)
        # cephx on the same connection
        self.assertIs(pair.client.state, State.READY)
        self.assertFalse(pair.client.fast_reconnected)
        self.assertEqual(pair.client.auth_method, AuthMethod.CEPHX)
        peers.collect(pair)

    def test_replayed_resume(self):
        peers = Peers()
        peers.first_session()
        peers.session.pending.append(numbered(3))
        pair = run(peers.pair())
        self.assertTrue(pair.client.fast_reconnected)
        peers.collect(pair)
        # an attacker sends the captured bytes again on a new connection
        attacker = peers.pair().server
        attacker.initiate()
        with self.assertRaises(ProtocolError) as caught:
            attacker.receive_data(bytes(pair.wire_c2s))
        events = caught.exception.events
        refused = [e for e in events if isinstance(e, E.FastReconnectRefused)]
        self.assertEqual(len(refused), 1)
        self.assertIsInstance(refused[0].error, ResumeReplayed)
        self.assertIsInstance(attacker.resume_refusal, ResumeReplayed)
        # nothing delivered twice, the session stays with the real connection
        self.assertEqual([e for e in events if isinstance(e, E.MessageReceived)], [])
        self.assertIs(peers.sessions.get(peers.session.client_cookie).connection, pair.server)
        self.assertEqual(peers.received, [1, 2, 3])

    def test_stale_global_seq(self):
        peers = Peers()
        peers.first_session()
        run(peers.pair()).break_link()
        peers.session.pending.append(numbered(3))
        # a client whose global_seq went backwards (an old request, or a restarted counter)
        pair = run(peers.pair(client_seqs=GlobalSeq(0)))
        self._fallback(peers, pair, ResumeStale)
        # cephx, then SESSION_RECONNECT: the server asks for a higher global_seq
        self.assertEqual(pair.server.decisions[-2:], [Decision.RECONNECT_STALE_GLOBAL_SEQ, Decision.RECONNECT])
        self.assertEqual(peers.received, [1, 2, 3])

    def test_expired_ticket(self):
        peers = Peers()
        peers.first_session()
        expires = peers.sessions.get(peers.session.client_cookie).resume_expires
        self.assertGreater(expires, time.time())
        peers.session.pending.append(numbered(3))
        pair = peers.pair()
        pair.server.clock = lambda: expires + 1  # the server's clock is past the ticket's end
        run(pair)
        self._fallback(peers, pair, ResumeExpired)
        self.assertEqual(pair.server.decision, Decision.RECONNECT)
        self.assertEqual(peers.received, [1, 2, 3])
        # the new cephx exchange gave the session a fresh key
        self.assertGreater(peers.sessions.get(peers.session.client_cookie).resume_expires, expires)

    def test_client_does_not_try_an_expired_ticket(self):
        peers = Peers()
        peers.first_session()
        peers.session.resume_expires = time.time() - 1
        pair = run(peers.pair())
        self.assertFalse(pair.client.fast_reconnected)
        self.assertIsNone(pair.client.resume_refusal)
        self.assertEqual(pair.client.auth_method, AuthMethod.CEPHX)

    def _tampered(self, offset):
        peers = Peers()
        peers.first_session()
        peers.session.pending.append(numbered(3))
        pair = peers.pair()
        honest = pair.client._resume_request

        def tamper(modes):
            payload = bytearray(honest(modes))
            payload[offset] ^= 0x01
            return bytes(payload)
        pair.client._resume_request = tamper
        run(pair)
        self._fallback(peers, pair, ResumeTampered)
        self.assertEqual(peers.received, [1, 2, 3])

    def test_tampered_msg_seq(self):
        return self._tampered(1 + 8 + 8 + 8 + 8)  # the first byte of msg_seq

    def test_tampered_early_data(self):
        return self._tampered(R._REQUEST_HEAD.size + 4 + 3)

    def test_tampered_proof(self):
        return self._tampered(-1)

    def test_wrong_key(self):
        peers = Peers()
        peers.first_session()
        peers.session.resume_key = bytes(len(peers.session.resume_key))
        pair = run(peers.pair())
        self._fallback(peers, pair, ResumeTampered)

    def test_server_lost_the_session(self):
        peers = Peers()
        peers.first_session()
        peers.session.pending.append(numbered(3))
        # a restarted server: no sessions
        pair = run(peers.pair(sessions=SessionTable()))
        self._fallback(peers, pair, ResumeUnknownSession)
        # then, as for SESSION_RECONNECT, the server resets the session
        self.assertEqual(pair.server.decisions, [Decision.RECONNECT_UNKNOWN, Decision.IDENT_NEW])
        self.assertEqual(len(pair.events_of("client", E.SessionResetReceived)), 1)

    def test_reply_without_the_key_is_refused_by_the_client(self):
        # a server (or a man in the middle) that does not hold the key cannot forge the reply
        peers = Peers()
        peers.first_session()
        pair = peers.pair()
        real = R.reply_proof
        calls = []

        def forged(key, *args):
            calls.append(key)
            # the server's call (the first) proves with another key; the client checks with the real one
            return real(b"not the key" if len(calls) == 1 else key, *args)
        self.patch(R, "reply_proof", forged)
        pair.start()
        with self.assertRaises(ResumeFailed):
            pair.pump()
        self.assertEqual(len(calls), 2)
        self.assertIs(pair.client.state, State.CLOSED)
        self.assertFalse(pair.client.fast_reconnected)

    def _strip(self, data, offset, start):
        """C{data} (bytes at stream offset C{start}) with bit 48 of the banner's supported mask cleared."""
        pos = 10 + 6 - start  # u64 supported at banner offset 10; bit 48 is in its byte 6
        if 0 <= pos < len(data):
            data = bytearray(data)
            data[pos] &= ~0x01 & 0xFF
            data = bytes(data)
        return data

    def _pump_stripping(self, pair, direction):
        sent = {"c2s": 0, "s2c": 0}
        for _ in range(100):
            moved = False
            for way, src, dst, log in (("c2s", pair.client, pair.server, pair.server_events),
                                       ("s2c", pair.server, pair.client, pair.client_events)):
                out = b"".join(src.data_to_send())
                if not out or dst.state is State.CLOSED:
                    continue
                moved = True
                if way == direction:
                    out = self._strip(out, 0, sent[way])
                sent[way] += len(out)
                pair._handle(dst, dst.receive_data(out), log)
            if not moved:
                return

    def test_downgrade_client_banner_stripped(self):
        # a man in the middle clears the bit in the client's banner: the
        # server refuses the resume it was not offered, the client falls
        # back to cephx, and the server's AUTH_SIGNATURE (over the banner it
        # received) does not match what the client sent
        peers = Peers()
        peers.first_session()
        pair = peers.pair()
        pair.start()
        with self.assertRaises(SignatureMismatch):
            self._pump_stripping(pair, "c2s")
        self.assertIsInstance(pair.server.resume_refusal, ResumeNotNegotiated)
        self.assertIsInstance(pair.client.resume_refusal, ResumeNotNegotiated)
        self.assertIs(pair.client.state, State.CLOSED)

    def test_downgrade_server_banner_stripped(self):
        # the bit cleared in the server's banner: the client does not try a
        # resume, authenticates with cephx, and its AUTH_SIGNATURE (over the
        # banner it received) does not match what the server sent
        peers = Peers()
        peers.first_session()
        pair = peers.pair()
        pair.start()
        with self.assertRaises(SignatureMismatch):
            self._pump_stripping(pair, "s2c")
        self.assertEqual(pair.client.auth_method, AuthMethod.CEPHX)
        self.assertIs(pair.server.state, State.CLOSED)

    def test_refused_when_server_has_it_off(self):
        # our server with fast_reconnect=False, reached with a stale banner cache: AUTH_BAD_METHOD, then cephx
        peers = Peers()
        peers.first_session()
        server_off = ConnectionConfig(entity_type=EntityType.MON, entity_num=0, lossy=False,
                                      modes=(ConnectionMode.SECURE,), fast_reconnect=False)
        peers.server_config = server_off
        pair = peers.pair()
        assume = KnownPeer(ConnectionConfig().msgr2_supported, 0, EntityType.MON)
        handler = pair.client_auth[0]
        pair.client.initiate(assume, (handler.method, handler.build_request(EntityType.MON),
                                      (ConnectionMode.SECURE,)))
        pair.server.initiate()
        pair.pump()
        self.assertIsInstance(pair.client.resume_refusal, ResumeNotNegotiated)
        self.assertIs(pair.client.state, State.READY)
        self.assertEqual(pair.client.auth_method, AuthMethod.CEPHX)
        self.assertEqual(pair.server.decision, Decision.RECONNECT)
