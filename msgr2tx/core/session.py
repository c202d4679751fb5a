"""
Session state that outlives a single TCP connection: cookies, sequence
numbers and the queue of messages sent but not yet acknowledged.
"""

from collections import deque
from typing import Deque, Tuple


class Session:
    """
    One msgr2 session with one peer.

    @ivar client_cookie: chosen by the client, non-zero for lossless sessions.
    @ivar server_cookie: chosen by the server in SERVER_IDENT (0 if lossy).
    @ivar connect_seq: bumped on every reconnect attempt.
    @ivar in_seq: the highest message seq received and accepted.
    @ivar out_seq: the seq given to the last message sent.
    @ivar unacked: (seq, message) pairs sent but not covered by an ack.
    @ivar pending: messages queued before the session was ready.
    """

    def __init__(self, client_cookie: int = 0) -> None:
        self.client_cookie = client_cookie
        self.server_cookie = 0
        self.connect_seq = 0
        self.peer_global_seq = 0
        self.in_seq = 0
        self.out_seq = 0
        self.lossy = True
        self.unacked: Deque[Tuple[int, object]] = deque()
        self.pending: Deque[object] = deque()

    def next_out_seq(self) -> int:
        self.out_seq += 1
        return self.out_seq

    def acked(self, seq: int) -> int:
        """Drop sent messages with seq <= C{seq}; returns how many."""
        n = 0
        unacked = self.unacked
        while unacked and unacked[0][0] <= seq:
            unacked.popleft()
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
