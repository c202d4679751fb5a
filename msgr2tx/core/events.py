"""
Events: the only way the core tells the I/O layer what happened.

L{msgr2tx.core.connection.Msgr2Connection.receive_data} returns a list of
these.  Events that end in C{...Received} for the auth exchange block the
core until the I/O layer answers with the matching verb.
"""

from dataclasses import dataclass, field
from typing import Optional, Tuple

from msgr2tx.core.encoding import entity_addr_t, entity_addrvec_t, entity_name_t, utime_t


class Event:
    """Base class of all core events."""


@dataclass(frozen=True)
class BannerExchanged(Event):
    peer_supported: int
    peer_required: int
    rev1: bool


@dataclass(frozen=True)
class FirstFlightMissed(Event):
    """
    Client: the peer is not the one our speculative first flight assumed
    (the connection closes with L{msgr2tx.errors.SpeculationFailed} right
    after this event); forget what was known about it.
    """

    reason: str


@dataclass(frozen=True)
class HelloReceived(Event):
    entity_type: int
    #: the address the peer sees for us
    peer_addr: entity_addr_t


@dataclass(frozen=True)
class AuthRequestNeeded(Event):
    """Client: choose a method and send AUTH_REQUEST (verb L{send_auth_request})."""

    #: methods the server allows after an AUTH_BAD_METHOD, else None
    allowed_methods: Optional[Tuple[int, ...]] = None
    allowed_modes: Optional[Tuple[int, ...]] = None
    rejected_method: int = 0
    result: int = 0


@dataclass(frozen=True, repr=False)
class AuthReplyMoreReceived(Event):
    """Client: answer with L{send_auth_request_more}."""

    payload: bytes

    def __repr__(self):
        return "AuthReplyMoreReceived(<%d bytes>)" % len(self.payload)


@dataclass(frozen=True, repr=False)
class AuthDoneReceived(Event):
    """Client: derive keys and call L{auth_finish}."""

    global_id: int
    con_mode: int
    payload: bytes

    def __repr__(self):
        return "AuthDoneReceived(global_id=%d, con_mode=%d, <%d bytes>)" % (
            self.global_id, self.con_mode, len(self.payload))


@dataclass(frozen=True, repr=False)
class AuthRequestReceived(Event):
    """Server: answer with L{send_auth_reply_more}, L{send_auth_done} or L{send_auth_bad_method}."""

    method: int
    preferred_modes: Tuple[int, ...]
    payload: bytes
    #: True for AUTH_REQUEST_MORE (a continuation of the same method)
    more: bool = False

    def __repr__(self):
        return "AuthRequestReceived(method=%d, modes=%r, more=%r, <%d bytes>)" % (
            self.method, self.preferred_modes, self.more, len(self.payload))


@dataclass(frozen=True)
class Ready(Event):
    """The session is established: messages may flow."""

    peer_name: entity_name_t
    peer_addrs: entity_addrvec_t
    features: int
    con_mode: int
    rev1: bool
    global_id: int
    lossy: bool
    reconnected: bool = False


@dataclass(frozen=True)
class PolicyGranted(Event):
    """
    Client: the session policy the server granted, just before L{Ready}.

    The server's policy alone decides whether a session is lossy (Ceph's
    C{Messenger::Policy}; a monitor grants clients lossy sessions whatever
    they ask for): SERVER_IDENT carries its C{CEPH_MSG_CONNECT_LOSSY} flag,
    and a SESSION_RECONNECT_OK always resumes a lossless session.  When
    C{lossy} differs from C{requested_lossy} the session is not what the
    client asked for: a lossless request granted lossy loses whatever is in
    flight when its connection fails.
    """

    #: the granted session is lossy
    lossy: bool
    #: we asked for a lossy session (C{ConnectionConfig.lossy})
    requested_lossy: bool

    @property
    def downgraded(self) -> bool:
        """We asked for a lossless session and were granted a lossy one."""
        return self.lossy and not self.requested_lossy

    @property
    def differs(self) -> bool:
        return self.lossy != self.requested_lossy


@dataclass(frozen=True)
class MessageReceived(Event):
    message: object


@dataclass(frozen=True)
class KeepaliveReceived(Event):
    timestamp: utime_t


@dataclass(frozen=True)
class KeepaliveAckReceived(Event):
    timestamp: utime_t


@dataclass(frozen=True)
class AckReceived(Event):
    seq: int


@dataclass(frozen=True)
class MissingFeaturesReceived(Event):
    """The server lacks features we require (IDENT_MISSING_FEATURES)."""

    features: int


@dataclass(frozen=True)
class SessionResetReceived(Event):
    full: bool


@dataclass(frozen=True)
class WaitReceived(Event):
    pass


@dataclass(frozen=True)
class RemoteReset(Event):
    """Server: a peer came back with a new client cookie; its old session is gone."""

    old_client_cookie: int


@dataclass(frozen=True, eq=False)
class ConnectionReplaced(Event):
    """
    Server: a newer connection took the session over; close the old one.
    With C{session_lost} the old connection's (lossy) session ended with it:
    what Ceph reports to the application as a reset.
    """

    old: object
    session_lost: bool = False


@dataclass(frozen=True)
class ConnectionDone(Event):
    """The core wants the transport closed (after flushing)."""

    reason: str = ""
    error: Optional[BaseException] = field(default=None, compare=False)


@dataclass(frozen=True)
class Intercepted(Event):
    """A test breakpoint blocked or stalled the connection (see L{release})."""

    point: str
    tag: Optional[int]
    action: str
    seconds: float = 0.0


@dataclass(frozen=True)
class WaitSent(Event):
    """
    Server: a connect race that our own attempt wins; the peer was told to
    WAIT, and our attempt to reach C{peer_key} must go on (Ceph kicks it).
    """

    peer_key: str


@dataclass(frozen=True)
class RaceWon(Event):
    """Server: the peer's connection won a connect race; ours was dropped."""

    peer_key: str


@dataclass(frozen=True)
class FastReconnectAccepted(Event):
    """
    Both roles: a fast reconnect (docs/protocol.md) was accepted; the
    connection is READY once AUTH_SIGNATURE has been checked.
    C{early_messages}: how many messages rode in the request.
    """

    early_messages: int


@dataclass(frozen=True)
class FastReconnectRefused(Event):
    """
    Both roles: a fast reconnect was refused (C{error}, a
    L{msgr2tx.errors.ResumeRefused}).  The client goes on with an ordinary
    auth method on the same connection (an L{AuthRequestNeeded} follows).
    """

    error: Exception
