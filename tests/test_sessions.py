"""
Lossless sessions across broken connections, driven in memory: replay of
unacknowledged messages, duplicates dropped, resets, retries, takeover.
Every scenario checks exactly-once delivery and the exact event counts.
"""

from twisted.trial.unittest import SynchronousTestCase

from msgr2tx.auth.none import NoneClientHandler, NoneServerHandler
from msgr2tx.core import events as E
from msgr2tx.core import frames as F
from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.connection import State
from msgr2tx.core.constants import Tag
from msgr2tx.core.encoding import EntityName, EntityType
from msgr2tx.core.messages import GenericMessage
from msgr2tx.core.session import GlobalSeq, Session, SessionTable
from msgr2tx.testing import CorePair

ADMIN = EntityName.parse("client.admin")


def numbered(i):
    return GenericMessage(0x7000, b"msg-%d" % i)


class World:
    """One lossless client session and one stateful server, across connections."""

    def __init__(self, rev1=True):
        self.rev1 = rev1
        self.client_session = Session()
        self.client_seqs = GlobalSeq()
        self.server_seqs = GlobalSeq()
        self.table = SessionTable()
        self.server_auth = NoneServerHandler()
        self.pairs = []
        self.cookie = 0x1111

    def connect(self, handshake=True, client_session=None, client_nonce=1234):
        pair = CorePair(
            [NoneClientHandler(ADMIN)], [self.server_auth],
            client_config=ConnectionConfig(lossy=False, revision1=self.rev1),
            server_config=ConnectionConfig(entity_type=EntityType.OSD, entity_num=3, lossy=False,
                                           revision1=self.rev1),
            client_session=client_session or self.client_session, sessions=self.table,
            client_global_seqs=self.client_seqs, server_global_seqs=self.server_seqs,
            client_cookie=self.cookie, server_cookie=0x2222 + len(self.pairs),
            client_nonce=client_nonce)
        self.pairs.append(pair)
        if handshake:
            pair.handshake()
        return pair

    def delivered_to_server(self):
        return [e.message.front for p in self.pairs for e in p.events_of("server", E.MessageReceived)]

    def delivered_to_client(self):
        return [e.message.front for p in self.pairs for e in p.events_of("client", E.MessageReceived)]

    def count(self, side, kind):
        return sum(len(p.events_of(side, kind)) for p in self.pairs)


class ReconnectTests(SynchronousTestCase):

    def assertExactlyOnce(self, delivered, n):
        self.assertEqual(delivered, [b"msg-%d" % i for i in range(1, n + 1)])

    def _first(self, world):
        pair = world.connect()
        (ready,) = pair.events_of("client", E.Ready)
        self.assertFalse(ready.lossy)
        self.assertFalse(ready.reconnected)
        self.assertEqual(world.client_session.server_cookie, 0x2222)
        self.assertEqual(world.client_session.client_cookie, 0x1111)
        self.assertEqual(len(world.table), 1)
        return pair

    def test_lossless_handshake(self):
        for rev1 in (True, False):
            self._first(World(rev1))

    def test_replay_of_messages_the_server_never_got(self):
        for rev1 in (True, False):
            world = World(rev1)
            pair = self._first(world)
            for i in range(1, 4):
                pair.client.send_message(numbered(i))
            pair.pump()
            for i in range(4, 8):
                pair.client.send_message(numbered(i))
            pair.pump(c2s=False)          # 4..7 are lost on the way
            pair.client.connection_lost()  # the server has not noticed yet
            again = world.connect()
            (ready,) = again.events_of("client", E.Ready)
            self.assertTrue(ready.reconnected)
            self.assertEqual(again.events_of("server", E.ConnectionReplaced)[0].old, pair.server)
            self.assertExactlyOnce(world.delivered_to_server(), 7)
            self.assertEqual(world.client_session.connect_seq, 1)
            self.assertEqual(len(world.table), 1)

    def test_no_duplicates_when_only_the_acks_were_lost(self):
        world = World()
        pair = self._first(world)
        for i in range(1, 6):
            pair.client.send_message(numbered(i))
        pair.pump(s2c=False)              # the server got them, its ACK is lost
        self.assertEqual(len(world.client_session.unacked), 5)
        pair.break_link()
        again = world.connect()
        self.assertExactlyOnce(world.delivered_to_server(), 5)
        # RECONNECT_OK carried in_seq 5: nothing to send again
        self.assertEqual(len(world.client_session.unacked), 0)
        self.assertFalse([f for f in _tags(again.wire_c2s, world.rev1) if f == Tag.MESSAGE])

    def test_replayed_duplicates_are_dropped(self):
        world = World()
        pair = self._first(world)
        for i in range(1, 4):
            pair.client.send_message(numbered(i))
        pair.pump(s2c=False)
        pair.break_link()
        again = world.connect(handshake=False)
        # make the client forget how far the server got: it will replay 1..3
        again.start()
        again.server.sessions.get(0x1111).in_seq = 3
        again.pump()
        again.client.send_message(numbered(4))
        again.pump()
        self.assertExactlyOnce(world.delivered_to_server(), 4)

    def test_server_to_client_replay(self):
        world = World()
        pair = self._first(world)
        for i in range(1, 6):
            pair.server.send_message(numbered(i))
        pair.pump(s2c=False)              # nothing reaches the client
        pair.break_link()
        world.connect()
        self.assertExactlyOnce(world.delivered_to_client(), 5)

    def test_several_reconnects_in_a_row(self):
        world = World()
        pair = self._first(world)
        sent = 0
        for round_ in range(10):
            for _ in range(3):
                sent += 1
                pair.client.send_message(numbered(sent))
            pair.pump(c2s=round_ % 2 == 0, s2c=round_ % 3 == 0)
            if round_ % 2:
                pair.break_link()
            else:
                pair.client.connection_lost()  # half-open on the server side
            pair = world.connect()
        pair.pump()
        self.assertExactlyOnce(world.delivered_to_server(), sent)
        self.assertEqual(world.client_session.connect_seq, 10)
        self.assertEqual(world.count("client", E.SessionResetReceived), 0)
        # only the half-open server connections had to be replaced
        self.assertEqual(world.count("server", E.ConnectionReplaced), 5)

    def test_unknown_session_is_reset_in_full_once(self):
        world = World()
        pair = self._first(world)
        pair.client.send_message(numbered(1))
        pair.pump(c2s=False)
        pair.break_link()
        world.table = SessionTable()        # the server restarted and forgot
        world.connect()
        self.assertEqual(world.count("client", E.SessionResetReceived), 1)
        # the reset dropped the queued message; a fresh session was made
        self.assertEqual(world.delivered_to_server(), [])
        self.assertNotEqual(world.client_session.client_cookie, 0x1111)
        self.assertEqual(world.client_session.out_seq, 0)

    def test_retry_when_the_server_saw_a_newer_connect_seq(self):
        world = World()
        pair = self._first(world)
        pair.break_link()
        world.table.get(0x1111).connect_seq = 7
        again = world.connect()
        self.assertEqual([f for f in _tags(again.wire_s2c, True) if f == Tag.SESSION_RETRY], [Tag.SESSION_RETRY])
        self.assertEqual(world.client_session.connect_seq, 8)
        self.assertIs(again.client.state, State.READY)

    def test_retry_global(self):
        world = World()
        pair = self._first(world)
        pair.break_link()
        world.table.get(0x1111).peer_global_seq = 50
        again = world.connect()
        self.assertIn(Tag.SESSION_RETRY_GLOBAL, _tags(again.wire_s2c, True))
        self.assertEqual(again.client.global_seq, 51)
        self.assertEqual(world.client_seqs.value, 51)
        self.assertIs(again.client.state, State.READY)

    def test_global_seq_grows_with_every_connection(self):
        world = World()
        seqs = []
        for _ in range(4):
            pair = world.connect()
            seqs.append(pair.client.global_seq)
            pair.break_link()
        self.assertEqual(seqs, [1, 2, 3, 4])

    def test_peer_restart_is_reported_once(self):
        world = World()
        self._first(world)
        # same address, a brand-new session (new cookie): the peer restarted
        world.cookie = 0x3333
        fresh = world.connect(client_session=Session())
        self.assertEqual(world.count("server", E.RemoteReset), 1)
        self.assertEqual(fresh.events_of("server", E.RemoteReset)[0].old_client_cookie, 0x1111)
        self.assertEqual(len(world.table), 1)
        self.assertIsNotNone(world.table.get(0x3333))

    def test_lossy_server_flag_wins(self):
        pair = CorePair([NoneClientHandler(ADMIN)], [NoneServerHandler()],
                        client_config=ConnectionConfig(lossy=False),
                        server_config=ConnectionConfig(entity_type=EntityType.MON, entity_num=0, lossy=True))
        pair.handshake()
        (ready,) = pair.events_of("client", E.Ready)
        self.assertTrue(ready.lossy)
        self.assertEqual(pair.client.session.server_cookie, 0)
        pair.client.send_message(numbered(1))
        self.assertEqual(len(pair.client.session.unacked), 0)

    def test_lossy_server_resets_reconnects(self):
        world = World()
        self._first(world)
        world.pairs[-1].break_link()
        # the server restarted as a stateless (lossy) server: it knows no session
        pair = CorePair([NoneClientHandler(ADMIN)], [NoneServerHandler()],
                        client_config=ConnectionConfig(lossy=False),
                        server_config=ConnectionConfig(entity_type=EntityType.MON, entity_num=0, lossy=True),
                        client_session=world.client_session, sessions=SessionTable())
        pair.handshake()
        self.assertEqual(len(pair.events_of("client", E.SessionResetReceived)), 1)


def _tags(wire, rev1):
    """The frame tags in a captured byte stream (crc mode)."""
    from msgr2tx.core.framing import FrameReader, ReceiveBuffer
    rbuf = ReceiveBuffer()
    rbuf.append(bytes(wire[26:]))
    reader = FrameReader(rev1)
    tags = []
    while True:
        frame = reader.next_frame(rbuf)
        if frame is None:
            return tags
        tags.append(frame.tag)


__all__ = ["World", "F"]
