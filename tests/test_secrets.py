"""
No secret in any log line, repr, str or exception text.

One run with every Twisted log event captured (all levels: twisted.logger
delivers debug events to every observer), formatted with formatEvent and as
the repr of the whole event: cephx secure handshakes (our client -> our
server in-process, rev0 and rev1, mon and authorizer roles; our client ->
ceph-mon and ceph-osd), messages both ways, ticket renewal (in-process and
against ceph-mon, on demand and by MonClient's loop), refused handshakes
and a corrupted secure stream.  The secrets are read from the objects of
the run (keyrings, handler tickets, the session keys and connection secrets
the auth handlers hand to the connections, the key server's rotating
secrets, the ciphers), then searched for as hex, base64 and bytes-repr in
everything captured, and in the ``msgr2tx -v`` CLI's output.
"""

import base64
import os
import subprocess
import time

from twisted.internet import defer, reactor, task
from twisted.logger import Logger, formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase

from msgr2tx.auth import AuthDone
from msgr2tx.auth.cephx import CephxAuthProvider, CephxClientHandler, CephxKeyServer, CephxServerHandler
from msgr2tx.auth.cephx_proto import CryptoKey
from msgr2tx.auth.keyring import Keyring
from msgr2tx.client import connect
from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.constants import AuthMethod, ConnectionMode
from msgr2tx.core.encoding import EntityName, EntityType
from msgr2tx.core.messages import GenericMessage
from msgr2tx.messages import MAuth, MAuthReply, MPing
from msgr2tx.factory import Msgr2ServerFactory
from msgr2tx.clients.monclient import MonClient
from tests import cephlab
from tests.test_interop_pacific import tool

ADMIN = EntityName.parse("client.admin")
SECURE = ConnectionConfig(modes=(ConnectionMode.SECURE,))
SECURE_REV0 = ConnectionConfig(modes=(ConnectionMode.SECURE,), revision1=False)


class SpyClientHandler(CephxClientHandler):
    """A cephx client that also records the (session key, connection secret) it returns."""

    sink = None

    def handle_done(self, global_id, con_mode, payload):
        keys = super().handle_done(global_id, con_mode, payload)
        self.sink.extend(keys)
        return keys

    def spawn(self):
        other = SpyClientHandler(self.name, self._key, want_keys=self.want_keys, tickets=self.tickets)
        other.sink = self.sink
        return other


class SpyServerHandler:
    """Wraps a server auth handler and records the keys of its AuthDone."""

    def __init__(self, inner, sink):
        self.inner = inner
        self.method = inner.method
        self.allowed_modes = inner.allowed_modes
        self.sink = sink

    def handle_request(self, request):
        result = self.inner.handle_request(request)
        if isinstance(result, AuthDone):
            self.sink.extend((result.session_key, result.connection_secret, result.payload))
        return result


class RenewingEcho:
    """Server receiver: answers MAuth ticket renewals like a monitor, echoes the rest."""

    log = Logger()

    def __init__(self, authority):
        self.authority = authority
        self.received = []

    def connectionReady(self, p, info):
        self.log.debug("ready {info!r} on {p!r}", info=info, p=p)

    def messageReceived(self, p, message):
        self.received.append(message)
        self.log.debug("got {msg!r} from {conn!r}", msg=message, conn=p.conn)
        if isinstance(message, MAuth):
            result_bl = self.authority.handle_principal_session_key(message.auth_payload)
            p.sendMessage(MAuthReply(AuthMethod.CEPHX, 0, p.info.global_id, result_bl))
        else:
            message.seq = 0
            p.sendMessage(message)

    def connectionLost(self, p, reason):
        self.log.debug("lost {p!r}: {reason}", p=p, reason=reason)


class SecretsTests(TestCase):

    timeout = 120

    def setUp(self):
        self.lines = []
        self.reprs = []
        self.errors = []   # exception texts
        self.secrets = {}  # label -> bytes
        self.texts = {}    # label -> str (keyring base64 forms)
        # first in line: observers wrapped for the legacy log system (trial
        # has one) rewrite the event in place before later observers see it
        observers = getattr(globalLogPublisher, "_observers", None)
        if isinstance(observers, list):
            observers.insert(0, self._observe)
        else:
            globalLogPublisher.addObserver(self._observe)
        self.addCleanup(globalLogPublisher.removeObserver, self._observe)

    def _observe(self, event):
        self.lines.append(formatEvent(event))
        self.lines.append(repr(event))
        failure = event.get("log_failure")
        if failure is not None:
            self.lines.append(failure.getTraceback())

    # -- collecting ------------------------------------------------------------

    def _secret(self, label, value):
        if value:
            self.secrets["%s#%d" % (label, len(self.secrets))] = bytes(value)

    def _tickets(self, label, store):
        for sid, t in store.tickets.items():
            self._secret("%s %s session key" % (label, EntityType.name(sid)), t.session_key.secret_bytes)
            self._secret("%s %s ticket blob" % (label, EntityType.name(sid)), t.blob.blob)

    def _key(self, label, key):
        self._secret(label, key.secret_bytes)
        self.texts[label + " base64"] = key.to_base64()

    def _look(self, *objects):
        """repr and str of objects and of the msgr2tx objects hanging off them."""
        seen = set()

        def visit(obj, depth):
            if id(obj) in seen or isinstance(obj, (bytes, bytearray, memoryview, str, int, float)):
                return
            seen.add(id(obj))
            container = isinstance(obj, (dict, list, tuple, set))
            if not container:
                # containers are only walked: a list of raw key bytes is no object's repr
                self.reprs.append(repr(obj))
                self.reprs.append(str(obj))
            if depth == 0:
                return
            if isinstance(obj, dict):
                children = list(obj.values())
            elif container:
                children = list(obj)
            else:
                children = []
                for name in list(getattr(obj, "__dict__", {})) + list(getattr(type(obj), "__slots__", ())):
                    if name == "sink":  # the test's own record of the secrets
                        continue
                    try:
                        children.append(getattr(obj, name))
                    except AttributeError:
                        pass
            for child in children:
                if type(child).__module__.startswith("msgr2tx") or isinstance(child, (dict, list, tuple)):
                    visit(child, depth - 1)

        for obj in objects:
            visit(obj, 3)

    def _failed(self, failure):
        self.errors.append(str(failure.value))
        self.errors.append(repr(failure.value))
        self.errors.append(failure.getTraceback())

    # -- the run ---------------------------------------------------------------------

    @defer.inlineCallbacks
    def _our_server(self, rev1):
        key = CryptoKey.generate()
        ring = Keyring()
        ring.add(ADMIN, key, {"mon": "allow *", "osd": "allow *"})
        self._key("in-process client key", key)
        ks = CephxKeyServer(ring)
        sink = []
        server_handler = CephxServerHandler(ks)
        echo = RenewingEcho(server_handler.authority)
        config = ConnectionConfig(entity_type=EntityType.MON, entity_num=0, lossy=True, revision1=rev1,
                                  modes=(ConnectionMode.SECURE,))
        factory = Msgr2ServerFactory([SpyServerHandler(server_handler, sink)], echo, config)
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        address = "v2:127.0.0.1:%d" % port.getHost().port

        client = SpyClientHandler(ADMIN, key)
        client.sink = sink
        monclient = MonClient(auth_handler=client, renew_check_interval=0.05)
        cfg = SECURE if rev1 else SECURE_REV0
        p = yield connect(reactor, address, [client], cfg, receiver=monclient, timeout=10)
        self.assertEqual(p.info.mode_name, "secure")
        self._tickets("in-process before renewal", client.tickets)
        # messages both ways
        for size in (0, 49, 4096):
            p.sendMessage(GenericMessage(0x7A5A, front=os.urandom(size), data=os.urandom(size)))
        p.sendMessage(MPing())
        # renewal on demand, then by the loop
        mask = yield monclient.renew_tickets(EntityType.OSD | EntityType.MGR)
        self.assertEqual(mask, EntityType.OSD | EntityType.MGR)
        self._tickets("in-process after renewal", client.tickets)
        old = client.tickets.get(EntityType.MON)
        old.renew_after = time.time() - 1
        deadline = time.monotonic() + 5
        while client.tickets.get(EntityType.MON) is old and time.monotonic() < deadline:
            yield task.deferLater(reactor, 0.05, lambda: None)
        self.assertIsNot(client.tickets.get(EntityType.MON), old)
        self._tickets("in-process after loop renewal", client.tickets)
        self.assertEqual(len([m for m in echo.received if isinstance(m, MAuth)]), 2)

        # an authorizer for our OSD role, sharing the key server
        osd_config = ConnectionConfig(entity_type=EntityType.OSD, entity_num=1, lossy=True, revision1=rev1,
                                      modes=(ConnectionMode.SECURE,))
        osd_factory = Msgr2ServerFactory([SpyServerHandler(CephxServerHandler(ks, authority=False), sink)],
                                         RenewingEcho(None), osd_config)
        osd_port = reactor.listenTCP(0, osd_factory, interface="127.0.0.1")
        self.addCleanup(osd_port.stopListening)
        p2 = yield connect(reactor, "v2:127.0.0.1:%d" % osd_port.getHost().port, [client.spawn()], cfg, timeout=10)
        self.assertEqual(str(p2.info.peer_name), "osd.1")
        rtt = yield p2.keepalive()
        self.assertGreaterEqual(rtt, 0)

        # a wrong key is refused
        d = connect(reactor, address, [CephxClientHandler(ADMIN, CryptoKey.generate())], cfg, timeout=10)
        yield self.assertFailure(d, Exception).addCallback(lambda e: self.errors.extend((str(e), repr(e))))
        # a corrupted secure stream: the server must drop it, saying why but showing nothing
        lost = defer.Deferred()
        original = p2.connectionLost

        def p2_lost(reason):
            original(reason)
            lost.callback(None)
        p2.connectionLost = p2_lost
        osd_protocols = []
        orig_build = osd_factory.buildProtocol

        def build(addr):
            proto = orig_build(addr)
            osd_protocols.append(proto)
            return proto
        osd_factory.buildProtocol = build
        p3 = yield connect(reactor, "v2:127.0.0.1:%d" % osd_port.getHost().port, [client.spawn()], cfg, timeout=10)
        p3.transport.write(os.urandom(200))
        yield task.deferLater(reactor, 0.3, lambda: None)
        for proto in osd_protocols:
            if proto._failure is not None:
                self._failed(proto._failure)

        for proto in (p, p2, p3) + tuple(osd_protocols):
            self._secret("conn session key", proto.conn._session_key)
            if proto.conn.reader is not None and proto.conn.reader.cipher is not None:
                self._secret("rx cipher key", proto.conn.reader.cipher._key)
        for versions in ks._secrets.values():
            for secret in versions.values():
                self._secret("key server rotating secret", secret.secret_bytes)
        for value in sink:
            self._secret("handler key material", value)
        self._look(p, p2, p3, p.conn, p2.conn, p.info, client, client.tickets, monclient, factory, osd_factory,
                   server_handler, ks, ring, ring.entry(ADMIN), echo, *osd_protocols)
        for proto in (p, p3):
            proto.transport.loseConnection()
        p2.transport.loseConnection()
        yield lost
        yield task.deferLater(reactor, 0.1, lambda: None)

    @defer.inlineCallbacks
    def _fast_reconnect(self):
        """A lossless cephx secure session cut and resumed with a fast reconnect, then one refused (expired)."""
        from msgr2tx.client import ReconnectingClient

        key = CryptoKey.generate()
        ring = Keyring()
        ring.add(ADMIN, key, {"mon": "allow *"})
        self._key("fast reconnect client key", key)
        sink = []
        config = ConnectionConfig(entity_type=EntityType.MON, entity_num=0, lossy=False,
                                  modes=(ConnectionMode.SECURE,))
        echo = RenewingEcho(None)
        factory = Msgr2ServerFactory([SpyServerHandler(CephxServerHandler(CephxKeyServer(ring)), sink)], echo,
                                     config)
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        handler = SpyClientHandler(ADMIN, key)
        handler.sink = sink
        client = ReconnectingClient(reactor, "v2:127.0.0.1:%d" % port.getHost().port, [handler],
                                    ConnectionConfig(lossy=False, modes=(ConnectionMode.SECURE,)),
                                    receiver=RenewingEcho(None), timeout=10, initial_backoff=0.01,
                                    max_backoff=0.05)
        client.startService()
        self.addCleanup(client.stopService)
        protocols = []
        for attempt in range(3):
            p = yield client.whenReady()
            protocols.append(p)
            client.sendMessage(GenericMessage(0x7A5A, front=os.urandom(64)))
            yield task.deferLater(reactor, 0.05, lambda: None)
            if attempt == 1:
                self.assertTrue(p.conn.fast_reconnected)
                # the server's copy of the ticket ends now: the next resume is refused
                factory.sessions.get(client.session.client_cookie).resume_expires = 1.0
            if attempt < 2:
                p.transport.abortConnection()
                yield task.deferLater(reactor, 0.05, lambda: None)
        self.assertFalse(protocols[2].conn.fast_reconnected)
        self.assertEqual(type(protocols[2].conn.resume_refusal).__name__, "ResumeExpired")
        self.assertIn("fast reconnect refused: ResumeExpired", "\n".join(self.lines))
        self._secret("fast reconnect resume key", client.session.resume_key)
        for proto in protocols:
            self._secret("fast reconnect conn key", proto.conn._session_key)
            self._secret("fast reconnect rx cipher key", proto.conn.reader.cipher._key)
        for value in sink:
            self._secret("fast reconnect handler key material", value)
        self._look(client, client.session, factory, factory.sessions, *protocols,
                   *[proto.conn for proto in protocols])

    @defer.inlineCallbacks
    def _real_mon(self):
        mon = cephlab.shared_monitor(auth="cephx", osds=1)
        osd = mon.osds[0]
        ring = Keyring.load(mon.keyring)
        self._key("ceph client.admin key", ring.get(ADMIN))
        sink = []
        base = CephxAuthProvider().clientHandler("keyring=%s" % mon.keyring)
        handler = SpyClientHandler(base.name, base._key)
        handler.sink = sink
        monclient = MonClient(auth_handler=handler, renew_check_interval=0.05)
        p = yield connect(reactor, mon.addr, [handler], SECURE, receiver=monclient, timeout=10)
        self.addCleanup(p.transport.loseConnection)
        result, _, _ = yield monclient.command({"prefix": "version"})
        self.assertEqual(result, 0)
        self._tickets("ceph-mon before renewal", handler.tickets)
        mask = yield monclient.renew_tickets(EntityType.OSD | EntityType.MGR)
        self.assertEqual(mask, EntityType.OSD | EntityType.MGR)
        self._tickets("ceph-mon after renewal", handler.tickets)
        old = handler.tickets.get(EntityType.OSD)
        old.renew_after = time.time() - 1
        deadline = time.monotonic() + 5
        while handler.tickets.get(EntityType.OSD) is old and time.monotonic() < deadline:
            yield task.deferLater(reactor, 0.05, lambda: None)
        self.assertIsNot(handler.tickets.get(EntityType.OSD), old)
        self._tickets("ceph-mon after loop renewal", handler.tickets)
        p2 = yield connect(reactor, osd.addr, [handler.spawn()], SECURE_REV0, timeout=10)
        self.addCleanup(p2.transport.loseConnection)
        rtt = yield p2.keepalive()
        self.assertGreaterEqual(rtt, 0)
        # refused: wrong key, unknown entity
        for h in (CephxClientHandler(ADMIN, CryptoKey.generate()),
                  CephxClientHandler(EntityName.parse("client.nobody"), ring.get(ADMIN))):
            d = connect(reactor, mon.addr, [h], SECURE, timeout=10)
            yield self.assertFailure(d, Exception).addCallback(lambda e: self.errors.extend((str(e), repr(e))))
        for proto in (p, p2):
            self._secret("ceph conn session key", proto.conn._session_key)
            self._secret("ceph rx cipher key", proto.conn.reader.cipher._key)
        for value in sink:
            self._secret("ceph handler key material", value)
        self._look(p, p2, p.conn, p2.conn, handler, handler.tickets, monclient, ring)
        # the CLI at its most verbose, with the same keyring
        for argv in ([tool("msgr2tx"), "command", "-v", "--mon", mon.addr, "--auth", "cephx", "--keyring",
                      mon.keyring, "--mode", "secure", '{"prefix": "version"}'],
                     [tool("msgr2tx"), "ping", "-v", osd.addr, "--mon", mon.addr, "--auth", "cephx",
                      "--keyring", mon.keyring, "--mode", "secure", "--count", "1"]):
            proc = subprocess.run(argv, capture_output=True, timeout=40)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            self.assertIn(b"READY", proc.stderr)  # -v really logged the protocol
            self.reprs.append(proc.stdout.decode("utf-8", "replace"))
            self.reprs.append(proc.stderr.decode("utf-8", "replace"))

    def _forms(self):
        forms = {}
        for label, value in self.secrets.items():
            forms[label + " hex"] = value.hex()
            forms[label + " HEX"] = value.hex().upper()
            forms[label + " base64"] = base64.b64encode(value).decode()
            if len(value) >= 8:
                forms[label + " repr"] = repr(value)[2:-1]
            # any 12-byte piece, e.g. a nonce cut out of a connection secret
            for i in range(0, len(value) - 11, 12):
                forms["%s[%d:%d] hex" % (label, i, i + 12)] = value[i:i + 12].hex()
        for label, text in self.texts.items():
            forms[label] = text
        return forms

    @defer.inlineCallbacks
    def test_no_secret_anywhere(self):
        yield self._our_server(True)
        yield self._our_server(False)
        yield self._fast_reconnect()
        yield self._real_mon()
        # the run really happened and was logged
        joined = "\n".join(self.lines)
        self.assertIn("mode=secure rev1", joined)
        self.assertIn("mode=secure rev0", joined)
        self.assertIn("MAuth(", joined)
        self.assertIn("failed the challenge", joined)
        self.assertTrue(self.errors)
        kinds = {label.split("#")[0] for label in self.secrets}
        for needed in ("in-process before renewal auth ticket blob", "ceph-mon after renewal osd session key",
                       "conn session key", "rx cipher key", "handler key material",
                       "key server rotating secret", "ceph client.admin key", "in-process client key",
                       "fast reconnect resume key", "fast reconnect conn key"):
            self.assertIn(needed, kinds)
        # 64-byte connection secrets were captured from both ends
        self.assertTrue(any(len(v) == 64 for v in self.secrets.values()))
        haystacks = {"log": self.lines, "repr": self.reprs, "exception": self.errors}
        leaks = []
        for label, form in self._forms().items():
            for where, texts in haystacks.items():
                for text in texts:
                    if form in text:
                        leaks.append("%s in %s: ...%s..." % (label, where, text[max(0, text.index(form) - 80):
                                                                               text.index(form) + 20]))
                        break
        self.assertEqual(leaks, [], "\n".join(leaks))
        self.assertGreater(len(self.lines), 100)
        self.assertGreater(len(self.reprs), 50)
