"""
Round trips to READY and to the first delivered message, over a link with
an injected delay.

A proxy in this process holds every chunk for ``--one-way`` milliseconds in
each direction, so the link's round-trip time is twice that and everything
else (loopback, the CPU) is small beside it.  For each scenario the
benchmark measures, from the moment the client starts dialling (or, for a
reconnect, from the moment the old connection is cut):

* ``ready``: until the handshake is READY on the client;
* ``first``: until the first message sent has been answered, or for the
  reconnect scenario, until the message sent into the dead connection has
  been delivered again and answered.

and prints each in milliseconds and in round trips (milliseconds / RTT),
with the fastest run's READY too (on a busy machine the median drifts up).
The scenarios: a fresh connection to an msgr2tx echo server with auth none
in crc mode and with cephx in secure mode, a lossless session resumed with
SESSION_RECONNECT after a cut (auth none and cephx secure), the same
session resumed with msgr2tx's fast reconnect (cephx secure: one
AUTH_REQUEST proving the session key, the resent message riding in it; see
docs/protocol.md "Fast reconnect"), and fresh
connections to a real Ceph monitor and OSD with cephx in secure mode (when
Ceph is installed; ``--release`` picks 16.2, or Reef or Tentacle from their
chroots).  Each is measured twice: ``plain`` waits for the peer's banner
and HELLO before it sends its own HELLO and AUTH_REQUEST
(``ConnectionConfig(speculate=False)``); ``speculative`` knows the peer from
an earlier connection to it (a shared PeerBannerCache; for the reconnect,
the ReconnectingClient's own) and sends banner, HELLO and AUTH_REQUEST in
one write.  Medians of ``--repeat`` runs.

    .venv/bin/python bench/latency.py --one-way 20 --repeat 5
"""

import argparse
import json
import statistics
import sys
import time

from common import HOST, log  # noqa: F401  (sys.path set up by common)

from twisted.internet import defer, protocol, reactor, task

from msgr2tx.auth.cephx import CephxClientHandler, CephxKeyServer, CephxServerHandler
from msgr2tx.auth.cephx_proto import CryptoKey
from msgr2tx.auth.keyring import Keyring
from msgr2tx.auth.none import NoneClientHandler, NoneServerHandler
from msgr2tx.client import ReconnectingClient, connect
from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.constants import ConnectionMode
from msgr2tx.core.encoding import EntityName, EntityType
from msgr2tx.messages import MPing
from msgr2tx.core.speculation import PeerBannerCache
from msgr2tx.factory import Msgr2ServerFactory
from msgr2tx.services import EchoReceiver

ADMIN = EntityName.parse("client.admin")


class _Half(protocol.Protocol):
    """One side of a delayed link: what it receives reaches the other side ``delay`` seconds later."""

    def __init__(self, delay):
        self.delay = delay
        self.other = None
        self.pending = []

    def dataReceived(self, data):
        reactor.callLater(self.delay, self._deliver, data)

    def _deliver(self, data):
        if self.other is not None and self.other.transport is not None:
            self.other.transport.write(data)
        else:
            self.pending.append(data)

    def connectionLost(self, reason):
        if self.other is not None and self.other.transport is not None:
            reactor.callLater(self.delay, self.other.transport.loseConnection)


class DelayProxy:
    """A TCP proxy that delays every byte by ``one_way`` seconds in each direction."""

    def __init__(self, target_port, one_way):
        self.target_port = target_port
        self.one_way = one_way
        self.links = []

    def listen(self):
        proxy = self

        class Front(_Half):
            def connectionMade(self):
                self.transport.setTcpNoDelay(True)
                back = _Half(proxy.one_way)
                back.other, self.other = self, back
                proxy.links.append(self)
                protocol.ClientCreator(reactor, lambda: back).connectTCP(HOST, proxy.target_port) \
                    .addCallback(self._up).addErrback(lambda f: self.transport.loseConnection())

            def _up(self, back):
                back.transport.setTcpNoDelay(True)
                for data in self.other.pending:
                    back.transport.write(data)
                self.other.pending = []
                for data in self.pending:
                    self._deliver(data)
                self.pending = []

        factory = protocol.Factory.forProtocol(lambda: Front(self.one_way))
        self.port = reactor.listenTCP(0, factory, interface=HOST)
        return self.port.getHost().port

    def cut_all(self):
        for front in self.links:
            front.transport.abortConnection()
            if front.other.transport is not None:
                front.other.transport.abortConnection()
        self.links = []


class _Answers:
    """A receiver that fires a Deferred for each message it gets."""

    def __init__(self):
        self.waiting = []

    def connectionReady(self, protocol, info):
        pass

    def messageReceived(self, protocol, message):
        waiting, self.waiting = self.waiting, []
        for d in waiting:
            d.callback(message)

    def connectionLost(self, protocol, reason):
        pass

    def next(self):
        d = defer.Deferred()
        self.waiting.append(d)
        return d


def _server(auth, lossless):
    key = CryptoKey.generate()
    ring = Keyring()
    ring.add(ADMIN, key, {"mon": "allow *"})
    handlers = [CephxServerHandler(CephxKeyServer(ring))] if auth == "cephx" else [NoneServerHandler()]
    # a monitor-like authority (cephx clients log in with their key), stateful when lossless
    config = ConnectionConfig(entity_type=EntityType.MON, entity_num=0, lossy=not lossless,
                              modes=(ConnectionMode.SECURE, ConnectionMode.CRC))
    port = reactor.listenTCP(0, Msgr2ServerFactory(handlers, EchoReceiver(), config), interface=HOST)
    client_auth = CephxClientHandler(ADMIN, key) if auth == "cephx" else NoneClientHandler(ADMIN)
    return port, client_auth


def _client_config(auth, lossless=False, speculate=True, fast=False):
    mode = ConnectionMode.SECURE if auth == "cephx" else ConnectionMode.CRC
    return ConnectionConfig(modes=(mode,), lossy=not lossless, speculate=speculate, fast_reconnect=fast)


@defer.inlineCallbacks
def fresh(auth, one_way, speculate, target=None, client_auth=None, keepalive=False):
    """
    (ready, first) seconds for a new connection through the delay.  With
    C{speculate}, an undelayed connection to the same target first teaches
    a PeerBannerCache the peer's banner and entity type.  C{client_auth}: a
    callable making a fresh handler.  C{keepalive}: "first" is a
    KEEPALIVE2 round trip (an OSD does not answer MPing).
    """
    server = None
    if target is None:
        server, handler = _server(auth, lossless=False)
        target = "v2:%s:%d" % (HOST, server.getHost().port)

        def client_auth():
            return handler
    config = _client_config(auth, speculate=speculate)
    cache = PeerBannerCache()
    if speculate:
        p = yield connect(reactor, target, [client_auth()], config, receiver=_Answers(), timeout=30,
                          peer_banners=cache)
        p.transport.loseConnection()
    port = int(target.rsplit(":", 1)[1].split("/")[0])
    proxy = DelayProxy(port, one_way)
    via = "tcp:host=%s:port=%d" % (HOST, proxy.listen())
    answers = _Answers()
    start = time.perf_counter()
    p = yield connect(reactor, target, [client_auth()], config, receiver=answers, timeout=30, via=via,
                      peer_banners=cache)
    ready = time.perf_counter() - start
    if p.conn.speculated != speculate:
        raise RuntimeError("speculated=%s, expected %s" % (p.conn.speculated, speculate))
    if keepalive:
        yield p.keepalive()
    else:
        got = answers.next()
        p.sendMessage(MPing())
        yield got
    first = time.perf_counter() - start
    p.transport.loseConnection()
    yield proxy.port.stopListening()
    if server is not None:
        yield server.stopListening()
    return ready, first


@defer.inlineCallbacks
def reconnect(auth, one_way, speculate, fast=False):
    """
    (ready, first) seconds from a cut to READY again and to the resent
    message's answer.  C{fast}: the client resumes with msgr2tx's fast
    reconnect (the server offers it), else with cephx and SESSION_RECONNECT.
    """
    server, client_auth = _server(auth, lossless=True)
    target_port = server.getHost().port
    proxy = DelayProxy(target_port, one_way)
    via = "tcp:host=%s:port=%d" % (HOST, proxy.listen())
    answers = _Answers()
    client = ReconnectingClient(reactor, "v2:%s:%d" % (HOST, target_port), [client_auth],
                                _client_config(auth, lossless=True, speculate=speculate, fast=fast), receiver=answers,
                                timeout=30,
                                initial_backoff=0.0, max_backoff=0.0, via=via)
    client.startService()
    yield client.whenReady() if hasattr(client, "whenReady") else task.deferLater(reactor, 10 * one_way, lambda: None)
    got = answers.next()
    client.sendMessage(MPing())
    yield got
    ready_seen = defer.Deferred()
    original = answers.connectionReady

    def on_ready(protocol, info):
        if not ready_seen.called:
            ready_seen.callback(time.perf_counter())
        return original(protocol, info)
    answers.connectionReady = on_ready
    start = time.perf_counter()
    proxy.cut_all()
    got = answers.next()
    client.sendMessage(MPing())
    ready_at = yield ready_seen
    yield got
    first = time.perf_counter() - start
    if client.protocol.conn.speculated != speculate:
        raise RuntimeError("speculated=%s, expected %s" % (client.protocol.conn.speculated, speculate))
    if client.protocol.conn.fast_reconnected != fast:
        raise RuntimeError("fast_reconnected=%s, expected %s" % (client.protocol.conn.fast_reconnected, fast))
    yield client.stopService()
    yield proxy.port.stopListening()
    yield server.stopListening()
    return ready_at - start, first


@defer.inlineCallbacks
def main(args):
    one_way = args.one_way / 1000.0
    rtt = 2 * one_way
    scenarios = []
    for flight in ("plain", "speculative") if not args.ceph_only else ():
        spec = flight == "speculative"
        scenarios += [
            ("fresh none/crc -> msgr2tx, %s" % flight, lambda spec=spec: fresh("none", one_way, spec)),
            ("fresh cephx/secure -> msgr2tx, %s" % flight, lambda spec=spec: fresh("cephx", one_way, spec)),
            ("lossless reconnect none/crc -> msgr2tx, %s" % flight,
             lambda spec=spec: reconnect("none", one_way, spec)),
            ("lossless reconnect cephx/secure -> msgr2tx, %s" % flight,
             lambda spec=spec: reconnect("cephx", one_way, spec)),
            ("fast reconnect cephx/secure -> msgr2tx, %s" % flight,
             lambda spec=spec: reconnect("cephx", one_way, spec, fast=True)),
        ]
    mon = None
    if not args.no_ceph:
        try:
            from tests import cephlab
            if not cephlab.missing_tools():
                from msgr2tx.auth.cephx import CephxAuthProvider
                from msgr2tx.clients.monclient import MonClient

                mon = cephlab.CephMonitor(auth="cephx", release=args.release).start()
                version = cephlab.release_info(args.release).version
                osd = mon.add_osd() if not args.no_osd else None

                def mon_handler():
                    return CephxAuthProvider().clientHandler("keyring=%s" % mon.keyring)
                tickets = mon_handler()
                if osd is not None:
                    # service tickets for the OSD, from a monitor session
                    p = yield connect(reactor, mon.addr, [tickets], ConnectionConfig(modes=(ConnectionMode.SECURE,)),
                                      receiver=MonClient(), timeout=30)
                    p.transport.loseConnection()
                for flight in ("plain", "speculative"):
                    spec = flight == "speculative"
                    scenarios.append(("fresh cephx/secure -> ceph-mon %s, %s" % (version, flight),
                                      lambda spec=spec: fresh("cephx", one_way, spec, target=mon.addr,
                                                              client_auth=mon_handler)))
                    if osd is not None:
                        scenarios.append(("fresh cephx/secure -> ceph-osd %s, %s" % (version, flight),
                                          lambda spec=spec: fresh("cephx", one_way, spec, target=osd.addr,
                                                                  client_auth=tickets.spawn, keepalive=True)))
        except Exception as e:  # a benchmark, not a test: say why and go on
            log("no Ceph: %s", e)
    results = []
    try:
        for name, run in scenarios:
            readies, firsts = [], []
            for _ in range(args.repeat):
                ready, first = yield run()
                readies.append(ready)
                firsts.append(first)
            r, f = statistics.median(readies), statistics.median(firsts)
            results.append({"scenario": name, "rtt_ms": rtt * 1000, "ready_ms": round(r * 1000, 1),
                            "ready_rtt": round(r / rtt, 2), "first_ms": round(f * 1000, 1),
                            "first_rtt": round(f / rtt, 2), "ready_min_rtt": round(min(readies) / rtt, 2),
                            "repeat": args.repeat})
            print("RESULT " + json.dumps(results[-1]))
            sys.stdout.flush()
    finally:
        if mon is not None:
            mon.stop()
    width = max(len(r["scenario"]) for r in results)
    print("%-*s  %9s %6s %6s  %9s %6s" % (width, "scenario (RTT %.0f ms)" % (rtt * 1000), "READY ms", "RTTs",
                                           "(min)", "first ms", "RTTs"))
    for r in results:
        print("%-*s  %9.1f %6.2f %6.2f  %9.1f %6.2f" % (width, r["scenario"], r["ready_ms"], r["ready_rtt"],
                                                        r["ready_min_rtt"], r["first_ms"], r["first_rtt"]))
    print("scenarios: " + "; ".join("%s READY %.2f RTT, first %.2f RTT" % (r["scenario"], r["ready_rtt"],
                                                                             r["first_rtt"]) for r in results))
    # the targets, last: a resumed msgr2tx session answers its first
    # message within 2.5 round trips; a fresh cephx connection to a Ceph
    # monitor is READY one round trip earlier with the speculative flight
    by_name = {r["scenario"]: r for r in results}
    verdicts = []
    fast = by_name.get("fast reconnect cephx/secure -> msgr2tx, speculative")
    if fast is not None:
        verdicts.append("fast reconnect first message %.2f RTT (target <= 2.5: %s)"
                        % (fast["first_rtt"], "met" if fast["first_rtt"] <= 2.5 else "missed"))
    for r in results:
        if r["scenario"].startswith("fresh cephx/secure -> ceph-mon") and r["scenario"].endswith(", plain"):
            spec = by_name.get(r["scenario"][:-len("plain")] + "speculative")
            if spec is not None:
                saved = r["ready_rtt"] - spec["ready_rtt"]
                verdicts.append("%s READY %.2f -> %.2f RTT (target one less: %s)"
                                % (r["scenario"][len("fresh cephx/secure -> "):-len(", plain")], r["ready_rtt"],
                                   spec["ready_rtt"], "met" if saved >= 0.9 else "missed"))
    print("latency: " + ("; ".join(verdicts) if verdicts else "no target scenario ran"))


def run():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--one-way", type=float, default=20.0, help="delay each way, in milliseconds (default 20)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per scenario; medians are printed (default 5)")
    parser.add_argument("--no-ceph", action="store_true", help="skip the real Ceph monitor and OSD")
    parser.add_argument("--no-osd", action="store_true", help="skip the real Ceph OSD")
    parser.add_argument("--ceph-only", action="store_true", help="only the Ceph scenarios")
    parser.add_argument("--release", default="pacific", choices=("pacific", "reef", "tentacle"),
                        help="the Ceph release to measure (default pacific, the host's 16.2)")
    args = parser.parse_args()
    failures = []

    def done(result):
        if isinstance(result, Exception) or hasattr(result, "getTraceback"):
            failures.append(result)
            log("failed: %s", result.getTraceback() if hasattr(result, "getTraceback") else result)
        reactor.stop()

    reactor.callWhenRunning(lambda: main(args).addBoth(done))
    reactor.run()
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    run()
