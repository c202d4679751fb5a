"""
The READY-state fast path (FrameReader.read_messages,
FrameWriter.assemble_message, Msgr2Connection's batch of MESSAGE frames)
against the general path it shortcuts.

The general path is the reference: the same bytes, fed in the same chunks,
must give the same frames, the same messages and the same error (type and
text) whether or not the fast path runs first, for well-formed streams and
for streams with corrupted bytes, aborted frames, control frames, compressed
frames and frames over the limits.  The writer's fast path must put the same
bytes on the wire as the general writer.
"""

import random
import struct

from twisted.trial import unittest

from msgr2tx.auth.cephx import CephxAuthProvider
from msgr2tx.auth.cephx_proto import CryptoKey
from msgr2tx.auth.keyring import Keyring
from msgr2tx.core import events as E
from msgr2tx.core.compression import CompressionAlgorithm, TxCompressor
from msgr2tx.core.config import ConnectionConfig
from msgr2tx.core.constants import LATE_STATUS_ABORTED, ConnectionMode, Tag
from msgr2tx.core.crypto import RxCipher, TxCipher
from msgr2tx.core.encoding import EntityName, EntityType, utime_t
from msgr2tx.core.frames import MESSAGE_ALIGNS
from msgr2tx.core.framing import FrameReader, FrameWriter, ReceiveBuffer
from msgr2tx.core.messages import GenericMessage
from msgr2tx.errors import CrcMismatch, FrameTooLarge, ProtocolError
from msgr2tx.testing import CorePair

KEY = bytes(range(16))
NONCE = bytes(range(100, 112))
_HEADER = struct.Struct("<QQHHHIHQBHH")


def header(seq, msg_type=0x7777):
    return _HEADER.pack(seq, seq * 3, msg_type, 127, 1, 0, 0, 0, 0, 1, 0)


def writer(secure, data_crc=True):
    w = FrameWriter(rev1=True, data_crc=data_crc)
    if secure:
        w.cipher = TxCipher(KEY, NONCE, True)
    return w


def reader(secure, data_crc=True, **limits):
    r = FrameReader(rev1=True, data_crc=data_crc, **limits)
    if secure:
        r.cipher = RxCipher(KEY, NONCE, True)
    return r


SHAPES = [
    (b"", b"", b""),
    (b"f" * 5, b"", b""),
    (b"", b"m" * 17, b""),
    (b"", b"", b"d" * 4096),
    (b"f" * 33, b"m" * 3, b"d" * 100),
    (b"f" * 16, b"", b"d" * 1),
    (b"", b"", b"D" * (300 << 10)),
]


def stream(secure, data_crc=True, shapes=SHAPES, extra=True):
    """Frames as the general writer writes them: messages of every shape, control frames between them."""
    w = writer(secure, data_crc)
    out = []
    for i, (front, middle, data) in enumerate(shapes):
        out += w.assemble(Tag.MESSAGE, (header(i + 1), front, middle, data), MESSAGE_ALIGNS)
        if extra and i % 3 == 1:
            out += w.assemble(Tag.ACK, (struct.pack("<Q", i),), (8,))
    return b"".join(out)


def drain(r, rbuf, fast, log):
    """Read what can be read; log frames and messages the same way for both paths."""
    def on_message(src, off, front, middle, data):
        log.append(("M", bytes(src[off:off + 41]), bytes(front), bytes(middle), bytes(data)))

    while True:
        if fast:
            r.read_messages(rbuf, on_message, r.max_frame)
        frame = r.next_frame(rbuf)
        if frame is None:
            return
        segs = [bytes(s) for s in frame.segments] + [b""] * (4 - len(frame.segments))
        if frame.tag == Tag.MESSAGE and len(segs[0]) == 41:
            log.append(("M",) + tuple(segs))
        else:
            log.append((frame.tag, frame.flags) + tuple(segs))


def run(data, secure, fast, cuts, data_crc=True, **limits):
    r = reader(secure, data_crc, **limits)
    rbuf = ReceiveBuffer()
    log = []
    prev = 0
    try:
        for cut in list(cuts) + [len(data)]:
            rbuf.append(data[prev:cut])
            prev = cut
            drain(r, rbuf, fast, log)
    except ProtocolError as e:
        log.append(("error", type(e).__name__, str(e)))
    return log


class ReaderEquivalenceTests(unittest.SynchronousTestCase):

    def check(self, data, secure, cuts=(), data_crc=True, **limits):
        ref = run(data, secure, False, cuts, data_crc, **limits)
        got = run(data, secure, True, cuts, data_crc, **limits)
        self.assertEqual(got, ref)
        return ref

    def test_well_formed_streams(self):
        for secure in (False, True):
            for data_crc in (True, False):
                if secure and not data_crc:
                    continue
                data = stream(secure, data_crc)
                log = self.check(data, secure, data_crc=data_crc)
                # the segments themselves, the 300 KiB one (joined from chunks) included
                self.assertEqual([x[2:] for x in log if x[0] == "M"], [tuple(shape) for shape in SHAPES])
                self.assertEqual(len(log), len(SHAPES) + 2)
                rng = random.Random(7)
                for _ in range(20):
                    cuts = sorted(rng.sample(range(1, len(data)), 6))
                    self.assertEqual(self.check(data, secure, cuts, data_crc), log)

    def test_fast_path_takes_plain_messages_alone(self):
        for secure in (False, True):
            data = stream(secure, shapes=SHAPES[:6], extra=False)
            r = reader(secure)
            rbuf = ReceiveBuffer()
            rbuf.append(data)
            seen = []
            r.read_messages(rbuf, lambda src, off, *segs: seen.append(_HEADER.unpack_from(src, off)[0]),
                            r.max_frame)
            self.assertEqual(seen, [1, 2, 3, 4, 5, 6])
            self.assertEqual(len(rbuf), 0)

    def test_corrupted_bytes(self):
        """Every kind of damage gives the general path's error, after the same messages."""
        rng = random.Random(13)
        for secure in (False, True):
            data = stream(secure, shapes=SHAPES[:6])
            errors = set()
            for _ in range(300):
                bad = bytearray(data)
                at = rng.randrange(len(bad))
                bad[at] ^= 1 << rng.randrange(8)
                cuts = sorted(rng.sample(range(1, len(bad)), 3))
                log = self.check(bytes(bad), secure, cuts)
                if log and log[-1][0] == "error":
                    errors.add(log[-1][1])
            if secure:
                self.assertIn("AuthTagMismatch", errors)
            else:
                self.assertIn("CrcMismatch", errors)

    def test_repeated_shapes(self):
        """
        Frames of the same few shapes again and again (the reader remembers
        their checked preambles), intact and damaged anywhere.
        """
        shapes = [SHAPES[3], SHAPES[4], SHAPES[5]] * 5
        rng = random.Random(21)
        for secure in (False, True):
            data = stream(secure, shapes=shapes)
            log = self.check(data, secure)
            self.assertEqual([x[2:] for x in log if x[0] == "M"], [tuple(shape) for shape in shapes])
            errors = set()
            for _ in range(150):
                bad = bytearray(data)
                bad[rng.randrange(len(bad))] ^= 1 << rng.randrange(8)
                log = self.check(bytes(bad), secure, sorted(rng.sample(range(1, len(bad)), 3)))
                if log and log[-1][0] == "error":
                    errors.add(log[-1][1])
            self.assertIn("AuthTagMismatch" if secure else "CrcMismatch", errors)

    def test_remembered_preamble_checked_again_under_new_limits(self):
        for secure in (False, True):
            data = stream(secure, shapes=[SHAPES[3]] * 2, extra=False)
            half = len(data) // 2
            r = reader(secure)
            rbuf = ReceiveBuffer()
            seen = []
            rbuf.append(data[:half])
            r.read_messages(rbuf, lambda *a: seen.append(1), r.max_frame)
            self.assertEqual(seen, [1])
            rbuf.append(data[half:])
            r.max_frame = 1000  # the same preamble is now over the limit

            def read():
                r.read_messages(rbuf, lambda *a: seen.append(1), r.max_frame)
                return r.next_frame(rbuf)

            self.assertRaises(FrameTooLarge, read)
            self.assertEqual(seen, [1])

    def test_aborted_and_bad_late_status(self):
        w = writer(False)
        parts = w.assemble(Tag.MESSAGE, (header(1), b"f", b"", b"d" * 10), MESSAGE_ALIGNS)
        frame = bytearray(b"".join(parts))
        ok = b"".join(w.assemble(Tag.MESSAGE, (header(2), b"", b"", b"x"), MESSAGE_ALIGNS))
        late = len(frame) - 13
        for status, expect in ((LATE_STATUS_ABORTED, None), (0x5, "FramingError")):
            frame[late] = status
            log = self.check(ok + bytes(frame) + ok, False)
            if expect is None:
                self.assertEqual([x[1] for x in log], [header(2), header(2)])
            else:
                self.assertEqual(log[-1][:2], ("error", expect))
                self.assertEqual(len(log), 2)

    def test_limits(self):
        for secure in (False, True):
            data = stream(secure, shapes=SHAPES[:5] + SHAPES[6:], extra=False)
            log = self.check(data, secure, max_segment=64 << 10)
            self.assertEqual(log[-1][:2], ("error", "FrameTooLarge"))
            self.assertEqual(len(log), 6)
            log = self.check(data, secure, max_frame=1000)
            self.assertEqual(log[-1][:2], ("error", "FrameTooLarge"))

    def test_compressed_frame_goes_the_general_way(self):
        w = writer(False)
        plain = b"".join(w.assemble(Tag.MESSAGE, (header(1), b"", b"", b"a" * 8192), MESSAGE_ALIGNS))
        w.compressor = TxCompressor(CompressionAlgorithm.SNAPPY, 1024)
        packed = b"".join(w.assemble(Tag.MESSAGE, (header(2), b"", b"", b"a" * 8192), MESSAGE_ALIGNS))
        self.assertNotEqual(len(packed), len(plain))
        log = self.check(plain + packed, False)
        self.assertEqual(log[-1][:2], ("error", "CompressionError"))
        self.assertEqual(len(log), 2)


class WriterEquivalenceTests(unittest.SynchronousTestCase):

    def test_same_bytes_as_the_general_writer(self):
        shapes = SHAPES + [(b"f" * 3, b"m" * 2, b""), (bytearray(b"x" * 9), memoryview(b"y" * 31), b"z")]
        for secure in (False, True):
            for data_crc in (True, False):
                fast, general = writer(secure, data_crc), writer(secure, data_crc)
                for i, (front, middle, data) in enumerate(shapes):
                    a = fast.assemble_message(header(i), front, middle, data, MESSAGE_ALIGNS)
                    b = general.assemble(Tag.MESSAGE, (header(i), front, middle, data), MESSAGE_ALIGNS)
                    self.assertEqual(b"".join(a), b"".join(b), (secure, data_crc, i))
                    self.assertTrue(all(type(p) is bytes for p in a))
                # the same shapes again: the writer remembers their preambles
                for i, (front, middle, data) in enumerate(shapes):
                    a = fast.assemble_message(header(i + 50), front, middle, data, MESSAGE_ALIGNS)
                    b = general.assemble(Tag.MESSAGE, (header(i + 50), front, middle, data), MESSAGE_ALIGNS)
                    self.assertEqual(b"".join(a), b"".join(b), (secure, data_crc, i, "again"))

    def test_recording_and_compression_take_the_general_way(self):
        w = writer(False)
        w.recording = bytearray()
        parts = w.assemble_message(header(1), b"", b"", b"d", MESSAGE_ALIGNS)
        self.assertEqual(bytes(w.recording), b"".join(parts))


def cephx_pair(mode, lossy=False):
    ring = Keyring()
    ring.add(EntityName.parse("client.admin"), CryptoKey.generate(), {"mon": "allow *"})
    provider = CephxAuthProvider()
    client = provider.clientHandler(name="client.admin", keyring=ring)
    pair = CorePair([client], [provider.serverHandler(keyring=ring)],
                    client_config=ConnectionConfig(modes=(mode,)),
                    server_config=ConnectionConfig(entity_type=EntityType.MON, entity_num=0, lossy=lossy,
                                                   modes=(mode,)))
    pair.handshake()
    return pair


class ConnectionBatchTests(unittest.SynchronousTestCase):
    """A READY connection takes a batch of messages in one receive_data, control frames between them."""

    def batch(self, mode):
        pair = cephx_pair(mode)
        c, s = pair.client, pair.server
        self.assertEqual(s.state.name, "READY")
        sent = [GenericMessage(0x7777, front=b"f%d" % i, data=bytes([i]) * (i * 300)) for i in range(20)]
        for m in sent[:10]:
            c.send_message(m)
        c.send_keepalive(utime_t(1, 2))
        for m in sent[10:]:
            c.send_message(m)
        wire = b"".join(c.data_to_send())
        return pair, sent, wire

    def test_batch_of_messages_with_a_keepalive_between(self):
        for mode in (ConnectionMode.CRC, ConnectionMode.SECURE):
            pair, sent, wire = self.batch(mode)
            events = pair.server.receive_data(wire)
            got = [e.message for e in events if isinstance(e, E.MessageReceived)]
            self.assertEqual([(m.front, m.data, m.seq) for m in got],
                             [(m.front, m.data, i + 1) for i, m in enumerate(sent)])
            self.assertEqual(len([e for e in events if isinstance(e, E.KeepaliveReceived)]), 1)
            self.assertEqual(pair.server.session.in_seq, 20)
            self.assertEqual(got[3].src, pair.server.peer_name)

    def test_bad_crc_after_good_messages(self):
        pair, sent, wire = self.batch(ConnectionMode.CRC)
        bad = bytearray(wire)
        bad[-20] ^= 0x40  # in the last message's data
        with self.assertRaises(CrcMismatch) as cm:
            pair.server.receive_data(bytes(bad))
        got = [e.message for e in cm.exception.events if isinstance(e, E.MessageReceived)]
        self.assertEqual(len(got), 19)
        self.assertEqual(pair.server.state.name, "CLOSED")

    def test_duplicates_dropped_and_acks_applied(self):
        pair, sent, wire = self.batch(ConnectionMode.CRC)
        s = pair.server
        s.receive_data(wire)
        self.assertEqual(s.session.in_seq, 20)
        # the server's replies carry its in_seq; the client drops what they acknowledge
        for i in range(3):
            s.send_message(GenericMessage(0x7777, data=b"r"))
        self.assertEqual(len(pair.client.session.unacked), 20)
        pair.client.receive_data(b"".join(s.data_to_send()))
        self.assertEqual(len(pair.client.session.unacked), 0)
        self.assertEqual(pair.client.session.in_seq, 3)
