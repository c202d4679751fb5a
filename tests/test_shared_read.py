"""
The shared read buffer (L{Msgr2Protocol._read_shared}): in READY, on a
plain TCP transport, ordinary reads go into one buffer that every
connection of the process reuses, and the core copies what it keeps before
the read returns.  Several echo sessions in one process, crc and secure,
with messages of many sizes (some over the large-frame size, which are read
into their own frame buffer in between): every echo comes back byte for
byte and in order, so no connection ever saw bytes another read left in the
buffer.
"""

import os
import random
import struct

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from msgr2tx.auth.cephx import CephxAuthProvider
from msgr2tx.client import connect
from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.constants import ConnectionMode
from msgr2tx.core.encoding import EntityType
from msgr2tx.core.messages import GenericMessage
from msgr2tx.factory import Msgr2ServerFactory
from msgr2tx.protocol import Msgr2Protocol
from msgr2tx.services import EchoReceiver
from tests.test_large_frames import keyring

SESSIONS = 4
MESSAGES = 150
WINDOW = 8


class Echoes:
    """A client receiver that checks each echo against what was sent."""

    def __init__(self, sent):
        self.sent = sent
        self.received = 0
        self.bad = []
        self.done = defer.Deferred()
        self.more = None

    def connectionReady(self, protocol, info):
        pass

    def connectionLost(self, protocol, reason):
        pass

    def messageReceived(self, protocol, message):
        n = struct.unpack_from("<I", bytes(message.front))[0]
        if n != self.received or bytes(message.data) != self.sent[n]:
            self.bad.append(n)
        self.received += 1
        if self.more is not None:
            d, self.more = self.more, None
            d.callback(None)
        if self.received == len(self.sent) and not self.done.called:
            self.done.callback(None)


class SharedReadBufferTests(TestCase):

    timeout = 120

    def setUp(self):
        self.shared_reads = 0
        original = Msgr2Protocol._read_shared

        def counting(protocol_, transport):
            self.shared_reads += 1
            return original(protocol_, transport)
        self.patch(Msgr2Protocol, "_read_shared", counting)

    @defer.inlineCallbacks
    def _sessions(self, mode):
        path = keyring(self.mktemp())
        factory = Msgr2ServerFactory([CephxAuthProvider().serverHandler("keyring=%s" % path)], EchoReceiver(),
                                     ConnectionConfig(entity_type=EntityType.MON, entity_num=0, modes=(mode,)))
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        rng = random.Random(7)
        sizes = [0, 1, 4096, 70000, 300 << 10] + [rng.choice((rng.randrange(0, 9000), rng.randrange(0, 200)))
                                                 for _ in range(MESSAGES - 5)]
        rng.shuffle(sizes)
        clients = []
        for _ in range(SESSIONS):
            sent = [os.urandom(n) for n in sizes]
            echoes = Echoes(sent)
            p = yield connect(reactor, "v2:127.0.0.1:%d" % port.getHost().port,
                              [CephxAuthProvider().clientHandler("keyring=%s" % path)],
                              ConnectionConfig(modes=(mode,)), receiver=echoes, timeout=10)
            self.addCleanup(p.abort)
            clients.append((p, echoes))

        @defer.inlineCallbacks
        def run(p, echoes):
            for n, data in enumerate(echoes.sent):
                while n - echoes.received >= WINDOW:
                    echoes.more = defer.Deferred()
                    yield echoes.more
                p.sendMessage(GenericMessage(0x7F30, front=struct.pack("<I", n), data=data))
            yield echoes.done

        # all sessions at once: their reads interleave through the one buffer
        yield defer.gatherResults([run(p, echoes) for p, echoes in clients])
        for p, echoes in clients:
            self.assertEqual((echoes.received, echoes.bad), (MESSAGES, []))
        self.assertGreater(self.shared_reads, SESSIONS * 10)

    def test_crc(self):
        return self._sessions(ConnectionMode.CRC)

    def test_secure(self):
        return self._sessions(ConnectionMode.SECURE)
