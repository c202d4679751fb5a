"""
Session state that outlives a single TCP connection: cookies, sequence
numbers and the queue of messages sent but not yet acknowledged.
"""

import heapq
import itertools
from collections import deque
from typing import Deque, Dict, List, Optional, Tuple, Union


class OutQueue:
    """
    Messages waiting to be written: highest priority first, first in first
    out within a priority (Ceph's per-priority queues).
    """

    __slots__ = ("_heap", "_order", "bytes")

    def __init__(self) -> None:
        self._heap: List[tuple] = []
        self._order = itertools.count()
        #: an estimate of the queued payload bytes (for send throttling)
        self.bytes = 0

    def append(self, message) -> None:
        size = payload_size(message)
        self.bytes += size
        heapq.heappush(self._heap, (-message.priority, next(self._order), size, message))

    def peek(self):
        """The message L{popleft} would return next (the queue must not be empty)."""
        return self._heap[0][3]

    def popleft(self):
        _, _, size, message = heapq.heappop(self._heap)
        self.bytes -= size
        return message

    def clear(self) -> None:
        self._heap.clear()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._heap)

    def __bool__(self) -> bool:
        return bool(self._heap)


def payload_size(message) -> int:
    """The bytes of a message's payload segments, as far as we can tell cheaply."""
    size = 0
    for name in ("front", "middle", "data", "inbl", "outbl"):
        value = getattr(message, name, None)
        if isinstance(value, (bytes, bytearray, memoryview)):
            size += len(value)
    return size


class Session:
    """
    One msgr2 session with one peer.

    @ivar client_cookie: chosen by the client, non-zero for lossless sessions.
    @ivar server_cookie: chosen by the server in SERVER_IDENT (0 if lossy).
    @ivar connect_seq: bumped on every reconnect attempt.
    @ivar in_seq: the highest message seq received and accepted.
    @ivar out_seq: the seq given to the last message sent.
    @ivar unacked: (seq, message) pairs sent but not covered by an ack.
    @ivar pending: messages waiting to be written (before READY, or while the
        transport is paused), in priority order.
    @ivar resume_key: the session key of the auth exchange that set up (or
        last reconnected) the session, for a fast reconnect (docs/protocol.md);
        None: none possible.  Secret: never shown.
    @ivar resume_expires: when the ticket behind C{resume_key} expires
        (seconds since the epoch; 0: it does not).
    """

    def __init__(self, client_cookie: int = 0) -> None:
        self.client_cookie = client_cookie
        self.server_cookie = 0
        self.connect_seq = 0
        self.peer_global_seq = 0
        self.in_seq = 0
        self.out_seq = 0
        self.lossy = True
        self.peer_global_id = 0
        self.peer_addrs = None
        self.features = 0
        #: the core connection carrying this session now (server side)
        self.connection = None
        #: the peer's address vector, as text (server side)
        self.peer_key = ""
        # (an empty tuple until the first message is kept: an empty deque
        # costs a 64-slot block, most of an idle lossy session's memory)
        self.unacked: Union[Deque[Tuple[int, object]], Tuple[()]] = ()
        self.pending = OutQueue()
        self.resume_key: Optional[bytes] = None
        self.resume_expires = 0.0

    def reset(self, new_client_cookie: int = 0) -> None:
        """
        Forget everything (a full SESSION_RESET): queued and unacknowledged
        messages are dropped and the sequence numbers start again.
        """
        self.client_cookie = new_client_cookie
        self.server_cookie = 0
        self.connect_seq = 0
        self.in_seq = 0
        self.out_seq = 0
        self.unacked = ()
        self.pending.clear()
        self.resume_key = None
        self.resume_expires = 0.0

    def replay_after(self, peer_in_seq: int):
        """
        The peer has everything up to C{peer_in_seq}: drop that from the
        unacknowledged queue and return what must be sent again, in order,
        with the original sequence numbers.
        """
        self.acked(peer_in_seq)
        return list(self.unacked)

    def keep_unacked(self, seq: int, message) -> None:
        """Keep a sent message until the peer acknowledges C{seq}."""
        unacked = self.unacked
        if type(unacked) is tuple:
            unacked = self.unacked = deque()
        unacked.append((seq, message))

    def next_out_seq(self) -> int:
        self.out_seq += 1
        return self.out_seq

    def acked(self, seq: int) -> int:
        """Drop sent messages with seq <= C{seq}; returns how many."""
        n = 0
        unacked = self.unacked
        while unacked and unacked[0][0] <= seq:
            unacked.popleft()  # type: ignore[union-attr]  # (non-empty: a deque)
            n += 1
        return n

    def accept_in_seq(self, seq: int) -> bool:
        """
        Record a received message's seq.  Returns False for a duplicate that
        must be dropped (seq at or below what we already have).
        """
        if seq <= self.in_seq:
            return False
        self.in_seq = seq
        return True

    def __repr__(self) -> str:
        return "<Session client_cookie=%x server_cookie=%x cs=%d in_seq=%d out_seq=%d unacked=%d>" % (
            self.client_cookie, self.server_cookie, self.connect_seq,
            self.in_seq, self.out_seq, len(self.unacked))


class GlobalSeq:
    """
    The messenger-wide connection counter: every connection attempt takes
    the next value, and it never goes backwards.
    """

    def __init__(self, start: int = 0) -> None:
        self.value = start

    def next(self) -> int:
        self.value += 1
        return self.value

    def raise_above(self, seen: int) -> int:
        """After SESSION_RETRY_GLOBAL: a value above both ours and the peer's."""
        self.value = max(self.value, seen) + 1
        return self.value


class SessionTable:
    """
    A server's registered sessions, by peer address (how the decision table
    finds them, as Ceph's lookup_conn) and, for lossless ones, by client cookie.
    """

    def __init__(self) -> None:
        self.by_cookie: Dict[int, Session] = {}
        self.by_peer: Dict[str, Session] = {}

    def __len__(self) -> int:
        return len(self.by_cookie)

    def get(self, client_cookie: int) -> Optional[Session]:
        return self.by_cookie.get(client_cookie)

    def for_peer(self, peer_key: str) -> Optional[Session]:
        return self.by_peer.get(peer_key)

    def add(self, session: Session) -> None:
        if session.client_cookie:
            self.by_cookie[session.client_cookie] = session
        if session.peer_key:
            self.by_peer[session.peer_key] = session

    def remove(self, session: Session) -> None:
        if self.by_cookie.get(session.client_cookie) is session:
            del self.by_cookie[session.client_cookie]
        if session.peer_key and self.by_peer.get(session.peer_key) is session:
            del self.by_peer[session.peer_key]
