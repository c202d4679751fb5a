"""
Serve as a real cluster's manager: register with its monitors so that real
Ceph clients find us in the mgrmap and connect to us with their cephx
authorizers.

A service daemon (OSD, MDS, MGR) cannot check authorizers with a key of its
own: clients present tickets the monitors sealed with the *rotating*
secrets of its service type.  L{MgrRegistration} keeps a monitor session as
the manager's entity (C{mgr.NAME}), fetches those secrets
(CEPHX_GET_ROTATING_KEY) into the server's L{CephxKeyServer} and refreshes
them, and sends an L{MMgrBeacon} every couple of seconds with the address
our server listens on.  The first beacon makes us the active manager when
there is none; once the mgrmap names us, beacons say C{available} and
clients (the ceph CLI, librados' C{mgr_command}) connect.

The entity needs C{mon 'allow profile mgr'}::

    ceph auth get-or-create mgr.x mon 'allow profile mgr' -o mgr.x.keyring
    twistd -n msgr2 --entity mgr.x --mon v2:127.0.0.1:3300 \\
        --keyring mgr.x.keyring --listen tcp:6800:interface=127.0.0.1 --service inspect
"""

import socket
from typing import Dict, List, Optional

from twisted.application.service import Service
from twisted.internet import defer, task
from twisted.logger import Logger
from zope.interface import implementer

from msgr2tx.auth import AuthReject
from msgr2tx.auth.cephx_proto import decode_authorizer

from msgr2tx.client import ReconnectingClient
from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.encoding import Decoder, EntityName, EntityType, entity_addrvec_t
from msgr2tx.core.features import CEPH_FEATURES_ALL
from msgr2tx.ceph.mgrmap import MgrMap
from msgr2tx.messages import MMgrBeacon, MMgrClose, MMgrConfigure, MMgrMap, MMgrOpen, MMgrReport
from msgr2tx.errors import Msgr2Error
from msgr2tx.interfaces import IMsgr2Receiver, IServerAuthHandler
from msgr2tx.clients.monclient import MonClient

#: Ceph's mgr_tick_period: a beacon every 2 s (monitors drop a manager after 30 s without one)
BEACON_INTERVAL = 2.0
#: Ceph's mgr_stats_period: what a manager asks its daemons for, seconds between MMgrReports
STATS_PERIOD = 5
#: Ceph's mgr_stats_threshold: the lowest perf counter priority reported (PRIO_USEFUL)
STATS_THRESHOLD = 5
#: how often the rotating secrets are fetched again; monitors rotate them
#: every auth_service_ticket_ttl (1 h) and keep the previous and next ones
ROTATING_REFRESH = 600.0


class RegistrationError(Msgr2Error):
    """The monitors would not have us as their manager."""


class MgrRegistration(Service):
    """
    Keep our server registered as the cluster's manager.

    @param mon_address: a monitor's address (C{v2:IP:PORT}).
    @param auth_handlers: client auth handlers for the monitor, in order of
        preference, as our own entity (a cephx handler holding
        C{mgr.NAME}'s key, and/or none).
    @param server_addrs: where our server listens, exactly as it names
        itself in SERVER_IDENT (type, nonce, address): clients check it.
    @param key_server: the L{CephxKeyServer} of our server's cephx handler;
        the rotating MGR secrets go there.  None with auth none.
    @param config: the monitor connection's configuration; its C{name}
        must be a C{mgr.*} entity.
    """

    log = Logger()

    def __init__(self, reactor, mon_address: str, auth_handlers, server_addrs: entity_addrvec_t,
                 key_server=None, config: Optional[ConnectionConfig] = None,
                 beacon_interval: float = BEACON_INTERVAL, rotating_refresh: float = ROTATING_REFRESH,
                 metadata: Optional[Dict[str, str]] = None, timeout: float = 30.0) -> None:
        config = config or ConnectionConfig(entity_type=EntityType.MGR, name=EntityName(EntityType.MGR, "x"))
        if config.name is None or config.name.type != EntityType.MGR:
            raise RegistrationError("a manager registers as a mgr.* entity, not %s" % (config.name,))
        self.reactor = reactor
        self.entity: EntityName = config.name
        self.server_addrs = server_addrs
        self.key_server = key_server
        self.beacon_interval = beacon_interval
        self.rotating_refresh = rotating_refresh
        from msgr2tx import __version__
        self.metadata = {"hostname": socket.gethostname(), "ceph_version": "msgr2tx %s" % __version__}
        self.metadata.update(metadata or {})
        if not isinstance(auth_handlers, (list, tuple)):
            auth_handlers = [auth_handlers]
        cephx = [h for h in auth_handlers if hasattr(h, "build_rotating_request")]
        if key_server is not None and not cephx:
            raise RegistrationError("rotating secrets come over a cephx monitor session")
        self.monclient = MonClient(auth_handler=cephx[0] if cephx else None, resend_on_reconnect=True)
        self.monclient.subscribe("mgrmap", 0)
        self.monclient.addMessageHandler(MMgrMap, self._got_mgrmap)
        self.monclient.addReadyHook(self._monitor_ready)
        self.client = ReconnectingClient(reactor, mon_address, list(auth_handlers), config,
                                         receiver=self.monclient, timeout=timeout)
        #: our gid: the global_id of our monitor session
        self.gid = 0
        #: the newest mgrmap the monitors sent
        self.mgrmap: Optional[MgrMap] = None
        #: rotating secrets installed so far (each fetch counts)
        self.rotating_fetches = 0
        self.beacons_sent = 0
        self._beacon_loop: Optional[task.LoopingCall] = None
        self._rotating_loop: Optional[task.LoopingCall] = None
        self._available_waiters: List[defer.Deferred] = []
        self._secrets_waiters: List[defer.Deferred] = []

    def __repr__(self) -> str:
        return "<MgrRegistration %s gid=%d addrs=%s %r>" % (self.entity, self.gid, self.server_addrs, self.mgrmap)

    # ---- IService ------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self.client.startService()
        self._beacon_loop = task.LoopingCall(self._send_beacon)
        self._beacon_loop.clock = self.reactor
        self._beacon_loop.start(self.beacon_interval, now=False).addErrback(
            lambda f: self.log.failure("mgr beacon loop failed", f))
        if self.key_server is not None:
            self._rotating_loop = task.LoopingCall(self._fetch_rotating)
            self._rotating_loop.clock = self.reactor
            self._rotating_loop.start(self.rotating_refresh, now=False).addErrback(
                lambda f: self.log.failure("rotating secret refresh failed", f))

    def stopService(self) -> defer.Deferred:
        super().stopService()
        for loop in (self._beacon_loop, self._rotating_loop):
            if loop is not None and loop.running:
                loop.stop()
        error = RegistrationError("registration stopped")
        for d in self._available_waiters + self._secrets_waiters:
            d.errback(error)
        self._available_waiters, self._secrets_waiters = [], []
        return self.client.stopService()

    # ---- state ---------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        """The mgrmap names us (our gid) as the active manager."""
        return bool(self.gid) and self.mgrmap is not None and self.mgrmap.active_gid == self.gid

    @property
    def available(self) -> bool:
        """Active, with our addresses published and marked available: clients will come."""
        m = self.mgrmap
        return self.active and m is not None and m.available and m.active_addrs == self.server_addrs

    def whenAvailable(self) -> defer.Deferred:
        """Fires with the mgrmap that first shows us active, available and at our address."""
        if self.available:
            return defer.succeed(self.mgrmap)
        d = defer.Deferred()
        self._available_waiters.append(d)
        return d

    def whenSecrets(self) -> defer.Deferred:
        """Fires once rotating MGR secrets are installed (at once without a key server)."""
        if self.key_server is None or self.rotating_fetches:
            return defer.succeed(None)
        d = defer.Deferred()
        self._secrets_waiters.append(d)
        return d

    # ---- the monitor session ----------------------------------------------------------

    def _monitor_ready(self, protocol, info) -> None:
        self.gid = info.global_id
        self.log.info("mgr: {name} registered with monitor {mon} as gid {gid}",
                      name=str(self.entity), mon=str(info.peer_name), gid=self.gid)
        if self.key_server is not None:
            self._fetch_rotating()
        self.monclient.whenMonmap().addCallback(lambda _: self._send_beacon()).addErrback(
            lambda f: self.log.debug("no monmap for the first beacon: {e}", e=f.getErrorMessage()))

    def serverHandler(self, inner, min_interval: float = 5.0) -> "FetchingServiceHandler":
        """
        Wrap our server's cephx handler so that an authorizer naming a
        secret we do not hold yet makes us fetch the rotating secrets once
        and look again (see L{FetchingServiceHandler}).
        """
        return FetchingServiceHandler(inner, self, min_interval)

    def fetch_rotating(self) -> defer.Deferred:
        """Fetch the rotating MGR secrets now; fires (with None) once installed or failed."""
        return self._fetch_rotating()

    def _fetch_rotating(self) -> defer.Deferred:
        if self.monclient.protocol is None:
            return defer.succeed(None)

        def got(secrets):
            self.key_server.install_rotating(EntityType.MGR, secrets)
            self.rotating_fetches += 1
            self.log.info("mgr: installed {count} rotating mgr secrets (ids {ids})",
                          count=len(secrets), ids=sorted(secrets.secrets))
            waiters, self._secrets_waiters = self._secrets_waiters, []
            for d in waiters:
                d.callback(None)

        def failed(f):
            self.log.warn("mgr: could not fetch the rotating mgr secrets: {error}", error=f.getErrorMessage())
        return self.monclient.request_rotating().addCallbacks(got, failed)

    def _got_mgrmap(self, message: MMgrMap) -> None:
        try:
            mgrmap = message.mgrmap()
        except Msgr2Error as e:
            self.log.warn("mgr: undecodable mgrmap: {error}", error=str(e))
            return
        was_active = self.active
        self.mgrmap = mgrmap
        self.log.debug("mgr: {map!r}", map=mgrmap)
        if self.active and not mgrmap.available:
            self._send_beacon()  # say we are available now, not at the next tick
        elif was_active and not self.active:
            self.log.warn("mgr: the monitors made gid {other} ({name}) active instead of us",
                          other=mgrmap.active_gid, name=mgrmap.active_name)
        if self.available:
            waiters, self._available_waiters = self._available_waiters, []
            for d in waiters:
                d.callback(mgrmap)

    def beacon(self) -> Optional[MMgrBeacon]:
        """The beacon we would send now (None before the monmap or our gid is known)."""
        monmap = self.monclient.monmap
        if monmap is None or not self.gid:
            return None
        return MMgrBeacon(gid=self.gid, server_addrs=self.server_addrs, available=self.active,
                          name=self.entity.id, fsid=monmap.fsid, metadata=self.metadata,
                          mgr_features=CEPH_FEATURES_ALL)

    def _send_beacon(self) -> None:
        protocol = self.monclient.protocol
        if protocol is None:
            return
        if self.key_server is not None and not self.rotating_fetches:
            return  # no clients until we can check their tickets
        message = self.beacon()
        if message is None:
            return
        protocol.sendMessage(message)
        self.beacons_sent += 1


class DaemonSession:
    """One daemon's open MgrClient session: its C{daemon} and C{service}
    names from MMgrOpen, the connection it came on, reports received."""

    __slots__ = ("daemon", "service", "protocol", "reports")

    def __init__(self, daemon: str, service: str, protocol) -> None:
        self.daemon = daemon
        self.service = service
        self.protocol = protocol
        self.reports = 0

    def __repr__(self) -> str:
        return "<DaemonSession %s.%s reports=%d>" % (self.service or "?", self.daemon, self.reports)


@implementer(IMsgr2Receiver)
class DaemonSessions:
    """
    The manager's side of the daemons' MgrClient sessions, in front of the
    server's own receiver.

    A daemon that finds us in the mgrmap (the monitors first of all)
    connects and sends L{MMgrOpen}; a manager answers with
    L{MMgrConfigure} (C{stats_period}, C{stats_threshold}; Ceph's
    DaemonServer::handle_open and _send_configure in src/mgr/DaemonServer.cc),
    after which the daemon sends an L{MMgrReport} every C{stats_period}
    seconds.  We answer every MMgrOpen so, remember the session (peer
    entity -> daemon name, reports counted) until the connection closes or
    the daemon sends L{MMgrClose}, and do nothing with the reports.

    Every message, these included, then goes on to C{inner} (the service,
    e.g. inspect), which also sees every connection event.

    @param inner: the server's L{IMsgr2Receiver}.
    @param stats_period: seconds between reports (0: none), as Ceph's
        C{mgr_stats_period}.
    @param stats_threshold: as Ceph's C{mgr_stats_threshold}.
    """

    log = Logger()

    def __init__(self, inner, stats_period: int = STATS_PERIOD, stats_threshold: int = STATS_THRESHOLD) -> None:
        self.inner = inner
        self.stats_period = int(stats_period)
        self.stats_threshold = int(stats_threshold)
        #: open sessions: the peer entity (e.g. C{"mon.0"}) -> L{DaemonSession}
        self.sessions: Dict[str, DaemonSession] = {}
        #: MMgrOpens answered, MMgrReports received (over all sessions)
        self.opens = 0
        self.reports = 0

    def __repr__(self) -> str:
        return "<DaemonSessions %d open, %d opens, %d reports, inner=%r>" % (
            len(self.sessions), self.opens, self.reports, self.inner)

    def connectionReady(self, protocol, info) -> None:
        self.inner.connectionReady(protocol, info)

    def messageReceived(self, protocol, message) -> None:
        if isinstance(message, MMgrOpen):
            self._open(protocol, message)
        elif isinstance(message, MMgrReport):
            session = self.sessions.get(str(message.src))
            self.reports += 1
            if session is not None:
                session.reports += 1
            else:
                self.log.debug("mgr: a report from {entity}, which never sent MMgrOpen", entity=str(message.src))
        elif isinstance(message, MMgrClose):
            self.sessions.pop(str(message.src), None)
            self.log.info("mgr: {entity} closed its session", entity=str(message.src))
        self.inner.messageReceived(protocol, message)

    def _open(self, protocol, message: MMgrOpen) -> None:
        entity = str(message.src)
        self.sessions[entity] = DaemonSession(message.daemon_name, message.service_name, protocol)
        self.opens += 1
        protocol.sendMessage(MMgrConfigure(stats_period=self.stats_period, stats_threshold=self.stats_threshold))
        self.log.info("mgr: {entity} opened a session as {service}.{daemon}; configured: "
                      "stats_period={period} stats_threshold={threshold}", entity=entity,
                      service=message.service_name or (entity.split(".")[0] if message.src else "?"),
                      daemon=message.daemon_name, period=self.stats_period, threshold=self.stats_threshold)

    def connectionLost(self, protocol, reason) -> None:
        for entity, session in list(self.sessions.items()):
            if session.protocol is protocol:
                del self.sessions[entity]
        self.inner.connectionLost(protocol, reason)


@implementer(IServerAuthHandler)
class FetchingServiceHandler:
    """
    A cephx server handler for a service in a real cluster.  When an
    authorizer is refused because its ticket names a secret_id we do not
    hold (the monitors rotated since our last fetch), fetch the rotating
    secrets from the monitor and answer the same request again.  At most one
    such fetch per C{min_interval} seconds, so that clients with made-up
    secret ids cannot make us flood the monitor.  Everything else goes to
    the wrapped handler as it is.
    """

    log = Logger()

    def __init__(self, inner, registration: MgrRegistration, min_interval: float = 5.0) -> None:
        self.inner = inner
        self.method = inner.method
        self.allowed_modes = inner.allowed_modes
        self.key_server = registration.key_server
        self.registration = registration
        self.min_interval = min_interval
        self._last_fetch: Optional[float] = None
        #: fetches this handler started
        self.fetches = 0

    def __repr__(self) -> str:
        return "<FetchingServiceHandler %r>" % (self.inner,)

    def _unknown_secret(self, payload: bytes) -> Optional[int]:
        if self.key_server is None:
            return None
        try:
            _, service_id, blob = decode_authorizer(Decoder(payload))
        except Msgr2Error:
            return None
        if service_id != EntityType.MGR or not blob.blob:
            return None
        if self.key_server.get_service_secret(service_id, blob.secret_id) is not None:
            return None
        return blob.secret_id

    def handle_request(self, request):
        result = self.inner.handle_request(request)
        if request.more or not isinstance(result, AuthReject):
            return result
        secret_id = self._unknown_secret(request.payload)
        if secret_id is None:
            return result
        now = self.registration.reactor.seconds()
        if self._last_fetch is not None and now - self._last_fetch < self.min_interval:
            return result
        self._last_fetch = now
        self.fetches += 1
        self.log.info("mgr: an authorizer names mgr secret {secret_id}, which we do not hold: "
                      "fetching the rotating secrets", secret_id=secret_id)
        return self.registration.fetch_rotating().addCallback(lambda _: self.inner.handle_request(request))


__all__ = ["MgrRegistration", "FetchingServiceHandler", "DaemonSessions", "DaemonSession", "RegistrationError",
           "BEACON_INTERVAL", "ROTATING_REFRESH", "STATS_PERIOD", "STATS_THRESHOLD"]
