"""
The accepting side's session decision table, one test per row.

Each row of Ceph's ProtocolV2::handle_client_ident /
handle_existing_connection / handle_reconnect (16.2 to 20.2), as msgr2tx
implements it (docs/protocol.md, "Session decision table"), is driven in
memory between a peer (a client core) and our server core whose session
table is set up for the row.  Every test asserts:

  - the row taken (L{Decision}) and the frame the server answers with;
  - the session the server keeps for the peer's address afterwards;
  - what each application hears: connected (READY), reset (a lossy
    session ended by a newer connection), remote reset (the peer came back
    as a new session; or, on the connecting side, a full SESSION_RESET),
    each exactly once or not at all;
  - that queued messages arrive exactly once where the row keeps them.
"""

from twisted.trial.unittest import SynchronousTestCase

from msgr2tx.auth.none import NoneClientHandler, NoneServerHandler
from msgr2tx.core import events as E
from msgr2tx.core import frames as F
from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.connection import Decision, Msgr2Connection, Role, State, addr_sort_key
from msgr2tx.core.constants import Tag
from msgr2tx.core.encoding import AddrType, EntityName, EntityType, entity_addr_t, entity_addrvec_t
from msgr2tx.core.features import CEPH_FEATURES_ALL, MSGR2_REQUIRED
from msgr2tx.core.framing import FrameReader, ReceiveBuffer
from msgr2tx.core.messages import GenericMessage
from msgr2tx.core.policy import Policy
from msgr2tx.core.session import GlobalSeq, Session, SessionTable
from msgr2tx.errors import MissingFeatures
from msgr2tx.testing import CLIENT_ADDR, SERVER_ADDR, CorePair

OSD3 = EntityName.parse("osd.3")
NONCE = 1234
#: the address our server learns for a peer that did not bind one: the IP
#: it sees, the peer's nonce, type ANY and port 0 (Ceph's learned_addr)
LEARNED = entity_addrvec_t((entity_addr_t(AddrType.ANY, NONCE, CLIENT_ADDR.host, 0),))
#: listening peers on either side of our server's address in Ceph's order
LOWER_PEER = entity_addrvec_t((entity_addr_t.parse("v2:127.0.0.1:3000/0"),))
HIGHER_PEER = entity_addrvec_t((entity_addr_t.parse("v2:127.0.0.1:6801/7"),))

SESSION_TAGS = {Tag.SERVER_IDENT, Tag.WAIT, Tag.SESSION_RESET, Tag.SESSION_RETRY, Tag.SESSION_RETRY_GLOBAL,
                Tag.SESSION_RECONNECT_OK, Tag.IDENT_MISSING_FEATURES}


def msg(text):
    return GenericMessage(0x7000, text)


def server_answers(pair):
    """The session-phase frames our server sent, decoded, in order (crc mode, rev1)."""
    rbuf = ReceiveBuffer()
    rbuf.append(bytes(pair.wire_s2c[26:]))
    reader = FrameReader(True)
    answers = []
    while True:
        frame = reader.next_frame(rbuf)
        if frame is None:
            return answers
        if frame.tag in SESSION_TAGS:
            answers.append(F.decode_frame(frame.tag, frame.segments))


class Bench:
    """Our server (policy given) and the sessions it holds, across connections."""

    def __init__(self, policy):
        self.policy = policy
        self.table = SessionTable()
        self.server_seqs = GlobalSeq(100)
        self.pairs = []

    def connect(self, session=None, gs=10, cookie=0x1111, client_policy=None, my_addrs=None,
                client_features=CEPH_FEATURES_ALL, handshake=True):
        pair = CorePair(
            [NoneClientHandler(EntityName.parse("osd.9"))], [NoneServerHandler()],
            client_config=ConnectionConfig(entity_type=EntityType.OSD, entity_num=9,
                                           policy=client_policy or Policy.lossless_peer(),
                                           my_addrs=my_addrs, features_supported=client_features),
            server_config=ConnectionConfig(entity_type=EntityType.OSD, entity_num=3, policy=self.policy),
            client_session=session, sessions=self.table,
            client_global_seqs=GlobalSeq(gs - 1), server_global_seqs=self.server_seqs,
            client_cookie=cookie, server_cookie=0x5000 + len(self.pairs), client_nonce=NONCE)
        self.pairs.append(pair)
        if handshake:
            pair.handshake()
        return pair

    def our_attempt(self, peer_key, queued=()):
        """
        Our own connection attempt to the peer, still in its handshake (the
        session a messenger registers for a peer it is connecting to).
        """
        session = Session()
        session.lossy = False
        session.peer_key = peer_key
        for m in queued:
            session.pending.append(m)
        attempt = Msgr2Connection(
            ConnectionConfig(entity_type=EntityType.OSD, entity_num=3, policy=self.policy,
                             my_addrs=entity_addrvec_t((SERVER_ADDR,))),
            Role.CLIENT, SERVER_ADDR, peer_key and entity_addrvec_t.parse(peer_key).addrs[0],
            session=session)
        attempt.state = State.SESSION_CONNECTING
        self.table.add(session)
        return session, attempt


def count(pair, side, kind, **fields):
    return len([e for e in pair.events_of(side, kind)
                if all(getattr(e, k) == v for k, v in fields.items())])


def delivered(pair, side):
    return [e.message.front for e in pair.events_of(side, E.MessageReceived)]


class DecisionTableMixin:

    def assertAnswer(self, pair, decision, *frames):
        """The first decision the server took, and its answers in order (type and fields)."""
        self.assertEqual(pair.server.decisions[0], decision)
        got = server_answers(pair)
        self.assertEqual(len(got), len(frames), got)
        for frame, expected in zip(got, frames):
            self.assertIsInstance(frame, expected[0])
            for name, value in expected[1].items():
                self.assertEqual(getattr(frame, name), value, (frame, name))

    def assertHears(self, pair, side, connected=0, reset=0, remote_reset=0, session_reset=0):
        """What the application on one side hears: each kind exactly as many times."""
        self.assertEqual(count(pair, side, E.Ready), connected, "connected")
        self.assertEqual(count(pair, side, E.ConnectionReplaced, session_lost=True), reset, "reset")
        self.assertEqual(count(pair, side, E.RemoteReset), remote_reset, "remote reset")
        self.assertEqual(count(pair, side, E.SessionResetReceived), session_reset, "session reset")


class ClientIdentRows(DecisionTableMixin, SynchronousTestCase):
    """CLIENT_IDENT: handle_client_ident, then handle_existing_connection."""

    def test_peer_lacks_required_features(self):
        bench = Bench(Policy.stateful_server())
        pair = bench.connect(handshake=False, client_features=CEPH_FEATURES_ALL & ~(MSGR2_REQUIRED & -MSGR2_REQUIRED))
        pair.start()
        self.assertRaises(MissingFeatures, pair.pump)
        self.assertEqual(pair.server.decision, Decision.IDENT_MISSING_FEATURES)
        (answer,) = server_answers(pair)
        self.assertIsInstance(answer, F.IdentMissingFeatures)
        self.assertEqual(len(bench.table), 0)
        self.assertHears(pair, "server")

    def test_lossy_client_of_a_stateless_server(self):
        bench = Bench(Policy.stateless_server())
        pair = bench.connect(client_policy=Policy.lossless_client())
        # the server's policy alone decides: the client asked for lossless
        self.assertAnswer(pair, Decision.IDENT_UNREGISTERED, (F.ServerIdent, {"flags": 1, "cookie": 0}))
        self.assertIsNone(bench.table.for_peer(str(LEARNED)))
        self.assertTrue(pair.client.session.lossy)
        self.assertHears(pair, "server", connected=1)
        self.assertHears(pair, "client", connected=1)

    def test_no_session_for_the_address(self):
        bench = Bench(Policy.stateful_server())
        pair = bench.connect(client_policy=Policy.lossy_client())
        # a lossy client of a stateful server gets a lossless session
        self.assertAnswer(pair, Decision.IDENT_NEW, (F.ServerIdent, {"flags": 0, "cookie": 0x5000}))
        self.assertIs(bench.table.for_peer(str(LEARNED)), pair.server.session)
        self.assertFalse(pair.client.session.lossy)
        self.assertHears(pair, "server", connected=1)
        self.assertHears(pair, "client", connected=1)

    def test_stale_global_seq_is_dropped_and_the_live_session_kept(self):
        bench = Bench(Policy.stateful_server())
        live = bench.connect(session=Session(), gs=10)
        live_session = live.server.session
        # an older attempt of the same session (same cookie, lower global_seq) arrives late
        stale = bench.connect(session=Session(), gs=5)
        self.assertEqual(stale.server.decision, Decision.IDENT_STALE)
        self.assertEqual(server_answers(stale), [])          # no frame: the connection is dropped
        self.assertIs(stale.server.state, State.CLOSED)
        self.assertEqual(count(stale, "server", E.ConnectionDone), 1)
        self.assertIs(bench.table.for_peer(str(LEARNED)), live_session)
        self.assertIs(live.server.state, State.READY)
        self.assertIs(live_session.connection, live.server)
        self.assertHears(stale, "server")
        self.assertHears(stale, "client")
        # the live connection still carries the session, once
        live.client.send_message(msg(b"after"))
        live.pump()
        self.assertEqual(delivered(live, "server"), [b"after"])

    def test_newer_connection_replaces_a_lossy_session(self):
        bench = Bench(Policy.stateless_registered_server())
        first = bench.connect(session=Session(), gs=10, client_policy=Policy.lossy_client())
        self.assertIs(bench.table.for_peer(str(LEARNED)), first.server.session)
        second = bench.connect(session=Session(), gs=11, client_policy=Policy.lossy_client())
        self.assertAnswer(second, Decision.IDENT_REPLACES_LOSSY, (F.ServerIdent, {"flags": 1}))
        self.assertIs(first.server.state, State.CLOSED)
        self.assertIs(bench.table.for_peer(str(LEARNED)), second.server.session)
        self.assertHears(second, "server", connected=1, reset=1)
        self.assertHears(second, "client", connected=1)
        # the registration ends with the connection
        second.server.connection_lost()
        self.assertIsNone(bench.table.for_peer(str(LEARNED)))

    def _restarted_peer(self, policy):
        bench = Bench(policy)
        first = bench.connect(session=Session(), gs=10, cookie=0x1111)
        kept = first.server.session
        first.server.send_message(msg(b"to-old-peer"))
        first.pump(s2c=False)                 # never reaches the old peer
        first.break_link()
        # the peer restarted: same address, a new session with a new cookie
        # (and a global_seq above the old one's, else it is the stale row)
        again = bench.connect(session=Session(), gs=11, cookie=0x2222)
        return bench, kept, again

    def test_peer_restarted_with_resetcheck(self):
        bench, kept, again = self._restarted_peer(Policy.stateful_server())
        self.assertAnswer(again, Decision.IDENT_PEER_RESTARTED_RESET, (F.ServerIdent, {"flags": 0, "cookie": 0x5001}))
        self.assertIs(bench.table.for_peer(str(LEARNED)), kept)
        self.assertIs(again.server.session, kept)
        self.assertEqual((kept.client_cookie, kept.server_cookie), (0x2222, 0x5001))
        self.assertEqual(again.events_of("server", E.RemoteReset)[0].old_client_cookie, 0x1111)
        self.assertHears(again, "server", connected=1, remote_reset=1)
        self.assertHears(again, "client", connected=1)
        # the old session's queue went with it
        self.assertEqual(delivered(again, "client"), [])

    def test_peer_restarted_without_resetcheck(self):
        bench, kept, again = self._restarted_peer(Policy.lossless_peer())
        self.assertAnswer(again, Decision.IDENT_PEER_RESTARTED_KEEP, (F.ServerIdent, {"flags": 0, "cookie": 0x5001}))
        self.assertIs(bench.table.for_peer(str(LEARNED)), kept)
        self.assertEqual(kept.client_cookie, 0x2222)
        self.assertHears(again, "server", connected=1)
        self.assertHears(again, "client", connected=1)
        # lossless_peer keeps what it queued for the peer and sends it, once
        self.assertEqual(delivered(again, "client"), [b"to-old-peer"])

    def test_same_client_cookie_resumes_the_establishment(self):
        bench = Bench(Policy.stateful_server())
        client_session = Session()
        first = bench.connect(session=client_session, gs=10)
        kept = first.server.session
        first.server.send_message(msg(b"queued"))
        first.pump(s2c=False)
        first.break_link()
        # as if our SERVER_IDENT had never reached the peer: it sends CLIENT_IDENT again
        client_session.server_cookie = 0
        again = bench.connect(session=client_session, gs=11)
        self.assertAnswer(again, Decision.IDENT_INTERRUPTED, (F.ServerIdent, {"flags": 0, "cookie": 0x5001}))
        self.assertIs(bench.table.for_peer(str(LEARNED)), kept)
        self.assertEqual(kept.client_cookie, 0x1111)
        self.assertHears(again, "server", connected=1)
        self.assertHears(again, "client", connected=1)
        self.assertEqual(delivered(again, "client"), [b"queued"])

    def test_session_in_standby_is_reused(self):
        bench = Bench(Policy.stateful_server())
        # a lossy-policy client made a lossless session without a client cookie
        first = bench.connect(session=Session(), gs=10, client_policy=Policy.lossy_client())
        kept = first.server.session
        self.assertEqual((kept.client_cookie, bool(kept.server_cookie)), (0, True))
        first.break_link()
        again = bench.connect(session=Session(), gs=11, cookie=0x3333)
        self.assertAnswer(again, Decision.IDENT_REUSE, (F.ServerIdent, {"flags": 0, "cookie": 0x5001}))
        self.assertIs(bench.table.for_peer(str(LEARNED)), kept)
        self.assertEqual(kept.client_cookie, 0x3333)
        self.assertHears(again, "server", connected=1)
        self.assertHears(again, "client", connected=1)

    def test_connect_race_incoming_wins(self):
        self.assertLess(addr_sort_key(LOWER_PEER.addrs[0]), addr_sort_key(SERVER_ADDR))
        bench = Bench(Policy.lossless_peer())
        ours, attempt = bench.our_attempt(str(LOWER_PEER), queued=[msg(b"ours-1"), msg(b"ours-2")])
        pair = bench.connect(session=Session(), gs=10, my_addrs=LOWER_PEER)
        self.assertAnswer(pair, Decision.IDENT_RACE_INCOMING_WINS, (F.ServerIdent, {"flags": 0}))
        # our attempt is dropped; its session, with what we queued, goes on the peer's connection
        self.assertIs(attempt.state, State.CLOSED)
        self.assertIs(bench.table.for_peer(str(LOWER_PEER)), ours)
        self.assertIs(pair.server.session, ours)
        self.assertEqual(count(pair, "server", E.RaceWon), 1)
        self.assertEqual(delivered(pair, "client"), [b"ours-1", b"ours-2"])
        self.assertHears(pair, "server", connected=1)
        self.assertHears(pair, "client", connected=1)

    def test_connect_race_incoming_wins_against_a_server_policy(self):
        # whatever the addresses, a server side never makes the peer wait
        bench = Bench(Policy.stateful_server())
        ours, attempt = bench.our_attempt(str(HIGHER_PEER))
        pair = bench.connect(session=Session(), gs=10, my_addrs=HIGHER_PEER)
        self.assertAnswer(pair, Decision.IDENT_RACE_INCOMING_WINS, (F.ServerIdent, {"flags": 0}))
        self.assertIs(attempt.state, State.CLOSED)
        self.assertHears(pair, "server", connected=1)

    def test_connect_race_ours_wins(self):
        self.assertGreater(addr_sort_key(HIGHER_PEER.addrs[0]), addr_sort_key(SERVER_ADDR))
        bench = Bench(Policy.lossless_peer())
        ours, attempt = bench.our_attempt(str(HIGHER_PEER), queued=[msg(b"ours")])
        pair = bench.connect(session=Session(), gs=10, my_addrs=HIGHER_PEER)
        self.assertAnswer(pair, Decision.IDENT_RACE_EXISTING_WINS, (F.Wait, {}))
        # our attempt goes on (the I/O layer is told to make sure of it); nothing changed hands
        self.assertEqual(pair.events_of("server", E.WaitSent), [E.WaitSent(str(HIGHER_PEER))])
        self.assertIs(attempt.state, State.SESSION_CONNECTING)
        self.assertIs(bench.table.for_peer(str(HIGHER_PEER)), ours)
        self.assertIs(ours.connection, attempt)
        self.assertEqual(len(ours.pending), 1)
        # the peer closes and waits for our connection
        self.assertTrue(pair.client.waited)
        self.assertIs(pair.client.state, State.CLOSED)
        self.assertEqual(count(pair, "client", E.WaitReceived), 1)
        self.assertHears(pair, "server")
        self.assertHears(pair, "client")


class SessionReconnectRows(DecisionTableMixin, SynchronousTestCase):
    """SESSION_RECONNECT: handle_reconnect."""

    def _established(self, policy, my_addrs=None):
        """A lossless session, then a broken link; the peer has one message queued."""
        bench = Bench(policy)
        client_session = Session()
        first = bench.connect(session=client_session, gs=10, my_addrs=my_addrs)
        first.break_link()
        client_session.pending.append(msg(b"queued"))
        return bench, client_session, first.server.session

    def _resume(self, bench, client_session, my_addrs=None, gs=20):
        pair = bench.connect(session=client_session, gs=gs, handshake=False, my_addrs=my_addrs)
        pair.start()
        pair.pump()
        return pair

    def test_no_session_for_the_address(self):
        bench, client_session, _ = self._established(Policy.stateful_server())
        bench.table = SessionTable()              # we restarted and know nothing
        pair = self._resume(bench, client_session)
        self.assertEqual(pair.server.decisions, [Decision.RECONNECT_UNKNOWN, Decision.IDENT_NEW])
        self.assertAnswer(pair, Decision.RECONNECT_UNKNOWN, (F.SessionReset, {"full": True}), (F.ServerIdent, {}))
        # a full reset: the peer drops its queue and starts a new session
        self.assertEqual(delivered(pair, "server"), [])
        self.assertNotEqual(client_session.client_cookie, 0x1111)
        self.assertIs(bench.table.for_peer(str(LEARNED)), pair.server.session)
        self.assertHears(pair, "client", connected=1, session_reset=1)
        self.assertEqual(count(pair, "client", E.SessionResetReceived, full=True), 1)
        self.assertHears(pair, "server", connected=1)

    def _other_session(self, policy, full):
        bench, client_session, kept = self._established(policy)
        kept_cookie = 0x9999
        bench.table.remove(kept)
        kept.client_cookie = kept_cookie       # we reset it meanwhile: it is not the peer's session
        bench.table.add(kept)
        pair = self._resume(bench, client_session)
        self.assertAnswer(pair, Decision.RECONNECT_OTHER_SESSION, (F.SessionReset, {"full": full}),
                          (F.ServerIdent, {}))
        self.assertEqual(count(pair, "client", E.SessionResetReceived, full=full), 1)
        self.assertHears(pair, "client", connected=1, session_reset=1)
        self.assertIs(bench.table.for_peer(str(LEARNED)), kept)
        return pair

    def test_other_client_cookie_with_resetcheck(self):
        pair = self._other_session(Policy.stateful_server(), full=True)
        # a full reset drops the peer's queue
        self.assertEqual(delivered(pair, "server"), [])

    def test_other_client_cookie_without_resetcheck(self):
        pair = self._other_session(Policy.lossless_peer(), full=False)
        # a partial reset keeps it: the message arrives once on the new session
        self.assertEqual(delivered(pair, "server"), [b"queued"])

    def test_we_never_got_the_server_ident(self):
        """
        We connected to the peer and sent CLIENT_IDENT; the peer's
        SERVER_IDENT never reached us; now the peer reconnects to us.
        """
        bench = Bench(Policy.lossless_peer())
        ours, attempt = bench.our_attempt(str(HIGHER_PEER), queued=[msg(b"ours")])
        attempt.close()
        ours.client_cookie = 0x1111            # our CLIENT_IDENT's cookie; no server cookie
        bench.table.add(ours)
        peer_session = Session(0x1111)          # the peer's view: it answered with its cookie
        peer_session.server_cookie = 0x7777
        peer_session.lossy = False
        peer_session.pending.append(msg(b"theirs"))
        pair = self._resume(bench, peer_session, my_addrs=HIGHER_PEER)
        self.assertEqual(pair.server.decisions, [Decision.RECONNECT_NOT_ESTABLISHED, Decision.IDENT_INTERRUPTED])
        self.assertAnswer(pair, Decision.RECONNECT_NOT_ESTABLISHED, (F.SessionReset, {"full": False}),
                          (F.ServerIdent, {}))
        # not a full reset: neither side loses what it queued
        self.assertEqual(delivered(pair, "server"), [b"theirs"])
        self.assertEqual(delivered(pair, "client"), [b"ours"])
        self.assertIs(bench.table.for_peer(str(HIGHER_PEER)), ours)
        self.assertEqual(count(pair, "client", E.SessionResetReceived, full=False), 1)
        self.assertHears(pair, "client", connected=1, session_reset=1)
        self.assertHears(pair, "server", connected=1)

    def test_stale_global_seq(self):
        bench, client_session, kept = self._established(Policy.stateful_server())
        kept.peer_global_seq = 50
        pair = self._resume(bench, client_session, gs=20)
        self.assertAnswer(pair, Decision.RECONNECT_STALE_GLOBAL_SEQ, (F.SessionRetryGlobal, {"global_seq": 50}),
                          (F.SessionReconnectOk, {}))
        self.assertEqual(pair.server.decisions, [Decision.RECONNECT_STALE_GLOBAL_SEQ, Decision.RECONNECT])
        self.assertEqual(pair.client.global_seq, 51)
        self.assertIs(pair.server.session, kept)
        self.assertEqual(delivered(pair, "server"), [b"queued"])
        self.assertHears(pair, "client", connected=1)
        self.assertHears(pair, "server", connected=1)

    def test_stale_connect_seq(self):
        bench, client_session, kept = self._established(Policy.stateful_server())
        kept.connect_seq = 7
        pair = self._resume(bench, client_session)
        self.assertAnswer(pair, Decision.RECONNECT_STALE_CONNECT_SEQ, (F.SessionRetry, {"connect_seq": 7}),
                          (F.SessionReconnectOk, {}))
        self.assertEqual(client_session.connect_seq, 8)
        self.assertIs(pair.server.session, kept)
        self.assertEqual(delivered(pair, "server"), [b"queued"])
        self.assertHears(pair, "client", connected=1)
        self.assertHears(pair, "server", connected=1)

    def test_reconnect_race_ours_wins(self):
        bench, client_session, kept = self._established(Policy.lossless_peer(), my_addrs=HIGHER_PEER)
        kept.connect_seq = 1                   # we are reconnecting too: our attempt counted one
        pair = self._resume(bench, client_session, my_addrs=HIGHER_PEER)
        self.assertAnswer(pair, Decision.RECONNECT_RACE_EXISTING_WINS, (F.Wait, {}))
        self.assertEqual(pair.events_of("server", E.WaitSent), [E.WaitSent(str(HIGHER_PEER))])
        self.assertTrue(pair.client.waited)
        self.assertIs(bench.table.for_peer(str(HIGHER_PEER)), kept)
        self.assertEqual(delivered(pair, "server"), [])
        self.assertEqual(len(client_session.pending), 1)   # it waits for our connection
        self.assertHears(pair, "client")
        self.assertHears(pair, "server")

    def test_reconnect_race_incoming_wins(self):
        bench, client_session, kept = self._established(Policy.lossless_peer(), my_addrs=LOWER_PEER)
        kept.connect_seq = 1
        pair = self._resume(bench, client_session, my_addrs=LOWER_PEER)
        self.assertAnswer(pair, Decision.RECONNECT_RACE_INCOMING_WINS, (F.SessionReconnectOk, {}))
        self.assertIs(pair.server.session, kept)
        self.assertEqual(delivered(pair, "server"), [b"queued"])
        self.assertHears(pair, "client", connected=1)
        self.assertHears(pair, "server", connected=1)

    def test_reconnect(self):
        bench, client_session, kept = self._established(Policy.stateful_server())
        pair = self._resume(bench, client_session)
        self.assertAnswer(pair, Decision.RECONNECT, (F.SessionReconnectOk, {"msg_seq": 0}))
        self.assertIs(pair.server.session, kept)
        self.assertEqual(kept.connect_seq, 1)
        self.assertEqual(delivered(pair, "server"), [b"queued"])
        self.assertEqual(count(pair, "client", E.Ready, reconnected=True), 1)
        self.assertHears(pair, "client", connected=1)
        self.assertHears(pair, "server", connected=1)

