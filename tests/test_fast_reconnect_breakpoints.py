"""
Breakpoint scenarios for the fast reconnect, on real loopback sockets, in
the style of tests/test_breakpoints.py (whose counting receivers they use).

A lossless ReconnectingClient with cephx talks to a stateful cephx echo
server.  A first fault while READY (the client's third MESSAGE write) makes
the client resume the session with a fast reconnect: its first flight is
banner, HELLO and an AUTH_REQUEST of the resume method carrying the
messages queued meanwhile.  A second breakpoint then faults (or stalls) the
connection at one step of that exchange: every frame each side writes and
reads in it.  Whatever the step, every message arrives exactly once, in
order, no session is reset, and the connection after the fault is again a
fast reconnect (the session key is still good).  The same for a server
that refuses every resume (the ticket expired): a fault at each step of the
refusal and of the fallback to cephx and SESSION_RECONNECT.
"""

import struct

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase

from msgr2tx.auth.cephx import CephxClientHandler, CephxKeyServer, CephxServerHandler
from msgr2tx.auth.cephx_proto import CryptoKey
from msgr2tx.auth.keyring import Keyring
from msgr2tx.client import ReconnectingClient
from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.constants import ConnectionMode, Tag
from msgr2tx.core.encoding import EntityName, EntityType
from msgr2tx.core.messages import GenericMessage
from msgr2tx.factory import Msgr2ServerFactory
from msgr2tx.testing import FAULT, STALL, Interceptor
from tests.test_breakpoints import MESSAGES, SILENT_TYPE, TEST_TYPE, Counter, ServerCounter

ADMIN = EntityName.parse("client.admin")

#: (role, direction, tag) of every frame of the fast reconnect exchange; each
#: is the second of its kind (the first connection had one, by cephx).  The
#: client is READY (it checked the server's AUTH_SIGNATURE) before the server
#: reads the client's: a fault there costs the client one READY more.
RESUME_STEPS = [
    ("client", "write", Tag.HELLO),
    ("client", "write", Tag.AUTH_REQUEST),
    ("server", "write", Tag.HELLO),
    ("server", "read", Tag.HELLO),
    ("server", "read", Tag.AUTH_REQUEST),
    ("server", "write", Tag.AUTH_DONE),
    ("server", "write", Tag.AUTH_SIGNATURE),
    ("client", "read", Tag.HELLO),
    ("client", "read", Tag.AUTH_DONE),
    ("client", "write", Tag.AUTH_SIGNATURE),
    ("client", "read", Tag.AUTH_SIGNATURE),
    ("server", "read", Tag.AUTH_SIGNATURE),
]


class FastReconnectBreakpoints(TestCase):

    timeout = 30

    @defer.inlineCallbacks
    def run_scenario(self, breakpoints, rev1=True, mode=ConnectionMode.SECURE, server=None, fast_after=True):
        interceptor = Interceptor()
        for bp in breakpoints:
            interceptor.add(*bp)
        key = CryptoKey.generate()
        ring = Keyring()
        ring.add(ADMIN, key, {"mon": "allow *"})
        server = server or ServerCounter()
        factory = Msgr2ServerFactory([CephxServerHandler(CephxKeyServer(ring))], server,
                                     ConnectionConfig(entity_type=EntityType.MON, entity_num=0, lossy=False,
                                                      revision1=rev1, modes=(ConnectionMode.SECURE,
                                                                             ConnectionMode.CRC)))
        factory.interceptor = interceptor
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        client_side = Counter()
        client = ReconnectingClient(
            reactor, "v2:127.0.0.1:%d" % port.getHost().port, [CephxClientHandler(ADMIN, key)],
            ConnectionConfig(lossy=False, revision1=rev1, modes=(mode,), keepalive_interval=0.05),
            receiver=client_side, timeout=5, initial_backoff=0.01, max_backoff=0.05)
        client.factory.interceptor = interceptor
        fast = []
        original = client._new_protocol

        def note(protocol):
            original(protocol)
            protocol.whenReady().addCallbacks(lambda info: fast.append(protocol.conn.fast_reconnected),
                                              lambda f: None)
        client.factory.onProtocol = note
        client.startService()
        self.addCleanup(client.stopService)
        for n in range(1, MESSAGES + 1):
            client.sendMessage(GenericMessage(TEST_TYPE, struct.pack("<Q", n) + b"x" * 100))
            yield task.deferLater(reactor, 0.002, lambda: None)
            client.sendMessage(GenericMessage(SILENT_TYPE, struct.pack("<Q", n)))
            yield task.deferLater(reactor, 0.002, lambda: None)
        for _ in range(800):
            if (len(client_side.seen) == MESSAGES and len(server.silent) == MESSAGES
                    and len(interceptor.hits) == len(breakpoints) and client_side.readies >= 2):
                break
            yield task.deferLater(reactor, 0.01, lambda: None)
        yield task.deferLater(reactor, 0.1, lambda: None)
        self.assertEqual(len(interceptor.hits), len(breakpoints), "not every breakpoint fired")
        self.assertEqual(client_side.seen, list(range(1, MESSAGES + 1)))
        self.assertEqual(client_side.duplicates, 0)
        self.assertEqual(client_side.out_of_order, 0)
        self.assertEqual(server.received, MESSAGES)
        self.assertEqual(server.silent, list(range(1, MESSAGES + 1)))
        self.assertEqual(client_side.resets, 0)
        self.assertEqual(server.remote_resets, 0)
        self.assertEqual(len(factory.sessions), 1)
        # the first connection by cephx; every later READY by a fast reconnect
        # (or, when the server refuses them, by cephx and SESSION_RECONNECT)
        self.assertEqual(fast[0], False)
        self.assertTrue(len(fast) >= 2, fast)
        self.assertEqual(fast[1:], [fast_after] * (len(fast) - 1))
        return interceptor, client, client_side, server

    def connects(self, interceptor):
        return interceptor.counts.get(("client", "connect", None), 0)


def _fault(role, direction, tag, rev1, mode):
    @defer.inlineCallbacks
    def test(self):
        interceptor, client, client_side, server = yield self.run_scenario(
            [(("write", Tag.MESSAGE), "client", 3, FAULT), ((direction, tag), role, 2, FAULT)],
            rev1=rev1, mode=mode)
        # READY by cephx, faulted, the resume faulted, resumed again
        self.assertEqual(self.connects(interceptor), 3)
        client_ready_first = (role, direction, tag) == ("server", "read", Tag.AUTH_SIGNATURE)
        self.assertEqual(client_side.readies, 3 if client_ready_first else 2)
        self.assertEqual(interceptor.counts.get(("client", "write", Tag.CLIENT_IDENT)), 1)
        self.assertIsNone(interceptor.counts.get(("client", "write", Tag.SESSION_RECONNECT)))
    return test


def _stall(role, direction, tag):
    @defer.inlineCallbacks
    def test(self):
        interceptor, client, client_side, server = yield self.run_scenario(
            [(("write", Tag.MESSAGE), "client", 3, FAULT), ((direction, tag), role, 2, STALL(0.02))])
        self.assertEqual(self.connects(interceptor), 2)
        self.assertEqual(client_side.readies, 2)
    return test


class ExpiringServer(ServerCounter):
    """A ServerCounter whose first session's ticket has expired as soon as it is READY: every resume is refused."""

    def connectionReady(self, protocol, info):
        if not self.readies:
            protocol.conn.session.resume_expires = 1.0
        super().connectionReady(protocol, info)


#: the refusal and the fallback to cephx on the same connection: the first
#: AUTH_BAD_METHOD, the third AUTH_REQUEST (cephx after the refusal), the
#: second AUTH_DONE, the first SESSION_RECONNECT
REFUSAL_STEPS = [
    ("server", "write", Tag.AUTH_BAD_METHOD, 1),
    ("client", "read", Tag.AUTH_BAD_METHOD, 1),
    ("client", "write", Tag.AUTH_REQUEST, 3),
    ("server", "read", Tag.AUTH_REQUEST, 3),
    ("server", "write", Tag.AUTH_DONE, 2),
    ("client", "read", Tag.AUTH_DONE, 2),
    ("client", "write", Tag.SESSION_RECONNECT, 1),
    ("server", "read", Tag.SESSION_RECONNECT, 1),
]


def _refused_fault(role, direction, tag, nth):
    @defer.inlineCallbacks
    def test(self):
        server = ExpiringServer()
        interceptor, client, client_side, server = yield self.run_scenario(
            [(("write", Tag.MESSAGE), "client", 3, FAULT), ((direction, tag), role, nth, FAULT)],
            server=server, fast_after=False)
        self.assertEqual(self.connects(interceptor), 3)
        self.assertEqual(client_side.readies, 2)
        # the resume was refused at least once, and never accepted
        self.assertGreaterEqual(interceptor.counts.get(("server", "write", Tag.AUTH_BAD_METHOD), 0), 1)
    return test


def _generate():
    scenarios = {}
    for role, direction, tag in RESUME_STEPS:
        name = "%s_%s_%s" % (role, direction, tag.name.lower())
        scenarios["test_fault_%s_secure_rev1" % name] = _fault(role, direction, tag, True, ConnectionMode.SECURE)
        scenarios["test_fault_%s_crc_rev0" % name] = _fault(role, direction, tag, False, ConnectionMode.CRC)
        scenarios["test_stall_%s" % name] = _stall(role, direction, tag)
    for role, direction, tag, nth in REFUSAL_STEPS:
        name = "%s_%s_%s_%d" % (role, direction, tag.name.lower(), nth)
        scenarios["test_refused_fault_%s" % name] = _refused_fault(role, direction, tag, nth)
    return scenarios


for _name, _test in _generate().items():
    _test.__name__ = _name
    setattr(FastReconnectBreakpoints, _name, _test)
del _name, _test
