"""
A monitor client: subscribe to the monmap (for the fsid) and other maps,
run commands and ask map versions, keep cephx tickets fresh.

Two ways to use it:

 - B{Hunting} (as Ceph's C{MonClient} does): L{MonClient.start} with several
   monitor addresses.  It dials up to C{hunt_parallel} monitors at once,
   keeps the first that authenticates and closes the rest; when the session
   drops, or a keepalive goes unanswered for C{ping_timeout} seconds, it
   hunts again, waiting C{hunt_interval} times a multiplier that grows by
   C{hunt_backoff} up to C{hunt_max_multiple} between rounds.  It follows
   the monmap, so monitors added to or removed from the cluster are used or
   dropped.  Outstanding commands and version requests are sent again on the
   new session; each fails with L{CommandTimeout} after its overall
   timeout.
 - B{Receiver}: attach it as the receiver of one client connection that you
   make yourself (L{msgr2tx.client.connect} or a C{ReconnectingClient}).

The defaults are Ceph 16.2's (C{ceph-conf --show-config-value}):
C{mon_client_hunt_parallel} 3, C{mon_client_hunt_interval} 3 s,
C{mon_client_hunt_interval_backoff} 1.5, C{..._min_multiple} 1,
C{..._max_multiple} 10, C{mon_client_ping_interval} 10 s,
C{mon_client_ping_timeout} 30 s.  Source: Ceph C{src/mon/MonClient.cc}
(C{_reopen_session}, C{_add_conns}, C{_start_hunting}, C{_un_backoff},
C{tick}, C{handle_monmap}, C{_check_auth_tickets}).
"""

import copy
import dataclasses
import json
import random
import socket
import string
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from twisted.internet import defer
from twisted.internet.interfaces import IResolutionReceiver
from twisted.logger import Logger
from zope.interface import implementer

from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.features import CEPH_FEATUREMASK_CRUSH_MSR
from msgr2tx.core.encoding import AddrType, EntityType, entity_addr_t, entity_addrvec_t
from msgr2tx.ceph.monmap import MonMap
from msgr2tx.messages import (
    MAuth, MAuthReply, MMonCommand, MMonCommandAck, MMonGetVersion, MMonGetVersionReply, MMonMap,
    MMonSubscribe,
)
from msgr2tx.core.speculation import PeerBannerCache
from msgr2tx.errors import (
    AuthError, CommandError, CommandTimeout, ConnectionClosed, Msgr2Error, NoMonitorSession, NoMonitors,
    SpeculationFailed,
)
from msgr2tx.interfaces import IMsgr2Receiver

__all__ = [
    "MonClient", "CommandTimeout", "NoMonitors", "command_result", "mon_command", "resolve_monitors",
    "split_mon_list",
]

#: Ceph 16.2 defaults (see the module docstring)
HUNT_PARALLEL = 3
HUNT_INTERVAL = 3.0
HUNT_BACKOFF = 1.5
HUNT_MIN_MULTIPLE = 1.0
HUNT_MAX_MULTIPLE = 10.0
PING_INTERVAL = 10.0
PING_TIMEOUT = 30.0
#: our overall limit for one command or version request (Ceph's
#: C{rados_mon_op_timeout} is 0, "wait forever"; we never do)
OP_TIMEOUT = 120.0
MON_PORT = 3300


@implementer(IResolutionReceiver)
class _Collect:
    def __init__(self, d: defer.Deferred) -> None:
        self.d = d
        self.found: List[Any] = []

    def resolutionBegan(self, resolution) -> None:
        pass

    def addressResolved(self, address) -> None:
        self.found.append(address)

    def resolutionComplete(self) -> None:
        self.d.callback(self.found)


def _split_host_port(text: str) -> Tuple[str, int]:
    if text.startswith("["):  # [v6-or-name]:port
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else MON_PORT
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        if not port.isdigit():
            raise ValueError("%r is not a monitor address or HOST[:PORT]" % (text,))
        return host, int(port)
    return text, MON_PORT


def split_mon_list(text: str) -> List[str]:
    """
    Split a list of monitors as C{mon_host} writes it: entries separated by
    commas, semicolons or white space, where an entry may be an address
    vector in brackets (C{[v2:a:3300,v1:a:6789]}, whose commas stay) or a
    bracketed IPv6 address.  A minimal splitter for L{resolve_monitors};
    L{msgr2tx.cephconf} reads whole ceph.conf files.
    """
    out: List[str] = []
    current = ""
    depth = 0
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth = max(0, depth - 1)
        if depth == 0 and (ch in ",;" or ch.isspace()):
            if current:
                out.append(current)
            current = ""
            continue
        current += ch
    if current:
        out.append(current)
    return out


@defer.inlineCallbacks
def resolve_monitors(reactor, monitors) -> Any:
    """
    Turn monitor addresses into a list of C{(name, entity_addr_t)}, one per
    msgr2 address.

    @param monitors: a L{MonMap} (its monitors in rank order), a
        C{mon_host} string (see L{split_mon_list}), or a sequence of
        entries, each an L{entity_addrvec_t}, an L{entity_addr_t}, a
        C{(host, port)} pair or a string: an address vector in Ceph's syntax
        (C{[v2:10.0.0.1:3300,v1:10.0.0.1:6789]}), an address
        (C{v2:[::1]:3300}, C{10.0.0.1}, C{10.0.0.1:3300}) or a DNS name
        with an optional port (C{mon.example.com:3300}).  Names are resolved
        through the reactor's C{nameResolver}; every address a name has
        becomes one monitor, as Ceph's C{MonMap::init_with_hosts} does.
    @return: a Deferred firing with C{[(name, entity_addr_t), ...]}; names
        are the monmap's, else C{noname-a}, C{noname-b}, ... (Ceph's names
        for monitors known only by address).  Entries without a msgr2
        address (C{v1:} only) are skipped.
    @raise NoMonitors: (through the Deferred) when nothing is left.
    @raise ValueError: for an entry that is neither an address nor a name.
    """
    out: List[Tuple[str, entity_addr_t]] = []
    if isinstance(monitors, MonMap):
        out = list(monitors.msgr2_addrs())
    else:
        if isinstance(monitors, str):
            monitors = split_mon_list(monitors)
        elif isinstance(monitors, (entity_addrvec_t, entity_addr_t)):
            monitors = [monitors]
        found: List[entity_addr_t] = []
        v1_only: List[str] = []
        for entry in monitors:
            if isinstance(entry, entity_addr_t):
                entry = entity_addrvec_t((entry,))
            if isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], str):
                host, port = entry
            elif isinstance(entry, entity_addrvec_t):
                a = entry.msgr2_addr()
                if a is not None:
                    found.append(a)
                else:
                    v1_only.append(str(entry))
                continue
            else:
                text = str(entry).strip()
                try:
                    a = entity_addrvec_t.parse(text).msgr2_addr()
                except ValueError:
                    if text.startswith(("v1:", "v2:", "any:", "[")):
                        raise ValueError("%r is not a monitor address (e.g. v2:10.0.0.1:3300)" % (text,)) from None
                    host, port = _split_host_port(text)
                else:
                    if a is not None:
                        found.append(a)
                    else:
                        v1_only.append(text)
                    continue
            d: defer.Deferred = defer.Deferred()
            reactor.nameResolver.resolveHostName(_Collect(d), host, port)
            addresses = yield d
            if not addresses:
                raise NoMonitors("the monitor name %s resolves to no address: check mon_host or DNS" % (host,))
            for address in addresses:
                found.append(entity_addr_t.parse("v2:%s" % (
                    "[%s]:%d" % (address.host, address.port) if ":" in address.host
                    else "%s:%d" % (address.host, address.port))))
        seen = set()
        for a in found:
            a = entity_addr_t(AddrType.MSGR2, 0, a.host, a.port)
            if (a.host, a.port) in seen:
                continue
            seen.add((a.host, a.port))
            out.append(("noname-" + _letters(len(out)), a))
    if not out:
        if not isinstance(monitors, MonMap) and v1_only:
            raise NoMonitors(
                "no monitor with a msgr2 (v2) address to connect to: %s: msgr1 only; give the monitor's v2 "
                "address, e.g. v2:HOST:3300"
                % ", ".join(v1_only))
        raise NoMonitors("no monitor with a msgr2 (v2) address to connect to")
    return out


def _letters(n: int) -> str:
    letters = string.ascii_lowercase
    out = ""
    n += 1
    while n:
        n, r = divmod(n - 1, 26)
        out = letters[r] + out
    return out


class _Attempt:
    """One monitor dialled during a hunt."""

    def __init__(self, name: str, addr: entity_addr_t, handlers: list) -> None:
        self.name = name
        self.addr = addr
        self.handlers = handlers
        self.connecting: Optional[defer.Deferred] = None
        self.protocol = None
        self.failed: Optional[BaseException] = None

    def abort(self) -> None:
        if self.protocol is not None:
            self.protocol.abort()
        elif self.connecting is not None:
            self.connecting.cancel()


class _Op:
    """An outstanding command or version request."""

    def __init__(self, d: defer.Deferred, message, timeout_call) -> None:
        self.d = d
        self.message = message
        self.timeout_call = timeout_call


#: ceph_release_t of Squid, the first release whose monitors may refuse aes keys
CEPH_RELEASE_SQUID = 19


def _failure_words(error: BaseException) -> str:
    """A failed monitor attempt in a few words: 'connection refused', 'no answer within the connect timeout'."""
    from twisted.internet import error as txerror

    if isinstance(error, txerror.ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, (txerror.TCPTimedOutError, txerror.TimeoutError)):
        return "no answer to the TCP connect"
    if isinstance(error, txerror.DNSLookupError):
        return "the host name does not resolve"
    return str(error) or type(error).__name__


def _clone_handler(handler):
    clone = getattr(handler, "clone", None)
    return clone() if clone is not None else copy.copy(handler)


@implementer(IMsgr2Receiver)
class MonClient:
    """
    A monitor session: commands (L{command}), map versions (L{get_version}),
    map subscriptions (L{subscribe}), ticket renewal.  Commands wait for the
    first monmap, because a monitor refuses commands whose fsid is not its
    own.

    Hunting mode: call L{start} with the monitors, then L{authenticate}.
    Receiver mode: pass it as C{receiver=} of one connection.

    @param hostname: sent in MMonSubscribe (default: our short host name).
    @param auth_handler: the cephx client handler whose tickets we keep
        fresh (hunting mode: taken from C{start}'s handlers when not given).
    @param clock: an C{IReactorTime} for every timer (keepalives, hunt
        rounds, op timeouts, ticket checks); the reactor by default.
    @param renew_check_interval: seconds between ticket checks.
    @param resend_on_reconnect: receiver mode: keep commands and version
        requests across a lost connection and send them again on the next
        (always on in hunting mode).
    @param hunt_parallel: monitors dialled at once (C{mon_client_hunt_parallel}).
    @param hunt_interval: seconds between hunt rounds (C{mon_client_hunt_interval}),
        times a multiplier growing by C{hunt_backoff} (C{..._interval_backoff})
        up to C{hunt_max_multiple} (C{..._max_multiple}) after each lost session.
    @param ping_interval: seconds between KEEPALIVE2 on the session (C{mon_client_ping_interval}).
    @param ping_timeout: hunt again when no KEEPALIVE2_ACK came for this long
        (C{mon_client_ping_timeout}); 0 turns the check off.
    @param op_timeout: default overall timeout (seconds) of a command or version request.
    """

    log = Logger()

    def __init__(self, hostname: Optional[str] = None, auth_handler=None, clock=None,
                 renew_check_interval: float = 10.0, resend_on_reconnect: bool = False,
                 hunt_parallel: int = HUNT_PARALLEL, hunt_interval: float = HUNT_INTERVAL,
                 hunt_backoff: float = HUNT_BACKOFF, hunt_min_multiple: float = HUNT_MIN_MULTIPLE,
                 hunt_max_multiple: float = HUNT_MAX_MULTIPLE, ping_interval: float = PING_INTERVAL,
                 ping_timeout: float = PING_TIMEOUT, op_timeout: float = OP_TIMEOUT) -> None:
        self.hostname = hostname if hostname is not None else socket.gethostname().split(".")[0]
        #: a cephx client handler whose service tickets we keep fresh
        self.auth_handler = auth_handler
        self.clock = clock
        self.renew_check_interval = renew_check_interval
        self._renewal_loop = None
        self._renewals: List[defer.Deferred] = []
        self.protocol = None
        self.monmap: Optional[MonMap] = None
        self._monmap_waiters: List[defer.Deferred] = []
        #: keep commands across a lost connection and send them again on the
        #: next one, as Ceph's MonClient does
        self.resend_on_reconnect = resend_on_reconnect
        self._commands: Dict[int, _Op] = {}
        self._versions: Dict[int, _Op] = {}
        self._next_tid = 1
        self._lost = None
        #: maps subscribed to besides the monmap: name -> first epoch wanted
        self.subscriptions: Dict[str, int] = {}
        self._handlers: Dict[type, List[Callable]] = {}
        self._ready_hooks: List[Callable] = []
        # -- hunting --
        self.hunt_parallel = hunt_parallel
        self.hunt_interval = hunt_interval
        self.hunt_backoff = hunt_backoff
        self.hunt_min_multiple = hunt_min_multiple
        self.hunt_max_multiple = hunt_max_multiple
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.op_timeout = op_timeout
        #: the monitors we hunt among: [(name, msgr2 entity_addr_t)], from
        #: start() and then from every newer monmap
        self.monitors: List[Tuple[str, entity_addr_t]] = []
        #: name of the monitor of the current session (hunting mode)
        self.active_name: Optional[str] = None
        #: sessions established so far (hunting mode)
        self.sessions = 0
        #: (seconds from losing a session to the next one) for each failover
        self.failover_times: List[float] = []
        self._reactor = None
        self._auth_handlers: list = []
        self._config: Optional[ConnectionConfig] = None
        self._connect_timeout = 10.0
        self._pending: Dict[int, _Attempt] = {}
        self._tried: set = set()
        self._multiplier = hunt_min_multiple
        self._had_a_connection = False
        self._tick_call = None
        self._running = False
        self._auth_waiters: List[defer.Deferred] = []
        #: waiters of authenticate(give_up_after_round=True)
        self._round_waiters: List[defer.Deferred] = []
        #: monitor name -> (address, error) of its last failed attempt
        self.last_failures: Dict[str, Tuple[entity_addr_t, BaseException]] = {}
        self._auth_error: Optional[BaseException] = None
        self._session_auth = None
        self._last_keepalive_sent = 0.0
        self._last_keepalive_ack = 0.0
        self._lost_at: Optional[float] = None
        self._auth_renewal_pending = False
        #: what each monitor's banner and HELLO showed (hunting mode): a
        #: monitor dialled again gets a speculative first flight
        self.peer_banners = PeerBannerCache()

    def _clock(self):
        if self.clock is None:
            from twisted.internet import reactor
            self.clock = reactor
        return self.clock

    def _now(self) -> float:
        return self._clock().seconds()

    # ---- hunting: public API ---------------------------------------------

    def start(self, reactor, monitors, auth: Sequence, config: Optional[ConnectionConfig] = None,
              connect_timeout: float = 10.0) -> defer.Deferred:
        """
        Start hunting among C{monitors} (see L{resolve_monitors}) and keep a
        session open until L{stop}.

        @param reactor: connects (TCP) and resolves names; timers use C{clock}.
        @param auth: client auth handlers in order of preference; each
            monitor dialled gets its own clone of them.
        @param connect_timeout: seconds for one monitor's TCP connect and handshake.
        @return: a Deferred firing with the resolved monitor list once the
            first hunt round is under way (fails with L{NoMonitors} or
            ValueError for bad addresses); use L{authenticate} to wait for
            the session.
        """
        self._reactor = reactor
        self._auth_handlers = list(auth)
        if not self._auth_handlers:
            raise ValueError("a monitor client needs at least one auth handler")
        if self.auth_handler is None:
            cephx = [h for h in self._auth_handlers if hasattr(h, "build_rotating_request")]
            self.auth_handler = cephx[0] if cephx else None
        base = config or ConnectionConfig()
        # the OSDMaps it fetches may hold MSR rules, which msgr2tx.ceph.crush
        # runs; a cluster whose map has them requires CRUSH_MSR of every client
        # (and a peer that says in its HELLO it is not a monitor is refused
        # there, before auth: "is an OSD, not a monitor")
        self._config = dataclasses.replace(
            base, features_supported=base.features_supported | CEPH_FEATUREMASK_CRUSH_MSR,
            peer_type=base.peer_type or EntityType.MON)
        self._connect_timeout = connect_timeout
        self.resend_on_reconnect = True
        self._running = True
        self._auth_error = None

        def resolved(found):
            if not self._running:
                return found
            self.monitors = found
            self._reopen_session()
            return found

        def failed(f):
            self._auth_error = f.value   # authenticate() fails with it too
            self._fail_auth_waiters(f.value)
            return f
        return resolve_monitors(reactor, monitors).addCallbacks(resolved, failed)

    def authenticate(self, timeout: Optional[float] = None, give_up_after_round: bool = False) -> defer.Deferred:
        """
        Fires with the protocol of the current session, or of the next one.
        Fails with the auth error when every monitor of a round refused our
        credentials (as Ceph's C{authenticate} does), or with
        L{NoMonitorSession} (a L{ConnectionClosed}) after C{timeout} seconds
        without a session (C{client_mount_timeout} in Ceph; no limit if
        None), naming each monitor's last failure.  With
        C{give_up_after_round}, it fails as soon as every monitor of a hunt
        round failed (refused connections, say) instead of waiting for the
        next round: what a command line wants.
        """
        if self.protocol is not None and not self.protocol._closed:
            return defer.succeed(self.protocol)
        if self._auth_error is not None:
            return defer.fail(self._auth_error)
        d: defer.Deferred = defer.Deferred()
        self._auth_waiters.append(d)
        if give_up_after_round:
            self._round_waiters.append(d)
            def forget(result):
                if d in self._round_waiters:
                    self._round_waiters.remove(d)
                return result
            d.addBoth(forget)
        if timeout is not None:
            call = self._clock().callLater(timeout, self._auth_timed_out, d, timeout)
            d.addBoth(lambda r: (call.cancel() if call.active() else None, r)[1])
        return d

    def _auth_timed_out(self, d: defer.Deferred, timeout: float) -> None:
        if d in self._auth_waiters:
            self._auth_waiters.remove(d)
            d.errback(self._no_session("no monitor session within %gs" % timeout))

    def _no_session(self, head: str) -> NoMonitorSession:
        """L{NoMonitorSession}: C{head}, then each monitor with the cause of its last failure."""
        failures = []
        tried = []
        for name, addr in self.monitors:
            seen = self.last_failures.get(name)
            if seen is not None:
                failures.append((name, seen[0], seen[1]))
                tried.append("%s (%s): %s" % (name, addr, _failure_words(seen[1])))
            else:
                tried.append("%s (%s): no answer yet" % (name, addr))
        return NoMonitorSession("%s; monitors tried: %s" % (head, "; ".join(tried) or "none"), failures)

    def stop(self) -> None:
        """Close the session and stop hunting; outstanding requests fail with L{ConnectionClosed}."""
        self._running = False
        self._cancel_tick()
        for attempt in list(self._pending.values()):
            attempt.abort()
        self._pending.clear()
        if self.protocol is not None:
            p, self.protocol = self.protocol, None
            p.close()
        self._fail_everything(ConnectionClosed("the monitor client was stopped"))
        self._fail_auth_waiters(ConnectionClosed("the monitor client was stopped"))

    def reopen_session(self, name: Optional[str] = None) -> None:
        """Drop the session and hunt again (only monitor C{name} if given, as Ceph's C{_reopen_session(rank)})."""
        self._reopen_session(name)

    @property
    def hunting(self) -> bool:
        """True while monitors are being dialled and no session is chosen."""
        return bool(self._pending)

    # ---- hunting: internals -----------------------------------------------

    def _reopen_session(self, name: Optional[str] = None) -> None:
        if self._reactor is None or not self._running:
            return
        if name is not None and name not in [n for n, _ in self.monitors]:
            raise ValueError("no monitor %r in %s" % (name, [n for n, _ in self.monitors]))
        if self.protocol is not None:
            p, self.protocol = self.protocol, None
            self.active_name = None
            self._lost_at = self._now()
            p.abort()
        for attempt in list(self._pending.values()):
            attempt.abort()
        self._pending.clear()
        self._stop_renewal_loop()
        self._fail_renewals(ConnectionClosed("monitor session reopened"))
        # Ceph's _start_hunting: slow down after every lost session
        if self._had_a_connection:
            self._multiplier = min(self._multiplier * self.hunt_backoff, self.hunt_max_multiple)
        if name is not None:
            batch = [(n, a) for n, a in self.monitors if n == name]
        else:
            batch = [(n, a) for n, a in self.monitors if n not in self._tried]
            if not batch:
                self._tried.clear()
                batch = list(self.monitors)
            random.shuffle(batch)
            batch = batch[:self.hunt_parallel or len(batch)]
        self.log.info("monclient: hunting among {mons}", mons=", ".join("%s (%s)" % m for m in batch))
        for mon_name, addr in batch:
            self._tried.add(mon_name)
            self._dial(mon_name, addr)
        self._schedule_tick()

    def _dial(self, name: str, addr: entity_addr_t) -> None:
        from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint

        from msgr2tx.factory import Msgr2ClientFactory

        attempt = _Attempt(name, addr, [_clone_handler(h) for h in self._auth_handlers])
        monmap = self.monmap
        if monmap is not None and monmap.min_mon_release >= CEPH_RELEASE_SQUID:
            # what the cluster's cipher policy is, for cephx's words if our key is refused
            for h in attempt.handlers:
                if hasattr(h, "monitor_ciphers"):
                    h.monitor_ciphers = tuple(monmap.auth_allowed_ciphers)
        key = id(attempt)
        self._pending[key] = attempt
        cls = TCP6ClientEndpoint if addr.host.version == 6 else TCP4ClientEndpoint
        endpoint = cls(self._reactor, str(addr.host), addr.port, timeout=self._connect_timeout)
        factory = Msgr2ClientFactory(attempt.handlers, self._config or ConnectionConfig(), target_addr=addr,
                                     receiver=self, reactor=self._reactor, handshake_timeout=self._connect_timeout,
                                     peer_banners=self.peer_banners)

        def built(protocol):
            attempt.protocol = protocol
            protocol._monclient_attempt = attempt
        factory.onProtocol = built
        attempt.connecting = endpoint.connect(factory)

        def connected(protocol):
            attempt.connecting = None
            return protocol.whenReady()

        def failed(f):
            attempt.connecting = None
            self._attempt_failed(key, attempt, f.value)
        attempt.connecting.addCallback(connected).addErrback(failed)

    def _attempt_failed(self, key: int, attempt: _Attempt, error: BaseException) -> None:
        if self._pending.get(key) is not attempt:
            return  # already won, or given up
        del self._pending[key]
        attempt.failed = error
        self.last_failures[attempt.name] = (attempt.addr, error)
        if isinstance(error, SpeculationFailed) and self._running and self.protocol is None:
            # the monitor is not what our first flight assumed: dial it again
            # now, plainly (the cache no longer speculates for it)
            self.log.info("monclient: mon {name} ({addr}): {error}; dialling again",
                          name=attempt.name, addr=str(attempt.addr), error=str(error))
            self._dial(attempt.name, attempt.addr)
            return
        self.log.info("monclient: mon {name} ({addr}) failed: {error}", name=attempt.name,
                      addr=str(attempt.addr), error=str(error) or type(error).__name__)
        if self._pending or self.protocol is not None:
            return
        # every monitor of this round failed.  Refused credentials end the
        # hunt as in Ceph (_finish_auth with the error); anything else (a
        # monitor out of quorum dropping us, refused connections, timeouts)
        # waits for the next round at the tick.
        if isinstance(error, AuthError):
            self._auth_error = error
            self._cancel_tick()
            self._fail_auth_waiters(error)
        elif self._round_waiters:
            waiters, self._round_waiters = self._round_waiters, []
            failure = self._no_session("no monitor session: every monitor dialled failed")
            for d in waiters:
                if d in self._auth_waiters:
                    self._auth_waiters.remove(d)
                    d.errback(failure)

    def _won(self, attempt: _Attempt, protocol, info) -> None:
        for key, other in list(self._pending.items()):
            if other is not attempt:
                other.abort()
        self._pending.clear()
        self.protocol = protocol
        self.active_name = attempt.name
        self.sessions += 1
        self._had_a_connection = True
        self._auth_error = None
        # Ceph's _un_backoff at _finish_hunting
        self._multiplier = max(self.hunt_min_multiple, self._multiplier / self.hunt_backoff)
        if self._lost_at is not None:
            self.failover_times.append(self._now() - self._lost_at)
            self._lost_at = None
        # keep the winner's tickets and global_id in the shared store
        winner = [h for h in attempt.handlers if hasattr(h, "build_auth_renewal_request")]
        if winner and self.auth_handler is not None and hasattr(self.auth_handler, "tickets"):
            store = self.auth_handler.tickets
            store.tickets = dict(winner[0].tickets.tickets)
            store.global_id = winner[0].tickets.global_id
            winner[0].tickets = store
            self._session_auth = winner[0]
        else:
            self._session_auth = None
        # other methods (auth none) remember the global_id for the next session, as Ceph passes it
        for mine, used in zip(self._auth_handlers, attempt.handlers):
            if not hasattr(mine, "tickets") and isinstance(getattr(used, "global_id", None), int):
                mine.global_id = used.global_id
        self.log.info("monclient: session with mon {name} ({addr}), global_id {gid}", name=attempt.name,
                      addr=str(attempt.addr), gid=info.global_id)
        now = self._now()
        self._last_keepalive_sent = self._last_keepalive_ack = now
        self._schedule_tick()

    def _schedule_tick(self) -> None:
        self._cancel_tick()
        if not self._running:
            return
        if self.protocol is None:
            delay = self.hunt_interval * self._multiplier
        else:
            delay = min(self.ping_interval, self.renew_check_interval)
        self._tick_call = self._clock().callLater(delay, self._tick)

    def _cancel_tick(self) -> None:
        if self._tick_call is not None and self._tick_call.active():
            self._tick_call.cancel()
        self._tick_call = None

    def _tick(self) -> None:
        """Ceph's C{MonClient::tick}: continue a hunt, or check tickets and keepalives."""
        self._tick_call = None
        if not self._running:
            return
        if self.protocol is None:
            self.log.info("monclient: continuing hunt")
            self._reopen_session()
            return
        self._check_auth_tickets()
        now = self._now()
        if now - self._last_keepalive_sent >= self.ping_interval:
            if self.ping_timeout and now - self._last_keepalive_ack > self.ping_timeout:
                self.log.warn("monclient: no keepalive ack from mon {name} for {secs:.1f}s, hunting",
                              name=self.active_name, secs=now - self._last_keepalive_ack)
                self._reopen_session()
                return
            self._send_keepalive()
            # Ceph's tick un-backs-off while the session is healthy
            self._multiplier = max(self.hunt_min_multiple, self._multiplier / self.hunt_backoff)
        self._schedule_tick()

    def _send_keepalive(self) -> None:
        protocol = self.protocol
        self._last_keepalive_sent = self._now()

        def acked(_):
            if protocol is self.protocol:
                self._last_keepalive_ack = self._now()
        protocol.keepalive().addCallbacks(acked, lambda f: None)

    def _check_auth_tickets(self) -> None:
        """Renew the AUTH ticket in-session, and service tickets, before they expire."""
        handler = self._session_auth
        now = self._now()
        if handler is not None and not self._auth_renewal_pending and handler.need_auth_ticket(now):
            self._auth_renewal_pending = True

            def done(result):
                self._auth_renewal_pending = False
                return result

            def failed(f):
                self.log.warn("monclient: AUTH ticket renewal failed ({error}); opening a new session",
                              error=f.getErrorMessage())
                if not f.check(ConnectionClosed):
                    self._reopen_session()
            self.renew_auth_ticket().addBoth(done).addErrback(failed)
            return
        if self.auth_handler is not None and hasattr(self.auth_handler, "need_tickets") \
                and not self._auth_renewal_pending and self.auth_handler.need_tickets(now):
            self.renew_tickets().addErrback(
                lambda f: self.log.warn("ticket renewal failed: {error}", error=f.getErrorMessage()))

    def renew_auth_ticket(self) -> defer.Deferred:
        """
        Renew the AUTH ticket (and the other wanted tickets) inside the
        current session: cephx CEPHX_GET_AUTH_SESSION_KEY over MAuth,
        answering the server challenge of the session's handshake (Ceph's
        C{_check_auth_tickets} when C{need} includes AUTH).  Fires with the
        mask of the services renewed; fails with L{CommandError} when the
        monitor refuses, L{ConnectionClosed} without a session.  Hunting
        mode only (the session's own handler holds the challenge).
        """
        handler = self._session_auth
        if handler is None:
            return defer.fail(CommandError("in-session AUTH renewal needs a hunting cephx session"))
        return self._auth_request(handler.build_auth_renewal_request(), handler.handle_auth_renewal_reply,
                                  "AUTH ticket renewal")

    def _fail_auth_waiters(self, error: BaseException) -> None:
        waiters, self._auth_waiters = self._auth_waiters, []
        for d in waiters:
            d.errback(error)

    def _update_monitors(self, monmap: MonMap) -> None:
        """Follow the monmap: hunt among its monitors; leave a monitor that is no longer in it."""
        found = monmap.msgr2_addrs()
        if not found:
            return
        old = {(a.host, a.port) for _, a in self.monitors}
        new = {(a.host, a.port) for _, a in found}
        self.monitors = list(found)
        if old != new:
            self.log.info("monclient: monmap e{epoch} monitors: {mons}", epoch=monmap.epoch,
                          mons=", ".join("%s (%s)" % m for m in found))
            self._tried.clear()
        if self._reactor is None or self.protocol is None:
            return
        peer = self.protocol.target_addr
        if peer is None:
            return
        for name, a in found:
            if (a.host, a.port) == (peer.host, peer.port):
                self.active_name = name
                return
        self.log.info("monclient: our monitor {addr} left the monmap, hunting", addr=str(peer))
        self._reopen_session()

    # ---- IMsgr2Receiver ----------------------------------------------

    def connectionReady(self, protocol, info):
        attempt = getattr(protocol, "_monclient_attempt", None)
        if self._reactor is not None:
            if attempt is None or attempt not in self._pending.values() or self.protocol is not None:
                protocol.close()  # a monitor that finished after another won
                return
            self._won(attempt, protocol, info)
        else:
            self.protocol = protocol
        self._lost = None
        self._session_ready(protocol, info)

    def _session_ready(self, protocol, info) -> None:
        subscribe = MMonSubscribe(hostname=self.hostname)
        subscribe.sub_want("monmap", self.monmap.epoch + 1 if self.monmap is not None else 0, 0)
        for what, start in sorted(self.subscriptions.items()):
            subscribe.sub_want(what, start, 0)
        protocol.sendMessage(subscribe)
        # a monitor session does not survive its connection: send again what
        # the last one left unanswered (the tids stay the same)
        if self.resend_on_reconnect:
            for ops in (self._commands, self._versions):
                for tid in sorted(ops):
                    message = ops[tid].message
                    if message is not None:
                        message.seq = 0
                        protocol.sendMessage(message)
        if self._reactor is None and self.auth_handler is not None and hasattr(self.auth_handler, "need_tickets"):
            from twisted.internet.task import LoopingCall
            self._renewal_loop = LoopingCall(self._check_tickets)
            self._renewal_loop.clock = self._clock()
            self._renewal_loop.start(self.renew_check_interval, now=False).addErrback(
                lambda f: self.log.failure("ticket renewal check failed", f))
        waiters, self._auth_waiters = self._auth_waiters, []
        for d in waiters:
            d.callback(protocol)
        for hook in list(self._ready_hooks):
            hook(protocol, info)

    def subscribe(self, what: str, start: int = 0) -> None:
        """Also subscribe to the map C{what} (e.g. C{"mgrmap"}), now and on every reconnect."""
        self.subscriptions[what] = start
        if self.protocol is not None:
            message = MMonSubscribe(hostname=self.hostname)
            message.sub_want(what, start, 0)
            self.protocol.sendMessage(message)

    def addMessageHandler(self, message_class: type, handler: Callable) -> None:
        """Call C{handler(message)} for every message of C{message_class} the monitor sends."""
        self._handlers.setdefault(message_class, []).append(handler)

    def addReadyHook(self, hook: Callable) -> None:
        """Call C{hook(protocol, info)} each time a monitor session becomes READY."""
        self._ready_hooks.append(hook)

    def _check_tickets(self):
        if self.auth_handler.need_tickets():
            self.renew_tickets().addErrback(
                lambda f: self.log.warn("ticket renewal failed: {error}", error=f.getErrorMessage()))

    def renew_tickets(self, keys: Optional[int] = None) -> defer.Deferred:
        """
        Ask the monitor for fresh service tickets (cephx
        GET_PRINCIPAL_SESSION_KEY over MAuth).  Fires with the mask of the
        services renewed.  The renewal loop calls this before tickets expire.
        """
        handler = self.auth_handler
        return self._auth_request(handler.build_renewal_request(keys), handler.handle_renewal_reply,
                                  "ticket renewal")

    def request_rotating(self) -> defer.Deferred:
        """
        Ask the monitor for the rotating secrets of our own service type
        (cephx CEPHX_GET_ROTATING_KEY over MAuth), as a daemon does before it
        accepts clients.  Fires with a L{RotatingSecrets}.
        """
        handler = self.auth_handler
        if handler is None or not hasattr(handler, "build_rotating_request"):
            return defer.fail(CommandError("rotating secrets need a cephx auth handler"))
        return self._auth_request(handler.build_rotating_request(), handler.handle_rotating_reply,
                                  "rotating secrets")

    def _auth_request(self, payload: bytes, handle_reply: Callable, what: str) -> defer.Deferred:
        if self.protocol is None:
            return defer.fail(ConnectionClosed("no monitor connection"))
        d: defer.Deferred = defer.Deferred()
        self._renewals.append(d)
        epoch = self.monmap.epoch if self.monmap is not None else 0
        self.protocol.sendMessage(MAuth(protocol=self.auth_handler.method, auth_payload=payload,
                                        monmap_epoch=epoch))

        def got(reply):
            if reply.result != 0:
                raise CommandError("%s refused with %d" % (what, reply.result), reply.result)
            return handle_reply(reply.result_bl)
        return d.addCallback(got)

    def messageReceived(self, protocol, message):
        if protocol is not self.protocol and self._reactor is not None:
            return  # a monitor we are not in session with
        handlers = self._handlers.get(type(message))
        if handlers:
            for handler in list(handlers):
                handler(message)
            return
        if isinstance(message, MMonCommandAck):
            op = self._commands.pop(message.tid, None)
            if op is not None:
                self._finish(op, message)
        elif isinstance(message, MMonGetVersionReply):
            op = self._versions.pop(message.handle, None)
            if op is not None:
                self._finish(op, message)
        elif isinstance(message, MAuthReply):
            if self._renewals:
                self._renewals.pop(0).callback(message)
        elif isinstance(message, MMonMap):
            try:
                monmap = message.monmap()
            except Msgr2Error as e:
                self.log.warn("monclient: undecodable monmap: {error}", error=str(e))
                return
            if self.monmap is None or monmap.epoch >= self.monmap.epoch:
                self.monmap = monmap
            if self._reactor is not None:
                self._update_monitors(self.monmap)
            waiters, self._monmap_waiters = self._monmap_waiters, []
            for d in waiters:
                d.callback(self.monmap)
        else:
            self.log.debug("ignoring {msg!r}", msg=message)

    def connectionLost(self, protocol, reason):
        if self._reactor is not None:
            if protocol is not self.protocol:
                return  # a hunted monitor that lost, or an old session
            self.log.warn("monclient: lost mon {name}: {error}, hunting", name=self.active_name,
                          error=reason.getErrorMessage())
            self.protocol = None
            self.active_name = None
            self._lost_at = self._now()
            self._reopen_session()
            return
        if protocol is not self.protocol and self.protocol is not None:
            return  # an old connection going away after a newer one is READY
        self._lost = reason
        self._stop_renewal_loop()
        self._fail_renewals(ConnectionClosed("monitor connection lost: %s" % (reason.getErrorMessage(),)))
        if self.resend_on_reconnect:
            self.protocol = None
            return
        error = ConnectionClosed("monitor connection lost: %s" % (reason.getErrorMessage(),))
        self._fail_everything(error)

    def _stop_renewal_loop(self) -> None:
        if self._renewal_loop is not None and self._renewal_loop.running:
            self._renewal_loop.stop()
        self._renewal_loop = None

    def _fail_renewals(self, error: BaseException) -> None:
        renewals, self._renewals = self._renewals, []
        for d in renewals:
            d.errback(error)

    def _fail_everything(self, error: BaseException) -> None:
        ops = list(self._commands.values()) + list(self._versions.values())
        self._commands, self._versions = {}, {}
        for op in ops:
            self._finish(op, None, error)
        waiters, self._monmap_waiters = self._monmap_waiters, []
        for d in waiters:
            d.errback(error)
        self._fail_renewals(error)

    # ---- API -------------------------------------------------------------

    def _tid(self) -> int:
        tid = self._next_tid
        self._next_tid += 1
        return tid

    def _finish(self, op: _Op, result, error: Optional[BaseException] = None) -> None:
        if op.timeout_call is not None and op.timeout_call.active():
            op.timeout_call.cancel()
        if op.d.called:
            return
        if error is not None:
            op.d.errback(error)
        else:
            op.d.callback(result)

    def _start_op(self, table: Dict[int, _Op], tid: int, message, timeout: Optional[float], what: str) -> _Op:
        d: defer.Deferred = defer.Deferred()
        if timeout is None:
            timeout = self.op_timeout
        op = _Op(d, message, None)

        def timed_out():
            if table.get(tid) is op:
                del table[tid]
                self._finish(op, None, CommandTimeout("%s: no answer from the monitors within %gs" % (what, timeout)))
        if timeout:
            op.timeout_call = self._clock().callLater(timeout, timed_out)
        table[tid] = op
        return op

    def whenMonmap(self) -> defer.Deferred:
        """Fires with the first (or current) L{MonMap}."""
        if self.monmap is not None:
            return defer.succeed(self.monmap)
        if self._lost is not None and not self.resend_on_reconnect:
            return defer.fail(ConnectionClosed("monitor connection lost"))
        d: defer.Deferred = defer.Deferred()
        self._monmap_waiters.append(d)
        return d

    def command(self, cmd, inbl: bytes = b"", check: bool = False, timeout: Optional[float] = None):
        """
        Run a monitor command (a JSON string or a dict).  Fires with
        C{(result, status, output)}; with C{check}, a non-zero result fails
        with L{CommandError}.  Sent again on every new session until it is
        answered; fails with L{CommandTimeout} after C{timeout} seconds
        (default C{op_timeout}; 0: no limit), counted from this call.
        """
        monmap = self.monmap
        if monmap is None:
            return self._command_after_monmap(cmd, inbl, check, timeout)
        # the monmap is known (every command after the first): the same
        # steps without waiting, and without a generator per command
        try:
            if not isinstance(cmd, str):
                cmd = json.dumps(cmd)
            if timeout is None:
                timeout = self.op_timeout
            tid = self._tid()
            message = MMonCommand.build(monmap.fsid, cmd, inbl if type(inbl) is bytes else bytes(inbl), tid)
            op = self._start_op(self._commands, tid, message if self.resend_on_reconnect else None,
                                timeout or 0, "command %s" % (cmd,))
            if self.protocol is not None:
                self.protocol.sendMessage(message)
        except Exception:
            return defer.fail()
        return op.d.addCallback(_command_result, check)

    @defer.inlineCallbacks
    def _command_after_monmap(self, cmd, inbl: bytes, check: bool, timeout: Optional[float]):
        """L{command} before the first monmap has arrived: waits for it (counted in C{timeout})."""
        if not isinstance(cmd, str):
            cmd = json.dumps(cmd)
        if timeout is None:
            timeout = self.op_timeout
        started = self._now()
        monmap_d = self.whenMonmap()
        timed_out = []
        if timeout and not monmap_d.called:
            def expire():
                timed_out.append(True)
                monmap_d.cancel()
            call = self._clock().callLater(timeout, expire)
            monmap_d.addBoth(lambda r: (call.cancel() if call.active() else None, r)[1])
        try:
            monmap = yield monmap_d
        except defer.CancelledError:
            if not timed_out:
                raise   # our caller cancelled us: not a timeout of ours
            raise CommandTimeout("command %s: no monmap from the monitors within %gs" % (cmd, timeout)) from None
        tid = self._tid()
        message = MMonCommand(monmap.fsid, [cmd], inbl, tid=tid)
        left = max(0.001, timeout - (self._now() - started)) if timeout else 0
        op = self._start_op(self._commands, tid, message if self.resend_on_reconnect else None, left,
                            "command %s" % (cmd,))
        if self.protocol is not None:
            self.protocol.sendMessage(message)
        ack = yield op.d
        return _command_result(ack, check)

    def get_version(self, what: str, timeout: Optional[float] = None) -> defer.Deferred:
        """
        Fires with C{(newest, oldest)} versions of the named map
        (C{"osdmap"}, C{"mdsmap"}, ...).  Sent again on every new session
        until answered; fails with L{CommandTimeout} after C{timeout}
        seconds (default C{op_timeout}), or at once with
        L{ConnectionClosed} in receiver mode without a connection.
        """
        if self.protocol is None and self._reactor is None:
            return defer.fail(ConnectionClosed("no monitor connection"))
        handle = self._tid()
        message = MMonGetVersion(handle=handle, what=what)
        op = self._start_op(self._versions, handle, message if self.resend_on_reconnect else None, timeout,
                            "version of %s" % (what,))
        if self.protocol is not None:
            self.protocol.sendMessage(message)
        return op.d.addCallback(lambda reply: (reply.map_version, reply.oldest_version))


def _command_result(ack, check: bool):
    """An MMonCommandAck as L{MonClient.command} reports it."""
    if check and ack.r != 0:
        raise CommandError("command failed with %d: %s" % (ack.r, ack.rs), ack.r, ack.rs, ack.outbl)
    return (ack.r, ack.rs, ack.outbl)


@defer.inlineCallbacks
def mon_command(reactor, monitors, auth: Sequence, config: Optional[ConnectionConfig] = None, cmd: Any = None,
                inbl: bytes = b"", timeout: float = 30.0, connect_timeout: float = 10.0, clock=None) -> Any:
    """
    Run one monitor command the way the C{ceph} CLI does: hunt among
    C{monitors} (see L{resolve_monitors}) for a session, send the command
    (again on a new session if the first drops), close.  For programs and
    the CLI's C{command}.

    @param cmd: the command, a JSON string or a dict.
    @param timeout: seconds for everything (session and answer).
    @return: a Deferred firing with C{(result, status, output)}; it fails
        with the auth error when the monitors refuse our credentials,
        L{ConnectionClosed} when no monitor answers within C{timeout}
        (naming the monitors tried), L{CommandTimeout} when the command
        gets no answer in time, L{NoMonitors} or ValueError for bad addresses.
    """
    mc = MonClient(clock=clock, op_timeout=timeout)
    clock = mc._clock()
    started = clock.seconds()
    try:
        yield mc.start(reactor, monitors, auth, config, connect_timeout=min(connect_timeout, timeout))
        yield mc.authenticate(timeout=timeout)
        left = max(0.001, timeout - (clock.seconds() - started))
        result = yield mc.command(cmd, inbl, timeout=left)
    finally:
        mc.stop()
    return result


def command_result(ack) -> Tuple[int, str, bytes]:
    return ack.r, ack.rs, ack.outbl
