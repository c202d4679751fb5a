"""
Tests for msgr2tx.core.crc and msgr2tx.core.framing (crc mode, rev0 and rev1).

CRC known answers are Ceph's own (src/test/common/test_crc32c.cc) and the
documented KEEPALIVE2 vector.  Other expected frames are laid out by hand from
the msgr2 framing rules; their crcs come from the small bit-by-bit crc32c in
this file (checked against the same known answers), not from the code under
test.
"""

import struct

from twisted.trial import unittest

from msgr2tx.core import crc
from msgr2tx.core.constants import Tag
from msgr2tx.core.framing import (
    Frame, FrameReader, FrameWriter, ReceiveBuffer, build_preamble, trim_segments,
)
from msgr2tx.errors import (
    BadSegmentCount, CrcMismatch, FrameTooLarge, FramingError, UnknownTag,
)


def h(*chunks: str) -> bytes:
    return bytes.fromhex("".join(chunks).replace(" ", ""))


def ref_crc32c(seed: int, data: bytes) -> int:
    """Castagnoli crc, reflected, raw register: Ceph's ceph_crc32c."""
    value = seed
    for byte in data:
        value ^= byte
        for _ in range(8):
            value = (value >> 1) ^ (0x82F63B78 if value & 1 else 0)
    return value


def le32(v: int) -> bytes:
    return struct.pack("<I", v)


def seg_crc(data: bytes) -> bytes:
    return le32(ref_crc32c(0xFFFFFFFF, data))


def preamble(tag, slots, flags=0, count=None, bad_crc=False) -> bytes:
    """A hand-built preamble; slots is a list of (length, align)."""
    slots = list(slots) + [(0, 0)] * (4 - len(slots))
    body = struct.pack("<BB", tag, len([s for s in slots if s != (0, 0)]) if count is None else count)
    for length, align in slots:
        body += struct.pack("<IH", length, align)
    body += struct.pack("<BB", flags, 0)
    assert len(body) == 28
    value = ref_crc32c(0, body)
    if bad_crc:
        value ^= 1
    return body + le32(value)


# The documented rev1 KEEPALIVE2 frame with timestamp (1 s, 2 ns)
KEEPALIVE_PREAMBLE = h("12010800000008000000000000000000000000000000000000000000d8d5f599")
KEEPALIVE_PAYLOAD = h("0100000002000000")
KEEPALIVE_REV1 = KEEPALIVE_PREAMBLE + KEEPALIVE_PAYLOAD + h("d3138c85")
KEEPALIVE_REV0 = KEEPALIVE_PREAMBLE + KEEPALIVE_PAYLOAD + h("00 d3138c85 00000000 00000000 00000000")

# ceph_msg_header2: seq 1, tid 2, type 0x11, priority 127, version 1,
# data_pre_padding_len 0, data_off 0, ack_seq 0, flags 0, compat 1, reserved 0
HEADER2 = h("0100000000000000 0200000000000000 1100 7f00 0100 00000000 0000"
            "0000000000000000 00 0100 0000")
FRONT = b"FRONT"
DATA = b"DATA"
MESSAGE_ALIGNS = (8, 8, 8, 4096)


def join(parts) -> bytes:
    return b"".join(bytes(p) for p in parts)


def read_all(reader: FrameReader, data: bytes):
    rbuf = ReceiveBuffer()
    rbuf.append(data)
    frames = []
    while True:
        frame = reader.next_frame(rbuf)
        if frame is None:
            return frames, len(rbuf)
        frames.append(frame)


def message_rev1() -> bytes:
    return (preamble(Tag.MESSAGE, [(41, 8), (5, 8), (0, 8), (4, 4096)])
            + HEADER2 + seg_crc(HEADER2) + FRONT + DATA
            + h("0e") + seg_crc(FRONT) + h("ffffffff") + seg_crc(DATA))


def message_rev0() -> bytes:
    return (preamble(Tag.MESSAGE, [(41, 8), (5, 8), (0, 8), (4, 4096)])
            + HEADER2 + FRONT + DATA
            + h("00") + seg_crc(HEADER2) + seg_crc(FRONT) + h("ffffffff") + seg_crc(DATA))


class CrcTests(unittest.SynchronousTestCase):

    def test_reference_crc_matches_ceph_vectors(self):
        # guards the helper the other tests use for expected values
        self.assertEqual(ref_crc32c(0, b"foo bar baz"), 4119623852)
        self.assertEqual(ref_crc32c(1234, b"foo bar baz"), 881700046)
        self.assertEqual(ref_crc32c(0xFFFFFFFF, b"123456789"), 0x1CF96D7C)

    def test_ceph_crc32c_vectors(self):
        self.assertEqual(crc.ceph_crc32c(0, b"foo bar baz"), 4119623852)
        self.assertEqual(crc.ceph_crc32c(1234, b"foo bar baz"), 881700046)
        self.assertEqual(crc.ceph_crc32c(0, b"123456789"), 0x58E3FA20)
        self.assertEqual(crc.ceph_crc32c(0xFFFFFFFF, b"123456789"), 0x1CF96D7C)

    def test_segment_and_preamble_seeds(self):
        self.assertEqual(crc.segment_crc(b""), 0xFFFFFFFF)
        self.assertEqual(crc.segment_crc(b"123456789"), 0x1CF96D7C)
        self.assertEqual(crc.preamble_crc(b"123456789"), 0x58E3FA20)
        self.assertEqual(crc.preamble_crc(b""), 0)
        self.assertEqual(crc.preamble_crc(KEEPALIVE_PREAMBLE[:28]), 0x99F5D5D8)
        self.assertEqual(crc.segment_crc(KEEPALIVE_PAYLOAD), 0x858C13D3)

    def test_accepts_memoryview_and_bytearray(self):
        self.assertEqual(crc.segment_crc(memoryview(b"123456789")), 0x1CF96D7C)
        self.assertEqual(crc.preamble_crc(bytearray(b"123456789")), 0x58E3FA20)


class WriterLayoutTests(unittest.SynchronousTestCase):

    def test_keepalive_rev1_vector(self):
        parts = FrameWriter(rev1=True).assemble(Tag.KEEPALIVE2, [KEEPALIVE_PAYLOAD])
        self.assertEqual(join(parts), KEEPALIVE_REV1)

    def test_keepalive_rev0(self):
        parts = FrameWriter(rev1=False).assemble(Tag.KEEPALIVE2, [KEEPALIVE_PAYLOAD])
        self.assertEqual(join(parts), KEEPALIVE_REV0)
        self.assertEqual(len(join(parts)), 32 + 8 + 17)

    def test_build_preamble(self):
        self.assertEqual(build_preamble(Tag.KEEPALIVE2, [8], [8]), KEEPALIVE_PREAMBLE)
        self.assertRaises(ValueError, build_preamble, Tag.MESSAGE, [], [])
        self.assertRaises(ValueError, build_preamble, Tag.MESSAGE, [1] * 5, [8] * 5)

    def test_message_rev1_four_segments(self):
        parts = FrameWriter(rev1=True).assemble(Tag.MESSAGE, [HEADER2, FRONT, b"", DATA], MESSAGE_ALIGNS)
        expected = message_rev1()
        self.assertEqual(join(parts), expected)
        # the preamble written out in full, crc aside
        self.assertEqual(expected[:28], h(
            "11 04 29000000 0800 05000000 0800 00000000 0800 04000000 0010 00 00"))
        self.assertEqual(len(expected), 32 + 41 + 4 + 5 + 0 + 4 + 13)

    def test_message_rev0_four_segments(self):
        parts = FrameWriter(rev1=False).assemble(Tag.MESSAGE, [HEADER2, FRONT, b"", DATA], MESSAGE_ALIGNS)
        self.assertEqual(join(parts), message_rev0())

    def test_trailing_empty_segments_trimmed_rev1(self):
        parts = FrameWriter(rev1=True).assemble(Tag.MESSAGE, [HEADER2, FRONT, b"", b""], MESSAGE_ALIGNS)
        pre = h("11 02 29000000 0800 05000000 0800 00000000 0000 00000000 0000 00 00")
        expected = (pre + le32(ref_crc32c(0, pre)) + HEADER2 + seg_crc(HEADER2) + FRONT
                    + h("0e") + seg_crc(FRONT) + h("00000000 00000000"))
        self.assertEqual(join(parts), expected)

    def test_trailing_empty_segments_trimmed_rev0(self):
        parts = FrameWriter(rev1=False).assemble(Tag.MESSAGE, [HEADER2, FRONT, b"", b""], MESSAGE_ALIGNS)
        pre = h("11 02 29000000 0800 05000000 0800 00000000 0000 00000000 0000 00 00")
        expected = (pre + le32(ref_crc32c(0, pre)) + HEADER2 + FRONT
                    + h("00") + seg_crc(HEADER2) + seg_crc(FRONT) + h("00000000 00000000"))
        self.assertEqual(join(parts), expected)

    def test_header_only_message_rev1(self):
        parts = FrameWriter(rev1=True).assemble(Tag.MESSAGE, [HEADER2, b"", b"", b""], MESSAGE_ALIGNS)
        expected = preamble(Tag.MESSAGE, [(41, 8)]) + HEADER2 + seg_crc(HEADER2)
        self.assertEqual(join(parts), expected)

    def test_trim_segments(self):
        self.assertEqual(trim_segments([b""]), 1)
        self.assertEqual(trim_segments([b"", b"", b""]), 1)
        self.assertEqual(trim_segments([b"a", b"", b"c", b""]), 3)
        self.assertEqual(trim_segments([b"a", b"b", b"c", b"d"]), 4)

    def test_empty_frame_rev1(self):
        parts = FrameWriter(rev1=True).assemble(Tag.WAIT, [b""])
        expected = preamble(Tag.WAIT, [(0, 8)], count=1)
        self.assertEqual(join(parts), expected)
        self.assertEqual(expected[:2], h("10 01"))
        self.assertEqual(len(expected), 32)

    def test_empty_frame_rev0(self):
        parts = FrameWriter(rev1=False).assemble(Tag.WAIT, [b""])
        expected = preamble(Tag.WAIT, [(0, 8)], count=1) + h("00 ffffffff 00000000 00000000 00000000")
        self.assertEqual(join(parts), expected)

    def test_no_data_crc_rev1(self):
        parts = FrameWriter(rev1=True, data_crc=False).assemble(Tag.KEEPALIVE2, [KEEPALIVE_PAYLOAD])
        self.assertEqual(join(parts), KEEPALIVE_PREAMBLE + KEEPALIVE_PAYLOAD + h("00000000"))
        parts = FrameWriter(rev1=True, data_crc=False).assemble(
            Tag.MESSAGE, [HEADER2, FRONT, b"", DATA], MESSAGE_ALIGNS)
        self.assertEqual(join(parts), preamble(Tag.MESSAGE, [(41, 8), (5, 8), (0, 8), (4, 4096)])
                         + HEADER2 + h("00000000") + FRONT + DATA + h("0e") + bytes(12))

    def test_no_data_crc_rev0(self):
        parts = FrameWriter(rev1=False, data_crc=False).assemble(Tag.KEEPALIVE2, [KEEPALIVE_PAYLOAD])
        self.assertEqual(join(parts), KEEPALIVE_PREAMBLE + KEEPALIVE_PAYLOAD + bytes(17))

    def test_writer_recording(self):
        writer = FrameWriter(rev1=True)
        writer.recording = bytearray()
        writer.assemble(Tag.KEEPALIVE2, [KEEPALIVE_PAYLOAD])
        writer.assemble(Tag.WAIT, [b""])
        self.assertEqual(bytes(writer.recording), KEEPALIVE_REV1 + preamble(Tag.WAIT, [(0, 8)], count=1))


class ReaderTests(unittest.SynchronousTestCase):

    def assertFrame(self, frame, tag, segments, flags=0):
        self.assertIsInstance(frame, Frame)
        self.assertEqual(frame.tag, tag)
        self.assertEqual([bytes(s) for s in frame.segments], segments)
        self.assertEqual(frame.flags, flags)

    def cases(self):
        return [
            (True, KEEPALIVE_REV1, Tag.KEEPALIVE2, [KEEPALIVE_PAYLOAD]),
            (False, KEEPALIVE_REV0, Tag.KEEPALIVE2, [KEEPALIVE_PAYLOAD]),
            (True, message_rev1(), Tag.MESSAGE, [HEADER2, FRONT, b"", DATA]),
            (False, message_rev0(), Tag.MESSAGE, [HEADER2, FRONT, b"", DATA]),
            (True, preamble(Tag.WAIT, [(0, 8)], count=1), Tag.WAIT, [b""]),
            (False, preamble(Tag.WAIT, [(0, 8)], count=1) + h("00 ffffffff") + bytes(12),
             Tag.WAIT, [b""]),
        ]

    def test_whole_frames(self):
        for rev1, wire, tag, segments in self.cases():
            frames, left = read_all(FrameReader(rev1=rev1), wire)
            self.assertEqual(len(frames), 1)
            self.assertFrame(frames[0], tag, segments)
            self.assertEqual(left, 0)

    def test_one_byte_at_a_time(self):
        for rev1, wire, tag, segments in self.cases():
            reader = FrameReader(rev1=rev1)
            rbuf = ReceiveBuffer()
            got = []
            for i in range(len(wire)):
                rbuf.append(wire[i:i + 1])
                frame = reader.next_frame(rbuf)
                if frame is not None:
                    got.append((i, frame))
            self.assertEqual(len(got), 1)
            self.assertEqual(got[0][0], len(wire) - 1)
            self.assertFrame(got[0][1], tag, segments)

    def test_every_split(self):
        for rev1, wire, tag, segments in self.cases():
            for cut in range(len(wire) + 1):
                reader = FrameReader(rev1=rev1)
                rbuf = ReceiveBuffer()
                rbuf.append(wire[:cut])
                first = reader.next_frame(rbuf)
                if cut < len(wire):
                    self.assertIsNone(first)
                    rbuf.append(wire[cut:])
                    frame = reader.next_frame(rbuf)
                else:
                    frame = first
                self.assertFrame(frame, tag, segments)
                self.assertIsNone(reader.next_frame(rbuf))
                self.assertEqual(len(rbuf), 0)

    def test_truncated_at_every_offset_yields_none(self):
        for rev1, wire, tag, segments in self.cases():
            for cut in range(len(wire)):
                reader = FrameReader(rev1=rev1)
                rbuf = ReceiveBuffer()
                rbuf.append(wire[:cut])
                self.assertIsNone(reader.next_frame(rbuf))
                self.assertIsNone(reader.next_frame(rbuf))

    def test_several_frames_in_one_buffer(self):
        wire = KEEPALIVE_REV1 + message_rev1() + preamble(Tag.WAIT, [(0, 8)], count=1) + KEEPALIVE_REV1[:10]
        frames, left = read_all(FrameReader(rev1=True), wire)
        self.assertEqual([f.tag for f in frames], [Tag.KEEPALIVE2, Tag.MESSAGE, Tag.WAIT])
        self.assertFrame(frames[1], Tag.MESSAGE, [HEADER2, FRONT, b"", DATA])
        self.assertEqual(left, 10)

    def test_several_frames_rev0(self):
        wire = message_rev0() + KEEPALIVE_REV0
        frames, left = read_all(FrameReader(rev1=False), wire)
        self.assertEqual([f.tag for f in frames], [Tag.MESSAGE, Tag.KEEPALIVE2])
        self.assertEqual(left, 0)

    def test_preamble_flags_reported(self):
        wire = preamble(Tag.KEEPALIVE2, [(8, 8)], flags=1) + KEEPALIVE_PAYLOAD + h("d3138c85")
        rbuf = ReceiveBuffer()
        rbuf.append(wire)
        frame = FrameReader(rev1=True).read_frame(rbuf)
        self.assertFrame(frame, Tag.KEEPALIVE2, [KEEPALIVE_PAYLOAD], flags=1)

    def test_reader_recording(self):
        reader = FrameReader(rev1=True)
        reader.recording = bytearray()
        read_all(reader, KEEPALIVE_REV1 + message_rev1())
        self.assertEqual(bytes(reader.recording), KEEPALIVE_REV1 + message_rev1())

    def test_writer_reader_roundtrip(self):
        for rev1 in (True, False):
            for data_crc in (True, False):
                writer = FrameWriter(rev1=rev1, data_crc=data_crc)
                segs = [HEADER2, b"f" * 100, b"m" * 3, b"d" * 5000]
                wire = join(writer.assemble(Tag.MESSAGE, segs, MESSAGE_ALIGNS))
                frames, left = read_all(FrameReader(rev1=rev1, data_crc=data_crc), wire)
                self.assertFrame(frames[0], Tag.MESSAGE, segs)
                self.assertEqual(left, 0)


class BadInputTests(unittest.SynchronousTestCase):

    def feed(self, data, rev1=True, **kw):
        reader = FrameReader(rev1=rev1, **kw)
        rbuf = ReceiveBuffer()
        rbuf.append(data)
        return reader.next_frame(rbuf)

    def test_bad_preamble_crc(self):
        wire = bytearray(KEEPALIVE_REV1)
        wire[28] ^= 0xFF
        self.assertRaises(CrcMismatch, self.feed, bytes(wire))
        wire = bytearray(KEEPALIVE_REV1)
        wire[2] ^= 0x01  # length byte changed, crc left alone
        self.assertRaises(CrcMismatch, self.feed, bytes(wire[:32]))

    def test_segment_crc_mismatch_rev1_first_segment(self):
        wire = bytearray(KEEPALIVE_REV1)
        wire[32] ^= 0x01
        self.assertRaises(CrcMismatch, self.feed, bytes(wire))

    def test_segment_crc_mismatch_rev1_epilogue(self):
        wire = bytearray(message_rev1())
        wire[32 + 41 + 4] ^= 0x01  # a byte of the front segment
        self.assertRaises(CrcMismatch, self.feed, bytes(wire))
        wire = bytearray(message_rev1())
        wire[-1] ^= 0x01  # the data segment's crc
        self.assertRaises(CrcMismatch, self.feed, bytes(wire))

    def test_empty_middle_crc_must_be_all_ones_rev1(self):
        wire = bytearray(message_rev1())
        wire[-8:-4] = bytes(4)
        self.assertRaises(CrcMismatch, self.feed, bytes(wire))

    def test_segment_crc_mismatch_rev0(self):
        wire = bytearray(KEEPALIVE_REV0)
        wire[32] ^= 0x01
        self.assertRaises(CrcMismatch, self.feed, bytes(wire), rev1=False)
        wire = bytearray(message_rev0())
        wire[-1] ^= 0x01
        self.assertRaises(CrcMismatch, self.feed, bytes(wire), rev1=False)

    def test_segment_count_zero_and_five(self):
        for count in (0, 5, 255):
            pre = preamble(Tag.KEEPALIVE2, [(8, 8)], count=count)
            self.assertRaises(BadSegmentCount, self.feed, pre)
            self.assertRaises(BadSegmentCount, self.feed, pre, rev1=False)

    def test_last_segment_empty(self):
        pre = preamble(Tag.MESSAGE, [(41, 8), (0, 8)], count=2)
        self.assertRaises(FramingError, self.feed, pre)
        pre = preamble(Tag.MESSAGE, [(41, 8), (5, 8), (0, 8)], count=3)
        self.assertRaises(FramingError, self.feed, pre, rev1=False)

    def test_segment_above_max_segment_on_preamble_alone(self):
        pre = preamble(Tag.MESSAGE, [(41, 8), (101, 8)])
        self.assertRaises(FrameTooLarge, self.feed, pre, max_segment=100)
        # exactly at the limit is fine (waits for the body)
        pre = preamble(Tag.MESSAGE, [(41, 8), (100, 8)])
        self.assertIsNone(self.feed(pre, max_segment=100))

    def test_frame_above_max_frame_on_preamble_alone(self):
        pre = preamble(Tag.MESSAGE, [(41, 8), (80, 8), (80, 8)])
        self.assertRaises(FrameTooLarge, self.feed, pre, max_segment=100, max_frame=200)
        self.assertRaises(FrameTooLarge, self.feed, pre, rev1=False, max_segment=100, max_frame=200)
        self.assertIsNone(self.feed(pre, max_segment=100, max_frame=201))

    def test_control_above_max_control_on_preamble_alone(self):
        pre = preamble(Tag.HELLO, [(65, 8)])
        self.assertRaises(FrameTooLarge, self.feed, pre, max_control=64)
        self.assertIsNone(self.feed(preamble(Tag.HELLO, [(64, 8)]), max_control=64))
        # the MESSAGE limit does not apply to control frames
        self.assertRaises(FrameTooLarge, self.feed, pre, max_control=64, max_frame=1 << 20)

    def test_huge_declared_length_rejected_by_default(self):
        pre = preamble(Tag.MESSAGE, [(41, 8), (0xFFFFFFFF, 8)])
        self.assertRaises(FrameTooLarge, self.feed, pre)
        pre = preamble(Tag.AUTH_REQUEST, [(0x7FFFFFFF, 8)])
        self.assertRaises(FrameTooLarge, self.feed, pre)

    def test_unknown_tag(self):
        for tag in (0, 23, 99, 255):
            pre = preamble(tag, [(8, 8)])
            self.assertRaises(UnknownTag, self.feed, pre + KEEPALIVE_PAYLOAD + seg_crc(KEEPALIVE_PAYLOAD))
            self.assertRaises(UnknownTag, self.feed, pre)

    def message_with_status(self, status: int) -> bytes:
        wire = bytearray(message_rev1())
        wire[-13] = status
        return bytes(wire)

    def test_rev1_late_status_complete(self):
        frames, _ = read_all(FrameReader(rev1=True), self.message_with_status(0x0E))
        self.assertEqual([f.tag for f in frames], [Tag.MESSAGE])

    def test_rev1_late_status_aborted_dropped(self):
        frames, left = read_all(FrameReader(rev1=True), self.message_with_status(0x01) + KEEPALIVE_REV1)
        self.assertEqual([f.tag for f in frames], [Tag.KEEPALIVE2])
        self.assertEqual([bytes(s) for s in frames[0].segments], [KEEPALIVE_PAYLOAD])
        self.assertEqual(left, 0)

    def test_rev1_aborted_alone_yields_none(self):
        reader = FrameReader(rev1=True)
        rbuf = ReceiveBuffer()
        rbuf.append(self.message_with_status(0x01))
        self.assertIsNone(reader.next_frame(rbuf))
        self.assertEqual(len(rbuf), 0)
        rbuf.append(KEEPALIVE_REV1)
        self.assertEqual(reader.next_frame(rbuf).tag, Tag.KEEPALIVE2)

    def test_rev1_late_status_invalid(self):
        for status in (0x05, 0x00, 0x0F):
            self.assertRaises(FramingError, self.feed, self.message_with_status(status))

    def test_rev0_late_flags_aborted_dropped(self):
        wire = bytearray(message_rev0())
        wire[-17] = 0x01
        frames, left = read_all(FrameReader(rev1=False), bytes(wire) + KEEPALIVE_REV0)
        self.assertEqual([f.tag for f in frames], [Tag.KEEPALIVE2])
        self.assertEqual(left, 0)

    def test_no_data_crc_interop(self):
        for rev1 in (True, False):
            for tag, segs, aligns in ((Tag.KEEPALIVE2, [KEEPALIVE_PAYLOAD], (8,)),
                                      (Tag.MESSAGE, [HEADER2, FRONT, b"", DATA], MESSAGE_ALIGNS)):
                wire = join(FrameWriter(rev1=rev1, data_crc=False).assemble(tag, segs, aligns))
                frames, _ = read_all(FrameReader(rev1=rev1, data_crc=False), wire)
                self.assertEqual([bytes(s) for s in frames[0].segments], segs)
                self.assertRaises(CrcMismatch, self.feed, wire, rev1=rev1)

    def test_no_data_crc_reader_still_checks_preamble(self):
        wire = bytearray(KEEPALIVE_REV1)
        wire[29] ^= 0x10
        self.assertRaises(CrcMismatch, self.feed, bytes(wire), data_crc=False)
