"""
Large frames: collected in one preallocated buffer (ReceiveBuffer.expect),
read into directly by the TCP transport (socket.recv_into), decrypted in
place in secure mode, and handed up as views of that buffer.
"""

import mmap
import os
import random
import struct

from twisted.internet import defer, reactor
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase

from msgr2tx.auth.cephx import CephxAuthProvider
from msgr2tx.auth.cephx_proto import CryptoKey
from msgr2tx.auth.keyring import Keyring
from msgr2tx.client import connect
from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.constants import ConnectionMode, Tag
from msgr2tx.core.crypto import RxCipher, TxCipher, split_connection_secret
from msgr2tx.core.encoding import EntityName, EntityType
from msgr2tx.core.framing import LARGE_FRAME, OWN_SEGMENT_MIN, FrameReader, FrameWriter, ReceiveBuffer
from msgr2tx.core.messages import GenericMessage
from msgr2tx.errors import AuthTagMismatch, CrcMismatch, FrameTooLarge
from msgr2tx.factory import Msgr2ServerFactory

SECRET = bytes(range(64))
ALIGNS = (8, 8, 8, 4096)
MODES = [("crc", True), ("crc", False), ("secure", True), ("secure", False)]


def pair(mode, rev1, **limits):
    w, r = FrameWriter(rev1), FrameReader(rev1, **limits)
    if mode == "secure":
        key, rx, tx = split_connection_secret(SECRET, accepting=False)
        w.cipher = TxCipher(key, tx, rev1)
        r.cipher = RxCipher(key, tx, rev1)
    return w, r


def message(size, seed):
    rnd = random.Random(seed)
    return [rnd.randbytes(41), rnd.randbytes(100), b"", rnd.randbytes(size)]


def drain(r, rbuf, out):
    while True:
        frame = r.next_frame(rbuf)
        if frame is None:
            return
        out.append(frame)


class ReceiveBufferTests(SynchronousTestCase):

    def _stream(self, mode, rev1, feed, views=True):
        """A large frame, a small one and another large one, fed by C{feed}."""
        w, r = pair(mode, rev1)
        frames = [message(1 << 20, 1), [b"k" * 41, b"small"], message(600_000, 2)]
        wire = b"".join(b"".join(w.assemble(Tag.MESSAGE, segs, ALIGNS[:len(segs)])) for segs in frames)
        rbuf = ReceiveBuffer()
        out = []
        feed(wire, rbuf, r, out)
        self.assertEqual(len(out), 3)
        for frame, segs in zip(out, frames):
            self.assertEqual([bytes(s) for s in frame.segments], [bytes(s) for s in segs])
        if views:
            for frame in (out[0], out[2]):
                data = frame.segments[3]
                if mode == "secure" and rev1 and len(data) >= OWN_SEGMENT_MIN:
                    # decrypted into a bytes object of its own (RxCipher.decrypt_split)
                    self.assertIs(type(data), bytes)
                    continue
                # the large data segments are views of the frame's own buffer, not copies
                self.assertTrue(isinstance(data, memoryview), type(data))
                # read-only: what the application gets cannot write into the frame buffer
                self.assertTrue(data.readonly)
        self.assertEqual(len(rbuf), 0)
        return out, rbuf

    def test_chunks(self):
        """Chunks of every size, some carrying the end of one frame and the start of the next."""
        def feed(wire, rbuf, r, out):
            rnd = random.Random(7)
            i = 0
            while i < len(wire):
                n = rnd.choice((1, 33, 4096, 65536, 300_000))
                rbuf.append(wire[i:i + n])
                i += n
                drain(r, rbuf, out)
        for mode, rev1 in MODES:
            self._stream(mode, rev1, feed)

    def test_one_piece(self):
        """Frames that arrive whole need no frame buffer (their segments are copied out once)."""
        def feed(wire, rbuf, r, out):
            rbuf.append(wire)
            drain(r, rbuf, out)
            self.assertEqual(rbuf.want, 0)
        for mode, rev1 in MODES:
            self._stream(mode, rev1, feed, views=False)

    def test_writable(self):
        """A transport that reads into writable() and reports with filled()."""
        def feed(wire, rbuf, r, out):
            i = 0
            direct = 0
            while i < len(wire):
                target = rbuf.writable()
                if target is None:
                    n = 70_000
                    rbuf.append(wire[i:i + n])
                else:
                    n = min(len(target), 200_000, len(wire) - i)
                    target[:n] = wire[i:i + n]
                    target.release()
                    rbuf.filled(n)
                    direct += n
                i += n
                drain(r, rbuf, out)
            self.assertGreater(direct, 1 << 20)
        for mode, rev1 in MODES:
            self._stream(mode, rev1, feed)

    def test_buffer_reused_only_when_unreferenced(self):
        # (msgr2.0: in msgr2.1 a last segment of 1 MiB or more is decrypted
        # into a bytes object of its own, not left in the frame buffer)
        w, r = pair("secure", False)
        rbuf = ReceiveBuffer()
        out = []

        def receive(size, seed):
            wire = b"".join(w.assemble(Tag.MESSAGE, message(size, seed), ALIGNS))
            for i in range(0, len(wire), 100_000):
                rbuf.append(wire[i:i + 100_000])
                drain(r, rbuf, out)
            frame = out.pop()
            data = frame.segments[3]
            # a view of the frame buffer the chunks were collected in
            self.assertIs(type(data.obj), mmap.mmap)
            self.assertEqual(bytes(data), message(size, seed)[3])
            return data

        held = receive(1 << 20, 3)
        # the first frame's data is still referenced: a new buffer
        second = receive(1 << 20, 4)
        self.assertIsNot(second.obj, held.obj)
        # once nothing refers to the second frame's buffer, the third (a little
        # larger) reuses it, and the fourth (smaller again) too
        buffer_id = id(second.obj)
        del second
        third = receive((1 << 20) + 100, 5)
        self.assertEqual(id(third.obj), buffer_id)
        del third
        fourth = receive((1 << 20) - 3000, 12)
        self.assertEqual(id(fourth.obj), buffer_id)
        # a much larger frame gets a buffer of its own
        fifth = receive(2 << 20, 13)
        self.assertIsNot(fifth.obj, fourth.obj)
        # and the views handed out before are intact
        self.assertEqual(bytes(held), message(1 << 20, 3)[3])
        self.assertEqual(bytes(fourth), message((1 << 20) - 3000, 12)[3])

    def test_tampered_large_secure_frame(self):
        # a flipped bit before, inside and after the large last segment
        # (which msgr2.1 decrypts into an object of its own)
        for rev1 in (True, False):
            for where in (200, 1 << 19, -20):
                w, r = pair("secure", rev1)
                wire = bytearray(b"".join(w.assemble(Tag.MESSAGE, message(1 << 20, 6), ALIGNS)))
                wire[where] ^= 1
                rbuf = ReceiveBuffer()
                rbuf.append(bytes(wire[:1000]))
                self.assertIsNone(r.next_frame(rbuf))
                self.assertTrue(rbuf.want)
                rbuf.append(bytes(wire[1000:]))
                self.assertRaises(AuthTagMismatch, r.next_frame, rbuf)

    def test_corrupt_large_crc_frame(self):
        w, r = pair("crc", True)
        wire = bytearray(b"".join(w.assemble(Tag.MESSAGE, message(1 << 20, 8), ALIGNS)))
        wire[len(wire) // 2] ^= 1
        rbuf = ReceiveBuffer()
        rbuf.append(bytes(wire))
        self.assertRaises(CrcMismatch, r.next_frame, rbuf)

    def test_announced_frames_commit_no_memory(self):
        """A frame buffer costs memory as its bytes arrive, not when a preamble announces them."""
        if not os.path.exists("/proc/self/status"):
            raise SkipTest("needs /proc/self/status (Linux)")
        w, _ = pair("crc", True)
        head = b"".join(w.assemble(Tag.MESSAGE, message(16 << 20, 14), ALIGNS))[:64 << 10]
        held = []
        before = rss()
        for _ in range(20):
            _, r = pair("crc", True)
            rbuf = ReceiveBuffer()
            rbuf.append(head)
            self.assertIsNone(r.next_frame(rbuf))
            self.assertGreater(rbuf.want, 16 << 20)
            held.append(rbuf)
        # 20 frames of 16 MiB announced (320 MiB), 64 KiB of each received
        self.assertLess(rss() - before, 48 << 20)

    def test_no_buffer_beyond_the_limits(self):
        """An oversized preamble is refused before any frame buffer is set up."""
        w, _ = pair("crc", True)
        _, r = pair("crc", True, max_segment=LARGE_FRAME, max_frame=2 * LARGE_FRAME)
        wire = b"".join(w.assemble(Tag.MESSAGE, message(4 * LARGE_FRAME, 9), ALIGNS))
        rbuf = ReceiveBuffer()
        rbuf.append(wire[:4096])
        self.assertRaises(FrameTooLarge, r.next_frame, rbuf)
        self.assertEqual(rbuf.want, 0)
        self.assertLess(len(rbuf.buf), 8192)


def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) << 10
    raise AssertionError("no VmRSS")


def keyring(path):
    ring = Keyring()
    ring.add(EntityName.parse("client.admin"), CryptoKey.generate(), {"mon": "allow *", "osd": "allow *"})
    ring.save(path)
    return path


class Collect:
    def __init__(self):
        self.messages = []
        self.waiting = None

    def connectionReady(self, protocol, info):
        self.protocol = protocol

    def connectionLost(self, protocol, reason):
        pass

    def messageReceived(self, protocol, message):
        self.messages.append(message)
        if self.waiting is not None and len(self.messages) >= self.waiting[0]:
            d, self.waiting = self.waiting[1], None
            d.callback(None)

    def wait_for(self, n):
        d = defer.Deferred()
        self.waiting = (n, d)
        return d


class TransportTests(TestCase):
    """Over real loopback TCP: the transport reads large frames straight into the frame buffer."""

    timeout = 60

    @defer.inlineCallbacks
    def _transfer(self, mode):
        path = keyring(self.mktemp())
        collect = Collect()
        factory = Msgr2ServerFactory([CephxAuthProvider().serverHandler("keyring=%s" % path)], collect,
                                     ConnectionConfig(entity_type=EntityType.MON, entity_num=0,
                                                      modes=(mode,)))
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        p = yield connect(reactor, "v2:127.0.0.1:%d" % port.getHost().port,
                          [CephxAuthProvider().clientHandler("keyring=%s" % path)],
                          ConnectionConfig(modes=(mode,)), timeout=10)
        self.addCleanup(p.transport.loseConnection)
        server = collect.protocol
        self.assertEqual(server.transport.doRead, server._do_read)
        # the client's transport came through an endpoint (its protocol wrapped): reads direct too
        self.assertEqual(p.transport.doRead, p._do_read)
        payloads = [os.urandom(n) for n in (4 << 20, 1000, 3 << 20, 4 << 20)]
        read_into = []
        original = server.conn.buffer_filled

        def counting(n):
            read_into.append(n)
            original(n)
        server.conn.buffer_filled = counting
        done = collect.wait_for(len(payloads))
        for i, data in enumerate(payloads):
            p.sendMessage(GenericMessage(0x7F20, front=struct.pack("<I", i), data=data))
        yield done
        got = [(struct.unpack("<I", bytes(m.front))[0], bytes(m.data)) for m in collect.messages]
        self.assertEqual(got, list(enumerate(payloads)))
        # the large data segments reach the application with no copy: as
        # views of the frame buffer they were received (crc) or decrypted
        # (secure, the first of them) in, or (secure msgr2.1, 1 MiB or
        # more) as the bytes object they were decrypted into
        for m in collect.messages:
            if len(m.data) > 1 << 20:
                if mode == ConnectionMode.SECURE and len(m.data) >= OWN_SEGMENT_MIN:
                    self.assertIs(type(m.data), bytes)
                else:
                    self.assertTrue(isinstance(m.data, memoryview) and type(m.data.obj) is mmap.mmap)
        self.assertGreater(sum(read_into), 4 << 20)

    def test_crc(self):
        return self._transfer(ConnectionMode.CRC)

    def test_secure(self):
        return self._transfer(ConnectionMode.SECURE)
