"""
The Twisted adapter: a thin Protocol around L{msgr2tx.core.connection}.

C{dataReceived} feeds the core, dispatches its events, and writes what it
queued with C{writeSequence}.  Auth events go to the auth handlers through
C{maybeDeferred}, so a handler may answer later.  Protocol errors close the
connection cleanly and never reach Twisted's log as "Unhandled Error".
"""

import errno
import os
import time
import weakref
from collections import deque
from dataclasses import dataclass, fields
from types import CoroutineType
from typing import List, Optional

from twisted.internet import defer, main, tcp
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from msgr2tx.auth import AuthDone, AuthMore, AuthReject, AuthRequestInfo
from msgr2tx.core import events as E
from msgr2tx.core.compression import algorithm_name
from msgr2tx.core.connection import Msgr2Connection, Role, State
from msgr2tx.core.constants import AuthMethod, ConnectionMode
from msgr2tx.core.session import payload_size
from msgr2tx.core.speculation import KnownPeer
from msgr2tx.core.encoding import (
    AddrType, EntityType, addr_from_socket, entity_addr_t, entity_addrvec_t,
    utime_t,
)
import msgr2tx.messages  # noqa: F401  (importing it registers the Ceph message types)
from msgr2tx.errors import (
    AuthBadMethod, AuthError, AuthRejected, ConnectionClosed, HandshakeTimeout,
    InjectedFault, KeepaliveTimeout, LocalProtocolError, Msgr2Error, ProtocolError,
)


@dataclass(frozen=True)
class PeerInfo(E.Ready):
    """
    What L{Msgr2Protocol.whenReady} fires with: the L{E.Ready} event's
    fields (peer_name, peer_addrs, features, con_mode, rev1, global_id,
    lossy, reconnected), the agreed on-wire compression method
    (C{compression}, a L{msgr2tx.core.compression.CompressionAlgorithm}
    value, 0 for none), what we asked for, and conveniences.

    C{lossy} is the policy the session was I{granted}: the server's policy
    decides it, whatever the client asked for.  On the connecting side
    C{requested_lossy} is what we asked for (C{ConnectionConfig.lossy}), so
    C{downgraded} tells a lossless request that got a lossy session; on the
    accepting side it is None.
    """

    compression: int = 0
    #: client side: we asked for a lossy session; None on the server side
    requested_lossy: Optional[bool] = None

    @property
    def compression_name(self) -> str:
        """C{"zstd"}, or C{"none"}."""
        return algorithm_name(self.compression)

    @property
    def policy(self) -> str:
        """The granted session policy: C{"lossy"} or C{"lossless"}."""
        return "lossy" if self.lossy else "lossless"

    @property
    def downgraded(self) -> bool:
        """We asked for a lossless session and the server granted a lossy one."""
        return self.requested_lossy is False and self.lossy

    @property
    def mode_name(self) -> str:
        return ConnectionMode(self.con_mode).name.lower()

    @property
    def revision(self) -> int:
        return 1 if self.rev1 else 0


#: the transport's read size and write-buffer threshold
TRANSPORT_BUFFER = 256 << 10
#: bytes asked for by the first read after a large frame (see Msgr2Protocol._do_read)
PREFETCH = 64 << 10
#: most parts one C{sendmsg} call takes (the kernel's IOV_MAX; 1024 on Linux)
IOV_MAX = 1024
if "SC_IOV_MAX" in getattr(os, "sysconf_names", {}):
    IOV_MAX = max(16, min(os.sysconf("SC_IOV_MAX"), IOV_MAX))

#: received bytes held while the core waits for an auth answer, beyond
#: which reading pauses until the answer is in
BLOCKED_READ_LIMIT = 1 << 20
#: after the keepalive timeout, a silent peer gets this fraction of it more
#: to answer a KEEPALIVE2 probe before it is faulted
PROBE_FRACTION = 0.25

#: whenWritable() waiters of lossless sessions that have no connection now,
#: by session: the next connection that carries the session fires them once
#: its queue is below the limits
_session_writers: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


@implementer(IPushProducer)
class Msgr2Protocol(Protocol):
    """
    One msgr2 connection in either role.  The factory supplies the config,
    the auth handlers, the receiver and (server side) its addresses.

    Backpressure: the protocol is the transport's streaming producer.  When
    the transport's buffer fills, new messages wait in the session queue
    (in priority order) and L{whenWritable} holds callers back.  The protocol
    stops reading from the peer (as Ceph's throttles stop reading the
    socket) while any of these holds, and reads again once all are clear:

      - the receiver's C{messageReceived} returned Deferreds that have not
        fired for more than C{receive_window_messages} or
        C{receive_window_bytes};
      - on an accepted connection, the session queue holds
        C{send_queue_bytes} or C{send_queue_messages} (a peer that sends and never reads cannot
        make us queue replies without end); reading resumes below half;
      - the core waits for an auth answer and more than L{BLOCKED_READ_LIMIT}
        bytes arrived meanwhile.
    """

    log = Logger()

    def __init__(self, role: Role, config, auth_handlers, receiver=None,
                 target_addr: Optional[entity_addr_t] = None, clock=None,
                 handshake_timeout: Optional[float] = None, server_nonce: int = 0,
                 session=None, sessions=None, global_seqs=None, nonce: int = 0) -> None:
        self.role = role
        self.config = config
        self.auth_handlers = list(auth_handlers)
        self.receiver = receiver
        self.target_addr = target_addr
        self.clock = clock
        self.handshake_timeout = handshake_timeout
        self.server_nonce = server_nonce
        #: a client's address nonce; one per client factory, so that its
        #: reconnections come from the same address (0: a random one)
        self.nonce = nonce
        self.session = session
        self.sessions = sessions
        self.global_seqs = global_seqs
        self.conn: Optional[Msgr2Connection] = None
        self.info: Optional[PeerInfo] = None
        self._ready_waiters: List[defer.Deferred] = []
        self._keepalive_waiters = {}
        self._auth_handler = None
        self._auth_state: dict = {}
        self._tried_methods: List[int] = []
        self._failure: Optional[Failure] = None
        self._closed = False
        self._timeout_call = None
        self.connected_at = None
        self.ready_at = None
        self._writable_waiters: List[defer.Deferred] = []
        self._rx_inflight_messages = 0
        self._rx_inflight_bytes = 0
        self._rx_throttled = False
        #: why reading from the peer is paused ("window", "queue", "blocked")
        self._read_pauses: set = set()
        self._last_rx = 0.0
        self._last_message = 0.0
        self._idle_timeout = 0.0
        self._liveness_calls = {}
        self._started = False
        self._early: List[bytes] = []
        self._lost_callbacks: list = []
        #: when the keepalive timeout ran out and we probed the silent peer
        self._probe_at: Optional[float] = None
        #: client side: the policy we asked for, from the core's PolicyGranted
        self._requested_lossy: Optional[bool] = None
        self._pumping = False
        self._pump_again = False
        #: bytes delivered while a pump was under way (see L{_pump})
        self._pump_held: Optional[list] = None
        self._unflushed = 0
        self._transport_read = None
        self._prefetch = False
        #: the transport is a plain TCP connection whose socket we may write
        #: to directly (see _send_direct)
        self._direct_send = False
        #: what the socket did not take yet, in order (see _send_direct)
        self._unsent: Optional[deque] = None
        self._unsent_bytes = 0
        self._transport_write = None

    # ---- public API ---------------------------------------------------------

    def whenReady(self) -> defer.Deferred:
        """A fresh Deferred firing with L{PeerInfo} at READY, or failing."""
        if self.info is not None:
            return defer.succeed(self.info)
        if self._failure is not None:
            return defer.fail(self._failure)
        def cancel(d):
            # a cancelled waiter has fired (CancelledError): it must not
            # be failed again when the connection then times out or drops
            if d in self._ready_waiters:
                self._ready_waiters.remove(d)
            self.abort()

        d = defer.Deferred(cancel)
        self._ready_waiters.append(d)
        return d

    def sendMessage(self, message) -> None:
        """
        Send (or, before READY, queue) a message.  On a lossless session
        whose connection has failed, the message goes to the connection that
        now carries the session, or waits in the session for the next one.
        """
        if self._closed or (self.conn is not None and self.conn.state is State.CLOSED):
            # (the core closes first when the peer broke the protocol: the
            # receiver may still answer the messages that came before)
            session = self.conn.session if self.conn is not None else None
            if session is None or session.lossy:
                raise ConnectionClosed("connection is closed")
            current = session.connection.owner if session.connection is not None else None
            if current is not None and current is not self and not current._closed:
                current.sendMessage(message)
            else:
                session.pending.append(message)
            return
        conn = self.conn
        try:
            conn.send_message(message)
        except InjectedFault as e:
            # a test breakpoint: the message stays queued for the replay
            self._flush()
            self._fault(e)
            return
        except ProtocolError as e:
            self._protocol_error(e)
            raise
        if self._pumping:
            # a reply while we dispatch what one read brought: the time of that read
            self._last_message = self._last_rx
        elif self.clock is not None:
            self._last_message = self.clock.seconds()
        pending = conn.session.pending
        if pending and self.role is Role.SERVER and self.info is not None and (
                pending.bytes >= self.config.send_queue_bytes or len(pending) >= self.config.send_queue_messages):
            # The accepting side stops reading from a peer that fills its
            # queue: what it queues answers that peer.  (Before READY the
            # queue waits for the handshake, which needs reading.)  The
            # connecting side reads on: if both sides stopped, two peers
            # whose queues are both full, each waiting for the other to
            # read, would wait for ever.
            self._pause_reading("queue")
        if conn.interceptor is not None:
            self._pump()  # a breakpoint may have queued an event
        elif self._pumping and conn.queued_message_bytes < (64 << 10):
            # replies sent while we dispatch a batch go out together when the
            # batch is done, in one writeSequence, up to 64 KiB of messages
            # (the core counts them)
            pass
        else:
            self._flush()

    @property
    def writable(self) -> bool:
        """
        True when its queue of messages waiting for the transport is below
        C{send_queue_bytes} and C{send_queue_messages} (L{whenWritable} would
        fire at once).  On a lossy session, False once the connection is
        closed.  A lossless session outlives its connection, whatever closed
        it (a fault, a loss, the peer breaking the protocol): L{sendMessage}
        still takes messages for it, so this then tells whether the queue of
        the connection carrying the session now (or, between connections,
        the session's own queue) is below those limits.
        """
        conn = self.conn
        if conn is not None and conn.state is State.READY and not self._closed:
            # the common case (what the checks below come to), checked once
            # per message by senders such as the echo service
            pending = conn.session.pending
            cfg = self.config
            return pending.bytes < cfg.send_queue_bytes and len(pending) < cfg.send_queue_messages
        if self._follows_session():
            # whatever closed it, sendMessage puts messages in the session:
            # the queue that counts is that of the connection carrying the
            # session now, or the session's own until the next one
            carrier = self._carrier()
            if carrier is not None:
                return carrier.writable
            return self._below_limits()
        if self._closed:
            return False
        if self.conn is None:
            return True
        if self.conn.state is State.CLOSED:
            return False  # (a lossy session: _follows_session covers lossless ones)
        return self._below_limits()

    def whenWritable(self) -> defer.Deferred:
        """
        Fires when the queue of messages waiting for the transport is below
        the configured byte and message limits; a sender that waits for it
        before each L{sendMessage} keeps memory bounded however slow the peer
        reads.  On a lossy session it fails with L{ConnectionClosed} once the
        connection is closed (and a waiting one fails when it closes).  On a
        lossless session it follows the session instead (see L{writable}):
        between connections, with the session's queue full, it fires once
        the next connection carrying the session has drained it below the
        limits; it never fires if no connection resumes the session.
        """
        if self._follows_session():
            carrier = self._carrier()
            if carrier is not None:
                return carrier.whenWritable()
            if self._below_limits():
                return defer.succeed(None)
            # no connection carries the session now: the next one fires it
            d = defer.Deferred()
            _session_writers.setdefault(self.conn.session, []).append(d)
            return d
        if self._closed:
            return defer.fail(ConnectionClosed("connection is closed"))
        if self.writable:
            return defer.succeed(None)
        d = defer.Deferred()
        self._writable_waiters.append(d)
        return d

    def _follows_session(self) -> bool:
        """
        True when this connection is closed (a fault, a loss, the peer's
        protocol error, a close) but its session is lossless: what is sent
        on it then waits in the session for the connection that resumes it
        (Ceph requeues a lossless connection's messages on a fault).
        """
        conn = self.conn
        if conn is None or not (self._closed or conn.state is State.CLOSED):
            return False
        return not conn.session.lossy

    def _carrier(self) -> Optional["Msgr2Protocol"]:
        """The open protocol that carries our session now, if another one does."""
        session_conn = self.conn.session.connection if self.conn is not None else None
        current = session_conn.owner if session_conn is not None else None
        if current is not None and current is not self and not current._closed:
            return current
        return None

    def _below_limits(self) -> bool:
        pending = self.conn.session.pending
        return pending.bytes < self.config.send_queue_bytes and len(pending) < self.config.send_queue_messages

    def _wake_writers(self) -> None:
        """Fire whenWritable() waiters, ours and those the session kept, once we are writable."""
        if self._closed or self.conn is None or not self.writable:
            return
        waiters, self._writable_waiters = self._writable_waiters, []
        waiters.extend(_session_writers.pop(self.conn.session, ()))
        for d in waiters:
            if not d.called:  # a cancelled waiter has fired already
                d.callback(None)

    # ---- IPushProducer (we produce into the transport) ------------------------

    def pauseProducing(self) -> None:
        if self.conn is not None:
            self.conn.pause_tx()

    def resumeProducing(self) -> None:
        if self.conn is None or self._closed:
            return
        conn = self.conn
        pending = conn.session.pending
        # one message at a time: the transport pauses us again as soon as
        # its buffer is full, instead of taking the whole queue at once
        conn.resume_tx(limit=1)
        self._flush()
        while pending and not conn.tx_paused and not self._closed:
            conn.resume_tx(limit=1)
            self._flush()
        pending = conn.session.pending
        cfg = self.config
        if "queue" in self._read_pauses and (pending.bytes <= cfg.send_queue_bytes // 2
                                             and len(pending) <= cfg.send_queue_messages // 2):
            self._resume_reading("queue")
        self._wake_writers()

    def stopProducing(self) -> None:
        pass

    def keepalive(self) -> defer.Deferred:
        """Send KEEPALIVE2; fires with the round-trip time in seconds."""
        if self._closed:
            return defer.fail(ConnectionClosed("connection is closed"))
        if self.info is None:
            return defer.fail(LocalProtocolError("KEEPALIVE2 is only sent on a READY connection"))
        now = time.time()
        stamp = utime_t.from_float(now)
        # timestamps are unique enough per connection; keep a list per stamp
        d = defer.Deferred()
        self._keepalive_waiters.setdefault((stamp.sec, stamp.nsec), []).append((d, time.perf_counter()))
        self.conn.send_keepalive(stamp)
        self._flush()
        return d

    def notifyOnLost(self, callback) -> None:
        """Call C{callback()} once when the connection is gone."""
        if self._closed and self.transport is None:
            callback()
        else:
            self._lost_callbacks.append(callback)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abortConnection()

    def close(self) -> None:
        if self.transport is not None and not self._closed:
            self._flush()
            self._lose_transport()

    def _lose_transport(self) -> None:
        """
        Close the transport once what is buffered is written.  Twisted closes
        a transport only once its producer is gone: were we still registered
        while it holds us paused (write buffer full), the drained buffer
        would resume us instead of closing, and the connection stayed open.
        """
        try:
            self.transport.unregisterProducer()
        except Exception:
            pass  # a transport that takes no producer (some test doubles)
        self.transport.loseConnection()

    # ---- Twisted callbacks ---------------------------------------------------

    def connectionMade(self) -> None:
        transport = self.transport
        self.connected_at = time.perf_counter()
        try:
            transport.setTcpNoDelay(True)
        except Exception:
            pass  # not a TCP transport
        # read (and buffer writes) in bigger pieces than Twisted's 64 KiB:
        # a 4 MiB segment then takes a few reads, not sixty-four
        if getattr(transport, "bufferSize", TRANSPORT_BUFFER) < TRANSPORT_BUFFER:
            transport.bufferSize = TRANSPORT_BUFFER
        self._read_into_frames(transport)
        self._direct_send = (isinstance(transport, tcp.Connection) and not getattr(transport, "TLS", False)
                             and hasattr(getattr(transport, "socket", None), "sendmsg")
                             and "doWrite" not in vars(transport))
        if self._direct_send:
            # the writable events of what the socket did not take (see _send_direct)
            self._transport_write = transport.doWrite
            transport.doWrite = self._do_write
        local = _endpoint_addr(transport.getHost())
        peer = _endpoint_addr(transport.getPeer())
        if self.role is Role.CLIENT:
            target = self.target_addr or (peer.with_type(AddrType.MSGR2) if peer else entity_addr_t())
            self.conn = Msgr2Connection(
                self.config, Role.CLIENT, local or entity_addr_t(), target,
                session=self.session, global_seqs=self.global_seqs, sessions=self.sessions,
                nonce=self.nonce or _random_u32() or 1, cookie=_random_u64() or 1)
        else:
            server_addr = (local.with_type(AddrType.MSGR2) if local else entity_addr_t())
            server_addr = entity_addr_t(AddrType.MSGR2, self.server_nonce, server_addr.host, server_addr.port)
            self.conn = Msgr2Connection(
                self.config, Role.SERVER, server_addr, peer or entity_addr_t(),
                server_addrs=entity_addrvec_t((server_addr,)),
                sessions=self.sessions, global_seqs=self.global_seqs,
                cookie=_random_u64() or 1)
        self.conn.owner = self
        self.conn.defer_acks = True
        # large secure frames may come as views of a reused buffer: _flush
        # sends them or copies them out (see Msgr2Connection.send_views)
        self.conn.send_views = self._direct_send
        if self.role is Role.SERVER:
            # what an AUTH_BAD_METHOD refusing a fast reconnect offers instead
            self.conn.auth_offer = (tuple(h.method for h in self.auth_handlers),
                                    tuple(sorted({m for h in self.auth_handlers for m in h.allowed_modes
                                                  if m in self.config.modes})))
        interceptor = getattr(self.factory, "interceptor", None) if hasattr(self, "factory") else None
        if interceptor is not None:
            self.conn.interceptor = interceptor
            action = interceptor(self.conn, "connect" if self.role is Role.CLIENT else "accept", None)
            kind = getattr(action, "kind", action)
            if kind == "fault":
                self._fault(InjectedFault("breakpoint %s failed the connection"
                                          % ("connect" if self.role is Role.CLIENT else "accept")))
                return
            if kind in ("block", "stall"):
                # start the handshake only when released
                if kind == "stall":
                    self._liveness_calls["stall"] = self.clock.callLater(getattr(action, "seconds", 0.0),
                                                                         self._start)
                return
        self._start()

    def _start(self) -> None:
        if self._closed or self._started:
            return
        self._started = True
        transport = self.transport
        if self.handshake_timeout and self.clock is not None:
            self._timeout_call = self.clock.callLater(self.handshake_timeout, self._handshake_timed_out)
        try:
            transport.registerProducer(self, True)
        except Exception:
            pass  # a transport that takes no producer (some test doubles)
        try:
            self.conn.initiate(*self._first_flight())
        except InjectedFault as e:
            self._flush()
            self._fault(e)
            return
        self._flush()
        early, self._early = self._early, []
        if early or self.conn.interceptor is not None:
            self._pump(b"".join(early))

    def _read_into_frames(self, transport) -> None:
        """
        On a plain TCP transport, read the bytes of a large frame straight
        into the core's frame buffer (C{socket.recv_into} into
        L{Msgr2Connection.receive_buffer}) instead of receiving each read as
        a new C{bytes} and copying it in.  Every other read, and every other
        transport (TLS, other reactors' transports, test doubles), goes
        through C{dataReceived} as before.
        """
        if (not isinstance(transport, tcp.Connection) or getattr(transport, "TLS", False)
                or not self._reads_for(transport.protocol)):
            return
        sock = getattr(transport, "socket", None)
        if sock is None or not hasattr(sock, "recv_into") or "doRead" in vars(transport):
            return
        self._transport_read = transport.doRead
        transport.doRead = self._do_read

    def _reads_for(self, protocol) -> bool:
        """
        The transport's protocol is this one, or the endpoints' wrapper that
        only passes the bytes on to it (C{_WrappingProtocol}); any other
        wrapper (TLS, one that logs or throttles) must see every byte.
        """
        return protocol is self or (type(protocol).__name__ == "_WrappingProtocol"
                                    and getattr(protocol, "_wrappedProtocol", None) is self)

    def _do_read(self):
        """The transport's C{doRead} (see L{_read_into_frames})."""
        conn = self.conn
        transport = self.transport
        target = None
        if conn is not None and self._started and not self._closed:
            target = conn.receive_buffer()
        if transport.TLS or not self._reads_for(transport.protocol):
            if target is not None:
                target.release()
            return self._transport_read()
        if target is None:
            if not self._prefetch:
                if conn is not None and conn.state is State.READY and not self._closed:
                    return self._read_shared(transport)
                return self._transport_read()
            # the first read after a large frame: small, so that little of
            # a next large frame lands in the ordinary buffer before its
            # preamble is seen (that part is copied once more)
            self._prefetch = False
            try:
                data = transport.socket.recv(PREFETCH)
            except OSError as e:
                return _read_failed(e)
            if not data:
                return main.CONNECTION_DONE
            self.dataReceived(data)
            return None
        size = len(target)
        try:
            n = transport.socket.recv_into(target)
        except OSError as e:
            return _read_failed(e)
        finally:
            target.release()
        if not n:
            return main.CONNECTION_DONE
        if self._liveness_calls:
            self._last_rx = self.clock.seconds()
        conn.buffer_filled(n)
        self._prefetch = n == size
        self._pump()
        return None

    def _read_shared(self, transport):
        """
        An ordinary read in READY: into the process's one read buffer
        (L{_shared_read_buffer}), handed to the core as a view that it copies
        into its own buffer before this returns, instead of Twisted's
        C{recv(bufferSize)}, which allocates a new C{bytes} of C{bufferSize}
        (256 KiB: a fresh memory map, page faults, then a shrink and an
        unmap) for every read however small.
        """
        size = transport.bufferSize
        buffer = _shared_read_buffer(size)
        try:
            n = transport.socket.recv_into(buffer, size)
        except OSError as e:
            return _read_failed(e)
        if not n:
            return main.CONNECTION_DONE
        if self._liveness_calls:
            self._last_rx = self.clock.seconds()
        with memoryview(buffer) as view, view[:n] as data:
            self._pump(data)
        return None

    def dataReceived(self, data: bytes) -> None:
        if self._closed:
            return
        if not self._started:
            self._early.append(data)
            return
        if self._liveness_calls:
            self._last_rx = self.clock.seconds()
        self._pump(data)

    def connectionLost(self, reason=None) -> None:
        self._closed = True
        self._unsent = None  # (what the socket never took: lost with the connection, as Twisted's buffer is)
        self._unsent_bytes = 0
        self._cancel_timeout()
        for call in self._liveness_calls.values():
            if call.active():
                call.cancel()
        self._liveness_calls = {}
        waiters, self._writable_waiters = self._writable_waiters, []
        follows = self._follows_session()
        for d in waiters:
            if d.called:  # a cancelled waiter has fired already
                continue
            if follows:
                # a lossless session goes on: wait for the connection that carries it next
                self.whenWritable().chainDeferred(d)
            else:
                d.errback(Failure(ConnectionClosed("connection lost")))
        if self.conn is not None:
            self.conn.connection_lost()
        failure = self._failure or (reason if reason is not None else Failure(ConnectionClosed("connection lost")))
        if self.info is None:
            self._fail_ready(failure)
        waiters = self._keepalive_waiters
        self._keepalive_waiters = {}
        for lst in waiters.values():
            for d, _ in lst:
                if not d.called:
                    d.errback(Failure(ConnectionClosed("connection lost before KEEPALIVE2_ACK")))
        if self.receiver is not None:
            try:
                self.receiver.connectionLost(self, failure)
            except Exception:
                self.log.failure("receiver.connectionLost raised")
        callbacks, self._lost_callbacks = self._lost_callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                self.log.failure("connection-lost callback raised")

    # ---- core driving --------------------------------------------------------------

    def _pump(self, data=b"") -> None:
        if self._pumping:
            # re-entered from a receiver: the outer pump goes on, and reads
            # these bytes (a transport that delivers while we dispatch) after
            # the batch under way
            self._pump_again = True
            if data:
                if self._pump_held is None:
                    self._pump_held = []
                self._pump_held.append(bytes(data))  # (a view of the shared read buffer, see _read_shared)
            return
        self._pumping = True
        try:
            self._pump_once(data)
            while self._pump_again and not self._closed:
                self._pump_again = False
                held = self._pump_held
                if held:
                    self._pump_held = None
                    self._pump_once(b"".join(held))
                else:
                    self._pump_once(b"")
        finally:
            self._pumping = False
            self._pump_again = False
            self._pump_held = None
        if not self._closed:
            self._check_blocked_input()

    def _pump_once(self, data=b"") -> None:
        conn = self.conn
        try:
            events = conn.receive_data(data)
            while events:
                receiver = self.receiver
                others = False
                for i, event in enumerate(events):
                    if type(event) is _MessageReceived and receiver is not None:
                        # (the MessageReceived case of _dispatch, inlined)
                        if self._liveness_calls:
                            self._last_message = self._last_rx
                        message = event.message
                        result = receiver.messageReceived(self, message)
                        if result is not None and isinstance(result, defer.Deferred):
                            self._track_dispatch(result, message)
                    else:
                        others = True
                        self._dispatch(event)
                    if self._closed:
                        # messages already counted in in_seq must still be
                        # delivered, or a lossless session would lose them
                        self._deliver_remaining(events[i + 1:])
                        return
                if not others and conn.state is State.READY and conn.interceptor is None:
                    # messages only: the core stopped for want of bytes (in
                    # READY only a breakpoint blocks it), asking again finds nothing
                    break
                events = conn.receive_data()
            conn.send_ack()
        except ProtocolError as e:
            self._dispatch_before_error(e)
            if isinstance(e, InjectedFault):
                self._flush()
                self._fault(e)
            else:
                self._protocol_error(e)
            return
        except Exception as e:
            self.log.failure("internal error on {peer}", peer=str(self.conn.peer_addr))
            self._protocol_error(e)
            return
        self._flush()

    def _deliver_remaining(self, events) -> None:
        for event in events:
            if type(event) is E.MessageReceived and self.receiver is not None:
                try:
                    self.receiver.messageReceived(self, event.message)
                except Exception:
                    self.log.failure("receiver failed after the connection closed")

    def _dispatch_before_error(self, error) -> None:
        """Deliver the events the core produced before it hit C{error}."""
        events = getattr(error, "events", ())
        for i, event in enumerate(events):
            if self._closed:
                self._deliver_remaining(events[i:])
                return
            try:
                self._dispatch(event)
            except ConnectionClosed:
                continue  # the receiver answered a message on the connection that is closing
            except Exception:
                self.log.failure("while delivering events before {error_type}", error_type=type(error).__name__)
                return

    def _flush(self) -> None:
        self._unflushed = 0
        if self.conn is None or self.transport is None:
            return
        parts = self.conn.data_to_send()
        if parts:
            if self._direct_send:
                parts = self._send_direct(parts)
                if parts:
                    # to Twisted: views (of the writer's reused buffers, or
                    # ends of parts the socket took in part) copied out, as
                    # writeSequence takes bytes only
                    parts = [p if type(p) is bytes else bytes(p) for p in parts]
                writer = self.conn.writer
                if writer is not None and writer.lent:
                    # buffers whose views went out or were copied out are
                    # free; those of views waiting in our queue are not
                    self._release_buffers(writer)
                if not parts:
                    return
            self.transport.writeSequence(parts)

    def _send_direct(self, parts: List[bytes]) -> List[bytes]:
        """
        Write C{parts} to the socket at once (C{socket.sendmsg}, up to
        L{IOV_MAX} parts a call) when the transport has nothing of its own
        waiting to be written; returns what is left for C{writeSequence}
        (nothing when all went out or waits in our own queue).

        C{writeSequence} would join the parts into one new buffer (a copy
        of every large message) and write it only on the next writable
        event, each write costing a wake-up and two C{epoll_ctl} calls:
        writing through skips both while the kernel takes the bytes.  What
        it does not take (a full socket buffer, C{EAGAIN}) waits, as views
        of the parts and in order, in our own queue (L{_unsent}), which
        L{_do_write} writes with C{sendmsg} whenever the socket is writable
        again, as much as the kernel takes each time.  Twisted's buffer
        would copy it once more and write it in C{SEND_LIMIT} (128 KiB)
        pieces, a wake-up each.  Past the transport's C{bufferSize} the
        queue pauses its producer (us) as Twisted's own buffer does, and
        the transport resumes us once both are empty.  Whenever the
        transport holds bytes of its own, is closing, is half-closed, or is
        no longer ours alone (TLS started, a protocol wrapped around us
        that is not the endpoints' plain C{_WrappingProtocol}: see
        L{_reads_for}), everything goes to C{writeSequence} untouched (our
        queue, if it holds anything, first).  Any other socket error
        leaves the bytes queued: the next writable event meets the error
        and closes the connection as Twisted's own write would.
        """
        transport = self.transport
        unsent = self._unsent
        if (transport.dataBuffer or transport._tempDataBuffer or not transport.connected
                or transport.disconnecting or transport._writeDisconnecting or transport._writeDisconnected
                or getattr(transport, "_aborting", False) or transport.TLS
                or not self._reads_for(transport.protocol)):
            if unsent:
                # bytes already queued go first: Twisted writes them all
                self._unsent = None
                self._unsent_bytes = 0
                parts = list(unsent) + parts
            return parts
        if unsent:
            unsent.extend(parts)
            self._queued(sum(map(len, parts)))
            return []
        rest = self._sendmsg(transport.socket.sendmsg, parts)
        if rest is None:
            return []
        if type(rest) is list:
            return rest  # a socket error: Twisted's own write meets it
        self._unsent = rest
        self._queued(sum(map(len, rest)))
        transport.startWriting()
        return []

    @staticmethod
    def _sendmsg(sendmsg, parts):
        """
        C{sendmsg} as many of C{parts} as the kernel takes: None when all
        went out, a deque of what is left (the first one a view from where
        the kernel stopped) when the socket buffer filled, or C{parts}
        itself, untouched, on any other error before a byte went out.
        """
        count = len(parts)
        start = 0
        while start < count:
            batch = parts if start == 0 and count <= IOV_MAX else parts[start:start + IOV_MAX]
            try:
                sent = sendmsg(batch)
            except InterruptedError:
                continue
            except BlockingIOError:
                return deque(parts[start:])
            except OSError:
                return deque(parts[start:]) if start else parts
            for i, part in enumerate(batch):
                size = len(part)
                if sent < size:
                    rest = deque(parts[start + i + 1:])
                    rest.appendleft(memoryview(part)[sent:] if sent else part)
                    return rest
                sent -= size
            start += len(batch)
        return None

    def _queued(self, size: int) -> None:
        """C{size} more bytes wait in L{_unsent}: past C{bufferSize}, pause as Twisted's own write does."""
        self._unsent_bytes += size
        transport = self.transport
        if (self._unsent_bytes > transport.bufferSize and transport.producer is self
                and transport.streamingProducer and not transport.producerPaused):
            transport.producerPaused = True
            self.pauseProducing()

    def _do_write(self):
        """
        The transport's C{doWrite} (see L{_send_direct}): the socket is
        writable; send what waits in L{_unsent}, as much as the kernel
        takes.  Once it is all out, the transport's own C{doWrite} goes on
        as ever (its buffer, stopping the writable events, resuming a paused
        producer, a close or half-close asked for meanwhile).
        """
        unsent = self._unsent
        if unsent:
            parts = list(unsent)
            rest = self._sendmsg(self.transport.socket.sendmsg, parts)
            if rest is parts:
                return main.CONNECTION_LOST  # (not a full socket buffer: an error)
            self._unsent = rest
            self._unsent_bytes = sum(map(len, rest)) if rest else 0
            writer = self.conn.writer if self.conn is not None else None
            if writer is not None and writer.lent:
                self._release_buffers(writer)
            if rest:
                return None  # the socket buffer is full: the next writable event sends more
        return self._transport_write()

    def _release_buffers(self, writer) -> None:
        """Free the writer's reused buffers but those of views still waiting in L{_unsent}."""
        unsent = self._unsent
        writer.release([p.obj for p in unsent if type(p) is memoryview] if unsent else ())

    def _protocol_error(self, error: BaseException) -> None:
        if self._closed:
            return
        self.log.warn("closing connection to {peer}: {error_type}: {error}",
                      peer=str(self.conn.peer_addr) if self.conn else "?",
                      error_type=type(error).__name__, error=str(error))
        self._failure = Failure(error)
        self._fail_ready(self._failure)
        self._flush()
        self._closed = True
        self.conn.close()
        self._lose_transport()

    def _fail_ready(self, failure: Failure) -> None:
        waiters = self._ready_waiters
        self._ready_waiters = []
        for d in waiters:
            if not d.called:  # every Deferred fires once, whatever comes first
                d.errback(failure)

    def _handshake_timed_out(self) -> None:
        self._timeout_call = None
        if self.info is None and not self._closed:
            self._failure = Failure(HandshakeTimeout("no READY within %gs" % self.handshake_timeout))
            self._fail_ready(self._failure)
            self._closed = True
            self.transport.abortConnection()

    def _cancel_timeout(self) -> None:
        if self._timeout_call is not None and self._timeout_call.active():
            self._timeout_call.cancel()
        self._timeout_call = None

    # ---- event dispatch ---------------------------------------------------------

    def _dispatch(self, event) -> None:
        kind = type(event)
        if kind is E.MessageReceived:
            if self.receiver is not None:
                if self._liveness_calls:
                    self._last_message = self._last_rx
                result = self.receiver.messageReceived(self, event.message)
                if isinstance(result, defer.Deferred):
                    self._track_dispatch(result, event.message)
        elif kind is E.KeepaliveAckReceived:
            self._keepalive_acked(event.timestamp)
        elif kind is E.Ready:
            self._ready(event)
        elif kind is E.PolicyGranted:
            self._requested_lossy = event.requested_lossy
            if event.differs:
                self.log.warn(
                    "asked {peer} for a {asked} session and was granted a {granted} one",
                    peer=str(self.conn.peer_addr), asked="lossy" if event.requested_lossy else "lossless",
                    granted="lossy" if event.lossy else "lossless", downgraded=event.downgraded)
        elif kind is E.AuthRequestNeeded:
            self._client_auth_request(event)
        elif kind is E.AuthReplyMoreReceived:
            self._auth_step(lambda: self._auth_handler.handle_reply_more(event.payload),
                            self.conn.send_auth_request_more)
        elif kind is E.AuthDoneReceived:
            self._auth_step(lambda: self._auth_handler.handle_done(event.global_id, event.con_mode, event.payload),
                            lambda keys: self.conn.auth_finish(keys[0], keys[1], expires=self._session_expires()))
        elif kind is E.AuthRequestReceived:
            self._server_auth_request(event)
        elif kind is E.SessionResetReceived:
            self.log.info("{peer} reset our session (full={full})", peer=str(self.conn.peer_addr), full=event.full)
            self._notify("sessionReset", event.full)
        elif kind is E.ConnectionReplaced:
            old = event.old.owner
            if event.session_lost:
                self.log.info("{peer}: a new connection replaces the lossy session of an older one",
                              peer=str(self.conn.peer_addr))
            if old is not None and old is not self:
                old._replaced()
        elif kind is E.WaitSent:
            # a connect race our own attempt wins: make sure it goes on
            hook = getattr(getattr(self, "factory", None), "onWaitSent", None)
            if hook is not None:
                hook(event.peer_key)
        elif kind is E.RemoteReset:
            self.log.info("{peer} restarted: its old session is gone", peer=str(self.conn.peer_addr))
            self._notify("remoteReset")
        elif kind is E.ConnectionDone:
            self._failure = self._failure or Failure(ConnectionClosed(event.reason))
            self._fail_ready(self._failure)
            self._closed = True
            self._flush()
            self._lose_transport()
        elif kind is E.Intercepted:
            if event.action == "stall":
                self._liveness_calls["stall"] = self.clock.callLater(event.seconds, self.release)
        elif kind is E.HelloReceived:
            self.log.debug("HELLO from {peer}: {entity}", peer=str(self.conn.peer_addr),
                           entity=EntityType.name(event.entity_type))
            cache = self._peer_banners()
            if cache is not None and self.role is Role.CLIENT:
                # what the next connection to this address may assume
                conn = self.conn
                cache.learn(conn.peer_addr, KnownPeer(conn.peer_supported, conn.peer_required, event.entity_type))
        elif kind is E.FastReconnectAccepted:
            self.log.info("{peer}: fast reconnect accepted ({early} early messages)",
                          peer=str(self.conn.peer_addr), early=event.early_messages)
        elif kind is E.FastReconnectRefused:
            self.log.info("{peer}: fast reconnect refused: {error_type}: {error}", peer=str(self.conn.peer_addr),
                          error_type=type(event.error).__name__, error=str(event.error))
        elif kind is E.FirstFlightMissed:
            self.log.info("{peer} is not the peer our first flight assumed: {reason}",
                          peer=str(self.conn.peer_addr), reason=event.reason)
            cache = self._peer_banners()
            if cache is not None:
                # the banner it showed, with no entity type: the next
                # connection waits for its HELLO (no speculation) and learns it
                conn = self.conn
                cache.learn(conn.peer_addr, KnownPeer(conn.peer_supported, conn.peer_required, 0))

    # ---- receive throttle -----------------------------------------------------

    def _track_dispatch(self, d: defer.Deferred, message) -> None:
        size = payload_size(message)
        self._rx_inflight_messages += 1
        self._rx_inflight_bytes += size
        cfg = self.config
        if (not self._rx_throttled and (self._rx_inflight_messages > cfg.receive_window_messages
                                        or self._rx_inflight_bytes > cfg.receive_window_bytes)):
            self._rx_throttled = True
            self._pause_reading("window")

        def done(result):
            self._rx_inflight_messages -= 1
            self._rx_inflight_bytes -= size
            if (self._rx_throttled and not self._closed
                    and self._rx_inflight_messages <= cfg.receive_window_messages // 2
                    and self._rx_inflight_bytes <= cfg.receive_window_bytes // 2):
                self._rx_throttled = False
                self._resume_reading("window")
            if isinstance(result, Failure):
                self.log.failure("receiver failed to handle {msg!r}", result, msg=message)
            return None

        d.addBoth(done)

    def _pause_reading(self, reason: str) -> None:
        """Stop reading from the peer until every reason is cleared."""
        if not self._read_pauses and self.transport is not None:
            self.transport.pauseProducing()
        self._read_pauses.add(reason)

    def _resume_reading(self, reason: str) -> None:
        if reason not in self._read_pauses:
            return
        self._read_pauses.discard(reason)
        if not self._read_pauses and not self._closed and self.transport is not None:
            self.transport.resumeProducing()

    def _check_blocked_input(self) -> None:
        """
        While the core waits for an auth answer it parses nothing: a peer
        that goes on sending meanwhile is not read beyond
        L{BLOCKED_READ_LIMIT} bytes until the answer is in.
        """
        conn = self.conn
        if conn is None:
            return
        if not conn.reading and conn.buffered > BLOCKED_READ_LIMIT:
            self._pause_reading("blocked")
        elif "blocked" in self._read_pauses and conn.reading:
            self._resume_reading("blocked")

    # ---- liveness ---------------------------------------------------------------

    def _start_liveness(self) -> None:
        cfg = self.config
        if self.clock is None:
            return
        now = self.clock.seconds()
        self._last_rx = self._last_message = now
        if cfg.keepalive_interval:
            self._liveness_calls["keepalive"] = self.clock.callLater(cfg.keepalive_interval, self._keepalive_tick)
            self._liveness_calls["silence"] = self.clock.callLater(
                cfg.effective_keepalive_timeout, self._silence_check)
        idle_timeout = self._idle_timeout = cfg.effective_idle_timeout(self.role is Role.SERVER)
        if idle_timeout:
            self._liveness_calls["idle"] = self.clock.callLater(idle_timeout, self._idle_check)

    def _keepalive_tick(self) -> None:
        if self._closed:
            return
        try:
            self.conn.send_keepalive(utime_t.from_float(time.time()))
        except InjectedFault as e:
            self._fault(e)
            return
        if self.conn.interceptor is not None:
            self._pump()
        else:
            self._flush()
        self._liveness_calls["keepalive"] = self.clock.callLater(self.config.keepalive_interval,
                                                                 self._keepalive_tick)

    def _silence_check(self) -> None:
        """
        Suspect, probe, then fault.  A peer silent for the keepalive
        timeout is only suspected: our own event loop may have been too
        busy to read (a timer runs before the reads that queued up while
        the loop was blocked) or to send our keepalives.  We send a
        KEEPALIVE2 at once and fault only if nothing at all arrives within
        L{PROBE_FRACTION} of the timeout, judged after one more turn of the
        loop so that whatever is already in the socket is read first.
        """
        if self._closed:
            return
        timeout = self.config.effective_keepalive_timeout
        now = self.clock.seconds()
        silent = now - self._last_rx
        if silent < timeout:
            self._probe_at = None
            self._liveness_calls["silence"] = self.clock.callLater(timeout - silent, self._silence_check)
            return
        if self._probe_at is None:
            self._probe_at = now
            try:
                self.conn.send_keepalive(utime_t.from_float(time.time()))
            except InjectedFault as e:
                self._fault(e)
                return
            if self.conn.interceptor is not None:
                self._pump()
            else:
                self._flush()
            self._liveness_calls["silence"] = self.clock.callLater(timeout * PROBE_FRACTION, self._silence_check)
            return
        self._liveness_calls["silence"] = self.clock.callLater(0, self._silence_verdict)

    def _silence_verdict(self) -> None:
        if self._closed:
            return
        if self._probe_at is not None and self._last_rx >= self._probe_at:
            self._silence_check()  # the peer answered: all is well
            return
        silent = self.clock.seconds() - self._last_rx
        self._fault(KeepaliveTimeout("%s sent nothing for %.1fs, not even an answer to a KEEPALIVE2 probe"
                                     % (self.conn.peer_addr, silent)))

    def _idle_check(self) -> None:
        if self._closed:
            return
        # as Ceph's last_active: any bytes read or any message sent
        idle = self.clock.seconds() - max(self._last_message, self._last_rx)
        if idle >= self._idle_timeout:
            self.log.info("closing idle connection to {peer}", peer=str(self.conn.peer_addr))
            self.close()
            return
        self._liveness_calls["idle"] = self.clock.callLater(self._idle_timeout - idle, self._idle_check)

    def _fault(self, error: BaseException) -> None:
        """Drop the connection at once (no FIN exchange is waited for)."""
        if self._closed:
            return
        self.log.warn("faulting connection to {peer}: {error_type}: {error}", peer=str(self.conn.peer_addr),
                      error_type=type(error).__name__, error=str(error))
        self._failure = Failure(error)
        self._closed = True
        self.conn.close()
        self.transport.abortConnection()

    def release(self) -> None:
        """Let a connection that a test breakpoint blocked or stalled go on."""
        if self._closed or self.conn is None:
            return
        if not self._started:
            self._start()
            return
        try:
            self.conn.release()
        except InjectedFault as e:
            self._fault(e)
            return
        except ProtocolError as e:
            self._protocol_error(e)
            return
        self._pump()

    def _notify(self, method: str, *args) -> None:
        """Call an optional receiver method (session events)."""
        handler = getattr(self.receiver, method, None)
        if handler is not None:
            handler(self, *args)

    def _replaced(self) -> None:
        """Another connection took our session over: go away quietly."""
        if not self._closed:
            self._closed = True
            self._failure = Failure(ConnectionClosed("session moved to a newer connection"))
            self.transport.abortConnection()

    def _ready(self, event: E.Ready) -> None:
        self._cancel_timeout()
        self.ready_at = time.perf_counter()
        self.info = PeerInfo(**{f.name: getattr(event, f.name) for f in fields(event)},
                             compression=self.conn.compression_method, requested_lossy=self._requested_lossy)
        self.log.info("{role} connection to {peer} READY: entity={entity} mode={mode} rev{rev}"
                      " compression={compression} {policy}",
                      role=self.role.value, peer=str(self.conn.peer_addr), entity=str(event.peer_name),
                      mode=self.info.mode_name, rev=self.info.revision, compression=self.info.compression_name,
                      policy=self.info.policy)
        self._start_liveness()
        # the receiver first, so it is set up before anyone waiting on READY acts
        if self.receiver is not None:
            self.receiver.connectionReady(self, self.info)
        waiters = self._ready_waiters
        self._ready_waiters = []
        for d in waiters:
            d.callback(self.info)
        # senders that waited while no connection carried the session
        self._wake_writers()

    def _keepalive_acked(self, stamp: utime_t) -> None:
        lst = self._keepalive_waiters.get((stamp.sec, stamp.nsec))
        if not lst:
            return
        d, started = lst.pop(0)
        if not lst:
            del self._keepalive_waiters[(stamp.sec, stamp.nsec)]
        if not d.called:  # cancelled while the ack was on its way
            d.callback(time.perf_counter() - started)

    # ---- auth bridging -----------------------------------------------------------

    def _auth_step(self, compute, answer) -> None:
        """Run an auth handler step (maybe a Deferred), then answer the core."""
        # what maybeDeferred(compute) would give, without a Deferred for the
        # common synchronous handler
        try:
            outcome = compute()
        except Exception:
            self._auth_failed(Failure())
            return
        if not isinstance(outcome, (defer.Deferred, Failure, CoroutineType)):
            answer(outcome)
            return
        d = defer.maybeDeferred(lambda: outcome)
        if d.called:
            # synchronous: answer inside the current pump
            result = []
            d.addBoth(result.append)
            outcome = result[0]
            if isinstance(outcome, Failure):
                self._auth_failed(outcome)
            else:
                answer(outcome)
            return

        def done(outcome):
            if self._closed:
                return
            try:
                answer(outcome)
            except Exception as e:
                self._protocol_error(e)
                return
            self._pump()

        def failed(f):
            if self._closed:
                return
            try:
                self._auth_failed(f)
            except Exception as e:
                self._protocol_error(e)

        d.addCallbacks(done, failed)

    def _auth_failed(self, failure: Failure) -> None:
        error = failure.value
        if not isinstance(error, Msgr2Error):
            self.log.failure("auth handler failed", failure)
            error = AuthRejected("auth handler failed: %s" % type(error).__name__)
        if isinstance(error, ProtocolError) or isinstance(error, AuthError):
            raise error
        raise AuthRejected(str(error))

    def _client_auth_request(self, event: E.AuthRequestNeeded) -> None:
        handlers = self.auth_handlers
        if event.allowed_methods is None:
            candidates = handlers
        elif event.rejected_method == AuthMethod.MSGR2TX_RESUME:
            # our fast reconnect was refused: any of our methods the server allows
            candidates = [h for h in handlers if h.method in event.allowed_methods
                          and self._modes_for(h, event.allowed_modes)]
        else:
            # next method after the rejected one that the server allows
            after = False
            candidates = []
            for h in handlers:
                if after and h.method in event.allowed_methods:
                    candidates.append(h)
                if h.method == event.rejected_method:
                    after = True
            modes_ok = [h for h in candidates if self._modes_for(h, event.allowed_modes)]
            candidates = modes_ok
        if not candidates:
            # the refused method may know why in words (cephx: a key type the monitor does not allow)
            describe = getattr(self._auth_handler, "describe_refusal", None)
            hint = describe(event.result) if describe is not None and event.allowed_methods is not None else None
            from msgr2tx.auth import method_name, mode_name
            code = -event.result
            why = os.strerror(code).lower() if code in errno.errorcode else "result %d" % event.result
            raise AuthBadMethod(
                "the server refused auth %s (%s); it allows auth %s with modes %s%s"
                % (method_name(event.rejected_method), why,
                   ", ".join(method_name(m) for m in event.allowed_methods or ()) or "nothing",
                   ", ".join(mode_name(m) for m in event.allowed_modes or ()) or "none",
                   "; " + hint if hint else ""),
                event.rejected_method, event.result, event.allowed_methods or (), event.allowed_modes or ())
        handler = candidates[0]
        self._auth_handler = handler
        modes = self._modes_for(handler, event.allowed_modes)
        if not modes:
            from msgr2tx.auth import method_name, mode_name
            raise AuthBadMethod("no connection mode of ours (%s) works with auth %s" % (
                ", ".join(mode_name(m) for m in self.config.modes), method_name(handler.method)), handler.method)
        self._auth_step(lambda: handler.build_request(self.conn.peer_entity_type),
                        lambda payload: self.conn.send_auth_request(handler.method, payload, modes))

    def _session_expires(self) -> float:
        """When the ticket behind the session key just agreed expires (0: not known), for the fast reconnect."""
        expires = getattr(self._auth_handler, "session_expires", None)
        return float(expires()) if expires is not None else 0.0

    def _peer_banners(self):
        """The client factory's L{PeerBannerCache}, if it keeps one."""
        return getattr(getattr(self, "factory", None), "peer_banners", None)

    def _first_flight(self):
        """
        (assumed peer, (method, payload, modes)) for a speculative first
        flight, or (None, None): only a client whose config allows it, that
        knows the peer at its address (or is told it in the config), and
        whose first auth handler builds its request at once.
        """
        none = (None, None)
        if self.role is not Role.CLIENT or not self.config.speculate or not self.auth_handlers:
            return none
        cache = self._peer_banners()
        known = cache.get(self.conn.peer_addr) if cache is not None else None
        if known is None:
            known = self.config.assumed_peer()
        if known is None or not known.entity_type:
            return none
        handler = self.auth_handlers[0]
        modes = self._modes_for(handler)
        if not modes:
            return none
        try:
            payload = handler.build_request(known.entity_type)
        except Exception:
            return none  # (the same call after HELLO reports it in its place)
        if isinstance(payload, defer.Deferred):
            payload.addErrback(lambda f: None)  # an asynchronous handler: it answers after HELLO instead
            return none
        self._auth_handler = handler
        return known, (handler.method, payload, modes)

    def _modes_for(self, handler, allowed=None):
        return [m for m in self.config.modes
                if m in handler.allowed_modes and (allowed is None or m in allowed)]

    def _server_auth_request(self, event: E.AuthRequestReceived) -> None:
        conn = self.conn
        handler = None
        for h in self.auth_handlers:
            if h.method == event.method:
                handler = h
                break

        def allowed_methods():
            return [h.method for h in self.auth_handlers]

        def allowed_modes():
            return sorted({m for h in self.auth_handlers for m in h.allowed_modes if m in self.config.modes})

        if handler is None:
            self.log.info("refusing auth method {method} from {peer}", method=event.method,
                          peer=str(conn.peer_addr))
            conn.send_auth_bad_method(event.method, -errno.EOPNOTSUPP, allowed_methods(), allowed_modes())
            return
        mode = conn.pick_mode(event.preferred_modes, handler.allowed_modes)
        if not mode:
            conn.send_auth_bad_method(event.method, -errno.EOPNOTSUPP, allowed_methods(),
                                      [m for m in self.config.modes if m in handler.allowed_modes])
            return
        if not event.more:
            self._auth_state = {}
        request = AuthRequestInfo(event.method, mode, event.payload, event.more,
                                  conn.peer_entity_type, self._auth_state)

        def answer(result):
            if isinstance(result, AuthDone):
                conn.send_auth_done(result.global_id, mode, result.payload,
                                    result.session_key, result.connection_secret, expires=result.expires)
            elif isinstance(result, AuthMore):
                conn.send_auth_reply_more(result.payload)
            elif isinstance(result, AuthReject):
                self.log.info("auth rejected for {peer}: {reason}", peer=str(conn.peer_addr),
                              reason=result.reason)
                conn.send_auth_bad_method(event.method, result.result,
                                          list(result.allowed_methods) or allowed_methods(), allowed_modes())
            else:
                raise TypeError("auth handler returned %r" % (type(result),))

        def rejected(failure):
            failure.trap(AuthRejected)
            return AuthReject(-errno.EACCES, str(failure.value))

        def compute():
            try:
                result = handler.handle_request(request)
            except AuthRejected as e:
                return AuthReject(-errno.EACCES, str(e))
            if isinstance(result, (defer.Deferred, Failure, CoroutineType)):
                return defer.maybeDeferred(lambda: result).addErrback(rejected)
            return result

        self._auth_step(compute, answer)


_MessageReceived = E.MessageReceived


def _read_failed(error: OSError):
    """What a transport's C{doRead} returns when a non-blocking read fails: None (nothing yet) or the loss."""
    return None if error.args[0] in (errno.EWOULDBLOCK, errno.EAGAIN) else main.CONNECTION_LOST


_read_buffer = bytearray()


def _shared_read_buffer(size: int) -> bytearray:
    """
    The one buffer every connection of the process reads small reads into
    (the reactor runs one read at a time, and the core copies what it keeps
    before the read returns); grown to the largest C{bufferSize} asked for.
    """
    global _read_buffer
    if len(_read_buffer) < size:
        _read_buffer = bytearray(size)
    return _read_buffer


def _endpoint_addr(address) -> Optional[entity_addr_t]:
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    if host is None or port is None:
        return None
    ip = _HOSTS.get(host)
    if ip is not None:
        # parsing the host text costs more than the rest of an accept's
        # bookkeeping; ipaddress objects are immutable and can be shared
        return entity_addr_t(AddrType.MSGR2, 0, ip, port)
    try:
        addr = addr_from_socket(host, port)
    except ValueError:
        return None
    if len(_HOSTS) < 1024:
        _HOSTS[host] = addr.host
    return addr


#: host text (as a transport reports it) -> its ipaddress object, for the
#: hosts seen most recently by _endpoint_addr (bounded: once full, new hosts are parsed each time)
_HOSTS: dict = {}


def _random_u64() -> int:
    return int.from_bytes(os.urandom(8), "little")


def _random_u32() -> int:
    return int.from_bytes(os.urandom(4), "little")
