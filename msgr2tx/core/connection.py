"""
The msgr2 connection state machine, for both roles, with no I/O.

Bytes go in through L{Msgr2Connection.receive_data}, which returns events.
Verbs (C{send_*}, L{Msgr2Connection.auth_finish}) only queue frames; the I/O
layer collects them with L{Msgr2Connection.data_to_send}.

Every state lists the frame tags it accepts in L{TRANSITIONS}; a frame whose
tag is not listed for the current state is a L{UnexpectedFrame} error.  The
documentation's state diagram is generated from that table.
"""

import enum
import hashlib
import hmac
import secrets
import struct
import time
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from msgr2tx.core import frames as F
from msgr2tx.core import compression as C
from msgr2tx.core import resume as R
from msgr2tx.core import events as E
from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.crypto import RxCipher, TxCipher, split_connection_secret
from msgr2tx.core.constants import (
    BANNER_PAYLOAD_LEN, BANNER_PREFIX, IDENT_FLAG_LOSSY, MSGR1_BANNER_PREFIX,
    AuthMethod, ConnectionMode, Msgr2Feature, Tag,
)
from msgr2tx.core.encoding import (
    AddrType, EntityType, entity_addr_t, entity_addrvec_t, entity_name_t, utime_t,
)
from msgr2tx.core.framing import FrameReader, FrameWriter, ReceiveBuffer
from msgr2tx.core.messages import MESSAGE_TYPES, GenericMessage, decode_message, received_generic
from msgr2tx.core.policy import Policy
from msgr2tx.core.session import GlobalSeq, Session, SessionTable, payload_size
from msgr2tx.core.speculation import KnownPeer
from msgr2tx.errors import (
    BannerError, DecodeError, IdentMismatch, InjectedFault, LocalProtocolError, MissingFeatures, Msgr1Banner,
    PeerTypeMismatch, ProtocolError, ResumeFailed, ResumeNotNegotiated, ResumeRefused, ResumeReplayed,
    ResumeStale, ResumeExpired, ResumeTampered, ResumeUnknownSession, SignatureMismatch, SpeculationFailed,
    UnexpectedFrame,
)

_BANNER_HEAD = struct.Struct("<8sH")
_HEADER2 = struct.Struct("<QQHHHIHQBHH")
_HEADER2_SIZE = _HEADER2.size
_MESSAGE_ALIGNS = F.MESSAGE_ALIGNS
_BANNER_PAYLOAD = struct.Struct("<QQ")
BANNER_SIZE = _BANNER_HEAD.size + BANNER_PAYLOAD_LEN  # 26

ZERO_SIGNATURE = bytes(32)
_NO_RULES: dict = {}


class Role(enum.Enum):
    CLIENT = "client"
    SERVER = "server"


class State(enum.Enum):
    # client
    BANNER_CONNECTING = "BANNER_CONNECTING"
    HELLO_CONNECTING = "HELLO_CONNECTING"
    AUTH_CONNECTING = "AUTH_CONNECTING"
    AUTH_CONNECTING_SIGN = "AUTH_CONNECTING_SIGN"
    COMPRESSION_CONNECTING = "COMPRESSION_CONNECTING"
    SESSION_CONNECTING = "SESSION_CONNECTING"
    SESSION_RECONNECTING = "SESSION_RECONNECTING"
    # server
    BANNER_ACCEPTING = "BANNER_ACCEPTING"
    HELLO_ACCEPTING = "HELLO_ACCEPTING"
    AUTH_ACCEPTING = "AUTH_ACCEPTING"
    AUTH_ACCEPTING_MORE = "AUTH_ACCEPTING_MORE"
    AUTH_ACCEPTING_SIGN = "AUTH_ACCEPTING_SIGN"
    COMPRESSION_ACCEPTING = "COMPRESSION_ACCEPTING"
    SESSION_ACCEPTING = "SESSION_ACCEPTING"
    # both
    READY = "READY"
    CLOSED = "CLOSED"


class Decision(str, enum.Enum):
    """
    The rows of the accepting side's session decision table (Ceph's
    handle_client_ident, handle_existing_connection and handle_reconnect);
    docs/protocol.md describes each.  The value is the row's name.
    """

    IDENT_MISSING_FEATURES = "ident: peer lacks required features"
    IDENT_UNREGISTERED = "ident: lossy client of a stateless server"
    IDENT_NEW = "ident: no session for the address"
    IDENT_STALE = "ident: stale global_seq"
    IDENT_REPLACES_LOSSY = "ident: replaces a lossy session"
    IDENT_PEER_RESTARTED_RESET = "ident: peer restarted, resetcheck"
    IDENT_PEER_RESTARTED_KEEP = "ident: peer restarted, no resetcheck"
    IDENT_INTERRUPTED = "ident: same client cookie"
    IDENT_REUSE = "ident: session ready or standby"
    IDENT_RACE_INCOMING_WINS = "ident: connect race, incoming wins"
    IDENT_RACE_EXISTING_WINS = "ident: connect race, ours wins"
    RECONNECT_UNKNOWN = "reconnect: no session for the address"
    RECONNECT_OTHER_SESSION = "reconnect: other client cookie"
    RECONNECT_NOT_ESTABLISHED = "reconnect: we never got SERVER_IDENT"
    RECONNECT_STALE_GLOBAL_SEQ = "reconnect: stale global_seq"
    RECONNECT_STALE_CONNECT_SEQ = "reconnect: stale connect_seq"
    RECONNECT_RACE_EXISTING_WINS = "reconnect: race, ours wins"
    RECONNECT_RACE_INCOMING_WINS = "reconnect: race, incoming wins"
    RECONNECT = "reconnect: resume"
    FAST_RECONNECT = "fast reconnect: resume with the session key"


class Rule(NamedTuple):
    """What a frame does in a state: the method that handles it and the states it may lead to."""

    handler: str
    targets: Tuple[State, ...]


_S = State

#: state -> {tag accepted in that state: Rule}.  A tag missing here is an
#: L{UnexpectedFrame}; a handler that leaves the connection in a state not
#: listed in its rule's targets is a bug, caught at run time.  CLOSED is
#: always a possible outcome and is not listed.
TRANSITIONS: Dict[State, Dict[Tag, Rule]] = {
    _S.HELLO_CONNECTING: {Tag.HELLO: Rule("_client_hello", (_S.AUTH_CONNECTING,))},
    _S.AUTH_CONNECTING: {
        Tag.AUTH_BAD_METHOD: Rule("_client_auth_bad_method", (_S.AUTH_CONNECTING,)),
        Tag.AUTH_REPLY_MORE: Rule("_client_auth_reply_more", (_S.AUTH_CONNECTING,)),
        Tag.AUTH_DONE: Rule("_client_auth_done", (_S.AUTH_CONNECTING_SIGN,)),
    },
    _S.AUTH_CONNECTING_SIGN: {
        # (READY: a fast reconnect)
        Tag.AUTH_SIGNATURE: Rule("_client_auth_signature",
                                 (_S.COMPRESSION_CONNECTING, _S.SESSION_CONNECTING, _S.SESSION_RECONNECTING,
                                  _S.READY)),
    },
    _S.COMPRESSION_CONNECTING: {
        Tag.COMPRESSION_DONE: Rule("_client_compression_done", (_S.SESSION_CONNECTING, _S.SESSION_RECONNECTING)),
    },
    _S.SESSION_CONNECTING: {
        Tag.SERVER_IDENT: Rule("_client_server_ident", (_S.READY,)),
        Tag.IDENT_MISSING_FEATURES: Rule("_client_missing_features", ()),
        Tag.WAIT: Rule("_client_wait", ()),
    },
    _S.SESSION_RECONNECTING: {
        Tag.SESSION_RECONNECT_OK: Rule("_client_reconnect_ok", (_S.READY,)),
        Tag.SESSION_RESET: Rule("_client_session_reset", (_S.SESSION_CONNECTING,)),
        Tag.SESSION_RETRY: Rule("_client_session_retry", (_S.SESSION_RECONNECTING,)),
        Tag.SESSION_RETRY_GLOBAL: Rule("_client_session_retry_global", (_S.SESSION_RECONNECTING,)),
        Tag.WAIT: Rule("_client_wait", ()),
    },
    _S.HELLO_ACCEPTING: {Tag.HELLO: Rule("_server_hello", (_S.AUTH_ACCEPTING,))},
    _S.AUTH_ACCEPTING: {
        Tag.AUTH_REQUEST: Rule("_server_auth_request",
                               (_S.AUTH_ACCEPTING, _S.AUTH_ACCEPTING_MORE, _S.AUTH_ACCEPTING_SIGN)),
    },
    _S.AUTH_ACCEPTING_MORE: {
        Tag.AUTH_REQUEST_MORE: Rule("_server_auth_request_more",
                                    (_S.AUTH_ACCEPTING, _S.AUTH_ACCEPTING_MORE, _S.AUTH_ACCEPTING_SIGN)),
    },
    _S.AUTH_ACCEPTING_SIGN: {
        # (READY: a fast reconnect)
        Tag.AUTH_SIGNATURE: Rule("_server_auth_signature",
                                 (_S.COMPRESSION_ACCEPTING, _S.SESSION_ACCEPTING, _S.READY)),
    },
    _S.COMPRESSION_ACCEPTING: {
        Tag.COMPRESSION_REQUEST: Rule("_server_compression_request", (_S.SESSION_ACCEPTING,)),
    },
    _S.SESSION_ACCEPTING: {
        Tag.CLIENT_IDENT: Rule("_server_client_ident", (_S.READY, _S.SESSION_ACCEPTING)),
        Tag.SESSION_RECONNECT: Rule("_server_session_reconnect", (_S.READY, _S.SESSION_ACCEPTING)),
    },
    _S.READY: {
        Tag.MESSAGE: Rule("_ready_message", (_S.READY,)),
        Tag.KEEPALIVE2: Rule("_ready_keepalive", (_S.READY,)),
        Tag.KEEPALIVE2_ACK: Rule("_ready_keepalive_ack", (_S.READY,)),
        Tag.ACK: Rule("_ready_ack", (_S.READY,)),
    },
}

#: the banner is not a frame: where each role goes once it is exchanged
BANNER_TRANSITIONS: Dict[State, State] = {
    _S.BANNER_CONNECTING: _S.HELLO_CONNECTING,
    _S.BANNER_ACCEPTING: _S.HELLO_ACCEPTING,
}


#: control frames that carry an auth method's payload (tickets, which can be
#: large): they may use the whole C{max_control}
AUTH_PAYLOAD_TAGS = frozenset({Tag.AUTH_REQUEST, Tag.AUTH_BAD_METHOD, Tag.AUTH_REPLY_MORE,
                               Tag.AUTH_REQUEST_MORE, Tag.AUTH_DONE})

#: the most bytes any other control frame may have (HELLO, the idents, the
#: session frames, keepalives, ACK): their known fields take well under
#: 1 KiB; the rest leaves room for fields a newer peer may append
SMALL_CONTROL_LIMIT = 64 << 10


def _next_states() -> Dict[State, Tuple[State, ...]]:
    result: Dict[State, Tuple[State, ...]] = {s: (t,) for s, t in BANNER_TRANSITIONS.items()}
    for state, rules in TRANSITIONS.items():
        targets: List[State] = []
        for rule in rules.values():
            targets.extend(t for t in rule.targets if t not in targets)
        result[state] = tuple(targets)
    return result


#: every state's possible next states, derived from the tables above
NEXT_STATES: Dict[State, Tuple[State, ...]] = _next_states()


def hmac_sha256(key: bytes, data) -> bytes:
    if not key:
        return ZERO_SIGNATURE
    return hmac.new(key, data, hashlib.sha256).digest()


class Msgr2Connection:
    """
    One msgr2 connection: banner, handshake, then messages.

    @param role: L{Role.CLIENT} or L{Role.SERVER}.
    @param local_addr: our socket address as the transport reports it.
    @param peer_addr: the peer's socket address; for a client, the address
        we dialled (its type and nonce are checked against SERVER_IDENT).
    @param server_addrs: a server's own addresses (SERVER_IDENT).
    @param session: the session this connection carries.
    @param global_seq: the messenger-wide connection counter value for this
        connection attempt.
    @param nonce: our address nonce (clients pick a random one).
    """

    def __init__(self, config: ConnectionConfig, role: Role,
                 local_addr: entity_addr_t, peer_addr: entity_addr_t,
                 server_addrs: Optional[entity_addrvec_t] = None,
                 session: Optional[Session] = None,
                 global_seq: int = 1, nonce: int = 0, cookie: int = 0,
                 global_seqs: Optional[GlobalSeq] = None,
                 sessions: Optional[SessionTable] = None) -> None:
        self.config = config
        self.role = role
        self.local_addr = local_addr
        self.peer_addr = peer_addr
        self.server_addrs = server_addrs
        self.session = session if session is not None else Session()
        self.global_seqs = global_seqs if global_seqs is not None else GlobalSeq(global_seq - 1)
        self.global_seq = self.global_seqs.next()
        #: the server's registered sessions by peer address (shared by a server's connections)
        self.sessions = sessions if sessions is not None else SessionTable()
        #: our policy towards this peer: from the expected peer type until
        #: the peer's HELLO names its type (see L{ConnectionConfig.policy_for})
        self.policy: Policy = config.policy_for(config.peer_type, server=role is Role.SERVER)
        #: our own addresses once learned from the peer's HELLO (client)
        self.my_addrs: Optional[entity_addrvec_t] = None
        #: True once the server answered WAIT (client)
        self.waited = False
        #: the decision-table rows the accepting side took, in order (L{Decision})
        self.decisions: List[Decision] = []
        self._cs_bumped = False
        if role is Role.CLIENT and not self.policy.lossy:
            # a server of ours that is accepted by this peer meanwhile must
            # see this attempt to resolve a connect race
            self.session.connection = self
            self._bump_connect_seq()
        #: set by the I/O layer to whatever object drives this connection
        self.owner = None
        self.nonce = nonce
        self.cookie = cookie
        self.state = State.BANNER_CONNECTING if role is Role.CLIENT else State.BANNER_ACCEPTING
        self._rbuf = ReceiveBuffer()
        self._out: List[bytes] = []
        self._events: List[E.Event] = []
        self._blocked = False
        # pre-auth transcript for AUTH_SIGNATURE
        self._pre_auth_tx: Optional[bytearray] = bytearray()
        self._pre_auth_rx: Optional[bytearray] = bytearray()
        self.writer: Optional[FrameWriter] = None
        self.reader: Optional[FrameReader] = None
        self.rev1 = False
        self.peer_supported = 0
        self.peer_required = 0
        #: client: the peer our speculative first flight assumed (None: no first flight)
        self.assumed_peer: Optional[KnownPeer] = None
        self.peer_entity_type = 0
        self.peer_global_id = 0
        self.peer_addrs = entity_addrvec_t()
        self.global_id = 0
        self.con_mode = ConnectionMode.UNKNOWN
        self.auth_method = 0
        self.features = 0
        #: the agreed on-wire compression method (0: none)
        self.compression_method = 0
        self._compression_requested: Tuple[int, ...] = ()
        self._session_key = b""
        self._last_ack_sent = 0
        self._transition = None
        #: while True, messages wait in the session queue (backpressure)
        self.tx_paused = False
        #: set by an I/O layer that writes the parts of data_to_send
        #: straight to a socket (it takes any buffer, not only bytes): the
        #: large parts of secure frames may then be read-only views of the
        #: buffers the frame writer reuses.  The I/O layer must be done with
        #: them (written or copied out) before it calls
        #: C{writer.release(keep)} (C{keep}: the buffers of the views it
        #: still holds), which lets the next large frames overwrite the
        #: others; while all are lent such frames get fresh buffers.  Set it
        #: before the handshake; never with an interceptor (held frames)
        self.send_views = False
        #: when True, receive_data does not answer messages with an ACK
        #: itself: the I/O layer calls send_ack() after the application had
        #: its chance to reply (and piggyback the ack)
        self.defer_acks = False
        #: a test hook: callable(connection, point, tag) -> None or an action
        #: ("fault", "block", "stall"); see msgr2tx.testing.Interceptor
        self.interceptor = None
        self._held_frame = None
        self._held_out: Optional[List[bytes]] = None
        self._banner_held = False
        # the newest KEEPALIVE2 timestamp not answered yet (while paused)
        self._keepalive_ack_due: Optional[utime_t] = None
        #: bytes of the MESSAGE frames queued since the last data_to_send
        #: (header and payload segments; the I/O layer batches by it)
        self.queued_message_bytes = 0
        # the peer's entity_name_t for received messages (set at READY)
        self._rx_src: Optional[entity_name_t] = None
        #: the clock fast reconnect expiry is judged by (seconds since the epoch)
        self.clock = time.time
        #: server: the auth methods and modes an AUTH_BAD_METHOD refusing a
        #: fast reconnect offers instead (the I/O layer sets them from its handlers)
        self.auth_offer: Tuple[Tuple[int, ...], Tuple[int, ...]] = ((), ())
        #: when the ticket of this connection's auth expires (0: never, or not known)
        self._auth_expires = 0.0
        #: client: (request, modes) of the fast reconnect in flight
        self._resume: Optional[Tuple[R.ResumeRequest, Tuple[int, ...]]] = None
        #: both: the fast reconnect was accepted; READY follows AUTH_SIGNATURE
        self._resumed = False
        # the peer's msg_seq from the fast reconnect exchange (what to replay after)
        self._resume_msg_seq = 0
        #: True once READY by a fast reconnect
        self.fast_reconnected = False
        #: client: how many messages rode in the fast reconnect request
        self.early_messages = 0
        #: the typed error of a refused fast reconnect (L{ResumeRefused}), else None
        self.resume_refusal: Optional[ResumeRefused] = None

    # ---- introspection -------------------------------------------------

    def __repr__(self) -> str:
        return "<Msgr2Connection %s %s rev%d mode=%s peer=%s>" % (
            self.role.value, self.state.value, 1 if self.rev1 else 0,
            ConnectionMode(self.con_mode).name.lower(), self.peer_addr)

    @property
    def peer_name(self) -> entity_name_t:
        return entity_name_t(self.peer_entity_type, self.peer_global_id)

    # ---- I/O boundary ----------------------------------------------------

    def initiate(self, assume: Optional[KnownPeer] = None,
                 auth_request: Optional[Tuple[int, bytes, Sequence[int]]] = None) -> None:
        """
        Queue our banner; both roles send it without waiting.

        A client given the peer it expects (C{assume}: its banner and entity
        type, from an earlier connection) and the auth method's first
        request (C{auth_request}: method, payload built for that entity
        type, connection modes) also queues HELLO and AUTH_REQUEST, in the
        frame revision that banner and ours agree on: the speculative first
        flight (docs/protocol.md).  Nothing is speculated when the assumed
        banner would refuse us or we it.  If the peer then turns out to pick
        another revision or to be another entity type, L{receive_data}
        raises L{SpeculationFailed}; a changed COMPRESSION bit or other bits
        that leave the frame format alone are taken as they come.
        """
        banner = _BANNER_HEAD.pack(BANNER_PREFIX, BANNER_PAYLOAD_LEN) + _BANNER_PAYLOAD.pack(
            self.config.msgr2_supported, self.config.msgr2_required)
        self._pre_auth_tx += banner
        self._out.append(banner)
        if assume is not None and auth_request is not None and self.role is Role.CLIENT:
            self._send_first_flight(assume, *auth_request)

    def _send_first_flight(self, assume: KnownPeer, method: int, payload: bytes, modes: Sequence[int]) -> None:
        cfg = self.config
        ours = cfg.msgr2_supported
        if assume.required & ~ours or cfg.msgr2_required & ~assume.supported or not assume.entity_type:
            return  # that banner would end the connection anyway: no speculation
        if cfg.peer_type and assume.entity_type != cfg.peer_type:
            return  # we mean to reach another kind of daemon than the one seen there
        self.assumed_peer = assume
        self.rev1 = assume.rev1_with(ours)
        self.writer = FrameWriter(self.rev1, cfg.data_crc)
        self.writer.recording = self._pre_auth_tx
        self._send(F.Hello(cfg.entity_type, self.peer_addr))
        if self._resume_possible(assume.supported):
            # a fast reconnect instead of the auth method's request
            modes = self._resume_modes()
            payload = self._resume_request(modes)
            method = AuthMethod.MSGR2TX_RESUME
        self.auth_method = method
        self._send(F.AuthRequest(method, tuple(modes or cfg.modes), payload))

    @property
    def speculated(self) -> bool:
        """Client: HELLO and AUTH_REQUEST went out with our banner (a speculative first flight)."""
        return self.assumed_peer is not None

    def data_to_send(self) -> List[bytes]:
        """
        The queued output parts, for C{writeSequence}; clears the queue.
        Parts are bytes, except with L{send_views}: see there.
        """
        out = self._out
        self._out = []
        self.queued_message_bytes = 0
        return out

    def receive_data(self, data=b"") -> List[E.Event]:
        """
        Feed received bytes; returns the events they produced.  Call with no
        data to resume parsing after answering a blocking event.  Raises a
        L{ProtocolError} subclass when the peer breaks the protocol; the
        connection is then closed and must not be fed again.
        """
        if self.state is State.CLOSED:
            if data:
                raise LocalProtocolError("connection is closed")
            return []
        if data:
            self._rbuf.append(data)
        try:
            self._process()
            if self.state is State.READY and not self.defer_acks:
                self._maybe_ack()
        except ProtocolError as e:
            self.state = State.CLOSED
            # what happened before the error still happened: a message
            # already counted in in_seq must reach the application
            e.events, self._events = self._events, []
            raise
        events = self._events
        self._events = []
        return events

    def receive_buffer(self) -> Optional[memoryview]:
        """
        Where the next received bytes may be written directly: the free part
        of the large frame the reader is collecting (its preamble has been
        checked against the limits), as a writable memoryview, or None when
        no large frame is under way (feed L{receive_data} then).  After
        writing C{n} bytes at its start, call L{buffer_filled}, then
        L{receive_data} with no data.  Release the view before either.
        (asyncio's C{BufferedProtocol.get_buffer}/C{buffer_updated} do the
        same for asyncio transports.)
        """
        if self.state is State.CLOSED:
            return None
        return self._rbuf.writable()

    def buffer_filled(self, n: int) -> None:
        """C{n} bytes were written at the start of L{receive_buffer}'s view."""
        self._rbuf.filled(n)

    def connection_lost(self) -> None:
        self.state = State.CLOSED
        session = self.session
        if self.role is Role.SERVER and session.lossy and session.connection is self:
            # a registered lossy session ends with its connection
            session.connection = None
            self.sessions.remove(session)

    # ---- input processing ----------------------------------------------------

    def _process(self) -> None:
        rbuf = self._rbuf
        self._check_transition()
        while not self._blocked and self.state is not State.CLOSED:
            if self.reader is None:
                if not self._process_banner():
                    return
                continue
            if self.state is State.READY and self.interceptor is None:
                # every complete plain MESSAGE frame at the front of the buffer
                self.reader.read_messages(rbuf, self._fast_message, self.config.max_frame)
                if self.state is not State.READY:
                    continue
            frame = self.reader.next_frame(rbuf)
            if frame is None:
                return
            rule = TRANSITIONS.get(self.state, _NO_RULES).get(frame.tag)
            if rule is None:
                raise UnexpectedFrame("%s frame is not allowed in state %s" % (
                    Tag(frame.tag).name, self.state.value))
            value = frame.segments if frame.tag == Tag.MESSAGE else F.decode_frame(frame.tag, frame.segments)
            self._transition = (self.state, frame.tag, rule.targets)
            if self.interceptor is not None and self._intercept("read", frame.tag):
                self._held_frame = (rule, value)
                self._blocked = True
                return
            getattr(self, rule.handler)(value)
            self._check_transition()

    def _admit_frame(self, tag: int) -> int:
        """
        The preamble of a frame has arrived: refuse a tag the current state
        does not accept before its segments are read (a MESSAGE before READY
        is refused here, as Ceph refuses it at the preamble), else return the
        most bytes it may have.
        """
        if tag not in TRANSITIONS.get(self.state, _NO_RULES):
            raise UnexpectedFrame("%s frame is not allowed in state %s" % (Tag(tag).name, self.state.value))
        cfg = self.config
        if tag == Tag.MESSAGE:
            return cfg.max_frame
        if tag in AUTH_PAYLOAD_TAGS:
            return cfg.max_control
        return min(cfg.max_control, SMALL_CONTROL_LIMIT)

    @property
    def buffered(self) -> int:
        """Received bytes not parsed yet (at most one frame's worth, plus one read)."""
        return len(self._rbuf)

    @property
    def reading(self) -> bool:
        """False while the connection waits for an answer (auth) before it parses more."""
        return not self._blocked and self.state is not State.CLOSED

    def _check_transition(self) -> None:
        """A settled transition must be one the table lists."""
        transition = self._transition
        if transition is None or self._blocked:
            return
        self._transition = None
        if self.state not in transition[2] and self.state is not State.CLOSED:
            raise LocalProtocolError("internal error: %s in %s led to %s, which the state table does not allow"
                                     % (Tag(transition[1]).name, transition[0].value, self.state.value))

    def _process_banner(self) -> bool:
        rbuf = self._rbuf
        avail = len(rbuf)
        head = bytes(rbuf.buf[rbuf.pos:rbuf.pos + min(avail, 8)])
        if not BANNER_PREFIX.startswith(head):
            if head.startswith(MSGR1_BANNER_PREFIX):
                raise Msgr1Banner("peer sent the msgr1 banner %r: it does not speak msgr2" % head)
            error = BannerError("peer sent %r where the msgr2 banner was expected" % head)
            #: the first bytes the peer sent (up to 24), for a caller that did not see them
            error.received = bytes(rbuf.buf[rbuf.pos:rbuf.pos + min(avail, 24)])
            raise error
        if avail < BANNER_SIZE:
            return False
        raw = rbuf.take(BANNER_SIZE)
        _, length = _BANNER_HEAD.unpack_from(raw)
        if length != BANNER_PAYLOAD_LEN:
            # the length could grow in a future revision; we only know 16
            raise BannerError("banner payload length %d, expected %d" % (length, BANNER_PAYLOAD_LEN))
        supported, required = _BANNER_PAYLOAD.unpack_from(raw, _BANNER_HEAD.size)
        self._pre_auth_rx += raw
        ours = self.config.msgr2_supported
        missing = required & ~ours
        if missing:
            raise MissingFeatures("peer requires msgr2 features 0x%x that we lack" % missing, missing)
        missing = self.config.msgr2_required & ~supported
        if missing:
            raise MissingFeatures("peer lacks required msgr2 features 0x%x" % missing, missing)
        self.peer_supported = supported
        self.peer_required = required
        rev1 = bool(supported & Msgr2Feature.REVISION_1) and bool(ours & Msgr2Feature.REVISION_1)
        cfg = self.config
        if self.assumed_peer is not None:
            if rev1 != self.rev1:
                # our HELLO and AUTH_REQUEST are in the other frame format:
                # the peer cannot read them, and they cannot be unsent
                self._first_flight_missed("peer's banner (supported 0x%x) picks msgr2.%d, our first flight "
                                          "assumed msgr2.%d" % (supported, rev1, self.rev1))
        else:
            self.rev1 = rev1
            self.writer = FrameWriter(self.rev1, cfg.data_crc)
            self.writer.recording = self._pre_auth_tx
        self.reader = FrameReader(self.rev1, cfg.data_crc, cfg.max_segment, cfg.max_frame, cfg.max_control)
        self.reader.recording = self._pre_auth_rx
        self.reader.gate = self._admit_frame
        self._events.append(E.BannerExchanged(supported, required, self.rev1))
        if self.interceptor is not None and self._intercept("banner"):
            # hold our HELLO and stop reading until release()
            self._held_out = []
            self._blocked = True
            self._banner_held = True
        if self.assumed_peer is None:
            # both roles send HELLO straight after the banner (unless it went with ours)
            self._send(F.Hello(self.config.entity_type, self.peer_addr))
        self.state = BANNER_TRANSITIONS[self.state]
        return True

    def _first_flight_missed(self, reason: str) -> None:
        self._events.append(E.FirstFlightMissed(reason))
        raise SpeculationFailed("speculative first flight to %s failed: %s; dial again without speculation"
                                % (self.peer_addr, reason))

    def _send(self, frame) -> None:
        if self.interceptor is not None:
            self._intercept_write(frame.TAG)
        aligns = F.MESSAGE_ALIGNS if frame.TAG == Tag.MESSAGE else (8,)
        self._output(self.writer.assemble(frame.TAG, frame.segments(), aligns))

    def _output(self, parts) -> None:
        if self._held_out is not None:
            self._held_out.extend(parts)
        else:
            self._out.extend(parts)

    # ---- breakpoints (msgr2tx.testing.Interceptor) -------------------------------

    def _intercept(self, point, tag=None):
        action = self.interceptor(self, point, tag)
        if action is None:
            return None
        kind = getattr(action, "kind", action)
        if kind == "fault":
            raise InjectedFault("breakpoint %s %s failed the connection"
                                % (point, Tag(tag).name if tag is not None else ""))
        if kind not in ("block", "stall"):
            raise LocalProtocolError("unknown breakpoint action %r" % (kind,))
        self._events.append(E.Intercepted(point, tag, kind, getattr(action, "seconds", 0.0)))
        return kind

    def _intercept_write(self, tag) -> None:
        if self._intercept("write", tag) and self._held_out is None:
            # this frame and everything after it wait for release()
            self._held_out = []

    def release(self) -> None:
        """Let a blocked or stalled connection go on (handle the held frame, write the held output)."""
        if self._held_out is not None:
            held, self._held_out = self._held_out, None
            self._out.extend(held)
        if self._banner_held:
            self._banner_held = False
            self._blocked = False
        held_frame, self._held_frame = self._held_frame, None
        if held_frame is not None:
            self._blocked = False
            rule, value = held_frame
            getattr(self, rule.handler)(value)
            self._check_transition()

    def _compression_agreed(self) -> bool:
        """Both banners have the COMPRESSION bit: the COMPRESSION_* exchange must happen."""
        return bool(self.config.msgr2_supported & self.peer_supported & Msgr2Feature.COMPRESSION)

    def _compress_mode(self) -> str:
        cfg = self.config
        return C.compress_mode_for(cfg.compress_mode, cfg.compress_secure, self.peer_entity_type,
                                   self.con_mode == ConnectionMode.SECURE)

    def _start_compression(self, method: int) -> None:
        """From the next frame on, both directions are (de)compressed with C{method}."""
        self.compression_method = method
        self.writer.compressor = C.TxCompressor(method, self.config.compress_min_size)
        self.reader.decompressor = C.RxDecompressor(method)

    # ---- client handshake ---------------------------------------------

    def _client_hello(self, hello: F.Hello) -> None:
        expected = self.config.peer_type
        if expected and hello.entity_type != expected:
            # Ceph's handle_hello: the peer is not what we dialled
            said = EntityType.name(hello.entity_type)
            raise PeerTypeMismatch("we meant to reach a %s at %s, but its HELLO says it is %s %s" % (
                EntityType.name(expected), self.peer_addr, "an" if said[:1] in "aeiou" else "a", said),
                expected, hello.entity_type)
        assumed = self.assumed_peer
        if assumed is not None and hello.entity_type != assumed.entity_type:
            # our AUTH_REQUEST's payload was built for another kind of peer
            self._first_flight_missed("its HELLO says it is a %s, our AUTH_REQUEST was for a %s" % (
                EntityType.name(hello.entity_type), EntityType.name(assumed.entity_type)))
        self.peer_entity_type = hello.entity_type
        self.policy = self.config.policy_for(hello.entity_type, server=False)
        self._learn_addr(hello.peer_addr)
        self._events.append(E.HelloReceived(hello.entity_type, hello.peer_addr))
        self.state = State.AUTH_CONNECTING
        if assumed is None:
            if self._resume_possible(self.peer_supported):
                modes = self._resume_modes()
                payload = self._resume_request(modes)
                self.auth_method = AuthMethod.MSGR2TX_RESUME
                self._send(F.AuthRequest(AuthMethod.MSGR2TX_RESUME, modes, payload))
                return
            self._events.append(E.AuthRequestNeeded())
            self._blocked = True

    def send_auth_request(self, method: int, payload: bytes, modes: Optional[Sequence[int]] = None) -> None:
        """Client: send AUTH_REQUEST (answers L{E.AuthRequestNeeded})."""
        self._require(State.AUTH_CONNECTING, "send AUTH_REQUEST")
        self.auth_method = method
        self._send(F.AuthRequest(method, tuple(modes or self.config.modes), payload))
        self._blocked = False

    def send_auth_request_more(self, payload: bytes) -> None:
        """Client: answer AUTH_REPLY_MORE."""
        self._require(State.AUTH_CONNECTING, "send AUTH_REQUEST_MORE")
        self._send(F.AuthRequestMore(payload))
        self._blocked = False

    def _client_auth_bad_method(self, frame: F.AuthBadMethod) -> None:
        if self._resume is not None and frame.method == AuthMethod.MSGR2TX_RESUME:
            # refused: the early messages stay unacknowledged (replayed
            # later), and the auth method takes over on this connection
            error = R.refusal_from_result(frame.result)
            self.resume_refusal = error
            self._resume = None
            self.session.resume_key = None
            self._events.append(E.FastReconnectRefused(error))
        self._events.append(E.AuthRequestNeeded(frame.allowed_methods, frame.allowed_modes,
                                                frame.method, frame.result))
        self._blocked = True

    def _client_auth_reply_more(self, frame: F.AuthReplyMore) -> None:
        self._events.append(E.AuthReplyMoreReceived(frame.payload))
        self._blocked = True

    def _client_auth_done(self, frame: F.AuthDone) -> None:
        if self._resume is not None and self.auth_method == AuthMethod.MSGR2TX_RESUME:
            self._client_fast_reconnect_done(frame)
            return
        if frame.con_mode not in self.config.modes:
            raise UnexpectedFrame("server chose connection mode %d that we did not offer" % frame.con_mode)
        self.global_id = frame.global_id
        self.con_mode = ConnectionMode(frame.con_mode)
        # the transcript we sign ends with AUTH_DONE
        self.reader.recording = None
        self._events.append(E.AuthDoneReceived(frame.global_id, frame.con_mode, frame.payload))
        self._blocked = True

    def auth_finish(self, session_key: bytes = b"", connection_secret: bytes = b"", expires: float = 0.0) -> None:
        """
        Client: the auth method accepted AUTH_DONE.  Installs the session key
        (and, in secure mode, the ciphers), then signs what the server sent.
        C{expires}: when the ticket behind the session key expires (seconds
        since the epoch, 0: not known), after which no fast reconnect is tried.
        """
        self._require(State.AUTH_CONNECTING, "finish auth")
        self._auth_expires = expires
        self._install_keys(session_key, connection_secret)
        self._send_signature()
        self.state = State.AUTH_CONNECTING_SIGN
        self._blocked = False

    def _install_keys(self, session_key: bytes, connection_secret: bytes) -> None:
        self._session_key = bytes(session_key)
        if self.con_mode == ConnectionMode.SECURE:
            key, rx_nonce, tx_nonce = split_connection_secret(
                connection_secret, accepting=self.role is Role.SERVER)
            self.writer.cipher = TxCipher(key, tx_nonce, self.rev1)
            if self.send_views and self.interceptor is None:
                # (set only when on: an idle writer keeps a small dictionary)
                self.writer.views = True
            self.reader.cipher = RxCipher(key, rx_nonce, self.rev1)

    def _send_signature(self) -> None:
        self.writer.recording = None
        signature = hmac_sha256(self._session_key, self._pre_auth_rx)
        self._pre_auth_rx = None
        self._send(F.AuthSignature(signature))

    def _check_signature(self, frame: F.AuthSignature) -> None:
        expected = hmac_sha256(self._session_key, self._pre_auth_tx)
        self._pre_auth_tx = None
        if not hmac.compare_digest(expected, frame.signature):
            raise SignatureMismatch("peer's AUTH_SIGNATURE does not match the bytes we sent")

    def _client_auth_signature(self, frame: F.AuthSignature) -> None:
        self._check_signature(frame)
        if self._resumed:
            self._client_fast_reconnect_ready()
            return
        if self._compression_agreed():
            # sent even with compression off: a Reef or Tentacle server in
            # COMPRESSION_ACCEPTING faults on anything else
            is_compress = self._compress_mode() != "none"
            methods = tuple(self.config.compression_methods) if self.peer_entity_type == EntityType.OSD else ()
            self._compression_requested = methods if is_compress else ()
            self._send(F.CompressionRequest(is_compress, methods))
            self.state = State.COMPRESSION_CONNECTING
        else:
            self._start_session()

    def _client_compression_done(self, frame: F.CompressionDone) -> None:
        if frame.is_compress:
            if frame.method not in self._compression_requested:
                raise UnexpectedFrame("server enabled compression method %s that we did not ask for"
                                      % C.algorithm_name(frame.method))
            # the server compresses from its next frame on, we from CLIENT_IDENT on
            self._start_compression(frame.method)
        self._start_session()

    def _start_session(self) -> None:
        """CLIENT_IDENT for a new session, SESSION_RECONNECT to resume one."""
        session = self.session
        if session.server_cookie and not session.lossy:
            self._bump_connect_seq()
            self._send_reconnect()
            return
        if session.lossy:
            # a lossy session ends with its connection: sequence numbers
            # start again (messages queued since are still sent)
            session.in_seq = session.out_seq = 0
            session.unacked = ()
        self._send_client_ident()

    def _bump_connect_seq(self) -> None:
        """
        A new attempt at an established lossless session counts one more
        connect_seq (Ceph counts it when the failed connection faults), so
        that a peer reconnecting at the same moment sees a reconnect race.
        """
        session = self.session
        if not self._cs_bumped and session.server_cookie and not session.lossy:
            session.connect_seq += 1
            self._cs_bumped = True

    def _learn_addr(self, peer_addr_for_me: entity_addr_t) -> None:
        """
        Ceph's learned_addr: while our address is blank, take the IP the
        peer sees for us (or, with C{learn_addr_from_peer} off, our socket's)
        and keep our nonce; an address we did not bind gets type ANY and port 0.
        """
        ours = self.config.my_addrs
        if self.config.learn_addr_from_peer:
            source = peer_addr_for_me
        else:
            source = self.local_addr
        if source.host is None or source.is_blank_ip():
            return
        if ours is None or not ours.addrs:
            self.my_addrs = entity_addrvec_t((entity_addr_t(AddrType.ANY, self.nonce, source.host, 0),))
            return
        if not any(a.is_blank_ip() for a in ours.addrs):
            return
        self.my_addrs = entity_addrvec_t(tuple(
            entity_addr_t(a.type, a.nonce, source.host, a.port)
            if a.is_blank_ip() and a.family in (source.family, 0) else a
            for a in ours.addrs))

    def _my_addrs(self) -> entity_addrvec_t:
        if self.my_addrs is not None:
            return self.my_addrs
        if self.config.my_addrs is not None:
            # a peer that also listens (lossless peers): its bound addresses
            return self.config.my_addrs
        return entity_addrvec_t((entity_addr_t(AddrType.ANY, self.nonce, self.local_addr.host, 0),))

    def _send_reconnect(self) -> None:
        s = self.session
        self._send(F.SessionReconnect(self._my_addrs(), s.client_cookie, s.server_cookie,
                                      self.global_seq, s.connect_seq, s.in_seq))
        self.state = State.SESSION_RECONNECTING

    def _client_reconnect_ok(self, frame: F.SessionReconnectOk) -> None:
        session = self.session
        self._keep_resume_key(session)
        self.peer_global_id = session.peer_global_id
        self.peer_addrs = session.peer_addrs
        self.features = session.features
        self._events.append(E.PolicyGranted(False, self.config.lossy))
        self._become_ready(False, reconnected=True, replay=session.replay_after(frame.msg_seq))

    def _client_session_retry(self, frame: F.SessionRetry) -> None:
        self.session.connect_seq = frame.connect_seq + 1
        self._send_reconnect()

    def _client_session_retry_global(self, frame: F.SessionRetryGlobal) -> None:
        self.global_seq = self.global_seqs.raise_above(frame.global_seq)
        self._send_reconnect()

    def _send_client_ident(self) -> None:
        cfg = self.config
        session = self.session
        lossy = self.policy.lossy
        if not lossy and not session.client_cookie:
            session.client_cookie = self.cookie or 1
        self._send(F.ClientIdent(
            self._my_addrs(), self.peer_addr, cfg.entity_num, self.global_seq,
            cfg.features_supported, cfg.features_required,
            IDENT_FLAG_LOSSY if lossy else 0,
            0 if lossy else session.client_cookie))
        self.state = State.SESSION_CONNECTING

    def _client_server_ident(self, frame: F.ServerIdent) -> None:
        if not any(_same_endpoint(a, self.peer_addr) for a in frame.addrs.addrs):
            raise IdentMismatch("server identifies as %s, which does not include %s" % (
                frame.addrs, self.peer_addr))
        missing = self.config.features_required & ~frame.supported_features
        if missing:
            raise MissingFeatures("server lacks required features 0x%x" % missing, missing)
        lossy = bool(frame.flags & IDENT_FLAG_LOSSY)
        if not lossy and not frame.cookie:
            raise IdentMismatch("server offered a lossless session without a cookie")
        self.peer_addrs = frame.addrs
        self.peer_global_id = frame.gid
        self.features = self.config.features_supported & frame.supported_features
        session = self.session
        session.server_cookie = frame.cookie
        session.lossy = lossy
        session.peer_global_seq = frame.global_seq
        session.peer_global_id = frame.gid
        session.peer_addrs = frame.addrs
        session.features = self.features
        if not lossy:
            # a peer that also listens may resume this session by connecting
            # to us (SESSION_RECONNECT with these cookies): let our server find it
            self.sessions.add(session)
            self._keep_resume_key(session)
        self._events.append(E.PolicyGranted(lossy, self.config.lossy))
        # a new session on the server: whatever we sent before is sent again
        self._become_ready(lossy, replay=() if lossy else list(session.unacked))

    def _client_missing_features(self, frame: F.IdentMissingFeatures) -> None:
        raise MissingFeatures("server requires features 0x%x that we do not offer" % frame.features,
                              frame.features)

    def _client_wait(self, frame: F.Wait) -> None:
        # the peer's own connection to us carries the session: whoever
        # drives this connection waits for it (Ceph waits ms_max_backoff)
        self.waited = True
        self._events.append(E.WaitReceived())
        self._close("server asked us to wait")

    def _client_session_reset(self, frame: F.SessionReset) -> None:
        session = self.session
        self._events.append(E.SessionResetReceived(frame.full))
        if frame.full:
            session.reset(_new_cookie())
        else:
            session.server_cookie = 0
            session.connect_seq = 0
            session.in_seq = 0
        self._send_client_ident()

    # ---- server handshake -------------------------------------------------

    def _server_hello(self, hello: F.Hello) -> None:
        self.peer_entity_type = hello.entity_type
        # the accepting side's policy comes from the peer's type (Ceph's handle_hello)
        self.policy = self.config.policy_for(hello.entity_type, server=True)
        self._events.append(E.HelloReceived(hello.entity_type, hello.peer_addr))
        self.state = State.AUTH_ACCEPTING

    def _server_auth_request(self, frame: F.AuthRequest) -> None:
        self.auth_method = frame.method
        self._client_modes = frame.preferred_modes
        if frame.method == AuthMethod.MSGR2TX_RESUME and self.config.fast_reconnect:
            self._server_fast_reconnect(frame)
            return
        self._events.append(E.AuthRequestReceived(frame.method, frame.preferred_modes, frame.payload))
        self._blocked = True

    def _server_auth_request_more(self, frame: F.AuthRequestMore) -> None:
        self._events.append(E.AuthRequestReceived(self.auth_method, self._client_modes,
                                                  frame.payload, more=True))
        self._blocked = True

    def pick_mode(self, client_modes: Sequence[int], allowed: Sequence[int]) -> int:
        """The client's first preference that we and the auth method allow, or 0."""
        for mode in client_modes:
            if mode in self.config.modes and mode in allowed:
                return mode
        return ConnectionMode.UNKNOWN

    def send_auth_bad_method(self, method: int, result: int, allowed_methods: Sequence[int],
                             allowed_modes: Sequence[int]) -> None:
        """Server: refuse the method or modes; the client may try again."""
        self._require_server_auth("send AUTH_BAD_METHOD")
        self._send(F.AuthBadMethod(method, result, tuple(allowed_methods), tuple(allowed_modes)))
        self.state = State.AUTH_ACCEPTING
        self._blocked = False

    def send_auth_reply_more(self, payload: bytes) -> None:
        """Server: continue the auth exchange."""
        self._require_server_auth("send AUTH_REPLY_MORE")
        self._send(F.AuthReplyMore(payload))
        self.state = State.AUTH_ACCEPTING_MORE
        self._blocked = False

    def send_auth_done(self, global_id: int, con_mode: int, payload: bytes = b"",
                       session_key: bytes = b"", connection_secret: bytes = b"", expires: float = 0.0) -> None:
        """
        Server: accept the client; sends AUTH_DONE and our AUTH_SIGNATURE.
        C{expires}: when the client's ticket expires (seconds since the
        epoch, 0: never), after which its session refuses a fast reconnect.
        """
        self._require_server_auth("send AUTH_DONE")
        self._auth_expires = expires
        self.global_id = global_id
        self.peer_global_id = global_id
        self.con_mode = ConnectionMode(con_mode)
        self.reader.recording = None
        self._send(F.AuthDone(global_id, con_mode, payload))
        self._install_keys(session_key, connection_secret)
        self._send_signature()
        self.state = State.AUTH_ACCEPTING_SIGN
        self._blocked = False

    def _require_server_auth(self, what: str) -> None:
        if self.state not in (State.AUTH_ACCEPTING, State.AUTH_ACCEPTING_MORE) or not self._blocked:
            raise LocalProtocolError("cannot %s in state %s" % (what, self.state.value))

    def _server_auth_signature(self, frame: F.AuthSignature) -> None:
        self._check_signature(frame)
        if self._resumed:
            # the transcript is confirmed: the session goes on here
            self.fast_reconnected = True
            self._become_ready(False, reconnected=True, replay=self.session.replay_after(self._resume_msg_seq))
            return
        self.state = (State.COMPRESSION_ACCEPTING if self._compression_agreed()
                      else State.SESSION_ACCEPTING)

    def _server_compression_request(self, frame: F.CompressionRequest) -> None:
        # Ceph answers "on" only if it would compress for the client's type
        # too; the client's order of methods wins
        method = 0
        if frame.is_compress and self._compress_mode() != "none":
            method = C.pick_method(frame.preferred_methods, self.config.compression_methods)
        self._send(F.CompressionDone(bool(method), method))
        if method:
            # COMPRESSION_DONE itself went out uncompressed
            self._start_compression(method)
        self.state = State.SESSION_ACCEPTING

    # ---- server: the session decision table ------------------------------------
    #
    # What the accepting side does with CLIENT_IDENT and SESSION_RECONNECT,
    # row by row as Ceph's ProtocolV2::handle_client_ident,
    # handle_existing_connection and handle_reconnect decide it (16.2 to
    # 20.2).  The session is looked up by the peer's address vector, as
    # Ceph's lookup_conn does; the row taken is kept in self.decisions.

    def _server_client_ident(self, frame: F.ClientIdent) -> None:
        if not frame.addrs.addrs or all(a.is_blank_ip() and not a.port and not a.nonce
                                        for a in frame.addrs.addrs):
            raise IdentMismatch("client sent no usable address in CLIENT_IDENT")
        ours = self.server_addrs.addrs if self.server_addrs else ()
        if not any(_same_endpoint(frame.target_addr, a) for a in ours):
            raise IdentMismatch("client is trying to reach %s, which is not us (%s)" % (
                frame.target_addr, self.server_addrs))
        missing = self.config.features_required & ~frame.supported_features
        if missing:
            self._decide(Decision.IDENT_MISSING_FEATURES)
            self._send(F.IdentMissingFeatures(missing))
            return
        self.peer_addrs = frame.addrs
        self.peer_global_id = frame.gid if frame.gid >= 0 else self.global_id
        self.features = self.config.features_supported & frame.supported_features
        policy = self.policy
        peer_key = str(frame.addrs)
        if policy.server and policy.lossy and not policy.register_lossy_clients:
            # a lossy client of a stateless server: nothing to look up
            self._decide(Decision.IDENT_UNREGISTERED)
            self._accept_ident(frame, self._fresh_session(frame, peer_key, register=False))
            return
        existing = self.sessions.for_peer(peer_key)
        if existing is None or existing is self.session:
            self._decide(Decision.IDENT_NEW)
            self._accept_ident(frame, self._fresh_session(frame, peer_key, register=True))
            return
        if existing.peer_global_seq > frame.global_seq:
            # an attempt older than the connection we have: drop it, keep ours
            self._decide(Decision.IDENT_STALE)
            self._close("stale connection attempt from %s: global_seq %d, the session has %d"
                        % (peer_key, frame.global_seq, existing.peer_global_seq))
            return
        if existing.lossy:
            # one connection per client: the newer one replaces the lossy one
            self._decide(Decision.IDENT_REPLACES_LOSSY)
            self.sessions.remove(existing)
            self._replace_connection(existing, session_lost=True)
            self._accept_ident(frame, self._fresh_session(frame, peer_key, register=True))
            return
        if existing.server_cookie and existing.client_cookie and existing.client_cookie != frame.cookie:
            # the peer restarted: its new session replaces the old one
            self.sessions.remove(existing)
            if policy.resetcheck:
                self._decide(Decision.IDENT_PEER_RESTARTED_RESET)
                old_cookie = existing.client_cookie
                existing.reset()
                self._events.append(E.RemoteReset(old_cookie))
            else:
                self._decide(Decision.IDENT_PEER_RESTARTED_KEEP)
            self._reuse_session(frame, existing)
            return
        if existing.client_cookie == frame.cookie:
            # the peer never got our SERVER_IDENT: establish the same session again
            self._decide(Decision.IDENT_INTERRUPTED)
            self._reuse_session(frame, existing)
            return
        if _session_state(existing) in ("ready", "standby"):
            self._decide(Decision.IDENT_REUSE)
            self._reuse_session(frame, existing)
            return
        # both sides are connecting to each other: a connect race
        if policy.server or self._incoming_wins(frame.addrs):
            self._decide(Decision.IDENT_RACE_INCOMING_WINS)
            session = self._take_over_from_our_attempt(existing, frame, peer_key)
            self._accept_ident(frame, session)
            return
        self._decide(Decision.IDENT_RACE_EXISTING_WINS)
        # our own attempt carries the session; make sure it goes on (Ceph kicks it)
        self._events.append(E.WaitSent(peer_key))
        self._send(F.Wait())

    @property
    def decision(self) -> Optional["Decision"]:
        """The last decision-table row taken (None before CLIENT_IDENT or SESSION_RECONNECT)."""
        return self.decisions[-1] if self.decisions else None

    def _decide(self, row: "Decision") -> None:
        self.decisions.append(row)

    def _fresh_session(self, frame: F.ClientIdent, peer_key: str, register: bool) -> Session:
        session = self.session
        session.client_cookie = frame.cookie
        session.lossy = self.policy.lossy
        session.server_cookie = 0 if session.lossy else (self.cookie or _new_cookie())
        session.peer_key = peer_key
        if register:
            self.sessions.add(session)
        return session

    def _reuse_session(self, frame: F.ClientIdent, existing: Session) -> None:
        """
        Ceph's reuse_connection for a CLIENT_IDENT: this connection carries
        the existing session from now on, with the peer's new client cookie,
        a new server cookie, and what we had not seen acknowledged sent again.
        """
        self._replace_connection(existing)
        self.sessions.remove(existing)
        existing.client_cookie = frame.cookie
        existing.server_cookie = self.cookie or _new_cookie()
        existing.in_seq = 0
        self.sessions.add(existing)
        self._accept_ident(frame, existing, replay=list(existing.unacked))

    def _accept_ident(self, frame: F.ClientIdent, session: Session, replay=()) -> None:
        """SERVER_IDENT for C{session}, then READY (Ceph's send_server_ident)."""
        lossy = session.lossy
        if not lossy:
            self._keep_resume_key(session)
        session.peer_global_seq = frame.global_seq
        session.peer_global_id = self.peer_global_id
        session.peer_addrs = frame.addrs
        session.features = self.features
        session.connection = self
        self.session = session
        cfg = self.config
        self._send(F.ServerIdent(
            self.server_addrs, cfg.entity_num, self.global_seq,
            cfg.features_supported, cfg.features_required,
            IDENT_FLAG_LOSSY if lossy else 0, session.server_cookie))
        self._become_ready(lossy, replay=replay)

    def _incoming_wins(self, peer_addrs: entity_addrvec_t) -> bool:
        """
        A connect race: Ceph keeps the connection started by the peer with
        the lower address (compared as addr_sort_key orders them).
        """
        ours = self.config.my_addrs or self.server_addrs
        if ours is None or not ours.addrs or not peer_addrs.addrs:
            return True
        return _race_key(peer_addrs) < _race_key(ours)

    def _take_over_from_our_attempt(self, session: Session, frame: F.ClientIdent, peer_key: str) -> Session:
        """
        The peer's connection wins the race: our own attempt is dropped and
        the peer's session (a new one, seen from this side) carries what we
        had queued for it.
        """
        self._replace_connection(session)
        self.sessions.remove(session)
        session.in_seq = session.out_seq = 0
        session.connect_seq = 0
        session.unacked = ()
        session.lossy = False
        session.client_cookie = frame.cookie
        session.server_cookie = self.cookie or _new_cookie()
        session.peer_key = peer_key
        self.sessions.add(session)
        session.connection = self
        self.session = session
        self._events.append(E.RaceWon(peer_key))
        return session

    def _replace_connection(self, session: Session, session_lost: bool = False) -> None:
        """Close the connection that carried C{session} before this one."""
        old = session.connection
        session.connection = None
        if old is not None and old is not self and old.state is not State.CLOSED:
            old.close()
            self._events.append(E.ConnectionReplaced(old, session_lost))

    def _server_session_reconnect(self, frame: F.SessionReconnect) -> None:
        peer_key = str(frame.addrs)
        existing = self.sessions.for_peer(peer_key)
        if existing is None:
            self._decide(Decision.RECONNECT_UNKNOWN)
            self._send(F.SessionReset(True))
            return
        if existing.client_cookie != frame.client_cookie:
            # not the session the peer means: we must have reset it
            self._decide(Decision.RECONNECT_OTHER_SESSION)
            self._send(F.SessionReset(self.policy.resetcheck))
            return
        if not existing.server_cookie:
            # we never got the SERVER_IDENT of this session: the peer
            # establishes it again, keeping what it queued
            self._decide(Decision.RECONNECT_NOT_ESTABLISHED)
            self._send(F.SessionReset(False))
            return
        if existing.peer_global_seq > frame.global_seq:
            self._decide(Decision.RECONNECT_STALE_GLOBAL_SEQ)
            self._send(F.SessionRetryGlobal(existing.peer_global_seq))
            return
        if existing.connect_seq > frame.connect_seq:
            self._decide(Decision.RECONNECT_STALE_CONNECT_SEQ)
            self._send(F.SessionRetry(existing.connect_seq))
            return
        if existing.connect_seq == frame.connect_seq:
            # both sides are reconnecting: the lower address's attempt wins
            ours = self.config.my_addrs or self.server_addrs
            if (not self.policy.server and ours is not None and ours.addrs
                    and _race_key(frame.addrs) > _race_key(ours)):
                self._decide(Decision.RECONNECT_RACE_EXISTING_WINS)
                # our own attempt carries the session: the I/O layer makes sure it goes on
                self._events.append(E.WaitSent(peer_key))
                self._send(F.Wait())
                return
            self._decide(Decision.RECONNECT_RACE_INCOMING_WINS)
        else:
            self._decide(Decision.RECONNECT)
        # the peer's connection takes the session over
        self._replace_connection(existing)
        existing.connection = self
        existing.connect_seq = frame.connect_seq
        existing.peer_global_seq = frame.global_seq
        existing.peer_addrs = frame.addrs
        self.session = existing
        self.peer_addrs = frame.addrs
        self.peer_global_id = existing.peer_global_id
        self.features = existing.features
        self._keep_resume_key(existing)
        self._send(F.SessionReconnectOk(existing.in_seq))
        self._become_ready(False, reconnected=True, replay=existing.replay_after(frame.msg_seq))

    # ---- fast reconnect (msgr2tx's session resume, docs/protocol.md) ------------

    def _keep_resume_key(self, session: Session) -> None:
        """
        READY by an auth exchange: its session key may resume this session
        later.  Without one (auth none) there is nothing to prove: such a
        session reconnects with SESSION_RECONNECT.
        """
        session.resume_key = self._session_key or None
        session.resume_expires = self._auth_expires

    def _resume_modes(self) -> Tuple[int, ...]:
        """Our modes a fast reconnect may ask for: secure only with a session key to derive its secret from."""
        key = self.session.resume_key
        return tuple(m for m in self.config.modes
                     if m == ConnectionMode.CRC or (m == ConnectionMode.SECURE and key))

    def _resume_possible(self, peer_supported: int) -> bool:
        """
        Client: a fast reconnect is worth trying: both of us offer the bit,
        the session is an established lossless one whose key we hold and
        whose ticket has not expired, and a connection mode fits.
        """
        cfg = self.config
        session = self.session
        if (self.role is not Role.CLIENT or not cfg.fast_reconnect
                or not peer_supported & cfg.msgr2_supported & Msgr2Feature.MSGR2TX_FAST_RECONNECT):
            return False
        if (self.policy.lossy or session.lossy or not session.server_cookie or not session.client_cookie
                or session.resume_key is None):
            return False
        if session.resume_expires and self.clock() >= session.resume_expires:
            return False
        return bool(self._resume_modes())

    def _resume_request(self, modes: Tuple[int, ...]) -> bytes:
        """
        Client: the fast reconnect's AUTH_REQUEST payload, with as many of
        the session's messages as fit in L{R.EARLY_DATA_LIMIT}: those sent
        but not acknowledged first (with their seqs), then queued ones (they
        get their seqs now and count as sent, so a refusal replays them).
        """
        session = self.session
        key = session.resume_key or b""
        self.features = session.features
        client_random = secrets.token_bytes(R.RANDOM_SIZE)
        messages = self._early_messages()
        request = R.ResumeRequest(session.client_cookie, session.server_cookie, self.global_seq,
                                  session.connect_seq, session.in_seq, client_random, len(messages), b"", b"")
        sealed = R.seal_early(R.early_key(key, client_random, session.client_cookie, session.server_cookie,
                                          self.global_seq), request.head(), R.encode_early(messages))
        request = request._replace(early_data=sealed)
        request = request._replace(proof=R.request_proof(key, request, modes))
        self._resume = (request, modes)
        self.early_messages = len(messages)
        return request.encode()

    def _early_message(self, message, seq: int, front, middle, data):
        session = self.session
        message.seq = seq
        header = _HEADER2.pack(seq, message.tid, message.TYPE, message.priority, message.version, 0,
                               message.data_off, session.in_seq, message.flags, message.compat_version, 0)
        return header, bytes(front), bytes(middle), bytes(data)

    def _early_messages(self) -> list:
        session = self.session
        out: list = []
        room = R.EARLY_DATA_LIMIT
        for seq, message in session.unacked:
            front, middle, data = message.encode(self.features)
            size = R.early_size(front, middle, data)
            if size > room:
                return out  # the rest of the replay waits for READY, and so does the queue
            room -= size
            out.append(self._early_message(message, seq, front, middle, data))
        pending = session.pending
        while pending and not self.tx_paused:
            message = pending.peek()
            if payload_size(message) > room:
                break
            front, middle, data = message.encode(self.features)
            size = R.early_size(front, middle, data)
            if size > room:
                break
            room -= size
            pending.popleft()
            seq = session.next_out_seq()
            session.keep_unacked(seq, message)
            out.append(self._early_message(message, seq, front, middle, data))
        return out

    def _client_fast_reconnect_done(self, frame: F.AuthDone) -> None:
        """Client: AUTH_DONE accepting our fast reconnect: check the server's proof, switch keys, sign."""
        assert self._resume is not None
        request, modes = self._resume
        self._resume = None
        if frame.con_mode not in modes:
            raise UnexpectedFrame("server chose connection mode %d that our fast reconnect did not offer"
                                  % frame.con_mode)
        try:
            reply = R.ResumeReply.decode(frame.payload)
        except ResumeRefused as e:
            raise ResumeFailed(str(e)) from None
        key = self.session.resume_key or b""
        expected = R.reply_proof(key, request, reply.server_random, reply.msg_seq, frame.con_mode,
                                 frame.global_id)
        if not R.proofs_match(expected, reply.proof):
            raise ResumeFailed("the server's fast reconnect reply does not prove it holds the session key")
        self.global_id = frame.global_id
        self.con_mode = ConnectionMode(frame.con_mode)
        # the transcript we sign ends with AUTH_DONE
        self.reader.recording = None
        keys = R.connection_keys(key, request, reply.server_random)
        self._install_keys(keys.signature_key, keys.connection_secret)
        self._send_signature()
        self._resume_msg_seq = reply.msg_seq
        self._resumed = True
        self.state = State.AUTH_CONNECTING_SIGN
        self._events.append(E.FastReconnectAccepted(self.early_messages))

    def _client_fast_reconnect_ready(self) -> None:
        """Client: the server's AUTH_SIGNATURE checked: READY, replaying what it has not got."""
        session = self.session
        self.peer_global_id = session.peer_global_id
        self.peer_addrs = session.peer_addrs
        self.features = session.features
        self.fast_reconnected = True
        self._events.append(E.PolicyGranted(False, self.config.lossy))
        self._become_ready(False, reconnected=True, replay=session.replay_after(self._resume_msg_seq))

    def _server_fast_reconnect(self, frame: F.AuthRequest) -> None:
        """Server: an AUTH_REQUEST of the fast reconnect method: accept it, or refuse with AUTH_BAD_METHOD."""
        try:
            session, request, mode, early = self._check_fast_reconnect(frame)
        except ResumeRefused as e:
            self.resume_refusal = e
            self._events.append(E.FastReconnectRefused(e))
            methods, modes = self.auth_offer
            self._send(F.AuthBadMethod(frame.method, R.refusal_result(e), tuple(methods), tuple(modes)))
            return
        self._decide(Decision.FAST_RECONNECT)
        # this connection takes the session over (as SESSION_RECONNECT would)
        self._replace_connection(session)
        session.connection = self
        session.connect_seq = max(session.connect_seq, request.connect_seq)
        session.peer_global_seq = request.global_seq
        self.session = session
        self.peer_addrs = session.peer_addrs
        self.peer_global_id = self.global_id = session.peer_global_id
        self.features = session.features
        self.con_mode = ConnectionMode(mode)
        self._rx_src = None
        # the early messages: delivered now (counted in in_seq, duplicates dropped)
        for header, front, middle, data in early:
            self._fast_message(header, 0, front, middle, data)
        key = session.resume_key or b""
        server_random = secrets.token_bytes(R.RANDOM_SIZE)
        msg_seq = session.in_seq
        proof = R.reply_proof(key, request, server_random, msg_seq, mode, self.global_id)
        self.reader.recording = None
        self._send(F.AuthDone(self.global_id, mode, R.ResumeReply(server_random, msg_seq, proof).encode()))
        keys = R.connection_keys(key, request, server_random)
        self._install_keys(keys.signature_key, keys.connection_secret)
        self._send_signature()
        self._resumed = True
        self._resume_msg_seq = request.msg_seq
        self.state = State.AUTH_ACCEPTING_SIGN
        self._events.append(E.FastReconnectAccepted(len(early)))

    def _check_fast_reconnect(self, frame: F.AuthRequest):
        """(session, request, mode, early messages) of an acceptable request; else a L{ResumeRefused}."""
        if not self.peer_supported & self.config.msgr2_supported & Msgr2Feature.MSGR2TX_FAST_RECONNECT:
            raise ResumeNotNegotiated("a fast reconnect from a peer whose banner did not offer it")
        request = R.ResumeRequest.decode(frame.payload)
        session = self.sessions.get(request.client_cookie)
        if (session is None or session.lossy or not session.server_cookie
                or session.server_cookie != request.server_cookie or session.resume_key is None):
            raise ResumeUnknownSession("no lossless session with the cookies of the fast reconnect")
        key = session.resume_key
        if not R.proofs_match(R.request_proof(key, request, frame.preferred_modes), request.proof):
            raise ResumeTampered("the fast reconnect's proof does not verify")
        if request.global_seq == session.peer_global_seq:
            raise ResumeReplayed("fast reconnect with global_seq %d, which the session last accepted"
                                 % request.global_seq)
        if request.global_seq < session.peer_global_seq:
            raise ResumeStale("fast reconnect with global_seq %d, below the session's %d"
                              % (request.global_seq, session.peer_global_seq))
        if session.resume_expires and self.clock() >= session.resume_expires:
            raise ResumeExpired("the ticket of the session's key expired %.0f s ago"
                                % (self.clock() - session.resume_expires))
        mode = next((m for m in frame.preferred_modes if m in self.config.modes
                     and (m == ConnectionMode.CRC or (m == ConnectionMode.SECURE and key))), 0)
        if not mode:
            raise ResumeRefused("no connection mode of the fast reconnect is allowed here")
        plaintext = R.open_early(R.early_key(key, request.client_random, request.client_cookie,
                                             request.server_cookie, request.global_seq),
                                 request.head(), request.early_data)
        if len(plaintext) > R.EARLY_DATA_LIMIT:
            raise ResumeTampered("fast reconnect early data of %d bytes, above the %d allowed"
                                 % (len(plaintext), R.EARLY_DATA_LIMIT))
        return session, request, mode, R.decode_early(plaintext, request.early_count)

    # ---- ready ------------------------------------------------------------------

    def _become_ready(self, lossy: bool, reconnected: bool = False, replay=()) -> None:
        self.state = State.READY
        self._rx_src = None
        self.session.connection = self
        self._events.append(E.Ready(
            self.peer_name, self.peer_addrs, self.features, int(self.con_mode),
            self.rev1, self.global_id, lossy, reconnected))
        for seq, message in replay:
            self._write_message(message, seq)
        self._drain_pending()

    def _drain_pending(self) -> None:
        pending = self.session.pending
        while pending and not self.tx_paused:
            self._send_message_now(pending.popleft())

    def pause_tx(self) -> None:
        """Hold new messages in the session queue (the transport is full)."""
        self.tx_paused = True

    def resume_tx(self, limit: Optional[int] = None) -> None:
        """
        Write held messages, highest priority first: all of them, or at most
        C{limit} (the I/O layer writes a few at a time, so that a transport
        that fills up again can pause us in between).
        """
        self.tx_paused = False
        if self.state is not State.READY:
            return
        if self._keepalive_ack_due is not None:
            stamp, self._keepalive_ack_due = self._keepalive_ack_due, None
            self._send(F.Keepalive2Ack(stamp))
        if limit is None:
            self._drain_pending()
            return
        pending = self.session.pending
        while pending and limit > 0 and not self.tx_paused:
            self._send_message_now(pending.popleft())
            limit -= 1

    def send_message(self, message) -> None:
        """Queue a message; before READY it waits in the session."""
        if self.state is State.READY and not self.tx_paused:
            # (_send_message_now and Session.next_out_seq, inlined)
            session = self.session
            seq = session.out_seq = session.out_seq + 1
            if not session.lossy:
                session.keep_unacked(seq, message)
            try:
                self._write_message(message, seq)
            except ProtocolError:
                self.state = State.CLOSED
                raise
        elif self.state is State.CLOSED and self.session.lossy:
            raise LocalProtocolError("connection is closed")
        else:
            # before READY, while paused, or on a lossless session whose
            # connection failed: the next connection sends it
            self.session.pending.append(message)

    def _send_message_now(self, message) -> None:
        session = self.session
        seq = session.next_out_seq()
        if not session.lossy:
            # counted as sent before it is written: a fault while writing
            # leaves it for the replay
            session.keep_unacked(seq, message)
        self._write_message(message, seq)

    def _write_message(self, message, seq: int) -> None:
        in_seq = self.session.in_seq
        if type(message) is GenericMessage:
            front = message.front
            middle = message.middle
            data = message.data
        else:
            front, middle, data = message.encode(self.features)
        message.seq = seq
        # ceph_msg_header2, packed straight from the message (hot path)
        header = _HEADER2.pack(seq, message.tid, message.TYPE, message.priority, message.version, 0,
                               message.data_off, in_seq, message.flags, message.compat_version, 0)
        if self.interceptor is not None:
            self._intercept_write(Tag.MESSAGE)
        parts = self.writer.assemble_message(header, front, middle, data, _MESSAGE_ALIGNS)
        # (_output, inlined)
        if self._held_out is not None:
            self._held_out.extend(parts)
        else:
            self._out.extend(parts)
        self.queued_message_bytes += _HEADER2_SIZE + len(front) + len(middle) + len(data)
        self._last_ack_sent = in_seq

    def send_keepalive(self, timestamp: utime_t) -> None:
        self._require(State.READY, "send KEEPALIVE2")
        self._send(F.Keepalive2(timestamp))

    def _ready_message(self, segments) -> None:
        # the MESSAGE handler gets the raw segments (see _process): the
        # header is unpacked here without building intermediate objects
        header = segments[0]
        if len(header) != F.HEADER2_SIZE:
            raise DecodeError("ceph_msg_header2 is %d bytes, not %d" % (len(header), F.HEADER2_SIZE))
        n = len(segments)
        self._fast_message(header, 0, segments[1] if n > 1 else b"", segments[2] if n > 2 else b"",
                           segments[3] if n > 3 else b"")

    def _fast_message(self, src, offset: int, front, middle, data) -> None:
        """A MESSAGE whose ceph_msg_header2 is at C{offset} in C{src} (the fast path and L{_ready_message})."""
        (seq, tid, msg_type, priority, version, _, data_off, ack_seq, flags,
         compat_version, _) = _HEADER2.unpack_from(src, offset)
        session = self.session
        if ack_seq:
            unacked = session.unacked
            if unacked and unacked[0][0] <= ack_seq:
                session.acked(ack_seq)
        # (Session.accept_in_seq, inlined)
        if seq <= session.in_seq:
            return  # a duplicate after replay
        session.in_seq = seq
        src = self._rx_src
        if src is None:
            src = self._rx_src = self.peer_name
        if msg_type not in MESSAGE_TYPES:
            # a type we do not decode (what decode_message would give, in one step)
            self._events.append(E.MessageReceived(received_generic(
                msg_type, front, middle, data, seq, tid, priority, version, compat_version, flags, data_off,
                ack_seq, src)))
            return
        message = decode_message(msg_type, front, middle, data, version, self.features,
                                 compat_version=compat_version)
        message.seq = seq
        message.tid = tid
        message.priority = priority
        message.version = version
        message.compat_version = compat_version
        message.flags = flags
        message.data_off = data_off
        message.ack_seq = ack_seq
        message.src = src
        self._events.append(E.MessageReceived(message))

    def _ready_keepalive(self, frame: F.Keepalive2) -> None:
        if self.tx_paused:
            # the transport is full (the peer is not reading): answer only
            # the newest one when it drains, so that a peer sending
            # keepalives and reading nothing cannot queue acks without end
            self._keepalive_ack_due = frame.timestamp
        else:
            self._send(F.Keepalive2Ack(frame.timestamp))
        self._events.append(E.KeepaliveReceived(frame.timestamp))

    def _ready_keepalive_ack(self, frame: F.Keepalive2Ack) -> None:
        self._events.append(E.KeepaliveAckReceived(frame.timestamp))

    def _ready_ack(self, frame: F.Ack) -> None:
        self.session.acked(frame.seq)
        self._events.append(E.AckReceived(frame.seq))

    def send_ack(self) -> None:
        """
        With C{defer_acks}: send an ACK now if messages arrived since the
        last one we acknowledged (a MESSAGE we wrote meanwhile carried the
        ack in its header, so replies make explicit ACKs unnecessary).
        """
        if self.state is State.READY:
            try:
                self._maybe_ack()
            except ProtocolError:
                self.state = State.CLOSED
                raise

    def _maybe_ack(self) -> None:
        if self.session.lossy:
            return  # ACK frames only on lossless sessions (Ceph counts ack_left only there)
        in_seq = self.session.in_seq
        if in_seq > self._last_ack_sent:
            self._last_ack_sent = in_seq
            self._send(F.Ack(in_seq))

    # ---- helpers -------------------------------------------------------------------

    def _require(self, state: State, what: str) -> None:
        if self.state is not state:
            raise LocalProtocolError("cannot %s in state %s" % (what, self.state.value))

    def _close(self, reason: str) -> None:
        self.state = State.CLOSED
        self._events.append(E.ConnectionDone(reason))

    def close(self) -> None:
        self.state = State.CLOSED


def addr_sort_key(addr: entity_addr_t) -> bytes:
    """
    How Ceph orders addresses in races: the bytes of its entity_addr_t in
    memory (type and nonce as little-endian u32, then the sockaddr: family
    little-endian, port big-endian, the IP address).
    """
    host = addr.host.packed if addr.host is not None else b""
    return struct.pack("<IIH", addr.type, addr.nonce, addr.family) + struct.pack(">H", addr.port) + host


def _race_key(addrs: entity_addrvec_t) -> bytes:
    """The address Ceph compares in races: the msgr2 one of a vector (else its first)."""
    addr = addrs.msgr2_addr() or addrs.addrs[0]
    return addr_sort_key(addr)


def _session_state(session: Session) -> str:
    """
    What Ceph's AsyncConnection state for this session would be: "ready"
    (a READY connection carries it), "standby" (established, no connection
    now) or "connecting" (our own attempt, not established yet).
    """
    conn = session.connection
    if conn is not None and conn.state is State.READY:
        return "ready"
    if conn is not None and conn.state is not State.CLOSED and conn.role is Role.CLIENT:
        return "connecting"
    if session.server_cookie:
        return "standby"
    return "connecting"


def _new_cookie() -> int:
    return secrets.randbits(64) or 1


def _same_endpoint(a: entity_addr_t, b: entity_addr_t) -> bool:
    """Ceph compares addresses byte for byte; ANY matches a msgr2 address."""
    types = {AddrType.MSGR2, AddrType.ANY}
    return (a.host == b.host and a.port == b.port and a.nonce == b.nonce
            and (a.type == b.type or (a.type in types and b.type in types)))
